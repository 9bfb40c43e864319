import CKernels

/// A LoRTA adapter: one rank-r CP decomposition shared by every adapted matrix of every layer,
/// applied without ever building the dense updates ΔW (DESIGN.md §4).
///
/// For layer `l` and matrix type `m` (a position in
/// ``LoRTAConfiguration/targetModules``) the update of the `d_out × H·d_h` weight is
///
///     ΔW_{l,m}[:, h·d_h ..< (h+1)·d_h] = s · A · diag(C_H[h] ∘ C_L[l] ∘ C_M[m]) · B,   s = alpha / r.
///
/// (The scaling `s` is part of ΔW here: ``deltaWeight(layer:matrix:)`` returns exactly what
/// ``merge(into:layer:matrix:)`` adds.) Targets with different output sizes (K/V under
/// grouped-query attention) use one `A` per output size — an extension beyond the LoRTA paper;
/// see ``LoRTAConfiguration``.
///
/// Training step for one layer whose projections (say Q, K, V) share the input `X`:
/// ```swift
/// var outputs = [0: q, 1: k, 2: v]                 // base outputs X Wᵀ, keyed by matrix index
/// let saved = try adapter.forward(layer: l, input: x, outputs: &outputs)
/// …
/// try adapter.backward(layer: l, input: x, outputGradients: [0: dq, 1: dk, 2: dv],
///                      projection: saved, inputGradient: &dx)  // dx may hold dY·W already
/// ```
/// Gradients accumulate in ``gradients`` across layers and calls until ``zeroGradients()``.
///
/// Cost: the forward reads `X` once for the projection (`n·H·d_h·r` multiply-adds) and each
/// output once (`n·d_out·r`); the backward is of the same order plus two skinny GEMMs.
/// Thread-count independent: results are bitwise identical for any ``Runtime/threadCount``.
public struct LoRTAAdapter: Sendable {
    /// Sizes and hyper-parameters.
    public let configuration: LoRTAConfiguration
    /// The trained factors. Change them with ``setFactors(_:)`` or ``updateFactors(_:)``, which
    /// keep their shapes valid.
    public private(set) var factors: LoRTAFactors
    /// Gradient accumulators, same shapes as ``factors``; added to by ``backward(layer:input:outputGradients:projection:inputGradient:)``.
    public private(set) var gradients: LoRTAFactors

    /// The reference initialisation (as the PEFT-based reference code): `A` kaiming-uniform
    /// with a = √5 (bound `1/√(H·d_h)`), `B = 0`, every entry of `C_H`, `C_L`, `C_M` equal to
    /// `cInitialValue` (1 in the reference recipe). Deterministic in `seed`; the initial ΔW is 0.
    /// - Throws: ``LoRTAError/invalidConfiguration(_:)`` when `cInitialValue` is not finite.
    public init(configuration: LoRTAConfiguration, seed: UInt64, cInitialValue: Float = 1) throws {
        guard cInitialValue.isFinite else {
            throw LoRTAError.invalidConfiguration("cInitialValue must be finite, got \(cInitialValue)")
        }
        var f = try LoRTAFactors(zerosFor: configuration)
        var dims = Self.dims(configuration)
        let rows = configuration.distinctOutputSizes.map { Int64($0) }
        var aPointers: [UnsafeMutablePointer<Float>?] = []
        for i in f.a.indices { aPointers.append(f.a[i].mutablePointer) }
        let status = lt_lorta_init(&dims, Int64(rows.count), rows, aPointers, f.b.mutablePointer,
                                   f.cH.mutablePointer, f.cL.mutablePointer,
                                   f.cM.mutablePointer, seed, cInitialValue)
        try KernelFailure.check(status, "lt_lorta_init")
        self.configuration = configuration
        self.factors = f
        self.gradients = try LoRTAFactors(zerosFor: configuration)
    }

    /// An adapter with given factors (e.g. loaded from a file); gradients start at zero.
    /// - Throws: ``LoRTAError/factorShapeMismatch(factor:expected:actual:)`` or
    ///   ``LoRTAError/factorCountMismatch(expected:actual:)``.
    public init(configuration: LoRTAConfiguration, factors: LoRTAFactors) throws {
        try factors.validate(for: configuration)
        self.configuration = configuration
        self.factors = factors
        self.gradients = try LoRTAFactors(zerosFor: configuration)
    }

    /// Replaces the factors after checking their shapes (the adapter is unchanged on error).
    public mutating func setFactors(_ newFactors: LoRTAFactors) throws {
        try newFactors.validate(for: configuration)
        factors = newFactors
    }

