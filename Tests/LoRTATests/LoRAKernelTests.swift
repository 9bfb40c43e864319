import Testing
import CKernels
@testable import LoRTA

// MARK: - Shared test support for the LoRA suites (names prefixed to stay unique in the target)

/// Deterministic test data (splitmix64), independent of the library's RNG.
struct LoRATestRNG {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [-scale, scale).
    mutating func uniform(_ scale: Float = 1) -> Float {
        (Float(next() >> 40) / Float(1 << 24) * 2 - 1) * scale
    }
    mutating func array(_ n: Int, scale: Float = 1) -> [Float] { (0..<n).map { _ in uniform(scale) } }
    mutating func tensor(_ shape: [Int], scale: Float = 1) -> Tensor {
        try! Tensor(array(shape.reduce(1, *), scale: scale), shape: shape)
    }
    /// rows × cols with leading dimension ld; the padding holds `pad`.
    mutating func padded(rows: Int, cols: Int, ld: Int, pad: Float = .nan) -> [Float] {
        var m = [Float](repeating: pad, count: max(rows * ld, 1))
        for i in 0..<rows { for j in 0..<cols { m[i * ld + j] = uniform() } }
        return m
    }
}

/// Naive float64 LoRA math (written independently of the kernels).
enum LoRAReference {
    /// Y = X (W + s B A)ᵀ + b, n × d_out contiguous. X, W with leading dimensions.
    static func forward(n: Int, dIn: Int, dOut: Int, r: Int, s: Double,
                        x: [Double], ldx: Int, w: [Double], ldw: Int, bias: [Double]?,
                        a: [Double], b: [Double]) -> [Double] {
        var eff = [Double](repeating: 0, count: dOut * dIn)    // W + s B A, materialized
        for o in 0..<dOut {
            for j in 0..<dIn {
                var ba = 0.0
                for k in 0..<r { ba += b[o * r + k] * a[k * dIn + j] }
                eff[o * dIn + j] = w[o * ldw + j] + s * ba
            }
        }
        var y = [Double](repeating: 0, count: n * dOut)
        for i in 0..<n {
            for o in 0..<dOut {
                var acc = bias?[o] ?? 0
                for j in 0..<dIn { acc += x[i * ldx + j] * eff[o * dIn + j] }
                y[i * dOut + o] = acc
            }
        }
        return y
    }

    /// L = Σ Y ∘ R with Y = X Wᵀ + s (X Aᵀ) Bᵀ + b (contiguous X, W, R).
    static func loss(n: Int, dIn: Int, dOut: Int, r: Int, s: Double, x: [Double], w: [Double],
                     bias: [Double]?, a: [Double], b: [Double], weights rr: [Double]) -> Double {
        var l = 0.0
        var t = [Double](repeating: 0, count: r)
        for i in 0..<n {
            for k in 0..<r {
                var acc = 0.0
                for j in 0..<dIn { acc += x[i * dIn + j] * a[k * dIn + j] }
                t[k] = acc
            }
            for o in 0..<dOut {
                var y = bias?[o] ?? 0
                for j in 0..<dIn { y += x[i * dIn + j] * w[o * dIn + j] }
                for k in 0..<r { y += s * t[k] * b[o * r + k] }
                l += y * rr[i * dOut + o]
            }
        }
        return l
    }

    /// Central differences of `f` at every element of `v` (step h).
    static func centralDifferences(_ v: [Double], h: Double = 1e-3, _ f: ([Double]) -> Double) -> [Double] {
        var g = [Double](repeating: 0, count: v.count)
        var p = v
        for i in 0..<v.count {
            p[i] = v[i] + h; let up = f(p)
            p[i] = v[i] - h; let down = f(p)
            p[i] = v[i]
            g[i] = (up - down) / (2 * h)
        }
        return g
    }

    static func maxAbs<S: Sequence>(_ v: S) -> Double where S.Element: BinaryFloatingPoint {
        v.reduce(0.0) { max($0, abs(Double($1))) }
    }

    /// max_i |got_i − want_i| / max(max|want|, tiny).
    static func relativeError(_ got: [Float], _ want: [Double]) -> Double {
        precondition(got.count == want.count)
        let scale = max(maxAbs(want), 1e-30)
        var e = 0.0
        for i in 0..<got.count { e = max(e, abs(Double(got[i]) - want[i])) }
        return e / scale
    }

    static func relativeError(_ got: [Float], _ want: [Float]) -> Double {
        relativeError(got, want.map(Double.init))
    }

    static func bitwiseEqual(_ a: [Float], _ b: [Float]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern }
    }

    /// How many elements of `a` and `b` differ in their bits (and a count mismatch as one more),
    /// for failure messages that say how much differs without printing the arrays.
    static func bitDifferences(_ a: [Float], _ b: [Float]) -> Int {
        zip(a, b).reduce(0) { $0 + ($1.0.bitPattern == $1.1.bitPattern ? 0 : 1) } + (a.count == b.count ? 0 : 1)
    }
}

/// One LoRA problem laid out for the C API, with leading dimensions larger than the rows
/// (padding holds NaN in inputs, so reading it would poison the results).
struct LoRACCase {
    let n, dIn, dOut, r: Int
    let ldx, ldw, ldy: Int
    let s: Float
    var x, w, a, b: [Float]
    var bias: [Float]?

