import Foundation

/// A detector whose fitted state can be written to a file and read back bitwise
/// (safetensors with F64/I64 tensors and `__metadata__`; see `StatisticsFile.swift`).
public protocol PersistentDetector: AnomalyDetector {
    /// `__metadata__.format` of this detector's files (`lorta.detector.<kind>`).
    static var fileFormat: String { get }
    /// Writes the fitted state to `url` atomically (temporary file + rename).
    /// - Throws: ``StatisticsError/notFitted(_:)`` before fitting; ``StatisticsFileError``.
    func write(to url: URL) throws
    /// Reads a detector written by ``write(to:)``, validating every field.
    /// - Throws: ``StatisticsFileError`` naming the file and the first problem found.
    init(contentsOf url: URL) throws
}

/// Loading a detector file of any kind.
public enum DetectorFile {
    /// The `format` names of the detector files, in the order of ``load(_:)``'s dispatch.
    public static let formats = [MahalanobisDetector.fileFormat, QuantumEntropyDetector.fileFormat,
                                 SpectralSignatureDetector.fileFormat, PseudoClassDetector.fileFormat]

    /// Reads the detector in `url`, whichever kind its `format` names.
    /// - Throws: ``StatisticsFileError`` (``StatisticsFileError/Problem/wrongFormat(expected:found:)``
    ///   when the format is not a detector's).
    public static func load(_ url: URL) throws -> any PersistentDetector {
        switch try StatisticsArchiveReader.format(of: url) {
        case MahalanobisDetector.fileFormat: return try MahalanobisDetector(contentsOf: url)
        case QuantumEntropyDetector.fileFormat: return try QuantumEntropyDetector(contentsOf: url)
        case SpectralSignatureDetector.fileFormat: return try SpectralSignatureDetector(contentsOf: url)
        case PseudoClassDetector.fileFormat: return try PseudoClassDetector(contentsOf: url)
        case let format:
            throw StatisticsFileError(path: url.path, problem: .wrongFormat(expected: formats.joined(separator: " | "), found: format))
        }
    }
}

private func matrixRows(_ flat: [Double], rows: Int, columns: Int) -> [[Double]] {
    (0..<rows).map { Array(flat[($0 * columns)..<(($0 + 1) * columns)]) }
}

// MARK: - Mahalanobis

extension MahalanobisDetector: PersistentDetector {
    public static let fileFormat = "lorta.detector.mahalanobis"

    /// Layout: metadata `mode` (global / classConditional / relative), `estimator`,
    /// `dimension`, `labels` (JSON array, `[]` in global mode), `covariance_estimator`,
    /// `covariance_samples`; tensors `means` [K, d] (K = 1 in global mode), `covariance` [d, d],
    /// `covariance_shrinkage` [], `factor` [d, d]; relative mode adds `background_mean` [d] and
    /// `background_factor` [d, d].
    public func write(to url: URL) throws {
        guard let factor, let covariance else { throw StatisticsError.notFitted("MahalanobisDetector") }
        let d = factor.dimension
        var a = StatisticsArchiveWriter(format: Self.fileFormat, metadata: [
            "mode": mode.rawValue, "estimator": estimator.storedName, "dimension": String(d),
            "labels": "[" + classLabels.map(String.init).joined(separator: ",") + "]"])
        try a.add("means", means.flatMap { $0 }, shape: [means.count, d])
        try a.add(covariance: covariance, as: "covariance")
        try a.add("factor", factor.lower, shape: [d, d])
        if mode == .relative, let bg = backgroundFactor {
            try a.add("background_mean", backgroundMean, shape: [d])
            try a.add("background_factor", bg.lower, shape: [d, d])
        }
        try a.write(to: url)
    }

    public init(contentsOf url: URL) throws {
        var r = try StatisticsArchiveReader(contentsOf: url, format: Self.fileFormat)
        let modeName = try r.string("mode")
        guard let mode = Mode(rawValue: modeName) else {
            throw r.fail(.invalidMetadata(key: "mode", value: modeName, reason: "expected global, classConditional or relative"))
        }
        let d = try r.int("dimension", in: 1...Int(Int32.max))
        var det = MahalanobisDetector(mode: mode, estimator: try r.estimator())
        let labels = try r.intList("labels")
        for i in labels.indices.dropFirst() where labels[i] <= labels[i - 1] {
            throw r.fail(.invalidMetadata(key: "labels", value: try r.string("labels"), reason: "labels must be distinct and ascending"))
        }
        if mode == .global, !labels.isEmpty { throw r.fail(.inconsistent("global mode with class labels")) }
        if mode != .global, labels.isEmpty { throw r.fail(.inconsistent("\(mode) mode without class labels")) }
        let k = mode == .global ? 1 : labels.count
        det.means = matrixRows(try r.doubles("means", shape: [k, d]), rows: k, columns: d)
        det.classLabels = labels
        det.covariance = try r.covariance("covariance", dimension: d)
        det.factor = try r.choleskyFactor("factor", dimension: d)
        if mode == .relative {
            det.backgroundMean = try r.doubles("background_mean", shape: [d])
            det.backgroundFactor = try r.choleskyFactor("background_factor", dimension: d)
        }
        try r.finish()
        self = det
    }
}

