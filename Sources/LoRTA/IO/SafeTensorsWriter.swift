import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Builds a safetensors file: tensors in insertion order, packed back to back, after a JSON
/// header padded with spaces to a multiple of 8 bytes (as the reference implementation does,
/// so that 8-byte elements are aligned when the file is mapped).
///
/// The writer holds the encoded bytes of every tensor added (one copy, in the file's dtype).
public struct SafeTensorsWriter: Sendable {
    /// Free-form string metadata, written as `__metadata__` when non-empty.
    public var metadata: [String: String] = [:]

    private var pending: [(entry: SafeTensorsEntry, bytes: Data)] = []
    private var names: Set<String> = []
    private var dataByteCount = 0

    public init() {}

    /// Names of the tensors added so far, in insertion order.
    public var tensorNames: [String] { pending.map(\.entry.name) }

    /// When true, the writer refuses to store a value that would not read back as a finite
    /// number: ``add(_:_:as:)`` refuses a tensor holding NaN or infinity, or a finite value
    /// beyond the target type's range (F16: magnitudes of 65520 and above; BF16: beyond about
    /// 3.39e38), and ``addRaw(_:dtype:shape:bytes:)`` refuses F32, F16, BF16 and F64 bytes
    /// holding NaN or infinity (other dtypes are stored as given). The error names the tensor,
    /// the first offending element and its value; nothing is added. Off by default (a file may
    /// hold any value); on for merged and exported models. The check costs one pass over the
    /// values.
    public var requiresFiniteValues = false

    /// Adds `tensor` under `name`, converted to `dtype`: F32 (exact), F16 or BF16 (round to
    /// nearest, ties to even; overflow becomes ±infinity; NaN stays NaN) or F64 (exact) — unless
    /// ``requiresFiniteValues`` refuses such values. O(element count).
    /// - Throws: ``SafeTensorsError/duplicateTensorName(_:)``,
    ///   ``SafeTensorsError/reservedTensorName(_:)``,
    ///   ``SafeTensorsError/unsupportedConversion(tensor:dtype:)`` for other dtypes,
    ///   ``SafeTensorsError/unrepresentableValue(tensor:dtype:element:value:)`` (only with
    ///   ``requiresFiniteValues``).
    public mutating func add(_ name: String, _ tensor: Tensor, as dtype: SafeTensorsDType = .f32) throws {
        try checkName(name)
        guard let stored = StoredFloat(dtype) else { throw SafeTensorsError.unsupportedConversion(tensor: name, dtype: dtype) }
        if requiresFiniteValues, let (i, v) = stored.firstUnstorable(in: tensor) {
            throw SafeTensorsError.unrepresentableValue(tensor: name, dtype: dtype,
                                                        element: StoredFloat.coordinates(of: i, in: tensor.shape), value: v)
        }
        append(name, dtype: dtype, shape: tensor.shape, bytes: stored.encode(tensor))
    }

    /// Adds a tensor of any dtype from its little-endian bytes (copied as given).
    /// - Throws: ``SafeTensorsError/duplicateTensorName(_:)``,
    ///   ``SafeTensorsError/reservedTensorName(_:)``, ``SafeTensorsError/invalidShape(tensor:)``
    ///   for a negative dimension, ``SafeTensorsError/shapeOverflow(tensor:shape:)``,
    ///   ``SafeTensorsError/byteCountMismatch(tensor:expected:actual:)`` when `bytes.count` is
    ///   not shape product × dtype size,
    ///   ``SafeTensorsError/unrepresentableValue(tensor:dtype:element:value:)`` for NaN or
    ///   infinity in F32, F16, BF16 or F64 bytes (only with ``requiresFiniteValues``).
    public mutating func addRaw(_ name: String, dtype: SafeTensorsDType, shape: [Int], bytes: Data) throws {
        try checkName(name)
        guard shape.allSatisfy({ $0 >= 0 }) else { throw SafeTensorsError.invalidShape(tensor: name) }
        guard let expected = SafeTensorsReader.byteCount(shape: shape, dtype: dtype) else {
            throw SafeTensorsError.shapeOverflow(tensor: name, shape: shape)
        }
        guard bytes.count == expected else {
            throw SafeTensorsError.byteCountMismatch(tensor: name, expected: expected, actual: bytes.count)
        }
        if requiresFiniteValues, let stored = StoredFloat(dtype), let (i, v) = stored.firstNonFinite(inStoredBytes: bytes) {
            throw SafeTensorsError.unrepresentableValue(tensor: name, dtype: dtype,
                                                        element: StoredFloat.coordinates(of: i, in: shape), value: v)
        }
        append(name, dtype: dtype, shape: shape, bytes: bytes)
    }

