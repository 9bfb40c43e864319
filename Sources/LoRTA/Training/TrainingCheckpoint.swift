import Foundation

/// Training checkpoints of ``Trainer``, the same layout for every task.
///
/// A checkpoint is a directory with three files and, when an adapter is trained, the adapter's
/// own directory. The directory is written as a whole (``AtomicFileWriter/replaceDirectory(at:_:)``:
/// built beside its place, flushed, then exchanged with the previous checkpoint in one atomic
/// step), so a process killed while saving leaves the previous checkpoint or the new one, never a
/// mix. It holds:
///
/// - `adapter/`: the adapter's files (``Adapter/save(to:host:)`` for the task's
///   ``TrainingTask/adapterHost``, loaded back with ``AdapterFiles/load(from:host:)``; LoRA in
///   PEFT's layout, so `PeftModel.from_pretrained` reads a checkpoint's adapter too). They say
///   what the adapter is (kind, rank, targets) — the checkpoint does not repeat it.
/// - `trainable.safetensors`: every trained tensor (the task's own, e.g. `head.weight` and
///   `head.bias`, then the adapter's ``Adapter/parameterNames(host:)``), F32 raw bits; metadata
///   `format` = `lorta-trainable-2`, `step`, `checkpoint_id` (a UUID shared with `trainer.json`).
/// - `optimizer.safetensors`: an ``OptimizerCheckpoint`` (AdamW moments `exp_avg.<name>`,
///   `exp_avg_sq.<name>`, hyper-parameters, schedule, seed, data position, step) with the same
///   parameter names in optimizer order.
/// - `trainer.json`: `format` = `lorta-trainer-3`, `checkpoint_id`, `step`, `position`
///   (`epoch`, `batch_in_epoch`), `configuration` (`steps`, `batch_size`, `micro_batch_size`
///   (absent = none), `optimizer` (`learning_rate`, `beta1`, `beta2`, `epsilon`,
///   `weight_decay`), `schedule` (``LearningRateSchedule/description``), `seed`), `task` (the
///   task's ``TrainingTask/checkpointRecord``: its kind, the model's sizes, a fingerprint of the
///   data, the task's settings), `adapter` (the adapter's ``Adapter/summary``, absent without
///   adapter), `parameters` (the names in optimizer order). Real numbers and the seed are JSON
///   strings in Swift's shortest round-trip form, so every value reads back with the same bits.
///
/// Loading still checks that the files belong to the same save (same step in all, same
/// `checkpoint_id` in the two that carry it: a directory assembled by hand from two saves is
/// refused), that the task record is the
/// given task's (same model, data and settings), and that the adapter directory's kind and
/// shapes give the recorded parameter names and shapes.
extension Trainer {
    static var trainerFileName: String { "trainer.json" }
    static var trainableFileName: String { "trainable.safetensors" }
    static var optimizerFileName: String { "optimizer.safetensors" }
    static var trainerFormat: String { "lorta-trainer-3" }
    static var trainableFormat: String { "lorta-trainable-2" }
    static var adapterDirectoryName: String { "adapter" }

