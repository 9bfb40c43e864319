import CKernels

/// LoRA on a whole model: one pair of factors per (layer, target projection).
///
/// For layer `l` and target `t` with weight `W` (`d_out × d_in`) the projection becomes
/// `y = x Wᵀ + s · (x A_{l,t}ᵀ) B_{l,t}ᵀ`, `A` `r × d_in`, `B` `d_out × r`, `s` from
/// ``LoRAConfiguration/scale`` (`alpha / r`, or `alpha / √r` with rsLoRA). Any projection of
/// the host can be a target (attention and MLP). Parameters are ordered by layer, then target,
/// `A` before `B` — PEFT's keys `…layers.<l>.<path>.lora_A.weight` / `lora_B.weight`.
public struct LoRAAdapter: Adapter {
    /// Rank, alpha and scaling rule.
    public let configuration: LoRAConfiguration
    public let targetModules: [String]
    /// Number of layers.
    public let layerCount: Int
    /// `factors[l · targets + t]` = (A, B).
    public private(set) var a: [Tensor]
    public private(set) var b: [Tensor]

    /// PEFT's initialisation for every (layer, target): A kaiming-uniform (a = √5), B = 0, so
    /// the adapted model starts equal to the base model. Matrix `i = l · targets + t` draws
    /// from `lt_lora_init` with the seed `seed + (i + 1) · 0x9E3779B97F4A7C15`.
    /// - Throws: ``AdapterError/unknownTarget(_:available:)``, ``AdapterError/incompatible(_:)``
    ///   for no or duplicate targets, ``LoRAError`` for an invalid configuration,
    ///   ``MemoryError/exceedsBudget(purpose:bytes:budget:)`` (before allocating anything) when
    ///   the factors exceed the ``MemoryBudget``.
    public init(host: AdapterHost, targets: [String], configuration: LoRAConfiguration, seed: UInt64) throws {
        try configuration.validate()
        let modules = try Self.checkTargets(targets, host: host)
        let r = configuration.rank
        var perLayer: Int? = 0
        for m in modules {
            perLayer = MemoryBudget.sum(perLayer, MemoryBudget.byteCount(Float.self, r, m.inputSize),
                                        MemoryBudget.byteCount(Float.self, m.outputSize, r))
        }
        try MemoryBudget.check(bytes: perLayer.flatMap { MemoryBudget.byteCount(UInt8.self, $0, host.layerCount) },
                               purpose: "LoRA of rank \(r) on \(modules.count) projection\(modules.count == 1 ? "" : "s") × \(host.layerCount) layers "
                                   + "needs its float32 factors A (r×d_in) and B (d_out×r)")
        var a: [Tensor] = [], b: [Tensor] = []
        for l in 0..<host.layerCount {
            for (t, m) in modules.enumerated() {
                var ta = try Tensor(uninitialized: [r, m.inputSize]), tb = try Tensor(uninitialized: [m.outputSize, r])
                let index = UInt64(l * modules.count + t)
                let matrixSeed = seed &+ (index &+ 1) &* 0x9E37_79B9_7F4A_7C15
                try KernelFailure.check(lt_lora_init(matrixSeed, Int64(r), Int64(m.inputSize), Int64(m.outputSize),
                                                     ta.mutablePointer, tb.mutablePointer), "lt_lora_init")
                a.append(ta); b.append(tb)
            }
        }
        self.configuration = configuration
        self.targetModules = modules.map(\.name)
        self.layerCount = host.layerCount
        self.a = a
        self.b = b
    }

    /// An adapter with given factors (`a[l · targets + t]` `r × d_in`, `b[…]` `d_out × r`).
    /// - Throws: ``AdapterError`` when the counts or shapes do not fit `host`.
    public init(host: AdapterHost, targets: [String], configuration: LoRAConfiguration, a: [Tensor], b: [Tensor]) throws {
        try configuration.validate()
        let modules = try Self.checkTargets(targets, host: host)
        self.configuration = configuration
        self.targetModules = modules.map(\.name)
        self.layerCount = host.layerCount
        self.a = a
        self.b = b
        try validate(for: host)
    }

    static func checkTargets(_ targets: [String], host: AdapterHost) throws(AdapterError) -> [AdapterHost.Module] {
        try host.adaptedModules(targets)
    }

    public var kind: AdapterKind { .lora }

    public var summary: String { "LoRA r=\(configuration.rank) on \(targetModules.joined(separator: ","))" }

    public var parameters: [Tensor] {
        var p: [Tensor] = []
        p.reserveCapacity(2 * a.count)
        for i in a.indices { p.append(a[i]); p.append(b[i]) }
        return p
    }

    public mutating func setParameters(_ p: [Tensor]) throws {
        guard p.count == 2 * a.count else {
            throw AdapterError.parameterMismatch("\(p.count) tensors for \(a.count) LoRA factor pairs")
        }
        for i in a.indices {
            guard p[2 * i].shape == a[i].shape, p[2 * i + 1].shape == b[i].shape else {
                throw AdapterError.parameterMismatch("factor pair \(i): \(p[2 * i].shape) and \(p[2 * i + 1].shape), expected \(a[i].shape) and \(b[i].shape)")
            }
        }
        for i in a.indices { a[i] = p[2 * i]; b[i] = p[2 * i + 1] }
    }

    public func parameterNames(host: AdapterHost) -> [String] {
        var names: [String] = []
        for l in 0..<layerCount {
            for t in targetModules {
                let prefix = host.module(named: t).map { host.peftPrefix(layer: l, module: $0) } ?? "\(l).\(t)"
                names.append("\(prefix).lora_A.weight")
                names.append("\(prefix).lora_B.weight")
            }
        }
        return names
    }

