import Foundation
import Testing
import CKernels
@testable import LoRTA

// Tests of the lt_nn.h kernels. References are naive float64 code written here; every backward
// is checked against central finite differences of that float64 forward (h = 1e-6; the
// difference quotient is then exact to ~1e-9, so the float32 kernel's own rounding dominates:
// tolerance 2e-5 relative to the largest gradient entry, about 100 float ulps).


// MARK: - float64 references

private enum NNReference {
    static func layerNorm(_ x: [Double], n: Int, d: Int, eps: Double, gamma: [Double], beta: [Double]) -> [Double] {
        var y = x
        for i in 0..<n {
            let row = Array(x[(i * d)..<((i + 1) * d)])
            let mu = row.reduce(0, +) / Double(d)
            let v = row.reduce(0) { $0 + ($1 - mu) * ($1 - mu) } / Double(d)
            for j in 0..<d { y[i * d + j] = (row[j] - mu) / (v + eps).squareRoot() * gamma[j] + beta[j] }
        }
        return y
    }

    static func gelu(_ x: Double) -> Double { 0.5 * x * (1 + erf(x / 2.0.squareRoot())) }

    /// C [B·T × H·dh] of masked multi-head attention (padded keys excluded; no valid key → uniform).
    static func attention(B: Int, T: Int, H: Int, dh: Int, q: [Double], k: [Double], v: [Double],
                          mask: [Int32]) -> [Double] {
        let d = H * dh
        var c = [Double](repeating: 0, count: B * T * d)
        for b in 0..<B {
            let valid = (0..<T).map { mask[b * T + $0] != 0 }
            let any = valid.contains(true)
            for h in 0..<H {
                for i in 0..<T {
                    var s = [Double](repeating: 0, count: T)
                    for j in 0..<T {
                        var acc = 0.0
                        for e in 0..<dh { acc += q[(b * T + i) * d + h * dh + e] * k[(b * T + j) * d + h * dh + e] }
                        s[j] = acc / Double(dh).squareRoot()
                    }
                    var p = [Double](repeating: 0, count: T)
                    if any {
                        let mx = (0..<T).filter { valid[$0] }.map { s[$0] }.max()!
                        for j in 0..<T where valid[j] { p[j] = exp(s[j] - mx) }
                        let z = p.reduce(0, +)
                        for j in 0..<T { p[j] /= z }
                    } else {
                        p = [Double](repeating: 1 / Double(T), count: T)
                    }
                    for e in 0..<dh {
                        var acc = 0.0
                        for j in 0..<T { acc += p[j] * v[(b * T + j) * d + h * dh + e] }
                        c[(b * T + i) * d + h * dh + e] = acc
                    }
                }
            }
        }
        return c
    }
}

// MARK: - Harness for the attention kernel

private struct AttentionCase {
    let B: Int, T: Int, H: Int, dh: Int
    var q: [Float], k: [Float], v: [Float], dC: [Float]
    let mask: [Int32]
    var d: Int { H * dh }
    var n: Int { B * T }
    var scale: Float { Float(1 / Double(dh).squareRoot()) }

    init(B: Int, T: Int, H: Int, dh: Int, mask: [Int32], seed: UInt64) {
        self.B = B; self.T = T; self.H = H; self.dh = dh; self.mask = mask
        var rng = LoRATestRNG(seed: seed)
        q = rng.array(B * T * H * dh, scale: 1.5)
        k = rng.array(B * T * H * dh, scale: 1.5)
        v = rng.array(B * T * H * dh)
        dC = rng.array(B * T * H * dh)
    }

    func forward() -> (p: [Float], c: [Float]) {
        var p = [Float](repeating: .nan, count: B * H * T * T)
        var c = [Float](repeating: .nan, count: n * d)
        let st = lt_attention_forward(Int64(B), Int64(T), Int64(H), Int64(dh), scale, q, Int64(d), k, Int64(d),
                                      v, Int64(d), mask, &p, &c, Int64(d))
        precondition(st == LT_OK)
        return (p, c)
    }

    func backward(p: [Float]) -> (dq: [Float], dk: [Float], dv: [Float]) {
        var ws: Int64 = 0
        precondition(lt_attention_backward_workspace_size(Int64(B), Int64(T), Int64(H), &ws) == LT_OK)
        var work = [Float](repeating: .nan, count: Int(ws))
        var dq = [Float](repeating: .nan, count: n * d), dk = dq, dv = dq
        let st = lt_attention_backward(Int64(B), Int64(T), Int64(H), Int64(dh), scale, q, Int64(d), k, Int64(d),
                                       v, Int64(d), mask, p, dC, Int64(d), &dq, Int64(d), &dk, Int64(d), &dv, Int64(d), &work)
        precondition(st == LT_OK)
        return (dq, dk, dv)
    }
}

@Suite("NN kernels", .serialized)
struct NNKernelTests {
    init() throws { try Runtime.initialize() }

    // MARK: LayerNorm

