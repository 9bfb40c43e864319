import Foundation

/// Errors reading or writing a numeric CSV matrix. Line and column numbers are 1-based and
/// count physical lines of the file (the header, when present, is line 1).
public enum CSVMatrixError: Error, Equatable, CustomStringConvertible {
    /// The file could not be read.
    case unreadableFile(path: String, reason: String)
    /// The delimiter is not a single ASCII character other than '"', '\n' and '\r'.
    case invalidDelimiter(String)
    /// The file holds no line with content.
    case emptyFile
    /// A blank line before the last line with content (blank lines at the end are ignored).
    case emptyLine(line: Int)
    /// A quoted field that does not close on its line.
    case unterminatedQuote(line: Int, column: Int)
    /// Text between a closing quote and the next delimiter.
    case textAfterQuote(line: Int, column: Int)
    /// A line whose number of fields differs from the first line's.
    case columnCountMismatch(line: Int, expected: Int, found: Int)
    /// An empty field where a number was expected.
    case emptyCell(line: Int, column: Int)
    /// A field that is not a number.
    case nonNumericCell(line: Int, column: Int, text: String)
    /// A finite decimal number beyond the float64 range (e.g. `1e400`).
    case valueOutOfRange(line: Int, column: Int, text: String)
    /// A header field that is not valid UTF-8.
    case invalidHeaderEncoding(column: Int)
    /// Writer: `values.count` differs from `rows × columns`, or the header has another count.
    case countMismatch(expected: Int, actual: Int)
    /// Writer: a header name the reader could not read back (it contains a line break).
    case invalidHeaderName(String)
    /// Writer: the file could not be written.
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case .unreadableFile(let p, let r): return "cannot read CSV file \(p): \(r)"
        case .invalidDelimiter(let d):
            return "invalid CSV delimiter \(d.debugDescription): use one ASCII character other than a quote or a line break"
        case .emptyFile: return "CSV file is empty"
        case .emptyLine(let l): return "CSV line \(l) is empty (only trailing empty lines are allowed)"
        case .unterminatedQuote(let l, let c): return "CSV line \(l), column \(c): unterminated quoted field"
        case .textAfterQuote(let l, let c): return "CSV line \(l), column \(c): text after the closing quote"
        case .columnCountMismatch(let l, let e, let f):
            return "CSV line \(l) has \(f) columns, expected \(e) (as on the first line)"
        case .emptyCell(let l, let c): return "CSV line \(l), column \(c): empty field, expected a number"
        case .nonNumericCell(let l, let c, let t): return "CSV line \(l), column \(c): not a number: \(t.debugDescription)"
        case .valueOutOfRange(let l, let c, let t): return "CSV line \(l), column \(c): \(t) is out of the float64 range"
        case .invalidHeaderEncoding(let c): return "CSV header column \(c) is not valid UTF-8"
        case .countMismatch(let e, let a): return "CSV writer: expected \(e) values, got \(a)"
        case .invalidHeaderName(let n): return "CSV writer: header name \(n.debugDescription) contains a line break"
        case .writeFailed(let p, let r): return "cannot write CSV file \(p): \(r)"
        }
    }
}

