/// A grid of values coloured by a scale, e.g. the contribution of each attention head
/// (columns) of each layer (rows) to an anomaly score.
///
/// Each cell is an SVG `rect` with a `<title>` tooltip ("layer 3, head 5: 0.4172"); NaN marks
/// a missing cell, drawn grey and hatched and listed in the legend as "missing". A colour bar
/// beside the grid shows the scale with its minimum and maximum.
public struct HeatMap: Sendable, Equatable {
    /// How values map to colours.
    public enum ColorScheme: Sendable, Equatable {
        /// Viridis from the minimum (dark purple) to the maximum (yellow): for values of one sign.
        case sequential
        /// Blue (negative) – white (0) – red (positive), symmetric around 0 up to the largest
        /// magnitude: for signed values.
        case diverging
    }

    /// The chart's title.
    public var title: String
    /// One label per row (e.g. "0", "1", … or "layer 0"), top to bottom.
    public var rowLabels: [String]
    /// One label per column (e.g. head indices), left to right.
    public var columnLabels: [String]
    /// `values[row][column]`: `rowLabels.count` rows of `columnLabels.count` values. NaN is a
    /// missing cell; ±infinity is not allowed.
    public var values: [[Double]]
    /// The title of the row axis (and of rows in tooltips); default "layer".
    public var rowTitle: String
    /// The title of the column axis (and of columns in tooltips); default "head".
    public var columnTitle: String
    /// Colour scale; default ``ColorScheme/sequential``.
    public var colorScheme: ColorScheme
    /// Print each value in its cell (in addition to the tooltip), with ``valueDigits`` digits.
    public var showValues: Bool
    /// Digits after the decimal point in tooltips, cells and the legend, 0...15; default 3.
    public var valueDigits: Int

    /// Makes a heat map.
    public init(title: String, rowLabels: [String], columnLabels: [String], values: [[Double]],
                rowTitle: String = "layer", columnTitle: String = "head",
                colorScheme: ColorScheme = .sequential, showValues: Bool = false, valueDigits: Int = 3) {
        self.title = title
        self.rowLabels = rowLabels
        self.columnLabels = columnLabels
        self.values = values
        self.rowTitle = rowTitle
        self.columnTitle = columnTitle
        self.colorScheme = colorScheme
        self.showValues = showValues
        self.valueDigits = valueDigits
    }

    var name: String { "heat map \"\(title)\"" }

    /// The largest grid drawn (cells), so one report stays a reasonable size.
    public static let maximumCellCount = 65_536

    /// Checks the shape, the values and the options.
    /// - Throws: ``ReportError`` naming the heat map: no rows or columns
    ///   (``ReportError/Problem/empty(_:)``), a number of rows or a row length that differs from
    ///   the labels (``ReportError/Problem/shapeMismatch(_:)``), ±infinity in a cell
    ///   (``ReportError/Problem/nonFiniteValue(_:)``), digits outside 0...15 or more than
    ///   ``maximumCellCount`` cells (``ReportError/Problem/invalidOption(_:)``).
    /// - Complexity: O(rows × columns).
    public func validate() throws(ReportError) {
        func fail(_ p: ReportError.Problem) -> ReportError { ReportError(section: name, problem: p) }
        guard (0...15).contains(valueDigits) else {
            throw fail(.invalidOption("value digits \(valueDigits) (must be in 0...15)"))
        }
        guard !rowLabels.isEmpty, !columnLabels.isEmpty else {
            throw fail(.empty("\(rowLabels.count) row label(s) and \(columnLabels.count) column label(s); both must be non-empty"))
        }
        guard values.count == rowLabels.count else {
            throw fail(.shapeMismatch("\(values.count) rows of values for \(rowLabels.count) row labels"))
        }
        guard rowLabels.count <= Self.maximumCellCount / columnLabels.count else {
            throw fail(.invalidOption("\(rowLabels.count) × \(columnLabels.count) cells (at most \(Self.maximumCellCount))"))
        }
        for (r, row) in values.enumerated() {
            guard row.count == columnLabels.count else {
                throw fail(.shapeMismatch("row \(r) (\"\(rowLabels[r])\") has \(row.count) values for \(columnLabels.count) column labels"))
            }
            for (c, v) in row.enumerated() where v.isInfinite {
                throw fail(.nonFiniteValue("row \(r) (\"\(rowLabels[r])\"), column \(c) (\"\(columnLabels[c])\") is \(Markup.short(v)); only NaN (missing) is allowed"))
            }
        }
    }

