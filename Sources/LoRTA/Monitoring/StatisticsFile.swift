import Foundation

// Files of activation statistics and fitted detectors: safetensors with float64 (F64) and
// int64 (I64) tensors, little-endian, so that a save/load round trip is bitwise exact, and a
// `__metadata__` object that names the format:
//
//   format   "lorta.activation-statistics" or "lorta.detector.<kind>"
//   version  "1"
//   …        format-specific keys (dimension, count, labels, estimator…), documented on each
//            type's `write(to:)`.
//
// Loading validates everything: the format and version, every metadata key (present, parsable,
// in range), every tensor (present, dtype, exact shape, finite values), no unexpected tensor,
// and the invariants between fields (label counts summing to the count, symmetric matrices,
// lower-triangular Cholesky factors with a positive diagonal…). Each problem is its own
// ``StatisticsFileError/Problem`` case, reported with the file's path.

/// A statistics or detector file that cannot be read or written; ``path`` names the file.
public struct StatisticsFileError: Error, Equatable, CustomStringConvertible {
    /// What is wrong.
    public enum Problem: Equatable, Sendable {
        /// The file is not a valid safetensors file (or cannot be read / written).
        case safetensors(SafeTensorsError)
        /// `__metadata__.format` is absent or names another format.
        case wrongFormat(expected: String, found: String?)
        /// `__metadata__.version` is not a version this library reads.
        case unsupportedVersion(String)
        /// A required `__metadata__` key is absent.
        case missingMetadata(String)
        /// A `__metadata__` value cannot be parsed or is out of range.
        case invalidMetadata(key: String, value: String, reason: String)
        /// A required tensor is absent.
        case missingTensor(String)
        /// A tensor the format does not define.
        case unexpectedTensor(String)
        /// A tensor has another dtype than the format's.
        case wrongDType(tensor: String, expected: SafeTensorsDType, found: SafeTensorsDType)
        /// A tensor has another shape than the metadata imply.
        case wrongShape(tensor: String, expected: [Int], found: [Int])
        /// A tensor holds NaN or ±infinity.
        case nonFiniteValue(tensor: String)
        /// Fields are individually valid but contradict each other (or a value is out of range).
        case inconsistent(String)
    }

    /// The file.
    public let path: String
    /// The problem found.
    public let problem: Problem

    public init(path: String, problem: Problem) {
        self.path = path
        self.problem = problem
    }

    public var description: String {
        let what: String
        switch problem {
        case .safetensors(let e): what = "\(e)"
        case .wrongFormat(let e, let f):
            what = f.map { "format \"\($0)\", expected \"\(e)\"" } ?? "no __metadata__ \"format\" (expected \"\(e)\")"
        case .unsupportedVersion(let v): what = "unsupported format version \"\(v)\" (this library reads version 1)"
        case .missingMetadata(let k): what = "__metadata__ has no \"\(k)\""
        case .invalidMetadata(let k, let v, let r): what = "__metadata__ \"\(k)\" = \"\(v)\": \(r)"
        case .missingTensor(let t): what = "no tensor \"\(t)\""
        case .unexpectedTensor(let t): what = "unexpected tensor \"\(t)\""
        case .wrongDType(let t, let e, let f): what = "tensor \"\(t)\" has dtype \(f.rawValue), expected \(e.rawValue)"
        case .wrongShape(let t, let e, let f): what = "tensor \"\(t)\" has shape \(f), expected \(e)"
        case .nonFiniteValue(let t): what = "tensor \"\(t)\" contains NaN or infinity"
        case .inconsistent(let s): what = s
        }
        return "\(path): \(what)"
    }
}

/// Builds a statistics/detector file (F64 and I64 tensors + metadata) and writes it atomically.
struct StatisticsArchiveWriter {
    private var writer = SafeTensorsWriter()

    init(format: String, metadata: [String: String]) {
        writer.metadata = metadata.merging(["format": format, "version": "1"]) { _, new in new }
    }

    /// Sets one `__metadata__` entry.
    mutating func set(_ key: String, _ value: String) { writer.metadata[key] = value }

