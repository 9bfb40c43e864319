import Foundation
import Testing
@testable import LoRTA

// The causal-LM trainer on the tiny random Llama fixture: a small memorisation task (each
// prompt's answer token) is learned by LoRA and by LoRTA; a run resumed from a checkpoint
// written to disk equals the straight run bit for bit; gradient accumulation gives the step of
// the full batch (token-weighted mean).

private func tinyModel() throws -> LlamaModel {
    let base = try #require(Bundle.module.resourceURL, "test bundle has no resources")
    return try LlamaModel(contentsOf: base.appendingPathComponent("Fixtures/llama/tiny/tiny_tied.f32.gguf"))
}

/// 12 examples: prompt of 3–6 tokens, then an answer token chosen by the prompt's first token,
/// then an end token; loss on answer and end.
private func memorisationData() throws -> CausalLMDataset {
    var examples: [CausalLMExample] = []
    for i in 0..<12 {
        let first = Int32(10 + i % 4)
        let prompt: [Int32] = [first] + (0..<(2 + i % 4)).map { Int32(40 + (i * 7 + $0 * 3) % 50) }
        let answer = Int32(200 + i % 4)
        let tokens = prompt + [answer, 2]
        let mask = Array(repeating: false, count: prompt.count) + [true, true]
        examples.append(try CausalLMExample(tokens: tokens, lossMask: mask, promptTokens: prompt, expectedAnswer: "\(answer)"))
    }
    return try CausalLMDataset(examples: examples, maxLength: 16, paddingID: 0)
}

private func lora(_ model: LlamaModel) throws -> any Adapter {
    try LoRAAdapter(host: model.adapterHost, targets: ["q_proj", "v_proj", "down_proj"],
                    configuration: LoRAConfiguration(rank: 4, alpha: 8), seed: 3)
}

private func lorta(_ model: LlamaModel) throws -> any Adapter {
    let host = model.adapterHost
    let targets = ["q_proj", "k_proj", "v_proj", "o_proj"]
    let c = try LoRTAConfiguration(rank: 4, alpha: 4, targetModules: targets, layerCount: host.layerCount,
                                   headCount: host.headCount, headDimension: host.headDimension,
                                   outputSizes: try host.modules(named: targets).map(\.outputSize))
    return try LoRTAAdapter(configuration: c, seed: 3)
}

@Suite struct CausalLMTrainerTests {
    @Test(arguments: ["lora", "lorta"]) func learnsTheAnswers(_ kind: String) throws {
        let model = try tinyModel()
        let data = try memorisationData()
        let adapter = kind == "lora" ? try lora(model) : try lorta(model)
        let before = try model.evaluate(data, adapter: adapter, batchSize: 5)
        let base = try model.evaluate(data, batchSize: 5)
        var trainer = try Trainer(task: try CausalLMTask(model: model, data: data), adapter: adapter, configuration: TrainingConfiguration(
                                            steps: 40, batchSize: 4, optimizer: AdamWConfiguration(learningRate: 2e-2)))
        var losses: [Double] = []
        let summary = try trainer.train { p in losses.append(p.loss); return .proceed }
        let after = try model.evaluate(data, adapter: trainer.adapter, batchSize: 5)
        #expect(summary.stepsRun == 40 && trainer.step == 40)
        #expect(before.targetCount == 24 && after.targetCount == 24)
        #expect(losses.allSatisfy { $0.isFinite })
        // ln(vocab) ≈ 5.6 per token before; a learned task is far below it.
        #expect(after.mean < 0.5 * before.mean, "\(kind): mean loss \(before.mean) → \(after.mean)")
        // Frozen weights did not change: the base model's loss is what it was.
        #expect(try model.evaluate(data, batchSize: 5) == base)
        #expect(abs(base.sum - before.sum) <= 1e-9 * base.sum, "a fresh adapter does not change the model")
    }

