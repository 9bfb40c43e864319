/// The five CP factors of a LoRTA adapter (or their gradients), with the reference names of
/// the PEFT-based implementation in comments.
///
/// Shapes for a ``LoRTAConfiguration`` (see ``LoRTAConfiguration/factorShapes``):
/// - ``a``: one `d_out × r` matrix per distinct output size (`lora_A`; a single one unless the
///   targets have different output sizes — the grouped-query-attention extension),
/// - ``b``: `r × d_h` (`lora_B`), ``cH``: `H × r` (`lora_C_h`), ``cL``: `L × r` (`lora_C_l`),
///   ``cM``: `M × r` (`lora_C_m`).
public struct LoRTAFactors: Sendable, Equatable {
    /// `A` factors, index `i` for ``LoRTAConfiguration/distinctOutputSizes```[i]`.
    public var a: [Tensor]
    /// `B`, `r × d_h`.
    public var b: Tensor
    /// Head factor `C_H`, `H × r`.
    public var cH: Tensor
    /// Layer factor `C_L`, `L × r`.
    public var cL: Tensor
    /// Matrix-type factor `C_M`, `M × r`.
    public var cM: Tensor

    /// Factors from tensors (not validated until used with a configuration).
    public init(a: [Tensor], b: Tensor, cH: Tensor, cL: Tensor, cM: Tensor) {
        self.a = a
        self.b = b
        self.cH = cH
        self.cL = cL
        self.cM = cM
    }

    /// All-zero factors of the right shapes (e.g. gradient accumulators).
    /// - Throws: ``MemoryError/exceedsBudget(purpose:bytes:budget:)`` before allocating anything
    ///   when the factors together exceed the ``MemoryBudget``.
    public init(zerosFor configuration: LoRTAConfiguration) throws {
        let s = configuration.factorShapes
        var bytes: Int? = 0
        for shape in s.a + [s.b, s.cH, s.cL, s.cM] {
            bytes = MemoryBudget.sum(bytes, MemoryBudget.byteCount(Float.self, shape: shape))
        }
        let r = configuration.rank
        try MemoryBudget.check(bytes: bytes, purpose: "LoRTA of rank \(r) needs its float32 factors A \(s.a.map { "\($0[0])×r" }.joined(separator: ", ")), "
                               + "B r×\(s.b[1]), C_H \(s.cH[0])×r, C_L \(s.cL[0])×r, C_M \(s.cM[0])×r")
        self.init(a: try s.a.map { try Tensor(zeros: $0) }, b: try Tensor(zeros: s.b),
                  cH: try Tensor(zeros: s.cH), cL: try Tensor(zeros: s.cL), cM: try Tensor(zeros: s.cM))
    }

    /// Throws unless every factor has the shape `configuration` requires.
    /// - Throws: ``LoRTAError/factorCountMismatch(expected:actual:)``,
    ///   ``LoRTAError/factorShapeMismatch(factor:expected:actual:)``.
    public func validate(for configuration: LoRTAConfiguration) throws {
        let s = configuration.factorShapes
        guard a.count == s.a.count else {
            throw LoRTAError.factorCountMismatch(expected: s.a.count, actual: a.count)
        }
        for (i, t) in a.enumerated() where t.shape != s.a[i] {
            throw LoRTAError.factorShapeMismatch(factor: "A[\(i)]", expected: s.a[i], actual: t.shape)
        }
        for (name, t, e) in [("B", b, s.b), ("C_H", cH, s.cH), ("C_L", cL, s.cL), ("C_M", cM, s.cM)]
        where t.shape != e {
            throw LoRTAError.factorShapeMismatch(factor: name, expected: e, actual: t.shape)
        }
    }

    /// Number of scalars in all factors.
    public var scalarCount: Int { a.reduce(0) { $0 + $1.count } + b.count + cH.count + cL.count + cM.count }
}

/// What the forward pass saves for the backward: `U` (`n × r`, `U[i] = Σ_h C_H[h] ∘ B x_{i,h}`)
/// and `P` (`n·H × r`, row `i·H + h` = `B x_{i,h}`). It depends on the input and on `B`, `C_H`
/// only, so it is shared by every projection that reads the same input.
public struct LoRTAProjection: Sendable, Equatable {
    /// `n × r`.
    public let u: Tensor
    /// `n·H × r`.
    public let p: Tensor
}
