import CKernels
import Foundation

/// The frozen weights of one encoder layer (post-LayerNorm BERT block).
///
/// Query, key and value are stored fused, rows `[query; key; value]` (`3d × d`), so the frozen
/// projections of a layer are one GEMM. `d` = hidden size, `I` = intermediate size.
///
/// The four projection weights may also have a packed copy (``BertModel/packFrozenWeights()``,
/// off by default); changing a weight (e.g. ``BertModel/merged(with:)``) drops its packed copy,
/// so a packed copy always holds the weight beside it.
public struct BertLayerWeights: Sendable {
    /// `[3d, d]`: rows `0..<d` query, `d..<2d` key, `2d..<3d` value (PyTorch `out × in`).
    public internal(set) var queryKeyValueWeight: Tensor { didSet { packedQueryKeyValueWeight = nil } }
    /// `[3d]`.
    public internal(set) var queryKeyValueBias: Tensor
    /// `attention.output.dense`: `[d, d]`, `[d]`.
    public internal(set) var attentionOutputWeight: Tensor { didSet { packedAttentionOutputWeight = nil } }
    public internal(set) var attentionOutputBias: Tensor
    /// `attention.output.LayerNorm`: `[d]`, `[d]`.
    public internal(set) var attentionNormWeight: Tensor
    public internal(set) var attentionNormBias: Tensor
    /// `intermediate.dense`: `[I, d]`, `[I]`.
    public internal(set) var intermediateWeight: Tensor { didSet { packedIntermediateWeight = nil } }
    public internal(set) var intermediateBias: Tensor
    /// `output.dense`: `[d, I]`, `[d]`.
    public internal(set) var outputWeight: Tensor { didSet { packedOutputWeight = nil } }
    public internal(set) var outputBias: Tensor
    /// `output.LayerNorm`: `[d]`, `[d]`.
    public internal(set) var outputNormWeight: Tensor
    public internal(set) var outputNormBias: Tensor

    /// Packed copies of the four projection weights for the forward products
    /// (``BertModel/packFrozenWeights()``); nil unless packed. Each shares its weight's storage.
    public internal(set) var packedQueryKeyValueWeight: PackedMatrix? = nil
    public internal(set) var packedAttentionOutputWeight: PackedMatrix? = nil
    public internal(set) var packedIntermediateWeight: PackedMatrix? = nil
    public internal(set) var packedOutputWeight: PackedMatrix? = nil

    /// The packed copies that exist (0 to 4).
    var packedMatrices: [PackedMatrix] {
        [packedQueryKeyValueWeight, packedAttentionOutputWeight, packedIntermediateWeight, packedOutputWeight]
            .compactMap { $0 }
    }
}

/// The projections of a layer that adapters can target (``BertModel/adapterHost``); the raw
/// values are the module names adapters use.
public enum BertProjection: String, CaseIterable, Sendable {
    case query, key, value
    /// `attention.output.dense` (PEFT target name "dense" under "attention.output").
    case attentionOutput = "output"
}

/// What one layer's forward saved for the backward (when recording). `n = B·T`.
///
/// The backward of a layer with frozen weights and adapters on Q/K/V/O needs exactly these:
/// the layer input (adapter inputs for Q/K/V, residual path), Q|K|V and the attention
/// probabilities (attention backward), the context (input of the attention output projection),
/// the two pre-LayerNorm sums with their saved mean and 1/std (LayerNorm backward), the
/// LayerNorm output after attention (input of the MLP) and the pre-GELU activation. The GELU
/// output is not kept: with frozen `output.dense` its input gradient is `dY W`, which does not
/// need it.
public struct BertLayerActivations: Sendable {
    /// Layer input `[n, d]` (the previous layer's output; the embeddings for layer 0).
    public let input: Tensor
    /// `[n, 3d]`: columns `[Q | K | V]`, biases included.
    public let queryKeyValue: Tensor
    /// Softmax probabilities `[B, H, T, T]` (padded keys exactly 0).
    public let attentionProbabilities: Tensor
    /// Attention context `P V`, heads concatenated: `[n, d]`.
    public let context: Tensor
    /// `context Woᵀ + bo + input` before the LayerNorm: `[n, d]`; with its mean and 1/std `[n]`.
    public let attentionSum: Tensor
    public let attentionMean: Tensor
    public let attentionInverseStd: Tensor
    /// LayerNorm output after attention `[n, d]` (the MLP input and its residual).
    public let attentionOutput: Tensor
    /// Pre-GELU intermediate activation `[n, I]`.
    public let intermediate: Tensor
    /// `gelu(intermediate) W2ᵀ + b2 + attentionOutput` before the LayerNorm: `[n, d]`; mean, 1/std `[n]`.
    public let outputSum: Tensor
    public let outputMean: Tensor
    public let outputInverseStd: Tensor
    /// Layer output `[n, d]`.
    public let output: Tensor
}

