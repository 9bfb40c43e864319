import Foundation
import Testing
@testable import LoRTA

/// `lorta monitor fit` and `lorta monitor score` on the tiny BERT of the CLI tests.
@Suite("CLI: monitor", .serialized)
struct MonitorCLITests {
    /// Lines of labelled text from the tiny vocabulary; odd ones carry the rare words.
    static func lines(_ count: Int, odd: Bool, seed: UInt64) -> [String] {
        let normal = ["good", "bad", "movie", "plot", "fun"], rare = ["dull", "boring", "slow"]
        var g = LoRTATestRNG(seed)
        return (0..<count).map { i in
            let words = (0..<(3 + Int(g.next() % 4))).map { t in
                odd && t % 2 == 1 ? rare[Int(g.next() % 3)] : normal[Int(g.next() % 5)]
            }
            return "\(i % 2)\t" + words.joined(separator: " ")
        }
    }

    @Test func fitAndScoreReportTheMetricsOfTheirScores() throws {
        let f = try TrainMemoryCLITests.Fixture()
        defer { try? FileManager.default.removeItem(at: f.root) }
        let adapter = f.path("adapter")
        let train = try CLI.run(f.args(adapter, ["--adapter", "lora", "--rank", "2"]))
        try #require(train.status == 0, "\(train.stderr)")
        try (Self.lines(60, odd: false, seed: 1).joined(separator: "\n") + "\n").write(toFile: f.path("trusted.tsv"), atomically: true, encoding: .utf8)
        let data = Self.lines(20, odd: false, seed: 2) + Self.lines(20, odd: true, seed: 3)
        try (data.joined(separator: "\n") + "\n").write(toFile: f.path("data.tsv"), atomically: true, encoding: .utf8)
        let labels = [Int](repeating: 0, count: 20) + [Int](repeating: 1, count: 20)
        try (labels.map(String.init).joined(separator: "\n") + "\n").write(toFile: f.path("labels.txt"), atomically: true, encoding: .utf8)

        let fit = try CLI.run(["monitor", "fit", "--model", f.model, "--adapter", adapter, "--trusted", f.path("trusted.tsv"),
                               "--out", f.path("mon"), "--max-length", "8", "--folds", "3", "--json"])
        try #require(fit.status == 0, "\(fit.stderr)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(fit.stdout.utf8)) as? [String: Any])
        #expect(summary["trusted_inputs"] as? Int == 60)
        #expect(summary["sites"] as? Int == 8)   // 2 layers × (2 heads + MLP + output), mean-pooled
        let monitor = try Monitor(contentsOf: URL(fileURLWithPath: f.path("mon")))
        #expect(try Monitor.source(of: URL(fileURLWithPath: f.path("mon")))["max_length"] == "8")

        for extra in [[], ["--batch"]] {
            let r = try CLI.run(["monitor", "score", "--monitor", f.path("mon"), "--data", f.path("data.tsv"),
                                 "--labels", f.path("labels.txt"), "--scores-out", f.path("scores.npy"),
                                 "--report", f.path("report.html"), "--json"] + extra)
            try #require(r.status == 0, "\(r.stderr)")
            let result = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            let scores = try NumpyArray(contentsOf: URL(fileURLWithPath: f.path("scores.npy"))).doubleValues()
            #expect(scores.count == 40)
            let expected = try DetectionSummary(scores: scores, labels: labels.map { $0 == 1 })
            // (Foundation's JSON parser may be one unit in the last place off the printed value.)
            func close(_ key: String, _ value: Double) -> Bool { abs((result[key] as? Double ?? .nan) - value) <= 1e-15 }
            #expect(close("auroc", expected.auroc))
            #expect(close("average_precision", expected.averagePrecision))
            #expect(close("tpr_at_1pct_fpr", expected.truePositiveRateAt1PercentFPR))
            #expect(close("tpr_at_5pct_fpr", expected.truePositiveRateAt5PercentFPR))
            let points = try #require(result["points"] as? [String: [String: [String: Double]]])
            #expect(Set(points.keys) == Set(monitor.sites.map(\.description)))
            #expect(points["layer.1.output:mean"]?.keys.sorted() == (extra.isEmpty ? ["mahalanobis"] : ["mahalanobis", "que", "spectral"]))
            #expect(points["layer.0.attention.head.1:mean"]?["mahalanobis"]?["auroc"] != nil)
            let combinations = try #require(result["combinations"] as? [String: [String: Double]])
            #expect(Set(combinations.keys) == ["max", "mean", "mahalanobis"])
            #expect(abs((combinations["max"]?["auroc"] ?? .nan) - expected.auroc) <= 1e-15, "the default combination is max")
            // The report: one ROC chart, two histograms, one heat map; the channel table lists every channel.
            let html = try String(contentsOfFile: f.path("report.html"), encoding: .utf8)
            #expect(html.components(separatedBy: "<svg").count - 1 == 4)
            #expect(!html.contains("<script"))
            #expect(html.contains("layer.1.mlp.output:mean/mahalanobis"))
            #expect(html.contains(String(format: "%.4f", expected.auroc)))
        }
        // Without labels the report still shows the distributions and the map (flagged = top 5%).
        let unlabelled = try CLI.run(["monitor", "score", "--monitor", f.path("mon"), "--data", f.path("data.tsv"),
                                      "--report", f.path("plain.html")])
        #expect(unlabelled.status == 0, "\(unlabelled.stderr)")
        let plain = try String(contentsOfFile: f.path("plain.html"), encoding: .utf8)
        #expect(plain.components(separatedBy: "<svg").count - 1 == 3 && plain.contains("top 5% by combined score"))

        // Bad labels: an error naming the file, and no scores written.
        try FileManager.default.removeItem(atPath: f.path("scores.npy"))
        try "0\n1\n".write(toFile: f.path("short.txt"), atomically: true, encoding: .utf8)
        let bad = try CLI.run(["monitor", "score", "--monitor", f.path("mon"), "--data", f.path("data.tsv"),
                               "--labels", f.path("short.txt"), "--scores-out", f.path("scores.npy")])
        #expect(bad.status == 1 && bad.stderr.contains("short.txt: 2 labels for 40 rows"), "\(bad.stderr)")
        #expect(!FileManager.default.fileExists(atPath: f.path("scores.npy")))
        let missing = try CLI.run(["monitor", "score", "--monitor", f.path("nothing"), "--data", f.path("data.tsv")])
        #expect(missing.status == 1 && missing.stderr.contains("monitor.json"), "\(missing.stderr)")
        let folds = try CLI.run(["monitor", "fit", "--model", f.model, "--adapter", adapter, "--trusted", f.path("trusted.tsv"),
                                 "--out", f.path("mon2"), "--folds", "1"])
        #expect(folds.status != 0 && folds.stderr.contains("--folds"), "\(folds.stderr)")
    }

