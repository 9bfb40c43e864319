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
        return TrainingSummary(stepsRun: stepsRun, finalStep: finalStep, stoppedEarly: stoppedEarly,
                               meanLoss: stepsRun > 0 ? lossSum / Double(stepsRun) : .nan, lastLoss: lastLoss,
                               elapsedSeconds: elapsed, medianStepSeconds: Self.median(stepTimes),
                               tokensPerSecond: elapsed > 0 && stepsRun > 0 ? Double(tokenTotal) / elapsed : 0,
                               stepSeconds: stepTimes, tokens: tokenTotal)
    }

    static func median(_ xs: [Double]) -> Double {
        let sorted = xs.sorted()
        return sorted.isEmpty ? 0
            : sorted.count % 2 == 1 ? sorted[sorted.count / 2]
            : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }
}

extension TrainingSummary {
    /// One summary for consecutive `train` calls of one trainer (e.g. a run paused to write
    /// checkpoints): steps, times and tokens add up, the mean loss is over every step, the
    /// median over every step's time, the last loss and final step are the last call's.
    /// - Complexity: O(steps · log steps).
    public init(combining parts: [TrainingSummary]) {
        let times = parts.flatMap(\.stepSeconds)
        let steps = parts.reduce(0) { $0 + $1.stepsRun }
        let elapsed = parts.reduce(0) { $0 + $1.elapsedSeconds }
        let tokens = parts.reduce(0) { $0 + $1.tokens }
        let lossSum = parts.reduce(0.0) { $0 + ($1.stepsRun > 0 ? $1.meanLoss * Double($1.stepsRun) : 0) }
        self.init(stepsRun: steps, finalStep: parts.last?.finalStep ?? 0, stoppedEarly: parts.last?.stoppedEarly ?? false,
                  meanLoss: steps > 0 ? lossSum / Double(steps) : .nan,
                  lastLoss: parts.last(where: { $0.stepsRun > 0 })?.lastLoss ?? .nan,
                  elapsedSeconds: elapsed, medianStepSeconds: TrainingRun.median(times),
                  tokensPerSecond: elapsed > 0 && steps > 0 ? Double(tokens) / elapsed : 0,
                  stepSeconds: times, tokens: tokens)
    }
}
