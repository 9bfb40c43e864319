import Foundation

/// Errors of merging an adapter directory into a base checkpoint.
public enum AdapterMergeError: Error, Equatable, CustomStringConvertible {
    case missingFile(String)
    /// A tensor in the adapter file that is neither `lora_A` nor `lora_B` of a module.
    case unexpectedAdapterTensor(String)
    case incompleteModule(module: String, missing: String)
    case moduleNotInBase(module: String, tried: [String])
    case ambiguousBaseTensor(module: String, candidates: [String])
    case moduleNotTargeted(module: String)
    case targetMatchesNothing(target: String)
    case shapeMismatch(module: String, reason: String)
    case unsupportedBaseDType(tensor: String, dtype: String)
    case nonFinite(tensor: String)
    /// LoRTA: a targeted base module has no purely numeric dotted component before its target.
    case noLayerIndex(module: String)
    /// LoRTA: a targeted base module's layer index is not below the adapter's `num_layers`.
    case layerOutOfRange(module: String, layer: Int, layerCount: Int)
    /// LoRTA: two base tensors map to the same (layer, target) slice.
    case duplicateSlice(layer: Int, target: String, tensors: [String])
    /// The merged (or unmerged) weight `tensor` holds a value its dtype cannot store: NaN,
    /// infinity, or a finite value beyond the dtype's range (F16 ≥ 65520); the first such
    /// element (coordinates outermost first) and its value. Checked before anything is written.
    case unrepresentableResult(tensor: String, dtype: String, element: [Int], value: Float)
    /// ``MergedCheckpoint/writeModelDirectory(to:copyingFilesFrom:overwrite:)``: the output
    /// directory exists, is not empty, and `overwrite` is false.
    case outputDirectoryNotEmpty(String)
    /// A file system operation on the output failed (`operation path: reason`).
    case fileSystem(path: String, reason: String)

    public var description: String {
        switch self {
        case .missingFile(let p): return "missing file: \(p)"
        case .unexpectedAdapterTensor(let n):
            return "adapter tensor '\(n)' is not a lora_A/lora_B weight (embedding LoRA, trained biases and other tensors are not supported)"
        case .incompleteModule(let m, let missing): return "module '\(m)' has no \(missing) weight in the adapter"
        case .moduleNotInBase(let m, let tried):
            return "module '\(m)' is not in the base model (looked for \(tried.joined(separator: ", ")))"
        case .ambiguousBaseTensor(let m, let c):
            return "module '\(m)' matches several base tensors: \(c.joined(separator: ", "))"
        case .moduleNotTargeted(let m): return "adapter module '\(m)' does not match target_modules"
        case .targetMatchesNothing(let t): return "target module '\(t)' matches no module of the adapter"
        case .shapeMismatch(let m, let r): return "module '\(m)': \(r)"
        case .unsupportedBaseDType(let t, let d): return "base tensor '\(t)' has dtype \(d); merging supports F32, F16 and BF16"
        case .nonFinite(let t): return "tensor '\(t)' contains NaN or infinity"
        case .noLayerIndex(let m):
            return "module '\(m)' matches a LoRTA target but has no numeric layer index before it"
        case .layerOutOfRange(let m, let l, let n):
            return "module '\(m)' has layer index \(l), outside the LoRTA adapter's layers 0..<\(n) (num_layers)"
        case .duplicateSlice(let l, let t, let ts):
            return "layer \(l), target '\(t)' is matched by several base tensors: \(ts.joined(separator: ", "))"
        case .unrepresentableResult(let t, let d, let element, let value):
            return "the merged '\(t)' cannot be written as \(d): \(StoredFloat.problem(type: d, element: element, value: value))"
                + "; the adapter's update is too large for this base (check lora_alpha, r and the adapter's weights). Nothing was written"
        case .outputDirectoryNotEmpty(let p):
            return "\(p) exists and is not empty (pass overwrite to replace it)"
        case .fileSystem(let p, let r):
            return "cannot write \(p): \(r)"
        }
    }
}