    /// Edits the factors (e.g. an optimizer step). The shapes are re-checked afterwards; on
    /// error (thrown by `body` or by the check) the factors are left unchanged.
    public mutating func updateFactors(_ body: (inout LoRTAFactors) throws -> Void) throws {
        var f = factors
        try body(&f)
        try f.validate(for: configuration)
        factors = f
    }

    /// Sets every gradient accumulator to zero.
    public mutating func zeroGradients() {
        func zero(_ t: inout Tensor) { t.withUnsafeMutableBufferPointer { $0.update(repeating: 0) } }
        for i in gradients.a.indices { zero(&gradients.a[i]) }
        zero(&gradients.b); zero(&gradients.cH); zero(&gradients.cL); zero(&gradients.cM)
    }

    /// Number of trained scalars: `r · (Σ_distinct d_out + d_h + H + L + M)`.
    public var parameterCount: Int {
        var dims = Self.dims(configuration)
        let rows = configuration.distinctOutputSizes.map { Int64($0) }
        var count: Int64 = 0
        let status = lt_lorta_parameter_count(&dims, Int64(rows.count), rows, &count)
        return status == LT_OK ? Int(count) : configuration.parameterCount
    }

    // MARK: forward

    /// `P = X_view Bᵀ` and `U = Σ_h C_H[h] ∘ P[·,h]` for an input `X` (`n × H·d_h`), reading X
    /// once. O(n·H·d_h·r).
    /// - Throws: ``LoRTAError/rankMismatch(operation:expected:actual:)``,
    ///   ``LoRTAError/shapeMismatch(operation:expected:actual:)``.
    public func project(input: Tensor) throws -> LoRTAProjection {
        let n = try checkInput(input, "LoRTA projection")
        let r = configuration.rank, H = configuration.headCount
        var u = try Tensor(uninitialized: [n, r])          // the kernel writes every element
        var p = try Tensor(uninitialized: [n * H, r])
        var dims = Self.dims(configuration)
        let status = lt_lorta_project_forward(&dims, Int64(n), input.pointer, Int64(configuration.inputSize),
                                              factors.b.pointer, factors.cH.pointer,
                                              u.mutablePointer, p.mutablePointer)
        try KernelFailure.check(status, "lt_lorta_project_forward")
        return LoRTAProjection(u: u, p: p)
    }

    /// Adds the adapter to the base outputs of the projections of layer `layer` that share the
    /// input `X` (`n × H·d_h`): for each entry `m → Y_m` (`n × d_out[m]`),
    /// `Y_m += X ΔW_{l,m}ᵀ`, computed as `s (U ∘ C_L[l] ∘ C_M[m]) Aᵀ` (one projection for all
    /// outputs, one pass over each output). O(n·r·(H·d_h + Σ d_out)).
    /// - Parameters:
    ///   - layer: the layer index, in `0 ..< configuration.layerCount`.
    ///   - input: the shared input `X` (`n × H·d_h`).
    ///   - outputs: base outputs keyed by matrix index (position in `targetModules`);
    ///     updated in place.
    /// - Returns: the saved projection, to pass to ``backward(layer:input:outputGradients:projection:inputGradient:)``.
    /// - Throws: ``LoRTAError`` for a bad layer, matrix index or shape; `outputs` is unchanged then.
    @discardableResult
    public func forward(layer: Int, input: Tensor, outputs: inout [Int: Tensor]) throws -> LoRTAProjection {
        try configuration.checkLayer(layer)
        let n = try checkInput(input, "LoRTA forward")
        let matrices = try checkTargets(outputs, n: n, operation: "LoRTA forward")
        let projection = try project(input: input)
        try expand(layer: layer, projection: projection, matrices: matrices, outputs: &outputs)
        return projection
    }

    /// Adds `s (U ∘ c_{l,m}) Aᵀ` to each output, given a projection from ``project(input:)``.
    /// - Throws: ``LoRTAError`` for a bad layer, matrix index or shape.
    public func forward(layer: Int, projection: LoRTAProjection, outputs: inout [Int: Tensor]) throws {
        try configuration.checkLayer(layer)
        let n = try checkProjection(projection, "LoRTA forward")
        let matrices = try checkTargets(outputs, n: n, operation: "LoRTA forward")
        try expand(layer: layer, projection: projection, matrices: matrices, outputs: &outputs)
    }

