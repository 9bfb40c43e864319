import CKernels

/// Errors raised by the LoRA layer, its configuration and the merge helpers.
///
/// Every user mistake (bad rank, bad alpha, mismatched shapes, merging twice) is reported with
/// one of these cases; nothing in the LoRA API traps on user input.
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
    /// A C kernel rejected its arguments (a bug in this library if it ever happens after the
    /// Swift-side checks); `status` is the `lt_status` code.
    case kernelFailure(function: String, status: Int)

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
        case .kernelFailure(let function, let status):
            let text = lt_status_string(Int32(status)).map { String(cString: $0) } ?? "unknown status"
            return "LoRA: \(function) failed with status \(status) (\(text))"
        }
    }

    /// Throws ``kernelFailure(function:status:)`` unless `status` is `LT_OK`.
    static func check(_ status: lt_status, _ function: String) throws {
        guard status == LT_OK else {
            throw LoRAError.kernelFailure(function: function, status: Int(status.rawValue))
        }
    }
}
