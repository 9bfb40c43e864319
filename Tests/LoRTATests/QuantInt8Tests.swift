import Testing
import CKernels
@testable import LoRTA

/// Decode-sized products with int8 activations: lt_quant_matmul_int8 and the int8 decode mode of
/// lt_quant_matmul (lt_quant.h, CKernels/src/quant_int8*.c).
///
/// References, independent of the kernels:
/// - the exact product of the dequantized W (lt_dequantize, tested bit-exact against the gguf
///   package elsewhere) with the activations rounded here in Swift as the contract says
///   (dx = max|x|/127, q = round(x/dx) clamped to ±127), in float64; the kernel may differ only by
///   float32 rounding: the bound γ_{d_in+2} · Σ|w̃·x̃| of QuantMatmulTests (one rounding of the
///   scale product, the fma of each lane and the lane tree are far fewer roundings than d_in);
/// - the float product of lt_quant_matmul, from which it may differ by the documented rounding of
///   the activations, Σ_blocks (max|x|/254) · Σ|w|, plus the float bound.
/// The lane arithmetic is the same in every variant, so the ISAs and thread counts must agree
/// bit for bit.
@Suite("Quantized matmul with int8 activations (lt_quant_matmul_int8)", .serialized)
struct QuantInt8Tests {
    static let types: [GGMLType] = [.q8_0, .q4_0, .q4_1]
    typealias Case = QuantMatmulTests.Case

    /// The activations of row i rounded per block (the contract's rule, in Float as the kernel).
    static func rounded(_ c: Case, row i: Int) -> (value: [Double], halfStep: [Double]) {
        var v = [Double](repeating: 0, count: c.dIn), half = [Double](repeating: 0, count: c.dIn / 32)
        for b in 0..<(c.dIn / 32) {
            let xs = (0..<32).map { c.x[i * c.ldx + 32 * b + $0] }
            let amax = xs.map(abs).max()!
            let d: Float = amax / 127
            let id: Float = d != 0 ? 1 / d : 0
            for j in 0..<32 {
                let q = min(max((xs[j] * id).rounded(.toNearestOrAwayFromZero), -127), 127)
                v[32 * b + j] = Double(d) * Double(q)
            }
            half[b] = Double(amax) / 254
        }
        return (v, half)
    }

    static func int8(_ c: Case, accumulate: Bool, n: Int? = nil, wBytes: Int? = nil) -> (lt_status, [Float]) {
        var y = c.y0
        let st = c.x.withUnsafeBufferPointer { px in
            c.w.withUnsafeBytes { pw in
                y.withUnsafeMutableBufferPointer { py in
                    lt_quant_matmul_int8(Int32(c.type.rawValue), Int64(n ?? c.n), Int64(c.dIn), Int64(c.dOut), px.baseAddress,
                                         Int64(c.ldx), pw.baseAddress, Int64(wBytes ?? pw.count), py.baseAddress, Int64(c.ldy),
                                         accumulate ? 1 : 0)
                }
            }
        }
        return (st, y)
    }

    /// d_in with an odd block count (a block paired with zeros) and whole chunks of 16 blocks.
    static let shapes: [(n: Int, dIn: Int, dOut: Int)] = [(1, 96, 37), (2, 576, 45), (3, 608, 33), (8, 1536, 9), (5, 32, 70)]

    @Test("matches the float64 product of the dequantized weights and the rounded activations, every ISA",
          arguments: types)
    func matchesReference(type: GGMLType) throws {
        for isa in testedInstructionSets() {
            try Runtime.withInstructionSet(isa) {
                for (index, s) in Self.shapes.enumerated() {
                    let c = Case(type, n: s.n, dIn: s.dIn, dOut: s.dOut, seed: 500 + UInt64(index))
                    for accumulate in [false, true] {
                        let (st, y) = Self.int8(c, accumulate: accumulate)
                        #expect(st == LT_OK)
                        var value = [Double](repeating: 0, count: c.n * c.dOut), scale = value
                        for i in 0..<c.n {
                            let x = Self.rounded(c, row: i).value
                            for o in 0..<c.dOut {
                                for k in 0..<c.dIn {
                                    let t = c.wd[o * c.dIn + k] * x[k]
                                    value[i * c.dOut + o] += t
                                    scale[i * c.dOut + o] += abs(t)
                                }
                            }
                        }
                        QuantMatmulTests.check(y, old: c.y0, accumulate: accumulate, rows: c.n, cols: c.dOut, ld: c.ldy,
                                               reference: (value, scale), terms: c.dIn,
                                               "\(type) \(isa) \(c.n)×\(c.dIn)→\(c.dOut) accumulate=\(accumulate)")
                    }
                }
            }
        }
    }

