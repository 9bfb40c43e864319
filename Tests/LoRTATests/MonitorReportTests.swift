import Foundation
import Testing
@testable import LoRTAReport
#if canImport(FoundationXML)
import FoundationXML
#endif

// The monitor's HTML report (LoRTAReport): escaping, the SVG geometry against values computed
// here independently, well-formedness (XMLParser), errors, determinism, atomic writing, and a
// headless Chromium rendering through scripts/render-report.sh.

private let reportRepositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The chromium binary the render script would use, if any (PATH search as `command -v`).
private let chromiumPath: String? = {
    if let explicit = ProcessInfo.processInfo.environment["CHROMIUM"], FileManager.default.isExecutableFile(atPath: explicit) {
        return explicit
    }
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for dir in path.split(separator: ":") {
        for name in ["chromium", "chromium-browser"] {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
    }
    return nil
}()

/// Deterministic pseudo-random numbers in [0, 1) (a 64-bit LCG, top 53 bits).
private struct ReportTestRNG {
    var state: UInt64
    mutating func next() -> Double {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Double(state >> 11) / Double(1 << 53)
    }
}

/// The start tags (text after `<` up to `>`) that begin with `prefix`, e.g. `rect class="bar"`.
private func tags(_ prefix: String, in text: String) -> [String] {
    text.components(separatedBy: "<").dropFirst().compactMap { piece in
        guard piece.hasPrefix(prefix), let end = piece.firstIndex(of: ">") else { return nil }
        return String(piece[..<end])
    }
}

/// The value of attribute `name` in a start tag.
private func attribute(_ name: String, in tag: String) -> String? {
    guard let start = tag.range(of: " \(name)=\"") else { return nil }
    let rest = tag[start.upperBound...]
    guard let end = rest.firstIndex(of: "\"") else { return nil }
    return String(rest[..<end])
}

private func number(_ name: String, in tag: String) -> Double {
    attribute(name, in: tag).flatMap(Double.init) ?? .nan
}

/// The svg elements of a document, in order (text from `<svg` to `</svg>`).
private func svgs(in html: String) -> [String] {
    html.components(separatedBy: "<svg").dropFirst().map { String($0.components(separatedBy: "</svg>")[0]) }
}

private func occurrences(of needle: String, in text: String) -> Int {
    text.components(separatedBy: needle).count - 1
}

/// Clean scores ~ U(0, 1), flagged scores ~ 0.6 + U(0, 1), both positive.
private func sampleScores(clean: Int, flagged: Int) -> (clean: [Double], flagged: [Double]) {
    var rng = ReportTestRNG(state: 12)
    let a = (0..<clean).map { _ in 0.01 + rng.next() }
    let b = (0..<flagged).map { _ in 0.6 + rng.next() }
    return (a, b)
}

/// A report with every kind of section: 4 charts (ROC, histogram, heat map, log-x histogram).
private func sampleReport(title: String = "Monitor report") -> MonitorReport {
    let scores = sampleScores(clean: 400, flagged: 60)
    let curves = [
        ROCCurve(name: "combined", points: [(0, 0), (0.1, 0.4), (0.25, 0.7), (0.5, 0.9), (1, 1)], auc: 0.79),
        ROCCurve(name: "layer 3 · mahalanobis", points: [(0, 0), (0.2, 0.3), (0.6, 0.8), (1, 1)], auc: 0.6),
    ]
    var heat = (0..<6).map { r in (0..<8).map { c in Double(r * 8 + c) / 47 } }
    heat[1][2] = .nan
    return MonitorReport(
        title: title,
        summary: [(key: "model", value: "tiny-bert"), (key: "adapter", value: "lorta r=4"),
                  (key: "scored", value: "460"), (key: "combination", value: "max of z-scores")],
        sections: [
            .heading("Detection quality", text: "Higher scores are more anomalous."),
            .table(ReportTable(caption: "Detectors", header: ["point", "detector", "AUROC", "AP", "TPR@1%", "TPR@5%"],
                               rows: [["layer.3.output", "mahalanobis", .number(0.79, digits: 3), .number(0.5, digits: 3),
                                       .number(0.1, digits: 3), .number(0.25, digits: 3)]])),
            .rocCurves(ROCChart(title: "ROC", curves: curves)),
            .histogram(ScoreHistogram(title: "Scores", series: [.init(name: "trusted", scores: scores.clean),
                                                                 .init(name: "flagged", scores: scores.flagged)], binCount: 12)),
            .heatMap(HeatMap(title: "Head contributions", rowLabels: (0..<6).map(String.init),
                             columnLabels: (0..<8).map(String.init), values: heat, showValues: true, valueDigits: 2)),
            .histogram(ScoreHistogram(title: "Scores (log)", series: [.init(name: "trusted", scores: scores.clean),
                                                                       .init(name: "flagged", scores: scores.flagged)],
                                      binCount: 20, logarithmicX: true, scale: .count)),
        ])
}

@Suite("MonitorReport")
struct MonitorReportTests {
    @Test func textIsEscapedAndThereIsNoScript() throws {
        let evil = "<script>alert(\"x\")&'</script>"
        let escaped = "&lt;script&gt;alert(&quot;x&quot;)&amp;&#39;&lt;/script&gt;"
        let report = MonitorReport(
            title: evil, summary: [(key: evil, value: evil)],
            sections: [
                .heading(evil, text: evil),
                .table(ReportTable(caption: evil, header: [evil], rows: [[.text(evil)]])),
                .rocCurves(ROCChart(title: evil, curves: [ROCCurve(name: evil, points: [(0, 0), (1, 1)], auc: 0.5)])),
                .histogram(ScoreHistogram(title: evil, series: [.init(name: evil, scores: [1, 2])], xLabel: evil)),
                .heatMap(HeatMap(title: evil, rowLabels: [evil], columnLabels: [evil], values: [[1]], rowTitle: evil, columnTitle: evil)),
            ])
        let html = try report.html()
        #expect(!html.lowercased().contains("<script"))
        #expect(!html.contains(evil))
        #expect(html.contains("<title>\(escaped)</title>"))
        #expect(html.contains("<h1>\(escaped)</h1>"))
        #expect(occurrences(of: escaped, in: html) >= 15)
        // Control characters XML forbids become U+FFFD.
        #expect(Markup.escape("a\u{01}b\tc") == "a\u{FFFD}b\tc")
    }

    @Test func documentHasOneSVGPerChart() throws {
        let html = try sampleReport().html()
        #expect(html.hasPrefix("<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\""))
        #expect(occurrences(of: "<svg", in: html) == 4)
        #expect(occurrences(of: "<table", in: html) == 2) // summary + detectors
        #expect(html.contains("<td class=\"num\">0.790</td>"))
        #expect(html.contains("<th scope=\"row\">combination</th><td>max of z-scores</td>"))
        // No external resources of any kind (the namespace names are not fetched).
        let stripped = html.replacingOccurrences(of: "xmlns=\"http://www.w3.org/1999/xhtml\"", with: "")
            .replacingOccurrences(of: "xmlns=\"http://www.w3.org/2000/svg\"", with: "")
        for needle in ["http:", "https:", "<link", "<img", "src=", "@import", "<iframe", "<object"] {
            #expect(!stripped.contains(needle), "\(needle)")
        }
    }

    @Test func rocPolylineIsTheCurveMappedToThePlotArea() throws {
        let html = try sampleReport().html()
        let svg = svgs(in: html)[0]
        let area = try #require(tags("rect class=\"plot-area\"", in: svg).first)
        let (left, top) = (number("x", in: area), number("y", in: area))
        let (width, height) = (number("width", in: area), number("height", in: area))
        #expect(width > 100 && height > 100)
        let given: [(Double, Double)] = [(0, 0), (0.1, 0.4), (0.25, 0.7), (0.5, 0.9), (1, 1)]
        let line = try #require(tags("polyline class=\"roc-curve\" data-curve=\"0\"", in: svg).first)
        let points = try #require(attribute("points", in: line)).split(separator: " ").map { pair in
            pair.split(separator: ",").map { Double($0)! }
        }
        #expect(points.count == given.count)
        for (p, (fpr, tpr)) in zip(points, given) {
            #expect(abs(p[0] - (left + fpr * width)) <= 0.006)
            #expect(abs(p[1] - (top + (1 - tpr) * height)) <= 0.006)
        }
        // Both curves are drawn; the legend gives their AUCs; the chance diagonal is there.
        #expect(tags("polyline class=\"roc-curve\"", in: svg).count == 2)
        #expect(svg.contains("combined (AUC 0.790)"))
        #expect(svg.contains("layer 3 · mahalanobis (AUC 0.600)"))
        #expect(tags("line class=\"chance\"", in: svg).count == 1)
    }

    @Test func rocStaircaseKeepsOnlyItsCorners() throws {
        let chart = ROCChart(title: "steps", curves: [ROCCurve(name: "a", points: [(0, 0), (0, 0.25), (0, 0.5), (0, 1), (0.5, 1), (1, 1), (1, 1)])])
        let html = try MonitorReport(title: "t", sections: [.rocCurves(chart)]).html()
        let line = try #require(tags("polyline class=\"roc-curve\"", in: html).first)
        #expect(try #require(attribute("points", in: line)).split(separator: " ").count == 3)
    }

    @Test func manyCurvesListOnlyTheBestInTheLegend() throws {
        let curves = (0..<90).map { i -> ROCCurve in
            let auc = Double((i * 37) % 90) / 100 + 0.05 // a permutation of AUCs
            return ROCCurve(name: "curve \(i)", points: [(0, 0), (1 - auc, auc), (1, 1)], auc: auc)
        }
        let chart = ROCChart(title: "many", curves: curves)
        #expect(chart.legendLimit == 10)
        let html = try MonitorReport(title: "t", sections: [.rocCurves(chart)]).html()
        #expect(tags("polyline class=\"roc-curve\"", in: html).count == 90)
        #expect(html.contains("+80 more"))
        let best = curves.indices.sorted { curves[$0].auc! > curves[$1].auc! }.prefix(10)
        let coloured = tags("polyline class=\"roc-curve\"", in: html).filter { attribute("stroke", in: $0) != "#bbbbbb" }
        #expect(Set(coloured.compactMap { attribute("data-curve", in: $0).flatMap(Int.init) }) == Set(best))
        // The legend lists them best first.
        let first = try #require(html.range(of: "curve \(best[best.startIndex]) (AUC"))
        let second = try #require(html.range(of: "curve \(best[best.startIndex + 1]) (AUC", range: first.upperBound..<html.endIndex))
        #expect(first.lowerBound < second.lowerBound)
        // All listed when the limit allows.
        let all = try MonitorReport(title: "t", sections: [.rocCurves(ROCChart(title: "many", curves: curves, legendLimit: 90))]).html()
        #expect(!all.contains("more (grey"))
    }

    @Test(arguments: [false, true])
    func histogramBarsHoldTheNaiveCounts(logarithmic: Bool) throws {
        let html = try sampleReport().html()
        let svg = svgs(in: html)[logarithmic ? 3 : 1]
        let scores = sampleScores(clean: 400, flagged: 60)
        let n = logarithmic ? 20 : 12
        let series = [scores.clean, scores.flagged].map { $0.map { logarithmic ? log10($0) : $0 } }
        let all = series.flatMap { $0 }
        let lo = all.min()!, hi = all.max()!
        let groups = svg.components(separatedBy: "<g class=\"series\" data-series=\"").dropFirst()
        #expect(groups.count == 2)
        for (s, group) in groups.enumerated() {
            var expected: [Int: Int] = [:]
            for i in 0..<n {
                let a = lo + Double(i) * (hi - lo) / Double(n)
                let b = i == n - 1 ? hi : lo + Double(i + 1) * (hi - lo) / Double(n)
                let count = series[s].filter { $0 >= a && ($0 < b || (i == n - 1 && $0 <= b)) }.count
                if count > 0 { expected[i] = count }
            }
            var drawn: [Int: Int] = [:]
            for bar in tags("rect class=\"bar\"", in: String(group.components(separatedBy: "</g>")[0])) {
                drawn[Int(attribute("data-bin", in: bar)!)!] = Int(attribute("data-count", in: bar)!)!
            }
            #expect(drawn == expected)
            #expect(drawn.values.reduce(0, +) == series[s].count)
        }
        #expect(svg.contains("trusted (n = 400)") && svg.contains("flagged (n = 60)"))
    }

    @Test func heatMapHasOneCellPerValueAndDrawsNaNAsMissing() throws {
        let svg = svgs(in: try sampleReport().html())[2]
        let cells = tags("rect class=\"cell", in: svg)
        #expect(cells.count == 6 * 8)
        let missing = tags("rect class=\"cell missing\"", in: svg)
        #expect(missing.count == 1)
        #expect(attribute("data-row", in: missing[0]) == "1" && attribute("data-column", in: missing[0]) == "2")
        #expect(attribute("fill", in: missing[0])?.hasPrefix("url(#") == true)
        #expect(svg.contains("<title>layer 1, head 2: missing</title>"))
        #expect(svg.contains("<title>layer 5, head 7: 1.00</title>"))
        #expect(svg.contains("min 0.00") && svg.contains("max 1.00") && svg.contains("missing (1)"))
        // Values printed in cells (47 present values).
        #expect(occurrences(of: "text-anchor=\"middle\" stroke=\"none\"", in: svg) == 47)
        // Lowest and highest present values get the ends of the scale.
        let colours = cells.filter { !$0.contains("missing") }.compactMap { attribute("fill", in: $0) }
        #expect(colours.first == "#440154" && colours.last == "#FDE725")
    }

    @Test func svgIdsAreUniqueInTheDocument() throws {
        let html = try MonitorReport(title: "t", sections: sampleReport().sections + sampleReport().sections).html()
        let ids = tags("", in: html).compactMap { attribute("id", in: $0) }
        #expect(!ids.isEmpty)
        #expect(Set(ids).count == ids.count)
    }

    #if canImport(FoundationXML)
    @Test func documentIsWellFormedXML() throws {
        let html = try sampleReport(title: "<b>&'\"").html()
        let parser = XMLParser(data: Data(html.utf8))
        let ok = parser.parse()
        #expect(ok, "\(String(describing: parser.parserError)) at line \(parser.lineNumber), column \(parser.columnNumber)")
    }
    #endif

    @Test func invalidInputThrowsNamingTheChart() throws {
        func problem(_ section: ReportSection) -> ReportError? {
            #expect(throws: ReportError.self) { _ = try MonitorReport(title: "t", sections: [section]).html() }
            do { _ = try MonitorReport(title: "t", sections: [section]).html() } catch { return error }
            return nil
        }
        let nan = problem(.rocCurves(ROCChart(title: "ROC at layer 2", curves: [ROCCurve(name: "m", points: [(0, 0), (.nan, 0.5), (1, 1)])])))
        #expect(nan?.section == "ROC chart \"ROC at layer 2\"")
        #expect(nan?.description.contains("ROC at layer 2") == true)
        if case .nonFiniteValue(let what)? = nan?.problem { #expect(what.contains("point 1")) } else { Issue.record("\(String(describing: nan))") }
        let inf = problem(.rocCurves(ROCChart(title: "r", curves: [ROCCurve(name: "m", points: [(0, 0), (1, .infinity)])])))
        if case .nonFiniteValue? = inf?.problem {} else { Issue.record("\(String(describing: inf))") }
        let unsorted = problem(.rocCurves(ROCChart(title: "r", curves: [ROCCurve(name: "m", points: [(0, 0), (0.5, 0.5), (0.4, 1)])])))
        if case .outOfRange? = unsorted?.problem {} else { Issue.record("\(String(describing: unsorted))") }
        let badAUC = problem(.rocCurves(ROCChart(title: "r", curves: [ROCCurve(name: "m", points: [(0, 0), (1, 1)], auc: 1.5)])))
        if case .outOfRange? = badAUC?.problem {} else { Issue.record("\(String(describing: badAUC))") }
        let noCurves = problem(.rocCurves(ROCChart(title: "r", curves: [])))
        if case .empty? = noCurves?.problem {} else { Issue.record("\(String(describing: noCurves))") }

        let ragged = problem(.heatMap(HeatMap(title: "heads", rowLabels: ["0", "1"], columnLabels: ["a", "b"], values: [[1, 2], [3]])))
        #expect(ragged?.description.contains("heat map \"heads\"") == true)
        if case .shapeMismatch(let what)? = ragged?.problem { #expect(what.contains("row 1")) } else { Issue.record("\(String(describing: ragged))") }
        let rows = problem(.heatMap(HeatMap(title: "heads", rowLabels: ["0"], columnLabels: ["a"], values: [[1], [2]])))
        if case .shapeMismatch? = rows?.problem {} else { Issue.record("\(String(describing: rows))") }
        let infCell = problem(.heatMap(HeatMap(title: "heads", rowLabels: ["0"], columnLabels: ["a"], values: [[-.infinity]])))
        if case .nonFiniteValue? = infCell?.problem {} else { Issue.record("\(String(describing: infCell))") }

        let empty = problem(.histogram(ScoreHistogram(title: "scores at layer 4", series: [.init(name: "clean", scores: []), .init(name: "flagged", scores: [])])))
        #expect(empty?.description.contains("histogram \"scores at layer 4\"") == true)
        if case .empty? = empty?.problem {} else { Issue.record("\(String(describing: empty))") }
        let noSeries = problem(.histogram(ScoreHistogram(title: "s", series: [])))
        if case .empty? = noSeries?.problem {} else { Issue.record("\(String(describing: noSeries))") }
        let nanScore = problem(.histogram(ScoreHistogram(title: "s", series: [.init(name: "clean", scores: [1, .nan])])))
        if case .nonFiniteValue(let what)? = nanScore?.problem { #expect(what.contains("\"clean\", score 1")) } else { Issue.record("\(String(describing: nanScore))") }
        let logZero = problem(.histogram(ScoreHistogram(title: "s", series: [.init(name: "clean", scores: [1, 0])], logarithmicX: true)))
        if case .outOfRange? = logZero?.problem {} else { Issue.record("\(String(describing: logZero))") }
        let bins = problem(.histogram(ScoreHistogram(title: "s", series: [.init(name: "clean", scores: [1])], binCount: 0)))
        if case .invalidOption? = bins?.problem {} else { Issue.record("\(String(describing: bins))") }

        let table = problem(.table(ReportTable(caption: "AUROC", header: ["a", "b"], rows: [["x"]])))
        #expect(table?.description.contains("table \"AUROC\"") == true)
        if case .shapeMismatch? = table?.problem {} else { Issue.record("\(String(describing: table))") }
    }

    @Test func edgeCasesRender() throws {
        // One distinct score, a single series, an all-missing heat map, a diverging scale.
        let html = try MonitorReport(title: "t", sections: [
            .histogram(ScoreHistogram(title: "flat", series: [.init(name: "a", scores: [2, 2, 2])], binCount: 5)),
            .heatMap(HeatMap(title: "none", rowLabels: ["0"], columnLabels: ["0", "1"], values: [[.nan, .nan]])),
            .heatMap(HeatMap(title: "signed", rowLabels: ["0"], columnLabels: ["0", "1", "2"], values: [[-2, 0, 1]], colorScheme: .diverging)),
            .table(ReportTable(header: [], rows: [[.number(-0.0001, digits: 2), .number(.nan, digits: 2), 7]])),
        ]).html()
        #expect(occurrences(of: "<svg", in: html) == 3)
        #expect(tags("rect class=\"bar\"", in: html).map { attribute("data-count", in: $0) } == ["3"])
        #expect(html.contains("no values") && html.contains("missing (2)"))
        let signed = tags("rect class=\"cell\"", in: svgs(in: html)[2]).compactMap { attribute("fill", in: $0) }
        #expect(signed.count == 3)
        #expect(signed.first == "#2166AC") // −2: the end of a scale symmetric around 0 (±2)
        #expect(signed.dropFirst().first == "#F7F7F7") // 0: its middle
        #expect(html.contains("<td class=\"num\">0.00</td><td class=\"num\">NaN</td><td class=\"num\">7</td>"))
    }

    @Test func outputIsDeterministic() throws {
        let a = try sampleReport().html()
        let b = try sampleReport().html()
        #expect(a == b)
        #expect(try sampleReport().html() == a)
    }

    @Test func writeIsAtomicAndReportsFailures() throws {
        let dir = try temporaryDirectory("report")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("report.html")
        let report = sampleReport()
        try report.write(to: url)
        try report.write(to: url) // replaces
        #expect(try String(contentsOf: url, encoding: .utf8) == report.html())
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["report.html"])
        let missing = dir.appendingPathComponent("no-such-dir/report.html")
        #expect(throws: ReportError.self) { try report.write(to: missing) }
        do { try report.write(to: missing) } catch {
            if case .fileSystem(let op, _, _) = error.problem { #expect(op == "create") } else { Issue.record("\(error)") }
        }
        // An invalid report writes nothing.
        let bad = MonitorReport(title: "t", sections: [.histogram(ScoreHistogram(title: "s", series: []))])
        #expect(throws: ReportError.self) { try bad.write(to: dir.appendingPathComponent("bad.html")) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["report.html"])
    }

    /// Runs scripts/render-report.sh on `report`; returns the PNG's bytes and the DOM.
    private func render(_ html: String, in dir: URL, name: String) throws -> (png: Data, dom: String) {
        let page = dir.appendingPathComponent("\(name).html")
        try Data(html.utf8).write(to: page)
        let png = dir.appendingPathComponent("\(name).png"), dom = dir.appendingPathComponent("\(name).dom.html")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [reportRepositoryRoot.appendingPathComponent("scripts/render-report.sh").path, page.path, png.path, dom.path]
        let log = Pipe()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        let output = log.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(String(decoding: output, as: UTF8.self))")
        return (try Data(contentsOf: png), try String(contentsOf: dom, encoding: .utf8))
    }

    // Skipped (visibly) where chromium is absent; CI installs it with scripts/install-deps.sh.
    @Test(.enabled(if: chromiumPath != nil, "chromium is not installed (apt-get install chromium or scripts/install-deps.sh): headless rendering skipped"))
    func headlessChromiumRendersTheReport() throws {
        // LORTA_REPORT_SAMPLE_DIR=/some/dir keeps the sample report and its screenshot there.
        let keep = ProcessInfo.processInfo.environment["LORTA_REPORT_SAMPLE_DIR"]
        let dir = try keep.map { URL(fileURLWithPath: $0) } ?? temporaryDirectory("report-chromium")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { if keep == nil { try? FileManager.default.removeItem(at: dir) } }
        let (png, dom) = try render(try sampleReport().html(), in: dir, name: "report")
        // Chromium parsed every figure as SVG and kept the geometry.
        #expect(occurrences(of: "<svg", in: dom) == 4)
        #expect(dom.contains("class=\"plot-area\"") && dom.contains("class=\"roc-curve\"") && dom.contains("class=\"cell missing\""))
        #expect(!dom.lowercased().contains("<script"))
        // A PNG, clearly more than a blank page of the same size.
        let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        #expect(Array(png.prefix(8)) == signature)
        let (blank, _) = try render("<!DOCTYPE html><html><body></body></html>", in: dir, name: "blank")
        #expect(Array(blank.prefix(8)) == signature)
        #expect(png.count > 20_000 && png.count > 3 * blank.count, "report \(png.count) bytes, blank page \(blank.count) bytes")
    }
}
