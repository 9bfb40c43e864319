import Foundation

extension LlamaModel {
    /// Loss of the response tokens of every example of `data` (file order, `batchSize`
    /// sequences per pass): sum and count, hence mean NLL and perplexity `exp(mean)`. With
    /// `ablation`, of the model with those components mean-ablated.
    /// - Throws: ``LlamaError``, ``AdapterError``, ``CausalLMDataError``, ``CircuitError``.
    public func evaluate(_ data: CausalLMDataset, adapter: (any Adapter)? = nil, ablation: MeanAblation? = nil,
                         batchSize: Int = 8, progress: ((Int, Int) -> Void)? = nil) throws -> CausalLMLoss {
        guard batchSize >= 1 else {
            throw LlamaError.invalidParameter(name: "batch size", value: "\(batchSize)", expected: "at least 1")
        }
        var total = CausalLMLoss(sum: 0, targetCount: 0)
        var lo = 0
        while lo < data.count {
            let hi = min(lo + batchSize, data.count)
            let b = try data.batch(Array(lo..<hi))
            total = total + (try loss(tokens: b.tokens, targets: b.targets, batchSize: b.batchSize, adapter: adapter,
                                              ablation: ablation))
            lo = hi
            progress?(lo, data.count)
        }
        return total
    }
}

extension LlamaModel {
    /// Shows `observer` the activations of every example's prompt (the tokens the model answers
    /// from, chat template applied), in file order, `batchSize` prompts per forward, right-padded
    /// (``observe(_:adapter:observer:)``); with `ablation`, of the model with those components
    /// mean-ablated.
    /// - Throws: ``ObservationError``, ``LlamaError``, ``AdapterError``, ``CircuitError``, and what
    ///   `observer` throws.
    /// - Complexity: one forward over the prompt tokens.
    public func observePrompts(_ data: CausalLMDataset, adapter: (any Adapter)? = nil, observer: ActivationObserver,
                               ablation: MeanAblation? = nil, batchSize: Int = 8, progress: ((Int, Int) -> Void)? = nil) throws {
        guard batchSize >= 1 else {
            throw LlamaError.invalidParameter(name: "batch size", value: "\(batchSize)", expected: "at least 1")
        }
        var lo = 0
        while lo < data.count {
            let hi = min(lo + batchSize, data.count)
            let rows = data.examples[lo..<hi].map(\.promptTokens)
            guard rows.allSatisfy({ !$0.isEmpty }) else { throw LlamaError.emptyInput }
            try observe(TokenBatch(rightPadding: rows, paddingID: 0), adapter: adapter, observer: observer, ablation: ablation)
            lo = hi
            progress?(lo, data.count)
        }
    }
}

/// Exact-match accuracy of greedy answers (``CausalLMDataset/answerMatches(generated:expected:)``).
public struct AnswerAccuracy: Sendable, Equatable {
    public var correct: Int
    public var total: Int
    public var accuracy: Double { total == 0 ? 0 : Double(correct) / Double(total) }
}

extension CausalLanguageModel {
    /// Greedy answers to the prompts of `data` (each example's prompt tokens), compared with the
    /// expected answers. Uses ``adapter`` when set.
    /// - Parameters:
    ///   - data: the examples whose prompts are answered and whose expected answers are compared.
    ///   - limit: the first `limit` examples only (nil: all).
    ///   - maxNewTokens: tokens generated per answer.
    ///   - onAnswer: called with (example index, generated text, correct?) after each answer.
    /// - Throws: ``LlamaError`` and what generation throws.
    public func answerAccuracy(_ data: CausalLMDataset, limit: Int? = nil, maxNewTokens: Int = 4,
                               onAnswer: ((Int, String, Bool) -> Void)? = nil) throws -> AnswerAccuracy {
        var result = AnswerAccuracy(correct: 0, total: 0)
        let count = min(limit ?? data.count, data.count)
        for i in 0..<count {
            let e = data.examples[i]
            let (_, text) = try generate(prompt: e.promptTokens, parameters: GenerationParameters(maxTokens: maxNewTokens))
            let ok = CausalLMDataset.answerMatches(generated: text, expected: e.expectedAnswer)
            result.total += 1
            if ok { result.correct += 1 }
            onAnswer?(i, text, ok)
        }
        return result
    }
}

extension CausalLanguageModel {
    /// Greedy answers measuring a planted backdoor on `records`: the attack set
    /// (``CausalLMBackdoor/triggered(_:)``: accuracy = attack success rate) and its control
    /// (``CausalLMBackdoor/untriggered(_:)``: how often the target comes without the trigger).
    /// Each answer gets at least `maxNewTokens` tokens, and one more than the target's length.
    /// Uses ``adapter`` and ``ablation`` when set.
    /// - Parameters:
    ///   - backdoor: the backdoor whose trigger and target are measured.
    ///   - records: the records to trigger (e.g. ``CausalLMDataset/readRecords(from:)``).
    ///   - maxLength: longest example kept when tokenizing.
    ///   - template: overrides the tokenizer's chat template.
    ///   - path: named in errors.
    ///   - limit: the first `limit` examples of each set only (nil: all).
    ///   - maxNewTokens: the least number of tokens generated per answer.
    ///   - progress: called with (answered, total) after each answer of the attack set.
    /// - Throws: ``CausalLMDataError`` (no eligible record, …), ``LlamaError`` and what generation throws.
    public func backdoorAnswers(_ backdoor: CausalLMBackdoor, records: [CausalLMRecord], maxLength: Int,
                                template: ChatTemplate? = nil, path: String = "<memory>", limit: Int? = nil,
                                maxNewTokens: Int = 4, progress: ((Int, Int) -> Void)? = nil) throws
        -> (attack: AnswerAccuracy, control: AnswerAccuracy) {
        func data(_ r: [CausalLMRecord]) throws -> CausalLMDataset {
            try CausalLMDataset(records: r, tokenizer: tokenizer, maxLength: maxLength, template: template, path: path)
        }
        let attackData = try data(try backdoor.triggered(records))
        let tokens = max(maxNewTokens, tokenizer.encode(backdoor.targetAnswer, addingSpecialTokens: false).count + 1)
        let total = min(limit ?? attackData.count, attackData.count)
        let attack = try answerAccuracy(attackData, limit: limit, maxNewTokens: tokens) { i, _, _ in progress?(i + 1, total) }
        let control = try answerAccuracy(try data(try backdoor.untriggered(records)), limit: limit, maxNewTokens: tokens)
        return (attack, control)
    }
}
