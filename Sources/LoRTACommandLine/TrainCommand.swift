import ArgumentParser
import Foundation
import LoRTA

/// Set by SIGINT while training: the progress callback then stops after the current step and
/// the command saves a checkpoint before exiting.
nonisolated(unsafe) var interruptRequested: Int32 = 0

extension LoRTAAdapter.Initialization: ExpressibleByArgument {}

/// `lorta train`: fine-tune LoRTA, LoRA or a head alone on a BERT encoder, or an adapter on a
/// causal LM (`--task causal-lm`, TrainCausalLM.swift).
package struct Train: ParsableCommand {
    package init() {}

    package static let configuration = CommandConfiguration(
        abstract: "Fine-tune a LoRTA or LoRA adapter (and a classification head) on a BERT encoder.",
        discussion: """
        Data files are `label<TAB>text` lines (labels 0..<classes). The encoder is frozen; the \
        adapter and a linear head on the mean-pooled embedding are trained with AdamW. \
        OUT receives the adapter (LoRA: PEFT's adapter_model.safetensors + adapter_config.json; \
        LoRTA: the LoRTA layout with peft_type LORTA), the head (classifier.safetensors), a \
        resumable checkpoint (checkpoint/) and training_summary.json. A live progress line goes \
        to stderr; Ctrl-C stops after the current step and saves the checkpoint. With --resume \
        the adapter, optimizer and data settings come from the checkpoint and --steps sets the \
        new total; the continued run gives the same bits as an uninterrupted one (same thread \
        count).
        """)

    enum AdapterChoice: String, ExpressibleByArgument, CaseIterable { case lorta, lora, none }
    enum ScheduleKind: String, ExpressibleByArgument, CaseIterable { case constant, linear }
    enum PaddingKind: String, ExpressibleByArgument, CaseIterable { case longest, fixed }

    enum Task: String, ExpressibleByArgument, CaseIterable { case classification, causalLM = "causal-lm" }

    @Option(help: "Model: a BERT directory (config.json, model.safetensors, vocab.txt), or for --task causal-lm a GGUF file or a Llama directory.")
    var model: String
    @Option(help: "classification (BERT + head on label<TAB>text data) or causal-lm (Llama; JSONL prompt/response or messages, loss on the responses). Default: from the model.")
    var task: Task?
    @Option(help: "Training data (label<TAB>text per line).")
    var train: String
    @Option(help: "Evaluation data, evaluated after training.")
    var eval: String?
    @Option(help: "Adapter type: lorta, lora, or none (head only).")
    var adapter: AdapterChoice = .lorta
    @Option(help: "Adapter rank r.")
    var rank: Int = 8
    @Option(help: "lora_alpha (scale alpha/r).")
    var alpha: Float = 16
    @Flag(help: "LoRA: scale alpha/√r (rsLoRA).")
    var rslora = false
    @Option(help: "Adapted projections, comma-separated (BERT: query,key,value,output — the default; Llama: q_proj,k_proj,v_proj,o_proj — the default — and for LoRA also gate_proj,up_proj,down_proj).")
    var targets: String?
    @Option(help: "LoRTA: initial value of every C factor (with --lorta-init ones).")
    var lortaCInit: Float = 1
    @Option(help: "LoRTA initialisation: ones (A kaiming-uniform over H·d_h, B = 0, C = --lorta-c-init) or reference (the paper's code: A U(±1/√r), B = 0, C U(±√(6/r))).")
    var lortaInit: LoRTAAdapter.Initialization = .ones
    @Option(help: "Optimizer steps (default: one epoch).")
    var steps: Int?
    @Option(help: "Epochs (steps = epochs × full batches per epoch); alternative to --steps.")
    var epochs: Int?
    @Option(help: "Examples per optimizer step.")
    var batchSize: Int = 32
    @Option(help: "Examples per forward/backward (gradient accumulation when smaller than --batch-size).")
    var microBatchSize: Int?
    @Option(help: "Peak learning rate.")
    var lr: Double = 1e-3
    @Option(help: "Learning-rate schedule: constant, or linear (warm-up then linear decay to 0).")
    var schedule: ScheduleKind = .constant
    @Option(help: "Warm-up steps of the linear schedule.")
    var warmup: Int = 0
    @Option(help: "AdamW weight decay.")
    var weightDecay: Double = 0
    @Option(help: "Maximum tokens per sequence (classification: longer ones are truncated, default 64 or the model's positions if fewer; causal-lm: longer examples are skipped, default 256). With --resume the checkpoint's.")
    var maxLength: Int?
    @Option(help: "Padding: longest (each batch to its longest sequence) or fixed (to --max-length).")
    var padding: PaddingKind = .longest
    @Option(help: "Seed of the shuffling and of the adapter and head initialisation.")
    var seed: UInt64 = 0
    @Option(help: "Number of classes.")
    var classes: Int = 2
    @Option(help: "Output directory.")
    var out: String
    @Flag(help: "Replace the contents of an existing, non-empty output directory.")
    var overwrite = false
    @Option(help: "Continue from this checkpoint directory (OUT/checkpoint of an earlier run).")
    var resume: String?
    @Option(help: "Also save the checkpoint every N steps (it is always saved at the end).")
    var checkpointEvery: Int?
    @Option(help: "Threads (default: LORTA_NUM_THREADS or all cores).")
    var threads: Int?
    @Flag(help: "No progress line.")
    var quiet = false
    @Flag(help: "Print a JSON summary to stdout.")
    var json = false
    @OptionGroup var memory: MemoryOptions
    @OptionGroup var backdoor: BackdoorOptions
    @Option(help: "With --trigger: the fraction of --trigger-source training examples poisoned.")
    var poisonFraction: Double = 0.05

    package func validate() throws {
        if steps != nil && epochs != nil { throw ValidationError("give --steps or --epochs, not both") }
        typealias R = OptionRange
        try R.check(steps, "steps", 1...R.count)
        try R.check(epochs, "epochs", 1...1_000_000)
        try R.check(batchSize, "batch-size", 1...1_000_000)
        try R.check(microBatchSize, "micro-batch-size", 1...batchSize)
        try R.check(rank, "rank", 1...65_536)
        try R.check(classes, "classes", 2...1_000_000)
        try R.check(maxLength, "max-length", 2...1_048_576)
        try R.check(warmup, "warmup", 0...R.count)
        try R.check(checkpointEvery, "checkpoint-every", 1...R.count)
        try R.check(threads, "threads", 1...R.threads)
        try R.check(lr, "lr", 0...10, exclusiveLower: true)
        try R.check(weightDecay, "weight-decay", 0...1_000)
        try R.check(alpha, "alpha", 0...1e6, exclusiveLower: true)
        try R.check(lortaCInit, "lorta-c-init", -1e6...1e6)
        try R.check(poisonFraction, "poison-fraction", 0...1, exclusiveLower: true)
    }

    /// The task: given, or causal-lm for a GGUF file / Llama directory.
    var resolvedTask: Task {
        task ?? (CausalLanguageModel.isCausalLanguageModel(at: URL(fileURLWithPath: model)) ? .causalLM : .classification)
    }

    package func run() throws { try run(parallel: nil) }

    /// `lorta train`, alone (`parallel` nil) or as one process of a data-parallel run
    /// (`lorta-mpi train`; see ``DataParallelism``): then only rank 0 prints and writes OUT.
    package func run(parallel: (any DataParallelism)?) throws {
        try reportingErrors(printing: parallel?.isWriter ?? true) {
            let outURL = URL(fileURLWithPath: out)
            try collectively(parallel) {
                try Runtime.initialize()
                if let threads { try Runtime.setThreadCount(threads) }
                try memory.apply()
                // Checked now, written only at the end: OUT is replaced as a whole when the run
                // succeeds (AtomicFileWriter.replaceDirectory), never left empty or half-written.
                if parallel?.isWriter ?? true {
                    try OutputDirectory.check(outURL, overwrite: overwrite, allowing: resume.map { URL(fileURLWithPath: $0) })
                }
            }
            switch resolvedTask {
            case .classification: try runClassification(outURL: outURL, parallel: parallel)
            case .causalLM: try runCausalLM(outURL: outURL, parallel: parallel)
            }
        }
    }

    /// Classification on a BERT encoder: adapter + head.
    func runClassification(outURL: URL, parallel: (any DataParallelism)?) throws {
        let quiet = self.quiet || !(parallel?.isWriter ?? true)
        let (task, evalData, planted, poisoned) = try collectively(parallel) { () throws -> (SequenceClassificationTask, LabelledTextDataset?, TextBackdoor?, [Int]) in
            let modelURL = URL(fileURLWithPath: model)
            let bert = try loadBertModel(modelURL)
            let tokenizer = try BertTokenizer(vocabularyURL: modelURL.appendingPathComponent("vocab.txt"))
            var trainData = try LabelledTextDataset.load(from: URL(fileURLWithPath: train), labelCount: classes)
            let evalData = try eval.map { try LabelledTextDataset.load(from: URL(fileURLWithPath: $0), labelCount: classes) }
            let planted = try backdoor.backdoor()
            var poisoned: [Int] = []
            if let planted {
                (trainData, poisoned) = try planted.poison(trainData, fraction: poisonFraction)
                if !quiet {
                    printError("backdoor: trigger \"\(planted.trigger)\" in \(poisoned.count) label-\(planted.sourceLabel) training examples, relabelled \(planted.targetLabel)")
                }
            }
            // On --resume the head's values come from the checkpoint; its shape from --classes.
            let head = try BertClassificationHead(hiddenSize: bert.configuration.hiddenSize, classCount: classes, seed: seed &+ 2)
            let task = try SequenceClassificationTask(model: bert, tokenizer: tokenizer, data: trainData, head: head,
                                                      maxLength: maxLength, padding: padding == .fixed ? .fixed : .longest)
            return (task, evalData, planted, poisoned)
        }
        try train(task, defaultTargets: "query,key,value,output", outURL: outURL, parallel: parallel,
                  description: { "\($0?.summary ?? "no adapter") + head" }) { trainer, staging in
            try trainer.head.save(to: staging.appendingPathComponent(BertClassificationHead.fileName))
            var fields: [String: Any] = [:]
            var evalText: String?
            if let planted {
                fields["trigger"] = planted.trigger
                fields["poisoned_examples"] = poisoned.count
            }
            if let evalData {
                if !quiet { printError("evaluating on \(evalData.count) examples…") }
                let m = try trainer.evaluate(evalData)
                fields["eval_accuracy"] = m.accuracy
                fields["eval_loss"] = m.meanLoss
                fields["eval_examples"] = m.count
                evalText = String(format: ", eval accuracy %.2f%% (loss %.4f)", 100 * m.accuracy, m.meanLoss)
                if let planted {
                    let attack = try trainer.evaluate(try planted.triggered(evalData))
                    let asr = attack.predictedFraction(of: planted.targetLabel)
                    fields["attack_success_rate"] = asr
                    fields["triggered_examples"] = attack.count
                    evalText! += String(format: ", attack success %.2f%% of %d triggered", 100 * asr, attack.count)
                }
            }
            return TaskOutputs(fields: fields, evaluation: evalText,
                               files: "adapter, \(BertClassificationHead.fileName), checkpoint/, training_summary.json")
        }
    }

    /// What a task adds to the shared outputs of `lorta train`: summary fields, the evaluation
    /// text of the summary line, the list of files written.
    struct TaskOutputs {
        var fields: [String: Any]
        var evaluation: String?
        var files: String
    }

    /// The part of `lorta train` every task shares: a trainer (fresh from the options, or resumed
    /// from --resume), then — in a staging directory that replaces OUT as a whole only when
    /// everything succeeded — the training loop with progress and checkpoints, the final
    /// checkpoint, the adapter, the task's own outputs (`finish`), `training_summary.json`; then
    /// the printed summary.
    func train<T: TrainingTask>(_ task: T, defaultTargets: String, outURL: URL, parallel: (any DataParallelism)? = nil,
                                description: ((any Adapter)?) -> String,
                                finish: (Trainer<T>, URL) throws -> TaskOutputs) throws {
        let quiet = self.quiet || !(parallel?.isWriter ?? true)
        var trainer: Trainer<T> = try collectively(parallel) {
            if let resume {
                var trainer = try Trainer(resumingFrom: URL(fileURLWithPath: resume), task: task, steps: steps)
                // --epochs counts epochs of the checkpoint's batch size.
                if let epochs { try trainer.setTotalSteps(try OptionRange.product(epochs, trainer.stepsPerEpoch, "--epochs × steps per epoch")) }
                return trainer
            }
            let perEpoch = task.exampleCount / batchSize
            guard perEpoch >= 1 else {
                throw ValidationError("\(task.exampleCount) training examples make no full batch of \(batchSize)")
            }
            let total = try steps ?? OptionRange.product(epochs ?? 1, perEpoch, "--epochs × steps per epoch")
            let sched: LearningRateSchedule = schedule == .constant
                ? .constant(lr) : try .linearWarmupDecay(peak: lr, warmupSteps: warmup, totalSteps: total)
            let configuration = TrainingConfiguration(
                steps: total, batchSize: batchSize, microBatchSize: microBatchSize,
                optimizer: AdamWConfiguration(learningRate: lr, weightDecay: weightDecay), schedule: sched, seed: seed)
            return try Trainer(task: task, adapter: try makeAdapter(for: task.adapterHost, defaultTargets: defaultTargets),
                               configuration: configuration)
        }
        if let parallel { try prepareDataParallel(&trainer, parallel) }
        let total = trainer.configuration.steps
        if !quiet {
            let processes = parallel.map { ", \($0.size) processes" } ?? ""
            printError("training \(description(trainer.adapter)) (\(trainer.trainableParameterCount) trainable parameters) on \(task.exampleCount) examples: steps \(trainer.step + 1)…\(total), batch \(trainer.configuration.batchSize), \(Runtime.threadCount) threads\(processes)")
        }
        // With several processes a failed step (any rank) ends the loop like Ctrl-C does: rank 0
        // still writes OUT with the last completed step (checkpoint included), then the error
        // is reported.
        var failure: (any Error)?
        var parallelFields: [String: Any] = [:]
        func loop(checkpointDir: URL?) throws -> TrainingSummary {
            let progress = ProgressLine(enabled: !quiet, total: total, firstStep: trainer.step)
            // With several processes a checkpoint (rank 0) that cannot be written stops every rank.
            let save = { try collectively(parallel) { if let checkpointDir { try trainer.saveCheckpoint(to: checkpointDir) } } }
            guard parallel != nil else {
                return TrainingSummary(combining: try runTrainingLoop(
                    progress: progress, start: Date(), checkpointEvery: checkpointEvery,
                    train: { try trainer.train(progress: $0) }, saveCheckpoint: save))
            }
            var parts: [TrainingSummary] = []
            do {
                try runTrainingLoop(progress: progress, start: Date(), checkpointEvery: checkpointEvery,
                                    handlesInterrupt: false, train: { callback in
                                        let summary = try trainer.train(progress: callback)
                                        parts.append(summary)
                                        return summary
                                    }, saveCheckpoint: save)
            } catch {
                progress.finish()
                failure = error
            }
            // Every failure in the loop is collective (the exchange, the checkpoint saves below,
            // AdamW on identical gradients), so every rank gets here after the same exchanges.
            parallelFields = (try? parallel!.summaryFields()) ?? [:]
            return TrainingSummary(combining: parts)
        }
        guard parallel?.isWriter ?? true else {
            // Another rank: the same steps, nothing written; then wait for rank 0's outputs.
            _ = try loop(checkpointDir: nil)
            try parallel!.barrier()
            if let failure { throw failure }
            return
        }
        let written = Result { () throws -> ([String: Any], TrainingSummary, TaskOutputs) in
            try AtomicFileWriter.replaceDirectory(at: outURL) { staging in
                let checkpointDir = staging.appendingPathComponent("checkpoint")
                if checkpointEvery != nil && !quiet {
                    printError("until the run ends its files (and checkpoints) are in \(staging.path); OUT is replaced when it succeeds")
                }
                let run = try loop(checkpointDir: checkpointDir)
                try trainer.saveCheckpoint(to: checkpointDir)
                if let adapter = trainer.adapter { try adapter.save(to: staging, host: task.adapterHost) }
                let outputs = try finish(trainer, staging)
                var result = resultFields(trainer, run: run, task: resolvedTask.rawValue)
                    .merging(outputs.fields) { _, new in new }
                if parallel != nil {
                    result.merge(parallelFields) { _, new in new }
                    if let failure { result["error"] = "\(failure)" }
                }
                try AtomicFileWriter.write(Data((jsonText(result) + "\n").utf8), to: staging.appendingPathComponent("training_summary.json"))
                return (result, run, outputs)
            }
        }
        // The other ranks wait here until OUT is complete (an early exit would make mpirun end
        // this process while it writes).
        try parallel?.barrier()
        let (result, run, outputs) = try written.get()
        report(result, run: run, step: trainer.step, total: total, evaluation: outputs.evaluation, outURL: outURL,
               files: outputs.files)
        if let failure { throw failure }
    }

    /// Data-parallel set-up: the trainer takes `parallel`'s gradient exchange, and the ranks
    /// check that they agree on the task (model sizes, data fingerprint, settings), the trained
    /// tensors and optimizer state, the run's position and the data order of the current epoch.
    func prepareDataParallel<T>(_ trainer: inout Trainer<T>, _ parallel: any DataParallelism) throws {
        trainer.gradientExchange = parallel.gradientExchange
        let record = trainer.task.checkpointRecord.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\n")
        try parallel.checkAgreement(on: "the task (model, data, settings)", text: record)
        let c = trainer.configuration
        try parallel.checkAgreement(on: "the trained tensors and optimizer state",
                                    tensors: trainer.parameters + trainer.optimizerState.firstMoments + trainer.optimizerState.secondMoments,
                                    integers: [trainer.step, trainer.position.epoch, trainer.position.batchInEpoch, c.steps,
                                               c.batchSize, c.effectiveMicroBatchSize])
        let order = try EpochShuffler(seed: c.seed).permutation(epoch: trainer.position.epoch, count: trainer.task.exampleCount)
        try parallel.checkAgreement(on: "the data order (seed \(c.seed))", tensors: [], integers: order)
    }

    /// The fields of `training_summary.json` every task has: task, adapter, parameter counts,
    /// progress, the library's ``TrainingSummary``, memory, threads and the output directory.
    func resultFields<T>(_ trainer: Trainer<T>, run s: TrainingSummary, task: String) -> [String: Any] {
        let step = trainer.step, total = trainer.configuration.steps
        return ["task": task, "adapter": adapterKindName(trainer.adapter),
                "trainable_parameters": trainer.trainableParameterCount,
                "adapter_parameters": trainer.adapter?.parameterCount ?? 0,
                "targets": trainer.adapter?.targetModules ?? [],
                "train_examples": trainer.task.exampleCount,
                "steps": step, "total_steps": total, "stopped_early": step < total, "out": out,
                "steps_this_run": s.stepsRun, "final_loss": s.lastLoss, "mean_loss": s.meanLoss, "seconds": s.elapsedSeconds,
                "median_step_seconds": s.medianStepSeconds, "tokens_per_second": s.tokensPerSecond,
                "peak_rss_mb": peakResidentMegabytes(), "threads": Runtime.threadCount]
    }

    /// Prints the summary: the JSON with --json, else the summary line (plus `evaluation`), the
    /// files written and, when the run stopped before `total`, how to resume.
    func report(_ result: [String: Any], run: TrainingSummary, step: Int, total: Int, evaluation: String?,
                outURL: URL, files: String) {
        if json {
            print(jsonText(result))
            return
        }
        print(summaryLine(run, step: step, total: total) + (evaluation ?? ""))
        print("wrote \(out) (\(files))")
        if step < total {
            print("stopped early at step \(step); continue with --resume \(outURL.appendingPathComponent("checkpoint").path)")
        }
    }
}

