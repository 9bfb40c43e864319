import Foundation
import Testing
@testable import LoRTA

/// A safetensors file assembled by hand: 8-byte little-endian header length, `header` bytes,
/// then `data`. `length` overrides the header length field.
private func craftedFile(_ header: String, data: [UInt8] = [], length: UInt64? = nil) -> Data {
    craftedFile(bytes: Array(header.utf8), data: data, length: length)
}

private func craftedFile(bytes header: [UInt8], data: [UInt8] = [], length: UInt64? = nil) -> Data {
    var out = Data()
    withUnsafeBytes(of: (length ?? UInt64(header.count)).littleEndian) { out.append(contentsOf: $0) }
    out.append(contentsOf: header)
    out.append(contentsOf: data)
    return out
}

/// The error thrown by `SafeTensorsReader(data:)`, or nil when it accepts the bytes.
private func readerError(_ data: Data) -> SafeTensorsError? {
    do { _ = try SafeTensorsReader(data: data); return nil } catch let e as SafeTensorsError { return e } catch {
        Issue.record("unexpected error type \(error)")
        return nil
    }
}

private func fixtureURL(_ name: String) throws -> URL {
    try #require(Bundle.module.url(forResource: name, withExtension: "safetensors", subdirectory: "Fixtures/safetensors"))
}

/// A fresh empty directory under the system temporary directory.
private func makeTemporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("lorta-st-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: false)
    return url
}

@Suite("SafeTensors")
struct SafeTensorsTests {
    // MARK: Round trips

