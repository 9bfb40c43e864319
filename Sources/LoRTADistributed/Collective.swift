import LoRTA

extension Communicator {
    /// Runs `body` on every rank and lets every rank know whether any rank failed: the one way
    /// of this layer to turn a failure of one rank into the same error on all ranks, instead of
    /// the others waiting forever in the next collective. One allgather of a status byte (and
    /// the failed ranks' messages).
    /// - Parameter body: this rank's work (it must not call collectives that the failing path
    ///   would skip).
    /// - Returns: `body`'s result when every rank succeeded.
    /// - Throws: this rank's own error when it failed; otherwise
    ///   ``DistributedError/rankFailed(rank:message:)`` naming the lowest failed rank.
    public func collectively<T>(_ body: () throws -> T) throws -> T {
        let result: Result<T, any Error>
        do { result = .success(try body()) } catch { result = .failure(error) }
        var status: [UInt8] = [0]
        if case .failure(let error) = result { status = [1] + Array("\(error)".utf8) }
        let all = try allgather(bytes: status)
        switch result {
        case .failure(let error): throw error
        case .success(let value):
            if let failed = all.firstIndex(where: { $0.first != 0 }) {
                throw DistributedError.rankFailed(rank: failed, message: String(decoding: all[failed].dropFirst(), as: UTF8.self))
            }
            return value
        }
    }

    /// Checks that every rank has the same `fingerprint` of `what` (data order, model, initial
    /// parameters …) — what data parallelism silently relies on.
    /// - Parameters:
    ///   - what: what the fingerprint stands for (for the error message).
    ///   - fingerprint: this rank's fingerprint.
    /// - Throws: ``DistributedError/ranksDisagree(what:detail:)`` on every rank when one differs
    ///   from rank 0's; MPI errors.
    public func checkAgreement(on what: String, fingerprint: UInt64) throws(DistributedError) {
        let all = try allgather([Int64(bitPattern: fingerprint)]).map { UInt64(bitPattern: $0[0]) }
        if let other = all.firstIndex(where: { $0 != all[0] }) {
            throw .ranksDisagree(what: what, detail: "rank 0 has \(String(all[0], radix: 16)), rank \(other) has \(String(all[other], radix: 16))")
        }
    }

    /// The contiguous share of `count` items (micro-batches, examples) that `rank` of `size`
    /// processes: `⌊count·rank/size⌋ ..< ⌊count·(rank+1)/size⌋`. The shares of ranks
    /// `0..<size` tile `0..<count` in order; they differ in length by at most one.
    /// - Parameters:
    ///   - count: items to share.
    ///   - rank: the rank, `0..<size`.
    ///   - size: number of ranks (≥ 1).
    /// - Returns: the rank's range.
    public static func share(of count: Int, rank: Int, size: Int) -> Range<Int> {
        (count * rank / size) ..< (count * (rank + 1) / size)
    }

    /// This rank's share of `count` items (``share(of:rank:size:)``).
    /// - Parameter count: items to share.
    /// - Returns: the range this rank processes.
    public func share(of count: Int) -> Range<Int> { Self.share(of: count, rank: rank, size: size) }
}

/// FNV-1a 64 of bytes: the fingerprints ranks compare (``Communicator/checkAgreement(on:fingerprint:)``).
public struct Fingerprint: Sendable, Equatable {
    /// The hash so far.
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    /// An empty fingerprint.
    public init() {}

    /// Mixes `bytes` in.
    /// - Parameter bytes: the bytes, in order.
    public mutating func mix<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
        for b in bytes { value = (value ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
    }

    /// Mixes the little-endian bytes of `values` in.
    /// - Parameter values: integers, in order.
    public mutating func mix(_ values: [Int]) {
        for v in values { withUnsafeBytes(of: Int64(v).littleEndian) { mix($0) } }
    }

    /// Mixes the exact bits of `tensors` in (shapes and elements).
    /// - Parameter tensors: the tensors, in order.
    public mutating func mix(_ tensors: [Tensor]) {
        for t in tensors {
            mix(t.shape)
            t.withUnsafeBufferPointer { p in
                for x in p { withUnsafeBytes(of: x.bitPattern.littleEndian) { mix($0) } }
            }
        }
    }
}
