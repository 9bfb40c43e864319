import Foundation

/// What a ``BertTrainer`` run does: how many optimizer steps, how the data is batched, the
/// optimizer, the learning-rate schedule and the shuffling seed.
///
/// Gradient accumulation: with `microBatchSize` smaller than `batchSize` (and dividing it),
/// one optimizer step runs `batchSize / microBatchSize` forward/backward passes and steps on the
/// example-weighted mean of their gradients (the gradient of the mean loss of all `batchSize`
/// examples, up to float rounding). Peak activation memory follows `microBatchSize`.
public struct TrainingConfiguration: Sendable, Equatable {
    /// Optimizer steps to run in total, counted from the start of training (≥ 1). A resumed
    /// trainer runs the remaining `steps − step`.
    public var steps: Int
    /// Examples per optimizer step (≥ 1, at most the number of training examples).
    public var batchSize: Int
    /// Examples per forward/backward pass; `nil` means `batchSize` (no accumulation). Must
    /// divide `batchSize`.
    public var microBatchSize: Int?
    /// Sequences are truncated to this many tokens, [CLS] and [SEP] included (≥ 2, at most the
    /// model's `maxPositionEmbeddings`).
    public var maxLength: Int
    /// `.longest`: each (micro-)batch is padded to its own longest row (dynamic padding);
    /// `.fixed`: every batch is padded to `maxLength`.
    public var padding: BertTokenizer.Padding
    /// AdamW hyper-parameters. Its `learningRate` is the base rate; the rate actually used at
    /// each step is ``schedule``'s.
    public var optimizer: AdamWConfiguration
    /// The learning rate per step: update number `k + 1` uses `schedule.learningRate(atStep: k)`.
    /// A linear schedule's `totalSteps` is its own (it is not tied to ``steps``).
    public var schedule: LearningRateSchedule
    /// Seed of the per-epoch shuffle (``EpochShuffler``). Adapter and head initialisation seeds
    /// are the caller's.
    public var seed: UInt64

    /// Defaults: batch 16 without accumulation, `maxLength` 64, dynamic padding, torch's AdamW
    /// defaults (lr 1e-3, weight decay 0.01), seed 0.
    /// Values are checked by ``validate()`` (called by ``BertTrainer``), not here. O(1).
    /// - Parameters:
    ///   - steps: optimizer steps in total (``steps``).
    ///   - batchSize: examples per optimizer step (``batchSize``).
    ///   - microBatchSize: examples per forward/backward pass; `nil` means `batchSize`
    ///     (``microBatchSize``).
    ///   - maxLength: tokens per sequence, [CLS] and [SEP] included (``maxLength``).
    ///   - padding: dynamic (`.longest`) or fixed padding (``padding``).
    ///   - optimizer: AdamW hyper-parameters (``optimizer``).
    ///   - schedule: `nil` means a constant rate of `optimizer.learningRate`.
    ///   - seed: seed of the per-epoch shuffle (``seed``).
    public init(steps: Int, batchSize: Int = 16, microBatchSize: Int? = nil, maxLength: Int = 64,
                padding: BertTokenizer.Padding = .longest, optimizer: AdamWConfiguration = AdamWConfiguration(),
                schedule: LearningRateSchedule? = nil, seed: UInt64 = 0) {
        self.steps = steps
        self.batchSize = batchSize
        self.microBatchSize = microBatchSize
        self.maxLength = maxLength
        self.padding = padding
        self.optimizer = optimizer
        self.schedule = schedule ?? .constant(optimizer.learningRate)
        self.seed = seed
    }

    /// Examples per forward/backward pass (`microBatchSize ?? batchSize`).
    public var effectiveMicroBatchSize: Int { microBatchSize ?? batchSize }

    /// Forward/backward passes per optimizer step.
    public var microBatchesPerStep: Int { batchSize / max(1, effectiveMicroBatchSize) }

