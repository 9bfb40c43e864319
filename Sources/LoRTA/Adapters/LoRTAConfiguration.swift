/// Errors of the LoRTA adapter API. Every bad input of ``LoRTAAdapter`` and
/// ``LoRTAConfiguration`` throws one of these; nothing traps on user input. A C kernel that
/// fails after these checks (a bug in this library) throws ``KernelFailure`` instead.
public enum LoRTAError: Error, Equatable, CustomStringConvertible {
    /// A configuration value is out of range (the message names it).
    case invalidConfiguration(String)
    /// A factor has the wrong shape for the configuration (`factor` is `A[i]`, `B`, `C_H`, `C_L`
    /// or `C_M`, or the matching gradient).
    case factorShapeMismatch(factor: String, expected: [Int], actual: [Int])
    /// The number of `A` factors differs from the number of distinct output sizes.
    case factorCountMismatch(expected: Int, actual: Int)
    /// A layer index outside `0..<layerCount`.
    case layerOutOfRange(layer: Int, layerCount: Int)
    /// A matrix-type index outside `0..<targetModules.count`.
    case matrixOutOfRange(matrix: Int, matrixCount: Int)
    /// A target module name that is not in the configuration.
    case unknownTarget(String, available: [String])
    /// An input, output or weight tensor has the wrong shape.
    case shapeMismatch(operation: String, expected: [Int], actual: [Int])
    /// A call that needs at least one output (or output gradient) received none.
    case noOutputs(operation: String)
    /// A tensor argument has another rank than required.
    case rankMismatch(operation: String, expected: Int, actual: Int)

    public var description: String {
        switch self {
        case .invalidConfiguration(let m): return "invalid LoRTA configuration: \(m)"
        case .factorShapeMismatch(let f, let e, let a):
            return "LoRTA factor \(f) must have shape \(e), got \(a)"
        case .factorCountMismatch(let e, let a):
            return "LoRTA needs \(e) A factor(s) (one per distinct output size), got \(a)"
        case .layerOutOfRange(let l, let n): return "layer \(l) is out of range 0..<\(n)"
        case .matrixOutOfRange(let m, let n): return "matrix type \(m) is out of range 0..<\(n)"
        case .unknownTarget(let t, let avail):
            return "'\(t)' is not a target module of this adapter (targets: \(avail.joined(separator: ", ")))"
        case .shapeMismatch(let op, let e, let a): return "\(op): expected shape \(e), got \(a)"
        case .noOutputs(let op): return "\(op): at least one output is required"
        case .rankMismatch(let op, let e, let a):
            return "\(op): expected a \(e)-dimensional tensor, got \(a) dimensions"
        }
    }
}

/// Sizes and hyper-parameters of a LoRTA adapter (DESIGN.md §4).
///
/// The adapter is one rank-``rank`` CP decomposition of the 5-way tensor
/// `d_out × d_h × H × L × M` that stacks the updates of every adapted matrix of every layer:
/// `d_h` = ``headDimension``, `H` = ``headCount``, `L` = ``layerCount``, `M` =
/// `targetModules.count`. The order of ``targetModules`` defines the M axis (as in the PEFT
/// `adapter_config.json`). Scaling: `s = alpha / rank`.
///
/// **Output sizes (grouped-query attention — an extension beyond the LoRTA paper).** The paper
/// adapts d × d matrices only. Here each target has its own output size
/// (``outputSizes``; e.g. K and V under GQA have `H_kv · d_h` rows). All factors but `A` stay
/// shared; there is one `A` (`d_out × r`) per *distinct* output size, in the order of first
/// appearance in ``outputSizes`` (``distinctOutputSizes``). With equal output sizes there is a
/// single `A`, exactly the paper's model.
public struct LoRTAConfiguration: Sendable, Equatable {
    /// CP rank `r` (≥ 1).
    public let rank: Int
    /// `lora_alpha`; the update is scaled by `alpha / rank`.
    public let alpha: Float
    /// Adapted matrix types (e.g. `["query", "key", "value", "attention.output.dense"]`); their
    /// order is the M axis. Non-empty, no duplicates.
    public let targetModules: [String]
    /// Number of layers `L` (≥ 1).
    public let layerCount: Int
    /// Number of heads `H` the input side is split into (≥ 1).
    public let headCount: Int
    /// Head size `d_h` (≥ 1); the input size of every adapted matrix is `H · d_h`.
    public let headDimension: Int
    /// Output size (rows of W) of each target, in ``targetModules`` order.
    public let outputSizes: [Int]

