import ArgumentParser
import Foundation
import LoRTA

/// `lorta eval`: accuracy and loss of a trained adapter + head, optionally collecting
/// activation statistics for the detectors.
package struct Eval: ParsableCommand {
    package init() {}

    package static let configuration = CommandConfiguration(
        abstract: "Evaluate a trained adapter and classification head on labelled text.",
        discussion: """
        ADAPTER is a directory written by `lorta train`: adapter files (adapter_config.json + \
        adapter_model.safetensors, LoRA in PEFT's layout or LoRTA) and classifier.safetensors; \
        without adapter_config.json only the head is used. DATA has `label<TAB>text` lines. \
        With --observe, activation statistics of the named points (layer.L.output, \
        layer.L.attention.head.H, or the shorthands `layers`, `heads`, `all`) are accumulated \
        over DATA and written to --statistics-out as one .safetensors per point (the input of \
        `lorta detect` and of the Swift detectors). On a causal LM the points see every \
        example's prompt (chat template applied); `--reduction last` takes the last prompt \
        token, the one the answer is predicted from.
        """)

    @Option(help: "Model: a BERT directory (config.json, model.safetensors, vocab.txt), or a causal LM (GGUF file or Llama directory).")
    var model: String
    @Option(help: "Directory written by `lorta train` (adapter files, and classifier.safetensors for BERT). Optional for a causal LM (the base model is evaluated).")
    var adapter: String?
    @Option(help: "Data: labelled text (label<TAB>text per line) for BERT; JSONL (prompt/response or messages) for a causal LM.")
    var data: String
    @Flag(help: "Causal LM: also generate a greedy answer to every prompt and report the exact-match accuracy.")
    var generate = false
    @Option(help: "Causal LM with --generate: answer only the first N examples.")
    var limit: Int?
    @Option(help: "Causal LM with --generate: tokens generated per answer.")
    var maxNewTokens: Int = 4
    @Option(help: "Classification head file (default: ADAPTER/classifier.safetensors).")
    var head: String?
    @Option(help: "Examples per forward (default 64; causal LM 8).")
    var batchSize: Int?
    @Option(help: "Maximum tokens per sequence (BERT: truncates, default 64; causal LM: longer examples are skipped, default 256).")
    var maxLength: Int?
    @Option(help: "Observation points, comma-separated (layer.L.output, layer.L.attention.head.H, layer.L.mlp.output, layers, heads, mlp, all).")
    var observe: String?
    @Option(help: "How token activations become rows: mean (per sequence), first ([CLS]), last (last real token) or tokens.")
    var reduction: String = "mean"
    @Flag(help: "Keep per-label statistics too (reduction mean or first).")
    var perLabel = false
    @Option(help: "Directory for the statistics files (needed with --observe).")
    var statisticsOut: String?
    @Option(help: "Threads (default: LORTA_NUM_THREADS or all cores).")
    var threads: Int?
    @Flag(help: "Print a JSON summary to stdout.")
    var json = false
    @OptionGroup var backdoor: BackdoorOptions
    @Option(help: "Components to mean-ablate in every forward, comma-separated (layer.L.attention.head.H, layer.L.mlp); needs --monitor.")
    var ablate: String?
    @Option(help: "A monitor directory (`lorta monitor fit`) whose trusted means replace the --ablate components.")
    var monitor: String?

    package func validate() throws {
        if (ablate == nil) != (monitor == nil) { throw ValidationError("--ablate and --monitor go together") }
        if observe != nil && statisticsOut == nil { throw ValidationError("--observe needs --statistics-out DIR") }
        if observe == nil && statisticsOut != nil { throw ValidationError("--statistics-out needs --observe") }
        try OptionRange.check(threads, "threads", 1...OptionRange.threads)
        try OptionRange.check(limit, "limit", 1...OptionRange.count)
        try OptionRange.check(maxNewTokens, "max-new-tokens", 1...1_000_000)
        try OptionRange.check(batchSize, "batch-size", 1...1_000_000)
        try OptionRange.check(maxLength, "max-length", 2...1_048_576)
        guard StatisticsCollector.Reduction(rawValue: reduction) != nil else {
            throw ValidationError("--reduction must be one of \(StatisticsCollector.Reduction.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    package func run() throws { try run(parallel: nil) }

    /// `lorta eval`, alone (`parallel` nil) or as one process of a sharded evaluation
    /// (`lorta-mpi eval`; a causal LM: ``runCausalLM(parallel:)``): each rank evaluates and observes a contiguous share of
    /// DATA's batches; metrics and statistics are merged across ranks in rank order (the exact merge);
    /// rank 0 prints and writes --statistics-out.
    package func run(parallel: (any DataParallelism)?) throws {
        if CausalLanguageModel.isCausalLanguageModel(at: URL(fileURLWithPath: model)) {
            return try runCausalLM(parallel: parallel)
        }
        guard let adapter else { throw ValidationError("--adapter DIR (written by `lorta train`) is needed for a BERT model") }
        let batchSize = self.batchSize ?? 64, maxLength = self.maxLength ?? 64
        let json = self.json || !(parallel?.isWriter ?? true)
        try reportingErrors(printing: parallel?.isWriter ?? true) {
            let (bert, tokenizer, classifier, adapter, dataset, collector, ablation) = try collectively(parallel) {
                try Runtime.initialize()
                if let threads { try Runtime.setThreadCount(threads) }
                let modelURL = URL(fileURLWithPath: model), adapterURL = URL(fileURLWithPath: adapter)
                let bert = try loadBertModel(modelURL)
                let c = bert.configuration
                let tokenizer = try BertTokenizer(vocabularyURL: modelURL.appendingPathComponent("vocab.txt"))
                let headURL = head.map { URL(fileURLWithPath: $0) } ?? adapterURL.appendingPathComponent(BertClassificationHead.fileName)
                let classifier = try withSafeTensorsPath(headURL) { try BertClassificationHead(contentsOf: headURL, model: c) }
                let hasAdapter = FileManager.default.fileExists(atPath: adapterURL.appendingPathComponent("adapter_config.json").path)
                let adapterWeights = adapterURL.appendingPathComponent("adapter_model.safetensors")
                let adapter = hasAdapter ? try withSafeTensorsPath(adapterWeights) { try AdapterFiles.load(from: adapterURL, host: bert.adapterHost) } : nil
                var dataset = try LabelledTextDataset.load(from: URL(fileURLWithPath: data), labelCount: classifier.classCount)
                if let parallel {
                    // This rank's contiguous shard of whole batches (so every example is evaluated
                    // in the batch it has in a single-process run: same padding, same bits); the
                    // ranks first check they read the same file.
                    try parallel.checkAgreement(on: "the data (\(data))", text: dataset.examples.map { "\($0.label)\t\($0.text)" }.joined(separator: "\n"))
                    let batches = parallel.share(of: (dataset.count + batchSize - 1) / batchSize)
                    let shard = min(batches.lowerBound * batchSize, dataset.count) ..< min(batches.upperBound * batchSize, dataset.count)
                    dataset = try LabelledTextDataset(examples: Array(dataset.examples[shard]), labelCount: dataset.labelCount)
                }
                let collector = try makeCollector(c.observationShape)
                let ablation = try makeAblation(c.observationShape)
                return (bert, tokenizer, classifier, adapter, dataset, collector, ablation)
            }
            let terminal = isatty(2) != 0
            var (metrics, seconds) = try collectively(parallel) { try timed {
                try bert.evaluate(dataset, tokenizer: tokenizer, adapter: adapter, head: classifier,
                                  batchSize: batchSize, maxLength: maxLength, observer: collector,
                                  labelObserver: perLabel, ablation: ablation) { done, total in
                    if terminal && !json {
                        FileHandle.standardError.write(Data("\r\u{1B}[Kevaluating \(done)/\(total)".utf8))
                    }
                }
            } }
            if terminal && !json { FileHandle.standardError.write(Data("\n".utf8)) }
            // With --trigger: the same model on the triggered source-label examples.
            var attack = try collectively(parallel) {
                try backdoor.backdoor().map { b in
                    (b, try bert.evaluate(try b.triggered(dataset), tokenizer: tokenizer, adapter: adapter, head: classifier,
                                          batchSize: batchSize, maxLength: maxLength, ablation: ablation))
                }
            }
            if let parallel {
                metrics = try parallel.mergeMetrics(metrics)
                if let (b, m) = attack { attack = (b, try parallel.mergeMetrics(m)) }
                if let collector { collector.statistics = try parallel.mergeStatistics(collector.statistics) }
            }
            let written = try collectively(parallel) { () throws -> [String] in
                guard parallel?.isWriter ?? true, let collector else { return [] }
                return try collector.write(to: URL(fileURLWithPath: statisticsOut!)).map(\.path)
            }
            guard parallel?.isWriter ?? true else { return }
            var result: [String: Any] = [
                "accuracy": metrics.accuracy, "loss": metrics.meanLoss, "examples": metrics.count,
                "correct": metrics.correct, "confusion": metrics.confusion,
                "adapter": adapterKindName(adapter), "seconds": seconds,
                "examples_per_second": seconds > 0 ? Double(metrics.count) / seconds : 0,
                "statistics_files": written,
            ]
            if let parallel { result["processes"] = parallel.size }
            if let ablation { result["ablated"] = ablation.ablated.sorted().map(\.description) }
            if let (b, m) = attack {
                result["attack_success_rate"] = m.predictedFraction(of: b.targetLabel)
                result["triggered_examples"] = m.count
                result["trigger"] = b.trigger
            }
            if json {
                print(jsonText(result))
            } else {
                print(String(format: "accuracy %.2f%% (%d/%d), loss %.4f, %.1f s", 100 * metrics.accuracy, metrics.correct,
                             metrics.count, metrics.meanLoss, seconds))
                if let (b, m) = attack {
                    print(String(format: "attack success %.2f%%: %d label-%d inputs with the trigger, %.0f classified %d",
                                 100 * m.predictedFraction(of: b.targetLabel), m.count, b.sourceLabel,
                                 m.predictedFraction(of: b.targetLabel) * Double(m.count), b.targetLabel))
                }
                if !written.isEmpty { print("wrote \(written.count) statistics files to \(statisticsOut!)") }
            }
        }
    }

    /// The mean ablation --ablate and --monitor ask for (nil without them).
    func makeAblation(_ shape: ObservationShape) throws -> MeanAblation? {
        guard let ablate, let monitor else { return nil }
        let components = try ablate.split(separator: ",").map { try ModelComponent(parsing: $0.trimmingCharacters(in: .whitespaces)) }
        guard !components.isEmpty else { throw ValidationError("--ablate names no component") }
        let fitted = try Monitor(contentsOf: URL(fileURLWithPath: monitor))
        let ablation = try MeanAblation(monitor: fitted, components: components, ablated: Set(components))
        try ablation.validate(for: shape)
        return ablation
    }

    /// The collector --observe, --reduction asks for (nil without --observe).
    func makeCollector(_ shape: ObservationShape) throws -> StatisticsCollector? {
        guard let observe else { return nil }
        return try StatisticsCollector(points: try ObservationPoint.list(observe, shape: shape), shape: shape,
                                       reduction: StatisticsCollector.Reduction(rawValue: reduction)!)
    }
}
