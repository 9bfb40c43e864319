import CKernels
import Foundation
import Testing
@testable import LoRTA

/// `lorta merge` / `AdapterMerger` for LoRTA adapters, against fixtures whose expected merged
/// weights come from numpy float64 (scripts/fixtures/make_lorta_merge_fixtures.py):
/// a BERT-shaped base (3 layers, hidden 12, 3 heads; targets in the order value, query,
/// attention.output.dense, key) and a Llama-shaped GQA base (K/V with 8 of 16 rows, two A's).
@Suite("LoRTA merge", .serialized)
final class LoRTAMergeTests {
    /// Every temporary file of one test lives under this folder, removed when the test ends.
    let root: URL

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("lorta-lmerge-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: root) }

    static let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("lorta_merge")
    static func base(_ c: String) -> URL { fixtures.appendingPathComponent("\(c)/base.safetensors") }
    static func adapter(_ c: String) -> URL { fixtures.appendingPathComponent("\(c)/adapter") }
    static func expected(_ c: String) -> URL { fixtures.appendingPathComponent("\(c)/expected_merged.safetensors") }

    func tempDir() throws -> URL {
        let d = root.appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }

    /// max |a − b| / max |b|.
    func relDiff(_ a: Tensor, _ b: Tensor) -> Float {
        var m: Float = 0
        for i in 0..<a.count { m = max(m, abs(a[flat: i] - b[flat: i])) }
        return m / max(b.maxAbsolute, 1e-30)
    }

    @Test(arguments: ["bert", "gqa"])
    func mergeMatchesNumpyAndCopiesTheRest(fixture: String) throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("merged.safetensors")
        let summary = try AdapterMerger.merge(baseModel: Self.base(fixture), adapterDirectory: Self.adapter(fixture), output: out)
        let base = try SafeTensorsReader(contentsOf: Self.base(fixture))
        let merged = try SafeTensorsReader(contentsOf: out)
        let expected = try SafeTensorsReader(contentsOf: Self.expected(fixture))
        #expect(summary.adapterType == "LORTA" && summary.operation == "merge")
        #expect(summary.tensorsTotal == base.names.count)
        #expect(summary.tensorsChanged == expected.names.count)
        #expect(Set(summary.changedTensors) == Set(expected.names))
        #expect(merged.names == base.names)
        #expect(merged.metadata == base.metadata)
        for name in base.names {
            #expect(merged.entry(name)?.dtype == base.entry(name)?.dtype)
            #expect(merged.entry(name)?.shape == base.entry(name)?.shape)
            if expected.entry(name) != nil {
                let err = relDiff(try merged.tensor(name), try expected.tensor(name))
                #expect(err < 1e-6, "\(name): relative error \(err)")
                #expect(try merged.rawBytes(name) != base.rawBytes(name), "\(name) must change")
            } else {
                #expect(try merged.rawBytes(name) == base.rawBytes(name), "\(name) must be copied byte for byte")
            }
        }
        if fixture == "bert" {
            #expect(summary.tensorsChanged == 12)                   // 3 layers × 4 targets
            #expect(!summary.changedTensors.contains("encoder.layer.0.output.dense.weight"))   // the MLP
            #expect(!summary.changedTensors.contains("pooler.dense.weight"))
            #expect(base.entry("embeddings.position_ids")?.dtype == .i64)
        } else {
            #expect(summary.tensorsChanged == 8)
            #expect(merged.entry("model.layers.1.self_attn.k_proj.weight")?.shape == [8, 16])
        }
    }

    /// The merged update equals the adapter's own ΔW (kernel path through the public API).
    @Test func mergedDeltaEqualsDeltaWeight() throws {
        let adapter = try LoRTAAdapter(contentsOf: Self.adapter("gqa"))
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("m.safetensors")
        _ = try AdapterMerger.merge(baseModel: Self.base("gqa"), adapterDirectory: Self.adapter("gqa"), output: out)
        let base = try SafeTensorsReader(contentsOf: Self.base("gqa")), merged = try SafeTensorsReader(contentsOf: out)
        for (m, t) in ["q_proj", "k_proj", "v_proj", "o_proj"].enumerated() {
            let name = "model.layers.1.self_attn.\(t).weight"
            var w = try base.tensor(name)
            try adapter.merge(into: &w, layer: 1, matrix: m)
            #expect(try merged.tensor(name) == w, "\(name)")
        }
    }

