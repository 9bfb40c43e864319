/// A strict JSON (RFC 8259) value, as parsed from a safetensors header.
///
/// Written for the header instead of `JSONSerialization` so that the reader can tell an
/// integer from a float or a boolean exactly, never loses precision on large offsets, keeps
/// the key order, and rejects duplicate keys, which `JSONSerialization` silently merges.
enum SafeTensorsJSON: Sendable {
    /// Members in file order (duplicate keys are rejected while parsing).
    case object([(key: String, value: SafeTensorsJSON)])
    case array([SafeTensorsJSON])
    case string(String)
    /// An integer literal (no fraction, no exponent) that fits in `Int`.
    case integer(Int)
    /// Any other number (with a fraction or an exponent, or beyond the range of `Int`), as
    /// written in the file.
    case number(String)
    case bool(Bool)
    case null

    /// Why a header failed to parse.
    enum ParseError: Error, Equatable {
        /// Not JSON: what was wrong, at which byte offset of the header.
        case syntax(offset: Int, reason: String)
        /// An object has the same key twice.
        case duplicateKey(String)
    }

    /// Deepest nesting accepted; a safetensors header needs 3 levels.
    static let maximumDepth = 64

    /// Parses `bytes`, which must be valid UTF-8 (checked by the caller), as exactly one JSON
    /// value surrounded by optional whitespace. O(bytes.count); recursion depth is bounded by
    /// ``maximumDepth``.
    static func parse(_ bytes: UnsafeRawBufferPointer) throws(ParseError) -> SafeTensorsJSON {
        var parser = Parser(bytes: bytes)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw parser.fail("unexpected characters after the JSON value") }
        return value
    }

    /// A short rendering of the value for error messages.
    var summary: String {
        switch self {
        case .object: return "an object"
        case .array: return "an array"
        case .string(let s): return "\"\(s.count > 40 ? String(s.prefix(40)) + "…" : s)\""
        case .integer(let i): return String(i)
        case .number(let t): return t
        case .bool(let b): return String(b)
        case .null: return "null"
        }
    }

    private struct Parser {
        let bytes: UnsafeRawBufferPointer
        var index = 0

        init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

        func fail(_ reason: String) -> ParseError { .syntax(offset: index, reason: reason) }

        var atEnd: Bool { index >= bytes.count }
        var current: UInt8 { bytes[index] }

        mutating func skipWhitespace() {
            while !atEnd, current == 0x20 || current == 0x09 || current == 0x0A || current == 0x0D { index += 1 }
        }

        mutating func expect(_ byte: UInt8, _ what: String) throws(ParseError) {
            guard !atEnd, current == byte else { throw fail("expected \(what)") }
            index += 1
        }

        mutating func parseValue(depth: Int) throws(ParseError) -> SafeTensorsJSON {
            guard !atEnd else { throw fail("unexpected end of header") }
            switch current {
            case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
            case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
            case UInt8(ascii: "\""): return .string(try parseString())
            case UInt8(ascii: "t"): try parseLiteral("true"); return .bool(true)
            case UInt8(ascii: "f"): try parseLiteral("false"); return .bool(false)
            case UInt8(ascii: "n"): try parseLiteral("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
            default: throw fail("unexpected character")
            }
        }

        mutating func parseLiteral(_ word: String) throws(ParseError) {
            for b in word.utf8 {
                guard !atEnd, current == b else { throw fail("invalid literal, expected \(word)") }
                index += 1
            }
        }

        mutating func parseObject(depth: Int) throws(ParseError) -> SafeTensorsJSON {
            guard depth <= SafeTensorsJSON.maximumDepth else { throw fail("nesting deeper than \(SafeTensorsJSON.maximumDepth) levels") }
            index += 1  // {
            var members: [(key: String, value: SafeTensorsJSON)] = []
            var seen = Set<String>()
            skipWhitespace()
            if !atEnd, current == UInt8(ascii: "}") { index += 1; return .object(members) }
            while true {
                skipWhitespace()
                guard !atEnd, current == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let key = try parseString()
                guard seen.insert(key).inserted else { throw .duplicateKey(key) }
                skipWhitespace()
                try expect(UInt8(ascii: ":"), "':'")
                skipWhitespace()
                let value = try parseValue(depth: depth)
                members.append((key, value))
                skipWhitespace()
                guard !atEnd else { throw fail("unterminated object") }
                if current == UInt8(ascii: ",") { index += 1; continue }
                try expect(UInt8(ascii: "}"), "',' or '}'")
                return .object(members)
            }
        }

        mutating func parseArray(depth: Int) throws(ParseError) -> SafeTensorsJSON {
            guard depth <= SafeTensorsJSON.maximumDepth else { throw fail("nesting deeper than \(SafeTensorsJSON.maximumDepth) levels") }
            index += 1  // [
            var elements: [SafeTensorsJSON] = []
            skipWhitespace()
            if !atEnd, current == UInt8(ascii: "]") { index += 1; return .array(elements) }
            while true {
                skipWhitespace()
                elements.append(try parseValue(depth: depth))
                skipWhitespace()
                guard !atEnd else { throw fail("unterminated array") }
                if current == UInt8(ascii: ",") { index += 1; continue }
                try expect(UInt8(ascii: "]"), "',' or ']'")
                return .array(elements)
            }
        }

        mutating func parseHex4() throws(ParseError) -> UInt32 {
            var v: UInt32 = 0
            for _ in 0..<4 {
                guard !atEnd else { throw fail("unterminated \\u escape") }
                let c = current
                let d: UInt8
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
                default: throw fail("invalid hex digit in \\u escape")
                }
                v = v << 4 | UInt32(d)
                index += 1
            }
            return v
        }

        /// Parses a string starting at its opening quote. The bytes are valid UTF-8 (checked
        /// before parsing), and quote and backslash are ASCII, so copying the bytes between
        /// escapes keeps the text valid.
        mutating func parseString() throws(ParseError) -> String {
            index += 1  // opening quote
            var out: [UInt8] = []
            while true {
                guard !atEnd else { throw fail("unterminated string") }
                let c = current
                if c == UInt8(ascii: "\"") { index += 1; break }
                if c < 0x20 { throw fail("unescaped control character in string") }
                if c != UInt8(ascii: "\\") { out.append(c); index += 1; continue }
                index += 1
                guard !atEnd else { throw fail("unterminated escape") }
                let e = current
                index += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try parseHex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
                        else { throw fail("unpaired UTF-16 surrogate in \\u escape") }
                        index += 2
                        let low = try parseHex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw fail("unpaired UTF-16 surrogate in \\u escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw fail("unpaired UTF-16 surrogate in \\u escape")
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw fail("invalid \\u escape") }
                    out.append(contentsOf: UTF8.encode(u)!)
                default:
                    throw fail("invalid escape sequence")
                }
            }
            return String(decoding: out, as: UTF8.self)
        }

        mutating func parseNumber() throws(ParseError) -> SafeTensorsJSON {
            let start = index
            var isInteger = true
            if current == UInt8(ascii: "-") { index += 1 }
            func isDigit(_ p: Parser) -> Bool { !p.atEnd && p.current >= UInt8(ascii: "0") && p.current <= UInt8(ascii: "9") }
            guard isDigit(self) else { throw fail("invalid number") }
            if current == UInt8(ascii: "0") {
                index += 1
                if isDigit(self) { throw fail("leading zero in number") }
            } else {
                while isDigit(self) { index += 1 }
            }
            if !atEnd, current == UInt8(ascii: ".") {
                isInteger = false
                index += 1
                guard isDigit(self) else { throw fail("invalid number: digits expected after '.'") }
                while isDigit(self) { index += 1 }
            }
            if !atEnd, current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                isInteger = false
                index += 1
                if !atEnd, current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
                guard isDigit(self) else { throw fail("invalid number: digits expected in exponent") }
                while isDigit(self) { index += 1 }
            }
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
            if isInteger, let value = Int(text) { return .integer(value) }
            return .number(text)
        }
    }
}
