import Foundation

// Adapter directories for any model described by an ``AdapterHost``:
//
//   <dir>/adapter_config.json + <dir>/adapter_model.safetensors
//
// LoRA: Hugging Face PEFT's layout with the host's module names,
//     base_model.model.<layerPath>.<l>.<module path>.lora_A.weight   r × d_in
//     base_model.model.<layerPath>.<l>.<module path>.lora_B.weight   d_out × r
//   (Llama: base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight), F32; the
//   adapter_config.json PEFT 0.21 writes (task_type CAUSAL_LM for a llama host).
//   `PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), dir)` loads it.
// LoRTA: our layout (LoRTAFiles.swift: lora_A, lora_A_1…, lora_B, lora_C_l, lora_C_h,
//   lora_C_m; num_layers/num_heads/head_dim in the config). Loading also reads the LoRTA
//   reference implementation's checkpoints (keys base_model.model.lora_A hidden × r,
//   …lora_B r × d_h, …lora_C_l L × r, …lora_C_h H × r, …lora_C_m 4 × r in q, k, v, o order;
//   no num_layers/num_heads in the config: L, H and d_h come from the host).
//
// ``AdapterFiles/load(from:host:)`` is the one place that maps `peft_type` to an adapter type.

/// Errors reading or writing an adapter directory for a model (``AdapterHost``). Every case
/// names the file (and the tensor, when it is about one).
public enum AdapterFileError: Error, Equatable, CustomStringConvertible {
    /// A required file does not exist.
    case missingFile(String)
    /// `adapter_config.json` is unreadable or invalid, or sets an option we cannot honour.
    case configuration(file: String, AdapterConfigurationError)
    /// `adapter_config.json` has another `peft_type` than the loader reads.
    case wrongAdapterType(file: String, expected: String, actual: String)
    /// `target_modules` names or selects something the model cannot adapt, nothing, or
    /// different projections in different layers.
    case unsupportedTargets(file: String, reason: String)
    /// The adapter was made for another model shape, or the file's format cannot describe
    /// this model (e.g. the LoRTA reference format under grouped-query attention).
    case incompatible(file: String, reason: String)
    /// The safetensors file lacks a tensor the configuration requires.
    case missingTensor(file: String, tensor: String)
    /// The safetensors file holds a tensor the configuration does not describe.
    case unexpectedTensor(file: String, tensor: String)
    /// A tensor's shape differs from the one the configuration and model imply.
    case tensorShapeMismatch(file: String, tensor: String, expected: [Int], actual: [Int])
    /// A LoRA factor's rank differs from `r` of `adapter_config.json`.
    case rankMismatch(file: String, tensor: String, configured: Int, actual: Int)
    /// A tensor is stored with a dtype that does not convert to Float32.
    case unsupportedDType(file: String, tensor: String, dtype: String)
    /// A tensor holds NaN or ±infinity (when loading, or before saving: nothing is written).
    case nonFinite(file: String, tensor: String)
    /// Creating the directory or writing a file failed.
    case fileSystem(path: String, reason: String)

    public var description: String {
        switch self {
        case .missingFile(let p): return "missing file: \(p)"
        case .configuration(let f, let e): return "\(f): \(e)"
        case .wrongAdapterType(let f, let e, let a): return "\(f): peft_type is '\(a)', expected '\(e)'"
        case .unsupportedTargets(let f, let r): return "\(f): unsupported target_modules: \(r)"
        case .incompatible(let f, let r): return "\(f): the adapter does not fit the model: \(r)"
        case .missingTensor(let f, let t): return "\(f): no tensor '\(t)'"
        case .unexpectedTensor(let f, let t): return "\(f): unexpected tensor '\(t)'"
        case .tensorShapeMismatch(let f, let t, let e, let a): return "\(f): tensor '\(t)' has shape \(a), expected \(e)"
        case .rankMismatch(let f, let t, let c, let a):
            return "\(f): tensor '\(t)' has rank \(a), adapter_config.json says r = \(c)"
        case .unsupportedDType(let f, let t, let d):
            return "\(f): tensor '\(t)' has dtype \(d) (F32, F16, BF16 or F64 expected)"
        case .nonFinite(let f, let t): return "\(f): tensor '\(t)' contains NaN or infinity"
        case .fileSystem(let p, let r): return "\(p): \(r)"
        }
    }
}

