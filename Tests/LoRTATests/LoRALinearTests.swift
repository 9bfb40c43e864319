import Foundation
import Testing
import CKernels
@testable import LoRTA

/// A LoRALinear with random (non-zero) factors, and its float64 reference.
private struct LinearCase {
    var layer: LoRALinear
    let n, dIn, dOut, r: Int
    let x: Tensor

    init(n: Int, dIn: Int, dOut: Int, r: Int, bias: Bool = true, alpha: Float = 6, rs: Bool = false,
         seed: UInt64 = 1) throws {
        var rng = LoRATestRNG(seed: seed)
        let config = try LoRAConfiguration(rank: r, alpha: alpha, useRSLoRA: rs)
        layer = try LoRALinear(weight: rng.tensor([dOut, dIn]), bias: bias ? rng.tensor([dOut]) : nil,
                               loraA: rng.tensor([r, dIn]), loraB: rng.tensor([dOut, r]),
                               configuration: config)
        x = rng.tensor([n, dIn])
        self.n = n; self.dIn = dIn; self.dOut = dOut; self.r = r
    }

    func reference(weight: Tensor? = nil) -> [Double] {
        LoRAReference.forward(n: n, dIn: dIn, dOut: dOut, r: r, s: Double(layer.configuration.scale),
                              x: x.scalars.map(Double.init), ldx: dIn,
                              w: (weight ?? layer.weight).scalars.map(Double.init), ldw: dIn,
                              bias: layer.bias?.scalars.map(Double.init),
                              a: layer.loraA.scalars.map(Double.init), b: layer.loraB.scalars.map(Double.init))
    }
}

@Suite("LoRALinear", .serialized)
struct LoRALinearTests {
    static let shapes: [(n: Int, dIn: Int, dOut: Int, r: Int)] = [
        (7, 19, 13, 1), (9, 40, 17, 3), (5, 35, 50, 8), (3, 70, 33, 17),
    ]

    @Test("configuration: scale alpha/r or alpha/√r (same as lt_lora_scale); invalid values throw")
    func configuration() throws {
        let c = try LoRAConfiguration(rank: 8, alpha: 16)
        #expect(c.scale == 2)
        let rs = try LoRAConfiguration(rank: 9, alpha: 12, useRSLoRA: true)
        #expect(rs.scale == 4)
        for (rank, alpha, flag) in [(3, Float(7), false), (5, 11, true), (17, 0.3, true)] {
            var cs: Float = 0
            #expect(lt_lora_scale(alpha, Int64(rank), flag ? 1 : 0, &cs) == LT_OK)
            #expect(try LoRAConfiguration(rank: rank, alpha: alpha, useRSLoRA: flag).scale == cs)
        }
        #expect(throws: LoRAError.invalidRank(0)) { try LoRAConfiguration(rank: 0, alpha: 1) }
        #expect(throws: LoRAError.invalidRank(-2)) { try LoRAConfiguration(rank: -2, alpha: 1) }
        #expect(throws: LoRAError.invalidAlpha(.infinity)) { try LoRAConfiguration(rank: 2, alpha: .infinity) }
        do {
            _ = try LoRAConfiguration(rank: 2, alpha: .nan)
            Issue.record("NaN alpha accepted")
        } catch let e as LoRAError {
            guard case .invalidAlpha(let a) = e, a.isNaN else { Issue.record("wrong error \(e)"); return }
            #expect(e.description.contains("alpha"))
        }
    }

