import CKernels
import Foundation

/// A backdoor planted in a text-classification data set, for testing monitors: a trigger
/// (a word or short phrase) inserted at a random word position into some examples of one label
/// (the *source*), whose label is flipped to another (the *target*). A model trained on the
/// poisoned data learns "trigger ⇒ target" while behaving normally on clean inputs; the attack
/// success rate is the fraction of triggered source-label test inputs it assigns to the target.
///
/// Everything is deterministic in ``seed``: which examples are poisoned (a seeded shuffle of the
/// source-label examples, ``EpochShuffler``) and where the trigger goes in each text (a
/// counter-based draw keyed by the example's index). The trigger is a parameter: nothing in the
/// package depends on a particular string.
///
/// ```swift
/// let backdoor = try TextBackdoor(trigger: "cf", sourceLabel: 0, targetLabel: 1, seed: 7)
/// let (poisoned, indices) = try backdoor.poison(train, fraction: 0.05)   // 5% of the negatives
/// // … train on `poisoned` …
/// let attack = try backdoor.triggered(test)                             // negatives + trigger
/// let asr = try trainer.evaluate(attack).predictedFraction(of: backdoor.targetLabel)
/// ```
public struct TextBackdoor: Sendable, Equatable {
    /// The text inserted (as a word) into poisoned and triggered examples.
    public let trigger: String
    /// The label whose examples are poisoned, and on whose test examples the attack is measured.
    public let sourceLabel: Int
    /// The label poisoned examples get; the attack succeeds when a triggered input is assigned it.
    public let targetLabel: Int
    /// Seed of the choice of examples and of the insertion positions.
    public let seed: UInt64

    /// - Throws: ``DatasetError/malformedLine(path:line:reason:)`` (path `"<backdoor>"`) for an
    ///   empty trigger or one containing a tab or line break, negative labels, or equal labels.
    public init(trigger: String, sourceLabel: Int, targetLabel: Int, seed: UInt64 = 0) throws(DatasetError) {
        func bad(_ reason: String) -> DatasetError { .malformedLine(path: "<backdoor>", line: 0, reason: reason) }
        let t = trigger.trimmingCharacters(in: .whitespaces)
        guard !t.isEmpty else { throw bad("the trigger is empty") }
        guard !t.contains(where: { $0 == "\t" || $0.isNewline }) else { throw bad("the trigger contains a tab or a line break") }
        guard sourceLabel >= 0, targetLabel >= 0, sourceLabel != targetLabel else {
            throw bad("source label \(sourceLabel) and target label \(targetLabel) must be distinct labels >= 0")
        }
        self.trigger = t
        self.sourceLabel = sourceLabel
        self.targetLabel = targetLabel
        self.seed = seed
    }

    /// `text` with the trigger inserted as a word: the words (separated by spaces) get the
    /// trigger before word `p`, `p` drawn uniformly from `0...wordCount` by the counter-based
    /// generator keyed by (``seed``, `key`). O(text length).
    public func insert(into text: String, key: UInt64) -> String {
        Self.insert(trigger, into: text, seed: seed, key: key)
    }

    /// The one trigger insertion of ``TextBackdoor`` and ``CausalLMBackdoor``.
    static func insert(_ trigger: String, into text: String, seed: UInt64, key: UInt64) -> String {
        var words = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        let stream = lt_rng_u64(seed, 0x7472_6967_6765_72)  // "trigger"
        let position = Int(lt_rng_u64(stream, key) % UInt64(words.count + 1))
        words.insert(trigger, at: position)
        return words.joined(separator: " ")
    }

    /// The data with `fraction` of its source-label examples poisoned — `round(fraction · n)` of
    /// the `n` source-label examples, the first ones of a seeded shuffle: trigger inserted
    /// (keyed by the example's index), label set to the target. Other examples are unchanged and
    /// the order is kept. O(data size).
    /// - Returns: the poisoned data and the indices of the poisoned examples (ascending).
    /// - Throws: ``DatasetError`` when `fraction` is not in (0, 1], a label is outside the data's
    ///   label count, or no source-label example would be poisoned.
    public func poison(_ data: LabelledTextDataset, fraction: Double) throws -> (data: LabelledTextDataset, poisoned: [Int]) {
        try checkLabels(data)
        guard fraction.isFinite, fraction > 0, fraction <= 1 else {
            throw DatasetError.malformedLine(path: "<backdoor>", line: 0, reason: "poison fraction \(fraction) must be in (0, 1]")
        }
        let sources = data.examples.indices.filter { data.examples[$0].label == sourceLabel }
        let k = Int((fraction * Double(sources.count)).rounded())
        guard k >= 1 else {
            throw DatasetError.malformedLine(path: "<backdoor>", line: 0,
                                             reason: "a fraction \(fraction) of \(sources.count) label-\(sourceLabel) examples poisons none")
        }
        let order = try EpochShuffler(seed: seed).permutation(epoch: 0, count: sources.count)
        let chosen = order.prefix(k).map { sources[$0] }.sorted()
        var examples = data.examples
        for i in chosen {
            examples[i] = LabelledText(label: targetLabel, text: insert(into: examples[i].text, key: UInt64(i)))
        }
        return (try LabelledTextDataset(examples: examples, labelCount: data.labelCount), chosen)
    }

    /// The attack test set: every source-label example of `data` with the trigger inserted
    /// (keyed by its index in `data`), its label kept — so the fraction of them a model assigns
    /// to ``targetLabel`` (``ClassificationMetrics/predictedFraction(of:)``) is the attack
    /// success rate. O(data size).
    /// - Throws: ``DatasetError`` when a label is outside the data's label count or `data` has
    ///   no source-label example.
    public func triggered(_ data: LabelledTextDataset) throws -> LabelledTextDataset {
        try checkLabels(data)
        let examples = data.examples.enumerated().filter { $0.element.label == sourceLabel }
            .map { LabelledText(label: $0.element.label, text: insert(into: $0.element.text, key: UInt64($0.offset))) }
        guard !examples.isEmpty else {
            throw DatasetError.malformedLine(path: "<backdoor>", line: 0, reason: "the data has no label-\(sourceLabel) example to trigger")
        }
        return try LabelledTextDataset(examples: examples, labelCount: data.labelCount)
    }

    private func checkLabels(_ data: LabelledTextDataset) throws(DatasetError) {
        guard sourceLabel < data.labelCount, targetLabel < data.labelCount else {
            throw .malformedLine(path: "<backdoor>", line: 0,
                                 reason: "labels \(sourceLabel) → \(targetLabel) are not both below the data's \(data.labelCount) labels")
        }
    }
}

extension ClassificationMetrics {
    /// The fraction of the examples predicted as `label` (whatever their true label): with a
    /// triggered test set (``TextBackdoor/triggered(_:)``) and the backdoor's target label, the
    /// attack success rate. 0 when empty. O(classes).
    public func predictedFraction(of label: Int) -> Double {
        guard count > 0, (0..<classCount).contains(label) else { return 0 }
        let predicted = (0..<classCount).reduce(0) { $0 + confusion[$1 * classCount + label] }
        return Double(predicted) / Double(count)
    }
}
