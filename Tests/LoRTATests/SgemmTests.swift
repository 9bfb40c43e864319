import Foundation
import Testing
import CBLAS
import CKernels
@testable import LoRTA

/// lt_sgemm (lt_gemm.h): C = alpha · op(A) · op(B) + beta · C on the library's packed GEMM core,
/// checked against a naive float64 product written here, against OpenBLAS (Tensor.matmul), across
/// thread counts (bitwise) and ISAs (AVX2 = AVX-512 bitwise; portable within the bound).
///
/// Error bound. Each element of P = op(A)·op(B) is a float32 sum of k products in some order
/// (fma or separately rounded); then alpha·P and beta·C are rounded and summed. For any order,
/// |C − exact| <= γ_{k+4} · (|alpha| · Σ|a·b| + |beta · c_old|), γ_m = m·u / (1 − m·u),
/// u = 2⁻²⁴ (Higham §3.1; the +4 covers the two products and the sum of the epilogue). A wrong
/// or missing term would be about Σ|a·b| / k, far above the bound for the k used here (<= 800).
///
/// Test data: A and B rows carry NaN padding (reading it would poison a result), C rows a
/// sentinel padding that must survive; beta = 0 cases start from a C full of NaN (must be
/// overwritten, never read).
@Suite("Float32 GEMM (lt_sgemm)", .serialized)
struct SgemmTests {
    static let sentinel: Float = 777

    static func gamma(_ terms: Int) -> Double {
        let u = 0x1p-24, m = Double(terms + 4)
        return m * u / (1 - m * u)
    }

    struct Case {
        let ta, tb: Bool
        let m, n, k: Int
        let lda, ldb, ldc: Int
        let a, b, c0: [Float]

        init(m: Int, n: Int, k: Int, ta: Bool, tb: Bool, seed: UInt64, cNaN: Bool = false, pad: Int = 3) {
            var rng = LoRATestRNG(seed: seed)
            self.m = m; self.n = n; self.k = k; self.ta = ta; self.tb = tb
            let (ar, ac) = ta ? (k, m) : (m, k)
            let (br, bc) = tb ? (n, k) : (k, n)
            lda = ac + pad; ldb = bc + pad + 1; ldc = n + pad + 2
            a = rng.padded(rows: ar, cols: ac, ld: lda)
            b = rng.padded(rows: br, cols: bc, ld: ldb)
            var c = rng.padded(rows: m, cols: n, ld: ldc, pad: SgemmTests.sentinel)
            if cNaN { for i in 0..<m { for j in 0..<n { c[i * ldc + j] = .nan } } }
            c0 = c
        }

        func A(_ i: Int, _ p: Int) -> Float { ta ? a[p * lda + i] : a[i * lda + p] }
        func B(_ p: Int, _ j: Int) -> Float { tb ? b[j * ldb + p] : b[p * ldb + j] }

        var workspaceFloats: Int {
            var f: Int64 = -1
            precondition(lt_sgemm_workspace_size(Int64(m), Int64(n), Int64(k), &f) == LT_OK)
            return Int(f)
        }

