import CKernels

/// Instruction sets that have their own kernel variant.
public enum InstructionSet: String, CaseIterable, Sendable, CustomStringConvertible {
    case scalar, avx2, avx512

    var cValue: Int32 {
        switch self {
        case .scalar: return Int32(LT_ISA_SCALAR.rawValue)
        case .avx2: return Int32(LT_ISA_AVX2.rawValue)
        case .avx512: return Int32(LT_ISA_AVX512.rawValue)
        }
    }

    init?(cValue: Int32) {
        switch cValue {
        case Int32(LT_ISA_SCALAR.rawValue): self = .scalar
        case Int32(LT_ISA_AVX2.rawValue): self = .avx2
        case Int32(LT_ISA_AVX512.rawValue): self = .avx512
        default: return nil
        }
    }

    public var description: String { rawValue }
}

/// The float32 matrix product behind every dense product of the kernels (layers, adapters,
/// ``Tensor/matmul(_:_:transposeA:transposeB:alpha:beta:into:)``).
public enum GEMMBackend: String, CaseIterable, Sendable, CustomStringConvertible {
    /// The library's own packed GEMM on its OpenMP team (the default): results independent of
    /// the thread count, AVX2 and AVX-512 bitwise equal.
    case lorta
    /// OpenBLAS's `cblas_sgemm` on its own thread pool: the reference path
    /// (`LORTA_GEMM=openblas`). Values differ from `lorta`'s in the last bits.
    case openblas

    var cValue: Int32 {
        switch self {
        case .lorta: return Int32(LT_GEMM_LORTA.rawValue)
        case .openblas: return Int32(LT_GEMM_OPENBLAS.rawValue)
        }
    }

    public var description: String { rawValue }
}

/// How decode-sized products with quantized weights compute (one to eight rows of activations
/// against Q8_0, Q4_0, Q4_1, Q4_K or Q6_K matrices: generation and short prompts of GGUF models).
public enum DecodeArithmetic: String, CaseIterable, Sendable, CustomStringConvertible {
    /// The float32 activations times exactly the dequantized weights (the default): decoding
    /// gives the same values as a batched forward up to summation order.
    case float
    /// llama.cpp's arithmetic (`LORTA_DECODE=int8`): each block of 32 activations is rounded
    /// to int8 (scale max|x|/127) and multiplied with the weight codes in exact integers
    /// (AVX-512 VNNI where the CPU has it). Faster; each output differs from the float one by
    /// the activations' rounding (at most max|x|/254 per activation, times Σ|w|). The same bits
    /// on every instruction set and thread count.
    case int8

    var cValue: Int32 {
        switch self {
        case .float: return Int32(LT_DECODE_FLOAT.rawValue)
        case .int8: return Int32(LT_DECODE_INT8.rawValue)
        }
    }

    public var description: String { rawValue }
}

/// Errors raised by the runtime settings.
public enum RuntimeError: Error, Equatable, CustomStringConvertible {
    /// `LORTA_ISA` (or ``Runtime/setInstructionSet(_:)``) asked for an ISA this CPU lacks.
    case unsupportedInstructionSet(String)
    /// An environment variable holds a value that cannot be parsed.
    case badEnvironment(variable: String, value: String)
    /// A thread count outside 1...4096.
    case invalidThreadCount(Int)

    public var description: String {
        switch self {
        case .unsupportedInstructionSet(let isa):
            let available = Runtime.availableInstructionSets.map(\.rawValue).joined(separator: ", ")
            return "instruction set '\(isa)' is not supported by this CPU (available: \(available))"
        case .badEnvironment(let variable, let value):
            return "environment variable \(variable)='\(value)' is not valid"
        case .invalidThreadCount(let n):
            return "thread count \(n) is out of range (1...4096)"
        }
    }
}

/// Process-wide settings of the C kernels: thread count (OpenMP and OpenBLAS together), the
/// SIMD instruction set, and a diagnostic of the BLAS library in use.
///
/// The environment is read once, on first use: `LORTA_NUM_THREADS` (thread count),
/// `LORTA_ISA` (`scalar`, `avx2`, `avx512` or `auto`), `LORTA_GEMM` (`lorta` or `openblas`,
/// see ``GEMMBackend``), `LORTA_DECODE` (`float` or `int8`, see ``DecodeArithmetic``) and
/// `LORTA_MAX_MEMORY` (see ``MemoryBudget``).
public enum Runtime {
    /// Reads the environment once; every kernel entry point calls this first.
    /// - Throws: ``RuntimeError`` when `LORTA_ISA`, `LORTA_GEMM`, `LORTA_DECODE` or `LORTA_NUM_THREADS` is invalid;
    ///   ``MemoryError/invalidSize(text:origin:)`` when `LORTA_MAX_MEMORY` is not a size.
    public static func initialize() throws {
        if case .failure(let e) = MemoryBudget.environment { throw e }
        let status = lt_runtime_init()
        switch status {
        case LT_OK: return
        case LT_ERR_UNSUPPORTED_ISA:
            throw RuntimeError.unsupportedInstructionSet(environment("LORTA_ISA") ?? "?")
        default:
            let isa = environment("LORTA_ISA") ?? ""
            if lt_isa_parse(isa) < 0 && !isa.isEmpty && isa.lowercased() != "auto" {
                throw RuntimeError.badEnvironment(variable: "LORTA_ISA", value: isa)
            }
            let gemm = environment("LORTA_GEMM") ?? ""
            if !gemm.isEmpty && lt_gemm_backend_parse(gemm) < 0 {
                throw RuntimeError.badEnvironment(variable: "LORTA_GEMM", value: gemm)
            }
            let decode = environment("LORTA_DECODE") ?? ""
            if !decode.isEmpty && lt_decode_arith_parse(decode) < 0 {
                throw RuntimeError.badEnvironment(variable: "LORTA_DECODE", value: decode)
            }
            throw RuntimeError.badEnvironment(
                variable: "LORTA_NUM_THREADS", value: environment("LORTA_NUM_THREADS") ?? "")
        }
    }

