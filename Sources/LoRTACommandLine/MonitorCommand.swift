import ArgumentParser
import Foundation
import LoRTA

/// `lorta monitor`: fit a monitor of a model's activations on trusted data, score inputs with it.
struct MonitorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "monitor",
        abstract: "Watch a (fine-tuned) model's activations: fit on trusted data, flag inputs that depart from it.",
        discussion: """
        `fit` runs the model once over trusted inputs and keeps streaming statistics at every \
        observation point (each layer's output, each attention head's output, each MLP's output), \
        reduced to one row per input (mean over its tokens; for a causal LM also the last token). \
        Detectors fitted from them score every input at every point; each channel (point × \
        detector) is calibrated on out-of-fold trusted scores and the channels are combined into \
        one score (default: the largest calibrated score). Nothing about the anomaly (trigger, \
        labels) is used. `score` judges new inputs and, with --labels, reports AUROC, average \
        precision and TPR at 1% and 5% FPR of the combination and of every channel.
        """,
        subcommands: [MonitorFit.self, MonitorScore.self, MonitorCircuits.self])
}

/// A model (BERT classifier or causal LM) with its adapter, ready to show its activations on a
/// data file to an observer.
struct MonitoredModel {
    /// A BERT classifier with what it needs to run on text (nil for a causal LM).
    struct Encoder {
        let model: BertModel
        let tokenizer: BertTokenizer
        let head: BertClassificationHead
        let adapter: (any Adapter)?
    }
    let shape: ObservationShape
    let isCausal: Bool
    let encoder: Encoder?
    /// The causal LM with its adapter (nil for BERT).
    let causal: CausalLanguageModel?
    let batchSize: Int
    let maxLength: Int
    /// Runs the model over the inputs of a data file (same formats as `lorta train`/`eval`); with
    /// a shard function, only over the batches it picks from the batch count.
    private let passOver: (_ data: String, _ shard: ((Int) -> Range<Int>)?, _ observer: ActivationObserver,
                           _ progress: @escaping (Int, Int) -> Void) throws -> Void

    /// Runs the model over the inputs of `data`, batch by batch. With `parallel`, the processes
    /// first check that they read the same file, then each runs over its contiguous share of the
    /// batches (whole batches, so every input is padded and computed as in one process).
    func pass(_ data: String, _ observer: ActivationObserver, _ progress: @escaping (Int, Int) -> Void,
              parallel: (any DataParallelism)? = nil) throws {
        guard let parallel else { return try passOver(data, nil, observer, progress) }
        // Every process reaches the agreement, even one that cannot read the file (its text
        // then differs and all of them stop there); the load below reports why.
        let text = (try? String(contentsOf: URL(fileURLWithPath: data), encoding: .utf8)) ?? "<unreadable>"
        try parallel.checkAgreement(on: "the data (\(data))", text: text)
        try passOver(data, { parallel.share(of: $0) }, observer, progress)
    }

    /// The examples of `count` in the batches `shard` picks (all without one).
    private static func shardRange(count: Int, batchSize: Int, shard: ((Int) -> Range<Int>)?) -> Range<Int> {
        guard let shard else { return 0..<count }
        let batches = shard((count + batchSize - 1) / batchSize)
        return min(batches.lowerBound * batchSize, count) ..< min(batches.upperBound * batchSize, count)
    }

    /// The model, adapter, batch size and length a monitor was fitted with, each overridable.
    /// A stored model or adapter path that no longer exists is looked for relative to the
    /// monitor directory, where `lorta monitor fit` also records it (so a run folder holding the
    /// monitor and its adapter can be moved or copied as a whole).
    init(monitor: URL, model: String?, adapter: String?, batchSize: Int?, maxLength: Int?) throws {
        let source = try Monitor.source(of: monitor)
        guard let modelPath = try model ?? Self.storedPath("model", source, monitor) else {
            throw ValidationError("--model is needed: the monitor does not name its model")
        }
        try self.init(model: modelPath, adapter: try adapter ?? Self.storedPath("adapter", source, monitor),
                      batchSize: batchSize ?? source["batch_size"].flatMap { Int($0) },
                      maxLength: maxLength ?? source["max_length"].flatMap { Int($0) })
    }