    @Test func f32RoundTripIsBitwise() throws {
        var rng = HalfPrecisionReference.SplitMix64(state: 1)
        var values = (0..<60).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())) }
        values += [0, -0.0, .infinity, -.infinity, .leastNonzeroMagnitude, .greatestFiniteMagnitude]
        let t = try Tensor(values, shape: [6, 11])
        var w = SafeTensorsWriter()
        try w.add("w", t)
        let r = try SafeTensorsReader(data: try w.serialized())
        let back = try r.tensor("w")
        #expect(back.shape == [6, 11])
        #expect(back.scalars.map(\.bitPattern) == values.map(\.bitPattern))  // NaNs included
        #expect(r.entry("w") == SafeTensorsEntry(name: "w", dtype: .f32, shape: [6, 11], byteRange: 0..<264))
    }

    @Test func f16RoundTrip() throws {
        // Exactly representable values (every 97th half pattern, NaN excluded) come back bitwise.
        let exact = stride(from: 0, through: 0xFFFF, by: 97).map { UInt16($0) }
            .filter { !Float16(bitPattern: $0).isNaN }.map { Float(Float16(bitPattern: $0)) }
        // General values come back as the nearest half, compared with Swift's Float16.
        var rng = HalfPrecisionReference.SplitMix64(state: 2)
        let general = (0..<500).map { _ in Float(Int64(truncatingIfNeeded: rng.next()) % 1_000_000) / Float(1 + rng.next() % 5000) }
        var w = SafeTensorsWriter()
        try w.add("exact", Tensor(exact), as: .f16)
        try w.add("general", Tensor(general, shape: [20, 25]), as: .f16)
        let r = try SafeTensorsReader(data: try w.serialized())
        #expect(r.entry("exact")?.dtype == .f16)
        #expect(r.entry("exact")?.byteRange.count == exact.count * 2)
        #expect(try r.tensor("exact").scalars.map(\.bitPattern) == exact.map(\.bitPattern))
        let back = try r.tensor("general")
        #expect(back.shape == [20, 25])
        #expect(back.scalars.map(\.bitPattern) == general.map { Float(Float16($0)).bitPattern })
        // And the error is within half-precision rounding: |x − q| ≤ ulp(q)/2 (finite values).
        for (x, q) in zip(general, back.scalars) where q.isFinite {
            #expect(abs(Double(x) - Double(q)) <= Double(Float16(q).ulp) / 2)
        }
    }

    @Test func bf16RoundTrip() throws {
        var exact: [Float] = []
        for b in stride(from: 0, through: 0xFFFF, by: 61) where b & 0x7FFF <= 0x7F80 {
            exact.append(Float(bitPattern: UInt32(b) << 16))
        }
        var rng = HalfPrecisionReference.SplitMix64(state: 3)
        var general: [Float] = []
        for _ in 0..<400 {
            let bits = UInt32(truncatingIfNeeded: rng.next()) & 0x7F7F_FFFF | 0x3000_0000
            general.append(Float(bitPattern: bits))
        }
        let expectedGeneral: [UInt32] = general.map { UInt32(HalfPrecisionReference.bf16Bits($0)) << 16 }
        var w = SafeTensorsWriter()
        try w.add("exact", Tensor(exact), as: .bf16)
        try w.add("general", Tensor(general), as: .bf16)
        let r = try SafeTensorsReader(data: try w.serialized())
        #expect(try r.tensor("exact").scalars.map(\.bitPattern) == exact.map(\.bitPattern))
        #expect(try r.tensor("general").scalars.map(\.bitPattern) == expectedGeneral)
    }

    @Test func f64RoundTrip() throws {
        let values: [Float] = [1.5, -3.25e-20, .pi, 7e30]
        var w = SafeTensorsWriter()
        try w.add("d", Tensor(values), as: .f64)
        let r = try SafeTensorsReader(data: try w.serialized())
        #expect(r.entry("d")?.byteRange == 0..<32)
        #expect(try r.tensor("d").scalars == values)
    }

    @Test func metadataRoundTrip() throws {
        var w = SafeTensorsWriter()
        w.metadata = ["format": "pt", "quote\"back\\slash": "line\nbreak\ttab \u{1} ünï ✓ 😀", "": "empty key"]
        try w.add("x", Tensor([1, 2]))
        let r = try SafeTensorsReader(data: try w.serialized())
        #expect(r.metadata == w.metadata)
        // Without metadata there is no __metadata__ key at all.
        var plain = SafeTensorsWriter()
        try plain.add("x", Tensor([1]))
        let bytes = try plain.serialized()
        #expect(String(decoding: bytes.dropFirst(8), as: UTF8.self).contains("__metadata__") == false)
        #expect(try SafeTensorsReader(data: bytes).metadata.isEmpty)
    }

    @Test func rawI64CopyAndTypedErrors() throws {
        let ids: [Int64] = [Int64.min, -1, 0, 1, 1 << 40, Int64.max]
        var raw = Data()
        for v in ids { withUnsafeBytes(of: v.littleEndian) { raw.append(contentsOf: $0) } }
        var w = SafeTensorsWriter()
        try w.add("a", Tensor([0.5]))
        try w.addRaw("ids", dtype: .i64, shape: [2, 3], bytes: raw)
        let r = try SafeTensorsReader(data: try w.serialized())
        #expect(r.entry("ids") == SafeTensorsEntry(name: "ids", dtype: .i64, shape: [2, 3], byteRange: 4..<52))
        let back = try r.rawBytes("ids")
        #expect(back == raw)
        #expect(back.startIndex == 0)
        #expect(throws: SafeTensorsError.notFloatConvertible(tensor: "ids", dtype: .i64)) { try r.tensor("ids") }
        #expect(throws: SafeTensorsError.tensorNotFound("nope")) { try r.tensor("nope") }
        #expect(throws: SafeTensorsError.tensorNotFound("nope")) { try r.rawBytes("nope") }
        #expect(r.entry("nope") == nil)
    }

    @Test func writerLayout() throws {
        var w = SafeTensorsWriter()
        try w.add("zeta", Tensor([1, 2, 3]))                // insertion order, not name order
        try w.add("alpha", Tensor([4]), as: .f16)
        try w.add("scalar", Tensor([9], shape: []))
        try w.add("empty", Tensor(zeros: [0, 4]))
        let bytes = try w.serialized()
        let n = Int(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        #expect(n % 8 == 0)
        let header = String(decoding: bytes[8..<(8 + n)], as: UTF8.self)
        #expect(header.hasPrefix("{\"zeta\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}"))
        let trimmed = header.reversed().drop(while: { $0 == " " })
        #expect(trimmed.first == "}")
        #expect(header.count - trimmed.count < 8)
        #expect(bytes.count == 8 + n + 12 + 2 + 4)
        let r = try SafeTensorsReader(data: bytes)
        #expect(r.names == ["zeta", "alpha", "scalar", "empty"])  // data-offset order
        #expect(r.entries.map(\.byteRange) == [0..<12, 12..<14, 14..<18, 18..<18])
        #expect(try r.tensor("scalar").shape == [])
        #expect(try r.tensor("scalar").scalars == [9])
        #expect(try r.tensor("empty").shape == [0, 4])
        #expect(w.tensorNames == ["zeta", "alpha", "scalar", "empty"])
    }

    @Test func writerRejectsBadInput() throws {
        var w = SafeTensorsWriter()
        try w.add("a", Tensor([1]))
        #expect(throws: SafeTensorsError.duplicateTensorName("a")) { try w.add("a", Tensor([2])) }
        #expect(throws: SafeTensorsError.duplicateTensorName("a")) { try w.addRaw("a", dtype: .u8, shape: [1], bytes: Data([1])) }
        #expect(throws: SafeTensorsError.reservedTensorName("__metadata__")) { try w.add("__metadata__", Tensor([2])) }
        #expect(throws: SafeTensorsError.unsupportedConversion(tensor: "b", dtype: .i32)) { try w.add("b", Tensor([2]), as: .i32) }
        #expect(throws: SafeTensorsError.byteCountMismatch(tensor: "c", expected: 24, actual: 23)) {
            try w.addRaw("c", dtype: .i32, shape: [2, 3], bytes: Data(count: 23))
        }
        #expect(throws: SafeTensorsError.invalidShape(tensor: "d")) { try w.addRaw("d", dtype: .u8, shape: [-1], bytes: Data()) }
        #expect(throws: SafeTensorsError.shapeOverflow(tensor: "e", shape: [1 << 62, 2])) {
            try w.addRaw("e", dtype: .u8, shape: [1 << 62, 2], bytes: Data())
        }
        #expect(throws: SafeTensorsError.shapeOverflow(tensor: "f", shape: [1 << 62])) {
            try w.addRaw("f", dtype: .i32, shape: [1 << 62], bytes: Data())
        }
        #expect(w.tensorNames == ["a"])  // failed adds leave nothing behind
        #expect(try SafeTensorsReader(data: try w.serialized()).names == ["a"])
    }

    @Test func convenienceLoadSave() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("adapters.safetensors")
        let tensors = ["b.weight": try Tensor([1, 2, 3, 4], shape: [2, 2]), "a.bias": Tensor([5, 6])]
        try SafeTensors.save(tensors, to: url, metadata: ["format": "pt"])
        let back = try SafeTensors.load(url)
        #expect(back == tensors)
        let r = try SafeTensorsReader(contentsOf: url)
        #expect(r.names == ["a.bias", "b.weight"])  // sorted
        #expect(r.metadata == ["format": "pt"])
    }

    // MARK: Python reference files

    @Test func readsPythonSafetensorsFile() throws {
        let r = try SafeTensorsReader(contentsOf: try fixtureURL("python_reference"))
        #expect(r.metadata == ["format": "np", "note": "ünïcode ✓ \"quoted\" \\ back\nslash"])
        #expect(Set(r.names) == ["weight_f32", "f16_source", "weight_f16", "expected_f16_as_f32", "bf16_source",
                                  "weight_bf16", "expected_bf16_as_f32", "weight_f64", "expected_f64_as_f32",
                                  "ids_i64", "mask_bool", "bytes_u8", "scalar", "empty"])
        #expect(r.entry("weight_f16")?.dtype == .f16)
        #expect(r.entry("weight_bf16")?.dtype == .bf16)
        #expect(r.entry("weight_bf16")?.shape == [2, 13])
        // F16/BF16/F64 widening agrees bitwise with numpy / ml_dtypes.
        for (stored, expected) in [("weight_f16", "expected_f16_as_f32"), ("weight_bf16", "expected_bf16_as_f32"),
                                   ("weight_f64", "expected_f64_as_f32")] {
            let got = try r.tensor(stored), want = try r.tensor(expected)
            #expect(got.shape == want.shape)
            #expect(got.scalars.map(\.bitPattern) == want.scalars.map(\.bitPattern), "\(stored)")
        }
        #expect(try r.tensor("weight_f32").shape == [3, 4])
        #expect(try r.tensor("scalar").shape == [])
        #expect(try r.tensor("scalar").scalars == [2.75])
        #expect(try r.tensor("empty").shape == [0, 3])
        let ids = try r.rawBytes("ids_i64").withUnsafeBytes { raw in
            (0..<6).map { Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)) }
        }
        #expect(ids == [-(1 << 40), 1 << 62, -1, 0, 7, Int64.max])
        #expect(try r.rawBytes("mask_bool") == Data([1, 0, 0, 1]))
        #expect(try r.rawBytes("bytes_u8") == Data([0, 1, 2, 3, 4]))
        #expect(throws: SafeTensorsError.notFloatConvertible(tensor: "mask_bool", dtype: .bool)) { try r.tensor("mask_bool") }
        #expect(throws: SafeTensorsError.notFloatConvertible(tensor: "ids_i64", dtype: .i64)) { _ = try SafeTensors.load(try fixtureURL("python_reference")) }
    }

    /// Our F16/BF16 narrowing of general values reproduces numpy's and ml_dtypes' bytes.
    @Test func writerMatchesPythonRounding() throws {
        let r = try SafeTensorsReader(contentsOf: try fixtureURL("python_reference"))
        var w = SafeTensorsWriter()
        try w.add("f16", r.tensor("f16_source"), as: .f16)
        try w.add("bf16", r.tensor("bf16_source"), as: .bf16)
        let mine = try SafeTensorsReader(data: try w.serialized())
        #expect(try mine.rawBytes("f16") == r.rawBytes("weight_f16"))
        #expect(try mine.rawBytes("bf16") == r.rawBytes("weight_bf16"))
    }

    /// Re-writing the Python files tensor by tensor, in their data order, gives the same bytes:
    /// same JSON layout, escaping, padding and offsets as the reference serializer. (The
    /// reference writes metadata keys in hash-map order and we sort them, so for the file with
    /// metadata the `__metadata__` member is compared parsed, the rest byte for byte.)
    @Test func rewritingPythonFileIsByteIdentical() throws {
        for name in ["python_reference", "python_unicode_name"] {
            let original = try Data(contentsOf: try fixtureURL(name))
            let r = try SafeTensorsReader(data: original)
            var w = SafeTensorsWriter()
            w.metadata = r.metadata
            for e in r.entries { try w.addRaw(e.name, dtype: e.dtype, shape: e.shape, bytes: r.rawBytes(e.name)) }
            let mine = try w.serialized()
            #expect(mine.count == original.count)
            #expect(mine.prefix(8) == original.prefix(8))
            func withoutMetadata(_ d: Data) -> String {
                let text = String(decoding: d.dropFirst(8), as: UTF8.self)
                guard text.hasPrefix("{\"__metadata__\":{"), let end = text.range(of: "},") else { return text }
                return "{" + text[end.upperBound...]
            }
            #expect(withoutMetadata(mine) == withoutMetadata(original), "\(name)")
            #expect(try SafeTensorsReader(data: mine).metadata == r.metadata)
            if r.metadata.isEmpty { #expect(mine == original, "\(name)") }
        }
        let u = try SafeTensorsReader(contentsOf: try fixtureURL("python_unicode_name"))
        #expect(u.names == ["naïve/λ.weight"])
        #expect(try u.tensor("naïve/λ.weight").scalars == [0, 1, 2, 3, 4, 5])
        #expect(u.metadata.isEmpty)
    }

    // MARK: Atomic writes

    @Test func writeIntoMissingDirectoryThrowsAndLeavesNothing() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let missing = dir.appendingPathComponent("no-such-dir")
        var w = SafeTensorsWriter()
        try w.add("x", Tensor([1]))
        #expect {
            try w.write(to: missing.appendingPathComponent("out.safetensors"))
        } throws: { error in
            guard case SafeTensorsError.fileSystem(_, let op, _)? = error as? SafeTensorsError else { return false }
            return op == "create"
        }
        #expect(!FileManager.default.fileExists(atPath: missing.path))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }

    @Test func existingFileReplacedOnlyOnSuccess() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("model.safetensors")
        let old = Data("previous contents".utf8)
        try old.write(to: url)

        var w = SafeTensorsWriter()
        try w.add("x", Tensor([1, 2, 3]))
        try w.write(to: url)
        #expect(try Data(contentsOf: url) == w.serialized())
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["model.safetensors"])

        // A failing write (the temporary name is too long for the file system) keeps the old file.
        let longName = String(repeating: "m", count: 240) + ".st"
        let longURL = dir.appendingPathComponent(longName)
        try old.write(to: longURL)
        #expect(throws: SafeTensorsError.self) { try w.write(to: longURL) }
        #expect(try Data(contentsOf: longURL) == old)

        // A write that fails at the rename (the target is a non-empty directory) leaves no
        // temporary file behind.
        let blocker = dir.appendingPathComponent("blocker")
        try FileManager.default.createDirectory(at: blocker, withIntermediateDirectories: false)
        try old.write(to: blocker.appendingPathComponent("inside"))
        #expect {
            try w.write(to: blocker)
        } throws: { error in
            guard case SafeTensorsError.fileSystem(_, let op, _)? = error as? SafeTensorsError else { return false }
            return op.hasPrefix("rename")
        }
        #expect(try Set(FileManager.default.contentsOfDirectory(atPath: dir.path)) == ["model.safetensors", longName, "blocker"])
        #expect(try Data(contentsOf: url) == w.serialized())
    }

    @Test func readerFileErrors() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect {
            try SafeTensorsReader(contentsOf: dir.appendingPathComponent("missing.safetensors"))
        } throws: { error in
            guard case SafeTensorsError.fileSystem(_, "open", _)? = error as? SafeTensorsError else { return false }
            return true
        }
        #expect(throws: SafeTensorsError.self) { try SafeTensorsReader(contentsOf: dir) }
        let empty = dir.appendingPathComponent("empty.safetensors")
        try Data().write(to: empty)
        #expect(throws: SafeTensorsError.fileTooShort(byteCount: 0)) { try SafeTensorsReader(contentsOf: empty) }
    }

    // MARK: Validation

    @Test func framingErrors() {
        #expect(readerError(Data()) == .fileTooShort(byteCount: 0))
        #expect(readerError(Data([1, 0, 0])) == .fileTooShort(byteCount: 3))
        #expect(readerError(craftedFile("{}", length: 3)) == .headerBeyondFile(headerLength: 3, fileSize: 10))
        #expect(readerError(craftedFile("{}", length: 100_000_001)) == .headerTooLarge(headerLength: 100_000_001))
        #expect(readerError(craftedFile("{}", length: .max)) == .headerTooLarge(headerLength: .max))
        #expect(readerError(craftedFile(bytes: [0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D])) == .headerNotUTF8)
        #expect(readerError(craftedFile(bytes: [0x7B, 0xC0, 0xAF, 0x7D])) == .headerNotUTF8)  // overlong '/'
        #expect(readerError(craftedFile("[1, 2]")) == .headerNotObject)
        #expect(readerError(craftedFile("\"text\"")) == .headerNotObject)
        #expect(readerError(craftedFile("")) == .headerNotJSON(offset: 0, reason: "unexpected end of header"))
    }

    @Test(arguments: [
        "{\"a\":", "{'a': 1}", "{\"a\": 1,}", "{\"a\": NaN}", "{\"a\": 01}", "{\"a\": \"\\ud800\"}",
        "{\"a\": \"\\x\"}", "{\"a\": \"tab\there\"}", "{\"a\": 1} x", "{\"a\": tru}", "{\"a\": -}", "{\"a\": 1.}",
        String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000),
        "{\"a\":" + String(repeating: "{\"b\":", count: 5000) + "1" + String(repeating: "}", count: 5001),
        "{} \0",
    ])
    func invalidJSON(header: String) {
        guard case .headerNotJSON? = readerError(craftedFile(header)) else {
            Issue.record("accepted or wrong error for \(header.prefix(30)): \(String(describing: readerError(craftedFile(header))))")
            return
        }
    }

    @Test func duplicateKeys() {
        let e = "{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}"
        #expect(readerError(craftedFile("{\"a\":\(e),\"a\":\(e)}", data: [1])) == .duplicateKey("a"))
        #expect(readerError(craftedFile("{\"a\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", data: [1]))
                == .duplicateKey("dtype"))
        #expect(readerError(craftedFile("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}")) == .duplicateKey("k"))
    }

    @Test func entryErrors() {
        func err(_ entry: String, data: [UInt8] = Array(repeating: 0, count: 8)) -> SafeTensorsError? {
            readerError(craftedFile("{\"t\":\(entry)}", data: data))
        }
        #expect(err("5") == .entryNotObject(tensor: "t"))
        #expect(err("[1]") == .entryNotObject(tensor: "t"))
        #expect(err("{\"shape\":[2],\"data_offsets\":[0,8]}") == .missingField(tensor: "t", field: "dtype"))
        #expect(err("{\"dtype\":\"F32\",\"data_offsets\":[0,8]}") == .missingField(tensor: "t", field: "shape"))
        #expect(err("{\"dtype\":\"F32\",\"shape\":[2]}") == .missingField(tensor: "t", field: "data_offsets"))
        #expect(err("{\"dtype\":\"F12\",\"shape\":[2],\"data_offsets\":[0,8]}") == .unknownDType(tensor: "t", dtype: "\"F12\""))
        #expect(err("{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}") == .unknownDType(tensor: "t", dtype: "\"f32\""))
        #expect(err("{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}") == .unknownDType(tensor: "t", dtype: "4"))
        for shape in ["[2.0]", "[-2]", "\"2\"", "[true]", "[2e0]", "[99999999999999999999]", "[[2]]", "null"] {
            #expect(err("{\"dtype\":\"F32\",\"shape\":\(shape),\"data_offsets\":[0,8]}") == .invalidShape(tensor: "t"), "\(shape)")
        }
        for offsets in ["[0]", "[0,4,8]", "[-1,7]", "[0,8.0]", "[0,99999999999999999999]", "{}", "[\"0\",\"8\"]"] {
            #expect(err("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":\(offsets)}") == .invalidDataOffsets(tensor: "t"), "\(offsets)")
        }
        #expect(err("{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,8]}")
                == .shapeOverflow(tensor: "t", shape: [4611686018427387904, 4]))
        #expect(err("{\"dtype\":\"F64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,8]}")   // 2^61 · 8 bytes
                == .shapeOverflow(tensor: "t", shape: [2305843009213693952]))
        #expect(err("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}") == .offsetsReversed(tensor: "t", begin: 8, end: 0))
        #expect(err("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}", data: [0, 0, 0, 0])
                == .byteCountMismatch(tensor: "t", expected: 8, actual: 4))
        #expect(err("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", data: [0, 0, 0, 0])
                == .tensorBeyondData(tensor: "t", end: 8, dataSize: 4))
        // Offsets near Int.max: no overflow, just out of bounds.
        #expect(err("{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[9223372036854775806,9223372036854775807]}")
                == .tensorBeyondData(tensor: "t", end: Int.max, dataSize: 8))
        #expect(err("{\"dtype\":\"U8\",\"shape\":[9223372036854775807],\"data_offsets\":[0,9223372036854775807]}")
                == .tensorBeyondData(tensor: "t", end: Int.max, dataSize: 8))
    }

    @Test func coverageErrors() {
        func entry(_ name: String, _ begin: Int, _ end: Int) -> String {
            "\"\(name)\":{\"dtype\":\"U8\",\"shape\":[\(end - begin)],\"data_offsets\":[\(begin),\(end)]}"
        }
        func err(_ entries: [String], dataSize: Int) -> SafeTensorsError? {
            readerError(craftedFile("{" + entries.joined(separator: ",") + "}", data: Array(repeating: 7, count: dataSize)))
        }
        #expect(err([entry("a", 0, 8), entry("b", 4, 12)], dataSize: 12) == .overlappingTensors("a", "b"))
        #expect(err([entry("b", 4, 12), entry("a", 0, 8)], dataSize: 12) == .overlappingTensors("a", "b"))
        #expect(err([entry("a", 0, 8), entry("b", 0, 8)], dataSize: 8) == .overlappingTensors("a", "b"))
        #expect(err([entry("a", 0, 10), entry("z", 5, 5)], dataSize: 10) == .overlappingTensors("a", "z"))
        #expect(err([entry("a", 0, 4), entry("b", 8, 12)], dataSize: 12) == .uncoveredBytes(4..<8))
        #expect(err([entry("a", 4, 8)], dataSize: 8) == .uncoveredBytes(0..<4))
        #expect(err([entry("a", 0, 4)], dataSize: 6) == .uncoveredBytes(4..<6))
        #expect(err([], dataSize: 3) == .uncoveredBytes(0..<3))
        // Accepted: exact cover, zero-size tensors at boundaries, empty file.
        #expect(err([entry("a", 0, 4), entry("e", 4, 4), entry("b", 4, 6), entry("f", 6, 6)], dataSize: 6) == nil)
        #expect(err([], dataSize: 0) == nil)
    }

    @Test func metadataErrors() {
        #expect(readerError(craftedFile("{\"__metadata__\":[1]}")) == .metadataNotObject)
        #expect(readerError(craftedFile("{\"__metadata__\":\"x\"}")) == .metadataNotObject)
        #expect(readerError(craftedFile("{\"__metadata__\":{\"a\":\"1\",\"k\":1}}")) == .metadataValueNotString(key: "k"))
        #expect(readerError(craftedFile("{\"__metadata__\":{\"k\":null}}")) == .metadataValueNotString(key: "k"))
        #expect(readerError(craftedFile("{\"__metadata__\":null}")) == nil)  // as the reference reads it
    }

    @Test func acceptsPaddingEscapesAndUnknownKeys() throws {
        let header = "{\"w\\u00e9\\n\" : {\"dtype\":\"F16\", \"shape\":[1,2], \"data_offsets\":[0,4], \"extra\": {\"x\": [1, 2.5]}},\n"
            + "\"__metadata__\": {\"k\": \"v\\\"\\u20ac\\ud83d\\ude00\"}}" + String(repeating: " ", count: 5)
        let r = try SafeTensorsReader(data: craftedFile(header, data: [0x00, 0x3C, 0x00, 0xC0]))
        #expect(r.names == ["wé\n"])
        #expect(r.metadata == ["k": "v\"€😀"])
        #expect(try r.tensor("wé\n").scalars == [1, -2])
    }

    @Test func dataSliceWithNonZeroStartIndex() throws {
        var w = SafeTensorsWriter()
        try w.add("x", Tensor([1, 2, 3]), as: .bf16)
        let file = try w.serialized()
        let padded = Data([9, 9, 9]) + file
        let slice = padded[3...]
        #expect(slice.startIndex == 3)
        let r = try SafeTensorsReader(data: slice)
        #expect(try r.tensor("x").scalars == [1, 2, 3])
        #expect(try r.rawBytes("x") == file.suffix(6))
    }

    @Test func errorDescriptionsNameTheTensor() {
        let cases: [SafeTensorsError] = [
            .entryNotObject(tensor: "enc.w"), .missingField(tensor: "enc.w", field: "shape"),
            .unknownDType(tensor: "enc.w", dtype: "\"F12\""), .invalidShape(tensor: "enc.w"),
            .invalidDataOffsets(tensor: "enc.w"), .shapeOverflow(tensor: "enc.w", shape: [1 << 62, 4]),
            .offsetsReversed(tensor: "enc.w", begin: 8, end: 0),
            .byteCountMismatch(tensor: "enc.w", expected: 8, actual: 4),
            .tensorBeyondData(tensor: "enc.w", end: 8, dataSize: 4), .overlappingTensors("enc.w", "dec.w"),
            .tensorNotFound("enc.w"), .notFloatConvertible(tensor: "enc.w", dtype: .i64),
            .duplicateTensorName("enc.w"), .reservedTensorName("enc.w"), .unsupportedConversion(tensor: "enc.w", dtype: .u8),
        ]
        for e in cases { #expect(e.description.contains("\"enc.w\""), "\(e)") }
        #expect(SafeTensorsError.overlappingTensors("enc.w", "dec.w").description.contains("\"dec.w\""))
        #expect(SafeTensorsError.uncoveredBytes(4..<8).description.contains("4..<8"))
    }

    /// Every truncation of a valid file is rejected, and random corruptions never crash: the
    /// reader either throws or yields tensors that decode.
    @Test func truncationAndCorruptionNeverCrash() throws {
        var w = SafeTensorsWriter()
        w.metadata = ["a": "b"]
        try w.add("x", Tensor([1, 2, 3, 4], shape: [2, 2]), as: .f16)
        try w.addRaw("i", dtype: .i32, shape: [3], bytes: Data(count: 12))
        try w.add("y", Tensor([5]), as: .f64)
        let file = try w.serialized()
        for n in 0..<file.count {
            #expect(readerError(file.prefix(n)) != nil, "prefix \(n) accepted")
        }
        var rng = HalfPrecisionReference.SplitMix64(state: 99)
        var accepted = 0
        for _ in 0..<3000 {
            var bytes = [UInt8](file)
            for _ in 0..<(1 + Int(rng.next() % 3)) {
                let i = Int(rng.next() % UInt64(min(bytes.count, 8 + 160)))  // mostly the header
                bytes[i] = UInt8(truncatingIfNeeded: rng.next())
            }
            if let r = try? SafeTensorsReader(data: Data(bytes)) {
                accepted += 1
                for e in r.entries {
                    #expect(try r.rawBytes(e.name).count == e.byteRange.count)
                    if e.dtype.isFloatConvertible { #expect(try r.tensor(e.name).count == e.elementCount) }
                }
            }
        }
        #expect(accepted > 0)  // flips inside string values or the data keep the file valid
    }
}
