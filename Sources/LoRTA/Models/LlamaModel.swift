import CKernels
import Foundation

/// The frozen weights of one decoder block, in Hugging Face's layout and row order.
///
/// Query, key and value are one `StackedProjection` (rows `[q; k; v]`, output
/// `[n × (H + 2·H_kv)·d_h]`), gate and up another (`[n × 2I]`). Matrices stay in their stored
/// type (Float32, F16/BF16, or a GGUF block format).
public struct LlamaLayerWeights: Sendable {
    /// `input_layernorm.weight` `[d]`.
    public internal(set) var attentionNormWeight: Tensor
    /// `q_proj | k_proj | v_proj`.
    var queryKeyValue: StackedProjection
    /// `o_proj` `[d, H·d_h]`.
    public internal(set) var attentionOutput: QuantizedMatrix
    /// `post_attention_layernorm.weight` `[d]`.
    public internal(set) var mlpNormWeight: Tensor
    /// `gate_proj | up_proj`.
    var gateUp: StackedProjection
    /// `down_proj` `[d, I]`.
    public internal(set) var down: QuantizedMatrix
}

/// Which rows of logits a forward pass computes.
public enum LogitSelection: Sendable {
    /// The last token of each sequence (generation): `[B, vocab]`. The output projection —
    /// a fifth of SmolLM2's flops — runs on B rows only.
    case last
    /// Every token: `[B·T, vocab]` (scoring, perplexity).
    case all
    /// None (fill the cache only): an empty `[0, vocab]` tensor.
    case none
}

/// A Llama-family causal language model (SmolLM2, Llama 2/3-style checkpoints without rope
/// scaling) with frozen weights, run by the C kernels of `lt_nn.h` and `lt_quant.h`.
///
/// ```swift
/// let model = try LlamaModel(contentsOf: URL(filePath: "assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
/// var cache = try model.makeCache(capacity: 256)
/// let logits = try model.forward(promptIDs, cache: &cache)       // [1, vocab]
/// ```
///
/// Weights keep the type they are stored in: a GGUF's quantized blocks are read in place from
/// the memory-mapped file (135M parameters in Q4_1: ~90 MB instead of 540 MB as Float32), a
/// Hugging Face checkpoint's F32/F16/BF16 tensors likewise. GGUF files store the rows of the
/// query and key projections permuted for llama.cpp's rotary convention; they are put back in
/// Hugging Face's order on load, so the model — and adapters trained on it — use the names and
/// layout of `transformers` and PEFT. Results do not depend on the thread count.
public struct LlamaModel: Sendable {
    public let configuration: LlamaConfiguration
    /// `embed_tokens` `[vocab, d]`.
    public internal(set) var embedding: QuantizedMatrix
    public internal(set) var layers: [LlamaLayerWeights]
    /// `model.norm.weight` `[d]`.
    public internal(set) var finalNormWeight: Tensor
    /// `lm_head` `[vocab, d]` (the embedding itself when tied).
    public internal(set) var output: QuantizedMatrix
    /// Where the weights came from (a path), for messages.
    public let source: String
    /// The file or directory the model was read from, kept so ``export(to:format:replacing:overwrite:)``
    /// can carry its metadata and tokenizer over (nil for a model built another way).
    public internal(set) var origin: LlamaModelOrigin? = nil

