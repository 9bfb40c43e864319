/// One GGUF metadata value, typed as stored in the file.
///
/// The accessors (``string``, ``int``, ``float``, ``stringArray`` …) return nil when the value
/// has another type or does not fit; ``GGUFMetadata``'s throwing lookups
/// (``GGUFMetadata/int(forKey:)`` …) say which. Equality is IEEE equality for floats (NaN is
/// unequal to itself); ``isBitwiseIdentical(to:)`` compares the encoded values.
public enum GGUFValue: Sendable, Equatable, CustomStringConvertible {
    case uint8(UInt8)
    case int8(Int8)
    case uint16(UInt16)
    case int16(Int16)
    case uint32(UInt32)
    case int32(Int32)
    case float32(Float)
    case bool(Bool)
    case string(String)
    case array(GGUFArray)
    case uint64(UInt64)
    case int64(Int64)
    case float64(Double)

    /// The value's type number in the file.
    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .float32: return .float32
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        case .uint64: return .uint64
        case .int64: return .int64
        case .float64: return .float64
        }
    }

    /// The string of a string value.
    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// An integer value of any width and signedness, when it fits in `Int`.
    public var int: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(exactly: v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return Int(exactly: v)
        case .int64(let v): return Int(exactly: v)
        default: return nil
        }
    }

    /// A float32 value exactly, or a float64 value rounded to nearest.
    public var float: Float? {
        switch self {
        case .float32(let v): return v
        case .float64(let v): return Float(v)
        default: return nil
        }
    }

    /// A float32 or float64 value, exactly.
    public var double: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        default: return nil
        }
    }

    /// The value of a bool.
    public var bool: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The elements of an array value.
    public var array: GGUFArray? {
        if case .array(let a) = self { return a }
        return nil
    }

    /// The strings of an array of strings.
    public var stringArray: [String]? {
        if case .array(.string(let a)) = self { return a }
        return nil
    }

    /// The elements of an int32 array (as stored; no conversion).
    public var int32Array: [Int32]? {
        if case .array(.int32(let a)) = self { return a }
        return nil
    }

    /// The elements of an integer array of any width, when every one fits in `Int`. O(count).
    public var intArray: [Int]? { array?.intElements }

    /// The elements of a float32 array (as stored).
    public var floatArray: [Float]? {
        if case .array(.float32(let a)) = self { return a }
        return nil
    }

    /// True when both values have the same type and encode the same bytes (floats compared by
    /// bit pattern, so NaN payloads and the sign of zero count). O(size of the value).
    public func isBitwiseIdentical(to other: GGUFValue) -> Bool {
        switch (self, other) {
        case (.float32(let a), .float32(let b)): return a.bitPattern == b.bitPattern
        case (.float64(let a), .float64(let b)): return a.bitPattern == b.bitPattern
        case (.array(let a), .array(let b)): return a.isBitwiseIdentical(to: b)
        default: return self.type == other.type && self == other
        }
    }

    public var description: String {
        switch self {
        case .uint8(let v): return "\(v)"
        case .int8(let v): return "\(v)"
        case .uint16(let v): return "\(v)"
        case .int16(let v): return "\(v)"
        case .uint32(let v): return "\(v)"
        case .int32(let v): return "\(v)"
        case .float32(let v): return "\(v)"
        case .bool(let v): return "\(v)"
        case .string(let v): return "\"\(v)\""
        case .array(let a): return a.description
        case .uint64(let v): return "\(v)"
        case .int64(let v): return "\(v)"
        case .float64(let v): return "\(v)"
        }
    }
}

/// The elements of a GGUF metadata array: one Swift array per element type (so the 49,152
/// tokens of a vocabulary are one `[String]`, not 49,152 enum values). Nested arrays are
/// arrays of ``GGUFArray``, and each inner array has its own element type.
public enum GGUFArray: Sendable, Equatable, CustomStringConvertible {
    case uint8([UInt8])
    case int8([Int8])
    case uint16([UInt16])
    case int16([Int16])
    case uint32([UInt32])
    case int32([Int32])
    case float32([Float])
    case bool([Bool])
    case string([String])
    case array([GGUFArray])
    case uint64([UInt64])
    case int64([Int64])
    case float64([Double])

    /// The element type written in the file.
    public var elementType: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .float32: return .float32
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        case .uint64: return .uint64
        case .int64: return .int64
        case .float64: return .float64
        }
    }

    /// Number of elements.
    public var count: Int {
        switch self {
        case .uint8(let a): return a.count
        case .int8(let a): return a.count
        case .uint16(let a): return a.count
        case .int16(let a): return a.count
        case .uint32(let a): return a.count
        case .int32(let a): return a.count
        case .float32(let a): return a.count
        case .bool(let a): return a.count
        case .string(let a): return a.count
        case .array(let a): return a.count
        case .uint64(let a): return a.count
        case .int64(let a): return a.count
        case .float64(let a): return a.count
        }
    }

    /// Element `index` as a value. O(1). `index` must be in `0 ..< count`.
    public subscript(index: Int) -> GGUFValue {
        switch self {
        case .uint8(let a): return .uint8(a[index])
        case .int8(let a): return .int8(a[index])
        case .uint16(let a): return .uint16(a[index])
        case .int16(let a): return .int16(a[index])
        case .uint32(let a): return .uint32(a[index])
        case .int32(let a): return .int32(a[index])
        case .float32(let a): return .float32(a[index])
        case .bool(let a): return .bool(a[index])
        case .string(let a): return .string(a[index])
        case .array(let a): return .array(a[index])
        case .uint64(let a): return .uint64(a[index])
        case .int64(let a): return .int64(a[index])
        case .float64(let a): return .float64(a[index])
        }
    }

    /// The elements of an integer array as `Int`, or nil when the elements are not integers or
    /// one does not fit. O(count).
    public var intElements: [Int]? {
        func convert<T: BinaryInteger>(_ a: [T]) -> [Int]? {
            var out: [Int] = []
            out.reserveCapacity(a.count)
            for v in a {
                guard let i = Int(exactly: v) else { return nil }
                out.append(i)
            }
            return out
        }
        switch self {
        case .uint8(let a): return convert(a)
        case .int8(let a): return convert(a)
        case .uint16(let a): return convert(a)
        case .int16(let a): return convert(a)
        case .uint32(let a): return convert(a)
        case .int32(let a): return convert(a)
        case .uint64(let a): return convert(a)
        case .int64(let a): return convert(a)
        default: return nil
        }
    }

    /// True when both arrays have the same element type and bitwise identical elements.
    public func isBitwiseIdentical(to other: GGUFArray) -> Bool {
        switch (self, other) {
        case (.float32(let a), .float32(let b)): return a.map(\.bitPattern) == b.map(\.bitPattern)
        case (.float64(let a), .float64(let b)): return a.map(\.bitPattern) == b.map(\.bitPattern)
        case (.array(let a), .array(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.isBitwiseIdentical(to: $1) }
        default: return self.elementType == other.elementType && self == other
        }
    }

    public var description: String {
        let n = count
        let shown = (0..<min(n, 8)).map { self[$0].description }.joined(separator: ", ")
        return "[\(elementType) × \(n): \(shown)\(n > 8 ? ", …" : "")]"
    }
}
