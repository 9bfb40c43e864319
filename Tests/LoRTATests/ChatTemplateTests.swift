import Foundation
import Testing
@testable import LoRTA

private struct ChatFixture: Decodable {
    struct Render: Decodable {
        let template: String
        let conversation: Int
        let add_generation_prompt: Bool
        let text: String
    }
    let templates: [String: String]
    let conversations: [[ChatMessage]]
    let renders: [Render]
}

private func chatFixture() throws -> ChatFixture {
    let url = try #require(Bundle.module.url(forResource: "chat_templates", withExtension: "json", subdirectory: "Fixtures/bpe"),
                           "fixture chat_templates.json missing from the test bundle")
    return try JSONDecoder().decode(ChatFixture.self, from: Data(contentsOf: url))
}

@Suite("ChatTemplate vs transformers")
struct ChatTemplateTests {
    /// Each template's family as recognised from its text (the default system messages are read
    /// from the templates, not written here... except to check them).
    static let expectedFamilies: [String: ChatTemplate.Family] = [
        "smollm2": .chatML(defaultSystemMessage: "You are a helpful AI assistant named SmolLM, trained by Hugging Face"),
        "chatml": .chatML(defaultSystemMessage: nil),
        "qwen_style": .chatML(defaultSystemMessage: "You are a helpful assistant."),
        "whitespace_controlled": .chatML(defaultSystemMessage: "You are Tiny, a \"test\" model."),
    ]

    /// `apply_chat_template(messages, tokenize=False, add_generation_prompt=…)` for every
    /// template × conversation × generation flag.
    @Test func rendersLikeApplyChatTemplate() throws {
        let fixture = try chatFixture()
        #expect(fixture.renders.count == fixture.templates.count * fixture.conversations.count * 2)
        var templates: [String: ChatTemplate] = [:]
        for (name, source) in fixture.templates {
            let template = try ChatTemplate(source)
            #expect(template.family == Self.expectedFamilies[name], "\(name)")
            #expect(template.source == source)
            templates[name] = template
        }
        for r in fixture.renders {
            let template = try #require(templates[r.template])
            let text = template.render(fixture.conversations[r.conversation], addGenerationPrompt: r.add_generation_prompt)
            #expect(text.unicodeScalars.elementsEqual(r.text.unicodeScalars),
                    "\(r.template) #\(r.conversation) gen=\(r.add_generation_prompt):\n ours: \(text.debugDescription)\n HF:   \(r.text.debugDescription)")
        }
    }

    /// The template in the GGUF file is the one the fixture rendered, and the prompt tokenizes
    /// with the markers as single tokens.
    @Test func smolLMTemplateFromTheModelFile() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let url = root.appendingPathComponent("assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
        try #require(FileManager.default.fileExists(atPath: url.path), "asset \(url.path) is missing: run scripts/fetch-assets.sh first")
        let metadata = try TestGGUFTokenizerMetadata(url: url)
        let source = try metadata.string("tokenizer.chat_template")
        #expect(source == (try chatFixture().templates["smollm2"]))
        let template = try ChatTemplate(source)
        #expect(template.defaultSystemMessage == "You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        let prompt = template.render([.user("What is the capital of France?")])
        let tokenizer = try ByteLevelBPETokenizer(
            tokens: try metadata.strings("tokenizer.ggml.tokens"), merges: try metadata.strings("tokenizer.ggml.merges"),
            tokenTypes: try metadata.int32s("tokenizer.ggml.token_type"), preTokenizer: try metadata.string("tokenizer.ggml.pre"))
        let ids = tokenizer.encode(prompt)
        #expect(ids.filter { $0 == 1 }.count == 3 && ids.filter { $0 == 2 }.count == 2)
        #expect(try tokenizer.decode(ids) == prompt)
    }

    @Test func builtInChatMLMatchesItsSource() throws {
        let messages: [ChatMessage] = [.user("a'b\\c"), .assistant("d")]
        for system in [nil, "Be brief. Don't use 'quotes' or \\ backslashes."] {
            let built = ChatTemplate.chatML(defaultSystemMessage: system)
            let parsed = try ChatTemplate(built.source)
            #expect(parsed.family == built.family)
            #expect(parsed.render(messages) == built.render(messages))
        }
        #expect(ChatTemplate.chatML().render([], addGenerationPrompt: true) == "<|im_start|>assistant\n")
        #expect(ChatTemplate.chatML(defaultSystemMessage: "S").render([.system("X")], addGenerationPrompt: false)
                == "<|im_start|>system\nX<|im_end|>\n")
    }

    @Test func otherTemplatesAreRefusedByName() {
        let llama3 = """
            {% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}
            """
        let zephyr = "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% endif %}\n{% endfor %}"
        let mistral = "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% else %}{{ message['content'] + eos_token}}{% endif %}{% endfor %}"
        let trimmed = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] | trim + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
        let noGeneration = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
        let wrongSeparator = "{% for message in messages %}{{'<|im_start|>' + message['role'] + ': ' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
        let contentOnly = "{% for message in messages %}{{ message['content'] }}{% endfor %}"
        let reasons = [llama3: "unsupported statement {% set loop_messages = messages %}", trimmed: "filters are not supported",
                       mistral: "unsupported variable `bos_token`", wrongSeparator: "a message is rendered as",
                       noGeneration: "found for-loop", "{% for": "unterminated tag"]
        // Hostile nesting is refused, not a stack overflow.
        let deepBlocks = String(repeating: "{% if add_generation_prompt %}", count: 100_000)
        let deepCondition = "{% if " + String(repeating: "not ", count: 100_000) + "add_generation_prompt %}{% endif %}"
        let deepParentheses = "{{ " + String(repeating: "(", count: 100_000) + "'x'" + String(repeating: ")", count: 100_000) + " }}"
        for source in [llama3, zephyr, mistral, trimmed, noGeneration, wrongSeparator, contentOnly, "", "{% for", "plain text",
                       deepBlocks, deepCondition, deepParentheses] {
            do {
                let t = try ChatTemplate(source)
                Issue.record("accepted \(source.debugDescription) as \(t.family)")
            } catch {
                guard case .unsupportedTemplate(let excerpt, let reason) = error else { continue }
                #expect(source.hasPrefix(excerpt.hasSuffix("…") ? String(excerpt.dropLast()) : excerpt))
                #expect(!reason.isEmpty)
                if let expected = reasons[source] { #expect(reason.contains(expected), "\(reason)") }
                #expect(error.description.hasPrefix("unsupported chat template " + excerpt.debugDescription), "\(error.description)")
            }
        }
    }
}
