import Foundation

/// Errors of ``CausalLanguageModel`` that are not about the network or the tokenizer alone.
public enum LanguageModelError: Error, Equatable, CustomStringConvertible {
    /// The model ships no chat template (`tokenizer.chat_template` / `chat_template`).
    case noChatTemplate(model: String)
    /// The tokenizer's vocabulary does not fit the network's embedding.
    case vocabularyMismatch(tokenizer: Int, model: Int)

    public var description: String {
        switch self {
        case .noChatTemplate(let m): return "\(m) has no chat template; use a plain prompt"
        case .vocabularyMismatch(let t, let m):
            return "the tokenizer has \(t) tokens but the model's embedding has \(m) rows"
        }
    }
}

/// A causal language model with what it needs to read and write text: the network
/// (``LlamaModel``), its byte-level BPE tokenizer, its chat template and its stop tokens —
/// loaded from one GGUF file or one Hugging Face directory.
///
/// ```swift
/// let lm = try CausalLanguageModel(contentsOf: URL(filePath: "assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
/// let prompt = try lm.encodeChat([.user("What is the capital of France?")])
/// let result = try lm.generate(prompt: prompt, parameters: GenerationParameters(maxTokens: 64)) { text in
///     print(text, terminator: "")          // streamed as soon as complete UTF-8 is available
///     return .proceed
/// }
/// ```
public struct CausalLanguageModel: Sendable {
    public let model: LlamaModel
    public let tokenizer: ByteLevelBPETokenizer
    /// Tokens that end a generation: the tokenizer's end-of-sequence id, the ids listed in a
    /// Hugging Face `generation_config.json`, and the end-of-turn token of a ChatML template
    /// (`<|im_end|>`).
    public let stopTokens: Set<Int32>
    /// `gguf` or `huggingface`.
    public let format: String
    /// The file or directory the model came from.
    public let path: String
    /// True when `url` looks like a causal language model this type loads: a GGUF file, or a
    /// directory whose `config.json` names a Llama architecture (`LlamaForCausalLM` or
    /// `model_type` `llama`). Reads at most the file's magic or the config.
    public static func isCausalLanguageModel(at url: URL) -> Bool {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else { return false }
        if !isDirectory.boolValue {
            guard RegularFile.problem(at: url.path) == nil, let h = FileHandle(forReadingAtPath: url.path) else { return false }
            defer { try? h.close() }
            return (try? h.read(upToCount: 4)) == Data("GGUF".utf8)
        }
        guard let data = try? RegularFile.read(url.appendingPathComponent("config.json")),
              let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return false }
        let architectures = object["architectures"] as? [String] ?? []
        return object["model_type"] as? String == "llama" || architectures.contains("LlamaForCausalLM")
    }

    /// Loads an adapter directory (LoRA in PEFT's layout or LoRTA; see ``AdapterFiles``) for
    /// this model and sets it as ``adapter``.
    /// - Throws: ``AdapterFileError`` and ``AdapterError`` when the files are bad or made for
    ///   another model.
    public mutating func loadAdapter(from directory: URL) throws {
        adapter = try AdapterFiles.load(from: directory, host: model.adapterHost)
    }

    /// An unmerged adapter that ``generate(prompt:parameters:onText:)`` applies (nil: none).
    public var adapter: (any Adapter)? = nil

    /// Components mean-ablated in every forward of ``generate(prompt:parameters:onText:)`` (and so
    /// of ``answerAccuracy(_:limit:maxNewTokens:onAnswer:)``); nil: none. Checking a circuit:
    /// set it to the components a ``CircuitRanking`` names and compare the answers.
    public var ablation: MeanAblation? = nil

    /// Loads a GGUF file (weights, configuration and tokenizer from its metadata) or a Hugging
    /// Face directory (`config.json`, `model.safetensors` or its sharded index, `tokenizer.json`,
    /// optional `tokenizer_config.json`, `chat_template.jinja`, `generation_config.json`).
    /// - Throws: ``LlamaError``, ``GGUFError``, ``SafeTensorsError``, ``QuantizedMatrixError``,
    ///   ``BPETokenizerError``, ``LanguageModelError/vocabularyMismatch(tokenizer:model:)``.
    public init(contentsOf url: URL) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw LlamaError.fileNotFound(path: url.path)
        }
        var stops: Set<Int32> = []
        if isDirectory.boolValue {
            model = try LlamaModel(contentsOf: url)
            tokenizer = try ByteLevelBPETokenizer(directory: url)
            format = "huggingface"
            stops.formUnion(try Self.generationConfigStopTokens(url.appendingPathComponent("generation_config.json")))
        } else {
            let reader = try GGUFReader(contentsOf: url)
            model = try LlamaModel(gguf: reader, source: url.path)
            tokenizer = try ByteLevelBPETokenizer(gguf: reader)
            format = "gguf"
        }
        path = url.path
        // The embedding may have padding rows beyond the tokenizer's vocabulary, never fewer.
        guard tokenizer.vocabularySize <= model.configuration.vocabularySize else {
            throw LanguageModelError.vocabularyMismatch(tokenizer: tokenizer.vocabularySize,
                                                        model: model.configuration.vocabularySize)
        }
        if let eos = tokenizer.eosID { stops.insert(eos) }
        if let source = tokenizer.chatTemplate, source.contains("<|im_end|>"), let end = tokenizer.id(for: "<|im_end|>") {
            stops.insert(end)
        }
        stopTokens = stops
    }

    /// `eos_token_id` (an id or a list) of a `generation_config.json`, if the file exists.
    private static func generationConfigStopTokens(_ url: URL) throws -> Set<Int32> {
        guard FileManager.default.fileExists(atPath: url.path) else { return [] }
        let data: Data
        do { data = try RegularFile.read(url) } catch {
            throw LlamaError.unreadableFile(path: url.path, reason: error.reason)
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw LlamaError.unreadableFile(path: url.path, reason: "not a JSON object")
        }
        switch object["eos_token_id"] {
        case let n as NSNumber where Int32(exactly: n.doubleValue) != nil: return [Int32(n.doubleValue)]
        case let a as [NSNumber]: return Set(a.compactMap { Int32(exactly: $0.doubleValue) })
        case nil, is NSNull: return []
        default: throw LlamaError.unreadableFile(path: url.path, reason: "eos_token_id is not an id or a list of ids")
        }
    }

    /// The chat template the model ships.
    /// - Throws: ``LanguageModelError/noChatTemplate(model:)``, or
    ///   ``ChatTemplateError/unsupportedTemplate(excerpt:reason:)`` naming a template this
    ///   package cannot render (never a silent fallback).
    public func chatTemplate() throws -> ChatTemplate {
        guard let source = tokenizer.chatTemplate else { throw LanguageModelError.noChatTemplate(model: path) }
        return try ChatTemplate(source)
    }

    /// Token ids of a plain prompt, with the tokenizer's own prefix (a BOS when the model adds
    /// one). Special tokens written in the text are matched as such.
    public func encode(_ text: String) -> [Int32] { tokenizer.encode(text) }

    /// Token ids of a conversation rendered by the chat template with the assistant's turn
    /// opened, as `apply_chat_template(messages, add_generation_prompt=True)` tokenizes it
    /// (the rendered text, without adding prefix tokens).
    public func encodeChat(_ messages: [ChatMessage]) throws -> [Int32] {
        let text = try chatTemplate().render(messages, addGenerationPrompt: true)
        return tokenizer.encode(text, addingSpecialTokens: false)
    }

    /// Generates a continuation of `prompt` and streams its text: `onText` receives each piece
    /// of text as soon as its UTF-8 is complete (special tokens, such as the stop token, are
    /// not shown) and may stop the generation. Stops at ``stopTokens`` unless `parameters`
    /// names its own.
    /// - Throws: what ``LlamaModel/generate(prompt:parameters:adapter:ablation:onToken:)`` throws, and what
    ///   `onText` throws.
    public func generate(prompt: [Int32], parameters: GenerationParameters,
                         onText: (String) throws -> GenerationControl = { _ in .proceed }) throws -> (result: GenerationResult, text: String) {
        var parameters = parameters
        if parameters.stopTokens.isEmpty { parameters.stopTokens = stopTokens }
        var decoder = tokenizer.makeStreamingDecoder(skippingSpecialTokens: true)
        var text = ""
        let result = try model.generate(prompt: prompt, parameters: parameters, adapter: adapter, ablation: ablation) { id in
            let piece = try decoder.append(id)
            if piece.isEmpty { return .proceed }
            text += piece
            return try onText(piece)
        }
        let rest = decoder.finish()
        if !rest.isEmpty {
            text += rest
            _ = try onText(rest)
        }
        return (result, text)
    }
}

