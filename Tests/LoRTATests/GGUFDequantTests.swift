import CKernels
import Foundation
import Testing
@testable import LoRTA
#if canImport(Glibc)
import Glibc
#endif

/// The dequantization fixtures of scripts/fixtures/make_gguf_fixtures.py: blocks of each type
/// and the float32 values gguf-py's `gguf.quants.dequantize` gives for them.
private struct DequantManifest: Decodable {
    struct Entry: Decodable {
        var type: String
        var type_number: Int32
        var blocks: Int
        var values: Int
        var nan_values: Int
    }
    var types: [Entry]
}

private func dequantFixture(_ name: String, _ ext: String) throws -> Data {
    let url = try #require(Bundle.module.url(forResource: name, withExtension: ext, subdirectory: "Fixtures/gguf/dequant"),
                           "fixture \(name).\(ext) missing from the test bundle")
    return try Data(contentsOf: url)
}

private func dequantManifest() throws -> DequantManifest {
    try JSONDecoder().decode(DequantManifest.self, from: dequantFixture("manifest", "json"))
}

/// Float32 bit patterns of a little-endian float file.
private func bitPatterns(_ data: Data) -> [UInt32] {
    data.withUnsafeBytes { raw in (0..<(raw.count / 4)).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self) } }
}

/// lt_dequantize of the first `n` values of `bytes`; the status and the output bit patterns.
private func dequantize(_ type: Int32, _ bytes: [UInt8], count n: Int, srcBytes: Int? = nil) -> (lt_status, [UInt32]) {
    var out = [Float](repeating: .nan, count: max(n, 0))
    let status = bytes.withUnsafeBytes { src in
        out.withUnsafeMutableBufferPointer { dst in
            lt_dequantize(type, src.baseAddress, Int64(srcBytes ?? bytes.count), Int64(n), dst.baseAddress)
        }
    }
    return (status, out.map(\.bitPattern))
}

