import Foundation
import Testing
import CKernels
@testable import LoRTA

// MARK: - Helpers (names prefixed "adapterTest" to stay unique in the test target)

private let adapterTestRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// all-MiniLM-L6-v2, loaded once; the tests that need it fail (never skip) when it is absent.
private let adapterTestMiniLM: Result<BertModel, any Error> = Result {
    try BertModel(directory: adapterTestRoot.appendingPathComponent("assets/all-MiniLM-L6-v2"))
}

/// The shared tiny random BERT (TinyBertSupport.swift): vocab 12, d = 8, 2 heads, 2 layers, I = 16.
private func adapterTestTinyModel(seed: UInt64 = 91) throws -> BertModel { try tinyBertModel(seed: seed) }

private func adapterTestBatch(_ rows: [[Int32]], length: Int) -> TokenBatch { tinyBertBatch(rows, length: length) }

private func adapterTestLoRA(_ c: BertConfiguration, targets: [BertProjection], rank: Int, scale: Float,
                             seed: UInt64) throws -> any Adapter {
    var rng = LoRATestRNG(seed: seed)
    let d = c.hiddenSize
    // Draw order: every A (layer-major, then target), then every B.
    let a = (0..<c.layerCount).flatMap { _ in targets.map { _ in rng.tensor([rank, d], scale: scale) } }
    let b = (0..<c.layerCount).flatMap { _ in targets.map { _ in rng.tensor([d, rank], scale: scale) } }
    return try LoRAAdapter(host: c.adapterHost, targets: targets.map(\.rawValue),
                           configuration: LoRAConfiguration(rank: rank, alpha: 2 * Float(rank)), a: a, b: b)
}

/// A LoRTA adapter with random non-zero factors (C factors around 1).
private func adapterTestLoRTA(_ c: BertConfiguration, targets: [BertProjection], rank: Int, scale: Float,
                              seed: UInt64) throws -> any Adapter {
    try randomBertLoRTA(c, targets: targets, rank: rank, scale: scale, seed: seed)
}

