import Foundation
import Testing
@testable import LoRTA

// MARK: - Helpers

private func bpeFixtureURL(_ name: String, _ ext: String, subdirectory: String = "Fixtures/bpe") throws -> URL {
    try #require(Bundle.module.url(forResource: name, withExtension: ext, subdirectory: subdirectory),
                 "fixture \(subdirectory)/\(name).\(ext) missing from the test bundle")
}

private func bpeFixtureData(_ name: String, _ ext: String = "json", subdirectory: String = "Fixtures/bpe") throws -> Data {
    try Data(contentsOf: bpeFixtureURL(name, ext, subdirectory: subdirectory))
}

/// The repository root, found from this file's path (Tests/LoRTATests/<file>).
private let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The fetched assets folder; the tests that need it fail (never skip) when it is absent.
private func assetURL(_ relativePath: String) throws -> URL {
    let url = repositoryRoot.appendingPathComponent("assets").appendingPathComponent(relativePath)
    try #require(FileManager.default.fileExists(atPath: url.path),
                 "asset \(url.path) is missing: run scripts/fetch-assets.sh first")
    return url
}

/// FNV-1a, 64-bit, as 16 lowercase hex digits (same as the fixture script).
private func fnv1a64(_ bytes: some Sequence<UInt8>) -> String {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
    let hex = String(h, radix: 16)
    return String(repeating: "0", count: 16 - hex.count) + hex
}

/// Scalar-exact string comparison (String == identifies canonically equivalent texts).
private func sameScalars(_ a: String, _ b: String) -> Bool { a.unicodeScalars.elementsEqual(b.unicodeScalars) }

private struct SmolLMCase: Decodable {
    let text: String
    let ids: [Int32]
    let gpt2_ids: [Int32]?
    let decoded: String?
}

private struct CasesFixture<Case: Decodable>: Decodable {
    let transformers: String
    let tokenizers: String
    let cases: [Case]
}

private struct DecodeCase: Decodable {
    let ids: [Int32]
    let text: String
    let skipped: String
}

private struct VocabularyFixture: Decodable {
    let pre: String
    let tokens: Int
    let merges: Int
    let tokens_fnv1a64: String
    let merges_fnv1a64: String
    let control_ids: [Int32]
    let bos: Int32, eos: Int32, unk: Int32, pad: Int32
    let movie_file_fnv1a64: String
    let movie_sentences: Int
    let movie_token_count: Int
    let movie_ids_fnv1a64: String
}

private struct TinyFixture: Decodable {
    struct Variant: Decodable {
        let gguf_pre: String?
        let fragments: [String: String]
        let ids: [[Int32]]
    }
    struct ByteCase: Decodable {
        let bytes: [UInt8]
        let ids: [Int32]
        let text: String
    }
    struct Case: Decodable {
        let text: String
        let ids: [Int32]
        let decoded: String?
    }
    let variants: [String: Variant]
    let placeholders: [String]
    let byte_cases: [ByteCase]
    let cases: [Case]
}

// MARK: - GGUF tokenizer metadata (through the library's reader)

/// Typed access to the `tokenizer.*` metadata of a GGUF file, read with ``GGUFReader``.
struct TestGGUFTokenizerMetadata {
    struct Failure: Error, CustomStringConvertible { let description: String }

    let reader: GGUFReader

    init(url: URL) throws { reader = try GGUFReader(contentsOf: url) }

    func strings(_ key: String) throws -> [String] { try reader.metadata.stringArray(forKey: key) }
    func string(_ key: String) throws -> String { try reader.metadata.string(forKey: key) }
    func int32s(_ key: String) throws -> [Int32] { try reader.metadata.int32Array(forKey: key) }
    func int(_ key: String) -> Int32? { (try? reader.metadata.int(forKey: key)).flatMap { Int32(exactly: $0) } }
    func bool(_ key: String) -> Bool? { try? reader.metadata.bool(forKey: key) }
}

/// SmolLM2-135M-Instruct's tokenizer metadata, read once.
private let smolLMMetadata: Result<TestGGUFTokenizerMetadata, any Error> = Result {
    let url = repositoryRoot.appendingPathComponent("assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    guard FileManager.default.fileExists(atPath: url.path) else {
        throw TestGGUFTokenizerMetadata.Failure(description: "asset \(url.path) is missing: run scripts/fetch-assets.sh first")
    }
    return try TestGGUFTokenizerMetadata(url: url)
}

