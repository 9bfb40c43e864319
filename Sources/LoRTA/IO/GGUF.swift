// The GGUF format (llama.cpp / ggml, https://github.com/ggml-org/ggml/blob/master/docs/gguf.md),
// versions 2 and 3 (same layout), little-endian, fields packed without alignment:
//
//   magic          4 bytes "GGUF"
//   version        uint32 (2 or 3)
//   tensor_count   uint64
//   kv_count       uint64
//   kv_count ×     key: string, value_type: uint32, value
//   tensor_count × name: string, n_dims: uint32, dims: n_dims × uint64 (innermost first),
//                  type: uint32 (ggml type), offset: uint64 (relative to the data section)
//   padding        zeros up to the next multiple of ALIGNMENT (`general.alignment`, default 32)
//   data section   each tensor at its offset (a multiple of ALIGNMENT), tensors padded
//
// string = uint64 byte length + UTF-8 bytes (no terminator). A value is a scalar of its type,
// a string, or an array: element type uint32, count uint64, then `count` elements of that
// type (strings with their lengths; nested arrays with their own element type and count).

/// Constants of the GGUF format (see ``GGUFReader`` and ``GGUFWriter``).
public enum GGUF {
    /// The file's first four bytes.
    public static let magic: [UInt8] = Array("GGUF".utf8)
    /// The versions this library reads (version 2 and 3 share one layout).
    public static let supportedVersions: ClosedRange<UInt32> = 2...3
    /// The version ``GGUFWriter`` writes.
    public static let currentVersion: UInt32 = 3
    /// The alignment of the data section and of every tensor when `general.alignment` is absent.
    public static let defaultAlignment = 32
    /// The metadata key of the alignment (a uint32).
    public static let alignmentKey = "general.alignment"
    /// The most dimensions a tensor may have (ggml's GGML_MAX_DIMS).
    public static let maximumDimensions = 4
    /// Deepest nesting of metadata arrays accepted (an array of arrays is depth 2). The format
    /// sets no limit; this one keeps a crafted file from exhausting the stack.
    public static let maximumArrayNesting = 64
    /// Longest tensor name (in UTF-8 bytes) ``GGUFWriter`` writes: llama.cpp refuses names of
    /// GGML_MAX_NAME (64) bytes or more.
    public static let maximumTensorNameLength = 63

    /// True when `alignment` is accepted: a power of two (llama.cpp, gguf-py) of at least 8
    /// (a multiple of 8, as the specification requires).
    public static func isValidAlignment(_ alignment: Int) -> Bool {
        alignment >= 8 && alignment & (alignment - 1) == 0
    }
}

/// The type numbers of GGUF metadata values.
public enum GGUFValueType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6
    case bool = 7, string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// Bytes of one value of a fixed-size type; nil for strings and arrays.
    public var byteSize: Int? {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64: return 8
        case .string, .array: return nil
        }
    }

    /// The fewest bytes a value of this type takes in a file (a string its 8-byte length, an
    /// array its 4-byte element type and 8-byte count).
    var minimumByteSize: Int {
        switch self {
        case .string: return 8
        case .array: return 12
        default: return byteSize ?? 1
        }
    }

    /// The name gguf-py uses, lowercased (`uint32`, `string`, `array`, …).
    public var description: String {
        switch self {
        case .uint8: return "uint8"
        case .int8: return "int8"
        case .uint16: return "uint16"
        case .int16: return "int16"
        case .uint32: return "uint32"
        case .int32: return "int32"
        case .float32: return "float32"
        case .bool: return "bool"
        case .string: return "string"
        case .array: return "array"
        case .uint64: return "uint64"
        case .int64: return "int64"
        case .float64: return "float64"
        }
    }
}
