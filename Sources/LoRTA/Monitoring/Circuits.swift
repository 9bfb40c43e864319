import CKernels
import Foundation

/// One sampled ablation: a random subset of components mean-ablated together over an input set.
public struct AblationSample: Sendable, Equatable {
    /// Indices (into ``CircuitEvidence/components``) of the components ablated in this sample.
    public let ablated: [Int]
    /// Mean over the inputs of `y_ablated − y`, with `y = log p(ŷ | x)` at the class ŷ the
    /// model predicts without ablation.
    public let meanChange: Double
    /// Fraction of the inputs whose predicted class changes.
    public let flippedFraction: Double
    /// With pseudo-classes: the fraction of inputs whose mode (nearest pseudo-class) changes.
    public let modeChangedFraction: Double?
    /// With pseudo-classes: the mean squared Mahalanobis distance of the inputs to their mode.
    public let meanModeDistance: Double?
    /// With pseudo-classes: the mean log-volume of the inputs' modes.
    public let meanLogVolume: Double?
    /// With pseudo-classes: the mean participation ratio of the inputs' modes.
    public let meanParticipationRatio: Double?
}

/// What an input set says about the components (attention heads, MLPs) that carry the model's
/// behaviour on it: attribution patching per input, and sampled mean ablations.
public struct CircuitEvidence: Sendable {
    /// The components, sorted.
    public let components: [ModelComponent]
    /// Attribution patching: `attributions[i][k]` is the first-order change of `y = log p(ŷ | x_i)`
    /// when component k is mean-ablated (``BertModel/attributions(_:adapter:head:means:components:targetClasses:)``).
    public let attributions: [[Double]]
    /// The class each input is predicted without ablation.
    public let classes: [Int]
    /// Sampled ablations, in sampling order.
    public let samples: [AblationSample]
    /// Without ablation, with pseudo-classes: the mean distance of the inputs to their mode.
    public let baselineModeDistance: Double?

    /// Per component: the mean attribution over the inputs. O(inputs · components).
    public var meanAttribution: [Double] {
        let n = Double(max(attributions.count, 1))
        return components.indices.map { k in attributions.reduce(0) { $0 + $1[k] } / n }
    }

    /// Per component: how much the samples that ablate it differ from those that do not, in
    /// `value` (by default the mean change of y): the difference of the two means and its
    /// standard error `√(s₁²/n₁ + s₀²/n₀)` (NaN when either group has fewer than 2 samples).
    /// O(samples · components).
    public func ablationEffects(_ value: (AblationSample) -> Double = { $0.meanChange }) -> [(effect: Double, standardError: Double)] {
        components.indices.map { k in
            var with: [Double] = [], without: [Double] = []
            for s in samples { if s.ablated.contains(k) { with.append(value(s)) } else { without.append(value(s)) } }
            func moments(_ v: [Double]) -> (mean: Double, variance: Double) {
                let m = v.reduce(0, +) / Double(max(v.count, 1))
                return (m, v.count > 1 ? v.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(v.count - 1) : .nan)
            }
            let a = moments(with), b = moments(without)
            guard !with.isEmpty, !without.isEmpty else { return (.nan, .nan) }
            return (a.mean - b.mean, (a.variance / Double(with.count) + b.variance / Double(without.count)).squareRoot())
        }
    }
}

