import CKernels

/// Seeded, deterministic k-means (k-means++ seeding, then Lloyd iterations) on float32 rows,
/// with float64 centroids.
///
/// The same rows, `k` and `seed` give the same centroids and assignments on every run and
/// for every thread count: seeding draws from the counter-based generator (`lt_rng_u64`),
/// distances are computed per row in a fixed order (C kernel `lt_squared_distances`), ties go
/// to the lowest cluster index, and centroid sums run over rows in order.
///
/// Seeding is plain k-means++ (Arthur & Vassilvitskii 2007): the first centre is a uniformly
/// drawn row, each next one a row drawn with probability ∝ its squared distance to the nearest
/// centre so far (scikit-learn additionally tries several candidates per step; results differ).
/// An empty cluster keeps its previous centroid. Cost per iteration: O(n·k·d).
public struct KMeans: Sendable, Equatable {
    /// Number of clusters.
    public let k: Int
    /// Feature dimension.
    public let dimension: Int
    /// Centroids, k × d row-major, float64.
    public let centroids: [Double]
    /// Cluster index of each training row.
    public let assignments: [Int]
    /// Sum of squared distances of the training rows to their centroids.
    public let inertia: Double
    /// Lloyd iterations run (stops when no assignment changes or at `maxIterations`).
    public let iterations: Int

    /// Restores a clustering from its stored fields (detector files); the caller validated them.
    init(restoring k: Int, dimension: Int, centroids: [Double], assignments: [Int], inertia: Double, iterations: Int) {
        self.k = k
        self.dimension = dimension
        self.centroids = centroids
        self.assignments = assignments
        self.inertia = inertia
        self.iterations = iterations
    }

    /// Clusters the rows of `rows` (n × d, n ≥ k ≥ 1).
    /// - Throws: ``StatisticsError/invalidParameter(_:)`` for k outside 1...n or
    ///   `maxIterations < 1`; ``StatisticsError/nonFiniteValue(operation:)`` for NaN/±Inf rows;
    ///   ``MemoryError/exceedsBudget(purpose:bytes:budget:)`` when the n × k float64 distance
    ///   matrix of the Lloyd iterations exceeds the ``MemoryBudget`` (checked before any work).
    public init(_ rows: Tensor, k: Int, seed: UInt64 = 0, maxIterations: Int = 100) throws {
        let (n, d) = try rows.matrixShape("KMeans")
        guard k >= 1, k <= n else { throw StatisticsError.invalidParameter("k = \(k) must be in 1...\(n) (the number of rows)") }
        guard maxIterations >= 1 else { throw StatisticsError.invalidParameter("maxIterations must be >= 1") }
        guard rows.withUnsafeBufferPointer({ $0.allSatisfy { $0.isFinite } }) else {
            throw StatisticsError.nonFiniteValue(operation: "KMeans")
        }
        try Runtime.initialize()
        try MemoryBudget.check(bytes: MemoryBudget.byteCount(Double.self, n, k),
                               purpose: "k-means of \(n) rows into \(k) clusters needs a \(n)×\(k) float64 distance matrix")
        self.k = k
        self.dimension = d

        // k-means++ seeding
        var centroids = [Double](repeating: 0, count: k * d)
        func setCentroid(_ c: Int, row i: Int) {
            rows.withUnsafeBufferPointer { x in
                for j in 0..<d { centroids[c * d + j] = Double(x[i * d + j]) }
            }
        }
        var counter: UInt64 = 0
        func uniform() -> Double {
            defer { counter += 1 }
            return Double(lt_rng_u64(seed, counter) >> 11) * 0x1p-53
        }
        var chosen = [Bool](repeating: false, count: n)
        let first = min(Int(uniform() * Double(n)), n - 1)
        setCentroid(0, row: first)
        chosen[first] = true
        var nearest = try KMeans.distances(rows, centroids: Array(centroids[0..<d]), k: 1)
        for c in 1..<k {
            let total = nearest.reduce(0, +)
            var pick = -1
            if total > 0 {
                let u = uniform() * total
                var acc = 0.0
                for i in 0..<n {
                    acc += nearest[i]
                    if acc > u, nearest[i] > 0 { pick = i; break }
                }
                if pick < 0 { pick = nearest.lastIndex(where: { $0 > 0 }) ?? -1 }
            } else {
                _ = uniform()
            }
            if pick < 0 { pick = chosen.firstIndex(of: false)! }  // all rows coincide with centres
            chosen[pick] = true
            setCentroid(c, row: pick)
            let dnew = try KMeans.distances(rows, centroids: Array(centroids[(c * d)..<((c + 1) * d)]), k: 1)
            for i in 0..<n where dnew[i] < nearest[i] { nearest[i] = dnew[i] }
        }

        // Lloyd iterations
        var labels = [Int](repeating: -1, count: n)
        var inertia = 0.0
        var iterations = 0
        while iterations < maxIterations {
            iterations += 1
            let dist = try KMeans.distances(rows, centroids: centroids, k: k)
            var changed = false
            inertia = 0
            for i in 0..<n {
                var best = 0
                for c in 1..<max(k, 1) where dist[i * k + c] < dist[i * k + best] { best = c }
                inertia += dist[i * k + best]
                if labels[i] != best { labels[i] = best; changed = true }
            }
            if !changed { break }
            var sums = [Double](repeating: 0, count: k * d)
            var counts = [Int](repeating: 0, count: k)
            rows.withUnsafeBufferPointer { x in
                for i in 0..<n {
                    let c = labels[i]
                    counts[c] += 1
                    for j in 0..<d { sums[c * d + j] += Double(x[i * d + j]) }
                }
            }
            for c in 0..<k where counts[c] > 0 {
                for j in 0..<d { centroids[c * d + j] = sums[c * d + j] / Double(counts[c]) }
            }
        }
        self.centroids = centroids
        self.assignments = labels
        self.inertia = inertia
        self.iterations = iterations
    }

