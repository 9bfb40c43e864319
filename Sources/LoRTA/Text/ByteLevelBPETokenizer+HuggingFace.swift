import Foundation

/// Reading Hugging Face `tokenizer.json` (+ `tokenizer_config.json`, `chat_template.jinja`).
extension ByteLevelBPETokenizer {
    /// Reads a model folder: `tokenizer.json` (required), `tokenizer_config.json` (optional: special
    /// tokens and chat template) and `chat_template.jinja` (optional; where transformers ≥ 4.50
    /// saves the chat template, preferred over the one in `tokenizer_config.json`).
    /// - Throws: ``BPETokenizerError`` when `tokenizer.json` is missing, unreadable, malformed or
    ///   uses a component we do not implement.
    public init(directory: URL) throws(BPETokenizerError) {
        let json = try Self.readFile(directory.appendingPathComponent("tokenizer.json"))
        let configURL = directory.appendingPathComponent("tokenizer_config.json")
        let config = FileManager.default.fileExists(atPath: configURL.path) ? try Self.readFile(configURL) : nil
        let templateURL = directory.appendingPathComponent("chat_template.jinja")
        var template: String? = nil
        if FileManager.default.fileExists(atPath: templateURL.path) {
            let data = try Self.readFile(templateURL)
            guard let text = String(data: data, encoding: .utf8) else {
                throw .unreadableFile(path: templateURL.path, reason: "not valid UTF-8")
            }
            template = text
        }
        try self.init(tokenizerJSON: json, tokenizerConfig: config, chatTemplate: template)
    }

    /// Reads `tokenizer.json` and, optionally, `tokenizer_config.json`.
    /// - Throws: ``BPETokenizerError`` (see ``init(tokenizerJSON:tokenizerConfig:chatTemplate:)``).
    public init(tokenizerJSONURL: URL, tokenizerConfigURL: URL? = nil) throws(BPETokenizerError) {
        let json = try Self.readFile(tokenizerJSONURL)
        let config = try tokenizerConfigURL.map { (url) throws(BPETokenizerError) in try Self.readFile(url) }
        try self.init(tokenizerJSON: json, tokenizerConfig: config)
    }

