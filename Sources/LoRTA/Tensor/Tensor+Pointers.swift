// MARK: - Raw pointers for the kernels

/// The one way to a tensor's raw pointer for the C kernels: code outside `Sources/LoRTA/Tensor/`
/// passes `pointer` (read) or `mutablePointer` (write, after copy-on-write) and never touches
/// `storage` itself.
extension Tensor {
    /// A tensor whose elements are not initialised, for sizes bounded by memory the caller
    /// already holds (a copy of part of an existing buffer) or empty placeholders: it cannot
    /// throw, so a refused allocation stops the process with the ``MemoryError``'s message.
    /// Everything sized by input uses the throwing ``init(uninitialized:)``.
    init(uninitializedShape shape: [Int]) {
        do { try self.init(uninitialized: shape) } catch { preconditionFailure("\(error)") }
    }

    /// The storage's address, for reading. Valid while the tensor (or a copy) is alive.
    var pointer: UnsafePointer<Float> { UnsafePointer(storage.pointer) }

    /// The storage's address, for writing (copies first if the storage is shared).
    var mutablePointer: UnsafeMutablePointer<Float> {
        mutating get {
            makeUnique()
            return storage.pointer
        }
    }
}
