import Foundation

/// A detector a ``Monitor`` runs at each site.
public enum MonitorDetector: String, Sendable, CaseIterable {
    /// Squared Mahalanobis distance to the trusted mean (``MahalanobisDetector``, global mode):
    /// judges each input on its own.
    case mahalanobis
    /// Quantum-entropy score (``QuantumEntropyDetector``, α = 4): judges the scored inputs as
    /// one batch (its covariance shapes every input's score).
    case que
    /// Spectral signature (``SpectralSignatureDetector``): judges the scored inputs as one
    /// batch (their top singular direction).
    case spectral

    /// True for the detectors whose score of an input depends on the other inputs scored with it.
    public var judgesBatch: Bool { self != .mahalanobis }
}

/// How a ``Monitor`` turns the standardized scores of its channels into one score per input.
/// Every choice is fitted on trusted data only.
public enum MonitorCombination: String, Sendable, CaseIterable {
    /// The largest standardized score over the channels: an input departs from the trusted
    /// behaviour when it departs at any one site. The default.
    case max
    /// The mean of the standardized scores (a plain average: diluted when few sites see the
    /// anomaly; kept as a baseline).
    case mean
    /// The squared Mahalanobis distance (Ledoit–Wolf) of the vector of standardized scores to
    /// the trusted inputs' vectors: accounts for sites that move together.
    case mahalanobis
}

/// One detector at one site: the unit a monitor scores and calibrates.
public struct MonitorChannel: Hashable, Sendable, CustomStringConvertible {
    public let site: MonitorSite
    public let detector: MonitorDetector
    public init(site: MonitorSite, detector: MonitorDetector) {
        self.site = site
        self.detector = detector
    }
    /// `"layer.5.output:mean/mahalanobis"`.
    public var description: String { "\(site)/\(detector.rawValue)" }
}

/// How one channel's raw scores are put on a common scale: `z = (log1p(s / m) − μ) / σ`, where
/// `m` is the median and `μ`, `σ` the mean and standard deviation of `log1p(s / m)` over the
/// channel's *out-of-fold* scores of the trusted inputs (each trusted input scored by a
/// detector fitted without its fold, so that the calibration is not fooled by a detector's
/// fit to its own rows).
public struct MonitorCalibration: Sendable, Equatable {
    public let median: Double
    public let mean: Double
    public let standardDeviation: Double

    /// Fits the calibration on out-of-fold trusted scores (≥ 2, finite).
    /// - Throws: ``StatisticsError`` when the scores are too few, not finite, all zero, or
    ///   without spread.
    public init(trustedScores s: [Double], channel: String) throws {
        guard s.count >= 2 else { throw StatisticsError.insufficientSamples(operation: "calibration of \(channel)", count: s.count, required: 2) }
        guard s.allSatisfy(\.isFinite) else { throw StatisticsError.nonFiniteValue(operation: "calibration of \(channel)") }
        let sorted = s.map { Swift.max($0, 0) }.sorted()
        let n = sorted.count
        var m = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
        if !(m > 0) { m = sorted.reduce(0, +) / Double(n) }
        guard m > 0 else { throw StatisticsError.invalidParameter("calibration of \(channel): every trusted score is 0") }
        let u = sorted.map { log1p($0 / m) }
        let mu = u.reduce(0, +) / Double(n)
        let sd = (u.reduce(0) { $0 + ($1 - mu) * ($1 - mu) } / Double(n - 1)).squareRoot()
        guard sd > 0, sd.isFinite else {
            throw StatisticsError.invalidParameter("calibration of \(channel): the trusted scores have no spread")
        }
        self.init(median: m, mean: mu, standardDeviation: sd)
    }

    init(median: Double, mean: Double, standardDeviation: Double) {
        self.median = median
        self.mean = mean
        self.standardDeviation = standardDeviation
    }

    /// The standardized score of a raw score (negative raw scores count as 0).
    public func standardize(_ s: Double) -> Double {
        (log1p(Swift.max(s, 0) / median) - mean) / standardDeviation
    }
}

