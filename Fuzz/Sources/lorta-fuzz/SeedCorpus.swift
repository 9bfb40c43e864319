import Foundation
import LoRTA

/// Writes the seed corpora (`Fuzz/corpus/<harness>/`): small files copied from the test
/// fixtures, and small files made here with the library's own writers where the fixtures have
/// nothing small enough. `lorta-fuzz --make-seeds Fuzz/corpus` regenerates them; the result is
/// committed (each harness's seeds stay well under 50 KB).
enum SeedCorpus {
    static func write(into root: URL) throws {
        let fm = FileManager.default
        func directory(_ harness: String) throws -> URL {
            let url = root.appendingPathComponent(harness)
            try fm.createDirectory(at: url, withIntermediateDirectories: true)
            return url
        }
        func copy(_ harness: String, _ fixturePaths: [String]) throws {
            let dir = try directory(harness)
            for path in fixturePaths {
                let name = path.replacingOccurrences(of: "/", with: "_")
                try Data(contentsOf: fixture(path)).write(to: dir.appendingPathComponent(name))
            }
        }
        func put(_ harness: String, _ name: String, _ data: Data) throws {
            try data.write(to: try directory(harness).appendingPathComponent(name))
        }
        func put(_ harness: String, _ name: String, _ text: String) throws { try put(harness, name, Data(text.utf8)) }

        // safetensors
        try copy("safetensors", ["safetensors/python_reference.safetensors", "safetensors/python_unicode_name.safetensors",
                                 "lorta_reference/square/adapter/adapter_model.safetensors"])
        var st = SafeTensorsWriter()
        st.metadata = ["format": "pt", "note": "généré"]
        for (name, dtype) in [("f16", SafeTensorsDType.f16), ("bf16", .bf16), ("f64", .f64), ("f32", .f32)] {
            try st.add(name, try Tensor([1, -2, 0.5, .infinity, 65504, -0.0], shape: [2, 3]), as: dtype)
        }
        try st.addRaw("i64", dtype: .i64, shape: [2], bytes: Data(repeating: 7, count: 16))
        try st.addRaw("empty", dtype: .f32, shape: [0, 4], bytes: Data())
        try st.addRaw("scalar", dtype: .u8, shape: [], bytes: Data([42]))
        try put("safetensors", "dtypes.safetensors", try st.serialized())

        // gguf
        try copy("gguf", ["gguf/small_v3.gguf", "gguf/small_align64.gguf"])
        try put("gguf", "quant_types.gguf", try quantTypesGGUF())
        try put("gguf", "tiny_llama.gguf", try tinyLlamaGGUF())

        // npy, csv
        try copy("npy", ["npy/f4_c.npy", "npy/f4_fortran3d.npy", "npy/f8_be.npy", "npy/f4_v3.npy", "npy/f8_scalar.npy",
                         "npy/labels_b1.npy", "npy/labels_i4_be.npy", "npy/labels_u8_huge.npy", "npy/f4_0rows.npy"])
        try copy("csv", ["npy/header.csv", "npy/numeric_header.csv", "npy/quoted_crlf.csv", "npy/semicolon.csv", "npy/special.csv"])

        // JSON configurations
        try copy("peft-config", ["peft/lora/adapter_config.json", "lorta_merge/bert/adapter/adapter_config.json",
                                 "lorta_reference/square/adapter/adapter_config.json", "merge/adapter/adapter_config.json"])
        try put("peft-config", "patterns.json", """
        {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ".*\\\\.(query|value)$",
         "rank_pattern": {"layer\\\\.1\\\\..*": 2}, "alpha_pattern": {"query": 3.5}, "use_rslora": true}
        """)
        try put("bert-config", "config.json", """
        {"model_type": "bert", "vocab_size": 12, "hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2,
         "intermediate_size": 16, "max_position_embeddings": 10, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
         "hidden_act": "gelu", "position_embedding_type": "absolute"}
        """)
        try copy("llama-config", ["llama/tiny/tiny_tied_hf/config.json", "llama/tiny/tiny_untied_hf/config.json"])

        // tokenizers
        try put("wordpiece", "vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\nmovie\n##s\nwas\ngood\n,\n!\n日\n##本\n")
        try copy("bpe-json", ["bpe/tiny/tokenizer.json"])
        try copy("bpe-config", ["bpe/tiny/tokenizer_config.json"])
        try put("bpe-config", "added_tokens.json", """
        {"added_tokens_decoder": {"0": {"content": "<|endoftext|>", "special": true, "lstrip": false, "rstrip": false,
         "single_word": false, "normalized": false}}, "bos_token": {"content": "<|endoftext|>"}, "eos_token": "<|im_end|>",
         "add_bos_token": true, "chat_template": [{"name": "default", "template": "{{ messages }}"}]}
        """)
        let templates = try JSONSerialization.jsonObject(with: Data(contentsOf: fixture("bpe/chat_templates.json")))
        var templateSources: [String] = []
        collectTemplates(templates, into: &templateSources)
        for (i, source) in templateSources.prefix(6).enumerated() { try put("chat-template", "template\(i).jinja", source) }

        // training data
        try put("labelled-text", "train.tsv", "0\tA gorgeous, witty movie.\n1\tboring plot\r\n2\t  spaced  \n\n")
        try put("labelled-text", "bad.tsv", "-1\tnegative\n00\tleading zero\n1 no tab\n")
        try copy("causal-jsonl", ["causal-lm/train.jsonl"])
        try put("causal-jsonl", "prompt_response.jsonl", """
        {"prompt": "2+2=", "response": "4"}
        {"messages": [{"role": "system", "content": "terse"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
        {"prompt": "\\u00e9\\ud83e\\udd16", "response": " ok", "extra": [1, {"a": null}]}

        """)

        // statistics, detectors, optimizer checkpoints
        let stats = root.appendingPathComponent("stats-file")
        try fm.createDirectory(at: stats, withIntermediateDirectories: true)
        let rows = try Tensor([0.5, 1, -1, 2, 0.25, 0, 1.5, -0.5, 3, 1, 0, 2, -2, 1, 0.5, 1, 2, 2], shape: [6, 3])
        var s = try ActivationStatistics(dimension: 3)
        try s.update(with: rows, labels: [0, 1, 0, 1, 0, 1])
        try s.write(to: stats.appendingPathComponent("statistics.safetensors"))
        var m = MahalanobisDetector(mode: .classConditional, estimator: .ledoitWolf)
        try m.fit(rows, labels: [0, 1, 0, 1, 0, 1])
        try m.write(to: stats.appendingPathComponent("mahalanobis.safetensors"))
        var q = try QuantumEntropyDetector(alpha: 2)
        try q.fit(rows)
        try q.write(to: stats.appendingPathComponent("que.safetensors"))
        var spectral = SpectralSignatureDetector()
        try spectral.fit(rows)
        try spectral.write(to: stats.appendingPathComponent("spectral.safetensors"))

        let optimizer = try AdamW(state: OptimizerState(step: 3, firstMoments: [try Tensor([0.1, -0.2], shape: [2])],
                                                        secondMoments: [try Tensor([0.01, 0.04], shape: [2])]))
        let checkpoint = try OptimizerCheckpoint(optimizer: optimizer, schedule: .linearWarmupDecay(peak: 1e-3, warmupSteps: 2, totalSteps: 10),
                                                 seed: 9, position: TrainingPosition(epoch: 1, batchInEpoch: 2), parameterNames: ["head.weight"])
        let optimizerDir = try directory("optimizer-checkpoint")
        try checkpoint.write(to: optimizerDir.appendingPathComponent("optimizer.safetensors"))
        try put("optimizer-checkpoint", "schedule.txt", checkpoint.schedule.description)

        let run = try TinyTrainingRun.checkpoint(in: Scratch.emptyDirectory("seed-checkpoint")).0
        try put("trainer-checkpoint", "trainer.json", try Data(contentsOf: run.appendingPathComponent("trainer.json")))

        // adapter directories: selector (0 tiny Llama, 1 BERT d 8, 2 BERT d 12), config, weights
        for (selector, path) in [(0, "lorta_reference/tiny_llama_qo/adapter"), (1, "merge/adapter"),
                                 (2, "lorta_merge/bert/adapter")] {
            let config = try Data(contentsOf: fixture(path + "/adapter_config.json"))
            let weights = try Data(contentsOf: fixture(path + "/adapter_model.safetensors"))
            try put("adapter-dir", path.replacingOccurrences(of: "/", with: "_") + ".bin",
                    joinInput(selector: UInt8(selector), config, weights))
        }
        try verify(root)
    }

