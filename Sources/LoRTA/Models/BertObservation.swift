import CKernels

/// A place in the BERT encoder whose activations an observer can see during a forward.
public enum BertObservationPoint: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The output of block `layer` (after its second LayerNorm): `d` columns per token.
    case layerOutput(layer: Int)
    /// The attention context of one head of block `layer` (softmax(QKᵀ/√d_h) V for that head,
    /// before the output projection): `d_h` columns per token.
    case attentionHead(layer: Int, head: Int)

    /// The block the point belongs to.
    public var layer: Int {
        switch self {
        case .layerOutput(let l), .attentionHead(let l, _): return l
        }
    }

    /// `"layer.3.output"` or `"layer.3.attention.head.5"` (stable names for files and reports).
    public var description: String {
        switch self {
        case .layerOutput(let l): return "layer.\(l).output"
        case .attentionHead(let l, let h): return "layer.\(l).attention.head.\(h)"
        }
    }

    /// Parses ``description``'s form.
    /// - Throws: ``BertError/invalidObservationPoint(_:)`` for any other text.
    public init(parsing text: String) throws(BertError) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        if parts.count == 3, parts[0] == "layer", parts[2] == "output", let l = Int(parts[1]), l >= 0 {
            self = .layerOutput(layer: l)
        } else if parts.count == 5, parts[0] == "layer", parts[2] == "attention", parts[3] == "head",
                  let l = Int(parts[1]), let h = Int(parts[4]), l >= 0, h >= 0 {
            self = .attentionHead(layer: l, head: h)
        } else {
            throw .invalidObservationPoint("\"\(text)\" is not \"layer.L.output\" or \"layer.L.attention.head.H\"")
        }
    }

    /// Every layer output of a model, in layer order.
    public static func layerOutputs(_ c: BertConfiguration) -> [BertObservationPoint] {
        (0..<c.layerCount).map { .layerOutput(layer: $0) }
    }

    /// Every attention head of a model, layer-major.
    public static func attentionHeads(_ c: BertConfiguration) -> [BertObservationPoint] {
        (0..<c.layerCount).flatMap { l in (0..<c.headCount).map { .attentionHead(layer: l, head: $0) } }
    }

    public static func < (a: Self, b: Self) -> Bool {
        func key(_ p: Self) -> (Int, Int) {
            switch p {
            case .layerOutput(let l): return (l, -1)
            case .attentionHead(let l, let h): return (l, h)
            }
        }
        return key(a) < key(b)
    }

    /// Checks the point against a model's shape.
    /// - Throws: ``BertError/invalidObservationPoint(_:)`` when the layer or head does not exist.
    public func validate(for c: BertConfiguration) throws(BertError) {
        guard layer < c.layerCount else {
            throw .invalidObservationPoint("\(self): the model has \(c.layerCount) layers")
        }
        if case .attentionHead(_, let h) = self, h >= c.headCount {
            throw .invalidObservationPoint("\(self): the model has \(c.headCount) heads")
        }
    }
}

/// A borrowed, read-only view of one observation point's activations for one batch.
///
/// The view points into the forward's own buffers (no copy is made to create it); it is valid
/// only during ``BertActivationObserver/observe(_:)``. Row `b·T + t` holds token `t` of
/// sequence `b`; padded tokens (mask 0) are present and should usually be skipped — the
/// reductions below do that.
public struct BertActivationView {
    /// Where the activations come from.
    public let point: BertObservationPoint
    /// The batch (ids and attention mask) the forward runs on.
    public let batch: TokenBatch
    /// Columns per token: `d` for a layer output, `d_h` for a head.
    public let width: Int
    let base: UnsafePointer<Float>
    let leadingDimension: Int

    /// Reads token `t` of sequence `b` (`width` floats). Precondition: in range.
    public func withToken<R>(sequence b: Int, position t: Int, _ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        precondition(b >= 0 && b < batch.count && t >= 0 && t < batch.sequenceLength, "token index out of range")
        return try body(UnsafeBufferPointer(start: base + (b * batch.sequenceLength + t) * leadingDimension, count: width))
    }

    /// The rows of the real (unpadded) tokens, in batch order: `tokenCount × width`.
    /// O(tokens · width) copy.
    public func tokenRows() -> Tensor {
        let rows = batch.attentionMask.reduce(0) { $0 + Int($1) }
        var out = Tensor(uninitializedShape: [rows, width])
        let dst = out.mutablePointer
        var k = 0
        for (i, m) in batch.attentionMask.enumerated() where m != 0 {
            (dst + k * width).update(from: base + i * leadingDimension, count: width)
            k += 1
        }
        return out
    }

    /// One row per sequence: the mean over its real tokens (`count × width`), accumulated in
    /// float64 by the same kernel as the model's mean pooling. A sequence without real tokens
    /// gives zeros. O(tokens · width).
    public func meanPooled() throws -> Tensor {
        var out = Tensor(uninitializedShape: [batch.count, width])
        try batch.attentionMask.withUnsafeBufferPointer { m in
            try KernelFailure.check(lt_mean_pool_forward(Int64(batch.count), Int64(batch.sequenceLength), Int64(width), base,
                                               Int64(leadingDimension), m.baseAddress, out.mutablePointer, Int64(width)),
                          "lt_mean_pool_forward (observation)")
        }
        return out
    }

