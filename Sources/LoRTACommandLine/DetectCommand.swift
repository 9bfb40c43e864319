import ArgumentParser
import Foundation
import LoRTA

/// `lorta detect`: score rows against trusted activations.
struct Detect: ParsableCommand {
    enum Method: String, ExpressibleByArgument, CaseIterable {
        case mahalanobis
        case classMahalanobis = "class-mahalanobis"
        case relativeMahalanobis = "relative-mahalanobis"
        case spectral, que
        case pseudoClass = "pseudo-class"
    }

    enum EstimatorName: String, ExpressibleByArgument, CaseIterable {
        case empirical
        case ledoitWolf = "ledoit-wolf"
        case oas, ridge
    }

    static let configuration = CommandConfiguration(
        abstract: "Anomaly scores of rows against trusted activations (higher = more anomalous).",
        discussion: """
        --trusted is either rows (.npy / .csv / .txt, n × d) or a statistics file written by \
        `lorta stats fit` (.safetensors). What each method uses:
          mahalanobis           squared Mahalanobis distance to the trusted mean/covariance; \
        statistics suffice.
          class-mahalanobis     min over classes, tied covariance (Lee et al. 2018); needs per-label \
        statistics: a statistics file fitted with --labels, or rows with --trusted-labels.
          relative-mahalanobis  class score minus the global one (Ren et al. 2021); same needs.
          spectral              squared projection on the top singular direction of the --data rows \
        themselves (Tran et al. 2018); the trusted input only fixes the dimension.
          que                   SPECTRE quantum-entropy score: whitening by the trusted mean and \
        covariance (statistics suffice), Σ̃ from the --data rows; --alpha (default 4).
          pseudo-class          k-means modes of the trusted rows, one Gaussian each (needs rows, \
        not statistics); --modes (default 8), --seed.
        Covariances use --estimator (default empirical; pseudo-class: ledoit-wolf); `ridge` adds \
        ε·tr(Σ)/d·I (--ridge-epsilon, default 1e-3). A singular covariance is an error: choose \
        ridge, ledoit-wolf or oas.
        Scores go to --scores-out (.npy float64, or .csv/.txt one per line); without it they are \
        printed to stdout, one per line. With --labels (1 = anomalous, 0 = normal; both must \
        occur) the AUROC, average precision and TPR at 5% FPR are printed to stdout. Progress \
        goes to stderr. Everything is read, checked and computed before --scores-out is written: \
        a failed run writes nothing.
        Memory: the covariance methods need d × d float64 matrices (8·d² bytes each; \
        class-mahalanobis one per class); spectral needs at most min(m, d)² of the m scored rows. \
        A request beyond the memory budget (--max-memory) is refused before anything is allocated.
        """)

    @Option(help: "Detection method: \(Method.allCases.map(\.rawValue).joined(separator: ", ")).")
    var method: Method

    @Option(help: "Covariance estimator: empirical, ledoit-wolf, oas, ridge.")
    var estimator: EstimatorName?

    @Option(help: "Relative ridge ε for --estimator ridge.")
    var ridgeEpsilon: Double = 1e-3

    @Option(help: "Trusted rows (.npy/.csv/.txt) or statistics (.safetensors).")
    var trusted: String

    @Option(help: "Class label per trusted row (for class-mahalanobis / relative-mahalanobis on rows).")
    var trustedLabels: String?

    @Option(help: "Rows to score (.npy/.csv/.txt, m × d).")
    var data: String

    @Option(help: "Ground truth per scored row: 1 = anomalous, 0 = normal (.npy or one-column CSV).")
    var labels: String?

    @Option(help: "Write the scores here (.npy, .csv or .txt).")
    var scoresOut: String?

    @Option(help: "QUE exponent α.")
    var alpha: Double = 4

    @Option(help: "Pseudo-class: number of modes.")
    var modes: Int = 8

    @Option(help: "Pseudo-class: k-means++ seed.")
    var seed: UInt64 = 0

    @Flag(help: "Print a JSON object (summary, metrics; the scores too when --scores-out is not given).")
    var json = false

    @OptionGroup var memory: MemoryOptions

    func validate() throws {
        try OptionRange.check(ridgeEpsilon, "ridge-epsilon", 0...1e12)
        try OptionRange.check(alpha, "alpha", 0...1e6, exclusiveLower: true)
        try OptionRange.check(modes, "modes", 1...1_000_000)
        if estimator != nil, method == .spectral { throw ValidationError("--estimator has no effect with --method spectral") }
    }

    var covarianceEstimator: CovarianceEstimator {
        switch estimator ?? (method == .pseudoClass ? .ledoitWolf : .empirical) {
        case .empirical: return .empirical
        case .ledoitWolf: return .ledoitWolf
        case .oas: return .oracleApproximatingShrinkage
        case .ridge: return .ridge(epsilon: ridgeEpsilon)
        }
    }

