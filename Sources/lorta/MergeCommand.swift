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
        """)

    @Option(help: "The base checkpoint (.safetensors).")
    var base: String

    @Option(help: "The adapter directory (adapter_config.json + adapter_model.safetensors).")
    var adapter: String

    @Option(help: "Where to write the merged checkpoint (.safetensors).")
    var out: String

    @Flag(help: "Subtract the adapter's update instead of adding it.")
    var unmerge = false

    @Flag(help: "Print a machine-readable JSON summary.")
    var json = false

    func run() throws {
        do { try Runtime.initialize() } catch { throw ValidationError("\(error)") }
        let summary: MergeSummary
        do {
            summary = try AdapterMerger.merge(
                baseModel: URL(fileURLWithPath: base), adapterDirectory: URL(fileURLWithPath: adapter),
                output: URL(fileURLWithPath: out), unmerge: unmerge)
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