/// What `lorta info --model` shows: the architecture, sizes, storage types and tokenizer of a
/// causal language model.
public struct LanguageModelSummary: Sendable {
    public let path: String
    /// `gguf` or `huggingface`.
    public let format: String
    public let architecture: String
    public let configuration: LlamaConfiguration
    public let parameterCount: Int
    /// Bytes of the weights as held in memory (quantized blocks at their stored size).
    public let weightByteCount: Int
    /// Matrices per storage type, e.g. `["Q4_1": 120, "Q8_0": 1]` (a fused projection such as
    /// q|k|v counts once; norm vectors are Float32).
    public let matrixTypes: [String: Int]
    /// The tokenizer: vocabulary size, merges and pre-tokenizer, or why it could not be read
    /// (the network is described either way).
    public let tokenizer: Result<(vocabularySize: Int, mergeCount: Int, preTokenizer: String), TokenizerUnavailable>
    /// The chat template family ("ChatML", "ChatML with a default system message") or why it
    /// cannot be rendered; nil when the model has none.
    public let chatTemplate: String?
    public let stopTokens: [Int32]

    /// Why a model's tokenizer could not be loaded.
    public struct TokenizerUnavailable: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    init(path: String, format: String, model: LlamaModel, tokenizer: ByteLevelBPETokenizer?, tokenizerError: String?,
         chatTemplate: String?, stopTokens: Set<Int32>) {
        self.path = path
        self.format = format
        architecture = "llama"
        configuration = model.configuration
        parameterCount = model.configuration.parameterCount
        weightByteCount = model.weightByteCount
        matrixTypes = Dictionary(uniqueKeysWithValues: model.matrixTypeCounts.map { ($0.key.name, $0.value) })
        if let t = tokenizer {
            self.tokenizer = .success((t.vocabularySize, t.mergeCount, "\(t.preTokenizer)"))
        } else {
            self.tokenizer = .failure(TokenizerUnavailable(description: tokenizerError ?? "no tokenizer"))
        }
        self.chatTemplate = chatTemplate
        self.stopTokens = stopTokens.sorted()
    }
}

