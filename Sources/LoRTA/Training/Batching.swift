/// Where training stands within the data: the epoch (0-based) and the number of batches of
/// that epoch already consumed. Saved in optimizer checkpoints so a run resumes at the next
/// batch with the same shuffle.
public struct TrainingPosition: Sendable, Equatable, Hashable {
    public var epoch: Int
    public var batchInEpoch: Int
    public init(epoch: Int = 0, batchInEpoch: Int = 0) {
        self.epoch = epoch
        self.batchInEpoch = batchInEpoch
    }
}

/// A tokenized, padded mini-batch with its labels.
public struct TextBatch: Sendable, Equatable {
    /// Token ids and attention mask, padded as the loader's ``BatchLoader/padding`` says.
    public let tokens: TokenBatch
    /// The label of each row.
    public let labels: [Int32]
    /// Index of each row's example in the data set.
    public let exampleIndices: [Int]
    public var count: Int { labels.count }
}

/// Cuts a ``LabelledTextDataset`` into tokenized mini-batches, epoch by epoch, in the order
/// of an ``EpochShuffler`` (or in file order without one). With `.longest` padding each batch
/// is padded to its own longest sequence (dynamic padding); `.fixed` pads to `maxLength`.
///
/// The last batch of an epoch holds the remaining `count % batchSize` examples unless
/// `dropLast` is set. Batches are computed on demand: ``batches(epoch:)`` shuffles once
/// (O(count)) and ``EpochBatches/batch(_:)`` tokenizes one batch (O(its text)).
public struct BatchLoader: Sendable {
    public let dataset: LabelledTextDataset
    public let tokenizer: BertTokenizer
    public let batchSize: Int
    public let maxLength: Int
    public let padding: BertTokenizer.Padding
    /// `nil`: file order every epoch.
    public let shuffler: EpochShuffler?
    public let dropLast: Bool

    /// - Throws: ``TrainingError/invalidBatching(_:)`` when `batchSize < 1`, `maxLength < 2`,
    ///   or `dropLast` leaves no batch at all.
    public init(dataset: LabelledTextDataset, tokenizer: BertTokenizer, batchSize: Int, maxLength: Int,
                padding: BertTokenizer.Padding = .longest, shuffler: EpochShuffler?,
                dropLast: Bool = false) throws(TrainingError) {
        guard batchSize >= 1 else { throw .invalidBatching("batch size \(batchSize) must be >= 1") }
        guard maxLength >= 2 else { throw .invalidBatching("max length \(maxLength) must be >= 2 ([CLS] and [SEP])") }
        guard !dropLast || dataset.count >= batchSize else {
            throw .invalidBatching("\(dataset.count) examples make no full batch of \(batchSize) (dropLast)")
        }
        self.dataset = dataset
        self.tokenizer = tokenizer
        self.batchSize = batchSize
        self.maxLength = maxLength
        self.padding = padding
        self.shuffler = shuffler
        self.dropLast = dropLast
    }

    /// Batches per epoch: ⌈count / batchSize⌉, or ⌊count / batchSize⌋ with `dropLast`.
    public var batchesPerEpoch: Int {
        dropLast ? dataset.count / batchSize : (dataset.count + batchSize - 1) / batchSize
    }

    /// The batches of `epoch` (0-based). O(count) for the shuffle.
    /// - Throws: ``TrainingError/invalidBatching(_:)`` when `epoch < 0`.
    public func batches(epoch: Int) throws(TrainingError) -> EpochBatches {
        guard epoch >= 0 else { throw .invalidBatching("epoch \(epoch) must be >= 0") }
        let order = try shuffler?.permutation(epoch: epoch, count: dataset.count) ?? Array(0..<dataset.count)
        return EpochBatches(loader: self, epoch: epoch, order: order)
    }

    /// The batch at `position`. O(count) (it reshuffles); iterate ``batches(epoch:)`` instead
    /// when reading many batches.
    public func batch(at position: TrainingPosition) throws(TrainingError) -> TextBatch {
        try batches(epoch: position.epoch).batch(position.batchInEpoch)
    }
}

/// The batches of one epoch, in order. A `Sequence` of ``TextBatch`` (also random access
/// through ``batch(_:)``).
public struct EpochBatches: Sendable, Sequence {
    public let loader: BatchLoader
    public let epoch: Int
    /// The example order of this epoch.
    public let order: [Int]

    public var count: Int { loader.batchesPerEpoch }

    /// Batch `index` of the epoch, `0 <= index < count`.
    /// - Throws: ``TrainingError/invalidBatching(_:)`` for an index out of range.
    public func batch(_ index: Int) throws(TrainingError) -> TextBatch {
        guard index >= 0 && index < count else {
            throw .invalidBatching("batch \(index) out of range 0..<\(count) of epoch \(epoch)")
        }
        let lo = index * loader.batchSize
        let indices = Array(order[lo..<Swift.min(lo + loader.batchSize, order.count)])
        let texts = indices.map { loader.dataset.examples[$0].text }
        let tokens: TokenBatch
        do {
            tokens = try loader.tokenizer.encodeBatch(texts, maxLength: loader.maxLength, padding: loader.padding)
        } catch {
            throw .invalidBatching("\(error)")  // unreachable: maxLength is checked in init
        }
        return TextBatch(tokens: tokens, labels: indices.map { Int32(loader.dataset.examples[$0].label) },
                         exampleIndices: indices)
    }

