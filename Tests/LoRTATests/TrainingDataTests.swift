import Foundation
import Testing
import CKernels
@testable import LoRTA

// Learning-rate schedules (formula + torch LambdaLR fixture), seeded shuffling, the
// label<TAB>text loader, batching with dynamic padding, gradient accumulation.

private func tempDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("lorta-train-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

@Suite struct LearningRateScheduleTests {
    @Test func matchesFormula() throws {
        let s = try LearningRateSchedule.linearWarmupDecay(peak: 2e-3, warmupSteps: 4, totalSteps: 20)
        for k in 0...25 {
            let expected = k < 4 ? 2e-3 * Double(k) / 4 : 2e-3 * max(0, Double(20 - k) / 16)
            #expect(abs(s.learningRate(atStep: k) - expected) <= 1e-18, "step \(k)")
        }
        #expect(s.learningRate(atStep: 4) == 2e-3)
        #expect(s.learningRate(atStep: 20) == 0)
        #expect(LearningRateSchedule.constant(5e-4).learningRate(atStep: 1000) == 5e-4)
    }

    @Test func matchesTorchLambdaLR() throws {
        let fixture = try AdamWFixture.load().schedules
        for (name, f) in fixture {
            let schedule: LearningRateSchedule = name == "constant"
                ? .constant(f.peak)
                : try .linearWarmupDecay(peak: f.peak, warmupSteps: f.warmup_steps ?? -1, totalSteps: f.total_steps ?? -1)
            for (k, lr) in f.lr.enumerated() {
                #expect(abs(schedule.learningRate(atStep: k) - lr) <= 1e-18, "\(name) step \(k)")
            }
        }
        #expect(fixture.count == 3)
    }

    @Test func textRoundTripAndErrors() throws {
        for s in [LearningRateSchedule.constant(1e-3), try .linearWarmupDecay(peak: 3.3e-4, warmupSteps: 7, totalSteps: 300)] {
            #expect(try LearningRateSchedule(parsing: s.description) == s)
        }
        #expect(throws: TrainingError.self) { try LearningRateSchedule.linearWarmupDecay(peak: 1, warmupSteps: 5, totalSteps: 4) }
        #expect(throws: TrainingError.self) { try LearningRateSchedule.linearWarmupDecay(peak: -1, warmupSteps: 0, totalSteps: 4) }
        #expect(throws: TrainingError.self) { try LearningRateSchedule.linearWarmupDecay(peak: 1, warmupSteps: 0, totalSteps: 0) }
        #expect(throws: TrainingError.self) { try LearningRateSchedule(parsing: "cosine:1") }
        #expect(throws: TrainingError.self) { try LearningRateSchedule(parsing: "linear:1:x:4") }
    }
}

@Suite struct EpochShufflerTests {
    @Test func deterministicPermutations() throws {
        let a = EpochShuffler(seed: 42), b = EpochShuffler(seed: 42), c = EpochShuffler(seed: 43)
        let p0 = try a.permutation(epoch: 0, count: 1000)
        #expect(p0.sorted() == Array(0..<1000))
        #expect(p0 == (try b.permutation(epoch: 0, count: 1000)))
        #expect(p0 != Array(0..<1000))
        #expect(p0 != (try a.permutation(epoch: 1, count: 1000)))
        #expect(p0 != (try c.permutation(epoch: 0, count: 1000)))
        #expect(try a.permutation(epoch: 3, count: 0) == [])
        #expect(try a.permutation(epoch: 3, count: 1) == [0])
        #expect(throws: TrainingError.self) { try a.permutation(epoch: -1, count: 3) }
    }

    /// Fisher–Yates with lt_rng_u64 written out independently here (different loop shape).
    @Test func matchesIndependentFisherYates() throws {
        let seed: UInt64 = 7, epoch = 2, n = 37
        var order = Array(0..<n)
        let stream = lt_rng_u64(seed, UInt64(epoch))
        var counter: UInt64 = 0
        var i = n - 1
        while i > 0 {
            let bound = UInt64(i + 1)
            let excess = UInt64((UInt128(1) << 64) % UInt128(bound))
            while true {
                let v = lt_rng_u64(stream, counter); counter += 1
                if excess == 0 || UInt128(v) < (UInt128(1) << 64) - UInt128(excess) { order.swapAt(i, Int(v % bound)); break }
            }
            i -= 1
        }
        #expect(try EpochShuffler(seed: seed).permutation(epoch: epoch, count: n) == order)
    }

    @Test func roughlyUniformFirstPosition() throws {
        // 3000 epochs of 3 items: each item lands first ~1000 times (binomial sd ≈ 26).
        let s = EpochShuffler(seed: 1)
        var counts = [0, 0, 0]
        for e in 0..<3000 { counts[try s.permutation(epoch: e, count: 3)[0]] += 1 }
        for c in counts { #expect(abs(c - 1000) < 150, "\(counts)") }
    }
}

@Suite struct LabelledTextDatasetTests {
    @Test func loadsFilesAndReportsErrors() throws {
        let dir = try tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        func file(_ name: String, _ text: String) throws -> URL {
            let url = dir.appendingPathComponent(name)
            try Data(text.utf8).write(to: url)
            return url
        }
        let good = try LabelledTextDataset.load(from: try file("good.tsv", "1\ta fine film\r\n0\tdull\tand long\n\n"), labelCount: 2)
        #expect(good.examples == [LabelledText(label: 1, text: "a fine film"), LabelledText(label: 0, text: "dull\tand long")])
        let p = dir.path
        #expect(throws: DatasetError.fileNotFound(path: p + "/missing.tsv")) {
            try LabelledTextDataset.load(from: dir.appendingPathComponent("missing.tsv"), labelCount: 2)
        }
        #expect(throws: DatasetError.empty(path: p + "/empty.tsv")) {
            try LabelledTextDataset.load(from: try file("empty.tsv", "\n\n"), labelCount: 2)
        }
        #expect(throws: DatasetError.malformedLine(path: p + "/notab.tsv", line: 2, reason: "no tab")) {
            try LabelledTextDataset.load(from: try file("notab.tsv", "1\tok\n0 no tab here\n"), labelCount: 2)
        }
        #expect(throws: DatasetError.malformedLine(path: p + "/blank.tsv", line: 2, reason: "empty line")) {
            try LabelledTextDataset.load(from: try file("blank.tsv", "1\tok\n\n0\tok\n"), labelCount: 2)
        }
        #expect(throws: DatasetError.malformedLine(path: p + "/label.tsv", line: 1, reason: "label \"x1\" is not an integer")) {
            try LabelledTextDataset.load(from: try file("label.tsv", "x1\tok\n"), labelCount: 2)
        }
        #expect(throws: DatasetError.malformedLine(path: p + "/notext.tsv", line: 3, reason: "empty text")) {
            try LabelledTextDataset.load(from: try file("notext.tsv", "1\tok\n0\tok\n1\t \n"), labelCount: 2)
        }
        #expect(throws: DatasetError.labelOutOfRange(path: p + "/range.tsv", line: 2, label: 2, labelCount: 2)) {
            try LabelledTextDataset.load(from: try file("range.tsv", "1\tok\n2\tok\n"), labelCount: 2)
        }
        #expect(throws: DatasetError.labelOutOfRange(path: p + "/neg.tsv", line: 1, label: -1, labelCount: 2)) {
            try LabelledTextDataset.load(from: try file("neg.tsv", "-1\tok\n"), labelCount: 2)
        }
        let bad = dir.appendingPathComponent("latin1.tsv")
        try Data([0x31, 0x09, 0xE9, 0x0A]).write(to: bad)
        #expect(throws: DatasetError.notUTF8(path: bad.path)) { try LabelledTextDataset.load(from: bad, labelCount: 2) }
        #expect(throws: DatasetError.invalidLabelCount(0)) { try LabelledTextDataset.parse("1\tx", labelCount: 0) }
        #expect(DatasetError.malformedLine(path: "f", line: 3, reason: "no tab").description == "f:3: no tab (expected label<TAB>text)")
    }
}