    /// Builds a tokenizer from the contents of `tokenizer.json` and, optionally,
    /// `tokenizer_config.json`.
    ///
    /// Supported (anything else is refused with ``BPETokenizerError/unsupported(component:detail:)``
    /// or ``BPETokenizerError/unsupportedModel(_:)`` naming it):
    /// - `model`: `BPE` with `vocab` and `merges` (either "a b" strings or ["a", "b"] pairs),
    ///   `unk_token`, `fuse_unk`, `ignore_merges`; no dropout, no subword prefix/suffix, no
    ///   `byte_fallback`.
    /// - `added_tokens` with their `special`, `single_word`, `lstrip`, `rstrip`, `normalized` flags.
    /// - `normalizer`: none or `NFC`.
    /// - `pre_tokenizer`: `ByteLevel` (with `use_regex`, and `add_prefix_space` when it is the
    ///   only step), or a `Sequence` of `Digits`, `Split` with one of the patterns of
    ///   ``PreTokenizer/Rule`` (behaviour `Isolated`, not inverted), ending with `ByteLevel`.
    /// - `post_processor`: none, `ByteLevel`, `TemplateProcessing` (its `single` template gives
    ///   ``prefixIDs`` and ``suffixIDs``), or a `Sequence` of these.
    /// - `decoder`: `ByteLevel`.
    /// - `tokenizer_config.json`: `bos_token`, `eos_token`, `unk_token`, `pad_token` (strings or
    ///   `{"content": …}` objects) and `chat_template` (a string, or a list of named templates
    ///   from which "default" is taken). `add_bos_token`/`add_eos_token` are not read:
    ///   transformers 5 takes the added tokens from the post-processor, and so do we.
    ///
    /// - Parameters:
    ///   - tokenizerJSON: the bytes of `tokenizer.json`.
    ///   - tokenizerConfig: the bytes of `tokenizer_config.json`, when there is one.
    ///   - chatTemplate: overrides the configuration's chat template.
    /// - Complexity: O(size of the files).
    public init(tokenizerJSON: Data, tokenizerConfig: Data? = nil, chatTemplate: String? = nil) throws(BPETokenizerError) {
        let root = try Self.parseJSON(tokenizerJSON, file: "tokenizer.json")
        guard case .object = root else { throw .malformedJSON(file: "tokenizer.json", reason: "the top level is not an object") }
        let file = "tokenizer.json"

        // Model.
        guard let model = root["model"], case .object = model else {
            throw .malformedJSON(file: file, reason: "no \"model\" object")
        }
        let modelType = model["type"]?.stringValue
        if modelType != "BPE" {
            guard modelType == nil, model["merges"] != nil else {
                throw .unsupportedModel(modelType ?? (model["vocab"] != nil ? "untyped model without merges" : "missing type"))
            }
        }
        guard let vocabValue = model["vocab"] else { throw .malformedJSON(file: file, reason: "model.vocab is missing") }
        guard case .object(let vocabMembers) = vocabValue else {
            throw .malformedJSON(file: file, reason: "model.vocab is not an object")
        }
        guard let mergesValue = model["merges"] else { throw .malformedJSON(file: file, reason: "model.merges is missing") }
        guard case .array(let mergeValues) = mergesValue else {
            throw .malformedJSON(file: file, reason: "model.merges is not an array")
        }
        if let dropout = model["dropout"], !dropout.isNull {
            guard let d = dropout.doubleValue else { throw .malformedJSON(file: file, reason: "model.dropout is not a number") }
            if d != 0 { throw .unsupported(component: "model", detail: "BPE dropout \(d)") }
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let v = model[key], !v.isNull, v.stringValue != "" {
                throw .unsupported(component: "model", detail: "\(key) \(v.summary)")
            }
        }
        if try Self.bool(model, "byte_fallback", file: file) == true {
            throw .unsupported(component: "model", detail: "byte_fallback (a byte-level BPE never needs it)")
        }
        let fusesUnknown = try Self.bool(model, "fuse_unk", file: file) ?? false
        let ignoresMerges = try Self.bool(model, "ignore_merges", file: file) ?? false

        // Tokens by id: the model's vocabulary, then the added tokens.
        var byID: [Int: String] = [:]
        byID.reserveCapacity(vocabMembers.count)
        for (token, value) in vocabMembers {
            guard case .integer(let id) = value, id >= 0, id < Int(Int32.max) else {
                throw .malformedJSON(file: file, reason: "model.vocab[\(token.debugDescription)] is \(value.summary), not a token id")
            }
            if let other = byID[id] { throw .conflictingTokenID(id, first: other, second: token) }
            byID[id] = token
        }
        var added: [AddedToken] = []
        if let addedValue = root["added_tokens"], !addedValue.isNull {
            guard case .array(let items) = addedValue else {
                throw .malformedJSON(file: file, reason: "added_tokens is not an array")
            }
            for (i, item) in items.enumerated() {
                guard case .object = item, let content = item["content"]?.stringValue,
                      case .integer(let id)? = item["id"], id >= 0, id < Int(Int32.max) else {
                    throw .malformedJSON(file: file, reason: "added_tokens[\(i)] needs a string \"content\" and an integer \"id\"")
                }
                if content.isEmpty { continue }  // ignored by `tokenizers` too
                if let other = byID[id], other.utf8.elementsEqual(content.utf8) == false {
                    throw .conflictingTokenID(id, first: other, second: content)
                }
                byID[id] = content
                let special = try Self.bool(item, "special", file: file) ?? false
                added.append(AddedToken(
                    content: content, id: Int32(id), isSpecial: special,
                    singleWord: try Self.bool(item, "single_word", file: file) ?? false,
                    stripsLeft: try Self.bool(item, "lstrip", file: file) ?? false,
                    stripsRight: try Self.bool(item, "rstrip", file: file) ?? false,
                    isNormalized: try Self.bool(item, "normalized", file: file) ?? !special))
            }
        }
        guard let maxID = byID.keys.max() else { throw .emptyVocabulary }
        if maxID != byID.count - 1 {  // a gap; found before allocating for maxID + 1 tokens
            var gap = 0
            while byID[gap] != nil { gap += 1 }
            throw .missingTokenID(gap)
        }
        var tokens: [String] = []
        tokens.reserveCapacity(maxID + 1)
        for id in 0...maxID {
            guard let t = byID[id] else { throw .missingTokenID(id) }
            tokens.append(t)
        }
        var types = [TokenType](repeating: .normal, count: tokens.count)
        for t in added { types[Int(t.id)] = t.isSpecial ? .control : .userDefined }

        let pairs = try Self.mergePairs(mergeValues)

        var unknownPieceID: Int32? = nil
        if let unk = model["unk_token"], !unk.isNull {
            guard let name = unk.stringValue else { throw .malformedJSON(file: file, reason: "model.unk_token is not a string") }
            guard let id = vocabMembers.first(where: { $0.key == name }).flatMap({ $0.value.intValue }) else {
                throw .unknownSpecialToken(name: "model.unk_token", token: name)
            }
            unknownPieceID = Int32(id)
        }

        let normalization = try Self.normalization(root["normalizer"])
        let (preTokenizer, addsPrefixSpace) = try Self.preTokenizer(root["pre_tokenizer"])
        let (prefix, suffix) = try Self.postProcessor(root["post_processor"])
        try Self.checkDecoder(root["decoder"])
        for key in ["truncation", "padding"] {
            if let v = root[key], !v.isNull {
                throw .unsupported(component: key, detail: "\(v.summary) (encode one text at a time without it)")
            }
        }

        // tokenizer_config.json
        func lookUp(_ name: String, _ content: String) throws(BPETokenizerError) -> Int32 {
            guard let i = tokens.firstIndex(where: { $0.utf8.elementsEqual(content.utf8) }) else {
                throw .unknownSpecialToken(name: name, token: content)
            }
            return Int32(i)
        }
        var ids: [String: Int32] = [:]
        var template = chatTemplate
        if let configData = tokenizerConfig {
            let configFile = "tokenizer_config.json"
            let config = try Self.parseJSON(configData, file: configFile)
            guard case .object = config else { throw .malformedJSON(file: configFile, reason: "the top level is not an object") }
            for name in ["bos_token", "eos_token", "unk_token", "pad_token"] {
                guard let v = config[name], !v.isNull else { continue }
                let content: String
                if let s = v.stringValue {
                    content = s
                } else if case .object = v, let s = v["content"]?.stringValue {
                    content = s
                } else {
                    throw .malformedJSON(file: configFile, reason: "\(name) is \(v.summary), not a token")
                }
                ids[name] = try lookUp(name, content)
            }
            if template == nil, let t = config["chat_template"], !t.isNull {
                if let s = t.stringValue {
                    template = s
                } else if case .array(let named) = t {
                    template = named.first(where: { $0["name"]?.stringValue == "default" })?["template"]?.stringValue
                } else {
                    throw .malformedJSON(file: configFile, reason: "chat_template is \(t.summary)")
                }
            }
        }
        try self.init(tokens: tokens, tokenTypes: types, mergePairs: pairs, addedTokens: added,
                      preTokenizer: preTokenizer, addsPrefixSpace: addsPrefixSpace, ignoresMerges: ignoresMerges,
                      normalization: normalization, unknownPieceID: unknownPieceID, fusesUnknown: fusesUnknown,
                      bosID: ids["bos_token"], eosID: ids["eos_token"], unknownID: ids["unk_token"] ?? unknownPieceID,
                      paddingID: ids["pad_token"],
                      prefixIDs: try Self.resolve(prefix, tokens: tokens),
                      suffixIDs: try Self.resolve(suffix, tokens: tokens), chatTemplate: template)
    }