/// What a merge did.
public struct MergeSummary: Sendable, Codable, Equatable {
    /// `LORA` or `LORTA`.
    public var adapterType: String
    /// `merge` or `unmerge`.
    public var operation: String
    public var tensorsTotal: Int
    public var tensorsChanged: Int
    /// Largest |ΔW| over all changed tensors.
    public var maxAbsDelta: Float
    /// Base tensors that were changed, in file order.
    public var changedTensors: [String]

    enum CodingKeys: String, CodingKey {
        case adapterType = "adapter_type", operation, tensorsTotal = "tensors_total"
        case tensorsChanged = "tensors_changed", maxAbsDelta = "max_abs_delta"
        case changedTensors = "changed_tensors"
    }
}

/// Folds an adapter into the frozen weights of a safetensors checkpoint, or takes it out.
///
/// **Module → base tensor rules.** An adapter module `M` (from adapter keys
/// `base_model.model.M.lora_A.weight`) is applied to the base tensor named, in this order:
/// `M.weight`; else `M'.weight` where `M'` is `M` without its first dotted components (so an
/// adapter trained on `BertForSequenceClassification`, modules `bert.encoder…`, applies to a
/// `BertModel` checkpoint `encoder…`); else the single base tensor whose name ends with
/// `.M.weight` (several → an ambiguity error). Every module must match `target_modules`
/// (PEFT's rule: equal to an entry or ending with "." + entry) and every entry must match at
/// least one module. These rules are for `LORA`; `LORTA` adapters (one CP decomposition for
/// all layers and targets) map base tensors to (layer, matrix type) slices by name instead —
/// see `AdapterMerger.lortaUpdates(config:adapter:base:)` (internal).
///
/// Changed tensors keep their dtype (F32, F16 or BF16; computed in Float32 and rounded back
/// once); every other tensor is copied byte for byte, and `__metadata__` is kept. Every value
/// written must be finite in its dtype: a merge whose update overflows (to infinity in Float32,
/// or beyond an F16 or BF16 base's range) is refused, naming the tensor and the first bad
/// element. The output is written atomically after everything was validated and computed: on
/// any error no output file exists. ``merged(baseModel:adapterDirectory:unmerge:)`` computes a
/// merge without writing it, for callers that have more to do before the output appears.
public enum AdapterMerger {
    /// Applies the PEFT adapter in `adapterDirectory` (`adapter_config.json` +
    /// `adapter_model.safetensors`) to `baseModel` and writes `output`: ``merged(baseModel:adapterDirectory:unmerge:)``
    /// followed by ``MergedCheckpoint/write(to:)``.
    /// - Parameters:
    ///   - baseModel: the base checkpoint (a `.safetensors` file).
    ///   - adapterDirectory: the PEFT adapter directory (`LORA` or `LORTA`).
    ///   - output: the `.safetensors` file to write (atomically; only after everything succeeded).
    ///   - unmerge: subtract the update instead of adding it.
    /// - Returns: a summary of the changed tensors.
    /// - Throws: the errors of ``merged(baseModel:adapterDirectory:unmerge:)`` and
    ///   ``MergedCheckpoint/write(to:)``.
    /// - Complexity: O(Σ d_out·d_in·r) over adapted matrices plus one copy of the file.
    public static func merge(baseModel: URL, adapterDirectory: URL, output: URL, unmerge: Bool = false) throws -> MergeSummary {
        let merged = try merged(baseModel: baseModel, adapterDirectory: adapterDirectory, unmerge: unmerge)
        try merged.write(to: output)
        return merged.summary
    }

