import Foundation

/// The architecture of a Llama-family decoder (Hugging Face `LlamaForCausalLM`, llama.cpp's
/// `llama`): token embedding, `layerCount` blocks of RMSNorm → grouped-query causal attention
/// with rotary position embedding → residual, RMSNorm → SwiGLU MLP → residual; final RMSNorm;
/// output projection (tied to the embedding or separate).
///
/// Read from GGUF metadata (`llama.*` keys, see `LlamaModel+GGUF.swift`) or from a Hugging Face
/// `config.json` (``init(contentsOf:)``). Settings the model does not compute — rope scaling,
/// attention or MLP biases, an activation other than SiLU — are refused with
/// ``LlamaError/unsupportedConfiguration(field:value:supported:)``, never approximated.
public struct LlamaConfiguration: Sendable, Equatable {
    public var vocabularySize: Int
    /// Model width `d` (`hidden_size`, `llama.embedding_length`).
    public var hiddenSize: Int
    /// SwiGLU width `I` (`intermediate_size`, `llama.feed_forward_length`).
    public var intermediateSize: Int
    public var layerCount: Int
    /// Query heads `H`.
    public var headCount: Int
    /// Key/value heads `H_kv` (`H` a multiple of it; fewer than `H` = grouped-query attention).
    public var keyValueHeadCount: Int
    /// Width of one head `d_h` (default `d / H`).
    public var headDimension: Int
    /// Leading dimensions of each head that are rotated (even, ≤ `d_h`; default `d_h`).
    public var rotaryDimension: Int
    /// Rotary base θ (`rope_theta`, `llama.rope.freq_base`).
    public var ropeTheta: Float
    public var rmsNormEpsilon: Float
    /// Longest sequence the model was trained for (`max_position_embeddings`,
    /// `llama.context_length`); prompts plus generated tokens must fit.
    public var contextLength: Int
    /// True when the output projection is the token embedding (no separate `lm_head`).
    public var tiedEmbeddings: Bool

    /// Query width `H · d_h`.
    public var queryWidth: Int { headCount * headDimension }
    /// Key (and value) width `H_kv · d_h`.
    public var keyValueWidth: Int { keyValueHeadCount * headDimension }

    /// Explicit values, validated.
    /// - Throws: ``LlamaError/invalidConfigurationValue(field:value:expected:)``.
    public init(vocabularySize: Int, hiddenSize: Int, intermediateSize: Int, layerCount: Int,
                headCount: Int, keyValueHeadCount: Int? = nil, headDimension: Int? = nil,
                rotaryDimension: Int? = nil, ropeTheta: Float = 10_000, rmsNormEpsilon: Float = 1e-5,
                contextLength: Int = 2048, tiedEmbeddings: Bool = false) throws(LlamaError) {
        self.vocabularySize = vocabularySize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.keyValueHeadCount = keyValueHeadCount ?? headCount
        let dh = headDimension ?? (headCount > 0 ? hiddenSize / headCount : 0)
        self.headDimension = dh
        self.rotaryDimension = rotaryDimension ?? dh
        self.ropeTheta = ropeTheta
        self.rmsNormEpsilon = rmsNormEpsilon
        self.contextLength = contextLength
        self.tiedEmbeddings = tiedEmbeddings
        try validate()
    }

    /// Reads a Hugging Face `config.json` of a `LlamaForCausalLM` (also accepted: `model_type`
    /// "llama" without `architectures`). Both spellings of the rotary base are read:
    /// `rope_theta` and transformers 5's `rope_parameters.rope_theta`.
    /// - Throws: ``LlamaError``.
    public init(contentsOf url: URL) throws(LlamaError) {
        guard FileManager.default.fileExists(atPath: url.path) else { throw .fileNotFound(path: url.path) }
        let data: Data
        do { data = try RegularFile.read(url) } catch {
            throw .unreadableFile(path: url.path, reason: error.reason)
        }
        try self.init(json: data, path: url.path)
    }

