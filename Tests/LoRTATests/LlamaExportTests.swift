import Foundation
import Testing
@testable import LoRTA

// Exporting Llama models (LlamaModel.export) as GGUF files and Hugging Face directories, on the
// tiny fixtures of make_llama_fixtures.py (GGUF files written by gguf-py the way llama.cpp's
// converter writes them, the Q8_0 one quantized by gguf.quants.quantize) and the Q8_0 edge
// cases of scripts/fixtures/make_export_fixtures.py (gguf 0.19.0). The Python check of the
// exported SmolLM2 files against transformers and gguf-py is scripts/check-llama-export.sh.

private let exportRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

private func fixture(_ relative: String) throws -> URL { try testFixture(relative) }

private func scratchDirectory() throws -> URL { try testScratchDirectory("lorta-export") }

private let tinySequences: [[Int32]] = [[116, 181, 62, 15, 147], [105, 90, 96, 226, 169, 113, 42, 116, 95, 227, 134, 17, 51]]

/// Logits at every position of each sequence.
private func allLogits(_ model: LlamaModel) throws -> [[Float]] {
    try tinySequences.map { s in
        var cache = try model.makeCache(capacity: 64)
        return try model.forward(s, cache: &cache, logits: .all).scalars
    }
}

private func bits(_ t: Tensor) -> [UInt32] { t.scalars.map(\.bitPattern) }

/// A matrix whose every element differs and tells its (row, column): r + c/1000.
private func labelled(_ rows: Int, _ columns: Int) throws -> Tensor {
    try Tensor((0..<(rows * columns)).map { Float($0 / columns) + Float($0 % columns) / 1000 }, shape: [rows, columns])
}

@Suite("LlamaExport")
struct LlamaExportTests {
    // MARK: Q8_0

