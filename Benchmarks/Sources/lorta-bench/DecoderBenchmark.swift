import Foundation
import CKernels
import LoRTA

/// The decoder kernels of lt_nn.h at SmolLM2-135M shapes (9 query heads, 3 kv heads, d_h = 64,
/// width 576, MLP 1536): causal attention prefill (T = 128, 512, past = 0), training forward
/// with P saved and its backward (T = 128), and decode (T = 1) against caches of 512 and 2,048
/// positions — 30 layers' caches in turn, so that every call reads its cache from memory as in a
/// real model — plus RMSNorm, RoPE (Q) and SwiGLU on 128 tokens. Each figure is a median; the
/// 1- and 2-thread variants are interleaved in one run. "1-thr CPU" is the median CPU time of the
/// calling thread in the 1-thread runs: on a shared machine it leaves out the time the thread
/// waited for a core (the wall-clock figures do not).
func decoderBenchmark() throws {
    let H = 9, Hkv = 3, dh = 64, d = H * dh, dkv = Hkv * dh, layers = 30, maxLen = 2_048 + 1
    let scale = Float(1 / Double(dh).squareRoot())
    var state: UInt64 = 0x2545F4914F6CDD1D
    func fill(_ n: Int) -> [Float] {
        (0..<n).map { _ in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Float(Int64(bitPattern: state >> 11) % 2_000_001) / 1_000_000 - 1
        }
    }
    let q = fill(512 * d), dC = fill(128 * d)
    let caches = (0..<layers).map { _ in (k: fill(maxLen * dkv), v: fill(maxLen * dkv)) }
    var c = [Float](repeating: 0, count: 512 * d)
    var work = [Float](repeating: 0, count: H * 512 * 512)
    var p = [Float](repeating: 0, count: H * 128 * 128)
    var dq = [Float](repeating: 0, count: 128 * d), dk = [Float](repeating: 0, count: 128 * dkv), dv = dk
    var layer = 0

    func forward(T: Int, past: Int, saveP: Bool = false, rotate: Bool = false) {
        let kv = caches[rotate ? layer : 0]
        if rotate { layer = (layer + 1) % layers }
        let st = p.withUnsafeMutableBufferPointer { pp in
            lt_causal_attention_forward(1, Int64(T), Int64(past), Int64(H), Int64(Hkv), Int64(dh), scale,
                                        q, Int64(d), kv.k, Int64(dkv), kv.v, Int64(dkv), Int64(maxLen),
                                        saveP ? pp.baseAddress : nil, &c, Int64(d), &work)
        }
        precondition(st == LT_OK)
    }
    func backward(T: Int) {
        let st = lt_causal_attention_backward(1, Int64(T), Int64(H), Int64(Hkv), Int64(dh), scale,
                                              q, Int64(d), caches[0].k, Int64(dkv), caches[0].v, Int64(dkv), p,
                                              dC, Int64(d), &dq, Int64(d), &dk, Int64(dkv), &dv, Int64(dkv), &work)
        precondition(st == LT_OK)
    }
    /// 4·d_h flops per (query, visible key) pair and head: QKᵀ and P·V.
    func flops(T: Int, past: Int) -> Double { 4.0 * Double(H * dh * T) * (Double(past) + Double(T + 1) / 2) }

    print("== decoder attention (SmolLM2-135M heads: H = \(H), H_kv = \(Hkv), d_h = \(dh)), B = 1, ISA \(Runtime.instructionSet), medians ==")
    func pad(_ s: String) -> String { s.padding(toLength: 30, withPad: " ", startingAt: 0) }
    func cpuNow() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
    /// Median thread-CPU seconds of `body` on 1 thread.
    func cpuMedian(_ reps: Int, _ body: () -> Void) throws -> Double {
        try Runtime.withThreadCount(1) {
            body()
            return median((0..<reps).map { _ in let t0 = cpuNow(); body(); return cpuNow() - t0 })
        }
    }
    print("\(pad("case")) |    1 thread |   2 threads | 2-thread rate | speed-up |   1-thr CPU | 1-thr CPU rate")
    typealias Case = (name: String, reps: Int, run: () -> Void, flops: Double, bytes: Double)
    let cases: [Case] = [
        ("prefill T=128", 41, { forward(T: 128, past: 0) }, flops(T: 128, past: 0), 0),
        ("prefill T=512", 11, { forward(T: 512, past: 0) }, flops(T: 512, past: 0), 0),
        ("train fwd T=128 (P saved)", 41, { forward(T: 128, past: 0, saveP: true) }, flops(T: 128, past: 0), 0),
        ("train bwd T=128", 41, { backward(T: 128) }, 2 * flops(T: 128, past: 0), 0),
        ("decode past=512 (30 caches)", 301, { forward(T: 1, past: 512, rotate: true) }, flops(T: 1, past: 512),
         Double(2 * 513 * dkv * 4)),
        ("decode past=2048 (30 caches)", 301, { forward(T: 1, past: 2_048, rotate: true) }, flops(T: 1, past: 2_048),
         Double(2 * 2_049 * dkv * 4)),
    ]
    for cs in cases {
        let t = try timeInterleaved([
            { try Runtime.withThreadCount(1) { cs.run() } },
            { try Runtime.withThreadCount(2) { cs.run() } },
        ], repetitions: cs.reps)
        let cpu = try cpuMedian(cs.reps, cs.run)
        func rate(_ s: Double) -> String {
            cs.bytes > 0 ? String(format: "%6.1f GB/s   ", cs.bytes / s / 1e9) : String(format: "%6.1f GFLOP/s", cs.flops / s / 1e9)
        }
        print(String(format: "%@ | %@ | %@ | %@ |  %5.2f× | %@ | %@", pad(cs.name), ms(t[0]), ms(t[1]), rate(t[1]),
                     t[0] / t[1], ms(cpu), rate(cpu)))
    }

    // Element-wise kernels on 128 tokens.
    let n = 128, inter = 1_536, width = 576
    let x = fill(n * width), gamma = fill(width), g = fill(n * inter), u = fill(n * inter), dy = fill(n * inter)
    var y = [Float](repeating: 0, count: n * width), rstd = [Float](repeating: 0, count: n)
    var rq = [Float](repeating: 0, count: n * d)
    var s = [Float](repeating: 0, count: n * inter), dg = s, du = s
    let pos = (0..<n).map { Int32($0) }
    let invFreq = (0..<(dh / 2)).map { j in Float(1 / pow(100_000.0, Double(2 * j) / Double(dh))) }
    let elementwise: [(String, () -> Void)] = [
        ("RMSNorm fwd 128×576", { _ = lt_rmsnorm_forward(Int64(n), Int64(width), 1e-5, x, Int64(width), gamma, &y, Int64(width), &rstd) }),
        ("RoPE fwd Q 128×9×64", { rq.withUnsafeMutableBufferPointer { b in
            _ = lt_rope_forward(Int64(n), Int64(H), Int64(dh), Int64(dh), pos, invFreq, b.baseAddress, Int64(d)) } }),
        ("SwiGLU fwd 128×1536", { _ = lt_swiglu_forward(Int64(n), Int64(inter), g, Int64(inter), u, Int64(inter), &s, Int64(inter)) }),
        ("SwiGLU bwd 128×1536", { _ = lt_swiglu_backward(Int64(n), Int64(inter), g, Int64(inter), u, Int64(inter), dy, Int64(inter),
                                                           &dg, Int64(inter), &du, Int64(inter)) }),
    ]
    for (name, run) in elementwise {
        let t = try timeInterleaved([
            { try Runtime.withThreadCount(1) { run() } },
            { try Runtime.withThreadCount(2) { run() } },
        ], repetitions: 201)
        let cpu = try cpuMedian(201, run)
        print(String(format: "%@ | %@ | %@ |               |  %5.2f× | %@ |", pad(name), ms(t[0]), ms(t[1]), t[0] / t[1], ms(cpu)))
    }
    print()
}
