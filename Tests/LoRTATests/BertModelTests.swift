import Foundation
import Testing
import CKernels
@testable import LoRTA

// MARK: - Helpers

private struct BertFixture: Decodable {
    let torch: String
    let transformers: String
    let max_length: Int
    let count: Int
    let texts: [String]
    let ids: [[Int32]]
    let attention_mask: [[Int32]]
}

private func bertFixtureURL(_ name: String, _ ext: String) throws -> URL {
    try #require(Bundle.module.url(forResource: name, withExtension: ext, subdirectory: "Fixtures/bert"),
                 "fixture \(name).\(ext) missing from the test bundle")
}

/// The repository root, found from this file's path (Tests/LoRTATests/<file>).
private let bertRepositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The fetched model folder; the tests that need it fail (never skip) when it is absent.
private func miniLMDirectory() throws -> URL {
    let url = bertRepositoryRoot.appendingPathComponent("assets/all-MiniLM-L6-v2")
    try #require(FileManager.default.fileExists(atPath: url.appendingPathComponent("model.safetensors").path),
                 "asset \(url.path)/model.safetensors is missing: run scripts/fetch-assets.sh first")
    return url
}

/// Loaded once for the whole suite (90 MB).
private let sharedMiniLM: Result<BertModel, any Error> = Result {
    try BertModel(directory: bertRepositoryRoot.appendingPathComponent("assets/all-MiniLM-L6-v2"))
}

private func miniLM() throws -> BertModel {
    _ = try miniLMDirectory()
    return try sharedMiniLM.get()
}

