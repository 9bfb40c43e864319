import CKernels
import Foundation

/// The result of ``LlamaModel/perplexity(of:context:batchSize:adapter:progress:)``.
public struct PerplexityResult: Sendable, Equatable {
    /// Tokens scored.
    public let tokenCount: Int
    /// Windows of `context` tokens evaluated.
    public let windowCount: Int
    /// Mean negative log-likelihood per scored token (natural log).
    public let negativeLogLikelihood: Double
    /// `exp(negativeLogLikelihood)`.
    public var perplexity: Double { exp(negativeLogLikelihood) }
}

extension LlamaModel {
    /// Perplexity of a token sequence the way llama.cpp's `perplexity` tool measures it.
    ///
    /// The tokens are cut into `⌊count / N⌋` non-overlapping windows of `N = context` tokens
    /// (a last partial window is dropped); each window is run from an empty cache and only its
    /// second half is scored: the tokens at positions `N/2 + 1 … N − 1` of the window, each
    /// predicted by the logits of the position before it — so every scored token sees more
    /// than `N/2` tokens of context. Per-token terms `logsumexp(z) − z[y]` are computed in
    /// double by the kernel, rounded to Float32 and summed in double in window order, so the result does not depend on `batchSize` or the
    /// thread count beyond float32 rounding of the logits.
    ///
    /// - Parameters:
    ///   - tokens: the token ids of the text, in order.
    ///   - N: the window length (`context`), in tokens.
    ///   - batchSize: windows run together (larger GEMMs; memory grows with it).
    ///   - adapter: an unmerged adapter (nil: the base model).
    ///   - progress: called after each batch with (windows done, windows in all).
    /// - Throws: ``LlamaError/invalidParameter(name:value:expected:)`` when `context` is below 4 or
    ///   above the model's context length, or fewer than `context` tokens are given.
    /// - Complexity: one forward pass over `windows · N` tokens with all logits
    ///   (`N · vocab` floats per window in memory at a time).
    public func perplexity(of tokens: [Int32], context N: Int, batchSize: Int = 1, adapter: (any Adapter)? = nil,
                           progress: ((Int, Int) -> Void)? = nil) throws -> PerplexityResult {
        guard N >= 4, N <= configuration.contextLength else {
            throw LlamaError.invalidParameter(name: "context", value: "\(N)", expected: "4...\(configuration.contextLength)")
        }
        guard batchSize >= 1 else {
            throw LlamaError.invalidParameter(name: "batch size", value: "\(batchSize)", expected: "at least 1")
        }
        let windows = tokens.count / N
        guard windows >= 1 else {
            throw LlamaError.invalidParameter(name: "tokens", value: "\(tokens.count)",
                                              expected: "at least one window of \(N) tokens")
        }
        let V = configuration.vocabularySize
        let first = N / 2
        let scoredPerWindow = N - 1 - first
        var total = 0.0
        var done = 0
        while done < windows {
            let b = min(batchSize, windows - done)
            let slice = Array(tokens[(done * N)..<((done + b) * N)])
            var cache = try makeCache(batchSize: b, capacity: N)
            let logits = try forward(slice, cache: &cache, logits: .all, adapter: adapter)
            var rowLoss = [Float](repeating: 0, count: b * scoredPerWindow)
            var labels = [Int32](repeating: 0, count: b * scoredPerWindow)
            for w in 0..<b { for j in 0..<scoredPerWindow { labels[w * scoredPerWindow + j] = slice[w * N + first + 1 + j] } }
            // Rows first … N−2 of each window predict tokens first+1 … N−1.
            for w in 0..<b {
                var mean: Float = 0
                try logits.withUnsafeBufferPointer { z in
                    try labels.withUnsafeBufferPointer { y in
                        try rowLoss.withUnsafeMutableBufferPointer { out in
                            try KernelFailure.check(lt_cross_entropy_forward(
                                Int64(scoredPerWindow), Int64(V), z.baseAddress! + (w * N + first) * V, Int64(V),
                                y.baseAddress! + w * scoredPerWindow, &mean,
                                out.baseAddress! + w * scoredPerWindow), "lt_cross_entropy_forward")
                        }
                    }
                }
            }
            for v in rowLoss { total += Double(v) }
            done += b
            progress?(done, windows)
        }
        let count = windows * scoredPerWindow
        return PerplexityResult(tokenCount: count, windowCount: windows, negativeLogLikelihood: total / Double(count))
    }
}