    /// Saves the trained tensors, the optimizer state, the configuration and the data position
    /// as the directory `directory` (created when missing; an existing one is replaced as a
    /// whole, atomically — other files in it do not survive). See the extension's
    /// documentation for the format.
    /// - Throws: ``TrainingError/invalidTrainingCheckpoint(file:reason:)`` when `directory` is a
    ///   file or cannot be created or written, ``SafeTensorsError`` for failures of the tensor
    ///   files; the previous checkpoint is then left as it was. O(parameters).
    public func saveCheckpoint(to directory: URL) throws {
        let id = UUID().uuidString
        let names = parameterNames
        let record = TrainerCheckpointRecord(
            format: Self.trainerFormat, checkpointId: id, step: step,
            position: PositionRecord(epoch: position.epoch, batchInEpoch: position.batchInEpoch),
            configuration: ConfigurationRecord(configuration), task: task.checkpointRecord,
            adapter: adapter?.summary, parameters: names)
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let json = try encoder.encode(record)
        var writer = SafeTensorsWriter()
        writer.metadata = ["format": Self.trainableFormat, "step": String(step), "checkpoint_id": id]
        for (name, t) in zip(names, parameters) { try writer.add(name, t) }
        let optimizerFile = try OptimizerCheckpoint(optimizer: optimizer, schedule: configuration.schedule,
                                                    seed: configuration.seed, position: position, parameterNames: names)
        do {
            try AtomicFileWriter.replaceDirectory(at: directory) { staging in
                if let adapter {
                    try adapter.save(to: staging.appendingPathComponent(Self.adapterDirectoryName), host: task.adapterHost)
                }
                try writer.write(to: staging.appendingPathComponent(Self.trainableFileName))
                try optimizerFile.write(to: staging.appendingPathComponent(Self.optimizerFileName))
                try AtomicFileWriter.write(json, to: staging.appendingPathComponent(Self.trainerFileName))
            }
        } catch let failure as AtomicFileWriter.Failure {
            throw TrainingError.invalidTrainingCheckpoint(file: directory.path, reason: "cannot write: \(failure)")
        }
    }