/// SmolLM2's tokenizer built from the GGUF file (``ByteLevelBPETokenizer/init(gguf:)``), or
/// from its arrays with another pre-tokenizer.
private func smolLMTokenizer(preTokenizer: String? = nil) throws -> ByteLevelBPETokenizer {
    let m = try smolLMMetadata.get()
    if preTokenizer == nil { return try ByteLevelBPETokenizer(gguf: m.reader) }
    return try ByteLevelBPETokenizer(
        tokens: try m.strings("tokenizer.ggml.tokens"), merges: try m.strings("tokenizer.ggml.merges"),
        tokenTypes: try m.int32s("tokenizer.ggml.token_type"),
        preTokenizer: try preTokenizer ?? m.string("tokenizer.ggml.pre"),
        bosID: m.int("tokenizer.ggml.bos_token_id"), eosID: m.int("tokenizer.ggml.eos_token_id"),
        unknownID: m.int("tokenizer.ggml.unknown_token_id"), paddingID: m.int("tokenizer.ggml.padding_token_id"),
        addsBOS: m.bool("tokenizer.ggml.add_bos_token") ?? false,
        chatTemplate: try? m.string("tokenizer.chat_template"))
}

private func tinyDirectory() throws -> URL {
    try bpeFixtureURL("tokenizer", "json", subdirectory: "Fixtures/bpe/tiny").deletingLastPathComponent()
}

/// Renders ids for failure messages.
private func show(_ t: ByteLevelBPETokenizer, _ ids: [Int32]) -> String {
    ids.map { t.token(for: $0) ?? "#\($0)" }.joined(separator: " ")
}

// MARK: - Alphabet and pre-tokenizer

@Suite("ByteLevelAlphabet")
struct ByteLevelAlphabetTests {
    @Test func isGPT2sByteMap() throws {
        let scalars = ByteLevelAlphabet.scalars
        #expect(scalars.count == 256)
        #expect(Set(scalars).count == 256)
        #expect(scalars[0x20] == "\u{120}")   // Ġ
        #expect(scalars[0x0A] == "\u{10A}")   // Ċ
        #expect(scalars[0x00] == "\u{100}")
        #expect(scalars[0xAD] == "\u{143}")   // the last remapped byte
        #expect(scalars[0x21] == "!" && scalars[0x7E] == "~" && scalars[0xE9] == "\u{E9}")
        for b in 0..<256 { #expect(ByteLevelAlphabet.byte(for: scalars[b]) == UInt8(b)) }
        #expect(ByteLevelAlphabet.byte(for: "\u{144}") == nil)
        #expect(ByteLevelAlphabet.byte(for: " ") == nil)
        #expect(ByteLevelAlphabet.bytes(of: "Ġhi") == [0x20, 0x68, 0x69])
        #expect(ByteLevelAlphabet.bytes(of: "<|é|>") == [0x3C, 0x7C, 0xE9, 0x7C, 0x3E])
        #expect(ByteLevelAlphabet.bytes(of: "日本") == nil)
        #expect(ByteLevelAlphabet.string(of: Array(" ça\n".utf8)) == "ĠÃ§aĊ")
    }

    /// The fixture's byte → token ids come from GPT-2's `bytes_to_unicode` in Python and the
    /// tiny vocabulary.
    @Test func matchesPythonBytesToUnicode() throws {
        let fixture = try JSONDecoder().decode(TinyFixture.self, from: bpeFixtureData("tiny_cases"))
        let tokenizer = try ByteLevelBPETokenizer(directory: tinyDirectory())
        for c in fixture.byte_cases {
            let ids = c.bytes.map { tokenizer.id(for: ByteLevelAlphabet.string(of: [$0])) }
            #expect(ids == c.ids.map { Optional($0) }, "\(c.bytes)")
        }
    }
}

@Suite("PreTokenizer")
struct PreTokenizerTests {
    /// Examples from the tests of Hugging Face `tokenizers` (pre_tokenizers/byte_level.rs).
    @Test func gpt2RegexOnTokenizersExamples() {
        let gpt2 = PreTokenizer.gpt2
        #expect(gpt2.pieces(of: "Hello my friend, how is your day going?") ==
                ["Hello", " my", " friend", ",", " how", " is", " your", " day", " going", "?"])
        #expect(gpt2.pieces(of: "Hello there\nHello there") == ["Hello", " there", "\n", "Hello", " there"])
        #expect(gpt2.pieces(of: "Hello there       dear") == ["Hello", " there", "      ", " dear"])
        #expect(gpt2.pieces(of: "i⭢j") == ["i", "⭢", "j"])
    }

    @Test func rulesCoverTheirPieces() {
        let text = "It's  12345 (x)\r\n\n\t IT'LL ½ café  \u{1F600}!! $x+y<=z|"
        for pre in [PreTokenizer.gpt2, .smollm, .llama3, .qwen2, .llamaCppDefault, PreTokenizer(rules: [])] {
            let pieces = pre.pieces(of: text)
            #expect(pieces.joined() == text, "\(pre)")
            #expect(!pieces.contains(""), "\(pre)")
        }
        #expect(PreTokenizer(rules: []).pieces(of: text) == [text])
        #expect(PreTokenizer.smollm.pieces(of: "a12 ½") == ["a", "1", "2", " ", "½"])
        #expect(PreTokenizer(rules: [.digits(individually: false)]).pieces(of: "a12b3") == ["a", "12", "b", "3"])
        #expect(PreTokenizer(rules: [.asciiDigitTriples]).pieces(of: "1234567") == ["123", "456", "7"])
        #expect(PreTokenizer.llama3.pieces(of: "1234567 IT'S") == ["123", "456", "7", " IT", "'S"])
        #expect(PreTokenizer.qwen2.pieces(of: "123") == ["1", "2", "3"])
        #expect(PreTokenizer.gpt2.pieces(of: "") == [])
    }

