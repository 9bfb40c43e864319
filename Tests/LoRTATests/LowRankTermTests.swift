import CKernels
import Foundation
import Testing
@testable import LoRTA

// Low-rank terms fused into the frozen products (lt_lowrank_term, lt_nn.h; LowRankTerm):
// - lt_lowrank_terms_apply is one axpy per row and term (lt_kernel_axpy_many, the micro-kernel
//   the adapters' unfused paths use), in term order, bit for bit, and close to a float64 sum;
// - the fused products (lt_linear_forward_terms, lt_linear_backward_input_terms,
//   lt_quant_matmul_terms, lt_quant_matmul_backward_input_terms) give the bits of the product
//   followed by lt_lowrank_terms_apply, on every ISA, both GEMM backends, 1 and 2 threads;
// - the SwiGLU gate fused into the products (lt_quant_matmul_swiglu and its backward) gives the
//   bits of product, terms and lt_swiglu_forward / lt_swiglu_backward one after the other;
// - the adapters' terms give the bits of their own kernels: LoRA's lt_lowrank_forward and
//   lt_lora_backward (W = NULL), LoRTA's lt_lorta_expand_forward and lt_lorta_backward;
// - bad terms are errors that write nothing.

private func bits(_ a: [Float]) -> [UInt32] { a.map(\.bitPattern) }
private func differing(_ a: [Float], _ b: [Float]) -> Int {
    zip(bits(a), bits(b)).filter { $0 != $1 }.count + abs(a.count - b.count)
}

/// Terms over an output of `cols` columns with coefficients for `n` rows; owns its arrays.
private struct TermSet {
    var coef: [[Float]] = []
    var m: [[Float]] = []
    var spec: [(col: Int, width: Int, rank: Int, ldcoef: Int, ldm: Int)] = []

    init(n: Int, cols: Int, seed: UInt64) {
        var rng = LoRATestRNG(seed: seed)
        // overlapping terms, a rank over the 64-chunk, a narrow one, an empty rank
        let shapes = [(0, cols, 8), (cols / 3, cols - cols / 3, 70), (1, min(5, cols - 1), 3), (0, cols / 2, 0)]
        for (col, width, rank) in shapes {
            let ldcoef = rank + 2, ldm = width + 3
            coef.append(rng.array(max(n * ldcoef, 1)))
            m.append(rng.array(max(rank * ldm, 1)))
            spec.append((col, width, rank, ldcoef, ldm))
        }
    }

    func withTerms<R>(_ body: ([lt_lowrank_term]) throws -> R) rethrows -> R {
        var terms: [lt_lowrank_term] = []
        var keep: [UnsafeMutableBufferPointer<Float>] = []
        defer { keep.forEach { $0.deallocate() } }
        for (i, s) in spec.enumerated() {
            let c = UnsafeMutableBufferPointer<Float>.allocate(capacity: coef[i].count)
            _ = c.initialize(from: coef[i])
            let mm = UnsafeMutableBufferPointer<Float>.allocate(capacity: m[i].count)
            _ = mm.initialize(from: m[i])
            keep += [c, mm]
            terms.append(lt_lowrank_term(col: Int64(s.col), width: Int64(s.width), rank: Int64(s.rank),
                                         coef: UnsafePointer(c.baseAddress), ldcoef: Int64(s.ldcoef),
                                         M: UnsafePointer(mm.baseAddress), ldm: Int64(s.ldm)))
        }
        return try body(terms)
    }

    /// The reference: per row and term (in order) one lt_kernel_axpy_many on the active ISA.
    func applyByAxpy(n: Int, to y: inout [Float], ldy: Int) {
        let isa = Int32(lt_isa_active().rawValue)  // the active variant
        for i in 0..<n {
            for (t, s) in spec.enumerated() where s.rank > 0 && s.width > 0 {
                y.withUnsafeMutableBufferPointer { yp in
                    _ = lt_kernel_axpy_many(isa, yp.baseAddress! + i * ldy + s.col, Array(coef[t][(i * s.ldcoef)...]),
                                            m[t], Int64(s.ldm), Int64(s.rank), Int64(s.width))
                }
            }
        }
    }