private func maxAbsDiff(_ a: Tensor, _ b: Tensor) -> Float {
    zip(a.scalars, b.scalars).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

private let adapterTestTargetSets: [[BertProjection]] = [
    [.query, .key, .value, .attentionOutput], [.query, .value], [.key, .attentionOutput], [.attentionOutput],
]

// MARK: - Adapted forward = forward of the merged model

@Suite("BERT with adapters: forward", .serialized)
struct BertAdapterForwardTests {
    /// On the tiny random BERT, for LoRA and LoRTA on several target subsets: the adapted
    /// forward (adapter outputs added at the hook points) equals the plain forward of the model
    /// whose weights were merged with the adapter (LoRA.merge / LoRTAAdapter.merge), within
    /// 1e-4 on the last hidden state, the pooled embedding and the head's logits; and the
    /// adapter really changes the output (by more than 1e-2), so the comparison can fail.
    @Test func tinyAdaptedForwardEqualsMergedModel() throws {
        let model = try adapterTestTinyModel()
        let c = model.configuration
        let tokens = adapterTestBatch([[1, 5, 7, 2], [1, 3, 2], [1, 4, 9, 8, 11, 2]], length: 6)
        let head = try BertClassificationHead(hiddenSize: c.hiddenSize, classCount: 3, seed: 5)
        let base = try model.forward(tokens)
        for (i, targets) in adapterTestTargetSets.enumerated() {
            for lorta in [false, true] {
                let adapters = lorta
                    ? try adapterTestLoRTA(c, targets: targets, rank: 3, scale: 0.5, seed: UInt64(10 + i))
                    : try adapterTestLoRA(c, targets: targets, rank: 3, scale: 0.5, seed: UInt64(20 + i))
                let adapted = try model.forward(tokens, adapter: adapters)
                let merged = try model.merged(with: adapters).forward(tokens)
                let label = "\(lorta ? "LoRTA" : "LoRA") \(targets)"
                #expect(maxAbsDiff(adapted.lastHiddenState, merged.lastHiddenState) <= 1e-4, "\(label)")
                #expect(maxAbsDiff(adapted.pooled, merged.pooled) <= 1e-4, "\(label)")
                #expect(maxAbsDiff(adapted.pooled, base.pooled) > 1e-2, "\(label): the adapter changes nothing")
                let la = try model.logits(tokens, adapter: adapters, head: head)
                let lm = try model.merged(with: adapters).logits(tokens, head: head)
                #expect(maxAbsDiff(la, lm) <= 1e-4, "\(label)")
                // Recording does not change the result.
                let recorded = try model.forward(tokens, adapter: adapters, recordingActivations: true)
                #expect(recorded.lastHiddenState == adapted.lastHiddenState, "\(label)")
            }
        }
        // PEFT-initialised LoRA (B = 0) and LoRTA (B = 0) leave the model unchanged bit for bit:
        // both add exact zeros after the same frozen GEMMs.
        let lora0 = try LoRAAdapter(host: c.adapterHost, targets: ["query", "output"],
                                    configuration: LoRAConfiguration(rank: 2, alpha: 4), seed: 3)
        #expect(lora0.a.allSatisfy { $0.scalars.contains { $0 != 0 } })
        #expect(try model.forward(tokens, adapter: lora0).lastHiddenState == base.lastHiddenState)
        let lortaCfg = try LoRTAConfiguration(rank: 2, alpha: 4, targetModules: ["query", "output"], layerCount: 2,
                                              headCount: 2, headDimension: 4)
        let lorta0 = try LoRTAAdapter(configuration: lortaCfg, seed: 3)
        #expect(try model.forward(tokens, adapter: lorta0).lastHiddenState == base.lastHiddenState)
    }

    /// all-MiniLM-L6-v2 with random non-zero adapters on Q, K, V, O of all 6 layers: adapted
    /// forward vs merged model within 1e-4 on the pooled embedding (|pooled| is O(0.1–1)),
    /// bitwise equal with 1 and 2 threads.
    @Test func miniLMAdaptedForwardEqualsMergedModel() throws {
        let model = try adapterTestMiniLM.get()
        let c = model.configuration
        let tokens = adapterTestBatch([[101, 2023, 3185, 2003, 2307, 1012, 102], [101, 11771, 1012, 102]], length: 7)
        let base = try model.forward(tokens)
        let all: [BertProjection] = [.query, .key, .value, .attentionOutput]
        for lorta in [false, true] {
            let adapters = lorta ? try adapterTestLoRTA(c, targets: all, rank: 4, scale: 0.05, seed: 7)
                                 : try adapterTestLoRA(c, targets: all, rank: 4, scale: 0.05, seed: 8)
            let one = try Runtime.withThreadCount(1) { try model.forward(tokens, adapter: adapters) }
            let two = try Runtime.withThreadCount(2) { try model.forward(tokens, adapter: adapters) }
            #expect(one.pooled == two.pooled)
            let merged = try model.merged(with: adapters).forward(tokens)
            let diff = maxAbsDiff(two.pooled, merged.pooled)
            #expect(diff <= 1e-4, "\(lorta ? "LoRTA" : "LoRA"): max |adapted − merged| = \(diff)")
            print("MiniLM \(lorta ? "LoRTA" : "LoRA"): max |adapted − merged| pooled = \(diff), max |adapted − base| = \(maxAbsDiff(two.pooled, base.pooled))")
            #expect(maxAbsDiff(two.pooled, base.pooled) > 1e-2)
        }
    }

    /// Initialisation: PEFT's LoRA (A in ±1/√d, every matrix different, B = 0; same seed, same
    /// bits), torch.nn.Linear's head (weight and bias in ±1/√d, deterministic), and the
    /// parameter counts of the reference recipe (r = 8, Q, K, V, O of MiniLM's 6 layers:
    /// 147,456 for LoRA, 3,504 for LoRTA, as in the issue's PyTorch + PEFT run).
    @Test func initialisationAndParameterCounts() throws {
        let c = try BertConfiguration(contentsOf: adapterTestRoot.appendingPathComponent("assets/all-MiniLM-L6-v2/config.json"))
        let all: [BertProjection] = [.query, .key, .value, .attentionOutput]
        let cfg = try LoRAConfiguration(rank: 8, alpha: 16)
        let lora = try LoRAAdapter(host: c.adapterHost, targets: all.map(\.rawValue), configuration: cfg, seed: 11)
        #expect(lora.parameterCount == 147_456)
        let again = try LoRAAdapter(host: c.adapterHost, targets: all.map(\.rawValue), configuration: cfg, seed: 11)
        #expect(lora.a.map(\.scalars) == again.a.map(\.scalars))
        let bound = 1 / Float(c.hiddenSize).squareRoot()
        let aAll = lora.a.map(\.scalars)
        #expect(aAll.allSatisfy { $0.allSatisfy { abs($0) <= bound } })
        #expect(Set(aAll.map { $0[0] }).count == aAll.count)   // every matrix has its own draw
        #expect(lora.b.allSatisfy { $0.scalars.allSatisfy { $0 == 0 } })
        let lortaCfg = try LoRTAConfiguration(rank: 8, alpha: 16, targetModules: all.map(\.rawValue),
                                              layerCount: c.layerCount, headCount: c.headCount, headDimension: c.headSize)
        #expect(try LoRTAAdapter(configuration: lortaCfg, seed: 1).parameterCount == 3_504)
        let head = try BertClassificationHead(hiddenSize: c.hiddenSize, classCount: 2, seed: 4)
        #expect(head.weight.shape == [2, c.hiddenSize] && head.bias.shape == [2])
        #expect((head.weight.scalars + head.bias.scalars).allSatisfy { abs($0) <= bound })
        #expect(head.weight.scalars.contains { $0 != 0 } && head.bias.scalars.contains { $0 != 0 })
        #expect(try BertClassificationHead(hiddenSize: c.hiddenSize, classCount: 2, seed: 4).weight == head.weight)
    }

    /// Targets may be written as module paths (`attention.output.dense`): ``AdapterRecipe`` and
    /// the file loaders resolve them to the module names, so the adapter acts exactly as one
    /// made with the names. An adapter whose configuration holds a path (or names a projection
    /// twice, or an MLP projection) is refused by the model, never silently ignored.
    @Test func targetsGivenAsModulePaths() throws {
        let model = try adapterTestTinyModel()
        let c = model.configuration
        let tokens = adapterTestBatch([[2, 5, 6, 3], [2, 7, 3]], length: 4)
        for kind in AdapterKind.allCases {
            let byName = try AdapterRecipe(kind: kind, rank: 2, alpha: 4, targets: ["query", "output"], seed: 9)
                .makeAdapter(for: c.adapterHost)
            let byPath = try AdapterRecipe(kind: kind, rank: 2, alpha: 4,
                                           targets: ["attention.self.query", "attention.output.dense"], seed: 9)
                .makeAdapter(for: c.adapterHost)
            #expect(byPath.targetModules == ["query", "output"])
            #expect(byPath.parameters.map(\.scalars) == byName.parameters.map(\.scalars))
        }
        let raw = try randomBertLoRTA(c, targets: [.query, .attentionOutput], rank: 2, scale: 0.5, seed: 4)
        let a = try model.forward(tokens, adapter: raw).lastHiddenState
        #expect(try model.forward(tokens).lastHiddenState.scalars != a.scalars, "the adapter must act")
        // Saved and loaded: the file holds PEFT's names (attention.output.dense), the loaded
        // adapter the module names, and it acts the same.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lorta-paths-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try raw.save(to: dir, host: c.adapterHost)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("adapter_config.json")))
        #expect((config as? [String: Any])?["target_modules"] as? [String] == ["query", "attention.output.dense"])
        let loaded = try AdapterFiles.load(from: dir, host: c.adapterHost)
        #expect(loaded.targetModules == ["query", "output"])
        #expect(try model.forward(tokens, adapter: loaded).lastHiddenState.scalars == a.scalars)
        for targets in [["attention.self.query", "attention.output.dense"], ["output", "attention.output.dense"],
                        ["output.dense"]] {
            let cfg = try LoRTAConfiguration(rank: 2, alpha: 4, targetModules: targets,
                                             layerCount: c.layerCount, headCount: c.headCount, headDimension: c.headSize)
            #expect(throws: AdapterError.self, "\(targets)") {
                try model.forward(tokens, adapter: try LoRTAAdapter(configuration: cfg, seed: 1))
            }
        }
    }

    @Test func adapterErrorsAreTyped() throws {
        let model = try adapterTestTinyModel()
        let c = model.configuration
        let tokens = adapterTestBatch([[1, 2]], length: 2)
        let lcfg = try LoRAConfiguration(rank: 2, alpha: 4)
        let host = c.adapterHost
        #expect(throws: AdapterError.self) { try LoRAAdapter(host: host, targets: [], configuration: lcfg, seed: 1) }
        #expect(throws: AdapterError.self) {
            try LoRAAdapter(host: host, targets: ["query", "query"], configuration: lcfg, seed: 1)
        }
        #expect(throws: AdapterError.self) { try LoRAAdapter(host: host, targets: ["gate"], configuration: lcfg, seed: 1) }
        let lora = try LoRAAdapter(host: host, targets: ["query"], configuration: lcfg, seed: 1)
        #expect(throws: AdapterError.self) {
            try LoRAAdapter(host: host, targets: ["query"], configuration: lcfg,
                            a: [lora.a[0], try Tensor(zeros: [3, 8])], b: lora.b)
        }
        // LoRTA of the wrong geometry or with an unknown target.
        let wrongLayers = try LoRTAAdapter(configuration: LoRTAConfiguration(
            rank: 2, alpha: 4, targetModules: ["query"], layerCount: 3, headCount: 2, headDimension: 4), seed: 1)
        #expect(throws: AdapterError.self) { try model.forward(tokens, adapter: wrongLayers) }
        let unknown = try LoRTAAdapter(configuration: LoRTAConfiguration(
            rank: 2, alpha: 4, targetModules: ["gate"], layerCount: 2, headCount: 2, headDimension: 4), seed: 1)
        #expect(throws: AdapterError.self) { try model.forward(tokens, adapter: unknown) }
        #expect(throws: AdapterError.self) { try model.merged(with: unknown) }
        // Head and labels.
        #expect(throws: BertError.self) { try BertClassificationHead(hiddenSize: 8, classCount: 1, seed: 1) }
        let wrongHead = try BertClassificationHead(hiddenSize: 9, classCount: 2, seed: 1)
        #expect(throws: BertError.self) { try model.logits(tokens, head: wrongHead) }
        let head = try BertClassificationHead(hiddenSize: 8, classCount: 2, seed: 1)
        #expect(throws: BertError.labelCountMismatch(expected: 1, actual: 2)) {
            try model.loss(tokens, labels: [0, 1], head: head)
        }
        #expect(throws: BertError.labelOutOfRange(label: 2, row: 0, classCount: 2)) {
            try model.gradients(tokens, labels: [2], head: head)
        }
    }
}