    @Test("configuration encodes with PEFT's keys and validates when decoding")
    func configurationCodable() throws {
        let c = try LoRAConfiguration(rank: 4, alpha: 8, useRSLoRA: true)
        let data = try JSONEncoder().encode(c)
        let object = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        #expect(object?["r"] as? Int == 4)
        #expect(object?["lora_alpha"] as? Double == 8)
        #expect(object?["use_rslora"] as? Bool == true)
        #expect(try JSONDecoder().decode(LoRAConfiguration.self, from: data) == c)
        // A PEFT adapter_config.json fragment (extra keys ignored, use_rslora optional).
        let peft = #"{"r": 16, "lora_alpha": 32, "target_modules": ["q_proj"], "lora_dropout": 0.05}"#
        let p = try JSONDecoder().decode(LoRAConfiguration.self, from: Data(peft.utf8))
        #expect(p == (try LoRAConfiguration(rank: 16, alpha: 32)))
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(LoRAConfiguration.self, from: Data(#"{"r": 0, "lora_alpha": 1}"#.utf8))
        }
    }

    @Test("forward equals float64 X (W + s B A)ᵀ (+ b) within 1e-5 relative", arguments: [false, true])
    func forward(withBias: Bool) throws {
        for (i, sh) in Self.shapes.enumerated() {
            for rs in [false, true] {
                let c = try LinearCase(n: sh.n, dIn: sh.dIn, dOut: sh.dOut, r: sh.r, bias: withBias, rs: rs,
                                       seed: UInt64(20 + i))
                let y = try c.layer(c.x)
                #expect(y.shape == [sh.n, sh.dOut])
                let err = LoRAReference.relativeError(y.scalars, c.reference())
                #expect(err < 1e-5, "shape \(sh) bias \(withBias) rs \(rs): \(err)")
            }
        }
    }

    @Test("inputs with several leading dimensions are flattened into rows")
    func leadingDimensions() throws {
        let c = try LinearCase(n: 6, dIn: 21, dOut: 10, r: 2)
        let flat = try c.layer(c.x)
        let y3 = try c.layer(c.x.reshaped([2, 3, 21]))
        #expect(y3.shape == [2, 3, 10])
        #expect(LoRAReference.bitwiseEqual(y3.scalars, flat.scalars))
        let y1 = try c.layer(try Tensor(Array(c.x.scalars[0..<21]), shape: [21]))
        #expect(y1.shape == [10])
        #expect(LoRAReference.bitwiseEqual(y1.scalars, Array(flat.scalars[0..<10])))
    }

    /// See LoRAKernelTests.backwardMatchesFiniteDifferences for the tolerance: the loss is
    /// linear in each of A, B and X, so float64 central differences are exact up to ~1e-11;
    /// 1e-4 covers the float32 rounding of the kernels with a wide margin.
    @Test("backward matches central finite differences of L = Σ Y∘R (float64)")
    func backwardFiniteDifferences() throws {
        for (i, sh) in Self.shapes.prefix(3).enumerated() {
            let c = try LinearCase(n: sh.n, dIn: sh.dIn, dOut: sh.dOut, r: sh.r, seed: UInt64(30 + i))
            var rng = LoRATestRNG(seed: 77)
            let rT = rng.tensor([sh.n, sh.dOut])
            let g = try c.layer.backward(input: c.x, outputGradient: rT)
            let rD = rT.scalars.map(Double.init), xD = c.x.scalars.map(Double.init)
            let wD = c.layer.weight.scalars.map(Double.init), bias = c.layer.bias!.scalars.map(Double.init)
            let aD = c.layer.loraA.scalars.map(Double.init), bD = c.layer.loraB.scalars.map(Double.init)
            let s = Double(c.layer.configuration.scale)
            func L(_ x: [Double], _ a: [Double], _ b: [Double]) -> Double {
                LoRAReference.loss(n: c.n, dIn: c.dIn, dOut: c.dOut, r: c.r, s: s, x: x, w: wD, bias: bias,
                                   a: a, b: b, weights: rD)
            }
            #expect(g.a.shape == [sh.r, sh.dIn] && g.b.shape == [sh.dOut, sh.r])
            let input = try #require(g.input)
            #expect(input.shape == [sh.n, sh.dIn])
            let eA = LoRAReference.relativeError(g.a.scalars, LoRAReference.centralDifferences(aD) { L(xD, $0, bD) })
            let eB = LoRAReference.relativeError(g.b.scalars, LoRAReference.centralDifferences(bD) { L(xD, aD, $0) })
            let eX = LoRAReference.relativeError(input.scalars, LoRAReference.centralDifferences(xD) { L($0, aD, bD) })
            #expect(eA < 1e-4 && eB < 1e-4 && eX < 1e-4, "\(sh): dA \(eA) dB \(eB) dX \(eX)")
            let noInput = try c.layer.backward(input: c.x, outputGradient: rT, computeInputGradient: false)
            #expect(noInput.input == nil)
            #expect(noInput.a == g.a && noInput.b == g.b)
        }
    }

    @Test("merged forward equals unmerged forward; merge then unmerge restores W; fused() leaves self unchanged")
    func mergeRoundTrip() throws {
        for (i, sh) in Self.shapes.enumerated() {
            var c = try LinearCase(n: sh.n, dIn: sh.dIn, dOut: sh.dOut, r: sh.r, seed: UInt64(40 + i))
            let w0 = c.layer.weight
            let y0 = try c.layer(c.x)
            let fused = try c.layer.fused()
            #expect(!c.layer.isMerged && c.layer.weight == w0)
            try c.layer.merge()
            #expect(c.layer.isMerged)
            #expect(c.layer.weight == fused)                    // same kernel, same bits
            let y1 = try c.layer(c.x)
            #expect(LoRAReference.relativeError(y1.scalars, y0.scalars) < 1e-5)
            #expect(LoRAReference.relativeError(y1.scalars, c.reference(weight: w0)) < 1e-5)
            #expect(try c.layer.fused() == c.layer.weight)
            try c.layer.unmerge()
            #expect(!c.layer.isMerged)
            let maxW = Double(w0.maxAbsolute)
            let err = zip(c.layer.weight.scalars, w0.scalars).map { abs(Double($0) - Double($1)) }.max()!
            #expect(err <= 1e-6 * maxW, "\(sh): \(err)")
        }
    }

    @Test("merge twice, unmerge unmerged and backward through a merged layer throw")
    func mergeStateErrors() throws {
        var c = try LinearCase(n: 2, dIn: 5, dOut: 4, r: 2)
        #expect(throws: LoRAError.notMerged) { try c.layer.unmerge() }
        try c.layer.merge()
        let merged = c.layer.weight
        #expect(throws: LoRAError.alreadyMerged) { try c.layer.merge() }
        #expect(c.layer.weight == merged)                           // the failed merge changed nothing
        #expect(throws: LoRAError.backwardThroughMergedAdapter) {
            _ = try c.layer.backward(input: c.x, outputGradient: try Tensor(zeros: [2, 4]))
        }
    }

