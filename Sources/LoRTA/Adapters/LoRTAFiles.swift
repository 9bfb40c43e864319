import Foundation

// LoRTA adapter directories (PEFT's layout, reference tensor names):
//
//   <dir>/adapter_model.safetensors   F32 tensors (F16/BF16/F64 are accepted when loading)
//       lora_A     d_out × r     (first distinct output size)
//       lora_A_1   d_out' × r    (GQA extension: second distinct output size), lora_A_2, …
//       lora_B     r × d_h
//       lora_C_l   L × r
//       lora_C_h   H × r
//       lora_C_m   M × r         (row m ↔ target_modules[m])
//   <dir>/adapter_config.json
//       {"peft_type": "LORTA", "r": r, "lora_alpha": alpha, "target_modules": [...],
//        "num_layers": L, "num_heads": H, "head_dim": d_h, "output_sizes": [...]}
//       (`output_sizes` only when the targets' output sizes differ.)

/// Errors reading or writing a LoRTA adapter directory. Cases about one tensor name it.
public enum LoRTAFileError: Error, Equatable, CustomStringConvertible {
    /// A required file does not exist.
    case missingFile(String)
    /// `adapter_config.json` describes another adapter type.
    case notLoRTA(peftType: String)
    /// `target_modules` is a regular expression; LoRTA needs a list (its order is the M axis).
    case targetModulesNotAList(String)
    /// The safetensors file lacks a factor the configuration requires.
    case missingTensor(String)
    /// The safetensors file holds a tensor that is not a factor of this configuration.
    case unexpectedTensor(String)
    /// A factor's shape differs from the one the configuration implies.
    case tensorShapeMismatch(tensor: String, expected: [Int], actual: [Int])
    /// A factor is stored with a dtype that does not convert to Float32.
    case unsupportedDType(tensor: String, dtype: String)
    /// A factor contains NaN or ±infinity.
    case nonFinite(tensor: String)
    /// `head_dim` is absent and cannot be taken from `lora_B` (which is not a matrix).
    case cannotInferHeadDimension(reason: String)
    /// Creating the directory or writing `adapter_config.json` failed.
    case fileSystem(path: String, reason: String)

    public var description: String {
        switch self {
        case .missingFile(let p): return "missing file: \(p)"
        case .notLoRTA(let t): return "adapter_config.json has peft_type '\(t)', expected 'LORTA'"
        case .targetModulesNotAList(let p):
            return "LoRTA target_modules must be a list (its order is the matrix-type axis), got the pattern '\(p)'"
        case .missingTensor(let n): return "LoRTA adapter file has no tensor '\(n)'"
        case .unexpectedTensor(let n): return "LoRTA adapter file has an unexpected tensor '\(n)'"
        case .tensorShapeMismatch(let n, let e, let a):
            return "LoRTA tensor '\(n)' must have shape \(e) for this adapter_config.json, got \(a)"
        case .unsupportedDType(let n, let d): return "LoRTA tensor '\(n)' has dtype \(d) (F32, F16, BF16 or F64 expected)"
        case .nonFinite(let n): return "LoRTA tensor '\(n)' contains NaN or infinity"
        case .cannotInferHeadDimension(let r): return "adapter_config.json has no head_dim and \(r)"
        case .fileSystem(let p, let r): return "\(p): \(r)"
        }
    }
}

