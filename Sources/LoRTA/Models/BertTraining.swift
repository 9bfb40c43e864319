import CKernels

/// Classification loss and the full backward to the trainable parameters (head and adapters).
///
/// Only the head and the adapters are trainable. The backward runs through every layer in
/// reverse: LayerNorm (dX only), the GELU MLP with frozen weights (dX only), the attention
/// output projection (frozen dX plus the adapter's factors and input gradient), softmax
/// attention, and the Q/K/V projections (frozen dX plus the adapters). No gradient buffer is
/// ever allocated for a frozen weight; the per-layer temporaries are `O(n·(d + I) + B·H·T²)`.
extension BertModel {
    /// Logits `[B, classes]` of the classification head on the mean-pooled embedding.
    /// - Throws: ``BertError`` for a bad batch, adapters or head.
    public func logits(_ batch: TokenBatch, adapters: BertAdapters? = nil,
                       head: BertClassificationHead) throws -> Tensor {
        try head.validate(for: configuration)
        let out = try forward(batch, adapters: adapters)
        return try Self.headForward(head, pooled: out.pooled, B: batch.count)
    }

    /// Mean softmax cross-entropy of the head's logits against `labels` (one per sequence).
    /// - Throws: ``BertError`` for a bad batch, adapters, head or labels.
    public func loss(_ batch: TokenBatch, labels: [Int32], adapters: BertAdapters? = nil,
                     head: BertClassificationHead) throws -> Float {
        try checkLabels(labels, batch: batch, head: head)
        let z = try logits(batch, adapters: adapters, head: head)
        var loss: Float = 0
        try labels.withUnsafeBufferPointer { y in
            try bertCheck(lt_cross_entropy_forward(Int64(batch.count), Int64(head.classCount), z.pointer,
                                                   Int64(head.classCount), y.baseAddress, &loss, nil),
                          "lt_cross_entropy_forward")
        }
        return loss
    }

    /// Loss and gradients of the head and of the adapters for one batch.
    ///
    /// Runs a recorded forward, then the backward through every layer. The gradients are
    /// returned (not accumulated anywhere); for LoRTA they have the shapes of the factors.
    /// - Parameters:
    ///   - labels: one class index per sequence, in `0 ..< head.classCount`.
    /// - Throws: ``BertError`` for a bad batch, adapters, head or labels.
    /// - Complexity: about twice the forward's flops (one GEMM per frozen matrix for dX) plus
    ///   the adapters' own backward.
    public func gradients(_ batch: TokenBatch, labels: [Int32], adapters: BertAdapters? = nil,
                          head: BertClassificationHead) throws -> BertTrainingGradients {
        try head.validate(for: configuration)
        try checkLabels(labels, batch: batch, head: head)
        let out = try forward(batch, adapters: adapters, recordingActivations: true)
        guard let acts = out.activations else { throw BertError.kernelFailure(function: "forward", status: "no activations") }
        let c = configuration
        let B = batch.count, T = batch.sequenceLength, n = B * T, d = c.hiddenSize
        let classes = head.classCount
        let z = try Self.headForward(head, pooled: out.pooled, B: B)

        // Cross-entropy → head → pooled → last hidden state.
        var loss: Float = 0
        var dZ = Tensor(uninitializedShape: [B, classes])
        try labels.withUnsafeBufferPointer { y in
            try bertCheck(lt_cross_entropy_forward(Int64(B), Int64(classes), z.pointer, Int64(classes), y.baseAddress,
                                                   &loss, nil), "lt_cross_entropy_forward")
            try bertCheck(lt_cross_entropy_backward(Int64(B), Int64(classes), z.pointer, Int64(classes), y.baseAddress,
                                                    1, dZ.mutablePointer, Int64(classes)), "lt_cross_entropy_backward")
        }
        var dW = Tensor(uninitializedShape: [classes, d]), db = Tensor(uninitializedShape: [classes])
        try bertCheck(lt_linear_backward_params(Int64(B), Int64(d), Int64(classes), dZ.pointer, Int64(classes),
                                                out.pooled.pointer, Int64(d), dW.mutablePointer, db.mutablePointer, 0),
                      "lt_linear_backward_params (head)")
        var dPooled = Tensor(uninitializedShape: [B, d])
        try bertCheck(lt_linear_backward_input(Int64(B), Int64(d), Int64(classes), dZ.pointer, Int64(classes),
                                               head.weight.pointer, Int64(d), dPooled.mutablePointer, Int64(d), 0),
                      "lt_linear_backward_input (head)")
        var dHidden = Tensor(uninitializedShape: [n, d])
        try batch.attentionMask.withUnsafeBufferPointer { m in
            try bertCheck(lt_mean_pool_backward(Int64(B), Int64(T), Int64(d), dPooled.pointer, Int64(d), m.baseAddress,
                                                dHidden.mutablePointer, Int64(d)), "lt_mean_pool_backward")
        }

        guard let adapters else {
            return BertTrainingGradients(loss: loss, logits: z, headWeight: dW, headBias: db, adapters: nil)
        }
        var grads = try AdapterGradientBuffers(adapters, model: c)
        try batch.attentionMask.withUnsafeBufferPointer { m in
            for l in layers.indices.reversed() {
                dHidden = try Self.layerBackward(layers[l], acts.layers[l], layer: l, adapters: adapters, grads: &grads,
                                                 dOutput: dHidden, B: B, T: T, c: c, mask: m.baseAddress!,
                                                 wantInputGradient: l > 0)
            }
        }
        return BertTrainingGradients(loss: loss, logits: z, headWeight: dW, headBias: db, adapters: grads.result)
    }

