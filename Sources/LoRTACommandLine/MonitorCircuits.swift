import ArgumentParser
import Foundation
import LoRTA

/// `lorta monitor circuits`: which attention heads and MLPs carry the behaviour of flagged inputs.
struct MonitorCircuits: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "circuits",
        abstract: "Rank the heads and MLPs that carry the flagged inputs' behaviour (attribution patching, sampled ablations).",
        discussion: """
        For every input of --data (the flagged ones) and of --reference (e.g. trusted or clean \
        inputs), attribution patching estimates how much mean-ablating each component (replacing \
        it by its trusted mean from the monitor) changes log p(predicted class) — for a causal LM, \
        log p(predicted next token) after the prompt, the first token of the answer. By default \
        (--rank-by onset) components are ranked by how much of the flagged inputs' departure \
        from the trusted behaviour they add to the residual stream they read: their separation \
        (the monitor's calibrated Mahalanobis score at the component, flagged minus reference \
        inputs) minus the previous layer output's, which points at where the departure starts \
        rather than where it is largest; --rank-by anomaly ranks by the separation itself; \
        --rank-by attribution by how much more ablating them lowers the flagged inputs' \
        prediction than the reference inputs'. With --json, the top heads of all three rankings are printed. --samples forwards with random subsets of components ablated \
        (each with --probability) measure each component's effect with a standard error, and, \
        with the monitor's pseudo-classes, the change of each input's mode and its geometry. \
        Check the ranking with `lorta eval --monitor MON --ablate COMPONENTS --trigger T` \
        (add --generate for a causal LM).
        """)

    @Option(help: "The monitor directory (`lorta monitor fit --out`): trusted means, model, adapter.")
    var monitor: String

    @Option(help: "The flagged inputs, in the format of `lorta train`/`eval`.")
    var data: String

    @Option(help: "Reference inputs to contrast with (e.g. clean inputs).")
    var reference: String?

    @Option(help: "Sampled ablations per input set (0: attribution patching only).")
    var samples = 64

    @Option(help: "Probability that a component is ablated in a sample.")
    var probability = 0.1

    @Option(help: "Seed of the sampled subsets.")
    var seed: UInt64 = 0

    @Option(help: "Components to print.")
    var top = 10

    @Option(help: "Rank by onset (the part of the flagged inputs' departure from the trusted behaviour a component adds over the previous layer's output), anomaly (the departure itself: the monitor's calibrated Mahalanobis scores per head and MLP, flagged minus reference inputs) or attribution (attribution patching of log p(predicted class)).")
    var rankBy = "onset"

    @Option(help: "Write a self-contained HTML report (layer × head map of the contributions, the ranking, the samples).")
    var report: String?

    @Option(help: "Override the model the monitor was fitted with.")
    var model: String?

    @Option(help: "Override the adapter the monitor was fitted with.")
    var adapter: String?

    @Option(help: "Kernel threads (default: all cores).")
    var threads: Int?

    @Flag(help: "Print the ranking as JSON to stdout.")
    var json = false

    @OptionGroup var memory: MemoryOptions

    func validate() throws {
        try OptionRange.check(samples, "samples", 0...100_000)
        try OptionRange.check(top, "top", 1...100_000)
        if let threads { try OptionRange.check(threads, "threads", 1...4096) }
        guard probability > 0, probability < 1 else { throw ValidationError("--probability must be in (0, 1), got \(probability)") }
        guard CircuitRanking.Order(rawValue: rankBy) != nil else {
            throw ValidationError("--rank-by must be anomaly, onset or attribution, got '\(rankBy)'")
        }
    }

    func run() throws {
        try reportingErrors {
            try memory.apply()
            try Runtime.initialize()
            if let threads { try Runtime.setThreadCount(threads) }
            let monitorURL = URL(fileURLWithPath: monitor)
            let fitted = try Monitor(contentsOf: monitorURL)
            let m = try MonitoredModel(monitor: monitorURL, model: model, adapter: adapter, batchSize: nil, maxLength: nil)
            let means = try MeanAblation(monitor: fitted)
            func evidence(_ path: String, _ name: String) throws -> CircuitEvidence {
                let terminal = isatty(2) != 0 && !json
                let progress: (String) -> Void = { step in
                    if terminal { FileHandle.standardError.write(Data("\r\u{1B}[K\(name): \(step)".utf8)) }
                }
                defer { if terminal { FileHandle.standardError.write(Data("\n".utf8)) } }
                if let e = m.encoder {
                    let dataset = try LabelledTextDataset.load(from: URL(fileURLWithPath: path), labelCount: e.head.classCount)
                    return try e.model.circuitEvidence(dataset, tokenizer: e.tokenizer, adapter: e.adapter, head: e.head, means: means,
                                                       samples: samples, probability: probability, seed: seed,
                                                       pseudoClasses: fitted.pseudoClasses, batchSize: m.batchSize,
                                                       maxLength: m.maxLength, progress: progress)
                }
                let lm = m.causal!
                let dataset = try CausalLMDataset.load(from: URL(fileURLWithPath: path), tokenizer: lm.tokenizer,
                                                       maxLength: m.maxLength, template: try? lm.chatTemplate())
                return try lm.model.circuitEvidence(dataset, adapter: lm.adapter, means: means, samples: samples,
                                                    probability: probability, seed: seed, pseudoClasses: fitted.pseudoClasses,
                                                    batchSize: m.batchSize, progress: progress)
            }
            let order = CircuitRanking.Order(rawValue: rankBy)!   // checked in validate()
            if order != .attribution && reference == nil {
                throw ValidationError("--rank-by \(rankBy) needs --reference inputs to contrast with")
            }
            let (gathered, seconds) = try timed { () throws -> (CircuitEvidence, CircuitEvidence?, MonitorScores?) in
                let flagged = try evidence(data, "flagged")
                let ref = try reference.map { try evidence($0, "reference") }
                // The monitor's scores of the flagged inputs, then the reference ones, in one pass.
                let scores = try reference.map { reference in
                    try fitted.score(shape: m.shape) { observer in
                        try m.pass(data, observer, { _, _ in })
                        try m.pass(reference, observer, { _, _ in })
                    }
                }
                return (flagged, ref, scores)
            }
            let (flagged, ref, scores) = gathered
            var separation: [ModelComponent: Double]? = nil, onset: [ModelComponent: Double]? = nil
            if let scores {
                let isFlagged = (0..<scores.combined.count).map { $0 < flagged.classes.count }
                separation = try CircuitRanking.separations(scores, flagged: isFlagged)
                onset = try CircuitRanking.onsets(scores, flagged: isFlagged)
            }
            // Every ranking the evidence allows (all three with reference inputs), the chosen one first.
            var rankings: [CircuitRanking.Order: CircuitRanking] = [:]
            for o in CircuitRanking.Order.allCases where o == .attribution || scores != nil {
                rankings[o] = try CircuitRanking(flagged: flagged, reference: ref, anomalySeparation: separation, onset: onset, by: o)
            }
            let ranked = rankings[order]!
            let isHead: (ModelComponent) -> Bool = { if case .attentionHead = $0 { return true } else { return false } }
            func effect(_ e: (effect: Double, standardError: Double)?) -> Any {
                guard let e else { return NSNull() }
                return ["effect": e.effect, "standard_error": e.standardError]
            }
            let rows: [[String: Any]] = ranked.components.map { r in
                var row: [String: Any] = ["component": r.component.description, "score": r.score,
                                          "anomaly_separation": r.anomalySeparation.map { $0 as Any } ?? NSNull(),
                                          "onset": r.onset.map { $0 as Any } ?? NSNull(),
                                          "flagged_attribution": r.flaggedAttribution,
                                          "flagged_ablation": effect(r.flaggedAblationEffect)]
                if let a = r.referenceAttribution { row["reference_attribution"] = a }
                if let a = r.referenceAblationEffect { row["reference_ablation"] = effect(a) }
                return row
            }
            func sampleSummary(_ e: CircuitEvidence) -> [String: Any] {
                var out: [String: Any] = ["inputs": e.classes.count, "samples": e.samples.count,
                                          "mean_change": e.samples.map(\.meanChange), "flipped": e.samples.map(\.flippedFraction)]
                if let d = e.baselineModeDistance {
                    out["baseline_mode_distance"] = d
                    out["mode_changed"] = e.samples.compactMap(\.modeChangedFraction)
                    out["mode_distance"] = e.samples.compactMap(\.meanModeDistance)
                    out["log_volume"] = e.samples.compactMap(\.meanLogVolume)
                    out["participation_ratio"] = e.samples.compactMap(\.meanParticipationRatio)
                }
                return out
            }
            var result: [String: Any] = ["components": rows, "flagged": sampleSummary(flagged), "seconds": seconds,
                                         "rank_by": rankBy, "top_heads": ranked.top(top, where: isHead).map(\.description),
                                         "top_heads_by": Dictionary(uniqueKeysWithValues: rankings.map { ($0.key.rawValue, $0.value.top(top, where: isHead).map(\.description)) })]
            if let ref { result["reference"] = sampleSummary(ref) }
            if let report {
                let summary: [(key: String, value: String)] = [
                    ("monitor", monitor), ("flagged inputs", "\(data) (\(flagged.classes.count))"),
                    ("reference inputs", reference.map { "\($0) (\(ref?.classes.count ?? 0))" } ?? "none"),
                    ("sampled ablations", "\(samples) per input set, each component with probability \(probability), seed \(seed)"),
                    ("top heads", (result["top_heads"] as? [String] ?? []).joined(separator: ", ")),
                ]
                let meaning: String
                switch order {
                case .anomaly: meaning = "The monitor's separation: how far the flagged inputs depart from the trusted behaviour at "
                    + "each component (mean standardized Mahalanobis score), beyond the reference inputs."
                case .onset: meaning = "Onset: the separation each component adds over the residual stream it reads (its separation "
                    + "minus the previous layer output's)."
                case .attribution: meaning = "Attribution patching: how much more mean-ablating each component lowers log p(predicted "
                    + "class) of the flagged inputs than of the reference inputs."
                }
                try MonitorReportContent.circuits(shape: fitted.shape, ranking: ranked, scoreMeaning: meaning, flagged: flagged, reference: ref,
                                                  summary: summary, top: top).write(to: URL(fileURLWithPath: report))
            }
            if json {
                print(jsonText(result))
                return
            }
            switch order {
            case .anomaly:
                print("components ranked by how far the flagged inputs depart from the trusted behaviour there, beyond the reference inputs:")
            case .onset:
                print("components ranked by how much of the flagged inputs' departure from the trusted behaviour they add to the residual stream they read:")
            case .attribution:
                print("components ranked by how much more ablating them lowers the flagged inputs' log p(predicted class)"
                      + (ref == nil ? ":" : " than the reference inputs':"))
            }
            print("  rank  component                      score    attribution flagged / reference    sampled ablation effect ± s.e. (flagged)")
            for (i, r) in ranked.components.prefix(top).enumerated() {
                let name = r.component.description.padding(toLength: 30, withPad: " ", startingAt: 0)
                let refText = r.referenceAttribution.map { String(format: "%+.4f", $0) } ?? "—"
                print(String(format: "  %4d  ", i + 1) + name + String(format: " %+.4f   %+.4f / ", r.score, r.flaggedAttribution) + refText
                      + String(format: "             %+.4f ± %.4f", r.flaggedAblationEffect.effect, r.flaggedAblationEffect.standardError))
            }
        }
    }
}
