import Foundation
import Testing
@testable import LoRTA

@Suite struct ClassificationMetricsTests {
    @Test func matchesFloat64Reference() throws {
        let c = 3
        var metrics = try ClassificationMetrics(classCount: c)
        var refLoss = 0.0, refCorrect = 0, n = 0
        for (b, rows) in [5, 1, 7].enumerated() {
            let z = trainingTestValues(rows * c, seed: UInt64(50 + b), scale: 4)
            let labels = (0..<rows).map { Int32(($0 * 7 + b) % c) }
            try metrics.add(logits: try Tensor(z, shape: [rows, c]), labels: labels)
            for i in 0..<rows {
                let row = (0..<c).map { Double(z[i * c + $0]) }
                let mx = row.max()!
                let lse = mx + log(row.reduce(0) { $0 + exp($1 - mx) })
                refLoss += lse - row[Int(labels[i])]
                if row.firstIndex(of: mx)! == Int(labels[i]) { refCorrect += 1 }
            }
            n += rows
        }
        #expect(metrics.count == n)
        #expect(metrics.correct == refCorrect)
        #expect(abs(metrics.meanLoss - refLoss / Double(n)) <= 1e-6 * refLoss / Double(n))
        #expect(metrics.confusion.reduce(0, +) == n)
        #expect((0..<c).map { metrics.confusion[$0 * c + $0] }.reduce(0, +) == refCorrect)
        #expect(metrics.accuracy == Double(refCorrect) / Double(n))
    }

    @Test func tiesGoToTheLowestIndexAndErrorsAddNothing() throws {
        var m = try ClassificationMetrics(classCount: 2)
        try m.add(logits: try Tensor([1, 1, 0, 2], shape: [2, 2]), labels: [0, 1])
        #expect(m.correct == 2)
        #expect(abs(m.meanLoss - (log(2.0) + log(1 + exp(-2.0))) / 2) < 1e-6)
        #expect(throws: TrainingError.self) { try m.add(logits: try Tensor([1, 1], shape: [1, 2]), labels: [2]) }
        #expect(throws: TrainingError.self) { try m.add(logits: try Tensor([1, .nan], shape: [1, 2]), labels: [0]) }
        #expect(throws: TrainingError.shapeMismatch(index: 0, expected: [1, 2], actual: [2])) {
            try m.add(logits: try Tensor([1, 1], shape: [2]), labels: [0])
        }
        #expect(m.count == 2)
        #expect(throws: TrainingError.self) { try ClassificationMetrics(classCount: 0) }
    }

    /// Metrics of two shards merged equal the metrics of all batches (counts exactly, the loss
    /// up to the order of addition); other class counts and inconsistent counts are refused.
    @Test func mergeOfShardsEqualsTheWhole() throws {
        let c = 3
        var whole = try ClassificationMetrics(classCount: c)
        var shards = [try ClassificationMetrics(classCount: c), try ClassificationMetrics(classCount: c)]
        for (b, rows) in [4, 6, 3].enumerated() {
            let z = try Tensor(trainingTestValues(rows * c, seed: UInt64(70 + b), scale: 3), shape: [rows, c])
            let labels = (0..<rows).map { Int32(($0 * 5 + b) % c) }
            try whole.add(logits: z, labels: labels)
            try shards[b == 0 ? 0 : 1].add(logits: z, labels: labels)
        }
        var merged = shards[0]
        try merged.merge(shards[1])
        #expect(merged.count == whole.count && merged.correct == whole.correct && merged.confusion == whole.confusion)
        #expect(abs(merged.lossSum - whole.lossSum) <= 1e-12 * whole.lossSum)
        #expect(throws: TrainingError.self) { try merged.merge(try ClassificationMetrics(classCount: 2)) }
        #expect(throws: TrainingError.self) {
            _ = try ClassificationMetrics(classCount: 2, count: 3, correct: 1, lossSum: 1, confusion: [1, 0, 0, 1])
        }
        let restored = try ClassificationMetrics(classCount: c, count: whole.count, correct: whole.correct,
                                                 lossSum: whole.lossSum, confusion: whole.confusion)
        #expect(restored == whole)
    }
}
