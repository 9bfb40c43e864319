/// Errors of ``CausalLMDataset`` (reading JSONL training data, building examples and batches).
///
/// Every case about a line names the file (`"<memory>"` for in-memory lines), the 1-based line
/// number and, where one is at fault, the field (`prompt`, `response`, `messages[2].content`, …).
public enum CausalLMDataError: Error, Equatable, CustomStringConvertible {
    /// No file at this path.
    case fileNotFound(path: String)
    /// The file exists but could not be read (or is a directory).
    case unreadable(path: String, reason: String)
    /// A line is not valid UTF-8.
    case notUTF8(path: String, line: Int)
    /// A line is not one JSON value (syntax error, duplicate key, …).
    case invalidJSON(path: String, line: Int, reason: String)
    /// A required field is absent.
    case missingField(path: String, line: Int, field: String)
    /// A field (or the line itself, field `"(line)"`) has the wrong JSON type.
    case wrongType(path: String, line: Int, field: String, expected: String, found: String)
    /// The line has both `messages` and `prompt`/`response`.
    case ambiguousForm(path: String, line: Int)
    /// The line has neither `messages` nor `prompt`/`response`.
    case unknownForm(path: String, line: Int)
    /// A text that must not be empty (the response, an assistant message's content) is empty or
    /// only whitespace.
    case emptyText(path: String, line: Int, field: String)
    /// `messages` has no assistant message (nothing to learn).
    case noAssistantMessage(path: String, line: Int)
    /// A message's role is not `system`, `user` or `assistant`.
    case unknownRole(path: String, line: Int, field: String, role: String)
    /// The chat template cannot be rendered (absent, or not a family ``ChatTemplate`` knows);
    /// reported at the first line that needs it.
    case unsupportedTemplate(path: String, line: Int, reason: String)
    /// The tokenizer has no end-of-sequence id, which `prompt`/`response` examples end with.
    case missingEndOfSequence(path: String, line: Int)
    /// The token boundary of an assistant message could not be located (the tokenizer changes
    /// the text and encoding a prefix of the conversation does not give a prefix of its tokens).
    case boundaryNotFound(path: String, line: Int, field: String)
    /// The file (or the list of lines) has no examples, only blank lines.
    case empty(path: String)
    /// Every example is longer than `maxLength` tokens.
    case noExampleFits(path: String, dropped: Int, maxLength: Int)
    /// `maxLength < 2`.
    case invalidMaxLength(Int)
    /// A ``CausalLMExample`` built from arrays is inconsistent.
    case invalidExample(String)
    /// A batch request is out of range (no indices, an index out of range, micro-batch size < 1).
    case invalidBatch(String)

    public var description: String {
        switch self {
        case .fileNotFound(let p):
            return "data file not found: \(p)"
        case .unreadable(let p, let r):
            return "cannot read data file \(p): \(r)"
        case .notUTF8(let p, let l):
            return "\(p):\(l): the line is not valid UTF-8"
        case .invalidJSON(let p, let l, let r):
            return "\(p):\(l): invalid JSON: \(r)"
        case .missingField(let p, let l, let f):
            return "\(p):\(l): field \(f) is missing"
        case .wrongType(let p, let l, let f, let expected, let found):
            return "\(p):\(l): field \(f) must be \(expected), found \(found)"
        case .ambiguousForm(let p, let l):
            return "\(p):\(l): field messages and fields prompt/response are both present (use one form)"
        case .unknownForm(let p, let l):
            return "\(p):\(l): expected field messages, or fields prompt and response"
        case .emptyText(let p, let l, let f):
            return "\(p):\(l): field \(f) is empty"
        case .noAssistantMessage(let p, let l):
            return "\(p):\(l): field messages has no assistant message"
        case .unknownRole(let p, let l, let f, let role):
            return "\(p):\(l): field \(f) is \(role.debugDescription); expected \"system\", \"user\" or \"assistant\""
        case .unsupportedTemplate(let p, let l, let r):
            return "\(p):\(l): field messages cannot be rendered: \(r)"
        case .missingEndOfSequence(let p, let l):
            return "\(p):\(l): field response: the tokenizer has no end-of-sequence token to end the response with"
        case .boundaryNotFound(let p, let l, let f):
            return "\(p):\(l): field \(f): cannot locate its tokens (the tokenizer changes the text at the boundary)"
        case .empty(let p):
            return "data file \(p) has no examples"
        case .noExampleFits(let p, let dropped, let maxLength):
            return "data file \(p): all \(dropped) examples are longer than the maximum length \(maxLength) tokens"
        case .invalidMaxLength(let n):
            return "maximum length \(n) must be >= 2"
        case .invalidExample(let r):
            return "invalid causal-LM example: \(r)"
        case .invalidBatch(let r):
            return "invalid causal-LM batch: \(r)"
        }
    }
}