    // MARK: Components

    /// The pairs of `model.merges`, by rank: "a b" strings (split as llama.cpp splits them) or
    /// `["a", "b"]` arrays (the form `tokenizers` ≥ 0.20 writes). O(total length).
    static func mergePairs(_ mergeValues: [SafeTensorsJSON]) throws(BPETokenizerError) -> [(String, String)] {
        var pairs: [(String, String)] = []
        pairs.reserveCapacity(mergeValues.count)
        for (rank, value) in mergeValues.enumerated() {
            switch value {
            case .string(let s):
                pairs.append(try Self.splitMerge(s, rank: rank))
            case .array(let parts):
                guard parts.count == 2, let a = parts[0].stringValue, let b = parts[1].stringValue else {
                    throw .malformedMerge(rank: rank, merge: "[" + parts.map(\.summary).joined(separator: ", ") + "]")
                }
                pairs.append((a, b))
            default:
                throw .malformedMerge(rank: rank, merge: value.summary)
            }
        }
        return pairs
    }

    /// The `Split` patterns we implement, as written in tokenizer.json files.
    static let knownSplitPatterns: [String: PreTokenizer.Rule] = [
        #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#: .gpt2,
        #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"#: .gpt2,
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#: .llama3,
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#: .qwen2,
        #"[\p{P}\$\+<=>\^~\|]+"#: .punctuationRuns,
        #"\p{N}+"#: .digits(individually: false),
        #"\p{N}"#: .digits(individually: true),
        #"[0-9][0-9][0-9]"#: .asciiDigitTriples,
    ]

