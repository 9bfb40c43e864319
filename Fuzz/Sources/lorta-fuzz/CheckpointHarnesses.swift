import Foundation
import LoRTA

// Files the library writes and reads back, which a user may still hand over corrupted or forged:
// statistics and detector files, optimizer checkpoints, adapter directories. Each loaded value is
// used once (scored, stepped, merged) so that a loader accepting inconsistent state shows up.

extension Harness {
    static let statisticsFile = Harness(name: "stats-file",
                                        summary: "ActivationStatistics(contentsOf:), DetectorFile.load, covariances and scores") {
        { data in
            let url = Scratch.file("statistics.safetensors", data)
            if let s = try? ActivationStatistics(contentsOf: url) {
                _ = s.labels
                _ = try? s.variances()
                _ = try? s.merged(with: s)
                if let c = try? s.covariance() { _ = c.trace; _ = try? c.cholesky(); _ = try? c.eigenvalues() }
                _ = try? s.covariance(estimator: .ledoitWolf)
                _ = try? s.tiedCovariance()
            }
            if let detector = try? DetectorFile.load(url) {
                let stored = (try? SafeTensorsReader(data: data))?.metadata["dimension"].flatMap { Int($0) } ?? 1
                for d in Set([1, 3, min(max(stored, 1), 256)]) {
                    if let batch = try? Tensor(zeros: [2, d]) { _ = try? detector.scores(batch) }
                }
            }
        }
    }

    static let optimizerCheckpoint = Harness(name: "optimizer-checkpoint",
                                             summary: "OptimizerCheckpoint(contentsOf:) and one AdamW step; LearningRateSchedule(parsing:)") {
        { data in
            if var c = try? OptimizerCheckpoint(contentsOf: Scratch.file("optimizer.safetensors", data)) {
                _ = c.schedule.learningRate(atStep: c.optimizer.state.step)
                let shapes = c.optimizer.state.firstMoments.map(\.shape)
                if shapes.allSatisfy({ $0.reduce(1, *) <= 1 << 16 }),
                   var parameters = try? shapes.map({ try Tensor(zeros: $0) }) {
                    _ = try? c.optimizer.update(parameters: &parameters, gradients: parameters)
                }
            }
            if let schedule = try? LearningRateSchedule(parsing: text(data)) {
                for step in [0, 1, 10, Int.max] { _ = schedule.learningRate(atStep: step) }
            }
        }
    }

    /// The input is `selector, u16 config length, adapter_config.json, adapter_model.safetensors`
    /// (see `splitInput`); the selector picks the model the directory is loaded for: the tiny
    /// Llama of the fixtures, or one of two tiny BERT shapes.
    static let adapterDirectory = Harness(name: "adapter-dir",
                                          summary: "AdapterFiles.load(from:host:) for a tiny Llama / BERT host, deltas and a forward") {
        let hosts = try adapterHosts()
        return { data in
            guard let (selector, config, weights) = splitInput(data) else { return }
            let directory = Scratch.emptyDirectory("adapter")
            _ = Scratch.file("adapter/adapter_config.json", config)
            _ = Scratch.file("adapter/adapter_model.safetensors", weights)
            let host = hosts[Int(selector) % hosts.count]
            guard let adapter = try? AdapterFiles.load(from: directory, host: host) else { return }
            _ = adapter.summary
            _ = adapter.parameterNames(host: host)
            _ = try? adapter.validate(for: host)
            for layer in 0..<host.layerCount {
                for module in host.modules { _ = try? adapter.delta(layer: layer, module: module.name) }
            }
        }
    }
}

/// The hosts of the adapter-dir harness: the fixtures' tiny Llama (d 64, 4 heads / 2 KV heads,
/// 2 layers), the BERT of Fixtures/merge (d 8, 2 heads, 2 layers) and of Fixtures/lorta_merge/bert
/// (d 12, 3 heads of 4, 3 layers).
func adapterHosts() throws -> [AdapterHost] {
    let llama = try LlamaModel(contentsOf: fixture("llama/tiny/tiny_untied_hf")).adapterHost
    let bert8 = try BertConfiguration(vocabularySize: 16, hiddenSize: 8, layerCount: 2, headCount: 2, intermediateSize: 16,
                                  maxPositionEmbeddings: 16, typeVocabularySize: 2, layerNormEpsilon: 1e-12).adapterHost
    let bert12 = try BertConfiguration(vocabularySize: 16, hiddenSize: 12, layerCount: 3, headCount: 3, intermediateSize: 16,
                                   maxPositionEmbeddings: 16, typeVocabularySize: 2, layerNormEpsilon: 1e-12).adapterHost
    return [llama, bert8, bert12]
}
