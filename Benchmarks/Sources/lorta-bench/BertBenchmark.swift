import Foundation
import LoRTA

/// MiniLM (all-MiniLM-L6-v2) forward: 32 sentences of assets/movies/test.tsv padded to 64
/// tokens, with 1 and 2 threads, plus the load time (one run). Every variant runs on the model
/// as loaded and on a copy with its frozen weights packed once (``BertModel/packFrozenWeights()``),
/// alternately over 15 rounds (per round and variant: an untimed run, then unpacked and packed
/// timed, their order swapped every other round); the times are medians, the ratio the median of
/// the per-round packed/unpacked ratios. The resident memory
/// the packed copies add is read from /proc/self/statm around the packing.
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
    var packed = model
    let rss0 = residentMegabytes(), tp = now()
    try packed.packFrozenWeights()
    let packTime = now() - tp, rss1 = residentMegabytes()
    print(String(format: "packFrozenWeights: %.3f s, %.1f MB of packed copies (resident +%.1f MB)", packTime,
                 Double(packed.packedWeightBytes) / 1e6, rss1 - rss0))
    let orig = Runtime.threadCount
    defer { try? Runtime.setThreadCount(orig) }
    let variants: [(String, Int, TokenBatch, Bool)] = [
        ("32 × 64 tokens, 1 thread:             ", 1, fixed, false),
        ("32 × 64 tokens, 2 threads:            ", 2, fixed, false),
        ("32 × 64 tokens, 2 threads, recording: ", 2, fixed, true),
        ("32 × \(dynamic.sequenceLength) tokens (dynamic padding), 2 threads:", 2, dynamic, false),
    ]
    let pairs: [[() throws -> Void]] = variants.map { v in
        [model, packed].map { m in { try Runtime.setThreadCount(v.1); _ = try m.forward(v.2, recordingActivations: v.3) } }
    }
    let samples = try pairedSamples(pairs, repetitions: 15)
    print("                                         unpacked        packed   packed/unpacked (median of 15 alternating rounds)")
    for (i, v) in variants.enumerated() {
        let u = samples[i][0], p = samples[i][1]
        print("\(v.0)  \(ms(median(u)))   \(ms(median(p)))   \(String(format: "%.3f", median(zip(p, u).map { $0 / $1 })))")
    }
}

/// Samples of pairs of variants (A, B): per round and pair, one untimed run of A (so what a
/// run leaves behind — allocator state, caches — is this pair's own), then A and B timed, in
/// the order A B on even rounds and B A on odd ones. Returns [pair][0 = A, 1 = B][round].
private func pairedSamples(_ pairs: [[() throws -> Void]], repetitions: Int) throws -> [[[Double]]] {
    var samples = pairs.map { _ in [[Double](), [Double]()] }
    for round in 0..<repetitions {
        for (i, pair) in pairs.enumerated() {
            try pair[0]()
            for j in round % 2 == 0 ? [0, 1] : [1, 0] {
                let t0 = now()
                try pair[j]()
                samples[i][j].append(now() - t0)
            }
        }
    }
    return samples
}

/// Resident set size now (/proc/self/statm), in MB.
private func residentMegabytes() -> Double {
    guard let s = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
          let pages = s.split(separator: " ").dropFirst().first.flatMap({ Double($0) }) else { return .nan }
    return pages * Double(sysconf(Int32(_SC_PAGESIZE))) / 1e6
}

/// This process's peak resident set size (getrusage), in MB.
private func peakResidentMegabytes() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
}

