import Foundation
import Testing
@testable import LoRTA

/// A fresh temporary directory for one test.
func temporaryDirectory(_ tag: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("lorta-\(tag)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

private func bits(_ a: [Double]) -> [UInt64] { a.map(\.bitPattern) }

/// Every stored field of two statistics objects, bit for bit (labels included).
private func expectBitwiseEqual(_ a: ActivationStatistics, _ b: ActivationStatistics) {
    #expect(a.dimension == b.dimension && a.count == b.count)
    #expect(bits(a.mean) == bits(b.mean))
    #expect(bits(a.scatter) == bits(b.scatter))
    #expect(bits(a.thirdMoment) == bits(b.thirdMoment))
    #expect(a.fourthMoment.bitPattern == b.fourthMoment.bitPattern)
    #expect(a.labels == b.labels)
    for l in a.labels {
        let x = a.labelStatistics[l]!, y = b.labelStatistics[l]!
        #expect(x.count == y.count && bits(x.mean) == bits(y.mean) && bits(x.scatter) == bits(y.scatter))
        #expect(bits(x.thirdMoment) == bits(y.thirdMoment) && x.fourthMoment.bitPattern == y.fourthMoment.bitPattern)
    }
}

/// Rewrites a safetensors file with changes: tensors removed, tensors replaced or added (raw
/// bytes), metadata entries set (nil removes).
private func rewrite(_ src: URL, to dst: URL, drop: Set<String> = [],
                     replace: [String: (SafeTensorsDType, [Int], Data)] = [:], metadata: [String: String?] = [:]) throws {
    let r = try SafeTensorsReader(contentsOf: src)
    var w = SafeTensorsWriter()
    w.metadata = r.metadata
    for (k, v) in metadata { w.metadata[k] = v }
    for e in r.entries where !drop.contains(e.name) && replace[e.name] == nil {
        try w.addRaw(e.name, dtype: e.dtype, shape: e.shape, bytes: r.rawBytes(e.name))
    }
    for (name, (dtype, shape, data)) in replace.sorted(by: { $0.key < $1.key }) {
        try w.addRaw(name, dtype: dtype, shape: shape, bytes: data)
    }
    try w.write(to: dst)
}

private func f64Bytes(_ v: [Double]) -> Data {
    var d = Data()
    for x in v { withUnsafeBytes(of: x.bitPattern.littleEndian) { d.append(contentsOf: $0) } }
    return d
}

private func i64Bytes(_ v: [Int]) -> Data {
    var d = Data()
    for x in v { withUnsafeBytes(of: Int64(x).littleEndian) { d.append(contentsOf: $0) } }
    return d
}

@Suite("Statistics and detector files", .serialized)
struct StatisticsFileTests {
    @Test func statisticsRoundTripBitwiseWithAndWithoutLabels() throws {
        let dir = try temporaryDirectory("stats-file")
        defer { try? FileManager.default.removeItem(at: dir) }
        let x = try syntheticRows(rows: 300, d: 7, seed: 5, offset: 100)
        let labels = (0..<300).map { [3, -1, 8][$0 % 3] }
        var labelled = try ActivationStatistics(dimension: 7)
        try labelled.update(with: rowSlice(x, 0, 120), labels: Array(labels[0..<120]))
        try labelled.update(with: rowSlice(x, 120, 300), labels: Array(labels[120..<300]))
        let plain = try ActivationStatistics(x)
        for (name, s) in [("plain", plain), ("labelled", labelled), ("empty", try ActivationStatistics(dimension: 3))] {
            let url = dir.appendingPathComponent("\(name).safetensors")
            try s.write(to: url)
            let back = try ActivationStatistics(contentsOf: url)
            expectBitwiseEqual(back, s)
            #expect(back == s)
            let meta = try SafeTensorsReader(contentsOf: url).metadata
            #expect(meta["format"] == "lorta.activation-statistics" && meta["version"] == "1")
            #expect(meta["dimension"] == String(s.dimension) && meta["count"] == String(s.count))
        }
        #expect(try SafeTensorsReader(contentsOf: dir.appendingPathComponent("labelled.safetensors")).metadata["labels"] == "[-1,3,8]")
        // A loaded object keeps accumulating and merging exactly like the original.
        var a = try ActivationStatistics(contentsOf: dir.appendingPathComponent("labelled.safetensors"))
        var b = labelled
        let more = try syntheticRows(rows: 50, d: 7, seed: 6, offset: 100)
        let moreLabels = (0..<50).map { [3, 8][$0 % 2] }
        try a.update(with: more, labels: moreLabels)
        try b.update(with: more, labels: moreLabels)
        try a.merge(labelled)
        try b.merge(labelled)
        expectBitwiseEqual(a, b)
        // Ledoit–Wolf from the loaded moments is identical.
        let lw = try ActivationStatistics(contentsOf: dir.appendingPathComponent("plain.safetensors")).covariance(estimator: .ledoitWolf)
        #expect(lw == (try plain.covariance(estimator: .ledoitWolf)))
    }

    @Test func malformedStatisticsFilesGiveTypedErrorsNamingTheFile() throws {
        let dir = try temporaryDirectory("stats-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        let x = try syntheticRows(rows: 40, d: 3, seed: 9, offset: 0)
        var s = try ActivationStatistics(dimension: 3)
        try s.update(with: x, labels: (0..<40).map { $0 % 2 })
        let good = dir.appendingPathComponent("good.safetensors")
        try s.write(to: good)
        let bad = dir.appendingPathComponent("bad.safetensors")
        func problem(drop: Set<String> = [], replace: [String: (SafeTensorsDType, [Int], Data)] = [:],
                     metadata: [String: String?] = [:]) throws -> StatisticsFileError.Problem? {
            try rewrite(good, to: bad, drop: drop, replace: replace, metadata: metadata)
            do {
                _ = try ActivationStatistics(contentsOf: bad)
                return nil
            } catch let e as StatisticsFileError {
                #expect(e.path == bad.path && e.description.hasPrefix(bad.path + ": "))
                return e.problem
            }
        }
        let nine = [Double](repeating: 1, count: 9)
        #expect(try problem(metadata: ["format": "something-else"])
                == .wrongFormat(expected: "lorta.activation-statistics", found: "something-else"))
        #expect(try problem(metadata: ["format": nil]) == .wrongFormat(expected: "lorta.activation-statistics", found: nil))
        #expect(try problem(metadata: ["version": "2"]) == .unsupportedVersion("2"))
        #expect(try problem(metadata: ["dimension": nil]) == .missingMetadata("dimension"))
        #expect(try problem(metadata: ["dimension": "three"]) == .invalidMetadata(key: "dimension", value: "three", reason: "not an integer"))
        #expect(try problem(metadata: ["dimension": "0"]) == .invalidMetadata(key: "dimension", value: "0", reason: "outside 1...2147483647"))
        #expect(try problem(metadata: ["dimension": "4"]) == .wrongShape(tensor: "mean", expected: [4], found: [3]))
        #expect(try problem(metadata: ["labels": "[1,0]"])
                == .invalidMetadata(key: "labels", value: "[1,0]", reason: "labels must be distinct and ascending"))
        #expect(try problem(metadata: ["labels": "0,1"])
                == .invalidMetadata(key: "labels", value: "0,1", reason: "not a JSON array of integers"))
        #expect(try problem(metadata: ["count": "41"]) == .inconsistent("label counts sum to 40, but count is 41"))
        #expect(try problem(drop: ["scatter"]) == .missingTensor("scatter"))
        #expect(try problem(replace: ["extra": (.f64, [1], f64Bytes([0]))]) == .unexpectedTensor("extra"))
        #expect(try problem(replace: ["scatter": (.f32, [3, 3], Data(count: 36))])
                == .wrongDType(tensor: "scatter", expected: .f64, found: .f32))
        #expect(try problem(replace: ["scatter": (.f64, [9], f64Bytes(nine))])
                == .wrongShape(tensor: "scatter", expected: [3, 3], found: [9]))
        #expect(try problem(replace: ["mean": (.f64, [3], f64Bytes([0, .nan, 0]))]) == .nonFiniteValue(tensor: "mean"))
        var asym = nine
        asym[1] = 2
        #expect(try problem(replace: ["scatter": (.f64, [3, 3], f64Bytes(asym))])
                == .inconsistent("overall statistics: scatter is not symmetric at (1, 0)"))
        #expect(try problem(replace: ["fourth": (.f64, [], f64Bytes([-1]))]) == .inconsistent("overall statistics: negative fourth moment"))
        #expect(try problem(replace: ["label_counts": (.i64, [2], i64Bytes([0, 40]))])
                == .inconsistent("label 0 has count 0 (must be >= 1)"))
        #expect(try problem(replace: ["label_counts": (.i64, [2], i64Bytes([20, 21]))])
                == .inconsistent("label counts sum to 41, but count is 40"))
        // Not a safetensors file at all; a missing file.
        try Data("hello".utf8).write(to: bad)
        #expect(throws: StatisticsFileError(path: bad.path, problem: .safetensors(.fileTooShort(byteCount: 5)))) {
            try ActivationStatistics(contentsOf: bad)
        }
        let missing = dir.appendingPathComponent("missing.safetensors")
        #expect { try ActivationStatistics(contentsOf: missing) } throws: { e in
            guard let e = e as? StatisticsFileError, case .safetensors(.fileSystem) = e.problem else { return false }
            return e.path == missing.path
        }
        // Writing into a missing directory fails cleanly and names the file's directory.
        let nowhere = dir.appendingPathComponent("no/such/dir/s.safetensors")
        #expect { try s.write(to: nowhere) } throws: { e in
            guard let e = e as? StatisticsFileError, case .safetensors(.fileSystem) = e.problem else { return false }
            return e.path == nowhere.path
        }
        // The good file still loads.
        #expect(try ActivationStatistics(contentsOf: good) == s)
    }

    @Test func detectorsRoundTripBitwise() throws {
        let dir = try temporaryDirectory("detectors")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (x, labels) = try blobs(rows: 600, d: 5, seed: 13)
        let (q, _) = try blobs(rows: 40, d: 5, seed: 14)
        var detectors: [(String, any PersistentDetector)] = []
        for mode in MahalanobisDetector.Mode.allCases {
            for estimator in [CovarianceEstimator.empirical, .ledoitWolf, .ridge(epsilon: 0.0123)] {
                var m = MahalanobisDetector(mode: mode, estimator: estimator)
                if mode == .global { try m.fit(x) } else { try m.fit(x, labels: labels) }
                detectors.append(("maha-\(mode)-\(estimator.storedName)", m))
            }
        }
        var que = try QuantumEntropyDetector(alpha: 3.5, estimator: .oracleApproximatingShrinkage)
        try que.fit(x)
        detectors.append(("que", que))
        var spectral = SpectralSignatureDetector()
        try spectral.fit(x)
        detectors.append(("spectral", spectral))
        var pseudo = try PseudoClassDetector(modeCount: 3, seed: 11)
        try pseudo.fit(x)
        detectors.append(("pseudo", pseudo))
        for (name, det) in detectors {
            let url = dir.appendingPathComponent("\(name).safetensors")
            try det.write(to: url)
            let back = try DetectorFile.load(url)
            #expect(type(of: back) == type(of: det), "\(name)")
            #expect(bits(try back.scores(q)) == bits(try det.scores(q)), "\(name)")
            switch (det, back) {
            case (let a as MahalanobisDetector, let b as MahalanobisDetector): #expect(a == b, "\(name)")
            case (let a as QuantumEntropyDetector, let b as QuantumEntropyDetector): #expect(a == b)
            case (let a as SpectralSignatureDetector, let b as SpectralSignatureDetector): #expect(a == b)
            case (let a as PseudoClassDetector, let b as PseudoClassDetector): #expect(a == b)
            default: Issue.record("unexpected type for \(name)")
            }
        }
        // Unfitted detectors refuse to write; a statistics file is not a detector file.
        #expect(throws: StatisticsError.notFitted("MahalanobisDetector")) {
            try MahalanobisDetector().write(to: dir.appendingPathComponent("u.safetensors"))
        }
        #expect(throws: StatisticsError.notFitted("PseudoClassDetector")) {
            try PseudoClassDetector(modeCount: 2).write(to: dir.appendingPathComponent("u.safetensors"))
        }
        let statsURL = dir.appendingPathComponent("stats.safetensors")
        try ActivationStatistics(x).write(to: statsURL)
        #expect { try DetectorFile.load(statsURL) } throws: { e in
            guard let e = e as? StatisticsFileError, case .wrongFormat(_, let found) = e.problem else { return false }
            return found == "lorta.activation-statistics"
        }
        // Damaged detector files: a factor that is not lower-triangular, a bad mode index.
        let maha = dir.appendingPathComponent("maha-global-empirical.safetensors")
        let bad = dir.appendingPathComponent("bad.safetensors")
        var upper = [Double](repeating: 0, count: 25)
        for i in 0..<5 { upper[i * 5 + i] = 1 }
        upper[1] = 0.5
        try rewrite(maha, to: bad, replace: ["factor": (.f64, [5, 5], f64Bytes(upper))])
        #expect(throws: StatisticsFileError(path: bad.path, problem: .inconsistent("tensor \"factor\" is not lower-triangular at (0, 1)"))) {
            try MahalanobisDetector(contentsOf: bad)
        }
        try rewrite(maha, to: bad, metadata: ["mode": "weird"])
        #expect(throws: StatisticsFileError(path: bad.path, problem: .invalidMetadata(
            key: "mode", value: "weird", reason: "expected global, classConditional or relative"))) {
            try MahalanobisDetector(contentsOf: bad)
        }
        let pc = dir.appendingPathComponent("pseudo.safetensors")
        var assignments = pseudo.clustering!.assignments
        assignments[7] = 3
        try rewrite(pc, to: bad, replace: ["kmeans_assignments": (.i64, [600], i64Bytes(assignments))])
        #expect(throws: StatisticsFileError(path: bad.path, problem: .inconsistent("kmeans_assignments[7] = 3 is not a mode index"))) {
            try PseudoClassDetector(contentsOf: bad)
        }
    }

    @Test func estimatorNamesRoundTrip() throws {
        for e in [CovarianceEstimator.empirical, .ledoitWolf, .oracleApproximatingShrinkage, .ridge(epsilon: 0.1 + 0.2), .ridge(epsilon: 0)] {
            #expect(CovarianceEstimator(storedName: e.storedName) == e)
        }
        #expect(CovarianceEstimator(storedName: "ridge") == .ridge(epsilon: 1e-3))
        #expect(CovarianceEstimator(storedName: "ridge:-1") == nil)
        #expect(CovarianceEstimator(storedName: "ridge:nan") == nil)
        #expect(CovarianceEstimator(storedName: "lw") == nil)
    }
}

