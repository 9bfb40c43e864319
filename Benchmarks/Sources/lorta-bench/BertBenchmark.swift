import Foundation
import LoRTA

/// MiniLM (all-MiniLM-L6-v2) forward: 32 sentences of assets/movies/test.tsv padded to 64
/// tokens, with 1 and 2 threads (interleaved, median of 7), plus the load time (one run).
func bertBenchmark() throws {
    let dir = URL(fileURLWithPath: "../assets/all-MiniLM-L6-v2")
    guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("model.safetensors").path) else {
        print("bert: assets missing, run scripts/fetch-assets.sh"); return
    }
    let t0 = now()
    let model = try BertModel(directory: dir)
    let load = now() - t0
    let tokenizer = try BertTokenizer(vocabularyURL: dir.appendingPathComponent("vocab.txt"))
    let lines = try String(contentsOf: URL(fileURLWithPath: "../assets/movies/test.tsv"), encoding: .utf8)
        .split(separator: "\n").prefix(32).map { String($0.split(separator: "\t", maxSplits: 1)[1]) }
    let fixed = try tokenizer.encodeBatch(lines, maxLength: 64, padding: .fixed)
    let dynamic = try tokenizer.encodeBatch(lines, maxLength: 64, padding: .longest)
    print("== BERT forward (MiniLM-L6, B=32, \(Runtime.threadCount) threads default) ==")
    print(String(format: "load config + safetensors: %.3f s (one run)", load))
    let orig = Runtime.threadCount
    defer { try? Runtime.setThreadCount(orig) }
    let variants: [() throws -> Void] = [
        { try Runtime.setThreadCount(1); _ = try model.forward(fixed) },
        { try Runtime.setThreadCount(2); _ = try model.forward(fixed) },
        { try Runtime.setThreadCount(2); _ = try model.forward(fixed, recordingActivations: true) },
        { try Runtime.setThreadCount(2); _ = try model.forward(dynamic) },
    ]
    let t = try timeInterleaved(variants, repetitions: 7, warmup: 1)
    print("32 × 64 tokens, 1 thread:              \(ms(t[0]))")
    print("32 × 64 tokens, 2 threads:             \(ms(t[1]))")
    print("32 × 64 tokens, 2 threads, recording:  \(ms(t[2]))")
    print("32 × \(dynamic.sequenceLength) tokens (dynamic padding), 2 threads: \(ms(t[3]))")
}