    /// `source[key]` when that path exists, else `source[key + "_relative"]` resolved against the
    /// monitor directory when that exists; nil when the monitor names none.
    /// - Throws: `ValidationError` naming both paths and the option that overrides them.
    static func storedPath(_ key: String, _ source: [String: String], _ monitor: URL) throws -> String? {
        guard let path = source[key] else { return nil }
        if FileManager.default.fileExists(atPath: path) { return path }
        var tried = path
        if let relative = source[key + "_relative"] {
            let candidate = monitor.appendingPathComponent(relative).standardizedFileURL.path
            if FileManager.default.fileExists(atPath: candidate) { return candidate }
            tried += " or \(candidate)"
        }
        throw ValidationError("the monitor was fitted with the \(key) \(tried), which does not exist: pass --\(key) PATH")
    }

    /// `target` as a path relative to the directory `base` (both made absolute; `..` where they
    /// part), e.g. `../adapter` for a monitor in `run/mon` fitted with `run/adapter`.
    static func relativePath(of target: String, from base: String) -> String {
        let t = URL(fileURLWithPath: target).standardizedFileURL.pathComponents
        let b = URL(fileURLWithPath: base).standardizedFileURL.pathComponents
        var common = 0
        while common < t.count, common < b.count, t[common] == b[common] { common += 1 }
        let parts = Array(repeating: "..", count: b.count - common) + t[common...]
        return parts.isEmpty ? "." : parts.joined(separator: "/")
    }

    init(model: String, adapter: String?, batchSize: Int?, maxLength: Int?) throws {
        let modelURL = URL(fileURLWithPath: model)
        if CausalLanguageModel.isCausalLanguageModel(at: modelURL) {
            var lm = try CausalLanguageModel(contentsOf: modelURL)
            if let adapter { try lm.loadAdapter(from: URL(fileURLWithPath: adapter)) }
            let loaded = lm
            shape = lm.model.configuration.observationShape
            isCausal = true
            encoder = nil
            causal = loaded
            self.batchSize = batchSize ?? 8
            self.maxLength = maxLength ?? 256
            passOver = { [batchSize = self.batchSize, maxLength = self.maxLength] data, shard, observer, progress in
                var dataset = try CausalLMDataset.load(from: URL(fileURLWithPath: data), tokenizer: loaded.tokenizer,
                                                       maxLength: maxLength, template: try? loaded.chatTemplate())
                let range = Self.shardRange(count: dataset.count, batchSize: batchSize, shard: shard)
                guard !range.isEmpty else { return }
                if range != 0..<dataset.count {
                    dataset = try CausalLMDataset(examples: Array(dataset.examples[range]), maxLength: dataset.maxLength,
                                                  paddingID: dataset.paddingID, path: dataset.path)
                }
                try loaded.model.observePrompts(dataset, adapter: loaded.adapter, observer: observer,
                                                batchSize: batchSize, progress: progress)
            }
        } else {
            guard let adapter else { throw ValidationError("--adapter DIR (written by `lorta train`, with its head) is needed for a BERT model") }
            let adapterURL = URL(fileURLWithPath: adapter)
            let bert = try loadBertModel(modelURL)
            let tokenizer = try BertTokenizer(vocabularyURL: modelURL.appendingPathComponent("vocab.txt"))
            let headURL = adapterURL.appendingPathComponent(BertClassificationHead.fileName)
            let head = try withSafeTensorsPath(headURL) { try BertClassificationHead(contentsOf: headURL, model: bert.configuration) }
            let hasAdapter = FileManager.default.fileExists(atPath: adapterURL.appendingPathComponent("adapter_config.json").path)
            let weights = adapterURL.appendingPathComponent("adapter_model.safetensors")
            let loaded = hasAdapter ? try withSafeTensorsPath(weights) { try AdapterFiles.load(from: adapterURL, host: bert.adapterHost) } : nil
            shape = bert.configuration.observationShape
            isCausal = false
            causal = nil
            encoder = Encoder(model: bert, tokenizer: tokenizer, head: head, adapter: loaded)
            self.batchSize = batchSize ?? 64
            self.maxLength = maxLength ?? 64
            passOver = { [batchSize = self.batchSize, maxLength = self.maxLength] data, shard, observer, progress in
                var dataset = try LabelledTextDataset.load(from: URL(fileURLWithPath: data), labelCount: head.classCount)
                let range = Self.shardRange(count: dataset.count, batchSize: batchSize, shard: shard)
                guard !range.isEmpty else { return }
                if range != 0..<dataset.count {
                    dataset = try LabelledTextDataset(examples: Array(dataset.examples[range]), labelCount: dataset.labelCount)
                }
                _ = try bert.evaluate(dataset, tokenizer: tokenizer, adapter: loaded, head: head, batchSize: batchSize,
                                      maxLength: maxLength, observer: observer, progress: progress)
            }
        }
    }
}

