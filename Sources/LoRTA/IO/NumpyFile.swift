import Foundation

// NumPy `.npy` files (format versions 1.0, 2.0 and 3.0): a strict reader and a writer.
//
// Layout: the magic `\x93NUMPY`, one byte each for the major and minor version, the header
// length (u16 little-endian for 1.0, u32 little-endian for 2.0 and 3.0), the header — a Python
// dict literal such as `{'descr': '<f4', 'fortran_order': False, 'shape': (100, 16), }`
// padded with spaces and ended by '\n' (Latin-1 for 1.0 and 2.0, UTF-8 for 3.0) — then the raw
// elements. The reader checks every field and reports each kind of damage as its own
// ``NumpyFileError`` case; it never crashes on a malformed file.

/// Errors reading or writing a NumPy `.npy` file, or converting its contents.
public enum NumpyFileError: Error, Equatable, CustomStringConvertible {
    /// The file could not be read (missing, unreadable, a directory…).
    case unreadableFile(path: String, reason: String)
    /// The file does not start with `\x93NUMPY`.
    case badMagic
    /// The file ends inside the fixed preamble (magic, version, header length).
    case truncatedPreamble(byteCount: Int)
    /// A format version other than 1.0, 2.0 or 3.0.
    case unsupportedVersion(major: Int, minor: Int)
    /// The header length field points past the end of the file.
    case headerBeyondFile(headerLength: Int, available: Int)
    /// The header's last byte is not '\n'.
    case headerNotTerminated
    /// The header is not a well-formed Python literal (or not valid UTF-8 in a 3.0 file);
    /// `offset` is the byte offset inside the header.
    case unparsableHeader(offset: Int, reason: String)
    /// The header is a valid literal but not a dictionary.
    case headerNotADictionary
    /// One of `descr`, `fortran_order`, `shape` is missing.
    case missingKey(String)
    /// A key appears twice in the header dictionary.
    case duplicateKey(String)
    /// A key other than `descr`, `fortran_order`, `shape`.
    case unexpectedKey(String)
    /// A key holds a value of the wrong type (`shape` not a tuple of integers, `fortran_order`
    /// not `True`/`False`, `descr` neither a string nor a list).
    case invalidValue(key: String, found: String)
    /// A `descr` string that is not one of the supported element types.
    case unknownDescr(String)
    /// An object (`O`) array: its payload is a Python pickle, which is never read.
    case objectDType(String)
    /// A structured (record) dtype, described by a list of fields.
    case structuredDType
    /// A shape with a negative dimension.
    case negativeDimension(shape: [Int])
    /// A dimension, the element count or the byte size does not fit in `Int`.
    case shapeOverflow(String)
    /// The file holds fewer data bytes than the shape and element size need.
    case truncatedData(expectedBytes: Int, actualBytes: Int)
    /// The file holds more data bytes than the shape and element size need.
    case trailingBytes(expectedBytes: Int, actualBytes: Int)
    /// A bool (`|b1`) element whose byte is neither 0 nor 1.
    case invalidBoolean(index: Int, byte: UInt8)
    /// An accessor needed another number of dimensions.
    case unsupportedRank(operation: String, shape: [Int])
    /// A finite float64 value too large in magnitude for Float32.
    case valueOutOfFloat32Range(index: Int, value: Double)
    /// A floating-point label that is not an integer (or NaN/infinite).
    case nonIntegralLabel(index: Int, value: String)
    /// An integer label that does not fit in `Int`.
    case labelOutOfRange(index: Int, value: String)
    /// Writer: the number of values does not match the shape.
    case countMismatch(shape: [Int], count: Int)
    /// Writer: a shape with a negative dimension or an overflowing element count.
    case invalidShape([Int])
    /// Writer: the file could not be written.
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case .unreadableFile(let p, let r): return "cannot read .npy file \(p): \(r)"
        case .badMagic: return "not a .npy file: it does not start with the magic \\x93NUMPY"
        case .truncatedPreamble(let n):
            return ".npy file truncated: \(n) bytes, shorter than the magic, version and header length"
        case .unsupportedVersion(let a, let b):
            return "unsupported .npy format version \(a).\(b) (supported: 1.0, 2.0, 3.0)"
        case .headerBeyondFile(let h, let a):
            return ".npy header length \(h) goes past the end of the file (\(a) bytes after the length field)"
        case .headerNotTerminated: return ".npy header does not end with '\\n'"
        case .unparsableHeader(let o, let r): return ".npy header unparsable at byte \(o): \(r)"
        case .headerNotADictionary: return ".npy header is not a dictionary literal"
        case .missingKey(let k): return ".npy header has no '\(k)' key"
        case .duplicateKey(let k): return ".npy header has the key '\(k)' twice"
        case .unexpectedKey(let k):
            return ".npy header has an unexpected key '\(k)' (expected descr, fortran_order, shape)"
        case .invalidValue(let k, let f): return ".npy header: invalid value for '\(k)': \(f)"
        case .unknownDescr(let d):
            return "unsupported .npy element type '\(d)' (supported: <f4 <f8 >f4 >f8 and signed/unsigned integers of 1, 2, 4, 8 bytes, |b1)"
        case .objectDType(let d):
            return ".npy object array ('\(d)'): its data is a Python pickle, which is never loaded"
        case .structuredDType: return ".npy structured (record) arrays are not supported"
        case .negativeDimension(let s): return ".npy shape \(s) has a negative dimension"
        case .shapeOverflow(let s): return ".npy shape \(s) is too large (size overflows)"
        case .truncatedData(let e, let a):
            return ".npy data truncated: the shape needs \(e) bytes, the file has \(a)"
        case .trailingBytes(let e, let a):
            return ".npy data has trailing bytes: the shape needs \(e) bytes, the file has \(a)"
        case .invalidBoolean(let i, let b): return ".npy bool element \(i) has byte value \(b) (expected 0 or 1)"
        case .unsupportedRank(let op, let s): return "\(op): unsupported array shape \(s)"
        case .valueOutOfFloat32Range(let i, let v): return "element \(i) (\(v)) is out of the Float32 range"
        case .nonIntegralLabel(let i, let v): return "label \(i) is not an integer: \(v)"
        case .labelOutOfRange(let i, let v): return "label \(i) (\(v)) does not fit in Int"
        case .countMismatch(let s, let c):
            return "shape \(s) needs \(Tensor.elementCount(s).map(String.init) ?? "?") values, got \(c)"
        case .invalidShape(let s): return "invalid shape \(s)"
        case .writeFailed(let p, let r): return "cannot write .npy file \(p): \(r)"
        }
    }
}

