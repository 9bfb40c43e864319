import Foundation

/// Settings of a causal-LM fine-tuning run.
public struct CausalLMTrainingConfiguration: Sendable, Equatable {
    /// Optimizer steps to run in all.
    public var steps: Int
    /// Sequences per optimizer step (the global batch).
    public var batchSize: Int
    /// Sequences per forward/backward pass (gradient accumulation when smaller than
    /// ``batchSize``); nil means ``batchSize``.
    public var microBatchSize: Int?
    /// Padding of each micro-batch: to its longest sequence, or to the data's `maxLength`.
    public var padding: CausalLMDataset.Padding
    /// AdamW's hyper-parameters (the learning rate is the schedule's peak).
    public var optimizer: AdamWConfiguration
    /// Learning rate per step.
    public var schedule: LearningRateSchedule
    /// Seed of the data order (one shuffle per epoch).
    public var seed: UInt64

    public init(steps: Int, batchSize: Int = 8, microBatchSize: Int? = nil, padding: CausalLMDataset.Padding = .longest,
                optimizer: AdamWConfiguration = AdamWConfiguration(), schedule: LearningRateSchedule? = nil, seed: UInt64 = 0) {
        self.steps = steps
        self.batchSize = batchSize
        self.microBatchSize = microBatchSize
        self.padding = padding
        self.optimizer = optimizer
        self.schedule = schedule ?? .constant(optimizer.learningRate)
        self.seed = seed
    }

    /// Sequences per forward pass.
    public var effectiveMicroBatchSize: Int { min(microBatchSize ?? batchSize, batchSize) }

    /// - Throws: ``TrainingError`` for a non-positive count or an invalid optimizer setting.
    public func validate() throws(TrainingError) {
        guard steps >= 0 else { throw .invalidBatching("steps must be >= 0, got \(steps)") }
        guard batchSize >= 1 else { throw .invalidBatching("batch size must be >= 1, got \(batchSize)") }
        if let m = microBatchSize, m < 1 { throw .invalidBatching("micro-batch size must be >= 1, got \(m)") }
        try optimizer.validate()
    }
}

/// Fine-tunes an adapter of a causal language model on prompt/response data: the loss is the
/// mean negative log-likelihood of the response tokens (prompt tokens are not scored), the
/// token-weighted mean over the micro-batches of a step; AdamW updates the adapter's parameters,
/// nothing else. Data order: one seeded permutation per epoch (``EpochShuffler``), consecutive
/// global batches of it, the last incomplete batch of an epoch dropped — so a run resumed from
/// a checkpoint (``checkpoint()``, ``init(model:trainingData:adapter:configuration:resumingFrom:)``)
/// takes exactly the batches, and computes exactly the bits, of a run that never stopped.
public struct CausalLMTrainer: Sendable {
    public let model: LlamaModel
    public let trainingData: CausalLMDataset
    public let configuration: CausalLMTrainingConfiguration
    /// The adapter being trained (its current parameters).
    public private(set) var adapter: any Adapter
    /// Optimizer steps done.
    public private(set) var step: Int
    /// Where the next step's batch starts.
    public private(set) var position: TrainingPosition
    private var optimizer: AdamW

    /// Full batches per epoch.
    public var stepsPerEpoch: Int { trainingData.count / configuration.batchSize }

    /// A trainer at step 0 (AdamW moments at zero).
    /// - Throws: ``TrainingError`` for an invalid configuration or fewer examples than one batch;
    ///   ``AdapterError`` when the adapter does not fit the model.
    public init(model: LlamaModel, trainingData: CausalLMDataset, adapter: any Adapter,
                configuration: CausalLMTrainingConfiguration) throws {
        let zeros = try adapter.zeroGradients()
        let optimizer = try AdamW(configuration: configuration.optimizer,
                                  state: OptimizerState(step: 0, firstMoments: zeros, secondMoments: zeros))
        try self.init(model: model, trainingData: trainingData, adapter: adapter, configuration: configuration,
                      step: 0, position: TrainingPosition(), optimizer: optimizer)
    }

