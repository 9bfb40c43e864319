/// Errors raised by the LoRA layer, its configuration and the merge helpers.
///
/// Every user mistake (bad rank, bad alpha, mismatched shapes, merging twice) is reported with
/// one of these cases; nothing in the LoRA API traps on user input. A C kernel that fails after
/// these checks (a bug in this library) throws ``KernelFailure`` instead.
public enum LoRAError: Error, Equatable, CustomStringConvertible {
    /// The rank `r` was below 1.
    case invalidRank(Int)
    /// `alpha` was NaN or infinite.
    case invalidAlpha(Float)
    /// A scale passed to ``LoRA/merge(into:a:b:scale:subtract:)`` (or derived from a
    /// configuration) was NaN or infinite.
    case invalidScale(Float)
    /// A tensor that must be a matrix (2-dimensional) was not; `name` says which.
    case notAMatrix(name: String, shape: [Int])
    /// A tensor had the wrong shape; `name` says which (e.g. "loraA", "input").
    case shapeMismatch(name: String, expected: [Int], actual: [Int])
    /// ``LoRALinear/merge()`` was called on a layer whose adapter is already merged.
    case alreadyMerged
    /// ``LoRALinear/unmerge()`` was called on a layer whose adapter is not merged.
    case notMerged
    /// ``LoRALinear/backward(input:outputGradient:computeInputGradient:)`` was called on a
    /// merged layer: its forward no longer depends on `loraA`/`loraB` separately.
    case backwardThroughMergedAdapter

    public var description: String {
        switch self {
        case .invalidRank(let r):
            return "LoRA rank must be at least 1, got \(r)"
        case .invalidAlpha(let a):
            return "LoRA alpha must be a finite number, got \(a)"
        case .invalidScale(let s):
            return "LoRA scale must be a finite number, got \(s)"
        case .notAMatrix(let name, let shape):
            return "LoRA: \(name) must be a 2-dimensional tensor, got shape \(shape)"
        case .shapeMismatch(let name, let expected, let actual):
            return "LoRA: \(name) must have shape \(expected), got \(actual)"
        case .alreadyMerged:
            return "LoRA: the adapter is already merged into the weight (call unmerge() first)"
        case .notMerged:
            return "LoRA: the adapter is not merged, there is nothing to unmerge"
        case .backwardThroughMergedAdapter:
            return "LoRA: cannot compute adapter gradients of a merged layer (call unmerge() first)"
        }
    }
}
