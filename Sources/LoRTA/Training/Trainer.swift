import Foundation

/// Fine-tunes an adapter (any ``Adapter``: LoRA, LoRTA; or none) and the task's own tensors (a
/// classification head) on a frozen model with AdamW, and saves and resumes exact checkpoints —
/// one trainer for every ``TrainingTask``.
///
/// ```swift
/// // An encoder classifier:
/// let task = try SequenceClassificationTask(model: bert, tokenizer: tokenizer, data: train, head: head)
/// var trainer = try Trainer(task: task, adapter: lorta, configuration: TrainingConfiguration(steps: 500))
/// let summary = try trainer.train { p in print(p.step, p.loss); return .proceed }
/// try trainer.saveCheckpoint(to: checkpointDirectory)
/// let metrics = try trainer.evaluate(test)
///
/// // A causal LM, loss on the responses:
/// let lmTask = try CausalLMTask(model: llama, data: instructions)
/// var lmTrainer = try Trainer(task: lmTask, adapter: lora, configuration: TrainingConfiguration(steps: 40, batchSize: 8))
/// ```
///
/// **Data order.** Epoch `e` visits the examples in the order of
/// `EpochShuffler(seed: configuration.seed).permutation(epoch: e, count: task.exampleCount)`;
/// step `s` of an epoch takes the examples at positions `s·batchSize ..< (s+1)·batchSize` of that
/// order (consecutive micro-batches of them when accumulating). The last partial batch of each
/// epoch is dropped, so every step has exactly `batchSize` examples and an epoch has
/// `⌊count / batchSize⌋` steps; epochs wrap until `steps` is reached. The position (epoch, step
/// within the epoch) is kept with the step count, so a resumed run continues with the same batches.
///
/// **Exactness.** Parameters, AdamW moments, step and data position are saved with their exact
/// bits, and the kernels are thread-count independent: `N` steps straight give the same bits as
/// `k` steps, ``saveCheckpoint(to:)``, ``init(resumingFrom:task:steps:schedule:)`` and `N − k` steps.
///
/// **Data parallelism.** A step's micro-batches come through ``gradientExchange``: with a
/// data-parallel exchange each process computes a contiguous share of the micro-batches and
/// gets the others' results in order, and every process combines them with the same fixed-order
/// rule — so P processes take the same steps, bit for bit, as one process with the same batch
/// and micro-batch sizes (see ``GradientExchange``). Checkpoints do not record the exchange or
/// the number of processes.
///
/// **Failures.** Every step is computed on copies and committed only when it succeeded: if a
/// forward/backward fails, or AdamW rejects a non-finite gradient
/// (``TrainingError/nonFiniteGradient(index:element:)``), `train()` throws that error and the
/// trainer keeps the state after the last completed step.
///
/// **Parameter order** (optimizer and checkpoint names): the task's
/// ``TrainingTask/ownParameterNames`` (`head.weight`, `head.bias` for classification), then the
/// adapter's ``Adapter/parameterNames(host:)`` (LoRA: PEFT's keys, per layer and target A then B;
/// LoRTA: its factor names).
public struct Trainer<Task: TrainingTask>: Sendable {
    /// The task: frozen model, training data and the task's own trained tensors (current values).
    public private(set) var task: Task
    /// The trained adapter (`nil`: only the task's own tensors are trained).
    public private(set) var adapter: (any Adapter)?
    /// The run's settings (validated).
    public private(set) var configuration: TrainingConfiguration
    /// Optimizer steps done.
    public private(set) var step: Int
    /// Where the next step's examples start.
    public private(set) var position: TrainingPosition

    var optimizer: AdamW

    /// Where each step's per-micro-batch gradients come from: ``LocalGradientExchange`` (the
    /// default) computes them all here; a data-parallel exchange spreads the micro-batches over
    /// processes and gathers them in order, so every process takes the same step (see
    /// ``GradientExchange``). Not saved in checkpoints: a checkpoint resumes with any exchange.
    public var gradientExchange: any GradientExchange = LocalGradientExchange()

