import Foundation

/// The architecture of a BERT encoder, read from a Hugging Face `config.json`.
///
/// Only what the encoder implements is accepted: `hidden_act` "gelu" (the exact erf form),
/// absolute position embeddings, an encoder (not a decoder, no cross-attention). Other valid
/// BERT settings throw ``BertError/unsupportedConfiguration(field:value:supported:)`` rather
/// than silently computing something else.
public struct BertConfiguration: Sendable, Equatable {
    public var vocabularySize: Int
    public var hiddenSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var intermediateSize: Int
    public var maxPositionEmbeddings: Int
    public var typeVocabularySize: Int
    public var layerNormEpsilon: Float

    /// Width of one attention head (`hiddenSize / headCount`).
    public var headSize: Int { hiddenSize / headCount }

    /// A configuration from explicit values (validated like a parsed file).
    /// - Throws: ``BertError/invalidConfigurationValue(field:value:expected:)``.
    public init(vocabularySize: Int, hiddenSize: Int, layerCount: Int, headCount: Int,
                intermediateSize: Int, maxPositionEmbeddings: Int, typeVocabularySize: Int = 2,
                layerNormEpsilon: Float = 1e-12) throws(BertError) {
        self.vocabularySize = vocabularySize
        self.hiddenSize = hiddenSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.intermediateSize = intermediateSize
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.typeVocabularySize = typeVocabularySize
        self.layerNormEpsilon = layerNormEpsilon
        try validate()
    }

    /// Reads `config.json`.
    /// - Throws: ``BertError/fileNotFound(path:)``, ``BertError/unreadableFile(path:reason:)``
    ///   (not JSON, not an object), ``BertError/missingConfigurationField(_:)``,
    ///   ``BertError/invalidConfigurationValue(field:value:expected:)``,
    ///   ``BertError/unsupportedConfiguration(field:value:supported:)``.
    public init(contentsOf url: URL) throws(BertError) {
        guard FileManager.default.fileExists(atPath: url.path) else { throw .fileNotFound(path: url.path) }
        let data: Data
        do { data = try RegularFile.read(url) } catch {
            throw .unreadableFile(path: url.path, reason: error.reason)
        }
        try self.init(json: data, path: url.path)
    }

    /// Parses the bytes of a `config.json` (see ``init(contentsOf:)``).
    public init(json data: Data, path: String = "config.json") throws(BertError) {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data) } catch {
            throw .unreadableFile(path: path, reason: "not valid JSON")
        }
        guard let dict = object as? [String: Any] else {
            throw .unreadableFile(path: path, reason: "the top level is not a JSON object")
        }
        func describe(_ v: Any) -> String {
            if let s = v as? String { return "\"\(s)\"" }
            if v is NSNull { return "null" }
            return "\(v)"
        }
        func isBool(_ v: Any) -> Bool { (v as? NSNumber).map(LoRTA.isBool) ?? false }
        func int(_ key: String, default def: Int? = nil) throws(BertError) -> Int {
            guard let v = dict[key] else {
                if let def { return def }
                throw .missingConfigurationField(key)
            }
            guard let n = v as? NSNumber, !isBool(v), let i = Int(exactly: n.doubleValue) else {
                throw .invalidConfigurationValue(field: key, value: describe(v), expected: "an integer")
            }
            return i
        }
        func string(_ key: String, default def: String) throws(BertError) -> String {
            guard let v = dict[key], !(v is NSNull) else { return def }
            guard let s = v as? String else {
                throw .invalidConfigurationValue(field: key, value: describe(v), expected: "a string")
            }
            return s
        }
        func bool(_ key: String) throws(BertError) -> Bool {
            guard let v = dict[key], !(v is NSNull) else { return false }
            guard isBool(v), let b = v as? Bool else {
                throw .invalidConfigurationValue(field: key, value: describe(v), expected: "true or false")
            }
            return b
        }

        let modelType = try string("model_type", default: "bert")
        guard modelType == "bert" else {
            throw .unsupportedConfiguration(field: "model_type", value: "\"\(modelType)\"", supported: "\"bert\"")
        }
        let act = try string("hidden_act", default: "gelu")
        guard act == "gelu" else {
            throw .unsupportedConfiguration(field: "hidden_act", value: "\"\(act)\"", supported: "\"gelu\" (exact erf form)")
        }
        let position = try string("position_embedding_type", default: "absolute")
        guard position == "absolute" else {
            throw .unsupportedConfiguration(field: "position_embedding_type", value: "\"\(position)\"", supported: "\"absolute\"")
        }
        if try bool("is_decoder") {
            throw .unsupportedConfiguration(field: "is_decoder", value: "true", supported: "false (encoder only)")
        }
        if try bool("add_cross_attention") {
            throw .unsupportedConfiguration(field: "add_cross_attention", value: "true", supported: "false")
        }
        let eps: Float
        if let v = dict["layer_norm_eps"] {
            guard let n = v as? NSNumber, !isBool(v) else {
                throw .invalidConfigurationValue(field: "layer_norm_eps", value: describe(v), expected: "a number")
            }
            eps = n.floatValue
        } else {
            eps = 1e-12
        }
        try self.init(vocabularySize: try int("vocab_size"), hiddenSize: try int("hidden_size"),
                      layerCount: try int("num_hidden_layers"), headCount: try int("num_attention_heads"),
                      intermediateSize: try int("intermediate_size"),
                      maxPositionEmbeddings: try int("max_position_embeddings"),
                      typeVocabularySize: try int("type_vocab_size", default: 2),
                      layerNormEpsilon: eps)
    }

    private func validate() throws(BertError) {
        func positive(_ v: Int, _ field: String) throws(BertError) {
            guard v >= 1 else { throw .invalidConfigurationValue(field: field, value: "\(v)", expected: "a positive integer") }
        }
        try positive(vocabularySize, "vocab_size")
        try positive(hiddenSize, "hidden_size")
        try positive(layerCount, "num_hidden_layers")
        try positive(headCount, "num_attention_heads")
        try positive(intermediateSize, "intermediate_size")
        try positive(maxPositionEmbeddings, "max_position_embeddings")
        try positive(typeVocabularySize, "type_vocab_size")
        guard hiddenSize % headCount == 0 else {
            throw .invalidConfigurationValue(field: "hidden_size", value: "\(hiddenSize)",
                                             expected: "a multiple of num_attention_heads (\(headCount))")
        }
        guard layerNormEpsilon.isFinite && layerNormEpsilon > 0 else {
            throw .invalidConfigurationValue(field: "layer_norm_eps", value: "\(layerNormEpsilon)", expected: "a finite number > 0")
        }
    }
}
