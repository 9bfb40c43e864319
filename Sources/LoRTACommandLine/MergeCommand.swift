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
        other tensor is copied unchanged. Every value written must be finite in its dtype: a \
        merge that overflows (to infinity, or beyond an F16/BF16 weight's range) is refused, \
        naming the tensor and the first bad element. The output is written atomically, after \
        everything (the --json report included) succeeded: on any error no output file is left \
        behind and an existing one is untouched.

        With --model DIR instead of --base, OUT is a directory: the merged model.safetensors \
        plus every other top-level file of DIR (config.json, vocab.txt, tokenizer files; \
        symbolic links, as in a Hugging Face cache, are copied as the files they point to), and \
        the adapter directory's classifier.safetensors when there is one — a plain model \
        directory that `transformers` (AutoModel.from_pretrained) and `lorta` load directly. \
        It is built beside OUT and swapped in as a whole: with --overwrite, OUT ends up holding \
        exactly these files, and a failed merge leaves the previous OUT as it was.
        """)

    @Option(help: "The base checkpoint (.safetensors).")
    var base: String?

    @Option(help: "A model directory (config.json + model.safetensors): export a merged model directory to --out.")
    var model: String?

    @Option(help: "The adapter directory (adapter_config.json + adapter_model.safetensors).")
    var adapter: String

    @Option(help: "Where to write the merged checkpoint (.safetensors), or the merged model directory with --model.")
    var out: String

    @Flag(help: "With --model: replace an existing, non-empty output directory (as a whole: no earlier file is kept).")
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
        // Everything that can fail — the merge, its value checks, the report — happens before
        // the output is put in place.
        do {
            let outURL = URL(fileURLWithPath: out)
            let merged: MergedCheckpoint
            if let model {
                try OutputDirectory.check(outURL, overwrite: overwrite)
                merged = try AdapterMerger.merged(baseModel: URL(fileURLWithPath: model).appendingPathComponent("model.safetensors"),
                                                  adapterDirectory: URL(fileURLWithPath: adapter), unmerge: unmerge)
            } else {
                merged = try AdapterMerger.merged(baseModel: URL(fileURLWithPath: base!),
                                                  adapterDirectory: URL(fileURLWithPath: adapter), unmerge: unmerge)
            }
            let report = try report(merged.summary)
            if let model {
                try merged.writeModelDirectory(to: outURL, copyingFilesFrom: URL(fileURLWithPath: model), overwrite: overwrite)
            } else {
                try merged.write(to: outURL)
            }
            print(report)
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    /// What `run` prints: the JSON summary, or two lines.
    func report(_ summary: MergeSummary) throws -> String {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            return String(decoding: try encoder.encode(summary), as: UTF8.self)
        }
        return "\(summary.operation)d \(summary.adapterType) adapter: \(summary.tensorsChanged) of \(summary.tensorsTotal) tensors changed, max |ΔW| = \(summary.maxAbsDelta)\nwrote \(out)"
    }
}
