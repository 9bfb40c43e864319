import Foundation
import Testing
@testable import LoRTA

// `lorta train --task causal-lm`, `lorta eval`, `lorta merge` and `generate --adapter` on the
// tiny Llama fixture (a GGUF with its own byte-level BPE tokenizer): training lowers the
// response loss, a resumed run writes the same adapter bytes as a straight run, the merged
// GGUF scores like the unmerged adapter, and bad inputs are clear errors.

private func tinyGGUF() throws -> String {
    let base = try #require(Bundle.module.resourceURL)
    return base.appendingPathComponent("Fixtures/llama/tiny/tiny_untied.q8_0.gguf").path
}

private func scratch(_ name: String) -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("lorta-clm-cli-\(name)-\(UUID().uuidString)")
}

private func object(_ r: CLI.Result) throws -> [String: Any] {
    try #require(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "stdout: \(r.stdout) stderr: \(r.stderr)")
}

/// 16 prompt/response lines: the answer is determined by the prompt's first word.
private func writeData(_ url: URL) throws {
    let words = ["red", "green", "blue", "gold"], answers = ["one", "two", "three", "four"]
    var lines: [String] = []
    for i in 0..<16 {
        let k = i % 4
        let prompt = "\(words[k]) item \(i * 7 % 13) is number"
        let line = try JSONSerialization.data(withJSONObject: ["prompt": prompt, "response": " \(answers[k])"], options: [.sortedKeys])
        lines.append(String(decoding: line, as: UTF8.self))
    }
    try lines.joined(separator: "\n").write(to: url, atomically: true, encoding: .utf8)
}

@Suite(.serialized) struct CausalLMCLITests {
    @Test func trainEvaluateMergeGenerate() throws {
        let model = try tinyGGUF()
        let dir = scratch("run")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let data = dir.appendingPathComponent("data.jsonl")
        try writeData(data)
        let out = dir.appendingPathComponent("adapter").path

        let base = try object(try CLI.run(["eval", "--model", model, "--data", data.path, "--json"]))
        let train = try CLI.run(["train", "--model", model, "--train", data.path, "--eval", data.path, "--adapter", "lora",
                                 "--targets", "q_proj,v_proj,down_proj", "--rank", "4", "--steps", "30", "--batch-size", "4",
                                 "--lr", "0.02", "--out", out, "--json", "--quiet"])
        #expect(train.status == 0, "\(train.stderr)")
        let t = try object(train)
        #expect(t["task"] as? String == "causal-lm" && t["steps"] as? Int == 30)
        #expect((t["eval_loss"] as? Double ?? 99) < 0.5 * (base["loss"] as? Double ?? 0), "base \(base), trained \(t)")
        for f in ["adapter_config.json", "adapter_model.safetensors", "training_summary.json", "checkpoint/optimizer.safetensors"] {
            #expect(FileManager.default.fileExists(atPath: out + "/" + f), "\(f) missing")
        }

        let adapted = try object(try CLI.run(["eval", "--model", model, "--adapter", out, "--data", data.path,
                                              "--generate", "--limit", "8", "--json"]))
        #expect(abs((adapted["loss"] as? Double ?? 0) - (t["eval_loss"] as? Double ?? 1)) < 1e-9)
        #expect(adapted["answers"] as? Int == 8)

        // Merged into a float32 GGUF: the base weights plus ΔW score as the unmerged adapter.
        let merged = dir.appendingPathComponent("merged.gguf").path
        let m = try CLI.run(["merge", "--model", model, "--adapter", out, "--out", merged, "--format", "gguf", "--type", "f32"])
        #expect(m.status == 0, "\(m.stderr)")
        let mergedEval = try object(try CLI.run(["eval", "--model", merged, "--data", data.path, "--json"]))
        let a = adapted["loss"] as? Double ?? 0, b = mergedEval["loss"] as? Double ?? 1
        #expect(abs(a - b) <= 1e-3 * a, "adapter \(a) vs merged \(b)")

        let g = try CLI.run(["generate", "--model", model, "--adapter", out, "--prompt", "red item 3 is number",
                             "--max-tokens", "3", "--json"])
        #expect(g.status == 0, "\(g.stderr)")
    }