@Suite("Site score combiner")
struct SiteScoreCombinerTests {
    @Test func matchesNaiveStandardization() throws {
        // three sites on very different scales, with different trusted row counts
        let trusted: [[Double]] = [
            (0..<50).map { Double($0 % 7) * 3 + 100 },
            (0..<40).map { 1e-3 * Double(($0 * 13) % 11) },
            (0..<60).map { Double(($0 * 5) % 9) - 4 },
        ]
        let test: [[Double]] = [
            [100, 130, 90, 101.5],
            [0.002, 0.05, -0.01, 0.004],
            [0, 20, -3, 1],
        ]
        for reduction in SiteScoreCombiner.Reduction.allCases {
            let c = try SiteScoreCombiner(trustedScores: trusted, reduction: reduction)
            let out = try c.combine(test)
            for i in 0..<4 {
                var zs: [Double] = []
                for s in 0..<3 {
                    let n = Double(trusted[s].count)
                    let mu = trusted[s].reduce(0, +) / n
                    let sd = (trusted[s].map { ($0 - mu) * ($0 - mu) }.reduce(0, +) / (n - 1)).squareRoot()
                    zs.append((test[s][i] - mu) / sd)
                }
                let expected = reduction == .mean ? zs.reduce(0, +) / 3 : zs.max()!
                #expect(abs(out[i] - expected) <= 1e-12 * max(1, abs(expected)), "\(reduction) row \(i)")
            }
            // trusted scores standardize to mean 0, std 1
            for trustedSite in trusted {
                let site = try SiteScoreCombiner(trustedScores: [trustedSite]).standardized([trustedSite])[0]
                let m = site.reduce(0, +) / Double(site.count)
                let v = site.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(site.count - 1)
                #expect(abs(m) < 1e-12 && abs(v - 1) < 1e-12)
            }
        }
        // the row with the largest outlier at one site wins under max
        let c = try SiteScoreCombiner(trustedScores: trusted, reduction: .max)
        let out = try c.combine(test)
        #expect(out.firstIndex(of: out.max()!) == 1)
    }

    @Test func rejectsBadInput() throws {
        #expect(throws: StatisticsError.invalidParameter("SiteScoreCombiner needs at least one site")) {
            try SiteScoreCombiner(trustedScores: [])
        }
        #expect(throws: StatisticsError.invalidParameter("site 1: trusted scores have zero spread; cannot standardize")) {
            try SiteScoreCombiner(trustedScores: [[1, 2], [3, 3, 3]])
        }
        #expect(throws: StatisticsError.insufficientSamples(operation: "SiteScoreCombiner site 0", count: 1, required: 2)) {
            try SiteScoreCombiner(trustedScores: [[1]])
        }
        #expect(throws: StatisticsError.nonFiniteValue(operation: "SiteScoreCombiner site 0")) {
            try SiteScoreCombiner(trustedScores: [[1, .infinity]])
        }
        let c = try SiteScoreCombiner(trustedScores: [[1, 2], [3, 5]])
        #expect(throws: StatisticsError.dimensionMismatch(operation: "SiteScoreCombiner (sites)", expected: 2, actual: 1)) {
            try c.combine([[1]])
        }
        #expect(throws: StatisticsError.labelCountMismatch(rows: 2, labels: 1)) { try c.combine([[1, 2], [3]]) }
    }
}