    /// Checks every field (data-dependent limits are checked by ``BertTrainer``). O(1).
    /// - Throws: ``TrainingError/invalidHyperparameter(name:value:expected:)`` for `steps < 1`
    ///   and bad AdamW values; ``TrainingError/invalidBatching(_:)`` for a batch size < 1, a
    ///   micro-batch size < 1, larger than or not dividing the batch size, or `maxLength < 2`;
    ///   ``TrainingError/invalidSchedule(_:)`` for a schedule that does not validate.
    public func validate() throws(TrainingError) {
        guard steps >= 1 else { throw .invalidHyperparameter(name: "steps", value: Double(steps), expected: ">= 1") }
        guard batchSize >= 1 else { throw .invalidBatching("batch size \(batchSize) must be >= 1") }
        if let m = microBatchSize {
            guard m >= 1, m <= batchSize, batchSize % m == 0 else {
                throw .invalidBatching("micro-batch size \(m) must be in 1...\(batchSize) and divide the batch size \(batchSize)")
            }
        }
        guard maxLength >= 2 else { throw .invalidBatching("max length \(maxLength) must be >= 2 ([CLS] and [SEP])") }
        try optimizer.validate()
        // The textual form is checked by the same parser that reads checkpoints, so every
        // accepted schedule can be saved and read back.
        _ = try LearningRateSchedule(parsing: schedule.description)
    }
}

/// Reported to the progress callback after every optimizer step.
public struct TrainingProgress: Sendable {
    /// Optimizer steps done, this one included (1-based number of the step just taken).
    public let step: Int
    /// ``TrainingConfiguration/steps``.
    public let totalSteps: Int
    /// Epoch (0-based) the step's examples came from.
    public let epoch: Int
    /// Mean cross-entropy over the step's examples (before the update).
    public let loss: Double
    /// Learning rate of this step: `schedule.learningRate(atStep: step − 1)`.
    public let learningRate: Double
    /// Examples in this step (= batch size).
    public let examples: Int
    /// Non-padding tokens in this step (ones of the attention masks).
    public let tokens: Int
    /// Seconds since this `train()` call began.
    public let elapsedSeconds: Double
    /// Non-padding tokens per second over this `train()` call so far.
    public let tokensPerSecond: Double
    /// Estimated seconds to `totalSteps`: mean step time of this call × steps left.
    public let etaSeconds: Double
}

/// What the progress callback answers.
public enum TrainingControl: Sendable {
    /// Continue with the next step.
    case proceed
    /// End `train()` after this step (the state is consistent and can be saved or resumed).
    case stop
}

/// Summary of one ``BertTrainer/train(progress:)`` call.
public struct TrainingSummary: Sendable {
    /// Optimizer steps run by this call.
    public let stepsRun: Int
    /// ``BertTrainer/step`` at the end.
    public let finalStep: Int
    /// True when the callback returned `.stop` before ``TrainingConfiguration/steps`` was reached.
    public let stoppedEarly: Bool
    /// Mean of the per-step losses of this call (NaN when no step ran).
    public let meanLoss: Double
    /// Loss of the last step (NaN when no step ran).
    public let lastLoss: Double
    /// Wall-clock seconds of this call.
    public let elapsedSeconds: Double
    /// Median wall-clock seconds per step (0 when no step ran).
    public let medianStepSeconds: Double
    /// Non-padding tokens per second over this call (0 when no step ran).
    public let tokensPerSecond: Double
    /// Wall-clock seconds of each step, in order.
    public let stepSeconds: [Double]
    /// Non-padding tokens of all steps.
    public let tokens: Int
}