    private func expand(layer: Int, projection: LoRTAProjection, matrices: [Int],
                        outputs: inout [Int: Tensor]) throws {
        let n = projection.u.shape[0]
        var ys: [Tensor] = matrices.map { outputs.removeValue(forKey: $0)! }  // unique references
        defer { for (m, y) in zip(matrices, ys) { outputs[m] = y } }
        var yPointers: [UnsafeMutablePointer<Float>?] = []
        for i in ys.indices { yPointers.append(ys[i].mutablePointer) }
        let dOut = matrices.map { Int64(configuration.outputSizes[$0]) }
        let aPointers: [UnsafePointer<Float>?] = matrices.map {
            factors.a[configuration.factorAIndex(forMatrix: $0)].pointer
        }
        var dims = Self.dims(configuration)
        let bytes = lt_lorta_expand_workspace_size(&dims, Int64(matrices.count), dOut)
        let status = Self.withWorkspace(bytes) { ws in
            lt_lorta_expand_forward(&dims, Int64(n), projection.u.pointer, factors.cL.pointer,
                                    factors.cM.pointer, configuration.scaling, Int64(layer),
                                    Int64(matrices.count), matrices.map { Int64($0) }, dOut,
                                    aPointers, yPointers, dOut, ws, bytes)
        }
        try KernelFailure.check(status, "lt_lorta_expand_forward")
    }

    // MARK: backward

    /// Backward of ``forward(layer:input:outputs:)->_`` for the projections of layer `layer` that
    /// share the input `X`: accumulates the gradients of all five factors into ``gradients``
    /// and adds the adapter's part of the input gradient, `E B` (`n × H·d_h`), to
    /// `inputGradient`, which may already hold the frozen path `Σ_m dY_m W_m`.
    ///
    /// - Parameters:
    ///   - layer: the layer index, in `0 ..< configuration.layerCount`.
    ///   - input: the input `X` (`n × H·d_h`) the forward was given.
    ///   - outputGradients: `dY_m` (`n × d_out[m]`) keyed by matrix index.
    ///   - projection: what the forward returned (it must come from the same input and the
    ///     current `B`, `C_H`); `nil` recomputes it (one more pass over `X`).
    ///   - inputGradient: `dX` (`n × H·d_h`); the adapter's part `E B` is added to it.
    /// - Complexity: O(n·r·(H·d_h + Σ d_out)) plus two skinny GEMMs of the same order.
    /// - Throws: ``LoRTAError`` for a bad layer, matrix index or shape; nothing is changed then.
    public mutating func backward(layer: Int, input: Tensor, outputGradients: [Int: Tensor],
                                  projection: LoRTAProjection? = nil, inputGradient: inout Tensor) throws {
        let n = try checkInput(input, "LoRTA backward")
        guard inputGradient.shape == [n, configuration.inputSize] else {
            throw LoRTAError.shapeMismatch(operation: "LoRTA backward input gradient",
                                           expected: [n, configuration.inputSize], actual: inputGradient.shape)
        }
        try backwardImpl(layer: layer, input: input, n: n, outputGradients: outputGradients,
                         projection: projection, dX: &inputGradient)
    }

    /// Like ``backward(layer:input:outputGradients:projection:inputGradient:)`` but returns the
    /// adapter's part of the input gradient (`n × H·d_h`) instead of adding it.
    @discardableResult
    public mutating func backward(layer: Int, input: Tensor, outputGradients: [Int: Tensor],
                                  projection: LoRTAProjection? = nil) throws -> Tensor {
        let n = try checkInput(input, "LoRTA backward")
        var dx = try Tensor(zeros: [n, configuration.inputSize])
        try backwardImpl(layer: layer, input: input, n: n, outputGradients: outputGradients,
                         projection: projection, dX: &dx)
        return dx
    }

