/// Errors about tensor shapes and contents.
public enum TensorError: Error, Equatable, CustomStringConvertible {
    /// A shape with a negative dimension, or whose element count overflows.
    case invalidShape([Int])
    /// The number of elements supplied does not match the shape's product.
    case countMismatch(shape: [Int], count: Int)
    /// An operation needed one shape and received another.
    case shapeMismatch(operation: String, expected: [Int], actual: [Int])
    /// A tensor had the wrong number of dimensions.
    case rankMismatch(operation: String, expected: Int, actual: Int)

    public var description: String {
        switch self {
        case .invalidShape(let s): return "invalid tensor shape \(s)"
        case .countMismatch(let s, let c):
            return "shape \(s) needs \(Tensor.elementCount(s) ?? -1) elements, got \(c)"
        case .shapeMismatch(let op, let e, let a):
            return "\(op): expected shape \(e), got \(a)"
        case .rankMismatch(let op, let e, let a):
            return "\(op): expected a \(e)-dimensional tensor, got \(a) dimensions"
        }
    }
}

/// A dense, row-major Float32 tensor with value semantics.
///
/// Storage is 64-byte aligned and copy-on-write: copies are O(1) until one of them is
/// mutated. ``reshaped(_:)`` returns a view that shares storage (no copy). The C kernels read
/// and write the buffer in place through ``withUnsafeBufferPointer(_:)`` and
/// ``withUnsafeMutableBufferPointer(_:)``.
public struct Tensor: Sendable {
    /// Dimensions, outermost first.
    public private(set) var shape: [Int]
    var storage: TensorStorage

    /// Number of elements (product of ``shape``; 1 for a scalar shape `[]`).
    public var count: Int { storage.count }
    /// Number of dimensions.
    public var rank: Int { shape.count }

