import Foundation
import Testing
@testable import LoRTA

/// Records every view it sees as copies (token rows of all positions, padding included).
private final class RecordingObserver: BertActivationObserver {
    let observationPoints: Set<BertObservationPoint>
    var seen: [(BertObservationPoint, [Float])] = []
    init(_ points: [BertObservationPoint]) { observationPoints = Set(points) }
    func observe(_ view: BertActivationView) throws {
        var all: [Float] = []
        for b in 0..<view.batch.count {
            for t in 0..<view.batch.sequenceLength {
                view.withToken(sequence: b, position: t) { all += $0 }
            }
        }
        seen.append((view.point, all))
    }
}

private final class FailingObserver: BertActivationObserver {
    struct Boom: Error {}
    let observationPoints: Set<BertObservationPoint> = [.layerOutput(layer: 0)]
    func observe(_ view: BertActivationView) throws { throw Boom() }
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
        let points = BertObservationPoint.layerOutputs(c) + BertObservationPoint.attentionHeads(c)
        let batch = observationBatch()
        let recorded = try model.forward(batch, recordingActivations: true)
        let acts = try #require(recorded.activations)
        for record in [true, false] {
            let observer = RecordingObserver(points)
            let out = try model.forward(batch, recordingActivations: record, observer: observer)
            #expect(out.pooled.scalars == recorded.pooled.scalars, "an observer must not change the result")
            #expect(observer.seen.map(\.0) == [.attentionHead(layer: 0, head: 0), .attentionHead(layer: 0, head: 1),
                                               .layerOutput(layer: 0), .attentionHead(layer: 1, head: 0),
                                               .attentionHead(layer: 1, head: 1), .layerOutput(layer: 1)])
            for (point, values) in observer.seen {
                switch point {
                case .layerOutput(let l):
                    #expect(values == acts.layers[l].output.scalars, "\(point) record=\(record)")
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
        let last = BertObservationPoint.layerOutput(layer: c.layerCount - 1)
        let d = c.hiddenSize, T = batch.sequenceLength

        let pooled = try BertStatisticsCollector(points: [last], model: c, reduction: .meanPooled)
        _ = try model.forward(batch, observer: pooled)
        #expect(pooled.statistics[last] == (try ActivationStatistics(out.pooled)))

        let tokens = try BertStatisticsCollector(points: [last], model: c, reduction: .tokens)
        _ = try model.forward(batch, observer: tokens)
        let h = out.lastHiddenState.scalars
        var rows: [Float] = []
        for (i, m) in batch.attentionMask.enumerated() where m == 1 { rows += h[(i * d)..<((i + 1) * d)] }
        #expect(tokens.statistics[last] == (try ActivationStatistics(Tensor(rows, shape: [batch.tokenCount, d]))))

        let first = try BertStatisticsCollector(points: [last], model: c, reduction: .firstToken)
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
        let head = BertObservationPoint.attentionHead(layer: 0, head: 1)
        let b1 = observationBatch(), b2 = tinyBertBatch([[2, 11, 10, 3], [2, 1, 3]], length: 5)
        let collector = try BertStatisticsCollector(points: [head], model: c, reduction: .meanPooled)
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
        #expect(throws: BertError.self) { try BertStatisticsCollector(points: [], model: c) }
        #expect(throws: BertError.self) { try BertStatisticsCollector(points: [.layerOutput(layer: 2)], model: c) }
        #expect(throws: BertError.self) { try BertStatisticsCollector(points: [.attentionHead(layer: 0, head: 2)], model: c) }
        // An observer asking for a point the model lacks fails before any work.
        let bad = RecordingObserver([.layerOutput(layer: 7)])
        #expect(throws: BertError.self) { try model.forward(observationBatch(), observer: bad) }
        #expect(bad.seen.isEmpty)
        // Wrong label count; tokens with labels.
        let collector = try BertStatisticsCollector(points: [.layerOutput(layer: 0)], model: c)
        collector.labels = [0]
        #expect(throws: BertError.labelCountMismatch(expected: 3, actual: 1)) { try model.forward(observationBatch(), observer: collector) }
        let tokens = try BertStatisticsCollector(points: [.layerOutput(layer: 0)], model: c, reduction: .tokens)
        tokens.labels = [0, 1, 0]
        #expect(throws: BertError.self) { try model.forward(observationBatch(), observer: tokens) }
        // The observer's own error stops the forward and comes back unchanged.
        #expect(throws: FailingObserver.Boom.self) { try model.forward(observationBatch(), observer: FailingObserver()) }
    }

    @Test func pointNamesRoundTrip() throws {
        let c = try tinyBertModel().configuration
        for p in BertObservationPoint.layerOutputs(c) + BertObservationPoint.attentionHeads(c) {
            #expect(try BertObservationPoint(parsing: p.description) == p)
        }
        for bad in ["", "layer.x.output", "layer.1", "layer.-1.output", "layer.1.attention.head", "layer.1.attention.head.2.3"] {
            #expect(throws: BertError.self) { try BertObservationPoint(parsing: bad) }
        }
    }
}