private func cosine(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Double {
    var ab = 0.0, aa = 0.0, bb = 0.0
    for (x, y) in zip(a, b) { ab += Double(x) * Double(y); aa += Double(x) * Double(x); bb += Double(y) * Double(y) }
    return ab / (aa.squareRoot() * bb.squareRoot())
}

/// How close `a` is to the reference `b` beyond its direction: ‖a − b‖₂ / ‖b‖₂, max |a − b| and
/// ‖a‖₂ / ‖b‖₂ (float64). A cosine alone is blind to scale: a 1% scale error keeps it at 1.
private func closeness(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> (relativeL2: Double, maxAbs: Double, normRatio: Double) {
    var dd = 0.0, aa = 0.0, bb = 0.0, m = 0.0
    for (x, y) in zip(a, b) {
        let t = Double(x) - Double(y)
        dd += t * t; aa += Double(x) * Double(x); bb += Double(y) * Double(y); m = max(m, abs(t))
    }
    return (dd.squareRoot() / bb.squareRoot(), m, aa.squareRoot() / bb.squareRoot())
}

/// A tiny random BERT (d = 8, 2 heads, 2 layers) written as safetensors into a fresh folder.
private func writeTinyModel(prefix: String = "", drop: String? = nil, reshape: String? = nil,
                            config: [String: Any]? = nil) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lorta-bert-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let cfg: [String: Any] = config ?? [
        "model_type": "bert", "vocab_size": 12, "hidden_size": 8, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 10,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
    ]
    try JSONSerialization.data(withJSONObject: cfg).write(to: dir.appendingPathComponent("config.json"))
    var rng = LoRATestRNG(seed: 77)
    var shapes: [(String, [Int])] = [
        ("embeddings.word_embeddings.weight", [12, 8]), ("embeddings.position_embeddings.weight", [10, 8]),
        ("embeddings.token_type_embeddings.weight", [2, 8]), ("embeddings.LayerNorm.weight", [8]),
        ("embeddings.LayerNorm.bias", [8]), ("pooler.dense.weight", [8, 8]),
    ]
    for l in 0..<2 {
        let p = "encoder.layer.\(l)."
        for m in ["query", "key", "value"] {
            shapes += [(p + "attention.self.\(m).weight", [8, 8]), (p + "attention.self.\(m).bias", [8])]
        }
        shapes += [(p + "attention.output.dense.weight", [8, 8]), (p + "attention.output.dense.bias", [8]),
                   (p + "attention.output.LayerNorm.weight", [8]), (p + "attention.output.LayerNorm.bias", [8]),
                   (p + "intermediate.dense.weight", [16, 8]), (p + "intermediate.dense.bias", [16]),
                   (p + "output.dense.weight", [8, 16]), (p + "output.dense.bias", [8]),
                   (p + "output.LayerNorm.weight", [8]), (p + "output.LayerNorm.bias", [8])]
    }
    var tensors: [String: Tensor] = [:]
    for (name, shape) in shapes where name != drop {
        let s = name == reshape ? shape.map { $0 + 1 } : shape
        tensors[prefix + name] = rng.tensor(s, scale: 0.5)
    }
    try SafeTensors.save(tensors, to: dir.appendingPathComponent("model.safetensors"))
    return dir
}

private func batch(_ rows: [[Int32]], length: Int) -> TokenBatch {
    var ids: [Int32] = [], mask: [Int32] = []
    for r in rows {
        ids += r + [Int32](repeating: 0, count: length - r.count)
        mask += [Int32](repeating: 1, count: r.count) + [Int32](repeating: 0, count: length - r.count)
    }
    return TokenBatch(count: rows.count, sequenceLength: length, ids: ids, attentionMask: mask, lengths: rows.map(\.count))
}

// MARK: - Real model

@Suite("BERT encoder (all-MiniLM-L6-v2)", .serialized)
struct BertModelTests {
    init() throws { try Runtime.initialize() }

    /// The fixture (scripts/fixtures/make_bert_fixtures.py: transformers BertModel, float32) gives
    /// the token ids, masks and mean-pooled embeddings of the first 32 sentences of test.tsv.
    @Test func embeddingsOfMovieSentencesMatchTransformers() throws {
        let fixture = try JSONDecoder().decode(BertFixture.self, from: Data(contentsOf: bertFixtureURL("minilm_movies", "json")))
        let dir = try miniLMDirectory()
        // The same 32 sentences as in the assets (the fixture records them; check they still agree).
        let lines = try String(contentsOf: dir.deletingLastPathComponent().appendingPathComponent("movies/test.tsv"), encoding: .utf8)
            .split(separator: "\n", omittingEmptySubsequences: false).prefix(fixture.count)
        #expect(lines.map { String($0.split(separator: "\t", maxSplits: 1)[1]) } == fixture.texts)

        let tokenizer = try BertTokenizer(vocabularyURL: dir.appendingPathComponent("vocab.txt"))
        let tokens = try tokenizer.encodeBatch(fixture.texts, maxLength: fixture.max_length, padding: .fixed)
        #expect(tokens.ids == fixture.ids.flatMap { $0 })
        #expect(tokens.attentionMask == fixture.attention_mask.flatMap { $0 })

        let model = try miniLM()
        let out = try model.forward(tokens)
        let d = model.configuration.hiddenSize
        let reference = try NumpyArray(contentsOf: bertFixtureURL("minilm_pooled", "npy")).floatMatrix()
        #expect(reference.shape == [fixture.count, d])
        #expect(out.pooled.shape == [fixture.count, d])
        let got = out.pooled.scalars, want = reference.scalars
        // Direction (cosine), error size (relative L2 and max |Δ| within 1e-4, as the PEFT test)
        // and scale (norm ratio within 1e-4 of 1): each sentence's pooled embedding.
        var worst = 1.0, worstL2 = 0.0, worstAbs = 0.0, worstRatio = 0.0
        for i in 0..<fixture.count {
            let a = got[(i * d)..<((i + 1) * d)], b = want[(i * d)..<((i + 1) * d)]
            let c = cosine(a, b), e = closeness(a, b)
            worst = min(worst, c); worstL2 = max(worstL2, e.relativeL2); worstAbs = max(worstAbs, e.maxAbs)
            worstRatio = max(worstRatio, abs(e.normRatio - 1))
            #expect(c >= 0.99999, "sentence \(i): cosine \(c)")
            #expect(e.relativeL2 <= 1e-4 && e.maxAbs <= 1e-4, "sentence \(i): relative L2 \(e.relativeL2), max |Δ| \(e.maxAbs)")
            #expect(abs(e.normRatio - 1) <= 1e-4, "sentence \(i): norm ratio \(e.normRatio)")
        }
        print("MiniLM pooled embeddings vs transformers \(fixture.transformers): worst cosine \(worst), "
              + "relative L2 \(worstL2), max |Δ| \(worstAbs), |norm ratio − 1| \(worstRatio)")

        // Token level: the unpadded hidden states of the first sentence.
        let hidden0 = try NumpyArray(contentsOf: bertFixtureURL("minilm_hidden0", "npy")).floatMatrix()
        let l0 = hidden0.shape[0]
        let h = out.lastHiddenState.scalars, r = hidden0.scalars
        var tokenL2 = 0.0, tokenAbs = 0.0, tokenRatio = 0.0
        for t in 0..<l0 {
            let a = h[(t * d)..<((t + 1) * d)], b = r[(t * d)..<((t + 1) * d)]
            let e = closeness(a, b)
            tokenL2 = max(tokenL2, e.relativeL2); tokenAbs = max(tokenAbs, e.maxAbs); tokenRatio = max(tokenRatio, abs(e.normRatio - 1))
            #expect(cosine(a, b) >= 0.99999, "token \(t)")
            #expect(e.relativeL2 <= 1e-4 && e.maxAbs <= 1e-4, "token \(t): relative L2 \(e.relativeL2), max |Δ| \(e.maxAbs)")
            #expect(abs(e.normRatio - 1) <= 1e-4, "token \(t): norm ratio \(e.normRatio)")
        }
        print("MiniLM hidden states of sentence 0: worst relative L2 \(tokenL2), max |Δ| \(tokenAbs), |norm ratio − 1| \(tokenRatio)")
    }

    @Test func forwardIsThreadCountInvariantAndRecordingDoesNotChangeIt() throws {
        let model = try miniLM()
        let dir = try miniLMDirectory()
        let tokenizer = try BertTokenizer(vocabularyURL: dir.appendingPathComponent("vocab.txt"))
        let tokens = try tokenizer.encodeBatch(["A gorgeous, witty, seductive movie.", "Dull.",
                                                "It's a bad sign when you're rooting for the villain."],
                                               maxLength: 32, padding: .longest)
        let one = try Runtime.withThreadCount(1) { try model.forward(tokens) }
        let two = try Runtime.withThreadCount(2) { try model.forward(tokens, recordingActivations: true) }
        #expect(one.lastHiddenState == two.lastHiddenState)
        #expect(one.pooled == two.pooled)
        #expect(one.activations == nil)

        // What the recording holds is consistent with the forward.
        let acts = try #require(two.activations)
        let c = model.configuration
        let n = tokens.count * tokens.sequenceLength, T = tokens.sequenceLength
        #expect(acts.layers.count == c.layerCount)
        #expect(acts.embeddingSum.shape == [n, c.hiddenSize] && acts.embeddingMean.shape == [n])
        for (l, layer) in acts.layers.enumerated() {
            #expect(layer.queryKeyValue.shape == [n, 3 * c.hiddenSize])
            #expect(layer.attentionProbabilities.shape == [tokens.count, c.headCount, T, T])
            #expect(layer.intermediate.shape == [n, c.intermediateSize])
            if l + 1 < acts.layers.count { #expect(layer.output == acts.layers[l + 1].input) }
        }
        #expect(acts.layers.last!.output == two.lastHiddenState)
        // Re-normalising a saved pre-LayerNorm sum with the saved statistics gives the output.
        let last = acts.layers.last!, w = model.layers.last!
        var renorm = [Float](repeating: 0, count: n * c.hiddenSize)
        let st = lt_layernorm_forward(Int64(n), Int64(c.hiddenSize), c.layerNormEpsilon, last.outputSum.scalars,
                                      Int64(c.hiddenSize), w.outputNormWeight.scalars, w.outputNormBias.scalars,
                                      &renorm, Int64(c.hiddenSize), nil, nil)
        #expect(st == LT_OK)
        #expect(renorm == last.output.scalars)
        // Padded keys get probability 0 in every head of every layer.
        let p = acts.layers[0].attentionProbabilities.scalars
        let len1 = tokens.lengths[1]
        for h in 0..<c.headCount { for i in 0..<T { for j in len1..<T {
            #expect(p[((1 * c.headCount + h) * T + i) * T + j] == 0)
        } } }
    }

    @Test func batchErrorsAreTyped() throws {
        let model = try miniLM()
        #expect(throws: BertError.emptyBatch) { try model.forward(batch([], length: 4)) }
        #expect(throws: BertError.sequenceTooLong(length: 513, maximum: 512)) {
            try model.forward(batch([[101, 102]], length: 513))
        }
        #expect(throws: BertError.tokenOutOfRange(id: 30522, row: 1, position: 1, vocabularySize: 30522)) {
            try model.forward(batch([[101, 102], [101, 30522, 102]], length: 3))
        }
        let bad = TokenBatch(count: 1, sequenceLength: 2, ids: [101, 102], attentionMask: [1, 2], lengths: [2])
        #expect(throws: BertError.self) { try model.forward(bad) }
        let short = TokenBatch(count: 2, sequenceLength: 2, ids: [101, 102], attentionMask: [1, 1], lengths: [2])
        #expect(throws: BertError.self) { try model.forward(short) }
    }
}

