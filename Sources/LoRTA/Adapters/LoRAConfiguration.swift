/// Hyper-parameters of a LoRA adapter: rank `r`, `alpha`, and whether the scale is
/// rank-stabilized (rsLoRA).
///
/// The adapter update is `ΔW = scale · B A` with ``scale`` = `alpha / r`, or `alpha / √r` when
/// ``useRSLoRA`` is true (Kalajdzievski 2023). Encoded with PEFT's `adapter_config.json` key
/// names: `r`, `lora_alpha`, `use_rslora` (the last is optional when decoding, default false).
public struct LoRAConfiguration: Sendable, Equatable, Codable {
    /// Rank r of the update (≥ 1).
    public var rank: Int
    /// Numerator of the scale (PEFT's `lora_alpha`); finite.
    public var alpha: Float
    /// Rank-stabilized scaling: `alpha / √r` instead of `alpha / r`.
    public var useRSLoRA: Bool

    /// - Throws: ``LoRAError/invalidRank(_:)`` when `rank < 1`,
    ///   ``LoRAError/invalidAlpha(_:)`` when `alpha` is NaN or infinite.
    public init(rank: Int, alpha: Float, useRSLoRA: Bool = false) throws {
        self.rank = rank
        self.alpha = alpha
        self.useRSLoRA = useRSLoRA
        try validate()
    }

    /// `alpha / rank`, or `alpha / √rank` with ``useRSLoRA`` (computed in double precision,
    /// rounded once; the same value as the C function `lt_lora_scale`). Not finite only when
    /// the stored properties were later set to invalid values; the layer checks that.
    public var scale: Float {
        let r = Double(rank)
        return Float(Double(alpha) / (useRSLoRA ? r.squareRoot() : r))
    }

    /// Throws unless rank ≥ 1 and alpha is finite.
    func validate() throws {
        guard rank >= 1 else { throw LoRAError.invalidRank(rank) }
        guard alpha.isFinite else { throw LoRAError.invalidAlpha(alpha) }
    }

    enum CodingKeys: String, CodingKey {
        case rank = "r"
        case alpha = "lora_alpha"
        case useRSLoRA = "use_rslora"
    }

    /// Decodes and validates (a rank below 1 or a non-finite alpha is a decoding error).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let rank = try c.decode(Int.self, forKey: .rank)
        let alpha = try c.decode(Float.self, forKey: .alpha)
        let rs = try c.decodeIfPresent(Bool.self, forKey: .useRSLoRA) ?? false
        do {
            try self.init(rank: rank, alpha: alpha, useRSLoRA: rs)
        } catch let error as LoRAError {
            throw DecodingError.dataCorrupted(.init(
                codingPath: c.codingPath, debugDescription: error.description, underlyingError: error))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(rank, forKey: .rank)
        try c.encode(alpha, forKey: .alpha)
        try c.encode(useRSLoRA, forKey: .useRSLoRA)
    }
}