    // MARK: - pieces

    func checkLabels(_ labels: [Int32], batch: TokenBatch, head: BertClassificationHead) throws(BertError) {
        guard labels.count == batch.count else { throw .labelCountMismatch(expected: batch.count, actual: labels.count) }
        for (i, y) in labels.enumerated() where y < 0 || Int(y) >= head.classCount {
            throw .labelOutOfRange(label: y, row: i, classCount: head.classCount)
        }
    }

    static func headForward(_ head: BertClassificationHead, pooled: Tensor, B: Int) throws(BertError) -> Tensor {
        let d = head.weight.shape[1], classes = head.classCount
        var z = Tensor(uninitializedShape: [B, classes])
        try bertCheck(lt_linear_forward(Int64(B), Int64(d), Int64(classes), pooled.pointer, Int64(d), head.weight.pointer,
                                        Int64(d), head.bias.pointer, nil, 0, z.mutablePointer, Int64(classes)),
                      "lt_linear_forward (head)")
        return z
    }

    /// Gradient accumulators in the adapters' layout (zero at the start).
    struct AdapterGradientBuffers {
        var loraA: [[Tensor]] = [], loraB: [[Tensor]] = []
        var lorta: LoRTAFactors?

        init(_ adapters: BertAdapters, model: BertConfiguration) throws {
            switch adapters {
            case .lora(let l):
                loraA = try l.a.map { try $0.map { try Tensor(zeros: $0.shape) } }
                loraB = try l.b.map { try $0.map { try Tensor(zeros: $0.shape) } }
            case .lorta(let a):
                lorta = try LoRTAFactors(zerosFor: a.configuration)
            }
        }

        var result: BertAdapterGradients {
            if let lorta { return .lorta(lorta) }
            return .lora(a: loraA, b: loraB)
        }
    }