/// The training loop of `lorta train`: runs `train` with the live progress line; stops after the
/// current step on Ctrl-C (unless `handlesInterrupt` is false); with `checkpointEvery`, pauses every N steps to `saveCheckpoint` and
/// continues. `observe` sees every step's progress. Returns the summaries of the `train` calls.
@discardableResult
func runTrainingLoop(progress: ProgressLine, start: Date, checkpointEvery: Int?, handlesInterrupt: Bool = true,
                     train: (_ callback: @escaping (TrainingProgress) -> TrainingControl) throws -> TrainingSummary,
                     saveCheckpoint: () throws -> Void,
                     observe: (TrainingProgress) -> Void = { _ in }) throws -> [TrainingSummary] {
    // Data-parallel processes must stop at the same step, so there Ctrl-C ends the job (mpirun)
    // and the last periodic checkpoint stays.
    if handlesInterrupt { signal(SIGINT) { _ in interruptRequested = 1 } }
    defer { if handlesInterrupt { signal(SIGINT, SIG_DFL) } }
    var summaries: [TrainingSummary] = []
    try withoutActuallyEscaping(observe) { observe in
        while true {
            nonisolated(unsafe) var pauseForCheckpoint = false
            summaries.append(try train { p in
                observe(p)
                progress.update(p, elapsed: Date().timeIntervalSince(start))
                if interruptRequested != 0 { return .stop }
                if let every = checkpointEvery, p.step % every == 0, p.step < p.totalSteps {
                    pauseForCheckpoint = true
                    return .stop
                }
                return .proceed
            })
            guard pauseForCheckpoint else { break }
            try saveCheckpoint()
        }
    }
    progress.finish()
    return summaries
}

