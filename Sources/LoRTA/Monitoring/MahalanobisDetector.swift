/// Mahalanobis-distance detectors fitted on ``ActivationStatistics``.
///
/// Scores are *squared* Mahalanobis distances (as scikit-learn's
/// `EmpiricalCovariance.mahalanobis` returns), computed in float64 through the Cholesky factor
/// of the estimated covariance:
/// - ``Mode/global``: `(x − μ)ᵀ Σ⁻¹ (x − μ)` with the mean and covariance of all trusted rows.
/// - ``Mode/classConditional``: `min_c (x − μ_c)ᵀ Σ⁻¹ (x − μ_c)` with per-class means and one
///   tied covariance pooled over class-centred rows (Lee et al. 2018); see
///   ``ActivationStatistics/tiedCovariance(estimator:)``.
/// - ``Mode/relative``: relative Mahalanobis (Ren et al. 2021):
///   `min_c [MD_c(x) − MD_0(x)]`, where MD_0 uses the global mean and covariance (same
///   estimator). Scores may be negative.
///
/// Fitting is O(K·d² + d³); scoring m rows is O(K·m·d²/2) for K classes.
public struct MahalanobisDetector: AnomalyDetector, Equatable {
    /// Which Mahalanobis score to compute.
    public enum Mode: String, Sendable, CaseIterable {
        case global, classConditional, relative
    }

    /// The scoring mode.
    public let mode: Mode
    /// The covariance estimator used when fitting.
    public let estimator: CovarianceEstimator
    /// Class means (one per label, ascending labels), or the global mean alone in
    /// ``Mode/global``.
    public internal(set) var means: [[Double]] = []
    /// The labels matching ``means`` (empty in ``Mode/global``).
    public internal(set) var classLabels: [Int] = []
    /// The covariance used for ``means`` (the tied covariance in the class modes).
    public internal(set) var covariance: CovarianceMatrix?
    var factor: CholeskyFactor?
    var backgroundMean: [Double] = []
    var backgroundFactor: CholeskyFactor?

    /// A detector to be fitted.
    public init(mode: Mode = .global, estimator: CovarianceEstimator = .empirical) {
        self.mode = mode
        self.estimator = estimator
    }

    /// True after a successful fit.
    public var isFitted: Bool { factor != nil }

    /// Fits on trusted statistics. Class modes need ``ActivationStatistics/labelStatistics``.
    /// - Throws: ``StatisticsError/missingLabelStatistics(operation:)``,
    ///   ``StatisticsError/insufficientSamples(operation:count:required:)``,
    ///   ``StatisticsError/notPositiveDefinite(order:)``.
    public mutating func fit(statistics: ActivationStatistics) throws {
        var fitted = MahalanobisDetector(mode: mode, estimator: estimator)
        switch mode {
        case .global:
            let cov = try statistics.covariance(estimator: estimator)
            fitted.covariance = cov
            fitted.factor = try cov.cholesky()
            fitted.means = [statistics.mean]
        case .classConditional, .relative:
            guard !statistics.labelStatistics.isEmpty else {
                throw StatisticsError.missingLabelStatistics(operation: "MahalanobisDetector(\(mode)).fit")
            }
            let cov = try statistics.tiedCovariance(estimator: estimator)
            fitted.covariance = cov
            fitted.factor = try cov.cholesky()
            fitted.classLabels = statistics.labels
            fitted.means = fitted.classLabels.map { statistics.labelStatistics[$0]!.mean }
            if mode == .relative {
                fitted.backgroundFactor = try statistics.covariance(estimator: estimator).cholesky()
                fitted.backgroundMean = statistics.mean
            }
        }
        self = fitted
    }

    /// Fits ``Mode/global`` on trusted rows (n × d).
    /// - Throws: ``StatisticsError/missingLabelStatistics(operation:)`` in the class modes
    ///   (use ``fit(_:labels:)``), and as ``fit(statistics:)``.
    public mutating func fit(_ trusted: Tensor) throws {
        try fit(statistics: ActivationStatistics(trusted))
    }

    /// Fits on trusted rows with one class label per row.
    public mutating func fit(_ trusted: Tensor, labels: [Int]) throws {
        let (_, d) = try trusted.matrixShape("MahalanobisDetector.fit")
        var s = try ActivationStatistics(dimension: d)
        try s.update(with: trusted, labels: labels)
        try fit(statistics: s)
    }

    /// Scores (squared distances, higher = more anomalous), one per row of `batch` (m × d).
    public func scores(_ batch: Tensor) throws -> [Double] {
        guard let factor else { throw StatisticsError.notFitted("MahalanobisDetector") }
        let op = "MahalanobisDetector.scores"
        var best = try factor.squaredDistances(batch, from: means[0], operation: op)
        for mu in means.dropFirst() {
            let s = try factor.squaredDistances(batch, from: mu, operation: op)
            for i in best.indices where s[i] < best[i] { best[i] = s[i] }
        }
        if mode == .relative, let bg = backgroundFactor {
            let md0 = try bg.squaredDistances(batch, from: backgroundMean, operation: op)
            for i in best.indices { best[i] -= md0[i] }
        }
        return best
    }
}