    /// Builds the model from named weights (Hugging Face names, see ``LlamaWeightNames``).
    /// - Throws: ``LlamaError/missingWeight(_:)``, ``LlamaError/weightShapeMismatch(name:expected:actual:)``,
    ///   ``QuantizedMatrixError`` for a storage type without a decoder.
    init(configuration c: LlamaConfiguration, weights: some LlamaWeightSource) throws {
        let d = c.hiddenSize
        func matrix(_ name: String, _ shape: [Int]) throws -> QuantizedMatrix {
            guard let actual = weights.shape(of: name) else { throw LlamaError.missingWeight(weights.storedName(name)) }
            guard actual == shape else {
                throw LlamaError.weightShapeMismatch(name: weights.storedName(name), expected: shape, actual: actual)
            }
            return try weights.matrix(name)
        }
        func vector(_ name: String) throws -> Tensor {
            guard let actual = weights.shape(of: name) else { throw LlamaError.missingWeight(weights.storedName(name)) }
            guard actual == [d] else {
                throw LlamaError.weightShapeMismatch(name: weights.storedName(name), expected: [d], actual: actual)
            }
            return try weights.vector(name)
        }
        let names = LlamaWeightNames.self
        configuration = c
        source = weights.sourceDescription
        embedding = try matrix(names.embedding, [c.vocabularySize, d])
        var layers: [LlamaLayerWeights] = []
        layers.reserveCapacity(c.layerCount)
        for l in 0..<c.layerCount {
            let q = try matrix(names.layer(l, "self_attn.q_proj.weight"), [c.queryWidth, d])
            let k = try matrix(names.layer(l, "self_attn.k_proj.weight"), [c.keyValueWidth, d])
            let v = try matrix(names.layer(l, "self_attn.v_proj.weight"), [c.keyValueWidth, d])
            let gate = try matrix(names.layer(l, "mlp.gate_proj.weight"), [c.intermediateSize, d])
            let up = try matrix(names.layer(l, "mlp.up_proj.weight"), [c.intermediateSize, d])
            layers.append(LlamaLayerWeights(
                attentionNormWeight: try vector(names.layer(l, "input_layernorm.weight")),
                queryKeyValue: try StackedProjection([q, k, v], name: names.layer(l, "self_attn.qkv")),
                attentionOutput: try matrix(names.layer(l, "self_attn.o_proj.weight"), [d, c.queryWidth]),
                mlpNormWeight: try vector(names.layer(l, "post_attention_layernorm.weight")),
                gateUp: try StackedProjection([gate, up], name: names.layer(l, "mlp.gate_up")),
                down: try matrix(names.layer(l, "mlp.down_proj.weight"), [d, c.intermediateSize])))
        }
        self.layers = layers
        finalNormWeight = try vector(names.finalNorm)
        output = c.tiedEmbeddings ? embedding : try matrix(names.output, [c.vocabularySize, d])
        prefault()
    }

    /// Maps every weight read in place from a file into the page tables, so the first forward
    /// pass is not slowed by page faults (called by the initializers; cheap when already done).
    public func prefault() {
        embedding.prefault()
        if !configuration.tiedEmbeddings { output.prefault() }
        for l in layers {
            l.queryKeyValue.prefault(); l.attentionOutput.prefault(); l.gateUp.prefault(); l.down.prefault()
        }
    }

    /// A cache for `batchSize` sequences of up to `capacity` tokens each.
    /// - Throws: ``LlamaError/invalidParameter(name:value:expected:)`` for a non-positive size or
    ///   a capacity beyond the context length.
    public func makeCache(batchSize: Int = 1, capacity: Int) throws -> KVCache {
        guard batchSize >= 1 else {
            throw LlamaError.invalidParameter(name: "batchSize", value: "\(batchSize)", expected: "at least 1")
        }
        guard capacity >= 1, capacity <= configuration.contextLength else {
            throw LlamaError.invalidParameter(name: "capacity", value: "\(capacity)",
                                              expected: "1...\(configuration.contextLength) (the context length)")
        }
        return try KVCache(layerCount: configuration.layerCount, batchSize: batchSize, capacity: capacity,
                           width: configuration.keyValueWidth)
    }

