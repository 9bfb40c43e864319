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
/// For Q4_1 and Q4_K the reference's magnitude counts the two parts of each weight apart
/// (|d·q| + |m|, |d·sc·q| + |dmin·m|: the kernel applies them separately), obtained from
/// lt_dequantize of W with the minimum scales, then the main scales, zeroed.
/// The lane arithmetic is the same in every variant, so the ISAs, the kernel variants
/// (portable, AVX2, AVX2 + AVX-VNNI, AVX-512 VNNI: lt_quant_matmul_int8_kernel) and thread
/// counts must agree bit for bit.
@Suite("Quantized matmul with int8 activations (lt_quant_matmul_int8)", .serialized)
struct QuantInt8Tests {
    static let types: [GGMLType] = [.q8_0, .q4_0, .q4_1]
    /// Super-blocks of 256 (d_in a multiple of 256).
    static let kTypes: [GGMLType] = [.q4_K, .q6_K]
    static let allTypes = types + kTypes
    typealias Case = QuantMatmulTests.Case

    /// The kernel variants, named; those this CPU lacks are reported and skipped.
    static let kernels: [(id: Int32, name: String)] = [
        (Int32(LT_INT8_KERNEL_PORTABLE), "portable"), (Int32(LT_INT8_KERNEL_AVX2), "avx2"),
        (Int32(LT_INT8_KERNEL_AVX_VNNI), "avx2+avx-vnni"), (Int32(LT_INT8_KERNEL_AVX512_VNNI), "avx512-vnni"),
    ]
    static func testedKernels() -> [(id: Int32, name: String)] {
        let have = kernels.filter { lt_quant_int8_kernel_supported($0.id) == 1 }
        let missing = kernels.filter { lt_quant_int8_kernel_supported($0.id) != 1 }.map(\.name)
        print("int8 kernels tested: \(have.map(\.name).joined(separator: " ")) (not on this CPU: \(missing.isEmpty ? "none" : missing.joined(separator: " ")))")
        return have
    }

    /// |w| with the two parts of a weight counted apart (Q4_1: |d·q| + |m|; Q4_K:
    /// |d·sc·q| + |dmin·m|), from lt_dequantize of W with one of the two block scales zeroed;
    /// |w| for the other types.
    static func partsMagnitude(_ c: Case) -> [Double] {
        let second: Int   // byte offset of the minimum's f16 scale in a block
        switch c.type {
        case .q4_1, .q4_K: second = 2
        default: return c.wd.map(abs)
        }
        func zeroed(_ at: Int) -> [Double] {
            var w = c.w
            for o in stride(from: 0, to: w.count, by: c.type.blockBytes) { w[o + at] = 0; w[o + at + 1] = 0 }
            return QuantMatmulTests.dequantized(c.type, w, count: c.dOut * c.dIn)
        }
        let main = zeroed(second), minimum = zeroed(0)
        return (0..<main.count).map { abs(main[$0]) + abs(minimum[$0]) }
    }

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

    /// lt_quant_matmul_int8, or lt_quant_matmul_int8_kernel with `kernel`.
    static func int8(_ c: Case, accumulate: Bool, n: Int? = nil, dIn: Int? = nil, wBytes: Int? = nil,
                     kernel: Int32? = nil) -> (lt_status, [Float]) {
        var y = c.y0
        let st = c.x.withUnsafeBufferPointer { px in
            c.w.withUnsafeBytes { pw in
                y.withUnsafeMutableBufferPointer { py in
                    let args = (Int32(c.type.rawValue), Int64(n ?? c.n), Int64(dIn ?? c.dIn), Int64(c.dOut))
                    if let kernel {
                        return lt_quant_matmul_int8_kernel(kernel, args.0, args.1, args.2, args.3, px.baseAddress, Int64(c.ldx),
                                                           pw.baseAddress, Int64(wBytes ?? pw.count), py.baseAddress,
                                                           Int64(c.ldy), accumulate ? 1 : 0)
                    }
                    return lt_quant_matmul_int8(args.0, args.1, args.2, args.3, px.baseAddress, Int64(c.ldx), pw.baseAddress,
                                                Int64(wBytes ?? pw.count), py.baseAddress, Int64(c.ldy), accumulate ? 1 : 0)
                }
            }
        }
        return (st, y)
    }

    /// d_in with an odd block count (a block paired with zeros) and whole chunks of 16 blocks;
    /// for the K types 1, 2, 3 and 6 super-blocks (6: a chunk of 16 blocks and a half).
    static let shapes: [(n: Int, dIn: Int, dOut: Int)] = [(1, 96, 37), (2, 576, 45), (3, 608, 33), (8, 1536, 9), (5, 32, 70)]
    static let kShapes: [(n: Int, dIn: Int, dOut: Int)] = [(1, 256, 37), (2, 512, 45), (3, 768, 33), (8, 1536, 9), (5, 256, 70)]
    static func shapes(_ type: GGMLType) -> [(n: Int, dIn: Int, dOut: Int)] { kTypes.contains(type) ? kShapes : shapes }
    /// A d_in of a few blocks for every type.
    static func dIn(_ type: GGMLType, _ blocks32: Int) -> Int { kTypes.contains(type) ? 256 * ((blocks32 + 7) / 8) : 32 * blocks32 }

