import Foundation
import Testing
@testable import LoRTA

@Suite("CSVMatrix")
struct CSVMatrixTests {
    func parse(_ text: String, hasHeader: Bool? = nil, delimiter: Character = ",") throws
        -> (values: [Double], rows: Int, columns: Int, header: [String]?)
    {
        try CSVMatrix.read(data: Data(text.utf8), hasHeader: hasHeader, delimiter: delimiter)
    }

    func expectError(_ expected: CSVMatrixError, _ text: String, hasHeader: Bool? = nil, delimiter: Character = ",",
                     sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: expected, sourceLocation: sourceLocation) { try parse(text, hasHeader: hasHeader, delimiter: delimiter) }
    }

    @Test func numpyAndCsvModuleFixturesReadAsNumpyReadsThem() throws {
        let manifest = try NpyManifest.load()
        #expect(manifest.csv.count == 5)
        for entry in manifest.csv {
            let r = try CSVMatrix.read(contentsOf: try NpyManifest.fixtureURL(entry.file), hasHeader: entry.hasHeader,
                                       delimiter: Character(entry.delimiter))
            #expect(r.rows == entry.rows && r.columns == entry.columns, "\(entry.file)")
            #expect(r.header == entry.header, "\(entry.file)")
            let expected = entry.values.map(\.double)
            #expect(r.values.count == expected.count, "\(entry.file)")
            for (i, (v, e)) in zip(r.values, expected).enumerated() {
                #expect(sameBits(v, e), "\(entry.file)[\(i)]: \(v) vs \(e)")
            }
        }
        // Auto-detection takes pandas-style numeric column names for data.
        let numeric = try CSVMatrix.read(contentsOf: try NpyManifest.fixtureURL("numeric_header.csv"))
        #expect(numeric.header == nil && numeric.rows == 3 && Array(numeric.values.prefix(3)) == [0, 1, 2])
    }

    @Test func headerDetectionAndForcing() throws {
        let a = try parse("x,y\n1,2\n3,4\n")
        #expect(a.header == ["x", "y"] && a.rows == 2 && a.columns == 2 && a.values == [1, 2, 3, 4])
        // One non-numeric field is enough (pandas writes an empty first name for the index).
        let b = try parse(",a\n0,1.5\n1,2.5")
        #expect(b.header == ["", "a"] && b.values == [0, 1.5, 1, 2.5])
        let c = try parse("1,2\n3,4", hasHeader: true)
        #expect(c.header == ["1", "2"] && c.rows == 1 && c.values == [3, 4])
        expectError(.nonNumericCell(line: 1, column: 1, text: "x"), "x,y\n1,2\n", hasHeader: false)
        // A header alone: 0 rows with the header's column count.
        let d = try parse("alpha,beta,gamma\n")
        #expect(d.rows == 0 && d.columns == 3 && d.values.isEmpty && d.header == ["alpha", "beta", "gamma"])
        // Header and data must agree on the column count.
        expectError(.columnCountMismatch(line: 2, expected: 3, found: 2), "a,b,c\n1,2\n")
    }

    @Test func numberSyntax() throws {
        let r = try parse(" 1 , -2.5,.5,3.,+4e2,-1E-3,nan,NAN,inf,-Infinity,\"7\",\" 8 \"\n")
        let expected: [Double] = [1, -2.5, 0.5, 3, 400, -0.001, .nan, .nan, .infinity, -.infinity, 7, 8]
        #expect(r.columns == expected.count)
        #expect(zip(r.values, expected).allSatisfy(sameBits))
        // Correct rounding, as Python's float(): the closest doubles.
        let p = try parse("0.1,2.2250738585072014e-308,4.9e-324,1.7976931348623157e308,9007199254740993\n")
        #expect(p.values == [0.1, 2.2250738585072014e-308, Double.leastNonzeroMagnitude, .greatestFiniteMagnitude, 9007199254740992])
        for bad in ["0x10", "1.2.3", "1e", "e5", "--1", ".", "1 2", "1,5e", "Inf1", "nana", "1_000", "１", "+", "1e+", "∞", "0b1"] {
            let cell = bad.split(separator: ",").last.map(String.init) ?? bad
            let column = bad.split(separator: ",").count
            expectError(.nonNumericCell(line: 1, column: column, text: cell), bad + "\n", hasHeader: false)
        }
        expectError(.valueOutOfRange(line: 2, column: 1, text: "1e400"), "1,2\n1e400,3\n")
        expectError(.valueOutOfRange(line: 1, column: 2, text: "-2e308"), "1,-2e308\n", hasHeader: false)
        // Underflow is not an error (rounds to zero, as float() does).
        #expect(try parse("1e-400\n").values == [0])
    }

    @Test func fastDecimalPathAgreesWithTheStandardLibraryParser() throws {
        // Random decimal strings (1–21 digits, any point position, exponents −40…40): the
        // reader's conversion must give the same bits as Swift's own correctly rounded parser.
        var state: UInt64 = 12345
        func next(_ bound: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(bound))
        }
        var lines: [String] = []
        var expected: [Double] = []
        for _ in 0..<4000 {
            let digitCount = 1 + next(21)
            var digits = (0..<digitCount).map { _ in String(next(10)) }.joined()
            if next(4) == 0 { digits = String(repeating: "0", count: next(4)) + digits }
            let point = next(digits.count + 1)
            var text = String(digits.prefix(point)) + (point < digits.count || next(2) == 0 ? "." : "") + String(digits.dropFirst(point))
            if text == "." { text = "0." }
            if next(2) == 0 { text += (next(2) == 0 ? "e" : "E") + (next(3) == 0 ? "-" : next(2) == 0 ? "+" : "") + String(next(41)) }
            if next(2) == 0 { text = "-" + text }
            lines.append(text)
            expected.append(try #require(Double(text), "\(text)"))
        }
        let r = try parse(lines.joined(separator: "\n"), hasHeader: false)
        #expect(r.rows == lines.count && r.columns == 1)
        for (k, (v, e)) in zip(r.values, expected).enumerated() {
            #expect(sameBits(v, e), "\(lines[k]): \(v) vs \(e)")
        }
    }

    @Test func structuralErrors() {
        expectError(.emptyFile, "")
        expectError(.emptyFile, "\n\n  \n")
        expectError(.emptyFile, "\u{FEFF}")
        expectError(.columnCountMismatch(line: 3, expected: 2, found: 1), "1,2\n3,4\n5\n")
        expectError(.columnCountMismatch(line: 2, expected: 2, found: 3), "1,2\n3,4,5\n")
        expectError(.columnCountMismatch(line: 3, expected: 2, found: 3), "a,b\n1,2\n3,4,\n")
        expectError(.nonNumericCell(line: 3, column: 2, text: "x"), "a,b\n1,2\n3,x\n")
        expectError(.emptyCell(line: 2, column: 2), "1,2,3\n4,,6\n")
        expectError(.emptyCell(line: 1, column: 1), "\"\",1\n", hasHeader: false)
        expectError(.emptyLine(line: 2), "1,2\n\n3,4\n")
        expectError(.emptyLine(line: 1), "\n1,2\n")
        expectError(.unterminatedQuote(line: 2, column: 2), "1,2\n3,\"4\n5,6\n")
        expectError(.textAfterQuote(line: 1, column: 1), "\"1\"x,2\n", hasHeader: false)
        expectError(.invalidDelimiter("\""), "1\n", delimiter: "\"")
        expectError(.invalidDelimiter("\n"), "1\n", delimiter: "\n")
        expectError(.invalidDelimiter("é"), "1\n", delimiter: "é")
        #expect(throws: CSVMatrixError.invalidHeaderEncoding(column: 2)) {
            try CSVMatrix.read(data: Data([0x61, 0x2C, 0xFF, 0x0A, 0x31, 0x2C, 0x32, 0x0A]))
        }
        // Non-UTF-8 bytes in a data cell are just not a number.
        #expect(throws: CSVMatrixError.nonNumericCell(line: 1, column: 1, text: "\u{FFFD}")) {
            try CSVMatrix.read(data: Data([0xFF, 0x0A]), hasHeader: false)
        }
        #expect {
            try CSVMatrix.read(contentsOf: URL(fileURLWithPath: "/nonexistent/m.csv"))
        } throws: { error in
            guard case CSVMatrixError.unreadableFile(let path, _) = error else { return false }
            return path == "/nonexistent/m.csv"
        }
    }

    @Test func lineEndingsBomDelimitersAndTrailingBlankLines() throws {
        let expected: [Double] = [1, 2, 3, 4]
        for text in ["1,2\r\n3,4\r\n", "1,2\n3,4", "\u{FEFF}1,2\n3,4\n", "1,2\n3,4\n\n \n\t\n", "1,2\r\n3,4\r\n\r\n"] {
            let r = try parse(text)
            #expect(r.values == expected && r.rows == 2 && r.header == nil, "\(text.debugDescription)")
        }
        #expect(try parse("1\t2\n3\t 4\n", delimiter: "\t").values == expected)
        #expect(try parse("1;2\n3;4\n", delimiter: ";").values == expected)
        #expect(try parse("1 2\n3 4\n", delimiter: " ").values == expected)
        // The delimiter inside quotes belongs to the field (a header name here).
        let q = try parse("\"a,b\",\"say \"\"hi\"\"\"\n1,2\n")
        #expect(q.header == ["a,b", "say \"hi\""])
        // A single column.
        let s = try parse("v\n1\n2\n3\n")
        #expect(s.columns == 1 && s.rows == 3 && s.values == [1, 2, 3])
    }

    @Test func writerRoundTripsBitForBit() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("csv-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("m.csv")

        var values: [Double] = [.pi, -0.0, Double.leastNonzeroMagnitude, .greatestFiniteMagnitude, -.infinity, .infinity, .nan, 1e-7, 123456789.125, 0.1 + 0.2, 1e22, -1]
        // Plus seeded pseudo-random doubles over many magnitudes (SplitMix64).
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<48 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            let d = Double(bitPattern: z)
            values.append(d.isFinite ? d : 1)
        }
        let header = ["plain", "with,comma", "with \"quote\"", " padded ", ""]
        try CSVMatrix.write(values, rows: 12, columns: 5, header: header, to: url)
        let r = try CSVMatrix.read(contentsOf: url)
        #expect(r.header == header && r.rows == 12 && r.columns == 5)
        #expect(zip(r.values, values).allSatisfy(sameBits))

        try CSVMatrix.write(values, rows: 6, columns: 10, delimiter: "\t", to: url)
        let t = try CSVMatrix.read(contentsOf: url, delimiter: "\t")
        #expect(t.header == nil && t.rows == 6 && zip(t.values, values).allSatisfy(sameBits))

        try CSVMatrix.write([], rows: 0, columns: 2, header: ["a", "b"], to: url)
        let e = try CSVMatrix.read(contentsOf: url)
        #expect(e.rows == 0 && e.columns == 2 && e.header == ["a", "b"])

        #expect(throws: CSVMatrixError.countMismatch(expected: 6, actual: 5)) {
            try CSVMatrix.write([1, 2, 3, 4, 5], rows: 2, columns: 3, to: url)
        }
        #expect(throws: CSVMatrixError.countMismatch(expected: 2, actual: 1)) {
            try CSVMatrix.write([1, 2], rows: 1, columns: 2, header: ["a"], to: url)
        }
        #expect(throws: CSVMatrixError.invalidHeaderName("a\nb")) {
            try CSVMatrix.write([1], rows: 1, columns: 1, header: ["a\nb"], to: url)
        }
        for bad: Character in ["\"", ".", "-", "e", "1"] {
            #expect(throws: CSVMatrixError.invalidDelimiter(String(bad))) {
                try CSVMatrix.write([1], rows: 1, columns: 1, delimiter: bad, to: url)
            }
        }
    }

    @Test func errorsDescribeThemselves() {
        let e = CSVMatrixError.columnCountMismatch(line: 7, expected: 3, found: 2)
        #expect(e.description.contains("7") && e.description.contains("3") && e.description.contains("2"))
        let n = CSVMatrixError.nonNumericCell(line: 4, column: 9, text: "abc")
        #expect(n.description.contains("line 4") && n.description.contains("column 9") && n.description.contains("abc"))
    }
}
