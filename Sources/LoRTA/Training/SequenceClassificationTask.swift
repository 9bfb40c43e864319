import Foundation

/// Sequence classification on a frozen ``BertModel``: a linear ``BertClassificationHead`` on the
/// mean-pooled output, trained together with an adapter by ``Trainer``; the loss of a step is
/// the mean cross-entropy over its examples.
///
/// A step's examples are tokenized per micro-batch (truncated to ``maxLength``, padded as
/// ``padding`` says); the gradients of the micro-batches (each of its own mean loss) are
/// combined by their example-weighted mean (``GradientAccumulator``), the gradient of the mean
/// loss over the step's examples up to float rounding.
///
/// Own trained tensors: `head.weight` `[classes, d]`, `head.bias` `[classes]`.
public struct SequenceClassificationTask: TrainingTask {
    /// The frozen encoder.
    public let model: BertModel
    /// Tokenizes the training (and evaluation) texts.
    public let tokenizer: BertTokenizer
    /// The training examples.
    public let data: LabelledTextDataset
    /// The classification head (current values during training).
    public private(set) var head: BertClassificationHead
    /// Sequences are truncated to this many tokens, [CLS] and [SEP] included.
    public let maxLength: Int
    /// `.longest`: each micro-batch is padded to its own longest row (dynamic padding);
    /// `.fixed`: to ``maxLength``.
    public let padding: BertTokenizer.Padding

    /// - Parameters:
    ///   - model: the frozen encoder.
    ///   - tokenizer: its tokenizer; the vocabulary must fit the model's.
    ///   - data: the training examples; their labels must be classes of `head`.
    ///   - head: the initial head (e.g. ``BertClassificationHead/init(hiddenSize:classCount:seed:)``).
    ///   - maxLength: tokens per sequence, [CLS] and [SEP] included (2 ... the model's positions);
    ///     nil: 64, or the model's positions when it has fewer.
    ///   - padding: dynamic (`.longest`, the default) or fixed padding.
    /// - Throws: ``TrainingError/invalidBatching(_:)`` for a `maxLength` out of range, a tokenizer
    ///   larger than the model's vocabulary or labels the head cannot represent; ``BertError``
    ///   when the head does not fit the model. O(1).
    public init(model: BertModel, tokenizer: BertTokenizer, data: LabelledTextDataset, head: BertClassificationHead,
                maxLength: Int? = nil, padding: BertTokenizer.Padding = .longest) throws {
        let c = model.configuration
        let maxLength = maxLength ?? min(64, c.maxPositionEmbeddings)
        try head.validate(for: c)
        guard maxLength >= 2 else { throw TrainingError.invalidBatching("max length \(maxLength) must be >= 2 ([CLS] and [SEP])") }
        guard maxLength <= c.maxPositionEmbeddings else {
            throw TrainingError.invalidBatching("max length \(maxLength) exceeds the model's \(c.maxPositionEmbeddings) positions")
        }
        guard tokenizer.vocabularySize <= c.vocabularySize else {
            throw TrainingError.invalidBatching("the tokenizer has \(tokenizer.vocabularySize) tokens, the model only \(c.vocabularySize)")
        }
        guard data.labelCount <= head.classCount else {
            throw TrainingError.invalidBatching("the data has \(data.labelCount) labels, the head only \(head.classCount) classes")
        }
        self.model = model
        self.tokenizer = tokenizer
        self.data = data
        self.head = head
        self.maxLength = maxLength
        self.padding = padding
    }

    public var adapterHost: AdapterHost { model.adapterHost }
    public var exampleCount: Int { data.count }
    public var ownParameterNames: [String] { ["head.weight", "head.bias"] }
    public var ownParameters: [Tensor] { [head.weight, head.bias] }

    public func replacingOwnParameters(_ tensors: [Tensor]) throws -> SequenceClassificationTask {
        guard tensors.count == 2, tensors[0].shape == head.weight.shape, tensors[1].shape == head.bias.shape else {
            throw TrainingError.parameterCountMismatch(expected: 2, actual: tensors.count)
        }
        var t = self
        t.head = try BertClassificationHead(weight: tensors[0], bias: tensors[1])
        return t
    }

    /// The tokenized micro-batch of examples `indices`.
    func batch(_ indices: ArraySlice<Int>) throws -> (tokens: TokenBatch, labels: [Int32]) {
        let tokens = try tokenizer.encodeBatch(indices.map { data.examples[$0].text }, maxLength: maxLength, padding: padding)
        return (tokens, indices.map { Int32(data.examples[$0].label) })
    }

    /// Each micro-batch: the gradients of its own mean cross-entropy (head, then adapter);
    /// ``MicroBatchGradients/lossSum`` is that mean × its examples.
    public func microBatchGradients(examples: [Int], microBatchSize: Int, microBatches: Range<Int>,
                                    adapter: (any Adapter)?) throws -> [MicroBatchGradients] {
        try checkMicroBatches(microBatches, examples: examples.count, microBatchSize: microBatchSize)
        return try microBatches.map { index in
            let (batch, labels) = try batch(examples[microBatchRange(index, count: examples.count, size: microBatchSize)])
            let g = try model.gradients(batch, labels: labels, adapter: adapter, head: head)
            return MicroBatchGradients(lossSum: Double(g.loss) * Double(labels.count), lossWeight: labels.count,
                                       tokens: batch.tokenCount, exampleCount: labels.count,
                                       gradients: [g.headWeight, g.headBias] + (g.adapter ?? []))
        }
    }

