import Foundation

// Files of a BERT fine-tune:
//
//   <adapter dir>/adapter_model.safetensors + adapter_config.json
//       LoRA in Hugging Face PEFT's layout (PEFT's `PeftModel.from_pretrained` loads it on a
//       `transformers` BertModel):
//           base_model.model.encoder.layer.{l}.attention.self.{query,key,value}.lora_{A,B}.weight
//           base_model.model.encoder.layer.{l}.attention.output.dense.lora_{A,B}.weight
//       lora_A `r × d`, lora_B `d × r`, F32. LoRTA in the reference layout (see LoRTAFiles.swift).
//   classifier.safetensors   the classification head: "weight" [C, d], "bias" [C], F32.
//   <export dir>/model.safetensors + config.json   a merged model (BertExport.swift).

/// Errors reading or writing the adapter, head and export files of a BERT model. Cases about
/// one tensor name it. (Problems of `adapter_config.json` itself are
/// ``AdapterConfigurationError``; problems of the safetensors framing ``SafeTensorsError``.)
public enum BertFileError: Error, Equatable, CustomStringConvertible {
    /// A required file does not exist.
    case missingFile(String)
    /// `adapter_config.json` has another `peft_type` than the loader reads.
    case wrongAdapterType(expected: String, actual: String)
    /// `target_modules` selects modules this encoder cannot adapt (only Q, K, V and the
    /// attention output, the same ones in every layer), or none.
    case unsupportedTargets(String)
    /// The safetensors file lacks a tensor the configuration requires.
    case missingTensor(String)
    /// The safetensors file holds a tensor the configuration does not describe.
    case unexpectedTensor(String)
    /// A tensor's shape differs from the one the configuration and model imply.
    case tensorShapeMismatch(tensor: String, expected: [Int], actual: [Int])
    /// A LoRA factor's rank differs from `r` of `adapter_config.json`.
    case rankMismatch(tensor: String, configured: Int, actual: Int)
    /// A tensor is stored with a dtype that does not convert to Float32.
    case unsupportedDType(tensor: String, dtype: String)
    /// A tensor contains NaN or ±infinity.
    case nonFinite(tensor: String)
    /// A file describes another model than the one given (e.g. a source `config.json` whose
    /// architecture differs from the exported model's).
    case configurationMismatch(String)
    /// The export directory holds files and is not an earlier export (pass `overwrite`).
    case directoryNotEmpty(path: String)
    /// Creating a directory, or writing or copying a file failed.
    case fileSystem(path: String, reason: String)

    public var description: String {
        switch self {
        case .missingFile(let p): return "missing file: \(p)"
        case .wrongAdapterType(let e, let a): return "adapter_config.json has peft_type '\(a)', expected '\(e)'"
        case .unsupportedTargets(let r): return "unsupported adapter targets: \(r)"
        case .missingTensor(let n): return "adapter/head file has no tensor '\(n)'"
        case .unexpectedTensor(let n): return "file has an unexpected tensor '\(n)'"
        case .tensorShapeMismatch(let n, let e, let a): return "tensor '\(n)' has shape \(a), expected \(e)"
        case .rankMismatch(let n, let c, let a):
            return "tensor '\(n)' has rank \(a), adapter_config.json says r = \(c)"
        case .unsupportedDType(let n, let d): return "tensor '\(n)' has dtype \(d) (F32, F16, BF16 or F64 expected)"
        case .nonFinite(let n): return "tensor '\(n)' contains NaN or infinity"
        case .configurationMismatch(let r): return "configuration mismatch: \(r)"
        case .directoryNotEmpty(let p):
            return "\(p) is not empty and is not an earlier export (pass overwrite to write into it)"
        case .fileSystem(let p, let r): return "\(p): \(r)"
        }
    }
}

// MARK: - Small file helpers

/// Creates `directory` (and its parents) if needed.
func bertFilesCreateDirectory(_ directory: URL) throws(BertFileError) {
    do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
        throw .fileSystem(path: directory.path, reason: error.localizedDescription)
    }
}

