import CKernels
import Foundation
import Testing
@testable import LoRTA

/// Reference fixtures written by scripts/fixtures/make_stats_fixtures.py (numpy, scikit-learn).
struct StatsFixture {
    let json: [String: Any]
    init(_ name: String) throws {
        let url = try #require(Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Fixtures/stats"))
        json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    }
    func int(_ key: String) throws -> Int { try #require(json[key] as? Int) }
    func double(_ key: String) throws -> Double { try #require((json[key] as? NSNumber)?.doubleValue) }
    func doubles(_ key: String) throws -> [Double] { try #require((json[key] as? [NSNumber])?.map(\.doubleValue)) }
    func ints(_ key: String) throws -> [Int] { try #require(json[key] as? [Int]) }
    func nested(_ key: String) throws -> [String: Any] { try #require(json[key] as? [String: Any]) }
    func matrix(_ key: String, rows: Int, cols: Int) throws -> Tensor {
        try Tensor(doubles(key).map { Float($0) }, shape: [rows, cols])
    }
    var x: Tensor { get throws { try matrix("x", rows: int("n"), cols: int("d")) } }
    var query: Tensor { get throws { try matrix("query", rows: int("n_query"), cols: int("d")) } }
}

/// max |a − b| / max |b|: the error relative to the reference's scale.
func relativeError(_ a: [Double], _ b: [Double]) -> Double {
    precondition(a.count == b.count)
    let scale = b.reduce(0) { max($0, abs($1)) }
    let err = zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
    return scale == 0 ? err : err / scale
}

/// Rows [start, end) of a matrix.
func rowSlice(_ t: Tensor, _ start: Int, _ end: Int) throws -> Tensor {
    let d = t.shape[1]
    return try Tensor(Array(t.scalars[(start * d)..<(end * d)]), shape: [end - start, d])
}

/// Rows drawn with lt_rng_normal: column j has mean offset + j and std 1 + j/4, plus a shared
/// factor that correlates the columns.
func syntheticRows(rows: Int, d: Int, seed: UInt64, offset: Float) throws -> Tensor {
    var z = [Float](repeating: 0, count: rows * (d + 1))
    #expect(lt_rng_normal(seed, 0, 0, 1, &z, Int64(z.count)) == LT_OK)
    return try Tensor(shape: [rows, d]) { out in
        for i in 0..<rows {
            let f = z[i * (d + 1) + d]
            for j in 0..<d {
                out[i * d + j] = offset + Float(j) + (1 + Float(j) / 4) * z[i * (d + 1) + j] + 0.5 * f
            }
        }
    }
}

@Suite("Activation statistics", .serialized)
struct ActivationStatisticsTests {
    static let cases = ["gaussian_tall", "gaussian_wide"]

    @Test(arguments: cases) func meanCovarianceAndFourthMomentMatchNumpy(name: String) throws {
        let fx = try StatsFixture(name)
        let x = try fx.x
        let n = try fx.int("n")
        // Uneven batches: 1 row, 5 rows, then the rest.
        var s = try ActivationStatistics(dimension: fx.int("d"))
        for (a, b) in [(0, 1), (1, 6), (6, n)] { try s.update(with: rowSlice(x, a, b)) }
        #expect(s.count == n)
        #expect(relativeError(s.mean, try fx.doubles("mean")) < 1e-10)
        let cov = try s.covariance()
        #expect(relativeError(cov.values, try fx.doubles("covariance")) < 1e-10)
        #expect(abs(s.fourthMoment - (try fx.double("fourth"))) / (try fx.double("fourth")) < 1e-10)
        // one batch gives the same up to rounding
        let whole = try ActivationStatistics(x)
        #expect(relativeError(whole.scatter, s.scatter) < 1e-12)
        // per-feature variances
        let v = try s.variances()
        let d = s.dimension
        #expect(relativeError(v, (0..<d).map { cov.values[$0 * d + $0] }) < 1e-15)
    }

    @Test(arguments: cases) func shrinkageEstimatorsMatchScikitLearn(name: String) throws {
        let fx = try StatsFixture(name)
        let s = try ActivationStatistics(fx.x)
        for (estimator, key) in [(CovarianceEstimator.ledoitWolf, "ledoit_wolf"), (.oracleApproximatingShrinkage, "oas")] {
            let ref = try fx.nested(key)
            let refCov = try #require((ref["covariance"] as? [NSNumber])?.map(\.doubleValue))
            let refShrink = try #require((ref["shrinkage"] as? NSNumber)?.doubleValue)
            let c = try s.covariance(estimator: estimator)
            #expect(abs(c.shrinkage - refShrink) < 1e-8, "\(estimator) shrinkage \(c.shrinkage) vs \(refShrink)")
            #expect(relativeError(c.values, refCov) < 1e-8, "\(estimator)")
            #expect(c.shrinkage > 0 && c.shrinkage <= 1)
        }
        let ridge = try fx.nested("ridge")
        let eps = try #require((ridge["epsilon"] as? NSNumber)?.doubleValue)
        let refRidge = try #require((ridge["covariance"] as? [NSNumber])?.map(\.doubleValue))
        #expect(relativeError(try s.covariance(estimator: .ridge(epsilon: eps)).values, refRidge) < 1e-10)
    }

    @Test(arguments: cases) func spectrumDeterminantAndPrecisionMatchNumpy(name: String) throws {
        let fx = try StatsFixture(name)
        let cov = try ActivationStatistics(fx.x).covariance()
        #expect(relativeError(try cov.eigenvalues(), try fx.doubles("eigenvalues_desc")) < 1e-9)
        #expect(abs(try cov.logDeterminant() - (try fx.double("log_determinant"))) < 1e-9)
        #expect(try fx.double("log_det_sign") == 1)
        #expect(relativeError(try cov.precision(), try fx.doubles("precision")) < 1e-8)
        #expect(abs(cov.participationRatio - (try fx.double("participation_ratio"))) < 1e-10)
    }

    @Test(arguments: cases) func mahalanobisScoresMatchReferences(name: String) throws {
        let fx = try StatsFixture(name)
        let x = try fx.x, z = try fx.query, labels = try fx.ints("labels")
        var global = MahalanobisDetector(mode: .global, estimator: .empirical)
        try global.fit(x)
        #expect(relativeError(try global.scores(z), try fx.doubles("maha_empirical")) < 1e-6)
        var lw = MahalanobisDetector(mode: .global, estimator: .ledoitWolf)
        try lw.fit(x)
        #expect(relativeError(try lw.scores(z), try fx.doubles("maha_ledoit_wolf")) < 1e-6)
        var cls = MahalanobisDetector(mode: .classConditional)
        try cls.fit(x, labels: labels)
        #expect(relativeError(try cls.scores(z), try fx.doubles("maha_class_tied")) < 1e-6)
        var rel = MahalanobisDetector(mode: .relative)
        try rel.fit(x, labels: labels)
        #expect(relativeError(try rel.scores(z), try fx.doubles("maha_relative")) < 1e-6)
        // Tied Ledoit–Wolf covariance = scikit-learn's on the class-centred rows.
        var s = try ActivationStatistics(dimension: x.shape[1])
        try s.update(with: x, labels: labels)
        let tied = try s.tiedCovariance(estimator: .ledoitWolf)
        let ref = try fx.nested("tied_ledoit_wolf")
        #expect(abs(tied.shrinkage - (try #require((ref["shrinkage"] as? NSNumber)?.doubleValue))) < 1e-8)
        #expect(relativeError(tied.values, try #require((ref["covariance"] as? [NSNumber])?.map(\.doubleValue))) < 1e-8)
    }

    @Test(arguments: cases) func spectralSignatureAndQUEMatchNumpy(name: String) throws {
        let fx = try StatsFixture(name)
        let x = try fx.x, z = try fx.query
        var spectral = SpectralSignatureDetector()
        try spectral.fit(x)
        #expect(relativeError(try spectral.scores(z), try fx.doubles("spectral")) < 1e-8)
        var que = try QuantumEntropyDetector(alpha: 4)
        try que.fit(x)
        #expect(relativeError(try que.scores(z), try fx.doubles("que_alpha4")) < 1e-8)
        // errors
        #expect(throws: StatisticsError.insufficientSamples(operation: "QuantumEntropyDetector.scores", count: 1, required: 2)) {
            try que.scores(rowSlice(z, 0, 1))
        }
        #expect(throws: StatisticsError.notFitted("QuantumEntropyDetector")) {
            try QuantumEntropyDetector().scores(z)
        }
        #expect(throws: StatisticsError.invalidParameter("QUE alpha 0.0 must be finite and > 0")) {
            try QuantumEntropyDetector(alpha: 0)
        }
        #expect(throws: StatisticsError.dimensionMismatch(operation: "SpectralSignatureDetector", expected: x.shape[1], actual: 1)) {
            try spectral.scores(Tensor([1, 2, 3], shape: [3, 1]))
        }
    }

    @Test func largeMeanDoesNotCancel() throws {
        // 10⁶ float32 rows, mean 1e4, std 1, d = 16, in batches of 50,000.
        let rows = 1_000_000, d = 16, batch = 50_000
        var x = [Float](repeating: 0, count: rows * d)
        #expect(lt_rng_normal(2026, 0, 1e4, 1, &x, Int64(x.count)) == LT_OK)
        var s = try ActivationStatistics(dimension: d)
        for b in stride(from: 0, to: rows, by: batch) {
            try s.update(with: Tensor(Array(x[(b * d)..<((b + batch) * d)]), shape: [batch, d]))
        }
        // Truth: two-pass float64 over the same float32 values.
        var mean = [Double](repeating: 0, count: d), m2 = [Double](repeating: 0, count: d)
        x.withUnsafeBufferPointer { p in
            for i in 0..<rows { for j in 0..<d { mean[j] += Double(p[i * d + j]) } }
            for j in 0..<d { mean[j] /= Double(rows) }
            for i in 0..<rows { for j in 0..<d { let c = Double(p[i * d + j]) - mean[j]; m2[j] += c * c } }
        }
        let v = try s.variances()
        for j in 0..<d {
            let truth = m2[j] / Double(rows - 1)
            #expect(abs(v[j] - truth) / truth < 1e-6, "feature \(j): \(v[j]) vs \(truth)")
            #expect(abs(s.mean[j] - mean[j]) / mean[j] < 1e-12)
        }
    }

    @Test func fourShardsMergeToTheWholeSet() throws {
        let x = try syntheticRows(rows: 1000, d: 12, seed: 11, offset: 300)
        let whole = try ActivationStatistics(x)
        let bounds = [0, 17, 400, 401, 1000]
        var shards: [ActivationStatistics] = []
        for k in 0..<4 { shards.append(try ActivationStatistics(rowSlice(x, bounds[k], bounds[k + 1]))) }
        // merge as a tree ((0 ∪ 3) ∪ (2 ∪ 1)), not in row order
        let merged = try shards[0].merged(with: shards[3]).merged(with: shards[2].merged(with: shards[1]))
        #expect(merged.count == whole.count)
        #expect(relativeError(merged.mean, whole.mean) < 1e-12)
        #expect(relativeError(merged.scatter, whole.scatter) < 1e-12)
        #expect(abs(merged.fourthMoment - whole.fourthMoment) / whole.fourthMoment < 1e-12)
        // T3 is a sum of signed terms: compare on its natural scale sqrt(Q4 · max M2_jj).
        let d = whole.dimension
        let scale = (whole.fourthMoment * (0..<d).map { whole.scatter[$0 * d + $0] }.max()!).squareRoot()
        let t3err = zip(merged.thirdMoment, whole.thirdMoment).map { abs($0 - $1) }.max()!
        #expect(t3err / scale < 1e-12)
        // merging an empty object changes nothing; merging into an empty one copies
        var e = try ActivationStatistics(dimension: d)
        try e.merge(whole)
        #expect(e == whole)
        #expect(try whole.merged(with: ActivationStatistics(dimension: d)) == whole)
        // the shrinkage estimators of the merged statistics agree with the whole set's
        for est in [CovarianceEstimator.ledoitWolf, .oracleApproximatingShrinkage] {
            #expect(abs(try merged.covariance(estimator: est).shrinkage - whole.covariance(estimator: est).shrinkage) < 1e-12)
        }
    }

    @Test func naiveFloat64ReferenceForThirdAndFourthMoments() throws {
        let x = try syntheticRows(rows: 300, d: 5, seed: 3, offset: -20)
        var s = try ActivationStatistics(dimension: 5)
        try s.update(with: rowSlice(x, 0, 100))
        try s.update(with: rowSlice(x, 100, 300))
        let rows = (0..<300).map { i in (0..<5).map { Double(x[i, $0]) } }
        let mu = (0..<5).map { j in rows.reduce(0) { $0 + $1[j] } / 300 }
        var t3 = [Double](repeating: 0, count: 5), q4 = 0.0
        for r in rows {
            let c = zip(r, mu).map { $0 - $1 }
            let n2 = c.reduce(0) { $0 + $1 * $1 }
            q4 += n2 * n2
            for j in 0..<5 { t3[j] += n2 * c[j] }
        }
        #expect(abs(s.fourthMoment - q4) / q4 < 1e-12)
        let scale = t3.map(abs).max()!
        #expect(zip(s.thirdMoment, t3).map { abs($0 - $1) }.max()! / scale < 1e-9)
    }

    @Test func perLabelStatisticsEqualThoseOfTheSubsets() throws {
        let x = try syntheticRows(rows: 200, d: 6, seed: 5, offset: 2)
        let labels = (0..<200).map { ($0 * 7) % 3 - 1 }  // -1, 0, 1
        var s = try ActivationStatistics(dimension: 6)
        try s.update(with: rowSlice(x, 0, 50), labels: Array(labels[0..<50]))
        try s.update(with: rowSlice(x, 50, 200), labels: Array(labels[50..<200]))
        #expect(s.labels == [-1, 0, 1])
        let all = try ActivationStatistics(x)
        #expect(relativeError(s.scatter, all.scatter) < 1e-12)
        for l in [-1, 0, 1] {
            let idx = labels.indices.filter { labels[$0] == l }
            let sub = try Tensor(idx.flatMap { i in (0..<6).map { x[i, $0] } }, shape: [idx.count, 6])
            let ref = try ActivationStatistics(sub)
            let got = try #require(s.labelStatistics[l])
            #expect(got.count == idx.count)
            #expect(relativeError(got.mean, ref.mean) < 1e-12)
            #expect(relativeError(got.scatter, ref.scatter) < 1e-12)
        }
        // labelled and unlabelled rows do not mix
        #expect(throws: StatisticsError.labelsRequired(operation: "ActivationStatistics.update")) {
            try s.update(with: rowSlice(x, 0, 3))
        }
        #expect(throws: StatisticsError.labelsRequired(operation: "ActivationStatistics.merge")) {
            try s.merge(all)
        }
        // merging labelled shards merges per label
        var a = try ActivationStatistics(dimension: 6), b = try ActivationStatistics(dimension: 6)
        try a.update(with: rowSlice(x, 0, 120), labels: Array(labels[0..<120]))
        try b.update(with: rowSlice(x, 120, 200), labels: Array(labels[120..<200]))
        let m = try a.merged(with: b)
        for l in [-1, 0, 1] {
            #expect(relativeError(m.labelStatistics[l]!.scatter, s.labelStatistics[l]!.scatter) < 1e-12)
        }
    }

    /// Statistics, Cholesky factor, spectrum and detector scores of a fixed input.
    static func pipeline(_ x: Tensor, _ q: Tensor) throws -> (ActivationStatistics, CholeskyFactor, [Double], [Double]) {
        let d = x.shape[1], n = x.shape[0]
        var s = try ActivationStatistics(dimension: d)
        try s.update(with: rowSlice(x, 0, 1100))
        try s.update(with: rowSlice(x, 1100, n))
        let cov = try s.covariance(estimator: .ledoitWolf)
        var det = MahalanobisDetector(estimator: .ledoitWolf)
        try det.fit(statistics: s)
        return (s, try cov.cholesky(), try cov.eigenvalues(), try det.scores(q))
    }

    @Test(arguments: [150, 70, 13]) func bitwiseIdenticalWithOneAndTwoThreads(d: Int) throws {
        // Large enough for the parallel paths (rows·d ≥ 32768 per block, > 32 columns), odd
        // sizes (OpenBLAS's threaded dsyrk changes bits at d = 150: the reason for our kernel).
        let x = try syntheticRows(rows: 1500, d: d, seed: 9, offset: 40)
        let q = try syntheticRows(rows: 700, d: d, seed: 10, offset: 41)
        func same(_ a: [Double], _ b: [Double]) -> Bool { a.map(\.bitPattern) == b.map(\.bitPattern) }
        for isa in testedInstructionSets() {
            let (s1, l1, e1, d1) = try Runtime.withInstructionSet(isa) { try Runtime.withThreadCount(1) { try Self.pipeline(x, q) } }
            let (s2, l2, e2, d2) = try Runtime.withInstructionSet(isa) { try Runtime.withThreadCount(2) { try Self.pipeline(x, q) } }
            #expect(same(s1.mean, s2.mean), "\(isa)")
            #expect(same(s1.scatter, s2.scatter), "\(isa) scatter")
            #expect(same(s1.thirdMoment, s2.thirdMoment), "\(isa)")
            #expect(s1.fourthMoment.bitPattern == s2.fourthMoment.bitPattern, "\(isa)")
            #expect(same(l1.lower, l2.lower), "\(isa) Cholesky factor")
            #expect(same(e1, e2), "\(isa) eigenvalues")
            #expect(same(d1, d2), "\(isa) Mahalanobis scores")
        }
    }

    @Test func everyInstructionSetAgreesWithScalar() throws {
        let x = try syntheticRows(rows: 1300, d: 41, seed: 21, offset: -7)
        let q = try syntheticRows(rows: 50, d: 41, seed: 22, offset: -7)
        let (s0, _, _, d0) = try Runtime.withInstructionSet(.scalar) { try Self.pipeline(x, q) }
        // naive float64 reference for the scatter (two-pass)
        let n = 1300, d = 41
        var mu = [Double](repeating: 0, count: d), m2 = [Double](repeating: 0, count: d * d)
        for i in 0..<n { for j in 0..<d { mu[j] += Double(x[i, j]) } }
        for j in 0..<d { mu[j] /= Double(n) }
        for i in 0..<n {
            for a in 0..<d { for b in 0..<d { m2[a * d + b] += (Double(x[i, a]) - mu[a]) * (Double(x[i, b]) - mu[b]) } }
        }
        #expect(relativeError(s0.scatter, m2) < 1e-12)
        #expect(relativeError(s0.mean, mu) < 1e-14)
        for isa in testedInstructionSets() where isa != .scalar {
            let (s, _, _, dd) = try Runtime.withInstructionSet(isa) { try Self.pipeline(x, q) }
            #expect(relativeError(s.scatter, s0.scatter) < 1e-13, "\(isa)")
            #expect(relativeError(s.mean, s0.mean) < 1e-15, "\(isa)")
            #expect(abs(s.fourthMoment - s0.fourthMoment) / s0.fourthMoment < 1e-13, "\(isa)")
            #expect(relativeError(dd, d0) < 1e-10, "\(isa)")
        }
    }

    @Test func errorsAreTypedAndLeaveStateUnchanged() throws {
        var s = try ActivationStatistics(dimension: 3)
        try s.update(with: Tensor([1, 2, 3, 4, 5, 7], shape: [2, 3]))
        let before = s
        #expect(throws: StatisticsError.nonFiniteValue(operation: "ActivationStatistics.update")) {
            try s.update(with: Tensor([1, .nan, 3], shape: [1, 3]))
        }
        #expect(throws: StatisticsError.nonFiniteValue(operation: "ActivationStatistics.update")) {
            try s.update(with: Tensor([1, 2, .infinity], shape: [1, 3]))
        }
        #expect(s == before)
        #expect(throws: StatisticsError.dimensionMismatch(operation: "ActivationStatistics.update", expected: 3, actual: 2)) {
            try s.update(with: Tensor([1, 2], shape: [1, 2]))
        }
        #expect(throws: TensorError.self) { try s.update(with: Tensor([1, 2, 3])) }
        #expect(throws: StatisticsError.invalidDimension(0)) { try ActivationStatistics(dimension: 0) }
        #expect(throws: StatisticsError.labelCountMismatch(rows: 2, labels: 1)) {
            var t = try ActivationStatistics(dimension: 1)
            try t.update(with: Tensor([1, 2], shape: [2, 1]), labels: [0])
        }
        // one row: no covariance
        var one = try ActivationStatistics(dimension: 2)
        try one.update(with: Tensor([1, 2], shape: [1, 2]))
        #expect(throws: StatisticsError.insufficientSamples(operation: "covariance(empirical)", count: 1, required: 2)) {
            try one.covariance()
        }
        // rank-deficient data (n = 3 rows in d = 5): singular empirical covariance
        var few = try ActivationStatistics(dimension: 5)
        try few.update(with: syntheticRows(rows: 3, d: 5, seed: 1, offset: 0))
        #expect(throws: StatisticsError.self) { try few.covariance().cholesky() }
        do {
            _ = try few.covariance().cholesky()
        } catch let e as StatisticsError {
            guard case .notPositiveDefinite(let k) = e else { Issue.record("wrong error \(e)"); return }
            #expect(k >= 1 && k <= 5)
            #expect(e.description.contains("not positive definite"))
        }
        // ... but the shrinkage and ridge estimators are positive definite
        _ = try few.covariance(estimator: .ledoitWolf).cholesky()
        _ = try few.covariance(estimator: .oracleApproximatingShrinkage).cholesky()
        _ = try few.covariance(estimator: .ridge(epsilon: 1e-3)).cholesky()
        #expect(throws: StatisticsError.invalidParameter("ridge epsilon -1.0 must be finite and >= 0")) {
            try few.covariance(estimator: .ridge(epsilon: -1))
        }
        // detectors
        let unfitted = MahalanobisDetector()
        #expect(throws: StatisticsError.notFitted("MahalanobisDetector")) { try unfitted.scores(Tensor([1, 2], shape: [1, 2])) }
        var cls = MahalanobisDetector(mode: .classConditional)
        #expect(throws: StatisticsError.missingLabelStatistics(operation: "MahalanobisDetector(classConditional).fit")) {
            try cls.fit(syntheticRows(rows: 20, d: 2, seed: 1, offset: 0))
        }
    }

    @Test func cKernelsValidateArguments() throws {
        var mean = [Double](repeating: 0, count: 4), scatter = [Double](repeating: 0, count: 16)
        var third = [Double](repeating: 0, count: 4)
        let x = [Float](repeating: 1, count: 12)
        var work = [Double](repeating: 0, count: 100)
        var need: Int64 = 0
        #expect(lt_stats_update_workspace_size(4, 3, &need) == LT_OK)
        #expect(need == 3 * (8 + 1) + 8)  // rows × (d rounded up to 8, + 1) + 2d
        #expect(lt_stats_update_workspace_size(0, 3, &need) == LT_ERR_INVALID_ARGUMENT)
        mean.withUnsafeMutableBufferPointer { m in
            scatter.withUnsafeMutableBufferPointer { sc in
                third.withUnsafeMutableBufferPointer { t in
                    var s = lt_stats(dim: 4, count: 0, mean: m.baseAddress, scatter: sc.baseAddress, third: t.baseAddress, fourth: 0)
                    #expect(lt_stats_update(&s, x, 3, 3, &work, 100) == LT_ERR_INVALID_ARGUMENT)   // ldx < d
                    #expect(lt_stats_update(&s, x, 3, 4, &work, need - 1) == LT_ERR_INVALID_ARGUMENT) // workspace
                    #expect(lt_stats_update(&s, nil, 3, 4, &work, 100) == LT_ERR_NULL_POINTER)
                    #expect(lt_stats_update(nil, x, 3, 4, &work, 100) == LT_ERR_NULL_POINTER)
                    #expect(lt_stats_update(&s, x, 3, 4, &work, need) == LT_OK)
                    #expect(s.count == 3)
                }
            }
        }
        #expect(scatter.allSatisfy { $0 == 0 })  // three equal rows
        #expect(mean == [1, 1, 1, 1])
    }
}

