import Foundation

/// The loss and gradients of one optimizer step's examples, as a ``TrainingTask`` computes them.
public struct TaskStepResult: Sendable {
    /// The step's loss: the quantity whose gradient ``gradients`` is (mean cross-entropy over
    /// the examples for classification, over the response tokens for the causal LM).
    public var loss: Double
    /// Non-padding tokens the step processed (for throughput).
    public var tokens: Int
    /// ∂``loss``/∂θ for every trained tensor, in ``Trainer/parameterNames`` order: the task's
    /// own tensors (``TrainingTask/ownParameters``), then the adapter's
    /// (``Adapter/parameters``).
    public var gradients: [Tensor]

    /// - Parameters:
    ///   - loss: the step's loss.
    ///   - tokens: non-padding tokens processed.
    ///   - gradients: own tensors' gradients, then the adapter's.
    public init(loss: Double, tokens: Int, gradients: [Tensor]) {
        self.loss = loss
        self.tokens = tokens
        self.gradients = gradients
    }
}

/// What a ``Trainer`` fine-tunes: a frozen model, its training examples and the loss of a set of
/// them. The trainer owns everything else — data order, gradient steps, learning rates,
/// checkpoints, progress — the same way for every task.
///
/// A task may train tensors of its own besides the adapter (a classification head); they come
/// first in the optimizer's order. Two tasks ship with the package:
/// ``SequenceClassificationTask`` (BERT encoder + linear head on labelled text) and
/// ``CausalLMTask`` (Llama, loss on response tokens). A new architecture or objective is a new
/// conforming type; the trainer, checkpoints and the CLI's training loop do not change.
public protocol TrainingTask: Sendable {
    /// The model's adapter host: where adapters attach and how their tensors are named.
    var adapterHost: AdapterHost { get }
    /// Training examples. The trainer's data order is a seeded permutation of
    /// `0..<exampleCount` per epoch.
    var exampleCount: Int { get }
    /// Names of the task's own trained tensors, in order (empty when only an adapter trains).
    /// They must not collide with adapter parameter names.
    var ownParameterNames: [String] { get }
    /// The current values of the task's own trained tensors (``ownParameterNames`` order).
    var ownParameters: [Tensor] { get }
    /// The task with its own trained tensors replaced by `tensors` (same count and shapes).
    /// - Throws: when the count or a shape differs.
    func replacingOwnParameters(_ tensors: [Tensor]) throws -> Self
    /// Loss and gradients of some micro-batches of one optimizer step: the step's examples
    /// `examples` (in data order) are cut into consecutive slices of `microBatchSize` (the last
    /// may be smaller), and the slices numbered `microBatches` are computed, each on its own.
    /// A micro-batch's result must depend only on the step's examples, the micro-batch size and
    /// its number, never on which other micro-batches are computed in the same call, so a
    /// ``GradientExchange`` can spread them over processes.
    /// - Parameters:
    ///   - examples: the step's example indices in `0..<exampleCount`.
    ///   - microBatchSize: examples per forward/backward pass (≥ 1).
    ///   - microBatches: which micro-batches, within `0..<⌈examples.count / microBatchSize⌉`.
    ///   - adapter: the adapter being trained (nil: none), already validated for ``adapterHost``.
    /// - Throws: the model's errors; nothing is kept from a failed call.
    func microBatchGradients(examples: [Int], microBatchSize: Int, microBatches: Range<Int>,
                             adapter: (any Adapter)?) throws -> [MicroBatchGradients]
    /// The step's loss and gradients from the results of all its micro-batches, in step order —
    /// a fixed-order rule (classification: ``GradientAccumulator``'s example-weighted mean;
    /// causal LM: the sum of the scaled gradients), so the same inputs give the same bits.
    /// - Parameters:
    ///   - parts: the micro-batches' results in order (from ``microBatchGradients(examples:microBatchSize:microBatches:adapter:)``).
    ///   - examples: the step's example indices.
    /// - Throws: ``TrainingError`` when the parts do not fit each other or the step.
    func combineMicroBatchGradients(_ parts: [MicroBatchGradients], examples: [Int]) throws -> TaskStepResult
    /// What a checkpoint records about the task — its kind, the model's sizes, a fingerprint of
    /// the data and the task's settings — as text fields. Resuming requires the same record,
    /// so a checkpoint is never continued on other data or another model.
    var checkpointRecord: [String: String] { get }
    /// The task with the settings a checkpoint fixes (sequence length, padding) taken from its
    /// saved ``checkpointRecord``, so a resumed run continues under the saved settings whatever
    /// the caller's defaults; everything else in the record (model, data) is then compared.
    /// The default keeps the task as it is.
    /// - Throws: when a saved setting is malformed.
    func adoptingCheckpointSettings(_ record: [String: String]) throws -> Self
}

