import CKernels
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Where a ``LlamaModel`` was read from (kept by the loaders for ``LlamaModel/export(to:format:replacing:overwrite:)``).
public enum LlamaModelOrigin: Sendable {
    /// A GGUF file: its metadata (architecture, tokenizer, chat template, …) as read.
    case gguf(metadata: GGUFMetadata)
    /// A Hugging Face directory (`config.json`, `model.safetensors`, tokenizer files).
    case huggingFace(directory: URL)
}

/// The file format ``LlamaModel/export(to:format:replacing:overwrite:)`` writes.
public enum LlamaExportFormat: Sendable, Equatable {
    /// Element type of the safetensors file.
    public enum HuggingFaceDType: String, Sendable, Equatable {
        case float32, bfloat16
    }
    /// Storage type of the GGUF matrices (norm vectors are always F32, as llama.cpp's converter
    /// writes them).
    public enum GGUFType: Sendable, Equatable {
        /// Every tensor F32 (`general.file_type` 0).
        case f32
        /// Matrices F16, round to nearest even (`general.file_type` 1).
        case f16
        /// Matrices Q8_0 — the token embedding and output projection included, as
        /// `convert_hf_to_gguf.py --outtype q8_0` does; a matrix whose rows are not a multiple of
        /// 32 falls back to F16 as the converter does (`general.file_type` 7).
        case q8_0
    }
    /// A Hugging Face directory: `model.safetensors`, `config.json`, tokenizer files.
    case huggingFace(dtype: HuggingFaceDType)
    /// One GGUF file (version 3).
    case gguf(type: GGUFType)
}

/// Errors of ``LlamaModel/export(to:format:replacing:overwrite:)``.
public enum LlamaExportError: Error, Equatable, CustomStringConvertible {
    /// A replacement names no weight of the model.
    case unknownOverride(name: String, reason: String)
    /// A replacement's shape differs from the weight's.
    case overrideShapeMismatch(name: String, expected: [Int], actual: [Int])
    /// A replacement holds NaN or infinity (first offending element, row-major).
    case nonFiniteOverride(name: String, index: Int, value: Float)
    /// A weight (Hugging Face name) holds a value the output type cannot store: NaN, infinity,
    /// or a finite value beyond the type's range (F16 ≥ 65520; for Q8_0 a block scale beyond
    /// F16's); the first such element in Hugging Face's layout (coordinates outermost first)
    /// and its value. Found before anything is written.
    case unrepresentableWeight(name: String, type: String, element: [Int], value: Float)
    /// The target exists and `overwrite` is false.
    case targetExists(path: String)
    /// The target cannot be written (missing or read-only parent directory, a file where a
    /// directory is needed or the other way round, a failed system call).
    case unwritableTarget(path: String, reason: String)
    /// What the export needs about the source (GGUF metadata, tokenizer) is not available.
    case missingSource(String)
    /// The source's tokenizer cannot be expressed in the target format.
    case unsupportedTokenizer(String)
    /// A combination this version does not implement.
    case notSupported(String)

    public var description: String {
        switch self {
        case .unknownOverride(let n, let r): return "cannot replace \"\(n)\": \(r)"
        case .overrideShapeMismatch(let n, let e, let a):
            return "the replacement for \"\(n)\" has shape \(a), the model's weight has \(e)"
        case .nonFiniteOverride(let n, let i, let v):
            return "the replacement for \"\(n)\" holds \(v) at element \(i) (only finite values can be exported)"
        case .unrepresentableWeight(let n, let t, let element, let value):
            return "the weight \"\(n)\" cannot be written as \(t): \(StoredFloat.problem(type: t, element: element, value: value))"
        case .targetExists(let p): return "\(p) exists (pass overwrite: true to replace it)"
        case .unwritableTarget(let p, let r): return "cannot write \(p): \(r)"
        case .missingSource(let r): return "cannot export: \(r)"
        case .unsupportedTokenizer(let r): return "cannot export the tokenizer: \(r)"
        case .notSupported(let r): return "not supported yet: \(r)"
        }
    }
}

// MARK: - Weights by Hugging Face name

