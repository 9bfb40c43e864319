import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Builds a GGUF version 3 file: the metadata in its order, then the tensor infos and the
/// tensors in insertion order, each tensor at a multiple of the alignment and followed by zero
/// padding up to the next multiple (the layout gguf-py and llama.cpp write; llama.cpp requires
/// exactly these offsets).
///
/// Tensors are given as Float32 ``Tensor``s, stored as F32, F16 or BF16, or as raw bytes of
/// any ggml type (e.g. quantized blocks). Shapes are **outermost first** (PyTorch order); the
/// file stores them reversed (``GGUFTensorInfo/dimensions``). The writer holds the encoded
/// bytes of every tensor added (one copy, in the file's type).
///
/// What is validated, each with its own ``GGUFError``: tensor names non-empty, unique and at
/// most 63 UTF-8 bytes (llama.cpp's limit); 1 to 4 non-negative dimensions; rows (the innermost
/// dimension) a whole number of the type's blocks; raw byte counts; non-empty metadata keys;
/// arrays nested at most ``GGUF/maximumArrayNesting`` deep; `general.alignment` a uint32 power
/// of two ≥ 8. So whatever the writer writes, ``GGUFReader`` reads back.
public struct GGUFWriter: Sendable {
    /// The metadata, written in this order (see ``GGUFMetadata`` for the ordered-dictionary
    /// subscript). Holds `general.alignment` when set (``alignment``).
    public var metadata = GGUFMetadata()

    private var pending: [(info: GGUFTensorInfo, bytes: Data)] = []
    private var names: Set<String> = []

    public init() {}

    /// The alignment of the data section and of every tensor: the `general.alignment` metadata
    /// value (a uint32), 32 when absent. Setting it stores the key; an invalid value (not a
    /// power of two ≥ 8) makes ``serialized()`` and ``write(to:)`` throw
    /// ``GGUFError/invalidAlignment(_:)``.
    public var alignment: Int {
        get { metadata[GGUF.alignmentKey]?.int ?? GGUF.defaultAlignment }
        set { metadata[GGUF.alignmentKey] = .uint32(UInt32(clamping: newValue)) }
    }

    /// Names of the tensors added so far, in insertion order.
    public var tensorNames: [String] { pending.map(\.info.name) }

    /// When true, the writer refuses to store a value that would not read back as a finite
    /// number: ``add(_:_:as:)`` refuses a tensor holding NaN or infinity, or a finite value
    /// beyond the target type's range (F16: magnitudes of 65520 and above; BF16: beyond about
    /// 3.39e38), and ``addRaw(_:type:shape:bytes:)`` refuses F32, F16, BF16 and F64 bytes
    /// holding NaN or infinity (quantized blocks are stored as given; ``GGUFQuantize`` checks
    /// its own input). The error names the tensor, the first offending element and its value;
    /// nothing is added. Off by default; on for exported models. One pass over the values.
    public var requiresFiniteValues = false

    /// Adds `tensor` under `name`, stored as `type`: F32 (exact), F16 or BF16 (round to
    /// nearest, ties to even; overflow becomes ±infinity; NaN stays NaN) — unless
    /// ``requiresFiniteValues`` refuses such values. O(element count).
    /// - Throws: ``GGUFError/unsupportedConversion(tensor:type:)`` for other types,
    ///   ``GGUFError/unrepresentableValue(tensor:type:element:value:)`` (only with
    ///   ``requiresFiniteValues``), the name and shape errors of ``addRaw(_:type:shape:bytes:)``.
    public mutating func add(_ name: String, _ tensor: Tensor, as type: GGMLType = .f32) throws {
        guard type == .f32 || type == .f16 || type == .bf16, let stored = StoredFloat(type) else {
            throw GGUFError.unsupportedConversion(tensor: name, type: type)
        }
        try checkName(name)
        try Self.checkShape(name, tensor.shape)
        if requiresFiniteValues, let (i, v) = stored.firstUnstorable(in: tensor) {
            throw GGUFError.unrepresentableValue(tensor: name, type: type,
                                                 element: StoredFloat.coordinates(of: i, in: tensor.shape), value: v)
        }
        try addRaw(name, type: type, shape: tensor.shape, bytes: stored.encode(tensor))
    }

