/// Splits text into the pieces that byte-level BPE encodes one at a time.
///
/// A pre-tokenizer is a sequence of ``Rule``s applied one after the other: each rule splits every
/// piece left by the previous rules into smaller pieces (what Hugging Face's `Sequence` of `Split`
/// pre-tokenizers with behaviour `Isolated`, and llama.cpp's list of `regex_exprs`, do: matches
/// become pieces, and so does the text between them; a rule sees one piece at a time, so its
/// look-ahead stops at the piece's end). The regular expressions are implemented by hand over
/// Unicode scalars with the general categories of the Swift runtime (`\p{L}` = L*, `\p{N}` = N*,
/// `\p{P}` = P*, `\s` = White_Space), with the leftmost-first alternation and backtracking
/// semantics of Oniguruma, which Hugging Face `tokenizers` uses.
///
/// Named pre-tokenizers (the values of GGUF `tokenizer.ggml.pre`, see ``named(_:)``):
/// - `gpt2` / `gpt-2` / `phi-2`: ``Rule/gpt2`` alone (Hugging Face `ByteLevel(use_regex=True)`).
/// - `smollm` / `starcoder` / `refact`: ``Rule/digits(individually:)`` then ``Rule/gpt2``
///   (Hugging Face `Sequence[Digits(individual_digits=True), ByteLevel]`, SmolLM2's tokenizer.json).
/// - `llama3` / `llama-v3` / `llama-bpe`: ``Rule/llama3`` (and the model ignores merges for
///   pieces that are whole tokens, as llama.cpp and Llama 3's tokenizer.json do).
/// - `qwen2`: ``Rule/qwen2``.
/// - `default`: llama.cpp's fallback for BPE models, four rules: ``Rule/punctuationRuns``,
///   ``Rule/gpt2``, ``Rule/digits(individually:)`` with runs, ``Rule/asciiDigitTriples``.
///
/// Unicode tables: the Swift runtime's may be newer than Oniguruma's, so a scalar added or
/// re-categorised in a recent Unicode version can split differently (rare; the fixture tests
/// cover the common scripts, emoji and symbols).
public struct PreTokenizer: Sendable, Equatable, CustomStringConvertible {
    /// One splitting step.
    public enum Rule: Sendable, Equatable, CustomStringConvertible {
        /// Every `\p{N}` scalar on its own (`individually`), or runs of them (`\p{N}+`): Hugging
        /// Face's `Digits` pre-tokenizer.
        case digits(individually: Bool)
        /// GPT-2's regex `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
        case gpt2
        /// Llama 3's regex `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
        /// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+` (the case-insensitive contractions
        /// are matched for ASCII letters, as llama.cpp does).
        case llama3
        /// Qwen2's regex: Llama 3's with `\p{N}` (one digit) instead of `\p{N}{1,3}`.
        case qwen2
        /// `[\p{P}\$\+<=>\^~\|]+`: runs of punctuation and of the symbols `$+<=>^~|`.
        case punctuationRuns
        /// `[0-9][0-9][0-9]`: groups of three ASCII digits, from the left.
        case asciiDigitTriples

        public var description: String {
            switch self {
            case .digits(let individually): return individually ? "digits(individually)" : "digits(runs)"
            case .gpt2: return "gpt2"
            case .llama3: return "llama3"
            case .qwen2: return "qwen2"
            case .punctuationRuns: return "punctuationRuns"
            case .asciiDigitTriples: return "asciiDigitTriples"
            }
        }
    }

    /// The steps, applied in order.
    public let rules: [Rule]

    /// A pre-tokenizer applying `rules` in order. No rules: the whole text is one piece.
    public init(rules: [Rule]) {
        self.rules = rules
    }

    /// GPT-2 (and Hugging Face `ByteLevel(use_regex=True)`).
    public static let gpt2 = PreTokenizer(rules: [.gpt2])
    /// SmolLM2 / StarCoder: every digit alone, then GPT-2's regex.
    public static let smollm = PreTokenizer(rules: [.digits(individually: true), .gpt2])
    /// Llama 3.
    public static let llama3 = PreTokenizer(rules: [.llama3])
    /// Qwen2.
    public static let qwen2 = PreTokenizer(rules: [.qwen2])
    /// llama.cpp's `default` BPE pre-tokenizer.
    public static let llamaCppDefault = PreTokenizer(
        rules: [.punctuationRuns, .gpt2, .digits(individually: false), .asciiDigitTriples])