extension QuantizedMatrix {
    /// Rows `range` as a matrix of the same type (a copy of those rows' bytes).
    func slicingRows(_ range: Range<Int>, name: String) throws -> QuantizedMatrix {
        guard range.lowerBound >= 0, range.upperBound <= rows else {
            throw QuantizedMatrixError.rowOutOfRange(name: name, row: range.upperBound, rows: rows)
        }
        let rb = rowByteCount
        let bytes = withUnsafeBytes { raw in
            Data(UnsafeRawBufferPointer(rebasing: raw[(range.lowerBound * rb)..<(range.upperBound * rb)]))
        }
        if type == .f32 {
            return try QuantizedMatrix(Tensor(shape: [range.count, columns]) { buf in
                bytes.withUnsafeBytes { raw in
                    if raw.count > 0 { UnsafeMutableRawPointer(buf.baseAddress!).copyMemory(from: raw.baseAddress!, byteCount: raw.count) }
                }
            }, name: name)
        }
        return try QuantizedMatrix(type: type, rows: range.count, columns: columns, bytes: bytes, name: name)
    }
}

extension StackedProjection {
    /// The stored part covering output rows `range` (a whole part: parts never straddle runs).
    func part(rows range: Range<Int>, name: String) throws -> QuantizedMatrix {
        for (run, offset) in zip(runs, offsets) where offset <= range.lowerBound && range.upperBound <= offset + run.rows {
            if offset == range.lowerBound && run.rows == range.count { return run }
            return try run.slicingRows((range.lowerBound - offset)..<(range.upperBound - offset), name: name)
        }
        throw QuantizedMatrixError.rowOutOfRange(name: name, row: range.upperBound, rows: outputWidth)
    }
}

extension LlamaModel {
    /// Hugging Face names of every weight, in llama.cpp's converter order (embedding, each
    /// block's norms and projections, final norm, `lm_head.weight` when not tied).
    public var weightNames: [String] {
        let n = LlamaWeightNames.self
        var names = [n.embedding]
        for l in 0..<configuration.layerCount {
            for s in Self.layerSuffixes { names.append(n.layer(l, s)) }
        }
        names.append(n.finalNorm)
        if !configuration.tiedEmbeddings { names.append(n.output) }
        return names
    }

    static let layerSuffixes = [
        "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
        "self_attn.o_proj.weight", "post_attention_layernorm.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
        "mlp.down_proj.weight",
    ]

    /// `(layer, suffix)` of `model.layers.<layer>.<suffix>`, nil for other names.
    private static func layerAndSuffix(_ name: String) -> (Int, String)? {
        let parts = name.split(separator: ".", maxSplits: 3).map(String.init)
        guard parts.count == 4, parts[0] == "model", parts[1] == "layers", let l = Int(parts[2]),
              String(l) == parts[2] else { return nil }
        return (l, parts[3])
    }

    /// The shape of weight `name` (outermost first), or nil when the model has no such weight.
    public func weightShape(named name: String) -> [Int]? {
        let c = configuration, d = c.hiddenSize
        switch name {
        case LlamaWeightNames.embedding: return [c.vocabularySize, d]
        case LlamaWeightNames.finalNorm: return [d]
        case LlamaWeightNames.output: return c.tiedEmbeddings ? nil : [c.vocabularySize, d]
        default: break
        }
        guard let (l, suffix) = Self.layerAndSuffix(name), l >= 0, l < c.layerCount else { return nil }
        switch suffix {
        case "input_layernorm.weight", "post_attention_layernorm.weight": return [d]
        case "self_attn.q_proj.weight": return [c.queryWidth, d]
        case "self_attn.k_proj.weight", "self_attn.v_proj.weight": return [c.keyValueWidth, d]
        case "self_attn.o_proj.weight": return [d, c.queryWidth]
        case "mlp.gate_proj.weight", "mlp.up_proj.weight": return [c.intermediateSize, d]
        case "mlp.down_proj.weight": return [d, c.intermediateSize]
        default: return nil
        }
    }

