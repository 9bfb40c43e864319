import Foundation
import Testing
@testable import LoRTA

/// Records every view it sees as copies (token rows of all positions, padding included).
private final class RecordingObserver: ActivationObserver {
    let observationPoints: Set<ObservationPoint>
    var seen: [(ObservationPoint, [Float])] = []
    init(_ points: [ObservationPoint]) { observationPoints = Set(points) }
    func observe(_ view: ActivationView) throws {
        var all: [Float] = []
        for b in 0..<view.batch.count {
            for t in 0..<view.batch.sequenceLength {
                view.withToken(sequence: b, position: t) { all += $0 }
            }
        }
        seen.append((view.point, all))
    }
}

private final class FailingObserver: ActivationObserver {
    struct Boom: Error {}
    let observationPoints: Set<ObservationPoint> = [.layerOutput(layer: 0)]
    func observe(_ view: ActivationView) throws { throw Boom() }
}

private func observationBatch() -> TokenBatch {
    tinyBertBatch([[2, 5, 7, 3], [2, 9, 3], [2, 4, 4, 6, 8, 3]], length: 7)
}

/// Columns `[c0, c0 + w)` of every row of an `n × ld` tensor.
private func columns(_ t: Tensor, ld: Int, from c0: Int, width w: Int) -> [Float] {
    let s = t.scalars
    return stride(from: 0, to: s.count, by: ld).flatMap { Array(s[($0 + c0)..<($0 + c0 + w)]) }
}