/// Fine-tunes an adapter (any ``Adapter``: LoRA, LoRTA; or none) and a classification head on a frozen
/// ``BertModel`` with AdamW, and saves/resumes exact checkpoints.
///
/// ```swift
/// let head = try BertClassificationHead(hiddenSize: 384, classCount: 2, seed: 1)
/// let adapter = try LoRTAAdapter(configuration: lortaConfig, seed: 2)
/// var trainer = try BertTrainer(model: model, tokenizer: tokenizer, trainingData: train,
///                               adapter: adapter, head: head,
///                               configuration: TrainingConfiguration(steps: 500, batchSize: 16))
/// let summary = try trainer.train { p in print(p.step, p.loss); return .proceed }
/// try trainer.saveCheckpoint(to: checkpointDirectory)
/// let metrics = try trainer.evaluate(test)
/// ```
///
/// **Data order.** Epoch `e` visits the examples in the order of
/// `EpochShuffler(seed: configuration.seed).permutation(epoch: e, …)`; step `s` of an epoch takes
/// the examples at positions `s·batchSize ..< (s+1)·batchSize` of that order (as consecutive
/// micro-batches when accumulating). Training batches drop the last partial batch of each
/// epoch (`dropLast`), so every step has exactly `batchSize` examples and an epoch has
/// `⌊count / batchSize⌋` steps; epochs wrap until `steps` is reached. The position (epoch,
/// step within the epoch) is kept with the step count, so a resumed run continues with the
/// same batches.
///
/// **Exactness.** Parameters, AdamW moments, step and data position are saved with their exact
/// bits; with the same thread count (in fact with any: the kernels are thread-count
/// independent), `N` steps straight give the same bits as `k` steps, ``saveCheckpoint(to:)``,
/// ``init(resumingFrom:model:tokenizer:trainingData:steps:schedule:)`` and `N − k` steps.
///
/// **Failures.** Every step is computed on copies and committed only when it succeeded: if
/// a forward/backward fails, or AdamW rejects a non-finite gradient
/// (``TrainingError/nonFiniteGradient(index:element:)``), `train()` throws that error and the
/// trainer keeps the state after the last completed step (parameters, moments, step and data
/// position untouched by the failed step).
///
/// Parameter order (optimizer and checkpoint names): `head.weight` `[classes, d]`, `head.bias`
/// `[classes]`, then the adapter's ``Adapter/parameters`` under its
/// ``Adapter/parameterNames(host:)`` for ``BertModel/adapterHost`` (LoRA: PEFT's keys, per
/// layer and target A then B; LoRTA: its factor names).
public struct BertTrainer: Sendable {
    /// The frozen base model.
    public let model: BertModel
    /// Tokenizes the training (and evaluation) texts.
    public let tokenizer: BertTokenizer
    /// The training examples (see the data order above).
    public let trainingData: LabelledTextDataset
    /// The run's settings (validated).
    public let configuration: TrainingConfiguration
    /// The trained adapter (`nil`: only the head is trained).
    public private(set) var adapter: (any Adapter)?
    /// The trained classification head.
    public private(set) var head: BertClassificationHead
    /// Optimizer steps done.
    public private(set) var step: Int
    /// Where the next step's examples start.
    public private(set) var position: TrainingPosition

    var optimizer: AdamW
    let loader: BatchLoader

    /// AdamW's moments and update count (one update per trainer step).
    public var optimizerState: OptimizerState { optimizer.state }

    /// Names of the trained tensors in optimizer order (see the type's documentation).
    public var parameterNames: [String] { TrainableParameters.names(adapter: adapter, host: model.adapterHost) }

    /// Optimizer steps in one epoch: `⌊trainingData.count / batchSize⌋`.
    public var stepsPerEpoch: Int { trainingData.count / configuration.batchSize }

    /// A trainer at step 0. The AdamW moments start at zero.
    /// - Parameters:
    ///   - model: the frozen base model.
    ///   - tokenizer: tokenizes the training (and evaluation) texts; its vocabulary must fit the
    ///     model's.
    ///   - trainingData: the training examples; at least `configuration.batchSize` of them.
    ///   - adapter: the initial adapter for ``BertModel/adapterHost`` (e.g.
    ///     ``LoRAAdapter/init(host:targets:configuration:seed:)`` or
    ///     ``LoRTAAdapter/init(configuration:seed:initialization:cInitialValue:)``); `nil` trains
    ///     the head only.
    ///   - head: initial head; its class count must be at least `trainingData.labelCount`.
    ///   - configuration: the run's settings (steps, batching, optimizer, schedule, seed).
    /// - Throws: ``TrainingError`` for an invalid configuration, a batch size larger than the
    ///   data, a `maxLength` beyond the model's positions, a tokenizer whose vocabulary is larger
    ///   than the model's, or labels the head cannot represent; ``AdapterError`` when the adapter
    ///   does not fit the model, ``BertError`` when the head does not. O(parameters).
    public init(model: BertModel, tokenizer: BertTokenizer, trainingData: LabelledTextDataset,
                adapter: (any Adapter)?, head: BertClassificationHead,
                configuration: TrainingConfiguration) throws {
        try adapter?.validate(for: model.adapterHost)
        try head.validate(for: model.configuration)
        let parameters = TrainableParameters.flatten(adapter: adapter, head: head)
        let zeros = parameters.map { p -> Tensor in
            var z = p
            z.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
            return z
        }
        let optimizer = try AdamW(configuration: configuration.optimizer,
                                  state: OptimizerState(step: 0, firstMoments: zeros, secondMoments: zeros))
        try self.init(model: model, tokenizer: tokenizer, trainingData: trainingData, adapter: adapter, head: head,
                      configuration: configuration, step: 0, position: TrainingPosition(), optimizer: optimizer)
    }