/// The element types a ``NumpyArray`` can hold.
public enum NumpyDType: Sendable, Equatable {
    case float32, float64, int8, int16, int32, int64, uint8, uint16, uint32, uint64, bool

    /// Bytes per element.
    public var itemSize: Int {
        switch self {
        case .int8, .uint8, .bool: return 1
        case .int16, .uint16: return 2
        case .float32, .int32, .uint32: return 4
        case .float64, .int64, .uint64: return 8
        }
    }

    /// True for `float32` and `float64`.
    public var isFloatingPoint: Bool { self == .float32 || self == .float64 }

    /// Parses a numpy `descr` string: a byte-order character (`<` little, `>` big, `=` or none
    /// native, `|` not applicable — only for 1-byte types) followed by a kind and size
    /// (`f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1`, or `?` for bool). Returns the type and whether the
    /// elements are big-endian.
    static func parse(descr: String) throws -> (NumpyDType, bigEndian: Bool) {
        var body = Substring(descr)
        var order: Character? = nil
        if let c = body.first, "<>=|".contains(c) {
            order = c
            body = body.dropFirst()
        }
        if body.first == "O" { throw NumpyFileError.objectDType(descr) }
        let type: NumpyDType
        switch body {
        case "f4": type = .float32
        case "f8": type = .float64
        case "i1": type = .int8
        case "i2": type = .int16
        case "i4": type = .int32
        case "i8": type = .int64
        case "u1": type = .uint8
        case "u2": type = .uint16
        case "u4": type = .uint32
        case "u8": type = .uint64
        case "b1", "?": type = .bool
        default: throw NumpyFileError.unknownDescr(descr)
        }
        if type.itemSize == 1 { return (type, false) }
        switch order {
        case "<": return (type, false)
        case ">": return (type, true)
        case "=", nil: return (type, NumpyArray.hostIsBigEndian)
        default: throw NumpyFileError.unknownDescr(descr)  // '|' means "no byte order": wrong for multi-byte types
        }
    }

    /// The little-endian descr numpy writes for this type (`<f4`, `|b1`…).
    var littleEndianDescr: String {
        switch self {
        case .float32: return "<f4"
        case .float64: return "<f8"
        case .int8: return "|i1"
        case .int16: return "<i2"
        case .int32: return "<i4"
        case .int64: return "<i8"
        case .uint8: return "|u1"
        case .uint16: return "<u2"
        case .uint32: return "<u4"
        case .uint64: return "<u8"
        case .bool: return "|b1"
        }
    }
}

/// An array read from a NumPy `.npy` file (format 1.0, 2.0 or 3.0).
///
/// Reading validates the whole header — magic, version, header length and terminator, the dict
/// literal (parsed by a strict Python-literal parser: keys in any order, trailing commas,
/// tuples `()`, `(n,)`, `(a, b)`; exactly the keys `descr`, `fortran_order`, `shape`, none
/// twice), the element type, the shape, and that the data size is exactly
/// `count × itemSize` (missing or trailing bytes are errors). Element types: little- and
/// big-endian `f4`, `f8`, signed and unsigned integers of 1, 2, 4 and 8 bytes and `b1` (bool;
/// each byte must be 0 or 1). Object, structured and other types are rejected with their own
/// error. Data may start at any offset (numpy aligns it to 64 bytes, old files to 16).
///
/// Fortran-order (`fortran_order: True`) files of any rank are supported: the accessors
/// return elements in row-major (C) order, transposing as needed.
///
/// The file's bytes are kept (memory-mapped when possible); the accessors convert them, each
/// in O(count) time.
public struct NumpyArray: Sendable {
    /// The element type stored in the file.
    public let dtype: NumpyDType
    /// The array's shape (`[]` for a 0-dimensional array).
    public let shape: [Int]
    /// True when the file stores the elements in column-major (Fortran) order.
    public let isFortranOrder: Bool
    /// True when the elements are stored big-endian.
    public let isBigEndian: Bool
    /// The format's major version (1, 2 or 3).
    public let formatVersion: Int