    /// A trainer that continues from a checkpoint: `adapter` holds the checkpoint's parameters,
    /// `checkpoint` its optimizer state, schedule, seed and data position.
    /// - Throws: ``TrainingError/invalidCheckpoint(_:)`` when the checkpoint's moments do not fit
    ///   the adapter, or its seed differs from the configuration's.
    public init(model: LlamaModel, trainingData: CausalLMDataset, adapter: any Adapter,
                configuration: CausalLMTrainingConfiguration, resumingFrom checkpoint: OptimizerCheckpoint) throws {
        guard checkpoint.optimizer.state.firstMoments.map(\.shape) == adapter.parameters.map(\.shape) else {
            throw TrainingError.invalidCheckpoint("the optimizer state has \(checkpoint.optimizer.state.firstMoments.count) moment tensors that do not match the adapter's \(adapter.parameters.count) parameters")
        }
        guard checkpoint.seed == configuration.seed else {
            throw TrainingError.invalidCheckpoint("the checkpoint was trained with seed \(checkpoint.seed), not \(configuration.seed)")
        }
        var c = configuration
        c.schedule = checkpoint.schedule
        c.optimizer = checkpoint.optimizer.configuration
        try self.init(model: model, trainingData: trainingData, adapter: adapter, configuration: c,
                      step: checkpoint.optimizer.state.step, position: checkpoint.position, optimizer: checkpoint.optimizer)
    }

    private init(model: LlamaModel, trainingData: CausalLMDataset, adapter: any Adapter,
                 configuration: CausalLMTrainingConfiguration, step: Int, position: TrainingPosition, optimizer: AdamW) throws {
        try configuration.validate()
        try adapter.validate(for: model.adapterHost)
        guard trainingData.count >= configuration.batchSize else {
            throw TrainingError.invalidBatching("\(trainingData.count) training examples make no full batch of \(configuration.batchSize)")
        }
        self.model = model
        self.trainingData = trainingData
        self.configuration = configuration
        self.adapter = adapter
        self.step = step
        self.position = position
        self.optimizer = optimizer
    }

    /// The optimizer side of a checkpoint of the current state (save it beside the adapter).
    public func checkpoint() throws -> OptimizerCheckpoint {
        try OptimizerCheckpoint(optimizer: optimizer, schedule: configuration.schedule, seed: configuration.seed,
                                position: position, parameterNames: adapter.parameterNames(host: model.adapterHost))
    }

    /// The example indices of the global batch at `position`.
    private func batchIndices(_ position: TrainingPosition) throws -> [Int] {
        let order = try EpochShuffler(seed: configuration.seed).permutation(epoch: position.epoch, count: trainingData.count)
        let start = position.batchInEpoch * configuration.batchSize
        return Array(order[start..<(start + configuration.batchSize)])
    }

    /// Runs optimizer steps until ``step`` reaches the configured total or `progress` returns
    /// `.stop` (asked after every step).
    /// - Returns: a summary of this call.
    /// - Throws: ``LlamaError``, ``AdapterError``, ``TrainingError`` (e.g. a non-finite
    ///   gradient); the failed step leaves no trace.
    /// - Complexity: per step, forward and backward over `batchSize` sequences.
    public mutating func train(progress: ((TrainingProgress) -> TrainingControl)? = nil) throws -> TrainingSummary {
        var run = TrainingRun()
        var stopped = false
        while step < configuration.steps {
            run.beginStep()
            let indices = try batchIndices(position)
            let parts = try trainingData.microBatches(indices, microBatchSize: configuration.effectiveMicroBatchSize,
                                                      padding: configuration.padding)
            var gradients = try adapter.zeroGradients()
            var loss = CausalLMLoss(sum: 0, targetCount: 0)
            var tokens = 0
            let scale = Float(parts.lossScale)
            for b in parts.microBatches {
                loss = loss + (try model.lossAndGradients(tokens: b.tokens, targets: b.targets, batchSize: b.batchSize,
                                                          adapter: adapter, gradientScale: scale, gradients: &gradients))
                tokens += b.lengths.reduce(0, +)
            }
            let learningRate = configuration.schedule.learningRate(atStep: step)
            var parameters = adapter.parameters
            var newOptimizer = optimizer
            try newOptimizer.update(parameters: &parameters, gradients: gradients, learningRate: learningRate)
            var newAdapter = adapter
            try newAdapter.setParameters(parameters)
            // Commit.
            let epoch = position.epoch
            optimizer = newOptimizer
            adapter = newAdapter
            step += 1
            position.batchInEpoch += 1
            if position.batchInEpoch >= stepsPerEpoch { position = TrainingPosition(epoch: epoch + 1, batchInEpoch: 0) }

            let info = run.endStep(step: step, totalSteps: configuration.steps, epoch: epoch, loss: loss.mean,
                                   learningRate: learningRate, examples: indices.count, tokens: tokens)
            if let progress, progress(info) == .stop {
                stopped = step < configuration.steps
                break
            }
        }
        return run.summary(finalStep: step, stoppedEarly: stopped)
    }
}

