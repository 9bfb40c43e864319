import Foundation

/// The optimizer side of a training checkpoint: AdamW's configuration and state, the
/// learning-rate schedule, the shuffling seed and the data position. Saved as one safetensors
/// file (written atomically: temporary file, fsync, rename):
///
/// - tensors `exp_avg.<name>` and `exp_avg_sq.<name>` (F32, raw bits) per parameter, where
///   `<name>` is the caller's parameter name (default: its index);
/// - `__metadata__`: `format` = `lorta-adamw-1`, `step`, `learning_rate`, `beta1`, `beta2`,
///   `epsilon`, `weight_decay` (Swift's shortest round-trip decimal form of the Doubles),
///   `schedule` (``LearningRateSchedule/description``), `seed`, `epoch`, `batch_in_epoch`,
///   `parameter_count`, `parameter.<i>` (the name of parameter i).
///
/// Loading gives back the same bits, so continuing from a loaded checkpoint equals running
/// straight through.
public struct OptimizerCheckpoint: Sendable {
    public static let format = "lorta-adamw-1"

    public var optimizer: AdamW
    public var schedule: LearningRateSchedule
    public var seed: UInt64
    public var position: TrainingPosition
    /// One name per parameter tensor, in the optimizer's order (unique, non-empty).
    public var parameterNames: [String]

    /// The checkpoint of an optimizer and its training plan, ready to ``write(to:)``.
    /// - Parameters:
    ///   - optimizer: AdamW with its configuration and state (moments and update count).
    ///   - schedule: the learning-rate schedule of the run.
    ///   - seed: the seed of the per-epoch shuffle.
    ///   - position: where the next step's examples start.
    ///   - parameterNames: names of the optimizer's parameters; `nil` names them
    ///     "0", "1", ….
    /// - Throws: ``TrainingError/invalidCheckpoint(_:)`` when the names are not one per
    ///   moment tensor, not unique, or empty.
    public init(optimizer: AdamW, schedule: LearningRateSchedule, seed: UInt64, position: TrainingPosition,
                parameterNames: [String]? = nil) throws(TrainingError) {
        let n = optimizer.state.firstMoments.count
        let names = parameterNames ?? (0..<n).map(String.init)
        guard names.count == n else {
            throw .invalidCheckpoint("\(names.count) parameter names for \(n) parameter tensors")
        }
        guard Set(names).count == names.count, !names.contains(where: \.isEmpty) else {
            throw .invalidCheckpoint("parameter names must be unique and non-empty")
        }
        self.optimizer = optimizer
        self.schedule = schedule
        self.seed = seed
        self.position = position
        self.parameterNames = names
    }

    /// Writes the checkpoint atomically to `url`.
    /// - Throws: ``SafeTensorsError`` for file-system failures.
    public func write(to url: URL) throws {
        var writer = SafeTensorsWriter()
        let c = optimizer.configuration
        var meta: [String: String] = [
            "format": Self.format,
            "step": String(optimizer.state.step),
            "learning_rate": "\(c.learningRate)", "beta1": "\(c.beta1)", "beta2": "\(c.beta2)",
            "epsilon": "\(c.epsilon)", "weight_decay": "\(c.weightDecay)",
            "schedule": schedule.description,
            "seed": String(seed),
            "epoch": String(position.epoch), "batch_in_epoch": String(position.batchInEpoch),
            "parameter_count": String(parameterNames.count),
        ]
        for (i, name) in parameterNames.enumerated() {
            meta["parameter.\(i)"] = name
            try writer.add("exp_avg.\(name)", optimizer.state.firstMoments[i])
            try writer.add("exp_avg_sq.\(name)", optimizer.state.secondMoments[i])
        }
        writer.metadata = meta
        try writer.write(to: url)
    }

    /// Reads a checkpoint written by ``write(to:)``.
    /// - Throws: ``SafeTensorsError`` for an unreadable or invalid file;
    ///   ``TrainingError/invalidCheckpoint(_:)`` for a missing or malformed metadata value or
    ///   tensor; ``TrainingError`` validation errors of the stored hyper-parameters.
    public init(contentsOf url: URL) throws {
        let reader = try SafeTensorsReader(contentsOf: url)
        let meta = reader.metadata
        func value(_ key: String) throws(TrainingError) -> String {
            guard let v = meta[key] else { throw .invalidCheckpoint("metadata has no \"\(key)\"") }
            return v
        }
        func parse<T: LosslessStringConvertible>(_ key: String, as: T.Type) throws(TrainingError) -> T {
            let text = try value(key)
            guard let v = T(text) else { throw .invalidCheckpoint("metadata \"\(key)\" = \"\(text)\" is not a valid \(T.self)") }
            return v
        }
        guard try value("format") == Self.format else {
            throw TrainingError.invalidCheckpoint("format \"\(meta["format"] ?? "")\" is not \(Self.format)")
        }
        let count = try parse("parameter_count", as: Int.self)
        guard count >= 0 else { throw TrainingError.invalidCheckpoint("negative parameter_count") }
        var names: [String] = [], m: [Tensor] = [], v: [Tensor] = []
        for i in 0..<count {
            let name = try value("parameter.\(i)")
            for (key, list) in [("exp_avg.\(name)", 0), ("exp_avg_sq.\(name)", 1)] {
                guard let entry = reader.entry(key) else { throw TrainingError.invalidCheckpoint("no tensor \"\(key)\"") }
                guard entry.dtype == .f32 else { throw TrainingError.invalidCheckpoint("tensor \"\(key)\" is \(entry.dtype.rawValue), not F32") }
                if list == 0 { m.append(try reader.tensor(key)) } else { v.append(try reader.tensor(key)) }
            }
            guard m[i].shape == v[i].shape else {
                throw TrainingError.invalidCheckpoint("exp_avg and exp_avg_sq of \"\(name)\" differ in shape")
            }
            names.append(name)
        }
        guard reader.entries.count == 2 * count else {
            throw TrainingError.invalidCheckpoint("\(reader.entries.count) tensors for \(count) parameters (expected \(2 * count))")
        }
        let step = try parse("step", as: Int.self)
        guard step >= 0 else { throw TrainingError.invalidCheckpoint("negative step") }
        let configuration = AdamWConfiguration(
            learningRate: try parse("learning_rate", as: Double.self), beta1: try parse("beta1", as: Double.self),
            beta2: try parse("beta2", as: Double.self), epsilon: try parse("epsilon", as: Double.self),
            weightDecay: try parse("weight_decay", as: Double.self))
        let optimizer = try AdamW(configuration: configuration,
                                  state: OptimizerState(step: step, firstMoments: m, secondMoments: v))
        let position = TrainingPosition(epoch: try parse("epoch", as: Int.self),
                                        batchInEpoch: try parse("batch_in_epoch", as: Int.self))
        guard position.epoch >= 0, position.batchInEpoch >= 0 else {
            throw TrainingError.invalidCheckpoint("negative epoch or batch position")
        }
        try self.init(optimizer: optimizer, schedule: try LearningRateSchedule(parsing: try value("schedule")),
                      seed: try parse("seed", as: UInt64.self), position: position, parameterNames: names)
    }
}
