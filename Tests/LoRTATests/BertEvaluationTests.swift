import Foundation
import Testing
@testable import LoRTA

@Suite struct BertEvaluationTests {
    private static let texts = [
        (1, "good movie"), (0, "bad plot"), (1, "fun fun movie"), (0, "dull boring slow plot"), (1, "good"),
        (0, "slow"), (1, "movie fun good plot"), (0, "bad bad"), (1, "good fun"), (0, "boring movie"), (1, "plot good"),
    ]

    /// evaluate() equals a naive recount: each example alone through `logits`, argmax, and a
    /// float64 log-softmax loss — for several batch sizes (padding differs, the result must not).
    @Test func evaluateMatchesNaiveRecount() throws {
        let model = try tinyBertModel()
        let tokenizer = try tinyBertTokenizer()
        let data = try LabelledTextDataset(examples: Self.texts.map { LabelledText(label: $0.0, text: $0.1) }, labelCount: 2)
        let c = model.configuration
        let lorta = try LoRTAAdapter(configuration: LoRTAConfiguration(rank: 2, alpha: 4, targetModules: ["query", "value"],
                                                                       layerCount: c.layerCount, headCount: c.headCount,
                                                                       headDimension: c.headSize), seed: 5)
        var factors = lorta.factors
        var rng = LoRATestRNG(seed: 9)
        factors.b = rng.tensor(factors.b.shape, scale: 0.5)   // make the adapter act
        let adapters = try LoRTAAdapter(configuration: lorta.configuration, factors: factors)
        let head = try BertClassificationHead(hiddenSize: c.hiddenSize, classCount: 2, seed: 3)

        var correct = 0, loss = 0.0
        for e in data.examples {
            let batch = try tokenizer.encodeBatch([e.text], maxLength: 8, padding: .longest)
            let z = try model.logits(batch, adapter: adapters, head: head).scalars.map(Double.init)
            if (z[1] > z[0] ? 1 : 0) == e.label { correct += 1 }
            let mx = z.max()!
            loss += mx + log(z.map { exp($0 - mx) }.reduce(0, +)) - z[e.label]
        }
        for batchSize in [1, 4, 64] {
            let m = try model.evaluate(data, tokenizer: tokenizer, adapter: adapters, head: head, batchSize: batchSize, maxLength: 8)
            #expect(m.count == data.count)
            #expect(m.correct == correct, "batch size \(batchSize)")
            #expect(abs(m.meanLoss - loss / Double(data.count)) <= 1e-5, "batch size \(batchSize): \(m.meanLoss) vs \(loss / Double(data.count))")
            #expect(m.confusion.reduce(0, +) == data.count)
        }
    }

    /// The observer sees every example once; with labelObserver the collector splits by label.
    @Test func evaluateFeedsAnObserver() throws {
        let model = try tinyBertModel()
        let data = try LabelledTextDataset(examples: Self.texts.map { LabelledText(label: $0.0, text: $0.1) }, labelCount: 2)
        let head = try BertClassificationHead(hiddenSize: 8, classCount: 2, seed: 3)
        let point = ObservationPoint.layerOutput(layer: 1)
        let collector = try StatisticsCollector(points: [point], shape: model.configuration.observationShape)
        var calls: [Int] = []
        _ = try model.evaluate(data, tokenizer: try tinyBertTokenizer(), head: head, batchSize: 4, maxLength: 8,
                               observer: collector, labelObserver: true) { done, _ in calls.append(done) }
        #expect(calls == [4, 8, 11])
        let s = try #require(collector.statistics[point])
        #expect(s.count == data.count)
        #expect(s.labelStatistics[1]?.count == 6 && s.labelStatistics[0]?.count == 5)
        #expect(collector.labels == nil)
    }

    @Test func evaluateRejectsBadInput() throws {
        let model = try tinyBertModel()
        let tokenizer = try tinyBertTokenizer()
        let data3 = try LabelledTextDataset(examples: [LabelledText(label: 2, text: "good")], labelCount: 3)
        let head = try BertClassificationHead(hiddenSize: 8, classCount: 2, seed: 3)
        #expect(throws: BertError.self) { try model.evaluate(data3, tokenizer: tokenizer, head: head) }
        let data = try LabelledTextDataset(examples: [LabelledText(label: 1, text: "good")], labelCount: 2)
        #expect(throws: TrainingError.self) { try model.evaluate(data, tokenizer: tokenizer, head: head, batchSize: 0) }
        let wide = try BertClassificationHead(hiddenSize: 16, classCount: 2, seed: 3)
        #expect(throws: BertError.self) { try model.evaluate(data, tokenizer: tokenizer, head: wide) }
    }
}
