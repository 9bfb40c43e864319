import Foundation
import LoRTA
import LoRTAReport

/// The HTML report of `lorta monitor score --report`: the numbers come from the library
/// (scores, metrics, ROC points, separations); this only lays them out.
enum MonitorReportContent {
    /// - Parameters:
    ///   - truth: the labels (true = anomalous), if given; without them the "flagged" inputs of
    ///     the histogram and heat map are the 5% with the highest combined score.
    static func make(monitor: Monitor, scores: MonitorScores, evaluation: MonitorEvaluation?, truth: [Bool]?,
                     summary: [(key: String, value: String)]) throws -> MonitorReport {
        var sections: [ReportSection] = []
        var tables: [ReportSection] = []   // after the figures
        let n = scores.combined.count
        let flagged: [Bool]
        let flaggedName: String, otherName: String
        if let truth {
            flagged = truth
            flaggedName = "anomalous (label 1)"; otherName = "normal (label 0)"
        } else {
            let k = max(1, min(n - 1, Int((0.05 * Double(n)).rounded())))
            let threshold = scores.combined.sorted(by: >)[k - 1]
            flagged = scores.combined.map { $0 >= threshold }
            flaggedName = "top 5% by combined score"; otherName = "other inputs"
        }

        // Detection: the combination's and the best channels' ROC curves and a table of all channels.
        if let evaluation, let truth {
            sections.append(.heading("Detection", text: "ROC curves of the combined score and of every channel "
                                     + "(the legend names the best by AUROC). Labels: \(truth.filter { $0 }.count) anomalous, "
                                     + "\(truth.filter { !$0 }.count) normal inputs."))
            var curves = [ROCCurve(name: "combined (\(scores.combination.rawValue))",
                                   points: try DetectionMetrics.rocCurve(scores: scores.combined, labels: truth)
                                       .map { ROCPoint(fpr: $0.falsePositiveRate, tpr: $0.truePositiveRate) },
                                   auc: evaluation.combined.auroc)]
            for (i, (channel, s)) in evaluation.channels.enumerated() {
                curves.append(ROCCurve(name: channel.description,
                                       points: try DetectionMetrics.rocCurve(scores: scores.raw[i], labels: truth)
                                           .map { ROCPoint(fpr: $0.falsePositiveRate, tpr: $0.truePositiveRate) },
                                       auc: s.auroc))
            }
            sections.append(.rocCurves(ROCChart(title: "ROC: combined score and channels", curves: curves)))
            let order = evaluation.channels.indices.sorted { evaluation.channels[$0].summary.auroc > evaluation.channels[$1].summary.auroc }
            func row(_ name: String, _ s: DetectionSummary) -> [ReportTable.Cell] {
                [.text(name), .number(s.auroc, digits: 4), .number(s.averagePrecision, digits: 4),
                 .number(s.truePositiveRateAt1PercentFPR, digits: 3), .number(s.truePositiveRateAt5PercentFPR, digits: 3)]
            }
            tables.append(.heading("Every channel", text: nil))
            tables.append(.table(ReportTable(
                caption: "Every channel (site / detector), best AUROC first",
                header: ["channel", "AUROC", "average precision", "TPR at 1% FPR", "TPR at 5% FPR"],
                rows: [row("combined (\(scores.combination.rawValue))", evaluation.combined)]
                    + order.map { row(evaluation.channels[$0].channel.description, evaluation.channels[$0].summary) })))
        }

        // Score distributions: the combined score, and the channel that separates most.
        let separation = try scores.separation(flagged: flagged)
        sections.append(.heading("Score distributions", text: "Combined score (standardized units) and the channel whose "
                                 + "flagged inputs stand out most, \(flaggedName) against \(otherName)."))
        func split(_ values: [Double]) -> [ScoreHistogram.Series] {
            [ScoreHistogram.Series(name: otherName, scores: zip(values, flagged).filter { !$0.1 }.map(\.0)),
             ScoreHistogram.Series(name: flaggedName, scores: zip(values, flagged).filter { $0.1 }.map(\.0))]
        }
        sections.append(.histogram(ScoreHistogram(title: "combined score (\(scores.combination.rawValue))",
                                                  series: split(scores.combined), xLabel: "combined score")))
        if let best = separation.indices.max(by: { separation[$0] < separation[$1] }) {
            sections.append(.histogram(ScoreHistogram(title: "\(scores.channels[best])", series: split(scores.standardized[best]),
                                                      xLabel: "standardized score")))
        }

        // Layer × head map of the per-input Mahalanobis channels, and the MLPs and layers beside it.
        let shape = monitor.shape
        for reduction in Set(monitor.sites.map(\.reduction)).sorted(by: { $0.rawValue < $1.rawValue }) {
            var values = [[Double]](repeating: [Double](repeating: .nan, count: shape.headCount + 2), count: shape.layerCount)
            for (i, ch) in scores.channels.enumerated() where ch.detector == .mahalanobis && ch.site.reduction == reduction {
                switch ch.site.point {
                case .attentionHead(let l, let h): values[l][h] = separation[i]
                case .mlpOutput(let l): values[l][shape.headCount] = separation[i]
                case .layerOutput(let l): values[l][shape.headCount + 1] = separation[i]
                }
            }
            guard values.contains(where: { $0.contains { !$0.isNaN } }) else { continue }
            sections.append(.heading("Where the flagged inputs depart (\(reduction.rawValue) rows)",
                                     text: "Mean standardized Mahalanobis score of the \(flaggedName) minus that of the \(otherName), "
                                     + "per attention head, MLP and layer output (in units of the site's trusted spread)."))
            sections.append(.heatMap(HeatMap(title: "separation by site (\(reduction.rawValue))",
                                             rowLabels: (0..<shape.layerCount).map { "layer \($0)" },
                                             columnLabels: (0..<shape.headCount).map { "h\($0)" } + ["MLP", "output"],
                                             values: values, colorScheme: .diverging, showValues: shape.headCount <= 16, valueDigits: 1)))
        }
        return MonitorReport(title: "lorta monitor report", summary: summary, sections: sections + tables)
    }

