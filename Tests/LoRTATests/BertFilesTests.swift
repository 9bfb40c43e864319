import Foundation
import Testing
@testable import LoRTA

// MARK: - Helpers (names prefixed "files" to stay unique in the test target)

private let filesRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
private let filesMiniLMDirectory = filesRoot.appendingPathComponent("assets/all-MiniLM-L6-v2")
private let filesFixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("bert_peft")

/// all-MiniLM-L6-v2, loaded once; the tests that need it fail (never skip) when it is absent.
private let filesMiniLM: Result<BertModel, any Error> = Result { try BertModel(directory: filesMiniLMDirectory) }

private func filesTemporaryDirectory(_ tag: String) -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("lorta-bert-files-\(tag)-\(UUID().uuidString)")
}

/// The shared tiny random BERT (TinyBertSupport.swift) written into `dir` with
/// `architectures: ["BertModel"]` in its config, optional extra tensors and an optional name
/// prefix; returns the loaded model.
@discardableResult
private func filesTinyModel(in dir: URL, seed: UInt64 = 91, prefix: String = "",
                            extra: (inout SafeTensorsWriter) throws -> Void = { _ in }) throws -> BertModel {
    try tinyBertWrite(to: dir, seed: seed, prefix: prefix, extraConfiguration: ["architectures": ["BertModel"]], extra: extra)
}

private func filesTinyConfiguration() throws -> BertConfiguration {
    try BertConfiguration(vocabularySize: 12, hiddenSize: 8, layerCount: 2, headCount: 2, intermediateSize: 16,
                          maxPositionEmbeddings: 10)
}

private func filesBatch(_ rows: [[Int32]], length: Int) -> TokenBatch { tinyBertBatch(rows, length: length) }

/// The token ids and mask the fixture script saved (transformers' tokenizer of MiniLM).
private func filesFixtureTokens() throws -> TokenBatch {
    let object = try JSONSerialization.jsonObject(with: Data(contentsOf: filesFixtures.appendingPathComponent("tokens.json"))) as! [String: Any]
    let ids = (object["ids"] as! [[Int]]).map { $0.map(Int32.init) }
    let mask = (object["attention_mask"] as! [[Int]]).map { $0.map(Int32.init) }
    let T = ids[0].count
    return TokenBatch(count: ids.count, sequenceLength: T, ids: Array(ids.joined()), attentionMask: Array(mask.joined()),
                      lengths: mask.map { Int($0.reduce(0, +)) })
}

private func filesFixtureEmbeddings(_ name: String) throws -> Tensor {
    try NumpyArray(contentsOf: filesFixtures.appendingPathComponent("embeddings_\(name).npy")).floatMatrix()
}

private func filesBitwiseEqual(_ a: Tensor, _ b: Tensor) -> Bool {
    guard a.shape == b.shape else { return false }
    return a.withUnsafeBufferPointer { x in
        b.withUnsafeBufferPointer { y in x.count == 0 || memcmp(x.baseAddress!, y.baseAddress!, x.count * 4) == 0 }
    }
}

