import ArgumentParser
import Foundation
import LoRTA

/// `lorta train --task causal-lm`: an adapter on a Llama model, loss on the response tokens.
extension Train {
    func runCausalLM(outURL: URL) throws {
        if adapter == .none { throw ValidationError("--adapter none has nothing to train for a causal LM; use lora or lorta") }
        if backdoor.trigger != nil { throw ValidationError("--trigger (a planted backdoor) is available for classification data only so far") }
        let lm = try CausalLanguageModel(contentsOf: URL(fileURLWithPath: model))
        let template = try? lm.chatTemplate()
        let length = maxLength ?? 256
        let trainData = try CausalLMDataset.load(from: URL(fileURLWithPath: train), tokenizer: lm.tokenizer,
                                                 maxLength: length, template: template)
        let evalData = try eval.map {
            try CausalLMDataset.load(from: URL(fileURLWithPath: $0), tokenizer: lm.tokenizer, maxLength: length, template: template)
        }
        if !quiet && trainData.droppedCount > 0 {
            printError("skipped \(trainData.droppedCount) training examples longer than \(length) tokens (--max-length)")
        }
        let task = try CausalLMTask(model: lm.model, data: trainData, padding: padding == .fixed ? .fixed : .longest)
        try train(task, defaultTargets: "q_proj,k_proj,v_proj,o_proj", outURL: outURL,
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
            }
            return TaskOutputs(fields: fields, evaluation: evalText, files: "adapter, checkpoint/, training_summary.json")
        }
    }
}
