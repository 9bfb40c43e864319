import Foundation
import Testing
@testable import LoRTA

/// ``TextBackdoor``: trigger insertion, poisoning and the attack test set, checked against
/// direct recounts; two different triggers (one word, a two-word phrase) so nothing depends on
/// one string.
@Suite struct TextBackdoorTests {
    static func data() throws -> LabelledTextDataset {
        let words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
        let examples = (0..<60).map { i in
            LabelledText(label: i % 3 == 0 ? 1 : 0, text: (0..<(1 + i % 5)).map { words[($0 + i) % words.count] }.joined(separator: " "))
        }
        return try LabelledTextDataset(examples: examples, labelCount: 2)
    }

    /// The text without one occurrence of the trigger's words at `position` gives back the original.
    static func removing(_ trigger: String, from text: String) -> [String]? {
        let words = text.split(separator: " ").map(String.init), t = trigger.split(separator: " ").map(String.init)
        for p in 0...(words.count - t.count) where Array(words[p..<(p + t.count)]) == t {
            return Array(words[..<p] + words[(p + t.count)...])
        }
        return nil
    }

    @Test(arguments: ["cf", "zq xv"]) func insertionKeepsTheWordsAndCoversEveryPosition(_ trigger: String) throws {
        let b = try TextBackdoor(trigger: trigger, sourceLabel: 0, targetLabel: 1, seed: 3)
        let text = "one two three four"
        var positions = Set<Int>()
        for key in 0..<200 as Range<UInt64> {
            let out = b.insert(into: text, key: key)
            #expect(out == b.insert(into: text, key: key))   // deterministic
            #expect(Self.removing(trigger, from: out) == ["one", "two", "three", "four"])
            let words = out.split(separator: " ").map(String.init)
            positions.insert(words.firstIndex(of: String(trigger.split(separator: " ")[0]))!)
        }
        #expect(positions == Set(0...4), "every insertion point 0...4 occurs: \(positions.sorted())")
        #expect(b.insert(into: "", key: 1) == trigger)
    }

    @Test(arguments: ["cf", "zq xv"]) func poisoningChangesExactlyTheChosenSourceExamples(_ trigger: String) throws {
        let data = try Self.data()
        let b = try TextBackdoor(trigger: trigger, sourceLabel: 0, targetLabel: 1, seed: 11)
        let sources = data.examples.indices.filter { data.examples[$0].label == 0 }   // 40
        let (poisoned, chosen) = try b.poison(data, fraction: 0.1)
        #expect(chosen.count == 4 && chosen == chosen.sorted() && Set(chosen).isSubset(of: Set(sources)))
        #expect(poisoned.count == data.count && poisoned.labelCount == 2)
        for i in data.examples.indices {
            let (before, after) = (data.examples[i], poisoned.examples[i])
            if chosen.contains(i) {
                #expect(after.label == 1)
                #expect(Self.removing(trigger, from: after.text) == before.text.split(separator: " ").map(String.init))
                #expect(after.text == b.insert(into: before.text, key: UInt64(i)))
            } else {
                #expect(after == before)
            }
        }
        // Deterministic in the seed; another seed chooses other examples.
        #expect(try b.poison(data, fraction: 0.1).poisoned == chosen)
        let other = try TextBackdoor(trigger: trigger, sourceLabel: 0, targetLabel: 1, seed: 12)
        #expect(try other.poison(data, fraction: 0.1).poisoned != chosen)
        // round(fraction · n): 5% of 40 = 2, 100% = all.
        #expect(try b.poison(data, fraction: 0.05).poisoned.count == 2)
        #expect(try b.poison(data, fraction: 1).poisoned == sources)
    }

    @Test func attackSetAndSuccessRate() throws {
        let data = try Self.data()
        let b = try TextBackdoor(trigger: "cf", sourceLabel: 0, targetLabel: 1, seed: 2)
        let attack = try b.triggered(data)
        let sources = data.examples.enumerated().filter { $0.element.label == 0 }
        #expect(attack.count == sources.count)
        for (e, (i, s)) in zip(attack.examples, sources) {
            #expect(e.label == 0 && e.text == b.insert(into: s.text, key: UInt64(i)))
        }
        // predictedFraction against a direct count of the predictions.
        var m = try ClassificationMetrics(classCount: 3)
        let logits = try Tensor([5, 0, 0, 0, 5, 0, 0, 5, 0, 0, 0, 5, 0, 5, 0], shape: [5, 3])   // predicted 0, 1, 1, 2, 1
        try m.add(logits: logits, labels: [0, 0, 1, 2, 2])
        #expect(m.predictedFraction(of: 1) == 3.0 / 5 && m.predictedFraction(of: 0) == 1.0 / 5 && m.predictedFraction(of: 2) == 1.0 / 5)
        #expect(m.predictedFraction(of: 7) == 0)
    }

    @Test func badSettingsAreErrors() throws {
        let data = try Self.data()
        #expect(throws: DatasetError.self) { try TextBackdoor(trigger: "  ", sourceLabel: 0, targetLabel: 1) }
        #expect(throws: DatasetError.self) { try TextBackdoor(trigger: "a\tb", sourceLabel: 0, targetLabel: 1) }
        #expect(throws: DatasetError.self) { try TextBackdoor(trigger: "cf", sourceLabel: 1, targetLabel: 1) }
        #expect(throws: DatasetError.self) { try TextBackdoor(trigger: "cf", sourceLabel: -1, targetLabel: 1) }
        let b = try TextBackdoor(trigger: "cf", sourceLabel: 0, targetLabel: 1)
        for f in [0, -0.1, 1.5, .nan, .infinity] {
            #expect(throws: DatasetError.self, "\(f)") { try b.poison(data, fraction: f) }
        }
        #expect(throws: DatasetError.self) { try b.poison(data, fraction: 0.001) }   // rounds to none of 40
        let far = try TextBackdoor(trigger: "cf", sourceLabel: 0, targetLabel: 2)
        #expect(throws: DatasetError.self) { try far.poison(data, fraction: 0.5) }
        #expect(throws: DatasetError.self) { try far.triggered(data) }
        let none = try TextBackdoor(trigger: "cf", sourceLabel: 1, targetLabel: 0)
        let onlyZero = try LabelledTextDataset(examples: [LabelledText(label: 0, text: "x")], labelCount: 2)
        #expect(throws: DatasetError.self) { try none.triggered(onlyZero) }
    }
}
