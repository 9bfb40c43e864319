import CKernels

/// LoRA adapters on a BERT encoder: one pair of factors per (layer, target projection).
///
/// For layer `l` and target `targets[t]` the projection `y = x Wᵀ + b` becomes
/// `y = x Wᵀ + b + s · (x A[l][t]ᵀ) B[l][t]ᵀ` with `A` `r × d`, `B` `d × r`, `s` from
/// ``LoRAConfiguration/scale``. All adapted BERT projections are `d × d`.
public struct BertLoRAAdapters: Sendable {
    /// Rank, alpha and scaling rule (shared by every matrix).
    public let configuration: LoRAConfiguration
    /// The adapted projections (distinct, in the given order).
    public let targets: [BertProjection]
    /// `a[l][t]`: lora_A of layer `l`, target `targets[t]`, `r × d`.
    public var a: [[Tensor]]
    /// `b[l][t]`: lora_B, `d × r`.
    public var b: [[Tensor]]

    /// PEFT initialisation for every (layer, target): A kaiming-uniform (a = √5), B = 0, so the
    /// adapted model starts equal to the base model. Matrix `l·targets.count + t` draws from
    /// `lt_lora_init` with a seed derived from `seed` and that index.
    /// - Throws: ``BertError/invalidAdapter(_:)`` for no or duplicate targets, ``LoRAError`` for
    ///   an invalid configuration.
    public init(model: BertConfiguration, targets: [BertProjection], configuration: LoRAConfiguration,
                seed: UInt64) throws {
        try configuration.validate()
        try Self.checkTargets(targets)
        let d = model.hiddenSize, r = configuration.rank
        var a: [[Tensor]] = [], b: [[Tensor]] = []
        for l in 0..<model.layerCount {
            var la: [Tensor] = [], lb: [Tensor] = []
            for t in targets.indices {
                var ta = Tensor(uninitializedShape: [r, d]), tb = Tensor(uninitializedShape: [d, r])
                let index = UInt64(l * targets.count + t)
                let matrixSeed = seed &+ (index &+ 1) &* 0x9E37_79B9_7F4A_7C15
                try bertCheck(lt_lora_init(matrixSeed, Int64(r), Int64(d), Int64(d), ta.mutablePointer, tb.mutablePointer),
                              "lt_lora_init")
                la.append(ta); lb.append(tb)
            }
            a.append(la); b.append(lb)
        }
        self.configuration = configuration
        self.targets = targets
        self.a = a
        self.b = b
    }

    /// Adapters with given factors (`a[l][t]` `r × d`, `b[l][t]` `d × r`).
    /// - Throws: ``BertError/invalidAdapter(_:)`` when the shapes or counts do not fit `model`.
    public init(model: BertConfiguration, targets: [BertProjection], configuration: LoRAConfiguration,
                a: [[Tensor]], b: [[Tensor]]) throws {
        try configuration.validate()
        self.configuration = configuration
        self.targets = targets
        self.a = a
        self.b = b
        try validate(for: model)
    }

    /// Number of trained scalars: `L · |targets| · 2 · r · d`.
    public var parameterCount: Int { a.joined().reduce(0) { $0 + $1.count } + b.joined().reduce(0) { $0 + $1.count } }

    /// Checks targets, counts and factor shapes against a model configuration.
    public func validate(for model: BertConfiguration) throws(BertError) {
        try Self.checkTargets(targets)
        let d = model.hiddenSize, r = configuration.rank
        guard a.count == model.layerCount, b.count == model.layerCount else {
            throw .invalidAdapter("LoRA factors for \(a.count)/\(b.count) layers, the model has \(model.layerCount)")
        }
        for l in 0..<model.layerCount {
            guard a[l].count == targets.count, b[l].count == targets.count else {
                throw .invalidAdapter("layer \(l): \(a[l].count)/\(b[l].count) LoRA factors for \(targets.count) targets")
            }
            for t in targets.indices {
                guard a[l][t].shape == [r, d] else {
                    throw .invalidAdapter("layer \(l) \(targets[t]): lora_A has shape \(a[l][t].shape), expected \([r, d])")
                }
                guard b[l][t].shape == [d, r] else {
                    throw .invalidAdapter("layer \(l) \(targets[t]): lora_B has shape \(b[l][t].shape), expected \([d, r])")
                }
            }
        }
    }

    static func checkTargets(_ targets: [BertProjection]) throws(BertError) {
        guard !targets.isEmpty else { throw .invalidAdapter("no target projections") }
        guard Set(targets).count == targets.count else { throw .invalidAdapter("duplicate targets \(targets)") }
    }

    /// Index in ``targets`` of a projection, or nil when it is not adapted.
    func slot(_ p: BertProjection) -> Int? { targets.firstIndex(of: p) }
}