/// Numeric CSV matrices: a strict reader and a writer.
///
/// Accepted input, in UTF-8 (an initial byte-order mark is skipped):
/// - one record per line, ended by `\n` or `\r\n`; every line must have as many fields as the
///   first; blank lines at the end are ignored, blank lines elsewhere are errors;
/// - an optional header line. With `hasHeader == nil` the first line is a header exactly when
///   at least one of its fields is not a number (so a header of numeric names such as pandas'
///   `0,1,2` is taken for data: pass `hasHeader: true` for such files);
/// - fields may be surrounded by spaces or tabs (ignored, unless that character is the
///   delimiter) and may be quoted (`"1.5"`, `""` for a quote inside quotes); quoted fields
///   cannot span lines; spaces inside quotes are kept in header names and ignored around
///   numbers;
/// - numbers in the decimal syntax of Python's `float()`: optional sign, digits with optional
///   fraction (`1`, `-2.5`, `.5`, `3.`), optional exponent (`1e-3`, `2E+8`). `nan`, `inf`,
///   `infinity` (any case, optional sign) are parsed as NaN and ±infinity, as numpy does:
///   callers that need finite data must check. Hexadecimal floats, thousands separators,
///   digit-group underscores (`1_000`) and empty fields are errors; a finite literal beyond
///   the float64 range (`1e400`) is an error rather than a silent infinity.
public struct CSVMatrix {
    /// Reads a CSV file. See ``read(data:hasHeader:delimiter:)``. Only regular files are read (a
    /// FIFO or a device would block).
    /// - Throws: ``CSVMatrixError``, ``MemoryError``.
    public static func read(contentsOf url: URL, hasHeader: Bool? = nil, delimiter: Character = ",")
        throws -> (values: [Double], rows: Int, columns: Int, header: [String]?)
    {
        let data: Data
        do {
            data = try RegularFile.read(url, mapped: true)
        } catch {
            throw CSVMatrixError.unreadableFile(path: url.path, reason: error.reason)
        }
        return try read(data: data, hasHeader: hasHeader, delimiter: delimiter)
    }

    /// Parses CSV bytes into a row-major float64 matrix. O(size of the input).
    /// - Parameters:
    ///   - data: the bytes of the file (UTF-8).
    ///   - hasHeader: true or false to force; nil to detect (see the type's documentation).
    ///   - delimiter: one ASCII character other than '"', '\n', '\r'.
    /// - Returns: the values row by row, the counts, and the header names (nil when there is
    ///   no header line). A file holding only a header gives 0 rows.
    /// - Throws: ``CSVMatrixError``; ``MemoryError/exceedsBudget(purpose:bytes:budget:)`` when
    ///   the rows × columns float64 values exceed the ``MemoryBudget`` (checked once the first
    ///   data line gives the column count), or the index of the lines does (checked first).
    public static func read(data: Data, hasHeader: Bool? = nil, delimiter: Character = ",")
        throws -> (values: [Double], rows: Int, columns: Int, header: [String]?)
    {
        guard let d = delimiter.asciiValue, d != UInt8(ascii: "\""), d != 0x0A, d != 0x0D else {
            throw CSVMatrixError.invalidDelimiter(String(delimiter))
        }
        return try data.withUnsafeBytes { raw in
            var parser = Parser(bytes: raw.bindMemory(to: UInt8.self), delimiter: d)
            return try parser.run(hasHeader: hasHeader)
        }
    }

