/// One message of a conversation.
public struct ChatMessage: Sendable, Equatable, Codable {
    /// "system", "user", "assistant", or any other role the model knows.
    public var role: String
    /// The text.
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }

    public static func system(_ content: String) -> ChatMessage { ChatMessage(role: "system", content: content) }
    public static func user(_ content: String) -> ChatMessage { ChatMessage(role: "user", content: content) }
    public static func assistant(_ content: String) -> ChatMessage { ChatMessage(role: "assistant", content: content) }
}

/// Errors of ``ChatTemplate``.
public enum ChatTemplateError: Error, Equatable, CustomStringConvertible {
    /// The template is not one we can render: `excerpt` is its beginning, `reason` what was not
    /// recognised.
    case unsupportedTemplate(excerpt: String, reason: String)

    public var description: String {
        switch self {
        case .unsupportedTemplate(let excerpt, let reason):
            return "unsupported chat template \(excerpt.debugDescription): \(reason). "
                + "Only the ChatML family (<|im_start|>role\\ncontent<|im_end|>\\n, optionally with a "
                + "default system message) is implemented"
        }
    }
}

/// A model's chat template: turns a conversation into the prompt text the model was trained on.
///
/// Models ship the template as Jinja source (GGUF `tokenizer.chat_template`, tokenizer_config.json
/// `chat_template`). We do not run Jinja: the source is parsed (with the whitespace rules
/// transformers uses, `trim_blocks` and `lstrip_blocks`, and `-` whitespace control), checked to
/// be a template of a family we know, and rendered by our own code for that family. Anything
/// else is refused with ``ChatTemplateError``, never rendered approximately.
///
/// Supported family — **ChatML**: every message as `<|im_start|>{role}\n{content}<|im_end|>\n`,
/// then `<|im_start|>assistant\n` when a generation prompt is asked for; optionally (SmolLM2,
/// Qwen2) a default system message, taken from the template's text, put first when the first
/// message is not a system message.
///
/// ```swift
/// let template = try ChatTemplate(tokenizer.chatTemplate ?? "")
/// let prompt = template.render([.user("What is the capital of France?")])
/// // "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n
/// //  <|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
/// ```
public struct ChatTemplate: Sendable, Equatable {
    /// The template families we render.
    public enum Family: Sendable, Equatable {
        /// ChatML, with the system message inserted when the conversation does not start with one.
        case chatML(defaultSystemMessage: String?)
    }

    /// The Jinja source.
    public let source: String
    /// What the source was recognised as.
    public let family: Family

    /// The default system message of the template, if it has one.
    public var defaultSystemMessage: String? {
        switch family {
        case .chatML(let message): return message
        }
    }

    /// Parses and recognises a Jinja chat template. O(template length).
    /// - Throws: ``ChatTemplateError/unsupportedTemplate(excerpt:reason:)`` when the source uses
    ///   Jinja we do not parse or renders something other than a supported family.
    public init(_ source: String) throws(ChatTemplateError) {
        let family: Family
        do throws(JinjaSubset.Failure) {
            family = try Self.recognise(try JinjaSubset.parse(source))
        } catch {
            throw .unsupportedTemplate(excerpt: Self.excerpt(source), reason: error.reason)
        }
        self.source = source
        self.family = family
    }

    /// The plain ChatML template (no default system message), or SmolLM2's form with one.
    public static func chatML(defaultSystemMessage: String? = nil) -> ChatTemplate {
        var source = "{% for message in messages %}"
        if let system = defaultSystemMessage {
            source += "{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
                + JinjaSubset.escapeSingleQuoted(system) + "<|im_end|>\n' }}{% endif %}"
        }
        source += "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
            + "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
        return ChatTemplate(source: source, family: .chatML(defaultSystemMessage: defaultSystemMessage))
    }

    private init(source: String, family: Family) {
        self.source = source
        self.family = family
    }

