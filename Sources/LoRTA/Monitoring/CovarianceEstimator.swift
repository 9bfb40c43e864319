import CKernels

/// How a covariance matrix is estimated from ``ActivationStatistics``.
///
/// With n rows, d features and scatter `M2 = Σ (x−μ)(x−μ)ᵀ`:
/// - ``empirical``: `M2 / (n − ddof)`, ddof = 1 (numpy's `np.cov` default). For a tied
///   covariance pooled over K class-centred groups, ddof = K (one mean per class).
/// - ``ridge(epsilon:)``: the empirical estimate plus `ε · tr(S)/d · I`: the ridge is
///   relative to the average variance, so it does not depend on the data's scale.
/// - ``ledoitWolf``: exactly `sklearn.covariance.ledoit_wolf` — the *biased* covariance
///   `S = M2/n` shrunk towards `tr(S)/d · I` with scikit-learn's shrinkage formula (which
///   uses `Σ‖x−μ‖⁴`, ``ActivationStatistics/fourthMoment``).
/// - ``oracleApproximatingShrinkage``: exactly `sklearn.covariance.oas` (biased `S = M2/n`,
///   scikit-learn's OAS shrinkage formula).
///
/// For d = 1 both shrinkage estimators return `S = M2/n` with shrinkage 0, as scikit-learn does.
public enum CovarianceEstimator: Sendable, Equatable, Hashable, CustomStringConvertible {
    case empirical
    case ridge(epsilon: Double)
    case ledoitWolf
    case oracleApproximatingShrinkage

    /// Short name as used on the command line: `empirical`, `ridge`, `ledoit-wolf`, `oas`.
    public var description: String {
        switch self {
        case .empirical: return "empirical"
        case .ridge(let e): return "ridge(\(e))"
        case .ledoitWolf: return "ledoit-wolf"
        case .oracleApproximatingShrinkage: return "oas"
        }
    }
}

/// A symmetric d × d covariance estimate (row-major, float64) with what made it.
public struct CovarianceMatrix: Sendable, Equatable {
    /// d.
    public let dimension: Int
    /// The d × d entries, row-major, symmetric.
    public let values: [Double]
    /// The estimator that produced the matrix.
    public let estimator: CovarianceEstimator
    /// Shrinkage weight towards the scaled identity (Ledoit–Wolf, OAS); 0 for the empirical
    /// and ridge estimators.
    public let shrinkage: Double
    /// Rows behind the estimate.
    public let sampleCount: Int

    /// Wraps a symmetric matrix given row-major.
    /// - Throws: ``StatisticsError/invalidParameter(_:)`` unless `values.count == dimension²`
    ///   and the matrix is symmetric; ``StatisticsError/nonFiniteValue(operation:)``.
    public init(dimension: Int, values: [Double], estimator: CovarianceEstimator = .empirical,
                shrinkage: Double = 0, sampleCount: Int = 0) throws {
        guard dimension >= 1, values.count == dimension * dimension else {
            throw StatisticsError.invalidParameter("covariance needs \(dimension)×\(dimension) values, got \(values.count)")
        }
        guard values.allSatisfy({ $0.isFinite }) else { throw StatisticsError.nonFiniteValue(operation: "CovarianceMatrix") }
        for i in 0..<dimension {
            for j in 0..<i where values[i * dimension + j] != values[j * dimension + i] {
                throw StatisticsError.invalidParameter("covariance matrix is not symmetric at (\(i), \(j))")
            }
        }
        self.dimension = dimension
        self.values = values
        self.estimator = estimator
        self.shrinkage = shrinkage
        self.sampleCount = sampleCount
    }

    /// Entry (i, j).
    public subscript(row: Int, column: Int) -> Double { values[row * dimension + column] }

    /// The trace.
    public var trace: Double { (0..<dimension).reduce(0) { $0 + values[$1 * dimension + $1] } }