/// What a recorded forward saved: the embedding LayerNorm's input and statistics, then every layer.
public struct BertActivations: Sendable {
    /// `word + position + token type` embeddings before the LayerNorm `[n, d]`; mean, 1/std `[n]`.
    public let embeddingSum: Tensor
    public let embeddingMean: Tensor
    public let embeddingInverseStd: Tensor
    public let layers: [BertLayerActivations]
}

/// The result of ``BertModel/forward(_:adapter:recordingActivations:observer:)``.
public struct BertOutput: Sendable {
    /// Last hidden state `[B·T, d]` (row `b·T + t` is token `t` of sequence `b`; padded
    /// positions are computed as `transformers` does, attending to the unpadded keys).
    public let lastHiddenState: Tensor
    /// Masked mean pooling of ``lastHiddenState`` over the unpadded tokens: `[B, d]`
    /// (sentence-transformers' pooling; all-MiniLM-L6-v2 normalises it afterwards, we do not).
    public let pooled: Tensor
    /// The saved activations, when asked for.
    public let activations: BertActivations?
}

/// A BERT encoder (Hugging Face `BertModel`, post-LayerNorm) with frozen Float32 weights.
///
/// ```swift
/// let model = try BertModel(directory: URL(filePath: "assets/all-MiniLM-L6-v2"))
/// let batch = try tokenizer.encodeBatch(texts, maxLength: 64)
/// let out = try model.forward(batch)        // out.pooled: [B, 384]
/// ```
///
/// Token type ids are 0 for every token (single-sentence input). Dropout is not applied
/// (inference, and the fine-tuning recipe uses dropout 0). All heavy work runs in the C kernels
/// of `lt_nn.h` and OpenBLAS; results do not depend on the thread count.
public struct BertModel: Sendable {
    public let configuration: BertConfiguration
    /// `[vocab, d]`, `[max_pos, d]`, `[type_vocab, d]`.
    public internal(set) var wordEmbeddings: Tensor
    public internal(set) var positionEmbeddings: Tensor
    public internal(set) var tokenTypeEmbeddings: Tensor
    /// `embeddings.LayerNorm`: `[d]`, `[d]`.
    public internal(set) var embeddingNormWeight: Tensor
    public internal(set) var embeddingNormBias: Tensor
    public internal(set) var layers: [BertLayerWeights]

    /// Loads `config.json` and `model.safetensors` from a model directory.
    /// - Throws: ``BertError`` (missing/unreadable files, configuration, missing weights or
    ///   shapes), or ``SafeTensorsError`` for a corrupt safetensors file.
    public init(directory: URL) throws {
        let configuration = try BertConfiguration(contentsOf: directory.appendingPathComponent("config.json"))
        let weightsURL = directory.appendingPathComponent("model.safetensors")
        guard FileManager.default.fileExists(atPath: weightsURL.path) else {
            throw BertError.fileNotFound(path: weightsURL.path)
        }
        try self.init(configuration: configuration, weights: SafeTensorsReader(contentsOf: weightsURL))
    }

