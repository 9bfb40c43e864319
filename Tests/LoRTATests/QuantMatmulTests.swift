import Testing
import CKernels
@testable import LoRTA

/// Products with stored (quantized) matrices: lt_quant_matmul and lt_quant_matmul_backward_input
/// (lt_quant.h), checked against an independent reference — W dequantized with lt_dequantize
/// (bit-exact with the gguf Python package, tested in the GGUF suites) and multiplied naively
/// in float64.
///
/// Error bound. Every product uses exactly the dequantized weights; the kernels only choose
/// the summation order (lanes, fma chains, tiles). For any order, a float32 sum of K products
/// (fma or separately rounded) plus an accumulated old value is within
/// γ_{K+2} · (Σ_k |x_k w_k| + |y_old|) of the exact value, γ_m = m·u / (1 − m·u), u = 2⁻²⁴
/// (Higham, Accuracy and Stability of Numerical Algorithms, §3.1). The tests assert that bound
/// per element; with the shapes below (K <= 512) it is at most 3.1e-5 relative to Σ|x·w|, and
/// at most 1.2e-5 for K <= 192. A single wrong weight or a missing block would show up as an
/// error of about |x_k w_k| ≈ Σ|x·w| / K, i.e. 100 times larger.
///
/// Test data: random bytes for the codes with sane float16 scales written into every block
/// (random bytes there would give infinities and NaNs), random activations in [-1, 1).
/// X and dY rows carry NaN padding (reading it would poison a result); Y and dX rows carry a
/// sentinel padding that must survive.
@Suite("Quantized matmul (lt_quant_matmul)", .serialized)
struct QuantMatmulTests {
    static let types: [GGMLType] = [.f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K]
    static let rowCounts = [1, 2, 7, 8, 9, 33, 128, 300]
    static let sentinel: Float = 777

    // MARK: test data

    /// Random stored matrix `rows × cols` of `type`, valid scales in every block.
    static func randomMatrix(_ type: GGMLType, rows: Int, cols: Int, rng: inout LoRATestRNG) -> [UInt8] {
        let count = rows * type.byteCount(elements: cols)!
        var b = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        /// A float16 of magnitude 2^(e−15) · (1 + m/1024) with e in `exps`.
        func half(_ exps: ClosedRange<UInt16>, negative: Bool = false, _ rng: inout LoRATestRNG) -> UInt16 {
            let e = exps.lowerBound + UInt16(rng.next() % UInt64(exps.count))
            return (negative ? 0x8000 : 0) | (e << 10) | UInt16(rng.next() % 1024)
        }
        func put(_ v: UInt16, _ at: Int) { b[at] = UInt8(v & 0xFF); b[at + 1] = UInt8(v >> 8) }
        switch type {
        case .f32:
            for i in 0..<(count / 4) {
                let bits = rng.uniform().bitPattern
                for k in 0..<4 { b[4 * i + k] = UInt8((bits >> (8 * UInt32(k))) & 0xFF) }
            }
        case .f16:
            for i in 0..<(count / 2) { put(half(10...15, negative: rng.next() & 1 == 1, &rng), 2 * i) }
        case .bf16:
            for i in 0..<(count / 2) { put(UInt16(rng.uniform().bitPattern >> 16), 2 * i) }
        default:
            let bb = type.blockBytes
            for blk in 0..<(count / bb) {
                let o = blk * bb
                switch type {
                case .q4_0, .q5_0, .q8_0: put(half(8...10, &rng), o)
                case .q4_1, .q5_1: put(half(8...10, &rng), o); put(half(10...12, negative: true, &rng), o + 2)
                case .q4_K, .q5_K: put(half(6...8, &rng), o); put(half(6...8, &rng), o + 2)
                case .q6_K: put(half(6...8, &rng), o + 208)
                default: fatalError("no test data for \(type)")
                }
            }
        }
        return b
    }

    /// W dequantized by lt_dequantize (the reference decoder), as Double.
    static func dequantized(_ type: GGMLType, _ w: [UInt8], count: Int) -> [Double] {
        var out = [Float](repeating: .nan, count: max(count, 1))
        let st = w.withUnsafeBytes { pw in
            out.withUnsafeMutableBufferPointer { po in
                lt_dequantize(Int32(type.rawValue), pw.baseAddress, Int64(pw.count), Int64(count), po.baseAddress)
            }
        }
        precondition(st == LT_OK)
        return out.prefix(count).map(Double.init)
    }

