import Foundation
import CKernels

/// The shape facts observation points are checked against: layers, attention heads, widths.
/// ``BertConfiguration/observationShape`` and ``LlamaConfiguration/observationShape`` give it.
public struct ObservationShape: Sendable, Equatable {
    public let layerCount: Int
    /// Attention (query) heads per layer.
    public let headCount: Int
    /// Width of a layer output (the residual stream).
    public let hiddenSize: Int
    /// Width of one head's attention context.
    public let headDimension: Int

    public init(layerCount: Int, headCount: Int, hiddenSize: Int, headDimension: Int) {
        self.layerCount = layerCount
        self.headCount = headCount
        self.hiddenSize = hiddenSize
        self.headDimension = headDimension
    }
}

/// Errors of observation points and collectors.
public enum ObservationError: Error, Equatable, CustomStringConvertible {
    /// A point the model does not have, text that names no point, or a collector used in a way
    /// it cannot be.
    case invalidPoint(String)
    /// Labels were given for another number of sequences than the batch has.
    case labelCountMismatch(expected: Int, actual: Int)

    public var description: String {
        switch self {
        case .invalidPoint(let r): return "invalid observation point: \(r)"
        case .labelCountMismatch(let e, let a): return "\(a) labels for a batch of \(e) sequences"
        }
    }
}

/// A place in a model (BERT encoder or Llama decoder) whose activations an observer can see
/// during a forward.
public enum ObservationPoint: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The output of block `layer` — BERT: after its second LayerNorm; Llama: the residual
    /// stream after the block — `d` columns per token.
    case layerOutput(layer: Int)
    /// The attention context of one head of block `layer` (softmax(QKᵀ/√d_h) V for that head,
    /// before the output projection): `d_h` columns per token.
    case attentionHead(layer: Int, head: Int)
    /// What the MLP of block `layer` adds to the residual stream — BERT: `S2 − A`, the second
    /// dense layer's output with its bias, before the residual add and LayerNorm; Llama: the
    /// down projection's output (with its adapter) — `d` columns per token.
    case mlpOutput(layer: Int)

    /// The block the point belongs to.
    public var layer: Int {
        switch self {
        case .layerOutput(let l), .attentionHead(let l, _), .mlpOutput(let l): return l
        }
    }

    /// `"layer.3.output"`, `"layer.3.attention.head.5"` or `"layer.3.mlp.output"` (stable names
    /// for files and reports).
    public var description: String {
        switch self {
        case .layerOutput(let l): return "layer.\(l).output"
        case .attentionHead(let l, let h): return "layer.\(l).attention.head.\(h)"
        case .mlpOutput(let l): return "layer.\(l).mlp.output"
        }
    }

    /// Parses ``description``'s form.
    /// - Throws: ``ObservationError/invalidPoint(_:)`` for any other text.
    public init(parsing text: String) throws(ObservationError) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        if parts.count == 3, parts[0] == "layer", parts[2] == "output", let l = Int(parts[1]), l >= 0 {
            self = .layerOutput(layer: l)
        } else if parts.count == 5, parts[0] == "layer", parts[2] == "attention", parts[3] == "head",
                  let l = Int(parts[1]), let h = Int(parts[4]), l >= 0, h >= 0 {
            self = .attentionHead(layer: l, head: h)
        } else if parts.count == 4, parts[0] == "layer", parts[2] == "mlp", parts[3] == "output", let l = Int(parts[1]), l >= 0 {
            self = .mlpOutput(layer: l)
        } else {
            throw .invalidPoint("\"\(text)\" is not \"layer.L.output\", \"layer.L.attention.head.H\" or \"layer.L.mlp.output\"")
        }
    }

    /// Every layer output of a model, in layer order.
    public static func layerOutputs(_ c: ObservationShape) -> [ObservationPoint] {
        (0..<c.layerCount).map { .layerOutput(layer: $0) }
    }

    /// Every attention head of a model, layer-major.
    public static func attentionHeads(_ c: ObservationShape) -> [ObservationPoint] {
        (0..<c.layerCount).flatMap { l in (0..<c.headCount).map { .attentionHead(layer: l, head: $0) } }
    }

    /// Every MLP output of a model, in layer order.
    public static func mlpOutputs(_ c: ObservationShape) -> [ObservationPoint] {
        (0..<c.layerCount).map { .mlpOutput(layer: $0) }
    }

    /// Every point a model offers (layer outputs, heads, MLP outputs), sorted.
    public static func all(_ c: ObservationShape) -> [ObservationPoint] {
        (layerOutputs(c) + attentionHeads(c) + mlpOutputs(c)).sorted()
    }

    /// The points a comma-separated list names, sorted and without repeats: point names
    /// (``description``'s form) and the shorthands `layers` (every layer output), `heads` (every
    /// head), `mlp` (every MLP output) and `all` (all three). Each point is checked against `shape`.
    /// - Throws: ``ObservationError/invalidPoint(_:)`` for an unknown name, a point the model does
    ///   not have, or an empty list.
    public static func list(_ text: String, shape: ObservationShape) throws(ObservationError) -> [ObservationPoint] {
        var out = Set<ObservationPoint>()
        for part in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !part.isEmpty {
            switch part {
            case "layers": out.formUnion(layerOutputs(shape))
            case "heads": out.formUnion(attentionHeads(shape))
            case "mlp": out.formUnion(mlpOutputs(shape))
            case "all": out.formUnion(all(shape))
            default:
                let p = try ObservationPoint(parsing: part)
                try p.validate(for: shape)
                out.insert(p)
            }
        }
        guard !out.isEmpty else { throw .invalidPoint("no observation points in \"\(text)\"") }
        return out.sorted()
    }

    public static func < (a: Self, b: Self) -> Bool {
        // Within a layer: the heads, the MLP output, the layer output (the order of a forward).
        func key(_ p: Self) -> (Int, Int) {
            switch p {
            case .attentionHead(let l, let h): return (l, h)
            case .mlpOutput(let l): return (l, Int.max - 1)
            case .layerOutput(let l): return (l, Int.max)
            }
        }
        return key(a) < key(b)
    }

    /// Checks the point against a model's shape.
    /// - Throws: ``ObservationError/invalidPoint(_:)`` when the layer or head does not exist.
    public func validate(for c: ObservationShape) throws(ObservationError) {
        guard layer < c.layerCount else {
            throw .invalidPoint("\(self): the model has \(c.layerCount) layers")
        }
        if case .attentionHead(_, let h) = self, h >= c.headCount {
            throw .invalidPoint("\(self): the model has \(c.headCount) heads")
        }
    }

    /// Columns per token at this point.
    public func width(in c: ObservationShape) -> Int {
        switch self {
        case .layerOutput, .mlpOutput: return c.hiddenSize
        case .attentionHead: return c.headDimension
        }
    }
}

