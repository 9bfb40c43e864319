import CKernels

/// Classification loss and the full backward to the trainable parameters (head and adapters).
///
/// Only the head and the adapters are trainable. The backward runs through every layer in
/// reverse: LayerNorm (dX only), the GELU MLP with frozen weights (dX only), the attention
/// output projection (frozen dX plus the adapter's factors and input gradient), softmax
/// attention, and the Q/K/V projections (frozen dX plus the adapters). No gradient buffer is
/// ever allocated for a frozen weight; the per-layer temporaries are `O(n·(d + I) + B·H·T²)`.
extension BertModel {
    /// Logits `[B, classes]` of the classification head on the mean-pooled embedding.
    /// - Throws: ``BertError`` for a bad batch or head; ``AdapterError`` for an adapter of another model shape.
    public func logits(_ batch: TokenBatch, adapter: (any Adapter)? = nil,
                       head: BertClassificationHead) throws -> Tensor {
        try head.validate(for: configuration)
        let out = try forward(batch, adapter: adapter)
        return try Self.headForward(head, pooled: out.pooled, B: batch.count)
    }

    /// Mean softmax cross-entropy of the head's logits against `labels` (one per sequence).
    /// - Throws: ``BertError`` for a bad batch, head or labels; ``AdapterError`` for an adapter of another model shape.
    public func loss(_ batch: TokenBatch, labels: [Int32], adapter: (any Adapter)? = nil,
                     head: BertClassificationHead) throws -> Float {
        try checkLabels(labels, batch: batch, head: head)
        let z = try logits(batch, adapter: adapter, head: head)
        var loss: Float = 0
        try labels.withUnsafeBufferPointer { y in
            try KernelFailure.check(lt_cross_entropy_forward(Int64(batch.count), Int64(head.classCount), z.pointer,
                                                   Int64(head.classCount), y.baseAddress, &loss, nil),
                          "lt_cross_entropy_forward")
        }
        return loss
    }

    /// Loss and gradients of the head and of the adapters for one batch.
    ///
    /// Runs a recorded forward, then the backward through every layer. The gradients are
    /// returned (not accumulated anywhere); the adapter's are in the layout of its
    /// ``Adapter/parameters``.
    /// - Parameters:
    ///   - batch: token ids and attention mask (`B × T`), as for ``forward(_:adapter:recordingActivations:observer:)``.
    ///   - labels: one class index per sequence, in `0 ..< head.classCount`.
    ///   - adapter: the adapter being trained (nil: only the head gets gradients).
    ///   - head: the classification head on the pooled output; its gradients are returned too.
    /// - Throws: ``BertError`` for a bad batch, head or labels; ``AdapterError`` for an adapter of another model shape.
    /// - Complexity: about twice the forward's flops (one GEMM per frozen matrix for dX) plus
    ///   the adapters' own backward.
    public func gradients(_ batch: TokenBatch, labels: [Int32], adapter: (any Adapter)? = nil,
                          head: BertClassificationHead) throws -> BertTrainingGradients {
        try head.validate(for: configuration)
        try checkLabels(labels, batch: batch, head: head)
        let out = try forward(batch, adapter: adapter, recordingActivations: true)
        guard let acts = out.activations else { throw KernelFailure(function: "BertModel.forward", status: "no activations recorded") }
        let c = configuration
        let B = batch.count, T = batch.sequenceLength, d = c.hiddenSize
        let classes = head.classCount
        let z = try Self.headForward(head, pooled: out.pooled, B: B)

        // Cross-entropy → head → pooled → last hidden state.
        var loss: Float = 0
        var dZ = try Tensor(uninitialized: [B, classes])
        try labels.withUnsafeBufferPointer { y in
            try KernelFailure.check(lt_cross_entropy_forward(Int64(B), Int64(classes), z.pointer, Int64(classes), y.baseAddress,
                                                   &loss, nil), "lt_cross_entropy_forward")
            try KernelFailure.check(lt_cross_entropy_backward(Int64(B), Int64(classes), z.pointer, Int64(classes), y.baseAddress,
                                                    1, dZ.mutablePointer, Int64(classes)), "lt_cross_entropy_backward")
        }
        var dW = try Tensor(uninitialized: [classes, d]), db = try Tensor(uninitialized: [classes])
        try KernelFailure.check(lt_linear_backward_params(Int64(B), Int64(d), Int64(classes), dZ.pointer, Int64(classes),
                                                out.pooled.pointer, Int64(d), dW.mutablePointer, db.mutablePointer, 0),
                      "lt_linear_backward_params (head)")
        var dHidden = try Self.headBackward(head, dLogits: dZ, batch: batch)

        guard let adapter else {
            return BertTrainingGradients(loss: loss, logits: z, headWeight: dW, headBias: db, adapter: nil)
        }
        var grads = try adapter.zeroGradients()
        try batch.attentionMask.withUnsafeBufferPointer { m in
            for l in layers.indices.reversed() {
                dHidden = try Self.layerBackward(layers[l], acts.layers[l], layer: l, adapter: adapter,
                                                 gradients: &grads, dOutput: dHidden, B: B, T: T, c: c,
                                                 mask: m.baseAddress!, wantInputGradient: l > 0)
            }
        }
        return BertTrainingGradients(loss: loss, logits: z, headWeight: dW, headBias: db, adapter: grads)
    }

    // MARK: - pieces

    func checkLabels(_ labels: [Int32], batch: TokenBatch, head: BertClassificationHead) throws(BertError) {
        guard labels.count == batch.count else { throw .labelCountMismatch(expected: batch.count, actual: labels.count) }
        for (i, y) in labels.enumerated() where y < 0 || Int(y) >= head.classCount {
            throw .labelOutOfRange(label: y, row: i, classCount: head.classCount)
        }
    }

    static func headForward(_ head: BertClassificationHead, pooled: Tensor, B: Int) throws -> Tensor {
        let d = head.weight.shape[1], classes = head.classCount
        var z = try Tensor(uninitialized: [B, classes])
        try KernelFailure.check(lt_linear_forward(Int64(B), Int64(d), Int64(classes), pooled.pointer, Int64(d), head.weight.pointer,
                                        Int64(d), head.bias.pointer, nil, 0, z.mutablePointer, Int64(classes)),
                      "lt_linear_forward (head)")
        return z
    }

    /// Backward of ``headForward(_:pooled:B:)`` and the mean pooling before it, to the last
    /// hidden state: `dPooled = dZ W` (`[B, d]`), then spread over each sequence's real tokens
    /// (`[B·T, d]`, padded rows 0). The head's own parameter gradients are not computed here.
    static func headBackward(_ head: BertClassificationHead, dLogits dZ: Tensor, batch: TokenBatch) throws -> Tensor {
        let B = batch.count, T = batch.sequenceLength, d = head.weight.shape[1], classes = head.classCount
        var dPooled = try Tensor(uninitialized: [B, d])
        try KernelFailure.check(lt_linear_backward_input(Int64(B), Int64(d), Int64(classes), dZ.pointer, Int64(classes),
                                                         head.weight.pointer, Int64(d), dPooled.mutablePointer, Int64(d), 0),
                                "lt_linear_backward_input (head)")
        var dHidden = try Tensor(uninitialized: [B * T, d])
        try batch.attentionMask.withUnsafeBufferPointer { m in
            try KernelFailure.check(lt_mean_pool_backward(Int64(B), Int64(T), Int64(d), dPooled.pointer, Int64(d), m.baseAddress,
                                                          dHidden.mutablePointer, Int64(d)), "lt_mean_pool_backward")
        }
        return dHidden
    }
}
