#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Combines the anomaly scores of several sites (layers, heads) into one score per row.
///
/// Each site's scores live on their own scale, so they are first standardized on *trusted*
/// data: with `μ_s` and `σ_s` the mean and standard deviation (ddof = 1) of site s's scores on
/// trusted rows, a score `x` becomes `z = (x − μ_s) / σ_s`. The combined score of a row is the
/// mean or the maximum over the sites of its z-scores (higher = more anomalous).
///
/// Scores are given site-major: `scores[s][i]` is site s's score of row i. Fitting is O(S·n),
/// combining O(S·m) for S sites.
public struct SiteScoreCombiner: Sendable, Equatable {
    /// How the standardized site scores of a row are reduced.
    public enum Reduction: String, Sendable, CaseIterable {
        case mean, max
    }

    /// The reduction over sites.
    public let reduction: Reduction
    /// Mean of each site's trusted scores.
    public let means: [Double]
    /// Standard deviation (ddof = 1) of each site's trusted scores, > 0.
    public let standardDeviations: [Double]

    /// Number of sites.
    public var siteCount: Int { means.count }

    /// Standardization fitted on trusted scores, `trustedScores[s][i]` (site s, row i).
    /// Sites may have different numbers of trusted rows.
    /// - Throws: ``StatisticsError/invalidParameter(_:)`` with no site or when a site's
    ///   scores are all equal (σ = 0); ``StatisticsError/insufficientSamples(operation:count:required:)``
    ///   for a site with fewer than 2 scores; ``StatisticsError/nonFiniteValue(operation:)``.
    public init(trustedScores: [[Double]], reduction: Reduction = .mean) throws {
        guard !trustedScores.isEmpty else { throw StatisticsError.invalidParameter("SiteScoreCombiner needs at least one site") }
        var means: [Double] = [], deviations: [Double] = []
        for (s, site) in trustedScores.enumerated() {
            let op = "SiteScoreCombiner site \(s)"
            guard site.count >= 2 else { throw StatisticsError.insufficientSamples(operation: op, count: site.count, required: 2) }
            guard site.allSatisfy({ $0.isFinite }) else { throw StatisticsError.nonFiniteValue(operation: op) }
            let mu = site.reduce(0, +) / Double(site.count)
            let ss = site.reduce(0) { $0 + ($1 - mu) * ($1 - mu) }
            let sigma = sqrt(ss / Double(site.count - 1))
            guard sigma > 0, sigma.isFinite else {
                throw StatisticsError.invalidParameter("site \(s): trusted scores have zero spread; cannot standardize")
            }
            means.append(mu)
            deviations.append(sigma)
        }
        self.reduction = reduction
        self.means = means
        self.standardDeviations = deviations
    }

    /// The z-scores `(scores[s][i] − μ_s) / σ_s`, site-major like the input.
    /// - Throws: ``StatisticsError/dimensionMismatch(operation:expected:actual:)`` when the
    ///   number of sites differs from the fit; ``StatisticsError/labelCountMismatch(rows:labels:)``
    ///   when sites have different row counts; ``StatisticsError/nonFiniteValue(operation:)``.
    public func standardized(_ scores: [[Double]]) throws -> [[Double]] {
        guard scores.count == siteCount else {
            throw StatisticsError.dimensionMismatch(operation: "SiteScoreCombiner (sites)", expected: siteCount, actual: scores.count)
        }
        let rows = scores[0].count
        return try scores.enumerated().map { s, site in
            guard site.count == rows else { throw StatisticsError.labelCountMismatch(rows: rows, labels: site.count) }
            guard site.allSatisfy({ !$0.isNaN }) else { throw StatisticsError.nonFiniteValue(operation: "SiteScoreCombiner site \(s)") }
            return site.map { ($0 - means[s]) / standardDeviations[s] }
        }
    }

    /// One combined score per row: the mean or maximum over sites of the z-scores.
    /// - Throws: as ``standardized(_:)``.
    public func combine(_ scores: [[Double]]) throws -> [Double] {
        let z = try standardized(scores)
        let rows = z[0].count
        return (0..<rows).map { i in
            switch reduction {
            case .mean:
                var acc = 0.0
                for site in z { acc += site[i] }
                return acc / Double(z.count)
            case .max:
                var best = -Double.infinity
                for site in z { best = Swift.max(best, site[i]) }
                return best
            }
        }
    }
}