extension TrainingTask {
    public func adoptingCheckpointSettings(_ record: [String: String]) throws -> Self { self }

    /// Loss and gradients of the examples `examples` (one optimizer step, in data order),
    /// processed `microBatchSize` at a time in consecutive slices: every micro-batch
    /// (``microBatchGradients(examples:microBatchSize:microBatches:adapter:)``), combined by
    /// ``combineMicroBatchGradients(_:examples:)``. What a ``Trainer`` with a
    /// ``LocalGradientExchange`` computes per step.
    /// - Parameters:
    ///   - examples: indices in `0..<exampleCount`.
    ///   - microBatchSize: examples per forward/backward pass (≥ 1).
    ///   - adapter: the adapter being trained (nil: none), already validated for ``adapterHost``.
    /// - Throws: the model's errors; ``TrainingError/invalidBatching(_:)`` for no examples or a
    ///   micro-batch size < 1; nothing is kept from a failed call.
    public func stepGradients(examples: [Int], microBatchSize: Int, adapter: (any Adapter)?) throws -> TaskStepResult {
        let count = try microBatchCount(examples: examples.count, microBatchSize: microBatchSize)
        let parts = try microBatchGradients(examples: examples, microBatchSize: microBatchSize, microBatches: 0..<count,
                                            adapter: adapter)
        return try combineMicroBatchGradients(parts, examples: examples)
    }

    /// ⌈examples / microBatchSize⌉, the micro-batches of a step.
    /// - Throws: ``TrainingError/invalidBatching(_:)`` for no examples or a micro-batch size < 1.
    func microBatchCount(examples: Int, microBatchSize: Int) throws(TrainingError) -> Int {
        guard microBatchSize >= 1, examples >= 1 else {
            throw .invalidBatching("a step needs examples and a micro-batch size >= 1")
        }
        return (examples + microBatchSize - 1) / microBatchSize
    }

    /// Checks that `microBatches` lie within the step's micro-batches.
    /// - Throws: ``TrainingError/invalidBatching(_:)`` for a range outside the step's micro-batches.
    func checkMicroBatches(_ microBatches: Range<Int>, examples: Int, microBatchSize: Int) throws(TrainingError) {
        let count = try microBatchCount(examples: examples, microBatchSize: microBatchSize)
        guard microBatches.lowerBound >= 0, microBatches.upperBound <= count else {
            throw .invalidBatching("micro-batches \(microBatches) are outside the step's 0..<\(count)")
        }
    }
}

/// Micro-batch `index` of a step of `count` examples cut into slices of `size`.
func microBatchRange(_ index: Int, count: Int, size: Int) -> Range<Int> {
    index * size ..< min((index + 1) * size, count)
}

/// FNV-1a 64 over a byte stream: what tasks record of their data in checkpoints.
struct DataFingerprint {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325
    mutating func mix<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
        for b in bytes { value = (value ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
    }
    mutating func mix(_ ids: [Int32]) {
        for id in ids { withUnsafeBytes(of: id.littleEndian) { mix($0) } }
    }
    var hex: String { String(value, radix: 16) }
}
