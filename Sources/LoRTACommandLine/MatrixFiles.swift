import ArgumentParser
import Foundation
import LoRTA

/// A problem with one input or output file of the CLI; the message names the file.
struct FileProblem: Error, CustomStringConvertible {
    let path: String
    let message: String
    var description: String { "\(path): \(message)" }
}

/// Reading matrices and labels, writing scores: `.npy` (float32/float64/integer, C or Fortran
/// order, versions 1–3) and CSV (`.csv`, `.txt`; header optional).
enum MatrixFiles {
    enum Kind { case npy, csv, safetensors }

    static func kind(of path: String) throws -> Kind {
        switch URL(fileURLWithPath: path).pathExtension.lowercased() {
        case "npy": return .npy
        case "csv", "txt": return .csv
        case "safetensors": return .safetensors
        case let ext:
            throw FileProblem(path: path, message: "unsupported file type \".\(ext)\" (expected .npy, .csv or .txt)")
        }
    }

    /// Wraps any error of `body` so that the message names `path`.
    static func naming<T>(_ path: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as FileProblem { throw e } catch {
            let text = "\(error)"
            // Some errors already start with the path; do not repeat it.
            throw FileProblem(path: path, message: text.hasPrefix(path + ": ") ? String(text.dropFirst(path.count + 2)) : text)
        }
    }

    /// An n × d float32 matrix from `.npy` or CSV. Every value must be finite (and, for float64
    /// and CSV input, within the float32 range). A 1-D array is one column.
    static func readMatrix(_ path: String) throws -> Tensor {
        let t = try readAnyMatrix(path)
        guard t.shape[1] >= 1 else { throw FileProblem(path: path, message: "the matrix has no columns") }
        return t
    }

    private static func readAnyMatrix(_ path: String) throws -> Tensor {
        try naming(path) {
            switch try kind(of: path) {
            case .npy:
                let a = try NumpyArray(contentsOf: URL(fileURLWithPath: path))
                guard a.shape.count == 2 || a.shape.count == 1 else {
                    throw FileProblem(path: path, message: "expected a 2-D array (rows × features), got shape \(a.shape)")
                }
                let t = try a.floatMatrix()  // a finite float64 beyond the float32 range is an error here
                // NaN / ±Inf (checked on the float32 values: one pass, no float64 copy)
                let columns = max(1, t.shape[1])
                if let i = t.withUnsafeBufferPointer({ $0.firstIndex { !$0.isFinite } }) {
                    throw FileProblem(path: path, message: "row \(i / columns + 1), column \(i % columns + 1) is NaN or infinite")
                }
                return t
            case .csv:
                let m = try CSVMatrix.read(contentsOf: URL(fileURLWithPath: path))
                return try Tensor(shape: [m.rows, m.columns]) { out in
                    for (i, v) in m.values.enumerated() {
                        guard v.isFinite else {
                            throw FileProblem(path: path, message: "row \(i / max(1, m.columns) + 1), column \(i % max(1, m.columns) + 1) is NaN or infinite")
                        }
                        let f = Float(v)
                        guard f.isFinite else {
                            throw FileProblem(path: path, message: "row \(i / m.columns + 1), column \(i % m.columns + 1): \(v) is out of the float32 range")
                        }
                        out[i] = f
                    }
                }
            case .safetensors:
                throw FileProblem(path: path, message: "expected a .npy or CSV matrix of rows, not a statistics file")
            }
        }
    }

    /// Integer labels, one per row: a 1-D `.npy` array (integers, bools, or integral floats) or
    /// a one-column CSV.
    static func readLabels(_ path: String) throws -> [Int] {
        try naming(path) {
            switch try kind(of: path) {
            case .npy:
                return try NumpyArray(contentsOf: URL(fileURLWithPath: path)).integerLabels()
            case .csv:
                let m = try CSVMatrix.read(contentsOf: URL(fileURLWithPath: path))
                guard m.columns == 1 else {
                    throw FileProblem(path: path, message: "labels need one column, the file has \(m.columns)")
                }
                return try m.values.enumerated().map { i, v in
                    guard v.isFinite, v == v.rounded(.towardZero), let x = Int(exactly: v) else {
                        throw FileProblem(path: path, message: "label on row \(i + 1) is not an integer: \(v)")
                    }
                    return x
                }
            case .safetensors:
                throw FileProblem(path: path, message: "labels must be .npy or CSV")
            }
        }
    }

