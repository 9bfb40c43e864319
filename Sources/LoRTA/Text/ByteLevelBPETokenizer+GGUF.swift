extension ByteLevelBPETokenizer {
    /// The tokenizer stored in a GGUF file's metadata: `tokenizer.ggml.model` must be `gpt2`
    /// (byte-level BPE); `tokenizer.ggml.tokens`, `tokenizer.ggml.merges` are required;
    /// `tokenizer.ggml.token_type`, `tokenizer.ggml.pre` (default `default`), the
    /// `*_token_id` keys, `add_bos_token` / `add_eos_token` and `tokenizer.chat_template` are
    /// read when present.
    /// - Throws: ``BPETokenizerError/unsupportedModel(_:)`` for another tokenizer model (e.g.
    ///   SentencePiece `llama`), ``BPETokenizerError/malformedJSON(file:reason:)`` is never
    ///   thrown here; a metadata value of the wrong type is
    ///   ``BPETokenizerError/unsupported(component:detail:)`` naming the key; the array
    ///   initializer's errors otherwise.
    public init(gguf reader: GGUFReader) throws(BPETokenizerError) {
        try self.init(ggufMetadata: reader.metadata)
    }

    /// The tokenizer described by GGUF metadata (the `tokenizer.*` keys; see ``init(gguf:)``).
    /// - Throws: as ``init(gguf:)``.
    /// - Complexity: O(total length of tokens and merges).
    public init(ggufMetadata m: GGUFMetadata) throws(BPETokenizerError) {
        func get<T>(_ key: String, _ body: (GGUFMetadata) throws(GGUFError) -> T) throws(BPETokenizerError) -> T? {
            guard m.contains(key: key) else { return nil }
            do { return try body(m) } catch {
                throw .unsupported(component: "GGUF metadata \(key)", detail: "\(error)")
            }
        }
        func id(_ key: String) throws(BPETokenizerError) -> Int32? {
            guard let v = try get(key, { (m) throws(GGUFError) in try m.int(forKey: key) }) else { return nil }
            guard let i = Int32(exactly: v) else {
                throw .unsupported(component: "GGUF metadata \(key)", detail: "\(v) is not a token id")
            }
            return i
        }
        guard let model = try get("tokenizer.ggml.model", { (m) throws(GGUFError) in try m.string(forKey: "tokenizer.ggml.model") }) else {
            throw .unsupported(component: "GGUF metadata", detail: "no tokenizer.ggml.model (the file has no tokenizer)")
        }
        guard model == "gpt2" else { throw .unsupportedModel("GGUF tokenizer.ggml.model \"\(model)\" (supported: \"gpt2\", byte-level BPE)") }
        guard let tokens = try get("tokenizer.ggml.tokens", { (m) throws(GGUFError) in try m.stringArray(forKey: "tokenizer.ggml.tokens") }) else {
            throw .unsupported(component: "GGUF metadata", detail: "no tokenizer.ggml.tokens")
        }
        guard let merges = try get("tokenizer.ggml.merges", { (m) throws(GGUFError) in try m.stringArray(forKey: "tokenizer.ggml.merges") }) else {
            throw .unsupported(component: "GGUF metadata", detail: "no tokenizer.ggml.merges")
        }
        let types = try get("tokenizer.ggml.token_type", { (m) throws(GGUFError) in try m.int32Array(forKey: "tokenizer.ggml.token_type") })
        let pre = try get("tokenizer.ggml.pre", { (m) throws(GGUFError) in try m.string(forKey: "tokenizer.ggml.pre") }) ?? "default"
        let template = try get("tokenizer.chat_template", { (m) throws(GGUFError) in try m.string(forKey: "tokenizer.chat_template") })
        let addBOS = try get("tokenizer.ggml.add_bos_token", { (m) throws(GGUFError) in try m.bool(forKey: "tokenizer.ggml.add_bos_token") }) ?? false
        let addEOS = try get("tokenizer.ggml.add_eos_token", { (m) throws(GGUFError) in try m.bool(forKey: "tokenizer.ggml.add_eos_token") }) ?? false
        try self.init(tokens: tokens, merges: merges, tokenTypes: types, preTokenizer: pre,
                      bosID: try id("tokenizer.ggml.bos_token_id"), eosID: try id("tokenizer.ggml.eos_token_id"),
                      unknownID: try id("tokenizer.ggml.unknown_token_id"),
                      paddingID: try id("tokenizer.ggml.padding_token_id"),
                      addsBOS: addBOS, addsEOS: addEOS, chatTemplate: template)
    }
}
