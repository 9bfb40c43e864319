import Foundation
import Testing
@testable import LoRTA

/// `lorta stats fit|merge` and `lorta detect` on small files, compared bitwise with the library.
@Suite("CLI: stats and detect", .serialized)
struct StatsCLITests {
    struct Files {
        let dir: URL
        let x: Tensor, classes: [Int], z: Tensor, truth: [Int]
        func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
        func url(_ name: String) -> URL { dir.appendingPathComponent(name) }
    }

    /// Trusted rows (3 classes), scored rows (30 normal then 10 shifted), written as .npy and CSV.
    static func makeFiles() throws -> Files {
        let dir = try temporaryDirectory("cli-stats")
        let (x, classes) = try blobs(rows: 240, d: 4, seed: 71)
        let (normal, _) = try blobs(rows: 30, d: 4, seed: 72)
        let shifted = try syntheticRows(rows: 10, d: 4, seed: 73, offset: 9)
        let z = try Tensor(normal.scalars + shifted.scalars, shape: [40, 4])
        let truth = [Int](repeating: 0, count: 30) + [Int](repeating: 1, count: 10)
        let f = Files(dir: dir, x: x, classes: classes, z: z, truth: truth)
        try NumpyWriter.write(x, to: f.url("x.npy"))
        try CSVMatrix.write(x.scalars.map(Double.init), rows: 240, columns: 4, to: f.url("x.csv"))
        try NumpyWriter.write(labels: classes, to: f.url("classes.npy"))
        try NumpyWriter.write(z, to: f.url("z.npy"))
        try NumpyWriter.write(labels: truth, to: f.url("truth.npy"))
        return f
    }

    static func readScores(_ url: URL) throws -> [Double] {
        try NumpyArray(contentsOf: url).doubleValues()
    }

