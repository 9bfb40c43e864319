import Foundation
import Testing
@testable import LoRTA

/// LoRTA adapter directories: `adapter_model.safetensors` with the reference factor names and
/// `adapter_config.json` (`peft_type: "LORTA"`); round trips and every malformed input.
@Suite("LoRTA files")
final class LoRTAFilesTests {
    /// Every temporary file of one test lives under this folder, removed when the test ends.
    let root: URL

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("lorta-files-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: root) }

    static let pythonAdapter = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
        .appendingPathComponent("lorta_merge/bert/adapter")

    func tempDir() throws -> URL {
        let d = root.appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }

    func bits(_ t: Tensor) -> [UInt32] { t.scalars.map(\.bitPattern) }

    func expectBitwiseEqual(_ x: LoRTAFactors, _ y: LoRTAFactors, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(x.a.count == y.a.count, sourceLocation: sourceLocation)
        for (p, q) in zip(x.a, y.a) {
            #expect(p.shape == q.shape && bits(p) == bits(q), sourceLocation: sourceLocation)
        }
        for (p, q) in [(x.b, y.b), (x.cH, y.cH), (x.cL, y.cL), (x.cM, y.cM)] {
            #expect(p.shape == q.shape && bits(p) == bits(q), sourceLocation: sourceLocation)
        }
    }

    static func square() throws -> LoRTAConfiguration {
        try LoRTAConfiguration(rank: 3, alpha: 0.1, targetModules: ["query", "key", "value", "attention.output.dense"],
                               layerCount: 4, headCount: 3, headDimension: 5)
    }

    static func gqa() throws -> LoRTAConfiguration {
        try LoRTAConfiguration(rank: 4, alpha: 8, targetModules: ["q_proj", "k_proj", "v_proj", "o_proj", "x_proj"],
                               layerCount: 3, headCount: 4, headDimension: 6, outputSizes: [24, 12, 12, 24, 7])
    }

    // MARK: round trips

    @Test(arguments: [0, 1])
    func roundTripIsBitwise(which: Int) throws {
        let c = try which == 0 ? Self.square() : Self.gqa()
        var f = randomLoRTAFactors(c, seed: 77 + UInt64(which))
        f.b[flat: 0] = -0.0                                  // the sign of zero survives too
        f.cH[flat: 1] = .leastNonzeroMagnitude               // and subnormals
        let adapter = try LoRTAAdapter(configuration: c, factors: f)
        let dir = try tempDir().appendingPathComponent("nested/adapter")   // created by save
        try adapter.save(to: dir)
        let loaded = try LoRTAAdapter(contentsOf: dir)
        #expect(loaded.configuration == c)
        #expect(try LoRTAConfiguration(peftConfiguration: c.peftConfiguration) == c)
        #expect(loaded.configuration.alpha.bitPattern == c.alpha.bitPattern)
        expectBitwiseEqual(loaded.factors, f)
        #expect(loaded.gradients == (try LoRTAFactors(zerosFor: c)))

        // The file holds exactly the reference names with the reference shapes, as F32.
        let reader = try SafeTensorsReader(contentsOf: dir.appendingPathComponent("adapter_model.safetensors"))
        var expected: [String: [Int]] = ["lora_A": [c.distinctOutputSizes[0], c.rank], "lora_B": [c.rank, c.headDimension],
                                         "lora_C_l": [c.layerCount, c.rank], "lora_C_h": [c.headCount, c.rank],
                                         "lora_C_m": [c.matrixCount, c.rank]]
        for i in c.distinctOutputSizes.indices.dropFirst() { expected["lora_A_\(i)"] = [c.distinctOutputSizes[i], c.rank] }
        #expect(Dictionary(uniqueKeysWithValues: reader.entries.map { ($0.name, $0.shape) }) == expected)
        #expect(reader.entries.allSatisfy { $0.dtype == .f32 })
        #expect(bits(try reader.tensor("lora_C_m")) == bits(f.cM))
        if which == 1 {
            #expect(bits(try reader.tensor("lora_A_1")) == bits(f.a[1]))       // 12 rows: second distinct size
            #expect(bits(try reader.tensor("lora_A_2")) == bits(f.a[2]))       // 7 rows
        }

        // The JSON has the documented keys and values.
        let json = try #require(JSONSerialization.jsonObject(
            with: Data(contentsOf: dir.appendingPathComponent("adapter_config.json"))) as? [String: Any])
        #expect(json["peft_type"] as? String == "LORTA")
        #expect(json["r"] as? Int == c.rank)
        #expect((json["lora_alpha"] as? NSNumber)?.floatValue == c.alpha)
        #expect(json["target_modules"] as? [String] == c.targetModules)
        #expect(json["num_layers"] as? Int == c.layerCount)
        #expect(json["num_heads"] as? Int == c.headCount)
        #expect(json["head_dim"] as? Int == c.headDimension)
        #expect((json["output_sizes"] as? [Int]) == (which == 1 ? c.outputSizes : nil))
    }

    @Test func saveReplacesAnExistingAdapter() throws {
        let c = try Self.square()
        let dir = try tempDir()
        try LoRTAAdapter(configuration: c, factors: randomLoRTAFactors(c, seed: 1)).save(to: dir)
        let second = randomLoRTAFactors(c, seed: 2)
        try LoRTAAdapter(configuration: c, factors: second).save(to: dir)
        expectBitwiseEqual(try LoRTAAdapter(contentsOf: dir).factors, second)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(files == ["adapter_config.json", "adapter_model.safetensors"], "temporary files left: \(files)")
    }

    @Test func saveRefusesNonFiniteFactorsAndWritesNothing() throws {
        let c = try Self.square()
        var f = randomLoRTAFactors(c, seed: 3)
        f.cL[flat: 2] = .infinity
        let dir = try tempDir().appendingPathComponent("adapter")
        #expect(throws: LoRTAFileError.nonFinite(tensor: "lora_C_l")) {
            try LoRTAAdapter(configuration: c, factors: f).save(to: dir)
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path))
    }

    @Test func loadsTheAdapterWrittenByPython() throws {
        let a = try LoRTAAdapter(contentsOf: Self.pythonAdapter)
        let c = a.configuration
        #expect(c.rank == 3 && c.alpha == 6 && c.layerCount == 3 && c.headCount == 3 && c.headDimension == 4)
        #expect(c.targetModules == ["value", "query", "attention.output.dense", "key"])
        #expect(c.outputSizes == [12, 12, 12, 12])
        let reader = try SafeTensorsReader(contentsOf: Self.pythonAdapter.appendingPathComponent("adapter_model.safetensors"))
        #expect(bits(a.factors.a[0]) == bits(try reader.tensor("lora_A")))
        #expect(bits(a.factors.cH) == bits(try reader.tensor("lora_C_h")))
        #expect(bits(a.factors.cL) == bits(try reader.tensor("lora_C_l")))
    }

    // MARK: malformed directories

    /// Writes an adapter directory from the saved `base` adapter with edits to the JSON object
    /// and to the tensors (name → (dtype, shape, bytes)).
    func malformed(_ c: LoRTAConfiguration, seed: UInt64 = 5,
                   config edit: (inout [String: Any]) -> Void = { _ in },
                   tensors editTensors: (inout [String: (SafeTensorsDType, [Int], Data)]) -> Void = { _ in }) throws -> URL {
        let dir = try tempDir()
        try LoRTAAdapter(configuration: c, factors: randomLoRTAFactors(c, seed: seed)).save(to: dir)
        let configURL = dir.appendingPathComponent("adapter_config.json")
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as! [String: Any]
        edit(&json)
        try JSONSerialization.data(withJSONObject: json).write(to: configURL)
        let weightsURL = dir.appendingPathComponent("adapter_model.safetensors")
        let reader = try SafeTensorsReader(contentsOf: weightsURL)
        var t: [String: (SafeTensorsDType, [Int], Data)] = [:]
        for e in reader.entries { t[e.name] = (e.dtype, e.shape, try reader.rawBytes(e.name)) }
        editTensors(&t)
        var writer = SafeTensorsWriter()
        for name in t.keys.sorted() { try writer.addRaw(name, dtype: t[name]!.0, shape: t[name]!.1, bytes: t[name]!.2) }
        try writer.write(to: weightsURL)
        return dir
    }

    static func f32Bytes(_ values: [Float]) -> Data {
        var d = Data()
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { d.append(contentsOf: $0) } }
        return d
    }

    func expectLoadError<E: Error & Equatable>(_ dir: URL, _ expected: E, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: expected, sourceLocation: sourceLocation) { try LoRTAAdapter(contentsOf: dir) }
    }

    @Test func missingFilesAreNamed() throws {
        let c = try Self.square()
        let dir = try malformed(c)
        try FileManager.default.removeItem(at: dir.appendingPathComponent("adapter_model.safetensors"))
        expectLoadError(dir, LoRTAFileError.missingFile(dir.appendingPathComponent("adapter_model.safetensors").path))
        let empty = try tempDir()
        expectLoadError(empty, LoRTAFileError.missingFile(empty.appendingPathComponent("adapter_config.json").path))
    }

    @Test func malformedConfigurationsAreRejected() throws {
        let c = try Self.square()
        expectLoadError(try malformed(c, config: { $0["peft_type"] = "LORA" }), LoRTAFileError.notLoRTA(peftType: "LORA"))
        expectLoadError(try malformed(c, config: { $0["num_layers"] = nil }), AdapterConfigurationError.missingField("num_layers"))
        expectLoadError(try malformed(c, config: { $0["num_heads"] = nil }), AdapterConfigurationError.missingField("num_heads"))
        expectLoadError(try malformed(c, config: { $0["target_modules"] = ".*query" }),
                        LoRTAFileError.targetModulesNotAList(".*query"))
        expectLoadError(try malformed(c, config: { $0["use_rslora"] = true }),
                        AdapterConfigurationError.unsupportedOption(name: "use_rslora", value: "true"))
        for bad: Any in [["a"], 15, [15.5, 15, 15, 15]] {
            let dir = try malformed(c, config: { $0["output_sizes"] = bad })
            do { _ = try LoRTAAdapter(contentsOf: dir); Issue.record("output_sizes \(bad) accepted") } catch {
                guard case .invalidField(let name, _)? = error as? AdapterConfigurationError, name == "output_sizes" else {
                    Issue.record("unexpected error \(error)"); continue
                }
            }
        }
        #expect(throws: AdapterConfigurationError.self) {
            try LoRTAAdapter(contentsOf: try malformed(c, config: { $0["num_layers"] = 2.5 }))
        }
        expectLoadError(try malformed(c, config: { $0["output_sizes"] = [15, 15] }),
                        LoRTAError.invalidConfiguration("2 output sizes for 4 target modules"))
        expectLoadError(try malformed(c, config: { $0["num_heads"] = 0 }),
                        LoRTAError.invalidConfiguration("headCount must be >= 1, got 0"))
        expectLoadError(try malformed(c, config: { $0["target_modules"] = ["query", "key", "query", "value"] }),
                        LoRTAError.invalidConfiguration("targetModules has duplicates: [\"query\", \"key\", \"query\", \"value\"]"))
        // A change of r, L, H or M is caught by the factor shapes.
        expectLoadError(try malformed(c, config: { $0["num_layers"] = 5 }),
                        LoRTAFileError.tensorShapeMismatch(tensor: "lora_C_l", expected: [5, 3], actual: [4, 3]))
        expectLoadError(try malformed(c, config: { $0["r"] = 2 }),
                        LoRTAFileError.tensorShapeMismatch(tensor: "lora_A", expected: [15, 2], actual: [15, 3]))
        expectLoadError(try malformed(c, config: { $0["target_modules"] = ["query", "key", "value"] }),
                        LoRTAFileError.tensorShapeMismatch(tensor: "lora_C_m", expected: [3, 3], actual: [4, 3]))
        expectLoadError(try malformed(c, config: { $0["head_dim"] = 4 }),
                        LoRTAFileError.tensorShapeMismatch(tensor: "lora_A", expected: [12, 3], actual: [15, 3]))
        // Not JSON at all.
        let dir = try malformed(c)
        try Data("{\"peft_type\": ".utf8).write(to: dir.appendingPathComponent("adapter_config.json"))
        #expect(throws: AdapterConfigurationError.self) { try LoRTAAdapter(contentsOf: dir) }
    }

    @Test func headDimensionIsTakenFromLoraBWhenAbsent() throws {
        let c = try Self.square()
        let loaded = try LoRTAAdapter(contentsOf: try malformed(c, config: { $0["head_dim"] = nil }))
        #expect(loaded.configuration == c)
        // Without head_dim, a lora_B that is not a matrix cannot give it.
        expectLoadError(try malformed(c, config: { $0["head_dim"] = nil }, tensors: {
            $0["lora_B"] = (.f32, [15], Self.f32Bytes(Array(repeating: 1, count: 15)))
        }), LoRTAFileError.cannotInferHeadDimension(reason: "lora_B has shape [15], not r × d_h"))
    }

    @Test func wrongFactorShapesAreNamed() throws {
        let c = try Self.gqa()
        let shapes = c.factorTensorShapes
        #expect(shapes.map(\.name) == ["lora_A", "lora_A_1", "lora_A_2", "lora_B", "lora_C_l", "lora_C_h", "lora_C_m"])
        for (name, shape) in shapes {
            for bad in [[shape[0] + 1, shape[1]], [shape[0], shape[1] - 1], [shape[1], shape[0]], [shape[0] * shape[1]]]
            where bad != shape {
                let n = bad.reduce(1, *)
                let dir = try malformed(c, tensors: { $0[name] = (.f32, bad, Self.f32Bytes(Array(repeating: 0.5, count: n))) })
                expectLoadError(dir, LoRTAFileError.tensorShapeMismatch(tensor: name, expected: shape, actual: bad))
            }
        }
    }

    @Test func missingAndUnexpectedTensorsAreNamed() throws {
        let c = try Self.gqa()
        for name in c.factorTensorShapes.map(\.name) {
            expectLoadError(try malformed(c, tensors: { $0[name] = nil }), LoRTAFileError.missingTensor(name))
        }
        expectLoadError(try malformed(c, tensors: { $0["lora_D"] = (.f32, [1], Self.f32Bytes([1])) }),
                        LoRTAFileError.unexpectedTensor("lora_D"))
        expectLoadError(try malformed(c, tensors: { $0["base_model.model.lora_A"] = $0["lora_A"] }),
                        LoRTAFileError.unexpectedTensor("base_model.model.lora_A"))
        // A square configuration has no lora_A_1.
        let sq = try Self.square()
        expectLoadError(try malformed(sq, tensors: { $0["lora_A_1"] = $0["lora_A"] }), LoRTAFileError.unexpectedTensor("lora_A_1"))
    }

    @Test func nonFiniteValuesAndBadDTypesAreNamed() throws {
        let c = try Self.square()
        for (name, value) in [("lora_C_l", Float.nan), ("lora_A", .infinity), ("lora_B", -.infinity), ("lora_C_h", .nan), ("lora_C_m", .infinity)] {
            let dir = try malformed(c, tensors: {
                var (dtype, shape, bytes) = $0[name]!
                bytes.replaceSubrange(4..<8, with: Self.f32Bytes([value]))
                $0[name] = (dtype, shape, bytes)
            })
            expectLoadError(dir, LoRTAFileError.nonFinite(tensor: name))
        }
        let dir = try malformed(c, tensors: { $0["lora_B"] = (.i32, $0["lora_B"]!.1, $0["lora_B"]!.2) })
        expectLoadError(dir, LoRTAFileError.unsupportedDType(tensor: "lora_B", dtype: "I32"))
        // F64 factors are accepted (rounded to Float32), with the same checks.
        let f64 = try malformed(c, tensors: {
            var d = Data()
            for _ in 0..<15 { withUnsafeBytes(of: Double(0.25).bitPattern.littleEndian) { d.append(contentsOf: $0) } }
            $0["lora_C_l"] = (.f64, [4, 3], d.prefix(12 * 8))
        })
        #expect(try LoRTAAdapter(contentsOf: f64).factors.cL.scalars == Array(repeating: 0.25, count: 12))
    }

    @Test func truncatedWeightsFileIsASafeTensorsError() throws {
        let c = try Self.square()
        let dir = try malformed(c)
        let url = dir.appendingPathComponent("adapter_model.safetensors")
        let bytes = try Data(contentsOf: url)
        try bytes.prefix(bytes.count - 4).write(to: url)
        #expect(throws: SafeTensorsError.self) { try LoRTAAdapter(contentsOf: dir) }
    }
}