    /// Creates and validates a configuration.
    /// - Parameters:
    ///   - rank: CP rank `r` (≥ 1).
    ///   - alpha: `lora_alpha` (finite); the update is scaled by `alpha / rank`.
    ///   - targetModules: adapted matrix types, in M-axis order; non-empty, no duplicates,
    ///     at most 64.
    ///   - layerCount: number of layers `L` (≥ 1).
    ///   - headCount: number of heads `H` the input side is split into (≥ 1).
    ///   - headDimension: head size `d_h` (≥ 1); the input size is `H · d_h`.
    ///   - outputSizes: one per target; `nil` means every target is square
    ///     (`H · d_h` rows).
    /// - Throws: ``LoRTAError/invalidConfiguration(_:)`` for a non-positive size, a non-finite
    ///   alpha, empty or duplicate targets, or a count of output sizes that differs from the
    ///   count of targets.
    public init(rank: Int, alpha: Float, targetModules: [String], layerCount: Int, headCount: Int,
                headDimension: Int, outputSizes: [Int]? = nil) throws {
        func fail(_ m: String) -> LoRTAError { .invalidConfiguration(m) }
        guard rank >= 1 else { throw fail("rank must be >= 1, got \(rank)") }
        guard alpha.isFinite else { throw fail("alpha must be finite, got \(alpha)") }
        guard !targetModules.isEmpty else { throw fail("targetModules is empty") }
        guard Set(targetModules).count == targetModules.count else {
            throw fail("targetModules has duplicates: \(targetModules)")
        }
        guard !targetModules.contains(where: \.isEmpty) else { throw fail("a target module name is empty") }
        guard targetModules.count <= 64 else { throw fail("at most 64 target modules are supported") }
        guard layerCount >= 1 else { throw fail("layerCount must be >= 1, got \(layerCount)") }
        guard headCount >= 1 else { throw fail("headCount must be >= 1, got \(headCount)") }
        guard headDimension >= 1 else { throw fail("headDimension must be >= 1, got \(headDimension)") }
        let limit = Int(Int32.max)
        let (din, overflow) = headCount.multipliedReportingOverflow(by: headDimension)
        guard !overflow, din <= limit else { throw fail("headCount × headDimension is too large") }
        guard rank <= limit, layerCount <= limit else { throw fail("rank or layerCount is too large") }
        let sizes = outputSizes ?? Array(repeating: din, count: targetModules.count)
        guard sizes.count == targetModules.count else {
            throw fail("\(sizes.count) output sizes for \(targetModules.count) target modules")
        }
        guard sizes.allSatisfy({ $0 >= 1 && $0 <= limit }) else {
            throw fail("output sizes must be in 1...\(limit), got \(sizes)")
        }
        // Each term is at most 64 · 2³¹, so the sum cannot overflow; the product with the rank can.
        var distinct: [Int] = []
        for s in sizes where !distinct.contains(s) { distinct.append(s) }
        let perRank = distinct.reduce(0, +) + headDimension + headCount + layerCount + targetModules.count
        guard case (_, false) = rank.multipliedReportingOverflow(by: perRank) else {
            throw fail("rank \(rank) × \(perRank) parameters per rank overflows the parameter count")
        }
        self.rank = rank
        self.alpha = alpha
        self.targetModules = targetModules
        self.layerCount = layerCount
        self.headCount = headCount
        self.headDimension = headDimension
        self.outputSizes = sizes
    }

    /// Number of matrix types `M`.
    public var matrixCount: Int { targetModules.count }
    /// Input size `H · d_h` of every adapted matrix.
    public var inputSize: Int { headCount * headDimension }
    /// `alpha / rank`.
    public var scaling: Float { alpha / Float(rank) }

    /// Output sizes without repetitions, in order of first appearance: index `i` is the size of
    /// the adapter's `A[i]`.
    public var distinctOutputSizes: [Int] {
        var seen: [Int] = []
        for s in outputSizes where !seen.contains(s) { seen.append(s) }
        return seen
    }

    /// Index into ``distinctOutputSizes`` (and into ``LoRTAFactors/a``) of matrix type `matrix`.
    /// - Precondition: `matrix` is in `0..<matrixCount` (checked by the throwing callers).
    public func factorAIndex(forMatrix matrix: Int) -> Int {
        distinctOutputSizes.firstIndex(of: outputSizes[matrix])!
    }

    /// Position of a target module on the M axis.
    /// - Throws: ``LoRTAError/unknownTarget(_:available:)``.
    public func matrixIndex(of target: String) throws -> Int {
        guard let i = targetModules.firstIndex(of: target) else {
            throw LoRTAError.unknownTarget(target, available: targetModules)
        }
        return i
    }

    /// Trained scalars: `r · (Σ distinct d_out + d_h + H + L + M)` — `r (d_out + d_h + H + L + M)`
    /// in the paper's case of one output size. Cannot overflow (checked by the initializer).
    public var parameterCount: Int {
        rank * (distinctOutputSizes.reduce(0, +) + headDimension + headCount + layerCount + matrixCount)
    }

    /// Shapes of the factors: `A[i]` is `[distinctOutputSizes[i], r]`, `B` `[r, d_h]`, `C_H`
    /// `[H, r]`, `C_L` `[L, r]`, `C_M` `[M, r]`.
    public var factorShapes: (a: [[Int]], b: [Int], cH: [Int], cL: [Int], cM: [Int]) {
        (distinctOutputSizes.map { [$0, rank] }, [rank, headDimension], [headCount, rank],
         [layerCount, rank], [matrixCount, rank])
    }

    func checkLayer(_ layer: Int) throws {
        guard layer >= 0 && layer < layerCount else {
            throw LoRTAError.layerOutOfRange(layer: layer, layerCount: layerCount)
        }
    }

    func checkMatrix(_ matrix: Int) throws {
        guard matrix >= 0 && matrix < matrixCount else {
            throw LoRTAError.matrixOutOfRange(matrix: matrix, matrixCount: matrixCount)
        }
    }
}
