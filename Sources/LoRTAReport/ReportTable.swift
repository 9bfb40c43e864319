/// A table of a report: a caption, a header row and rows of cells (text or numbers).
///
/// Typical use: one row per observation point and detector with AUROC, average precision and
/// the true-positive rates at 1% and 5% false-positive rate.
public struct ReportTable: Sendable, Equatable {
    /// One cell of a table.
    public enum Cell: Sendable, Equatable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
        /// Text, shown as is (escaped).
        case text(String)
        /// A number with `digits` digits after the decimal point (0...15), formatted without
        /// a locale ("0.9312"); right-aligned. NaN and ±infinity print as "NaN", "+∞", "−∞".
        case number(Double, digits: Int)
        /// An integer (e.g. a count); right-aligned.
        case integer(Int)

        /// A ``text(_:)`` cell.
        public init(stringLiteral value: String) { self = .text(value) }
        /// An ``integer(_:)`` cell.
        public init(integerLiteral value: Int) { self = .integer(value) }
    }

    /// The caption shown above the table (`nil`: none).
    public var caption: String?
    /// Column headings; empty for a table without a header row.
    public var header: [String]
    /// The rows; each has `header.count` cells (when there is a header), all rows the same
    /// number of cells.
    public var rows: [[Cell]]

    /// Makes a table.
    public init(caption: String? = nil, header: [String], rows: [[Cell]]) {
        self.caption = caption
        self.header = header
        self.rows = rows
    }

    var name: String { "table \"\(caption ?? header.joined(separator: ", "))\"" }

    /// Checks row lengths and digit counts.
    /// - Throws: ``ReportError`` with ``ReportError/Problem/shapeMismatch(_:)`` for a row of
    ///   another length, ``ReportError/Problem/invalidOption(_:)`` for digits outside 0...15.
    /// - Complexity: O(number of cells).
    public func validate() throws(ReportError) {
        let width = header.isEmpty ? rows.first?.count ?? 0 : header.count
        for (r, row) in rows.enumerated() {
            guard row.count == width else {
                throw ReportError(section: name, problem: .shapeMismatch(
                    "row \(r) has \(row.count) cells, expected \(width)\(header.isEmpty ? " (as row 0)" : " (one per column heading)")"))
            }
            for (c, cell) in row.enumerated() {
                if case .number(_, let digits) = cell, !(0...15).contains(digits) {
                    throw ReportError(section: name, problem: .invalidOption(
                        "row \(r), column \(c): \(digits) digits (must be in 0...15)"))
                }
            }
        }
    }

    func render(into out: inout String) {
        out += "<table class=\"data\">\n"
        if let caption { out += "<caption>\(Markup.escape(caption))</caption>\n" }
        if !header.isEmpty {
            out += "<thead>\n<tr>"
            for h in header { out += "<th scope=\"col\">\(Markup.escape(h))</th>" }
            out += "</tr>\n</thead>\n"
        }
        out += "<tbody>\n"
        for row in rows {
            out += "<tr>"
            for cell in row {
                switch cell {
                case .text(let s): out += "<td>\(Markup.escape(s))</td>"
                case .number(let x, let digits): out += "<td class=\"num\">\(Markup.fixed(x, digits: digits))</td>"
                case .integer(let n): out += "<td class=\"num\">\(n)</td>"
                }
            }
            out += "</tr>\n"
        }
        out += "</tbody>\n</table>\n"
    }
}
