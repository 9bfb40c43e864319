/// The learning rate as a function of the optimizer step, like a PyTorch `LambdaLR` built by
/// transformers' `get_constant_schedule` / `get_linear_schedule_with_warmup`.
///
/// `learningRate(atStep: k)` is the rate used by the optimizer update number `k + 1`, i.e. with
/// `k` updates already made (LambdaLR's `last_epoch`); the factor is computed in `Double` and
/// returned as `Double` (torch keeps it as a Python float).
public enum LearningRateSchedule: Sendable, Equatable, CustomStringConvertible {
    /// The same rate at every step.
    case constant(Double)
    /// Linear warm-up from 0 to `peak` over `warmupSteps` steps, then linear decay to 0 at
    /// `totalSteps` (and 0 after): factor `k / max(1, w)` for `k < w`, else
    /// `max(0, (T − k) / max(1, T − w))`, as `get_linear_schedule_with_warmup`. Build it with
    /// ``linearWarmupDecay(peak:warmupSteps:totalSteps:)``, which validates the values; an
    /// unchecked value with bad fields still evaluates (never traps) but does not parse back.
    case linearWarmupDecayUnchecked(peak: Double, warmupSteps: Int, totalSteps: Int)

    /// A checked linear warm-up + decay schedule.
    /// - Throws: ``TrainingError/invalidSchedule(_:)`` when `peak` is negative or not finite,
    ///   `warmupSteps < 0`, `totalSteps < 1` or `warmupSteps > totalSteps`.
    public static func linearWarmupDecay(peak: Double, warmupSteps: Int, totalSteps: Int) throws(TrainingError) -> LearningRateSchedule {
        guard peak.isFinite, peak >= 0 else { throw .invalidSchedule("peak learning rate \(peak) must be finite and >= 0") }
        guard warmupSteps >= 0 else { throw .invalidSchedule("warm-up steps \(warmupSteps) must be >= 0") }
        guard totalSteps >= 1 else { throw .invalidSchedule("total steps \(totalSteps) must be >= 1") }
        guard warmupSteps <= totalSteps else {
            throw .invalidSchedule("warm-up steps \(warmupSteps) exceed the \(totalSteps) total steps")
        }
        return .linearWarmupDecayUnchecked(peak: peak, warmupSteps: warmupSteps, totalSteps: totalSteps)
    }

    /// The learning rate after `step` updates (`step` ≥ 0; negative steps are treated as 0). O(1).
    public func learningRate(atStep step: Int) -> Double {
        let k = max(0, step)
        switch self {
        case .constant(let lr):
            return lr
        case .linearWarmupDecayUnchecked(let peak, let w, let t):
            let factor: Double
            if k < w {
                factor = Double(k) / Double(max(1, w))
            } else {
                factor = max(0, Double(t - k) / Double(max(1, t - w)))
            }
            return peak * factor
        }
    }

    /// A one-line textual form, parsed back by ``init(parsing:)``: `constant:<lr>` or
    /// `linear:<peak>:<warmup>:<total>` (floats in Swift's shortest round-trip form).
    public var description: String {
        switch self {
        case .constant(let lr): return "constant:\(lr)"
        case .linearWarmupDecayUnchecked(let p, let w, let t): return "linear:\(p):\(w):\(t)"
        }
    }

    /// Parses ``description``.
    /// - Throws: ``TrainingError/invalidSchedule(_:)`` for any other text or out-of-range values.
    public init(parsing text: String) throws(TrainingError) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        switch parts.first {
        case "constant" where parts.count == 2:
            guard let lr = Double(parts[1]), lr.isFinite, lr >= 0 else { throw .invalidSchedule("cannot parse \"\(text)\"") }
            self = .constant(lr)
        case "linear" where parts.count == 4:
            guard let p = Double(parts[1]), let w = Int(parts[2]), let t = Int(parts[3]) else {
                throw .invalidSchedule("cannot parse \"\(text)\"")
            }
            self = try .linearWarmupDecay(peak: p, warmupSteps: w, totalSteps: t)
        default:
            throw .invalidSchedule("cannot parse \"\(text)\" (expected constant:<lr> or linear:<peak>:<warmup>:<total>)")
        }
    }
}
