import Foundation

extension LlamaConfiguration {
    /// Reads the architecture from a GGUF file's metadata (`general.architecture` must be
    /// `llama`; keys `llama.block_count`, `llama.embedding_length`, `llama.feed_forward_length`,
    /// `llama.attention.head_count` required; `llama.attention.head_count_kv`,
    /// `llama.attention.key_length`, `llama.rope.dimension_count`, `llama.rope.freq_base`,
    /// `llama.attention.layer_norm_rms_epsilon`, `llama.context_length`, `llama.vocab_size`
    /// optional with llama.cpp's defaults). The output projection is tied when the file has no
    /// `output.weight`. Rope scaling (`llama.rope.scaling.type` other than `none`, or a
    /// `rope_freqs.weight` tensor) is refused.
    /// - Throws: ``LlamaError``.
    public init(gguf reader: GGUFReader, source: String = "GGUF file") throws(LlamaError) {
        let m = reader.metadata
        func wrap<T>(_ key: String, _ body: () throws(GGUFError) -> T) throws(LlamaError) -> T {
            do { return try body() } catch {
                if case .keyNotFound = error { throw .missingConfigurationField(key, source: source) }
                throw .invalidConfigurationValue(field: key, value: m[key]?.description ?? "?", expected: "\(error)")
            }
        }
        func int(_ key: String) throws(LlamaError) -> Int { try wrap(key) { () throws(GGUFError) in try m.int(forKey: key) } }
        func optionalInt(_ key: String) throws(LlamaError) -> Int? { m.contains(key: key) ? try int(key) : nil }
        func optionalFloat(_ key: String) throws(LlamaError) -> Float? {
            m.contains(key: key) ? try wrap(key) { () throws(GGUFError) in try m.float(forKey: key) } : nil
        }
        let arch = try wrap("general.architecture") { () throws(GGUFError) in try m.string(forKey: "general.architecture") }
        guard arch == "llama" else { throw .unsupportedArchitecture(arch, source: source) }
        let p = "llama."
        if m.contains(key: p + "rope.scaling.type") {
            let t = try wrap(p + "rope.scaling.type") { () throws(GGUFError) in try m.string(forKey: p + "rope.scaling.type") }
            guard t == "none" else {
                throw .unsupportedConfiguration(field: p + "rope.scaling.type", value: "\"\(t)\"", supported: "\"none\"")
            }
        }
        if reader.tensorInfo(named: "rope_freqs.weight") != nil {
            throw .unsupportedConfiguration(field: "rope_freqs.weight", value: "present (scaled rotary frequencies)",
                                            supported: "no rope scaling")
        }
        let hidden = try int(p + "embedding_length")
        let heads = try int(p + "attention.head_count")
        let keyLength = try optionalInt(p + "attention.key_length")
        if let valueLength = try optionalInt(p + "attention.value_length"), valueLength != keyLength ?? hidden / max(heads, 1) {
            throw .unsupportedConfiguration(field: p + "attention.value_length", value: "\(valueLength)",
                                            supported: "equal to the key length")
        }
        var vocab = try optionalInt(p + "vocab_size")
        if vocab == nil, let e = reader.tensorInfo(named: "token_embd.weight"), e.shape.count == 2 { vocab = e.shape[0] }
        guard let vocab else { throw .missingConfigurationField(p + "vocab_size", source: source) }
        try self.init(vocabularySize: vocab, hiddenSize: hidden,
                      intermediateSize: try int(p + "feed_forward_length"),
                      layerCount: try int(p + "block_count"),
                      headCount: heads,
                      keyValueHeadCount: try optionalInt(p + "attention.head_count_kv"),
                      headDimension: keyLength,
                      rotaryDimension: try optionalInt(p + "rope.dimension_count"),
                      ropeTheta: try optionalFloat(p + "rope.freq_base") ?? 10_000,
                      rmsNormEpsilon: try optionalFloat(p + "attention.layer_norm_rms_epsilon") ?? 1e-5,
                      contextLength: try optionalInt(p + "context_length") ?? 2048,
                      tiedEmbeddings: reader.tensorInfo(named: "output.weight") == nil)
    }
}

/// Weights of a GGUF file, served under Hugging Face names: `blk.N.attn_q.weight` is
/// `model.layers.N.self_attn.q_proj.weight`, and so on. Matrices stay in their stored type,
/// read in place from the mapped file; the rows of the query and key projections, which
/// llama.cpp's converter permutes for its rotary convention, are put back in Hugging Face's
/// order (a copy of those two matrices only).
struct GGUFLlamaWeights: LlamaWeightSource {
    let reader: GGUFReader
    let configuration: LlamaConfiguration
    let sourceDescription: String

