// lorta-bench: speed figures for swift-lorta, every ratio measured within one run.
//   lorta-bench [all|gemm-core|lora|lorta|lorta-384|lorta-merge|bert|bert-train|decoder-attention|quant-matmul|sgemm|llama|llama-train]
import Foundation
import LoRTA

let args = CommandLine.arguments.dropFirst()
let what = args.first ?? "all"
try Runtime.initialize()

/// Deterministic pseudo-random tensor in [-1, 1).
func randomTensor(_ shape: [Int], seed: UInt64) throws -> Tensor {
    var state = seed &* 0x9E3779B97F4A7C15 | 1
    return try Tensor(shape: shape) { buf in
        for i in 0..<buf.count {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            buf[i] = Float(Int64(bitPattern: state >> 11) % 2_000_001) / 1_000_000 - 1
        }
    }
}

switch what {
case "gemm-core-child":
    // Runs in a child process whose OPENBLAS_CORETYPE the parent chose.
    let (m, n, k) = (512, 1152, 384)
    let x = try randomTensor([m, k], seed: 1), w = try randomTensor([n, k], seed: 2)
    var layer = try LoRALinear(weight: w, configuration: LoRAConfiguration(rank: 1, alpha: 1), seed: 3)
    try layer.merge()   // merged: the forward is the base GEMM alone
    let t = try timeInterleaved([{ _ = try layer(x) }], repetitions: 15)[0]
    print(String(format: "%@ %.1f", BLASDiagnostics.current.activeCore, 2.0 * Double(m * n * k) / t / 1e9))
case "gemm-core": try gemmCoreComparison()
case "lora": try loraBenchmark()
case "lorta": try lortaBenchmark()
case "bert-train": try bertTrainStepBenchmark()
case "bert-train-child": try bertTrainStepChild()
case "lorta-384": try lortaBenchmark(shapes: [(384, 12)])
case "lorta-merge": try lortaMergeBenchmark()
case "bert": try bertBenchmark()
case "decoder-attention": try decoderBenchmark()
case "quant-matmul": try quantMatmulBenchmark()
case "sgemm": try sgemmBenchmark()
case "llama": try llamaBenchmark()
case "llama-train": try llamaTrainBenchmark()
case "all":
    try gemmCoreComparison()
    try loraBenchmark()
    try lortaBenchmark()
    try lortaMergeBenchmark()
default:
    print("usage: lorta-bench [all|gemm-core|lora|lorta|lorta-384|lorta-merge|bert|bert-train|decoder-attention|quant-matmul|sgemm|llama|llama-train]")
    exit(2)
}

/// SGEMM 512×1152×384 with OpenBLAS's SSE3 Prescott kernels (what a misdetected CPU gets) and
/// with the core recommended for this CPU, each in a child process (OpenBLAS reads
/// OPENBLAS_CORETYPE only at load time).
func gemmCoreComparison() throws {
    let diag = BLASDiagnostics.current
    print("== OpenBLAS core check: sgemm 512×1152×384, \(Runtime.threadCount) threads ==")
    print("active core in this process: \(diag.activeCore); recommended: \(diag.recommendedCoreType ?? "none")")
    var results: [(String, Double)] = []
    for core in ["Prescott", diag.recommendedCoreType].compactMap({ $0 }) {
        let out = try runChild("gemm-core-child", environment: ["OPENBLAS_CORETYPE": core, "LORTA_GEMM": "openblas"]).output
        let parts = out.split(separator: " ")
        if parts.count == 2, let rate = Double(parts[1].trimmingCharacters(in: .whitespacesAndNewlines)) {
            results.append((String(parts[0]), rate))
            print(String(format: "OPENBLAS_CORETYPE=%-11@ core %-10@ %7.1f GFLOP/s", core, String(parts[0]), rate))
        }
    }
    if results.count == 2 {
        print(String(format: "speed-up of the recommended core over Prescott: %.2f×", results[1].1 / results[0].1))
    }
    print()
}

/// Base GEMM vs LoRA forward vs LoRA forward+backward, n = 512.
func loraBenchmark() throws {
    print("== LoRA, n = 512 tokens, d_in = d_out = d, \(Runtime.threadCount) threads, ISA \(Runtime.instructionSet) ==")
    print("   d    r |   base GEMM |  LoRA fwd   | overhead |  LoRA fwd+bwd | fwd+bwd / base")
    let n = 512
    for d in [384, 4096] {
        for r in [8, 64] {
            let x = try randomTensor([n, d], seed: 10), w = try randomTensor([d, d], seed: 11)
            let dy = try randomTensor([n, d], seed: 12)
            var lora = try LoRALinear(weight: w, configuration: LoRAConfiguration(rank: r, alpha: Float(2 * r)), seed: 13)
            lora.loraB = try randomTensor([d, r], seed: 14)   // non-zero B so every path does work
            var base = lora
            try base.merge()
            let reps = d >= 4096 ? 11 : 101
            let t = try timeInterleaved([
                { _ = try base(x) },
                { _ = try lora(x) },
                { _ = try lora(x); _ = try lora.backward(input: x, outputGradient: dy) },
            ], repetitions: reps)
            print(String(format: "%5d %4d | %@ | %@ | %@ | %@ | %6.2f×", d, r, ms(t[0]), ms(t[1]), pct((t[1] - t[0]) / t[0]), ms(t[2]), t[2] / t[0]))
        }
    }
    print("targets (issue 13): overhead ≤ 3% at d=4096, r=8; ≤ 10% at d=384, r=8")
    print()
}