    /// The file's bytes and the offset at which the elements start.
    let bytes: Data
    let dataOffset: Int

    /// Number of elements (1 for a 0-dimensional array).
    public let count: Int

    static var hostIsBigEndian: Bool {
        #if _endian(big)
        return true
        #else
        return false
        #endif
    }

    /// Reads and validates a `.npy` file. O(file size) for bool arrays (every byte is checked),
    /// O(header) otherwise. Only regular files are read (a FIFO or a device would block).
    /// - Throws: ``NumpyFileError``.
    public init(contentsOf url: URL) throws {
        let data: Data
        do {
            data = try RegularFile.read(url, mapped: true)
        } catch {
            throw NumpyFileError.unreadableFile(path: url.path, reason: error.reason)
        }
        try self.init(data: data)
    }

    /// Parses and validates the bytes of a `.npy` file.
    /// - Throws: ``NumpyFileError``.
    public init(data: Data) throws {
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY
        let n = data.count
        let start = data.startIndex
        func byte(_ i: Int) -> UInt8 { data[start + i] }
        // Bad magic first: a short file that is not npy at all is "not a .npy file".
        for i in 0..<min(n, 6) where byte(i) != magic[i] { throw NumpyFileError.badMagic }
        guard n >= 8 else { throw n < 6 ? NumpyFileError.badMagic : NumpyFileError.truncatedPreamble(byteCount: n) }
        let major = Int(byte(6)), minor = Int(byte(7))
        let lengthFieldSize: Int
        switch (major, minor) {
        case (1, 0): lengthFieldSize = 2
        case (2, 0), (3, 0): lengthFieldSize = 4
        default: throw NumpyFileError.unsupportedVersion(major: major, minor: minor)
        }
        guard n >= 8 + lengthFieldSize else { throw NumpyFileError.truncatedPreamble(byteCount: n) }
        var headerLength = 0
        for i in 0..<lengthFieldSize { headerLength |= Int(byte(8 + i)) << (8 * i) }
        let headerStart = 8 + lengthFieldSize
        guard headerLength <= n - headerStart else {
            throw NumpyFileError.headerBeyondFile(headerLength: headerLength, available: n - headerStart)
        }
        guard headerLength > 0, byte(headerStart + headerLength - 1) == 0x0A else {
            throw NumpyFileError.headerNotTerminated
        }
        let header = [UInt8](data[(start + headerStart)..<(start + headerStart + headerLength)])
        if major == 3, String(bytes: header, encoding: .utf8) == nil {
            throw NumpyFileError.unparsableHeader(offset: 0, reason: "a version 3.0 header must be UTF-8")
        }
        var parser = PythonLiteralParser(bytes: header, utf8: major == 3, allowLongSuffix: major <= 2)
        let literal = try parser.parseDocument()
        guard case .dict(let entries) = literal else { throw NumpyFileError.headerNotADictionary }

        var fields: [String: PythonLiteral] = [:]
        for (key, value) in entries {
            guard ["descr", "fortran_order", "shape"].contains(key) else { throw NumpyFileError.unexpectedKey(key) }
            guard fields[key] == nil else { throw NumpyFileError.duplicateKey(key) }
            fields[key] = value
        }
        guard let descrValue = fields["descr"] else { throw NumpyFileError.missingKey("descr") }
        guard let orderValue = fields["fortran_order"] else { throw NumpyFileError.missingKey("fortran_order") }
        guard let shapeValue = fields["shape"] else { throw NumpyFileError.missingKey("shape") }

        let dtype: NumpyDType, bigEndian: Bool
        switch descrValue {
        case .string(let s): (dtype, bigEndian) = try NumpyDType.parse(descr: s)
        case .list: throw NumpyFileError.structuredDType
        default: throw NumpyFileError.invalidValue(key: "descr", found: descrValue.pythonText)
        }
        guard case .bool(let fortran) = orderValue else {
            throw NumpyFileError.invalidValue(key: "fortran_order", found: orderValue.pythonText)
        }
        guard case .tuple(let dims) = shapeValue else {
            throw NumpyFileError.invalidValue(key: "shape", found: shapeValue.pythonText)
        }
        var shape: [Int] = []
        for d in dims {
            guard case .integer(let text) = d else {
                throw NumpyFileError.invalidValue(key: "shape", found: shapeValue.pythonText)
            }
            guard let v = Int(text) else { throw NumpyFileError.shapeOverflow(shapeValue.pythonText) }
            shape.append(v)
        }
        if shape.contains(where: { $0 < 0 }) { throw NumpyFileError.negativeDimension(shape: shape) }
        guard let count = Tensor.elementCount(shape) else { throw NumpyFileError.shapeOverflow(shapeValue.pythonText) }
        let (expectedBytes, overflow) = count.multipliedReportingOverflow(by: dtype.itemSize)
        guard !overflow else { throw NumpyFileError.shapeOverflow(shapeValue.pythonText) }
        let dataOffset = headerStart + headerLength
        let actualBytes = n - dataOffset
        if actualBytes < expectedBytes {
            throw NumpyFileError.truncatedData(expectedBytes: expectedBytes, actualBytes: actualBytes)
        }
        if actualBytes > expectedBytes {
            throw NumpyFileError.trailingBytes(expectedBytes: expectedBytes, actualBytes: actualBytes)
        }
        if dtype == .bool {
            for i in 0..<count {
                let b = byte(dataOffset + i)
                if b > 1 { throw NumpyFileError.invalidBoolean(index: i, byte: b) }
            }
        }
        self.dtype = dtype
        self.shape = shape
        self.isFortranOrder = fortran
        self.isBigEndian = bigEndian
        self.formatVersion = major
        self.bytes = data
        self.dataOffset = dataOffset
        self.count = count
    }

