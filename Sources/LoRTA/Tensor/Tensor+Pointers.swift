// MARK: - Raw pointers for the kernels

/// The one way to a tensor's raw pointer for the C kernels: code outside `Sources/LoRTA/Tensor/`
/// passes `pointer` (read) or `mutablePointer` (write, after copy-on-write) and never touches
/// `storage` itself.
extension Tensor {
    /// A tensor whose elements are not initialised (the kernels overwrite all of them).
    init(uninitializedShape shape: [Int]) {
        let n = Tensor.elementCount(shape)!
        var t = try! Tensor(zeros: [])
        t.storage = TensorStorage(count: n, zeroed: false)
        self = try! t.reshaped(shape)
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
