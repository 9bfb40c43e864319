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
            let start = Date()
            let summaries = try runTrainingLoop(progress: progress, start: start, checkpointEvery: checkpointEvery,
                                                train: { try trainer.train(progress: $0) },
                                                saveCheckpoint: { try trainer.saveCheckpoint(to: checkpointDir) })
            let elapsed = Date().timeIntervalSince(start)
            let stepsRun = summaries.reduce(0) { $0 + $1.stepsRun }
            try trainer.saveCheckpoint(to: checkpointDir)
            try trainer.adapter.save(to: outURL, host: host)

            let last = summaries.last(where: { $0.stepsRun > 0 })
            var result: [String: Any] = [
                "task": "causal-lm", "adapter": adapter.rawValue,
                "adapter_parameters": trainer.adapter.parameterCount,
                "targets": trainer.adapter.targetModules,
                "steps": trainer.step, "total_steps": total, "stopped_early": trainer.step < total,
                "steps_this_run": stepsRun,
                "final_loss": last?.lastLoss ?? .nan,
                "mean_loss": stepsRun > 0 ? summaries.reduce(0) { $0 + $1.meanLoss * Double($1.stepsRun) } / Double(stepsRun) : .nan,
                "seconds": elapsed,
                "median_step_seconds": median(summaries.filter { $0.stepsRun > 0 }.map(\.medianStepSeconds)),
                "tokens_per_second": elapsed > 0 ? summaries.reduce(0) { $0 + $1.tokensPerSecond * $1.elapsedSeconds } / elapsed : 0,
                "peak_rss_mb": peakResidentMegabytes(),
                "threads": Runtime.threadCount,
                "train_examples": trainData.count, "skipped_examples": trainData.droppedCount,
                "out": out,
            ]
            if let evalData {
                if !quiet { printError("evaluating on \(evalData.count) examples…") }
                let loss = try lm.model.evaluate(evalData, adapter: trainer.adapter)
                result["eval_loss"] = loss.mean
                result["eval_perplexity"] = exp(loss.mean)
                result["eval_tokens"] = loss.targetCount
            }
            try Data((jsonText(result) + "\n").utf8).write(to: outURL.appendingPathComponent("training_summary.json"),
                                                           options: .atomic)
            if json {
                print(jsonText(result))
            } else {
                var line = String(format: "step %d/%d: %d steps in %.1f s (median %.3f s/step), final loss %.4f",
                                  trainer.step, total, stepsRun, elapsed, result["median_step_seconds"] as? Double ?? 0,
                                  last?.lastLoss ?? .nan)
                if let loss = result["eval_loss"] as? Double {
                    line += String(format: ", eval loss %.4f (perplexity %.3f)", loss, exp(loss))
                }
                print(line)
                print("wrote \(out) (adapter, checkpoint/, training_summary.json)")
                if trainer.step < total { print("stopped early at step \(trainer.step); continue with --resume \(checkpointDir.path)") }
            }
        }
    }
}
