import Foundation

/// Causal-LM fine-tuning on a frozen ``LlamaModel``: the loss of a step is the mean negative
/// log-likelihood of its examples' response tokens (prompt tokens are not scored), trained by
/// ``Trainer`` into an adapter (the task has no trained tensors of its own, so an adapter is
/// required).
///
/// A step's examples are cut into consecutive micro-batches, each right-padded on its own
/// (``padding``); each micro-batch's summed token loss is scaled by 1/N, N the step's target
/// tokens, so the accumulated gradient is that of the token-weighted mean over the whole step
/// (``CausalLMMicroBatches``), not the mean of the micro-batch means.
public struct CausalLMTask: TrainingTask {
    /// The frozen model.
    public let model: LlamaModel
    /// The training examples (tokenized, with loss masks).
    public let data: CausalLMDataset
    /// `.longest`: each micro-batch to its own longest sequence; `.fixed`: to the data's
    /// ``CausalLMDataset/maxLength``.
    public let padding: CausalLMDataset.Padding

    /// - Parameters:
    ///   - model: the frozen model.
    ///   - data: the training examples; each must fit the model's context.
    ///   - padding: dynamic (`.longest`, the default) or fixed padding.
    /// - Throws: ``TrainingError/invalidBatching(_:)`` when the data's longest example exceeds
    ///   the model's context length. O(examples).
    public init(model: LlamaModel, data: CausalLMDataset, padding: CausalLMDataset.Padding = .longest) throws {
        let longest = data.examples.map(\.count).max() ?? 0
        let context = model.configuration.contextLength
        guard longest <= context else {
            throw TrainingError.invalidBatching("an example of \(longest) tokens exceeds the model's context of \(context) tokens")
        }
        self.model = model
        self.data = data
        self.padding = padding
    }

    public var adapterHost: AdapterHost { model.adapterHost }
    public var exampleCount: Int { data.count }
    public var ownParameterNames: [String] { [] }
    public var ownParameters: [Tensor] { [] }

    public func replacingOwnParameters(_ tensors: [Tensor]) throws -> CausalLMTask {
        guard tensors.isEmpty else { throw TrainingError.parameterCountMismatch(expected: 0, actual: tensors.count) }
        return self
    }

    /// Each micro-batch: the gradient of its summed token loss scaled by 1/N, N the target
    /// tokens of the whole step (so the micro-batches' gradients add up to the gradient of the
    /// step's mean token loss), computed into its own zero buffers.
    /// ``MicroBatchGradients/lossSum`` is the summed token loss, ``MicroBatchGradients/lossWeight``
    /// the micro-batch's targets.
    public func microBatchGradients(examples: [Int], microBatchSize: Int, microBatches: Range<Int>,
                                    adapter: (any Adapter)?) throws -> [MicroBatchGradients] {
        guard let adapter else {
            throw TrainingError.invalidBatching("a causal-LM task trains an adapter; none was given")
        }
        try checkMicroBatches(microBatches, examples: examples.count, microBatchSize: microBatchSize)
        // All micro-batches are cut (cheap) for the step's target count N; only `microBatches` run.
        let parts = try data.microBatches(examples, microBatchSize: microBatchSize, padding: padding)
        let scale = Float(parts.lossScale)
        return try microBatches.map { index in
            let b = parts.microBatches[index]
            var gradients = try adapter.zeroGradients()
            let loss = try model.lossAndGradients(tokens: b.tokens, targets: b.targets, batchSize: b.batchSize,
                                                  adapter: adapter, gradientScale: scale, gradients: &gradients)
            return MicroBatchGradients(lossSum: loss.sum, lossWeight: loss.targetCount, tokens: b.lengths.reduce(0, +),
                                       exampleCount: b.batchSize, gradients: gradients)
        }
    }

    /// The sum of the micro-batches' scaled gradients, in order, and the mean token loss of the step.
    public func combineMicroBatchGradients(_ parts: [MicroBatchGradients], examples: [Int]) throws -> TaskStepResult {
        guard let first = parts.first, parts.reduce(0, { $0 + $1.exampleCount }) == examples.count else {
            throw TrainingError.invalidBatching("\(parts.count) micro-batches of \(parts.reduce(0) { $0 + $1.exampleCount }) examples for a step of \(examples.count)")
        }
        var gradients = first.gradients
        var loss = CausalLMLoss(sum: 0, targetCount: 0)
        var tokens = 0
        for (k, p) in parts.enumerated() {
            loss = loss + CausalLMLoss(sum: p.lossSum, targetCount: p.lossWeight)
            tokens += p.tokens
            guard k > 0 else { continue }
            guard p.gradients.count == gradients.count else {
                throw TrainingError.parameterCountMismatch(expected: gradients.count, actual: p.gradients.count)
            }
            for i in gradients.indices {
                guard p.gradients[i].shape == gradients[i].shape else {
                    throw TrainingError.shapeMismatch(index: i, expected: gradients[i].shape, actual: p.gradients[i].shape)
                }
                p.gradients[i].withUnsafeBufferPointer { g in
                    gradients[i].withUnsafeMutableBufferPointer { s in
                        for j in 0..<s.count { s[j] += g[j] }
                    }
                }
            }
        }
        return TaskStepResult(loss: loss.mean, tokens: tokens, gradients: gradients)
    }

    /// The task with the `padding` of a saved record (the data, and so its maximum length, is
    /// compared, not adopted).
    /// - Throws: ``TrainingError/invalidCheckpoint(_:)`` for a malformed value.
    public func adoptingCheckpointSettings(_ record: [String: String]) throws -> CausalLMTask {
        guard let pad = record["padding"], pad == "fixed" || pad == "longest" else {
            throw TrainingError.invalidCheckpoint("padding \(record["padding"] ?? "<none>") is not longest or fixed")
        }
        return try CausalLMTask(model: model, data: data, padding: pad == "fixed" ? .fixed : .longest)
    }

    public var checkpointRecord: [String: String] {
        let c = model.configuration
        var f = DataFingerprint()
        for e in data.examples {
            f.mix(e.tokens)
            f.mix(e.lossMask.map { $0 ? 1 : 0 })
            f.mix([10])
        }
        return [
            "task": "causal-lm",
            "model": "Llama: vocabulary \(c.vocabularySize), d = \(c.hiddenSize), \(c.layerCount) layers, \(c.headCount) heads (\(c.keyValueHeadCount) key/value) of \(c.headDimension), I = \(c.intermediateSize)",
            "data": "\(data.count) examples, fingerprint \(f.hex)",
            "max_length": String(data.maxLength),
            "padding": padding == .fixed ? "fixed" : "longest",
        ]
    }
}