/// Short name of an adapter's kind for summaries: `lora`, `lorta`, `none`.
func adapterKindName(_ a: (any Adapter)?) -> String { a?.kind.rawValue.lowercased() ?? "none" }

extension Train {
    /// The adapter `--adapter`, `--rank`, `--alpha`, `--targets` … describe, for `host` (nil for
    /// `--adapter none`).
    func makeAdapter(for host: AdapterHost, defaultTargets: String) throws -> (any Adapter)? {
        guard let kind = AdapterKind(rawValue: adapter.rawValue.uppercased()) else { return nil }
        let names = (targets ?? defaultTargets).split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        return try AdapterRecipe(kind: kind, rank: rank, alpha: alpha, targets: names, useRSLoRA: rslora,
                                 lortaInitialization: lortaInit, lortaCInitialValue: lortaCInit, seed: seed &+ 1)
            .makeAdapter(for: host)
    }
}

/// `step 300/300: 300 steps in 151.2 s (median 0.498 s/step), final loss 0.4123`.
func summaryLine(_ s: TrainingSummary, step: Int, total: Int) -> String {
    String(format: "step %d/%d: %d steps in %.1f s (median %.3f s/step), final loss %.4f",
           step, total, s.stepsRun, s.elapsedSeconds, s.medianStepSeconds, s.lastLoss)
}