    // MARK: Accessors

    /// The elements as a 2-D Float32 tensor: a 2-D array keeps its shape, a 1-D array of n
    /// elements becomes n×1. Float64 values are rounded to the nearest Float32; integers are
    /// converted (exactly up to 2²⁴ in magnitude, rounded to nearest beyond); bools give 0 and 1.
    /// NaN and ±infinity are passed through (see ``firstNonFiniteIndex()``). O(count).
    /// - Throws: ``NumpyFileError/unsupportedRank(operation:shape:)`` for rank 0 or > 2;
    ///   ``NumpyFileError/valueOutOfFloat32Range(index:value:)`` for a finite float64 beyond
    ///   ±Float.greatestFiniteMagnitude (index in row-major order).
    public func floatMatrix() throws -> Tensor {
        let (rows, columns) = try matrixShape("floatMatrix")
        var tensor: Tensor
        do {
            tensor = try Tensor(shape: [rows, columns]) { out in
                try decode(into: out,
                           float32: { _, v in v },
                           float64: { i, v in
                               let f = Float(v)
                               if f.isInfinite && v.isFinite { throw NumpyFileError.valueOutOfFloat32Range(index: i, value: v) }
                               return f
                           },
                           signed: { _, v in Float(v) },
                           unsigned: { _, v in Float(v) })
            }
        } catch NumpyFileError.valueOutOfFloat32Range(let i, let v) {
            throw NumpyFileError.valueOutOfFloat32Range(index: rowMajorIndex(ofStorage: i), value: v)
        }
        if isFortranOrder && shape.count > 1 && count > 0 {
            let source = tensor.scalars
            tensor.withUnsafeMutableBufferPointer { out in
                source.withUnsafeBufferPointer { NumpyArray.fortranToC($0, into: out, shape: shape) }
            }
        }
        return tensor
    }

    /// The elements as a row-major float64 matrix (a 1-D array of n elements is n×1), for
    /// statistics: float32 and float64 values are exact; integers are exact up to 2⁵³ in
    /// magnitude; bools give 0 and 1. NaN and ±infinity are passed through. O(count).
    /// - Throws: ``NumpyFileError/unsupportedRank(operation:shape:)`` for rank 0 or > 2.
    public func doubleMatrix() throws -> (values: [Double], rows: Int, columns: Int) {
        let (rows, columns) = try matrixShape("doubleMatrix")
        return (try doubleValues(), rows, columns)
    }

    /// All elements as float64 in row-major order, for any rank (a 0-dimensional array gives one
    /// value). Same conversions as ``doubleMatrix()``. O(count).
    /// - Throws: ``MemoryError/exceedsBudget(purpose:bytes:budget:)`` when the float64 copy
    ///   exceeds the ``MemoryBudget``.
    public func doubleValues() throws -> [Double] {
        try MemoryBudget.check(bytes: MemoryBudget.byteCount(Double.self, count),
                               purpose: "the .npy array of shape \(shape) needs \(count) float64 values")
        let storage = try [Double](unsafeUninitializedCapacity: count) { out, initialized in
            try decode(into: out,
                       float32: { _, v in Double(v) },
                       float64: { _, v in v },
                       signed: { _, v in Double(v) },
                       unsigned: { _, v in Double(v) })
            initialized = count
        }
        return reorderedToC(storage)
    }

