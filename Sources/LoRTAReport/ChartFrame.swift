/// The geometry shared by the line and bar charts: a viewBox, a plot rectangle, axes with ticks
/// and grid lines, a title and a legend column to the right of the plot.
struct ChartFrame {
    /// viewBox width and height.
    var width: Double
    var height: Double
    /// The plot rectangle.
    var left: Double, top: Double, plotWidth: Double, plotHeight: Double
    /// x of the legend column.
    var legendX: Double { left + plotWidth + 28 }
    var bottom: Double { top + plotHeight }

    /// Opens the figure and the svg element, with the accessible title and the visible title.
    func open(into out: inout String, title: String, kind: String) {
        let t = Markup.escape(title)
        out += "<figure class=\"chart \(kind)\">\n"
        out += "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(Markup.c(width)) \(Markup.c(height))\" "
        out += "width=\"\(Markup.c(width))\" height=\"\(Markup.c(height))\" role=\"img\" font-size=\"12\">\n"
        out += "<title>\(t)</title>\n"
        out += "<rect x=\"0\" y=\"0\" width=\"\(Markup.c(width))\" height=\"\(Markup.c(height))\" fill=\"#ffffff\"/>\n"
        out += "<text x=\"\(Markup.c(left))\" y=\"22\" font-size=\"15\" font-weight=\"bold\">\(Markup.escape(Markup.truncated(title, to: 90)))</text>\n"
    }

    func close(into out: inout String) {
        out += "</svg>\n</figure>\n"
    }

    /// The plot rectangle (class `plot-area`: tests and readers find the mapping from it).
    func plotArea(into out: inout String) {
        out += "<rect class=\"plot-area\" x=\"\(Markup.c(left))\" y=\"\(Markup.c(top))\" width=\"\(Markup.c(plotWidth))\" height=\"\(Markup.c(plotHeight))\" fill=\"#ffffff\" stroke=\"#888888\" stroke-width=\"1\"/>\n"
    }

    /// Vertical grid lines, tick marks and labels at `ticks` (position in 0...1 of the plot
    /// width, label), and the axis title under them.
    func xAxis(into out: inout String, ticks: [(position: Double, label: String)], title: String) {
        out += "<g class=\"x-axis\" text-anchor=\"middle\">\n"
        for tick in ticks {
            let x = Markup.c(left + tick.position * plotWidth)
            out += "<line x1=\"\(x)\" y1=\"\(Markup.c(top))\" x2=\"\(x)\" y2=\"\(Markup.c(bottom))\" stroke=\"#e4e4e4\" stroke-width=\"1\"/>"
            out += "<line x1=\"\(x)\" y1=\"\(Markup.c(bottom))\" x2=\"\(x)\" y2=\"\(Markup.c(bottom + 5))\" stroke=\"#555555\" stroke-width=\"1\"/>"
            out += "<text x=\"\(x)\" y=\"\(Markup.c(bottom + 19))\">\(Markup.escape(tick.label))</text>\n"
        }
        out += "<text x=\"\(Markup.c(left + plotWidth / 2))\" y=\"\(Markup.c(bottom + 40))\" font-size=\"13\">\(Markup.escape(title))</text>\n"
        out += "</g>\n"
    }

    /// Horizontal grid lines, tick marks and labels at `ticks` (position in 0...1 from the
    /// bottom), and the rotated axis title.
    func yAxis(into out: inout String, ticks: [(position: Double, label: String)], title: String) {
        out += "<g class=\"y-axis\" text-anchor=\"end\">\n"
        for tick in ticks {
            let y = Markup.c(bottom - tick.position * plotHeight)
            out += "<line x1=\"\(Markup.c(left))\" y1=\"\(y)\" x2=\"\(Markup.c(left + plotWidth))\" y2=\"\(y)\" stroke=\"#e4e4e4\" stroke-width=\"1\"/>"
            out += "<line x1=\"\(Markup.c(left - 5))\" y1=\"\(y)\" x2=\"\(Markup.c(left))\" y2=\"\(y)\" stroke=\"#555555\" stroke-width=\"1\"/>"
            out += "<text x=\"\(Markup.c(left - 8))\" y=\"\(y)\" dy=\"4\">\(Markup.escape(tick.label))</text>\n"
        }
        let cx = Markup.c(left - 50), cy = Markup.c(top + plotHeight / 2)
        out += "<text x=\"\(cx)\" y=\"\(cy)\" font-size=\"13\" text-anchor=\"middle\" transform=\"rotate(-90 \(cx) \(cy))\">\(Markup.escape(title))</text>\n"
        out += "</g>\n"
    }
}
