import CKernels

// One post-LayerNorm BERT block: its forward, where adapters hook in, and its backward, side by
// side (as the C kernels are). The math is in docs/math.md; shapes use n = B·T rows.
//
//   forward                                     backward (frozen weights: dX only)
//   QKV = X Wqkvᵀ + bqkv (+ ΔQ, ΔK, ΔV from X)  dX += dQKV Wqkv (+ adapters' dX, dθ)
//   C   = attention(Q, K, V, mask)              dQKV from dC (softmax backward)
//   S1  = C Woᵀ + bo + X (+ ΔO from C)          dC = dS1 Wo (+ adapter's dC, dθ); dX = dS1
//   A   = LN(S1)                                dS1 = LN'(dA)
//   Z   = A Wiᵀ + bi                            dA += dZ Wi
//   S2  = gelu(Z) W2ᵀ + b2 + A                  dZ = gelu'(Z) ∘ (dS2 W2); dA = dS2
//   Y   = LN(S2)                                dS2 = LN'(dY)
//
// Mean ablation (MeanAblation.swift), when given: an ablated head's columns of C become
// C + s(μ − C) right after the attention (so Wo and the adapter read them); an ablated MLP's
// output M = gelu(Z) W2ᵀ + b2 becomes M + s(μ − M) before the residual add, S2 = A + M'.
//
// The adapter is called through the ``Adapter`` protocol only: once for the group Q|K|V (they
// read X) and once for the attention output (it reads C). The model never looks at its kind.
// Its updates come as low-rank terms (``LowRankTerm``) that the frozen products add to each
// output tile (forward, and the input gradients dX and dC), docs/math.md §2.5.

extension BertConfiguration {
    /// The projections adapters can attach to, with the names PEFT uses for a `transformers`
    /// `BertModel` (`encoder.layer.<l>.attention.self.query`, …). The attention output is named
    /// `output` here (``BertProjection/attentionOutput``), its path `attention.output.dense`;
    /// all four read the heads (`d × d`), so LoRTA can adapt them.
    public var adapterHost: AdapterHost {
        AdapterHost(modelType: "bert", layerCount: layerCount, headCount: headCount, headDimension: headSize,
                    modules: BertProjection.allCases.map {
                        AdapterHost.Module(name: $0.rawValue, path: $0.modulePath, inputSize: hiddenSize,
                                           outputSize: hiddenSize, isAttention: true)
                    },
                    layerPath: "encoder.layer", frozenLinearPaths: ["intermediate.dense", "output.dense"])
    }
}

extension BertModel {
    /// The projections adapters can attach to (``BertConfiguration/adapterHost``).
    public var adapterHost: AdapterHost { configuration.adapterHost }

    /// Buffers of one layer's forward. When not recording (`statistics` false), the LayerNorms
    /// run in place over `attentionSum` and `outputSum` (`attentionOutput`, `output` and the
    /// statistics are empty) and GELU runs in place over `intermediate`.
    struct LayerBuffers {
        var qkv, probabilities, context, attentionSum, attentionOutput, intermediate, outputSum, output: Tensor
        /// The MLP's contribution `S2 − A` (`[n, d]`) when an observer wants it, else empty.
        var mlpOutput: Tensor
        var attentionMean, attentionRstd, outputMean, outputRstd: Tensor
        let statistics: Bool

        init(n: Int, d: Int, inter: Int, B: Int, H: Int, T: Int, statistics: Bool, mlpOutput wantsMLP: Bool = false) throws {
            qkv = try Tensor(uninitialized: [n, 3 * d])
            probabilities = try Tensor(uninitialized: [B, H, T, T])  // the product is overflow-checked
            context = try Tensor(uninitialized: [n, d])
            attentionSum = try Tensor(uninitialized: [n, d])
            attentionOutput = try Tensor(uninitialized: [statistics ? n : 0, d])
            intermediate = try Tensor(uninitialized: [n, inter])
            outputSum = try Tensor(uninitialized: [n, d])
            output = try Tensor(uninitialized: [statistics ? n : 0, d])
            mlpOutput = try Tensor(uninitialized: [wantsMLP ? n : 0, d])
            let s = statistics ? n : 0
            attentionMean = try Tensor(uninitialized: [s]); attentionRstd = try Tensor(uninitialized: [s])
            outputMean = try Tensor(uninitialized: [s]); outputRstd = try Tensor(uninitialized: [s])
            self.statistics = statistics
        }
    }

