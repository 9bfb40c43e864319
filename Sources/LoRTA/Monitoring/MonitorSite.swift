import Foundation

/// One place a ``Monitor`` watches: an observation point reduced to one row per input
/// (mean-pooled over the input's tokens, its first token, or its last real token).
public struct MonitorSite: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// Where in the model.
    public let point: ObservationPoint
    /// How an input's token activations become one row (never ``StatisticsCollector/Reduction/tokens``).
    public let reduction: StatisticsCollector.Reduction

    /// - Throws: ``ObservationError/invalidPoint(_:)`` for the per-token reduction (a monitor
    ///   scores inputs, so it needs one row per input).
    public init(point: ObservationPoint, reduction: StatisticsCollector.Reduction) throws(ObservationError) {
        guard reduction != .tokens else {
            throw .invalidPoint("\(point): a monitor needs one row per input (reduction mean, first or last), not tokens")
        }
        self.point = point
        self.reduction = reduction
    }

    /// `"layer.5.output:mean"`: the point's name and the reduction's.
    public var description: String { "\(point):\(reduction.rawValue)" }

    /// Parses ``description``'s form.
    /// - Throws: ``ObservationError/invalidPoint(_:)``.
    public init(parsing text: String) throws(ObservationError) {
        guard let colon = text.lastIndex(of: ":"),
              let reduction = StatisticsCollector.Reduction(rawValue: String(text[text.index(after: colon)...])) else {
            throw .invalidPoint("\"\(text)\" is not \"<point>:<reduction>\" (reduction mean, first or last)")
        }
        try self.init(point: ObservationPoint(parsing: String(text[..<colon])), reduction: reduction)
    }

    /// Every point of `shape` (``ObservationPoint/all(_:)``) with each reduction, point-major.
    /// - Throws: ``ObservationError/invalidPoint(_:)`` for the per-token reduction or no reduction.
    public static func all(_ shape: ObservationShape, reductions: [StatisticsCollector.Reduction]) throws(ObservationError) -> [MonitorSite] {
        guard !reductions.isEmpty else { throw .invalidPoint("no reduction") }
        var out: [MonitorSite] = []
        for p in ObservationPoint.all(shape) {
            for r in reductions { out.append(try MonitorSite(point: p, reduction: r)) }
        }
        return out
    }

    public static func < (a: Self, b: Self) -> Bool {
        a.point != b.point ? a.point < b.point : a.reduction.rawValue < b.reduction.rawValue
    }
}

/// Records, for each input a forward shows it, one row per ``MonitorSite`` (float32, in input
/// order), so that a ``Monitor`` can score the inputs once the pass is over.
///
/// Memory: `inputs × Σ site widths × 4` bytes, checked against the ``MemoryBudget`` before
/// every batch is appended.
public final class SiteRowRecorder: ActivationObserver {
    /// The sites recorded, sorted.
    public let sites: [MonitorSite]
    public let observationPoints: Set<ObservationPoint>
    /// Columns of each site.
    public let widths: [MonitorSite: Int]
    private var rows: [MonitorSite: [Float]] = [:]
    private let reductionsByPoint: [ObservationPoint: [MonitorSite]]
    private let bytesPerInput: Int

    /// - Throws: ``ObservationError/invalidPoint(_:)`` for no site or a point the model does
    ///   not have.
    public init(sites: [MonitorSite], shape: ObservationShape) throws {
        guard !sites.isEmpty else { throw ObservationError.invalidPoint("a monitor needs at least one site") }
        var widths: [MonitorSite: Int] = [:]
        var byPoint: [ObservationPoint: [MonitorSite]] = [:]
        for s in Set(sites).sorted() {
            try s.point.validate(for: shape)
            widths[s] = s.point.width(in: shape)
            byPoint[s.point, default: []].append(s)
        }
        self.sites = Set(sites).sorted()
        self.widths = widths
        self.reductionsByPoint = byPoint
        self.observationPoints = Set(byPoint.keys)
        self.bytesPerInput = widths.values.reduce(0, +) * MemoryLayout<Float>.stride
        for s in self.sites { rows[s] = [] }
    }

    /// Inputs recorded so far.
    public var inputCount: Int {
        guard let s = sites.first, let w = widths[s], w > 0 else { return 0 }
        return (rows[s]?.count ?? 0) / w
    }

    public func observe(_ view: ActivationView) throws {
        guard let sitesHere = reductionsByPoint[view.point] else { return }
        if view.point == sites.first?.point {
            // Once per batch: the rows of every site for the inputs so far and this batch.
            try MemoryBudget.check(bytes: MemoryBudget.byteCount(UInt8.self, inputCount + view.batch.count, bytesPerInput),
                                   purpose: "the monitor's rows of \(inputCount + view.batch.count) inputs at \(sites.count) sites")
        }
        for site in sitesHere {
            let r: Tensor
            switch site.reduction {
            case .meanPooled: r = try view.meanPooled()
            case .firstToken: r = view.firstTokenRows()
            case .lastToken: r = view.lastTokenRows()
            case .tokens: continue  // excluded by MonitorSite
            }
            r.withUnsafeBufferPointer { rows[site]!.append(contentsOf: $0) }
        }
    }

    /// The rows of `site` (inputs × width), or nil for a site not recorded.
    public func matrix(_ site: MonitorSite) throws -> Tensor? {
        guard let values = rows[site], let w = widths[site] else { return nil }
        return try Tensor(values, shape: [values.count / w, w])
    }

    /// Replaces each site's rows by `combine(rows)` (in site order), e.g. the rows of every
    /// process of a sharded pass, concatenated in rank order (`lorta-mpi monitor-fit`): the
    /// recorder then holds what one pass over all the inputs would have recorded.
    /// - Throws: ``ObservationError/invalidPoint(_:)`` when a result is not whole rows or the sites
    ///   end up with different input counts (nothing is changed then), and what `combine` throws.
    public func combineRows(_ combine: ([Float]) throws -> [Float]) throws {
        var combined: [MonitorSite: [Float]] = [:]
        var inputs: Int? = nil
        for site in sites {
            let w = widths[site] ?? 1, values = try combine(rows[site] ?? [])
            guard w > 0, values.count % w == 0, inputs == nil || inputs == values.count / w else {
                throw ObservationError.invalidPoint("combined rows of \(site): \(values.count) values for width \(w)"
                                                    + (inputs.map { " and \($0) inputs" } ?? ""))
            }
            inputs = values.count / w
            combined[site] = values
        }
        rows = combined
    }

    /// The rows of `site` whose input index satisfies `keep`.
    func matrix(_ site: MonitorSite, keeping keep: (Int) -> Bool) throws -> Tensor {
        let values = rows[site] ?? [], w = widths[site] ?? 1
        var out: [Float] = []
        for i in 0..<(values.count / w) where keep(i) { out.append(contentsOf: values[(i * w)..<((i + 1) * w)]) }
        return try Tensor(out, shape: [out.count / w, w])
    }
}