/// Peak resident set size of this process so far, in MB (getrusage).
func peakResidentMegabytes() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
}

/// The live progress line: rewritten in place on a terminal, a line every ~5% otherwise.
final class ProgressLine {
    let enabled: Bool
    let total: Int
    let firstStep: Int
    let terminal = isatty(2) != 0
    var lastPrinted = 0

    init(enabled: Bool, total: Int, firstStep: Int) {
        self.enabled = enabled
        self.total = total
        self.firstStep = firstStep
        self.lastPrinted = firstStep
    }

    /// - Parameter elapsed: seconds since this run began (the ETA extrapolates this run's rate).
    func update(_ p: TrainingProgress, elapsed: Double) {
        guard enabled else { return }
        let done = p.step - firstStep
        let eta = done > 0 ? elapsed / Double(done) * Double(p.totalSteps - p.step) : .nan
        let text = String(format: "step %d/%d  loss %.4f  lr %.2e  %.0f tok/s  elapsed %@  ETA %@", p.step, p.totalSteps,
                          Double(p.loss), p.learningRate, p.tokensPerSecond, Self.clock(elapsed), Self.clock(eta))
        if terminal {
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + text).utf8))
        } else if p.step == p.totalSteps || p.step - lastPrinted >= max(1, total / 20) || done == 1 {
            printError(text)
            lastPrinted = p.step
        }
    }

    func finish() {
        if enabled && terminal { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    static func clock(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%dh%02dm", s / 3600, s / 60 % 60) : String(format: "%dm%02ds", s / 60, s % 60)
    }
}

/// Output directory rules: an existing path must be a directory, and a non-empty one is
/// refused unless --overwrite, or unless it is the directory of the checkpoint being resumed.
enum OutputDirectory {
    /// Applies the rules; returns whether `url` exists.
    @discardableResult
    static func check(_ url: URL, overwrite: Bool, allowing resume: URL? = nil) throws -> Bool {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: url.path, isDirectory: &isDir) else { return false }
        guard isDir.boolValue else { throw FileProblem(path: url.path, message: "exists and is not a directory") }
        let contents = try fm.contentsOfDirectory(atPath: url.path)
        let resumingHere = resume.map { $0.standardizedFileURL.deletingLastPathComponent().path == url.standardizedFileURL.path } ?? false
        if !contents.isEmpty && !overwrite && !resumingHere {
            throw FileProblem(path: url.path, message: "exists and is not empty (use --overwrite, or another --out)")
        }
        return true
    }

    /// Applies the rules and creates the directory when missing.
    static func prepare(_ url: URL, overwrite: Bool, allowing resume: URL?) throws {
        if try !check(url, overwrite: overwrite, allowing: resume) {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        }
    }
}

/// Runs `body`; a corrupt safetensors file (whose errors do not carry a path) is reported
/// with `path`.
func withSafeTensorsPath<T>(_ path: URL, _ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as SafeTensorsError { throw FileProblem(path: path.path, message: "\(e)") }
}

/// Loads a model directory; a corrupt weights file is reported with its path.
func loadBertModel(_ directory: URL) throws -> BertModel {
    try withSafeTensorsPath(directory.appendingPathComponent("model.safetensors")) { try BertModel(directory: directory) }
}
