/// The metadata of a GGUF file: key–value pairs in file order, with O(1) lookup by key.
///
/// A collection of `(key, value)` pairs. The subscript by key reads (nil when absent) and
/// writes like an ordered dictionary: assigning to an existing key replaces its value in place,
/// assigning to a new key appends it, assigning nil removes it (O(count)). The throwing lookups
/// (``string(forKey:)``, ``int(forKey:)`` …) name the key and the problem in their error.
public struct GGUFMetadata: Sendable, Equatable, RandomAccessCollection, CustomStringConvertible {
    public typealias Element = (key: String, value: GGUFValue)

    /// Keys in file order.
    public private(set) var keys: [String] = []
    /// Values, in the order of ``keys``.
    public private(set) var values: [GGUFValue] = []
    private var indexByKey: [String: Int] = [:]

    /// Empty metadata.
    public init() {}

    /// Metadata holding `pairs` in order. A repeated key keeps its first position and its last
    /// value (as assignments through the subscript would).
    public init(_ pairs: [(key: String, value: GGUFValue)]) {
        for (k, v) in pairs { self[k] = v }
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { keys.count }
    public subscript(position: Int) -> Element { (keys[position], values[position]) }

    /// The value of `key`, or nil. O(1) to read; see the type's description for writes.
    public subscript(key: String) -> GGUFValue? {
        get { indexByKey[key].map { values[$0] } }
        set {
            if let i = indexByKey[key] {
                if let newValue {
                    values[i] = newValue
                } else {
                    keys.remove(at: i)
                    values.remove(at: i)
                    indexByKey[key] = nil
                    for j in i..<keys.count { indexByKey[keys[j]] = j }
                }
            } else if let newValue {
                indexByKey[key] = keys.count
                keys.append(key)
                values.append(newValue)
            }
        }
    }

    /// True when `key` is present. O(1).
    public func contains(key: String) -> Bool { indexByKey[key] != nil }

    /// Appends a pair the caller knows to be new (the reader checks duplicates itself).
    mutating func appendNew(key: String, value: GGUFValue) {
        indexByKey[key] = keys.count
        keys.append(key)
        values.append(value)
    }

    public static func == (a: GGUFMetadata, b: GGUFMetadata) -> Bool {
        a.keys == b.keys && a.values == b.values
    }

    /// True when both hold the same keys in the same order with bitwise identical values.
    public func isBitwiseIdentical(to other: GGUFMetadata) -> Bool {
        keys == other.keys && zip(values, other.values).allSatisfy { $0.isBitwiseIdentical(to: $1) }
    }

    public var description: String {
        "GGUFMetadata(" + zip(keys, values).map { "\($0): \($1)" }.joined(separator: ", ") + ")"
    }

    // MARK: - Typed lookups

    /// The value of `key`. - Throws: ``GGUFError/keyNotFound(_:)``.
    public func value(forKey key: String) throws(GGUFError) -> GGUFValue {
        guard let v = self[key] else { throw .keyNotFound(key) }
        return v
    }

    /// The string value of `key`.
    /// - Throws: ``GGUFError/keyNotFound(_:)``, ``GGUFError/typeMismatch(key:expected:actual:)``.
    public func string(forKey key: String) throws(GGUFError) -> String {
        let v = try value(forKey: key)
        guard let s = v.string else { throw mismatch(key, "a string", v) }
        return s
    }

    /// The integer value of `key`, of any integer type.
    /// - Throws: ``GGUFError/keyNotFound(_:)``, ``GGUFError/typeMismatch(key:expected:actual:)``
    ///   for a non-integer, ``GGUFError/valueOutOfRange(key:value:)`` beyond `Int`.
    public func int(forKey key: String) throws(GGUFError) -> Int {
        let v = try value(forKey: key)
        if let i = v.int { return i }
        switch v {
        case .uint32, .uint64, .int64: throw .valueOutOfRange(key: key, value: v.description)
        default: throw mismatch(key, "an integer", v)
        }
    }

    /// The float32 value of `key` (exact) or its float64 value rounded to Float.
    /// - Throws: ``GGUFError/keyNotFound(_:)``, ``GGUFError/typeMismatch(key:expected:actual:)``.
    public func float(forKey key: String) throws(GGUFError) -> Float {
        let v = try value(forKey: key)
        guard let f = v.float else { throw mismatch(key, "a float", v) }
        return f
    }

    /// The float32 or float64 value of `key`, exactly.
    /// - Throws: ``GGUFError/keyNotFound(_:)``, ``GGUFError/typeMismatch(key:expected:actual:)``.
    public func double(forKey key: String) throws(GGUFError) -> Double {
        let v = try value(forKey: key)
        guard let d = v.double else { throw mismatch(key, "a float", v) }
        return d
    }

    /// The bool value of `key`.
    /// - Throws: ``GGUFError/keyNotFound(_:)``, ``GGUFError/typeMismatch(key:expected:actual:)``.
    public func bool(forKey key: String) throws(GGUFError) -> Bool {
        let v = try value(forKey: key)
        guard let b = v.bool else { throw mismatch(key, "a bool", v) }
        return b
    }

    /// The array value of `key`.
    /// - Throws: ``GGUFError/keyNotFound(_:)``, ``GGUFError/typeMismatch(key:expected:actual:)``.
    public func array(forKey key: String) throws(GGUFError) -> GGUFArray {
        let v = try value(forKey: key)
        guard let a = v.array else { throw mismatch(key, "an array", v) }
        return a
    }

    /// The strings of the string array `key`.
    /// - Throws: ``GGUFError/keyNotFound(_:)``, ``GGUFError/typeMismatch(key:expected:actual:)``.
    public func stringArray(forKey key: String) throws(GGUFError) -> [String] {
        let v = try value(forKey: key)
        guard let a = v.stringArray else { throw mismatch(key, "an array of strings", v) }
        return a
    }

    /// The elements of the int32 array `key`.
    /// - Throws: ``GGUFError/keyNotFound(_:)``, ``GGUFError/typeMismatch(key:expected:actual:)``.
    public func int32Array(forKey key: String) throws(GGUFError) -> [Int32] {
        let v = try value(forKey: key)
        guard let a = v.int32Array else { throw mismatch(key, "an array of int32", v) }
        return a
    }

    /// The elements of the integer array `key` (any integer element type) as `Int`. O(count).
    /// - Throws: ``GGUFError/keyNotFound(_:)``, ``GGUFError/typeMismatch(key:expected:actual:)``,
    ///   ``GGUFError/valueOutOfRange(key:value:)`` when an element does not fit in `Int`.
    public func intArray(forKey key: String) throws(GGUFError) -> [Int] {
        let v = try value(forKey: key)
        guard let a = v.array else { throw mismatch(key, "an array of integers", v) }
        switch a.elementType {
        case .uint8, .int8, .uint16, .int16, .uint32, .int32, .uint64, .int64:
            guard let ints = a.intElements else {
                throw .valueOutOfRange(key: key, value: "an element beyond Int")
            }
            return ints
        default:
            throw mismatch(key, "an array of integers", v)
        }
    }

    /// The elements of the float32 array `key`.
    /// - Throws: ``GGUFError/keyNotFound(_:)``, ``GGUFError/typeMismatch(key:expected:actual:)``.
    public func floatArray(forKey key: String) throws(GGUFError) -> [Float] {
        let v = try value(forKey: key)
        guard let a = v.floatArray else { throw mismatch(key, "an array of float32", v) }
        return a
    }

    private func mismatch(_ key: String, _ expected: String, _ v: GGUFValue) -> GGUFError {
        let actual = v.array.map { "an array of \($0.elementType)" } ?? "a \(v.type)"
        return .typeMismatch(key: key, expected: expected, actual: actual)
    }
}
