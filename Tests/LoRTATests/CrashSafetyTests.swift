import Foundation
import Testing
@testable import LoRTA

/// SIGKILL at random moments while `lorta` writes a training checkpoint and its output folder,
/// a statistics file and a merged model: what is on disk is always the complete previous
/// version or the complete new one (byte for byte, and readable), and a checkpoint left by a
/// killed run resumes.
@Suite("Crash safety: SIGKILL while writing", .serialized)
struct CrashSafetyTests {
    /// The tiny BERT, its vocabulary and 16 training lines of the memory-budget CLI tests.
    typealias Fixture = TrainMemoryCLITests.Fixture

    /// `n` deterministic delays spread over [0, 0.9 × the shortest wall time of three
    /// uninterrupted `args` runs), so that the kills land while the command works, whatever this
    /// machine's speed (on a shared machine one run can take twice as long as the next).
    static func delays(_ n: Int, running args: [String], seed: UInt64) throws -> [Double] {
        var duration = Double.infinity
        for _ in 0..<3 {
            let start = Date()
            let r = try CLI.run(args)
            try #require(r.status == 0, "\(r.stderr)")
            duration = min(duration, 0.9 * Date().timeIntervalSince(start))
        }
        var rng = LoRATestRNG(seed: seed)
        return (0..<n).map { _ in duration * Double(rng.next() % 10_000) / 10_000 }
    }

    /// The task of the fixture's runs, for resuming in-process.
    static func task(_ f: Fixture) throws -> SequenceClassificationTask {
        let model = try BertModel(directory: URL(fileURLWithPath: f.model))
        let tokenizer = try BertTokenizer(vocabularyURL: URL(fileURLWithPath: f.model + "/vocab.txt"))
        let data = try LabelledTextDataset.load(from: URL(fileURLWithPath: f.train), labelCount: 2)
        return try SequenceClassificationTask(model: model, tokenizer: tokenizer, data: data,
                                              head: try BertClassificationHead(hiddenSize: 8, classCount: 2, seed: 1), maxLength: 8)
    }

