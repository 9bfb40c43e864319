/// Spectral signature detector (Tran, Li & Mądry 2018): the score of a row of an *untrusted*
/// set is its squared projection on the top singular direction of that set centred on its own
/// mean, `((x − μ_u) · v)²`. A poisoned subpopulation shifts the data along one direction, which
/// becomes the top singular direction, so its rows get the largest scores.
///
/// The method is unsupervised on the scored set: ``scores(_:)`` computes the direction from the
/// batch it scores (at least 2 rows). ``fit(_:)`` only records the dimension that later
/// batches must have.
///
/// The direction never needs much more memory than the batch itself in float64: with m rows of
/// dimension d and `Y` (m × d) the rows centred on their mean, it comes from the smaller of the
/// two Gram matrices of `Y`:
/// - d ≤ m: the d × d scatter `Yᵀ Y` (float64 ``ActivationStatistics``), and `v` its top
///   eigenvector (`dsyevd`). Cost O(m·d²/2 + d³).
/// - m < d: the m × m Gram matrix `Y Yᵀ`, whose entries come from squared distances,
///   `(y_a · y_b) = (‖x_a − μ‖² + ‖x_b − μ‖² − ‖x_a − x_b‖²) / 2` (computed in float64 by the
///   distance kernel, so a large common offset cancels exactly), then its top eigenvector `u`
///   and `v = Yᵀ u / ‖Yᵀ u‖`. Cost O(m²·d + m³); memory O(m²) + the rows in float64.
/// Both give the top right singular vector of `Y` (up to sign and rounding). Either way the
/// matrix is checked against the ``MemoryBudget`` before it is built.
public struct SpectralSignatureDetector: AnomalyDetector, Equatable {
    /// The dimension recorded by ``fit(_:)``; nil before (then any dimension is accepted).
    public internal(set) var dimension: Int?

    public init() {}

    /// Records the dimension of the trusted rows (n × d); the trusted values are not used.
    public mutating func fit(_ trusted: Tensor) throws {
        let (_, d) = try trusted.matrixShape("SpectralSignatureDetector.fit")
        guard d >= 1 else { throw StatisticsError.invalidDimension(d) }
        dimension = d
    }

    /// Records the dimension `d` of later batches without any rows (what ``fit(_:)`` keeps).
    /// - Throws: ``StatisticsError/invalidDimension(_:)`` unless `d >= 1`.
    public mutating func fit(dimension d: Int) throws {
        guard d >= 1 else { throw StatisticsError.invalidDimension(d) }
        dimension = d
    }

    /// The top singular direction (unit vector, sign arbitrary) of the centred rows of `batch`.
    /// - Throws: ``StatisticsError/dimensionMismatch(operation:expected:actual:)``,
    ///   ``StatisticsError/insufficientSamples(operation:count:required:)`` for fewer than 2
    ///   rows, ``StatisticsError/nonFiniteValue(operation:)``, ``MemoryError``.
    public func topDirection(_ batch: Tensor) throws -> [Double] {
        try direction(batch).vector
    }

    /// Squared projections `((x_i − μ_u) · v)²` of the rows of `batch` (m × d, m ≥ 2).
    public func scores(_ batch: Tensor) throws -> [Double] {
        let (v, mean) = try direction(batch)
        let (rows, d) = (batch.shape[0], batch.shape[1])
        let offset = zip(mean, v).reduce(0) { $0 + $1.0 * $1.1 }  // μ · v
        return batch.withUnsafeBufferPointer { x in
            (0..<rows).map { i in
                var p = 0.0
                for j in 0..<d { p += Double(x[i * d + j]) * v[j] }
                let c = p - offset
                return c * c
            }
        }
    }

    /// The direction and the float64 mean of the rows it was centred on.
    func direction(_ batch: Tensor) throws -> (vector: [Double], mean: [Double]) {
        let (rows, d) = try batch.matrixShape("SpectralSignatureDetector")
        if let dimension, dimension != d {
            throw StatisticsError.dimensionMismatch(operation: "SpectralSignatureDetector", expected: dimension, actual: d)
        }
        guard rows >= 2 else {
            throw StatisticsError.insufficientSamples(operation: "SpectralSignatureDetector", count: rows, required: 2)
        }
        guard d > rows else {
            let s = try ActivationStatistics(batch)
            let (_, vectors) = try CovarianceMatrix.symmetricEigen(s.scatter, dimension: d)
            return ((0..<d).map { vectors[$0 * d + d - 1] }, s.mean)
        }
        return try gramDirection(batch, rows: rows, d: d)
    }

    /// The m < d case: the top eigenvector of the m × m Gram matrix of the centred rows.
    private func gramDirection(_ batch: Tensor, rows m: Int, d: Int) throws -> (vector: [Double], mean: [Double]) {
        let operation = "SpectralSignatureDetector"
        guard batch.withUnsafeBufferPointer({ $0.allSatisfy { $0.isFinite } }) else {
            throw StatisticsError.nonFiniteValue(operation: operation)
        }
        // The Gram matrix, the rows as float64 points and the eigenvectors.
        try MemoryBudget.check(bytes: MemoryBudget.sum(MemoryBudget.byteCount(Double.self, 2, m, m), MemoryBudget.byteCount(Double.self, m, d)),
                               purpose: "the spectral signature of \(m) rows of \(d) features needs two \(m)×\(m) float64 matrices "
                                   + "(Gram, eigenvectors) and the rows in float64")
        // Column means, summed over the rows in order (deterministic).
        var mean = [Double](repeating: 0, count: d)
        let points: [Double] = batch.withUnsafeBufferPointer { x in
            for i in 0..<m { for j in 0..<d { mean[j] += Double(x[i * d + j]) } }
            return x.map(Double.init)
        }
        for j in 0..<d { mean[j] /= Double(m) }
        let norms = try KMeans.distances(batch, centroids: mean, k: 1)          // ‖x_a − μ‖²
        var gram = try KMeans.distances(batch, centroids: points, k: m)         // ‖x_a − x_b‖²
        for a in 0..<m {
            for b in 0...a {
                let g = 0.5 * (norms[a] + norms[b] - gram[a * m + b])
                gram[a * m + b] = g
                gram[b * m + a] = g
            }
        }
        let (_, u) = try CovarianceMatrix.symmetricEigen(gram, dimension: m)
        // v = Yᵀ u (u = the last column, the top eigenvalue's), summed over the rows in order.
        var v = [Double](repeating: 0, count: d)
        for a in 0..<m {
            let w = u[a * m + m - 1]
            for j in 0..<d { v[j] += w * (points[a * d + j] - mean[j]) }
        }
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        guard norm > 0 else {
            // All rows equal: every direction is a top one; take the last axis, as dsyevd does.
            var e = [Double](repeating: 0, count: d)
            e[d - 1] = 1
            return (e, mean)
        }
        return (v.map { $0 / norm }, mean)
    }
}