@Suite("Detection metrics")
struct DetectionMetricsTests {
    @Test func matchScikitLearnWithTies() throws {
        let fx = try StatsFixture("metrics")
        let cases = try #require(fx.json["cases"] as? [[String: Any]])
        #expect(cases.count == 4)
        for c in cases {
            let scores = try #require((c["scores"] as? [NSNumber])?.map(\.doubleValue))
            let labels = try #require(c["labels"] as? [Int]).map { $0 == 1 }
            let auc = try #require((c["auroc"] as? NSNumber)?.doubleValue)
            let ap = try #require((c["average_precision"] as? NSNumber)?.doubleValue)
            #expect(Set(scores).count < scores.count)  // the data has ties
            #expect(abs(try DetectionMetrics.auroc(scores: scores, labels: labels) - auc) < 1e-12)
            #expect(abs(try DetectionMetrics.averagePrecision(scores: scores, labels: labels) - ap) < 1e-12)
            let tpr = try #require(c["tpr_at_fpr"] as? [String: NSNumber])
            for (k, v) in tpr {
                let got = try DetectionMetrics.truePositiveRate(atFalsePositiveRate: try #require(Double(k)), scores: scores, labels: labels)
                #expect(abs(got - v.doubleValue) < 1e-12, "fpr \(k)")
            }
        }
    }

    @Test func handWorkedExamples() throws {
        // all tied: AUROC 0.5
        #expect(try DetectionMetrics.auroc(scores: [1, 1, 1, 1], labels: [true, false, true, false]) == 0.5)
        // perfect separation and perfect inversion
        #expect(try DetectionMetrics.auroc(scores: [3, 4, 1, 2], labels: [true, true, false, false]) == 1)
        #expect(try DetectionMetrics.auroc(scores: [1, 2, 3, 4], labels: [true, true, false, false]) == 0)
        #expect(try DetectionMetrics.averagePrecision(scores: [3, 4, 1, 2], labels: [true, true, false, false]) == 1)
        #expect(throws: StatisticsError.singleClass(operation: "auroc")) {
            try DetectionMetrics.auroc(scores: [1, 2], labels: [true, true])
        }
        #expect(throws: StatisticsError.labelCountMismatch(rows: 2, labels: 1)) {
            try DetectionMetrics.averagePrecision(scores: [1, 2], labels: [true])
        }
        #expect(throws: StatisticsError.nonFiniteValue(operation: "auroc")) {
            try DetectionMetrics.auroc(scores: [.nan, 2], labels: [true, false])
        }
    }
}