    @Test func layerNormForwardAndBackwardMatchFloat64() throws {
        let n = 5, d = 37
        var rng = LoRATestRNG(seed: 11)
        // Rows with a large offset: a one-pass float variance would lose digits here.
        let x = (0..<(n * d)).map { i in Float(100 * (i / d)) + rng.uniform(2) }
        let gamma = rng.array(d, scale: 1.5), beta = rng.array(d)
        let r = rng.array(n * d)
        let eps: Float = 1e-5
        var y = [Float](repeating: .nan, count: n * d), mean = [Float](repeating: .nan, count: n), rstd = mean
        #expect(lt_layernorm_forward(Int64(n), Int64(d), eps, x, Int64(d), gamma, beta, &y, Int64(d), &mean, &rstd) == LT_OK)
        let yRef = NNReference.layerNorm(d64(x), n: n, d: d, eps: Double(eps), gamma: d64(gamma), beta: d64(beta))
        #expect(relativeError(y, yRef) < 2e-6)

        var dx = [Float](repeating: .nan, count: n * d), dg = [Float](repeating: .nan, count: d), db = dg
        #expect(lt_layernorm_backward(Int64(n), Int64(d), r, Int64(d), x, Int64(d), gamma, mean, rstd,
                                      &dx, Int64(d), &dg, &db, 0) == LT_OK)
        let loss = { (x: [Double], g: [Double], b: [Double]) in
            dot(NNReference.layerNorm(x, n: n, d: d, eps: Double(eps), gamma: g, beta: b), d64(r))
        }
        let dxRef = numericGradient(d64(x)) { loss($0, d64(gamma), d64(beta)) }
        let dgRef = numericGradient(d64(gamma)) { loss(d64(x), $0, d64(beta)) }
        let dbRef = numericGradient(d64(beta)) { loss(d64(x), d64(gamma), $0) }
        #expect(relativeError(dx, dxRef) < 2e-5)
        #expect(relativeError(dg, dgRef) < 2e-5)
        #expect(relativeError(db, dbRef) < 2e-5)

        // accumulate = 1 adds to the parameter gradients; in place dX over dY gives the same bits.
        var dg2 = dg, db2 = db
        var dyInPlace = r
        let stInPlace = dyInPlace.withUnsafeMutableBufferPointer { g in
            lt_layernorm_backward(Int64(n), Int64(d), g.baseAddress, Int64(d), x, Int64(d), gamma, mean, rstd,
                                  g.baseAddress, Int64(d), &dg2, &db2, 1)
        }
        #expect(stInPlace == LT_OK)
        #expect(dyInPlace == dx)
        #expect(relativeError(dg2, dgRef.map { 2 * $0 }) < 2e-5)
        #expect(relativeError(db2, dbRef.map { 2 * $0 }) < 2e-5)
    }

    // MARK: GELU

    @Test func geluForwardAndBackwardMatchFloat64() throws {
        let n = 3, d = 41
        var rng = LoRATestRNG(seed: 12)
        let x = rng.array(n * d, scale: 4), r = rng.array(n * d)
        var y = [Float](repeating: .nan, count: n * d)
        #expect(lt_gelu_forward(Int64(n), Int64(d), x, Int64(d), &y, Int64(d)) == LT_OK)
        #expect(relativeError(y, d64(x).map(NNReference.gelu)) < 1e-6)
        var dx = [Float](repeating: .nan, count: n * d)
        #expect(lt_gelu_backward(Int64(n), Int64(d), x, Int64(d), r, Int64(d), &dx, Int64(d)) == LT_OK)
        let ref = numericGradient(d64(x)) { dot($0.map(NNReference.gelu), d64(r)) }
        #expect(relativeError(dx, ref) < 2e-5)
        // Known values: gelu(1) = 0.8413447460685429, gelu'(0) = 0.5.
        var one: [Float] = [1, 0], out: [Float] = [0, 0], g: [Float] = [0, 0]
        #expect(lt_gelu_forward(1, 2, one, 2, &out, 2) == LT_OK)
        #expect(abs(Double(out[0]) - 0.8413447460685429) < 1e-7)
        #expect(lt_gelu_backward(1, 2, one, 2, [1, 1], 2, &g, 2) == LT_OK)
        #expect(g[1] == 0.5)
        // in place
        let stInPlace = one.withUnsafeMutableBufferPointer { p in lt_gelu_forward(1, 2, p.baseAddress, 2, p.baseAddress, 2) }
        #expect(stInPlace == LT_OK)
        #expect(one == out)
    }

    // MARK: Attention

    /// Sequence 0 fully valid, 1 padded at the end, 2 with a hole in the mask, 3 with no valid key.
    private static let maskB4T5: [Int32] = [1, 1, 1, 1, 1,  1, 1, 1, 0, 0,  1, 0, 1, 1, 0,  0, 0, 0, 0, 0]

    @Test func attentionForwardMatchesFloat64() throws {
        let c = AttentionCase(B: 4, T: 5, H: 2, dh: 3, mask: Self.maskB4T5, seed: 21)
        let (p, out) = c.forward()
        let ref = NNReference.attention(B: c.B, T: c.T, H: c.H, dh: c.dh, q: d64(c.q), k: d64(c.k), v: d64(c.v), mask: c.mask)
        #expect(relativeError(out, ref) < 2e-6)
        // P: rows sum to 1; padded keys exactly 0.
        for b in 0..<c.B { for h in 0..<c.H { for i in 0..<c.T {
            let row = p[(((b * c.H + h) * c.T + i) * c.T)..<(((b * c.H + h) * c.T + i + 1) * c.T)]
            #expect(abs(row.reduce(0, +) - 1) < 1e-6)
            if b < 3 { for (j, v) in row.enumerated() where c.mask[b * c.T + j] == 0 { #expect(v == 0) } }
        } } }
    }

    @Test func attentionBackwardMatchesFiniteDifferences() throws {
        let c = AttentionCase(B: 4, T: 5, H: 2, dh: 3, mask: Self.maskB4T5, seed: 22)
        let (p, _) = c.forward()
        let (dq, dk, dv) = c.backward(p: p)
        let q = d64(c.q), k = d64(c.k), v = d64(c.v), r = d64(c.dC)
        func loss(_ q: [Double], _ k: [Double], _ v: [Double]) -> Double {
            dot(NNReference.attention(B: c.B, T: c.T, H: c.H, dh: c.dh, q: q, k: k, v: v, mask: c.mask), r)
        }
        #expect(relativeError(dq, numericGradient(q) { loss($0, k, v) }) < 2e-5)
        #expect(relativeError(dk, numericGradient(k) { loss(q, $0, v) }) < 2e-5)
        #expect(relativeError(dv, numericGradient(v) { loss(q, k, $0) }) < 2e-5)
    }

    @Test func attentionWithoutMaskAndFusedLayout() throws {
        // Q|K|V as column slices of one [n × 3d] buffer (ld 3d), context into a wider buffer.
        let B = 2, T = 7, H = 3, dh = 4, d = H * dh, n = B * T
        var rng = LoRATestRNG(seed: 23)
        let qkv = rng.array(n * 3 * d, scale: 1.5)
        var p = [Float](repeating: .nan, count: B * H * T * T)
        var ctx = [Float](repeating: -7, count: n * (d + 2))
        let scale = Float(1 / Double(dh).squareRoot())
        let st = qkv.withUnsafeBufferPointer { b in
            lt_attention_forward(Int64(B), Int64(T), Int64(H), Int64(dh), scale, b.baseAddress, Int64(3 * d),
                                 b.baseAddress! + d, Int64(3 * d), b.baseAddress! + 2 * d, Int64(3 * d), nil,
                                 &p, &ctx, Int64(d + 2))
        }
        #expect(st == LT_OK)
        func slice(_ off: Int) -> [Double] { (0..<n).flatMap { i in (0..<d).map { Double(qkv[i * 3 * d + off + $0]) } } }
        let ref = NNReference.attention(B: B, T: T, H: H, dh: dh, q: slice(0), k: slice(d), v: slice(2 * d),
                                        mask: [Int32](repeating: 1, count: n))
        let got = (0..<n).flatMap { i in (0..<d).map { ctx[i * (d + 2) + $0] } }
        #expect(relativeError(got, ref) < 2e-6)
        #expect((0..<n).allSatisfy { ctx[$0 * (d + 2) + d] == -7 && ctx[$0 * (d + 2) + d + 1] == -7 })
    }

    @Test func attentionIsThreadCountInvariantAndISAsAgree() throws {
        let mask: [Int32] = (0..<(6 * 40)).map { i in (i % 40) < 40 - 5 * (i / 40) ? 1 : 0 }
        let c = AttentionCase(B: 6, T: 40, H: 3, dh: 16, mask: mask, seed: 24)
        let (p1, c1) = try Runtime.withThreadCount(1) { c.forward() }
        let (p2, c2) = try Runtime.withThreadCount(2) { c.forward() }
        #expect(p1 == p2 && c1 == c2)
        let g1 = try Runtime.withThreadCount(1) { c.backward(p: p1) }
        let g2 = try Runtime.withThreadCount(2) { c.backward(p: p1) }
        #expect(g1.dq == g2.dq && g1.dk == g2.dk && g1.dv == g2.dv)

        let (ps, cs) = try Runtime.withInstructionSet(.scalar) { c.forward() }
        let gs = try Runtime.withInstructionSet(.scalar) { c.backward(p: ps) }
        for isa in testedInstructionSets() where isa != .scalar {
            let (pi, ci) = try Runtime.withInstructionSet(isa) { c.forward() }
            let gi = try Runtime.withInstructionSet(isa) { c.backward(p: pi) }
            #expect(relativeError(ci, d64(cs)) < 1e-5, "\(isa)")
            #expect(relativeError(pi, d64(ps)) < 1e-5, "\(isa)")
            #expect(relativeError(gi.dq, d64(gs.dq)) < 1e-5, "\(isa)")
            #expect(relativeError(gi.dk, d64(gs.dk)) < 1e-5, "\(isa)")
            #expect(relativeError(gi.dv, d64(gs.dv)) < 1e-5, "\(isa)")
        }
    }

    // MARK: Pooling, cross-entropy, linear, embeddings

    @Test func meanPoolingForwardAndBackward() throws {
        let B = 3, T = 4, d = 19
        var rng = LoRATestRNG(seed: 31)
        let x = rng.array(B * T * d), r = rng.array(B * d)
        let mask: [Int32] = [1, 1, 0, 0,  1, 1, 1, 1,  0, 0, 0, 0]
        func ref(_ x: [Double]) -> [Double] {
            (0..<B).flatMap { b -> [Double] in
                let cnt = Double((0..<T).filter { mask[b * T + $0] != 0 }.count)
                return (0..<d).map { j in (0..<T).filter { mask[b * T + $0] != 0 }.reduce(0.0) { $0 + x[(b * T + $1) * d + j] } / max(cnt, 1e-9) }
            }
        }
        var y = [Float](repeating: .nan, count: B * d)
        #expect(lt_mean_pool_forward(Int64(B), Int64(T), Int64(d), x, Int64(d), mask, &y, Int64(d)) == LT_OK)
        #expect(relativeError(y, ref(d64(x))) < 1e-6)
        #expect(y[(2 * d)..<(3 * d)].allSatisfy { $0 == 0 })
        var dx = [Float](repeating: .nan, count: B * T * d)
        #expect(lt_mean_pool_backward(Int64(B), Int64(T), Int64(d), r, Int64(d), mask, &dx, Int64(d)) == LT_OK)
        #expect(relativeError(dx, numericGradient(d64(x)) { dot(ref($0), d64(r)) }) < 2e-5)
    }

    /// A language model's head: 130 rows (three chunks of the forward) over a 5,003-wide
    /// vocabulary, against a float64 reference with libm's exp; the same bits with 1, 2 and 3
    /// threads and in place (dZ = Z); every ISA path close to the scalar one.
    @Test func crossEntropyOverAVocabulary() throws {
        let n = 130, c = 5003
        var rng = LoRATestRNG(seed: 33)
        let z = rng.array(n * c, scale: 8)
        let labels = (0..<n).map { Int32(($0 * 977) % c) }
        var refRows = [Double](), refGrad = [Double]()
        for i in 0..<n {
            let row = d64(Array(z[(i * c)..<((i + 1) * c)]))
            let m = row.max()!
            let lse = m + log(row.reduce(0) { $0 + exp($1 - m) })
            refRows.append(lse - row[Int(labels[i])])
            refGrad += row.enumerated().map { (exp($0.element - lse) - ($0.offset == Int(labels[i]) ? 1 : 0)) * 0.5 / Double(n) }
        }
        func run() -> (loss: Float, rows: [Float], grad: [Float], inPlace: [Float]) {
            var loss: Float = .nan
            var rows = [Float](repeating: .nan, count: n), dz = [Float](repeating: .nan, count: n * c), zz = z
            #expect(lt_cross_entropy_forward(Int64(n), Int64(c), z, Int64(c), labels, &loss, &rows) == LT_OK)
            #expect(lt_cross_entropy_backward(Int64(n), Int64(c), z, Int64(c), labels, 0.5, &dz, Int64(c)) == LT_OK)
            zz.withUnsafeMutableBufferPointer { p in
                #expect(lt_cross_entropy_backward(Int64(n), Int64(c), p.baseAddress, Int64(c), labels, 0.5,
                                                  p.baseAddress, Int64(c)) == LT_OK)
            }
            return (loss, rows, dz, zz)
        }
        var byISA: [(InstructionSet, (loss: Float, rows: [Float], grad: [Float], inPlace: [Float]))] = []
        for isa in Runtime.availableInstructionSets {
            let one = try Runtime.withInstructionSet(isa) { try Runtime.withThreadCount(1) { run() } }
            for threads in [2, 3] {
                let other = try Runtime.withInstructionSet(isa) { try Runtime.withThreadCount(threads) { run() } }
                #expect(one.loss.bitPattern == other.loss.bitPattern && LoRAReference.bitwiseEqual(one.rows, other.rows)
                        && LoRAReference.bitwiseEqual(one.grad, other.grad), "\(isa): 1 vs \(threads) threads")
            }
            #expect(LoRAReference.bitwiseEqual(one.grad, one.inPlace), "\(isa): in place")
            #expect(relativeError(one.rows, refRows) < 1e-7, "\(isa)")
            #expect(abs(Double(one.loss) - refRows.reduce(0, +) / Double(n)) < 1e-6 * abs(Double(one.loss)))
            #expect(relativeError(one.grad, refGrad) < 1e-7, "\(isa)")
            byISA.append((isa, one))
        }
        for (isa, r) in byISA.dropFirst() {
            #expect(relativeError(r.grad, d64(byISA[0].1.grad)) < 1e-7, "\(isa) vs \(byISA[0].0)")
        }
    }

    @Test func crossEntropyForwardAndBackward() throws {
        let n = 4, c = 3
        var rng = LoRATestRNG(seed: 32)
        let z = rng.array(n * c, scale: 5)
        let labels: [Int32] = [0, 2, 1, 2]
        func ref(_ z: [Double]) -> Double {
            var total = 0.0
            for i in 0..<n {
                let row = Array(z[(i * c)..<((i + 1) * c)])
                let m = row.max()!
                var s = 0.0
                for v in row { s += exp(v - m) }
                total += m + log(s) - row[Int(labels[i])]
            }
            return total / Double(n)
        }
        var loss: Float = .nan
        var rows = [Float](repeating: .nan, count: n)
        #expect(lt_cross_entropy_forward(Int64(n), Int64(c), z, Int64(c), labels, &loss, &rows) == LT_OK)
        #expect(abs(Double(loss) - ref(d64(z))) < 1e-6)
        #expect(abs(Double(rows.reduce(0, +)) / Double(n) - Double(loss)) < 1e-5)
        var dz = [Float](repeating: .nan, count: n * c)
        #expect(lt_cross_entropy_backward(Int64(n), Int64(c), z, Int64(c), labels, 2.5, &dz, Int64(c)) == LT_OK)
        #expect(relativeError(dz, numericGradient(d64(z)) { 2.5 * ref($0) }) < 2e-5)
        // Labels out of range are rejected.
        #expect(lt_cross_entropy_forward(Int64(n), Int64(c), z, Int64(c), [0, 3, 1, 2], &loss, nil) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_cross_entropy_backward(Int64(n), Int64(c), z, Int64(c), [0, -1, 1, 2], 1, &dz, Int64(c)) == LT_ERR_INVALID_ARGUMENT)
    }

    @Test func linearForwardWithResidualAndBackward() throws {
        let n = 6, dIn = 9, dOut = 5
        var rng = LoRATestRNG(seed: 33)
        let x = rng.array(n * dIn), w = rng.array(dOut * dIn), b = rng.array(dOut), res = rng.array(n * dOut)
        let r = rng.array(n * dOut)
        func ref(_ x: [Double], _ w: [Double], _ b: [Double]) -> [Double] {
            (0..<n).flatMap { i in (0..<dOut).map { o in
                (0..<dIn).reduce(b[o]) { $0 + x[i * dIn + $1] * w[o * dIn + $1] } + Double(res[i * dOut + o]) } }
        }
        var y = [Float](repeating: .nan, count: n * dOut)
        #expect(lt_linear_forward(Int64(n), Int64(dIn), Int64(dOut), x, Int64(dIn), w, Int64(dIn), b, res, Int64(dOut), &y, Int64(dOut)) == LT_OK)
        #expect(relativeError(y, ref(d64(x), d64(w), d64(b))) < 1e-6)
        // Residual aliasing the output: Y += X Wᵀ + b.
        var yy = res
        let stAlias = yy.withUnsafeMutableBufferPointer { p in
            lt_linear_forward(Int64(n), Int64(dIn), Int64(dOut), x, Int64(dIn), w, Int64(dIn), b, p.baseAddress, Int64(dOut), p.baseAddress, Int64(dOut))
        }
        #expect(stAlias == LT_OK)
        #expect(yy == y)
        var dx = [Float](repeating: .nan, count: n * dIn), dw = [Float](repeating: .nan, count: dOut * dIn), db = [Float](repeating: .nan, count: dOut)
        #expect(lt_linear_backward_input(Int64(n), Int64(dIn), Int64(dOut), r, Int64(dOut), w, Int64(dIn), &dx, Int64(dIn), 0) == LT_OK)
        #expect(lt_linear_backward_params(Int64(n), Int64(dIn), Int64(dOut), r, Int64(dOut), x, Int64(dIn), &dw, &db, 0) == LT_OK)
        let loss = { (x: [Double], w: [Double], b: [Double]) in dot(ref(x, w, b), d64(r)) }
        #expect(relativeError(dx, numericGradient(d64(x)) { loss($0, d64(w), d64(b)) }) < 2e-5)
        #expect(relativeError(dw, numericGradient(d64(w)) { loss(d64(x), $0, d64(b)) }) < 2e-5)
        #expect(relativeError(db, numericGradient(d64(b)) { loss(d64(x), d64(w), $0) }) < 2e-5)
    }

    /// The fused epilogues (bias and residual in lt_linear_forward; lt_linear_gelu_forward and
    /// lt_linear_gelu_backward_input) give the bits of the unfused kernels: on our GEMM the plain
    /// product (lt_linear_forward without bias or residual) with y = P + (r + b) added here, and
    /// lt_linear_forward then lt_gelu_forward / lt_linear_backward_input then lt_gelu_backward. Checked on every ISA, both GEMM backends (OpenBLAS
    /// takes the unfused fallback), 1 and 2 threads, on shapes with ragged tiles, several K
    /// chunks (d_in = 1000) and outputs too small for the fused path.
    @Test func fusedLinearEpiloguesGiveTheUnfusedBits() throws {
        func bits(_ a: [Float]) -> [UInt32] { a.map(\.bitPattern) }
        /// Expects equal bits; a failure reports how many entries differ (not the arrays).
        func expectSameBits(_ a: [Float], _ b: [Float], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
            let differing = zip(bits(a), bits(b)).filter { $0 != $1 }.count + abs(a.count - b.count)
            #expect(differing == 0, "\(what)", sourceLocation: sourceLocation)
        }
        for (n, dIn, dOut, seed) in [(70, 1000, 300, 51), (37, 384, 200, 52), (6, 9, 5, 53), (3, 40, 2, 54)] {
            var rng = LoRATestRNG(seed: UInt64(seed))
            let x = rng.array(n * dIn), w = rng.array(dOut * dIn), b = rng.array(dOut), res = rng.array(n * dOut)
            let w2 = rng.array(dIn * dOut), dY = rng.array(n * dIn)   // the layer after: dOut → dIn
            let z0 = rng.array(n * dOut, scale: 3)                        // a pre-activation for the backward
            for backend in GEMMBackend.allCases {
                for isa in testedInstructionSets() {
                    for threads in [1, 2] {
                        let label = "n \(n) d_in \(dIn) d_out \(dOut), \(backend), \(isa), \(threads) threads"
                        try Runtime.withGEMMBackend(backend) {
                            try Runtime.withInstructionSet(isa) {
                                try Runtime.withThreadCount(threads) {
                                    // the plain product and the references built on it
                                    var p = [Float](repeating: .nan, count: n * dOut)
                                    #expect(lt_linear_forward(Int64(n), Int64(dIn), Int64(dOut), x, Int64(dIn), w, Int64(dIn), nil, nil, 0, &p, Int64(dOut)) == LT_OK)
                                    let refYbr = (0..<(n * dOut)).map { p[$0] + (res[$0] + b[$0 % dOut]) }
                                    let refYr = (0..<(n * dOut)).map { p[$0] + res[$0] }
                                    var refZ = [Float](repeating: .nan, count: n * dOut)
                                    #expect(lt_linear_forward(Int64(n), Int64(dIn), Int64(dOut), x, Int64(dIn), w, Int64(dIn), b, nil, 0, &refZ, Int64(dOut)) == LT_OK)
                                    var refG = [Float](repeating: .nan, count: n * dOut)
                                    #expect(lt_gelu_forward(Int64(n), Int64(dOut), refZ, Int64(dOut), &refG, Int64(dOut)) == LT_OK)
                                    var refDZ = [Float](repeating: .nan, count: n * dOut)
                                    #expect(lt_linear_backward_input(Int64(n), Int64(dOut), Int64(dIn), dY, Int64(dIn), w2, Int64(dOut), &refDZ, Int64(dOut), 0) == LT_OK)
                                    let dzIn = refDZ
                                    #expect(lt_gelu_backward(Int64(n), Int64(dOut), z0, Int64(dOut), dzIn, Int64(dOut), &refDZ, Int64(dOut)) == LT_OK)

                                    var y = [Float](repeating: .nan, count: n * dOut)
                                    #expect(lt_linear_forward(Int64(n), Int64(dIn), Int64(dOut), x, Int64(dIn), w, Int64(dIn), b, res, Int64(dOut), &y, Int64(dOut)) == LT_OK)
                                    let withBoth = y
                                    #expect(lt_linear_forward(Int64(n), Int64(dIn), Int64(dOut), x, Int64(dIn), w, Int64(dIn), nil, res, Int64(dOut), &y, Int64(dOut)) == LT_OK)
                                    let withResidual = y
                                    // residual aliasing the output (always the unfused path): Y += X Wᵀ + b
                                    var yy = res
                                    let stAlias = yy.withUnsafeMutableBufferPointer { q in
                                        lt_linear_forward(Int64(n), Int64(dIn), Int64(dOut), x, Int64(dIn), w, Int64(dIn), b, q.baseAddress, Int64(dOut), q.baseAddress, Int64(dOut))
                                    }
                                    #expect(stAlias == LT_OK)
                                    expectSameBits(yy, withBoth, "aliased residual: \(label)")
                                    if backend == .lorta {
                                        // Our GEMM adds C once, after the whole sum (OpenBLAS's beta = 1
                                        // path may add it chunk by chunk, so no such identity there).
                                        expectSameBits(withBoth, refYbr, "bias + residual: \(label)")
                                        expectSameBits(withResidual, refYr, "residual: \(label)")
                                        expectSameBits(refZ, (0..<(n * dOut)).map { p[$0] + b[$0 % dOut] }, "bias: \(label)")
                                    }

                                    var z = [Float](repeating: .nan, count: n * dOut), g = z
                                    #expect(lt_linear_gelu_forward(Int64(n), Int64(dIn), Int64(dOut), x, Int64(dIn), w, Int64(dIn), b, &z, Int64(dOut), &g, Int64(dOut)) == LT_OK)
                                    expectSameBits(z, refZ, "gelu forward Z: \(label)")
                                    expectSameBits(g, refG, "gelu forward G: \(label)")
                                    var inPlace = [Float](repeating: .nan, count: n * dOut)
                                    let stInPlace = inPlace.withUnsafeMutableBufferPointer { q in
                                        lt_linear_gelu_forward(Int64(n), Int64(dIn), Int64(dOut), x, Int64(dIn), w, Int64(dIn), b, q.baseAddress, Int64(dOut), q.baseAddress, Int64(dOut))
                                    }
                                    #expect(stInPlace == LT_OK)
                                    expectSameBits(inPlace, refG, "gelu forward in place: \(label)")

                                    var dz = [Float](repeating: .nan, count: n * dOut)
                                    #expect(lt_linear_gelu_backward_input(Int64(n), Int64(dOut), Int64(dIn), dY, Int64(dIn), w2, Int64(dOut), z0, Int64(dOut), &dz, Int64(dOut)) == LT_OK)
                                    expectSameBits(dz, refDZ, "gelu backward: \(label)")
                                }
                            }
                        }
                    }
                }
            }
        }
        // Argument checks.
        var z = [Float](repeating: 0, count: 6), g = z
        let x: [Float] = [1, 2, 3], w: [Float] = [1, 2, 3, 4, 5, 6]
        #expect(lt_linear_gelu_forward(1, 3, 2, nil, 3, w, 3, nil, &z, 2, &g, 2) == LT_ERR_NULL_POINTER)
        #expect(lt_linear_gelu_forward(1, 3, 2, x, 3, w, 3, nil, &z, 1, &g, 2) == LT_ERR_INVALID_ARGUMENT)
        let stLd = z.withUnsafeMutableBufferPointer { q in lt_linear_gelu_forward(2, 3, 2, x + x, 3, w, 3, nil, q.baseAddress, 2, q.baseAddress, 3) }
        #expect(stLd == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_linear_gelu_backward_input(1, 3, 2, [1, 1], 2, w, 3, nil, 3, &z, 3) == LT_ERR_NULL_POINTER)
        #expect(lt_linear_gelu_backward_input(-1, 3, 2, [1, 1], 2, w, 3, x, 3, &z, 3) == LT_ERR_INVALID_ARGUMENT)
    }

    @Test func embeddingsSumWordPositionAndType() throws {
        let B = 2, T = 3, d = 4, vocab = 5, maxPos = 4
        var rng = LoRATestRNG(seed: 34)
        let word = rng.array(vocab * d), pos = rng.array(maxPos * d), type = rng.array(d)
        let ids: [Int32] = [4, 0, 2, 1, 1, 3]
        var y = [Float](repeating: .nan, count: B * T * d)
        #expect(lt_embeddings_forward(Int64(B), Int64(T), Int64(d), ids, word, Int64(vocab), pos, Int64(maxPos), type, &y, Int64(d)) == LT_OK)
        for i in 0..<(B * T) { for j in 0..<d {
            #expect(y[i * d + j] == (word[Int(ids[i]) * d + j] + pos[(i % T) * d + j]) + type[j])
        } }
        #expect(lt_embeddings_forward(Int64(B), Int64(T), Int64(d), [4, 0, 5, 1, 1, 3], word, Int64(vocab), pos, Int64(maxPos), type, &y, Int64(d)) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_embeddings_forward(Int64(B), 5, Int64(d), ids + ids, word, Int64(vocab), pos, Int64(maxPos), type, &y, Int64(d)) == LT_ERR_INVALID_ARGUMENT)
    }

    // MARK: Determinism and argument checks

    /// Every call returns LT_OK (a kernel that refused the call would leave equal, untouched
    /// outputs in both runs) and every output has the same bit patterns with 1 and 2 threads
    /// (`==` on floats would take -0 for +0 and fail on NaN in both).
    @Test func rowKernelsAreThreadCountInvariant() throws {
        let n = 300, d = 384
        var rng = LoRATestRNG(seed: 41)
        let x = rng.array(n * d, scale: 3), r = rng.array(n * d), g = rng.array(d), b = rng.array(d)
        func run() -> [[Float]] {
            var status: [(String, lt_status)] = []
            var y = [Float](repeating: 0, count: n * d), m = [Float](repeating: 0, count: n), s = m
            status.append(("layernorm forward", lt_layernorm_forward(Int64(n), Int64(d), 1e-12, x, Int64(d), g, b, &y, Int64(d), &m, &s)))
            var dx = y, dg = g, db = b
            status.append(("layernorm backward", lt_layernorm_backward(Int64(n), Int64(d), r, Int64(d), x, Int64(d), g, m, s, &dx, Int64(d), &dg, &db, 0)))
            var ge = y, dge = y
            status.append(("gelu forward", lt_gelu_forward(Int64(n), Int64(d), x, Int64(d), &ge, Int64(d))))
            status.append(("gelu backward", lt_gelu_backward(Int64(n), Int64(d), x, Int64(d), r, Int64(d), &dge, Int64(d))))
            let mask = (0..<n).map { Int32($0 % 7 == 0 ? 0 : 1) }
            var pooled = [Float](repeating: 0, count: 10 * d)
            status.append(("mean pool", lt_mean_pool_forward(10, 30, Int64(d), x, Int64(d), mask, &pooled, Int64(d))))
            var dW = [Float](repeating: 0, count: d * d), dB = g
            status.append(("linear backward params", lt_linear_backward_params(Int64(n), Int64(d), Int64(d), r, Int64(d), x, Int64(d), &dW, &dB, 0)))
            for (name, st) in status { #expect(st == LT_OK, "\(name): \(String(cString: lt_status_string(Int32(st.rawValue))))") }
            return [y, m, s, dx, dg, db, ge, dge, pooled, dW, dB]
        }
        let one = try Runtime.withThreadCount(1) { run() }
        let two = try Runtime.withThreadCount(2) { run() }
        let names = ["y", "mean", "rstd", "dx", "dgamma", "dbeta", "gelu", "dgelu", "pooled", "dW", "db"]
        for (k, (p, q)) in zip(one, two).enumerated() {
            #expect(p.map(\.bitPattern) == q.map(\.bitPattern), "\(names[k]) differs between 1 and 2 threads")
        }
    }

    @Test func invalidArgumentsAreRejected() throws {
        var y = [Float](repeating: 0, count: 16), y2 = y, m = [Float](repeating: 0, count: 4), m2 = m
        let x = [Float](repeating: 1, count: 16)
        #expect(lt_layernorm_forward(4, 4, 1e-12, nil, 4, x, x, &y, 4, &m, &m2) == LT_ERR_NULL_POINTER)
        #expect(lt_layernorm_forward(4, 4, 0, x, 4, x, x, &y, 4, nil, nil) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_layernorm_forward(4, 4, .nan, x, 4, x, x, &y, 4, nil, nil) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_layernorm_forward(4, 4, 1e-5, x, 3, x, x, &y, 4, nil, nil) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_gelu_forward(-1, 4, x, 4, &y, 4) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_attention_forward(1, 4, 0, 4, 1, x, 4, x, 4, x, 4, nil, &y, &y2, 4) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_attention_forward(1, 4, 2, 2, .infinity, x, 4, x, 4, x, 4, nil, &y, &y2, 4) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_attention_forward(1, 4, 2, 2, 1, x, 3, x, 4, x, 4, nil, &y, &y2, 4) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_attention_backward(1, 4, 2, 2, 1, x, 4, x, 4, x, 4, nil, x, x, 4, &y, 4, &y2, 4, &m, 4, nil) == LT_ERR_NULL_POINTER)
        var ws: Int64 = 0
        #expect(lt_attention_backward_workspace_size(Int64.max / 2, 4, 2, &ws) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_mean_pool_forward(1, 4, 4, x, 4, nil, &y, 4) == LT_ERR_NULL_POINTER)
        #expect(lt_cross_entropy_forward(0, 2, x, 2, [], &y, nil) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_linear_forward(2, 4, 4, x, 4, x, 4, nil, x, 3, &y, 4) == LT_ERR_INVALID_ARGUMENT)
    }
}