/// Writes `data` atomically (temporary file in the same directory, then rename).
func bertFilesWriteAtomically(_ data: Data, to url: URL) throws(BertFileError) {
    do { try data.write(to: url, options: .atomic) } catch {
        throw .fileSystem(path: url.path, reason: error.localizedDescription)
    }
}

func bertFilesRequire(_ url: URL) throws(BertFileError) {
    guard FileManager.default.fileExists(atPath: url.path) else { throw .missingFile(url.path) }
}

/// A float tensor of `reader` with the given shape, converted to Float32 and checked finite.
func bertFilesTensor(_ reader: SafeTensorsReader, _ name: String, shape: [Int]) throws -> Tensor {
    guard let e = reader.entry(name) else { throw BertFileError.missingTensor(name) }
    guard e.shape == shape else { throw BertFileError.tensorShapeMismatch(tensor: name, expected: shape, actual: e.shape) }
    guard e.dtype.isFloatConvertible else { throw BertFileError.unsupportedDType(tensor: name, dtype: e.dtype.rawValue) }
    let t = try reader.tensor(name)
    guard t.maxAbsolute.isFinite else { throw BertFileError.nonFinite(tensor: name) }
    return t
}

// MARK: - LoRA in PEFT's layout

extension BertProjection {
    /// The module path inside a layer (`encoder.layer.{l}.` + this), as `transformers` names it.
    public var modulePath: String {
        switch self {
        case .query, .key, .value: return "attention.self.\(rawValue)"
        case .attentionOutput: return "attention.output.dense"
        }
    }

    /// The `target_modules` entry PEFT uses for this projection (`attention.output.dense` for
    /// the attention output, so that the MLP's `output.dense` is not matched).
    public var peftTargetName: String { self == .attentionOutput ? "attention.output.dense" : rawValue }

    /// The projection a LoRTA `target_modules` entry names: the raw value (`"query"`,
    /// `"output"`) or the module path inside a layer (`"attention.self.query"`,
    /// `"attention.output.dense"` — the form `lorta train` writes, which `lorta merge` matches
    /// against checkpoint names without touching the MLP's `output.dense`). nil otherwise.
    public init?(targetName: String) {
        guard let p = BertProjection.allCases.first(where: { $0.rawValue == targetName || $0.modulePath == targetName }) else {
            return nil
        }
        self = p
    }
}

extension LoRTAConfiguration {
    /// The matrix index `m` of a BERT projection among ``targetModules`` (see
    /// ``BertProjection/init(targetName:)``), or nil when it is not adapted.
    func matrixIndex(of p: BertProjection) -> Int? {
        targetModules.firstIndex { BertProjection(targetName: $0) == p }
    }
}

extension BertLoRAAdapters {
    /// Prefix PEFT gives the tensor names of an adapter on a bare `BertModel`.
    public static let peftKeyPrefix = "base_model.model."

    /// Name of a factor in `adapter_model.safetensors` (`factor` is `"lora_A"` or `"lora_B"`).
    public static func peftTensorName(layer: Int, projection: BertProjection, factor: String) -> String {
        "\(peftKeyPrefix)encoder.layer.\(layer).\(projection.modulePath).\(factor).weight"
    }