    func render(into out: inout String, id: Int) {
        let rows = rowLabels.count, columns = columnLabels.count
        var lo = Double.infinity, hi = -Double.infinity, missing = 0
        for row in values {
            for v in row {
                if v.isNaN { missing += 1 } else { lo = min(lo, v); hi = max(hi, v) }
            }
        }
        let hasValues = lo <= hi
        let scale: ColorScale
        var (scaleLo, scaleHi) = (lo, hi)
        switch colorScheme {
        case .sequential: scale = .sequential
        case .diverging:
            scale = .diverging
            let m = hasValues ? max(abs(lo), abs(hi)) : 0
            (scaleLo, scaleHi) = (-m, m)
        }
        func position(_ v: Double) -> Double { scaleHi > scaleLo ? (v - scaleLo) / (scaleHi - scaleLo) : 0.5 }

        // Geometry: the grid fills at most 520 × 420 units, cells at most 40 wide / 28 high.
        let longestRowLabel = rowLabels.map(\.count).max() ?? 0
        let left = 40 + min(Double(max(longestRowLabel, 2)) * 7.5, 150)
        let top = 78.0
        let cellWidth = min(40, 520 / Double(columns))
        let cellHeight = min(28, max(6, 420 / Double(rows)))
        let gridWidth = cellWidth * Double(columns), gridHeight = cellHeight * Double(rows)
        let legendX = left + gridWidth + 36
        let width = legendX + 150
        let height = max(top + gridHeight + 30, top + 260)
        let frame = ChartFrame(width: width, height: height, left: left, top: top, plotWidth: gridWidth, plotHeight: gridHeight)
        frame.open(into: &out, title: title, kind: "heatmap")
        let gradient = "lr-gradient-\(id)", hatch = "lr-missing-\(id)"
        out += "<defs>\n<pattern id=\"\(hatch)\" patternUnits=\"userSpaceOnUse\" width=\"6\" height=\"6\">"
        out += "<rect x=\"0\" y=\"0\" width=\"6\" height=\"6\" fill=\"#dddddd\"/><path d=\"M0,6 L6,0\" stroke=\"#888888\" stroke-width=\"1\"/></pattern>\n"
        out += "<linearGradient id=\"\(gradient)\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">"
        for (k, a) in scale.anchors.enumerated() {
            let offset = Markup.fixed(Double(k) / Double(scale.anchors.count - 1), digits: 3)
            out += "<stop offset=\"\(offset)\" stop-color=\"\(Markup.hex(a.0, a.1, a.2))\"/>"
        }
        out += "</linearGradient>\n</defs>\n"

        // Column labels (above the grid; every k-th when they would overlap) and title.
        let columnStride = max(1, Int((18 / cellWidth).rounded(.up)))
        out += "<g class=\"column-labels\" text-anchor=\"middle\" font-size=\"11\">\n"
        out += "<text x=\"\(Markup.c(left + gridWidth / 2))\" y=\"\(Markup.c(top - 30))\" font-size=\"13\">\(Markup.escape(columnTitle))</text>\n"
        for c in stride(from: 0, to: columns, by: columnStride) {
            out += "<text x=\"\(Markup.c(left + (Double(c) + 0.5) * cellWidth))\" y=\"\(Markup.c(top - 8))\">\(Markup.escape(Markup.truncated(columnLabels[c], to: 8)))</text>\n"
        }
        out += "</g>\n"
        let rowStride = max(1, Int((12 / cellHeight).rounded(.up)))
        out += "<g class=\"row-labels\" text-anchor=\"end\" font-size=\"11\">\n"
        for r in stride(from: 0, to: rows, by: rowStride) {
            out += "<text x=\"\(Markup.c(left - 6))\" y=\"\(Markup.c(top + (Double(r) + 0.5) * cellHeight))\" dy=\"4\">\(Markup.escape(Markup.truncated(rowLabels[r], to: 20)))</text>\n"
        }
        let cx = Markup.c(14), cy = Markup.c(top + gridHeight / 2)
        out += "<text x=\"\(cx)\" y=\"\(cy)\" font-size=\"13\" text-anchor=\"middle\" transform=\"rotate(-90 \(cx) \(cy))\">\(Markup.escape(rowTitle))</text>\n"
        out += "</g>\n"

        // Cells.
        let fontSize = min(11, cellHeight * 0.6, cellWidth / (Double(valueDigits) + 3) * 1.7)
        let printValues = showValues && fontSize >= 6
        out += "<g class=\"cells\" stroke=\"#ffffff\" stroke-width=\"0.5\">\n"
        for r in 0..<rows {
            for c in 0..<columns {
                let v = values[r][c]
                let x = Markup.c(left + Double(c) * cellWidth), y = Markup.c(top + Double(r) * cellHeight)
                let place = "\(rowTitle) \(rowLabels[r]), \(columnTitle) \(columnLabels[c])"
                if v.isNaN {
                    out += "<rect class=\"cell missing\" data-row=\"\(r)\" data-column=\"\(c)\" x=\"\(x)\" y=\"\(y)\" width=\"\(Markup.c(cellWidth))\" height=\"\(Markup.c(cellHeight))\" fill=\"url(#\(hatch))\">"
                    out += "<title>\(Markup.escape(place)): missing</title></rect>\n"
                    continue
                }
                let color = scale.color(at: position(v))
                let text = Markup.fixed(v, digits: valueDigits)
                out += "<rect class=\"cell\" data-row=\"\(r)\" data-column=\"\(c)\" x=\"\(x)\" y=\"\(y)\" width=\"\(Markup.c(cellWidth))\" height=\"\(Markup.c(cellHeight))\" fill=\"\(color.hex)\">"
                out += "<title>\(Markup.escape(place)): \(text)</title></rect>\n"
                if printValues {
                    out += "<text x=\"\(Markup.c(left + (Double(c) + 0.5) * cellWidth))\" y=\"\(Markup.c(top + (Double(r) + 0.5) * cellHeight))\" dy=\"\(Markup.c(fontSize * 0.35))\" font-size=\"\(Markup.c(fontSize))\" text-anchor=\"middle\" stroke=\"none\" style=\"fill: \(color.darkText ? "#000000" : "#ffffff")\">\(text)</text>\n"
                }
            }
        }
        out += "</g>\n"

        // Colour bar with maximum (top), minimum (bottom) and, for a diverging scale, 0.
        let barTop = top, barHeight = 200.0
        out += "<g class=\"color-legend\" font-size=\"11\">\n"
        out += "<rect x=\"\(Markup.c(legendX))\" y=\"\(Markup.c(barTop))\" width=\"16\" height=\"\(Markup.c(barHeight))\" fill=\"url(#\(gradient))\" stroke=\"#888888\" stroke-width=\"0.5\"/>\n"
        if hasValues {
            var marks: [(Double, String)] = [(1, "max \(Markup.fixed(scaleHi, digits: valueDigits))"), (0, "min \(Markup.fixed(scaleLo, digits: valueDigits))")]
            if colorScheme == .diverging { marks.append((0.5, "0")) }
            for (t, label) in marks {
                out += "<text x=\"\(Markup.c(legendX + 22))\" y=\"\(Markup.c(barTop + (1 - t) * barHeight))\" dy=\"4\">\(Markup.escape(label))</text>\n"
            }
            if colorScheme == .diverging {
                out += "<text x=\"\(Markup.c(legendX))\" y=\"\(Markup.c(barTop + barHeight + 18))\">data: \(Markup.fixed(lo, digits: valueDigits)) … \(Markup.fixed(hi, digits: valueDigits))</text>\n"
            }
        } else {
            out += "<text x=\"\(Markup.c(legendX + 22))\" y=\"\(Markup.c(barTop + barHeight / 2))\" dy=\"4\">no values</text>\n"
        }
        if missing > 0 {
            let y = barTop + barHeight + 30
            out += "<rect x=\"\(Markup.c(legendX))\" y=\"\(Markup.c(y))\" width=\"16\" height=\"12\" fill=\"url(#\(hatch))\" stroke=\"#888888\" stroke-width=\"0.5\"/>"
            out += "<text x=\"\(Markup.c(legendX + 22))\" y=\"\(Markup.c(y + 6))\" dy=\"4\">missing (\(missing))</text>\n"
        }
        out += "</g>\n"
        frame.close(into: &out)
    }
}
