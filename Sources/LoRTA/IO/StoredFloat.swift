import Foundation

/// The floating-point element types Float32 values are narrowed to when a safetensors or GGUF
/// file is written: the one conversion (``encode(_:)``) and the one check of whether a value
/// survives it (``firstUnstorable(in:)``) behind ``SafeTensorsWriter`` (with
/// ``SafeTensorsWriter/requiresFiniteValues``), ``GGUFWriter`` (with
/// ``GGUFWriter/requiresFiniteValues``) and ``GGUFQuantize/q8_0(_:name:)``.
///
/// A value is *storable* when it is read back as a finite number: it is finite, and it does
/// not round to infinity in the narrower type (F16: magnitudes of 65520 and above; BF16:
/// beyond 3.3895314e38 after rounding; Q8_0: a block's scale `max|x|/127` must be a finite
/// F16, so magnitudes of about 8.32e6 and above).
enum StoredFloat: Sendable {
    case f32, f16, bf16, f64, q8_0

    init?(_ dtype: SafeTensorsDType) {
        switch dtype {
        case .f32: self = .f32
        case .f16: self = .f16
        case .bf16: self = .bf16
        case .f64: self = .f64
        default: return nil
        }
    }

    init?(_ type: GGMLType) {
        switch type {
        case .f32: self = .f32
        case .f16: self = .f16
        case .bf16: self = .bf16
        case .f64: self = .f64
        case .q8_0: self = .q8_0
        default: return nil
        }
    }

    /// The type's name as the file formats spell it.
    var name: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .f64: return "F64"
        case .q8_0: return "Q8_0"
        }
    }

    /// Bytes per element of ``encode(_:)`` (not defined for Q8_0, which is stored in blocks).
    var byteSize: Int {
        switch self {
        case .f16, .bf16: return 2
        case .f32: return 4
        case .f64: return 8
        case .q8_0: preconditionFailure("Q8_0 is stored in blocks")
        }
    }

    /// Whether `x` is read back from this type as a finite number.
    @inline(__always)
    func stores(_ x: Float) -> Bool {
        switch self {
        case .f32, .f64: return x.isFinite
        case .f16: return HalfPrecision.f16Bits(from: x) & 0x7C00 != 0x7C00
        case .bf16: return HalfPrecision.bf16Bits(from: x) & 0x7F80 != 0x7F80
        case .q8_0:
            // ggml's block scale: f16(max|x| / 127), computed in Float32 as lt_quantize_q8_0 does.
            return x.isFinite && HalfPrecision.f16Bits(from: x.magnitude / 127) & 0x7C00 != 0x7C00
        }
    }

    /// The row-major index and value of the first element of `tensor` that is not storable
    /// (see the type's discussion), nil when every element is. O(element count).
    func firstUnstorable(in tensor: Tensor) -> (index: Int, value: Float)? {
        tensor.withUnsafeBufferPointer { values in
            for i in 0..<values.count where !stores(values[i]) { return (i, values[i]) }
            return nil
        }
    }

    /// The index and value of the first NaN or infinity among little-endian stored values of
    /// this type (F32, F16, BF16, F64; nil for Q8_0, whose blocks are not inspected).
    /// O(element count).
    func firstNonFinite(inStoredBytes bytes: Data) -> (index: Int, value: Float)? {
        bytes.withUnsafeBytes { raw in
            switch self {
            case .f32:
                for i in 0..<(raw.count / 4) {
                    let v = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                    if !v.isFinite { return (i, v) }
                }
            case .f16:
                for i in 0..<(raw.count / 2) {
                    let h = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                    if h & 0x7C00 == 0x7C00 { return (i, HalfPrecision.float(fromF16Bits: h)) }
                }
            case .bf16:
                for i in 0..<(raw.count / 2) {
                    let b = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                    if b & 0x7F80 == 0x7F80 { return (i, HalfPrecision.float(fromBF16Bits: b)) }
                }
            case .f64:
                for i in 0..<(raw.count / 8) {
                    let v = Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))
                    if !v.isFinite { return (i, Float(v)) }
                }
            case .q8_0:
                break
            }
            return nil
        }
    }

    /// `tensor`'s values in this type, little-endian: F32 and F64 exact, F16 and BF16 rounded to
    /// nearest, ties to even (see ``HalfPrecision``). Not for Q8_0 (``GGUFQuantize``).
    /// O(element count).
    func encode(_ tensor: Tensor) -> Data {
        let count = tensor.count
        var data = Data(count: count * byteSize)
        tensor.withUnsafeBufferPointer { src in
            data.withUnsafeMutableBytes { (dst: UnsafeMutableRawBufferPointer) in
                switch self {
                case .f32:
                    for i in 0..<count { dst.storeBytes(of: src[i].bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
                case .f16:
                    for i in 0..<count { dst.storeBytes(of: HalfPrecision.f16Bits(from: src[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
                case .bf16:
                    for i in 0..<count { dst.storeBytes(of: HalfPrecision.bf16Bits(from: src[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
                case .f64:
                    for i in 0..<count { dst.storeBytes(of: Double(src[i]).bitPattern.littleEndian, toByteOffset: 8 * i, as: UInt64.self) }
                case .q8_0:
                    preconditionFailure("Q8_0 is encoded by GGUFQuantize")
                }
            }
        }
        return data
    }

    /// The coordinates (outermost first) of row-major element `index` of a tensor of `shape`.
    static func coordinates(of index: Int, in shape: [Int]) -> [Int] {
        var rest = index
        var out = [Int](repeating: 0, count: shape.count)
        for d in shape.indices.reversed() where shape[d] > 0 {
            out[d] = rest % shape[d]
            rest /= shape[d]
        }
        return out
    }

    /// Why `value` cannot be stored in `type` (named by the file format's spelling), for the
    /// writers' error messages: "element [3, 17] is inf (only finite values are written)" or
    /// "element [3, 17] is 70000.0, which F16 cannot store (…)".
    static func problem(type: String, element: [Int], value: Float) -> String {
        let at = "element [\(element.map(String.init).joined(separator: ", "))]"
        if !value.isFinite { return "\(at) is \(value) (only finite values are written)" }
        let limit: String
        switch type {
        case "F16": limit = "its largest finite value is 65504"
        case "BF16": limit = "its largest finite value is about 3.39e38"
        case "Q8_0": limit = "a block's scale max|x|/127 is an F16, whose largest finite value is 65504"
        default: limit = "it would be stored as infinity"
        }
        return "\(at) is \(value), which \(type) cannot store (\(limit))"
    }
}
