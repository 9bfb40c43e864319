import CKernels
import Foundation
import Testing
@testable import LoRTA
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Issue 11, "never leave a bad file", for merges and exports: values the output type cannot
// store are refused before anything is written (writers, AdapterMerger, LlamaExport, the CLI);
// the CLI computes its report before the output appears; output directories are staged and
// swapped in as a whole (AtomicFileWriter.replaceDirectory); copies resolve symbolic links;
// AtomicFileWriter keeps a file's mode.

private let mergeFixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("merge")
private var fixtureBase: URL { mergeFixtures.appendingPathComponent("base.safetensors") }
private var fixtureAdapter: URL { mergeFixtures.appendingPathComponent("adapter") }

/// The names in `dir`, sorted.
private func listing(_ dir: URL) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
}

/// The file type of `url` itself (links not followed).
private func fileType(_ url: URL) throws -> FileAttributeType? {
    try FileManager.default.attributesOfItem(atPath: url.path)[.type] as? FileAttributeType
}

private func permissions(_ url: URL) throws -> Int {
    var info = stat()
    try #require(stat(url.path, &info) == 0)
    return Int(info.st_mode & 0o777)
}

/// The process's umask (read by setting and restoring it; the suite runs serialized).
private func currentUmask() -> Int {
    let m = umask(0)
    umask(m)
    return Int(m)
}

/// A copy of `safetensors` with every float tensor stored as `dtype`.
private func converting(_ source: URL, to destination: URL, as dtype: SafeTensorsDType) throws {
    let reader = try SafeTensorsReader(contentsOf: source)
    var writer = SafeTensorsWriter()
    writer.metadata = reader.metadata
    for e in reader.entries {
        if e.dtype.isFloatConvertible {
            try writer.add(e.name, try reader.tensor(e.name), as: dtype)
        } else {
            try writer.addRaw(e.name, dtype: e.dtype, shape: e.shape, bytes: try reader.rawBytes(e.name))
        }
    }
    try writer.write(to: destination)
}

/// A copy of the merge fixture's adapter with every `lora_B` multiplied by `bScale` and
/// `lora_alpha` replaced by `alpha` when given.
private func scaledAdapter(in dir: URL, named name: String, bScale: Float, alpha: Double? = nil) throws -> URL {
    let out = dir.appendingPathComponent(name)
    try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
    var config = try JSONSerialization.jsonObject(with: Data(contentsOf: fixtureAdapter.appendingPathComponent("adapter_config.json"))) as! [String: Any]
    if let alpha { config["lora_alpha"] = alpha }
    try JSONSerialization.data(withJSONObject: config).write(to: out.appendingPathComponent("adapter_config.json"))
    var tensors = try SafeTensors.load(fixtureAdapter.appendingPathComponent("adapter_model.safetensors"))
    for (name, t) in tensors where name.hasSuffix("lora_B.weight") {
        tensors[name] = try Tensor(t.scalars.map { $0 * bScale }, shape: t.shape)
    }
    try SafeTensors.save(tensors, to: out.appendingPathComponent("adapter_model.safetensors"))
    return out
}

/// A tiny BERT model directory (the merge fixture's adapter fits it) with `vocab.txt`,
/// its weights stored as `dtype`.
private func tinyModelDirectory(_ dir: URL, dtype: SafeTensorsDType = .f32) throws -> URL {
    try tinyBertWrite(to: dir)
    try "[PAD]\n[UNK]\n[CLS]\n[SEP]\n".write(to: dir.appendingPathComponent("vocab.txt"), atomically: true, encoding: .utf8)
    if dtype != .f32 {
        let weights = dir.appendingPathComponent("model.safetensors")
        try converting(weights, to: weights, as: dtype)
    }
    return dir
}

@Suite("Merge outputs: finite values, staged directories", .serialized)
struct MergeOutputTests {
    // MARK: The one value check (writers)