    /// The lower Cholesky factor L with `Σ = L Lᵀ` (LAPACK `dpotrf`). O(d³/3).
    /// - Throws: ``StatisticsError/notPositiveDefinite(order:)`` when the matrix is singular or
    ///   indefinite (no silent fallback: choose a ridge or shrinkage estimator instead).
    public func cholesky() throws -> CholeskyFactor {
        var a = values
        var failed: Int64 = 0
        let status = a.withUnsafeMutableBufferPointer {
            lt_cholesky(Int64(dimension), $0.baseAddress, Int64(dimension), &failed)
        }
        if status == LT_ERR_NUMERICAL { throw StatisticsError.notPositiveDefinite(order: Int(failed)) }
        try KernelFailure.check(status, "lt_cholesky")
        return CholeskyFactor(dimension: dimension, lower: a)
    }

    /// The precision matrix Σ⁻¹ (row-major, symmetric), through Cholesky (`dpotrf`, `dpotri`).
    /// - Throws: ``StatisticsError/notPositiveDefinite(order:)``.
    public func precision() throws -> [Double] { try cholesky().inverse() }

    /// `log det Σ` = 2 Σ log L_ii. - Throws: ``StatisticsError/notPositiveDefinite(order:)``.
    public func logDeterminant() throws -> Double { try cholesky().logDeterminant }

    /// The PCA spectrum: eigenvalues in descending order (LAPACK `dsyevd`). O(d³).
    public func eigenvalues() throws -> [Double] {
        var a = values
        var w = [Double](repeating: 0, count: dimension)
        let status = a.withUnsafeMutableBufferPointer { ap in
            w.withUnsafeMutableBufferPointer { wp in
                lt_sym_eigen(Int64(dimension), ap.baseAddress, Int64(dimension), wp.baseAddress, 0)
            }
        }
        if status == LT_ERR_NUMERICAL { throw StatisticsError.numericalFailure(operation: "eigenvalues (dsyevd)") }
        try KernelFailure.check(status, "eigenvalues (dsyevd)")
        return w.reversed()
    }

    /// Eigenvalues (ascending) and orthonormal eigenvectors (row-major d × d; column k is the
    /// eigenvector of eigenvalue k) of a symmetric matrix given row-major. O(d³) (`dsyevd`).
    static func symmetricEigen(_ values: [Double], dimension d: Int) throws -> (values: [Double], vectors: [Double]) {
        var a = values
        var w = [Double](repeating: 0, count: d)
        let status = a.withUnsafeMutableBufferPointer { ap in
            w.withUnsafeMutableBufferPointer { wp in
                lt_sym_eigen(Int64(d), ap.baseAddress, Int64(d), wp.baseAddress, 1)
            }
        }
        if status == LT_ERR_NUMERICAL { throw StatisticsError.numericalFailure(operation: "eigen-decomposition (dsyevd)") }
        try KernelFailure.check(status, "eigen-decomposition (dsyevd)")
        return (w, a)
    }

    /// The participation ratio `(Σλ)² / Σλ²` of the eigenvalues (= `tr(Σ)² / ‖Σ‖_F²`, computed
    /// without an eigen-decomposition): the effective number of dimensions, in [1, d].
    /// Returns 0 for the zero matrix.
    public var participationRatio: Double {
        let tr = trace
        let frob = values.reduce(0) { $0 + $1 * $1 }
        return frob == 0 ? 0 : tr * tr / frob
    }
}

/// A lower-triangular Cholesky factor L of a symmetric positive-definite matrix `Σ = L Lᵀ`.
public struct CholeskyFactor: Sendable, Equatable {
    /// d.
    public let dimension: Int
    /// L, d × d row-major, zeros above the diagonal.
    public let lower: [Double]

    /// `log det(L Lᵀ)` = 2 Σ log L_ii.
    public var logDeterminant: Double {
        (0..<dimension).reduce(0) { $0 + 2 * lt_naturalLog(lower[$1 * dimension + $1]) }
    }

