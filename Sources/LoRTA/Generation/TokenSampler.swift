import CKernels
import Foundation

/// How the next token is chosen from the logits.
///
/// The order is that of Hugging Face's `generate`: logits divided by `temperature`, then the
/// `topK` largest kept, then the smallest set of most likely tokens whose probability reaches
/// `topP` kept, then a draw from the renormalised probabilities. `temperature == 0` is greedy
/// decoding (the first index of the largest logit, as `argmax` returns it).
public struct SamplingParameters: Sendable, Equatable {
    /// 0 = greedy; otherwise > 0.
    public var temperature: Float
    /// Keep the `topK` most likely tokens (0 = no limit).
    public var topK: Int
    /// Nucleus: keep the most likely tokens until their probability reaches `topP` (1 = all).
    public var topP: Float
    /// Seed of the draws: the same seed, model and prompt give the same tokens.
    public var seed: UInt64

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.seed = seed
    }

    /// Greedy decoding.
    public static let greedy = SamplingParameters()

    /// - Throws: ``LlamaError/invalidParameter(name:value:expected:)`` for a negative or
    ///   non-finite temperature, a negative `topK`, or `topP` outside (0, 1].
    public func validate() throws(LlamaError) {
        guard temperature.isFinite, temperature >= 0 else {
            throw .invalidParameter(name: "temperature", value: "\(temperature)", expected: "a finite number >= 0 (0 = greedy)")
        }
        guard topK >= 0 else { throw .invalidParameter(name: "top-k", value: "\(topK)", expected: ">= 0 (0 = no limit)") }
        guard topP.isFinite, topP > 0, topP <= 1 else {
            throw .invalidParameter(name: "top-p", value: "\(topP)", expected: "a number in (0, 1]")
        }
    }
}

/// Draws tokens from logit rows with ``SamplingParameters``; the `n`-th draw uses the random
/// number `n` of the seed's counter-based stream, so results do not depend on anything else.
public struct TokenSampler: Sendable {
    public let parameters: SamplingParameters
    private var draws: UInt64 = 0

    public init(_ parameters: SamplingParameters) throws(LlamaError) {
        try parameters.validate()
        self.parameters = parameters
    }

    /// The next token from one row of logits (vocabulary order). O(V) for greedy and plain
    /// temperature sampling, O(V log V) with top-p, O(V log k) with top-k alone.
    /// NaN logits are never chosen; a row of NaN (or, when sampling, of no finite logit)
    /// throws ``LlamaError/invalidParameter(name:value:expected:)``.
    public mutating func sample(_ logits: UnsafeBufferPointer<Float>) throws(LlamaError) -> Int32 {
        let p = parameters
        if p.temperature == 0 {
            var best = -1
            var bestValue = -Float.infinity
            for i in 0..<logits.count where !logits[i].isNaN && (best < 0 || logits[i] > bestValue) {
                best = i
                bestValue = logits[i]
            }
            guard best >= 0 else { throw .invalidParameter(name: "logits", value: "no finite value", expected: "a finite logit") }
            return Int32(best)
        }
        // Candidates with scaled logits (NaN dropped).
        var cand: [(index: Int32, logit: Double)] = []
        cand.reserveCapacity(logits.count)
        let invT = 1.0 / Double(p.temperature)
        for i in 0..<logits.count where !logits[i].isNaN && logits[i] > -.infinity {
            cand.append((Int32(i), Double(logits[i]) * invT))
        }
        guard !cand.isEmpty else { throw .invalidParameter(name: "logits", value: "no finite value", expected: "a finite logit") }
        // Stable order: by logit descending, ties by index (so the result never depends on the
        // sort algorithm).
        let before: ((index: Int32, logit: Double), (index: Int32, logit: Double)) -> Bool = {
            $0.logit != $1.logit ? $0.logit > $1.logit : $0.index < $1.index
        }
        if p.topK > 0 && p.topK < cand.count {
            cand.sort(by: before)
            cand.removeSubrange(p.topK...)
        } else if p.topP < 1 {
            cand.sort(by: before)
        }
        let m = cand.reduce(-Double.infinity) { max($0, $1.logit) }
        var probs = cand.map { exp($0.logit - m) }
        var total = probs.reduce(0, +)
        if p.topP < 1 {
            // Sorted descending: keep the shortest prefix whose mass reaches topP (at least one).
            var mass = 0.0, keep = 0
            while keep < probs.count {
                mass += probs[keep] / total
                keep += 1
                if mass >= Double(p.topP) { break }
            }
            probs.removeSubrange(keep...)
            cand.removeSubrange(keep...)
            total = probs.reduce(0, +)
        }
        let u = Double(lt_rng_u64(p.seed, draws) >> 11) * 0x1p-53 * total
        draws += 1
        var acc = 0.0
        for (i, q) in probs.enumerated() {
            acc += q
            if u < acc { return cand[i].index }
        }
        return cand[cand.count - 1].index
    }
}