    /// The error bound of a sum of `terms` products (see the suite comment).
    static func gamma(_ terms: Int) -> Double {
        let u = 0x1p-24, m = Double(terms + 2)
        return m * u / (1 - m * u)
    }

    /// One problem: W [dOut × dIn] of `type`, activations and old outputs for both directions.
    struct Case {
        let type: GGMLType
        let n, dIn, dOut: Int
        let w: [UInt8]
        let wd: [Double]                   // dOut × dIn
        let ldx, ldy: Int                  // forward: X n × dIn (ldx), Y n × dOut (ldy)
        let x, y0: [Float]
        let lddy, lddx: Int                // backward: dY n × dOut (lddy), dX n × dIn (lddx)
        let dy, dx0: [Float]

        init(_ type: GGMLType, n: Int, dIn: Int, dOut: Int, seed: UInt64) {
            var rng = LoRATestRNG(seed: seed)
            self.type = type; self.n = n; self.dIn = dIn; self.dOut = dOut
            w = QuantMatmulTests.randomMatrix(type, rows: dOut, cols: dIn, rng: &rng)
            wd = QuantMatmulTests.dequantized(type, w, count: dOut * dIn)
            ldx = dIn + 5; ldy = dOut + 3; lddy = dOut + 2; lddx = dIn + 4
            x = rng.padded(rows: n, cols: dIn, ld: ldx)
            y0 = rng.padded(rows: n, cols: dOut, ld: ldy, pad: QuantMatmulTests.sentinel)
            dy = rng.padded(rows: n, cols: dOut, ld: lddy)
            dx0 = rng.padded(rows: n, cols: dIn, ld: lddx, pad: QuantMatmulTests.sentinel)
        }

        var workspaceFloats: Int {
            var f: Int64 = -1
            precondition(lt_quant_matmul_workspace_size(Int32(type.rawValue), Int64(n), Int64(dIn), Int64(dOut), &f) == LT_OK)
            return Int(f)
        }

        func forward(accumulate: Bool, workspace: Int? = nil) -> (lt_status, [Float]) {
            var y = y0
            var ws = [Float](repeating: .nan, count: max(workspace ?? workspaceFloats, 1))
            let floats = workspace ?? workspaceFloats
            let st = x.withUnsafeBufferPointer { px in
                w.withUnsafeBytes { pw in
                    y.withUnsafeMutableBufferPointer { py in
                        ws.withUnsafeMutableBufferPointer { pws in
                            lt_quant_matmul(Int32(type.rawValue), Int64(n), Int64(dIn), Int64(dOut), px.baseAddress, Int64(ldx),
                                            pw.baseAddress, Int64(pw.count), py.baseAddress, Int64(ldy), accumulate ? 1 : 0,
                                            pws.baseAddress, Int64(floats))
                        }
                    }
                }
            }
            return (st, y)
        }

        func backward(accumulate: Bool, workspace: Int? = nil) -> (lt_status, [Float]) {
            var dx = dx0
            var ws = [Float](repeating: .nan, count: max(workspace ?? workspaceFloats, 1))
            let floats = workspace ?? workspaceFloats
            let st = dy.withUnsafeBufferPointer { pdy in
                w.withUnsafeBytes { pw in
                    dx.withUnsafeMutableBufferPointer { pdx in
                        ws.withUnsafeMutableBufferPointer { pws in
                            lt_quant_matmul_backward_input(Int32(type.rawValue), Int64(n), Int64(dIn), Int64(dOut),
                                                           pdy.baseAddress, Int64(lddy), pw.baseAddress, Int64(pw.count),
                                                           pdx.baseAddress, Int64(lddx), accumulate ? 1 : 0,
                                                           pws.baseAddress, Int64(floats))
                        }
                    }
                }
            }
            return (st, dx)
        }

