import Testing
@testable import LoRTA

/// Gradients of all five factors and of X against float64 central finite differences of the
/// materialized float64 reference.
@Suite("LoRTA gradients", .serialized)
struct LoRTAGradientTests {
    /// Loss = Σ_(layer, targets) Σ_m <R_{l,m}, X ΔW_{l,m}ᵀ>, so dY_{l,m} = R_{l,m}.
    struct Problem {
        let c: LoRTAConfiguration
        let n: Int
        let steps: [(layer: Int, grads: [Int: Tensor])]
        let factors: LoRTAFactors
        let x: Tensor

        /// θ = [A_0, A_1, …, B, C_H, C_L, C_M, X] (float64).
        var theta: [Double] {
            (factors.a.flatMap(\.scalars) + factors.b.scalars + factors.cH.scalars + factors.cL.scalars
                + factors.cM.scalars + x.scalars).map(Double.init)
        }

        var segments: [Int] {
            factors.a.map(\.count) + [factors.b.count, factors.cH.count, factors.cL.count, factors.cM.count, x.count]
        }

        func loss(_ theta: [Double]) -> Double {
            var ref = ReferenceLoRTA(c, factors)
            var off = 0
            func take(_ k: Int) -> [Double] { defer { off += k }; return Array(theta[off..<off + k]) }
            for i in ref.a.indices { ref.a[i] = take(ref.a[i].count) }
            ref.b = take(ref.b.count); ref.cH = take(ref.cH.count)
            ref.cL = take(ref.cL.count); ref.cM = take(ref.cM.count)
            let xd = take(x.count)
            var total = 0.0
            for step in steps {
                for (m, r) in step.grads {
                    let y = ref.apply(layer: step.layer, matrix: m, x: xd, n: n)
                    let rs = r.scalars
                    for q in y.indices { total += Double(rs[q]) * y[q] }
                }
            }
            return total
        }

        func finiteDifferences() -> [Double] {
            var t = theta
            let h = 1e-3   // the loss is linear in each single scalar: central differences are exact up to rounding
            return t.indices.map { q in
                let v = t[q]
                t[q] = v + h; let lp = loss(t)
                t[q] = v - h; let lm = loss(t)
                t[q] = v
                return (lp - lm) / (2 * h)
            }
        }
    }

    func check(_ c: LoRTAConfiguration, n: Int, plan: [(Int, [Int])], seed: UInt64) throws {
        var g = LoRTATestRNG(seed)
        let factors = randomLoRTAFactors(c, seed: seed + 1)
        let x = g.tensor([n, c.inputSize])
        let steps = plan.map { (layer, ms) in
            (layer: layer, grads: Dictionary(uniqueKeysWithValues: ms.map { ($0, g.tensor([n, c.outputSizes[$0]])) }))
        }
        let problem = Problem(c: c, n: n, steps: steps, factors: factors, x: x)

        var adapter = try LoRTAAdapter(configuration: c, factors: factors)
        let frozen = g.tensor([n, c.inputSize], scale: 0.1)   // stands for the frozen path dY W
        /// One pass over the plan: dX starts from `frozen`; the gradients accumulate in the adapter.
        func pass() throws -> Tensor {
            var dx = frozen
            for (idx, step) in steps.enumerated() {
                var outputs = step.grads.mapValues { try! Tensor(zeros: $0.shape) }
                let saved = try adapter.forward(layer: step.layer, input: x, outputs: &outputs)
                // first step passes the saved projection, later ones let backward recompute it
                try adapter.backward(layer: step.layer, input: x, outputGradients: step.grads,
                                     projection: idx == 0 ? saved : nil, inputGradient: &dx)
            }
            return dx
        }
        let dx = try pass()
        let fd = problem.finiteDifferences()
        let gr = adapter.gradients
        var adapterDX = dx.scalars
        for i in adapterDX.indices { adapterDX[i] -= frozen.scalars[i] }
        let analytic: [[Float]] = gr.a.map(\.scalars) + [gr.b.scalars, gr.cH.scalars, gr.cL.scalars, gr.cM.scalars, adapterDX]
        let names = gr.a.indices.map { "A[\($0)]" } + ["B", "C_H", "C_L", "C_M", "X"]
        var off = 0
        for (k, seg) in problem.segments.enumerated() {
            let ref = Array(fd[off..<off + seg])
            off += seg
            #expect(ref.contains { $0 != 0 }, "\(names[k]) has an all-zero reference gradient")
            let err = relativeMaxError(analytic[k], ref)
            #expect(err < 1e-5, "gradient of \(names[k]): relative error \(err)")
        }
        // The frozen path already in dX was kept (accumulation, not overwrite).
        let dxRef = zip(frozen.scalars, fd[(off - x.count)...]).map { Double($0) + $1 }
        #expect(relativeMaxError(dx.scalars, dxRef) < 1e-5)

        // zeroGradients resets the accumulators; a second identical pass gives the same gradients
        // and dX, bit for bit (and leaves the first pass's copies alone).
        let firstBits = (gr.a + [gr.b, gr.cH, gr.cL, gr.cM, dx]).map { $0.scalars.map(\.bitPattern) }
        adapter.zeroGradients()
        #expect(adapter.gradients == (try LoRTAFactors(zerosFor: c)))
        let dx2 = try pass()
        let g2 = adapter.gradients
        let secondBits = (g2.a + [g2.b, g2.cH, g2.cL, g2.cM, dx2]).map { $0.scalars.map(\.bitPattern) }
        #expect(secondBits == firstBits, "a second pass after zeroGradients differs from the first")
        #expect((gr.a + [gr.b, gr.cH, gr.cL, gr.cM, dx]).map { $0.scalars.map(\.bitPattern) } == firstBits,
                "the first pass's gradients changed")
    }

    @Test func gradientsMatchFiniteDifferencesGQA() throws {
        // two output sizes (two A's), targets subsets, two layers, several row chunks (n = 37)
        let c = try LoRTAConfiguration(rank: 3, alpha: 6, targetModules: ["q", "k", "v"], layerCount: 2,
                                       headCount: 2, headDimension: 3, outputSizes: [6, 4, 4])
        try check(c, n: 37, plan: [(0, [0, 1]), (1, [1, 2, 0])], seed: 100)
    }

    @Test func gradientsMatchFiniteDifferencesSquare() throws {
        let c = try LoRTAConfiguration(rank: 4, alpha: 2, targetModules: ["query", "value"], layerCount: 3,
                                       headCount: 3, headDimension: 4)
        try check(c, n: 6, plan: [(2, [0, 1]), (0, [1])], seed: 200)
    }
}