/// One component's place in a ``CircuitRanking``.
public struct RankedComponent: Sendable {
    public let component: ModelComponent
    /// The ranking score, by the ranking's ``CircuitRanking/Order``: the component's ``onset``,
    /// its ``anomalySeparation``, or how much more mean-ablating the component lowers the flagged
    /// inputs' `log p(ŷ)` than the reference inputs' (attribution patching). Higher = more
    /// specific to the flagged behaviour.
    public let score: Double
    /// How far the flagged inputs depart from the trusted behaviour at this component, beyond
    /// the reference inputs: the mean standardized Mahalanobis score of the flagged inputs minus
    /// that of the reference inputs at the component's sites (nil when not given; see
    /// ``CircuitRanking/separations(_:flagged:)``).
    public let anomalySeparation: Double?
    /// The separation the component adds to the residual stream it reads: its
    /// ``anomalySeparation`` minus that of the previous layer's output (nil when not given; see
    /// ``CircuitRanking/onsets(_:flagged:)``).
    public let onset: Double?
    /// Mean attribution over the flagged inputs.
    public let flaggedAttribution: Double
    /// Mean attribution over the reference inputs (nil without reference inputs).
    public let referenceAttribution: Double?
    /// Sampled-ablation effect on the flagged inputs' mean change of y, with its standard error.
    public let flaggedAblationEffect: (effect: Double, standardError: Double)
    /// The same on the reference inputs (nil without reference inputs).
    public let referenceAblationEffect: (effect: Double, standardError: Double)?
}

/// Components ranked by how specifically they carry the flagged inputs' behaviour.
public struct CircuitRanking: Sendable {
    /// Best first.
    public let components: [RankedComponent]

    /// What a ranking orders by.
    public enum Order: String, Sendable, CaseIterable, CustomStringConvertible {
        /// The monitor's separation at the component (``CircuitRanking/separations(_:flagged:)``).
        case anomaly
        /// The separation the component adds over its layer's input (``CircuitRanking/onsets(_:flagged:)``).
        case onset
        /// Attribution patching, flagged against reference inputs.
        case attribution
        public var description: String { rawValue }
    }

    /// Ranks the components of `flagged` (and `reference`, the same components) by `order`:
    /// their `onset` (see ``onsets(_:flagged:)``) or `anomalySeparation` (see
    /// ``separations(_:flagged:)``), components without a value last; or by attribution,
    /// `mean attribution(reference) − mean attribution(flagged)`, and without reference inputs
    /// `−mean attribution(flagged)`. Ties are broken by the component order. Without an order:
    /// onset when onsets are given, else anomaly when separations are, else attribution.
    /// O(components · (inputs + samples)).
    /// - Parameters:
    ///   - flagged: Evidence gathered on the flagged inputs.
    ///   - reference: Evidence gathered on reference (e.g. clean) inputs, with the same components.
    ///   - anomalySeparation: Per component, the monitor's separation of the flagged inputs.
    ///   - onset: Per component, the separation it adds over its layer's input.
    ///   - order: What to rank by.
    /// - Throws: ``CircuitError/invalidComponent(_:)`` when the two sets have other components;
    ///   ``CircuitError/missingRankingValues(_:)`` when `order` needs values that are not given.
    public init(flagged: CircuitEvidence, reference: CircuitEvidence? = nil,
                anomalySeparation: [ModelComponent: Double]? = nil, onset: [ModelComponent: Double]? = nil,
                by order: Order? = nil) throws {
        let order = order ?? (onset != nil ? .onset : anomalySeparation != nil ? .anomaly : .attribution)
        let values: [ModelComponent: Double]?
        switch order {
        case .onset: guard let onset else { throw CircuitError.missingRankingValues(order) }; values = onset
        case .anomaly: guard let anomalySeparation else { throw CircuitError.missingRankingValues(order) }; values = anomalySeparation
        case .attribution: values = nil
        }
        if let reference, reference.components != flagged.components {
            throw CircuitError.invalidComponent("the flagged and reference evidence have different components")
        }
        let af = flagged.meanAttribution, ar = reference?.meanAttribution
        let ef = flagged.ablationEffects(), er = reference?.ablationEffects()
        components = flagged.components.indices.map { k in
            let c = flagged.components[k]
            let separation = anomalySeparation?[c], added = onset?[c]
            let score = values.map { $0[c] ?? -.infinity } ?? (ar?[k] ?? 0) - af[k]
            return RankedComponent(component: c, score: score, anomalySeparation: separation, onset: added,
                                   flaggedAttribution: af[k], referenceAttribution: ar?[k],
                                   flaggedAblationEffect: ef[k], referenceAblationEffect: er?[k])
        }.sorted { $0.score != $1.score ? $0.score > $1.score : $0.component < $1.component }
    }