    /// The elements of a 1-D array as integer labels.
    ///
    /// Integer and bool arrays are accepted (bools give 0 and 1). Float arrays are accepted
    /// when every value is integral and fits in `Int` (labels saved as floats, e.g. by pandas),
    /// otherwise the first offending element is reported. O(count).
    /// - Throws: ``NumpyFileError/unsupportedRank(operation:shape:)`` unless the array is 1-D;
    ///   ``NumpyFileError/nonIntegralLabel(index:value:)``;
    ///   ``NumpyFileError/labelOutOfRange(index:value:)`` for a uint64 above `Int.max`;
    ///   ``MemoryError/exceedsBudget(purpose:bytes:budget:)`` when the labels exceed the
    ///   ``MemoryBudget``.
    public func integerLabels() throws -> [Int] {
        guard shape.count == 1 else {
            throw NumpyFileError.unsupportedRank(operation: "integerLabels (needs a 1-D array)", shape: shape)
        }
        try MemoryBudget.check(bytes: MemoryBudget.byteCount(Int.self, count),
                               purpose: "\(count) labels from a .npy array need as many 64-bit integers")
        return try [Int](unsafeUninitializedCapacity: count) { out, initialized in
            try decode(into: out,
                       float32: { i, v in try NumpyArray.integralLabel(Double(v), index: i) },
                       float64: { i, v in try NumpyArray.integralLabel(v, index: i) },
                       signed: { _, v in Int(v) },
                       unsigned: { i, v in
                           guard let x = Int(exactly: v) else { throw NumpyFileError.labelOutOfRange(index: i, value: String(v)) }
                           return x
                       })
            initialized = count
        }
    }

    /// The row-major index of the first NaN or infinite element, or nil when every element is
    /// finite (always nil for integer and bool arrays). O(count).
    public func firstNonFiniteIndex() -> Int? {
        guard dtype.isFloatingPoint, let values = try? doubleValues() else { return nil }
        return values.firstIndex { !$0.isFinite }
    }

    static func integralLabel(_ v: Double, index: Int) throws -> Int {
        guard v.isFinite, v == v.rounded(.towardZero) else {
            throw NumpyFileError.nonIntegralLabel(index: index, value: "\(v)")
        }
        guard let x = Int(exactly: v) else { throw NumpyFileError.labelOutOfRange(index: index, value: "\(v)") }
        return x
    }

    func matrixShape(_ operation: String) throws -> (Int, Int) {
        switch shape.count {
        case 1: return (shape[0], 1)
        case 2: return (shape[0], shape[1])
        default:
            throw NumpyFileError.unsupportedRank(operation: "\(operation) (needs a 1-D or 2-D array)", shape: shape)
        }
    }

    /// Converts every element, in storage order, with the closure for its kind; the closures
    /// receive the storage index and the value.
    @inline(__always)
    func decode<R>(into out: UnsafeMutableBufferPointer<R>,
                   float32: (Int, Float) throws -> R,
                   float64: (Int, Double) throws -> R,
                   signed: (Int, Int64) throws -> R,
                   unsigned: (Int, UInt64) throws -> R) throws {
        precondition(out.count >= count)  // internal invariant: callers size `out` from `count`
        let swap = isBigEndian != NumpyArray.hostIsBigEndian
        let n = count
        try bytes.withUnsafeBytes { (all: UnsafeRawBufferPointer) in
            let raw = UnsafeRawBufferPointer(rebasing: all[dataOffset...])
            // Same type and byte order: one memcpy (the data may be unaligned).
            if !swap && n > 0 && ((R.self == Float.self && dtype == .float32) || (R.self == Double.self && dtype == .float64)) {
                UnsafeMutableRawPointer(out.baseAddress!).copyMemory(from: raw.baseAddress!, byteCount: n * dtype.itemSize)
                return
            }
            @inline(__always) func load<T: FixedWidthInteger>(_ i: Int, _: T.Type) -> T {
                let v = raw.loadUnaligned(fromByteOffset: i &* MemoryLayout<T>.size, as: T.self)
                return swap ? v.byteSwapped : v
            }
            switch dtype {
            case .float32:
                for i in 0..<n { out[i] = try float32(i, Float(bitPattern: load(i, UInt32.self))) }
            case .float64:
                for i in 0..<n { out[i] = try float64(i, Double(bitPattern: load(i, UInt64.self))) }
            case .int8: for i in 0..<n { out[i] = try signed(i, Int64(load(i, Int8.self))) }
            case .int16: for i in 0..<n { out[i] = try signed(i, Int64(load(i, Int16.self))) }
            case .int32: for i in 0..<n { out[i] = try signed(i, Int64(load(i, Int32.self))) }
            case .int64: for i in 0..<n { out[i] = try signed(i, load(i, Int64.self)) }
            case .uint8, .bool: for i in 0..<n { out[i] = try unsigned(i, UInt64(load(i, UInt8.self))) }
            case .uint16: for i in 0..<n { out[i] = try unsigned(i, UInt64(load(i, UInt16.self))) }
            case .uint32: for i in 0..<n { out[i] = try unsigned(i, UInt64(load(i, UInt32.self))) }
            case .uint64: for i in 0..<n { out[i] = try unsigned(i, load(i, UInt64.self)) }
            }
        }
    }

    /// The row-major index of the element at `storage` (identity for C-order files). O(rank).
    func rowMajorIndex(ofStorage storage: Int) -> Int {
        guard isFortranOrder, shape.count > 1 else { return storage }
        var rest = storage, index = 0, stride = 1
        var coords = [Int](repeating: 0, count: shape.count)
        for k in 0..<shape.count {  // Fortran order: the first axis varies fastest
            coords[k] = rest % shape[k]
            rest /= shape[k]
        }
        for k in (0..<shape.count).reversed() {
            index += coords[k] * stride
            stride *= shape[k]
        }
        return index
    }

