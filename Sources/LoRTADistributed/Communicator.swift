import CMPI

/// A typed view of MPI's world communicator: rank and size, barrier, broadcast and
/// (variable-length) allgather of float, double, integer and byte buffers. Every MPI call's
/// status becomes a ``DistributedError/mpi(call:code:message:)``: the communicator's error
/// handler is set to `MPI_ERRORS_RETURN`, so MPI returns errors instead of aborting.
///
/// ```swift
/// let world = try Communicator.world()      // MPI_Init_thread on first use
/// let all = try world.allgather([Float(world.rank)])   // all[r] is rank r's buffer
/// try Communicator.finalize()
/// ```
///
/// Collectives must be called by every rank in the same order. Only the thread that
/// initialized MPI calls it (`MPI_THREAD_FUNNELED`); the library's OpenMP threads never do.
public final class Communicator: @unchecked Sendable {
    /// This process's rank, `0..<size`.
    public let rank: Int
    /// Number of processes.
    public let size: Int
    private let comm: MPI_Comm?

    nonisolated(unsafe) private static var shared: Communicator?

    private init(comm: MPI_Comm?) throws(DistributedError) {
        self.comm = comm
        var r: Int32 = 0, s: Int32 = 0
        try Self.check("MPI_Comm_rank", MPI_Comm_rank(comm, &r))
        try Self.check("MPI_Comm_size", MPI_Comm_size(comm, &s))
        rank = Int(r)
        size = Int(s)
    }

    /// The world communicator; initializes MPI (thread level funneled) on the first call.
    /// Started without `mpirun`, the world is one process of rank 0.
    /// - Throws: ``DistributedError/mpi(call:code:message:)`` when MPI cannot start.
    public static func world() throws(DistributedError) -> Communicator {
        if let shared { return shared }
        var initialized: Int32 = 0
        MPI_Initialized(&initialized)
        if initialized == 0 {
            var provided: Int32 = 0
            try check("MPI_Init_thread", MPI_Init_thread(nil, nil, lt_mpi_thread_funneled(), &provided))
        }
        let world = lt_mpi_comm_world()
        try check("MPI_Comm_set_errhandler", MPI_Comm_set_errhandler(world, lt_mpi_errors_return()))
        let c = try Communicator(comm: world)
        shared = c
        return c
    }

    /// Ends MPI (`MPI_Finalize`); no MPI call may follow. Does nothing when MPI was not started
    /// or is already finalized.
    /// - Throws: ``DistributedError/mpi(call:code:message:)``.
    public static func finalize() throws(DistributedError) {
        var initialized: Int32 = 0, finalized: Int32 = 0
        MPI_Initialized(&initialized)
        MPI_Finalized(&finalized)
        guard initialized != 0, finalized == 0 else { return }
        try check("MPI_Finalize", MPI_Finalize())
    }

    /// Ends every process of the job with `code` (`MPI_Abort`): for a rank that cannot reach the
    /// next collective (the others would wait forever).
    /// - Parameter code: the exit status mpirun reports.
    public func abort(code: Int32) -> Never {
        MPI_Abort(comm, code)
        fatalError("MPI_Abort returned")  // MPI_Abort does not return.
    }

    /// Waits until every rank has called it.
    /// - Throws: ``DistributedError/mpi(call:code:message:)``.
    public func barrier() throws(DistributedError) {
        try Self.check("MPI_Barrier", MPI_Barrier(comm))
    }

    /// Every rank's `values`, in rank order (lengths may differ between ranks).
    /// - Parameter values: this rank's buffer.
    /// - Throws: ``DistributedError``.
    public func allgather(_ values: [Float]) throws(DistributedError) -> [[Float]] {
        try allgatherv(values, type: lt_mpi_float())
    }

    /// Every rank's `values`, in rank order (lengths may differ between ranks).
    /// - Parameter values: this rank's buffer.
    /// - Throws: ``DistributedError``.
    public func allgather(_ values: [Double]) throws(DistributedError) -> [[Double]] {
        try allgatherv(values, type: lt_mpi_double())
    }

    /// Every rank's `values`, in rank order (lengths may differ between ranks).
    /// - Parameter values: this rank's buffer.
    /// - Throws: ``DistributedError``.
    public func allgather(_ values: [Int64]) throws(DistributedError) -> [[Int64]] {
        try allgatherv(values, type: lt_mpi_int64())
    }