    /// Text of the `adapter_config.json` PEFT 0.21 writes for this adapter (sorted keys):
    /// `peft_type` "LORA", `r`, `lora_alpha` (shortest decimal form of the Float), `use_rslora`,
    /// `target_modules` (``BertProjection/peftTargetName`` in ``targets`` order),
    /// `lora_dropout` 0, `bias` "none", `fan_in_fan_out` false, `task_type` null,
    /// `inference_mode` true, `base_model_name_or_path`, `auto_mapping` (BertModel) and PEFT's
    /// neutral defaults for every other LoRA option (no DoRA, no patterns, no layer selection).
    /// `peft_version` is left out (PEFT fills in its own when loading).
    public func peftConfigJSON(baseModelName: String? = nil) throws -> Data {
        let null = NSNull()
        let object: [String: Any] = [
            "peft_type": "LORA", "task_type": null, "r": configuration.rank,
            "lora_alpha": Double(String(configuration.alpha)) ?? Double(configuration.alpha),
            "use_rslora": configuration.useRSLoRA, "target_modules": targets.map(\.peftTargetName),
            "lora_dropout": 0.0, "bias": "none", "fan_in_fan_out": false, "inference_mode": true,
            "base_model_name_or_path": baseModelName.map { $0 as Any } ?? null,
            "auto_mapping": ["base_model_class": "BertModel", "parent_library": "transformers.models.bert.modeling_bert"],
            "init_lora_weights": true, "use_dora": false, "lora_bias": false, "use_qalora": false,
            "qalora_group_size": 16, "use_bdlora": null, "rank_pattern": [String: Any](), "alpha_pattern": [String: Any](),
            "modules_to_save": null, "layers_to_transform": null, "layers_pattern": null, "exclude_modules": null,
            "layer_replication": null, "loftq_config": [String: Any](), "megatron_config": null,
            "megatron_core": "megatron.core", "eva_config": null, "corda_config": null, "revision": null,
            "trainable_token_indices": null, "target_parameters": null, "alora_invocation_tokens": null,
            "arrow_config": null, "ensure_weight_tying": false, "kasa_config": null, "lora_ga_config": null,
            "monteclora_config": null, "velora_config": null,
        ]
        return try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    }

    /// Saves the adapter in PEFT's layout into `directory` (created if needed):
    /// `adapter_model.safetensors` (F32, names ``peftTensorName(layer:projection:factor:)``,
    /// metadata `format: pt`) and `adapter_config.json` (``peftConfigJSON(baseModelName:)``).
    /// PEFT's `PeftModel.from_pretrained(AutoModel.from_pretrained(base), directory)` loads it.
    /// Each file is written atomically; existing files are replaced.
    /// - Parameter baseModelName: recorded as `base_model_name_or_path` (null when nil).
    /// - Throws: ``BertFileError/nonFinite(tensor:)`` before writing anything when a factor holds
    ///   NaN or infinity; ``BertFileError/fileSystem(path:reason:)``, ``SafeTensorsError``.
    /// - Complexity: O(parameter count).
    public func save(to directory: URL, baseModelName: String? = nil) throws {
        var named: [(String, Tensor)] = []
        for l in a.indices {
            for (t, p) in targets.enumerated() {
                named.append((Self.peftTensorName(layer: l, projection: p, factor: "lora_A"), a[l][t]))
                named.append((Self.peftTensorName(layer: l, projection: p, factor: "lora_B"), b[l][t]))
            }
        }
        for (name, t) in named where !t.maxAbsolute.isFinite { throw BertFileError.nonFinite(tensor: name) }
        let json = try peftConfigJSON(baseModelName: baseModelName)
        try bertFilesCreateDirectory(directory)
        var writer = SafeTensorsWriter()
        writer.metadata = ["format": "pt"]
        for (name, t) in named.sorted(by: { $0.0 < $1.0 }) { try writer.add(name, t) }
        try writer.write(to: directory.appendingPathComponent(LoRTAAdapter.weightsFileName))
        try bertFilesWriteAtomically(json, to: directory.appendingPathComponent(LoRTAAdapter.configFileName))
    }

