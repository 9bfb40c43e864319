import CKernels

/// AdamW hyper-parameters, with torch.optim.AdamW's names and defaults.
public struct AdamWConfiguration: Sendable, Equatable {
    /// Base learning rate (a schedule may scale it per step).
    public var learningRate: Double
    public var beta1: Double
    public var beta2: Double
    public var epsilon: Double
    /// Decoupled weight decay: each step multiplies parameters by `1 − lr · weightDecay`.
    public var weightDecay: Double

    /// Hyper-parameters are `Double`, like torch's Python floats: the kernel derives
    /// `1 − beta2` etc. in double precision before rounding to Float32.
    public init(learningRate: Double = 1e-3, beta1: Double = 0.9, beta2: Double = 0.999,
                epsilon: Double = 1e-8, weightDecay: Double = 0.01) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
    }

    /// Checks every field.
    /// - Throws: ``TrainingError/invalidHyperparameter(name:value:expected:)``.
    public func validate() throws(TrainingError) {
        func bad(_ n: String, _ v: Double, _ e: String) -> TrainingError {
            .invalidHyperparameter(name: n, value: v, expected: e)
        }
        guard learningRate.isFinite, learningRate >= 0 else { throw bad("learning rate", learningRate, "finite, >= 0") }
        guard beta1 >= 0, beta1 < 1 else { throw bad("beta1", beta1, "in [0, 1)") }
        guard beta2 >= 0, beta2 < 1 else { throw bad("beta2", beta2, "in [0, 1)") }
        guard epsilon.isFinite, Float(epsilon) > 0 else { throw bad("epsilon", epsilon, "finite, > 0") }
        guard weightDecay.isFinite, weightDecay >= 0 else { throw bad("weight decay", weightDecay, "finite, >= 0") }
    }
}

/// The state AdamW keeps between steps: the update count and, per parameter tensor, the first
/// and second moment estimates (torch's `exp_avg`, `exp_avg_sq`) with the parameter's shape.
public struct OptimizerState: Sendable {
    /// Updates made so far (torch's `state["step"]`).
    public var step: Int
    /// Per parameter tensor, `exp_avg`.
    public var firstMoments: [Tensor]
    /// Per parameter tensor, `exp_avg_sq`.
    public var secondMoments: [Tensor]

    public init(step: Int = 0, firstMoments: [Tensor] = [], secondMoments: [Tensor] = []) {
        self.step = step
        self.firstMoments = firstMoments
        self.secondMoments = secondMoments
    }
}

/// AdamW with decoupled weight decay, equal to `torch.optim.AdamW` (amsgrad off), run by the
/// fused C kernel `lt_adamw_step` (one pass over parameter, gradient and both moments).
///
/// The moments are created (zeros) at the first ``update(parameters:gradients:learningRate:)``
/// with the parameters' shapes; later calls must pass the same number of tensors with the same
/// shapes, in the same order.
///
/// Non-finite gradients: before changing anything, every gradient is checked; if one holds
/// NaN or ±Inf the call throws ``TrainingError/nonFiniteGradient(index:element:)`` and leaves
/// parameters, moments and the step count untouched (the caller may skip the batch or stop).
public struct AdamW: Sendable {
    public var configuration: AdamWConfiguration
    public var state: OptimizerState

    /// - Throws: ``TrainingError/invalidHyperparameter(name:value:expected:)``.
    public init(configuration: AdamWConfiguration = AdamWConfiguration(),
                state: OptimizerState = OptimizerState()) throws(TrainingError) {
        try configuration.validate()
        guard state.step >= 0 else {
            throw .invalidHyperparameter(name: "step", value: Double(state.step), expected: ">= 0")
        }
        guard state.firstMoments.count == state.secondMoments.count else {
            throw .parameterCountMismatch(expected: state.firstMoments.count, actual: state.secondMoments.count)
        }
        for (i, (m, v)) in zip(state.firstMoments, state.secondMoments).enumerated() where m.shape != v.shape {
            throw .shapeMismatch(index: i, expected: m.shape, actual: v.shape)
        }
        self.configuration = configuration
        self.state = state
    }

    /// One AdamW step on every parameter tensor, with `learningRate` (default: the
    /// configuration's; pass a schedule's value here). O(total elements), one fused pass per
    /// tensor plus one read of the gradients for the finiteness check.
    /// - Throws: ``TrainingError/parameterCountMismatch(expected:actual:)``,
    ///   ``TrainingError/shapeMismatch(index:expected:actual:)``,
    ///   ``TrainingError/nonFiniteGradient(index:element:)``,
    ///   ``TrainingError/invalidHyperparameter(name:value:expected:)`` for a bad learning rate.
    ///   On any error nothing is modified.
    public mutating func update(parameters: inout [Tensor], gradients: [Tensor],
                                learningRate: Double? = nil) throws(TrainingError) {
        let lr = learningRate ?? configuration.learningRate
        guard lr.isFinite, lr >= 0 else {
            throw .invalidHyperparameter(name: "learning rate", value: lr, expected: "finite, >= 0")
        }
        guard gradients.count == parameters.count else {
            throw .parameterCountMismatch(expected: parameters.count, actual: gradients.count)
        }
        let fresh = state.firstMoments.isEmpty && state.step == 0
        if !fresh {
            guard state.firstMoments.count == parameters.count else {
                throw .parameterCountMismatch(expected: state.firstMoments.count, actual: parameters.count)
            }
        }
        for i in parameters.indices {
            guard gradients[i].shape == parameters[i].shape else {
                throw .shapeMismatch(index: i, expected: parameters[i].shape, actual: gradients[i].shape)
            }
            if !fresh, state.firstMoments[i].shape != parameters[i].shape {
                throw .shapeMismatch(index: i, expected: state.firstMoments[i].shape, actual: parameters[i].shape)
            }
        }
        for (i, g) in gradients.enumerated() {
            var bad: Int64 = -1
            let st = g.withUnsafeBufferPointer { lt_all_finite($0.baseAddress, Int64($0.count), &bad) }
            guard st == LT_OK else { throw .kernel(function: "lt_all_finite", status: Int32(st.rawValue)) }
            if bad >= 0 { throw .nonFiniteGradient(index: i, element: Int(bad)) }
        }
        if fresh {
            // Zero tensors of the parameters' shapes (a copy of each, then cleared).
            state.firstMoments = parameters.map { p in
                var z = p
                z.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
                return z
            }
            state.secondMoments = state.firstMoments
        }
        let step = state.step + 1
        var hp = lt_adamw_hparams(lr: lr, beta1: configuration.beta1, beta2: configuration.beta2,
                                  eps: configuration.epsilon, weight_decay: configuration.weightDecay)
        for i in parameters.indices {
            let st = parameters[i].withUnsafeMutableBufferPointer { p in
                gradients[i].withUnsafeBufferPointer { g in
                    state.firstMoments[i].withUnsafeMutableBufferPointer { m in
                        state.secondMoments[i].withUnsafeMutableBufferPointer { v in
                            lt_adamw_step(p.baseAddress, g.baseAddress, m.baseAddress, v.baseAddress,
                                          Int64(p.count), Int64(step), &hp)
                        }
                    }
                }
            }
            // Arguments were validated above; a failure here is a bug, reported, not hidden.
            guard st == LT_OK else { throw .kernel(function: "lt_adamw_step", status: Int32(st.rawValue)) }
        }
        state.step = step
    }
}
