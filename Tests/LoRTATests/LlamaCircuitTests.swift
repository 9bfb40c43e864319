import Foundation
import Testing
@testable import LoRTA

// Mean ablation and attribution patching on the Llama decoder (LlamaModel.nextTokenLogits,
// observe(ablation:), LlamaAttribution.swift), on the tiny Llama fixture (GGUF Q8_0, 2 layers,
// 4 heads / 2 KV heads) with and without LoRA / LoRTA adapters of nonzero B:
// - no ablation or an empty ablated set is the plain forward bit for bit;
// - full-strength ablation makes the observed head context / MLP output exactly the mean;
// - attributions equal the central finite difference of y along the ablation strength, for
//   heads and MLPs of both layers, two inputs of different lengths in one padded batch, and an
//   input's attribution does not depend on the batch it is in;
// - results do not depend on the thread count; bad arguments are typed errors.

private func circuitTinyLlama() throws -> LlamaModel {
    let base = try #require(Bundle.module.resourceURL)
    let url = base.appendingPathComponent("Fixtures/llama/tiny/tiny_untied.q8_0.gguf")
    try #require(FileManager.default.fileExists(atPath: url.path), "fixture tiny_untied.q8_0.gguf missing")
    return try CausalLanguageModel(contentsOf: url).model
}

/// Records every view it sees as copies (all positions, padding included).
private final class CircuitRecorder: ActivationObserver {
    let observationPoints: Set<ObservationPoint>
    var seen: [ObservationPoint: [[Float]]] = [:]   // per point: one row per token b·T + t
    init(_ points: [ObservationPoint]) { observationPoints = Set(points) }
    func observe(_ view: ActivationView) throws {
        var rows: [[Float]] = []
        for b in 0..<view.batch.count {
            for t in 0..<view.batch.sequenceLength { view.withToken(sequence: b, position: t) { rows.append(Array($0)) } }
        }
        seen[view.point] = rows
    }
}

private let prompts: [[Int32]] = [[12, 57, 201, 33, 98, 7], [140, 3, 66], [250, 18, 91, 45, 110, 202, 9, 31]]

