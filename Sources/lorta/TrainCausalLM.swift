import ArgumentParser
import Foundation
import LoRTA

/// `lorta train --task causal-lm`: an adapter on a Llama model, loss on the response tokens.
extension Train {
    func runCausalLM() throws {
        try reportingErrors {
            try Runtime.initialize()
            if let threads { try Runtime.setThreadCount(threads) }
            if adapter == .none { throw ValidationError("--adapter none has nothing to train for a causal LM; use lora or lorta") }
            let outURL = URL(fileURLWithPath: out)
            try OutputDirectory.prepare(outURL, overwrite: overwrite, allowing: resume.map { URL(fileURLWithPath: $0) })
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
            let host = lm.model.adapterHost
            var trainer: CausalLMTrainer
            if let resume {
                trainer = try CausalLMTrainer(resumingFrom: URL(fileURLWithPath: resume), model: lm.model,
                                              trainingData: trainData, steps: try totalSteps(dataCount: trainData.count))
            } else {
                let total = try totalSteps(dataCount: trainData.count)!
                let made = try makeAdapter(for: host, defaultTargets: "q_proj,k_proj,v_proj,o_proj")!
                let sched: LearningRateSchedule = schedule == .constant
                    ? .constant(lr) : try .linearWarmupDecay(peak: lr, warmupSteps: warmup, totalSteps: total)
                trainer = try CausalLMTrainer(
                    model: lm.model, trainingData: trainData, adapter: made,
                    configuration: CausalLMTrainingConfiguration(
                        steps: total, batchSize: batchSize, microBatchSize: microBatchSize,
                        padding: padding == .fixed ? .fixed : .longest,
                        optimizer: AdamWConfiguration(learningRate: lr, weightDecay: weightDecay), schedule: sched, seed: seed))
            }
            let total = trainer.configuration.steps
            if !quiet {
                printError("training \(trainer.adapter.summary) (\(trainer.adapter.parameterCount) trainable parameters) on \(trainData.count) examples: steps \(trainer.step + 1)…\(total), batch \(trainer.configuration.batchSize), \(Runtime.threadCount) threads")
            }
            let progress = ProgressLine(enabled: !quiet, total: total, firstStep: trainer.step)
            let checkpointDir = outURL.appendingPathComponent("checkpoint")
            let run = TrainingSummary(combining: try runTrainingLoop(
                progress: progress, start: Date(), checkpointEvery: checkpointEvery,
                train: { try trainer.train(progress: $0) }, saveCheckpoint: { try trainer.saveCheckpoint(to: checkpointDir) }))
            try trainer.saveCheckpoint(to: checkpointDir)
            try trainer.adapter.save(to: outURL, host: host)

            var result: [String: Any] = [
                "task": "causal-lm", "adapter": adapterKindName(trainer.adapter),
                "adapter_parameters": trainer.adapter.parameterCount,
                "targets": trainer.adapter.targetModules,
                "train_examples": trainData.count, "skipped_examples": trainData.droppedCount,
            ].merging(summaryFields(run, step: trainer.step, total: total)) { a, _ in a }
            if let evalData {
                if !quiet { printError("evaluating on \(evalData.count) examples…") }
                let loss = try lm.model.evaluate(evalData, adapter: trainer.adapter)
                result["eval_loss"] = loss.mean
                result["eval_perplexity"] = exp(loss.mean)
                result["eval_tokens"] = loss.targetCount
            }
            let evalText = (result["eval_loss"] as? Double).map {
                String(format: ", eval loss %.4f (perplexity %.3f)", $0, exp($0))
            }
            try report(result, run: run, step: trainer.step, total: total, evaluation: evalText, outURL: outURL,
                       files: "adapter, checkpoint/, training_summary.json", checkpointDir: checkpointDir)
        }
    }
}