    /// Writes a row-major matrix as CSV: values in Swift's shortest round-trip form (reading
    /// the file back gives the same bits; NaN and infinities as `nan`, `inf`, `-inf`), an
    /// optional header line (names quoted when needed), `\n` line ends. The delimiter must be a
    /// tab, a space or an ASCII punctuation character other than `" . + -`. Atomic (temporary file
    /// and rename). A header whose names are all numbers must be read back with
    /// `hasHeader: true`.
    /// - Throws: ``CSVMatrixError/countMismatch(expected:actual:)``,
    ///   ``CSVMatrixError/invalidHeaderName(_:)``, ``CSVMatrixError/invalidDelimiter(_:)``,
    ///   ``CSVMatrixError/writeFailed(path:reason:)``.
    public static func write(_ values: [Double], rows: Int, columns: Int, header: [String]? = nil,
                             delimiter: Character = ",", to url: URL) throws {
        // Anything a number can contain would make the file unreadable.
        guard delimiter.isASCII, delimiter == "\t" || delimiter == " " || delimiter.isPunctuation || delimiter.isSymbol,
              !"\".+-".contains(delimiter)
        else { throw CSVMatrixError.invalidDelimiter(String(delimiter)) }
        guard rows >= 0, columns >= 0, case (let n, false) = rows.multipliedReportingOverflow(by: columns), n == values.count else {
            throw CSVMatrixError.countMismatch(expected: max(0, rows) &* max(0, columns), actual: values.count)
        }
        var text = ""
        let sep = String(delimiter)
        if let header {
            guard header.count == columns else { throw CSVMatrixError.countMismatch(expected: columns, actual: header.count) }
            var names: [String] = []
            for name in header {
                if name.contains(where: { $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) {
                    throw CSVMatrixError.invalidHeaderName(name)
                }
                let needsQuotes = name.isEmpty || name.contains(delimiter) || name.contains("\"")
                    || name.first?.isWhitespace == true || name.last?.isWhitespace == true
                names.append(needsQuotes ? "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : name)
            }
            text += names.joined(separator: sep) + "\n"
        }
        text.reserveCapacity(text.utf8.count + values.count * 12)
        for r in 0..<rows {
            for c in 0..<columns {
                if c > 0 { text += sep }
                text += values[r * columns + c].description
            }
            text += "\n"
        }
        do {
            try Data(text.utf8).write(to: url, options: .atomic)
        } catch {
            throw CSVMatrixError.writeFailed(path: url.path, reason: error.localizedDescription)
        }
    }

    /// The line-by-line parser over the raw bytes.
    struct Parser {
        let bytes: UnsafeBufferPointer<UInt8>
        let delimiter: UInt8
        var scratch: [UInt8] = []

        init(bytes: UnsafeBufferPointer<UInt8>, delimiter: UInt8) {
            self.bytes = bytes
            self.delimiter = delimiter
        }

        /// A field's content: a range of `bytes`, or (after unescaping `""`) of `scratch`.
        enum Field { case raw(Range<Int>), unescaped }

        func isBlank(_ b: UInt8) -> Bool { (b == 0x20 || b == 0x09) && b != delimiter }

        /// Lines as ranges (without the `\n` and one trailing `\r`), after the BOM.
        func lines() -> [Range<Int>] {
            var start = 0
            if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { start = 3 }
            var result: [Range<Int>] = []
            var i = start
            while i < bytes.count {
                if bytes[i] == 0x0A {
                    var end = i
                    if end > start && bytes[end - 1] == 0x0D { end -= 1 }
                    result.append(start..<end)
                    start = i + 1
                }
                i += 1
            }
            if start < bytes.count {
                var end = bytes.count
                if bytes[end - 1] == 0x0D { end -= 1 }
                result.append(start..<end)
            }
            return result
        }

        func lineIsBlank(_ r: Range<Int>) -> Bool {
            r.allSatisfy { bytes[$0] == 0x20 || bytes[$0] == 0x09 || bytes[$0] == 0x0D }
        }

        /// Calls `body(field, column)` for each field of the line; returns the field count.
        mutating func forEachField(_ line: Range<Int>, lineNumber: Int,
                                   _ body: (inout Parser, Field, Int) throws -> Void) throws -> Int {
            var i = line.lowerBound
            var column = 0
            while true {
                column += 1
                while i < line.upperBound && isBlank(bytes[i]) { i += 1 }
                let field: Field
                if i < line.upperBound && bytes[i] == UInt8(ascii: "\"") {
                    scratch.removeAll(keepingCapacity: true)
                    i += 1
                    var closed = false
                    while i < line.upperBound {
                        let b = bytes[i]
                        i += 1
                        if b == UInt8(ascii: "\"") {
                            if i < line.upperBound && bytes[i] == UInt8(ascii: "\"") {
                                scratch.append(b)
                                i += 1
                            } else {
                                closed = true
                                break
                            }
                        } else {
                            scratch.append(b)
                        }
                    }
                    guard closed else { throw CSVMatrixError.unterminatedQuote(line: lineNumber, column: column) }
                    while i < line.upperBound && isBlank(bytes[i]) { i += 1 }
                    guard i == line.upperBound || bytes[i] == delimiter else {
                        throw CSVMatrixError.textAfterQuote(line: lineNumber, column: column)
                    }
                    field = .unescaped
                } else {
                    let start = i
                    while i < line.upperBound && bytes[i] != delimiter { i += 1 }
                    var end = i
                    while end > start && isBlank(bytes[end - 1]) { end -= 1 }
                    field = .raw(start..<end)
                }
                try body(&self, field, column)
                if i >= line.upperBound { return column }
                i += 1  // the delimiter
            }
        }

        /// The field's text: verbatim inside quotes (header names keep their spaces), or with
        /// `trimmed`, without surrounding spaces and tabs (for numbers: `" 8 "` is 8).
        func withFieldBytes<R>(_ field: Field, trimmed: Bool = false,
                               _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
            func trim(_ b: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
                guard trimmed else { return b }
                var lo = 0, hi = b.count
                while lo < hi && (b[lo] == 0x20 || b[lo] == 0x09) { lo += 1 }
                while hi > lo && (b[hi - 1] == 0x20 || b[hi - 1] == 0x09) { hi -= 1 }
                return UnsafeBufferPointer(rebasing: b[lo..<hi])
            }
            switch field {
            case .raw(let r): return try body(trim(UnsafeBufferPointer(rebasing: bytes[r])))
            case .unescaped: return try scratch.withUnsafeBufferPointer { try body(trim($0)) }
            }
        }

        mutating func run(hasHeader: Bool?) throws -> (values: [Double], rows: Int, columns: Int, header: [String]?) {
            // The line index (one range per line) can be 16 times the file (a file of line
            // ends): it is counted and checked against the budget before it is built.
            let newlines = bytes.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
            try MemoryBudget.check(bytes: MemoryBudget.byteCount(Range<Int>.self, newlines + 1),
                                   purpose: "the index of a CSV file's \(newlines + 1) lines")
            let all = lines()
            guard let last = all.lastIndex(where: { !lineIsBlank($0) }) else { throw CSVMatrixError.emptyFile }
            let lines = all[...last]
            if let blank = lines.firstIndex(where: lineIsBlank) { throw CSVMatrixError.emptyLine(line: blank + 1) }

            // Header: forced, or detected as "some field of line 1 is not a number".
            var header: [String]? = nil
            var firstDataLine = 0
            var isHeader = hasHeader ?? false
            if hasHeader == nil {
                _ = try forEachField(lines[0], lineNumber: 1) { p, field, _ in
                    if p.withFieldBytes(field, trimmed: true, { CSVMatrix.parseNumber($0) }) == nil { isHeader = true }
                }
            }
            var columns = 0
            if isHeader {
                var names: [String] = []
                columns = try forEachField(lines[0], lineNumber: 1) { p, field, column in
                    guard let name = p.withFieldBytes(field, { String(bytes: $0, encoding: .utf8) }) else {
                        throw CSVMatrixError.invalidHeaderEncoding(column: column)
                    }
                    names.append(name)
                }
                header = names
                firstDataLine = 1
            }

            var values: [Double] = []
            for index in firstDataLine..<lines.count {
                let lineNumber = index + 1
                let found = try forEachField(lines[index], lineNumber: lineNumber) { p, field, column in
                    if columns > 0 && column > columns { return }  // counted, reported below
                    let v: Double = try p.withFieldBytes(field, trimmed: true) { text in
                        guard !text.isEmpty else { throw CSVMatrixError.emptyCell(line: lineNumber, column: column) }
                        guard let v = CSVMatrix.parseNumber(text) else {
                            throw CSVMatrixError.nonNumericCell(line: lineNumber, column: column,
                                                                text: String(decoding: text, as: UTF8.self))
                        }
                        if v.isInfinite && !CSVMatrix.isInfinityLiteral(text) {
                            throw CSVMatrixError.valueOutOfRange(line: lineNumber, column: column,
                                                                 text: String(decoding: text, as: UTF8.self))
                        }
                        return v
                    }
                    values.append(v)
                }
                if columns == 0 { columns = found }
                guard found == columns else {
                    throw CSVMatrixError.columnCountMismatch(line: lineNumber, expected: columns, found: found)
                }
                if index == firstDataLine {
                    let rows = lines.count - firstDataLine
                    let bytes = MemoryBudget.byteCount(Double.self, rows, columns)
                    try MemoryBudget.check(bytes: bytes, purpose: "a \(rows)×\(columns) CSV matrix needs as many float64 values")
                    values.reserveCapacity(rows * columns)
                }
            }
            return (values, lines.count - firstDataLine, columns, header)
        }
    }

    /// Parses a number in Python `float()` decimal syntax (see the type's documentation), or
    /// returns nil. Out-of-range finite literals give ±infinity here (checked by the caller).
    static func parseNumber(_ text: UnsafeBufferPointer<UInt8>) -> Double? {
        let n = text.count
        guard n > 0 else { return nil }
        var i = 0
        if text[0] == UInt8(ascii: "+") || text[0] == UInt8(ascii: "-") { i = 1 }
        func isDigit(_ k: Int) -> Bool { k < n && text[k] >= 0x30 && text[k] <= 0x39 }
        if i < n && !isDigit(i) && text[i] != UInt8(ascii: ".") {
            // Only the special values remain possible.
            let word = String(decoding: UnsafeBufferPointer(rebasing: text[i...]), as: UTF8.self).lowercased()
            let negative = text[0] == UInt8(ascii: "-")
            switch word {
            case "nan": return .nan
            case "inf", "infinity": return negative ? -.infinity : .infinity
            default: return nil
            }
        }
        // Scan the grammar and, on the way, collect up to 19 significant digits for the fast path.
        var mantissaDigits = 0
        var significand: UInt64 = 0
        var significantDigits = 0
        var decimalExponent = 0  // value = significand × 10^decimalExponent (before the exponent part)
        func take(_ d: UInt8, fraction: Bool) {
            if significantDigits == 0 && d == 0x30 {
                if fraction { decimalExponent -= 1 }
                return
            }
            if significantDigits < 19 {
                significand = significand &* 10 &+ UInt64(d - 0x30)
                if fraction { decimalExponent -= 1 }
            } else if !fraction {
                decimalExponent += 1
            }
            significantDigits += 1
        }
        while isDigit(i) { take(text[i], fraction: false); i += 1; mantissaDigits += 1 }
        if i < n && text[i] == UInt8(ascii: ".") {
            i += 1
            while isDigit(i) { take(text[i], fraction: true); i += 1; mantissaDigits += 1 }
        }
        guard mantissaDigits > 0 else { return nil }
        var exponent = 0
        if i < n && (text[i] == UInt8(ascii: "e") || text[i] == UInt8(ascii: "E")) {
            i += 1
            var negativeExponent = false
            if i < n && (text[i] == UInt8(ascii: "+") || text[i] == UInt8(ascii: "-")) {
                negativeExponent = text[i] == UInt8(ascii: "-")
                i += 1
            }
            guard isDigit(i) else { return nil }
            while isDigit(i) {
                if exponent < 100_000 { exponent = exponent * 10 + Int(text[i] - 0x30) }
                i += 1
            }
            if negativeExponent { exponent = -exponent }
        }
        guard i == n else { return nil }
        // Clinger's fast path: an exact significand (< 2^53) times or over an exact power of
        // ten (≤ 10^22) is one correctly rounded IEEE operation, hence the correctly rounded
        // value. Everything else goes through the standard library's correctly rounded parser.
        let e = decimalExponent + exponent
        if significantDigits <= 19, significand < (1 << 53), (-22...22).contains(e) {
            let m = Double(significand)
            let v = e < 0 ? m / CSVMatrix.powersOfTen[-e] : m * CSVMatrix.powersOfTen[e]
            return text[0] == UInt8(ascii: "-") ? -v : v
        }
        return Double(String(decoding: text, as: UTF8.self))
    }

    /// 10^0 … 10^22, all exactly representable in Double.
    static let powersOfTen: [Double] = (0...22).map { k in (0..<k).reduce(1.0) { acc, _ in acc * 10 } }

    static func isInfinityLiteral(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
        text.contains { $0 == UInt8(ascii: "i") || $0 == UInt8(ascii: "I") }
    }
}
