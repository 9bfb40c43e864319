import CKernels
import Foundation
import Testing
@testable import LoRTA

@Suite("Runtime", .serialized)
struct RuntimeTests {
    /// The ISA in force is the best this CPU has (the last of `availableInstructionSets`,
    /// `lt_isa_best`), or the one LORTA_ISA names when the run sets it; a child process without
    /// LORTA_ISA reports the best one too (the environment is read once per process).
    @Test func scalarAlwaysAvailableAndBestIsActiveByDefault() throws {
        try Runtime.initialize()
        let available = Runtime.availableInstructionSets
        #expect(available.first == .scalar)
        let best = try #require(available.last)
        #expect(InstructionSet(cValue: Int32(lt_isa_best().rawValue)) == best)
        let fromEnvironment = Runtime.environment("LORTA_ISA").flatMap { $0.lowercased() == "auto" || $0.isEmpty ? nil : $0 }
        let expected = try fromEnvironment.map { try #require(InstructionSet(cValue: lt_isa_parse($0)), "LORTA_ISA=\($0)") } ?? best
        #expect(Runtime.instructionSet == expected, "active \(Runtime.instructionSet), expected \(expected) (LORTA_ISA=\(fromEnvironment ?? "unset"))")
        print("ISA coverage: RuntimeTests.swift: active \(Runtime.instructionSet), best on this CPU \(best), available \(available.map(\.rawValue).joined(separator: " "))")
        #expect(Runtime.threadCount >= 1)

        let r = try CLI.run(["info", "--json"], environment: ["LORTA_ISA": nil])
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try #require(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(obj["isa"] as? String == best.rawValue)
    }

    @Test func forcingEachAvailableISAWorksAndUnsupportedThrows() throws {
        for isa in Runtime.availableInstructionSets {
            try Runtime.withInstructionSet(isa) { #expect(Runtime.instructionSet == isa) }
        }
        for isa in InstructionSet.allCases where !Runtime.availableInstructionSets.contains(isa) {
            #expect(throws: RuntimeError.unsupportedInstructionSet(isa.rawValue)) {
                try Runtime.setInstructionSet(isa)
            }
        }
    }

    @Test func threadCountRoundTripsAndRejectsBadValues() throws {
        try Runtime.withThreadCount(1) { #expect(Runtime.threadCount == 1) }
        #expect(throws: RuntimeError.invalidThreadCount(0)) { try Runtime.setThreadCount(0) }
    }

    @Test func isaNamesParse() {
        #expect(lt_isa_parse("AVX512") == Int32(LT_ISA_AVX512.rawValue))
        #expect(lt_isa_parse("scalar") == Int32(LT_ISA_SCALAR.rawValue))
        #expect(lt_isa_parse("sse9") == -1)
        #expect(lt_isa_parse(nil) == -1)
    }

    @Test func environmentOverridesReachTheProcess() throws {
        // LORTA_ISA and LORTA_NUM_THREADS are read once per process: check them in a child.
        let r = try CLI.run(["info", "--json"], environment: ["LORTA_ISA": "scalar", "LORTA_NUM_THREADS": "1"])
        #expect(r.status == 0)
        let obj = try #require(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(obj["isa"] as? String == "scalar")
        #expect(obj["threads"] as? Int == 1)
        // LORTA_GEMM selects the float32 GEMM; without it the library's own one runs.
        for (value, expected) in [("openblas", "openblas"), (nil, "lorta"), ("auto", "lorta")] {
            let g = try CLI.run(["info", "--json"], environment: ["LORTA_GEMM": value])
            #expect(g.status == 0)
            let o = try #require(JSONSerialization.jsonObject(with: Data(g.stdout.utf8)) as? [String: Any])
            #expect(o["gemm"] as? String == expected, "LORTA_GEMM=\(value ?? "unset")")
        }
        // LORTA_DECODE selects the decode arithmetic of quantized weights; float by default.
        for (value, expected) in [("int8", "int8"), (nil, "float"), ("FLOAT", "float")] {
            let g = try CLI.run(["info", "--json"], environment: ["LORTA_DECODE": value])
            #expect(g.status == 0)
            let o = try #require(JSONSerialization.jsonObject(with: Data(g.stdout.utf8)) as? [String: Any])
            #expect(o["decode"] as? String == expected, "LORTA_DECODE=\(value ?? "unset")")
        }
    }

    @Test func badEnvironmentIsAClearErrorNotACrash() throws {
        let r = try CLI.run(["info"], environment: ["LORTA_ISA": "neon"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("LORTA_ISA"))
        let g = try CLI.run(["info"], environment: ["LORTA_GEMM": "mkl"])
        #expect(g.status != 0)
        #expect(g.stderr.contains("LORTA_GEMM"))
        let d = try CLI.run(["info"], environment: ["LORTA_DECODE": "int4"])
        #expect(d.status != 0)
        #expect(d.stderr.contains("LORTA_DECODE"))
        let t = try CLI.run(["info"], environment: ["LORTA_NUM_THREADS": "lots"])
        #expect(t.status != 0)
        #expect(t.stderr.contains("LORTA_NUM_THREADS"))
        if !Runtime.availableInstructionSets.contains(.avx512) {
            let u = try CLI.run(["info"], environment: ["LORTA_ISA": "avx512"])
            #expect(u.status != 0)
            #expect(u.stderr.contains("not supported"))
        }
    }
}

@Suite("BLAS core check")
struct BLASDiagnosticsTests {
    @Test func coreLevels() {
        #expect(lt_blas_core_level("Prescott") == 0)
        #expect(lt_blas_core_level("sandybridge") == 1)
        #expect(lt_blas_core_level("Haswell") == 2)
        #expect(lt_blas_core_level("SkylakeX") == 3)
        #expect(lt_blas_core_level("cooperlake") == 3)
        #expect(lt_blas_core_level("no-such-core") == -1)
    }

    @Test func reexecutionDecision() {
        var d = BLASDiagnostics(activeCore: "Prescott", configuration: "", activeCoreLevel: 0, cpuLevel: 3,
                                recommendedCoreType: "SkylakeX", coreTypeFromEnvironment: nil)
        #expect(d.isCoreWeakerThanCPU && d.shouldReexecute && d.warning != nil)
        d.coreTypeFromEnvironment = "Prescott"       // the user's choice is never overridden
        #expect(!d.shouldReexecute && d.warning != nil)
        d = BLASDiagnostics(activeCore: "SkylakeX", configuration: "", activeCoreLevel: 3, cpuLevel: 3,
                            recommendedCoreType: "SkylakeX", coreTypeFromEnvironment: nil)
        #expect(!d.shouldReexecute && d.warning == nil)
        d.activeCoreLevel = nil                      // unknown core: do nothing
        #expect(!d.shouldReexecute)
    }

    @Test func cliRunsTheBestCoreWhenTheUserSetNothing() throws {
        // Whether OpenBLAS detected the CPU itself or lorta re-executed with OPENBLAS_CORETYPE,
        // the kernels in use must match the CPU's SIMD level.
        let r = try CLI.run(["info", "--json"], environment: ["OPENBLAS_CORETYPE": nil, "LORTA_REEXECUTED": nil])
        #expect(r.status == 0)
        let obj = try #require(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let blas = try #require(obj["blas"] as? [String: Any])
        #expect(blas["core_weaker_than_cpu"] as? Bool == false)
    }

    @Test func cliNeverOverridesTheUsersCoreType() throws {
        let r = try CLI.run(["info", "--json"], environment: ["OPENBLAS_CORETYPE": "Prescott", "LORTA_REEXECUTED": nil])
        let obj = try #require(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let blas = try #require(obj["blas"] as? [String: Any])
        #expect((blas["core"] as? String)?.lowercased() == "prescott")
        #expect(blas["reexecuted"] as? Bool == false)
    }
}

@Suite("Tensor")
struct TensorTests {
    @Test func matmulMatchesNaiveForEveryTransposition() throws {
        let (m, k, n) = (5, 7, 3)
        func make(_ r: Int, _ c: Int, _ seed: Int) throws -> Tensor {
            try Tensor((0..<(r * c)).map { Float(($0 * 37 + seed * 11) % 23) / 7 - 1.5 }, shape: [r, c])
        }
        let a = try make(m, k, 1), b = try make(k, n, 2)
        var expected = [Double](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n { for p in 0..<k { expected[i * n + j] += Double(a[i, p]) * Double(b[p, j]) } } }
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let aa = ta ? try a.transposed() : a, bb = tb ? try b.transposed() : b
            let c = try Tensor.matmul(aa, bb, transposeA: ta, transposeB: tb)
            #expect(c.shape == [m, n])
            for i in 0..<(m * n) { #expect(abs(Double(c[flat: i]) - expected[i]) < 1e-5) }
        }
        var wrong = try Tensor(zeros: [m, m])
        #expect(throws: TensorError.self) { try Tensor.matmul(a, b, into: &wrong) }
        #expect(throws: TensorError.self) { try Tensor.matmul(a, a) }
    }

    @Test func copyOnWriteAndViews() throws {
        let a = try Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3])
        let v = try a.reshaped([3, 2])
        #expect(v.sharesStorage(with: a))
        var b = a
        b[0, 0] = 9
        #expect(a[0, 0] == 1 && b[0, 0] == 9 && !b.sharesStorage(with: a))
        #expect(throws: TensorError.countMismatch(shape: [4, 2], count: 6)) { try a.reshaped([4, 2]) }
        #expect(throws: TensorError.invalidShape([-1, 2])) { try Tensor(zeros: [-1, 2]) }
        #expect(throws: TensorError.countMismatch(shape: [2, 2], count: 3)) { try Tensor([1, 2, 3], shape: [2, 2]) }
        a.withUnsafeBufferPointer { #expect(Int(bitPattern: $0.baseAddress!) % 64 == 0) }
        #expect(try a.transposed().scalars == [1, 4, 2, 5, 3, 6])
    }
}
