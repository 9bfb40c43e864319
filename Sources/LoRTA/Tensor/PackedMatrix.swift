import CKernels
import Foundation

/// A frozen Float32 weight `W [rows × columns]` (PyTorch `out × in`, i.e. `d_out × d_in`) packed
/// once into the GEMM core's layout, for products `Y = X Wᵀ` that skip all packing of `W`.
///
/// ``Tensor/matmul(_:_:transposeA:transposeB:alpha:beta:into:)`` packs the panels of `W` it
/// needs on every call; a `PackedMatrix` packs them once (`lt_sgemm_pack_b`, `lt_gemm.h`), when
/// the model is loaded, and every product reads them in place (`lt_sgemm_prepacked`). The
/// results are bit for bit those of `Tensor.matmul(x, w, transposeB: true)` on the library's
/// GEMM (any thread count).
///
/// - The packed copy is made for the instruction set active when it is built
///   (``Runtime/instructionSet``); when another one is active at a product
///   (``Runtime/setInstructionSet(_:)``), the matrix repacks itself first (O(rows · columns),
///   once per change), so a product is never computed from a layout of another ISA.
/// - With the OpenBLAS backend (``Runtime/gemmBackend`` is ``GEMMBackend/openblas``) products go
///   through `Tensor.matmul` on the kept weight, as every other product of the library does.
/// - Memory: one extra Float32 copy of `W`, ``byteCount`` = `4 · (16 + round_up(rows, 48) ·
///   columns)` bytes (zero columns pad `rows` to the micro-kernel width, plus a 64-byte header),
///   on top of the weight itself, which is kept (shared with the tensor passed in, not copied)
///   for repacking and for the OpenBLAS path; plus a reusable workspace of a few MB for products.
/// - Thread safety: products may be called from any thread; concurrent products on the same
///   matrix run one after the other (each already uses the whole thread team).
public final class PackedMatrix: @unchecked Sendable {
    /// `d_out`: rows of `W`, columns of `Y`.
    public let rows: Int
    /// `d_in`: columns of `W` and of `X`.
    public let columns: Int
    /// The weight `W` as given (shares its storage).
    public let weight: Tensor

    private let lock = NSLock()
    /// The packed buffer (header + data), `[packedFloats]`; guarded by `lock`.
    private var packed: Tensor
    /// The instruction set `packed` was made for; guarded by `lock`.
    private var packedISA: InstructionSet
    /// Workspace of `lt_sgemm_prepacked`; guarded by `lock`.
    private let scratch = ScratchBuffer()

    /// Packs `weight` (a `[rows, columns]` Float32 matrix) for the active instruction set.
    /// - Throws: ``TensorError/rankMismatch(operation:expected:actual:)`` unless 2-dimensional;
    ///   ``MemoryError`` when the packed copy does not fit the ``MemoryBudget``; ``RuntimeError``
    ///   for a bad environment; ``KernelFailure`` when the kernel rejects the sizes.
    /// - Complexity: O(rows · columns) (a copy, on the thread team).
    public init(_ weight: Tensor) throws {
        let (r, c) = try weight.matrixShape("PackedMatrix")
        try Runtime.initialize()
        var floats: Int64 = 0
        try KernelFailure.check(lt_sgemm_packed_b_size(1, Int64(c), Int64(r), &floats),
                                "lt_sgemm_packed_b_size(\(r)×\(c))")
        self.rows = r
        self.columns = c
        self.weight = weight
        self.packed = try Tensor(uninitialized: [Int(floats)])
        self.packedISA = Runtime.instructionSet
        try Self.pack(weight, rows: r, columns: c, into: &packed)
    }

    /// Bytes of the packed copy (the extra memory this type costs beyond the weight).
    public var byteCount: Int { lock.withLock { packed.count * MemoryLayout<Float>.stride } }

    /// The instruction set the packed copy was made for (it follows the active one).
    public var packedInstructionSet: InstructionSet { lock.withLock { packedISA } }

