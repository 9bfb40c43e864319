import Foundation
import CKernels

#if _endian(big)
#error("GGUFReader reads metadata arrays with memcpy and assumes a little-endian host")
#endif

/// A parsed GGUF file (versions 2 and 3) over its bytes; tensors are decoded on demand.
///
/// ``init(contentsOf:)`` memory-maps the file (private, copy-on-write mapping, as
/// ``SafeTensorsReader`` does), so opening a model costs only the parse of the header,
/// metadata and tensor infos, and each tensor is read from the page cache when decoded.
/// Everything is validated up front against the file size, with a typed ``GGUFError`` naming
/// the key or tensor at fault:
/// - magic `GGUF`; version 2 or 3 (1 is obsolete; a byte-swapped version means a big-endian
///   file);
/// - every length or count is checked against the remaining bytes *before* it is read or
///   anything is allocated (truncation anywhere, strings past the end, absurd tensor, metadata
///   and array counts); strings are valid UTF-8; bools are 0 or 1;
/// - metadata: non-empty keys, no duplicates, known value types, arrays (nested to at most
///   ``GGUF/maximumArrayNesting`` levels); `general.alignment` a uint32 power of two ≥ 8
///   (default 32);
/// - tensor infos: unique names, 1 to 4 dimensions (dimensions of 0 are accepted, as llama.cpp
///   does: an empty tensor), element count and byte size without overflow, a known ggml type,
///   rows (the innermost dimension) a whole number of the type's blocks, offsets multiples of
///   the alignment, data inside the file, no two tensors overlapping.
/// Once initialised, no accessor can fail on the file's structure.
///
/// The data section starts at the first multiple of the alignment after the tensor infos;
/// tensor offsets are relative to it (``dataOffset``).
///
/// Lifetime: the reader owns the mapping through a `Data`; ``rawBytes(of:)`` returns slices
/// of that `Data`, which keep the mapping alive on their own (copy-on-write: mutating one
/// copies it and never changes the reader's bytes). The mapping assumes the file is not
/// truncated by another process while in use (as every memory-mapped reader does).
public struct GGUFReader: Sendable {
    /// The file's format version (2 or 3).
    public let version: UInt32
    /// The metadata, in file order.
    public let metadata: GGUFMetadata
    /// Tensor infos in file order.
    public let tensorInfos: [GGUFTensorInfo]
    /// The alignment of the data section and of every tensor's offset.
    public let alignment: Int
    /// Byte offset of the data section in the file (tensor offsets are relative to it): the
    /// first multiple of ``alignment`` after the tensor infos.
    public let dataOffset: Int

    /// The whole file (mapped, or the caller's `Data`).
    private let bytes: Data
    private let indexByName: [String: Int]

    /// Tensor names in file order.
    public var tensorNames: [String] { tensorInfos.map(\.name) }

    /// Size of the file in bytes.
    public var fileSize: Int { bytes.count }

    /// Memory-maps and validates the GGUF file at `url`. O(size of header, metadata and tensor
    /// infos + tensors · log(tensors)); tensor data is not read.
    /// - Throws: ``GGUFError/fileSystem(path:operation:reason:)`` when the file cannot be opened
    ///   or mapped, or the ``GGUFError`` case of the first problem found.
    public init(contentsOf url: URL) throws {
        let data: Data
        do {
            data = try SafeTensorsReader.map(url)
        } catch {
            if case .fileSystem(let path, let operation, let reason) = error {
                throw GGUFError.fileSystem(path: path, operation: operation, reason: reason)
            }
            throw GGUFError.fileSystem(path: url.path, operation: "map", reason: error.description)
        }
        try self.init(data: data)
    }

