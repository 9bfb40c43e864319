import Testing
@testable import LoRTA

/// Test references shared by the HalfPrecision and SafeTensors suites (namespaced to keep the
/// test module's global names free).
enum HalfPrecisionReference {
    /// Independent bfloat16 rounding: the nearer of the two bfloat16 neighbours of `x` (measured in
    /// Double, exact for Float inputs), ties to the even pattern; the value past the largest
    /// finite bfloat16 counts as 2^128 (IEEE rounding with an unbounded exponent, then overflow).
    static func bf16Bits(_ x: Float) -> UInt16 {
        precondition(x.isFinite)
        let down = UInt16(truncatingIfNeeded: x.bitPattern >> 16)  // truncated toward zero
        let up = down &+ 1                                        // next magnitude, same sign
        let v = Double(x.magnitude)
        let vDown = Double(Float(bitPattern: UInt32(down) << 16).magnitude)
        let vUp: Double = (up & 0x7FFF) == 0x7F80 ? 0x1p128 : Double(Float(bitPattern: UInt32(up) << 16).magnitude)
        let dDown = v - vDown, dUp = vUp - v
        if dDown < dUp { return down }
        if dUp < dDown { return up }
        return down & 1 == 0 ? down : up
    }

    /// A deterministic 64-bit generator (SplitMix64) for sampled inputs.
    struct SplitMix64 {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }
}

@Suite("HalfPrecision")
struct HalfPrecisionTests {
    /// All 65536 binary16 patterns widen exactly like Swift's Float16 (NaN: NaN of the same sign).
    @Test func f16ToF32Exhaustive() {
        var mismatches = 0
        for h in 0...UInt16.max {
            let got = HalfPrecision.float(fromF16Bits: h)
            let want = Float(Float16(bitPattern: h))
            if want.isNaN {
                if !(got.isNaN && got.sign == want.sign) { mismatches += 1 }
            } else if got.bitPattern != want.bitPattern {
                mismatches += 1
            }
        }
        #expect(mismatches == 0)
        // Spot checks of the special classes.
        #expect(HalfPrecision.float(fromF16Bits: 0x0001) == 0x1p-24)          // smallest subnormal
        #expect(HalfPrecision.float(fromF16Bits: 0x03FF) == 1023 * 0x1p-24)   // largest subnormal
        #expect(HalfPrecision.float(fromF16Bits: 0x7BFF) == 65504)
        #expect(HalfPrecision.float(fromF16Bits: 0xFC00) == -.infinity)
        #expect(HalfPrecision.float(fromF16Bits: 0x8000).bitPattern == (-Float(0)).bitPattern)
        #expect(HalfPrecision.float(fromF16Bits: 0x7C01).isNaN)               // signalling NaN stays NaN
    }

