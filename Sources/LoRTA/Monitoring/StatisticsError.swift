/// Errors raised by activation statistics, covariance estimators, detectors and metrics.
///
/// A C kernel's error status maps to a case here only where it means something to the user
/// (``notPositiveDefinite(order:)``, ``numericalFailure(operation:)``,
/// ``nonFiniteValue(operation:)``); any other error status (a bug in this library after the
/// Swift checks) throws ``KernelFailure``.
public enum StatisticsError: Error, Equatable, CustomStringConvertible {
    /// A dimension outside 1...2³¹−1 was requested.
    case invalidDimension(Int)
    /// Two objects (or an object and a batch) have different feature dimensions.
    case dimensionMismatch(operation: String, expected: Int, actual: Int)
    /// A batch, score list or matrix holds NaN or ±Infinity.
    case nonFiniteValue(operation: String)
    /// The estimator needs more rows than the statistics hold.
    case insufficientSamples(operation: String, count: Int, required: Int)
    /// A label list does not have one label per row / score.
    case labelCountMismatch(rows: Int, labels: Int)
    /// Per-label statistics would become inconsistent (some rows without a label).
    case labelsRequired(operation: String)
    /// The operation needs per-label statistics (e.g. class-conditional detectors).
    case missingLabelStatistics(operation: String)
    /// A covariance matrix is not positive definite: its leading minor of this order (1-based)
    /// is not positive. Use a ridge, Ledoit–Wolf or OAS estimator for rank-deficient data.
    case notPositiveDefinite(order: Int)
    /// An option is out of range.
    case invalidParameter(String)
    /// A metric needs both positive and negative examples.
    case singleClass(operation: String)
    /// A detector was used before ``AnomalyDetector/fit(_:)``.
    case notFitted(String)
    /// A LAPACK routine failed (e.g. the eigen-solver did not converge).
    case numericalFailure(operation: String)

    public var description: String {
        switch self {
        case .invalidDimension(let d): return "invalid feature dimension \(d) (must be in 1...\(Int32.max))"
        case .dimensionMismatch(let op, let e, let a):
            return "\(op): expected dimension \(e), got \(a)"
        case .nonFiniteValue(let op): return "\(op): input contains NaN or infinity"
        case .insufficientSamples(let op, let c, let r):
            return "\(op): needs at least \(r) rows, statistics hold \(c)"
        case .labelCountMismatch(let rows, let labels):
            return "expected one label per row: \(rows) rows, \(labels) labels"
        case .labelsRequired(let op):
            return "\(op): these statistics keep per-label statistics; supply labels for every row"
        case .missingLabelStatistics(let op):
            return "\(op): needs per-label statistics (fit with labels)"
        case .notPositiveDefinite(let k):
            return "covariance matrix is not positive definite (leading minor of order \(k) is not positive); "
                + "use a ridge, Ledoit–Wolf or OAS estimator"
        case .invalidParameter(let s): return "invalid parameter: \(s)"
        case .singleClass(let op): return "\(op): needs both positive and negative examples"
        case .notFitted(let s): return "\(s) is not fitted"
        case .numericalFailure(let op): return "\(op): LAPACK did not converge"
        }
    }
}