/// The adapters of a BERT model: LoRA per (layer, projection), or one LoRTA adapter shared by
/// every layer.
///
/// For LoRTA, ``LoRTAConfiguration/targetModules`` names the adapted projections with the raw
/// values of ``BertProjection`` (`"query"`, `"key"`, `"value"`, `"output"`; their position is
/// the matrix index `m`), `layerCount`, `headCount` and `headDimension` must be the model's,
/// and every output size must be `d`. Q, K and V of a layer share one LoRTA projection of the
/// layer input; the attention output has its own projection of the attention context.
public enum BertAdapters: Sendable {
    case lora(BertLoRAAdapters)
    case lorta(LoRTAAdapter)

    /// Number of trained scalars.
    public var parameterCount: Int {
        switch self {
        case .lora(let l): return l.parameterCount
        case .lorta(let a): return a.parameterCount
        }
    }

    /// Checks that the adapters fit a model configuration.
    public func validate(for model: BertConfiguration) throws(BertError) {
        switch self {
        case .lora(let l): try l.validate(for: model)
        case .lorta(let a):
            let c = a.configuration
            guard c.layerCount == model.layerCount, c.headCount == model.headCount,
                  c.headDimension == model.headSize else {
                throw .invalidAdapter("LoRTA adapter has L=\(c.layerCount), H=\(c.headCount), d_h=\(c.headDimension); the model has L=\(model.layerCount), H=\(model.headCount), d_h=\(model.headSize)")
            }
            guard c.outputSizes.allSatisfy({ $0 == model.hiddenSize }) else {
                throw .invalidAdapter("LoRTA output sizes \(c.outputSizes) must all be \(model.hiddenSize)")
            }
            let projections = c.targetModules.map { BertProjection(targetName: $0) }
            for (name, p) in zip(c.targetModules, projections) where p == nil {
                throw .invalidAdapter("LoRTA target \"\(name)\" is not one of \(BertProjection.allCases.map(\.rawValue)) or their module paths \(BertProjection.allCases.map(\.modulePath))")
            }
            guard Set(projections).count == projections.count else {
                throw .invalidAdapter("LoRTA targets \(c.targetModules) name a projection twice")
            }
        }
    }
}

/// A trainable linear classification head on the mean-pooled embedding: `logits = p Wᵀ + b`.
public struct BertClassificationHead: Sendable {
    /// `[classes, d]`.
    public var weight: Tensor
    /// `[classes]`.
    public var bias: Tensor

    /// `torch.nn.Linear`'s initialisation: weight and bias ~ U(−1/√d, 1/√d), drawn with
    /// `lt_rng_uniform(seed)` (weight from offset 0, bias after it).
    /// - Throws: ``BertError/invalidClassificationHead(_:)`` for fewer than 2 classes or d < 1.
    public init(hiddenSize d: Int, classCount: Int, seed: UInt64) throws {
        guard classCount >= 2, d >= 1 else {
            throw BertError.invalidClassificationHead("needs hiddenSize >= 1 and classCount >= 2, got \(d) and \(classCount)")
        }
        let bound = lt_kaiming_uniform_bound(Int64(d))
        var w = Tensor(uninitializedShape: [classCount, d]), b = Tensor(uninitializedShape: [classCount])
        try bertCheck(lt_rng_uniform(seed, 0, -bound, bound, w.mutablePointer, Int64(classCount * d)), "lt_rng_uniform")
        try bertCheck(lt_rng_uniform(seed, UInt64(classCount * d), -bound, bound, b.mutablePointer, Int64(classCount)),
                      "lt_rng_uniform")
        weight = w
        bias = b
    }

    /// A head with given parameters (`weight` `[classes, d]`, `bias` `[classes]`, classes >= 2).
    public init(weight: Tensor, bias: Tensor) throws {
        guard weight.rank == 2, weight.shape[0] >= 2, bias.shape == [weight.shape[0]] else {
            throw BertError.invalidClassificationHead("weight \(weight.shape) and bias \(bias.shape) must be [classes >= 2, d] and [classes]")
        }
        self.weight = weight
        self.bias = bias
    }

    /// Number of classes.
    public var classCount: Int { weight.shape[0] }

    func validate(for model: BertConfiguration) throws(BertError) {
        guard weight.rank == 2, weight.shape[0] >= 2, weight.shape[1] == model.hiddenSize,
              bias.shape == [weight.shape[0]] else {
            throw .invalidClassificationHead("weight \(weight.shape) and bias \(bias.shape); expected [classes >= 2, \(model.hiddenSize)] and [classes]")
        }
    }
}

/// Gradients of the adapters, in the layout of the adapters.
public enum BertAdapterGradients: Sendable {
    /// `a[l][t]`, `b[l][t]` as in ``BertLoRAAdapters``.
    case lora(a: [[Tensor]], b: [[Tensor]])
    /// Gradients of the LoRTA factors.
    case lorta(LoRTAFactors)
}

