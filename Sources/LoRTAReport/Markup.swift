import Foundation

// Internal helpers shared by the renderers: escaping, locale-free number formatting, axis ticks,
// the palette and the colour scales. Everything here is deterministic: the same input gives the
// same characters on every run and machine.

enum Markup {
    /// Escapes text for element content and attribute values (XHTML-compatible): `&`, `<`, `>`,
    /// `"`, `'` become entities; characters XML forbids (C0 controls other than tab, newline,
    /// carriage return; U+FFFE, U+FFFF) become U+FFFD.
    /// - Complexity: O(n) in the length of `text`.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            case "\t", "\n", "\r": out.unicodeScalars.append(scalar)
            default:
                if scalar.value < 0x20 || scalar.value == 0xFFFE || scalar.value == 0xFFFF {
                    out += "\u{FFFD}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }

    /// `text` cut to `limit` characters, with "…" as the last one when cut.
    static func truncated(_ text: String, to limit: Int) -> String {
        text.count <= limit ? text : String(text.prefix(max(limit - 1, 0))) + "…"
    }

    /// Fixed-point decimal with `digits` digits after the point, no locale, no "-0".
    /// Non-finite values print as "NaN", "+∞", "−∞". Precondition: 0 ≤ digits ≤ 15.
    static func fixed(_ x: Double, digits: Int) -> String {
        guard x.isFinite else { return x.isNaN ? "NaN" : (x > 0 ? "+∞" : "−∞") }
        let s = String(format: "%.*f", digits, x)
        if s.hasPrefix("-"), s.dropFirst().allSatisfy({ $0 == "0" || $0 == "." }) {
            return String(s.dropFirst())
        }
        return s
    }

    /// Four significant digits (`%.4g`), for tooltips of values of any magnitude.
    static func short(_ x: Double) -> String {
        guard x.isFinite else { return fixed(x, digits: 0) }
        let s = String(format: "%.4g", x)
        return s == "-0" ? "0" : s
    }

    /// A viewBox coordinate rounded to 0.01 with trailing zeros dropped ("92", "92.5",
    /// "92.25"). `centi` is the coordinate × 100, already rounded.
    static func coordinate(centi: Int) -> String {
        let negative = centi < 0
        let m = negative ? -centi : centi
        let whole = m / 100, frac = m % 100
        var s = negative ? "-" : ""
        s += String(whole)
        if frac != 0 {
            s += frac % 10 == 0 ? "." + String(frac / 10) : (frac < 10 ? ".0" : ".") + String(frac)
        }
        return s
    }

    /// `x` in hundredths of a viewBox unit (the geometry is bounded, so this cannot overflow).
    static func centi(_ x: Double) -> Int { Int((x * 100).rounded()) }

    /// A coordinate formatted for an attribute.
    static func c(_ x: Double) -> String { coordinate(centi: centi(x)) }

    /// A "nice" tick step (1, 2 or 5 × 10^k) for about `count` intervals over `range` > 0.
    static func niceStep(range: Double, count: Int) -> Double {
        let raw = range / Double(max(count, 1))
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        let f = raw / magnitude
        let nice: Double = f < 1.5 ? 1 : (f < 3 ? 2 : (f < 7 ? 5 : 10))
        return nice * magnitude
    }

    /// Multiples of `step` within lo...hi (with a tolerance of 1e-9 steps at both ends).
    static func ticks(from lo: Double, to hi: Double, step: Double) -> [Double] {
        let first = (lo / step - 1e-9).rounded(.up)
        let last = (hi / step + 1e-9).rounded(.down)
        guard first <= last, last - first < 1000 else { return [] }
        return stride(from: first, through: last, by: 1).map { $0 * step }
    }

    /// Digits after the point needed to print multiples of `step` exactly.
    static func digits(forStep step: Double) -> Int {
        min(max(0, -Int((log10(step) + 1e-9).rounded(.down))), 12)
    }

    /// Okabe & Ito's colour-blind-friendly palette, ordered for lines on white (yellow last).
    static let palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
    /// Dash patterns that, with the palette, tell up to 32 lines apart.
    static let dashes: [String?] = [nil, "7 3", "2 2", "9 3 2 3"]

    /// Colour and dash pattern of line `index`.
    static func lineStyle(_ index: Int) -> (color: String, dash: String?) {
        (palette[index % palette.count], dashes[(index / palette.count) % dashes.count])
    }

    /// Colour of series `index` in a histogram.
    static func seriesColor(_ index: Int) -> String { palette[index % palette.count] }

    /// `#rrggbb` for components in 0...255.
    static func hex(_ r: Int, _ g: Int, _ b: Int) -> String {
        let digits = Array("0123456789ABCDEF")
        var s = "#"
        for v in [r, g, b] {
            let c = min(max(v, 0), 255)
            s.append(digits[c / 16]); s.append(digits[c % 16])
        }
        return s
    }
}

/// A colour scale: anchor colours at equal spacing over 0...1, linear interpolation in RGB.
struct ColorScale {
    let anchors: [(Int, Int, Int)]

    /// Viridis (perceptually uniform, colour-blind friendly), low = dark purple, high = yellow.
    static let sequential = ColorScale(anchors: [
        (0x44, 0x01, 0x54), (0x47, 0x2D, 0x7B), (0x3B, 0x52, 0x8B), (0x2C, 0x72, 0x8E),
        (0x21, 0x91, 0x8C), (0x28, 0xAE, 0x80), (0x5E, 0xC9, 0x62), (0xAD, 0xDC, 0x30),
        (0xFD, 0xE7, 0x25),
    ])
    /// ColorBrewer RdBu (colour-blind safe), negative = blue, 0 = near white, positive = red.
    static let diverging = ColorScale(anchors: [
        (0x21, 0x66, 0xAC), (0x43, 0x93, 0xC3), (0x92, 0xC5, 0xDE), (0xD1, 0xE5, 0xF0),
        (0xF7, 0xF7, 0xF7), (0xFD, 0xDB, 0xC7), (0xF4, 0xA5, 0x82), (0xD6, 0x60, 0x4D),
        (0xB2, 0x18, 0x2B),
    ])

    /// The colour at `t` (clamped to 0...1) and whether dark text reads better on it.
    func color(at t: Double) -> (hex: String, darkText: Bool) {
        let u = min(max(t, 0), 1) * Double(anchors.count - 1)
        let i = min(Int(u.rounded(.down)), anchors.count - 2)
        let f = u - Double(i)
        let a = anchors[i], b = anchors[i + 1]
        func mix(_ x: Int, _ y: Int) -> Int { Int((Double(x) + (Double(y) - Double(x)) * f).rounded()) }
        let r = mix(a.0, b.0), g = mix(a.1, b.1), bl = mix(a.2, b.2)
        let luminance = 0.2126 * Double(r) + 0.7152 * Double(g) + 0.0722 * Double(bl)
        return (Markup.hex(r, g, bl), luminance > 140)
    }
}
