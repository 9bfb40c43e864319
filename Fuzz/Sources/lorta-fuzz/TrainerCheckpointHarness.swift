import Foundation
import LoRTA

// trainer.json of a training checkpoint. Resuming needs a task, so the harness builds once a tiny
// random BERT (vocabulary 12, d 8, 2 heads, 1 layer), a LoRA adapter and a two-class data set,
// trains two steps and saves a checkpoint; each input then replaces trainer.json and the run is
// resumed. The checkpoint id, a random UUID, is set to a fixed one in the saved files so that the
// committed seed (made the same way) matches them.

extension Harness {
    static let trainerCheckpoint = Harness(name: "trainer-checkpoint",
                                           summary: "Trainer(resumingFrom:) with trainer.json from the input (tiny BERT + LoRA)") {
        let (directory, task) = try TinyTrainingRun.checkpoint(in: Scratch.emptyDirectory("checkpoint"))
        let trainerJSON = directory.appendingPathComponent("trainer.json")
        return { data in
            do { try data.write(to: trainerJSON) } catch { fatalError("lorta-fuzz: cannot write \(trainerJSON.path): \(error)") }
            guard let trainer = try? Trainer(resumingFrom: directory, task: task) else { return }
            _ = trainer.parameters
            _ = trainer.optimizerState
        }
    }
}

enum TinyTrainingRun {
    static let checkpointID = "00000000-0000-4000-8000-000000000000"

    /// Trains the tiny run for two steps, saves it into `directory` with the fixed checkpoint id,
    /// and returns the directory and the task to resume it with.
    static func checkpoint(in directory: URL) throws -> (URL, SequenceClassificationTask) {
        let configuration = try BertConfiguration(vocabularySize: 12, hiddenSize: 8, layerCount: 1, headCount: 2,
                                                  intermediateSize: 16, maxPositionEmbeddings: 10)
        var weights = SafeTensorsWriter()
        var state: UInt32 = 7
        func tensor(_ shape: [Int], around center: Float = 0) throws -> Tensor {
            try Tensor((0..<shape.reduce(1, *)).map { _ in
                state = state &* 1_664_525 &+ 1_013_904_223
                return center + Float(Int32(bitPattern: state) >> 8) / Float(1 << 24)
            }, shape: shape)
        }
        var shapes: [(String, [Int])] = [
            ("embeddings.word_embeddings.weight", [12, 8]), ("embeddings.position_embeddings.weight", [10, 8]),
            ("embeddings.token_type_embeddings.weight", [2, 8]), ("embeddings.LayerNorm.weight", [8]),
            ("embeddings.LayerNorm.bias", [8]),
        ]
        let p = "encoder.layer.0."
        for m in ["query", "key", "value"] {
            shapes += [(p + "attention.self.\(m).weight", [8, 8]), (p + "attention.self.\(m).bias", [8])]
        }
        shapes += [(p + "attention.output.dense.weight", [8, 8]), (p + "attention.output.dense.bias", [8]),
                   (p + "attention.output.LayerNorm.weight", [8]), (p + "attention.output.LayerNorm.bias", [8]),
                   (p + "intermediate.dense.weight", [16, 8]), (p + "intermediate.dense.bias", [16]),
                   (p + "output.dense.weight", [8, 16]), (p + "output.dense.bias", [8]),
                   (p + "output.LayerNorm.weight", [8]), (p + "output.LayerNorm.bias", [8])]
        for (name, shape) in shapes {
            try weights.add(name, try tensor(shape, around: name.hasSuffix("LayerNorm.weight") ? 1 : 0))
        }
        let model = try BertModel(configuration: configuration, weights: try SafeTensorsReader(data: try weights.serialized()))
        let tokenizer = try BertTokenizer(vocabulary: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "good", "bad", "movie", "plot",
                                                       "fun", "dull", "boring", "slow"])
        let data = try LabelledTextDataset.parse("1\tgood fun movie\n0\tboring slow plot\n1\tgood plot\n0\tdull movie\n", labelCount: 2)
        let task = try SequenceClassificationTask(model: model, tokenizer: tokenizer, data: data,
                                                  head: try BertClassificationHead(hiddenSize: 8, classCount: 2, seed: 5),
                                                  maxLength: 8)
        let adapter = try LoRAAdapter(host: configuration.adapterHost, targets: ["query", "value"],
                                      configuration: LoRAConfiguration(rank: 2, alpha: 4), seed: 11)
        var trainer = try Trainer(task: task, adapter: adapter, configuration: TrainingConfiguration(steps: 2, batchSize: 2))
        _ = try trainer.train()
        try trainer.saveCheckpoint(to: directory)

        // The fixed checkpoint id, in trainer.json and trainable.safetensors.
        let jsonURL = directory.appendingPathComponent("trainer.json")
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: jsonURL)) as! [String: Any]
        json["checkpoint_id"] = checkpointID
        try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys]).write(to: jsonURL)
        let trainableURL = directory.appendingPathComponent("trainable.safetensors")
        let trainable = try SafeTensorsReader(contentsOf: trainableURL)
        var rewritten = SafeTensorsWriter()
        rewritten.metadata = trainable.metadata
        rewritten.metadata["checkpoint_id"] = checkpointID
        for entry in trainable.entries { try rewritten.add(entry.name, try trainable.tensor(entry.name)) }
        try rewritten.serialized().write(to: trainableURL)
        _ = try Trainer(resumingFrom: directory, task: task)   // the rewritten checkpoint resumes
        return (directory, task)
    }
}