    mutating func add(_ name: String, _ values: [Double], shape: [Int]) throws {
        var data = Data(count: values.count * 8)
        data.withUnsafeMutableBytes { dst in
            for (i, v) in values.enumerated() { dst.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: 8 * i, as: UInt64.self) }
        }
        try writer.addRaw(name, dtype: .f64, shape: shape, bytes: data)
    }

    mutating func add(_ name: String, ints: [Int], shape: [Int]) throws {
        var data = Data(count: ints.count * 8)
        data.withUnsafeMutableBytes { dst in
            for (i, v) in ints.enumerated() { dst.storeBytes(of: Int64(v).littleEndian, toByteOffset: 8 * i, as: Int64.self) }
        }
        try writer.addRaw(name, dtype: .i64, shape: shape, bytes: data)
    }

    /// Atomic write (temporary file + rename); errors name the file.
    func write(to url: URL) throws {
        do {
            try writer.write(to: url)
        } catch let e as SafeTensorsError {
            throw StatisticsFileError(path: url.path, problem: .safetensors(e))
        }
    }
}

/// Reads and validates a statistics/detector file. Tracks the tensors read so that
/// ``finish()`` can reject tensors the format does not define.
struct StatisticsArchiveReader {
    let path: String
    private let reader: SafeTensorsReader
    private var used: Set<String> = []

    /// Opens `url` and checks `format` and the version.
    init(contentsOf url: URL, format: String) throws {
        path = url.path
        do {
            reader = try SafeTensorsReader(contentsOf: url)
        } catch let e as SafeTensorsError {
            throw StatisticsFileError(path: url.path, problem: .safetensors(e))
        }
        guard let found = reader.metadata["format"], found == format else {
            throw StatisticsFileError(path: path, problem: .wrongFormat(expected: format, found: reader.metadata["format"]))
        }
        guard let version = reader.metadata["version"] else { throw fail(.missingMetadata("version")) }
        guard version == "1" else { throw fail(.unsupportedVersion(version)) }
    }

    /// The value of `__metadata__.format` of the file at `url` (nil when absent).
    static func format(of url: URL) throws -> String? {
        do {
            return try SafeTensorsReader(contentsOf: url).metadata["format"]
        } catch let e as SafeTensorsError {
            throw StatisticsFileError(path: url.path, problem: .safetensors(e))
        }
    }

    func fail(_ p: StatisticsFileError.Problem) -> StatisticsFileError { StatisticsFileError(path: path, problem: p) }

    func string(_ key: String) throws -> String {
        guard let v = reader.metadata[key] else { throw fail(.missingMetadata(key)) }
        return v
    }

    /// An integer metadata value within `range`.
    func int(_ key: String, in range: ClosedRange<Int>) throws -> Int {
        let v = try string(key)
        guard let x = Int(v) else { throw fail(.invalidMetadata(key: key, value: v, reason: "not an integer")) }
        guard range.contains(x) else {
            throw fail(.invalidMetadata(key: key, value: v, reason: "outside \(range.lowerBound)...\(range.upperBound)"))
        }
        return x
    }

    /// A finite floating-point metadata value (written with Swift's shortest round-trip form).
    func double(_ key: String) throws -> Double {
        let v = try string(key)
        guard let x = Double(v), x.isFinite else { throw fail(.invalidMetadata(key: key, value: v, reason: "not a finite number")) }
        return x
    }

    /// A metadata value that is a JSON array of integers, e.g. `[0,1,5]`.
    func intList(_ key: String) throws -> [Int] {
        let v = try string(key)
        let trimmed = v.trimmingCharacters(in: .whitespaces)
        guard trimmed.hasPrefix("["), trimmed.hasSuffix("]"), trimmed.count >= 2 else {
            throw fail(.invalidMetadata(key: key, value: v, reason: "not a JSON array of integers"))
        }
        let inner = trimmed.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
        if inner.isEmpty { return [] }
        var out: [Int] = []
        for part in inner.split(separator: ",", omittingEmptySubsequences: false) {
            guard let x = Int(part.trimmingCharacters(in: .whitespaces)) else {
                throw fail(.invalidMetadata(key: key, value: v, reason: "not a JSON array of integers"))
            }
            out.append(x)
        }
        return out
    }