/// A monitor of a model's internal behaviour, fitted on trusted inputs only: streaming
/// statistics at every site (observation point × reduction), detectors fitted from them, each
/// channel's scores calibrated on out-of-fold trusted scores, and a combination of the channels
/// into one score per input (higher = more anomalous).
///
/// ```swift
/// let sites = try MonitorSite.all(shape, reductions: [.meanPooled])
/// let monitor = try Monitor.fit(sites: sites, shape: shape) { observer in
///     _ = try bert.evaluate(trusted, tokenizer: tokenizer, adapter: adapter, head: head, observer: observer)
/// }
/// let scores = try monitor.score(shape: shape) { observer in … the same on the inputs to judge … }
/// ```
///
/// Fitting is one pass over the trusted inputs (their rows are kept in memory for the
/// calibration, checked against the ``MemoryBudget``), then per site `K + 1` covariance
/// estimates and Cholesky factorizations (O(K·d³)) and the out-of-fold scores (O(n·d²)).
/// Input `i` belongs to fold `i mod K`.
public struct Monitor: Sendable {
    /// The sites, sorted.
    public let sites: [MonitorSite]
    /// The detectors, in ``MonitorDetector`` order.
    public let detectors: [MonitorDetector]
    /// Estimator of every covariance (detectors and the ``MonitorCombination/mahalanobis`` combination).
    public let estimator: CovarianceEstimator
    /// The default combination of ``score(shape:batch:combination:observing:)``.
    public let combination: MonitorCombination
    /// Folds of the out-of-fold calibration (≥ 2).
    public let folds: Int
    /// The model's shape the sites were checked against.
    public let shape: ObservationShape
    /// Trusted statistics per site (mergeable with statistics of more trusted data).
    public let statistics: [MonitorSite: ActivationStatistics]
    /// Calibration of every channel.
    public let calibration: [MonitorChannel: MonitorCalibration]
    /// Statistics of the trusted inputs' vectors of standardized scores, over the per-input
    /// channels and over all channels (for ``MonitorCombination/mahalanobis``).
    let combinationStatistics: (perInput: ActivationStatistics, batch: ActivationStatistics?)
    /// The pseudo-classes (modes) of the trusted rows at one site, for the geometry of an input
    /// (its mode, distance to it, the mode's log-volume and participation ratio); nil when not fitted.
    public let pseudoClasses: (site: MonitorSite, detector: PseudoClassDetector)?

    /// Trusted inputs the monitor was fitted on.
    public var trustedCount: Int { statistics[sites[0]]?.count ?? 0 }

    /// The channels scored per input (`batch` false) or as a batch: site-major, detector order.
    public func channels(batch: Bool) -> [MonitorChannel] {
        sites.flatMap { s in detectors.filter { batch || !$0.judgesBatch }.map { MonitorChannel(site: s, detector: $0) } }
    }

    init(sites: [MonitorSite], detectors: [MonitorDetector], estimator: CovarianceEstimator, combination: MonitorCombination,
         folds: Int, shape: ObservationShape, statistics: [MonitorSite: ActivationStatistics],
         calibration: [MonitorChannel: MonitorCalibration],
         combinationStatistics: (perInput: ActivationStatistics, batch: ActivationStatistics?),
         pseudoClasses: (site: MonitorSite, detector: PseudoClassDetector)?) {
        self.sites = sites
        self.detectors = detectors
        self.estimator = estimator
        self.combination = combination
        self.folds = folds
        self.shape = shape
        self.statistics = statistics
        self.calibration = calibration
        self.combinationStatistics = combinationStatistics
        self.pseudoClasses = pseudoClasses
    }

