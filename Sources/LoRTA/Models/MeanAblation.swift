import Foundation

// Circuits, part 1: the components of a model and mean ablation (docs/math.md §8).
//
//   component                 activation a_t (per token t)          ablated (strength s)
//   attention head (l, h)     C[t, h·d_h ..< (h+1)·d_h]  (d_h)      a_t + s(μ − a_t), before Wo and o_proj's adapter
//   MLP (l)                   M_t = S2_t − A_t           (d)        S2_t = A_t + M_t + s(μ − M_t)
//
// The forward applies it in BertBlock.swift (`layerForward`), one place for every caller.

/// Errors of model components, mean ablation and attribution patching.
public enum CircuitError: Error, Equatable, CustomStringConvertible {
    /// Text that names no component, or a component the model does not have.
    case invalidComponent(String)
    /// A component is to be ablated (or attributed) but has no mean.
    case missingMean(component: String)
    /// A mean vector of the wrong width.
    case meanWidthMismatch(component: String, expected: Int, actual: Int)
    /// A mean vector with a NaN or infinite entry.
    case nonFiniteMean(component: String, index: Int)
    /// An ablation made for another model shape.
    case shapeMismatch(expected: ObservationShape, actual: ObservationShape)
    /// An ablation strength that is NaN or infinite.
    case invalidStrength(Float)
    /// A monitor without the mean-pooled site a component's mean is read from.
    case monitorLacksSite(String)
    /// A ``CircuitRanking`` by separations or onsets without those values.
    case missingRankingValues(CircuitRanking.Order)
    /// Target classes: another count than the batch has, or a class the head does not have.
    case invalidTargetClass(String)

    public var description: String {
        switch self {
        case .invalidComponent(let r): return "invalid model component: \(r)"
        case .missingMean(let c): return "no mean for component \(c)"
        case .meanWidthMismatch(let c, let e, let a): return "the mean of \(c) has \(a) values, expected \(e)"
        case .nonFiniteMean(let c, let i): return "the mean of \(c) is not finite at index \(i)"
        case .shapeMismatch(let e, let a):
            return "ablation made for \(a.layerCount) layers × \(a.headCount) heads (d = \(a.hiddenSize), d_h = \(a.headDimension)), model has \(e.layerCount) layers × \(e.headCount) heads (d = \(e.hiddenSize), d_h = \(e.headDimension))"
        case .invalidStrength(let s): return "ablation strength \(s) is not finite"
        case .monitorLacksSite(let s): return "the monitor has no site \(s) (fit it with the mean reduction at that point)"
        case .invalidTargetClass(let r): return "invalid target class: \(r)"
        case .missingRankingValues(let order): return "a ranking by \(order) needs the \(order) values of the components"
        }
    }
}

/// A part of a model whose contribution can be ablated: one attention head or one MLP block.
///
/// Its activation, per token: for a head, its `d_h` columns of the attention context before the
/// output projection (``ObservationPoint/attentionHead(layer:head:)``); for an MLP, what it adds
/// to the residual stream, `d` columns (``ObservationPoint/mlpOutput(layer:)``; BERT: `S2 − A`).
public enum ModelComponent: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// Head `head` of the self-attention of block `layer`.
    case attentionHead(layer: Int, head: Int)
    /// The MLP (feed-forward) of block `layer`.
    case mlp(layer: Int)

    /// The block the component belongs to.
    public var layer: Int {
        switch self {
        case .attentionHead(let l, _), .mlp(let l): return l
        }
    }

    /// The observation point whose activations are this component's.
    public var observationPoint: ObservationPoint {
        switch self {
        case .attentionHead(let l, let h): return .attentionHead(layer: l, head: h)
        case .mlp(let l): return .mlpOutput(layer: l)
        }
    }

    /// `"layer.3.attention.head.5"` or `"layer.3.mlp"` (stable names for files and reports).
    public var description: String {
        switch self {
        case .attentionHead(let l, let h): return "layer.\(l).attention.head.\(h)"
        case .mlp(let l): return "layer.\(l).mlp"
        }
    }

    /// Parses ``description``'s form.
    /// - Throws: ``CircuitError/invalidComponent(_:)`` for any other text.
    public init(parsing text: String) throws(CircuitError) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        if parts.count == 3, parts[0] == "layer", parts[2] == "mlp", let l = Int(parts[1]), l >= 0 {
            self = .mlp(layer: l)
        } else if parts.count == 5, parts[0] == "layer", parts[2] == "attention", parts[3] == "head",
                  let l = Int(parts[1]), let h = Int(parts[4]), l >= 0, h >= 0 {
            self = .attentionHead(layer: l, head: h)
        } else {
            throw .invalidComponent("\"\(text)\" is not \"layer.L.attention.head.H\" or \"layer.L.mlp\"")
        }
    }

    /// Every component of a model, sorted: per layer its heads in order, then its MLP.
    public static func all(_ shape: ObservationShape) -> [ModelComponent] {
        (0..<shape.layerCount).flatMap { l in
            (0..<shape.headCount).map { ModelComponent.attentionHead(layer: l, head: $0) } + [.mlp(layer: l)]
        }
    }

    /// Forward order: by layer, within a layer the heads ascending, then the MLP.
    public static func < (a: Self, b: Self) -> Bool { a.observationPoint < b.observationPoint }

    /// Checks the component against a model's shape.
    /// - Throws: ``CircuitError/invalidComponent(_:)`` when the layer or head does not exist.
    public func validate(for shape: ObservationShape) throws(CircuitError) {
        do { try observationPoint.validate(for: shape) } catch {
            guard case .invalidPoint(let r) = error else { throw .invalidComponent("\(self)") }
            throw .invalidComponent(r.replacingOccurrences(of: "\(observationPoint)", with: "\(self)"))
        }
    }

    /// Columns per token of the component's activation: `d_h` for a head, `d` for an MLP.
    public func width(in shape: ObservationShape) -> Int { observationPoint.width(in: shape) }
}

