/// A report that cannot be rendered or written. ``section`` names the chart, table or file
/// concerned (e.g. `ROC chart "layer 3"`), ``problem`` says what is wrong with it.
///
/// Every public entry point of this module validates its input and throws this error; none
/// traps on user input.
public struct ReportError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What is wrong. Each case carries a sentence naming the offending value.
    public enum Problem: Equatable, Sendable {
        /// A value that must be finite is NaN or ±infinity (NaN is allowed only as a missing
        /// heat-map cell).
        case nonFiniteValue(String)
        /// A value lies outside its range (a rate outside 0...1, a non-positive score on a
        /// logarithmic axis, unsorted ROC points…).
        case outOfRange(String)
        /// Rows or labels that do not match in length.
        case shapeMismatch(String)
        /// Nothing to draw (no curves, no points, no scores).
        case empty(String)
        /// An option (bin count, digits, legend limit…) outside its allowed range.
        case invalidOption(String)
        /// A failed system call while writing the report: what was attempted, the path and
        /// the system's reason.
        case fileSystem(operation: String, path: String, reason: String)
    }

    /// The chart, table or file concerned, e.g. `histogram "scores at layer 3"`.
    public let section: String
    /// What is wrong with it.
    public let problem: Problem

    /// Makes an error record.
    public init(section: String, problem: Problem) {
        self.section = section
        self.problem = problem
    }

    /// `section: explanation`.
    public var description: String {
        let detail: String
        switch problem {
        case .nonFiniteValue(let s): detail = "non-finite value: \(s)"
        case .outOfRange(let s): detail = "value out of range: \(s)"
        case .shapeMismatch(let s): detail = "shape mismatch: \(s)"
        case .empty(let s): detail = "nothing to draw: \(s)"
        case .invalidOption(let s): detail = "invalid option: \(s)"
        case .fileSystem(let op, let path, let reason): detail = "cannot \(op) \(path): \(reason)"
        }
        return "\(section): \(detail)"
    }
}
