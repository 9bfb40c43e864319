import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A self-contained HTML report of an anomaly monitor's results: a title, a key/value summary
/// table and a list of sections (headings, tables, ROC curves, score histograms, heat maps).
///
/// ``html()`` renders one document with every chart as inline SVG: no JavaScript (not a single
/// `<script>`), no external style sheet, font, image or network access, so the file can be
/// mailed, archived or opened offline. The markup is XHTML-compatible (every element closed,
/// every attribute quoted, all text escaped), so an XML parser reads it too.
///
/// Output is deterministic: the same report gives byte-identical HTML (numbers are formatted
/// without a locale, nothing depends on time or randomness).
///
/// ```swift
/// var report = MonitorReport(title: "lorta monitor score",
///                            summary: [(key: "model", value: "MiniLM-L6"), (key: "scored", value: "1200")])
/// report.sections.append(.heading("Detection", text: "Higher scores are more anomalous."))
/// report.sections.append(.rocCurves(ROCChart(title: "Mahalanobis", curves: curves)))
/// try report.write(to: URL(fileURLWithPath: "report.html"))
/// ```
public struct MonitorReport: Sendable {
    /// The document's title (`<title>` and the `<h1>`).
    public var title: String
    /// Key/value pairs shown as a table under the title (model, adapter, counts, how scores are
    /// combined…), in this order. An empty summary shows no table.
    public var summary: [(key: String, value: String)]
    /// The sections, rendered in order.
    public var sections: [ReportSection]

    /// Makes a report.
    public init(title: String, summary: [(key: String, value: String)] = [], sections: [ReportSection] = []) {
        self.title = title
        self.summary = summary
        self.sections = sections
    }

    /// The whole HTML document (UTF-8 text starting with `<!DOCTYPE html>`).
    ///
    /// Every section is validated before anything is rendered.
    /// - Throws: ``ReportError`` naming the first invalid chart or table (non-finite or
    ///   out-of-range values, mismatched lengths, nothing to draw, invalid options).
    /// - Complexity: O(total number of table cells, curve points, scores and heat-map cells).
    public func html() throws(ReportError) -> String {
        for section in sections { try section.validate() }
        var out = ""
        out += "<!DOCTYPE html>\n"
        out += "<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n"
        out += "<meta charset=\"utf-8\"/>\n"
        out += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n"
        out += "<meta name=\"generator\" content=\"swift-lorta LoRTAReport\"/>\n"
        out += "<title>\(Markup.escape(title))</title>\n"
        out += "<style>\n\(Self.styleSheet)</style>\n</head>\n<body>\n"
        out += "<h1>\(Markup.escape(title))</h1>\n"
        if !summary.isEmpty {
            out += "<table class=\"summary\">\n<tbody>\n"
            for item in summary {
                out += "<tr><th scope=\"row\">\(Markup.escape(item.key))</th><td>\(Markup.escape(item.value))</td></tr>\n"
            }
            out += "</tbody>\n</table>\n"
        }
        for (index, section) in sections.enumerated() {
            section.render(into: &out, id: index)
        }
        out += "</body>\n</html>\n"
        return out
    }

    /// Renders the report and writes it to `url` atomically: the bytes go to a temporary file
    /// in the same directory, which is flushed (`fsync`) and renamed over `url`; the directory
    /// is then flushed. On any error `url` is left as it was and no temporary file remains. An
    /// existing file keeps its permission bits; a new one gets 0644 minus the umask.
    /// - Throws: ``ReportError`` from ``html()``, or with ``ReportError/Problem/fileSystem(operation:path:reason:)``
    ///   when a system call fails (e.g. the directory does not exist).
    /// - Complexity: that of ``html()`` plus O(document size) I/O.
    public func write(to url: URL) throws(ReportError) {
        let text = try html()
        try AtomicReportFile.write(Array(text.utf8), to: url)
    }

