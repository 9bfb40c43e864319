import Foundation
import Testing
import CKernels
@testable import LoRTA

// Optimizer checkpoints: bitwise round trip, and AdamW resumed from a checkpoint after k steps
// gives the same bits as running straight through (random tensors, schedule-driven lr).

private func randomGradients(step: Int, shapes: [[Int]]) throws -> [Tensor] {
    try shapes.enumerated().map { i, s in
        let n = s.reduce(1, *)
        return try Tensor(trainingTestValues(n, seed: UInt64(1000 * step + i), scale: 0.5), shape: s)
    }
}

@Suite struct OptimizerCheckpointTests {
    let shapes = [[8, 16], [16], [3, 5, 7]]

    func run(_ opt: inout AdamW, _ params: inout [Tensor], steps: Range<Int>, schedule: LearningRateSchedule) throws {
        for k in steps {
            try opt.update(parameters: &params, gradients: try randomGradients(step: k, shapes: shapes),
                           learningRate: schedule.learningRate(atStep: k))
        }
    }

    @Test func resumeEqualsStraightThroughBitwise() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lorta-ckpt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let schedule = try LearningRateSchedule.linearWarmupDecay(peak: 1e-2, warmupSteps: 3, totalSteps: 12)
        let config = AdamWConfiguration(learningRate: 1e-2, weightDecay: 0.01)
        let initial = try shapes.enumerated().map { i, s in try Tensor(trainingTestValues(s.reduce(1, *), seed: UInt64(i)), shape: s) }

        var straight = initial
        var a = try AdamW(configuration: config)
        try run(&a, &straight, steps: 0..<10, schedule: schedule)

        var resumed = initial
        var b = try AdamW(configuration: config)
        try run(&b, &resumed, steps: 0..<4, schedule: schedule)
        let url = dir.appendingPathComponent("optimizer.safetensors")
        let names = ["layer.weight", "layer.bias", "core"]
        try OptimizerCheckpoint(optimizer: b, schedule: schedule, seed: 99,
                                position: TrainingPosition(epoch: 1, batchInEpoch: 3), parameterNames: names).write(to: url)
        let loaded = try OptimizerCheckpoint(contentsOf: url)
        #expect(loaded.optimizer.state.step == 4)
        #expect(loaded.optimizer.configuration == config)
        #expect(loaded.schedule == schedule)
        #expect(loaded.seed == 99)
        #expect(loaded.position == TrainingPosition(epoch: 1, batchInEpoch: 3))
        #expect(loaded.parameterNames == names)
        for i in shapes.indices {
            #expect(loaded.optimizer.state.firstMoments[i].shape == shapes[i])
            #expect(loaded.optimizer.state.firstMoments[i].scalars.map(\.bitPattern) == b.state.firstMoments[i].scalars.map(\.bitPattern))
            #expect(loaded.optimizer.state.secondMoments[i].scalars.map(\.bitPattern) == b.state.secondMoments[i].scalars.map(\.bitPattern))
        }
        var c = loaded.optimizer
        try run(&c, &resumed, steps: 4..<10, schedule: loaded.schedule)
        for i in shapes.indices {
            #expect(resumed[i].scalars.map(\.bitPattern) == straight[i].scalars.map(\.bitPattern))
            #expect(c.state.secondMoments[i].scalars.map(\.bitPattern) == a.state.secondMoments[i].scalars.map(\.bitPattern))
        }
        #expect(c.state.step == 10)
        // and the run actually moved away from the start
        #expect(resumed[0].scalars != initial[0].scalars)
        // no temporary files left behind by the atomic write
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["optimizer.safetensors"])
    }

    @Test func rejectsInconsistentFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lorta-ckpt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var opt = try AdamW()
        var params = [try Tensor([1, 2], shape: [2])]
        try opt.update(parameters: &params, gradients: [try Tensor([0.1, 0.2], shape: [2])])
        #expect(throws: TrainingError.self) {
            try OptimizerCheckpoint(optimizer: opt, schedule: .constant(1e-3), seed: 0, position: TrainingPosition(), parameterNames: ["a", "b"])
        }
        // a file missing metadata
        let url = dir.appendingPathComponent("x.safetensors")
        try SafeTensors.save(["exp_avg.0": params[0], "exp_avg_sq.0": params[0]], to: url, metadata: ["format": OptimizerCheckpoint.format])
        #expect(throws: TrainingError.invalidCheckpoint("metadata has no \"parameter_count\"")) { try OptimizerCheckpoint(contentsOf: url) }
        // a missing tensor
        let good = try OptimizerCheckpoint(optimizer: opt, schedule: .constant(1e-3), seed: 0, position: TrainingPosition())
        try good.write(to: url)
        let reader = try SafeTensorsReader(contentsOf: url)
        var meta = reader.metadata
        try SafeTensors.save(["exp_avg.0": params[0]], to: url, metadata: meta)
        #expect(throws: TrainingError.invalidCheckpoint("no tensor \"exp_avg_sq.0\"")) { try OptimizerCheckpoint(contentsOf: url) }
        meta["step"] = "many"
        try SafeTensors.save(["exp_avg.0": params[0], "exp_avg_sq.0": params[0]], to: url, metadata: meta)
        #expect(throws: TrainingError.invalidCheckpoint("metadata \"step\" = \"many\" is not a valid Int")) { try OptimizerCheckpoint(contentsOf: url) }
        meta["step"] = "1"; meta["format"] = "other"
        try SafeTensors.save(["exp_avg.0": params[0], "exp_avg_sq.0": params[0]], to: url, metadata: meta)
        #expect(throws: TrainingError.self) { try OptimizerCheckpoint(contentsOf: url) }
        #expect(throws: SafeTensorsError.self) { try OptimizerCheckpoint(contentsOf: dir.appendingPathComponent("none.safetensors")) }
    }
}