    func hasTensor(_ name: String) -> Bool { reader.entry(name) != nil }

    private mutating func raw(_ name: String, _ dtype: SafeTensorsDType, _ shape: [Int]) throws -> Data {
        guard let e = reader.entry(name) else { throw fail(.missingTensor(name)) }
        guard e.dtype == dtype else { throw fail(.wrongDType(tensor: name, expected: dtype, found: e.dtype)) }
        guard e.shape == shape else { throw fail(.wrongShape(tensor: name, expected: shape, found: e.shape)) }
        used.insert(name)
        return try reader.rawBytes(name)
    }

    /// An F64 tensor of exactly `shape`, every value finite.
    mutating func doubles(_ name: String, shape: [Int]) throws -> [Double] {
        let data = try raw(name, .f64, shape)
        let n = data.count / 8
        let values = data.withUnsafeBytes { src in
            (0..<n).map { Double(bitPattern: UInt64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self))) }
        }
        guard values.allSatisfy({ $0.isFinite }) else { throw fail(.nonFiniteValue(tensor: name)) }
        return values
    }

    /// An F64 scalar (shape `[]`).
    mutating func scalar(_ name: String) throws -> Double { try doubles(name, shape: [])[0] }

    /// An I64 tensor of exactly `shape`.
    mutating func ints(_ name: String, shape: [Int]) throws -> [Int] {
        let data = try raw(name, .i64, shape)
        let n = data.count / 8
        return data.withUnsafeBytes { src in
            (0..<n).map { Int(Int64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self))) }
        }
    }

    /// Rejects tensors that were not read.
    func finish() throws {
        for name in reader.names where !used.contains(name) { throw fail(.unexpectedTensor(name)) }
    }

    /// A d × d symmetric matrix (bitwise: the writers mirror one triangle).
    mutating func symmetric(_ name: String, dimension d: Int) throws -> [Double] {
        let m = try doubles(name, shape: [d, d])
        for i in 0..<d { for j in 0..<i where m[i * d + j] != m[j * d + i] {
            throw fail(.inconsistent("tensor \"\(name)\" is not symmetric at (\(i), \(j))"))
        } }
        return m
    }

    /// A lower Cholesky factor: zeros above the diagonal, positive diagonal.
    mutating func choleskyFactor(_ name: String, dimension d: Int) throws -> CholeskyFactor {
        let m = try doubles(name, shape: [d, d])
        for i in 0..<d {
            guard m[i * d + i] > 0 else { throw fail(.inconsistent("tensor \"\(name)\": Cholesky diagonal entry \(i) is not positive")) }
            for j in (i + 1)..<max(i + 1, d) where m[i * d + j] != 0 {
                throw fail(.inconsistent("tensor \"\(name)\" is not lower-triangular at (\(i), \(j))"))
            }
        }
        return CholeskyFactor(dimension: d, lower: m)
    }
}

// MARK: - Covariance estimator names

extension CovarianceEstimator {
    /// Stable text form used in files and on the command line: `empirical`, `ledoit-wolf`,
    /// `oas`, `ridge:<ε>` (ε in Swift's shortest round-trip decimal form).
    public var storedName: String {
        switch self {
        case .empirical: return "empirical"
        case .ledoitWolf: return "ledoit-wolf"
        case .oracleApproximatingShrinkage: return "oas"
        case .ridge(let e): return "ridge:\(e)"
        }
    }

    /// Parses ``storedName`` (and `ridge` alone for ε = 1e-3). Nil for anything else.
    public init?(storedName s: String) {
        switch s {
        case "empirical": self = .empirical
        case "ledoit-wolf": self = .ledoitWolf
        case "oas": self = .oracleApproximatingShrinkage
        case "ridge": self = .ridge(epsilon: 1e-3)
        default:
            guard s.hasPrefix("ridge:"), let e = Double(s.dropFirst(6)), e.isFinite, e >= 0 else { return nil }
            self = .ridge(epsilon: e)
        }
    }
}