    /// The document's only style sheet (inline).
    static let styleSheet = """
    body { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; color: #222; margin: 24px auto; max-width: 1180px; padding: 0 16px; line-height: 1.4; }
    h1 { font-size: 1.6em; margin-bottom: 0.4em; }
    h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #ccc; padding-bottom: 0.2em; }
    table { border-collapse: collapse; margin: 0.8em 0 1.2em 0; font-size: 0.92em; }
    caption { text-align: left; font-weight: bold; padding-bottom: 0.3em; }
    th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
    thead th { background: #f0f0f0; }
    table.summary th { background: #f7f7f7; font-weight: normal; color: #444; }
    td.num { text-align: right; font-variant-numeric: tabular-nums; }
    figure.chart { margin: 0.8em 0 1.4em 0; }
    figure.chart svg { max-width: 100%; height: auto; display: block; }
    svg text { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; fill: #222; }

    """
}

/// One part of a ``MonitorReport``, rendered in order.
public enum ReportSection: Sendable {
    /// A second-level heading (`<h2>`) and an optional paragraph under it.
    case heading(String, text: String? = nil)
    /// A table of numbers and text.
    case table(ReportTable)
    /// ROC curves in one chart (one per detector, observation point or combination).
    case rocCurves(ROCChart)
    /// Overlaid score histograms (e.g. trusted vs flagged) on shared bins.
    case histogram(ScoreHistogram)
    /// A rows × columns grid of values (e.g. layers × heads) coloured by a scale.
    case heatMap(HeatMap)

    func validate() throws(ReportError) {
        switch self {
        case .heading: return
        case .table(let t): try t.validate()
        case .rocCurves(let c): try c.validate()
        case .histogram(let h): _ = try h.binned()
        case .heatMap(let m): try m.validate()
        }
    }

    /// Appends the section; `id` (the section's index) makes SVG ids unique in the document.
    /// Precondition: ``validate()`` passed.
    func render(into out: inout String, id: Int) {
        switch self {
        case .heading(let title, let text):
            out += "<h2>\(Markup.escape(title))</h2>\n"
            if let text { out += "<p>\(Markup.escape(text))</p>\n" }
        case .table(let t): t.render(into: &out)
        case .rocCurves(let c): c.render(into: &out, id: id)
        case .histogram(let h): h.render(into: &out, id: id)
        case .heatMap(let m): m.render(into: &out, id: id)
        }
    }
}

/// Atomic file writing (temporary file beside the destination, fsync, rename, fsync of the
/// directory), the same protocol as the core library's `AtomicFileWriter`, which this
/// dependency-free module cannot import.
enum AtomicReportFile {
    static func write(_ bytes: [UInt8], to url: URL) throws(ReportError) {
        let target = url.path
        let directory = url.deletingLastPathComponent().path
        let dir = directory.isEmpty ? "." : directory
        let temporary = dir + "/." + url.lastPathComponent + "." + UUID().uuidString + ".tmp"
        func failure(_ operation: String, _ path: String) -> ReportError {
            ReportError(section: "report file \(target)",
                        problem: .fileSystem(operation: operation, path: path, reason: String(cString: strerror(errno))))
        }
        var existing = stat()
        let keptMode: mode_t? = stat(target, &existing) == 0 && (existing.st_mode & S_IFMT) == S_IFREG
            ? existing.st_mode & 0o777 : nil
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("create", temporary) }
        var closed = false
        var renamed = false
        defer {
            if !closed { close(fd) }
            if !renamed { unlink(temporary) }
        }
        if let keptMode, fchmod(fd, keptMode) != 0 { throw failure("set the mode of", temporary) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { buffer in
                systemWrite(fd, buffer.baseAddress! + offset, buffer.count - offset)
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw failure("write", temporary)
            }
            offset += n
        }
        guard fsync(fd) == 0 else { throw failure("fsync", temporary) }
        closed = true
        guard close(fd) == 0 else { throw failure("close", temporary) }
        guard rename(temporary, target) == 0 else { throw failure("rename to \(target)", temporary) }
        renamed = true
        let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { throw failure("open directory", dir) }
        defer { close(dfd) }
        guard fsync(dfd) == 0 || errno == EINVAL else { throw failure("fsync directory", dir) }
    }
}

/// The C library's `write(2)` (a file-scope name, so `AtomicReportFile.write` cannot shadow it).
private func systemWrite(_ fd: Int32, _ pointer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, pointer, count)
}
