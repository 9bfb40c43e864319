import Foundation
import LoRTA
import LoRTACommandLine
import LoRTADistributed

/// The MPI side of ``DataParallelism``: the world communicator, the MPI gradient exchange and the
/// fault injection of the failure test (`LORTA_MPI_FAIL=RANK:STEP`: that rank's micro-batches of
/// its STEP-th exchange of this run fail, to show the job ending cleanly).
struct MPIParallelism: DataParallelism {
    let world: Communicator
    let exchange: MPIGradientExchange
    let fault: InjectedFault?

    init(world: Communicator) throws {
        self.world = world
        self.exchange = MPIGradientExchange(communicator: world)
        self.fault = try InjectedFault(environment: ProcessInfo.processInfo.environment["LORTA_MPI_FAIL"], rank: world.rank)
    }

    var rank: Int { world.rank }
    var size: Int { world.size }
    var gradientExchange: any GradientExchange {
        guard let fault else { return exchange }
        return FaultInjectingExchange(inner: exchange, fault: fault)
    }

    func collectively<T>(_ body: () throws -> T) throws -> T { try world.collectively(body) }

    func checkAgreement(on what: String, text: String) throws {
        var f = Fingerprint()
        f.mix(text.utf8)
        try world.checkAgreement(on: what, fingerprint: f.value)
    }

    func checkAgreement(on what: String, tensors: [Tensor], integers: [Int]) throws {
        var f = Fingerprint()
        f.mix(tensors)
        f.mix(integers)
        try world.checkAgreement(on: what, fingerprint: f.value)
    }

    func barrier() throws { try world.barrier() }
    func share(of count: Int) -> Range<Int> { world.share(of: count) }

    func mergeStatistics(_ local: [ObservationPoint: ActivationStatistics]) throws -> [ObservationPoint: ActivationStatistics] {
        try world.mergeStatistics(local)
    }

    func mergeMetrics(_ local: ClassificationMetrics) throws -> ClassificationMetrics { try world.mergeMetrics(local) }

    func gatherRows(_ local: [Float]) throws -> [Float] { try world.allgather(local).flatMap { $0 } }

    func sumInRankOrder(_ local: [Double]) throws -> [Double] {
        let all = try world.allgather(local)
        guard all.allSatisfy({ $0.count == local.count }) else {
            throw DistributedError.ranksDisagree(what: "the number of values to sum",
                                                 detail: all.map { "\($0.count)" }.joined(separator: ", "))
        }
        var total = [Double](repeating: 0, count: local.count)
        for values in all { for i in total.indices { total[i] += values[i] } }
        return total
    }

    func summaryFields() throws -> [String: Any] {
        let c = exchange.clock
        let (transfer, mine) = try c.communicationSeconds(across: world)
        return ["processes": size, "rank0_compute_seconds": c.computeSeconds, "rank0_exchange_seconds": mine,
                "exchange_transfer_seconds": transfer, "exchanges": c.exchangeCount,
                "bytes_gathered_per_exchange": c.exchangeCount > 0 ? c.bytesGathered / c.exchangeCount : 0]
    }
}

/// `LORTA_MPI_FAIL=RANK:STEP`, parsed for this rank (nil when it names another rank or is unset).
struct InjectedFault: Error, CustomStringConvertible {
    let step: Int
    let counter = Counter()

    final class Counter: @unchecked Sendable {
        var exchanges = 0
    }

    init?(environment value: String?, rank: Int) throws {
        guard let value else { return nil }
        let parts = value.split(separator: ":")
        guard parts.count == 2, let r = Int(parts[0]), let s = Int(parts[1]), r >= 0, s >= 1 else {
            throw ValidationErrorText("LORTA_MPI_FAIL must be RANK:STEP (got \(value))")
        }
        guard r == rank else { return nil }
        step = s
    }

    var description: String { "injected failure (LORTA_MPI_FAIL) in step \(step) of this run" }
}

struct ValidationErrorText: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Wraps the MPI exchange: on the fault's step, this rank's micro-batches throw (the rank still
/// takes part in the allgather, as any failing rank does).
struct FaultInjectingExchange: GradientExchange {
    let inner: MPIGradientExchange
    let fault: InjectedFault

    func microBatchGradients(count: Int, compute: (Range<Int>) throws -> [MicroBatchGradients]) throws -> [MicroBatchGradients] {
        fault.counter.exchanges += 1
        let failNow = fault.counter.exchanges == fault.step
        return try inner.microBatchGradients(count: count) { range in
            if failNow { throw fault }
            return try compute(range)
        }
    }
}