    /// `(L Lᵀ)⁻¹` (row-major, symmetric) via LAPACK `dpotri`. O(d³).
    public func inverse() throws -> [Double] {
        var inv = [Double](repeating: 0, count: dimension * dimension)
        let status = lower.withUnsafeBufferPointer { l in
            inv.withUnsafeMutableBufferPointer { o in
                lt_cholesky_inverse(Int64(dimension), l.baseAddress, Int64(dimension), o.baseAddress, Int64(dimension))
            }
        }
        if status == LT_ERR_NUMERICAL { throw StatisticsError.numericalFailure(operation: "lt_cholesky_inverse") }
        try KernelFailure.check(status, "lt_cholesky_inverse")
        return inv
    }

    /// Squared Mahalanobis distances `(x_i − μ)ᵀ (L Lᵀ)⁻¹ (x_i − μ)` of the rows of `batch`
    /// (n × d) from `mean` (d). O(n·d²/2).
    func squaredDistances(_ batch: Tensor, from mean: [Double], operation: String) throws -> [Double] {
        let (rows, d) = try batch.matrixShape(operation)
        guard d == dimension else {
            throw StatisticsError.dimensionMismatch(operation: operation, expected: dimension, actual: d)
        }
        guard rows > 0 else { return [] }
        try Runtime.initialize()
        var size: Int64 = 0
        try KernelFailure.check(lt_mahalanobis_workspace_size(Int64(d), Int64(rows), &size), "lt_mahalanobis_workspace_size")
        var work = [Double](repeating: 0, count: Int(size))
        var out = [Double](repeating: 0, count: rows)
        let status = batch.withUnsafeBufferPointer { x in
            mean.withUnsafeBufferPointer { m in
                lower.withUnsafeBufferPointer { l in
                    out.withUnsafeMutableBufferPointer { o in
                        work.withUnsafeMutableBufferPointer { w in
                            lt_mahalanobis_scores(Int64(d), m.baseAddress, l.baseAddress, Int64(d), x.baseAddress,
                                                  Int64(rows), Int64(d), o.baseAddress, w.baseAddress, size)
                        }
                    }
                }
            }
        }
        try KernelFailure.check(status, "lt_mahalanobis_scores")
        guard out.allSatisfy({ $0.isFinite }) else { throw StatisticsError.nonFiniteValue(operation: operation) }
        return out
    }
}

/// The centred second and fourth moments an estimator needs: n rows, `ddof` means estimated,
/// scatter `M2` and `Σ‖x−μ‖⁴` (μ the row's own group mean).
struct CentredMoments {
    var dimension: Int
    var count: Int
    var ddof: Int
    var scatter: [Double]
    var fourth: Double