// MARK: - Gradients through the whole model vs finite differences

/// The trainable parameters (head, then adapters) as one flat vector, and back.
private struct AdapterTestTrainable {
    var adapters: (any Adapter)?
    var head: BertClassificationHead

    /// Tensors in the trainer's order: head weight, head bias, then the adapter's parameters
    /// (LoRA a[l][t], b[l][t] per layer and target, or LoRTA A…, B, C_H, C_L, C_M).
    var tensors: [Tensor] { [head.weight, head.bias] + (adapters?.parameters ?? []) }

    static func flatGradients(_ g: BertTrainingGradients) -> [Tensor] { [g.headWeight, g.headBias] + (g.adapter ?? []) }

    /// A copy whose parameters are `tensors` (same order and shapes as ``tensors``).
    func replacing(_ ts: [Tensor]) throws -> AdapterTestTrainable {
        var copy = self
        copy.head = try BertClassificationHead(weight: ts[0], bias: ts[1])
        try copy.adapters?.setParameters(Array(ts[2...]))
        return copy
    }

    /// θ + h·v for a direction given per tensor.
    func moved(along v: [[Float]], by h: Float) throws -> AdapterTestTrainable {
        try replacing(zip(tensors, v).map { t, dir in
            try Tensor(zip(t.scalars, dir).map { $0 + h * $1 }, shape: t.shape)
        })
    }

