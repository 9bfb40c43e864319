import Foundation
import Testing
@testable import LoRTA

// Bad model files and inputs: each is a typed error that names the problem, never a crash.

private func tinyFixture(_ name: String) throws -> URL {
    let base = try #require(Bundle.module.resourceURL)
    return base.appendingPathComponent("Fixtures/llama/tiny").appendingPathComponent(name)
}

/// A scratch folder removed by the caller.
private func scratchFolder() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("lorta-llama-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// A copy of the tiny Q8_0 GGUF with its metadata and tensors changed by `edit`
/// (metadata, tensors as (name, type, shape, bytes)).
private func editedTinyGGUF(in folder: URL,
                            _ edit: (inout GGUFMetadata, inout [(String, GGMLType, [Int], Data)]) throws -> Void) throws -> URL {
    let reader = try GGUFReader(contentsOf: try tinyFixture("tiny_untied.q8_0.gguf"))
    var metadata = reader.metadata
    var tensors = try reader.tensorInfos.map { ($0.name, $0.type, $0.shape, try reader.rawBytes(of: $0.name)) }
    try edit(&metadata, &tensors)
    var writer = GGUFWriter()
    for (key, value) in metadata where key != GGUF.alignmentKey { writer.metadata[key] = value }
    for (name, type, shape, bytes) in tensors { try writer.addRaw(name, type: type, shape: shape, bytes: Data(bytes)) }
    let url = folder.appendingPathComponent("edited-\(UUID().uuidString).gguf")
    try writer.write(to: url)
    return url
}

@Suite struct LlamaErrorTests {
    @Test func missingAndTruncatedFiles() throws {
        let folder = try scratchFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        #expect(throws: LlamaError.fileNotFound(path: folder.appendingPathComponent("nope.gguf").path)) {
            try LlamaModel(contentsOf: folder.appendingPathComponent("nope.gguf"))
        }
        let bytes = try Data(contentsOf: try tinyFixture("tiny_untied.q8_0.gguf"))
        for cut in [0, 3, 24, 1_000, bytes.count / 2, bytes.count - 1] {
            let url = folder.appendingPathComponent("cut-\(cut).gguf")
            try bytes.prefix(cut).write(to: url)
            #expect(throws: GGUFError.self, "truncated at \(cut)") { try LlamaModel(contentsOf: url) }
            #expect(throws: GGUFError.self, "truncated at \(cut)") { try CausalLanguageModel(contentsOf: url) }
        }
        // A directory without config.json.
        #expect(throws: LlamaError.fileNotFound(path: folder.appendingPathComponent("config.json").path)) {
            try LlamaModel(contentsOf: folder)
        }
    }

    @Test func otherArchitectureIsRefused() throws {
        let folder = try scratchFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = try editedTinyGGUF(in: folder) { m, _ in m["general.architecture"] = .string("qwen2") }
        #expect(throws: LlamaError.unsupportedArchitecture("qwen2", source: url.path)) { try LlamaModel(contentsOf: url) }
        // The same for a Hugging Face config.json.
        let json = Data(#"{"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}"#.utf8)
        #expect(throws: LlamaError.self) { try LlamaConfiguration(json: json) }
        let scaled = Data(#"{"model_type": "llama", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "rope_scaling": {"rope_type": "llama3", "factor": 8.0}}"#.utf8)
        #expect(throws: LlamaError.unsupportedConfiguration(field: "rope type", value: "\"llama3\"", supported: "\"default\" (no rope scaling)")) {
            try LlamaConfiguration(json: scaled)
        }
        let bias = Data(#"{"model_type": "llama", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "attention_bias": true}"#.utf8)
        #expect(throws: LlamaError.unsupportedConfiguration(field: "attention_bias", value: "true", supported: "false")) {
            try LlamaConfiguration(json: bias)
        }
        let gqa = Data(#"{"model_type": "llama", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 3}"#.utf8)
        #expect(throws: LlamaError.self) { try LlamaConfiguration(json: gqa) }
    }

    @Test func missingOrMisshapenTensor() throws {
        let folder = try scratchFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let missing = try editedTinyGGUF(in: folder) { _, t in t.removeAll { $0.0 == "blk.1.ffn_up.weight" } }
        #expect(throws: LlamaError.missingWeight("blk.1.ffn_up.weight")) { try LlamaModel(contentsOf: missing) }
        // blk.0.attn_k.weight is [32, 64]; store it as [64, 32] (same bytes per block row count).
        let reshaped = try editedTinyGGUF(in: folder) { _, t in
            let i = t.firstIndex { $0.0 == "blk.0.ffn_gate.weight" }!
            t[i].2 = [64, 128]   // is [128, 64]
            t[i].3 = Data(count: 64 * (128 / 32) * 34)
        }
        #expect(throws: LlamaError.weightShapeMismatch(name: "blk.0.ffn_gate.weight", expected: [128, 64], actual: [64, 128])) {
            try LlamaModel(contentsOf: reshaped)
        }
    }

    /// A storage type without a decoder is an error naming the type and the tensor, never garbage.
    @Test func unsupportedQuantizationType() throws {
        let folder = try scratchFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = try editedTinyGGUF(in: folder) { _, t in
            let i = t.firstIndex { $0.0 == "blk.0.attn_output.weight" }!
            t[i].1 = .iq4_nl                                   // 32 values in 18 bytes
            t[i].3 = Data(count: 64 * (64 / 32) * GGMLType.iq4_nl.blockBytes)
        }
        #expect(throws: QuantizedMatrixError.unsupportedType(.iq4_nl, name: "blk.0.attn_output.weight")) {
            try LlamaModel(contentsOf: url)
        }
        let message = "\(QuantizedMatrixError.unsupportedType(.iq4_nl, name: "blk.0.attn_output.weight"))"
        #expect(message.contains("IQ4_NL") && message.contains("blk.0.attn_output.weight"))
    }

    @Test func inputsOutsideTheModel() throws {
        let model = try LlamaModel(contentsOf: try tinyFixture("tiny_untied.q8_0.gguf"))
        let context = model.configuration.contextLength
        // A prompt longer than the context.
        let long = [Int32](repeating: 5, count: context + 1)
        #expect(throws: LlamaError.contextExceeded(length: context + 2, maximum: context)) {
            try model.generate(prompt: long, parameters: GenerationParameters(maxTokens: 4))
        }
        #expect(throws: LlamaError.self) { try model.logits(for: long) }
        var cache = try model.makeCache(capacity: 8)
        #expect(throws: LlamaError.contextExceeded(length: 9, maximum: 8)) {
            try model.forward([Int32](repeating: 1, count: 9), cache: &cache)
        }
        #expect(cache.length == 0)
        #expect(throws: LlamaError.tokenOutOfRange(id: 272, position: 1, vocabularySize: 272)) {
            try model.forward([1, 272], cache: &cache)
        }
        #expect(throws: LlamaError.emptyInput) { try model.forward([], cache: &cache) }
        #expect(throws: LlamaError.emptyInput) { try model.generate(prompt: [], parameters: GenerationParameters()) }
        #expect(throws: LlamaError.self) { try model.makeCache(capacity: context + 1) }
        #expect(throws: LlamaError.self) { try model.generate(prompt: [1], parameters: GenerationParameters(maxTokens: 0)) }
        for bad in [SamplingParameters(temperature: -1), SamplingParameters(temperature: .nan),
                    SamplingParameters(temperature: 1, topK: -1), SamplingParameters(temperature: 1, topP: 0),
                    SamplingParameters(temperature: 1, topP: 1.5)] {
            #expect(throws: LlamaError.self) {
                try model.generate(prompt: [1], parameters: GenerationParameters(maxTokens: 2, sampling: bad))
            }
        }
        #expect(throws: LlamaError.self) { try model.perplexity(of: [1, 2, 3], context: 8) }
        // A cache that belongs to another model.
        let other = try LlamaModel(contentsOf: try tinyFixture("tiny_k.q4_k.gguf"))
        var foreign = try other.makeCache(capacity: 4)
        #expect(throws: LlamaError.self) { try model.forward([1], cache: &foreign) }
    }
}