    /// AdamW's moments and update count (one update per trainer step).
    public var optimizerState: OptimizerState { optimizer.state }

    /// Names of the trained tensors in optimizer order (see the type's documentation).
    public var parameterNames: [String] { task.ownParameterNames + (adapter?.parameterNames(host: task.adapterHost) ?? []) }

    /// The trained tensors in optimizer order.
    public var parameters: [Tensor] { task.ownParameters + (adapter?.parameters ?? []) }

    /// Number of trained scalars (task's own tensors and adapter).
    public var trainableParameterCount: Int { parameters.reduce(0) { $0 + $1.count } }

    /// Optimizer steps in one epoch: `⌊task.exampleCount / batchSize⌋`.
    public var stepsPerEpoch: Int { task.exampleCount / configuration.batchSize }

    /// A trainer at step 0. The AdamW moments start at zero.
    /// - Parameters:
    ///   - task: the model, data and task-owned tensors (e.g. an initial head).
    ///   - adapter: the initial adapter for the task's ``TrainingTask/adapterHost`` (e.g.
    ///     ``LoRAAdapter/init(host:targets:configuration:seed:)``,
    ///     ``LoRTAAdapter/init(configuration:seed:initialization:cInitialValue:)``, or
    ///     ``AdapterRecipe/makeAdapter(for:)``); `nil` trains the task's own tensors only.
    ///   - configuration: the run's settings (steps, batching, optimizer, schedule, seed).
    /// - Throws: ``TrainingError`` for an invalid configuration, a batch size larger than the
    ///   data, nothing to train, or parameter names that collide; ``AdapterError`` when the
    ///   adapter does not fit the model. O(parameters).
    public init(task: Task, adapter: (any Adapter)?, configuration: TrainingConfiguration) throws {
        try adapter?.validate(for: task.adapterHost)
        let zeros = try (task.ownParameters + (adapter?.parameters ?? [])).map { try Tensor(zeros: $0.shape) }
        let optimizer = try AdamW(configuration: configuration.optimizer,
                                  state: OptimizerState(step: 0, firstMoments: zeros, secondMoments: zeros))
        try self.init(task: task, adapter: adapter, configuration: configuration, step: 0,
                      position: TrainingPosition(), optimizer: optimizer)
    }

    /// The shared checks and set-up of both initialisers.
    init(task: Task, adapter: (any Adapter)?, configuration: TrainingConfiguration, step: Int,
         position: TrainingPosition, optimizer: AdamW) throws {
        try configuration.validate()
        try adapter?.validate(for: task.adapterHost)
        guard task.exampleCount >= configuration.batchSize else {
            throw TrainingError.invalidBatching("\(task.exampleCount) training examples make no full batch of \(configuration.batchSize)")
        }
        let names = task.ownParameterNames + (adapter?.parameterNames(host: task.adapterHost) ?? [])
        guard !names.isEmpty else {
            throw TrainingError.invalidBatching("nothing to train: the task has no trained tensors of its own and no adapter was given")
        }
        guard Set(names).count == names.count else {
            throw TrainingError.invalidCheckpoint("trained tensor names are not unique: \(names)")
        }
        guard optimizer.state.firstMoments.map(\.shape) == (task.ownParameters + (adapter?.parameters ?? [])).map(\.shape) else {
            throw TrainingError.invalidCheckpoint("the optimizer state's \(optimizer.state.firstMoments.count) moment tensors do not match the \(names.count) trained tensors")
        }
        self.task = task
        self.adapter = adapter
        self.configuration = configuration
        self.step = step
        self.position = position
        self.optimizer = optimizer
    }

    /// Sets a new total of optimizer steps (e.g. continue a finished run for more epochs).
    /// - Throws: ``TrainingError/invalidHyperparameter(name:value:expected:)`` for `steps < 1`.
    public mutating func setTotalSteps(_ steps: Int) throws(TrainingError) {
        var c = configuration
        c.steps = steps
        try c.validate()
        configuration = c
    }