// MARK: - Configuration and loading

@Suite("BERT configuration and loading")
struct BertLoadingTests {
    private func parse(_ json: String) throws(BertError) -> BertConfiguration {
        try BertConfiguration(json: Data(json.utf8))
    }
    private let base = #""vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536, "max_position_embeddings": 512"#

    @Test func parsesMiniLMConfiguration() throws {
        let c = try BertConfiguration(contentsOf: try miniLMDirectory().appendingPathComponent("config.json"))
        #expect(c.hiddenSize == 384 && c.layerCount == 6 && c.headCount == 12 && c.headSize == 32)
        #expect(c.intermediateSize == 1536 && c.vocabularySize == 30522 && c.maxPositionEmbeddings == 512)
        #expect(c.typeVocabularySize == 2 && c.layerNormEpsilon == 1e-12)
    }

    @Test func unsupportedSettingsAreTypedErrors() throws {
        #expect(throws: BertError.unsupportedConfiguration(field: "hidden_act", value: "\"relu\"", supported: "\"gelu\" (exact erf form)")) {
            try parse("{\(base), \"hidden_act\": \"relu\"}")
        }
        #expect(throws: BertError.unsupportedConfiguration(field: "hidden_act", value: "\"gelu_new\"", supported: "\"gelu\" (exact erf form)")) {
            try parse("{\(base), \"hidden_act\": \"gelu_new\"}")
        }
        #expect(throws: BertError.unsupportedConfiguration(field: "position_embedding_type", value: "\"relative_key\"", supported: "\"absolute\"")) {
            try parse("{\(base), \"position_embedding_type\": \"relative_key\"}")
        }
        #expect(throws: BertError.unsupportedConfiguration(field: "is_decoder", value: "true", supported: "false (encoder only)")) {
            try parse("{\(base), \"is_decoder\": true}")
        }
        #expect(throws: BertError.unsupportedConfiguration(field: "model_type", value: "\"llama\"", supported: "\"bert\"")) {
            try parse("{\(base), \"model_type\": \"llama\"}")
        }
        #expect(throws: BertError.missingConfigurationField("hidden_size")) {
            try parse(#"{"vocab_size": 10, "num_hidden_layers": 1, "num_attention_heads": 1, "intermediate_size": 4, "max_position_embeddings": 8}"#)
        }
        #expect(throws: BertError.invalidConfigurationValue(field: "hidden_size", value: "\"384\"", expected: "an integer")) {
            try parse(#"{"vocab_size": 10, "hidden_size": "384", "num_hidden_layers": 1, "num_attention_heads": 1, "intermediate_size": 4, "max_position_embeddings": 8}"#)
        }
        #expect(throws: BertError.invalidConfigurationValue(field: "hidden_size", value: "10", expected: "a multiple of num_attention_heads (3)")) {
            try parse(#"{"vocab_size": 10, "hidden_size": 10, "num_hidden_layers": 1, "num_attention_heads": 3, "intermediate_size": 4, "max_position_embeddings": 8}"#)
        }
        #expect(throws: BertError.invalidConfigurationValue(field: "layer_norm_eps", value: "0.0", expected: "a finite number > 0")) {
            try parse("{\(base), \"layer_norm_eps\": 0}")
        }
        #expect(throws: BertError.unreadableFile(path: "config.json", reason: "not valid JSON")) { try parse("{") }
        #expect(throws: BertError.unreadableFile(path: "config.json", reason: "the top level is not a JSON object")) { try parse("[1]") }
        let missing = URL(fileURLWithPath: "/nonexistent/lorta/config.json")
        #expect(throws: BertError.fileNotFound(path: missing.path)) { try BertConfiguration(contentsOf: missing) }
        // Descriptions name the problem.
        #expect("\(BertError.unsupportedConfiguration(field: "hidden_act", value: "\"relu\"", supported: "\"gelu\""))".contains("hidden_act"))
    }

    @Test func loadingErrorsAreTypedAndPrefixIsHandled() throws {
        let plain = try writeTinyModel()
        let prefixed = try writeTinyModel(prefix: "bert.")
        defer {
            try? FileManager.default.removeItem(at: plain)
            try? FileManager.default.removeItem(at: prefixed)
        }
        let a = try BertModel(directory: plain), b = try BertModel(directory: prefixed)
        let tokens = batch([[2, 5, 7, 3], [2, 11, 3]], length: 4)
        let oa = try a.forward(tokens), ob = try b.forward(tokens)
        #expect(oa.pooled == ob.pooled)
        #expect(oa.pooled.shape == [2, 8])

        let dropped = try writeTinyModel(drop: "encoder.layer.1.attention.self.key.bias")
        defer { try? FileManager.default.removeItem(at: dropped) }
        #expect(throws: BertError.missingWeight("encoder.layer.1.attention.self.key.bias")) { try BertModel(directory: dropped) }

        let reshaped = try writeTinyModel(reshape: "encoder.layer.0.intermediate.dense.weight")
        defer { try? FileManager.default.removeItem(at: reshaped) }
        #expect(throws: BertError.weightShapeMismatch(name: "encoder.layer.0.intermediate.dense.weight", expected: [16, 8], actual: [17, 9])) {
            try BertModel(directory: reshaped)
        }

        let noWeights = FileManager.default.temporaryDirectory.appendingPathComponent("lorta-bert-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: noWeights, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: noWeights) }
        try FileManager.default.copyItem(at: plain.appendingPathComponent("config.json"), to: noWeights.appendingPathComponent("config.json"))
        #expect(throws: BertError.fileNotFound(path: noWeights.appendingPathComponent("model.safetensors").path)) {
            try BertModel(directory: noWeights)
        }
        // A corrupt weights file: the safetensors reader's typed error.
        try Data([1, 2, 3]).write(to: noWeights.appendingPathComponent("model.safetensors"))
        #expect(throws: SafeTensorsError.self) { try BertModel(directory: noWeights) }
    }
}
