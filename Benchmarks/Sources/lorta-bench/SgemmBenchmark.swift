import Foundation
import CKernels
import CBLAS
import LoRTA

/// lt_sgemm (our packed core and OpenMP team) against OpenBLAS cblas_sgemm on the float32
/// products of MiniLM training (n = 2048 tokens) and SmolLM2 prefill (1024 tokens), GFLOP/s on 1
/// and 2 threads. Blocks of our calls and of OpenBLAS calls alternate in one run (medians;
/// a pause after each OpenBLAS block lets its spinning threads sleep), so the ratio holds even
/// on a shared machine. Also prints an estimate of the float32 peak (see `peakEstimate`).
func sgemmBenchmark() throws {
    print("== lt_sgemm vs OpenBLAS cblas_sgemm, ISA \(Runtime.instructionSet), OpenBLAS core \(BLASDiagnostics.current.activeCore) ==")
    peakEstimate()
    // (label, M, K, N, trans_a, trans_b): C[M × N] = op(A)[M × K] · op(B)[K × N]
    let shapes: [(String, Int, Int, Int, Bool, Bool)] = [
        ("MiniLM qkv    Y = X·Wᵀ", 2048, 384, 1152, false, true),
        ("MiniLM ffn up Y = X·Wᵀ", 2048, 384, 1536, false, true),
        ("MiniLM ffn dn Y = X·Wᵀ", 2048, 1536, 384, false, true),
        ("MiniLM dX = dY·W      ", 2048, 1152, 384, false, false),
        ("MiniLM dW = dYᵀ·X     ", 1152, 2048, 384, true, false),
        ("SmolLM2 o     Y = X·Wᵀ", 1024, 576, 576, false, true),
        ("SmolLM2 up    Y = X·Wᵀ", 1024, 576, 1536, false, true),
        ("SmolLM2 down  Y = X·Wᵀ", 1024, 1536, 576, false, true),
        ("SmolLM2 head  Y = X·Wᵀ", 1024, 576, 49152, false, true),
    ]
    let saved = Runtime.threadCount
    defer { try? Runtime.setThreadCount(saved) }
    for threads in [1, 2] {
        try Runtime.setThreadCount(threads)
        print("-- \(threads) thread\(threads == 1 ? "" : "s") (ours and OpenBLAS) --")
        print("   shape                   |    M ×    K ×     N | tA tB |  ours GFLOP/s | OpenBLAS GFLOP/s | ours/OpenBLAS")
        for (label, m, k, n, ta, tb) in shapes {
            let (ar, ac) = ta ? (k, m) : (m, k)
            let (br, bc) = tb ? (n, k) : (k, n)
            let a = benchFloats(ar * ac, seed: 1), b = benchFloats(br * bc, seed: 2)
            let c = benchFloats(m * n, seed: 3)
            var wsFloats: Int64 = 0
            // (not inside precondition: -Ounchecked drops its condition unevaluated)
            let sizeStatus = lt_sgemm_workspace_size(Int64(m), Int64(n), Int64(k), &wsFloats)
            if sizeStatus != LT_OK { fatalError("lt_sgemm_workspace_size failed: \(sizeStatus)") }
            let ws = benchFloats(Int(wsFloats), seed: 4)
            defer { for p in [a, b, c, ws] { p.deallocate() } }
            let ours: () throws -> Void = {
                let st = lt_sgemm(ta ? 1 : 0, tb ? 1 : 0, Int64(m), Int64(n), Int64(k), 1, a, Int64(ac), b, Int64(bc), 0,
                                  c, Int64(n), ws, wsFloats)
                if st != LT_OK { fatalError("lt_sgemm failed: \(st)") }
            }
            let blas: () throws -> Void = {
                cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, Int32(m), Int32(n),
                            Int32(k), 1, a, Int32(ac), b, Int32(bc), 0, c, Int32(n))
            }
            let flops = 2.0 * Double(m) * Double(n) * Double(k)
            let rounds = flops > 2e10 ? 3 : 5
            let t = try timeBlocks(ours: [ours], blas: [blas], rounds: rounds)
            print(String(format: "   %@ | %4d × %4d × %5d | %2d %2d | %13.1f | %16.1f | %12.2f×", label, m, k, n, ta ? 1 : 0,
                         tb ? 1 : 0, flops / t[0] / 1e9, flops / t[1] / 1e9, t[1] / t[0]))
        }
    }
    print()
}

/// A 64-byte aligned buffer of values in [-1, 1), kept until deallocated.
private func benchFloats(_ count: Int, seed: UInt64) -> UnsafeMutablePointer<Float> {
    let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
    let p = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    var s = seed &* 0x9E3779B97F4A7C15 | 1
    for i in 0..<count {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17
        p[i] = Float(s >> 40) / Float(1 << 23) - 1
    }
    return p
}

/// Float32 peak estimate: cores × FMA units × lanes × 2 flops × clock. The clock is measured:
/// a dependent chain x = x·x + c on 64-bit integers (each step waits for the previous one; no
/// reassociation can shorten it) takes imul latency + add latency = 3 + 1 cycles per step on
/// every Intel core since Nehalem, so clock ≈ 4 / (seconds per step); best of 5 runs of 30 M
/// steps (a C version of the loop gives the same clock as a dependent AVX-512 fma chain here). (A float fma chain would need an
/// fma instruction, which Swift's generic x86-64 target does not emit.) The /proc/cpuinfo
/// "cpu MHz" (the nominal clock under a hypervisor) is printed too. FMA units: 2 (ports 0 and
/// 5 on Xeon server cores since Skylake-SP; on this machine a C loop of 24 independent AVX-512
/// fma chains measured ~58 flops per cycle of this clock, i.e. 2 units); lanes: 16 (AVX-512)
/// or 8 (AVX2).
private func peakEstimate() {
    var x: UInt64 = 0x1234_5678_9ABC_DEF1
    let n = 30_000_000
    var best = Double.infinity
    for r in 0..<5 {
        let m: UInt64 = 0x9E37_79B9_7F4A_7C15 &+ UInt64(r) &* 2
        let t0 = now()
        for _ in 0..<n { x = x &* x &+ m; withExtendedLifetime(x) {} }
        best = min(best, now() - t0)
    }
    let ghz = 4.0 / (best / Double(n) * 1e9)
    var cpuinfoMHz = "?"
    if let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
       let line = info.split(separator: "\n").first(where: { $0.hasPrefix("cpu MHz") }),
       let v = line.split(separator: ":").last {
        cpuinfoMHz = v.trimmingCharacters(in: .whitespaces)
    }
    let cores = ProcessInfo.processInfo.activeProcessorCount
    let lanes = Runtime.instructionSet == .avx512 ? 16 : (Runtime.instructionSet == .avx2 ? 8 : 1)
    let perCore = 2.0 * Double(lanes) * 2 * ghz
    print(String(format: "   peak estimate: clock %.2f GHz (dependent x·x + c chain, 4 cycles a step; /proc/cpuinfo: %@ MHz)",
                 ghz, cpuinfoMHz) + (x == 42 ? " " : ""))
    print(String(format: "   × 2 FMA units × %d lanes × 2 flops = %.0f GFLOP/s per core, %.0f on %d cores", lanes, perCore,
                 perCore * Double(cores), cores))
}
