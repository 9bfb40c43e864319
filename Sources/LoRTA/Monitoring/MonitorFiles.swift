import Foundation

/// A monitor directory that cannot be read or written.
public struct MonitorFileError: Error, CustomStringConvertible, Equatable {
    /// The file or directory concerned.
    public let path: String
    /// What is wrong.
    public let reason: String
    public var description: String { "monitor \(path): \(reason)" }
}

/// The on-disk form of a ``Monitor``: a directory holding
/// - `monitor.json`: format `lorta-monitor-1`, the model's shape, sites, detectors, estimator,
///   default combination, folds, the calibration of every channel (Swift's shortest
///   round-trip decimals, so reading gives the same bits) and a free-form `source` record;
/// - `statistics/<point>.<reduction>.safetensors`: each site's trusted statistics
///   (``ActivationStatistics`` files, mergeable with statistics of more trusted data);
/// - `combination-input.safetensors` and, with batch detectors, `combination-batch.safetensors`:
///   statistics of the trusted inputs' standardized score vectors;
/// - `pseudo-classes.safetensors` (when fitted): the ``PseudoClassDetector`` of the site named by
///   `pseudo_class_site` in `monitor.json`.
/// Detectors are refitted from the statistics when the monitor is read (deterministic).
extension Monitor {
    public static let fileFormat = "lorta-monitor-1"

    struct Stored: Codable {
        struct Shape: Codable { var layers, heads, hidden_size, head_dim: Int }
        struct Channel: Codable { var channel: String; var median, mean, standard_deviation: Double }
        var format: String
        var shape: Shape
        var sites: [String]
        var detectors: [String]
        var estimator: String
        var combination: String
        var folds: Int
        var trusted_inputs: Int
        var channels: [Channel]
        var pseudo_class_site: String?
        var source: [String: String]
    }

    static func statisticsFileName(_ site: MonitorSite) -> String { "\(site.point).\(site.reduction.rawValue).safetensors" }

    /// Writes the monitor into `directory`, replacing it as a whole (nothing changes on failure).
    /// `source` is kept verbatim in `monitor.json` (e.g. the model and data it was fitted on).
    /// - Throws: ``MonitorFileError``, ``StatisticsFileError``, ``AtomicFileWriter/Failure``.
    public func write(to directory: URL, source: [String: String] = [:]) throws {
        let stored = Stored(
            format: Self.fileFormat,
            shape: .init(layers: shape.layerCount, heads: shape.headCount, hidden_size: shape.hiddenSize, head_dim: shape.headDimension),
            sites: sites.map(\.description), detectors: detectors.map(\.rawValue), estimator: estimator.storedName,
            combination: combination.rawValue, folds: folds, trusted_inputs: trustedCount,
            channels: channels(batch: true).map { ch in
                let c = calibration[ch]!
                return .init(channel: ch.description, median: c.median, mean: c.mean, standard_deviation: c.standardDeviation)
            },
            pseudo_class_site: pseudoClasses?.site.description, source: source)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let json = try encoder.encode(stored)
        try AtomicFileWriter.replaceDirectory(at: directory) { dir in
            let stats = dir.appendingPathComponent("statistics")
            try FileManager.default.createDirectory(at: stats, withIntermediateDirectories: false)
            for site in sites { try statistics[site]!.write(to: stats.appendingPathComponent(Self.statisticsFileName(site))) }
            try combinationStatistics.perInput.write(to: dir.appendingPathComponent("combination-input.safetensors"))
            try combinationStatistics.batch?.write(to: dir.appendingPathComponent("combination-batch.safetensors"))
            try pseudoClasses?.detector.write(to: dir.appendingPathComponent("pseudo-classes.safetensors"))
            try AtomicFileWriter.write(json, to: dir.appendingPathComponent("monitor.json"))
        }
    }