    /// The shared checks and set-up of both initialisers.
    init(model: BertModel, tokenizer: BertTokenizer, trainingData: LabelledTextDataset, adapter: (any Adapter)?,
         head: BertClassificationHead, configuration: TrainingConfiguration, step: Int, position: TrainingPosition,
         optimizer: AdamW) throws {
        try configuration.validate()
        let c = model.configuration
        guard configuration.maxLength <= c.maxPositionEmbeddings else {
            throw TrainingError.invalidBatching("max length \(configuration.maxLength) exceeds the model's \(c.maxPositionEmbeddings) positions")
        }
        guard tokenizer.vocabularySize <= c.vocabularySize else {
            throw TrainingError.invalidBatching("the tokenizer has \(tokenizer.vocabularySize) tokens, the model only \(c.vocabularySize)")
        }
        guard trainingData.count >= configuration.batchSize else {
            throw TrainingError.invalidBatching("\(trainingData.count) training examples make no full batch of \(configuration.batchSize)")
        }
        guard trainingData.labelCount <= head.classCount else {
            throw TrainingError.invalidBatching("the data has \(trainingData.labelCount) labels, the head only \(head.classCount) classes")
        }
        self.model = model
        self.tokenizer = tokenizer
        self.trainingData = trainingData
        self.configuration = configuration
        self.adapter = adapter
        self.head = head
        self.step = step
        self.position = position
        self.optimizer = optimizer
        self.loader = try BatchLoader(dataset: trainingData, tokenizer: tokenizer,
                                      batchSize: configuration.effectiveMicroBatchSize, maxLength: configuration.maxLength,
                                      padding: configuration.padding, shuffler: EpochShuffler(seed: configuration.seed),
                                      dropLast: true)
    }

