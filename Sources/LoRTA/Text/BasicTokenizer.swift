import Foundation

/// BERT's "basic" tokenization: text cleaning, CJK splitting, accent stripping, lower-casing,
/// then splitting on whitespace and punctuation.
///
/// It reproduces the `BertNormalizer` + `BertPreTokenizer` pair of Hugging Face `tokenizers`
/// (what `BertTokenizerFast` / `transformers` ≥ 5 `BertTokenizer` run), step by step and in the
/// same order, working on Unicode scalars (never on Swift `Character`s, whose grapheme
/// clustering and canonical equivalence would merge what BERT keeps apart):
///
/// 1. **Clean**: drop U+0000, U+FFFD and "control" scalars — general category Cc, Cf, Co or Cs,
///    except tab, line feed and carriage return; map every White_Space scalar (tab, LF, CR,
///    U+0085 is Cc and therefore dropped, U+2028, NBSP, …) to a space.
/// 2. **CJK**: surround each CJK ideograph (the ranges of ``isCJKIdeograph(_:)``) with spaces.
/// 3. **Strip accents** (when `stripAccents`): canonical decomposition (NFD), then drop
///    nonspacing marks (category Mn).
/// 4. **Lower-case** (when `lowercase`): each scalar's full Unicode lowercase mapping, without
///    context (so a final capital sigma becomes σ, not ς, as in `tokenizers`).
/// 5. **Split**: on White_Space (removed) and around each punctuation scalar (kept as its own
///    word): ASCII punctuation (33–47, 58–64, 91–96, 123–126) or Unicode category P*.
///
/// Unicode data come from the Swift runtime. `tokenizers` classifies categories with older
/// Unicode tables (about Unicode 8), so a scalar added or re-categorised since then can be
/// treated differently: e.g. U+2E5D (Pd, Unicode 14) splits words here but not there, and
/// some recent combining marks of Arabic and Indic scripts are dropped here but kept there
/// (about 560 of the 194,432 code points below U+30000, all in rarely used characters).
/// Every code point of the common blocks — ASCII, Latin (incl. extended), IPA, combining
/// diacritics, Greek, Cyrillic, Armenian, Hebrew, general punctuation, symbols, arrows, math,
/// CJK symbols, kana, full-width forms and emoji, 8,431 in all — is treated identically
/// (checked against `tokenizers` in the tests).
public struct BasicTokenizer: Sendable, Equatable {
    /// Lower-case the text (step 4).
    public var lowercase: Bool
    /// Remove accents (step 3). Defaults to `lowercase`, like `strip_accents=None` in Hugging Face.
    public var stripAccents: Bool

    /// Creates a basic tokenizer; `stripAccents` defaults to `lowercase`.
    public init(lowercase: Bool = true, stripAccents: Bool? = nil) {
        self.lowercase = lowercase
        self.stripAccents = stripAccents ?? lowercase
    }

    /// The normalized text (steps 1–4) as Unicode scalars. O(length of `text`).
    public func normalize(_ text: String) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(text.unicodeScalars.count)
        // 1 + 2: clean and isolate CJK ideographs.
        for c in text.unicodeScalars {
            if c.value == 0 || c.value == 0xFFFD || Self.isControl(c) { continue }
            if Self.isWhitespace(c) {
                out.append(" ")
            } else if Self.isCJKIdeograph(c) {
                out.append(" ")
                out.append(c)
                out.append(" ")
            } else {
                out.append(c)
            }
        }
        // 3: NFD, drop nonspacing marks. Only needed when something is not ASCII.
        if stripAccents, out.contains(where: { !$0.isASCII }) {
            var view = String.UnicodeScalarView()
            view.append(contentsOf: out)
            let decomposed = String(view).decomposedStringWithCanonicalMapping
            out.removeAll(keepingCapacity: true)
            for c in decomposed.unicodeScalars where c.properties.generalCategory != .nonspacingMark {
                out.append(c)
            }
        }
        // 4: per-scalar full lowercase mapping.
        if lowercase {
            var lowered: [Unicode.Scalar] = []
            lowered.reserveCapacity(out.count)
            for c in out {
                if c.isASCII {
                    let v = c.value
                    lowered.append(v >= 65 && v <= 90 ? Unicode.Scalar(v + 32)! : c)
                } else {
                    lowered.append(contentsOf: c.properties.lowercaseMapping.unicodeScalars)
                }
            }
            out = lowered
        }
        return out
    }

    /// The words of `text` (steps 1–5), each as Unicode scalars. O(length of `text`).
    public func words(_ text: String) -> [[Unicode.Scalar]] {
        var words: [[Unicode.Scalar]] = []
        var current: [Unicode.Scalar] = []
        for c in normalize(text) {
            if Self.isWhitespace(c) {
                if !current.isEmpty { words.append(current); current.removeAll(keepingCapacity: true) }
            } else if Self.isPunctuation(c) {
                if !current.isEmpty { words.append(current); current.removeAll(keepingCapacity: true) }
                words.append([c])
            } else {
                current.append(c)
            }
        }
        if !current.isEmpty { words.append(current) }
        return words
    }

    /// The words of `text` as strings (see ``words(_:)``).
    public func tokenize(_ text: String) -> [String] {
        words(text).map { word in
            var view = String.UnicodeScalarView()
            view.append(contentsOf: word)
            return String(view)
        }
    }

    // MARK: Character classes (the definitions of Hugging Face `tokenizers`)

    /// Tab, LF, CR, or any scalar with the Unicode White_Space property.
    public static func isWhitespace(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x20, 0x09, 0x0A, 0x0D: return true
        case 0..<0x80: return false
        default: return c.properties.isWhitespace
        }
    }

    /// Categories Cc, Cf, Co, Cs except tab, LF and CR (unassigned scalars are kept).
    public static func isControl(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x09, 0x0A, 0x0D: return false
        case 0..<0x20, 0x7F: return true
        case 0x20..<0x7F: return false
        default:
            switch c.properties.generalCategory {
            case .control, .format, .privateUse, .surrogate: return true
            default: return false
            }
        }
    }

    /// ASCII punctuation (33–47, 58–64, 91–96, 123–126) or a Unicode punctuation category
    /// (Pc, Pd, Ps, Pe, Pi, Pf, Po).
    public static func isPunctuation(_ c: Unicode.Scalar) -> Bool {
        let v = c.value
        if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v)
            || (123...126).contains(v) {
            return true
        }
        if v < 0x80 { return false }
        switch c.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return true
        default:
            return false
        }
    }

    /// The CJK ideograph blocks of `tokenizers`' BertNormalizer: U+4E00–9FFF, U+3400–4DBF,
    /// U+20000–2A6DF, U+2A700–2B73F, U+2B740–2B81F, U+2B920–2CEAF, U+F900–FAFF, U+2F800–2FA1F.
    /// (`tokenizers` has U+2B920 where the original BERT code has U+2B820; we follow
    /// `tokenizers`.)
    public static func isCJKIdeograph(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
             0x2B740...0x2B81F, 0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default:
            return false
        }
    }
}