// MARK: - QUE

extension QuantumEntropyDetector: PersistentDetector {
    public static let fileFormat = "lorta.detector.que"

    /// Layout: metadata `alpha`, `estimator`, `dimension`; tensors `mean` [d], `factor` [d, d]
    /// (the trusted mean and the Cholesky factor of the trusted covariance).
    public func write(to url: URL) throws {
        guard let L = trustedFactor else { throw StatisticsError.notFitted("QuantumEntropyDetector") }
        let d = L.dimension
        var a = StatisticsArchiveWriter(format: Self.fileFormat, metadata: [
            "alpha": "\(alpha)", "estimator": estimator.storedName, "dimension": String(d)])
        try a.add("mean", trustedMean, shape: [d])
        try a.add("factor", L.lower, shape: [d, d])
        try a.write(to: url)
    }

    public init(contentsOf url: URL) throws {
        var r = try StatisticsArchiveReader(contentsOf: url, format: Self.fileFormat)
        let alpha = try r.double("alpha")
        guard alpha > 0 else { throw r.fail(.invalidMetadata(key: "alpha", value: try r.string("alpha"), reason: "must be > 0")) }
        var det = try QuantumEntropyDetector(alpha: alpha, estimator: try r.estimator())
        let d = try r.int("dimension", in: 1...Int(Int32.max))
        det.trustedMean = try r.doubles("mean", shape: [d])
        det.trustedFactor = try r.choleskyFactor("factor", dimension: d)
        try r.finish()
        self = det
    }
}

// MARK: - Spectral signature

extension SpectralSignatureDetector: PersistentDetector {
    public static let fileFormat = "lorta.detector.spectral"

    /// Layout: metadata `dimension` only (the method has no trusted state; no tensors).
    public func write(to url: URL) throws {
        guard let dimension else { throw StatisticsError.notFitted("SpectralSignatureDetector") }
        try StatisticsArchiveWriter(format: Self.fileFormat, metadata: ["dimension": String(dimension)]).write(to: url)
    }

    public init(contentsOf url: URL) throws {
        let r = try StatisticsArchiveReader(contentsOf: url, format: Self.fileFormat)
        var det = SpectralSignatureDetector()
        det.dimension = try r.int("dimension", in: 1...Int(Int32.max))
        try r.finish()
        self = det
    }
}

// MARK: - Pseudo-class

extension PseudoClassDetector: PersistentDetector {
    public static let fileFormat = "lorta.detector.pseudo-class"

    /// Layout (k modes, n trusted rows, d features): metadata `mode_count`, `seed`,
    /// `estimator`, `max_iterations`, `dimension`, `rows`, `kmeans_iterations`; tensors
    /// `mode_sizes` (I64) [k], `mode_means` [k, d], `mode_log_volumes` [k],
    /// `mode_participation_ratios` [k], `mode_intrinsic_dimensions` [k] with
    /// `mode_has_intrinsic_dimension` (I64, 0/1) [k], `mode_covariances` [k, d, d],
    /// `mode_shrinkages` [k], `mode_samples` (I64) [k], `mode_factors` [k, d, d],
    /// `kmeans_centroids` [k, d], `kmeans_assignments` (I64) [n], `kmeans_inertia` [].
    public func write(to url: URL) throws {
        guard let km = clustering, !modes.isEmpty else { throw StatisticsError.notFitted("PseudoClassDetector") }
        let d = km.dimension, k = modes.count
        var a = StatisticsArchiveWriter(format: Self.fileFormat, metadata: [
            "mode_count": String(modeCount), "seed": String(seed), "estimator": estimator.storedName,
            "max_iterations": String(maxIterations), "dimension": String(d), "rows": String(km.assignments.count),
            "kmeans_iterations": String(km.iterations)])
        try a.add("mode_sizes", ints: modes.map(\.size), shape: [k])
        try a.add("mode_means", modes.flatMap(\.mean), shape: [k, d])
        try a.add("mode_log_volumes", modes.map(\.logVolume), shape: [k])
        try a.add("mode_participation_ratios", modes.map(\.participationRatio), shape: [k])
        try a.add("mode_intrinsic_dimensions", modes.map { $0.intrinsicDimension ?? 0 }, shape: [k])
        try a.add("mode_has_intrinsic_dimension", ints: modes.map { $0.intrinsicDimension == nil ? 0 : 1 }, shape: [k])
        try a.add("mode_covariances", modes.flatMap(\.covariance.values), shape: [k, d, d])
        try a.add("mode_shrinkages", modes.map(\.covariance.shrinkage), shape: [k])
        try a.add("mode_samples", ints: modes.map(\.covariance.sampleCount), shape: [k])
        try a.add("mode_factors", modes.flatMap(\.factor.lower), shape: [k, d, d])
        try a.add("kmeans_centroids", km.centroids, shape: [k, d])
        try a.add("kmeans_assignments", ints: km.assignments, shape: [km.assignments.count])
        try a.add("kmeans_inertia", [km.inertia], shape: [])
        try a.write(to: url)
    }

