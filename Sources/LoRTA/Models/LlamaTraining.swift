import CKernels

/// What one decoder block keeps from the forward pass for its backward (all `[n, ·]`, n = B·T).
/// The normalised inputs `h`, the SwiGLU product and the attention probabilities are recomputed
/// in the backward (element-wise work and `B·H·T²·d_h` flops, against `B·H·T²` stored floats
/// per layer) instead of being stored.
struct LlamaLayerActivations {
    /// The block's input x (residual stream).
    var input = Tensor(uninitializedShape: [0])
    /// q | k | v after the adapters and the rotary embedding.
    var queryKeyValue = Tensor(uninitializedShape: [0])
    /// Heads' context, the input of o_proj.
    var context = Tensor(uninitializedShape: [0])
    /// Residual stream after attention (input of the MLP's norm).
    var middle = Tensor(uninitializedShape: [0])
    /// gate | up, before SwiGLU.
    var gateUp = Tensor(uninitializedShape: [0])
}

/// Where ``LlamaModel`` `blockBackward`'s probe looks: dL/d(MLP output) `[n, d]`, or
/// dL/d(attention context) `[n, H·d_h]` (the input of o_proj).
enum LlamaBackwardSite {
    case mlpOutput
    case context
}

/// The per-layer activations of one recorded forward pass.
final class LlamaActivationRecord {
    var layers: [LlamaLayerActivations] = []
}

/// Loss of a causal-LM batch: the sum of the token negative log-likelihoods over the target
/// positions and their number (so that micro-batches combine into the token-weighted mean).
public struct CausalLMLoss: Sendable, Equatable {
    /// Σ −log p(target) over the targets, in float64.
    public var sum: Double
    /// Number of target positions.
    public var targetCount: Int
    /// `sum / targetCount` (0 without targets).
    public var mean: Double { targetCount == 0 ? 0 : sum / Double(targetCount) }

    public init(sum: Double, targetCount: Int) {
        self.sum = sum
        self.targetCount = targetCount
    }

    public static func + (a: CausalLMLoss, b: CausalLMLoss) -> CausalLMLoss {
        CausalLMLoss(sum: a.sum + b.sum, targetCount: a.targetCount + b.targetCount)
    }
}

extension LlamaModel {
    /// The projections adapters can attach to, with Hugging Face's names: `q_proj`, `k_proj`,
    /// `v_proj`, `o_proj` (attention; K and V are `H_kv·d_h` wide under grouped-query
    /// attention) and `gate_proj`, `up_proj`, `down_proj` (MLP).
    public var adapterHost: AdapterHost {
        let c = configuration, d = c.hiddenSize, i = c.intermediateSize
        // LoRTA splits an attention projection's input into the H heads: the block input for
        // Q/K/V (when d = H·d_h, as in every Llama checkpoint we know) and the context for O.
        let headsSpanInput = d == c.queryWidth
        return AdapterHost(
            modelType: "llama", layerCount: c.layerCount, headCount: c.headCount, headDimension: c.headDimension,
            modules: [
                .init(name: "q_proj", path: "self_attn.q_proj", inputSize: d, outputSize: c.queryWidth, isAttention: headsSpanInput),
                .init(name: "k_proj", path: "self_attn.k_proj", inputSize: d, outputSize: c.keyValueWidth, isAttention: headsSpanInput),
                .init(name: "v_proj", path: "self_attn.v_proj", inputSize: d, outputSize: c.keyValueWidth, isAttention: headsSpanInput),
                .init(name: "o_proj", path: "self_attn.o_proj", inputSize: c.queryWidth, outputSize: d, isAttention: true),
                .init(name: "gate_proj", path: "mlp.gate_proj", inputSize: d, outputSize: i, isAttention: false),
                .init(name: "up_proj", path: "mlp.up_proj", inputSize: d, outputSize: i, isAttention: false),
                .init(name: "down_proj", path: "mlp.down_proj", inputSize: i, outputSize: d, isAttention: false),
            ],
            layerPath: "model.layers")
    }

