import Foundation
import CKernels
import CBLAS
import LoRTA

/// lt_quant_matmul figures (issue 9), every comparison timed interleaved in one run:
///   decode  one token's worth of SmolLM2-135M matrix products, n = 1: per layer qkv [960×576],
///           o [576×576], gate|up [3072×576], down [576×1536], 30 layers with distinct weights,
///           plus the output projection [49152×576]; ms per token and GB/s of weight bytes, per
///           storage type, against OpenBLAS sgemv on the float32 weights;
///   prefill n = 128 (and 512) X·Wᵀ on the same shapes: GFLOP/s of lt_quant_matmul, of
///           cblas_sgemm on float32 weights, and of the simple alternative (lt_dequantize the
///           whole matrix, then cblas_sgemm); backward dX = dY·W likewise.
/// The K types (Q4_K, Q5_K, Q6_K) need rows that are whole 256-value blocks: their figures use
/// 512 in place of 576 (said in the output).
func quantMatmulBenchmark() throws {
    let threads = Runtime.threadCount
    print("== lt_quant_matmul, \(threads) threads, ISA \(Runtime.instructionSet), OpenBLAS core \(BLASDiagnostics.current.activeCore) ==")
    print("   timing: blocks of our calls and of OpenBLAS calls alternate (3 calls per block, medians over all);")
    print("   after an OpenBLAS block a 0.2 s pause lets its spinning threads sleep before our block starts")
    print("   (OPENBLAS_THREAD_TIMEOUT=\(ProcessInfo.processInfo.environment["OPENBLAS_THREAD_TIMEOUT"] ?? "unset"))")
    try quantDecodeBenchmark()
    try quantPrefillBenchmark()
}

/// Times two groups of variants — ours, then OpenBLAS — in alternating blocks (`perBlock` calls
/// of each variant of a group, round robin inside the group), `rounds` times; medians per
/// variant. OpenBLAS's pthreads spin for a while after each call and would steal the core our
/// OpenMP team needs, so an OpenBLAS block is followed by a pause before ours resume.
func timeBlocks(ours: [() throws -> Void], blas: [() throws -> Void], rounds: Int,
                        perBlock: Int = 3) throws -> [Double] {
    var samples = Array(repeating: [Double](), count: ours.count + blas.count)
    for v in ours + blas { try v() }   // warm-up
    for _ in 0..<rounds {
        for group in 0..<2 {
            let vs = group == 0 ? ours : blas
            if group == 0 && !blas.isEmpty { usleep(200_000) }
            for _ in 0..<perBlock {
                for (i, v) in vs.enumerated() {
                    let t0 = now()
                    try v()
                    samples[(group == 0 ? 0 : ours.count) + i].append(now() - t0)
                }
            }
        }
    }
    return samples.map(median)
}

/// Reads every byte of `buffers` once on `threads` threads (each takes a contiguous half of
/// each buffer) and discards the sum: the memory-bandwidth floor of a pass over the weights.
private struct SendablePointer: @unchecked Sendable { let p: UnsafeMutablePointer<UInt32> }
private func readSweep(_ buffers: [[UInt8]], threads: Int) -> UInt32 {
    let partial = SendablePointer(p: UnsafeMutablePointer<UInt32>.allocate(capacity: threads))
    defer { partial.p.deallocate() }
    DispatchQueue.concurrentPerform(iterations: threads) { t in
        var acc = SIMD16<UInt32>()
        for b in buffers {
            b.withUnsafeBytes { raw in
                let chunk = raw.count / threads / 64 * 64
                let start = t * chunk, end = t == threads - 1 ? raw.count / 64 * 64 : start + chunk
                var i = start
                while i < end {
                    acc &+= raw.loadUnaligned(fromByteOffset: i, as: SIMD16<UInt32>.self)
                    i += 64
                }
            }
        }
        partial.p[t] = acc.wrappedSum()
    }
    return (0..<threads).reduce(0) { $0 &+ partial.p[$1] }
}

/// Random stored matrix (codes random, scales sane) — the benchmark only needs realistic bytes.
private func randomStored(_ type: GGMLType, rows: Int, cols: Int, seed: UInt64) -> [UInt8] {
    let count = rows * type.byteCount(elements: cols)!
    var state = seed &* 0x9E3779B97F4A7C15 | 1
    func next() -> UInt64 { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state }
    var b = [UInt8](repeating: 0, count: count)
    b.withUnsafeMutableBytes { raw in
        let words = raw.bindMemory(to: UInt64.self)
        for i in 0..<words.count { words[i] = next() }
        for i in (words.count * 8)..<count { raw[i] = UInt8(truncatingIfNeeded: next()) }
    }
    func put(_ v: UInt16, _ at: Int) { b[at] = UInt8(v & 0xFF); b[at + 1] = UInt8(v >> 8) }
    switch type {
    case .f32:
        b.withUnsafeMutableBytes { raw in
            let f = raw.bindMemory(to: Float.self)
            for i in 0..<f.count { f[i] = Float(Int64(next() >> 40) - (1 << 23)) / Float(1 << 23) }
        }
    case .f16:
        for i in 0..<(count / 2) { put(UInt16(0x2C00 | (next() & 0x83FF)), 2 * i) }
    case .bf16:
        for i in 0..<(count / 2) { put(UInt16(0x3D00 | (next() & 0x807F)), 2 * i) }
    default:
        let bb = type.blockBytes
        for blk in 0..<(count / bb) {
            let o = blk * bb, d = UInt16(0x2000 | (next() & 0x3FF))
            switch type {
            case .q6_K: put(d, o + 208)
            case .q4_1, .q5_1, .q4_K, .q5_K: put(d, o); put(d | 0x8000, o + 2)
            default: put(d, o)
            }
        }
    }
    return b
}