    func reorderedToC(_ storage: [Double]) -> [Double] {
        guard isFortranOrder, shape.count > 1, count > 0 else { return storage }
        return [Double](unsafeUninitializedCapacity: storage.count) { o, initialized in
            storage.withUnsafeBufferPointer { NumpyArray.fortranToC($0, into: o, shape: shape) }
            initialized = storage.count
        }
    }

    /// Copies `source`, laid out in Fortran order for `shape`, into `out` in C order. O(count).
    static func fortranToC<T>(_ source: UnsafeBufferPointer<T>, into out: UnsafeMutableBufferPointer<T>, shape: [Int]) {
        let rank = shape.count
        if rank < 2 {
            for i in 0..<source.count { out[i] = source[i] }
            return
        }
        if rank == 2 {
            // Blocked transpose: 32×32 tiles keep both sides in cache.
            let r = shape[0], c = shape[1], tile = 32
            for i0 in stride(from: 0, to: r, by: tile) {
                for j0 in stride(from: 0, to: c, by: tile) {
                    for i in i0..<min(i0 + tile, r) {
                        for j in j0..<min(j0 + tile, c) { out[i * c + j] = source[j * r + i] }
                    }
                }
            }
            return
        }
        // General rank: walk C order with an odometer over the coordinates.
        var fortranStride = [Int](repeating: 1, count: rank)
        for k in 1..<rank { fortranStride[k] = fortranStride[k - 1] * shape[k - 1] }
        var coords = [Int](repeating: 0, count: rank)
        var src = 0
        for dst in 0..<source.count {
            out[dst] = source[src]
            var k = rank - 1
            while k >= 0 {
                coords[k] += 1
                src += fortranStride[k]
                if coords[k] < shape[k] { break }
                src -= fortranStride[k] * shape[k]
                coords[k] = 0
                k -= 1
            }
        }
    }
}

// MARK: - Writer

/// Writes `.npy` files exactly as `numpy.save` does (format 1.0, or 2.0 when the header does
/// not fit in 65 535 bytes; little-endian; C order): the output for an array is byte-for-byte
/// the file numpy writes for the same array, header padding included (checked against numpy
/// 2.4; numpy releases before the 21-digit spare space of `_write_array_header` pad less).
///
/// Writes are atomic: the file is written to a temporary file in the same directory and then
/// renamed over `url`.
public enum NumpyWriter {
    /// Writes Float32 values with the given shape as `<f4`. O(count).
    /// - Throws: ``NumpyFileError/invalidShape(_:)``, ``NumpyFileError/countMismatch(shape:count:)``,
    ///   ``NumpyFileError/writeFailed(path:reason:)``.
    public static func write(_ values: [Float], shape: [Int], to url: URL) throws {
        try save(try encode(values, shape: shape), to: url)
    }

    /// Writes a tensor (any rank) as `<f4` with its own shape. O(count).
    public static func write(_ tensor: Tensor, to url: URL) throws {
        try save(try encode(tensor), to: url)
    }

    /// Writes Float64 values with the given shape as `<f8`. O(count).
    public static func write(_ values: [Double], shape: [Int], to url: URL) throws {
        try save(try encode(values, shape: shape), to: url)
    }

    /// Writes integer labels as a 1-D `<i8` array. O(count).
    public static func write(labels: [Int], to url: URL) throws {
        try save(encode(labels: labels), to: url)
    }

    /// The bytes of a `<f4` file for `values` with `shape`.
    public static func encode(_ values: [Float], shape: [Int]) throws -> Data {
        try checkCount(values.count, shape)
        return values.withUnsafeBufferPointer { file(.float32, shape: shape, elements: UnsafeRawBufferPointer($0)) }
    }

    /// The bytes of a `<f4` file for `tensor`.
    public static func encode(_ tensor: Tensor) throws -> Data {
        tensor.withUnsafeBufferPointer { file(.float32, shape: tensor.shape, elements: UnsafeRawBufferPointer($0)) }
    }

    /// The bytes of a `<f8` file for `values` with `shape`.
    public static func encode(_ values: [Double], shape: [Int]) throws -> Data {
        try checkCount(values.count, shape)
        return values.withUnsafeBufferPointer { file(.float64, shape: shape, elements: UnsafeRawBufferPointer($0)) }
    }

    /// The bytes of a 1-D `<i8` file for `labels`.
    public static func encode(labels: [Int]) -> Data {
        let wide = labels.map { Int64($0) }
        return wide.withUnsafeBufferPointer { file(.int64, shape: [labels.count], elements: UnsafeRawBufferPointer($0)) }
    }

    static func checkCount(_ count: Int, _ shape: [Int]) throws {
        guard let n = Tensor.elementCount(shape) else { throw NumpyFileError.invalidShape(shape) }
        guard n == count else { throw NumpyFileError.countMismatch(shape: shape, count: count) }
    }

    static func save(_ data: Data, to url: URL) throws {
        do {
            try data.write(to: url, options: .atomic)
        } catch {
            throw NumpyFileError.writeFailed(path: url.path, reason: error.localizedDescription)
        }
    }

