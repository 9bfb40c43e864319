#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A reusable, 64-byte aligned Float32 buffer for kernel workspaces: grows on demand and is
/// kept between calls, so a forward pass does not allocate (and page-fault) per kernel call.
/// Not thread-safe: one owner at a time (a model's forward holds its own).
final class ScratchBuffer {
    private(set) var pointer: UnsafeMutablePointer<Float>?
    private(set) var capacity = 0

    init() {}

    /// A buffer of at least `count` floats (contents unspecified), or nil for `count == 0`.
    /// - Throws: ``MemoryError`` when the size exceeds the ``MemoryBudget`` or the allocation
    ///   fails.
    func floats(_ count: Int) throws -> UnsafeMutablePointer<Float>? {
        guard count > 0 else { return nil }
        if count > capacity {
            let purpose = "a kernel workspace of \(count) float32 values"
            let checked = MemoryBudget.byteCount(Float.self, count)
            try MemoryBudget.check(bytes: checked, purpose: purpose)
            free(pointer)
            pointer = nil
            capacity = 0
            var raw: UnsafeMutableRawPointer? = nil
            let bytes = checked!  // admitted above, so not nil
            guard posix_memalign(&raw, TensorStorage.alignment, bytes) == 0, let raw else {
                throw MemoryError.allocationFailed(purpose: purpose, bytes: bytes)
            }
            pointer = raw.bindMemory(to: Float.self, capacity: count)
            capacity = count
        }
        return pointer
    }

    deinit { free(pointer) }
}
