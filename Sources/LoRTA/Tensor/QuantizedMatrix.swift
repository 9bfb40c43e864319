import CKernels
import Foundation

/// Errors about stored (possibly quantized) weight matrices.
public enum QuantizedMatrixError: Error, Equatable, CustomStringConvertible {
    /// A ggml storage type this library cannot decode (see ``GGMLType/canDequantize``).
    case unsupportedType(GGMLType, name: String)
    /// The row length is not a whole number of the type's blocks.
    case rowNotWholeBlocks(name: String, type: GGMLType, columns: Int)
    /// The byte count does not match `rows × row bytes`.
    case byteCountMismatch(name: String, expected: Int, actual: Int)
    /// Matrices joined by rows must share the storage type and the column count.
    case incompatibleRows(String)
    /// A row index (permutation or lookup) is out of range.
    case rowOutOfRange(name: String, row: Int, rows: Int)

    public var description: String {
        switch self {
        case .unsupportedType(let t, let n):
            return "tensor \"\(n)\" is stored as \(t.name), which this library cannot decode "
                + "(supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)"
        case .rowNotWholeBlocks(let n, let t, let c):
            return "tensor \"\(n)\": a row of \(c) values is not a whole number of \(t.name) blocks of \(t.blockElements)"
        case .byteCountMismatch(let n, let e, let a):
            return "tensor \"\(n)\": \(a) bytes, the shape and type need \(e)"
        case .incompatibleRows(let r): return "cannot join matrices by rows: \(r)"
        case .rowOutOfRange(let n, let r, let rows): return "tensor \"\(n)\": row \(r) is outside 0..<\(rows)"
        }
    }
}

/// A frozen weight matrix `W [rows × columns]` (PyTorch `out × in`) kept in its storage type —
/// Float32, or a ggml block format (F16, BF16, Q4_0 … Q6_K) read straight from a GGUF file —
/// and multiplied by Float32 activations without widening the whole matrix.
///
/// The bytes are either owned (a Float32 ``Tensor``, or a copy) or a slice of a memory-mapped
/// file: the `Data` slice keeps the mapping alive, so a matrix may outlive the reader that
/// produced it. Products go through `lt_quant_matmul` (`lt_quant.h`): one row of activations at
/// a time (decoding) reads each block once and dequantizes it in registers or in a small cache-
/// resident tile; larger batches dequantize panels of rows and use SGEMM. The dequantized values
/// equal ggml's reference bit for bit, so a product equals the Float32 product with the
/// dequantized matrix up to summation order.
public struct QuantizedMatrix: Sendable {
    /// Storage type of the elements.
    public let type: GGMLType
    public let rows: Int
    public let columns: Int
    /// A name for error messages (the tensor's name in its file).
    public let name: String

    private enum Storage: @unchecked Sendable {
        case float32(Tensor)
        case bytes(Data)
    }
    private let storage: Storage

    /// Bytes of one row.
    public var rowByteCount: Int { type.byteCount(elements: columns)! }
    /// Bytes of the whole matrix.
    public var byteCount: Int { rows * rowByteCount }
    /// `[rows, columns]`.
    public var shape: [Int] { [rows, columns] }

    /// A Float32 matrix (2-dimensional tensor; shares its storage, no copy).
    /// - Throws: ``TensorError/rankMismatch(operation:expected:actual:)`` unless 2-dimensional.
    public init(_ tensor: Tensor, name: String = "") throws {
        let (r, c) = try tensor.matrixShape("QuantizedMatrix")
        self.type = .f32
        self.rows = r
        self.columns = c
        self.name = name
        self.storage = .float32(tensor)
    }

    /// A matrix over `bytes` (kept, not copied: a slice of a mapped file stays mapped).
    /// - Throws: ``QuantizedMatrixError`` for a type without a decoder, a row that is not whole
    ///   blocks, or a byte count other than `rows × row bytes`.
    public init(type: GGMLType, rows: Int, columns: Int, bytes: Data, name: String = "") throws {
        guard type.canDequantize else { throw QuantizedMatrixError.unsupportedType(type, name: name) }
        guard rows >= 0, columns >= 0, let rowBytes = type.byteCount(elements: columns) else {
            throw QuantizedMatrixError.rowNotWholeBlocks(name: name, type: type, columns: columns)
        }
        let (total, overflow) = rows.multipliedReportingOverflow(by: rowBytes)
        guard !overflow, total == bytes.count else {
            throw QuantizedMatrixError.byteCountMismatch(name: name, expected: overflow ? -1 : total, actual: bytes.count)
        }
        self.type = type
        self.rows = rows
        self.columns = columns
        self.name = name
        self.storage = .bytes(bytes)
    }