    /// A cache for one pass from position 0 whose keys and values would be thrown away
    /// (training, scoring, observation): it stores nothing (``KVCache`` `isTransient`). Same
    /// checks as ``makeCache(batchSize:capacity:)``.
    func makeTransientCache(batchSize: Int, length: Int) throws -> KVCache {
        _ = try makeCache(batchSize: batchSize, capacity: 1)      // the batch size check
        guard length >= 1, length <= configuration.contextLength else {
            throw LlamaError.contextExceeded(length: length, maximum: configuration.contextLength)
        }
        return KVCache(transientBatchSize: batchSize, length: length, for: configuration)
    }

    /// Bytes of the stored weights (as kept in memory: quantized blocks count at their size).
    public var weightByteCount: Int {
        var total = embedding.byteCount + finalNormWeight.count * 4
        if !configuration.tiedEmbeddings { total += output.byteCount }
        for l in layers {
            total += l.queryKeyValue.byteCount + l.attentionOutput.byteCount + l.gateUp.byteCount
                + l.down.byteCount + 4 * (l.attentionNormWeight.count + l.mlpNormWeight.count)
        }
        return total
    }

    /// Storage types of the matrices and how many matrices use each (for `lorta info`).
    public var matrixTypeCounts: [GGMLType: Int] {
        var counts: [GGMLType: Int] = [:]
        counts[embedding.type, default: 0] += 1
        if !configuration.tiedEmbeddings { counts[output.type, default: 0] += 1 }
        for l in layers {
            for t in l.queryKeyValue.types + l.gateUp.types + [l.attentionOutput.type, l.down.type] {
                counts[t, default: 0] += 1
            }
        }
        return counts
    }

    /// Runs `tokens` — `cache.batchSize` sequences of `T` new tokens each, row-major
    /// (`tokens[b·T + t]`) — after the tokens already in `cache`, appends their keys and values
    /// to it, and returns the requested logits. With `ablation`, its components are mean-ablated
    /// at every position (``MeanAblation``; docs/math.md §8.1).
    ///
    /// - Returns: `[B, vocab]` for ``LogitSelection/last``, `[B·T, vocab]` for
    ///   ``LogitSelection/all`` (row `b·T + t`), `[0, vocab]` for ``LogitSelection/none``.
    /// - Throws: ``LlamaError/emptyInput``, ``LlamaError/tokenOutOfRange(id:position:vocabularySize:)``,
    ///   ``LlamaError/contextExceeded(length:maximum:)`` (cache capacity or context length),
    ///   ``LlamaError/cacheMismatch(_:)`` (another model's cache, or a token count that is not a
    ///   multiple of the batch size), ``CircuitError`` for an ablation of another model. The cache
    ///   is unchanged when it throws.
    /// - Complexity: O(L · n · (d·(H + 2H_kv)·d_h + H·d_h·d + 3·d·I) + L · B·H·T·(past+T)·d_h)
    ///   flops for n = B·T, plus n (or B) · vocab · d for the logits.
    public func forward(_ tokens: [Int32], cache: inout KVCache, logits selection: LogitSelection = .last,
                        adapter: (any Adapter)? = nil, ablation: MeanAblation? = nil) throws -> Tensor {
        let B = cache.batchSize
        let x = try hiddenStates(tokens, cache: &cache, adapter: adapter, record: nil, ablation: ablation)
        return try logits(hidden: x, B: B, T: tokens.count / B, selection: selection, scratch: ScratchBuffer())
    }

