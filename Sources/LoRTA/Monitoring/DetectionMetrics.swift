/// Threshold-free metrics of anomaly scores (higher score = predicted anomalous; label
/// `true` = anomalous / positive). Ties between scores are handled exactly: a group of equal
/// scores moves the ROC / precision–recall curve in one step, as scikit-learn does.
public enum DetectionMetrics {
    /// Area under the ROC curve, equal to `sklearn.metrics.roc_auc_score` (trapezoidal rule
    /// over tie groups = Mann–Whitney U / (P·N) with ties counted ½), computed from integer
    /// counts with one final division. O(n log n).
    public static func auroc(scores: [Double], labels: [Bool]) throws -> Double {
        let g = try groups(scores, labels, "auroc")
        var twiceArea = 0.0   // Σ fp_g · (2·tp_before + tp_g), exact in Double below 2^53
        var tp = 0
        for (t, f) in g.groups {
            twiceArea += Double(f) * Double(2 * tp + t)
            tp += t
        }
        return twiceArea / (2 * Double(g.positives) * Double(g.negatives))
    }

    /// Average precision, equal to `sklearn.metrics.average_precision_score`:
    /// `Σ_k (R_k − R_{k−1}) P_k` over the distinct score thresholds, highest first. O(n log n).
    public static func averagePrecision(scores: [Double], labels: [Bool]) throws -> Double {
        let g = try groups(scores, labels, "averagePrecision")
        // Σ t_k · P_k, divided by the positives once at the end (a perfect ranking gives exactly 1).
        var sum = 0.0, tp = 0, fp = 0
        for (t, f) in g.groups {
            tp += t; fp += f
            if t > 0 { sum += Double(t) * (Double(tp) / Double(tp + fp)) }
        }
        return sum / Double(g.positives)
    }

    /// The largest true-positive rate of a score threshold whose false-positive rate is at
    /// most `falsePositiveRate` (ROC points only, no interpolation; the threshold +∞ gives
    /// (0, 0)). O(n log n).
    /// - Throws: ``StatisticsError/invalidParameter(_:)`` unless 0 ≤ rate ≤ 1.
    public static func truePositiveRate(atFalsePositiveRate rate: Double, scores: [Double], labels: [Bool]) throws -> Double {
        guard rate >= 0, rate <= 1 else { throw StatisticsError.invalidParameter("false-positive rate \(rate) outside [0, 1]") }
        let g = try groups(scores, labels, "truePositiveRate")
        var tp = 0, fp = 0, best = 0
        for (t, f) in g.groups {
            tp += t; fp += f
            if Double(fp) / Double(g.negatives) <= rate { best = tp }
        }
        return Double(best) / Double(g.positives)
    }

    /// The ROC curve: `(0, 0)`, then one point per group of equal scores, highest score first,
    /// ending at `(1, 1)` — the points whose trapezoids ``auroc(scores:labels:)`` sums (as
    /// `sklearn.metrics.roc_curve` with `drop_intermediate=False`). O(n log n).
    /// - Throws: as ``auroc(scores:labels:)``.
    public static func rocCurve(scores: [Double], labels: [Bool]) throws -> [(falsePositiveRate: Double, truePositiveRate: Double)] {
        let g = try groups(scores, labels, "rocCurve")
        var out: [(falsePositiveRate: Double, truePositiveRate: Double)] = [(0, 0)]
        var tp = 0, fp = 0
        for (t, f) in g.groups {
            tp += t; fp += f
            out.append((Double(fp) / Double(g.negatives), Double(tp) / Double(g.positives)))
        }
        return out
    }

    /// (positives, negatives) per group of equal scores, highest score first.
    private static func groups(_ scores: [Double], _ labels: [Bool], _ op: String)
        throws -> (groups: [(Int, Int)], positives: Int, negatives: Int) {
        guard scores.count == labels.count else { throw StatisticsError.labelCountMismatch(rows: scores.count, labels: labels.count) }
        guard scores.allSatisfy({ !$0.isNaN }) else { throw StatisticsError.nonFiniteValue(operation: op) }
        let positives = labels.reduce(0) { $0 + ($1 ? 1 : 0) }
        let negatives = labels.count - positives
        guard positives > 0, negatives > 0 else { throw StatisticsError.singleClass(operation: op) }
        let order = scores.indices.sorted { scores[$0] > scores[$1] }
        var out: [(Int, Int)] = []
        var i = 0
        while i < order.count {
            let v = scores[order[i]]
            var t = 0, f = 0
            while i < order.count, scores[order[i]] == v {
                if labels[order[i]] { t += 1 } else { f += 1 }
                i += 1
            }
            out.append((t, f))
        }
        return (out, positives, negatives)
    }
}