    /// Every ISA path agrees with numpy (and with the scalar path to float rounding).
    @Test func everyISAAgreesWithNumpy() throws {
        try Runtime.initialize()
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        func mergedFile(_ label: String) throws -> Data {
            let out = dir.appendingPathComponent("\(label).safetensors")
            _ = try AdapterMerger.merge(baseModel: Self.base("gqa"), adapterDirectory: Self.adapter("gqa"), output: out)
            return try Data(contentsOf: out)
        }
        let expected = try SafeTensorsReader(contentsOf: Self.expected("gqa"))
        let scalar = try SafeTensorsReader(data: try Runtime.withInstructionSet(.scalar) { try mergedFile("scalar") })
        for isa in testedInstructionSets() {
            let merged = try SafeTensorsReader(data: try Runtime.withInstructionSet(isa) { try mergedFile(isa.rawValue) })
            for name in expected.names {
                #expect(relDiff(try merged.tensor(name), try expected.tensor(name)) < 1e-6, "\(isa) \(name)")
                #expect(relDiff(try merged.tensor(name), try scalar.tensor(name)) < 1e-6, "\(isa) vs scalar \(name)")
            }
        }
    }

    /// A GQA-shaped base large enough for both threads (the fixture's targets have ≤ 16 rows,
    /// one chunk): 2 layers, hidden 128 = 8 heads × 16, 4 KV heads (k_proj / v_proj 64 rows =
    /// 4 chunks of LT_ROWS_PER_CHUNK, q_proj / o_proj 128 rows = 8 chunks), r = 3, with
    /// `lora_A` (128 × r) and `lora_A_1` (64 × r). The merged file is byte-identical with 1 and
    /// 2 threads on every ISA, `lt_debug_threads_seen` proves thread 1 merged rows, and the
    /// merged weights equal W + s·A diag(C_H[h] ∘ C_L[l] ∘ C_M[m]) B computed here in float64.
    @Test func largeGQAMergeIsThreadCountIndependent() throws {
        try Runtime.initialize()
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let L = 2, H = 8, dh = 16, kvHeads = 4, r = 3, alpha: Float = 6
        let hidden = H * dh, kv = kvHeads * dh
        let targets = ["q_proj", "k_proj", "v_proj", "o_proj"], rows = [hidden, kv, kv, hidden]
        var rng = LoRATestRNG(seed: 2026)
        var base: [String: Tensor] = ["model.norm.weight": rng.tensor([hidden])]
        for l in 0..<L {
            for (t, n) in zip(targets, rows) { base["model.layers.\(l).self_attn.\(t).weight"] = rng.tensor([n, hidden]) }
            base["model.layers.\(l).mlp.down_proj.weight"] = rng.tensor([hidden, 2 * hidden])
        }
        let factors: [String: Tensor] = [
            "lora_A": rng.tensor([hidden, r], scale: 0.5), "lora_A_1": rng.tensor([kv, r], scale: 0.5),
            "lora_B": rng.tensor([r, dh], scale: 0.5), "lora_C_h": rng.tensor([H, r]),
            "lora_C_l": rng.tensor([L, r]), "lora_C_m": rng.tensor([targets.count, r]),
        ]
        let baseURL = dir.appendingPathComponent("base.safetensors"), adapterDir = dir.appendingPathComponent("adapter")
        try SafeTensors.save(base, to: baseURL)
        try FileManager.default.createDirectory(at: adapterDir, withIntermediateDirectories: true)
        try SafeTensors.save(factors, to: adapterDir.appendingPathComponent("adapter_model.safetensors"))
        let config: [String: Any] = ["peft_type": "LORTA", "r": r, "lora_alpha": alpha, "target_modules": targets,
                                     "num_layers": L, "num_heads": H, "head_dim": dh, "output_sizes": rows]
        try JSONSerialization.data(withJSONObject: config).write(to: adapterDir.appendingPathComponent("adapter_config.json"))

        func merged(_ label: String) throws -> (Data, threads: Int) {
            let out = dir.appendingPathComponent("\(label).safetensors")
            let (_, threads) = try withThreadsSeen {
                try AdapterMerger.merge(baseModel: baseURL, adapterDirectory: adapterDir, output: out)
            }
            return (try Data(contentsOf: out), threads)
        }
        for isa in testedInstructionSets() {
            let one = try Runtime.withInstructionSet(isa) { try Runtime.withThreadCount(1) { try merged("\(isa)-1") } }
            let two = try Runtime.withInstructionSet(isa) { try Runtime.withThreadCount(2) { try merged("\(isa)-2") } }
            #expect(one.threads == 1 && two.threads == 2, "\(isa): threads seen \(one.threads) and \(two.threads)")
            #expect(one.0 == two.0, "\(isa): the merged files differ between 1 and 2 threads")
            let file = try SafeTensorsReader(data: two.0)
            for l in 0..<L {
                for (m, t) in targets.enumerated() {
                    let name = "model.layers.\(l).self_attn.\(t).weight"
                    let a = factors[m == 1 || m == 2 ? "lora_A_1" : "lora_A"]!, b = factors["lora_B"]!
                    let cH = factors["lora_C_h"]!, cL = factors["lora_C_l"]!, cM = factors["lora_C_m"]!
                    let w = base[name]!
                    var want = [Float](repeating: 0, count: rows[m] * hidden)
                    for o in 0..<rows[m] {
                        for h in 0..<H {
                            for j in 0..<dh {
                                var delta = 0.0
                                for k in 0..<r {
                                    delta += Double(a[o, k]) * Double(cH[h, k]) * Double(cL[l, k]) * Double(cM[m, k]) * Double(b[k, j])
                                }
                                want[o * hidden + h * dh + j] = Float(Double(w[o, h * dh + j]) + Double(alpha) / Double(r) * delta)
                            }
                        }
                    }
                    let err = relDiff(try file.tensor(name), try Tensor(want, shape: [rows[m], hidden]))
                    #expect(err < 1e-6, "\(isa) \(name): relative error \(err)")
                }
            }
        }
    }

