import Foundation
import Testing
@testable import LoRTA

/// `lorta merge` and `AdapterMerger` on a PEFT-layout fixture written by Python's safetensors
/// package, with expected merged weights from numpy (scripts/fixtures/make_merge_fixtures.py).
@Suite("Adapter merge", .serialized)
struct MergeTests {
    static let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("merge")
    var base: URL { Self.fixtures.appendingPathComponent("base.safetensors") }
    var adapter: URL { Self.fixtures.appendingPathComponent("adapter") }

    func tempDir() throws -> URL {
        try testScratchDirectory("lorta-merge")
    }

    func relDiff(_ a: Tensor, _ b: Tensor) -> Float {
        var m: Float = 0
        for i in 0..<a.count { m = max(m, abs(a[flat: i] - b[flat: i])) }
        return m / max(b.maxAbsolute, 1e-30)
    }

    @Test func mergeMatchesNumpyAndCopiesTheRestUnchanged() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("merged.safetensors")
        let summary = try AdapterMerger.merge(baseModel: base, adapterDirectory: adapter, output: out)
        let baseReader = try SafeTensorsReader(contentsOf: base)
        let merged = try SafeTensorsReader(contentsOf: out)
        let expected = try SafeTensorsReader(contentsOf: Self.fixtures.appendingPathComponent("expected_merged.safetensors"))
        #expect(summary.tensorsChanged == expected.names.count)
        #expect(summary.tensorsTotal == baseReader.names.count)
        #expect(Set(summary.changedTensors) == Set(expected.names))
        #expect(merged.names == baseReader.names)
        #expect(merged.metadata == baseReader.metadata)
        for name in baseReader.names {
            #expect(merged.entry(name)?.dtype == baseReader.entry(name)?.dtype)
            if expected.entry(name) != nil {
                #expect(relDiff(try merged.tensor(name), try expected.tensor(name)) < 1e-6, "\(name)")
            } else {
                #expect(try merged.rawBytes(name) == baseReader.rawBytes(name), "\(name) must be copied byte for byte")
            }
        }
        // The MLP's output.dense is not the attention output: it must be untouched.
        #expect(!summary.changedTensors.contains("encoder.layer.0.output.dense.weight"))
        #expect(summary.changedTensors.contains("encoder.layer.0.attention.output.dense.weight"))
    }

    @Test func cliMergeThenUnmergeRestoresTheBase() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let merged = dir.appendingPathComponent("m.safetensors"), restored = dir.appendingPathComponent("r.safetensors")
        let r1 = try CLI.run(["merge", "--base", base.path, "--adapter", adapter.path, "--out", merged.path, "--json"])
        #expect(r1.status == 0, "\(r1.stderr)")
        let json = try #require(JSONSerialization.jsonObject(with: Data(r1.stdout.utf8)) as? [String: Any])
        #expect(json["tensors_changed"] as? Int == 6)
        #expect(json["adapter_type"] as? String == "LORA")
        // max |ΔW| against numpy's merged − base
        let b = try SafeTensorsReader(contentsOf: base)
        let e = try SafeTensorsReader(contentsOf: Self.fixtures.appendingPathComponent("expected_merged.safetensors"))
        var maxDelta: Float = 0
        for name in e.names {
            let x = try e.tensor(name), w = try b.tensor(name)
            for i in 0..<x.count { maxDelta = max(maxDelta, abs(x[flat: i] - w[flat: i])) }
        }
        let reported = try #require((json["max_abs_delta"] as? NSNumber)?.floatValue)
        #expect(abs(reported - maxDelta) <= 1e-5 * maxDelta)

        let r2 = try CLI.run(["merge", "--base", merged.path, "--adapter", adapter.path, "--out", restored.path, "--unmerge"])
        #expect(r2.status == 0, "\(r2.stderr)")
        let back = try SafeTensorsReader(contentsOf: restored)
        for name in b.names {
            let w = try b.entry(name)!.dtype == .i64 ? nil : b.tensor(name)
            if let w {
                let x = try back.tensor(name)
                var m: Float = 0
                for i in 0..<x.count { m = max(m, abs(x[flat: i] - w[flat: i])) }
                #expect(m <= 1e-6 * w.maxAbsolute, "\(name)")
            } else {
                #expect(try back.rawBytes(name) == b.rawBytes(name))
            }
        }
    }

    /// Writes a copy of the adapter directory with edits, for the error cases.
    func editedAdapter(config edit: (inout [String: Any]) -> Void = { _ in },
                       tensors: (inout [String: Tensor]) -> Void = { _ in }) throws -> URL {
        let dir = try tempDir().appendingPathComponent("adapter")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: adapter.appendingPathComponent("adapter_config.json"))) as! [String: Any]
        edit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("adapter_config.json"))
        var t = try SafeTensors.load(adapter.appendingPathComponent("adapter_model.safetensors"))
        tensors(&t)
        try SafeTensors.save(t, to: dir.appendingPathComponent("adapter_model.safetensors"))
        return dir
    }

    func expectFailure(adapter dir: URL, base baseURL: URL? = nil, _ check: (Error) -> Bool, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let out = try tempDir().appendingPathComponent("out.safetensors")
        // An existing output file must survive a failed merge untouched.
        try Data("sentinel".utf8).write(to: out)
        do {
            _ = try AdapterMerger.merge(baseModel: baseURL ?? base, adapterDirectory: dir, output: out)
            Issue.record("merge should have failed", sourceLocation: sourceLocation)
        } catch {
            #expect(check(error), "unexpected error: \(error)", sourceLocation: sourceLocation)
        }
        #expect(try Data(contentsOf: out) == Data("sentinel".utf8), sourceLocation: sourceLocation)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: out.deletingLastPathComponent().path)
        #expect(leftovers == ["out.safetensors"], "temporary files left: \(leftovers)", sourceLocation: sourceLocation)
    }

    @Test func targetThatMatchesNothingIsAnError() throws {
        let dir = try editedAdapter(config: { $0["target_modules"] = ["query", "value", "attention.output.dense", "gate_proj"] })
        try expectFailure(adapter: dir) { ($0 as? AdapterMergeError) == .targetMatchesNothing(target: "gate_proj") }
    }

    @Test func moduleOutsideTheTargetsIsAnError() throws {
        let dir = try editedAdapter(config: { $0["target_modules"] = ["query", "value"] })
        try expectFailure(adapter: dir) {
            if case .moduleNotTargeted(let m) = $0 as? AdapterMergeError { return m.hasSuffix("attention.output.dense") }
            return false
        }
    }

    @Test func moduleMissingFromTheBaseIsAnError() throws {
        let dir = try tempDir()
        let reader = try SafeTensorsReader(contentsOf: base)
        var writer = SafeTensorsWriter()
        for e in reader.entries where e.name != "encoder.layer.1.attention.self.value.weight" {
            try writer.addRaw(e.name, dtype: e.dtype, shape: e.shape, bytes: reader.rawBytes(e.name))
        }
        let smaller = dir.appendingPathComponent("base.safetensors")
        try writer.write(to: smaller)
        try expectFailure(adapter: adapter, base: smaller) {
            if case .moduleNotInBase(let m, _) = $0 as? AdapterMergeError { return m == "encoder.layer.1.attention.self.value" }
            return false
        }
    }

    @Test func wrongRankOrShapeIsAnError() throws {
        let dir = try editedAdapter(tensors: {
            $0["base_model.model.encoder.layer.0.attention.self.query.lora_A.weight"] = try! Tensor(zeros: [3, 8])
        })
        try expectFailure(adapter: dir) {
            if case .shapeMismatch(let m, _) = $0 as? AdapterMergeError { return m == "encoder.layer.0.attention.self.query" }
            return false
        }
        let dir2 = try editedAdapter(tensors: {
            $0["base_model.model.encoder.layer.0.attention.self.query.lora_A.weight"] = try! Tensor(zeros: [2, 5])
        })
        try expectFailure(adapter: dir2) { if case .shapeMismatch = $0 as? AdapterMergeError { return true }; return false }
    }

    @Test func missingHalfOfAModuleIsAnError() throws {
        let dir = try editedAdapter(tensors: { $0["base_model.model.encoder.layer.1.attention.self.query.lora_B.weight"] = nil })
        try expectFailure(adapter: dir) {
            ($0 as? AdapterMergeError) == .incompleteModule(module: "encoder.layer.1.attention.self.query", missing: "lora_B")
        }
    }

    @Test func unsupportedOptionsAreNamed() throws {
        for (key, value) in [("use_dora", true as Any), ("bias", "all" as Any), ("modules_to_save", ["classifier"] as Any)] {
            let dir = try editedAdapter(config: { $0[key] = value })
            try expectFailure(adapter: dir) {
                if case .unsupportedOption(let n, _) = $0 as? AdapterConfigurationError { return n == key }
                return false
            }
        }
        let dir = try editedAdapter(config: { $0["peft_type"] = "IA3" })
        try expectFailure(adapter: dir) { ($0 as? AdapterConfigurationError) == .unsupportedPEFTType("IA3") }
    }

    @Test func cliReportsErrorsAndLeavesNoFile() throws {
        let dir = try tempDir()
        let out = dir.appendingPathComponent("never.safetensors")
        let r = try CLI.run(["merge", "--base", base.path, "--adapter", dir.path, "--out", out.path])
        #expect(r.status != 0)
        #expect(r.stderr.contains("adapter_config.json"))
        #expect(!FileManager.default.fileExists(atPath: out.path))
    }

    @Test func peftTargetMatchingRules() {
        let t = TargetModules.names(["query", "attention.output.dense"])
        #expect(t.matches("encoder.layer.3.attention.self.query"))
        #expect(t.matches("encoder.layer.3.attention.output.dense"))
        #expect(!t.matches("encoder.layer.3.output.dense"))
        #expect(!t.matches("encoder.layer.3.attention.self.query_proj"))
        let p = TargetModules.pattern(#".*\.(query|value)"#)
        #expect(p.matches("encoder.layer.0.attention.self.value"))
        #expect(!p.matches("encoder.layer.0.attention.self.key"))
    }

    @Test func configScalesAndPatterns() throws {
        let json = #"{"peft_type":"LORA","r":16,"lora_alpha":32,"use_rslora":true,"target_modules":["q"],"rank_pattern":{"layer.0.q":4},"alpha_pattern":{}}"#
        let c = try PEFTAdapterConfiguration(jsonData: Data(json.utf8))
        #expect(c.scale(forModule: "layer.1.q") == 32 / 4)            // alpha / sqrt(16)
        #expect(c.rank(forModule: "model.layer.0.q") == 4)
        #expect(c.scale(forModule: "model.layer.0.q") == 32 / 2)       // alpha / sqrt(4)
        #expect(throws: AdapterConfigurationError.missingField("r")) {
            try PEFTAdapterConfiguration(jsonData: Data(#"{"peft_type":"LORA","lora_alpha":1,"target_modules":["q"]}"#.utf8))
        }
        #expect(throws: AdapterConfigurationError.self) {
            try PEFTAdapterConfiguration(jsonData: Data(#"{"peft_type":"LORA","r":true,"lora_alpha":1,"target_modules":["q"]}"#.utf8))
        }
        #expect(throws: AdapterConfigurationError.self) { try PEFTAdapterConfiguration(jsonData: Data("[1,2".utf8)) }
    }
}