private func dequantize(_ type: GGMLType, _ w: [UInt8], count: Int) -> [Float] {
    var out = [Float](repeating: 0, count: count)
    w.withUnsafeBytes { pw in
        out.withUnsafeMutableBufferPointer { po in
            _ = lt_dequantize(Int32(type.rawValue), pw.baseAddress, Int64(pw.count), Int64(count), po.baseAddress)
        }
    }
    return out
}

/// One weight matrix [rows × cols] in `type` (plus its float32 copy when asked).
private struct StoredMatrix {
    let type: GGMLType
    let rows, cols: Int
    let bytes: [UInt8]
    var floats: [Float] = []

    init(_ type: GGMLType, rows: Int, cols: Int, seed: UInt64, withFloats: Bool) {
        self.type = type; self.rows = rows; self.cols = cols
        bytes = randomStored(type, rows: rows, cols: cols, seed: seed)
        if withFloats { floats = dequantize(type, bytes, count: rows * cols) }
    }

    /// Y[n × rows] = X[n × cols] Wᵀ through lt_quant_matmul.
    func multiply(_ n: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ ws: UnsafeMutablePointer<Float>?, _ wsFloats: Int) {
        let st = bytes.withUnsafeBytes { pw in
            lt_quant_matmul(Int32(type.rawValue), Int64(n), Int64(cols), Int64(rows), x, Int64(cols), pw.baseAddress,
                            Int64(pw.count), y, Int64(rows), 0, ws, Int64(wsFloats))
        }
        precondition(st == LT_OK, "lt_quant_matmul failed: \(st)")
    }

    func backward(_ n: Int, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ ws: UnsafeMutablePointer<Float>?, _ wsFloats: Int) {
        let st = bytes.withUnsafeBytes { pw in
            lt_quant_matmul_backward_input(Int32(type.rawValue), Int64(n), Int64(cols), Int64(rows), dy, Int64(rows),
                                           pw.baseAddress, Int64(pw.count), dx, Int64(cols), 0, ws, Int64(wsFloats))
        }
        precondition(st == LT_OK, "lt_quant_matmul_backward_input failed: \(st)")
    }

    func workspace(_ n: Int) -> Int {
        var f: Int64 = 0
        _ = lt_quant_matmul_workspace_size(Int32(type.rawValue), Int64(n), Int64(cols), Int64(rows), &f)
        return Int(f)
    }
}

/// A 64-byte aligned float buffer that lives for the whole benchmark.
private func alignedFloats(_ count: Int) -> UnsafeMutablePointer<Float> {
    let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
    let p = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    for i in 0..<count { p[i] = Float(i % 17) / 17 - 0.5 }
    return p
}

/// The hidden size of the shapes for a type (576, or 512 for the K types).
private func hidden(_ type: GGMLType) -> Int { type.blockElements == 256 ? 512 : 576 }
private func layerShapes(_ h: Int) -> [(rows: Int, cols: Int)] {
    [(960 * h / 576, h), (h, h), (3072 * h / 576, h), (h, 1536)]
}

