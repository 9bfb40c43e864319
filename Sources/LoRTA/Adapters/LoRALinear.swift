import CKernels

/// Gradients of a loss with respect to a LoRA layer's trainable factors (and its input).
public struct LoRAGradients: Sendable {
    /// dL/dA, r × d_in.
    public var a: Tensor
    /// dL/dB, d_out × r.
    public var b: Tensor
    /// dL/dX, same shape as the input; nil when not requested.
    public var input: Tensor?

    public init(a: Tensor, b: Tensor, input: Tensor?) {
        self.a = a
        self.b = b
        self.input = input
    }
}

/// A frozen Linear layer with a LoRA adapter:
/// `y = x Wᵀ (+ bias) + scale · (x Aᵀ) Bᵀ`.
///
/// `weight` (d_out × d_in) and `bias` are frozen; `loraA` (r × d_in) and `loraB` (d_out × r)
/// are the trainable factors, initialised as in PEFT (A kaiming-uniform with a = √5, i.e.
/// U(−1/√d_in, 1/√d_in); B = 0, so a fresh adapter leaves the layer's output unchanged).
/// The stored properties are public and mutable; every operation re-checks their shapes and
/// throws ``LoRAError`` if they no longer fit together.
///
/// Merging folds `scale · B A` into `weight` so that the forward pass costs only the base
/// GEMM; ``unmerge()`` removes it again (restoring `weight` up to one rounding per element).
/// Changing `loraA`/`loraB` while merged makes ``unmerge()`` subtract the *new* product.
///
/// Inputs may have any number of leading dimensions: `x` of shape `[..., d_in]` gives an
/// output of shape `[..., d_out]` (the leading dimensions are flattened into a batch of rows).
/// The kernels run multi-threaded (``Runtime/threadCount``) with results that do not depend on
/// the thread count.
public struct LoRALinear: Sendable {
    /// Frozen base weight, d_out × d_in.
    public var weight: Tensor
    /// Frozen bias, `[d_out]`, or nil.
    public var bias: Tensor?
    /// Trainable factor A, r × d_in.
    public var loraA: Tensor
    /// Trainable factor B, d_out × r.
    public var loraB: Tensor
    /// Rank, alpha and scaling rule.
    public let configuration: LoRAConfiguration
    /// True while `weight` holds `W + scale · B A` (after ``merge()``).
    public private(set) var isMerged: Bool = false

    /// d_in (columns of `weight`; 0 if `weight` is not a matrix).
    public var inputFeatures: Int { weight.rank == 2 ? weight.shape[1] : 0 }
    /// d_out (rows of `weight`; 0 if `weight` is not a matrix).
    public var outputFeatures: Int { weight.rank == 2 ? weight.shape[0] : 0 }

    /// A new adapter on `weight`, initialised as PEFT does: `loraA` ~ U(−1/√d_in, 1/√d_in)
    /// from the counter-based generator seeded with `seed` (same seed, same bits), `loraB` = 0.
    /// - Throws: ``LoRAError`` when `weight` is not a matrix, `bias` is not `[d_out]` or the
    ///   configuration is invalid.
    /// - Complexity: O(r · (d_in + d_out)).
    public init(weight: Tensor, bias: Tensor? = nil, configuration: LoRAConfiguration, seed: UInt64) throws {
        try configuration.validate()
        let (dOut, dIn) = try LoRA.matrix(weight, "weight")
        let r = configuration.rank
        var a = try Tensor(zeros: [r, dIn])
        var b = try Tensor(zeros: [dOut, r])
        let status = a.withUnsafeMutableBufferPointer { pa in
            b.withUnsafeMutableBufferPointer { pb in
                lt_lora_init(seed, Int64(r), Int64(dIn), Int64(dOut), pa.baseAddress, pb.baseAddress)
            }
        }
        try KernelFailure.check(status, "lt_lora_init")
        try self.init(weight: weight, bias: bias, loraA: a, loraB: b, configuration: configuration)
    }