    /// The fast ASCII path of the character classes agrees with the Unicode properties.
    @Test func asciiClassesAgreeWithUnicodeProperties() {
        for v in 0..<128 {
            let s = Unicode.Scalar(UInt8(v))
            #expect(ScalarClass.of(s) == ScalarClass.fromProperties(s), "U+\(String(v, radix: 16))")
        }
    }

    @Test func namesOfLlamaCpp() throws {
        #expect(try PreTokenizer.named("smollm") == .smollm)
        #expect(try PreTokenizer.named("gpt2") == .gpt2)
        #expect(try PreTokenizer.named("gpt-2") == .gpt2)
        #expect(try PreTokenizer.named("llama-bpe") == .llama3)
        #expect(try PreTokenizer.named("default") == .llamaCppDefault)
        #expect(throws: BPETokenizerError.unknownPreTokenizer("tekken")) { try PreTokenizer.named("tekken") }
        let message = BPETokenizerError.unknownPreTokenizer("tekken").description
        #expect(message.contains("\"tekken\"") && message.contains("smollm"))
    }
}

// MARK: - SmolLM2 (GGUF arrays) vs Hugging Face

@Suite("ByteLevelBPETokenizer vs Hugging Face: SmolLM2")
struct SmolLMTokenizerReferenceTests {
    @Test func ggufArraysAreTheOnesTheFixtureWasMadeFrom() throws {
        let m = try smolLMMetadata.get()
        let v = try JSONDecoder().decode(VocabularyFixture.self, from: bpeFixtureData("smollm2_vocab"))
        let tokens = try m.strings("tokenizer.ggml.tokens"), merges = try m.strings("tokenizer.ggml.merges")
        #expect(try m.string("tokenizer.ggml.model") == "gpt2")
        #expect(try m.string("tokenizer.ggml.pre") == v.pre)
        #expect(tokens.count == v.tokens && merges.count == v.merges)
        #expect(fnv1a64(tokens.joined(separator: "\n").utf8) == v.tokens_fnv1a64)
        #expect(fnv1a64(merges.joined(separator: "\n").utf8) == v.merges_fnv1a64)
        let tokenizer = try smolLMTokenizer()
        #expect((0..<Int32(tokens.count)).filter(tokenizer.isSpecial) == v.control_ids)
        #expect(tokenizer.bosID == v.bos && tokenizer.eosID == v.eos && tokenizer.unknownID == v.unk
                && tokenizer.paddingID == v.pad)
        #expect(tokenizer.prefixIDs.isEmpty && tokenizer.suffixIDs.isEmpty)
        #expect(tokenizer.vocabularySize == 49152 && tokenizer.mergeCount == 48900)
    }

    /// Every fixture string: ids equal to Hugging Face's exactly, under `smollm` (the hub
    /// tokenizer.json's Digits + ByteLevel) and under `gpt2` (what transformers 5.24 builds from
    /// the GGUF); decoding gives Hugging Face's text back.
    @Test func idsAndDecodingMatchHuggingFace() throws {
        let fixture = try JSONDecoder().decode(CasesFixture<SmolLMCase>.self, from: bpeFixtureData("smollm2_cases"))
        #expect(fixture.cases.count >= 400)
        #expect(fixture.cases.filter { $0.gpt2_ids != nil }.count >= 5)
        let smollm = try smolLMTokenizer(), gpt2 = try smolLMTokenizer(preTokenizer: "gpt2")
        var mismatches = 0
        for c in fixture.cases {
            let ids = smollm.encode(c.text)
            if ids != c.ids {
                mismatches += 1
                Issue.record("smollm \(c.text.debugDescription)\n ours: \(show(smollm, ids))\n HF:   \(show(smollm, c.ids))")
            }
            let gpt2IDs = gpt2.encode(c.text), expected = c.gpt2_ids ?? c.ids
            if gpt2IDs != expected {
                mismatches += 1
                Issue.record("gpt2 \(c.text.debugDescription)\n ours: \(show(gpt2, gpt2IDs))\n HF:   \(show(gpt2, expected))")
            }
            let decoded = try smollm.decode(c.ids)
            #expect(sameScalars(decoded, c.decoded ?? c.text), "decode \(c.text.debugDescription) → \(decoded.debugDescription)")
        }
        #expect(mismatches == 0)
        // Bytes missing from the vocabulary (0x04, 0x06, …) are dropped, as Hugging Face does;
        // everything else round-trips.
        #expect(fixture.cases.filter { $0.decoded != nil }.count == 1)
    }

    @Test func decodingCutCharactersAndSpecialTokens() throws {
        let fixture = try JSONDecoder().decode(CasesFixture<DecodeCase>.self, from: bpeFixtureData("smollm2_decode"))
        let tokenizer = try smolLMTokenizer()
        #expect(fixture.cases.contains { $0.text.unicodeScalars.contains("\u{FFFD}") })
        for c in fixture.cases {
            #expect(sameScalars(try tokenizer.decode(c.ids), c.text), "\(c.ids)")
            #expect(sameScalars(try tokenizer.decode(c.ids, skippingSpecialTokens: true), c.skipped), "\(c.ids)")
        }
    }

    /// Token-by-token output: only whole characters come out, and the pieces add up to the
    /// one-shot decoding.
    @Test func streamingDecoderEmitsWholeCharacters() throws {
        let fixture = try JSONDecoder().decode(CasesFixture<DecodeCase>.self, from: bpeFixtureData("smollm2_decode"))
        let tokenizer = try smolLMTokenizer()
        var sawHeldBytes = false
        for skip in [false, true] {
            for c in fixture.cases {
                let full = try tokenizer.decode(c.ids, skippingSpecialTokens: skip)
                var stream = tokenizer.makeStreamingDecoder(skippingSpecialTokens: skip)
                var out = ""
                for id in c.ids {
                    out += try stream.append(id)
                    sawHeldBytes = sawHeldBytes || stream.hasPendingBytes
                    #expect(full.unicodeScalars.starts(with: out.unicodeScalars), "\(c.ids): \(out.debugDescription)")
                }
                out += stream.finish()
                #expect(sameScalars(out, full), "\(c.ids)")
                #expect(!stream.hasPendingBytes)
            }
        }
        #expect(sawHeldBytes)
        // A smiling face arrives in pieces: nothing until it is complete.
        let ids = tokenizer.encode("\u{1F600}")
        try #require(ids.count > 1)
        var stream = tokenizer.makeStreamingDecoder()
        for id in ids.dropLast() { #expect(try stream.append(id) == "") }
        #expect(try stream.append(ids[ids.count - 1]) == "\u{1F600}")
        // An id out of range is an error and leaves the stream as it was.
        #expect(throws: BPETokenizerError.tokenIDOutOfRange(49152, vocabularySize: 49152)) { try stream.append(49152) }
        #expect(StreamingDecoder.completePrefixLength([0x61, 0xE2, 0x82]) == 1)
        #expect(StreamingDecoder.completePrefixLength([0x61, 0xE2, 0x28]) == 3)     // broken: decode now
        #expect(StreamingDecoder.completePrefixLength([0xED, 0xA0]) == 2)           // surrogate: never valid
        #expect(StreamingDecoder.completePrefixLength([0xF0, 0x9F, 0x98]) == 0)
        #expect(StreamingDecoder.completePrefixLength([0xF0, 0x9F, 0x98, 0x80]) == 4)
    }

    @Test func specialTokensInText() throws {
        let tokenizer = try smolLMTokenizer()
        let text = "<|im_start|>user\nhi<|im_end|>"
        let ids = tokenizer.encode(text)
        #expect(ids.first == 1 && ids.last == 2)
        #expect(try tokenizer.decode(ids) == text)
        #expect(try tokenizer.decode(ids, skippingSpecialTokens: true) == "user\nhi")
        // Not parsed: the markers are plain text, and still decode to themselves.
        let plain = tokenizer.encode(text, parsingSpecialTokens: false)
        #expect(!plain.contains(1) && !plain.contains(2) && plain.count > ids.count)
        #expect(try tokenizer.decode(plain) == text)
        #expect(tokenizer.tokenize("Hello world") == ["Hello", "Ġworld"])
        #expect(tokenizer.id(for: "<|im_end|>") == 2 && tokenizer.token(for: 2) == "<|im_end|>")
        #expect(tokenizer.token(for: -1) == nil && tokenizer.token(for: 49152) == nil)
        #expect(throws: BPETokenizerError.tokenIDOutOfRange(-1, vocabularySize: 49152)) { try tokenizer.decode([5, -1]) }
        #expect(throws: BPETokenizerError.tokenIDOutOfRange(49152, vocabularySize: 49152)) { try tokenizer.decode([49152]) }
        #expect(tokenizer.encode("") == [] && tokenizer.encode("", addingSpecialTokens: true) == [])
    }

    /// All 10,605 movie sentences, compared through a hash of Hugging Face's ids; prints the
    /// encoding time (debug builds are much slower; for the release figure run
    /// `swift test -c release --filter wholeMovieFile`).
    @Test func wholeMovieFile() throws {
        let v = try JSONDecoder().decode(VocabularyFixture.self, from: bpeFixtureData("smollm2_vocab"))
        let raw = try Data(contentsOf: assetURL("movies/movieReviewSnippets_GroundTruth.txt"))
        #expect(fnv1a64(raw) == v.movie_file_fnv1a64, "the movie file differs from the one the fixture was made from")
        let sentences = raw.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).compactMap { line -> String? in
            var text = String(decoding: line, as: UTF8.self)
            if text.hasSuffix("\r") { text.removeLast() }
            let parts = text.split(separator: "\t", maxSplits: 2, omittingEmptySubsequences: false)
            return parts.count == 3 ? String(parts[2]) : nil
        }
        try #require(sentences.count == v.movie_sentences)
        _ = try smolLMMetadata.get()
        let buildStart = Date()
        let tokenizer = try smolLMTokenizer()   // fresh cache
        let build = Date().timeIntervalSince(buildStart)
        let start = Date()
        let rows = sentences.map { tokenizer.encode($0) }
        let cold = Date().timeIntervalSince(start)
        let warmStart = Date()
        let again = sentences.map { tokenizer.encode($0) }
        let warm = Date().timeIntervalSince(warmStart)
        var bytes: [UInt8] = []
        for row in rows {
            for id in row { withUnsafeBytes(of: UInt32(bitPattern: id).littleEndian) { bytes.append(contentsOf: $0) } }
            bytes.append(contentsOf: [0xFF, 0xFF, 0xFF, 0xFF])
        }
        #expect(rows.reduce(0) { $0 + $1.count } == v.movie_token_count)
        #expect(fnv1a64(bytes) == v.movie_ids_fnv1a64)
        #expect(again == rows)
        let chars = sentences.reduce(0) { $0 + $1.utf8.count }
        print(String(format: "BPE encode of %d sentences (%d bytes, %d tokens): %.3f s cold cache, %.3f s warm (%.0f k tokens/s cold); tokenizer built from the arrays in %.3f s",
                     sentences.count, chars, v.movie_token_count, cold, warm, Double(v.movie_token_count) / cold / 1000, build))
    }
}