extension CausalLMTrainer {
    /// File names inside a checkpoint directory (beside the adapter's own files).
    public static let optimizerFileName = "optimizer.safetensors"
    public static let settingsFileName = "trainer.json"

    /// Saves a resumable checkpoint into `directory` (created if needed): the adapter's files
    /// (``Adapter/save(to:host:)``), the optimizer state, schedule, seed and data position
    /// (``OptimizerCheckpoint``) and the batch settings (`trainer.json`). Each file is written
    /// atomically; the optimizer file is written last, so a checkpoint interrupted while saving
    /// is recognisable (its step disagrees) and the previous one is never half-replaced file by file
    /// without the optimizer state that belongs to it.
    public func saveCheckpoint(to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try adapter.save(to: directory, host: model.adapterHost)
        let settings: [String: Any] = [
            "format": "lorta-causal-lm-trainer-1", "step": step, "total_steps": configuration.steps,
            "batch_size": configuration.batchSize, "micro_batch_size": configuration.effectiveMicroBatchSize,
            "padding": configuration.padding == .fixed ? "fixed" : "longest", "max_length": trainingData.maxLength,
        ]
        let json = try JSONSerialization.data(withJSONObject: settings, options: [.prettyPrinted, .sortedKeys])
        try AtomicFileWriter.write(to: directory.appendingPathComponent(Self.settingsFileName)) { write in
            try json.withUnsafeBytes { try write($0) }
        }
        try checkpoint().write(to: directory.appendingPathComponent(Self.optimizerFileName))
    }

    /// Continues a run from a directory written by ``saveCheckpoint(to:)``: adapter, optimizer,
    /// schedule, seed, position and batch settings come from it; `steps` (nil: the saved total)
    /// sets the new total. `trainingData` must be the same data (same order) for the continued
    /// run to equal an uninterrupted one.
    /// - Throws: ``TrainingError/invalidTrainingCheckpoint(file:reason:)`` for missing or
    ///   inconsistent files, ``AdapterFileError`` for the adapter, and what
    ///   ``init(model:trainingData:adapter:configuration:resumingFrom:)`` throws.
    public init(resumingFrom directory: URL, model: LlamaModel, trainingData: CausalLMDataset, steps: Int? = nil) throws {
        let settingsURL = directory.appendingPathComponent(Self.settingsFileName)
        func bad(_ reason: String) -> TrainingError { .invalidTrainingCheckpoint(file: settingsURL.path, reason: reason) }
        guard let data = FileManager.default.contents(atPath: settingsURL.path) else { throw bad("missing or unreadable") }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              object["format"] as? String == "lorta-causal-lm-trainer-1",
              let savedStep = object["step"] as? Int, let total = object["total_steps"] as? Int,
              let batch = object["batch_size"] as? Int, let micro = object["micro_batch_size"] as? Int,
              let padding = object["padding"] as? String, padding == "fixed" || padding == "longest" else {
            throw bad("not a causal-LM trainer settings file")
        }
        let adapter = try AdapterFiles.load(from: directory, host: model.adapterHost)
        let optimizer = try OptimizerCheckpoint(contentsOf: directory.appendingPathComponent(Self.optimizerFileName))
        guard optimizer.optimizer.state.step == savedStep else {
            throw bad("the optimizer file is at step \(optimizer.optimizer.state.step), the settings at step \(savedStep)")
        }
        let configuration = CausalLMTrainingConfiguration(
            steps: steps ?? total, batchSize: batch, microBatchSize: micro, padding: padding == "fixed" ? .fixed : .longest,
            optimizer: optimizer.optimizer.configuration, schedule: optimizer.schedule, seed: optimizer.seed)
        try self.init(model: model, trainingData: trainingData, adapter: adapter, configuration: configuration,
                      resumingFrom: optimizer)
    }
}