    /// Validates the GGUF bytes in `data` (kept, not copied). Same checks as
    /// ``init(contentsOf:)``.
    public init(data: Data) throws {
        let parsed = try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws(GGUFError) in
            var parser = GGUFParser(file: raw)
            return try parser.parse()
        }
        self.bytes = data
        self.version = parsed.version
        self.metadata = parsed.metadata
        self.tensorInfos = parsed.tensors
        self.alignment = parsed.alignment
        self.dataOffset = parsed.dataOffset
        var index: [String: Int] = [:]
        index.reserveCapacity(parsed.tensors.count)
        for (i, t) in parsed.tensors.enumerated() { index[t.name] = i }
        self.indexByName = index
    }

    /// The info of the tensor `name`, or nil. O(1).
    public func tensorInfo(named name: String) -> GGUFTensorInfo? {
        indexByName[name].map { tensorInfos[$0] }
    }

    /// The byte range of a tensor's data within the file.
    public func fileRange(of info: GGUFTensorInfo) -> Range<Int> {
        (dataOffset + info.offset)..<(dataOffset + info.offset + info.byteCount)
    }

    /// The tensor `name` decoded to Float32 with `lt_dequantize`, shape outermost first
    /// (``GGUFTensorInfo/shape``). Bit-identical to ggml's and gguf-py's dequantization. O(element
    /// count), multithreaded for large tensors.
    /// - Throws: ``GGUFError/tensorNotFound(_:)``, ``GGUFError/cannotDequantize(tensor:type:)`` for
    ///   a type other than F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K.
    public func tensor(named name: String) throws -> Tensor {
        guard let info = tensorInfo(named: name) else { throw GGUFError.tensorNotFound(name) }
        guard info.type.canDequantize else { throw GGUFError.cannotDequantize(tensor: name, type: info.type) }
        let range = fileRange(of: info)
        return try Tensor(shape: info.shape) { out in
            let status = bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
                lt_dequantize(Int32(info.type.rawValue), raw.baseAddress.map { $0 + range.lowerBound },
                              Int64(info.byteCount), Int64(info.elementCount), out.baseAddress)
            }
            guard status == LT_OK else {
                throw GGUFError.dequantizationFailed(tensor: name, status: Int32(truncatingIfNeeded: status.rawValue))
            }
        }
    }

    /// Calls `body` with the stored bytes of tensor `name` (any type, as in the file), without
    /// copying. The pointer is valid only during the call.
    /// - Throws: ``GGUFError/tensorNotFound(_:)``, or what `body` throws.
    public func withUnsafeBytes<R>(of name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard let info = tensorInfo(named: name) else { throw GGUFError.tensorNotFound(name) }
        let range = fileRange(of: info)
        return try bytes.withUnsafeBytes { raw in
            try body(UnsafeRawBufferPointer(rebasing: raw[range]))
        }
    }

    /// The stored bytes of tensor `name` (any type) as a `Data` that shares the reader's
    /// storage: no copy, O(1).
    ///
    /// The result is a slice of the file's `Data`: its indices are the **file offsets** of the
    /// bytes (`startIndex` == `fileRange(of:).lowerBound`), so index it through `startIndex` or
    /// use `withUnsafeBytes`. It keeps the mapped file alive by itself (the reader may be
    /// dropped), and it is copy-on-write: mutating it copies the bytes first and never changes
    /// what the reader or other slices see.
    /// - Throws: ``GGUFError/tensorNotFound(_:)``.
    public func rawBytes(of name: String) throws -> Data {
        guard let info = tensorInfo(named: name) else { throw GGUFError.tensorNotFound(name) }
        return bytes[fileRange(of: info)]
    }
}

/// The result of a successful parse.
struct GGUFParsed {
    var version: UInt32
    var metadata: GGUFMetadata
    var tensors: [GGUFTensorInfo]
    var alignment: Int
    var dataOffset: Int
}

/// A cursor over the file's bytes that checks every read against the remaining bytes.
struct GGUFParser {
    let file: UnsafeRawBufferPointer
    private(set) var offset = 0

    init(file: UnsafeRawBufferPointer) { self.file = file }

    var available: Int { file.count - offset }

    /// Minimum bytes of one metadata entry (key length, value type, a 1-byte value) and of one
    /// tensor info (name length, dimension count, one dimension, type, offset).
    static let minimumEntryBytes = 8 + 4 + 1
    static let minimumTensorInfoBytes = 8 + 4 + 8 + 4 + 8

