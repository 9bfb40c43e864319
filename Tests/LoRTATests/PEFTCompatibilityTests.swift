import Foundation
import Testing
@testable import LoRTA

/// Adapters saved by the real PEFT library (0.21) and the weights of PEFT's own
/// `merge_and_unload()` (scripts/fixtures/make_peft_merge_fixtures.py).
@Suite("PEFT compatibility", .serialized)
struct PEFTCompatibilityTests {
    static let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("peft")

    @Test(arguments: ["lora", "rslora"])
    func mergeEqualsPEFTMergeAndUnload(_ name: String) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lorta-peft-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("merged.safetensors")
        let base = Self.fixtures.appendingPathComponent("base.safetensors")
        let summary = try AdapterMerger.merge(baseModel: base, adapterDirectory: Self.fixtures.appendingPathComponent(name), output: out)
        let ours = try SafeTensorsReader(contentsOf: out)
        let peft = try SafeTensorsReader(contentsOf: Self.fixtures.appendingPathComponent("merged_\(name).safetensors"))
        let original = try SafeTensorsReader(contentsOf: base)
        #expect(summary.tensorsChanged == (name == "lora" ? 6 : 4))
        #expect(Set(ours.names) == Set(peft.names))
        for tensor in peft.names {
            let a = try ours.tensor(tensor), b = try peft.tensor(tensor), w = try original.tensor(tensor)
            var diff: Float = 0, change: Float = 0
            for i in 0..<a.count {
                diff = max(diff, abs(a[flat: i] - b[flat: i]))
                change = max(change, abs(b[flat: i] - w[flat: i]))
            }
            #expect(diff <= 1e-6 * max(b.maxAbsolute, 1), "\(tensor): max |ours − PEFT| = \(diff)")
            #expect(summary.changedTensors.contains(tensor) == (change > 0), "\(tensor)")
        }
    }

    @Test func peftConfigurationFieldsAreRead() throws {
        let c = try PEFTAdapterConfiguration(contentsOf: Self.fixtures.appendingPathComponent("rslora/adapter_config.json"))
        #expect(c.peftType == .lora && c.rank == 8 && c.alpha == 4 && c.useRSLoRA)
        #expect(c.rank(forModule: "encoder.layer.1.attention.self.query") == 2)
        #expect(c.rank(forModule: "encoder.layer.0.attention.self.query") == 8)
        #expect(c.scale(forModule: "encoder.layer.1.attention.self.query") == 4 / Float(2).squareRoot())
        // A pattern key that is not a regular expression is an error (PEFT's re.match raises),
        // not an override silently ignored.
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("rslora/adapter_config.json"))
        for field in ["rank_pattern", "alpha_pattern"] {
            var object = try JSONSerialization.jsonObject(with: data) as! [String: Any]
            object[field] = ["layer.1.(query": 2]
            #expect(throws: AdapterConfigurationError.invalidField(name: field, reason: "key 'layer.1.(query' is not a valid regular expression")) {
                try PEFTAdapterConfiguration(jsonData: JSONSerialization.data(withJSONObject: object))
            }
        }
    }

    @Test func newerPEFTOptionsThatChangeTheMathAreRefused() throws {
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("lora/adapter_config.json"))
        for (key, value) in [("lora_bias", true as Any), ("use_qalora", true as Any),
                             ("trainable_token_indices", [1, 2] as Any), ("target_parameters", ["w"] as Any)] {
            var object = try JSONSerialization.jsonObject(with: data) as! [String: Any]
            object[key] = value
            #expect(throws: AdapterConfigurationError.self, "\(key)") {
                try PEFTAdapterConfiguration(jsonData: JSONSerialization.data(withJSONObject: object))
            }
        }
    }
}