        /// float64 X·Wᵀ and Σ|x·w| per element (n × dOut, contiguous).
        func forwardReference() -> (value: [Double], scale: [Double]) {
            var v = [Double](repeating: 0, count: n * dOut), s = v
            for i in 0..<n {
                for o in 0..<dOut {
                    var acc = 0.0, mag = 0.0
                    for k in 0..<dIn {
                        let t = Double(x[i * ldx + k]) * wd[o * dIn + k]
                        acc += t; mag += abs(t)
                    }
                    v[i * dOut + o] = acc; s[i * dOut + o] = mag
                }
            }
            return (v, s)
        }

        /// float64 dY·W and Σ|dy·w| per element (n × dIn, contiguous).
        func backwardReference() -> (value: [Double], scale: [Double]) {
            var v = [Double](repeating: 0, count: n * dIn), s = v
            for i in 0..<n {
                for o in 0..<dOut {
                    let g = Double(dy[i * lddy + o])
                    for k in 0..<dIn {
                        let t = g * wd[o * dIn + k]
                        v[i * dIn + k] += t; s[i * dIn + k] += abs(t)
                    }
                }
            }
            return (v, s)
        }
    }

    /// Checks one result against the reference: the bound per element, the padding untouched.
    /// Returns the worst error relative to Σ|x·w| + |y_old|.
    @discardableResult
    static func check(_ out: [Float], old: [Float], accumulate: Bool, rows: Int, cols: Int, ld: Int,
                      reference: (value: [Double], scale: [Double]), terms: Int, _ what: String) -> Double {
        var worst = 0.0
        for i in 0..<rows {
            for j in 0..<cols {
                let o = accumulate ? Double(old[i * ld + j]) : 0
                let want = reference.value[i * cols + j] + o
                let scale = reference.scale[i * cols + j] + abs(o)
                let err = abs(Double(out[i * ld + j]) - want)
                let rel = scale > 0 ? err / scale : err
                worst = max(worst, rel)
                if !(err <= gamma(terms) * scale) {
                    Issue.record("\(what): [\(i), \(j)] = \(out[i * ld + j]), want \(want) (relative error \(rel))")
                    return worst
                }
            }
            for j in cols..<ld where out[i * ld + j] != sentinel {
                Issue.record("\(what): padding [\(i), \(j)] overwritten")
                return worst
            }
        }
        return worst
    }

    /// Shapes per type: d_in whole blocks (a ragged multiple of 32 for the float types) and odd
    /// d_out.
    static func dIn(_ type: GGMLType) -> Int {
        switch type.blockElements {
        case 256: return 512
        case 32: return 160
        default: return 77
        }
    }

    /// Forward and backward, both accumulate modes, every row count, on one ISA.
    static func checkAgainstReference(_ isa: InstructionSet, _ type: GGMLType) throws {
        var worst = (decode: 0.0, batched: 0.0)
        try Runtime.withInstructionSet(isa) {
            for (index, n) in rowCounts.enumerated() {
                let c = Case(type, n: n, dIn: dIn(type), dOut: 37, seed: UInt64(index) &* 7919 &+ UInt64(type.rawValue))
                let fref = c.forwardReference(), bref = c.backwardReference()
                for accumulate in [false, true] {
                    let what = "\(type) \(isa) n=\(n) accumulate=\(accumulate)"
                    let (st, y) = c.forward(accumulate: accumulate)
                    #expect(st == LT_OK, "\(what) forward status \(st)")
                    let ef = check(y, old: c.y0, accumulate: accumulate, rows: n, cols: c.dOut, ld: c.ldy,
                                   reference: fref, terms: c.dIn, "\(what) forward")
                    let (sb, dx) = c.backward(accumulate: accumulate)
                    #expect(sb == LT_OK, "\(what) backward status \(sb)")
                    let eb = check(dx, old: c.dx0, accumulate: accumulate, rows: n, cols: c.dIn, ld: c.lddx,
                                   reference: bref, terms: c.dOut, "\(what) backward")
                    if n <= Int(LT_QUANT_GEMV_MAX_ROWS) { worst.decode = max(worst.decode, ef, eb) }
                    else { worst.batched = max(worst.batched, ef, eb) }
                }
            }
        }
        print(String(format: "lt_quant_matmul %@ %@: worst |error| / (Σ|x·w| + |y_old|) decode-sized %.2e, batched %.2e",
                     type.name, isa.rawValue, worst.decode, worst.batched))
    }

    // MARK: accuracy per ISA

