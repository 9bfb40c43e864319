import Foundation
import Testing
@testable import LoRTA

/// Sampled ablations and the ranking, on the tiny BERT; checked against forwards and sums
/// computed here.
@Suite("Circuits: sampled ablations and ranking", .serialized)
struct CircuitEvidenceTests {
    static func data(_ count: Int, seed: UInt64, odd: Bool = false) throws -> LabelledTextDataset {
        let normal = ["good", "bad", "movie", "plot", "fun"], rare = ["dull", "boring", "slow"]
        var g = LoRTATestRNG(seed)
        let examples = (0..<count).map { i in
            LabelledText(label: i % 2, text: (0..<(3 + Int(g.next() % 4))).map { t in
                odd && t % 2 == 1 ? rare[Int(g.next() % 3)] : normal[Int(g.next() % 5)] }.joined(separator: " "))
        }
        return try LabelledTextDataset(examples: examples, labelCount: 2)
    }

    static func setUp() throws -> (BertModel, BertTokenizer, BertClassificationHead, MeanAblation, Monitor) {
        let model = try tinyBertModel()
        let tokenizer = try tinyBertTokenizer()
        let head = try BertClassificationHead(hiddenSize: model.configuration.hiddenSize, classCount: 2, seed: 3)
        let shape = model.configuration.observationShape
        let trusted = try data(60, seed: 1)
        let monitor = try Monitor.fit(sites: MonitorSite.all(shape, reductions: [.meanPooled]), detectors: [.mahalanobis],
                                      folds: 3, shape: shape, pseudoClasses: (2, nil)) { observer in
            _ = try model.evaluate(trusted, tokenizer: tokenizer, head: head, batchSize: 16, maxLength: 8, observer: observer)
        }
        return (model, tokenizer, head, try MeanAblation(monitor: monitor), monitor)
    }

    @Test func samplesAreWhatTheySay() throws {
        let (model, tokenizer, head, means, monitor) = try Self.setUp()
        let flagged = try Self.data(12, seed: 2, odd: true)
        let evidence = try model.circuitEvidence(flagged, tokenizer: tokenizer, head: head, means: means, samples: 24,
                                                 probability: 0.3, seed: 9, pseudoClasses: monitor.pseudoClasses,
                                                 batchSize: 5, maxLength: 8)
        let comps = ModelComponent.all(model.configuration.observationShape)
        #expect(evidence.components == comps)
        #expect(evidence.attributions.count == 12 && evidence.classes.count == 12)
        #expect(evidence.samples.count == 24)
        // Same seed, same subsets; another seed, other subsets.
        let again = try model.circuitEvidence(flagged, tokenizer: tokenizer, head: head, means: means, samples: 24,
                                              probability: 0.3, seed: 9, batchSize: 5, maxLength: 8)
        #expect(again.samples.map(\.ablated) == evidence.samples.map(\.ablated))
        #expect(again.samples.map(\.meanChange) == evidence.samples.map(\.meanChange), "the batch size does not matter")
        let other = try model.circuitEvidence(flagged, tokenizer: tokenizer, head: head, means: means, samples: 24,
                                              probability: 0.3, seed: 10, batchSize: 12, maxLength: 8)
        #expect(other.samples.map(\.ablated) != evidence.samples.map(\.ablated))
        let ablatedCount = evidence.samples.reduce(0) { $0 + $1.ablated.count }
        #expect(ablatedCount > 24 * 6 * 3 / 10 / 2 && ablatedCount < 24 * 6 * 3 / 10 * 2, "about 30% of 144 draws")

        // One sample by hand: the forward with its subset ablated, y at the unablated classes.
        let sample = try #require(evidence.samples.first { !$0.ablated.isEmpty })
        var ablation = means
        ablation.ablated = Set(sample.ablated.map { comps[$0] })
        let batch = tinyBertBatch(try flagged.examples.map { try tokenizer.encode($0.text, maxLength: 8) }, length: 8)
        let plain = try model.logits(batch, head: head)
        let ablated = try model.logits(batch, head: head, ablation: ablation)
        let classes = (0..<12).map { b in plain.scalars[2 * b] >= plain.scalars[2 * b + 1] ? 0 : 1 }
        #expect(classes == evidence.classes)
        func logp(_ z: Tensor) -> [Double] {
            (0..<12).map { b in
                let r = [Double(z.scalars[2 * b]), Double(z.scalars[2 * b + 1])]
                let top = r.max()!
                return r[classes[b]] - top - log(r.reduce(0) { $0 + exp($1 - top) })
            }
        }
        let change = zip(logp(ablated), logp(plain)).reduce(0) { $0 + $1.0 - $1.1 } / 12
        #expect(abs(sample.meanChange - change) <= 1e-5)
        let flips = (0..<12).filter { b in (ablated.scalars[2 * b] >= ablated.scalars[2 * b + 1] ? 0 : 1) != classes[b] }.count
        #expect(sample.flippedFraction == Double(flips) / 12)
        #expect(sample.modeChangedFraction != nil && sample.meanLogVolume != nil && evidence.baselineModeDistance != nil)

        // The effects: difference of means of the samples with and without the component.
        let effects = evidence.ablationEffects()
        for k in comps.indices {
            let with = evidence.samples.filter { $0.ablated.contains(k) }.map(\.meanChange)
            let without = evidence.samples.filter { !$0.ablated.contains(k) }.map(\.meanChange)
            let expected = with.reduce(0, +) / Double(with.count) - without.reduce(0, +) / Double(without.count)
            #expect(abs(effects[k].effect - expected) <= 1e-12)
            #expect(effects[k].standardError > 0)
        }
    }