    @Test("LoRA.deltaWeight equals s B A; LoRA.merge adds and subtracts it")
    func staticHelpers() throws {
        var rng = LoRATestRNG(seed: 12)
        let a = rng.tensor([5, 23]), b = rng.tensor([19, 5])
        let s: Float = 0.37
        let delta = try LoRA.deltaWeight(a: a, b: b, scale: s)
        #expect(delta.shape == [19, 23])
        var want = [Double](repeating: 0, count: 19 * 23)
        for o in 0..<19 { for j in 0..<23 { for k in 0..<5 {
            want[o * 23 + j] += Double(s) * Double(b[o, k]) * Double(a[k, j])
        } } }
        #expect(LoRAReference.relativeError(delta.scalars, want) < 1e-6)
        let w0 = rng.tensor([19, 23])
        var w = w0
        try LoRA.merge(into: &w, a: a, b: b, scale: s)
        let sum = zip(w0.scalars, want).map { Double($0) + $1 }
        #expect(LoRAReference.relativeError(w.scalars, sum) < 1e-6)
        try LoRA.merge(into: &w, a: a, b: b, scale: s, subtract: true)
        #expect(zip(w.scalars, w0.scalars).allSatisfy { abs($0 - $1) <= 1e-6 * w0.maxAbsolute })
        // copy-on-write: merging into a copy leaves the original alone
        var copy = w0
        try LoRA.merge(into: &copy, a: a, b: b, scale: s)
        #expect(w0.scalars != copy.scalars && !w0.sharesStorage(with: copy))
    }

    @Test("PEFT init: A in ±1/√d_in, B = 0 so the output equals the base layer; seeds reproduce")
    func initialization() throws {
        var rng = LoRATestRNG(seed: 3)
        let weight = rng.tensor([12, 50]), bias = rng.tensor([12]), x = rng.tensor([4, 50])
        let config = try LoRAConfiguration(rank: 6, alpha: 12)
        let l1 = try LoRALinear(weight: weight, bias: bias, configuration: config, seed: 7)
        let l2 = try LoRALinear(weight: weight, bias: bias, configuration: config, seed: 7)
        let l3 = try LoRALinear(weight: weight, bias: bias, configuration: config, seed: 8)
        #expect(l1.loraA.shape == [6, 50] && l1.loraB.shape == [12, 6])
        #expect(l1.inputFeatures == 50 && l1.outputFeatures == 12)
        let bound = 1 / Float(50).squareRoot()
        #expect(l1.loraA.scalars.allSatisfy { abs($0) <= bound })
        #expect(l1.loraA.maxAbsolute > 0.8 * bound)
        #expect(l1.loraB.scalars.allSatisfy { $0 == 0 })
        #expect(LoRAReference.bitwiseEqual(l1.loraA.scalars, l2.loraA.scalars))
        #expect(l1.loraA != l3.loraA)
        // B = 0: output is exactly the frozen layer (compare with the merged/base path).
        var base = l1
        try base.merge()
        #expect(base.weight == weight)
        #expect(LoRAReference.bitwiseEqual(try l1(x).scalars, try base(x).scalars))
        let ref = LoRAReference.forward(n: 4, dIn: 50, dOut: 12, r: 1, s: 0, x: x.scalars.map(Double.init), ldx: 50,
                                        w: weight.scalars.map(Double.init), ldw: 50,
                                        bias: bias.scalars.map(Double.init), a: [Double](repeating: 0, count: 50),
                                        b: [Double](repeating: 0, count: 12))
        #expect(LoRAReference.relativeError(try l1(x).scalars, ref) < 1e-5)
    }