    private mutating func backwardImpl(layer: Int, input: Tensor, n: Int, outputGradients: [Int: Tensor],
                                       projection: LoRTAProjection?, dX: inout Tensor) throws {
        try configuration.checkLayer(layer)
        let matrices = try checkTargets(outputGradients, n: n, operation: "LoRTA backward")
        let saved: LoRTAProjection
        if let projection {
            let pn = try checkProjection(projection, "LoRTA backward")
            guard pn == n else {
                throw LoRTAError.shapeMismatch(operation: "LoRTA backward projection U",
                                               expected: [n, configuration.rank], actual: projection.u.shape)
            }
            saved = projection
        } else {
            saved = try project(input: input)
        }
        let dOut = matrices.map { Int64(configuration.outputSizes[$0]) }
        let aIndex = matrices.map { configuration.factorAIndex(forMatrix: $0) }
        let aPointers: [UnsafePointer<Float>?] = aIndex.map { factors.a[$0].pointer }
        let dyPointers: [UnsafePointer<Float>?] = matrices.map { outputGradients[$0]!.pointer }
        var gradA: [UnsafeMutablePointer<Float>] = []
        for i in gradients.a.indices { gradA.append(gradients.a[i].mutablePointer) }
        let daPointers: [UnsafeMutablePointer<Float>?] = aIndex.map { gradA[$0] }
        let dB = gradients.b.mutablePointer, dCH = gradients.cH.mutablePointer
        let dCL = gradients.cL.mutablePointer, dCM = gradients.cM.mutablePointer
        let dx = dX.mutablePointer
        var dims = Self.dims(configuration)
        let bytes = lt_lorta_backward_workspace_size(&dims, Int64(n), Int64(matrices.count), dOut)
        let din = Int64(configuration.inputSize)
        let f = factors
        let status = Self.withWorkspace(bytes) { ws in
            withExtendedLifetime((outputGradients, saved, f)) {
                lt_lorta_backward(&dims, Int64(n), input.pointer, din, saved.u.pointer, saved.p.pointer,
                                  f.b.pointer, f.cH.pointer, f.cL.pointer, f.cM.pointer,
                                  configuration.scaling, Int64(layer), Int64(matrices.count),
                                  matrices.map { Int64($0) }, dOut, aPointers, dyPointers, dOut,
                                  daPointers, dB, dCH, dCL, dCM, dx, din, ws, bytes)
            }
        }
        try KernelFailure.check(status, "lt_lorta_backward")
    }

    // MARK: merge

    /// `W += ΔW_{layer,matrix}` in place (W: `d_out[matrix] × H·d_h`). Bandwidth-bound: W is
    /// read and written once, O(d_out·H·d_h·r) flops.
    /// - Throws: ``LoRTAError`` for a bad index or a weight of the wrong shape.
    public func merge(into weight: inout Tensor, layer: Int, matrix: Int) throws {
        try mergeSlice(&weight, layer: layer, matrix: matrix, factor: configuration.scaling)
    }

    /// `W -= ΔW_{layer,matrix}`: undoes ``merge(into:layer:matrix:)`` up to one rounding of W
    /// (the same update is computed, negated).
    public func unmerge(from weight: inout Tensor, layer: Int, matrix: Int) throws {
        try mergeSlice(&weight, layer: layer, matrix: matrix, factor: -configuration.scaling)
    }

    /// Merges every slice: `weights[l][m] += ΔW_{l,m}` for all layers and matrix types.
    /// - Parameter weights: `L` arrays of `M` weights (`d_out[m] × H·d_h`); all are checked
    ///   before any is changed.
    public func mergeAll(into weights: inout [[Tensor]]) throws {
        try mergeEvery(&weights, factor: configuration.scaling)
    }

    /// Unmerges every slice (inverse of ``mergeAll(into:)``).
    public func unmergeAll(from weights: inout [[Tensor]]) throws {
        try mergeEvery(&weights, factor: -configuration.scaling)
    }

    /// The dense update `ΔW_{layer,matrix}` (`d_out[matrix] × H·d_h`, scaling included),
    /// materialized for inspection and tests. O(d_out·H·d_h·r).
    public func deltaWeight(layer: Int, matrix: Int) throws -> Tensor {
        try configuration.checkMatrix(matrix)
        var w = try Tensor(zeros: [configuration.outputSizes[matrix], configuration.inputSize])
        try merge(into: &w, layer: layer, matrix: matrix)
        return w
    }

    private func mergeSlice(_ weight: inout Tensor, layer: Int, matrix: Int, factor: Float) throws {
        try configuration.checkLayer(layer)
        try configuration.checkMatrix(matrix)
        let expected = [configuration.outputSizes[matrix], configuration.inputSize]
        guard weight.shape == expected else {
            throw LoRTAError.shapeMismatch(operation: "LoRTA merge weight (layer \(layer), matrix \(matrix))",
                                           expected: expected, actual: weight.shape)
        }
        var dims = Self.dims(configuration)
        let a = factors.a[configuration.factorAIndex(forMatrix: matrix)]
        let status = lt_lorta_merge_slice(&dims, Int64(expected[0]), a.pointer, factors.b.pointer,
                                          factors.cH.pointer, factors.cL.pointer, factors.cM.pointer,
                                          Int64(layer), Int64(matrix), factor, weight.mutablePointer,
                                          Int64(expected[1]))
        try KernelFailure.check(status, "lt_lorta_merge_slice")
    }

