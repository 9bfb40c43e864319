import Foundation
import LoRTA

// The messages between ranks: fixed-width values in the machine's own byte order (the ranks of
// one job run the same binary on machines of one architecture), bulk-copied.

/// Appends values to a byte buffer.
struct ByteWriter {
    var bytes: [UInt8] = []

    mutating func append<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v) { bytes.append(contentsOf: $0) }
    }

    mutating func append(_ v: Double) { append(v.bitPattern) }

    mutating func append(_ values: [Double]) {
        append(Int64(values.count))
        values.withUnsafeBytes { bytes.append(contentsOf: $0) }
    }

    mutating func append(_ t: Tensor) {
        append(Int64(t.shape.count))
        for d in t.shape { append(Int64(d)) }
        t.withUnsafeBufferPointer { p in bytes.append(contentsOf: UnsafeRawBufferPointer(p)) }
    }
}

/// Reads what ``ByteWriter`` wrote; every read is bounds-checked.
struct ByteReader {
    let bytes: [UInt8]
    var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { offset == bytes.count }

    /// Throws unless `count` more bytes follow the read position.
    private func need(_ count: Int) throws(DistributedError) {
        guard count >= 0, count <= bytes.count - offset else {
            throw .invalidMessage("message ends at byte \(bytes.count), expected \(count) more at \(offset)")
        }
    }

    /// Copies `count` bytes (checked by ``need(_:)``) into `destination` and advances.
    private mutating func copy(_ count: Int, into destination: UnsafeMutableRawBufferPointer) {
        bytes.withUnsafeBytes { src in
            if count > 0 { destination.baseAddress!.copyMemory(from: src.baseAddress! + offset, byteCount: count) }
        }
        offset += count
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type) throws(DistributedError) -> T {
        try need(MemoryLayout<T>.size)
        var v: T = 0
        withUnsafeMutableBytes(of: &v) { copy(MemoryLayout<T>.size, into: $0) }
        return v
    }

    mutating func readDouble() throws(DistributedError) -> Double { Double(bitPattern: try read(UInt64.self)) }

    mutating func readCount(limit: Int) throws(DistributedError) -> Int {
        let n = try read(Int64.self)
        guard n >= 0, n <= Int64(limit) else { throw .invalidMessage("count \(n) out of range 0...\(limit)") }
        return Int(n)
    }

    mutating func readDoubles() throws(DistributedError) -> [Double] {
        let n = try readCount(limit: (bytes.count - offset) / 8)
        try need(n * 8)
        var out = [Double](repeating: 0, count: n)
        out.withUnsafeMutableBytes { copy(n * 8, into: $0) }
        return out
    }

    mutating func readTensor() throws(DistributedError) -> Tensor {
        let rank = try readCount(limit: 8)
        var shape: [Int] = []
        for _ in 0..<rank { shape.append(try readCount(limit: (bytes.count - offset) / 4)) }
        guard let count = Tensor.elementCount(shape), count <= (bytes.count - offset) / 4 else {
            throw .invalidMessage("tensor of shape \(shape) does not fit the message")
        }
        try need(count * 4)
        var scalars = [Float](repeating: 0, count: count)
        scalars.withUnsafeMutableBytes { copy(count * 4, into: $0) }
        do {
            return try Tensor(scalars, shape: shape)
        } catch {
            throw .invalidMessage("tensor of shape \(shape): \(error)")
        }
    }
}
