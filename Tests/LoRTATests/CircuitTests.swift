import Foundation
import Testing
@testable import LoRTA

/// Records every token (padding included) of every observed point, per forward.
private final class TokenRecorder: ActivationObserver {
    let observationPoints: Set<ObservationPoint>
    var rows: [ObservationPoint: [Float]] = [:]
    init(_ points: [ObservationPoint]) { observationPoints = Set(points) }
    func observe(_ view: ActivationView) throws {
        var out: [Float] = []
        for b in 0..<view.batch.count {
            for t in 0..<view.batch.sequenceLength { view.withToken(sequence: b, position: t) { out += $0 } }
        }
        rows[view.point] = out
    }
}

/// Trusted inputs: `count` sequences of 3–7 tokens over ids 2–11.
private func circuitInputs(_ count: Int, seed: UInt64) -> [[Int32]] {
    var g = LoRTATestRNG(seed)
    return (0..<count).map { _ in (0..<(3 + Int(g.next() % 5))).map { _ in Int32(2 + g.next() % 10) } }
}

/// y = log softmax(z)[k] in float64 for every row of `[B, classes]` logits.
private func logProbabilities(_ z: Tensor, classes k: [Int]) -> [Double] {
    let c = z.shape[1], s = z.scalars
    return k.enumerated().map { b, k in
        let row = (0..<c).map { Double(s[b * c + $0]) }
        let top = row.max()!
        return row[k] - top - log(row.reduce(0) { $0 + exp($1 - top) })
    }
}

@Suite("Circuits", .serialized)
struct CircuitTests {
    /// A batch with padding (different lengths).
    static let batch = tinyBertBatch([[2, 4, 6, 8, 3], [2, 5, 7, 3], [2, 9, 10, 11, 6, 3], [2, 4, 3]], length: 7)

    /// Means of every component: the mean-pooled trusted means of a `StatisticsCollector`.
    static func means(_ model: BertModel, adapter: (any Adapter)? = nil) throws -> [ModelComponent: [Float]] {
        let shape = model.configuration.observationShape
        let comps = ModelComponent.all(shape)
        let collector = try StatisticsCollector(points: comps.map(\.observationPoint), shape: shape, reduction: .meanPooled)
        _ = try model.forward(tinyBertBatch(circuitInputs(24, seed: 5), length: 8), adapter: adapter, observer: collector)
        return Dictionary(uniqueKeysWithValues: comps.map { c in (c, collector.statistics[c.observationPoint]!.mean.map { Float($0) }) })
    }

