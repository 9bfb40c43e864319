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
