/// Bit-exact conversions between Float32 and the 16-bit floating-point formats stored in
/// safetensors files: IEEE 754 binary16 (`F16`) and bfloat16 (`BF16`).
///
/// The conversions work on bit patterns with integer arithmetic only, so they give the same
/// results on every platform (they do not depend on the availability of Swift's `Float16`).
/// Narrowing rounds to nearest, ties to even; values too large for the target format become
/// infinity of the same sign; NaN stays NaN (quiet, sign and the high payload bits kept).
/// Every function is O(1) and allocation-free.
public enum HalfPrecision {
    /// The Float32 value of an IEEE binary16 bit pattern. Exact for every pattern:
    /// subnormals, ±0, ±infinity; NaN payloads are kept (and the NaN is made quiet).
    @inlinable
    public static func float(fromF16Bits h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = UInt32(h >> 10) & 0x1F
        let mantissa = UInt32(h & 0x03FF)
        if exponent == 0x1F {
            // Infinity (mantissa 0) or NaN (payload shifted into the top of Float's mantissa).
            let quiet: UInt32 = mantissa == 0 ? 0 : 0x0040_0000
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13) | quiet)
        }
        if exponent == 0 {
            // ±0 or subnormal: mantissa · 2^-24, exact in Float32.
            let magnitude = Float(mantissa) * 0x1p-24
            return Float(bitPattern: sign | magnitude.bitPattern)
        }
        return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
    }

    /// The IEEE binary16 bit pattern nearest to `value` (ties to even). Magnitudes of 65520
    /// and above become infinity; magnitudes below 2^-25 become ±0.
    @inlinable
    public static func f16Bits(from value: Float) -> UInt16 {
        let bits = value.bitPattern
        let sign = UInt16(truncatingIfNeeded: (bits >> 16) & 0x8000)
        let magnitude = bits & 0x7FFF_FFFF
        let exponent = magnitude >> 23                 // biased Float32 exponent
        let mantissa = magnitude & 0x007F_FFFF
        if exponent == 0xFF {
            if mantissa == 0 { return sign | 0x7C00 }  // infinity
            // NaN: keep the top payload bits, force the quiet bit so it never becomes infinity.
            return sign | 0x7E00 | UInt16(truncatingIfNeeded: mantissa >> 13)
        }
        if exponent >= 143 { return sign | 0x7C00 }   // ≥ 2^16: beyond every finite half
        if exponent >= 113 {
            // Normal half (possibly rounding up into the next binade or to infinity).
            var h = UInt32((exponent - 112) << 10) | (mantissa >> 13)
            let rest = mantissa & 0x1FFF
            if rest > 0x1000 || (rest == 0x1000 && (h & 1) == 1) { h += 1 }
            return sign | UInt16(truncatingIfNeeded: h)
        }
        // Subnormal half or zero: result = round(m · 2^(exponent − 150 + 24)) with the
        // implicit bit in m, i.e. m >> (126 − exponent).
        let shift = 126 - exponent                     // 14 ... 126
        if shift > 24 { return sign }                  // below half the smallest subnormal
        let m = mantissa | 0x0080_0000
        var h = m >> shift
        let rest = m & ((1 << shift) - 1)
        let halfway: UInt32 = 1 << (shift - 1)
        if rest > halfway || (rest == halfway && (h & 1) == 1) { h += 1 }
        return sign | UInt16(truncatingIfNeeded: h)
    }

    /// The Float32 value of a bfloat16 bit pattern (exact: bfloat16 is the top half of a
    /// Float32).
    @inlinable
    public static func float(fromBF16Bits b: UInt16) -> Float {
        Float(bitPattern: UInt32(b) << 16)
    }

    /// The bfloat16 bit pattern nearest to `value` (ties to even). Finite values that round
    /// beyond the largest bfloat16 become infinity; NaN stays NaN.
    @inlinable
    public static func bf16Bits(from value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN {
            // Truncation alone could clear every payload bit and produce infinity.
            return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040
        }
        // Adding 0x7FFF plus the lowest kept bit rounds to nearest, ties to even; a carry
        // propagates into the exponent (up to infinity) as it should. Cannot overflow UInt32.
        let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }
}
