import CKernels
import Foundation
import Testing
@testable import LoRTA

/// Three well-separated Gaussian blobs (labels 0, 1, 2 in row order i % 3) in d dimensions.
func blobs(rows: Int, d: Int, seed: UInt64) throws -> (Tensor, [Int]) {
    var z = [Float](repeating: 0, count: rows * d)
    #expect(lt_rng_normal(seed, 0, 0, 1, &z, Int64(z.count)) == LT_OK)
    let labels = (0..<rows).map { $0 % 3 }
    let t = try Tensor(shape: [rows, d]) { o in
        for i in 0..<rows {
            for j in 0..<d {
                let centre: Float = (j == labels[i] ? 12 : 0) + 5
                let scale: Float = 1 + Float(labels[i]) * 0.5
                o[i * d + j] = centre + scale * z[i * d + j]
            }
        }
    }
    return (t, labels)
}

@Suite("Pseudo-class detector and k-means", .serialized)
struct PseudoClassDetectorTests {
    @Test func kMeansRecoversBlobsAndIsDeterministic() throws {
        let (x, labels) = try blobs(rows: 4000, d: 6, seed: 31)
        let a = try Runtime.withThreadCount(1) { try KMeans(x, k: 3, seed: 7) }
        let b = try Runtime.withThreadCount(2) { try KMeans(x, k: 3, seed: 7) }
        let c = try KMeans(x, k: 3, seed: 7)
        #expect(a.centroids.map(\.bitPattern) == b.centroids.map(\.bitPattern))
        #expect(a == b && a == c)
        // the clustering equals the true labels up to a permutation
        var map: [Int: Int] = [:]
        for (l, k) in zip(labels, a.assignments) { map[l] = map[l] ?? k; #expect(map[l] == k) }
        #expect(Set(map.values).count == 3)
        // inertia equals a naive float64 recomputation
        var naive = 0.0
        for i in 0..<4000 {
            let k = a.assignments[i]
            for j in 0..<6 { let t = Double(x[i, j]) - a.centroids[k * 6 + j]; naive += t * t }
        }
        #expect(abs(naive - a.inertia) / naive < 1e-12)
        #expect(try a.assign(x) == a.assignments)
        // centroids are the means of their rows
        for k in 0..<3 {
            let idx = a.assignments.indices.filter { a.assignments[$0] == k }
            for j in 0..<6 {
                let m = idx.reduce(0.0) { $0 + Double(x[$1, j]) } / Double(idx.count)
                #expect(abs(m - a.centroids[k * 6 + j]) < 1e-12 * max(1, abs(m)))
            }
        }
        // another seed still finds the blobs
        let other = try KMeans(x, k: 3, seed: 99)
        #expect(abs(other.inertia - a.inertia) / a.inertia < 1e-12)
    }

    @Test func scoresAreNearestModeMahalanobis() throws {
        let (x, _) = try blobs(rows: 900, d: 5, seed: 41)
        let (q, _) = try blobs(rows: 60, d: 5, seed: 42)
        var det = try PseudoClassDetector(modeCount: 3, seed: 3)
        try det.fit(x)
        #expect(det.modes.count == 3)
        #expect(det.modes.map(\.size).reduce(0, +) == 900)
        let km = try #require(det.clustering)
        // independent reference: one global Mahalanobis detector per mode, fitted on its rows
        var perMode: [[Double]] = []
        for c in 0..<3 {
            let idx = km.assignments.indices.filter { km.assignments[$0] == c }
            let rows = try Tensor(idx.flatMap { i in (0..<5).map { x[i, $0] } }, shape: [idx.count, 5])
            var m = MahalanobisDetector(mode: .global, estimator: .ledoitWolf)
            try m.fit(rows)
            perMode.append(try m.scores(q))
            let mode = det.modes[c]
            let cov = try ActivationStatistics(rows).covariance(estimator: .ledoitWolf)
            #expect(abs(mode.logVolume - 0.5 * (try cov.logDeterminant())) < 1e-10)
            #expect(abs(mode.participationRatio - cov.participationRatio) < 1e-12)
            // the mode's TwoNN is the estimator (checked against numpy in twoNNMatchesNumpy) on its rows
            let id = try #require(mode.intrinsicDimension)
            #expect(id == (try IntrinsicDimension.twoNN(rows)), "mode \(c): TwoNN \(id)")
        }
        let scores = try det.scores(q)
        for i in 0..<60 {
            let ref = perMode.map { $0[i] }.min()!
            #expect(abs(scores[i] - ref) <= 1e-9 * ref)
        }
        // far-away rows score above trusted held-out rows
        let far = try Tensor(q.scalars.map { $0 * 1.8 - 9 }, shape: [60, 5])
        let s = try det.scores(q) + det.scores(far)
        let auc = try DetectionMetrics.auroc(scores: s, labels: [Bool](repeating: false, count: 60) + [Bool](repeating: true, count: 60))
        #expect(auc > 0.95)
        // bitwise identical with 1 and 2 threads
        let s1 = try Runtime.withThreadCount(1) { () throws -> [Double] in
            var d1 = try PseudoClassDetector(modeCount: 3, seed: 3); try d1.fit(x); return try d1.scores(q)
        }
        let s2 = try Runtime.withThreadCount(2) { () throws -> [Double] in
            var d2 = try PseudoClassDetector(modeCount: 3, seed: 3); try d2.fit(x); return try d2.scores(q)
        }
        #expect(s1.map(\.bitPattern) == s2.map(\.bitPattern))
    }

    /// TwoNN against numpy float64 from the same float32 points (scripts/fixtures/make_stats_fixtures.py,
    /// Fixtures/stats/twonn.json: full distance matrix, sorted rows): a 2-D square rotated into
    /// 10-D (120 points), a 5-D Gaussian with three duplicated rows (skipped: r₁ = 0), and the
    /// same on an evenly spaced sample of 50 rows. The estimator's value, not the true dimension,
    /// is what is compared, to float64 rounding.
    @Test func twoNNMatchesNumpy() throws {
        struct Fixture: Decodable {
            struct Case: Decodable {
                let name: String, n: Int, d: Int, max_samples: Int, x: [Double], twonn: Double, points_used: Int
            }
            let cases: [Case]
        }
        let fx = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: try testFixture("stats/twonn.json")))
        #expect(fx.cases.map(\.name) == ["plane", "blob", "blob_sample50"])
        for c in fx.cases {
            let x = try Tensor(c.x.map { Float($0) }, shape: [c.n, c.d])
            let id = try IntrinsicDimension.twoNN(x, maxSamples: c.max_samples)
            #expect(abs(id - c.twonn) <= 1e-10 * c.twonn, "\(c.name): TwoNN \(id), numpy \(c.twonn) (\(c.points_used) points)")
        }
    }

    @Test func errors() throws {
        let x = try Tensor([1, 2, 3, 4], shape: [2, 2])
        #expect(throws: StatisticsError.invalidParameter("k = 3 must be in 1...2 (the number of rows)")) { try KMeans(x, k: 3) }
        #expect(throws: StatisticsError.nonFiniteValue(operation: "KMeans")) {
            try KMeans(Tensor([1, .nan, 3, 4], shape: [2, 2]), k: 1)
        }
        #expect(throws: StatisticsError.invalidParameter("modeCount 0 must be >= 1")) { try PseudoClassDetector(modeCount: 0) }
        #expect(throws: StatisticsError.notFitted("PseudoClassDetector")) { try PseudoClassDetector(modeCount: 1).scores(x) }
        // a mode with one row cannot have a covariance
        let y = try Tensor([0, 0, 0.1, 0, 0, 0.1, 100, 100], shape: [4, 2])
        var det = try PseudoClassDetector(modeCount: 2, seed: 1)
        #expect(throws: StatisticsError.insufficientSamples(operation: "PseudoClassDetector mode 1", count: 1, required: 2)) {
            try det.fit(y)
        }
    }
}