/// Mean ablation of chosen components in a forward: each ablated component's activation `a_t`
/// is replaced, at every token (padding included; padded positions never reach the real tokens
/// or the pooled output), by `a_t + s·(μ − a_t)`, with `μ` the component's mean and `s` the
/// ``strength`` (1: replaced by the mean; 0: unchanged).
///
/// Pass it to ``BertModel/forward(_:adapter:recordingActivations:observer:ablation:)`` or
/// ``BertModel/logits(_:adapter:head:ablation:)``; for the causal LM to
/// ``LlamaModel/nextTokenLogits(_:adapter:observer:ablation:)``,
/// ``LlamaModel/forward(_:cache:logits:adapter:ablation:)``, ``LlamaModel/evaluate(_:adapter:ablation:batchSize:progress:)``
/// or ``CausalLanguageModel/ablation`` (generation). An ablated head's context columns are
/// replaced before the attention output projection, so the projection *and* its adapter read the
/// ablated context; an ablated MLP makes `S2 = A + M'` (`M'` the ablated MLP output; Llama:
/// `y = m + M'`), so the output LayerNorm reads `A + μ` at strength 1.
///
/// ```swift
/// var ablation = try MeanAblation(monitor: monitor)          // means of every component
/// ablation.ablated = [.attentionHead(layer: 3, head: 5)]
/// let z = try model.logits(batch, adapter: adapter, head: head, ablation: ablation)
/// ```
public struct MeanAblation: Sendable {
    /// The model shape the means were checked against.
    public let shape: ObservationShape
    /// The mean activation of each component that has one (width ``ModelComponent/width(in:)``).
    public let means: [ModelComponent: [Float]]
    /// The components the forward ablates; each must have a mean (checked by the forward).
    public var ablated: Set<ModelComponent>
    /// How far each ablated activation moves towards its mean: `a' = a + strength·(μ − a)`.
    /// 1 (the default) is full mean ablation (`a' = μ` exactly), 0 no change; any finite value
    /// is allowed (small values give directional finite differences).
    public var strength: Float

    /// - Parameters:
    ///   - means: a mean vector per component (others cannot be ablated).
    ///   - shape: the model's shape (``BertConfiguration/observationShape``).
    ///   - ablated: the components to ablate (default none).
    ///   - strength: see ``strength``.
    /// - Throws: ``CircuitError`` for a component the model does not have, a mean of the wrong
    ///   width or not finite, an ablated component without a mean, or a non-finite strength.
    public init(means: [ModelComponent: [Float]], shape: ObservationShape, ablated: Set<ModelComponent> = [],
                strength: Float = 1) throws(CircuitError) {
        for (c, mu) in means {
            try c.validate(for: shape)
            guard mu.count == c.width(in: shape) else {
                throw .meanWidthMismatch(component: "\(c)", expected: c.width(in: shape), actual: mu.count)
            }
            if let i = mu.firstIndex(where: { !$0.isFinite }) { throw .nonFiniteMean(component: "\(c)", index: i) }
        }
        self.shape = shape
        self.means = means
        self.ablated = ablated
        self.strength = strength
        try validate(for: shape)
    }

