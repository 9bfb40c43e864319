import Foundation

extension AdapterMerger {
    /// The LoRTA updates for a base checkpoint: base tensor name → ΔW (`d_out × H·d_h`, scaling
    /// included, unsigned — the caller adds or subtracts it).
    ///
    /// **Rules.** The adapter is loaded from `adapter` with the checks of
    /// ``LoRTAAdapter/init(peftConfiguration:weights:)`` (every factor's shape against the
    /// configuration, no missing or extra tensor, finite values). Then each base tensor named
    /// `<module>.weight` is considered:
    /// - it is adapted when `<module>` matches a target as in PEFT — it equals the target or
    ///   ends with "." + target (``TargetModules/matchedTarget(_:)``; the longest target wins),
    ///   so `attention.output.dense` matches `encoder.layer.0.attention.output.dense` but not
    ///   the MLP's `encoder.layer.0.output.dense`; other tensors (biases included) are copied;
    /// - its matrix type `m` is the index of the matched target in `target_modules`;
    /// - its layer `l` is the last purely numeric dotted component of `<module>` before the
    ///   matched target (`encoder.layer.3.attention.self.query` → 3,
    ///   `model.layers.11.self_attn.q_proj` → 11);
    /// - its shape must be `d_out × (H·d_h)`, `d_out` being the target's output size;
    /// - its update is `ΔW_{l,m}[:, h·d_h:(h+1)·d_h] = s·A·diag(C_H[h] ∘ C_L[l] ∘ C_M[m])·B`,
    ///   `s = lora_alpha / r`, computed by the LoRTA merge kernel
    ///   (``LoRTAAdapter/deltaWeight(layer:matrix:)``).
    ///
    /// A (layer, target) pair that no base tensor matches is skipped (a model may lack some
    /// matrices in some layers), but every target must match at least one base tensor.
    ///
    /// - Throws: ``AdapterMergeError/noLayerIndex(module:)`` for a matched module without a
    ///   numeric component before its target, ``AdapterMergeError/layerOutOfRange(module:layer:layerCount:)``
    ///   for a layer index ≥ `num_layers`, ``AdapterMergeError/duplicateSlice(layer:target:tensors:)``
    ///   when two base tensors map to one (layer, target), ``AdapterMergeError/shapeMismatch(module:reason:)``,
    ///   ``AdapterMergeError/targetMatchesNothing(target:)``, and the errors of loading the adapter
    ///   (``LoRTAFileError``, ``AdapterConfigurationError``, ``LoRTAError``).
    /// - Complexity: O(Σ d_out·H·d_h·r) over adapted tensors; one ΔW per adapted tensor is held.
    static func lortaUpdates(config: PEFTAdapterConfiguration, adapter: SafeTensorsReader,
                             base: SafeTensorsReader) throws -> [String: Tensor] {
        let lorta = try LoRTAAdapter(peftConfiguration: config, weights: adapter)
        let c = lorta.configuration
        let targets = TargetModules.names(c.targetModules)
        var slices: [Int: [Int: String]] = [:]       // layer → matrix → base tensor
        var order: [(name: String, layer: Int, matrix: Int)] = []
        var matchedTargets = Set<Int>()
        for name in base.names where name.hasSuffix(".weight") {
            let module = String(name.dropLast(".weight".count))
            guard let target = targets.matchedTarget(module) else { continue }
            let m = c.targetModules.firstIndex(of: target)!
            let l = try layerIndex(module: module, target: target)
            guard l < c.layerCount else {
                throw AdapterMergeError.layerOutOfRange(module: module, layer: l, layerCount: c.layerCount)
            }
            if let other = slices[l]?[m] {
                throw AdapterMergeError.duplicateSlice(layer: l, target: target, tensors: [other, name])
            }
            let expected = [c.outputSizes[m], c.inputSize]
            let shape = base.entry(name)!.shape
            guard shape == expected else {
                throw AdapterMergeError.shapeMismatch(module: module,
                    reason: "base '\(name)' has shape \(shape); LoRTA target '\(target)' needs \(expected) (output size × num_heads·head_dim)")
            }
            slices[l, default: [:]][m] = name
            order.append((name, l, m))
            matchedTargets.insert(m)
        }
        for (m, t) in c.targetModules.enumerated() where !matchedTargets.contains(m) {
            throw AdapterMergeError.targetMatchesNothing(target: t)
        }
        var updates: [String: Tensor] = [:]
        for (name, l, m) in order { updates[name] = try lorta.deltaWeight(layer: l, matrix: m) }
        return updates
    }

    /// The layer index of `module` for LoRTA: the last purely numeric (ASCII digits) dotted
    /// component before the matched `target` suffix.
    /// - Throws: ``AdapterMergeError/noLayerIndex(module:)``.
    static func layerIndex(module: String, target: String) throws -> Int {
        guard module.count > target.count else { throw AdapterMergeError.noLayerIndex(module: module) }
        let head = module.dropLast(target.count + 1)             // without "." + target
        let numeric = head.split(separator: ".", omittingEmptySubsequences: false).last {
            !$0.isEmpty && $0.allSatisfy { $0.isASCII && $0.isNumber }
        }
        guard let numeric else { throw AdapterMergeError.noLayerIndex(module: module) }
        return Int(numeric) ?? Int.max                             // absurdly long → out of range
    }
}
