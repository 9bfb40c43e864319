import Foundation
import Testing
@testable import LoRTA

// MARK: - Helpers

private struct TokenizerFixture: Decodable {
    struct Case: Decodable {
        let text: String
        let ids: [Int32]
        let max_length: Int?
    }
    let transformers: String
    let tokenizers: String
    let cases: [Case]
}

private func fixtureURL(_ name: String, _ ext: String) throws -> URL {
    try #require(Bundle.module.url(forResource: name, withExtension: ext,
                                   subdirectory: "Fixtures/tokenizer"),
                 "fixture \(name).\(ext) missing from the test bundle")
}

private func loadFixture(_ name: String) throws -> TokenizerFixture {
    try JSONDecoder().decode(TokenizerFixture.self, from: Data(contentsOf: fixtureURL(name, "json")))
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

private func miniLMTokenizer() throws -> BertTokenizer {
    try BertTokenizer(vocabularyURL: assetURL("all-MiniLM-L6-v2/vocab.txt"))
}

/// FNV-1a, 64-bit, as 16 lowercase hex digits (same as the fixture script).
private func fnv1a64Hex(_ data: Data) -> String {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in data { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
    let hex = String(h, radix: 16)
    return String(repeating: "0", count: 16 - hex.count) + hex
}

private func scalars(_ s: String) -> [Unicode.Scalar] { Array(s.unicodeScalars) }

/// A tiny vocabulary for unit tests: id = index.
private let tinyVocabulary = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",          // 0–4
    "un", "##aff", "##able", "aff", "able",                // 5–9
    "run", "##ning", "##n", "##i", "a", "##a",             // 10–15
    ",", "!", "'", "s", "cafe", "中", "文",                  // 16–22
]

private func tinyTokenizer() throws -> BertTokenizer {
    try BertTokenizer(vocabulary: tinyVocabulary)
}

// MARK: - Basic tokenizer

@Suite("BasicTokenizer")
struct BasicTokenizerTests {
    let basic = BasicTokenizer()

    @Test func splitsWhitespaceAndPunctuation() {
        #expect(basic.tokenize("  Hello,   WORLD!! it's\tfine\n") ==
                ["hello", ",", "world", "!", "!", "it", "'", "s", "fine"])
        #expect(basic.tokenize("a$b`c~d{e}") == ["a", "$", "b", "`", "c", "~", "d", "{", "e", "}"])
        // Unicode punctuation (Pd, Pi, Pf, Po) splits; symbols (Sc, Sm, So) do not.
        #expect(basic.tokenize("x–y “q” ¡z €5 a+b") ==
                ["x", "–", "y", "“", "q", "”", "¡", "z", "€5", "a", "+", "b"])
        #expect(basic.tokenize("") == [])
        #expect(basic.tokenize(" \t\n ") == [])
    }

    @Test func lowercasesAndStripsAccents() {
        #expect(basic.tokenize("Café Crème NAÏVE Ångström") == ["cafe", "creme", "naive", "angstrom"])
        // Decomposed input: the combining acute is a nonspacing mark and disappears.
        #expect(basic.tokenize("e\u{301}te\u{301}") == ["ete"])
        // İ → I + combining dot (NFD) → I → i; Σ lower-cases to σ even at the end of a word.
        #expect(basic.tokenize("İSTANBUL ΟΔΟΣ") == ["istanbul", "οδοσ"])
        // Compatibility characters are not decomposed (NFD, not NFKD).
        #expect(basic.tokenize("ﬁ") == ["ﬁ"])
        // Cased mode keeps case and accents.
        #expect(BasicTokenizer(lowercase: false).tokenize("Café") == ["Café"])
        #expect(BasicTokenizer(lowercase: true, stripAccents: false).tokenize("Café") == ["café"])
    }

    @Test func cleansControlCharactersAndWhitespace() {
        #expect(basic.tokenize("a\u{0}b\u{FFFD}c\u{1}d\u{7F}e") == ["abcde"])
        // Cf (soft hyphen, zero-width space, BOM) and Co (private use) are removed.
        #expect(basic.tokenize("x\u{AD}y z\u{200B}w \u{FEFF}q\u{E000}r") == ["xy", "zw", "qr"])
        // White_Space scalars separate words; U+000B/U+000C/U+0085 are Cc and are removed.
        #expect(basic.tokenize("a\u{A0}b\u{2028}c\u{3000}d") == ["a", "b", "c", "d"])
        #expect(basic.tokenize("a\u{B}b\u{C}c\u{85}d") == ["abcd"])
        // Unassigned scalars are kept.
        #expect(basic.normalize("a\u{378}b") == scalars("a\u{378}b"))
    }

    @Test func isolatesCJKIdeographs() {
        #expect(basic.tokenize("ab中文cd") == ["ab", "中", "文", "cd"])
        // Hiragana and Hangul are not in the CJK ideograph blocks.
        #expect(basic.tokenize("のテ한국") == ["のテ한국"])
        #expect(BasicTokenizer.isCJKIdeograph("\u{2B81F}") && BasicTokenizer.isCJKIdeograph("\u{2B920}"))
        #expect(!BasicTokenizer.isCJKIdeograph("\u{2B820}"))
    }

    @Test func normalizeWorksOnScalarsNotCharacters() {
        // "e" + U+0301 is one Character but two scalars; cased mode keeps both.
        let cased = BasicTokenizer(lowercase: false)
        #expect(cased.normalize("e\u{301}") == scalars("e\u{301}"))
        #expect(cased.normalize("\u{E9}") == scalars("\u{E9}"))
    }
}

