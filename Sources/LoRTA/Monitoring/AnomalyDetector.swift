/// A detector fitted on trusted activations that scores new rows: one score per row,
/// higher = more anomalous.
public protocol AnomalyDetector: Sendable {
    /// Fits the detector on trusted rows (n × d).
    mutating func fit(_ trusted: Tensor) throws
    /// One score per row of `batch` (m × d); higher means more anomalous.
    /// - Throws: ``StatisticsError/notFitted(_:)`` before ``fit(_:)``, and shape errors.
    func scores(_ batch: Tensor) throws -> [Double]
}