    private static func normalization(_ value: SafeTensorsJSON?) throws(BPETokenizerError) -> Normalization {
        guard let value, !value.isNull else { return .none }
        switch value["type"]?.stringValue {
        case "NFC":
            return .nfc
        case "Sequence":
            guard case .array(let items)? = value["normalizers"] else {
                throw .malformedJSON(file: "tokenizer.json", reason: "normalizer Sequence without \"normalizers\"")
            }
            if items.isEmpty { return .none }
            if items.count == 1 { return try normalization(items[0]) }
            throw .unsupported(component: "normalizer", detail: "a Sequence of \(items.count) normalizers")
        case let type:
            throw .unsupported(component: "normalizer", detail: type ?? value.summary)
        }
    }

    private static func preTokenizer(_ value: SafeTensorsJSON?) throws(BPETokenizerError) -> (PreTokenizer, Bool) {
        guard let value, !value.isNull else {
            throw .unsupported(component: "pre_tokenizer", detail: "none (a byte-level BPE needs a ByteLevel pre-tokenizer)")
        }
        let steps: [SafeTensorsJSON]
        if value["type"]?.stringValue == "Sequence" {
            guard case .array(let items)? = value["pretokenizers"] else {
                throw .malformedJSON(file: "tokenizer.json", reason: "pre_tokenizer Sequence without \"pretokenizers\"")
            }
            steps = items
        } else {
            steps = [value]
        }
        var rules: [PreTokenizer.Rule] = []
        var sawByteLevel = false
        var addsPrefixSpace = false
        for step in steps {
            let type = step["type"]?.stringValue
            if sawByteLevel {
                throw .unsupported(component: "pre_tokenizer", detail: "\(type ?? step.summary) after ByteLevel")
            }
            switch type {
            case "ByteLevel":
                sawByteLevel = true
                addsPrefixSpace = try bool(step, "add_prefix_space", file: "tokenizer.json") ?? false
                if addsPrefixSpace && !rules.isEmpty {
                    throw .unsupported(component: "pre_tokenizer", detail: "ByteLevel with add_prefix_space after other pre-tokenizers")
                }
                if try bool(step, "use_regex", file: "tokenizer.json") ?? true { rules.append(.gpt2) }
            case "Digits":
                rules.append(.digits(individually: try bool(step, "individual_digits", file: "tokenizer.json") ?? false))
            case "Split":
                let pattern = step["pattern"]
                guard let regex = pattern?["Regex"]?.stringValue else {
                    throw .unsupported(component: "pre_tokenizer", detail: "Split with pattern \(pattern?.summary ?? "missing")")
                }
                let behavior = step["behavior"]?.stringValue
                guard behavior == "Isolated", try bool(step, "invert", file: "tokenizer.json") != true else {
                    throw .unsupported(component: "pre_tokenizer",
                                       detail: "Split with behavior \(behavior ?? "missing")\(try bool(step, "invert", file: "tokenizer.json") == true ? ", inverted" : "") (only Isolated)")
                }
                guard let rule = knownSplitPatterns[regex] else {
                    throw .unsupported(component: "pre_tokenizer", detail: "Split pattern \(regex.debugDescription)")
                }
                rules.append(rule)
            default:
                throw .unsupported(component: "pre_tokenizer", detail: type ?? step.summary)
            }
        }
        guard sawByteLevel else {
            throw .unsupported(component: "pre_tokenizer", detail: "no ByteLevel step (not a byte-level BPE)")
        }
        return (PreTokenizer(rules: rules), addsPrefixSpace)
    }

