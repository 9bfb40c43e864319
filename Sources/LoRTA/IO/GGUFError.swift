/// Everything that can go wrong reading, querying or writing a GGUF file. Each problem has its
/// own case; cases about one metadata entry or tensor name it, and the offsets are byte offsets
/// from the start of the file.
public enum GGUFError: Error, Equatable, CustomStringConvertible {
    // Header
    /// The file does not start with the bytes `GGUF`.
    case badMagic([UInt8])
    /// GGUF version 1 (it used 32-bit counts and is obsolete; llama.cpp refuses it too).
    case versionOneNotSupported
    /// A version other than 1, 2 or 3.
    case unsupportedVersion(UInt32)
    /// The version reads as a byte-swapped small number: the file was written big-endian.
    case bigEndianFile(version: UInt32)

    // Framing
    /// The file ends inside a field: `needed` bytes were required at `offset`, `available`
    /// remained. `context` says what was being read.
    case truncated(context: String, offset: Int, needed: Int, available: Int)
    /// A string's length goes past the end of the file.
    case stringBeyondEnd(context: String, offset: Int, length: UInt64, available: Int)
    /// A string is not valid UTF-8.
    case invalidUTF8(context: String)
    /// The tensor count cannot fit in the rest of the file (each tensor info takes at least
    /// 32 bytes); checked before anything is allocated.
    case tensorCountTooLarge(UInt64, available: Int)
    /// The metadata count cannot fit in the rest of the file (an entry takes at least 13 bytes).
    case metadataCountTooLarge(UInt64, available: Int)
    /// An array's element count cannot fit in the rest of the file.
    case arrayCountTooLarge(key: String, count: UInt64, available: Int)

    // Metadata
    /// A metadata key is the empty string (`index` counts from 0 in file order).
    case emptyKey(index: Int)
    /// Two metadata entries have the same key.
    case duplicateKey(String)
    /// A value type number that GGUF does not define (also for array element types).
    case unknownValueType(key: String, type: UInt32)
    /// A boolean byte other than 0 or 1 (the specification calls such files invalid).
    case invalidBool(key: String, byte: UInt8)
    /// Arrays nested deeper than ``GGUF/maximumArrayNesting``.
    case arrayNestingTooDeep(key: String, limit: Int)
    /// `general.alignment` is not a uint32.
    case alignmentNotUInt32(GGUFValueType)
    /// `general.alignment` is not a power of two of at least 8 (the specification asks for a
    /// multiple of 8, llama.cpp and gguf-py for a power of two).
    case invalidAlignment(Int)

    // Tensor infos
    /// Two tensors have the same name.
    case duplicateTensorName(String)
    /// A tensor has 0 or more than 4 dimensions (GGML_MAX_DIMS).
    case invalidDimensionCount(tensor: String, count: UInt32)
    /// A dimension beyond `Int.max`.
    case dimensionTooLarge(tensor: String, dimensions: [UInt64])
    /// The element count or the byte size of the tensor overflows.
    case sizeOverflow(tensor: String, dimensions: [Int], type: GGMLType)
    /// A tensor type number that ggml does not define.
    case unknownTensorType(tensor: String, type: UInt32)
    /// The innermost dimension (a row) is not a whole number of the type's blocks.
    case rowNotMultipleOfBlockSize(tensor: String, type: GGMLType, rowLength: Int, blockElements: Int)
    /// A tensor's data offset is not a multiple of the alignment.
    case misalignedTensorOffset(tensor: String, offset: UInt64, alignment: Int)
    /// A tensor's data ends beyond the end of the file (truncated file?).
    case tensorBeyondFile(tensor: String, end: UInt64, fileSize: Int)
    /// Two tensors share bytes.
    case overlappingTensors(String, String)

    // Access
    /// No metadata entry has this key.
    case keyNotFound(String)
    /// A metadata value has another type than the one asked for.
    case typeMismatch(key: String, expected: String, actual: String)
    /// A metadata value does not fit the type asked for (e.g. a uint64 beyond `Int.max`).
    case valueOutOfRange(key: String, value: String)
    /// No tensor has this name.
    case tensorNotFound(String)
    /// ``GGUFReader/tensor(named:)`` was asked for a tensor whose type this library does not
    /// decode; its raw bytes are still available.
    case cannotDequantize(tensor: String, type: GGMLType)
    /// The C decoder refused the tensor (a library bug: the reader validated the sizes).
    case dequantizationFailed(tensor: String, status: Int32)

    // Writing
    /// The writer cannot store this shape: rank 0 or more than 4, or a negative dimension.
    case invalidShape(tensor: String, shape: [Int])
    /// ``GGUFWriter/add(_:_:as:)`` converts Float32 only to F32, F16 and BF16.
    case unsupportedConversion(tensor: String, type: GGMLType)
    /// A value to be stored would not read back as a finite number (NaN, infinity, or a finite
    /// value beyond `type`'s range; for Q8_0, a block scale beyond F16's): the first such
    /// element (coordinates outermost first) and its value. From ``GGUFQuantize/q8_0(_:name:)``
    /// always, from ``GGUFWriter`` with ``GGUFWriter/requiresFiniteValues``.
    case unrepresentableValue(tensor: String, type: GGMLType, element: [Int], value: Float)
    /// The raw bytes given for a tensor differ from what its type and shape need.
    case byteCountMismatch(tensor: String, expected: Int, actual: Int)
    /// A tensor name of 64 bytes or more (llama.cpp's GGML_MAX_NAME limit).
    case tensorNameTooLong(String)
    /// A tensor name or metadata key that is empty.
    case emptyName