    /// Adds a tensor of any ggml type from its stored bytes (copied as given; for quantized
    /// types, the blocks of each row in order). `shape` is outermost first.
    /// - Throws: ``GGUFError/emptyName``, ``GGUFError/tensorNameTooLong(_:)``,
    ///   ``GGUFError/duplicateTensorName(_:)``, ``GGUFError/invalidShape(tensor:shape:)`` (rank 0
    ///   or above 4, a negative dimension),
    ///   ``GGUFError/rowNotMultipleOfBlockSize(tensor:type:rowLength:blockElements:)``,
    ///   ``GGUFError/sizeOverflow(tensor:dimensions:type:)``,
    ///   ``GGUFError/byteCountMismatch(tensor:expected:actual:)``,
    ///   ``GGUFError/unrepresentableValue(tensor:type:element:value:)`` for NaN or infinity in
    ///   F32, F16, BF16 or F64 bytes (only with ``requiresFiniteValues``).
    public mutating func addRaw(_ name: String, type: GGMLType, shape: [Int], bytes: Data) throws {
        try checkName(name)
        try Self.checkShape(name, shape)
        let dimensions = Array(shape.reversed())
        guard let elements = Tensor.elementCount(shape) else {
            throw GGUFError.sizeOverflow(tensor: name, dimensions: dimensions, type: type)
        }
        guard dimensions[0] % type.blockElements == 0 else {
            throw GGUFError.rowNotMultipleOfBlockSize(tensor: name, type: type, rowLength: dimensions[0],
                                                      blockElements: type.blockElements)
        }
        guard let expected = type.byteCount(elements: elements) else {
            throw GGUFError.sizeOverflow(tensor: name, dimensions: dimensions, type: type)
        }
        guard bytes.count == expected else {
            throw GGUFError.byteCountMismatch(tensor: name, expected: expected, actual: bytes.count)
        }
        if requiresFiniteValues, type != .q8_0, let stored = StoredFloat(type),
           let (i, v) = stored.firstNonFinite(inStoredBytes: bytes) {
            throw GGUFError.unrepresentableValue(tensor: name, type: type,
                                                 element: StoredFloat.coordinates(of: i, in: shape), value: v)
        }
        // The offset is assigned when the file is laid out (it depends on the alignment).
        let info = GGUFTensorInfo(name: name, type: type, dimensions: dimensions, offset: 0,
                                  elementCount: elements, byteCount: expected)
        pending.append((info, bytes))
        names.insert(name)
    }

    /// The complete file. O(file size).
    /// - Throws: ``GGUFError/emptyName`` for an empty metadata key,
    ///   ``GGUFError/arrayNestingTooDeep(key:limit:)``, ``GGUFError/alignmentNotUInt32(_:)``,
    ///   ``GGUFError/invalidAlignment(_:)``.
    public func serialized() throws -> Data {
        let (head, offsets, alignment) = try layout()
        var out = Data(head)
        for (p, offset) in zip(pending, offsets) {
            out.append(contentsOf: repeatElement(0, count: head.count + offset - out.count))
            out.append(p.bytes)
            out.append(contentsOf: repeatElement(0, count: Self.padding(p.bytes.count, alignment)))
        }
        return out
    }

    /// Writes the file to `url` atomically: the bytes go to a new temporary file in the same
    /// directory, which is flushed to disk and then renamed over `url`. On any failure the
    /// temporary file is removed and an existing file at `url` is left untouched. O(file size).
    /// - Throws: ``GGUFError/fileSystem(path:operation:reason:)`` (e.g. the directory does not
    ///   exist), and the errors of ``serialized()``.
    public func write(to url: URL) throws {
        let (head, _, alignment) = try layout()
        let zeros = [UInt8](repeating: 0, count: alignment)
        do {
            try AtomicFileWriter.write(to: url) { write in
                try head.withUnsafeBytes { try write($0) }
                for p in pending {
                    try p.bytes.withUnsafeBytes { try write($0) }
                    try zeros.withUnsafeBytes { try write(UnsafeRawBufferPointer(rebasing: $0[0..<Self.padding(p.bytes.count, alignment)])) }
                }
            }
        } catch let f as AtomicFileWriter.Failure {
            throw GGUFError.fileSystem(path: f.path, operation: f.operation, reason: f.reason)
        }
    }

    // MARK: - Layout

    /// Zero bytes after `count` bytes up to the next multiple of `alignment`.
    static func padding(_ count: Int, _ alignment: Int) -> Int {
        (alignment - count % alignment) % alignment
    }