/// A borrowed, read-only view of one observation point's activations for one batch.
///
/// The view points into the forward's own buffers (no copy is made to create it); it is valid
/// only during ``ActivationObserver/observe(_:)``. Row `b·T + t` holds token `t` of
/// sequence `b`; padded tokens (mask 0) are present and should usually be skipped — the
/// reductions below do that.
public struct ActivationView {
    /// Where the activations come from.
    public let point: ObservationPoint
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

    /// One row per sequence: its last real token (the last position whose mask is 1; the
    /// position a causal model predicts the next token from), `count × width`. A sequence
    /// without real tokens gives zeros.
    public func lastTokenRows() -> Tensor {
        var out = Tensor(uninitializedShape: [batch.count, width])
        let dst = out.mutablePointer
        let T = batch.sequenceLength
        for b in 0..<batch.count {
            if let t = (0..<T).last(where: { batch.attentionMask[b * T + $0] != 0 }) {
                (dst + b * width).update(from: base + (b * T + t) * leadingDimension, count: width)
            } else {
                (dst + b * width).update(repeating: 0, count: width)
            }
        }
        return out
    }
}

/// Receives activations during ``BertModel/forward(_:adapter:recordingActivations:observer:)``
/// or ``LlamaModel/observe(_:adapter:observer:)``.
///
/// Only the points in ``observationPoints`` are visited; with no observer (or an empty set)
/// the forward does no extra work and copies nothing. `observe` is called synchronously on
/// the forward's thread, in layer order (within a layer: heads ascending, the MLP output, then the layer output).
public protocol ActivationObserver: AnyObject {
    /// The points to observe.
    var observationPoints: Set<ObservationPoint> { get }
    /// Called once per observed point per forward. The view is valid only during the call.
    /// An error thrown here stops the forward and is rethrown by it.
    func observe(_ view: ActivationView) throws
}

/// Streaming ``ActivationStatistics`` of chosen observation points over every forward it
/// observes: the input to the detectors (Mahalanobis, spectral, QUE, pseudo-class).
///
/// ```swift
/// let shape = model.configuration.observationShape
/// let collector = try StatisticsCollector(points: ObservationPoint.layerOutputs(shape), shape: shape,
///                                         reduction: .meanPooled)
/// for batch in batches { _ = try model.forward(batch.tokens, adapter: adapter, observer: collector) }
/// let stats = collector.statistics[.layerOutput(layer: 5)]!
/// ```
/// Set ``labels`` before a forward to keep per-label statistics (one label per sequence; only
/// with a per-sequence reduction).
public final class StatisticsCollector: ActivationObserver {
    /// How a batch's activations become rows of the statistics.
    public enum Reduction: String, Sendable, CaseIterable {
        /// One row per real token.
        case tokens
        /// One row per sequence: the mean over its real tokens.
        case meanPooled = "mean"
        /// One row per sequence: its first token ([CLS]).
        case firstToken = "first"
        /// One row per sequence: its last real token (for causal models).
        case lastToken = "last"
    }

