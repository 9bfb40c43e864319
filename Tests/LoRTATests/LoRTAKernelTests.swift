import CKernels
import Testing
@testable import LoRTA

/// ISA variants against scalar, 1 vs 2 threads bitwise, and the C entry points with strided
/// (non-contiguous) operands.
@Suite("LoRTA kernels", .serialized)
struct LoRTAKernelTests {
    struct Results: Equatable {
        var outputs: [Int: Tensor]
        var gradients: LoRTAFactors
        var dx: Tensor
        var merged: [[Tensor]]
    }

    /// d_h = 40 and d_out = 80 exercise the SIMD tails; n = 45 spans three row chunks.
    static func configuration() throws -> LoRTAConfiguration {
        try LoRTAConfiguration(rank: 8, alpha: 16, targetModules: ["q", "k", "v"], layerCount: 2,
                               headCount: 8, headDimension: 40, outputSizes: [320, 80, 80])
    }

    static func run(_ c: LoRTAConfiguration) throws -> Results {
        var adapter = try LoRTAAdapter(configuration: c, factors: randomLoRTAFactors(c, seed: 9))
        var g = LoRTATestRNG(10)
        let n = 45
        let x = g.tensor([n, c.inputSize])
        var outputs: [Int: Tensor] = [:]
        for m in 0..<3 { outputs[m] = g.tensor([n, c.outputSizes[m]]) }
        let saved = try adapter.forward(layer: 1, input: x, outputs: &outputs)
        var dx = g.tensor([n, c.inputSize])
        let dy: [Int: Tensor] = Dictionary(uniqueKeysWithValues: (0..<3).map { ($0, g.tensor([n, c.outputSizes[$0]])) })
        try adapter.backward(layer: 1, input: x, outputGradients: dy, projection: saved, inputGradient: &dx)
        try adapter.backward(layer: 0, input: x, outputGradients: [2: dy[2]!, 0: dy[0]!], inputGradient: &dx)
        var merged: [[Tensor]] = (0..<2).map { _ in (0..<3).map { g.tensor([c.outputSizes[$0], c.inputSize]) } }
        try adapter.mergeAll(into: &merged)
        return Results(outputs: outputs, gradients: adapter.gradients, dx: dx, merged: merged)
    }