    /// The matrix `name` (Hugging Face name and row order) in its stored type, e.g.
    /// `model.layers.3.self_attn.q_proj.weight`.
    /// - Throws: ``LlamaError/missingWeight(_:)`` for a name that is not a matrix of the model.
    public func storedMatrix(named name: String) throws -> QuantizedMatrix {
        let c = configuration
        switch name {
        case LlamaWeightNames.embedding: return embedding
        case LlamaWeightNames.output where !c.tiedEmbeddings: return output
        default: break
        }
        guard let (l, suffix) = Self.layerAndSuffix(name), l >= 0, l < layers.count else {
            throw LlamaError.missingWeight(name)
        }
        let w = layers[l], qw = c.queryWidth, kvw = c.keyValueWidth, inter = c.intermediateSize
        switch suffix {
        case "self_attn.q_proj.weight": return try w.queryKeyValue.part(rows: 0..<qw, name: name)
        case "self_attn.k_proj.weight": return try w.queryKeyValue.part(rows: qw..<(qw + kvw), name: name)
        case "self_attn.v_proj.weight": return try w.queryKeyValue.part(rows: (qw + kvw)..<(qw + 2 * kvw), name: name)
        case "self_attn.o_proj.weight": return w.attentionOutput
        case "mlp.gate_proj.weight": return try w.gateUp.part(rows: 0..<inter, name: name)
        case "mlp.up_proj.weight": return try w.gateUp.part(rows: inter..<(2 * inter), name: name)
        case "mlp.down_proj.weight": return w.down
        default: throw LlamaError.missingWeight(name)
        }
    }

    /// The weight `name` widened to Float32 (Hugging Face name, shape and row order; stored
    /// blocks decoded exactly as ggml does). Matrices and norm vectors.
    /// - Throws: ``LlamaError/missingWeight(_:)`` for an unknown name.
    public func weight(named name: String) throws -> Tensor {
        if name == LlamaWeightNames.finalNorm { return finalNormWeight }
        if let (l, suffix) = Self.layerAndSuffix(name), l >= 0, l < layers.count {
            if suffix == "input_layernorm.weight" { return layers[l].attentionNormWeight }
            if suffix == "post_attention_layernorm.weight" { return layers[l].mlpNormWeight }
        }
        return try storedMatrix(named: name).dequantized()
    }
}

// MARK: - Export

/// llama.cpp's `general.file_type` values (gguf-py `LlamaFileType`).
private func ggufFileType(_ t: LlamaExportFormat.GGUFType) -> UInt32 {
    switch t {
    case .f32: return 0
    case .f16: return 1
    case .q8_0: return 7
    }
}

extension LlamaModel {
    /// Writes the model — with `replacing` matrices in place of the stored ones — as a Hugging
    /// Face directory or a GGUF file.
    ///
    /// - `replacing`: Float32 tensors under Hugging Face names (``weightNames``, e.g.
    ///   `model.layers.3.self_attn.q_proj.weight`), in Hugging Face's shape and row order (the
    ///   query/key rows are permuted to llama.cpp's order for GGUF here). Norm vectors may be
    ///   replaced too. A tied model has no `lm_head.weight`: replace the embedding.
    /// - ``LlamaExportFormat/huggingFace(dtype:)``: a directory with `model.safetensors` (every
    ///   weight under its Hugging Face name, stored matrices dequantized; F32 or BF16 rounded to
    ///   nearest even; no `lm_head.weight` when tied, as `save_pretrained` writes it),
    ///   `config.json` (`LlamaForCausalLM`) and the tokenizer: copied from a Hugging Face source
    ///   (`tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json`,
    ///   `chat_template.jinja`, `generation_config.json` when present), built from a GGUF
    ///   source's `tokenizer.ggml.*` metadata (see ``LlamaTokenizerExport``).
    /// - ``LlamaExportFormat/gguf(type:)``: the metadata of ``ggufMetadata(type:)`` — a GGUF
    ///   source's unchanged except `general.file_type`; for a Hugging Face source the `llama.*`
    ///   keys built from ``configuration`` and the `tokenizer.*` keys from `tokenizer.json` and
    ///   `tokenizer_config.json`, as llama.cpp's converter writes them (checked by reading the
    ///   tokenizer back before anything is written); tensors under GGUF names with the query/key
    ///   rows permuted back to llama.cpp's order, and no `output.weight` when the embedding is tied.
    ///
    /// Every value written is checked first: each weight must be finite and storable in the
    /// output type (an F16 or Q8_0 matrix whose values overflow the type's range is refused,
    /// not written as infinity).
    ///
    /// Atomic: a file is written to a temporary name and renamed; a directory is written into a
    /// temporary directory beside the target and swapped in as a whole
    /// (``AtomicFileWriter/replaceDirectory(at:_:)``; an existing target is replaced only with
    /// `overwrite`, only once the new one is complete, and no file of it is kept).
    /// - Throws: ``LlamaExportError`` (bad replacements, a weight the output type cannot store
    ///   (``LlamaExportError/unrepresentableWeight(name:type:element:value:)``), target
    ///   problems, missing or inexpressible tokenizer, a tokenizer that would not read back the
    ///   same), and the writers' errors for failed writes.
    /// - Complexity: O(parameters); holds one copy of the encoded file in memory.
    public func export(to url: URL, format: LlamaExportFormat, replacing: [String: Tensor] = [:],
                       overwrite: Bool = false) throws {
        try validateOverrides(replacing)
        let wantsDirectory: Bool
        if case .huggingFace = format { wantsDirectory = true } else { wantsDirectory = false }
        try Self.checkTarget(url, directory: wantsDirectory, overwrite: overwrite)
        switch format {
        case .huggingFace(let dtype):
            try exportHuggingFace(to: url, dtype: dtype, overrides: replacing)
        case .gguf(let type):
            try exportGGUF(to: url, type: type, overrides: replacing)
        }
    }