    /// Header, metadata, tensor infos and the padding up to the data section; the offset of
    /// each tensor in the data section; the alignment.
    private func layout() throws(GGUFError) -> (head: [UInt8], offsets: [Int], alignment: Int) {
        var alignment = GGUF.defaultAlignment
        if let a = metadata[GGUF.alignmentKey] {
            guard case .uint32(let v) = a else { throw .alignmentNotUInt32(a.type) }
            guard GGUF.isValidAlignment(Int(v)) else { throw .invalidAlignment(Int(v)) }
            alignment = Int(v)
        }
        var out: [UInt8] = []
        out.append(contentsOf: GGUF.magic)
        Self.append(GGUF.currentVersion, to: &out)
        Self.append(UInt64(pending.count), to: &out)
        Self.append(UInt64(metadata.count), to: &out)
        for (key, value) in metadata {
            guard !key.isEmpty else { throw .emptyName }
            Self.append(string: key, to: &out)
            Self.append(value.type.rawValue, to: &out)
            try Self.append(value, key: key, to: &out)
        }
        var offsets: [Int] = []
        var offset = 0
        for p in pending {
            offsets.append(offset)
            Self.append(string: p.info.name, to: &out)
            Self.append(UInt32(p.info.dimensions.count), to: &out)
            for d in p.info.dimensions { Self.append(UInt64(d), to: &out) }
            Self.append(p.info.type.rawValue, to: &out)
            Self.append(UInt64(offset), to: &out)
            offset += p.bytes.count + Self.padding(p.bytes.count, alignment)
        }
        out.append(contentsOf: repeatElement(0, count: Self.padding(out.count, alignment)))
        return (out, offsets, alignment)
    }

    private static func append<T: FixedWidthInteger>(_ v: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
    }

    private static func append(string s: String, to out: inout [UInt8]) {
        append(UInt64(s.utf8.count), to: &out)
        out.append(contentsOf: s.utf8)
    }

    private static func append(_ value: GGUFValue, key: String, to out: inout [UInt8]) throws(GGUFError) {
        switch value {
        case .uint8(let v): append(v, to: &out)
        case .int8(let v): append(v, to: &out)
        case .uint16(let v): append(v, to: &out)
        case .int16(let v): append(v, to: &out)
        case .uint32(let v): append(v, to: &out)
        case .int32(let v): append(v, to: &out)
        case .float32(let v): append(v.bitPattern, to: &out)
        case .bool(let v): out.append(v ? 1 : 0)
        case .string(let v): append(string: v, to: &out)
        case .array(let a): try append(a, key: key, depth: 1, to: &out)
        case .uint64(let v): append(v, to: &out)
        case .int64(let v): append(v, to: &out)
        case .float64(let v): append(v.bitPattern, to: &out)
        }
    }

    private static func append(_ a: GGUFArray, key: String, depth: Int, to out: inout [UInt8]) throws(GGUFError) {
        guard depth <= GGUF.maximumArrayNesting else { throw .arrayNestingTooDeep(key: key, limit: GGUF.maximumArrayNesting) }
        append(a.elementType.rawValue, to: &out)
        append(UInt64(a.count), to: &out)
        switch a {
        case .uint8(let v): out.append(contentsOf: v)
        case .int8(let v): for x in v { append(x, to: &out) }
        case .uint16(let v): for x in v { append(x, to: &out) }
        case .int16(let v): for x in v { append(x, to: &out) }
        case .uint32(let v): for x in v { append(x, to: &out) }
        case .int32(let v): for x in v { append(x, to: &out) }
        case .float32(let v): for x in v { append(x.bitPattern, to: &out) }
        case .bool(let v): for x in v { out.append(x ? 1 : 0) }
        case .string(let v): for s in v { append(string: s, to: &out) }
        case .array(let v): for inner in v { try append(inner, key: key, depth: depth + 1, to: &out) }
        case .uint64(let v): for x in v { append(x, to: &out) }
        case .int64(let v): for x in v { append(x, to: &out) }
        case .float64(let v): for x in v { append(x.bitPattern, to: &out) }
        }
    }

    // MARK: - Validation

    private func checkName(_ name: String) throws(GGUFError) {
        guard !name.isEmpty else { throw .emptyName }
        guard name.utf8.count <= GGUF.maximumTensorNameLength else { throw .tensorNameTooLong(name) }
        guard !names.contains(name) else { throw .duplicateTensorName(name) }
    }

    private static func checkShape(_ name: String, _ shape: [Int]) throws(GGUFError) {
        guard (1...GGUF.maximumDimensions).contains(shape.count), shape.allSatisfy({ $0 >= 0 }) else {
            throw .invalidShape(tensor: name, shape: shape)
        }
    }
}