    /// Parses the bytes of a `config.json` (see ``init(contentsOf:)``).
    public init(json data: Data, path: String = "config.json") throws(LlamaError) {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data) } catch {
            throw .unreadableFile(path: path, reason: "not valid JSON")
        }
        guard let dict = object as? [String: Any] else {
            throw .unreadableFile(path: path, reason: "the top level is not a JSON object")
        }
        let source = (path as NSString).lastPathComponent
        let fields = JSONFields(dict, source: source)

        let modelType = try fields.string("model_type")
        let architectures = try fields.stringArray("architectures")
        if let architectures, !architectures.contains("LlamaForCausalLM") {
            throw .unsupportedArchitecture(architectures.joined(separator: ", "), source: source)
        }
        if let modelType, modelType != "llama" {
            throw .unsupportedArchitecture(modelType, source: source)
        }
        if modelType == nil && architectures == nil {
            throw .missingConfigurationField("model_type", source: source)
        }
        let act = try fields.string("hidden_act") ?? "silu"
        guard act == "silu" else {
            throw .unsupportedConfiguration(field: "hidden_act", value: "\"\(act)\"", supported: "\"silu\"")
        }
        for key in ["attention_bias", "mlp_bias"] where try fields.bool(key) == true {
            throw .unsupportedConfiguration(field: key, value: "true", supported: "false")
        }
        // Rotary settings: transformers ≤ 4 writes rope_theta (+ rope_scaling); 5 writes
        // rope_parameters {rope_theta, rope_type}.
        var theta = try fields.float("rope_theta")
        var ropeType: String? = nil
        if let params = dict["rope_parameters"], !(params is NSNull) {
            guard let p = params as? [String: Any] else {
                throw .invalidConfigurationValue(field: "rope_parameters", value: "\(params)", expected: "an object")
            }
            let pf = JSONFields(p, source: source, prefix: "rope_parameters.")
            theta = try pf.float("rope_theta") ?? theta
            ropeType = try pf.string("rope_type")
        }
        if let scaling = dict["rope_scaling"], !(scaling is NSNull) {
            guard let s = scaling as? [String: Any] else {
                throw .invalidConfigurationValue(field: "rope_scaling", value: "\(scaling)", expected: "an object or null")
            }
            let sf = JSONFields(s, source: source, prefix: "rope_scaling.")
            if let t = try sf.string("rope_type") { ropeType = t } else if let t = try sf.string("type") { ropeType = t }
        }
        if let ropeType, ropeType != "default" {
            throw .unsupportedConfiguration(field: "rope type", value: "\"\(ropeType)\"", supported: "\"default\" (no rope scaling)")
        }
        let headCount = try fields.requiredInt("num_attention_heads")
        let hidden = try fields.requiredInt("hidden_size")
        let headDim = try fields.int("head_dim")
        let partial = try fields.float("partial_rotary_factor")
        var rotary: Int? = nil
        if let partial {
            let dh = headDim ?? hidden / max(headCount, 1)
            rotary = Int((Float(dh) * partial).rounded(.down))
        }
        try self.init(vocabularySize: try fields.requiredInt("vocab_size"),
                      hiddenSize: hidden,
                      intermediateSize: try fields.requiredInt("intermediate_size"),
                      layerCount: try fields.requiredInt("num_hidden_layers"),
                      headCount: headCount,
                      keyValueHeadCount: try fields.int("num_key_value_heads"),
                      headDimension: headDim,
                      rotaryDimension: rotary,
                      ropeTheta: theta ?? 10_000,
                      rmsNormEpsilon: try fields.float("rms_norm_eps") ?? 1e-6,
                      contextLength: try fields.int("max_position_embeddings") ?? 2048,
                      tiedEmbeddings: try fields.bool("tie_word_embeddings") ?? false)
    }

    private func validate() throws(LlamaError) {
        func positive(_ v: Int, _ field: String) throws(LlamaError) {
            guard v >= 1 else { throw .invalidConfigurationValue(field: field, value: "\(v)", expected: "a positive integer") }
        }
        try positive(vocabularySize, "vocab_size")
        try positive(hiddenSize, "hidden_size")
        try positive(intermediateSize, "intermediate_size")
        try positive(layerCount, "num_hidden_layers")
        try positive(headCount, "num_attention_heads")
        try positive(keyValueHeadCount, "num_key_value_heads")
        try positive(headDimension, "head_dim")
        try positive(contextLength, "max_position_embeddings")
        guard vocabularySize <= Int(Int32.max) else {
            throw .invalidConfigurationValue(field: "vocab_size", value: "\(vocabularySize)", expected: "at most \(Int32.max)")
        }
        guard headCount % keyValueHeadCount == 0 else {
            throw .invalidConfigurationValue(field: "num_key_value_heads", value: "\(keyValueHeadCount)",
                                             expected: "a divisor of num_attention_heads (\(headCount))")
        }
        guard rotaryDimension >= 2, rotaryDimension <= headDimension, rotaryDimension % 2 == 0 else {
            throw .invalidConfigurationValue(field: "rotary dimension", value: "\(rotaryDimension)",
                                             expected: "an even number in 2...\(headDimension) (head_dim)")
        }
        guard ropeTheta.isFinite, ropeTheta > 1 else {
            throw .invalidConfigurationValue(field: "rope_theta", value: "\(ropeTheta)", expected: "a finite number > 1")
        }
        guard rmsNormEpsilon.isFinite, rmsNormEpsilon > 0 else {
            throw .invalidConfigurationValue(field: "rms_norm_eps", value: "\(rmsNormEpsilon)", expected: "a finite number > 0")
        }
        // Every size product the model allocates must fit comfortably in Int32 row counts of
        // the kernels' BLAS calls and in memory arithmetic.
        for (v, f) in [(hiddenSize, "hidden_size"), (intermediateSize, "intermediate_size"),
                       (headCount * headDimension, "num_attention_heads × head_dim")] where v > 1 << 20 {
            throw .invalidConfigurationValue(field: f, value: "\(v)", expected: "at most \(1 << 20)")
        }
    }

    /// The rotary inverse frequencies `1 / θ^(2j / d_rot)`, `j < d_rot / 2`, computed in Float32
    /// as transformers does (`1.0 / base ** (arange(0, dim, 2).float() / dim)`).
    public var rotaryInverseFrequencies: [Float] {
        (0..<(rotaryDimension / 2)).map { j in
            1 / powf(ropeTheta, Float(2 * j) / Float(rotaryDimension))
        }
    }

    /// Parameters of the model (embedding, blocks, final norm, and the output projection when
    /// it is not tied).
    public var parameterCount: Int {
        let d = hiddenSize
        let block = d * (queryWidth + 2 * keyValueWidth) + queryWidth * d + 3 * d * intermediateSize + 2 * d
        return vocabularySize * d * (tiedEmbeddings ? 1 : 2) + layerCount * block + d
    }
}