    /// One row per sequence: its first token ([CLS]), `count × width`.
    public func firstTokenRows() -> Tensor {
        var out = Tensor(uninitializedShape: [batch.count, width])
        let dst = out.mutablePointer
        for b in 0..<batch.count {
            (dst + b * width).update(from: base + b * batch.sequenceLength * leadingDimension, count: width)
        }
        return out
    }
}

/// Receives activations during ``BertModel/forward(_:adapter:recordingActivations:observer:)``.
///
/// Only the points in ``observationPoints`` are visited; with no observer (or an empty set)
/// the forward does no extra work and copies nothing. `observe` is called synchronously on
/// the forward's thread, in layer order (within a layer: heads ascending, then the output).
public protocol BertActivationObserver: AnyObject {
    /// The points to observe.
    var observationPoints: Set<BertObservationPoint> { get }
    /// Called once per observed point per forward. The view is valid only during the call.
    /// An error thrown here stops the forward and is rethrown by it.
    func observe(_ view: BertActivationView) throws
}

/// Streaming ``ActivationStatistics`` of chosen observation points over every forward it
/// observes: the input to the detectors (Mahalanobis, spectral, QUE, pseudo-class).
///
/// ```swift
/// let collector = try BertStatisticsCollector(points: BertObservationPoint.layerOutputs(model.configuration),
///                                             model: model.configuration, reduction: .meanPooled)
/// for batch in batches { _ = try model.forward(batch.tokens, adapter: adapter, observer: collector) }
/// let stats = collector.statistics[.layerOutput(layer: 5)]!
/// ```
/// Set ``labels`` before a forward to keep per-label statistics (one label per sequence; only
/// with `.meanPooled` or `.firstToken`).
public final class BertStatisticsCollector: BertActivationObserver {
    /// How a batch's activations become rows of the statistics.
    public enum Reduction: String, Sendable, CaseIterable {
        /// One row per real token.
        case tokens
        /// One row per sequence: the mean over its real tokens.
        case meanPooled = "mean"
        /// One row per sequence: its first token ([CLS]).
        case firstToken = "first"
    }

    public let reduction: Reduction
    public let observationPoints: Set<BertObservationPoint>
    /// The statistics so far, per point.
    public private(set) var statistics: [BertObservationPoint: ActivationStatistics]
    /// Labels of the next forward's sequences (one per sequence), or nil for unlabelled rows.
    public var labels: [Int]?

    /// - Throws: ``BertError/invalidObservationPoint(_:)`` for no points or a point the model
    ///   does not have.
    public init(points: [BertObservationPoint], model c: BertConfiguration, reduction: Reduction = .meanPooled) throws {
        guard !points.isEmpty else { throw BertError.invalidObservationPoint("no observation points") }
        var stats: [BertObservationPoint: ActivationStatistics] = [:]
        for p in points {
            try p.validate(for: c)
            let width: Int
            switch p {
            case .layerOutput: width = c.hiddenSize
            case .attentionHead: width = c.headSize
            }
            stats[p] = try ActivationStatistics(dimension: width)
        }
        self.reduction = reduction
        self.observationPoints = Set(points)
        self.statistics = stats
    }

    public func observe(_ view: BertActivationView) throws {
        let rows: Tensor
        switch reduction {
        case .tokens: rows = view.tokenRows()
        case .meanPooled: rows = try view.meanPooled()
        case .firstToken: rows = view.firstTokenRows()
        }
        guard var s = statistics[view.point] else { return }
        if let labels {
            guard reduction != .tokens else {
                throw BertError.invalidObservationPoint("per-label statistics need one row per sequence (reduction mean or first), not tokens")
            }
            guard labels.count == view.batch.count else {
                throw BertError.labelCountMismatch(expected: view.batch.count, actual: labels.count)
            }
            try s.update(with: rows, labels: labels)
        } else {
            try s.update(with: rows)
        }
        statistics[view.point] = s
    }
}

extension BertModel {
    /// Calls `observer` for the observed points of layer `l` (context and output of the layer's
    /// buffers, before they are reused).
    static func notify(_ observer: BertActivationObserver?, points: Set<BertObservationPoint>, layer l: Int,
                       batch: TokenBatch, context: Tensor, output: Tensor, d: Int, H: Int, dh: Int) throws {
        guard let observer, !points.isEmpty else { return }
        for h in 0..<H where points.contains(.attentionHead(layer: l, head: h)) {
            try observer.observe(BertActivationView(point: .attentionHead(layer: l, head: h), batch: batch, width: dh,
                                                    base: context.pointer + h * dh, leadingDimension: d))
        }
        if points.contains(.layerOutput(layer: l)) {
            try observer.observe(BertActivationView(point: .layerOutput(layer: l), batch: batch, width: d,
                                                    base: output.pointer, leadingDimension: d))
        }
        withExtendedLifetime((context, output)) {}
    }
}
