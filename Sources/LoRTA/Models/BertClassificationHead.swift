import CKernels

/// A trainable linear classification head on the mean-pooled embedding: `logits = p Wᵀ + b`.
public struct BertClassificationHead: Sendable {
    /// `[classes, d]`.
    public var weight: Tensor
    /// `[classes]`.
    public var bias: Tensor

    /// `torch.nn.Linear`'s initialisation: weight and bias ~ U(−1/√d, 1/√d), drawn with
    /// `lt_rng_uniform(seed)` (weight from offset 0, bias after it).
    /// - Throws: ``BertError/invalidClassificationHead(_:)`` for fewer than 2 classes or d < 1;
    ///   ``MemoryError/exceedsBudget(purpose:bytes:budget:)`` when the weights exceed the
    ///   ``MemoryBudget`` (nothing is allocated).
    public init(hiddenSize d: Int, classCount: Int, seed: UInt64) throws {
        guard classCount >= 2, d >= 1 else {
            throw BertError.invalidClassificationHead("needs hiddenSize >= 1 and classCount >= 2, got \(d) and \(classCount)")
        }
        try MemoryBudget.check(bytes: MemoryBudget.sum(MemoryBudget.byteCount(Float.self, classCount, d), MemoryBudget.byteCount(Float.self, classCount)),
                               purpose: "a classification head of \(classCount) classes on \(d) features needs a \(classCount)×\(d) float32 weight matrix")
        let bound = lt_kaiming_uniform_bound(Int64(d))
        var w = try Tensor(uninitialized: [classCount, d]), b = try Tensor(uninitialized: [classCount])
        try KernelFailure.check(lt_rng_uniform(seed, 0, -bound, bound, w.mutablePointer, Int64(classCount * d)), "lt_rng_uniform")
        try KernelFailure.check(lt_rng_uniform(seed, UInt64(classCount * d), -bound, bound, b.mutablePointer, Int64(classCount)),
                      "lt_rng_uniform")
        weight = w
        bias = b
    }

    /// A head with given parameters (`weight` `[classes, d]`, `bias` `[classes]`, classes >= 2).
    public init(weight: Tensor, bias: Tensor) throws {
        guard weight.rank == 2, weight.shape[0] >= 2, bias.shape == [weight.shape[0]] else {
            throw BertError.invalidClassificationHead("weight \(weight.shape) and bias \(bias.shape) must be [classes >= 2, d] and [classes]")
        }
        self.weight = weight
        self.bias = bias
    }

    /// Number of classes.
    public var classCount: Int { weight.shape[0] }

    func validate(for model: BertConfiguration) throws(BertError) {
        guard weight.rank == 2, weight.shape[0] >= 2, weight.shape[1] == model.hiddenSize,
              bias.shape == [weight.shape[0]] else {
            throw .invalidClassificationHead("weight \(weight.shape) and bias \(bias.shape); expected [classes >= 2, \(model.hiddenSize)] and [classes]")
        }
    }
}

/// What ``BertModel/gradients(_:labels:adapter:head:)`` returns: the loss of the batch and the
/// gradients of everything trainable (head and adapter). Frozen weights get none.
public struct BertTrainingGradients: Sendable {
    /// Mean cross-entropy over the batch.
    public let loss: Float
    /// `[B, classes]`.
    public let logits: Tensor
    /// dL/dW `[classes, d]` and dL/db `[classes]` of the head.
    public let headWeight: Tensor
    public let headBias: Tensor
    /// The adapter's gradients in the layout of its ``Adapter/parameters``; nil when the model
    /// ran without an adapter.
    public let adapter: [Tensor]?
}
