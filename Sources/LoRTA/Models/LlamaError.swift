/// Errors of Llama-family causal language models: files, configuration, weights, inputs.
public enum LlamaError: Error, Equatable, CustomStringConvertible {
    /// A model file or directory does not exist.
    case fileNotFound(path: String)
    /// A file exists but cannot be read or parsed.
    case unreadableFile(path: String, reason: String)
    /// The file describes another architecture (`general.architecture`, `model_type` or
    /// `architectures` in `config.json`).
    case unsupportedArchitecture(String, source: String)
    /// A required configuration value (GGUF metadata key or `config.json` field) is missing.
    case missingConfigurationField(String, source: String)
    /// A configuration value has the wrong type or is out of range.
    case invalidConfigurationValue(field: String, value: String, expected: String)
    /// A valid setting this implementation does not compute (e.g. a rope scaling type,
    /// attention biases, an activation other than SiLU) — refused rather than approximated.
    case unsupportedConfiguration(field: String, value: String, supported: String)
    /// A tensor the configuration needs is absent.
    case missingWeight(String)
    /// A tensor's shape disagrees with the configuration.
    case weightShapeMismatch(name: String, expected: [Int], actual: [Int])
    /// No tokens to run.
    case emptyInput
    /// A token id outside the vocabulary.
    case tokenOutOfRange(id: Int32, position: Int, vocabularySize: Int)
    /// The sequence (cached plus new tokens) would exceed the model's context length or the
    /// cache's capacity.
    case contextExceeded(length: Int, maximum: Int)
    /// A key/value cache that does not belong to this model or batch.
    case cacheMismatch(String)
    /// A generation or evaluation parameter out of range.
    case invalidParameter(name: String, value: String, expected: String)

    public var description: String {
        switch self {
        case .fileNotFound(let p): return "model file not found: \(p)"
        case .unreadableFile(let p, let r): return "cannot read model file \(p): \(r)"
        case .unsupportedArchitecture(let a, let s):
            return "\(s): architecture \"\(a)\" is not supported (supported: llama / LlamaForCausalLM)"
        case .missingConfigurationField(let f, let s): return "\(s): missing required value \"\(f)\""
        case .invalidConfigurationValue(let f, let v, let e): return "\(f) = \(v); expected \(e)"
        case .unsupportedConfiguration(let f, let v, let s): return "\(f) = \(v) is not supported (supported: \(s))"
        case .missingWeight(let n): return "missing tensor \"\(n)\""
        case .weightShapeMismatch(let n, let e, let a):
            return "tensor \"\(n)\" has shape \(a), the configuration needs \(e)"
        case .emptyInput: return "no input tokens"
        case .tokenOutOfRange(let id, let p, let v):
            return "token id \(id) at position \(p) is outside the vocabulary (size \(v))"
        case .contextExceeded(let l, let m):
            return "\(l) tokens exceed the context of \(m) tokens"
        case .cacheMismatch(let r): return "key/value cache mismatch: \(r)"
        case .invalidParameter(let n, let v, let e): return "\(n) = \(v); expected \(e)"
        }
    }
}