    func run() throws {
        try reportingErrors {
            try memory.apply()
            try Runtime.initialize()
            if let scoresOut, try MatrixFiles.kind(of: scoresOut) == .safetensors {
                throw FileProblem(path: scoresOut, message: "scores are written as .npy, .csv or .txt")
            }
            let trustedIsStatistics = try MatrixFiles.kind(of: trusted) == .safetensors
            if trustedIsStatistics, trustedLabels != nil {
                throw ValidationError("--trusted-labels applies to trusted rows; a statistics file keeps its own labels")
            }
            let side = try trustedSide(isStatistics: trustedIsStatistics)
            printError("trusted: \(side.count) rows, dimension \(side.dimension)"
                       + (side.classCount == 0 ? "" : ", \(side.classCount) classes") + " (\(trusted))")
            let z = try MatrixFiles.readMatrix(data)
            guard z.shape[1] == side.dimension else {
                throw FileProblem(path: data, message: "rows have \(z.shape[1]) features, the trusted data \(side.dimension)")
            }
            let truth = try labels.map { try MatrixFiles.readAnomalyLabels($0, count: z.shape[0], of: data) }

            // Everything is computed before anything is written: a failure leaves no output.
            let scores = try score(z, side: side)
            var metrics: [String: Double] = [:]
            if let truth {
                metrics["auroc"] = try DetectionMetrics.auroc(scores: scores, labels: truth)
                metrics["average_precision"] = try DetectionMetrics.averagePrecision(scores: scores, labels: truth)
                metrics["tpr_at_5_fpr"] = try DetectionMetrics.truePositiveRate(atFalsePositiveRate: 0.05, scores: scores, labels: truth)
            }
            printError("scored \(scores.count) rows of \(data) with \(method.rawValue)"
                       + (method == .spectral ? "" : " (\(covarianceEstimator))"))
            if let scoresOut {
                try MatrixFiles.writeScores(scores, to: scoresOut)
                printError("wrote \(scoresOut)")
            }
            if json {
                var object: [String: Any] = [
                    "method": method.rawValue, "trusted": trusted, "data": data, "rows": scores.count,
                    "trusted_rows": side.count, "dimension": side.dimension,
                ]
                if method != .spectral { object["estimator"] = covarianceEstimator.storedName }
                if let scoresOut { object["scores_out"] = scoresOut } else { object["scores"] = scores }
                for (k, v) in metrics { object[k] = v }
                print(jsonText(object))
            } else {
                if scoresOut == nil { for s in scores { print(s) } }
                for key in ["auroc", "average_precision", "tpr_at_5_fpr"] {
                    if let v = metrics[key] { print("\(key) \(v)") }
                }
            }
        }
    }

    /// What the trusted input gives: statistics (read, or accumulated from the rows when the
    /// method uses them), the rows (when read from a matrix file), their count, dimension and
    /// number of classes.
    struct TrustedSide {
        var statistics: ActivationStatistics?
        var rows: Tensor?
        var count: Int
        var dimension: Int
        var classCount: Int
    }

    /// Reads the trusted input and builds only what `--method` needs: the spectral signature
    /// uses the dimension alone and pseudo-class the rows, so neither accumulates d × d
    /// statistics of the trusted rows.
    private func trustedSide(isStatistics: Bool) throws -> TrustedSide {
        if isStatistics {
            let s = try MatrixFiles.naming(trusted) { try ActivationStatistics(contentsOf: URL(fileURLWithPath: trusted)) }
            return TrustedSide(statistics: s, rows: nil, count: s.count, dimension: s.dimension, classCount: s.labels.count)
        }
        let x = try MatrixFiles.readMatrix(trusted)
        let y: [Int]? = try trustedLabels.map { path in
            let y = try MatrixFiles.readLabels(path)
            guard y.count == x.shape[0] else {
                throw FileProblem(path: path, message: "\(y.count) labels for \(x.shape[0]) rows of \(trusted)")
            }
            return y
        }
        var side = TrustedSide(statistics: nil, rows: x, count: x.shape[0], dimension: x.shape[1], classCount: Set(y ?? []).count)
        if method != .spectral && method != .pseudoClass {
            var s = try ActivationStatistics(dimension: x.shape[1])
            if let y { try s.update(with: x, labels: y) } else { try s.update(with: x) }
            side.statistics = s
        }
        return side
    }

    private func needRows(_ rows: Tensor?) throws -> Tensor {
        guard let rows else {
            throw FileProblem(path: trusted, message: "--method \(method.rawValue) needs the trusted rows (k-means), not statistics; pass a .npy or CSV file")
        }
        return rows
    }

    private func score(_ z: Tensor, side: TrustedSide) throws -> [Double] {
        let rows = side.rows
        var stats: ActivationStatistics { side.statistics! }  // built for every method that reads it
        switch method {
        case .mahalanobis:
            var d = MahalanobisDetector(mode: .global, estimator: covarianceEstimator)
            try d.fit(statistics: stats)
            return try d.scores(z)
        case .classMahalanobis, .relativeMahalanobis:
            guard !stats.labelStatistics.isEmpty else {
                throw FileProblem(path: trusted, message: "--method \(method.rawValue) needs class labels for the trusted rows: "
                                  + (rows == nil ? "fit the statistics with `lorta stats fit --labels`" : "pass --trusted-labels"))
            }
            var d = MahalanobisDetector(mode: method == .classMahalanobis ? .classConditional : .relative, estimator: covarianceEstimator)
            try d.fit(statistics: stats)
            return try d.scores(z)
        case .spectral:
            var d = SpectralSignatureDetector()
            try d.fit(dimension: side.dimension)
            return try d.scores(z)
        case .que:
            var d = try QuantumEntropyDetector(alpha: alpha, estimator: covarianceEstimator)
            try d.fit(statistics: stats)
            return try d.scores(z)
        case .pseudoClass:
            var d = try PseudoClassDetector(modeCount: modes, seed: seed, estimator: covarianceEstimator)
            try d.fit(try needRows(rows))
            return try d.scores(z)
        }
    }
}
