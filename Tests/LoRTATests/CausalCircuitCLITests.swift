import Foundation
import Testing
@testable import LoRTA

/// `lorta monitor fit/score/circuits` and `lorta eval --ablate` on a causal LM (the tiny Llama
/// fixture with a trained adapter): the monitor watches mean and last-token rows of every point,
/// the circuits rank every head and MLP with evidence for every component, and ablating
/// components through `eval` changes the model's loss and answers as the library does.
@Suite(.serialized) struct CausalCircuitCLITests {
    static func model() throws -> String {
        try #require(Bundle.module.resourceURL).appendingPathComponent("Fixtures/llama/tiny/tiny_untied.q8_0.gguf").path
    }

    /// Prompt/response lines: the answer follows from the prompt's first word; `odd` prompts
    /// carry an extra word the trusted ones never have.
    static func write(_ url: URL, count: Int, odd: Bool, seed: Int) throws {
        let words = ["red", "green", "blue", "gold"], answers = ["one", "two", "three", "four"]
        let lines = try (0..<count).map { i -> String in
            let k = (i + seed) % 4
            let prompt = (odd ? "zq " : "") + "\(words[k]) item \((i * 7 + seed) % 13) is number"
            let data = try JSONSerialization.data(withJSONObject: ["prompt": prompt, "response": " \(answers[k])"], options: [.sortedKeys])
            return String(decoding: data, as: UTF8.self)
        }
        try (lines.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
    }

    static func json(_ r: CLI.Result) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stdout) \(r.stderr)")
    }

    @Test func monitorCircuitsAndAblationOnTheTinyLlama() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lorta-causal-circuits-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
        let model = try Self.model()
        try Self.write(dir.appendingPathComponent("train.jsonl"), count: 16, odd: false, seed: 0)
        try Self.write(dir.appendingPathComponent("trusted.jsonl"), count: 40, odd: false, seed: 1)
        try Self.write(dir.appendingPathComponent("odd.jsonl"), count: 6, odd: true, seed: 2)
        try Self.write(dir.appendingPathComponent("clean.jsonl"), count: 6, odd: false, seed: 3)
        let train = try CLI.run(["train", "--model", model, "--train", path("train.jsonl"), "--adapter", "lora", "--rank", "4",
                                 "--steps", "10", "--batch-size", "4", "--lr", "0.02", "--out", path("adapter"), "--quiet"])
        try #require(train.status == 0, "\(train.stderr)")

        let fit = try CLI.run(["monitor", "fit", "--model", model, "--adapter", path("adapter"), "--trusted", path("trusted.jsonl"),
                               "--out", path("mon"), "--folds", "2", "--pseudo-classes", "2", "--json"])
        try #require(fit.status == 0, "\(fit.stderr)")
        let lm = try CausalLanguageModel(contentsOf: URL(fileURLWithPath: model))
        let shape = lm.model.configuration.observationShape
        let points = shape.layerCount * (shape.headCount + 2)
        // Mean and last-token rows of every layer output, head and MLP; one Mahalanobis channel each per input.
        #expect(try Self.json(fit)["sites"] as? Int == 2 * points)
        let score = try Self.json(try CLI.run(["monitor", "score", "--monitor", path("mon"), "--data", path("odd.jsonl"), "--json"]))
        #expect(score["channels"] as? Int == 2 * points && score["inputs"] as? Int == 6, "\(score)")

        let r = try CLI.run(["monitor", "circuits", "--monitor", path("mon"), "--data", path("odd.jsonl"),
                             "--reference", path("clean.jsonl"), "--samples", "4", "--json"])
        try #require(r.status == 0, "\(r.stderr)")
        let result = try Self.json(r)
        let rows = try #require(result["components"] as? [[String: Any]])
        #expect(rows.count == shape.layerCount * (shape.headCount + 1))
        #expect(rows.allSatisfy { ($0["onset"] as? Double) == ($0["score"] as? Double) })
        let scores = rows.compactMap { $0["score"] as? Double }
        #expect(scores == scores.sorted(by: >) && scores.allSatisfy(\.isFinite))
        #expect(rows.allSatisfy { ($0["flagged_attribution"] as? Double)?.isFinite == true })
        #expect((result["flagged"] as? [String: Any])?["inputs"] as? Int == 6)
        #expect((result["flagged"] as? [String: Any])?["samples"] as? Int == 4)
        let heads = try #require(result["top_heads"] as? [String])
        #expect(!heads.isEmpty && heads.allSatisfy { $0.contains("attention.head") })

        // eval with components ablated: the loss and the answers of the ablated model.
        let evalArgs = ["eval", "--model", model, "--adapter", path("adapter"), "--data", path("clean.jsonl"), "--generate", "--json"]
        let base = try Self.json(try CLI.run(evalArgs))
        let ablate = "layer.0.mlp,layer.1.mlp," + heads.joined(separator: ",")
        let cut = try Self.json(try CLI.run(evalArgs + ["--monitor", path("mon"), "--ablate", ablate]))
        #expect(base["loss"] as? Double != cut["loss"] as? Double, "\(base) \(cut)")
        #expect((cut["ablated"] as? [String])?.contains("layer.1.mlp") == true)
        // The library's ablated forward gives the same loss.
        var lmA = lm
        try lmA.loadAdapter(from: URL(fileURLWithPath: path("adapter")))
        let monitor = try Monitor(contentsOf: URL(fileURLWithPath: path("mon")))
        let components = try ablate.split(separator: ",").map { try ModelComponent(parsing: String($0)) }
        let ablation = try MeanAblation(monitor: monitor, components: components, ablated: Set(components))
        let data = try CausalLMDataset.load(from: URL(fileURLWithPath: path("clean.jsonl")), tokenizer: lm.tokenizer, maxLength: 256)
        let loss = try lm.model.evaluate(data, adapter: lmA.adapter, ablation: ablation)
        #expect(loss.mean == cut["loss"] as? Double)
    }
}
