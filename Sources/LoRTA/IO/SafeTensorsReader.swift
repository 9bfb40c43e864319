import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A parsed safetensors header over the file's bytes; tensors are decoded on demand.
///
/// ``init(contentsOf:)`` memory-maps the file (private, copy-on-write mapping), so opening a
/// large model costs only the header parse, and each tensor is read from the page cache once,
/// when decoded. The whole header is validated up front against the file size: dtypes, shapes,
/// byte counts, bounds, and that the tensors cover the data buffer exactly, without overlaps
/// or holes (as the reference implementation requires). Once initialised, no accessor can
/// fail on the file's structure.
///
/// The mapping assumes the file is not truncated by another process while in use (as every
/// memory-mapped reader does).
public struct SafeTensorsReader: Sendable {
    /// The reference implementation's limit on the header length.
    public static let maximumHeaderLength: UInt64 = 100_000_000

    /// Tensor entries in data-offset order (ties by end offset, then name).
    public let entries: [SafeTensorsEntry]
    /// The free-form `__metadata__` of the header (empty when absent).
    public let metadata: [String: String]

    /// The whole file (mapped, or the caller's `Data`).
    private let bytes: Data
    /// Offset of the data buffer within ``bytes`` (8 + header length).
    private let dataStart: Int
    private let indexByName: [String: Int]

    /// Tensor names, in the order of ``entries``.
    public var names: [String] { entries.map(\.name) }

    /// Size of the data buffer in bytes.
    public var dataByteCount: Int { bytes.count - dataStart }

    /// Memory-maps and validates the file at `url`. O(header length + number of tensors ·
    /// log(number of tensors)); the data bytes are not read.
    /// - Throws: ``SafeTensorsError/fileSystem(path:operation:reason:)`` when the file cannot
    ///   be opened or mapped, or the ``SafeTensorsError`` case of the first problem found.
    public init(contentsOf url: URL) throws {
        try self.init(data: try SafeTensorsReader.map(url))
    }

