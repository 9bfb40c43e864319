import CKernels

/// Streaming, mergeable float64 statistics of the activations at one site (a layer's or a
/// head's output): count, mean, scatter matrix and the norm moments the Ledoit–Wolf estimator
/// needs, optionally also per label (class).
///
/// Rows are float32 (``Tensor``); every accumulation is float64. Each batch is centred on its
/// own float64 mean and merged into the running statistics (Chan et al.), so a large common
/// offset (activations with mean 1e4 and spread 1) loses no digits. Two objects built from
/// disjoint shards ``merge(_:)`` into exactly the statistics of the union (up to float64
/// rounding), in any order; results do not depend on the thread count.
///
/// Stored moments, with μ the mean of the rows seen so far:
/// - ``scatter`` `M2 = Σ (x−μ)(x−μ)ᵀ` (d × d, row-major, symmetric);
/// - ``thirdMoment`` `Σ ‖x−μ‖² (x−μ)` (d) and ``fourthMoment`` `Σ ‖x−μ‖⁴`, kept so that the
///   fourth moment stays exact under merges (see `lt_stats.h`).
///
/// Memory: O(d²) doubles per object (and per label), checked against the ``MemoryBudget``
/// before anything is allocated. An update of n rows costs O(n·d²/2)
/// multiply-adds (a tiled SIMD kernel, OpenMP-parallel, per block of 512 rows) plus
/// O(min(n, 512)·d) doubles of temporary workspace.
public struct ActivationStatistics: Sendable, Equatable {
    /// Feature dimension d.
    public let dimension: Int
    /// Number of rows accumulated.
    public private(set) var count: Int = 0
    /// Mean of the rows (d), float64. Zeros while ``count`` is 0.
    public private(set) var mean: [Double]
    /// Scatter matrix `Σ (x−μ)(x−μ)ᵀ` (d × d, row-major, symmetric), float64.
    public private(set) var scatter: [Double]
    /// `Σ ‖x−μ‖² (x−μ)` (d): needed to keep ``fourthMoment`` exact under merges.
    public private(set) var thirdMoment: [Double]
    /// `Σ ‖x−μ‖⁴` (scikit-learn's `beta_` in the Ledoit–Wolf shrinkage).
    public private(set) var fourthMoment: Double = 0
    /// Statistics of the rows of each label, when updated with labels (empty otherwise).
    /// Invariant: either empty, or its counts sum to ``count``.
    public private(set) var labelStatistics: [Int: ActivationStatistics] = [:]

    /// Empty statistics of dimension `dimension`.
    /// - Throws: ``StatisticsError/invalidDimension(_:)`` unless `1 <= dimension <= 2³¹−1`;
    ///   ``MemoryError/exceedsBudget(purpose:bytes:budget:)`` (nothing allocated) when the
    ///   d × d float64 scatter matrix exceeds the ``MemoryBudget``.
    public init(dimension: Int) throws {
        guard dimension >= 1, dimension <= Int(Int32.max) else { throw StatisticsError.invalidDimension(dimension) }
        try MemoryBudget.check(bytes: ActivationStatistics.byteCount(dimension: dimension, tables: 1),
                               purpose: "statistics of \(dimension) features need a \(dimension)×\(dimension) float64 co-moment matrix")
        let dd = dimension * dimension  // dimension <= Int32.max: no overflow
        self.dimension = dimension
        self.mean = [Double](repeating: 0, count: dimension)
        self.scatter = [Double](repeating: 0, count: dd)
        self.thirdMoment = [Double](repeating: 0, count: dimension)
    }

    /// Restores statistics from their stored fields (``ActivationStatistics/init(contentsOf:)``);
    /// the caller has validated shapes and consistency. `package`: the distributed layer
    /// restores statistics received from other ranks the same way.
    package init(restoring dimension: Int, count: Int, mean: [Double], scatter: [Double], thirdMoment: [Double],
         fourthMoment: Double, labelStatistics: [Int: ActivationStatistics]) {
        self.dimension = dimension
        self.count = count
        self.mean = mean
        self.scatter = scatter
        self.thirdMoment = thirdMoment
        self.fourthMoment = fourthMoment
        self.labelStatistics = labelStatistics
    }

    /// Statistics of the rows of `batch` (n × d).
    public init(_ batch: Tensor) throws {
        guard batch.rank == 2 else {
            throw TensorError.rankMismatch(operation: "ActivationStatistics", expected: 2, actual: batch.rank)
        }
        try self.init(dimension: batch.shape[1])
        try update(with: batch)
    }