// MARK: - WordPiece

@Suite("WordPiece")
struct WordPieceTests {
    let wp = WordPiece(vocabulary: tinyVocabulary, unknownID: 1)

    @Test func greedyLongestMatchFirst() {
        #expect(wp.ids(of: scalars("unaffable")) == [5, 6, 7])
        #expect(wp.ids(of: scalars("running")) == [10, 11])
        #expect(wp.ids(of: scalars("runn")) == [10, 12])
        #expect(wp.ids(of: scalars("aaa")) == [14, 15, 15])
        #expect(wp.ids(of: scalars("affable")) == [8, 7])
        #expect(wp.ids(of: []) == [])
    }

    @Test func unmatchedRemainderMakesTheWholeWordUnknown() {
        // "run" + "##x" fails → the whole word is [UNK], not "run [UNK]".
        #expect(wp.ids(of: scalars("runx")) == [1])
        #expect(wp.ids(of: scalars("xyz")) == [1])
        var ids: [Int32] = [42]
        wp.appendIDs(of: scalars("runx"), to: &ids)
        #expect(ids == [42, 1])
    }

    @Test func maximumWordLength() {
        let vocab = ["[UNK]", "a", "##a"]
        let wp = WordPiece(vocabulary: vocab, unknownID: 0, maxInputCharsPerWord: 4)
        #expect(wp.ids(of: scalars("aaaa")) == [1, 2, 2, 2])
        #expect(wp.ids(of: scalars("aaaaa")) == [0])
        // Default limit 100 scalars.
        let long = WordPiece(vocabulary: vocab, unknownID: 0)
        #expect(long.ids(of: Array(repeating: "a", count: 100)) == [1] + Array(repeating: 2, count: 99))
        #expect(long.ids(of: Array(repeating: "a", count: 101)) == [0])
    }

    @Test func piecesAreComparedScalarByScalar() {
        // Swift's String equality would call these equal; BERT's vocabulary does not.
        let wp = WordPiece(vocabulary: ["[UNK]", "\u{E9}", "e\u{301}"], unknownID: 0)
        #expect(wp.ids(of: scalars("\u{E9}")) == [1])
        #expect(wp.ids(of: scalars("e\u{301}")) == [2])
    }

    @Test func laterDuplicateWins() {
        let wp = WordPiece(vocabulary: ["[UNK]", "x", "x"], unknownID: 0)
        #expect(wp.ids(of: scalars("x")) == [2])
    }
}

// MARK: - BertTokenizer on a tiny vocabulary

