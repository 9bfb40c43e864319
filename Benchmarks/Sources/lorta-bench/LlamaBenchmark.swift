import Foundation
import LoRTA

/// SmolLM2-135M-Instruct (the fetched GGUF) in one process, weights warm: prefill of 128 and
/// 512 tokens (fresh cache, logits of the last token only), greedy decode steps with the cache
/// at 128 and 512 cached tokens, and all-logits scoring of 128 tokens — medians of interleaved
/// repetitions. The per-call numbers of `lorta generate --json` include first-touch costs
/// (page faults of the mapped file); these do not.
func llamaBenchmark() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    let url = root.appendingPathComponent("assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    let lm = try CausalLanguageModel(contentsOf: url)
    let prompt = try String(contentsOf: root.appendingPathComponent("scripts/bench-llm-prompt.txt"), encoding: .utf8)
    let ids128 = Array(lm.encode(prompt).prefix(128))
    let ids512 = Array((0..<4).flatMap { _ in ids128 }.prefix(512))
    let model = lm.model
    print("== SmolLM2-135M-Instruct Q4_1: \(Runtime.threadCount) threads, \(Runtime.instructionSet) ==")
    func prefill(_ ids: [Int32], _ logits: LogitSelection) throws {
        var cache = try model.makeCache(capacity: ids.count)
        _ = try model.forward(ids, cache: &cache, logits: logits)
    }
    // Decode: a cache filled to `past`, then one token; the cache is rewound after each step.
    var cache128 = try model.makeCache(capacity: 129)
    _ = try model.forward(ids128, cache: &cache128, logits: .none)
    var cache512 = try model.makeCache(capacity: 513)
    _ = try model.forward(ids512, cache: &cache512, logits: .none)
    let t = try timeInterleaved([
        { try prefill(ids128, .last) },
        { try prefill(ids512, .last) },
        { try prefill(ids128, .all) },
        { _ = try model.forward([ids128[5]], cache: &cache128, logits: .last); try cache128.truncate(to: 128) },
        { _ = try model.forward([ids128[5]], cache: &cache512, logits: .last); try cache512.truncate(to: 512) },
    ], repetitions: 9)
    print(String(format: "prefill 128 tokens (last logits):  %@  %7.1f tokens/s", ms(t[0]), 128 / t[0]))
    print(String(format: "prefill 512 tokens (last logits):  %@  %7.1f tokens/s", ms(t[1]), 512 / t[1]))
    print(String(format: "score 128 tokens (all logits):     %@  %7.1f tokens/s", ms(t[2]), 128 / t[2]))
    print(String(format: "decode step after 128 tokens:      %@  %7.1f tokens/s", ms(t[3]), 1 / t[3]))
    print(String(format: "decode step after 512 tokens:      %@  %7.1f tokens/s", ms(t[4]), 1 / t[4]))
}

/// One training step's forward + backward on SmolLM2 (the fetched GGUF): 8 sequences × 128
/// random tokens (fixed seed), LoRA r=8 on q,k,v,o and LoRTA r=8 on q,k,v,o; loss on every
/// position (a plain causal-LM step) and on the last 2 positions of each sequence (an
/// instruction answer). Medians of interleaved repetitions plus the process's peak RSS. The
/// AdamW update (a few thousand to 921,600 numbers) is not included: it is O(parameters).
func llamaTrainBenchmark() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    let model = try LlamaModel(contentsOf: root.appendingPathComponent("assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    let B = 8, T = 128, V = model.configuration.vocabularySize
    var state: UInt64 = 12345
    let tokens: [Int32] = (0..<(B * T)).map { _ in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Int32((state >> 33) % UInt64(V))
    }
    var full = [Int32](repeating: -1, count: B * T), last2 = full
    for b in 0..<B {
        for t in 0..<(T - 1) { full[b * T + t] = tokens[b * T + t + 1] }
        for t in (T - 3)..<(T - 1) { last2[b * T + t] = tokens[b * T + t + 1] }
    }
    let host = model.adapterHost
    let targets = ["q_proj", "k_proj", "v_proj", "o_proj"]
    let lora = try LoRAAdapter(host: host, targets: targets, configuration: LoRAConfiguration(rank: 8, alpha: 16), seed: 1)
    let c = try LoRTAConfiguration(rank: 8, alpha: 16, targetModules: targets, layerCount: host.layerCount,
                                   headCount: host.headCount, headDimension: host.headDimension,
                                   outputSizes: try host.modules(named: targets).map(\.outputSize))
    let lorta = try LoRTAAdapter(configuration: c, seed: 1)
    print("== SmolLM2-135M-Instruct Q4_1 training step, \(B) × \(T) tokens: \(Runtime.threadCount) threads, \(Runtime.instructionSet) ==")
    func step(_ adapter: any Adapter, _ targets: [Int32]) throws {
        var g = try adapter.zeroGradients()
        _ = try model.lossAndGradients(tokens: tokens, targets: targets, batchSize: B, adapter: adapter,
                                       gradientScale: 1 / Float(targets.filter { $0 >= 0 }.count), gradients: &g)
    }
    let t = try timeInterleaved([
        { try step(lora, full) }, { try step(lora, last2) }, { try step(lorta, full) }, { try step(lorta, last2) },
    ], repetitions: 3, warmup: 1)
    print(String(format: "LoRA r=8 q,k,v,o  (%7d parameters), loss on all tokens:  %@", lora.parameterCount, ms(t[0])))
    print(String(format: "LoRA r=8 q,k,v,o  (%7d parameters), loss on last 2:      %@", lora.parameterCount, ms(t[1])))
    print(String(format: "LoRTA r=8 q,k,v,o (%7d parameters), loss on all tokens:  %@", lorta.parameterCount, ms(t[2])))
    print(String(format: "LoRTA r=8 q,k,v,o (%7d parameters), loss on last 2:      %@", lorta.parameterCount, ms(t[3])))
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    print(String(format: "peak RSS %.0f MB", Double(usage.ru_maxrss) / 1024))
}