    /// Names of the special tokens put before and after the text by the post-processor: either
    /// an id (from `special_tokens`) or a name to look up.
    private static func postProcessor(_ value: SafeTensorsJSON?) throws(BPETokenizerError) -> ([SpecialTokenReference], [SpecialTokenReference]) {
        guard let value, !value.isNull else { return ([], []) }
        switch value["type"]?.stringValue {
        case "ByteLevel":
            return ([], [])
        case "Sequence":
            guard case .array(let items)? = value["processors"] else {
                throw .malformedJSON(file: "tokenizer.json", reason: "post_processor Sequence without \"processors\"")
            }
            var prefix: [SpecialTokenReference] = [], suffix: [SpecialTokenReference] = []
            for item in items {
                let (p, s) = try postProcessor(item)
                if !(p.isEmpty && s.isEmpty) && !(prefix.isEmpty && suffix.isEmpty) {
                    throw .unsupported(component: "post_processor", detail: "several processors that add tokens")
                }
                prefix += p
                suffix += s
            }
            return (prefix, suffix)
        case "TemplateProcessing":
            guard case .array(let single)? = value["single"] else {
                throw .malformedJSON(file: "tokenizer.json", reason: "TemplateProcessing without a \"single\" template")
            }
            var prefix: [SpecialTokenReference] = [], suffix: [SpecialTokenReference] = []
            var sawSequence = false
            for piece in single {
                if let seq = piece["Sequence"] {
                    guard seq["id"]?.stringValue == "A", !sawSequence else {
                        throw .unsupported(component: "post_processor", detail: "TemplateProcessing single template \(value["single"]?.summary ?? "")")
                    }
                    sawSequence = true
                } else if let name = piece["SpecialToken"]?["id"]?.stringValue {
                    var refs: [SpecialTokenReference] = [.name(name)]
                    if let entry = value["special_tokens"]?[name], case .array(let ids)? = entry["ids"] {
                        refs = try ids.map { (v) throws(BPETokenizerError) in
                            guard let i = v.intValue else {
                                throw .malformedJSON(file: "tokenizer.json", reason: "special_tokens[\(name.debugDescription)].ids")
                            }
                            return .id(i)
                        }
                    }
                    if sawSequence { suffix += refs } else { prefix += refs }
                } else {
                    throw .malformedJSON(file: "tokenizer.json", reason: "TemplateProcessing piece \(piece.summary)")
                }
            }
            guard sawSequence else {
                throw .unsupported(component: "post_processor", detail: "TemplateProcessing without $A")
            }
            return (prefix, suffix)
        case let type:
            throw .unsupported(component: "post_processor", detail: type ?? value.summary)
        }
    }