    @Test("portable kernels match dequantize + float64 matmul (every type, n ∈ {1,2,7,8,9,33,128,300})",
          arguments: types)
    func scalarMatchesReference(type: GGMLType) throws {
        try Self.checkAgainstReference(.scalar, type)
    }

    @Test("AVX2 kernels match dequantize + float64 matmul", .enabled(if: Runtime.availableInstructionSets.contains(.avx2)),
          arguments: types)
    func avx2MatchesReference(type: GGMLType) throws {
        try Self.checkAgainstReference(.avx2, type)
    }

    @Test("AVX-512 kernels match dequantize + float64 matmul", .enabled(if: Runtime.availableInstructionSets.contains(.avx512)),
          arguments: types)
    func avx512MatchesReference(type: GGMLType) throws {
        try Self.checkAgainstReference(.avx512, type)
    }

    @Test("each SIMD path agrees with the portable one within twice the bound",
          .enabled(if: Runtime.availableInstructionSets.count > 1), arguments: types)
    func simdAgreesWithScalar(type: GGMLType) throws {
        let simd = testedInstructionSets().filter { $0 != .scalar }
        for (index, n) in [1, 5, 64].enumerated() {
            let c = Case(type, n: n, dIn: Self.dIn(type), dOut: 45, seed: 500 + UInt64(index))
            let (_, ys) = try Runtime.withInstructionSet(.scalar) { c.forward(accumulate: false) }
            let (_, dxs) = try Runtime.withInstructionSet(.scalar) { c.backward(accumulate: false) }
            let fref = c.forwardReference(), bref = c.backwardReference()
            for isa in simd {
                let (_, y) = try Runtime.withInstructionSet(isa) { c.forward(accumulate: false) }
                let (_, dx) = try Runtime.withInstructionSet(isa) { c.backward(accumulate: false) }
                for i in 0..<n {
                    for o in 0..<c.dOut {
                        let tol = 2 * Self.gamma(c.dIn) * fref.scale[i * c.dOut + o]
                        #expect(abs(Double(y[i * c.ldy + o]) - Double(ys[i * c.ldy + o])) <= tol, "\(type) \(isa) n=\(n) y[\(i),\(o)]")
                    }
                    for k in 0..<c.dIn {
                        let tol = 2 * Self.gamma(c.dOut) * bref.scale[i * c.dIn + k]
                        #expect(abs(Double(dx[i * c.lddx + k]) - Double(dxs[i * c.lddx + k])) <= tol, "\(type) \(isa) n=\(n) dx[\(i),\(k)]")
                    }
                }
            }
        }
    }

    @Test("long rows (d_in > 4096: block scales prepared in chunks) match the reference on every ISA",
          arguments: [GGMLType.q4_1, .q8_0, .q5_1, .q4_K, .q6_K, .f32])
    func longRows(type: GGMLType) throws {
        let dIn = type == .f32 ? 4100 : 4352          // 136 units of 32 (17 K blocks); F32 ragged
        let isas = testedInstructionSets()
        for n in [1, 3, 12] {
            let c = Case(type, n: n, dIn: dIn, dOut: 13, seed: 31 &+ UInt64(n))
            let fref = c.forwardReference(), bref = c.backwardReference()
            for isa in isas {
                try Runtime.withInstructionSet(isa) {
                    let (st, y) = c.forward(accumulate: true)
                    #expect(st == LT_OK)
                    Self.check(y, old: c.y0, accumulate: true, rows: n, cols: c.dOut, ld: c.ldy, reference: fref,
                               terms: dIn, "\(type) \(isa) n=\(n) forward")
                    let (sb, dx) = c.backward(accumulate: false)
                    #expect(sb == LT_OK)
                    Self.check(dx, old: c.dx0, accumulate: false, rows: n, cols: dIn, ld: c.lddx, reference: bref,
                               terms: c.dOut, "\(type) \(isa) n=\(n) backward")
                }
            }
        }
        // With K = 4352 the bound no longer separates one wrong weight from rounding: check the
        // weights themselves with one-hot activations.
        for isa in isas { try Self.checkOneHot(isa, type, dIn: dIn, dOut: 13) }
    }