    func loss(_ model: BertModel, _ tokens: TokenBatch, _ labels: [Int32]) throws -> Double {
        Double(try model.loss(tokens, labels: labels, adapter: adapters, head: head))
    }
}

/// Central difference of the loss along v with step h, and the analytic ⟨∇L, v⟩ (float64).
/// With `richardson`, the central differences at h and 2h are combined as (4 D(h) − D(2h)) / 3,
/// which cancels the O(h²) truncation term.
private func adapterTestDirectional(_ model: BertModel, _ tokens: TokenBatch, _ labels: [Int32],
                                    _ p: AdapterTestTrainable, grads: [Tensor], v: [[Float]],
                                    h: Float, richardson: Bool = false) throws -> (fd: Double, analytic: Double) {
    func central(_ h: Float) throws -> Double {
        let plus = try p.moved(along: v, by: h).loss(model, tokens, labels)
        let minus = try p.moved(along: v, by: -h).loss(model, tokens, labels)
        return (plus - minus) / (2 * Double(h))
    }
    let fd = richardson ? (4 * (try central(h)) - (try central(2 * h))) / 3 : try central(h)
    var dot = 0.0
    for (g, dir) in zip(grads, v) { for (a, b) in zip(g.scalars, dir) { dot += Double(a) * Double(b) } }
    return (fd, dot)
}

