import Foundation

extension BertModel {
    /// Tokenizer files ``save(to:copyingFilesFrom:overwrite:)`` copies from the source directory
    /// when present.
    public static let tokenizerFileNames = ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]

    /// `__metadata__` entry that marks a `model.safetensors` written by
    /// ``save(to:copyingFilesFrom:overwrite:)`` (so a later export may replace it).
    public static let exportMetadataKey = "exported_by"
    /// The value of ``exportMetadataKey`` in an export's `__metadata__`.
    public static let exportMetadataValue = "lorta"

    /// The tensors of the model under the names `transformers` gives a `BertModel`
    /// (`embeddings.word_embeddings.weight`, `encoder.layer.0.attention.self.query.weight`, …;
    /// the fused Q/K/V weight and bias split back into query, key and value), in checkpoint order.
    /// - Complexity: O(parameter count) (copies the Q/K/V slices).
    public func namedTensors() throws -> [(name: String, tensor: Tensor)] {
        let d = configuration.hiddenSize
        var out: [(String, Tensor)] = [
            ("embeddings.word_embeddings.weight", wordEmbeddings),
            ("embeddings.position_embeddings.weight", positionEmbeddings),
            ("embeddings.token_type_embeddings.weight", tokenTypeEmbeddings),
            ("embeddings.LayerNorm.weight", embeddingNormWeight),
            ("embeddings.LayerNorm.bias", embeddingNormBias),
        ]
        for (l, w) in layers.enumerated() {
            let p = "encoder.layer.\(l)."
            let qkv = w.queryKeyValueWeight.scalars, qkvBias = w.queryKeyValueBias.scalars
            for (m, name) in ["query", "key", "value"].enumerated() {
                out.append((p + "attention.self.\(name).weight", try Tensor(Array(qkv[(m * d * d)..<((m + 1) * d * d)]), shape: [d, d])))
                out.append((p + "attention.self.\(name).bias", try Tensor(Array(qkvBias[(m * d)..<((m + 1) * d)]), shape: [d])))
            }
            out += [
                (p + "attention.output.dense.weight", w.attentionOutputWeight),
                (p + "attention.output.dense.bias", w.attentionOutputBias),
                (p + "attention.output.LayerNorm.weight", w.attentionNormWeight),
                (p + "attention.output.LayerNorm.bias", w.attentionNormBias),
                (p + "intermediate.dense.weight", w.intermediateWeight),
                (p + "intermediate.dense.bias", w.intermediateBias),
                (p + "output.dense.weight", w.outputWeight),
                (p + "output.dense.bias", w.outputBias),
                (p + "output.LayerNorm.weight", w.outputNormWeight),
                (p + "output.LayerNorm.bias", w.outputNormBias),
            ]
        }
        return out
    }

    /// A `config.json` for this architecture that `transformers` loads as a `BertModel`
    /// (`architectures` ["BertModel"], `model_type` "bert", the sizes, `hidden_act` "gelu",
    /// absolute positions, `layer_norm_eps`, and BERT's defaults for dropout, initializer range
    /// and `pad_token_id` 0).
    public func configurationJSON() throws -> Data {
        let c = configuration
        let object: [String: Any] = [
            "architectures": ["BertModel"], "model_type": "bert", "vocab_size": c.vocabularySize,
            "hidden_size": c.hiddenSize, "num_hidden_layers": c.layerCount, "num_attention_heads": c.headCount,
            "intermediate_size": c.intermediateSize, "max_position_embeddings": c.maxPositionEmbeddings,
            "type_vocab_size": c.typeVocabularySize,
            "layer_norm_eps": Double(String(c.layerNormEpsilon)) ?? Double(c.layerNormEpsilon),
            "hidden_act": "gelu", "position_embedding_type": "absolute", "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02, "pad_token_id": 0,
        ]
        return try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    }

    /// Exports the model (typically ``merged(with:)``) as a Hugging Face model directory that
    /// `transformers.AutoModel.from_pretrained` loads as a plain `BertModel`, and that
    /// ``init(directory:)`` reads back bit for bit:
    ///
    /// - `model.safetensors`: every weight as F32 under ``namedTensors()``'s names, metadata
    ///   `format: pt` and ``exportMetadataKey``. With `source`, the tensors of
    ///   `source/model.safetensors` this encoder does not use (`pooler.dense.*`,
    ///   `embeddings.position_ids`) are carried through unchanged (name, dtype, bytes; a
    ///   `bert.` prefix is removed, tensors outside it such as a `classifier.*` head are
    ///   dropped). Without a source there is no pooler: `transformers` then initialises it
    ///   randomly (with a warning); `last_hidden_state` and mean-pooled embeddings do not use it.
    /// - `config.json`: with `source`, its `config.json` verbatim (it must describe this
    ///   architecture); otherwise ``configurationJSON()``.
    /// - With `source`: those of ``tokenizerFileNames`` that exist there.
    ///
    /// Nothing is written until every check passed (every weight finite, the source
    /// consistent). The directory is built beside `directory` and swapped in as a whole
    /// (``AtomicFileWriter/replaceDirectory(at:_:)``): it ends up holding exactly the files
    /// above — none of an earlier export's or of a replaced directory's — and a failure leaves
    /// the previous directory as it was.
    /// - Parameters:
    ///   - directory: created (with missing parents) if needed. If it holds files, it must be
    ///     an earlier export (its `model.safetensors` carries ``exportMetadataKey`` and it holds
    ///     nothing but export files), or `overwrite` must be true.
    ///   - source: the model directory the weights came from (e.g. `assets/all-MiniLM-L6-v2`);
    ///     its files are read before anything is written, so it may be `directory` itself.
    ///   - overwrite: allow replacing a non-empty directory that is not an earlier export (as a
    ///     whole: its other files are removed).
    /// - Throws: ``BertFileError/directoryNotEmpty(path:)``, ``BertFileError/missingFile(_:)``
    ///   (source `config.json`), ``BertFileError/configurationMismatch(_:)`` (source config or
    ///   carried tensor shapes differ from the model), ``BertError`` for an invalid source
    ///   `config.json`, ``BertFileError/nonFinite(tensor:)``,
    ///   ``BertFileError/fileSystem(path:reason:)``, ``SafeTensorsError``.
    /// - Complexity: O(parameter count) time; holds one encoded copy of the weights in memory.
    public func save(to directory: URL, copyingFilesFrom source: URL? = nil, overwrite: Bool = false) throws {
        let fm = FileManager.default
        let weightsName = "model.safetensors", configName = "config.json"
        let exportNames = Set([weightsName, configName] + Self.tokenizerFileNames)

        // 1. Everything from the source, checked.
        var configData = try configurationJSON()
        var carried: [(name: String, entry: SafeTensorsEntry, bytes: Data)] = []
        var tokenizerFiles: [(String, Data)] = []
        if let source {
            let sourceConfig = source.appendingPathComponent(configName)
            try bertFilesRequire(sourceConfig)
            do { configData = try RegularFile.read(sourceConfig) } catch {
                throw BertFileError.fileSystem(path: sourceConfig.path, reason: error.reason)
            }
            let parsed = try BertConfiguration(json: configData, path: sourceConfig.path)
            guard parsed == configuration else {
                throw BertFileError.configurationMismatch("\(sourceConfig.path) describes \(parsed), the model is \(configuration)")
            }
            let sourceWeights = source.appendingPathComponent(weightsName)
            if fm.fileExists(atPath: sourceWeights.path) {
                let reader = try SafeTensorsReader(contentsOf: sourceWeights)
                let prefix = reader.entry("embeddings.word_embeddings.weight") == nil &&
                    reader.entry("bert.embeddings.word_embeddings.weight") != nil ? "bert." : ""
                let known = Set(try namedTensors().map(\.name))
                for e in reader.entries where e.name.hasPrefix(prefix) {
                    let name = String(e.name.dropFirst(prefix.count))
                    if known.contains(name) { continue }
                    // The pooler is d × d; anything else is carried as it is.
                    if name == "pooler.dense.weight" || name == "pooler.dense.bias" {
                        let expected = name.hasSuffix("weight") ? [configuration.hiddenSize, configuration.hiddenSize] : [configuration.hiddenSize]
                        guard e.shape == expected else {
                            throw BertFileError.configurationMismatch("\(e.name) has shape \(e.shape), the model needs \(expected)")
                        }
                    }
                    carried.append((name, e, try reader.rawBytes(e.name)))
                }
            }
            for name in Self.tokenizerFileNames {
                let url = source.appendingPathComponent(name)
                guard fm.fileExists(atPath: url.path) else { continue }
                do { tokenizerFiles.append((name, try RegularFile.read(url))) } catch {
                    throw BertFileError.fileSystem(path: url.path, reason: error.reason)
                }
            }
        }

        // 2. The weights, encoded; every value must be finite.
        var writer = SafeTensorsWriter()
        writer.metadata = ["format": "pt", Self.exportMetadataKey: Self.exportMetadataValue]
        writer.requiresFiniteValues = true
        do {
            for (name, t) in try namedTensors() { try writer.add(name, t) }
            for c in carried { try writer.addRaw(c.name, dtype: c.entry.dtype, shape: c.entry.shape, bytes: c.bytes) }
        } catch SafeTensorsError.unrepresentableValue(let name, _, _, _) {
            throw BertFileError.nonFinite(tensor: name)
        }

        // 3. The target directory.
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: directory.path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw BertFileError.fileSystem(path: directory.path, reason: "exists and is not a directory")
            }
            let contents: [String]
            do { contents = try fm.contentsOfDirectory(atPath: directory.path) } catch {
                throw BertFileError.fileSystem(path: directory.path, reason: error.localizedDescription)
            }
            if !contents.isEmpty {
                let earlierExport = Set(contents).isSubset(of: exportNames) && contents.contains(weightsName)
                    && (try? SafeTensorsReader(contentsOf: directory.appendingPathComponent(weightsName)))?
                        .metadata[Self.exportMetadataKey] == Self.exportMetadataValue
                guard earlierExport || overwrite else { throw BertFileError.directoryNotEmpty(path: directory.path) }
            }
        }

        // 4. Write: a new directory, swapped in as a whole.
        do {
            try AtomicFileWriter.replaceDirectory(at: directory) { staging in
                try writer.write(to: staging.appendingPathComponent(weightsName))
                try AtomicFileWriter.write(configData, to: staging.appendingPathComponent(configName))
                for (name, data) in tokenizerFiles { try AtomicFileWriter.write(data, to: staging.appendingPathComponent(name)) }
            }
        } catch let f as AtomicFileWriter.Failure {
            throw BertFileError.fileSystem(path: f.path, reason: "\(f.operation): \(f.reason)")
        }
    }
}