    /// The full file: preamble, header and the elements (given in host byte order).
    static func file(_ dtype: NumpyDType, shape: [Int], elements: UnsafeRawBufferPointer) -> Data {
        var data = Data(header(descr: dtype.littleEndianDescr, fortranOrder: false, shape: shape))
        #if _endian(big)
        let size = dtype.itemSize
        var swapped = [UInt8](elements)
        for i in stride(from: 0, to: swapped.count, by: size) { swapped[i..<(i + size)].reverse() }
        data.append(contentsOf: swapped)
        #else
        data.append(contentsOf: elements)
        #endif
        return data
    }

    /// Magic, version, header length and header, as numpy's `_write_array_header` writes them:
    /// keys sorted, `repr` values, 21 − len(repr(shape[0])) spare spaces (recent numpy, for
    /// growing the first axis in place), space padding and '\n' so that the data starts at a
    /// multiple of 64. Version 1.0 unless the header needs more than 65 535 bytes, then 2.0.
    static func header(descr: String, fortranOrder: Bool, shape: [Int]) -> [UInt8] {
        let shapeText: String
        switch shape.count {
        case 0: shapeText = "()"
        case 1: shapeText = "(\(shape[0]),)"
        default: shapeText = "(" + shape.map(String.init).joined(separator: ", ") + ")"
        }
        var dict = "{'descr': '\(descr)', 'fortran_order': \(fortranOrder ? "True" : "False"), 'shape': \(shapeText), }"
        if !shape.isEmpty {
            let growthAxis = fortranOrder ? shape[shape.count - 1] : shape[0]
            dict += String(repeating: " ", count: max(0, 21 - String(growthAxis).count))
        }
        let text = Array(dict.utf8)
        let hlen = text.count + 1
        // Version 1.0 (u16 length) when the padded header fits, else 2.0 (u32 length).
        var lengthSize = 2
        if hlen + 64 - ((8 + 2 + hlen) % 64) > Int(UInt16.max) { lengthSize = 4 }
        let padding = 64 - ((8 + lengthSize + hlen) % 64)
        let total = hlen + padding
        var out: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, lengthSize == 2 ? 1 : 2, 0]
        for k in 0..<lengthSize { out.append(UInt8(truncatingIfNeeded: total >> (8 * k))) }
        out += text
        out += [UInt8](repeating: 0x20, count: padding)
        out.append(0x0A)
        return out
    }
}

// MARK: - Python literal parser

/// A Python literal as found in a `.npy` header. Integers keep their decimal text so that an
/// overflowing dimension can be reported as written.
indirect enum PythonLiteral {
    case string(String)
    case integer(String)
    case bool(Bool)
    case none
    case tuple([PythonLiteral])
    case list([PythonLiteral])
    case dict([(String, PythonLiteral)])

    /// The literal written back in Python syntax (for error messages).
    var pythonText: String {
        switch self {
        case .string(let s): return "'" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
        case .integer(let t): return t
        case .bool(let b): return b ? "True" : "False"
        case .none: return "None"
        case .tuple(let items): return items.count == 1 ? "(\(items[0].pythonText),)" : "(" + items.map(\.pythonText).joined(separator: ", ") + ")"
        case .list(let items): return "[" + items.map(\.pythonText).joined(separator: ", ") + "]"
        case .dict(let entries):
            return "{" + entries.map { "\(PythonLiteral.string($0.0).pythonText): \($0.1.pythonText)" }.joined(separator: ", ") + "}"
        }
    }
}

/// A strict recursive-descent parser for the subset of Python literals a `.npy` header uses:
/// strings ('…' or "…", escapes \\ \' \" only), decimal integers with optional sign (no
/// leading zeros; a Python 2 `L` suffix in format 1.0/2.0 files, as numpy accepts), `True`,
/// `False`, `None`, tuples, lists and dicts with string keys, trailing commas allowed. Anything
/// else — floats, expressions, comments, text after the closing brace other than whitespace —
/// is an error with the byte offset where parsing stopped. Nesting is limited to 32 levels.
struct PythonLiteralParser {
    let bytes: [UInt8]
    let utf8: Bool
    let allowLongSuffix: Bool
    var pos = 0
    static let maxDepth = 32

    init(bytes: [UInt8], utf8: Bool, allowLongSuffix: Bool) {
        self.bytes = bytes
        self.utf8 = utf8
        self.allowLongSuffix = allowLongSuffix
    }

    func fail(_ reason: String, at offset: Int? = nil) -> NumpyFileError {
        .unparsableHeader(offset: offset ?? pos, reason: reason)
    }

    mutating func parseDocument() throws -> PythonLiteral {
        skipWhitespace()
        let value = try parseValue(depth: 0)
        skipWhitespace()
        guard pos == bytes.count else { throw fail("unexpected text after the literal") }
        return value
    }

    mutating func skipWhitespace() {
        while pos < bytes.count, [0x20, 0x09, 0x0A, 0x0D, 0x0C].contains(bytes[pos]) { pos += 1 }
    }

    var current: UInt8? { pos < bytes.count ? bytes[pos] : nil }