@Suite("GELU instruction sets", .serialized)
struct GELUISATests {
    @Test func everyISAAgreesWithScalar() throws {
        let n = 37, d = 203   // odd width: vector tails on every ISA
        var state: UInt64 = 0x9E3779B97F4A7C15
        func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2_000_001) / 250_000 - 4   // [-4, 4]
        }
        let x = (0..<(n * d)).map { _ in next() } + [-90, -20, -5, 0, 5, 20, 90].flatMap { v in [Float](repeating: v, count: d) }
        let rows = n + 7
        let g = (0..<(rows * d)).map { _ in next() }
        func run() -> ([Float], [Float]) {
            var y = [Float](repeating: 0, count: rows * d), dx = y
            #expect(lt_gelu_forward(Int64(rows), Int64(d), x, Int64(d), &y, Int64(d)) == LT_OK)
            #expect(lt_gelu_backward(Int64(rows), Int64(d), x, Int64(d), g, Int64(d), &dx, Int64(d)) == LT_OK)
            return (y, dx)
        }
        let (ys, dxs) = try Runtime.withInstructionSet(.scalar) { run() }
        #expect(ys.allSatisfy(\.isFinite) && dxs.allSatisfy(\.isFinite))
        for isa in testedInstructionSets() where isa != .scalar {
            let (y, dx) = try Runtime.withInstructionSet(isa) { run() }
            for i in 0..<y.count {
                #expect(abs(y[i] - ys[i]) <= 1e-6 * max(1, abs(ys[i])), "\(isa) forward at \(i)")
                #expect(abs(dx[i] - dxs[i]) <= 1e-6 * max(1, abs(dxs[i])), "\(isa) backward at \(i)")
            }
        }
    }

    /// In place (Y over X, dX over dY: how the model calls them) the element-wise kernels run
    /// their vector loops too; the result must be the bits of the out-of-place call, on every ISA.
    @Test func inPlaceCallsGiveTheOutOfPlaceBits() throws {
        let n = 19, d = 203, dn = 37   // odd widths: vector tails
        var rng = LoRATestRNG(seed: 77)
        let x = rng.array(n * d, scale: 6), g = rng.array(n * d)
        let xn = rng.array(n * dn, scale: 3), gamma = rng.array(dn, scale: 1.5), beta = rng.array(dn)
        for isa in testedInstructionSets() {
            try Runtime.withInstructionSet(isa) {
                var y = [Float](repeating: .nan, count: n * d), yIn = x
                #expect(lt_gelu_forward(Int64(n), Int64(d), x, Int64(d), &y, Int64(d)) == LT_OK)
                let st1 = yIn.withUnsafeMutableBufferPointer { p in
                    lt_gelu_forward(Int64(n), Int64(d), p.baseAddress, Int64(d), p.baseAddress, Int64(d))
                }
                #expect(st1 == LT_OK && yIn == y, "\(isa) GELU forward")
                var dx = [Float](repeating: .nan, count: n * d), dxIn = g
                #expect(lt_gelu_backward(Int64(n), Int64(d), x, Int64(d), g, Int64(d), &dx, Int64(d)) == LT_OK)
                let st2 = dxIn.withUnsafeMutableBufferPointer { p in
                    lt_gelu_backward(Int64(n), Int64(d), x, Int64(d), p.baseAddress, Int64(d), p.baseAddress, Int64(d))
                }
                #expect(st2 == LT_OK && dxIn == dx, "\(isa) GELU backward")
                var ln = [Float](repeating: .nan, count: n * dn), lnIn = xn
                #expect(lt_layernorm_forward(Int64(n), Int64(dn), 1e-12, xn, Int64(dn), gamma, beta, &ln, Int64(dn),
                                             nil, nil) == LT_OK)
                let st3 = lnIn.withUnsafeMutableBufferPointer { p in
                    lt_layernorm_forward(Int64(n), Int64(dn), 1e-12, p.baseAddress, Int64(dn), gamma, beta,
                                         p.baseAddress, Int64(dn), nil, nil)
                }
                #expect(st3 == LT_OK && lnIn == ln, "\(isa) LayerNorm forward")
            }
        }
    }
}

