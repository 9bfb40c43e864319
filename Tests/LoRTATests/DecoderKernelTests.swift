import Foundation
import Testing
import CKernels
@testable import LoRTA

// Tests of the Llama-family decoder kernels of lt_nn.h (RMSNorm, RoPE, SwiGLU, causal
// grouped-query attention with a key/value cache) and of their micro-kernels (dot_block,
// axpy_block). References are naive float64 code written here, independent of the kernels;
// every backward is checked against central finite differences of that float64 forward
// (h = 1e-6, tolerance 2e-5 relative to the largest gradient entry, as NNKernelTests does).

private func bitwise(_ a: [Float], _ b: [Float]) -> Bool { LoRAReference.bitwiseEqual(a, b) }

/// Worst error seen by each check, printed at the end of a test (for the record).
private func report(_ name: String, _ value: Double) {
    print(String(format: "  [decoder] %@: %.3g", name, value))
}

// MARK: - float64 references

private enum DecoderReference {
    /// y = γ ∘ x / √(mean(x²) + eps), row-wise.
    static func rmsNorm(_ x: [Double], n: Int, d: Int, eps: Double, gamma: [Double]) -> [Double] {
        var y = x
        for i in 0..<n {
            var ss = 0.0
            for j in 0..<d { ss += x[i * d + j] * x[i * d + j] }
            let r = 1 / (ss / Double(d) + eps).squareRoot()
            for j in 0..<d { y[i * d + j] = gamma[j] * x[i * d + j] * r }
        }
        return y
    }

    /// The float32 angle transformers uses: Float(pos) · inv_freq[j] as a float product.
    static func angle(_ pos: Int32, _ invFreq: Float) -> Float { Float(pos) * invFreq }

    /// transformers' apply_rotary_pos_emb on the first dRot columns of every head, in float64
    /// from the float32 angles: emb = cat(freqs, freqs), x·cos(emb) + rotate_half(x)·sin(emb),
    /// rotate_half(x) = cat(−x[half:], x[:half]). `inverse` rotates by −θ.
    static func rope(_ x: [Double], n: Int, H: Int, dh: Int, dRot: Int, pos: [Int32], invFreq: [Float],
                     inverse: Bool = false) -> [Double] {
        let half = dRot / 2, d = H * dh
        var y = x
        for i in 0..<n {
            let emb = (0..<dRot).map { j in Double(angle(pos[i], invFreq[j % half])) }
            for h in 0..<H {
                let base = i * d + h * dh
                for j in 0..<dRot {
                    let rot = j < half ? -x[base + j + half] : x[base + j - half]
                    let s = inverse ? -sin(emb[j]) : sin(emb[j])
                    y[base + j] = x[base + j] * cos(emb[j]) + rot * s
                }
            }
        }
        return y
    }

    static func silu(_ g: Double) -> Double { g / (1 + exp(-g)) }

    /// Causal GQA attention over a cache: C [B·T × H·dh] and P [B·H·T·S] (S = past + T).
    /// q: B·T rows of H·dh; k, v: B·cacheLen rows of Hkv·dh (row s of sequence b at b·cacheLen + s).
    static func attention(B: Int, T: Int, past: Int, H: Int, Hkv: Int, dh: Int, scale: Double,
                          q: [Double], k: [Double], v: [Double], cacheLen: Int) -> (c: [Double], p: [Double]) {
        let rep = H / Hkv, d = H * dh, dkv = Hkv * dh, S = past + T
        var c = [Double](repeating: 0, count: B * T * d)
        var p = [Double](repeating: 0, count: B * H * T * S)
        for b in 0..<B {
            for h in 0..<H {
                let g = h / rep
                for t in 0..<T {
                    let e = past + t + 1
                    var s = [Double](repeating: 0, count: e)
                    for j in 0..<e {
                        var acc = 0.0
                        for x in 0..<dh { acc += q[(b * T + t) * d + h * dh + x] * k[(b * cacheLen + j) * dkv + g * dh + x] }
                        s[j] = acc * scale
                    }
                    let mx = s.max()!
                    var z = 0.0
                    for j in 0..<e { s[j] = exp(s[j] - mx); z += s[j] }
                    let row = ((b * H + h) * T + t) * S
                    for j in 0..<e { p[row + j] = s[j] / z }
                    for x in 0..<dh {
                        var acc = 0.0
                        for j in 0..<e { acc += p[row + j] * v[(b * cacheLen + j) * dkv + g * dh + x] }
                        c[(b * T + t) * d + h * dh + x] = acc
                    }
                }
            }
        }
        return (c, p)
    }
}

// MARK: - Harness for the attention kernel

/// One attention problem: Q [B·T × H·dh], caches K, V [B·cacheLen × Hkv·dh] whose rows past
/// past + T hold NaN (the kernel must never read them), and an output gradient dC.
private struct CausalCase {
    let B: Int, T: Int, past: Int, H: Int, Hkv: Int, dh: Int, cacheLen: Int
    var q: [Float], k: [Float], v: [Float], dC: [Float]
    var d: Int { H * dh }
    var dkv: Int { Hkv * dh }
    var S: Int { past + T }
    var scale: Float { Float(1 / Double(dh).squareRoot()) }

    init(B: Int, T: Int, past: Int, H: Int, Hkv: Int, dh: Int, spareRows: Int = 2, seed: UInt64) {
        self.B = B; self.T = T; self.past = past; self.H = H; self.Hkv = Hkv; self.dh = dh
        cacheLen = past + T + spareRows
        var rng = LoRATestRNG(seed: seed)
        q = rng.array(B * T * H * dh, scale: 1.5)
        k = rng.array(B * cacheLen * Hkv * dh, scale: 1.5)
        v = rng.array(B * cacheLen * Hkv * dh)
        dC = rng.array(B * T * H * dh)
        for b in 0..<B { for s in (past + T)..<cacheLen { for x in 0..<(Hkv * dh) {
            k[(b * cacheLen + s) * Hkv * dh + x] = .nan
            v[(b * cacheLen + s) * Hkv * dh + x] = .nan
        } } }
    }

    var workspaceSize: Int {
        var ws: Int64 = 0
        precondition(lt_causal_attention_workspace_size(Int64(B), Int64(T), Int64(past), Int64(H), &ws) == LT_OK)
        return Int(ws)
    }

    /// The forward over queries `q` (B·T rows) against the cache; P when asked.
    func forward(withP: Bool = false, q queries: [Float]? = nil, T rows: Int? = nil, past start: Int? = nil)
        -> (c: [Float], p: [Float]) {
        let T = rows ?? self.T, past = start ?? self.past
        var ws: Int64 = 0
        precondition(lt_causal_attention_workspace_size(Int64(B), Int64(T), Int64(past), Int64(H), &ws) == LT_OK)
        var work = [Float](repeating: .nan, count: max(Int(ws), 1))
        var p = [Float](repeating: .nan, count: withP ? B * H * T * (past + T) : 0)
        var c = [Float](repeating: .nan, count: B * T * d)
        let st = p.withUnsafeMutableBufferPointer { pp in
            lt_causal_attention_forward(Int64(B), Int64(T), Int64(past), Int64(H), Int64(Hkv), Int64(dh), scale,
                                        queries ?? q, Int64(d), k, Int64(dkv), v, Int64(dkv), Int64(cacheLen),
                                        withP ? pp.baseAddress : nil, &c, Int64(d), &work)
        }
        precondition(st == LT_OK, "forward status \(st)")
        return (c, p)
    }

