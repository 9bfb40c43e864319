import Foundation

/// Overlaid histograms of anomaly scores, e.g. the trusted (clean) inputs against the flagged
/// (or known anomalous) ones, on shared bins.
///
/// The bins split [min, max] of all scores of all series into ``binCount`` equal intervals
/// (equal in log₁₀ of the score when ``logarithmicX`` is set). Bin i is [eᵢ, eᵢ₊₁) with
/// eᵢ = lo + i · (hi − lo) / binCount; the last bin also holds hi. When all scores are equal
/// the range is widened by 0.5 on both sides. Each series is drawn as semi-transparent bars
/// in its own colour, so overlapping distributions stay visible; each bar's tooltip gives its
/// interval, count and share of its series, and its `data-count` attribute the count.
public struct ScoreHistogram: Sendable, Equatable {
    /// One distribution: a name for the legend and its raw scores.
    public struct Series: Sendable, Equatable {
        /// The legend's name (e.g. "trusted" or "flagged"); the count is appended.
        public var name: String
        /// Raw scores, all finite (and positive for a logarithmic x axis). May be empty if
        /// another series is not.
        public var scores: [Double]

        /// Makes a series.
        public init(name: String, scores: [Double]) {
            self.name = name
            self.scores = scores
        }
    }

    /// What the bar heights show.
    public enum Scale: Sendable, Equatable {
        /// The number of scores in the bin.
        case count
        /// The fraction of the series' scores in the bin, so series of different sizes compare.
        case fraction
    }

    /// The chart's title (e.g. "Scores · layer 3 · mahalanobis").
    public var title: String
    /// The distributions, at least one (usually two: clean and anomalous).
    public var series: [Series]
    /// The number of bins, 1...1000; default 30.
    public var binCount: Int
    /// Bins and axis in log₁₀(score); every score must then be positive.
    public var logarithmicX: Bool
    /// What the bar heights show; default ``Scale/fraction``.
    public var scale: Scale
    /// The x axis title; default "score".
    public var xLabel: String

    /// Makes a histogram.
    public init(title: String, series: [Series], binCount: Int = 30, logarithmicX: Bool = false,
                scale: Scale = .fraction, xLabel: String = "score") {
        self.title = title
        self.series = series
        self.binCount = binCount
        self.logarithmicX = logarithmicX
        self.scale = scale
        self.xLabel = xLabel
    }

    var name: String { "histogram \"\(title)\"" }

    /// The shared bins: `lo`, `hi` (in log₁₀ when logarithmic) and the counts per series.
    struct Bins {
        var lo: Double, hi: Double
        var counts: [[Int]]
        func edge(_ i: Int, of n: Int) -> Double { i == n ? hi : lo + Double(i) * (hi - lo) / Double(n) }
    }

    /// Checks the series and options.
    /// - Throws: ``ReportError`` naming the histogram: no series or no scores at all
    ///   (``ReportError/Problem/empty(_:)``), a NaN or infinite score (naming the series and
    ///   index, ``ReportError/Problem/nonFiniteValue(_:)``), a score ≤ 0 on a logarithmic axis
    ///   (``ReportError/Problem/outOfRange(_:)``), a bin count outside 1...1000
    ///   (``ReportError/Problem/invalidOption(_:)``).
    /// - Complexity: O(total number of scores).
    public func validate() throws(ReportError) { _ = try binned() }

    func binned() throws(ReportError) -> Bins {
        func fail(_ p: ReportError.Problem) -> ReportError { ReportError(section: name, problem: p) }
        guard (1...1000).contains(binCount) else {
            throw fail(.invalidOption("bin count \(binCount) (must be in 1...1000)"))
        }
        guard !series.isEmpty else { throw fail(.empty("no series")) }
        var lo = Double.infinity, hi = -Double.infinity
        for (s, one) in series.enumerated() {
            for (i, x) in one.scores.enumerated() {
                guard x.isFinite else {
                    throw fail(.nonFiniteValue("series \(s) \"\(one.name)\", score \(i) is \(Markup.short(x))"))
                }
                if logarithmicX && !(x > 0) {
                    throw fail(.outOfRange("series \(s) \"\(one.name)\", score \(i) is \(Markup.short(x)); a logarithmic axis needs positive scores"))
                }
                let v = logarithmicX ? log10(x) : x
                lo = min(lo, v); hi = max(hi, v)
            }
        }
        guard lo <= hi else { throw fail(.empty("no scores in any series")) }
        if lo == hi { lo -= 0.5; hi += 0.5 }
        guard (hi - lo).isFinite else {
            throw fail(.outOfRange("the scores span \(Markup.short(lo))...\(Markup.short(hi)), too wide to bin"))
        }
        var bins = Bins(lo: lo, hi: hi, counts: [])
        let n = binCount
        for one in series {
            var counts = [Int](repeating: 0, count: n)
            for x in one.scores {
                let v = logarithmicX ? log10(x) : x
                // A first guess, then corrected so that edge(i) ≤ v < edge(i + 1) exactly.
                var i = min(max(Int(((v - lo) / (hi - lo) * Double(n)).rounded(.down)), 0), n - 1)
                while i > 0 && v < bins.edge(i, of: n) { i -= 1 }
                while i < n - 1 && v >= bins.edge(i + 1, of: n) { i += 1 }
                counts[i] += 1
            }
            bins.counts.append(counts)
        }
        return bins
    }

