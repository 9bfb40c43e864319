/// Decodes token ids one at a time (generation output), returning text only when it is made of
/// whole UTF-8 sequences.
///
/// Byte-level tokens may end in the middle of a character (an emoji is often two or three
/// tokens). The decoder keeps such an unfinished sequence until the tokens that complete it
/// arrive; bytes that cannot start or continue a valid sequence become U+FFFD at once. The
/// concatenation of everything ``append(_:)`` and ``finish()`` return equals
/// ``ByteLevelBPETokenizer/decode(_:skippingSpecialTokens:)`` of all the ids.
///
/// ```swift
/// var stream = tokenizer.makeStreamingDecoder(skippingSpecialTokens: true)
/// for id in generatedIDs { print(try stream.append(id), terminator: "") }
/// print(stream.finish())
/// ```
public struct StreamingDecoder: Sendable {
    private let tokenizer: ByteLevelBPETokenizer
    /// Whether special tokens are left out.
    public let skipsSpecialTokens: Bool
    private var pending: [UInt8] = []

    /// A decoder for `tokenizer`'s ids.
    public init(tokenizer: ByteLevelBPETokenizer, skippingSpecialTokens: Bool = false) {
        self.tokenizer = tokenizer
        self.skipsSpecialTokens = skippingSpecialTokens
    }

    /// Whether bytes of an unfinished UTF-8 sequence are waiting for the next token.
    public var hasPendingBytes: Bool { !pending.isEmpty }

    /// Adds one token; returns the text that became complete (possibly empty). O(token length).
    /// - Throws: ``BPETokenizerError/tokenIDOutOfRange(_:vocabularySize:)`` (the decoder is unchanged).
    public mutating func append(_ id: Int32) throws(BPETokenizerError) -> String {
        let bytes = try tokenizer.bytes(for: id)
        if skipsSpecialTokens && tokenizer.isSpecial(id) { return "" }
        pending.append(contentsOf: bytes)
        let cut = Self.completePrefixLength(pending)
        if cut == 0 { return "" }
        let text = String(decoding: pending[..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return text
    }

    /// Adds several tokens; returns the text that became complete.
    /// - Throws: ``BPETokenizerError/tokenIDOutOfRange(_:vocabularySize:)``; the tokens before
    ///   the bad one are consumed and their text is lost to the caller, so validate ids first
    ///   when that matters.
    public mutating func append(contentsOf ids: some Sequence<Int32>) throws(BPETokenizerError) -> String {
        var text = ""
        for id in ids { text += try append(id) }
        return text
    }

    /// Ends the stream: an unfinished sequence becomes U+FFFD. The decoder is then empty and can
    /// be reused.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return pending.isEmpty ? "" : String(decoding: pending, as: UTF8.self)
    }

    /// Length of the longest prefix of `bytes` that does not end inside a sequence that later
    /// bytes could still complete: the bytes after it, if any, are a lead byte followed by valid
    /// continuation bytes, fewer than the lead announces.
    static func completePrefixLength(_ bytes: [UInt8]) -> Int {
        let n = bytes.count
        var k = 1
        while k <= min(3, n) {
            let i = n - k
            let b = bytes[i]
            if b < 0x80 { return n }                 // ASCII: everything before it is settled
            if b < 0xC0 { k += 1; continue }         // continuation byte: look further back
            let needed: Int
            switch b {
            case 0xC2...0xDF: needed = 2
            case 0xE0...0xEF: needed = 3
            case 0xF0...0xF4: needed = 4
            default: return n                        // C0, C1, F5–FF never start a sequence
            }
            guard k < needed else { return n }       // the sequence is complete (or too long)
            // The bytes after the lead must be valid continuations (the second one restricted
            // for E0, ED, F0, F4), or the sequence is already broken.
            for j in (i + 1)..<n {
                let c = bytes[j]
                var low: UInt8 = 0x80, high: UInt8 = 0xBF
                if j == i + 1 {
                    switch b {
                    case 0xE0: low = 0xA0
                    case 0xED: high = 0x9F
                    case 0xF0: low = 0x90
                    case 0xF4: high = 0x8F
                    default: break
                    }
                }
                if c < low || c > high { return n }
            }
            return i
        }
        return n
    }
}