@Suite("BertTokenizer")
struct BertTokenizerUnitTests {
    @Test func encodesWithSpecialTokens() throws {
        let t = try tinyTokenizer()
        #expect(t.padID == 0 && t.unknownID == 1 && t.classID == 2 && t.separatorID == 3 && t.maskID == 4)
        #expect(try t.encode("Unaffable, running!", maxLength: 32) == [2, 5, 6, 7, 16, 10, 11, 17, 3])
        #expect(try t.encode("", maxLength: 32) == [2, 3])
        #expect(try t.encode("Café 中文 xyz", maxLength: 32) == [2, 20, 21, 22, 1, 3])
        #expect(t.tokenize("it's") == ["[UNK]", "'", "s"])
    }

    @Test func literalSpecialTokensAreKept() throws {
        let t = try tinyTokenizer()
        // Matched case-sensitively before normalization, even glued to other text.
        #expect(t.pieceIDs("a [MASK] a[SEP]a") == [14, 4, 14, 3, 14])
        #expect(t.pieceIDs("[mask]") == [1, 1, 1])   // "[", "mask", "]" with no "[" in vocab
        #expect(t.pieceIDs("[[PAD]]") == [1, 0, 1])
    }

    @Test func truncationKeepsSeparator() throws {
        let t = try tinyTokenizer()
        let text = "a a a a a a"
        #expect(try t.encode(text, maxLength: 8) == [2, 14, 14, 14, 14, 14, 14, 3])
        #expect(try t.encode(text, maxLength: 5) == [2, 14, 14, 14, 3])
        #expect(try t.encode(text, maxLength: 2) == [2, 3])
        #expect(throws: TokenizerError.invalidMaxLength(1)) { try t.encode(text, maxLength: 1) }
    }

    @Test func batchPaddingAndMasks() throws {
        let t = try tinyTokenizer()
        let texts = ["a", "run a a", "", "a a a a a a a a"]
        let longest = try t.encodeBatch(texts, maxLength: 6, padding: .longest)
        #expect(longest.count == 4 && longest.sequenceLength == 6)
        #expect(longest.lengths == [3, 5, 2, 6])
        #expect(longest.tokenCount == 16)
        #expect(Array(longest.row(0)) == [2, 14, 3, 0, 0, 0])
        #expect(Array(longest.row(1)) == [2, 10, 14, 14, 3, 0])
        #expect(Array(longest.row(2)) == [2, 3, 0, 0, 0, 0])
        #expect(Array(longest.row(3)) == [2, 14, 14, 14, 14, 3])
        for i in 0..<4 {
            for j in 0..<6 {
                #expect(longest.attentionMask[i * 6 + j] == (j < longest.lengths[i] ? 1 : 0))
            }
        }
        let short = try t.encodeBatch(["a", "run a"], maxLength: 16, padding: .longest)
        #expect(short.sequenceLength == 4)
        #expect(short.ids == [2, 14, 3, 0, 2, 10, 14, 3])
        #expect(short.attentionMask == [1, 1, 1, 0, 1, 1, 1, 1])
        let fixed = try t.encodeBatch(["a", "run a"], maxLength: 7, padding: .fixed)
        #expect(fixed.sequenceLength == 7)
        #expect(fixed.ids == [2, 14, 3, 0, 0, 0, 0, 2, 10, 14, 3, 0, 0, 0])
        #expect(fixed.attentionMask == [1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0])
        let empty = try t.encodeBatch([], maxLength: 8, padding: .longest)
        #expect(empty.count == 0 && empty.ids.isEmpty && empty.lengths.isEmpty)
        #expect(throws: TokenizerError.invalidMaxLength(0)) {
            try t.encodeBatch(["a"], maxLength: 0, padding: .fixed)
        }
    }

    @Test func padIDComesFromTheVocabulary() throws {
        var vocab = tinyVocabulary
        vocab.swapAt(0, 16)   // [PAD] now has id 16, "," id 0
        let t = try BertTokenizer(vocabulary: vocab)
        #expect(t.padID == 16)
        let batch = try t.encodeBatch(["a", "a a"], maxLength: 8, padding: .longest)
        #expect(batch.ids == [2, 14, 3, 16, 2, 14, 14, 3])
        #expect(t.pieceIDs(",") == [0])
    }

    @Test func lookups() throws {
        let t = try tinyTokenizer()
        #expect(t.vocabularySize == tinyVocabulary.count)
        #expect(t.id(for: "##able") == 7 && t.id(for: "nope") == nil)
        #expect(t.token(for: 7) == "##able" && t.token(for: -1) == nil && t.token(for: 999) == nil)
    }
}