    /// Per component: the separation of `flagged` inputs (true) from the others in `scores` at
    /// the component's Mahalanobis channels (``MonitorScores/separation(flagged:)``) — the
    /// largest over the component's reductions when the monitor has several (a causal LM's
    /// mean-pooled and last-token rows), else its one channel; components without such a channel
    /// are absent. O(channels · inputs).
    /// - Throws: as ``MonitorScores/separation(flagged:)``.
    public static func separations(_ scores: MonitorScores, flagged: [Bool]) throws -> [ModelComponent: Double] {
        try siteSeparations(scores, flagged: flagged).components
    }

    /// Per component: where the flagged inputs' departure *starts* rather than where it is
    /// largest — the component's separation (``separations(_:flagged:)``) minus the separation of
    /// the residual stream it reads, the previous layer's output (the same largest-over-reductions
    /// rule; 0 for layer 0, whose input, the embeddings, has no observation point). A head that
    /// writes the anomaly into a clean stream keeps its whole separation; a later head that only
    /// reads an already anomalous stream keeps the little it adds. Components whose layer input has
    /// no Mahalanobis channel keep their separation. O(channels · inputs).
    /// - Throws: as ``MonitorScores/separation(flagged:)``.
    public static func onsets(_ scores: MonitorScores, flagged: [Bool]) throws -> [ModelComponent: Double] {
        let s = try siteSeparations(scores, flagged: flagged)
        var out: [ModelComponent: Double] = [:]
        for (c, value) in s.components {
            out[c] = value - (c.layer > 0 ? s.layerOutputs[c.layer - 1] ?? 0 : 0)
        }
        return out
    }

    /// The largest Mahalanobis separation per component and per layer output.
    private static func siteSeparations(_ scores: MonitorScores, flagged: [Bool]) throws
        -> (components: [ModelComponent: Double], layerOutputs: [Int: Double]) {
        let s = try scores.separation(flagged: flagged)
        var components: [ModelComponent: Double] = [:], layers: [Int: Double] = [:]
        for (i, ch) in scores.channels.enumerated() where ch.detector == .mahalanobis {
            let component: ModelComponent
            switch ch.site.point {
            case .attentionHead(let l, let h): component = .attentionHead(layer: l, head: h)
            case .mlpOutput(let l): component = .mlp(layer: l)
            case .layerOutput(let l): layers[l] = max(layers[l, default: -.infinity], s[i]); continue
            }
            components[component] = max(components[component, default: -.infinity], s[i])
        }
        return (components, layers)
    }

    /// The first `k` components that satisfy `filter` (e.g. heads only).
    public func top(_ k: Int, where filter: (ModelComponent) -> Bool = { _ in true }) -> [ModelComponent] {
        Array(components.lazy.map(\.component).filter(filter).prefix(max(k, 0)))
    }
}

/// What circuit evidence is gathered on: a model (with its adapter) whose output on a batch of its
/// inputs is a distribution over classes — a BERT classifier's head classes, a causal LM's next
/// token — with mean ablation and attribution patching of its components. One gathering routine
/// (``CircuitEvidence/gather(_:batches:means:components:samples:probability:seed:pseudoClasses:progress:)``)
/// serves every model that conforms.
protocol CircuitSubject {
    /// The shape of the model's observation points and components.
    var shape: ObservationShape { get }
    /// Output logits `[B, K]` of a forward with `ablation`, showing `observer` its activations.
    func logits(_ batch: TokenBatch, observer: ActivationObserver?, ablation: MeanAblation) throws -> Tensor
    /// Attribution patching of `components` for the batch's inputs, at their predicted classes.
    func attributions(_ batch: TokenBatch, means: MeanAblation, components: [ModelComponent]) throws -> ComponentAttributions
}

