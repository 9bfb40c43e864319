import Foundation

/// Hugging Face tokenizer files for the byte-level BPE tokenizer stored in a GGUF file's
/// metadata (used by ``LlamaModel/export(to:format:replacing:overwrite:)``).
public enum LlamaTokenizerExport {
    /// `tokenizer.json` and `tokenizer_config.json` equivalent to the GGUF tokenizer
    /// (`tokenizer.ggml.model` `gpt2`): a BPE model with the vocabulary (every token), the merges,
    /// the control/unknown tokens as special added tokens and the user-defined ones as added
    /// tokens; the pre-tokenizer llama.cpp uses for `tokenizer.ggml.pre` written as Hugging Face
    /// steps (`smollm`: `Digits(individual_digits)` + `ByteLevel`; `gpt2`: `ByteLevel`; `llama3`,
    /// `qwen2`, `default`: `Split` regexes + `ByteLevel(use_regex: false)`, Llama 3 with
    /// `ignore_merges`); a `TemplateProcessing` post-processor adding BOS/EOS as
    /// `add_bos_token`/`add_eos_token` say; the `ByteLevel` decoder. `tokenizer_config.json`
    /// holds the bos/eos/unk/pad tokens, the chat template and the context length.
    ///
    /// Before returning, the files are read back with ``ByteLevelBPETokenizer/init(tokenizerJSON:tokenizerConfig:chatTemplate:)``
    /// and compared with the GGUF tokenizer (tokens, merges, pre-tokenizer, added tokens, added
    /// ids, special ids, chat template); any difference throws instead of writing a wrong tokenizer.
    /// - Returns: file name → contents.
    /// - Throws: ``LlamaExportError/unsupportedTokenizer(_:)`` for another tokenizer model, a
    ///   pre-tokenizer name without an equivalent, or a metadata value of the wrong type.
    public static func huggingFaceFiles(fromGGUF m: GGUFMetadata, contextLength: Int? = nil) throws -> [String: Data] {
        func fail(_ s: String) -> LlamaExportError { .unsupportedTokenizer(s) }
        func get<T>(_ key: String, _ body: (GGUFMetadata) throws -> T) throws -> T? {
            guard m.contains(key: key) else { return nil }
            do { return try body(m) } catch { throw fail("GGUF metadata \(key): \(error)") }
        }
        guard let model = try get("tokenizer.ggml.model", { try $0.string(forKey: "tokenizer.ggml.model") }) else {
            throw fail("the GGUF file has no tokenizer (no tokenizer.ggml.model)")
        }
        guard model == "gpt2" else {
            throw fail("tokenizer.ggml.model \"\(model)\" (only \"gpt2\", byte-level BPE, can be written as tokenizer.json)")
        }
        guard let tokens = try get("tokenizer.ggml.tokens", { try $0.stringArray(forKey: "tokenizer.ggml.tokens") }),
              let merges = try get("tokenizer.ggml.merges", { try $0.stringArray(forKey: "tokenizer.ggml.merges") }) else {
            throw fail("tokenizer.ggml.tokens or tokenizer.ggml.merges is missing")
        }
        let types = try get("tokenizer.ggml.token_type", { try $0.int32Array(forKey: "tokenizer.ggml.token_type") })
        let pre = try get("tokenizer.ggml.pre", { try $0.string(forKey: "tokenizer.ggml.pre") }) ?? "default"
        let template = try get("tokenizer.chat_template", { try $0.string(forKey: "tokenizer.chat_template") })
        let addBOS = try get("tokenizer.ggml.add_bos_token", { try $0.bool(forKey: "tokenizer.ggml.add_bos_token") }) ?? false
        let addEOS = try get("tokenizer.ggml.add_eos_token", { try $0.bool(forKey: "tokenizer.ggml.add_eos_token") }) ?? false
        func id(_ key: String) throws -> Int? {
            guard let v = try get(key, { try $0.int(forKey: key) }) else { return nil }
            guard v >= 0, v < tokens.count else { throw fail("\(key) = \(v) is outside the vocabulary of \(tokens.count)") }
            return v
        }
        let bos = try id("tokenizer.ggml.bos_token_id"), eos = try id("tokenizer.ggml.eos_token_id")
        let unk = try id("tokenizer.ggml.unknown_token_id"), pad = try id("tokenizer.ggml.padding_token_id")

        // The tokenizer as the GGUF loader builds it (validates tokens, merges, names).
        let reference: ByteLevelBPETokenizer
        do {
            reference = try ByteLevelBPETokenizer(
                tokens: tokens, merges: merges, tokenTypes: types, preTokenizer: pre,
                bosID: bos.map(Int32.init), eosID: eos.map(Int32.init), unknownID: unk.map(Int32.init),
                paddingID: pad.map(Int32.init), addsBOS: addBOS, addsEOS: addEOS, chatTemplate: template)
        } catch {
            throw fail("\(error)")
        }

        let q = SafeTensorsWriter.quoted
        // Pre-tokenizer steps.
        var steps: [String] = []
        let rules = reference.preTokenizer.rules
        var endsWithRegexByteLevel = false
        for (i, rule) in rules.enumerated() {
            switch rule {
            case .digits(let individually):
                steps.append("{\"type\":\"Digits\",\"individual_digits\":\(individually)}")
            case .gpt2 where i == rules.count - 1:
                steps.append("{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}")
                endsWithRegexByteLevel = true
            default:
                guard let pattern = splitPattern(rule), ByteLevelBPETokenizer.knownSplitPatterns[pattern] == rule else {
                    throw fail("tokenizer.ggml.pre \"\(pre)\": no Hugging Face pre-tokenizer for the step \(rule)")
                }
                steps.append("{\"type\":\"Split\",\"pattern\":{\"Regex\":\(q(pattern))},\"behavior\":\"Isolated\",\"invert\":false}")
            }
        }
        if !endsWithRegexByteLevel {
            steps.append("{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":false}")
        }
        let preTokenizer = steps.count == 1 ? steps[0] : "{\"type\":\"Sequence\",\"pretokenizers\":[" + steps.joined(separator: ",") + "]}"

        // Post-processor.
        var specials: [(String, Int)] = []
        var prefix: [String] = [], suffix: [String] = []
        func special(_ id: Int, typeID: Int) -> String {
            if !specials.contains(where: { $0.1 == id }) { specials.append((tokens[id], id)) }
            return "{\"SpecialToken\":{\"id\":\(q(tokens[id])),\"type_id\":\(typeID)}}"
        }
        if addBOS, let bos { prefix.append(special(bos, typeID: 0)) }
        if addEOS, let eos { suffix.append(special(eos, typeID: 0)) }
        let single = prefix + ["{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}"] + suffix
        let pair = single + prefix.map { $0.replacingOccurrences(of: "\"type_id\":0", with: "\"type_id\":1") }
            + ["{\"Sequence\":{\"id\":\"B\",\"type_id\":1}}"]
            + suffix.map { $0.replacingOccurrences(of: "\"type_id\":0", with: "\"type_id\":1") }
        let specialTokens = specials.map { "\(q($0.0)):{\"id\":\(q($0.0)),\"ids\":[\($0.1)],\"tokens\":[\(q($0.0))]}" }
        let postProcessor = "{\"type\":\"TemplateProcessing\",\"single\":[" + single.joined(separator: ",") + "],\"pair\":["
            + pair.joined(separator: ",") + "],\"special_tokens\":{" + specialTokens.joined(separator: ",") + "}}"

        // Added tokens, vocabulary, merges.
        var added: [String] = []
        for t in reference.addedTokens {
            added.append("{\"id\":\(t.id),\"content\":\(q(t.content)),\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"
                         + "\"normalized\":false,\"special\":\(t.isSpecial)}")
        }
        var json = "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[\n"
        json += added.joined(separator: ",\n")
        json += "],\n\"normalizer\":null,\n\"pre_tokenizer\":\(preTokenizer),\n\"post_processor\":\(postProcessor),\n"
        json += "\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true},\n"
        json += "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":null,"
        json += "\"end_of_word_suffix\":null,\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":\(reference.ignoresMerges),\n"
        json += "\"vocab\":{\n"
        json += tokens.enumerated().filter { !$0.element.isEmpty }.map { "\(q($0.element)):\($0.offset)" }.joined(separator: ",\n")
        json += "},\n\"merges\":[\n"
        var pairs: [String] = []
        pairs.reserveCapacity(merges.count)
        for (rank, merge) in merges.enumerated() {
            let (a, b): (String, String)
            do { (a, b) = try ByteLevelBPETokenizer.splitMerge(merge, rank: rank) } catch { throw fail("\(error)") }
            pairs.append("[\(q(a)),\(q(b))]")
        }
        json += pairs.joined(separator: ",\n")
        json += "]}}\n"
        let tokenizerJSON = Data(json.utf8)

        var config: [String: Any] = [
            "tokenizer_class": "PreTrainedTokenizerFast",
            "clean_up_tokenization_spaces": false,
            "add_bos_token": addBOS,
            "add_eos_token": addEOS,
            "add_prefix_space": false,
        ]
        if let contextLength { config["model_max_length"] = contextLength }
        for (field, value) in [("bos_token", bos), ("eos_token", eos), ("unk_token", unk), ("pad_token", pad)] {
            if let value { config[field] = tokens[value] }
        }
        if let template { config["chat_template"] = template }
        let configData = try LlamaModel.jsonData(config)

        // Read back and compare with the GGUF tokenizer.
        let check: ByteLevelBPETokenizer
        do { check = try ByteLevelBPETokenizer(tokenizerJSON: tokenizerJSON, tokenizerConfig: configData) } catch {
            throw fail("the written tokenizer.json does not load: \(error)")
        }
        var differences: [String] = []
        if check.tokens != reference.tokens { differences.append("tokens") }
        if check.mergeCount != reference.mergeCount { differences.append("merges") }
        if check.preTokenizer != reference.preTokenizer { differences.append("pre-tokenizer \(check.preTokenizer) vs \(reference.preTokenizer)") }
        if check.ignoresMerges != reference.ignoresMerges { differences.append("ignore_merges") }
        if check.addsPrefixSpace { differences.append("add_prefix_space") }
        if check.addedTokens != reference.addedTokens { differences.append("added tokens") }
        if check.prefixIDs != reference.prefixIDs || check.suffixIDs != reference.suffixIDs { differences.append("BOS/EOS added") }
        if check.bosID != reference.bosID || check.eosID != reference.eosID || check.paddingID != reference.paddingID {
            differences.append("special token ids")
        }
        if check.chatTemplate != reference.chatTemplate { differences.append("chat template") }
        guard differences.isEmpty else {
            throw fail("the tokenizer.json built from the GGUF metadata would differ in: " + differences.joined(separator: ", "))
        }
        return ["tokenizer.json": tokenizerJSON, "tokenizer_config.json": configData]
    }

    /// The `Split` regex of a rule (as `tokenizers` writes the hub's files).
    static func splitPattern(_ rule: PreTokenizer.Rule) -> String? {
        switch rule {
        case .gpt2: return #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
        case .llama3:
            return #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        case .qwen2:
            return #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        case .punctuationRuns: return #"[\p{P}\$\+<=>\^~\|]+"#
        case .asciiDigitTriples: return #"[0-9][0-9][0-9]"#
        case .digits(let individually): return individually ? #"\p{N}"# : #"\p{N}+"#
        }
    }
}