// MARK: - Errors

@Suite("BertTokenizer errors")
struct BertTokenizerErrorTests {
    private func temporaryFile(_ contents: Data) throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("lorta-vocab-\(UUID().uuidString).txt")
        try contents.write(to: url)
        return url
    }

    @Test func missingFile() {
        let path = "/nonexistent/lorta/vocab.txt"
        #expect(throws: TokenizerError.vocabularyNotFound(path: path)) {
            try BertTokenizer(vocabularyURL: URL(fileURLWithPath: path))
        }
        // A directory is not a vocabulary file.
        let dir = FileManager.default.temporaryDirectory.path
        #expect(throws: TokenizerError.vocabularyNotFound(path: URL(fileURLWithPath: dir).path)) {
            try BertTokenizer(vocabularyURL: URL(fileURLWithPath: dir))
        }
    }

    @Test func emptyFile() throws {
        let url = try temporaryFile(Data())
        defer { try? FileManager.default.removeItem(at: url) }
        #expect(throws: TokenizerError.emptyVocabulary(path: url.path)) {
            try BertTokenizer(vocabularyURL: url)
        }
        #expect(throws: TokenizerError.emptyVocabulary(path: nil)) { try BertTokenizer(vocabulary: []) }
    }

    @Test func notUTF8() throws {
        let url = try temporaryFile(Data([0x5B, 0x50, 0x41, 0x44, 0x5D, 0x0A, 0xFF, 0xFE, 0x0A]))
        defer { try? FileManager.default.removeItem(at: url) }
        #expect(throws: TokenizerError.unreadableVocabulary(path: url.path, reason: "not valid UTF-8")) {
            try BertTokenizer(vocabularyURL: url)
        }
    }

    @Test func missingSpecialTokens() throws {
        let url = try temporaryFile(Data("[PAD]\n[UNK]\nhello\n[cls]\n".utf8))
        defer { try? FileManager.default.removeItem(at: url) }
        do {
            _ = try BertTokenizer(vocabularyURL: url)
            Issue.record("expected an error")
        } catch {
            #expect(error == .missingSpecialTokens(["[CLS]", "[SEP]"], path: url.path))
            #expect(error.description.contains("[CLS], [SEP]"))
        }
        // [MASK] is optional.
        let t = try BertTokenizer(vocabulary: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "x"])
        #expect(t.maskID == nil)
        #expect(t.pieceIDs("[MASK]") == [1, 1, 1])
    }

    @Test func fileLinesAndCRLF() throws {
        let url = try temporaryFile(Data("[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\nhi\r\n".utf8))
        defer { try? FileManager.default.removeItem(at: url) }
        let t = try BertTokenizer(vocabularyURL: url)
        #expect(t.vocabulary == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hi"])
        #expect(try t.encode("Hi", maxLength: 8) == [2, 4, 3])
        #expect(BertTokenizer.lines("a\nb") == ["a", "b"])
        #expect(BertTokenizer.lines("a\n\nb\n") == ["a", "", "b"])
    }
}

// MARK: - Hugging Face reference (needs the fetched assets)