extension CircuitEvidence {
    /// Gathers the evidence of an input set (in `batches`) about its circuit on `subject`:
    /// attribution patching of every input for every component, then `samples` forwards with a
    /// random subset of components mean-ablated (each independently with `probability`, drawn
    /// from the counter-based generator with `seed`), recording per sample the change of
    /// `y = log p(ŷ | x)`, the fraction of flipped predictions and, with `pseudoClasses`, the
    /// change of each input's mode and its geometry at that site.
    static func gather(_ subject: some CircuitSubject, batches: [TokenBatch], means: MeanAblation,
                       components: [ModelComponent]?, samples: Int, probability: Double, seed: UInt64,
                       pseudoClasses: (site: MonitorSite, detector: PseudoClassDetector)?,
                       progress: ((String) -> Void)?) throws -> CircuitEvidence {
        guard samples >= 0 else { throw StatisticsError.invalidParameter("samples \(samples) must be >= 0") }
        guard probability > 0, probability < 1 else { throw StatisticsError.invalidParameter("ablation probability \(probability) must be in (0, 1)") }
        let comps = components ?? means.means.keys.sorted()
        let shape = subject.shape

        // Attribution patching and the unablated predictions.
        var values: [[Double]] = [], classes: [Int] = [], y0: [Double] = []
        for (i, batch) in batches.enumerated() {
            let a = try subject.attributions(batch, means: means, components: comps)
            values += a.values; classes += a.classes; y0 += a.logProbabilities
            progress?("attribution patching: batch \(i + 1)/\(batches.count)")
        }

        // One pass with `ablated` (empty: none): y at the unablated classes, argmax, and the geometry rows.
        func run(_ ablated: Set<ModelComponent>) throws -> (y: [Double], argmax: [Int], modes: [(mode: Int, score: Double)]?) {
            var ablation = means
            ablation.ablated = ablated
            ablation.strength = 1
            var y: [Double] = [], argmax: [Int] = []
            let recorder = try pseudoClasses.map { try SiteRowRecorder(sites: [$0.site], shape: shape) }
            for batch in batches {
                let z = try subject.logits(batch, observer: recorder, ablation: ablation)
                let k = z.shape[1]
                z.withUnsafeBufferPointer { zp in
                    for b in 0..<batch.count {
                        let row = zp[(b * k)..<((b + 1) * k)]
                        var top = -Double.infinity, best = 0
                        for (j, v) in row.enumerated() where Double(v) > top { top = Double(v); best = j }
                        let lse = top + Foundation.log(row.reduce(0.0) { $0 + Foundation.exp(Double($1) - top) })
                        y.append(Double(row[row.startIndex + classes[y.count]]) - lse)
                        argmax.append(best)
                    }
                }
            }
            let modes = try pseudoClasses.map { p in try p.detector.nearestModes(try recorder!.matrix(p.site)!) }
            return (y, argmax, modes)
        }
        let base = try run([])
        let n = Double(max(classes.count, 1))
        var drawn: [AblationSample] = []
        for s in 0..<samples {
            var ablated: [Int] = []
            for k in comps.indices {
                let u = Double(lt_rng_u64(seed, UInt64(s) &* UInt64(comps.count) &+ UInt64(k)) >> 11) / 9007199254740992.0
                if u < probability { ablated.append(k) }
            }
            let r = try run(Set(ablated.map { comps[$0] }))
            let change = zip(r.y, y0).reduce(0) { $0 + ($1.0 - $1.1) } / n
            let flipped = Double(zip(r.argmax, classes).filter { $0 != $1 }.count) / n
            var geometry: (Double, Double, Double, Double)? = nil
            if let modes = r.modes, let baseModes = base.modes, let p = pseudoClasses {
                let changed = Double(zip(modes, baseModes).filter { $0.mode != $1.mode }.count) / n
                let distance = modes.reduce(0) { $0 + $1.score } / n
                let volume = modes.reduce(0) { $0 + p.detector.modes[$1.mode].logVolume } / n
                let ratio = modes.reduce(0) { $0 + p.detector.modes[$1.mode].participationRatio } / n
                geometry = (changed, distance, volume, ratio)
            }
            drawn.append(AblationSample(ablated: ablated, meanChange: change, flippedFraction: flipped,
                                        modeChangedFraction: geometry?.0, meanModeDistance: geometry?.1,
                                        meanLogVolume: geometry?.2, meanParticipationRatio: geometry?.3))
            progress?("sampled ablations: \(s + 1)/\(samples)")
        }
        return CircuitEvidence(components: comps, attributions: values, classes: classes, samples: drawn,
                               baselineModeDistance: base.modes.map { $0.reduce(0) { $0 + $1.score } / n })
    }
}

