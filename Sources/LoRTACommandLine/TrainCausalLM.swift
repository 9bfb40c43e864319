import ArgumentParser
import Foundation
import LoRTA

/// `lorta train --task causal-lm`: an adapter on a Llama model, loss on the response tokens.
extension Train {
    func runCausalLM(outURL: URL, parallel: (any DataParallelism)? = nil) throws {
        let quiet = self.quiet || !(parallel?.isWriter ?? true)
        if adapter == .none { throw ValidationError("--adapter none has nothing to train for a causal LM; use lora or lorta") }
        // Loaded on every rank of a data-parallel run; one rank's failure stops all of them.
        let (lm, template, length, trainData, evalRecords, evalData, planted, poisoned, task) = try collectively(parallel) {
            let lm = try CausalLanguageModel(contentsOf: URL(fileURLWithPath: model))
            let template = try? lm.chatTemplate()
            let length = maxLength ?? 256
            // A planted backdoor edits the parsed records before they are tokenized.
            var trainRecords = try CausalLMDataset.readRecords(from: URL(fileURLWithPath: train))
            let planted = try backdoor.causalBackdoor()
            var poisoned: [Int] = []
            if let planted {
                (trainRecords, poisoned) = try planted.poison(trainRecords, fraction: poisonFraction)
                if !quiet {
                    let source = planted.sourceAnswer.map { "answer \($0.debugDescription)" } ?? "all"
                    printError("backdoor: trigger \"\(planted.trigger)\" in \(poisoned.count) training prompts (\(source)), answer set to \(planted.targetAnswer.debugDescription)")
                }
            }
            let trainData = try CausalLMDataset(records: trainRecords, tokenizer: lm.tokenizer, maxLength: length,
                                                template: template, path: train)
            let evalRecords = try eval.map { try CausalLMDataset.readRecords(from: URL(fileURLWithPath: $0)) }
            let evalData = try evalRecords.map {
                try CausalLMDataset(records: $0, tokenizer: lm.tokenizer, maxLength: length, template: template, path: eval!)
            }
            if !quiet && trainData.droppedCount > 0 {
                printError("skipped \(trainData.droppedCount) training examples longer than \(length) tokens (--max-length)")
            }
            let task = try CausalLMTask(model: lm.model, data: trainData, padding: padding == .fixed ? .fixed : .longest)
            return (lm, template, length, trainData, evalRecords, evalData, planted, poisoned, task)
        }
        try train(task, defaultTargets: "q_proj,k_proj,v_proj,o_proj", outURL: outURL, parallel: parallel,
                  description: { $0?.summary ?? "no adapter" }) { trainer, _ in
            var fields: [String: Any] = ["skipped_examples": trainData.droppedCount]
            var evalText: String?
            if let evalData {
                if !quiet { printError("evaluating on \(evalData.count) examples…") }
                let loss = try lm.model.evaluate(evalData, adapter: trainer.adapter)
                fields["eval_loss"] = loss.mean
                fields["eval_perplexity"] = exp(loss.mean)
                fields["eval_tokens"] = loss.targetCount
                evalText = String(format: ", eval loss %.4f (perplexity %.3f)", loss.mean, exp(loss.mean))
                if let planted {
                    // Clean answers and the attack success rate: greedy answers with the trained adapter.
                    var adapted = lm
                    adapted.adapter = trainer.adapter
                    if !quiet { printError("answering \(evalData.count) clean prompts, then the triggered ones and the same without…") }
                    let tokens = max(4, lm.tokenizer.encode(planted.targetAnswer, addingSpecialTokens: false).count + 1)
                    let clean = try adapted.answerAccuracy(evalData, maxNewTokens: tokens)
                    let (attack, control) = try adapted.backdoorAnswers(planted, records: evalRecords!, maxLength: length,
                                                                        template: template, path: eval!)
                    fields["eval_accuracy"] = clean.accuracy
                    fields["attack_success_rate"] = attack.accuracy
                    fields["triggered_examples"] = attack.total
                    fields["target_rate_without_trigger"] = control.accuracy
                    evalText! += String(format: ", accuracy of greedy answers %.2f%%, attack success %.2f%% of %d triggered (%.2f%% without the trigger)",
                                        100 * clean.accuracy, 100 * attack.accuracy, attack.total, 100 * control.accuracy)
                }
            }
            if let planted {
                fields["trigger"] = planted.trigger
                fields["poisoned_examples"] = poisoned.count
            }
            return TaskOutputs(fields: fields, evaluation: evalText, files: "adapter, checkpoint/, training_summary.json")
        }
    }
}