    /// Fits a monitor on trusted inputs.
    /// - Parameters:
    ///   - sites: where to watch (e.g. ``MonitorSite/all(_:reductions:)``).
    ///   - detectors: which detectors run at every site; must include ``MonitorDetector/mahalanobis``
    ///     (the per-input detector).
    ///   - estimator: covariance estimator (default Ledoit–Wolf: well conditioned when a site's
    ///     width is close to the number of trusted inputs).
    ///   - combination: the default combination.
    ///   - folds: folds of the out-of-fold calibration (2 ... 100, at most the trusted count / 2).
    ///   - shape: the model's observation shape.
    ///   - pseudoClasses: with a mode count k ≥ 1, a ``PseudoClassDetector`` of k modes (seed 0,
    ///     the monitor's estimator) is fitted on the trusted rows of `site` (one of `sites`; by
    ///     default the last layer's output, mean-pooled if the sites have that reduction).
    ///   - pass: runs the model over the trusted inputs once, showing each forward to the given observer.
    ///   - rowCombiner: when the pass saw only this process's shard of the inputs, turns each site's
    ///     recorded rows (inputs × width, row-major) into the rows of all the inputs in their
    ///     order (``SiteRowRecorder/combineRows(_:)``); the fit is then the one-process fit.
    ///   - progress: called with a short description of each step after the pass.
    /// - Throws: ``ObservationError``, ``StatisticsError``, ``MemoryError``, and what `pass` throws.
    public static func fit(sites: [MonitorSite], detectors: [MonitorDetector] = MonitorDetector.allCases,
                           estimator: CovarianceEstimator = .ledoitWolf, combination: MonitorCombination = .max,
                           folds: Int = 5, shape: ObservationShape,
                           pseudoClasses: (modes: Int, site: MonitorSite?)? = nil,
                           observing pass: (ActivationObserver) throws -> Void,
                           combiningRows rowCombiner: (([Float]) throws -> [Float])? = nil,
                           progress: ((String) -> Void)? = nil) throws -> Monitor {
        guard detectors.contains(.mahalanobis) else {
            throw StatisticsError.invalidParameter("a monitor needs the per-input detector mahalanobis")
        }
        let detectors = MonitorDetector.allCases.filter(detectors.contains)
        guard (2...100).contains(folds) else { throw StatisticsError.invalidParameter("folds \(folds) outside 2...100") }
        let recorder = try SiteRowRecorder(sites: sites, shape: shape)
        try pass(recorder)
        if let rowCombiner { try recorder.combineRows(rowCombiner) }
        let n = recorder.inputCount
        guard n >= 2 * folds else {
            throw StatisticsError.insufficientSamples(operation: "Monitor.fit (\(folds) folds)", count: n, required: 2 * folds)
        }
        let sites = recorder.sites
        var statistics: [MonitorSite: ActivationStatistics] = [:]
        var calibration: [MonitorChannel: MonitorCalibration] = [:]
        // Out-of-fold standardized scores of every trusted input, channel-major.
        var zPerInput: [[Double]] = [], zAll: [[Double]] = []
        for (k, site) in sites.enumerated() {
            progress?("site \(k + 1)/\(sites.count): \(site)")
            // One statistics object per fold; the site's statistics are their merge.
            var foldStats: [ActivationStatistics] = []
            var foldRows: [Tensor] = []
            for f in 0..<folds {
                let rows = try recorder.matrix(site) { $0 % folds == f }
                foldRows.append(rows)
                foldStats.append(try ActivationStatistics(rows))
            }
            var total = foldStats[0]
            for s in foldStats.dropFirst() { try total.merge(s) }
            statistics[site] = total
            for detector in detectors {
                let channel = MonitorChannel(site: site, detector: detector)
                var outOfFold = [Double](repeating: 0, count: n)
                for f in 0..<folds {
                    var others: ActivationStatistics? = nil
                    for g in 0..<folds where g != f { others = try others.map { try $0.merged(with: foldStats[g]) } ?? foldStats[g] }
                    let s = try Self.scores(detector, trusted: others!, rows: foldRows[f], estimator: estimator)
                    for (j, i) in stride(from: f, to: n, by: folds).enumerated() { outOfFold[i] = s[j] }
                }
                let c = try MonitorCalibration(trustedScores: outOfFold, channel: channel.description)
                calibration[channel] = c
                let z = outOfFold.map(c.standardize)
                if !detector.judgesBatch { zPerInput.append(z) }
                zAll.append(z)
            }
        }
        let perInput = try Self.vectorStatistics(zPerInput)
        let batch = detectors.contains(where: \.judgesBatch) ? try Self.vectorStatistics(zAll) : nil
        var geometry: (site: MonitorSite, detector: PseudoClassDetector)? = nil
        if let pseudoClasses {
            let last = ObservationPoint.layerOutput(layer: shape.layerCount - 1)
            let lastLayer = sites.first { $0.point == last && $0.reduction == .meanPooled } ?? sites.first { $0.point == last }
            guard let site = pseudoClasses.site ?? lastLayer ?? sites.last, let rows = try recorder.matrix(site) else {
                throw StatisticsError.invalidParameter("the pseudo-class site \(pseudoClasses.site.map { "\($0)" } ?? "") is not one of the monitor's sites")
            }
            progress?("pseudo-classes: \(pseudoClasses.modes) modes at \(site)")
            var detector = try PseudoClassDetector(modeCount: pseudoClasses.modes, seed: 0, estimator: estimator)
            try detector.fit(rows)
            geometry = (site, detector)
        }
        return Monitor(sites: sites, detectors: detectors, estimator: estimator, combination: combination, folds: folds,
                       shape: shape, statistics: statistics, calibration: calibration,
                       combinationStatistics: (perInput, batch), pseudoClasses: geometry)
    }