// MARK: - tokenizer.json (a tiny tokenizer trained with `tokenizers`)

@Suite("ByteLevelBPETokenizer from tokenizer.json vs Hugging Face")
struct TokenizerJSONReferenceTests {
    fileprivate let fixture: TinyFixture

    init() throws {
        fixture = try JSONDecoder().decode(TinyFixture.self, from: bpeFixtureData("tiny_cases"))
    }

    private func check(_ tokenizer: ByteLevelBPETokenizer, _ label: String) {
        var mismatches = 0
        for c in fixture.cases {
            let ids = tokenizer.encode(c.text)
            if ids != c.ids {
                mismatches += 1
                Issue.record("\(label) \(c.text.debugDescription)\n ours: \(show(tokenizer, ids))\n HF:   \(show(tokenizer, c.ids))")
            }
            let decoded = (try? tokenizer.decode(c.ids)) ?? "<error>"
            #expect(sameScalars(decoded, c.decoded ?? c.text), "\(label) decode \(c.text.debugDescription) → \(decoded.debugDescription)")
        }
        #expect(mismatches == 0, "\(label)")
    }

    /// The folder as transformers' AutoTokenizer reads it: added tokens with every flag, the
    /// Digits + ByteLevel pre-tokenizer, the post-processor's BOS, the configuration.
    @Test func directoryMatchesTransformers() throws {
        let tokenizer = try ByteLevelBPETokenizer(directory: tinyDirectory())
        #expect(fixture.cases.count >= 150)
        check(tokenizer, "tiny")
        #expect(tokenizer.vocabularySize == 504)
        #expect(tokenizer.prefixIDs == [0] && tokenizer.suffixIDs == [])
        #expect(tokenizer.bosID == 0 && tokenizer.eosID == 2 && tokenizer.paddingID == 2 && tokenizer.unknownID == nil)
        #expect(tokenizer.preTokenizer == .smollm && !tokenizer.addsPrefixSpace && !tokenizer.ignoresMerges)
        #expect(tokenizer.isSpecial(0) && tokenizer.isSpecial(500) && !tokenizer.isSpecial(501))
        #expect(tokenizer.tokenTypes[501] == .userDefined && tokenizer.tokenTypes[500] == .control)
        let template = try #require(tokenizer.chatTemplate)
        #expect(try ChatTemplate(template).family == .chatML(defaultSystemMessage: nil))
        // Without the post-processor's tokens.
        #expect(tokenizer.encode("Hi", addingSpecialTokens: false) == Array(tokenizer.encode("Hi").dropFirst()))
    }

