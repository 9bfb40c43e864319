import Foundation
import Testing
@testable import LoRTA

// The sampler against the definitions: greedy = first index of the largest logit; sampling
// frequencies ≈ softmax(logits / T) restricted to the top-k / nucleus set.

private func draw(_ logits: [Float], _ p: SamplingParameters, count: Int) throws -> [Int] {
    var sampler = try TokenSampler(p)
    var counts = [Int](repeating: 0, count: logits.count)
    for _ in 0..<count {
        let t = try logits.withUnsafeBufferPointer { try sampler.sample($0) }
        counts[Int(t)] += 1
    }
    return counts
}

private func softmax(_ x: [Double]) -> [Double] {
    let m = x.max()!
    let e = x.map { exp($0 - m) }
    let s = e.reduce(0, +)
    return e.map { $0 / s }
}

@Suite struct TokenSamplerTests {
    @Test func greedyTakesTheFirstLargestLogit() throws {
        var s = try TokenSampler(.greedy)
        let l: [Float] = [0.5, 2, -1, 2, .nan, 1]
        #expect(try l.withUnsafeBufferPointer { try s.sample($0) } == 1)
        let nanFirst: [Float] = [.nan, -.infinity, -3]
        #expect(try nanFirst.withUnsafeBufferPointer { try s.sample($0) } == 2)
        let allNaN: [Float] = [.nan, .nan]
        #expect(throws: LlamaError.self) { try allNaN.withUnsafeBufferPointer { try s.sample($0) } }
    }

    /// 40,000 draws: every frequency within 5 standard errors of softmax(l / T).
    @Test(arguments: [Float(0.7), 1, 1.8]) func temperatureSamplingFollowsSoftmax(temperature: Float) throws {
        let logits: [Float] = [1.0, 0.2, -0.5, 2.0, 0.0, -2.0, 1.5]
        let n = 40_000
        let counts = try draw(logits, SamplingParameters(temperature: temperature, seed: 11), count: n)
        let p = softmax(logits.map { Double($0) / Double(temperature) })
        for i in logits.indices {
            let se = (p[i] * (1 - p[i]) / Double(n)).squareRoot()
            #expect(abs(Double(counts[i]) / Double(n) - p[i]) <= 5 * se + 1e-9, "token \(i)")
        }
    }

    @Test func topKAndTopPRestrictTheCandidates() throws {
        let logits: [Float] = [1.0, 0.2, -0.5, 2.0, 0.0, -2.0, 1.5]
        let n = 20_000
        // top-k 3 → tokens 3, 6, 0 only, in softmax proportions among them.
        let k = try draw(logits, SamplingParameters(temperature: 1, topK: 3, seed: 5), count: n)
        #expect(k.enumerated().allSatisfy { [0, 3, 6].contains($0.offset) || $0.element == 0 })
        let pk = softmax([1.0, 2.0, 1.5])
        for (j, i) in [0, 3, 6].enumerated() {
            let se = (pk[j] * (1 - pk[j]) / Double(n)).squareRoot()
            #expect(abs(Double(k[i]) / Double(n) - pk[j]) <= 5 * se)
        }
        // top-p: the smallest most-likely set whose mass reaches p.
        let full = softmax(logits.map(Double.init))
        let order = full.indices.sorted { full[$0] > full[$1] }
        var mass = 0.0, nucleus: [Int] = []
        for i in order { nucleus.append(i); mass += full[i]; if mass >= 0.8 { break } }
        let tp = try draw(logits, SamplingParameters(temperature: 1, topP: 0.8, seed: 9), count: n)
        for i in logits.indices where !nucleus.contains(i) { #expect(tp[i] == 0, "token \(i) outside the nucleus") }
        for i in nucleus { #expect(tp[i] > 0) }
        // top-p that keeps one token is greedy.
        let one = try draw(logits, SamplingParameters(temperature: 1, topP: 0.01, seed: 9), count: 100)
        #expect(one[3] == 100)
    }

    @Test func seedsDetermineTheDraws() throws {
        let logits: [Float] = (0..<50).map { Float(sin(Double($0))) }
        func run(_ seed: UInt64) throws -> [Int32] {
            var s = try TokenSampler(SamplingParameters(temperature: 1.2, topK: 20, topP: 0.9, seed: seed))
            return try (0..<200).map { _ in try logits.withUnsafeBufferPointer { try s.sample($0) } }
        }
        #expect(try run(1) == run(1))
        #expect(try run(1) != run(2))
    }
}