    init(n: Int, dIn: Int, dOut: Int, r: Int, pad: Int = 0, bias: Bool = true, s: Float = 0.75,
         seed: UInt64 = 1) {
        var rng = LoRATestRNG(seed: seed)
        self.n = n; self.dIn = dIn; self.dOut = dOut; self.r = r; self.s = s
        ldx = dIn + pad; ldw = dIn + 2 * pad; ldy = dOut + pad
        x = rng.padded(rows: n, cols: dIn, ld: ldx)
        w = rng.padded(rows: dOut, cols: dIn, ld: ldw)
        a = rng.array(r * dIn)
        b = rng.array(dOut * r)
        self.bias = bias ? rng.array(dOut) : nil
    }

    /// Contiguous float64 copy of a padded matrix.
    static func dense(_ m: [Float], rows: Int, cols: Int, ld: Int) -> [Double] {
        var d = [Double](repeating: 0, count: rows * cols)
        for i in 0..<rows { for j in 0..<cols { d[i * cols + j] = Double(m[i * ld + j]) } }
        return d
    }

    func referenceForward() -> [Double] {
        LoRAReference.forward(n: n, dIn: dIn, dOut: dOut, r: r, s: Double(s),
                              x: x.map(Double.init), ldx: ldx, w: w.map(Double.init), ldw: ldw,
                              bias: bias?.map(Double.init), a: a.map(Double.init), b: b.map(Double.init))
    }