@Suite("BERT with adapters: backward", .serialized)
struct BertAdapterGradientTests {
    private let tokens = adapterTestBatch([[1, 5, 7, 2], [1, 3, 2], [1, 4, 9, 8, 11, 2]], length: 6)
    private let labels: [Int32] = [0, 2, 1]

    /// Tiny random BERT (d = 8, 2 layers, 3 sequences with padding, 3 classes), float32.
    ///
    /// 1. Directional derivative: for 3 random directions v (entries ±1 on every trainable
    ///    scalar), the central differences D(h) = (L(θ+hv) − L(θ−hv)) / 2h at h = 1e-3 and 2e-3,
    ///    Richardson-combined as (4 D(h) − D(2h)) / 3, match ⟨∇L, v⟩ within 1e-3 relative.
    ///    Why: moving every factor of LoRTA (a product of five factors) at once gives large
    ///    third derivatives, and the plain central difference has an O(h²) error of up to
    ///    ~2e-3 relative at h = 1e-3 (measured: it shrinks 4× per halving of h, so it is
    ///    truncation, not a gradient error); Richardson cancels that term. What remains is the
    ///    float32 rounding of the loss, ε_L/h ≈ 1e-7/1e-3 = 1e-4 absolute, against
    ///    |⟨∇L, v⟩| of 0.3–10 here.
    /// 2. Per component: for every parameter tensor, its largest gradient component against the
    ///    central difference with h = 1e-2 on that scalar, within 1e-2 relative (+1e-4
    ///    absolute): a single scalar moves the float32 loss little, so its rounding noise
    ///    (≈ 1e-7 / 1e-2 = 1e-5) and the O(h²) truncation need the looser bound.
    /// Run for LoRA and LoRTA on every target set, and for the head alone.
    @Test func tinyGradientsMatchFiniteDifferences() throws {
        let model = try adapterTestTinyModel()
        let c = model.configuration
        let head = try BertClassificationHead(hiddenSize: c.hiddenSize, classCount: 3, seed: 9)
        var cases: [(String, AdapterTestTrainable)] = [("head only", AdapterTestTrainable(adapters: nil, head: head))]
        for (i, targets) in adapterTestTargetSets.enumerated() {
            cases.append(("LoRA \(targets)", AdapterTestTrainable(
                adapters: try adapterTestLoRA(c, targets: targets, rank: 3, scale: 0.5, seed: UInt64(40 + i)), head: head)))
            cases.append(("LoRTA \(targets)", AdapterTestTrainable(
                adapters: try adapterTestLoRTA(c, targets: targets, rank: 3, scale: 0.5, seed: UInt64(50 + i)), head: head)))
        }
        var rng = LoRATestRNG(seed: 1234)
        var worstDirectional = 0.0, worstComponent = 0.0
        for (label, p) in cases {
            let g = try model.gradients(tokens, labels: labels, adapter: p.adapters, head: p.head)
            #expect(abs(Double(g.loss) - (try p.loss(model, tokens, labels))) <= 1e-6, "\(label)")
            let grads = AdapterTestTrainable.flatGradients(g)
            let params = p.tensors
            #expect(grads.map(\.shape) == params.map(\.shape), "\(label)")
            for _ in 0..<3 {
                let v = params.map { t in (0..<t.count).map { _ in rng.uniform() < 0 ? Float(-1) : 1 } }
                let (fd, an) = try adapterTestDirectional(model, tokens, labels, p, grads: grads, v: v, h: 1e-3,
                                                         richardson: true)
                let rel = abs(fd - an) / abs(an)
                worstDirectional = max(worstDirectional, rel)
                #expect(rel <= 1e-3, "\(label): directional FD \(fd) vs analytic \(an)")
            }
            for (k, t) in params.enumerated() {
                let gs = grads[k].scalars
                guard let j = gs.indices.max(by: { abs(gs[$0]) < abs(gs[$1]) }) else { continue }
                let v = params.enumerated().map { (i, t2) in
                    (0..<t2.count).map { $0 == j && i == k ? Float(1) : 0 }
                }
                let (fd, an) = try adapterTestDirectional(model, tokens, labels, p, grads: grads, v: v, h: 1e-2)
                let err = abs(fd - an)
                worstComponent = max(worstComponent, err / max(abs(an), 1e-12))
                #expect(err <= 1e-2 * abs(an) + 1e-4, "\(label): tensor \(k) shape \(t.shape) [\(j)]: FD \(fd) vs \(an)")
            }
        }
        print("tiny BERT gradient check: worst directional relative error \(worstDirectional), worst component relative error \(worstComponent)")
    }