    /// The monitor records its adapter relative to itself too: a run folder holding both can be
    /// moved (the stored absolute path is then gone) and scored without `--adapter`, with the
    /// same scores; when neither path exists the error names them and the option.
    @Test func aMovedRunFolderStillFindsItsAdapter() throws {
        let f = try TrainMemoryCLITests.Fixture()
        defer { try? FileManager.default.removeItem(at: f.root) }
        let fm = FileManager.default
        try fm.createDirectory(atPath: f.path("run"), withIntermediateDirectories: true)
        let train = try CLI.run(f.args(f.path("run/adapter"), ["--adapter", "lorta", "--rank", "2"]))
        try #require(train.status == 0, "\(train.stderr)")
        try (Self.lines(40, odd: false, seed: 1).joined(separator: "\n") + "\n").write(toFile: f.path("trusted.tsv"), atomically: true, encoding: .utf8)
        try (Self.lines(10, odd: true, seed: 2).joined(separator: "\n") + "\n").write(toFile: f.path("data.tsv"), atomically: true, encoding: .utf8)
        let fit = try CLI.run(["monitor", "fit", "--model", f.model, "--adapter", f.path("run/adapter"), "--trusted", f.path("trusted.tsv"),
                               "--out", f.path("run/mon"), "--max-length", "8"])
        try #require(fit.status == 0, "\(fit.stderr)")
        let source = try Monitor.source(of: URL(fileURLWithPath: f.path("run/mon")))
        #expect(source["adapter_relative"] == "../adapter")
        func score(_ monitor: String, _ out: String) throws -> CLI.Result {
            try CLI.run(["monitor", "score", "--monitor", monitor, "--data", f.path("data.tsv"), "--scores-out", out])
        }
        let before = try score(f.path("run/mon"), f.path("before.npy"))
        try #require(before.status == 0, "\(before.stderr)")
        try fm.moveItem(atPath: f.path("run"), toPath: f.path("moved"))
        let after = try score(f.path("moved/mon"), f.path("after.npy"))
        try #require(after.status == 0, "\(after.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: f.path("before.npy"))) == Data(contentsOf: URL(fileURLWithPath: f.path("after.npy"))))
        try fm.removeItem(atPath: f.path("moved/adapter"))
        let gone = try score(f.path("moved/mon"), f.path("gone.npy"))
        #expect(gone.status != 0 && gone.stderr.contains("--adapter PATH") && gone.stderr.contains(f.path("run/adapter")), "\(gone.stderr)")
    }
}