    private static let presets: [(names: [String], preTokenizer: PreTokenizer, ignoresMerges: Bool)] = [
        (["gpt2", "gpt-2", "phi-2"], .gpt2, false),
        (["smollm", "starcoder", "refact"], .smollm, false),
        (["llama3", "llama-v3", "llama-bpe"], .llama3, true),
        (["qwen2"], .qwen2, false),
        (["default"], .llamaCppDefault, false),
    ]

    /// The names ``named(_:)`` accepts.
    public static var supportedNames: [String] { presets.flatMap(\.names) }

    /// The pre-tokenizer llama.cpp uses for a GGUF `tokenizer.ggml.pre` value.
    /// - Throws: ``BPETokenizerError/unknownPreTokenizer(_:)`` for any other name.
    public static func named(_ name: String) throws(BPETokenizerError) -> PreTokenizer {
        guard let preset = presets.first(where: { $0.names.contains(name) }) else {
            throw .unknownPreTokenizer(name)
        }
        return preset.preTokenizer
    }

    /// Whether llama.cpp skips the merges for pieces that are whole tokens under this name.
    static func ignoresMerges(named name: String) -> Bool {
        presets.first(where: { $0.names.contains(name) })?.ignoresMerges ?? false
    }

    public var description: String { "PreTokenizer(\(rules.map(\.description).joined(separator: ", ")))" }

    /// The pieces of `text` (their concatenation is `text`). O(length of `text`) per rule.
    public func pieces(of text: String) -> [String] {
        let scalars = Array(text.unicodeScalars)
        let classes = ScalarClass.classify(scalars)
        var ranges: [Range<Int>] = []
        split(scalars, classes, 0..<scalars.count, into: &ranges)
        return ranges.map { r in
            var view = String.UnicodeScalarView()
            view.append(contentsOf: scalars[r])
            return String(view)
        }
    }

    /// Appends the non-empty pieces of `scalars[range]` to `pieces`. `classes` holds the
    /// ``ScalarClass`` bits of every scalar.
    func split(_ scalars: [Unicode.Scalar], _ classes: [UInt8], _ range: Range<Int>,
               into pieces: inout [Range<Int>]) {
        if range.isEmpty { return }
        var current: [Range<Int>] = [range]
        var next: [Range<Int>] = []
        for rule in rules {
            next.removeAll(keepingCapacity: true)
            for piece in current { Self.apply(rule, scalars, classes, piece, into: &next) }
            swap(&current, &next)
        }
        pieces.append(contentsOf: current)
    }

    // MARK: Rules

    private static func apply(_ rule: Rule, _ s: [Unicode.Scalar], _ c: [UInt8], _ piece: Range<Int>,
                              into out: inout [Range<Int>]) {
        switch rule {
        case .gpt2:
            var i = piece.lowerBound
            while i < piece.upperBound {
                let end = gpt2Match(s, c, i, piece.upperBound)
                out.append(i..<end)
                i = end
            }
        case .llama3, .qwen2:
            let maxDigits = rule == .llama3 ? 3 : 1
            var i = piece.lowerBound
            while i < piece.upperBound {
                let end = llama3Match(s, c, i, piece.upperBound, maxDigits: maxDigits)
                out.append(i..<end)
                i = end
            }
        case .digits(let individually):
            isolateRuns(c, piece, into: &out, single: individually) { $0 & ScalarClass.number != 0 }
        case .punctuationRuns:
            isolateRuns(c, piece, into: &out, single: false) { $0 & ScalarClass.punctuationOrSymbol != 0 }
        case .asciiDigitTriples:
            var gapStart = piece.lowerBound
            var i = piece.lowerBound
            while i + 3 <= piece.upperBound {
                if isASCIIDigit(s[i]), isASCIIDigit(s[i + 1]), isASCIIDigit(s[i + 2]) {
                    if gapStart < i { out.append(gapStart..<i) }
                    out.append(i..<(i + 3))
                    i += 3
                    gapStart = i
                } else {
                    i += 1
                }
            }
            if gapStart < piece.upperBound { out.append(gapStart..<piece.upperBound) }
        }
    }