    /// Product of `shape`, or nil when a dimension is negative or the product overflows.
    public static func elementCount(_ shape: [Int]) -> Int? {
        var n = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (p, o) = n.multipliedReportingOverflow(by: d)
            guard !o else { return nil }
            n = p
        }
        return n
    }

    /// A tensor of zeros. O(count).
    /// - Throws: ``TensorError/invalidShape(_:)`` for a negative dimension or an overflowing
    ///   element count; ``MemoryError`` when the storage exceeds the ``MemoryBudget`` or cannot
    ///   be allocated.
    public init(zeros shape: [Int]) throws {
        guard let n = Tensor.elementCount(shape) else { throw TensorError.invalidShape(shape) }
        self.shape = shape
        self.storage = try TensorStorage(count: n, shape: shape)
    }

    /// A tensor whose elements are not initialised (the kernels overwrite all of them).
    /// - Throws: ``TensorError/invalidShape(_:)``, ``MemoryError``.
    init(uninitialized shape: [Int]) throws {
        guard let n = Tensor.elementCount(shape) else { throw TensorError.invalidShape(shape) }
        self.shape = shape
        self.storage = try TensorStorage(count: n, zeroed: false, shape: shape)
    }

    /// A tensor filled with `value`.
    /// - Throws: as ``init(zeros:)``.
    public init(repeating value: Float, shape: [Int]) throws {
        try self.init(zeros: shape)
        if value != 0 { storage.pointer.update(repeating: value, count: count) }
    }

    /// A tensor holding `scalars` (row-major) with the given shape.
    /// - Throws: ``TensorError/countMismatch(shape:count:)`` when the counts differ;
    ///   ``MemoryError`` as ``init(zeros:)``.
    public init(_ scalars: [Float], shape: [Int]) throws {
        guard let n = Tensor.elementCount(shape) else { throw TensorError.invalidShape(shape) }
        guard n == scalars.count else { throw TensorError.countMismatch(shape: shape, count: scalars.count) }
        self.shape = shape
        self.storage = try TensorStorage(count: n, zeroed: false, shape: shape)
        scalars.withUnsafeBufferPointer { src in
            if n > 0 { storage.pointer.update(from: src.baseAddress!, count: n) }
        }
    }

    /// A 1-dimensional tensor holding a copy of `scalars`. The caller already holds that much
    /// memory, so the ``MemoryBudget`` is not consulted; a copy the system refuses stops the
    /// process with the ``MemoryError``'s message.
    public init(_ scalars: [Float]) {
        shape = [scalars.count]
        do { storage = try TensorStorage(count: scalars.count, zeroed: false, shape: [scalars.count], checkingBudget: false) } catch {
            preconditionFailure("\(error)")
        }
        scalars.withUnsafeBufferPointer { src in
            if !src.isEmpty { storage.pointer.update(from: src.baseAddress!, count: src.count) }
        }
    }

    /// A tensor whose elements are written by `initializer` into an uninitialised buffer of
    /// `count` elements.
    /// - Throws: ``TensorError/invalidShape(_:)``, ``MemoryError`` as ``init(zeros:)``, and
    ///   what `initializer` throws.
    public init(shape: [Int], initializingWith initializer: (UnsafeMutableBufferPointer<Float>) throws -> Void) throws {
        guard let n = Tensor.elementCount(shape) else { throw TensorError.invalidShape(shape) }
        self.shape = shape
        self.storage = try TensorStorage(count: n, zeroed: true, shape: shape)
        try initializer(UnsafeMutableBufferPointer(start: storage.pointer, count: n))
    }

    /// The elements in row-major order.
    public var scalars: [Float] {
        Array(UnsafeBufferPointer(start: storage.pointer, count: count))
    }

    /// A view with another shape of the same element count; shares storage (no copy).
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        guard let n = Tensor.elementCount(newShape) else { throw TensorError.invalidShape(newShape) }
        guard n == count else { throw TensorError.countMismatch(shape: newShape, count: count) }
        var t = self
        t.shape = newShape
        return t
    }

    /// Reads the elements without copying.
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.pointer, count: count))
    }

    /// Mutates the elements in place, copying first if the storage is shared.
    public mutating func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        makeUnique()
        return try body(UnsafeMutableBufferPointer(start: storage.pointer, count: count))
    }

    /// Element access by flat row-major index.
    public subscript(flat index: Int) -> Float {
        get {
            precondition(index >= 0 && index < count, "index \(index) out of range 0..<\(count)")
            return storage.pointer[index]
        }
        set {
            precondition(index >= 0 && index < count, "index \(index) out of range 0..<\(count)")
            makeUnique()
            storage.pointer[index] = newValue
        }
    }

    /// Element access of a 2-dimensional tensor.
    public subscript(row: Int, column: Int) -> Float {
        get {
            precondition(rank == 2 && row >= 0 && row < shape[0] && column >= 0 && column < shape[1])
            return storage.pointer[row * shape[1] + column]
        }
        set {
            precondition(rank == 2 && row >= 0 && row < shape[0] && column >= 0 && column < shape[1])
            makeUnique()
            storage.pointer[row * shape[1] + column] = newValue
        }
    }

    /// True when this value and `other` share one buffer (a view or an unmutated copy).
    public func sharesStorage(with other: Tensor) -> Bool { storage === other.storage }

    /// The largest absolute element (0 for an empty tensor). NaN propagates.
    public var maxAbsolute: Float {
        var m: Float = 0
        for i in 0..<count {
            let v = abs(storage.pointer[i])
            if v.isNaN { return .nan }
            m = max(m, v)
        }
        return m
    }

    /// Copies the storage if it is shared (copy-on-write). The mutating accessors that call this
    /// cannot throw, so a copy the system refuses (a buffer of a size the budget already
    /// admitted once) stops the process with the ``MemoryError``'s message; code that can
    /// throw uses ``copy()`` instead.
    mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) {
            do { storage = try storage.copy() } catch { preconditionFailure("\(error)") }
        }
    }

    /// A tensor with its own copy of the elements (for keeping a buffer that raw-pointer writes
    /// will change afterwards, which copy-on-write cannot see). O(count).
    /// - Throws: ``MemoryError/allocationFailed(purpose:bytes:)``.
    func copy() throws -> Tensor {
        var t = self
        t.storage = try storage.copy()
        return t
    }

    /// Throws unless the tensor is 2-dimensional; returns (rows, columns).
    func matrixShape(_ operation: String) throws -> (Int, Int) {
        guard rank == 2 else { throw TensorError.rankMismatch(operation: operation, expected: 2, actual: rank) }
        return (shape[0], shape[1])
    }

    /// Throws unless the shape equals `expected`.
    func expectShape(_ expected: [Int], _ operation: String) throws {
        guard shape == expected else {
            throw TensorError.shapeMismatch(operation: operation, expected: expected, actual: shape)
        }
    }
}

extension Tensor: Equatable {
    /// Element-wise equality of shape and values (bitwise for non-NaN values).
    public static func == (a: Tensor, b: Tensor) -> Bool {
        guard a.shape == b.shape else { return false }
        if a.storage === b.storage { return true }
        for i in 0..<a.count where a.storage.pointer[i] != b.storage.pointer[i] { return false }
        return true
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String { "Tensor(shape: \(shape))" }
}