    public init(contentsOf url: URL) throws {
        var r = try StatisticsArchiveReader(contentsOf: url, format: Self.fileFormat)
        let k = try r.int("mode_count", in: 1...Int(Int32.max))
        let seedText = try r.string("seed")
        guard let seed = UInt64(seedText) else { throw r.fail(.invalidMetadata(key: "seed", value: seedText, reason: "not an unsigned 64-bit integer")) }
        var det = try PseudoClassDetector(modeCount: k, seed: seed, estimator: try r.estimator(),
                                          maxIterations: try r.int("max_iterations", in: 1...Int.max))
        let d = try r.int("dimension", in: 1...Int(Int32.max))
        let n = try r.int("rows", in: k...Int.max)
        let sizes = try r.ints("mode_sizes", shape: [k])
        let means = try r.doubles("mode_means", shape: [k, d])
        let logVolumes = try r.doubles("mode_log_volumes", shape: [k])
        let ratios = try r.doubles("mode_participation_ratios", shape: [k])
        let intrinsic = try r.doubles("mode_intrinsic_dimensions", shape: [k])
        let hasIntrinsic = try r.ints("mode_has_intrinsic_dimension", shape: [k])
        let covariances = try r.doubles("mode_covariances", shape: [k, d, d])
        let shrinkages = try r.doubles("mode_shrinkages", shape: [k])
        let samples = try r.ints("mode_samples", shape: [k])
        let factors = try r.doubles("mode_factors", shape: [k, d, d])
        let centroids = try r.doubles("kmeans_centroids", shape: [k, d])
        let assignments = try r.ints("kmeans_assignments", shape: [n])
        let inertia = try r.scalar("kmeans_inertia")
        let iterations = try r.int("kmeans_iterations", in: 1...Int.max)
        var counted = [Int](repeating: 0, count: k)
        for (i, c) in assignments.enumerated() {
            guard (0..<k).contains(c) else { throw r.fail(.inconsistent("kmeans_assignments[\(i)] = \(c) is not a mode index")) }
            counted[c] += 1
        }
        var modes: [Mode] = []
        for c in 0..<k {
            guard sizes[c] == counted[c] else {
                throw r.fail(.inconsistent("mode \(c): size \(sizes[c]), but \(counted[c]) rows are assigned to it"))
            }
            guard hasIntrinsic[c] == 0 || hasIntrinsic[c] == 1 else {
                throw r.fail(.inconsistent("mode_has_intrinsic_dimension[\(c)] must be 0 or 1"))
            }
            guard samples[c] >= 0 else { throw r.fail(.inconsistent("mode_samples[\(c)] is negative")) }
            let cov: CovarianceMatrix
            do {
                cov = try CovarianceMatrix(dimension: d, values: Array(covariances[(c * d * d)..<((c + 1) * d * d)]),
                                           estimator: det.estimator, shrinkage: shrinkages[c], sampleCount: samples[c])
            } catch let e as StatisticsError {
                throw r.fail(.inconsistent("mode \(c) covariance: \(e)"))
            }
            let lower = Array(factors[(c * d * d)..<((c + 1) * d * d)])
            for i in 0..<d {
                guard lower[i * d + i] > 0, ((i + 1)..<max(i + 1, d)).allSatisfy({ lower[i * d + $0] == 0 }) else {
                    throw r.fail(.inconsistent("mode \(c): mode_factors is not a Cholesky factor (row \(i))"))
                }
            }
            modes.append(Mode(size: sizes[c], mean: Array(means[(c * d)..<((c + 1) * d)]), logVolume: logVolumes[c],
                              participationRatio: ratios[c], intrinsicDimension: hasIntrinsic[c] == 1 ? intrinsic[c] : nil,
                              covariance: cov, factor: CholeskyFactor(dimension: d, lower: lower)))
        }
        try r.finish()
        det.modes = modes
        det.clustering = KMeans(restoring: k, dimension: d, centroids: centroids, assignments: assignments,
                                inertia: inertia, iterations: iterations)
        self = det
    }
}
