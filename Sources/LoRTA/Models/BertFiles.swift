import Foundation

// Files of a BERT fine-tune:
//
//   <adapter dir>/adapter_model.safetensors + adapter_config.json
//       written by Adapter.save(to:host:) for BertConfiguration.adapterHost and read by
//       AdapterFiles.load(from:host:) (AdapterFiles.swift). LoRA in Hugging Face PEFT's layout
//       (PEFT's `PeftModel.from_pretrained` loads it on a `transformers` BertModel):
//           base_model.model.encoder.layer.{l}.attention.self.{query,key,value}.lora_{A,B}.weight
//           base_model.model.encoder.layer.{l}.attention.output.dense.lora_{A,B}.weight
//       lora_A `r × d`, lora_B `d × r`, F32. LoRTA in our layout (LoRTAFiles.swift).
//   classifier.safetensors   the classification head: "weight" [C, d], "bias" [C], F32.
//   <export dir>/model.safetensors + config.json   a merged model (BertExport.swift).

/// Errors reading or writing the head and export files of a BERT model. Cases about one tensor
/// name it. (Adapter directories have ``AdapterFileError``; problems of the safetensors framing
/// are ``SafeTensorsError``.)
public enum BertFileError: Error, Equatable, CustomStringConvertible {
    /// A required file does not exist.
    case missingFile(String)
    /// The safetensors file lacks a tensor the configuration requires.
    case missingTensor(String)
    /// The safetensors file holds a tensor the configuration does not describe.
    case unexpectedTensor(String)
    /// A tensor's shape differs from the one the configuration and model imply.
    case tensorShapeMismatch(tensor: String, expected: [Int], actual: [Int])
    /// A tensor is stored with a dtype that does not convert to Float32.
    case unsupportedDType(tensor: String, dtype: String)
    /// A tensor contains NaN or ±infinity.
    case nonFinite(tensor: String)
    /// A file describes another model than the one given (e.g. a source `config.json` whose
    /// architecture differs from the exported model's).
    case configurationMismatch(String)
    /// The export directory holds files and is not an earlier export (pass `overwrite`).
    case directoryNotEmpty(path: String)
    /// Creating a directory, or writing or copying a file failed.
    case fileSystem(path: String, reason: String)

    public var description: String {
        switch self {
        case .missingFile(let p): return "missing file: \(p)"
        case .missingTensor(let n): return "head file has no tensor '\(n)'"
        case .unexpectedTensor(let n): return "file has an unexpected tensor '\(n)'"
        case .tensorShapeMismatch(let n, let e, let a): return "tensor '\(n)' has shape \(a), expected \(e)"
        case .unsupportedDType(let n, let d): return "tensor '\(n)' has dtype \(d) (F32, F16, BF16 or F64 expected)"
        case .nonFinite(let n): return "tensor '\(n)' contains NaN or infinity"
        case .configurationMismatch(let r): return "configuration mismatch: \(r)"
        case .directoryNotEmpty(let p):
            return "\(p) is not empty and is not an earlier export (pass overwrite to write into it)"
        case .fileSystem(let p, let r): return "\(p): \(r)"
        }
    }
}

// MARK: - Small file helpers

/// Throws ``BertFileError/missingFile(_:)`` when nothing exists at `url`.
func bertFilesRequire(_ url: URL) throws(BertFileError) {
    guard FileManager.default.fileExists(atPath: url.path) else { throw .missingFile(url.path) }
}

/// A float tensor of `reader` with the given shape, converted to Float32 and checked finite.
func bertFilesTensor(_ reader: SafeTensorsReader, _ name: String, shape: [Int]) throws -> Tensor {
    guard let e = reader.entry(name) else { throw BertFileError.missingTensor(name) }
    guard e.shape == shape else { throw BertFileError.tensorShapeMismatch(tensor: name, expected: shape, actual: e.shape) }
    guard e.dtype.isFloatConvertible else { throw BertFileError.unsupportedDType(tensor: name, dtype: e.dtype.rawValue) }
    let t = try reader.tensor(name)
    guard t.maxAbsolute.isFinite else { throw BertFileError.nonFinite(tensor: name) }
    return t
}

// MARK: - Module names

extension BertProjection {
    /// The module path inside a layer (`encoder.layer.{l}.` + this), as `transformers` names it.
    public var modulePath: String {
        switch self {
        case .query, .key, .value: return "attention.self.\(rawValue)"
        case .attentionOutput: return "attention.output.dense"
        }
    }

    /// The projection a LoRTA `target_modules` entry names: the raw value (`"query"`,
    /// `"output"`) or the module path inside a layer (`"attention.self.query"`,
    /// `"attention.output.dense"` — the form `lorta train` writes, which `lorta merge` matches
    /// against checkpoint names without touching the MLP's `output.dense`). nil otherwise.
    public init?(targetName: String) {
        guard let p = BertProjection.allCases.first(where: { $0.rawValue == targetName || $0.modulePath == targetName }) else {
            return nil
        }
        self = p
    }
}


// MARK: - Classification head

extension BertClassificationHead {
    /// File name of a saved head (beside the adapter files).
    public static let fileName = "classifier.safetensors"

    /// Writes the head as safetensors (F32 tensors `weight` `[C, d]` and `bias` `[C]`, metadata
    /// `format: pt`, so `torch.nn.Linear.load_state_dict` takes it), atomically.
    /// - Throws: ``BertFileError/nonFinite(tensor:)`` before writing for NaN/infinite values,
    ///   ``SafeTensorsError/fileSystem(path:operation:reason:)``.
    /// - Complexity: O(C · d).
    public func save(to url: URL) throws {
        for (name, t) in [("weight", weight), ("bias", bias)] where !t.maxAbsolute.isFinite {
            throw BertFileError.nonFinite(tensor: name)
        }
        var writer = SafeTensorsWriter()
        writer.metadata = ["format": "pt"]
        try writer.add("weight", weight)
        try writer.add("bias", bias)
        try writer.write(to: url)
    }

    /// Reads a head written by ``save(to:)``: exactly the tensors `weight` `[C, d]` and `bias`
    /// `[C]` with C >= 2, a float dtype (converted to Float32), finite values; with `model`,
    /// `d` must be its hidden size.
    /// - Throws: ``BertFileError`` (missing file or tensor, unexpected tensor, bias shape, dtype,
    ///   non-finite), ``BertError/invalidClassificationHead(_:)`` for a weight that is not a
    ///   matrix, C < 2 or another `d` than the model's, ``SafeTensorsError`` for a corrupt file.
    /// - Complexity: O(C · d).
    public init(contentsOf url: URL, model: BertConfiguration? = nil) throws {
        try bertFilesRequire(url)
        let reader = try SafeTensorsReader(contentsOf: url)
        for name in reader.names where name != "weight" && name != "bias" { throw BertFileError.unexpectedTensor(name) }
        guard let w = reader.entry("weight") else { throw BertFileError.missingTensor("weight") }
        guard reader.entry("bias") != nil else { throw BertFileError.missingTensor("bias") }
        guard w.shape.count == 2 else {
            throw BertError.invalidClassificationHead("weight has shape \(w.shape), expected [classes, d]")
        }
        if let model, w.shape[1] != model.hiddenSize {
            throw BertError.invalidClassificationHead("weight has \(w.shape[1]) columns, the model's hidden size is \(model.hiddenSize)")
        }
        let weight = try bertFilesTensor(reader, "weight", shape: w.shape)
        let bias = try bertFilesTensor(reader, "bias", shape: [w.shape[0]])
        try self.init(weight: weight, bias: bias)
    }
}
