import Foundation
import Testing
@testable import LoRTA

// Training the causal LM through the Adapter abstraction, on the tiny random Llama fixtures
// (transformers-saved, 2 layers, 4 heads / 2 KV heads: grouped-query attention):
// - the adapter gradients of `lossAndGradients` against central finite differences of `loss`
//   (every parameter tensor gets its own random direction), for LoRA on all seven projections
//   and LoRTA on q/k/v/o (narrower K and V: one A per output width), on a float32 GGUF and on a
//   Q8_0 GGUF (frozen input gradients read quantized blocks);
// - the adapted forward equals the forward of the merged model;
// - bad inputs are errors.

private func tinyModel(_ file: String) throws -> LlamaModel {
    let base = try #require(Bundle.module.resourceURL, "test bundle has no resources")
    let url = base.appendingPathComponent("Fixtures/llama/tiny").appendingPathComponent(file)
    try #require(FileManager.default.fileExists(atPath: url.path), "fixture \(file) missing")
    return try LlamaModel(contentsOf: url)
}

/// Deterministic pseudo-random floats in [-1, 1).
private struct Rand {
    var state: UInt64
    mutating func next() -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(Double(state >> 40) / Double(1 << 24)) * 2 - 1
    }
    mutating func tensor(_ shape: [Int], scale: Float) -> Tensor {
        let n = shape.reduce(1, *)
        return try! Tensor((0..<n).map { _ in next() * scale }, shape: shape)
    }
}

/// Replaces every parameter by random values (B = 0 at initialisation would make A's gradient 0).
private func randomized<A: Adapter>(_ adapter: A, seed: UInt64, scale: Float = 0.2) throws -> A {
    var r = Rand(state: seed)
    var a = adapter
    try a.setParameters(adapter.parameters.map { r.tensor($0.shape, scale: scale) })
    return a
}

/// Two sequences of 7 tokens; targets are the next tokens except some unscored (−1) positions.
private func batch(vocab: Int) -> (tokens: [Int32], targets: [Int32]) {
    let tokens: [Int32] = [5, 17, 250, 3, 99, 42, 8, 11, 12, 200, 7, 7, 61, 150].map { $0 % Int32(vocab) }
    var targets = [Int32](repeating: -1, count: tokens.count)
    for b in 0..<2 {
        for t in 0..<6 where !(b == 0 && t < 2) { targets[b * 7 + t] = tokens[b * 7 + t + 1] }
    }
    return (tokens, targets)
}