    /// Merges written as "a b" strings (the format before tokenizers 0.20) load alike.
    @Test func legacyMergeStrings() throws {
        let json = try bpeFixtureData("tokenizer_legacy_merges", subdirectory: "Fixtures/bpe/tiny")
        #expect(String(decoding: json, as: UTF8.self).contains("\"Ġ t\""))
        let config = try bpeFixtureData("tokenizer_config", subdirectory: "Fixtures/bpe/tiny")
        let tokenizer = try ByteLevelBPETokenizer(tokenizerJSON: json, tokenizerConfig: config)
        check(tokenizer, "legacy merges")
        let viaURL = try ByteLevelBPETokenizer(
            tokenizerJSONURL: bpeFixtureURL("tokenizer_legacy_merges", "json", subdirectory: "Fixtures/bpe/tiny"))
        #expect(viaURL.encode("Hello 12") == tokenizer.encode("Hello 12") && viaURL.bosID == nil)
    }

    /// Every pre-tokenization variant, from tokenizer.json fragments written by `tokenizers`
    /// and, where llama.cpp has a name for it, from the arrays with that name.
    @Test func preTokenizerVariants() throws {
        let template = String(decoding: try bpeFixtureData("variant_template", subdirectory: "Fixtures/bpe/tiny"), as: UTF8.self)
        let texts = fixture.cases.prefix(fixture.variants["gpt2"]?.ids.count ?? 0).map(\.text)
        #expect(fixture.variants.count == 7 && texts.count >= 150)
        // The arrays of the same base model, for the array initializer.
        let base = try #require(JSONSerialization.jsonObject(with: Data(template.utf8)) as? [String: Any])
        let model = try #require(base["model"] as? [String: Any])
        let vocab = try #require(model["vocab"] as? [String: Int])
        var tokens = [String](repeating: "", count: vocab.count)
        for (t, i) in vocab { tokens[i] = t }
        let merges = try #require(model["merges"] as? [[String]]).map { $0.joined(separator: " ") }
        let types = (0..<tokens.count).map { Int32($0 < 3 ? 3 : 1) }

        for (name, variant) in fixture.variants.sorted(by: { $0.key < $1.key }) {
            var json = template
            for (placeholder, key) in zip(fixture.placeholders, ["normalizer", "pre_tokenizer", "ignore_merges"]) {
                let fragment = try #require(variant.fragments[key])
                json = json.replacingOccurrences(of: placeholder, with: "\"\(key)\": \(fragment)")
            }
            let fromJSON = try ByteLevelBPETokenizer(tokenizerJSON: Data(json.utf8))
            var candidates = [("\(name) (tokenizer.json)", fromJSON)]
            if let pre = variant.gguf_pre {
                candidates.append(("\(name) (arrays, \(pre))",
                                   try ByteLevelBPETokenizer(tokens: tokens, merges: merges, tokenTypes: types, preTokenizer: pre)))
            }
            for (label, tokenizer) in candidates {
                var mismatches = 0
                for (text, expected) in zip(texts, variant.ids) where tokenizer.encode(text) != expected {
                    mismatches += 1
                    Issue.record("\(label) \(text.debugDescription)\n ours: \(show(tokenizer, tokenizer.encode(text)))\n HF:   \(show(tokenizer, expected))")
                }
                #expect(mismatches == 0, "\(label)")
            }
        }
    }

