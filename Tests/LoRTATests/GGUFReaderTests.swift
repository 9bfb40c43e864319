import Foundation
import Testing
@testable import LoRTA

// MARK: - Fixtures written by scripts/fixtures/make_gguf_fixtures.py (gguf-py's own reading)

/// A metadata value as the script recorded it: floats as bit patterns, arrays with their element
/// type and items (nested arrays recursive).
private final class FixtureValue: Decodable, Sendable {
    enum Scalar: Decodable {
        case bool(Bool), int(Int64), uint(UInt64), text(String)
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let b = try? c.decode(Bool.self) { self = .bool(b) }
            else if let i = try? c.decode(Int64.self) { self = .int(i) }
            else if let u = try? c.decode(UInt64.self) { self = .uint(u) }
            else { self = .text(try c.decode(String.self)) }
        }
        var int: Int64 { if case .int(let i) = self { return i }; return -1 }
        var uint: UInt64 {
            switch self {
            case .int(let i): return UInt64(i)
            case .uint(let u): return u
            default: return 0
            }
        }
    }
    let key: String?
    let type: String
    let value: Scalar?
    let bits: UInt64?
    let element_type: String?
    let values: [FixtureValue]?

    /// The GGUFValue the file must hold.
    var gguf: GGUFValue {
        switch type {
        case "uint8": return .uint8(UInt8(value!.uint))
        case "int8": return .int8(Int8(value!.int))
        case "uint16": return .uint16(UInt16(value!.uint))
        case "int16": return .int16(Int16(value!.int))
        case "uint32": return .uint32(UInt32(value!.uint))
        case "int32": return .int32(Int32(value!.int))
        case "uint64": return .uint64(value!.uint)
        case "int64": return .int64(value!.int)
        case "float32": return .float32(Float(bitPattern: UInt32(bits!)))
        case "float64": return .float64(Double(bitPattern: bits!))
        case "bool": if case .bool(let b) = value! { return .bool(b) }; return .string("?")
        case "string": if case .text(let s) = value! { return .string(s) }; return .string("?")
        default: return .array(ggufArray)
        }
    }

    var ggufArray: GGUFArray {
        let items = values ?? []
        switch element_type {
        case "uint8": return .uint8(items.map { UInt8($0.value!.uint) })
        case "int8": return .int8(items.map { Int8($0.value!.int) })
        case "uint16": return .uint16(items.map { UInt16($0.value!.uint) })
        case "int16": return .int16(items.map { Int16($0.value!.int) })
        case "uint32": return .uint32(items.map { UInt32($0.value!.uint) })
        case "int32": return .int32(items.map { Int32($0.value!.int) })
        case "uint64": return .uint64(items.map { $0.value!.uint })
        case "int64": return .int64(items.map { $0.value!.int })
        case "float32": return .float32(items.map { Float(bitPattern: UInt32($0.bits!)) })
        case "float64": return .float64(items.map { Double(bitPattern: $0.bits!) })
        case "bool": return .bool(items.map { if case .bool(let b) = $0.value! { return b }; return false })
        case "string": return .string(items.map { if case .text(let s) = $0.value! { return s }; return "?" })
        default: return .array(items.map(\.ggufArray))
        }
    }
}

private struct SmallFixtures: Decodable {
    struct File: Decodable {
        struct TensorEntry: Decodable {
            var name: String
            var type: String
            var type_number: UInt32
            var dimensions: [Int]
            var offset: Int
            var byte_count: Int
            var value_bits: [UInt32]
        }
        var file: String
        var version: UInt32
        var tensor_count: Int
        var kv_count: Int
        var alignment: Int
        var data_offset: Int
        var file_size: Int
        var metadata: [FixtureValue]
        var tensors: [TensorEntry]
    }
    var files: [File]
}

private struct ModelFixture: Decodable {
    struct Metadata: Decodable {
        var architecture: String
        var blockCount: Int
        var contextLength: Int
        var embeddingLength: Int
        var feedForwardLength: Int
        var headCount: Int
        var headCountKV: Int
        var ropeDimensionCount: Int
        var ropeFreqBaseBits: UInt32
        var rmsEpsilonBits: UInt32
        var tokenizerModel: String
        var tokenizerPre: String
        var addBOS: Bool
        var bosID: Int
        var eosID: Int
        var chatTemplate: String
        enum CodingKeys: String, CodingKey {
            case architecture = "general.architecture", blockCount = "llama.block_count"
            case contextLength = "llama.context_length", embeddingLength = "llama.embedding_length"
            case feedForwardLength = "llama.feed_forward_length", headCount = "llama.attention.head_count"
            case headCountKV = "llama.attention.head_count_kv", ropeDimensionCount = "llama.rope.dimension_count"
            case ropeFreqBaseBits = "llama.rope.freq_base_bits"
            case rmsEpsilonBits = "llama.attention.layer_norm_rms_epsilon_bits"
            case tokenizerModel = "tokenizer.ggml.model", tokenizerPre = "tokenizer.ggml.pre"
            case addBOS = "tokenizer.ggml.add_bos_token", bosID = "tokenizer.ggml.bos_token_id"
            case eosID = "tokenizer.ggml.eos_token_id", chatTemplate = "tokenizer.chat_template"
        }
    }
    struct Row: Decodable { var tensor: String; var row: Int }
    struct Dequantized: Decodable { var checksum: String; var sum: Double; var shape: [Int] }
    var file_size: Int
    var version: UInt32
    var tensor_count: Int
    var kv_count: Int
    var alignment: Int
    var data_offset: Int
    var keys: [String]
    var metadata: Metadata
    var token_count: Int
    var merge_count: Int
    var tokens_sample: [String: String]
    var merges_sample: [String: String]
    var token_types_first: [Int32]
    var token_types_sum: Int
    var tensor_types: [String: Int]
    var tensor_info_fnv1a64: String
    var rows: [Row]
    var dequantized: [String: Dequantized]
}