    /// The example-weighted mean of the micro-batch gradients (``GradientAccumulator``, in
    /// order) and of their losses.
    public func combineMicroBatchGradients(_ parts: [MicroBatchGradients], examples: [Int]) throws -> TaskStepResult {
        guard !parts.isEmpty, parts.reduce(0, { $0 + $1.exampleCount }) == examples.count else {
            throw TrainingError.invalidBatching("\(parts.count) micro-batches of \(parts.reduce(0) { $0 + $1.exampleCount }) examples for a step of \(examples.count)")
        }
        var accumulator = try GradientAccumulator(microBatchesPerStep: parts.count)
        var weightedLoss = 0.0, tokens = 0
        for p in parts {
            try accumulator.add(p.gradients, exampleCount: p.exampleCount)
            weightedLoss += p.lossSum
            tokens += p.tokens
        }
        // Example-weighted mean over the micro-batches.
        return TaskStepResult(loss: weightedLoss / Double(examples.count), tokens: tokens,
                              gradients: try accumulator.takeMean())
    }

    public var checkpointRecord: [String: String] {
        let c = model.configuration
        var f = DataFingerprint()
        for e in data.examples {
            f.mix(String(e.label).utf8)
            f.mix([9])
            f.mix(e.text.utf8)
            f.mix([10])
        }
        return [
            "task": "sequence-classification",
            "model": "BERT: vocabulary \(c.vocabularySize), d = \(c.hiddenSize), \(c.layerCount) layers, \(c.headCount) heads, I = \(c.intermediateSize), \(c.maxPositionEmbeddings) positions",
            "data": "\(data.count) examples, \(data.labelCount) labels, fingerprint \(f.hex)",
            "head": "\(head.classCount) classes × \(head.weight.shape[1])",
            "max_length": String(maxLength),
            "padding": padding == .fixed ? "fixed" : "longest",
        ]
    }

    /// The task with `max_length` and `padding` of a saved record (the other fields are
    /// compared by ``Trainer/init(resumingFrom:task:steps:schedule:)``).
    /// - Throws: ``TrainingError/invalidCheckpoint(_:)`` for a malformed or out-of-range value.
    public func adoptingCheckpointSettings(_ record: [String: String]) throws -> SequenceClassificationTask {
        guard let text = record["max_length"], let length = Int(text),
              let pad = record["padding"], pad == "fixed" || pad == "longest" else {
            throw TrainingError.invalidCheckpoint("max_length \(record["max_length"] ?? "<none>") or padding \(record["padding"] ?? "<none>") is not a length and longest/fixed")
        }
        return try SequenceClassificationTask(model: model, tokenizer: tokenizer, data: data, head: head, maxLength: length,
                                              padding: pad == "fixed" ? .fixed : .longest)
    }

    /// Accuracy, mean cross-entropy and confusion counts of `adapter` and the current head on
    /// `data`, in file order, with this task's `maxLength`.
    /// - Parameters:
    ///   - data: the labelled examples; their labels must be classes of the head.
    ///   - adapter: the adapter to apply (nil: the base encoder).
    ///   - batchSize: examples per forward pass (≥ 1); it does not change the result beyond
    ///     float rounding of the logits.
    /// - Throws: ``TrainingError/invalidBatching(_:)`` for `batchSize < 1` or labels beyond the
    ///   head's classes; ``BertError`` from the model. O(forward over `data`).
    public func evaluate(_ data: LabelledTextDataset, adapter: (any Adapter)?, batchSize: Int = 64) throws -> ClassificationMetrics {
        guard batchSize >= 1 else { throw TrainingError.invalidBatching("batch size \(batchSize) must be >= 1") }
        guard data.labelCount <= head.classCount else {
            throw TrainingError.invalidBatching("the data has \(data.labelCount) labels, the head only \(head.classCount) classes")
        }
        guard data.count > 0 else { return try ClassificationMetrics(classCount: head.classCount) }
        return try model.evaluate(data, tokenizer: tokenizer, adapter: adapter, head: head, batchSize: batchSize,
                                  maxLength: maxLength)
    }
}

extension Trainer where Task == SequenceClassificationTask {
    /// The trained classification head.
    public var head: BertClassificationHead { task.head }

    /// Accuracy, mean cross-entropy and confusion counts of the current adapter and head on
    /// `data` (``SequenceClassificationTask/evaluate(_:adapter:batchSize:)``).
    /// - Parameters:
    ///   - data: the labelled examples; their labels must be classes of the head.
    ///   - batchSize: examples per forward pass (≥ 1).
    /// - Throws: ``TrainingError/invalidBatching(_:)``, ``BertError``.
    public func evaluate(_ data: LabelledTextDataset, batchSize: Int = 64) throws -> ClassificationMetrics {
        try task.evaluate(data, adapter: adapter, batchSize: batchSize)
    }
}