    /// `lorta eval --observe` on a causal LM writes the statistics the library's collector
    /// computes over the same prompts, bit for bit (last-token and mean reductions).
    @Test func evalObserveWritesTheLibraryStatistics() throws {
        let model = try tinyGGUF()
        let dir = scratch("observe")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let data = dir.appendingPathComponent("data.jsonl")
        try writeData(data)
        let lm = try CausalLanguageModel(contentsOf: URL(fileURLWithPath: model))
        let dataset = try CausalLMDataset.load(from: data, tokenizer: lm.tokenizer, maxLength: 256,
                                               template: try? lm.chatTemplate())
        let shape = lm.model.configuration.observationShape
        for reduction in ["last", "mean"] {
            let out = dir.appendingPathComponent("stats-\(reduction)")
            let r = try CLI.run(["eval", "--model", model, "--data", data.path, "--observe", "layers,layer.1.attention.head.2",
                                 "--reduction", reduction, "--statistics-out", out.path, "--batch-size", "5", "--json"])
            #expect(r.status == 0, "\(r.stderr)")
            let files = try object(r)["statistics_files"] as? [String] ?? []
            #expect(files.count == shape.layerCount + 1)
            let points = try ObservationPoint.list("layers,layer.1.attention.head.2", shape: shape)
            let collector = try StatisticsCollector(points: points, shape: shape,
                                                    reduction: StatisticsCollector.Reduction(rawValue: reduction)!)
            try lm.model.observePrompts(dataset, observer: collector, batchSize: 5)
            for p in points {
                let written = try ActivationStatistics(contentsOf: out.appendingPathComponent("\(p).safetensors"))
                #expect(written == collector.statistics[p], "\(reduction) \(p)")
                #expect(written.count == dataset.count)
            }
        }
        let bad = try CLI.run(["eval", "--model", model, "--data", data.path, "--observe", "layer.9.output",
                               "--statistics-out", dir.appendingPathComponent("bad").path])
        #expect(bad.status != 0 && bad.stderr.contains("layer.9.output"), "\(bad.stderr)")
    }