    // Files
    /// A file system operation failed.
    case fileSystem(path: String, operation: String, reason: String)

    public var description: String {
        switch self {
        case .badMagic(let bytes):
            let shown = bytes.map { b in
                let hex = String(b, radix: 16, uppercase: true)
                return b < 16 ? "0" + hex : hex
            }.joined(separator: " ")
            return "not a GGUF file: the first bytes are \(shown), expected 47 47 55 46 (\"GGUF\")"
        case .versionOneNotSupported:
            return "GGUF version 1 is obsolete and not supported (convert the file with a current llama.cpp)"
        case .unsupportedVersion(let v):
            return "GGUF version \(v) is not supported (versions 2 and 3 are)"
        case .bigEndianFile(let v):
            return "the GGUF file is big-endian (version field reads as \(v) byte-swapped); only little-endian files are supported"
        case .truncated(let context, let offset, let needed, let available):
            return "GGUF file truncated: reading \(context) at byte \(offset) needs \(needed) bytes, \(available) remain"
        case .stringBeyondEnd(let context, let offset, let length, let available):
            return "GGUF \(context): string length \(length) at byte \(offset) goes beyond the end of the file (\(available) bytes remain)"
        case .invalidUTF8(let context):
            return "GGUF \(context) is not valid UTF-8"
        case .tensorCountTooLarge(let n, let available):
            return "GGUF tensor count \(n) cannot fit in the remaining \(available) bytes"
        case .metadataCountTooLarge(let n, let available):
            return "GGUF metadata count \(n) cannot fit in the remaining \(available) bytes"
        case .arrayCountTooLarge(let key, let n, let available):
            return "GGUF metadata \"\(key)\": array count \(n) cannot fit in the remaining \(available) bytes"
        case .emptyKey(let i):
            return "GGUF metadata entry \(i) has an empty key"
        case .duplicateKey(let k):
            return "GGUF metadata has the key \"\(k)\" twice"
        case .unknownValueType(let k, let t):
            return "GGUF metadata \"\(k)\": unknown value type \(t)"
        case .invalidBool(let k, let b):
            return "GGUF metadata \"\(k)\": boolean byte \(b) is neither 0 nor 1"
        case .arrayNestingTooDeep(let k, let limit):
            return "GGUF metadata \"\(k)\": arrays nested deeper than \(limit) levels"
        case .alignmentNotUInt32(let t):
            return "GGUF general.alignment must be a uint32, found \(t)"
        case .invalidAlignment(let a):
            return "GGUF general.alignment \(a) is not a power of two of at least 8"
        case .duplicateTensorName(let t):
            return "GGUF file has two tensors named \"\(t)\""
        case .invalidDimensionCount(let t, let n):
            return "tensor \"\(t)\": \(n) dimensions, expected 1 to 4"
        case .dimensionTooLarge(let t, let dims):
            return "tensor \"\(t)\": dimensions \(dims) exceed Int.max"
        case .sizeOverflow(let t, let dims, let type):
            return "tensor \"\(t)\": the size of \(type) dimensions \(dims) overflows"
        case .unknownTensorType(let t, let type):
            return "tensor \"\(t)\": unknown ggml type number \(type)"
        case .rowNotMultipleOfBlockSize(let t, let type, let row, let block):
            return "tensor \"\(t)\": rows of \(row) elements are not a whole number of \(type) blocks of \(block)"
        case .misalignedTensorOffset(let t, let offset, let alignment):
            return "tensor \"\(t)\": data offset \(offset) is not a multiple of the alignment \(alignment)"
        case .tensorBeyondFile(let t, let end, let size):
            return "tensor \"\(t)\": data ends at byte \(end), beyond the \(size)-byte file (truncated file?)"
        case .overlappingTensors(let a, let b):
            return "tensors \"\(a)\" and \"\(b)\" overlap in the GGUF data section"
        case .keyNotFound(let k):
            return "GGUF metadata has no key \"\(k)\""
        case .typeMismatch(let k, let expected, let actual):
            return "GGUF metadata \"\(k)\" is \(actual), expected \(expected)"
        case .valueOutOfRange(let k, let v):
            return "GGUF metadata \"\(k)\" value \(v) is out of range"
        case .tensorNotFound(let t):
            return "no tensor named \"\(t)\""
        case .cannotDequantize(let t, let type):
            return "tensor \"\(t)\" has type \(type), which this library does not dequantize (read its raw bytes)"
        case .dequantizationFailed(let t, let status):
            return "tensor \"\(t)\": dequantization failed with status \(status)"
        case .invalidShape(let t, let s):
            return "tensor \"\(t)\": shape \(s) cannot be stored in GGUF (1 to 4 non-negative dimensions)"
        case .unsupportedConversion(let t, let type):
            return "tensor \"\(t)\": cannot convert Float32 to \(type) (F32, F16, BF16 only; use addRaw)"
        case .byteCountMismatch(let t, let expected, let actual):
            return "tensor \"\(t)\": type and shape need \(expected) bytes, \(actual) were given"
        case .tensorNameTooLong(let t):
            return "tensor name \"\(t)\" has \(t.utf8.count) bytes; GGUF readers allow at most 63"
        case .emptyName:
            return "GGUF keys and tensor names cannot be empty"
        case .unrepresentableValue(let t, let type, let element, let value):
            return "tensor \"\(t)\" as \(type): \(StoredFloat.problem(type: "\(type)", element: element, value: value))"
        case .fileSystem(let path, let op, let reason):
            return "\(op) \(path): \(reason)"
        }
    }
}