private func ggufFixtureURL(_ name: String, _ ext: String) throws -> URL {
    try #require(Bundle.module.url(forResource: name, withExtension: ext, subdirectory: "Fixtures/gguf"),
                 "fixture \(name).\(ext) missing from the test bundle")
}

private func smallFixtures() throws -> SmallFixtures {
    try JSONDecoder().decode(SmallFixtures.self, from: Data(contentsOf: ggufFixtureURL("small", "json")))
}

private func smallFileBytes() throws -> Data {
    try Data(contentsOf: ggufFixtureURL("small_v3", "gguf"))
}

/// The repository root, found from this file's path (Tests/LoRTATests/<file>).
private let ggufRepositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The SmolLM2 GGUF of the fetched assets; tests fail (never skip) when it is absent.
private func smolLM2URL() throws -> URL {
    let url = ggufRepositoryRoot.appendingPathComponent("assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    try #require(FileManager.default.fileExists(atPath: url.path),
                 "asset \(url.path) is missing: run scripts/fetch-assets.sh first")
    return url
}

/// The error `GGUFReader(data:)` throws, or nil when it accepts the bytes.
private func readerError(_ data: Data) -> GGUFError? {
    do { _ = try GGUFReader(data: data); return nil } catch let e as GGUFError { return e } catch {
        Issue.record("unexpected error type \(error)")
        return nil
    }
}

/// A fresh empty directory under the system temporary directory.
private func makeGGUFTemporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("lorta-gguf-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: false)
    return url
}

private func fnv1a64(_ bytes: some Sequence<UInt8>) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
    return h
}

// MARK: - Hand-made files (written byte by byte here, independently of GGUFWriter)

private struct CraftedGGUF {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func string(_ s: String) { u64(UInt64(s.utf8.count)); bytes += s.utf8 }
    mutating func header(version: UInt32 = 3, tensors: UInt64, kvs: UInt64) {
        bytes += Array("GGUF".utf8); u32(version); u64(tensors); u64(kvs)
    }
    mutating func keyU32(_ key: String, _ v: UInt32) { string(key); u32(4); u32(v) }
    mutating func keyString(_ key: String, _ v: String) { string(key); u32(8); string(v) }
    mutating func tensor(_ name: String, dims: [UInt64], type: UInt32, offset: UInt64) {
        string(name); u32(UInt32(dims.count)); dims.forEach { u64($0) }; u32(type); u64(offset)
    }
    mutating func pad(_ alignment: Int = 32) { while bytes.count % alignment != 0 { bytes.append(0) } }
    mutating func zeros(_ n: Int) { bytes += [UInt8](repeating: 0, count: n) }
    var data: Data { Data(bytes) }

    /// A valid file: 2 metadata entries, tensors "a" (F32 [4]) at 0 and "b" (Q4_0 [32]) at 32.
    static func valid(alignment: UInt32? = nil, tensorB: (dims: [UInt64], type: UInt32, offset: UInt64) = ([32], 2, 32)) -> CraftedGGUF {
        var f = CraftedGGUF()
        f.header(tensors: 2, kvs: alignment == nil ? 2 : 3)
        f.keyString("general.architecture", "llama")
        f.keyU32("test.count", 7)
        if let alignment { f.keyU32("general.alignment", alignment) }
        f.tensor("a", dims: [4], type: 0, offset: 0)
        f.tensor("b", dims: tensorB.dims, type: tensorB.type, offset: tensorB.offset)
        f.pad(Int(alignment ?? 32))
        f.zeros(64)
        return f
    }
}

// MARK: - Tests

@Suite("GGUF reader and writer", .serialized)
struct GGUFReaderTests {
    // MARK: gguf-py's files