    /// The decoder stack: the last hidden state `[B·T, d]` (before the final norm) of `tokens`
    /// after the cache's tokens. With `adapter`, every adapted projection adds its update; with
    /// `record`, each layer's activations are kept for the backward pass (training, past = 0).
    /// With `ablation`, the ablated heads' context columns (before o_proj and its adapter) and
    /// the ablated MLPs' outputs (what the MLP adds to the residual stream) move towards their
    /// means at every position; the observer and the record see the ablated activations.
    func hiddenStates(_ tokens: [Int32], cache: inout KVCache, adapter: (any Adapter)?,
                      record: LlamaActivationRecord?,
                      observer: (observer: ActivationObserver, batch: TokenBatch)? = nil,
                      ablation: MeanAblation? = nil) throws -> Tensor {
        let c = configuration
        if let ablation { try ablation.validate(for: c.observationShape) }
        let ablation = ablation.flatMap { $0.ablated.isEmpty ? nil : $0 }
        guard cache.layerCount == c.layerCount, cache.width == c.keyValueWidth else {
            throw LlamaError.cacheMismatch("the cache was made for \(cache.layerCount) layers of width \(cache.width), "
                                           + "the model has \(c.layerCount) of width \(c.keyValueWidth)")
        }
        let B = cache.batchSize
        guard !tokens.isEmpty else { throw LlamaError.emptyInput }
        guard tokens.count % B == 0 else {
            throw LlamaError.cacheMismatch("\(tokens.count) tokens do not split into \(B) sequences of equal length")
        }
        let T = tokens.count / B, past = cache.length
        guard past + T <= cache.capacity else { throw LlamaError.contextExceeded(length: past + T, maximum: cache.capacity) }
        guard past + T <= c.contextLength else { throw LlamaError.contextExceeded(length: past + T, maximum: c.contextLength) }
        if let i = tokens.firstIndex(where: { $0 < 0 || Int($0) >= c.vocabularySize }) {
            throw LlamaError.tokenOutOfRange(id: tokens[i], position: past + i % T, vocabularySize: c.vocabularySize)
        }
        if let adapter { try adapter.validate(for: adapterHost) }
        if record != nil, past != 0 {
            throw LlamaError.invalidParameter(name: "cache", value: "\(past) tokens", expected: "an empty cache when recording")
        }
        try Runtime.initialize()

        let n = B * T, d = c.hiddenSize, inter = c.intermediateSize
        let H = c.headCount, Hkv = c.keyValueHeadCount, dh = c.headDimension
        let qw = c.queryWidth, kvw = c.keyValueWidth, qkvw = qw + 2 * kvw
        let eps = c.rmsNormEpsilon
        let scale = Float(1.0 / Double(dh).squareRoot())
        let invFreq = c.rotaryInverseFrequencies
        var positions = [Int32](repeating: 0, count: n)
        for b in 0..<B { for t in 0..<T { positions[b * T + t] = Int32(past + t) } }

        let scratch = ScratchBuffer()
        var x = try Tensor(uninitialized: [n, d])
        try embedding.gatherRows(tokens, into: &x)
        var h = try Tensor(uninitialized: [n, d])
        var qkv = try Tensor(uninitialized: [n, qkvw])
        var ctx = try Tensor(uninitialized: [n, qw])
        var gu = try Tensor(uninitialized: [n, 2 * inter])
        var act = try Tensor(uninitialized: [n, inter])
        var attnFloats: Int64 = 0
        try KernelFailure.check(lt_causal_attention_workspace_size(Int64(B), Int64(T), Int64(past), Int64(H), &attnFloats),
                                "lt_causal_attention_workspace_size")
        var attnWork = try Tensor(uninitialized: [Int(attnFloats)])

        // Work on copies of the cache's buffers: the cache changes only when every layer ran.
        var keys = cache.keys, values = cache.values
        cache.keys = []; cache.values = []
        defer { if cache.keys.isEmpty { cache.keys = keys; cache.values = values } }

        // The MLP's contribution to the residual stream (x after the block − x before the MLP),
        // only when an observer wants it.
        let observesMLP = observer?.observer.observationPoints.contains { if case .mlpOutput = $0 { return true } else { return false } } ?? false
        // An ablated MLP needs the stream before it too (kept in the same buffer).
        let ablatesAnyMLP = ablation.map { a in (0..<c.layerCount).contains { a.ablatesMLP(layer: $0) } } ?? false
        let keepsMiddle = observesMLP || ablatesAnyMLP
        var mlpOut = try Tensor(uninitialized: [keepsMiddle ? n : 0, d])
        let xp = x.mutablePointer, hp = h.mutablePointer, qkvp = qkv.mutablePointer, mlpp = mlpOut.mutablePointer
        let ctxp = ctx.mutablePointer, gup = gu.mutablePointer, actp = act.mutablePointer
        let n64 = Int64(n), d64 = Int64(d)
        try positions.withUnsafeBufferPointer { pos in
            try invFreq.withUnsafeBufferPointer { freq in
                for (l, w) in layers.enumerated() {
                    var saved = record.map { _ in LlamaLayerActivations() }
                    saved?.input = try x.copy()
                    // Attention: h = RMSNorm(x); [q|k|v] = h Wqkvᵀ (+ adapters); rotate q, k; cache k, v.
                    try KernelFailure.check(lt_rmsnorm_forward(n64, d64, eps, xp, d64, w.attentionNormWeight.pointer,
                                                               hp, d64, nil), "lt_rmsnorm_forward")
                    let qkvColumns = ["q_proj": 0, "k_proj": qw, "v_proj": qw + kvw]
                    let qkvTerms = try adapter?.forwardTerms(layer: l, input: AdapterInput(hp, rows: n, width: d, stride: d),
                                                             modules: ["q_proj", "k_proj", "v_proj"]) ?? []
                    try w.queryKeyValue.apply(n: n, x: hp, ldx: d, into: qkvp, ldy: qkvw, accumulate: false, scratch: scratch,
                                              terms: qkvTerms, column: { qkvColumns[$0] })
                    try KernelFailure.check(lt_rope_forward(n64, Int64(H), Int64(dh), Int64(c.rotaryDimension),
                                                            pos.baseAddress, freq.baseAddress, qkvp, Int64(qkvw)),
                                            "lt_rope_forward (query)")
                    try KernelFailure.check(lt_rope_forward(n64, Int64(Hkv), Int64(dh), Int64(c.rotaryDimension),
                                                            pos.baseAddress, freq.baseAddress, qkvp + qw, Int64(qkvw)),
                                            "lt_rope_forward (key)")
                    // Keys and values: appended to the cache, or (transient cache, past = 0) read
                    // where they are, in q|k|v.
                    let kp: UnsafeMutablePointer<Float>, vp: UnsafeMutablePointer<Float>, ldkv: Int, cacheRows: Int
                    if cache.isTransient {
                        (kp, vp, ldkv, cacheRows) = (qkvp + qw, qkvp + qw + kvw, qkvw, T)
                    } else {
                        (kp, vp, ldkv, cacheRows) = (keys[l].mutablePointer, values[l].mutablePointer, kvw, cache.capacity)
                        for b in 0..<B {
                            for t in 0..<T {
                                let src = qkvp + (b * T + t) * qkvw
                                let row = (b * cache.capacity + past + t) * kvw
                                (kp + row).update(from: src + qw, count: kvw)
                                (vp + row).update(from: src + qw + kvw, count: kvw)
                            }
                        }
                    }
                    try KernelFailure.check(lt_causal_attention_forward(
                        Int64(B), Int64(T), Int64(past), Int64(H), Int64(Hkv), Int64(dh), scale,
                        qkvp, Int64(qkvw), kp, Int64(ldkv), vp, Int64(ldkv), Int64(cacheRows),
                        nil, ctxp, Int64(qw), attnWork.mutablePointer),
                        "lt_causal_attention_forward")
                    ablation?.ablateHeads(layer: l, context: ctxp, rows: n, ld: qw)
                    if saved != nil {
                        saved?.queryKeyValue = try qkv.copy()
                        saved?.context = try ctx.copy()
                    }
                    // x += ctx Woᵀ (+ adapter)
                    let oTerms = try adapter?.forwardTerms(layer: l, input: AdapterInput(ctxp, rows: n, width: qw, stride: qw),
                                                           modules: ["o_proj"]) ?? []
                    try w.attentionOutput.multiplyTransposed(n: n, x: ctxp, ldx: qw, into: xp, ldy: d,
                                                             accumulate: true, scratch: scratch, terms: oTerms, module: "o_proj")
                    saved?.middle = try x.copy()
                    if keepsMiddle { mlpp.update(from: xp, count: n * d) }
                    // MLP: h = RMSNorm(x); x += (silu(h Wgᵀ) ∘ h Wuᵀ) Wdᵀ (+ adapters)
                    try KernelFailure.check(lt_rmsnorm_forward(n64, d64, eps, xp, d64, w.mlpNormWeight.pointer,
                                                               hp, d64, nil), "lt_rmsnorm_forward")
                    let guTerms = try adapter?.forwardTerms(layer: l, input: AdapterInput(hp, rows: n, width: d, stride: d),
                                                            modules: ["gate_proj", "up_proj"]) ?? []
                    // [g|u] = h Wguᵀ (+ adapters), and silu(g) ∘ u on each tile of u (one pass)
                    try w.gateUp.applySwiGLU(n: n, x: hp, ldx: d, into: gup, ldy: 2 * inter, width: inter,
                                             activation: actp, lda: inter, scratch: scratch, terms: guTerms,
                                             column: { ["gate_proj": 0, "up_proj": inter][$0] })
                    saved?.gateUp = try gu.copy()
                    let downTerms = try adapter?.forwardTerms(layer: l, input: AdapterInput(actp, rows: n, width: inter, stride: inter),
                                                              modules: ["down_proj"]) ?? []
                    try w.down.multiplyTransposed(n: n, x: actp, ldx: inter, into: xp, ldy: d,
                                                  accumulate: true, scratch: scratch, terms: downTerms, module: "down_proj")
                    // Mean ablation of the MLP: M = x − x_middle becomes M' = M + s(μ − M) (exactly μ
                    // when s = 1) and x = x_middle + M'; the buffer keeps M' for the observer.
                    let mlpAblated = ablation?.ablatesMLP(layer: l) ?? false
                    if mlpAblated, let ablation {
                        let s = ablation.strength
                        try ablation.means[.mlp(layer: l)]!.withUnsafeBufferPointer { mu in
                            guard let m = mu.baseAddress, mu.count == d else {
                                throw KernelFailure(function: "LlamaModel.hiddenStates", status: "MLP mean of width \(mu.count)")
                            }
                            for i in 0..<n {
                                let xr = xp + i * d, mr = mlpp + i * d
                                for j in 0..<d {
                                    let middle = mr[j]
                                    let ablated = s == 1 ? m[j] : (xr[j] - middle) + s * (m[j] - (xr[j] - middle))
                                    mr[j] = ablated
                                    xr[j] = middle + ablated
                                }
                            }
                        }
                    }
                    if let saved { record?.layers.append(saved) }
                    // Observation: each head's context, the MLP's output, the residual stream after the block.
                    if let o = observer {
                        if observesMLP && !mlpAblated { for i in 0..<(n * d) { mlpp[i] = xp[i] - mlpp[i] } }
                        try o.observer.notify(layer: l, batch: o.batch, context: ctxp, ldContext: qw,
                                              mlpOutput: observesMLP ? UnsafePointer(mlpp) : nil, output: xp,
                                              shape: c.observationShape)
                    }
                }
            }
        }
        cache.keys = keys
        cache.values = values
        if !cache.isTransient { cache.length = past + T }
        withExtendedLifetime((qkv, ctx, gu, act, attnWork, h, mlpOut)) {}
        return x
    }