    @Test func componentNamesParseAndValidate() throws {
        let shape = ObservationShape(layerCount: 2, headCount: 2, hiddenSize: 8, headDimension: 4)
        let all = ModelComponent.all(shape)
        #expect(all.map(\.description) == ["layer.0.attention.head.0", "layer.0.attention.head.1", "layer.0.mlp",
                                           "layer.1.attention.head.0", "layer.1.attention.head.1", "layer.1.mlp"])
        #expect(all == all.sorted())
        for c in all { #expect(try ModelComponent(parsing: c.description) == c) }
        #expect(ModelComponent.mlp(layer: 1).observationPoint == .mlpOutput(layer: 1))
        #expect(ModelComponent.attentionHead(layer: 1, head: 0).observationPoint == .attentionHead(layer: 1, head: 0))
        #expect(ModelComponent.mlp(layer: 0).width(in: shape) == 8)
        #expect(ModelComponent.attentionHead(layer: 0, head: 1).width(in: shape) == 4)
        for bad in ["layer.1.mlp.output", "layer.-1.mlp", "layer.1.attention.head", "mlp", ""] {
            #expect(throws: CircuitError.self) { try ModelComponent(parsing: bad) }
        }
        #expect(throws: CircuitError.self) { try ModelComponent.attentionHead(layer: 0, head: 2).validate(for: shape) }
        #expect(throws: CircuitError.self) { try ModelComponent.mlp(layer: 2).validate(for: shape) }
    }

    @Test func ablationChecksItsInput() throws {
        let model = try tinyBertModel()
        let shape = model.configuration.observationShape
        let head = ModelComponent.attentionHead(layer: 0, head: 0)
        #expect(throws: CircuitError.meanWidthMismatch(component: "\(head)", expected: 4, actual: 3)) {
            try MeanAblation(means: [head: [0, 0, 0]], shape: shape)
        }
        #expect(throws: CircuitError.nonFiniteMean(component: "\(head)", index: 1)) {
            try MeanAblation(means: [head: [0, .nan, 0, 0]], shape: shape)
        }
        #expect(throws: CircuitError.missingMean(component: "layer.0.mlp")) {
            try MeanAblation(means: [head: [0, 0, 0, 0]], shape: shape, ablated: [.mlp(layer: 0)])
        }
        var a = try MeanAblation(means: [head: [0, 0, 0, 0]], shape: shape, ablated: [head])
        a.ablated.insert(.mlp(layer: 1))  // the forward checks the mutable set
        #expect(throws: CircuitError.missingMean(component: "layer.1.mlp")) { try model.forward(Self.batch, ablation: a) }
        a.ablated = [head]
        a.strength = .infinity
        #expect(throws: CircuitError.invalidStrength(.infinity)) { try model.forward(Self.batch, ablation: a) }
        let other = try tinyBertModel(layers: 3)
        a.strength = 1
        #expect(throws: CircuitError.self) { try other.forward(Self.batch, ablation: a) }
    }

    /// An empty ablation set (and a nil ablation) is the plain forward bit for bit, recorded or not.
    @Test func ablatingNothingIsBitForBit() throws {
        let model = try tinyBertModel()
        let shape = model.configuration.observationShape
        let ablation = try MeanAblation(means: Self.means(model), shape: shape)
        for record in [false, true] {
            let plain = try model.forward(Self.batch, recordingActivations: record)
            let none = try model.forward(Self.batch, recordingActivations: record, ablation: nil)
            let empty = try model.forward(Self.batch, recordingActivations: record, ablation: ablation)
            #expect(none.lastHiddenState.scalars == plain.lastHiddenState.scalars)
            #expect(empty.lastHiddenState.scalars == plain.lastHiddenState.scalars)
            #expect(empty.pooled.scalars == plain.pooled.scalars)
        }
        let head = try BertClassificationHead(hiddenSize: 8, classCount: 3, seed: 4)
        #expect(try model.logits(Self.batch, head: head, ablation: ablation).scalars == model.logits(Self.batch, head: head).scalars)
    }

    /// Ablating head (1, 0): its observed view is the mean at every token (padding included);
    /// everything of layer 0 and the other head of layer 1 are unchanged bit for bit; the layer-1
    /// output and the logits change. The same with the recorded forward (its saved context holds
    /// the mean). Strength ½ moves the head halfway.
    @Test func ablatedHeadIsItsMean() throws {
        let model = try tinyBertModel()
        let shape = model.configuration.observationShape
        let means = try Self.means(model)
        let target = ModelComponent.attentionHead(layer: 1, head: 0), mu = means[target]!
        let points = ObservationPoint.all(shape)
        let plain = TokenRecorder(points)
        _ = try model.forward(Self.batch, observer: plain)
        let n = Self.batch.count * Self.batch.sequenceLength
        for record in [false, true] {
            let ablated = TokenRecorder(points)
            let out = try model.forward(Self.batch, recordingActivations: record, observer: ablated,
                                        ablation: MeanAblation(means: means, shape: shape, ablated: [target]))
            #expect(ablated.rows[target.observationPoint]! == Array((0..<n).map { _ in mu }.joined()))
            for p in points where p.layer == 0 || p == .attentionHead(layer: 1, head: 1) {
                #expect(ablated.rows[p]! == plain.rows[p]!, "\(p)")
            }
            #expect(ablated.rows[.layerOutput(layer: 1)]! != plain.rows[.layerOutput(layer: 1)]!)
            if record {
                let ctx = try #require(out.activations).layers[1].context.scalars
                for i in 0..<n { #expect(Array(ctx[(i * 8)..<(i * 8 + 4)]) == mu) }
            }
        }
        let half = TokenRecorder([target.observationPoint])
        _ = try model.forward(Self.batch, observer: half, ablation: MeanAblation(means: means, shape: shape, ablated: [target],
                                                                                 strength: 0.5))
        let a = plain.rows[target.observationPoint]!, h = half.rows[target.observationPoint]!
        for i in a.indices { #expect(abs(h[i] - (a[i] + 0.5 * (mu[i % 4] - a[i]))) <= 1e-6) }
    }

    /// Ablating MLP 0 with mean μ: the observed MLP output is μ at every token; the recorded
    /// layer output equals LayerNorm(A + μ) computed here in float64 from the recorded A and the
    /// LayerNorm weights; the heads of layer 0 are unchanged.
    @Test func ablatedMLPByHand() throws {
        let model = try tinyBertModel()
        let shape = model.configuration.observationShape, d = 8
        let means = try Self.means(model)
        let mu = means[.mlp(layer: 0)]!
        let recorder = TokenRecorder(ObservationPoint.all(shape))
        let plain = TokenRecorder(ObservationPoint.all(shape))
        _ = try model.forward(Self.batch, observer: plain)
        let out = try model.forward(Self.batch, recordingActivations: true, observer: recorder,
                                    ablation: MeanAblation(means: means, shape: shape, ablated: [.mlp(layer: 0)]))
        let n = Self.batch.count * Self.batch.sequenceLength
        #expect(recorder.rows[.mlpOutput(layer: 0)]! == Array((0..<n).map { _ in mu }.joined()))
        for h in 0..<2 { #expect(recorder.rows[.attentionHead(layer: 0, head: h)]! == plain.rows[.attentionHead(layer: 0, head: h)]!) }
        #expect(recorder.rows[.layerOutput(layer: 0)]! != plain.rows[.layerOutput(layer: 0)]!)
        let act = try #require(out.activations).layers[0]
        let A = act.attentionOutput.scalars, Y = act.output.scalars
        let gamma = model.layers[0].outputNormWeight.scalars, beta = model.layers[0].outputNormBias.scalars
        let eps = Double(model.configuration.layerNormEpsilon)
        var worst = 0.0
        for i in 0..<n {
            let s = (0..<d).map { Double(A[i * d + $0]) + Double(mu[$0]) }
            let m = s.reduce(0, +) / Double(d)
            let v = s.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(d)
            for j in 0..<d {
                let y = (s[j] - m) / (v + eps).squareRoot() * Double(gamma[j]) + Double(beta[j])
                worst = max(worst, abs(y - Double(Y[i * d + j])))
            }
        }
        #expect(worst <= 1e-5)
        // The observed layer output is the recorded one.
        #expect(recorder.rows[.layerOutput(layer: 0)]! == Y)
    }

    /// Ablating any single component changes the logits; ablating nothing does not.
    @Test func logitsChangeUnderAblation() throws {
        let model = try tinyBertModel()
        let shape = model.configuration.observationShape
        let means = try Self.means(model)
        let head = try BertClassificationHead(hiddenSize: 8, classCount: 3, seed: 4)
        let plain = try model.logits(Self.batch, head: head).scalars
        for c in ModelComponent.all(shape) {
            let z = try model.logits(Self.batch, head: head, ablation: MeanAblation(means: means, shape: shape, ablated: [c])).scalars
            let change = zip(z, plain).map { abs($0 - $1) }.max()!
            #expect(change > 1e-3, "\(c): largest logit change \(change)")
        }
    }

    /// The model, adapter (LoRTA on Q, K, V and the attention output, so the adapter's part of
    /// dC matters), head and means of the attribution tests.
    static func attributionSetup() throws -> (BertModel, LoRTAAdapter, BertClassificationHead, MeanAblation) {
        let model = try tinyBertModel()
        let adapter = try randomBertLoRTA(model.configuration, targets: BertProjection.allCases, rank: 2, scale: 0.3, seed: 8)
        let head = try BertClassificationHead(hiddenSize: 8, classCount: 3, seed: 4)
        let means = try MeanAblation(means: Self.means(model, adapter: adapter), shape: model.configuration.observationShape)
        return (model, adapter, head, means)
    }

    /// attr_c(x) against an independent reference: the central difference of y along the
    /// ablation strength, (y(ε) − y(−ε)) / 2ε with ε = 1e-2, y in float64 from the logits of two
    /// ablated forwards (no backward involved), for every component and input.
    ///
    /// Tolerance: the central difference's truncation error is ε²/6 · y''' (≈ 2e-5 · |y'''|) and
    /// the float32 forwards' rounding δ ≈ 1e-7 in y adds δ/ε ≈ 1e-5; so |fd − attr| ≤
    /// 2e-3·|attr| + 3e-5 (measured worst: 7e-6 for attributions of 4e-3 … 0.1). The test is
    /// meaningful: most attributions are ≫ the tolerance (a wrong sign fails), the two heads of a
    /// layer differ by more than it (swapping heads fails), and probing dC before the adapter's
    /// part is added (a wrong gradient with this LoRTA on the attention output) was off by
    /// 4e-4 … 4e-2 on every head.
    @Test func attributionMatchesFiniteDifference() throws {
        let (model, adapter, head, means) = try Self.attributionSetup()
        let shape = model.configuration.observationShape
        let attr = try model.attributions(Self.batch, adapter: adapter, head: head, means: means)
        #expect(attr.components == ModelComponent.all(shape))
        let z = try model.logits(Self.batch, adapter: adapter, head: head)
        #expect(attr.classes == (0..<4).map { b in (0..<3).max { z.scalars[b * 3 + $0] < z.scalars[b * 3 + $1] }! })
        for (a, b) in zip(attr.logProbabilities, logProbabilities(z, classes: attr.classes)) { #expect(abs(a - b) <= 1e-6) }

        let eps: Float = 1e-2
        var large = 0, total = 0
        for (k, c) in attr.components.enumerated() {
            var ablation = means
            ablation.ablated = [c]
            ablation.strength = eps
            let up = logProbabilities(try model.logits(Self.batch, adapter: adapter, head: head, ablation: ablation), classes: attr.classes)
            ablation.strength = -eps
            let down = logProbabilities(try model.logits(Self.batch, adapter: adapter, head: head, ablation: ablation), classes: attr.classes)
            for b in 0..<Self.batch.count {
                let fd = (up[b] - down[b]) / (2 * Double(eps)), a = attr.values[b][k]
                let tol = 2e-3 * abs(a) + 3e-5
                #expect(abs(fd - a) <= tol, "\(c), input \(b): finite difference \(fd), attribution \(a)")
                #expect(attr.value(input: b, component: c) == a)
                total += 1
                if abs(a) > 10 * tol { large += 1; #expect(abs(fd + a) > tol) }
            }
        }
        #expect(large * 2 >= total, "only \(large) of \(total) attributions are well above the tolerance")
        // Swapping the two heads of a layer would fail the comparison.
        for l in 0..<2 {
            let h0 = attr.components.firstIndex(of: .attentionHead(layer: l, head: 0))!
            let h1 = attr.components.firstIndex(of: .attentionHead(layer: l, head: 1))!
            #expect((0..<4).contains { b in abs(attr.values[b][h0] - attr.values[b][h1]) > 10 * (2e-3 * abs(attr.values[b][h0]) + 3e-5) })
        }

        // A target class instead of the prediction: the same check for one component.
        let target = attr.classes.map { ($0 + 1) % 3 }
        let c = ModelComponent.attentionHead(layer: 0, head: 1)
        let t = try model.attributions(Self.batch, adapter: adapter, head: head, means: means, components: [c], targetClasses: target)
        #expect(t.classes == target && t.components == [c])
        var ablation = means
        ablation.ablated = [c]
        ablation.strength = eps
        let up = logProbabilities(try model.logits(Self.batch, adapter: adapter, head: head, ablation: ablation), classes: target)
        ablation.strength = -eps
        let down = logProbabilities(try model.logits(Self.batch, adapter: adapter, head: head, ablation: ablation), classes: target)
        for b in 0..<4 {
            let fd = (up[b] - down[b]) / (2 * Double(eps))
            #expect(abs(fd - t.values[b][0]) <= 2e-3 * abs(t.values[b][0]) + 3e-5)
        }
    }

    /// Only real tokens count: the same inputs padded to length 5 and to length 10 give the same
    /// attributions (within 1e-5), and attributing a subset gives the same numbers as the full set.
    @Test func paddingDoesNotChangeAttributions() throws {
        let (model, adapter, head, means) = try Self.attributionSetup()
        let rows: [[Int32]] = [[2, 4, 6, 8, 3], [2, 5, 7, 3], [2, 4, 3]]
        let short = try model.attributions(tinyBertBatch(rows, length: 5), adapter: adapter, head: head, means: means)
        let long = try model.attributions(tinyBertBatch(rows, length: 10), adapter: adapter, head: head, means: means)
        #expect(short.classes == long.classes)
        for b in 0..<3 {
            for k in short.components.indices {
                #expect(abs(short.values[b][k] - long.values[b][k]) <= 1e-5 * max(1, abs(short.values[b][k])),
                        "\(short.components[k]), input \(b)")
            }
        }
        let subset: [ModelComponent] = [.mlp(layer: 1), .attentionHead(layer: 1, head: 0)]
        let part = try model.attributions(tinyBertBatch(rows, length: 5), adapter: adapter, head: head, means: means, components: subset)
        for b in 0..<3 {
            for (k, c) in subset.enumerated() { #expect(part.values[b][k] == short.value(input: b, component: c)) }
        }
    }

    @Test func attributionChecksItsInput() throws {
        let (model, adapter, head, means) = try Self.attributionSetup()
        #expect(throws: CircuitError.invalidTargetClass("2 target classes for a batch of 4 inputs")) {
            try model.attributions(Self.batch, adapter: adapter, head: head, means: means, targetClasses: [0, 1])
        }
        #expect(throws: CircuitError.self) {
            try model.attributions(Self.batch, adapter: adapter, head: head, means: means, targetClasses: [0, 1, 2, 3])
        }
        let partial = try MeanAblation(means: [.mlp(layer: 0): means.means[.mlp(layer: 0)]!], shape: means.shape)
        #expect(throws: CircuitError.missingMean(component: "layer.1.mlp")) {
            try model.attributions(Self.batch, head: head, means: partial, components: [.mlp(layer: 1)])
        }
        // The ablated set of the means is ignored.
        var withSet = means
        withSet.ablated = [.mlp(layer: 1)]
        let a = try model.attributions(Self.batch, adapter: adapter, head: head, means: withSet)
        let b = try model.attributions(Self.batch, adapter: adapter, head: head, means: means)
        #expect(a.values == b.values)
    }

    /// Means from a monitor are its trusted mean-pooled means; a monitor without a component's
    /// mean-pooled site is refused.
    @Test func meansFromMonitor() throws {
        let model = try tinyBertModel()
        let shape = model.configuration.observationShape
        let inputs = circuitInputs(24, seed: 5)
        let pass: (ActivationObserver) throws -> Void = { _ = try model.forward(tinyBertBatch(inputs, length: 8), observer: $0) }
        let sites = try ModelComponent.all(shape).map { try MonitorSite(point: $0.observationPoint, reduction: .meanPooled) }
        let monitor = try Monitor.fit(sites: sites, detectors: [.mahalanobis], folds: 2, shape: shape, observing: pass)
        let ablation = try MeanAblation(monitor: monitor, ablated: [.mlp(layer: 1)])
        #expect(ablation.means == (try Self.means(model)))
        #expect(ablation.ablated == [.mlp(layer: 1)])
        let first = try ModelComponent.all(shape).map { try MonitorSite(point: $0.observationPoint, reduction: .firstToken) }
        let other = try Monitor.fit(sites: first, detectors: [.mahalanobis], folds: 2, shape: shape, observing: pass)
        #expect(throws: CircuitError.monitorLacksSite("layer.0.attention.head.0:mean")) { try MeanAblation(monitor: other) }
    }
}
