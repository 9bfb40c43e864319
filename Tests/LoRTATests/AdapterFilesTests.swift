import Foundation
import Testing
@testable import LoRTA

// Adapter directories for any model through the Adapter protocol (AdapterFiles.swift), on the
// tiny random Llama (2 layers, 4 heads / 2 KV heads: grouped-query attention):
// - LoRA on all seven projections and LoRTA on q/k/v/o (one A per output width) round trip bit
//   for bit, and the reloaded adapters give the same logits;
// - an adapter saved by the real PEFT library (Fixtures/peft-llama, made by
//   scripts/fixtures/make_peft_llama_fixtures.py) gives PEFT's logits;
// - checkpoints in the LoRTA reference implementation's layout (Fixtures/lorta_reference, made by
//   scripts/fixtures/make_lorta_reference_fixtures.py) merge to the ΔW numpy computes;
// - every kind of bad directory is a typed error naming the file.
// With LORTA_WRITE_PEFT_FIXTURE=<dir>, the LoRA round-trip test also writes <dir>/adapter and
// <dir>/ours.json (tokens and our adapted logits) for scripts/check-peft-llama.sh.

private let fixtures: URL = Bundle.module.resourceURL!.appendingPathComponent("Fixtures")

private func tinyModel(_ name: String = "tiny_untied_hf") throws -> LlamaModel {
    let url = fixtures.appendingPathComponent("llama/tiny").appendingPathComponent(name)
    try #require(FileManager.default.fileExists(atPath: url.path), "fixture \(name) missing")
    return try LlamaModel(contentsOf: url)
}

private func temporaryDirectory() throws -> URL {
    try testScratchDirectory("adapterfiles")
}

/// Random values for every parameter (B = 0 at initialisation would make the adapter a no-op).
private func randomized<A: Adapter>(_ adapter: A, seed: UInt64, scale: Float) throws -> A {
    var g = LoRTATestRNG(seed)
    var a = adapter
    try a.setParameters(adapter.parameters.map { g.tensor($0.shape, scale: scale) })
    return a
}

private func lora(_ host: AdapterHost, targets: [String] = LlamaTrainingTests.allModules) throws -> LoRAAdapter {
    try randomized(LoRAAdapter(host: host, targets: targets, configuration: LoRAConfiguration(rank: 3, alpha: 6), seed: 7),
                   seed: 3, scale: 0.2)
}

private func lorta(_ host: AdapterHost) throws -> LoRTAAdapter {
    let targets = ["q_proj", "k_proj", "v_proj", "o_proj"]
    let c = try LoRTAConfiguration(rank: 4, alpha: 8, targetModules: targets, layerCount: host.layerCount,
                                   headCount: host.headCount, headDimension: host.headDimension,
                                   outputSizes: try host.modules(named: targets).map(\.outputSize))
    return try randomized(LoRTAAdapter(configuration: c, seed: 5), seed: 11, scale: 0.5)
}

private func randomTensor(_ seed: UInt64, _ shape: [Int]) -> Tensor {
    var g = LoRTATestRNG(seed)
    return g.tensor(shape)
}

private func bits(_ adapter: any Adapter) -> [[UInt32]] { adapter.parameters.map { $0.scalars.map(\.bitPattern) } }

private let tokens: [Int32] = [1, 17, 250, 3, 99, 42, 8, 11, 12, 200, 7, 61]

private func logits(_ model: LlamaModel, _ adapter: (any Adapter)?) throws -> Tensor {
    var cache = try model.makeCache(capacity: tokens.count)
    return try model.forward(tokens, cache: &cache, logits: .all, adapter: adapter)
}

/// max |a − b| and max |b|.
private func difference(_ a: Tensor, _ b: Tensor) -> (diff: Double, scale: Double) {
    var diff = 0.0, scale = 0.0
    for (x, y) in zip(a.scalars, b.scalars) {
        diff = max(diff, Double(abs(x - y)))
        scale = max(scale, Double(abs(y)))
    }
    return (diff, scale)
}

// MARK: - Editing directories

private func weightsURL(_ dir: URL) -> URL { dir.appendingPathComponent(AdapterFiles.weightsFileName) }
private func configURL(_ dir: URL) -> URL { dir.appendingPathComponent(AdapterFiles.configFileName) }

private func copy(_ source: URL) throws -> URL {
    let dir = try temporaryDirectory().appendingPathComponent("adapter")
    try FileManager.default.copyItem(at: source, to: dir)
    return dir
}