/// One training step's forward + backward (loss, head and adapter gradients; no optimizer
/// update) on MiniLM, B = 32 sentences padded to 64 tokens, r = 8 on Q, K, V, O: head only,
/// LoRA, LoRTA; on the library's GEMM — with the weights as loaded and with the frozen weights
/// packed once (``BertModel/packFrozenWeights()``, `LORTA_BENCH_PACKED=1` in the child) — and on
/// OpenBLAS (`LORTA_GEMM`'s two backends). Each configuration runs in its own child process
/// (OpenBLAS's threads keep spinning after a call, which would slow whatever runs next in the same
/// process; and so each has its own peak RSS), in alternating rounds A B C A B C; each child
/// times 3 interleaved repetitions after a warm-up, and the table shows the median over rounds.
/// 2 threads. Peak RSS: each configuration's median of its children's own peaks (getrusage).
func bertTrainStepBenchmark() throws {
    let dir = URL(fileURLWithPath: "../assets/all-MiniLM-L6-v2")
    guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("model.safetensors").path) else {
        print("bert-train: assets missing, run scripts/fetch-assets.sh"); return
    }
    print("== MiniLM training step: forward + backward (no optimizer), B=32, r=8 on Q,K,V,O, \(Runtime.threadCount) threads ==")
    let configurations: [(name: String, environment: [String: String])] = [
        ("lorta", ["LORTA_GEMM": "lorta", "LORTA_BENCH_PACKED": "0"]),
        ("lorta packed", ["LORTA_GEMM": "lorta", "LORTA_BENCH_PACKED": "1"]),
        ("openblas", ["LORTA_GEMM": "openblas", "LORTA_BENCH_PACKED": "0"]),
    ]
    var times = Array(repeating: [[Double]](), count: configurations.count)
    var peaks = Array(repeating: [Double](), count: configurations.count)
    var names: [String] = []
    let rounds = Int(ProcessInfo.processInfo.environment["LORTA_BENCH_ROUNDS"] ?? "") ?? 3
    for round in 0..<rounds {
        for (c, configuration) in configurations.enumerated() {
            let (status, out) = try runChild("bert-train-child", environment: configuration.environment)
            guard status == 0 else { print("bert-train: child (\(configuration.name)) failed"); return }
            // Each line: <seconds>\t<name>, then "rss\t<peak MB>".
            let rows = out.split(separator: "\n").map { $0.split(separator: "\t", maxSplits: 1) }
            let steps = rows.filter { $0[0] != "rss" }
            if round == 0 && c == 0 { names = steps.map { String($0[1]) } }
            times[c].append(steps.map { Double($0[0])! })
            if let r = rows.first(where: { $0[0] == "rss" }) { peaks[c].append(Double(r[1])!) }
        }
    }
    let width = names.map(\.count).max() ?? 10
    print("\("".padding(toLength: width, withPad: " ", startingAt: 0))   GEMM lorta   lorta packed   GEMM openblas   packed/lorta  lorta/openblas   (median of \(rounds) child processes each)")
    for (i, name) in names.enumerated() {
        let ours = median(times[0].map { $0[i] }), packed = median(times[1].map { $0[i] }), blas = median(times[2].map { $0[i] })
        let ratio = median(zip(times[1], times[0]).map { $0[i] / $1[i] })
        print("\(name.padding(toLength: width, withPad: " ", startingAt: 0))  \(ms(ours))  \(ms(packed))   \(ms(blas))       \(String(format: "%.3f", ratio))          \(String(format: "%.2f", ours / blas))")
    }
    print("peak RSS (median per configuration): " + configurations.indices.map {
        String(format: "%@ %.0f MB", configurations[$0].name, median(peaks[$0]))
    }.joined(separator: ", "))
}

/// The child of ``bertTrainStepBenchmark()``: the step's variants on the backend LORTA_GEMM
/// names (with the frozen weights packed when LORTA_BENCH_PACKED=1), one line per variant:
/// median seconds, a tab, its name; then `rss`, a tab, the process's peak RSS in MB.
func bertTrainStepChild() throws {
    let dir = URL(fileURLWithPath: "../assets/all-MiniLM-L6-v2")
    var model = try BertModel(directory: dir)
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
    if ProcessInfo.processInfo.environment["LORTA_BENCH_PACKED"] == "1" { try model.packFrozenWeights() }
    let variants: [(String, TokenBatch, (any Adapter)?)] = [
        ("head only, 64 tokens", fixed, nil),
        ("LoRA r=8 (\(lora.parameterCount) params), 64 tokens", fixed, lora),
        ("LoRTA r=8 (\(lorta.parameterCount) params), 64 tokens", fixed, lorta),
        ("LoRA r=8, dynamic padding (\(dynamic.sequenceLength) tokens)", dynamic, lora),
    ]
    let t = try timeInterleaved(variants.map { v in { _ = try model.gradients(v.1, labels: labels, adapter: v.2, head: head) } },
                                repetitions: 3, warmup: 1)
    for (v, s) in zip(variants, t) { print("\(s)\t\(v.0)") }
    print("rss\t\(peakResidentMegabytes())")
}