    /// Builds the model from a configuration and the tensors of a safetensors file, named as
    /// `transformers` saves a `BertModel` (`embeddings.word_embeddings.weight`,
    /// `encoder.layer.0.attention.self.query.weight`, …), optionally under a `bert.` prefix
    /// (as in `BertForSequenceClassification` checkpoints). Extra tensors (pooler, heads) are
    /// ignored. F16/BF16/F64 weights are converted to Float32.
    /// - Throws: ``BertError/missingWeight(_:)``, ``BertError/weightShapeMismatch(name:expected:actual:)``,
    ///   ``SafeTensorsError`` for a tensor that is not floating point.
    public init(configuration c: BertConfiguration, weights: SafeTensorsReader) throws {
        let prefix = weights.entry("embeddings.word_embeddings.weight") == nil &&
            weights.entry("bert.embeddings.word_embeddings.weight") != nil ? "bert." : ""
        func load(_ name: String, _ shape: [Int]) throws -> Tensor {
            let full = prefix + name
            guard let e = weights.entry(full) else { throw BertError.missingWeight(full) }
            guard e.shape == shape else {
                throw BertError.weightShapeMismatch(name: full, expected: shape, actual: e.shape)
            }
            return try weights.tensor(full)
        }
        let d = c.hiddenSize, inter = c.intermediateSize
        configuration = c
        wordEmbeddings = try load("embeddings.word_embeddings.weight", [c.vocabularySize, d])
        positionEmbeddings = try load("embeddings.position_embeddings.weight", [c.maxPositionEmbeddings, d])
        tokenTypeEmbeddings = try load("embeddings.token_type_embeddings.weight", [c.typeVocabularySize, d])
        embeddingNormWeight = try load("embeddings.LayerNorm.weight", [d])
        embeddingNormBias = try load("embeddings.LayerNorm.bias", [d])
        var layers: [BertLayerWeights] = []
        for l in 0..<c.layerCount {
            let p = "encoder.layer.\(l)."
            let q = try load(p + "attention.self.query.weight", [d, d])
            let k = try load(p + "attention.self.key.weight", [d, d])
            let v = try load(p + "attention.self.value.weight", [d, d])
            let qb = try load(p + "attention.self.query.bias", [d])
            let kb = try load(p + "attention.self.key.bias", [d])
            let vb = try load(p + "attention.self.value.bias", [d])
            layers.append(BertLayerWeights(
                queryKeyValueWeight: try Tensor(q.scalars + k.scalars + v.scalars, shape: [3 * d, d]),
                queryKeyValueBias: try Tensor(qb.scalars + kb.scalars + vb.scalars, shape: [3 * d]),
                attentionOutputWeight: try load(p + "attention.output.dense.weight", [d, d]),
                attentionOutputBias: try load(p + "attention.output.dense.bias", [d]),
                attentionNormWeight: try load(p + "attention.output.LayerNorm.weight", [d]),
                attentionNormBias: try load(p + "attention.output.LayerNorm.bias", [d]),
                intermediateWeight: try load(p + "intermediate.dense.weight", [inter, d]),
                intermediateBias: try load(p + "intermediate.dense.bias", [inter]),
                outputWeight: try load(p + "output.dense.weight", [d, inter]),
                outputBias: try load(p + "output.dense.bias", [d]),
                outputNormWeight: try load(p + "output.LayerNorm.weight", [d]),
                outputNormBias: try load(p + "output.LayerNorm.bias", [d])))
        }
        self.layers = layers
    }

    // MARK: - packed frozen weights (opt-in)

