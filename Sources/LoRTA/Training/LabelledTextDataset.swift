import Foundation

/// Errors of ``LabelledTextDataset/load(from:labelCount:)``; line numbers are 1-based.
public enum DatasetError: Error, Equatable, CustomStringConvertible {
    /// No file at this path.
    case fileNotFound(path: String)
    /// The file exists but could not be read.
    case unreadable(path: String, reason: String)
    /// The file is not valid UTF-8.
    case notUTF8(path: String)
    /// The file has no examples.
    case empty(path: String)
    /// A line is not `label<TAB>text` (what is wrong, and the line).
    case malformedLine(path: String, line: Int, reason: String)
    /// A label is outside `0..<labelCount`.
    case labelOutOfRange(path: String, line: Int, label: Int, labelCount: Int)
    /// `labelCount < 1`.
    case invalidLabelCount(Int)

    public var description: String {
        switch self {
        case .fileNotFound(let p): return "data file not found: \(p)"
        case .unreadable(let p, let r): return "cannot read data file \(p): \(r)"
        case .notUTF8(let p): return "data file \(p) is not valid UTF-8"
        case .empty(let p): return "data file \(p) has no examples"
        case .malformedLine(let p, let l, let r): return "\(p):\(l): \(r) (expected label<TAB>text)"
        case .labelOutOfRange(let p, let l, let label, let n):
            return "\(p):\(l): label \(label) is out of range 0..<\(n)"
        case .invalidLabelCount(let n): return "label count \(n) must be >= 1"
        }
    }
}

/// One labelled example.
public struct LabelledText: Sendable, Equatable {
    public var label: Int
    public var text: String
    public init(label: Int, text: String) {
        self.label = label
        self.text = text
    }
}

/// A classification data set read from a `label<TAB>text` file: one example per line, the
/// label a decimal integer in `0..<labelCount`, then one tab, then non-empty text (which may
/// contain further tabs). Lines end with `\n` or `\r\n`; a final newline is optional; empty
/// lines are errors (they are usually a sign of a broken file), except that the file may end
/// with any number of newlines.
public struct LabelledTextDataset: Sendable, Equatable {
    public let examples: [LabelledText]
    public let labelCount: Int

    public var count: Int { examples.count }

    /// - Throws: ``DatasetError/invalidLabelCount(_:)`` or ``DatasetError/labelOutOfRange(path:line:label:labelCount:)``
    ///   (path `"<memory>"`, line = index + 1) for bad labels.
    public init(examples: [LabelledText], labelCount: Int) throws(DatasetError) {
        guard labelCount >= 1 else { throw .invalidLabelCount(labelCount) }
        for (i, e) in examples.enumerated() where !(0..<labelCount).contains(e.label) {
            throw .labelOutOfRange(path: "<memory>", line: i + 1, label: e.label, labelCount: labelCount)
        }
        self.examples = examples
        self.labelCount = labelCount
    }

    /// Reads and validates a `label<TAB>text` file. O(file size).
    /// - Throws: ``DatasetError`` — missing file, unreadable, not UTF-8, no examples, a
    ///   malformed line (with its number), a label out of range.
    public static func load(from url: URL, labelCount: Int) throws(DatasetError) -> LabelledTextDataset {
        guard labelCount >= 1 else { throw .invalidLabelCount(labelCount) }
        let path = url.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw .fileNotFound(path: path) }
        guard !isDirectory.boolValue else { throw .unreadable(path: path, reason: "is a directory") }
        let data: Data
        do { data = try RegularFile.read(url) } catch { throw .unreadable(path: path, reason: error.reason) }
        guard let text = String(data: data, encoding: .utf8) else { throw .notUTF8(path: path) }
        return try parse(text, path: path, labelCount: labelCount)
    }

    /// Parses the contents of a `label<TAB>text` file (see ``load(from:labelCount:)``).
    public static func parse(_ text: String, path: String = "<memory>", labelCount: Int) throws(DatasetError) -> LabelledTextDataset {
        guard labelCount >= 1 else { throw .invalidLabelCount(labelCount) }
        // "\r\n" is a single Character in Swift, so both line ends are separators here.
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
        while let last = lines.last, last.isEmpty { lines.removeLast() }
        guard !lines.isEmpty else { throw .empty(path: path) }
        var examples: [LabelledText] = []
        examples.reserveCapacity(lines.count)
        for (i, line) in lines.enumerated() {
            let n = i + 1
            guard !line.isEmpty else { throw .malformedLine(path: path, line: n, reason: "empty line") }
            guard let tab = line.firstIndex(of: "\t") else { throw .malformedLine(path: path, line: n, reason: "no tab") }
            let labelText = line[..<tab]
            let body = line[line.index(after: tab)...]
            guard !labelText.isEmpty, labelText.allSatisfy({ $0.isASCII && $0.isNumber || $0 == "-" }),
                  let label = Int(labelText) else {
                throw .malformedLine(path: path, line: n, reason: "label \"\(labelText)\" is not an integer")
            }
            guard (0..<labelCount).contains(label) else {
                throw .labelOutOfRange(path: path, line: n, label: label, labelCount: labelCount)
            }
            guard !body.allSatisfy(\.isWhitespace) else { throw .malformedLine(path: path, line: n, reason: "empty text") }
            examples.append(LabelledText(label: label, text: String(body)))
        }
        return try LabelledTextDataset(examples: examples, labelCount: labelCount)
    }
}