    func covariance(_ estimator: CovarianceEstimator, operation: String) throws -> CovarianceMatrix {
        let d = dimension, n = Double(count)
        guard count >= ddof + 1, count >= 2 else {
            throw StatisticsError.insufficientSamples(operation: operation, count: count, required: max(ddof + 1, 2))
        }
        var shrinkage = 0.0
        var cov: [Double]
        switch estimator {
        case .empirical, .ridge:
            let k = 1 / Double(count - ddof)
            cov = scatter.map { $0 * k }
            if case .ridge(let eps) = estimator {
                guard eps.isFinite, eps >= 0 else { throw StatisticsError.invalidParameter("ridge epsilon \(eps) must be finite and >= 0") }
                var tr = 0.0
                for i in 0..<d { tr += cov[i * d + i] }
                let add = eps * tr / Double(d)
                for i in 0..<d { cov[i * d + i] += add }
            }
        case .ledoitWolf:
            // sklearn.covariance.ledoit_wolf_shrinkage on centred rows.
            let s = scatter.map { $0 / n }  // biased covariance
            cov = s
            if d > 1 {
                var tr = 0.0
                for i in 0..<d { tr += s[i * d + i] }              // emp_cov_trace.sum()
                let mu = tr / Double(d)
                let delta_ = s.reduce(0) { $0 + $1 * $1 }          // Σ (XᵀX)² / n²
                let beta_ = fourth                                   // Σ_i ‖x_i‖⁴
                var beta = 1.0 / (Double(d) * n) * (beta_ / n - delta_)
                var delta = delta_ - 2.0 * mu * tr + Double(d) * mu * mu
                delta /= Double(d)
                beta = min(beta, delta)
                shrinkage = beta == 0 ? 0 : beta / delta
                for i in 0..<(d * d) { cov[i] = (1 - shrinkage) * s[i] }
                for i in 0..<d { cov[i * d + i] += shrinkage * mu }
            }
        case .oracleApproximatingShrinkage:
            // sklearn.covariance._shrunk_covariance._oas
            let s = scatter.map { $0 / n }
            cov = s
            if d > 1 {
                let alpha = s.reduce(0) { $0 + $1 * $1 } / Double(d * d)
                var tr = 0.0
                for i in 0..<d { tr += s[i * d + i] }
                let mu = tr / Double(d)
                let mu2 = mu * mu
                let num = alpha + mu2
                let den = (n + 1) * (alpha - mu2 / Double(d))
                shrinkage = den == 0 ? 1 : min(num / den, 1)
                for i in 0..<(d * d) { cov[i] = (1 - shrinkage) * s[i] }
                for i in 0..<d { cov[i * d + i] += shrinkage * mu }
            }
        }
        // Exact symmetry (the scatter is symmetric; the arithmetic above is elementwise).
        return try CovarianceMatrix(dimension: d, values: cov, estimator: estimator, shrinkage: shrinkage, sampleCount: count)
    }
}

extension ActivationStatistics {
    /// The covariance estimate of the rows seen. O(d²).
    /// - Throws: ``StatisticsError/insufficientSamples(operation:count:required:)`` when n < 2;
    ///   ``StatisticsError/invalidParameter(_:)`` for a negative or non-finite ridge ε.
    public func covariance(estimator: CovarianceEstimator = .empirical) throws -> CovarianceMatrix {
        try CentredMoments(dimension: dimension, count: count, ddof: 1, scatter: scatter, fourth: fourthMoment)
            .covariance(estimator, operation: "covariance(\(estimator))")
    }

    /// The tied (shared) covariance of the per-label groups, pooled over class-centred rows
    /// (Lee et al. 2018): scatter `Σ_c M2_c`, fourth moment `Σ_c Σ_{i∈c} ‖x_i − μ_c‖⁴`, and
    /// ddof = number of labels for the empirical estimator. Ledoit–Wolf and OAS equal
    /// scikit-learn's on the class-centred rows. O(K·d²).
    /// - Throws: ``StatisticsError/missingLabelStatistics(operation:)`` without labels.
    public func tiedCovariance(estimator: CovarianceEstimator = .empirical) throws -> CovarianceMatrix {
        guard !labelStatistics.isEmpty else { throw StatisticsError.missingLabelStatistics(operation: "tiedCovariance") }
        var m = CentredMoments(dimension: dimension, count: 0, ddof: labelStatistics.count,
                               scatter: [Double](repeating: 0, count: dimension * dimension), fourth: 0)
        for label in labels {
            let s = labelStatistics[label]!
            m.count += s.count
            m.fourth += s.fourthMoment
            for i in 0..<m.scatter.count { m.scatter[i] += s.scatter[i] }
        }
        return try m.covariance(estimator, operation: "tiedCovariance(\(estimator))")
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func lt_naturalLog(_ x: Double) -> Double { Glibc.log(x) }
#elseif canImport(Musl)
import Musl
@inline(__always) func lt_naturalLog(_ x: Double) -> Double { Musl.log(x) }
#elseif canImport(Darwin)
import Darwin
@inline(__always) func lt_naturalLog(_ x: Double) -> Double { Darwin.log(x) }
#endif
