import CKernels
import Foundation

/// The linear projections of a model that adapters can attach to, described the way adapters
/// need it: sizes, names, and the head structure of the attention input.
///
/// A model publishes one host description (``LlamaModel/adapterHost``); an ``Adapter`` is
/// created for it and checked against it. Module names are the Hugging Face / PEFT ones
/// (`q_proj`, `gate_proj`, …), so `target_modules` in files and on the command line mean what
/// they mean in PEFT.
public struct AdapterHost: Sendable, Equatable {
    /// One kind of projection that every layer has (`y = x Wᵀ`, `W` is `outputSize × inputSize`).
    public struct Module: Sendable, Equatable {
        /// Short name, the PEFT `target_modules` entry: `q_proj`.
        public let name: String
        /// Path below a layer, as in the Hugging Face module tree: `self_attn.q_proj`.
        public let path: String
        /// Columns of `W` (width of the projection's input).
        public let inputSize: Int
        /// Rows of `W`.
        public let outputSize: Int
        /// True for projections whose input is split into the attention heads (LoRTA's tensor
        /// runs over those heads: Q, K, V read the block input, O the heads' context).
        public let isAttention: Bool

        public init(name: String, path: String, inputSize: Int, outputSize: Int, isAttention: Bool) {
            self.name = name
            self.path = path
            self.inputSize = inputSize
            self.outputSize = outputSize
            self.isAttention = isAttention
        }
    }

    /// `model_type` of the architecture (`llama`, `bert`).
    public let modelType: String
    /// Number of layers `L`.
    public let layerCount: Int
    /// Attention heads `H` (query heads).
    public let headCount: Int
    /// Head width `d_h`.
    public let headDimension: Int
    /// The projections of one layer, in the model's order.
    public let modules: [Module]
    /// Module path of the layer list in the Hugging Face model, e.g. `model.layers`; PEFT keys
    /// are `base_model.model.<layerPath>.<layer>.<module path>.lora_A.weight`.
    public let layerPath: String
    /// Paths below a layer of the other linear layers, which adapters cannot target here
    /// (BERT's MLP `intermediate.dense`, `output.dense`): a `target_modules` entry that selects
    /// one of them (PEFT would adapt it) is refused instead of being half applied.
    public let frozenLinearPaths: [String]

    public init(modelType: String, layerCount: Int, headCount: Int, headDimension: Int, modules: [Module],
                layerPath: String, frozenLinearPaths: [String] = []) {
        self.modelType = modelType
        self.layerCount = layerCount
        self.headCount = headCount
        self.headDimension = headDimension
        self.modules = modules
        self.layerPath = layerPath
        self.frozenLinearPaths = frozenLinearPaths
    }

    /// The module with a given short name (or full path), if the model has it.
    public func module(named name: String) -> Module? {
        modules.first { $0.name == name || $0.path == name }
    }

    /// The modules for `names` in that order.
    /// - Throws: ``AdapterError/unknownTarget(_:available:)`` for a name the model does not have.
    public func modules(named names: [String]) throws(AdapterError) -> [Module] {
        try names.map { name throws(AdapterError) in
            guard let m = module(named: name) else { throw .unknownTarget(name, available: modules.map(\.name)) }
            return m
        }
    }

    /// The `target_modules` entry PEFT needs for a module: its short name when that is the last
    /// component of its path and, by PEFT's suffix rule, matches no other projection of the
    /// layer; else its path inside the layer (BERT's `output` is `attention.output.dense`).
    public func peftTargetName(_ m: Module) -> String {
        let clash = modules.contains { $0 != m && ($0.path == m.name || $0.path.hasSuffix("." + m.name)) }
        let own = m.path == m.name || m.path.hasSuffix("." + m.name)
        return clash || !own ? m.path : m.name
    }