    /// With requiresFiniteValues the writers refuse NaN, infinity and finite values that would
    /// be stored as infinity, naming the tensor, the element and the value; without it they
    /// store what they are given, as before.
    @Test func writersRefuseValuesTheTypeCannotStore() throws {
        func safetensorsError(_ values: [Float], shape: [Int], as dtype: SafeTensorsDType) -> SafeTensorsError? {
            var w = SafeTensorsWriter()
            w.requiresFiniteValues = true
            do { try w.add("t", try Tensor(values, shape: shape), as: dtype); return nil } catch { return error as? SafeTensorsError }
        }
        // F16: 65519 rounds to 65504, 65520 rounds to infinity.
        #expect(safetensorsError([0, 65519, -65519, 1], shape: [2, 2], as: .f16) == nil)
        let f16 = safetensorsError([0, 1, -65520, 1], shape: [2, 2], as: .f16)
        #expect(f16 == .unrepresentableValue(tensor: "t", dtype: .f16, element: [1, 0], value: -65520))
        #expect("\(f16!)".contains("element [1, 0] is -65520.0, which F16 cannot store"), "\(f16!)")
        // BF16: 3.4e38 is a finite Float32 that rounds to infinity.
        #expect(safetensorsError([1, 3.4e38], shape: [2], as: .bf16) == .unrepresentableValue(tensor: "t", dtype: .bf16, element: [1], value: 3.4e38))
        #expect(safetensorsError([1, 3.38e38], shape: [2], as: .bf16) == nil)
        // F32 and F64: non-finite only.
        #expect(safetensorsError([1, 2, .infinity], shape: [3], as: .f32) == .unrepresentableValue(tensor: "t", dtype: .f32, element: [2], value: .infinity))
        if case .unrepresentableValue(_, _, let element, let value)? = safetensorsError([.nan, 1], shape: [1, 2], as: .f64) {
            #expect(element == [0, 0] && value.isNaN)
        } else { Issue.record("NaN as F64 must be refused") }
        // Raw bytes of float dtypes are checked too (NaN F16 at element [1, 1]).
        var raw = SafeTensorsWriter()
        raw.requiresFiniteValues = true
        let halves: [UInt16] = [0x3C00, 0x3C00, 0x3C00, 0x7E00]
        let bytes = Data(halves.flatMap { withUnsafeBytes(of: $0.littleEndian, Array.init) })
        #expect(throws: SafeTensorsError.self) { try raw.addRaw("h", dtype: .f16, shape: [2, 2], bytes: bytes) }
        try raw.addRaw("ids", dtype: .i64, shape: [1], bytes: Data(repeating: 0xFF, count: 8))
        #expect(raw.tensorNames == ["ids"])
        // Off by default: the old behaviour (overflow stored as infinity).
        var plain = SafeTensorsWriter()
        try plain.add("t", try Tensor([70000], shape: [1]), as: .f16)
        try plain.addRaw("h", dtype: .f16, shape: [2, 2], bytes: bytes)

        // GGUF: the same rules; Q8_0 also refuses a block scale max|x|/127 beyond F16.
        var g = GGUFWriter()
        g.requiresFiniteValues = true
        #expect(throws: GGUFError.unrepresentableValue(tensor: "m", type: .f16, element: [0, 1], value: 70000)) {
            try g.add("m", try Tensor([1, 70000], shape: [1, 2]), as: .f16)
        }
        #expect(g.tensorNames.isEmpty)
        var row = [Float](repeating: 0.5, count: 64)
        row[40] = 8.0e6
        _ = try GGUFQuantize.q8_0(try Tensor(row, shape: [2, 32]), name: "ok")
        row[40] = 8.4e6
        let q = #expect(throws: GGUFError.self) { try GGUFQuantize.q8_0(try Tensor(row, shape: [2, 32]), name: "q") }
        #expect(q == .unrepresentableValue(tensor: "q", type: .q8_0, element: [1, 8], value: 8.4e6))
        #expect("\(q!)".contains("Q8_0 cannot store"), "\(q!)")
    }

    // MARK: AdapterMerger

    /// A LoRA adapter with huge B values merged into an F16 base: the merged values exceed
    /// F16's range. The merge is refused, naming the tensor and the first bad element; an
    /// existing output file is untouched and nothing else is left behind. (Before: the
    /// values were written as infinity and the merge succeeded.)
    @Test func mergeIntoF16BaseThatOverflowsIsRefused() throws {
        let dir = try testScratchDirectory("lorta-merge-out")
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = dir.appendingPathComponent("base-f16.safetensors")
        try converting(fixtureBase, to: base, as: .f16)
        let adapter = try scaledAdapter(in: dir, named: "huge", bScale: 1e8)
        let outDir = dir.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: outDir, withIntermediateDirectories: true)
        let out = outDir.appendingPathComponent("merged.safetensors")
        try Data("previous".utf8).write(to: out)

        let error = #expect(throws: AdapterMergeError.self) {
            try AdapterMerger.merge(baseModel: base, adapterDirectory: adapter, output: out)
        }
        guard case .unrepresentableResult(let tensor, let dtype, let element, let value)? = error else {
            Issue.record("unexpected error \(String(describing: error))"); return
        }
        let adapted = try AdapterMerger.merged(baseModel: base, adapterDirectory: fixtureAdapter).summary.changedTensors
        #expect(tensor == adapted.first && dtype == "F16")
        #expect(element.count == 2 && value.isFinite && value.magnitude >= 65520, "\(element) \(value)")
        #expect("\(error!)".hasPrefix("the merged '\(tensor)' cannot be written as F16: element \(element) is \(value), which F16 cannot store"), "\(error!)")
        #expect(try Data(contentsOf: out) == Data("previous".utf8))
        #expect(try listing(outDir) == ["merged.safetensors"])

        // The same adapter at a scale F16 holds merges fine.
        let small = try scaledAdapter(in: dir, named: "small", bScale: 10)
        let summary = try AdapterMerger.merge(baseModel: base, adapterDirectory: small, output: out)
        #expect(summary.tensorsChanged == 6)
        #expect(try SafeTensorsReader(contentsOf: out).entry("encoder.layer.0.attention.self.query.weight")?.dtype == .f16)
    }

    /// An F32 merge whose update overflows to infinity is refused too; merged() computes
    /// without writing.
    @Test func mergeThatOverflowsFloat32IsRefused() throws {
        let dir = try testScratchDirectory("lorta-merge-out")
        defer { try? FileManager.default.removeItem(at: dir) }
        let adapter = try scaledAdapter(in: dir, named: "overflow", bScale: 1e3, alpha: 3e38)
        let error = #expect(throws: AdapterMergeError.self) {
            try AdapterMerger.merged(baseModel: fixtureBase, adapterDirectory: adapter)
        }
        guard case .unrepresentableResult(_, "F32", _, let value)? = error else {
            Issue.record("unexpected error \(String(describing: error))"); return
        }
        #expect(!value.isFinite)
        #expect(try listing(dir) == ["overflow"])
        // A merge that works: computed in memory, written only when asked.
        let merged = try AdapterMerger.merged(baseModel: fixtureBase, adapterDirectory: fixtureAdapter)
        #expect(merged.summary.tensorsChanged == 6)
        #expect(try listing(dir) == ["overflow"])
    }

    // MARK: CLI, one file

    /// `lorta merge --json` with an overflowing merge: exit 1, the tensor named on stderr,
    /// nothing on stdout, no output file. (Before: the file was written, then the JSON
    /// encoding of the infinite max |ΔW| or the exit-0 success report followed.)
    @Test func cliRefusesOverflowBeforeWritingAnything() throws {
        let dir = try testScratchDirectory("lorta-merge-out")
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = dir.appendingPathComponent("base-f16.safetensors")
        try converting(fixtureBase, to: base, as: .f16)
        let adapter = try scaledAdapter(in: dir, named: "huge", bScale: 1e8)
        let out = dir.appendingPathComponent("merged.safetensors")
        let r = try CLI.run(["merge", "--base", base.path, "--adapter", adapter.path, "--out", out.path, "--json"])
        #expect(r.status == 1)
        #expect(r.stdout.isEmpty, "\(r.stdout)")
        #expect(r.stderr.hasPrefix("error: the merged 'encoder.layer.") && r.stderr.contains("' cannot be written as F16: element ["), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out.path))
        #expect(try listing(dir) == ["base-f16.safetensors", "huge"])

        let f32 = try scaledAdapter(in: dir, named: "overflow", bScale: 1e3, alpha: 3e38)
        let r2 = try CLI.run(["merge", "--base", fixtureBase.path, "--adapter", f32.path, "--out", out.path, "--json"])
        #expect(r2.status == 1 && r2.stdout.isEmpty)
        #expect(r2.stderr.contains("cannot be written as F32") && r2.stderr.contains("only finite values are written"), "\(r2.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out.path))
    }

    // MARK: CLI, model directory

    /// `lorta merge --model` from a Hugging Face cache layout (snapshot files are relative
    /// symbolic links into blobs/): the output holds real files with the blobs' contents.
    /// (Before: the links were copied as links, dangling in the output directory.)
    @Test func cliModelExportCopiesLinkedFilesAsRealFiles() throws {
        let dir = try testScratchDirectory("lorta-merge-out")
        defer { try? FileManager.default.removeItem(at: dir) }
        let plain = try tinyModelDirectory(dir.appendingPathComponent("plain"))
        let cache = dir.appendingPathComponent("hub/models--tiny")
        let blobs = cache.appendingPathComponent("blobs"), snapshot = cache.appendingPathComponent("snapshots/0123abc")
        let fm = FileManager.default
        try fm.createDirectory(at: blobs, withIntermediateDirectories: true)
        try fm.createDirectory(at: snapshot, withIntermediateDirectories: true)
        for (i, name) in ["config.json", "model.safetensors", "vocab.txt"].enumerated() {
            try fm.copyItem(at: plain.appendingPathComponent(name), to: blobs.appendingPathComponent("blob\(i)"))
            try fm.createSymbolicLink(atPath: snapshot.appendingPathComponent(name).path, withDestinationPath: "../../blobs/blob\(i)")
        }
        let out = dir.appendingPathComponent("merged")
        let r = try CLI.run(["merge", "--model", snapshot.path, "--adapter", fixtureAdapter.path, "--out", out.path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try listing(out) == ["config.json", "model.safetensors", "vocab.txt"])
        for name in ["config.json", "vocab.txt", "model.safetensors"] {
            #expect(try fileType(out.appendingPathComponent(name)) == .typeRegular, "\(name)")
        }
        #expect(try Data(contentsOf: out.appendingPathComponent("config.json")) == Data(contentsOf: plain.appendingPathComponent("config.json")))
        #expect(try Data(contentsOf: out.appendingPathComponent("vocab.txt")) == Data(contentsOf: plain.appendingPathComponent("vocab.txt")))
        _ = try BertModel(directory: out)
        #expect(try listing(dir) == ["hub", "merged", "plain"])
    }

    /// --overwrite replaces the directory as a whole (a stale file of an earlier run is gone);
    /// a failed merge (values beyond F16) leaves the previous output exactly as it was, and no
    /// staging directory behind; without --overwrite a non-empty directory is refused.
    @Test func cliModelExportReplacesTheDirectoryOnlyOnSuccess() throws {
        let dir = try testScratchDirectory("lorta-merge-out")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try tinyModelDirectory(dir.appendingPathComponent("model"), dtype: .f16)
        let out = dir.appendingPathComponent("merged")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try Data("stale".utf8).write(to: out.appendingPathComponent("adapter_config.json"))

        let refused = try CLI.run(["merge", "--model", model.path, "--adapter", fixtureAdapter.path, "--out", out.path])
        #expect(refused.status != 0 && refused.stderr.contains("not empty"), "\(refused.stderr)")
        #expect(try listing(out) == ["adapter_config.json"])

        let ok = try CLI.run(["merge", "--model", model.path, "--adapter", fixtureAdapter.path, "--out", out.path, "--overwrite", "--json"])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(try listing(out) == ["config.json", "model.safetensors", "vocab.txt"])
        let before = try listing(out).map { try Data(contentsOf: out.appendingPathComponent($0)) }

        let huge = try scaledAdapter(in: dir, named: "huge", bScale: 1e8)
        let failed = try CLI.run(["merge", "--model", model.path, "--adapter", huge.path, "--out", out.path, "--overwrite", "--json"])
        #expect(failed.status == 1 && failed.stdout.isEmpty)
        #expect(failed.stderr.contains("cannot be written as F16"), "\(failed.stderr)")
        #expect(try listing(out) == ["config.json", "model.safetensors", "vocab.txt"])
        #expect(try listing(out).map { try Data(contentsOf: out.appendingPathComponent($0)) } == before)
        #expect(try listing(dir) == ["huge", "merged", "model"])
    }

    // MARK: Library directory export

    /// BertModel.save with overwrite replaces a foreign directory as a whole. (Before: its
    /// other files were left in place beside the export.)
    @Test func bertExportReplacesTheWholeDirectory() throws {
        let dir = try testScratchDirectory("lorta-merge-out")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try tinyBertModel()
        let out = dir.appendingPathComponent("export")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: out.appendingPathComponent("notes.txt"))
        try Data("{}".utf8).write(to: out.appendingPathComponent("adapter_config.json"))
        try model.save(to: out, overwrite: true)
        #expect(try listing(out) == ["config.json", "model.safetensors"])
        #expect(try listing(dir) == ["export"])
        // A missing parent is created.
        try model.save(to: dir.appendingPathComponent("a/b/export"))
        #expect(try listing(dir.appendingPathComponent("a/b/export")) == ["config.json", "model.safetensors"])
    }

    /// LlamaExport refuses an override the output type cannot store, naming the Hugging Face
    /// weight and the element in Hugging Face's layout (for GGUF the query rows are permuted
    /// on the way), and writes nothing.
    @Test func llamaExportRefusesUnstorableWeights() throws {
        let dir = try testScratchDirectory("lorta-merge-out")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try LlamaModel(contentsOf: try testFixture("llama/tiny/tiny_untied.f32.gguf"))
        let name = "model.layers.0.self_attn.q_proj.weight"
        var q = try model.weight(named: name)
        let columns = q.shape[1], row = 1, column = 3
        for (format, value, type) in [(LlamaExportFormat.gguf(type: .f16), Float(70000), "F16"),
                                      (.gguf(type: .q8_0), 1e7, "Q8_0"), (.huggingFace(dtype: .bfloat16), 3.4e38, "BF16")] {
            q[flat: row * columns + column] = value
            let out = dir.appendingPathComponent("out")
            #expect(throws: LlamaExportError.unrepresentableWeight(name: name, type: type, element: [row, column], value: value)) {
                try model.export(to: out, format: format, replacing: [name: q])
            }
            #expect(try listing(dir).isEmpty, "\(format)")
        }
    }

    /// `lorta merge` of a causal LM with a LoRA update beyond F16: refused, no GGUF written.
    @Test func cliCausalMergeBeyondF16IsRefused() throws {
        let dir = try testScratchDirectory("lorta-merge-out")
        defer { try? FileManager.default.removeItem(at: dir) }
        let gguf = try testFixture("llama/tiny/tiny_untied.q8_0.gguf")
        let model = try LlamaModel(contentsOf: gguf)
        var adapter = try LoRAAdapter(host: model.adapterHost, targets: ["q_proj"], configuration: LoRAConfiguration(rank: 2, alpha: 4), seed: 5)
        try adapter.setParameters(adapter.parameters.map { try Tensor(repeating: 300, shape: $0.shape) })
        let adapterDir = dir.appendingPathComponent("adapter")
        try adapter.save(to: adapterDir, host: model.adapterHost)
        let out = dir.appendingPathComponent("merged.gguf")
        let r = try CLI.run(["merge", "--model", gguf.path, "--adapter", adapterDir.path, "--out", out.path,
                             "--format", "gguf", "--type", "f16", "--json"])
        #expect(r.status == 1 && r.stdout.isEmpty, "\(r.stdout)")
        #expect(r.stderr.contains("the weight \"model.layers.0.self_attn.q_proj.weight\" cannot be written as F16: element [0, 0]"), "\(r.stderr)")
        #expect(try listing(dir) == ["adapter"])
        // F32 holds it.
        let f32 = try CLI.run(["merge", "--model", gguf.path, "--adapter", adapterDir.path, "--out", out.path,
                               "--format", "gguf", "--type", "f32"])
        #expect(f32.status == 0, "\(f32.stderr)")
    }

    // MARK: AtomicFileWriter

    /// A replaced file keeps its permission bits; a new one gets 0644 minus the umask.
    @Test func atomicWriteKeepsTheFileMode() throws {
        let dir = try testScratchDirectory("lorta-atomic")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("f.bin")
        try AtomicFileWriter.write(Data([1]), to: url)
        #expect(try permissions(url) == 0o644 & ~currentUmask())
        #expect(chmod(url.path, 0o600) == 0)
        try AtomicFileWriter.write(Data([2]), to: url)
        #expect(try permissions(url) == 0o600)
        var w = SafeTensorsWriter()
        try w.add("x", try Tensor([1], shape: [1]))
        #expect(chmod(url.path, 0o640) == 0)
        try w.write(to: url)
        #expect(try permissions(url) == 0o640)
        #expect(try listing(dir) == ["f.bin"])
    }

    /// copyFile follows links and refuses what is not a regular file (a FIFO, without
    /// blocking on it).
    @Test func copyFileResolvesLinksAndRefusesSpecialFiles() throws {
        let dir = try testScratchDirectory("lorta-atomic")
        defer { try? FileManager.default.removeItem(at: dir) }
        let fm = FileManager.default
        try fm.createDirectory(at: dir.appendingPathComponent("blobs"), withIntermediateDirectories: true)
        try Data("content".utf8).write(to: dir.appendingPathComponent("blobs/b"))
        try fm.createSymbolicLink(atPath: dir.appendingPathComponent("link").path, withDestinationPath: "blobs/b")
        let copy = dir.appendingPathComponent("copy")
        try AtomicFileWriter.copyFile(from: dir.appendingPathComponent("link"), to: copy)
        #expect(try fileType(copy) == .typeRegular)
        #expect(try Data(contentsOf: copy) == Data("content".utf8))
        let fifo = dir.appendingPathComponent("fifo")
        #expect(mkfifo(fifo.path, 0o600) == 0)
        #expect(throws: AtomicFileWriter.Failure.self) { try AtomicFileWriter.copyFile(from: fifo, to: dir.appendingPathComponent("x")) }
        try fm.createSymbolicLink(atPath: dir.appendingPathComponent("dangling").path, withDestinationPath: "nowhere")
        #expect(throws: AtomicFileWriter.Failure.self) { try AtomicFileWriter.copyFile(from: dir.appendingPathComponent("dangling"), to: dir.appendingPathComponent("x")) }
        #expect(try listing(dir) == ["blobs", "copy", "dangling", "fifo", "link"])
    }

    /// replaceDirectory: the result holds exactly the new files; a failing producer, or a
    /// failing swap, leaves the previous directory in place; a file in the way is refused.
    @Test func replaceDirectoryIsAllOrNothing() throws {
        let dir = try testScratchDirectory("lorta-atomic")
        defer { try? FileManager.default.removeItem(at: dir) }
        let target = dir.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: target.appendingPathComponent("sub"), withIntermediateDirectories: true)
        try Data("old".utf8).write(to: target.appendingPathComponent("stale.txt"))
        #expect(chmod(target.path, 0o750) == 0)

        struct Boom: Error {}
        #expect(throws: Boom.self) {
            try AtomicFileWriter.replaceDirectory(at: target) { staging in
                try AtomicFileWriter.write(Data("half".utf8), to: staging.appendingPathComponent("new.txt"))
                throw Boom()
            }
        }
        #expect(try listing(target) == ["stale.txt", "sub"])
        #expect(try listing(dir) == ["out"])

        // The two-rename fallback (no atomic exchange): the swap fails after the old directory
        // was moved aside, and it is put back.
        var calls = 0
        #expect(throws: AtomicFileWriter.Failure.self) {
            try AtomicFileWriter.replaceDirectory(at: target, exchanging: false, renaming: { from, to in
                calls += 1
                if calls == 2 { errno = EXDEV; return -1 }
                return rename(from, to)
            }) { staging in
                try AtomicFileWriter.write(Data("new".utf8), to: staging.appendingPathComponent("new.txt"))
            }
        }
        #expect(calls == 3)
        #expect(try listing(target) == ["stale.txt", "sub"])
        #expect(try listing(dir) == ["out"])

        // The atomic exchange (the default here): the renaming function is never needed.
        var renames = 0
        try AtomicFileWriter.replaceDirectory(at: target, renaming: { from, to in renames += 1; return rename(from, to) }) { staging in
            try AtomicFileWriter.write(Data("exchanged".utf8), to: staging.appendingPathComponent("stale.txt"))
            try FileManager.default.createDirectory(at: staging.appendingPathComponent("sub"), withIntermediateDirectories: true)
        }
        #expect(renames == 0 && lt_rename_exchange("/nonexistent-a", "/nonexistent-b") == ENOENT)
        #expect(try Data(contentsOf: target.appendingPathComponent("stale.txt")) == Data("exchanged".utf8))
        #expect(try listing(dir) == ["out"])

        let seen = try AtomicFileWriter.replaceDirectory(at: target) { staging -> [String] in
            try AtomicFileWriter.write(Data("new".utf8), to: staging.appendingPathComponent("new.txt"))
            return try listing(target)   // the old directory is still readable meanwhile
        }
        #expect(seen == ["stale.txt", "sub"])
        #expect(try listing(target) == ["new.txt"])
        #expect(try permissions(target) == 0o750)
        #expect(try listing(dir) == ["out"])

        let file = dir.appendingPathComponent("file")
        try Data().write(to: file)
        #expect(throws: AtomicFileWriter.Failure.self) { try AtomicFileWriter.replaceDirectory(at: file) { _ in } }
        #expect(try listing(dir) == ["file", "out"])
    }
}