    /// The backward (past = 0; the cache then holds exactly the B·T rows: cacheLen == T), with
    /// the forward's saved P or (nil) recomputing it.
    func backward(p: [Float]?) -> (dq: [Float], dk: [Float], dv: [Float]) {
        precondition(past == 0 && cacheLen == T)
        var ws: Int64 = 0
        precondition(lt_causal_attention_backward_workspace_size(Int64(B), Int64(T), Int64(H), &ws) == LT_OK)
        var work = [Float](repeating: .nan, count: max(Int(ws), 1))
        var dq = [Float](repeating: .nan, count: B * T * d)
        var dk = [Float](repeating: .nan, count: B * T * dkv), dv = dk
        let st = (p ?? []).withUnsafeBufferPointer { pp in
            lt_causal_attention_backward(Int64(B), Int64(T), Int64(H), Int64(Hkv), Int64(dh), scale,
                                         q, Int64(d), k, Int64(dkv), v, Int64(dkv), p == nil ? nil : pp.baseAddress,
                                         dC, Int64(d), &dq, Int64(d), &dk, Int64(dkv), &dv, Int64(dkv), &work)
        }
        precondition(st == LT_OK, "backward status \(st)")
        return (dq, dk, dv)
    }

    func reference(q: [Double]? = nil, k: [Double]? = nil, v: [Double]? = nil) -> (c: [Double], p: [Double]) {
        DecoderReference.attention(B: B, T: T, past: past, H: H, Hkv: Hkv, dh: dh, scale: Double(scale),
                                   q: q ?? d64(self.q), k: k ?? d64(self.k), v: v ?? d64(self.v), cacheLen: cacheLen)
    }

    /// Queries of token t of every sequence (B rows).
    func queries(at t: Int) -> [Float] {
        var out: [Float] = []
        for b in 0..<B {
            let lo: Int = (b * T + t) * d
            out += q[lo..<(lo + d)]
        }
        return out
    }
}

// MARK: - RMSNorm, RoPE, SwiGLU

@Suite("Decoder kernels", .serialized)
struct DecoderKernelTests {
    init() throws { try Runtime.initialize() }