extension LlamaModel {
    /// Loss of the response tokens of every example of `data` (file order, `batchSize`
    /// sequences per pass): sum and count, hence mean NLL and perplexity `exp(mean)`.
    /// - Throws: ``LlamaError``, ``AdapterError``, ``CausalLMDataError``.
    public func evaluate(_ data: CausalLMDataset, adapter: (any Adapter)? = nil, batchSize: Int = 8,
                         progress: ((Int, Int) -> Void)? = nil) throws -> CausalLMLoss {
        guard batchSize >= 1 else {
            throw LlamaError.invalidParameter(name: "batch size", value: "\(batchSize)", expected: "at least 1")
        }
        var total = CausalLMLoss(sum: 0, targetCount: 0)
        var lo = 0
        while lo < data.count {
            let hi = min(lo + batchSize, data.count)
            let b = try data.batch(Array(lo..<hi))
            total = total + (try loss(tokens: b.tokens, targets: b.targets, batchSize: b.batchSize, adapter: adapter))
            lo = hi
            progress?(lo, data.count)
        }
        return total
    }
}

extension LlamaModel {
    /// Shows `observer` the activations of every example's prompt (the tokens the model answers
    /// from, chat template applied), in file order, `batchSize` prompts per forward, right-padded
    /// (``observe(_:adapter:observer:)``).
    /// - Throws: ``ObservationError``, ``LlamaError``, ``AdapterError``, and what `observer` throws.
    /// - Complexity: one forward over the prompt tokens.
    public func observePrompts(_ data: CausalLMDataset, adapter: (any Adapter)? = nil, observer: ActivationObserver,
                               batchSize: Int = 8, progress: ((Int, Int) -> Void)? = nil) throws {
        guard batchSize >= 1 else {
            throw LlamaError.invalidParameter(name: "batch size", value: "\(batchSize)", expected: "at least 1")
        }
        var lo = 0
        while lo < data.count {
            let hi = min(lo + batchSize, data.count)
            let rows = data.examples[lo..<hi].map(\.promptTokens)
            guard rows.allSatisfy({ !$0.isEmpty }) else { throw LlamaError.emptyInput }
            try observe(TokenBatch(rightPadding: rows, paddingID: 0), adapter: adapter, observer: observer)
            lo = hi
            progress?(lo, data.count)
        }
    }
}

/// Exact-match accuracy of greedy answers (``CausalLMDataset/answerMatches(generated:expected:)``).
public struct AnswerAccuracy: Sendable, Equatable {
    public var correct: Int
    public var total: Int
    public var accuracy: Double { total == 0 ? 0 : Double(correct) / Double(total) }
}

extension CausalLanguageModel {
    /// Greedy answers to the prompts of `data` (each example's prompt tokens), compared with the
    /// expected answers. Uses ``adapter`` when set.
    /// - Parameters:
    ///   - data: the examples whose prompts are answered and whose expected answers are compared.
    ///   - limit: the first `limit` examples only (nil: all).
    ///   - maxNewTokens: tokens generated per answer.
    ///   - onAnswer: called with (example index, generated text, correct?) after each answer.
    /// - Throws: ``LlamaError`` and what generation throws.
    public func answerAccuracy(_ data: CausalLMDataset, limit: Int? = nil, maxNewTokens: Int = 4,
                               onAnswer: ((Int, String, Bool) -> Void)? = nil) throws -> AnswerAccuracy {
        var result = AnswerAccuracy(correct: 0, total: 0)
        let count = min(limit ?? data.count, data.count)
        for i in 0..<count {
            let e = data.examples[i]
            let (_, text) = try generate(prompt: e.promptTokens, parameters: GenerationParameters(maxTokens: maxNewTokens))
            let ok = CausalLMDataset.answerMatches(generated: text, expected: e.expectedAnswer)
            result.total += 1
            if ok { result.correct += 1 }
            onAnswer?(i, text, ok)
        }
        return result
    }
}