    /// Packs every layer's frozen projection weights — Q|K|V, attention output, intermediate and
    /// output dense — once into the GEMM core's layout (``PackedMatrix``), so the forward's
    /// products (also the forward of ``gradients(_:labels:adapter:head:)`` and of training) read
    /// their panels in place instead of packing them on every call. Opt-in: it costs one more
    /// Float32 copy of those weights (``packedWeightBytes``; about 85 MB for a 12-layer
    /// MiniLM, 4·L·(16·4 + round_up(3d, 48)·d + round_up(d, 48)·(d + I) + round_up(I, 48)·d)
    /// bytes) for a small gain (the products took 0.96–0.99× the time of the unpacked ones,
    /// docs/math.md §7). Results are bit for bit those of the unpacked model, on every
    /// instruction set, thread count and GEMM backend: with the OpenBLAS backend the packed
    /// copies are not used, and when another instruction set becomes active a copy is repacked
    /// at its next product (once per change). The backward (input gradients) always reads the
    /// weights themselves. Packing again replaces the copies; changing a weight drops its copy.
    /// - Throws: ``MemoryError`` when the copies do not fit the ``MemoryBudget`` (the model is
    ///   then unchanged); ``KernelFailure`` or ``RuntimeError`` from the packing kernel.
    /// - Complexity: O(L·d·(4d + 2I)) copies, on the thread team.
    public mutating func packFrozenWeights() throws {
        var packed = layers
        for l in packed.indices {
            var w = packed[l]
            w.packedQueryKeyValueWeight = try PackedMatrix(w.queryKeyValueWeight)
            w.packedAttentionOutputWeight = try PackedMatrix(w.attentionOutputWeight)
            w.packedIntermediateWeight = try PackedMatrix(w.intermediateWeight)
            w.packedOutputWeight = try PackedMatrix(w.outputWeight)
            packed[l] = w
        }
        layers = packed
    }

    /// Drops the packed copies made by ``packFrozenWeights()`` (their memory is freed once no
    /// other copy of the model holds them); the forward then packs per product again.
    public mutating func dropPackedWeights() {
        for l in layers.indices {
            layers[l].packedQueryKeyValueWeight = nil
            layers[l].packedAttentionOutputWeight = nil
            layers[l].packedIntermediateWeight = nil
            layers[l].packedOutputWeight = nil
        }
    }

    /// Bytes held by the packed weight copies (0 unless ``packFrozenWeights()`` was called).
    public var packedWeightBytes: Int {
        layers.reduce(0) { $0 + $1.packedMatrices.reduce(0) { $0 + $1.byteCount } }
    }

    /// Checks a batch against the model: non-empty, consistent array sizes, mask values 0/1,
    /// length within `max_position_embeddings`, ids within the vocabulary.
    public func validate(_ batch: TokenBatch) throws(BertError) {
        guard batch.count > 0 && batch.sequenceLength > 0 else { throw .emptyBatch }
        let n = batch.count * batch.sequenceLength
        guard batch.ids.count == n, batch.attentionMask.count == n else {
            throw .malformedBatch("ids has \(batch.ids.count) and attentionMask \(batch.attentionMask.count) elements, expected \(batch.count) × \(batch.sequenceLength)")
        }
        guard batch.sequenceLength <= configuration.maxPositionEmbeddings else {
            throw .sequenceTooLong(length: batch.sequenceLength, maximum: configuration.maxPositionEmbeddings)
        }
        for (i, id) in batch.ids.enumerated() where id < 0 || Int(id) >= configuration.vocabularySize {
            throw .tokenOutOfRange(id: id, row: i / batch.sequenceLength, position: i % batch.sequenceLength,
                                   vocabularySize: configuration.vocabularySize)
        }
        if let bad = batch.attentionMask.firstIndex(where: { $0 != 0 && $0 != 1 }) {
            throw .malformedBatch("attentionMask[\(bad)] = \(batch.attentionMask[bad]); expected 0 or 1")
        }
    }

    /// Runs the encoder on a batch and mean-pools the last hidden state over the unpadded tokens.
    ///
    /// - Parameters:
    ///   - batch: token ids and attention mask (`B × T`); token type ids are taken as 0.
    ///   - adapter: an ``Adapter`` for ``adapterHost`` (LoRA, LoRTA) whose terms are added at
    ///     the block's hook points (see `BertBlock.swift`): Q/K/V into the column slices of the
    ///     fused `n × 3d` projection, from the block input; the attention output after its GEMM,
    ///     from the attention context. Nothing is saved for the adapter: its backward
    ///     recomputes what it needs (O(n·d·r)).
    ///   - observer: sees the activations of its ``ActivationObserver/observationPoints``
    ///     (layer outputs, per-head attention contexts) as borrowed views of the forward's own
    ///     buffers, layer by layer; nil (the default) costs nothing.
    ///   - recordingActivations: keep what the backward needs (``BertActivations``): about
    ///     `n·(10d + I) + B·H·T²` floats per layer instead of reusing a few scratch buffers.
    /// - Throws: ``BertError`` for a bad batch (see ``validate(_:)``), ``AdapterError`` for an
    ///   adapter made for another model shape.
    /// - Complexity: O(L · (n·d·(4d + 2I) + B·H·T²·d_h)) flops, n = B·T, plus O(L·n·d·r) per
    ///   adapted projection.
    ///
    /// The same forward with mean ablation of heads or MLPs:
    /// ``forward(_:adapter:recordingActivations:observer:ablation:)``.
    public func forward(_ batch: TokenBatch, adapter: (any Adapter)? = nil,
                        recordingActivations: Bool = false,
                        observer: ActivationObserver? = nil) throws -> BertOutput {
        try forward(batch, adapter: adapter, recordingActivations: recordingActivations, observer: observer, ablation: nil)
    }

