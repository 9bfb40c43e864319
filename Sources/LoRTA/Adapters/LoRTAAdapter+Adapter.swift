import CKernels

/// LoRTA as a model's ``Adapter``: the targets are attention projections (their input is split
/// into the `H` heads of width `d_h`); every layer shares the one CP decomposition. For each
/// group of targets reading the same input (Q, K, V read the block input; O reads the heads'
/// context) the input is projected once, `U = Σ_h (X_h Bᵀ) ∘ C_H[h]` (`n × r`), and expanded
/// into each target's output, `Y_m += s (U ∘ C_L[l] ∘ C_M[m]) A_mᵀ` — ΔW is never formed.
///
/// Parameters, in order: the `A` factors (one per distinct output width: under grouped-query
/// attention K and V are narrower than Q and O), then `B`, `C_H`, `C_L`, `C_M`.
extension LoRTAAdapter: Adapter {
    public var kind: AdapterKind { .lorta }

    public var targetModules: [String] { configuration.targetModules }

    public var summary: String {
        "LoRTA r=\(configuration.rank) on \(configuration.targetModules.joined(separator: ","))"
    }

    public var parameters: [Tensor] { factors.a + [factors.b, factors.cH, factors.cL, factors.cM] }

    public mutating func setParameters(_ p: [Tensor]) throws {
        let na = factors.a.count
        guard p.count == na + 4 else {
            throw AdapterError.parameterMismatch("\(p.count) tensors for \(na + 4) LoRTA factors")
        }
        try setFactors(LoRTAFactors(a: Array(p[0..<na]), b: p[na], cH: p[na + 1], cL: p[na + 2], cM: p[na + 3]))
    }

    public func parameterNames(host: AdapterHost) -> [String] {
        configuration.factorTensorShapes.map(\.name)
    }

    public func validate(for host: AdapterHost) throws {
        let c = configuration
        guard c.layerCount == host.layerCount, c.headCount == host.headCount, c.headDimension == host.headDimension else {
            throw AdapterError.incompatible("LoRTA adapter for L=\(c.layerCount), H=\(c.headCount), d_h=\(c.headDimension); the model has L=\(host.layerCount), H=\(host.headCount), d_h=\(host.headDimension)")
        }
        let modules = try host.adaptedModules(c.targetModules)
        for (m, size) in zip(modules, c.outputSizes) {
            guard m.isAttention, m.inputSize == c.inputSize else {
                throw AdapterError.incompatible("LoRTA adapts attention projections whose input is the \(c.headCount) heads (width \(c.inputSize)); \(m.name) is not one")
            }
            guard m.outputSize == size else {
                throw AdapterError.incompatible("LoRTA output size of \(m.name) is \(size), the model's is \(m.outputSize)")
            }
        }
    }

    /// The targets among `modules`: (matrix index m, position in `modules`).
    private func targets(_ modules: [String]) -> [(matrix: Int, index: Int)] {
        modules.enumerated().compactMap { i, name in
            configuration.targetModules.firstIndex(of: name).map { ($0, i) }
        }
    }

    /// `U` (`n × r`) and, when asked, `P` (`n·H × r`).
    private func project(_ x: AdapterInput, wantP: Bool) throws -> (Tensor, Tensor) {
        let c = configuration
        guard x.width == c.inputSize else {
            throw AdapterError.incompatible("LoRTA input width \(x.width), the adapter's heads span \(c.inputSize)")
        }
        var u = try Tensor(uninitialized: [x.rows, c.rank])
        var p = try Tensor(uninitialized: [wantP ? x.rows * c.headCount : 0, c.rank])
        var dims = Self.dims(c)
        try KernelFailure.check(lt_lorta_project_forward(&dims, Int64(x.rows), x.pointer, Int64(x.stride),
                                                         factors.b.pointer, factors.cH.pointer, u.mutablePointer,
                                                         wantP ? p.mutablePointer : nil), "lt_lorta_project_forward")
        return (u, p)
    }