    /// Resumes from a checkpoint written by ``saveCheckpoint(to:)``: adapter, the task's own
    /// tensors, optimizer state, step, data position and configuration are restored exactly, so
    /// continuing gives the same bits as a run that never stopped.
    ///
    /// - Parameters:
    ///   - directory: the checkpoint directory written by ``saveCheckpoint(to:)``.
    ///   - given: the task of the saved run — same model and data (checked against the saved
    ///     ``TrainingTask/checkpointRecord``); the settings a checkpoint fixes (sequence length,
    ///     padding) are taken from it (``TrainingTask/adoptingCheckpointSettings(_:)``); its own
    ///     tensors only give their shapes, their values come from the checkpoint.
    ///   - steps: a new total number of steps (e.g. continue a 50-step run to 100); `nil` keeps
    ///     the saved one.
    ///   - schedule: a new learning-rate schedule (a linear schedule carries its own total); `nil`
    ///     keeps the saved one. Either override makes the continuation differ from the original
    ///     plan, by design.
    /// - Throws: ``TrainingError/invalidTrainingCheckpoint(file:reason:)`` for a missing file, a
    ///   file that does not parse (truncated, corrupt), a wrong format tag (checkpoints of earlier
    ///   versions included), files from different saves, a task, model, adapter or data that does
    ///   not match, missing, extra or misshapen tensors; ``TrainingError`` validation errors for
    ///   an invalid override. Nothing is written. O(parameters + data for the fingerprint).
    public init(resumingFrom directory: URL, task given: Task, steps: Int? = nil, schedule: LearningRateSchedule? = nil) throws {
        let jsonURL = directory.appendingPathComponent(Self.trainerFileName)
        let trainableURL = directory.appendingPathComponent(Self.trainableFileName)
        let optimizerURL = directory.appendingPathComponent(Self.optimizerFileName)
        func fail(_ url: URL, _ reason: String) -> TrainingError {
            .invalidTrainingCheckpoint(file: url.path, reason: reason)
        }
        for url in [jsonURL, trainableURL, optimizerURL] {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue else {
                throw fail(url, "missing file")
            }
        }

        // trainer.json
        let jsonData: Data
        do { jsonData = try RegularFile.read(jsonURL) } catch { throw fail(jsonURL, "cannot read: \(error.reason)") }
        if let object = try? JSONSerialization.jsonObject(with: jsonData) as? [String: Any],
           let format = object["format"] as? String, format != Self.trainerFormat {
            throw fail(jsonURL, "format \"\(format)\" is not \(Self.trainerFormat)"
                + (format.hasPrefix("lorta-") ? " (written by an earlier version of swift-lorta, which this one does not resume; start a new run)" : ""))
        }
        let record: TrainerCheckpointRecord
        do {
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            record = try decoder.decode(TrainerCheckpointRecord.self, from: jsonData)
        } catch {
            throw fail(jsonURL, "not a readable trainer checkpoint: \(error)")
        }
        guard record.format == Self.trainerFormat else {
            throw fail(jsonURL, "format \"\(record.format)\" is not \(Self.trainerFormat)")
        }
        let task: Task
        do { task = try given.adoptingCheckpointSettings(record.task) } catch { throw fail(jsonURL, "\(error)") }
        let taskRecord = task.checkpointRecord
        if record.task != taskRecord {
            let keys = Set(record.task.keys).union(taskRecord.keys).sorted().filter { record.task[$0] != taskRecord[$0] }
            let differences = keys.map { "\($0): saved \(record.task[$0] ?? "<none>"), given \(taskRecord[$0] ?? "<none>")" }
            throw fail(jsonURL, "made for another task, model or data — " + differences.joined(separator: "; "))
        }
        guard record.step >= 0, record.position.epoch >= 0, record.position.batchInEpoch >= 0 else {
            throw fail(jsonURL, "negative step or data position")
        }
        var configuration: TrainingConfiguration
        do { configuration = try record.configuration.value() } catch { throw fail(jsonURL, "\(error)") }
        let savedConfiguration = configuration
        if let steps { configuration.steps = steps }
        if let schedule { configuration.schedule = schedule }
        let stepsPerEpoch = task.exampleCount / max(1, configuration.batchSize)
        guard record.position.batchInEpoch < stepsPerEpoch else {
            throw fail(jsonURL, "data position \(record.position.batchInEpoch) is beyond the \(stepsPerEpoch) steps of an epoch")
        }
        var template: (any Adapter)?
        let adapterURL = directory.appendingPathComponent(Self.adapterDirectoryName)
        if let summary = record.adapter {
            do {
                let loaded = try AdapterFiles.load(from: adapterURL, host: task.adapterHost)
                guard loaded.summary == summary else {
                    throw TrainingError.invalidCheckpoint("the adapter directory holds \(loaded.summary), \(Self.trainerFileName) records \(summary)")
                }
                template = loaded
            } catch {
                throw fail(adapterURL, "\(error)")
            }
        }
        let names = task.ownParameterNames + (template?.parameterNames(host: task.adapterHost) ?? [])
        let shapes = (task.ownParameters + (template?.parameters ?? [])).map(\.shape)
        guard record.parameters == names else {
            throw fail(jsonURL, "parameter names \(record.parameters) differ from those of its task and adapter \(names)")
        }

        // trainable.safetensors
        var loaded: [Tensor] = []
        do {
            let reader = try SafeTensorsReader(contentsOf: trainableURL)
            let meta = reader.metadata
            guard meta["format"] == Self.trainableFormat else {
                throw fail(trainableURL, "format \"\(meta["format"] ?? "")\" is not \(Self.trainableFormat)")
            }
            guard meta["checkpoint_id"] == record.checkpointId, meta["step"] == String(record.step) else {
                throw fail(trainableURL, "belongs to another save than \(Self.trainerFileName) (step \(meta["step"] ?? "?") vs \(record.step))")
            }
            guard Set(reader.names) == Set(names), reader.names.count == names.count else {
                throw fail(trainableURL, "tensors \(reader.names.sorted()) are not the expected \(names.sorted())")
            }
            for (name, shape) in zip(names, shapes) {
                let entry = reader.entry(name)!
                guard entry.dtype == .f32 else { throw fail(trainableURL, "tensor \(name) is \(entry.dtype.rawValue), not F32") }
                guard entry.shape == shape else {
                    throw fail(trainableURL, "tensor \(name) has shape \(entry.shape), the given task and adapter need \(shape)")
                }
                loaded.append(try reader.tensor(name))
            }
        } catch let error as TrainingError {
            throw error
        } catch {
            throw fail(trainableURL, "\(error)")
        }
        let ownCount = task.ownParameters.count
        let restoredTask: Task
        do {
            restoredTask = try task.replacingOwnParameters(Array(loaded[..<ownCount]))
            try template?.setParameters(Array(loaded[ownCount...]))
        } catch {
            throw fail(trainableURL, "\(error)")
        }

        // optimizer.safetensors
        let saved: OptimizerCheckpoint
        do { saved = try OptimizerCheckpoint(contentsOf: optimizerURL) } catch { throw fail(optimizerURL, "\(error)") }
        guard saved.parameterNames == names else {
            throw fail(optimizerURL, "parameters \(saved.parameterNames) are not the expected \(names)")
        }
        guard saved.optimizer.state.step == record.step else {
            throw fail(optimizerURL, "belongs to another save than \(Self.trainerFileName) (step \(saved.optimizer.state.step) vs \(record.step))")
        }
        let position = TrainingPosition(epoch: record.position.epoch, batchInEpoch: record.position.batchInEpoch)
        guard saved.optimizer.configuration == savedConfiguration.optimizer, saved.schedule == savedConfiguration.schedule,
              saved.seed == savedConfiguration.seed, saved.position == position else {
            throw fail(optimizerURL, "hyper-parameters, schedule, seed or position differ from \(Self.trainerFileName)")
        }
        for (i, shape) in shapes.enumerated() where saved.optimizer.state.firstMoments[i].shape != shape {
            throw fail(optimizerURL, "moments of \(names[i]) have shape \(saved.optimizer.state.firstMoments[i].shape), expected \(shape)")
        }
        let optimizer = try AdamW(configuration: configuration.optimizer, state: saved.optimizer.state)
        try self.init(task: restoredTask, adapter: template, configuration: configuration, step: record.step,
                      position: position, optimizer: optimizer)
    }
}