    /// Bytes of `tables` statistics objects of dimension `dimension` (each a d × d scatter
    /// matrix and two d-vectors of float64), or nil on overflow.
    static func byteCount(dimension d: Int, tables: Int) -> Int? {
        MemoryBudget.sum(MemoryBudget.byteCount(Double.self, d, d), MemoryBudget.byteCount(Double.self, 2, d))
            .flatMap { MemoryBudget.byteCount(UInt8.self, $0, tables) }
    }

    /// The labels seen, ascending.
    public var labels: [Int] { labelStatistics.keys.sorted() }

    /// Adds the rows of `batch` (n × d, float32). O(n·d²/2).
    /// - Throws: ``TensorError/rankMismatch(operation:expected:actual:)`` unless `batch` is
    ///   2-dimensional; ``StatisticsError/dimensionMismatch(operation:expected:actual:)``;
    ///   ``StatisticsError/nonFiniteValue(operation:)`` (statistics unchanged) for NaN/±Inf;
    ///   ``StatisticsError/labelsRequired(operation:)`` when these statistics keep per-label
    ///   statistics (use ``update(with:labels:)``).
    public mutating func update(with batch: Tensor) throws {
        guard labelStatistics.isEmpty || batch.count == 0 else {
            throw StatisticsError.labelsRequired(operation: "ActivationStatistics.update")
        }
        try accumulate(batch)
    }

    /// Adds the rows of `batch` (n × d) to the overall statistics and row i to the statistics of
    /// label `labels[i]`. O(n·d²/2) for the overall statistics plus the same again split over
    /// the labels, and one copy of the rows.
    /// - Throws: as ``update(with:)``, and ``StatisticsError/labelCountMismatch(rows:labels:)``;
    ///   ``StatisticsError/labelsRequired(operation:)`` when these statistics already hold
    ///   unlabelled rows; ``MemoryError/exceedsBudget(purpose:bytes:budget:)`` (statistics
    ///   unchanged) when the tables of all labels together (one d × d matrix per label, plus the
    ///   overall one) exceed the ``MemoryBudget``.
    public mutating func update(with batch: Tensor, labels: [Int]) throws {
        let (rows, d) = try batch.matrixShape("ActivationStatistics.update")
        guard d == dimension else {
            throw StatisticsError.dimensionMismatch(operation: "ActivationStatistics.update", expected: dimension, actual: d)
        }
        guard labels.count == rows else { throw StatisticsError.labelCountMismatch(rows: rows, labels: labels.count) }
        guard rows > 0 else { return }
        guard count == 0 || !labelStatistics.isEmpty else {
            throw StatisticsError.labelsRequired(operation: "ActivationStatistics.update(with:labels:)")
        }
        // Group the row indices by label (ascending label order, rows in order).
        var groups: [Int: [Int]] = [:]
        for (i, l) in labels.enumerated() { groups[l, default: []].append(i) }
        let labelCount = labelStatistics.count + groups.keys.filter { labelStatistics[$0] == nil }.count
        try MemoryBudget.check(bytes: ActivationStatistics.byteCount(dimension: d, tables: labelCount + 1),
                               purpose: "statistics of \(d) features for \(labelCount) labels need \(labelCount + 1) float64 "
                                   + "\(d)×\(d) co-moment matrices (one per label, one overall)")
        var subsets: [(Int, Tensor)] = []
        for label in groups.keys.sorted() {
            let idx = groups[label]!
            let sub = try batch.withUnsafeBufferPointer { src in
                try Tensor(shape: [idx.count, d]) { dst in
                    for (k, i) in idx.enumerated() {
                        (dst.baseAddress! + k * d).update(from: src.baseAddress! + i * d, count: d)
                    }
                }
            }
            subsets.append((label, sub))
        }
        // Update the overall statistics first: it validates the values (NaN) before any change.
        var updated = self
        try updated.accumulate(batch)
        for (label, sub) in subsets {
            var s = try updated.labelStatistics[label] ?? ActivationStatistics(dimension: dimension)
            try s.accumulate(sub)
            updated.labelStatistics[label] = s
        }
        self = updated
    }

    /// Merges `other` into `self`: afterwards `self` holds the statistics of the union of both
    /// row sets (as one pass over the union would, up to float64 rounding). Per-label
    /// statistics merge label by label. O(d²) per object.
    /// - Throws: ``StatisticsError/dimensionMismatch(operation:expected:actual:)``;
    ///   ``StatisticsError/labelsRequired(operation:)`` when one side has per-label statistics
    ///   and the other holds unlabelled rows.
    public mutating func merge(_ other: ActivationStatistics) throws {
        guard other.dimension == dimension else {
            throw StatisticsError.dimensionMismatch(operation: "ActivationStatistics.merge", expected: dimension, actual: other.dimension)
        }
        let selfUnlabelled = count > 0 && labelStatistics.isEmpty
        let otherUnlabelled = other.count > 0 && other.labelStatistics.isEmpty
        if (selfUnlabelled && !other.labelStatistics.isEmpty) || (otherUnlabelled && !labelStatistics.isEmpty) {
            throw StatisticsError.labelsRequired(operation: "ActivationStatistics.merge")
        }
        var result = self
        try result.mergeMoments(other)
        for (label, s) in other.labelStatistics {
            if var mine = result.labelStatistics[label] {
                try mine.mergeMoments(s)
                result.labelStatistics[label] = mine
            } else {
                result.labelStatistics[label] = s
            }
        }
        self = result
    }

