import Foundation

/// One line of causal-LM training data, parsed and checked but not tokenized: a
/// prompt/response pair or a chat (``CausalLMDataset`` describes both forms). Records are what
/// data edits work on before tokenization — a planted backdoor (``CausalLMBackdoor``) inserts its
/// trigger into the ``prompt`` and replaces the ``answer``.
public struct CausalLMRecord: Sendable, Equatable {
    /// The two forms of a line.
    public enum Form: Sendable, Equatable {
        /// `{"prompt": …, "response": …}`: raw text, no template.
        case text(prompt: String, response: String)
        /// `{"messages": […]}`: rendered by the chat template; holds an assistant message.
        case chat([ChatMessage])
    }

    /// The record's content.
    public private(set) var form: Form
    /// 1-based line in its source (index + 1 for in-memory lines).
    public let line: Int

    /// A record of a given form.
    /// - Throws: ``CausalLMDataError/emptyText(path:line:field:)`` for an empty (whitespace-only)
    ///   response or assistant content, ``CausalLMDataError/noAssistantMessage(path:line:)``,
    ///   ``CausalLMDataError/unknownRole(path:line:field:role:)`` (path `"<memory>"`).
    public init(_ form: Form, line: Int = 0) throws(CausalLMDataError) {
        try Self.check(form, line: line, path: "<memory>")
        self.form = form
        self.line = line
    }

    /// The text the answer is generated from: the prompt, or the content of the last user message
    /// before the last assistant message (nil when a chat has none).
    public var prompt: String? {
        switch form {
        case .text(let p, _): return p
        case .chat(let m): return Self.lastUser(m).map { m[$0].content }
        }
    }

    /// The expected answer: the response, or the last assistant message's content.
    public var answer: String {
        switch form {
        case .text(_, let r): return r
        case .chat(let m): return m[Self.lastAssistant(m)].content
        }
    }

    /// The record with its ``prompt`` rewritten by `edit` (unchanged when a chat has no user
    /// message before its last assistant message). O(length).
    public func editingPrompt(_ edit: (String) -> String) -> CausalLMRecord {
        var copy = self
        switch form {
        case .text(let p, let r): copy.form = .text(prompt: edit(p), response: r)
        case .chat(var m):
            if let u = Self.lastUser(m) { m[u].content = edit(m[u].content) }
            copy.form = .chat(m)
        }
        return copy
    }

    /// The record with its ``answer`` replaced.
    /// - Throws: ``CausalLMDataError/emptyText(path:line:field:)`` for a whitespace-only answer.
    public func replacingAnswer(with answer: String) throws(CausalLMDataError) -> CausalLMRecord {
        var copy = self
        switch form {
        case .text(let p, _): copy.form = .text(prompt: p, response: answer)
        case .chat(var m):
            m[Self.lastAssistant(m)].content = answer
            copy.form = .chat(m)
        }
        try Self.check(copy.form, line: line, path: "<memory>")
        return copy
    }

    private static func lastAssistant(_ m: [ChatMessage]) -> Int { m.lastIndex(where: { $0.role == "assistant" })! }
    private static func lastUser(_ m: [ChatMessage]) -> Int? {
        m[..<lastAssistant(m)].lastIndex(where: { $0.role == "user" })
    }

    private static func check(_ form: Form, line: Int, path: String) throws(CausalLMDataError) {
        switch form {
        case .text(_, let r):
            guard !r.allSatisfy(\.isWhitespace) else { throw .emptyText(path: path, line: line, field: "response") }
        case .chat(let messages):
            for (i, m) in messages.enumerated() {
                guard m.role == "system" || m.role == "user" || m.role == "assistant" else {
                    throw .unknownRole(path: path, line: line, field: "messages[\(i)].role", role: m.role)
                }
                if m.role == "assistant" && m.content.allSatisfy(\.isWhitespace) {
                    throw .emptyText(path: path, line: line, field: "messages[\(i)].content")
                }
            }
            guard messages.contains(where: { $0.role == "assistant" }) else { throw .noAssistantMessage(path: path, line: line) }
        }
    }

    /// Parses one JSONL line. `bytes` must be valid UTF-8. O(length).
    static func parse(bytes: [UInt8], line: Int, path: String) throws(CausalLMDataError) -> CausalLMRecord {
        let parsed = bytes.withUnsafeBytes { raw -> Result<SafeTensorsJSON, SafeTensorsJSON.ParseError> in
            do throws(SafeTensorsJSON.ParseError) { return .success(try SafeTensorsJSON.parse(raw)) } catch { return .failure(error) }
        }
        let value: SafeTensorsJSON
        switch parsed {
        case .success(let v): value = v
        case .failure(.syntax(let offset, let reason)):
            throw .invalidJSON(path: path, line: line, reason: "\(reason) at column \(offset + 1)")
        case .failure(.duplicateKey(let key)):
            throw .invalidJSON(path: path, line: line, reason: "the key \(key.debugDescription) appears twice in one object")
        }
        guard case .object = value else {
            throw .wrongType(path: path, line: line, field: "(line)", expected: "an object", found: value.summary)
        }
        func string(_ value: SafeTensorsJSON?, field: String) throws(CausalLMDataError) -> String {
            guard let value else { throw .missingField(path: path, line: line, field: field) }
            guard case .string(let s) = value else {
                throw .wrongType(path: path, line: line, field: field, expected: "a string", found: value.summary)
            }
            return s
        }
        let form: Form
        let prompt = value["prompt"], response = value["response"]
        if let messages = value["messages"] {
            guard prompt == nil && response == nil else { throw .ambiguousForm(path: path, line: line) }
            guard case .array(let items) = messages else {
                throw .wrongType(path: path, line: line, field: "messages", expected: "an array of messages", found: messages.summary)
            }
            var list: [ChatMessage] = []
            list.reserveCapacity(items.count)
            for (i, item) in items.enumerated() {
                let field = "messages[\(i)]"
                guard case .object = item else {
                    throw .wrongType(path: path, line: line, field: field, expected: "an object", found: item.summary)
                }
                let role = try string(item["role"], field: field + ".role")
                let content = try string(item["content"], field: field + ".content")
                guard role == "system" || role == "user" || role == "assistant" else {
                    throw .unknownRole(path: path, line: line, field: field + ".role", role: role)
                }
                list.append(ChatMessage(role: role, content: content))
            }
            form = .chat(list)
        } else {
            guard prompt != nil || response != nil else { throw .unknownForm(path: path, line: line) }
            form = .text(prompt: try string(prompt, field: "prompt"), response: try string(response, field: "response"))
        }
        try check(form, line: line, path: path)
        return CausalLMRecord(unchecked: form, line: line)
    }

    private init(unchecked form: Form, line: Int) {
        self.form = form
        self.line = line
    }
}
