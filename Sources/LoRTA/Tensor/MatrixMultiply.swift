import CBLAS

extension Tensor {
    /// `C = alpha · op(A) · op(B) + beta · C` for 2-dimensional tensors, through OpenBLAS
    /// `sgemm` (multi-threaded by OpenBLAS's own pool; see ``Runtime/setThreadCount(_:)``).
    ///
    /// - Parameters:
    ///   - a: the matrix `A`.
    ///   - b: the matrix `B`.
    ///   - transposeA: use `Aᵀ`.
    ///   - transposeB: use `Bᵀ`.
    ///   - alpha: the factor of the product.
    ///   - beta: the factor of the previous contents of `c` (0 ignores them).
    ///   - c: the output; must already have shape `[rows(op(A)), columns(op(B))]`.
    /// - Throws: ``TensorError`` when a shape does not fit.
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
        c.withUnsafeMutableBufferPointer { cp in
            a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans,
                                transposeB ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), Int32(k),
                                alpha, ap.baseAddress, Int32(ac), bp.baseAddress, Int32(bc),
                                beta, cp.baseAddress, Int32(n))
                }
            }
        }
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