@Suite struct BertObservationTests {
    /// The views show exactly the recorded activations: each layer output equals the layer's
    /// recorded `output`, each head equals its columns of the recorded attention context; the
    /// non-recording forward (buffers reused, LayerNorm in place) shows the same values.
    @Test func viewsEqualRecordedActivations() throws {
        let model = try tinyBertModel()
        let c = model.configuration
        let points = ObservationPoint.all(c.observationShape)
        let batch = observationBatch()
        let recorded = try model.forward(batch, recordingActivations: true)
        let acts = try #require(recorded.activations)
        for record in [true, false] {
            let observer = RecordingObserver(points)
            let out = try model.forward(batch, recordingActivations: record, observer: observer)
            #expect(out.pooled.scalars == recorded.pooled.scalars, "an observer must not change the result")
            #expect(observer.seen.map(\.0) == [.attentionHead(layer: 0, head: 0), .attentionHead(layer: 0, head: 1),
                                               .mlpOutput(layer: 0), .layerOutput(layer: 0),
                                               .attentionHead(layer: 1, head: 0), .attentionHead(layer: 1, head: 1),
                                               .mlpOutput(layer: 1), .layerOutput(layer: 1)])
            #expect(observer.seen.map(\.0) == points, "the forward's order is the points' sorted order")
            for (point, values) in observer.seen {
                switch point {
                case .layerOutput(let l):
                    #expect(values == acts.layers[l].output.scalars, "\(point) record=\(record)")
                case .mlpOutput(let l):
                    // S2 − A: the second dense layer's output before the residual add.
                    let s2 = acts.layers[l].outputSum.scalars, a = acts.layers[l].attentionOutput.scalars
                    #expect(values == zip(s2, a).map { $0 - $1 }, "\(point) record=\(record)")
                case .attentionHead(let l, let h):
                    #expect(values == columns(acts.layers[l].context, ld: c.hiddenSize, from: h * c.headSize, width: c.headSize),
                            "\(point) record=\(record)")
                }
            }
        }
        #expect(acts.layers[1].output.scalars == recorded.lastHiddenState.scalars)
    }

    /// The collector's statistics equal statistics computed from independently extracted rows:
    /// mean-pooled rows of the last layer are the model's own pooled output; token rows are
    /// the unpadded rows of the last hidden state; first-token rows are row 0 of each sequence.
    @Test func collectorMatchesIndependentRows() throws {
        let model = try tinyBertModel()
        let c = model.configuration
        let batch = observationBatch()
        let out = try model.forward(batch)
        let last = ObservationPoint.layerOutput(layer: c.layerCount - 1)
        let d = c.hiddenSize, T = batch.sequenceLength

        let pooled = try StatisticsCollector(points: [last], shape: c.observationShape, reduction: .meanPooled)
        _ = try model.forward(batch, observer: pooled)
        #expect(pooled.statistics[last] == (try ActivationStatistics(out.pooled)))

        let tokens = try StatisticsCollector(points: [last], shape: c.observationShape, reduction: .tokens)
        _ = try model.forward(batch, observer: tokens)
        let h = out.lastHiddenState.scalars
        var rows: [Float] = []
        for (i, m) in batch.attentionMask.enumerated() where m == 1 { rows += h[(i * d)..<((i + 1) * d)] }
        #expect(tokens.statistics[last] == (try ActivationStatistics(Tensor(rows, shape: [batch.tokenCount, d]))))

        let first = try StatisticsCollector(points: [last], shape: c.observationShape, reduction: .firstToken)
        _ = try model.forward(batch, observer: first)
        let firstRows = (0..<batch.count).flatMap { b in h[(b * T * d)..<(b * T * d + d)] }
        #expect(first.statistics[last] == (try ActivationStatistics(Tensor(firstRows, shape: [batch.count, d]))))
        #expect(first.statistics[last]?.count == batch.count)
    }

    /// Two forwards accumulate like one pass over both batches' rows (up to float64 rounding),
    /// and per-label statistics split the sequences by label.
    @Test func collectorAccumulatesAndSplitsByLabel() throws {
        let model = try tinyBertModel()
        let c = model.configuration
        let head = ObservationPoint.attentionHead(layer: 0, head: 1)
        let b1 = observationBatch(), b2 = tinyBertBatch([[2, 11, 10, 3], [2, 1, 3]], length: 5)
        let collector = try StatisticsCollector(points: [head], shape: c.observationShape, reduction: .meanPooled)
        collector.labels = [0, 1, 1]
        _ = try model.forward(b1, observer: collector)
        collector.labels = [1, 0]
        _ = try model.forward(b2, observer: collector)
        let s = try #require(collector.statistics[head])
        #expect(s.count == 5)
        #expect(s.labels == [0, 1])
        #expect(s.labelStatistics[0]?.count == 2 && s.labelStatistics[1]?.count == 3)

        // Reference: the pooled head rows extracted by a recording observer, in one batch.
        let rec = RecordingObserver([head])
        _ = try model.forward(b1, observer: rec)
        _ = try model.forward(b2, observer: rec)
        var pooledRows: [[Double]] = []
        for ((_, values), batch) in zip(rec.seen, [b1, b2]) {
            for b in 0..<batch.count {
                var m = [Double](repeating: 0, count: c.headSize)
                for t in 0..<batch.lengths[b] {
                    for j in 0..<c.headSize { m[j] += Double(values[(b * batch.sequenceLength + t) * c.headSize + j]) }
                }
                pooledRows.append(m.map { $0 / Double(batch.lengths[b]) })
            }
        }
        let refMean = (0..<c.headSize).map { j in pooledRows.map { $0[j] }.reduce(0, +) / 5 }
        for j in 0..<c.headSize { #expect(abs(s.mean[j] - refMean[j]) <= 1e-6 * max(1, abs(refMean[j]))) }
    }

    @Test func errorsAreTyped() throws {
        let model = try tinyBertModel()
        let c = model.configuration
        #expect(throws: ObservationError.self) { try StatisticsCollector(points: [], shape: c.observationShape) }
        #expect(throws: ObservationError.self) { try StatisticsCollector(points: [.layerOutput(layer: 2)], shape: c.observationShape) }
        #expect(throws: ObservationError.self) { try StatisticsCollector(points: [.attentionHead(layer: 0, head: 2)], shape: c.observationShape) }
        // An observer asking for a point the model lacks fails before any work.
        let bad = RecordingObserver([.layerOutput(layer: 7)])
        #expect(throws: ObservationError.self) { try model.forward(observationBatch(), observer: bad) }
        #expect(bad.seen.isEmpty)
        // Wrong label count; tokens with labels.
        let collector = try StatisticsCollector(points: [.layerOutput(layer: 0)], shape: c.observationShape)
        collector.labels = [0]
        #expect(throws: ObservationError.labelCountMismatch(expected: 3, actual: 1)) { try model.forward(observationBatch(), observer: collector) }
        let tokens = try StatisticsCollector(points: [.layerOutput(layer: 0)], shape: c.observationShape, reduction: .tokens)
        tokens.labels = [0, 1, 0]
        #expect(throws: ObservationError.self) { try model.forward(observationBatch(), observer: tokens) }
        // The observer's own error stops the forward and comes back unchanged.
        #expect(throws: FailingObserver.Boom.self) { try model.forward(observationBatch(), observer: FailingObserver()) }
    }

    @Test func pointNamesRoundTrip() throws {
        let c = try tinyBertModel().configuration
        for p in ObservationPoint.all(c.observationShape) {
            #expect(try ObservationPoint(parsing: p.description) == p)
        }
        #expect(ObservationPoint.mlpOutput(layer: 1).description == "layer.1.mlp.output")
        #expect(try ObservationPoint.list("mlp", shape: c.observationShape) == [.mlpOutput(layer: 0), .mlpOutput(layer: 1)])
        #expect(try ObservationPoint.list("all", shape: c.observationShape) == ObservationPoint.all(c.observationShape))
        #expect(throws: ObservationError.self) { try ObservationPoint.list("layer.2.mlp.output", shape: c.observationShape) }
        for bad in ["", "layer.x.output", "layer.1", "layer.-1.output", "layer.1.attention.head", "layer.1.attention.head.2.3",
                    "layer.1.mlp", "layer.1.mlp.input"] {
            #expect(throws: ObservationError.self) { try ObservationPoint(parsing: bad) }
        }
    }
}