    /// Validates the safetensors bytes in `data` (kept, not copied). Same checks as
    /// ``init(contentsOf:)``.
    public init(data: Data) throws {
        let parsed = try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws(SafeTensorsError) in
            try SafeTensorsReader.parse(raw)
        }
        self.bytes = data
        self.dataStart = parsed.dataStart
        self.entries = parsed.entries
        self.metadata = parsed.metadata
        var index: [String: Int] = [:]
        index.reserveCapacity(parsed.entries.count)
        for (i, e) in parsed.entries.enumerated() { index[e.name] = i }
        self.indexByName = index
    }

    /// The entry named `name`, or nil. O(1).
    public func entry(_ name: String) -> SafeTensorsEntry? {
        indexByName[name].map { entries[$0] }
    }

    /// Decodes the tensor `name` to Float32 (F32 copied; F16, BF16 widened exactly; F64
    /// rounded to nearest). O(element count).
    /// - Throws: ``SafeTensorsError/tensorNotFound(_:)``,
    ///   ``SafeTensorsError/notFloatConvertible(tensor:dtype:)`` for other dtypes.
    public func tensor(_ name: String) throws -> Tensor {
        guard let e = entry(name) else { throw SafeTensorsError.tensorNotFound(name) }
        guard e.dtype.isFloatConvertible else { throw SafeTensorsError.notFloatConvertible(tensor: name, dtype: e.dtype) }
        let count = e.elementCount
        let begin = dataStart + e.byteRange.lowerBound
        return try Tensor(shape: e.shape) { out in
            bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
                let src = UnsafeRawBufferPointer(rebasing: raw[begin..<(begin + e.byteRange.count)])
                SafeTensorsReader.decode(src, dtype: e.dtype, count: count, into: out)
            }
        }
    }

    /// A copy of the tensor's exact bytes (any dtype, little-endian as stored). O(byte count).
    /// - Throws: ``SafeTensorsError/tensorNotFound(_:)``.
    public func rawBytes(_ name: String) throws -> Data {
        guard let e = entry(name) else { throw SafeTensorsError.tensorNotFound(name) }
        let begin = dataStart + e.byteRange.lowerBound
        let count = e.byteRange.count
        guard count > 0 else { return Data() }
        return bytes.withUnsafeBytes { raw in Data(bytes: raw.baseAddress! + begin, count: count) }
    }

    /// The tensor's exact bytes as a slice of the reader's storage: no copy, O(1). The slice
    /// keeps the mapped file alive by itself (the reader may be dropped) and is copy-on-write;
    /// its indices are file offsets (use `withUnsafeBytes` or `startIndex`).
    /// - Throws: ``SafeTensorsError/tensorNotFound(_:)``.
    public func storedBytes(_ name: String) throws -> Data {
        guard let e = entry(name) else { throw SafeTensorsError.tensorNotFound(name) }
        let begin = bytes.startIndex + dataStart + e.byteRange.lowerBound
        return bytes[begin..<(begin + e.byteRange.count)]
    }

    // MARK: - Decoding

    static func decode(_ src: UnsafeRawBufferPointer, dtype: SafeTensorsDType, count: Int, into out: UnsafeMutableBufferPointer<Float>) {
        guard count > 0 else { return }
        switch dtype {
        case .f32:
            #if _endian(little)
            out.baseAddress!.withMemoryRebound(to: UInt8.self, capacity: count * 4) { dst in
                _ = memcpy(dst, src.baseAddress!, count * 4)
            }
            #else
            for i in 0..<count {
                out[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
            }
            #endif
        case .f16:
            for i in 0..<count {
                out[i] = HalfPrecision.float(fromF16Bits: UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        case .bf16:
            for i in 0..<count {
                out[i] = HalfPrecision.float(fromBF16Bits: UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        case .f64:
            for i in 0..<count {
                out[i] = Float(Double(bitPattern: UInt64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
            }
        default:
            preconditionFailure("decode called for a dtype that is not float-convertible")
        }
    }

    // MARK: - Mapping

    /// Maps the file read/write-private (writes, if any, would stay in this process's pages,
    /// so a `Data` derived from the mapping may be mutated safely).
    static func map(_ url: URL) throws(SafeTensorsError) -> Data {
        let path = url.path
        func failure(_ operation: String) -> SafeTensorsError {
            .fileSystem(path: path, operation: operation, reason: String(cString: strerror(errno)))
        }
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)  // a FIFO must not block the open
        guard fd >= 0 else { throw failure("open") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw failure("stat") }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw .fileSystem(path: path, operation: "open", reason: "not a regular file")
        }
        let size = Int(info.st_size)
        if size == 0 { return Data() }
        guard let base = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw failure("mmap")
        }
        return Data(bytesNoCopy: base, count: size, deallocator: .custom { pointer, count in
            _ = munmap(pointer, count)
        })
    }

    // MARK: - Validation

    struct Parsed {
        var dataStart: Int
        var entries: [SafeTensorsEntry]
        var metadata: [String: String]
    }

    static func parse(_ file: UnsafeRawBufferPointer) throws(SafeTensorsError) -> Parsed {
        guard file.count >= 8 else { throw .fileTooShort(byteCount: file.count) }
        let headerLength = UInt64(littleEndian: file.loadUnaligned(as: UInt64.self))
        guard headerLength <= maximumHeaderLength else { throw .headerTooLarge(headerLength: headerLength) }
        guard headerLength <= UInt64(file.count - 8) else {
            throw .headerBeyondFile(headerLength: headerLength, fileSize: file.count)
        }
        let dataStart = 8 + Int(headerLength)
        let dataSize = file.count - dataStart
        let header = UnsafeRawBufferPointer(rebasing: file[8..<dataStart])

        guard isValidUTF8(header) else { throw .headerNotUTF8 }
        let json: SafeTensorsJSON
        do {
            json = try SafeTensorsJSON.parse(header)
        } catch {
            switch error {
            case .syntax(let offset, let reason): throw .headerNotJSON(offset: offset, reason: reason)
            case .duplicateKey(let key): throw .duplicateKey(key)
            }
        }
        guard case .object(let members) = json else { throw .headerNotObject }

        var entries: [SafeTensorsEntry] = []
        entries.reserveCapacity(members.count)
        var metadata: [String: String] = [:]
        for (key, value) in members {
            if key == "__metadata__" {
                metadata = try parseMetadata(value)
            } else {
                entries.append(try parseEntry(name: key, value, dataSize: dataSize))
            }
        }

        entries.sort {
            ($0.byteRange.lowerBound, $0.byteRange.upperBound) < ($1.byteRange.lowerBound, $1.byteRange.upperBound)
                || (($0.byteRange.lowerBound, $0.byteRange.upperBound) == ($1.byteRange.lowerBound, $1.byteRange.upperBound) && $0.name < $1.name)
        }
        // Coverage: every byte of the data buffer belongs to exactly one tensor.
        var covered = 0
        var lastName: String? = nil          // the tensor that ends at `covered`
        for e in entries {
            if e.byteRange.lowerBound < covered, let lastName {
                throw .overlappingTensors(lastName, e.name)
            }
            if e.byteRange.lowerBound > covered { throw .uncoveredBytes(covered..<e.byteRange.lowerBound) }
            if e.byteRange.upperBound >= covered {
                covered = e.byteRange.upperBound
                lastName = e.name
            }
        }
        if covered < dataSize { throw .uncoveredBytes(covered..<dataSize) }
        return Parsed(dataStart: dataStart, entries: entries, metadata: metadata)
    }

    private static func isValidUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }

    private static func parseMetadata(_ value: SafeTensorsJSON) throws(SafeTensorsError) -> [String: String] {
        switch value {
        case .null: return [:]  // the reference implementation reads null as "no metadata"
        case .object(let members):
            var out: [String: String] = [:]
            for (key, v) in members {
                guard case .string(let s) = v else { throw .metadataValueNotString(key: key) }
                out[key] = s
            }
            return out
        default:
            throw .metadataNotObject
        }
    }

    private static func parseEntry(name: String, _ value: SafeTensorsJSON, dataSize: Int) throws(SafeTensorsError) -> SafeTensorsEntry {
        guard case .object(let members) = value else { throw .entryNotObject(tensor: name) }
        var dtypeValue: SafeTensorsJSON? = nil
        var shapeValue: SafeTensorsJSON? = nil
        var offsetsValue: SafeTensorsJSON? = nil
        for (key, v) in members {  // other keys are ignored, as the reference implementation does
            switch key {
            case "dtype": dtypeValue = v
            case "shape": shapeValue = v
            case "data_offsets": offsetsValue = v
            default: break
            }
        }
        guard let dtypeValue else { throw .missingField(tensor: name, field: "dtype") }
        guard let shapeValue else { throw .missingField(tensor: name, field: "shape") }
        guard let offsetsValue else { throw .missingField(tensor: name, field: "data_offsets") }

        guard case .string(let dtypeString) = dtypeValue, let dtype = SafeTensorsDType(rawValue: dtypeString) else {
            throw .unknownDType(tensor: name, dtype: dtypeValue.summary)
        }
        guard let shape = nonNegativeIntegers(shapeValue) else { throw .invalidShape(tensor: name) }
        guard let offsets = nonNegativeIntegers(offsetsValue), offsets.count == 2 else {
            throw .invalidDataOffsets(tensor: name)
        }
        guard let byteCount = byteCount(shape: shape, dtype: dtype) else { throw .shapeOverflow(tensor: name, shape: shape) }
        let (begin, end) = (offsets[0], offsets[1])
        guard begin <= end else { throw .offsetsReversed(tensor: name, begin: begin, end: end) }
        guard end - begin == byteCount else { throw .byteCountMismatch(tensor: name, expected: byteCount, actual: end - begin) }
        guard end <= dataSize else { throw .tensorBeyondData(tensor: name, end: end, dataSize: dataSize) }
        return SafeTensorsEntry(name: name, dtype: dtype, shape: shape, byteRange: begin..<end)
    }

    private static func nonNegativeIntegers(_ value: SafeTensorsJSON) -> [Int]? {
        guard case .array(let elements) = value else { return nil }
        var out: [Int] = []
        out.reserveCapacity(elements.count)
        for e in elements {
            guard case .integer(let i) = e, i >= 0 else { return nil }
            out.append(i)
        }
        return out
    }

    /// shape product × dtype size, or nil on a negative dimension or overflow.
    static func byteCount(shape: [Int], dtype: SafeTensorsDType) -> Int? {
        guard let n = Tensor.elementCount(shape) else { return nil }
        let (bytes, overflow) = n.multipliedReportingOverflow(by: dtype.byteSize)
        return overflow ? nil : bytes
    }
}
