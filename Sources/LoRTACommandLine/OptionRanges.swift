import ArgumentParser

/// The one range check of numeric command-line options. Every failure names the option and the
/// allowed range, so `--batch-size 0` or `--epochs 9223372036854775807` stop before any work
/// with a message instead of dividing by zero or overflowing later. Commands call it from
/// `validate()`.
enum OptionRange {
    /// Upper bounds that keep every product of options far from `Int.max` while allowing any
    /// realistic run.
    static let count = 1_000_000_000
    static let threads = 4096

    /// `value` (when given) must lie in `range`.
    /// - Throws: `ValidationError` "--NAME must be in LO...HI (got V)".
    static func check<T: Comparable>(_ value: T?, _ name: String, _ range: ClosedRange<T>) throws {
        guard let value else { return }
        guard range.contains(value) else { throw ValidationError("--\(name) must be in \(range.lowerBound)...\(range.upperBound) (got \(value))") }
    }

    /// A finite real `value` (when given) in `range`; with `exclusiveLower` the lower bound itself
    /// is refused.
    /// - Throws: `ValidationError` naming the option and the range.
    static func check<T: BinaryFloatingPoint>(_ value: T?, _ name: String, _ range: ClosedRange<T>,
                                              exclusiveLower: Bool = false) throws {
        guard let value else { return }
        let low = exclusiveLower ? "(\(range.lowerBound)" : "[\(range.lowerBound)"
        guard value.isFinite, range.contains(value), !(exclusiveLower && value == range.lowerBound) else {
            throw ValidationError("--\(name) must be a finite number in \(low), \(range.upperBound)] (got \(value))")
        }
    }

    /// `a × b` without overflow.
    /// - Throws: `ValidationError` naming what the product counts.
    static func product(_ a: Int, _ b: Int, _ what: String) throws -> Int {
        let (p, overflow) = a.multipliedReportingOverflow(by: b)
        guard !overflow, p <= count else { throw ValidationError("\(what) (\(a) × \(b)) exceeds \(count)") }
        return p
    }
}