    /// Checks a training batch: `tokens` and `targets` of `B·T` entries (row `b·T + t`); a
    /// target is the id the model should predict after position t, or −1 for no loss there.
    private func checkBatch(tokens: [Int32], targets: [Int32], batchSize B: Int) throws {
        guard B >= 1, !tokens.isEmpty, tokens.count % B == 0 else {
            throw LlamaError.invalidParameter(name: "batchSize", value: "\(B)",
                                              expected: "at least 1 and a divisor of the \(tokens.count) tokens")
        }
        guard targets.count == tokens.count else {
            throw LlamaError.invalidParameter(name: "targets", value: "\(targets.count) entries",
                                              expected: "one per token (\(tokens.count))")
        }
        if let i = targets.firstIndex(where: { $0 < -1 || Int($0) >= configuration.vocabularySize }) {
            throw LlamaError.tokenOutOfRange(id: targets[i], position: i % (tokens.count / B),
                                             vocabularySize: configuration.vocabularySize)
        }
    }

    /// The causal-LM loss of a batch: `B` sequences of `T` tokens (`tokens[b·T + t]`), with
    /// `targets[b·T + t]` the token to predict after position t or −1 (not scored). Logits are
    /// computed only at the scored positions. With `ablation`, its components are mean-ablated.
    /// - Throws: ``LlamaError`` for a bad batch, ``AdapterError`` for an adapter of another model,
    ///   ``CircuitError`` for an ablation of another model.
    /// - Complexity: one forward pass (no cache kept) plus `targets · vocab · d` for the logits.
    public func loss(tokens: [Int32], targets: [Int32], batchSize B: Int, adapter: (any Adapter)? = nil,
                     ablation: MeanAblation? = nil) throws -> CausalLMLoss {
        try checkBatch(tokens: tokens, targets: targets, batchSize: B)
        var cache = try makeTransientCache(batchSize: B, length: tokens.count / B)
        let x = try hiddenStates(tokens, cache: &cache, adapter: adapter, record: nil, ablation: ablation)
        return try headLoss(hidden: x, targets: targets, gradientScale: nil).loss
    }

    /// Loss of a batch (as ``loss(tokens:targets:batchSize:adapter:ablation:)``) and the gradients of the
    /// adapter's parameters, **added** to `gradients` (layout of ``Adapter/parameters``): the
    /// gradient of `gradientScale · Σ token losses`. Pass `1 / (targets of the whole step)` to get
    /// the token-weighted mean over micro-batches. Frozen weights get no gradient and nothing is
    /// stored for them.
    ///
    /// The backward runs each block in reverse: MLP (down, SwiGLU, gate|up, RMSNorm), then
    /// attention (o_proj, causal GQA attention, rotary embedding, q|k|v, RMSNorm); the frozen
    /// input gradients read the weights in their stored (possibly quantized) form.
    /// - Throws: ``LlamaError`` for a bad batch, ``AdapterError`` for an adapter of another model.
    /// - Complexity: about three times the forward's flops; memory O(L · n · (d + qkv + I)) floats
    ///   of saved activations (the attention probabilities are recomputed, not stored), plus
    ///   `2·B·H·T²` floats of attention workspace for one layer at a time.
    public func lossAndGradients(tokens: [Int32], targets: [Int32], batchSize B: Int, adapter: any Adapter,
                                 gradientScale: Float, gradients: inout [Tensor]) throws -> CausalLMLoss {
        try checkBatch(tokens: tokens, targets: targets, batchSize: B)
        let expected = adapter.parameters.map(\.shape)
        guard gradients.map(\.shape) == expected else {
            throw AdapterError.parameterMismatch("gradient shapes \(gradients.map(\.shape)), expected \(expected)")
        }
        let T = tokens.count / B
        var cache = try makeTransientCache(batchSize: B, length: T)
        let record = LlamaActivationRecord()
        let x = try hiddenStates(tokens, cache: &cache, adapter: adapter, record: record)
        let head = try headLoss(hidden: x, targets: targets, gradientScale: gradientScale)
        guard var dX = head.inputGradient else { return head.loss }
        let scratch = ScratchBuffer()
        for l in layers.indices.reversed() {
            try blockBackward(layer: l, saved: record.layers[l], adapter: adapter, B: B, T: T, dOutput: &dX,
                              gradients: &gradients, wantInputGradient: l > 0, scratch: scratch)
            record.layers[l] = LlamaLayerActivations()   // free as we go
        }
        return head.loss
    }