    /// Threads used by the OpenMP kernels and by OpenBLAS.
    public static var threadCount: Int { Int(lt_get_num_threads()) }

    /// Sets the thread count of both OpenMP and OpenBLAS. Results do not depend on it.
    public static func setThreadCount(_ n: Int) throws {
        guard (1...4096).contains(n) else { throw RuntimeError.invalidThreadCount(n) }
        _ = lt_runtime_init()
        _ = lt_set_num_threads(Int32(n))
    }

    /// The instruction set the kernels use now.
    public static var instructionSet: InstructionSet {
        InstructionSet(cValue: Int32(lt_isa_active().rawValue)) ?? .scalar
    }

    /// Instruction sets this CPU can run, from the most portable to the fastest.
    public static var availableInstructionSets: [InstructionSet] {
        InstructionSet.allCases.filter { lt_isa_supported($0.cValue) != 0 }
    }

    /// Forces one instruction set (as `LORTA_ISA` does).
    public static func setInstructionSet(_ isa: InstructionSet) throws {
        _ = lt_runtime_init()
        guard lt_isa_set(isa.cValue) == LT_OK else {
            throw RuntimeError.unsupportedInstructionSet(isa.rawValue)
        }
    }

    /// Runs `body` with `isa` forced, restoring the previous choice afterwards.
    public static func withInstructionSet<R>(_ isa: InstructionSet, _ body: () throws -> R) throws -> R {
        let previous = instructionSet
        try setInstructionSet(isa)
        defer { _ = lt_isa_set(previous.cValue) }
        return try body()
    }

    /// The float32 GEMM the kernels use now (`LORTA_GEMM`; default ``GEMMBackend/lorta``).
    public static var gemmBackend: GEMMBackend {
        _ = lt_runtime_init()
        return lt_gemm_backend_active() == LT_GEMM_OPENBLAS ? .openblas : .lorta
    }

    /// Selects the float32 GEMM (as `LORTA_GEMM` does). Process-wide: set it between
    /// computations, not while another thread runs kernels.
    public static func setGEMMBackend(_ backend: GEMMBackend) {
        _ = lt_runtime_init()
        _ = lt_gemm_backend_set(backend.cValue)
    }

    /// Runs `body` with `backend` selected, restoring the previous one afterwards.
    public static func withGEMMBackend<R>(_ backend: GEMMBackend, _ body: () throws -> R) rethrows -> R {
        let previous = gemmBackend
        setGEMMBackend(backend)
        defer { setGEMMBackend(previous) }
        return try body()
    }

    /// The arithmetic of decode-sized products with quantized weights (`LORTA_DECODE`; default
    /// ``DecodeArithmetic/float``).
    public static var decodeArithmetic: DecodeArithmetic {
        _ = lt_runtime_init()
        return lt_decode_arith_active() == LT_DECODE_INT8 ? .int8 : .float
    }

    /// Selects the decode arithmetic (as `LORTA_DECODE` does). Process-wide: set it between
    /// computations, not while another thread runs kernels.
    public static func setDecodeArithmetic(_ arithmetic: DecodeArithmetic) {
        _ = lt_runtime_init()
        _ = lt_decode_arith_set(arithmetic.cValue)
    }

    /// Runs `body` with `arithmetic` selected, restoring the previous one afterwards.
    public static func withDecodeArithmetic<R>(_ arithmetic: DecodeArithmetic, _ body: () throws -> R) rethrows -> R {
        let previous = decodeArithmetic
        setDecodeArithmetic(arithmetic)
        defer { setDecodeArithmetic(previous) }
        return try body()
    }

    /// Runs `body` with `n` threads, restoring the previous count afterwards.
    public static func withThreadCount<R>(_ n: Int, _ body: () throws -> R) throws -> R {
        let previous = threadCount
        try setThreadCount(n)
        defer { _ = lt_set_num_threads(Int32(previous)) }
        return try body()
    }

    static func environment(_ name: String) -> String? {
        guard let p = getenv(name) else { return nil }
        return String(cString: p)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