private func quantDecodeBenchmark() throws {
    print("-- decode: one token of SmolLM2-135M products (30 layers × qkv, o, gate|up, down + output projection), n = 1 --")
    print("   per-token set for each type (K types: hidden 512); the model row is Q4_1 layers + Q8_0 output (the GGUF file);")
    print("   sgemv: OpenBLAS on the float32 weights of the same set (its own threads); read: every weight byte")
    print("   read once on the same number of threads (no arithmetic) — the memory floor, timed in the same blocks")
    print("   type              | ms/token | GB/s weights | GFLOP/s | read ms | ours/read | sgemv ms/token | speed-up vs sgemv")
    let layers = 30
    let x = alignedFloats(3072), y = alignedFloats(49152)
    // (label, layer type, output type)
    var configs: [(String, GGMLType, GGMLType)] = [("SmolLM2 Q4_1+Q8_0", .q4_1, .q8_0)]
    for t: GGMLType in [.q4_1, .q8_0, .q4_K, .q6_K, .q5_K, .q4_0, .q5_0, .q5_1, .bf16, .f16, .f32] {
        configs.append((t.name, t, t))
    }
    for (label, layerType, outType) in configs {
        let h = hidden(layerType)
        var mats: [StoredMatrix] = []
        for l in 0..<layers {
            for (i, s) in layerShapes(h).enumerated() {
                mats.append(StoredMatrix(layerType, rows: s.rows, cols: s.cols, seed: UInt64(l * 8 + i + 1), withFloats: false))
            }
        }
        mats.append(StoredMatrix(outType, rows: 49152, cols: hidden(outType), seed: 999, withFloats: false))
        let bytes = mats.reduce(0) { $0 + $1.bytes.count }
        let flops = mats.reduce(0.0) { $0 + 2.0 * Double($1.rows * $1.cols) }
        // float32 copies for the sgemv comparison only on the model row (memory: ~540 MB)
        var f32: [[Float]] = []
        if label.hasPrefix("SmolLM2") {
            f32 = mats.map { dequantize($0.type, $0.bytes, count: $0.rows * $0.cols) }
        }
        func token() { for m in mats { m.multiply(1, x, y, nil, 0) } }
        func sgemvToken() {
            for (m, w) in zip(mats, f32) {
                w.withUnsafeBufferPointer { pw in
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(m.rows), Int32(m.cols), 1, pw.baseAddress, Int32(m.cols),
                                x, 1, 0, y, 1)
                }
            }
        }
        let buffers = mats.map(\.bytes)
        var sink: UInt32 = 0
        let t = try timeBlocks(ours: [token, { sink &+= readSweep(buffers, threads: Runtime.threadCount) }],
                               blas: f32.isEmpty ? [] : [sgemvToken], rounds: 5)
        if sink == 1 { print("") }
        let sg = t.count > 2 ? String(format: "%14.2f | %6.2f×", t[2] * 1e3, t[2] / t[0]) : "             - |       -"
        print(String(format: "   %-17@ | %8.2f | %12.1f | %7.1f | %7.2f | %8.2f× | %@", label, t[0] * 1e3, Double(bytes) / t[0] / 1e9,
                     flops / t[0] / 1e9, t[1] * 1e3, t[0] / t[1], sg))
    }
    print()
}

private func quantPrefillBenchmark() throws {
    print("-- prefill / batches: Y = X·Wᵀ (fwd) and dX = dY·W (bwd), GFLOP/s (median), same run --")
    print("   ours: lt_quant_matmul; sgemm: cblas_sgemm on float32 W; deq+sgemm: lt_dequantize the whole W, then cblas_sgemm")
    print("   type  |    n | d_out × d_in |   ours fwd |  sgemm fwd | deq+sgemm |   ours bwd |  sgemm bwd")
    for type: GGMLType in [.q4_1, .q8_0, .q4_K, .q6_K, .bf16, .f16, .f32] {
        let h = hidden(type)
        for n in [128, 512] {
            for (si, s) in layerShapes(h).enumerated() where n == 128 || si == 2 {
                let m = StoredMatrix(type, rows: s.rows, cols: s.cols, seed: 7, withFloats: true)
                let x = alignedFloats(n * s.cols), y = alignedFloats(n * s.rows)
                let dy = alignedFloats(n * s.rows), dx = alignedFloats(n * s.cols)
                let wsFloats = m.workspace(n)
                let ws = alignedFloats(wsFloats)
                let deq = alignedFloats(s.rows * s.cols)
                defer { for p in [x, y, dy, dx, ws, deq] { p.deallocate() } }
                let ours: [() throws -> Void] = [
                    { m.multiply(n, x, y, ws, wsFloats) },
                    { m.backward(n, dy, dx, ws, wsFloats) },
                ]
                let blas: [() throws -> Void] = [
                    { m.floats.withUnsafeBufferPointer { pw in
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(s.rows), Int32(s.cols), 1, x,
                                    Int32(s.cols), pw.baseAddress, Int32(s.cols), 0, y, Int32(s.rows)) } },
                    { m.bytes.withUnsafeBytes { pw in
                        _ = lt_dequantize(Int32(type.rawValue), pw.baseAddress, Int64(pw.count), Int64(s.rows * s.cols), deq) }
                      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(s.rows), Int32(s.cols), 1, x,
                                  Int32(s.cols), deq, Int32(s.cols), 0, y, Int32(s.rows)) },
                    { m.floats.withUnsafeBufferPointer { pw in
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(s.cols), Int32(s.rows), 1, dy,
                                    Int32(s.rows), pw.baseAddress, Int32(s.cols), 0, dx, Int32(s.cols)) } },
                ]
                let r = try timeBlocks(ours: ours, blas: blas, rounds: n >= 512 ? 3 : 5)
                let t = [r[0], r[2], r[3], r[1], r[4]]   // ours fwd, sgemm fwd, deq+sgemm, ours bwd, sgemm bwd
                let flops = 2.0 * Double(n * s.rows * s.cols)
                let g = t.map { flops / $0 / 1e9 }
                print(String(format: "   %-5@ | %4d | %5d × %4d | %10.1f | %10.1f | %9.1f | %10.1f | %10.1f",
                             type.name, n, s.rows, s.cols, g[0], g[1], g[2], g[3], g[4]))
            }
        }
    }
    print()
}
