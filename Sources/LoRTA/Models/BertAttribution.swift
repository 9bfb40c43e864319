import CKernels
import Foundation

// Circuits, part 2: attribution patching (Syed et al. 2023) on the BERT encoder (docs/math.md §8).
//
//   forward (recorded, no ablation)      backward (BertBlock.layerBackward, one pass for the batch)
//   z = head(pool(encoder(x)))            dz = onehot(ŷ) − softmax(z)    (y = log softmax(z)[ŷ])
//   y_b = z_b,ŷ − logsumexp(z_b)          dPooled, dHidden as in BertModel.gradients
//   a_c,t: head context columns / M       per layer: the probe shows dM = dS2 and dC
//   attr_c(x) = Σ_t real (μ_c − a_c,t) · ∂y/∂a_c,t
//
// Inputs of a batch never interact (attention stays within a sequence, LayerNorm within a row),
// so one backward of Σ_b y_b gives every input's own gradient.

/// The attributions of model components for a batch of inputs (``BertModel/attributions(_:adapter:head:means:components:targetClasses:)``).
public struct ComponentAttributions: Sendable {
    /// The components, in the order of each row of ``values``.
    public let components: [ModelComponent]
    /// `values[b][k]`: the attribution of `components[k]` for input `b` — the first-order
    /// estimate of how much ``logProbabilities``[b] changes when the component is mean-ablated.
    public let values: [[Double]]
    /// The class `ŷ` whose log-probability is attributed, per input (the predicted class, the
    /// first one on a tie, unless target classes were given).
    public let classes: [Int]
    /// `y(x) = log softmax(z(x))[ŷ]` per input (the unablated model's).
    public let logProbabilities: [Double]

    /// The attribution of `component` for input `input`, or nil when the component was not
    /// attributed or the input is out of range.
    public func value(input: Int, component: ModelComponent) -> Double? {
        guard values.indices.contains(input), let k = components.firstIndex(of: component) else { return nil }
        return values[input][k]
    }
}

extension BertModel {
    /// Logits `[B, classes]` of the classification head on the mean-pooled embedding of a
    /// forward with mean ablation (``forward(_:adapter:recordingActivations:observer:ablation:)``).
    /// - Parameters:
    ///   - batch: token ids and attention mask (`B × T`).
    ///   - adapter: an ``Adapter`` for ``adapterHost``, or nil.
    ///   - head: the classification head.
    ///   - ablation: the components to ablate; nil gives ``logits(_:adapter:head:)`` bit for bit.
    /// - Throws: ``BertError`` for a bad batch or head, ``AdapterError`` for an adapter of
    ///   another model shape, ``CircuitError`` for a bad ablation.
    public func logits(_ batch: TokenBatch, adapter: (any Adapter)? = nil, head: BertClassificationHead,
                       ablation: MeanAblation?) throws -> Tensor {
        try head.validate(for: configuration)
        let out = try forward(batch, adapter: adapter, ablation: ablation)
        return try Self.headForward(head, pooled: out.pooled, B: batch.count)
    }