    mutating func parseValue(depth: Int) throws -> PythonLiteral {
        guard depth < PythonLiteralParser.maxDepth else { throw fail("nesting deeper than \(PythonLiteralParser.maxDepth) levels") }
        guard let c = current else { throw fail("unexpected end of header, expected a value") }
        switch c {
        case UInt8(ascii: "'"), UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "("):
            let (items, sawComma) = try parseSequence(close: UInt8(ascii: ")"), depth: depth)
            // `(x)` is just x in Python; only `()` and `(x,)` / `(x, y…)` are tuples.
            if items.count == 1 && !sawComma { return items[0] }
            return .tuple(items)
        case UInt8(ascii: "["): return .list(try parseSequence(close: UInt8(ascii: "]"), depth: depth).0)
        case UInt8(ascii: "{"): return try parseDict(depth: depth)
        case UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .integer(try parseInteger())
        default:
            let start = pos
            while let b = current, isIdentifierByte(b) { pos += 1 }
            let word = String(decoding: bytes[start..<pos], as: UTF8.self)
            switch word {
            case "True": return .bool(true)
            case "False": return .bool(false)
            case "None": return .none
            default:
                pos = start
                throw fail(word.isEmpty ? "unexpected character '\(printable(c))'" : "unknown name '\(word)'")
            }
        }
    }

    func isIdentifierByte(_ b: UInt8) -> Bool {
        (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x5F
    }

    func printable(_ b: UInt8) -> String {
        b >= 0x20 && b < 0x7F ? String(UnicodeScalar(b)) : String(format: "\\x%02x", b)
    }

    /// Items separated by commas up to `close`; returns whether any comma was seen.
    mutating func parseSequence(close: UInt8, depth: Int) throws -> ([PythonLiteral], Bool) {
        pos += 1  // opening bracket
        var items: [PythonLiteral] = []
        var sawComma = false
        skipWhitespace()
        while true {
            guard let c = current else { throw fail("unexpected end of header, expected '\(printable(close))'") }
            if c == close { pos += 1; return (items, sawComma) }
            items.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            guard let d = current else { throw fail("unexpected end of header, expected '\(printable(close))'") }
            if d == UInt8(ascii: ",") {
                pos += 1
                sawComma = true
                skipWhitespace()
            } else if d != close {
                throw fail("expected ',' or '\(printable(close))'")
            }
        }
    }

    mutating func parseDict(depth: Int) throws -> PythonLiteral {
        pos += 1  // '{'
        var entries: [(String, PythonLiteral)] = []
        skipWhitespace()
        while true {
            guard let c = current else { throw fail("unexpected end of header, expected '}'") }
            if c == UInt8(ascii: "}") { pos += 1; return .dict(entries) }
            guard c == UInt8(ascii: "'") || c == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let key = try parseString()
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw fail("expected ':' after key '\(key)'") }
            pos += 1
            skipWhitespace()
            entries.append((key, try parseValue(depth: depth + 1)))
            skipWhitespace()
            guard let d = current else { throw fail("unexpected end of header, expected '}'") }
            if d == UInt8(ascii: ",") {
                pos += 1
                skipWhitespace()
            } else if d != UInt8(ascii: "}") {
                throw fail("expected ',' or '}'")
            }
        }
    }

    mutating func parseString() throws -> String {
        let start = pos
        let quote = bytes[pos]
        pos += 1
        var content: [UInt8] = []
        while true {
            guard let c = current, c != 0x0A else { throw fail("unterminated string", at: start) }
            pos += 1
            if c == quote { break }
            if c == UInt8(ascii: "\\") {
                guard let e = current, [UInt8(ascii: "\\"), UInt8(ascii: "'"), UInt8(ascii: "\"")].contains(e) else {
                    throw fail("unsupported escape sequence in string")
                }
                content.append(e)
                pos += 1
            } else {
                content.append(c)
            }
        }
        if utf8 { return String(decoding: content, as: UTF8.self) }  // validated beforehand
        return String(content.map { Character(UnicodeScalar($0)) })  // Latin-1
    }

    mutating func parseInteger() throws -> String {
        let start = pos
        var text = ""
        if let s = current, s == UInt8(ascii: "-") || s == UInt8(ascii: "+") {
            if s == UInt8(ascii: "-") { text = "-" }
            pos += 1
            skipWhitespace()  // Python allows `- 5`
        }
        let digitsStart = pos
        while let d = current, d >= 0x30 && d <= 0x39 { pos += 1 }
        guard pos > digitsStart else { throw fail("expected digits", at: start) }
        let digits = bytes[digitsStart..<pos]
        if digits.count > 1 && digits.first == 0x30 { throw fail("integer with a leading zero", at: digitsStart) }
        if allowLongSuffix, let l = current, l == UInt8(ascii: "L") || l == UInt8(ascii: "l") { pos += 1 }
        if let c = current, isIdentifierByte(c) || c == UInt8(ascii: ".") {
            throw fail("not an integer (only decimal integers are allowed here)", at: start)
        }
        text += String(decoding: digits, as: UTF8.self)
        return text == "-0" ? "0" : text
    }
}