@Suite("BertTokenizer vs Hugging Face")
struct BertTokenizerReferenceTests {
    @Test func movieSampleAndHardCasesMatchTransformers() throws {
        let tokenizer = try miniLMTokenizer()
        #expect(tokenizer.vocabularySize == 30522)
        let fixture = try loadFixture("movies_sample")
        #expect(fixture.cases.count >= 320)
        var mismatches = 0
        for c in fixture.cases {
            let ids = try tokenizer.encode(c.text, maxLength: 100_000)
            if ids != c.ids {
                mismatches += 1
                Issue.record("""
                    \(c.text.debugDescription)
                      ours: \(ids.map { tokenizer.token(for: $0)! })
                      HF:   \(c.ids.map { tokenizer.token(for: $0)! })
                    """)
            }
        }
        #expect(mismatches == 0)
    }

    @Test func truncationMatchesTransformers() throws {
        let tokenizer = try miniLMTokenizer()
        let fixture = try loadFixture("truncation")
        #expect(fixture.cases.count > 30)
        for c in fixture.cases {
            let maxLength = try #require(c.max_length)
            #expect(try tokenizer.encode(c.text, maxLength: maxLength) == c.ids,
                    "max_length \(maxLength): \(c.text.debugDescription)")
        }
        // Batch encoding agrees with the row-by-row reference, with both paddings.
        let sixteen = fixture.cases.filter { $0.max_length == 16 }
        let batch = try tokenizer.encodeBatch(sixteen.map(\.text), maxLength: 16, padding: .fixed)
        for (i, c) in sixteen.enumerated() {
            #expect(Array(batch.row(i)) == c.ids + Array(repeating: 0, count: 16 - c.ids.count))
            #expect(batch.lengths[i] == c.ids.count)
        }
    }

    /// Normalization + pre-tokenization of "q" + c + "z" for every code point c of the common
    /// Unicode blocks (8,431 of them) equals the `tokenizers` result.
    @Test func everyCommonCodePointIsClassifiedLikeTokenizers() throws {
        let text = try String(contentsOf: fixtureURL("codepoints", "txt"), encoding: .utf8)
        let basic = BasicTokenizer()
        var checked = 0, mismatches = 0
        for line in text.unicodeScalars.split(separator: "\n") {
            let tab = try #require(line.firstIndex(of: "\t"))
            let cp = try #require(UInt32(String(String.UnicodeScalarView(line[..<tab])), radix: 16))
            let expected = String(String.UnicodeScalarView(line[line.index(after: tab)...]))
            var input = String.UnicodeScalarView()
            input.append("q"); input.append(Unicode.Scalar(cp)!); input.append("z")
            let ours = basic.tokenize(String(input)).joined(separator: " ")
            // Compare scalar by scalar (String == would identify canonically equivalent forms).
            if !ours.unicodeScalars.elementsEqual(expected.unicodeScalars) {
                mismatches += 1
                if mismatches <= 10 {
                    Issue.record("U+\(String(cp, radix: 16, uppercase: true)): ours \(ours.debugDescription), tokenizers \(expected.debugDescription)")
                }
            }
            checked += 1
        }
        #expect(checked == 8431)
        #expect(mismatches == 0)
    }

    @Test func wholeTestSplitMatchesTransformers() throws {
        let tokenizer = try miniLMTokenizer()
        let testTSV = try Data(contentsOf: assetURL("movies/test.tsv"))
        let reference = try String(contentsOf: fixtureURL("test_split_ids", "txt"), encoding: .utf8)
        var lines = reference.split(separator: "\n")
        let header = lines.removeFirst()
        let sentences = String(decoding: testTSV, as: UTF8.self).split(separator: "\n")
            .map { line in String(line[line.index(after: line.firstIndex(of: "\t")!)...]) }
        // The fixture was made from this exact split.
        #expect(header == "# fnv1a64-of-test.tsv " + fnv1a64Hex(testTSV),
                "assets/movies/test.tsv differs from the split the fixture was made from")
        try #require(sentences.count == lines.count)
        #expect(sentences.count == 2114)
        var mismatches = 0
        for (text, line) in zip(sentences, lines) {
            let expected = line.split(separator: " ").map { Int32($0)! }
            if try tokenizer.encode(text, maxLength: 100_000) != expected {
                mismatches += 1
                if mismatches <= 5 { Issue.record("mismatch: \(text.debugDescription)") }
            }
        }
        #expect(mismatches == 0)
    }
}