    /// Our Q8_0 blocks are gguf-py's bytes exactly on edge cases (zero block, ties, negative
    /// maximum, tiny and large scales).
    @Test func q8_0MatchesGGUFPy() throws {
        let input = try NumpyArray(contentsOf: try fixture("llama/export/q8_0_input.npy")).floatMatrix()
        let expected = try Data(contentsOf: try fixture("llama/export/q8_0_blocks.bin"))
        let ours = try GGUFQuantize.q8_0(input, name: "cases")
        #expect(ours.count == expected.count)
        let firstDifference = zip(ours, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        #expect(firstDifference == nil, "first differing byte \(firstDifference ?? -1) (block \((firstDifference ?? 0) / 34))")
        #expect(throws: GGUFError.self) { try GGUFQuantize.q8_0(try Tensor(zeros: [2, 48])) }
        #expect(throws: GGUFError.self) { try GGUFQuantize.q8_0(try Tensor([.nan] + [Float](repeating: 0, count: 31), shape: [1, 32])) }
    }

    // MARK: GGUF → GGUF

    /// F32 → F32: the same metadata and every tensor's bytes (the Q/K permutation undone on
    /// load and redone on export), so the file reads back to the same model.
    @Test func ggufF32RoundTripIsBitExact() throws {
        let dir = try scratchDirectory(); defer { try? FileManager.default.removeItem(at: dir) }
        for name in ["tiny_untied", "tiny_tied"] {
            let source = try fixture("llama/tiny/\(name).f32.gguf")
            let model = try LlamaModel(contentsOf: source)
            let out = dir.appendingPathComponent("\(name).gguf")
            try model.export(to: out, format: .gguf(type: .f32))
            let a = try GGUFReader(contentsOf: source), b = try GGUFReader(contentsOf: out)
            #expect(b.metadata.isBitwiseIdentical(to: a.metadata))
            #expect(Set(b.tensorNames) == Set(a.tensorNames))
            for info in a.tensorInfos {
                let other = try #require(b.tensorInfo(named: info.name))
                #expect(other.type == .f32 && other.dimensions == info.dimensions)
                #expect(try b.rawBytes(of: info.name) == a.rawBytes(of: info.name), "\(name): \(info.name)")
            }
            let reloaded = try LlamaModel(contentsOf: out)
            for w in model.weightNames { #expect(bits(try reloaded.weight(named: w)) == bits(try model.weight(named: w)), "\(w)") }
            #expect(try allLogits(reloaded) == allLogits(model))
        }
    }

    /// F32 → Q8_0: every tensor equals the fixture gguf-py quantized from the same weights
    /// (embedding and output in Q8_0 too, norms F32), and the metadata is that file's.
    @Test func ggufQ8_0EqualsGGUFPyQuantization() throws {
        let dir = try scratchDirectory(); defer { try? FileManager.default.removeItem(at: dir) }
        let model = try LlamaModel(contentsOf: try fixture("llama/tiny/tiny_untied.f32.gguf"))
        let out = dir.appendingPathComponent("q8.gguf")
        try model.export(to: out, format: .gguf(type: .q8_0))
        let reference = try GGUFReader(contentsOf: try fixture("llama/tiny/tiny_untied.q8_0.gguf"))
        let ours = try GGUFReader(contentsOf: out)
        #expect(try ours.metadata.int(forKey: "general.file_type") == 7)
        #expect(ours.metadata.isBitwiseIdentical(to: reference.metadata))
        for info in reference.tensorInfos {
            let mine = try #require(ours.tensorInfo(named: info.name))
            #expect(mine.type == info.type && mine.dimensions == info.dimensions, "\(info.name)")
            #expect(try ours.rawBytes(of: info.name) == reference.rawBytes(of: info.name), "\(info.name)")
        }
        #expect(ours.tensorInfo(named: "token_embd.weight")?.type == .q8_0)
        #expect(ours.tensorInfo(named: "blk.0.attn_norm.weight")?.type == .f32)
    }

    /// F16: matrices F16 (round to nearest even), norms F32, `general.file_type` 1.
    @Test func ggufF16StoresRoundedMatrices() throws {
        let dir = try scratchDirectory(); defer { try? FileManager.default.removeItem(at: dir) }
        let model = try LlamaModel(contentsOf: try fixture("llama/tiny/tiny_tied.f32.gguf"))
        let out = dir.appendingPathComponent("f16.gguf")
        try model.export(to: out, format: .gguf(type: .f16))
        let r = try GGUFReader(contentsOf: out)
        #expect(try r.metadata.int(forKey: "general.file_type") == 1)
        #expect(r.tensorInfo(named: "blk.1.ffn_down.weight")?.type == .f16)
        #expect(r.tensorInfo(named: "output_norm.weight")?.type == .f32)
        let reloaded = try LlamaModel(contentsOf: out)
        for w in ["model.layers.1.self_attn.k_proj.weight", "model.embed_tokens.weight"] {
            let expected = try model.weight(named: w).scalars.map { HalfPrecision.float(fromF16Bits: HalfPrecision.f16Bits(from: $0)) }
            #expect(try reloaded.weight(named: w).scalars.map(\.bitPattern) == expected.map(\.bitPattern), "\(w)")
        }
    }

    // MARK: Overrides

    /// Replaced q_proj/k_proj land in the right rows: GGUF row h·D + 2i + a holds Hugging Face
    /// row h·D + a·D/2 + i (checked on the raw file), and the loader gives the matrix back.
    @Test func overridesLandInTheRightRowsAfterThePermutation() throws {
        let dir = try scratchDirectory(); defer { try? FileManager.default.removeItem(at: dir) }
        let model = try LlamaModel(contentsOf: try fixture("llama/tiny/tiny_untied.q4_1.gguf"))
        let c = model.configuration
        let q = try labelled(c.queryWidth, c.hiddenSize), k = try labelled(c.keyValueWidth, c.hiddenSize)
        let down = try labelled(c.hiddenSize, c.intermediateSize)
        let overrides = ["model.layers.1.self_attn.q_proj.weight": q, "model.layers.1.self_attn.k_proj.weight": k,
                         "model.layers.0.mlp.down_proj.weight": down]
        let out = dir.appendingPathComponent("o.gguf")
        try model.export(to: out, format: .gguf(type: .f32), replacing: overrides)
        let r = try GGUFReader(contentsOf: out)
        let D = c.headDimension, d = c.hiddenSize
        for (gname, hf, heads) in [("blk.1.attn_q.weight", q, c.headCount), ("blk.1.attn_k.weight", k, c.keyValueHeadCount)] {
            let raw = try r.tensor(named: gname).scalars, hfs = hf.scalars
            for h in 0..<heads { for i in 0..<(D / 2) { for a in 0..<2 {
                let g = h * D + 2 * i + a, src = h * D + a * D / 2 + i
                #expect(Array(raw[(g * d)..<((g + 1) * d)]) == Array(hfs[(src * d)..<((src + 1) * d)]), "\(gname) row \(g)")
            } } }
        }
        let reloaded = try LlamaModel(contentsOf: out)
        for (name, t) in overrides { #expect(bits(try reloaded.weight(named: name)) == bits(t), "\(name)") }
        // Everything else is the Q4_1 model's weights, dequantized.
        for w in model.weightNames where overrides[w] == nil {
            #expect(bits(try reloaded.weight(named: w)) == bits(try model.weight(named: w)), "\(w)")
        }
        // The same overrides in a Hugging Face export, in Hugging Face order.
        let hfDir = dir.appendingPathComponent("hf")
        try model.export(to: hfDir, format: .huggingFace(dtype: .float32), replacing: overrides)
        let st = try SafeTensorsReader(contentsOf: hfDir.appendingPathComponent("model.safetensors"))
        for (name, t) in overrides { #expect(bits(try st.tensor(name)) == bits(t), "\(name)") }
    }

    @Test func badOverridesAreTypedErrors() throws {
        let dir = try scratchDirectory(); defer { try? FileManager.default.removeItem(at: dir) }
        let tied = try LlamaModel(contentsOf: try fixture("llama/tiny/tiny_tied.f32.gguf"))
        let out = dir.appendingPathComponent("x.gguf")
        let c = tied.configuration
        func code(_ body: () throws -> Void) -> LlamaExportError? {
            do { try body(); return nil } catch let e as LlamaExportError { return e } catch { return nil }
        }
        let unknown = code { try tied.export(to: out, format: .gguf(type: .f32), replacing: ["model.layers.9.mlp.up_proj.weight": try labelled(2, 2)]) }
        guard case .unknownOverride(name: "model.layers.9.mlp.up_proj.weight", _)? = unknown else { Issue.record("\(String(describing: unknown))"); return }
        let lmHead = code { try tied.export(to: out, format: .gguf(type: .f32), replacing: ["lm_head.weight": try labelled(c.vocabularySize, c.hiddenSize)]) }
        guard case .unknownOverride(name: "lm_head.weight", let reason)? = lmHead else { Issue.record("\(String(describing: lmHead))"); return }
        #expect(reason.contains("tied"))
        #expect(code { try tied.export(to: out, format: .gguf(type: .f32), replacing: ["model.layers.0.self_attn.v_proj.weight": try labelled(c.queryWidth, c.hiddenSize)]) }
                == .overrideShapeMismatch(name: "model.layers.0.self_attn.v_proj.weight", expected: [c.keyValueWidth, c.hiddenSize],
                                          actual: [c.queryWidth, c.hiddenSize]))
        var bad = try labelled(c.intermediateSize, c.hiddenSize).scalars
        bad[77] = .infinity
        #expect(code { try tied.export(to: out, format: .gguf(type: .q8_0), replacing: ["model.layers.1.mlp.gate_proj.weight": try Tensor(bad, shape: [c.intermediateSize, c.hiddenSize])]) }
                == .nonFiniteOverride(name: "model.layers.1.mlp.gate_proj.weight", index: 77, value: .infinity))
        #expect(!FileManager.default.fileExists(atPath: out.path), "nothing written after a refused override")
        // Targets.
        #expect(code { try tied.export(to: dir.appendingPathComponent("missing/x.gguf"), format: .gguf(type: .f32)) }.map {
            if case .unwritableTarget = $0 { return true } else { return false } } == true)
        try tied.export(to: out, format: .gguf(type: .f32))
        #expect(code { try tied.export(to: out, format: .gguf(type: .q8_0)) } == .targetExists(path: out.standardizedFileURL.path))
        #expect(code { try tied.export(to: out, format: .huggingFace(dtype: .float32), overwrite: true) }.map {
            if case .unwritableTarget = $0 { return true } else { return false } } == true)
        try tied.export(to: out, format: .gguf(type: .q8_0), overwrite: true)
        #expect(try GGUFReader(contentsOf: out).metadata.int(forKey: "general.file_type") == 7)
        // A Hugging Face directory without tokenizer files cannot make a GGUF (which carries the
        // tokenizer); nothing is written.
        let hf = try LlamaModel(contentsOf: try fixture("llama/tiny/tiny_tied_hf"))
        guard case .missingSource? = code({ try hf.export(to: dir.appendingPathComponent("hf.gguf"), format: .gguf(type: .f32)) }) else {
            Issue.record("HF → GGUF without tokenizer.json should be refused as a missing source"); return
        }
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("hf.gguf").path))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".") }
        #expect(leftovers.isEmpty, "temporary files left: \(leftovers)")
    }

    // MARK: → Hugging Face

    /// GGUF F32 → Hugging Face float32: the safetensors tensors are the transformers fixture's
    /// bit for bit, and our safetensors loader gives identical logits.
    @Test func huggingFaceFloat32RoundTrip() throws {
        let dir = try scratchDirectory(); defer { try? FileManager.default.removeItem(at: dir) }
        for name in ["tiny_untied", "tiny_tied"] {
            let model = try LlamaModel(contentsOf: try fixture("llama/tiny/\(name).f32.gguf"))
            let out = dir.appendingPathComponent(name)
            try model.export(to: out, format: .huggingFace(dtype: .float32))
            let files = Set(try FileManager.default.contentsOfDirectory(atPath: out.path))
            #expect(files == ["model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"])
            let ours = try SafeTensorsReader(contentsOf: out.appendingPathComponent("model.safetensors"))
            let transformers = try SafeTensorsReader(contentsOf: try fixture("llama/tiny/\(name)_hf/model.safetensors"))
            #expect(Set(ours.names) == Set(transformers.names))
            for n in transformers.names { #expect(bits(try ours.tensor(n)) == bits(try transformers.tensor(n)), "\(name): \(n)") }
            let reloaded = try LlamaModel(contentsOf: out)
            #expect(reloaded.configuration == model.configuration)
            #expect(try allLogits(reloaded) == allLogits(model))
            // config.json as transformers reads it.
            let config = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("config.json"))) as? [String: Any])
            #expect(config["architectures"] as? [String] == ["LlamaForCausalLM"])
            #expect(config["tie_word_embeddings"] as? Bool == (name == "tiny_tied"))
            #expect(config["torch_dtype"] as? String == "float32")
            #expect(config["bos_token_id"] as? Int == 1 && config["eos_token_id"] as? Int == 2)
        }
    }

    /// Hugging Face source → Hugging Face bfloat16: values rounded to nearest even, the other
    /// files copied; the copy loads with the rounded weights.
    @Test func huggingFaceBFloat16FromHuggingFaceSource() throws {
        let dir = try scratchDirectory(); defer { try? FileManager.default.removeItem(at: dir) }
        let source = try fixture("llama/tiny/tiny_untied_hf")
        let model = try LlamaModel(contentsOf: source)
        let out = dir.appendingPathComponent("bf16")
        try model.export(to: out, format: .huggingFace(dtype: .bfloat16))
        #expect(try Data(contentsOf: out.appendingPathComponent("generation_config.json"))
                == Data(contentsOf: source.appendingPathComponent("generation_config.json")))
        let st = try SafeTensorsReader(contentsOf: out.appendingPathComponent("model.safetensors"))
        #expect(st.entry("lm_head.weight")?.dtype == .bf16)
        let reloaded = try LlamaModel(contentsOf: out)
        #expect(reloaded.configuration == model.configuration)
        for w in model.weightNames {
            let expected = try model.weight(named: w).scalars.map { HalfPrecision.float(fromBF16Bits: HalfPrecision.bf16Bits(from: $0)) }
            #expect(try reloaded.weight(named: w).scalars.map(\.bitPattern) == expected.map(\.bitPattern), "\(w)")
        }
        // Overwriting a directory replaces it whole.
        try model.export(to: out, format: .huggingFace(dtype: .float32), overwrite: true)
        #expect(try SafeTensorsReader(contentsOf: out.appendingPathComponent("model.safetensors")).entry("lm_head.weight")?.dtype == .f32)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["bf16"])
    }

    // MARK: Tokenizer

    /// The tokenizer.json built from a GGUF file encodes like the GGUF tokenizer: the tiny
    /// fixture's (3 control tokens, 13 merges, `smollm`) and SmolLM2's on the BPE fixture
    /// strings (ids from transformers), through our Hugging Face loader.
    @Test func tokenizerFromGGUFEncodesLikeTheGGUFTokenizer() throws {
        struct Cases: Decodable { struct Case: Decodable { let text: String; let ids: [Int32] }; let cases: [Case] }
        let cases = try JSONDecoder().decode(Cases.self, from: Data(contentsOf: try fixture("bpe/smollm2_cases.json"))).cases
        #expect(cases.count >= 400)

        let dir = try scratchDirectory(); defer { try? FileManager.default.removeItem(at: dir) }
        let tinyURL = try fixture("llama/tiny/tiny_untied.q8_0.gguf")
        try LlamaModel(contentsOf: tinyURL).export(to: dir.appendingPathComponent("tiny"), format: .huggingFace(dtype: .float32))
        let tinyGGUF = try ByteLevelBPETokenizer(gguf: try GGUFReader(contentsOf: tinyURL))
        let tinyHF = try ByteLevelBPETokenizer(directory: dir.appendingPathComponent("tiny"))
        for c in cases { #expect(tinyHF.encode(c.text) == tinyGGUF.encode(c.text), "tiny: \(c.text.debugDescription)") }

        let smolURL = exportRoot.appendingPathComponent("assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
        try #require(FileManager.default.fileExists(atPath: smolURL.path), "asset \(smolURL.path) missing: run scripts/fetch-assets.sh")
        let reader = try GGUFReader(contentsOf: smolURL)
        let files = try LlamaTokenizerExport.huggingFaceFiles(fromGGUF: reader.metadata, contextLength: 8192)
        let hf = try ByteLevelBPETokenizer(tokenizerJSON: try #require(files["tokenizer.json"]),
                                           tokenizerConfig: files["tokenizer_config.json"])
        let gguf = try ByteLevelBPETokenizer(gguf: reader)
        var mismatches = 0
        for c in cases where hf.encode(c.text) != c.ids || gguf.encode(c.text) != c.ids {
            mismatches += 1
            Issue.record("SmolLM2 \(c.text.debugDescription)")
        }
        #expect(mismatches == 0)
        #expect(hf.chatTemplate == gguf.chatTemplate && hf.chatTemplate != nil)
        #expect(hf.bosID == 1 && hf.eosID == 2 && hf.paddingID == 2 && hf.prefixIDs.isEmpty)
        let chat = "<|im_start|>user\nWhat is 12+30?<|im_end|>\n<|im_start|>assistant\n"
        #expect(hf.encode(chat) == gguf.encode(chat))
    }

    /// Pre-tokenizers: every name llama.cpp's table shares with ours has a Hugging Face form;
    /// an unknown name or another tokenizer model is refused, never written wrong.
    @Test func tokenizerPreTokenizersAndRefusals() throws {
        let reader = try GGUFReader(contentsOf: try fixture("llama/tiny/tiny_tied.f32.gguf"))
        for pre in ["gpt2", "smollm", "llama3", "qwen2", "default", "starcoder"] {
            var m = reader.metadata
            m["tokenizer.ggml.pre"] = .string(pre)
            let files = try LlamaTokenizerExport.huggingFaceFiles(fromGGUF: m)
            let t = try ByteLevelBPETokenizer(tokenizerJSON: try #require(files["tokenizer.json"]))
            #expect(t.preTokenizer == (try PreTokenizer.named(pre)), "\(pre)")
        }
        var m = reader.metadata
        m["tokenizer.ggml.pre"] = .string("deepseek-coder")
        #expect(throws: LlamaExportError.self) { try LlamaTokenizerExport.huggingFaceFiles(fromGGUF: m) }
        m = reader.metadata
        m["tokenizer.ggml.model"] = .string("llama")
        #expect(throws: LlamaExportError.self) { try LlamaTokenizerExport.huggingFaceFiles(fromGGUF: m) }
        m = reader.metadata
        m["tokenizer.ggml.add_bos_token"] = .bool(true)
        let files = try LlamaTokenizerExport.huggingFaceFiles(fromGGUF: m)
        let t = try ByteLevelBPETokenizer(tokenizerJSON: try #require(files["tokenizer.json"]))
        #expect(t.prefixIDs == [1] && t.suffixIDs.isEmpty)
    }

    /// Writes SmolLM2 (the Q4_1 asset) for scripts/check-llama-export.sh, which compares the
    /// files with transformers and gguf-py: `smollm2-hf-f32/` (Hugging Face, float32),
    /// `smollm2.f32.gguf`, `smollm2.q8_0.gguf`, and `smollm2-override.f32.gguf` +
    /// `override.npy` (layer 3's q_proj replaced by 1.5 × itself plus a labelled pattern).
    /// Runs only with LORTA_EXPORT_OUT set to an existing directory.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["LORTA_EXPORT_OUT"] != nil,
                   "set LORTA_EXPORT_OUT to a directory (scripts/check-llama-export.sh)"))
    func exportSmolLM2ForThePythonCheck() throws {
        let out = URL(fileURLWithPath: try #require(ProcessInfo.processInfo.environment["LORTA_EXPORT_OUT"]))
        let model = try LlamaModel(contentsOf: exportRoot.appendingPathComponent("assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
        try model.export(to: out.appendingPathComponent("smollm2-hf-f32"), format: .huggingFace(dtype: .float32), overwrite: true)
        try model.export(to: out.appendingPathComponent("smollm2.f32.gguf"), format: .gguf(type: .f32), overwrite: true)
        try model.export(to: out.appendingPathComponent("smollm2.q8_0.gguf"), format: .gguf(type: .q8_0), overwrite: true)
        let name = "model.layers.3.self_attn.q_proj.weight"
        let q = try model.weight(named: name).scalars
        let pattern = try labelled(model.configuration.queryWidth, model.configuration.hiddenSize).scalars
        let replaced = try Tensor(zip(q, pattern).map { 1.5 * $0 + 0.01 * $1 }, shape: [model.configuration.queryWidth, model.configuration.hiddenSize])
        try NumpyWriter.write(replaced, to: out.appendingPathComponent("override.npy"))
        try model.export(to: out.appendingPathComponent("smollm2-override.f32.gguf"), format: .gguf(type: .f32),
                         replacing: [name: replaced], overwrite: true)
    }
}