    /// Narrowing agrees with Float16(Float) (round to nearest even) on every half value, its
    /// midpoints with the next half, one Float ulp either side of them, and a sweep of all
    /// Float exponents.
    @Test func f32ToF16AgainstFloat16() {
        var inputs: [Float] = []
        inputs.reserveCapacity(65536 * 5 + 70000)
        for h in 0...UInt16.max {
            let x = Float(Float16(bitPattern: h))
            guard x.isFinite else { continue }
            let next = Float(Float16(bitPattern: h).nextUp)   // towards +inf
            inputs.append(x)
            if next.isFinite {
                let mid = Float((Double(x) + Double(next)) / 2)  // exact: halves have 11 bits
                inputs.append(contentsOf: [mid, mid.nextUp, mid.nextDown])
            }
        }
        var rng = HalfPrecisionReference.SplitMix64(state: 42)
        for _ in 0..<70000 { inputs.append(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))) }
        inputs.append(contentsOf: [65519.998, 65520, 1e10, -1e10, .infinity, -.infinity, .greatestFiniteMagnitude,
                                   Float.leastNonzeroMagnitude, 0x1p-25, Float(0x1p-25).nextUp, -0x1p-25, 0x1.8p-25])
        var mismatches: [Float] = []
        for x in inputs {
            let got = HalfPrecision.f16Bits(from: x)
            let want = Float16(x)
            if want.isNaN {
                if !(Float16(bitPattern: got).isNaN && (got & 0x8000 != 0) == (x.sign == .minus)) { mismatches.append(x) }
            } else if got != want.bitPattern {
                mismatches.append(x)
            }
        }
        #expect(mismatches.isEmpty, "first mismatches: \(mismatches.prefix(5))")
        #expect(HalfPrecision.f16Bits(from: 65520) == 0x7C00)           // overflow → inf
        #expect(HalfPrecision.f16Bits(from: -1e10) == 0xFC00)
        #expect(HalfPrecision.f16Bits(from: 65519.996) == 0x7BFF)
        #expect(HalfPrecision.f16Bits(from: 0x1p-25) == 0x0000)         // tie to even (zero)
        #expect(HalfPrecision.f16Bits(from: 0x1.8p-24) == 0x0002)       // tie to even (2)
    }

    @Test func f16NaNStaysNaN() {
        // NaNs whose payload lives only in the low 13 bits would become infinity if truncated.
        for bits: UInt32 in [0x7F80_0001, 0x7FC0_0000, 0xFF80_1000, 0x7FFF_FFFF, 0x7F80_1FFF] {
            let h = HalfPrecision.f16Bits(from: Float(bitPattern: bits))
            #expect(Float16(bitPattern: h).isNaN)
            #expect((h & 0x8000 != 0) == (bits & 0x8000_0000 != 0))
            #expect(HalfPrecision.bf16Bits(from: Float(bitPattern: bits)) & 0x7FFF > 0x7F80)
        }
    }

    /// Every non-NaN half round-trips bitwise through Float32.
    @Test func f16ExactRoundTrip() {
        var failures = 0
        for h in 0...UInt16.max where !Float16(bitPattern: h).isNaN {
            if HalfPrecision.f16Bits(from: HalfPrecision.float(fromF16Bits: h)) != h { failures += 1 }
        }
        #expect(failures == 0)
    }

    /// All 65536 bfloat16 patterns widen to sign · 2^(e−127) · (1 + m/128) (or the subnormal,
    /// infinite, NaN forms), computed in Double here.
    @Test func bf16ToF32Exhaustive() {
        var mismatches = 0
        for b in 0...UInt16.max {
            let sign: Double = b & 0x8000 != 0 ? -1 : 1
            let e = Int((b >> 7) & 0xFF), m = Double(b & 0x7F)
            let got = HalfPrecision.float(fromBF16Bits: b)
            if e == 0xFF {
                if m == 0 { if got != Float(sign * .infinity) { mismatches += 1 } } else if !got.isNaN { mismatches += 1 }
                continue
            }
            let want = e == 0 ? sign * 0x1p-126 * (m / 128) : sign * Double.pow2(e - 127) * (1 + m / 128)
            if Double(got) != want || got.sign != (sign < 0 ? .minus : .plus) { mismatches += 1 }
        }
        #expect(mismatches == 0)
    }

    /// Narrowing to bfloat16 agrees with the Double-based reference on every bfloat16 value
    /// combined with low halves at and around the rounding midpoint, and on random floats.
    @Test func f32ToBF16AgainstReference() {
        var mismatches: [Float] = []
        var rng = HalfPrecisionReference.SplitMix64(state: 7)
        func check(_ x: Float) {
            guard x.isFinite else { return }
            if HalfPrecision.bf16Bits(from: x) != HalfPrecisionReference.bf16Bits(x) { mismatches.append(x) }
        }
        for b in 0...UInt16.max {
            let high = UInt32(b) << 16
            for low: UInt32 in [0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF, UInt32(truncatingIfNeeded: rng.next()) & 0xFFFF] {
                check(Float(bitPattern: high | low))
            }
        }
        #expect(mismatches.isEmpty, "first mismatches: \(mismatches.prefix(5))")
        #expect(HalfPrecision.bf16Bits(from: .greatestFiniteMagnitude) == 0x7F80)  // rounds up to inf
        #expect(HalfPrecision.bf16Bits(from: -.infinity) == 0xFF80)
        #expect(HalfPrecision.bf16Bits(from: 1.00390625) == 0x3F80)                // tie → even (1.0)
        #expect(HalfPrecision.bf16Bits(from: 1.01171875) == 0x3F82)                // tie → even (up)
    }
}

fileprivate extension Double {
    /// 2^e for the exponents of Float (exact).
    static func pow2(_ e: Int) -> Double { Double(sign: .plus, exponent: e, significand: 1) }
}