    @Test func invalidUTF8DecodesLikeFromUTF8Lossy() throws {
        let tokenizer = try ByteLevelBPETokenizer(directory: tinyDirectory())
        #expect(fixture.byte_cases.count >= 15)
        for c in fixture.byte_cases {
            #expect(sameScalars(try tokenizer.decode(c.ids), c.text), "\(c.bytes)")
            var stream = tokenizer.makeStreamingDecoder()
            let streamed = try stream.append(contentsOf: c.ids) + stream.finish()
            #expect(sameScalars(streamed, c.text), "stream \(c.bytes)")
        }
    }
}

// MARK: - Errors

@Suite("ByteLevelBPETokenizer errors")
struct BPETokenizerErrorTests {
    /// A minimal valid byte-level tokenizer.json; each test breaks one part.
    static func json(model: String? = nil, addedTokens: String = "[]",
                     preTokenizer: String = #"{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}"#,
                     normalizer: String = "null", postProcessor: String = "null",
                     decoder: String = #"{"type": "ByteLevel"}"#, extra: String = "") -> Data {
        let m = model ?? #"{"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3}, "merges": ["a b"]}"#
        return Data("""
            {"version": "1.0", "added_tokens": \(addedTokens), "normalizer": \(normalizer),
             "pre_tokenizer": \(preTokenizer), "post_processor": \(postProcessor), "decoder": \(decoder),
             \(extra) "model": \(m)}
            """.utf8)
    }

    @Test func baselineIsValid() throws {
        let t = try ByteLevelBPETokenizer(tokenizerJSON: Self.json())
        #expect(t.encode("ab a") == [2, 3, 0])
        // Bytes without a token are dropped, as in `tokenizers` without unk_token.
        #expect(t.encode("xab") == [2])
    }

