import CKernels

extension Tensor {
    /// `C = alpha · op(A) · op(B) + beta · C` for 2-dimensional tensors, on the kernels' GEMM
    /// (`lt_gemm_f32`: the library's packed GEMM, or OpenBLAS when ``Runtime/gemmBackend`` is
    /// ``GEMMBackend/openblas``), on ``Runtime/threadCount`` threads.
    ///
    /// - Parameters:
    ///   - a: the matrix `A`.
    ///   - b: the matrix `B`.
    ///   - transposeA: use `Aᵀ`.
    ///   - transposeB: use `Bᵀ`.
    ///   - alpha: the factor of the product.
    ///   - beta: the factor of the previous contents of `c` (0 ignores them).
    ///   - c: the output; must already have shape `[rows(op(A)), columns(op(B))]`.
    /// - Throws: ``TensorError`` when a shape does not fit; ``KernelFailure`` when the kernel
    ///   rejects the product (e.g. sizes beyond 32 bits on the OpenBLAS backend).
    /// - Complexity: O(m·n·k).
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false,
                              alpha: Float = 1, beta: Float = 0, into c: inout Tensor) throws {
        let (ar, ac) = try a.matrixShape("matmul A")
        let (br, bc) = try b.matrixShape("matmul B")
        let (m, k) = transposeA ? (ac, ar) : (ar, ac)
        let (k2, n) = transposeB ? (bc, br) : (br, bc)
        guard k == k2 else {
            throw TensorError.shapeMismatch(operation: "matmul (inner dimensions)", expected: [m, k], actual: transposeB ? [n, k2] : [k2, n])
        }
        try c.expectShape([m, n], "matmul C")
        if m == 0 || n == 0 { return }
        try Runtime.initialize()
        let status = c.withUnsafeMutableBufferPointer { cp in
            a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    lt_gemm_f32(transposeA ? 1 : 0, transposeB ? 1 : 0, Int64(m), Int64(n), Int64(k), alpha,
                                ap.baseAddress, Int64(ac), bp.baseAddress, Int64(bc), beta, cp.baseAddress, Int64(n))
                }
            }
        }
        try KernelFailure.check(status, "lt_gemm_f32(\(m)×\(n)×\(k))")
    }

    /// `op(A) · op(B)` as a new tensor (see ``matmul(_:_:transposeA:transposeB:alpha:beta:into:)``).
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) throws -> Tensor {
        let (ar, ac) = try a.matrixShape("matmul A")
        let (br, bc) = try b.matrixShape("matmul B")
        var c = try Tensor(zeros: [transposeA ? ac : ar, transposeB ? br : bc])
        try matmul(a, b, transposeA: transposeA, transposeB: transposeB, into: &c)
        return c
    }
}