    /// The modules an adapter's `targets` name, checked to be the host's short names (what the
    /// model passes to ``Adapter/forward(layer:input:outputs:)``), distinct and non-empty.
    /// Paths (`attention.output.dense`) are resolved by ``AdapterRecipe`` and the file loaders,
    /// not accepted here, so that an adapter can never silently miss its projection.
    /// - Throws: ``AdapterError``.
    public func adaptedModules(_ targets: [String]) throws(AdapterError) -> [Module] {
        guard !targets.isEmpty else { throw .incompatible("no target modules") }
        let found = try modules(named: targets)
        for (t, m) in zip(targets, found) where t != m.name {
            throw .incompatible("target \"\(t)\" must be given by its module name \"\(m.name)\"")
        }
        guard Set(targets).count == targets.count else { throw .incompatible("duplicate targets \(targets)") }
        return found
    }

    /// PEFT's module prefix of one projection: `base_model.model.model.layers.3.self_attn.q_proj`.
    public func peftPrefix(layer: Int, module: Module) -> String {
        "base_model.model.\(layerPath).\(layer).\(module.path)"
    }
}

/// Errors about an adapter and the model it is attached to.
public enum AdapterError: Error, Equatable, CustomStringConvertible {
    /// A target module name the model does not have.
    case unknownTarget(String, available: [String])
    /// The adapter was made for another model shape (the message says what differs).
    case incompatible(String)
    /// Parameters of the wrong count or shape were given.
    case parameterMismatch(String)

    public var description: String {
        switch self {
        case .unknownTarget(let t, let available):
            return "the model has no projection \"\(t)\" (it has: \(available.joined(separator: ", ")))"
        case .incompatible(let m): return "the adapter does not fit the model: \(m)"
        case .parameterMismatch(let m): return "adapter parameters: \(m)"
        }
    }
}

/// The input rows that several projections of one layer share (`n × width`, row stride `stride`).
public struct AdapterInput {
    public let pointer: UnsafePointer<Float>
    public let rows: Int
    public let width: Int
    public let stride: Int

    public init(_ pointer: UnsafePointer<Float>, rows: Int, width: Int, stride: Int) {
        self.pointer = pointer
        self.rows = rows
        self.width = width
        self.stride = stride
    }
}

/// The output (forward) or output gradient (backward) of one projection, `n × outputSize` at
/// `pointer` with row stride `stride` (often a column slice of a wider buffer: q|k|v).
public struct AdapterOutput {
    public let module: String
    public let pointer: UnsafeMutablePointer<Float>
    public let stride: Int

    public init(module: String, _ pointer: UnsafeMutablePointer<Float>, stride: Int) {
        self.module = module
        self.pointer = pointer
        self.stride = stride
    }
}

/// A trainable update of some projections of a model: LoRA (``LoRAAdapter``) or LoRTA
/// (``LoRTAAdapter``). Models call it at each group of projections that share an input and
/// never look at the adapter's kind; training, merging and files go through the same methods.
///
/// Forward contract: for a layer `l` and projections `m` reading the same input `X`, the adapted
/// output is `Y_m = X W_mᵀ + Δ_{l,m}(X)`. The adapter gives `Δ` as low-rank terms
/// (``forwardTerms(layer:input:modules:)``) and the model's frozen product adds them to each
/// output tile while it is in cache; ``forward(layer:input:outputs:)`` adds them afterwards (same
/// bits). Modules the adapter does not target get no term, so a model passes every projection
/// of the group.
public protocol Adapter: Sendable {
    /// The adapter's kind (its `peft_type` in files).
    var kind: AdapterKind { get }
    /// The adapted modules (short names), in the adapter's order.
    var targetModules: [String] { get }
    /// One line for logs: kind, rank and targets (e.g. `LoRA r=8 on q_proj,v_proj`).
    var summary: String { get }
    /// The trainable tensors in a fixed order (the optimizer's, the checkpoint's).
    var parameters: [Tensor] { get }
    /// Replaces the trainable tensors (same count and shapes as ``parameters``).
    /// - Throws: ``AdapterError/parameterMismatch(_:)``.
    mutating func setParameters(_ parameters: [Tensor]) throws
    /// Names of ``parameters`` for files (PEFT-style keys for `host`).
    func parameterNames(host: AdapterHost) -> [String]
    /// Checks that the adapter was made for this model shape.
    /// - Throws: ``AdapterError``.
    func validate(for host: AdapterHost) throws
    /// The adapter's term `Δ_{l,m}(X)` of every adapted module among `modules` (projections of
    /// `layer` reading `input`), as low-rank terms to be added in order to those outputs
    /// (``LowRankTerm/module`` names the output, ``LowRankTerm/column`` is inside it).
    /// - Complexity: O(n · r · d_in) (the projections of the input onto the adapter's ranks);
    ///   adding the terms costs O(n · r · Σ d_out).
    func forwardTerms(layer: Int, input: AdapterInput, modules: [String]) throws -> [LowRankTerm]
    /// Backward of the terms given `dY_m` in `outputGradients`: adds the parameter gradients to
    /// `parameterGradients` (same layout as ``parameters``) and, when `inputGradient` is true,
    /// returns the adapter's part of `dX` as low-rank terms on the input's columns (module `""`),
    /// to be added in order after the frozen part `Σ_m dY_m W_m` (the model's); else `[]`.
    func backwardTerms(layer: Int, input: AdapterInput, outputGradients: [AdapterOutput],
                       parameterGradients: inout [Tensor], inputGradient: Bool) throws -> [LowRankTerm]
    /// The dense update `ΔW` (`outputSize × inputSize`, the weight's orientation) that merging
    /// adds to one projection, or nil when that projection is not adapted.
    func delta(layer: Int, module: String) throws -> Tensor?
    /// Writes the adapter's directory for `host` (`adapter_config.json` +
    /// `adapter_model.safetensors`, each atomically); ``AdapterFiles/load(from:host:)`` reads it.
    /// - Throws: ``AdapterError`` for another model shape, ``AdapterFileError``.
    func save(to directory: URL, host: AdapterHost) throws
}