// MARK: - Dispatch

/// Loading adapter directories whose kind is only known from the file.
public enum AdapterFiles {
    /// File name of the configuration inside an adapter directory.
    public static let configFileName = "adapter_config.json"
    /// File name of the tensors inside an adapter directory.
    public static let weightsFileName = "adapter_model.safetensors"

    /// Loads the adapter in `directory` for `host`, dispatching on `peft_type` of its
    /// `adapter_config.json`: `LORA` → ``LoRAAdapter/init(contentsOf:host:)``, `LORTA` →
    /// ``LoRTAAdapter/init(contentsOf:host:)`` (our layout or the reference implementation's).
    /// - Throws: ``AdapterFileError`` (missing file, invalid config or unknown `peft_type`
    ///   as ``AdapterFileError/configuration(file:_:)``, and the loaders' errors).
    /// - Complexity: O(parameter count + L · modules · |target_modules|).
    public static func load(from directory: URL, host: AdapterHost) throws -> any Adapter {
        let configURL = directory.appendingPathComponent(configFileName)
        let (peft, _) = try AdapterDirectory.readConfiguration(configURL)
        return try peft.peftType.format.init(contentsOf: directory, host: host)
    }
}

// MARK: - Shared file helpers

/// Reading and writing the two files of an adapter directory with ``AdapterFileError``s.
enum AdapterDirectory {
    /// The parsed configuration and its raw JSON object.
    static func readConfiguration(_ url: URL) throws(AdapterFileError) -> (PEFTAdapterConfiguration, [String: Any]) {
        guard FileManager.default.fileExists(atPath: url.path) else { throw .missingFile(url.path) }
        let data: Data
        do { data = try RegularFile.read(url) } catch {
            throw .configuration(file: url.path, .unreadable(path: url.path, reason: error.reason))
        }
        do {
            let peft = try PEFTAdapterConfiguration(jsonData: data)
            let raw = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
            return (peft, raw)
        } catch let e as AdapterConfigurationError {
            throw .configuration(file: url.path, e)
        } catch {
            throw .configuration(file: url.path, .invalidJSON("\(error)"))
        }
    }

    /// Both files of `directory`: the configuration and the opened tensors.
    static func open(_ directory: URL) throws -> (config: PEFTAdapterConfiguration, raw: [String: Any],
                                                  configPath: String, weights: SafeTensorsReader, weightsPath: String) {
        let configURL = directory.appendingPathComponent(AdapterFiles.configFileName)
        let weightsURL = directory.appendingPathComponent(AdapterFiles.weightsFileName)
        guard FileManager.default.fileExists(atPath: configURL.path) else { throw AdapterFileError.missingFile(configURL.path) }
        guard FileManager.default.fileExists(atPath: weightsURL.path) else { throw AdapterFileError.missingFile(weightsURL.path) }
        let (config, raw) = try readConfiguration(configURL)
        return (config, raw, configURL.path, try SafeTensorsReader(contentsOf: weightsURL), weightsURL.path)
    }

    /// A float tensor of `reader` with the given shape, converted to Float32 and checked finite.
    static func tensor(_ reader: SafeTensorsReader, file: String, _ name: String, shape: [Int]) throws -> Tensor {
        guard let e = reader.entry(name) else { throw AdapterFileError.missingTensor(file: file, tensor: name) }
        guard e.shape == shape else {
            throw AdapterFileError.tensorShapeMismatch(file: file, tensor: name, expected: shape, actual: e.shape)
        }
        guard e.dtype.isFloatConvertible else {
            throw AdapterFileError.unsupportedDType(file: file, tensor: name, dtype: e.dtype.rawValue)
        }
        let t = try reader.tensor(name)
        guard t.maxAbsolute.isFinite else { throw AdapterFileError.nonFinite(file: file, tensor: name) }
        return t
    }