    /// Computes the merge of the PEFT adapter in `adapterDirectory` into `baseModel` in
    /// memory, writing nothing: the result holds the encoded output and its summary, so a
    /// caller can finish everything else (e.g. format its report) before
    /// ``MergedCheckpoint/write(to:)`` or
    /// ``MergedCheckpoint/writeModelDirectory(to:copyingFilesFrom:overwrite:)`` puts a file in
    /// place.
    ///
    /// Every value of the output is checked: a changed tensor must be finite and storable in
    /// its dtype after the update (an F16 weight must stay below 65520 in magnitude), and the
    /// F32, F16, BF16 and F64 tensors copied unchanged must be finite too.
    /// - Parameters:
    ///   - baseModel: the base checkpoint (a `.safetensors` file).
    ///   - adapterDirectory: the PEFT adapter directory (`LORA` or `LORTA`).
    ///   - unmerge: subtract the update instead of adding it.
    /// - Throws: ``AdapterMergeError`` (``AdapterMergeError/unrepresentableResult(tensor:dtype:element:value:)``
    ///   when a merged value overflows its dtype, and the module, shape and target errors),
    ///   ``AdapterConfigurationError``, ``SafeTensorsError`` for unreadable files (and
    ///   ``SafeTensorsError/unrepresentableValue(tensor:dtype:element:value:)`` for a NaN or
    ///   infinity in a base tensor the adapter does not change), the LoRTA loading errors.
    /// - Complexity: O(Σ d_out·d_in·r) over adapted matrices; holds one encoded copy of the
    ///   output.
    public static func merged(baseModel: URL, adapterDirectory: URL, unmerge: Bool = false) throws -> MergedCheckpoint {
        let configURL = adapterDirectory.appendingPathComponent("adapter_config.json")
        let weightsURL = adapterDirectory.appendingPathComponent("adapter_model.safetensors")
        guard FileManager.default.fileExists(atPath: configURL.path) else { throw AdapterMergeError.missingFile(configURL.path) }
        guard FileManager.default.fileExists(atPath: weightsURL.path) else { throw AdapterMergeError.missingFile(weightsURL.path) }
        guard FileManager.default.fileExists(atPath: baseModel.path) else { throw AdapterMergeError.missingFile(baseModel.path) }
        let config = try PEFTAdapterConfiguration(contentsOf: configURL)
        let adapter = try SafeTensorsReader(contentsOf: weightsURL)
        let base = try SafeTensorsReader(contentsOf: baseModel)
        // base tensor name → ΔW, Float32, base layout
        let updates = try config.peftType.format.checkpointUpdates(config: config, adapter: adapter, base: base)
        var writer = SafeTensorsWriter()
        writer.metadata = base.metadata
        writer.requiresFiniteValues = true
        var changed: [String] = []
        var maxDelta: Float = 0
        for entry in base.entries {
            guard let delta = updates[entry.name] else {
                try writer.addRaw(entry.name, dtype: entry.dtype, shape: entry.shape, bytes: try base.rawBytes(entry.name))
                continue
            }
            guard [.f32, .f16, .bf16].contains(entry.dtype) else {
                throw AdapterMergeError.unsupportedBaseDType(tensor: entry.name, dtype: entry.dtype.rawValue)
            }
            var weight = try base.tensor(entry.name)
            try weight.add(delta, sign: unmerge ? -1 : 1)
            maxDelta = max(maxDelta, delta.maxAbsolute)
            do {
                try writer.add(entry.name, weight, as: entry.dtype)
            } catch SafeTensorsError.unrepresentableValue(let name, let dtype, let element, let value) {
                throw AdapterMergeError.unrepresentableResult(tensor: name, dtype: dtype.rawValue, element: element, value: value)
            }
            changed.append(entry.name)
        }
        let summary = MergeSummary(adapterType: config.peftType.rawValue, operation: unmerge ? "unmerge" : "merge",
                                   tensorsTotal: base.entries.count, tensorsChanged: changed.count,
                                   maxAbsDelta: maxDelta, changedTensors: changed)
        return MergedCheckpoint(summary: summary, writer: writer, adapterDirectory: adapterDirectory)
    }

    // MARK: LoRA

