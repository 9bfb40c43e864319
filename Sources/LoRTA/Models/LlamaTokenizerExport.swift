import Foundation

/// Converts the byte-level BPE tokenizer between GGUF metadata and Hugging Face tokenizer files,
/// both ways, for ``LlamaModel/export(to:format:replacing:overwrite:)``: Hugging Face files from a
/// GGUF file's `tokenizer.ggml.*` keys (``huggingFaceFiles(fromGGUF:contextLength:)``), and those
/// keys from a Hugging Face directory (``ggufMetadata(fromHuggingFace:vocabularySize:)``). Each
/// direction reads its result back and throws rather than return a tokenizer that differs.
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

// MARK: - Hugging Face → GGUF

extension LlamaTokenizerExport {
    /// The `tokenizer.ggml.pre` values written for our pre-tokenizers, in the spelling llama.cpp's
    /// converter uses (`convert_hf_to_gguf.py`, `get_vocab_base_pre`) and llama.cpp's loader
    /// accepts: `smollm` (Digits + ByteLevel), `gpt-2` (ByteLevel alone; llama.cpp knows no
    /// `gpt2`), `llama-bpe` (Llama 3, merges ignored for whole tokens), `qwen2`, `default`.
    static let llamaCppPreTokenizerNames = ["smollm", "gpt-2", "llama-bpe", "qwen2", "default"]

    /// Texts whose encodings the read-back check compares (digits, spaces, newlines, non-Latin
    /// scripts, emoji, contractions); the added tokens' contents are checked too.
    static let probeTexts = [
        "Hello world! It's 2024-03-15, and I've got 1234567 apples.",
        "  leading spaces\n\n\ttabs and\r\nnewlines   ",
        "héllo wörld — naïve café; 日本語のテキスト; Привет; مرحبا 😀👍🏽",
        "x=3.14159*(a+b)/c; if (y >= 42) { return \"ok\"; }",
    ]