    // MARK: - Head: final norm, tied/untied output projection, cross-entropy (forward and backward)

    /// Final RMSNorm, logits and cross-entropy at the target rows, in chunks of rows. With a
    /// `gradientScale`, also `dX` `[n, d]` (zero at rows without a target).
    func headLoss(hidden x: Tensor, targets: [Int32], gradientScale: Float?) throws
        -> (loss: CausalLMLoss, inputGradient: Tensor?) {
        let c = configuration, d = c.hiddenSize, V = c.vocabularySize
        let rows = targets.indices.filter { targets[$0] >= 0 }
        var dX: Tensor? = gradientScale == nil ? nil : try Tensor(zeros: x.shape)
        var sum = 0.0
        let chunk = 64
        var h = try Tensor(uninitialized: [chunk, d]), rstd = try Tensor(uninitialized: [chunk])
        var z = try Tensor(uninitialized: [chunk, V]), rowLoss = try Tensor(uninitialized: [chunk])
        var dH = try Tensor(uninitialized: [gradientScale == nil ? 0 : chunk, d])
        let scratch = ScratchBuffer()
        let xp = x.pointer, hp = h.mutablePointer, rp = rstd.mutablePointer, zp = z.mutablePointer
        var start = 0
        while start < rows.count {
            let part = Array(rows[start..<min(start + chunk, rows.count)])
            let m = part.count
            for (i, r) in part.enumerated() {
                try KernelFailure.check(lt_rmsnorm_forward(1, Int64(d), c.rmsNormEpsilon, xp + r * d, Int64(d),
                                                           finalNormWeight.pointer, hp + i * d, Int64(d), rp + i),
                                        "lt_rmsnorm_forward (final)")
            }
            try output.multiplyTransposed(n: m, x: hp, ldx: d, into: zp, ldy: V, accumulate: false, scratch: scratch)
            let labels = part.map { targets[$0] }
            var mean: Float = 0
            try labels.withUnsafeBufferPointer { y in
                try KernelFailure.check(lt_cross_entropy_forward(Int64(m), Int64(V), zp, Int64(V), y.baseAddress, &mean,
                                                                 rowLoss.mutablePointer), "lt_cross_entropy_forward")
                if let gradientScale {
                    // dZ_i = (softmax − onehot) · dloss / m with dloss = scale · m: each row weighs `scale`.
                    try KernelFailure.check(lt_cross_entropy_backward(Int64(m), Int64(V), zp, Int64(V), y.baseAddress,
                                                                      gradientScale * Float(m), zp, Int64(V)),
                                            "lt_cross_entropy_backward")
                }
            }
            for i in 0..<m { sum += Double(rowLoss.pointer[i]) }
            if gradientScale != nil, var g = dX {
                dX = nil
                let dhp = dH.mutablePointer, gp = g.mutablePointer
                try output.multiply(n: m, dy: zp, lddy: V, into: dhp, lddx: d, accumulate: false, scratch: scratch)
                for (i, r) in part.enumerated() {
                    try KernelFailure.check(lt_rmsnorm_backward(1, Int64(d), dhp + i * d, Int64(d), xp + r * d, Int64(d),
                                                                finalNormWeight.pointer, rp + i, gp + r * d, Int64(d),
                                                                nil, 0), "lt_rmsnorm_backward (final)")
                }
                dX = g
            }
            start += m
        }
        withExtendedLifetime((x, h, rstd, z, rowLoss, dH)) {}
        return (CausalLMLoss(sum: sum, targetCount: rows.count), dX)
    }

    // MARK: - One decoder block, backward (the forward is in `hiddenStates`)