    /// `U` once for the group, then per target the coefficients `s·(U ∘ c_{l,m})` and `A_mᵀ`,
    /// one term per chunk of 64 ranks (`lt_lorta_expand_terms`: the bits of
    /// `lt_lorta_expand_forward`).
    public func forwardTerms(layer: Int, input x: AdapterInput, modules: [String]) throws -> [LowRankTerm] {
        let t = targets(modules)
        guard !t.isEmpty else { return [] }
        try configuration.checkLayer(layer)
        let c = configuration
        let r = c.rank
        let (u, _) = try project(x, wantP: false)
        var dims = Self.dims(c)
        let dOut = t.map { c.outputSizes[$0.matrix] }
        var coef = try t.map { _ in try Tensor(uninitialized: [x.rows, r]) }
        var at = try dOut.map { try Tensor(uninitialized: [r, $0]) }
        let aPointers: [UnsafePointer<Float>?] = t.map { factors.a[c.factorAIndex(forMatrix: $0.matrix)].pointer }
        let coefPointers: [UnsafeMutablePointer<Float>?] = coef.indices.map { coef[$0].mutablePointer }
        let atPointers: [UnsafeMutablePointer<Float>?] = at.indices.map { at[$0].mutablePointer }
        let f = factors
        let status = withExtendedLifetime((f, u)) {
            lt_lorta_expand_terms(&dims, Int64(x.rows), u.pointer, f.cL.pointer, f.cM.pointer, c.scaling, Int64(layer),
                                  Int64(t.count), t.map { Int64($0.matrix) }, dOut.map { Int64($0) }, aPointers,
                                  coefPointers, atPointers)
        }
        try KernelFailure.check(status, "lt_lorta_expand_terms")
        var terms: [LowRankTerm] = []
        for (q, target) in t.enumerated() {
            let d = dOut[q]
            for k0 in stride(from: 0, to: r, by: 64) {
                terms.append(try LowRankTerm(module: modules[target.index], column: 0, width: d, rank: min(64, r - k0),
                                             coefficients: coef[q], coefficientOffset: k0, coefficientStride: r,
                                             matrix: at[q], matrixOffset: k0 * d, matrixStride: d))
            }
        }
        return terms
    }

    /// The gradients of every factor (`lt_lorta_backward_params`) and, for `dX`, one term per
    /// head: `E[:, h] · B` on the head's columns.
    public func backwardTerms(layer: Int, input x: AdapterInput, outputGradients: [AdapterOutput],
                              parameterGradients g: inout [Tensor], inputGradient: Bool) throws -> [LowRankTerm] {
        let t = targets(outputGradients.map(\.module))
        guard !t.isEmpty else { return [] }
        try configuration.checkLayer(layer)
        let c = configuration
        let na = factors.a.count
        let expected = parameters.map(\.shape)
        guard g.map(\.shape) == expected else {
            throw AdapterError.parameterMismatch("gradient shapes \(g.map(\.shape)), expected \(expected)")
        }
        let (u, p) = try project(x, wantP: true)
        var dims = Self.dims(c)
        let dOut = t.map { Int64(c.outputSizes[$0.matrix]) }
        let aIndex = t.map { c.factorAIndex(forMatrix: $0.matrix) }
        let aPointers: [UnsafePointer<Float>?] = aIndex.map { factors.a[$0].pointer }
        let dyPointers: [UnsafePointer<Float>?] = t.map { UnsafePointer(outputGradients[$0.index].pointer) }
        let lddy = t.map { Int64(outputGradients[$0.index].stride) }
        var gradA: [UnsafeMutablePointer<Float>] = []
        for i in 0..<na { gradA.append(g[i].mutablePointer) }
        let daPointers: [UnsafeMutablePointer<Float>?] = aIndex.map { gradA[$0] }
        let dB = g[na].mutablePointer, dCH = g[na + 1].mutablePointer
        let dCL = g[na + 2].mutablePointer, dCM = g[na + 3].mutablePointer
        var e = try Tensor(uninitialized: [x.rows * c.headCount, c.rank])
        let ep = e.mutablePointer
        let bytes = lt_lorta_backward_workspace_size(&dims, Int64(x.rows), Int64(t.count), dOut)
        let f = factors
        let status = Self.withWorkspace(bytes) { ws in
            withExtendedLifetime((u, p, f)) {
                lt_lorta_backward_params(&dims, Int64(x.rows), x.pointer, Int64(x.stride), u.pointer, p.pointer, f.b.pointer,
                                         f.cH.pointer, f.cL.pointer, f.cM.pointer, c.scaling, Int64(layer), Int64(t.count),
                                         t.map { Int64($0.matrix) }, dOut, aPointers, dyPointers, lddy, daPointers,
                                         dB, dCH, dCL, dCM, ep, ws, bytes)
            }
        }
        try KernelFailure.check(status, "lt_lorta_backward_params")
        guard inputGradient else { return [] }
        let dh = c.headDimension
        return try (0..<c.headCount).map { h in
            try LowRankTerm(module: "", column: h * dh, width: dh, rank: c.rank,
                            coefficients: e, coefficientOffset: h * c.rank, coefficientStride: c.headCount * c.rank,
                            matrix: factors.b, matrixStride: dh)
        }
    }