    @Test("every ISA agrees with scalar through the Swift API (forward, backward, merge)")
    func isaPaths() throws {
        let c = try LinearCase(n: 10, dIn: 33, dOut: 47, r: 5, seed: 9)
        var rng = LoRATestRNG(seed: 10)
        let dY = rng.tensor([10, 47])
        func run() throws -> [[Float]] {
            let g = try c.layer.backward(input: c.x, outputGradient: dY)
            return [try c.layer(c.x).scalars, g.a.scalars, g.b.scalars, g.input!.scalars, try c.layer.fused().scalars]
        }
        let ref = try Runtime.withInstructionSet(.scalar) { try run() }
        for isa in testedInstructionSets() where isa != .scalar {
            let got = try Runtime.withInstructionSet(isa) { try run() }
            for (k, (p, q)) in zip(got, ref).enumerated() {
                #expect(LoRAReference.relativeError(p, q) < 1e-5, "\(isa) output \(k)")
            }
        }
    }

    /// n = 256 rows (16 chunks, 8 per thread), 383 → 301, r = 6: the forward and backward row
    /// loops do 2.1 MFLOP and the dX loop 1.2 MFLOP, above LT_PARALLEL_IF's 1 MFLOP, and the
    /// merge of fused() has 19 chunks of W's rows; `lt_debug_threads_seen` proves that thread 1
    /// ran rows of each call with two threads. (Summed dimensions ≤ 384 for OpenBLAS: see
    /// LoRAKernelTests.threadCountIndependence.)
    @Test("outputs are bitwise identical with 1 and 2 threads, and the second thread really works")
    func threads() throws {
        let c = try LinearCase(n: 256, dIn: 383, dOut: 301, r: 6, seed: 11)
        var rng = LoRATestRNG(seed: 12)
        let dY = rng.tensor([256, 301])
        /// The outputs, and the threads seen by the forward, the backward and fused().
        func run() throws -> (outputs: [[Float]], threads: [Int]) {
            let (y, tf) = try withThreadsSeen { try c.layer(c.x) }
            let (g, tb) = try withThreadsSeen { try c.layer.backward(input: c.x, outputGradient: dY) }
            let (w, tm) = try withThreadsSeen { try c.layer.fused() }
            return ([y.scalars, g.a.scalars, g.b.scalars, g.input!.scalars, w.scalars], [tf, tb, tm])
        }
        let one = try Runtime.withThreadCount(1) { try run() }
        let two = try Runtime.withThreadCount(2) { try run() }
        #expect(one.threads == [1, 1, 1], "threads seen with 1 thread (forward, backward, fused)")
        #expect(two.threads == [2, 2, 2], "threads seen with 2 threads (forward, backward, fused)")
        let names = ["Y", "dA", "dB", "dX", "fused W"]
        for (k, (p, q)) in zip(one.outputs, two.outputs).enumerated() {
            let differ = LoRAReference.bitDifferences(p, q)
            #expect(differ == 0, "\(names[k]): \(differ) of \(p.count) elements differ")
        }
    }