@Suite("Low-rank adapter kernels", .serialized)
struct LowRankKernelTests {
    /// Naive float64 `s (M Aᵀ) Bᵀ` for the forward (M = X, n × d_in) and `s (M B) A` for the
    /// input gradient (M = dY, n × d_out). A [r × d_in], B [d_out × r].
    static func reference(forward: Bool, n: Int, dIn: Int, dOut: Int, r: Int, s: Double,
                          m: [Float], ldm: Int, a: [Float], b: [Float]) -> [Double] {
        let cols = forward ? dOut : dIn
        var out = [Double](repeating: 0, count: n * cols)
        for i in 0..<n {
            var t = [Double](repeating: 0, count: r)
            for k in 0..<r {
                if forward { for j in 0..<dIn { t[k] += Double(m[i * ldm + j]) * Double(a[k * dIn + j]) } }
                else { for o in 0..<dOut { t[k] += Double(m[i * ldm + o]) * Double(b[o * r + k]) } }
            }
            for c in 0..<cols {
                var v = 0.0
                for k in 0..<r { v += t[k] * (forward ? Double(b[c * r + k]) : Double(a[k * dIn + c])) }
                out[i * cols + c] = s * v
            }
        }
        return out
    }

    /// Runs both kernels on a strided layout (ld larger than the width, as a column slice of
    /// a fused Q|K|V buffer), accumulating onto `base`; returns the written blocks.
    static func run(n: Int, dIn: Int, dOut: Int, r: Int, s: Float, x: [Float], dy: [Float], a: [Float], b: [Float],
                    base: Float, accumulate: Int32) -> (y: [Float], dx: [Float]) {
        let ldy = dOut + 5, lddx = dIn + 3
        var ws: Int64 = 0
        #expect(lt_lowrank_workspace_size(Int64(dIn), Int64(dOut), Int64(r), &ws) == LT_OK)
        var work = [Float](repeating: .nan, count: Int(ws))
        var y = [Float](repeating: base, count: n * ldy), dx = [Float](repeating: base, count: n * lddx)
        #expect(lt_lowrank_forward(Int64(n), Int64(dIn), Int64(dOut), Int64(r), s, x, Int64(dIn), a, b,
                                   &y, Int64(ldy), accumulate, &work) == LT_OK)
        #expect(lt_lowrank_backward_input(Int64(n), Int64(dIn), Int64(dOut), Int64(r), s, dy, Int64(dOut), a, b,
                                          &dx, Int64(lddx), accumulate, &work) == LT_OK)
        // Columns beyond the width are untouched.
        for i in 0..<n {
            #expect((dOut..<ldy).allSatisfy { y[i * ldy + $0] == base })
            #expect((dIn..<lddx).allSatisfy { dx[i * lddx + $0] == base })
        }
        let yb = (0..<n).flatMap { i in y[(i * ldy)..<(i * ldy + dOut)] }
        let dxb = (0..<n).flatMap { i in dx[(i * lddx)..<(i * lddx + dIn)] }
        return (yb, dxb)
    }

    @Test(arguments: [(8, 0), (8, 1), (70, 1)])   // r = 70: two rank chunks
    func matchesFloat64(r: Int, accumulate: Int32) throws {
        let n = 23, dIn = 37, dOut = 29
        var rng = LoRATestRNG(seed: 90 + UInt64(r))
        let x = rng.array(n * dIn), dy = rng.array(n * dOut), a = rng.array(r * dIn), b = rng.array(dOut * r)
        let s: Float = 0.75, base: Float = 0.5
        let (y, dx) = Self.run(n: n, dIn: dIn, dOut: dOut, r: r, s: s, x: x, dy: dy, a: a, b: b, base: base,
                               accumulate: accumulate)
        let add = accumulate == 1 ? Double(base) : 0
        let yRef = Self.reference(forward: true, n: n, dIn: dIn, dOut: dOut, r: r, s: Double(s), m: x, ldm: dIn, a: a, b: b)
        let dxRef = Self.reference(forward: false, n: n, dIn: dIn, dOut: dOut, r: r, s: Double(s), m: dy, ldm: dOut, a: a, b: b)
        #expect(relativeError(y, yRef.map { $0 + add }) < 1e-5)
        #expect(relativeError(dx, dxRef.map { $0 + add }) < 1e-5)
    }

    @Test func threadCountInvariantAndISAsAgree() throws {
        let n = 100, dIn = 384, dOut = 384, r = 8   // 1.2 MFLOP: above the parallel threshold
        var rng = LoRATestRNG(seed: 95)
        let x = rng.array(n * dIn), dy = rng.array(n * dOut), a = rng.array(r * dIn), b = rng.array(dOut * r)
        func go() -> [Float] {
            let (y, dx) = Self.run(n: n, dIn: dIn, dOut: dOut, r: r, s: 2, x: x, dy: dy, a: a, b: b, base: 1, accumulate: 1)
            return y + dx
        }
        for isa in testedInstructionSets() {
            let one = try Runtime.withInstructionSet(isa) { try Runtime.withThreadCount(1) { go() } }
            let two = try Runtime.withInstructionSet(isa) { try Runtime.withThreadCount(2) { go() } }
            #expect(one == two, "\(isa)")
            let scalar = try Runtime.withInstructionSet(.scalar) { go() }
            #expect(relativeError(one, d64(scalar)) < 1e-5, "\(isa)")
        }
    }

    @Test func invalidArgumentsAreRejected() throws {
        var ws: Int64 = 0
        #expect(lt_lowrank_workspace_size(4, 4, 0, &ws) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_lowrank_workspace_size(4, 4, 2, nil) == LT_ERR_NULL_POINTER)
        #expect(lt_lowrank_workspace_size(4, Int64.max / 2, 4, &ws) == LT_ERR_INVALID_ARGUMENT)
        let x = [Float](repeating: 1, count: 16)
        var y = x, w = x
        #expect(lt_lowrank_forward(2, 4, 4, 2, 1, x, 4, x, x, &y, 4, 0, nil) == LT_ERR_NULL_POINTER)
        #expect(lt_lowrank_forward(2, 4, 4, 2, 1, x, 3, x, x, &y, 4, 0, &w) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_lowrank_forward(2, 4, 4, 2, .nan, x, 4, x, x, &y, 4, 0, &w) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_lowrank_forward(2, 4, 4, 2, 1, x, 4, x, x, &y, 4, 2, &w) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_lowrank_backward_input(2, 4, 4, 2, 1, x, 4, x, x, &y, 3, 0, &w) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_lowrank_backward_input(-1, 4, 4, 2, 1, x, 4, x, x, &y, 4, 0, &w) == LT_ERR_INVALID_ARGUMENT)
        #expect(y == x)
    }
}
