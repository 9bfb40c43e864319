/// Pseudo-class detector: the modes (pseudo-classes) of a layer's trusted activations, found
/// by seeded k-means++ / Lloyd (``KMeans``), each with its own Gaussian (mean and covariance
/// of the rows assigned to it, by ``estimator``). A row's score is its squared Mahalanobis
/// distance to the nearest mode in that mode's own metric, `min_c (x − μ_c)ᵀ Σ_c⁻¹ (x − μ_c)`.
///
/// Each mode reports its geometry (``Mode``). Fitting costs O(iterations·n·k·d + n·d² + k·d³)
/// (+ TwoNN, O(min(n_c, 1000)²·d) per mode); scoring m rows O(k·m·d²/2). Deterministic for a
/// fixed seed, across runs and thread counts.
public struct PseudoClassDetector: AnomalyDetector, Equatable {
    /// The geometry of one mode.
    public struct Mode: Sendable, Equatable {
        /// Trusted rows assigned to the mode.
        public let size: Int
        /// The mode's mean (d).
        public let mean: [Double]
        /// `½ log det Σ_c`: the log-volume of the mode's one-sigma ellipsoid, up to the
        /// constant log-volume of the unit ball.
        public let logVolume: Double
        /// Participation ratio `tr(Σ_c)² / ‖Σ_c‖_F²` (effective number of dimensions).
        public let participationRatio: Double
        /// TwoNN intrinsic dimension of the mode's rows (nil with fewer than 3 distinct rows).
        public let intrinsicDimension: Double?
        /// The covariance estimate of the mode.
        public let covariance: CovarianceMatrix
        let factor: CholeskyFactor
    }

    /// Number of modes.
    public let modeCount: Int
    /// Seed of the k-means++ seeding.
    public let seed: UInt64
    /// Covariance estimator of each mode (Ledoit–Wolf by default: modes can be small).
    public let estimator: CovarianceEstimator
    /// Lloyd iteration cap.
    public let maxIterations: Int
    /// The fitted modes (empty before ``fit(_:)``).
    public internal(set) var modes: [Mode] = []
    /// The clustering behind the modes.
    public internal(set) var clustering: KMeans?

    /// - Throws: ``StatisticsError/invalidParameter(_:)`` unless `modeCount >= 1` and
    ///   `maxIterations >= 1`.
    public init(modeCount: Int, seed: UInt64 = 0, estimator: CovarianceEstimator = .ledoitWolf, maxIterations: Int = 100) throws {
        guard modeCount >= 1 else { throw StatisticsError.invalidParameter("modeCount \(modeCount) must be >= 1") }
        guard maxIterations >= 1 else { throw StatisticsError.invalidParameter("maxIterations must be >= 1") }
        self.modeCount = modeCount
        self.seed = seed
        self.estimator = estimator
        self.maxIterations = maxIterations
    }

    /// Finds the modes of the trusted rows (n × d) and fits one Gaussian per mode.
    /// - Throws: ``StatisticsError/insufficientSamples(operation:count:required:)`` when a
    ///   mode gets fewer than 2 rows (use fewer modes), ``StatisticsError/notPositiveDefinite(order:)``
    ///   for a singular mode covariance (use a shrinkage estimator), and k-means errors.
    public mutating func fit(_ trusted: Tensor) throws {
        let km = try KMeans(trusted, k: modeCount, seed: seed, maxIterations: maxIterations)
        let d = km.dimension
        var stats = try ActivationStatistics(dimension: d)
        try stats.update(with: trusted, labels: km.assignments)
        var modes: [Mode] = []
        for c in 0..<modeCount {
            guard let s = stats.labelStatistics[c], s.count >= 2 else {
                throw StatisticsError.insufficientSamples(operation: "PseudoClassDetector mode \(c)",
                                                          count: stats.labelStatistics[c]?.count ?? 0, required: 2)
            }
            let cov = try s.covariance(estimator: estimator)
            let factor = try cov.cholesky()
            let idx = km.assignments.indices.filter { km.assignments[$0] == c }
            let rows = try trusted.withUnsafeBufferPointer { x in
                try Tensor(shape: [idx.count, d]) { o in
                    for (r, i) in idx.enumerated() { for j in 0..<d { o[r * d + j] = x[i * d + j] } }
                }
            }
            let id = try? IntrinsicDimension.twoNN(rows)
            modes.append(Mode(size: s.count, mean: s.mean, logVolume: 0.5 * factor.logDeterminant,
                              participationRatio: cov.participationRatio, intrinsicDimension: id,
                              covariance: cov, factor: factor))
        }
        self.modes = modes
        self.clustering = km
    }

    /// Squared Mahalanobis distance of each row of `batch` to its nearest mode (in the mode's metric).
    public func scores(_ batch: Tensor) throws -> [Double] {
        guard !modes.isEmpty else { throw StatisticsError.notFitted("PseudoClassDetector") }
        return try nearestModes(batch).map(\.score)
    }

    /// For each row of `batch`: the index of the nearest mode (in the modes' metrics) and the
    /// squared distance to it.
    public func nearestModes(_ batch: Tensor) throws -> [(mode: Int, score: Double)] {
        guard !modes.isEmpty else { throw StatisticsError.notFitted("PseudoClassDetector") }
        var best = try modes[0].factor.squaredDistances(batch, from: modes[0].mean, operation: "PseudoClassDetector.scores")
            .map { (mode: 0, score: $0) }
        for c in 1..<modes.count {
            let s = try modes[c].factor.squaredDistances(batch, from: modes[c].mean, operation: "PseudoClassDetector.scores")
            for i in best.indices where s[i] < best[i].score { best[i] = (c, s[i]) }
        }
        return best
    }
}
