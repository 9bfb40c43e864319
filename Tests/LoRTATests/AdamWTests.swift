import Foundation
import Testing
import CKernels
@testable import LoRTA

// AdamW: the fused C kernel against a naive float64 AdamW written here, against
// torch.optim.AdamW numbers (Fixtures/training/adamw_torch.json, made by
// scripts/fixtures/make_adamw_fixture.py), 1 vs 2 threads bitwise, every ISA bitwise, and the
// Swift wrapper's errors.

struct AdamWFixture: Decodable {
    struct Step: Decodable {
        let lr: Double
        let gradients: [[Float]]
        let parameters: [[Float]]
        let exp_avg: [[Float]]
        let exp_avg_sq: [[Float]]
    }
    struct Run: Decodable {
        let shapes: [[Int]]
        let lr: Double, beta1: Double, beta2: Double, eps: Double, weight_decay: Double
        let warmup_steps: Int, total_steps: Int
        let initial: [[Float]]
        let steps: [Step]
    }
    struct Schedule: Decodable {
        let peak: Double
        let warmup_steps: Int?
        let total_steps: Int?
        let lr: [Double]
    }
    let adamw: Run
    let schedules: [String: Schedule]

    static func load() throws -> AdamWFixture {
        let url = try #require(Bundle.module.url(forResource: "adamw_torch", withExtension: "json",
                                                 subdirectory: "Fixtures/training"))
        return try JSONDecoder().decode(AdamWFixture.self, from: Data(contentsOf: url))
    }
}

/// Naive float64 AdamW (torch's formulas), one step in place.
private func referenceAdamW(p: inout [Double], g: [Double], m: inout [Double], v: inout [Double], step: Int,
                            lr: Double, b1: Double, b2: Double, eps: Double, wd: Double) {
    let bc1 = 1 - pow(b1, Double(step)), bc2 = 1 - pow(b2, Double(step))
    for i in p.indices {
        p[i] *= 1 - lr * wd
        m[i] = b1 * m[i] + (1 - b1) * g[i]
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
        p[i] -= lr / bc1 * m[i] / (v[i].squareRoot() / bc2.squareRoot() + eps)
    }
}

/// Deterministic pseudo-random floats in [-scale, scale).
func trainingTestValues(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var out = [Float](repeating: 0, count: n)
    _ = out.withUnsafeMutableBufferPointer { lt_rng_uniform(seed, 0, -scale, scale, $0.baseAddress, Int64(n)) }
    return out
}

private func kernelSteps(n: Int, steps: Int, seed: UInt64) throws -> ([Float], [Float], [Float]) {
    var p = trainingTestValues(n, seed: seed)
    var m = [Float](repeating: 0, count: n), v = m
    var hp = lt_adamw_hparams(lr: 3e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.05)
    for s in 1...steps {
        let g = trainingTestValues(n, seed: seed &+ UInt64(s), scale: 0.1 * Float(s))
        let st = p.withUnsafeMutableBufferPointer { pp in
            m.withUnsafeMutableBufferPointer { pm in
                v.withUnsafeMutableBufferPointer { pv in
                    lt_adamw_step(pp.baseAddress, g, pm.baseAddress, pv.baseAddress, Int64(n), Int64(s), &hp)
                }
            }
        }
        try #require(st == LT_OK)
    }
    return (p, m, v)
}

@Suite(.serialized) struct AdamWKernelTests {
    @Test func matchesFloat64Reference() throws {
        let n = 10_001, steps = 5
        let (p, m, v) = try kernelSteps(n: n, steps: steps, seed: 7)
        var rp = trainingTestValues(n, seed: 7).map(Double.init)
        var rm = [Double](repeating: 0, count: n), rv = rm
        for s in 1...steps {
            let g = trainingTestValues(n, seed: 7 &+ UInt64(s), scale: 0.1 * Float(s)).map(Double.init)
            referenceAdamW(p: &rp, g: g, m: &rm, v: &rv, step: s, lr: 3e-3, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.05)
        }
        // Parameters move by about lr per step; the float32 kernel's rounding is ~1e-7 of |p|.
        var dp = 0.0, dm = 0.0, dv = 0.0
        for i in 0..<n {
            dp = max(dp, abs(Double(p[i]) - rp[i]))
            dm = max(dm, abs(Double(m[i]) - rm[i]) / max(abs(rm[i]), 1e-3))
            dv = max(dv, abs(Double(v[i]) - rv[i]) / max(abs(rv[i]), 1e-6))
        }
        #expect(dp < 2e-6, "max |Δp| \(dp)")
        #expect(dm < 1e-5, "max rel Δm \(dm)")
        #expect(dv < 1e-5, "max rel Δv \(dv)")
        // and the update really moved the parameters (by at least the order of lr)
        let moved = zip(p, trainingTestValues(n, seed: 7)).map { abs($0 - $1) }.max() ?? 0
        #expect(moved > 1e-3)
    }

