import Foundation
import Testing
@testable import LoRTA

/// `lorta` on small hostile inputs that ask for huge memory: a clear error naming the request,
/// its size and the budget, exit status 1, and no output file. Budgets are explicit
/// (`--max-memory`, `LORTA_MAX_MEMORY`): nothing large is allocated.
@Suite("CLI: memory budget", .serialized)
struct MemoryCLITests {
    static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    /// 2 × 200,000 float32 rows: a 1.6 MB .npy whose statistics need a 298 GiB matrix.
    static func writeWide(_ url: URL) throws {
        let x = try Tensor(shape: [2, 200_000]) { o in for i in 0..<o.count { o[i] = Float(i % 13) - Float(i % 7) } }
        try NumpyWriter.write(x, to: url)
    }

    @Test func wideMatrixIsRefusedByStatsAndCovarianceDetectors() throws {
        let dir = try testScratchDirectory("cli-memory-wide")
        defer { try? FileManager.default.removeItem(at: dir) }
        let wide = dir.appendingPathComponent("wide.npy").path, out = dir.appendingPathComponent("s.safetensors").path
        try Self.writeWide(URL(fileURLWithPath: wide))
        let message = "statistics of 200000 features need a 200000×200000 float64 co-moment matrix: 298 GiB, more than the 1.00 GiB memory budget"

        let fit = try CLI.run(["stats", "fit", "--data", wide, "--out", out, "--max-memory", "1G"])
        #expect(fit.status == 1)
        #expect(fit.stderr == "error: \(message) (--max-memory 1G; change it with --max-memory or LORTA_MAX_MEMORY)\n")
        #expect(!Self.exists(out))

        let scores = dir.appendingPathComponent("scores.npy").path
        for method in ["mahalanobis", "que"] {
            let r = try CLI.run(["detect", "--method", method, "--trusted", wide, "--data", wide, "--scores-out", scores],
                                environment: ["LORTA_MAX_MEMORY": "1G"])
            #expect(r.status == 1, "\(method)")
            #expect(r.stderr.contains("error: \(message) (LORTA_MAX_MEMORY=1G; change it"), "\(method): \(r.stderr)")
            #expect(!Self.exists(scores))
        }
        // --max-memory wins over LORTA_MAX_MEMORY.
        let both = try CLI.run(["stats", "fit", "--data", wide, "--out", out, "--max-memory", "2G"], environment: ["LORTA_MAX_MEMORY": "1G"])
        #expect(both.stderr.contains("the 2.00 GiB memory budget (--max-memory 2G;"), "\(both.stderr)")

        // The spectral signature needs no d × d matrix: 2 rows fit in 64 MiB.
        let spectral = try CLI.run(["detect", "--method", "spectral", "--trusted", wide, "--data", wide, "--scores-out", scores,
                                    "--max-memory", "64M"])
        #expect(spectral.status == 0, "\(spectral.stderr)")
        #expect(try NumpyArray(contentsOf: URL(fileURLWithPath: scores)).doubleValues().count == 2)
    }

    @Test func oneLineCSVWithAMillionColumnsIsRefused() throws {
        let dir = try testScratchDirectory("cli-memory-csv")
        defer { try? FileManager.default.removeItem(at: dir) }
        let csv = dir.appendingPathComponent("wide.csv"), out = dir.appendingPathComponent("s.safetensors").path
        try Data((String(repeating: "1,", count: 999_999) + "2\n").utf8).write(to: csv)
        let r = try CLI.run(["stats", "fit", "--data", csv.path, "--out", out, "--max-memory", "1G"])
        #expect(r.status == 1)
        #expect(r.stderr.hasPrefix("error: statistics of 1000000 features need a 1000000×1000000 float64 co-moment matrix: 7.28 TiB, more than the 1.00 GiB"),
                "\(r.stderr)")
        #expect(!Self.exists(out))
    }

    @Test func hundredsOfLabelsAreRefusedAsAWhole() throws {
        let dir = try testScratchDirectory("cli-memory-labels")
        defer { try? FileManager.default.removeItem(at: dir) }
        let x = dir.appendingPathComponent("x.npy"), y = dir.appendingPathComponent("y.npy")
        try NumpyWriter.write(try syntheticRows(rows: 600, d: 64, seed: 3, offset: 0), to: x)
        try NumpyWriter.write(labels: (0..<600).map { $0 % 300 }, to: y)
        let out = dir.appendingPathComponent("s.safetensors").path
        let expected = "error: statistics of 64 features for 300 labels need 301 float64 64×64 co-moment matrices (one per label, one overall): "
            + "9.70 MiB, more than the 8.00 MiB memory budget (--max-memory 8M; change it with --max-memory or LORTA_MAX_MEMORY)\n"
        let fit = try CLI.run(["stats", "fit", "--data", x.path, "--labels", y.path, "--out", out, "--max-memory", "8M"])
        #expect(fit.status == 1)
        #expect(fit.stderr == expected)
        #expect(!Self.exists(out))
        let detect = try CLI.run(["detect", "--method", "class-mahalanobis", "--trusted", x.path, "--trusted-labels", y.path,
                                  "--data", x.path, "--max-memory", "8M"])
        #expect(detect.status == 1)
        #expect(detect.stderr == expected)
        // The same command with enough memory succeeds.
        let ok = try CLI.run(["stats", "fit", "--data", x.path, "--labels", y.path, "--out", out, "--max-memory", "16M"])
        #expect(ok.status == 0, "\(ok.stderr)")
    }

    @Test func unparsableBudgetsAreUsageErrors() throws {
        let r = try CLI.run(["stats", "fit", "--data", "x.npy", "--out", "s.safetensors", "--max-memory", "lots"])
        #expect(r.status == 64)
        #expect(r.stderr.contains("--max-memory \"lots\" is not a memory size: use bytes or a number with K, M, G or T (powers of 1024), e.g. 512M or 4G"))
        let env = try CLI.run(["stats", "fit", "--data", "x.npy", "--out", "s.safetensors"], environment: ["LORTA_MAX_MEMORY": "lots"])
        #expect(env.status == 1)
        #expect(env.stderr == "error: LORTA_MAX_MEMORY \"lots\" is not a memory size: use bytes or a number with K, M, G or T (powers of 1024), e.g. 512M or 4G\n")
    }

    @Test func detectWithSingleClassTruthWritesNothing() throws {
        let dir = try testScratchDirectory("cli-memory-truth")
        defer { try? FileManager.default.removeItem(at: dir) }
        let x = dir.appendingPathComponent("x.npy"), truth = dir.appendingPathComponent("truth.npy")
        try NumpyWriter.write(try syntheticRows(rows: 40, d: 3, seed: 4, offset: 0), to: x)
        try NumpyWriter.write(labels: [Int](repeating: 1, count: 40), to: truth)
        let scores = dir.appendingPathComponent("scores.csv").path
        let r = try CLI.run(["detect", "--method", "mahalanobis", "--trusted", x.path, "--data", x.path, "--labels", truth.path,
                             "--scores-out", scores])
        #expect(r.status == 1)
        #expect(r.stderr.contains("error: \(truth.path): the metrics need both anomalous (1) and normal (0) rows; every label is 1"), "\(r.stderr)")
        #expect(!Self.exists(scores))
        #expect(r.stdout.isEmpty)
    }
}