    /// The float64 product of the dequantized W with the rounded activations, and its magnitude
    /// (the parts of each weight apart, partsMagnitude).
    static func reference(_ c: Case) -> (value: [Double], scale: [Double]) {
        let parts = partsMagnitude(c)
        var value = [Double](repeating: 0, count: c.n * c.dOut), scale = value
        for i in 0..<c.n {
            let x = rounded(c, row: i).value
            for o in 0..<c.dOut {
                for k in 0..<c.dIn {
                    value[i * c.dOut + o] += c.wd[o * c.dIn + k] * x[k]
                    scale[i * c.dOut + o] += parts[o * c.dIn + k] * abs(x[k])
                }
            }
        }
        return (value, scale)
    }

    @Test("matches the float64 product of the dequantized weights and the rounded activations, every ISA and kernel",
          arguments: allTypes)
    func matchesReference(type: GGMLType) throws {
        let kernels = Self.testedKernels()
        for (index, s) in Self.shapes(type).enumerated() {
            let c = Case(type, n: s.n, dIn: s.dIn, dOut: s.dOut, seed: 500 + UInt64(index))
            let ref = Self.reference(c)
            for accumulate in [false, true] {
                var runs: [(String, lt_status, [Float])] = []
                for isa in testedInstructionSets() {
                    let (st, y) = try Runtime.withInstructionSet(isa) { Self.int8(c, accumulate: accumulate) }
                    runs.append(("isa=\(isa)", st, y))
                }
                for k in kernels {
                    let (st, y) = Self.int8(c, accumulate: accumulate, kernel: k.id)
                    runs.append((k.name, st, y))
                }
                for (name, st, y) in runs {
                    #expect(st == LT_OK, "\(type) \(name)")
                    QuantMatmulTests.check(y, old: c.y0, accumulate: accumulate, rows: c.n, cols: c.dOut, ld: c.ldy,
                                           reference: ref, terms: c.dIn,
                                           "\(type) \(name) \(c.n)×\(c.dIn)→\(c.dOut) accumulate=\(accumulate)")
                }
            }
        }
    }

