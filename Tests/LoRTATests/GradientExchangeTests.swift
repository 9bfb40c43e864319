import Foundation
import Testing
@testable import LoRTA

/// Computes a step's micro-batches in `parts` contiguous shares, each by its own `compute`
/// call (as `parts` data-parallel processes would), and returns them in order.
private struct ShardedExchange: GradientExchange {
    let parts: Int
    func microBatchGradients(count: Int, compute: (Range<Int>) throws -> [MicroBatchGradients]) throws -> [MicroBatchGradients] {
        try (0..<parts).flatMap { p in try compute((count * p / parts) ..< (count * (p + 1) / parts)) }
    }
}

/// Drops the last micro-batch (a broken exchange).
private struct LossyExchange: GradientExchange {
    func microBatchGradients(count: Int, compute: (Range<Int>) throws -> [MicroBatchGradients]) throws -> [MicroBatchGradients] {
        Array(try compute(0..<count).dropLast())
    }
}

private struct ExchangeFailure: Error {}

/// Fails on its `failAt`-th call (1-based), like a rank that dies in that step.
private final class FailingExchange: GradientExchange, @unchecked Sendable {
    let failAt: Int
    var calls = 0
    init(failAt: Int) { self.failAt = failAt }
    func microBatchGradients(count: Int, compute: (Range<Int>) throws -> [MicroBatchGradients]) throws -> [MicroBatchGradients] {
        calls += 1
        if calls == failAt { throw ExchangeFailure() }
        return try compute(0..<count)
    }
}

@Suite(.serialized) struct GradientExchangeTests {
    static let vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "good", "bad", "movie", "film", "the", "a", "very", "plot"]

    func task() throws -> SequenceClassificationTask {
        let model = try tinyBertModel(seed: 91, layers: 2)
        let words = ["bad", "movie", "film", "the", "a", "very", "plot"]
        let examples = (0..<24).map { i in
            LabelledText(label: i % 2, text: ((0..<(1 + i % 4)).map { words[($0 * 3 + i) % words.count] } + (i % 2 == 1 ? ["good"] : [])).joined(separator: " "))
        }
        let head = try BertClassificationHead(hiddenSize: model.configuration.hiddenSize, classCount: 2, seed: 5)
        return try SequenceClassificationTask(model: model, tokenizer: try BertTokenizer(vocabulary: Self.vocabulary),
                                              data: try LabelledTextDataset(examples: examples, labelCount: 2), head: head,
                                              maxLength: 8)
    }

    func adapter(_ lorta: Bool, _ c: BertConfiguration) throws -> any Adapter {
        if lorta {
            return try LoRTAAdapter(configuration: try LoRTAConfiguration(rank: 3, alpha: 6, targetModules: ["query", "key", "value", "output"],
                                                                          layerCount: c.layerCount, headCount: c.headCount,
                                                                          headDimension: c.headSize), seed: 12)
        }
        return try LoRAAdapter(host: c.adapterHost, targets: ["query", "value"], configuration: LoRAConfiguration(rank: 2, alpha: 4), seed: 11)
    }

    func trained(_ exchange: any GradientExchange, lorta: Bool, microBatchSize: Int = 2) throws -> Trainer<SequenceClassificationTask> {
        let t = try task()
        var trainer = try Trainer(task: t, adapter: try adapter(lorta, t.model.configuration),
                                  configuration: TrainingConfiguration(steps: 5, batchSize: 8, microBatchSize: microBatchSize,
                                                                       optimizer: AdamWConfiguration(learningRate: 0.01), seed: 4))
        trainer.gradientExchange = exchange
        _ = try trainer.train()
        return trainer
    }

    /// Micro-batches computed in 2, 3 or 4 separate shares (as by that many processes) give the
    /// parameters and AdamW moments of the local run bit for bit, for LoRTA and LoRA; the
    /// per-micro-batch split of stepGradients changes nothing for one process either.
    @Test(arguments: [true, false]) func shardedEqualsLocalBitForBit(lorta: Bool) throws {
        let local = try trained(LocalGradientExchange(), lorta: lorta)
        for parts in [2, 3, 4] {
            let sharded = try trained(ShardedExchange(parts: parts), lorta: lorta)
            #expect(sharded.parameters == local.parameters, "\(parts) shares")
            #expect(sharded.optimizerState.firstMoments == local.optimizerState.firstMoments)
            #expect(sharded.optimizerState.secondMoments == local.optimizerState.secondMoments)
        }
        // The comparison can fail: another micro-batch size rounds differently but stays close.
        let other = try trained(LocalGradientExchange(), lorta: lorta, microBatchSize: 3)
        #expect(other.parameters != local.parameters)
        for (a, b) in zip(other.parameters, local.parameters) {
            for (x, y) in zip(a.scalars, b.scalars) { #expect(abs(x - y) <= 1e-4 * max(1, abs(y))) }
        }
    }

    /// stepGradients (every micro-batch, combined) equals the combination of separately
    /// computed shares, and the combined gradient is the example-weighted mean.
    @Test func combinationOfSharesEqualsStepGradients() throws {
        let t = try task()
        let a = try adapter(true, t.model.configuration)
        let examples = Array(0..<7)
        let whole = try t.stepGradients(examples: examples, microBatchSize: 2, adapter: a)
        let parts = try t.microBatchGradients(examples: examples, microBatchSize: 2, microBatches: 0..<1, adapter: a)
            + t.microBatchGradients(examples: examples, microBatchSize: 2, microBatches: 1..<4, adapter: a)
        #expect(parts.map(\.exampleCount) == [2, 2, 2, 1])
        let combined = try t.combineMicroBatchGradients(parts, examples: examples)
        #expect(combined.gradients == whole.gradients)
        #expect(combined.loss == whole.loss)
        #expect(combined.tokens == whole.tokens)
        #expect(throws: TrainingError.self) {
            try t.microBatchGradients(examples: examples, microBatchSize: 2, microBatches: 3..<5, adapter: a)
        }
        #expect(throws: TrainingError.self) { try t.combineMicroBatchGradients(Array(parts.dropLast()), examples: examples) }
    }

    /// An exchange that loses a micro-batch is refused; one that fails in step 3 leaves the
    /// trainer at step 2 with the state of a 2-step run.
    @Test func brokenAndFailingExchanges() throws {
        #expect(throws: TrainingError.self) { _ = try trained(LossyExchange(), lorta: true) }
        let t = try task()
        var trainer = try Trainer(task: t, adapter: try adapter(true, t.model.configuration),
                                  configuration: TrainingConfiguration(steps: 5, batchSize: 8, microBatchSize: 2,
                                                                       optimizer: AdamWConfiguration(learningRate: 0.01), seed: 4))
        trainer.gradientExchange = FailingExchange(failAt: 3)
        #expect(throws: ExchangeFailure.self) { _ = try trainer.train() }
        #expect(trainer.step == 2)
        var two = try Trainer(task: t, adapter: try adapter(true, t.model.configuration),
                              configuration: TrainingConfiguration(steps: 2, batchSize: 8, microBatchSize: 2,
                                                                   optimizer: AdamWConfiguration(learningRate: 0.01), seed: 4))
        _ = try two.train()
        #expect(trainer.parameters == two.parameters)
        #expect(trainer.optimizerState.secondMoments == two.optimizerState.secondMoments)
    }
}