    /// all-MiniLM-L6-v2 (6 layers, d = 384), 2 sentences, adapters on Q, K, V, O of every layer
    /// with random non-zero factors: directional derivative (v = ±1 on every scalar, central
    /// differences at h = 1e-3 and 2e-3 Richardson-combined, as in the tiny test) within 1e-3
    /// relative, for LoRA (r = 4) and LoRTA (r = 4). Also: the gradients are
    /// bitwise identical with 1 and 2 threads, and with the scalar micro-kernels they agree
    /// with the active ISA within 1e-3 of the largest component.
    @Test func miniLMGradientsMatchDirectionalDerivative() throws {
        let model = try adapterTestMiniLM.get()
        let c = model.configuration
        let tokens = adapterTestBatch([[101, 2023, 3185, 2003, 2307, 1012, 102], [101, 11771, 1012, 102]], length: 7)
        let labels: [Int32] = [1, 0]
        let head = try BertClassificationHead(hiddenSize: c.hiddenSize, classCount: 2, seed: 3)
        let all: [BertProjection] = [.query, .key, .value, .attentionOutput]
        var rng = LoRATestRNG(seed: 99)
        for lorta in [false, true] {
            let adapters = lorta ? try adapterTestLoRTA(c, targets: all, rank: 4, scale: 0.05, seed: 17)
                                 : try adapterTestLoRA(c, targets: all, rank: 4, scale: 0.05, seed: 18)
            let p = AdapterTestTrainable(adapters: adapters, head: head)
            let g1 = try Runtime.withThreadCount(1) { try model.gradients(tokens, labels: labels, adapter: adapters, head: head) }
            let g2 = try Runtime.withThreadCount(2) { try model.gradients(tokens, labels: labels, adapter: adapters, head: head) }
            let grads = AdapterTestTrainable.flatGradients(g2)
            #expect(AdapterTestTrainable.flatGradients(g1) == grads)
            let gs = try Runtime.withInstructionSet(.scalar) {
                AdapterTestTrainable.flatGradients(try model.gradients(tokens, labels: labels, adapter: adapters, head: head))
            }
            let largest = grads.flatMap(\.scalars).reduce(0) { max($0, abs($1)) }
            let isaDiff = zip(gs.flatMap(\.scalars), grads.flatMap(\.scalars)).reduce(0) { max($0, abs($1.0 - $1.1)) }
            #expect(isaDiff <= 1e-3 * largest)
            let v = p.tensors.map { t in (0..<t.count).map { _ in rng.uniform() < 0 ? Float(-1) : 1 } }
            let (fd, an) = try adapterTestDirectional(model, tokens, labels, p, grads: grads, v: v, h: 1e-3,
                                                     richardson: true)
            let rel = abs(fd - an) / abs(an)
            print("MiniLM \(lorta ? "LoRTA" : "LoRA") directional derivative: FD \(fd), analytic \(an), relative error \(rel)")
            #expect(rel <= 1e-3, "\(lorta ? "LoRTA" : "LoRA"): FD \(fd) vs analytic \(an)")
        }
    }
}

