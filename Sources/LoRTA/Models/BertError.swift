import CKernels

/// Errors of the BERT encoder: configuration, weights, input batches, the classification head.
public enum BertError: Error, Equatable, CustomStringConvertible {
    /// A file of the model directory does not exist.
    case fileNotFound(path: String)
    /// A file exists but cannot be read or parsed.
    case unreadableFile(path: String, reason: String)
    /// `config.json` lacks a required field.
    case missingConfigurationField(String)
    /// A `config.json` field has the wrong JSON type or an out-of-range value.
    case invalidConfigurationValue(field: String, value: String, expected: String)
    /// A valid BERT setting this encoder does not implement (e.g. `hidden_act` "relu",
    /// `position_embedding_type` "relative_key", `is_decoder` true).
    case unsupportedConfiguration(field: String, value: String, supported: String)
    /// `model.safetensors` lacks a tensor the configuration needs.
    case missingWeight(String)
    /// A weight's shape disagrees with the configuration.
    case weightShapeMismatch(name: String, expected: [Int], actual: [Int])
    /// A batch with no rows or a zero sequence length.
    case emptyBatch
    /// The batch's arrays do not have `count × sequenceLength` elements.
    case malformedBatch(String)
    /// The padded sequence length exceeds `max_position_embeddings`.
    case sequenceTooLong(length: Int, maximum: Int)
    /// A token id is outside the vocabulary.
    case tokenOutOfRange(id: Int32, row: Int, position: Int, vocabularySize: Int)
    /// A classification head does not fit the model (shapes, class count).
    case invalidClassificationHead(String)
    /// The number of labels differs from the number of sequences in the batch.
    case labelCountMismatch(expected: Int, actual: Int)
    /// A label is outside `0 ..< classCount`.
    case labelOutOfRange(label: Int32, row: Int, classCount: Int)

    public var description: String {
        switch self {
        case .fileNotFound(let p): return "BERT model file not found: \(p)"
        case .unreadableFile(let p, let r): return "cannot read BERT model file \(p): \(r)"
        case .missingConfigurationField(let f): return "config.json: missing required field \"\(f)\""
        case .invalidConfigurationValue(let f, let v, let e):
            return "config.json: field \"\(f)\" has value \(v); expected \(e)"
        case .unsupportedConfiguration(let f, let v, let s):
            return "config.json: \(f) = \(v) is not supported by this encoder (supported: \(s))"
        case .missingWeight(let n): return "model.safetensors: missing tensor \"\(n)\""
        case .weightShapeMismatch(let n, let e, let a):
            return "model.safetensors: tensor \"\(n)\" has shape \(a), the configuration needs \(e)"
        case .emptyBatch: return "the token batch is empty (no rows or zero sequence length)"
        case .malformedBatch(let r): return "malformed token batch: \(r)"
        case .sequenceTooLong(let l, let m):
            return "sequence length \(l) exceeds max_position_embeddings = \(m)"
        case .tokenOutOfRange(let id, let r, let p, let v):
            return "token id \(id) at row \(r), position \(p) is outside the vocabulary (size \(v))"
        case .invalidClassificationHead(let r): return "classification head does not fit the BERT model: \(r)"
        case .labelCountMismatch(let e, let a): return "\(a) labels for a batch of \(e) sequences"
        case .labelOutOfRange(let l, let r, let c): return "label \(l) of row \(r) is outside 0..<\(c)"
        }
    }
}
