import Foundation

/// Everything the library does with a *kind* of adapter that is not a call on an adapter value:
/// make a fresh one from a recipe, load a saved directory, and compute a saved adapter's weight
/// updates for a checkpoint file (merge). Each adapter type conforms once, next to its code;
/// ``AdapterKind/format`` is the one place that maps a kind to its type, so recipes
/// (``AdapterRecipe/makeAdapter(for:)``), files (``AdapterFiles/load(from:host:)``) and the
/// merger (``AdapterMerger``) dispatch through it instead of each switching over the kinds.
/// A new kind of adapter is a new conforming type and one new line in ``AdapterKind/format``.
protocol AdapterFormat: Adapter {
    /// A fresh adapter for `host` as `recipe` asks (`modules`: the recipe's targets resolved
    /// against the host, in the recipe's order), whose update is zero.
    static func make(_ recipe: AdapterRecipe, modules: [AdapterHost.Module], host: AdapterHost) throws -> Self

    /// Loads a saved adapter directory (`adapter_config.json` + `adapter_model.safetensors`).
    init(contentsOf directory: URL, host: AdapterHost) throws

    /// The update `ΔW` (Float32, in the base tensor's layout) of every base tensor the saved
    /// adapter changes, keyed by the base tensor's name.
    static func checkpointUpdates(config: PEFTAdapterConfiguration, adapter: SafeTensorsReader,
                                  base: SafeTensorsReader) throws -> [String: Tensor]
}

extension AdapterKind {
    /// The adapter type of this kind (see ``AdapterFormat``).
    var format: any AdapterFormat.Type {
        switch self {
        case .lora: return LoRAAdapter.self
        case .lorta: return LoRTAAdapter.self
        }
    }
}

extension LoRAAdapter: AdapterFormat {
    static func make(_ recipe: AdapterRecipe, modules: [AdapterHost.Module], host: AdapterHost) throws -> LoRAAdapter {
        try LoRAAdapter(host: host, targets: modules.map(\.name),
                        configuration: LoRAConfiguration(rank: recipe.rank, alpha: recipe.alpha, useRSLoRA: recipe.useRSLoRA),
                        seed: recipe.seed)
    }

    static func checkpointUpdates(config: PEFTAdapterConfiguration, adapter: SafeTensorsReader,
                                  base: SafeTensorsReader) throws -> [String: Tensor] {
        try AdapterMerger.loraUpdates(config: config, adapter: adapter, base: base)
    }
}

extension LoRTAAdapter: AdapterFormat {
    static func make(_ recipe: AdapterRecipe, modules: [AdapterHost.Module], host: AdapterHost) throws -> LoRTAAdapter {
        if let m = modules.first(where: { !$0.isAttention }) {
            throw AdapterError.incompatible("LoRTA adapts the attention projections (its tensor runs over the heads); \(m.name) is not one")
        }
        let configuration = try LoRTAConfiguration(rank: recipe.rank, alpha: recipe.alpha, targetModules: modules.map(\.name),
                                                   layerCount: host.layerCount, headCount: host.headCount,
                                                   headDimension: host.headDimension,
                                                   outputSizes: modules.map(\.outputSize))
        let adapter = try LoRTAAdapter(configuration: configuration, seed: recipe.seed,
                                       initialization: recipe.lortaInitialization,
                                       cInitialValue: recipe.lortaCInitialValue)
        try adapter.validate(for: host)
        return adapter
    }

    static func checkpointUpdates(config: PEFTAdapterConfiguration, adapter: SafeTensorsReader,
                                  base: SafeTensorsReader) throws -> [String: Tensor] {
        try AdapterMerger.lortaUpdates(config: config, adapter: adapter, base: base)
    }
}