    public func validate(for host: AdapterHost) throws {
        let modules = try Self.checkTargets(targetModules, host: host)
        let r = configuration.rank
        guard layerCount == host.layerCount else {
            throw AdapterError.incompatible("LoRA adapter for \(layerCount) layers, the model has \(host.layerCount)")
        }
        guard a.count == layerCount * modules.count, b.count == a.count else {
            throw AdapterError.incompatible("\(a.count)/\(b.count) LoRA factors for \(layerCount) layers × \(modules.count) targets")
        }
        for l in 0..<layerCount {
            for (t, m) in modules.enumerated() {
                let i = l * modules.count + t
                guard a[i].shape == [r, m.inputSize], b[i].shape == [m.outputSize, r] else {
                    throw AdapterError.incompatible("layer \(l) \(m.name): lora_A \(a[i].shape), lora_B \(b[i].shape); expected \([r, m.inputSize]) and \([m.outputSize, r])")
                }
            }
        }
    }

    /// Index of the factors of (layer, module), nil when not adapted.
    func slot(layer: Int, module: String) -> Int? {
        guard layer >= 0, layer < layerCount, let t = targetModules.firstIndex(of: module) else { return nil }
        return layer * targetModules.count + t
    }

    /// Per adapted module: `T = X Aᵀ` and `s·Bᵀ`, one term per chunk of 64 ranks (the chunks of
    /// `lt_lowrank_forward`, so the bits are its bits).
    public func forwardTerms(layer: Int, input x: AdapterInput, modules: [String]) throws -> [LowRankTerm] {
        let r = configuration.rank
        var terms: [LowRankTerm] = []
        for module in modules {
            guard let i = slot(layer: layer, module: module) else { continue }
            let dOut = b[i].shape[0]
            guard a[i].shape[1] == x.width else {
                throw AdapterError.incompatible("\(module): input width \(x.width), lora_A has \(a[i].shape[1]) columns")
            }
            var t = try Tensor(uninitialized: [x.rows, r])
            var sBt = try Tensor(uninitialized: [r, dOut])
            try KernelFailure.check(lt_lowrank_prepare(Int64(x.rows), Int64(x.width), Int64(dOut), Int64(r), configuration.scale,
                                                       x.pointer, Int64(x.stride), a[i].pointer, b[i].pointer,
                                                       t.mutablePointer, sBt.mutablePointer), "lt_lowrank_prepare (\(module))")
            for k0 in stride(from: 0, to: r, by: Int(LT_LOWRANK_RCHUNK)) {
                let kc = min(Int(LT_LOWRANK_RCHUNK), r - k0)
                terms.append(try LowRankTerm(module: module, column: 0, width: dOut, rank: kc,
                                             coefficients: t, coefficientOffset: k0, coefficientStride: r,
                                             matrix: sBt, matrixOffset: k0 * dOut, matrixStride: dOut))
            }
        }
        return terms
    }

    /// Per adapted module: `dA`, `dB` (`lt_lora_backward_params`) and, for `dX`, the term
    /// `(s·dY B) · A`.
    public func backwardTerms(layer: Int, input x: AdapterInput, outputGradients: [AdapterOutput],
                              parameterGradients: inout [Tensor], inputGradient: Bool) throws -> [LowRankTerm] {
        let r = Int64(configuration.rank)
        guard parameterGradients.count == 2 * a.count else {
            throw AdapterError.parameterMismatch("\(parameterGradients.count) gradient tensors for \(2 * a.count) parameters")
        }
        var terms: [LowRankTerm] = []
        for dy in outputGradients {
            guard let i = slot(layer: layer, module: dy.module) else { continue }
            let dOut = Int64(b[i].shape[0])
            guard a[i].shape[1] == x.width else {
                throw AdapterError.incompatible("\(dy.module): input width \(x.width), lora_A has \(a[i].shape[1]) columns")
            }
            guard parameterGradients[2 * i].shape == a[i].shape, parameterGradients[2 * i + 1].shape == b[i].shape else {
                throw AdapterError.parameterMismatch("gradient shapes of \(dy.module) in layer \(layer)")
            }
            var size: Int64 = 0
            try KernelFailure.check(lt_lora_backward_workspace_size(Int64(x.rows), Int64(x.width), dOut, r, &size),
                                    "lt_lora_backward_workspace_size")
            var work = try Tensor(uninitialized: [Int(size)])
            var sG = try Tensor(uninitialized: [x.rows, Int(r)])
            let da = parameterGradients[2 * i].mutablePointer, db = parameterGradients[2 * i + 1].mutablePointer
            try KernelFailure.check(lt_lora_backward_params(Int64(x.rows), Int64(x.width), dOut, r, configuration.scale,
                                                            x.pointer, Int64(x.stride), a[i].pointer, b[i].pointer,
                                                            dy.pointer, Int64(dy.stride), nil, da, db, sG.mutablePointer,
                                                            1, work.mutablePointer), "lt_lora_backward_params (\(dy.module))")
            if inputGradient {
                terms.append(try LowRankTerm(module: "", column: 0, width: x.width, rank: Int(r),
                                             coefficients: sG, coefficientStride: Int(r),
                                             matrix: a[i], matrixStride: x.width))
            }
        }
        return terms
    }

    public func delta(layer: Int, module: String) throws -> Tensor? {
        guard let i = slot(layer: layer, module: module) else { return nil }
        let dOut = b[i].shape[0], dIn = a[i].shape[1]
        var w = try Tensor(zeros: [dOut, dIn])
        try KernelFailure.check(lt_lora_merge(Int64(dOut), Int64(dIn), Int64(configuration.rank), configuration.scale,
                                              a[i].pointer, b[i].pointer, w.mutablePointer, Int64(dIn)), "lt_lora_merge")
        return w
    }
}