    @Test func rankingContrastsFlaggedWithReference() throws {
        let (model, tokenizer, head, means, _) = try Self.setUp()
        let flagged = try model.circuitEvidence(try Self.data(10, seed: 2, odd: true), tokenizer: tokenizer, head: head,
                                                means: means, samples: 0, maxLength: 8)
        let reference = try model.circuitEvidence(try Self.data(10, seed: 4), tokenizer: tokenizer, head: head,
                                                  means: means, samples: 0, maxLength: 8)
        let ranking = try CircuitRanking(flagged: flagged, reference: reference)
        let af = flagged.meanAttribution, ar = reference.meanAttribution
        #expect(ranking.components.count == 6)
        for r in ranking.components {
            let k = flagged.components.firstIndex(of: r.component)!
            #expect(r.score == ar[k] - af[k])
            let column: [Double] = (0..<10).map { flagged.attributions[$0][k] }
            let mean: Double = column.reduce(0, +) / 10
            #expect(r.flaggedAttribution == mean)
        }
        #expect(ranking.components.map(\.score) == ranking.components.map(\.score).sorted(by: >))
        #expect(ranking.top(1) { if case .mlp = $0 { return true } else { return false } }.count == 1)
        #expect(try CircuitRanking(flagged: flagged).components.first?.score == -af.min()!)
        // Ranked by the monitor's separation: the given values, best first, whatever the attributions.
        let separation: [ModelComponent: Double] = [.mlp(layer: 0): 0.5, .attentionHead(layer: 1, head: 1): 2, .attentionHead(layer: 0, head: 0): -1]
        let byAnomaly = try CircuitRanking(flagged: flagged, reference: reference, anomalySeparation: separation)
        #expect(byAnomaly.components.prefix(3).map(\.component) == [.attentionHead(layer: 1, head: 1), .mlp(layer: 0), .attentionHead(layer: 0, head: 0)])
        #expect(byAnomaly.components[0].score == 2 && byAnomaly.components[0].anomalySeparation == 2)
        #expect(byAnomaly.components[3].anomalySeparation == nil)
        // Ranked by onset: the onset orders, the separation is carried along.
        let onset: [ModelComponent: Double] = [.mlp(layer: 0): 3, .attentionHead(layer: 1, head: 1): 0.25]
        let byOnset = try CircuitRanking(flagged: flagged, reference: reference, anomalySeparation: separation, onset: onset)
        #expect(byOnset.components.prefix(2).map(\.component) == [.mlp(layer: 0), .attentionHead(layer: 1, head: 1)])
        #expect(byOnset.components[0].score == 3 && byOnset.components[0].onset == 3 && byOnset.components[0].anomalySeparation == 0.5)
        #expect(byOnset.components[2].onset == nil && byOnset.components[2].score == -.infinity)
        #expect(try CircuitRanking(flagged: flagged, reference: reference, anomalySeparation: separation, onset: onset, by: .anomaly)
                    .components.map(\.component) == byAnomaly.components.map(\.component))
        #expect(throws: CircuitError.missingRankingValues(.onset)) {
            try CircuitRanking(flagged: flagged, reference: reference, anomalySeparation: separation, by: .onset)
        }
        #expect(throws: StatisticsError.self) {
            try model.circuitEvidence(try Self.data(4, seed: 2), tokenizer: tokenizer, head: head, means: means, probability: 1)
        }
    }

    /// `lorta monitor circuits` and `lorta eval --ablate`.
    @Test func commandLine() throws {
        let f = try TrainMemoryCLITests.Fixture()
        defer { try? FileManager.default.removeItem(at: f.root) }
        let adapter = f.path("adapter")
        try #require(try CLI.run(f.args(adapter, ["--adapter", "lora", "--rank", "2"])).status == 0)
        try (MonitorCLITests.lines(40, odd: false, seed: 1).joined(separator: "\n") + "\n").write(toFile: f.path("trusted.tsv"), atomically: true, encoding: .utf8)
        try (MonitorCLITests.lines(8, odd: true, seed: 3).joined(separator: "\n") + "\n").write(toFile: f.path("odd.tsv"), atomically: true, encoding: .utf8)
        let fit = try CLI.run(["monitor", "fit", "--model", f.model, "--adapter", adapter, "--trusted", f.path("trusted.tsv"),
                               "--out", f.path("mon"), "--max-length", "8", "--folds", "2", "--pseudo-classes", "2"])
        try #require(fit.status == 0, "\(fit.stderr)")
        let r = try CLI.run(["monitor", "circuits", "--monitor", f.path("mon"), "--data", f.path("odd.tsv"),
                             "--reference", f.path("trusted.tsv"), "--samples", "6", "--json", "--report", f.path("circuits.html")])
        try #require(r.status == 0, "\(r.stderr)")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let rows = try #require(result["components"] as? [[String: Any]])
        #expect(rows.count == 6)
        // Ranked by onset (the default): the score is the separation the component adds over its layer's input.
        #expect(rows.allSatisfy { ($0["onset"] as? Double) == ($0["score"] as? Double) })
        let scores = rows.compactMap { $0["score"] as? Double }
        #expect(scores == scores.sorted(by: >))
        #expect((result["flagged"] as? [String: Any])?["samples"] as? Int == 6)
        #expect(((result["flagged"] as? [String: Any])?["mode_changed"] as? [Double])?.count == 6)
        let heads = try #require(result["top_heads"] as? [String])
        #expect(!heads.isEmpty && heads.allSatisfy { $0.contains("attention.head") })
        // Every row has its onset, and the top heads of all three rankings are printed.
        #expect(rows.allSatisfy { $0["onset"] is Double })
        let by = try #require(result["top_heads_by"] as? [String: [String]])
        #expect(Set(by.keys) == ["anomaly", "onset", "attribution"] && by["onset"] == heads)
        let byAnomaly = try CLI.run(["monitor", "circuits", "--monitor", f.path("mon"), "--data", f.path("odd.tsv"),
                                     "--reference", f.path("trusted.tsv"), "--samples", "0", "--rank-by", "anomaly", "--json"])
        try #require(byAnomaly.status == 0, "\(byAnomaly.stderr)")
        let anomalyResult = try #require(try JSONSerialization.jsonObject(with: Data(byAnomaly.stdout.utf8)) as? [String: Any])
        let anomalyRows = try #require(anomalyResult["components"] as? [[String: Any]])
        #expect(anomalyRows.allSatisfy { ($0["anomaly_separation"] as? Double) == ($0["score"] as? Double) })
        #expect(anomalyResult["top_heads"] as? [String] == by["anomaly"])
        let noReference = try CLI.run(["monitor", "circuits", "--monitor", f.path("mon"), "--data", f.path("odd.tsv")])
        #expect(noReference.status != 0 && noReference.stderr.contains("--rank-by onset needs --reference"), "\(noReference.stderr)")
        let html = try String(contentsOfFile: f.path("circuits.html"), encoding: .utf8)
        #expect(html.components(separatedBy: "<svg").count - 1 == 2 && html.contains(heads[0]))

        // eval with the top heads ablated: another accuracy than without, and the components named.
        let base = try CLI.run(["eval", "--model", f.model, "--adapter", adapter, "--data", f.path("odd.tsv"), "--json"])
        let cut = try CLI.run(["eval", "--model", f.model, "--adapter", adapter, "--data", f.path("odd.tsv"), "--json",
                               "--monitor", f.path("mon"), "--ablate", "layer.0.mlp,layer.1.mlp," + heads.joined(separator: ",")])
        try #require(base.status == 0 && cut.status == 0, "\(base.stderr) \(cut.stderr)")
        let b = try #require(try JSONSerialization.jsonObject(with: Data(base.stdout.utf8)) as? [String: Any])
        let c = try #require(try JSONSerialization.jsonObject(with: Data(cut.stdout.utf8)) as? [String: Any])
        #expect((c["ablated"] as? [String])?.first == "layer.0.attention.head.0" || (c["ablated"] as? [String])?.contains("layer.0.mlp") == true)
        #expect(b["loss"] as? Double != c["loss"] as? Double)
        let bad = try CLI.run(["eval", "--model", f.model, "--adapter", adapter, "--data", f.path("odd.tsv"), "--ablate", "layer.0.mlp"])
        #expect(bad.status != 0 && bad.stderr.contains("--ablate and --monitor go together"), "\(bad.stderr)")
        let unknown = try CLI.run(["eval", "--model", f.model, "--adapter", adapter, "--data", f.path("odd.tsv"),
                                   "--monitor", f.path("mon"), "--ablate", "layer.7.mlp"])
        #expect(unknown.status == 1 && unknown.stderr.contains("layer.7.mlp"), "\(unknown.stderr)")
    }
}