/// Rewrites the safetensors file of `dir` after `edit` changes the (name, tensor) list.
private func editTensors(_ dir: URL, _ edit: (inout [(String, Tensor)]) throws -> Void) throws {
    let reader = try SafeTensorsReader(contentsOf: weightsURL(dir))
    var list = try reader.names.sorted().map { ($0, try reader.tensor($0)) }
    try edit(&list)
    var writer = SafeTensorsWriter()
    for (name, t) in list { try writer.add(name, t) }
    try writer.write(to: weightsURL(dir))
}

private func editConfig(_ dir: URL, _ edit: (inout [String: Any]) -> Void) throws {
    var object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: configURL(dir))) as? [String: Any])
    edit(&object)
    try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]).write(to: configURL(dir))
}

/// The error `body` throws, as an AdapterFileError (nil when it throws nothing or another type).
private func fileError(_ body: () throws -> Void) -> AdapterFileError? {
    do { try body() } catch let e as AdapterFileError { return e } catch { Issue.record("other error \(error)"); return nil }
    Issue.record("no error thrown")
    return nil
}

@Suite struct AdapterFilesTests {
    // MARK: Round trips

    @Test func loraRoundTripOnAllSevenModules() throws {
        let model = try tinyModel()
        let host = model.adapterHost
        let adapter = try lora(host)
        let dir = try temporaryDirectory()
        try adapter.save(to: dir, host: host, baseModelName: "tiny_untied_hf")

        let loaded = try LoRAAdapter(contentsOf: dir, host: host)
        #expect(loaded.targetModules == adapter.targetModules)
        #expect(loaded.configuration == adapter.configuration)
        #expect(bits(loaded) == bits(adapter))
        let viaDispatch = try AdapterFiles.load(from: dir, host: host)
        #expect(viaDispatch is LoRAAdapter)
        #expect(bits(viaDispatch) == bits(adapter))
        let ours = try logits(model, adapter)
        #expect(try logits(model, loaded) == ours)
        #expect(difference(ours, try logits(model, nil)).diff > 0.1, "the adapter must change the logits")

        // PEFT's names and configuration.
        let reader = try SafeTensorsReader(contentsOf: weightsURL(dir))
        #expect(reader.names.count == 2 * 2 * 7)
        #expect(reader.entry("base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight")?.shape == [32, 3])
        #expect(reader.entry("base_model.model.model.layers.0.mlp.down_proj.lora_A.weight")?.shape == [3, 128])
        let config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: configURL(dir))) as? [String: Any])
        #expect(config["peft_type"] as? String == "LORA")
        #expect(config["task_type"] as? String == "CAUSAL_LM")
        #expect(config["target_modules"] as? [String] == LlamaTrainingTests.allModules)
        #expect(config["r"] as? Int == 3)
        #expect(config["base_model_name_or_path"] as? String == "tiny_untied_hf")

        // For scripts/check-peft-llama.sh: our adapter and logits, checked with PEFT in Python.
        if let out = ProcessInfo.processInfo.environment["LORTA_WRITE_PEFT_FIXTURE"], !out.isEmpty {
            let outURL = URL(fileURLWithPath: out)
            try adapter.save(to: outURL.appendingPathComponent("adapter"), host: host, baseModelName: "tiny_untied_hf")
            let rows = ours.shape[0], vocab = ours.shape[1], s = ours.scalars
            let json: [String: Any] = ["tokens": tokens.map(Int.init),
                                       "logits": (0..<rows).map { r in (0..<vocab).map { Double(s[r * vocab + $0]) } }]
            try JSONSerialization.data(withJSONObject: json).write(to: outURL.appendingPathComponent("ours.json"))
            print("wrote \(outURL.path)/adapter and ours.json")
        }
    }

    @Test func loraSubsetKeepsItsOrder() throws {
        let host = try tinyModel().adapterHost
        let adapter = try lora(host, targets: ["down_proj", "v_proj"])
        let dir = try temporaryDirectory()
        try (adapter as any Adapter).save(to: dir, host: host)
        let loaded = try AdapterFiles.load(from: dir, host: host)
        #expect(loaded.targetModules == ["down_proj", "v_proj"])
        #expect(bits(loaded) == bits(adapter))
    }

    @Test func lortaRoundTripWithGroupedQueryAttention() throws {
        let model = try tinyModel()
        let host = model.adapterHost
        let adapter = try lorta(host)
        #expect(adapter.factors.a.map(\.shape) == [[64, 4], [32, 4]])
        let dir = try temporaryDirectory()
        try (adapter as any Adapter).save(to: dir, host: host)

        let loaded = try LoRTAAdapter(contentsOf: dir, host: host)
        #expect(loaded.configuration == adapter.configuration)
        #expect(bits(loaded) == bits(adapter))
        let viaDispatch = try AdapterFiles.load(from: dir, host: host)
        #expect(viaDispatch is LoRTAAdapter)
        #expect(bits(viaDispatch) == bits(adapter))
        let ours = try logits(model, adapter)
        #expect(try logits(model, viaDispatch) == ours)
        #expect(difference(ours, try logits(model, nil)).diff > 0.1, "the adapter must change the logits")
        // Our layout: the host-free loader reads it too.
        #expect(bits(try LoRTAAdapter(contentsOf: dir)) == bits(adapter))
        #expect(Set(try SafeTensorsReader(contentsOf: weightsURL(dir)).names)
                == ["lora_A", "lora_A_1", "lora_B", "lora_C_l", "lora_C_h", "lora_C_m"])
    }

    // MARK: PEFT interop

    @Test func peftSavedAdapterGivesPEFTLogits() throws {
        let model = try tinyModel()
        let dir = fixtures.appendingPathComponent("peft-llama")
        let adapter = try AdapterFiles.load(from: dir.appendingPathComponent("adapter"), host: model.adapterHost)
        let lora = try #require(adapter as? LoRAAdapter)
        #expect(Set(lora.targetModules) == Set(LlamaTrainingTests.allModules))
        #expect(lora.configuration.rank == 4 && lora.configuration.scale == 2)
        let fixtureTokens = try #require(try JSONSerialization.jsonObject(
            with: Data(contentsOf: dir.appendingPathComponent("tokens.json"))) as? [String: [Int]])["tokens"]
        #expect(fixtureTokens?.map(Int32.init) == tokens)
        let peft = try NumpyArray(contentsOf: dir.appendingPathComponent("logits_peft.npy")).floatMatrix()
        let base = try NumpyArray(contentsOf: dir.appendingPathComponent("logits_base.npy")).floatMatrix()
        let ours = try logits(model, adapter)
        #expect(ours.shape == peft.shape)
        let (diff, scale) = difference(ours, peft)
        let change = difference(base, peft).diff
        print("PEFT → ours: max |ours − PEFT| = \(diff), max |logit| = \(scale), relative \(diff / scale); adapter changes logits by up to \(change)")
        #expect(diff <= 1e-4 * scale)
        #expect(change > 1000 * diff)
    }

    // MARK: The reference implementation's checkpoints

    /// A host of the reference's kind (square attention, no GQA): L=3, H=4, d_h=8.
    static let squareHost = AdapterHost(
        modelType: "llama", layerCount: 3, headCount: 4, headDimension: 8,
        modules: ["q_proj", "k_proj", "v_proj", "o_proj"].map {
            .init(name: $0, path: "self_attn.\($0)", inputSize: 32, outputSize: 32, isAttention: true)
        } + [.init(name: "gate_proj", path: "mlp.gate_proj", inputSize: 32, outputSize: 48, isAttention: false)],
        layerPath: "model.layers")

    private func checkReferenceDeltas(_ adapter: any Adapter, host: AdapterHost, fixture: String) throws {
        let array = try NumpyArray(contentsOf: fixtures.appendingPathComponent("lorta_reference/\(fixture)/delta.npy"))
        let delta = try array.doubleValues()
        let hidden = host.headCount * host.headDimension
        #expect(array.shape == [host.layerCount, 4, hidden, hidden])
        var worst = 0.0
        for l in 0..<host.layerCount {
            for (m, name) in ["q_proj", "k_proj", "v_proj", "o_proj"].enumerated() {
                guard let d = try adapter.delta(layer: l, module: name) else {
                    #expect(!adapter.targetModules.contains(name))
                    continue
                }
                #expect(d.shape == [hidden, hidden])
                let offset = (l * 4 + m) * hidden * hidden
                let expected = delta[offset..<(offset + hidden * hidden)]
                let scale = expected.map(abs).max()!
                let diff = zip(d.scalars, expected).map { abs(Double($0) - $1) }.max()!
                worst = max(worst, diff / scale)
                #expect(diff <= 1e-5 * scale, "\(fixture) layer \(l) \(name): \(diff) of \(scale)")
            }
        }
        print("reference \(fixture): worst relative ΔW difference \(worst)")
    }

    @Test func referenceCheckpointMergesToTheReferenceDelta() throws {
        let host = Self.squareHost
        let dir = fixtures.appendingPathComponent("lorta_reference/square/adapter")
        let adapter = try AdapterFiles.load(from: dir, host: host)
        let lorta = try #require(adapter as? LoRTAAdapter)
        // The M axis is q, k, v, o whatever order target_modules lists.
        #expect(lorta.targetModules == ["q_proj", "k_proj", "v_proj", "o_proj"])
        #expect(lorta.configuration.rank == 3 && lorta.configuration.alpha == 6)
        try checkReferenceDeltas(adapter, host: host, fixture: "square")
        // Saved again, it is in our layout and reloads bit for bit.
        let out = try temporaryDirectory()
        try adapter.save(to: out, host: host)
        #expect(bits(try AdapterFiles.load(from: out, host: host)) == bits(adapter))
    }

    @Test func referenceCheckpointOnTheTinyLlama() throws {
        let model = try tinyModel()
        let host = model.adapterHost
        let dir = fixtures.appendingPathComponent("lorta_reference/tiny_llama_qo/adapter")
        let adapter = try AdapterFiles.load(from: dir, host: host)
        #expect(adapter.targetModules == ["q_proj", "o_proj"])
        try checkReferenceDeltas(adapter, host: host, fixture: "tiny_llama_qo")
        let merged = try model.merged(with: adapter).logits(for: tokens)
        let (diff, scale) = difference(try logits(model, adapter), merged)
        #expect(diff <= 1e-4 * scale)

        // Listing k_proj (narrower under GQA): the format cannot describe it.
        let gqa = try copy(dir)
        try editConfig(gqa) { $0["target_modules"] = ["q_proj", "k_proj", "v_proj", "o_proj"] }
        let e = fileError { _ = try AdapterFiles.load(from: gqa, host: host) }
        guard case .incompatible(let file, let reason)? = e else { Issue.record("\(String(describing: e))"); return }
        #expect(file.hasSuffix(AdapterFiles.weightsFileName))
        #expect(reason.contains("k_proj") && reason.contains("grouped-query attention"))
        print(e!.description)

        // An MLP target.
        let mlp = try copy(dir)
        try editConfig(mlp) { $0["target_modules"] = ["q_proj", "gate_proj"] }
        guard case .unsupportedTargets? = fileError({ _ = try AdapterFiles.load(from: mlp, host: host) }) else {
            Issue.record("expected unsupportedTargets"); return
        }
        // A reference checkpoint for another model shape (3 layers in C_l).
        let layers = try copy(dir)
        try editTensors(layers) { list in
            let i = list.firstIndex { $0.0 == "base_model.model.lora_C_l" }!
            list[i].1 = randomTensor(1, [3, 2])
        }
        #expect(fileError { _ = try AdapterFiles.load(from: layers, host: host) } == .tensorShapeMismatch(
            file: weightsURL(layers).path, tensor: "base_model.model.lora_C_l", expected: [2, 2], actual: [3, 2]))
        // rsLoRA scaling is not ours.
        let rs = try copy(dir)
        try editConfig(rs) { $0["use_rslora"] = true }
        #expect(fileError { _ = try AdapterFiles.load(from: rs, host: host) }
                == .configuration(file: configURL(rs).path, .unsupportedOption(name: "use_rslora", value: "true")))
    }

    // MARK: Errors

    @Test func missingFiles() throws {
        let host = try tinyModel().adapterHost
        let dir = try temporaryDirectory()
        #expect(fileError { _ = try AdapterFiles.load(from: dir, host: host) } == .missingFile(configURL(dir).path))
        try lora(host).save(to: dir, host: host)
        try FileManager.default.removeItem(at: weightsURL(dir))
        #expect(fileError { _ = try AdapterFiles.load(from: dir, host: host) } == .missingFile(weightsURL(dir).path))
        #expect(fileError { _ = try LoRTAAdapter(contentsOf: dir, host: host) } == .missingFile(weightsURL(dir).path))
    }

    @Test func wrongPEFTType() throws {
        let host = try tinyModel().adapterHost
        let loraDir = try temporaryDirectory(), lortaDir = try temporaryDirectory()
        try lora(host).save(to: loraDir, host: host)
        try lorta(host).save(to: lortaDir, host: host)
        #expect(fileError { _ = try LoRTAAdapter(contentsOf: loraDir, host: host) }
                == .wrongAdapterType(file: configURL(loraDir).path, expected: "LORTA", actual: "LORA"))
        #expect(fileError { _ = try LoRAAdapter(contentsOf: lortaDir, host: host) }
                == .wrongAdapterType(file: configURL(lortaDir).path, expected: "LORA", actual: "LORTA"))
        try editConfig(loraDir) { $0["peft_type"] = "IA3" }
        #expect(fileError { _ = try AdapterFiles.load(from: loraDir, host: host) }
                == .configuration(file: configURL(loraDir).path, .unsupportedPEFTType("IA3")))
        try editConfig(lortaDir) { $0["peft_type"] = "LORA"; $0["use_dora"] = true }
        #expect(fileError { _ = try AdapterFiles.load(from: lortaDir, host: host) }
                == .configuration(file: configURL(lortaDir).path, .unsupportedOption(name: "use_dora", value: "true")))
    }

    @Test func targetsTheModelDoesNotHave() throws {
        let host = try tinyModel().adapterHost
        let dir = try temporaryDirectory()
        try lora(host).save(to: dir, host: host)
        try editConfig(dir) { $0["target_modules"] = ["q_proj", "lm_head"] }
        guard case .unsupportedTargets(let file, let reason)? = fileError({ _ = try AdapterFiles.load(from: dir, host: host) }) else {
            Issue.record("expected unsupportedTargets"); return
        }
        #expect(file == configURL(dir).path && reason.contains("lm_head"))
        // A pattern that selects nothing, and one that selects different modules per layer.
        try editConfig(dir) { $0["target_modules"] = ".*\\.attention\\.query" }
        guard case .unsupportedTargets? = fileError({ _ = try AdapterFiles.load(from: dir, host: host) }) else {
            Issue.record("expected unsupportedTargets"); return
        }
        try editConfig(dir) { $0["target_modules"] = "model\\.layers\\.0\\..*" }
        guard case .unsupportedTargets(_, let perLayer)? = fileError({ _ = try AdapterFiles.load(from: dir, host: host) }) else {
            Issue.record("expected unsupportedTargets"); return
        }
        #expect(perLayer.contains("layer 1"))
        // A pattern that selects all seven in every layer reads the file.
        try editConfig(dir) { $0["target_modules"] = "model\\.layers\\.\\d+\\.(self_attn|mlp)\\.\\w+_proj" }
        #expect(try AdapterFiles.load(from: dir, host: host).targetModules == LlamaTrainingTests.allModules)

        // LoRTA (our layout) naming a projection the model lacks.
        let lortaDir = try temporaryDirectory()
        try lorta(host).save(to: lortaDir, host: host)
        try editConfig(lortaDir) { $0["target_modules"] = ["q_proj", "query", "v_proj", "o_proj"] }
        guard case .unsupportedTargets(_, let r)? = fileError({ _ = try AdapterFiles.load(from: lortaDir, host: host) }) else {
            Issue.record("expected unsupportedTargets"); return
        }
        #expect(r.contains("'query'"))
    }

    @Test func lortaForAnotherShape() throws {
        let host = try tinyModel().adapterHost
        let dir = try temporaryDirectory()
        try lorta(host).save(to: dir, host: host)
        let threeLayers = AdapterHost(modelType: host.modelType, layerCount: 3, headCount: host.headCount,
                                      headDimension: host.headDimension, modules: host.modules, layerPath: host.layerPath)
        guard case .incompatible(let file, let reason)? = fileError({ _ = try AdapterFiles.load(from: dir, host: threeLayers) }) else {
            Issue.record("expected incompatible"); return
        }
        #expect(file == configURL(dir).path && reason.contains("L=2") && reason.contains("L=3"))
        // LoRA made for two layers, loaded for three: the layer-2 factors are missing.
        let loraDir = try temporaryDirectory()
        try lora(host).save(to: loraDir, host: host)
        guard case .missingTensor(_, let t)? = fileError({ _ = try AdapterFiles.load(from: loraDir, host: threeLayers) }) else {
            Issue.record("expected missingTensor"); return
        }
        #expect(t.contains("layers.2."))
        // Saving an adapter for a model it does not fit.
        #expect(throws: AdapterError.self) { try lorta(host).save(to: try temporaryDirectory(), host: threeLayers) }
    }

    @Test func wrongMissingAndExtraTensors() throws {
        let host = try tinyModel().adapterHost
        let source = try temporaryDirectory()
        try lora(host).save(to: source, host: host)
        let name = "base_model.model.model.layers.1.self_attn.o_proj.lora_A.weight"

        let shape = try copy(source)
        try editTensors(shape) { list in
            let i = list.firstIndex { $0.0 == name }!
            list[i].1 = randomTensor(2, [3, 63])
        }
        #expect(fileError { _ = try AdapterFiles.load(from: shape, host: host) }
                == .tensorShapeMismatch(file: weightsURL(shape).path, tensor: name, expected: [3, 64], actual: [3, 63]))
        let rank = try copy(source)
        try editTensors(rank) { list in
            let i = list.firstIndex { $0.0 == name }!
            list[i].1 = randomTensor(2, [5, 64])
        }
        #expect(fileError { _ = try AdapterFiles.load(from: rank, host: host) }
                == .rankMismatch(file: weightsURL(rank).path, tensor: name, configured: 3, actual: 5))
        let extra = try copy(source)
        try editTensors(extra) { $0.append(("base_model.model.lm_head.lora_A.weight", randomTensor(2, [3, 64]))) }
        #expect(fileError { _ = try AdapterFiles.load(from: extra, host: host) }
                == .unexpectedTensor(file: weightsURL(extra).path, tensor: "base_model.model.lm_head.lora_A.weight"))
        let missing = try copy(source)
        try editTensors(missing) { $0.removeAll { $0.0 == name } }
        #expect(fileError { _ = try AdapterFiles.load(from: missing, host: host) }
                == .missingTensor(file: weightsURL(missing).path, tensor: name))

        let lortaDir = try temporaryDirectory()
        try lorta(host).save(to: lortaDir, host: host)
        let lortaExtra = try copy(lortaDir)
        try editTensors(lortaExtra) { $0.append(("lora_A_2", randomTensor(2, [16, 4]))) }
        #expect(fileError { _ = try AdapterFiles.load(from: lortaExtra, host: host) }
                == .unexpectedTensor(file: weightsURL(lortaExtra).path, tensor: "lora_A_2"))
        let lortaShape = try copy(lortaDir)
        try editTensors(lortaShape) { list in
            let i = list.firstIndex { $0.0 == "lora_A_1" }!
            list[i].1 = randomTensor(2, [64, 4])
        }
        #expect(fileError { _ = try AdapterFiles.load(from: lortaShape, host: host) }
                == .tensorShapeMismatch(file: weightsURL(lortaShape).path, tensor: "lora_A_1", expected: [32, 4], actual: [64, 4]))
    }

    @Test func nonFiniteFactors() throws {
        let host = try tinyModel().adapterHost
        // Saving refuses before writing anything.
        var bad = try lora(host)
        var p = bad.parameters
        var values = p[5].scalars
        values[2] = .nan
        p[5] = try Tensor(values, shape: p[5].shape)
        try bad.setParameters(p)
        let dir = try temporaryDirectory().appendingPathComponent("out")
        let name = bad.parameterNames(host: host)[5]
        #expect(fileError { try bad.save(to: dir, host: host) } == .nonFinite(file: weightsURL(dir).path, tensor: name))
        #expect(!FileManager.default.fileExists(atPath: dir.path))

        var badLoRTA = try lorta(host)
        var q = badLoRTA.parameters
        q[3] = try Tensor(repeating: .infinity, shape: q[3].shape)   // C_H
        try badLoRTA.setParameters(q)
        #expect(fileError { try badLoRTA.save(to: dir, host: host) } == .nonFinite(file: weightsURL(dir).path, tensor: "lora_C_h"))
        #expect(!FileManager.default.fileExists(atPath: dir.path))

        // Loading a file with a NaN.
        let loaded = try temporaryDirectory()
        try lora(host).save(to: loaded, host: host)
        try editTensors(loaded) { list in
            let i = list.firstIndex { $0.0 == name }!
            var v = list[i].1.scalars
            v[0] = .nan
            list[i].1 = try Tensor(v, shape: list[i].1.shape)
        }
        #expect(fileError { _ = try AdapterFiles.load(from: loaded, host: host) }
                == .nonFinite(file: weightsURL(loaded).path, tensor: name))
    }

    @Test func errorDescriptionsNameTheFile() {
        let e = AdapterFileError.tensorShapeMismatch(file: "/x/adapter_model.safetensors", tensor: "lora_B", expected: [2, 3], actual: [2, 4])
        #expect(e.description == "/x/adapter_model.safetensors: tensor 'lora_B' has shape [2, 4], expected [2, 3]")
        #expect(AdapterFileError.configuration(file: "/x/adapter_config.json", .missingField("r")).description
                == "/x/adapter_config.json: adapter_config.json has no 'r'")
    }
}
