import Foundation

/// The loss and gradients of one micro-batch of an optimizer step, before the task combines the
/// micro-batches of the step (``TrainingTask/combineMicroBatchGradients(_:examples:)``).
///
/// What a ``GradientExchange`` moves between processes: a data-parallel run computes each
/// micro-batch on one process and hands every process all of them, in step order.
public struct MicroBatchGradients: Sendable, Equatable {
    /// The micro-batch's loss times ``lossWeight`` (classification: mean cross-entropy × examples;
    /// causal LM: the summed token loss). The step's loss is `Σ lossSum / Σ lossWeight`.
    public var lossSum: Double
    /// What the step's loss averages over: examples (classification) or target tokens (causal LM).
    public var lossWeight: Int
    /// Non-padding tokens processed.
    public var tokens: Int
    /// Examples in the micro-batch (≥ 1).
    public var exampleCount: Int
    /// The micro-batch's gradients, in ``Trainer/parameterNames`` order; what they are the
    /// gradient of is the task's choice (classification: its own mean loss; causal LM: its summed
    /// token loss scaled by 1/(targets of the whole step)).
    public var gradients: [Tensor]

    /// - Parameters:
    ///   - lossSum: loss × `lossWeight`.
    ///   - lossWeight: examples or target tokens the loss averages over.
    ///   - tokens: non-padding tokens processed.
    ///   - exampleCount: examples in the micro-batch.
    ///   - gradients: one tensor per trained tensor, in optimizer order.
    public init(lossSum: Double, lossWeight: Int, tokens: Int, exampleCount: Int, gradients: [Tensor]) {
        self.lossSum = lossSum
        self.lossWeight = lossWeight
        self.tokens = tokens
        self.exampleCount = exampleCount
        self.gradients = gradients
    }
}

/// Where a ``Trainer`` gets the per-micro-batch gradients of a step: the one hook for data
/// parallelism.
///
/// A step's examples are cut into `count` consecutive micro-batches (of
/// ``TrainingConfiguration/effectiveMicroBatchSize`` examples). The exchange calls `compute`
/// with the micro-batches this process is responsible for — a contiguous range of
/// `0..<count` — and returns the results of **all** `count` micro-batches in step order. The
/// trainer then combines them with the task's fixed-order rule
/// (``TrainingTask/combineMicroBatchGradients(_:examples:)``) and takes the AdamW step, so
/// every process that gets the same micro-batch results takes the same step, bit for bit.
///
/// ``LocalGradientExchange`` (the default) computes every micro-batch here. A data-parallel
/// exchange (the `LoRTADistributed` product's `MPIGradientExchange`) computes a share of them
/// and gathers the others' results from the other processes in order — never a reduction whose
/// summation order is unspecified — so N processes give the bits of one process with the same
/// micro-batch size.
public protocol GradientExchange: Sendable {
    /// The results of micro-batches `0..<count` of a step, in order.
    /// - Parameters:
    ///   - count: micro-batches in the step (≥ 1).
    ///   - compute: computes the micro-batches of a range, in order (it may throw the task's errors).
    /// - Throws: what `compute` throws, or the exchange's own errors (another process failed, a
    ///   transport error). The trainer then keeps the state after the last completed step.
    func microBatchGradients(count: Int, compute: (Range<Int>) throws -> [MicroBatchGradients]) throws -> [MicroBatchGradients]
}

/// Computes every micro-batch of a step in this process: single-process training (the
/// ``Trainer``'s default ``Trainer/gradientExchange``).
public struct LocalGradientExchange: GradientExchange {
    /// A local exchange.
    public init() {}

    /// `compute(0..<count)`.
    /// - Parameters:
    ///   - count: micro-batches in the step.
    ///   - compute: computes the micro-batches of a range.
    /// - Throws: what `compute` throws.
    public func microBatchGradients(count: Int, compute: (Range<Int>) throws -> [MicroBatchGradients]) throws -> [MicroBatchGradients] {
        try compute(0..<count)
    }
}
