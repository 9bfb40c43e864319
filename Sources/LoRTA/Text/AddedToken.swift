/// A token matched atomically in the input text before pre-tokenization: the special tokens
/// (`<|im_start|>`, `<|endoftext|>`, …: llama.cpp's control tokens) and the user-defined ones.
///
/// The fields are those of Hugging Face's `AddedToken`.
public struct AddedToken: Sendable, Equatable {
    /// The text matched in the input (and produced by decoding).
    public var content: String
    /// Its id.
    public var id: Int32
    /// Special tokens are skipped by `decode(_:skippingSpecialTokens: true)` and are not matched
    /// when encoding with `parsingSpecialTokens: false`.
    public var isSpecial: Bool
    /// Match only when not preceded or followed by a word character (`\w`).
    public var singleWord: Bool
    /// Also absorb the whitespace to the left of the match.
    public var stripsLeft: Bool
    /// Also absorb the whitespace to the right of the match.
    public var stripsRight: Bool
    /// Matched in the normalized text (after the normalizer) rather than in the raw input.
    public var isNormalized: Bool

    public init(content: String, id: Int32, isSpecial: Bool, singleWord: Bool = false,
                stripsLeft: Bool = false, stripsRight: Bool = false, isNormalized: Bool = false) {
        self.content = content
        self.id = id
        self.isSpecial = isSpecial
        self.singleWord = singleWord
        self.stripsLeft = stripsLeft
        self.stripsRight = stripsRight
        self.isNormalized = isNormalized
    }
}

/// Finds added tokens in text: leftmost match first, the longest one at that position (Hugging
/// Face's Aho–Corasick `LeftmostLongest`), with `single_word`, `lstrip` and `rstrip` handled as
/// `tokenizers`' `AddedVocabulary::find_matches` does.
struct AddedTokenMatcher: Sendable {
    private struct Entry: Sendable {
        let scalars: [Unicode.Scalar]
        let token: AddedToken
    }

    /// Entries by first scalar, longest first.
    private let entriesByFirstScalar: [Unicode.Scalar: [Entry]]
    /// Bit v of (low, high) set when an entry starts with ASCII scalar v; a quick rejection test.
    private let asciiFirstLow: UInt64, asciiFirstHigh: UInt64
    /// Whether some entry starts with a non-ASCII scalar.
    private let hasNonASCIIFirst: Bool

    /// A part of the text: plain text (a range of scalars) or an added token's id.
    enum Segment: Equatable {
        case text(Range<Int>)
        case token(Int32)
    }

    init(_ tokens: [AddedToken]) {
        var byFirst: [Unicode.Scalar: [Entry]] = [:]
        for token in tokens {
            let scalars = Array(token.content.unicodeScalars)
            guard let first = scalars.first else { continue }
            byFirst[first, default: []].append(Entry(scalars: scalars, token: token))
        }
        for key in byFirst.keys { byFirst[key]?.sort { $0.scalars.count > $1.scalars.count } }
        entriesByFirstScalar = byFirst
        var low: UInt64 = 0, high: UInt64 = 0
        for key in byFirst.keys where key.value < 128 {
            if key.value < 64 { low |= 1 << UInt64(key.value) } else { high |= 1 << UInt64(key.value - 64) }
        }
        asciiFirstLow = low
        asciiFirstHigh = high
        hasNonASCIIFirst = byFirst.keys.contains { $0.value >= 128 }
    }

    @inline(__always)
    private func mayStart(_ c: Unicode.Scalar) -> Bool {
        let v = c.value
        if v < 64 { return asciiFirstLow & (1 << UInt64(v)) != 0 }
        if v < 128 { return asciiFirstHigh & (1 << UInt64(v - 64)) != 0 }
        return hasNonASCIIFirst
    }

    var isEmpty: Bool { entriesByFirstScalar.isEmpty }

    /// Splits `s[range]` into text and added tokens. Special tokens are skipped unless
    /// `includingSpecial`. O(length × candidates per first scalar × token length) at worst.
    func segments(_ s: [Unicode.Scalar], _ range: Range<Int>, includingSpecial: Bool,
                  into out: inout [Segment]) {
        if entriesByFirstScalar.isEmpty {
            if !range.isEmpty { out.append(.text(range)) }
            return
        }
        var textStart = range.lowerBound  // start of the pending text (HF's start_offset)
        var i = range.lowerBound
        while i < range.upperBound {
            guard mayStart(s[i]), let candidates = entriesByFirstScalar[s[i]],
                  let entry = candidates.first(where: { e in
                      (includingSpecial || !e.token.isSpecial) && i + e.scalars.count <= range.upperBound
                          && s[i..<(i + e.scalars.count)].elementsEqual(e.scalars)
                  }) else {
                i += 1
                continue
            }
            var start = i
            var stop = i + entry.scalars.count
            if entry.token.singleWord {
                let wordBefore = start > range.lowerBound && Self.isWordCharacter(s[start - 1])
                let wordAfter = stop < range.upperBound && Self.isWordCharacter(s[stop])
                if wordBefore || wordAfter {
                    i = stop  // discarded; the search resumes after it
                    continue
                }
            }
            if entry.token.stripsLeft {
                while start > textStart, ScalarClass.of(s[start - 1]) & ScalarClass.whitespace != 0 { start -= 1 }
            }
            if entry.token.stripsRight {
                while stop < range.upperBound, ScalarClass.of(s[stop]) & ScalarClass.whitespace != 0 { stop += 1 }
            }
            if textStart < start { out.append(.text(textStart..<start)) }
            out.append(.token(entry.token.id))
            textStart = stop
            i = stop
        }
        if textStart < range.upperBound { out.append(.text(textStart..<range.upperBound)) }
    }

    /// `\w` of the Rust `regex` crate: Alphabetic, marks, decimal numbers, connector
    /// punctuation, Join_Control.
    static func isWordCharacter(_ c: Unicode.Scalar) -> Bool {
        if c.isASCII {
            let v = c.value
            return (v >= 0x30 && v <= 0x39) || (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A) || v == 0x5F
        }
        let p = c.properties
        if p.isAlphabetic || p.isJoinControl { return true }
        switch p.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation:
            return true
        default:
            return false
        }
    }
}
