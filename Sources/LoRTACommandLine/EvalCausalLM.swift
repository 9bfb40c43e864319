import ArgumentParser
import Foundation
import LoRTA

/// `lorta eval` on a causal LM: loss and perplexity of the response tokens, and with
/// --generate the exact-match accuracy of greedy answers.
extension Eval {
    /// Alone (`parallel` nil) or as one process of `lorta-mpi eval`: then each process computes
    /// the loss and the --observe statistics of a contiguous share of DATA's batches (whole
    /// batches, padded as in one process), the loss sums are added and the statistics merged in
    /// rank order; rank 0 prints and writes. Greedy answers (--generate, --trigger) run on one
    /// process only.
    func runCausalLM(parallel: (any DataParallelism)? = nil) throws {
        let json = self.json || !(parallel?.isWriter ?? true)
        try reportingErrors(printing: parallel?.isWriter ?? true) {
            let answersWanted = try generate || backdoor.causalBackdoor() != nil
            if parallel != nil, answersWanted {
                throw ValidationError("lorta-mpi eval shards the loss and the --observe statistics of a causal LM; "
                                      + "greedy answers (--generate, --trigger) run with lorta eval")
            }
            let (lm, records, template, length, full, shard) = try collectively(parallel) {
                () throws -> (CausalLanguageModel, [CausalLMRecord], ChatTemplate?, Int, CausalLMDataset, CausalLMDataset?) in
                try Runtime.initialize()
                if let threads { try Runtime.setThreadCount(threads) }
                if perLabel { throw ValidationError("--per-label needs labelled data (BERT classification)") }
                if let limit, limit < 1 { throw ValidationError("--limit must be >= 1") }
                if maxNewTokens < 1 { throw ValidationError("--max-new-tokens must be >= 1") }
                var lm = try CausalLanguageModel(contentsOf: URL(fileURLWithPath: model))
                if let adapter { try lm.loadAdapter(from: URL(fileURLWithPath: adapter)) }
                // --ablate: the loss, the statistics and every generated answer with those components mean-ablated.
                lm.ablation = try makeAblation(lm.model.configuration.observationShape)
                let length = maxLength ?? 256
                let records = try CausalLMDataset.readRecords(from: URL(fileURLWithPath: data))
                let template = try? lm.chatTemplate()
                let dataset = try CausalLMDataset(records: records, tokenizer: lm.tokenizer, maxLength: length, template: template, path: data)
                guard let parallel else { return (lm, records, template, length, dataset, dataset) }
                // This process's contiguous share of whole batches (nil when it has none).
                let size = batchSize ?? 8
                let batches = parallel.share(of: (dataset.count + size - 1) / size)
                let range = min(batches.lowerBound * size, dataset.count) ..< min(batches.upperBound * size, dataset.count)
                let shard = range.isEmpty ? nil : try CausalLMDataset(examples: Array(dataset.examples[range]), maxLength: dataset.maxLength,
                                                                      paddingID: dataset.paddingID, path: dataset.path)
                return (lm, records, template, length, dataset, shard)
            }
            if let parallel {
                try parallel.checkAgreement(on: "the data (\(data))",
                                            text: full.examples.map { $0.tokens.map(String.init).joined(separator: " ") }.joined(separator: "\n"))
            }
            let dataset = full
            let planted = try backdoor.causalBackdoor()
            let start = Date()
            let collector = try makeCollector(lm.model.configuration.observationShape)
            var loss = try collectively(parallel) { () throws -> CausalLMLoss in
                guard let shard else { return CausalLMLoss(sum: 0, targetCount: 0) }
                let loss = try lm.model.evaluate(shard, adapter: lm.adapter, ablation: lm.ablation, batchSize: batchSize ?? 8)
                if let collector {
                    try lm.model.observePrompts(shard, adapter: lm.adapter, observer: collector, ablation: lm.ablation,
                                                batchSize: batchSize ?? 8)
                }
                return loss
            }
            if let parallel {
                let total = try parallel.sumInRankOrder([loss.sum, Double(loss.targetCount)])
                loss = CausalLMLoss(sum: total[0], targetCount: Int(total[1]))
                if let collector { collector.statistics = try parallel.mergeStatistics(collector.statistics) }
            }
            guard parallel?.isWriter ?? true else { return }
            var written: [String] = []
            if let collector { written = try collector.write(to: URL(fileURLWithPath: statisticsOut!)).map(\.path) }
            var result: [String: Any] = [
                "examples": dataset.count, "skipped_examples": dataset.droppedCount, "tokens": loss.targetCount,
                "loss": loss.mean, "perplexity": exp(loss.mean), "adapter": lm.adapter?.summary ?? "none",
                "statistics_files": written,
            ]
            if let ablation = lm.ablation { result["ablated"] = ablation.ablated.sorted().map(\.description) }
            if let parallel { result["processes"] = parallel.size }
            if generate {
                let total = min(limit ?? dataset.count, dataset.count)
                let accuracy = try lm.answerAccuracy(dataset, limit: limit, maxNewTokens: maxNewTokens) { i, _, _ in
                    if !json && isatty(2) != 0 {
                        FileHandle.standardError.write(Data("\r\u{1B}[Kanswering \(i + 1)/\(total)".utf8))
                    }
                }
                if !json && isatty(2) != 0 { FileHandle.standardError.write(Data("\n".utf8)) }
                result["answers"] = accuracy.total
                result["correct"] = accuracy.correct
                result["accuracy"] = accuracy.accuracy
            }
            if let planted {
                // The attack success rate: greedy answers to the triggered prompts, compared with the target.
                let (attack, control) = try lm.backdoorAnswers(planted, records: records, maxLength: length, template: template,
                                                               path: data, limit: limit, maxNewTokens: maxNewTokens) { done, total in
                    if !json && isatty(2) != 0 {
                        FileHandle.standardError.write(Data("\r\u{1B}[Kanswering triggered \(done)/\(total)".utf8))
                    }
                }
                if !json && isatty(2) != 0 { FileHandle.standardError.write(Data("\n".utf8)) }
                result["target_rate_without_trigger"] = control.accuracy
                result["trigger"] = planted.trigger
                result["triggered_examples"] = attack.total
                result["attack_success_rate"] = attack.accuracy
            }
            result["seconds"] = Date().timeIntervalSince(start)
            if json {
                print(jsonText(result))
            } else {
                var line = String(format: "%d examples (%d response tokens): loss %.4f, perplexity %.3f", dataset.count,
                                  loss.targetCount, loss.mean, exp(loss.mean))
                if let acc = result["accuracy"] as? Double, let n = result["answers"] as? Int {
                    line += String(format: ", accuracy of greedy answers %.2f%% (%d of %d)", 100 * acc,
                                   result["correct"] as? Int ?? 0, n)
                }
                print(line)
                if let asr = result["attack_success_rate"] as? Double, let n = result["triggered_examples"] as? Int {
                    print(String(format: "attack success %.2f%%: %d prompts with the trigger, %.0f answered %@ (without the trigger: %.2f%%)",
                                 100 * asr, n, asr * Double(n), planted!.targetAnswer.debugDescription,
                                 100 * (result["target_rate_without_trigger"] as? Double ?? 0)))
                }
                if !written.isEmpty { print("wrote \(written.count) statistics files to \(statisticsOut!)") }
                if dataset.droppedCount > 0 { print("skipped \(dataset.droppedCount) examples longer than \(length) tokens") }
            }
        }
    }
}
