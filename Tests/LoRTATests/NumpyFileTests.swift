import Foundation
import Testing
@testable import LoRTA

/// The fixtures written by scripts/fixtures/make_npy_fixtures.py and what numpy read in them.
struct NpyManifest: Decodable {
    /// A value as the script wrote it: a float's repr() string or an integer.
    enum Value: Decodable {
        case text(String)
        case integer(Int)
        case unsigned(UInt64)  // beyond Int.max

        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let i = try? c.decode(Int.self) {
                self = .integer(i)
            } else if let u = try? c.decode(UInt64.self) {
                self = .unsigned(u)
            } else {
                self = .text(try c.decode(String.self))
            }
        }

        var double: Double {
            switch self {
            case .text(let s): return Double(s)!
            case .integer(let i): return Double(i)
            case .unsigned(let u): return Double(u)
            }
        }
    }

    struct Array: Decodable {
        var file: String
        var dtype: String
        var shape: [Int]
        var fortran: Bool
        var bigEndian: Bool
        var version: Int
        var values: [Value]
    }

    struct Header: Decodable {
        var descr: String
        var shape: [Int]
        var hex: String
    }

    struct BigHeader: Decodable {
        var rank: Int
        var prefixHex: String
        var totalLength: Int
    }

    struct CSV: Decodable {
        var file: String
        var delimiter: String
        var hasHeader: Bool?
        var header: [String]?
        var rows: Int
        var columns: Int
        var values: [Value]
    }

    var arrays: [Array]
    var writer: [Array]
    var headers: [Header]
    var bigHeader: BigHeader
    var csv: [CSV]

    static func load() throws -> NpyManifest {
        try JSONDecoder().decode(NpyManifest.self, from: Data(contentsOf: try fixtureURL("expected.json")))
    }

    static func fixtureURL(_ name: String) throws -> URL {
        try #require(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures/npy"),
                     "missing fixture \(name)")
    }
}

func bytes(fromHex hex: String) -> [UInt8] {
    var out: [UInt8] = []
    var i = hex.startIndex
    while i < hex.endIndex {
        let j = hex.index(i, offsetBy: 2)
        out.append(UInt8(hex[i..<j], radix: 16)!)
        i = j
    }
    return out
}

/// Same value, bit for bit (any NaN equals any NaN).
func sameBits(_ a: Double, _ b: Double) -> Bool { (a.isNaN && b.isNaN) || a.bitPattern == b.bitPattern }
func sameBits(_ a: Float, _ b: Float) -> Bool { (a.isNaN && b.isNaN) || a.bitPattern == b.bitPattern }

/// A .npy file built by hand: magic, version, little-endian header length, header, data.
func npyBytes(_ header: String, version: (UInt8, UInt8) = (1, 0), data: [UInt8] = [],
              terminate: Bool = true, headerBytes: [UInt8]? = nil) -> Data {
    var h = headerBytes ?? Array(header.utf8)
    if terminate { h.append(0x0A) }
    var out: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, version.0, version.1]
    let lengthSize = version.0 == 1 ? 2 : 4
    for k in 0..<lengthSize { out.append(UInt8(truncatingIfNeeded: h.count >> (8 * k))) }
    return Data(out + h + data)
}

/// Little-endian bytes of Float32 values.
func f4Bytes(_ v: [Float]) -> [UInt8] { v.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) } }

@Suite("NumpyFile")
struct NumpyFileTests {
    static let dtypeNames: [String: NumpyDType] = [
        "float32": .float32, "float64": .float64, "int8": .int8, "int16": .int16, "int32": .int32,
        "int64": .int64, "uint8": .uint8, "uint16": .uint16, "uint32": .uint32, "uint64": .uint64, "bool": .bool,
    ]

    // MARK: numpy-written fixtures

