import Foundation
import LoRTA

/// `lorta info --model FILE|DIR`: what the library reports about a causal language model.
enum ModelInfo {
    static func print(path: String, json: Bool) throws {
        let s = try CausalLanguageModel.summary(of: URL(fileURLWithPath: path))
        let c = s.configuration
        let tokenizer: [String: Any]
        let tokenizerLine: String
        switch s.tokenizer {
        case .success(let t):
            tokenizer = ["vocabulary": t.vocabularySize, "merges": t.mergeCount, "pre_tokenizer": t.preTokenizer]
            tokenizerLine = "byte-level BPE, \(t.vocabularySize) tokens, \(t.mergeCount) merges; stop tokens "
                + s.stopTokens.map(String.init).joined(separator: ", ")
        case .failure(let problem):
            tokenizer = ["error": problem.description]
            tokenizerLine = "unavailable (\(problem))"
        }
        if json {
            Swift.print(jsonText([
                "path": s.path, "format": s.format, "architecture": s.architecture,
                "parameters": s.parameterCount, "weight_bytes": s.weightByteCount,
                "layers": c.layerCount, "hidden": c.hiddenSize, "intermediate": c.intermediateSize,
                "heads": c.headCount, "kv_heads": c.keyValueHeadCount, "head_dim": c.headDimension,
                "rotary_dim": c.rotaryDimension, "rope_theta": Double(c.ropeTheta),
                "rms_norm_eps": Double(c.rmsNormEpsilon), "context": c.contextLength,
                "tied_embeddings": c.tiedEmbeddings, "vocabulary": c.vocabularySize, "tokenizer": tokenizer,
                "matrix_types": s.matrixTypes,
                "chat_template": s.chatTemplate ?? "none", "stop_tokens": s.stopTokens.map { Int($0) },
            ] as [String: Any]))
            return
        }
        let types = s.matrixTypes.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
        Swift.print("""
        model: \(s.path) (\(s.format))
        architecture: \(s.architecture), \(c.layerCount) layers, width \(c.hiddenSize), MLP \(c.intermediateSize), \
        \(c.headCount) heads / \(c.keyValueHeadCount) key-value heads of \(c.headDimension)
        parameters: \(s.parameterCount); weights in memory: \(String(format: "%.1f", Double(s.weightByteCount) / 1e6)) MB
        matrices: \(types); norm vectors F32
        rotary: \(c.rotaryDimension) dims, base \(c.ropeTheta); RMSNorm eps \(c.rmsNormEpsilon); context \(c.contextLength); \
        output \(c.tiedEmbeddings ? "tied to the embedding" : "separate")
        vocabulary: \(c.vocabularySize); tokenizer: \(tokenizerLine)
        chat template: \(s.chatTemplate ?? "none")
        """)
    }
}