    /// The statistics of the union of `self`'s and `other`'s rows. See ``merge(_:)``.
    public func merged(with other: ActivationStatistics) throws -> ActivationStatistics {
        var r = self
        try r.merge(other)
        return r
    }

    /// Unbiased per-feature variances `M2[j,j] / (n − 1)`.
    /// - Throws: ``StatisticsError/insufficientSamples(operation:count:required:)`` when n < 2.
    public func variances() throws -> [Double] {
        guard count >= 2 else {
            throw StatisticsError.insufficientSamples(operation: "variances", count: count, required: 2)
        }
        return (0..<dimension).map { scatter[$0 * dimension + $0] / Double(count - 1) }
    }

    // MARK: - kernels

    private mutating func accumulate(_ batch: Tensor) throws {
        let (rows, d) = try batch.matrixShape("ActivationStatistics.update")
        guard d == dimension else {
            throw StatisticsError.dimensionMismatch(operation: "ActivationStatistics.update", expected: dimension, actual: d)
        }
        guard rows > 0 else { return }
        try Runtime.initialize()
        var size: Int64 = 0
        try KernelFailure.check(lt_stats_update_workspace_size(Int64(d), Int64(rows), &size), "lt_stats_update_workspace_size")
        var work = [Double](repeating: 0, count: Int(size))
        var fourth = fourthMoment
        var n = Int64(count)
        let status: lt_status = batch.withUnsafeBufferPointer { x in
            withState(count: &n, fourth: &fourth) { s in
                work.withUnsafeMutableBufferPointer { w in
                    lt_stats_update(&s, x.baseAddress, Int64(rows), Int64(d), w.baseAddress, size)
                }
            }
        }
        if status == LT_ERR_INVALID_ARGUMENT {
            // Arguments are validated above, so this is the kernel's NaN/Inf check.
            throw StatisticsError.nonFiniteValue(operation: "ActivationStatistics.update")
        }
        try KernelFailure.check(status, "lt_stats_update")
        count = Int(n)
        fourthMoment = fourth
    }

    private mutating func mergeMoments(_ other: ActivationStatistics) throws {
        var size: Int64 = 0
        try KernelFailure.check(lt_stats_merge_workspace_size(Int64(dimension), &size), "lt_stats_merge_workspace_size")
        var work = [Double](repeating: 0, count: Int(size))
        var n = Int64(count), fourth = fourthMoment
        var otherMean = other.mean, otherScatter = other.scatter, otherThird = other.thirdMoment
        let d = Int64(dimension)
        let status: lt_status = withState(count: &n, fourth: &fourth) { dst in
            otherMean.withUnsafeMutableBufferPointer { om in
                otherScatter.withUnsafeMutableBufferPointer { os in
                    otherThird.withUnsafeMutableBufferPointer { ot in
                        var src = lt_stats(dim: d, count: Int64(other.count), mean: om.baseAddress,
                                           scatter: os.baseAddress, third: ot.baseAddress, fourth: other.fourthMoment)
                        return work.withUnsafeMutableBufferPointer { w in
                            lt_stats_merge(&dst, &src, w.baseAddress, size)
                        }
                    }
                }
            }
        }
        try KernelFailure.check(status, "lt_stats_merge")
        count = Int(n)
        fourthMoment = fourth
    }

    /// Calls `body` with an `lt_stats` view of this object's arrays; `count` and `fourth` are
    /// copied back by the caller.
    private mutating func withState<R>(count n: inout Int64, fourth: inout Double, _ body: (inout lt_stats) -> R) -> R {
        let d = Int64(dimension)
        var m = mean, sc = scatter, t = thirdMoment
        mean = []; scatter = []; thirdMoment = []  // keep the buffers uniquely referenced
        defer { mean = m; scatter = sc; thirdMoment = t }
        return m.withUnsafeMutableBufferPointer { mp in
            sc.withUnsafeMutableBufferPointer { sp in
                t.withUnsafeMutableBufferPointer { tp in
                    var s = lt_stats(dim: d, count: n, mean: mp.baseAddress, scatter: sp.baseAddress,
                                     third: tp.baseAddress, fourth: fourth)
                    let r = body(&s)
                    n = s.count
                    fourth = s.fourth
                    return r
                }
            }
        }
    }
}