extension StatisticsArchiveReader {
    func estimator(_ key: String = "estimator") throws -> CovarianceEstimator {
        let v = try string(key)
        guard let e = CovarianceEstimator(storedName: v) else {
            throw fail(.invalidMetadata(key: key, value: v, reason: "not a covariance estimator (empirical, ledoit-wolf, oas, ridge:<ε>)"))
        }
        return e
    }

    /// A covariance matrix stored as `<prefix>` (d × d) with `<prefix>_shrinkage` (scalar) and
    /// metadata `<prefix>_estimator`, `<prefix>_samples`.
    mutating func covariance(_ prefix: String, dimension d: Int) throws -> CovarianceMatrix {
        let values = try symmetric(prefix, dimension: d)
        let shrinkage = try scalar(prefix + "_shrinkage")
        let estimator = try estimator(prefix + "_estimator")
        let samples = try int(prefix + "_samples", in: 0...Int.max)
        return try CovarianceMatrix(dimension: d, values: values, estimator: estimator, shrinkage: shrinkage, sampleCount: samples)
    }
}

extension StatisticsArchiveWriter {
    mutating func add(covariance c: CovarianceMatrix, as prefix: String) throws {
        try add(prefix, c.values, shape: [c.dimension, c.dimension])
        try add(prefix + "_shrinkage", [c.shrinkage], shape: [])
        set(prefix + "_estimator", c.estimator.storedName)
        set(prefix + "_samples", String(c.sampleCount))
    }
}

// MARK: - ActivationStatistics

extension ActivationStatistics {
    /// `__metadata__.format` of statistics files.
    public static let fileFormat = "lorta.activation-statistics"

    /// Writes the statistics to `url` (safetensors, atomic: temporary file + rename).
    ///
    /// Layout (F64 unless noted; K labels, d the dimension):
    /// - metadata: `format` = `lorta.activation-statistics`, `version` = `1`, `dimension`,
    ///   `count`, `labels` (JSON array of the labels, ascending; `[]` without labels);
    /// - `mean` [d], `scatter` [d, d], `third` [d], `fourth` [] (scalar);
    /// - when K > 0: `label_counts` (I64) [K], `label_means` [K, d], `label_scatters` [K, d, d],
    ///   `label_thirds` [K, d], `label_fourths` [K], in the order of `labels`.
    ///
    /// Reading the file back gives bitwise-equal statistics. O(K·d²).
    /// - Throws: ``StatisticsFileError`` (with `url`'s path) when the file cannot be written.
    public func write(to url: URL) throws {
        let labels = self.labels
        let d = dimension
        var archive = StatisticsArchiveWriter(format: Self.fileFormat, metadata: [
            "dimension": String(d), "count": String(count),
            "labels": "[" + labels.map(String.init).joined(separator: ",") + "]",
        ])
        try archive.add("mean", mean, shape: [d])
        try archive.add("scatter", scatter, shape: [d, d])
        try archive.add("third", thirdMoment, shape: [d])
        try archive.add("fourth", [fourthMoment], shape: [])
        if !labels.isEmpty {
            let ls = labels.map { labelStatistics[$0]! }
            let k = labels.count
            try archive.add("label_counts", ints: ls.map(\.count), shape: [k])
            try archive.add("label_means", ls.flatMap(\.mean), shape: [k, d])
            try archive.add("label_scatters", ls.flatMap(\.scatter), shape: [k, d, d])
            try archive.add("label_thirds", ls.flatMap(\.thirdMoment), shape: [k, d])
            try archive.add("label_fourths", ls.map(\.fourthMoment), shape: [k])
        }
        try archive.write(to: url)
    }

