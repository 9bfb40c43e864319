import Foundation

/// A byte-level BPE tokenizer (GPT-2 style), as Hugging Face `tokenizers` and llama.cpp run it:
/// SmolLM2, GPT-2, Llama 3, Qwen2 and their relatives.
///
/// Encoding, in order:
/// 1. **Added tokens** (special/control tokens such as `<|im_start|>`, and user-defined tokens)
///    are cut out of the raw text as whole tokens: leftmost match first, the longest at that
///    position (see ``AddedToken`` for the Hugging Face options).
/// 2. The rest is **normalized** (nothing, or NFC for tokenizer.json files that ask for it) and
///    cut again around added tokens marked `normalized`.
/// 3. Each remaining stretch of text is **pre-tokenized** (``PreTokenizer``) into pieces.
/// 4. Each piece's UTF-8 bytes are **merged** by BPE rank (lowest rank first, leftmost on ties),
///    starting from the single-byte tokens of ``ByteLevelAlphabet``.
/// 5. The post-processor's tokens (e.g. a BOS) are put around the result.
///
/// Decoding maps each token back to its bytes through the inverse alphabet (added tokens to
/// their UTF-8 text) and decodes the concatenation as UTF-8, replacing invalid sequences with
/// U+FFFD like Rust's `String::from_utf8_lossy` (Hugging Face's `ByteLevel` decoder).
///
/// ```swift
/// let tokenizer = try ByteLevelBPETokenizer(tokens: tokens, merges: merges, tokenTypes: types,
///                                           preTokenizer: "smollm", bosID: 1, eosID: 2)
/// let ids = tokenizer.encode("<|im_start|>user\nHi<|im_end|>")   // [1, 4093, 198, …, 2]
/// let text = try tokenizer.decode(ids)                            // the same text
/// ```
///
/// The value is immutable and `Sendable`; copies share a bounded, lock-protected cache of
/// piece → ids results.
public struct ByteLevelBPETokenizer: Sendable {
    /// Token kinds, with llama.cpp's numbering (GGUF `tokenizer.ggml.token_type`).
    public enum TokenType: Int32, Sendable, Equatable {
        case undefined = 0
        case normal = 1
        /// The unknown token; matched in text and skipped like a special token.
        case unknown = 2
        /// Special tokens (`<|im_start|>`, `<|endoftext|>`, …): matched atomically in text
        /// (unless `parsingSpecialTokens` is false), skipped by `skippingSpecialTokens`.
        case control = 3
        /// Added tokens that are not special: always matched atomically, never skipped.
        case userDefined = 4
        case unused = 5
        case byte = 6
    }

    /// Unicode normalization applied before pre-tokenization.
    public enum Normalization: Sendable, Equatable {
        case none
        /// Canonical composition (Hugging Face `NFC` normalizer).
        case nfc
    }

    /// Tokens by id: strings over ``ByteLevelAlphabet``, except added tokens (their plain text).
    public let tokens: [String]
    /// The type of each token.
    public let tokenTypes: [TokenType]
    /// The tokens matched atomically in text (control, unknown and user-defined tokens).
    public let addedTokens: [AddedToken]
    /// How text is split before merging.
    public let preTokenizer: PreTokenizer
    /// Whether a space is put before every stretch of text that does not start with one
    /// (Hugging Face `ByteLevel(add_prefix_space=True)`).
    public let addsPrefixSpace: Bool
    /// Whether a piece that is itself a token is taken whole, without merging (Llama 3).
    public let ignoresMerges: Bool
    /// Normalization before pre-tokenization.
    public let normalization: Normalization
    /// Number of merges.
    public let mergeCount: Int
    /// Special token ids (informational, except as ``prefixIDs``/``suffixIDs`` use them).
    public let bosID: Int32?, eosID: Int32?, unknownID: Int32?, paddingID: Int32?
    /// Ids put before / after the tokens of a text by `encode(_:addingSpecialTokens: true)`.
    public let prefixIDs: [Int32], suffixIDs: [Int32]
    /// The model's chat template (Jinja source), if it has one; see ``ChatTemplate``.
    public let chatTemplate: String?