/// A BERT classifier as a ``CircuitSubject``: the head's classes.
struct BertClassifierSubject: CircuitSubject {
    let model: BertModel
    let adapter: (any Adapter)?
    let head: BertClassificationHead
    var shape: ObservationShape { model.configuration.observationShape }
    func logits(_ batch: TokenBatch, observer: ActivationObserver?, ablation: MeanAblation) throws -> Tensor {
        let out = try model.forward(batch, adapter: adapter, observer: observer, ablation: ablation)
        return try BertModel.headForward(head, pooled: out.pooled, B: batch.count)
    }
    func attributions(_ batch: TokenBatch, means: MeanAblation, components: [ModelComponent]) throws -> ComponentAttributions {
        try model.attributions(batch, adapter: adapter, head: head, means: means, components: components)
    }
}

extension BertModel {
    /// Gathers the evidence of an input set about its circuit: attribution patching of every
    /// input for every component, then `samples` forwards with a random subset of components
    /// mean-ablated (each independently with `probability`, drawn from the counter-based
    /// generator with `seed`), recording per sample the change of `y = log p(ŷ | x)`, the
    /// fraction of flipped predictions and, with `pseudoClasses`, the change of each input's
    /// mode and its geometry at that site.
    /// - Parameters:
    ///   - data: the input set (labels are not used).
    ///   - tokenizer: tokenizes the texts.
    ///   - adapter: the adapter the model runs with (nil: the base encoder).
    ///   - head: the classification head whose `log p(ŷ)` is studied.
    ///   - means: the trusted means of the components (e.g. ``MeanAblation/init(monitor:components:ablated:strength:)``);
    ///     its ablated set is ignored.
    ///   - components: the components to study (default: every component with a mean).
    ///   - samples: sampled ablations (≥ 0; 0: attribution patching only).
    ///   - probability: chance that a component is ablated in a sample, in (0, 1).
    ///   - seed: seed of the counter-based generator that draws the subsets.
    ///   - pseudoClasses: a site and its pseudo-class detector (``Monitor/pseudoClasses``) for
    ///     the modes and geometry of each sample; nil: none.
    ///   - batchSize: inputs per forward.
    ///   - maxLength: tokens per input (truncated beyond).
    ///   - progress: called with a short description after each step.
    /// - Throws: ``CircuitError``, ``BertError``, ``StatisticsError``, ``MemoryError``.
    /// - Complexity: about 3 forwards of the data for the attributions, one per sample, and one
    ///   for the pseudo-class baseline.
    public func circuitEvidence(_ data: LabelledTextDataset, tokenizer: BertTokenizer, adapter: (any Adapter)? = nil,
                                head: BertClassificationHead, means: MeanAblation, components: [ModelComponent]? = nil,
                                samples: Int = 64, probability: Double = 0.1, seed: UInt64 = 0,
                                pseudoClasses: (site: MonitorSite, detector: PseudoClassDetector)? = nil,
                                batchSize: Int = 64, maxLength: Int = 64,
                                progress: ((String) -> Void)? = nil) throws -> CircuitEvidence {
        let loader = try BatchLoader(dataset: data, tokenizer: tokenizer, batchSize: batchSize, maxLength: maxLength,
                                     padding: .longest, shuffler: nil)
        return try CircuitEvidence.gather(BertClassifierSubject(model: self, adapter: adapter, head: head),
                                          batches: try loader.batches(epoch: 0).map(\.tokens), means: means,
                                          components: components, samples: samples, probability: probability, seed: seed,
                                          pseudoClasses: pseudoClasses, progress: progress)
    }
}