extension CausalLanguageModel {
    /// A description of the model for people and scripts (`lorta info --model`).
    public var summary: LanguageModelSummary {
        var template: String? = nil
        if tokenizer.chatTemplate != nil {
            do {
                switch try chatTemplate().family {
                case .chatML(let system):
                    template = system == nil ? "ChatML" : "ChatML with a default system message"
                }
            } catch {
                template = "not supported: \(error)"
            }
        }
        return LanguageModelSummary(path: path, format: format, model: model, tokenizer: tokenizer,
                                    tokenizerError: nil, chatTemplate: template, stopTokens: stopTokens)
    }

    /// The summary of the model at `url`; when only its tokenizer cannot be loaded (a checkpoint
    /// without `tokenizer.json`, an unsupported tokenizer), the network is still described and
    /// the tokenizer's problem is reported in ``LanguageModelSummary/tokenizer``.
    /// - Throws: what ``LlamaModel/init(contentsOf:)`` throws.
    public static func summary(of url: URL) throws -> LanguageModelSummary {
        do {
            return try CausalLanguageModel(contentsOf: url).summary
        } catch let error as BPETokenizerError {
            let model = try LlamaModel(contentsOf: url)
            return LanguageModelSummary(path: url.path, format: FileManager.default.isDirectory(url) ? "huggingface" : "gguf",
                                        model: model, tokenizer: nil, tokenizerError: "\(error)",
                                        chatTemplate: nil, stopTokens: [])
        }
    }
}

extension FileManager {
    /// True when `url` names an existing directory.
    func isDirectory(_ url: URL) -> Bool {
        var isDirectory: ObjCBool = false
        return fileExists(atPath: url.path, isDirectory: &isDirectory) && isDirectory.boolValue
    }
}