    /// The Q|K|V outputs (column slices of one `n × 3d` buffer) as adapter outputs.
    static func queryKeyValueOutputs(_ p: UnsafeMutablePointer<Float>, d: Int) -> [AdapterOutput] {
        [BertProjection.query, .key, .value].enumerated().map { m, proj in
            AdapterOutput(module: proj.rawValue, p + m * d, stride: 3 * d)
        }
    }

    /// The modules of the Q|K|V product, in column order.
    static let queryKeyValueModules = [BertProjection.query, .key, .value].map(\.rawValue)

    /// First column of a Q|K|V module in the `n × 3d` product, nil for another module.
    static func queryKeyValueColumn(_ module: String, d: Int) -> Int? {
        queryKeyValueModules.firstIndex(of: module).map { $0 * d }
    }

    // MARK: - forward

    /// Runs `body` with the packed copy of a weight (``BertModel/packFrozenWeights()``), or nil
    /// when there is none: the `lt_*_packed` kernels then multiply by the weight itself (the
    /// same bits either way).
    static func withPacked<R>(_ matrix: PackedMatrix?, _ body: (UnsafePointer<Float>?) throws -> R) throws -> R {
        guard let matrix else { return try body(nil) }
        return try matrix.withPackedBuffer { try body($0) }
    }