    @Test(arguments: ["bert", "gqa"])
    func cliMergeThenUnmergeRestoresTheBase(fixture: String) throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let merged = dir.appendingPathComponent("m.safetensors"), restored = dir.appendingPathComponent("r.safetensors")
        let r1 = try CLI.run(["merge", "--base", Self.base(fixture).path, "--adapter", Self.adapter(fixture).path,
                              "--out", merged.path, "--json"])
        #expect(r1.status == 0, "\(r1.stderr)")
        let json = try #require(JSONSerialization.jsonObject(with: Data(r1.stdout.utf8)) as? [String: Any])
        #expect(json["adapter_type"] as? String == "LORTA")
        let e = try SafeTensorsReader(contentsOf: Self.expected(fixture))
        #expect(json["tensors_changed"] as? Int == e.names.count)

        let r2 = try CLI.run(["merge", "--base", merged.path, "--adapter", Self.adapter(fixture).path,
                              "--out", restored.path, "--unmerge"])
        #expect(r2.status == 0, "\(r2.stderr)")
        #expect(r2.stdout.contains("unmerged LORTA adapter"))
        let b = try SafeTensorsReader(contentsOf: Self.base(fixture))
        let back = try SafeTensorsReader(contentsOf: restored)
        for entry in b.entries {
            if e.entry(entry.name) != nil {
                let w = try b.tensor(entry.name), x = try back.tensor(entry.name)
                var m: Float = 0
                for i in 0..<x.count { m = max(m, abs(x[flat: i] - w[flat: i])) }
                #expect(m <= 1e-6 * w.maxAbsolute, "\(entry.name)")
            } else {
                #expect(try back.rawBytes(entry.name) == b.rawBytes(entry.name), "\(entry.name)")
            }
        }
    }

    // MARK: errors

    /// A copy of a fixture adapter with edits to its config and factors (F32).
    func editedAdapter(_ fixture: String = "bert", config edit: (inout [String: Any]) -> Void = { _ in },
                       tensors: (inout [String: Tensor]) throws -> Void = { _ in }) throws -> URL {
        let dir = try tempDir().appendingPathComponent("adapter")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let src = Self.adapter(fixture)
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: src.appendingPathComponent("adapter_config.json"))) as! [String: Any]
        edit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("adapter_config.json"))
        var t = try SafeTensors.load(src.appendingPathComponent("adapter_model.safetensors"))
        try tensors(&t)
        try SafeTensors.save(t, to: dir.appendingPathComponent("adapter_model.safetensors"))
        return dir
    }

    /// A copy of the BERT base with tensors added or removed.
    func editedBase(remove: Set<String> = [], add: [String: Tensor] = [:]) throws -> URL {
        let reader = try SafeTensorsReader(contentsOf: Self.base("bert"))
        var writer = SafeTensorsWriter()
        for e in reader.entries where !remove.contains(e.name) {
            try writer.addRaw(e.name, dtype: e.dtype, shape: e.shape, bytes: reader.rawBytes(e.name))
        }
        for (name, t) in add { try writer.add(name, t) }
        let url = try tempDir().appendingPathComponent("base.safetensors")
        try writer.write(to: url)
        return url
    }

    /// The merge must fail with an error satisfying `check`, leave an existing output file
    /// untouched and leave no temporary file.
    func expectFailure(adapter dir: URL, base: URL = LoRTAMergeTests.base("bert"), _ check: (Error) -> Bool,
                       sourceLocation: SourceLocation = #_sourceLocation) throws {
        let out = try tempDir().appendingPathComponent("out.safetensors")
        try Data("sentinel".utf8).write(to: out)
        do {
            _ = try AdapterMerger.merge(baseModel: base, adapterDirectory: dir, output: out)
            Issue.record("merge should have failed", sourceLocation: sourceLocation)
        } catch {
            #expect(check(error), "unexpected error: \(error)", sourceLocation: sourceLocation)
        }
        #expect(try Data(contentsOf: out) == Data("sentinel".utf8), sourceLocation: sourceLocation)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: out.deletingLastPathComponent().path)
        #expect(leftovers == ["out.safetensors"], "temporary files left: \(leftovers)", sourceLocation: sourceLocation)
    }

    @Test func targetThatMatchesNothingIsAnError() throws {
        let dir = try editedAdapter(config: { $0["target_modules"] = ["value", "query", "attention.output.dense", "key", "gate_proj"] },
                                    tensors: { t in
            t["lora_C_m"] = try Tensor(t["lora_C_m"]!.scalars + [0.5, -0.5, 1], shape: [5, 3])
        })
        try expectFailure(adapter: dir) { ($0 as? AdapterMergeError) == .targetMatchesNothing(target: "gate_proj") }
    }

    @Test func layerIndexBeyondTheAdapterIsAnError() throws {
        // A consistent 2-layer adapter applied to the 3-layer base: layer 2 has no C_L row.
        let dir = try editedAdapter(config: { $0["num_layers"] = 2 }, tensors: { t in
            t["lora_C_l"] = try Tensor(Array(t["lora_C_l"]!.scalars.prefix(6)), shape: [2, 3])
        })
        #expect(throws: Never.self) { try LoRTAAdapter(contentsOf: dir) }       // the adapter itself is valid
        try expectFailure(adapter: dir) {
            guard case .layerOutOfRange(let module, let l, let n)? = $0 as? AdapterMergeError else { return false }
            return l == 2 && n == 2 && module.hasPrefix("encoder.layer.2.")
        }
    }

    @Test func wrongFactorShapeIsAnError() throws {
        let dir = try editedAdapter(tensors: { $0["lora_B"] = try Tensor(zeros: [3, 5]) })
        try expectFailure(adapter: dir) {
            ($0 as? LoRTAFileError) == .tensorShapeMismatch(tensor: "lora_B", expected: [3, 4], actual: [3, 5])
        }
        let dir2 = try editedAdapter("gqa", tensors: { $0["lora_A_1"] = try Tensor(zeros: [16, 2]) })
        try expectFailure(adapter: dir2, base: Self.base("gqa")) {
            ($0 as? LoRTAFileError) == .tensorShapeMismatch(tensor: "lora_A_1", expected: [8, 2], actual: [16, 2])
        }
        let dir3 = try editedAdapter(tensors: { $0["lora_C_h"] = nil })
        try expectFailure(adapter: dir3) { ($0 as? LoRTAFileError) == .missingTensor("lora_C_h") }
        let dir4 = try editedAdapter(tensors: { $0["lora_C_l"]![flat: 4] = .nan })
        try expectFailure(adapter: dir4) { ($0 as? LoRTAFileError) == .nonFinite(tensor: "lora_C_l") }
    }

    @Test func baseShapeThatDoesNotFitIsAnError() throws {
        // A GQA-sized key (8 rows) against an adapter whose targets are all 12 × 12.
        let base = try editedBase(remove: ["encoder.layer.1.attention.self.key.weight"],
                                  add: ["encoder.layer.1.attention.self.key.weight": try Tensor(zeros: [8, 12])])
        try expectFailure(adapter: Self.adapter("bert"), base: base) {
            guard case .shapeMismatch(let module, _)? = $0 as? AdapterMergeError else { return false }
            return module == "encoder.layer.1.attention.self.key"
        }
    }

    @Test func moduleWithoutLayerIndexIsAnError() throws {
        let base = try editedBase(add: ["pooler.attention.self.query.weight": try Tensor(zeros: [12, 12])])
        try expectFailure(adapter: Self.adapter("bert"), base: base) {
            ($0 as? AdapterMergeError) == .noLayerIndex(module: "pooler.attention.self.query")
        }
    }

    @Test func twoTensorsForOneSliceIsAnError() throws {
        let base = try editedBase(add: ["decoder.layer.0.attention.self.value.weight": try Tensor(zeros: [12, 12])])
        try expectFailure(adapter: Self.adapter("bert"), base: base) {
            guard case .duplicateSlice(let l, let t, let names)? = $0 as? AdapterMergeError else { return false }
            return l == 0 && t == "value" && Set(names) == ["decoder.layer.0.attention.self.value.weight",
                                                            "encoder.layer.0.attention.self.value.weight"]
        }
    }

    @Test func cliReportsALoRTAErrorAndLeavesNoFile() throws {
        let dir = try editedAdapter(config: { $0["num_layers"] = 2 }, tensors: { t in
            t["lora_C_l"] = try Tensor(Array(t["lora_C_l"]!.scalars.prefix(6)), shape: [2, 3])
        })
        let out = try tempDir().appendingPathComponent("never.safetensors")
        let r = try CLI.run(["merge", "--base", Self.base("bert").path, "--adapter", dir.path, "--out", out.path])
        #expect(r.status != 0)
        #expect(r.stderr.contains("layer index 2"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out.path))
    }

    @Test func layerIndexRule() throws {
        #expect(try AdapterMerger.layerIndex(module: "encoder.layer.3.attention.self.query", target: "query") == 3)
        #expect(try AdapterMerger.layerIndex(module: "model.layers.11.self_attn.q_proj", target: "q_proj") == 11)
        #expect(try AdapterMerger.layerIndex(module: "encoder.layer.0.attention.output.dense", target: "attention.output.dense") == 0)
        // The last numeric component before the target; numbers inside the target do not count.
        #expect(try AdapterMerger.layerIndex(module: "blocks.2.sub.7.attn.q", target: "attn.q") == 7)
        #expect(try AdapterMerger.layerIndex(module: "h.4.mix.0", target: "mix.0") == 4)
        #expect(throws: AdapterMergeError.noLayerIndex(module: "h.4a.q")) { try AdapterMerger.layerIndex(module: "h.4a.q", target: "q") }
        #expect(throws: AdapterMergeError.noLayerIndex(module: "query")) { try AdapterMerger.layerIndex(module: "query", target: "query") }
        #expect(throws: AdapterMergeError.noLayerIndex(module: "h.-1.q")) { try AdapterMerger.layerIndex(module: "h.-1.q", target: "q") }
    }
}
