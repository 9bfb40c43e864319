import Foundation
import Testing
@testable import LoRTA

/// A model directory with the tiny BERT, its vocabulary, and small data files.
private struct TrainCLIFixture {
    let root: URL
    var model: URL { root.appendingPathComponent("model") }
    var train: URL { root.appendingPathComponent("train.tsv") }
    var eval: URL { root.appendingPathComponent("eval.tsv") }
    func path(_ name: String) -> String { root.appendingPathComponent(name).path }

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("lorta-train-cli-\(UUID().uuidString)")
        let fm = FileManager.default
        try fm.createDirectory(at: root.appendingPathComponent("model"), withIntermediateDirectories: true)
        try tinyBertWrite(to: root.appendingPathComponent("model"))
        let vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "good", "bad", "movie", "plot", "fun", "dull", "boring", "slow"]
        try (vocab.joined(separator: "\n") + "\n").write(to: root.appendingPathComponent("model/vocab.txt"), atomically: true, encoding: .utf8)
        let positive = ["good", "fun"], negative = ["bad", "dull", "boring", "slow"], neutral = ["movie", "plot"]
        var lines: [String] = []
        for i in 0..<40 {
            let label = i % 2
            let words = [(label == 1 ? positive : negative)[i % (label == 1 ? 2 : 4)], neutral[i % 2]]
                + (i % 3 == 0 ? [neutral[(i + 1) % 2]] : [])
            lines.append("\(label)\t\(words.joined(separator: " "))")
        }
        try (lines[0..<32].joined(separator: "\n") + "\n").write(to: train, atomically: true, encoding: .utf8)
        try (lines[32...].joined(separator: "\n") + "\n").write(to: eval, atomically: true, encoding: .utf8)
    }

    func trainArgs(_ out: String, adapter: String = "lora", steps: Int = 6, extra: [String] = []) -> [String] {
        ["train", "--model", model.path, "--train", train.path, "--adapter", adapter, "--rank", "2", "--alpha", "4",
         "--steps", "\(steps)", "--batch-size", "4", "--max-length", "8", "--seed", "7", "--lr", "0.01",
         "--out", out, "--quiet"] + extra
    }

    func json(_ r: CLI.Result) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    }

    func data(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }
}

@Suite(.serialized) struct TrainCLITests {
    /// `lorta train` writes the adapter (PEFT layout for LoRA, LoRTA layout), the head, a
    /// checkpoint and a summary; `lorta eval` on the output reproduces the evaluation.
    @Test(arguments: ["lora", "lorta", "none"]) func trainWritesFilesAndEvalAgrees(adapter: String) throws {
        let f = try TrainCLIFixture()
        defer { try? FileManager.default.removeItem(at: f.root) }
        let out = f.path("out-\(adapter)")
        let r = try CLI.run(f.trainArgs(out, adapter: adapter, extra: ["--eval", f.eval.path, "--json"]))
        #expect(r.status == 0, "\(r.stderr)")
        let summary = try f.json(r)
        #expect(summary["steps"] as? Int == 6)
        #expect(summary["adapter"] as? String == adapter)
        let fm = FileManager.default
        for name in ["classifier.safetensors", "training_summary.json", "checkpoint"] {
            #expect(fm.fileExists(atPath: out + "/" + name), "\(name)")
        }
        #expect(fm.fileExists(atPath: out + "/adapter_config.json") == (adapter != "none"))
        if adapter == "lora" {
            let keys = try SafeTensorsReader(contentsOf: URL(fileURLWithPath: out + "/adapter_model.safetensors")).names
            #expect(keys.contains("base_model.model.encoder.layer.0.attention.self.query.lora_A.weight"))
            #expect(keys.contains("base_model.model.encoder.layer.1.attention.output.dense.lora_B.weight"))
        }
        let e = try CLI.run(["eval", "--model", f.model.path, "--adapter", out, "--data", f.eval.path, "--max-length", "8", "--json"])
        #expect(e.status == 0, "\(e.stderr)")
        let ej = try f.json(e)
        #expect(ej["accuracy"] as? Double == summary["eval_accuracy"] as? Double)
        #expect(ej["loss"] as? Double == summary["eval_loss"] as? Double)
        #expect(ej["examples"] as? Int == 8)
    }