    private let idsByBytes: [ByteString: Int32]
    private let merger: BytePairMerger
    private let rawMatcher: AddedTokenMatcher
    private let normalizedMatcher: AddedTokenMatcher
    /// Decoded bytes of every token, concatenated; token i is `tokenBytes[tokenByteOffsets[i]..<tokenByteOffsets[i+1]]`.
    private let tokenBytes: [UInt8]
    private let tokenByteOffsets: [Int]
    private let specialFlags: [Bool]

    // MARK: Building

    /// Builds a tokenizer from the neutral arrays of a GGUF file (`tokenizer.ggml.model == "gpt2"`).
    ///
    /// - Parameters:
    ///   - tokens: token strings by id (`tokenizer.ggml.tokens`), over ``ByteLevelAlphabet``.
    ///   - merges: merges by rank (`tokenizer.ggml.merges`), each "left right".
    ///   - tokenTypes: llama.cpp token types by id (`tokenizer.ggml.token_type`); nil means all
    ///     normal. Control (3) and unknown (2) tokens are special; control, unknown and
    ///     user-defined (4) tokens are matched atomically in text.
    ///   - preTokenizer: `tokenizer.ggml.pre` (see ``PreTokenizer/named(_:)``; `llama3` also sets
    ///     ``ignoresMerges`` as llama.cpp does).
    ///   - bosID: `tokenizer.ggml.bos_token_id`.
    ///   - eosID: `tokenizer.ggml.eos_token_id`.
    ///   - unknownID: `tokenizer.ggml.unknown_token_id`.
    ///   - paddingID: `tokenizer.ggml.padding_token_id`.
    ///   - addsBOS: `tokenizer.ggml.add_bos_token`.
    ///   - addsEOS: `tokenizer.ggml.add_eos_token`.
    ///   - chatTemplate: `tokenizer.chat_template`.
    /// - Complexity: O(total length of tokens and merges).
    /// - Throws: ``BPETokenizerError`` for an empty vocabulary, a token-type count or value
    ///   that does not fit, a duplicate token, a malformed merge or one naming unknown tokens, an
    ///   unknown pre-tokenizer name, or a special id out of range.
    public init(tokens: [String], merges: [String], tokenTypes: [Int32]? = nil, preTokenizer: String,
                bosID: Int32? = nil, eosID: Int32? = nil, unknownID: Int32? = nil, paddingID: Int32? = nil,
                addsBOS: Bool = false, addsEOS: Bool = false,
                chatTemplate: String? = nil) throws(BPETokenizerError) {
        let pre = try PreTokenizer.named(preTokenizer)
        try self.init(tokens: tokens, merges: merges, tokenTypes: tokenTypes, preTokenizer: pre,
                      ignoresMerges: PreTokenizer.ignoresMerges(named: preTokenizer),
                      bosID: bosID, eosID: eosID, unknownID: unknownID, paddingID: paddingID,
                      addsBOS: addsBOS, addsEOS: addsEOS, chatTemplate: chatTemplate)
    }