    /// Every rank's bytes, in rank order (lengths may differ between ranks).
    /// - Parameter bytes: this rank's buffer.
    /// - Throws: ``DistributedError``.
    public func allgather(bytes: [UInt8]) throws(DistributedError) -> [[UInt8]] {
        try allgatherv(bytes, type: lt_mpi_byte())
    }

    /// Rank `root`'s `values` on every rank (the others' arguments are ignored; lengths may differ).
    /// - Parameters:
    ///   - values: the buffer to send (used on `root` only).
    ///   - root: the sending rank.
    /// - Throws: ``DistributedError``.
    public func broadcast(_ values: [Double], root: Int = 0) throws(DistributedError) -> [Double] {
        try bcast(values, root: root, type: lt_mpi_double())
    }

    /// Rank `root`'s bytes on every rank (the others' arguments are ignored; lengths may differ).
    /// - Parameters:
    ///   - bytes: the buffer to send (used on `root` only).
    ///   - root: the sending rank.
    /// - Throws: ``DistributedError``.
    public func broadcast(bytes: [UInt8], root: Int = 0) throws(DistributedError) -> [UInt8] {
        try bcast(bytes, root: root, type: lt_mpi_byte())
    }

    // MARK: - Implementation

    /// Allgather of one Int64 per rank (the lengths), then MPI_Allgatherv of the elements.
    private func allgatherv<T: BitwiseCopyable>(_ values: [T], type: MPI_Datatype?) throws(DistributedError) -> [[T]] {
        var mine = Int64(values.count)
        var counts = [Int64](repeating: 0, count: size)
        try Self.check("MPI_Allgather", counts.withUnsafeMutableBufferPointer { c in
            MPI_Allgather(&mine, 1, lt_mpi_int64(), c.baseAddress, 1, lt_mpi_int64(), comm)
        })
        let total = counts.reduce(0, +)
        guard total <= Int64(Int32.max), counts.allSatisfy({ $0 >= 0 }) else {
            throw .invalidMessage("an allgather of \(total) elements exceeds MPI's 32-bit counts")
        }
        let recvCounts = counts.map { Int32($0) }
        var displacements = [Int32](repeating: 0, count: size)
        for r in 1..<max(1, size) { displacements[r] = displacements[r - 1] + recvCounts[r - 1] }
        var all = [T](unsafeUninitializedCapacity: Int(total)) { _, n in n = Int(total) }
        try Self.check("MPI_Allgatherv", values.withUnsafeBytes { send in
            all.withUnsafeMutableBytes { recv in
                MPI_Allgatherv(send.baseAddress, Int32(values.count), type, recv.baseAddress, recvCounts,
                               displacements, type, comm)
            }
        })
        return (0..<size).map { r in Array(all[Int(displacements[r]) ..< Int(displacements[r] + recvCounts[r])]) }
    }

    /// Broadcast of the length, then of the elements.
    private func bcast<T: BitwiseCopyable>(_ values: [T], root: Int, type: MPI_Datatype?) throws(DistributedError) -> [T] {
        guard root >= 0, root < size else { throw .invalidMessage("root \(root) is not a rank of 0..<\(size)") }
        var count = Int64(rank == root ? values.count : 0)
        try Self.check("MPI_Bcast", MPI_Bcast(&count, 1, lt_mpi_int64(), Int32(root), comm))
        guard count >= 0, count <= Int64(Int32.max) else {
            throw .invalidMessage("a broadcast of \(count) elements exceeds MPI's 32-bit counts")
        }
        var out = rank == root ? values : [T](unsafeUninitializedCapacity: Int(count)) { _, n in n = Int(count) }
        try Self.check("MPI_Bcast", out.withUnsafeMutableBytes { p in
            MPI_Bcast(p.baseAddress, Int32(count), type, Int32(root), comm)
        })
        return out
    }

    /// `code` → ``DistributedError/mpi(call:code:message:)`` unless it is `MPI_SUCCESS`.
    static func check(_ call: String, _ code: Int32) throws(DistributedError) {
        guard code != MPI_SUCCESS else { return }
        var buffer = [CChar](repeating: 0, count: Int(lt_mpi_max_error_string()) + 1)
        var length: Int32 = 0
        MPI_Error_string(code, &buffer, &length)
        let message = String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        throw .mpi(call: call, code: code, message: message)
    }
}