    /// The nearest centroid of each row of `batch` (m × d); ties go to the lowest index.
    public func assign(_ batch: Tensor) throws -> [Int] {
        let (m, d) = try batch.matrixShape("KMeans.assign")
        guard d == dimension else { throw StatisticsError.dimensionMismatch(operation: "KMeans.assign", expected: dimension, actual: d) }
        let dist = try KMeans.distances(batch, centroids: centroids, k: k)
        return (0..<m).map { i in
            var best = 0
            for c in 1..<max(k, 1) where dist[i * k + c] < dist[i * k + best] { best = c }
            return best
        }
    }

    /// Squared distances (n × k, row-major) from the rows to `centroids` (k × d).
    /// - Throws: ``MemoryError/exceedsBudget(purpose:bytes:budget:)`` when the n × k matrix
    ///   exceeds the ``MemoryBudget``.
    static func distances(_ rows: Tensor, centroids: [Double], k: Int) throws -> [Double] {
        let (n, d) = (rows.shape[0], rows.shape[1])
        try MemoryBudget.check(bytes: MemoryBudget.byteCount(Double.self, n, k),
                               purpose: "distances of \(n) rows to \(k) centres need a \(n)×\(k) float64 matrix")
        var out = [Double](repeating: 0, count: n * k)
        let status = rows.withUnsafeBufferPointer { x in
            centroids.withUnsafeBufferPointer { p in
                out.withUnsafeMutableBufferPointer { o in
                    lt_squared_distances(Int64(d), x.baseAddress, Int64(n), Int64(d), p.baseAddress, Int64(k), Int64(d),
                                         o.baseAddress, Int64(k))
                }
            }
        }
        try KernelFailure.check(status, "lt_squared_distances")
        return out
    }
}

/// Intrinsic-dimension estimates.
public enum IntrinsicDimension {
    /// TwoNN (Facco et al. 2017), maximum-likelihood form: with r₁, r₂ the distances of a point
    /// to its first and second nearest neighbours and μ = r₂/r₁, `d̂ = N / Σ log μ` over the N
    /// points with r₁ > 0 (exact duplicates are skipped). Uses at most `maxSamples` rows, evenly
    /// spaced (deterministic). O(N²·d).
    /// - Throws: ``StatisticsError/insufficientSamples(operation:count:required:)`` with fewer
    ///   than 3 usable rows.
    public static func twoNN(_ rows: Tensor, maxSamples: Int = 1000) throws -> Double {
        let (n, d) = try rows.matrixShape("IntrinsicDimension.twoNN")
        guard maxSamples >= 3 else { throw StatisticsError.invalidParameter("maxSamples must be >= 3") }
        let m = min(n, maxSamples)
        guard m >= 3 else { throw StatisticsError.insufficientSamples(operation: "IntrinsicDimension.twoNN", count: n, required: 3) }
        let idx = (0..<m).map { $0 * n / m }
        let sample = try rows.withUnsafeBufferPointer { x in
            try Tensor(shape: [m, d]) { o in
                for (r, i) in idx.enumerated() { for j in 0..<d { o[r * d + j] = x[i * d + j] } }
            }
        }
        let points = sample.scalars.map(Double.init)
        let dist = try KMeans.distances(sample, centroids: points, k: m)
        var sumLog = 0.0, used = 0
        for i in 0..<m {
            var r1 = Double.infinity, r2 = Double.infinity
            for c in 0..<m where c != i {
                let v = dist[i * m + c]
                if v < r1 { r2 = r1; r1 = v } else if v < r2 { r2 = v }
            }
            guard r1 > 0, r2.isFinite else { continue }
            sumLog += 0.5 * log(r2 / r1)  // squared distances: log μ = ½ log(r₂²/r₁²)
            used += 1
        }
        guard used >= 3, sumLog > 0 else {
            throw StatisticsError.insufficientSamples(operation: "IntrinsicDimension.twoNN", count: used, required: 3)
        }
        return Double(used) / sumLog
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