    /// `Y = alpha · X Wᵀ + beta · Y` for `X [n, columns]` into `y [n, rows]`.
    /// - Parameters:
    ///   - x: the activations `X`, `[n, columns]`.
    ///   - alpha: the scale of the product.
    ///   - beta: the scale of `y`'s previous contents (0: they are not read).
    ///   - y: the output; must already have shape `[n, rows]` (with `beta == 0` its contents are
    ///     not read: NaN there is overwritten).
    /// - Throws: ``TensorError`` when a shape does not fit; ``MemoryError`` when the workspace or
    ///   a repack does not fit the ``MemoryBudget``; ``KernelFailure`` when the kernel rejects
    ///   the product.
    /// - Complexity: O(n · rows · columns), `2·n·rows·columns` flops on ``Runtime/threadCount``
    ///   threads; no packing of `W` (repacking once first if the instruction set changed).
    public func multiplyTransposed(_ x: Tensor, alpha: Float = 1, beta: Float = 0, into y: inout Tensor) throws {
        let (n, k) = try x.matrixShape("PackedMatrix.multiplyTransposed X")
        guard k == columns else {
            throw TensorError.shapeMismatch(operation: "PackedMatrix.multiplyTransposed (inner dimensions)",
                                            expected: [n, columns], actual: x.shape)
        }
        try y.expectShape([n, rows], "PackedMatrix.multiplyTransposed Y")
        if n == 0 || rows == 0 { return }
        try Runtime.initialize()
        if Runtime.gemmBackend == .openblas {
            try Tensor.matmul(x, weight, transposeB: true, alpha: alpha, beta: beta, into: &y)
            return
        }
        lock.lock()
        defer { lock.unlock() }
        if packedISA != Runtime.instructionSet {
            try Self.pack(weight, rows: rows, columns: columns, into: &packed)
            packedISA = Runtime.instructionSet
        }
        var floats: Int64 = 0
        try KernelFailure.check(lt_sgemm_prepacked_workspace_size(Int64(n), Int64(rows), Int64(k), &floats),
                                "lt_sgemm_prepacked_workspace_size(\(n)×\(rows)×\(k))")
        let workspace = try scratch.floats(Int(floats))
        let status = y.withUnsafeMutableBufferPointer { yp in
            x.withUnsafeBufferPointer { xp in
                packed.withUnsafeBufferPointer { pp in
                    lt_sgemm_prepacked(0, Int64(n), Int64(rows), Int64(k), alpha, xp.baseAddress, Int64(max(k, 1)),
                                       pp.baseAddress, beta, yp.baseAddress, Int64(rows), workspace, floats)
                }
            }
        }
        try KernelFailure.check(status, "lt_sgemm_prepacked(\(n)×\(rows)×\(k))")
    }

    /// `X Wᵀ` as a new `[n, rows]` tensor (see ``multiplyTransposed(_:alpha:beta:into:)``).
    public func multiplyTransposed(_ x: Tensor) throws -> Tensor {
        let (n, _) = try x.matrixShape("PackedMatrix.multiplyTransposed X")
        var y = try Tensor(uninitialized: [n, rows])
        try multiplyTransposed(x, into: &y)
        return y
    }

    /// Runs `body` with the packed buffer (header included, as `lt_sgemm_pack_b` wrote it) for
    /// the C kernels that take a prepacked weight (`lt_linear_forward_packed`, … in `lt_nn.h`),
    /// holding the matrix's lock for the call. With the library's GEMM backend the buffer is
    /// first repacked when another instruction set is active than the one it was made for
    /// (once per change); with the OpenBLAS backend it is passed as it is (the kernels then
    /// decline it and multiply by ``weight``: the same bits).
    /// - Throws: what `body` throws; ``KernelFailure`` when a repack fails.
    func withPackedBuffer<R>(_ body: (UnsafePointer<Float>) throws -> R) throws -> R {
        try Runtime.initialize()
        lock.lock()
        defer { lock.unlock() }
        if Runtime.gemmBackend != .openblas && packedISA != Runtime.instructionSet {
            try Self.pack(weight, rows: rows, columns: columns, into: &packed)
            packedISA = Runtime.instructionSet
        }
        return try withExtendedLifetime(packed) { try body(packed.pointer) }
    }

    /// Packs `W` (`op(B) = Wᵀ`: trans_b = 1, k = columns, n = rows) for the active ISA.
    private static func pack(_ weight: Tensor, rows: Int, columns: Int, into packed: inout Tensor) throws {
        let count = Int64(packed.count)
        let status = packed.withUnsafeMutableBufferPointer { pp in
            weight.withUnsafeBufferPointer { wp in
                lt_sgemm_pack_b(1, Int64(columns), Int64(rows), wp.baseAddress, Int64(max(columns, 1)),
                                pp.baseAddress, count)
            }
        }
        try KernelFailure.check(status, "lt_sgemm_pack_b(\(rows)×\(columns))")
    }
}