    /// Builds a tokenizer from arrays with an explicit ``PreTokenizer`` (and ``ignoresMerges``);
    /// otherwise as the initializer that takes the pre-tokenizer's name.
    public init(tokens: [String], merges: [String], tokenTypes: [Int32]? = nil,
                preTokenizer: PreTokenizer, ignoresMerges: Bool = false,
                bosID: Int32? = nil, eosID: Int32? = nil, unknownID: Int32? = nil, paddingID: Int32? = nil,
                addsBOS: Bool = false, addsEOS: Bool = false,
                chatTemplate: String? = nil) throws(BPETokenizerError) {
        var types: [TokenType]
        if let raw = tokenTypes {
            guard raw.count == tokens.count else {
                throw .tokenTypeCountMismatch(tokens: tokens.count, tokenTypes: raw.count)
            }
            types = []
            types.reserveCapacity(raw.count)
            for (id, value) in raw.enumerated() {
                guard let t = TokenType(rawValue: value) else { throw .invalidTokenType(id: id, value: value) }
                types.append(t)
            }
        } else {
            types = Array(repeating: .normal, count: tokens.count)
        }
        var pairs: [(String, String)] = []
        pairs.reserveCapacity(merges.count)
        for (rank, merge) in merges.enumerated() { pairs.append(try Self.splitMerge(merge, rank: rank)) }
        var added: [AddedToken] = []
        for (id, type) in types.enumerated() where type == .control || type == .unknown || type == .userDefined {
            added.append(AddedToken(content: tokens[id], id: Int32(id), isSpecial: type != .userDefined))
        }
        for (name, id) in [("bos", bosID), ("eos", eosID), ("unknown", unknownID), ("padding", paddingID)] {
            if let id, id < 0 || Int(id) >= tokens.count {
                throw .specialTokenIDOutOfRange(name: name, id: id, vocabularySize: tokens.count)
            }
        }
        if addsBOS && bosID == nil { throw .missingSpecialToken(name: "bos") }
        if addsEOS && eosID == nil { throw .missingSpecialToken(name: "eos") }
        try self.init(tokens: tokens, tokenTypes: types, mergePairs: pairs, addedTokens: added,
                      preTokenizer: preTokenizer, addsPrefixSpace: false, ignoresMerges: ignoresMerges,
                      normalization: .none, unknownPieceID: nil, fusesUnknown: false,
                      bosID: bosID, eosID: eosID, unknownID: unknownID, paddingID: paddingID,
                      prefixIDs: addsBOS ? [bosID ?? 0] : [], suffixIDs: addsEOS ? [eosID ?? 0] : [],
                      chatTemplate: chatTemplate)
    }

    /// The designated initializer: everything resolved to ids and pairs.
    init(tokens: [String], tokenTypes: [TokenType], mergePairs: [(String, String)], addedTokens: [AddedToken],
         preTokenizer: PreTokenizer, addsPrefixSpace: Bool, ignoresMerges: Bool, normalization: Normalization,
         unknownPieceID: Int32?, fusesUnknown: Bool,
         bosID: Int32?, eosID: Int32?, unknownID: Int32?, paddingID: Int32?,
         prefixIDs: [Int32], suffixIDs: [Int32], chatTemplate: String?) throws(BPETokenizerError) {
        guard !tokens.isEmpty else { throw .emptyVocabulary }
        guard tokens.count < Int(Int32.max) else { throw .unsupported(component: "vocabulary", detail: "more than 2^31 tokens") }
        for (name, ids) in [("prefix", prefixIDs), ("suffix", suffixIDs)] {
            for id in ids where id < 0 || Int(id) >= tokens.count {
                throw .specialTokenIDOutOfRange(name: name, id: id, vocabularySize: tokens.count)
            }
        }

        // Token text → id, compared byte for byte (not with String's canonical equivalence).
        var idsByBytes: [ByteString: Int32] = [:]
        idsByBytes.reserveCapacity(tokens.count)
        for (id, token) in tokens.enumerated() {
            let key = ByteString(Array(token.utf8))
            if key.bytes.isEmpty { continue }
            if let first = idsByBytes[key] { throw .duplicateToken(token, firstID: Int(first), secondID: id) }
            idsByBytes[key] = Int32(id)
        }

        // Merges: (left, right) → (rank, merged). A repeated pair keeps its last rank, as in
        // `tokenizers` (which collects the list into a map).
        var merges = BytePairMerger.PairTable(minimumCapacity: mergePairs.count)
        for (rank, (left, right)) in mergePairs.enumerated() {
            guard let a = idsByBytes[ByteString(Array(left.utf8))] else { throw .mergeNamesUnknownToken(rank: rank, token: left) }
            guard let b = idsByBytes[ByteString(Array(right.utf8))] else { throw .mergeNamesUnknownToken(rank: rank, token: right) }
            guard let m = idsByBytes[ByteString(Array(left.utf8) + Array(right.utf8))] else {
                throw .mergeResultNotInVocabulary(rank: rank, token: left + right)
            }
            merges.set(UInt64(rank) << 32 | UInt64(UInt32(bitPattern: m)), for: BytePairMerger.pairKey(a, b))
        }

        var byteIDs = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            let key = ByteString(Array(String(Character(ByteLevelAlphabet.scalars[b])).utf8))
            if let id = idsByBytes[key] { byteIDs[b] = id }
        }