    /// Checks that the seeds meant to be valid are accepted (a seed every parser rejects at
    /// once teaches the fuzzer little). Prints one line per check; throws on the first failure.
    static func verify(_ root: URL) throws {
        func file(_ harness: String, _ name: String) -> URL { root.appendingPathComponent(harness).appendingPathComponent(name) }
        func check(_ what: String, _ body: () throws -> Void) throws {
            do { try body(); print("seed ok: \(what)") } catch {
                throw SeedError(message: "seed \(what) is rejected: \(error)")
            }
        }
        try check("safetensors/dtypes.safetensors") {
            let r = try SafeTensorsReader(contentsOf: file("safetensors", "dtypes.safetensors"))
            for e in r.entries where e.dtype.isFloatConvertible { _ = try r.tensor(e.name) }
        }
        let gguf = try GGUFReader(contentsOf: file("gguf", "tiny_llama.gguf"))
        try check("gguf/tiny_llama.gguf (model)") { _ = try LlamaModel(gguf: gguf).logits(for: [0, 1]) }
        try check("gguf/tiny_llama.gguf (tokenizer)") {
            let t = try ByteLevelBPETokenizer(gguf: gguf)
            _ = try ChatTemplate(t.chatTemplate ?? "")
        }
        try check("gguf/quant_types.gguf") {
            let r = try GGUFReader(contentsOf: file("gguf", "quant_types.gguf"))
            for name in r.tensorNames { _ = try r.tensor(named: name) }
        }
        try check("peft-config/patterns.json") { _ = try PEFTAdapterConfiguration(contentsOf: file("peft-config", "patterns.json")) }
        try check("bert-config/config.json") { _ = try BertConfiguration(contentsOf: file("bert-config", "config.json")) }
        try check("wordpiece/vocab.txt") { _ = try BertTokenizer(vocabularyURL: file("wordpiece", "vocab.txt")) }
        try check("labelled-text/train.tsv") { _ = try LabelledTextDataset.load(from: file("labelled-text", "train.tsv"), labelCount: 3) }
        let tokenizer = try ByteLevelBPETokenizer(directory: fixture("bpe/tiny"))
        try check("causal-jsonl/prompt_response.jsonl") {
            _ = try CausalLMDataset.load(from: file("causal-jsonl", "prompt_response.jsonl"), tokenizer: tokenizer, maxLength: 48)
        }
        for name in ["statistics"] {
            try check("stats-file/\(name).safetensors") { _ = try ActivationStatistics(contentsOf: file("stats-file", name + ".safetensors")) }
        }
        for name in ["mahalanobis", "que", "spectral"] {
            try check("stats-file/\(name).safetensors") { _ = try DetectorFile.load(file("stats-file", name + ".safetensors")) }
        }
        try check("optimizer-checkpoint") {
            _ = try OptimizerCheckpoint(contentsOf: file("optimizer-checkpoint", "optimizer.safetensors"))
            _ = try LearningRateSchedule(parsing: String(decoding: Data(contentsOf: file("optimizer-checkpoint", "schedule.txt")), as: UTF8.self))
        }
        try check("trainer-checkpoint/trainer.json") {
            let (dir, task) = try TinyTrainingRun.checkpoint(in: Scratch.emptyDirectory("verify-checkpoint"))
            try Data(contentsOf: file("trainer-checkpoint", "trainer.json")).write(to: dir.appendingPathComponent("trainer.json"))
            _ = try Trainer(resumingFrom: dir, task: task)
        }
        let hosts = try adapterHosts()
        for name in try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("adapter-dir").path).sorted() {
            try check("adapter-dir/\(name)") {
                guard let (selector, config, weights) = splitInput(try Data(contentsOf: file("adapter-dir", name))) else {
                    throw SeedError(message: "too short")
                }
                let dir = Scratch.emptyDirectory("verify")
                try config.write(to: dir.appendingPathComponent("adapter_config.json"))
                try weights.write(to: dir.appendingPathComponent("adapter_model.safetensors"))
                _ = try AdapterFiles.load(from: dir, host: hosts[Int(selector) % hosts.count])
            }
        }
    }

    struct SeedError: Error, CustomStringConvertible { let message: String; var description: String { message } }

    private static func collectTemplates(_ value: Any, into out: inout [String]) {
        if let s = value as? String, s.contains("{%") || s.contains("{{") { out.append(s) }
        if let a = value as? [Any] { for v in a { collectTemplates(v, into: &out) } }
        if let d = value as? [String: Any] { for k in d.keys.sorted() { collectTemplates(d[k]!, into: &out) } }
    }

    /// One block of each ggml type the dequantization fixtures cover (their first block).
    private static func quantTypesGGUF() throws -> Data {
        var w = GGUFWriter()
        w.metadata["general.architecture"] = .string("none")
        w.metadata["general.alignment"] = .uint32(32)
        for type in [GGMLType.f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K] {
            let blocks = try Data(contentsOf: fixture("gguf/dequant/\(type.description).bin"))
            let n = type.blockElements == 1 ? 8 : type.blockElements
            let bytes = type.byteCount(elements: n)!
            try w.addRaw(type.description, type: type, shape: [n], bytes: blocks.prefix(bytes))
        }
        return try w.serialized()
    }

    /// A one-layer Llama (vocabulary 16, d 8, 2 heads / 1 KV head of 4, MLP 16) with the tiny BPE
    /// tokenizer in its metadata: enough for LlamaConfiguration, LlamaModel and the GGUF tokenizer.
    private static func tinyLlamaGGUF() throws -> Data {
        var w = GGUFWriter()
        // A byte-level BPE vocabulary: the 256 byte symbols, three merges, two control tokens.
        let tokens = (0..<256).map { ByteLevelAlphabet.string(of: [UInt8($0)]) }
            + ["Ġt", "he", "Ġthe", "<|im_start|>", "<|im_end|>"]
        var metadata = GGUFMetadata()
        metadata["tokenizer.ggml.model"] = .string("gpt2")
        metadata["tokenizer.ggml.pre"] = .string("smollm")
        metadata["tokenizer.ggml.tokens"] = .array(.string(tokens))
        metadata["tokenizer.ggml.token_type"] = .array(.int32(tokens.indices.map { $0 >= 259 ? 3 : 1 }))
        metadata["tokenizer.ggml.merges"] = .array(.string(["Ġ t", "h e", "Ġt he"]))
        metadata["tokenizer.ggml.bos_token_id"] = .uint32(259)
        metadata["tokenizer.ggml.eos_token_id"] = .uint32(260)
        metadata["tokenizer.chat_template"] = .string(
            "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
            + "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
        for (key, value) in [("general.architecture", GGUFValue.string("llama")), ("llama.block_count", .uint32(1)),
                             ("llama.embedding_length", .uint32(8)), ("llama.feed_forward_length", .uint32(16)),
                             ("llama.attention.head_count", .uint32(2)), ("llama.attention.head_count_kv", .uint32(1)),
                             ("llama.context_length", .uint32(32)), ("llama.rope.freq_base", .float32(10000)),
                             ("llama.attention.layer_norm_rms_epsilon", .float32(1e-5)), ("llama.vocab_size", .uint32(16))] {
            metadata[key] = value
        }
        w.metadata = metadata
        var seed: UInt32 = 1
        func tensor(_ shape: [Int]) throws -> Tensor {
            let n = shape.reduce(1, *)
            return try Tensor((0..<n).map { _ in
                seed = seed &* 1_664_525 &+ 1_013_904_223
                return Float(Int32(bitPattern: seed) >> 8) / Float(1 << 24)
            }, shape: shape)
        }
        try w.add("token_embd.weight", try tensor([16, 8]))
        try w.add("output_norm.weight", try tensor([8]))
        for (name, shape) in [("attn_norm.weight", [8]), ("attn_q.weight", [8, 8]), ("attn_k.weight", [4, 8]),
                              ("attn_v.weight", [4, 8]), ("attn_output.weight", [8, 8]), ("ffn_norm.weight", [8]),
                              ("ffn_gate.weight", [16, 8]), ("ffn_up.weight", [16, 8]), ("ffn_down.weight", [8, 16])] {
            try w.add("blk.0." + name, try tensor(shape), as: name == "attn_q.weight" ? .f16 : .f32)
        }
        return try w.serialized()
    }
}