    /// The GGUF name of a Hugging Face tensor name (the name itself when it has no mapping).
    static func ggufName(_ name: String) -> String {
        switch name {
        case LlamaWeightNames.embedding: return "token_embd.weight"
        case LlamaWeightNames.finalNorm: return "output_norm.weight"
        case LlamaWeightNames.output: return "output.weight"
        default: break
        }
        let parts = name.split(separator: ".", maxSplits: 3).map(String.init)
        guard parts.count == 4, parts[0] == "model", parts[1] == "layers", let l = Int(parts[2]) else { return name }
        let map = ["input_layernorm.weight": "attn_norm.weight",
                   "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
                   "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
                   "post_attention_layernorm.weight": "ffn_norm.weight",
                   "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
                   "mlp.down_proj.weight": "ffn_down.weight"]
        guard let suffix = map[parts[3]] else { return name }
        return "blk.\(l).\(suffix)"
    }

    /// Row order that undoes llama.cpp's permutation of a query/key matrix with `heads` heads
    /// of `rows / heads` rows: GGUF row `h·D + 2i + a` holds Hugging Face row `h·D + a·D/2 + i`
    /// (D = head width, a ∈ {0, 1}, i < D/2), so Hugging Face row r comes from that GGUF row.
    static func unpermutedOrder(rows: Int, heads: Int) -> [Int] {
        let D = rows / heads, half = D / 2
        var order = [Int](repeating: 0, count: rows)
        for h in 0..<heads {
            for a in 0..<2 {
                for i in 0..<half { order[h * D + a * half + i] = h * D + 2 * i + a }
            }
        }
        return order
    }

    func storedName(_ name: String) -> String { Self.ggufName(name) }

    func shape(of name: String) -> [Int]? { reader.tensorInfo(named: Self.ggufName(name))?.shape }

    func matrix(_ name: String) throws -> QuantizedMatrix {
        let g = Self.ggufName(name)
        guard let info = reader.tensorInfo(named: g), info.shape.count == 2 else { throw LlamaError.missingWeight(g) }
        let m = try QuantizedMatrix(type: info.type, rows: info.shape[0], columns: info.shape[1],
                                    bytes: try reader.rawBytes(of: g), name: g)
        if name.hasSuffix("self_attn.q_proj.weight") {
            return try m.reorderingRows(Self.unpermutedOrder(rows: m.rows, heads: configuration.headCount))
        }
        if name.hasSuffix("self_attn.k_proj.weight") {
            return try m.reorderingRows(Self.unpermutedOrder(rows: m.rows, heads: configuration.keyValueHeadCount))
        }
        return m
    }

    func vector(_ name: String) throws -> Tensor {
        let g = Self.ggufName(name)
        guard reader.tensorInfo(named: g) != nil else { throw LlamaError.missingWeight(g) }
        return try reader.tensor(named: g)
    }
}

extension LlamaModel {
    /// Loads a model from a GGUF file (`.gguf`) or a Hugging Face directory (`config.json` and
    /// `model.safetensors` or a sharded `model.safetensors.index.json`).
    /// - Throws: ``LlamaError`` (missing files, another architecture, unsupported settings,
    ///   missing or mis-shaped tensors), ``GGUFError`` or ``SafeTensorsError`` for a corrupt file,
    ///   ``QuantizedMatrixError`` for a tensor type this library cannot decode.
    public init(contentsOf url: URL) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw LlamaError.fileNotFound(path: url.path)
        }
        if isDirectory.boolValue {
            let configuration = try LlamaConfiguration(contentsOf: url.appendingPathComponent("config.json"))
            try self.init(configuration: configuration, weights: try SafeTensorsLlamaWeights(directory: url))
            origin = .huggingFace(directory: url)
        } else {
            try self.init(gguf: try GGUFReader(contentsOf: url), source: url.path)
        }
    }

    /// A model from an open GGUF file (see ``init(contentsOf:)``).
    public init(gguf reader: GGUFReader, source: String = "GGUF file") throws {
        let configuration = try LlamaConfiguration(gguf: reader, source: source)
        try self.init(configuration: configuration,
                      weights: GGUFLlamaWeights(reader: reader, configuration: configuration, sourceDescription: source))
        origin = .gguf(metadata: reader.metadata)
    }
}