extension Adapter {
    /// Adds the adapter's term of `layer` to each output (`Y_m += Δ_{l,m}(X)`): the
    /// ``forwardTerms(layer:input:modules:)`` applied after the frozen product. Same bits as the
    /// models' fused products.
    public func forward(layer: Int, input: AdapterInput, outputs: [AdapterOutput]) throws {
        let terms = try forwardTerms(layer: layer, input: input, modules: outputs.map(\.module))
        try LowRankTerm.apply(terms, rows: input.rows, to: outputs)
    }

    /// Backward of ``forward(layer:input:outputs:)``: the parameter gradients (added to
    /// `parameterGradients`) and, when `inputGradient` is given (`n × width` at the input's
    /// shape, own stride), the adapter's part of `dX` added to it.
    public func backward(layer: Int, input: AdapterInput, outputGradients: [AdapterOutput],
                         parameterGradients: inout [Tensor], inputGradient: AdapterOutput?) throws {
        let terms = try backwardTerms(layer: layer, input: input, outputGradients: outputGradients,
                                      parameterGradients: &parameterGradients, inputGradient: inputGradient != nil)
        if let dx = inputGradient {
            try LowRankTerm.apply(terms, rows: input.rows, to: [AdapterOutput(module: "", dx.pointer, stride: dx.stride)])
        }
    }

    /// Number of trainable scalars.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }

    /// True when `module` is one of ``targetModules``.
    public func adapts(_ module: String) -> Bool { targetModules.contains(module) }

    /// Zero tensors in the layout of ``parameters`` (gradient accumulators).
    public func zeroGradients() throws -> [Tensor] { try parameters.map { try Tensor(zeros: $0.shape) } }

    /// `W += ΔW` for one projection (`weight` is its float32 `d_out × d_in` matrix); nothing
    /// happens when the adapter does not adapt it.
    /// - Throws: ``AdapterError/incompatible(_:)`` when the shapes differ.
    /// - Complexity: O(d_out · d_in · r).
    public func merge(into weight: inout Tensor, layer: Int, module: String) throws {
        guard let d = try delta(layer: layer, module: module) else { return }
        guard d.shape == weight.shape else {
            throw AdapterError.incompatible("\(module) of layer \(layer): weight \(weight.shape), update \(d.shape)")
        }
        let n = weight.count
        let dp = d.pointer, wp = weight.mutablePointer
        for i in 0..<n { wp[i] += dp[i] }
        withExtendedLifetime(d) {}
    }
}

