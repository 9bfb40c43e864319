import Foundation
import LoRTA

/// Data-parallel training over MPI: the `GradientExchange` (LoRTA) that makes N ranks take the same
/// steps, bit for bit, as one process with the same batch and micro-batch sizes.
///
/// Each step's `count` micro-batches are shared out contiguously
/// (``Communicator/share(of:rank:size:)``: rank r computes micro-batches
/// `⌊count·r/N⌋ ..< ⌊count·(r+1)/N⌋`); one allgather hands every rank the results of all
/// micro-batches in step order (their exact float bits, loss and counts), and every rank
/// combines them with the task's fixed-order rule — never `MPI_Allreduce`, whose summation
/// order is unspecified. For the single-process bits, use `--micro-batch-size = batch / N`
/// there (then every rank computes whole micro-batches of the same sizes).
///
/// A rank whose micro-batches fail still takes part in the allgather with its error message, so
/// every rank throws ``DistributedError/rankFailed(rank:message:)`` (the failed rank its own
/// error) at the same step and the trainer keeps the state of the last completed step.
///
/// ```swift
/// let world = try Communicator.world()
/// var trainer = try Trainer(task: task, adapter: adapter, configuration: configuration)
/// trainer.gradientExchange = MPIGradientExchange(communicator: world)
/// _ = try trainer.train()                  // every rank holds the same parameters
/// if world.rank == 0 { try trainer.saveCheckpoint(to: directory) }
/// ```
public struct MPIGradientExchange: GradientExchange {
    /// The ranks that train together.
    public let communicator: Communicator
    /// Where the time went (shared by copies of the exchange).
    public let clock: CommunicationClock

    /// - Parameters:
    ///   - communicator: the ranks that train together (usually ``Communicator/world()``).
    ///   - clock: accumulates the time spent computing and exchanging (a new one by default).
    public init(communicator: Communicator, clock: CommunicationClock = CommunicationClock()) {
        self.communicator = communicator
        self.clock = clock
    }

    /// Computes this rank's share of the micro-batches, then gathers every rank's results in
    /// rank (= step) order.
    /// - Parameters:
    ///   - count: micro-batches in the step.
    ///   - compute: computes the micro-batches of a range.
    /// - Throws: this rank's own error from `compute`; ``DistributedError/rankFailed(rank:message:)``
    ///   when another rank failed; ``DistributedError`` for MPI errors or malformed messages.
    public func microBatchGradients(count: Int, compute: (Range<Int>) throws -> [MicroBatchGradients]) throws -> [MicroBatchGradients] {
        let mine = communicator.share(of: count)
        let start = DispatchTime.now().uptimeNanoseconds
        var local: Result<[MicroBatchGradients], any Error>
        do { local = .success(try compute(mine)) } catch { local = .failure(error) }
        var writer = ByteWriter()
        switch local {
        case .success(let parts):
            writer.append(UInt8(0))
            writer.append(Int64(parts.count))
            for p in parts {
                writer.append(p.lossSum)
                writer.append(Int64(p.lossWeight))
                writer.append(Int64(p.tokens))
                writer.append(Int64(p.exampleCount))
                writer.append(Int64(p.gradients.count))
                for g in p.gradients { writer.append(g) }
            }
        case .failure(let error):
            writer.append(UInt8(1))
            writer.bytes += Array("\(error)".utf8)
        }
        let computed = DispatchTime.now().uptimeNanoseconds
        let all = try communicator.allgather(bytes: writer.bytes)
        clock.record(compute: computed - start, exchange: DispatchTime.now().uptimeNanoseconds - computed,
                     bytes: all.reduce(0) { $0 + $1.count })
        if case .failure(let error) = local { throw error }
        if let failed = all.firstIndex(where: { $0.first != 0 }) {
            throw DistributedError.rankFailed(rank: failed, message: String(decoding: all[failed].dropFirst(), as: UTF8.self))
        }
        var parts: [MicroBatchGradients] = []
        for (r, bytes) in all.enumerated() {
            var reader = ByteReader(bytes)
            _ = try reader.read(UInt8.self)
            let n = try reader.readCount(limit: count)
            guard n == Communicator.share(of: count, rank: r, size: communicator.size).count else {
                throw DistributedError.invalidMessage("rank \(r) sent \(n) micro-batches, its share is \(Communicator.share(of: count, rank: r, size: communicator.size))")
            }
            for _ in 0..<n {
                let lossSum = try reader.readDouble()
                let lossWeight = try reader.readCount(limit: Int(Int64.max))
                let tokens = try reader.readCount(limit: Int(Int64.max))
                let examples = try reader.readCount(limit: Int(Int64.max))
                let tensors = try reader.readCount(limit: bytes.count)
                var gradients: [Tensor] = []
                for _ in 0..<tensors { gradients.append(try reader.readTensor()) }
                parts.append(MicroBatchGradients(lossSum: lossSum, lossWeight: lossWeight, tokens: tokens,
                                                 exampleCount: examples, gradients: gradients))
            }
            guard reader.isAtEnd else { throw DistributedError.invalidMessage("rank \(r)'s message has trailing bytes") }
        }
        return parts
    }
}