    /// Checks names, shapes and values of the replacements.
    func validateOverrides(_ overrides: [String: Tensor]) throws(LlamaExportError) {
        for name in overrides.keys.sorted() {
            let t = overrides[name]!
            guard let shape = weightShape(named: name) else {
                if name == LlamaWeightNames.output {
                    throw .unknownOverride(name: name, reason: "the output projection is tied to \(LlamaWeightNames.embedding); replace that")
                }
                throw .unknownOverride(name: name, reason: "the model has no weight of that name (names look like "
                                       + "\"model.layers.0.self_attn.q_proj.weight\"; see LlamaModel.weightNames)")
            }
            guard t.shape == shape else { throw .overrideShapeMismatch(name: name, expected: shape, actual: t.shape) }
            let bad: (Int, Float)? = t.withUnsafeBufferPointer { b in
                for i in 0..<b.count where !b[i].isFinite { return (i, b[i]) }
                return nil
            }
            if let (i, v) = bad { throw .nonFiniteOverride(name: name, index: i, value: v) }
        }
    }

    /// The Float32 weight to write: the replacement or the stored weight dequantized.
    private func exportedWeight(_ name: String, _ overrides: [String: Tensor]) throws -> Tensor {
        if let t = overrides[name] { return t }
        return try weight(named: name)
    }

    // MARK: Hugging Face

    private func exportHuggingFace(to url: URL, dtype: LlamaExportFormat.HuggingFaceDType,
                                   overrides: [String: Tensor]) throws {
        var files: [(String, Data)] = []
        var sourceConfig: [String: Any] = [:]
        var sourceDirectory: URL? = nil
        var tokenIDs: [String: Int] = [:]
        switch origin {
        case .huggingFace(let dir)?:
            sourceDirectory = dir
            let configURL = dir.appendingPathComponent("config.json")
            if let data = try? RegularFile.read(configURL),
               let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
                sourceConfig = object
            }
        case .gguf(let metadata)?:
            let tokenizer = try LlamaTokenizerExport.huggingFaceFiles(fromGGUF: metadata, contextLength: configuration.contextLength)
            files += tokenizer.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
            for (key, field) in [("tokenizer.ggml.bos_token_id", "bos_token_id"), ("tokenizer.ggml.eos_token_id", "eos_token_id"),
                                 ("tokenizer.ggml.padding_token_id", "pad_token_id")] {
                if let v = metadata[key]?.int { tokenIDs[field] = v }
            }
            var generation: [String: Any] = ["_from_model_config": true]
            for (k, v) in tokenIDs { generation[k] = v }
            files.append(("generation_config.json", try Self.jsonData(generation)))
        case nil:
            break
        }
        files.append(("config.json", try Self.jsonData(huggingFaceConfig(base: sourceConfig, dtype: dtype, tokenIDs: tokenIDs))))

        var writer = SafeTensorsWriter()
        writer.metadata = ["format": "pt"]
        writer.requiresFiniteValues = true
        let st: SafeTensorsDType = dtype == .float32 ? .f32 : .bf16
        for name in weightNames {
            do {
                try writer.add(name, try exportedWeight(name, overrides), as: st)
            } catch SafeTensorsError.unrepresentableValue(_, let type, let element, let value) {
                throw LlamaExportError.unrepresentableWeight(name: name, type: type.rawValue, element: element, value: value)
            }
        }