    public func delta(layer: Int, module: String) throws -> Tensor? {
        guard let m = configuration.targetModules.firstIndex(of: module) else { return nil }
        return try deltaWeight(layer: layer, matrix: m)
    }
}

extension LoRTAAdapter {
    /// How the factors start.
    public enum Initialization: String, Sendable, CaseIterable {
        /// This library's default: `A` kaiming-uniform over `H·d_h` (bound `1/√(H·d_h)`), `B = 0`,
        /// every `C` entry 1.
        case ones
        /// The paper's reference implementation (docs/file-formats.md §4.2): `A` kaiming-uniform
        /// with a = √5 over its `d_out × r` shape (bound `1/√r`), `B = 0`, every `C` kaiming-uniform
        /// with a = 0 (bound `√(6/r)`).
        case reference
    }

    /// A fresh adapter (ΔW = 0 since `B = 0`) initialised as `initialization` says; deterministic
    /// in `seed` (the reference scheme draws `A`s, then `C_H`, `C_L`, `C_M`, from one counter-based
    /// stream).
    /// - Parameters:
    ///   - configuration: the adapter's sizes and hyper-parameters.
    ///   - seed: the seed of the random draws; equal seeds give equal factors.
    ///   - initialization: the initialisation scheme (``Initialization/ones`` or
    ///     ``Initialization/reference``).
    ///   - cInitialValue: the value of every `C` entry with `.ones` (ignored by `.reference`).
    /// - Throws: ``LoRTAError`` for an invalid configuration.
    public init(configuration: LoRTAConfiguration, seed: UInt64, initialization: Initialization,
                cInitialValue: Float = 1) throws {
        switch initialization {
        case .ones:
            try self.init(configuration: configuration, seed: seed, cInitialValue: cInitialValue)
        case .reference:
            var f = try LoRTAFactors(zerosFor: configuration)
            let r = Float(configuration.rank)
            var offset: UInt64 = 0
            func draw(_ t: inout Tensor, bound: Float) throws {
                try KernelFailure.check(lt_rng_uniform(seed, offset, -bound, bound, t.mutablePointer, Int64(t.count)),
                                        "lt_rng_uniform")
                offset += UInt64(t.count)
            }
            for i in f.a.indices { try draw(&f.a[i], bound: 1 / r.squareRoot()) }
            let cBound = (6 / r).squareRoot()
            try draw(&f.cH, bound: cBound)
            try draw(&f.cL, bound: cBound)
            try draw(&f.cM, bound: cBound)
            try self.init(configuration: configuration, factors: f)
        }
    }
}