    /// Loads a LoRA adapter directory in PEFT's layout: one written by ``save(to:baseModelName:)``
    /// or by PEFT's `save_pretrained` for a `BertModel` (names under `base_model.model.`) or a
    /// `BertFor…` model (`base_model.model.bert.`).
    ///
    /// Checks: `peft_type` LORA and PEFT's option refusals (``PEFTAdapterConfiguration``); no
    /// `fan_in_fan_out`, `layers_to_transform` or `exclude_modules`; `target_modules` (names or
    /// a pattern, PEFT's matching rules) must select, in every layer, the same non-empty subset of
    /// Q, K, V and the attention output and nothing else the model has (MLP, pooler, embeddings);
    /// `rank_pattern`/`alpha_pattern` may not give the adapted modules different ranks or scales;
    /// the file must hold exactly the factors of the selected modules, `r × d` and `d × r`, in a
    /// float dtype, finite. F16/BF16/F64 factors are converted to Float32.
    /// - Throws: ``BertFileError`` (missing file or tensor, unexpected tensor, wrong type,
    ///   unsupported targets, rank or shape mismatch, dtype, non-finite values),
    ///   ``AdapterConfigurationError``, ``LoRAError``, ``SafeTensorsError``.
    /// - Complexity: O(parameter count + L · |target_modules|).
    public init(contentsOf directory: URL, model: BertConfiguration) throws {
        let configURL = directory.appendingPathComponent(LoRTAAdapter.configFileName)
        let weightsURL = directory.appendingPathComponent(LoRTAAdapter.weightsFileName)
        try bertFilesRequire(configURL)
        try bertFilesRequire(weightsURL)
        let configData: Data
        do { configData = try Data(contentsOf: configURL) } catch {
            throw AdapterConfigurationError.unreadable(path: configURL.path, reason: error.localizedDescription)
        }
        let peft = try PEFTAdapterConfiguration(jsonData: configData)
        guard peft.peftType == .lora else { throw BertFileError.wrongAdapterType(expected: "LORA", actual: peft.peftType.rawValue) }
        let raw = (try? JSONSerialization.jsonObject(with: configData)) as? [String: Any] ?? [:]
        if peft.fanInFanOut { throw AdapterConfigurationError.unsupportedOption(name: "fan_in_fan_out", value: "true") }
        for key in ["layers_to_transform", "exclude_modules"] {
            if let v = raw[key], !(v is NSNull), !((v as? [Any])?.isEmpty ?? false) {
                throw AdapterConfigurationError.unsupportedOption(name: key, value: "\(v)")
            }
        }
        let weights = try SafeTensorsReader(contentsOf: weightsURL)
        // Module names as PEFT matched them: "encoder.layer…" on a BertModel, "bert.encoder…"
        // on a BertFor… model.
        let keyPrefix = weights.names.contains { $0.hasPrefix(Self.peftKeyPrefix + "bert.") }
            ? Self.peftKeyPrefix + "bert." : Self.peftKeyPrefix
        let modulePrefix = String(keyPrefix.dropFirst(Self.peftKeyPrefix.count))
        let targets = try Self.resolveTargets(peft.targetModules, model: model, modulePrefix: modulePrefix)

        // One rank and one scale for every adapted module.
        var rank: Int? = nil, alpha: Float? = nil
        for l in 0..<model.layerCount {
            for p in targets {
                let module = "\(modulePrefix)encoder.layer.\(l).\(p.modulePath)"
                let r = peft.rank(forModule: module), al = peft.alpha(forModule: module)
                if let rank, r != rank {
                    throw AdapterConfigurationError.unsupportedOption(name: "rank_pattern", value: "different ranks (\(rank), \(r)) across adapted modules")
                }
                if let alpha, al != alpha {
                    throw AdapterConfigurationError.unsupportedOption(name: "alpha_pattern", value: "different alphas (\(alpha), \(al)) across adapted modules")
                }
                rank = r; alpha = al
            }
        }
        let configuration = try LoRAConfiguration(rank: rank!, alpha: alpha!, useRSLoRA: peft.useRSLoRA)

        let d = model.hiddenSize, r = configuration.rank
        var expected = Set<String>()
        var a: [[Tensor]] = [], b: [[Tensor]] = []
        for l in 0..<model.layerCount {
            var la: [Tensor] = [], lb: [Tensor] = []
            for p in targets {
                let base = "\(keyPrefix)encoder.layer.\(l).\(p.modulePath)."
                let nameA = base + "lora_A.weight", nameB = base + "lora_B.weight"
                expected.insert(nameA); expected.insert(nameB)
                if let e = weights.entry(nameA), e.shape.count == 2, e.shape[1] == d, e.shape[0] != r {
                    throw BertFileError.rankMismatch(tensor: nameA, configured: r, actual: e.shape[0])
                }
                if let e = weights.entry(nameB), e.shape.count == 2, e.shape[0] == d, e.shape[1] != r {
                    throw BertFileError.rankMismatch(tensor: nameB, configured: r, actual: e.shape[1])
                }
                la.append(try bertFilesTensor(weights, nameA, shape: [r, d]))
                lb.append(try bertFilesTensor(weights, nameB, shape: [d, r]))
            }
            a.append(la); b.append(lb)
        }
        for name in weights.names where !expected.contains(name) { throw BertFileError.unexpectedTensor(name) }
        try self.init(model: model, targets: targets, configuration: configuration, a: a, b: b)
    }

