import Foundation

/// Training checkpoints of ``BertTrainer``.
///
/// A checkpoint is a directory with three files and, when an adapter is trained, the adapter's
/// own directory, each file written atomically (temporary file in the directory, then renamed
/// over the old one), in this order:
///
/// - `adapter/`: the adapter's files (``Adapter/save(to:host:)`` for ``BertModel/adapterHost``,
///   loaded back with ``AdapterFiles/load(from:host:)``); they say what the adapter is (kind,
///   rank, targets) — the checkpoint does not repeat it.
/// - `trainable.safetensors`: the current head and adapter tensors, F32 raw bits, under the
///   parameter names of ``BertTrainer`` (`head.weight`, `head.bias`, then the adapter's
///   ``Adapter/parameterNames(host:)``); metadata `format` = `lorta-trainable-2`, `step`,
///   `checkpoint_id` (a UUID shared with `trainer.json`).
/// - `optimizer.safetensors`: an ``OptimizerCheckpoint`` (AdamW moments `exp_avg.<name>`,
///   `exp_avg_sq.<name>`, hyper-parameters, schedule, seed, data position, step) with the same
///   parameter names in optimizer order.
/// - `trainer.json`: `format` = `lorta-trainer-2`, `checkpoint_id`, `step`, `position`
///   (`epoch`, `batch_in_epoch`), `configuration` (`steps`, `batch_size`, `micro_batch_size`
///   (absent = none), `max_length`, `padding` (`longest`/`fixed`), `optimizer`
///   (`learning_rate`, `beta1`, `beta2`, `epsilon`, `weight_decay`), `schedule`
///   (``LearningRateSchedule/description``), `seed`), `model` (vocabulary size, hidden size,
///   layers, heads, intermediate size, positions), `adapter` (the adapter's
///   ``Adapter/summary``, absent without adapter), `head`
///   (`class_count`, `hidden_size`), `data` (`example_count`, `label_count`, `fingerprint`:
///   FNV-1a 64 of the labels and texts), `parameters` (the names in optimizer order). Real
///   numbers and the seed are JSON strings in Swift's shortest round-trip form, so every value
///   reads back with the same bits.
///
/// `trainer.json` is written last. Loading checks that the files belong to the same save (same
/// step in all, same `checkpoint_id` in the two that carry it; the adapter directory's kind and
/// shapes must give the recorded parameter names and shapes).
extension BertTrainer {
    static let trainerFileName = "trainer.json"
    static let trainableFileName = "trainable.safetensors"
    static let optimizerFileName = "optimizer.safetensors"
    static let trainerFormat = "lorta-trainer-2"
    static let trainableFormat = "lorta-trainable-2"
    static let adapterDirectoryName = "adapter"