    /// Statistics of the per-input vectors of channel-major scores.
    static func vectorStatistics(_ channelMajor: [[Double]]) throws -> ActivationStatistics {
        let c = channelMajor.count, n = channelMajor.first?.count ?? 0
        var rows = [Float](repeating: 0, count: n * c)
        for (j, ch) in channelMajor.enumerated() { for i in 0..<n { rows[i * c + j] = Float(ch[i]) } }
        return try ActivationStatistics(Tensor(rows, shape: [n, c]))
    }

    /// Raw scores of `rows` by `detector` fitted on `trusted`.
    static func scores(_ detector: MonitorDetector, trusted: ActivationStatistics, rows: Tensor,
                       estimator: CovarianceEstimator) throws -> [Double] {
        switch detector {
        case .mahalanobis:
            var d = MahalanobisDetector(mode: .global, estimator: estimator)
            try d.fit(statistics: trusted)
            return try d.scores(rows)
        case .que:
            var d = try QuantumEntropyDetector(alpha: 4, estimator: estimator)
            try d.fit(statistics: trusted)
            return try d.scores(rows)
        case .spectral:
            var d = SpectralSignatureDetector()
            try d.fit(dimension: trusted.dimension)
            return try d.scores(rows)
        }
    }

    /// Scores inputs.
    /// - Parameters:
    ///   - shape: the model's observation shape (must equal the fitted one).
    ///   - batch: false (default): per-input channels only (Mahalanobis at each site; an input's
    ///     score does not depend on the others); true: the batch detectors too, judging all the
    ///     inputs of the pass together (at least 2).
    ///   - combination: overrides ``combination``.
    ///   - pass: runs the model over the inputs to score.
    /// - Throws: ``StatisticsError``, ``ObservationError``, ``MemoryError``, what `pass` throws.
    public func score(shape: ObservationShape, batch: Bool = false, combination: MonitorCombination? = nil,
                      observing pass: (ActivationObserver) throws -> Void) throws -> MonitorScores {
        guard shape == self.shape else {
            throw ObservationError.invalidPoint("the monitor was fitted on a model of \(self.shape.layerCount) layers × \(self.shape.headCount) heads "
                                                + "(width \(self.shape.hiddenSize)), this one has \(shape.layerCount) × \(shape.headCount) (width \(shape.hiddenSize))")
        }
        let recorder = try SiteRowRecorder(sites: sites, shape: shape)
        try pass(recorder)
        let n = recorder.inputCount
        guard n >= (batch ? 2 : 1) else {
            throw StatisticsError.insufficientSamples(operation: "Monitor.score", count: n, required: batch ? 2 : 1)
        }
        let channels = self.channels(batch: batch)
        var raw: [[Double]] = []
        for ch in channels {
            guard let rows = try recorder.matrix(ch.site), let trusted = statistics[ch.site] else { continue }
            raw.append(try Self.scores(ch.detector, trusted: trusted, rows: rows, estimator: estimator))
        }
        return try combine(channels: channels, raw: raw, batch: batch, combination: combination ?? self.combination)
    }

    /// Standardizes raw channel scores (channel-major, ``channels(batch:)`` order) and combines them.
    public func combine(channels: [MonitorChannel], raw: [[Double]], batch: Bool,
                        combination: MonitorCombination) throws -> MonitorScores {
        guard raw.count == channels.count else {
            throw StatisticsError.dimensionMismatch(operation: "Monitor.combine (channels)", expected: channels.count, actual: raw.count)
        }
        let n = raw.first?.count ?? 0
        var z: [[Double]] = []
        for (ch, s) in zip(channels, raw) {
            guard let c = calibration[ch] else { throw StatisticsError.invalidParameter("no calibration for channel \(ch)") }
            guard s.count == n else { throw StatisticsError.labelCountMismatch(rows: n, labels: s.count) }
            guard s.allSatisfy({ !$0.isNaN }) else { throw StatisticsError.nonFiniteValue(operation: "Monitor scores of \(ch)") }
            z.append(s.map(c.standardize))
        }
        var combined = [Double](repeating: 0, count: n)
        switch combination {
        case .max:
            for i in 0..<n { combined[i] = z.reduce(-Double.infinity) { Swift.max($0, $1[i]) } }
        case .mean:
            for i in 0..<n { combined[i] = z.reduce(0) { $0 + $1[i] } / Double(z.count) }
        case .mahalanobis:
            guard let stats = batch ? combinationStatistics.batch : combinationStatistics.perInput else {
                throw StatisticsError.invalidParameter("the monitor has no batch detectors")
            }
            var d = MahalanobisDetector(mode: .global, estimator: estimator)
            try d.fit(statistics: stats)
            var rows = [Float](repeating: 0, count: n * z.count)
            for (j, ch) in z.enumerated() { for i in 0..<n { rows[i * z.count + j] = Float(ch[i]) } }
            combined = try d.scores(Tensor(rows, shape: [n, z.count]))
        }
        return MonitorScores(channels: channels, raw: raw, standardized: z, combined: combined, combination: combination)
    }
}