@Suite struct BatchingTests {
    static let vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "d", "film", "good", "bad"]

    func loader(_ texts: [String], batchSize: Int, maxLength: Int = 8, seed: UInt64? = 5,
                dropLast: Bool = false, padding: BertTokenizer.Padding = .longest) throws -> BatchLoader {
        let dataset = try LabelledTextDataset(examples: texts.enumerated().map { LabelledText(label: $0.offset % 2, text: $0.element) },
                                              labelCount: 2)
        return try BatchLoader(dataset: dataset, tokenizer: try BertTokenizer(vocabulary: Self.vocabulary),
                               batchSize: batchSize, maxLength: maxLength, padding: padding,
                               shuffler: seed.map(EpochShuffler.init), dropLast: dropLast)
    }

    @Test func dynamicPaddingAndCoverage() throws {
        let texts = ["a", "a b", "a b c", "a b c d", "good film", "bad", "a b c d a b c d"]
        let l = try loader(texts, batchSize: 3)
        #expect(l.batchesPerEpoch == 3)
        let epoch = try l.batches(epoch: 0)
        var seen: [Int] = []
        for batch in epoch {
            seen += batch.exampleIndices
            // padded to the longest row of this batch (capped by maxLength 8)
            let longest = batch.exampleIndices.map { min(texts[$0].split(separator: " ").count + 2, 8) }.max()!
            #expect(batch.tokens.sequenceLength == longest)
            #expect(batch.labels == batch.exampleIndices.map { Int32($0 % 2) })
            for (r, i) in batch.exampleIndices.enumerated() {
                let ids = try l.tokenizer.encode(texts[i], maxLength: 8)
                #expect(Array(batch.tokens.row(r).prefix(ids.count)) == ids)
                #expect(batch.tokens.row(r).dropFirst(ids.count).allSatisfy { $0 == 0 })
            }
        }
        #expect(seen == epoch.order)
        #expect(seen.sorted() == Array(0..<texts.count))
        #expect(seen == (try EpochShuffler(seed: 5).permutation(epoch: 0, count: texts.count)))
        let last = try epoch.batch(2)
        #expect(last.count == 1)
        // resuming at a position gives the same batch
        #expect(try l.batch(at: TrainingPosition(epoch: 0, batchInEpoch: 1)) == (try epoch.batch(1)))
        #expect(throws: TrainingError.self) { try epoch.batch(3) }
        // no shuffler: file order; fixed padding
        let plain = try loader(texts, batchSize: 4, seed: nil, padding: .fixed)
        let b0 = try plain.batches(epoch: 1).batch(0)
        #expect(b0.exampleIndices == [0, 1, 2, 3] && b0.tokens.sequenceLength == 8)
        let dropping = try loader(texts, batchSize: 3, dropLast: true)
        #expect(dropping.batchesPerEpoch == 2)
        #expect(Array(try dropping.batches(epoch: 0)).count == 2)
    }

    @Test func invalidSettings() throws {
        #expect(throws: TrainingError.self) { try loader(["a"], batchSize: 0) }
        #expect(throws: TrainingError.self) { try loader(["a"], batchSize: 1, maxLength: 1) }
        #expect(throws: TrainingError.self) { try loader(["a"], batchSize: 2, dropLast: true) }
        #expect(throws: TrainingError.self) { try loader(["a"], batchSize: 1).batches(epoch: -1) }
        #expect(throws: TrainingError.self) { try loader(["a"], batchSize: 1, seed: nil).batches(epoch: -1) }
    }

    @Test func gradientAccumulationIsTheExampleWeightedMean() throws {
        var acc = try GradientAccumulator(microBatchesPerStep: 3)
        #expect(acc.optimizerStepsPerEpoch(batches: 7) == 3)
        let g1 = [try Tensor([1, 2, 3], shape: [3]), try Tensor([0.5], shape: [1])]
        let g2 = [try Tensor([-1, 0, 4], shape: [3]), try Tensor([1.5], shape: [1])]
        let g3 = [try Tensor([2, 2, 2], shape: [3]), try Tensor([-3], shape: [1])]
        #expect(try acc.add(g1, exampleCount: 4) == false)
        #expect(throws: TrainingError.shapeMismatch(index: 0, expected: [3], actual: [1])) {
            try acc.add([try Tensor([1], shape: [1]), try Tensor([1], shape: [1])], exampleCount: 1)
        }
        #expect(try acc.add(g2, exampleCount: 4) == false)
        #expect(try acc.add(g3, exampleCount: 2) == true)
        #expect(throws: TrainingError.self) { try acc.add(g3, exampleCount: 2) }
        let mean = try acc.takeMean()
        // float64 reference: (4 g1 + 4 g2 + 2 g3) / 10
        for t in 0..<2 {
            for j in 0..<g1[t].count {
                let ref = (4 * Double(g1[t].scalars[j]) + 4 * Double(g2[t].scalars[j]) + 2 * Double(g3[t].scalars[j])) / 10
                #expect(abs(Double(mean[t].scalars[j]) - ref) <= 1e-6 * max(1, abs(ref)))
            }
        }
        #expect(acc.pendingMicroBatches == 0 && acc.pendingExamples == 0)
        #expect(throws: TrainingError.self) { try acc.takeMean() }
        // a single (partial) micro-batch comes back bit for bit
        let odd = [try Tensor([0.1, 0.7, 1e-3], shape: [3])]
        try acc.add(odd, exampleCount: 3)
        #expect(try acc.takeMean()[0].scalars.map(\.bitPattern) == odd[0].scalars.map(\.bitPattern))
        #expect(throws: TrainingError.self) { try GradientAccumulator(microBatchesPerStep: 0) }
    }
}