    /// The bound of the reference test is not vacuous: its error is a small fraction of a
    /// float32 sum's, but a wrong scale (e.g. a neighbouring sub-block's) is far outside it.
    @Test("the K types' reference check sees a wrong sub-block scale", arguments: kTypes)
    func referenceSeesWrongScales(type: GGMLType) throws {
        let c = Case(type, n: 2, dIn: 512, dOut: 20, seed: 77)
        var w = c.w   // swap two scale bytes of every super-block: sub-blocks 0 and 1 (Q6_K) / scales of 0 and 1 (Q4_K)
        let at = type == .q4_K ? 4 : 192
        for o in stride(from: 0, to: w.count, by: type.blockBytes) { w.swapAt(o + at, o + at + 1) }
        var y = c.y0
        let st = c.x.withUnsafeBufferPointer { px in
            w.withUnsafeBytes { pw in
                y.withUnsafeMutableBufferPointer { py in
                    lt_quant_matmul_int8(Int32(type.rawValue), Int64(c.n), Int64(c.dIn), Int64(c.dOut), px.baseAddress, Int64(c.ldx),
                                         pw.baseAddress, Int64(pw.count), py.baseAddress, Int64(c.ldy), 0)
                }
            }
        }
        #expect(st == LT_OK)
        let ref = Self.reference(c)
        var outside = 0
        for i in 0..<c.n {
            for o in 0..<c.dOut where abs(Double(y[i * c.ldy + o]) - ref.value[i * c.dOut + o]) > QuantMatmulTests.gamma(c.dIn) * ref.scale[i * c.dOut + o] {
                outside += 1
            }
        }
        #expect(outside > c.n * c.dOut / 2, "\(type): swapped scales stay within the bound for \(c.n * c.dOut - outside) outputs")
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

    @Test("differs from the float product (lt_quant_matmul) by at most the activations' rounding", arguments: allTypes)
    func withinTheRoundingOfTheFloatProduct(type: GGMLType) throws {
        let c = Case(type, n: 4, dIn: Self.dIn(type, 18), dOut: 64, seed: 42)
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

    @Test("every instruction set, kernel variant and thread count gives the same bits")
    func sameBitsEverywhere() throws {
        let kernels = Self.testedKernels()
        for type in Self.allTypes {
            let c = Case(type, n: 3, dIn: Self.dIn(type, 19), dOut: 300, seed: 7)
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
            for k in kernels {
                for threads in [1, 2] {
                    try Runtime.withThreadCount(threads) {
                        let (st, y) = Self.int8(c, accumulate: true, kernel: k.id)
                        #expect(st == LT_OK)
                        results["\(k.name)/\(threads)"] = y
                    }
                }
                // every row tile (4 W rows × 2, 1 activation rows and the remainders) in each variant
                let c8 = Case(type, n: 8, dIn: Self.dIn(type, 19), dOut: 39, seed: 8)
                for n in [1, 2, 7, 8] {
                    let (st, y) = Self.int8(c8, accumulate: false, n: n, kernel: k.id)
                    let (sp, yp) = Self.int8(c8, accumulate: false, n: n, kernel: Int32(LT_INT8_KERNEL_PORTABLE))
                    #expect(st == LT_OK && sp == LT_OK)
                    #expect(LoRAReference.bitwiseEqual(y, yp), "\(type) \(k.name) n=\(n) differs from the portable kernel")
                }
            }
            let first = results.values.first!
            for (key, y) in results {
                #expect(LoRAReference.bitwiseEqual(y, first), "\(type) \(key) differs")
            }
        }
    }

    @Test("the int8 decode mode routes lt_quant_matmul's 1–8-row forwards of Q8_0/Q4_0/Q4_1/Q4_K/Q6_K to it, nothing else")
    func decodeModeRouting() throws {
        #expect(Runtime.decodeArithmetic == .float, "LORTA_DECODE is not set in the tests")
        for type in Self.allTypes + [.q5_K, .f32] {
            for n in [1, 8, 9] {
                let c = Case(type, n: n, dIn: 256, dOut: 40, seed: 90 + UInt64(n))
                let float = c.forward(accumulate: true).1
                let (mode, backward) = Runtime.withDecodeArithmetic(.int8) { (c.forward(accumulate: true).1, c.backward(accumulate: true).1) }
                #expect(Runtime.decodeArithmetic == .float)
                let routed = Self.allTypes.contains(type) && n <= Int(LT_QUANT_GEMV_MAX_ROWS)
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
        let k5 = Case(.q5_K, n: 1, dIn: 256, dOut: 3, seed: 1)
        #expect(Self.int8(k5, accumulate: false).0 == LT_ERR_UNSUPPORTED)
        for type in Self.kTypes {
            let k = Case(type, n: 2, dIn: 512, dOut: 5, seed: 2)
            #expect(Self.int8(k, accumulate: false, n: 9).0 == LT_ERR_UNSUPPORTED, "\(type)")
            #expect(Self.int8(k, accumulate: false, wBytes: k.w.count - 1).0 == LT_ERR_INVALID_ARGUMENT, "\(type) short W")
            #expect(Self.int8(k, accumulate: false, dIn: 288).0 == LT_ERR_INVALID_ARGUMENT, "\(type) d_in not whole super-blocks")
            #expect(Self.int8(k, accumulate: false, dIn: 0).0 == LT_OK, "\(type) d_in 0")
            for kernel in Self.kernels {
                let st = Self.int8(k, accumulate: false, wBytes: k.w.count - 1, kernel: kernel.id).0
                #expect(st == (lt_quant_int8_kernel_supported(kernel.id) == 1 ? LT_ERR_INVALID_ARGUMENT : LT_ERR_UNSUPPORTED_ISA),
                        "\(type) \(kernel.name) short W")
            }
            #expect(Self.int8(k, accumulate: false, kernel: 4).0 == LT_ERR_INVALID_ARGUMENT, "unknown kernel")
            #expect(Self.int8(k, accumulate: false, kernel: -1).0 == LT_ERR_INVALID_ARGUMENT, "unknown kernel")
            var y = k.y0
            let st = k.x.withUnsafeBufferPointer { px in
                k.w.withUnsafeBytes { pw in
                    y.withUnsafeMutableBufferPointer { py in
                        lt_quant_matmul_int8(Int32(type.rawValue), 2, 512, 5, px.baseAddress, 511, pw.baseAddress, Int64(pw.count),
                                             py.baseAddress, Int64(k.ldy), 0)
                    }
                }
            }
            #expect(st == LT_ERR_INVALID_ARGUMENT, "\(type) ldx < d_in")
            #expect(LoRAReference.bitwiseEqual(y, k.y0), "\(type): an error wrote into Y")
        }
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

    @Test("lt_quant_matmul_int8 picks the VNNI kernel of each instruction set when the CPU has it")
    func kernelChoice() throws {
        for isa in testedInstructionSets() {
            let kernel = try Runtime.withInstructionSet(isa) { lt_quant_int8_kernel() }
            let want: Int32
            switch isa {
            case .scalar: want = Int32(LT_INT8_KERNEL_PORTABLE)
            case .avx2: want = Int32(lt_cpu_has_avx_vnni() == 1 ? LT_INT8_KERNEL_AVX_VNNI : LT_INT8_KERNEL_AVX2)
            case .avx512:
                want = Int32(lt_quant_int8_kernel_supported(Int32(LT_INT8_KERNEL_AVX512_VNNI)) == 1 ? LT_INT8_KERNEL_AVX512_VNNI
                             : lt_cpu_has_avx_vnni() == 1 ? LT_INT8_KERNEL_AVX_VNNI : LT_INT8_KERNEL_AVX2)
            }
            #expect(kernel == want, "\(isa): kernel \(kernel), want \(want)")
            print("lt_quant_matmul_int8 under \(isa): kernel \(Self.kernels.first { $0.id == kernel }?.name ?? "?")")
        }
    }
}
