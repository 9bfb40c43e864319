import Foundation
import LoRTA

/// Issue 3's comparison, n = 512, r = 8, Q, K and V of one layer sharing X:
///   base      3 GEMMs Y_m = X W_mᵀ                       (backward: dX = Σ_m dY_m W_m)
///   fused     base + LoRTA projection/expansion, never builds ΔW (backward: + LoRTA backward)
///   material. the reference approach: build ΔW_m, Y_m = X W_mᵀ + X ΔW_mᵀ (one more GEMM per
///             matrix); backward dX = Σ dY_m W_m + Σ dY_m ΔW_m and dΔW_m = dY_mᵀ X (two more
///             GEMMs per matrix). The contraction of dΔW_m into factor gradients is NOT timed,
///             so the materialized figures are a lower bound.
///   LoRA      base + LoRA r=8 on each of Q, K, V.
func lortaBenchmark(shapes: [(Int, Int)] = [(384, 12), (4096, 32)]) throws {
    let n = 512, r = 8
    print("== LoRTA vs base / materialized / LoRA, n = \(n), r = \(r), Q,K,V share X, \(Runtime.threadCount) threads, ISA \(Runtime.instructionSet) ==")
    for (d, heads) in shapes {
        let config = try LoRTAConfiguration(rank: r, alpha: 16, targetModules: ["query", "key", "value"],
                                            layerCount: 1, headCount: heads, headDimension: d / heads)
        var adapter = try LoRTAAdapter(configuration: config, seed: 1)
        try adapter.updateFactors { f in           // non-zero B, C so that every path does real work
            f.b = try randomTensor(f.b.shape, seed: 2)
            f.cH = try randomTensor(f.cH.shape, seed: 3)
        }
        let x = try randomTensor([n, d], seed: 4)
        let weights = try (0..<3).map { try randomTensor([d, d], seed: 10 + UInt64($0)) }
        let dys = try (0..<3).map { try randomTensor([n, d], seed: 20 + UInt64($0)) }
        let loras = try weights.map { w -> LoRALinear in
            var l = try LoRALinear(weight: w, configuration: LoRAConfiguration(rank: r, alpha: 16), seed: 5)
            l.loraB = try randomTensor([d, r], seed: 6)
            return l
        }
        var ys = try (0..<3).map { _ in try Tensor(zeros: [n, d]) }
        var dx = try Tensor(zeros: [n, d])
        var dDelta = try Tensor(zeros: [d, d])

        func base() throws { for m in 0..<3 { try Tensor.matmul(x, weights[m], transposeB: true, into: &ys[m]) } }
        func baseBackward() throws {
            for m in 0..<3 { try Tensor.matmul(dys[m], weights[m], beta: m == 0 ? 0 : 1, into: &dx) }
        }
        func fused() throws -> LoRTAProjection {
            try base()
            var outs: [Int: Tensor] = [0: ys[0], 1: ys[1], 2: ys[2]]
            ys = []                                  // hand over unique references: no copy
            let p = try adapter.forward(layer: 0, input: x, outputs: &outs)
            ys = [outs[0]!, outs[1]!, outs[2]!]
            return p
        }
        func fusedBackward(_ p: LoRTAProjection) throws {
            try baseBackward()
            try adapter.backward(layer: 0, input: x, outputGradients: [0: dys[0], 1: dys[1], 2: dys[2]],
                                 projection: p, inputGradient: &dx)
        }
        func materialized() throws -> [Tensor] {
            try base()
            var deltas: [Tensor] = []
            for m in 0..<3 {
                let delta = try adapter.deltaWeight(layer: 0, matrix: m)
                try Tensor.matmul(x, delta, transposeB: true, beta: 1, into: &ys[m])
                deltas.append(delta)
            }
            return deltas
        }
        func materializedBackward(_ deltas: [Tensor]) throws {
            try baseBackward()
            for m in 0..<3 {
                try Tensor.matmul(dys[m], deltas[m], beta: 1, into: &dx)
                try Tensor.matmul(dys[m], x, transposeA: true, into: &dDelta)
            }
        }
        func lora(backward: Bool) throws {
            for m in 0..<3 {
                ys[m] = try loras[m](x)
                if backward { _ = try loras[m].backward(input: x, outputGradient: dys[m]) }
            }
        }
        let reps = d >= 4096 ? 7 : 61
        let t = try timeInterleaved([
            { try base() },
            { _ = try fused() },
            { _ = try materialized() },
            { try lora(backward: false) },
            { try base(); try baseBackward() },
            { try fusedBackward(try fused()) },
            { try materializedBackward(try materialized()) },
            { try lora(backward: true) },
        ], repetitions: reps)
        print("d=\(d), H=\(heads):           forward                   forward+backward")
        let names = ["base QKV", "+ fused LoRTA", "+ materialized LoRTA", "+ LoRA r=8 on Q,K,V"]
        for i in 0..<4 {
            print(String(format: "  %-22@ %@  %@   %@  %@", names[i], ms(t[i]), i == 0 ? "         " : pct((t[i] - t[0]) / t[0]),
                         ms(t[4 + i]), i == 0 ? "" : pct((t[4 + i] - t[4]) / t[4])))
        }
        print(String(format: "  fused vs materialized: forward %.2f× faster, forward+backward %.2f× faster",
                     t[2] / t[1], t[6] / t[5]))
    }
    print("targets (issue 13): fused forward overhead ≤ 3% at d=4096, ≤ 10% at d=384; fused fwd+bwd ≥ 1.8× faster than materialized at d=4096")
    print()
}