/// The same for the causal LM (tiny random Llama fixture, GQA): the micro-batches' 1/N-scaled
/// gradients, computed in separate shares and summed in step order, give the local run's bits.
@Suite(.serialized) struct CausalLMGradientExchangeTests {
    func trained(_ exchange: any GradientExchange, lorta: Bool) throws -> Trainer<CausalLMTask> {
        let base = try #require(Bundle.module.resourceURL, "test bundle has no resources")
        let model = try LlamaModel(contentsOf: base.appendingPathComponent("Fixtures/llama/tiny/tiny_tied.f32.gguf"))
        var examples: [CausalLMExample] = []
        for i in 0..<12 {
            let prompt: [Int32] = [Int32(10 + i % 4)] + (0..<(2 + i % 4)).map { Int32(40 + (i * 7 + $0 * 3) % 50) }
            examples.append(try CausalLMExample(tokens: prompt + [Int32(200 + i % 4), 2],
                                                lossMask: Array(repeating: false, count: prompt.count) + [true, true],
                                                promptTokens: prompt, expectedAnswer: "\(200 + i % 4)"))
        }
        let data = try CausalLMDataset(examples: examples, maxLength: 16, paddingID: 0)
        let host = model.adapterHost
        let targets = ["q_proj", "k_proj", "v_proj", "o_proj"]
        let adapter: any Adapter = lorta
            ? try LoRTAAdapter(configuration: try LoRTAConfiguration(rank: 4, alpha: 4, targetModules: targets, layerCount: host.layerCount,
                                                                     headCount: host.headCount, headDimension: host.headDimension,
                                                                     outputSizes: try host.modules(named: targets).map(\.outputSize)), seed: 3)
            : try LoRAAdapter(host: host, targets: ["q_proj", "v_proj", "down_proj"], configuration: LoRAConfiguration(rank: 4, alpha: 8), seed: 3)
        var trainer = try Trainer(task: try CausalLMTask(model: model, data: data), adapter: adapter,
                                  configuration: TrainingConfiguration(steps: 4, batchSize: 6, microBatchSize: 2,
                                                                       optimizer: AdamWConfiguration(learningRate: 2e-2), seed: 1))
        trainer.gradientExchange = exchange
        _ = try trainer.train()
        return trainer
    }

    @Test(arguments: [true, false]) func shardedEqualsLocalBitForBit(lorta: Bool) throws {
        let local = try trained(LocalGradientExchange(), lorta: lorta)
        for parts in [2, 3] {
            let sharded = try trained(ShardedExchange(parts: parts), lorta: lorta)
            #expect(sharded.parameters == local.parameters, "\(parts) shares")
            #expect(sharded.optimizerState.secondMoments == local.optimizerState.secondMoments)
        }
    }
}