        func run(alpha: Float, beta: Float, workspace: Int? = nil) -> (lt_status, [Float]) {
            var c = c0
            let floats = workspace ?? workspaceFloats
            var ws = [Float](repeating: .nan, count: max(floats, 1))
            let st = a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    c.withUnsafeMutableBufferPointer { pc in
                        ws.withUnsafeMutableBufferPointer { pw in
                            lt_sgemm(ta ? 1 : 0, tb ? 1 : 0, Int64(m), Int64(n), Int64(k), alpha, pa.baseAddress, Int64(lda),
                                     pb.baseAddress, Int64(ldb), beta, pc.baseAddress, Int64(ldc), pw.baseAddress, Int64(floats))
                        }
                    }
                }
            }
            return (st, c)
        }

        /// The same product through lt_gemm_f32 (the kernels' GEMM, on the active backend).
        func runManaged(alpha: Float, beta: Float) -> (lt_status, [Float]) {
            var c = c0
            let st = a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    c.withUnsafeMutableBufferPointer { pc in
                        lt_gemm_f32(ta ? 1 : 0, tb ? 1 : 0, Int64(m), Int64(n), Int64(k), alpha, pa.baseAddress, Int64(lda),
                                    pb.baseAddress, Int64(ldb), beta, pc.baseAddress, Int64(ldc))
                    }
                }
            }
            return (st, c)
        }

        /// The same product through OpenBLAS's cblas_sgemm, called directly.
        func runOpenBLAS(alpha: Float, beta: Float) -> [Float] {
            var c = c0
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    c.withUnsafeMutableBufferPointer { pc in
                        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                                    Int32(m), Int32(n), Int32(k), alpha, pa.baseAddress, Int32(lda), pb.baseAddress,
                                    Int32(ldb), beta, pc.baseAddress, Int32(ldc))
                    }
                }
            }
            return c
        }

        /// float64 P and Σ|a·b| (m × n, contiguous).
        func reference() -> (value: [Double], scale: [Double]) {
            var v = [Double](repeating: 0, count: m * n), s = v
            for i in 0..<m {
                for p in 0..<k {
                    let x = Double(A(i, p))
                    for j in 0..<n {
                        let t = x * Double(B(p, j))
                        v[i * n + j] += t; s[i * n + j] += abs(t)
                    }
                }
            }
            return (v, s)
        }

        /// Checks C against alpha·P + beta·C0 (beta = 0: C0 not used) within the bound, and the
        /// padding untouched. Returns the worst error relative to the bound's scale.
        @discardableResult
        func check(_ out: [Float], alpha: Float, beta: Float, reference r: (value: [Double], scale: [Double]),
                   _ what: String) -> Double {
            var worst = 0.0
            for i in 0..<m {
                for j in 0..<n {
                    let old = beta == 0 ? 0 : Double(beta) * Double(c0[i * ldc + j])
                    let want = Double(alpha) * r.value[i * n + j] + old
                    let scale = abs(Double(alpha)) * r.scale[i * n + j] + abs(old)
                    let got = Double(out[i * ldc + j])
                    let err = abs(got - want)
                    worst = max(worst, scale > 0 ? err / scale : err)
                    if !(err <= SgemmTests.gamma(k) * scale) {
                        Issue.record("\(what): C[\(i), \(j)] = \(got), want \(want) (scale \(scale))")
                        return worst
                    }
                }
                for j in n..<ldc where out[i * ldc + j].bitPattern != SgemmTests.sentinel.bitPattern {
                    Issue.record("\(what): padding C[\(i), \(j)] overwritten")
                    return worst
                }
            }
            return worst
        }
    }

    /// Odd shapes: 1×1×1, ragged edges of every tile kind (8×48, 6×16, 4×16), k crossing a
    /// chunk (384), several M-blocks (mc <= 192) and N-panels (nc <= 384).
    static let shapes: [(m: Int, n: Int, k: Int)] = [
        (1, 1, 1), (2, 3, 5), (7, 17, 3), (9, 49, 33), (13, 50, 130), (8, 48, 16), (6, 16, 7),
        (33, 97, 385), (200, 60, 40), (50, 400, 20), (197, 389, 9),
    ]
    static let scalings: [(alpha: Float, beta: Float)] = [(1, 0), (1, 1), (-0.5, 2), (0.75, 0)]

    static func checkAll(_ isa: InstructionSet) throws {
        try Runtime.withInstructionSet(isa) {
            var worst = 0.0
            for (index, s) in shapes.enumerated() {
                for ta in [false, true] {
                    for tb in [false, true] {
                        for (si, sc) in scalings.enumerated() {
                            let c = Case(m: s.m, n: s.n, k: s.k, ta: ta, tb: tb,
                                         seed: UInt64(index * 64 + si * 4) + (ta ? 2 : 0) + (tb ? 1 : 0),
                                         cNaN: sc.beta == 0)
                            let what = "\(isa) \(s.m)×\(s.n)×\(s.k) ta=\(ta) tb=\(tb) alpha=\(sc.alpha) beta=\(sc.beta)"
                            let (st, out) = c.run(alpha: sc.alpha, beta: sc.beta)
                            #expect(st == LT_OK, "\(what): status \(st)")
                            worst = max(worst, c.check(out, alpha: sc.alpha, beta: sc.beta, reference: c.reference(), what))
                        }
                    }
                }
            }
            print(String(format: "lt_sgemm %@: worst |error| / (|alpha|Σ|a·b| + |beta·c|) = %.2e", isa.rawValue, worst))
        }
    }

    // MARK: accuracy per ISA

    @Test("portable kernel matches a float64 product (odd shapes, all transposes, alpha/beta, beta = 0 over NaN)")
    func scalarMatchesReference() throws { try Self.checkAll(.scalar) }

    @Test("AVX2 kernel matches a float64 product", .enabled(if: Runtime.availableInstructionSets.contains(.avx2)))
    func avx2MatchesReference() throws { try Self.checkAll(.avx2) }

    @Test("AVX-512 kernel matches a float64 product", .enabled(if: Runtime.availableInstructionSets.contains(.avx512)))
    func avx512MatchesReference() throws { try Self.checkAll(.avx512) }

    @Test("AVX2 and AVX-512 give identical bits; the portable kernel is within the bound of them")
    func isaAgreement() throws {
        let isas = testedInstructionSets()
        for (index, s) in [(37, 101, 70), (64, 96, 400), (250, 130, 64)].enumerated() {
            for ta in [false, true] {
                for tb in [false, true] {
                    let c = Case(m: s.0, n: s.1, k: s.2, ta: ta, tb: tb, seed: 700 + UInt64(index))
                    let what = "\(s.0)×\(s.1)×\(s.2) ta=\(ta) tb=\(tb)"
                    var results: [InstructionSet: [Float]] = [:]
                    for isa in isas {
                        results[isa] = try Runtime.withInstructionSet(isa) { c.run(alpha: 1, beta: 1).1 }
                    }
                    if let x = results[.avx2], let y = results[.avx512] {
                        #expect(LoRAReference.bitwiseEqual(x, y),
                                "\(what): AVX2 vs AVX-512 differ in \(LoRAReference.bitDifferences(x, y)) values")
                    }
                    let r = c.reference()
                    for (isa, out) in results where isa != .scalar {
                        guard let sc = results[.scalar] else { continue }
                        for i in 0..<c.m {
                            for j in 0..<c.n {
                                let tol = 2 * Self.gamma(c.k) * (r.scale[i * c.n + j] + abs(Double(c.c0[i * c.ldc + j])))
                                let d = abs(Double(out[i * c.ldc + j]) - Double(sc[i * c.ldc + j]))
                                if !(d <= tol) { Issue.record("\(what) \(isa) vs scalar at [\(i), \(j)]: \(d) > \(tol)"); return }
                            }
                        }
                    }
                }
            }
        }
    }

    // MARK: against OpenBLAS

    @Test("agrees with OpenBLAS sgemm (Tensor.matmul) within twice the bound, all transposes")
    func matchesOpenBLAS() throws {
        for ta in [false, true] {
            for tb in [false, true] {
                let (m, n, k) = (130, 200, 150)
                let c = Case(m: m, n: n, k: k, ta: ta, tb: tb, seed: 4000 + (ta ? 2 : 0) + (tb ? 1 : 0), pad: 0)
                // pad 0 → A and B are dense (lda = width), B's ld = width + 1: repack B densely.
                let (ar, ac) = ta ? (k, m) : (m, k)
                let (br, bc) = tb ? (n, k) : (k, n)
                let at = try Tensor(c.a, shape: [ar, ac])
                var bd = [Float](); for r in 0..<br { bd += c.b[(r * c.ldb)..<(r * c.ldb + bc)] }
                let bt = try Tensor(bd, shape: [br, bc])
                let blas = try Runtime.withGEMMBackend(.openblas) {
                    try Tensor.matmul(at, bt, transposeA: ta, transposeB: tb).scalars
                }
                #expect(LoRAReference.bitwiseEqual(blas, c.runOpenBLAS(alpha: 1, beta: 0).enumerated()
                    .filter { $0.offset % c.ldc < n }.map(\.element)), "Tensor.matmul on openblas is not cblas_sgemm")
                let (st, out) = c.run(alpha: 1, beta: 0)
                #expect(st == LT_OK)
                let r = c.reference()
                for i in 0..<m {
                    for j in 0..<n {
                        let tol = 2 * Self.gamma(k) * r.scale[i * n + j]
                        let d = abs(Double(out[i * c.ldc + j]) - Double(blas[i * n + j]))
                        if !(d <= tol) { Issue.record("ta=\(ta) tb=\(tb) [\(i), \(j)]: ours \(out[i * c.ldc + j]) vs OpenBLAS \(blas[i * n + j])"); return }
                    }
                }
            }
        }
    }

    // MARK: threads and workspace

    @Test("1 and 2 threads give bitwise identical results, and thread 1 really worked (every ISA, all transposes)")
    func threadCountIndependence() throws {
        for isa in testedInstructionSets() {
            for (index, s) in [(300, 500, 700), (1152, 384, 40), (97, 1000, 390)].enumerated() {
                for ta in [false, true] {
                    for tb in [false, true] {
                        let c = Case(m: s.0, n: s.1, k: s.2, ta: ta, tb: tb, seed: 9000 + UInt64(index))
                        let what = "\(isa) \(s.0)×\(s.1)×\(s.2) ta=\(ta) tb=\(tb)"
                        var tasks: Int64 = 0
                        var team: Int32 = 0
                        try Runtime.withInstructionSet(isa) {
                            try Runtime.withThreadCount(2) {
                                #expect(lt_sgemm_tasks(Int64(s.0), Int64(s.1), Int64(s.2), &tasks, &team) == LT_OK)
                            }
                        }
                        #expect(team == 1 && tasks >= 4 && tasks % 2 == 0, "\(what): \(tasks) tasks, team \(team)")
                        let run = { (threads: Int) throws -> ([Float], Int) in
                            try Runtime.withInstructionSet(isa) {
                                try Runtime.withThreadCount(threads) {
                                    withThreadsSeen { c.run(alpha: 0.5, beta: 1.5).1 }
                                }
                            }
                        }
                        // Tasks are handed out dynamically: on a busy machine thread 0 may take them
                        // all before thread 1 wakes. Every 2-thread run is compared; runs repeat
                        // (up to 8) until one had thread 1 take a task.
                        let (one, _) = try run(1)
                        var seen = 0
                        for _ in 0..<8 where seen < 2 {
                            let (two, s) = try run(2)
                            seen = s
                            #expect(LoRAReference.bitwiseEqual(one, two),
                                    "\(what): 1 vs 2 threads differ in \(LoRAReference.bitDifferences(one, two)) values")
                        }
                        #expect(seen == 2, "\(what): thread 1 never ran a task in 8 runs")
                    }
                }
            }
        }
    }

    /// The full size is the threads' shares plus B packed once for the team (K = 500 spans two
    /// chunks and M = 300 several blocks, so the full workspace takes the shared-B path); one
    /// thread's share alone packs B per task. Both must give the same bits.
    @Test("a workspace of one thread's share gives the same bits as the full one; less is rejected")
    func smallerWorkspace() throws {
        let c = Case(m: 300, n: 400, k: 500, ta: false, tb: true, seed: 77)
        try Runtime.withThreadCount(2) {
            let full = c.workspaceFloats
            let alone = try Runtime.withThreadCount(1) { c.workspaceFloats }
            let share = full - alone                       // the shared B does not grow with threads
            #expect(share > 0 && alone - share == 432 * 500, "shared B: round_up(400, 48) × 500 floats")
            let (s1, a) = c.run(alpha: 1, beta: 0)
            let (s2, b) = c.run(alpha: 1, beta: 0, workspace: share)
            #expect(s1 == LT_OK && s2 == LT_OK)
            #expect(LoRAReference.bitwiseEqual(a, b))
            let (s3, d) = c.run(alpha: 1, beta: 0, workspace: share - 1)
            #expect(s3 == LT_ERR_INVALID_ARGUMENT)
            #expect(LoRAReference.bitwiseEqual(d, c.c0), "a rejected call wrote C")
        }
    }

    // MARK: empty products and arguments

    @Test("k = 0 and alpha = 0 give beta · C without reading A or B (NaN there stays out); m = 0 / n = 0 touch nothing")
    func emptyProducts() throws {
        for (alpha, k) in [(Float(1), 0), (Float(0), 5)] {
            let c = Case(m: 4, n: 6, k: k, ta: false, tb: false, seed: 5)
            var a = c.a, b = c.b
            for i in a.indices { a[i] = .nan }
            for i in b.indices { b[i] = .nan }
            for beta: Float in [0, 1, -2] {
                var out = c.c0
                let st = a.withUnsafeBufferPointer { pa in
                    b.withUnsafeBufferPointer { pb in
                        lt_sgemm(0, 0, 4, 6, Int64(k), alpha, pa.baseAddress, Int64(c.lda), pb.baseAddress, Int64(c.ldb),
                                 beta, &out, Int64(c.ldc), nil, 0)
                    }
                }
                #expect(st == LT_OK)
                for i in 0..<4 {
                    for j in 0..<c.ldc {
                        let old = c.c0[i * c.ldc + j]
                        let want = j >= 6 ? old : (beta == 0 ? 0 : beta * old)
                        #expect(out[i * c.ldc + j].bitPattern == want.bitPattern, "alpha \(alpha) k \(k) beta \(beta) [\(i), \(j)]")
                    }
                }
            }
        }
        var f: Int64 = -1
        #expect(lt_sgemm_workspace_size(5, 7, 0, &f) == LT_OK && f == 0)
        #expect(lt_sgemm_workspace_size(0, 7, 3, &f) == LT_OK && f == 0)
        #expect(lt_sgemm(0, 0, 0, 7, 3, 1, nil, 3, nil, 7, 0, nil, 7, nil, 0) == LT_OK)
        #expect(lt_sgemm(1, 1, 5, 0, 3, 1, nil, 5, nil, 3, 0, nil, 1, nil, 0) == LT_OK)
    }

    @Test("invalid arguments give the right status and write nothing")
    func invalidArguments() throws {
        let c = Case(m: 20, n: 30, k: 40, ta: false, tb: false, seed: 3)
        let ws = c.workspaceFloats
        func call(ta: Int32 = 0, tb: Int32 = 0, m: Int64 = 20, n: Int64 = 30, k: Int64 = 40, lda: Int64? = nil,
                  ldb: Int64? = nil, ldc: Int64? = nil, nullA: Bool = false, nullB: Bool = false, nullC: Bool = false,
                  nullW: Bool = false, wsFloats: Int? = nil) -> lt_status {
            var out = c.c0
            var w = [Float](repeating: 0, count: ws)
            let st = c.a.withUnsafeBufferPointer { pa in
                c.b.withUnsafeBufferPointer { pb in
                    out.withUnsafeMutableBufferPointer { pc in
                        w.withUnsafeMutableBufferPointer { pw in
                            lt_sgemm(ta, tb, m, n, k, 1, nullA ? nil : pa.baseAddress, lda ?? Int64(c.lda),
                                     nullB ? nil : pb.baseAddress, ldb ?? Int64(c.ldb), 0, nullC ? nil : pc.baseAddress,
                                     ldc ?? Int64(c.ldc), nullW ? nil : pw.baseAddress, Int64(wsFloats ?? ws))
                        }
                    }
                }
            }
            #expect(LoRAReference.bitwiseEqual(out, c.c0) || st == LT_OK, "C written by a failing call")
            return st
        }
        #expect(call() == LT_OK)
        #expect(call(ta: 2) == LT_ERR_INVALID_ARGUMENT)
        #expect(call(tb: -1) == LT_ERR_INVALID_ARGUMENT)
        #expect(call(m: -1) == LT_ERR_INVALID_ARGUMENT)
        #expect(call(n: -1) == LT_ERR_INVALID_ARGUMENT)
        #expect(call(k: -1) == LT_ERR_INVALID_ARGUMENT)
        #expect(call(lda: 39) == LT_ERR_INVALID_ARGUMENT)            // < k
        #expect(call(ldb: 29) == LT_ERR_INVALID_ARGUMENT)            // < n
        #expect(call(ldc: 29) == LT_ERR_INVALID_ARGUMENT)            // < n
        #expect(call(ta: 1, lda: 19) == LT_ERR_INVALID_ARGUMENT)     // Aᵀ stored k × m: lda >= m
        #expect(call(tb: 1, ldb: 39) == LT_ERR_INVALID_ARGUMENT)     // Bᵀ stored n × k: ldb >= k
        #expect(call(m: 1 << 40, ldc: 1 << 40) == LT_ERR_INVALID_ARGUMENT)    // m · ldc overflows
        #expect(call(k: 1 << 40, ldb: 1 << 40) == LT_ERR_INVALID_ARGUMENT)    // k · ldb overflows
        #expect(call(wsFloats: 0) == LT_ERR_INVALID_ARGUMENT)
        #expect(call(nullA: true) == LT_ERR_NULL_POINTER)
        #expect(call(nullB: true) == LT_ERR_NULL_POINTER)
        #expect(call(nullC: true) == LT_ERR_NULL_POINTER)
        #expect(call(nullW: true) == LT_ERR_NULL_POINTER)
        var f: Int64 = 0
        #expect(lt_sgemm_workspace_size(-1, 2, 3, &f) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_sgemm_workspace_size(1, 2, 3, nil) == LT_ERR_NULL_POINTER)
        var t: Int64 = 0
        var team: Int32 = 0
        #expect(lt_sgemm_tasks(1, -2, 3, &t, &team) == LT_ERR_INVALID_ARGUMENT)
    }

    // MARK: lt_gemm_f32, the kernels' GEMM, and the backend switch (LORTA_GEMM)

    @Test("lt_gemm_f32 gives lt_sgemm's bits on the lorta backend (its per-thread buffer grown and reused, on any thread; narrow outputs computed transposed) and cblas_sgemm's on openblas")
    func managedEntryFollowsTheBackend() throws {
        // Small, large (the buffer grows), small again (reused), every transpose; beta = 0 over NaN.
        let shapes = [(9, 49, 33), (300, 500, 700), (7, 17, 3)]
        for (index, s) in shapes.enumerated() {
            for ta in [false, true] {
                for tb in [false, true] {
                    for (alpha, beta, nanC) in [(Float(1), Float(0), true), (0.5, 1.5, false)] {
                        let c = Case(m: s.0, n: s.1, k: s.2, ta: ta, tb: tb, seed: 12_000 + UInt64(index), cNaN: nanC)
                        let what = "\(s.0)×\(s.1)×\(s.2) ta=\(ta) tb=\(tb) alpha=\(alpha) beta=\(beta)"
                        let (st, explicit) = c.run(alpha: alpha, beta: beta)
                        #expect(st == LT_OK)
                        let (ours, oursStatus) = Runtime.withGEMMBackend(.lorta) {
                            (c.runManaged(alpha: alpha, beta: beta).1, Runtime.gemmBackend)
                        }
                        #expect(oursStatus == .lorta)
                        #expect(LoRAReference.bitwiseEqual(ours, explicit), "\(what): lorta backend differs from lt_sgemm")
                        let (blasStatus, blas) = Runtime.withGEMMBackend(.openblas) { c.runManaged(alpha: alpha, beta: beta) }
                        #expect(blasStatus == LT_OK)
                        #expect(LoRAReference.bitwiseEqual(blas, c.runOpenBLAS(alpha: alpha, beta: beta)),
                                "\(what): openblas backend differs from cblas_sgemm")
                        c.check(blas, alpha: alpha, beta: beta, reference: c.reference(), "\(what) openblas")
                    }
                }
            }
        }
        // Narrow outputs (n <= half the tile width) are computed transposed: still lt_sgemm's bits,
        // on every ISA (LoRA's dB = s·dYᵀT is 384 × 8 × 2048 at MiniLM's step).
        for isa in testedInstructionSets() {
            for (index, s) in [(384, 8, 2048), (300, 5, 700), (97, 16, 390), (2048, 8, 384), (64, 1, 3)].enumerated() {
                for ta in [false, true] {
                    for tb in [false, true] {
                        for (alpha, beta, nanC) in [(Float(1), Float(0), true), (0.5, 1.5, false), (1, 1, false), (-2, 0, true)] {
                            let c = Case(m: s.0, n: s.1, k: s.2, ta: ta, tb: tb, seed: 12_200 + UInt64(index), cNaN: nanC)
                            let what = "\(isa) narrow \(s.0)×\(s.1)×\(s.2) ta=\(ta) tb=\(tb) alpha=\(alpha) beta=\(beta)"
                            let (explicit, managed) = try Runtime.withInstructionSet(isa) {
                                (c.run(alpha: alpha, beta: beta), c.runManaged(alpha: alpha, beta: beta))
                            }
                            #expect(explicit.0 == LT_OK && managed.0 == LT_OK)
                            #expect(LoRAReference.bitwiseEqual(managed.1, explicit.1), "\(what): differs from lt_sgemm")
                        }
                    }
                }
            }
        }
        // Another thread has its own buffer and gets the same bits.
        let c = Case(m: 97, n: 1000, k: 390, ta: true, tb: false, seed: 12_100)
        let here = c.runManaged(alpha: 1, beta: 0).1
        nonisolated(unsafe) var there: [Float] = []
        let done = DispatchSemaphore(value: 0)
        let thread = Thread { there = c.runManaged(alpha: 1, beta: 0).1; done.signal() }
        thread.start()
        done.wait()
        #expect(Runtime.gemmBackend == .lorta)
        #expect(LoRAReference.bitwiseEqual(here, there), "another thread's call differs")
    }

    @Test("lt_gemm_f32 rejects what lt_sgemm rejects (writing nothing); sizes beyond 32 bits on openblas are an error, not a truncation")
    func managedEntryErrors() throws {
        let c = Case(m: 20, n: 30, k: 40, ta: false, tb: false, seed: 5)
        func call(ta: Int32 = 0, m: Int64 = 20, k: Int64 = 40, lda: Int64? = nil, ldc: Int64? = nil,
                  nullA: Bool = false, nullC: Bool = false) -> lt_status {
            var out = c.c0
            let st = c.a.withUnsafeBufferPointer { pa in
                c.b.withUnsafeBufferPointer { pb in
                    out.withUnsafeMutableBufferPointer { pc in
                        lt_gemm_f32(ta, 0, m, 30, k, 1, nullA ? nil : pa.baseAddress, lda ?? Int64(c.lda), pb.baseAddress,
                                    Int64(c.ldb), 0, nullC ? nil : pc.baseAddress, ldc ?? Int64(c.ldc))
                    }
                }
            }
            #expect(LoRAReference.bitwiseEqual(out, c.c0) || st == LT_OK, "C written by a failing call")
            return st
        }
        for backend in GEMMBackend.allCases {
            Runtime.withGEMMBackend(backend) {
                #expect(call() == LT_OK)
                #expect(call(ta: 2) == LT_ERR_INVALID_ARGUMENT)
                #expect(call(m: -1) == LT_ERR_INVALID_ARGUMENT)
                #expect(call(lda: 39) == LT_ERR_INVALID_ARGUMENT)
                #expect(call(ldc: 29) == LT_ERR_INVALID_ARGUMENT)
                #expect(call(m: 1 << 40, ldc: 1 << 40) == LT_ERR_INVALID_ARGUMENT)
                #expect(call(nullA: true) == LT_ERR_NULL_POINTER)
                #expect(call(nullC: true) == LT_ERR_NULL_POINTER)
            }
        }
        // k = 2³¹ passes the generic checks; OpenBLAS's 32-bit sizes cannot hold it (nothing is read).
        Runtime.withGEMMBackend(.openblas) {
            #expect(call(k: 1 << 31, lda: 1 << 31) == LT_ERR_INVALID_ARGUMENT)
        }
        #expect(lt_gemm_backend_set(2) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_gemm_backend_parse("openblas") == Int32(LT_GEMM_OPENBLAS.rawValue))
        #expect(lt_gemm_backend_parse("LORTA") == Int32(LT_GEMM_LORTA.rawValue))
        #expect(lt_gemm_backend_parse("auto") == Int32(LT_GEMM_LORTA.rawValue))
        #expect(lt_gemm_backend_parse("mkl") == -1)
        #expect(String(cString: lt_gemm_backend_name(Int32(LT_GEMM_OPENBLAS.rawValue))) == "openblas")
        #expect(lt_gemm_backend_name(7) == nil)
    }
}