    /// Reads a monitor written by ``write(to:source:)``, checking every field (format, names,
    /// the statistics' dimensions against the shape, the channels against sites × detectors,
    /// finite calibrations with positive median and spread). O(Σ d²) for the statistics.
    /// - Throws: ``MonitorFileError`` naming the file, ``StatisticsFileError``.
    public init(contentsOf directory: URL) throws {
        let jsonURL = directory.appendingPathComponent("monitor.json")
        func fail(_ reason: String, _ url: URL? = nil) -> MonitorFileError {
            MonitorFileError(path: (url ?? jsonURL).path, reason: reason)
        }
        let data: Data
        do { data = try RegularFile.read(jsonURL) } catch { throw fail(error.reason) }
        let s: Stored
        do { s = try JSONDecoder().decode(Stored.self, from: data) } catch {
            if let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
               let format = object["format"] as? String, format != Self.fileFormat {
                throw fail("format \"\(format)\" is not \(Self.fileFormat)")
            }
            throw fail("not a monitor description: \(error)")
        }
        guard s.format == Self.fileFormat else { throw fail("format \"\(s.format)\" is not \(Self.fileFormat)") }
        let limit = 1...Int(Int32.max)
        guard limit.contains(s.shape.layers), limit.contains(s.shape.heads), limit.contains(s.shape.hidden_size),
              limit.contains(s.shape.head_dim) else { throw fail("shape sizes must be in 1...\(Int32.max)") }
        let shape = ObservationShape(layerCount: s.shape.layers, headCount: s.shape.heads, hiddenSize: s.shape.hidden_size,
                                     headDimension: s.shape.head_dim)
        var sites: [MonitorSite] = []
        for name in s.sites {
            do {
                let site = try MonitorSite(parsing: name)
                try site.point.validate(for: shape)
                sites.append(site)
            } catch { throw fail("site \"\(name)\": \(error)") }
        }
        guard !sites.isEmpty, Set(sites).count == sites.count, sites == sites.sorted() else {
            throw fail("sites must be distinct, sorted and at least one")
        }
        var detectors: [MonitorDetector] = []
        for name in s.detectors {
            guard let d = MonitorDetector(rawValue: name) else { throw fail("unknown detector \"\(name)\"") }
            detectors.append(d)
        }
        guard detectors.contains(.mahalanobis), detectors == MonitorDetector.allCases.filter(detectors.contains) else {
            throw fail("detectors \(s.detectors) must include mahalanobis, without repeats, in the order \(MonitorDetector.allCases.map(\.rawValue))")
        }
        guard let estimator = CovarianceEstimator(storedName: s.estimator) else { throw fail("unknown estimator \"\(s.estimator)\"") }
        guard let combination = MonitorCombination(rawValue: s.combination) else { throw fail("unknown combination \"\(s.combination)\"") }
        guard (2...100).contains(s.folds) else { throw fail("folds \(s.folds) outside 2...100") }

        var statistics: [MonitorSite: ActivationStatistics] = [:]
        for site in sites {
            let url = directory.appendingPathComponent("statistics").appendingPathComponent(Self.statisticsFileName(site))
            let st = try ActivationStatistics(contentsOf: url)
            guard st.dimension == site.point.width(in: shape) else {
                throw fail("dimension \(st.dimension), the site's width is \(site.point.width(in: shape))", url)
            }
            guard st.count == s.trusted_inputs else { throw fail("\(st.count) rows, monitor.json says \(s.trusted_inputs) trusted inputs", url) }
            statistics[site] = st
        }
        let expected = sites.flatMap { site in detectors.map { MonitorChannel(site: site, detector: $0) } }
        guard s.channels.map(\.channel) == expected.map(\.description) else {
            throw fail("the channels do not list every site × detector in order")
        }
        var calibration: [MonitorChannel: MonitorCalibration] = [:]
        for (ch, c) in zip(expected, s.channels) {
            guard c.median > 0, c.median.isFinite, c.mean.isFinite, c.standard_deviation > 0, c.standard_deviation.isFinite else {
                throw fail("channel \(c.channel): the calibration must be finite with a positive median and spread")
            }
            calibration[ch] = MonitorCalibration(median: c.median, mean: c.mean, standardDeviation: c.standard_deviation)
        }
        let perInputCount = expected.filter { !$0.detector.judgesBatch }.count
        let inputURL = directory.appendingPathComponent("combination-input.safetensors")
        let perInput = try ActivationStatistics(contentsOf: inputURL)
        guard perInput.dimension == perInputCount else { throw fail("dimension \(perInput.dimension), expected \(perInputCount) channels", inputURL) }
        var batch: ActivationStatistics? = nil
        if detectors.contains(where: \.judgesBatch) {
            let url = directory.appendingPathComponent("combination-batch.safetensors")
            let b = try ActivationStatistics(contentsOf: url)
            guard b.dimension == expected.count else { throw fail("dimension \(b.dimension), expected \(expected.count) channels", url) }
            batch = b
        }
        var geometry: (site: MonitorSite, detector: PseudoClassDetector)? = nil
        if let name = s.pseudo_class_site {
            guard let site = try? MonitorSite(parsing: name), sites.contains(site) else {
                throw fail("pseudo_class_site \"\(name)\" is not one of the sites")
            }
            let url = directory.appendingPathComponent("pseudo-classes.safetensors")
            let detector = try PseudoClassDetector(contentsOf: url)
            guard detector.modes.first?.mean.count == site.point.width(in: shape) else {
                throw fail("the modes' width differs from the site's (\(site.point.width(in: shape)))", url)
            }
            geometry = (site, detector)
        }
        self.init(sites: sites, detectors: detectors, estimator: estimator, combination: combination, folds: s.folds,
                  shape: shape, statistics: statistics, calibration: calibration, combinationStatistics: (perInput, batch),
                  pseudoClasses: geometry)
    }

    /// The `source` record of a monitor directory's `monitor.json` (empty when absent).
    /// - Throws: ``MonitorFileError``.
    public static func source(of directory: URL) throws -> [String: String] {
        let url = directory.appendingPathComponent("monitor.json")
        do { return try JSONDecoder().decode(Stored.self, from: RegularFile.read(url)).source } catch {
            throw MonitorFileError(path: url.path, reason: "\(error)")
        }
    }
}
