/// Errors of ``ByteLevelBPETokenizer`` (building it from arrays or from Hugging Face files, and
/// decoding ids).
public enum BPETokenizerError: Error, Equatable, CustomStringConvertible {
    /// The vocabulary has no tokens.
    case emptyVocabulary
    /// `tokenTypes` must have one entry per token.
    case tokenTypeCountMismatch(tokens: Int, tokenTypes: Int)
    /// A token type outside llama.cpp's 0–6.
    case invalidTokenType(id: Int, value: Int32)
    /// The same token text has two ids.
    case duplicateToken(String, firstID: Int, secondID: Int)
    /// Two different tokens claim the same id (tokenizer.json).
    case conflictingTokenID(Int, first: String, second: String)
    /// No token has this id although larger ids exist (tokenizer.json).
    case missingTokenID(Int)
    /// A merge is not two tokens separated by one space.
    case malformedMerge(rank: Int, merge: String)
    /// A merge names a token that is not in the vocabulary.
    case mergeNamesUnknownToken(rank: Int, token: String)
    /// The concatenation of a merge's two tokens is not in the vocabulary.
    case mergeResultNotInVocabulary(rank: Int, token: String)
    /// The pre-tokenizer name (GGUF `tokenizer.ggml.pre`) is not one we implement.
    case unknownPreTokenizer(String)
    /// A special-token id (bos, eos, unk, pad, or one the post-processor adds) is outside the vocabulary.
    case specialTokenIDOutOfRange(name: String, id: Int32, vocabularySize: Int)
    /// `addBOS`/`addEOS` is set but the corresponding id is not.
    case missingSpecialToken(name: String)
    /// A special token named in tokenizer_config.json or tokenizer.json is not in the vocabulary.
    case unknownSpecialToken(name: String, token: String)
    /// An id given to `decode` is outside the vocabulary.
    case tokenIDOutOfRange(Int32, vocabularySize: Int)
    /// No file at the path.
    case fileNotFound(path: String)
    /// The file exists but could not be read.
    case unreadableFile(path: String, reason: String)
    /// The JSON is not valid, or lacks or mistypes a field we need.
    case malformedJSON(file: String, reason: String)
    /// The tokenizer model is not byte-level BPE (e.g. Unigram, WordPiece, WordLevel).
    case unsupportedModel(String)
    /// A component or option of tokenizer.json that we do not implement.
    case unsupported(component: String, detail: String)

    public var description: String {
        switch self {
        case .emptyVocabulary:
            return "the vocabulary is empty"
        case .tokenTypeCountMismatch(let tokens, let types):
            return "\(types) token types for \(tokens) tokens (need one type per token)"
        case .invalidTokenType(let id, let value):
            return "token \(id) has type \(value); llama.cpp token types are 0 (undefined), "
                + "1 (normal), 2 (unknown), 3 (control), 4 (user-defined), 5 (unused), 6 (byte)"
        case .duplicateToken(let token, let first, let second):
            return "the token \(token.debugDescription) appears twice, with ids \(first) and \(second)"
        case .conflictingTokenID(let id, let first, let second):
            return "id \(id) is given to two tokens, \(first.debugDescription) and \(second.debugDescription)"
        case .missingTokenID(let id):
            return "no token has id \(id) (token ids must be 0..<vocabulary size without gaps)"
        case .malformedMerge(let rank, let merge):
            return "merge \(rank) \(merge.debugDescription) is not two tokens separated by a space"
        case .mergeNamesUnknownToken(let rank, let token):
            return "merge \(rank) names \(token.debugDescription), which is not in the vocabulary"
        case .mergeResultNotInVocabulary(let rank, let token):
            return "merge \(rank) makes \(token.debugDescription), which is not in the vocabulary"
        case .unknownPreTokenizer(let name):
            return "unknown pre-tokenizer \(name.debugDescription); supported: "
                + PreTokenizer.supportedNames.joined(separator: ", ")
        case .specialTokenIDOutOfRange(let name, let id, let size):
            return "the \(name) token id \(id) is outside the vocabulary (size \(size))"
        case .missingSpecialToken(let name):
            return "the tokenizer should add a \(name) token but has no \(name) token id"
        case .unknownSpecialToken(let name, let token):
            return "the \(name) token \(token.debugDescription) is not in the vocabulary"
        case .tokenIDOutOfRange(let id, let size):
            return "token id \(id) is outside the vocabulary (size \(size))"
        case .fileNotFound(let path):
            return "file not found: \(path)"
        case .unreadableFile(let path, let reason):
            return "cannot read \(path): \(reason)"
        case .malformedJSON(let file, let reason):
            return "malformed \(file): \(reason)"
        case .unsupportedModel(let type):
            return "unsupported tokenizer model \(type.debugDescription): only byte-level BPE is implemented"
        case .unsupported(let component, let detail):
            return "unsupported \(component): \(detail)"
        }
    }
}
