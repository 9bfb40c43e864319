import ArgumentParser
import Foundation
import LoRTA

/// `lorta info`: version, SIMD paths, threads and the BLAS library in use.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the version, instruction sets, thread count and BLAS in use, or describe a model.")

    @Option(help: "Describe this model instead (a .gguf file or a Hugging Face directory): architecture, sizes, storage types, tokenizer.")
    var model: String?

    @Flag(help: "Print a JSON object instead of text.")
    var json = false

    func run() throws {
        do { try Runtime.initialize() } catch { throw ValidationError("\(error)") }
        if let model {
            try reportingErrors { try ModelInfo.print(path: model, json: json) }
            return
        }
        let blas = BLASDiagnostics.current
        if json {
            let object: [String: Any] = [
                "version": LoRTAVersion.string,
                "isa": Runtime.instructionSet.rawValue,
                "available_isas": Runtime.availableInstructionSets.map(\.rawValue),
                "threads": Runtime.threadCount,
                "gemm": Runtime.gemmBackend.rawValue,
                "decode": Runtime.decodeArithmetic.rawValue,
                "blas": [
                    "library": "OpenBLAS",
                    "core": blas.activeCore,
                    "core_level": blas.activeCoreLevel as Any,
                    "cpu_level": blas.cpuLevel,
                    "config": blas.configuration,
                    "recommended_coretype": blas.recommendedCoreType as Any,
                    "openblas_coretype_env": blas.coreTypeFromEnvironment as Any,
                    "core_weaker_than_cpu": blas.isCoreWeakerThanCPU,
                    "reexecuted": Launcher.wasReexecuted,
                ] as [String: Any],
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        let levels = ["SSE", "AVX", "AVX2", "AVX-512"]
        print("lorta \(LoRTAVersion.string)")
        print("isa: \(Runtime.instructionSet) (available: \(Runtime.availableInstructionSets.map(\.rawValue).joined(separator: ", ")); override with LORTA_ISA)")
        print("threads: \(Runtime.threadCount) (OpenMP and OpenBLAS; override with LORTA_NUM_THREADS)")
        print("gemm: \(Runtime.gemmBackend) (float32 products: lorta = the library's packed GEMM, openblas = cblas_sgemm; override with LORTA_GEMM)")
        print("decode: \(Runtime.decodeArithmetic) (1–8-row products with Q8_0/Q4_0/Q4_1 weights: float = exact dequantized weights, int8 = int8 activations as in llama.cpp; override with LORTA_DECODE)")
        let coreLevel = blas.activeCoreLevel.map { levels[$0] } ?? "unknown"
        print("blas: OpenBLAS, core \(blas.activeCore) (\(coreLevel)); CPU supports \(levels[blas.cpuLevel])")
        print("blas config: \(blas.configuration)")
        if let env = blas.coreTypeFromEnvironment {
            print("OPENBLAS_CORETYPE=\(env)\(Launcher.wasReexecuted ? " (set by lorta: OpenBLAS misdetected this CPU)" : "")")
        }
        if let warning = blas.warning { print("warning: \(warning)") }
    }
}
