/// One point of a ROC curve: the false-positive rate and the true-positive rate at one
/// threshold, both in 0...1.
public struct ROCPoint: Sendable, Equatable {
    /// False-positive rate (fraction of clean inputs flagged), 0...1.
    public var fpr: Double
    /// True-positive rate (fraction of anomalous inputs flagged), 0...1.
    public var tpr: Double

    /// Makes a point.
    public init(fpr: Double, tpr: Double) {
        self.fpr = fpr
        self.tpr = tpr
    }
}

/// A named ROC curve: its points sorted by false-positive rate and, optionally, its area.
public struct ROCCurve: Sendable, Equatable {
    /// Shown in the legend and the curve's tooltip (e.g. "layer.3.output · mahalanobis").
    public var name: String
    /// At least two points, `fpr` non-decreasing, all coordinates finite and in 0...1 (a ROC
    /// curve from thresholds runs from (0, 0) to (1, 1)).
    public var points: [ROCPoint]
    /// The area under the curve, in 0...1, shown in the legend and used to rank curves when
    /// there are more than ``ROCChart/legendLimit``; `nil` if unknown (ranked last).
    public var auc: Double?

    /// Makes a curve.
    public init(name: String, points: [ROCPoint], auc: Double? = nil) {
        self.name = name
        self.points = points
        self.auc = auc
    }

    /// Makes a curve from `(fpr, tpr)` pairs.
    public init(name: String, points: [(fpr: Double, tpr: Double)], auc: Double? = nil) {
        self.init(name: name, points: points.map { ROCPoint(fpr: $0.fpr, tpr: $0.tpr) }, auc: auc)
    }
}

/// Several ROC curves in one chart: false-positive rate on x, true-positive rate on y, both
/// 0...1 with ticks every 0.2, the chance diagonal dashed, and a legend with each curve's AUC.
///
/// Any number of curves can be drawn. When there are more than ``legendLimit``, the
/// ``legendLimit`` curves with the highest AUC are coloured and listed in the legend (best
/// first) and the others are drawn thin and grey behind them, summarised as "+K more"; with at
/// most ``legendLimit`` curves, all are coloured and listed in the given order.
///
/// Each curve is an SVG `polyline` whose points are the curve's points mapped to the plot
/// rectangle (x = left + fpr · width, y = top + (1 − tpr) · height) and rounded to 0.01
/// viewBox units; repeated points and points on a straight segment between their neighbours
/// are dropped, which changes nothing visible and keeps large curves small.
public struct ROCChart: Sendable, Equatable {
    /// The chart's title (e.g. "ROC · layer 3 output").
    public var title: String
    /// The curves, at least one.
    public var curves: [ROCCurve]
    /// How many curves are coloured and listed in the legend (0...1000); default 10.
    public var legendLimit: Int

    /// Makes a chart.
    public init(title: String, curves: [ROCCurve], legendLimit: Int = 10) {
        self.title = title
        self.curves = curves
        self.legendLimit = legendLimit
    }

    var name: String { "ROC chart \"\(title)\"" }

    /// Checks the curves and options.
    /// - Throws: ``ReportError`` naming the chart and the curve: no curves or fewer than two
    ///   points (``ReportError/Problem/empty(_:)``), a non-finite coordinate or AUC
    ///   (``ReportError/Problem/nonFiniteValue(_:)``), a coordinate or AUC outside 0...1 or a
    ///   decreasing fpr (``ReportError/Problem/outOfRange(_:)``), a legend limit outside
    ///   0...1000 (``ReportError/Problem/invalidOption(_:)``).
    /// - Complexity: O(total number of points).
    public func validate() throws(ReportError) {
        func fail(_ p: ReportError.Problem) -> ReportError { ReportError(section: name, problem: p) }
        guard (0...1000).contains(legendLimit) else {
            throw fail(.invalidOption("legend limit \(legendLimit) (must be in 0...1000)"))
        }
        guard !curves.isEmpty else { throw fail(.empty("no curves")) }
        for (c, curve) in curves.enumerated() {
            let which = "curve \(c) \"\(curve.name)\""
            guard curve.points.count >= 2 else {
                throw fail(.empty("\(which) has \(curve.points.count) point(s), at least 2 are needed"))
            }
            if let auc = curve.auc {
                guard auc.isFinite else { throw fail(.nonFiniteValue("\(which): AUC is \(Markup.short(auc))")) }
                guard (0...1).contains(auc) else { throw fail(.outOfRange("\(which): AUC \(Markup.short(auc)) is not in 0...1")) }
            }
            var previous = -Double.infinity
            for (i, p) in curve.points.enumerated() {
                guard p.fpr.isFinite, p.tpr.isFinite else {
                    throw fail(.nonFiniteValue("\(which), point \(i): (fpr \(Markup.short(p.fpr)), tpr \(Markup.short(p.tpr)))"))
                }
                guard (0...1).contains(p.fpr), (0...1).contains(p.tpr) else {
                    throw fail(.outOfRange("\(which), point \(i): (fpr \(Markup.short(p.fpr)), tpr \(Markup.short(p.tpr))) is not in the unit square"))
                }
                guard p.fpr >= previous else {
                    throw fail(.outOfRange("\(which), point \(i): fpr \(Markup.short(p.fpr)) is below the previous point's \(Markup.short(previous)) (points must be sorted by fpr)"))
                }
                previous = p.fpr
            }
        }
    }

    /// Curve indices: the coloured ones in legend order, then the grey ones.
    func legendOrder() -> (listed: [Int], grey: [Int]) {
        if curves.count <= legendLimit { return (Array(curves.indices), []) }
        let ranked = curves.indices.sorted { a, b in
            switch (curves[a].auc, curves[b].auc) {
            case let (x?, y?): return x != y ? x > y : a < b
            case (.some, nil): return true
            case (nil, .some): return false
            case (nil, nil): return a < b
            }
        }
        return (Array(ranked.prefix(legendLimit)), Array(ranked.dropFirst(legendLimit)).sorted())
    }

