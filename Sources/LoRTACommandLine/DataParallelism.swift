import ArgumentParser
import Foundation
import LoRTA

/// What `lorta train` and `lorta eval` need when they run as one of several data-parallel
/// processes (`lorta-mpi`, which implements it over MPI). The commands themselves never import
/// MPI: `lorta` passes no parallelism and runs alone.
///
/// The rules the commands follow with it: every process loads the model and data and builds the
/// same trainer (``collectively(_:)`` turns one process's failure into an error on all); rank 0
/// alone reads and writes OUT; the trainer's ``LoRTA/Trainer/gradientExchange`` is
/// ``gradientExchange``; the processes check that they agree on the task, the initial
/// parameters and the data order before the first step, and that they hold the same
/// parameters after the last.
package protocol DataParallelism {
    /// This process's rank, `0..<size`; rank 0 writes the outputs.
    var rank: Int { get }
    /// Number of processes.
    var size: Int { get }
    /// The exchange every process's trainer uses.
    var gradientExchange: any GradientExchange { get }
    /// Runs `body` on every process; when any fails, every process throws (the failed one its
    /// own error, the others a "rank R failed" error).
    func collectively<T>(_ body: () throws -> T) throws -> T
    /// Throws on every process unless all have the same `text` for `what`.
    func checkAgreement(on what: String, text: String) throws
    /// Throws on every process unless all have bitwise-equal `tensors` and `integers` for `what`.
    func checkAgreement(on what: String, tensors: [Tensor], integers: [Int]) throws
    /// Waits for every process.
    func barrier() throws
    /// This process's contiguous share of `count` items, in rank order.
    func share(of count: Int) -> Range<Int>
    /// Merges per-point statistics across processes in rank order (exact merge).
    func mergeStatistics(_ local: [ObservationPoint: ActivationStatistics]) throws -> [ObservationPoint: ActivationStatistics]
    /// The element-wise sums of every process's `local` values (same length everywhere), added
    /// in rank order (each process gets them).
    func sumInRankOrder(_ local: [Double]) throws -> [Double]
    /// Every process's `local` values concatenated in rank order (each process gets all).
    func gatherRows(_ local: [Float]) throws -> [Float]
    /// Adds up evaluation metrics across processes in rank order.
    func mergeMetrics(_ local: ClassificationMetrics) throws -> ClassificationMetrics
    /// Summary fields of the communication so far (for `training_summary.json`): a collective,
    /// every rank calls it after the training loop (only rank 0 uses the result).
    func summaryFields() throws -> [String: Any]
}

/// A `lorta` command that can run as one process of a data-parallel job (`lorta-mpi` runs it
/// with its MPI ``DataParallelism``; `lorta` with none).
package protocol DataParallelCommand: ParsableCommand {
    func run(parallel: (any DataParallelism)?) throws
}

extension Train: DataParallelCommand {}
extension Eval: DataParallelCommand {}
extension MonitorFit: DataParallelCommand {}

extension DataParallelism {
    /// True on rank 0, the process that writes.
    var isWriter: Bool { rank == 0 }
}

/// Runs `body` through `parallel`'s ``DataParallelism/collectively(_:)``, or directly without one.
func collectively<T>(_ parallel: (any DataParallelism)?, _ body: () throws -> T) throws -> T {
    guard let parallel else { return try body() }
    return try parallel.collectively(body)
}