    mutating func parse() throws(GGUFError) -> GGUFParsed {
        // Header
        let magicAt = try take(4, "the magic")
        let magic = Array(file[magicAt..<(magicAt + 4)])
        guard magic == GGUF.magic else { throw .badMagic(magic) }
        let version = try u32("the version")
        if version & 0xFFFF == 0 && version != 0 { throw .bigEndianFile(version: version.byteSwapped) }
        if version == 1 { throw .versionOneNotSupported }
        guard GGUF.supportedVersions.contains(version) else { throw .unsupportedVersion(version) }
        let tensorCount64 = try u64("the tensor count")
        let kvCount64 = try u64("the metadata count")
        guard kvCount64 <= UInt64(available / Self.minimumEntryBytes) else {
            throw .metadataCountTooLarge(kvCount64, available: available)
        }
        guard tensorCount64 <= UInt64(available / Self.minimumTensorInfoBytes) else {
            throw .tensorCountTooLarge(tensorCount64, available: available)
        }
        let kvCount = Int(kvCount64), tensorCount = Int(tensorCount64)

        // Metadata
        var metadata = GGUFMetadata()
        for i in 0..<kvCount {
            let key = try string("the key of metadata entry \(i)")
            guard !key.isEmpty else { throw .emptyKey(index: i) }
            guard !metadata.contains(key: key) else { throw .duplicateKey(key) }
            let rawType = try u32("the value type of \"\(key)\"")
            guard let type = GGUFValueType(rawValue: rawType) else { throw .unknownValueType(key: key, type: rawType) }
            metadata.appendNew(key: key, value: try value(of: type, key: key))
        }
        var alignment = GGUF.defaultAlignment
        if let a = metadata[GGUF.alignmentKey] {
            guard case .uint32(let v) = a else { throw .alignmentNotUInt32(a.type) }
            guard GGUF.isValidAlignment(Int(v)) else { throw .invalidAlignment(Int(v)) }
            alignment = Int(v)
        }

        // Tensor infos
        guard tensorCount <= available / Self.minimumTensorInfoBytes else {
            throw .tensorCountTooLarge(tensorCount64, available: available)
        }
        var infos: [(info: GGUFTensorInfo, offset: UInt64)] = []
        infos.reserveCapacity(tensorCount)
        var names = Set<String>()
        for i in 0..<tensorCount {
            let name = try string("the name of tensor \(i)")
            guard names.insert(name).inserted else { throw .duplicateTensorName(name) }
            let n = try u32("the dimension count of tensor \"\(name)\"")
            guard n >= 1 && n <= UInt32(GGUF.maximumDimensions) else {
                throw .invalidDimensionCount(tensor: name, count: n)
            }
            var raw: [UInt64] = []
            for j in 0..<Int(n) { raw.append(try u64("dimension \(j) of tensor \"\(name)\"")) }
            guard raw.allSatisfy({ $0 <= UInt64(Int.max) }) else { throw .dimensionTooLarge(tensor: name, dimensions: raw) }
            let dims = raw.map { Int($0) }
            let rawType = try u32("the type of tensor \"\(name)\"")
            guard let type = GGMLType(rawValue: rawType) else { throw .unknownTensorType(tensor: name, type: rawType) }
            guard let elements = Tensor.elementCount(dims) else { throw .sizeOverflow(tensor: name, dimensions: dims, type: type) }
            guard dims[0] % type.blockElements == 0 else {
                throw .rowNotMultipleOfBlockSize(tensor: name, type: type, rowLength: dims[0], blockElements: type.blockElements)
            }
            guard let byteCount = type.byteCount(elements: elements) else {
                throw .sizeOverflow(tensor: name, dimensions: dims, type: type)
            }
            let offset = try u64("the data offset of tensor \"\(name)\"")
            guard offset % UInt64(alignment) == 0 else {
                throw .misalignedTensorOffset(tensor: name, offset: offset, alignment: alignment)
            }
            // Placeholder offset: fixed below once the data section's start is known.
            infos.append((GGUFTensorInfo(name: name, type: type, dimensions: dims, offset: 0,
                                         elementCount: elements, byteCount: byteCount), offset))
        }

        // Data section: the first multiple of the alignment after the tensor infos.
        let dataOffset = (offset + alignment - 1) / alignment * alignment
        var tensors: [GGUFTensorInfo] = []
        tensors.reserveCapacity(infos.count)
        for (info, relative) in infos {
            let (start, o1) = UInt64(dataOffset).addingReportingOverflow(relative)
            let (end, o2) = start.addingReportingOverflow(UInt64(info.byteCount))
            guard !o1, !o2, end <= UInt64(file.count) else {
                throw .tensorBeyondFile(tensor: info.name, end: (o1 || o2) ? .max : end, fileSize: file.count)
            }
            tensors.append(GGUFTensorInfo(name: info.name, type: info.type, dimensions: info.dimensions,
                                          offset: Int(relative), elementCount: info.elementCount,
                                          byteCount: info.byteCount))
        }
        // No two tensors share a byte (empty tensors share none).
        let order = tensors.indices.filter { tensors[$0].byteCount > 0 }
            .sorted { (tensors[$0].offset, tensors[$0].byteCount, $0) < (tensors[$1].offset, tensors[$1].byteCount, $1) }
        var lastEnd = 0
        var lastName: String? = nil
        for i in order {
            let t = tensors[i]
            if let lastName, t.offset < lastEnd { throw .overlappingTensors(lastName, t.name) }
            if t.offset + t.byteCount > lastEnd {
                lastEnd = t.offset + t.byteCount
                lastName = t.name
            }
        }
        return GGUFParsed(version: version, metadata: metadata, tensors: tensors, alignment: alignment,
                          dataOffset: dataOffset)
    }