    /// Calls lt_lora_forward; returns status, Y (with padding, initialised to `sentinel`) and T.
    func forward(saveT: Bool = false, sentinel: Float = 777) -> (lt_status, [Float], [Float]) {
        var ws: Int64 = 0
        _ = lt_lora_forward_workspace_size(Int64(n), Int64(dIn), Int64(dOut), Int64(r), &ws)
        var work = [Float](repeating: .nan, count: max(Int(ws), 1))
        var y = [Float](repeating: sentinel, count: max(n * ldy, 1))
        var t = [Float](repeating: .nan, count: max(n * r, 1))
        let st = x.withUnsafeBufferPointer { px in
            w.withUnsafeBufferPointer { pw in
                a.withUnsafeBufferPointer { pa in
                    b.withUnsafeBufferPointer { pb in
                        withLoRAOptional(bias) { pbias in
                            y.withUnsafeMutableBufferPointer { py in
                                t.withUnsafeMutableBufferPointer { pt in
                                    work.withUnsafeMutableBufferPointer { pws in
                                        lt_lora_forward(Int64(n), Int64(dIn), Int64(dOut), Int64(r), s,
                                                        px.baseAddress, Int64(ldx), pw.baseAddress, Int64(ldw),
                                                        pbias, pa.baseAddress, pb.baseAddress,
                                                        py.baseAddress, Int64(ldy),
                                                        saveT ? pt.baseAddress : nil, pws.baseAddress)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return (st, y, t)
    }

    /// Calls lt_lora_backward with dY (ld ldy) and dX (ld ldx); dA/dB start as given.
    func backward(dY: [Float], t: [Float]?, dA: [Float], dB: [Float], wantDX: Bool,
                  accumulate: Int32 = 0) -> (lt_status, dA: [Float], dB: [Float], dX: [Float]) {
        var ws: Int64 = 0
        _ = lt_lora_backward_workspace_size(Int64(n), Int64(dIn), Int64(dOut), Int64(r), &ws)
        var work = [Float](repeating: .nan, count: max(Int(ws), 1))
        var da = dA, db = dB
        var dx = [Float](repeating: 555, count: max(n * ldx, 1))
        let st = x.withUnsafeBufferPointer { px in
            w.withUnsafeBufferPointer { pw in
                a.withUnsafeBufferPointer { pa in
                    b.withUnsafeBufferPointer { pb in
                        dY.withUnsafeBufferPointer { pdy in
                            withLoRAOptional(t) { pt in
                                da.withUnsafeMutableBufferPointer { pda in
                                    db.withUnsafeMutableBufferPointer { pdb in
                                        dx.withUnsafeMutableBufferPointer { pdx in
                                            work.withUnsafeMutableBufferPointer { pws in
                                                lt_lora_backward(
                                                    Int64(n), Int64(dIn), Int64(dOut), Int64(r), s,
                                                    px.baseAddress, Int64(ldx), pw.baseAddress, Int64(ldw),
                                                    pa.baseAddress, pb.baseAddress, pdy.baseAddress, Int64(ldy),
                                                    pt, pda.baseAddress, pdb.baseAddress,
                                                    wantDX ? pdx.baseAddress : nil, Int64(ldx),
                                                    accumulate, pws.baseAddress)
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return (st, da, db, dx)
    }

    /// lt_lora_merge / lt_lora_unmerge on a copy of W.
    func merged(_ weight: [Float], subtract: Bool = false) -> (lt_status, [Float]) {
        var wc = weight
        let st = a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                wc.withUnsafeMutableBufferPointer { pw in
                    subtract
                        ? lt_lora_unmerge(Int64(dOut), Int64(dIn), Int64(r), s, pa.baseAddress, pb.baseAddress, pw.baseAddress, Int64(ldw))
                        : lt_lora_merge(Int64(dOut), Int64(dIn), Int64(r), s, pa.baseAddress, pb.baseAddress, pw.baseAddress, Int64(ldw))
                }
            }
        }
        return (st, wc)
    }

    /// The n × d_out block of a padded n × ldy matrix.
    func rowsOfY(_ y: [Float]) -> [Float] { LoRACCase.dense(y, rows: n, cols: dOut, ld: ldy).map(Float.init) }
    func rowsOfX(_ m: [Float]) -> [Float] { LoRACCase.dense(m, rows: n, cols: dIn, ld: ldx).map(Float.init) }
    func rowsOfW(_ m: [Float]) -> [Float] { LoRACCase.dense(m, rows: dOut, cols: dIn, ld: ldw).map(Float.init) }
}

/// `body`'s result and `lt_debug_threads_seen()` after it: 1 + the highest OpenMP thread number
/// that ran a chunk of rows of an instrumented loop (LoRA forward, backward, merge; LoRTA merge)
/// inside `body` — 2 proves that a second thread really worked.
func withThreadsSeen<R>(_ body: () throws -> R) rethrows -> (R, threads: Int) {
    lt_debug_reset_threads_seen()
    let result = try body()
    return (result, Int(lt_debug_threads_seen()))
}

func withLoRAOptional<R>(_ v: [Float]?, _ body: (UnsafePointer<Float>?) -> R) -> R {
    guard let v else { return body(nil) }
    return v.withUnsafeBufferPointer { body($0.baseAddress) }
}

// MARK: - C API tests

@Suite("LoRA C kernels", .serialized)
struct LoRAKernelTests {
    /// Shapes with d_in ≠ d_out, dims not multiples of 16 (SIMD tails), r ∈ {1, 3, 8, 17}, and
    /// r = 40 (≥ LT_LORA_GEMM_RANK: the sgemm path for the adapter's skinny products). Folded
    /// (the update merged into a copy of W, see `folds`): (40, 12, 10, 3) forward and backward,
    /// (1, 1, 1, 1) forward, (24, 30, 20, 40) forward and backward at r = 40.
    static let shapes: [(n: Int, dIn: Int, dOut: Int, r: Int)] = [
        (7, 19, 13, 1), (40, 12, 10, 3), (9, 40, 17, 3), (6, 45, 38, 40), (5, 35, 50, 8), (3, 70, 33, 17), (1, 1, 1, 1),
        (4, 16, 16, 2), (24, 30, 20, 40),
    ]

    /// lora.c's rules: the forward folds when d_in·d_out < n·(d_in + d_out), the input gradient
    /// when d_out < n.
    static func folds(n: Int, dIn: Int, dOut: Int) -> (forward: Bool, backward: Bool) {
        (dIn * dOut < n * (dIn + dOut), dOut < n)
    }

    @Test("forward equals float64 X (W + s B A)ᵀ + b, with ld > row length",
          arguments: [false, true])
    func forwardMatchesReference(withBias: Bool) throws {
        for (i, sh) in Self.shapes.enumerated() {
            let c = LoRACCase(n: sh.n, dIn: sh.dIn, dOut: sh.dOut, r: sh.r, pad: 3, bias: withBias,
                              seed: UInt64(10 + i))
            let (st, y, _) = c.forward()
            #expect(st == LT_OK)
            let err = LoRAReference.relativeError(c.rowsOfY(y), c.referenceForward())
            #expect(err < 1e-5, "shape \(sh) bias \(withBias): relative error \(err)")
            // Padding of Y untouched.
            for row in 0..<c.n { for j in c.dOut..<c.ldy { #expect(y[row * c.ldy + j] == 777) } }
        }
    }

    @Test("saved T equals X Aᵀ; output does not depend on saving T")
    func savedT() throws {
        let c = LoRACCase(n: 6, dIn: 37, dOut: 21, r: 5, pad: 2)
        let (st1, y1, t) = c.forward(saveT: true)
        let (st2, y2, _) = c.forward(saveT: false)
        #expect(st1 == LT_OK && st2 == LT_OK)
        #expect(LoRAReference.bitwiseEqual(y1, y2))
        var tRef = [Double](repeating: 0, count: c.n * c.r)
        for i in 0..<c.n { for k in 0..<c.r { for j in 0..<c.dIn {
            tRef[i * c.r + k] += Double(c.x[i * c.ldx + j]) * Double(c.a[k * c.dIn + j])
        } } }
        #expect(LoRAReference.relativeError(Array(t[0..<(c.n * c.r)]), tRef) < 1e-5)
    }

    /// L = Σ Y∘R is linear in each of A, B and X separately, so the central difference is exact
    /// up to float64 rounding (≈1e-16·|L|/h ≈ 1e-11 here): the reference gradients are
    /// essentially exact. What remains is the kernels' float32 rounding, about
    /// √(summed length)·6e-8 relative to the gradient's scale (< 1e-5 for these sizes), so 1e-4
    /// relative to max|gradient| is a safe bound; a transposition, missing scale or wrong sign
    /// gives O(1) errors.
    @Test("backward matches central finite differences of a float64 loss")
    func backwardMatchesFiniteDifferences() throws {
        for (i, sh) in Self.shapes.prefix(4).enumerated() {
            let c = LoRACCase(n: sh.n, dIn: sh.dIn, dOut: sh.dOut, r: sh.r, pad: 2, bias: true, seed: UInt64(50 + i))
            var rng = LoRATestRNG(seed: 99)
            let rr = rng.padded(rows: c.n, cols: c.dOut, ld: c.ldy)            // dY = R
            let rD = LoRACCase.dense(rr, rows: c.n, cols: c.dOut, ld: c.ldy)
            let xD = LoRACCase.dense(c.x, rows: c.n, cols: c.dIn, ld: c.ldx)
            let wD = LoRACCase.dense(c.w, rows: c.dOut, cols: c.dIn, ld: c.ldw)
            let aD = c.a.map(Double.init), bD = c.b.map(Double.init), biasD = c.bias!.map(Double.init)
            let s = Double(c.s)
            func L(x: [Double], a: [Double], b: [Double]) -> Double {
                LoRAReference.loss(n: c.n, dIn: c.dIn, dOut: c.dOut, r: c.r, s: s, x: x, w: wD,
                                   bias: biasD, a: a, b: b, weights: rD)
            }
            let gA = LoRAReference.centralDifferences(aD) { L(x: xD, a: $0, b: bD) }
            let gB = LoRAReference.centralDifferences(bD) { L(x: xD, a: aD, b: $0) }
            let gX = LoRAReference.centralDifferences(xD) { L(x: $0, a: aD, b: bD) }

            let zerosA = [Float](repeating: .nan, count: c.r * c.dIn)   // overwritten (accumulate = 0)
            let zerosB = [Float](repeating: .nan, count: c.dOut * c.r)
            let out = c.backward(dY: rr, t: nil, dA: zerosA, dB: zerosB, wantDX: true)
            #expect(out.0 == LT_OK)
            let eA = LoRAReference.relativeError(out.dA, gA)
            let eB = LoRAReference.relativeError(out.dB, gB)
            let eX = LoRAReference.relativeError(c.rowsOfX(out.dX), gX)
            #expect(eA < 1e-4, "dA \(sh): \(eA)")
            #expect(eB < 1e-4, "dB \(sh): \(eB)")
            #expect(eX < 1e-4, "dX \(sh): \(eX)")
            // dX padding untouched.
            for row in 0..<c.n { for j in c.dIn..<c.ldx { #expect(out.dX[row * c.ldx + j] == 555) } }
        }
    }

    @Test("backward with T = nil equals backward with the saved T; dX = nil leaves dA, dB unchanged")
    func backwardSavedTAndOptionalDX() throws {
        let c = LoRACCase(n: 11, dIn: 29, dOut: 23, r: 4, pad: 1)
        var rng = LoRATestRNG(seed: 5)
        let dY = rng.padded(rows: c.n, cols: c.dOut, ld: c.ldy)
        let (_, _, t) = c.forward(saveT: true)
        let zA = [Float](repeating: 0, count: c.r * c.dIn), zB = [Float](repeating: 0, count: c.dOut * c.r)
        let withT = c.backward(dY: dY, t: t, dA: zA, dB: zB, wantDX: true)
        let noT = c.backward(dY: dY, t: nil, dA: zA, dB: zB, wantDX: true)
        let noDX = c.backward(dY: dY, t: nil, dA: zA, dB: zB, wantDX: false)
        #expect(withT.0 == LT_OK && noT.0 == LT_OK && noDX.0 == LT_OK)
        #expect(LoRAReference.bitwiseEqual(withT.dA, noT.dA))
        #expect(LoRAReference.bitwiseEqual(withT.dB, noT.dB))
        #expect(LoRAReference.bitwiseEqual(withT.dX, noT.dX))
        #expect(LoRAReference.bitwiseEqual(noDX.dA, noT.dA))
        #expect(LoRAReference.bitwiseEqual(noDX.dB, noT.dB))
        #expect(noDX.dX.allSatisfy { $0 == 555 })
    }

    @Test("accumulate = 1 adds to dA and dB")
    func accumulateAdds() throws {
        let c = LoRACCase(n: 8, dIn: 18, dOut: 27, r: 3, pad: 2)
        var rng = LoRATestRNG(seed: 6)
        let dY = rng.padded(rows: c.n, cols: c.dOut, ld: c.ldy)
        let pA = rng.array(c.r * c.dIn), pB = rng.array(c.dOut * c.r)
        let fresh = c.backward(dY: dY, t: nil, dA: pA, dB: pB, wantDX: false, accumulate: 0)
        let acc = c.backward(dY: dY, t: nil, dA: pA, dB: pB, wantDX: false, accumulate: 1)
        #expect(fresh.0 == LT_OK && acc.0 == LT_OK)
        let wantA = zip(pA, fresh.dA).map { Double($0) + Double($1) }
        let wantB = zip(pB, fresh.dB).map { Double($0) + Double($1) }
        #expect(LoRAReference.relativeError(acc.dA, wantA) < 1e-6)
        #expect(LoRAReference.relativeError(acc.dB, wantB) < 1e-6)
        // and it really accumulated (the previous values matter)
        #expect(LoRAReference.relativeError(acc.dA, fresh.dA) > 1e-3)
    }

    @Test("merge adds s B A (float64 reference); unmerge restores W within 1e-6·max|W|")
    func mergeUnmerge() throws {
        for (i, sh) in Self.shapes.enumerated() {
            let c = LoRACCase(n: 1, dIn: sh.dIn, dOut: sh.dOut, r: sh.r, pad: 3, seed: UInt64(70 + i))
            let (st, m) = c.merged(c.w)
            #expect(st == LT_OK)
            var want = [Double](repeating: 0, count: c.dOut * c.dIn)
            for o in 0..<c.dOut { for j in 0..<c.dIn {
                var ba = 0.0
                for k in 0..<c.r { ba += Double(c.b[o * c.r + k]) * Double(c.a[k * c.dIn + j]) }
                want[o * c.dIn + j] = Double(c.w[o * c.ldw + j]) + Double(c.s) * ba
            } }
            #expect(LoRAReference.relativeError(c.rowsOfW(m), want) < 1e-6)
            let (st2, back) = c.merged(m, subtract: true)
            #expect(st2 == LT_OK)
            let w0 = c.rowsOfW(c.w), w1 = c.rowsOfW(back)
            let maxW = LoRAReference.maxAbs(w0)
            let err = zip(w0, w1).map { abs(Double($0) - Double($1)) }.max() ?? 0
            #expect(err <= 1e-6 * maxW, "shape \(sh): \(err) vs max|W| \(maxW)")
            // padding (NaN) is neither read into the rows nor overwritten
            for o in 0..<c.dOut { for j in c.dIn..<c.ldw { #expect(back[o * c.ldw + j].isNaN) } }
        }
    }

    @Test("rank above the stack chunk (r = 70) merges and unmerges")
    func mergeLargeRank() throws {
        let c = LoRACCase(n: 1, dIn: 33, dOut: 9, r: 70, s: 0.1)
        let (_, m) = c.merged(c.w)
        var want = [Double](repeating: 0, count: c.dOut * c.dIn)
        for o in 0..<c.dOut { for j in 0..<c.dIn {
            var ba = 0.0
            for k in 0..<c.r { ba += Double(c.b[o * c.r + k]) * Double(c.a[k * c.dIn + j]) }
            want[o * c.dIn + j] = Double(c.w[o * c.ldw + j]) + 0.1 * ba
        } }
        #expect(LoRAReference.relativeError(m, want) < 1e-6)
        let (_, back) = c.merged(m, subtract: true)
        let maxW = LoRAReference.maxAbs(c.w)
        #expect(zip(back, c.w).allSatisfy { abs(Double($0) - Double($1)) <= 1e-6 * maxW })
    }

    /// n = 13: the low-rank terms; n = 60: forward and input gradient folded.
    @Test("every ISA agrees with scalar (forward, backward, merge) within 1e-5", arguments: [13, 60])
    func isaPathsAgree(n: Int) throws {
        let c = LoRACCase(n: n, dIn: 45, dOut: 31, r: 9, pad: 1, seed: 3)
        var rng = LoRATestRNG(seed: 8)
        let dY = rng.padded(rows: c.n, cols: c.dOut, ld: c.ldy)
        let zA = [Float](repeating: 0, count: c.r * c.dIn), zB = [Float](repeating: 0, count: c.dOut * c.r)
        func run() -> (y: [Float], dA: [Float], dB: [Float], dX: [Float], w: [Float]) {
            let (_, y, _) = c.forward()
            let g = c.backward(dY: dY, t: nil, dA: zA, dB: zB, wantDX: true)
            let (_, m) = c.merged(c.w)
            return (c.rowsOfY(y), g.dA, g.dB, c.rowsOfX(g.dX), c.rowsOfW(m))
        }
        let ref = try Runtime.withInstructionSet(.scalar) { run() }
        for isa in testedInstructionSets() where isa != .scalar {
            let got = try Runtime.withInstructionSet(isa) { run() }
            #expect(LoRAReference.relativeError(got.y, ref.y) < 1e-5, "\(isa) forward")
            #expect(LoRAReference.relativeError(got.dA, ref.dA) < 1e-5, "\(isa) dA")
            #expect(LoRAReference.relativeError(got.dB, ref.dB) < 1e-5, "\(isa) dB")
            #expect(LoRAReference.relativeError(got.dX, ref.dX) < 1e-5, "\(isa) dX")
            #expect(LoRAReference.relativeError(got.w, ref.w) < 1e-5, "\(isa) merge")
            // The switch took effect: a different summation order changes some low bits.
            #expect(!LoRAReference.bitwiseEqual(got.y, ref.y) || !LoRAReference.bitwiseEqual(got.dA, ref.dA),
                    "\(isa) gave the scalar path's exact bits")
        }
    }

    /// n = 256 rows (16 chunks of LT_ROWS_PER_CHUNK, 8 per thread), d_in = 383, d_out = 301:
    /// every row loop is above LT_PARALLEL_IF's 1 MFLOP (r = 6: the forward folds — its copy of
    /// W + s B A, 2·d_out·d_in·r = 1.4 MFLOP, and the saved T, 2·n·r·d_in = 1.2 MFLOP; backward
    /// loop 2·n·r·(d_in + d_out) = 2.1 MFLOP, dX loop 1.2 MFLOP; merge: 19 chunks of
    /// W's rows, no threshold), and `lt_debug_threads_seen` proves that each kernel's loop ran
    /// on thread 1 with two threads (and on one thread with one). r = 40 takes the GEMM path,
    /// where the merge has a row loop and the products run on the library's packed GEMM
    /// (lt_gemm_f32), whose tasks are handed out dynamically: with two threads thread 1 takes
    /// some unless thread 0 took them all first on a busy machine (SgemmTests proves it works,
    /// with retries), so there only "one or two" is required.
    ///
    /// The GEMM's bits do not depend on the thread count at any size. (With LORTA_GEMM=openblas
    /// they can: OpenBLAS 0.3.21 with its Cooperlake / SkylakeX cores gives the single-thread
    /// bits for summed dimensions ≤ 384 but not for some longer K, and its Haswell core differs
    /// even at K = 40; README, "Determinism". Every summed dimension here is ≤ 384.)
    @Test("results are bitwise identical with 1 and 2 threads, and the second thread really works")
    func threadCountIndependence() throws {
        for rank in [6, 40] {   // per-row micro-kernels, and the sgemm path (r ≥ 32)
            let c = LoRACCase(n: 256, dIn: 383, dOut: 301, r: rank, pad: 2, seed: 4)
            var rng = LoRATestRNG(seed: 9)
            let dY = rng.padded(rows: c.n, cols: c.dOut, ld: c.ldy)
            let zA = [Float](repeating: 0, count: c.r * c.dIn), zB = [Float](repeating: 0, count: c.dOut * c.r)
            /// The outputs, and the threads seen by the forward, the backward and the merge.
            func run() -> (outputs: [[Float]], threads: [Int]) {
                let ((st1, y, t), tf) = withThreadsSeen { c.forward(saveT: true) }
                let (g, tb) = withThreadsSeen { c.backward(dY: dY, t: nil, dA: zA, dB: zB, wantDX: true) }
                let ((st2, m), tm) = withThreadsSeen { c.merged(c.w) }
                #expect(st1 == LT_OK && g.0 == LT_OK && st2 == LT_OK)
                return ([y, t, g.dA, g.dB, g.dX, m], [tf, tb, tm])
            }
            // The micro-kernel path has row loops in all three calls; the GEMM path in the merge,
            // and dynamically scheduled GEMM tasks in the forward and backward.
            let gemmOnly = rank < 32 ? [false, false, false] : [true, true, false]
            let names = ["Y", "T", "dA", "dB", "dX", "merged W"]
            for isa in testedInstructionSets() {
                let one = try Runtime.withInstructionSet(isa) { try Runtime.withThreadCount(1) { run() } }
                let two = try Runtime.withInstructionSet(isa) { try Runtime.withThreadCount(2) { run() } }
                #expect(one.threads == [1, 1, 1], "r=\(rank) \(isa): threads seen with 1 thread")
                for (seen, dynamic) in zip(two.threads, gemmOnly) {
                    #expect(dynamic ? (1...2).contains(seen) : seen == 2,
                            "r=\(rank) \(isa): threads seen with 2 threads (forward, backward, merge): \(two.threads)")
                }
                for (k, (p, q)) in zip(one.outputs, two.outputs).enumerated() {
                    let differ = LoRAReference.bitDifferences(p, q)
                    #expect(differ == 0, "r=\(rank) \(isa) \(names[k]): \(differ) of \(p.count) elements differ")
                }
            }
        }
    }

    /// The forward on our GEMM either adds the adapter term in the GEMM's tile hook or folds
    /// the update into a copy of W. Unfolded, without a bias, it must equal the frozen product
    /// (lt_lora_base_forward) plus the low-rank term added afterwards (lt_lowrank_forward,
    /// accumulate) bit for bit: the same fma chains, the same one rounding of the sum. Folded,
    /// with a bias, it must equal lt_linear_forward on the weight lt_lora_merge returns, bit for
    /// bit. Shapes: ragged tiles, several K chunks (d_in = 449), unfolded at d = 384 (160 rows);
    /// folded: a narrow output (d_out = 8, the transposed path) and 512 × 384 → 384.
    @Test("fused forward equals base product + low-rank term (tile hook) or the merged weight's product (folded), bitwise, every ISA and thread count")
    func fusedForwardEqualsBasePlusLowRank() throws {
        for (n, dIn, dOut, r) in [(37, 100, 70, 4), (130, 449, 301, 8), (160, 384, 384, 8), (100, 64, 8, 8), (512, 384, 384, 8)] {
            var rng = LoRATestRNG(seed: UInt64(n + dIn))
            let x = rng.array(n * dIn), w = rng.array(dOut * dIn), a = rng.array(r * dIn), b = rng.array(dOut * r)
            let bias = rng.array(dOut)
            let s: Float = 1.7
            let folded = Self.folds(n: n, dIn: dIn, dOut: dOut).forward
            func run() -> ([Float], [Float]) {
                var ws: Int64 = 0, lws: Int64 = 0
                _ = lt_lora_forward_workspace_size(Int64(n), Int64(dIn), Int64(dOut), Int64(r), &ws)
                _ = lt_lowrank_workspace_size(Int64(dIn), Int64(dOut), Int64(r), &lws)
                var work = [Float](repeating: .nan, count: Int(max(ws, lws)))
                var fused = [Float](repeating: .nan, count: n * dOut), split = fused
                if folded {
                    #expect(lt_lora_forward(Int64(n), Int64(dIn), Int64(dOut), Int64(r), s, x, Int64(dIn), w, Int64(dIn),
                                            bias, a, b, &fused, Int64(dOut), nil, &work) == LT_OK)
                    var merged = w
                    #expect(lt_lora_merge(Int64(dOut), Int64(dIn), Int64(r), s, a, b, &merged, Int64(dIn)) == LT_OK)
                    #expect(lt_linear_forward(Int64(n), Int64(dIn), Int64(dOut), x, Int64(dIn), merged, Int64(dIn), bias,
                                              nil, 0, &split, Int64(dOut)) == LT_OK)
                    return (fused, split)
                }
                #expect(lt_lora_forward(Int64(n), Int64(dIn), Int64(dOut), Int64(r), s, x, Int64(dIn), w, Int64(dIn), nil,
                                        a, b, &fused, Int64(dOut), nil, &work) == LT_OK)
                #expect(lt_lora_base_forward(Int64(n), Int64(dIn), Int64(dOut), x, Int64(dIn), w, Int64(dIn), nil,
                                             &split, Int64(dOut)) == LT_OK)
                #expect(lt_lowrank_forward(Int64(n), Int64(dIn), Int64(dOut), Int64(r), s, x, Int64(dIn), a, b,
                                           &split, Int64(dOut), 1, &work) == LT_OK)
                return (fused, split)
            }
            for isa in testedInstructionSets() {
                for threads in [1, 2] {
                    let (fused, split) = try Runtime.withGEMMBackend(.lorta) {
                        try Runtime.withInstructionSet(isa) { try Runtime.withThreadCount(threads) { run() } }
                    }
                    let differ = LoRAReference.bitDifferences(fused, split)
                    #expect(differ == 0, "\(n)×\(dIn)→\(dOut) r=\(r) \(isa), \(threads) threads: \(differ) elements differ")
                }
            }
        }
    }

    @Test("empty batch: Y untouched, dA and dB zero (or unchanged with accumulate)")
    func emptyBatch() throws {
        let c = LoRACCase(n: 0, dIn: 5, dOut: 4, r: 2)
        let (st, _, _) = c.forward()
        #expect(st == LT_OK)
        let pA = [Float](repeating: 3, count: c.r * c.dIn), pB = [Float](repeating: 3, count: c.dOut * c.r)
        let g0 = c.backward(dY: [0], t: nil, dA: pA, dB: pB, wantDX: true, accumulate: 0)
        let g1 = c.backward(dY: [0], t: nil, dA: pA, dB: pB, wantDX: true, accumulate: 1)
        #expect(g0.0 == LT_OK && g1.0 == LT_OK)
        #expect(g0.dA.allSatisfy { $0 == 0 } && g0.dB.allSatisfy { $0 == 0 })
        #expect(g1.dA == pA && g1.dB == pB)
    }

    @Test("argument validation: null pointers, negative sizes, r < 1, small ld, bad scale")
    func argumentValidation() throws {
        var buf = [Float](repeating: 0, count: 4096)
        var ws: Int64 = 0
        #expect(lt_lora_forward_workspace_size(4, 3, 2, 0, &ws) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_lora_forward_workspace_size(-1, 3, 2, 1, &ws) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_lora_forward_workspace_size(4, 3, 2, 1, nil) == LT_ERR_NULL_POINTER)
        #expect(lt_lora_forward_workspace_size(Int64.max, 3, 2, 4, &ws) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_lora_backward_workspace_size(4, 3, -2, 1, &ws) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_lora_forward_workspace_size(2, 5, 6, 5, &ws) == LT_OK && ws == 5 * 6 + 2 * 5)   // s·Bᵀ + T
        #expect(lt_lora_forward_workspace_size(4, 3, 2, 5, &ws) == LT_OK && ws == 2 * 3)           // folded W
        #expect(lt_lora_backward_workspace_size(2, 5, 6, 5, &ws) == LT_OK && ws == 5 * 6 + 2 * 2 * 5)
        #expect(lt_lora_backward_workspace_size(4, 3, 2, 5, &ws) == LT_OK && ws == 5 * 2 + 2 * 4 * 5 + 2 * 3)
        var scale: Float = 0
        #expect(lt_lora_scale(16, 0, 0, &scale) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_lora_scale(.nan, 4, 0, &scale) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_lora_scale(16, 4, 0, nil) == LT_ERR_NULL_POINTER)
        #expect(lt_lora_scale(16, 4, 0, &scale) == LT_OK && scale == 4)
        #expect(lt_lora_scale(16, 4, 1, &scale) == LT_OK && scale == 8)

        buf.withUnsafeMutableBufferPointer { b in
            let p = b.baseAddress!
            func fwd(_ n: Int64, _ dIn: Int64, _ dOut: Int64, _ r: Int64, s: Float = 1,
                     ldx: Int64 = 3, ldw: Int64 = 3, ldy: Int64 = 2,
                     x: UnsafePointer<Float>? = nil, nilW: Bool = false, nilWS: Bool = false) -> lt_status {
                lt_lora_forward(n, dIn, dOut, r, s, x ?? UnsafePointer(p), ldx, nilW ? nil : p, ldw, nil,
                                p, p, p + 1024, ldy, nil, nilWS ? nil : p + 2048)
            }
            #expect(fwd(4, 3, 2, 1) == LT_OK)
            #expect(lt_lora_forward(4, 3, 2, 1, 1, nil, 3, p, 3, nil, p, p, p + 1024, 2, nil, p + 2048) == LT_ERR_NULL_POINTER)
            #expect(fwd(4, 3, 2, 1, nilW: true) == LT_ERR_NULL_POINTER)
            #expect(fwd(4, 3, 2, 1, nilWS: true) == LT_ERR_NULL_POINTER)
            #expect(fwd(-1, 3, 2, 1) == LT_ERR_INVALID_ARGUMENT)
            #expect(fwd(4, -3, 2, 1) == LT_ERR_INVALID_ARGUMENT)
            #expect(fwd(4, 3, -2, 1) == LT_ERR_INVALID_ARGUMENT)
            #expect(fwd(4, 3, 2, 0) == LT_ERR_INVALID_ARGUMENT)
            #expect(fwd(4, 3, 2, 1, ldx: 2) == LT_ERR_INVALID_ARGUMENT)
            #expect(fwd(4, 3, 2, 1, ldw: 2) == LT_ERR_INVALID_ARGUMENT)
            #expect(fwd(4, 3, 2, 1, ldy: 1) == LT_ERR_INVALID_ARGUMENT)
            #expect(fwd(4, 3, 2, 1, s: .nan) == LT_ERR_INVALID_ARGUMENT)
            #expect(fwd(4, 3, 2, 1, s: .infinity) == LT_ERR_INVALID_ARGUMENT)

            func bwd(_ n: Int64, _ r: Int64, s: Float = 1, lddy: Int64 = 2, lddx: Int64 = 3,
                     acc: Int32 = 0, nilDA: Bool = false, dX: Bool = true) -> lt_status {
                lt_lora_backward(n, 3, 2, r, s, p, 3, p, 3, p, p, p, lddy, nil,
                                 nilDA ? nil : p + 1024, p + 1100, dX ? p + 1200 : nil, lddx, acc, p + 2048)
            }
            #expect(bwd(4, 1) == LT_OK)
            #expect(bwd(4, 1, nilDA: true) == LT_ERR_NULL_POINTER)
            #expect(bwd(-4, 1) == LT_ERR_INVALID_ARGUMENT)
            #expect(bwd(4, 0) == LT_ERR_INVALID_ARGUMENT)
            #expect(bwd(4, 1, lddy: 1) == LT_ERR_INVALID_ARGUMENT)
            #expect(bwd(4, 1, lddx: 2) == LT_ERR_INVALID_ARGUMENT)
            #expect(bwd(4, 1, lddx: 2, dX: false) == LT_OK)        // lddx unused without dX
            #expect(bwd(4, 1, acc: 2) == LT_ERR_INVALID_ARGUMENT)
            #expect(bwd(4, 1, s: -.infinity) == LT_ERR_INVALID_ARGUMENT)

            #expect(lt_lora_merge(2, 3, 1, 1, p, p, p + 1024, 3) == LT_OK)
            #expect(lt_lora_merge(2, 3, 1, 1, nil, p, p + 1024, 3) == LT_ERR_NULL_POINTER)
            #expect(lt_lora_merge(2, 3, 0, 1, p, p, p + 1024, 3) == LT_ERR_INVALID_ARGUMENT)
            #expect(lt_lora_merge(-2, 3, 1, 1, p, p, p + 1024, 3) == LT_ERR_INVALID_ARGUMENT)
            #expect(lt_lora_unmerge(2, 3, 1, 1, p, p, p + 1024, 2) == LT_ERR_INVALID_ARGUMENT)
            #expect(lt_lora_unmerge(2, 3, 1, .nan, p, p, p + 1024, 3) == LT_ERR_INVALID_ARGUMENT)

            #expect(lt_lora_init(1, 0, 3, 2, p, p + 100) == LT_ERR_INVALID_ARGUMENT)
            #expect(lt_lora_init(1, 2, -3, 2, p, p + 100) == LT_ERR_INVALID_ARGUMENT)
            #expect(lt_lora_init(1, 2, 3, 2, nil, p + 100) == LT_ERR_NULL_POINTER)
            #expect(lt_lora_base_forward(4, 3, 2, p, 3, p, 3, nil, p + 1024, 1) == LT_ERR_INVALID_ARGUMENT)
            #expect(lt_lora_base_forward(4, 3, 2, p, 3, nil, 3, nil, p + 1024, 2) == LT_ERR_NULL_POINTER)
        }
    }

    @Test("init: A within ±1/√d_in and spread over it, B = 0, reproducible per seed")
    func initialization() throws {
        let r = 8, dIn = 64, dOut = 24
        func draw(_ seed: UInt64) -> ([Float], [Float]) {
            var a = [Float](repeating: .nan, count: r * dIn), b = [Float](repeating: .nan, count: dOut * r)
            let st = a.withUnsafeMutableBufferPointer { pa in
                b.withUnsafeMutableBufferPointer { pb in
                    lt_lora_init(seed, Int64(r), Int64(dIn), Int64(dOut), pa.baseAddress, pb.baseAddress)
                }
            }
            #expect(st == LT_OK)
            return (a, b)
        }
        let (a1, b1) = draw(42), (a2, _) = draw(42), (a3, _) = draw(43)
        let bound = 1 / Float(dIn).squareRoot()
        #expect(a1.allSatisfy { abs($0) <= bound })
        #expect(a1.map { abs($0) }.max()! > 0.9 * bound)       // 512 draws: fails with p ≈ 0.9^512
        #expect(a1.contains { $0 < 0 } && a1.contains { $0 > 0 })
        #expect(b1.allSatisfy { $0 == 0 && $0.sign == .plus })
        #expect(LoRAReference.bitwiseEqual(a1, a2))
        #expect(a1 != a3)
    }
}
