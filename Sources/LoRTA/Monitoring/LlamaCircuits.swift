import Foundation

/// A causal LM as a ``CircuitSubject``: the distribution of the next token after each prompt
/// (its last real token), so `ŷ` is the token the model would answer with first.
struct LlamaNextTokenSubject: CircuitSubject {
    let model: LlamaModel
    let adapter: (any Adapter)?
    var shape: ObservationShape { model.configuration.observationShape }
    func logits(_ batch: TokenBatch, observer: ActivationObserver?, ablation: MeanAblation) throws -> Tensor {
        try model.nextTokenLogits(batch, adapter: adapter, observer: observer, ablation: ablation)
    }
    func attributions(_ batch: TokenBatch, means: MeanAblation, components: [ModelComponent]) throws -> ComponentAttributions {
        try model.attributions(batch, adapter: adapter, means: means, components: components)
    }
}

extension LlamaModel {
    /// The prompts of `data` (each example's prompt tokens, chat template applied), `batchSize`
    /// per right-padded batch, in order.
    /// - Throws: ``LlamaError/invalidParameter(name:value:expected:)`` for a batch size below 1,
    ///   ``LlamaError/emptyInput`` for an empty prompt.
    static func promptBatches(_ data: CausalLMDataset, batchSize: Int) throws -> [TokenBatch] {
        guard batchSize >= 1 else {
            throw LlamaError.invalidParameter(name: "batch size", value: "\(batchSize)", expected: "at least 1")
        }
        return try stride(from: 0, to: data.count, by: batchSize).map { lo in
            let rows = data.examples[lo..<min(lo + batchSize, data.count)].map(\.promptTokens)
            guard rows.allSatisfy({ !$0.isEmpty }) else { throw LlamaError.emptyInput }
            return TokenBatch(rightPadding: rows, paddingID: 0)
        }
    }

    /// Gathers the evidence of a set of prompts about its circuit, for the first token of the
    /// answer: attribution patching of every prompt for every component, then `samples` forwards
    /// with a random subset of components mean-ablated (each independently with `probability`,
    /// drawn from the counter-based generator with `seed`), recording per sample the change of
    /// `y = log p(ŷ | prompt)` (ŷ: the next token the unablated model predicts), the fraction of
    /// changed first tokens and, with `pseudoClasses`, the change of each prompt's mode and its
    /// geometry at that site.
    /// - Parameters:
    ///   - data: the prompts (each example's ``CausalLMExample/promptTokens``; answers are not used).
    ///   - adapter: the adapter the model runs with (nil: the base model).
    ///   - means: the trusted means of the components (e.g. ``MeanAblation/init(monitor:components:ablated:strength:)``);
    ///     its ablated set is ignored.
    ///   - components: the components to study (default: every component with a mean).
    ///   - samples: sampled ablations (≥ 0; 0: attribution patching only).
    ///   - probability: chance that a component is ablated in a sample, in (0, 1).
    ///   - seed: seed of the counter-based generator that draws the subsets.
    ///   - pseudoClasses: a site and its pseudo-class detector (``Monitor/pseudoClasses``) for
    ///     the modes and geometry of each sample; nil: none.
    ///   - batchSize: prompts per forward.
    ///   - progress: called with a short description after each step.
    /// - Throws: ``CircuitError``, ``LlamaError``, ``StatisticsError``, ``MemoryError``.
    /// - Complexity: about 3 forwards of the prompts for the attributions, one per sample, and
    ///   one for the baseline.
    public func circuitEvidence(_ data: CausalLMDataset, adapter: (any Adapter)? = nil, means: MeanAblation,
                                components: [ModelComponent]? = nil, samples: Int = 64, probability: Double = 0.1,
                                seed: UInt64 = 0, pseudoClasses: (site: MonitorSite, detector: PseudoClassDetector)? = nil,
                                batchSize: Int = 8, progress: ((String) -> Void)? = nil) throws -> CircuitEvidence {
        try CircuitEvidence.gather(LlamaNextTokenSubject(model: self, adapter: adapter),
                                   batches: try Self.promptBatches(data, batchSize: batchSize), means: means,
                                   components: components, samples: samples, probability: probability, seed: seed,
                                   pseudoClasses: pseudoClasses, progress: progress)
    }
}
