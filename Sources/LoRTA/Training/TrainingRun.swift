/// The bookkeeping of one `train` call, shared by the trainers: wall time per step, losses and
/// tokens, the ``TrainingProgress`` handed to the caller after each step and the final
/// ``TrainingSummary``.
struct TrainingRun {
    private let clock = ContinuousClock()
    private let start: ContinuousClock.Instant
    private var stepStart: ContinuousClock.Instant
    private(set) var stepsRun = 0
    private var lossSum = 0.0, lastLoss = Double.nan, tokenTotal = 0
    private var stepTimes: [Double] = []

    init() {
        start = clock.now
        stepStart = start
    }

    private static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    /// Marks the start of a step.
    mutating func beginStep() { stepStart = clock.now }

    /// Records a finished step and returns what to report for it.
    mutating func endStep(step: Int, totalSteps: Int, epoch: Int, loss: Double, learningRate: Double,
                          examples: Int, tokens: Int) -> TrainingProgress {
        stepsRun += 1
        lossSum += loss
        lastLoss = loss
        tokenTotal += tokens
        let now = clock.now
        stepTimes.append(Self.seconds(now - stepStart))
        let elapsed = Self.seconds(now - start)
        return TrainingProgress(step: step, totalSteps: totalSteps, epoch: epoch, loss: loss, learningRate: learningRate,
                                examples: examples, tokens: tokens, elapsedSeconds: elapsed,
                                tokensPerSecond: elapsed > 0 ? Double(tokenTotal) / elapsed : 0,
                                etaSeconds: elapsed / Double(stepsRun) * Double(totalSteps - step))
    }

    /// The summary of the call (median step time, mean and last loss, throughput).
    func summary(finalStep: Int, stoppedEarly: Bool) -> TrainingSummary {
        let elapsed = Self.seconds(clock.now - start)
        let sorted = stepTimes.sorted()
        let median = sorted.isEmpty ? 0
            : sorted.count % 2 == 1 ? sorted[sorted.count / 2]
            : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        return TrainingSummary(stepsRun: stepsRun, finalStep: finalStep, stoppedEarly: stoppedEarly,
                               meanLoss: stepsRun > 0 ? lossSum / Double(stepsRun) : .nan, lastLoss: lastLoss,
                               elapsedSeconds: elapsed, medianStepSeconds: median,
                               tokensPerSecond: elapsed > 0 && stepsRun > 0 ? Double(tokenTotal) / elapsed : 0)
    }
}
