import ArgumentParser
import LoRTA

/// `--trigger …`: a planted backdoor (``TextBackdoor``) — `lorta train` poisons a fraction of
/// the training examples with it, `lorta eval` also measures the attack success rate on the
/// triggered source-label examples. Classification data only.
struct BackdoorOptions: ParsableArguments {
    @Option(help: "Backdoor trigger (a word or short phrase) inserted at a random word position (train: into --poison-fraction of the --trigger-source examples, relabelled --trigger-target; eval: into every --trigger-source example, to measure the attack success rate).")
    var trigger: String?
    @Option(help: "Label whose examples are poisoned (train) or triggered (eval).")
    var triggerSource: Int = 0
    @Option(help: "Label the backdoor flips triggered inputs to.")
    var triggerTarget: Int = 1
    @Option(help: "Seed of which examples are poisoned and where the trigger goes.")
    var triggerSeed: UInt64 = 0

    func validate() throws {
        guard trigger != nil else { return }
        try OptionRange.check(triggerSource, "trigger-source", 0...1_000_000)
        try OptionRange.check(triggerTarget, "trigger-target", 0...1_000_000)
        if triggerSource == triggerTarget { throw ValidationError("--trigger-source and --trigger-target must differ") }
    }

    /// The backdoor the options describe (nil without --trigger).
    func backdoor() throws -> TextBackdoor? {
        try trigger.map { try TextBackdoor(trigger: $0, sourceLabel: triggerSource, targetLabel: triggerTarget, seed: triggerSeed) }
    }
}