    /// The float64 value of the terms' sum on top of `y`.
    func applyInDouble(n: Int, to y: [Float], ldy: Int) -> [Double] {
        var out = y.map(Double.init)
        for i in 0..<n {
            for (t, s) in spec.enumerated() {
                for j in 0..<s.width {
                    var a = 0.0
                    for k in 0..<s.rank { a += Double(coef[t][i * s.ldcoef + k]) * Double(m[t][k * s.ldm + j]) }
                    out[i * ldy + s.col + j] += a
                }
            }
        }
        return out
    }
}

@Suite struct LowRankTermTests {
    @Test func applyIsOneAxpyPerRowAndTerm() throws {
        let n = 37, cols = 90, ldy = 93
        let set = TermSet(n: n, cols: cols, seed: 71)
        var rng = LoRATestRNG(seed: 72)
        let y0 = rng.array(n * ldy)
        for isa in testedInstructionSets() {
            for threads in [1, 2] {
                try Runtime.withInstructionSet(isa) {
                    try Runtime.withThreadCount(threads) {
                        var y = y0
                        let st = set.withTerms { t in lt_lowrank_terms_apply(Int64(n), Int64(cols), t, Int64(t.count), &y, Int64(ldy)) }
                        #expect(st == LT_OK)
                        var ref = y0
                        set.applyByAxpy(n: n, to: &ref, ldy: ldy)
                        #expect(differing(y, ref) == 0, "\(isa), \(threads) threads")
                        let exact = set.applyInDouble(n: n, to: y0, ldy: ldy)
                        let worst = zip(y, exact).map { abs(Double($0) - $1) / max(1, abs($1)) }.max() ?? 0
                        #expect(worst < 1e-4, "\(isa): \(worst)")
                        // padding columns between rows untouched
                        for i in 0..<n { for j in cols..<ldy { #expect(y[i * ldy + j].bitPattern == y0[i * ldy + j].bitPattern) } }
                    }
                }
            }
        }
    }

    @Test func fusedLinearProductsGiveTheUnfusedBits() throws {
        // (n, d_in, d_out): several K chunks; the MiniLM-like square; an output narrow enough for
        // the GEMM's transposed path (unfused there); a tiny one.
        for (n, dIn, dOut, seed) in [(70, 1000, 130, 81), (64, 96, 96, 82), (40, 24, 6, 83), (3, 5, 7, 84)] {
            var rng = LoRATestRNG(seed: UInt64(seed))
            let x = rng.array(n * dIn), w = rng.array(dOut * dIn), b = rng.array(dOut), res = rng.array(n * dOut)
            let dY = rng.array(n * dOut), dx0 = rng.array(n * dIn)
            let fwdTerms = TermSet(n: n, cols: dOut, seed: UInt64(seed) + 100)
            let bwdTerms = TermSet(n: n, cols: dIn, seed: UInt64(seed) + 200)
            for backend in GEMMBackend.allCases {
                for isa in testedInstructionSets() {
                    for threads in [1, 2] {
                        let label = "n \(n) d_in \(dIn) d_out \(dOut), \(backend), \(isa), \(threads) threads"
                        try Runtime.withGEMMBackend(backend) {
                            try Runtime.withInstructionSet(isa) {
                                try Runtime.withThreadCount(threads) {
                                    for (bias, r) in [(b, res), (b, nil), (nil, res), (nil, nil)] as [([Float]?, [Float]?)] {
                                        var ref = [Float](repeating: .nan, count: n * dOut)
                                        #expect(lt_linear_forward(Int64(n), Int64(dIn), Int64(dOut), x, Int64(dIn), w, Int64(dIn),
                                                                  bias, r, Int64(dOut), &ref, Int64(dOut)) == LT_OK)
                                        fwdTerms.withTerms { t in
                                            #expect(lt_lowrank_terms_apply(Int64(n), Int64(dOut), t, Int64(t.count), &ref, Int64(dOut)) == LT_OK)
                                        }
                                        var y = [Float](repeating: .nan, count: n * dOut)
                                        let st = fwdTerms.withTerms { t in
                                            lt_linear_forward_terms(Int64(n), Int64(dIn), Int64(dOut), x, Int64(dIn), w, Int64(dIn),
                                                                    bias, r, Int64(dOut), t, Int64(t.count), &y, Int64(dOut))
                                        }
                                        #expect(st == LT_OK)
                                        #expect(differing(y, ref) == 0, "forward, bias \(bias != nil), residual \(r != nil): \(label)")
                                    }
                                    for accumulate: Int32 in [0, 1] {
                                        var ref = dx0
                                        #expect(lt_linear_backward_input(Int64(n), Int64(dIn), Int64(dOut), dY, Int64(dOut), w, Int64(dIn),
                                                                         &ref, Int64(dIn), accumulate) == LT_OK)
                                        bwdTerms.withTerms { t in
                                            #expect(lt_lowrank_terms_apply(Int64(n), Int64(dIn), t, Int64(t.count), &ref, Int64(dIn)) == LT_OK)
                                        }
                                        var dx = dx0
                                        let st = bwdTerms.withTerms { t in
                                            lt_linear_backward_input_terms(Int64(n), Int64(dIn), Int64(dOut), dY, Int64(dOut), w, Int64(dIn),
                                                                           t, Int64(t.count), &dx, Int64(dIn), accumulate)
                                        }
                                        #expect(st == LT_OK)
                                        #expect(differing(dx, ref) == 0, "input gradient, accumulate \(accumulate): \(label)")
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    @Test(arguments: [GGMLType.f32, .q8_0, .q4_K])
    func quantizedProductsWithTermsGiveTheUnfusedBits(type: GGMLType) throws {
        let dIn = 256, dOut = 96
        var rng = LoRATestRNG(seed: 91)
        let bytes = QuantMatmulTests.randomMatrix(type, rows: dOut, cols: dIn, rng: &rng)
        let q = try QuantizedMatrix(type: type, rows: dOut, columns: dIn, bytes: Data(bytes), name: "w")
        for n in [5, 40] {                                   // decode-sized path, packed GEMM
            let x = rng.array(n * dIn), dY = rng.array(n * dOut), y0 = rng.array(n * dOut), dx0 = rng.array(n * dIn)
            let fwd = TermSet(n: n, cols: dOut, seed: 92), bwd = TermSet(n: n, cols: dIn, seed: 93)
            for isa in testedInstructionSets() {
                for threads in [1, 2] {
                    try Runtime.withInstructionSet(isa) {
                        try Runtime.withThreadCount(threads) {
                            let scratch = ScratchBuffer()
                            for accumulate in [false, true] {
                                var ref = y0, y = y0
                                try q.multiplyTransposed(n: n, x: x, ldx: dIn, into: &ref, ldy: dOut, accumulate: accumulate, scratch: scratch)
                                fwd.withTerms { t in
                                    #expect(lt_lowrank_terms_apply(Int64(n), Int64(dOut), t, Int64(t.count), &ref, Int64(dOut)) == LT_OK)
                                }
                                try fwd.withTerms { t in
                                    try t.withUnsafeBufferPointer { tp in
                                        try q.multiplyTransposed(n: n, x: x, ldx: dIn, into: &y, ldy: dOut, accumulate: accumulate,
                                                                 scratch: scratch, terms: tp.baseAddress, termCount: Int64(tp.count))
                                    }
                                }
                                #expect(differing(y, ref) == 0, "\(type) forward n \(n) accumulate \(accumulate), \(isa), \(threads) threads")
                                var dref = dx0, dx = dx0
                                try q.multiply(n: n, dy: dY, lddy: dOut, into: &dref, lddx: dIn, accumulate: accumulate, scratch: scratch)
                                bwd.withTerms { t in
                                    #expect(lt_lowrank_terms_apply(Int64(n), Int64(dIn), t, Int64(t.count), &dref, Int64(dIn)) == LT_OK)
                                }
                                try bwd.withTerms { t in
                                    try t.withUnsafeBufferPointer { tp in
                                        try q.multiply(n: n, dy: dY, lddy: dOut, into: &dx, lddx: dIn, accumulate: accumulate,
                                                       scratch: scratch, terms: tp.baseAddress, termCount: Int64(tp.count))
                                    }
                                }
                                #expect(differing(dx, dref) == 0, "\(type) backward n \(n) accumulate \(accumulate), \(isa), \(threads) threads")
                            }
                        }
                    }
                }
            }
        }
    }

    @Test(arguments: [GGMLType.f32, .q8_0, .q4_K])
    func swigluFusedIntoTheProductsGivesTheUnfusedBits(type: GGMLType) throws {
        let dModel = 256, w = 96
        var rng = LoRATestRNG(seed: 95)
        let up = QuantMatmulTests.randomMatrix(type, rows: w, cols: dModel, rng: &rng)      // w × d
        var rng2 = LoRATestRNG(seed: 96)
        let down = QuantMatmulTests.randomMatrix(type, rows: dModel, cols: 256, rng: &rng2)  // d × 256 (w padded to a block)
        for n in [5, 40] {
            let x = rng.array(n * dModel), g = rng.array(n * w, scale: 4), dY = rng.array(n * dModel)
            let u0 = rng.array(n * 256, scale: 2)
            let upTerms = TermSet(n: n, cols: w, seed: 97), downTerms = TermSet(n: n, cols: 256, seed: 98)
            for isa in testedInstructionSets() {
                for threads in [1, 2] {
                    let label = "\(type) n \(n), \(isa), \(threads) threads"
                    try Runtime.withInstructionSet(isa) {
                        try Runtime.withThreadCount(threads) {
                            var wsFloats: Int64 = 0
                            #expect(lt_quant_matmul_workspace_size(Int32(type.rawValue), Int64(n), Int64(dModel), 256, &wsFloats) == LT_OK)
                            var ws = [Float](repeating: 0, count: max(Int(wsFloats), 1))
                            // forward: U = X W_upᵀ + terms, A = silu(G) ∘ U
                            var uRef = [Float](repeating: .nan, count: n * w), aRef = uRef, u = uRef, a = uRef
                            let st1 = upTerms.withTerms { t in
                                lt_quant_matmul_terms(Int32(type.rawValue), Int64(n), Int64(dModel), Int64(w), x, Int64(dModel), up,
                                                      Int64(up.count), t, Int64(t.count), &uRef, Int64(w), 0, &ws, wsFloats)
                            }
                            #expect(st1 == LT_OK)
                            #expect(lt_swiglu_forward(Int64(n), Int64(w), g, Int64(w), uRef, Int64(w), &aRef, Int64(w)) == LT_OK)
                            let st2 = upTerms.withTerms { t in
                                lt_quant_matmul_swiglu(Int32(type.rawValue), Int64(n), Int64(dModel), Int64(w), x, Int64(dModel), up,
                                                       Int64(up.count), t, Int64(t.count), g, Int64(w), &u, Int64(w), &a, Int64(w),
                                                       &ws, wsFloats)
                            }
                            #expect(st2 == LT_OK)
                            #expect(differing(u, uRef) == 0 && differing(a, aRef) == 0, "forward: \(label)")
                            // backward: dA = dY W_down + terms, dG, dU from (G, U, dA); the gate's
                            // width here is 256 (the down matrix's columns)
                            let gB = rng.array(n * 256, scale: 4)
                            var dARef = [Float](repeating: .nan, count: n * 256), dGRef = dARef, dURef = dARef
                            var dA = dARef, dG = dARef, dU = dARef
                            let st3 = downTerms.withTerms { t in
                                lt_quant_matmul_backward_input_terms(Int32(type.rawValue), Int64(n), 256, Int64(dModel), dY, Int64(dModel),
                                                                     down, Int64(down.count), t, Int64(t.count), &dARef, 256, 0, &ws, wsFloats)
                            }
                            #expect(st3 == LT_OK)
                            #expect(lt_swiglu_backward(Int64(n), 256, gB, 256, u0, 256, dARef, 256, &dGRef, 256, &dURef, 256) == LT_OK)
                            let st4 = downTerms.withTerms { t in
                                lt_quant_matmul_swiglu_backward(Int32(type.rawValue), Int64(n), 256, Int64(dModel), dY, Int64(dModel),
                                                                down, Int64(down.count), t, Int64(t.count), gB, 256, u0, 256,
                                                                &dA, 256, &dG, 256, &dU, 256, &ws, wsFloats)
                            }
                            #expect(st4 == LT_OK)
                            #expect(differing(dA, dARef) == 0 && differing(dG, dGRef) == 0 && differing(dU, dURef) == 0,
                                    "backward: \(label)")
                        }
                    }
                }
            }
        }
        // aliasing is refused before anything is written
        var buf = [Float](repeating: 3, count: 5 * w)
        let st = buf.withUnsafeMutableBufferPointer { b in
            lt_quant_matmul_swiglu(Int32(type.rawValue), 5, Int64(dModel), Int64(w), [Float](repeating: 1, count: 5 * dModel),
                                   Int64(dModel), up, Int64(up.count), nil, 0, b.baseAddress, Int64(w),
                                   b.baseAddress! + 0, Int64(w), b.baseAddress, Int64(w), nil, 0)
        }
        #expect(st == LT_ERR_INVALID_ARGUMENT)
        #expect(buf.allSatisfy { $0 == 3 })
    }

    @Test func loraTermsGiveTheLoRAKernelsBits() throws {
        let n = 45, dIn = 48, dOut = 40
        for r in [8, 70] {                                  // one rank chunk, two
            var rng = LoRATestRNG(seed: UInt64(100 + r))
            let host = AdapterHost(modelType: "test", layerCount: 1, headCount: 4, headDimension: 12,
                                   modules: [.init(name: "q", path: "q", inputSize: dIn, outputSize: dOut, isAttention: true)],
                                   layerPath: "layers")
            var adapter = try LoRAAdapter(host: host, targets: ["q"], configuration: LoRAConfiguration(rank: r, alpha: 2.5 * Float(r)), seed: 1)
            try adapter.setParameters(adapter.parameters.map { try Tensor(rng.array($0.count, scale: 0.3), shape: $0.shape) })
            let a = adapter.parameters[0], bm = adapter.parameters[1], s = adapter.configuration.scale
            let x = rng.array(n * dIn), y0 = rng.array(n * dOut), dY = rng.array(n * dOut), dx0 = rng.array(n * dIn)
            for isa in testedInstructionSets() {
                try Runtime.withInstructionSet(isa) {
                    // forward: terms applied == lt_lowrank_forward (accumulate)
                    var y = y0
                    try x.withUnsafeBufferPointer { xp in
                        try y.withUnsafeMutableBufferPointer { yp in
                            try adapter.forward(layer: 0, input: AdapterInput(xp.baseAddress!, rows: n, width: dIn, stride: dIn),
                                                outputs: [AdapterOutput(module: "q", yp.baseAddress!, stride: dOut)])
                        }
                    }
                    var ref = y0
                    var ws = [Float](repeating: 0, count: r * dOut)
                    #expect(lt_lowrank_forward(Int64(n), Int64(dIn), Int64(dOut), Int64(r), s, x, Int64(dIn), a.scalars, bm.scalars,
                                               &ref, Int64(dOut), 1, &ws) == LT_OK)
                    #expect(differing(y, ref) == 0, "LoRA forward r \(r), \(isa)")
                    // backward: gradients and dX == lt_lora_backward with W = NULL
                    var grads = try adapter.zeroGradients()
                    var dx = dx0
                    try x.withUnsafeBufferPointer { xp in
                        try dY.withUnsafeBufferPointer { dyp in
                            try dx.withUnsafeMutableBufferPointer { dxp in
                                try adapter.backward(layer: 0, input: AdapterInput(xp.baseAddress!, rows: n, width: dIn, stride: dIn),
                                                     outputGradients: [AdapterOutput(module: "q", UnsafeMutablePointer(mutating: dyp.baseAddress!), stride: dOut)],
                                                     parameterGradients: &grads,
                                                     inputGradient: AdapterOutput(module: "", dxp.baseAddress!, stride: dIn))
                            }
                        }
                    }
                    var size: Int64 = 0
                    #expect(lt_lora_backward_workspace_size(Int64(n), Int64(dIn), Int64(dOut), Int64(r), &size) == LT_OK)
                    var work = [Float](repeating: 0, count: Int(size))
                    var da = [Float](repeating: 0, count: r * dIn), db = [Float](repeating: 0, count: dOut * r), dref = dx0
                    #expect(lt_lora_backward(Int64(n), Int64(dIn), Int64(dOut), Int64(r), s, x, Int64(dIn), nil, 0, a.scalars, bm.scalars,
                                             dY, Int64(dOut), nil, &da, &db, &dref, Int64(dIn), 1, &work) == LT_OK)
                    #expect(differing(grads[0].scalars, da) == 0 && differing(grads[1].scalars, db) == 0, "LoRA dA, dB r \(r), \(isa)")
                    if isa != .scalar || r < 32 {
                        // lt_lora_backward's rank-32+ dX is an sgemm with beta = 1: the same chain as
                        // the term's axpy on the vector ISAs (fma), not on the portable one.
                        #expect(differing(dx, dref) == 0, "LoRA dX r \(r), \(isa)")
                    }
                }
            }
        }
    }

    @Test func lortaTermsGiveTheLoRTAKernelsBits() throws {
        let n = 45, H = 4, dh = 12, d = H * dh
        for r in [6, 66] {
            let cfg = try LoRTAConfiguration(rank: r, alpha: 2 * Float(r), targetModules: ["q", "k", "v"], layerCount: 2,
                                             headCount: H, headDimension: dh, outputSizes: [d, 24, 24])
            var rng = LoRATestRNG(seed: UInt64(200 + r))
            var adapter = try LoRTAAdapter(configuration: cfg, seed: 3)
            try adapter.setParameters(adapter.parameters.map { try Tensor(rng.array($0.count, scale: 0.4), shape: $0.shape) })
            let x = try Tensor(rng.array(n * d), shape: [n, d])
            let ys = try [d, 24, 24].map { try Tensor(rng.array(n * $0), shape: [n, $0]) }
            let dys = try [d, 24, 24].map { try Tensor(rng.array(n * $0), shape: [n, $0]) }
            let dx0 = try Tensor(rng.array(n * d), shape: [n, d])
            let names = ["q", "k", "v"]
            for isa in testedInstructionSets() {
                try Runtime.withInstructionSet(isa) {
                    // forward through the protocol (terms) vs LoRTAAdapter's own expansion kernel
                    var viaTerms = ys
                    let outs = viaTerms.indices.map { AdapterOutput(module: names[$0], viaTerms[$0].mutablePointer, stride: viaTerms[$0].shape[1]) }
                    try adapter.forward(layer: 1, input: AdapterInput(x.pointer, rows: n, width: d, stride: d), outputs: outs)
                    var own: [Int: Tensor] = [0: ys[0], 1: ys[1], 2: ys[2]]
                    _ = try adapter.forward(layer: 1, input: x, outputs: &own)
                    for t in 0..<3 { #expect(differing(viaTerms[t].scalars, own[t]!.scalars) == 0, "LoRTA forward \(names[t]) r \(r), \(isa)") }
                    // backward: gradients and dX vs lt_lorta_backward (LoRTAAdapter's own API)
                    var grads = try (adapter as any Adapter).zeroGradients()
                    var dx = dx0
                    let gouts = dys.indices.map { AdapterOutput(module: names[$0], UnsafeMutablePointer(mutating: dys[$0].pointer), stride: dys[$0].shape[1]) }
                    try adapter.backward(layer: 1, input: AdapterInput(x.pointer, rows: n, width: d, stride: d), outputGradients: gouts,
                                         parameterGradients: &grads, inputGradient: AdapterOutput(module: "", dx.mutablePointer, stride: d))
                    var mine = adapter
                    let _: Void = mine.zeroGradients()
                    var dref = dx0
                    try mine.backward(layer: 1, input: x, outputGradients: [0: dys[0], 1: dys[1], 2: dys[2]], inputGradient: &dref)
                    let refGrads = mine.gradients.a + [mine.gradients.b, mine.gradients.cH, mine.gradients.cL, mine.gradients.cM]
                    for (g, rg) in zip(grads, refGrads) { #expect(differing(g.scalars, rg.scalars) == 0, "LoRTA gradients r \(r), \(isa)") }
                    #expect(differing(dx.scalars, dref.scalars) == 0, "LoRTA dX r \(r), \(isa)")
                }
            }
        }
    }

    @Test func badTermsAreErrorsThatWriteNothing() throws {
        let n = 4, cols = 10
        let coef = [Float](repeating: 1, count: 40), m = [Float](repeating: 1, count: 40)
        let y0 = [Float](repeating: 2, count: n * cols)
        func status(_ t: lt_lowrank_term) -> (lt_status, [Float]) {
            var y = y0
            let st = withUnsafePointer(to: t) { lt_lowrank_terms_apply(Int64(n), Int64(cols), $0, 1, &y, Int64(cols)) }
            return (st, y)
        }
        let ok = coef.withUnsafeBufferPointer { c in m.withUnsafeBufferPointer { mm in
            lt_lowrank_term(col: 2, width: 8, rank: 3, coef: c.baseAddress, ldcoef: 3, M: mm.baseAddress, ldm: 8) } }
        #expect(status(ok).0 == LT_OK)
        var past = ok; past.col = 3                                   // columns 3 ..< 11 of 10
        var ldc = ok; ldc.ldcoef = 2                                  // stride below the rank
        var ldm = ok; ldm.ldm = 7                                     // stride below the width
        var neg = ok; neg.rank = -1
        var noCoef = ok; noCoef.coef = nil
        for (t, expected) in [(past, LT_ERR_INVALID_ARGUMENT), (ldc, LT_ERR_INVALID_ARGUMENT), (ldm, LT_ERR_INVALID_ARGUMENT),
                              (neg, LT_ERR_INVALID_ARGUMENT), (noCoef, LT_ERR_NULL_POINTER)] {
            let (st, y) = status(t)
            #expect(st == expected)
            #expect(differing(y, y0) == 0)
        }
        // The fused product checks its terms before writing anything.
        var y = y0
        let x = [Float](repeating: 1, count: n * 6), w = [Float](repeating: 1, count: cols * 6)
        let st = withUnsafePointer(to: past) {
            lt_linear_forward_terms(Int64(n), 6, Int64(cols), x, 6, w, 6, nil, nil, 0, $0, 1, &y, Int64(cols))
        }
        #expect(st == LT_ERR_INVALID_ARGUMENT)
        #expect(differing(y, y0) == 0)

        // Swift: a term whose matrix is too short, or for an output the product lacks.
        let t = try Tensor(zeros: [4, 3])
        #expect(throws: AdapterError.self) {
            try LowRankTerm(module: "q", column: 0, width: 5, rank: 3, coefficients: t, coefficientStride: 3, matrix: t, matrixStride: 5)
        }
        let term = try LowRankTerm(module: "q", column: 0, width: 3, rank: 3, coefficients: t, coefficientStride: 3,
                                   matrix: t, matrixStride: 3)
        #expect(throws: AdapterError.self) {
            try LowRankTerm.withCTerms([term], rows: 4, column: { $0 == "k" ? 0 : nil }) { _, _ in }
        }
        #expect(throws: AdapterError.self) {        // coefficients for 4 rows, not 5
            try LowRankTerm.withCTerms([term], rows: 5, column: { _ in 0 }) { _, _ in }
        }
    }
}