    /// ``forward(_:adapter:recordingActivations:observer:)`` with mean ablation of some
    /// components (docs/math.md §8).
    ///
    /// With an ablation, every ablated head's `d_h` columns of the attention context are moved
    /// to `a + s(μ − a)` at every token (padding too) right after the attention, so the attention
    /// output projection *and its adapter* read the ablated context; every ablated MLP's output
    /// `M = S2 − A` becomes `M' = M + s(μ − M)`, so the output LayerNorm reads `A + M'` (`A + μ`
    /// at ``MeanAblation/strength`` 1, where `M' = μ` exactly). An observer sees the ablated
    /// values (head views, MLP output views and everything downstream). A recorded forward
    /// applies the ablation too: its ``BertActivations`` are those of the ablated forward. No
    /// backward of this library takes an ablation (gradients of an ablated forward are not
    /// offered).
    /// - Parameters:
    ///   - batch: token ids and attention mask (`B × T`); token type ids are taken as 0.
    ///   - adapter: an ``Adapter`` for ``adapterHost``, applied as in the plain forward.
    ///   - recordingActivations: keep what the backward needs (``BertActivations``).
    ///   - observer: sees the (ablated) activations of its ``ActivationObserver/observationPoints``.
    ///   - ablation: the components to ablate and their means; nil is the plain forward, bit for
    ///     bit and without extra work.
    /// - Throws: ``BertError`` for a bad batch, ``AdapterError`` for an adapter of another model
    ///   shape, ``CircuitError`` for an ablation of another model shape, an ablated component
    ///   without a mean or a non-finite strength.
    /// - Complexity: the plain forward's plus O(n·d_h) per ablated head and O(n·d) per ablated MLP.
    public func forward(_ batch: TokenBatch, adapter: (any Adapter)? = nil,
                        recordingActivations: Bool = false,
                        observer: ActivationObserver? = nil,
                        ablation: MeanAblation?) throws -> BertOutput {
        try validate(batch)
        try adapter?.validate(for: adapterHost)
        try ablation?.validate(for: configuration.observationShape)
        let ablation = ablation.flatMap { $0.ablated.isEmpty ? nil : $0 }
        let observed = observer?.observationPoints ?? []
        for p in observed { try p.validate(for: configuration.observationShape) }
        try Runtime.initialize()
        let c = configuration
        let B = batch.count, T = batch.sequenceLength, n = B * T
        let d = c.hiddenSize, H = c.headCount, dh = c.headSize, inter = c.intermediateSize
        let scale = Float(1.0 / Double(dh).squareRoot())
        let eps = c.layerNormEpsilon
        let record = recordingActivations
        let mask = batch.attentionMask

        // Embeddings → LayerNorm.
        var embSum = try Tensor(uninitialized: [n, d])
        var embMean = try Tensor(uninitialized: [record ? n : 0])
        var embRstd = try Tensor(uninitialized: [record ? n : 0])
        try batch.ids.withUnsafeBufferPointer { ids in
            try KernelFailure.check(lt_embeddings_forward(Int64(B), Int64(T), Int64(d), ids.baseAddress,
                                                wordEmbeddings.pointer, Int64(c.vocabularySize),
                                                positionEmbeddings.pointer, Int64(c.maxPositionEmbeddings),
                                                tokenTypeEmbeddings.pointer, embSum.mutablePointer, Int64(d)),
                          "lt_embeddings_forward")
        }
        var hidden: Tensor
        if record {
            hidden = try Tensor(uninitialized: [n, d])
            try KernelFailure.check(lt_layernorm_forward(Int64(n), Int64(d), eps, embSum.pointer, Int64(d),
                                               embeddingNormWeight.pointer, embeddingNormBias.pointer,
                                               hidden.mutablePointer, Int64(d),
                                               embMean.mutablePointer, embRstd.mutablePointer), "lt_layernorm_forward")
        } else {
            let e = embSum.mutablePointer   // in place
            try KernelFailure.check(lt_layernorm_forward(Int64(n), Int64(d), eps, e, Int64(d),
                                               embeddingNormWeight.pointer, embeddingNormBias.pointer,
                                               e, Int64(d), nil, nil), "lt_layernorm_forward")
            hidden = embSum
            embSum = Tensor(uninitializedShape: [0])
        }

        // Scratch reused by every layer when not recording.
        let observesMLP = observed.contains { if case .mlpOutput = $0 { return true } else { return false } }
        var scratch: LayerBuffers? = try record ? nil : LayerBuffers(n: n, d: d, inter: inter, B: B, H: H, T: T, statistics: false,
                                                                     mlpOutput: observesMLP)
        var recorded: [BertLayerActivations] = []
        for (l, layer) in layers.enumerated() {
            // Move the scratch out (scratch = nil) so its buffers stay uniquely referenced and the
            // kernels write them in place instead of copying them first (copy-on-write).
            var buf = try scratch.take() ?? LayerBuffers(n: n, d: d, inter: inter, B: B, H: H, T: T, statistics: true,
                                                         mlpOutput: observesMLP)
            try mask.withUnsafeBufferPointer { m in
                try Self.layerForward(layer, index: l, adapter: adapter, input: hidden, buffers: &buf, B: B, T: T, d: d, H: H, dh: dh,
                                      inter: inter, scale: scale, eps: eps, mask: m.baseAddress!, record: record,
                                      ablation: ablation)
            }
            if let observer, !observed.isEmpty {
                let out = record ? buf.output : buf.outputSum
                try withExtendedLifetime((buf.context, out, buf.mlpOutput)) {
                    try observer.notify(layer: l, batch: batch, context: buf.context.pointer, ldContext: d,
                                        mlpOutput: observesMLP ? buf.mlpOutput.pointer : nil,
                                        output: out.pointer, shape: c.observationShape)
                }
            }
            if record {
                recorded.append(BertLayerActivations(
                    input: hidden, queryKeyValue: buf.qkv, attentionProbabilities: try buf.probabilities.reshaped([B, H, T, T]),
                    context: buf.context, attentionSum: buf.attentionSum, attentionMean: buf.attentionMean,
                    attentionInverseStd: buf.attentionRstd, attentionOutput: buf.attentionOutput,
                    intermediate: buf.intermediate, outputSum: buf.outputSum, outputMean: buf.outputMean,
                    outputInverseStd: buf.outputRstd, output: buf.output))
                hidden = buf.output
            } else {
                // The output (written in place over outputSum) becomes the next input; the old
                // input's buffer becomes the next layer's outputSum scratch.
                swap(&buf.outputSum, &hidden)
                scratch = buf
            }
        }

        var pooled = try Tensor(uninitialized: [B, d])
        try mask.withUnsafeBufferPointer { m in
            try KernelFailure.check(lt_mean_pool_forward(Int64(B), Int64(T), Int64(d), hidden.pointer, Int64(d),
                                               m.baseAddress, pooled.mutablePointer, Int64(d)), "lt_mean_pool_forward")
        }
        let activations = record ? BertActivations(embeddingSum: embSum, embeddingMean: embMean,
                                                   embeddingInverseStd: embRstd, layers: recorded) : nil
        return BertOutput(lastHiddenState: hidden, pooled: pooled, activations: activations)
    }
}
