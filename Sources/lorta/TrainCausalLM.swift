import ArgumentParser
import Foundation
import LoRTA

/// `lorta train --task causal-lm`: an adapter on a Llama model, loss on the response tokens.
extension Train {
    func runCausalLM(outURL: URL) throws {
        if adapter == .none { throw ValidationError("--adapter none has nothing to train for a causal LM; use lora or lorta") }
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
        let (trainer, run) = try train(task, defaultTargets: "q_proj,k_proj,v_proj,o_proj", outURL: outURL,
                                       description: { $0?.summary ?? "no adapter" })
        var result = resultFields(trainer, run: run, task: "causal-lm")
        result["skipped_examples"] = trainData.droppedCount
        var evalText: String?
        if let evalData {
            if !quiet { printError("evaluating on \(evalData.count) examples…") }
            let loss = try lm.model.evaluate(evalData, adapter: trainer.adapter)
            result["eval_loss"] = loss.mean
            result["eval_perplexity"] = exp(loss.mean)
            result["eval_tokens"] = loss.targetCount
            evalText = String(format: ", eval loss %.4f (perplexity %.3f)", loss.mean, exp(loss.mean))
        }
        try report(result, run: run, step: trainer.step, total: trainer.configuration.steps, evaluation: evalText,
                   outURL: outURL, files: "adapter, checkpoint/, training_summary.json")
    }
}