    @Test func instructionSetsAgreeWithScalar() throws {
        let c = try Self.configuration()
        let scalar = try Runtime.withInstructionSet(.scalar) { try Self.run(c) }
        for isa in testedInstructionSets() where isa != .scalar {
            let r = try Runtime.withInstructionSet(isa) { try Self.run(c) }
            for m in 0..<3 {
                #expect(relativeMaxError(r.outputs[m]!, scalar.outputs[m]!) < 1e-5, "\(isa) output \(m)")
            }
            let pairs = zip(r.gradients.a + [r.gradients.b, r.gradients.cH, r.gradients.cL, r.gradients.cM, r.dx],
                            scalar.gradients.a + [scalar.gradients.b, scalar.gradients.cH, scalar.gradients.cL,
                                                  scalar.gradients.cM, scalar.dx])
            for (k, (a, b)) in pairs.enumerated() {
                #expect(relativeMaxError(a, b) < 1e-5, "\(isa) gradient \(k)")
            }
            for l in 0..<2 {
                for m in 0..<3 { #expect(relativeMaxError(r.merged[l][m], scalar.merged[l][m]) < 1e-6, "\(isa) merge") }
            }
        }
    }

    @Test func bitwiseIdenticalWithOneAndTwoThreads() throws {
        let c = try Self.configuration()
        for isa in testedInstructionSets() {
            try Runtime.withInstructionSet(isa) {
                let one = try Runtime.withThreadCount(1) { try Self.run(c) }
                let two = try Runtime.withThreadCount(2) { try Self.run(c) }
                #expect(one == two, "\(isa): results differ between 1 and 2 threads")
            }
        }
    }

    /// The projection's bits, pinned on every ISA: p_{i,h} is axpy_many of x_{i,h} against Bᵀ
    /// added to zero (one fma chain over the head's columns, as the kernel computed it one head
    /// at a time before it ran a row's heads side by side with axpy_block), and u_i the float sum
    /// over heads in order of C_H[h] ∘ p_{i,h}, each product rounded. Shapes: MiniLM's heads
    /// (12 × 32, r = 8: the 8-head tiles of the narrow path and a 4-head rest), r = 16, r = 17
    /// (wider than one vector), and 300 heads × r = 16 (more p's than the kernel's stack buffer
    /// holds, so heads go in groups).
    @Test func projectionBitsArePerHeadChains() throws {
        for (heads, dh, r) in [(12, 32, 8), (12, 32, 16), (5, 7, 17), (300, 4, 16)] {
            var g = LoRTATestRNG(UInt64(heads * 100 + r))
            let n = 19, din = heads * dh, ldx = din + 2
            let x = g.tensor([n * ldx]).scalars, b = g.tensor([r * dh]).scalars, ch = g.tensor([heads * r]).scalars
            var bt = [Float](repeating: 0, count: dh * r)
            for k in 0..<r { for j in 0..<dh { bt[j * r + k] = b[k * dh + j] } }
            var dims = lt_lorta_dims(rank: Int64(r), heads: Int64(heads), head_dim: Int64(dh), layers: 1, matrices: 1)
            for isa in testedInstructionSets() {
                var u = [Float](repeating: .nan, count: n * r), p = [Float](repeating: .nan, count: n * heads * r)
                var uAlone = u
                try Runtime.withInstructionSet(isa) {
                    #expect(lt_lorta_project_forward(&dims, Int64(n), x, Int64(ldx), b, ch, &u, &p) == LT_OK)
                    #expect(lt_lorta_project_forward(&dims, Int64(n), x, Int64(ldx), b, ch, &uAlone, nil) == LT_OK)
                }
                var wantP = [Float](repeating: 0, count: n * heads * r), wantU = [Float](repeating: 0, count: n * r)
                for i in 0..<n {
                    for h in 0..<heads {
                        let row = (i * heads + h) * r
                        wantP.withUnsafeMutableBufferPointer { wp in
                            x.withUnsafeBufferPointer { xp in
                                #expect(lt_kernel_axpy_many(isa.cValue, wp.baseAddress! + row, xp.baseAddress! + i * ldx + h * dh,
                                                            bt, Int64(r), Int64(dh), Int64(r)) == LT_OK)
                            }
                        }
                        for k in 0..<r { wantU[i * r + k] += ch[h * r + k] * wantP[row + k] }
                    }
                }
                let badP = zip(p, wantP).filter { $0.bitPattern != $1.bitPattern }.count
                let badU = zip(u, wantU).filter { $0.bitPattern != $1.bitPattern }.count
                #expect(badP == 0 && badU == 0, "\(isa) H=\(heads) d_h=\(dh) r=\(r): \(badP) p and \(badU) u differ")
                #expect(uAlone.map(\.bitPattern) == u.map(\.bitPattern), "\(isa): u depends on keeping P")
            }
        }
    }

    /// The expansion's bits, pinned on every ISA and with 1 and 2 threads: y_i += Σ_k coef_k
    /// Aᵀ[k, :] with coef = s·(u_i ∘ c_t) is axpy_many's chain per element (the kernel runs a
    /// chunk of rows through axpy_block). n = 37: two full row chunks and a partial one; r = 70:
    /// two blocks of ranks; d_out = 385 and 193: vector tails.
    @Test func expansionBitsArePerRowChains() throws {
        for r in [8, 70] {
            var g = LoRTATestRNG(UInt64(500 + r))
            let n = 37, dOut: [Int64] = [385, 193], ldy: [Int64] = [388, 193], matrix: [Int64] = [1, 0]
            let u = g.tensor([n * r]).scalars, cL = g.tensor([2 * r]).scalars, cM = g.tensor([2 * r]).scalars
            let a = (0..<2).map { g.tensor([Int(dOut[$0]) * r]).scalars }
            let y0 = (0..<2).map { g.tensor([n * Int(ldy[$0])]).scalars }
            let s: Float = 1.7, layer = 1
            var dims = lt_lorta_dims(rank: Int64(r), heads: 1, head_dim: 4, layers: 2, matrices: 2)
            for isa in testedInstructionSets() {
                for threads in [1, 2] {
                    var ya = y0[0], yb = y0[1]
                    var ws = [UInt8](repeating: 0, count: lt_lorta_expand_workspace_size(&dims, 2, dOut))
                    let st: lt_status = try Runtime.withInstructionSet(isa) { try Runtime.withThreadCount(threads) {
                        a[0].withUnsafeBufferPointer { a0 in a[1].withUnsafeBufferPointer { a1 in
                            ya.withUnsafeMutableBufferPointer { p0 in yb.withUnsafeMutableBufferPointer { p1 in
                                ws.withUnsafeMutableBytes { w in
                                    let ys: [UnsafeMutablePointer<Float>?] = [p0.baseAddress, p1.baseAddress]
                                    let As: [UnsafePointer<Float>?] = [a0.baseAddress, a1.baseAddress]
                                    return lt_lorta_expand_forward(&dims, Int64(n), u, cL, cM, s, Int64(layer), 2, matrix,
                                                                   dOut, As, ys, ldy, w.baseAddress, w.count)
                                }
                            } }
                        } }
                    } }
                    #expect(st == LT_OK)
                    let y = [ya, yb]
                    for t in 0..<2 {
                        let d = Int(dOut[t]), ld = Int(ldy[t]), m = Int(matrix[t])
                        var at = [Float](repeating: 0, count: r * d)
                        for o in 0..<d { for k in 0..<r { at[k * d + o] = a[t][o * r + k] } }
                        var want = y0[t]
                        for i in 0..<n {
                            for k0 in stride(from: 0, to: r, by: 64) {
                                let kb = min(64, r - k0)
                                let coef = (0..<kb).map { k in s * (u[i * r + k0 + k] * (cL[layer * r + k0 + k] * cM[m * r + k0 + k])) }
                                want.withUnsafeMutableBufferPointer { wp in
                                    at.withUnsafeBufferPointer { ap in
                                        #expect(lt_kernel_axpy_many(isa.cValue, wp.baseAddress! + i * ld, coef, ap.baseAddress! + k0 * d,
                                                                    Int64(d), Int64(kb), Int64(d)) == LT_OK)
                                    }
                                }
                            }
                        }
                        let bad = zip(y[t], want).filter { $0.bitPattern != $1.bitPattern }.count
                        #expect(bad == 0, "\(isa), \(threads) threads, r=\(r), target \(t): \(bad) elements differ")
                    }
                }
            }
        }
    }

    /// The C kernels with leading dimensions larger than the rows (X, dY, dX embedded in wider
    /// buffers) give the results of the contiguous Swift path; dB (one sgemm per head instead of
    /// one over the (n·H)×d_h view) within rounding.
    @Test func stridedOperandsMatchContiguous() throws {
        let c = try LoRTAConfiguration(rank: 3, alpha: 3, targetModules: ["q", "v"], layerCount: 2,
                                       headCount: 3, headDimension: 5, outputSizes: [7, 9])
        let factors = randomLoRTAFactors(c, seed: 31)
        var adapter = try LoRTAAdapter(configuration: c, factors: factors)
        var g = LoRTATestRNG(32)
        let n = 20, din = 15, ldx = 19, pad = 3
        let x = g.tensor([n, din])
        let dy: [Int: Tensor] = [0: g.tensor([n, 7]), 1: g.tensor([n, 9])]
        var outputs: [Int: Tensor] = [0: try Tensor(zeros: [n, 7]), 1: try Tensor(zeros: [n, 9])]
        let saved = try adapter.forward(layer: 1, input: x, outputs: &outputs)
        let dx = try adapter.backward(layer: 1, input: x, outputGradients: dy, projection: saved)

        func widen(_ t: Tensor, _ ld: Int) -> [Float] {
            let (rows, cols) = (t.shape[0], t.shape[1])
            var out = [Float](repeating: 7, count: rows * ld)
            for i in 0..<rows { for j in 0..<cols { out[i * ld + j] = t[i, j] } }
            return out
        }
        let xw = widen(x, ldx)
        var dims = LoRTAAdapter.dims(c)
        var u = [Float](repeating: 0, count: n * 3), p = [Float](repeating: 0, count: n * 3 * 3)
        #expect(lt_lorta_project_forward(&dims, Int64(n), xw, Int64(ldx), factors.b.scalars, factors.cH.scalars, &u, &p) == LT_OK)
        #expect(u == saved.u.scalars && p == saved.p.scalars)

        let dOut: [Int64] = [7, 9], lddy: [Int64] = [Int64(7 + pad), Int64(9 + pad)], matrix: [Int64] = [0, 1]
        var y0 = widen(try Tensor(zeros: [n, 7]), 7 + pad), y1 = widen(try Tensor(zeros: [n, 9]), 9 + pad)
        let aPtrs = factors.a.map(\.scalars)
        var ws = [Float](repeating: 0, count: 1 << 14)
        let wsBytes = ws.count * 4
        #expect(lt_lorta_expand_workspace_size(&dims, 2, dOut) <= wsBytes)
        let st1: lt_status = aPtrs[0].withUnsafeBufferPointer { a0 in aPtrs[1].withUnsafeBufferPointer { a1 in
            y0.withUnsafeMutableBufferPointer { p0 in y1.withUnsafeMutableBufferPointer { p1 in
                ws.withUnsafeMutableBytes { w in
                    let ys: [UnsafeMutablePointer<Float>?] = [p0.baseAddress, p1.baseAddress]
                    let As: [UnsafePointer<Float>?] = [a0.baseAddress, a1.baseAddress]
                    return lt_lorta_expand_forward(&dims, Int64(n), u, factors.cL.scalars, factors.cM.scalars,
                                                   c.scaling, 1, 2, matrix, dOut, As, ys, lddy, w.baseAddress, wsBytes)
                }
            }}
        }}
        #expect(st1 == LT_OK)
        for i in 0..<n {
            for j in 0..<7 { #expect(y0[i * 10 + j] == outputs[0]![i, j]) }
            for j in 0..<9 { #expect(y1[i * 12 + j] == outputs[1]![i, j]) }
            #expect(y0[i * 10 + 7] == 7 && y1[i * 12 + 9] == 7)  // padding untouched
        }

        // backward with strided X, dY and dX
        let dyw = [widen(dy[0]!, 10), widen(dy[1]!, 12)]
        var dxw = [Float](repeating: 0, count: n * ldx)
        for i in 0..<n { for j in din..<ldx { dxw[i * ldx + j] = 5 } }
        var dA0 = [Float](repeating: 0, count: factors.a[0].count), dA1 = [Float](repeating: 0, count: factors.a[1].count)
        var dB = [Float](repeating: 0, count: 15), dCH = [Float](repeating: 0, count: 9)
        var dCL = [Float](repeating: 0, count: 6), dCM = [Float](repeating: 0, count: 6)
        #expect(lt_lorta_backward_workspace_size(&dims, Int64(n), 2, dOut) <= wsBytes)
        let st2: lt_status = aPtrs[0].withUnsafeBufferPointer { a0 in aPtrs[1].withUnsafeBufferPointer { a1 in
            dyw[0].withUnsafeBufferPointer { d0 in dyw[1].withUnsafeBufferPointer { d1 in
                dA0.withUnsafeMutableBufferPointer { g0 in dA1.withUnsafeMutableBufferPointer { g1 in
                    ws.withUnsafeMutableBytes { w in
                        let As: [UnsafePointer<Float>?] = [a0.baseAddress, a1.baseAddress]
                        let dYs: [UnsafePointer<Float>?] = [d0.baseAddress, d1.baseAddress]
                        let dAs: [UnsafeMutablePointer<Float>?] = [g0.baseAddress, g1.baseAddress]
                        return lt_lorta_backward(&dims, Int64(n), xw, Int64(ldx), u, p, factors.b.scalars,
                                                 factors.cH.scalars, factors.cL.scalars, factors.cM.scalars,
                                                 c.scaling, 1, 2, matrix, dOut, As, dYs, lddy, dAs,
                                                 &dB, &dCH, &dCL, &dCM, &dxw, Int64(ldx), w.baseAddress, wsBytes)
                    }
                }}
            }}
        }}
        #expect(st2 == LT_OK)
        let gr = adapter.gradients
        #expect(dA0 == gr.a[0].scalars && dA1 == gr.a[1].scalars)
        #expect(dCH == gr.cH.scalars && dCL == gr.cL.scalars && dCM == gr.cM.scalars)
        #expect(relativeMaxError(dB, gr.b.scalars.map(Double.init)) < 1e-6)
        for i in 0..<n {
            for j in 0..<din { #expect(dxw[i * ldx + j] == dx[i, j]) }
            for j in din..<ldx { #expect(dxw[i * ldx + j] == 5) }
        }

        // invalid arguments are rejected with a status, never a crash
        #expect(lt_lorta_project_forward(&dims, Int64(n), xw, 14, factors.b.scalars, factors.cH.scalars, &u, &p)
                == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_lorta_project_forward(nil, 1, xw, 15, factors.b.scalars, factors.cH.scalars, &u, &p) == LT_ERR_NULL_POINTER)
        var badDims = dims
        badDims.rank = 0
        #expect(lt_lorta_project_forward(&badDims, 1, xw, 15, factors.b.scalars, factors.cH.scalars, &u, &p)
                == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_lorta_expand_workspace_size(&badDims, 2, dOut) == 0)
        var tooSmall = [Float](repeating: 0, count: 4)
        let st3: lt_status = aPtrs[0].withUnsafeBufferPointer { a0 in
            y0.withUnsafeMutableBufferPointer { p0 in tooSmall.withUnsafeMutableBytes { w in
                let As: [UnsafePointer<Float>?] = [a0.baseAddress]
                let ys: [UnsafeMutablePointer<Float>?] = [p0.baseAddress]
                return lt_lorta_expand_forward(&dims, Int64(n), u, factors.cL.scalars, factors.cM.scalars,
                                               1, 1, 1, [0], [7], As, ys, [10], w.baseAddress, 16)
            }}
        }
        #expect(st3 == LT_ERR_INVALID_ARGUMENT)
        let st4: lt_status = aPtrs[0].withUnsafeBufferPointer { a0 in
            y0.withUnsafeMutableBufferPointer { p0 in ws.withUnsafeMutableBytes { w in
                let As: [UnsafePointer<Float>?] = [a0.baseAddress, a0.baseAddress]
                let ys: [UnsafeMutablePointer<Float>?] = [p0.baseAddress, p0.baseAddress]
                // the same matrix type twice
                return lt_lorta_expand_forward(&dims, Int64(n), u, factors.cL.scalars, factors.cM.scalars,
                                               1, 1, 2, [0, 0], [7, 7], As, ys, [10, 10], w.baseAddress, wsBytes)
            }}
        }
        #expect(st4 == LT_ERR_INVALID_ARGUMENT)
    }
}