    /// Anomaly labels: one 0 (normal) or 1 (anomalous) per row of `data` (`count` rows), with
    /// both values present (the metrics need both).
    static func readAnomalyLabels(_ path: String, count: Int, of data: String) throws -> [Bool] {
        let y = try readLabels(path)
        guard y.count == count else { throw FileProblem(path: path, message: "\(y.count) labels for \(count) rows of \(data)") }
        let truth = try y.enumerated().map { i, v in
            guard v == 0 || v == 1 else { throw FileProblem(path: path, message: "label \(i) is \(v); expected 0 (normal) or 1 (anomalous)") }
            return v == 1
        }
        guard Set(truth).count == 2 else {
            throw FileProblem(path: path, message: "the metrics need both anomalous (1) and normal (0) rows; every label is \(truth.first == true ? 1 : 0)")
        }
        return truth
    }

    /// Writes one float64 score per row: `.npy` (`<f8`, 1-D) or CSV/text (one value per line,
    /// shortest round-trip decimal form). Atomic.
    static func writeScores(_ scores: [Double], to path: String) throws {
        try naming(path) {
            switch try kind(of: path) {
            case .npy: try NumpyWriter.write(scores, shape: [scores.count], to: URL(fileURLWithPath: path))
            case .csv: try CSVMatrix.write(scores, rows: scores.count, columns: 1, to: URL(fileURLWithPath: path))
            case .safetensors: throw FileProblem(path: path, message: "scores are written as .npy, .csv or .txt")
            }
        }
    }
}

/// Prints `message` to standard error.
func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// Runs `body`; any error is printed as `error: …` on stderr and the process exits with status 1.
/// With `printing` false the message is left out (the other ranks of a data-parallel run: rank 0
/// reports).
func reportingErrors(printing: Bool = true, _ body: () throws -> Void) throws {
    do { try body() } catch let e as ExitCode { throw e } catch let e as ValidationError { throw e } catch {
        if printing { printError("error: \(error)") }
        throw ExitCode(1)
    }
}

/// Seconds elapsed while running `body`.
func timed<T>(_ body: () throws -> T) rethrows -> (T, Double) {
    let clock = ContinuousClock()
    var result: T?
    let d = try clock.measure { result = try body() }
    return (result!, Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18)
}

/// A pretty-printed JSON object with sorted keys. Numbers use Swift's shortest round-trip
/// decimal form (Foundation's JSONSerialization on Linux rounds doubles to fewer digits), so
/// parsing the output gives back the exact float64 values. Supports strings, integers,
/// doubles, booleans, arrays of those, and nested objects.
func jsonText(_ value: Any, indent: String = "") -> String {
    let inner = indent + "  "
    switch value {
    case let s as String: return StringLiteral.quoted(s)
    case let b as Bool: return b ? "true" : "false"
    case let i as Int: return String(i)
    case let d as Double: return d.isFinite ? "\(d)" : "null"
    case is NSNull: return "null"
    case let a as [Any]:
        if a.isEmpty { return "[]" }
        return "[\n" + a.map { inner + jsonText($0, indent: inner) }.joined(separator: ",\n") + "\n" + indent + "]"
    case let o as [String: Any]:
        if o.isEmpty { return "{}" }
        return "{\n" + o.keys.sorted().map { inner + StringLiteral.quoted($0) + " : " + jsonText(o[$0]!, indent: inner) }
            .joined(separator: ",\n") + "\n" + indent + "}"
    default: return StringLiteral.quoted("\(value)")
    }
}

enum StringLiteral {
    /// `s` as a JSON string literal.
    static func quoted(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20:
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}