    /// Halves round away from zero, as `roundf` (llama.cpp's rule), not to even — checked on exact
    /// ties and their float neighbours. Each block has max |x| = 127, so dx = 1 and the scaled
    /// activation is x itself; the result must match the product with the away-from-zero codes
    /// and be far from the one with ties to even.
    @Test("rounds halves away from zero (ties and near-ties), every ISA", arguments: types)
    func roundsHalvesAwayFromZero(type: GGMLType) throws {
        let c = Case(type, n: 1, dIn: 64, dOut: 24, seed: 91)
        var block: [Float] = [127, 2.5, -2.5, 0.5, -0.5, 1.5, -1.5, 126.5, -126.5, 64.5, -64.5, 3.5, -3.5,
                              Float(0.5).nextDown, -Float(0.5).nextDown, Float(2.5).nextDown, -Float(2.5).nextUp,
                              Float(1.5).nextUp, 0, -0.0]
        while block.count < 32 { block.append(Float(block.count) - 20.5) }   // more ties: 0.5, 1.5, …
        let x = block + block.map { -$0 }
        func reference(_ rule: FloatingPointRoundingRule) -> (value: [Double], scale: [Double]) {
            let q = x.map { Double(min(max($0.rounded(rule), -127), 127)) }
            var v = [Double](repeating: 0, count: c.dOut), sc = v
            for o in 0..<c.dOut { for k in 0..<64 { v[o] += c.wd[o * 64 + k] * q[k]; sc[o] += abs(c.wd[o * 64 + k] * q[k]) } }
            return (v, sc)
        }
        let away = reference(.toNearestOrAwayFromZero), even = reference(.toNearestOrEven)
        for isa in testedInstructionSets() {
            var y = [Float](repeating: .nan, count: c.dOut)
            let st = try Runtime.withInstructionSet(isa) {
                c.w.withUnsafeBytes { pw in
                    lt_quant_matmul_int8(Int32(c.type.rawValue), 1, 64, Int64(c.dOut), x, 64, pw.baseAddress, Int64(pw.count), &y, Int64(c.dOut), 0)
                }
            }
            #expect(st == LT_OK)
            var tiesMatter = 0
            for o in 0..<c.dOut {
                let tol = 4 * QuantMatmulTests.gamma(64) * away.scale[o]
                #expect(abs(Double(y[o]) - away.value[o]) <= tol, "\(type) \(isa) output \(o)")
                if abs(away.value[o] - even.value[o]) > 10 * tol { tiesMatter += 1 }
            }
            #expect(tiesMatter > c.dOut / 2, "\(type): the ties barely change the product, so this test would not see the rule")
        }
    }

    @Test("differs from the float product (lt_quant_matmul) by at most the activations' rounding", arguments: types)
    func withinTheRoundingOfTheFloatProduct(type: GGMLType) throws {
        let c = Case(type, n: 4, dIn: 576, dOut: 64, seed: 42)
        let (st, y) = Self.int8(c, accumulate: false)
        let (sf, yf) = c.forward(accumulate: false)
        #expect(st == LT_OK && sf == LT_OK)
        var worst = 0.0
        for i in 0..<c.n {
            let half = Self.rounded(c, row: i).halfStep
            for o in 0..<c.dOut {
                var bound = 0.0, mag = 0.0
                for b in 0..<(c.dIn / 32) {
                    let w = (0..<32).map { abs(c.wd[o * c.dIn + 32 * b + $0]) }
                    bound += half[b] * w.reduce(0, +)
                    mag += (0..<32).map { w[$0] * abs(Double(c.x[i * c.ldx + 32 * b + $0])) }.reduce(0, +)
                }
                let diff = abs(Double(y[i * c.ldy + o]) - Double(yf[i * c.ldy + o]))
                #expect(diff <= bound + 2 * QuantMatmulTests.gamma(c.dIn) * (mag + bound), "\(type) [\(i), \(o)]: \(diff) > \(bound)")
                worst = max(worst, diff / bound)
            }
        }
        // The bound is not vacuous: the rounding really changes the result.
        #expect(worst > 0.01, "\(type): int8 equals float to \(worst) of the bound")
        print(String(format: "lt_quant_matmul_int8 %@: worst |int8 − float| = %.3f of the rounding bound", type.name, worst))
    }

    @Test("every instruction set and thread count gives the same bits")
    func sameBitsEverywhere() throws {
        for type in Self.types {
            let c = Case(type, n: 3, dIn: 608, dOut: 300, seed: 7)
            var results: [String: [Float]] = [:]
            for isa in testedInstructionSets() {
                for threads in [1, 2] {
                    try Runtime.withInstructionSet(isa) {
                        try Runtime.withThreadCount(threads) {
                            let (st, y) = Self.int8(c, accumulate: true)
                            #expect(st == LT_OK)
                            results["\(isa)/\(threads)"] = y
                        }
                    }
                }
            }
            let first = results.values.first!
            for (key, y) in results {
                #expect(LoRAReference.bitwiseEqual(y, first), "\(type) \(key) differs")
            }
        }
    }

