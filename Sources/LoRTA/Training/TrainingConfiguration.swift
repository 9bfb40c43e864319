import Foundation

/// What a ``Trainer`` run does: how many optimizer steps, how many examples per step and per
/// forward/backward pass, the optimizer, the learning-rate schedule and the shuffling seed.
/// What an example is, how long sequences may be and how batches are padded belong to the
/// task (``SequenceClassificationTask``, ``CausalLMTask``).
///
/// Gradient accumulation: with `microBatchSize` smaller than `batchSize`, one optimizer step
/// runs ⌈`batchSize / microBatchSize`⌉ forward/backward passes over consecutive slices of the
/// step's examples and steps on the gradient of the step's loss (the task says how the
/// micro-batches are weighted: by examples for classification, by response tokens for the
/// causal LM). Peak activation memory follows `microBatchSize`.
public struct TrainingConfiguration: Sendable, Equatable {
    /// Optimizer steps to run in total, counted from the start of training (≥ 1). A resumed
    /// trainer runs the remaining `steps − step`.
    public var steps: Int
    /// Examples per optimizer step (≥ 1, at most the number of training examples).
    public var batchSize: Int
    /// Examples per forward/backward pass; `nil` means `batchSize` (no accumulation). In
    /// `1...batchSize`; it need not divide `batchSize` (the last pass of a step is smaller).
    public var microBatchSize: Int?
    /// AdamW hyper-parameters. Its `learningRate` is the base rate; the rate actually used at
    /// each step is ``schedule``'s.
    public var optimizer: AdamWConfiguration
    /// The learning rate per step: update number `k + 1` uses `schedule.learningRate(atStep: k)`.
    /// A linear schedule's `totalSteps` is its own (it is not tied to ``steps``).
    public var schedule: LearningRateSchedule
    /// Seed of the per-epoch shuffle (``EpochShuffler``). Adapter and head initialisation seeds
    /// are the caller's.
    public var seed: UInt64

    /// Defaults: batch 16 without accumulation, torch's AdamW defaults (lr 1e-3, weight decay
    /// 0.01), a constant rate, seed 0. Values are checked by ``validate()`` (called by
    /// ``Trainer``), not here. O(1).
    /// - Parameters:
    ///   - steps: optimizer steps in total (``steps``).
    ///   - batchSize: examples per optimizer step (``batchSize``).
    ///   - microBatchSize: examples per forward/backward pass; `nil` means `batchSize`
    ///     (``microBatchSize``).
    ///   - optimizer: AdamW hyper-parameters (``optimizer``).
    ///   - schedule: `nil` means a constant rate of `optimizer.learningRate`.
    ///   - seed: seed of the per-epoch shuffle (``seed``).
    public init(steps: Int, batchSize: Int = 16, microBatchSize: Int? = nil,
                optimizer: AdamWConfiguration = AdamWConfiguration(), schedule: LearningRateSchedule? = nil,
                seed: UInt64 = 0) {
        self.steps = steps
        self.batchSize = batchSize
        self.microBatchSize = microBatchSize
        self.optimizer = optimizer
        self.schedule = schedule ?? .constant(optimizer.learningRate)
        self.seed = seed
    }

    /// Examples per forward/backward pass (`microBatchSize ?? batchSize`).
    public var effectiveMicroBatchSize: Int { microBatchSize ?? batchSize }

    /// Forward/backward passes per optimizer step: ⌈batchSize / effectiveMicroBatchSize⌉.
    public var microBatchesPerStep: Int {
        let m = max(1, effectiveMicroBatchSize)
        return batchSize / m + (batchSize % m == 0 ? 0 : 1)
    }

    /// Checks every field (data-dependent limits are checked by ``Trainer``). O(1).
    /// - Throws: ``TrainingError/invalidHyperparameter(name:value:expected:)`` for `steps < 1`
    ///   and bad AdamW values; ``TrainingError/invalidBatching(_:)`` for a batch size < 1 or a
    ///   micro-batch size outside `1...batchSize`; ``TrainingError/invalidSchedule(_:)`` for a
    ///   schedule that does not validate.
    public func validate() throws(TrainingError) {
        guard steps >= 1 else { throw .invalidHyperparameter(name: "steps", value: Double(steps), expected: ">= 1") }
        guard batchSize >= 1 else { throw .invalidBatching("batch size \(batchSize) must be >= 1") }
        if let m = microBatchSize {
            guard m >= 1, m <= batchSize else {
                throw .invalidBatching("micro-batch size \(m) must be in 1...\(batchSize) (the batch size)")
            }
        }
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
    /// The step's loss before the update, as the task defines it (``TaskStepResult/loss``):
    /// mean cross-entropy over the step's examples (classification) or over its response tokens
    /// (causal LM).
    public let loss: Double
    /// Learning rate of this step: `schedule.learningRate(atStep: step − 1)`.
    public let learningRate: Double
    /// Examples in this step (= batch size).
    public let examples: Int
    /// Non-padding tokens in this step.
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

/// Summary of one ``Trainer/train(progress:)`` call.
public struct TrainingSummary: Sendable {
    /// Optimizer steps run by this call.
    public let stepsRun: Int
    /// ``Trainer/step`` at the end.
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