    static func loraUpdates(config: PEFTAdapterConfiguration, adapter: SafeTensorsReader,
                            base: SafeTensorsReader) throws -> [String: Tensor] {
        var modules: [String: (a: String?, b: String?)] = [:]
        var order: [String] = []
        for name in adapter.names {
            var key = name
            if key.hasPrefix("base_model.model.") { key.removeFirst("base_model.model.".count) }
            let parsed: (String, Bool)?
            if key.hasSuffix(".lora_A.weight") { parsed = (String(key.dropLast(".lora_A.weight".count)), true) }
            else if key.hasSuffix(".lora_B.weight") { parsed = (String(key.dropLast(".lora_B.weight".count)), false) }
            else { parsed = nil }
            guard let (module, isA) = parsed, !module.isEmpty else { throw AdapterMergeError.unexpectedAdapterTensor(name) }
            if modules[module] == nil { order.append(module) }
            if isA { modules[module, default: (nil, nil)].a = name } else { modules[module, default: (nil, nil)].b = name }
        }
        try checkTargets(config.targetModules, modules: order)
        var updates: [String: Tensor] = [:]
        for module in order {
            guard let aName = modules[module]?.a else { throw AdapterMergeError.incompleteModule(module: module, missing: "lora_A") }
            guard let bName = modules[module]?.b else { throw AdapterMergeError.incompleteModule(module: module, missing: "lora_B") }
            let baseName = try resolveBaseTensor(module: module, in: base)
            let a = try adapter.tensor(aName), b = try adapter.tensor(bName)
            guard a.maxAbsolute.isFinite else { throw AdapterMergeError.nonFinite(tensor: aName) }
            guard b.maxAbsolute.isFinite else { throw AdapterMergeError.nonFinite(tensor: bName) }
            let r = config.rank(forModule: module)
            guard a.rank == 2, b.rank == 2, a.shape[0] == r, b.shape[1] == r else {
                throw AdapterMergeError.shapeMismatch(module: module,
                    reason: "lora_A \(a.shape) and lora_B \(b.shape) do not have rank r=\(r) (lora_A must be r×in, lora_B out×r)")
            }
            let wShape = base.entry(baseName)!.shape
            let expected = config.fanInFanOut ? [a.shape[1], b.shape[0]] : [b.shape[0], a.shape[1]]
            guard wShape == expected else {
                throw AdapterMergeError.shapeMismatch(module: module,
                    reason: "base '\(baseName)' has shape \(wShape), the adapter needs \(expected)\(config.fanInFanOut ? " (fan_in_fan_out)" : "")")
            }
            guard updates[baseName] == nil else {
                throw AdapterMergeError.ambiguousBaseTensor(module: module, candidates: [baseName])
            }
            var delta = try LoRA.deltaWeight(a: a, b: b, scale: config.scale(forModule: module))
            if config.fanInFanOut { delta = try delta.transposed() }
            updates[baseName] = delta
        }
        return updates
    }

    // MARK: shared rules

    static func checkTargets(_ targets: TargetModules, modules: [String]) throws {
        for m in modules where !targets.matches(m) { throw AdapterMergeError.moduleNotTargeted(module: m) }
        if case .names(let names) = targets {
            for t in names where !modules.contains(where: { $0 == t || $0.hasSuffix("." + t) }) {
                throw AdapterMergeError.targetMatchesNothing(target: t)
            }
        }
    }

    /// The base tensor that `module`'s update applies to (see the rules in the type's doc).
    static func resolveBaseTensor(module: String, in base: SafeTensorsReader) throws -> String {
        var tried: [String] = []
        var parts = module.split(separator: ".", omittingEmptySubsequences: false)
        while !parts.isEmpty {
            let candidate = parts.joined(separator: ".") + ".weight"
            tried.append(candidate)
            if base.entry(candidate) != nil { return candidate }
            parts.removeFirst()
        }
        let suffix = "." + module + ".weight"
        let matches = base.names.filter { $0.hasSuffix(suffix) }
        if matches.count == 1 { return matches[0] }
        if matches.count > 1 { throw AdapterMergeError.ambiguousBaseTensor(module: module, candidates: matches) }
        throw AdapterMergeError.moduleNotInBase(module: module, tried: tried + ["*" + suffix])
    }
}

extension Tensor {
    /// `self += sign · other` element-wise (same shape).
    mutating func add(_ other: Tensor, sign: Float) throws {
        try expectShape(other.shape, "add")
        withUnsafeMutableBufferPointer { dst in
            other.withUnsafeBufferPointer { src in
                for i in 0..<dst.count { dst[i] += sign * src[i] }
            }
        }
    }

    /// The transpose of a 2-dimensional tensor (a copy).
    public func transposed() throws -> Tensor {
        let (rows, cols) = try matrixShape("transposed")
        return try Tensor(shape: [cols, rows]) { out in
            withUnsafeBufferPointer { src in
                for i in 0..<rows { for j in 0..<cols { out[j * rows + i] = src[i * cols + j] } }
            }
        }
    }
}