/// What ``Monitor/score(shape:batch:combination:observing:)`` gives: per channel the raw and
/// the standardized scores of every input, and the combined score (higher = more anomalous).
public struct MonitorScores: Sendable {
    public let channels: [MonitorChannel]
    /// Raw scores, channel-major: `raw[c][i]` is channel c's score of input i.
    public let raw: [[Double]]
    /// Standardized scores (``MonitorCalibration``), channel-major.
    public let standardized: [[Double]]
    /// One score per input.
    public let combined: [Double]
    /// How ``combined`` was made.
    public let combination: MonitorCombination

    /// Per channel: the mean standardized score of the `flagged` inputs minus that of the
    /// others (how much more anomalous the channel finds the flagged inputs, in units of its
    /// trusted spread). O(channels · inputs).
    /// - Throws: ``StatisticsError/labelCountMismatch(rows:labels:)``, ``StatisticsError/singleClass(operation:)``.
    public func separation(flagged: [Bool]) throws -> [Double] {
        guard flagged.count == combined.count else { throw StatisticsError.labelCountMismatch(rows: combined.count, labels: flagged.count) }
        let k = flagged.filter { $0 }.count
        guard k > 0, k < flagged.count else { throw StatisticsError.singleClass(operation: "MonitorScores.separation") }
        return standardized.map { z in
            var a = 0.0, b = 0.0
            for (v, f) in zip(z, flagged) { if f { a += v } else { b += v } }
            return a / Double(k) - b / Double(flagged.count - k)
        }
    }

    /// Detection metrics of the combined score and of every channel against `labels`
    /// (true = anomalous).
    /// - Throws: ``StatisticsError`` for a label count that differs or a single class.
    public func evaluation(labels: [Bool]) throws -> MonitorEvaluation {
        MonitorEvaluation(combined: try DetectionSummary(scores: combined, labels: labels),
                          channels: try zip(channels, raw).map { ($0, try DetectionSummary(scores: $1, labels: labels)) })
    }
}

/// Metrics of a monitor's scores on labelled inputs.
public struct MonitorEvaluation: Sendable {
    /// Of the combined score.
    public let combined: DetectionSummary
    /// Of every channel, in the scores' order.
    public let channels: [(channel: MonitorChannel, summary: DetectionSummary)]
}

/// The four numbers a detection is usually judged by.
public struct DetectionSummary: Sendable, Equatable {
    public let auroc: Double
    public let averagePrecision: Double
    /// True-positive rate at a false-positive rate of at most 1%.
    public let truePositiveRateAt1PercentFPR: Double
    /// True-positive rate at a false-positive rate of at most 5%.
    public let truePositiveRateAt5PercentFPR: Double

    /// - Throws: as ``DetectionMetrics``.
    public init(scores: [Double], labels: [Bool]) throws {
        auroc = try DetectionMetrics.auroc(scores: scores, labels: labels)
        averagePrecision = try DetectionMetrics.averagePrecision(scores: scores, labels: labels)
        truePositiveRateAt1PercentFPR = try DetectionMetrics.truePositiveRate(atFalsePositiveRate: 0.01, scores: scores, labels: labels)
        truePositiveRateAt5PercentFPR = try DetectionMetrics.truePositiveRate(atFalsePositiveRate: 0.05, scores: scores, labels: labels)
    }

    /// `{"auroc", "average_precision", "tpr_at_1pct_fpr", "tpr_at_5pct_fpr"}`.
    public var dictionary: [String: Double] {
        ["auroc": auroc, "average_precision": averagePrecision,
         "tpr_at_1pct_fpr": truePositiveRateAt1PercentFPR, "tpr_at_5pct_fpr": truePositiveRateAt5PercentFPR]
    }
}
