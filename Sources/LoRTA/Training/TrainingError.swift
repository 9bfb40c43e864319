import CKernels

/// Everything the training utilities (optimizer, schedule, batching, optimizer checkpoints)
/// reject. Each case says what was wrong and where.
public enum TrainingError: Error, Equatable, CustomStringConvertible {
    /// A hyper-parameter is out of range (`name`, the value, the accepted range).
    case invalidHyperparameter(name: String, value: Double, expected: String)
    /// `update` received a different number of gradients than parameters, or a different
    /// number of parameters than the optimizer state holds.
    case parameterCountMismatch(expected: Int, actual: Int)
    /// Parameter `index` and its gradient (or its optimizer state) have different shapes.
    case shapeMismatch(index: Int, expected: [Int], actual: [Int])
    /// Gradient `index` holds NaN or ±Inf at `element` (flat index). Nothing was updated.
    case nonFiniteGradient(index: Int, element: Int)
    /// A schedule is malformed (warm-up longer than training, negative counts, …).
    case invalidSchedule(String)
    /// A batching or accumulation setting is out of range.
    case invalidBatching(String)
    /// An optimizer checkpoint file is inconsistent (missing tensor or metadata, bad value).
    case invalidCheckpoint(String)
    /// A C kernel returned an error status.
    case kernel(function: String, status: Int32)
    /// A training checkpoint (``Trainer``) cannot be written or resumed: a missing or malformed file,
    /// a wrong format tag, or contents that do not fit each other, the model or the data.
    /// `file` is the path of the offending file (or of the directory).
    case invalidTrainingCheckpoint(file: String, reason: String)

    public var description: String {
        switch self {
        case .invalidHyperparameter(let name, let value, let expected):
            return "invalid \(name) \(value): expected \(expected)"
        case .parameterCountMismatch(let expected, let actual):
            return "expected \(expected) parameter tensors, got \(actual)"
        case .shapeMismatch(let index, let expected, let actual):
            return "parameter \(index): expected shape \(expected), got \(actual)"
        case .nonFiniteGradient(let index, let element):
            return "gradient of parameter \(index) is not finite at element \(element); nothing was updated"
        case .invalidSchedule(let reason):
            return "invalid learning-rate schedule: \(reason)"
        case .invalidBatching(let reason):
            return "invalid batching: \(reason)"
        case .invalidCheckpoint(let reason):
            return "invalid optimizer checkpoint: \(reason)"
        case .kernel(let function, let status):
            let text = lt_status_string(status).map { String(cString: $0) } ?? "unknown status"
            return "\(function) failed: \(text) (status \(status))"
        case .invalidTrainingCheckpoint(let file, let reason):
            return "training checkpoint \(file): \(reason)"
        }
    }
}
