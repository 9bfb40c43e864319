import Foundation
@testable import LoRTA

// Shared helpers for tests that need a small random BERT (fast in debug builds).

/// A tiny random BERT (vocab 12, d = 8, 2 heads, `layers` layers, I = 16, 10 positions),
/// written as safetensors into a fresh temporary folder and loaded back. LayerNorm gains around
/// 1, every other weight uniform in ±0.5.
func tinyBertModel(seed: UInt64 = 91, layers: Int = 2) throws -> BertModel {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lorta-tiny-bert-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    return try tinyBertWrite(to: dir, seed: seed, layers: layers)
}

/// Writes the tiny BERT's `config.json` (plus `extraConfiguration` entries) and
/// `model.safetensors` (tensor names under `prefix`, then whatever `extra` adds) into `dir`
/// (created if needed) and returns the loaded model.
@discardableResult
func tinyBertWrite(to dir: URL, seed: UInt64 = 91, layers: Int = 2, prefix: String = "",
                   extraConfiguration: [String: Any] = [:],
                   extra: (inout SafeTensorsWriter) throws -> Void = { _ in }) throws -> BertModel {
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    var cfg: [String: Any] = [
        "model_type": "bert", "vocab_size": 12, "hidden_size": 8, "num_hidden_layers": layers,
        "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 10,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
    ]
    cfg.merge(extraConfiguration) { $1 }
    try JSONSerialization.data(withJSONObject: cfg).write(to: dir.appendingPathComponent("config.json"))
    var rng = LoRATestRNG(seed: seed)
    var shapes: [(String, [Int])] = [
        ("embeddings.word_embeddings.weight", [12, 8]), ("embeddings.position_embeddings.weight", [10, 8]),
        ("embeddings.token_type_embeddings.weight", [2, 8]), ("embeddings.LayerNorm.weight", [8]),
        ("embeddings.LayerNorm.bias", [8]),
    ]
    for l in 0..<layers {
        let p = "encoder.layer.\(l)."
        for m in ["query", "key", "value"] {
            shapes += [(p + "attention.self.\(m).weight", [8, 8]), (p + "attention.self.\(m).bias", [8])]
        }
        shapes += [(p + "attention.output.dense.weight", [8, 8]), (p + "attention.output.dense.bias", [8]),
                   (p + "attention.output.LayerNorm.weight", [8]), (p + "attention.output.LayerNorm.bias", [8]),
                   (p + "intermediate.dense.weight", [16, 8]), (p + "intermediate.dense.bias", [16]),
                   (p + "output.dense.weight", [8, 16]), (p + "output.dense.bias", [8]),
                   (p + "output.LayerNorm.weight", [8]), (p + "output.LayerNorm.bias", [8])]
    }
    var writer = SafeTensorsWriter()
    for (name, shape) in shapes {
        if name.hasSuffix("LayerNorm.weight") {
            try writer.add(prefix + name, try Tensor(rng.array(shape[0], scale: 0.3).map { 1 + $0 }, shape: shape))
        } else {
            try writer.add(prefix + name, rng.tensor(shape, scale: 0.5))
        }
    }
    try extra(&writer)
    try writer.write(to: dir.appendingPathComponent("model.safetensors"))
    return try BertModel(directory: dir)
}

/// A batch from explicit id rows, each padded with id 0 (mask 0) to `length`.
func tinyBertBatch(_ rows: [[Int32]], length: Int) -> TokenBatch {
    var ids: [Int32] = [], mask: [Int32] = []
    for r in rows {
        ids += r + [Int32](repeating: 0, count: length - r.count)
        mask += [Int32](repeating: 1, count: r.count) + [Int32](repeating: 0, count: length - r.count)
    }
    return TokenBatch(count: rows.count, sequenceLength: length, ids: ids, attentionMask: mask, lengths: rows.map(\.count))
}

/// A tokenizer over the tiny BERT's 12-token vocabulary: the 4 special tokens, then
/// `good bad movie plot fun dull boring slow`.
func tinyBertTokenizer() throws -> BertTokenizer {
    try BertTokenizer(vocabulary: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "good", "bad", "movie", "plot", "fun", "dull",
                                   "boring", "slow"])
}

/// A LoRTA adapter on a BERT shape with random non-zero factors: A and B uniform in ±`scale`,
/// C factors around 1 (1 ± 0.5), alpha = 2r.
func randomBertLoRTA(_ c: BertConfiguration, targets: [BertProjection], rank: Int, scale: Float,
                     seed: UInt64) throws -> LoRTAAdapter {
    var rng = LoRATestRNG(seed: seed)
    let cfg = try LoRTAConfiguration(rank: rank, alpha: 2 * Float(rank), targetModules: targets.map(\.rawValue),
                                     layerCount: c.layerCount, headCount: c.headCount, headDimension: c.headSize)
    let s = cfg.factorShapes
    func around1(_ shape: [Int]) throws -> Tensor {
        try Tensor(rng.array(shape.reduce(1, *), scale: 0.5).map { 1 + $0 }, shape: shape)
    }
    let f = LoRTAFactors(a: s.a.map { rng.tensor($0, scale: scale) }, b: rng.tensor(s.b, scale: scale),
                         cH: try around1(s.cH), cL: try around1(s.cL), cM: try around1(s.cM))
    return try LoRTAAdapter(configuration: cfg, factors: f)
}