    /// The projections `target_modules` selects in every layer, ordered by the first matching
    /// `target_modules` entry (then Q, K, V, O), so that a saved adapter reloads with its order.
    static func resolveTargets(_ targetModules: TargetModules, model: BertConfiguration,
                               modulePrefix: String) throws(BertFileError) -> [BertProjection] {
        // Every nn.Linear / nn.Embedding of a transformers BertModel that PEFT could adapt.
        var others = ["\(modulePrefix)pooler.dense", "\(modulePrefix)embeddings.word_embeddings",
                      "\(modulePrefix)embeddings.position_embeddings", "\(modulePrefix)embeddings.token_type_embeddings"]
        var perLayer: [[BertProjection]] = []
        for l in 0..<model.layerCount {
            let layer = "\(modulePrefix)encoder.layer.\(l)."
            others += [layer + "intermediate.dense", layer + "output.dense"]
            perLayer.append(BertProjection.allCases.filter { targetModules.matches(layer + $0.modulePath) })
        }
        if let hit = others.first(where: { targetModules.matches($0) }) {
            throw .unsupportedTargets("target_modules \(targetModules) selects \(hit); only the attention's query, key, value and attention.output.dense can be adapted")
        }
        guard let first = perLayer.first, !first.isEmpty else {
            throw .unsupportedTargets("target_modules \(targetModules) selects none of query, key, value, attention.output.dense")
        }
        if let l = perLayer.firstIndex(where: { Set($0) != Set(first) }) {
            throw .unsupportedTargets("target_modules \(targetModules) selects \(first.map(\.peftTargetName)) in layer 0 but \(perLayer[l].map(\.peftTargetName)) in layer \(l); the same projections must be adapted in every layer")
        }
        guard case .names(let names) = targetModules else { return first }
        func order(_ p: BertProjection) -> Int {
            names.firstIndex { "encoder.layer.0.\(p.modulePath)" == $0 || "encoder.layer.0.\(p.modulePath)".hasSuffix("." + $0) } ?? names.count
        }
        return first.enumerated().sorted { (order($0.element), $0.offset) < (order($1.element), $1.offset) }.map(\.element)
    }
}

// MARK: - Either adapter kind

extension BertAdapters {
    /// Saves the adapters into `directory` (created if needed): LoRA in PEFT's layout
    /// (``BertLoRAAdapters/save(to:baseModelName:)``), LoRTA in the reference layout
    /// (``LoRTAAdapter/save(to:)``; `baseModelName` is then added to its `adapter_config.json`
    /// as `base_model_name_or_path`). Files are written atomically.
    /// - Throws: ``BertFileError``, ``LoRTAFileError``, ``SafeTensorsError``.
    /// - Complexity: O(parameter count).
    public func save(to directory: URL, baseModelName: String? = nil) throws {
        switch self {
        case .lora(let lora):
            try lora.save(to: directory, baseModelName: baseModelName)
        case .lorta(let adapter):
            guard let baseModelName else {
                try adapter.save(to: directory)
                return
            }
            // Check before writing anything, then add the field to the reference config.
            var object = try JSONSerialization.jsonObject(with: adapter.configuration.adapterConfigJSON()) as! [String: Any]
            object["base_model_name_or_path"] = baseModelName
            let json = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            try adapter.save(to: directory)
            try bertFilesWriteAtomically(json, to: directory.appendingPathComponent(LoRTAAdapter.configFileName))
        }
    }