    @Test(arguments: ["lora", "lorta"]) func resumedRunEqualsStraightRun(_ kind: String) throws {
        let model = try tinyModel()
        let data = try memorisationData()
        let adapter = kind == "lora" ? try lora(model) : try lorta(model)
        let config = TrainingConfiguration(steps: 5, batchSize: 5, microBatchSize: 2,
                                                   optimizer: AdamWConfiguration(learningRate: 1e-2, weightDecay: 0.01),
                                                   schedule: try .linearWarmupDecay(peak: 1e-2, warmupSteps: 2, totalSteps: 5),
                                                   seed: 9)
        var straight = try Trainer(task: try CausalLMTask(model: model, data: data), adapter: adapter, configuration: config)
        _ = try straight.train()

        var first = try Trainer(task: try CausalLMTask(model: model, data: data), adapter: adapter, configuration: config)
        _ = try first.train { p in p.step == 3 ? .stop : .proceed }   // 12 / 5 → 2 steps per epoch: crosses an epoch
        #expect(first.step == 3)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lorta-clm-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try first.saveCheckpoint(to: dir)
        var second = try Trainer(resumingFrom: dir, task: try CausalLMTask(model: model, data: data))
        #expect(second.configuration == config && second.step == 3)
        // The checkpoint's adapter directory is the adapter's own file set.
        #expect(try AdapterFiles.load(from: dir.appendingPathComponent("adapter"), host: model.adapterHost).parameters
                == first.adapter!.parameters)
        // Other data: refused, naming what differs.
        let other = try CausalLMDataset(examples: Array(data.examples.dropLast()), maxLength: data.maxLength,
                                        paddingID: data.paddingID)
        #expect(throws: TrainingError.self) { try Trainer(resumingFrom: dir, task: try CausalLMTask(model: model, data: other)) }
        let summary = try second.train()
        #expect(summary.stepsRun == 2 && second.step == 5)
        #expect(second.position == straight.position)
        for (a, b) in zip(second.adapter!.parameters, straight.adapter!.parameters) {
            #expect(a.scalars.map(\.bitPattern) == b.scalars.map(\.bitPattern))
        }
    }

    @Test func accumulationEqualsTheFullBatch() throws {
        let model = try tinyModel()
        let data = try memorisationData()
        let adapter = try lora(model)
        func run(_ micro: Int?) throws -> [Tensor] {
            var t = try Trainer(task: try CausalLMTask(model: model, data: data), adapter: adapter, configuration: TrainingConfiguration(steps: 2, batchSize: 6, microBatchSize: micro))
            _ = try t.train()
            return t.adapter!.parameters
        }
        let full = try run(nil), accumulated = try run(4)
        var worst: Float = 0
        for (a, b) in zip(full, accumulated) {
            for (x, y) in zip(a.scalars, b.scalars) { worst = max(worst, abs(x - y)) }
        }
        #expect(worst < 1e-5, "full batch vs micro-batches of 4 (token-weighted): max difference \(worst)")
    }

    /// The reference implementation's initialisation: bounds 1/√r for A and √(6/r) for the C
    /// factors, B = 0 (ΔW = 0), deterministic in the seed; it trains like the default.
    @Test func referenceInitialization() throws {
        let model = try tinyModel()
        let base = try #require(try lorta(model) as? LoRTAAdapter)
        let a = try LoRTAAdapter(configuration: base.configuration, seed: 5, initialization: .reference)
        let b = try LoRTAAdapter(configuration: base.configuration, seed: 5, initialization: .reference)
        #expect(a.parameters == b.parameters)
        let r = Float(base.configuration.rank)
        for t in a.factors.a { #expect(t.maxAbsolute <= 1 / r.squareRoot() && t.maxAbsolute > 0.5 / r.squareRoot()) }
        #expect(a.factors.b.maxAbsolute == 0)
        for t in [a.factors.cH, a.factors.cL, a.factors.cM] {
            #expect(t.maxAbsolute <= (6 / r).squareRoot() && t.maxAbsolute > 0.2)
        }
        let data = try memorisationData()
        #expect(try model.evaluate(data, adapter: a, batchSize: 12) == model.evaluate(data, batchSize: 12))
        var trainer = try Trainer(task: try CausalLMTask(model: model, data: data), adapter: a, configuration: TrainingConfiguration(
                                            steps: 20, batchSize: 4, optimizer: AdamWConfiguration(learningRate: 2e-2)))
        _ = try trainer.train()
        #expect(try model.evaluate(data, adapter: trainer.adapter).mean < model.evaluate(data).mean)
    }

    @Test func badSettingsAreErrors() throws {
        let model = try tinyModel()
        let data = try memorisationData()
        let adapter = try lora(model)
        #expect(throws: TrainingError.self) {
            try Trainer(task: try CausalLMTask(model: model, data: data), adapter: adapter, configuration: TrainingConfiguration(steps: 1, batchSize: 13))
        }
        #expect(throws: TrainingError.self) {
            try Trainer(task: try CausalLMTask(model: model, data: data), adapter: adapter, configuration: TrainingConfiguration(steps: 1, batchSize: 0))
        }
        // Nothing to train: the causal task has no tensors of its own.
        #expect(throws: TrainingError.self) {
            try Trainer(task: try CausalLMTask(model: model, data: data), adapter: nil, configuration: TrainingConfiguration(steps: 1, batchSize: 4))
        }
    }
}
