import Foundation
import Testing
@testable import LoRTA

// Writing a Llama model read from a Hugging Face directory as GGUF (LlamaModel.export with
// .gguf, LlamaModel.ggufMetadata(type:), LlamaTokenizerExport.ggufMetadata(fromHuggingFace:)).
// No network, no Python: the Hugging Face directories are made by our own GGUF → Hugging Face
// export (itself checked against transformers by scripts/check-llama-export.sh), so a
// GGUF → HF → GGUF round trip must give back the source file's metadata, tensors, logits and
// tokenization. Sources: the tiny fixtures (gguf-py, the way llama.cpp's converter writes
// files) and the fetched SmolLM2-135M-Instruct Q4_1 GGUF.

private let hfRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

private func fixture(_ relative: String) throws -> URL { try testFixture(relative) }

private func scratchDirectory() throws -> URL { try testScratchDirectory("lorta-hf-gguf") }

private func bits(_ t: Tensor) -> [UInt32] { t.scalars.map(\.bitPattern) }

private let tinySequences: [[Int32]] = [[116, 181, 62, 15, 147], [105, 90, 96, 226, 169, 113, 42, 116, 95, 227, 134, 17, 51]]

/// Largest |a − b| over the largest |a|.
private func relativeDifference(_ a: Tensor, _ b: Tensor) -> Double {
    var d = 0.0, m = 0.0
    for (x, y) in zip(a.scalars, b.scalars) {
        d = max(d, Double(abs(x - y)))
        m = max(m, Double(abs(x)))
    }
    return d / max(m, .leastNormalMagnitude)
}

/// The keys whose values differ between a source GGUF and its GGUF → HF → GGUF copy: keys of
/// the source missing from the copy or with other bits, and keys only the copy has.
private func metadataDifferences(_ a: GGUFMetadata, _ b: GGUFMetadata) -> (changed: Set<String>, missing: Set<String>, added: Set<String>) {
    var changed: Set<String> = [], missing: Set<String> = []
    for (key, value) in a {
        guard let other = b[key] else { missing.insert(key); continue }
        if !other.isBitwiseIdentical(to: value) { changed.insert(key) }
    }
    return (changed, missing, Set(b.keys).subtracting(a.keys))
}

/// A copy of `dir` whose tokenizer.json has been edited by `edit`.
private func editedTokenizer(_ dir: URL, into out: URL, _ edit: (inout [String: Any]) -> Void) throws {
    try FileManager.default.copyItem(at: dir, to: out)
    let url = out.appendingPathComponent("tokenizer.json")
    var json = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    edit(&json)
    try JSONSerialization.data(withJSONObject: json).write(to: url)
}

@Suite("LlamaExport HF → GGUF")
struct LlamaExportHFToGGUFTests {
    // MARK: Tiny fixtures