    /// Forward of block `l` (see the table at the top of this file). Adapter hooks: after the
    /// fused QKV GEMM (the adapter adds ΔQ, ΔK, ΔV into the column slices of `qkv`, from
    /// `input`) and after the attention output GEMM (ΔO from `context`). `ablation` (validated
    /// by the caller) replaces ablated heads' context columns and ablated MLP outputs. The four
    /// frozen products read the weights' packed copies when the model has them (same bits).
    static func layerForward(_ w: BertLayerWeights, index l: Int, adapter: (any Adapter)?, input: Tensor,
                             buffers b: inout LayerBuffers,
                             B: Int, T: Int, d: Int, H: Int, dh: Int, inter: Int, scale: Float, eps: Float,
                             mask: UnsafePointer<Int32>, record: Bool, ablation: MeanAblation? = nil) throws {
        let n = Int64(B * T), d64 = Int64(d), i64 = Int64(inter), ld3 = Int64(3 * d)
        // QKV = X Wqkvᵀ + bqkv (one GEMM for the three) + the adapter's terms, added to each tile.
        let qkv = b.qkv.mutablePointer
        let qkvTerms = try adapter?.forwardTerms(layer: l, input: AdapterInput(input.pointer, rows: B * T, width: d, stride: d),
                                                 modules: queryKeyValueModules) ?? []
        try LowRankTerm.withCTerms(qkvTerms, rows: B * T, column: { queryKeyValueColumn($0, d: d) }) { terms, count in
            try withPacked(w.packedQueryKeyValueWeight) { packed in
                try KernelFailure.check(lt_linear_forward_packed_terms(n, d64, ld3, input.pointer, d64, w.queryKeyValueWeight.pointer,
                                                                       d64, packed, w.queryKeyValueBias.pointer, nil, 0, terms, count,
                                                                       qkv, ld3),
                                        "lt_linear_forward_packed_terms (QKV)")
            }
        }
        // C = attention(Q, K, V).
        let ctx = b.context.mutablePointer
        try KernelFailure.check(lt_attention_forward(Int64(B), Int64(T), Int64(H), Int64(dh), scale,
                                                     qkv, ld3, qkv + d, ld3, qkv + 2 * d, ld3, mask,
                                                     b.probabilities.mutablePointer, ctx, d64), "lt_attention_forward")
        // Ablated heads: C[:, h·d_h ..< (h+1)·d_h] ← C + s(μ_h − C), every row.
        ablation?.ablateHeads(layer: l, context: ctx, rows: B * T, ld: d)
        // S1 = C Woᵀ + bo + X (+ ΔO, added to each tile); A = LN(S1).
        let aSum = b.attentionSum.mutablePointer
        let oTerms = try adapter?.forwardTerms(layer: l, input: AdapterInput(ctx, rows: B * T, width: d, stride: d),
                                               modules: [BertProjection.attentionOutput.rawValue]) ?? []
        try LowRankTerm.withCTerms(oTerms, rows: B * T, column: { $0 == BertProjection.attentionOutput.rawValue ? 0 : nil }) {
            terms, count in
            try withPacked(w.packedAttentionOutputWeight) { packed in
                try KernelFailure.check(lt_linear_forward_packed_terms(n, d64, d64, ctx, d64, w.attentionOutputWeight.pointer, d64,
                                                                       packed, w.attentionOutputBias.pointer, input.pointer, d64,
                                                                       terms, count, aSum, d64),
                                        "lt_linear_forward_packed_terms (attention output)")
            }
        }
        let aOut = b.statistics ? b.attentionOutput.mutablePointer : aSum
        try KernelFailure.check(lt_layernorm_forward(n, d64, eps, aSum, d64, w.attentionNormWeight.pointer,
                                                     w.attentionNormBias.pointer, aOut, d64,
                                                     b.statistics ? b.attentionMean.mutablePointer : nil,
                                                     b.statistics ? b.attentionRstd.mutablePointer : nil),
                                "lt_layernorm_forward (attention)")
        // Z = A Wiᵀ + bi and G = gelu(Z) in one pass (the GEMM's tile epilogue); S2 = G W2ᵀ + b2 + A;
        // Y = LN(S2). G overwrites Z when not recording; when recording Z is kept for the
        // backward and a temporary [n, I] buffer holds G.
        let z = b.intermediate.mutablePointer
        var geluOut = try record ? Tensor(uninitialized: [B * T, inter]) : b.intermediate
        let g = record ? geluOut.mutablePointer : z
        try withPacked(w.packedIntermediateWeight) { packed in
            try KernelFailure.check(lt_linear_gelu_forward_packed(n, d64, i64, aOut, d64, w.intermediateWeight.pointer, d64, packed,
                                                                  w.intermediateBias.pointer, z, i64, g, i64),
                                    "lt_linear_gelu_forward_packed (intermediate)")
        }
        let oSum = b.outputSum.mutablePointer
        try withPacked(w.packedOutputWeight) { packed in
            try KernelFailure.check(lt_linear_forward_packed(n, i64, d64, g, i64, w.outputWeight.pointer, i64, packed,
                                                             w.outputBias.pointer, aOut, d64, oSum, d64),
                                    "lt_linear_forward_packed (output)")
        }
        if let ablation, ablation.ablatesMLP(layer: l) {
            // Ablated MLP: M = S2 − A, M' = M + s(μ − M) (exactly μ at s = 1), S2 = A + M';
            // an observer of the MLP output sees M'.
            let mu = ablation.means[.mlp(layer: l)]!, s = ablation.strength
            let m: UnsafeMutablePointer<Float>? = b.mlpOutput.count > 0 ? b.mlpOutput.mutablePointer : nil
            for i in 0..<(B * T) {
                for j in 0..<d {
                    let k = i * d + j
                    let mij = oSum[k] - aOut[k]
                    let ablated = s == 1 ? mu[j] : mij + s * (mu[j] - mij)
                    oSum[k] = aOut[k] + ablated
                    m?[k] = ablated
                }
            }
        } else if b.mlpOutput.count > 0 {  // observed: the MLP's output without the residual, S2 − A
            let m = b.mlpOutput.mutablePointer
            for i in 0..<(B * T * d) { m[i] = oSum[i] - aOut[i] }
        }
        let out = b.statistics ? b.output.mutablePointer : oSum
        try KernelFailure.check(lt_layernorm_forward(n, d64, eps, oSum, d64, w.outputNormWeight.pointer,
                                                     w.outputNormBias.pointer, out, d64,
                                                     b.statistics ? b.outputMean.mutablePointer : nil,
                                                     b.statistics ? b.outputRstd.mutablePointer : nil),
                                "lt_layernorm_forward (output)")
        withExtendedLifetime(geluOut) {}
    }

