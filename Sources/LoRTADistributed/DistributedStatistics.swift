import LoRTA

extension Communicator {
    /// The statistics of every rank's rows, merged with the exact pairwise merge (Chan et al.,
    /// `ActivationStatistics.merge(_:)` (LoRTA)) in rank order: rank 0's, then rank 1's merged in, and
    /// so on. Every rank gets the result. Equal to one pass over all the rows up to float64
    /// rounding.
    /// - Parameter local: this rank's statistics per observation point (every rank must observe
    ///   the same points with the same dimensions).
    /// - Returns: the merged statistics per point.
    /// - Throws: ``DistributedError/ranksDisagree(what:detail:)`` when the ranks observed other
    ///   points; `StatisticsError` from the merge; MPI errors.
    public func mergeStatistics(_ local: [ObservationPoint: ActivationStatistics]) throws -> [ObservationPoint: ActivationStatistics] {
        let points = local.keys.sorted()
        var w = ByteWriter()
        w.append(Int64(points.count))
        for p in points {
            let name = Array(p.description.utf8)
            w.append(Int64(name.count))
            w.bytes += name
            encode(local[p]!, into: &w)
        }
        let all = try allgather(bytes: w.bytes)
        var merged: [ObservationPoint: ActivationStatistics] = [:]
        for (r, bytes) in all.enumerated() {
            var reader = ByteReader(bytes)
            let n = try reader.readCount(limit: bytes.count)
            var seen: [ObservationPoint] = []
            for _ in 0..<n {
                let length = try reader.readCount(limit: bytes.count - reader.offset)
                let name = String(decoding: bytes[reader.offset ..< reader.offset + length], as: UTF8.self)
                reader.offset += length
                let point = try ObservationPoint(parsing: name)
                seen.append(point)
                let s = try decodeStatistics(&reader)
                if var m = merged[point] {
                    try m.merge(s)
                    merged[point] = m
                } else {
                    merged[point] = s
                }
            }
            guard seen == points else {
                throw DistributedError.ranksDisagree(what: "observation points",
                                                     detail: "rank \(rank): \(points.map(\.description)); rank \(r): \(seen.map(\.description))")
            }
        }
        return merged
    }

    /// Every rank's evaluation metrics added up in rank order
    /// (`ClassificationMetrics.merge(_:)`); every rank gets the result.
    /// - Parameter local: this rank's metrics.
    /// - Returns: the metrics of all ranks' examples.
    /// - Throws: `TrainingError` when the class counts differ; MPI errors.
    public func mergeMetrics(_ local: ClassificationMetrics) throws -> ClassificationMetrics {
        // Per rank: classCount, count, correct, lossSum bits, confusion.
        let mine: [Int64] = [Int64(local.classCount), Int64(local.count), Int64(local.correct),
                             Int64(bitPattern: local.lossSum.bitPattern)] + local.confusion.map { Int64($0) }
        let all = try allgather(mine)
        var total = try ClassificationMetrics(classCount: local.classCount)
        for (r, v) in all.enumerated() {
            guard v.count >= 4, v[0] == Int64(local.classCount), v.count == 4 + local.classCount * local.classCount else {
                throw DistributedError.ranksDisagree(what: "class count", detail: "rank \(rank): \(local.classCount); rank \(r): \(v.first ?? -1)")
            }
            try total.merge(ClassificationMetrics(classCount: local.classCount, count: Int(v[1]), correct: Int(v[2]),
                                                  lossSum: Double(bitPattern: UInt64(bitPattern: v[3])),
                                                  confusion: v[4...].map { Int($0) }))
        }
        return total
    }

    private func encode(_ s: ActivationStatistics, into w: inout ByteWriter) {
        w.append(Int64(s.dimension))
        w.append(Int64(s.count))
        w.append(s.mean)
        w.append(s.scatter)
        w.append(s.thirdMoment)
        w.append(s.fourthMoment)
        let labels = s.labels
        w.append(Int64(labels.count))
        for l in labels {
            w.append(Int64(l))
            encode(s.labelStatistics[l]!, into: &w)
        }
    }

    private func decodeStatistics(_ r: inout ByteReader) throws -> ActivationStatistics {
        let d = try r.readCount(limit: Int(Int32.max))
        let count = try r.readCount(limit: Int(Int64.max))
        let mean = try r.readDoubles(), scatter = try r.readDoubles(), third = try r.readDoubles()
        let fourth = try r.readDouble()
        guard d >= 1, mean.count == d, scatter.count == d * d, third.count == d, fourth.isFinite, fourth >= 0 else {
            throw DistributedError.invalidMessage("statistics of dimension \(d) with \(mean.count) means, \(scatter.count) co-moments, \(third.count) third moments")
        }
        let k = try r.readCount(limit: count)
        var byLabel: [Int: ActivationStatistics] = [:]
        for _ in 0..<k {
            let label = Int(try r.read(Int64.self))
            byLabel[label] = try decodeStatistics(&r)
        }
        return ActivationStatistics(restoring: d, count: count, mean: mean, scatter: scatter, thirdMoment: third,
                                    fourthMoment: fourth, labelStatistics: byLabel)
    }
}