    enum SpecialTokenReference {
        case id(Int)
        case name(String)
    }

    private static func resolve(_ refs: [SpecialTokenReference], tokens: [String]) throws(BPETokenizerError) -> [Int32] {
        try refs.map { (ref) throws(BPETokenizerError) -> Int32 in
            switch ref {
            case .id(let i):
                guard i >= 0, i < tokens.count else {
                    throw .specialTokenIDOutOfRange(name: "post-processor", id: Int32(clamping: i), vocabularySize: tokens.count)
                }
                return Int32(i)
            case .name(let n):
                guard let i = tokens.firstIndex(where: { $0.utf8.elementsEqual(n.utf8) }) else {
                    throw .unknownSpecialToken(name: "post-processor", token: n)
                }
                return Int32(i)
            }
        }
    }

    private static func checkDecoder(_ value: SafeTensorsJSON?) throws(BPETokenizerError) {
        guard let value, !value.isNull else {
            throw .unsupported(component: "decoder", detail: "none (a byte-level BPE needs the ByteLevel decoder)")
        }
        let type = value["type"]?.stringValue
        guard type == "ByteLevel" else { throw .unsupported(component: "decoder", detail: type ?? value.summary) }
    }

    // MARK: JSON helpers

    static func readFile(_ url: URL) throws(BPETokenizerError) -> Data {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw .fileNotFound(path: url.path)
        }
        do {
            return try RegularFile.read(url)
        } catch {
            throw .unreadableFile(path: url.path, reason: error.reason)
        }
    }

    static func parseJSON(_ data: Data, file: String) throws(BPETokenizerError) -> SafeTensorsJSON {
        var iterator = data.makeIterator()
        var utf8 = UTF8()
        decoding: while true {
            switch utf8.decode(&iterator) {
            case .scalarValue: continue
            case .emptyInput: break decoding
            case .error: throw .malformedJSON(file: file, reason: "not valid UTF-8")
            }
        }
        let result = data.withUnsafeBytes { raw -> Result<SafeTensorsJSON, SafeTensorsJSON.ParseError> in
            do throws(SafeTensorsJSON.ParseError) {
                return .success(try SafeTensorsJSON.parse(raw))
            } catch {
                return .failure(error)
            }
        }
        switch result {
        case .success(let value):
            return value
        case .failure(let error):
            switch error {
            case .syntax(let offset, let reason):
                throw .malformedJSON(file: file, reason: "\(reason) at byte \(offset)")
            case .duplicateKey(let key):
                throw .malformedJSON(file: file, reason: "the key \(key.debugDescription) appears twice in one object")
            }
        }
    }

    /// An optional boolean field; present but not a boolean is an error.
    static func bool(_ object: SafeTensorsJSON, _ key: String, file: String) throws(BPETokenizerError) -> Bool? {
        guard let v = object[key], !v.isNull else { return nil }
        guard case .bool(let b) = v else { throw .malformedJSON(file: file, reason: "\(key) is \(v.summary), not a boolean") }
        return b
    }
}

extension SafeTensorsJSON {
    /// The member `key` of an object (nil for other values or a missing key).
    subscript(key: String) -> SafeTensorsJSON? {
        guard case .object(let members) = self else { return nil }
        return members.first(where: { $0.key == key })?.value
    }

    var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    var intValue: Int? {
        if case .integer(let i) = self { return i }
        return nil
    }

    var doubleValue: Double? {
        switch self {
        case .integer(let i): return Double(i)
        case .number(let t): return Double(t)
        default: return nil
        }
    }

    var isNull: Bool {
        if case .null = self { return true }
        return false
    }
}
