import Foundation

/// Errors of ``BertTokenizer``.
public enum TokenizerError: Error, Equatable, CustomStringConvertible {
    /// No file at the vocabulary path.
    case vocabularyNotFound(path: String)
    /// The vocabulary file exists but could not be read, or is not UTF-8.
    case unreadableVocabulary(path: String, reason: String)
    /// The vocabulary has no tokens.
    case emptyVocabulary(path: String?)
    /// A special token the tokenizer needs ([PAD], [UNK], [CLS] or [SEP]) is not in the vocabulary.
    case missingSpecialTokens([String], path: String?)
    /// `maxLength` must leave room for [CLS] and [SEP].
    case invalidMaxLength(Int)

    public var description: String {
        let where_ = { (path: String?) in path.map { " (\($0))" } ?? "" }
        switch self {
        case .vocabularyNotFound(let path):
            return "vocabulary file not found: \(path)"
        case .unreadableVocabulary(let path, let reason):
            return "cannot read vocabulary file \(path): \(reason)"
        case .emptyVocabulary(let path):
            return "the vocabulary is empty\(where_(path))"
        case .missingSpecialTokens(let tokens, let path):
            return "the vocabulary\(where_(path)) lacks the special token(s) "
                + tokens.joined(separator: ", ") + " that a BERT tokenizer needs"
        case .invalidMaxLength(let n):
            return "maxLength must be at least 2 (room for [CLS] and [SEP]), got \(n)"
        }
    }
}

/// Token ids of several texts, padded to a common length.
///
/// Row `i` holds `[CLS] pieces… [SEP]` followed by `[PAD]` up to ``sequenceLength``; the
/// attention mask is 1 on the first `lengths[i]` positions and 0 on the padding. Both matrices
/// are row-major, ``count`` × ``sequenceLength``.
public struct TokenBatch: Sendable, Equatable {
    /// Number of texts (rows).
    public let count: Int
    /// Padded length of every row (columns).
    public let sequenceLength: Int
    /// Token ids, row-major `count × sequenceLength`.
    public let ids: [Int32]
    /// 1 for real tokens, 0 for padding, row-major `count × sequenceLength`.
    public let attentionMask: [Int32]
    /// Unpadded length of each row (including [CLS] and [SEP]).
    public let lengths: [Int]

    /// Total number of real (unpadded) tokens.
    public var tokenCount: Int { lengths.reduce(0, +) }

    /// The ids of row `i` (with padding). Precondition: `0 <= i < count`.
    public func row(_ i: Int) -> ArraySlice<Int32> {
        ids[(i * sequenceLength)..<((i + 1) * sequenceLength)]
    }
}

extension TokenBatch {
    /// A batch of already tokenized rows, right-padded with `paddingID` to the longest row
    /// (mask 1 on the real tokens, 0 on the padding) — e.g. prompts for a causal model.
    /// Precondition: at least one row, and a non-empty longest row.
    public init(rightPadding rows: [[Int32]], paddingID: Int32) {
        let T = rows.map(\.count).max() ?? 0
        precondition(!rows.isEmpty && T > 0, "TokenBatch(rightPadding:) needs a non-empty row")
        var ids: [Int32] = [], mask: [Int32] = []
        ids.reserveCapacity(rows.count * T)
        mask.reserveCapacity(rows.count * T)
        for r in rows {
            ids += r + Array(repeating: paddingID, count: T - r.count)
            mask += Array(repeating: 1, count: r.count) + Array(repeating: 0, count: T - r.count)
        }
        self.init(count: rows.count, sequenceLength: T, ids: ids, attentionMask: mask, lengths: rows.map(\.count))
    }
}

/// A BERT WordPiece tokenizer read from a `vocab.txt` (one token per line, id = line number).
///
/// Produces the same ids as Hugging Face's `BertTokenizerFast` (and `transformers` ≥ 5
/// `BertTokenizer`) with `do_lower_case=True`: the special tokens `[PAD] [UNK] [CLS] [SEP]
/// [MASK]` written literally in the text are kept as single tokens (matched case-sensitively
/// before normalization); the rest goes through ``BasicTokenizer`` (cleaning, CJK splitting,
/// accent stripping, lower-casing, whitespace and punctuation splitting) and ``WordPiece``
/// (greedy longest match, `##` continuations, words longer than 100 scalars → `[UNK]`).
///
/// ```swift
/// let tokenizer = try BertTokenizer(vocabularyURL: modelDirectory.appending(path: "vocab.txt"))
/// let ids = try tokenizer.encode("A gorgeous film.", maxLength: 64)   // [101, 1037, …, 102]
/// let batch = try tokenizer.encodeBatch(texts, maxLength: 64, padding: .longest)
/// ```
public struct BertTokenizer: Sendable {
    /// How ``encodeBatch(_:maxLength:padding:)`` pads.
    public enum Padding: Sendable, Equatable {
        /// Pad every row to the longest row of the batch (after truncation).
        case longest
        /// Pad every row to `maxLength`.
        case fixed
    }

    /// Tokens by id (the lines of `vocab.txt`).
    public let vocabulary: [String]
    /// The normalization and pre-tokenization stage.
    public let basicTokenizer: BasicTokenizer
    /// The sub-word stage.
    public let wordPiece: WordPiece
    /// Ids of the special tokens.
    public let padID: Int32, unknownID: Int32, classID: Int32, separatorID: Int32
    /// Id of `[MASK]`, if the vocabulary has one.
    public let maskID: Int32?

    /// Special tokens matched literally in the input, longest first: (scalars, id).
    private let literalSpecials: [([Unicode.Scalar], Int32)]
    private let idsByToken: [String: Int32]

    /// Reads `vocab.txt` (UTF-8, one token per line; a trailing "\r" is ignored).
    ///
    /// - Parameters:
    ///   - vocabularyURL: path of `vocab.txt`.
    ///   - lowercase: lower-case and strip accents (the "uncased" models, e.g. all-MiniLM-L6-v2).
    /// - Throws: ``TokenizerError`` if the file is missing, unreadable, empty, or lacks
    ///   [PAD], [UNK], [CLS] or [SEP].
    public init(vocabularyURL: URL, lowercase: Bool = true) throws(TokenizerError) {
        let path = vocabularyURL.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory),
              !isDirectory.boolValue else {
            throw .vocabularyNotFound(path: path)
        }
        let data: Data
        do {
            data = try RegularFile.read(vocabularyURL)
        } catch {
            throw .unreadableVocabulary(path: path, reason: error.reason)
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw .unreadableVocabulary(path: path, reason: "not valid UTF-8")
        }
        try self.init(vocabulary: Self.lines(text), lowercase: lowercase, source: path)
    }

    /// Builds a tokenizer from tokens listed by id.
    /// - Throws: ``TokenizerError/emptyVocabulary(path:)`` or
    ///   ``TokenizerError/missingSpecialTokens(_:path:)``.
    public init(vocabulary: [String], lowercase: Bool = true) throws(TokenizerError) {
        try self.init(vocabulary: vocabulary, lowercase: lowercase, source: nil)
    }

    private init(vocabulary: [String], lowercase: Bool, source: String?) throws(TokenizerError) {
        guard !vocabulary.isEmpty else { throw .emptyVocabulary(path: source) }
        // Later duplicates win, as in `tokenizers`. Keys compare scalar-exactly via the
        // special-token check below; `idsByToken` is only used for lookups by name.
        var byScalars: [[Unicode.Scalar]: Int32] = [:]
        for (id, token) in vocabulary.enumerated() { byScalars[Array(token.unicodeScalars)] = Int32(id) }
        func id(_ token: String) -> Int32? { byScalars[Array(token.unicodeScalars)] }
        let required = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
        let missing = required.filter { id($0) == nil }
        guard missing.isEmpty else { throw .missingSpecialTokens(missing, path: source) }
        self.vocabulary = vocabulary
        self.padID = id("[PAD]")!
        self.unknownID = id("[UNK]")!
        self.classID = id("[CLS]")!
        self.separatorID = id("[SEP]")!
        self.maskID = id("[MASK]")
        self.basicTokenizer = BasicTokenizer(lowercase: lowercase)
        self.wordPiece = WordPiece(vocabulary: vocabulary, unknownID: unknownID)
        self.literalSpecials = (required + ["[MASK]"])
            .compactMap { t in id(t).map { (Array(t.unicodeScalars), $0) } }
            .sorted { $0.0.count > $1.0.count }
        var idsByToken: [String: Int32] = [:]
        for (i, t) in vocabulary.enumerated() { idsByToken[t] = Int32(i) }
        self.idsByToken = idsByToken
    }

    /// Splits a vocabulary file into lines like Python's `readlines` + `rstrip("\n")`
    /// (a final newline does not start an empty token); a trailing "\r" is removed too.
    static func lines(_ text: String) -> [String] {
        // Split on the scalar U+000A (a Character split would keep "\r\n" together).
        var lines = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        return lines.map { line in
            var scalars = line
            if scalars.last == "\r" { scalars.removeLast() }
            return String(String.UnicodeScalarView(scalars))
        }
    }

    /// Number of tokens in the vocabulary.
    public var vocabularySize: Int { vocabulary.count }

    /// The id of `token`, if it is in the vocabulary (Swift string equality).
    public func id(for token: String) -> Int32? { idsByToken[token] }

    /// The token with id `id`, or nil when out of range.
    public func token(for id: Int32) -> String? {
        id >= 0 && Int(id) < vocabulary.count ? vocabulary[Int(id)] : nil
    }

    /// Piece ids of `text` without [CLS]/[SEP] and without truncation. O(length of `text`).
    public func pieceIDs(_ text: String) -> [Int32] {
        var ids: [Int32] = []
        for segment in segments(text) {
            switch segment {
            case .special(let id):
                ids.append(id)
            case .text(let part):
                for word in basicTokenizer.words(part) { wordPiece.appendIDs(of: word, to: &ids) }
            }
        }
        return ids
    }

    /// Piece strings of `text` (e.g. `["the", "rock", "is", "destined", …, "'", "s"]`).
    public func tokenize(_ text: String) -> [String] {
        pieceIDs(text).map { vocabulary[Int($0)] }
    }

    /// `[CLS] pieces [SEP]`, keeping only the first `maxLength − 2` pieces when longer (the
    /// final [SEP] is always kept), like `tokenizer(text, truncation=True, max_length=…)`.
    /// - Throws: ``TokenizerError/invalidMaxLength(_:)`` when `maxLength < 2`.
    public func encode(_ text: String, maxLength: Int) throws(TokenizerError) -> [Int32] {
        guard maxLength >= 2 else { throw .invalidMaxLength(maxLength) }
        let pieces = pieceIDs(text)
        var ids: [Int32] = [classID]
        ids.reserveCapacity(min(pieces.count, maxLength - 2) + 2)
        ids.append(contentsOf: pieces.prefix(maxLength - 2))
        ids.append(separatorID)
        return ids
    }

    /// Encodes each text with ``encode(_:maxLength:)`` and pads the rows with `[PAD]` to the
    /// longest row (`.longest`) or to `maxLength` (`.fixed`). An empty `texts` gives a batch
    /// with no rows. O(total text length + rows × padded length).
    /// - Throws: ``TokenizerError/invalidMaxLength(_:)`` when `maxLength < 2`.
    public func encodeBatch(_ texts: [String], maxLength: Int,
                            padding: Padding = .longest) throws(TokenizerError) -> TokenBatch {
        guard maxLength >= 2 else { throw .invalidMaxLength(maxLength) }
        var rows: [[Int32]] = []
        rows.reserveCapacity(texts.count)
        for text in texts { rows.append(try encode(text, maxLength: maxLength)) }
        let width = padding == .fixed ? maxLength : (rows.map(\.count).max() ?? 0)
        var ids = [Int32](repeating: padID, count: rows.count * width)
        var mask = [Int32](repeating: 0, count: rows.count * width)
        for (i, row) in rows.enumerated() {
            for (j, id) in row.enumerated() {
                ids[i * width + j] = id
                mask[i * width + j] = 1
            }
        }
        return TokenBatch(count: rows.count, sequenceLength: width, ids: ids,
                          attentionMask: mask, lengths: rows.map(\.count))
    }

    // MARK: Literal special tokens

    private enum Segment {
        case text(String)
        case special(Int32)
    }

    /// Splits `text` around literal special tokens (leftmost, then longest match).
    private func segments(_ text: String) -> [Segment] {
        let scalars = Array(text.unicodeScalars)
        guard scalars.contains("[") else { return [.text(text)] }
        var result: [Segment] = []
        var pending = String.UnicodeScalarView()
        var i = 0
        outer: while i < scalars.count {
            if scalars[i] == "[" {
                for (token, id) in literalSpecials
                where i + token.count <= scalars.count && scalars[i..<(i + token.count)].elementsEqual(token) {
                    if !pending.isEmpty {
                        result.append(.text(String(pending)))
                        pending = String.UnicodeScalarView()
                    }
                    result.append(.special(id))
                    i += token.count
                    continue outer
                }
            }
            pending.append(scalars[i])
            i += 1
        }
        if !pending.isEmpty { result.append(.text(String(pending))) }
        return result
    }
}