    /// Final RMSNorm and output projection of the selected rows of the last hidden state.
    private func logits(hidden x: Tensor, B: Int, T: Int, selection: LogitSelection, scratch: ScratchBuffer) throws -> Tensor {
        let V = configuration.vocabularySize
        let rows: [Int]
        switch selection {
        case .none: return try Tensor(zeros: [0, V])
        case .all: rows = Array(0..<(B * T))
        case .last: rows = (0..<B).map { $0 * T + T - 1 }
        }
        return try logits(hidden: x, rows: rows, scratch: scratch)
    }

    /// Runs `batch` from an empty cache and shows `observer` the activations of its points,
    /// layer by layer (within a layer: the observed heads' attention contexts, then the layer
    /// output, the residual stream after the block), as borrowed views of the forward's buffers.
    /// Rows are right-padded (`attentionMask` 1 then 0): causal attention keeps every real
    /// token's activations independent of the padding after it, and the reductions of
    /// ``ActivationView`` skip the padded rows. Nothing else is computed (no logits).
    /// ``observe(_:adapter:observer:ablation:)`` does the same with mean ablation.
    /// - Parameters:
    ///   - batch: right-padded token ids and attention mask (`B × T`).
    ///   - adapter: an ``Adapter`` for ``adapterHost``, or nil.
    ///   - observer: sees the activations of its observation points.
    /// - Throws: ``ObservationError`` for a point the model does not have or a mask that is not
    ///   right-padded, ``LlamaError`` for bad tokens, ``AdapterError``, and what `observer` throws.
    /// - Complexity: one forward over `batch.count × batch.sequenceLength` tokens.
    public func observe(_ batch: TokenBatch, adapter: (any Adapter)? = nil, observer: ActivationObserver) throws {
        try observe(batch, adapter: adapter, observer: observer, ablation: nil)
    }