/// What ``BertModel/gradients(_:labels:adapters:head:)`` returns: the loss of the batch and the
/// gradients of everything trainable (head and adapters). Frozen weights get none.
public struct BertTrainingGradients: Sendable {
    /// Mean cross-entropy over the batch.
    public let loss: Float
    /// `[B, classes]`.
    public let logits: Tensor
    /// dL/dW `[classes, d]` and dL/db `[classes]` of the head.
    public let headWeight: Tensor
    public let headBias: Tensor
    /// nil when the model ran without adapters.
    public let adapters: BertAdapterGradients?
}

// MARK: - Adapter hooks of the forward

extension BertModel {
    /// Q/K/V projection with adapters: `qkv` (`n × 3d`, ld 3d) receives `X Wᵀ + b` plus the
    /// adapter outputs in the column slices of the adapted projections.
    static func qkvForward(_ w: BertLayerWeights, layer l: Int, adapters: BertAdapters?, input: Tensor,
                           qkv: UnsafeMutablePointer<Float>, n: Int, d: Int, H: Int) throws(BertError) {
        let n64 = Int64(n), d64 = Int64(d), ld3 = Int64(3 * d)
        let qkvProjections: [BertProjection] = [.query, .key, .value]
        try bertCheck(lt_linear_forward(n64, d64, ld3, input.pointer, d64, w.queryKeyValueWeight.pointer, d64,
                                        w.queryKeyValueBias.pointer, nil, 0, qkv, ld3), "lt_linear_forward (QKV)")
        if case .lora(let lora)? = adapters {
            // One fused frozen GEMM for Q|K|V (above), then each adapter's s (X Aᵀ) Bᵀ added
            // to its column slice.
            for (m, p) in qkvProjections.enumerated() {
                if let t = lora.slot(p) {
                    try loraDeltaForward(lora, layer: l, slot: t, x: input.pointer, n: n, d: d, y: qkv + m * d, ldy: 3 * d)
                }
            }
        }
        if case .lorta(let adapter)? = adapters {
            let targets = lortaTargets(adapter, qkvProjections)
            if !targets.isEmpty {
                let (u, _) = try lortaProject(adapter, input: input, n: n, wantP: false)
                try lortaExpand(adapter, layer: l, u: u, n: n, targets: targets,
                                outputs: targets.map { qkv + $0.slice * d }, ld: 3 * d)
            }
        }
    }

    /// Attention output projection with the residual: `sum = C Woᵀ + bo + X` plus the adapter
    /// output when the attention output is adapted.
    static func attentionOutputForward(_ w: BertLayerWeights, layer l: Int, adapters: BertAdapters?,
                                       context ctxTensor: Tensor, input: Tensor,
                                       sum: UnsafeMutablePointer<Float>, n: Int, d: Int) throws(BertError) {
        let n64 = Int64(n), d64 = Int64(d)
        let context = ctxTensor.pointer
        try bertCheck(lt_linear_forward(n64, d64, d64, context, d64, w.attentionOutputWeight.pointer, d64,
                                        w.attentionOutputBias.pointer, input.pointer, d64, sum, d64),
                      "lt_linear_forward (attention output)")
        if case .lora(let lora)? = adapters, let t = lora.slot(.attentionOutput) {
            try loraDeltaForward(lora, layer: l, slot: t, x: context, n: n, d: d, y: sum, ldy: d)
        }
        if case .lorta(let adapter)? = adapters {
            let targets = lortaTargets(adapter, [.attentionOutput])
            if !targets.isEmpty {
                let (u, _) = try lortaProject(adapter, input: ctxTensor, n: n, wantP: false)
                try lortaExpand(adapter, layer: l, u: u, n: n, targets: targets, outputs: [sum], ld: d)
            }
        }
    }

    /// `y += s (x Aᵀ) Bᵀ` for the LoRA adapter of one (layer, projection) (`n × d`, ld `ldy`):
    /// the adapter's term on top of the frozen GEMM's output.
    static func loraDeltaForward(_ lora: BertLoRAAdapters, layer l: Int, slot t: Int, x: UnsafePointer<Float>,
                                 n: Int, d: Int, y: UnsafeMutablePointer<Float>, ldy: Int) throws(BertError) {
        let r = Int64(lora.configuration.rank)
        var size: Int64 = 0
        try bertCheck(lt_lowrank_workspace_size(Int64(d), Int64(d), r, &size), "lt_lowrank_workspace_size")
        var work = Tensor(uninitializedShape: [Int(size)])
        try bertCheck(lt_lowrank_forward(Int64(n), Int64(d), Int64(d), r, lora.configuration.scale, x, Int64(d),
                                         lora.a[l][t].pointer, lora.b[l][t].pointer, y, Int64(ldy), 1,
                                         work.mutablePointer), "lt_lowrank_forward")
    }