    public struct Iterator: IteratorProtocol {
        let batches: EpochBatches
        var index = 0
        public mutating func next() -> TextBatch? {
            guard index < batches.count else { return nil }
            defer { index += 1 }
            return try? batches.batch(index)  // cannot throw: index is in range
        }
    }

    /// Iterates from batch 0; use ``batch(_:)`` from a resumed position.
    public func makeIterator() -> Iterator { Iterator(batches: self) }
}

/// Gradient-accumulation bookkeeping: sums the gradients of several micro-batches, each
/// weighted by its example count, and gives their example-weighted mean — the gradient of the
/// mean loss over all examples of the step, when each micro-batch gradient is that of its own
/// mean loss. A step is due after `microBatchesPerStep` micro-batches; a partial group (end
/// of an epoch) can be taken early with ``takeMean()``.
///
/// Sums are float32, in micro-batch order (deterministic). A group of one micro-batch gives
/// its gradients back unchanged (bit for bit).
public struct GradientAccumulator: Sendable {
    public let microBatchesPerStep: Int
    /// Micro-batches added since the last ``takeMean()``.
    public private(set) var pendingMicroBatches = 0
    /// Examples added since the last ``takeMean()``.
    public private(set) var pendingExamples = 0
    private var sums: [Tensor] = []
    private var single: [Tensor] = []

    /// - Throws: ``TrainingError/invalidBatching(_:)`` when `microBatchesPerStep < 1`.
    public init(microBatchesPerStep: Int) throws(TrainingError) {
        guard microBatchesPerStep >= 1 else {
            throw .invalidBatching("micro-batches per step \(microBatchesPerStep) must be >= 1")
        }
        self.microBatchesPerStep = microBatchesPerStep
    }

    /// Optimizer steps per epoch of `batches` micro-batches when the partial group at the end
    /// of each epoch is stepped too: ⌈batches / microBatchesPerStep⌉.
    public func optimizerStepsPerEpoch(batches: Int) -> Int {
        (max(0, batches) + microBatchesPerStep - 1) / microBatchesPerStep
    }

    /// True when `microBatchesPerStep` micro-batches are pending.
    public var isStepDue: Bool { pendingMicroBatches >= microBatchesPerStep }

    /// Adds one micro-batch's gradients (of its mean loss over `exampleCount` examples).
    /// O(total elements). Returns ``isStepDue``.
    /// - Throws: ``TrainingError/invalidBatching(_:)`` for `exampleCount < 1` or a step already
    ///   due; ``TrainingError/parameterCountMismatch(expected:actual:)`` /
    ///   ``TrainingError/shapeMismatch(index:expected:actual:)`` when the gradients differ in
    ///   number or shape from the first micro-batch of the group. Nothing changes on error.
    @discardableResult
    public mutating func add(_ gradients: [Tensor], exampleCount: Int) throws(TrainingError) -> Bool {
        guard exampleCount >= 1 else { throw .invalidBatching("example count \(exampleCount) must be >= 1") }
        guard !isStepDue else { throw .invalidBatching("a step is due: call takeMean() before adding more") }
        if pendingMicroBatches > 0 {
            let reference = pendingMicroBatches == 1 ? single : sums
            guard reference.count == gradients.count else {
                throw .parameterCountMismatch(expected: reference.count, actual: gradients.count)
            }
            for i in gradients.indices where gradients[i].shape != reference[i].shape {
                throw .shapeMismatch(index: i, expected: reference[i].shape, actual: gradients[i].shape)
            }
        }
        let w = Float(exampleCount)
        switch pendingMicroBatches {
        case 0:
            single = gradients
        case 1:
            sums = single.map { g in scaled(g, by: Float(pendingExamples)) }
            single = []
            fallthrough
        default:
            for i in sums.indices {
                gradients[i].withUnsafeBufferPointer { g in
                    sums[i].withUnsafeMutableBufferPointer { s in
                        for j in 0..<s.count { s[j] += w * g[j] }
                    }
                }
            }
        }
        pendingMicroBatches += 1
        pendingExamples += exampleCount
        return isStepDue
    }

    /// The example-weighted mean of the pending gradients (Σ nᵢ gᵢ / Σ nᵢ), and a reset.
    /// - Throws: ``TrainingError/invalidBatching(_:)`` when nothing is pending.
    public mutating func takeMean() throws(TrainingError) -> [Tensor] {
        guard pendingMicroBatches > 0 else { throw .invalidBatching("no gradients pending") }
        defer {
            pendingMicroBatches = 0
            pendingExamples = 0
            sums = []
            single = []
        }
        if pendingMicroBatches == 1 { return single }
        let total = Float(pendingExamples)
        return sums.map { s in
            var out = s
            out.withUnsafeMutableBufferPointer { p in for j in 0..<p.count { p[j] /= total } }
            return out
        }
    }

    private func scaled(_ t: Tensor, by w: Float) -> Tensor {
        var out = t
        out.withUnsafeMutableBufferPointer { p in for j in 0..<p.count { p[j] *= w } }
        return out
    }
}
