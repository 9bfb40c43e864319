import Foundation

extension BertModel {
    /// Accuracy, mean cross-entropy and the confusion matrix of the classification head (on
    /// the adapted encoder) over a labelled dataset, in file order.
    ///
    /// Batches are padded to their longest sequence (dynamic padding; the result does not
    /// depend on the padding) and truncated to `maxLength` tokens. An observer sees every
    /// batch's activations (e.g. a ``StatisticsCollector`` gathering the statistics of a
    /// trusted set for the detectors); with `labelObserver` set, a collector's
    /// ``StatisticsCollector/labels`` are set to each batch's labels first, so it keeps
    /// per-label statistics.
    /// - Parameters:
    ///   - data: the labelled examples; their labels must be classes of `head`.
    ///   - tokenizer: tokenizes the texts.
    ///   - adapter: an unmerged adapter for ``adapterHost`` (nil: the base encoder).
    ///   - head: the classification head applied to the pooled output.
    ///   - batchSize: examples per forward pass (≥ 1).
    ///   - maxLength: sequences are truncated to this many tokens, [CLS] and [SEP] included (≥ 2).
    ///   - observer: sees every batch's activations; nil (the default) costs nothing.
    ///   - labelObserver: when `observer` is a ``StatisticsCollector``, set its
    ///     ``StatisticsCollector/labels`` to each batch's labels first.
    ///   - ablation: components mean-ablated in every forward (``MeanAblation``); nil: none.
    ///   - progress: called after each batch with (examples done, total); may be nil.
    /// - Throws: ``TrainingError/invalidBatching(_:)`` for `batchSize < 1` or `maxLength < 2`,
    ///   ``BertError`` for adapters or a head that do not fit, or a label outside the head's
    ///   classes.
    /// - Complexity: one forward per batch: O(count · maxLength · (L·d·(4d + 2I))) flops.
    public func evaluate(_ data: LabelledTextDataset, tokenizer: BertTokenizer, adapter: (any Adapter)? = nil,
                         head: BertClassificationHead, batchSize: Int = 64, maxLength: Int = 64,
                         observer: ActivationObserver? = nil, labelObserver: Bool = false,
                         ablation: MeanAblation? = nil,
                         progress: ((Int, Int) -> Void)? = nil) throws -> ClassificationMetrics {
        try head.validate(for: configuration)
        try adapter?.validate(for: adapterHost)
        guard data.labelCount <= head.classCount else {
            throw BertError.invalidClassificationHead("the data has \(data.labelCount) classes, the head \(head.classCount)")
        }
        let loader = try BatchLoader(dataset: data, tokenizer: tokenizer, batchSize: batchSize, maxLength: maxLength,
                                     padding: .longest, shuffler: nil)
        var metrics = try ClassificationMetrics(classCount: head.classCount)
        var done = 0
        for batch in try loader.batches(epoch: 0) {
            if labelObserver, let collector = observer as? StatisticsCollector {
                collector.labels = batch.labels.map(Int.init)
            }
            let out = try forward(batch.tokens, adapter: adapter, observer: observer, ablation: ablation)
            let logits = try Self.headForward(head, pooled: out.pooled, B: batch.count)
            try metrics.add(logits: logits, labels: batch.labels)
            done += batch.count
            progress?(done, data.count)
        }
        if labelObserver, let collector = observer as? StatisticsCollector { collector.labels = nil }
        return metrics
    }
}