private func filesMaxAbsDiff(_ a: Tensor, _ b: Tensor) -> Float {
    zip(a.scalars, b.scalars).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

/// Smallest cosine similarity between corresponding rows.
private func filesMinCosine(_ a: Tensor, _ b: Tensor) -> Double {
    let rows = a.shape[0], cols = a.shape[1]
    var worst = 1.0
    for i in 0..<rows {
        var dot = 0.0, na = 0.0, nb = 0.0
        for j in 0..<cols {
            let x = Double(a[i, j]), y = Double(b[i, j])
            dot += x * y; na += x * x; nb += y * y
        }
        worst = min(worst, dot / (na.squareRoot() * nb.squareRoot()))
    }
    return worst
}

/// LoRA adapters with random non-zero factors (A, B uniform in ±scale).
private func filesLoRA(_ c: BertConfiguration, targets: [BertProjection], rank: Int, alpha: Float, rsLoRA: Bool = false,
                       scale: Float, seed: UInt64) throws -> LoRAAdapter {
    var rng = LoRATestRNG(seed: seed)
    let d = c.hiddenSize
    // Draw order: every A (layer-major, then target), then every B.
    let a = (0..<c.layerCount).flatMap { _ in targets.map { _ in rng.tensor([rank, d], scale: scale) } }
    let b = (0..<c.layerCount).flatMap { _ in targets.map { _ in rng.tensor([d, rank], scale: scale) } }
    return try LoRAAdapter(host: c.adapterHost, targets: targets.map(\.rawValue),
                           configuration: LoRAConfiguration(rank: rank, alpha: alpha, useRSLoRA: rsLoRA), a: a, b: b)
}

/// PEFT's key of a LoRA factor of the BERT host (`factor` is `lora_A` or `lora_B`).
private func filesKey(_ c: BertConfiguration, layer: Int, _ p: BertProjection, _ factor: String) -> String {
    let host = c.adapterHost
    return host.peftPrefix(layer: layer, module: host.module(named: p.rawValue)!) + ".\(factor).weight"
}

/// The `AdapterConfigurationError` inside the error `body` throws (nil when it throws another).
private func filesConfigurationError(_ body: () throws -> Void) -> AdapterConfigurationError? {
    do { try body() } catch AdapterFileError.configuration(_, let e) { return e } catch { return nil }
    return nil
}

/// A LoRTA adapter with random non-zero factors (C factors around 1).
private func filesLoRTA(_ c: BertConfiguration, targets: [BertProjection], rank: Int, scale: Float,
                        seed: UInt64) throws -> LoRTAAdapter {
    try randomBertLoRTA(c, targets: targets, rank: rank, scale: scale, seed: seed)
}

private func filesSameLoRA(_ x: LoRAAdapter, _ y: LoRAAdapter) -> Bool {
    x.configuration == y.configuration && x.targetModules == y.targetModules
        && zip(x.a, y.a).allSatisfy(filesBitwiseEqual) && zip(x.b, y.b).allSatisfy(filesBitwiseEqual)
        && x.a.count == y.a.count
}

/// Every weight of two models bitwise equal.
private func filesSameWeights(_ x: BertModel, _ y: BertModel) throws -> Bool {
    let a = try x.namedTensors(), b = try y.namedTensors()
    return x.configuration == y.configuration && a.map(\.name) == b.map(\.name)
        && zip(a, b).allSatisfy { filesBitwiseEqual($0.tensor, $1.tensor) }
}

/// Copies an adapter directory, edits its config JSON object and/or its tensors, and returns it.
private func filesEditedAdapter(_ source: URL, in parent: URL, _ tag: String,
                                config: (inout [String: Any]) -> Void = { _ in }) throws -> URL {
    try filesEditedAdapter(source, in: parent, tag, config: config, tensorEdit: nil)
}

/// As above, rewriting the tensors with `tensors(reader of the original, writer of the copy)`.
private func filesEditedAdapter(_ source: URL, in parent: URL, _ tag: String,
                                config: (inout [String: Any]) -> Void = { _ in },
                                tensors: (SafeTensorsReader, inout SafeTensorsWriter) throws -> Void) throws -> URL {
    try withoutActuallyEscaping(tensors) { try filesEditedAdapter(source, in: parent, tag, config: config, tensorEdit: $0) }
}

private func filesEditedAdapter(_ source: URL, in parent: URL, _ tag: String,
                                config: (inout [String: Any]) -> Void,
                                tensorEdit tensors: ((SafeTensorsReader, inout SafeTensorsWriter) throws -> Void)?) throws -> URL {
    let dir = parent.appendingPathComponent(tag)
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    var object = try JSONSerialization.jsonObject(with: Data(contentsOf: source.appendingPathComponent("adapter_config.json"))) as! [String: Any]
    config(&object)
    try JSONSerialization.data(withJSONObject: object).write(to: dir.appendingPathComponent("adapter_config.json"))
    let weights = source.appendingPathComponent("adapter_model.safetensors")
    if let tensors {
        let reader = try SafeTensorsReader(contentsOf: weights)
        var writer = SafeTensorsWriter()
        try tensors(reader, &writer)
        try writer.write(to: dir.appendingPathComponent("adapter_model.safetensors"))
    } else {
        try FileManager.default.copyItem(at: weights, to: dir.appendingPathComponent("adapter_model.safetensors"))
    }
    return dir
}

/// Copies every tensor of `reader` except those `skip` returns true for.
private func filesCopy(_ reader: SafeTensorsReader, into writer: inout SafeTensorsWriter, skip: (String) -> Bool = { _ in false }) throws {
    for e in reader.entries where !skip(e.name) {
        try writer.addRaw(e.name, dtype: e.dtype, shape: e.shape, bytes: reader.rawBytes(e.name))
    }
}

// MARK: - Tests

@Suite("BERT files: PEFT adapters, head, export", .serialized)
struct BertFilesTests {
    /// PEFT's own adapter (scripts/fixtures/make_bert_peft_fixtures.py: LoRA r = 2, alpha 4 on
    /// Q, K, V, attention.output.dense of all-MiniLM-L6-v2, seeded non-zero lora_B) loads with
    /// AdapterFiles.load(from:host:), our forward matches PEFT's mean-pooled embeddings, and our
    /// merged model matches PEFT's merge_and_unload() embeddings.
    @Test func peftAdapterOnMiniLMMatchesPEFTEmbeddings() throws {
        let model = try filesMiniLM.get()
        let adapters = try AdapterFiles.load(from: filesFixtures.appendingPathComponent("adapter"), host: model.adapterHost)
        guard let lora = adapters as? LoRAAdapter else { Issue.record("expected LoRA"); return }
        #expect(Set(lora.targetModules) == Set(BertProjection.allCases.map(\.rawValue)))
        #expect(lora.configuration == (try LoRAConfiguration(rank: 2, alpha: 4)))
        let tokens = try filesFixtureTokens()
        let peftAdapted = try filesFixtureEmbeddings("adapter"), peftMerged = try filesFixtureEmbeddings("merged")
        let peftBase = try filesFixtureEmbeddings("base")
        let ours = try model.forward(tokens, adapter: adapters).pooled
        let oursMerged = try model.merged(with: adapters).forward(tokens).pooled
        let oursBase = try model.forward(tokens).pooled
        let (cos, diff) = (filesMinCosine(ours, peftAdapted), filesMaxAbsDiff(ours, peftAdapted))
        let (cosM, diffM) = (filesMinCosine(oursMerged, peftMerged), filesMaxAbsDiff(oursMerged, peftMerged))
        print("PEFT adapter on MiniLM: adapted min cos \(cos), max |Δ| \(diff); merged min cos \(cosM), max |Δ| \(diffM); base max |Δ| \(filesMaxAbsDiff(oursBase, peftBase)); |adapted − base| \(filesMaxAbsDiff(peftAdapted, peftBase))")
        #expect(cos >= 0.99999)
        #expect(diff <= 1e-4)
        #expect(cosM >= 0.99999)
        #expect(diffM <= 1e-4)
        #expect(filesMaxAbsDiff(oursMerged, ours) <= 1e-4)
        // The adapter is not a no-op (so the comparison above says something).
        #expect(filesMaxAbsDiff(peftAdapted, peftBase) > 1e-2)
        #expect(filesMaxAbsDiff(ours, oursBase) > 1e-2)
    }

    /// Our PEFT-layout save of PEFT's adapter reproduces PEFT's file: same key set, every tensor
    /// bitwise equal (F32), and adapter_config.json with every field PEFT 0.21 writes (except
    /// its own peft_version), with PEFT's values; our save → load is bitwise.
    @Test func ourSaveReproducesPEFTFiles() throws {
        let config = try BertConfiguration(contentsOf: filesMiniLMDirectory.appendingPathComponent("config.json"))
        let peftDir = filesFixtures.appendingPathComponent("adapter")
        let lora = try LoRAAdapter(contentsOf: peftDir, host: config.adapterHost)
        let dir = filesTemporaryDirectory("peft-save")
        defer { try? FileManager.default.removeItem(at: dir) }
        try lora.save(to: dir, host: config.adapterHost, baseModelName: "assets/all-MiniLM-L6-v2")

        let theirs = try SafeTensorsReader(contentsOf: peftDir.appendingPathComponent("adapter_model.safetensors"))
        let mine = try SafeTensorsReader(contentsOf: dir.appendingPathComponent("adapter_model.safetensors"))
        #expect(Set(mine.names) == Set(theirs.names))
        #expect(mine.names.count == 6 * 4 * 2)
        for name in theirs.names {
            #expect(mine.entry(name)?.dtype == .f32 && mine.entry(name)?.shape == theirs.entry(name)?.shape, "\(name)")
            #expect(try mine.rawBytes(name) == theirs.rawBytes(name), "\(name)")
        }
        #expect(mine.metadata == theirs.metadata)

        let theirConfig = try JSONSerialization.jsonObject(with: Data(contentsOf: peftDir.appendingPathComponent("adapter_config.json"))) as! [String: Any]
        let myConfig = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("adapter_config.json"))) as! [String: Any]
        #expect(Set(myConfig.keys) == Set(theirConfig.keys).subtracting(["peft_version"]))
        for (key, value) in theirConfig where key != "peft_version" && key != "target_modules" {
            #expect((myConfig[key] as? NSObject) == (value as? NSObject), "\(key): ours \(String(describing: myConfig[key])), PEFT \(value)")
        }
        #expect(Set(myConfig["target_modules"] as! [String]) == Set(theirConfig["target_modules"] as! [String]))

        // Round trip, and the order of targets survives it.
        let back = try LoRAAdapter(contentsOf: dir, host: config.adapterHost)
        #expect(filesSameLoRA(back, lora))
    }

    /// Export of merged MiniLM models (PEFT's LoRA and a random LoRTA with non-zero factors):
    /// save → BertModel(directory:) gives bitwise the merged weights; the pooler and
    /// position_ids of the source are carried through unchanged, config.json and the tokenizer
    /// files are copied; with a random head, the merged model's logits equal the unmerged
    /// adapter model's within 1e-4. With LORTA_EXPORT_CHECK_DIR set, the LoRA export, our
    /// embeddings and our own random LoRA adapter (PEFT layout) are left there for
    /// scripts/check_export.py.
    @Test func miniLMMergedExportRoundTrip() throws {
        let model = try filesMiniLM.get()
        let c = model.configuration
        let tokens = try filesFixtureTokens()
        let head = try BertClassificationHead(hiddenSize: c.hiddenSize, classCount: 3, seed: 11)
        let keep = ProcessInfo.processInfo.environment["LORTA_EXPORT_CHECK_DIR"].map { URL(fileURLWithPath: $0) }
        let scratch = keep ?? filesTemporaryDirectory("export")
        defer { if keep == nil { try? FileManager.default.removeItem(at: scratch) } }
        let source = try SafeTensorsReader(contentsOf: filesMiniLMDirectory.appendingPathComponent("model.safetensors"))

        let peftLoRA = try AdapterFiles.load(from: filesFixtures.appendingPathComponent("adapter"), host: c.adapterHost)
        let lorta: any Adapter = try filesLoRTA(c, targets: BertProjection.allCases, rank: 4, scale: 0.05, seed: 7)
        for (label, adapters) in [("lora", peftLoRA), ("lorta", lorta)] as [(String, any Adapter)] {
            let merged = try model.merged(with: adapters)
            let dir = scratch.appendingPathComponent("export-\(label)")
            try merged.save(to: dir, copyingFilesFrom: filesMiniLMDirectory, overwrite: keep != nil)
            let reloaded = try BertModel(directory: dir)
            #expect(try filesSameWeights(reloaded, merged), "\(label)")

            let exported = try SafeTensorsReader(contentsOf: dir.appendingPathComponent("model.safetensors"))
            #expect(Set(exported.names) == Set(source.names), "\(label): same tensor names as the source")
            for name in ["pooler.dense.weight", "pooler.dense.bias", "embeddings.position_ids"] {
                #expect(exported.entry(name)?.dtype == source.entry(name)?.dtype, "\(name)")
                let carried = try exported.rawBytes(name), original = try source.rawBytes(name)
                #expect(carried == original, "\(name)")
            }
            #expect(exported.names.allSatisfy { exported.entry($0)!.dtype == source.entry($0)!.dtype })
            for name in ["config.json"] + BertModel.tokenizerFileNames {
                #expect(try Data(contentsOf: dir.appendingPathComponent(name)) == Data(contentsOf: filesMiniLMDirectory.appendingPathComponent(name)), "\(name)")
            }

            let unmerged = try model.logits(tokens, adapter: adapters, head: head)
            let fromExport = try reloaded.logits(tokens, head: head)
            let diff = filesMaxAbsDiff(unmerged, fromExport)
            print("MiniLM \(label) export: max |logits(unmerged) − logits(exported merged)| = \(diff), max |logit| = \(unmerged.maxAbsolute)")
            #expect(diff <= 1e-4, "\(label)")
            #expect(filesMaxAbsDiff(unmerged, try model.logits(tokens, head: head)) > 1e-3, "\(label): the adapter changes the logits")

            if let keep, label == "lora" {
                try NumpyWriter.write(try reloaded.forward(tokens).pooled, to: keep.appendingPathComponent("export-lora-embeddings.npy"))
            }
        }
        if let keep {
            // Our own LoRA (not PEFT's numbers) for PEFT to load: check_export.py adapter mode.
            let ours = try filesLoRA(c, targets: [.query, .value, .attentionOutput, .key], rank: 2, alpha: 3, scale: 0.05, seed: 5)
            try ours.save(to: keep.appendingPathComponent("adapter-ours"), host: c.adapterHost, baseModelName: "all-MiniLM-L6-v2")
            try NumpyWriter.write(try model.forward(tokens, adapter: ours).pooled,
                                  to: keep.appendingPathComponent("adapter-ours-embeddings.npy"))
            try Data(contentsOf: filesFixtures.appendingPathComponent("tokens.json")).write(to: keep.appendingPathComponent("tokens.json"))
        }
    }

    /// LoRA save → load on the tiny model is bitwise, keeps the target order, rank, alpha
    /// (non-integer) and rsLoRA; AdapterFiles.load dispatches on peft_type; a file with F16 factors
    /// loads (converted); the saved config is what PEFT's parser reads.
    @Test func loraRoundTrip() throws {
        let c = try filesTinyConfiguration()
        let dir = filesTemporaryDirectory("lora")
        defer { try? FileManager.default.removeItem(at: dir) }
        for (i, targets) in [[BertProjection.value, .query], [.attentionOutput], BertProjection.allCases].enumerated() {
            let lora = try filesLoRA(c, targets: targets, rank: 3, alpha: 0.7, rsLoRA: i == 1, scale: 0.5, seed: UInt64(i))
            let sub = dir.appendingPathComponent("\(i)")
            try lora.save(to: sub, host: c.adapterHost)
            guard let back = try AdapterFiles.load(from: sub, host: c.adapterHost) as? LoRAAdapter else {
                Issue.record("not LoRA"); continue
            }
            #expect(filesSameLoRA(back, lora), "\(targets)")
            let peft = try PEFTAdapterConfiguration(contentsOf: sub.appendingPathComponent("adapter_config.json"))
            #expect(peft.peftType == .lora && peft.rank == 3 && peft.alpha == 0.7 && peft.useRSLoRA == (i == 1))
            #expect(peft.targetModules == .names(targets.map { $0 == .attentionOutput ? "attention.output.dense" : $0.rawValue }))
        }
        // F16 factors are accepted and converted.
        let lora = try filesLoRA(c, targets: [.query], rank: 2, alpha: 4, scale: 0.5, seed: 9)
        let src = dir.appendingPathComponent("f16-src")
        try lora.save(to: src, host: c.adapterHost)
        let f16 = try filesEditedAdapter(src, in: dir, "f16") { reader, writer in
            for name in reader.names { try writer.add(name, reader.tensor(name), as: .f16) }
        }
        let back = try LoRAAdapter(contentsOf: f16, host: c.adapterHost)
        #expect(filesMaxAbsDiff(back.a[1], lora.a[1]) <= 1e-3 && filesMaxAbsDiff(back.b[0], lora.b[0]) <= 1e-3)
        // A pattern selecting exactly Q and V of every layer, and PEFT's `bert.` prefix.
        let pattern = try filesEditedAdapter(src, in: dir, "pattern", config: { $0["target_modules"] = #"bert\.encoder\.layer\.\d+\.attention\.self\.query"# }) { reader, writer in
            for e in reader.entries {
                try writer.addRaw(e.name.replacingOccurrences(of: "base_model.model.", with: "base_model.model.bert."),
                                  dtype: e.dtype, shape: e.shape, bytes: reader.rawBytes(e.name))
            }
        }
        #expect(filesSameLoRA(try LoRAAdapter(contentsOf: pattern, host: c.adapterHost), lora))
    }

    /// LoRTA through Adapter.save / AdapterFiles.load: bitwise round trip, target_modules in
    /// PEFT's form; a LoRTA adapter for another model is refused.
    @Test func lortaRoundTrip() throws {
        let c = try filesTinyConfiguration()
        let dir = filesTemporaryDirectory("lorta")
        defer { try? FileManager.default.removeItem(at: dir) }
        let adapter = try filesLoRTA(c, targets: [.query, .value, .attentionOutput], rank: 3, scale: 0.5, seed: 4)
        try adapter.save(to: dir, host: c.adapterHost)
        guard let back = try AdapterFiles.load(from: dir, host: c.adapterHost) as? LoRTAAdapter else {
            Issue.record("not LoRTA"); return
        }
        #expect(back.configuration == adapter.configuration)
        let f = adapter.factors, g = back.factors
        #expect(zip(f.a, g.a).allSatisfy(filesBitwiseEqual) && f.a.count == g.a.count)
        #expect(filesBitwiseEqual(f.b, g.b) && filesBitwiseEqual(f.cH, g.cH) && filesBitwiseEqual(f.cL, g.cL) && filesBitwiseEqual(f.cM, g.cM))
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("adapter_config.json"))) as! [String: Any]
        #expect(json["peft_type"] as? String == "LORTA")
        #expect(json["target_modules"] as? [String] == ["query", "value", "attention.output.dense"])
        // Same adapter, model with 3 layers.
        let other = try BertConfiguration(vocabularySize: 12, hiddenSize: 8, layerCount: 3, headCount: 2, intermediateSize: 16,
                                          maxPositionEmbeddings: 10)
        #expect(throws: AdapterFileError.self) { try AdapterFiles.load(from: dir, host: other.adapterHost) }
        // The LoRA loader refuses a LoRTA directory by type.
        #expect(throws: AdapterFileError.wrongAdapterType(file: dir.appendingPathComponent("adapter_config.json").path,
                                                          expected: "LORA", actual: "LORTA")) {
            try LoRAAdapter(contentsOf: dir, host: c.adapterHost)
        }
    }

    /// Every malformed or mismatched LoRA adapter directory throws its typed error.
    @Test func loraLoadErrors() throws {
        let c = try filesTinyConfiguration()
        let dir = filesTemporaryDirectory("lora-errors")
        defer { try? FileManager.default.removeItem(at: dir) }
        let src = dir.appendingPathComponent("src")
        let host = c.adapterHost
        let lora = try filesLoRA(c, targets: [.query, .attentionOutput], rank: 2, alpha: 4, scale: 0.5, seed: 3)
        try lora.save(to: src, host: host)
        let keyA0 = filesKey(c, layer: 0, .query, "lora_A")
        let keyB1 = filesKey(c, layer: 1, .attentionOutput, "lora_B")
        func load(_ d: URL) throws { _ = try AdapterFiles.load(from: d, host: host) }
        func weights(_ d: URL) -> String { d.appendingPathComponent("adapter_model.safetensors").path }
        func config(_ d: URL) -> String { d.appendingPathComponent("adapter_config.json").path }

        // Missing files.
        let empty = dir.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        #expect(throws: AdapterFileError.missingFile(config(empty))) { try load(empty) }
        let noWeights = try filesEditedAdapter(src, in: dir, "no-weights")
        try FileManager.default.removeItem(at: noWeights.appendingPathComponent("adapter_model.safetensors"))
        #expect(throws: AdapterFileError.missingFile(weights(noWeights))) {
            try LoRAAdapter(contentsOf: noWeights, host: host)
        }
        // Config problems.
        #expect(filesConfigurationError {
            try load(try filesEditedAdapter(src, in: dir, "ia3", config: { $0["peft_type"] = "IA3" }))
        } == .unsupportedPEFTType("IA3"))
        let options: [(String, Any)] = [("use_dora", true), ("bias", "all"), ("modules_to_save", ["classifier"])]
        for (key, value) in options {
            #expect(filesConfigurationError {
                try load(try filesEditedAdapter(src, in: dir, "opt-\(key)", config: { $0[key] = value }))
            } != nil, "\(key)")
        }
        for (key, value) in [("fan_in_fan_out", true as Any), ("layers_to_transform", [0] as Any),
                             ("exclude_modules", ["query"] as Any)] {
            #expect(throws: AdapterFileError.self, "\(key)") {
                try load(try filesEditedAdapter(src, in: dir, "opt-\(key)", config: { $0[key] = value }))
            }
        }
        #expect(filesConfigurationError {
            try load(try filesEditedAdapter(src, in: dir, "rank-pattern", config: { $0["rank_pattern"] = ["attention.output.dense": 4] }))
        } == .unsupportedOption(name: "rank_pattern", value: "different ranks (2, 4) across adapted modules"))
        #expect(filesConfigurationError {
            try load(try filesEditedAdapter(src, in: dir, "alpha-pattern", config: { $0["alpha_pattern"] = ["layer.1.attention.self.query": 8] }))
        } != nil)
        // Targets this encoder cannot adapt, none, or not the same in every layer.
        for (tag, targets) in [("dense", ["dense"] as Any), ("mlp", ["query", "intermediate.dense"] as Any),
                               ("pooler", ["query", "attention.output.dense", "pooler.dense"] as Any),
                               ("emb", ["query", "attention.output.dense", "word_embeddings"] as Any),
                               ("none", ["nothing"] as Any), ("layer0", #"encoder\.layer\.0\.attention\.self\.query"# as Any)] {
            #expect(throws: AdapterFileError.self, "\(tag)") {
                do { try load(try filesEditedAdapter(src, in: dir, "targets-\(tag)", config: { $0["target_modules"] = targets })) } catch let e as AdapterFileError {
                    guard case .unsupportedTargets = e else { Issue.record("\(tag): \(e)"); return }
                    throw e
                }
            }
        }
        // Tensor problems.
        let missing = try filesEditedAdapter(src, in: dir, "missing") { try filesCopy($0, into: &$1) { $0 == keyB1 } }
        #expect(throws: AdapterFileError.missingTensor(file: weights(missing), tensor: keyB1)) { try load(missing) }
        let pooler = "base_model.model.pooler.dense.lora_A.weight"
        let extra = try filesEditedAdapter(src, in: dir, "extra") { r, w in
            try filesCopy(r, into: &w)
            try w.add(pooler, try Tensor(zeros: [2, 8]))
        }
        #expect(throws: AdapterFileError.unexpectedTensor(file: weights(extra), tensor: pooler)) { try load(extra) }
        // Targets the config does not name but the file holds (key adapted in the file only).
        let keyKey = filesKey(c, layer: 0, .key, "lora_A")
        let extraKey = try filesEditedAdapter(src, in: dir, "extra-key") { r, w in
            try filesCopy(r, into: &w)
            try w.add(keyKey, try Tensor(zeros: [2, 8]))
        }
        #expect(throws: AdapterFileError.unexpectedTensor(file: weights(extraKey), tensor: keyKey)) { try load(extraKey) }
        let rank = try filesEditedAdapter(src, in: dir, "rank") { r, w in
            try filesCopy(r, into: &w) { $0 == keyA0 }
            try w.add(keyA0, try Tensor(zeros: [3, 8]))
        }
        #expect(throws: AdapterFileError.rankMismatch(file: weights(rank), tensor: keyA0, configured: 2, actual: 3)) { try load(rank) }
        let rConfig = try filesEditedAdapter(src, in: dir, "r-config", config: { $0["r"] = 4; $0["lora_alpha"] = 8 })
        #expect(throws: AdapterFileError.rankMismatch(file: weights(rConfig), tensor: keyA0, configured: 4, actual: 2)) {
            try load(rConfig)
        }
        let shape = try filesEditedAdapter(src, in: dir, "shape") { r, w in
            try filesCopy(r, into: &w) { $0 == keyA0 }
            try w.add(keyA0, try Tensor(zeros: [2, 7]))
        }
        #expect(throws: AdapterFileError.tensorShapeMismatch(file: weights(shape), tensor: keyA0, expected: [2, 8], actual: [2, 7])) {
            try load(shape)
        }
        let dtype = try filesEditedAdapter(src, in: dir, "dtype") { r, w in
            try filesCopy(r, into: &w) { $0 == keyA0 }
            try w.addRaw(keyA0, dtype: .i32, shape: [2, 8], bytes: Data(count: 64))
        }
        #expect(throws: AdapterFileError.unsupportedDType(file: weights(dtype), tensor: keyA0, dtype: "I32")) { try load(dtype) }
        let nan = try filesEditedAdapter(src, in: dir, "nan") { r, w in
            try filesCopy(r, into: &w) { $0 == keyA0 }
            var t = try Tensor(zeros: [2, 8])
            t.withUnsafeMutableBufferPointer { $0[5] = .nan }
            try w.add(keyA0, t)
        }
        #expect(throws: AdapterFileError.nonFinite(file: weights(nan), tensor: keyA0)) { try load(nan) }
        #expect(throws: SafeTensorsError.self) {
            let d = try filesEditedAdapter(src, in: dir, "corrupt")
            try Data([1, 2, 3]).write(to: d.appendingPathComponent("adapter_model.safetensors"))
            try load(d)
        }
        // Saving refuses non-finite factors before writing.
        var parameters = lora.parameters
        parameters[2 * 2 + 1] = try Tensor(repeating: .infinity, shape: [8, 2])   // layer 1, query: lora_B
        var bad = lora
        try bad.setParameters(parameters)
        let badDir = dir.appendingPathComponent("bad-save")
        #expect(throws: AdapterFileError.self) { try bad.save(to: badDir, host: host) }
        do { try bad.save(to: badDir, host: host) } catch AdapterFileError.nonFinite(_, let tensor) {
            #expect(tensor == filesKey(c, layer: 1, .query, "lora_B"))
        } catch { Issue.record("\(error)") }
        #expect(!FileManager.default.fileExists(atPath: badDir.path))
    }

    /// Head: save → load bitwise; every malformed file throws its typed error.
    @Test func classificationHeadFile() throws {
        let c = try filesTinyConfiguration()
        let dir = filesTemporaryDirectory("head")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let head = try BertClassificationHead(hiddenSize: 8, classCount: 3, seed: 2)
        let url = dir.appendingPathComponent(BertClassificationHead.fileName)
        try head.save(to: url)
        let back = try BertClassificationHead(contentsOf: url, model: c)
        #expect(filesBitwiseEqual(back.weight, head.weight) && filesBitwiseEqual(back.bias, head.bias))
        let reader = try SafeTensorsReader(contentsOf: url)
        #expect(Set(reader.names) == ["weight", "bias"] && reader.entry("weight")?.dtype == .f32)

        func write(_ tag: String, _ build: (inout SafeTensorsWriter) throws -> Void) throws -> URL {
            var w = SafeTensorsWriter()
            try build(&w)
            let u = dir.appendingPathComponent("\(tag).safetensors")
            try w.write(to: u)
            return u
        }
        let w3 = try Tensor(repeating: 0.5, shape: [3, 8]), b3 = try Tensor(zeros: [3])
        #expect(throws: BertFileError.missingFile(dir.appendingPathComponent("nope").path)) {
            try BertClassificationHead(contentsOf: dir.appendingPathComponent("nope"))
        }
        #expect(throws: BertFileError.missingTensor("bias")) {
            try BertClassificationHead(contentsOf: try write("no-bias") { try $0.add("weight", w3) })
        }
        #expect(throws: BertFileError.missingTensor("weight")) {
            try BertClassificationHead(contentsOf: try write("no-weight") { try $0.add("bias", b3) })
        }
        #expect(throws: BertFileError.unexpectedTensor("extra")) {
            try BertClassificationHead(contentsOf: try write("extra") { try $0.add("weight", w3); try $0.add("bias", b3); try $0.add("extra", b3) })
        }
        #expect(throws: BertFileError.tensorShapeMismatch(tensor: "bias", expected: [3], actual: [2])) {
            try BertClassificationHead(contentsOf: try write("bias-shape") { try $0.add("weight", w3); try $0.add("bias", try Tensor(zeros: [2])) })
        }
        #expect(throws: BertError.self) {
            try BertClassificationHead(contentsOf: try write("rank1") { try $0.add("weight", try Tensor(zeros: [24])); try $0.add("bias", b3) })
        }
        #expect(throws: BertError.self) {   // d = 8 file, model with d = 16
            try BertClassificationHead(contentsOf: url, model: try BertConfiguration(vocabularySize: 12, hiddenSize: 16, layerCount: 2, headCount: 2,
                                                                                     intermediateSize: 16, maxPositionEmbeddings: 10))
        }
        #expect(throws: BertError.self) {   // one class
            try BertClassificationHead(contentsOf: try write("one-class") { try $0.add("weight", try Tensor(zeros: [1, 8])); try $0.add("bias", try Tensor(zeros: [1])) })
        }
        #expect(throws: BertFileError.unsupportedDType(tensor: "bias", dtype: "I64")) {
            try BertClassificationHead(contentsOf: try write("dtype") { try $0.add("weight", w3); try $0.addRaw("bias", dtype: .i64, shape: [3], bytes: Data(count: 24)) })
        }
        #expect(throws: BertFileError.nonFinite(tensor: "weight")) {
            try BertClassificationHead(contentsOf: try write("nan") { try $0.add("weight", try Tensor(repeating: .nan, shape: [3, 8])); try $0.add("bias", b3) })
        }
        var bad = head
        bad.bias = try Tensor(repeating: .infinity, shape: [3])
        #expect(throws: BertFileError.nonFinite(tensor: "bias")) { try bad.save(to: dir.appendingPathComponent("bad.safetensors")) }
    }

    /// Export on the tiny model: without a source (synthesised config.json, no pooler) and with
    /// a `bert.`-prefixed source holding a pooler and a classifier (pooler carried, prefix
    /// removed, classifier dropped); reload bitwise; the directory rules (empty, earlier export,
    /// foreign files, overwrite, a file in the way); a source config for another model; NaN.
    @Test func tinyExport() throws {
        let dir = filesTemporaryDirectory("tiny-export")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try filesTinyModel(in: dir.appendingPathComponent("src"))
        let merged = try model.merged(with: try filesLoRA(model.configuration, targets: [.key, .attentionOutput], rank: 2, alpha: 4, scale: 0.5, seed: 1))
        let tokens = filesBatch([[1, 5, 7, 2], [1, 3, 2]], length: 4)

        let plain = dir.appendingPathComponent("plain")
        try merged.save(to: plain)
        let reloaded = try BertModel(directory: plain)
        #expect(try filesSameWeights(reloaded, merged))
        #expect(try reloaded.forward(tokens).pooled == merged.forward(tokens).pooled)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: plain.appendingPathComponent("config.json"))) as! [String: Any]
        #expect(config["architectures"] as? [String] == ["BertModel"] && config["model_type"] as? String == "bert")
        #expect(try FileManager.default.contentsOfDirectory(atPath: plain.path).sorted() == ["config.json", "model.safetensors"])

        // A bert.-prefixed source with pooler, position_ids (I64), classifier, tokenizer file.
        var rng = LoRATestRNG(seed: 77)
        let pooler = rng.tensor([8, 8], scale: 0.5), poolerBias = rng.tensor([8], scale: 0.5)
        let positionIDs = Data((0..<10).flatMap { withUnsafeBytes(of: Int64($0).littleEndian, Array.init) })
        let src2 = dir.appendingPathComponent("src2")
        let model2 = try filesTinyModel(in: src2, prefix: "bert.") { w in
            try w.add("bert.pooler.dense.weight", pooler)
            try w.add("bert.pooler.dense.bias", poolerBias)
            try w.addRaw("bert.embeddings.position_ids", dtype: .i64, shape: [1, 10], bytes: positionIDs)
            try w.add("classifier.weight", try Tensor(zeros: [2, 8]))
        }
        try Data("[PAD]\n[UNK]\n".utf8).write(to: src2.appendingPathComponent("vocab.txt"))
        let out2 = dir.appendingPathComponent("with-source")
        try model2.save(to: out2, copyingFilesFrom: src2)
        let exported = try SafeTensorsReader(contentsOf: out2.appendingPathComponent("model.safetensors"))
        #expect(try filesBitwiseEqual(exported.tensor("pooler.dense.weight"), pooler))
        #expect(try filesBitwiseEqual(exported.tensor("pooler.dense.bias"), poolerBias))
        #expect(exported.entry("embeddings.position_ids")?.dtype == .i64)
        let carriedIDs = try exported.rawBytes("embeddings.position_ids")
        #expect(carriedIDs == positionIDs)
        #expect(!exported.names.contains { $0.hasPrefix("bert.") || $0.hasPrefix("classifier") })
        #expect(exported.metadata[BertModel.exportMetadataKey] == BertModel.exportMetadataValue)
        #expect(try Data(contentsOf: out2.appendingPathComponent("config.json")) == Data(contentsOf: src2.appendingPathComponent("config.json")))
        #expect(try Data(contentsOf: out2.appendingPathComponent("vocab.txt")) == Data(contentsOf: src2.appendingPathComponent("vocab.txt")))
        #expect(try filesSameWeights(try BertModel(directory: out2), model2))

        // An earlier export may be replaced (its stale tokenizer file goes); other directories not.
        try merged.save(to: out2)
        #expect(!FileManager.default.fileExists(atPath: out2.appendingPathComponent("vocab.txt").path))
        #expect(try filesSameWeights(try BertModel(directory: out2), merged))
        let foreign = dir.appendingPathComponent("foreign")
        try FileManager.default.createDirectory(at: foreign, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: foreign.appendingPathComponent("notes.txt"))
        #expect(throws: BertFileError.directoryNotEmpty(path: foreign.path)) { try merged.save(to: foreign) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: foreign.path) == ["notes.txt"])
        // The source directory itself is not an export.
        #expect(throws: BertFileError.directoryNotEmpty(path: src2.path)) { try merged.save(to: src2) }
        try merged.save(to: foreign, overwrite: true)
        #expect(try filesSameWeights(try BertModel(directory: foreign), merged))
        let file = dir.appendingPathComponent("a-file")
        try Data().write(to: file)
        #expect(throws: BertFileError.self) { try merged.save(to: file, overwrite: true) }

        // Source problems are found before anything is written.
        let out3 = dir.appendingPathComponent("out3")
        #expect(throws: BertFileError.missingFile(dir.appendingPathComponent("no-src/config.json").path)) {
            try merged.save(to: out3, copyingFilesFrom: dir.appendingPathComponent("no-src"))
        }
        let otherSource = dir.appendingPathComponent("other-src")
        try FileManager.default.createDirectory(at: otherSource, withIntermediateDirectories: true)
        try JSONSerialization.data(withJSONObject: ["model_type": "bert", "vocab_size": 12, "hidden_size": 8, "num_hidden_layers": 3,
                                                    "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 10])
            .write(to: otherSource.appendingPathComponent("config.json"))
        #expect(throws: BertFileError.self) { try merged.save(to: out3, copyingFilesFrom: otherSource) }
        #expect(!FileManager.default.fileExists(atPath: out3.path))
        var nan = merged
        nan.layers[1].intermediateBias = try Tensor(repeating: .nan, shape: [16])
        #expect(throws: BertFileError.nonFinite(tensor: "encoder.layer.1.intermediate.dense.bias")) { try nan.save(to: out3) }
        #expect(!FileManager.default.fileExists(atPath: out3.path))
    }
}