/// `lorta train` with sizes beyond the memory budget, from the command line or from a
/// checkpoint's adapter configuration: the adapter, head and tensor constructors refuse them
/// (under `LORTA_MAX_MEMORY` or `--max-memory`). Sizes beyond the options' ranges are refused
/// earlier, by the range checks (TrainCLITests).
@Suite("CLI: memory budget of train", .serialized)
struct TrainMemoryCLITests {
    struct Fixture {
        let root: URL
        var model: String { root.appendingPathComponent("model").path }
        var train: String { root.appendingPathComponent("train.tsv").path }
        func path(_ name: String) -> String { root.appendingPathComponent(name).path }

        init() throws {
            root = try testScratchDirectory("cli-memory-train")
            try tinyBertWrite(to: root.appendingPathComponent("model"))
            let vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "good", "bad", "movie", "plot", "fun", "dull", "boring", "slow"]
            try (vocab.joined(separator: "\n") + "\n").write(to: root.appendingPathComponent("model/vocab.txt"), atomically: true, encoding: .utf8)
            let lines = (0..<16).map { i in i % 2 == 0 ? "1\tgood fun movie" : "0\tbad dull plot" }
            try (lines.joined(separator: "\n") + "\n").write(toFile: train, atomically: true, encoding: .utf8)
        }

        func args(_ out: String, _ extra: [String]) -> [String] {
            ["train", "--model", model, "--train", train, "--steps", "2", "--batch-size", "4", "--max-length", "8", "--seed", "7",
             "--out", out, "--quiet"] + extra
        }
    }

    static let budget = ["LORTA_MAX_MEMORY": "256M"]

    @Test func absurdRankOrClassCountIsAnError() throws {
        let f = try Fixture()
        defer { try? FileManager.default.removeItem(at: f.root) }
        let cases: [([String], String)] = [
            (["--adapter", "lora", "--rank", "65536"], "error: LoRA of rank 65536 on 4 projections × 2 layers needs its float32 factors"),
            (["--adapter", "lorta", "--rank", "65536"], "error: LoRTA of rank 65536 needs its float32 factors"),
            (["--adapter", "none", "--classes", "1000000"], "error: a classification head of 1000000 classes on 8 features needs"),
        ]
        for (extra, prefix) in cases {
            let r = try CLI.run(f.args(f.path("out"), extra + ["--max-memory", "1M"]))
            #expect(r.status == 1, "\(extra)")
            #expect(r.stderr.hasPrefix(prefix) && r.stderr.contains("more than the 1.00 MiB memory budget (--max-memory 1M"),
                    "\(extra): \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: f.path("out")), "a refused run leaves no output directory")
            let env = try CLI.run(f.args(f.path("out"), extra), environment: ["LORTA_MAX_MEMORY": "1M"])
            #expect(env.status == 1 && env.stderr.contains("more than the 1.00 MiB memory budget (LORTA_MAX_MEMORY=1M;"), "\(env.stderr)")
        }
    }

    /// A checkpoint whose adapter configuration claims a huge rank: resuming is refused with a
    /// clear error naming the file (its tensors are checked against the configuration before
    /// anything of that size is allocated), and no output is written.
    @Test func absurdRankInACheckpointIsAnError() throws {
        let f = try Fixture()
        defer { try? FileManager.default.removeItem(at: f.root) }
        let first = try CLI.run(f.args(f.path("out"), ["--adapter", "lora", "--rank", "2"]))
        try #require(first.status == 0, "\(first.stderr)")
        let config = URL(fileURLWithPath: f.path("out/checkpoint/adapter/adapter_config.json"))
        var object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: config)) as? [String: Any])
        #expect(object["r"] as? Int == 2)
        object["r"] = 2_000_000_000
        try JSONSerialization.data(withJSONObject: object).write(to: config)
        let r = try CLI.run(f.args(f.path("out2"), ["--resume", f.path("out/checkpoint"), "--steps", "3"]), environment: Self.budget)
        #expect(r.status == 1)
        #expect(r.stderr.contains("adapter_model.safetensors") && r.stderr.contains("has rank 2, adapter_config.json says r = 2000000000"),
                "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: f.path("out2")))
    }
}