        try Self.writeDirectoryAtomically(url) { temp in
            try writer.write(to: temp.appendingPathComponent("model.safetensors"))
            for (name, data) in files { try Self.writeFile(data, to: temp.appendingPathComponent(name)) }
            if let dir = sourceDirectory {
                for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                             "generation_config.json"] {
                    let src = dir.appendingPathComponent(name)
                    guard FileManager.default.fileExists(atPath: src.path) else { continue }
                    let data: Data
                    do throws(RegularFile.Failure) { data = try RegularFile.read(src) } catch {
                        throw LlamaExportError.missingSource("cannot read \(src.path): \(error.reason)")
                    }
                    try Self.writeFile(data, to: temp.appendingPathComponent(name))
                }
            }
        }
    }

    /// `config.json` of a `LlamaForCausalLM`: the source's fields (Hugging Face source), with
    /// every value ``LlamaConfiguration`` holds written over them.
    func huggingFaceConfig(base: [String: Any], dtype: LlamaExportFormat.HuggingFaceDType,
                           tokenIDs: [String: Int]) -> [String: Any] {
        let c = configuration
        var o = base
        o["architectures"] = ["LlamaForCausalLM"]
        o["model_type"] = "llama"
        o["vocab_size"] = c.vocabularySize
        o["hidden_size"] = c.hiddenSize
        o["intermediate_size"] = c.intermediateSize
        o["num_hidden_layers"] = c.layerCount
        o["num_attention_heads"] = c.headCount
        o["num_key_value_heads"] = c.keyValueHeadCount
        o["head_dim"] = c.headDimension
        o["hidden_act"] = "silu"
        o["max_position_embeddings"] = c.contextLength
        o["rms_norm_eps"] = Double(c.rmsNormEpsilon)
        o["rope_theta"] = Double(c.ropeTheta)
        o["rope_parameters"] = ["rope_type": "default", "rope_theta": Double(c.ropeTheta)] as [String: Any]
        o["rope_scaling"] = NSNull()
        if c.rotaryDimension != c.headDimension {
            o["partial_rotary_factor"] = Double(c.rotaryDimension) / Double(c.headDimension)
        } else {
            o["partial_rotary_factor"] = nil
        }
        o["attention_bias"] = false
        o["mlp_bias"] = false
        o["tie_word_embeddings"] = c.tiedEmbeddings
        o["torch_dtype"] = dtype.rawValue
        o["dtype"] = dtype.rawValue
        for (k, v) in tokenIDs { o[k] = v }
        return o
    }

    // MARK: GGUF

    /// The metadata ``export(to:format:replacing:overwrite:)`` writes into a GGUF file whose
    /// matrices have storage type `type`.
    ///
    /// - Read from a GGUF file: that file's metadata, with `general.file_type` set for `type`.
    /// - Read from a Hugging Face directory: built as llama.cpp's `convert_hf_to_gguf.py` builds
    ///   it, in its order: `general.architecture` (`llama`), `general.type` (`model`),
    ///   `general.name` (the directory's name), `llama.block_count`, `llama.context_length`,
    ///   `llama.embedding_length`, `llama.feed_forward_length`, `llama.attention.head_count`,
    ///   `llama.attention.head_count_kv`, `llama.rope.freq_base`,
    ///   `llama.attention.layer_norm_rms_epsilon`, `llama.attention.key_length` and
    ///   `value_length` (when `config.json` has `head_dim`, as the converter does, or the head
    ///   width is not `d / H`), `general.file_type`,
    ///   `llama.vocab_size`, `llama.rope.dimension_count` (the rotated width), every value taken
    ///   from ``configuration`` (integers uint32, floats float32); then the tokenizer
    ///   (``LlamaTokenizerExport/ggufMetadata(fromHuggingFace:vocabularySize:)``, checked by
    ///   reading it back); then `general.quantization_version` 2. Whether the output projection
    ///   is tied is not metadata: the GGUF loader ties it when the file has no `output.weight`,
    ///   which a tied model does not write.
    ///
    /// - Parameter type: the storage type of the matrices (`general.file_type`).
    /// - Throws: ``LlamaExportError/missingSource(_:)`` for a model not read from a file or a
    ///   directory without `tokenizer.json`; ``LlamaExportError/unsupportedTokenizer(_:)`` for a
    ///   tokenizer GGUF cannot express; ``LlamaExportError/notSupported(_:)`` for a size that does
    ///   not fit uint32.
    /// - Complexity: O(1) for a GGUF source (the metadata is copied on write); O(size of the
    ///   tokenizer files) for a Hugging Face source.
    public func ggufMetadata(type: LlamaExportFormat.GGUFType) throws -> GGUFMetadata {
        switch origin {
        case .gguf(let metadata)?:
            var m = metadata
            m["general.file_type"] = .uint32(ggufFileType(type))
            return m
        case .huggingFace(let directory)?:
            return try huggingFaceGGUFMetadata(directory: directory, type: type)
        case nil:
            throw LlamaExportError.missingSource("a GGUF export needs the model's GGUF metadata or Hugging Face tokenizer, "
                                                 + "and this model was not read from a file")
        }
    }

    /// The GGUF metadata of a model read from the Hugging Face `directory` (see ``ggufMetadata(type:)``).
    private func huggingFaceGGUFMetadata(directory: URL, type: LlamaExportFormat.GGUFType) throws -> GGUFMetadata {
        let c = configuration
        func u32(_ value: Int, _ key: String) throws(LlamaExportError) -> GGUFValue {
            guard let v = UInt32(exactly: value) else {
                throw .notSupported("\(key) = \(value) does not fit the uint32 GGUF stores")
            }
            return .uint32(v)
        }
        let tokenizer = try LlamaTokenizerExport.ggufMetadata(fromHuggingFace: directory, vocabularySize: c.vocabularySize)
        var m = GGUFMetadata()
        m["general.architecture"] = .string("llama")
        m["general.type"] = .string("model")
        m["general.name"] = .string(directory.standardizedFileURL.lastPathComponent)
        m["llama.block_count"] = try u32(c.layerCount, "llama.block_count")
        m["llama.context_length"] = try u32(c.contextLength, "llama.context_length")
        m["llama.embedding_length"] = try u32(c.hiddenSize, "llama.embedding_length")
        m["llama.feed_forward_length"] = try u32(c.intermediateSize, "llama.feed_forward_length")
        m["llama.attention.head_count"] = try u32(c.headCount, "llama.attention.head_count")
        m["llama.attention.head_count_kv"] = try u32(c.keyValueHeadCount, "llama.attention.head_count_kv")
        m["llama.rope.freq_base"] = .float32(c.ropeTheta)
        m["llama.attention.layer_norm_rms_epsilon"] = .float32(c.rmsNormEpsilon)
        // The converter writes the head width when config.json has head_dim; it is needed when
        // the width is not d / H.
        var hasHeadDim = false
        if let data = try? RegularFile.read(directory.appendingPathComponent("config.json")),
           let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
           let v = object["head_dim"], !(v is NSNull) {
            hasHeadDim = true
        }
        if hasHeadDim || c.headDimension != c.hiddenSize / c.headCount {
            m["llama.attention.key_length"] = try u32(c.headDimension, "llama.attention.key_length")
            m["llama.attention.value_length"] = try u32(c.headDimension, "llama.attention.value_length")
        }
        m["general.file_type"] = .uint32(ggufFileType(type))
        m["llama.vocab_size"] = try u32(c.vocabularySize, "llama.vocab_size")
        m["llama.rope.dimension_count"] = try u32(c.rotaryDimension, "llama.rope.dimension_count")
        for (key, value) in tokenizer { m[key] = value }
        m["general.quantization_version"] = .uint32(2)
        return m
    }

    private func exportGGUF(to url: URL, type: LlamaExportFormat.GGUFType, overrides: [String: Tensor]) throws {
        let metadata = try ggufMetadata(type: type)
        let c = configuration
        var writer = GGUFWriter()
        writer.metadata = metadata
        writer.requiresFiniteValues = true
        for name in weightNames {
            var t = try exportedWeight(name, overrides)
            let gname = GGUFLlamaWeights.ggufName(name)
            var heads: Int? = nil
            if name.hasSuffix("self_attn.q_proj.weight") {
                heads = c.headCount
            } else if name.hasSuffix("self_attn.k_proj.weight") {
                heads = c.keyValueHeadCount
            }
            if let heads { t = try Self.permutingToGGUF(t, heads: heads, name: gname) }
            do {
                if t.shape.count < 2 || type == .f32 {
                    try writer.add(gname, t, as: .f32)
                } else if type == .f16 || t.shape[t.shape.count - 1] % 32 != 0 {
                    try writer.add(gname, t, as: .f16)
                } else {
                    try writer.addRaw(gname, type: .q8_0, shape: t.shape, bytes: try GGUFQuantize.q8_0(t, name: gname))
                }
            } catch GGUFError.unrepresentableValue(_, let stored, var element, let value) {
                // Report the element in Hugging Face's row order (query/key rows were permuted).
                if let heads, element.count == 2 {
                    element[0] = Self.permutedOrder(rows: t.shape[0], heads: heads)[element[0]]
                }
                throw LlamaExportError.unrepresentableWeight(name: name, type: "\(stored)", element: element, value: value)
            }
        }
        do {
            try writer.write(to: url)
        } catch GGUFError.fileSystem(let path, let operation, let reason) {
            throw LlamaExportError.unwritableTarget(path: path, reason: "\(operation): \(reason)")
        }
    }

    /// GGUF row order for a query/key matrix in Hugging Face's order (the inverse of
    /// ``GGUFLlamaWeights/unpermutedOrder(rows:heads:)``): GGUF row `h·D + 2i + a` is Hugging
    /// Face row `h·D + a·D/2 + i` (llama.cpp's `permute`).
    static func permutedOrder(rows: Int, heads: Int) -> [Int] {
        let hf = GGUFLlamaWeights.unpermutedOrder(rows: rows, heads: heads)  // hf row r ← gguf row hf[r]
        var order = [Int](repeating: 0, count: rows)
        for (r, g) in hf.enumerated() { order[g] = r }
        return order
    }

    static func permutingToGGUF(_ t: Tensor, heads: Int, name: String) throws -> Tensor {
        let m = try QuantizedMatrix(t, name: name)
        guard heads > 0, m.rows % heads == 0, (m.rows / heads) % 2 == 0 else {
            throw LlamaError.weightShapeMismatch(name: name, expected: [heads * 2, m.columns], actual: t.shape)
        }
        return try m.reorderingRows(permutedOrder(rows: m.rows, heads: heads)).dequantized()
    }

    // MARK: Files

    static func jsonData(_ object: [String: Any]) throws -> Data {
        var data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        data.append(0x0A)
        return data
    }

    /// Writes `data` to `url` (flushed; through ``AtomicFileWriter``).
    static func writeFile(_ data: Data, to url: URL) throws {
        do {
            try AtomicFileWriter.write(data, to: url)
        } catch let f as AtomicFileWriter.Failure {
            throw LlamaExportError.unwritableTarget(path: f.path, reason: "\(f.operation): \(f.reason)")
        }
    }

    /// The target's parent must be a writable directory; an existing target needs `overwrite`
    /// and the same kind (directory or file).
    static func checkTarget(_ url: URL, directory: Bool, overwrite: Bool) throws(LlamaExportError) {
        let fm = FileManager.default
        let path = url.standardizedFileURL.path
        guard !url.lastPathComponent.isEmpty, url.lastPathComponent != "/" else {
            throw .unwritableTarget(path: path, reason: "not a file or directory name")
        }
        let parent = url.standardizedFileURL.deletingLastPathComponent().path
        var parentIsDirectory: ObjCBool = false
        guard fm.fileExists(atPath: parent, isDirectory: &parentIsDirectory), parentIsDirectory.boolValue else {
            throw .unwritableTarget(path: path, reason: "the directory \(parent) does not exist")
        }
        guard access(parent, W_OK) == 0 else {
            throw .unwritableTarget(path: path, reason: "the directory \(parent) is not writable")
        }
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard overwrite else { throw .targetExists(path: path) }
            if isDirectory.boolValue != directory {
                throw .unwritableTarget(path: path, reason: isDirectory.boolValue
                                        ? "it is a directory and a GGUF export writes a file"
                                        : "it is a file and a Hugging Face export writes a directory")
            }
        }
    }

    /// Lets `produce` fill a new temporary directory beside `url`, then swaps it in as a whole
    /// (``AtomicFileWriter/replaceDirectory(at:_:)``: an existing directory is replaced only
    /// once the new one is complete, and put back if the swap fails).
    static func writeDirectoryAtomically(_ url: URL, _ produce: (URL) throws -> Void) throws {
        do {
            try AtomicFileWriter.replaceDirectory(at: url, produce)
        } catch let f as AtomicFileWriter.Failure {
            throw LlamaExportError.unwritableTarget(path: url.standardizedFileURL.path, reason: "\(f.operation) \(f.path): \(f.reason)")
        }
    }
}
