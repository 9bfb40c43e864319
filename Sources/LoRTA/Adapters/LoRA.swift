import CKernels

/// Stateless LoRA helpers on plain tensors (used by `lorta merge` and by ``LoRALinear``).
public enum LoRA {
    /// Adds (or, with `subtract`, removes) a LoRA update in place:
    /// `weight += ±scale · b a`.
    ///
    /// - Parameters:
    ///   - weight: d_out × d_in, updated in place (copied first if its storage is shared).
    ///   - a: lora_A, r × d_in with r ≥ 1.
    ///   - b: lora_B, d_out × r.
    ///   - scale: finite scale `s` (see ``LoRAConfiguration/scale``).
    ///   - subtract: remove the update instead of adding it. Adding then subtracting the same
    ///     update restores `weight` up to one rounding per element.
    /// - Throws: ``LoRAError`` for non-matrix or mismatched shapes and a non-finite scale.
    /// - Complexity: O(d_out · d_in · r), one pass over `weight` (multi-threaded, SIMD).
    public static func merge(into weight: inout Tensor, a: Tensor, b: Tensor, scale: Float,
                             subtract: Bool = false) throws {
        let (dOut, dIn) = try matrix(weight, "weight")
        let r = try factorRank(a: a, b: b, inputFeatures: dIn, outputFeatures: dOut)
        guard scale.isFinite else { throw LoRAError.invalidScale(scale) }
        let status = a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                weight.withUnsafeMutableBufferPointer { pw in
                    subtract
                        ? lt_lora_unmerge(Int64(dOut), Int64(dIn), Int64(r), scale, pa.baseAddress,
                                          pb.baseAddress, pw.baseAddress, Int64(max(dIn, 1)))
                        : lt_lora_merge(Int64(dOut), Int64(dIn), Int64(r), scale, pa.baseAddress,
                                        pb.baseAddress, pw.baseAddress, Int64(max(dIn, 1)))
                }
            }
        }
        try KernelFailure.check(status, subtract ? "lt_lora_unmerge" : "lt_lora_merge")
    }

    /// The dense update `scale · b a` (d_out × d_in) of a LoRA adapter.
    ///
    /// - Parameters: as in ``merge(into:a:b:scale:subtract:)``.
    /// - Throws: ``LoRAError`` for non-matrix or mismatched shapes and a non-finite scale.
    /// - Complexity: O(d_out · d_in · r) time, O(d_out · d_in) memory.
    public static func deltaWeight(a: Tensor, b: Tensor, scale: Float) throws -> Tensor {
        let (r, dIn) = try matrix(a, "loraA")
        let (dOut, _) = try matrix(b, "loraB")
        guard r >= 1 else { throw LoRAError.invalidRank(r) }
        var delta = try Tensor(zeros: [dOut, dIn])
        try merge(into: &delta, a: a, b: b, scale: scale)
        return delta
    }

    /// (rows, columns) of a 2-dimensional tensor, else ``LoRAError/notAMatrix(name:shape:)``.
    static func matrix(_ t: Tensor, _ name: String) throws -> (Int, Int) {
        guard t.rank == 2 else { throw LoRAError.notAMatrix(name: name, shape: t.shape) }
        return (t.shape[0], t.shape[1])
    }

    /// Checks `a` (r × d_in) and `b` (d_out × r) against the layer's sizes; returns r.
    static func factorRank(a: Tensor, b: Tensor, inputFeatures dIn: Int, outputFeatures dOut: Int,
                           expectedRank: Int? = nil) throws -> Int {
        let (r, aIn) = try matrix(a, "loraA")
        _ = try matrix(b, "loraB")
        let rank = expectedRank ?? r
        guard rank >= 1 else { throw LoRAError.invalidRank(rank) }
        guard r == rank, aIn == dIn else {
            throw LoRAError.shapeMismatch(name: "loraA", expected: [rank, dIn], actual: a.shape)
        }
        guard b.shape == [dOut, rank] else {
            throw LoRAError.shapeMismatch(name: "loraB", expected: [dOut, rank], actual: b.shape)
        }
        return rank
    }
}
