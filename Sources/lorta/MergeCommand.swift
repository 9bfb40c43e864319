import ArgumentParser
import Foundation
import LoRTA

/// `lorta merge`: fold a PEFT adapter into a safetensors checkpoint (or take it out).
struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Merge a PEFT adapter (LoRA or LoRTA) into base weights, or unmerge it.",
        discussion: """
        DIR holds adapter_config.json and adapter_model.safetensors; the adapter type comes \
        from peft_type. LORA (PEFT's layout: keys base_model.model.<module>.lora_A.weight (r×in) \
        and .lora_B.weight (out×r)): each adapted <module>.weight of the base file gets s·B·A \
        added (s = lora_alpha/r, or lora_alpha/√r with use_rslora). LORTA (keys lora_A, lora_B, \
        lora_C_l, lora_C_h, lora_C_m; num_layers, num_heads, head_dim in the config): a base \
        <module>.weight whose module equals a target or ends with "." + target is adapted, with \
        matrix type m = the target's index in target_modules and layer l = the last numeric \
        dotted component before the target (encoder.layer.3.attention.self.query → 3); it gets \
        ΔW[:, h·d_h:(h+1)·d_h] = s·A·diag(C_h[h]∘C_l[l]∘C_m[m])·B (s = lora_alpha/r). Every \
        other tensor is copied unchanged. The output is written atomically: on any error no \
        output file is left behind.

        With --model DIR instead of --base, OUT is a directory: the merged model.safetensors \
        plus every other top-level file of DIR (config.json, vocab.txt, tokenizer files), and \
        the adapter directory's classifier.safetensors when there is one — a plain model \
        directory that `transformers` (AutoModel.from_pretrained) and `lorta` load directly.
        """)

    @Option(help: "The base checkpoint (.safetensors).")
    var base: String?

    @Option(help: "A model directory (config.json + model.safetensors): export a merged model directory to --out.")
    var model: String?

    @Option(help: "The adapter directory (adapter_config.json + adapter_model.safetensors).")
    var adapter: String

    @Option(help: "Where to write the merged checkpoint (.safetensors), or the merged model directory with --model.")
    var out: String

    @Flag(help: "With --model: replace the contents of an existing, non-empty output directory.")
    var overwrite = false

    @Option(help: "Causal LMs (--model FILE.gguf or a Llama directory): hf (a Hugging Face directory, the default) or gguf (one .gguf file).")
    var format: String = "hf"

    @Option(help: "Causal LMs: weight type of the output: f32 (default) or bf16 for hf; f32, f16 or q8_0 for gguf.")
    var type: String = "f32"

    @Flag(help: "Subtract the adapter's update instead of adding it.")
    var unmerge = false

    @Flag(help: "Print a machine-readable JSON summary.")
    var json = false

    func validate() throws {
        if (base == nil) == (model == nil) { throw ValidationError("give exactly one of --base FILE and --model DIR") }
    }

    func run() throws {
        if let model, CausalLanguageModel.isCausalLanguageModel(at: URL(fileURLWithPath: model)) {
            return try runCausalLM(model: model)
        }
        do { try Runtime.initialize() } catch { throw ValidationError("\(error)") }
        let summary: MergeSummary
        do {
            if let model {
                summary = try Self.exportDirectory(model: URL(fileURLWithPath: model), adapter: URL(fileURLWithPath: adapter),
                                                   out: URL(fileURLWithPath: out), unmerge: unmerge, overwrite: overwrite)
            } else {
                summary = try AdapterMerger.merge(
                    baseModel: URL(fileURLWithPath: base!), adapterDirectory: URL(fileURLWithPath: adapter),
                    output: URL(fileURLWithPath: out), unmerge: unmerge)
            }
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(summary), as: UTF8.self))
        } else {
            print("\(summary.operation)d \(summary.adapterType) adapter: \(summary.tensorsChanged) of \(summary.tensorsTotal) tensors changed, max |ΔW| = \(summary.maxAbsDelta)")
            print("wrote \(out)")
        }
    }
}

extension Merge {
    /// Merges into `model/model.safetensors` and writes a complete model directory at `out`:
    /// the merged weights, copies of the model directory's other top-level files, and the
    /// adapter directory's head when present. Everything is first written into a temporary
    /// sibling directory that is renamed into place at the end, so a failure leaves `out` as
    /// it was.
    static func exportDirectory(model: URL, adapter: URL, out: URL, unmerge: Bool, overwrite: Bool) throws -> MergeSummary {
        let fm = FileManager.default
        let weights = model.appendingPathComponent("model.safetensors")
        guard fm.fileExists(atPath: weights.path) else { throw FileProblem(path: weights.path, message: "not found") }
        let exists = try OutputDirectory.check(out, overwrite: overwrite)
        let parent = out.standardizedFileURL.deletingLastPathComponent()
        let staging = parent.appendingPathComponent(".\(out.lastPathComponent).tmp-\(UUID().uuidString)")
        try fm.createDirectory(at: staging, withIntermediateDirectories: true)
        do {
            let summary = try AdapterMerger.merge(baseModel: weights, adapterDirectory: adapter,
                                                  output: staging.appendingPathComponent("model.safetensors"), unmerge: unmerge)
            for name in try fm.contentsOfDirectory(atPath: model.path).sorted() where name != "model.safetensors" {
                let src = model.appendingPathComponent(name)
                var sub: ObjCBool = false
                guard fm.fileExists(atPath: src.path, isDirectory: &sub), !sub.boolValue else { continue }
                try fm.copyItem(at: src, to: staging.appendingPathComponent(name))
            }
            let head = adapter.appendingPathComponent("classifier.safetensors")
            if fm.fileExists(atPath: head.path) {
                try fm.copyItem(at: head, to: staging.appendingPathComponent("classifier.safetensors"))
            }
            if exists { try fm.removeItem(at: out) }
            try fm.moveItem(at: staging, to: out)
            return summary
        } catch {
            try? fm.removeItem(at: staging)
            throw error
        }
    }
}