    /// The complete file. O(total byte count).
    /// - Throws: ``SafeTensorsError/headerTooLarge(headerLength:)`` when the header would
    ///   exceed the 100 MB limit readers enforce.
    public func serialized() throws -> Data {
        var out = try headerBytes()
        out.reserveCapacity(out.count + dataByteCount)
        for p in pending { out.append(p.bytes) }
        return out
    }

    /// Writes the file to `url` atomically: the bytes go to a new temporary file in the same
    /// directory, which is flushed to disk and then renamed over `url`. On failure the
    /// temporary file is removed and an existing file at `url` is left untouched.
    /// - Throws: ``SafeTensorsError/fileSystem(path:operation:reason:)`` (e.g. the directory
    ///   does not exist), ``SafeTensorsError/headerTooLarge(headerLength:)``.
    public func write(to url: URL) throws {
        let header = try headerBytes()
        do {
            try AtomicFileWriter.write(to: url) { write in
                try header.withUnsafeBytes { try write($0) }
                for p in pending { try p.bytes.withUnsafeBytes { try write($0) } }
            }
        } catch let f as AtomicFileWriter.Failure {
            throw SafeTensorsError.fileSystem(path: f.path, operation: f.operation, reason: f.reason)
        }
    }

    // MARK: - Private

    private func checkName(_ name: String) throws(SafeTensorsError) {
        guard name != "__metadata__" else { throw .reservedTensorName(name) }
        guard !names.contains(name) else { throw .duplicateTensorName(name) }
    }

    private mutating func append(_ name: String, dtype: SafeTensorsDType, shape: [Int], bytes: Data) {
        let range = dataByteCount..<(dataByteCount + bytes.count)
        pending.append((SafeTensorsEntry(name: name, dtype: dtype, shape: shape, byteRange: range), bytes))
        names.insert(name)
        dataByteCount += bytes.count
    }

    /// The 8-byte length followed by the JSON header padded with spaces to a multiple of 8.
    private func headerBytes() throws(SafeTensorsError) -> Data {
        var json = "{"
        var first = true
        if !metadata.isEmpty {
            json += "\"__metadata__\":{"
            json += metadata.keys.sorted().map { "\(Self.quoted($0)):\(Self.quoted(metadata[$0]!))" }.joined(separator: ",")
            json += "}"
            first = false
        }
        for p in pending {
            if !first { json += "," }
            first = false
            let e = p.entry
            json += "\(Self.quoted(e.name)):{\"dtype\":\"\(e.dtype.rawValue)\",\"shape\":["
            json += e.shape.map(String.init).joined(separator: ",")
            json += "],\"data_offsets\":[\(e.byteRange.lowerBound),\(e.byteRange.upperBound)]}"
        }
        json += "}"
        var header = Data(json.utf8)
        let padding = (8 - header.count % 8) % 8
        header.append(contentsOf: repeatElement(UInt8(ascii: " "), count: padding))
        guard UInt64(header.count) <= SafeTensorsReader.maximumHeaderLength else {
            throw .headerTooLarge(headerLength: UInt64(header.count))
        }
        var out = Data(capacity: 8 + header.count)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(header)
        return out
    }

    /// `s` as a JSON string literal (quote, backslash and control characters escaped).
    static func quoted(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20:
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}