/// Typed access to the fields of a JSON object with ``LlamaError`` messages naming the field.
struct JSONFields {
    let dict: [String: Any]
    let source: String
    var prefix = ""

    init(_ dict: [String: Any], source: String, prefix: String = "") {
        self.dict = dict
        self.source = source
        self.prefix = prefix
    }

    private func value(_ key: String) -> Any? {
        guard let v = dict[key], !(v is NSNull) else { return nil }
        return v
    }

    private func describe(_ v: Any) -> String {
        if let s = v as? String { return "\"\(s)\"" }
        return "\(v)"
    }

    private func isBool(_ v: Any) -> Bool { (v as? NSNumber).map(LoRTA.isBool) ?? false }

    func int(_ key: String) throws(LlamaError) -> Int? {
        guard let v = value(key) else { return nil }
        guard let n = v as? NSNumber, !isBool(v), let i = Int(exactly: n.doubleValue) else {
            throw .invalidConfigurationValue(field: prefix + key, value: describe(v), expected: "an integer")
        }
        return i
    }

    func requiredInt(_ key: String) throws(LlamaError) -> Int {
        guard let i = try int(key) else { throw .missingConfigurationField(prefix + key, source: source) }
        return i
    }

    func float(_ key: String) throws(LlamaError) -> Float? {
        guard let v = value(key) else { return nil }
        guard let n = v as? NSNumber, !isBool(v) else {
            throw .invalidConfigurationValue(field: prefix + key, value: describe(v), expected: "a number")
        }
        return n.floatValue
    }

    func string(_ key: String) throws(LlamaError) -> String? {
        guard let v = value(key) else { return nil }
        guard let s = v as? String else {
            throw .invalidConfigurationValue(field: prefix + key, value: describe(v), expected: "a string")
        }
        return s
    }

    func bool(_ key: String) throws(LlamaError) -> Bool? {
        guard let v = value(key) else { return nil }
        guard isBool(v), let b = v as? Bool else {
            throw .invalidConfigurationValue(field: prefix + key, value: describe(v), expected: "true or false")
        }
        return b
    }

    func stringArray(_ key: String) throws(LlamaError) -> [String]? {
        guard let v = value(key) else { return nil }
        guard let a = v as? [Any], let s = a as? [String] else {
            throw .invalidConfigurationValue(field: prefix + key, value: describe(v), expected: "an array of strings")
        }
        return s
    }
}