    /// Isolates runs (or single scalars, when `single`) whose class satisfies `member`.
    private static func isolateRuns(_ c: [UInt8], _ piece: Range<Int>, into out: inout [Range<Int>],
                                    single: Bool, member: (UInt8) -> Bool) {
        var gapStart = piece.lowerBound
        var i = piece.lowerBound
        while i < piece.upperBound {
            guard member(c[i]) else { i += 1; continue }
            if gapStart < i { out.append(gapStart..<i) }
            var end = i + 1
            if !single { while end < piece.upperBound, member(c[end]) { end += 1 } }
            out.append(i..<end)
            i = end
            gapStart = end
        }
        if gapStart < piece.upperBound { out.append(gapStart..<piece.upperBound) }
    }

    private static func isASCIIDigit(_ s: Unicode.Scalar) -> Bool { s.value >= 0x30 && s.value <= 0x39 }

    /// Length of a contraction `'s 't 're 've 'm 'll 'd` at `i` (0 if none); `ignoringCase`
    /// accepts ASCII upper-case letters too.
    private static func contraction(_ s: [Unicode.Scalar], _ i: Int, _ end: Int, ignoringCase: Bool) -> Int {
        guard s[i] == "'", i + 1 < end else { return 0 }
        func lower(_ x: Unicode.Scalar) -> UInt32 {
            ignoringCase && x.value >= 0x41 && x.value <= 0x5A ? x.value + 0x20 : x.value
        }
        let a = lower(s[i + 1])
        switch a {
        case 0x73, 0x74, 0x6D, 0x64: return 2                           // s t m d
        case 0x72, 0x76:                                                 // re ve
            return i + 2 < end && lower(s[i + 2]) == 0x65 ? 3 : 0
        case 0x6C:                                                       // ll
            return i + 2 < end && lower(s[i + 2]) == 0x6C ? 3 : 0
        default: return 0
        }
    }

    /// The end of the run of scalars from `i` whose class has one of `bits`.
    @inline(__always)
    private static func run(_ c: [UInt8], from i: Int, _ end: Int, _ bits: UInt8) -> Int {
        var j = i
        while j < end, c[j] & bits != 0 { j += 1 }
        return j
    }

    /// End of the run from `i` of scalars that are none of letter, number, whitespace.
    @inline(__always)
    private static func otherRun(_ c: [UInt8], from i: Int, _ end: Int) -> Int {
        var j = i
        while j < end, ScalarClass.isOther(c[j]) { j += 1 }
        return j
    }

    /// `\s+(?!\S)|\s+` at a whitespace scalar `i`: the whole run when it reaches the end of the
    /// piece, else the run but its last scalar (which then starts ` ?\p{L}+` and friends), else
    /// the single scalar.
    @inline(__always)
    private static func whitespaceMatch(_ c: [UInt8], _ i: Int, _ end: Int) -> Int {
        let j = run(c, from: i, end, ScalarClass.whitespace)
        if j == end { return j }
        return j - i >= 2 ? j - 1 : j
    }

    /// End of the GPT-2 regex match at `i` (< `end`).
    private static func gpt2Match(_ s: [Unicode.Scalar], _ c: [UInt8], _ i: Int, _ end: Int) -> Int {
        let n = contraction(s, i, end, ignoringCase: false)
        if n > 0 { return i + n }
        // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional U+0020 then a run.
        let k = s[i] == " " && i + 1 < end ? i + 1 : i
        let ck = c[k]
        if ck & ScalarClass.letter != 0 { return run(c, from: k, end, ScalarClass.letter) }
        if ck & ScalarClass.number != 0 { return run(c, from: k, end, ScalarClass.number) }
        if ScalarClass.isOther(ck) { return otherRun(c, from: k, end) }
        if c[i] & ScalarClass.whitespace != 0 { return whitespaceMatch(c, i, end) }
        return i + 1  // unreachable: every scalar is a letter, number, whitespace or other
    }

