import CKernels
import Foundation

// Circuits on the Llama decoder: attribution patching (Syed et al. 2023, docs/math.md §8).
//
//   forward (recorded, no ablation)          backward (blockBackward, one pass for the batch)
//   z_b = logits at b's last real token      dX = d(−Σ_b y_b)/dx: cross-entropy with target ŷ_b
//   y_b = log softmax(z_b)[ŷ_b]                   at each row's last real position only
//   a_c,t: head context columns / M = y − m  per layer the probe shows dL/dM = dOutput and dL/dC
//   attr_c(x) = Σ_t real (μ_c − a_c,t) · ∂y/∂a_c,t = −Σ_t real (μ_c − a_c,t) · ∂L/∂a_c,t
//
// Sequences of a batch never interact (causal attention within a sequence, RMSNorm within a
// row), so one backward of Σ_b y_b gives every input's own gradient.

extension LlamaModel {
    /// Attribution patching (Syed et al. 2023): for every input `x` and component `c`,
    ///
    ///     attr_c(x) = Σ_t (μ_c − a_c,t(x)) · ∂y(x)/∂a_c,t
    ///
    /// summed over the input's real tokens `t` (mask 1), where `a_c,t` is the component's
    /// activation at token `t` (a head's `d_h` columns of the attention context before o_proj
    /// and its adapter; an MLP's output, what it adds to the residual stream, `d` columns),
    /// `μ_c` its mean, and `y(x) = log softmax(z(x))[ŷ]` the log-probability of the next token
    /// `ŷ` after the input's last real token (the predicted token `argmax z(x)`, or the target
    /// token). It is the first-order (linear) estimate of the change of `y` when `c` alone is
    /// mean-ablated at full strength, i.e. the derivative of `y` along
    /// ``MeanAblation/strength`` at 0 (``nextTokenLogits(_:adapter:observer:ablation:)``).
    ///
    /// One recorded forward without ablation and one backward for the whole batch (the backward
    /// of ``lossAndGradients(tokens:targets:batchSize:adapter:gradientScale:gradients:)``, down to
    /// the lowest attributed layer); the adapter is applied in both, its parameter gradients are
    /// computed and discarded.
    /// - Parameters:
    ///   - batch: right-padded token ids and attention mask (`B × T`, mask 1 then 0, at least
    ///     one real token per row).
    ///   - adapter: an ``Adapter`` for ``adapterHost``, or nil.
    ///   - means: the components' means (its ``MeanAblation/ablated`` set and strength are ignored).
    ///   - components: the components to attribute, in the order of the result (nil: every
    ///     component with a mean, sorted).
    ///   - targetTokens: one token id per input whose log-probability to attribute (nil: each
    ///     input's predicted next token, the first maximum on a tie).
    /// - Returns: ``ComponentAttributions``: `values[b][k]` for input `b` and `components[k]`;
    ///   its `classes` are the attributed token ids.
    /// - Throws: ``LlamaError`` for a bad batch, ``ObservationError`` for a mask that is not
    ///   right-padded, ``AdapterError`` for an adapter of another model shape, ``CircuitError``
    ///   for means of another model shape, a component the model does not have or without a
    ///   mean, or bad target tokens (``CircuitError/invalidTargetClass(_:)``).
    /// - Complexity: about three forwards' flops (recorded forward and backward) plus
    ///   O(n·d) per attributed component; memory of a recorded forward (as in training).
    public func attributions(_ batch: TokenBatch, adapter: (any Adapter)? = nil, means: MeanAblation,
                             components: [ModelComponent]? = nil,
                             targetTokens: [Int32]? = nil) throws -> ComponentAttributions {
        let c = configuration, shape = c.observationShape
        let comps = try means.attributedComponents(components, shape: shape)
        let last = try checkRightPadded(batch)
        if let b = last.firstIndex(where: { $0 < 0 }) {
            throw LlamaError.invalidParameter(name: "batch", value: "sequence \(b) has no real token",
                                              expected: "at least one real token (mask 1) per sequence")
        }
        let B = batch.count, T = batch.sequenceLength, n = B * T, d = c.hiddenSize, dh = c.headDimension
        let qw = c.queryWidth, V = c.vocabularySize
        if let targetTokens {
            guard targetTokens.count == B else {
                throw CircuitError.invalidTargetClass("\(targetTokens.count) target tokens for a batch of \(B) inputs")
            }
            if let i = targetTokens.firstIndex(where: { $0 < 0 || Int($0) >= V }) {
                throw CircuitError.invalidTargetClass("target token \(targetTokens[i]) of input \(i); the vocabulary has \(V) tokens")
            }
        }

        // Recorded forward, logits at the last real tokens.
        var cache = try makeTransientCache(batchSize: B, length: T)
        let record = LlamaActivationRecord()
        let x = try hiddenStates(batch.ids, cache: &cache, adapter: adapter, record: record)
        let scratch = ScratchBuffer()
        let lastRows = last.enumerated().map { $0.offset * T + $0.element }
        let z = try logits(hidden: x, rows: lastRows, scratch: scratch)

        // y_b = z_b,ŷ − logsumexp(z_b) in float64.
        var yHat: [Int] = [], y: [Double] = []
        let zp = z.pointer
        for b in 0..<B {
            let row = (0..<V).map { Double(zp[b * V + $0]) }
            let k = targetTokens.map { Int($0[b]) } ?? row.indices.max { row[$0] < row[$1] }!  // the first maximum
            let top = row.max()!
            let lse = top + Foundation.log(row.reduce(0) { $0 + Foundation.exp($1 - top) })
            yHat.append(k)
            y.append(row[k] - lse)
        }

        var values = [[Double]](repeating: [Double](repeating: 0, count: comps.count), count: B)
        guard let lowest = comps.map(\.layer).min() else {
            return ComponentAttributions(components: comps, values: values, classes: yHat, logProbabilities: y)
        }

        // dX = d(−Σ_b y_b)/dx: cross-entropy with target ŷ_b at b's last real position only.
        var targets = [Int32](repeating: -1, count: n)
        for (b, r) in lastRows.enumerated() { targets[r] = Int32(yHat[b]) }
        guard var dX = try headLoss(hidden: x, targets: targets, gradientScale: 1).inputGradient else {
            throw KernelFailure(function: "LlamaModel.headLoss", status: "no input gradient")
        }

        // Layers in reverse; the probe turns each layer's dL/dM and dL/dC into attributions:
        // attr[b][k] −= Σ_t real Σ_j (μ_j − a_t,j) · g_t,j, in float64 (g = ∂L/∂a = −∂y/∂a).
        var discarded = try adapter?.zeroGradients() ?? []
        let mask = batch.attentionMask
        func accumulate(_ k: Int, mean mu: [Float], activation a: (Int) -> Float, gradient g: UnsafePointer<Float>,
                        ld: Int, column: Int, width: Int) {
            for b in 0..<B {
                var sum = 0.0
                for t in 0..<T where mask[b * T + t] != 0 {
                    let row = (b * T + t) * ld + column
                    for j in 0..<width { sum += (Double(mu[j]) - Double(a(row + j))) * Double(g[row + j]) }
                }
                values[b][k] -= sum
            }
        }
        for l in stride(from: layers.count - 1, through: lowest, by: -1) {
            let saved = record.layers[l]
            let output = l + 1 < layers.count ? record.layers[l + 1].input : x   // the block's output
            try blockBackward(layer: l, saved: saved, adapter: adapter, B: B, T: T, dOutput: &dX,
                              gradients: &discarded, wantInputGradient: l > lowest, scratch: scratch) { site, g in
                for (k, comp) in comps.enumerated() where comp.layer == l {
                    switch (site, comp) {
                    case (.mlpOutput, .mlp):  // a = M = block output − middle, as the observer sees it
                        let yp = output.pointer, mp = saved.middle.pointer
                        accumulate(k, mean: means.means[comp]!, activation: { yp[$0] - mp[$0] }, gradient: g,
                                   ld: d, column: 0, width: d)
                    case (.context, .attentionHead(_, let h)):  // a = C[:, h·d_h ..< (h+1)·d_h]
                        let ctx = saved.context.pointer
                        accumulate(k, mean: means.means[comp]!, activation: { ctx[$0] }, gradient: g,
                                   ld: qw, column: h * dh, width: dh)
                    default: break
                    }
                }
            }
            withExtendedLifetime((saved, output)) {}
        }
        withExtendedLifetime((record, x)) {}
        return ComponentAttributions(components: comps, values: values, classes: yHat, logProbabilities: y)
    }
}