    /// Reads statistics written by ``write(to:)``, validating every field: format and
    /// version, `dimension` ≥ 1, `count` ≥ 0, distinct ascending labels, each tensor's dtype
    /// and exact shape, finite values, symmetric scatter matrices with non-negative
    /// diagonals, non-negative fourth moments, each label count ≥ 1 and their sum equal to
    /// `count`, no unexpected tensor. O(file size).
    /// - Throws: ``StatisticsFileError`` naming the file and the first problem found.
    public init(contentsOf url: URL) throws {
        var r = try StatisticsArchiveReader(contentsOf: url, format: Self.fileFormat)
        let d = try r.int("dimension", in: 1...Int(Int32.max))
        guard case (_, false) = d.multipliedReportingOverflow(by: d) else {
            throw r.fail(.invalidMetadata(key: "dimension", value: String(d), reason: "too large"))
        }
        let count = try r.int("count", in: 0...Int.max)
        let labels = try r.intList("labels")
        for i in labels.indices.dropFirst() where labels[i] <= labels[i - 1] {
            throw r.fail(.invalidMetadata(key: "labels", value: try r.string("labels"), reason: "labels must be distinct and ascending"))
        }
        func moments(count n: Int, mean: [Double], scatter: [Double], third: [Double], fourth: Double, what: String) throws -> ActivationStatistics {
            for i in 0..<d {
                guard scatter[i * d + i] >= 0 else { throw r.fail(.inconsistent("\(what): negative scatter diagonal at \(i)")) }
                for j in 0..<i where scatter[i * d + j] != scatter[j * d + i] {
                    throw r.fail(.inconsistent("\(what): scatter is not symmetric at (\(i), \(j))"))
                }
            }
            guard fourth >= 0 else { throw r.fail(.inconsistent("\(what): negative fourth moment")) }
            if n == 0 {
                guard mean.allSatisfy({ $0 == 0 }), scatter.allSatisfy({ $0 == 0 }), third.allSatisfy({ $0 == 0 }), fourth == 0 else {
                    throw r.fail(.inconsistent("\(what): count is 0 but the moments are not zero"))
                }
            }
            return ActivationStatistics(restoring: d, count: n, mean: mean, scatter: scatter, thirdMoment: third,
                                        fourthMoment: fourth, labelStatistics: [:])
        }
        var top = try moments(count: count, mean: r.doubles("mean", shape: [d]), scatter: r.doubles("scatter", shape: [d, d]),
                              third: r.doubles("third", shape: [d]), fourth: r.scalar("fourth"), what: "overall statistics")
        if !labels.isEmpty {
            let k = labels.count
            let counts = try r.ints("label_counts", shape: [k])
            let means = try r.doubles("label_means", shape: [k, d])
            let scatters = try r.doubles("label_scatters", shape: [k, d, d])
            let thirds = try r.doubles("label_thirds", shape: [k, d])
            let fourths = try r.doubles("label_fourths", shape: [k])
            var total = 0
            var byLabel: [Int: ActivationStatistics] = [:]
            for (c, label) in labels.enumerated() {
                guard counts[c] >= 1 else { throw r.fail(.inconsistent("label \(label) has count \(counts[c]) (must be >= 1)")) }
                let (t, overflow) = total.addingReportingOverflow(counts[c])
                guard !overflow else { throw r.fail(.inconsistent("label counts overflow")) }
                total = t
                byLabel[label] = try moments(count: counts[c], mean: Array(means[(c * d)..<((c + 1) * d)]),
                                             scatter: Array(scatters[(c * d * d)..<((c + 1) * d * d)]),
                                             third: Array(thirds[(c * d)..<((c + 1) * d)]), fourth: fourths[c],
                                             what: "label \(label)")
            }
            guard total == count else {
                throw r.fail(.inconsistent("label counts sum to \(total), but count is \(count)"))
            }
            top = ActivationStatistics(restoring: d, count: count, mean: top.mean, scatter: top.scatter,
                                       thirdMoment: top.thirdMoment, fourthMoment: top.fourthMoment, labelStatistics: byLabel)
        }
        try r.finish()
        self = top
    }
}
