import Foundation

// The safetensors format (https://github.com/huggingface/safetensors):
//
//   [8 bytes]  N, the header length, unsigned 64-bit little-endian
//   [N bytes]  UTF-8 JSON object, optionally padded with trailing spaces:
//              {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//               "__metadata__": {"key": "value", ...}}          (metadata optional)
//   [rest]     the data buffer; offsets are relative to its start (byte 8 + N), little-endian
//              values, row-major; the tensors cover the buffer exactly, without holes.

/// The element types of the safetensors format.
public enum SafeTensorsDType: String, Sendable, CaseIterable {
    case bool = "BOOL", u8 = "U8", i8 = "I8", f8e5m2 = "F8_E5M2", f8e4m3 = "F8_E4M3"
    case i16 = "I16", u16 = "U16", f16 = "F16", bf16 = "BF16"
    case i32 = "I32", u32 = "U32", f32 = "F32", f64 = "F64", i64 = "I64", u64 = "U64"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .bool, .u8, .i8, .f8e5m2, .f8e4m3: return 1
        case .i16, .u16, .f16, .bf16: return 2
        case .i32, .u32, .f32: return 4
        case .f64, .i64, .u64: return 8
        }
    }

    /// True for the types ``SafeTensorsReader/tensor(_:)`` converts to Float32
    /// (F32, F16, BF16, F64).
    public var isFloatConvertible: Bool {
        switch self {
        case .f32, .f16, .bf16, .f64: return true
        default: return false
        }
    }
}

/// One tensor's header entry.
public struct SafeTensorsEntry: Sendable, Equatable {
    /// The tensor's name (its key in the header).
    public var name: String
    public var dtype: SafeTensorsDType
    /// Dimensions, outermost first; `[]` for a scalar.
    public var shape: [Int]
    /// The tensor's bytes within the data buffer (offsets relative to the buffer's start).
    public var byteRange: Range<Int>

    public init(name: String, dtype: SafeTensorsDType, shape: [Int], byteRange: Range<Int>) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.byteRange = byteRange
    }

    /// Number of elements (product of ``shape``).
    public var elementCount: Int { byteRange.count / dtype.byteSize }
}

/// Everything that can go wrong reading or writing a safetensors file. Each problem has its own
/// case; cases about one tensor name it.
public enum SafeTensorsError: Error, Equatable, CustomStringConvertible {
    // File framing
    /// The file is shorter than the 8-byte header length.
    case fileTooShort(byteCount: Int)
    /// The header length exceeds the 100 MB limit of the reference implementation.
    case headerTooLarge(headerLength: UInt64)
    /// The header length points past the end of the file.
    case headerBeyondFile(headerLength: UInt64, fileSize: Int)
    /// The header is not valid UTF-8.
    case headerNotUTF8
    /// The header is not valid JSON (`offset` is a byte offset within the header).
    case headerNotJSON(offset: Int, reason: String)
    /// The header is JSON but not an object.
    case headerNotObject
    /// A JSON object of the header has the same key twice.
    case duplicateKey(String)

    // Entries
    /// A tensor's entry is not a JSON object.
    case entryNotObject(tensor: String)
    /// A tensor's entry lacks `dtype`, `shape` or `data_offsets`.
    case missingField(tensor: String, field: String)
    /// The dtype is not one of the format's dtype strings.
    case unknownDType(tensor: String, dtype: String)
    /// The shape is not an array of non-negative integers.
    case invalidShape(tensor: String)
    /// `data_offsets` is not an array of two non-negative integers.
    case invalidDataOffsets(tensor: String)
    /// The element count or byte count of the shape does not fit in `Int`.
    case shapeOverflow(tensor: String, shape: [Int])
    /// `data_offsets` has begin > end.
    case offsetsReversed(tensor: String, begin: Int, end: Int)
    /// The byte count the shape and dtype need differs from the byte count of the data offsets.
    case byteCountMismatch(tensor: String, expected: Int, actual: Int)
    /// The tensor ends beyond the data buffer (truncated file).
    case tensorBeyondData(tensor: String, end: Int, dataSize: Int)
    /// Two tensors share bytes.
    case overlappingTensors(String, String)
    /// Bytes of the data buffer belong to no tensor (a hole, or trailing bytes).
    case uncoveredBytes(Range<Int>)
    /// `__metadata__` is not an object (or null).
    case metadataNotObject
    /// A `__metadata__` value is not a string.
    case metadataValueNotString(key: String)

    // Access
    /// No tensor has this name.
    case tensorNotFound(String)
    /// ``SafeTensorsReader/tensor(_:)`` was asked for a tensor whose dtype is not F32, F16,
    /// BF16 or F64; use ``SafeTensorsReader/rawBytes(_:)``.
    case notFloatConvertible(tensor: String, dtype: SafeTensorsDType)