    @Test func statsFitAndMergeMatchTheLibraryBitwise() throws {
        let f = try Self.makeFiles()
        defer { try? FileManager.default.removeItem(at: f.dir) }
        var expected = try ActivationStatistics(dimension: 4)
        try expected.update(with: f.x, labels: f.classes)
        for input in ["x.npy", "x.csv"] {
            let r = try CLI.run(["stats", "fit", "--data", f.path(input), "--labels", f.path("classes.npy"), "--out", f.path("s.safetensors")])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stderr.contains("240 rows, dimension 4, 3 labels"))
            #expect(try ActivationStatistics(contentsOf: f.url("s.safetensors")) == expected, "\(input)")
        }
        // Two shards merged by the CLI = the library's merge of the same shards.
        try NumpyWriter.write(try rowSlice(f.x, 0, 100), to: f.url("a.npy"))
        try NumpyWriter.write(try rowSlice(f.x, 100, 240), to: f.url("b.npy"))
        for name in ["a", "b"] {
            let r = try CLI.run(["stats", "fit", "--data", f.path("\(name).npy"), "--out", f.path("\(name).safetensors")])
            #expect(r.status == 0, "\(r.stderr)")
        }
        let r = try CLI.run(["stats", "merge", f.path("a.safetensors"), f.path("b.safetensors"), "--out", f.path("ab.safetensors"), "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(summary["count"] as? Int == 240 && summary["dimension"] as? Int == 4)
        let merged = try ActivationStatistics(rowSlice(f.x, 0, 100)).merged(with: ActivationStatistics(rowSlice(f.x, 100, 240)))
        #expect(try ActivationStatistics(contentsOf: f.url("ab.safetensors")) == merged)
        // --time reports both timings on stderr, and the JSON summary carries them.
        let t = try CLI.run(["stats", "fit", "--data", f.path("x.npy"), "--out", f.path("t.safetensors"), "--time", "--json"])
        #expect(t.status == 0 && t.stderr.contains("time: read ") && t.stderr.contains(" s, update "))
        let tj = try #require(try JSONSerialization.jsonObject(with: Data(t.stdout.utf8)) as? [String: Any])
        #expect((tj["update_seconds"] as? Double).map { $0 >= 0 } == true)
        // Merging statistics of different dimensions fails and names the file.
        try NumpyWriter.write(try Tensor(zeros: [5, 3]), to: f.url("c.npy"))
        _ = try CLI.run(["stats", "fit", "--data", f.path("c.npy"), "--out", f.path("c.safetensors")])
        let bad = try CLI.run(["stats", "merge", f.path("a.safetensors"), f.path("c.safetensors"), "--out", f.path("x.safetensors")])
        #expect(bad.status == 1 && bad.stderr.contains(f.path("c.safetensors") + ": ") && bad.stderr.contains("expected dimension 4, got 3"))
        #expect(!FileManager.default.fileExists(atPath: f.path("x.safetensors")))
    }

    @Test func detectScoresEqualTheLibraryAndMetricsArePrinted() throws {
        let f = try Self.makeFiles()
        defer { try? FileManager.default.removeItem(at: f.dir) }
        let r0 = try CLI.run(["stats", "fit", "--data", f.path("x.npy"), "--labels", f.path("classes.npy"), "--out", f.path("s.safetensors")])
        #expect(r0.status == 0, "\(r0.stderr)")
        var stats = try ActivationStatistics(dimension: 4)
        try stats.update(with: f.x, labels: f.classes)

        var maha = MahalanobisDetector(mode: .global, estimator: .ledoitWolf)
        try maha.fit(statistics: stats)
        var rel = MahalanobisDetector(mode: .relative, estimator: .ridge(epsilon: 0.01))
        try rel.fit(statistics: stats)
        var cls = MahalanobisDetector(mode: .classConditional, estimator: .empirical)
        try cls.fit(statistics: stats)
        var que = try QuantumEntropyDetector(alpha: 2, estimator: .oracleApproximatingShrinkage)
        try que.fit(statistics: stats)
        let spectral = SpectralSignatureDetector()
        var pseudo = try PseudoClassDetector(modeCount: 3, seed: 5, estimator: .ledoitWolf)
        try pseudo.fit(f.x)

        let cases: [([String], [Double])] = [
            (["--method", "mahalanobis", "--estimator", "ledoit-wolf", "--trusted", f.path("s.safetensors")], try maha.scores(f.z)),
            (["--method", "mahalanobis", "--estimator", "ledoit-wolf", "--trusted", f.path("x.csv")], try maha.scores(f.z)),
            (["--method", "relative-mahalanobis", "--estimator", "ridge", "--ridge-epsilon", "0.01", "--trusted", f.path("s.safetensors")], try rel.scores(f.z)),
            (["--method", "class-mahalanobis", "--trusted", f.path("x.npy"), "--trusted-labels", f.path("classes.npy")], try cls.scores(f.z)),
            (["--method", "que", "--alpha", "2", "--estimator", "oas", "--trusted", f.path("s.safetensors")], try que.scores(f.z)),
            (["--method", "spectral", "--trusted", f.path("x.npy")], try spectral.scores(f.z)),
            (["--method", "pseudo-class", "--modes", "3", "--seed", "5", "--trusted", f.path("x.npy")], try pseudo.scores(f.z)),
        ]
        let truth = f.truth.map { $0 == 1 }
        for (args, expected) in cases {
            let r = try CLI.run(["detect"] + args + ["--data", f.path("z.npy"), "--labels", f.path("truth.npy"), "--scores-out", f.path("scores.npy")])
            #expect(r.status == 0, "\(args): \(r.stderr)")
            let got = try Self.readScores(f.url("scores.npy"))
            #expect(got.map(\.bitPattern) == expected.map(\.bitPattern), "\(args)")
            // metrics on stdout, computed on the same scores
            let lines = Dictionary(uniqueKeysWithValues: r.stdout.split(separator: "\n").map { l -> (String, Double) in
                let p = l.split(separator: " ")
                return (String(p[0]), Double(p[1]) ?? .nan)
            })
            #expect(lines["auroc"] == (try DetectionMetrics.auroc(scores: expected, labels: truth)), "\(args)")
            #expect(lines["average_precision"] == (try DetectionMetrics.averagePrecision(scores: expected, labels: truth)))
            #expect(lines["tpr_at_5_fpr"] == (try DetectionMetrics.truePositiveRate(atFalsePositiveRate: 0.05, scores: expected, labels: truth)))
        }
        // CSV scores, then JSON with the scores inline.
        let c = try CLI.run(["detect", "--method", "mahalanobis", "--estimator", "ledoit-wolf", "--trusted", f.path("s.safetensors"),
                             "--data", f.path("z.npy"), "--scores-out", f.path("scores.txt")])
        #expect(c.status == 0 && c.stdout.isEmpty)
        let csv = try CSVMatrix.read(contentsOf: f.url("scores.txt"))
        let mahaScores = try maha.scores(f.z)
        #expect(csv.columns == 1 && csv.values.map(\.bitPattern) == mahaScores.map(\.bitPattern))
        let j = try CLI.run(["detect", "--method", "mahalanobis", "--estimator", "ledoit-wolf", "--trusted", f.path("s.safetensors"),
                             "--data", f.path("z.npy"), "--labels", f.path("truth.npy"), "--json"])
        #expect(j.status == 0, "\(j.stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as? [String: Any])
        // exact float64 values (JSONDecoder parses exactly; JSONSerialization on Linux does not)
        struct Output: Decodable { let scores: [Double]; let auroc: Double }
        let decoded = try JSONDecoder().decode(Output.self, from: Data(j.stdout.utf8))
        #expect(decoded.scores.map(\.bitPattern) == mahaScores.map(\.bitPattern))
        #expect(decoded.auroc == (try DetectionMetrics.auroc(scores: mahaScores, labels: truth)))
        #expect(obj["method"] as? String == "mahalanobis" && obj["estimator"] as? String == "ledoit-wolf" && obj["rows"] as? Int == 40)
        // Without --scores-out or --json the scores are printed, one per line.
        let p = try CLI.run(["detect", "--method", "spectral", "--trusted", f.path("x.npy"), "--data", f.path("z.npy")])
        #expect(p.stdout.split(separator: "\n").map { Double($0)! } == (try spectral.scores(f.z)))
    }

    @Test func detectErrorsNameTheFile() throws {
        let f = try Self.makeFiles()
        defer { try? FileManager.default.removeItem(at: f.dir) }
        _ = try CLI.run(["stats", "fit", "--data", f.path("x.npy"), "--out", f.path("plain.safetensors")])
        func fails(_ args: [String], _ file: String, _ fragment: String) throws {
            let r = try CLI.run(["detect"] + args)
            #expect(r.status == 1, "\(args)")
            #expect(r.stderr.contains("error: \(f.path(file)): ") && r.stderr.contains(fragment), "\(args): \(r.stderr)")
        }
        try fails(["--method", "pseudo-class", "--trusted", f.path("plain.safetensors"), "--data", f.path("z.npy")],
                  "plain.safetensors", "needs the trusted rows")
        try fails(["--method", "relative-mahalanobis", "--trusted", f.path("plain.safetensors"), "--data", f.path("z.npy")],
                  "plain.safetensors", "fit the statistics with `lorta stats fit --labels`")
        try fails(["--method", "class-mahalanobis", "--trusted", f.path("x.npy"), "--data", f.path("z.npy")],
                  "x.npy", "pass --trusted-labels")
        try Data("not numpy".utf8).write(to: f.url("broken.npy"))
        try fails(["--method", "mahalanobis", "--trusted", f.path("x.npy"), "--data", f.path("broken.npy")],
                  "broken.npy", "does not start with the magic")
        try Data("1,2\n3,x\n".utf8).write(to: f.url("broken.csv"))
        try fails(["--method", "mahalanobis", "--trusted", f.path("broken.csv"), "--data", f.path("z.npy")],
                  "broken.csv", "line 2, column 2: not a number")
        try Data("not safetensors".utf8).write(to: f.url("broken.safetensors"))
        try fails(["--method", "mahalanobis", "--trusted", f.path("broken.safetensors"), "--data", f.path("z.npy")],
                  "broken.safetensors", "safetensors header length")
        try NumpyWriter.write(try Tensor(zeros: [3, 5]), to: f.url("wide.npy"))
        try fails(["--method", "mahalanobis", "--trusted", f.path("x.npy"), "--data", f.path("wide.npy")],
                  "wide.npy", "rows have 5 features, the trusted data 4")
        try NumpyWriter.write(labels: [Int](repeating: 2, count: 40), to: f.url("twos.npy"))
        try fails(["--method", "mahalanobis", "--trusted", f.path("x.npy"), "--data", f.path("z.npy"), "--labels", f.path("twos.npy")],
                  "twos.npy", "expected 0 (normal) or 1 (anomalous)")
        try NumpyWriter.write([Float(1), .nan, 3, 4], shape: [1, 4], to: f.url("nan.npy"))
        try fails(["--method", "mahalanobis", "--trusted", f.path("x.npy"), "--data", f.path("nan.npy")],
                  "nan.npy", "NaN or infinite")
        try fails(["--method", "mahalanobis", "--trusted", f.path("x.npy"), "--data", f.path("z.npy"), "--scores-out", f.path("s.bin")],
                  "s.bin", "unsupported file type")
        try NumpyWriter.write([Float](), shape: [3, 0], to: f.url("empty.npy"))
        try fails(["--method", "mahalanobis", "--trusted", f.path("empty.npy"), "--data", f.path("z.npy")],
                  "empty.npy", "the matrix has no columns")
        try fails(["--method", "mahalanobis", "--trusted", f.path("missing.npy"), "--data", f.path("z.npy")],
                  "missing.npy", "cannot read")
        // Singular covariance: a constant column with the empirical estimator.
        var rows = f.x.scalars
        for i in 0..<240 { rows[i * 4 + 2] = 1 }
        try NumpyWriter.write(rows, shape: [240, 4], to: f.url("singular.npy"))
        let s = try CLI.run(["detect", "--method", "mahalanobis", "--trusted", f.path("singular.npy"), "--data", f.path("z.npy")])
        #expect(s.status == 1 && s.stderr.contains("not positive definite"))
        let ok = try CLI.run(["detect", "--method", "mahalanobis", "--estimator", "ledoit-wolf", "--trusted", f.path("singular.npy"),
                              "--data", f.path("z.npy"), "--json"])
        #expect(ok.status == 0, "\(ok.stderr)")
    }
}
