import Foundation
import LoRTA

// The training data readers: a `label<TAB>text` file (LabelledTextDataset) and a chat / prompt-
// response JSONL file (CausalLMDataset, tokenized with the committed tiny byte-level BPE
// tokenizer and its ChatML template). A data set that loads is batched.

extension Harness {
    static let labelledText = Harness(name: "labelled-text",
                                      summary: "LabelledTextDataset.parse / load(from:), batched with a tiny WordPiece tokenizer") {
        let tokenizer = try BertTokenizer(vocabulary: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "good", "bad", "movie",
                                                       "##s", "plot", "fun", "!", "."])
        return { data in
            var sets: [LabelledTextDataset] = []
            for labelCount in [1, 3] {
                if let d = try? LabelledTextDataset.parse(text(data), labelCount: labelCount) { sets.append(d) }
            }
            if let d = try? LabelledTextDataset.load(from: Scratch.file("train.tsv", data), labelCount: 3) { sets.append(d) }
            for set in sets {
                guard let loader = try? BatchLoader(dataset: set, tokenizer: tokenizer, batchSize: 3, maxLength: 8,
                                                    shuffler: EpochShuffler(seed: 1)) else { continue }
                for position in 0..<min(loader.batchesPerEpoch, 4) { _ = try? loader.batch(at: TrainingPosition(epoch: 0, batchInEpoch: position)) }
            }
        }
    }

    static let causalJSONL = Harness(name: "causal-jsonl",
                                     summary: "CausalLMDataset(lines:) / load(from:) with the tiny BPE tokenizer, batched") {
        let tokenizer = try ByteLevelBPETokenizer(directory: fixture("bpe/tiny"))
        return { data in
            var sets: [CausalLMDataset] = []
            if let d = try? CausalLMDataset(lines: lines(data), tokenizer: tokenizer, maxLength: 48) { sets.append(d) }
            if let d = try? CausalLMDataset.load(from: Scratch.file("train.jsonl", data), tokenizer: tokenizer, maxLength: 16,
                                                 template: .chatML(defaultSystemMessage: "sys")) {
                sets.append(d)
            }
            for set in sets {
                _ = set.droppedLines
                let indices = Array(0..<min(set.count, 4))
                _ = try? set.batch(indices)
                _ = try? set.batch(indices, padding: .fixed)
                _ = try? set.microBatches(indices, microBatchSize: 2)
                for e in set.examples.prefix(4) {
                    _ = e.targetCount
                    _ = CausalLMDataset.answerMatches(generated: text(data), expected: e.expectedAnswer)
                }
            }
        }
    }
}