// MARK: - trainer.json records

struct TrainerCheckpointRecord: Codable {
    var format: String
    var checkpointId: String
    var step: Int
    var position: PositionRecord
    var configuration: ConfigurationRecord
    /// ``TrainingTask/checkpointRecord`` of the task.
    var task: [String: String]
    /// ``Adapter/summary`` of the trained adapter; nil without one.
    var adapter: String?
    var parameters: [String]
}

struct PositionRecord: Codable {
    var epoch: Int
    var batchInEpoch: Int
}

struct ConfigurationRecord: Codable {
    struct Optimizer: Codable {
        var learningRate: String, beta1: String, beta2: String, epsilon: String, weightDecay: String
    }
    var steps: Int
    var batchSize: Int
    var microBatchSize: Int?
    var optimizer: Optimizer
    var schedule: String
    var seed: String

    init(_ c: TrainingConfiguration) {
        steps = c.steps
        batchSize = c.batchSize
        microBatchSize = c.microBatchSize
        let o = c.optimizer
        optimizer = Optimizer(learningRate: "\(o.learningRate)", beta1: "\(o.beta1)", beta2: "\(o.beta2)",
                              epsilon: "\(o.epsilon)", weightDecay: "\(o.weightDecay)")
        schedule = c.schedule.description
        seed = String(c.seed)
    }

    /// The configuration, validated.
    func value() throws -> TrainingConfiguration {
        func number(_ name: String, _ text: String) throws -> Double {
            guard let v = Double(text) else { throw TrainingError.invalidCheckpoint("\(name) \"\(text)\" is not a number") }
            return v
        }
        guard let seed = UInt64(seed) else { throw TrainingError.invalidCheckpoint("seed \"\(self.seed)\" is not a UInt64") }
        let o = AdamWConfiguration(learningRate: try number("learning rate", optimizer.learningRate),
                                   beta1: try number("beta1", optimizer.beta1), beta2: try number("beta2", optimizer.beta2),
                                   epsilon: try number("epsilon", optimizer.epsilon),
                                   weightDecay: try number("weight decay", optimizer.weightDecay))
        let c = TrainingConfiguration(steps: steps, batchSize: batchSize, microBatchSize: microBatchSize, optimizer: o,
                                      schedule: try LearningRateSchedule(parsing: schedule), seed: seed)
        try c.validate()
        return c
    }
}