    /// ``observe(_:adapter:observer:)`` with mean ablation: the ablated components' activations
    /// move towards their means in the forward (``MeanAblation``), and the observer sees the
    /// ablated activations (an ablated head's context, an ablated MLP's output, and the layer
    /// outputs that follow from them).
    /// - Parameters:
    ///   - batch: right-padded token ids and attention mask (`B × T`).
    ///   - adapter: an ``Adapter`` for ``adapterHost``, or nil.
    ///   - observer: sees the activations of its observation points.
    ///   - ablation: the components to mean-ablate; nil (or an empty ``MeanAblation/ablated``
    ///     set) gives ``observe(_:adapter:observer:)`` bit for bit.
    /// - Throws: ``ObservationError`` for a point the model does not have or a mask that is not
    ///   right-padded, ``LlamaError`` for bad tokens, ``AdapterError``, ``CircuitError`` for a bad
    ///   ablation, and what `observer` throws.
    /// - Complexity: one forward over `batch.count × batch.sequenceLength` tokens.
    public func observe(_ batch: TokenBatch, adapter: (any Adapter)? = nil, observer: ActivationObserver,
                        ablation: MeanAblation?) throws {
        let shape = configuration.observationShape
        for p in observer.observationPoints { try p.validate(for: shape) }
        try checkRightPadded(batch)
        var cache = try makeTransientCache(batchSize: batch.count, length: batch.sequenceLength)
        _ = try hiddenStates(batch.ids, cache: &cache, adapter: adapter, record: nil, observer: (observer, batch),
                             ablation: ablation)
    }

