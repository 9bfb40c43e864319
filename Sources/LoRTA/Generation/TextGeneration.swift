import Foundation

/// What ``LlamaModel/generate(prompt:parameters:adapter:ablation:onToken:)`` does.
public struct GenerationParameters: Sendable, Equatable {
    /// Most tokens to generate (the stop token, when reached, counts as one).
    public var maxTokens: Int
    public var sampling: SamplingParameters
    /// Tokens that end the generation (e.g. the end-of-sequence and `<|im_end|>` ids); the
    /// stop token is included in the result's tokens, as `transformers` does.
    public var stopTokens: Set<Int32>

    public init(maxTokens: Int = 256, sampling: SamplingParameters = .greedy, stopTokens: Set<Int32> = []) {
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stopTokens = stopTokens
    }
}

/// Why a generation ended.
public enum GenerationStopReason: String, Sendable {
    /// A stop token was generated.
    case stopToken = "stop_token"
    /// ``GenerationParameters/maxTokens`` tokens were generated.
    case maximumTokens = "max_tokens"
    /// The model's context length is full.
    case contextFull = "context_full"
    /// The token callback asked to stop.
    case stoppedByCaller = "stopped"
}

/// The token callback's answer.
public enum GenerationControl: Sendable {
    case proceed, stop
}

/// The outcome of a generation, with its timings.
public struct GenerationResult: Sendable {
    public let promptTokenCount: Int
    /// Generated ids (including the stop token when one ended the generation).
    public let tokens: [Int32]
    public let stopReason: GenerationStopReason
    /// Wall time of the prompt's forward pass (prefill), seconds.
    public let promptSeconds: Double
    /// Wall time of the forward passes that fed generated tokens back (decode), and sampling.
    public let decodeSeconds: Double
    /// Forward passes in ``decodeSeconds`` (one per generated token after the first).
    public let decodeSteps: Int

    /// Prompt tokens per second of the prefill.
    public var promptTokensPerSecond: Double { promptSeconds > 0 ? Double(promptTokenCount) / promptSeconds : 0 }
    /// Generated tokens per second of the decode steps (each step reads every weight once).
    public var tokensPerSecond: Double { decodeSeconds > 0 ? Double(decodeSteps) / decodeSeconds : 0 }
}

extension LlamaModel {
    /// Continues `prompt`: one forward pass over the prompt (filling a key/value cache), then one
    /// pass per new token; each token is chosen by a ``TokenSampler`` and handed to `onToken`
    /// as soon as it is known (streaming), which may stop the generation.
    ///
    /// - Throws: ``LlamaError/emptyInput``, ``LlamaError/contextExceeded(length:maximum:)`` when
    ///   the prompt alone does not fit the context, ``LlamaError/invalidParameter(name:value:expected:)``
    ///   for bad parameters, ``LlamaError/tokenOutOfRange(id:position:vocabularySize:)``, and
    ///   whatever `onToken` throws.
    /// - Complexity: one prefill of `prompt.count` tokens and up to `maxTokens − 1` decode steps;
    ///   memory: a cache of `min(context, prompt + maxTokens)` tokens.
    /// - Parameters:
    ///   - prompt: the token ids to continue (non-empty, shorter than the context length).
    ///   - parameters: the token budget, sampling and stop tokens.
    ///   - adapter: an unmerged adapter applied at every step (nil: the base model).
    ///   - ablation: components mean-ablated at every step (nil: none; ``MeanAblation``).
    ///   - onToken: called with each generated token as soon as it is chosen; returning
    ///     ``GenerationControl/stop`` ends the generation (that token is kept).
    public func generate(prompt: [Int32], parameters: GenerationParameters, adapter: (any Adapter)? = nil,
                         ablation: MeanAblation? = nil, onToken: (Int32) throws -> GenerationControl = { _ in .proceed }) throws -> GenerationResult {
        guard !prompt.isEmpty else { throw LlamaError.emptyInput }
        guard parameters.maxTokens >= 1 else {
            throw LlamaError.invalidParameter(name: "max tokens", value: "\(parameters.maxTokens)", expected: "at least 1")
        }
        let context = configuration.contextLength
        guard prompt.count < context else { throw LlamaError.contextExceeded(length: prompt.count + 1, maximum: context) }
        var sampler = try TokenSampler(parameters.sampling)
        let (capacity, overflow) = prompt.count.addingReportingOverflow(parameters.maxTokens)
        var cache = try makeCache(capacity: overflow ? context : min(context, capacity))

        let clock = ContinuousClock()
        let start = clock.now
        var logits = try forward(prompt, cache: &cache, logits: .last, adapter: adapter, ablation: ablation)
        var next = try logits.withUnsafeBufferPointer { try sampler.sample($0) }
        let promptDuration = clock.now - start

        var tokens: [Int32] = []
        var decode = Duration.zero
        var steps = 0
        var reason = GenerationStopReason.maximumTokens
        while true {
            tokens.append(next)
            if try onToken(next) == .stop { reason = .stoppedByCaller; break }
            if parameters.stopTokens.contains(next) { reason = .stopToken; break }
            if tokens.count >= parameters.maxTokens { reason = .maximumTokens; break }
            if cache.remainingCapacity < 1 { reason = .contextFull; break }
            let t0 = clock.now
            logits = try forward([next], cache: &cache, logits: .last, adapter: adapter, ablation: ablation)
            next = try logits.withUnsafeBufferPointer { try sampler.sample($0) }
            decode += clock.now - t0
            steps += 1
        }
        return GenerationResult(promptTokenCount: prompt.count, tokens: tokens, stopReason: reason,
                                promptSeconds: promptDuration.seconds, decodeSeconds: decode.seconds,
                                decodeSteps: steps)
    }

    /// The tokens of ``generate(prompt:parameters:adapter:ablation:onToken:)`` as an asynchronous stream
    /// (generation runs on a detached task; cancelling the consumer's task stops it after the
    /// current token).
    public func generationStream(prompt: [Int32], parameters: GenerationParameters) -> AsyncThrowingStream<Int32, Error> {
        let model = self
        return AsyncThrowingStream { continuation in
            let task = Task.detached {
                do {
                    _ = try model.generate(prompt: prompt, parameters: parameters) { token in
                        if Task.isCancelled { return .stop }
                        if case .terminated = continuation.yield(token) { return .stop }
                        return .proceed
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

extension Duration {
    /// The duration in seconds.
    var seconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) * 1e-18
    }
}