private func checkGradients(model: LlamaModel, adapter: any Adapter, label: String) throws {
    let (tokens, targets) = batch(vocab: model.configuration.vocabularySize)
    var grads = try adapter.zeroGradients()
    let scale: Float = 0.5
    let loss = try model.lossAndGradients(tokens: tokens, targets: targets, batchSize: 2, adapter: adapter,
                                          gradientScale: scale, gradients: &grads)
    let plain = try model.loss(tokens: tokens, targets: targets, batchSize: 2, adapter: adapter)
    #expect(loss.targetCount == 10)
    #expect(abs(loss.sum - plain.sum) <= 1e-9 * abs(plain.sum), "\(label): loss with and without recording")
    var rng = Rand(state: 99)
    var worst = 0.0
    for i in adapter.parameters.indices {
        let p = adapter.parameters[i]
        let direction = rng.tensor(p.shape, scale: 1)
        func lossAt(_ step: Float) throws -> Double {
            var moved = adapter.parameters
            moved[i] = try Tensor(zip(p.scalars, direction.scalars).map { $0 + step * $1 }, shape: p.shape)
            var a = adapter
            try a.setParameters(moved)
            return try model.loss(tokens: tokens, targets: targets, batchSize: 2, adapter: a).sum
        }
        // Central differences at h and h/2, combined by Richardson extrapolation (error O(h⁴)).
        let h: Float = 4e-3
        let dh = (try lossAt(h) - lossAt(-h)) / (2 * Double(h))
        let dh2 = (try lossAt(h / 2) - lossAt(-h / 2)) / Double(h)
        let numeric = Double(scale) * (4 * dh2 - dh) / 3
        let analytic = zip(grads[i].scalars, direction.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        // The float32 forward's rounding makes the differences noisy at about 1e-3 absolute
        // (loss ≈ 50, relative rounding ≈ 1e-6, divided by h): 1% relative plus that floor.
        let err = abs(numeric - analytic) / (1e-2 * max(abs(numeric), abs(analytic)) + 2e-3)
        worst = max(worst, err)
        #expect(err < 1, "\(label) parameter \(i) \(p.shape): analytic \(analytic), numeric \(numeric)")
    }
    print("\(label): worst error of directional derivatives \(worst) of the tolerance over \(adapter.parameters.count) tensors")
}

@Suite struct LlamaTrainingTests {
    static let allModules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

    static func lora(_ model: LlamaModel, targets: [String] = allModules) throws -> LoRAAdapter {
        try randomized(LoRAAdapter(host: model.adapterHost, targets: targets,
                                   configuration: LoRAConfiguration(rank: 3, alpha: 6), seed: 7), seed: 3)
    }

    static func lorta(_ model: LlamaModel) throws -> LoRTAAdapter {
        let host = model.adapterHost
        let targets = ["q_proj", "k_proj", "v_proj", "o_proj"]
        let c = try LoRTAConfiguration(rank: 4, alpha: 8, targetModules: targets, layerCount: host.layerCount,
                                       headCount: host.headCount, headDimension: host.headDimension,
                                       outputSizes: try host.modules(named: targets).map(\.outputSize))
        return try randomized(LoRTAAdapter(configuration: c, seed: 5), seed: 11, scale: 0.5)
    }

    @Test(arguments: ["tiny_tied.f32.gguf", "tiny_untied.q8_0.gguf"])
    func loraGradientsMatchFiniteDifferences(_ file: String) throws {
        let model = try tinyModel(file)
        try checkGradients(model: model, adapter: try Self.lora(model), label: "LoRA \(file)")
    }

    @Test(arguments: ["tiny_tied.f32.gguf", "tiny_untied.q8_0.gguf"])
    func lortaGradientsMatchFiniteDifferences(_ file: String) throws {
        let model = try tinyModel(file)
        let adapter = try Self.lorta(model)
        #expect(adapter.parameters.count == 6)   // A (64 rows), A (32 rows: K, V), B, C_H, C_L, C_M
        try checkGradients(model: model, adapter: adapter, label: "LoRTA \(file)")
    }

    @Test func gradientsAccumulateOverCalls() throws {
        let model = try tinyModel("tiny_tied.f32.gguf")
        let adapter = try Self.lora(model, targets: ["v_proj", "down_proj"])
        let (tokens, targets) = batch(vocab: model.configuration.vocabularySize)
        var once = try adapter.zeroGradients(), twice = try adapter.zeroGradients()
        _ = try model.lossAndGradients(tokens: tokens, targets: targets, batchSize: 2, adapter: adapter,
                                       gradientScale: 2, gradients: &once)
        for _ in 0..<2 {
            _ = try model.lossAndGradients(tokens: tokens, targets: targets, batchSize: 2, adapter: adapter,
                                           gradientScale: 1, gradients: &twice)
        }
        for (a, b) in zip(once, twice) {
            for (x, y) in zip(a.scalars, b.scalars) { #expect(abs(x - y) <= 1e-5 * max(1, abs(x))) }
        }
    }

    @Test(arguments: ["tiny_untied.f32.gguf", "tiny_untied_hf", "tiny_k.q4_k.gguf"])
    func adaptedForwardEqualsMergedForward(_ file: String) throws {
        let model = try tinyModel(file)
        let tokens: [Int32] = [1, 2, 3, 40, 50, 60, 7, 8]
        let adapters: [any Adapter] = [try Self.lora(model), try Self.lorta(model)]
        for adapter in adapters {
            var cache = try model.makeCache(capacity: tokens.count)
            let adapted = try model.forward(tokens, cache: &cache, logits: .all, adapter: adapter)
            let merged = try model.merged(with: adapter).logits(for: tokens)
            let base = try model.logits(for: tokens)
            let scale = Double(adapted.maxAbsolute)
            var diff = 0.0, change = 0.0
            for (a, (m, b)) in zip(adapted.scalars, zip(merged.scalars, base.scalars)) {
                diff = max(diff, Double(abs(a - m)))
                change = max(change, Double(abs(a - b)))
            }
            #expect(diff <= 1e-4 * scale, "\(file) \(type(of: adapter)): adapted vs merged \(diff) (max |logit| \(scale))")
            #expect(change > 100 * diff, "\(file) \(type(of: adapter)): the adapter must change the logits")
            let weights = try model.mergedWeights(with: adapter)
            #expect(weights.count == model.configuration.layerCount * adapter.targetModules.count)
        }
    }

    @Test func freshLoRAAdapterLeavesTheModelUnchanged() throws {
        let model = try tinyModel("tiny_tied.f32.gguf")
        let adapter = try LoRAAdapter(host: model.adapterHost, targets: Self.allModules,
                                      configuration: LoRAConfiguration(rank: 2, alpha: 4), seed: 1)
        let tokens: [Int32] = [4, 5, 6]
        var cache = try model.makeCache(capacity: 3)
        #expect(try model.forward(tokens, cache: &cache, logits: .all, adapter: adapter) == model.logits(for: tokens))
        #expect(adapter.parameterCount == 2 * 7 * 2 * 0 + adapter.parameters.reduce(0) { $0 + $1.count })
        let names = adapter.parameterNames(host: model.adapterHost)
        #expect(names.first == "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")
        #expect(names.last == "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight")
    }

    @Test func badInputsAreErrors() throws {
        let model = try tinyModel("tiny_tied.f32.gguf")
        let host = model.adapterHost
        #expect(throws: AdapterError.unknownTarget("query", available: host.modules.map(\.name))) {
            try LoRAAdapter(host: host, targets: ["query"], configuration: LoRAConfiguration(rank: 2, alpha: 4), seed: 1)
        }
        // A LoRTA adapter made for another shape (3 layers).
        let other = try LoRTAConfiguration(rank: 2, alpha: 2, targetModules: ["q_proj"], layerCount: 3,
                                           headCount: host.headCount, headDimension: host.headDimension)
        let wrong = try LoRTAAdapter(configuration: other, seed: 1)
        #expect(throws: AdapterError.self) { try model.loss(tokens: [1, 2], targets: [2, -1], batchSize: 1, adapter: wrong) }
        // LoRTA on an MLP projection.
        let mlp = try LoRTAConfiguration(rank: 2, alpha: 2, targetModules: ["gate_proj"], layerCount: host.layerCount,
                                         headCount: host.headCount, headDimension: host.headDimension,
                                         outputSizes: [model.configuration.intermediateSize])
        #expect(throws: AdapterError.self) { try LoRTAAdapter(configuration: mlp, seed: 1).validate(for: host) }
        #expect(throws: LlamaError.self) { try model.loss(tokens: [1, 2, 3], targets: [2, 3], batchSize: 1) }
        #expect(throws: LlamaError.self) { try model.loss(tokens: [1, 2, 3], targets: [2, 3, -1], batchSize: 2) }
        #expect(throws: LlamaError.self) { try model.loss(tokens: [1, 2], targets: [99999, -1], batchSize: 1) }
        let adapter = try Self.lora(model)
        var wrongGradients = [try Tensor(zeros: [1])]
        #expect(throws: AdapterError.self) {
            try model.lossAndGradients(tokens: [1, 2], targets: [2, -1], batchSize: 1, adapter: adapter,
                                       gradientScale: 1, gradients: &wrongGradients)
        }
    }
}
