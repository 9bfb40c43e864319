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
    /// Y `[n × outputWidth]` (ld `ldy`); an adapter's `terms` go to the run holding their module
    /// (`column(module)`: the module's first column in Y) and are added to its tiles.
    /// - Throws: ``AdapterError/incompatible(_:)`` for a term of a module this product lacks.
    func apply(n: Int, x: UnsafePointer<Float>, ldx: Int, into y: UnsafeMutablePointer<Float>, ldy: Int,
               accumulate: Bool, scratch: ScratchBuffer, terms: [LowRankTerm] = [],
               column: (String) -> Int? = { _ in nil }) throws {
        try LowRankTerm.checkOutputs(terms, column: column)
        for (run, offset) in zip(runs, offsets) {
            func inRun(_ m: String) -> Int? {
                column(m).flatMap { $0 >= offset && $0 < offset + run.rows ? $0 - offset : nil }
            }
            let mine = terms.filter { inRun($0.module) != nil }
            try LowRankTerm.withCTerms(mine, rows: n, column: { inRun($0) }) { p, count in
                try run.multiplyTransposed(n: n, x: x, ldx: ldx, into: y + offset, ldy: ldy,
                                           accumulate: accumulate, scratch: scratch, terms: p, termCount: count)
            }
        }
    }

    /// Input gradient of ``apply(n:x:ldx:into:ldy:accumulate:scratch:terms:column:)``:
    /// `dX = Σ_k dY[:, slice k] W_k` (overwritten), dY `[n × outputWidth]` (ld `lddy`), dX
    /// `[n × inputWidth]` (ld `lddx`), then an adapter's input-gradient `terms` (module `""`),
    /// added to the tiles of the last run's product.
    func applyBackward(n: Int, dy: UnsafePointer<Float>, lddy: Int, into dx: UnsafeMutablePointer<Float>, lddx: Int,
                       scratch: ScratchBuffer, terms: [LowRankTerm] = []) throws {
        for (k, (run, offset)) in zip(runs, offsets).enumerated() {
            try run.multiply(n: n, dy: dy + offset, lddy: lddy, into: dx, lddx: lddx, accumulate: k > 0, scratch: scratch,
                             terms: k == runs.count - 1 ? terms : [])
        }
    }

    /// The run and its rows that compute the output columns `columns` (inside one run).
    private func segment(_ columns: Range<Int>) throws -> (QuantizedMatrix, Range<Int>) {
        for (run, offset) in zip(runs, offsets) where columns.lowerBound >= offset && columns.upperBound <= offset + run.rows {
            return (run, (columns.lowerBound - offset)..<(columns.upperBound - offset))
        }
        throw QuantizedMatrixError.incompatibleRows("columns \(columns) of \(runs.map(\.name)) are not inside one matrix")
    }

    /// The gate|up product of a Llama MLP with its SwiGLU gate: `G = X W_gᵀ` into columns
    /// `0 ..< width` of Y, then `U = X W_uᵀ` into columns `width ..< 2·width` and `A = silu(G) ∘ U`
    /// (`n × width` at `activation`) on each tile of U while it is in cache — each with its
    /// adapter's terms (`column(module)`: `gate_proj` → 0, `up_proj` → `width`). Same bits as
    /// ``apply(n:x:ldx:into:ldy:accumulate:scratch:terms:column:)`` followed by `lt_swiglu_forward`.
    /// - Throws: ``AdapterError/incompatible(_:)`` for a term of another module;
    ///   ``QuantizedMatrixError`` when the stacked parts are not gate then up of `width` rows each.
    func applySwiGLU(n: Int, x: UnsafePointer<Float>, ldx: Int, into y: UnsafeMutablePointer<Float>, ldy: Int,
                     width: Int, activation a: UnsafeMutablePointer<Float>, lda: Int, scratch: ScratchBuffer,
                     terms: [LowRankTerm], column: (String) -> Int?) throws {
        guard outputWidth == 2 * width else {
            throw QuantizedMatrixError.incompatibleRows("gate|up has \(outputWidth) rows, expected 2 × \(width)")
        }
        try LowRankTerm.checkOutputs(terms, column: column)
        let gate = terms.filter { column($0.module)! < width }, up = terms.filter { column($0.module)! >= width }
        let (gm, gr) = try segment(0..<width), (um, ur) = try segment(width..<(2 * width))
        try LowRankTerm.withCTerms(gate, rows: n, column: column) { p, count in
            try gm.multiplyTransposed(n: n, x: x, ldx: ldx, rows: gr, into: y, ldy: ldy, scratch: scratch,
                                      terms: p, termCount: count)
        }
        try LowRankTerm.withCTerms(up, rows: n, column: { column($0).map { $0 - width } }) { p, count in
            try um.multiplyTransposedSwiGLU(n: n, x: x, ldx: ldx, rows: ur, gate: y, ldg: ldy, into: y + width, ldu: ldy,
                                            activation: a, lda: lda, scratch: scratch, terms: p, termCount: count)
        }
    }

    /// Prefaults every run's bytes (see ``QuantizedMatrix/prefault()``).
    func prefault() { for r in runs { r.prefault() } }

    /// Bytes of the stored weights.
    var byteCount: Int { runs.reduce(0) { $0 + $1.byteCount } }
    /// Storage types used (for `lorta info`).
    var types: [GGMLType] { runs.map(\.type) }
}
