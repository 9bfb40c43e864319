import CKernels

/// One low-rank product an adapter adds to an output: for every row `i` of the batch,
///
///     Y[i, column + j] += Σ_{k < rank} coefficients[i, k] · matrix[k, j]      (j < width)
///
/// with the sum over `k` formed first (a chain of fused multiply-adds in `k` order) and added
/// with one rounding — the C kernels' `lt_lowrank_term` (docs/math.md §2.5). An adapter's
/// update of a group of projections is a list of terms applied in order (``Adapter/forwardTerms(layer:input:modules:)``);
/// the model hands them to its frozen product, which adds them to each output tile while the
/// tile is in cache, so an adapted projection costs one pass over its output. Applied after
/// the product instead they give the same bits.
///
/// `coefficients` rows are the batch rows (`rows × rank` at `coefficientOffset`, row stride
/// `coefficientStride`); `matrix` is `rank × width` at `matrixOffset` (row stride
/// `matrixStride`). The tensors are kept alive by the term.
public struct LowRankTerm: Sendable {
    /// The output it adds to: a module name in a forward, `""` for the group's input gradient.
    public let module: String
    /// First column, inside that output.
    public let column: Int
    /// Number of columns.
    public let width: Int
    /// Number of products summed per element.
    public let rank: Int
    let coefficients: Tensor
    let coefficientOffset: Int
    let coefficientStride: Int
    let matrix: Tensor
    let matrixOffset: Int
    let matrixStride: Int

    /// A term reading `coefficients` (`[rows × ≥ rank]` from `coefficientOffset`, stride
    /// `coefficientStride`) and `matrix` (`[rank × ≥ width]` from `matrixOffset`, stride
    /// `matrixStride`).
    /// - Throws: ``AdapterError/parameterMismatch(_:)`` when a size is negative, a stride is
    ///   smaller than the row it steps over, or `matrix` is too short; the coefficient rows are
    ///   checked against the batch when the term is used.
    public init(module: String, column: Int, width: Int, rank: Int,
                coefficients: Tensor, coefficientOffset: Int = 0, coefficientStride: Int,
                matrix: Tensor, matrixOffset: Int = 0, matrixStride: Int) throws {
        guard column >= 0, width >= 0, rank >= 0, coefficientOffset >= 0, matrixOffset >= 0,
              coefficientStride >= rank, matrixStride >= width else {
            throw AdapterError.parameterMismatch("low-rank term of \(module): column \(column), width \(width), rank \(rank), strides \(coefficientStride)/\(matrixStride)")
        }
        if rank > 0 && width > 0 {
            let (rows, o1) = (rank - 1).multipliedReportingOverflow(by: matrixStride)
            let (end, o2) = rows.addingReportingOverflow(matrixOffset + width)
            guard !o1, !o2, end <= matrix.count else {
                throw AdapterError.parameterMismatch("low-rank term of \(module): a \(rank) × \(width) matrix does not fit \(matrix.count) values")
            }
        }
        self.module = module
        self.column = column
        self.width = width
        self.rank = rank
        self.coefficients = coefficients
        self.coefficientOffset = coefficientOffset
        self.coefficientStride = coefficientStride
        self.matrix = matrix
        self.matrixOffset = matrixOffset
        self.matrixStride = matrixStride
    }

    /// True when the coefficients hold `rows` rows.
    func covers(rows: Int) -> Bool {
        guard rows > 0, rank > 0 else { return true }
        let (a, o1) = (rows - 1).multipliedReportingOverflow(by: coefficientStride)
        let (end, o2) = a.addingReportingOverflow(coefficientOffset + rank)
        return !o1 && !o2 && end <= coefficients.count
    }

    /// Checks that `column(of:)` places every term's output (a product splitting its output into
    /// parts calls this before it hands each part its own terms, so that none is dropped).
    /// - Throws: ``AdapterError/incompatible(_:)`` for a term of an output the product does not compute.
    static func checkOutputs(_ terms: [LowRankTerm], column: (String) -> Int?) throws {
        if let t = terms.first(where: { column($0.module) == nil }) {
            throw AdapterError.incompatible("a low-rank term for \"\(t.module)\", which this product does not compute")
        }
    }

    /// Calls `body` with the C form of `terms` (`lt_lowrank_term`, columns placed by `column(of:)`,
    /// the first column of a term's output inside the product's output), valid during the call.
    /// Terms whose module `column(of:)` does not know are an error.
    /// - Throws: ``AdapterError/incompatible(_:)`` for an unknown output or too few coefficient rows.
    static func withCTerms<R>(_ terms: [LowRankTerm], rows: Int, column: (String) -> Int?,
                              _ body: (UnsafePointer<lt_lowrank_term>?, Int64) throws -> R) throws -> R {
        try checkOutputs(terms, column: column)
        var c: [lt_lowrank_term] = []
        c.reserveCapacity(terms.count)
        for t in terms {
            let base = column(t.module)!
            guard t.covers(rows: rows) else {
                throw AdapterError.incompatible("the low-rank term of \(t.module) has coefficients for fewer than \(rows) rows")
            }
            c.append(lt_lowrank_term(col: Int64(base + t.column), width: Int64(t.width), rank: Int64(t.rank),
                                     coef: t.coefficients.pointer + t.coefficientOffset,
                                     ldcoef: Int64(t.coefficientStride),
                                     M: t.matrix.pointer + t.matrixOffset, ldm: Int64(t.matrixStride)))
        }
        return try withExtendedLifetime(terms) {
            try c.withUnsafeBufferPointer { try body($0.baseAddress, Int64($0.count)) }
        }
    }

    /// Adds `terms` to outputs after the fact (`lt_lowrank_terms_apply`): each term to the output
    /// of its module among `outputs` (`rows` rows; a term whose module is absent is skipped).
    /// Same bits as a fused product.
    static func apply(_ terms: [LowRankTerm], rows: Int, to outputs: [AdapterOutput]) throws {
        for out in outputs {
            let mine = terms.filter { $0.module == out.module }
            guard !mine.isEmpty else { continue }
            let w = mine.map { $0.column + $0.width }.max() ?? 0
            try withCTerms(mine, rows: rows, column: { _ in 0 }) { p, count in
                try KernelFailure.check(lt_lowrank_terms_apply(Int64(rows), Int64(w), p, count, out.pointer, Int64(out.stride)),
                                        "lt_lowrank_terms_apply (\(out.module))")
            }
        }
    }
}
