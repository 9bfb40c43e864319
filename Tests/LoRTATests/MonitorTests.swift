import Foundation
import Testing
@testable import LoRTA

/// Inputs for the tiny BERT: `count` sequences of 3–7 tokens; trusted ones draw from the
/// "normal" vocabulary (ids 4–8), anomalous ones put a rare token (ids 9–11) in every other place.
private func monitorInputs(_ count: Int, anomalous: Bool, seed: UInt64) -> [[Int32]] {
    var g = LoRTATestRNG(seed)
    return (0..<count).map { _ in
        let length = 3 + Int(g.next() % 5)
        return (0..<length).map { t in
            anomalous && t % 2 == 1 ? Int32(9 + g.next() % 3) : Int32(4 + g.next() % 5)
        }
    }
}

/// A pass over `rows` in batches of 16 (the shape a `Monitor` expects).
private func pass(_ model: BertModel, _ rows: [[Int32]]) -> (ActivationObserver) throws -> Void {
    { observer in
        for lo in stride(from: 0, to: rows.count, by: 16) {
            let chunk = Array(rows[lo..<min(lo + 16, rows.count)])
            _ = try model.forward(tinyBertBatch(chunk, length: 8), observer: observer)
        }
    }
}

@Suite("Monitor", .serialized)
struct MonitorTests {
    static let trusted = monitorInputs(120, anomalous: false, seed: 1)

    static func fitted(_ model: BertModel, detectors: [MonitorDetector] = MonitorDetector.allCases) throws -> Monitor {
        let shape = model.configuration.observationShape
        return try Monitor.fit(sites: MonitorSite.all(shape, reductions: [.meanPooled, .firstToken]), detectors: detectors,
                               folds: 4, shape: shape, pseudoClasses: (2, nil), observing: pass(model, trusted))
    }

