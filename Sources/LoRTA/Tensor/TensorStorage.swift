#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A 64-byte aligned, heap-allocated block of Float32 values. Owned by ``Tensor``, which makes
/// it copy-on-write; never mutated while shared.
final class TensorStorage: @unchecked Sendable {
    /// Alignment of every tensor buffer, in bytes (one cache line, one AVX-512 register).
    static let alignment = 64

    let pointer: UnsafeMutablePointer<Float>
    let count: Int

    /// Allocates `count` uninitialised floats (zeroed when `zeroed`).
    init(count: Int, zeroed: Bool = true) {
        precondition(count >= 0)
        var raw: UnsafeMutableRawPointer? = nil
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        let rc = posix_memalign(&raw, TensorStorage.alignment, bytes)
        guard rc == 0, let raw else { fatalError("out of memory allocating \(bytes) bytes") }
        if zeroed { memset(raw, 0, bytes) }
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        self.count = count
    }

    func copy() -> TensorStorage {
        let s = TensorStorage(count: count, zeroed: false)
        s.pointer.update(from: pointer, count: count)
        return s
    }

    deinit { free(pointer) }
}