    /// The example indices of the step at `position`.
    func stepExamples(order: [Int], at position: TrainingPosition) -> [Int] {
        let start = position.batchInEpoch * configuration.batchSize
        return Array(order[start..<(start + configuration.batchSize)])
    }

    /// The loss and gradients of one step's examples: the step's micro-batches through
    /// ``gradientExchange``, combined by the task in step order.
    func stepGradients(examples: [Int]) throws -> TaskStepResult {
        let task = self.task, adapter = self.adapter
        let size = configuration.effectiveMicroBatchSize
        let count = try task.microBatchCount(examples: examples.count, microBatchSize: size)
        let parts = try gradientExchange.microBatchGradients(count: count) { range in
            try task.microBatchGradients(examples: examples, microBatchSize: size, microBatches: range, adapter: adapter)
        }
        guard parts.count == count else {
            throw TrainingError.invalidBatching("the gradient exchange returned \(parts.count) micro-batches for a step of \(count)")
        }
        return try task.combineMicroBatchGradients(parts, examples: examples)
    }

    /// Runs optimizer steps until ``step`` reaches ``TrainingConfiguration/steps`` or `progress`
    /// returns `.stop` (checked after every step). Each step: the step's examples (see the type's
    /// data order), the loss and gradients of its micro-batches
    /// (``TrainingTask/microBatchGradients(examples:microBatchSize:microBatches:adapter:)``, through
    /// ``gradientExchange``) combined by ``TrainingTask/combineMicroBatchGradients(_:examples:)``,
    /// one AdamW update with `schedule.learningRate(atStep: step)`.
    /// - Returns: a summary of this call (no step runs when ``step`` is already at the total).
    /// - Throws: the task's model errors, ``TrainingError`` from AdamW (notably
    ///   ``TrainingError/nonFiniteGradient(index:element:)``). The failed step leaves no trace;
    ///   earlier steps of the call stay done.
    /// - Complexity: per step, one forward and backward over `batchSize` examples plus
    ///   O(parameters) for the optimizer; O(count) per epoch for the shuffle.
    public mutating func train(progress: ((TrainingProgress) -> TrainingControl)? = nil) throws -> TrainingSummary {
        var run = TrainingRun()
        var order: (epoch: Int, indices: [Int])?
        var stopped = false
        let shuffler = EpochShuffler(seed: configuration.seed)
        while step < configuration.steps {
            run.beginStep()
            if order?.epoch != position.epoch {
                order = (position.epoch, try shuffler.permutation(epoch: position.epoch, count: task.exampleCount))
            }
            let examples = stepExamples(order: order!.indices, at: position)
            let result = try stepGradients(examples: examples)
            let learningRate = configuration.schedule.learningRate(atStep: step)
            var parameters = self.parameters
            var newOptimizer = optimizer
            try newOptimizer.update(parameters: &parameters, gradients: result.gradients, learningRate: learningRate)
            let ownCount = task.ownParameters.count
            let newTask = try task.replacingOwnParameters(Array(parameters[..<ownCount]))
            var newAdapter = adapter
            try newAdapter?.setParameters(Array(parameters[ownCount...]))
            // Commit.
            let epoch = position.epoch
            optimizer = newOptimizer
            task = newTask
            adapter = newAdapter
            step += 1
            position.batchInEpoch += 1
            if position.batchInEpoch >= stepsPerEpoch { position = TrainingPosition(epoch: epoch + 1, batchInEpoch: 0) }

            let info = run.endStep(step: step, totalSteps: configuration.steps, epoch: epoch, loss: result.loss,
                                   learningRate: learningRate, examples: examples.count, tokens: result.tokens)
            if let progress, progress(info) == .stop {
                stopped = step < configuration.steps
                break
            }
        }
        return run.summary(finalStep: step, stoppedEarly: stopped)
    }
}