    @Test("the int8 decode mode routes lt_quant_matmul's 1–8-row forwards of Q8_0/Q4_0/Q4_1 to it, nothing else")
    func decodeModeRouting() throws {
        #expect(Runtime.decodeArithmetic == .float, "LORTA_DECODE is not set in the tests")
        for type in Self.types + [.q4_K, .f32] {
            for n in [1, 8, 9] {
                let c = Case(type, n: n, dIn: 256, dOut: 40, seed: 90 + UInt64(n))
                let float = c.forward(accumulate: true).1
                let (mode, backward) = Runtime.withDecodeArithmetic(.int8) { (c.forward(accumulate: true).1, c.backward(accumulate: true).1) }
                #expect(Runtime.decodeArithmetic == .float)
                let routed = Self.types.contains(type) && n <= Int(LT_QUANT_GEMV_MAX_ROWS)
                let want = routed ? Self.int8(c, accumulate: true).1 : float
                #expect(LoRAReference.bitwiseEqual(mode, want), "\(type) n=\(n): routed \(routed)")
                if routed { #expect(!LoRAReference.bitwiseEqual(mode, float), "\(type) n=\(n): the mode changed nothing") }
                #expect(LoRAReference.bitwiseEqual(backward, c.backward(accumulate: true).1), "\(type) n=\(n): backward changed")
            }
        }
    }

    @Test("a NaN or infinity in an activation block makes that row's outputs NaN, and only that row's")
    func nonFiniteActivations() throws {
        for bad in [Float.nan, .infinity] {
            let c = Case(.q4_1, n: 2, dIn: 128, dOut: 9, seed: 3)
            var x = c.x
            x[1 * c.ldx + 70] = bad
            var y = [Float](repeating: 0, count: c.n * c.ldy)
            let st = x.withUnsafeBufferPointer { px in
                c.w.withUnsafeBytes { pw in
                    y.withUnsafeMutableBufferPointer { py in
                        lt_quant_matmul_int8(Int32(c.type.rawValue), 2, Int64(c.dIn), Int64(c.dOut), px.baseAddress, Int64(c.ldx),
                                             pw.baseAddress, Int64(pw.count), py.baseAddress, Int64(c.ldy), 0)
                    }
                }
            }
            #expect(st == LT_OK)
            #expect((0..<c.dOut).allSatisfy { y[c.ldy + $0].isNaN }, "\(bad)")
            #expect((0..<c.dOut).allSatisfy { y[$0].isFinite }, "\(bad)")
        }
    }

    @Test("invalid or unsupported arguments give their status and write nothing")
    func arguments() throws {
        let c = Case(.q8_0, n: 2, dIn: 64, dOut: 5, seed: 1)
        #expect(Self.int8(c, accumulate: false, n: 9).0 == LT_ERR_UNSUPPORTED)
        #expect(Self.int8(c, accumulate: false, wBytes: c.w.count - 1).0 == LT_ERR_INVALID_ARGUMENT)
        let k = Case(.q4_K, n: 1, dIn: 256, dOut: 3, seed: 1)
        #expect(Self.int8(k, accumulate: false).0 == LT_ERR_UNSUPPORTED)
        var y = c.y0
        let st = c.x.withUnsafeBufferPointer { px in
            y.withUnsafeMutableBufferPointer { py in
                lt_quant_matmul_int8(Int32(c.type.rawValue), 2, 48, 5, px.baseAddress, Int64(c.ldx), nil, 0, py.baseAddress, Int64(c.ldy), 0)
            }
        }
        #expect(st == LT_ERR_INVALID_ARGUMENT, "d_in not a multiple of 32")
        let null = c.x.withUnsafeBufferPointer { px in
            y.withUnsafeMutableBufferPointer { py in
                lt_quant_matmul_int8(Int32(c.type.rawValue), 2, 64, 5, px.baseAddress, Int64(c.ldx), nil, 0, py.baseAddress, Int64(c.ldy), 0)
            }
        }
        #expect(null == LT_ERR_INVALID_ARGUMENT, "no weight bytes for 5 rows")
        #expect(LoRAReference.bitwiseEqual(y, c.y0), "an error wrote into Y")
        let (ok, out) = Self.int8(c, accumulate: false)
        #expect(ok == LT_OK)
        for i in 0..<c.n { for j in c.dOut..<c.ldy { #expect(out[i * c.ldy + j] == QuantMatmulTests.sentinel) } }
    }
}
