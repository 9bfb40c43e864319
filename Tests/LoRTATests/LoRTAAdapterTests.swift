import Testing
@testable import LoRTA

@Suite("LoRTA adapter", .serialized)
struct LoRTAAdapterTests {
    /// MiniLM-L6 attention: d = 384, H = 12, L = 6, Q, K, V, O.
    static func miniLM(rank: Int = 8) throws -> LoRTAConfiguration {
        try LoRTAConfiguration(rank: rank, alpha: 16, targetModules: ["query", "key", "value", "attention.output.dense"],
                               layerCount: 6, headCount: 12, headDimension: 32)
    }

    /// Grouped-query attention: 8 query heads of 8, 2 KV heads → K, V have 16 rows.
    static func gqa() throws -> LoRTAConfiguration {
        try LoRTAConfiguration(rank: 4, alpha: 8, targetModules: ["q_proj", "k_proj", "v_proj", "o_proj"],
                               layerCount: 3, headCount: 8, headDimension: 8, outputSizes: [64, 16, 16, 64])
    }

    /// Only Q and V, d_out ≠ d_in, sizes that are not multiples of the SIMD width.
    static func rectangular() throws -> LoRTAConfiguration {
        try LoRTAConfiguration(rank: 5, alpha: 7, targetModules: ["q", "v"], layerCount: 2, headCount: 4,
                               headDimension: 5, outputSizes: [24, 37])
    }

    /// Forward adds X ΔWᵀ to the base outputs; checked against the materialized float64 ΔW.
    func checkForward(_ c: LoRTAConfiguration, n: Int, layers: [Int], seed: UInt64) throws {
        let f = randomLoRTAFactors(c, seed: seed)
        let adapter = try LoRTAAdapter(configuration: c, factors: f)
        let ref = ReferenceLoRTA(c, f)
        var g = LoRTATestRNG(seed + 1)
        let x = g.tensor([n, c.inputSize])
        let xd = x.scalars.map(Double.init)
        for l in layers {
            var outputs: [Int: Tensor] = [:]
            var base: [Int: Tensor] = [:]
            for m in 0..<c.matrixCount {
                base[m] = g.tensor([n, c.outputSizes[m]], scale: 0.1)
                outputs[m] = base[m]
            }
            let saved = try adapter.forward(layer: l, input: x, outputs: &outputs)
            #expect(saved.u.shape == [n, c.rank] && saved.p.shape == [n * c.headCount, c.rank])
            for m in 0..<c.matrixCount {
                let delta = ref.apply(layer: l, matrix: m, x: xd, n: n)
                let expected = zip(base[m]!.scalars, delta).map { Double($0) + $1 }
                let err = relativeMaxError(outputs[m]!.scalars, expected)
                #expect(err < 1e-5, "layer \(l) matrix \(m): relative error \(err)")
                // The base must really have been accumulated into, not overwritten.
                #expect(outputs[m]!.shape == base[m]!.shape)
            }
        }
    }

    @Test func forwardMatchesMaterializedMiniLM() throws {
        try checkForward(Self.miniLM(), n: 5, layers: [0, 5], seed: 11)
    }

    @Test func forwardMatchesMaterializedGQA() throws {
        try checkForward(Self.gqa(), n: 19, layers: [0, 2], seed: 12)
    }

    @Test func forwardMatchesMaterializedRectangularSubset() throws {
        try checkForward(Self.rectangular(), n: 33, layers: [1], seed: 13)
        // rank above the kernels' on-stack rank block (64)
        let big = try LoRTAConfiguration(rank: 70, alpha: 70, targetModules: ["a", "b"], layerCount: 2,
                                         headCount: 2, headDimension: 9, outputSizes: [11, 20])
        try checkForward(big, n: 3, layers: [0, 1], seed: 14)
    }

    /// A subset of outputs and a projection reused across calls give the same result as one call.
    @Test func forwardSubsetsAndSavedProjection() throws {
        let c = try Self.gqa()
        let adapter = try LoRTAAdapter(configuration: c, factors: randomLoRTAFactors(c, seed: 5))
        var g = LoRTATestRNG(6)
        let x = g.tensor([7, c.inputSize])
        var all: [Int: Tensor] = [:]
        for m in 0..<4 { all[m] = try Tensor(zeros: [7, c.outputSizes[m]]) }
        let saved = try adapter.forward(layer: 1, input: x, outputs: &all)
        #expect(saved == (try adapter.project(input: x)))
        var only: [Int: Tensor] = [2: try Tensor(zeros: [7, 16])]
        try adapter.forward(layer: 1, projection: saved, outputs: &only)
        #expect(only[2]! == all[2]!)
    }

