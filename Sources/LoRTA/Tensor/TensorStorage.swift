#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A 64-byte aligned, heap-allocated block of Float32 values. Owned by ``Tensor``, which makes
/// it copy-on-write; never mutated while shared.
///
/// Every allocation is checked against the ``MemoryBudget`` first, and a failed allocation
/// throws ``MemoryError``: tensor storage never aborts the process.
final class TensorStorage: @unchecked Sendable {
    /// Alignment of every tensor buffer, in bytes (one cache line, one AVX-512 register).
    static let alignment = 64

    let pointer: UnsafeMutablePointer<Float>
    let count: Int

    /// Allocates `count` uninitialised floats (zeroed when `zeroed`), after checking the size
    /// against the budget in force (unless `checkingBudget` is false: the caller already holds
    /// the same amount of memory). `shape` only names the tensor in the error.
    /// - Throws: ``MemoryError/exceedsBudget(purpose:bytes:budget:)`` (nothing allocated),
    ///   ``MemoryError/allocationFailed(purpose:bytes:)``.
    init(count: Int, zeroed: Bool = true, shape: @autoclosure () -> [Int], checkingBudget: Bool = true) throws(MemoryError) {
        precondition(count >= 0)
        let bytes = MemoryBudget.byteCount(Float.self, max(count, 1))
        if checkingBudget { try MemoryBudget.check(bytes: bytes, purpose: TensorStorage.purpose(shape())) }
        pointer = try TensorStorage.allocate(count: count, zeroed: zeroed, purpose: TensorStorage.purpose(shape()))
        self.count = count
    }

    private init(pointer: UnsafeMutablePointer<Float>, count: Int) {
        self.pointer = pointer
        self.count = count
    }

    /// A copy of the elements. The size was admitted when this storage was made, so the budget
    /// is not consulted again.
    /// - Throws: ``MemoryError/allocationFailed(purpose:bytes:)`` when the system refuses.
    func copy() throws(MemoryError) -> TensorStorage {
        let p = try TensorStorage.allocate(count: count, zeroed: false, purpose: "a copy of a tensor of \(count) float32 values")
        p.update(from: pointer, count: count)
        return TensorStorage(pointer: p, count: count)
    }

    static func purpose(_ shape: [Int]) -> String { "a float32 tensor of shape \(shape)" }

    private static func allocate(count: Int, zeroed: Bool, purpose: @autoclosure () -> String)
        throws(MemoryError) -> UnsafeMutablePointer<Float>
    {
        let bytes = max(count, 1) * MemoryLayout<Float>.stride  // count was checked by the caller
        var raw: UnsafeMutableRawPointer? = nil
        guard posix_memalign(&raw, alignment, bytes) == 0, let raw else {
            throw .allocationFailed(purpose: purpose(), bytes: bytes)
        }
        if zeroed { memset(raw, 0, bytes) }
        return raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    deinit { free(pointer) }
}