extension LoRTAConfiguration {
    /// The LoRTA configuration described by a PEFT `adapter_config.json`.
    ///
    /// Reads `r`, `lora_alpha`, `target_modules` (a list; its order is the M axis),
    /// `num_layers`, `num_heads`, `head_dim` and the optional `output_sizes`.
    /// - Parameters:
    ///   - c: the parsed `adapter_config.json`; its `peft_type` must be `LORTA`.
    ///   - headDimension: used when the file has no `head_dim` (e.g. taken from
    ///     `lora_B`); when both are present they must agree.
    /// - Throws: ``LoRTAFileError/notLoRTA(peftType:)``,
    ///   ``LoRTAFileError/targetModulesNotAList(_:)``,
    ///   ``AdapterConfigurationError/missingField(_:)`` for `num_layers`, `num_heads` or
    ///   `head_dim`, ``AdapterConfigurationError/invalidField(name:reason:)`` when `head_dim`
    ///   disagrees with `headDimension`, ``AdapterConfigurationError/unsupportedOption(name:value:)``
    ///   for LoRA-only options LoRTA does not honour (`use_rslora`, `fan_in_fan_out`,
    ///   `rank_pattern`, `alpha_pattern`), ``LoRTAError/invalidConfiguration(_:)`` for values
    ///   out of range.
    public init(peftConfiguration c: PEFTAdapterConfiguration, headDimension: Int? = nil) throws {
        guard c.peftType == .lorta else { throw LoRTAFileError.notLoRTA(peftType: c.peftType.rawValue) }
        let targets: [String]
        switch c.targetModules {
        case .names(let names): targets = names
        case .pattern(let p): throw LoRTAFileError.targetModulesNotAList(p)
        }
        if c.useRSLoRA { throw AdapterConfigurationError.unsupportedOption(name: "use_rslora", value: "true") }
        if c.fanInFanOut { throw AdapterConfigurationError.unsupportedOption(name: "fan_in_fan_out", value: "true") }
        if !c.rankPattern.isEmpty {
            throw AdapterConfigurationError.unsupportedOption(name: "rank_pattern", value: "\(c.rankPattern)")
        }
        if !c.alphaPattern.isEmpty {
            throw AdapterConfigurationError.unsupportedOption(name: "alpha_pattern", value: "\(c.alphaPattern)")
        }
        guard let layers = c.layerCount else { throw AdapterConfigurationError.missingField("num_layers") }
        guard let heads = c.headCount else { throw AdapterConfigurationError.missingField("num_heads") }
        if let given = c.headDimension, let inferred = headDimension, given != inferred {
            throw AdapterConfigurationError.invalidField(
                name: "head_dim", reason: "\(given) disagrees with lora_B, which has \(inferred) columns")
        }
        guard let dh = c.headDimension ?? headDimension else { throw AdapterConfigurationError.missingField("head_dim") }
        try self.init(rank: c.rank, alpha: c.alpha, targetModules: targets, layerCount: layers, headCount: heads,
                      headDimension: dh, outputSizes: c.outputSizes)
    }

    /// The PEFT configuration that describes this adapter (`peft_type` `LORTA`;
    /// `outputSizes` is set only when the targets' output sizes differ).
    public var peftConfiguration: PEFTAdapterConfiguration {
        PEFTAdapterConfiguration(peftType: .lorta, rank: rank, alpha: alpha, targetModules: .names(targetModules),
                                 layerCount: layerCount, headCount: headCount, headDimension: headDimension,
                                 outputSizes: distinctOutputSizes.count > 1 ? outputSizes : nil)
    }

    /// Text of `adapter_config.json` (sorted keys): `peft_type`, `r`, `lora_alpha`,
    /// `target_modules`, `num_layers`, `num_heads`, `head_dim`, `output_sizes` (only when the
    /// output sizes differ), and PEFT's neutral defaults `bias: "none"`, `fan_in_fan_out: false`,
    /// `use_rslora: false`. `lora_alpha` is written in its shortest decimal form, which reads
    /// back as the same Float.
    public func adapterConfigJSON() throws -> Data {
        var object: [String: Any] = [
            "peft_type": "LORTA", "r": rank,
            "lora_alpha": Double(String(alpha)) ?? Double(alpha),
            "target_modules": targetModules, "num_layers": layerCount, "num_heads": headCount,
            "head_dim": headDimension, "bias": "none", "fan_in_fan_out": false, "use_rslora": false,
        ]
        if distinctOutputSizes.count > 1 { object["output_sizes"] = outputSizes }
        return try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    }

    /// Names of the `A` factors in `adapter_model.safetensors`, index `i` for
    /// ``distinctOutputSizes``[i]: `lora_A`, then `lora_A_1`, `lora_A_2`, … (the names after
    /// the first are this library's extension for targets with different output sizes).
    public var factorATensorNames: [String] {
        distinctOutputSizes.indices.map { $0 == 0 ? "lora_A" : "lora_A_\($0)" }
    }

    /// Every tensor name of `adapter_model.safetensors` with its shape, in file order.
    public var factorTensorShapes: [(name: String, shape: [Int])] {
        let s = factorShapes
        return zip(factorATensorNames, s.a).map { ($0, $1) }
            + [("lora_B", s.b), ("lora_C_l", s.cL), ("lora_C_h", s.cH), ("lora_C_m", s.cM)]
    }
}

extension LoRTAAdapter {
    /// File name of the factors inside an adapter directory.
    public static let weightsFileName = "adapter_model.safetensors"
    /// File name of the configuration inside an adapter directory.
    public static let configFileName = "adapter_config.json"

