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
    /// Loss and gradients of the examples `examples` (one optimizer step, in data order),
    /// processed `microBatchSize` at a time in consecutive slices.
    /// - Parameters:
    ///   - examples: indices in `0..<exampleCount`.
    ///   - microBatchSize: examples per forward/backward pass (≥ 1).
    ///   - adapter: the adapter being trained (nil: none), already validated for ``adapterHost``.
    /// - Throws: the model's errors; nothing is kept from a failed call.
    func stepGradients(examples: [Int], microBatchSize: Int, adapter: (any Adapter)?) throws -> TaskStepResult
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