/// Merge of every slice, d = 4096, H = 32, L = 8, M = 4 (32 matrices, 2 GiB of float32),
/// against a 2-thread copy loop over the same bytes. Both read and write every byte once, so
/// the ratio of times is the fraction of copy bandwidth the merge reaches.
func lortaMergeBenchmark() throws {
    let d = 4096, heads = 32, layers = 8, matrices = 4
    print("== LoRTA merge of all slices: d=\(d), H=\(heads), L=\(layers), M=\(matrices) (\(layers * matrices) matrices, \((layers * matrices * d * d * 4) >> 20) MiB) ==")
    let config = try LoRTAConfiguration(rank: 8, alpha: 16, targetModules: ["q", "k", "v", "o"],
                                        layerCount: layers, headCount: heads, headDimension: d / heads)
    var adapter = try LoRTAAdapter(configuration: config, seed: 1)
    try adapter.updateFactors { f in f.b = try randomTensor(f.b.shape, seed: 2) }
    var weights = try (0..<layers).map { l in try (0..<matrices).map { m in try randomTensor([d, d], seed: UInt64(100 + l * 8 + m)) } }
    var copies = try (0..<layers).map { _ in try (0..<matrices).map { _ in try Tensor(zeros: [d, d]) } }
    let threads = Runtime.threadCount
    func copyAll() {
        for l in 0..<layers {
            for m in 0..<matrices {
                weights[l][m].withUnsafeBufferPointer { src in
                    copies[l][m].withUnsafeMutableBufferPointer { dst in
                        let count = src.count
                        let chunk = (count + threads - 1) / threads
                        let s = UnsafeSendablePointer(src.baseAddress!), t = UnsafeSendablePointer(dst.baseAddress!)
                        DispatchQueue.concurrentPerform(iterations: threads) { i in
                            let lo = i * chunk, hi = min(count, lo + chunk)
                            if hi > lo { t.p.advanced(by: lo).update(from: s.p.advanced(by: lo), count: hi - lo) }
                        }
                    }
                }
            }
        }
    }
    var merged = false
    let t = try timeInterleaved([
        { copyAll() },
        { if merged { try adapter.unmergeAll(from: &weights) } else { try adapter.mergeAll(into: &weights) }; merged.toggle() },
    ], repetitions: 6, warmup: 1)
    let gb = Double(2 * layers * matrices * d * d * 4) / 1e9
    print(String(format: "  copy loop: %@ (%.1f GB/s)   merge all: %@ (%.1f GB/s)   merge reaches %.0f%% of copy bandwidth (target ≥ 70%%)",
                 ms(t[0]), gb / t[0], ms(t[1]), gb / t[1], 100 * t[0] / t[1]))
    print()
}

struct UnsafeSendablePointer: @unchecked Sendable {
    let p: UnsafeMutablePointer<Float>
    init(_ p: UnsafePointer<Float>) { self.p = UnsafeMutablePointer(mutating: p) }
    init(_ p: UnsafeMutablePointer<Float>) { self.p = p }
}
