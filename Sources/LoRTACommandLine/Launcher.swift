import LoRTA
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Process-level start-up logic of the CLI.
package enum Launcher {
    /// Set in the child process so that it never re-executes twice.
    static let markerVariable = "LORTA_REEXECUTED"
    /// Set to 1 to keep OpenBLAS's own core choice (no re-execution).
    static let disableVariable = "LORTA_NO_REEXEC"

    /// True when this process was started by ``reexecuteWithBetterBLASCoreIfNeeded()``.
    static var wasReexecuted: Bool { getenv(markerVariable) != nil }

    /// Re-executes the current binary once with `OPENBLAS_CORETYPE` set to the core that
    /// matches the CPU, when the active OpenBLAS core is weaker and the user did not set the
    /// variable. On any failure, continues in this process (the `info` command shows a warning).
    package static func reexecuteWithBetterBLASCoreIfNeeded() {
        guard getenv(markerVariable) == nil, getenv(disableVariable) == nil else { return }
        let diagnostics = BLASDiagnostics.current
        guard diagnostics.shouldReexecute, let core = diagnostics.recommendedCoreType else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        setenv(markerVariable, "1", 1)
        let args = CommandLine.arguments
        var cArgs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) }
        cArgs.append(nil)
        execv("/proc/self/exe", &cArgs)
        // execv returned: it failed. Undo and continue with the slower kernels.
        unsetenv("OPENBLAS_CORETYPE")
        unsetenv(markerVariable)
        for p in cArgs { free(p) }
    }
}