    /// 6 steps in one go and 3 + resume to 6 give byte-identical adapter and head files, the
    /// resumed run reporting 3 steps run; a further resume with `--epochs` counts epochs of the
    /// checkpoint's batch size.
    @Test(arguments: ["lora", "lorta"]) func resumeIsExact(adapter: String) throws {
        let f = try TrainCLIFixture()
        defer { try? FileManager.default.removeItem(at: f.root) }
        let straight = f.path("straight"), split = f.path("split")
        #expect(try CLI.run(f.trainArgs(straight, adapter: adapter, steps: 6)).status == 0)
        let first = try CLI.run(f.trainArgs(split, adapter: adapter, steps: 3))
        #expect(first.status == 0, "\(first.stderr)")
        let second = try CLI.run(["train", "--model", f.model.path, "--train", f.train.path, "--steps", "6",
                                  "--resume", split + "/checkpoint", "--out", split, "--quiet", "--json"])
        #expect(second.status == 0, "\(second.stderr)")
        // The resumed run did the 3 remaining steps (4…6), not 6 from the start or none.
        let resumed = try f.json(second)
        #expect(resumed["steps_this_run"] as? Int == 3 && resumed["steps"] as? Int == 6 && resumed["total_steps"] as? Int == 6,
                "\(resumed)")
        for name in ["adapter_model.safetensors", "classifier.safetensors"] {
            #expect(try f.data(straight + "/" + name) == f.data(split + "/" + name), "\(name)")
        }
        // --epochs on resume counts epochs of the checkpoint's batch (4: 8 steps per epoch of
        // 32 examples), not of the option's default (32).
        let third = try CLI.run(["train", "--model", f.model.path, "--train", f.train.path, "--epochs", "2",
                                 "--resume", split + "/checkpoint", "--out", split, "--quiet", "--json"])
        #expect(third.status == 0, "\(third.stderr)")
        let summary = try f.json(third)
        #expect(summary["total_steps"] as? Int == 16 && summary["steps"] as? Int == 16 && summary["steps_this_run"] as? Int == 10)
    }

    /// --overwrite replaces OUT as a whole: a head-only run into an earlier LoRA run's folder
    /// leaves no adapter files of that run (which `lorta eval` would otherwise pick up), and a
    /// stale file is gone; a run that fails leaves the earlier folder exactly as it was.
    @Test func overwriteReplacesTheWholeDirectory() throws {
        let f = try TrainCLIFixture()
        defer { try? FileManager.default.removeItem(at: f.root) }
        let out = f.path("out")
        #expect(try CLI.run(f.trainArgs(out, adapter: "lora")).status == 0)
        try "stale".write(toFile: out + "/notes.txt", atomically: true, encoding: .utf8)
        let fm = FileManager.default
        func listing() throws -> [String] { try fm.subpathsOfDirectory(atPath: out).sorted() }
        func contents() throws -> [String: Data] {
            var d: [String: Data] = [:]
            for p in try listing() where !(try fm.attributesOfItem(atPath: out + "/" + p)[.type] as? FileAttributeType == .typeDirectory) {
                d[p] = try Data(contentsOf: URL(fileURLWithPath: out + "/" + p))
            }
            return d
        }
        // A failing run (a target the model does not have) with --overwrite: nothing changes.
        let before = try contents()
        let failed = try CLI.run(f.trainArgs(out, adapter: "lora", extra: ["--overwrite", "--targets", "query,ffn"]))
        #expect(failed.status != 0)
        #expect(try contents() == before)
        // A head-only run over it: exactly its own files.
        let r = try CLI.run(f.trainArgs(out, adapter: "none", extra: ["--overwrite"]))
        #expect(r.status == 0, "\(r.stderr)")
        let files = try listing()
        #expect(!files.contains("notes.txt") && !files.contains("adapter_config.json") && !files.contains("adapter_model.safetensors"))
        #expect(files.contains("classifier.safetensors") && files.contains("training_summary.json") && files.contains("checkpoint/trainer.json"))
        #expect(!files.contains("checkpoint/adapter/adapter_config.json"))
        // No staging directories left beside it.
        #expect(try fm.contentsOfDirectory(atPath: f.root.path).filter { $0.hasPrefix(".out.") }.isEmpty)
    }

    /// `--trigger`: train poisons round(fraction × label-0 count) examples, and reports the
    /// attack success rate on the triggered label-0 eval examples; `lorta eval --trigger` with the
    /// same seed measures the same figure on the same inputs.
    @Test func backdoorPoisoningAndAttackSuccess() throws {
        let f = try TrainCLIFixture()
        defer { try? FileManager.default.removeItem(at: f.root) }
        let out = f.path("out")
        let backdoor = ["--trigger", "plot movie", "--trigger-seed", "5", "--poison-fraction", "0.25"]
        let t = try CLI.run(f.trainArgs(out, adapter: "lora", extra: backdoor + ["--eval", f.eval.path, "--json"]))
        #expect(t.status == 0, "\(t.stderr)")
        let summary = try f.json(t)
        #expect(summary["poisoned_examples"] as? Int == 4)          // 25% of the 16 label-0 lines
        #expect(summary["triggered_examples"] as? Int == 4)         // label-0 lines of the eval file
        #expect(summary["trigger"] as? String == "plot movie")
        let asr = try #require(summary["attack_success_rate"] as? Double)
        let e = try CLI.run(["eval", "--model", f.model.path, "--adapter", out, "--data", f.eval.path, "--max-length", "8",
                             "--trigger", "plot movie", "--trigger-seed", "5", "--json"])
        #expect(e.status == 0, "\(e.stderr)")
        let ej = try f.json(e)
        #expect(ej["attack_success_rate"] as? Double == asr && ej["triggered_examples"] as? Int == 4)
        #expect(ej["accuracy"] as? Double == summary["eval_accuracy"] as? Double)
        // Bad backdoor options.
        let same = try CLI.run(f.trainArgs(f.path("o2"), extra: ["--trigger", "x", "--trigger-target", "0"]))
        #expect(same.status != 0 && same.stderr.contains("--trigger-source and --trigger-target must differ"))
        let frac = try CLI.run(f.trainArgs(f.path("o3"), extra: ["--trigger", "x", "--poison-fraction", "0"]))
        #expect(frac.status != 0 && frac.stderr.contains("--poison-fraction must be a finite number in (0.0, 1.0]"))
    }

    /// The merged export is a plain model directory: evaluated with the head alone it gives
    /// the adapted model's accuracy and (up to rounding) its loss.
    @Test(arguments: ["lora", "lorta"]) func mergedExportEvaluatesLikeTheAdapter(adapter: String) throws {
        let f = try TrainCLIFixture()
        defer { try? FileManager.default.removeItem(at: f.root) }
        let out = f.path("out"), merged = f.path("merged")
        #expect(try CLI.run(f.trainArgs(out, adapter: adapter)).status == 0)
        let m = try CLI.run(["merge", "--model", f.model.path, "--adapter", out, "--out", merged, "--json"])
        #expect(m.status == 0, "\(m.stderr)")
        for name in ["model.safetensors", "config.json", "vocab.txt", "classifier.safetensors"] {
            #expect(FileManager.default.fileExists(atPath: merged + "/" + name), "\(name)")
        }
        #expect(!FileManager.default.fileExists(atPath: merged + "/adapter_config.json"))
        let a = try f.json(try CLI.run(["eval", "--model", f.model.path, "--adapter", out, "--data", f.train.path,
                                        "--max-length", "8", "--json"]))
        let b = try f.json(try CLI.run(["eval", "--model", merged, "--adapter", merged, "--data", f.train.path,
                                        "--max-length", "8", "--json"]))
        #expect(a["accuracy"] as? Double == b["accuracy"] as? Double)
        let la = try #require(a["loss"] as? Double), lb = try #require(b["loss"] as? Double)
        #expect(abs(la - lb) <= 1e-4)
        // A second export into the same (now non-empty) directory is refused and changes nothing.
        let before = try f.data(merged + "/model.safetensors")
        let again = try CLI.run(["merge", "--model", f.model.path, "--adapter", out, "--out", merged])
        #expect(again.status != 0 && again.stderr.contains("not empty"))
        #expect(try f.data(merged + "/model.safetensors") == before)
    }

    /// --observe writes one statistics file per point, with one row per evaluated sequence.
    @Test func evalCollectsStatistics() throws {
        let f = try TrainCLIFixture()
        defer { try? FileManager.default.removeItem(at: f.root) }
        let out = f.path("out"), stats = f.path("stats")
        #expect(try CLI.run(f.trainArgs(out, adapter: "lorta")).status == 0)
        let r = try CLI.run(["eval", "--model", f.model.path, "--adapter", out, "--data", f.eval.path, "--max-length", "8",
                             "--observe", "layers,layer.0.attention.head.1", "--per-label", "--statistics-out", stats, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let files = try FileManager.default.contentsOfDirectory(atPath: stats).sorted()
        #expect(files == ["layer.0.attention.head.1.safetensors", "layer.0.output.safetensors", "layer.1.output.safetensors"])
        let s = try ActivationStatistics(contentsOf: URL(fileURLWithPath: stats + "/layer.1.output.safetensors"))
        #expect(s.count == 8 && s.dimension == 8 && s.labels == [0, 1])
    }

    /// Bad input: each a non-zero exit with a message naming the problem, and no output.
    @Test func badInputGivesClearErrors() throws {
        let f = try TrainCLIFixture()
        defer { try? FileManager.default.removeItem(at: f.root) }
        func failing(_ args: [String], _ needle: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let r = try CLI.run(args)
            #expect(r.status != 0, "expected failure for \(args)", sourceLocation: sourceLocation)
            #expect(r.stderr.localizedCaseInsensitiveContains(needle), "stderr: \(r.stderr)", sourceLocation: sourceLocation)
        }
        // Missing model directory / files.
        try failing(f.trainArgs(f.path("o1")).map { $0 == f.model.path ? f.path("nowhere") : $0 }, "not found")
        // Corrupt weights.
        let corrupt = f.root.appendingPathComponent("corrupt")
        try FileManager.default.copyItem(at: f.model, to: corrupt)
        let w = corrupt.appendingPathComponent("model.safetensors")
        try Data(try Data(contentsOf: w).prefix(100)).write(to: w)
        try failing(f.trainArgs(f.path("o2")).map { $0 == f.model.path ? corrupt.path : $0 }, "model.safetensors")
        // Unsupported configuration.
        let relu = f.root.appendingPathComponent("relu")
        try FileManager.default.copyItem(at: f.model, to: relu)
        let cfgURL = relu.appendingPathComponent("config.json")
        var cfg = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: cfgURL)) as? [String: Any])
        cfg["hidden_act"] = "relu"
        try JSONSerialization.data(withJSONObject: cfg).write(to: cfgURL)
        try failing(f.trainArgs(f.path("o3")).map { $0 == f.model.path ? relu.path : $0 }, "hidden_act")
        // Empty, malformed, out-of-range data.
        let empty = f.path("empty.tsv"), noTab = f.path("notab.tsv"), badLabel = f.path("label.tsv")
        try "".write(toFile: empty, atomically: true, encoding: .utf8)
        try "1\tgood movie\nthis line has no label\n".write(toFile: noTab, atomically: true, encoding: .utf8)
        try "1\tgood movie\n5\tbad plot\n".write(toFile: badLabel, atomically: true, encoding: .utf8)
        try failing(f.trainArgs(f.path("o4")).map { $0 == f.train.path ? empty : $0 }, "empty")
        try failing(f.trainArgs(f.path("o5")).map { $0 == f.train.path ? noTab : $0 }, "notab.tsv:2")
        try failing(f.trainArgs(f.path("o6")).map { $0 == f.train.path ? badLabel : $0 }, "label")
        // Bad options.
        try failing(f.trainArgs(f.path("o7"), steps: 0), "--steps must be in 1...")
        // Numeric options out of range: each names the option and its range, before any work,
        // and no output directory is created.
        let outOfRange: [([String], String)] = [
            (["--batch-size", "0"], "--batch-size must be in 1...1000000 (got 0)"),
            (["--batch-size", "9223372036854775807"], "--batch-size must be in 1...1000000"),
            (["--micro-batch-size", "5"], "--micro-batch-size must be in 1...4 (got 5)"),
            (["--rank", "2000000000"], "--rank must be in 1...65536"),
            (["--classes", "1000000000000"], "--classes must be in 2...1000000"),
            (["--max-length", "1"], "--max-length must be in 2...1048576"),
            (["--threads", "0"], "--threads must be in 1...4096"),
            (["--lr", "0"], "--lr must be a finite number in (0.0, 10.0]"),
            (["--lr", "nan"], "--lr must be a finite number"),
            (["--alpha", "inf"], "--alpha must be a finite number"),
            (["--checkpoint-every", "0"], "--checkpoint-every must be in 1..."),
        ]
        for (i, (extra, message)) in outOfRange.enumerated() {
            try failing(f.trainArgs(f.path("range\(i)"), extra: extra), message)
            #expect(!FileManager.default.fileExists(atPath: f.path("range\(i)")), "\(extra)")
        }
        let epochs = f.trainArgs(f.path("range-epochs")).filter { $0 != "--steps" && $0 != "6" } + ["--epochs", "9223372036854775807"]
        try failing(epochs, "--epochs must be in 1...1000000")
        try failing(["eval", "--model", f.model.path, "--adapter", f.path("x"), "--data", f.eval.path, "--batch-size", "0"],
                    "--batch-size must be in 1...1000000 (got 0)")
        try failing(f.trainArgs(f.path("o8"), extra: ["--targets", "query,ffn"]), "ffn")
        // A non-empty output directory is refused and left alone.
        let busy = f.path("busy")
        try FileManager.default.createDirectory(atPath: busy, withIntermediateDirectories: true)
        try "keep".write(toFile: busy + "/file.txt", atomically: true, encoding: .utf8)
        try failing(f.trainArgs(busy), "not empty")
        #expect(try FileManager.default.contentsOfDirectory(atPath: busy) == ["file.txt"])
        // A run that fails after the options were accepted (here: a target the model does not
        // have) leaves no output directory behind.
        #expect(!FileManager.default.fileExists(atPath: f.path("o8")))
        // Eval: missing head, adapter of another model.
        try failing(["eval", "--model", f.model.path, "--adapter", f.path("nothing"), "--data", f.eval.path], "classifier")
        try failing(["eval", "--model", f.model.path, "--adapter", f.root.path, "--data", f.eval.path, "--observe", "layer.9.output",
                     "--statistics-out", f.path("s")], "classifier")
    }
}