    /// Reads the stored bytes in place (Float32 values for ``GGMLType/f32``). The pointer is
    /// valid only inside `body`.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch storage {
        case .float32(let t):
            return try t.withUnsafeBufferPointer { try body(UnsafeRawBufferPointer($0)) }
        case .bytes(let d):
            return try d.withUnsafeBytes { try body($0) }
        }
    }

    /// Maps the stored bytes into the page tables now (for a slice of a memory-mapped file), so
    /// the first product does not pay a page fault per 4 KB page. Uses `MADV_POPULATE_READ`
    /// (Linux 5.14+; reads only, so a private mapping's pages stay shared with the page cache),
    /// else touches one byte per page. O(byte count / page size); a no-op for owned storage.
    public func prefault() {
        guard case .bytes(let d) = storage else { return }
        d.withUnsafeBytes { raw in
            guard let base = raw.baseAddress, raw.count > 0 else { return }
            let page = Int(sysconf(Int32(_SC_PAGESIZE)))
            let start = Int(bitPattern: base) & ~(page - 1)
            let length = Int(bitPattern: base) + raw.count - start
            #if os(Linux)
            if madvise(UnsafeMutableRawPointer(bitPattern: start), length, 22 /* MADV_POPULATE_READ */) == 0 { return }
            #endif
            var sum: UInt8 = 0
            var offset = 0
            while offset < raw.count {
                sum &+= raw[offset]
                offset += page
            }
            withExtendedLifetime(sum) {}
        }
    }

    /// The matrix widened to Float32 `[rows, columns]`. O(rows · columns).
    public func dequantized() throws -> Tensor {
        if case .float32(let t) = storage { return t }
        var out = try Tensor(zeros: [rows, columns])
        let n = rows * columns
        let status = withUnsafeBytes { raw in
            out.withUnsafeMutableBufferPointer { dst in
                lt_dequantize(Int32(type.rawValue), raw.baseAddress, Int64(raw.count), Int64(n), dst.baseAddress)
            }
        }
        try KernelFailure.check(status, "lt_dequantize(\(type.name))")
        return out
    }

    /// Rows `ids` widened to Float32: `[ids.count, columns]` (an embedding lookup).
    /// - Throws: ``QuantizedMatrixError/rowOutOfRange(name:row:rows:)``.
    public func gatherRows(_ ids: [Int32]) throws -> Tensor {
        var out = try Tensor(zeros: [ids.count, columns])
        try gatherRows(ids, into: &out)
        return out
    }

    /// Writes rows `ids` into `out` (`[ids.count, columns]`).
    func gatherRows(_ ids: [Int32], into out: inout Tensor) throws {
        if let bad = ids.first(where: { $0 < 0 || Int($0) >= rows }) {
            throw QuantizedMatrixError.rowOutOfRange(name: name, row: Int(bad), rows: rows)
        }
        try out.expectShape([ids.count, columns], "QuantizedMatrix.gatherRows")
        guard !ids.isEmpty, columns > 0 else { return }
        let status = withUnsafeBytes { raw in
            ids.withUnsafeBufferPointer { pid in
                out.withUnsafeMutableBufferPointer { dst in
                    lt_quant_gather_rows(Int32(type.rawValue), Int64(rows), Int64(columns), raw.baseAddress,
                                         Int64(raw.count), pid.baseAddress, Int64(ids.count),
                                         dst.baseAddress, Int64(columns))
                }
            }
        }
        try KernelFailure.check(status, "lt_quant_gather_rows(\(type.name))")
    }

    /// `X Wᵀ`: `x` is `[n, columns]`, the result `[n, rows]`. O(n · rows · columns).
    /// - Throws: ``TensorError`` when `x` is not `[n, columns]`.
    public func multiplyTransposed(_ x: Tensor) throws -> Tensor {
        let (n, c) = try x.matrixShape("QuantizedMatrix.multiplyTransposed")
        guard c == columns else {
            throw TensorError.shapeMismatch(operation: "QuantizedMatrix.multiplyTransposed", expected: [n, columns], actual: x.shape)
        }
        var y = try Tensor(zeros: [n, rows])
        let scratch = ScratchBuffer()
        try x.withUnsafeBufferPointer { px in
            try y.withUnsafeMutableBufferPointer { py in
                try multiplyTransposed(n: n, x: px.baseAddress!, ldx: columns, into: py.baseAddress!, ldy: rows,
                                       accumulate: false, scratch: scratch)
            }
        }
        return y
    }

    /// `Y (=|+=) X Wᵀ` on raw rows: X `[n × columns]` (ld `ldx`), Y `[n × rows]` (ld `ldy`),
    /// then the low-rank `terms` (columns of Y, in order; added to each tile on the GEMM path).
    /// The workspace comes from `scratch` (grown on demand and reused by the caller).
    func multiplyTransposed(n: Int, x: UnsafePointer<Float>, ldx: Int, into y: UnsafeMutablePointer<Float>,
                            ldy: Int, accumulate: Bool, scratch: ScratchBuffer,
                            terms: UnsafePointer<lt_lowrank_term>? = nil, termCount: Int64 = 0) throws {
        let (ws, floats) = try workspace(n: n, scratch: scratch)
        let status = withUnsafeBytes { raw in
            lt_quant_matmul_terms(Int32(type.rawValue), Int64(n), Int64(columns), Int64(rows), x, Int64(ldx),
                                  raw.baseAddress, Int64(raw.count), terms, termCount, y, Int64(ldy),
                                  accumulate ? 1 : 0, ws, floats)
        }
        try KernelFailure.check(status, "lt_quant_matmul(\(type.name), n: \(n), \(rows)×\(columns))")
    }

    /// `dX (=|+=) dY W` on raw rows: dY `[n × rows]`, dX `[n × columns]` (the input gradient of
    /// a frozen projection), then the low-rank `terms` (columns of dX, in order).
    func multiply(n: Int, dy: UnsafePointer<Float>, lddy: Int, into dx: UnsafeMutablePointer<Float>,
                  lddx: Int, accumulate: Bool, scratch: ScratchBuffer,
                  terms: UnsafePointer<lt_lowrank_term>? = nil, termCount: Int64 = 0) throws {
        let (ws, floats) = try workspace(n: n, scratch: scratch)
        let status = withUnsafeBytes { raw in
            lt_quant_matmul_backward_input_terms(Int32(type.rawValue), Int64(n), Int64(columns), Int64(rows), dy,
                                                 Int64(lddy), raw.baseAddress, Int64(raw.count), terms, termCount,
                                                 dx, Int64(lddx), accumulate ? 1 : 0, ws, floats)
        }
        try KernelFailure.check(status, "lt_quant_matmul_backward_input(\(type.name), n: \(n), \(rows)×\(columns))")
    }

    /// ``multiplyTransposed(n:x:ldx:into:ldy:accumulate:scratch:terms:termCount:)`` with an
    /// adapter's terms of `module` (this matrix's whole output).
    func multiplyTransposed(n: Int, x: UnsafePointer<Float>, ldx: Int, into y: UnsafeMutablePointer<Float>,
                            ldy: Int, accumulate: Bool, scratch: ScratchBuffer,
                            terms: [LowRankTerm], module: String) throws {
        try LowRankTerm.withCTerms(terms, rows: n, column: { $0 == module ? 0 : nil }) { p, count in
            try multiplyTransposed(n: n, x: x, ldx: ldx, into: y, ldy: ldy, accumulate: accumulate, scratch: scratch,
                                   terms: p, termCount: count)
        }
    }

    /// ``multiply(n:dy:lddy:into:lddx:accumulate:scratch:terms:termCount:)`` with an adapter's
    /// input-gradient terms (module `""`).
    func multiply(n: Int, dy: UnsafePointer<Float>, lddy: Int, into dx: UnsafeMutablePointer<Float>,
                  lddx: Int, accumulate: Bool, scratch: ScratchBuffer, terms: [LowRankTerm]) throws {
        try LowRankTerm.withCTerms(terms, rows: n, column: { $0.isEmpty ? 0 : nil }) { p, count in
            try multiply(n: n, dy: dy, lddy: lddy, into: dx, lddx: lddx, accumulate: accumulate, scratch: scratch,
                         terms: p, termCount: count)
        }
    }

    /// `U = X W[rows]ᵀ` (the up projection: rows `rows` of this matrix, `n × rows.count` at `u`),
    /// then the low-rank `terms` on U, then the SwiGLU gate `A = silu(G) ∘ U` — on each tile of U
    /// while it is in cache (`lt_quant_matmul_swiglu`). G and A are `n × rows.count`.
    func multiplyTransposedSwiGLU(n: Int, x: UnsafePointer<Float>, ldx: Int, rows range: Range<Int>,
                                  gate: UnsafePointer<Float>, ldg: Int, into u: UnsafeMutablePointer<Float>, ldu: Int,
                                  activation a: UnsafeMutablePointer<Float>, lda: Int, scratch: ScratchBuffer,
                                  terms: UnsafePointer<lt_lowrank_term>?, termCount: Int64) throws {
        let (ws, floats) = try workspace(n: n, outputs: range.count, scratch: scratch)
        let status = withRowBytes(range) { raw in
            lt_quant_matmul_swiglu(Int32(type.rawValue), Int64(n), Int64(columns), Int64(range.count), x, Int64(ldx),
                                   raw.baseAddress, Int64(raw.count), terms, termCount, gate, Int64(ldg), u, Int64(ldu),
                                   a, Int64(lda), ws, floats)
        }
        try KernelFailure.check(status, "lt_quant_matmul_swiglu(\(type.name), n: \(n), rows \(range) of \(rows)×\(columns))")
    }

    /// `dA = dY W` (this matrix is the down projection, `dA` is `n × columns`), then the
    /// low-rank `terms` on dA, then the SwiGLU backward `dG, dU` from G, U and dA — on each tile
    /// of dA (`lt_quant_matmul_swiglu_backward`).
    func multiplySwiGLUBackward(n: Int, dy: UnsafePointer<Float>, lddy: Int, gate: UnsafePointer<Float>, ldg: Int,
                                up: UnsafePointer<Float>, ldu: Int, into dA: UnsafeMutablePointer<Float>, ldda: Int,
                                dG: UnsafeMutablePointer<Float>, lddg: Int, dU: UnsafeMutablePointer<Float>, lddu: Int,
                                scratch: ScratchBuffer, terms: [LowRankTerm]) throws {
        let (ws, floats) = try workspace(n: n, scratch: scratch)
        try LowRankTerm.withCTerms(terms, rows: n, column: { $0.isEmpty ? 0 : nil }) { p, count in
            let status = withUnsafeBytes { raw in
                lt_quant_matmul_swiglu_backward(Int32(type.rawValue), Int64(n), Int64(columns), Int64(rows), dy, Int64(lddy),
                                                raw.baseAddress, Int64(raw.count), p, count, gate, Int64(ldg), up, Int64(ldu),
                                                dA, Int64(ldda), dG, Int64(lddg), dU, Int64(lddu), ws, floats)
            }
            try KernelFailure.check(status, "lt_quant_matmul_swiglu_backward(\(type.name), n: \(n), \(rows)×\(columns))")
        }
    }

    /// `Y (=|+=) X W[rows]ᵀ` (`n × rows.count`) and the low-rank `terms`, for part of a stacked matrix.
    func multiplyTransposed(n: Int, x: UnsafePointer<Float>, ldx: Int, rows range: Range<Int>,
                            into y: UnsafeMutablePointer<Float>, ldy: Int, scratch: ScratchBuffer,
                            terms: UnsafePointer<lt_lowrank_term>?, termCount: Int64) throws {
        let (ws, floats) = try workspace(n: n, outputs: range.count, scratch: scratch)
        let status = withRowBytes(range) { raw in
            lt_quant_matmul_terms(Int32(type.rawValue), Int64(n), Int64(columns), Int64(range.count), x, Int64(ldx),
                                  raw.baseAddress, Int64(raw.count), terms, termCount, y, Int64(ldy), 0, ws, floats)
        }
        try KernelFailure.check(status, "lt_quant_matmul(\(type.name), n: \(n), rows \(range) of \(rows)×\(columns))")
    }

    /// The stored bytes of rows `range` (whole rows are contiguous in every type).
    private func withRowBytes<R>(_ range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        precondition(range.lowerBound >= 0 && range.upperBound <= rows, "rows \(range) of \(rows)")
        let rb = rowByteCount
        return try withUnsafeBytes { raw in
            try body(UnsafeRawBufferPointer(rebasing: raw[(range.lowerBound * rb)..<(range.upperBound * rb)]))
        }
    }

    /// The workspace `lt_quant_matmul` and its backward need for `n` rows and `outputs` rows of
    /// this matrix (one size serves both directions), taken from `scratch`.
    private func workspace(n: Int, outputs: Int? = nil, scratch: ScratchBuffer) throws -> (UnsafeMutablePointer<Float>?, Int64) {
        var floats: Int64 = 0
        try KernelFailure.check(lt_quant_matmul_workspace_size(Int32(type.rawValue), Int64(n), Int64(columns),
                                                               Int64(outputs ?? rows), &floats),
                                "lt_quant_matmul_workspace_size")
        return (try scratch.floats(Int(floats)), floats)
    }

    /// The matrix whose row `i` is row `order[i]` of this one (rows move as whole blocks: exact
    /// for every type). Used to undo the Q/K row permutation of GGUF files.
    public func reorderingRows(_ order: [Int]) throws -> QuantizedMatrix {
        guard order.count == rows else {
            throw QuantizedMatrixError.rowOutOfRange(name: name, row: order.count, rows: rows)
        }
        if let bad = order.first(where: { $0 < 0 || $0 >= rows }) {
            throw QuantizedMatrixError.rowOutOfRange(name: name, row: bad, rows: rows)
        }
        let rb = rowByteCount
        var out = Data(count: byteCount)
        withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                for (i, r) in order.enumerated() where rb > 0 {
                    (dst.baseAddress! + i * rb).copyMemory(from: src.baseAddress! + r * rb, byteCount: rb)
                }
            }
        }
        if type == .f32 {
            return try QuantizedMatrix(Tensor(shape: [rows, columns]) { buf in
                out.withUnsafeBytes { raw in
                    if rows * columns > 0 {
                        UnsafeMutableRawPointer(buf.baseAddress!).copyMemory(from: raw.baseAddress!, byteCount: raw.count)
                    }
                }
            }, name: name)
        }
        return try QuantizedMatrix(type: type, rows: rows, columns: columns, bytes: out, name: name)
    }

    /// The matrices stacked by rows (`[Σ rows, columns]`), e.g. a fused query|key|value
    /// projection. All must share the type and the column count.
    public static func stackingRows(_ parts: [QuantizedMatrix], name: String) throws -> QuantizedMatrix {
        guard let first = parts.first else { throw QuantizedMatrixError.incompatibleRows("no matrices") }
        for p in parts where p.type != first.type || p.columns != first.columns {
            throw QuantizedMatrixError.incompatibleRows(
                "\"\(first.name)\" is \(first.type.name) with \(first.columns) columns, \"\(p.name)\" is \(p.type.name) with \(p.columns)")
        }
        let rows = parts.reduce(0) { $0 + $1.rows }
        if first.type == .f32 {
            var scalars: [Float] = []
            scalars.reserveCapacity(rows * first.columns)
            for p in parts { p.withUnsafeBytes { scalars.append(contentsOf: $0.bindMemory(to: Float.self)) } }
            return try QuantizedMatrix(Tensor(scalars, shape: [rows, first.columns]), name: name)
        }
        var data = Data(capacity: parts.reduce(0) { $0 + $1.byteCount })
        for p in parts { p.withUnsafeBytes { data.append(contentsOf: $0) } }
        return try QuantizedMatrix(type: first.type, rows: rows, columns: first.columns, bytes: data, name: name)
    }
}