    // MARK: - Values

    private mutating func value(of type: GGUFValueType, key: String) throws(GGUFError) -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try u8("the value of \"\(key)\""))
        case .int8: return .int8(Int8(bitPattern: try u8("the value of \"\(key)\"")))
        case .uint16: return .uint16(try u16("the value of \"\(key)\""))
        case .int16: return .int16(Int16(bitPattern: try u16("the value of \"\(key)\"")))
        case .uint32: return .uint32(try u32("the value of \"\(key)\""))
        case .int32: return .int32(Int32(bitPattern: try u32("the value of \"\(key)\"")))
        case .float32: return .float32(Float(bitPattern: try u32("the value of \"\(key)\"")))
        case .bool:
            let b = try u8("the value of \"\(key)\"")
            guard b <= 1 else { throw .invalidBool(key: key, byte: b) }
            return .bool(b == 1)
        case .string: return .string(try string("the value of \"\(key)\""))
        case .array: return .array(try array(key: key, depth: 1))
        case .uint64: return .uint64(try u64("the value of \"\(key)\""))
        case .int64: return .int64(Int64(bitPattern: try u64("the value of \"\(key)\"")))
        case .float64: return .float64(Double(bitPattern: try u64("the value of \"\(key)\"")))
        }
    }

    /// An array (element type, count, elements) at nesting `depth` (1 for a top-level array).
    private mutating func array(key: String, depth: Int) throws(GGUFError) -> GGUFArray {
        guard depth <= GGUF.maximumArrayNesting else { throw .arrayNestingTooDeep(key: key, limit: GGUF.maximumArrayNesting) }
        let rawType = try u32("the element type of array \"\(key)\"")
        guard let type = GGUFValueType(rawValue: rawType) else { throw .unknownValueType(key: key, type: rawType) }
        let count64 = try u64("the count of array \"\(key)\"")
        guard count64 <= UInt64(available / type.minimumByteSize) else {
            throw .arrayCountTooLarge(key: key, count: count64, available: available)
        }
        let n = Int(count64)
        switch type {
        case .uint8: return .uint8(try bulk(UInt8.self, n, key))
        case .int8: return .int8(try bulk(Int8.self, n, key))
        case .uint16: return .uint16(try bulk(UInt16.self, n, key))
        case .int16: return .int16(try bulk(Int16.self, n, key))
        case .uint32: return .uint32(try bulk(UInt32.self, n, key))
        case .int32: return .int32(try bulk(Int32.self, n, key))
        case .float32: return .float32(try bulk(Float.self, n, key))
        case .uint64: return .uint64(try bulk(UInt64.self, n, key))
        case .int64: return .int64(try bulk(Int64.self, n, key))
        case .float64: return .float64(try bulk(Double.self, n, key))
        case .bool:
            let raw = try bulk(UInt8.self, n, key)
            if let bad = raw.first(where: { $0 > 1 }) { throw .invalidBool(key: key, byte: bad) }
            return .bool(raw.map { $0 == 1 })
        case .string:
            var out: [String] = []
            out.reserveCapacity(n)
            for i in 0..<n { out.append(try string("element \(i) of \"\(key)\"")) }
            return .string(out)
        case .array:
            var out: [GGUFArray] = []
            out.reserveCapacity(n)
            for _ in 0..<n { out.append(try array(key: key, depth: depth + 1)) }
            return .array(out)
        }
    }

    /// `n` fixed-size little-endian elements, copied in one pass.
    private mutating func bulk<T: BitwiseCopyable>(_: T.Type, _ n: Int, _ key: String) throws(GGUFError) -> [T] {
        let size = MemoryLayout<T>.size
        let at = try take(n * size, "the elements of array \"\(key)\"")  // n · size ≤ available
        guard n > 0 else { return [] }
        let source = file.baseAddress! + at
        return [T](unsafeUninitializedCapacity: n) { buffer, initialized in
            UnsafeMutableRawPointer(buffer.baseAddress!).copyMemory(from: source, byteCount: n * size)
            initialized = n
        }
    }

    // MARK: - Primitive reads

    /// Advances past `n` bytes and returns their offset, or throws when fewer remain.
    private mutating func take(_ n: Int, _ context: @autoclosure () -> String) throws(GGUFError) -> Int {
        guard n >= 0, n <= available else {
            throw .truncated(context: context(), offset: offset, needed: n, available: available)
        }
        let at = offset
        offset += n
        return at
    }

    private mutating func u8(_ context: @autoclosure () -> String) throws(GGUFError) -> UInt8 {
        file[try take(1, context())]
    }

    private mutating func u16(_ context: @autoclosure () -> String) throws(GGUFError) -> UInt16 {
        UInt16(littleEndian: file.loadUnaligned(fromByteOffset: try take(2, context()), as: UInt16.self))
    }

    private mutating func u32(_ context: @autoclosure () -> String) throws(GGUFError) -> UInt32 {
        UInt32(littleEndian: file.loadUnaligned(fromByteOffset: try take(4, context()), as: UInt32.self))
    }

    private mutating func u64(_ context: @autoclosure () -> String) throws(GGUFError) -> UInt64 {
        UInt64(littleEndian: file.loadUnaligned(fromByteOffset: try take(8, context()), as: UInt64.self))
    }

    /// A GGUF string: 8-byte length (checked against the remaining bytes first), then UTF-8.
    private mutating func string(_ context: @autoclosure () -> String) throws(GGUFError) -> String {
        let lengthAt = offset
        let length = try u64("the length of \(context())")
        guard length <= UInt64(available) else {
            throw .stringBeyondEnd(context: context(), offset: lengthAt, length: length, available: available)
        }
        let n = Int(length)
        guard n > 0 else { return "" }
        let at = offset
        offset += n
        let utf8 = UnsafeBufferPointer(start: (file.baseAddress! + at).assumingMemoryBound(to: UInt8.self), count: n)
        guard let s = String(validating: utf8, as: UTF8.self) else { throw .invalidUTF8(context: context()) }
        return s
    }
}