    /// Next-token logits of a right-padded batch, from an empty cache: for each row `b`, the
    /// logits after its last real token (final RMSNorm and output projection of those `B` rows
    /// only). Padding sits after the real tokens, so causal attention keeps it from changing them.
    /// - Parameters:
    ///   - batch: right-padded token ids and attention mask (`B × T`, mask 1 then 0, at least
    ///     one real token per row).
    ///   - adapter: an ``Adapter`` for ``adapterHost``, or nil.
    ///   - observer: sees the activations of its points, as in ``observe(_:adapter:observer:)``, or nil.
    ///   - ablation: components to mean-ablate (``MeanAblation``; applied at every position,
    ///     padding included); nil (or an empty ablated set) gives the plain forward bit for bit.
    /// - Returns: `[B, vocab]` logits, row `b` at sequence `b`'s last real token.
    /// - Throws: ``LlamaError`` for an empty batch, a row without real tokens, or bad tokens,
    ///   ``ObservationError`` for a mask that is not right-padded or a point the model does not
    ///   have, ``AdapterError``, ``CircuitError`` for a bad ablation, and what `observer` throws.
    /// - Complexity: one forward over `B × T` tokens plus `B · vocab · d` for the logits.
    public func nextTokenLogits(_ batch: TokenBatch, adapter: (any Adapter)? = nil, observer: ActivationObserver? = nil,
                                ablation: MeanAblation? = nil) throws -> Tensor {
        if let observer {
            let shape = configuration.observationShape
            for p in observer.observationPoints { try p.validate(for: shape) }
        }
        let last = try checkRightPadded(batch)
        if let b = last.firstIndex(where: { $0 < 0 }) {
            throw LlamaError.invalidParameter(name: "batch", value: "sequence \(b) has no real token",
                                              expected: "at least one real token (mask 1) per sequence")
        }
        var cache = try makeTransientCache(batchSize: batch.count, length: batch.sequenceLength)
        let x = try hiddenStates(batch.ids, cache: &cache, adapter: adapter, record: nil,
                                 observer: observer.map { ($0, batch) }, ablation: ablation)
        let T = batch.sequenceLength
        return try logits(hidden: x, rows: last.enumerated().map { $0.offset * T + $0.element }, scratch: ScratchBuffer())
    }

