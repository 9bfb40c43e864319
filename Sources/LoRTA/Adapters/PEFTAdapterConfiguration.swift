import Foundation

/// Errors reading an `adapter_config.json`.
public enum AdapterConfigurationError: Error, Equatable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case invalidJSON(String)
    case missingField(String)
    case invalidField(name: String, reason: String)
    case unsupportedPEFTType(String)
    /// An option this library cannot honour (e.g. `use_dora: true`), named with its value.
    case unsupportedOption(name: String, value: String)

    public var description: String {
        switch self {
        case .unreadable(let p, let r): return "cannot read adapter config '\(p)': \(r)"
        case .invalidJSON(let r): return "adapter_config.json is not valid JSON: \(r)"
        case .missingField(let f): return "adapter_config.json has no '\(f)'"
        case .invalidField(let n, let r): return "adapter_config.json field '\(n)': \(r)"
        case .unsupportedPEFTType(let t):
            return "peft_type '\(t)' is not supported (supported: LORA, LORTA)"
        case .unsupportedOption(let n, let v):
            return "adapter_config.json option '\(n)' = \(v) is not supported"
        }
    }
}

/// Which modules an adapter targets, with PEFT's matching rules.
public enum TargetModules: Sendable, Equatable {
    /// A list of names: a module matches when its name equals an entry or ends with
    /// "." + entry (so `attention.output.dense` matches `…attention.output.dense` but not the
    /// MLP's `output.dense`).
    case names([String])
    /// A single string: a regular expression that must match the whole module name.
    case pattern(String)

    /// Whether the module named `module` (e.g. `encoder.layer.3.attention.self.query`) is targeted.
    public func matches(_ module: String) -> Bool { matchedTarget(module) != nil }

    /// The entry of ``names(_:)`` that matches `module` (the longest, if several), or the
    /// pattern itself.
    public func matchedTarget(_ module: String) -> String? {
        switch self {
        case .names(let names):
            return names.filter { module == $0 || module.hasSuffix("." + $0) }.max { $0.count < $1.count }
        case .pattern(let p):
            return fullMatch(pattern: p, module) ? p : nil
        }
    }
}

func fullMatch(pattern: String, _ s: String) -> Bool {
    guard let re = try? NSRegularExpression(pattern: "^(?:" + pattern + ")$") else { return false }
    return re.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil
}

/// The fields of a PEFT `adapter_config.json` that matter for applying an adapter.
///
/// Supported `peft_type`s: `LORA` and `LORTA`. Unknown keys are ignored; options that change
/// the math and are not implemented (`use_dora`, trained biases, `modules_to_save`,
/// `layer_replication`) are rejected with ``AdapterConfigurationError/unsupportedOption(name:value:)``.
public struct PEFTAdapterConfiguration: Sendable, Equatable {
    /// `peft_type` (``AdapterKind``).
    public typealias AdapterType = AdapterKind

    public var peftType: AdapterType
    /// `r`
    public var rank: Int
    /// `lora_alpha`
    public var alpha: Float
    /// `use_rslora`: scale alpha/√r instead of alpha/r.
    public var useRSLoRA: Bool
    /// `target_modules`
    public var targetModules: TargetModules
    /// `fan_in_fan_out`: base weights stored as (in, out) (GPT-2's Conv1D).
    public var fanInFanOut: Bool
    /// `rank_pattern` / `alpha_pattern`: per-module overrides; a key matches a module name
    /// `name` when the regular expression `(.*\.)?KEY$` matches it (PEFT's rule).
    public var rankPattern: [String: Int]
    public var alphaPattern: [String: Float]
    /// LoRTA only: number of layers (L) and heads (H) of the CP tensor
    /// (`num_layers` or `layer_count`, `num_heads` or `head_count`).
    public var layerCount: Int?
    public var headCount: Int?
    /// LoRTA only: head size d_h (`head_dim`); when absent it is taken from `lora_B` (r × d_h).
    public var headDimension: Int?
    /// LoRTA only: output size of each target, in `target_modules` order (`output_sizes`);
    /// absent means every target is square (H · d_h rows). See ``LoRTAConfiguration``.
    public var outputSizes: [Int]?