        // Bytes of every token for decoding: added tokens as their text; others through the
        // alphabet, or as their UTF-8 text when some scalar is outside it (like `tokenizers`).
        let addedIDs = Set(addedTokens.map(\.id))
        var storage: [UInt8] = []
        var offsets: [Int] = [0]
        offsets.reserveCapacity(tokens.count + 1)
        var wholePieces: [ByteString: Int32] = [:]
        for (id, token) in tokens.enumerated() {
            if !addedIDs.contains(Int32(id)), let bytes = ByteLevelAlphabet.bytes(of: token) {
                storage.append(contentsOf: bytes)
                if ignoresMerges, !bytes.isEmpty { wholePieces[ByteString(bytes)] = Int32(id) }
            } else {
                storage.append(contentsOf: token.utf8)
            }
            offsets.append(storage.count)
        }
        var special = [Bool](repeating: false, count: tokens.count)
        for t in addedTokens where t.isSpecial && t.id >= 0 && Int(t.id) < tokens.count { special[Int(t.id)] = true }

        self.tokens = tokens
        self.tokenTypes = tokenTypes
        self.addedTokens = addedTokens
        self.preTokenizer = preTokenizer
        self.addsPrefixSpace = addsPrefixSpace
        self.ignoresMerges = ignoresMerges
        self.normalization = normalization
        self.mergeCount = mergePairs.count
        self.bosID = bosID
        self.eosID = eosID
        self.unknownID = unknownID
        self.paddingID = paddingID
        self.prefixIDs = prefixIDs
        self.suffixIDs = suffixIDs
        self.chatTemplate = chatTemplate
        self.idsByBytes = idsByBytes
        self.merger = BytePairMerger(byteIDs: byteIDs, merges: merges, unknownID: unknownPieceID,
                                     fusesUnknown: fusesUnknown, wholePieceIDs: ignoresMerges ? wholePieces : nil)
        self.rawMatcher = AddedTokenMatcher(addedTokens.filter { !$0.isNormalized })
        self.normalizedMatcher = AddedTokenMatcher(addedTokens.filter { $0.isNormalized })
        self.tokenBytes = storage
        self.tokenByteOffsets = offsets
        self.specialFlags = special
    }

    /// Splits "left right" at the first space after the first scalar (as llama.cpp does).
    static func splitMerge(_ merge: String, rank: Int) throws(BPETokenizerError) -> (String, String) {
        let scalars = merge.unicodeScalars
        guard !scalars.isEmpty,
              let space = scalars[scalars.index(after: scalars.startIndex)...].firstIndex(of: " ") else {
            throw .malformedMerge(rank: rank, merge: merge)
        }
        let left = String(scalars[..<space])
        let right = String(scalars[scalars.index(after: space)...])
        guard !right.isEmpty, !right.unicodeScalars.contains(" ") else { throw .malformedMerge(rank: rank, merge: merge) }
        return (left, right)
    }

    // MARK: Vocabulary

    /// Number of tokens.
    public var vocabularySize: Int { tokens.count }

    /// The id of `token` (compared byte for byte), if it is in the vocabulary. O(length of `token`).
    public func id(for token: String) -> Int32? { idsByBytes[ByteString(Array(token.utf8))] }

    /// The token string of `id`, or nil when out of range.
    public func token(for id: Int32) -> String? {
        id >= 0 && Int(id) < tokens.count ? tokens[Int(id)] : nil
    }

    /// Whether `id` is a special token (control or unknown; skipped by `skippingSpecialTokens`).
    /// False for ids out of range.
    public func isSpecial(_ id: Int32) -> Bool {
        id >= 0 && Int(id) < specialFlags.count && specialFlags[Int(id)]
    }

    /// The bytes `id` decodes to (an added token's UTF-8 text, else the token through the inverse
    /// ``ByteLevelAlphabet``). O(token length).
    /// - Throws: ``BPETokenizerError/tokenIDOutOfRange(_:vocabularySize:)``.
    public func bytes(for id: Int32) throws(BPETokenizerError) -> ArraySlice<UInt8> {
        guard id >= 0, Int(id) < tokens.count else { throw .tokenIDOutOfRange(id, vocabularySize: tokens.count) }
        return tokenBytes[tokenByteOffsets[Int(id)]..<tokenByteOffsets[Int(id) + 1]]
    }

    // MARK: Encoding

    /// The token ids of `text`.
    ///
    /// - Parameters:
    ///   - text: the text to encode.
    ///   - addingSpecialTokens: put ``prefixIDs`` (e.g. the BOS when the model adds one) and
    ///     ``suffixIDs`` around the result (Hugging Face `add_special_tokens`).
    ///   - parsingSpecialTokens: match special (control) tokens written in `text` as single
    ///     tokens (Hugging Face's default; llama.cpp's `parse_special`). When false they are
    ///     encoded as plain text; user-defined added tokens are matched either way.
    /// - Complexity: O(n) for a text of n scalars, plus O(m log m) per piece of m bytes not in the cache.
    public func encode(_ text: String, addingSpecialTokens: Bool = true,
                       parsingSpecialTokens: Bool = true) -> [Int32] {
        var ids: [Int32] = addingSpecialTokens ? prefixIDs : []
        let scalars = Array(text.unicodeScalars)
        var segments: [AddedTokenMatcher.Segment] = []
        rawMatcher.segments(scalars, 0..<scalars.count, includingSpecial: parsingSpecialTokens, into: &segments)
        // Without normalization, second matching or prefix space, the text is pre-tokenized in place.
        let inPlace = normalization == .none && normalizedMatcher.isEmpty && !addsPrefixSpace
        let classes = inPlace ? ScalarClass.classify(scalars) : []
        var scratch = EncodingScratch()
        for segment in segments {
            switch segment {
            case .token(let id):
                ids.append(id)
            case .text(let range):
                if inPlace {
                    appendPieces(scalars, classes, range, scratch: &scratch, to: &ids)
                } else {
                    appendNormalized(scalars[range], parsingSpecialTokens: parsingSpecialTokens,
                                     scratch: &scratch, to: &ids)
                }
            }
        }
        if addingSpecialTokens { ids.append(contentsOf: suffixIDs) }
        return ids
    }

    /// The token strings of `text` (no prefix or suffix tokens), e.g. `["Hello", "Ġworld"]`.
    public func tokenize(_ text: String) -> [String] {
        encode(text, addingSpecialTokens: false).map { tokens[Int($0)] }
    }

    private struct EncodingScratch {
        var pieces: [Range<Int>] = []
        var bytes: [UInt8] = []
        var segments: [AddedTokenMatcher.Segment] = []
    }

    /// Normalizes a stretch of text, cuts out the normalized added tokens, and encodes the rest.
    private func appendNormalized(_ text: ArraySlice<Unicode.Scalar>, parsingSpecialTokens: Bool,
                                  scratch: inout EncodingScratch, to ids: inout [Int32]) {
        let scalars: [Unicode.Scalar]
        switch normalization {
        case .none:
            scalars = Array(text)
        case .nfc:
            var view = String.UnicodeScalarView()
            view.append(contentsOf: text)
            scalars = Array(String(view).precomposedStringWithCanonicalMapping.unicodeScalars)
        }
        scratch.segments.removeAll(keepingCapacity: true)
        normalizedMatcher.segments(scalars, 0..<scalars.count, includingSpecial: parsingSpecialTokens,
                                   into: &scratch.segments)
        let segments = scratch.segments
        for segment in segments {
            switch segment {
            case .token(let id):
                ids.append(id)
            case .text(let range):
                var part = Array(scalars[range])
                if addsPrefixSpace, part.first != " " { part.insert(" ", at: 0) }
                appendPieces(part, ScalarClass.classify(part), 0..<part.count, scratch: &scratch, to: &ids)
            }
        }
    }

    /// Pre-tokenizes `scalars[range]` and appends the ids of its pieces. `classes` holds the
    /// ``ScalarClass`` bits of every scalar of `scalars`.
    private func appendPieces(_ scalars: [Unicode.Scalar], _ classes: [UInt8], _ range: Range<Int>,
                              scratch: inout EncodingScratch, to ids: inout [Int32]) {
        if range.isEmpty { return }
        scratch.pieces.removeAll(keepingCapacity: true)
        preTokenizer.split(scalars, classes, range, into: &scratch.pieces)
        for piece in scratch.pieces {
            scratch.bytes.removeAll(keepingCapacity: true)
            for s in scalars[piece] { Self.appendUTF8(s, to: &scratch.bytes) }
            merger.appendIDs(of: scratch.bytes, to: &ids)
        }
    }

    @inline(__always)
    private static func appendUTF8(_ s: Unicode.Scalar, to bytes: inout [UInt8]) {
        let v = s.value
        switch v {
        case 0..<0x80:
            bytes.append(UInt8(v))
        case 0x80..<0x800:
            bytes.append(UInt8(0xC0 | (v >> 6)))
            bytes.append(UInt8(0x80 | (v & 0x3F)))
        case 0x800..<0x10000:
            bytes.append(UInt8(0xE0 | (v >> 12)))
            bytes.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
            bytes.append(UInt8(0x80 | (v & 0x3F)))
        default:
            bytes.append(UInt8(0xF0 | (v >> 18)))
            bytes.append(UInt8(0x80 | ((v >> 12) & 0x3F)))
            bytes.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
            bytes.append(UInt8(0x80 | (v & 0x3F)))
        }
    }

    // MARK: Decoding

    /// The text of `ids`: every token's bytes (``bytes(for:)``) concatenated and decoded as
    /// UTF-8, each maximal invalid subsequence replaced by U+FFFD (Hugging Face's `decode` with
    /// its `ByteLevel` decoder; no clean-up of spaces).
    ///
    /// Added tokens decode to their text, as llama.cpp renders them; Hugging Face passes them
    /// through the byte alphabet too, which differs only for added tokens with characters of the
    /// alphabet outside ASCII (e.g. `<|é|>`), none in the supported models' special tokens.
    /// - Parameters:
    ///   - ids: the token ids to decode.
    ///   - skippingSpecialTokens: leave out special (control and unknown) tokens.
    /// - Complexity: O(total bytes).
    /// - Throws: ``BPETokenizerError/tokenIDOutOfRange(_:vocabularySize:)``.
    public func decode(_ ids: [Int32], skippingSpecialTokens: Bool = false) throws(BPETokenizerError) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(ids.count * 4)
        for id in ids {
            let piece = try self.bytes(for: id)
            if skippingSpecialTokens && specialFlags[Int(id)] { continue }
            bytes.append(contentsOf: piece)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A decoder for generated ids one at a time that returns text only when whole UTF-8
    /// sequences are available.
    public func makeStreamingDecoder(skippingSpecialTokens: Bool = false) -> StreamingDecoder {
        StreamingDecoder(tokenizer: self, skippingSpecialTokens: skippingSpecialTokens)
    }
}
