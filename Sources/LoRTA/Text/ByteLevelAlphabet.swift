/// GPT-2's reversible map between the 256 byte values and printable Unicode scalars.
///
/// Byte-level BPE vocabularies (GPT-2, Llama 3, SmolLM2, Qwen2, …) write every token as a string
/// over this alphabet: the printable bytes `!`…`~`, `¡`…`¬` and `®`…`ÿ` stand for themselves and
/// the other 68 bytes (controls, space, NBSP, soft hyphen, …) for U+0100 onwards in byte order, so
/// the space is `Ġ` (U+0120) and the line feed `Ċ` (U+010A). This is `bytes_to_unicode` of GPT-2
/// and `bytes_char` of Hugging Face `tokenizers`.
public enum ByteLevelAlphabet {
    /// The scalar that stands for each byte value (256 entries).
    public static let scalars: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: "\0", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            if isPrintable(b) {
                table[b] = Unicode.Scalar(UInt8(b))
            } else {
                // U+0100…U+0143 are all valid scalars.
                table[b] = Unicode.Scalar(next) ?? "\0"
                next += 1
            }
        }
        return table
    }()

    /// Byte value of each scalar U+0000…U+0143, or -1 when the scalar is not in the alphabet.
    private static let bytesByScalar: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for (b, s) in scalars.enumerated() { table[Int(s.value)] = Int16(b) }
        return table
    }()

    private static func isPrintable(_ b: Int) -> Bool {
        (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
    }

    /// The byte a scalar of the alphabet stands for, or nil for any other scalar. O(1).
    public static func byte(for scalar: Unicode.Scalar) -> UInt8? {
        let v = Int(scalar.value)
        guard v < bytesByScalar.count, bytesByScalar[v] >= 0 else { return nil }
        return UInt8(bytesByScalar[v])
    }

    /// The bytes a token written in the alphabet stands for, or nil when some scalar of `token`
    /// is outside the alphabet. O(length of `token`).
    public static func bytes(of token: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(token.unicodeScalars.count)
        for s in token.unicodeScalars {
            guard let b = byte(for: s) else { return nil }
            out.append(b)
        }
        return out
    }

    /// `bytes` written in the alphabet (e.g. the UTF-8 of " hi" → "Ġhi"). O(`bytes.count`).
    public static func string(of bytes: some Sequence<UInt8>) -> String {
        var view = String.UnicodeScalarView()
        for b in bytes { view.append(scalars[Int(b)]) }
        return String(view)
    }
}