    // Writing
    /// The writer already holds a tensor of this name.
    case duplicateTensorName(String)
    /// `__metadata__` cannot name a tensor.
    case reservedTensorName(String)
    /// ``SafeTensorsWriter/add(_:_:as:)`` converts only to F32, F16, BF16 and F64.
    case unsupportedConversion(tensor: String, dtype: SafeTensorsDType)
    /// A value the writer was asked to store would not read back as a finite number (NaN,
    /// infinity, or a finite value beyond `dtype`'s range): the first such element
    /// (coordinates outermost first) and its value. Only with
    /// ``SafeTensorsWriter/requiresFiniteValues``.
    case unrepresentableValue(tensor: String, dtype: SafeTensorsDType, element: [Int], value: Float)

    // Files
    /// A file system operation failed.
    case fileSystem(path: String, operation: String, reason: String)

    public var description: String {
        switch self {
        case .fileTooShort(let n):
            return "safetensors file too short: \(n) bytes, the header length alone takes 8"
        case .headerTooLarge(let n):
            return "safetensors header length \(n) exceeds the 100 MB limit"
        case .headerBeyondFile(let n, let size):
            return "safetensors header length \(n) goes beyond the end of the \(size)-byte file"
        case .headerNotUTF8:
            return "safetensors header is not valid UTF-8"
        case .headerNotJSON(let offset, let reason):
            return "safetensors header is not valid JSON at byte \(offset) of the header: \(reason)"
        case .headerNotObject:
            return "safetensors header is not a JSON object"
        case .duplicateKey(let k):
            return "safetensors header has the key \"\(k)\" twice in one object"
        case .entryNotObject(let t):
            return "tensor \"\(t)\": header entry is not a JSON object"
        case .missingField(let t, let f):
            return "tensor \"\(t)\": header entry has no \"\(f)\""
        case .unknownDType(let t, let d):
            return "tensor \"\(t)\": unknown dtype \(d)"
        case .invalidShape(let t):
            return "tensor \"\(t)\": shape must be an array of non-negative integers"
        case .invalidDataOffsets(let t):
            return "tensor \"\(t)\": data_offsets must be an array of two non-negative integers"
        case .shapeOverflow(let t, let s):
            return "tensor \"\(t)\": the size of shape \(s) overflows"
        case .offsetsReversed(let t, let b, let e):
            return "tensor \"\(t)\": data_offsets [\(b), \(e)] begin after they end"
        case .byteCountMismatch(let t, let expected, let actual):
            return "tensor \"\(t)\": shape and dtype need \(expected) bytes, the data has \(actual)"
        case .tensorBeyondData(let t, let end, let size):
            return "tensor \"\(t)\": data ends at byte \(end), beyond the \(size)-byte data buffer (truncated file?)"
        case .overlappingTensors(let a, let b):
            return "tensors \"\(a)\" and \"\(b)\" overlap in the data buffer"
        case .uncoveredBytes(let r):
            return "bytes \(r.lowerBound)..<\(r.upperBound) of the data buffer belong to no tensor"
        case .metadataNotObject:
            return "safetensors __metadata__ is not an object of strings"
        case .metadataValueNotString(let k):
            return "safetensors __metadata__ value of \"\(k)\" is not a string"
        case .tensorNotFound(let t):
            return "no tensor named \"\(t)\""
        case .notFloatConvertible(let t, let d):
            return "tensor \"\(t)\" has dtype \(d.rawValue), which does not convert to Float32 (read its raw bytes)"
        case .duplicateTensorName(let t):
            return "a tensor named \"\(t)\" was already added"
        case .reservedTensorName(let t):
            return "\"\(t)\" is reserved and cannot name a tensor"
        case .unsupportedConversion(let t, let d):
            return "tensor \"\(t)\": cannot convert Float32 to \(d.rawValue) (F32, F16, BF16, F64 only; use addRaw)"
        case .unrepresentableValue(let t, let d, let element, let value):
            return "tensor \"\(t)\" as \(d.rawValue): \(StoredFloat.problem(type: d.rawValue, element: element, value: value))"
        case .fileSystem(let path, let op, let reason):
            return "\(op) \(path): \(reason)"
        }
    }
}

/// Whole-file conveniences over ``SafeTensorsReader`` and ``SafeTensorsWriter``.
public enum SafeTensors {
    /// Reads every tensor of the file as Float32.
    /// - Throws: ``SafeTensorsError`` for an invalid file, or
    ///   ``SafeTensorsError/notFloatConvertible(tensor:dtype:)`` when a tensor is not
    ///   F32/F16/BF16/F64.
    public static func load(_ url: URL) throws -> [String: Tensor] {
        let reader = try SafeTensorsReader(contentsOf: url)
        var out: [String: Tensor] = [:]
        out.reserveCapacity(reader.entries.count)
        for name in reader.names { out[name] = try reader.tensor(name) }
        return out
    }

    /// Writes `tensors` as F32, in sorted name order, atomically (see
    /// ``SafeTensorsWriter/write(to:)``).
    public static func save(_ tensors: [String: Tensor], to url: URL, metadata: [String: String] = [:]) throws {
        var writer = SafeTensorsWriter()
        writer.metadata = metadata
        for name in tensors.keys.sorted() { try writer.add(name, tensors[name]!) }
        try writer.write(to: url)
    }
}
