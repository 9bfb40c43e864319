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

/// One training step's forward + backward (loss, head and adapter gradients; no optimizer
/// update) on MiniLM, B = 32 sentences padded to 64 tokens, r = 8 on Q, K, V, O: head only,
/// LoRA, LoRTA; on the library's GEMM and on OpenBLAS (`LORTA_GEMM`'s two backends). Each
/// backend runs in its own child process (OpenBLAS's threads keep spinning after a call, which
/// would slow whatever runs next in the same process), in alternating rounds A B A B; each child
/// times 3 interleaved repetitions after a warm-up, and the table shows the median over rounds.
/// 2 threads. Peak RSS is the largest child's (getrusage of the children).
func bertTrainStepBenchmark() throws {
    let dir = URL(fileURLWithPath: "../assets/all-MiniLM-L6-v2")
    guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("model.safetensors").path) else {
        print("bert-train: assets missing, run scripts/fetch-assets.sh"); return
    }
    print("== MiniLM training step: forward + backward (no optimizer), B=32, r=8 on Q,K,V,O, \(Runtime.threadCount) threads ==")
    var times: [GEMMBackend: [[Double]]] = [:]
    var names: [String] = []
    let rounds = 3
    for round in 0..<rounds {
        for backend in GEMMBackend.allCases {
            let (status, out) = try runChild("bert-train-child", environment: ["LORTA_GEMM": backend.rawValue])
            guard status == 0 else { print("bert-train: child (\(backend)) failed"); return }
            // Each line: <seconds>\t<name>
            let rows = out.split(separator: "\n").map { $0.split(separator: "\t", maxSplits: 1) }
            if round == 0 && backend == .lorta { names = rows.map { String($0[1]) } }
            times[backend, default: []].append(rows.map { Double($0[0])! })
        }
    }
    let width = names.map(\.count).max() ?? 10
    print("\("".padding(toLength: width, withPad: " ", startingAt: 0))   GEMM lorta   GEMM openblas   lorta/openblas   (median of \(rounds) child processes each)")
    for (i, name) in names.enumerated() {
        let ours = median(times[.lorta]!.map { $0[i] }), blas = median(times[.openblas]!.map { $0[i] })
        print("\(name.padding(toLength: width, withPad: " ", startingAt: 0))  \(ms(ours))   \(ms(blas))     \(String(format: "%.2f", ours / blas))")
    }
    var usage = rusage()
    getrusage(RUSAGE_CHILDREN.rawValue, &usage)
    print(String(format: "peak RSS of the largest child: %.0f MB", Double(usage.ru_maxrss) / 1024))
}

/// The child of ``bertTrainStepBenchmark()``: the step's variants on the backend LORTA_GEMM
/// names, one line per variant: median seconds, a tab, its name.
func bertTrainStepChild() throws {
    let dir = URL(fileURLWithPath: "../assets/all-MiniLM-L6-v2")
    let model = try BertModel(directory: dir)
    let tokenizer = try BertTokenizer(vocabularyURL: dir.appendingPathComponent("vocab.txt"))
    let rows = try String(contentsOf: URL(fileURLWithPath: "../assets/movies/train.tsv"), encoding: .utf8)
        .split(separator: "\n").prefix(32).map { $0.split(separator: "\t", maxSplits: 1) }
    let labels = rows.map { Int32($0[0])! }
    let texts = rows.map { String($0[1]) }
    let fixed = try tokenizer.encodeBatch(texts, maxLength: 64, padding: .fixed)
    let dynamic = try tokenizer.encodeBatch(texts, maxLength: 64, padding: .longest)
    let head = try BertClassificationHead(hiddenSize: model.configuration.hiddenSize, classCount: 2, seed: 1)
    let targets = ["query", "key", "value", "output"]
    let lora = try AdapterRecipe(kind: .lora, rank: 8, alpha: 16, targets: targets, seed: 2).makeAdapter(for: model.adapterHost)
    let lorta = try AdapterRecipe(kind: .lorta, rank: 8, alpha: 16, targets: targets, seed: 3).makeAdapter(for: model.adapterHost)
    let variants: [(String, TokenBatch, (any Adapter)?)] = [
        ("head only, 64 tokens", fixed, nil),
        ("LoRA r=8 (\(lora.parameterCount) params), 64 tokens", fixed, lora),
        ("LoRTA r=8 (\(lorta.parameterCount) params), 64 tokens", fixed, lorta),
        ("LoRA r=8, dynamic padding (\(dynamic.sequenceLength) tokens)", dynamic, lora),
    ]
    let t = try timeInterleaved(variants.map { v in { _ = try model.gradients(v.1, labels: labels, adapter: v.2, head: head) } },
                                repetitions: 3, warmup: 1)
    for (v, s) in zip(variants, t) { print("\(s)\t\(v.0)") }
}