    /// Means read from a fitted ``Monitor``: for each component `c`, the trusted mean of the
    /// mean-pooled rows at `c`'s point (`monitor.statistics[MonitorSite(point: c.observationPoint,
    /// reduction: .meanPooled)].mean`), i.e. the average over trusted inputs of each input's
    /// average over its real tokens, rounded to Float.
    /// - Parameters:
    ///   - monitor: a monitor fitted with the `mean` reduction at every component's point.
    ///   - components: the components to read means for (nil: every component of the monitor's shape).
    ///   - ablated: the components to ablate (default none).
    ///   - strength: see ``strength``.
    /// - Throws: ``CircuitError/monitorLacksSite(_:)`` when the monitor has no mean-pooled site
    ///   (or no trusted row) for a component, and the errors of ``init(means:shape:ablated:strength:)``.
    public init(monitor: Monitor, components: [ModelComponent]? = nil, ablated: Set<ModelComponent> = [],
                strength: Float = 1) throws {
        var means: [ModelComponent: [Float]] = [:]
        for c in components ?? ModelComponent.all(monitor.shape) {
            try c.validate(for: monitor.shape)
            let site = try MonitorSite(point: c.observationPoint, reduction: .meanPooled)
            guard let stats = monitor.statistics[site], stats.count > 0 else {
                throw CircuitError.monitorLacksSite("\(site)")
            }
            means[c] = stats.mean.map { Float($0) }
        }
        try self.init(means: means, shape: monitor.shape, ablated: ablated, strength: strength)
    }

    /// Checks the ablation against a model's shape: same shape, every ablated component has a
    /// mean, finite strength.
    /// - Throws: ``CircuitError``.
    public func validate(for modelShape: ObservationShape) throws(CircuitError) {
        guard modelShape == shape else { throw .shapeMismatch(expected: modelShape, actual: shape) }
        guard strength.isFinite else { throw .invalidStrength(strength) }
        for c in ablated.sorted() {
            try c.validate(for: shape)
            guard means[c] != nil else { throw .missingMean(component: "\(c)") }
        }
    }

    // MARK: - applied by the forward (BertBlock.layerForward)

    /// `a ← a + s(μ − a)` on `rows` rows of `width` columns at `a` (leading dimension `ld`);
    /// exactly `μ` when `s` = 1.
    static func moveTowardsMean(_ a: UnsafeMutablePointer<Float>, rows: Int, width: Int, ld: Int,
                                mean mu: [Float], strength s: Float) {
        mu.withUnsafeBufferPointer { m in
            for i in 0..<rows {
                let r = a + i * ld
                if s == 1 {
                    r.update(from: m.baseAddress!, count: width)
                } else {
                    for j in 0..<width { r[j] += s * (m[j] - r[j]) }
                }
            }
        }
    }

    /// Ablates the heads of layer `l` in the context `[rows, ld]` (head `h` at column `h·d_h`).
    func ablateHeads(layer l: Int, context: UnsafeMutablePointer<Float>, rows: Int, ld: Int) {
        for h in 0..<shape.headCount where ablated.contains(.attentionHead(layer: l, head: h)) {
            Self.moveTowardsMean(context + h * shape.headDimension, rows: rows, width: shape.headDimension, ld: ld,
                                 mean: means[.attentionHead(layer: l, head: h)]!, strength: strength)
        }
    }

    /// The components an attribution studies (`components`, or every component with a mean,
    /// sorted), after checking the means against `shape` (the ablated set and strength do not
    /// matter) and that each component exists and has a mean.
    /// - Throws: ``CircuitError``.
    func attributedComponents(_ components: [ModelComponent]?, shape modelShape: ObservationShape) throws(CircuitError) -> [ModelComponent] {
        var plain = self
        plain.ablated = []
        plain.strength = 1
        try plain.validate(for: modelShape)
        let comps = components ?? means.keys.sorted()
        for comp in comps {
            try comp.validate(for: shape)
            guard means[comp] != nil else { throw .missingMean(component: "\(comp)") }
        }
        return comps
    }

    /// True when the MLP of layer `l` is ablated.
    func ablatesMLP(layer l: Int) -> Bool { ablated.contains(.mlp(layer: l)) }
}