    /// Throws for the first tensor of the file that is not in `expected`.
    static func checkNoExtra(_ reader: SafeTensorsReader, file: String, expected: Set<String>) throws(AdapterFileError) {
        if let extra = reader.names.sorted().first(where: { !expected.contains($0) }) {
            throw .unexpectedTensor(file: file, tensor: extra)
        }
    }

    /// Refuses options of a PEFT config that select layers or exclude modules (not honoured).
    static func refuseLayerSelection(_ raw: [String: Any], file: String) throws(AdapterFileError) {
        for key in ["layers_to_transform", "exclude_modules"] {
            if let v = raw[key], !(v is NSNull), !((v as? [Any])?.isEmpty ?? false) {
                throw .configuration(file: file, .unsupportedOption(name: key, value: "\(v)"))
            }
        }
    }

    /// Writes `tensors` (F32, metadata `format: pt`, in the given order) and `json` into
    /// `directory` (created if needed), each file atomically. Every tensor is checked finite
    /// before anything is written.
    static func write(_ directory: URL, tensors: [(String, Tensor)], json: Data) throws {
        let weightsURL = directory.appendingPathComponent(AdapterFiles.weightsFileName)
        let configURL = directory.appendingPathComponent(AdapterFiles.configFileName)
        for (name, t) in tensors where !t.maxAbsolute.isFinite {
            throw AdapterFileError.nonFinite(file: weightsURL.path, tensor: name)
        }
        do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw AdapterFileError.fileSystem(path: directory.path, reason: error.localizedDescription)
        }
        var writer = SafeTensorsWriter()
        writer.metadata = ["format": "pt"]
        for (name, t) in tensors { try writer.add(name, t) }
        try writer.write(to: weightsURL)
        do {
            try AtomicFileWriter.write(to: configURL) { write in try json.withUnsafeBytes { try write($0) } }
        } catch let f as AtomicFileWriter.Failure {
            throw AdapterFileError.fileSystem(path: f.path, reason: "\(f.operation): \(f.reason)")
        }
    }

    /// Resolves PEFT's `target_modules` against the host's projections, whose full module
    /// names are `<layerPrefix>.<l>.<path>`. Returns the selected modules, the same in every
    /// layer, ordered by the first matching list entry and then the host's order.
    /// - Throws: ``AdapterFileError/unsupportedTargets(file:reason:)`` when a list entry
    ///   matches no projection, nothing is selected, or the layers differ.
    static func resolveTargets(_ targets: TargetModules, host: AdapterHost, layerPrefix: String,
                               file: String) throws(AdapterFileError) -> [AdapterHost.Module] {
        func fullName(_ l: Int, _ m: AdapterHost.Module) -> String { "\(layerPrefix).\(l).\(m.path)" }
        let available = host.modules.map(\.name).joined(separator: ", ")
        if case .names(let names) = targets {
            for entry in names {
                let hit = (0..<host.layerCount).contains { l in
                    host.modules.contains { TargetModules.names([entry]).matches(fullName(l, $0)) }
                }
                if !hit {
                    throw .unsupportedTargets(file: file, reason: "'\(entry)' is none of the model's adaptable projections (\(available))")
                }
            }
        }
        for l in 0..<host.layerCount {
            if let frozen = host.frozenLinearPaths.first(where: { targets.matches("\(layerPrefix).\(l).\($0)") }) {
                throw .unsupportedTargets(file: file, reason: "\(targets) selects \(frozen), which cannot be adapted here (adaptable: \(available))")
            }
        }
        var perLayer: [[AdapterHost.Module]] = []
        for l in 0..<host.layerCount { perLayer.append(host.modules.filter { targets.matches(fullName(l, $0)) }) }
        guard let first = perLayer.first, !first.isEmpty else {
            throw .unsupportedTargets(file: file, reason: "\(targets) selects none of the model's projections (\(available))")
        }
        if let l = perLayer.firstIndex(where: { $0 != first }) {
            throw .unsupportedTargets(file: file, reason: "\(targets) selects \(first.map(\.name)) in layer 0 but \(perLayer[l].map(\.name)) in layer \(l); the same projections must be adapted in every layer")
        }
        guard case .names(let names) = targets else { return first }
        func order(_ m: AdapterHost.Module) -> Int {
            names.firstIndex { TargetModules.names([$0]).matches(fullName(0, m)) } ?? names.count
        }
        return first.enumerated().sorted { (order($0.element), $0.offset) < (order($1.element), $1.offset) }.map(\.element)
    }
}

