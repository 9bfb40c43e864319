/// The kinds of adapter this library trains; the raw values are PEFT's `peft_type`.
/// Recipes (``AdapterRecipe/makeAdapter(for:)``), saved directories
/// (``AdapterFiles/load(from:host:)``) and the checkpoint merger (``AdapterMerger``) reach the
/// kind's type through one internal mapping; everything else works through ``Adapter``.
public enum AdapterKind: String, Sendable, CaseIterable {
    /// ``LoRAAdapter``: one pair of low-rank factors per (layer, projection).
    case lora = "LORA"
    /// ``LoRTAAdapter``: one CP decomposition shared by every attention projection of every layer.
    case lorta = "LORTA"
}

/// How to make a fresh adapter for a model: kind, rank, scale, targets and initialisation, with
/// PEFT's names (`r`, `lora_alpha`, `target_modules`).
///
/// ```swift
/// let recipe = AdapterRecipe(kind: .lorta, rank: 8, alpha: 16, targets: ["q_proj", "k_proj", "v_proj", "o_proj"])
/// let adapter = try recipe.makeAdapter(for: model.adapterHost)
/// ```
public struct AdapterRecipe: Sendable, Equatable {
    public var kind: AdapterKind
    /// Rank `r` (≥ 1).
    public var rank: Int
    /// `lora_alpha`: the update is scaled by `alpha / r` (`alpha / √r` with ``useRSLoRA``).
    public var alpha: Float
    /// Module names of the host (short names such as `q_proj` / `query`, or paths inside a
    /// layer such as `attention.output.dense`); LoRTA takes attention projections only, and their
    /// order is its matrix-type axis.
    public var targets: [String]
    /// LoRA only: rank-stabilised scaling `alpha / √r`.
    public var useRSLoRA: Bool
    /// LoRTA only: how the factors start.
    public var lortaInitialization: LoRTAAdapter.Initialization
    /// LoRTA only, with ``LoRTAAdapter/Initialization/ones``: the value of every `C` entry.
    public var lortaCInitialValue: Float
    /// Seed of the random initialisation (the result is a deterministic function of it).
    public var seed: UInt64

    public init(kind: AdapterKind, rank: Int, alpha: Float, targets: [String], useRSLoRA: Bool = false,
                lortaInitialization: LoRTAAdapter.Initialization = .ones, lortaCInitialValue: Float = 1,
                seed: UInt64 = 0) {
        self.kind = kind
        self.rank = rank
        self.alpha = alpha
        self.targets = targets
        self.useRSLoRA = useRSLoRA
        self.lortaInitialization = lortaInitialization
        self.lortaCInitialValue = lortaCInitialValue
        self.seed = seed
    }

    /// A fresh adapter for `host` whose update is zero (`B = 0`), so the adapted model starts
    /// equal to the base model. Target names are resolved against the host and stored as its
    /// short module names.
    /// - Throws: ``AdapterError/unknownTarget(_:available:)`` for a name the model does not have,
    ///   ``AdapterError/incompatible(_:)`` for a LoRTA target that is not an attention projection,
    ///   ``LoRAError`` / ``LoRTAError`` for an invalid rank, alpha or duplicate target.
    /// - Complexity: O(parameter count).
    public func makeAdapter(for host: AdapterHost) throws -> any Adapter {
        try kind.format.make(self, modules: try host.modules(named: targets), host: host)
    }
}