    /// GGUF F32 → HF float32 → GGUF F32 gives the source file back: every tensor's bytes (Q/K
    /// rows permuted back; no output.weight when tied), every metadata key but the name and
    /// the two keys the Hugging Face files add, and bit-identical logits.
    @Test(arguments: ["tiny_untied", "tiny_tied"])
    func tinyRoundTripGivesTheSourceFileBack(_ name: String) throws {
        let dir = try scratchDirectory(); defer { try? FileManager.default.removeItem(at: dir) }
        let source = try fixture("llama/tiny/\(name).f32.gguf")
        let original = try LlamaModel(contentsOf: source)
        let hfDir = dir.appendingPathComponent("\(name)-hf")
        try original.export(to: hfDir, format: .huggingFace(dtype: .float32))
        let hf = try LlamaModel(contentsOf: hfDir)
        let out = dir.appendingPathComponent("back.gguf")
        try hf.export(to: out, format: .gguf(type: .f32))

        let a = try GGUFReader(contentsOf: source), b = try GGUFReader(contentsOf: out)
        let (changed, missing, added) = metadataDifferences(a.metadata, b.metadata)
        #expect(changed == ["general.name"] && missing.isEmpty, "changed \(changed), missing \(missing)")
        // tokenizer_config.json says add_prefix_space: false and add_eos_token: false; the
        // converter writes both.
        #expect(added == ["tokenizer.ggml.add_space_prefix", "tokenizer.ggml.add_eos_token"], "\(added)")
        #expect(b.metadata["general.name"] == .string("\(name)-hf"))
        #expect(b.metadata["tokenizer.ggml.add_eos_token"] == .bool(false) && b.metadata["tokenizer.ggml.add_space_prefix"] == .bool(false))
        #expect(try hf.ggufMetadata(type: .f32) == b.metadata)

        #expect(b.tensorNames == a.tensorNames)
        #expect((b.tensorInfo(named: "output.weight") == nil) == (name == "tiny_tied"))
        for info in a.tensorInfos {
            let other = try #require(b.tensorInfo(named: info.name))
            #expect(other.type == info.type && other.dimensions == info.dimensions, "\(info.name)")
            #expect(try b.rawBytes(of: info.name) == a.rawBytes(of: info.name), "\(name): \(info.name)")
        }
        let back = try LlamaModel(contentsOf: out)
        #expect(back.configuration == original.configuration)
        for s in tinySequences { #expect(bits(try back.logits(for: s)) == bits(try original.logits(for: s))) }
    }

    /// An adapter merged on export from a Hugging Face source: the GGUF holds W + ΔW (read back
    /// bit for bit in Hugging Face row order, so the Q/K permutation of the replacements is
    /// right), every other weight unchanged, and it scores like the unmerged adapter.
    @Test func mergedAdapterFromHuggingFaceSourceReadsBack() throws {
        let dir = try scratchDirectory(); defer { try? FileManager.default.removeItem(at: dir) }
        let hfDir = dir.appendingPathComponent("hf")
        try LlamaModel(contentsOf: try fixture("llama/tiny/tiny_untied.f32.gguf")).export(to: hfDir, format: .huggingFace(dtype: .float32))
        let model = try LlamaModel(contentsOf: hfDir)
        var adapter = try LoRAAdapter(host: model.adapterHost, targets: ["q_proj", "k_proj", "v_proj", "down_proj"],
                                      configuration: LoRAConfiguration(rank: 2, alpha: 4), seed: 7)
        var state: UInt64 = 11
        try adapter.setParameters(adapter.parameters.map { p in
            try Tensor((0..<p.count).map { _ -> Float in
                state = state &* 6364136223846793005 &+ 1442695040888963407
                return Float(Double(state >> 40) / Double(1 << 24) - 0.5) * 0.4
            }, shape: p.shape)
        })
        let merged = try model.mergedWeights(with: adapter)
        #expect(merged.count == 2 * 4)
        for type in [LlamaExportFormat.GGUFType.f32, .q8_0] {
            let out = dir.appendingPathComponent("merged-\(type).gguf")
            try model.export(to: out, format: .gguf(type: type), replacing: merged)
            let back = try LlamaModel(contentsOf: out)
            let tokens = tinySequences[1]
            var cache = try model.makeCache(capacity: tokens.count)
            let adapted = try model.forward(tokens, cache: &cache, logits: .all, adapter: adapter)
            let d = relativeDifference(adapted, try back.logits(for: tokens))
            if type == .f32 {
                for (name, t) in merged { #expect(bits(try back.weight(named: name)) == bits(t), "\(name)") }
                for w in model.weightNames where merged[w] == nil {
                    #expect(bits(try back.weight(named: w)) == bits(try model.weight(named: w)), "\(w)")
                }
                #expect(d <= 1e-4, "adapted vs merged GGUF: \(d)")
            } else {
                // Each merged matrix is stored as gguf-py's Q8_0 of W + ΔW.
                for (name, t) in merged {
                    let g = GGUFLlamaWeights.ggufName(name)
                    let permuted = name.contains("q_proj") || name.contains("k_proj")
                        ? try LlamaModel.permutingToGGUF(t, heads: name.contains("q_proj") ? model.configuration.headCount
                                                         : model.configuration.keyValueHeadCount, name: g) : t
                    #expect(try GGUFReader(contentsOf: out).rawBytes(of: g) == GGUFQuantize.q8_0(permuted, name: g), "\(name)")
                }
                // Q8_0 rounding of every matrix (measured 2.6e-2 on this random model).
                #expect(d <= 5e-2, "adapted vs merged Q8_0 GGUF: \(d)")
            }
        }
    }

    // MARK: Tokenizer

    /// Every pre-tokenizer the GGUF → HF direction writes comes back under llama.cpp's name;
    /// BOS addition and vocabulary padding are expressed as the converter does.
    @Test func preTokenizerNamesPaddingAndBOS() throws {
        let dir = try scratchDirectory(); defer { try? FileManager.default.removeItem(at: dir) }
        let reader = try GGUFReader(contentsOf: try fixture("llama/tiny/tiny_tied.f32.gguf"))
        let expected = ["gpt2": "gpt-2", "gpt-2": "gpt-2", "smollm": "smollm", "starcoder": "smollm", "llama3": "llama-bpe",
                        "llama-bpe": "llama-bpe", "qwen2": "qwen2", "default": "default"]
        for (pre, name) in expected.sorted(by: { $0.key < $1.key }) {
            var m = reader.metadata
            m["tokenizer.ggml.pre"] = .string(pre)
            m["tokenizer.ggml.add_bos_token"] = .bool(pre == "llama3")
            let hfDir = dir.appendingPathComponent(pre)
            try FileManager.default.createDirectory(at: hfDir, withIntermediateDirectories: true)
            for (file, data) in try LlamaTokenizerExport.huggingFaceFiles(fromGGUF: m) {
                try data.write(to: hfDir.appendingPathComponent(file))
            }
            let g = try LlamaTokenizerExport.ggufMetadata(fromHuggingFace: hfDir)
            #expect(g["tokenizer.ggml.pre"] == .string(name), "\(pre)")
            #expect(g["tokenizer.ggml.add_bos_token"] == .bool(pre == "llama3"), "\(pre)")
            #expect(try PreTokenizer.named(name) == PreTokenizer.named(pre))
            for key in ["tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id",
                        "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"] {
                #expect(g[key]?.isBitwiseIdentical(to: try #require(m[key])) == true, "\(pre): \(key)")
            }
        }
        // An embedding with more rows than the tokenizer has tokens: [PAD<id>] tokens, type 5.
        let padded = try LlamaTokenizerExport.ggufMetadata(fromHuggingFace: dir.appendingPathComponent("smollm"), vocabularySize: 280)
        let tokens = try padded.stringArray(forKey: "tokenizer.ggml.tokens"), types = try padded.int32Array(forKey: "tokenizer.ggml.token_type")
        #expect(tokens.count == 280 && tokens[279] == "[PAD279]" && types[272...].allSatisfy { $0 == 5 })
        #expect(throws: LlamaExportError.self) {
            try LlamaTokenizerExport.ggufMetadata(fromHuggingFace: dir.appendingPathComponent("smollm"), vocabularySize: 200)
        }
    }

    /// What GGUF cannot express is refused with a typed error before anything is written.
    @Test func inexpressibleTokenizersAreRefused() throws {
        let dir = try scratchDirectory(); defer { try? FileManager.default.removeItem(at: dir) }
        let hfDir = dir.appendingPathComponent("hf")
        try LlamaModel(contentsOf: try fixture("llama/tiny/tiny_tied.f32.gguf")).export(to: hfDir, format: .huggingFace(dtype: .float32))
        func refusal(_ label: String, _ edit: (inout [String: Any]) -> Void) throws -> LlamaExportError? {
            let edited = dir.appendingPathComponent(label)
            try editedTokenizer(hfDir, into: edited, edit)
            let model = try LlamaModel(contentsOf: edited)
            let out = dir.appendingPathComponent("\(label).gguf")
            defer { #expect(!FileManager.default.fileExists(atPath: out.path), "\(label): a file was written") }
            do { try model.export(to: out, format: .gguf(type: .f32)); return nil } catch let e as LlamaExportError { return e }
        }
        func isUnsupported(_ e: LlamaExportError?) -> Bool { if case .unsupportedTokenizer? = e { return true } else { return false } }
        // Digit runs before ByteLevel: no llama.cpp pre-tokenizer does that.
        let runs = try refusal("digit-runs") { json in
            json["pre_tokenizer"] = ["type": "Sequence", "pretokenizers": [
                ["type": "Digits", "individual_digits": false],
                ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]]]
        }
        #expect(isUnsupported(runs), "\(String(describing: runs))")
        let nfc = try refusal("nfc") { $0["normalizer"] = ["type": "NFC"] }
        #expect(isUnsupported(nfc), "\(String(describing: nfc))")
        let lstrip = try refusal("lstrip") { json in
            var added = json["added_tokens"] as! [[String: Any]]
            added[1]["lstrip"] = true
            json["added_tokens"] = added
        }
        #expect(isUnsupported(lstrip) && "\(lstrip!)".contains("lstrip"), "\(String(describing: lstrip))")
        let prefix = try refusal("prefix-space") { json in
            json["pre_tokenizer"] = ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true]
        }
        #expect(isUnsupported(prefix), "\(String(describing: prefix))")
        // No tokenizer at all (transformers' fixture directory).
        let bare = try LlamaModel(contentsOf: try fixture("llama/tiny/tiny_tied_hf"))
        #expect(throws: LlamaExportError.self) { try bare.export(to: dir.appendingPathComponent("bare.gguf"), format: .gguf(type: .f32)) }
        do { _ = try bare.ggufMetadata(type: .f32); Issue.record("expected missingSource") } catch let e as LlamaExportError {
            if case .missingSource = e {} else { Issue.record("\(e)") }
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".") }
        #expect(leftovers.isEmpty, "temporary files left: \(leftovers)")
    }

    // MARK: SmolLM2

    /// SmolLM2-135M-Instruct (Q4_1 GGUF) → HF float32 → GGUF F32 and Q8_0: the metadata keys
    /// of the source with the same values (except those listed), the same tokenization (the BPE
    /// fixture strings, digits, special tokens, the rendered chat template), logits equal to the
    /// HF model's bit for bit and to the source's within 1e-5 of the largest logit; the Q8_0
    /// file's tensors are byte for byte those of the source exported to Q8_0 directly (so the
    /// same logits), within 5e-2 of the largest source logit and with the same next token.
    @Test func smolLM2ThroughHuggingFaceToGGUF() throws {
        let smolURL = hfRoot.appendingPathComponent("assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
        try #require(FileManager.default.fileExists(atPath: smolURL.path), "asset \(smolURL.path) missing: run scripts/fetch-assets.sh")
        let dir = try scratchDirectory(); defer { try? FileManager.default.removeItem(at: dir) }
        let source = try CausalLanguageModel(contentsOf: smolURL)
        let hfDir = dir.appendingPathComponent("SmolLM2-135M-Instruct-hf")
        try source.model.export(to: hfDir, format: .huggingFace(dtype: .float32))
        let hf = try CausalLanguageModel(contentsOf: hfDir)
        let f32URL = dir.appendingPathComponent("smol.f32.gguf"), q8URL = dir.appendingPathComponent("smol.q8_0.gguf")
        try hf.model.export(to: f32URL, format: .gguf(type: .f32))
        try hf.model.export(to: q8URL, format: .gguf(type: .q8_0))

        // Metadata, key by key against the source.
        let a = try GGUFReader(contentsOf: smolURL).metadata
        for url in [f32URL, q8URL] {
            let b = try GGUFReader(contentsOf: url).metadata
            let (changed, missing, added) = metadataDifferences(a, b)
            #expect(changed == ["general.name", "general.file_type"], "\(url.lastPathComponent): \(changed)")
            // Model-card keys of the source (organization, finetune, …) are not in config.json.
            #expect(missing == ["general.organization", "general.finetune", "general.basename", "general.size_label",
                                "general.license", "general.languages"], "\(missing)")
            // config.json has head_dim (the converter then writes the key and value widths), and
            // tokenizer_config.json add_eos_token.
            #expect(added == ["llama.attention.key_length", "llama.attention.value_length", "tokenizer.ggml.add_eos_token"], "\(added)")
            #expect(b["general.name"] == .string("SmolLM2-135M-Instruct-hf"))
            #expect(b["general.file_type"] == .uint32(url == f32URL ? 0 : 7))
            #expect(b["llama.attention.key_length"] == .uint32(64) && b["tokenizer.ggml.add_eos_token"] == .bool(false))
            for key in ["general.architecture", "llama.context_length", "llama.embedding_length", "llama.block_count",
                        "llama.feed_forward_length", "llama.attention.head_count", "llama.attention.head_count_kv",
                        "llama.rope.freq_base", "llama.attention.layer_norm_rms_epsilon", "llama.rope.dimension_count",
                        "llama.vocab_size", "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens",
                        "tokenizer.ggml.token_type", "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id",
                        "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id",
                        "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_space_prefix", "tokenizer.chat_template"] {
                #expect(b[key] != nil && b[key]!.isBitwiseIdentical(to: a[key]!), "\(key)")
            }
        }
        #expect(try GGUFReader(contentsOf: f32URL).tensorInfo(named: "output.weight") == nil, "tied: no output.weight")

        // Tokenization.
        let back = try CausalLanguageModel(contentsOf: f32URL)
        struct Cases: Decodable { struct Case: Decodable { let text: String; let ids: [Int32] }; let cases: [Case] }
        let cases = try JSONDecoder().decode(Cases.self, from: Data(contentsOf: try fixture("bpe/smollm2_cases.json"))).cases
        var texts = cases.map(\.text) + ["12345 + 678 = 91011", "<|im_start|>user\nWhat is 3.14 × 2?<|im_end|>\n",
                                         "<|endoftext|><|im_end|>x<|im_start|>", "  2024-03-15\t\n"]
        let messages = [ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: "What is 12+30?"),
                        ChatMessage(role: "assistant", content: "42"), ChatMessage(role: "user", content: "And 7 × 6?")]
        let rendered = try source.chatTemplate().render(messages)
        #expect(try back.chatTemplate().render(messages) == rendered)
        texts.append(rendered)
        var mismatches = 0
        for t in texts where back.tokenizer.encode(t) != source.tokenizer.encode(t)
            || back.tokenizer.encode(t, parsingSpecialTokens: false) != source.tokenizer.encode(t, parsingSpecialTokens: false) {
            mismatches += 1
            Issue.record("tokenization differs: \(t.debugDescription)")
        }
        #expect(mismatches == 0)
        #expect(try back.encodeChat(messages) == source.encodeChat(messages))
        #expect(back.stopTokens == source.stopTokens)
        #expect(back.tokenizer.bosID == 1 && back.tokenizer.eosID == 2 && back.tokenizer.unknownID == 0 && back.tokenizer.paddingID == 2)

        // Logits.
        let prompts = [try source.encodeChat(messages), source.encode("The capital of France is"), source.encode("1 2 3 4 5 6 7 8")]
        let q8 = try LlamaModel(contentsOf: q8URL)
        let q8URLDirect = dir.appendingPathComponent("direct.q8_0.gguf")
        try source.model.export(to: q8URLDirect, format: .gguf(type: .q8_0))
        let direct = try GGUFReader(contentsOf: q8URLDirect), ours = try GGUFReader(contentsOf: q8URL)
        #expect(ours.tensorNames == direct.tensorNames)
        for name in direct.tensorNames { #expect(try ours.rawBytes(of: name) == direct.rawBytes(of: name), "\(name)") }
        let directModel = try LlamaModel(contentsOf: q8URLDirect)
        for p in prompts {
            let reference = try source.model.logits(for: p)
            let viaHF = try hf.model.logits(for: p), f32 = try back.model.logits(for: p), q = try q8.logits(for: p)
            #expect(bits(f32) == bits(viaHF), "F32 GGUF vs its Hugging Face source")
            #expect(bits(q) == bits(try directModel.logits(for: p)), "Q8_0 via HF vs Q8_0 exported from the GGUF")
            let d32 = relativeDifference(reference, f32), d8 = relativeDifference(reference, q)
            #expect(d32 <= 1e-5, "F32 GGUF vs source: \(d32)")
            // Q8_0 rounding of the (Q4_1-dequantized) weights; measured 2.3e-2 to 2.8e-2.
            #expect(d8 <= 5e-2, "Q8_0 GGUF vs source: \(d8)")
            let v = source.model.configuration.vocabularySize, last = (p.count - 1) * v
            func argmax(_ t: Tensor) -> Int { let s = t.scalars; return (last..<(last + v)).max { s[$0] < s[$1] }! - last }
            #expect(argmax(q) == argmax(reference), "Q8_0: next token after a prompt of \(p.count)")
            print("SmolLM2 HF→GGUF, prompt of \(p.count) tokens: max |Δlogit| / max |logit|: F32 \(d32), Q8_0 \(d8)")
        }
    }
}