    /// One-hot activations pick single weights: with X = rows of the identity, Y = X·Wᵀ holds
    /// the weights themselves (every other product is ±0), so the fused decoders and the packed
    /// panels must reproduce lt_dequantize exactly. Checked on the decode-sized path (8 one-hot
    /// rows per call) and the batched one (all d_in one-hot rows in one call), forward and
    /// backward (dY one-hot → rows of W), on every ISA.
    static func checkOneHot(_ isa: InstructionSet, _ type: GGMLType, dIn: Int? = nil, dOut: Int = 37) throws {
        let dIn = dIn ?? Self.dIn(type)
        var rng = LoRATestRNG(seed: 4242 &+ UInt64(type.rawValue))
        let w = randomMatrix(type, rows: dOut, cols: dIn, rng: &rng)
        let wd = dequantized(type, w, count: dOut * dIn).map { Float($0) }
        func forward(rows ks: [Int]) -> [Float] {
            let n = ks.count
            var x = [Float](repeating: 0, count: n * dIn)
            for (i, k) in ks.enumerated() { x[i * dIn + k] = 1 }
            var y = [Float](repeating: .nan, count: n * dOut)
            var f: Int64 = 0
            _ = lt_quant_matmul_workspace_size(Int32(type.rawValue), Int64(n), Int64(dIn), Int64(dOut), &f)
            var ws = [Float](repeating: 0, count: max(Int(f), 1))
            let st = w.withUnsafeBytes { pw in
                lt_quant_matmul(Int32(type.rawValue), Int64(n), Int64(dIn), Int64(dOut), x, Int64(dIn), pw.baseAddress,
                                Int64(pw.count), &y, Int64(dOut), 0, &ws, f)
            }
            #expect(st == LT_OK)
            return y
        }
        func backward(rows os: [Int]) -> [Float] {
            let n = os.count
            var dy = [Float](repeating: 0, count: n * dOut)
            for (i, o) in os.enumerated() { dy[i * dOut + o] = 1 }
            var dx = [Float](repeating: .nan, count: n * dIn)
            var f: Int64 = 0
            _ = lt_quant_matmul_workspace_size(Int32(type.rawValue), Int64(n), Int64(dIn), Int64(dOut), &f)
            var ws = [Float](repeating: 0, count: max(Int(f), 1))
            let st = w.withUnsafeBytes { pw in
                lt_quant_matmul_backward_input(Int32(type.rawValue), Int64(n), Int64(dIn), Int64(dOut), dy, Int64(dOut),
                                               pw.baseAddress, Int64(pw.count), &dx, Int64(dIn), 0, &ws, f)
            }
            #expect(st == LT_OK)
            return dx
        }
        try Runtime.withInstructionSet(isa) {
            var mismatches = 0
            // decode-sized: 8 columns of W at a time
            for k0 in stride(from: 0, to: dIn, by: 8) {
                let ks = Array(k0..<min(k0 + 8, dIn))
                let y = forward(rows: ks)
                for (i, k) in ks.enumerated() { for o in 0..<dOut where y[i * dOut + o] != wd[o * dIn + k] { mismatches += 1 } }
            }
            // batched: the whole identity
            let y = forward(rows: Array(0..<dIn))
            for k in 0..<dIn { for o in 0..<dOut where y[k * dOut + o] != wd[o * dIn + k] { mismatches += 1 } }
            // backward, both paths
            for os in [Array(0..<8), Array(0..<dOut)] {
                let dx = backward(rows: os)
                for (i, o) in os.enumerated() { for k in 0..<dIn where dx[i * dIn + k] != wd[o * dIn + k] { mismatches += 1 } }
            }
            #expect(mismatches == 0, "\(type) \(isa): \(mismatches) products differ from the dequantized weights")
        }
    }

    @Test("one-hot activations return exactly the dequantized weights (portable)", arguments: types)
    func oneHotScalar(type: GGMLType) throws { try Self.checkOneHot(.scalar, type) }

    @Test("one-hot activations return exactly the dequantized weights (AVX2)",
          .enabled(if: Runtime.availableInstructionSets.contains(.avx2)), arguments: types)
    func oneHotAVX2(type: GGMLType) throws { try Self.checkOneHot(.avx2, type) }

    @Test("one-hot activations return exactly the dequantized weights (AVX-512)",
          .enabled(if: Runtime.availableInstructionSets.contains(.avx512)), arguments: types)
    func oneHotAVX512(type: GGMLType) throws { try Self.checkOneHot(.avx512, type) }