    @Test func rmsNormForwardAndBackwardMatchFloat64() throws {
        let n = 5, d = 37
        var rng = LoRATestRNG(seed: 101)
        let x = (0..<(n * d)).map { i in Float(10 * (i / d)) + rng.uniform(2) }
        let gamma = rng.array(d, scale: 1.5), r = rng.array(n * d)
        let eps: Float = 1e-5
        var y = [Float](repeating: .nan, count: n * d), rstd = [Float](repeating: .nan, count: n)
        #expect(lt_rmsnorm_forward(Int64(n), Int64(d), eps, x, Int64(d), gamma, &y, Int64(d), &rstd) == LT_OK)
        let yRef = DecoderReference.rmsNorm(d64(x), n: n, d: d, eps: Double(eps), gamma: d64(gamma))
        let fwdErr = relativeError(y, yRef)
        report("RMSNorm forward rel. error", fwdErr)
        #expect(fwdErr < 1e-6)
        // rstd is the float rounding of the double 1/√(mean(x²) + eps).
        for i in 0..<n {
            let ss = (0..<d).reduce(0.0) { $0 + Double(x[i * d + $1]) * Double(x[i * d + $1]) }
            #expect(rstd[i] == Float(1 / (ss / Double(d) + Double(eps)).squareRoot()))
        }
        // y = γ · (x · rstd) in float32, in that order (transformers).
        #expect((0..<(n * d)).allSatisfy { y[$0] == gamma[$0 % d] * (x[$0] * rstd[$0 / d]) })

        var dx = [Float](repeating: .nan, count: n * d), dg = [Float](repeating: .nan, count: d)
        #expect(lt_rmsnorm_backward(Int64(n), Int64(d), r, Int64(d), x, Int64(d), gamma, rstd,
                                    &dx, Int64(d), &dg, 0) == LT_OK)
        let loss = { (x: [Double], g: [Double]) in
            dot(DecoderReference.rmsNorm(x, n: n, d: d, eps: Double(eps), gamma: g), d64(r))
        }
        let dxRef = numericGradient(d64(x)) { loss($0, d64(gamma)) }
        let dgRef = numericGradient(d64(gamma)) { loss(d64(x), $0) }
        let (ex, eg) = (relativeError(dx, dxRef), relativeError(dg, dgRef))
        report("RMSNorm dX / dγ rel. error vs finite differences", max(ex, eg))
        #expect(ex < 2e-5)
        #expect(eg < 2e-5)

        // accumulate = 1 adds to dγ; in place (dX over dY, Y over X) gives the same bits.
        var dg2 = dg, dyInPlace = r
        let st1 = dyInPlace.withUnsafeMutableBufferPointer { p in
            lt_rmsnorm_backward(Int64(n), Int64(d), p.baseAddress, Int64(d), x, Int64(d), gamma, rstd,
                                p.baseAddress, Int64(d), &dg2, 1)
        }
        #expect(st1 == LT_OK && bitwise(dyInPlace, dx))
        #expect(relativeError(dg2, dgRef.map { 2 * $0 }) < 2e-5)
        var xInPlace = x
        let st2 = xInPlace.withUnsafeMutableBufferPointer { p in
            lt_rmsnorm_forward(Int64(n), Int64(d), eps, p.baseAddress, Int64(d), gamma, p.baseAddress, Int64(d), nil)
        }
        #expect(st2 == LT_OK && bitwise(xInPlace, y))
    }

    /// inv_freq of Llama's default rotary embedding in float32: 1 / base^(2j/d_rot).
    static func invFreq(base: Double, dRot: Int) -> [Float] {
        (0..<(dRot / 2)).map { j in Float(1 / pow(base, Double(2 * j) / Double(dRot))) }
    }

    @Test(arguments: [(3, 10, 6), (2, 64, 64), (1, 8, 2)])
    func ropeMatchesTransformersRotation(H: Int, dh: Int, dRot: Int) throws {
        // The last two give angles past 2^19, where the kernel hands cos/sin over to libm.
        let pos: [Int32] = [0, 1, 7, 100, 1000, 8191, 65_535, 1_000_000, .max]
        let n = pos.count, d = H * dh, ldx = d + 3
        var rng = LoRATestRNG(seed: 110 + UInt64(dh))
        let invFreq = Self.invFreq(base: 100_000, dRot: dRot)
        var x = [Float](repeating: 0, count: n * ldx)
        for i in 0..<n { for j in 0..<ldx { x[i * ldx + j] = j < d ? rng.uniform(2) : -9 } }
        let xd = (0..<n).flatMap { i in (0..<d).map { Double(x[i * ldx + $0]) } }
        var y = x
        #expect(lt_rope_forward(Int64(n), Int64(H), Int64(dh), Int64(dRot), pos, invFreq, &y, Int64(ldx)) == LT_OK)
        let yd = (0..<n).flatMap { i in (0..<d).map { y[i * ldx + $0] } }
        let ref = DecoderReference.rope(xd, n: n, H: H, dh: dh, dRot: dRot, pos: pos, invFreq: invFreq)
        let err = relativeError(yd, ref)
        report("RoPE forward rel. error (H=\(H) dh=\(dh) dRot=\(dRot))", err)
        #expect(err < 1e-6)
        // Bit for bit the float32 evaluation of x·cos + rotate_half(x)·sin with cos/sin of the
        // float angle rounded from double; columns past d_rot and the padding untouched.
        let half = dRot / 2
        for i in 0..<n {
            for h in 0..<H {
                let base = i * ldx + h * dh
                for j in 0..<half {
                    let theta = Double(DecoderReference.angle(pos[i], invFreq[j]))
                    let c = Float(cos(theta)), s = Float(sin(theta))
                    let a = x[base + j], b = x[base + j + half]
                    #expect(y[base + j] == a * c + (-b) * s)
                    #expect(y[base + j + half] == b * c + a * s)
                }
                for j in dRot..<dh { #expect(y[base + j] == x[base + j]) }
            }
            for j in d..<ldx { #expect(y[i * ldx + j] == -9) }
        }
        // Rotating by θ then by −θ (the backward) restores the input.
        var back = y
        #expect(lt_rope_backward(Int64(n), Int64(H), Int64(dh), Int64(dRot), pos, invFreq, &back, Int64(ldx)) == LT_OK)
        let roundTrip = relativeError(back, d64(x))
        report("RoPE forward→backward round trip rel. error", roundTrip)
        #expect(roundTrip < 1e-6)
        // The backward is the gradient of the (linear) forward.
        let r = rng.array(n * d)
        var g = [Float](repeating: 0, count: n * ldx)
        for i in 0..<n { for j in 0..<d { g[i * ldx + j] = r[i * d + j] } }
        #expect(lt_rope_backward(Int64(n), Int64(H), Int64(dh), Int64(dRot), pos, invFreq, &g, Int64(ldx)) == LT_OK)
        let gd = (0..<n).flatMap { i in (0..<d).map { g[i * ldx + $0] } }
        let fd = numericGradient(xd) { dot(DecoderReference.rope($0, n: n, H: H, dh: dh, dRot: dRot, pos: pos, invFreq: invFreq), d64(r)) }
        let gErr = relativeError(gd, fd)
        report("RoPE backward rel. error vs finite differences", gErr)
        #expect(gErr < 2e-5)
    }

    @Test func ropeRejectsInvalidArguments() throws {
        var x = [Float](repeating: 1, count: 64)
        let f: [Float] = [1, 0.5, 0.25, 0.125]
        #expect(lt_rope_forward(2, 2, 8, 8, [0, -1], f, &x, 16) == LT_ERR_INVALID_ARGUMENT)   // negative position
        #expect(lt_rope_backward(2, 2, 8, 8, [3, Int32.min], f, &x, 16) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_rope_forward(2, 2, 8, 7, [0, 1], f, &x, 16) == LT_ERR_INVALID_ARGUMENT)    // odd d_rot
        #expect(lt_rope_forward(2, 2, 8, 10, [0, 1], f, &x, 16) == LT_ERR_INVALID_ARGUMENT)   // d_rot > d_h
        #expect(lt_rope_forward(2, 2, 8, 0, [0, 1], f, &x, 16) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_rope_forward(2, 2, 8, 8, [0, 1], f, &x, 15) == LT_ERR_INVALID_ARGUMENT)    // ld < H·d_h
        #expect(lt_rope_forward(2, 0, 8, 8, [0, 1], f, &x, 16) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_rope_forward(2, 2, 8, 8, [0, 1], [1, .nan, 1, 1], &x, 16) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_rope_forward(2, 2, 8, 8, nil, f, &x, 16) == LT_ERR_NULL_POINTER)
        #expect(lt_rope_forward(2, 2, 8, 8, [0, 1], nil, &x, 16) == LT_ERR_NULL_POINTER)
        #expect(lt_rope_backward(2, 2, 8, 8, [0, 1], f, nil, 16) == LT_ERR_NULL_POINTER)
        #expect(x.allSatisfy { $0 == 1 })
        #expect(lt_rope_forward(0, 2, 8, 8, [], f, &x, 16) == LT_OK)
    }

    @Test func swigluForwardAndBackwardMatchFloat64() throws {
        let n = 4, w = 53   // odd width: vector tails
        var rng = LoRATestRNG(seed: 120)
        // G and U as the two halves of one fused [n × 2w] buffer.
        let gu = rng.array(n * 2 * w, scale: 6)
        let gd = (0..<n).flatMap { i in (0..<w).map { Double(gu[i * 2 * w + $0]) } }
        let ud = (0..<n).flatMap { i in (0..<w).map { Double(gu[i * 2 * w + w + $0]) } }
        let r = rng.array(n * w)
        var y = [Float](repeating: .nan, count: n * w)
        let st = gu.withUnsafeBufferPointer { p in
            lt_swiglu_forward(Int64(n), Int64(w), p.baseAddress, Int64(2 * w), p.baseAddress! + w, Int64(2 * w), &y, Int64(w))
        }
        #expect(st == LT_OK)
        let ref = zip(gd, ud).map { DecoderReference.silu($0) * $1 }
        let err = relativeError(y, ref)
        report("SwiGLU forward rel. error", err)
        #expect(err < 1e-6)
        // silu(g) is the float rounding of the exact value (up to rare near-ties); then · u in float.
        var ties = 0
        for i in 0..<(n * w) {
            let s = Float(DecoderReference.silu(gd[i]))
            if y[i] != s * Float(ud[i]) { ties += 1 }
        }
        #expect(ties <= 1)

        var dg = [Float](repeating: .nan, count: n * w), du = dg
        let st2 = gu.withUnsafeBufferPointer { p in
            lt_swiglu_backward(Int64(n), Int64(w), p.baseAddress, Int64(2 * w), p.baseAddress! + w, Int64(2 * w),
                               r, Int64(w), &dg, Int64(w), &du, Int64(w))
        }
        #expect(st2 == LT_OK)
        let loss = { (g: [Double], u: [Double]) in dot(zip(g, u).map { DecoderReference.silu($0) * $1 }, d64(r)) }
        let (eg, eu) = (relativeError(dg, numericGradient(gd) { loss($0, ud) }),
                        relativeError(du, numericGradient(ud) { loss(gd, $0) }))
        report("SwiGLU dG / dU rel. error vs finite differences", max(eg, eu))
        #expect(eg < 2e-5)
        #expect(eu < 2e-5)

        // In place: Y over G, Y over U, dG over dY give the out-of-place bits.
        var g2: [Float] = [], u2: [Float] = []
        for i in 0..<n {
            let lo: Int = i * 2 * w
            g2 += gu[lo..<(lo + w)]
            u2 += gu[(lo + w)..<(lo + 2 * w)]
        }
        let st3 = g2.withUnsafeMutableBufferPointer { p in
            lt_swiglu_forward(Int64(n), Int64(w), p.baseAddress, Int64(w), u2, Int64(w), p.baseAddress, Int64(w))
        }
        #expect(st3 == LT_OK && bitwise(g2, y))
        var u3 = u2
        let g3 = (0..<n).flatMap { (i: Int) -> ArraySlice<Float> in gu[(i * 2 * w)..<(i * 2 * w + w)] }
        let st4 = u3.withUnsafeMutableBufferPointer { p in
            lt_swiglu_forward(Int64(n), Int64(w), g3, Int64(w), p.baseAddress, Int64(w), p.baseAddress, Int64(w))
        }
        #expect(st4 == LT_OK && bitwise(u3, y))
        var dyIn = r, du2 = [Float](repeating: .nan, count: n * w)
        let st5 = dyIn.withUnsafeMutableBufferPointer { p in
            lt_swiglu_backward(Int64(n), Int64(w), g3, Int64(w), u2, Int64(w), p.baseAddress, Int64(w),
                               p.baseAddress, Int64(w), &du2, Int64(w))
        }
        #expect(st5 == LT_OK && bitwise(dyIn, dg) && bitwise(du2, du))

        // Known values: silu(1) = 0.7310585786300049, silu'(0) = 0.5.
        var one = [Float](repeating: 0, count: 2), d1 = one, d2 = one
        #expect(lt_swiglu_forward(1, 2, [1, 0], 2, [1, 1], 2, &one, 2) == LT_OK)
        #expect(abs(Double(one[0]) - 0.7310585786300049) < 6e-8 && one[1] == 0)
        #expect(lt_swiglu_backward(1, 2, [1, 0], 2, [1, 1], 2, [1, 1], 2, &d1, 2, &d2, 2) == LT_OK)
        #expect(d1[1] == 0.5)
    }

    @Test func swigluIsFiniteForLargeGates() throws {
        let big = Float.greatestFiniteMagnitude
        let g: [Float] = [100, -100, 1e30, -1e30, big, -big, 88.8, -88.8, 104, -104, 0, -0.0]
        let w = g.count
        let u = [Float](repeating: 0.75, count: w), dy = [Float](repeating: -0.5, count: w)
        for isa in testedInstructionSets() {
            try Runtime.withInstructionSet(isa) {
                var y = [Float](repeating: .nan, count: w), dg = y, du = y
                #expect(lt_swiglu_forward(1, Int64(w), g, Int64(w), u, Int64(w), &y, Int64(w)) == LT_OK)
                #expect(lt_swiglu_backward(1, Int64(w), g, Int64(w), u, Int64(w), dy, Int64(w), &dg, Int64(w), &du, Int64(w)) == LT_OK)
                #expect(y.allSatisfy(\.isFinite) && dg.allSatisfy(\.isFinite) && du.allSatisfy(\.isFinite), "\(isa)")
                // silu(100) = 100, silu(1e30) = 1e30, silu(big) = big (σ = 1, silu' = 1); far negative
                // gates give −0 or the exact denormal.
                #expect(y[0] == 75 && y[2] == Float(1e30) * 0.75 && y[4] == big * 0.75, "\(isa)")
                #expect(dg[0] == -0.375 && dg[2] == -0.375 && dg[4] == -0.375 && du[4] == -0.5 * big, "\(isa)")
                #expect(y[3] == 0 && y[5] == 0 && dg[3] == 0 && dg[5] == 0, "\(isa)")
                for i in [1, 6, 7, 8, 9] {   // silu(−100) = −3.72e-42, a float denormal
                    let ref = 0.75 * DecoderReference.silu(Double(g[i]))
                    #expect(abs(Double(y[i]) - ref) <= max(1e-6 * abs(ref), 2e-45), "\(isa) g=\(g[i])")
                }
            }
        }
    }

    @Test func swigluRejectsInvalidArguments() throws {
        let a = [Float](repeating: 1, count: 8)
        var y = a, z = a
        #expect(lt_swiglu_forward(2, 4, nil, 4, a, 4, &y, 4) == LT_ERR_NULL_POINTER)
        #expect(lt_swiglu_forward(2, 4, a, 3, a, 4, &y, 4) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_swiglu_forward(-1, 4, a, 4, a, 4, &y, 4) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_swiglu_backward(2, 4, a, 4, a, 4, a, 4, &y, 4, nil, 4) == LT_ERR_NULL_POINTER)
        #expect(lt_swiglu_backward(2, 4, a, 4, a, 4, a, 4, &y, 4, &z, 2) == LT_ERR_INVALID_ARGUMENT)
        let st = y.withUnsafeMutableBufferPointer { p in   // dU over dY is not allowed
            lt_swiglu_backward(2, 4, a, 4, a, 4, p.baseAddress, 4, &z, 4, p.baseAddress, 4)
        }
        #expect(st == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_rmsnorm_forward(2, 4, 0, a, 4, a, &y, 4, nil) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_rmsnorm_forward(2, 4, .infinity, a, 4, a, &y, 4, nil) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_rmsnorm_forward(2, 0, 1e-5, a, 4, a, &y, 4, nil) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_rmsnorm_forward(2, 4, 1e-5, a, 3, a, &y, 4, nil) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_rmsnorm_forward(2, 4, 1e-5, nil, 4, a, &y, 4, nil) == LT_ERR_NULL_POINTER)
        #expect(lt_rmsnorm_backward(2, 4, a, 4, a, 4, a, nil, &y, 4, nil, 0) == LT_ERR_NULL_POINTER)
        #expect(lt_rmsnorm_backward(2, 4, a, 4, a, 4, a, a, &y, 4, &z, 2) == LT_ERR_INVALID_ARGUMENT)
        #expect(y == a && z == a)
    }

    /// Inputs of RMSNorm, RoPE and SwiGLU on n rows at SmolLM2 widths.
    private struct ElementwiseInputs {
        let n: Int, x: [Float], dyd: [Float], gamma: [Float], g: [Float], u: [Float], dyw: [Float]
        init(n: Int, seed: UInt64) {
            var rng = LoRATestRNG(seed: seed)
            self.n = n
            x = rng.array(n * 576, scale: 3); dyd = rng.array(n * 576); gamma = rng.array(576, scale: 1.5)
            g = rng.array(n * 1536, scale: 8); u = rng.array(n * 1536); dyw = rng.array(n * 1536)
        }
    }

    /// RMSNorm, RoPE and SwiGLU forward and backward.
    private static func elementwiseOutputs(_ inp: ElementwiseInputs) -> [[Float]] {
        let n = inp.n, d = 576, w = 1536
        let x = inp.x, dyd = inp.dyd, gamma = inp.gamma, g = inp.g, u = inp.u, dyw = inp.dyw
        let pos = (0..<n).map { Int32($0 * 7) }
        let invFreq = Self.invFreq(base: 100_000, dRot: 64)
        var y = [Float](repeating: 0, count: n * d), rstd = [Float](repeating: 0, count: n)
        _ = lt_rmsnorm_forward(Int64(n), Int64(d), 1e-5, x, Int64(d), gamma, &y, Int64(d), &rstd)
        var dx = y, dg = gamma
        _ = lt_rmsnorm_backward(Int64(n), Int64(d), dyd, Int64(d), x, Int64(d), gamma, rstd, &dx, Int64(d), &dg, 0)
        var rq = x
        _ = lt_rope_forward(Int64(n), 9, 64, 64, pos, invFreq, &rq, Int64(d))
        var rb = x
        _ = lt_rope_backward(Int64(n), 9, 64, 64, pos, invFreq, &rb, Int64(d))
        var sw = [Float](repeating: 0, count: n * w), dgw = sw, duw = sw
        _ = lt_swiglu_forward(Int64(n), Int64(w), g, Int64(w), u, Int64(w), &sw, Int64(w))
        _ = lt_swiglu_backward(Int64(n), Int64(w), g, Int64(w), u, Int64(w), dyw, Int64(w), &dgw, Int64(w), &duw, Int64(w))
        return [y, rstd, dx, dg, rq, rb, sw, dgw, duw]
    }

    /// Every loop above the 1 MFLOP parallel threshold (RMSNorm forward ~4·n·d = 1.5 M, RoPE
    /// ~n·(3·H·d_rot + 40·d_rot/2) = 1.9 M) with 40 chunks of 16 rows: bitwise equal results.
    @Test func elementwiseKernelsAreThreadCountInvariant() throws {
        let inputs = ElementwiseInputs(n: 640, seed: 130)
        let one = try Runtime.withThreadCount(1) { Self.elementwiseOutputs(inputs) }
        let two = try Runtime.withThreadCount(2) { Self.elementwiseOutputs(inputs) }
        let names = ["RMSNorm Y", "rstd", "RMSNorm dX", "dγ", "RoPE fwd", "RoPE bwd", "SwiGLU Y", "dG", "dU"]
        for i in names.indices { #expect(bitwise(one[i], two[i]), "\(names[i])") }
    }

    /// SwiGLU has a variant per ISA (RMSNorm and RoPE one portable variant, checked as well).
    private func elementwiseISAAgreesWithScalar(_ isa: InstructionSet) throws {
        let inputs = ElementwiseInputs(n: 48, seed: 131)
        let scalar = try Runtime.withInstructionSet(.scalar) { Self.elementwiseOutputs(inputs) }
        let other = try Runtime.withInstructionSet(isa) { Self.elementwiseOutputs(inputs) }
        var worst = 0.0
        for (a, b) in zip(other, scalar) {
            let e = relativeError(a, d64(b))
            worst = max(worst, e)
            #expect(e < 1e-6, "\(isa)")
        }
        report("RMSNorm/RoPE/SwiGLU \(isa) vs scalar rel. error", worst)
    }

    @Test(.enabled(if: Runtime.availableInstructionSets.contains(.avx2)))
    func elementwiseAVX2AgreesWithScalar() throws { try elementwiseISAAgreesWithScalar(.avx2) }

    @Test(.enabled(if: Runtime.availableInstructionSets.contains(.avx512)))
    func elementwiseAVX512AgreesWithScalar() throws { try elementwiseISAAgreesWithScalar(.avx512) }
}

// MARK: - Causal attention

@Suite("Causal attention kernels", .serialized)
struct CausalAttentionKernelTests {
    init() throws { try Runtime.initialize() }

    /// (B, T, past, H, H_kv, d_h): GQA ratios 1, 3, 4; d_h 3, 5, 16, 64; past 0 and > 0; B > 1;
    /// the last four take the key-split path (fewer than 16 new tokens, ≥ 512 keys), one of them
    /// with rows seeing 511, 512 and 513 keys (key blocks of 256: a last block of 255, none, 1).
    static let shapes: [(Int, Int, Int, Int, Int, Int)] = [
        (2, 5, 0, 4, 4, 3), (2, 7, 3, 6, 2, 3), (1, 9, 11, 8, 2, 5), (3, 1, 20, 9, 3, 64),
        (1, 37, 0, 9, 3, 64), (2, 20, 30, 3, 1, 16), (1, 1, 600, 9, 3, 64), (2, 3, 700, 4, 1, 16),
        (1, 3, 510, 4, 2, 64), (3, 2, 600, 8, 2, 32),
    ]

    @Test(arguments: shapes)
    func forwardMatchesFloat64(shape: (Int, Int, Int, Int, Int, Int)) throws {
        let (B, T, past, H, Hkv, dh) = shape
        let c = CausalCase(B: B, T: T, past: past, H: H, Hkv: Hkv, dh: dh, seed: UInt64(200 + T + past))
        let (out, p) = c.forward(withP: true)
        let ref = c.reference()
        let err = relativeError(out, ref.c), pErr = relativeError(p, ref.p)
        report("attention forward rel. error \(shape)", err)
        report("attention P rel. error \(shape)", pErr)
        #expect(err < 2e-6)
        #expect(pErr < 2e-6)
        // P: rows sum to 1, invisible keys exactly 0; C without P has the same bits.
        for row in 0..<(B * H * T) {
            let t = row % T, base = row * c.S
            let sum = (0..<(past + t + 1)).reduce(0.0) { $0 + Double(p[base + $1]) }
            #expect(abs(sum - 1) < 1e-6)
            #expect(((past + t + 1)..<c.S).allSatisfy { p[base + $0] == 0 })
        }
        #expect(bitwise(c.forward(withP: false).c, out))
    }

    /// Prefill of T tokens in one call, in two chunks, and T single-token calls with a growing
    /// cache agree — bit for bit, which is more than the required 1e-6 (the kernel fixes every
    /// sum's order independently of how tokens are batched, see lt_nn.h).
    /// past = 505: the single-token calls switch from the row path to the key path at 512 keys.
    @Test(arguments: [(0, 6, 2), (505, 6, 2), (0, 12, 3)])
    func prefillEqualsTokenByTokenDecode(past: Int, H: Int, Hkv: Int) throws {
        let B = 2, T = 40, dh = 64
        let c = CausalCase(B: B, T: T, past: past, H: H, Hkv: Hkv, dh: dh, seed: 300 + UInt64(past + H))
        let full = c.forward().c
        var steps = [Float](repeating: .nan, count: full.count)
        for t in 0..<T {
            let ct = c.forward(q: c.queries(at: t), T: 1, past: past + t).c
            for b in 0..<B { for x in 0..<c.d { steps[(b * T + t) * c.d + x] = ct[b * c.d + x] } }
        }
        let split = 17
        var q1: [Float] = [], q2: [Float] = []
        for b in 0..<B {
            let start: Int = b * T * c.d, mid: Int = (b * T + split) * c.d, end: Int = (b + 1) * T * c.d
            q1 += c.q[start..<mid]
            q2 += c.q[mid..<end]
        }
        let c1 = c.forward(q: q1, T: split, past: past).c, c2 = c.forward(q: q2, T: T - split, past: past + split).c
        var chunks = [Float](repeating: .nan, count: full.count)
        for b in 0..<B {
            for t in 0..<T {
                let src: [Float] = t < split ? c1 : c2
                let tt: Int = t < split ? t : t - split
                let rows: Int = t < split ? split : T - split
                let dst: Int = (b * T + t) * c.d, from: Int = (b * rows + tt) * c.d
                for x in 0..<c.d { chunks[dst + x] = src[from + x] }
            }
        }
        var worst = 0.0
        for i in full.indices { worst = max(worst, Double(abs(full[i] - steps[i])) / max(1e-30, Double(abs(full[i])))) }
        report("prefill vs token-by-token max rel. difference (past=\(past))", worst)
        #expect(full == steps)
        #expect(full == chunks)
        if past == 0 && H == 6 {   // and both match the float64 reference
            #expect(relativeError(full, c.reference().c) < 2e-6)
        }
    }

    /// Changing keys/values a query does not see (later positions) leaves its output unchanged;
    /// cache rows past past + T are NaN in every case and never read.
    @Test func causalityAndUnreadCacheRows() throws {
        var c = CausalCase(B: 1, T: 24, past: 5, H: 4, Hkv: 2, dh: 8, spareRows: 9, seed: 400)
        let before = c.forward().c
        let tCut = 13   // perturb positions past + 14 … (seen only by queries t >= 14)
        for s in (c.past + tCut + 1)..<(c.past + c.T) { for x in 0..<c.dkv {
            c.k[s * c.dkv + x] += 0.5; c.v[s * c.dkv + x] -= 0.25
        } }
        let after = c.forward().c
        #expect(Array(after[0..<((tCut + 1) * c.d)]) == Array(before[0..<((tCut + 1) * c.d)]))
        #expect(Array(after[((tCut + 1) * c.d)...]) != Array(before[((tCut + 1) * c.d)...]))
        #expect(after.allSatisfy { $0.isFinite })
    }

    /// Q, K, V as column slices of wider buffers (fused projections), C into a wider buffer.
    @Test func stridedLayouts() throws {
        let B = 2, T = 9, past = 4, H = 6, Hkv = 3, dh = 5, d = H * dh, dkv = Hkv * dh
        let ldq = d + 2 * dkv, ldkv = 2 * dkv + 1, ldc = d + 3, cacheLen = past + T + 1
        var rng = LoRATestRNG(seed: 410)
        let qkv = rng.array(B * T * ldq, scale: 1.5), kv = rng.array(B * cacheLen * ldkv, scale: 1.5)
        var work = [Float](repeating: .nan, count: B * H * T * (past + T))
        var out = [Float](repeating: -7, count: B * T * ldc)
        let scale = Float(1 / Double(dh).squareRoot())
        let st = kv.withUnsafeBufferPointer { p in
            lt_causal_attention_forward(Int64(B), Int64(T), Int64(past), Int64(H), Int64(Hkv), Int64(dh), scale,
                                        qkv, Int64(ldq), p.baseAddress, Int64(ldkv), p.baseAddress! + dkv, Int64(ldkv),
                                        Int64(cacheLen), nil, &out, Int64(ldc), &work)
        }
        #expect(st == LT_OK)
        let q = (0..<(B * T)).flatMap { i in (0..<d).map { Double(qkv[i * ldq + $0]) } }
        let k = (0..<(B * cacheLen)).flatMap { i in (0..<dkv).map { Double(kv[i * ldkv + $0]) } }
        let v = (0..<(B * cacheLen)).flatMap { i in (0..<dkv).map { Double(kv[i * ldkv + dkv + $0]) } }
        let ref = DecoderReference.attention(B: B, T: T, past: past, H: H, Hkv: Hkv, dh: dh, scale: Double(scale),
                                             q: q, k: k, v: v, cacheLen: cacheLen)
        let got = (0..<(B * T)).flatMap { i in (0..<d).map { out[i * ldc + $0] } }
        #expect(relativeError(got, ref.c) < 2e-6)
        #expect((0..<(B * T)).allSatisfy { i in (d..<ldc).allSatisfy { out[i * ldc + $0] == -7 } })
    }

    @Test(arguments: [(2, 6, 4, 2, 3), (1, 7, 3, 3, 4), (2, 5, 4, 1, 2)])
    func backwardMatchesFiniteDifferences(B: Int, T: Int, H: Int, Hkv: Int, dh: Int) throws {
        let c = CausalCase(B: B, T: T, past: 0, H: H, Hkv: Hkv, dh: dh, spareRows: 0, seed: 500 + UInt64(T * H))
        let (_, p) = c.forward(withP: true)
        let (dq, dk, dv) = c.backward(p: p)
        let q = d64(c.q), k = d64(c.k), v = d64(c.v), r = d64(c.dC)
        func loss(_ q: [Double], _ k: [Double], _ v: [Double]) -> Double { dot(c.reference(q: q, k: k, v: v).c, r) }
        let eq = relativeError(dq, numericGradient(q) { loss($0, k, v) })
        let ek = relativeError(dk, numericGradient(k) { loss(q, $0, v) })
        let ev = relativeError(dv, numericGradient(v) { loss(q, k, $0) })
        report("attention backward dQ/dK/dV rel. error vs finite differences (B=\(B) T=\(T) H=\(H) Hkv=\(Hkv))", max(eq, ek, ev))
        #expect(eq < 2e-5)
        #expect(ek < 2e-5)
        #expect(ev < 2e-5)
    }

    /// A longer sequence (query blocks of 16, key blocks of 16, row chunks of 64 all cross):
    /// finite differences at 40 sampled coordinates of each input.
    @Test func backwardOnLongerSequenceMatchesSampledFiniteDifferences() throws {
        let c = CausalCase(B: 1, T: 70, past: 0, H: 6, Hkv: 2, dh: 8, spareRows: 0, seed: 510)
        let (_, p) = c.forward(withP: true)
        let (dq, dk, dv) = c.backward(p: p)
        let q = d64(c.q), k = d64(c.k), v = d64(c.v), r = d64(c.dC)
        func loss(_ q: [Double], _ k: [Double], _ v: [Double]) -> Double { dot(c.reference(q: q, k: k, v: v).c, r) }
        var rng = LoRATestRNG(seed: 511)
        func sample(_ n: Int) -> [Int] { (0..<40).map { _ in Int(rng.next() % UInt64(n)) } + [0, n - 1] }
        let iq = sample(q.count), ik = sample(k.count), iv = sample(v.count)
        let eq = relativeError(iq.map { dq[$0] }, numericGradient(q, at: iq) { loss($0, k, v) })
        let ek = relativeError(ik.map { dk[$0] }, numericGradient(k, at: ik) { loss(q, $0, v) })
        let ev = relativeError(iv.map { dv[$0] }, numericGradient(v, at: iv) { loss(q, k, $0) })
        report("attention backward (T=70) sampled rel. error vs finite differences", max(eq, ek, ev))
        #expect(eq < 2e-5)
        #expect(ek < 2e-5)
        #expect(ev < 2e-5)
    }

    /// Shapes well above the 1 MFLOP parallel threshold with many items per thread: prefill
    /// (row path), decode against a long cache (key path) and the backward.
    @Test func threadCountInvariant() throws {
        let prefill = CausalCase(B: 2, T: 96, past: 0, H: 9, Hkv: 3, dh: 64, spareRows: 0, seed: 600)
        let decode = CausalCase(B: 1, T: 1, past: 1500, H: 9, Hkv: 3, dh: 64, seed: 601)
        func run() -> [[Float]] {
            let (c1, p1) = prefill.forward(withP: true)
            let c2 = prefill.forward().c
            let (c3, p3) = decode.forward(withP: true)
            let c4 = decode.forward().c
            let g = prefill.backward(p: p1)
            let r = prefill.backward(p: nil)
            return [c1, p1, c2, c3, p3, c4, g.dq, g.dk, g.dv, r.dq, r.dk, r.dv]
        }
        let names = ["prefill C (P saved)", "prefill P", "prefill C", "decode C (P saved)", "decode P", "decode C",
                     "dQ", "dK", "dV", "dQ (P recomputed)", "dK (P recomputed)", "dV (P recomputed)"]
        let one = try Runtime.withThreadCount(1) { run() }
        let two = try Runtime.withThreadCount(2) { run() }
        let three = try Runtime.withThreadCount(3) { run() }
        for i in names.indices {
            #expect(bitwise(one[i], two[i]), "\(names[i]): 1 vs 2 threads")
            #expect(bitwise(one[i], three[i]), "\(names[i]): 1 vs 3 threads")
        }
    }

    /// Without a saved P the backward recomputes it with the forward's arithmetic: the same
    /// gradients bit for bit, on every ISA (row blocks, key blocks and row chunks all crossed).
    @Test func backwardRecomputingPEqualsSavedP() throws {
        let cases = [CausalCase(B: 2, T: 70, past: 0, H: 6, Hkv: 2, dh: 20, spareRows: 0, seed: 520),
                     CausalCase(B: 1, T: 133, past: 0, H: 9, Hkv: 3, dh: 64, spareRows: 0, seed: 521),
                     CausalCase(B: 3, T: 1, past: 0, H: 2, Hkv: 2, dh: 5, spareRows: 0, seed: 522)]
        for isa in Runtime.availableInstructionSets {
            try Runtime.withInstructionSet(isa) {
                for c in cases {
                    let saved = c.backward(p: c.forward(withP: true).p)
                    let recomputed = c.backward(p: nil)
                    #expect(bitwise(saved.dq, recomputed.dq), "dQ, \(isa), T=\(c.T)")
                    #expect(bitwise(saved.dk, recomputed.dk), "dK, \(isa), T=\(c.T)")
                    #expect(bitwise(saved.dv, recomputed.dv), "dV, \(isa), T=\(c.T)")
                }
            }
        }
    }

    private func isaAgreesWithScalar(_ isa: InstructionSet) throws {
        let prefill = CausalCase(B: 2, T: 40, past: 3, H: 6, Hkv: 2, dh: 20, seed: 700)
        let train = CausalCase(B: 1, T: 45, past: 0, H: 4, Hkv: 1, dh: 64, spareRows: 0, seed: 701)
        let decode = CausalCase(B: 1, T: 2, past: 900, H: 4, Hkv: 2, dh: 33, seed: 702)
        func run() -> [[Float]] {
            let (c1, _) = prefill.forward()
            let (c2, p2) = train.forward(withP: true)
            let (c3, p3) = decode.forward(withP: true)
            let g = train.backward(p: p2)
            return [c1, c2, p2, c3, p3, g.dq, g.dk, g.dv]
        }
        let scalar = try Runtime.withInstructionSet(.scalar) { run() }
        let other = try Runtime.withInstructionSet(isa) { run() }
        var worst = 0.0
        for (a, b) in zip(other, scalar) {
            let e = relativeError(a, d64(b))
            worst = max(worst, e)
            #expect(e < 1e-5, "\(isa)")
        }
        report("attention \(isa) vs scalar rel. error", worst)
    }

    @Test(.enabled(if: Runtime.availableInstructionSets.contains(.avx2)))
    func avx2AgreesWithScalar() throws { try isaAgreesWithScalar(.avx2) }

    @Test(.enabled(if: Runtime.availableInstructionSets.contains(.avx512)))
    func avx512AgreesWithScalar() throws { try isaAgreesWithScalar(.avx512) }

    @Test func invalidArgumentsAreRejected() throws {
        let x = [Float](repeating: 1, count: 256)
        var c = [Float](repeating: 0, count: 256), ws = c, p = c
        var w: Int64 = 0
        func fwd(B: Int64 = 1, T: Int64 = 2, past: Int64 = 1, H: Int64 = 4, Hkv: Int64 = 2, dh: Int64 = 4,
                 scale: Float = 0.5, ldq: Int64 = 16, ldk: Int64 = 8, cacheLen: Int64 = 3, ldc: Int64 = 16,
                 ws nilWork: Bool = false) -> lt_status {
            if nilWork {
                return lt_causal_attention_forward(B, T, past, H, Hkv, dh, scale, x, ldq, x, ldk, x, ldk, cacheLen, &p, &c, ldc, nil)
            }
            return lt_causal_attention_forward(B, T, past, H, Hkv, dh, scale, x, ldq, x, ldk, x, ldk, cacheLen, &p, &c, ldc, &ws)
        }
        #expect(fwd() == LT_OK)
        #expect(fwd(H: 4, Hkv: 3) == LT_ERR_INVALID_ARGUMENT)          // H not a multiple of H_kv
        #expect(fwd(Hkv: 0) == LT_ERR_INVALID_ARGUMENT)
        #expect(fwd(past: -1) == LT_ERR_INVALID_ARGUMENT)              // negative position
        #expect(fwd(cacheLen: 2) == LT_ERR_INVALID_ARGUMENT)           // cache_len < past + T
        #expect(fwd(ldq: 15) == LT_ERR_INVALID_ARGUMENT)
        #expect(fwd(ldk: 7) == LT_ERR_INVALID_ARGUMENT)
        #expect(fwd(ldc: 12) == LT_ERR_INVALID_ARGUMENT)
        #expect(fwd(dh: 0) == LT_ERR_INVALID_ARGUMENT)
        #expect(fwd(scale: .nan) == LT_ERR_INVALID_ARGUMENT)
        #expect(fwd(B: -1) == LT_ERR_INVALID_ARGUMENT)
        #expect(fwd(ws: true) == LT_ERR_NULL_POINTER)
        #expect(lt_causal_attention_forward(1, 2, 1, 4, 2, 4, 0.5, nil, 16, x, 8, x, 8, 3, nil, &c, 16, &ws) == LT_ERR_NULL_POINTER)
        #expect(lt_causal_attention_forward(1, 2, 1, 4, 2, 4, 0.5, x, 16, x, 8, nil, 8, 3, nil, &c, 16, &ws) == LT_ERR_NULL_POINTER)
        #expect(lt_causal_attention_forward(1, 2, 1, 4, 2, 4, 0.5, x, 16, x, 8, x, 8, 3, nil, nil, 16, &ws) == LT_ERR_NULL_POINTER)
        #expect(lt_causal_attention_workspace_size(1, 2, 1, 4, nil) == LT_ERR_NULL_POINTER)
        #expect(lt_causal_attention_workspace_size(1, 2, -1, 4, &w) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_causal_attention_workspace_size(Int64.max / 2, 2, 1, 4, &w) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_causal_attention_workspace_size(2, 3, 5, 4, &w) == LT_OK)
        #expect(w == 2 * 4 * 3 * 8)
        #expect(lt_causal_attention_backward_workspace_size(2, 3, 4, &w) == LT_OK)
        #expect(w == 2 * (2 * 4 * 3 * 3))
        #expect(lt_causal_attention_backward_workspace_size(2, 3, 0, &w) == LT_ERR_INVALID_ARGUMENT)
        func bwd(H: Int64 = 4, Hkv: Int64 = 2, ldk: Int64 = 8, lddk: Int64 = 8, nilP: Bool = false) -> lt_status {
            var dq = c, dk = c, dv = c
            if nilP {
                return lt_causal_attention_backward(1, 2, H, Hkv, 4, 0.5, x, 16, x, ldk, x, 8, nil, x, 16,
                                                    &dq, 16, &dk, lddk, &dv, 8, &ws)
            }
            return lt_causal_attention_backward(1, 2, H, Hkv, 4, 0.5, x, 16, x, ldk, x, 8, x, x, 16,
                                                &dq, 16, &dk, lddk, &dv, 8, &ws)
        }
        #expect(bwd() == LT_OK)
        #expect(bwd(H: 6, Hkv: 4) == LT_ERR_INVALID_ARGUMENT)
        #expect(bwd(ldk: 7) == LT_ERR_INVALID_ARGUMENT)
        #expect(bwd(lddk: 4) == LT_ERR_INVALID_ARGUMENT)
        #expect(bwd(nilP: true) == LT_OK)          // P recomputed
        // Empty work is fine.
        #expect(fwd(T: 0, cacheLen: 1) == LT_OK)
        #expect(fwd(B: 0) == LT_OK)
    }
}

// MARK: - Micro-kernels

/// dot_block and axpy_block (simd.h), each ISA variant called directly, against float64 and
/// the scalar variant; and the property the attention relies on: an entry's bits do not depend
/// on the tile it is computed in (a row or a key computed alone gives the same bits).
@Suite("Decoder micro-kernels", .serialized)
struct DecoderMicroKernelTests {
    static let rows = [1, 2, 3, 4, 5, 7, 9, 17]   // 9, 17: one and two 8-row tiles of the narrow (d ≤ 16) path
    static let keys = [1, 2, 3, 4, 5, 8, 13]
    static let widths = [1, 3, 7, 8, 15, 16, 17, 31, 33, 64, 65, 100]

    private func check(_ isa: InstructionSet) {
        var worstDot = 0.0, worstAxpy = 0.0
        var seed: UInt64 = 800
        for m in Self.rows { for r in Self.keys { for d in Self.widths {
            seed += 1
            var rng = LoRATestRNG(seed: seed)
            let ldx = d + 3, ldm = d + 2, ldo = r + 1
            let xs = rng.padded(rows: m, cols: d, ld: ldx), ms = rng.padded(rows: r, cols: d, ld: ldm)
            // dot_block: out[i, k] = x_i · m_k; the padding column of out keeps its sentinel.
            func dotBlock(_ isa: InstructionSet, m: Int, r: Int, x: [Float], mm: [Float]) -> [Float] {
                var out = [Float](repeating: 1234, count: m * (r + 1))
                #expect(lt_kernel_dot_block(isa.cValue, Int64(m), Int64(r), Int64(d), x, Int64(ldx), mm, Int64(ldm),
                                            &out, Int64(r + 1)) == LT_OK)
                return out
            }
            let out = dotBlock(isa, m: m, r: r, x: xs, mm: ms)
            let scalar = dotBlock(.scalar, m: m, r: r, x: xs, mm: ms)
            for i in 0..<m {
                for k in 0..<r {
                    var v = 0.0, s = 0.0
                    for j in 0..<d { let t = Double(xs[i * ldx + j]) * Double(ms[k * ldm + j]); v += t; s += abs(t) }
                    let e = abs(Double(out[i * ldo + k]) - v) / s
                    worstDot = max(worstDot, e)
                    #expect(e <= 1e-6, "\(isa) dot m=\(m) r=\(r) d=\(d)")
                    #expect(abs(Double(out[i * ldo + k]) - Double(scalar[i * ldo + k])) <= 2e-6 * s)
                    let alone = dotBlock(isa, m: 1, r: 1, x: Array(xs[(i * ldx)...]), mm: Array(ms[(k * ldm)...]))
                    #expect(alone[0].bitPattern == out[i * ldo + k].bitPattern, "\(isa) dot entry depends on its tile")
                }
                #expect(out[i * ldo + r] == 1234)
            }
            // axpy_block: Y (m × d, ld ldy) += Cf (m × r) M (r × d); the padding keeps its sentinel.
            let ldy = d + 1, cf = rng.array(m * r), y0 = rng.array(m * ldy)
            func axpyBlock(_ isa: InstructionSet, m: Int, cf: [Float], y0: [Float]) -> [Float] {
                var y = y0
                for i in 0..<m { y[i * ldy + d] = 1234 }
                #expect(lt_kernel_axpy_block(isa.cValue, Int64(m), Int64(r), Int64(d), cf, Int64(r), ms, Int64(ldm),
                                             &y, Int64(ldy)) == LT_OK)
                return y
            }
            let y = axpyBlock(isa, m: m, cf: cf, y0: y0), ys = axpyBlock(.scalar, m: m, cf: cf, y0: y0)
            for i in 0..<m {
                let alone = axpyBlock(isa, m: 1, cf: Array(cf[(i * r)...]), y0: Array(y0[(i * ldy)...]))
                for j in 0..<d {
                    var v = Double(y0[i * ldy + j]), s = abs(v)
                    for k in 0..<r { let t = Double(cf[i * r + k]) * Double(ms[k * ldm + j]); v += t; s += abs(t) }
                    let e = abs(Double(y[i * ldy + j]) - v) / s
                    worstAxpy = max(worstAxpy, e)
                    #expect(e <= 1e-6, "\(isa) axpy m=\(m) r=\(r) d=\(d)")
                    #expect(abs(Double(y[i * ldy + j]) - Double(ys[i * ldy + j])) <= 2e-6 * s)
                    #expect(alone[j].bitPattern == y[i * ldy + j].bitPattern, "\(isa) axpy row depends on its tile")
                }
                #expect(y[i * ldy + d] == 1234)
            }
        } } }
        report("dot_block \(isa) worst error / Σ|terms|", worstDot)
        report("axpy_block \(isa) worst error / Σ|terms|", worstAxpy)
    }

    @Test func scalarVariant() { check(.scalar) }

    @Test(.enabled(if: Runtime.availableInstructionSets.contains(.avx2)))
    func avx2Variant() { check(.avx2) }

    @Test(.enabled(if: Runtime.availableInstructionSets.contains(.avx512)))
    func avx512Variant() { check(.avx512) }

    @Test func entryPointsValidate() {
        var buf = [Float](repeating: 1, count: 64)
        buf.withUnsafeMutableBufferPointer { b in
            let p = b.baseAddress!
            #expect(lt_kernel_dot_block(7, 2, 2, 4, p, 4, p, 4, p + 32, 2) == LT_ERR_INVALID_ARGUMENT)
            #expect(lt_kernel_dot_block(0, 2, 2, 4, p, 3, p, 4, p + 32, 2) == LT_ERR_INVALID_ARGUMENT)
            #expect(lt_kernel_dot_block(0, 2, 3, 4, p, 4, p, 4, p + 32, 2) == LT_ERR_INVALID_ARGUMENT)
            #expect(lt_kernel_dot_block(0, -1, 2, 4, p, 4, p, 4, p + 32, 2) == LT_ERR_INVALID_ARGUMENT)
            #expect(lt_kernel_dot_block(0, 2, 2, 4, nil, 4, p, 4, p + 32, 2) == LT_ERR_NULL_POINTER)
            #expect(lt_kernel_axpy_block(0, 2, 2, 4, p, 1, p, 4, p + 32, 4) == LT_ERR_INVALID_ARGUMENT)
            #expect(lt_kernel_axpy_block(0, 2, 2, 4, p, 2, p, 4, p + 32, 3) == LT_ERR_INVALID_ARGUMENT)
            #expect(lt_kernel_axpy_block(0, 2, 2, 4, p, 2, nil, 4, p + 32, 4) == LT_ERR_NULL_POINTER)
            #expect(lt_kernel_axpy_block(0, 0, 0, 0, p, 0, p, 0, p + 32, 0) == LT_OK)
            for isa in InstructionSet.allCases where !Runtime.availableInstructionSets.contains(isa) {
                #expect(lt_kernel_dot_block(isa.cValue, 2, 2, 4, p, 4, p, 4, p + 32, 2) == LT_ERR_UNSUPPORTED_ISA)
            }
        }
    }
}