// MARK: - LoRA in PEFT's layout

extension LoRAAdapter {
    /// PEFT `task_type` for a host: `CAUSAL_LM` for llama, null otherwise (a bare encoder).
    static func peftTaskType(_ host: AdapterHost) -> String? { host.modelType == "llama" ? "CAUSAL_LM" : nil }

    /// Text of the `adapter_config.json` PEFT 0.21 writes for this adapter on `host` (sorted
    /// keys): `peft_type` "LORA", `r`, `lora_alpha` (shortest decimal form of the Float),
    /// `use_rslora`, `target_modules` (the short names, in ``targetModules`` order),
    /// `task_type` (`CAUSAL_LM` for a llama host, as for a `LlamaForCausalLM`; else null with
    /// `auto_mapping` for a bare BERT model), `lora_dropout` 0, `bias` "none",
    /// `inference_mode` true, `base_model_name_or_path`, and PEFT's neutral defaults for every
    /// other LoRA option. `peft_version` is left out (PEFT fills in its own when loading).
    public func peftConfigJSON(host: AdapterHost, baseModelName: String? = nil) throws -> Data {
        let null = NSNull()
        let modules = try host.modules(named: targetModules)
        let task = Self.peftTaskType(host)
        var autoMapping: Any = null
        if task == nil, host.modelType == "bert" {
            autoMapping = ["base_model_class": "BertModel", "parent_library": "transformers.models.bert.modeling_bert"]
        }
        let object: [String: Any] = [
            "peft_type": "LORA", "task_type": task.map { $0 as Any } ?? null, "r": configuration.rank,
            "lora_alpha": Double(String(configuration.alpha)) ?? Double(configuration.alpha),
            "use_rslora": configuration.useRSLoRA,
            "target_modules": modules.map(host.peftTargetName),
            "lora_dropout": 0.0, "bias": "none", "fan_in_fan_out": false, "inference_mode": true,
            "base_model_name_or_path": baseModelName.map { $0 as Any } ?? null, "auto_mapping": autoMapping,
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
    /// `adapter_model.safetensors` (F32, names ``parameterNames(host:)``, sorted, metadata
    /// `format: pt`) and `adapter_config.json` (``peftConfigJSON(host:baseModelName:)``). Each
    /// file is written atomically; existing files are replaced.
    /// - Throws: ``AdapterError`` when the adapter does not fit `host`;
    ///   ``AdapterFileError/nonFinite(file:tensor:)`` before writing anything when a factor
    ///   holds NaN or infinity; ``AdapterFileError/fileSystem(path:reason:)``, ``SafeTensorsError``.
    /// - Complexity: O(parameter count).
    public func save(to directory: URL, host: AdapterHost, baseModelName: String? = nil) throws {
        try validate(for: host)
        let named = zip(parameterNames(host: host), parameters).sorted { $0.0 < $1.0 }
        try AdapterDirectory.write(directory, tensors: named, json: try peftConfigJSON(host: host, baseModelName: baseModelName))
    }

    /// ``save(to:host:baseModelName:)`` without a base model name.
    public func save(to directory: URL, host: AdapterHost) throws {
        try save(to: directory, host: host, baseModelName: nil)
    }

    /// Loads a LoRA adapter directory in PEFT's layout for `host`: one written by
    /// ``save(to:host:baseModelName:)`` or by PEFT's `save_pretrained` (tensor names under
    /// `base_model.model.<layerPath>.`, or under a shorter suffix of `layerPath` — e.g.
    /// `base_model.model.layers.` for a bare `LlamaModel`).
    ///
    /// Checks: `peft_type` LORA and PEFT's option refusals (``PEFTAdapterConfiguration``); no
    /// `fan_in_fan_out`, `layers_to_transform` or `exclude_modules`; `target_modules` (names or
    /// a pattern, PEFT's matching rules against `<layerPath>.<l>.<module path>`) must select the
    /// same non-empty set of the host's projections in every layer, and every list entry must
    /// match one; `rank_pattern`/`alpha_pattern` may not give the adapted modules different
    /// ranks or scales; the file must hold exactly the factors of the selected modules,
    /// `r × d_in` and `d_out × r`, in a float dtype (converted to Float32), finite.
    /// - Throws: ``AdapterFileError``, ``SafeTensorsError`` for a corrupt file.
    /// - Complexity: O(parameter count + L · modules · |target_modules|).
    public init(contentsOf directory: URL, host: AdapterHost) throws {
        let d = try AdapterDirectory.open(directory)
        let peft = d.config, file = d.weightsPath
        guard peft.peftType == .lora else {
            throw AdapterFileError.wrongAdapterType(file: d.configPath, expected: "LORA", actual: peft.peftType.rawValue)
        }
        if peft.fanInFanOut {
            throw AdapterFileError.configuration(file: d.configPath, .unsupportedOption(name: "fan_in_fan_out", value: "true"))
        }
        try AdapterDirectory.refuseLayerSelection(d.raw, file: d.configPath)
        // Module names as PEFT matched them: the host's layer path, or a suffix of it when the
        // adapter was made on an inner model (LlamaModel instead of LlamaForCausalLM), or the
        // path under an outer prefix (`bert.encoder.layer` for a BertForSequenceClassification).
        let parts = host.layerPath.split(separator: ".").map(String.init)
        let candidates = parts.indices.map { parts[$0...].joined(separator: ".") }
        var layerPrefix = host.layerPath
        search: for name in d.weights.names where name.hasPrefix("base_model.model.") {
            let rest = String(name.dropFirst("base_model.model.".count))
            for c in candidates {
                if rest.hasPrefix(c + ".") { layerPrefix = c; break search }
                if let r = rest.range(of: "." + host.layerPath + ".") {
                    layerPrefix = String(rest[..<r.lowerBound]) + "." + host.layerPath
                    break search
                }
            }
        }
        let modules = try AdapterDirectory.resolveTargets(peft.targetModules, host: host, layerPrefix: layerPrefix,
                                                          file: d.configPath)
        // One rank and one scale for every adapted module.
        var rank: Int? = nil, alpha: Float? = nil
        for l in 0..<host.layerCount {
            for m in modules {
                let name = "\(layerPrefix).\(l).\(m.path)"
                let r = peft.rank(forModule: name), al = peft.alpha(forModule: name)
                if let rank, r != rank {
                    throw AdapterFileError.configuration(file: d.configPath, .unsupportedOption(
                        name: "rank_pattern", value: "different ranks (\(rank), \(r)) across adapted modules"))
                }
                if let alpha, al != alpha {
                    throw AdapterFileError.configuration(file: d.configPath, .unsupportedOption(
                        name: "alpha_pattern", value: "different alphas (\(alpha), \(al)) across adapted modules"))
                }
                rank = r; alpha = al
            }
        }
        let configuration = try LoRAConfiguration(rank: rank!, alpha: alpha!, useRSLoRA: peft.useRSLoRA)
        let r = configuration.rank
        var expected = Set<String>()
        var a: [Tensor] = [], b: [Tensor] = []
        for l in 0..<host.layerCount {
            for m in modules {
                let base = "base_model.model.\(layerPrefix).\(l).\(m.path)."
                let nameA = base + "lora_A.weight", nameB = base + "lora_B.weight"
                expected.insert(nameA); expected.insert(nameB)
                if let e = d.weights.entry(nameA), e.shape.count == 2, e.shape[1] == m.inputSize, e.shape[0] != r {
                    throw AdapterFileError.rankMismatch(file: file, tensor: nameA, configured: r, actual: e.shape[0])
                }
                if let e = d.weights.entry(nameB), e.shape.count == 2, e.shape[0] == m.outputSize, e.shape[1] != r {
                    throw AdapterFileError.rankMismatch(file: file, tensor: nameB, configured: r, actual: e.shape[1])
                }
                a.append(try AdapterDirectory.tensor(d.weights, file: file, nameA, shape: [r, m.inputSize]))
                b.append(try AdapterDirectory.tensor(d.weights, file: file, nameB, shape: [m.outputSize, r]))
            }
        }
        try AdapterDirectory.checkNoExtra(d.weights, file: file, expected: expected)
        try self.init(host: host, targets: modules.map(\.name), configuration: configuration, a: a, b: b)
    }
}

// MARK: - LoRTA

extension LoRTAAdapter {
    /// Tensor names of the LoRTA reference implementation's checkpoints.
    public static let referenceTensorNames = ["lora_A", "lora_B", "lora_C_l", "lora_C_h", "lora_C_m"]
        .map { "base_model.model." + $0 }

    /// Saves the adapter in our LoRTA layout (LoRTAFiles.swift: `lora_A`, `lora_A_1`…,
    /// `lora_B`, `lora_C_l`, `lora_C_h`, `lora_C_m`, F32; ``LoRTAConfiguration/adapterConfigJSON()``)
    /// after checking that it fits `host`. Each file is written atomically.
    /// - Throws: ``AdapterError`` when the adapter does not fit `host`;
    ///   ``AdapterFileError/nonFinite(file:tensor:)`` before writing anything;
    ///   ``AdapterFileError/fileSystem(path:reason:)``, ``SafeTensorsError``.
    /// - Complexity: O(parameter count).
    public func save(to directory: URL, host: AdapterHost) throws {
        try validate(for: host)
        let names = configuration.factorTensorShapes.map(\.name)
        let tensors = factors.a + [factors.b, factors.cL, factors.cH, factors.cM]
        // target_modules in PEFT's form for the host (BERT's `output` is written
        // `attention.output.dense`, so that name-based tools never match the MLP's output.dense).
        let c = configuration
        let written = try LoRTAConfiguration(rank: c.rank, alpha: c.alpha,
                                             targetModules: try host.modules(named: c.targetModules).map(host.peftTargetName),
                                             layerCount: c.layerCount, headCount: c.headCount, headDimension: c.headDimension,
                                             outputSizes: c.outputSizes)
        try AdapterDirectory.write(directory, tensors: Array(zip(names, tensors)), json: try written.adapterConfigJSON())
    }

    /// Loads a LoRTA adapter directory for `host`: our layout (written by ``save(to:host:)``
    /// or ``save(to:)``) or a checkpoint of the LoRTA reference implementation (recognised by
    /// its `base_model.model.lora_*` tensor names).
    ///
    /// Our layout: the configuration as in
    /// ``LoRTAConfiguration/init(peftConfiguration:headDimension:)``, with a missing
    /// `num_layers`, `num_heads` or `head_dim` taken from `host`; `L`, `H`, `d_h` and every
    /// target's output size must be the host's; exactly the factors of the configuration.
    ///
    /// Reference layout: `L`, `H`, `d_h` come from `host` (a `num_layers`/`num_heads`/`head_dim`
    /// in the config must agree); `target_modules` (names or a pattern) is resolved against
    /// the host's projections and must select only attention projections; `lora_C_m`'s four
    /// rows are the host's attention projections in their order (q, k, v, o), and the rows of
    /// the selected ones become our `C_M`, in that order. The format has one `A` of
    /// `hidden × r`, so it only describes square `hidden × hidden` updates: a selected target
    /// with another output size (K/V under grouped-query attention) is an error. Tensors:
    /// exactly `base_model.model.lora_A` `[H·d_h, r]`, `…lora_B` `[r, d_h]`, `…lora_C_l`
    /// `[L, r]`, `…lora_C_h` `[H, r]`, `…lora_C_m` `[4, r]`. `use_rslora` is refused (our
    /// LoRTA scales by `alpha / r`).
    /// - Throws: ``AdapterFileError``, ``SafeTensorsError`` for a corrupt file, ``LoRTAError``
    ///   for values out of range.
    /// - Complexity: O(parameter count + L · modules · |target_modules|).
    public init(contentsOf directory: URL, host: AdapterHost) throws {
        let d = try AdapterDirectory.open(directory)
        guard d.config.peftType == .lorta else {
            throw AdapterFileError.wrongAdapterType(file: d.configPath, expected: "LORTA", actual: d.config.peftType.rawValue)
        }
        if d.weights.names.contains(where: { $0.hasPrefix("base_model.model.lora_") }) {
            self = try Self.loadReference(d, host: host)
        } else {
            self = try Self.loadOwn(d, host: host)
        }
        try validate(for: host)
    }

    private static func checkShape(_ c: PEFTAdapterConfiguration, host: AdapterHost, file: String) throws(AdapterFileError) {
        let given = (c.layerCount ?? host.layerCount, c.headCount ?? host.headCount, c.headDimension ?? host.headDimension)
        guard given == (host.layerCount, host.headCount, host.headDimension) else {
            throw .incompatible(file: file, reason: "LoRTA adapter for L=\(given.0), H=\(given.1), d_h=\(given.2); the model has L=\(host.layerCount), H=\(host.headCount), d_h=\(host.headDimension)")
        }
    }

    private static func refuseLoRAOptions(_ c: PEFTAdapterConfiguration, file: String) throws(AdapterFileError) {
        if c.useRSLoRA { throw .configuration(file: file, .unsupportedOption(name: "use_rslora", value: "true")) }
        if c.fanInFanOut { throw .configuration(file: file, .unsupportedOption(name: "fan_in_fan_out", value: "true")) }
        if !c.rankPattern.isEmpty { throw .configuration(file: file, .unsupportedOption(name: "rank_pattern", value: "\(c.rankPattern)")) }
        if !c.alphaPattern.isEmpty { throw .configuration(file: file, .unsupportedOption(name: "alpha_pattern", value: "\(c.alphaPattern)")) }
    }

    private static func loadOwn(_ d: (config: PEFTAdapterConfiguration, raw: [String: Any], configPath: String,
                                      weights: SafeTensorsReader, weightsPath: String), host: AdapterHost) throws -> LoRTAAdapter {
        var peft = d.config
        try refuseLoRAOptions(peft, file: d.configPath)
        try checkShape(peft, host: host, file: d.configPath)
        guard case .names(let targets) = peft.targetModules else {
            throw AdapterFileError.unsupportedTargets(file: d.configPath, reason: "LoRTA target_modules must be a list (its order is the matrix-type axis), got the pattern \(peft.targetModules)")
        }
        let available = host.modules.map(\.name).joined(separator: ", ")
        var modules: [AdapterHost.Module] = []
        for t in targets {
            guard let m = host.module(named: t) else {
                throw AdapterFileError.unsupportedTargets(file: d.configPath, reason: "'\(t)' is none of the model's projections (\(available))")
            }
            guard m.isAttention else {
                throw AdapterFileError.incompatible(file: d.configPath, reason: "LoRTA adapts attention projections whose input is the \(host.headCount) heads; \(m.name) is not one")
            }
            modules.append(m)
        }
        let sizes = peft.outputSizes ?? Array(repeating: host.headCount * host.headDimension, count: targets.count)
        guard sizes.count == modules.count else {
            throw AdapterFileError.configuration(file: d.configPath, .invalidField(name: "output_sizes", reason: "\(sizes.count) sizes for \(modules.count) target modules"))
        }
        for (m, s) in zip(modules, sizes) where m.outputSize != s {
            throw AdapterFileError.incompatible(file: d.configPath, reason: "LoRTA output size of \(m.name) is \(s), the model's is \(m.outputSize)")
        }
        peft.layerCount = host.layerCount
        peft.headCount = host.headCount
        peft.headDimension = host.headDimension
        peft.targetModules = .names(modules.map(\.name))
        let configuration: LoRTAConfiguration
        do { configuration = try LoRTAConfiguration(peftConfiguration: peft) } catch let e as AdapterConfigurationError {
            throw AdapterFileError.configuration(file: d.configPath, e)
        }
        let expected = configuration.factorTensorShapes
        var tensors: [String: Tensor] = [:]
        for (name, shape) in expected {
            tensors[name] = try AdapterDirectory.tensor(d.weights, file: d.weightsPath, name, shape: shape)
        }
        try AdapterDirectory.checkNoExtra(d.weights, file: d.weightsPath, expected: Set(expected.map(\.name)))
        let factors = LoRTAFactors(a: configuration.factorATensorNames.map { tensors[$0]! }, b: tensors["lora_B"]!,
                                   cH: tensors["lora_C_h"]!, cL: tensors["lora_C_l"]!, cM: tensors["lora_C_m"]!)
        return try LoRTAAdapter(configuration: configuration, factors: factors)
    }

    private static func loadReference(_ d: (config: PEFTAdapterConfiguration, raw: [String: Any], configPath: String,
                                            weights: SafeTensorsReader, weightsPath: String),
                                      host: AdapterHost) throws -> LoRTAAdapter {
        let peft = d.config
        try refuseLoRAOptions(peft, file: d.configPath)
        try AdapterDirectory.refuseLayerSelection(d.raw, file: d.configPath)
        try checkShape(peft, host: host, file: d.configPath)
        let hidden = host.headCount * host.headDimension
        let qkvo = host.modules.filter(\.isAttention)
        guard qkvo.count == 4 else {
            throw AdapterFileError.incompatible(file: d.weightsPath, reason: "the reference format's lora_C_m has 4 rows (q, k, v, o); the model has \(qkvo.count) attention projections whose input is its heads (\(qkvo.map(\.name)))")
        }
        let selected = try AdapterDirectory.resolveTargets(peft.targetModules, host: host, layerPrefix: host.layerPath,
                                                           file: d.configPath)
        if let other = selected.first(where: { m in !qkvo.contains(m) }) {
            throw AdapterFileError.unsupportedTargets(file: d.configPath, reason: "LoRTA adapts only the attention projections \(qkvo.map(\.name)); target_modules selects \(other.name)")
        }
        let rows = qkvo.indices.filter { selected.contains(qkvo[$0]) }
        for i in rows where qkvo[i].outputSize != hidden || qkvo[i].inputSize != hidden {
            let m = qkvo[i]
            throw AdapterFileError.incompatible(file: d.weightsPath, reason: "\(m.name) is \(m.outputSize) × \(m.inputSize), but the LoRTA reference format has one lora_A of hidden × r (\(hidden) × r) and describes only square \(hidden) × \(hidden) updates; under grouped-query attention it cannot describe K and V (save the adapter in our layout, which has one A per output width)")
        }
        let r = peft.rank, p = "base_model.model."
        let shapes: [(String, [Int])] = [("lora_A", [hidden, r]), ("lora_B", [r, host.headDimension]),
                                         ("lora_C_l", [host.layerCount, r]), ("lora_C_h", [host.headCount, r]),
                                         ("lora_C_m", [4, r])]
        var t: [String: Tensor] = [:]
        for (name, shape) in shapes {
            if name != "lora_A", name != "lora_B", let e = d.weights.entry(p + name), e.shape.count == 2,
               e.shape[0] == shape[0], e.shape[1] != r {
                throw AdapterFileError.rankMismatch(file: d.weightsPath, tensor: p + name, configured: r, actual: e.shape[1])
            }
            t[name] = try AdapterDirectory.tensor(d.weights, file: d.weightsPath, p + name, shape: shape)
        }
        try AdapterDirectory.checkNoExtra(d.weights, file: d.weightsPath, expected: Set(shapes.map { p + $0.0 }))
        let cm = t["lora_C_m"]!.scalars
        let cM = try Tensor(rows.flatMap { cm[($0 * r)..<(($0 + 1) * r)] }, shape: [rows.count, r])
        let configuration = try LoRTAConfiguration(rank: r, alpha: peft.alpha, targetModules: rows.map { qkvo[$0].name },
                                                   layerCount: host.layerCount, headCount: host.headCount,
                                                   headDimension: host.headDimension)
        let factors = LoRTAFactors(a: [t["lora_A"]!], b: t["lora_B"]!, cH: t["lora_C_h"]!, cL: t["lora_C_l"]!, cM: cM)
        return try LoRTAAdapter(configuration: configuration, factors: factors)
    }
}
