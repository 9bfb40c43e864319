import ArgumentParser
import Foundation
import LoRTA
import LoRTACommandLine
import LoRTADistributed

/// `lorta-mpi`: the data-parallel commands.
struct LortaMPI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lorta-mpi",
        abstract: "Data-parallel LoRA / LoRTA training and sharded activation statistics over MPI (run under mpirun).",
        discussion: """
        Every rank runs the same command. `train` takes `lorta train`'s options: each rank computes a \
        contiguous share of every step's micro-batches, the micro-batch gradients are gathered in \
        order, and every rank takes the same AdamW step — the adapter and head equal a \
        single-process `lorta train` with the same --batch-size and --micro-batch-size bit for bit \
        (use --micro-batch-size = batch / ranks). `eval` takes `lorta eval`'s options: each rank \
        evaluates and observes its shard of DATA, and metrics and statistics are merged in rank \
        order. `monitor-fit` takes `lorta monitor fit`'s options: each rank runs the model over its \
        shard of the trusted inputs, the recorded rows are gathered in rank order and every rank \
        fits the monitor one process would fit. Rank 0 alone prints and writes.
        """,
        version: LoRTAVersion.string,
        subcommands: [MPIRun<Train>.self, MPIRun<Eval>.self, MPIRun<MonitorFit>.self, MPIBenchmark.self]
    )
}

/// How a `lorta` command appears in `lorta-mpi`.
protocol MPISubcommand: DataParallelCommand {
    static var mpiName: String { get }
    static var mpiAbstract: String { get }
}

extension Train: MPISubcommand {
    static var mpiName: String { "train" }
    static var mpiAbstract: String {
        "Data-parallel `lorta train` (same options; the checkpoint does not depend on the number of ranks)."
    }
}

extension Eval: MPISubcommand {
    static var mpiName: String { "eval" }
    static var mpiAbstract: String {
        "Sharded `lorta eval` (same options): metrics or loss, and --observe statistics, merged across ranks in rank order."
    }
}

extension MonitorFit: MPISubcommand {
    static var mpiName: String { "monitor-fit" }
    static var mpiAbstract: String {
        "Sharded `lorta monitor fit` (same options): the trusted pass split over the ranks; the same monitor as one process."
    }
}

/// `lorta-mpi NAME`: the `lorta` command C, with C's options, as one rank of an MPI job.
struct MPIRun<C: MPISubcommand>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: C.mpiName, abstract: C.mpiAbstract)
    }

    @OptionGroup var options: C

    func run() throws {
        try options.run(parallel: try MPIParallelism(world: try Communicator.world()))
    }
}

/// `lorta-mpi bench-allgather`: the cost of one step's exchange.
struct MPIBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-allgather",
        abstract: "Time the allgather of a float buffer between the ranks (median over iterations), as the gradient exchange does it.")

    @Option(help: "Floats each rank sends (3,504: MiniLM LoRTA r=8 with a 2-class head).")
    var floats: Int = 3504
    @Option(help: "Timed iterations (after 100 warm-up ones).")
    var iterations: Int = 2000

    func validate() throws {
        guard (1...100_000_000).contains(floats) else { throw ValidationError("--floats must be in 1...100000000") }
        guard (1...1_000_000).contains(iterations) else { throw ValidationError("--iterations must be in 1...1000000") }
    }

    func run() throws {
        let world = try Communicator.world()
        let buffer = (0..<floats).map { Float($0 + world.rank) }
        var bytes = [UInt8](repeating: UInt8(world.rank), count: floats * 4)
        func median(_ body: () throws -> Void) throws -> Double {
            for _ in 0..<100 { try body() }
            var times: [Double] = []
            for _ in 0..<iterations {
                try world.barrier()
                let t0 = DispatchTime.now().uptimeNanoseconds
                try body()
                times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-3)
            }
            times.sort()
            return times[times.count / 2]
        }
        let floatsTime = try median { _ = try world.allgather(buffer) }
        let bytesTime = try median { bytes[0] &+= 1; _ = try world.allgather(bytes: bytes) }
        let barrierTime = try median { try world.barrier() }
        if world.rank == 0 {
            print(String(format: "ranks %d, %d floats per rank (%d bytes): allgather(floats) median %.1f µs, allgather(bytes) median %.1f µs, barrier median %.1f µs (%d iterations)",
                         world.size, floats, floats * 4, floatsTime, bytesTime, barrierTime, iterations))
        }
    }
}