    /// Backward of one post-LayerNorm block (see ``layerForward``) given `dY` of its output.
    /// Returns dX of the layer input (empty when `wantInputGradient` is false: layer 0).
    static func layerBackward(_ w: BertLayerWeights, _ act: BertLayerActivations, layer l: Int,
                              adapters: BertAdapters, grads: inout AdapterGradientBuffers, dOutput: Tensor,
                              B: Int, T: Int, c: BertConfiguration, mask: UnsafePointer<Int32>,
                              wantInputGradient: Bool) throws(BertError) -> Tensor {
        let n = B * T, d = c.hiddenSize, inter = c.intermediateSize, H = c.headCount, dh = c.headSize
        let n64 = Int64(n), d64 = Int64(d), i64 = Int64(inter), ld3 = Int64(3 * d)
        let scale = Float(1.0 / Double(dh).squareRoot())

        // One n × d buffer carries the residual-stream gradient through the layer, in place:
        // dS2 → dA (+ dZ Wi) → dS1 (LayerNorm backward in place) → dX (+ Σ dY_m W_m + adapters).
        // Y = LN(S2), S2 = gelu(Z) W2ᵀ + b2 + A.
        var dS2 = Tensor(uninitializedShape: [n, d])
        try bertCheck(lt_layernorm_backward(n64, d64, dOutput.pointer, d64, act.outputSum.pointer, d64,
                                            w.outputNormWeight.pointer, act.outputMean.pointer,
                                            act.outputInverseStd.pointer, dS2.mutablePointer, d64, nil, nil, 0),
                      "lt_layernorm_backward (output)")
        var dG = Tensor(uninitializedShape: [n, inter])
        try bertCheck(lt_linear_backward_input(n64, i64, d64, dS2.pointer, d64, w.outputWeight.pointer, i64,
                                               dG.mutablePointer, i64, 0), "lt_linear_backward_input (output)")
        let g = dG.mutablePointer
        try bertCheck(lt_gelu_backward(n64, i64, act.intermediate.pointer, i64, g, i64, g, i64), "lt_gelu_backward")
        // A = LN(S1): dA = dS2 (residual) + dZ Wi, accumulated into the same buffer.
        var dA = dS2
        dS2 = Tensor(uninitializedShape: [0])   // dA stays uniquely referenced (no copy)
        try bertCheck(lt_linear_backward_input(n64, d64, i64, dG.pointer, i64, w.intermediateWeight.pointer, d64,
                                               dA.mutablePointer, d64, 1), "lt_linear_backward_input (intermediate)")
        // S1 = C Woᵀ + bo + X (+ ΔO): LayerNorm backward in place (dX may alias dY).
        let ds1 = dA.mutablePointer
        try bertCheck(lt_layernorm_backward(n64, d64, ds1, d64, act.attentionSum.pointer, d64,
                                            w.attentionNormWeight.pointer, act.attentionMean.pointer,
                                            act.attentionInverseStd.pointer, ds1, d64, nil, nil, 0),
                      "lt_layernorm_backward (attention)")
        var dSum = dA
        dA = Tensor(uninitializedShape: [0])
        var dC = Tensor(uninitializedShape: [n, d])
        let dc = dC.mutablePointer
        switch adapters {
        case .lora(let lora):
            if let t = lora.slot(.attentionOutput) {
                try loraBackward(lora, layer: l, slot: t, n: n, d: d, x: act.context.pointer, w: w.attentionOutputWeight.pointer,
                                 dY: dSum.pointer, lddy: d, grads: &grads, dX: dc)
            } else {
                try bertCheck(lt_linear_backward_input(n64, d64, d64, dSum.pointer, d64, w.attentionOutputWeight.pointer, d64,
                                                       dc, d64, 0), "lt_linear_backward_input (attention output)")
            }
        case .lorta(let a):
            try bertCheck(lt_linear_backward_input(n64, d64, d64, dSum.pointer, d64, w.attentionOutputWeight.pointer, d64,
                                                   dc, d64, 0), "lt_linear_backward_input (attention output)")
            let targets = lortaTargets(a, [.attentionOutput])
            if !targets.isEmpty {
                try lortaBackward(a, layer: l, input: act.context, targets: targets, dY: dSum.pointer, lddy: d,
                                  grads: &grads, dX: dc)
            }
        }

        // Attention: dC → dQ, dK, dV (columns of one n × 3d buffer).
        var dQKV = Tensor(uninitializedShape: [n, 3 * d])
        var wsSize: Int64 = 0
        try bertCheck(lt_attention_backward_workspace_size(Int64(B), Int64(T), Int64(H), &wsSize),
                      "lt_attention_backward_workspace_size")
        var ws = Tensor(uninitializedShape: [Int(wsSize)])
        let qkv = act.queryKeyValue.pointer, dq = dQKV.mutablePointer
        try bertCheck(lt_attention_backward(Int64(B), Int64(T), Int64(H), Int64(dh), scale, qkv, ld3, qkv + d, ld3,
                                            qkv + 2 * d, ld3, mask, act.attentionProbabilities.pointer, dC.pointer, d64,
                                            dq, ld3, dq + d, ld3, dq + 2 * d, ld3, ws.mutablePointer),
                      "lt_attention_backward")

        // X: residual (dS1, already in the buffer) + Σ_m dY_m W_m + adapters; dS1 is not read
        // any more, so dX accumulates over it.
        let dx: UnsafeMutablePointer<Float>? = wantInputGradient ? dSum.mutablePointer : nil
        let projections: [BertProjection] = [.query, .key, .value]
        switch adapters {
        case .lora(let lora):
            // One fused frozen GEMM dX += dQKV Wqkv, then per adapter dA, dB and s (dY B) A.
            if let dx {
                try bertCheck(lt_linear_backward_input(n64, d64, ld3, dq, ld3, w.queryKeyValueWeight.pointer, d64, dx, d64, 1),
                              "lt_linear_backward_input (QKV)")
            }
            for (m, p) in projections.enumerated() {
                guard let t = lora.slot(p) else { continue }
                try loraBackward(lora, layer: l, slot: t, n: n, d: d, x: act.input.pointer,
                                 w: w.queryKeyValueWeight.pointer + m * d * d, dY: dq + m * d, lddy: 3 * d,
                                 grads: &grads, dX: nil)
                if let dx {
                    let r = Int64(lora.configuration.rank)
                    var size: Int64 = 0
                    try bertCheck(lt_lowrank_workspace_size(d64, d64, r, &size), "lt_lowrank_workspace_size")
                    var work = Tensor(uninitializedShape: [Int(size)])
                    try bertCheck(lt_lowrank_backward_input(n64, d64, d64, r, lora.configuration.scale, dq + m * d, ld3,
                                                            lora.a[l][t].pointer, lora.b[l][t].pointer, dx, d64, 1,
                                                            work.mutablePointer), "lt_lowrank_backward_input (\(p))")
                }
            }
        case .lorta(let a):
            if let dx {
                try bertCheck(lt_linear_backward_input(n64, d64, ld3, dq, ld3, w.queryKeyValueWeight.pointer, d64, dx, d64, 1),
                              "lt_linear_backward_input (QKV)")
            }
            let targets = lortaTargets(a, projections)
            if !targets.isEmpty {
                try lortaBackward(a, layer: l, input: act.input, targets: targets, dY: dq, lddy: 3 * d, grads: &grads,
                                  dX: dx)
            }
        }
        withExtendedLifetime((dQKV, dC)) {}
        return wantInputGradient ? dSum : Tensor(uninitializedShape: [0])
    }