    /// The prompt text of `messages` — what `tokenizer.apply_chat_template(messages,
    /// tokenize=False, add_generation_prompt=…)` returns in transformers. O(total length).
    /// - Parameters:
    ///   - messages: the conversation, oldest message first.
    ///   - addGenerationPrompt: end with the opening of an assistant turn.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) -> String {
        switch family {
        case .chatML(let defaultSystem):
            var out = ""
            for (i, message) in messages.enumerated() {
                if i == 0, let system = defaultSystem, !message.role.unicodeScalars.elementsEqual("system".unicodeScalars) {
                    out += "<|im_start|>system\n" + system + "<|im_end|>\n"
                }
                out += "<|im_start|>" + message.role + "\n" + message.content + "<|im_end|>\n"
            }
            if addGenerationPrompt { out += "<|im_start|>assistant\n" }
            return out
        }
    }

    static func excerpt(_ source: String) -> String {
        let scalars = source.unicodeScalars
        if scalars.count <= 80 { return source }
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars.prefix(80))
        return String(view) + "…"
    }

    // MARK: Recognition

    private static func recognise(_ nodes: [JinjaSubset.Node]) throws(JinjaSubset.Failure) -> Family {
        typealias N = JinjaSubset.Node
        let top = JinjaSubset.mergeOutputs(nodes)
        guard top.count == 2, case .forLoop(let body) = top[0], case .ifBlock(let generationCondition, let generationBody) = top[1] else {
            throw JinjaSubset.Failure(reason: "expected a loop over the messages followed by `if add_generation_prompt`, found \(describe(top))")
        }
        guard generationCondition == .addGenerationPrompt else {
            throw JinjaSubset.Failure(reason: "the block after the loop is conditioned on \(generationCondition), not add_generation_prompt")
        }
        guard JinjaSubset.mergeOutputs(generationBody) == [.output([.literal("<|im_start|>assistant\n")])] else {
            throw JinjaSubset.Failure(reason: "the generation prompt is not <|im_start|>assistant\\n")
        }
        let loop = JinjaSubset.mergeOutputs(body)
        let chatMLMessage: [JinjaSubset.Atom] = [.literal("<|im_start|>"), .role, .literal("\n"), .content, .literal("<|im_end|>\n")]
        var defaultSystem: String? = nil
        let messageNode: N
        switch loop.count {
        case 1:
            messageNode = loop[0]
        case 2:
            guard case .ifBlock(let condition, let systemBody) = loop[0], isFirstAndNotSystem(condition) else {
                throw JinjaSubset.Failure(reason: "the loop starts with \(describe([loop[0]])), not `if loop.first and messages[0]['role'] != 'system'`")
            }
            let prefix = "<|im_start|>system\n", suffix = "<|im_end|>\n"
            guard case .output(let atoms) = JinjaSubset.mergeOutputs(systemBody).first, JinjaSubset.mergeOutputs(systemBody).count == 1,
                  atoms.count == 1, case .literal(let text) = atoms[0],
                  text.hasPrefix(prefix), text.hasSuffix(suffix), text.count >= prefix.count + suffix.count else {
                throw JinjaSubset.Failure(reason: "the default system message is not a literal <|im_start|>system\\n…<|im_end|>\\n")
            }
            let inner = String(text.dropFirst(prefix.count).dropLast(suffix.count))
            guard !inner.contains("<|im_") else {
                throw JinjaSubset.Failure(reason: "the default system message contains a ChatML marker")
            }
            defaultSystem = inner
            messageNode = loop[1]
        default:
            throw JinjaSubset.Failure(reason: "the loop body is \(describe(loop))")
        }
        guard case .output(let atoms) = messageNode, atoms == chatMLMessage else {
            throw JinjaSubset.Failure(reason: "a message is rendered as \(describe([messageNode])), not <|im_start|>role\\ncontent<|im_end|>\\n")
        }
        return .chatML(defaultSystemMessage: defaultSystem)
    }

    private static func isFirstAndNotSystem(_ c: JinjaSubset.Condition) -> Bool {
        guard case .and(let parts) = c, parts.count == 2 else { return false }
        let notSystem = JinjaSubset.Condition.roleIs(.firstMessage, "system", negated: true)
        return (parts[0] == .firstIteration && parts[1] == notSystem) || (parts[1] == .firstIteration && parts[0] == notSystem)
    }

    private static func describe(_ nodes: [JinjaSubset.Node]) -> String {
        if nodes.isEmpty { return "nothing" }
        return nodes.map { node -> String in
            switch node {
            case .output(let atoms): return "output(\(atoms.map(\.description).joined(separator: " + ")))"
            case .forLoop: return "for-loop"
            case .ifBlock(let c, _): return "if(\(c))"
            }
        }.joined(separator: ", ")
    }
}