/// Random blocks of `type` with finite float16 scales (random scale bytes may encode NaN and
/// infinity, which still decode deterministically, but finite ones exercise the arithmetic).
private func randomBlocks(_ type: GGMLType, count: Int, seed: UInt64) -> [UInt8] {
    var rng = HalfPrecisionReference.SplitMix64(state: seed)
    var bytes = (0..<(count * type.blockBytes)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    let scaleOffsets: [Int]
    switch type {
    case .q4_0, .q5_0, .q8_0: scaleOffsets = [0]
    case .q4_1, .q5_1, .q4_K, .q5_K: scaleOffsets = [0, 2]
    case .q6_K: scaleOffsets = [208]
    default: scaleOffsets = []
    }
    for b in 0..<count {
        for o in scaleOffsets { bytes[b * type.blockBytes + o + 1] &= 0xBF }  // exponent ≤ 15: finite
    }
    return bytes
}

private let dequantizableTypes: [GGMLType] = [.f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K]

@Suite("GGUF dequantization", .serialized)
struct GGUFDequantTests {
    @Test func manifestCoversEveryDequantizableType() throws {
        let manifest = try dequantManifest()
        #expect(Set(manifest.types.map(\.type)) == Set(dequantizableTypes.map(\.name)))
        #expect(Set(GGMLType.allCases.filter(\.canDequantize)) == Set(dequantizableTypes))
    }

    /// Every ISA variant decodes every fixture bit for bit as gguf-py does (NaNs included).
    @Test(arguments: dequantizableTypes)
    func matchesGGUFPyBitForBit(type: GGMLType) throws {
        let entry = try #require(try dequantManifest().types.first { $0.type == type.name })
        #expect(entry.type_number == Int32(type.rawValue))
        let blocks = [UInt8](try dequantFixture(type.name, "bin"))
        let expected = bitPatterns(try dequantFixture(type.name, "f32"))
        #expect(blocks.count == entry.blocks * type.blockBytes)
        #expect(expected.count == entry.values)
        #expect(expected.count == entry.blocks * type.blockElements)
        for isa in testedInstructionSets() {
            let (status, got) = try Runtime.withInstructionSet(isa) {
                dequantize(Int32(type.rawValue), blocks, count: expected.count)
            }
            #expect(status == LT_OK, "\(type) \(isa)")
            let mismatches = zip(got, expected).enumerated().filter { $0.element.0 != $0.element.1 }
            #expect(mismatches.isEmpty, "\(type) \(isa): \(mismatches.count) of \(expected.count) values differ, first \(mismatches.first.map { "#\($0.offset): \(String($0.element.0, radix: 16)) vs \(String($0.element.1, radix: 16))" } ?? "")")
        }
        // The fixtures exercise NaN where the format has a float16 scale.
        if type != .f32 && type != .bf16 && type != .f16 { #expect(entry.nan_values > 0) }
    }

    /// A source that starts at an odd address and a prefix of the blocks decode the same.
    @Test(arguments: [GGMLType.q4_1, .q8_0, .q6_K, .f16])
    func unalignedSourceAndPrefix(type: GGMLType) throws {
        let blocks = [UInt8](try dequantFixture(type.name, "bin"))
        let expected = bitPatterns(try dequantFixture(type.name, "f32"))
        let shifted = [UInt8(0x5A)] + blocks
        let (status, got) = shifted.withUnsafeBytes { src -> (lt_status, [UInt32]) in
            var out = [Float](repeating: 0, count: expected.count)
            let s = out.withUnsafeMutableBufferPointer {
                lt_dequantize(Int32(type.rawValue), src.baseAddress! + 1, Int64(blocks.count), Int64(expected.count), $0.baseAddress)
            }
            return (s, out.map(\.bitPattern))
        }
        #expect(status == LT_OK)
        #expect(got == expected)
        let k = 3 * type.blockElements
        let (s2, prefix) = dequantize(Int32(type.rawValue), blocks, count: k, srcBytes: 3 * type.blockBytes)
        #expect(s2 == LT_OK)
        #expect(prefix == Array(expected[0..<k]))
    }

    /// The decoder reads exactly the blocks it needs: the source ends at a page boundary
    /// followed by an inaccessible page, and decoding every block there does not fault.
    @Test func readsNoByteBeyondTheBlocks() throws {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let region = try #require(mmap(nil, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        #expect(region != MAP_FAILED)
        defer { munmap(region, 2 * page) }
        #expect(mprotect(region + page, page, PROT_NONE) == 0)
        for type in dequantizableTypes {
            let nblocks = (page / 2) / type.blockBytes
            let bytes = randomBlocks(type, count: nblocks, seed: 7)
            let start = region + page - bytes.count
            bytes.withUnsafeBytes { start.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
            var out = [Float](repeating: 0, count: nblocks * type.blockElements)
            let status = out.withUnsafeMutableBufferPointer {
                lt_dequantize(Int32(type.rawValue), start, Int64(bytes.count), Int64($0.count), $0.baseAddress)
            }
            #expect(status == LT_OK, "\(type)")
            let reference = dequantize(Int32(type.rawValue), bytes, count: out.count).1
            #expect(out.map(\.bitPattern) == reference, "\(type)")
        }
    }

    /// 1 and 2 threads give the same bits on a size above the parallel threshold, and the
    /// same as decoding block by block.
    @Test(arguments: [GGMLType.q4_1, .q4_K, .q5_0, .q6_K, .f16])
    func threadCountDoesNotChangeTheBits(type: GGMLType) throws {
        let nblocks = (1 << 19) / type.blockElements + 3  // 524,288+ values, chunks of 16,384
        let bytes = randomBlocks(type, count: nblocks, seed: UInt64(type.rawValue) + 100)
        let n = nblocks * type.blockElements
        let one = try Runtime.withThreadCount(1) { dequantize(Int32(type.rawValue), bytes, count: n) }
        let two = try Runtime.withThreadCount(2) { dequantize(Int32(type.rawValue), bytes, count: n) }
        #expect(one.0 == LT_OK && two.0 == LT_OK)
        #expect(one.1 == two.1)
        // Spot-check blocks decoded one at a time (first, chunk boundaries, last).
        for b in [0, 1, 16_384 / type.blockElements - 1, 16_384 / type.blockElements, nblocks - 1] {
            let block = Array(bytes[(b * type.blockBytes)..<((b + 1) * type.blockBytes)])
            let (s, values) = dequantize(Int32(type.rawValue), block, count: type.blockElements)
            #expect(s == LT_OK)
            #expect(values == Array(one.1[(b * type.blockElements)..<((b + 1) * type.blockElements)]), "block \(b)")
        }
    }

    /// lt_quant_gather_rows picks rows of a matrix: the same values as dequantizing each row.
    @Test(arguments: [GGMLType.q4_1, .q8_0, .q4_K, .bf16])
    func gatherRowsPicksDequantizedRows(type: GGMLType) throws {
        let blocks = [UInt8](try dequantFixture(type.name, "bin"))
        let expected = bitPatterns(try dequantFixture(type.name, "f32"))
        let blocksPerRow = type.blockElements == 1 ? 8 : 1
        let cols = blocksPerRow * type.blockElements
        let rows = expected.count / cols
        let ids: [Int32] = [Int32(rows - 1), 0, 2, 2, Int32(rows / 2), 1]
        let ldy = cols + 3
        var y = [Float](repeating: -1, count: ids.count * ldy)
        let status = blocks.withUnsafeBytes { w in
            y.withUnsafeMutableBufferPointer {
                lt_quant_gather_rows(Int32(type.rawValue), Int64(rows), Int64(cols), w.baseAddress, Int64(blocks.count),
                                     ids, Int64(ids.count), $0.baseAddress, Int64(ldy))
            }
        }
        #expect(status == LT_OK)
        for (i, id) in ids.enumerated() {
            let row = Array(y[(i * ldy)..<(i * ldy + cols)]).map(\.bitPattern)
            #expect(row == Array(expected[(Int(id) * cols)..<((Int(id) + 1) * cols)]), "row \(i) (id \(id))")
            #expect(y[(i * ldy + cols)..<((i + 1) * ldy)].allSatisfy { $0 == -1 }, "padding of row \(i) untouched")
        }
        // Every id out of range is refused.
        for bad: Int32 in [-1, Int32(rows)] {
            let s = blocks.withUnsafeBytes { w in
                y.withUnsafeMutableBufferPointer {
                    lt_quant_gather_rows(Int32(type.rawValue), Int64(rows), Int64(cols), w.baseAddress, Int64(blocks.count),
                                         [0, bad], 2, $0.baseAddress, Int64(ldy))
                }
            }
            #expect(s == LT_ERR_INVALID_ARGUMENT)
        }
    }

    /// The C geometry agrees with GGMLType for every supported type; every other type number is
    /// LT_ERR_UNSUPPORTED everywhere (never garbage).
    @Test func blockGeometryAndUnsupportedTypes() {
        for type in GGMLType.allCases {
            var be: Int64 = 0, bb: Int64 = 0, rowBytes: Int64 = 0
            let status = lt_quant_block_size(Int32(type.rawValue), &be, &bb)
            if type.canDequantize {
                #expect(status == LT_OK)
                #expect(be == Int64(type.blockElements) && bb == Int64(type.blockBytes), "\(type)")
                #expect(lt_quant_row_bytes(Int32(type.rawValue), be * 6, &rowBytes) == LT_OK)
                #expect(rowBytes == 6 * bb)
            } else {
                #expect(status == LT_ERR_UNSUPPORTED, "\(type)")
                #expect(lt_quant_row_bytes(Int32(type.rawValue), Int64(type.blockElements), &rowBytes) == LT_ERR_UNSUPPORTED)
                let (s, _) = dequantize(Int32(type.rawValue), [UInt8](repeating: 0, count: 4 * type.blockBytes),
                                        count: type.blockElements)
                #expect(s == LT_ERR_UNSUPPORTED, "\(type)")
            }
        }
        for number: Int32 in [-1, 4, 5, 31, 36, 42, 1000, .max] {
            var be: Int64 = 0, bb: Int64 = 0
            #expect(lt_quant_block_size(number, &be, &bb) == LT_ERR_UNSUPPORTED)
            #expect(dequantize(number, [UInt8](repeating: 0, count: 64), count: 1).0 == LT_ERR_UNSUPPORTED)
            var y = [Float](repeating: 0, count: 32)
            let s = y.withUnsafeMutableBufferPointer {
                lt_quant_gather_rows(number, 1, 1, [UInt8](repeating: 0, count: 64), 64, [0], 1, $0.baseAddress, 1)
            }
            #expect(s == LT_ERR_UNSUPPORTED)
        }
        var be: Int64 = 0
        #expect(lt_quant_block_size(Int32(GGMLType.q4_0.rawValue), &be, nil) == LT_ERR_NULL_POINTER)
    }

    @Test func invalidArgumentsAreRefused() {
        let q40 = Int32(GGMLType.q4_0.rawValue)
        let blocks = randomBlocks(.q4_0, count: 4, seed: 3)
        // Short buffer: one byte less than the blocks need.
        #expect(dequantize(q40, blocks, count: 128, srcBytes: 4 * 18 - 1).0 == LT_ERR_INVALID_ARGUMENT)
        #expect(dequantize(q40, blocks, count: 128, srcBytes: 4 * 18).0 == LT_OK)
        // n not a multiple of the block, negative n, negative byte count.
        #expect(dequantize(q40, blocks, count: 33).0 == LT_ERR_INVALID_ARGUMENT)
        #expect(dequantize(q40, blocks, count: -32).0 == LT_ERR_INVALID_ARGUMENT)
        #expect(dequantize(q40, blocks, count: 32, srcBytes: -1).0 == LT_ERR_INVALID_ARGUMENT)
        // n so large that its byte count overflows (F32: 4 bytes per value).
        let huge = Int64.max / 2
        var out = [Float](repeating: 0, count: 32)
        #expect(out.withUnsafeMutableBufferPointer { lt_dequantize(Int32(GGMLType.f32.rawValue), blocks, Int64.max, huge, $0.baseAddress) } == LT_ERR_INVALID_ARGUMENT)
        // NULL pointers (n > 0); n = 0 needs none.
        #expect(lt_dequantize(q40, nil, 18, 32, &out) == LT_ERR_NULL_POINTER)
        #expect(blocks.withUnsafeBytes { lt_dequantize(q40, $0.baseAddress, 18, 32, nil) } == LT_ERR_NULL_POINTER)
        #expect(lt_dequantize(q40, nil, 0, 0, nil) == LT_OK)
        // Row bytes: not a multiple of the block, negative, overflow.
        var rowBytes: Int64 = 0
        #expect(lt_quant_row_bytes(q40, 31, &rowBytes) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_quant_row_bytes(q40, -32, &rowBytes) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_quant_row_bytes(Int32(GGMLType.f32.rawValue), huge, &rowBytes) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_quant_row_bytes(q40, 64, nil) == LT_ERR_NULL_POINTER)
        // Gather: short matrix, leading dimension below the row, columns not whole blocks.
        var y = [Float](repeating: 0, count: 256)
        #expect(y.withUnsafeMutableBufferPointer { lt_quant_gather_rows(q40, 4, 32, blocks, 4 * 18 - 1, [0], 1, $0.baseAddress, 32) } == LT_ERR_INVALID_ARGUMENT)
        #expect(y.withUnsafeMutableBufferPointer { lt_quant_gather_rows(q40, 4, 32, blocks, 4 * 18, [0], 1, $0.baseAddress, 31) } == LT_ERR_INVALID_ARGUMENT)
        #expect(y.withUnsafeMutableBufferPointer { lt_quant_gather_rows(q40, 2, 48, blocks, 4 * 18, [0], 1, $0.baseAddress, 48) } == LT_ERR_INVALID_ARGUMENT)
        #expect(y.withUnsafeMutableBufferPointer { lt_quant_gather_rows(q40, 4, 32, blocks, 4 * 18, nil, 1, $0.baseAddress, 32) } == LT_ERR_NULL_POINTER)
        #expect(y.withUnsafeMutableBufferPointer { lt_quant_gather_rows(q40, 4, 32, blocks, 4 * 18, [3], 1, $0.baseAddress, 32) } == LT_OK)
    }
}