    /// Saves the trained tensors, the optimizer state, the configuration and the data position
    /// into `directory` (created when missing; existing checkpoint files are replaced, each
    /// atomically). See the extension's documentation for the format.
    /// - Throws: ``TrainingError/invalidTrainingCheckpoint(file:reason:)`` when `directory` is a
    ///   file or cannot be created or written, ``SafeTensorsError`` for file-system failures of the
    ///   tensor files. O(parameters).
    public func saveCheckpoint(to directory: URL) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw TrainingError.invalidTrainingCheckpoint(file: directory.path, reason: "exists and is not a directory")
            }
        } else {
            do {
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            } catch {
                throw TrainingError.invalidTrainingCheckpoint(file: directory.path, reason: "cannot create the directory: \(error)")
            }
        }
        let id = UUID().uuidString
        let names = parameterNames
        let tensors = TrainableParameters.flatten(adapter: adapter, head: head)
        let record = TrainerCheckpointRecord(self, checkpointID: id)
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let json = try encoder.encode(record)
        var writer = SafeTensorsWriter()
        writer.metadata = ["format": Self.trainableFormat, "step": String(step), "checkpoint_id": id]
        for (name, t) in zip(names, tensors) { try writer.add(name, t) }
        let optimizerFile = try OptimizerCheckpoint(optimizer: optimizer, schedule: configuration.schedule,
                                                    seed: configuration.seed, position: position, parameterNames: names)

        if let adapter {
            try adapter.save(to: directory.appendingPathComponent(Self.adapterDirectoryName), host: model.adapterHost)
        }
        try writer.write(to: directory.appendingPathComponent(Self.trainableFileName))
        try optimizerFile.write(to: directory.appendingPathComponent(Self.optimizerFileName))
        let jsonURL = directory.appendingPathComponent(Self.trainerFileName)
        do { try json.write(to: jsonURL, options: .atomic) } catch {
            throw TrainingError.invalidTrainingCheckpoint(file: jsonURL.path, reason: "cannot write: \(error)")
        }
    }

    /// Resumes from a checkpoint written by ``saveCheckpoint(to:)``: adapters, head, optimizer
    /// state, step, data position and configuration are restored exactly, so continuing gives
    /// the same bits as a run that never stopped.
    ///
    /// - Parameters:
    ///   - directory: the checkpoint directory written by ``saveCheckpoint(to:)``.
    ///   - model: the frozen base model of the saved run (its sizes are checked).
    ///   - tokenizer: the tokenizer of the saved run (it is not stored, so not checked).
    ///   - trainingData: the training examples of the saved run (their count, labels and
    ///     fingerprint are checked).
    ///   - steps: a new total number of steps (e.g. continue a 50-step run to 100); `nil` keeps
    ///     the saved one.
    ///   - schedule: a new learning-rate schedule (a linear schedule carries its own total); `nil`
    ///     keeps the saved one. Either override makes the continuation differ from the original
    ///     plan, by design.
    /// - Throws: ``TrainingError/invalidTrainingCheckpoint(file:reason:)`` for a missing file, a
    ///   file that does not parse (truncated, corrupt), a wrong format tag, files from different
    ///   saves, a model, adapter or data that does not match, missing, extra or misshapen tensors;
    ///   ``TrainingError`` validation errors for an invalid override. Nothing is written.
    ///   O(parameters + data for the fingerprint).
    public init(resumingFrom directory: URL, model: BertModel, tokenizer: BertTokenizer,
                trainingData: LabelledTextDataset, steps: Int? = nil, schedule: LearningRateSchedule? = nil) throws {
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
        let record: TrainerCheckpointRecord
        do {
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            record = try decoder.decode(TrainerCheckpointRecord.self, from: try Data(contentsOf: jsonURL))
        } catch {
            throw fail(jsonURL, "not a readable trainer checkpoint: \(error)")
        }
        guard record.format == Self.trainerFormat else {
            throw fail(jsonURL, "format \"\(record.format)\" is not \(Self.trainerFormat)")
        }
        let modelRecord = ModelRecord(model.configuration)
        guard record.model == modelRecord else {
            throw fail(jsonURL, "made for a model with \(record.model), this model has \(modelRecord)")
        }
        let dataRecord = DataRecord(trainingData)
        guard record.data == dataRecord else {
            throw fail(jsonURL, "made with other training data (\(record.data)) than given (\(dataRecord))")
        }
        guard record.step >= 0, record.position.epoch >= 0, record.position.batchInEpoch >= 0 else {
            throw fail(jsonURL, "negative step or data position")
        }
        var configuration: TrainingConfiguration
        do { configuration = try record.configuration.value() } catch { throw fail(jsonURL, "\(error)") }
        let savedConfiguration = configuration
        if let steps { configuration.steps = steps }
        if let schedule { configuration.schedule = schedule }
        let stepsPerEpoch = trainingData.count / max(1, configuration.batchSize)
        guard record.position.batchInEpoch < stepsPerEpoch else {
            throw fail(jsonURL, "data position \(record.position.batchInEpoch) is beyond the \(stepsPerEpoch) steps of an epoch")
        }
        let template: ((any Adapter)?, BertClassificationHead)
        let adapterURL = directory.appendingPathComponent(Self.adapterDirectoryName)
        do { template = try record.template(for: model, adapterDirectory: adapterURL) } catch {
            throw fail(record.adapter == nil ? jsonURL : adapterURL, "\(error)")
        }
        let names = TrainableParameters.names(adapter: template.0, host: model.adapterHost)
        let shapes = TrainableParameters.flatten(adapter: template.0, head: template.1).map(\.shape)
        guard record.parameters == names else {
            throw fail(jsonURL, "parameter names \(record.parameters) differ from those of its adapter \(names)")
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
                    throw fail(trainableURL, "tensor \(name) has shape \(entry.shape), expected \(shape)")
                }
                loaded.append(try reader.tensor(name))
            }
        } catch let error as TrainingError {
            throw error
        } catch {
            throw fail(trainableURL, "\(error)")
        }
        let adapter: (any Adapter)?, head: BertClassificationHead
        do { (adapter, head) = try TrainableParameters.rebuild(loaded, adapter: template.0) } catch {
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
        guard saved.optimizer.configuration == savedConfiguration.optimizer, saved.schedule == savedConfiguration.schedule,
              saved.seed == savedConfiguration.seed, saved.position == record.trainingPosition else {
            throw fail(optimizerURL, "hyper-parameters, schedule, seed or position differ from \(Self.trainerFileName)")
        }
        for (i, shape) in shapes.enumerated() where saved.optimizer.state.firstMoments[i].shape != shape {
            throw fail(optimizerURL, "moments of \(names[i]) have shape \(saved.optimizer.state.firstMoments[i].shape), expected \(shape)")
        }
        let optimizer = try AdamW(configuration: configuration.optimizer, state: saved.optimizer.state)
        try self.init(model: model, tokenizer: tokenizer, trainingData: trainingData, adapter: adapter, head: head,
                      configuration: configuration, step: record.step, position: record.trainingPosition, optimizer: optimizer)
    }
}

// MARK: - trainer.json records

struct TrainerCheckpointRecord: Codable {
    var format: String
    var checkpointId: String
    var step: Int
    var position: PositionRecord
    var configuration: ConfigurationRecord
    var model: ModelRecord
    /// ``Adapter/summary`` of the trained adapter; nil without one.
    var adapter: String?
    var head: HeadRecord
    var data: DataRecord
    var parameters: [String]