    public let reduction: Reduction
    public let observationPoints: Set<ObservationPoint>
    /// The statistics so far, per point. (Settable inside the package: the distributed layer
    /// replaces them by the statistics merged across ranks.)
    public package(set) var statistics: [ObservationPoint: ActivationStatistics]
    /// Labels of the next forward's sequences (one per sequence), or nil for unlabelled rows.
    public var labels: [Int]?

    /// - Throws: ``ObservationError/invalidPoint(_:)`` for no points or a point the model
    ///   does not have.
    public init(points: [ObservationPoint], shape c: ObservationShape, reduction: Reduction = .meanPooled) throws {
        guard !points.isEmpty else { throw ObservationError.invalidPoint("no observation points") }
        var stats: [ObservationPoint: ActivationStatistics] = [:]
        for p in points {
            try p.validate(for: c)
            stats[p] = try ActivationStatistics(dimension: p.width(in: c))
        }
        self.reduction = reduction
        self.observationPoints = Set(points)
        self.statistics = stats
    }

    /// Writes one statistics file per point into `directory` (created if needed), named
    /// `<point>.safetensors` (``ActivationStatistics/write(to:)``, each file atomically), in
    /// point order.
    /// - Returns: the files written.
    /// - Throws: ``StatisticsFileError`` and file-system errors.
    @discardableResult
    public func write(to directory: URL) throws -> [URL] {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var written: [URL] = []
        for (point, stats) in statistics.sorted(by: { $0.key < $1.key }) {
            let url = directory.appendingPathComponent("\(point).safetensors")
            try stats.write(to: url)
            written.append(url)
        }
        return written
    }

    public func observe(_ view: ActivationView) throws {
        let rows: Tensor
        switch reduction {
        case .tokens: rows = view.tokenRows()
        case .meanPooled: rows = try view.meanPooled()
        case .firstToken: rows = view.firstTokenRows()
        case .lastToken: rows = view.lastTokenRows()
        }
        guard var s = statistics[view.point] else { return }
        if let labels {
            guard reduction != .tokens else {
                throw ObservationError.invalidPoint("per-label statistics need one row per sequence (reduction mean, first or last), not tokens")
            }
            guard labels.count == view.batch.count else {
                throw ObservationError.labelCountMismatch(expected: view.batch.count, actual: labels.count)
            }
            try s.update(with: rows, labels: labels)
        } else {
            try s.update(with: rows)
        }
        statistics[view.point] = s
    }
}

extension ActivationObserver {
    /// Shows the observed points of layer `l`: each observed head's columns of `context`
    /// (`n × ldContext`, head `h` at column `h·d_h`), the MLP output (`n × d`, nil when no MLP
    /// point is observed), then the layer output (`n × d`).
    func notify(layer l: Int, batch: TokenBatch, context: UnsafePointer<Float>, ldContext: Int,
                mlpOutput: UnsafePointer<Float>?, output: UnsafePointer<Float>, shape c: ObservationShape) throws {
        let points = observationPoints
        for h in 0..<c.headCount where points.contains(.attentionHead(layer: l, head: h)) {
            try observe(ActivationView(point: .attentionHead(layer: l, head: h), batch: batch, width: c.headDimension,
                                       base: context + h * c.headDimension, leadingDimension: ldContext))
        }
        if let mlpOutput, points.contains(.mlpOutput(layer: l)) {
            try observe(ActivationView(point: .mlpOutput(layer: l), batch: batch, width: c.hiddenSize,
                                       base: mlpOutput, leadingDimension: c.hiddenSize))
        }
        if points.contains(.layerOutput(layer: l)) {
            try observe(ActivationView(point: .layerOutput(layer: l), batch: batch, width: c.hiddenSize,
                                       base: output, leadingDimension: c.hiddenSize))
        }
    }
}

extension BertConfiguration {
    /// Layers, heads and widths for observation points.
    public var observationShape: ObservationShape {
        ObservationShape(layerCount: layerCount, headCount: headCount, hiddenSize: hiddenSize, headDimension: headSize)
    }
}

extension LlamaConfiguration {
    /// Layers, (query) heads and widths for observation points.
    public var observationShape: ObservationShape {
        ObservationShape(layerCount: layerCount, headCount: headCount, hiddenSize: hiddenSize, headDimension: headDimension)
    }
}