    /// A LoRTA target of a layer: the matrix index `m` and the column slice (0 Q, 1 K, 2 V; 0
    /// for the attention output).
    struct LoRTATarget { let matrix: Int; let slice: Int }

    static func lortaTargets(_ a: LoRTAAdapter, _ projections: [BertProjection]) -> [LoRTATarget] {
        var out: [LoRTATarget] = []
        for (i, p) in projections.enumerated() {
            if let m = a.configuration.matrixIndex(of: p) {
                out.append(LoRTATarget(matrix: m, slice: p == .attentionOutput ? 0 : i))
            }
        }
        return out
    }

    /// `U` (`n × r`) and, when asked, `P` (`n·H × r`) of a LoRTA projection of `input` (`n × d`).
    static func lortaProject(_ a: LoRTAAdapter, input: Tensor, n: Int, wantP: Bool) throws(BertError) -> (Tensor, Tensor) {
        let c = a.configuration
        var u = Tensor(uninitializedShape: [n, c.rank])
        var p = Tensor(uninitializedShape: [wantP ? n * c.headCount : 0, c.rank])
        var dims = LoRTAAdapter.dims(c)
        try bertCheck(lt_lorta_project_forward(&dims, Int64(n), input.pointer, Int64(c.inputSize), a.factors.b.pointer,
                                               a.factors.cH.pointer, u.mutablePointer, wantP ? p.mutablePointer : nil),
                      "lt_lorta_project_forward")
        return (u, p)
    }

    static func lortaExpand(_ a: LoRTAAdapter, layer: Int, u: Tensor, n: Int, targets: [LoRTATarget],
                            outputs: [UnsafeMutablePointer<Float>], ld: Int) throws(BertError) {
        let c = a.configuration
        var dims = LoRTAAdapter.dims(c)
        let dOut = targets.map { Int64(c.outputSizes[$0.matrix]) }
        let aPointers: [UnsafePointer<Float>?] = targets.map { a.factors.a[c.factorAIndex(forMatrix: $0.matrix)].pointer }
        let yPointers: [UnsafeMutablePointer<Float>?] = outputs
        let bytes = lt_lorta_expand_workspace_size(&dims, Int64(targets.count), dOut)
        let status = LoRTAAdapter.withWorkspace(bytes) { ws in
            lt_lorta_expand_forward(&dims, Int64(n), u.pointer, a.factors.cL.pointer, a.factors.cM.pointer, c.scaling,
                                    Int64(layer), Int64(targets.count), targets.map { Int64($0.matrix) }, dOut,
                                    aPointers, yPointers, Array(repeating: Int64(ld), count: targets.count), ws, bytes)
        }
        withExtendedLifetime(a) {}
        try bertCheck(status, "lt_lorta_expand_forward")
    }

    /// The model with the adapters merged into its weights (`W += ΔW` for every adapted
    /// projection): its plain forward equals the adapted forward up to rounding.
    /// - Throws: ``BertError/invalidAdapter(_:)`` when the adapters do not fit.
    /// - Complexity: O(L · |targets| · d² · r).
    public func merged(with adapters: BertAdapters) throws -> BertModel {
        try adapters.validate(for: configuration)
        let d = configuration.hiddenSize
        var model = self
        for l in layers.indices {
            var lw = model.layers[l]
            var slices = try (0..<3).map { m in
                try Tensor(Array(lw.queryKeyValueWeight.scalars[(m * d * d)..<((m + 1) * d * d)]), shape: [d, d])
            }
            for (m, p) in [BertProjection.query, .key, .value].enumerated() {
                switch adapters {
                case .lora(let lora):
                    if let t = lora.slot(p) {
                        try LoRA.merge(into: &slices[m], a: lora.a[l][t], b: lora.b[l][t], scale: lora.configuration.scale)
                    }
                case .lorta(let a):
                    if let mi = a.configuration.matrixIndex(of: p) {
                        try a.merge(into: &slices[m], layer: l, matrix: mi)
                    }
                }
            }
            lw.queryKeyValueWeight = try Tensor(slices[0].scalars + slices[1].scalars + slices[2].scalars, shape: [3 * d, d])
            switch adapters {
            case .lora(let lora):
                if let t = lora.slot(.attentionOutput) {
                    try LoRA.merge(into: &lw.attentionOutputWeight, a: lora.a[l][t], b: lora.b[l][t],
                                   scale: lora.configuration.scale)
                }
            case .lorta(let a):
                if let mi = a.configuration.matrixIndex(of: .attentionOutput) {
                    try a.merge(into: &lw.attentionOutputWeight, layer: l, matrix: mi)
                }
            }
            model.layers[l] = lw
        }
        return model
    }
}
