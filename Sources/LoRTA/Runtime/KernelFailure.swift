import CKernels

/// A C kernel returned an error status although the Swift layer had validated its inputs
/// (a bug in this library, never a user mistake). `function` names the kernel, `status` is
/// the text of the `lt_status` code.
public struct KernelFailure: Error, Equatable, CustomStringConvertible {
    public let function: String
    public let status: String

    public var description: String { "internal error: \(function) failed (\(status))" }

    /// Throws a ``KernelFailure`` unless `status` is `LT_OK`. The one way from a C status to a
    /// Swift error: where a status means something to the user (e.g. `LT_ERR_NUMERICAL` from
    /// `lt_cholesky` → ``StatisticsError/notPositiveDefinite(order:)``), the caller tests for it
    /// first and passes every other status here. No other type has a `kernelFailure` case.
    @inline(__always)
    static func check(_ status: lt_status, _ function: @autoclosure () -> String) throws(KernelFailure) {
        if status != LT_OK {
            throw KernelFailure(function: function(),
                                status: String(cString: lt_status_string(Int32(status.rawValue))))
        }
    }
}