    /// The statistics equal those of a `StatisticsCollector` over the same pass; the calibration
    /// equals one recomputed by hand from out-of-fold Mahalanobis scores (input i in fold i mod 4).
    @Test func fitMatchesAnIndependentComputation() throws {
        let model = try tinyBertModel()
        let shape = model.configuration.observationShape
        let monitor = try Self.fitted(model)
        #expect(monitor.sites.count == ObservationPoint.all(shape).count * 2)
        #expect(monitor.trustedCount == 120)
        #expect(monitor.channels(batch: false).count == monitor.sites.count)
        #expect(monitor.channels(batch: true).count == monitor.sites.count * 3)

        let site = try MonitorSite(point: .mlpOutput(layer: 1), reduction: .meanPooled)
        let collector = try StatisticsCollector(points: [site.point], shape: shape, reduction: .meanPooled)
        try pass(model, Self.trusted)(collector)
        let direct = try #require(collector.statistics[site.point]), merged = try #require(monitor.statistics[site])
        #expect(direct.count == merged.count)
        for (a, b) in zip(direct.mean, merged.mean) { #expect(abs(a - b) <= 1e-12 * max(1, abs(a))) }
        for (a, b) in zip(direct.scatter, merged.scatter) { #expect(abs(a - b) <= 1e-10 * max(1, abs(a))) }

        // Out-of-fold scores by hand.
        let recorder = try SiteRowRecorder(sites: [site], shape: shape)
        try pass(model, Self.trusted)(recorder)
        let rows = try #require(try recorder.matrix(site))
        let d = rows.shape[1], all = rows.scalars
        var outOfFold = [Double](repeating: 0, count: 120)
        for f in 0..<4 {
            let train = (0..<120).filter { $0 % 4 != f }, test = (0..<120).filter { $0 % 4 == f }
            func pick(_ idx: [Int]) throws -> Tensor { try Tensor(idx.flatMap { Array(all[($0 * d)..<($0 * d + d)]) }, shape: [idx.count, d]) }
            var detector = MahalanobisDetector(mode: .global, estimator: .ledoitWolf)
            try detector.fit(pick(train))
            for (i, s) in zip(test, try detector.scores(pick(test))) { outOfFold[i] = s }
        }
        let sorted = outOfFold.sorted()
        let median = (sorted[59] + sorted[60]) / 2
        let u = outOfFold.map { log1p($0 / median) }
        let mu = u.reduce(0, +) / 120
        let sd = (u.map { ($0 - mu) * ($0 - mu) }.reduce(0, +) / 119).squareRoot()
        let c = try #require(monitor.calibration[MonitorChannel(site: site, detector: .mahalanobis)])
        #expect(abs(c.median - median) <= 1e-9 * median)
        #expect(abs(c.mean - mu) <= 1e-9 * max(1, abs(mu)))
        #expect(abs(c.standardDeviation - sd) <= 1e-9 * sd)
    }

    /// A fit whose pass sees one shard and whose row combiner supplies the other shards' rows in
    /// order (as `lorta-mpi monitor-fit` does with MPI) is the fit over all the inputs, bit for
    /// bit; a combiner that returns broken rows is refused.
    @Test func shardedPassWithCombinedRowsEqualsTheWholePass() throws {
        let model = try tinyBertModel()
        let shape = model.configuration.observationShape
        let sites = try MonitorSite.all(shape, reductions: [.meanPooled])
        let whole = try Monitor.fit(sites: sites, folds: 4, shape: shape, observing: pass(model, Self.trusted))
        // Shards of whole batches (48 and 72 inputs): record the second one's rows per site first.
        let first = Array(Self.trusted.prefix(48)), second = Array(Self.trusted.dropFirst(48))
        let other = try SiteRowRecorder(sites: sites, shape: shape)
        try pass(model, second)(other)
        var siteIndex = 0
        let sharded = try Monitor.fit(sites: sites, folds: 4, shape: shape, observing: pass(model, first),
                                      combiningRows: { mine in
                                          defer { siteIndex += 1 }
                                          return mine + (try other.matrix(other.sites[siteIndex])!.scalars)
                                      })
        #expect(sharded.trustedCount == 120)
        for site in whole.sites {
            #expect(whole.statistics[site]!.mean == sharded.statistics[site]!.mean, "\(site)")
            #expect(whole.statistics[site]!.scatter == sharded.statistics[site]!.scatter, "\(site)")
        }
        #expect(whole.calibration == sharded.calibration)
        #expect(throws: ObservationError.self) {
            try Monitor.fit(sites: sites, folds: 4, shape: shape, observing: pass(model, first),
                            combiningRows: { $0 + [1, 2, 3] })
        }
    }

    /// Inputs with rare tokens score higher than new trusted-like inputs, per input and as a
    /// batch; the combinations are what their definitions say.
    @Test func anomalousInputsScoreHigher() throws {
        let model = try tinyBertModel()
        let shape = model.configuration.observationShape
        let monitor = try Self.fitted(model)
        let clean = monitorInputs(40, anomalous: false, seed: 2), odd = monitorInputs(40, anomalous: true, seed: 3)
        let labels = [Bool](repeating: false, count: 40) + [Bool](repeating: true, count: 40)
        for batch in [false, true] {
            let scores = try monitor.score(shape: shape, batch: batch, observing: pass(model, clean + odd))
            #expect(scores.combined.count == 80)
            #expect(scores.channels == monitor.channels(batch: batch))
            let evaluation = try scores.evaluation(labels: labels)
            #expect(evaluation.combined.auroc > 0.9, "batch \(batch): \(evaluation.combined)")
            // max: the largest standardized score; standardized = the calibration applied to raw.
            for i in [0, 41, 79] {
                #expect(scores.combined[i] == scores.standardized.map { $0[i] }.max()!)
                let ch = scores.channels[3], c = monitor.calibration[ch]!
                #expect(scores.standardized[3][i] == (log1p(max(scores.raw[3][i], 0) / c.median) - c.mean) / c.standardDeviation)
            }
            let mean = try monitor.combine(channels: scores.channels, raw: scores.raw, batch: batch, combination: .mean)
            for i in [0, 41] {
                let z = scores.standardized.map { $0[i] }
                #expect(abs(mean.combined[i] - z.reduce(0, +) / Double(z.count)) <= 1e-12 * max(1, abs(mean.combined[i])))
            }
            let maha = try monitor.combine(channels: scores.channels, raw: scores.raw, batch: batch, combination: .mahalanobis)
            #expect(try DetectionSummary(scores: maha.combined, labels: labels).auroc > 0.9)
        }
        // Per-input scores do not depend on the other inputs; batch scores do.
        let alone = try monitor.score(shape: shape, observing: pass(model, Array(odd.prefix(16))))
        let together = try monitor.score(shape: shape, observing: pass(model, Array(odd.prefix(16)) + clean))
        #expect(alone.combined == Array(together.combined.prefix(16)))
    }

    /// Writing and reading give the same monitor (same scores bit for bit); damaged files are
    /// refused with the file named.
    @Test func filesRoundTripAndDamageIsReported() throws {
        let model = try tinyBertModel()
        let shape = model.configuration.observationShape
        let monitor = try Self.fitted(model)
        let dir = try testScratchDirectory("monitor-files")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("mon")
        try monitor.write(to: url, source: ["model": "/m"])
        let back = try Monitor(contentsOf: url)
        #expect(try Monitor.source(of: url) == ["model": "/m"])
        #expect(back.sites == monitor.sites && back.detectors == monitor.detectors && back.folds == 4)
        #expect(back.calibration == monitor.calibration)
        // The pseudo-classes: fitted at the last layer's output on the trusted rows, read back equal.
        let geometry = try #require(monitor.pseudoClasses)
        #expect(geometry.site == (try MonitorSite(point: .layerOutput(layer: 1), reduction: .meanPooled)))
        #expect(geometry.detector.modes.map(\.size).reduce(0, +) == 120)
        #expect(back.pseudoClasses?.site == geometry.site && back.pseudoClasses?.detector == geometry.detector)
        let inputs = monitorInputs(20, anomalous: true, seed: 4)
        for batch in [false, true] {
            let a = try monitor.score(shape: shape, batch: batch, observing: pass(model, inputs))
            let b = try back.score(shape: shape, batch: batch, observing: pass(model, inputs))
            #expect(a.combined == b.combined)
        }
        // Another model's shape is refused.
        let other = try tinyBertModel(layers: 3)
        #expect(throws: ObservationError.self) {
            try back.score(shape: other.configuration.observationShape, observing: pass(other, inputs))
        }
        // Damage: a calibration with no spread, a missing statistics file, another format.
        let json = url.appendingPathComponent("monitor.json")
        let text = try String(contentsOf: json, encoding: .utf8)
        try text.replacingOccurrences(of: "\"format\" : \"lorta-monitor-1\"", with: "\"format\" : \"lorta-monitor-0\"")
            .write(to: json, atomically: true, encoding: .utf8)
        let e1 = #expect(throws: MonitorFileError.self) { try Monitor(contentsOf: url) }
        #expect(e1?.description.contains("format \"lorta-monitor-0\" is not lorta-monitor-1") == true)
        try text.replacingOccurrences(of: "\"standard_deviation\" : ", with: "\"standard_deviation\" : -")
            .write(to: json, atomically: true, encoding: .utf8)
        let e2 = #expect(throws: MonitorFileError.self) { try Monitor(contentsOf: url) }
        #expect(e2?.reason.contains("positive median and spread") == true)
        try text.write(to: json, atomically: true, encoding: .utf8)
        try FileManager.default.removeItem(at: url.appendingPathComponent("statistics").appendingPathComponent(Monitor.statisticsFileName(monitor.sites[0])))
        #expect(throws: StatisticsFileError.self) { try Monitor(contentsOf: url) }
    }

