import CKernels

/// What the BLAS library in use runs, and whether it under-uses this CPU.
///
/// Distribution builds of OpenBLAS (DYNAMIC_ARCH) fall back to SSE3 "Prescott" kernels on
/// CPUs they do not know, several times slower than their AVX-512 kernels. OpenBLAS reads
/// `OPENBLAS_CORETYPE` when the library is loaded, so the fix must be applied before the
/// process starts: set the variable in the environment (the `lorta` CLI re-executes itself
/// once with it; embedders should do the same or document it for their users).
public struct BLASDiagnostics: Sendable, Equatable, CustomStringConvertible {
    /// The active OpenBLAS kernel core, as OpenBLAS names it (e.g. `skylakex`, `prescott`).
    public var activeCore: String
    /// OpenBLAS's build configuration string.
    public var configuration: String
    /// SIMD level of the active core: 0 SSE, 1 AVX, 2 AVX2, 3 AVX-512; nil when unknown.
    public var activeCoreLevel: Int?
    /// SIMD level of this CPU on the same scale.
    public var cpuLevel: Int
    /// The `OPENBLAS_CORETYPE` value that matches this CPU best, if any.
    public var recommendedCoreType: String?
    /// The value of `OPENBLAS_CORETYPE` in this process's environment, if set.
    public var coreTypeFromEnvironment: String?

    /// The current process's diagnostics.
    public static var current: BLASDiagnostics {
        let level = Int(lt_blas_core_level(lt_blas_corename()))
        return BLASDiagnostics(
            activeCore: String(cString: lt_blas_corename()),
            configuration: String(cString: lt_blas_config()),
            activeCoreLevel: level >= 0 ? level : nil,
            cpuLevel: Int(lt_cpu_simd_level()),
            recommendedCoreType: lt_blas_recommended_coretype().map { String(cString: $0) },
            coreTypeFromEnvironment: Runtime.environment("OPENBLAS_CORETYPE"))
    }

    /// True when the active core uses a narrower SIMD level than the CPU supports.
    public var isCoreWeakerThanCPU: Bool {
        guard let core = activeCoreLevel else { return false }
        return core < cpuLevel
    }

    /// Whether a launcher should restart the process with ``recommendedCoreType``: the core is
    /// weaker than the CPU, a recommendation exists, and the user has not set the variable.
    public var shouldReexecute: Bool {
        isCoreWeakerThanCPU && recommendedCoreType != nil && coreTypeFromEnvironment == nil
    }

    /// A one-paragraph warning, or nil when the BLAS core matches the CPU.
    public var warning: String? {
        guard isCoreWeakerThanCPU else { return nil }
        var text = "OpenBLAS runs its '\(activeCore)' kernels, below what this CPU supports"
        if let rec = recommendedCoreType {
            text += "; set OPENBLAS_CORETYPE=\(rec) before the process starts for several times faster GEMM"
        }
        if let env = coreTypeFromEnvironment { text += " (OPENBLAS_CORETYPE=\(env) is set by the user)" }
        return text
    }

    public var description: String {
        "OpenBLAS core \(activeCore) (level \(activeCoreLevel.map(String.init) ?? "?"), CPU level \(cpuLevel))"
    }
}