    init(_ t: BertTrainer, checkpointID: String) {
        format = BertTrainer.trainerFormat
        checkpointId = checkpointID
        step = t.step
        position = PositionRecord(epoch: t.position.epoch, batchInEpoch: t.position.batchInEpoch)
        configuration = ConfigurationRecord(t.configuration)
        model = ModelRecord(t.model.configuration)
        adapter = t.adapter?.summary
        head = HeadRecord(classCount: t.head.classCount, hiddenSize: t.head.weight.shape[1])
        data = DataRecord(t.trainingData)
        parameters = t.parameterNames
    }

    /// A zero head of the recorded shape and, when the record names an adapter, the adapter read
    /// from the checkpoint's adapter directory (checked against `model`).
    func template(for model: BertModel, adapterDirectory: URL) throws -> ((any Adapter)?, BertClassificationHead) {
        guard head.hiddenSize == model.configuration.hiddenSize, head.classCount >= 2 else {
            throw TrainingError.invalidCheckpoint("head of \(head.classCount) classes × \(head.hiddenSize) does not fit d = \(model.configuration.hiddenSize)")
        }
        let h = try BertClassificationHead(weight: try Tensor(zeros: [head.classCount, head.hiddenSize]),
                                           bias: try Tensor(zeros: [head.classCount]))
        guard let summary = adapter else { return (nil, h) }
        let loaded = try AdapterFiles.load(from: adapterDirectory, host: model.adapterHost)
        guard loaded.summary == summary else {
            throw TrainingError.invalidCheckpoint("the adapter directory holds \(loaded.summary), trainer.json records \(summary)")
        }
        return (loaded, h)
    }
}

struct PositionRecord: Codable {
    var epoch: Int
    var batchInEpoch: Int
}

extension TrainerCheckpointRecord {
    var trainingPosition: TrainingPosition { TrainingPosition(epoch: position.epoch, batchInEpoch: position.batchInEpoch) }
}

struct ConfigurationRecord: Codable {
    struct Optimizer: Codable {
        var learningRate: String, beta1: String, beta2: String, epsilon: String, weightDecay: String
    }
    var steps: Int
    var batchSize: Int
    var microBatchSize: Int?
    var maxLength: Int
    var padding: String
    var optimizer: Optimizer
    var schedule: String
    var seed: String

    init(_ c: TrainingConfiguration) {
        steps = c.steps
        batchSize = c.batchSize
        microBatchSize = c.microBatchSize
        maxLength = c.maxLength
        padding = c.padding == .fixed ? "fixed" : "longest"
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
        let pad: BertTokenizer.Padding
        switch padding {
        case "longest": pad = .longest
        case "fixed": pad = .fixed
        default: throw TrainingError.invalidCheckpoint("padding \"\(padding)\" is not longest or fixed")
        }
        guard let seed = UInt64(seed) else { throw TrainingError.invalidCheckpoint("seed \"\(self.seed)\" is not a UInt64") }
        let o = AdamWConfiguration(learningRate: try number("learning rate", optimizer.learningRate),
                                   beta1: try number("beta1", optimizer.beta1), beta2: try number("beta2", optimizer.beta2),
                                   epsilon: try number("epsilon", optimizer.epsilon),
                                   weightDecay: try number("weight decay", optimizer.weightDecay))
        let c = TrainingConfiguration(steps: steps, batchSize: batchSize, microBatchSize: microBatchSize, maxLength: maxLength,
                                      padding: pad, optimizer: o, schedule: try LearningRateSchedule(parsing: schedule),
                                      seed: seed)
        try c.validate()
        return c
    }
}

struct ModelRecord: Codable, Equatable, CustomStringConvertible {
    var vocabularySize: Int, hiddenSize: Int, layerCount: Int, headCount: Int, intermediateSize: Int
    var maxPositionEmbeddings: Int

    init(_ c: BertConfiguration) {
        vocabularySize = c.vocabularySize
        hiddenSize = c.hiddenSize
        layerCount = c.layerCount
        headCount = c.headCount
        intermediateSize = c.intermediateSize
        maxPositionEmbeddings = c.maxPositionEmbeddings
    }

    var description: String {
        "vocabulary \(vocabularySize), d = \(hiddenSize), \(layerCount) layers, \(headCount) heads, I = \(intermediateSize), \(maxPositionEmbeddings) positions"
    }
}

struct HeadRecord: Codable {
    var classCount: Int
    var hiddenSize: Int
}

struct DataRecord: Codable, Equatable, CustomStringConvertible {
    var exampleCount: Int
    var labelCount: Int
    var fingerprint: String

    init(_ data: LabelledTextDataset) {
        exampleCount = data.count
        labelCount = data.labelCount
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ bytes: some Sequence<UInt8>) {
            for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        }
        for e in data.examples {
            mix(String(e.label).utf8)
            mix([9])
            mix(e.text.utf8)
            mix([10])
        }
        fingerprint = String(h, radix: 16)
    }

    var description: String { "\(exampleCount) examples, \(labelCount) labels, fingerprint \(fingerprint)" }
}
