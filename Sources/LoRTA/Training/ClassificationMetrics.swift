import CKernels

/// Running evaluation metrics of a classifier over batches: example count, accuracy (argmax
/// of the logits, ties to the lowest class index as `torch.argmax`) and mean softmax
/// cross-entropy (per-row terms from the `lt_cross_entropy_forward` kernel, summed in Double
/// in row order, so the result does not depend on how the data was batched beyond float
/// rounding of each row's term, which is batch-independent).
public struct ClassificationMetrics: Sendable, Equatable {
    public let classCount: Int
    /// Examples seen.
    public private(set) var count = 0
    /// Examples whose argmax equals the label.
    public private(set) var correct = 0
    /// Σ of per-example cross-entropy terms.
    public private(set) var lossSum = 0.0
    /// `confusion[label * classCount + predicted]` counts.
    public private(set) var confusion: [Int]

    /// - Throws: ``TrainingError/invalidBatching(_:)`` when `classCount < 1`, or when its
    ///   `classCount²` table of counts exceeds the ``MemoryBudget``.
    public init(classCount: Int) throws(TrainingError) {
        guard classCount >= 1 else { throw .invalidBatching("class count \(classCount) must be >= 1") }
        do {
            try MemoryBudget.check(bytes: MemoryBudget.byteCount(Int.self, classCount, classCount),
                                   purpose: "a confusion matrix of \(classCount) classes needs a \(classCount)×\(classCount) table of counts")
        } catch {
            throw .invalidBatching(error.description)
        }
        self.classCount = classCount
        self.confusion = [Int](repeating: 0, count: classCount * classCount)
    }

    /// Metrics from their counts (the distributed layer restores another rank's metrics).
    /// - Throws: ``TrainingError/invalidBatching(_:)`` when the counts do not fit each other.
    package init(classCount: Int, count: Int, correct: Int, lossSum: Double, confusion: [Int]) throws(TrainingError) {
        try self.init(classCount: classCount)
        guard count >= 0, correct >= 0, correct <= count, confusion.count == classCount * classCount,
              confusion.allSatisfy({ $0 >= 0 }), confusion.reduce(0, +) == count else {
            throw .invalidBatching("metrics counts do not fit: \(count) examples, \(correct) correct, \(confusion.count) confusion cells summing to \(confusion.reduce(0, +))")
        }
        self.count = count
        self.correct = correct
        self.lossSum = lossSum
        self.confusion = confusion
    }

    /// correct / count (0 when empty).
    public var accuracy: Double { count == 0 ? 0 : Double(correct) / Double(count) }
    /// lossSum / count (0 when empty).
    public var meanLoss: Double { count == 0 ? 0 : lossSum / Double(count) }

    /// Adds the counts and loss of `other` (metrics of other examples, e.g. another process's
    /// shard): afterwards `self` holds the metrics of both example sets (the loss sum up to
    /// float64 rounding of the order of addition). O(classCount²).
    /// - Parameter other: metrics with the same class count.
    /// - Throws: ``TrainingError/invalidBatching(_:)`` when the class counts differ.
    public mutating func merge(_ other: ClassificationMetrics) throws(TrainingError) {
        guard other.classCount == classCount else {
            throw .invalidBatching("metrics of \(other.classCount) classes cannot merge into metrics of \(classCount)")
        }
        count += other.count
        correct += other.correct
        lossSum += other.lossSum
        for i in confusion.indices { confusion[i] += other.confusion[i] }
    }

    /// Adds a batch: `logits` of shape `[n, classCount]`, `labels` of length n. O(n · classCount).
    /// - Throws: ``TrainingError/shapeMismatch(index:expected:actual:)`` (index 0) for logits of
    ///   another shape, ``TrainingError/invalidBatching(_:)`` for a label out of range or
    ///   non-finite logits. Nothing is added on error.
    public mutating func add(logits: Tensor, labels: [Int32]) throws(TrainingError) {
        let n = labels.count, c = classCount
        guard logits.shape == [n, c] else { throw .shapeMismatch(index: 0, expected: [n, c], actual: logits.shape) }
        guard n > 0 else { return }
        if let i = labels.firstIndex(where: { $0 < 0 || Int($0) >= c }) {
            throw .invalidBatching("label \(labels[i]) of row \(i) is out of range 0..<\(c)")
        }
        var rowLoss = [Float](repeating: 0, count: n)
        var mean: Float = 0
        var bad: Int64 = -1
        let status = logits.withUnsafeBufferPointer { z -> lt_status in
            let st = lt_all_finite(z.baseAddress, Int64(z.count), &bad)
            guard st == LT_OK, bad < 0 else { return st }
            return lt_cross_entropy_forward(Int64(n), Int64(c), z.baseAddress, Int64(c), labels, &mean, &rowLoss)
        }
        guard status == LT_OK else { throw .kernel(function: "lt_cross_entropy_forward", status: Int32(status.rawValue)) }
        if bad >= 0 { throw .invalidBatching("logit \(bad) (row \(Int(bad) / c)) is not finite") }
        let z = logits.scalars
        for i in 0..<n {
            var best = 0
            for j in 1..<c where z[i * c + j] > z[i * c + best] { best = j }
            let y = Int(labels[i])
            if best == y { correct += 1 }
            confusion[y * c + best] += 1
            lossSum += Double(rowLoss[i])
        }
        count += n
    }
}