extension CircuitEvidenceTests {
    /// `separations` takes the mean-pooled Mahalanobis channel of each head and MLP and
    /// computes the flagged-minus-others mean of its standardized scores.
    @Test func separationsComeFromTheMahalanobisChannels() throws {
        let (model, tokenizer, head, _, monitor) = try Self.setUp()
        let shape = model.configuration.observationShape
        let odd = try Self.data(10, seed: 2, odd: true), clean = try Self.data(10, seed: 4)
        let scores = try monitor.score(shape: shape) { observer in
            _ = try model.evaluate(odd, tokenizer: tokenizer, head: head, maxLength: 8, observer: observer)
            _ = try model.evaluate(clean, tokenizer: tokenizer, head: head, maxLength: 8, observer: observer)
        }
        let flagged = (0..<20).map { $0 < 10 }
        let s = try CircuitRanking.separations(scores, flagged: flagged)
        #expect(Set(s.keys) == Set(ModelComponent.all(shape)))
        let site = try MonitorSite(point: .attentionHead(layer: 1, head: 0), reduction: .meanPooled)
        let i = try #require(scores.channels.firstIndex(of: MonitorChannel(site: site, detector: .mahalanobis)))
        let z = scores.standardized[i]
        let expected = z[0..<10].reduce(0, +) / 10 - z[10..<20].reduce(0, +) / 10
        #expect(abs((s[.attentionHead(layer: 1, head: 0)] ?? .nan) - expected) <= 1e-12)

        // With two reductions per point, a component's separation is the larger of its two channels'.
        let trusted = try Self.data(60, seed: 1)
        let two = try Monitor.fit(sites: MonitorSite.all(shape, reductions: [.meanPooled, .firstToken]), detectors: [.mahalanobis],
                                  folds: 3, shape: shape) { observer in
            _ = try model.evaluate(trusted, tokenizer: tokenizer, head: head, batchSize: 16, maxLength: 8, observer: observer)
        }
        let scores2 = try two.score(shape: shape) { observer in
            _ = try model.evaluate(odd, tokenizer: tokenizer, head: head, maxLength: 8, observer: observer)
            _ = try model.evaluate(clean, tokenizer: tokenizer, head: head, maxLength: 8, observer: observer)
        }
        let s2 = try CircuitRanking.separations(scores2, flagged: flagged)
        let all = try scores2.separation(flagged: flagged)
        for c in ModelComponent.all(shape) {
            let channels = try [StatisticsCollector.Reduction.meanPooled, .firstToken].map { r in
                try #require(scores2.channels.firstIndex(of: MonitorChannel(site: try MonitorSite(point: c.observationPoint, reduction: r),
                                                                            detector: .mahalanobis)))
            }
            #expect(s2[c] == max(all[channels[0]], all[channels[1]]), "\(c)")
        }

        // Onsets: a component's separation minus the previous layer output's (largest over its
        // reductions), computed here from the channels directly; layer 0 keeps its separation.
        let onsets = try CircuitRanking.onsets(scores2, flagged: flagged)
        #expect(Set(onsets.keys) == Set(ModelComponent.all(shape)))
        for c in ModelComponent.all(shape) {
            let layer: Int
            switch c { case .attentionHead(let l, _): layer = l; case .mlp(let l): layer = l }
            var input = 0.0
            if layer > 0 {
                input = try [StatisticsCollector.Reduction.meanPooled, .firstToken].map { r in
                    all[try #require(scores2.channels.firstIndex(of: MonitorChannel(
                        site: try MonitorSite(point: .layerOutput(layer: layer - 1), reduction: r), detector: .mahalanobis)))]
                }.max()!
            }
            #expect(onsets[c] == s2[c]! - input, "\(c)")
        }
        #expect(onsets[.mlp(layer: 0)] == s2[.mlp(layer: 0)])
    }
}