    /// Checks a right-padded batch (ids and mask `B × T`, each row's mask 1 then 0) and returns
    /// each row's last real position (−1 for a row without real tokens).
    /// - Throws: ``LlamaError/emptyInput`` for an empty batch,
    ///   ``ObservationError/invalidPoint(_:)`` for a real token after padding.
    @discardableResult
    func checkRightPadded(_ batch: TokenBatch) throws -> [Int] {
        let T = batch.sequenceLength
        guard batch.count > 0, T > 0, batch.ids.count == batch.count * T, batch.attentionMask.count == batch.ids.count else {
            throw LlamaError.emptyInput
        }
        var last: [Int] = []
        for b in 0..<batch.count {
            let row = batch.attentionMask[(b * T)..<((b + 1) * T)]
            if let firstPad = row.firstIndex(of: 0), row[firstPad...].contains(where: { $0 != 0 }) {
                throw ObservationError.invalidPoint("sequence \(b) is not right-padded (a real token follows padding)")
            }
            last.append((row.firstIndex(of: 0) ?? row.endIndex) - row.startIndex - 1)
        }
        return last
    }

    /// Final RMSNorm and output projection of the given rows of the last hidden state: `[rows.count, vocab]`.
    func logits(hidden x: Tensor, rows: [Int], scratch: ScratchBuffer) throws -> Tensor {
        let c = configuration, d = c.hiddenSize, V = c.vocabularySize
        var h = try Tensor(uninitialized: [rows.count, d])
        let hp = h.mutablePointer, xp = x.pointer
        for (i, r) in rows.enumerated() {
            try KernelFailure.check(lt_rmsnorm_forward(1, Int64(d), c.rmsNormEpsilon, xp + r * d, Int64(d),
                                                       finalNormWeight.pointer, hp + i * d, Int64(d), nil),
                                    "lt_rmsnorm_forward (final)")
        }
        var out = try Tensor(uninitialized: [rows.count, V])
        try output.multiplyTransposed(n: rows.count, x: hp, ldx: d, into: out.mutablePointer, ldy: V,
                                      accumulate: false, scratch: scratch)
        withExtendedLifetime((x, h)) {}
        return out
    }

    /// Logits of every position of one sequence, from an empty cache: `[tokens.count, vocab]`.
    public func logits(for tokens: [Int32]) throws -> Tensor {
        var cache = try makeCache(capacity: max(tokens.count, 1))
        return try forward(tokens, cache: &cache, logits: .all)
    }
}