    /// Backward of block `l` given `dOutput` = dL/d(block output) `[n, d]`, replaced by
    /// dL/d(block input) (left unchanged in value when `wantInputGradient` is false: layer 0).
    ///
    /// Forward, for reference:  h = RMSNorm(x; γ₁);  [q|k|v] = h Wqkvᵀ + Δ;  q, k = rope(q, k);
    /// c = attention(q, k, v);  m = x + c Woᵀ + Δ;  h₂ = RMSNorm(m; γ₂);  [g|u] = h₂ Wguᵀ + Δ;
    /// a = silu(g) ∘ u;  y = m + a Wdᵀ + Δ.
    ///
    /// Without an adapter only the input gradients are computed (`gradients` is not touched).
    /// `probe`, when given, sees dL/d(MLP output) `[n, d]` (= dOutput, since y = m + M) before the
    /// MLP backward and dL/d(context) `[n, H·d_h]` after the o_proj backward (adapter included).
    func blockBackward(layer l: Int, saved s: LlamaLayerActivations, adapter: (any Adapter)?, B: Int, T: Int,
                       dOutput dY: inout Tensor, gradients: inout [Tensor], wantInputGradient: Bool,
                       scratch: ScratchBuffer,
                       probe: ((LlamaBackwardSite, UnsafePointer<Float>) throws -> Void)? = nil) throws {
        let c = configuration, w = layers[l]
        let n = B * T, d = c.hiddenSize, inter = c.intermediateSize
        let H = c.headCount, Hkv = c.keyValueHeadCount, dh = c.headDimension
        let qw = c.queryWidth, kvw = c.keyValueWidth, qkvw = qw + 2 * kvw
        let n64 = Int64(n), d64 = Int64(d), i64 = Int64(inter)
        let eps = c.rmsNormEpsilon
        let dyp = dY.mutablePointer
        try probe?(.mlpOutput, dyp)

        // ---- MLP: y = m + a Wdᵀ (+Δ) ----
        var h = try Tensor(uninitialized: [n, d]), rstd = try Tensor(uninitialized: [n])
        let hp = h.mutablePointer, rp = rstd.mutablePointer
        try KernelFailure.check(lt_rmsnorm_forward(n64, d64, eps, s.middle.pointer, d64, w.mlpNormWeight.pointer, hp, d64, rp),
                                "lt_rmsnorm_forward (recompute)")
        var a = try Tensor(uninitialized: [n, inter])
        let gup = s.gateUp.pointer
        try KernelFailure.check(lt_swiglu_forward(n64, i64, gup, 2 * i64, gup + inter, 2 * i64, a.mutablePointer, i64),
                                "lt_swiglu_forward (recompute)")
        var dA = try Tensor(uninitialized: [n, inter])
        // Each adapter backward first (dθ, and its part of the input gradient as terms), then the
        // frozen product's input gradient with the terms added to its tiles — here also the
        // SwiGLU backward (dG, dU from each tile of dA).
        let downTerms = try adapter?.backwardTerms(layer: l, input: AdapterInput(a.pointer, rows: n, width: inter, stride: inter),
                                                   outputGradients: [AdapterOutput(module: "down_proj", dyp, stride: d)],
                                                   parameterGradients: &gradients, inputGradient: true) ?? []
        var dGU = try Tensor(uninitialized: [n, 2 * inter])
        let dgup = dGU.mutablePointer
        try w.down.multiplySwiGLUBackward(n: n, dy: dyp, lddy: d, gate: gup, ldg: 2 * inter, up: gup + inter, ldu: 2 * inter,
                                          into: dA.mutablePointer, ldda: inter, dG: dgup, lddg: 2 * inter,
                                          dU: dgup + inter, lddu: 2 * inter, scratch: scratch, terms: downTerms)
        a = Tensor(uninitializedShape: [0]); dA = a
        var dH = try Tensor(uninitialized: [n, d])
        let dhp = dH.mutablePointer
        let guTerms = try adapter?.backwardTerms(layer: l, input: AdapterInput(hp, rows: n, width: d, stride: d),
                                                 outputGradients: [AdapterOutput(module: "gate_proj", dgup, stride: 2 * inter),
                                                                   AdapterOutput(module: "up_proj", dgup + inter, stride: 2 * inter)],
                                                 parameterGradients: &gradients, inputGradient: true) ?? []
        try w.gateUp.applyBackward(n: n, dy: dgup, lddy: 2 * inter, into: dhp, lddx: d, scratch: scratch, terms: guTerms)
        // dm = dy + RMSNorm₂ backward(dh₂)
        try KernelFailure.check(lt_rmsnorm_backward(n64, d64, dhp, d64, s.middle.pointer, d64, w.mlpNormWeight.pointer,
                                                    rp, dhp, d64, nil, 0), "lt_rmsnorm_backward (mlp)")
        for i in 0..<(n * d) { dyp[i] += dhp[i] }
        dGU = Tensor(uninitializedShape: [0])

        // ---- attention output: m = x + c Woᵀ (+Δ) ----
        var dC = try Tensor(uninitialized: [n, qw])
        let dcp = dC.mutablePointer
        let oTerms = try adapter?.backwardTerms(layer: l, input: AdapterInput(s.context.pointer, rows: n, width: qw, stride: qw),
                                                outputGradients: [AdapterOutput(module: "o_proj", dyp, stride: d)],
                                                parameterGradients: &gradients, inputGradient: true) ?? []
        try w.attentionOutput.multiply(n: n, dy: dyp, lddy: d, into: dcp, lddx: qw, accumulate: false, scratch: scratch,
                                       terms: oTerms)
        try probe?(.context, dcp)

        // ---- causal grouped-query attention, then the rotary embedding (transposed) ----
        var dQKV = try Tensor(uninitialized: [n, qkvw])
        let dqp = dQKV.mutablePointer, qkv = s.queryKeyValue.pointer
        var wsFloats: Int64 = 0
        try KernelFailure.check(lt_causal_attention_backward_workspace_size(Int64(B), Int64(T), Int64(H), &wsFloats),
                                "lt_causal_attention_backward_workspace_size")
        var ws = try Tensor(uninitialized: [Int(wsFloats)])
        let scale = Float(1.0 / Double(dh).squareRoot())
        try KernelFailure.check(lt_causal_attention_backward(
            Int64(B), Int64(T), Int64(H), Int64(Hkv), Int64(dh), scale,
            qkv, Int64(qkvw), qkv + qw, Int64(qkvw), qkv + qw + kvw, Int64(qkvw), nil,   // P recomputed
            dcp, Int64(qw), dqp, Int64(qkvw), dqp + qw, Int64(qkvw), dqp + qw + kvw, Int64(qkvw), ws.mutablePointer),
            "lt_causal_attention_backward")
        ws = Tensor(uninitializedShape: [0]); dC = ws
        var positions = [Int32](repeating: 0, count: n)
        for b in 0..<B { for t in 0..<T { positions[b * T + t] = Int32(t) } }
        try positions.withUnsafeBufferPointer { pos in
            try c.rotaryInverseFrequencies.withUnsafeBufferPointer { freq in
                try KernelFailure.check(lt_rope_backward(n64, Int64(H), Int64(dh), Int64(c.rotaryDimension), pos.baseAddress,
                                                         freq.baseAddress, dqp, Int64(qkvw)), "lt_rope_backward (query)")
                try KernelFailure.check(lt_rope_backward(n64, Int64(Hkv), Int64(dh), Int64(c.rotaryDimension), pos.baseAddress,
                                                         freq.baseAddress, dqp + qw, Int64(qkvw)), "lt_rope_backward (key)")
            }
        }

        // ---- q|k|v = h Wqkvᵀ (+Δ), h = RMSNorm(x; γ₁) ----
        try KernelFailure.check(lt_rmsnorm_forward(n64, d64, eps, s.input.pointer, d64, w.attentionNormWeight.pointer,
                                                   hp, d64, rp), "lt_rmsnorm_forward (recompute)")
        let qkvTerms = try adapter?.backwardTerms(layer: l, input: AdapterInput(hp, rows: n, width: d, stride: d),
                                                  outputGradients: [AdapterOutput(module: "q_proj", dqp, stride: qkvw),
                                                                    AdapterOutput(module: "k_proj", dqp + qw, stride: qkvw),
                                                                    AdapterOutput(module: "v_proj", dqp + qw + kvw, stride: qkvw)],
                                                  parameterGradients: &gradients, inputGradient: wantInputGradient) ?? []
        if wantInputGradient {
            try w.queryKeyValue.applyBackward(n: n, dy: dqp, lddy: qkvw, into: dhp, lddx: d, scratch: scratch, terms: qkvTerms)
            try KernelFailure.check(lt_rmsnorm_backward(n64, d64, dhp, d64, s.input.pointer, d64,
                                                        w.attentionNormWeight.pointer, rp, dhp, d64, nil, 0),
                                    "lt_rmsnorm_backward (attention)")
            for i in 0..<(n * d) { dyp[i] += dhp[i] }
        }
        withExtendedLifetime((h, rstd, dH, dQKV, s)) {}
    }
}