// MARK: - The same observation on the causal LM

private func observationTinyLlama() throws -> LlamaModel {
    let url = Bundle.module.resourceURL!.appendingPathComponent("Fixtures/llama/tiny/tiny_untied_hf")
    try #require(FileManager.default.fileExists(atPath: url.path), "fixture tiny_untied_hf missing")
    return try LlamaModel(contentsOf: url)
}

/// Right-padded batch of token rows (pad id 0, mask 0 on the padding).
private func observationRightPadded(_ rows: [[Int32]]) -> TokenBatch {
    let batch = TokenBatch(rightPadding: rows, paddingID: 0)
    // The public initialiser against the layout written out by hand.
    let T = rows.map(\.count).max()!
    #expect(batch.ids == rows.flatMap { $0 + Array(repeating: 0, count: T - $0.count) })
    #expect(batch.attentionMask == rows.flatMap { Array(repeating: Int32(1), count: $0.count) + Array(repeating: 0, count: T - $0.count) })
    return batch
}

@Suite struct LlamaObservationTests {
    /// The views of a Llama forward are its own activations: each layer output equals the next
    /// layer's recorded input (the last one: the final hidden state), each head its columns of
    /// the recorded attention context — with and without an adapter, in the order heads then
    /// output per layer.
    @Test func viewsEqualRecordedActivations() throws {
        let model = try observationTinyLlama()
        let c = model.configuration, shape = c.observationShape
        let points = ObservationPoint.all(shape)
        let rows: [[Int32]] = [[1, 5, 9, 3, 7], [2, 8, 4, 6, 11]]
        let batch = observationRightPadded(rows)
        var g = LoRTATestRNG(5)
        var lora = try LoRAAdapter(host: model.adapterHost, targets: ["q_proj", "o_proj"],
                                   configuration: LoRAConfiguration(rank: 2, alpha: 4), seed: 1)
        try lora.setParameters(lora.parameters.map { g.tensor($0.shape, scale: 0.3) })
        for adapter in [nil, lora] as [(any Adapter)?] {
            let observer = RecordingObserver(points)
            try model.observe(batch, adapter: adapter, observer: observer)
            var cache = try model.makeCache(batchSize: 2, capacity: batch.sequenceLength)
            let record = LlamaActivationRecord()
            let final = try model.hiddenStates(batch.ids, cache: &cache, adapter: adapter, record: record)
            let expectedOrder = (0..<c.layerCount).flatMap { l in
                (0..<c.headCount).map { ObservationPoint.attentionHead(layer: l, head: $0) } + [.mlpOutput(layer: l), .layerOutput(layer: l)]
            }
            #expect(observer.seen.map(\.0) == expectedOrder)
            for (point, values) in observer.seen {
                switch point {
                case .layerOutput(let l):
                    let expected = l + 1 < c.layerCount ? record.layers[l + 1].input : final
                    #expect(values == expected.scalars, "\(point)")
                case .mlpOutput(let l):
                    // The residual stream after the block minus the one before the MLP.
                    let after = (l + 1 < c.layerCount ? record.layers[l + 1].input : final).scalars
                    #expect(values == zip(after, record.layers[l].middle.scalars).map { $0 - $1 }, "\(point)")
                case .attentionHead(let l, let h):
                    #expect(values == columns(record.layers[l].context, ld: c.queryWidth, from: h * c.headDimension,
                                              width: c.headDimension), "\(point)")
                }
            }
        }
    }

    /// Right padding does not change the real tokens' statistics: a padded batch gives the same
    /// mean-pooled and last-token statistics as each sequence observed alone (up to GEMM
    /// rounding, which depends on the row count), and the last-token rows are the rows at the
    /// last real position. Left padding is refused.
    @Test func paddingIsSkippedAndLastTokenIsTheLastRealOne() throws {
        let model = try observationTinyLlama()
        let shape = model.configuration.observationShape
        let point = ObservationPoint.layerOutput(layer: 1)
        let rows: [[Int32]] = [[1, 5, 9], [2, 8, 4, 6, 11, 3], [7]]
        for reduction in [StatisticsCollector.Reduction.meanPooled, .lastToken] {
            let padded = try StatisticsCollector(points: [point], shape: shape, reduction: reduction)
            try model.observe(observationRightPadded(rows), observer: padded)
            let alone = try StatisticsCollector(points: [point], shape: shape, reduction: reduction)
            for r in rows { try model.observe(observationRightPadded([r]), observer: alone) }
            let a = try #require(padded.statistics[point]), b = try #require(alone.statistics[point])
            #expect(a.count == 3 && b.count == 3)
            let ma = a.mean, mb = b.mean
            let scale = mb.map { abs($0) }.max()!
            let worst = zip(ma, mb).map { abs($0 - $1) }.max()!
            #expect(worst <= 1e-4 * max(scale, 1), "\(reduction): max |Δ mean| \(worst)")
        }
        // Last token = the row at the last real position of each sequence.
        let batch = observationRightPadded(rows)
        let recorder = RecordingObserver([point])
        try model.observe(batch, observer: recorder)
        final class LastRows: ActivationObserver {
            let observationPoints: Set<ObservationPoint>
            var rows: [Float] = []
            init(_ p: ObservationPoint) { observationPoints = [p] }
            func observe(_ view: ActivationView) throws { rows = view.lastTokenRows().scalars }
        }
        let last = LastRows(point)
        try model.observe(batch, observer: last)
        let d = shape.hiddenSize, all = recorder.seen[0].1
        var expected: [Float] = []
        for (b, r) in rows.enumerated() {
            let start = (b * batch.sequenceLength + r.count - 1) * d
            expected += all[start..<(start + d)]
        }
        #expect(last.rows == expected)
        // Left padding (a real token after padding) is refused; unknown points too.
        let left = TokenBatch(count: 1, sequenceLength: 3, ids: [0, 4, 5], attentionMask: [0, 1, 1], lengths: [2])
        #expect(throws: ObservationError.self) { try model.observe(left, observer: recorder) }
        let bad = RecordingObserver([.attentionHead(layer: 0, head: shape.headCount)])
        #expect(throws: ObservationError.self) { try model.observe(batch, observer: bad) }
    }
}