    /// An adapter with given factors (e.g. loaded from `adapter_model.safetensors`).
    /// - Throws: ``LoRAError`` when the shapes do not fit together (`loraA` must be
    ///   `[rank, d_in]`, `loraB` `[d_out, rank]`, `bias` `[d_out]`) or the configuration is
    ///   invalid.
    public init(weight: Tensor, bias: Tensor? = nil, loraA: Tensor, loraB: Tensor,
                configuration: LoRAConfiguration) throws {
        self.weight = weight
        self.bias = bias
        self.loraA = loraA
        self.loraB = loraB
        self.configuration = configuration
        _ = try checkedDimensions()
    }

    /// The layer's output `x Wᵀ (+ bias) + scale · (x Aᵀ) Bᵀ` (merged: `x Wᵀ (+ bias)` with the
    /// merged weight).
    /// - Parameter x: `[..., d_in]` (at least 1-dimensional).
    /// - Returns: `[..., d_out]`.
    /// - Throws: ``LoRAError`` for a wrong input shape or inconsistent layer tensors.
    /// - Complexity: O(n · d_in · d_out) for the base GEMM plus O(r · min(n · (d_in + d_out),
    ///   d_in · d_out)) for the adapter, with n the number of rows of `x`: when the batch is
    ///   large enough, the kernel folds the update into a temporary copy of the weight (the
    ///   bits of ``fused()``'s weight times `x`) instead of forming the low-rank term.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let (dIn, dOut, r) = try checkedDimensions()
        let (n, outShape) = try rows(of: x, features: dIn, name: "input", otherFeatures: dOut)
        var y = try Tensor(uninitialized: outShape)        // both kernels write every element
        let s = configuration.scale
        // The kernel's scratch (s·Bᵀ and X Aᵀ, or the folded copy of W); it writes before it reads.
        var size: Int64 = 0
        if !isMerged {
            try KernelFailure.check(lt_lora_forward_workspace_size(Int64(n), Int64(dIn), Int64(dOut), Int64(r), &size),
                                    "lt_lora_forward_workspace_size")
        }
        var work = try Tensor(uninitialized: [Int(size)])
        let status: lt_status = x.withUnsafeBufferPointer { px in
            weight.withUnsafeBufferPointer { pw in
                withOptionalPointer(bias) { pbias in
                    y.withUnsafeMutableBufferPointer { py in
                        if isMerged {
                            return lt_lora_base_forward(
                                Int64(n), Int64(dIn), Int64(dOut), px.baseAddress, ld(dIn),
                                pw.baseAddress, ld(dIn), pbias, py.baseAddress, ld(dOut))
                        }
                        return loraA.withUnsafeBufferPointer { pa in
                            loraB.withUnsafeBufferPointer { pb in
                                lt_lora_forward(
                                    Int64(n), Int64(dIn), Int64(dOut), Int64(r), s,
                                    px.baseAddress, ld(dIn), pw.baseAddress, ld(dIn), pbias,
                                    pa.baseAddress, pb.baseAddress, py.baseAddress, ld(dOut),
                                    nil, work.mutablePointer)
                            }
                        }
                    }
                }
            }
        }
        try KernelFailure.check(status, isMerged ? "lt_lora_base_forward" : "lt_lora_forward")
        return y
    }

    /// Gradients of a loss L with respect to `loraA`, `loraB` and (optionally) the input, given
    /// `dY = dL/dY` for the output of ``callAsFunction(_:)`` on `x`. `weight` and `bias` are
    /// frozen and get no gradient. `x Aᵀ` is recomputed (nothing is cached by the forward).
    ///
    /// dB = s dYᵀ (X Aᵀ), dA = s (dY B)ᵀ X, dX = dY W + s (dY B) A.
    /// - Parameters:
    ///   - x: the forward's input, `[..., d_in]`.
    ///   - dY: `[..., d_out]`, with the same leading dimensions as `x`.
    ///   - computeInputGradient: also return dL/dX (costs one more GEMM, n · d_out · d_in).
    /// - Throws: ``LoRAError/backwardThroughMergedAdapter`` when merged; ``LoRAError`` for
    ///   wrong shapes.
    /// - Complexity: O(n · r · (d_in + d_out)), plus O(n · d_in · d_out) for the input gradient.
    public func backward(input x: Tensor, outputGradient dY: Tensor,
                         computeInputGradient: Bool = true) throws -> LoRAGradients {
        guard !isMerged else { throw LoRAError.backwardThroughMergedAdapter }
        let (dIn, dOut, r) = try checkedDimensions()
        let (n, outShape) = try rows(of: x, features: dIn, name: "input", otherFeatures: dOut)
        guard dY.shape == outShape else {
            throw LoRAError.shapeMismatch(name: "outputGradient", expected: outShape, actual: dY.shape)
        }
        var dA = try Tensor(zeros: [r, dIn])
        var dB = try Tensor(zeros: [dOut, r])
        var dX: Tensor? = computeInputGradient ? try Tensor(zeros: x.shape) : nil
        var size: Int64 = 0
        try KernelFailure.check(
            lt_lora_backward_workspace_size(Int64(n), Int64(dIn), Int64(dOut), Int64(r), &size),
            "lt_lora_backward_workspace_size")
        var work = try Tensor(uninitialized: [Int(size)])   // scratch the kernel writes before it reads
        let s = configuration.scale
        // Inputs first (read-only), then the outputs; typed closures keep type-checking fast.
        let status = x.withUnsafeBufferPointer { (px: UnsafeBufferPointer<Float>) -> lt_status in
            weight.withUnsafeBufferPointer { (pw: UnsafeBufferPointer<Float>) -> lt_status in
                loraA.withUnsafeBufferPointer { (pa: UnsafeBufferPointer<Float>) -> lt_status in
                    loraB.withUnsafeBufferPointer { (pb: UnsafeBufferPointer<Float>) -> lt_status in
                        dY.withUnsafeBufferPointer { (pdy: UnsafeBufferPointer<Float>) -> lt_status in
                            let inputs = BackwardInputs(x: px.baseAddress, w: pw.baseAddress, a: pa.baseAddress,
                                                        b: pb.baseAddress, dY: pdy.baseAddress)
                            return Self.runBackward(n: n, dIn: dIn, dOut: dOut, r: r, scale: s, inputs: inputs,
                                                    dA: &dA, dB: &dB, dX: &dX, workspace: work.mutablePointer)
                        }
                    }
                }
            }
        }
        try KernelFailure.check(status, "lt_lora_backward")
        return LoRAGradients(a: dA, b: dB, input: dX)
    }

    /// Folds the adapter into the weight: `weight += scale · B A`; afterwards the forward pass
    /// costs only the base GEMM and ``isMerged`` is true.
    /// - Throws: ``LoRAError/alreadyMerged`` if already merged (merging twice would add the
    ///   update twice), ``LoRAError`` for inconsistent shapes.
    /// - Complexity: O(d_out · d_in · r), one pass over `weight`.
    public mutating func merge() throws {
        guard !isMerged else { throw LoRAError.alreadyMerged }
        _ = try checkedDimensions()
        try LoRA.merge(into: &weight, a: loraA, b: loraB, scale: configuration.scale)
        isMerged = true
    }

    /// Takes the adapter out of the weight again: `weight -= scale · B A`. `weight` is restored
    /// up to one rounding per element (within 1e-6 · max|W| in the tests).
    /// - Throws: ``LoRAError/notMerged`` if not merged, ``LoRAError`` for inconsistent shapes.
    /// - Complexity: O(d_out · d_in · r).
    public mutating func unmerge() throws {
        guard isMerged else { throw LoRAError.notMerged }
        _ = try checkedDimensions()
        try LoRA.merge(into: &weight, a: loraA, b: loraB, scale: configuration.scale, subtract: true)
        isMerged = false
    }

    /// The merged weight `W + scale · B A` (d_out × d_in), leaving `self` unchanged (MLX's
    /// `fused`). When the layer is already merged, this is `weight` itself.
    /// - Complexity: O(d_out · d_in · r) time, one copy of `weight`.
    public func fused() throws -> Tensor {
        _ = try checkedDimensions()
        if isMerged { return weight }
        var w = weight
        try LoRA.merge(into: &w, a: loraA, b: loraB, scale: configuration.scale)
        return w
    }

    private struct BackwardInputs {
        var x, w, a, b, dY: UnsafePointer<Float>?
    }

    private static func runBackward(n: Int, dIn: Int, dOut: Int, r: Int, scale: Float,
                                    inputs p: BackwardInputs, dA: inout Tensor, dB: inout Tensor,
                                    dX: inout Tensor?, workspace: UnsafeMutablePointer<Float>) -> lt_status {
        dA.withUnsafeMutableBufferPointer { (pda: UnsafeMutableBufferPointer<Float>) -> lt_status in
            dB.withUnsafeMutableBufferPointer { (pdb: UnsafeMutableBufferPointer<Float>) -> lt_status in
                withOptionalMutablePointer(&dX) { (pdx: UnsafeMutablePointer<Float>?) -> lt_status in
                    lt_lora_backward(
                        Int64(n), Int64(dIn), Int64(dOut), Int64(r), scale,
                        p.x, ld(dIn), p.w, ld(dIn), p.a, p.b, p.dY, ld(dOut), nil,
                        pda.baseAddress, pdb.baseAddress, pdx, ld(dIn), 0, workspace)
                }
            }
        }
    }

    // MARK: - Checks

    /// (d_in, d_out, r) after checking that all tensors and the configuration fit together.
    func checkedDimensions() throws -> (Int, Int, Int) {
        try configuration.validate()
        let scale = configuration.scale
        guard scale.isFinite else { throw LoRAError.invalidScale(scale) }
        let (dOut, dIn) = try LoRA.matrix(weight, "weight")
        if let bias, bias.shape != [dOut] {
            throw LoRAError.shapeMismatch(name: "bias", expected: [dOut], actual: bias.shape)
        }
        let r = try LoRA.factorRank(a: loraA, b: loraB, inputFeatures: dIn, outputFeatures: dOut,
                                    expectedRank: configuration.rank)
        return (dIn, dOut, r)
    }

    /// Number of rows of `t` (`[..., features]`) and the matching shape with the last
    /// dimension replaced by `otherFeatures`.
    func rows(of t: Tensor, features: Int, name: String, otherFeatures: Int) throws -> (Int, [Int]) {
        guard let last = t.shape.last, last == features else {
            var expected = Array(t.shape.dropLast())
            expected.append(features)
            throw LoRAError.shapeMismatch(name: name, expected: expected, actual: t.shape)
        }
        let n = t.shape.dropLast().reduce(1, *)
        var out = Array(t.shape.dropLast())
        out.append(otherFeatures)
        return (n, out)
    }
}

/// Leading dimension for a contiguous row of `columns` elements (BLAS wants at least 1).
@inline(__always) private func ld(_ columns: Int) -> Int64 { Int64(max(columns, 1)) }

private func withOptionalPointer<R>(_ t: Tensor?, _ body: (UnsafePointer<Float>?) throws -> R) rethrows -> R {
    guard let t else { return try body(nil) }
    return try t.withUnsafeBufferPointer { try body($0.baseAddress) }
}

private func withOptionalMutablePointer<R>(_ t: inout Tensor?,
                                           _ body: (UnsafeMutablePointer<Float>?) throws -> R) rethrows -> R {
    guard t != nil else { return try body(nil) }
    return try t!.withUnsafeMutableBufferPointer { try body($0.baseAddress) }
}