    @Test func badRequestsAreRefused() throws {
        let model = try tinyBertModel()
        let shape = model.configuration.observationShape
        let sites = try MonitorSite.all(shape, reductions: [.meanPooled])
        #expect(throws: ObservationError.self) { try MonitorSite(point: .layerOutput(layer: 0), reduction: .tokens) }
        #expect(try MonitorSite(parsing: "layer.1.mlp.output:mean") == MonitorSite(point: .mlpOutput(layer: 1), reduction: .meanPooled))
        #expect(throws: ObservationError.self) { try MonitorSite(parsing: "layer.1.output") }
        // Too few trusted inputs for the folds; no per-input detector; folds out of range.
        #expect(throws: StatisticsError.insufficientSamples(operation: "Monitor.fit (5 folds)", count: 9, required: 10)) {
            try Monitor.fit(sites: sites, shape: shape, observing: pass(model, Array(Self.trusted.prefix(9))))
        }
        #expect(throws: StatisticsError.self) {
            try Monitor.fit(sites: sites, detectors: [.que], shape: shape, observing: pass(model, Self.trusted))
        }
        #expect(throws: StatisticsError.self) {
            try Monitor.fit(sites: sites, folds: 1, shape: shape, observing: pass(model, Self.trusted))
        }
        // The rows kept for the calibration are checked against the memory budget.
        try MemoryBudget.withBudget(try MemoryBudget(bytes: 4096, origin: "test")) { () throws in
            _ = #expect(throws: MemoryError.self) { try Monitor.fit(sites: sites, shape: shape, observing: pass(model, Self.trusted)) }
        }
    }
}