/// Progress on a terminal: "\r<what> done/total".
private func progressLine(_ what: String, quiet: Bool) -> (Int, Int) -> Void {
    let terminal = isatty(2) != 0 && !quiet
    return { done, total in
        if terminal { FileHandle.standardError.write(Data("\r\u{1B}[K\(what) \(done)/\(total)".utf8)) }
        if terminal && done == total { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

package struct MonitorFit: ParsableCommand {
    package init() {}

    package static let configuration = CommandConfiguration(
        commandName: "fit",
        abstract: "Fit a monitor on trusted inputs (one pass) and write it to a directory.")

    @Option(help: "The model: a BERT directory, or a causal LM (GGUF file or Hugging Face directory).")
    var model: String

    @Option(help: "The adapter directory (`lorta train --out`; for BERT it holds the classification head).")
    var adapter: String?

    @Option(help: "Trusted inputs, in the format of `lorta train`/`eval` (labels are not used).")
    var trusted: String

    @Option(help: "Directory to write the monitor to (replaced as a whole).")
    var out: String

    @Option(help: "Observation points: all (default), layers, heads, mlp, or names such as layer.5.output.")
    var points = "all"

    @Option(help: "Reductions to one row per input, comma-separated: mean, first, last. Default: mean (BERT), mean,last (causal LM).")
    var reductions: String?

    @Option(help: "Detectors at every point, comma-separated: mahalanobis (per input; required), que and spectral (batch).")
    var detectors = "mahalanobis,que,spectral"

    @Option(help: "Covariance estimator: ledoit-wolf, oas, empirical, ridge:<ε>.")
    var estimator = "ledoit-wolf"

    @Option(help: "Default combination of the channels: max, mean, mahalanobis.")
    var combination = "max"

    @Option(help: "Folds of the out-of-fold calibration (2...100).")
    var folds = 5

    @Option(help: "Pseudo-classes (k-means modes) of the last layer's trusted rows, for the geometry of the circuits (0: none).")
    var pseudoClasses = 4

    @Option(help: "Inputs per forward (default 64 for BERT, 8 for a causal LM).")
    var batchSize: Int?

    @Option(help: "Tokens per input (default 64 for BERT, 256 for a causal LM).")
    var maxLength: Int?

    @Option(help: "Kernel threads (default: all cores).")
    var threads: Int?

    @Flag(help: "Print a JSON summary to stdout.")
    var json = false

    @OptionGroup var memory: MemoryOptions

    package func validate() throws {
        try OptionRange.check(folds, "folds", 2...100)
        try OptionRange.check(pseudoClasses, "pseudo-classes", 0...1000)
        if let batchSize { try OptionRange.check(batchSize, "batch-size", 1...1_000_000) }
        if let maxLength { try OptionRange.check(maxLength, "max-length", 2...1_048_576) }
        if let threads { try OptionRange.check(threads, "threads", 1...4096) }
        guard CovarianceEstimator(storedName: estimator) != nil else {
            throw ValidationError("--estimator must be ledoit-wolf, oas, empirical or ridge:<ε>")
        }
        guard MonitorCombination(rawValue: combination) != nil else {
            throw ValidationError("--combination must be one of \(MonitorCombination.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        _ = try parsedDetectors()
    }

    func parsedDetectors() throws -> [MonitorDetector] {
        try detectors.split(separator: ",").map { name in
            guard let d = MonitorDetector(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--detectors: unknown detector \"\(name)\" (\(MonitorDetector.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return d
        }
    }

    package func run() throws { try run(parallel: nil) }

    /// `lorta monitor fit`, alone (`parallel` nil) or as one process of a sharded fit
    /// (`lorta-mpi monitor-fit`): each process runs the model over a contiguous share of the
    /// trusted batches, the recorded rows are gathered in rank order, and every process fits on
    /// all of them — the monitor one process would fit, bit for bit; rank 0 prints and writes OUT.
    package func run(parallel: (any DataParallelism)?) throws {
        let json = self.json || !(parallel?.isWriter ?? true)
        try reportingErrors(printing: parallel?.isWriter ?? true) {
            let (m, sites) = try collectively(parallel) { () throws -> (MonitoredModel, [MonitorSite]) in
                try memory.apply()
                try Runtime.initialize()
                if let threads { try Runtime.setThreadCount(threads) }
                let m = try MonitoredModel(model: model, adapter: adapter, batchSize: batchSize, maxLength: maxLength)
                let reductionNames = reductions ?? (m.isCausal ? "mean,last" : "mean")
                let reductionList = try reductionNames.split(separator: ",").map { name in
                    guard let r = StatisticsCollector.Reduction(rawValue: name.trimmingCharacters(in: .whitespaces)), r != .tokens else {
                        throw ValidationError("--reductions: \"\(name)\" is not mean, first or last")
                    }
                    return r
                }
                let pointList = try ObservationPoint.list(points, shape: m.shape)
                return (m, try pointList.flatMap { p in try reductionList.map { try MonitorSite(point: p, reduction: $0) } })
            }
            let (monitor, seconds) = try timed {
                try Monitor.fit(sites: sites, detectors: parsedDetectors(), estimator: CovarianceEstimator(storedName: estimator)!,
                                combination: MonitorCombination(rawValue: combination)!, folds: folds, shape: m.shape,
                                pseudoClasses: pseudoClasses > 0 ? (pseudoClasses, nil) : nil,
                                observing: { observer in
                                    try collectively(parallel) {
                                        try m.pass(trusted, observer, progressLine("trusted inputs", quiet: json), parallel: parallel)
                                    }
                                },
                                combiningRows: parallel.map { p in { try p.gatherRows($0) } },
                                progress: nil)
            }
            guard parallel?.isWriter ?? true else { return }
            let absolute = { (p: String) in URL(fileURLWithPath: p).standardizedFileURL.path }
            let relative = { (p: String) in MonitoredModel.relativePath(of: p, from: out) }
            var source = ["model": absolute(model), "trusted": absolute(trusted), "model_relative": relative(model)]
            if let adapter {
                source["adapter"] = absolute(adapter)
                source["adapter_relative"] = relative(adapter)
            }
            if let batchSize { source["batch_size"] = String(batchSize) }
            if let maxLength { source["max_length"] = String(maxLength) }
            try monitor.write(to: URL(fileURLWithPath: out), source: source)
            var summary: [String: Any] = [
                "out": out, "trusted_inputs": monitor.trustedCount, "sites": monitor.sites.count,
                "channels": monitor.channels(batch: true).count, "detectors": monitor.detectors.map(\.rawValue),
                "combination": monitor.combination.rawValue, "folds": monitor.folds, "seconds": seconds,
            ]
            if let parallel { summary["processes"] = parallel.size }
            if json {
                print(jsonText(summary))
            } else {
                print("monitor of \(monitor.sites.count) sites × \(monitor.detectors.count) detectors fitted on "
                      + "\(monitor.trustedCount) trusted inputs in \(String(format: "%.1f", seconds)) s; wrote \(out)")
            }
        }
    }
}

struct MonitorScore: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score",
        abstract: "Score inputs with a fitted monitor; with --labels, report how well it separates them.",
        discussion: """
        The model and adapter default to the ones the monitor was fitted with. Per-input scoring \
        (default) judges each input alone (Mahalanobis at every site); --batch also runs the \
        batch detectors (QUE, spectral signature), which judge all the inputs of DATA together.
        """)

    @Option(help: "The monitor directory (`lorta monitor fit --out`).")
    var monitor: String

    @Option(help: "Inputs to score, in the format of `lorta train`/`eval` (labels are not used).")
    var data: String

    @Option(help: "One 0 or 1 per input (1 = anomalous): text lines, one-column CSV, or a 1-D .npy.")
    var labels: String?

    @Option(help: "Write the combined score of every input: .npy, .csv or .txt.")
    var scoresOut: String?

    @Option(help: "Write a self-contained HTML report (ROC curves, score histograms, a layer × head map, tables).")
    var report: String?

    @Option(help: "Override the model the monitor was fitted with.")
    var model: String?

    @Option(help: "Override the adapter the monitor was fitted with.")
    var adapter: String?

    @Option(help: "Combination of the channels (default: the monitor's): max, mean, mahalanobis.")
    var combination: String?

    @Flag(help: "Judge DATA as one batch: adds the batch detectors (que, spectral) to the channels.")
    var batch = false

    @Option(help: "Inputs per forward (default: as fitted).")
    var batchSize: Int?

    @Option(help: "Tokens per input (default: as fitted).")
    var maxLength: Int?

    @Option(help: "Kernel threads (default: all cores).")
    var threads: Int?

    @Flag(help: "Print the results as JSON to stdout.")
    var json = false

    @OptionGroup var memory: MemoryOptions

    func validate() throws {
        if let batchSize { try OptionRange.check(batchSize, "batch-size", 1...1_000_000) }
        if let maxLength { try OptionRange.check(maxLength, "max-length", 2...1_048_576) }
        if let threads { try OptionRange.check(threads, "threads", 1...4096) }
        if let combination, MonitorCombination(rawValue: combination) == nil {
            throw ValidationError("--combination must be one of \(MonitorCombination.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    static func combinationText(_ c: MonitorCombination) -> String {
        switch c {
        case .max: return "max: the largest out-of-fold-calibrated channel score (fitted on trusted inputs only)"
        case .mean: return "mean: the average of the calibrated channel scores (fitted on trusted inputs only)"
        case .mahalanobis: return "mahalanobis: Ledoit–Wolf distance of the vector of calibrated scores to the trusted inputs' vectors"
        }
    }

    func run() throws {
        try reportingErrors {
            try memory.apply()
            try Runtime.initialize()
            if let threads { try Runtime.setThreadCount(threads) }
            if let scoresOut, try MatrixFiles.kind(of: scoresOut) == .safetensors {
                throw FileProblem(path: scoresOut, message: "scores are written as .npy, .csv or .txt")
            }
            let monitorURL = URL(fileURLWithPath: monitor)
            let fitted = try Monitor(contentsOf: monitorURL)
            let source = try Monitor.source(of: monitorURL)
            let modelPath = model ?? source["model"] ?? "?"
            let m = try MonitoredModel(monitor: monitorURL, model: model, adapter: adapter, batchSize: batchSize, maxLength: maxLength)
            let (scores, seconds) = try timed {
                try fitted.score(shape: m.shape, batch: batch, combination: combination.flatMap(MonitorCombination.init(rawValue:)),
                                 observing: { observer in try m.pass(data, observer, progressLine("inputs", quiet: json)) })
            }
            let truth = try labels.map { try MatrixFiles.readAnomalyLabels($0, count: scores.combined.count, of: data) }
            let evaluation = try truth.map { try scores.evaluation(labels: $0) }
            var summary: [(key: String, value: String)] = [
                ("monitor", monitor), ("model", modelPath), ("adapter", adapter ?? source["adapter"] ?? "none"), ("data", data),
                ("inputs", String(scores.combined.count)), ("trusted inputs", String(fitted.trustedCount)),
                ("channels", "\(scores.channels.count) (\(fitted.sites.count) sites × \(batch ? fitted.detectors.count : 1) detectors)"),
                ("scoring", batch ? "batch: the inputs of DATA judged together" : "per input"),
                ("combination", Self.combinationText(scores.combination)),
            ]
            if let evaluation {
                summary.append(("combined AUROC", String(format: "%.4f", evaluation.combined.auroc)))
                summary.append(("combined TPR at 1% / 5% FPR", String(format: "%.3f / %.3f", evaluation.combined.truePositiveRateAt1PercentFPR,
                                                                     evaluation.combined.truePositiveRateAt5PercentFPR)))
            }
            let html = try report.map { _ in
                try MonitorReportContent.make(monitor: fitted, scores: scores, evaluation: evaluation, truth: truth, summary: summary)
            }
            // Everything is computed before anything is written.
            if let scoresOut { try MatrixFiles.writeScores(scores.combined, to: scoresOut) }
            if let report, let html { try html.write(to: URL(fileURLWithPath: report)) }

            var result: [String: Any] = [
                "inputs": scores.combined.count, "channels": scores.channels.count, "combination": scores.combination.rawValue,
                "batch": batch, "seconds": seconds,
            ]
            if let evaluation {
                for (k, v) in evaluation.combined.dictionary { result[k] = v }
                var points: [String: [String: [String: Double]]] = [:]
                for (ch, s) in evaluation.channels {
                    points[ch.site.description, default: [:]][ch.detector.rawValue] = s.dictionary
                }
                result["points"] = points
                // Every combination of the same channel scores, for comparison (cheap: no forward).
                var combinations: [String: [String: Double]] = [:]
                for c in MonitorCombination.allCases {
                    let other = try fitted.combine(channels: scores.channels, raw: scores.raw, batch: batch, combination: c)
                    combinations[c.rawValue] = try DetectionSummary(scores: other.combined, labels: truth!).dictionary
                }
                result["combinations"] = combinations
            }
            if json {
                print(jsonText(result))
            } else if let evaluation {
                let c = evaluation.combined
                print("\(scores.combined.count) inputs, \(scores.channels.count) channels, combination \(scores.combination.rawValue): "
                      + String(format: "AUROC %.4f, AP %.4f, TPR %.1f%% at 1%% FPR, %.1f%% at 5%% FPR", c.auroc, c.averagePrecision,
                               100 * c.truePositiveRateAt1PercentFPR, 100 * c.truePositiveRateAt5PercentFPR))
                if let all = result["combinations"] as? [String: [String: Double]] {
                    print("AUROC of each combination: " + MonitorCombination.allCases.map {
                        "\($0.rawValue) " + String(format: "%.4f", all[$0.rawValue]?["auroc"] ?? .nan) }.joined(separator: ", "))
                }
                let best = evaluation.channels.sorted { $0.summary.auroc > $1.summary.auroc }.prefix(5)
                print("best channels by AUROC:")
                for (ch, s) in best { print("  \(ch)  " + String(format: "%.4f", s.auroc)) }
            } else {
                print("\(scores.combined.count) inputs scored in \(String(format: "%.1f", seconds)) s"
                      + (scoresOut.map { "; scores written to \($0)" } ?? " (--scores-out FILE keeps them)"))
            }
        }
    }
}
