/// Spectral signature detector (Tran, Li & Mądry 2018): the score of a row of an *untrusted*
/// set is its squared projection on the top singular direction of that set centred on its own
/// mean, `((x − μ_u) · v)²`. A poisoned subpopulation shifts the data along one direction, which
/// becomes the top singular direction, so its rows get the largest scores.
///
/// The method is unsupervised on the scored set: ``scores(_:)`` computes the direction from the
/// batch it scores (at least 2 rows). ``fit(_:)`` only records the dimension that later
/// batches must have. Cost: O(m·d²/2 + d³) for m rows (float64 statistics + `dsyevd`).
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

    /// The top singular direction (unit vector, sign arbitrary) of the centred rows of `batch`.
    public func topDirection(_ batch: Tensor) throws -> [Double] {
        let (rows, d) = try batch.matrixShape("SpectralSignatureDetector")
        if let dimension, dimension != d {
            throw StatisticsError.dimensionMismatch(operation: "SpectralSignatureDetector", expected: dimension, actual: d)
        }
        guard rows >= 2 else {
            throw StatisticsError.insufficientSamples(operation: "SpectralSignatureDetector", count: rows, required: 2)
        }
        let s = try ActivationStatistics(batch)
        let (_, vectors) = try CovarianceMatrix.symmetricEigen(s.scatter, dimension: d)
        return (0..<d).map { vectors[$0 * d + d - 1] }
    }

    /// Squared projections `((x_i − μ_u) · v)²` of the rows of `batch` (m × d, m ≥ 2).
    public func scores(_ batch: Tensor) throws -> [Double] {
        let v = try topDirection(batch)
        let (rows, d) = (batch.shape[0], batch.shape[1])
        let mean = try ActivationStatistics(batch).mean
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
}