    @Test func everyNumpyFixtureReadsAsNumpyReadsIt() throws {
        let manifest = try NpyManifest.load()
        #expect(manifest.arrays.count >= 25)
        for entry in manifest.arrays where entry.file != "labels_u8_huge.npy" {
            let a = try NumpyArray(contentsOf: try NpyManifest.fixtureURL(entry.file))
            #expect(a.dtype == Self.dtypeNames[entry.dtype], "\(entry.file)")
            #expect(a.shape == entry.shape, "\(entry.file)")
            #expect(a.isFortranOrder == entry.fortran, "\(entry.file)")
            #expect(a.isBigEndian == entry.bigEndian, "\(entry.file)")
            #expect(a.formatVersion == entry.version, "\(entry.file)")
            #expect(a.count == entry.values.count, "\(entry.file)")
            // All values, row-major, exactly as numpy sees them.
            let values = try a.doubleValues()
            let expected = entry.values.map(\.double)
            #expect(values.count == expected.count)
            for (i, (v, e)) in zip(values, expected).enumerated() {
                #expect(sameBits(v, e), "\(entry.file)[\(i)]: \(v) vs \(e)")
            }
            if a.shape.count == 1 || a.shape.count == 2 {
                let m = try a.doubleMatrix()
                #expect(m.rows == a.shape[0] && m.columns == (a.shape.count == 2 ? a.shape[1] : 1))
                #expect(zip(m.values, expected).allSatisfy(sameBits), "\(entry.file)")
                // Float32 conversion: an error exactly where a finite value rounds to infinity.
                if let bad = expected.firstIndex(where: { $0.isFinite && Float($0).isInfinite }) {
                    #expect(throws: NumpyFileError.valueOutOfFloat32Range(index: bad, value: expected[bad]), "\(entry.file)") {
                        try a.floatMatrix()
                    }
                } else {
                    let t = try a.floatMatrix()
                    #expect(t.shape == [m.rows, m.columns], "\(entry.file)")
                    #expect(zip(t.scalars, expected).allSatisfy { sameBits($0, Float($1)) }, "\(entry.file)")
                }
            }
            if a.shape.count == 1 && entry.file.hasPrefix("labels_") && entry.file != "labels_f8_fractional.npy" {
                let labels = try a.integerLabels()
                let expectedLabels = entry.values.map { v -> Int in
                    switch v {
                    case .integer(let i): return i
                    case .unsigned: return -1  // labels_u8_huge.npy is skipped above
                    case .text(let s): return Int(Double(s)!)
                    }
                }
                #expect(labels == expectedLabels, "\(entry.file)")
            }
        }
    }

    @Test func fortranOrderIsTransposedToRowMajor() throws {
        let manifest = try NpyManifest.load()
        let entry = try #require(manifest.arrays.first { $0.file == "f8_fortran.npy" })
        let a = try NumpyArray(contentsOf: try NpyManifest.fixtureURL(entry.file))
        #expect(a.isFortranOrder && a.shape == [3, 4])
        // Independent check: the raw payload is column-major; element (i, j) sits at j*3 + i.
        let raw = a.bytes.suffix(from: a.bytes.startIndex + a.dataOffset)
        let storage = stride(from: 0, to: raw.count, by: 8).map { k in
            raw.withUnsafeBytes { Double(bitPattern: UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: k, as: UInt64.self))) }
        }
        let m = try a.doubleMatrix()
        for i in 0..<3 { for j in 0..<4 { #expect(m.values[i * 4 + j] == storage[j * 3 + i]) } }
        #expect(zip(m.values, entry.values.map(\.double)).allSatisfy(sameBits))
        // Rank 3 through the general path.
        let b = try NumpyArray(contentsOf: try NpyManifest.fixtureURL("f4_fortran3d.npy"))
        #expect(try b.doubleValues() == (0..<24).map { Double($0) * 0.5 })
        #expect(throws: NumpyFileError.unsupportedRank(operation: "floatMatrix (needs a 1-D or 2-D array)", shape: [2, 3, 4])) {
            try b.floatMatrix()
        }
    }

    @Test func shapesOfRankZeroOneAndEmptyRows() throws {
        let v = try NumpyArray(contentsOf: try NpyManifest.fixtureURL("f4_1d.npy"))
        #expect(try v.floatMatrix().shape == [7, 1])
        let empty = try NumpyArray(contentsOf: try NpyManifest.fixtureURL("f4_0rows.npy"))
        #expect(empty.shape == [0, 4] && empty.count == 0)
        #expect(try empty.floatMatrix().shape == [0, 4])
        let m = try empty.doubleMatrix()
        #expect(m.values.isEmpty && m.rows == 0 && m.columns == 4)
        let scalar = try NumpyArray(contentsOf: try NpyManifest.fixtureURL("f8_scalar.npy"))
        #expect(scalar.shape == [] && scalar.count == 1)
        #expect(try scalar.doubleValues() == [2.5])
        #expect(throws: NumpyFileError.unsupportedRank(operation: "doubleMatrix (needs a 1-D or 2-D array)", shape: [])) {
            try scalar.doubleMatrix()
        }
        let f4 = try NumpyArray(contentsOf: try NpyManifest.fixtureURL("f4_c.npy"))
        #expect(throws: NumpyFileError.unsupportedRank(operation: "integerLabels (needs a 1-D array)", shape: [5, 3])) {
            try f4.integerLabels()
        }
    }

    @Test func nonFiniteValuesAreKeptAndReported() throws {
        let a = try NumpyArray(contentsOf: try NpyManifest.fixtureURL("f4_nonfinite.npy"))
        let t = try a.floatMatrix()
        #expect(t.scalars[0].isNaN && t.scalars[1] == .infinity && t.scalars[2] == -.infinity && t.scalars[3] == 1)
        #expect(a.firstNonFiniteIndex() == 0)
        #expect(try NumpyArray(contentsOf: try NpyManifest.fixtureURL("f4_c.npy")).firstNonFiniteIndex() == nil)
        #expect(try NumpyArray(contentsOf: try NpyManifest.fixtureURL("labels_i8.npy")).firstNonFiniteIndex() == nil)
        // A float64 beyond the Float32 range is an error for floatMatrix, exact for doubleMatrix.
        let big = try NumpyArray(contentsOf: try NpyManifest.fixtureURL("f8_big_for_f4.npy"))
        #expect(throws: NumpyFileError.valueOutOfFloat32Range(index: 1, value: 1e39)) { try big.floatMatrix() }
        #expect(try big.doubleMatrix().values == [1.0, 1e39])
    }

    @Test func labelConversionRules() throws {
        func labels(_ name: String) throws -> [Int] { try NumpyArray(contentsOf: try NpyManifest.fixtureURL(name)).integerLabels() }
        #expect(try labels("labels_f8.npy") == [0, 2, -3, 1])
        #expect(try labels("labels_b1.npy") == [1, 0, 1, 1])
        #expect(try labels("labels_i4_be.npy") == [3, -1, 70000])
        #expect(try labels("labels_i8.npy") == [Int.min, 9, Int.max])
        #expect(throws: NumpyFileError.nonIntegralLabel(index: 1, value: "1.5")) { try labels("labels_f8_fractional.npy") }
        #expect(throws: NumpyFileError.labelOutOfRange(index: 1, value: "9223372036854775808")) { try labels("labels_u8_huge.npy") }
        let nan = npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", data: f4Bytes([1, .nan]))
        #expect(throws: NumpyFileError.nonIntegralLabel(index: 1, value: "nan")) { try NumpyArray(data: nan).integerLabels() }
    }

    // MARK: malformed files, each with its own error

    static let good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
    static let sixFloats = f4Bytes([1, 2, 3, 4, 5, 6])

    func expectUnparsable(_ header: String, version: (UInt8, UInt8) = (1, 0), headerBytes: [UInt8]? = nil,
                          sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try NumpyArray(data: npyBytes(header, version: version, data: Self.sixFloats, headerBytes: headerBytes))
            Issue.record("accepted \(header.debugDescription)", sourceLocation: sourceLocation)
        } catch let error as NumpyFileError {
            guard case .unparsableHeader = error else {
                Issue.record("\(header.debugDescription): \(error)", sourceLocation: sourceLocation)
                return
            }
        } catch {
            Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
        }
    }

    func expectError(_ expected: NumpyFileError, _ header: String, data: [UInt8] = NumpyFileTests.sixFloats,
                     sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: expected, sourceLocation: sourceLocation) { try NumpyArray(data: npyBytes(header, data: data)) }
    }

    @Test func theHandBuiltGoodFileReads() throws {
        let a = try NumpyArray(data: npyBytes(Self.good, data: Self.sixFloats))
        #expect(try a.floatMatrix().scalars == [1, 2, 3, 4, 5, 6])
    }

    @Test func preambleErrors() throws {
        let valid = npyBytes(Self.good, data: Self.sixFloats)
        var badMagic = valid
        badMagic[1] = UInt8(ascii: "X")
        #expect(throws: NumpyFileError.badMagic) { try NumpyArray(data: badMagic) }
        #expect(throws: NumpyFileError.badMagic) { try NumpyArray(data: Data()) }
        #expect(throws: NumpyFileError.badMagic) { try NumpyArray(data: Data("PK\u{3}\u{4} a zip".utf8)) }
        #expect(throws: NumpyFileError.truncatedPreamble(byteCount: 7)) { try NumpyArray(data: valid.prefix(7)) }
        #expect(throws: NumpyFileError.truncatedPreamble(byteCount: 9)) { try NumpyArray(data: valid.prefix(9)) }
        for (major, minor) in [(UInt8(0), UInt8(0)), (1, 1), (4, 0), (2, 1), (255, 255)] {
            var v = valid
            v[6] = major
            v[7] = minor
            #expect(throws: NumpyFileError.unsupportedVersion(major: Int(major), minor: Int(minor))) { try NumpyArray(data: v) }
        }
        var long = valid
        long[8] = 0xFF
        long[9] = 0x7F
        #expect(throws: NumpyFileError.headerBeyondFile(headerLength: 0x7FFF, available: valid.count - 10)) {
            try NumpyArray(data: long)
        }
        // A version 2.0 length field is 4 bytes: 2³² − 1 is beyond any file here.
        var v2 = npyBytes(Self.good, version: (2, 0), data: Self.sixFloats)
        v2[11] = 0xFF
        #expect(throws: NumpyFileError.headerBeyondFile(headerLength: Int(UInt32(littleEndian: v2[8...11].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) })),
                                                        available: v2.count - 12)) { try NumpyArray(data: v2) }
    }

    @Test func headerTerminatorAndParseErrors() {
        #expect(throws: NumpyFileError.headerNotTerminated) {
            try NumpyArray(data: npyBytes(Self.good + " ", data: Self.sixFloats, terminate: false))
        }
        #expect(throws: NumpyFileError.headerNotTerminated) { try NumpyArray(data: npyBytes("", terminate: false)) }
        expectUnparsable("")
        expectUnparsable("garbage")
        expectUnparsable("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), ")   // unclosed
        expectUnparsable("{'descr': '<f4' 'fortran_order': False, 'shape': (2, 3)}")     // missing comma
        expectUnparsable("{'descr': '<f4', 'fortran_order': False, 'shape': (2.0, 3)}")  // float dimension
        expectUnparsable("{'descr': '<f4', 'fortran_order': false, 'shape': (2, 3)}")    // not Python
        expectUnparsable("{'descr': '<f4, 'fortran_order': False, 'shape': (2, 3)}")     // quote soup
        expectUnparsable("{'descr': '<f4', 'fortran_order': False, 'shape': (02, 3)}")   // leading zero
        expectUnparsable("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3),, }") // double comma
        expectUnparsable("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)} x")  // text after
        expectUnparsable("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)} # c")
        expectUnparsable("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 5: 1}") // non-string key
        expectUnparsable("{'descr': '\\x3cf4', 'fortran_order': False, 'shape': (2, 3)}")   // escape
        expectUnparsable("{'descr': '<f4', 'fortran_order': False, 'shape': (0x2, 3)}")
        expectUnparsable("{'descr': '<f4', 'fortran_order': False, 'shape': (2 3)}")
        expectUnparsable("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)L}")
        expectUnparsable(String(repeating: "(", count: 100) + String(repeating: ")", count: 100))
        // 'L' suffixes are accepted in 1.0/2.0 files (Python 2 numpy), not in 3.0 ones.
        expectUnparsable("{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }", version: (3, 0))
        // A 3.0 header must be UTF-8.
        expectUnparsable("", version: (3, 0), headerBytes: Array("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x\u{FF}': 1}".utf8).map { $0 == 0xC3 ? 0xFF : $0 })
    }

    @Test func dictionaryContentErrors() {
        expectError(.headerNotADictionary, "(1, 2)")
        expectError(.headerNotADictionary, "'descr'")
        expectError(.missingKey("descr"), "{'fortran_order': False, 'shape': (2, 3), }")
        expectError(.missingKey("fortran_order"), "{'descr': '<f4', 'shape': (2, 3), }")
        expectError(.missingKey("shape"), "{'descr': '<f4', 'fortran_order': False}")
        expectError(.duplicateKey("shape"), "{'descr': '<f4', 'shape': (6,), 'fortran_order': False, 'shape': (2, 3), }")
        expectError(.unexpectedKey("extra"), Self.good.replacingOccurrences(of: "}", with: "'extra': None}"))
        expectError(.invalidValue(key: "shape", found: "[2, 3]"), "{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3]}")
        expectError(.invalidValue(key: "shape", found: "6"), "{'descr': '<f4', 'fortran_order': False, 'shape': (6)}")
        expectError(.invalidValue(key: "shape", found: "('a',)"), "{'descr': '<f4', 'fortran_order': False, 'shape': ('a',)}")
        expectError(.invalidValue(key: "fortran_order", found: "0"), "{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3)}")
        expectError(.invalidValue(key: "descr", found: "None"), "{'descr': None, 'fortran_order': False, 'shape': (2, 3)}")
        for descr in ["<f2", "<c8", "garbage", "|f4", "<U5", "f", "<f4 ", "", "<i16", "S3", "<M8[ns]"] {
            expectError(.unknownDescr(descr), "{'descr': '\(descr)', 'fortran_order': False, 'shape': (2, 3)}")
        }
        expectError(.objectDType("|O"), "{'descr': '|O', 'fortran_order': False, 'shape': (2, 3)}")
        expectError(.objectDType("<O8"), "{'descr': '<O8', 'fortran_order': False, 'shape': (2, 3)}")
        expectError(.structuredDType, "{'descr': [('a', '<f4'), ('b', '<f4')], 'fortran_order': False, 'shape': (3,)}")
        expectError(.negativeDimension(shape: [-2, 3]), "{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3)}")
        expectError(.shapeOverflow("(99999999999999999999,)"), "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}")
        expectError(.shapeOverflow("(4294967296, 4294967296)"), "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296)}")
        expectError(.shapeOverflow("(4611686018427387904,)"), "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904,)}")  // bytes overflow
    }

    @Test func dataSizeErrors() {
        expectError(.truncatedData(expectedBytes: 24, actualBytes: 20), Self.good, data: Array(Self.sixFloats.prefix(20)))
        expectError(.truncatedData(expectedBytes: 24, actualBytes: 0), Self.good, data: [])
        expectError(.trailingBytes(expectedBytes: 24, actualBytes: 25), Self.good, data: Self.sixFloats + [0])
        expectError(.trailingBytes(expectedBytes: 0, actualBytes: 24), "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3)}")
        expectError(.invalidBoolean(index: 2, byte: 2), "{'descr': '|b1', 'fortran_order': False, 'shape': (4,)}", data: [0, 1, 2, 1])
    }

    @Test func validVariantsNumpyAlsoAccepts() throws {
        let floats = Self.sixFloats
        // Keys in any order, no trailing comma, double quotes, newlines and tabs, 16-byte
        // alignment (no padding at all here), a Python 2 `L` suffix, `- ` sign spacing.
        for header in [
            "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}",
            "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2, 3,),}",
            "{'descr':'<f4','fortran_order':False,'shape':(2,3)}",
            "{\n\t'descr': '<f4',\n 'fortran_order': False,\n 'shape': ( 2 , 3 ) ,\n}  ",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }",
            "{'descr': '=f4', 'fortran_order': False, 'shape': (+2, 3), }",
            "{'descr': 'f4', 'fortran_order': False, 'shape': (2, 3), }",
        ] {
            let a = try NumpyArray(data: npyBytes(header, data: floats))
            #expect(try a.floatMatrix().scalars == [1, 2, 3, 4, 5, 6], "\(header)")
        }
        // One-byte types take any byte-order mark; `?` is numpy's bool char.
        for descr in ["|i1", "<i1", ">i1", "i1"] {
            let a = try NumpyArray(data: npyBytes("{'descr': '\(descr)', 'fortran_order': False, 'shape': (3,)}", data: [0xFF, 0, 5]))
            #expect(try a.integerLabels() == [-1, 0, 5])
        }
        let b = try NumpyArray(data: npyBytes("{'descr': '?', 'fortran_order': False, 'shape': (2,)}", data: [1, 0]))
        #expect(b.dtype == .bool)
        #expect(try b.integerLabels() == [1, 0])
        // Fortran order for a 1-D array is the same layout.
        let f = try NumpyArray(data: npyBytes("{'descr': '<f4', 'fortran_order': True, 'shape': (6,)}", data: floats))
        #expect(try f.floatMatrix().scalars == [1, 2, 3, 4, 5, 6])
        // A 2-D Fortran file: column-major storage.
        let g = try NumpyArray(data: npyBytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3)}", data: floats))
        #expect(try g.floatMatrix().scalars == [1, 3, 5, 2, 4, 6])
        // A non-ASCII string in a 3.0 header is fine where strings are allowed (it is then an unknown key).
        #expect(throws: NumpyFileError.unexpectedKey("é")) {
            try NumpyArray(data: npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'é': 1}", version: (3, 0), data: floats))
        }
        // The error for an out-of-range float64 names the row-major index in a Fortran file.
        let d: [Double] = [1, 2, 3, 1e300, 5, 6]  // storage index 3 = (1, 1) → row-major index 4
        let fd = npyBytes("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3)}",
                          data: d.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) })
        #expect(throws: NumpyFileError.valueOutOfFloat32Range(index: 4, value: 1e300)) { try NumpyArray(data: fd).floatMatrix() }
    }

    @Test func everyTruncationAndEveryHeaderByteFlipIsAnErrorNotACrash() throws {
        let file = try Data(contentsOf: try NpyManifest.fixtureURL("writer_f4.npy"))
        for n in 0..<file.count {
            #expect(throws: NumpyFileError.self) { try NumpyArray(data: file.prefix(n)) }
        }
        for i in 0..<128 {
            for value: UInt8 in [0x00, 0x20, 0x27, 0x28, 0x29, 0x2C, 0x7B, 0x7D, 0xFF, file[i] ^ 1] where value != file[i] {
                var m = file
                m[i] = value
                do {
                    let a = try NumpyArray(data: m)
                    // Rarely still valid (e.g. '<f4' → '=f4'); then it must read consistently.
                    #expect(try a.doubleValues().count == a.count)
                } catch is NumpyFileError {
                } catch {
                    Issue.record("byte \(i) = \(value): non-NumpyFileError \(error)")
                }
            }
        }
    }

    @Test func unreadableFile() {
        let url = URL(fileURLWithPath: "/nonexistent/dir/x.npy")
        #expect {
            try NumpyArray(contentsOf: url)
        } throws: { error in
            guard case NumpyFileError.unreadableFile(let path, _) = error else { return false }
            return path == url.path
        }
    }

    // MARK: writer

    @Test func writerBytesEqualNumpySave() throws {
        let manifest = try NpyManifest.load()
        for entry in manifest.writer {
            let reference = try Data(contentsOf: try NpyManifest.fixtureURL(entry.file))
            let ours: Data
            switch entry.dtype {
            case "float32":
                let values = entry.values.map { Float($0.double) }
                ours = try NumpyWriter.encode(values, shape: entry.shape)
                #expect(try NumpyWriter.encode(Tensor(values, shape: entry.shape)) == reference, "\(entry.file) (Tensor)")
            case "float64": ours = try NumpyWriter.encode(entry.values.map(\.double), shape: entry.shape)
            case "int64":
                ours = NumpyWriter.encode(labels: entry.values.map { if case .integer(let i) = $0 { i } else { -999 } })
            default: Issue.record("unexpected dtype \(entry.dtype)"); continue
            }
            #expect(ours == reference, "\(entry.file): \(ours.count) vs \(reference.count) bytes")
        }
        for h in manifest.headers {
            #expect(NumpyWriter.header(descr: h.descr, fortranOrder: false, shape: h.shape) == bytes(fromHex: h.hex), "\(h.shape)")
        }
        // Over 65 535 header bytes numpy switches to format 2.0; so do we.
        let big = NumpyWriter.header(descr: "<f4", fortranOrder: false, shape: Array(repeating: 1, count: manifest.bigHeader.rank))
        #expect(big.count == manifest.bigHeader.totalLength)
        #expect(Array(big.prefix(12)) == bytes(fromHex: manifest.bigHeader.prefixHex))
        let bigFile = try NumpyArray(data: Data(big + f4Bytes([7])))
        #expect(bigFile.formatVersion == 2 && bigFile.shape.count == manifest.bigHeader.rank)
    }

    @Test func writerRoundTripsThroughFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("npy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }

        let floats: [Float] = [0, -0.0, Float.leastNonzeroMagnitude, .greatestFiniteMagnitude, -.infinity, .nan, 0.1, -3.5]
        let url = dir.appendingPathComponent("f.npy")
        try NumpyWriter.write(floats, shape: [4, 2], to: url)
        let a = try NumpyArray(contentsOf: url)
        #expect(a.dtype == .float32 && a.shape == [4, 2] && a.formatVersion == 1)
        #expect(zip(try a.floatMatrix().scalars, floats).allSatisfy(sameBits))
        #expect(a.dataOffset % 64 == 0)

        let tensor = try Tensor(shape: [3, 5]) { buf in for i in 0..<15 { buf[i] = Float(i) * 0.25 - 1 } }
        try NumpyWriter.write(tensor, to: url)  // overwrites atomically
        #expect(try NumpyArray(contentsOf: url).floatMatrix() == tensor)

        let doubles: [Double] = [.pi, -0.0, Double.leastNonzeroMagnitude, .greatestFiniteMagnitude, .nan, 1e-300]
        try NumpyWriter.write(doubles, shape: [6], to: url)
        let d = try NumpyArray(contentsOf: url)
        #expect(d.dtype == .float64)
        #expect(zip(try d.doubleMatrix().values, doubles).allSatisfy(sameBits))

        let labels = [Int.min, -1, 0, 1, 42, Int.max]
        try NumpyWriter.write(labels: labels, to: url)
        let l = try NumpyArray(contentsOf: url)
        #expect(l.dtype == .int64 && l.shape == [6])
        #expect(try l.integerLabels() == labels)

        try NumpyWriter.write([Float](), shape: [0, 16], to: url)
        #expect(try NumpyArray(contentsOf: url).floatMatrix().shape == [0, 16])

        #expect(throws: NumpyFileError.countMismatch(shape: [2, 2], count: 3)) { try NumpyWriter.write([Float](repeating: 0, count: 3), shape: [2, 2], to: url) }
        #expect(throws: NumpyFileError.invalidShape([-1, 2])) { try NumpyWriter.write([Double](), shape: [-1, 2], to: url) }
        let missing = dir.appendingPathComponent("no/such/dir/x.npy")
        #expect {
            try NumpyWriter.write(labels: [1], to: missing)
        } throws: { error in
            guard case NumpyFileError.writeFailed(let path, _) = error else { return false }
            return path == missing.path
        }
        // Nothing but the one file was left behind (atomic writes clean up their temporaries).
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["f.npy"])
    }

    @Test func errorsDescribeThemselves() {
        let cases: [NumpyFileError] = [
            .badMagic, .unsupportedVersion(major: 4, minor: 0), .headerNotTerminated, .missingKey("shape"),
            .truncatedData(expectedBytes: 24, actualBytes: 20), .trailingBytes(expectedBytes: 24, actualBytes: 25),
            .unknownDescr("<c8"), .objectDType("|O"), .negativeDimension(shape: [-1]),
        ]
        for c in cases { #expect(!c.description.isEmpty) }
        #expect(NumpyFileError.unsupportedVersion(major: 4, minor: 0).description.contains("4.0"))
        #expect(NumpyFileError.truncatedData(expectedBytes: 24, actualBytes: 20).description.contains("24"))
        #expect(NumpyFileError.unknownDescr("<c8").description.contains("<c8"))
    }
}