    /// End of the Llama 3 (`maxDigits` 3) or Qwen2 (`maxDigits` 1) regex match at `i` (< `end`).
    private static func llama3Match(_ s: [Unicode.Scalar], _ c: [UInt8], _ i: Int, _ end: Int,
                                    maxDigits: Int) -> Int {
        let n = contraction(s, i, end, ignoringCase: true)
        if n > 0 { return i + n }
        let ci = c[i]
        // `[^\r\n\p{L}\p{N}]?\p{L}+`
        if ci & ScalarClass.letter != 0 { return run(c, from: i, end, ScalarClass.letter) }
        let isNewline = s[i] == "\r" || s[i] == "\n"
        if ci & ScalarClass.number == 0, !isNewline, i + 1 < end, c[i + 1] & ScalarClass.letter != 0 {
            return run(c, from: i + 1, end, ScalarClass.letter)
        }
        // `\p{N}{1,maxDigits}`
        if ci & ScalarClass.number != 0 {
            var j = i + 1
            while j < end, j - i < maxDigits, c[j] & ScalarClass.number != 0 { j += 1 }
            return j
        }
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        let k = s[i] == " " && i + 1 < end ? i + 1 : i
        if ScalarClass.isOther(c[k]) {
            var j = otherRun(c, from: k, end)
            while j < end, s[j] == "\r" || s[j] == "\n" { j += 1 }
            return j
        }
        if ci & ScalarClass.whitespace != 0 {
            // `\s*[\r\n]+`: up to and including the last CR/LF of the whitespace run.
            let j = run(c, from: i, end, ScalarClass.whitespace)
            var p = j - 1
            while p >= i, s[p] != "\r", s[p] != "\n" { p -= 1 }
            if p >= i { return p + 1 }
            // `\s+(?!\S)|\s+`
            return whitespaceMatch(c, i, end)
        }
        return i + 1  // unreachable
    }
}

/// Character-class bits of a Unicode scalar, as the pre-tokenizer regexes see them.
enum ScalarClass {
    /// `\p{L}`: general category Lu, Ll, Lt, Lm or Lo.
    static let letter: UInt8 = 1
    /// `\p{N}`: Nd, Nl or No.
    static let number: UInt8 = 2
    /// `\s`: the White_Space property.
    static let whitespace: UInt8 = 4
    /// `[\p{P}\$\+<=>\^~\|]`: a punctuation category, or one of `$+<=>^~|`.
    static let punctuationOrSymbol: UInt8 = 8

    /// Neither letter, number nor whitespace (`[^\s\p{L}\p{N}]`).
    @inline(__always)
    static func isOther(_ bits: UInt8) -> Bool { bits & (letter | number | whitespace) == 0 }

    /// The class bits of `s`: computed directly for ASCII, from the Unicode properties otherwise. O(1).
    @inline(__always)
    static func of(_ s: Unicode.Scalar) -> UInt8 {
        let v = s.value
        guard v < 0x80 else { return fromProperties(s) }
        let folded = v | 0x20
        if folded >= 0x61 && folded <= 0x7A { return letter }                  // A-Z a-z
        if v >= 0x30 && v <= 0x39 { return number }                           // 0-9
        if v == 0x20 || (v >= 0x09 && v <= 0x0D) { return whitespace }         // space, \t…\r
        if v < 0x20 || v == 0x7F || v == 0x60 { return 0 }                    // controls, ` (Sk)
        return punctuationOrSymbol                                             // P, and $+<=>^|~
    }

    /// The class bits of each scalar. O(`scalars.count`).
    static func classify(_ scalars: some Collection<Unicode.Scalar>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(scalars.count)
        for s in scalars { out.append(of(s)) }
        return out
    }

    /// The class bits from the scalar's Unicode properties (any scalar).
    static func fromProperties(_ s: Unicode.Scalar) -> UInt8 {
        let p = s.properties
        var bits: UInt8 = p.isWhitespace ? whitespace : 0
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            bits |= letter
        case .decimalNumber, .letterNumber, .otherNumber:
            bits |= number
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            bits |= punctuationOrSymbol
        default:
            switch s {
            case "$", "+", "<", "=", ">", "^", "~", "|": bits |= punctuationOrSymbol
            default: break
            }
        }
        return bits
    }
}
