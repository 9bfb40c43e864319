/// Everything the distributed layer reports. Each case says what failed and where.
public enum DistributedError: Error, Equatable, CustomStringConvertible {
    /// An MPI call returned an error code (`call`, the code, MPI's own text for it).
    case mpi(call: String, code: Int32, message: String)
    /// A rank failed; every rank throws this after the collective that found it, so the whole
    /// job stops at the same step. `rank` is the lowest failed rank, `message` its error.
    case rankFailed(rank: Int, message: String)
    /// The ranks disagree where they must agree (`what`: data order, model, initial
    /// parameters …), with the values seen.
    case ranksDisagree(what: String, detail: String)
    /// A buffer or count does not fit MPI's 32-bit counts, or a received message is malformed.
    case invalidMessage(String)

    public var description: String {
        switch self {
        case .mpi(let call, let code, let message):
            return "\(call) failed: \(message) (MPI error \(code))"
        case .rankFailed(let rank, let message):
            return "rank \(rank) failed: \(message)"
        case .ranksDisagree(let what, let detail):
            return "the ranks disagree on \(what): \(detail)"
        case .invalidMessage(let reason):
            return "invalid message between ranks: \(reason)"
        }
    }
}