    /// The GGUF `tokenizer.*` metadata equivalent to the Hugging Face tokenizer in `directory`
    /// (`tokenizer.json`, optional `tokenizer_config.json` and `chat_template.jinja`, read as
    /// ``ByteLevelBPETokenizer/init(directory:)`` reads them), as llama.cpp's
    /// `convert_hf_to_gguf.py` writes it for a byte-level BPE:
    ///
    /// | key | value |
    /// |---|---|
    /// | `tokenizer.ggml.model` | `gpt2` |
    /// | `tokenizer.ggml.pre` | llama.cpp's name for the pre-tokenizer: `Digits(individual_digits)` + `ByteLevel` → `smollm`; `ByteLevel` alone → `gpt-2`; the Llama 3 `Split` + `ignore_merges` → `llama-bpe`; Qwen2's → `qwen2`; llama.cpp's fallback rules → `default` (the inverse of ``huggingFaceFiles(fromGGUF:contextLength:)``) |
    /// | `tokenizer.ggml.tokens` | every token by id; ids from the tokenizer's size up to `vocabularySize` are `[PAD<id>]` (the converter's padding) |
    /// | `tokenizer.ggml.token_type` | int32: 1 normal, 3 control (special added tokens), 4 user-defined (other added tokens), 5 unused (padding) |
    /// | `tokenizer.ggml.merges` | "left right" by rank |
    /// | `tokenizer.ggml.{bos,eos,unknown,padding}_token_id` | uint32, when `tokenizer_config.json` names the token (or `model.unk_token`) |
    /// | `tokenizer.ggml.add_space_prefix` | false, when `tokenizer_config.json` has `add_prefix_space` |
    /// | `tokenizer.ggml.add_bos_token`, `add_eos_token` | whether the post-processor puts BOS before / EOS after a text |
    /// | `tokenizer.chat_template` | the chat template, when there is one |
    ///
    /// Unlike the converter, a non-special added token that merely *looks* special (`<|…|>`) stays
    /// user-defined (4): the Hugging Face tokenizer does not treat it as special, and the file must
    /// encode and decode as it does.
    ///
    /// Before returning, the metadata is encoded as a GGUF file, read back with
    /// ``ByteLevelBPETokenizer/init(gguf:)`` and compared with the Hugging Face tokenizer (tokens,
    /// token types, added tokens, merges, pre-tokenizer, ignored merges, special ids, BOS/EOS
    /// added, chat template, and the encodings of a few probe texts and of every added token);
    /// any difference throws instead of returning metadata that would tokenize differently.
    ///
    /// - Parameters:
    ///   - directory: the Hugging Face model directory.
    ///   - vocabularySize: the model's embedding rows (`llama.vocab_size`); nil: the tokenizer's
    ///     size. Never smaller than the tokenizer.
    /// - Returns: the `tokenizer.*` keys in the converter's order.
    /// - Throws: ``LlamaExportError/missingSource(_:)`` without `tokenizer.json`;
    ///   ``LlamaExportError/unsupportedTokenizer(_:)`` when the tokenizer does not load or has
    ///   something GGUF cannot express: a normalizer, `add_prefix_space`, a pre-tokenizer
    ///   llama.cpp has no name for, other post-processor tokens than BOS/EOS, added-token options
    ///   (`single_word`, `lstrip`, `rstrip`, `normalized`), a `model.unk_token` standing in for
    ///   missing byte tokens, merges that do not survive the "left right" form, or more tokens
    ///   than `vocabularySize`.
    /// - Complexity: O(size of the tokenizer files).
    public static func ggufMetadata(fromHuggingFace directory: URL, vocabularySize: Int? = nil) throws -> GGUFMetadata {
        func fail(_ s: String) -> LlamaExportError { .unsupportedTokenizer(s) }
        let jsonURL = directory.appendingPathComponent("tokenizer.json")
        guard FileManager.default.fileExists(atPath: jsonURL.path) else {
            throw LlamaExportError.missingSource("\(directory.path) has no tokenizer.json (a GGUF file carries the tokenizer)")
        }
        let hf: ByteLevelBPETokenizer
        let root: SafeTensorsJSON
        var config: SafeTensorsJSON? = nil
        do {
            hf = try ByteLevelBPETokenizer(directory: directory)
            root = try ByteLevelBPETokenizer.parseJSON(try ByteLevelBPETokenizer.readFile(jsonURL), file: "tokenizer.json")
            let configURL = directory.appendingPathComponent("tokenizer_config.json")
            if FileManager.default.fileExists(atPath: configURL.path) {
                config = try ByteLevelBPETokenizer.parseJSON(try ByteLevelBPETokenizer.readFile(configURL),
                                                             file: "tokenizer_config.json")
            }
        } catch {
            throw fail("\(directory.path): \(error)")
        }

        // What GGUF cannot express.
        guard hf.normalization == .none else {
            throw fail("the normalizer \(hf.normalization) (llama.cpp does not normalize byte-level BPE input)")
        }
        guard !hf.addsPrefixSpace else { throw fail("ByteLevel add_prefix_space: true (no GGUF equivalent for byte-level BPE)") }
        var writesSpacePrefix = false
        if let v = config?["add_prefix_space"], !v.isNull {
            guard case .bool(let b) = v else { throw fail("tokenizer_config.json add_prefix_space is \(v.summary)") }
            guard !b else { throw fail("tokenizer_config.json add_prefix_space: true (no GGUF equivalent for byte-level BPE)") }
            writesSpacePrefix = true
        }
        guard let pre = llamaCppPreTokenizerNames.first(where: { name in
            (try? PreTokenizer.named(name)) == hf.preTokenizer && PreTokenizer.ignoresMerges(named: name) == hf.ignoresMerges
        }) else {
            throw fail("the pre-tokenizer \(hf.preTokenizer)\(hf.ignoresMerges ? " with ignore_merges" : "") has no llama.cpp "
                       + "tokenizer.ggml.pre equivalent (known: \(llamaCppPreTokenizerNames.joined(separator: ", ")))")
        }
        let addBOS = !hf.prefixIDs.isEmpty, addEOS = !hf.suffixIDs.isEmpty
        guard !addBOS || (hf.bosID.map { hf.prefixIDs == [$0] } ?? false) else {
            throw fail("the post-processor puts \(hf.prefixIDs) before a text (GGUF can only add the BOS token, "
                       + "\(hf.bosID.map { String($0) } ?? "none here"))")
        }
        guard !addEOS || (hf.eosID.map { hf.suffixIDs == [$0] } ?? false) else {
            throw fail("the post-processor puts \(hf.suffixIDs) after a text (GGUF can only add the EOS token, "
                       + "\(hf.eosID.map { String($0) } ?? "none here"))")
        }
        for t in hf.addedTokens where t.singleWord || t.stripsLeft || t.stripsRight || t.isNormalized {
            let options = [("single_word", t.singleWord), ("lstrip", t.stripsLeft), ("rstrip", t.stripsRight),
                           ("normalized", t.isNormalized)].filter(\.1).map(\.0)
            throw fail("the added token \(t.content.debugDescription) (id \(t.id)) has \(options.joined(separator: ", ")), which GGUF cannot express")
        }
        if let unk = root["model"]?["unk_token"], !unk.isNull {
            for b in 0..<256 where hf.id(for: String(Character(ByteLevelAlphabet.scalars[b]))) == nil {
                throw fail("model.unk_token stands in for the missing byte token of 0x\(String(b, radix: 16)) (llama.cpp has no such fallback)")
            }
        }

        // Tokens and types, padded to the model's vocabulary as the converter pads.
        let n = hf.tokens.count, size = vocabularySize ?? n
        guard n <= size else { throw fail("the tokenizer has \(n) tokens and the model's embedding only \(size) rows") }
        var tokens = hf.tokens
        var types = hf.tokenTypes.map(\.rawValue)
        for id in n..<size {
            tokens.append("[PAD\(id)]")
            types.append(ByteLevelBPETokenizer.TokenType.unused.rawValue)
        }

        // Merges as "left right", checked to split back into the same pair.
        guard case .array(let mergeValues)? = root["model"]?["merges"] else { throw fail("tokenizer.json has no model.merges") }
        let pairs: [(String, String)]
        do { pairs = try ByteLevelBPETokenizer.mergePairs(mergeValues) } catch { throw fail("\(error)") }
        var merges: [String] = []
        merges.reserveCapacity(pairs.count)
        for (rank, (a, b)) in pairs.enumerated() {
            let merge = a + " " + b
            let split = try? ByteLevelBPETokenizer.splitMerge(merge, rank: rank)
            guard let split, split.0 == a, split.1 == b else {
                throw fail("merge \(rank) [\(a.debugDescription), \(b.debugDescription)] cannot be written as \"left right\" (a space inside a token)")
            }
            merges.append(merge)
        }

        var m = GGUFMetadata()
        m["tokenizer.ggml.model"] = .string("gpt2")
        m["tokenizer.ggml.pre"] = .string(pre)
        m["tokenizer.ggml.tokens"] = .array(.string(tokens))
        m["tokenizer.ggml.token_type"] = .array(.int32(types))
        m["tokenizer.ggml.merges"] = .array(.string(merges))
        for (key, id) in [("bos", hf.bosID), ("eos", hf.eosID), ("unknown", hf.unknownID), ("padding", hf.paddingID)] {
            if let id { m["tokenizer.ggml.\(key)_token_id"] = .uint32(UInt32(id)) }
        }
        if writesSpacePrefix { m["tokenizer.ggml.add_space_prefix"] = .bool(false) }
        m["tokenizer.ggml.add_bos_token"] = .bool(addBOS)
        m["tokenizer.ggml.add_eos_token"] = .bool(addEOS)
        if let template = hf.chatTemplate { m["tokenizer.chat_template"] = .string(template) }

        // Read back through a GGUF file and compare with the Hugging Face tokenizer.
        let check: ByteLevelBPETokenizer
        do {
            var writer = GGUFWriter()
            writer.metadata = m
            check = try ByteLevelBPETokenizer(gguf: try GGUFReader(data: try writer.serialized()))
        } catch {
            throw fail("the GGUF tokenizer built from \(directory.path) does not load: \(error)")
        }
        var differences: [String] = []
        if check.tokens.count != size || Array(check.tokens.prefix(n)) != hf.tokens { differences.append("tokens") }
        if Array(check.tokenTypes.prefix(n)) != hf.tokenTypes { differences.append("token types") }
        if check.addedTokens.sorted(by: { $0.id < $1.id }) != hf.addedTokens.sorted(by: { $0.id < $1.id }) {
            differences.append("added tokens")
        }
        if check.mergeCount != hf.mergeCount || check.mergeCount != merges.count { differences.append("merges") }
        if check.preTokenizer != hf.preTokenizer { differences.append("pre-tokenizer \(check.preTokenizer) vs \(hf.preTokenizer)") }
        if check.ignoresMerges != hf.ignoresMerges { differences.append("ignore_merges") }
        if check.addsPrefixSpace != hf.addsPrefixSpace || check.normalization != hf.normalization { differences.append("normalization") }
        if check.bosID != hf.bosID || check.eosID != hf.eosID || check.unknownID != hf.unknownID || check.paddingID != hf.paddingID {
            differences.append("special token ids")
        }
        if check.prefixIDs != hf.prefixIDs || check.suffixIDs != hf.suffixIDs { differences.append("BOS/EOS added") }
        if check.chatTemplate != hf.chatTemplate { differences.append("chat template") }
        let probes = probeTexts + [hf.addedTokens.map(\.content).joined(separator: " x ")]
        if let text = probes.first(where: { check.encode($0) != hf.encode($0) }) {
            differences.append("the encoding of \(text.debugDescription)")
        }
        guard differences.isEmpty else {
            throw fail("the GGUF tokenizer built from \(directory.path) would differ in: " + differences.joined(separator: ", "))
        }
        return m
    }
}