    /// `lorta train --overwrite --checkpoint-every 1` over a finished run's folder, killed at
    /// random moments: OUT is the old run's folder byte for byte, or (if the run finished) a
    /// complete new one of the same files; the checkpoint in OUT and every checkpoint a killed
    /// run left in its staging folder resume.
    @Test func killedTrainingLeavesOldOrNewAndResumableCheckpoints() throws {
        let f = try Fixture()
        defer { try? FileManager.default.removeItem(at: f.root) }
        let out = f.path("out")
        let first = try CLI.run(f.trainArgs(out, steps: 2))
        try #require(first.status == 0, "\(first.stderr)")
        let task = try Self.task(f)
        var kills = 0, resumed = 0
        let args = f.trainArgs(out, steps: 60, extra: ["--overwrite", "--checkpoint-every", "1"])
        let delays = try Self.delays(30, running: args, seed: 11)
        var old = try f.snapshot(out)   // the uninterrupted run's folder
        for (i, delay) in delays.enumerated() {
            let killed = try CLI.runAndKill(args, after: delay)
            let now = try f.snapshot(out)
            if killed {
                kills += 1
                #expect(now == old, "kill \(i) after \(delay) s: OUT changed")
                #expect(try Trainer(resumingFrom: URL(fileURLWithPath: out + "/checkpoint"), task: task).step == 60)
            } else {
                // Finished: the same run again, so the same files — apart from the summary's
                // timings and the checkpoint's fresh save id — and it is now the "old" folder.
                let varying: Set = ["training_summary.json", "checkpoint/trainer.json", "checkpoint/trainable.safetensors"]
                #expect(Set(now.keys) == Set(old.keys))
                for (name, bytes) in now where !varying.contains(name) { #expect(bytes == old[name], "\(name)") }
                #expect(try Trainer(resumingFrom: URL(fileURLWithPath: out + "/checkpoint"), task: task).step == 60)
                old = now
            }
            // Staging folders of killed runs: a checkpoint in them is complete and resumes.
            for entry in try FileManager.default.contentsOfDirectory(atPath: f.root.path) where entry.hasPrefix(".out.") {
                let checkpoint = f.root.appendingPathComponent(entry).appendingPathComponent("checkpoint")
                if FileManager.default.fileExists(atPath: checkpoint.path) {
                    let t = try Trainer(resumingFrom: checkpoint, task: task)
                    #expect(t.step >= 1)
                    resumed += 1
                }
                try FileManager.default.removeItem(at: f.root.appendingPathComponent(entry))
            }
        }
        print("train: \(kills) kills of 30 runs, \(resumed) checkpoints of killed runs resumed, 0 corrupt")
        #expect(kills >= 10 && resumed >= 1)
    }

    /// `lorta stats fit` and `lorta merge --overwrite` killed at random moments: the output is
    /// the previous file / folder byte for byte or a complete new one that reads back.
    @Test func killedStatisticsAndMergeLeaveOldOrNew() throws {
        let f = try Fixture()
        defer { try? FileManager.default.removeItem(at: f.root) }
        // Statistics of 4,000 × 64 rows (large enough to be killed while computing or writing).
        var rng = LoRATestRNG(seed: 5)
        let values = (0..<(4000 * 64)).map { _ in Float(rng.next() % 1000) / 100 }
        try NumpyWriter.write(values, shape: [4000, 64], to: URL(fileURLWithPath: f.path("x.npy")))
        let stats = f.path("s.safetensors")
        let statsArgs = ["stats", "fit", "--data", f.path("x.npy"), "--out", stats]
        let statsDelays = try Self.delays(20, running: statsArgs, seed: 12)
        let oldStats = try Data(contentsOf: URL(fileURLWithPath: stats))
        #expect(try ActivationStatistics(contentsOf: URL(fileURLWithPath: stats)).count == 4000)
        var kills = 0
        for delay in statsDelays {
            // Same input, same bytes: old and new are both exactly the first file.
            if try CLI.runAndKill(statsArgs, after: delay) { kills += 1 }
            #expect(try Data(contentsOf: URL(fileURLWithPath: stats)) == oldStats)
        }
        // Merge: an adapter, a merged folder, merges killed while replacing it.
        let adapter = f.path("adapter")
        #expect(try CLI.run(f.trainArgs(adapter, steps: 2)).status == 0)
        let merged = f.path("merged")
        let mergeArgs = ["merge", "--model", f.model, "--adapter", adapter, "--out", merged, "--overwrite"]
        let mergeDelays = try Self.delays(20, running: mergeArgs, seed: 13)
        let oldMerged = try f.snapshot(merged)
        var mergeKills = 0
        for delay in mergeDelays {
            if try CLI.runAndKill(mergeArgs, after: delay) {
                mergeKills += 1
            }
            // The same inputs give the same bytes, so old and new are both exactly the snapshot.
            #expect(try f.snapshot(merged) == oldMerged)
        }
        print("stats: \(kills) kills of 20; merge: \(mergeKills) kills of 20; 0 corrupt")
        #expect(kills >= 5 && mergeKills >= 5)
    }
}

extension TrainMemoryCLITests.Fixture {
    func trainArgs(_ out: String, steps: Int, extra: [String] = []) -> [String] {
        ["train", "--model", model, "--train", train, "--adapter", "lora", "--rank", "2", "--steps", "\(steps)",
         "--batch-size", "4", "--max-length", "8", "--seed", "7", "--out", out, "--quiet"] + extra
    }

    /// Every regular file under `dir` (relative path → bytes), hidden staging folders of
    /// nested replacements excluded.
    func snapshot(_ dir: String) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let fm = FileManager.default
        guard let paths = fm.subpaths(atPath: dir) else { return out }
        for p in paths where !p.split(separator: "/").contains(where: { $0.hasPrefix(".") }) {
            var isDir: ObjCBool = false
            if fm.fileExists(atPath: dir + "/" + p, isDirectory: &isDir), !isDir.boolValue {
                out[p] = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + p))
            }
        }
        return out
    }
}