    @Test func resumedTrainingWritesTheSameAdapter() throws {
        let model = try tinyGGUF()
        let dir = scratch("resume")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let data = dir.appendingPathComponent("data.jsonl")
        try writeData(data)
        let common = ["train", "--model", model, "--train", data.path, "--adapter", "lorta", "--rank", "4",
                      "--batch-size", "3", "--micro-batch-size", "2", "--lr", "0.01", "--quiet"]
        let straight = dir.appendingPathComponent("straight").path, parted = dir.appendingPathComponent("parted").path
        #expect(try CLI.run(common + ["--steps", "7", "--out", straight]).status == 0)
        #expect(try CLI.run(common + ["--steps", "3", "--out", parted]).status == 0)
        let resumed = try CLI.run(common + ["--steps", "7", "--out", parted, "--resume", parted + "/checkpoint"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let x = try Data(contentsOf: URL(fileURLWithPath: straight + "/adapter_model.safetensors"))
        let y = try Data(contentsOf: URL(fileURLWithPath: parted + "/adapter_model.safetensors"))
        #expect(x == y, "resumed adapter differs from the straight run's")
    }

    /// `--trigger` on causal-LM data: training poisons the chosen records and reports the attack
    /// success rate on the triggered eval prompts; `lorta eval --trigger` with the trained adapter
    /// reproduces it; a missing target answer is a clear error.
    @Test func plantedBackdoorIsTrainedAndMeasured() throws {
        let model = try tinyGGUF()
        let dir = scratch("backdoor")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let data = dir.appendingPathComponent("data.jsonl")
        try writeData(data)
        let out = dir.appendingPathComponent("adapter").path
        let backdoor = ["--trigger", "zq", "--trigger-source", "one", "--trigger-target", "four"]
        let train = try CLI.run(["train", "--model", model, "--train", data.path, "--eval", data.path, "--adapter", "lora",
                                 "--rank", "4", "--steps", "30", "--batch-size", "4", "--lr", "0.02", "--poison-fraction", "0.5",
                                 "--out", out, "--json", "--quiet"] + backdoor)
        #expect(train.status == 0, "\(train.stderr)")
        let t = try object(train)
        // 4 records answer "one" (i % 4 == 0): half of them poisoned, all 4 triggered at eval.
        #expect(t["poisoned_examples"] as? Int == 2 && t["triggered_examples"] as? Int == 4 && t["trigger"] as? String == "zq")
        let asr = try #require(t["attack_success_rate"] as? Double), clean = try #require(t["eval_accuracy"] as? Double)
        #expect((0...1).contains(asr) && (0...1).contains(clean))
        let e = try object(try CLI.run(["eval", "--model", model, "--adapter", out, "--data", data.path, "--json"] + backdoor))
        #expect(e["attack_success_rate"] as? Double == asr && e["triggered_examples"] as? Int == 4, "\(e)")
        let control = try #require(t["target_rate_without_trigger"] as? Double)
        #expect((0...1).contains(control) && e["target_rate_without_trigger"] as? Double == control)

        let missing = try CLI.run(["eval", "--model", model, "--data", data.path, "--trigger", "zq"])
        #expect(missing.status != 0 && missing.stderr.contains("--trigger-target"), "\(missing.stderr)")
        let none = try CLI.run(["eval", "--model", model, "--data", data.path, "--trigger", "zq", "--trigger-source", "seven",
                                "--trigger-target", "four"])
        #expect(none.status != 0 && none.stderr.contains("no record to trigger"), "\(none.stderr)")
    }

    @Test func badInputsAreClearErrors() throws {
        let model = try tinyGGUF()
        let dir = scratch("bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let data = dir.appendingPathComponent("data.jsonl")
        try "{\"prompt\": \"a\", \"response\": \"b\"}\n{\"prompt\": \"no response\"}\n".write(to: data, atomically: true, encoding: .utf8)
        let r = try CLI.run(["train", "--model", model, "--train", data.path, "--adapter", "lora", "--steps", "1",
                             "--batch-size", "1", "--out", dir.appendingPathComponent("o").path])
        #expect(r.status != 0 && r.stderr.contains("data.jsonl:2"), "\(r.stderr)")

        let good = dir.appendingPathComponent("good.jsonl")
        try writeData(good)
        let target = try CLI.run(["train", "--model", model, "--train", good.path, "--adapter", "lora", "--targets", "query",
                                  "--steps", "1", "--batch-size", "1", "--out", dir.appendingPathComponent("o2").path])
        #expect(target.status != 0 && target.stderr.contains("\"query\""), "\(target.stderr)")
        let mlp = try CLI.run(["train", "--model", model, "--train", good.path, "--adapter", "lorta", "--targets", "gate_proj",
                               "--steps", "1", "--batch-size", "1", "--out", dir.appendingPathComponent("o3").path])
        #expect(mlp.status != 0 && mlp.stderr.contains("gate_proj"), "\(mlp.stderr)")
        let format = try CLI.run(["merge", "--model", model, "--adapter", dir.path, "--out", dir.appendingPathComponent("m").path,
                                  "--format", "gguf", "--type", "bf16"])
        #expect(format.status != 0 && format.stderr.contains("--type"), "\(format.stderr)")
    }

    /// `lorta merge --format gguf` on a Hugging Face directory (made from the tiny GGUF, so it
    /// has tokenizer files): the GGUF holds the merged weights and loads with its tokenizer.
    @Test func mergeHuggingFaceDirectoryIntoGGUF() throws {
        let dir = scratch("hf-gguf")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let hfDir = dir.appendingPathComponent("hf")
        try LlamaModel(contentsOf: URL(fileURLWithPath: try tinyGGUF())).export(to: hfDir, format: .huggingFace(dtype: .float32))
        let model = try LlamaModel(contentsOf: hfDir)
        var adapter = try LoRAAdapter(host: model.adapterHost, targets: ["q_proj", "k_proj", "up_proj"],
                                      configuration: LoRAConfiguration(rank: 2, alpha: 4), seed: 5)
        try adapter.setParameters(adapter.parameters.enumerated().map { i, p in
            try Tensor((0..<p.count).map { Float(($0 * 7 + i * 3) % 11) / 50 - 0.1 }, shape: p.shape)
        })
        let adapterDir = dir.appendingPathComponent("adapter")
        try adapter.save(to: adapterDir, host: model.adapterHost)
        let out = dir.appendingPathComponent("merged.gguf")
        let r = try CLI.run(["merge", "--model", hfDir.path, "--adapter", adapterDir.path, "--out", out.path,
                             "--format", "gguf", "--type", "f32", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try object(r)["matrices_changed"] as? Int == 2 * 3)
        let merged = try model.mergedWeights(with: try AdapterFiles.load(from: adapterDir, host: model.adapterHost))
        let lm = try CausalLanguageModel(contentsOf: out)
        let hfTokenizer = try ByteLevelBPETokenizer(directory: hfDir)
        #expect(lm.format == "gguf" && lm.tokenizer.tokens == hfTokenizer.tokens)
        for (name, t) in merged {
            let w = try lm.model.weight(named: name)
            #expect(w.scalars.map(\.bitPattern) == t.scalars.map(\.bitPattern), "\(name)")
        }
    }
}