    private func mergeEvery(_ weights: inout [[Tensor]], factor: Float) throws {
        let L = configuration.layerCount, M = configuration.matrixCount
        guard weights.count == L, weights.allSatisfy({ $0.count == M }) else {
            throw LoRTAError.shapeMismatch(operation: "LoRTA merge of all slices (layers × matrix types)",
                                           expected: [L, M], actual: [weights.count, weights.first?.count ?? 0])
        }
        for l in 0..<L {
            for m in 0..<M {
                let expected = [configuration.outputSizes[m], configuration.inputSize]
                guard weights[l][m].shape == expected else {
                    throw LoRTAError.shapeMismatch(operation: "LoRTA merge weight (layer \(l), matrix \(m))",
                                                   expected: expected, actual: weights[l][m].shape)
                }
            }
        }
        var wPointers: [UnsafeMutablePointer<Float>?] = []
        for l in 0..<L { for m in 0..<M { wPointers.append(weights[l][m].mutablePointer) } }
        let dOut = configuration.outputSizes.map { Int64($0) }
        let aPointers: [UnsafePointer<Float>?] = (0..<M).map {
            factors.a[configuration.factorAIndex(forMatrix: $0)].pointer
        }
        let ldw = Array(repeating: Int64(configuration.inputSize), count: M)
        var dims = Self.dims(configuration)
        let status = withExtendedLifetime(weights) {
            lt_lorta_merge_all(&dims, dOut, aPointers, factors.b.pointer, factors.cH.pointer,
                               factors.cL.pointer, factors.cM.pointer, factor, wPointers, ldw)
        }
        try KernelFailure.check(status, "lt_lorta_merge_all")
    }

    // MARK: helpers

    static func dims(_ c: LoRTAConfiguration) -> lt_lorta_dims {
        lt_lorta_dims(rank: Int64(c.rank), heads: Int64(c.headCount), head_dim: Int64(c.headDimension),
                      layers: Int64(c.layerCount), matrices: Int64(c.matrixCount))
    }

    static func withWorkspace<R>(_ bytes: Int, _ body: (UnsafeMutableRawPointer) throws -> R) rethrows -> R {
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 64), alignment: 64)
        defer { p.deallocate() }
        return try body(p)
    }

    /// Checks that `input` is `n × H·d_h`; returns n.
    private func checkInput(_ input: Tensor, _ operation: String) throws -> Int {
        guard input.rank == 2 else {
            throw LoRTAError.rankMismatch(operation: "\(operation) input", expected: 2, actual: input.rank)
        }
        guard input.shape[1] == configuration.inputSize else {
            throw LoRTAError.shapeMismatch(operation: "\(operation) input",
                                           expected: [input.shape[0], configuration.inputSize], actual: input.shape)
        }
        guard input.shape[0] <= Int(Int32.max) / configuration.headCount else {
            throw LoRTAError.shapeMismatch(operation: "\(operation) input (too many rows)",
                                           expected: [Int(Int32.max) / configuration.headCount, configuration.inputSize],
                                           actual: input.shape)
        }
        return input.shape[0]
    }

    /// Checks a saved projection's shapes; returns n.
    private func checkProjection(_ p: LoRTAProjection, _ operation: String) throws -> Int {
        let r = configuration.rank, H = configuration.headCount
        guard p.u.rank == 2, p.u.shape[1] == r else {
            throw LoRTAError.shapeMismatch(operation: "\(operation) projection U",
                                           expected: [p.u.shape.first ?? 0, r], actual: p.u.shape)
        }
        let n = p.u.shape[0]
        guard p.p.shape == [n * H, r] else {
            throw LoRTAError.shapeMismatch(operation: "\(operation) projection P", expected: [n * H, r], actual: p.p.shape)
        }
        return n
    }

    /// Checks matrix indices and `n × d_out[m]` shapes; returns the sorted matrix indices.
    private func checkTargets(_ tensors: [Int: Tensor], n: Int, operation: String) throws -> [Int] {
        guard !tensors.isEmpty else { throw LoRTAError.noOutputs(operation: operation) }
        let matrices = tensors.keys.sorted()
        for m in matrices {
            try configuration.checkMatrix(m)
            let expected = [n, configuration.outputSizes[m]]
            guard tensors[m]!.shape == expected else {
                throw LoRTAError.shapeMismatch(operation: "\(operation) output of matrix \(m) (\(configuration.targetModules[m]))",
                                               expected: expected, actual: tensors[m]!.shape)
            }
        }
        return matrices
    }
}