/// Means of every component: mean-pooled activations of a few prompts (unadapted model).
private func circuitMeans(_ model: LlamaModel) throws -> MeanAblation {
    let shape = model.configuration.observationShape
    let comps = ModelComponent.all(shape)
    let collector = try StatisticsCollector(points: comps.map(\.observationPoint), shape: shape, reduction: .meanPooled)
    try model.observe(TokenBatch(rightPadding: prompts, paddingID: 0), observer: collector)
    var means: [ModelComponent: [Float]] = [:]
    for c in comps { means[c] = try #require(collector.statistics[c.observationPoint]).mean.map { Float($0) } }
    return try MeanAblation(means: means, shape: shape)
}

private func adapters(_ model: LlamaModel) throws -> [(String, (any Adapter)?)] {
    [("none", nil), ("lora", try LlamaTrainingTests.lora(model)), ("lorta", try LlamaTrainingTests.lorta(model))]
}

/// log softmax(z_b)[k] in float64.
private func logProbability(_ z: Tensor, row b: Int, token k: Int) -> Double {
    let V = z.shape[1]
    let r = (0..<V).map { Double(z.scalars[b * V + $0]) }
    let top = r.max()!
    return r[k] - top - Foundation.log(r.reduce(0) { $0 + Foundation.exp($1 - top) })
}

private func row(_ t: Tensor, _ i: Int) -> [Float] {
    let w = t.shape[1]
    return Array(t.scalars[(i * w)..<((i + 1) * w)])
}

@Suite struct LlamaCircuitTests {
    /// Without ablation (nil or an empty set) nextTokenLogits is the plain forward: bit for bit
    /// the `.last` logits of equal-length sequences, and for a padded batch each row is the
    /// logits of its last real token (against the `.all` forward of the same batch and
    /// `logits(for:)` of the sequence alone, up to GEMM rounding, which depends on the row count).
    @Test func noAblationIsThePlainForward() throws {
        let model = try circuitTinyLlama()
        var empty = try circuitMeans(model)
        empty.ablated = []
        empty.strength = 0.3
        for (name, adapter) in try adapters(model) {
            // Equal lengths: the generation forward.
            let same = TokenBatch(rightPadding: [prompts[0], Array(prompts[2].prefix(6))], paddingID: 0)
            var cache = try model.makeCache(batchSize: 2, capacity: 6)
            let reference = try model.forward(same.ids, cache: &cache, logits: .last, adapter: adapter)
            let z = try model.nextTokenLogits(same, adapter: adapter)
            #expect(z.shape == [2, model.configuration.vocabularySize])
            #expect(z.scalars == reference.scalars, "\(name)")
            #expect(try model.nextTokenLogits(same, adapter: adapter, ablation: empty).scalars == reference.scalars, "\(name)")

            // Padded: each row at the last real token.
            let batch = TokenBatch(rightPadding: prompts, paddingID: 0)
            let T = batch.sequenceLength
            var cache2 = try model.makeCache(batchSize: 3, capacity: T)
            let all = try model.forward(batch.ids, cache: &cache2, logits: .all, adapter: adapter)
            let padded = try model.nextTokenLogits(batch, adapter: adapter)
            #expect(try model.nextTokenLogits(batch, adapter: adapter, ablation: empty).scalars == padded.scalars, "\(name)")
            for (b, p) in prompts.enumerated() {
                // Same hidden states; the output projection on B rows instead of B·T rounds differently.
                let worst0 = zip(row(padded, b), row(all, b * T + p.count - 1)).map { abs($0 - $1) }.max()!
                #expect(worst0 <= 1e-5, "\(name) row \(b): max |Δ| against the .all forward \(worst0)")
                var c1 = try model.makeCache(capacity: p.count)
                let alone = try model.forward(p, cache: &c1, logits: .all, adapter: adapter)
                let worst = zip(row(padded, b), row(alone, p.count - 1)).map { abs($0 - $1) }.max()!
                #expect(worst <= 1e-4, "\(name) row \(b): max |Δ| \(worst)")
                if adapter == nil {
                    let plain = try model.logits(for: p)
                    let worst2 = zip(row(padded, b), row(plain, p.count - 1)).map { abs($0 - $1) }.max()!
                    #expect(worst2 <= 1e-4, "row \(b): max |Δ| against logits(for:) \(worst2)")
                }
            }
            // The observer sees the same activations with an empty ablation set.
            let points = ObservationPoint.all(model.configuration.observationShape)
            let r1 = CircuitRecorder(points), r2 = CircuitRecorder(points)
            try model.observe(batch, adapter: adapter, observer: r1)
            _ = try model.nextTokenLogits(batch, adapter: adapter, observer: r2, ablation: empty)
            #expect(r1.seen == r2.seen, "\(name)")
        }
    }

    /// Full-strength ablation: the observed context columns of an ablated head and the observed
    /// output of an ablated MLP are the mean at every position; other heads of the ablated
    /// layer before it are unchanged, and the logits change.
    @Test func fullAblationReplacesActivationsByTheMean() throws {
        let model = try circuitTinyLlama()
        let shape = model.configuration.observationShape
        var ablation = try circuitMeans(model)
        let head = ModelComponent.attentionHead(layer: 0, head: 1), mlp0 = ModelComponent.mlp(layer: 0)
        let head1 = ModelComponent.attentionHead(layer: 1, head: 3), mlp1 = ModelComponent.mlp(layer: 1)
        ablation.ablated = [head, mlp0, head1, mlp1]
        let batch = TokenBatch(rightPadding: prompts, paddingID: 0)
        let points = ObservationPoint.all(shape)
        for (name, adapter) in try adapters(model) {
            let plain = CircuitRecorder(points), ablated = CircuitRecorder(points)
            let z0 = try model.nextTokenLogits(batch, adapter: adapter, observer: plain)
            let z1 = try model.nextTokenLogits(batch, adapter: adapter, observer: ablated, ablation: ablation)
            for c in ablation.ablated {
                let rows = try #require(ablated.seen[c.observationPoint])
                #expect(rows.count == batch.ids.count)
                #expect(rows.allSatisfy { $0 == ablation.means[c]! }, "\(name) \(c)")
            }
            // Layer 0's heads other than 1 see the same input: unchanged.
            for h in [0, 2, 3] {
                let p = ObservationPoint.attentionHead(layer: 0, head: h)
                #expect(plain.seen[p] == ablated.seen[p], "\(name) \(p)")
            }
            #expect(z0.scalars != z1.scalars, "\(name)")
            // observe(ablation:) sees what nextTokenLogits(ablation:) sees.
            let viaObserve = CircuitRecorder(points)
            try model.observe(batch, adapter: adapter, observer: viaObserve, ablation: ablation)
            #expect(viaObserve.seen == ablated.seen, "\(name)")
        }
    }

    /// Attribution patching = d y / d strength at 0, checked by central differences (strength
    /// ±ε) for heads and MLPs of both layers, on two inputs of different real lengths in one
    /// padded batch; predicted and given target tokens; each input's attributions are those of
    /// the input alone.
    @Test func attributionsMatchFiniteDifferences() throws {
        let model = try circuitTinyLlama()
        let means = try circuitMeans(model)
        let comps: [ModelComponent] = [.attentionHead(layer: 0, head: 0), .attentionHead(layer: 0, head: 3), .mlp(layer: 0),
                                       .attentionHead(layer: 1, head: 1), .attentionHead(layer: 1, head: 2), .mlp(layer: 1)]
        let inputs = [prompts[0], prompts[1]]
        let batch = TokenBatch(rightPadding: inputs, paddingID: 0)
        let eps: Float = 1e-2
        var worst = 0.0, largest = 0.0
        for (name, adapter) in try adapters(model) {
            for targets in [nil, [Int32(5), 100]] as [[Int32]?] {
                let attr = try model.attributions(batch, adapter: adapter, means: means, components: comps, targetTokens: targets)
                #expect(attr.components == comps)
                #expect(attr.values.count == 2 && attr.values.allSatisfy { $0.count == comps.count })
                let z = try model.nextTokenLogits(batch, adapter: adapter)
                for b in 0..<2 {
                    let k = targets.map { Int($0[b]) } ?? row(z, b).indices.max { row(z, b)[$0] < row(z, b)[$1] }!
                    #expect(attr.classes[b] == k)
                    #expect(abs(attr.logProbabilities[b] - logProbability(z, row: b, token: k)) <= 1e-5)
                }
                for (i, c) in comps.enumerated() {
                    var plus = means, minus = means
                    plus.ablated = [c]; plus.strength = eps
                    minus.ablated = [c]; minus.strength = -eps
                    let zp = try model.nextTokenLogits(batch, adapter: adapter, ablation: plus)
                    let zm = try model.nextTokenLogits(batch, adapter: adapter, ablation: minus)
                    for b in 0..<2 {
                        let k = attr.classes[b]
                        let fd = (logProbability(zp, row: b, token: k) - logProbability(zm, row: b, token: k)) / Double(2 * eps)
                        let a = attr.values[b][i]
                        let err = abs(fd - a), tol = 2e-2 * max(abs(a), abs(fd)) + 2e-3
                        worst = max(worst, err / tol)
                        largest = max(largest, abs(a))
                        #expect(err <= tol, "\(name) targets \(String(describing: targets)) input \(b) \(c): attribution \(a), finite difference \(fd)")
                    }
                }
                // Each input alone gives its row (up to GEMM rounding of other row counts).
                for b in 0..<2 {
                    let alone = try model.attributions(TokenBatch(rightPadding: [inputs[b]], paddingID: 0), adapter: adapter,
                                                       means: means, components: comps, targetTokens: targets.map { [$0[b]] })
                    #expect(alone.classes[0] == attr.classes[b])
                    for i in comps.indices {
                        let x = alone.values[0][i], y = attr.values[b][i]
                        #expect(abs(x - y) <= 1e-3 * max(abs(x), 1e-2), "\(name) input \(b) \(comps[i]): alone \(x), batched \(y)")
                    }
                }
            }
        }
        print("Llama attributions vs finite differences: worst error \(worst) of the tolerance, largest |attribution| \(largest)")
        #expect(largest > 0.05, "the check is not vacuous")
        // Default components: every component with a mean, sorted.
        let all = try model.attributions(batch, means: means)
        #expect(all.components == ModelComponent.all(model.configuration.observationShape))
    }

    /// nextTokenLogits (with an adapter and a partial ablation) and attributions do not depend on
    /// the thread count.
    @Test func threadCountIndependent() throws {
        let model = try circuitTinyLlama()
        var ablation = try circuitMeans(model)
        ablation.ablated = [.attentionHead(layer: 0, head: 2), .mlp(layer: 1)]
        ablation.strength = 0.5
        let adapter = try LlamaTrainingTests.lora(model)
        let batch = TokenBatch(rightPadding: prompts, paddingID: 0)
        let saved = Runtime.threadCount
        defer { try? Runtime.setThreadCount(saved) }
        var logits: [[Float]] = [], attributions: [[[Double]]] = []
        for threads in [1, 2] {
            try Runtime.setThreadCount(threads)
            logits.append(try model.nextTokenLogits(batch, adapter: adapter, ablation: ablation).scalars)
            logits.append(try model.nextTokenLogits(batch, adapter: adapter).scalars)
            attributions.append(try model.attributions(batch, adapter: adapter, means: ablation).values)
        }
        #expect(logits[0] == logits[2])
        #expect(logits[1] == logits[3])
        #expect(attributions[0] == attributions[1])
    }

    /// Bad arguments are typed errors.
    @Test func errors() throws {
        let model = try circuitTinyLlama()
        let shape = model.configuration.observationShape
        let full = try circuitMeans(model)
        let head = ModelComponent.attentionHead(layer: 1, head: 0)
        var partial = full.means
        partial[head] = nil
        let missing = try MeanAblation(means: partial, shape: shape)
        let batch = TokenBatch(rightPadding: prompts, paddingID: 0)
        #expect(throws: CircuitError.missingMean(component: "\(head)")) {
            try model.attributions(batch, means: missing, components: [head])
        }
        var ablate = missing
        ablate.ablated = [head]   // set directly: not checked until the forward
        #expect(throws: CircuitError.missingMean(component: "\(head)")) { try model.nextTokenLogits(batch, ablation: ablate) }
        let invalid = #expect(throws: CircuitError.self) { try model.attributions(batch, means: full, components: [.mlp(layer: 2)]) }
        if case .invalidComponent = invalid {} else { Issue.record("expected invalidComponent, got \(String(describing: invalid))") }
        for targets in [[1, 2], [1, 2, Int32(model.configuration.vocabularySize)], [1, -1, 2]] as [[Int32]] {
            let e = #expect(throws: CircuitError.self) { try model.attributions(batch, means: full, targetTokens: targets) }
            if case .invalidTargetClass = e {} else { Issue.record("\(targets): expected invalidTargetClass, got \(String(describing: e))") }
        }
        var badStrength = full
        badStrength.ablated = [head]; badStrength.strength = .nan
        #expect(throws: CircuitError.self) { try model.nextTokenLogits(batch, ablation: badStrength) }
        // Bad batches: left padding, a row without real tokens.
        let left = TokenBatch(count: 2, sequenceLength: 3, ids: [0, 5, 6, 7, 8, 9], attentionMask: [0, 1, 1, 1, 1, 1], lengths: [2, 3])
        #expect(throws: ObservationError.self) { try model.nextTokenLogits(left) }
        let emptyRow = TokenBatch(rightPadding: [[4, 5], []], paddingID: 0)
        #expect(throws: LlamaError.self) { try model.nextTokenLogits(emptyRow) }
        #expect(throws: LlamaError.self) { try model.attributions(emptyRow, means: full) }
    }
}