    /// Reference init: A within the kaiming bound, B = 0, C's constant, ΔW = 0, seeded.
    @Test func referenceInitialisation() throws {
        let c = try Self.gqa()
        let a1 = try LoRTAAdapter(configuration: c, seed: 42)
        let a2 = try LoRTAAdapter(configuration: c, seed: 42)
        let a3 = try LoRTAAdapter(configuration: c, seed: 43, cInitialValue: 0.5)
        #expect(a1.factors == a2.factors)
        #expect(a1.factors.a != a3.factors.a)
        let bound = Float(1 / Double(c.inputSize).squareRoot())
        #expect(a1.factors.a.count == 2)
        for a in a1.factors.a {
            #expect(a.scalars.allSatisfy { abs($0) <= bound })
            #expect(a.maxAbsolute > bound * 0.5)              // spread over the interval
            #expect(Set(a.scalars).count == a.count)          // no repeated draws
        }
        #expect(a1.factors.a[0].scalars.prefix(16) != a1.factors.a[1].scalars.prefix(16))
        #expect(a1.factors.b.scalars.allSatisfy { $0 == 0 })
        #expect(a1.factors.cH.scalars.allSatisfy { $0 == 1 } && a1.factors.cL.scalars.allSatisfy { $0 == 1 }
                && a1.factors.cM.scalars.allSatisfy { $0 == 1 })
        #expect(a3.factors.cM.scalars.allSatisfy { $0 == 0.5 })
        #expect(try a1.deltaWeight(layer: 2, matrix: 1).maxAbsolute == 0)
        #expect(a1.gradients == (try LoRTAFactors(zerosFor: c)))
    }

    @Test func parameterCount() throws {
        // docs/math.md §3.5: RoBERTa-base, Q,K,V,O of 12 layers, r = 4 → 3,440.
        let roberta = try LoRTAConfiguration(rank: 4, alpha: 8, targetModules: ["query", "key", "value", "dense"],
                                             layerCount: 12, headCount: 12, headDimension: 64)
        let adapter = try LoRTAAdapter(configuration: roberta, seed: 1)
        #expect(adapter.parameterCount == 3440)
        #expect(adapter.factors.scalarCount == 3440)
        // GQA: one A per output size.
        let g = try LoRTAAdapter(configuration: Self.gqa(), seed: 1)
        #expect(g.parameterCount == 4 * (64 + 16 + 8 + 8 + 3 + 4))
        #expect(g.parameterCount == g.factors.scalarCount)
    }

    /// Merging every slice equals adding each materialized ΔW; unmerge restores W.
    @Test func mergeAllAndUnmerge() throws {
        for c in [try Self.gqa(), try Self.rectangular()] {
            let adapter = try LoRTAAdapter(configuration: c, factors: randomLoRTAFactors(c, seed: 77))
            let ref = ReferenceLoRTA(c, adapter.factors)
            var g = LoRTATestRNG(78)
            let original: [[Tensor]] = (0..<c.layerCount).map { _ in
                (0..<c.matrixCount).map { g.tensor([c.outputSizes[$0], c.inputSize], scale: 3) }
            }
            var merged = original
            try adapter.mergeAll(into: &merged)
            for l in 0..<c.layerCount {
                for m in 0..<c.matrixCount {
                    let delta = ref.deltaW(layer: l, matrix: m)
                    let expected = zip(original[l][m].scalars, delta).map { Double($0) + $1 }
                    #expect(relativeMaxError(merged[l][m].scalars, expected) < 1e-6)
                    // materialized ΔW from the API against the float64 definition
                    #expect(relativeMaxError(try adapter.deltaWeight(layer: l, matrix: m).scalars, delta) < 1e-5)
                    // one slice at a time gives the same bits as the all-slices call
                    var one = original[l][m]
                    try adapter.merge(into: &one, layer: l, matrix: m)
                    #expect(one == merged[l][m])
                    try adapter.unmerge(from: &one, layer: l, matrix: m)
                    let tol = 1e-6 * Double(original[l][m].maxAbsolute)
                    #expect(zip(one.scalars, original[l][m].scalars).allSatisfy { Double(abs($0 - $1)) <= tol })
                }
            }
            #expect(original[0][0] != merged[0][0])  // copy-on-write kept the original intact
            try adapter.unmergeAll(from: &merged)
            for l in 0..<c.layerCount {
                for m in 0..<c.matrixCount {
                    let tol = 1e-6 * Double(original[l][m].maxAbsolute)
                    let maxDiff = zip(merged[l][m].scalars, original[l][m].scalars).map { Double(abs($0 - $1)) }.max()!
                    #expect(maxDiff <= tol, "unmerge drift \(maxDiff) > \(tol)")
                }
            }
        }
    }

    /// Every bad input throws a typed error and changes nothing.
    @Test func typedErrors() throws {
        func expectError(_ expected: LoRTAError, _ body: () throws -> Void) {
            do { try body(); Issue.record("expected \(expected)") } catch let e as LoRTAError {
                #expect(e == expected)
                #expect(!e.description.isEmpty)
            } catch { Issue.record("unexpected error \(error)") }
        }
        // configuration
        #expect(throws: LoRTAError.self) {
            try LoRTAConfiguration(rank: 0, alpha: 1, targetModules: ["q"], layerCount: 1, headCount: 1, headDimension: 1)
        }
        #expect(throws: LoRTAError.self) {
            try LoRTAConfiguration(rank: 2, alpha: 1, targetModules: ["q", "q"], layerCount: 1, headCount: 1, headDimension: 1)
        }
        #expect(throws: LoRTAError.self) {
            try LoRTAConfiguration(rank: 2, alpha: 1, targetModules: [], layerCount: 1, headCount: 1, headDimension: 1)
        }
        #expect(throws: LoRTAError.self) {
            try LoRTAConfiguration(rank: 2, alpha: .nan, targetModules: ["q"], layerCount: 1, headCount: 1, headDimension: 1)
        }
        #expect(throws: LoRTAError.self) {
            try LoRTAConfiguration(rank: 2, alpha: 1, targetModules: ["q", "k"], layerCount: 1, headCount: 2,
                                   headDimension: 3, outputSizes: [6])
        }
        #expect(throws: LoRTAError.self) {
            try LoRTAConfiguration(rank: 2, alpha: 1, targetModules: ["q"], layerCount: 0, headCount: 2, headDimension: 3)
        }
        // Sizes each within range whose parameter count overflows Int: refused, not trapped.
        let big = Int(Int32.max)
        let perRank = (0..<64).reduce(0) { $0 + big - $1 } + 1 + big + big + 64  // Σ d_out + d_h + H + L + M
        expectError(.invalidConfiguration("rank \(big) × \(perRank) parameters per rank overflows the parameter count")) {
            _ = try LoRTAConfiguration(rank: big, alpha: 1, targetModules: (0..<64).map { "m\($0)" }, layerCount: big,
                                       headCount: big, headDimension: 1, outputSizes: (0..<64).map { big - $0 })
        }
        let c = try Self.gqa()
        expectError(.unknownTarget("up_proj", available: c.targetModules)) { _ = try c.matrixIndex(of: "up_proj") }
        #expect(try c.matrixIndex(of: "v_proj") == 2)
        expectError(.invalidConfiguration("cInitialValue must be finite, got inf")) {
            _ = try LoRTAAdapter(configuration: c, seed: 1, cInitialValue: .infinity)
        }

        // factor shapes
        var f = randomLoRTAFactors(c, seed: 1)
        f.b = try Tensor(zeros: [4, 9])
        expectError(.factorShapeMismatch(factor: "B", expected: [4, 8], actual: [4, 9])) {
            _ = try LoRTAAdapter(configuration: c, factors: f)
        }
        f = randomLoRTAFactors(c, seed: 1)
        f.cL = try Tensor(zeros: [4, 4])
        expectError(.factorShapeMismatch(factor: "C_L", expected: [3, 4], actual: [4, 4])) {
            _ = try LoRTAAdapter(configuration: c, factors: f)
        }
        f = randomLoRTAFactors(c, seed: 1)
        f.a = [f.a[0]]
        expectError(.factorCountMismatch(expected: 2, actual: 1)) { _ = try LoRTAAdapter(configuration: c, factors: f) }
        f = randomLoRTAFactors(c, seed: 1)
        f.a[1] = try Tensor(zeros: [64, 4])
        expectError(.factorShapeMismatch(factor: "A[1]", expected: [16, 4], actual: [64, 4])) {
            _ = try LoRTAAdapter(configuration: c, factors: f)
        }

        var adapter = try LoRTAAdapter(configuration: c, factors: randomLoRTAFactors(c, seed: 2))
        let before = adapter.factors
        #expect(throws: LoRTAError.self) { try adapter.setFactors(f) }
        #expect(throws: LoRTAError.self) { try adapter.updateFactors { $0.cH = try Tensor(zeros: [1, 1]) } }
        #expect(adapter.factors == before)
        try adapter.updateFactors { $0.cH = try Tensor(repeating: 2, shape: [8, 4]) }
        #expect(adapter.factors.cH.scalars.allSatisfy { $0 == 2 })

        // forward / backward arguments
        let x = try Tensor(zeros: [3, 64])
        var outputs: [Int: Tensor] = [0: try Tensor(repeating: 1, shape: [3, 64]), 1: try Tensor(zeros: [3, 16])]
        let saved = outputs
        expectError(.layerOutOfRange(layer: 3, layerCount: 3)) { try adapter.forward(layer: 3, input: x, outputs: &outputs) }
        expectError(.layerOutOfRange(layer: -1, layerCount: 3)) { try adapter.forward(layer: -1, input: x, outputs: &outputs) }
        var bad = outputs
        bad[4] = try Tensor(zeros: [3, 64])
        expectError(.matrixOutOfRange(matrix: 4, matrixCount: 4)) { try adapter.forward(layer: 0, input: x, outputs: &bad) }
        bad = outputs
        bad[1] = try Tensor(zeros: [3, 64])
        expectError(.shapeMismatch(operation: "LoRTA forward output of matrix 1 (k_proj)", expected: [3, 16], actual: [3, 64])) {
            try adapter.forward(layer: 0, input: x, outputs: &bad)
        }
        expectError(.shapeMismatch(operation: "LoRTA forward input", expected: [3, 64], actual: [3, 63])) {
            try adapter.forward(layer: 0, input: try Tensor(zeros: [3, 63]), outputs: &outputs)
        }
        expectError(.rankMismatch(operation: "LoRTA forward input", expected: 2, actual: 1)) {
            try adapter.forward(layer: 0, input: try Tensor(zeros: [64]), outputs: &outputs)
        }
        var empty: [Int: Tensor] = [:]
        expectError(.noOutputs(operation: "LoRTA forward")) { try adapter.forward(layer: 0, input: x, outputs: &empty) }
        #expect(outputs == saved)

        let grads = adapter.gradients
        var dx = try Tensor(zeros: [3, 63])
        expectError(.shapeMismatch(operation: "LoRTA backward input gradient", expected: [3, 64], actual: [3, 63])) {
            try adapter.backward(layer: 0, input: x, outputGradients: outputs, inputGradient: &dx)
        }
        let wrongProjection = try adapter.project(input: try Tensor(zeros: [4, 64]))
        #expect(throws: LoRTAError.self) {
            try adapter.backward(layer: 0, input: x, outputGradients: outputs, projection: wrongProjection)
        }
        #expect(throws: LoRTAError.self) { try adapter.backward(layer: 5, input: x, outputGradients: outputs) }
        #expect(adapter.gradients == grads)

        // merge
        var w = try Tensor(zeros: [64, 64])
        expectError(.shapeMismatch(operation: "LoRTA merge weight (layer 0, matrix 1)", expected: [16, 64], actual: [64, 64])) {
            try adapter.merge(into: &w, layer: 0, matrix: 1)
        }
        expectError(.matrixOutOfRange(matrix: 9, matrixCount: 4)) { try adapter.merge(into: &w, layer: 0, matrix: 9) }
        expectError(.layerOutOfRange(layer: 7, layerCount: 3)) { _ = try adapter.deltaWeight(layer: 7, matrix: 0) }
        var ws: [[Tensor]] = [[w]]
        #expect(throws: LoRTAError.self) { try adapter.mergeAll(into: &ws) }
        #expect(w.maxAbsolute == 0)
    }
}