/// Time and bytes of a data-parallel run, step by step: the time this rank computed its
/// micro-batches and the time it spent in the exchange (transfer plus waiting for the slowest
/// rank). A reference type so that every copy of an ``MPIGradientExchange`` records into it.
public final class CommunicationClock: @unchecked Sendable {
    private let lock = NSLock()
    private var computeNanoseconds: UInt64 = 0
    private var exchangeNanoseconds: UInt64 = 0
    private var exchangeBytes = 0
    private var exchanges = 0
    private var perExchange: [Double] = []

    /// A clock at zero.
    public init() {}

    func record(compute: UInt64, exchange: UInt64, bytes: Int) {
        lock.lock()
        defer { lock.unlock() }
        computeNanoseconds += compute
        exchangeNanoseconds += exchange
        exchangeBytes += bytes
        exchanges += 1
        perExchange.append(Double(exchange) * 1e-9)
    }

    /// Seconds this rank spent in each exchange, in order.
    public var exchangeSecondsPerStep: [Double] { lock.withLock { perExchange } }

    /// Every rank's time in each exchange (a collective: every rank must call it after the same
    /// exchanges). Per exchange, the rank that arrived last waited least: its time is the
    /// transfer itself; the others' extra time is waiting for it.
    /// - Parameter communicator: the ranks whose clocks to compare.
    /// - Returns: Σ over exchanges of the smallest time of any rank (the communication) and of
    ///   this rank's time (communication plus waiting).
    /// - Throws: ``DistributedError`` (MPI errors; ranks with different exchange counts).
    public func communicationSeconds(across communicator: Communicator) throws(DistributedError) -> (transfer: Double, thisRank: Double) {
        let mine = exchangeSecondsPerStep
        let all = try communicator.allgather(mine)
        guard all.allSatisfy({ $0.count == mine.count }) else {
            throw .ranksDisagree(what: "the number of gradient exchanges", detail: all.map { String($0.count) }.joined(separator: ", "))
        }
        var transfer = 0.0
        for i in mine.indices { transfer += all.map { $0[i] }.min() ?? 0 }
        return (transfer, mine.reduce(0, +))
    }

    /// Seconds spent computing this rank's micro-batches.
    public var computeSeconds: Double { lock.withLock { Double(computeNanoseconds) * 1e-9 } }
    /// Seconds spent in the allgathers (transfer and waiting for the other ranks).
    public var exchangeSeconds: Double { lock.withLock { Double(exchangeNanoseconds) * 1e-9 } }
    /// Bytes received by the allgathers (all ranks' messages, this rank's own included).
    public var bytesGathered: Int { lock.withLock { exchangeBytes } }
    /// Number of exchanges (one per optimizer step).
    public var exchangeCount: Int { lock.withLock { exchanges } }
}