    func render(into out: inout String, id: Int) {
        let (listed, grey) = legendOrder()
        let entries = listed.count + 1 + (grey.isEmpty ? 0 : 1)
        var frame = ChartFrame(width: 760, height: 420, left: 64, top: 44, plotWidth: 320, plotHeight: 320)
        frame.height = max(420, frame.top + 20 * Double(entries) + 16)
        frame.open(into: &out, title: title, kind: "roc")
        frame.plotArea(into: &out)
        let ticks = stride(from: 0, through: 10, by: 2).map { (position: Double($0) / 10, label: Markup.fixed(Double($0) / 10, digits: 1)) }
        frame.xAxis(into: &out, ticks: ticks, title: "false-positive rate")
        frame.yAxis(into: &out, ticks: ticks, title: "true-positive rate")
        // Chance diagonal.
        out += "<line class=\"chance\" x1=\"\(Markup.c(frame.left))\" y1=\"\(Markup.c(frame.bottom))\" x2=\"\(Markup.c(frame.left + frame.plotWidth))\" y2=\"\(Markup.c(frame.top))\" stroke=\"#999999\" stroke-width=\"1\" stroke-dasharray=\"4 4\"/>\n"
        // Grey curves first, then the listed ones from last to first so the best is on top.
        for index in grey {
            polyline(into: &out, index: index, frame: frame, color: "#bbbbbb", dash: nil, width: 1)
        }
        for (rank, index) in listed.enumerated().reversed() {
            let style = Markup.lineStyle(rank)
            polyline(into: &out, index: index, frame: frame, color: style.color, dash: style.dash, width: 2)
        }
        // Legend.
        out += "<g class=\"legend\">\n"
        var y = frame.top + 8
        for (rank, index) in listed.enumerated() {
            let style = Markup.lineStyle(rank)
            let label = legendLabel(curves[index])
            out += "<g><title>\(Markup.escape(label))</title>"
            out += "<line x1=\"\(Markup.c(frame.legendX))\" y1=\"\(Markup.c(y))\" x2=\"\(Markup.c(frame.legendX + 24))\" y2=\"\(Markup.c(y))\" stroke=\"\(style.color)\" stroke-width=\"2\""
            if let dash = style.dash { out += " stroke-dasharray=\"\(dash)\"" }
            out += "/><text x=\"\(Markup.c(frame.legendX + 30))\" y=\"\(Markup.c(y))\" dy=\"4\">\(Markup.escape(Markup.truncated(label, to: 50)))</text></g>\n"
            y += 20
        }
        if !grey.isEmpty {
            out += "<g class=\"more\"><line x1=\"\(Markup.c(frame.legendX))\" y1=\"\(Markup.c(y))\" x2=\"\(Markup.c(frame.legendX + 24))\" y2=\"\(Markup.c(y))\" stroke=\"#bbbbbb\" stroke-width=\"1\"/>"
            out += "<text x=\"\(Markup.c(frame.legendX + 30))\" y=\"\(Markup.c(y))\" dy=\"4\">+\(grey.count) more (grey, lower AUC)</text></g>\n"
            y += 20
        }
        out += "<g><line x1=\"\(Markup.c(frame.legendX))\" y1=\"\(Markup.c(y))\" x2=\"\(Markup.c(frame.legendX + 24))\" y2=\"\(Markup.c(y))\" stroke=\"#999999\" stroke-width=\"1\" stroke-dasharray=\"4 4\"/>"
        out += "<text x=\"\(Markup.c(frame.legendX + 30))\" y=\"\(Markup.c(y))\" dy=\"4\">chance (AUC 0.5)</text></g>\n"
        out += "</g>\n"
        frame.close(into: &out)
    }

    func legendLabel(_ curve: ROCCurve) -> String {
        guard let auc = curve.auc else { return curve.name }
        return "\(curve.name) (AUC \(Markup.fixed(auc, digits: 3)))"
    }

    func polyline(into out: inout String, index: Int, frame: ChartFrame, color: String, dash: String?, width: Int) {
        let curve = curves[index]
        // Points in hundredths of a viewBox unit; drop repeats and interior collinear points.
        var kept: [(x: Int, y: Int)] = []
        kept.reserveCapacity(curve.points.count)
        for p in curve.points {
            let q = (x: Markup.centi(frame.left + p.fpr * frame.plotWidth),
                     y: Markup.centi(frame.top + (1 - p.tpr) * frame.plotHeight))
            if let last = kept.last, last == q { continue }
            if kept.count >= 2 {
                let a = kept[kept.count - 2], b = kept[kept.count - 1]
                let cross = (b.x - a.x) * (q.y - a.y) - (b.y - a.y) * (q.x - a.x)
                let forward = (b.x - a.x) * (q.x - b.x) + (b.y - a.y) * (q.y - b.y)
                if cross == 0 && forward >= 0 { kept[kept.count - 1] = q; continue }
            }
            kept.append(q)
        }
        var points = ""
        points.reserveCapacity(kept.count * 14)
        for (i, q) in kept.enumerated() {
            if i > 0 { points += " " }
            points += Markup.coordinate(centi: q.x) + "," + Markup.coordinate(centi: q.y)
        }
        out += "<polyline class=\"roc-curve\" data-curve=\"\(index)\" points=\"\(points)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"\(width)\" stroke-linejoin=\"round\""
        if let dash { out += " stroke-dasharray=\"\(dash)\"" }
        out += "><title>\(Markup.escape(legendLabel(curve)))</title></polyline>\n"
    }
}
