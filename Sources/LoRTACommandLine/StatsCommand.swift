import ArgumentParser
import Foundation
import LoRTA

/// `lorta stats`: fit activation statistics from rows, merge statistics files.
struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Accumulate and merge activation statistics (float64 count, mean, scatter, Ledoit–Wolf moments).",
        subcommands: [StatsFit.self, StatsMerge.self])
}

/// A JSON/text summary of a statistics object.
private func summary(_ s: ActivationStatistics, path: String) -> [String: Any] {
    ["path": path, "dimension": s.dimension, "count": s.count, "labels": s.labels,
     "label_counts": s.labels.map { s.labelStatistics[$0]!.count }]
}

private func printSummary(_ object: [String: Any]) throws {
    print(jsonText(object))
}

struct StatsFit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fit",
        abstract: "Statistics of the rows of a matrix (.npy or CSV), written as .safetensors.",
        discussion: """
        The rows are float32 (float64 .npy and CSV values are rounded to float32); every \
        accumulation is float64. With --labels, per-label statistics are kept too (needed by \
        `lorta detect --method relative-mahalanobis` and class-conditional scores). The output \
        is written atomically. A summary goes to stderr (or, with --json, to stdout).
        Memory: d features need a d × d float64 matrix (8·d² bytes), once overall and once per \
        label; a request beyond the memory budget (--max-memory) is refused before anything is \
        allocated.
        """)

    @Option(help: "Rows to accumulate: n × d, .npy (float32/float64/integer) or .csv/.txt.")
    var data: String

    @Option(help: "Where to write the statistics (.safetensors).")
    var out: String

    @Option(help: "Optional integer label per row (1-D .npy or one-column CSV).")
    var labels: String?

    @Flag(help: "Print the time of reading the file and of the statistics update (in the library) to stderr.")
    var time = false

    @Flag(help: "Print a JSON summary to stdout.")
    var json = false

    @OptionGroup var memory: MemoryOptions

    func run() throws {
        try reportingErrors {
            try memory.apply()
            try Runtime.initialize()
            let (x, readSeconds) = try timed { try MatrixFiles.readMatrix(data) }
            let y = try labels.map { try MatrixFiles.readLabels($0) }
            guard x.shape[0] >= 1 else { throw FileProblem(path: data, message: "no rows") }
            if let y, y.count != x.shape[0] {
                throw FileProblem(path: labels!, message: "\(y.count) labels for \(x.shape[0]) rows of \(data)")
            }
            let (stats, updateSeconds) = try timed { () throws -> ActivationStatistics in
                var s = try ActivationStatistics(dimension: x.shape[1])
                if let y { try s.update(with: x, labels: y) } else { try s.update(with: x) }
                return s
            }
            try MatrixFiles.naming(out) { try stats.write(to: URL(fileURLWithPath: out)) }
            if time {
                printError("time: read \(String(format: "%.6f", readSeconds)) s, update \(String(format: "%.6f", updateSeconds)) s "
                           + "(\(x.shape[0]) × \(x.shape[1]) rows, \(Runtime.threadCount) threads, \(Runtime.instructionSet.rawValue))")
            }
            if json {
                var object = summary(stats, path: out)
                if time { object["read_seconds"] = readSeconds; object["update_seconds"] = updateSeconds }
                try printSummary(object)
            } else {
                printError("wrote \(out): \(stats.count) rows, dimension \(stats.dimension)"
                           + (stats.labels.isEmpty ? "" : ", \(stats.labels.count) labels"))
            }
        }
    }
}

struct StatsMerge: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Merge statistics files of disjoint row sets into the statistics of their union.",
        discussion: """
        The result equals the statistics of one pass over all rows (up to float64 rounding). \
        Files must have the same dimension, and either all or none keep per-label statistics.
        """)

    @Argument(help: "Statistics files (.safetensors) to merge.")
    var inputs: [String]

    @Option(help: "Where to write the merged statistics (.safetensors).")
    var out: String

    @Flag(help: "Print a JSON summary to stdout.")
    var json = false

    @OptionGroup var memory: MemoryOptions

    func validate() throws {
        guard !inputs.isEmpty else { throw ValidationError("give at least one statistics file to merge") }
    }

    func run() throws {
        try reportingErrors {
            try memory.apply()
            try Runtime.initialize()
            var merged: ActivationStatistics?
            for path in inputs {
                let s = try MatrixFiles.naming(path) { try ActivationStatistics(contentsOf: URL(fileURLWithPath: path)) }
                if merged == nil { merged = s } else { try MatrixFiles.naming(path) { try merged!.merge(s) } }
            }
            let result = merged!
            try MatrixFiles.naming(out) { try result.write(to: URL(fileURLWithPath: out)) }
            if json {
                var object = summary(result, path: out)
                object["inputs"] = inputs
                try printSummary(object)
            } else {
                printError("merged \(inputs.count) files into \(out): \(result.count) rows, dimension \(result.dimension)")
            }
        }
    }
}