    /// The report of `lorta monitor circuits --report`: a layer × head map of the ranking
    /// scores (MLP beside the heads), the ranked table, and the distributions of the sampled
    /// ablations' mean change of log p(ŷ). `scoreMeaning` says what the ranking's score is.
    static func circuits(shape: ObservationShape, ranking: CircuitRanking, scoreMeaning: String, flagged: CircuitEvidence,
                         reference: CircuitEvidence?, summary: [(key: String, value: String)], top: Int) throws -> MonitorReport {
        var sections: [ReportSection] = []
        var values = [[Double]](repeating: [Double](repeating: .nan, count: shape.headCount + 1), count: shape.layerCount)
        for r in ranking.components {
            switch r.component {
            case .attentionHead(let l, let h): values[l][h] = r.score
            case .mlp(let l): values[l][shape.headCount] = r.score
            }
        }
        sections.append(.heading("Contributions", text: scoreMeaning + " Higher = more specific to the flagged behaviour."))
        sections.append(.heatMap(HeatMap(title: "contribution by component", rowLabels: (0..<shape.layerCount).map { "layer \($0)" },
                                         columnLabels: (0..<shape.headCount).map { "h\($0)" } + ["MLP"], values: values,
                                         colorScheme: .diverging, showValues: shape.headCount <= 16, valueDigits: 2)))
        func effect(_ e: (effect: Double, standardError: Double)?) -> ReportTable.Cell {
            guard let e, e.effect.isFinite else { return .text("—") }
            // No standard error with fewer than 2 samples on a side: say so instead of "nan".
            return .text(e.standardError.isFinite ? String(format: "%+.3f ± %.3f", e.effect, e.standardError)
                                                  : String(format: "%+.3f ± —", e.effect))
        }
        sections.append(.table(ReportTable(
            caption: "Top \(top) components",
            header: ["rank", "component", "score", "separation", "onset", "attribution (flagged)", "attribution (reference)",
                     "sampled ablation effect (flagged)", "sampled ablation effect (reference)"],
            rows: ranking.components.prefix(top).enumerated().map { i, r in
                [.integer(i + 1), .text(r.component.description), .number(r.score, digits: 4),
                 r.anomalySeparation.map { .number($0, digits: 3) } ?? .text("—"), r.onset.map { .number($0, digits: 3) } ?? .text("—"),
                 .number(r.flaggedAttribution, digits: 4),
                 r.referenceAttribution.map { .number($0, digits: 4) } ?? .text("—"),
                 effect(r.flaggedAblationEffect), effect(r.referenceAblationEffect)]
            })))
        var series = [ScoreHistogram.Series(name: "flagged inputs", scores: flagged.samples.map(\.meanChange))]
        if let reference { series.append(ScoreHistogram.Series(name: "reference inputs", scores: reference.samples.map(\.meanChange))) }
        if series.allSatisfy({ !$0.scores.isEmpty }) {
            sections.append(.heading("Sampled ablations", text: "Each sample mean-ablates a random subset of components; the mean "
                                     + "change of log p(predicted class) over the input set, per sample."))
            sections.append(.histogram(ScoreHistogram(title: "mean change of log p(ŷ) per sampled ablation", series: series,
                                                      binCount: 20, xLabel: "mean change of log p(ŷ)")))
        }
        return MonitorReport(title: "lorta monitor circuits", summary: summary, sections: sections)
    }
}