    @Test func oneAndTwoThreadsAndEveryISAGiveTheSameBits() throws {
        // Big enough (> 16e6 / 12 elements) for the OpenMP loop to run on 2 threads.
        let n = 1_400_003
        let one = try Runtime.withThreadCount(1) { try kernelSteps(n: n, steps: 2, seed: 11) }
        let two = try Runtime.withThreadCount(2) { try kernelSteps(n: n, steps: 2, seed: 11) }
        #expect(one.0.map(\.bitPattern) == two.0.map(\.bitPattern))
        #expect(one.1.map(\.bitPattern) == two.1.map(\.bitPattern))
        #expect(one.2.map(\.bitPattern) == two.2.map(\.bitPattern))
        let scalar = try Runtime.withInstructionSet(.scalar) { try kernelSteps(n: 4099, steps: 3, seed: 5) }
        for isa in testedInstructionSets() {
            let r = try Runtime.withInstructionSet(isa) { try kernelSteps(n: 4099, steps: 3, seed: 5) }
            #expect(r.0.map(\.bitPattern) == scalar.0.map(\.bitPattern), "\(isa)")
        }
    }

    @Test func matchesTorchAdamW() throws {
        let f = try AdamWFixture.load().adamw
        var params = try zip(f.initial, f.shapes).map { try Tensor($0, shape: $1) }
        let cfg = AdamWConfiguration(learningRate: f.lr, beta1: f.beta1, beta2: f.beta2,
                                     epsilon: f.eps, weightDecay: f.weight_decay)
        var opt = try AdamW(configuration: cfg)
        let schedule = try LearningRateSchedule.linearWarmupDecay(
            peak: f.lr, warmupSteps: f.warmup_steps, totalSteps: f.total_steps)
        for (k, s) in f.steps.enumerated() {
            let lr = schedule.learningRate(atStep: k)
            #expect(abs(lr - s.lr) <= 1e-15, "lr at step \(k)")
            let grads = try zip(s.gradients, f.shapes).map { try Tensor($0, shape: $1) }
            try opt.update(parameters: &params, gradients: grads, learningRate: lr)
            for i in params.indices {
                // Same operation order as torch; torch's vector kernels fuse some multiply-adds, so the
                // moments differ by a few float32 ulps and the parameters by at most 2 ulps.
                for (a, b) in zip(params[i].scalars, s.parameters[i]) { #expect(abs(a - b) <= 2 * b.ulp, "p step \(k)") }
                for (a, b) in zip(opt.state.firstMoments[i].scalars, s.exp_avg[i]) { #expect(abs(a - b) <= 2e-6 * max(0.1, abs(b)), "m step \(k)") }
                for (a, b) in zip(opt.state.secondMoments[i].scalars, s.exp_avg_sq[i]) { #expect(abs(a - b) <= 2e-6 * max(1e-3, abs(b)), "v step \(k)") }
            }
        }
        #expect(opt.state.step == f.steps.count)
    }

    @Test func kernelRejectsBadArguments() {
        var p: [Float] = [1, 2], m: [Float] = [0, 0], v: [Float] = [0, 0]
        let g: [Float] = [0.5, 0.5]
        var hp = lt_adamw_hparams(lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0)
        #expect(lt_adamw_step(&p, g, &m, &v, 2, 0, &hp) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_adamw_step(&p, g, &m, &v, -1, 1, &hp) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_adamw_step(nil, g, &m, &v, 2, 1, &hp) == LT_ERR_NULL_POINTER)
        #expect(lt_adamw_step(&p, g, &m, &v, 2, 1, nil) == LT_ERR_NULL_POINTER)
        for bad in [lt_adamw_hparams(lr: -1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0),
                    lt_adamw_hparams(lr: 1e-3, beta1: 1, beta2: 0.999, eps: 1e-8, weight_decay: 0),
                    lt_adamw_hparams(lr: 1e-3, beta1: 0.9, beta2: .nan, eps: 1e-8, weight_decay: 0),
                    lt_adamw_hparams(lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 0, weight_decay: 0),
                    lt_adamw_hparams(lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: .infinity)] {
            var b = bad
            #expect(lt_adamw_step(&p, g, &m, &v, 2, 1, &b) == LT_ERR_INVALID_ARGUMENT)
        }
        #expect(p == [1, 2] && m == [0, 0] && v == [0, 0])
        var first: Int64 = 0
        #expect(lt_all_finite([1, 2, .nan, .infinity], 4, &first) == LT_OK && first == 2)
        #expect(lt_all_finite([1, 2], 2, &first) == LT_OK && first == -1)
        #expect(lt_all_finite([1, -.infinity], 2, &first) == LT_OK && first == 1)
        #expect(lt_all_finite(nil, 0, &first) == LT_OK && first == -1)
        #expect(lt_all_finite([1], 1, nil) == LT_ERR_NULL_POINTER)
    }
}

@Suite struct AdamWSwiftTests {
    @Test func errorsLeaveEverythingUnchanged() throws {
        var opt = try AdamW(configuration: AdamWConfiguration(learningRate: 0.1, weightDecay: 0))
        var params = [try Tensor([1, 2, 3, 4], shape: [2, 2]), try Tensor([5], shape: [1])]
        try opt.update(parameters: &params, gradients: [try Tensor([1, 1, 1, 1], shape: [2, 2]), try Tensor([1], shape: [1])])
        let before = params.map(\.scalars), m = opt.state.firstMoments.map(\.scalars)
        #expect(opt.state.step == 1)
        #expect(before[0] != [1, 2, 3, 4])

        #expect(throws: TrainingError.parameterCountMismatch(expected: 2, actual: 1)) {
            try opt.update(parameters: &params, gradients: [try Tensor([1, 1, 1, 1], shape: [2, 2])])
        }
        #expect(throws: TrainingError.shapeMismatch(index: 0, expected: [2, 2], actual: [4])) {
            try opt.update(parameters: &params, gradients: [try Tensor([1, 1, 1, 1], shape: [4]), try Tensor([1], shape: [1])])
        }
        #expect(throws: TrainingError.nonFiniteGradient(index: 1, element: 0)) {
            try opt.update(parameters: &params, gradients: [try Tensor([1, 1, 1, 1], shape: [2, 2]), try Tensor([.nan], shape: [1])])
        }
        #expect(throws: TrainingError.invalidHyperparameter(name: "learning rate", value: -1, expected: "finite, >= 0")) {
            try opt.update(parameters: &params, gradients: [try Tensor([1, 1, 1, 1], shape: [2, 2]), try Tensor([1], shape: [1])], learningRate: -1)
        }
        var fewer = [params[0]]
        #expect(throws: TrainingError.parameterCountMismatch(expected: 2, actual: 1)) {
            try opt.update(parameters: &fewer, gradients: [try Tensor([1, 1, 1, 1], shape: [2, 2])])
        }
        #expect(params.map(\.scalars) == before)
        #expect(opt.state.firstMoments.map(\.scalars) == m)
        #expect(opt.state.step == 1)
        let e = TrainingError.nonFiniteGradient(index: 1, element: 0)
        #expect(e.description.contains("not finite"))
    }

    @Test func configurationValidation() {
        #expect(throws: TrainingError.self) { try AdamW(configuration: AdamWConfiguration(beta1: 1)) }
        #expect(throws: TrainingError.self) { try AdamW(configuration: AdamWConfiguration(epsilon: 0)) }
        #expect(throws: TrainingError.self) { try AdamW(configuration: AdamWConfiguration(learningRate: .nan)) }
        #expect(throws: TrainingError.self) { try AdamW(configuration: AdamWConfiguration(weightDecay: -1)) }
    }
}