    /// Tick values (not logarithms) for a log₁₀ axis over lo...hi (in log₁₀): decades over three
    /// or more, else 1-2-5 steps, else (within a decade) linear steps.
    static func logTicks(lo: Double, hi: Double) -> [Double] {
        if hi - lo >= 3 {
            let step = max(1, (hi - lo) / 8).rounded(.up)
            return Markup.ticks(from: lo, to: hi, step: step).map { pow(10, $0) }
        }
        var values: [Double] = []
        for k in Int(lo.rounded(.down))...Int(hi.rounded(.up)) {
            for m in [1.0, 2, 5] {
                let v = m * pow(10, Double(k))
                let l = log10(v)
                if l >= lo - 1e-9 && l <= hi + 1e-9 { values.append(v) }
            }
        }
        if values.count >= 3 { return values }
        let a = pow(10, lo), b = pow(10, hi)
        let step = Markup.niceStep(range: b - a, count: 5)
        return Markup.ticks(from: a, to: b, step: step).filter { $0 > 0 }
    }

    func render(into out: inout String, id: Int) {
        // Precondition: validate() passed.
        guard let bins = try? binned() else { return }
        let n = binCount
        var frame = ChartFrame(width: 760, height: 400, left: 70, top: 44, plotWidth: 420, plotHeight: 290)
        frame.height = max(400, frame.top + 20 * Double(series.count) + 16)
        frame.open(into: &out, title: title, kind: "histogram")
        frame.plotArea(into: &out)

        func height(_ count: Int, _ s: Int) -> Double {
            switch scale {
            case .count: return Double(count)
            case .fraction: return series[s].scores.isEmpty ? 0 : Double(count) / Double(series[s].scores.count)
            }
        }
        var top = 0.0
        for s in series.indices { for c in bins.counts[s] { top = max(top, height(c, s)) } }
        // y axis: nice ticks from 0 to a nice ceiling.
        var step = Markup.niceStep(range: max(top, 1e-12), count: 5)
        if scale == .count { step = max(step, 1) }
        let yMax = max((top / step - 1e-9).rounded(.up), 1) * step
        let yDigits = Markup.digits(forStep: step)
        let yTicks = Markup.ticks(from: 0, to: yMax, step: step).map { (position: $0 / yMax, label: Markup.fixed($0, digits: yDigits)) }
        // x axis: nice ticks over lo...hi (logarithmic: see logTicks).
        let xTicks: [(position: Double, label: String)]
        func position(_ v: Double) -> Double { (v - bins.lo) / (bins.hi - bins.lo) }
        if logarithmicX {
            xTicks = Self.logTicks(lo: bins.lo, hi: bins.hi).map { (position: position(log10($0)), label: Markup.short($0)) }
        } else {
            let xStep = Markup.niceStep(range: bins.hi - bins.lo, count: 6)
            xTicks = Markup.ticks(from: bins.lo, to: bins.hi, step: xStep).map {
                (position: position($0), label: Markup.fixed($0, digits: Markup.digits(forStep: xStep)))
            }
        }
        frame.xAxis(into: &out, ticks: xTicks, title: logarithmicX ? xLabel + " (log scale)" : xLabel)
        frame.yAxis(into: &out, ticks: yTicks, title: scale == .count ? "count" : "fraction of series")

        let binWidth = frame.plotWidth / Double(n)
        for (s, one) in series.enumerated() {
            let color = Markup.seriesColor(s)
            out += "<g class=\"series\" data-series=\"\(s)\" fill=\"\(color)\" fill-opacity=\"0.45\" stroke=\"\(color)\" stroke-width=\"1\">\n"
            for (i, count) in bins.counts[s].enumerated() where count > 0 {
                let h = height(count, s) / yMax * frame.plotHeight
                let x = frame.left + Double(i) * binWidth
                let a = bins.edge(i, of: n), b = bins.edge(i + 1, of: n)
                let (ea, eb) = logarithmicX ? (pow(10, a), pow(10, b)) : (a, b)
                let share = Markup.fixed(100 * Double(count) / Double(one.scores.count), digits: 1)
                let interval = "[\(Markup.short(ea)), \(Markup.short(eb))\(i == n - 1 ? "]" : ")")"
                out += "<rect class=\"bar\" data-bin=\"\(i)\" data-count=\"\(count)\" x=\"\(Markup.c(x))\" y=\"\(Markup.c(frame.bottom - h))\" width=\"\(Markup.c(binWidth))\" height=\"\(Markup.c(h))\">"
                out += "<title>\(Markup.escape(one.name)) \(interval): \(count) (\(share)%)</title></rect>\n"
            }
            out += "</g>\n"
        }
        // Legend.
        out += "<g class=\"legend\">\n"
        var y = frame.top + 8
        for (s, one) in series.enumerated() {
            let color = Markup.seriesColor(s)
            let label = "\(one.name) (n = \(one.scores.count))"
            out += "<g><title>\(Markup.escape(label))</title><rect x=\"\(Markup.c(frame.legendX))\" y=\"\(Markup.c(y - 6))\" width=\"20\" height=\"12\" fill=\"\(color)\" fill-opacity=\"0.45\" stroke=\"\(color)\" stroke-width=\"1\"/>"
            out += "<text x=\"\(Markup.c(frame.legendX + 28))\" y=\"\(Markup.c(y))\" dy=\"4\">\(Markup.escape(Markup.truncated(label, to: 32)))</text></g>\n"
            y += 20
        }
        out += "</g>\n"
        frame.close(into: &out)
    }
}