    /// Saves the factors and configuration as a PEFT-style adapter directory (created if
    /// needed): `adapter_model.safetensors` (F32, reference names, see
    /// ``LoRTAConfiguration/factorTensorShapes``) and `adapter_config.json`
    /// (``LoRTAConfiguration/adapterConfigJSON()``). Each file is written atomically
    /// (temporary file + rename), so a reader never sees a partial file; an existing file is
    /// replaced. Gradients are not saved. O(parameter count).
    /// - Throws: ``LoRTAFileError/nonFinite(tensor:)`` before writing anything when a factor
    ///   holds NaN or infinity (such a file could not be loaded back);
    ///   ``LoRTAFileError/fileSystem(path:reason:)``, ``SafeTensorsError``.
    public func save(to directory: URL) throws {
        let names = configuration.factorTensorShapes.map(\.name)
        let tensors = factors.a + [factors.b, factors.cL, factors.cH, factors.cM]
        for (name, t) in zip(names, tensors) where !t.maxAbsolute.isFinite {
            throw LoRTAFileError.nonFinite(tensor: name)
        }
        let json = try configuration.adapterConfigJSON()
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw LoRTAFileError.fileSystem(path: directory.path, reason: error.localizedDescription)
        }
        var writer = SafeTensorsWriter()
        writer.metadata = ["format": "pt"]
        for (name, t) in zip(names, tensors) { try writer.add(name, t) }
        try writer.write(to: directory.appendingPathComponent(Self.weightsFileName))
        let configURL = directory.appendingPathComponent(Self.configFileName)
        do { try json.write(to: configURL, options: .atomic) } catch {
            throw LoRTAFileError.fileSystem(path: configURL.path, reason: error.localizedDescription)
        }
    }

    /// Loads an adapter directory written by ``save(to:)`` (or by another tool using the same
    /// names). Gradients start at zero.
    ///
    /// Validation: the configuration as in
    /// ``LoRTAConfiguration/init(peftConfiguration:headDimension:)`` (a missing `head_dim` is
    /// taken from `lora_B`); the file must hold exactly the tensors of
    /// ``LoRTAConfiguration/factorTensorShapes`` with those shapes, in a float dtype, all finite.
    /// O(parameter count).
    /// - Throws: ``LoRTAFileError`` (missing file or tensor, unexpected tensor, shape, dtype,
    ///   non-finite value), ``AdapterConfigurationError``, ``LoRTAError``, ``SafeTensorsError``.
    public init(contentsOf directory: URL) throws {
        let configURL = directory.appendingPathComponent(Self.configFileName)
        let weightsURL = directory.appendingPathComponent(Self.weightsFileName)
        guard FileManager.default.fileExists(atPath: configURL.path) else { throw LoRTAFileError.missingFile(configURL.path) }
        guard FileManager.default.fileExists(atPath: weightsURL.path) else { throw LoRTAFileError.missingFile(weightsURL.path) }
        let config = try PEFTAdapterConfiguration(contentsOf: configURL)
        try self.init(peftConfiguration: config, weights: try SafeTensorsReader(contentsOf: weightsURL))
    }

    /// An adapter from a parsed `adapter_config.json` and an opened `adapter_model.safetensors`
    /// (the checks of ``init(contentsOf:)``).
    public init(peftConfiguration: PEFTAdapterConfiguration, weights: SafeTensorsReader) throws {
        guard peftConfiguration.peftType == .lorta else {
            throw LoRTAFileError.notLoRTA(peftType: peftConfiguration.peftType.rawValue)
        }
        var inferredHeadDimension: Int? = nil
        if peftConfiguration.headDimension == nil {
            guard let b = weights.entry("lora_B") else { throw LoRTAFileError.missingTensor("lora_B") }
            guard b.shape.count == 2 else {
                throw LoRTAFileError.cannotInferHeadDimension(reason: "lora_B has shape \(b.shape), not r × d_h")
            }
            inferredHeadDimension = b.shape[1]
        }
        let configuration = try LoRTAConfiguration(peftConfiguration: peftConfiguration, headDimension: inferredHeadDimension)
        let expected = configuration.factorTensorShapes
        for (name, _) in expected where weights.entry(name) == nil { throw LoRTAFileError.missingTensor(name) }
        let expectedNames = Set(expected.map(\.name))
        for name in weights.names where !expectedNames.contains(name) { throw LoRTAFileError.unexpectedTensor(name) }
        var tensors: [String: Tensor] = [:]
        for (name, shape) in expected {
            let entry = weights.entry(name)!
            guard entry.shape == shape else {
                throw LoRTAFileError.tensorShapeMismatch(tensor: name, expected: shape, actual: entry.shape)
            }
            guard entry.dtype.isFloatConvertible else {
                throw LoRTAFileError.unsupportedDType(tensor: name, dtype: entry.dtype.rawValue)
            }
            let t = try weights.tensor(name)
            guard t.maxAbsolute.isFinite else { throw LoRTAFileError.nonFinite(tensor: name) }
            tensors[name] = t
        }
        let factors = LoRTAFactors(a: configuration.factorATensorNames.map { tensors[$0]! }, b: tensors["lora_B"]!,
                                   cH: tensors["lora_C_h"]!, cL: tensors["lora_C_l"]!, cM: tensors["lora_C_m"]!)
        try self.init(configuration: configuration, factors: factors)
    }
}