    public init(peftType: AdapterType, rank: Int, alpha: Float, useRSLoRA: Bool = false,
                targetModules: TargetModules, fanInFanOut: Bool = false,
                rankPattern: [String: Int] = [:], alphaPattern: [String: Float] = [:],
                layerCount: Int? = nil, headCount: Int? = nil, headDimension: Int? = nil,
                outputSizes: [Int]? = nil) {
        self.peftType = peftType
        self.rank = rank
        self.alpha = alpha
        self.useRSLoRA = useRSLoRA
        self.targetModules = targetModules
        self.fanInFanOut = fanInFanOut
        self.rankPattern = rankPattern
        self.alphaPattern = alphaPattern
        self.layerCount = layerCount
        self.headCount = headCount
        self.headDimension = headDimension
        self.outputSizes = outputSizes
    }

    /// Reads `adapter_config.json` at `url`.
    public init(contentsOf url: URL) throws {
        let data: Data
        do { data = try RegularFile.read(url) } catch {
            throw AdapterConfigurationError.unreadable(path: url.path, reason: error.reason)
        }
        try self.init(jsonData: data)
    }

    /// Parses the JSON text of an `adapter_config.json`.
    public init(jsonData: Data) throws {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: jsonData) } catch {
            throw AdapterConfigurationError.invalidJSON(error.localizedDescription)
        }
        guard let dict = object as? [String: Any] else {
            throw AdapterConfigurationError.invalidJSON("the top level is not an object")
        }
        func int(_ key: String) throws -> Int? {
            guard let v = dict[key], !(v is NSNull) else { return nil }
            guard let n = v as? NSNumber, !isBool(n), let i = Int(exactly: n.doubleValue) else {
                throw AdapterConfigurationError.invalidField(name: key, reason: "expected an integer, got \(v)")
            }
            return i
        }
        func bool(_ key: String) throws -> Bool? {
            guard let v = dict[key], !(v is NSNull) else { return nil }
            guard let n = v as? NSNumber, isBool(n) else {
                throw AdapterConfigurationError.invalidField(name: key, reason: "expected true or false, got \(v)")
            }
            return n.boolValue
        }
        guard let typeName = dict["peft_type"] as? String else {
            throw AdapterConfigurationError.missingField("peft_type")
        }
        guard let type = AdapterType(rawValue: typeName.uppercased()) else {
            throw AdapterConfigurationError.unsupportedPEFTType(typeName)
        }
        guard let r = try int("r") else { throw AdapterConfigurationError.missingField("r") }
        guard r >= 1 else { throw AdapterConfigurationError.invalidField(name: "r", reason: "must be ≥ 1, got \(r)") }
        guard let alphaValue = dict["lora_alpha"] else { throw AdapterConfigurationError.missingField("lora_alpha") }
        guard let alphaNumber = alphaValue as? NSNumber, !isBool(alphaNumber), alphaNumber.doubleValue.isFinite else {
            throw AdapterConfigurationError.invalidField(name: "lora_alpha", reason: "expected a finite number, got \(alphaValue)")
        }
        let targets: TargetModules
        switch dict["target_modules"] {
        case let list as [Any]:
            let names = list.compactMap { $0 as? String }
            guard names.count == list.count, !names.isEmpty else {
                throw AdapterConfigurationError.invalidField(name: "target_modules", reason: "expected a non-empty list of strings")
            }
            targets = .names(names)
        case let s as String:
            guard (try? NSRegularExpression(pattern: s)) != nil else {
                throw AdapterConfigurationError.invalidField(name: "target_modules", reason: "'\(s)' is not a valid regular expression")
            }
            targets = .pattern(s)
        case nil, is NSNull:
            throw AdapterConfigurationError.missingField("target_modules")
        case let other?:
            throw AdapterConfigurationError.invalidField(name: "target_modules", reason: "expected a list or a string, got \(other)")
        }
        // Options that change the math and that we do not implement: refuse them by name.
        if try bool("use_dora") == true { throw AdapterConfigurationError.unsupportedOption(name: "use_dora", value: "true") }
        if let bias = dict["bias"] as? String, bias != "none" {
            throw AdapterConfigurationError.unsupportedOption(name: "bias", value: "\"\(bias)\"")
        }
        if let m = dict["modules_to_save"], !(m is NSNull), !((m as? [Any])?.isEmpty ?? false) {
            throw AdapterConfigurationError.unsupportedOption(name: "modules_to_save", value: "\(m)")
        }
        if let l = dict["layer_replication"], !(l is NSNull) {
            throw AdapterConfigurationError.unsupportedOption(name: "layer_replication", value: "\(l)")
        }
        // Newer PEFT options that add parameters or change the update.
        for flag in ["lora_bias", "use_qalora", "use_bdlora"] where try bool(flag) == true {
            throw AdapterConfigurationError.unsupportedOption(name: flag, value: "true")
        }
        for key in ["trainable_token_indices", "target_parameters", "alora_invocation_tokens"] {
            if let v = dict[key], !(v is NSNull), !((v as? [Any])?.isEmpty ?? false), !((v as? [String: Any])?.isEmpty ?? false) {
                throw AdapterConfigurationError.unsupportedOption(name: key, value: "\(v)")
            }
        }
        var rankPattern: [String: Int] = [:]
        if let rp = dict["rank_pattern"], !(rp is NSNull) {
            guard let map = rp as? [String: Any] else {
                throw AdapterConfigurationError.invalidField(name: "rank_pattern", reason: "expected an object")
            }
            for (k, v) in map {
                guard let n = v as? NSNumber, !isBool(n), let i = Int(exactly: n.doubleValue), i >= 1 else {
                    throw AdapterConfigurationError.invalidField(name: "rank_pattern", reason: "'\(k)': expected a positive integer")
                }
                // PEFT compiles every key (re.match) and fails on a bad one; so do we, instead of
                // ignoring the override.
                guard (try? NSRegularExpression(pattern: k)) != nil else {
                    throw AdapterConfigurationError.invalidField(name: "rank_pattern", reason: "key '\(k)' is not a valid regular expression")
                }
                rankPattern[k] = i
            }
        }
        var alphaPattern: [String: Float] = [:]
        if let ap = dict["alpha_pattern"], !(ap is NSNull) {
            guard let map = ap as? [String: Any] else {
                throw AdapterConfigurationError.invalidField(name: "alpha_pattern", reason: "expected an object")
            }
            for (k, v) in map {
                guard let n = v as? NSNumber, !isBool(n), n.doubleValue.isFinite else {
                    throw AdapterConfigurationError.invalidField(name: "alpha_pattern", reason: "'\(k)': expected a number")
                }
                guard (try? NSRegularExpression(pattern: k)) != nil else {
                    throw AdapterConfigurationError.invalidField(name: "alpha_pattern", reason: "key '\(k)' is not a valid regular expression")
                }
                alphaPattern[k] = n.floatValue
            }
        }
        var outputSizes: [Int]? = nil
        if let os = dict["output_sizes"], !(os is NSNull) {
            guard let list = os as? [Any] else {
                throw AdapterConfigurationError.invalidField(name: "output_sizes", reason: "expected a list of integers, got \(os)")
            }
            outputSizes = try list.map { v in
                guard let n = v as? NSNumber, !isBool(n), let i = Int(exactly: n.doubleValue) else {
                    throw AdapterConfigurationError.invalidField(name: "output_sizes", reason: "expected a list of integers, got \(os)")
                }
                return i
            }
        }
        self.init(peftType: type, rank: r, alpha: alphaNumber.floatValue,
                  useRSLoRA: try bool("use_rslora") ?? false, targetModules: targets,
                  fanInFanOut: try bool("fan_in_fan_out") ?? false,
                  rankPattern: rankPattern, alphaPattern: alphaPattern,
                  layerCount: try int("num_layers") ?? int("layer_count"),
                  headCount: try int("num_heads") ?? int("head_count"),
                  headDimension: try int("head_dim"), outputSizes: outputSizes)
    }

    /// Rank of `module`, honouring `rank_pattern`.
    public func rank(forModule module: String) -> Int {
        patternValue(rankPattern, module) ?? rank
    }

    /// Alpha of `module`, honouring `alpha_pattern`.
    public func alpha(forModule module: String) -> Float {
        patternValue(alphaPattern, module) ?? alpha
    }

    /// The scale s of `module`: alpha/r, or alpha/√r with rsLoRA.
    public func scale(forModule module: String) -> Float {
        let r = Float(rank(forModule: module))
        let a = alpha(forModule: module)
        return useRSLoRA ? a / r.squareRoot() : a / r
    }

    private func patternValue<V>(_ map: [String: V], _ module: String) -> V? {
        // PEFT: the first key (in insertion order) with re.match(rf"(.*\.)?{key}$", name).
        // JSON object order is not kept by Foundation; prefer the longest matching key.
        map.keys.sorted { $0.count > $1.count || ($0.count == $1.count && $0 < $1) }
            .first { fullMatch(pattern: "(.*\\.)?(?:" + $0 + ")", module) }
            .flatMap { map[$0] }
    }
}

/// JSONSerialization represents true/false as NSNumber with Objective-C type "c" (char);
/// integers and reals have other types.
func isBool(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }
