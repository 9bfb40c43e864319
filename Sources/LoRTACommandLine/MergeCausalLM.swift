import ArgumentParser
import Foundation
import LoRTA

/// `lorta merge --model FILE.gguf|DIR`: a causal LM with the adapter merged, as a Hugging Face
/// directory or a GGUF file.
extension Merge {
    func runCausalLM(model: String) throws {
        try reportingErrors {
            try Runtime.initialize()
            let exportFormat: LlamaExportFormat
            switch (format, type) {
            case ("hf", "f32"): exportFormat = .huggingFace(dtype: .float32)
            case ("hf", "bf16"): exportFormat = .huggingFace(dtype: .bfloat16)
            case ("gguf", "f32"): exportFormat = .gguf(type: .f32)
            case ("gguf", "f16"): exportFormat = .gguf(type: .f16)
            case ("gguf", "q8_0"): exportFormat = .gguf(type: .q8_0)
            default:
                throw ValidationError("--format \(format) --type \(type) is not available: use --format hf with --type f32|bf16, or --format gguf with --type f32|f16|q8_0")
            }
            if unmerge { throw ValidationError("--unmerge applies to --base checkpoints; a merged causal LM is exported, not changed in place") }
            let llama = try LlamaModel(contentsOf: URL(fileURLWithPath: model))
            let adapterURL = URL(fileURLWithPath: adapter)
            let loaded = try AdapterFiles.load(from: adapterURL, host: llama.adapterHost)
            let merged = try llama.mergedWeights(with: loaded)
            // The report is made before the export puts anything in place.
            let report = json
                ? jsonText(["operation": "merge", "adapter": loaded.summary, "matrices_changed": merged.count, "format": format, "type": type, "out": out])
                : "merged \(loaded.summary): \(merged.count) matrices changed\n"
                    + "wrote \(out) (\(format == "hf" ? "Hugging Face directory" : "GGUF"), \(type))"
            try llama.export(to: URL(fileURLWithPath: out), format: exportFormat, replacing: merged, overwrite: overwrite)
            print(report)
        }
    }

}
