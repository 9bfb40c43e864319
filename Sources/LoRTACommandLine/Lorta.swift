import ArgumentParser
import LoRTA

/// The `lorta` command: its subcommands.
package struct Lorta: ParsableCommand {
    package init() {}

    package static let configuration = CommandConfiguration(
        commandName: "lorta",
        abstract: "LoRA / LoRTA fine-tuning, adapter merging and activation monitoring on the CPU.",
        version: LoRTAVersion.string,
        subcommands: [Info.self, Train.self, Eval.self, Merge.self, Stats.self, Detect.self, MonitorCommand.self, Generate.self, Perplexity.self]
    )
}