    /// LoRA backward of one projection (W frozen): dA, dB into the accumulators (overwritten:
    /// every (layer, target) is visited once) and `dX = dY W + s (dY B) A` (overwritten) when
    /// `dX` is given.
    static func loraBackward(_ lora: BertLoRAAdapters, layer l: Int, slot t: Int, n: Int, d: Int,
                             x: UnsafePointer<Float>, w: UnsafePointer<Float>, dY: UnsafePointer<Float>, lddy: Int,
                             grads: inout AdapterGradientBuffers, dX: UnsafeMutablePointer<Float>?) throws(BertError) {
        let r = lora.configuration.rank
        var size: Int64 = 0
        try bertCheck(lt_lora_backward_workspace_size(Int64(n), Int64(d), Int64(d), Int64(r), &size),
                      "lt_lora_backward_workspace_size")
        var work = Tensor(uninitializedShape: [Int(size)])
        let da = grads.loraA[l][t].mutablePointer, db = grads.loraB[l][t].mutablePointer
        try bertCheck(lt_lora_backward(Int64(n), Int64(d), Int64(d), Int64(r), lora.configuration.scale, x, Int64(d),
                                       w, Int64(d), lora.a[l][t].pointer, lora.b[l][t].pointer, dY, Int64(lddy), nil,
                                       da, db, dX, Int64(d), 0, work.mutablePointer), "lt_lora_backward")
    }

    /// LoRTA backward of the targets of one layer that share `input`: accumulates the factor
    /// gradients and adds the adapter's input gradient to `dX` (when given).
    static func lortaBackward(_ a: LoRTAAdapter, layer l: Int, input: Tensor, targets: [LoRTATarget],
                              dY: UnsafePointer<Float>, lddy: Int, grads: inout AdapterGradientBuffers,
                              dX: UnsafeMutablePointer<Float>?) throws(BertError) {
        let c = a.configuration
        let n = input.shape[0]
        let (u, p) = try lortaProject(a, input: input, n: n, wantP: true)
        var dims = LoRTAAdapter.dims(c)
        let dOut = targets.map { Int64(c.outputSizes[$0.matrix]) }
        let aIndex = targets.map { c.factorAIndex(forMatrix: $0.matrix) }
        let aPointers: [UnsafePointer<Float>?] = aIndex.map { a.factors.a[$0].pointer }
        let dyPointers: [UnsafePointer<Float>?] = targets.map { dY + $0.slice * c.inputSize }
        var g = grads.lorta!
        grads.lorta = nil   // keep g uniquely referenced
        var gradA: [UnsafeMutablePointer<Float>] = []
        for i in g.a.indices { gradA.append(g.a[i].mutablePointer) }
        let daPointers: [UnsafeMutablePointer<Float>?] = aIndex.map { gradA[$0] }
        let dB = g.b.mutablePointer, dCH = g.cH.mutablePointer, dCL = g.cL.mutablePointer, dCM = g.cM.mutablePointer
        let bytes = lt_lorta_backward_workspace_size(&dims, Int64(n), Int64(targets.count), dOut)
        let din = Int64(c.inputSize)
        let f = a.factors
        let status = LoRTAAdapter.withWorkspace(bytes) { ws in
            withExtendedLifetime((u, p, f, input)) {
                lt_lorta_backward(&dims, Int64(n), input.pointer, din, u.pointer, p.pointer, f.b.pointer, f.cH.pointer,
                                  f.cL.pointer, f.cM.pointer, c.scaling, Int64(l), Int64(targets.count),
                                  targets.map { Int64($0.matrix) }, dOut, aPointers, dyPointers,
                                  Array(repeating: Int64(lddy), count: targets.count), daPointers, dB, dCH, dCL, dCM,
                                  dX, din, ws, bytes)
            }
        }
        grads.lorta = g
        try bertCheck(status, "lt_lorta_backward")
    }
}