    private func expectError(_ expected: BPETokenizerError, _ data: Data, config: Data? = nil,
                             sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: expected, sourceLocation: sourceLocation) {
            try ByteLevelBPETokenizer(tokenizerJSON: data, tokenizerConfig: config)
        }
    }

    @Test func malformedTokenizerJSON() {
        expectError(.malformedJSON(file: "tokenizer.json", reason: "no \"model\" object"),
                    Data(#"{"version": "1.0", "decoder": null}"#.utf8))
        expectError(.malformedJSON(file: "tokenizer.json", reason: "model.vocab is missing"),
                    Self.json(model: #"{"type": "BPE", "merges": []}"#))
        expectError(.malformedJSON(file: "tokenizer.json", reason: "model.merges is missing"),
                    Self.json(model: #"{"type": "BPE", "vocab": {"a": 0}}"#))
        expectError(.malformedJSON(file: "tokenizer.json", reason: "the top level is not an object"), Data("[1]".utf8))
        expectError(.malformedJSON(file: "tokenizer.json", reason: "not valid UTF-8"), Data([0x7B, 0xFF, 0x7D]))
        #expect(throws: BPETokenizerError.self) { try ByteLevelBPETokenizer(tokenizerJSON: Data("{\"model\": ".utf8)) }
        expectError(.malformedJSON(file: "tokenizer.json", reason: "model.vocab[\"b\"] is \"1\", not a token id"),
                    Self.json(model: #"{"type": "BPE", "vocab": {"a": 0, "b": "1"}, "merges": []}"#))
        expectError(.malformedMerge(rank: 0, merge: "ab"),
                    Self.json(model: #"{"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["ab"]}"#))
        expectError(.malformedMerge(rank: 1, merge: "[\"a\"]"),
                    Self.json(model: #"{"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"], ["a"]]}"#))
        expectError(.missingTokenID(1), Self.json(model: #"{"type": "BPE", "vocab": {"a": 0, "b": 2}, "merges": []}"#))
        expectError(.missingTokenID(1), Self.json(model: #"{"type": "BPE", "vocab": {"a": 0, "b": 2000000000}, "merges": []}"#))
        expectError(.malformedJSON(file: "tokenizer.json", reason: "special is 1, not a boolean"),
                    Self.json(addedTokens: #"[{"id": 4, "content": "<s>", "special": 1}]"#))
    }

    @Test func mergesNamingUnknownTokens() {
        expectError(.mergeNamesUnknownToken(rank: 1, token: "c"),
                    Self.json(model: #"{"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b", "c a"]}"#))
        expectError(.mergeResultNotInVocabulary(rank: 0, token: "ba"),
                    Self.json(model: #"{"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["b", "a"]]}"#))
        #expect(throws: BPETokenizerError.mergeNamesUnknownToken(rank: 0, token: "x")) {
            try ByteLevelBPETokenizer(tokens: ["a", "b"], merges: ["a x"], preTokenizer: "gpt2")
        }
        #expect(throws: BPETokenizerError.malformedMerge(rank: 0, merge: " a")) {
            try ByteLevelBPETokenizer(tokens: ["a", "b"], merges: [" a"], preTokenizer: "gpt2")
        }
    }

    @Test func duplicateTokens() {
        // An added token that is already in the vocabulary under another id.
        expectError(.duplicateToken("ab", firstID: 2, secondID: 4),
                    Self.json(addedTokens: #"[{"id": 4, "content": "ab", "special": true}]"#))
        // Two tokens for one id, and one key twice in the vocabulary.
        expectError(.conflictingTokenID(1, first: "b", second: "<s>"),
                    Self.json(addedTokens: #"[{"id": 1, "content": "<s>", "special": true}]"#))
        expectError(.malformedJSON(file: "tokenizer.json", reason: "the key \"a\" appears twice in one object"),
                    Self.json(model: #"{"type": "BPE", "vocab": {"a": 0, "a": 1}, "merges": []}"#))
        #expect(throws: BPETokenizerError.duplicateToken("x", firstID: 1, secondID: 3)) {
            try ByteLevelBPETokenizer(tokens: ["a", "x", "b", "x"], merges: [], preTokenizer: "gpt2")
        }
    }

    @Test func unsupportedComponents() {
        expectError(.unsupportedModel("Unigram"), Self.json(model: #"{"type": "Unigram", "vocab": [["a", 0.0]]}"#))
        expectError(.unsupportedModel("WordPiece"),
                    Self.json(model: #"{"type": "WordPiece", "vocab": {"a": 0}, "unk_token": "[UNK]"}"#))
        expectError(.unsupportedModel("WordLevel"), Self.json(model: #"{"type": "WordLevel", "vocab": {"a": 0}}"#))
        expectError(.unsupported(component: "pre_tokenizer", detail: "Metaspace"),
                    Self.json(preTokenizer: #"{"type": "Metaspace", "replacement": "▁"}"#))
        expectError(.unsupported(component: "pre_tokenizer", detail: "Split pattern \"\\\\w+\""),
                    Self.json(preTokenizer: #"{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\w+"}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "use_regex": false}]}"#))
        expectError(.unsupported(component: "pre_tokenizer", detail: "no ByteLevel step (not a byte-level BPE)"),
                    Self.json(preTokenizer: #"{"type": "Digits", "individual_digits": true}"#))
        expectError(.unsupported(component: "pre_tokenizer", detail: "ByteLevel with add_prefix_space after other pre-tokenizers"),
                    Self.json(preTokenizer: #"{"type": "Sequence", "pretokenizers": [{"type": "Digits"}, {"type": "ByteLevel", "add_prefix_space": true}]}"#))
        expectError(.unsupported(component: "normalizer", detail: "Lowercase"), Self.json(normalizer: #"{"type": "Lowercase"}"#))
        expectError(.unsupported(component: "decoder", detail: "WordPiece"), Self.json(decoder: #"{"type": "WordPiece"}"#))
        expectError(.unsupported(component: "post_processor", detail: "RobertaProcessing"),
                    Self.json(postProcessor: #"{"type": "RobertaProcessing"}"#))
        expectError(.unsupported(component: "model", detail: "byte_fallback (a byte-level BPE never needs it)"),
                    Self.json(model: #"{"type": "BPE", "vocab": {"a": 0}, "merges": [], "byte_fallback": true}"#))
        expectError(.unsupported(component: "model", detail: "BPE dropout 0.1"),
                    Self.json(model: #"{"type": "BPE", "vocab": {"a": 0}, "merges": [], "dropout": 0.1}"#))
        expectError(.unsupported(component: "truncation", detail: "an object (encode one text at a time without it)"),
                    Self.json(extra: #""truncation": {"max_length": 8},"#))
        let message = BPETokenizerError.unsupportedModel("Unigram").description
        #expect(message.contains("Unigram") && message.contains("byte-level BPE"))
    }

    @Test func configurationAndSpecialTokens() throws {
        let config = Data(#"{"bos_token": {"content": "ab"}, "eos_token": "b", "pad_token": null, "chat_template": [{"name": "default", "template": "T"}]}"#.utf8)
        let t = try ByteLevelBPETokenizer(tokenizerJSON: Self.json(), tokenizerConfig: config)
        #expect(t.bosID == 2 && t.eosID == 1 && t.paddingID == nil && t.chatTemplate == "T")
        expectError(.unknownSpecialToken(name: "eos_token", token: "</s>"), Self.json(),
                    config: Data(#"{"eos_token": "</s>"}"#.utf8))
        // The post-processor's tokens.
        let post = #"{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "ab", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "b", "type_id": 0}}], "special_tokens": {"ab": {"id": "ab", "ids": [2], "tokens": ["ab"]}, "b": {"id": "b", "ids": [1], "tokens": ["b"]}}}"#
        let withPost = try ByteLevelBPETokenizer(tokenizerJSON: Self.json(postProcessor: post))
        #expect(withPost.encode("a") == [2, 0, 1] && withPost.encode("a", addingSpecialTokens: false) == [0])
    }

    @Test func arrayInitializerErrors() {
        #expect(throws: BPETokenizerError.emptyVocabulary) { try ByteLevelBPETokenizer(tokens: [], merges: [], preTokenizer: "gpt2") }
        #expect(throws: BPETokenizerError.unknownPreTokenizer("tekken")) {
            try ByteLevelBPETokenizer(tokens: ["a"], merges: [], preTokenizer: "tekken")
        }
        #expect(throws: BPETokenizerError.tokenTypeCountMismatch(tokens: 2, tokenTypes: 1)) {
            try ByteLevelBPETokenizer(tokens: ["a", "b"], merges: [], tokenTypes: [1], preTokenizer: "gpt2")
        }
        #expect(throws: BPETokenizerError.invalidTokenType(id: 1, value: 9)) {
            try ByteLevelBPETokenizer(tokens: ["a", "b"], merges: [], tokenTypes: [1, 9], preTokenizer: "gpt2")
        }
        #expect(throws: BPETokenizerError.specialTokenIDOutOfRange(name: "eos", id: 2, vocabularySize: 2)) {
            try ByteLevelBPETokenizer(tokens: ["a", "b"], merges: [], preTokenizer: "gpt2", eosID: 2)
        }
        #expect(throws: BPETokenizerError.missingSpecialToken(name: "bos")) {
            try ByteLevelBPETokenizer(tokens: ["a", "b"], merges: [], preTokenizer: "gpt2", addsBOS: true)
        }
        #expect(throws: BPETokenizerError.fileNotFound(path: "/nonexistent/lorta/tokenizer.json")) {
            try ByteLevelBPETokenizer(directory: URL(fileURLWithPath: "/nonexistent/lorta"))
        }
    }

    @Test func addsBOSFromArrays() throws {
        let t = try ByteLevelBPETokenizer(tokens: ["<s>", "a", "b", "ab"], merges: ["a b"], tokenTypes: [3, 1, 1, 1],
                                          preTokenizer: "smollm", bosID: 0, addsBOS: true)
        #expect(t.encode("ab<s>a") == [0, 3, 0, 1])
        #expect(t.encode("ab", addingSpecialTokens: false) == [3])
        #expect(try t.decode([0, 3], skippingSpecialTokens: true) == "ab")
    }
}
