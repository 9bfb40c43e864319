import LoRTA

/// Appends fixed-width little-endian values to a byte buffer (the messages between ranks).
struct ByteWriter {
    var bytes: [UInt8] = []

    mutating func append<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func append(_ v: Double) { append(v.bitPattern) }

    mutating func append(_ values: [Double]) {
        append(Int64(values.count))
        for v in values { append(v.bitPattern) }
    }

    mutating func append(_ t: Tensor) {
        append(Int64(t.shape.count))
        for d in t.shape { append(Int64(d)) }
        t.withUnsafeBufferPointer { p in for x in p { append(x.bitPattern) } }
    }
}

/// Reads what ``ByteWriter`` wrote; every read is bounds-checked.
struct ByteReader {
    let bytes: [UInt8]
    var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { offset == bytes.count }

    mutating func read<T: FixedWidthInteger>(_: T.Type) throws(DistributedError) -> T {
        let n = MemoryLayout<T>.size
        guard offset + n <= bytes.count else { throw .invalidMessage("message ends at byte \(bytes.count), expected \(n) more at \(offset)") }
        var v: T = 0
        for i in 0..<n { v |= T(truncatingIfNeeded: bytes[offset + i]) << (8 * i) }
        offset += n
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
        var out = [Double]()
        out.reserveCapacity(n)
        for _ in 0..<n { out.append(try readDouble()) }
        return out
    }

    mutating func readTensor() throws(DistributedError) -> Tensor {
        let rank = try readCount(limit: 8)
        var shape: [Int] = []
        for _ in 0..<rank { shape.append(try readCount(limit: (bytes.count - offset) / 4)) }
        guard let count = Tensor.elementCount(shape), count <= (bytes.count - offset) / 4 else {
            throw .invalidMessage("tensor of shape \(shape) does not fit the message")
        }
        var scalars = [Float]()
        scalars.reserveCapacity(count)
        for _ in 0..<count { scalars.append(Float(bitPattern: try read(UInt32.self))) }
        do {
            return try Tensor(scalars, shape: shape)
        } catch {
            throw .invalidMessage("tensor of shape \(shape): \(error)")
        }
    }
}