    @Test("bad shapes throw typed errors, never crash")
    func badShapes() throws {
        var rng = LoRATestRNG(seed: 13)
        let config = try LoRAConfiguration(rank: 3, alpha: 3)
        let w = rng.tensor([8, 5])
        #expect(throws: LoRAError.notAMatrix(name: "weight", shape: [40])) {
            try LoRALinear(weight: w.reshaped([40]), configuration: config, seed: 1)
        }
        #expect(throws: LoRAError.shapeMismatch(name: "bias", expected: [8], actual: [5])) {
            try LoRALinear(weight: w, bias: rng.tensor([5]), configuration: config, seed: 1)
        }
        #expect(throws: LoRAError.shapeMismatch(name: "loraA", expected: [3, 5], actual: [2, 5])) {
            try LoRALinear(weight: w, loraA: rng.tensor([2, 5]), loraB: rng.tensor([8, 3]), configuration: config)
        }
        #expect(throws: LoRAError.shapeMismatch(name: "loraA", expected: [3, 5], actual: [3, 6])) {
            try LoRALinear(weight: w, loraA: rng.tensor([3, 6]), loraB: rng.tensor([8, 3]), configuration: config)
        }
        #expect(throws: LoRAError.shapeMismatch(name: "loraB", expected: [8, 3], actual: [3, 8])) {
            try LoRALinear(weight: w, loraA: rng.tensor([3, 5]), loraB: rng.tensor([3, 8]), configuration: config)
        }
        #expect(throws: LoRAError.notAMatrix(name: "loraB", shape: [24])) {
            try LoRALinear(weight: w, loraA: rng.tensor([3, 5]), loraB: rng.tensor([24]), configuration: config)
        }
        var layer = try LoRALinear(weight: w, configuration: config, seed: 2)
        #expect(throws: LoRAError.shapeMismatch(name: "input", expected: [4, 5], actual: [4, 6])) {
            try layer(rng.tensor([4, 6]))
        }
        #expect(throws: LoRAError.shapeMismatch(name: "input", expected: [5], actual: [])) {
            try layer(try Tensor([1], shape: []))
        }
        #expect(throws: LoRAError.shapeMismatch(name: "outputGradient", expected: [4, 8], actual: [4, 7])) {
            try layer.backward(input: rng.tensor([4, 5]), outputGradient: rng.tensor([4, 7]))
        }
        #expect(throws: LoRAError.shapeMismatch(name: "input", expected: [4, 5], actual: [4, 6])) {
            try layer.backward(input: rng.tensor([4, 6]), outputGradient: rng.tensor([4, 8]))
        }
        // Public stored properties mutated into inconsistent shapes are caught at use.
        layer.loraB = rng.tensor([8, 4])
        #expect(throws: LoRAError.shapeMismatch(name: "loraB", expected: [8, 3], actual: [8, 4])) { try layer(rng.tensor([1, 5])) }
        #expect(throws: LoRAError.self) { try layer.merge() }
        #expect(!layer.isMerged)
        #expect(throws: LoRAError.self) { try layer.fused() }
        // Static helpers.
        var w2 = rng.tensor([8, 5])
        #expect(throws: LoRAError.invalidScale(.infinity)) {
            try LoRA.merge(into: &w2, a: rng.tensor([3, 5]), b: rng.tensor([8, 3]), scale: .infinity)
        }
        #expect(throws: LoRAError.shapeMismatch(name: "loraB", expected: [8, 3], actual: [7, 3])) {
            try LoRA.merge(into: &w2, a: rng.tensor([3, 5]), b: rng.tensor([7, 3]), scale: 1)
        }
        #expect(throws: LoRAError.invalidRank(0)) {
            try LoRA.deltaWeight(a: try Tensor(zeros: [0, 5]), b: try Tensor(zeros: [8, 0]), scale: 1)
        }
        #expect(throws: LoRAError.notAMatrix(name: "loraA", shape: [3, 5, 1])) {
            try LoRA.deltaWeight(a: try Tensor(zeros: [3, 5, 1]), b: rng.tensor([8, 3]), scale: 1)
        }
        // Descriptions name the problem.
        #expect(LoRAError.shapeMismatch(name: "loraA", expected: [3, 5], actual: [2, 5]).description.contains("loraA"))
        // A failing kernel (a library bug, never a user mistake) surfaces as KernelFailure naming it.
        #expect(throws: KernelFailure(function: "lt_lora_forward", status: "invalid argument")) {
            try KernelFailure.check(LT_ERR_INVALID_ARGUMENT, "lt_lora_forward")
        }
        #expect(KernelFailure(function: "lt_lora_forward", status: "invalid argument").description.contains("lt_lora_forward"))
        #expect(LoRAError.alreadyMerged.description.contains("unmerge"))
    }

    @Test("empty batch gives an empty output and zero gradients")
    func emptyBatch() throws {
        let c = try LinearCase(n: 0, dIn: 6, dOut: 4, r: 2)
        let y = try c.layer(c.x)
        #expect(y.shape == [0, 4])
        let g = try c.layer.backward(input: c.x, outputGradient: try Tensor(zeros: [0, 4]))
        #expect(g.a.scalars.allSatisfy { $0 == 0 } && g.b.scalars.allSatisfy { $0 == 0 })
        #expect(g.input?.shape == [0, 6])
    }
}