    /// Loads an adapter directory, dispatching on `peft_type` of its `adapter_config.json`:
    /// LORA → ``BertLoRAAdapters/init(contentsOf:model:)``, LORTA → ``LoRTAAdapter/init(contentsOf:)``;
    /// the result is checked against `model` (``validate(for:)``).
    /// - Throws: ``BertFileError/missingFile(_:)``, ``AdapterConfigurationError`` (unreadable
    ///   config, other `peft_type`, unsupported options), the loaders' errors,
    ///   ``BertError/invalidAdapter(_:)`` when a LoRTA adapter does not fit `model`.
    /// - Complexity: O(parameter count).
    public init(contentsOf directory: URL, model: BertConfiguration) throws {
        let configURL = directory.appendingPathComponent(LoRTAAdapter.configFileName)
        try bertFilesRequire(configURL)
        try bertFilesRequire(directory.appendingPathComponent(LoRTAAdapter.weightsFileName))
        switch try PEFTAdapterConfiguration(contentsOf: configURL).peftType {
        case .lora:
            self = .lora(try BertLoRAAdapters(contentsOf: directory, model: model))
        case .lorta:
            let adapters = BertAdapters.lorta(try LoRTAAdapter(contentsOf: directory))
            try adapters.validate(for: model)
            self = adapters
        }
    }
}

// MARK: - Classification head

extension BertClassificationHead {
    /// File name of a saved head (beside the adapter files).
    public static let fileName = "classifier.safetensors"

    /// Writes the head as safetensors (F32 tensors `weight` `[C, d]` and `bias` `[C]`, metadata
    /// `format: pt`, so `torch.nn.Linear.load_state_dict` takes it), atomically.
    /// - Throws: ``BertFileError/nonFinite(tensor:)`` before writing for NaN/infinite values,
    ///   ``SafeTensorsError/fileSystem(path:operation:reason:)``.
    /// - Complexity: O(C · d).
    public func save(to url: URL) throws {
        for (name, t) in [("weight", weight), ("bias", bias)] where !t.maxAbsolute.isFinite {
            throw BertFileError.nonFinite(tensor: name)
        }
        var writer = SafeTensorsWriter()
        writer.metadata = ["format": "pt"]
        try writer.add("weight", weight)
        try writer.add("bias", bias)
        try writer.write(to: url)
    }

    /// Reads a head written by ``save(to:)``: exactly the tensors `weight` `[C, d]` and `bias`
    /// `[C]` with C >= 2, a float dtype (converted to Float32), finite values; with `model`,
    /// `d` must be its hidden size.
    /// - Throws: ``BertFileError`` (missing file or tensor, unexpected tensor, bias shape, dtype,
    ///   non-finite), ``BertError/invalidClassificationHead(_:)`` for a weight that is not a
    ///   matrix, C < 2 or another `d` than the model's, ``SafeTensorsError`` for a corrupt file.
    /// - Complexity: O(C · d).
    public init(contentsOf url: URL, model: BertConfiguration? = nil) throws {
        try bertFilesRequire(url)
        let reader = try SafeTensorsReader(contentsOf: url)
        for name in reader.names where name != "weight" && name != "bias" { throw BertFileError.unexpectedTensor(name) }
        guard let w = reader.entry("weight") else { throw BertFileError.missingTensor("weight") }
        guard reader.entry("bias") != nil else { throw BertFileError.missingTensor("bias") }
        guard w.shape.count == 2 else {
            throw BertError.invalidClassificationHead("weight has shape \(w.shape), expected [classes, d]")
        }
        if let model, w.shape[1] != model.hiddenSize {
            throw BertError.invalidClassificationHead("weight has \(w.shape[1]) columns, the model's hidden size is \(model.hiddenSize)")
        }
        let weight = try bertFilesTensor(reader, "weight", shape: w.shape)
        let bias = try bertFilesTensor(reader, "bias", shape: [w.shape[0]])
        try self.init(weight: weight, bias: bias)
    }
}