    // MARK: threads and workspace

    /// Shapes where every path splits into many tasks above the parallel threshold: decode
    /// forward (row chunks), decode backward (column chunks), batched forward and backward
    /// (GEMM task blocks).
    static let threadShapes: [(type: GGMLType, n: Int, dIn: Int, dOut: Int)] = [
        (.q4_1, 1, 576, 3072), (.q8_0, 4, 576, 1536), (.q4_K, 1, 1536, 1024), (.q6_K, 3, 1024, 768),
        (.f32, 2, 576, 1024), (.bf16, 1, 1024, 1024),
        (.q4_1, 128, 576, 960), (.q8_0, 33, 576, 1536), (.q6_K, 100, 1536, 1000), (.f32, 64, 300, 700),
        (.f16, 17, 1024, 576),
    ]

    @Test("1 and 2 threads give bitwise identical results on every path (several tasks per thread)")
    func threadCountIndependence() throws {
        let isas = testedInstructionSets()
        for (index, s) in Self.threadShapes.enumerated() {
            let c = Case(s.type, n: s.n, dIn: s.dIn, dOut: s.dOut, seed: 9000 + UInt64(index))
            for isa in isas {
                for backward in [false, true] {
                    let what = "\(s.type) n=\(s.n) \(s.dOut)×\(s.dIn) \(isa) \(backward ? "backward" : "forward")"
                    // The split really gives both threads work: the team runs, several tasks each.
                    var tasks: Int64 = 0
                    var team: Int32 = 0
                    try Runtime.withInstructionSet(isa) {
                        try Runtime.withThreadCount(2) {
                            #expect(lt_quant_matmul_tasks(Int32(s.type.rawValue), Int64(s.n), Int64(s.dIn), Int64(s.dOut),
                                                          backward ? 1 : 0, &tasks, &team) == LT_OK)
                        }
                    }
                    #expect(team == 1 && tasks >= 4, "\(what): \(tasks) tasks, team \(team)")
                    let run = { (threads: Int) throws -> [Float] in
                        try Runtime.withInstructionSet(isa) {
                            try Runtime.withThreadCount(threads) {
                                let (st, out) = backward ? c.backward(accumulate: true) : c.forward(accumulate: true)
                                #expect(st == LT_OK, "\(what) status \(st)")
                                return out
                            }
                        }
                    }
                    let one = try run(1), two = try run(2)
                    #expect(LoRAReference.bitwiseEqual(one, two), "\(what): 1 vs 2 threads differ")
                }
            }
        }
    }

    @Test("a workspace of one thread's share gives the same bits as the full one; less is rejected")
    func smallerWorkspace() throws {
        let c = Case(.q4_1, n: 40, dIn: 576, dOut: 400, seed: 77)
        try Runtime.withThreadCount(2) {
            let full = c.workspaceFloats
            let alone = try Runtime.withThreadCount(1) { c.workspaceFloats }
            let share = full - alone            // one thread's share; `alone` adds B packed once for the team
            #expect(share > 0 && alone > share)
            let (s1, y1) = c.forward(accumulate: false)
            let (s2, y2) = c.forward(accumulate: false, workspace: share)
            #expect(s1 == LT_OK && s2 == LT_OK)
            #expect(LoRAReference.bitwiseEqual(y1, y2))
            let (b1, d1) = c.backward(accumulate: false)
            let (b2, d2) = c.backward(accumulate: false, workspace: share)
            #expect(b1 == LT_OK && b2 == LT_OK)
            #expect(LoRAReference.bitwiseEqual(d1, d2))
            let (s3, y3) = c.forward(accumulate: false, workspace: share - 1)
            #expect(s3 == LT_ERR_INVALID_ARGUMENT)
            #expect(LoRAReference.bitwiseEqual(y3, c.y0), "a rejected call wrote to Y")
            let (b3, _) = c.backward(accumulate: false, workspace: share - 1)
            #expect(b3 == LT_ERR_INVALID_ARGUMENT)
        }
    }

    @Test("decode-sized products need no workspace; batched ones do")
    func workspaceSizes() throws {
        for type in Self.types {
            var f: Int64 = -1
            #expect(lt_quant_matmul_workspace_size(Int32(type.rawValue), 8, Int64(Self.dIn(type)), 37, &f) == LT_OK)
            #expect(f == 0, "\(type) n=8")
            #expect(lt_quant_matmul_workspace_size(Int32(type.rawValue), 9, Int64(Self.dIn(type)), 37, &f) == LT_OK)
            #expect(f > 0, "\(type) n=9")
        }
    }

    // MARK: edge shapes

    @Test("empty shapes: n = 0 and no output columns touch nothing; an empty sum gives zeros or keeps Y")
    func emptyShapes() throws {
        let q41 = Int32(GGMLType.q4_1.rawValue), q80 = Int32(GGMLType.q8_0.rawValue)
        for accumulate: Int32 in [0, 1] {
            // Forward with d_in = 0 (3 × 4 result, ld 5): X and W are not read and may be NULL.
            var y = [Float](repeating: 5, count: 15)
            let st = y.withUnsafeMutableBufferPointer { py in
                lt_quant_matmul(q41, 3, 0, 4, nil, 1, nil, 0, py.baseAddress, 5, accumulate, nil, 0)
            }
            #expect(st == LT_OK)
            for i in 0..<3 {
                #expect(y[(i * 5)..<(i * 5 + 4)].allSatisfy { $0 == (accumulate == 1 ? 5 : 0) })
                #expect(y[i * 5 + 4] == 5, "padding")
            }
            // Backward with d_out = 0 (3 × 32 result, ld 33): dY and W are not read.
            var dx = [Float](repeating: 5, count: 99)
            let sb = dx.withUnsafeMutableBufferPointer { pdx in
                lt_quant_matmul_backward_input(q80, 3, 32, 0, nil, 1, nil, 0, pdx.baseAddress, 33, accumulate, nil, 0)
            }
            #expect(sb == LT_OK)
            for i in 0..<3 {
                #expect(dx[(i * 33)..<(i * 33 + 32)].allSatisfy { $0 == (accumulate == 1 ? 5 : 0) })
                #expect(dx[i * 33 + 32] == 5, "padding")
            }
        }
        // No output at all: every pointer may be NULL.
        #expect(lt_quant_matmul(q41, 3, 32, 0, nil, 32, nil, 0, nil, 1, 0, nil, 0) == LT_OK)
        #expect(lt_quant_matmul(q41, 0, 32, 5, nil, 32, nil, 100, nil, 5, 0, nil, 0) == LT_OK)
        #expect(lt_quant_matmul_backward_input(q41, 0, 32, 5, nil, 5, nil, 100, nil, 32, 0, nil, 0) == LT_OK)
        #expect(lt_quant_matmul_backward_input(q41, 4, 0, 5, nil, 5, nil, 0, nil, 1, 0, nil, 0) == LT_OK)
    }

    // MARK: argument validation

    @Test("invalid arguments give the right status and write nothing")
    func validation() throws {
        let c = Case(.q4_1, n: 9, dIn: 64, dOut: 5, seed: 3)
        let q41 = Int32(GGMLType.q4_1.rawValue)
        let ws = c.workspaceFloats
        var y = c.y0
        var work = [Float](repeating: 0, count: ws)
        func fwd(type: Int32 = q41, n: Int64 = 9, dIn: Int64 = 64, dOut: Int64 = 5, ldx: Int64 = 69, wBytes: Int64? = nil,
                 ldy: Int64 = 8, accumulate: Int32 = 0, workspace: Int64? = nil, nullX: Bool = false, nullW: Bool = false,
                 nullY: Bool = false, nullWork: Bool = false) -> lt_status {
            c.x.withUnsafeBufferPointer { px in
                c.w.withUnsafeBytes { pw in
                    y.withUnsafeMutableBufferPointer { py in
                        work.withUnsafeMutableBufferPointer { pws in
                            lt_quant_matmul(type, n, dIn, dOut, nullX ? nil : px.baseAddress, ldx, nullW ? nil : pw.baseAddress,
                                            wBytes ?? Int64(pw.count), nullY ? nil : py.baseAddress, ldy, accumulate,
                                            nullWork ? nil : pws.baseAddress, workspace ?? Int64(ws))
                        }
                    }
                }
            }
        }
        func bwd(type: Int32 = q41, dIn: Int64 = 64, wBytes: Int64? = nil, lddx: Int64 = 68, workspace: Int64? = nil,
                 nullDY: Bool = false) -> lt_status {
            var dx = c.dx0
            return c.dy.withUnsafeBufferPointer { pdy in
                c.w.withUnsafeBytes { pw in
                    dx.withUnsafeMutableBufferPointer { pdx in
                        work.withUnsafeMutableBufferPointer { pws in
                            lt_quant_matmul_backward_input(type, 9, dIn, 5, nullDY ? nil : pdy.baseAddress, 7, pw.baseAddress,
                                                           wBytes ?? Int64(pw.count), pdx.baseAddress, lddx, 0,
                                                           pws.baseAddress, workspace ?? Int64(ws))
                        }
                    }
                }
            }
        }
        #expect(fwd() == LT_OK)
        y = c.y0
        // types without a decoder (Q8_1, Q2_K, an unknown number, a negative one)
        for bad: Int32 in [9, 10, 99, -1] {
            #expect(fwd(type: bad) == LT_ERR_UNSUPPORTED, "type \(bad)")
            #expect(bwd(type: bad) == LT_ERR_UNSUPPORTED, "type \(bad)")
            var f: Int64 = 0
            #expect(lt_quant_matmul_workspace_size(bad, 9, 64, 5, &f) == LT_ERR_UNSUPPORTED)
        }
        #expect(fwd(wBytes: Int64(c.w.count - 1)) == LT_ERR_INVALID_ARGUMENT)
        #expect(bwd(wBytes: Int64(c.w.count - 1)) == LT_ERR_INVALID_ARGUMENT)
        #expect(fwd(wBytes: -1) == LT_ERR_INVALID_ARGUMENT)
        #expect(fwd(workspace: 1) == LT_ERR_INVALID_ARGUMENT)
        #expect(bwd(workspace: 1) == LT_ERR_INVALID_ARGUMENT)
        #expect(fwd(nullWork: true) == LT_ERR_NULL_POINTER)
        #expect(fwd(nullX: true) == LT_ERR_NULL_POINTER)
        #expect(fwd(nullW: true) == LT_ERR_NULL_POINTER)
        #expect(fwd(nullY: true) == LT_ERR_NULL_POINTER)
        #expect(bwd(nullDY: true) == LT_ERR_NULL_POINTER)
        #expect(fwd(dIn: 48, ldx: 69) == LT_ERR_INVALID_ARGUMENT, "d_in not a multiple of 32")
        #expect(bwd(dIn: 48) == LT_ERR_INVALID_ARGUMENT, "d_in not a multiple of 32")
        #expect(fwd(n: -1) == LT_ERR_INVALID_ARGUMENT)
        #expect(fwd(dOut: -5) == LT_ERR_INVALID_ARGUMENT)
        #expect(fwd(ldx: 63) == LT_ERR_INVALID_ARGUMENT)
        #expect(fwd(ldy: 4) == LT_ERR_INVALID_ARGUMENT)
        #expect(bwd(lddx: 63) == LT_ERR_INVALID_ARGUMENT)
        #expect(fwd(accumulate: 2) == LT_ERR_INVALID_ARGUMENT)
        #expect(fwd(ldx: Int64.max / 4) == LT_ERR_INVALID_ARGUMENT, "row offsets overflow")
        #expect(LoRAReference.bitwiseEqual(y, c.y0), "a rejected call wrote to Y")
        var f: Int64 = 0
        #expect(lt_quant_matmul_workspace_size(q41, 9, 64, 5, nil) == LT_ERR_NULL_POINTER)
        #expect(lt_quant_matmul_workspace_size(q41, 9, 48, 5, &f) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_quant_matmul_workspace_size(q41, -9, 64, 5, &f) == LT_ERR_INVALID_ARGUMENT)
        var tasks: Int64 = 0
        var team: Int32 = 0
        #expect(lt_quant_matmul_tasks(q41, 9, 64, 5, 2, &tasks, &team) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_quant_matmul_tasks(99, 9, 64, 5, 0, &tasks, &team) == LT_ERR_UNSUPPORTED)
        #expect(lt_quant_matmul_tasks(q41, 9, 64, 5, 0, nil, &team) == LT_ERR_NULL_POINTER)
    }
}