    // MARK: - backward

    /// The gradients ``layerBackward`` shows its probe.
    enum BertGradientSite {
        /// dS2 = dM, the gradient with respect to the MLP output (`n × d`).
        case mlpOutput
        /// dC, the gradient with respect to the attention context (`n × d`, head `h` at column `h·d_h`).
        case context
    }

    /// Backward of block `l` given `dY` of its output and what its recorded forward saved.
    /// Adds the adapter's parameter gradients to `gradients` (layout of ``Adapter/parameters``)
    /// and returns dX of the block input (an empty tensor when `wantInputGradient` is false:
    /// layer 0). No buffer is allocated for a frozen weight's gradient.
    /// - Complexity: about the forward's flops again (one GEMM per frozen matrix for dX) plus
    ///   the adapter's backward; temporaries `O(n·(d + I) + B·H·T²)`.
    ///
    /// `probe`, when given, is shown two gradients of the layer as they are computed (`n × d`,
    /// valid only during the call): `.mlpOutput`: dS2, which is also the gradient with respect
    /// to the MLP output M (S2 = A + M); `.context`: dC, the gradient with respect to the
    /// attention context (the adapter's part included). Attribution patching reads them.
    static func layerBackward(_ w: BertLayerWeights, _ act: BertLayerActivations, layer l: Int,
                              adapter: (any Adapter)?, gradients: inout [Tensor], dOutput: Tensor,
                              B: Int, T: Int, c: BertConfiguration, mask: UnsafePointer<Int32>,
                              wantInputGradient: Bool,
                              probe: ((BertGradientSite, UnsafePointer<Float>) throws -> Void)? = nil) throws -> Tensor {
        let n = B * T, d = c.hiddenSize, inter = c.intermediateSize, H = c.headCount, dh = c.headSize
        let n64 = Int64(n), d64 = Int64(d), i64 = Int64(inter), ld3 = Int64(3 * d)
        let scale = Float(1.0 / Double(dh).squareRoot())

        // One n × d buffer carries the residual-stream gradient through the layer, in place:
        // dS2 → dA (+ dZ Wi) → dS1 (LayerNorm backward in place) → dX (+ dQKV Wqkv + adapter).
        var dS2 = try Tensor(uninitialized: [n, d])
        try KernelFailure.check(lt_layernorm_backward(n64, d64, dOutput.pointer, d64, act.outputSum.pointer, d64,
                                                      w.outputNormWeight.pointer, act.outputMean.pointer,
                                                      act.outputInverseStd.pointer, dS2.mutablePointer, d64, nil, nil, 0),
                                "lt_layernorm_backward (output)")
        try probe?(.mlpOutput, dS2.pointer)
        // dZ = gelu'(Z) ⊙ (dS2 W2), the GELU derivative applied in the GEMM's tile epilogue.
        var dG = try Tensor(uninitialized: [n, inter])
        try KernelFailure.check(lt_linear_gelu_backward_input(n64, i64, d64, dS2.pointer, d64, w.outputWeight.pointer, i64,
                                                              act.intermediate.pointer, i64, dG.mutablePointer, i64),
                                "lt_linear_gelu_backward_input (output)")
        // A = LN(S1): dA = dS2 (residual) + dZ Wi, accumulated into the same buffer.
        var dA = dS2
        dS2 = Tensor(uninitializedShape: [0])   // dA stays uniquely referenced (no copy)
        try KernelFailure.check(lt_linear_backward_input(n64, d64, i64, dG.pointer, i64, w.intermediateWeight.pointer, d64,
                                                         dA.mutablePointer, d64, 1), "lt_linear_backward_input (intermediate)")
        // S1 = C Woᵀ + bo + X (+ ΔO): LayerNorm backward in place (dX may alias dY).
        let ds1 = dA.mutablePointer
        try KernelFailure.check(lt_layernorm_backward(n64, d64, ds1, d64, act.attentionSum.pointer, d64,
                                                      w.attentionNormWeight.pointer, act.attentionMean.pointer,
                                                      act.attentionInverseStd.pointer, ds1, d64, nil, nil, 0),
                                "lt_layernorm_backward (attention)")
        var dSum = dA
        dA = Tensor(uninitializedShape: [0])
        // The adapter of the attention output (its dθ, and its part of dC as terms), then
        // dC = dS1 Wo with those terms added to each tile.
        var dC = try Tensor(uninitialized: [n, d])
        let dc = dC.mutablePointer
        let oTerms = try adapter?.backwardTerms(layer: l, input: AdapterInput(act.context.pointer, rows: n, width: d, stride: d),
                                                outputGradients: [AdapterOutput(module: BertProjection.attentionOutput.rawValue,
                                                                                dSum.mutablePointer, stride: d)],
                                                parameterGradients: &gradients, inputGradient: true) ?? []
        try LowRankTerm.withCTerms(oTerms, rows: n, column: { $0.isEmpty ? 0 : nil }) { terms, count in
            try KernelFailure.check(lt_linear_backward_input_terms(n64, d64, d64, dSum.pointer, d64, w.attentionOutputWeight.pointer,
                                                                   d64, terms, count, dc, d64, 0),
                                    "lt_linear_backward_input_terms (attention output)")
        }
        try probe?(.context, dC.pointer)

        // Attention: dC → dQ, dK, dV (columns of one n × 3d buffer).
        var dQKV = try Tensor(uninitialized: [n, 3 * d])
        var wsSize: Int64 = 0
        try KernelFailure.check(lt_attention_backward_workspace_size(Int64(B), Int64(T), Int64(H), &wsSize),
                                "lt_attention_backward_workspace_size")
        var ws = try Tensor(uninitialized: [Int(wsSize)])
        let qkv = act.queryKeyValue.pointer, dq = dQKV.mutablePointer
        try KernelFailure.check(lt_attention_backward(Int64(B), Int64(T), Int64(H), Int64(dh), scale, qkv, ld3, qkv + d, ld3,
                                                      qkv + 2 * d, ld3, mask, act.attentionProbabilities.pointer, dC.pointer,
                                                      d64, dq, ld3, dq + d, ld3, dq + 2 * d, ld3, ws.mutablePointer),
                                "lt_attention_backward")

        // The adapter of Q, K, V (its dθ, and its part of dX as terms); X: residual (dS1, already
        // in the buffer) + dQKV Wqkv (one GEMM) with the terms added to each tile; dS1 is not read
        // any more, so dX accumulates over it.
        let qkvTerms = try adapter?.backwardTerms(layer: l, input: AdapterInput(act.input.pointer, rows: n, width: d, stride: d),
                                                  outputGradients: queryKeyValueOutputs(dq, d: d),
                                                  parameterGradients: &gradients, inputGradient: wantInputGradient) ?? []
        if wantInputGradient {
            let dx = dSum.mutablePointer
            try LowRankTerm.withCTerms(qkvTerms, rows: n, column: { $0.isEmpty ? 0 : nil }) { terms, count in
                try KernelFailure.check(lt_linear_backward_input_terms(n64, d64, ld3, dq, ld3, w.queryKeyValueWeight.pointer, d64,
                                                                       terms, count, dx, d64, 1), "lt_linear_backward_input_terms (QKV)")
            }
        }
        withExtendedLifetime((dQKV, dC, ws)) {}
        return wantInputGradient ? dSum : Tensor(uninitializedShape: [0])
    }
}
