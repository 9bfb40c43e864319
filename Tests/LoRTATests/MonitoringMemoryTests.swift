import CKernels
import Foundation
import Testing
@testable import LoRTA

/// Statistics, detectors and k-means check their d × d (or n × k) tables against the memory
/// budget before allocating; the spectral signature never builds a d × d matrix when the batch
/// has fewer rows than features. Small explicit budgets: nothing large is allocated.
@Suite("Monitoring: memory budget")
struct MonitoringMemoryTests {
    static func budget(_ bytes: Int) throws -> MemoryBudget { try MemoryBudget(bytes: bytes, origin: "test") }

    @Test func statisticsOfManyFeaturesAreRefusedBeforeAllocating() throws {
        try MemoryBudget.withBudget(try Self.budget(1 << 30)) { () throws in
            let error = #expect(throws: MemoryError.self) { try ActivationStatistics(dimension: 200_000) }
            #expect(error?.description == "statistics of 200000 features need a 200000×200000 float64 co-moment matrix: 298 GiB, "
                    + "more than the 1.00 GiB memory budget (test; change it with --max-memory or LORTA_MAX_MEMORY)")
            // 2 rows × 200,000 features (1.6 MB of float32): what `stats fit` / `detect` got.
            let wide = try Tensor(zeros: [2, 200_000])
            #expect(throws: MemoryError.self) { try ActivationStatistics(wide) }
            var mahalanobis = MahalanobisDetector()
            #expect(throws: MemoryError.self) { try mahalanobis.fit(wide) }
            var que = try QuantumEntropyDetector()
            #expect(throws: MemoryError.self) { try que.fit(wide) }
            // The largest dimension (2³¹−1): 8·d² overflows nothing, but is refused.
            #expect(throws: MemoryError.self) { try ActivationStatistics(dimension: Int(Int32.max)) }
        }
        #expect(throws: StatisticsError.invalidDimension(3_000_000_000)) { try ActivationStatistics(dimension: 3_000_000_000) }
    }

    @Test func manyLabelsAreRefusedAsAWholeAndLeaveTheStatisticsUnchanged() throws {
        // 300 labels × d = 64: 301 tables of 33,792 bytes = 9.70 MiB.
        let d = 64, rows = 600
        let x = try syntheticRows(rows: rows, d: d, seed: 5, offset: 0)
        let labels = (0..<rows).map { $0 % 300 }
        try MemoryBudget.withBudget(try Self.budget(8 << 20)) { () throws in
            var s = try ActivationStatistics(dimension: d)
            let error = #expect(throws: MemoryError.self) { try s.update(with: x, labels: labels) }
            #expect(error?.description.hasPrefix("statistics of 64 features for 300 labels need 301 float64 64×64 co-moment matrices "
                                                 + "(one per label, one overall): 9.70 MiB, more than the 8.00 MiB memory budget") == true,
                    "\(String(describing: error))")
            #expect(s.count == 0 && s.labelStatistics.isEmpty)
            // 100 labels fit.
            try s.update(with: x, labels: (0..<rows).map { $0 % 100 })
            #expect(s.labels.count == 100 && s.count == rows)
            // Adding 200 more labels later counts the ones already held.
            let more = #expect(throws: MemoryError.self) { try s.update(with: x, labels: (0..<rows).map { 100 + $0 % 200 }) }
            #expect(more?.description.hasPrefix("statistics of 64 features for 300 labels") == true)
            #expect(s.count == rows)
        }
    }

    @Test func kMeansWithAbsurdClusterCountsIsRefusedBeforeAnyWork() throws {
        // 100,000 one-feature rows into 100,000 clusters: a 74.5 GiB distance matrix.
        let x = try syntheticRows(rows: 100_000, d: 1, seed: 9, offset: 0)
        try MemoryBudget.withBudget(try Self.budget(1 << 30)) { () throws in
            let error = #expect(throws: MemoryError.self) { try KMeans(x, k: 100_000, seed: 1) }
            #expect(error?.description.hasPrefix("k-means of 100000 rows into 100000 clusters needs a 100000×100000 float64 distance matrix: 74.5 GiB") == true)
            var pseudo = try PseudoClassDetector(modeCount: 100_000)
            #expect(throws: MemoryError.self) { try pseudo.fit(x) }
        }
    }

    /// Reference: the top eigenvector of the d × d scatter (what the detector computed for
    /// every batch before).
    static func scatterScores(_ batch: Tensor) throws -> [Double] {
        let (m, d) = (batch.shape[0], batch.shape[1])
        let s = try ActivationStatistics(batch)
        let (_, vectors) = try CovarianceMatrix.symmetricEigen(s.scatter, dimension: d)
        let v = (0..<d).map { vectors[$0 * d + d - 1] }
        let offset = zip(s.mean, v).reduce(0) { $0 + $1.0 * $1.1 }
        return (0..<m).map { i in
            var p = 0.0
            for j in 0..<d { p += Double(batch[i, j]) * v[j] }
            return (p - offset) * (p - offset)
        }
    }

    @Test(arguments: [(5, 9), (12, 40), (30, 31)])
    func spectralSignatureOfFewRowsMatchesTheScatterPath(rows: Int, d: Int) throws {
        // A shifted subpopulation and a large common offset (cancels exactly in the Gram path).
        var x = try syntheticRows(rows: rows, d: d, seed: UInt64(rows * d), offset: 1000)
        for i in 0..<(rows / 3) { for j in 0..<d { x[i, j] += 4 } }
        let detector = SpectralSignatureDetector()
        let got = try detector.scores(x)
        #expect(relativeError(got, try Self.scatterScores(x)) < 1e-9, "\(rows)×\(d)")
        let v = try detector.topDirection(x)
        #expect(abs(v.reduce(0) { $0 + $1 * $1 } - 1) < 1e-12)
        // Deterministic across thread counts.
        let one = try Runtime.withThreadCount(1) { try detector.scores(x) }
        let two = try Runtime.withThreadCount(2) { try detector.scores(x) }
        #expect(one.map(\.bitPattern) == two.map(\.bitPattern))
    }

    @Test func spectralSignatureOfAWideBatchNeedsNoDByDMatrix() throws {
        // 2 × 200,000 under 64 MiB: the 200,000² scatter (298 GiB) is never requested.
        var x = try Tensor(zeros: [2, 200_000])
        for j in 0..<200_000 { x[0, j] = Float(j % 7); x[1, j] = Float(j % 5) }
        try MemoryBudget.withBudget(try Self.budget(64 << 20)) { () throws in
            var detector = SpectralSignatureDetector()
            try detector.fit(dimension: 200_000)
            let scores = try detector.scores(x)
            // Two rows: both sit at half their distance from the mean along v = (x₀ − x₁)/‖x₀ − x₁‖.
            var squared = 0.0
            for j in 0..<200_000 { let t = Double(x[0, j] - x[1, j]); squared += t * t }
            #expect(abs(scores[0] - squared / 4) / (squared / 4) < 1e-12)
            #expect(abs(scores[1] - squared / 4) / (squared / 4) < 1e-12)
            // Identical rows: no spread, every score 0.
            #expect(try detector.scores(try Tensor(zeros: [3, 200_000])) == [0, 0, 0])
        }
    }
}
