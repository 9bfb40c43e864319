import CKernels

/// Seeded, deterministic shuffling of example indices per epoch.
///
/// Generator: the permutation of epoch `e` is a Fisher–Yates shuffle (from the last position
/// down) driven by the package's counter-based generator `lt_rng_u64` (splitmix64 over a
/// seed-keyed Weyl sequence) with stream key `lt_rng_u64(seed, e)`. Position `i` draws
/// `j ∈ [0, i]` by rejection sampling of 64-bit values (unbiased); the counter advances once
/// per draw. The result depends only on (seed, epoch, count) — never on threads, platform or
/// on earlier calls — so training can resume in the middle of any epoch.
public struct EpochShuffler: Sendable, Equatable {
    /// The user seed.
    public let seed: UInt64

    public init(seed: UInt64) { self.seed = seed }

    /// A permutation of `0..<count` for `epoch` (0-based). O(count).
    /// - Throws: ``TrainingError/invalidBatching(_:)`` when `count < 0` or `epoch < 0`.
    public func permutation(epoch: Int, count: Int) throws(TrainingError) -> [Int] {
        guard count >= 0 else { throw .invalidBatching("example count \(count) must be >= 0") }
        guard epoch >= 0 else { throw .invalidBatching("epoch \(epoch) must be >= 0") }
        var order = Array(0..<count)
        guard count > 1 else { return order }
        let stream = lt_rng_u64(seed, UInt64(epoch))
        var counter: UInt64 = 0
        for i in stride(from: count - 1, to: 0, by: -1) {
            let bound = UInt64(i + 1)
            // 2^64 mod bound values at the top are rejected so that `value % bound` is uniform.
            let excess = (UInt64.max % bound &+ 1) % bound
            let limit = 0 &- excess  // 2^64 − excess (0 means: accept every value)
            var value: UInt64
            repeat {
                value = lt_rng_u64(stream, counter)
                counter &+= 1
            } while excess != 0 && value >= limit
            order.swapAt(i, Int(value % bound))
        }
        return order
    }
}