    @Test(arguments: ["small_v3", "small_align64"])
    func readsGGUFPyFileExactly(name: String) throws {
        let expected = try #require(try smallFixtures().files.first { $0.file == name + ".gguf" })
        let url = try ggufFixtureURL(name, "gguf")
        let reader = try GGUFReader(contentsOf: url)
        #expect(reader.version == expected.version)
        #expect(reader.tensorInfos.count == expected.tensor_count)
        #expect(reader.metadata.count == expected.kv_count)
        #expect(reader.alignment == expected.alignment)
        #expect(reader.dataOffset == expected.data_offset)
        #expect(reader.fileSize == expected.file_size)
        #expect(reader.metadata.keys == expected.metadata.map { $0.key! })
        for item in expected.metadata {
            let got = try #require(reader.metadata[item.key!])
            #expect(got.isBitwiseIdentical(to: item.gguf), "\(item.key!): \(got) vs \(item.gguf)")
        }
        #expect(reader.tensorNames == expected.tensors.map(\.name))
        let file = try Data(contentsOf: url)
        for t in expected.tensors {
            let info = try #require(reader.tensorInfo(named: t.name))
            #expect(info.type.name == t.type && info.type.rawValue == t.type_number)
            #expect(info.dimensions == t.dimensions)
            #expect(info.shape == Array(t.dimensions.reversed()))
            #expect(info.offset == t.offset && info.byteCount == t.byte_count)
            let tensor = try reader.tensor(named: t.name)
            #expect(tensor.shape == info.shape)
            #expect(tensor.scalars.map(\.bitPattern) == t.value_bits, "\(t.name) differs from gguf-py's dequantization")
            let raw = try reader.rawBytes(of: t.name)
            let start = expected.data_offset + t.offset
            #expect(raw.count == t.byte_count)
            #expect(raw == file[start..<(start + t.byte_count)])
            try reader.withUnsafeBytes(of: t.name) { #expect(Data($0) == raw) }
        }
        // Reading the same bytes from memory gives the same result.
        let fromData = try GGUFReader(data: file)
        #expect(fromData.metadata.isBitwiseIdentical(to: reader.metadata))
        #expect(fromData.tensorInfos == reader.tensorInfos)
    }

    /// Version 2 has the same layout: the same bytes with the version patched read the same.
    @Test func readsVersionTwo() throws {
        var bytes = try smallFileBytes()
        bytes[4] = 2
        let v2 = try GGUFReader(data: bytes)
        let v3 = try GGUFReader(data: try smallFileBytes())
        #expect(v2.version == 2)
        #expect(v2.metadata.isBitwiseIdentical(to: v3.metadata))
        #expect(v2.tensorInfos == v3.tensorInfos)
        #expect(try v2.tensor(named: "q4_1.matrix").scalars == v3.tensor(named: "q4_1.matrix").scalars)
    }

    /// GGUFWriter lays a file out exactly as gguf-py does: re-writing its file reproduces it.
    @Test(arguments: ["small_v3", "small_align64"])
    func writerReproducesGGUFPyFileByteForByte(name: String) throws {
        let original = try Data(contentsOf: ggufFixtureURL(name, "gguf"))
        let reader = try GGUFReader(data: original)
        var writer = GGUFWriter()
        writer.metadata = reader.metadata
        for info in reader.tensorInfos {
            try writer.addRaw(info.name, type: info.type, shape: info.shape, bytes: try reader.rawBytes(of: info.name))
        }
        let written = try writer.serialized()
        #expect(written.count == original.count)
        #expect(written == original)
    }

    // MARK: Writer round trips

    /// Metadata of every value type (nested and empty arrays, NaN payloads, -0) and tensors of
    /// every storage path come back bitwise.
    @Test func writerRoundTripOfEveryValueTypeAndTensorKind() throws {
        var w = GGUFWriter()
        let nan = Float(bitPattern: 0x7FA0_1234), nan64 = Double(bitPattern: 0xFFF8_0000_0000_0ABC)
        let pairs: [(String, GGUFValue)] = [
            ("general.architecture", .string("llama")),
            ("u8", .uint8(200)), ("i8", .int8(-100)), ("u16", .uint16(60000)), ("i16", .int16(-30000)),
            ("u32", .uint32(.max)), ("i32", .int32(.min)), ("f32", .float32(nan)), ("f32.zero", .float32(-0.0)),
            ("bool", .bool(true)), ("string", .string("日本語 \u{0}🦙")), ("empty", .string("")),
            ("u64", .uint64(.max)), ("i64", .int64(.min)), ("f64", .float64(nan64)),
            ("a.u8", .array(.uint8([1, 2, 255]))), ("a.i8", .array(.int8([-128, 127]))),
            ("a.u16", .array(.uint16([65535]))), ("a.i16", .array(.int16([-1, 1]))),
            ("a.u32", .array(.uint32([0, .max]))), ("a.i32", .array(.int32([.min, .max]))),
            ("a.f32", .array(.float32([1.5, -.infinity, nan]))), ("a.bool", .array(.bool([false, true]))),
            ("a.string", .array(.string(["", "Ġthe", "é"]))), ("a.u64", .array(.uint64([.max]))),
            ("a.i64", .array(.int64([.min]))), ("a.f64", .array(.float64([-0.0, Double(bitPattern: 0x0000_0000_0000_1234)]))),
            ("a.empty", .array(.float64([]))),
            ("a.nested", .array(.array([.int32([1, 2]), .string(["x"]), .array([.bool([true]), .array([])]), .uint8([])]))),
        ]
        for (k, v) in pairs { w.metadata[k] = v }
        w.alignment = 64
        #expect(w.metadata.keys.last == "general.alignment")
        var rng = HalfPrecisionReference.SplitMix64(state: 5)
        let values = (0..<96).map { _ in Float(Int64(truncatingIfNeeded: rng.next()) % 100_000) / 977 }
        try w.add("f32", Tensor(values, shape: [3, 32]))
        try w.add("f16", Tensor(values, shape: [2, 3, 16]), as: .f16)
        try w.add("bf16", Tensor(values, shape: [96]), as: .bf16)
        let q8 = (0..<(3 * 34)).map { UInt8(truncatingIfNeeded: $0 &* 37) }
        try w.addRaw("q8_0", type: .q8_0, shape: [3, 32], bytes: Data(q8))
        let q2k = [UInt8](repeating: 9, count: 84)
        try w.addRaw("q2_k", type: .q2_K, shape: [1, 1, 1, 256], bytes: Data(q2k))
        try w.addRaw("empty", type: .f32, shape: [0, 4], bytes: Data())
        #expect(w.tensorNames == ["f32", "f16", "bf16", "q8_0", "q2_k", "empty"])

        let r = try GGUFReader(data: try w.serialized())
        #expect(r.version == 3)
        #expect(r.alignment == 64)
        #expect(r.metadata.keys == pairs.map(\.0) + ["general.alignment"])
        for (k, v) in pairs { #expect(r.metadata[k]?.isBitwiseIdentical(to: v) == true, "\(k)") }
        #expect(r.tensorInfos.allSatisfy { $0.offset % 64 == 0 })
        #expect(r.dataOffset % 64 == 0)
        #expect(try r.tensor(named: "f32").scalars == values)
        #expect(try r.tensor(named: "f16").shape == [2, 3, 16])
        #expect(try r.tensor(named: "f16").scalars.map(\.bitPattern) == values.map { HalfPrecision.float(fromF16Bits: HalfPrecision.f16Bits(from: $0)).bitPattern })
        #expect(try r.tensor(named: "bf16").scalars == values.map { HalfPrecision.float(fromBF16Bits: HalfPrecision.bf16Bits(from: $0)) })
        #expect(try Array(r.rawBytes(of: "q8_0")) == q8)
        #expect(r.tensorInfo(named: "q8_0")?.dimensions == [32, 3])
        #expect(r.tensorInfo(named: "q2_k")?.dimensions == [256, 1, 1, 1])
        #expect(try Array(r.rawBytes(of: "q2_k")) == q2k)
        #expect(try r.tensor(named: "empty").shape == [0, 4])
        // Q2_K is a valid type this library does not decode: an error naming it, never garbage.
        #expect(throws: GGUFError.cannotDequantize(tensor: "q2_k", type: .q2_K)) { try r.tensor(named: "q2_k") }
        // Q8_0 through the reader equals the C decoder on the same bytes.
        let q8Values = try r.tensor(named: "q8_0").scalars
        for b in 0..<3 {
            let d = HalfPrecision.float(fromF16Bits: UInt16(q8[b * 34]) | UInt16(q8[b * 34 + 1]) << 8)
            for j in 0..<32 { #expect(q8Values[b * 32 + j] == Float(Int8(bitPattern: q8[b * 34 + 2 + j])) * d) }
        }
    }

    @Test func writeIsAtomicAndLeavesNothingBehindOnFailure() throws {
        let dir = try makeGGUFTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var w = GGUFWriter()
        w.metadata["general.architecture"] = .string("llama")
        try w.add("x", Tensor([1, 2, 3, 4], shape: [2, 2]))
        let url = dir.appendingPathComponent("model.gguf")
        try w.write(to: url)
        #expect(try Data(contentsOf: url) == w.serialized())
        #expect(try GGUFReader(contentsOf: url).tensor(named: "x").scalars == [1, 2, 3, 4])
        // An invalid alignment: the existing file stays as it was and no temporary file remains.
        var bad = w
        bad.alignment = 24
        #expect(throws: GGUFError.invalidAlignment(24)) { try bad.write(to: url) }
        #expect(try Data(contentsOf: url) == w.serialized())
        // A missing directory: a file-system error, nothing created.
        let missing = dir.appendingPathComponent("no/such/dir/model.gguf")
        #expect { try w.write(to: missing) } throws: { error in
            guard case GGUFError.fileSystem(_, let op, _) = error else { return false }
            return op == "create"
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["model.gguf"])
        // Opening a missing file or a directory.
        #expect { try GGUFReader(contentsOf: dir.appendingPathComponent("none.gguf")) } throws: { error in
            if case GGUFError.fileSystem = error { return true }
            return false
        }
    }

    @Test func writerRefusesInvalidInput() throws {
        var w = GGUFWriter()
        try w.add("t", Tensor([1, 2], shape: [2]))
        #expect(throws: GGUFError.duplicateTensorName("t")) { try w.add("t", Tensor([1], shape: [1])) }
        #expect(throws: GGUFError.emptyName) { try w.add("", Tensor([1], shape: [1])) }
        let long = String(repeating: "x", count: 64)
        #expect(throws: GGUFError.tensorNameTooLong(long)) { try w.add(long, Tensor([1], shape: [1])) }
        try w.add(String(repeating: "y", count: 63), Tensor([1], shape: [1]))
        #expect(throws: GGUFError.invalidShape(tensor: "s", shape: [])) { try w.add("s", Tensor(zeros: [])) }
        #expect(throws: GGUFError.invalidShape(tensor: "s", shape: [1, 1, 1, 1, 2])) { try w.add("s", Tensor(zeros: [1, 1, 1, 1, 2])) }
        #expect(throws: GGUFError.invalidShape(tensor: "s", shape: [-1, 32])) { try w.addRaw("s", type: .q4_0, shape: [-1, 32], bytes: Data()) }
        #expect(throws: GGUFError.unsupportedConversion(tensor: "s", type: .q4_0)) { try w.add("s", Tensor(zeros: [32]), as: .q4_0) }
        #expect(throws: GGUFError.rowNotMultipleOfBlockSize(tensor: "s", type: .q4_0, rowLength: 16, blockElements: 32)) {
            try w.addRaw("s", type: .q4_0, shape: [2, 16], bytes: Data(count: 18))
        }
        #expect(throws: GGUFError.byteCountMismatch(tensor: "s", expected: 36, actual: 35)) {
            try w.addRaw("s", type: .q4_0, shape: [2, 32], bytes: Data(count: 35))
        }
        #expect(throws: GGUFError.sizeOverflow(tensor: "s", dimensions: [1 << 62, 1 << 62], type: .f32)) {
            try w.addRaw("s", type: .f32, shape: [1 << 62, 1 << 62], bytes: Data())
        }
        var m = w
        m.metadata[""] = .uint8(1)
        #expect(throws: GGUFError.emptyName) { try m.serialized() }
        m = w
        m.metadata["general.alignment"] = .uint64(32)
        #expect(throws: GGUFError.alignmentNotUInt32(.uint64)) { try m.serialized() }
        for a in [0, 4, 24, 1 << 33] {
            m = w
            m.alignment = a
            #expect(throws: GGUFError.invalidAlignment(Int(UInt32(clamping: a)))) { try m.serialized() }
        }
        m = w
        var deep = GGUFArray.uint8([1])
        for _ in 0..<GGUF.maximumArrayNesting { deep = .array([deep]) }
        m.metadata["deep"] = .array(deep)
        #expect(throws: GGUFError.arrayNestingTooDeep(key: "deep", limit: GGUF.maximumArrayNesting)) { try m.serialized() }
        // One level less is written and read back.
        if case .array(let inner) = deep, let first = inner.first { m.metadata["deep"] = .array(first) }
        let r = try GGUFReader(data: try m.serialized())
        #expect(r.metadata["deep"] == m.metadata["deep"])
    }

    @Test func metadataSubscriptIsAnOrderedDictionary() throws {
        var m = GGUFMetadata([("a", .uint8(1)), ("b", .uint8(2)), ("c", .uint8(3))])
        m["b"] = .string("two")
        #expect(m.keys == ["a", "b", "c"] && m["b"] == .string("two"))
        m["a"] = nil
        #expect(m.keys == ["b", "c"] && m["a"] == nil && m["c"] == .uint8(3))
        m["d"] = .bool(false)
        #expect(m.keys == ["b", "c", "d"])
        #expect(m.map(\.key) == ["b", "c", "d"])
        #expect(m.contains(key: "c") && !m.contains(key: "a"))
    }

    @Test func typedLookupsNameTheProblem() throws {
        let m = GGUFMetadata([("s", .string("x")), ("big", .uint64(.max)), ("n", .uint32(9)), ("f", .float32(0.5)),
                              ("d", .float64(0.25)), ("t", .array(.string(["a"]))), ("i", .array(.int32([1, -2]))),
                              ("u", .array(.uint64([.max]))), ("b", .bool(true)), ("fa", .array(.float32([2])))])
        #expect(try m.string(forKey: "s") == "x")
        #expect(try m.int(forKey: "n") == 9)
        #expect(try m.float(forKey: "f") == 0.5 && m.float(forKey: "d") == 0.25 && m.double(forKey: "f") == 0.5)
        #expect(try m.bool(forKey: "b"))
        #expect(try m.stringArray(forKey: "t") == ["a"])
        #expect(try m.int32Array(forKey: "i") == [1, -2] && m.intArray(forKey: "i") == [1, -2])
        #expect(try m.floatArray(forKey: "fa") == [2])
        #expect(throws: GGUFError.keyNotFound("missing")) { try m.int(forKey: "missing") }
        #expect(throws: GGUFError.typeMismatch(key: "s", expected: "an integer", actual: "a string")) { try m.int(forKey: "s") }
        #expect(throws: GGUFError.valueOutOfRange(key: "big", value: "18446744073709551615")) { try m.int(forKey: "big") }
        #expect(throws: GGUFError.typeMismatch(key: "i", expected: "an array of strings", actual: "an array of int32")) {
            try m.stringArray(forKey: "i")
        }
        #expect(throws: GGUFError.valueOutOfRange(key: "u", value: "an element beyond Int")) { try m.intArray(forKey: "u") }
        #expect(GGUFValue.uint64(.max).int == nil && GGUFValue.int8(-3).int == -3 && GGUFValue.string("x").int == nil)
        let reader = try GGUFReader(data: try smallFileBytes())
        #expect(throws: GGUFError.tensorNotFound("nope")) { try reader.tensor(named: "nope") }
        #expect(throws: GGUFError.tensorNotFound("nope")) { try reader.rawBytes(of: "nope") }
        #expect(reader.tensorInfo(named: "nope") == nil)
    }

    /// rawBytes is a slice of the mapping: no copy, alive without the reader, copy-on-write.
    @Test func rawBytesShareTheMappingAndAreCopyOnWrite() throws {
        let url = try ggufFixtureURL("small_v3", "gguf")
        var slice: Data
        var expected: Data
        do {
            let reader = try GGUFReader(contentsOf: url)
            slice = try reader.rawBytes(of: "q4_1.matrix")
            expected = Data(slice)
            let range = reader.fileRange(of: try #require(reader.tensorInfo(named: "q4_1.matrix")))
            #expect(slice.startIndex == range.lowerBound && slice.count == range.count)
            var mutated = slice
            mutated[mutated.startIndex] ^= 0xFF
            #expect(try reader.rawBytes(of: "q4_1.matrix") == expected)
            #expect(try reader.tensor(named: "q4_1.matrix").scalars.map(\.bitPattern) ==
                    smallFixtures().files[0].tensors.first { $0.name == "q4_1.matrix" }!.value_bits)
        }
        #expect(slice == expected)  // the reader is gone; the mapping lives on
    }

    // MARK: The real model

    @Test func opensSmolLM2() throws {
        let expected = try JSONDecoder().decode(ModelFixture.self, from: Data(contentsOf: ggufFixtureURL("smollm2", "json")))
        let reader = try GGUFReader(contentsOf: try smolLM2URL())
        #expect(reader.fileSize == expected.file_size)
        #expect(reader.version == 3)
        #expect(reader.tensorInfos.count == 272 && expected.tensor_count == 272)
        #expect(reader.metadata.count == 33 && expected.kv_count == 33)
        #expect(reader.alignment == expected.alignment && reader.dataOffset == expected.data_offset)
        #expect(reader.metadata.keys == expected.keys)
        let m = reader.metadata, e = expected.metadata
        #expect(try m.string(forKey: "general.architecture") == e.architecture)
        #expect(try m.int(forKey: "llama.block_count") == 30 && e.blockCount == 30)
        #expect(try m.int(forKey: "llama.embedding_length") == 576 && e.embeddingLength == 576)
        #expect(try m.int(forKey: "llama.attention.head_count") == 9 && e.headCount == 9)
        #expect(try m.int(forKey: "llama.attention.head_count_kv") == 3 && e.headCountKV == 3)
        #expect(try m.int(forKey: "llama.context_length") == e.contextLength)
        #expect(try m.int(forKey: "llama.feed_forward_length") == e.feedForwardLength)
        #expect(try m.int(forKey: "llama.rope.dimension_count") == e.ropeDimensionCount)
        #expect(try m.float(forKey: "llama.rope.freq_base") == 100_000)
        #expect(try m.float(forKey: "llama.rope.freq_base").bitPattern == e.ropeFreqBaseBits)
        #expect(try m.float(forKey: "llama.attention.layer_norm_rms_epsilon").bitPattern == e.rmsEpsilonBits)
        #expect(try m.string(forKey: "tokenizer.ggml.model") == e.tokenizerModel)
        #expect(try m.string(forKey: "tokenizer.ggml.pre") == e.tokenizerPre)
        #expect(try m.bool(forKey: "tokenizer.ggml.add_bos_token") == e.addBOS)
        #expect(try m.int(forKey: "tokenizer.ggml.bos_token_id") == e.bosID)
        #expect(try m.int(forKey: "tokenizer.ggml.eos_token_id") == e.eosID)
        #expect(try m.string(forKey: "tokenizer.chat_template") == e.chatTemplate)
        let tokens = try m.stringArray(forKey: "tokenizer.ggml.tokens")
        let merges = try m.stringArray(forKey: "tokenizer.ggml.merges")
        #expect(tokens.count == 49_152 && expected.token_count == 49_152)
        #expect(merges.count == 48_900 && expected.merge_count == 48_900)
        for (i, s) in expected.tokens_sample { #expect(tokens[Int(i)!] == s) }
        for (i, s) in expected.merges_sample { #expect(merges[Int(i)!] == s) }
        let types = try m.int32Array(forKey: "tokenizer.ggml.token_type")
        #expect(Array(types.prefix(20)) == expected.token_types_first)
        #expect(types.reduce(0) { $0 + Int($1) } == expected.token_types_sum)
        // Every tensor info (name, type, dims, offset) as gguf-py reads it, through one hash.
        let lines = reader.tensorInfos.map { "\($0.name)|\($0.type.name)|\($0.dimensions.map(String.init).joined(separator: ","))|\($0.offset)\n" }.joined()
        #expect(String(fnv1a64(lines.utf8)) == expected.tensor_info_fnv1a64)
        var counts: [String: Int] = [:]
        for t in reader.tensorInfos { counts[t.type.name, default: 0] += 1 }
        #expect(counts == expected.tensor_types)
        #expect(reader.tensorInfo(named: "output.weight") == nil)
        let embedding = try #require(reader.tensorInfo(named: "token_embd.weight"))
        #expect(embedding.type == .q8_0 && embedding.shape == [49_152, 576] && embedding.dimensions == [576, 49_152])
        let gate = try #require(reader.tensorInfo(named: "blk.0.ffn_gate.weight"))
        #expect(gate.type == .q4_1 && gate.shape == [1536, 576])
        #expect(gate.rowCount == 1536 && gate.rowLength == 576 && gate.rowByteCount == 18 * 20)
        #expect(try reader.rawBytes(of: "token_embd.weight").count == 49_152 * 18 * 34)
    }

    /// Dequantized tensors of the real model equal gguf-py's: selected rows bit for bit and a
    /// checksum of every value.
    @Test func smolLM2DequantizesAsGGUFPy() throws {
        let expected = try JSONDecoder().decode(ModelFixture.self, from: Data(contentsOf: ggufFixtureURL("smollm2", "json")))
        let rowBits = try Data(contentsOf: ggufFixtureURL("smollm2_rows", "f32")).withUnsafeBytes { raw in
            (0..<(raw.count / 4)).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self) }
        }
        let reader = try GGUFReader(contentsOf: try smolLM2URL())
        var next = 0
        for name in ["blk.0.attn_q.weight", "token_embd.weight"] {
            let tensor = try reader.tensor(named: name)
            let facts = try #require(expected.dequantized[name])
            #expect(tensor.shape == facts.shape)
            let cols = tensor.shape[1]
            tensor.withUnsafeBufferPointer { values in
                var checksum: UInt64 = 0
                var sum = 0.0
                for i in 0..<values.count {
                    checksum = checksum &+ UInt64(i + 1) &* UInt64(values[i].bitPattern)
                    sum += Double(values[i])
                }
                #expect(String(checksum) == facts.checksum, "\(name) checksum")
                #expect(abs(sum - facts.sum) <= 1e-6 * max(1, abs(facts.sum)), "\(name) sum")
                for r in expected.rows where r.tensor == name {
                    let got = (0..<cols).map { values[r.row * cols + $0].bitPattern }
                    #expect(got == Array(rowBits[(next * cols)..<((next + 1) * cols)]), "\(name) row \(r.row)")
                    next += 1
                }
                #expect(values.count == facts.shape.reduce(1, *))
            }
        }
        #expect(next * 576 == rowBits.count)
    }

    // MARK: Malformed files: each problem its own error

    @Test func craftedBaselineIsValid() throws {
        let r = try GGUFReader(data: CraftedGGUF.valid().data)
        #expect(r.tensorNames == ["a", "b"] && r.metadata.count == 2)
        #expect(r.tensorInfo(named: "b")?.offset == 32)
        #expect(try r.tensor(named: "b").scalars == [Float](repeating: 0, count: 32))
    }

    @Test func headerErrors() {
        var f = CraftedGGUF.valid()
        f.bytes[0] = UInt8(ascii: "X")
        #expect(readerError(f.data) == .badMagic(Array("XGUF".utf8)))
        f = .valid(); f.bytes[4] = 1
        #expect(readerError(f.data) == .versionOneNotSupported)
        f = .valid(); f.bytes[4] = 4
        #expect(readerError(f.data) == .unsupportedVersion(4))
        f = .valid(); f.bytes[4] = 0
        #expect(readerError(f.data) == .unsupportedVersion(0))
        f = .valid(); f.bytes[4...7] = [0, 0, 0, 3]  // version 3 written big-endian
        #expect(readerError(f.data) == .bigEndianFile(version: 3))
        #expect(readerError(Data()) == .truncated(context: "the magic", offset: 0, needed: 4, available: 0))
        #expect(readerError(Data("GGUF".utf8)) == .truncated(context: "the version", offset: 4, needed: 4, available: 0))
        var h = CraftedGGUF()
        h.header(tensors: 1 << 40, kvs: 0)
        #expect(readerError(h.data) == .tensorCountTooLarge(1 << 40, available: 0))
        h = CraftedGGUF()
        h.header(tensors: 0, kvs: .max)
        #expect(readerError(h.data) == .metadataCountTooLarge(.max, available: 0))
        h = CraftedGGUF()
        h.header(tensors: 0, kvs: 0)
        #expect(readerError(h.data) == nil)  // an empty file is valid
    }

    @Test func metadataErrors() {
        func file(_ body: (inout CraftedGGUF) -> Void, kvs: UInt64 = 1) -> Data {
            var f = CraftedGGUF()
            f.header(tensors: 0, kvs: kvs)
            body(&f)
            f.zeros(16)
            return f.data
        }
        #expect(readerError(file { $0.string("k"); $0.u32(13); $0.u32(0) }) == .unknownValueType(key: "k", type: 13))
        #expect(readerError(file { $0.string("k"); $0.u32(9); $0.u32(99); $0.u64(0) }) == .unknownValueType(key: "k", type: 99))
        #expect(readerError(file { $0.u64(1 << 40) }) == .stringBeyondEnd(context: "the key of metadata entry 0", offset: 24, length: 1 << 40, available: 16))
        #expect(readerError(file { $0.string("k"); $0.u32(8); $0.u64(17) }) == .stringBeyondEnd(context: "the value of \"k\"", offset: 37, length: 17, available: 16))
        #expect(readerError(file { $0.string("k"); $0.u32(9); $0.u32(4); $0.u64(1 << 62) }) == .arrayCountTooLarge(key: "k", count: 1 << 62, available: 16))
        #expect(readerError(file { $0.string("k"); $0.u32(9); $0.u32(8); $0.u64(3) }) == .arrayCountTooLarge(key: "k", count: 3, available: 16))
        #expect(readerError(file({ $0.keyU32("k", 1); $0.keyU32("k", 2) }, kvs: 2)) == .duplicateKey("k"))
        #expect(readerError(file { $0.string(""); $0.u32(0); $0.u8(0) }) == .emptyKey(index: 0))
        #expect(readerError(file { $0.string("k"); $0.u32(7); $0.u8(2) }) == .invalidBool(key: "k", byte: 2))
        #expect(readerError(file { $0.string("k"); $0.u32(9); $0.u32(7); $0.u64(3); $0.u8(1); $0.u8(0); $0.u8(5) }) == .invalidBool(key: "k", byte: 5))
        #expect(readerError(file { $0.u64(2); $0.bytes += [0xC3, 0x28]; $0.u32(0); $0.u8(0) }) == .invalidUTF8(context: "the key of metadata entry 0"))
        #expect(readerError(file { $0.string("k"); $0.u32(9); $0.u32(8); $0.u64(1); $0.u64(1); $0.u8(0xFF) }) == .invalidUTF8(context: "element 0 of \"k\""))
        // Nesting: 64 levels are read, 65 refused.
        func nested(_ depth: Int) -> Data {
            var f = CraftedGGUF()
            f.header(tensors: 0, kvs: 1)
            f.string("k"); f.u32(9)
            for _ in 0..<(depth - 1) { f.u32(9); f.u64(1) }
            f.u32(0); f.u64(1); f.u8(42)
            return f.data
        }
        #expect(readerError(nested(GGUF.maximumArrayNesting)) == nil)
        #expect(readerError(nested(GGUF.maximumArrayNesting + 1)) == .arrayNestingTooDeep(key: "k", limit: GGUF.maximumArrayNesting))
        // Alignment: the type and the value.
        #expect(readerError(file { $0.string("general.alignment"); $0.u32(10); $0.u64(32) }) == .alignmentNotUInt32(.uint64))
        for a: UInt32 in [0, 4, 24, 33] {
            #expect(readerError(file { $0.keyU32("general.alignment", a) }) == .invalidAlignment(Int(a)))
        }
        #expect(readerError(file { $0.keyU32("general.alignment", 8) }) == nil)
    }

    @Test func tensorInfoErrors() {
        func two(_ b: (dims: [UInt64], type: UInt32, offset: UInt64), alignment: UInt32? = nil) -> GGUFError? {
            readerError(CraftedGGUF.valid(alignment: alignment, tensorB: b).data)
        }
        #expect(two(([32], 2, 32)) == nil)
        #expect(two(([32], 4, 32)) == .unknownTensorType(tensor: "b", type: 4))
        #expect(two(([32], 99, 32)) == .unknownTensorType(tensor: "b", type: 99))
        #expect(two(([], 0, 32)) == .invalidDimensionCount(tensor: "b", count: 0))
        #expect(two(([1, 1, 1, 1, 1], 0, 32)) == .invalidDimensionCount(tensor: "b", count: 5))
        #expect(two(([16, 2], 2, 32)) == .rowNotMultipleOfBlockSize(tensor: "b", type: .q4_0, rowLength: 16, blockElements: 32))
        #expect(two(([1 << 63], 0, 32)) == .dimensionTooLarge(tensor: "b", dimensions: [1 << 63]))
        #expect(two(([1 << 32, 1 << 32], 0, 32)) == .sizeOverflow(tensor: "b", dimensions: [1 << 32, 1 << 32], type: .f32))
        #expect(two(([1 << 62], 0, 32)) == .sizeOverflow(tensor: "b", dimensions: [1 << 62], type: .f32))
        #expect(two(([4], 0, 8)) == .misalignedTensorOffset(tensor: "b", offset: 8, alignment: 32))
        #expect(two(([4], 0, 16), alignment: 8) == nil)
        #expect(two(([4], 0, 8), alignment: 8) == .overlappingTensors("a", "b"))
        #expect(two(([4], 0, 0)) == .overlappingTensors("a", "b"))
        #expect(two(([8], 0, 0)) == .overlappingTensors("a", "b"))
        #expect(two(([0, 3], 0, 0)) == nil)  // an empty tensor shares no byte (llama.cpp accepts 0 dims)
        let size = CraftedGGUF.valid().bytes.count, dataOffset = size - 64
        #expect(two(([32], 0, 64)) == .tensorBeyondFile(tensor: "b", end: UInt64(dataOffset + 64 + 128), fileSize: size))
        #expect(two(([32], 0, UInt64.max - 31)) == .tensorBeyondFile(tensor: "b", end: .max, fileSize: size))
        // Duplicate tensor names.
        var f = CraftedGGUF()
        f.header(tensors: 2, kvs: 0)
        f.tensor("a", dims: [4], type: 0, offset: 0)
        f.tensor("a", dims: [4], type: 0, offset: 32)
        f.pad(); f.zeros(64)
        #expect(readerError(f.data) == .duplicateTensorName("a"))
    }

    /// Every prefix of a valid file is refused with a GGUFError (never a crash) until the last
    /// tensor's data is complete; the trailing padding is optional.
    @Test func truncationAtEveryLength() throws {
        let bytes = try smallFileBytes()
        let reader = try GGUFReader(data: bytes)
        let end = reader.tensorInfos.map { reader.fileRange(of: $0).upperBound }.max()!
        #expect(end < bytes.count)  // gguf-py pads after the last tensor
        var kinds: Set<String> = []
        for length in 0..<bytes.count {
            let error = readerError(bytes.prefix(length))
            if length < end {
                guard let error else { Issue.record("prefix of \(length) bytes accepted"); continue }
                kinds.insert(Mirror(reflecting: error).children.first?.label ?? "\(error)")  // the case name
            } else {
                #expect(error == nil, "prefix of \(length) bytes refused: \(String(describing: error))")
            }
        }
        #expect(kinds == ["truncated", "stringBeyondEnd", "metadataCountTooLarge", "tensorCountTooLarge",
                          "arrayCountTooLarge", "tensorBeyondFile"], "\(kinds)")
    }

    /// Thousands of random corruptions of a small file: a GGUFError or a valid file (whose
    /// tensors then decode), never a crash.
    @Test func randomCorruptionsNeverCrash() throws {
        let original = try smallFileBytes()
        let headerEnd = try GGUFReader(data: original).dataOffset
        var rng = HalfPrecisionReference.SplitMix64(state: 2024)
        var refused = 0, accepted = 0
        for trial in 0..<4000 {
            var bytes = original
            let edits = 1 + Int(rng.next() % 4)
            for _ in 0..<edits {
                // Mostly the header, metadata and tensor infos, where the structure is.
                let limit = trial % 5 == 0 ? bytes.count : headerEnd
                let position = Int(rng.next() % UInt64(limit))
                switch rng.next() % 3 {
                case 0: bytes[position] = UInt8(truncatingIfNeeded: rng.next())
                case 1: bytes[position] ^= UInt8(1) << (rng.next() % 8)
                default: bytes[position] = [0x00, 0xFF, 0x7F, 0x80][Int(rng.next() % 4)]
                }
            }
            if trial % 7 == 0 { bytes = bytes.prefix(Int(rng.next() % UInt64(bytes.count))) }
            do {
                let reader = try GGUFReader(data: bytes)
                accepted += 1
                for info in reader.tensorInfos where info.type.canDequantize {
                    let t = try reader.tensor(named: info.name)
                    #expect(t.count == info.elementCount)
                }
            } catch is GGUFError {
                refused += 1
            }
        }
        #expect(refused > 1000 && accepted > 100, "refused \(refused), accepted \(accepted)")
    }
}