    /// Attribution patching (Syed et al. 2023): for every input `x` and component `c`,
    ///
    ///     attr_c(x) = Σ_t (μ_c − a_c,t(x)) · ∂y(x)/∂a_c,t
    ///
    /// summed over the input's real tokens `t` (mask 1), where `a_c,t` is the component's
    /// activation at token `t` (a head's `d_h` context columns before the output projection, an
    /// MLP's output `S2 − A`, `d` columns), `μ_c` its mean, and `y(x) = log softmax(z(x))[ŷ]`
    /// the log-probability the head gives class `ŷ` (the predicted class `argmax z(x)`, or the
    /// target class). It is the first-order (linear) estimate of the change of `y` when `c`
    /// alone is mean-ablated at full strength, i.e. the derivative of `y` along
    /// ``MeanAblation/strength`` at 0.
    ///
    /// One recorded forward without ablation and one backward for the whole batch (the
    /// backward of ``gradients(_:labels:adapter:head:)``, down to the lowest attributed layer);
    /// the adapter is applied in both, its parameter gradients are computed and discarded.
    /// - Parameters:
    ///   - batch: token ids and attention mask (`B × T`).
    ///   - adapter: an ``Adapter`` for ``adapterHost``, or nil.
    ///   - head: the classification head whose log-probability is attributed.
    ///   - means: the components' means (its ``MeanAblation/ablated`` set and strength are ignored).
    ///   - components: the components to attribute, in the order of the result (nil: every
    ///     component with a mean, sorted).
    ///   - targetClasses: one class per input whose log-probability to attribute (nil: each
    ///     input's predicted class).
    /// - Returns: ``ComponentAttributions``: `values[b][k]` for input `b` and `components[k]`.
    /// - Throws: ``BertError`` for a bad batch or head, ``AdapterError`` for an adapter of
    ///   another model shape, ``CircuitError`` for means of another model shape, a component
    ///   without a mean, or bad target classes.
    /// - Complexity: about three forwards' flops (recorded forward and backward) plus
    ///   O(n·d) per attributed component; memory of a recorded forward.
    public func attributions(_ batch: TokenBatch, adapter: (any Adapter)? = nil, head: BertClassificationHead,
                             means: MeanAblation, components: [ModelComponent]? = nil,
                             targetClasses: [Int]? = nil) throws -> ComponentAttributions {
        let c = configuration, shape = c.observationShape
        try head.validate(for: c)
        let comps = try means.attributedComponents(components, shape: shape)
        let B = batch.count, T = batch.sequenceLength, d = c.hiddenSize, dh = c.headSize
        let classes = head.classCount
        if let targetClasses {
            guard targetClasses.count == B else {
                throw CircuitError.invalidTargetClass("\(targetClasses.count) target classes for a batch of \(B) inputs")
            }
            if let i = targetClasses.firstIndex(where: { $0 < 0 || $0 >= classes }) {
                throw CircuitError.invalidTargetClass("target class \(targetClasses[i]) of input \(i); the head has \(classes) classes")
            }
        }

        let out = try forward(batch, adapter: adapter, recordingActivations: true)
        guard let acts = out.activations else { throw KernelFailure(function: "BertModel.forward", status: "no activations recorded") }
        let z = try Self.headForward(head, pooled: out.pooled, B: B)

        // y_b = z_b,ŷ − logsumexp(z_b) in float64; dy/dz = onehot(ŷ) − softmax(z).
        var yHat: [Int] = [], y: [Double] = []
        var dZ = try Tensor(uninitialized: [B, classes])
        let zp = z.pointer, dz = dZ.mutablePointer
        for b in 0..<B {
            let row = (0..<classes).map { Double(zp[b * classes + $0]) }
            let k = targetClasses?[b] ?? row.indices.max { row[$0] < row[$1] }!  // the first maximum
            let top = row.max()!
            let lse = top + Foundation.log(row.reduce(0) { $0 + Foundation.exp($1 - top) })
            yHat.append(k)
            y.append(row[k] - lse)
            for j in 0..<classes { dz[b * classes + j] = Float((j == k ? 1 : 0) - Foundation.exp(row[j] - lse)) }
        }

        // Head → pooled → last hidden state (as in gradients(_:labels:adapter:head:)).
        var dHidden = try Self.headBackward(head, dLogits: dZ, batch: batch)

        // Layers in reverse; the probe turns each layer's dM and dC into attributions:
        // attr[b][k] += Σ_t real Σ_j (μ_j − a_t,j) · g_t,j, in float64.
        var values = [[Double]](repeating: [Double](repeating: 0, count: comps.count), count: B)
        guard let lowest = comps.map(\.layer).min() else {
            return ComponentAttributions(components: comps, values: values, classes: yHat, logProbabilities: y)
        }
        var discarded = try adapter?.zeroGradients() ?? []
        let mask = batch.attentionMask
        func accumulate(_ k: Int, mean mu: [Float], activation a: (Int) -> Float, gradient g: UnsafePointer<Float>,
                        column: Int, width: Int) {
            for b in 0..<B {
                var sum = 0.0
                for t in 0..<T where mask[b * T + t] != 0 {
                    let row = (b * T + t) * d + column
                    for j in 0..<width { sum += (Double(mu[j]) - Double(a(row + j))) * Double(g[row + j]) }
                }
                values[b][k] += sum
            }
        }
        try mask.withUnsafeBufferPointer { m in
            for l in stride(from: layers.count - 1, through: lowest, by: -1) {
                let act = acts.layers[l]
                dHidden = try Self.layerBackward(layers[l], act, layer: l, adapter: adapter, gradients: &discarded,
                                                 dOutput: dHidden, B: B, T: T, c: c, mask: m.baseAddress!,
                                                 wantInputGradient: l > lowest) { site, g in
                    for (k, comp) in comps.enumerated() where comp.layer == l {
                        switch (site, comp) {
                        case (.mlpOutput, .mlp):  // a = M = S2 − A, as the forward observes it
                            let s2 = act.outputSum.pointer, a = act.attentionOutput.pointer
                            accumulate(k, mean: means.means[comp]!, activation: { s2[$0] - a[$0] }, gradient: g,
                                       column: 0, width: d)
                        case (.context, .attentionHead(_, let h)):  // a = C[:, h·d_h ..< (h+1)·d_h]
                            let ctx = act.context.pointer
                            accumulate(k, mean: means.means[comp]!, activation: { ctx[$0] }, gradient: g,
                                       column: h * dh, width: dh)
                        default: break
                        }
                    }
                }
            }
        }
        withExtendedLifetime(acts) {}
        return ComponentAttributions(components: comps, values: values, classes: yHat, logProbabilities: y)
    }
}