    /// Runs optimizer steps until ``step`` reaches ``TrainingConfiguration/steps`` or `progress`
    /// returns `.stop` (checked after every step). Each step: the micro-batches of the step
    /// (see the type's data order), loss and gradients by ``BertModel/gradients(_:labels:adapter:head:)``,
    /// their example-weighted mean (``GradientAccumulator``), one AdamW update with
    /// `schedule.learningRate(atStep: step)`.
    /// - Returns: a summary of this call (no step runs when ``step`` is already at the total).
    /// - Throws: ``BertError`` from the model, ``TrainingError`` from batching or AdamW
    ///   (notably ``TrainingError/nonFiniteGradient(index:element:)``). The failed step leaves
    ///   no trace; earlier steps of the call stay done.
    /// - Complexity: per step, one forward and backward over `batchSize` examples plus
    ///   O(parameters) for the optimizer; O(count) per epoch for the shuffle.
    public mutating func train(progress: ((TrainingProgress) -> TrainingControl)? = nil) throws -> TrainingSummary {
        var run = TrainingRun()
        let k = configuration.microBatchesPerStep
        var epochBatches: EpochBatches?
        var stopped = false
        while step < configuration.steps {
            run.beginStep()
            if epochBatches?.epoch != position.epoch { epochBatches = try loader.batches(epoch: position.epoch) }
            var accumulator = try GradientAccumulator(microBatchesPerStep: k)
            var weightedLoss = 0.0, examples = 0, tokens = 0
            for j in 0..<k {
                let batch = try epochBatches!.batch(position.batchInEpoch * k + j)
                let g = try model.gradients(batch.tokens, labels: batch.labels, adapter: adapter, head: head)
                try accumulator.add(TrainableParameters.gradients(g), exampleCount: batch.count)
                weightedLoss += Double(g.loss) * Double(batch.count)
                examples += batch.count
                tokens += batch.tokens.tokenCount
            }
            let gradient = try accumulator.takeMean()
            let learningRate = configuration.schedule.learningRate(atStep: step)
            var parameters = TrainableParameters.flatten(adapter: adapter, head: head)
            var newOptimizer = optimizer
            try newOptimizer.update(parameters: &parameters, gradients: gradient, learningRate: learningRate)
            let (newAdapter, newHead) = try TrainableParameters.rebuild(parameters, adapter: adapter)
            // Commit.
            let epoch = position.epoch
            optimizer = newOptimizer
            adapter = newAdapter
            head = newHead
            step += 1
            position.batchInEpoch += 1
            if position.batchInEpoch >= stepsPerEpoch { position = TrainingPosition(epoch: epoch + 1, batchInEpoch: 0) }

            let loss = weightedLoss / Double(examples)  // example-weighted mean over the micro-batches
            let info = run.endStep(step: step, totalSteps: configuration.steps, epoch: epoch, loss: loss,
                                   learningRate: learningRate, examples: examples, tokens: tokens)
            if let progress, progress(info) == .stop {
                stopped = step < configuration.steps
                break
            }
        }
        return run.summary(finalStep: step, stoppedEarly: stopped)
    }

    /// Accuracy, mean cross-entropy and confusion counts of the current adapters and head on
    /// `data`, in file order, with the configuration's `maxLength` and padding.
    /// - Parameters:
    ///   - data: the labelled examples; their labels must be classes of the head.
    ///   - batchSize: examples per forward pass (≥ 1); it does not change the result
    ///     beyond float rounding of the logits.
    /// - Throws: ``TrainingError/invalidBatching(_:)`` for `batchSize < 1` or labels beyond the
    ///   head's classes; ``BertError`` from the model. O(forward over `data`).
    public func evaluate(_ data: LabelledTextDataset, batchSize: Int = 64) throws -> ClassificationMetrics {
        guard batchSize >= 1 else { throw TrainingError.invalidBatching("batch size \(batchSize) must be >= 1") }
        guard data.labelCount <= head.classCount else {
            throw TrainingError.invalidBatching("the data has \(data.labelCount) labels, the head only \(head.classCount) classes")
        }
        guard data.count > 0 else { return try ClassificationMetrics(classCount: head.classCount) }
        return try model.evaluate(data, tokenizer: tokenizer, adapter: adapter, head: head, batchSize: batchSize,
                                  maxLength: configuration.maxLength)
    }
}

/// The flat list of trained tensors (head, then the adapter's) and their names.
enum TrainableParameters {
    static func names(adapter: (any Adapter)?, host: AdapterHost) -> [String] {
        ["head.weight", "head.bias"] + (adapter?.parameterNames(host: host) ?? [])
    }

    static func flatten(adapter: (any Adapter)?, head: BertClassificationHead) -> [Tensor] {
        [head.weight, head.bias] + (adapter?.parameters ?? [])
    }

    /// Gradients in the order of ``flatten(adapter:head:)``.
    static func gradients(_ g: BertTrainingGradients) -> [Tensor] {
        [g.headWeight, g.headBias] + (g.adapter ?? [])
    }

    /// Adapter and head holding `tensors` (order and shapes of ``flatten(adapter:head:)``).
    static func rebuild(_ ts: [Tensor], adapter: (any Adapter)?) throws -> ((any Adapter)?, BertClassificationHead) {
        let head = try BertClassificationHead(weight: ts[0], bias: ts[1])
        guard var a = adapter else { return (nil, head) }
        try a.setParameters(Array(ts[2...]))
        return (a, head)
    }
}
