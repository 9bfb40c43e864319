import CKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Quantum-entropy (QUE) scores as in SPECTRE (Hayase et al. 2021): rows are whitened with the
/// trusted mean and covariance, `x̃ = L⁻¹ (x − μ_t)` with `Σ_t = L Lᵀ`; with `Σ̃` the covariance
/// of the whitened *untrusted* rows (the batch being scored),
///
///     Q = exp(α Σ̃/‖Σ̃‖₂) / tr(exp(α Σ̃/‖Σ̃‖₂)),      score(x) = x̃ᵀ Q x̃.
///
/// α → 0 gives the (scaled) Mahalanobis distance to the trusted distribution; α → ∞ the
/// spectral signature in whitened coordinates. The score does not depend on the choice of
/// whitening matrix (Cholesky or symmetric square root) nor on the normalisation of Σ̃.
///
/// Computed without forming x̃: `score(x) = (x − μ_t)ᵀ (L Q⁻¹ Lᵀ)⁻¹ (x − μ_t)`, one Cholesky
/// factorization and the blocked Mahalanobis kernel. Q's eigenvalues lie within a factor e^α
/// of each other, so large α (≳ 30) makes that matrix ill-conditioned. Cost per batch of m rows:
/// O(m·d² + d³).
public struct QuantumEntropyDetector: AnomalyDetector, Equatable {
    /// The exponent α (> 0); SPECTRE's default is 4.
    public let alpha: Double
    /// Estimator of the trusted covariance.
    public let estimator: CovarianceEstimator
    var trustedMean: [Double] = []
    var trustedFactor: CholeskyFactor?

    /// - Throws: ``StatisticsError/invalidParameter(_:)`` unless α is finite and > 0.
    public init(alpha: Double = 4, estimator: CovarianceEstimator = .empirical) throws {
        guard alpha.isFinite, alpha > 0 else { throw StatisticsError.invalidParameter("QUE alpha \(alpha) must be finite and > 0") }
        self.alpha = alpha
        self.estimator = estimator
    }

    /// Fits the whitening on trusted statistics.
    /// - Throws: ``StatisticsError/notPositiveDefinite(order:)`` and estimator errors.
    public mutating func fit(statistics: ActivationStatistics) throws {
        let factor = try statistics.covariance(estimator: estimator).cholesky()
        trustedFactor = factor
        trustedMean = statistics.mean
    }

    /// Fits the whitening on trusted rows (n × d).
    public mutating func fit(_ trusted: Tensor) throws {
        try fit(statistics: ActivationStatistics(trusted))
    }

    /// QUE scores of the rows of `batch` (m × d, m ≥ 2; the batch is the untrusted set).
    public func scores(_ batch: Tensor) throws -> [Double] {
        guard let L = trustedFactor else { throw StatisticsError.notFitted("QuantumEntropyDetector") }
        let (rows, d) = try batch.matrixShape("QuantumEntropyDetector.scores")
        guard d == L.dimension else {
            throw StatisticsError.dimensionMismatch(operation: "QuantumEntropyDetector.scores", expected: L.dimension, actual: d)
        }
        guard rows >= 2 else {
            throw StatisticsError.insufficientSamples(operation: "QuantumEntropyDetector.scores", count: rows, required: 2)
        }
        // Σ̃ = L⁻¹ S_u L⁻ᵀ (any positive scale of S_u gives the same Q)
        var tilde = try ActivationStatistics(batch).scatter
        try tilde.withUnsafeMutableBufferPointer { s in
            try L.lower.withUnsafeBufferPointer { l in
                try KernelFailure.check(lt_sym_whiten(Int64(d), l.baseAddress, Int64(d), s.baseAddress, Int64(d)), "lt_sym_whiten")
            }
        }
        let (lambda, V) = try CovarianceMatrix.symmetricEigen(tilde, dimension: d)
        let top = lambda.max()!
        guard top > 0 else {
            throw StatisticsError.invalidParameter("QUE: the untrusted rows have zero spread")
        }
        // weights of Q up to normalisation, shifted so the largest is 1 (exp(α(λ/λmax − 1)))
        let w = lambda.map { exp(alpha * ($0 / top - 1)) }
        let total = w.reduce(0, +)
        // A = L Q⁻¹ Lᵀ with Q⁻¹ = V diag(total / w) Vᵀ
        var A = [Double](repeating: 0, count: d * d)
        for i in 0..<d {
            for j in 0...i {
                var acc = 0.0
                for k in 0..<d { acc += V[i * d + k] * (total / w[k]) * V[j * d + k] }
                A[i * d + j] = acc
                A[j * d + i] = acc
            }
        }
        try A.withUnsafeMutableBufferPointer { a in
            try L.lower.withUnsafeBufferPointer { l in
                try KernelFailure.check(lt_sym_unwhiten(Int64(d), l.baseAddress, Int64(d), a.baseAddress, Int64(d)), "lt_sym_unwhiten")
            }
        }
        let metric = try CovarianceMatrix(dimension: d, values: A).cholesky()
        return try metric.squaredDistances(batch, from: trustedMean, operation: "QuantumEntropyDetector.scores")
    }
}
