/// Several frozen projections of the same input whose outputs sit side by side in one output
/// row: query|key|value (`[n × (H + 2·H_kv)·d_h]`) or gate|up (`[n × 2I]`).
///
/// Consecutive parts with the same storage type and column count are joined at load time into
/// one matrix, so the common case is a single product (one pass over the input, one thread
/// team); files that mix types (Q4_K_M stores some value projections as Q6_K) keep one product
/// per type run. Each part's output goes to its column slice of the output.
struct StackedProjection: Sendable {
    /// The joined runs, in output-column order.
    let runs: [QuantizedMatrix]
    /// Column where each run's output starts.
    let offsets: [Int]
    /// Input width (columns of every part).
    let inputWidth: Int
    /// Output width (sum of the parts' rows).
    let outputWidth: Int

    /// Stacks `parts` (same column count) in order; `name` labels the joined matrices.
    init(_ parts: [QuantizedMatrix], name: String) throws {
        guard let first = parts.first else { throw QuantizedMatrixError.incompatibleRows("no matrices for \(name)") }
        var runs: [QuantizedMatrix] = []
        var pending: [QuantizedMatrix] = []
        func flush() throws {
            guard !pending.isEmpty else { return }
            runs.append(pending.count == 1 ? pending[0]
                        : try QuantizedMatrix.stackingRows(pending, name: pending.map(\.name).joined(separator: "|")))
            pending = []
        }
        for p in parts {
            guard p.columns == first.columns else {
                throw QuantizedMatrixError.incompatibleRows("\"\(p.name)\" has \(p.columns) columns, \"\(first.name)\" \(first.columns)")
            }
            if let last = pending.last, last.type != p.type { try flush() }
            pending.append(p)
        }
        try flush()
        var offsets: [Int] = []
        var o = 0
        for r in runs { offsets.append(o); o += r.rows }
        self.runs = runs
        self.offsets = offsets
        self.inputWidth = first.columns
        self.outputWidth = o
    }

    /// `Y[:, slice of run k] (=|+=) X W_kᵀ` for every run: X `[n × inputWidth]` (ld `ldx`),
    /// Y `[n × outputWidth]` (ld `ldy`).
    func apply(n: Int, x: UnsafePointer<Float>, ldx: Int, into y: UnsafeMutablePointer<Float>, ldy: Int,
               accumulate: Bool, scratch: ScratchBuffer) throws {
        for (run, offset) in zip(runs, offsets) {
            try run.multiplyTransposed(n: n, x: x, ldx: ldx, into: y + offset, ldy: ldy,
                                       accumulate: accumulate, scratch: scratch)
        }
    }

    /// Input gradient of ``apply(n:x:ldx:into:ldy:accumulate:scratch:)``: `dX = Σ_k dY[:, slice k] W_k`
    /// (overwritten), dY `[n × outputWidth]` (ld `lddy`), dX `[n × inputWidth]` (ld `lddx`).
    func applyBackward(n: Int, dy: UnsafePointer<Float>, lddy: Int, into dx: UnsafeMutablePointer<Float>, lddx: Int,
                       scratch: ScratchBuffer) throws {
        for (k, (run, offset)) in zip(runs, offsets).enumerated() {
            try run.multiply(n: n, dy: dy + offset, lddy: lddy, into: dx, lddx: lddx, accumulate: k > 0, scratch: scratch)
        }
    }

    /// Prefaults every run's bytes (see ``QuantizedMatrix/prefault()``).
    func prefault() { for r in runs { r.prefault() } }

    /// Bytes of the stored weights.
    var byteCount: Int { runs.reduce(0) { $0 + $1.byteCount } }
    /// Storage types used (for `lorta info`).
    var types: [GGMLType] { runs.map(\.type) }
}
