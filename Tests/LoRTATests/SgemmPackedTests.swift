import Foundation
import Testing
import CKernels
@testable import LoRTA

/// Prepacked B (lt_gemm.h): lt_sgemm_pack_b packs op(B) once, lt_sgemm_prepacked multiplies
/// without packing it. The products must give exactly lt_sgemm's bits — over shapes with one and
/// several k-chunks (kc <= 384), n not a multiple of any NR (16, 48), several N-panels and
/// M-blocks, both transposes, alpha/beta (beta = 0 over a C full of NaN), every ISA, 1 and 2
/// threads — and a buffer made for another ISA, k or n must be rejected. Test data as in
/// SgemmTests (NaN row padding in A and B, sentinel padding in C).
@Suite("Float32 GEMM with prepacked B (lt_sgemm_prepacked)", .serialized)
struct SgemmPackedTests {
    typealias Case = SgemmTests.Case

    /// B of a case packed under the active ISA (status, buffer).
    static func pack(_ c: Case, floats: Int? = nil) -> (lt_status, [Float]) {
        var size: Int64 = -1
        precondition(lt_sgemm_packed_b_size(c.tb ? 1 : 0, Int64(c.k), Int64(c.n), &size) == LT_OK)
        var p = [Float](repeating: .nan, count: max(floats ?? Int(size), 1))
        let st = c.b.withUnsafeBufferPointer { pb in
            p.withUnsafeMutableBufferPointer { pp in
                lt_sgemm_pack_b(c.tb ? 1 : 0, Int64(c.k), Int64(c.n), pb.baseAddress, Int64(c.ldb), pp.baseAddress,
                                Int64(floats ?? Int(size)))
            }
        }
        return (st, p)
    }

    static func workspaceFloats(_ m: Int, _ n: Int, _ k: Int) -> Int {
        var f: Int64 = -1
        precondition(lt_sgemm_prepacked_workspace_size(Int64(m), Int64(n), Int64(k), &f) == LT_OK)
        return Int(f)
    }

    /// The case's product with B from `packed`.
    static func run(_ c: Case, packed: [Float]?, alpha: Float, beta: Float, workspace: Int? = nil,
                    ta: Int32? = nil, m: Int? = nil, n: Int? = nil, k: Int? = nil, lda: Int? = nil, ldc: Int? = nil,
                    nullA: Bool = false, nullC: Bool = false, nullW: Bool = false) -> (lt_status, [Float]) {
        var out = c.c0
        let floats = workspace ?? workspaceFloats(c.m, c.n, c.k)
        var ws = [Float](repeating: .nan, count: max(floats, 1))
        let st = c.a.withUnsafeBufferPointer { pa in
            withLoRAOptional(packed) { pp in
                out.withUnsafeMutableBufferPointer { pc in
                    ws.withUnsafeMutableBufferPointer { pw in
                        lt_sgemm_prepacked(ta ?? (c.ta ? 1 : 0), Int64(m ?? c.m), Int64(n ?? c.n), Int64(k ?? c.k), alpha,
                                           nullA ? nil : pa.baseAddress, Int64(lda ?? c.lda), pp, beta,
                                           nullC ? nil : pc.baseAddress, Int64(ldc ?? c.ldc),
                                           nullW ? nil : pw.baseAddress, Int64(floats))
                    }
                }
            }
        }
        return (st, out)
    }

    /// m small and large (several M-blocks), k one chunk (<= 384, = 384) and several (385, 769,
    /// 1000), n below, at and past the NR widths and several N-panels (nc <= 384).
    static let shapes: [(m: Int, n: Int, k: Int)] = [
        (1, 1, 1), (2, 3, 5), (7, 17, 3), (9, 49, 33), (8, 48, 16), (13, 50, 130), (300, 130, 384),
        (33, 97, 385), (200, 60, 1000), (50, 400, 20), (197, 389, 9), (5, 1000, 769), (400, 47, 1000),
    ]
    static let scalings: [(alpha: Float, beta: Float)] = [(1, 0), (1, 1), (-0.5, 2), (0.75, 0)]

    /// Every shape × transposes × scalings, on `isa`, 1 and 2 threads: prepacked = lt_sgemm bitwise.
    static func checkAll(_ isa: InstructionSet) throws {
        try Runtime.withInstructionSet(isa) {
            for threads in [1, 2] {
                try Runtime.withThreadCount(threads) {
                    for (index, s) in shapes.enumerated() {
                        for ta in [false, true] {
                            for tb in [false, true] {
                                let (pst, packed) = pack(Case(m: s.m, n: s.n, k: s.k, ta: ta, tb: tb, seed: UInt64(index)))
                                #expect(pst == LT_OK)
                                for (si, sc) in scalings.enumerated() {
                                    let c = Case(m: s.m, n: s.n, k: s.k, ta: ta, tb: tb, seed: UInt64(index),
                                                 cNaN: sc.beta == 0)
                                    let what = "\(isa) \(threads)t \(s.m)×\(s.n)×\(s.k) ta=\(ta) tb=\(tb) #\(si)"
                                    let (s1, want) = c.run(alpha: sc.alpha, beta: sc.beta)
                                    let (s2, got) = run(c, packed: packed, alpha: sc.alpha, beta: sc.beta)
                                    #expect(s1 == LT_OK && s2 == LT_OK, "\(what): \(s1) \(s2)")
                                    #expect(LoRAReference.bitwiseEqual(want, got),
                                            "\(what): differs from lt_sgemm in \(LoRAReference.bitDifferences(want, got)) values")
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    // MARK: bits

    @Test("portable kernel: prepacked gives lt_sgemm's bits (shapes, transposes, alpha/beta, 1 and 2 threads)")
    func scalarMatchesSgemm() throws { try Self.checkAll(.scalar) }

    @Test("AVX2 kernel: prepacked gives lt_sgemm's bits", .enabled(if: cpuSupports(.avx2)))
    func avx2MatchesSgemm() throws { try Self.checkAll(.avx2) }

    @Test("AVX-512 kernel: prepacked gives lt_sgemm's bits", .enabled(if: cpuSupports(.avx512)))
    func avx512MatchesSgemm() throws { try Self.checkAll(.avx512) }

    @Test("model-sized products: 1 and 2 threads give lt_sgemm's bits and thread 1 really worked (every ISA)")
    func teamProducts() throws {
        for isa in testedInstructionSets() {
            for (index, s) in [(300, 500, 700), (97, 1000, 390), (640, 384, 384), (512, 192, 1536)].enumerated() {
                for tb in [false, true] {
                    let c = Case(m: s.0, n: s.1, k: s.2, ta: false, tb: tb, seed: 9100 + UInt64(index))
                    let what = "\(isa) \(s.0)×\(s.1)×\(s.2) tb=\(tb)"
                    try Runtime.withInstructionSet(isa) {
                        let want = try Runtime.withThreadCount(1) { c.run(alpha: 1, beta: 0).1 }
                        let (pst, packed) = try Runtime.withThreadCount(2) { Self.pack(c) }
                        #expect(pst == LT_OK)
                        let one = try Runtime.withThreadCount(1) { Self.run(c, packed: packed, alpha: 1, beta: 0).1 }
                        #expect(LoRAReference.bitwiseEqual(want, one), "\(what): 1 thread differs from lt_sgemm")
                        var seen = 0
                        for _ in 0..<8 where seen < 2 {
                            let (two, s) = try Runtime.withThreadCount(2) {
                                withThreadsSeen { Self.run(c, packed: packed, alpha: 1, beta: 0).1 }
                            }
                            seen = s
                            #expect(LoRAReference.bitwiseEqual(want, two), "\(what): 2 threads differ from lt_sgemm")
                        }
                        #expect(seen == 2, "\(what): thread 1 never ran a task in 8 runs")
                    }
                }
            }
        }
    }

    // MARK: sizes and workspace

    @Test("packed size is 16 + round_up(n, 48)·k for every ISA; the workspace is smaller than lt_sgemm's, one thread's share runs, less is rejected")
    func sizes() throws {
        var f: Int64 = -1
        for (k, n) in [(0, 5), (5, 0), (1, 1), (384, 1152), (1000, 97)] {
            for tb: Int32 in [0, 1] {
                #expect(lt_sgemm_packed_b_size(tb, Int64(k), Int64(n), &f) == LT_OK)
                #expect(f == Int64(16 + (n + 47) / 48 * 48 * k), "k \(k) n \(n)")
            }
        }
        let c = Case(m: 300, n: 400, k: 500, ta: false, tb: true, seed: 78)
        try Runtime.withThreadCount(2) {
            let full = Self.workspaceFloats(300, 400, 500)
            let alone = try Runtime.withThreadCount(1) { Self.workspaceFloats(300, 400, 500) }
            #expect(full == 2 * alone, "no shared area: the threads' shares only")
            #expect(full < c.workspaceFloats - 432 * 500, "smaller than lt_sgemm's minus its shared B")
            let want = c.run(alpha: 1, beta: 0).1
            let (_, packed) = Self.pack(c)
            let (s1, a) = Self.run(c, packed: packed, alpha: 1, beta: 0)
            let (s2, b) = Self.run(c, packed: packed, alpha: 1, beta: 0, workspace: alone)
            #expect(s1 == LT_OK && s2 == LT_OK)
            #expect(LoRAReference.bitwiseEqual(a, want) && LoRAReference.bitwiseEqual(b, want))
            let (s3, d) = Self.run(c, packed: packed, alpha: 1, beta: 0, workspace: alone - 1)
            #expect(s3 == LT_ERR_INVALID_ARGUMENT)
            #expect(LoRAReference.bitwiseEqual(d, c.c0), "a rejected call wrote C")
        }
        #expect(Self.workspaceFloats(0, 5, 5) == 0 && Self.workspaceFloats(5, 5, 0) == 0)
    }

    // MARK: misuse and arguments

    @Test("a buffer packed under another ISA, for another k or n, or never packed is rejected (C untouched)")
    func mismatchedBuffers() throws {
        let c = Case(m: 20, n: 70, k: 400, ta: false, tb: true, seed: 31)
        let isas = testedInstructionSets()
        var packs: [InstructionSet: [Float]] = [:]
        for isa in isas { packs[isa] = try Runtime.withInstructionSet(isa) { Self.pack(c).1 } }
        for isa in isas {
            try Runtime.withInstructionSet(isa) {
                for (other, p) in packs {
                    let (st, out) = Self.run(c, packed: p, alpha: 1, beta: 0)
                    if other == isa {
                        #expect(st == LT_OK && LoRAReference.bitwiseEqual(out, c.run(alpha: 1, beta: 0).1))
                    } else {
                        #expect(st == LT_ERR_INVALID_ARGUMENT, "packed for \(other), run under \(isa)")
                        #expect(LoRAReference.bitwiseEqual(out, c.c0), "a rejected call wrote C")
                    }
                    // an empty product (alpha = 0) checks the buffer too
                    #expect(Self.run(c, packed: p, alpha: 0, beta: 1).0 == (other == isa ? LT_OK : LT_ERR_INVALID_ARGUMENT))
                }
            }
        }
        let p = Self.pack(c).1
        // other k or n (sizes that fit in the buffer, so only the header can tell)
        #expect(Self.run(c, packed: p, alpha: 1, beta: 0, n: 69).0 == LT_ERR_INVALID_ARGUMENT)
        #expect(Self.run(c, packed: p, alpha: 1, beta: 0, k: 399).0 == LT_ERR_INVALID_ARGUMENT)
        // never packed: zeros, NaN, a damaged header word
        #expect(Self.run(c, packed: [Float](repeating: 0, count: p.count), alpha: 1, beta: 0).0 == LT_ERR_INVALID_ARGUMENT)
        #expect(Self.run(c, packed: [Float](repeating: .nan, count: p.count), alpha: 1, beta: 0).0 == LT_ERR_INVALID_ARGUMENT)
        for word in 0..<8 {
            var q = p
            q[2 * word] = Float(bitPattern: q[2 * word].bitPattern ^ 1)
            let (st, out) = Self.run(c, packed: q, alpha: 1, beta: 0)
            #expect(st == LT_ERR_INVALID_ARGUMENT, "header word \(word) damaged")
            #expect(LoRAReference.bitwiseEqual(out, c.c0))
        }
        // the data is position independent: a copy works
        let copy = Array(p)
        #expect(Self.run(c, packed: copy, alpha: 1, beta: 0).0 == LT_OK)
    }

    @Test("invalid arguments give the right status and write nothing; empty products give beta · C")
    func invalidArguments() throws {
        let c = Case(m: 20, n: 30, k: 40, ta: false, tb: false, seed: 3)
        let (pst, p) = Self.pack(c)
        #expect(pst == LT_OK)
        #expect(Self.run(c, packed: p, alpha: 1, beta: 0).0 == LT_OK)
        #expect(Self.run(c, packed: p, alpha: 1, beta: 0, ta: 2).0 == LT_ERR_INVALID_ARGUMENT)
        #expect(Self.run(c, packed: p, alpha: 1, beta: 0, m: -1).0 == LT_ERR_INVALID_ARGUMENT)
        #expect(Self.run(c, packed: p, alpha: 1, beta: 0, n: -1).0 == LT_ERR_INVALID_ARGUMENT)
        #expect(Self.run(c, packed: p, alpha: 1, beta: 0, k: -1).0 == LT_ERR_INVALID_ARGUMENT)
        #expect(Self.run(c, packed: p, alpha: 1, beta: 0, lda: 39).0 == LT_ERR_INVALID_ARGUMENT)
        #expect(Self.run(c, packed: p, alpha: 1, beta: 0, ldc: 29).0 == LT_ERR_INVALID_ARGUMENT)
        #expect(Self.run(c, packed: p, alpha: 1, beta: 0, ta: 1, lda: 19).0 == LT_ERR_INVALID_ARGUMENT)
        #expect(Self.run(c, packed: p, alpha: 1, beta: 0, m: 1 << 40, ldc: 1 << 40).0 == LT_ERR_INVALID_ARGUMENT)
        #expect(Self.run(c, packed: p, alpha: 1, beta: 0, workspace: 0).0 == LT_ERR_INVALID_ARGUMENT)
        #expect(Self.run(c, packed: nil, alpha: 1, beta: 0).0 == LT_ERR_NULL_POINTER)
        #expect(Self.run(c, packed: p, alpha: 1, beta: 0, nullA: true).0 == LT_ERR_NULL_POINTER)
        #expect(Self.run(c, packed: p, alpha: 1, beta: 0, nullC: true).0 == LT_ERR_NULL_POINTER)
        #expect(Self.run(c, packed: p, alpha: 1, beta: 0, nullW: true).0 == LT_ERR_NULL_POINTER)
        let badArgs: [(ta: Int32, m: Int)] = [(2, 20), (0, -1)]
        for args in badArgs {
            let (st, out) = Self.run(c, packed: p, alpha: 1, beta: 0, ta: args.ta, m: args.m)
            #expect(st == LT_ERR_INVALID_ARGUMENT && LoRAReference.bitwiseEqual(out, c.c0))
        }
        // m = 0 or n = 0: nothing touched, every pointer may be NULL
        #expect(lt_sgemm_prepacked(0, 0, 30, 40, 1, nil, 40, nil, 0, nil, 30, nil, 0) == LT_OK)
        #expect(lt_sgemm_prepacked(0, 20, 0, 40, 1, nil, 40, nil, 0, nil, 1, nil, 0) == LT_OK)
        // alpha = 0 and k = 0: C = beta · C, A not read (NaN), no workspace
        let c0 = Case(m: 4, n: 6, k: 0, ta: false, tb: false, seed: 5)
        let p0 = Self.pack(c0).1
        for (alpha, cc, pp) in [(Float(0), c, p), (Float(1), c0, p0)] {
            for beta: Float in [0, 1, -2] {
                var out = cc.c0
                let nanA = [Float](repeating: .nan, count: max(cc.a.count, 1))
                let st = nanA.withUnsafeBufferPointer { pa in
                    lt_sgemm_prepacked(0, Int64(cc.m), Int64(cc.n), Int64(cc.k), alpha, pa.baseAddress, Int64(cc.lda),
                                       pp, beta, &out, Int64(cc.ldc), nil, 0)
                }
                #expect(st == LT_OK)
                for i in 0..<cc.m {
                    for j in 0..<cc.ldc {
                        let old = cc.c0[i * cc.ldc + j]
                        let want = j >= cc.n ? old : (beta == 0 ? 0 : beta * old)
                        #expect(out[i * cc.ldc + j].bitPattern == want.bitPattern, "alpha \(alpha) k \(cc.k) beta \(beta)")
                    }
                }
            }
        }
        // packing
        var f: Int64 = 0
        #expect(lt_sgemm_packed_b_size(2, 3, 4, &f) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_sgemm_packed_b_size(0, -1, 4, &f) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_sgemm_packed_b_size(0, 3, -4, &f) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_sgemm_packed_b_size(0, 1 << 40, 1 << 40, &f) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_sgemm_packed_b_size(0, 3, 4, nil) == LT_ERR_NULL_POINTER)
        #expect(lt_sgemm_prepacked_workspace_size(1, -2, 3, &f) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_sgemm_prepacked_workspace_size(1, 2, 3, nil) == LT_ERR_NULL_POINTER)
        var size: Int64 = 0
        _ = lt_sgemm_packed_b_size(0, 40, 30, &size)
        func packCall(tb: Int32 = 0, ldb: Int64 = Int64(c.ldb), floats: Int64? = nil, nullB: Bool = false,
                      nullP: Bool = false) -> lt_status {
            var q = [Float](repeating: 7, count: Int(size))
            let st = c.b.withUnsafeBufferPointer { pb in
                q.withUnsafeMutableBufferPointer { pq in
                    lt_sgemm_pack_b(tb, 40, 30, nullB ? nil : pb.baseAddress, ldb, nullP ? nil : pq.baseAddress, floats ?? size)
                }
            }
            #expect(st == LT_OK || q.allSatisfy { $0 == 7 }, "a rejected pack wrote")
            return st
        }
        #expect(packCall() == LT_OK)
        #expect(packCall(tb: 2) == LT_ERR_INVALID_ARGUMENT)
        #expect(packCall(ldb: 29) == LT_ERR_INVALID_ARGUMENT)               // B stored k × n: ldb >= n
        #expect(packCall(tb: 1, ldb: 39) == LT_ERR_INVALID_ARGUMENT)        // Bᵀ stored n × k: ldb >= k
        #expect(packCall(floats: size - 1) == LT_ERR_INVALID_ARGUMENT)
        #expect(packCall(nullB: true) == LT_ERR_NULL_POINTER)
        #expect(packCall(nullP: true) == LT_ERR_NULL_POINTER)
    }

    // MARK: Swift

    @Test("PackedMatrix: X Wᵀ equals Tensor.matmul bitwise (every ISA, 1 and 2 threads), repacks when the ISA changes, follows the openblas backend")
    func packedMatrix() throws {
        var rng = LoRATestRNG(seed: 4242)
        let shapes: [(n: Int, dIn: Int, dOut: Int)] = [(1, 1, 1), (37, 70, 130), (200, 576, 192), (64, 1000, 8),
                                                       (3, 384, 1152), (0, 5, 7), (4, 0, 6)]
        for (index, s) in shapes.enumerated() {
            let w = rng.tensor([s.dOut, s.dIn], scale: 1)
            let x = rng.tensor([s.n, s.dIn], scale: 1)
            let packed = try PackedMatrix(w)
            #expect(packed.rows == s.dOut && packed.columns == s.dIn)
            let packedFloats = 16 + (s.dOut + 47) / 48 * 48 * s.dIn
            #expect(packed.byteCount == 4 * packedFloats)
            for isa in testedInstructionSets() {
                for threads in [1, 2] {
                    try Runtime.withInstructionSet(isa) {
                        try Runtime.withThreadCount(threads) {
                            // (Tensor.matmul rejects k = 0 — its ld 0 < 1 — so that case wants zeros.)
                            let want = s.dIn == 0 ? try Tensor(zeros: [s.n, s.dOut])
                                : try Runtime.withGEMMBackend(.lorta) { try Tensor.matmul(x, w, transposeB: true) }
                            let got = try Runtime.withGEMMBackend(.lorta) { try packed.multiplyTransposed(x) }
                            #expect(got.shape == [s.n, s.dOut])
                            #expect(LoRAReference.bitwiseEqual(want.scalars, got.scalars), "#\(index) \(isa) \(threads)t")
                            if s.n > 0 && s.dOut > 0 { #expect(packed.packedInstructionSet == isa) }
                            // alpha/beta into an existing Y
                            if s.dIn == 0 { return }
                            var y1 = rng.tensor([s.n, s.dOut], scale: 1), y2 = y1
                            try Tensor.matmul(x, w, transposeB: true, alpha: 0.5, beta: 2, into: &y1)
                            try packed.multiplyTransposed(x, alpha: 0.5, beta: 2, into: &y2)
                            #expect(LoRAReference.bitwiseEqual(y1.scalars, y2.scalars), "#\(index) \(isa) alpha/beta")
                        }
                    }
                }
            }
            if s.dIn == 0 { continue }
            let blas = try Runtime.withGEMMBackend(.openblas) {
                (try Tensor.matmul(x, w, transposeB: true), try packed.multiplyTransposed(x))
            }
            #expect(LoRAReference.bitwiseEqual(blas.0.scalars, blas.1.scalars), "#\(index) openblas backend")
        }
        let packed = try PackedMatrix(rng.tensor([8, 5], scale: 1))
        #expect(throws: TensorError.self) { try packed.multiplyTransposed(rng.tensor([3, 4], scale: 1)) }
        #expect(throws: TensorError.self) { try PackedMatrix(rng.tensor([8], scale: 1)) }
        var wrong = try Tensor(zeros: [3, 7])
        #expect(throws: TensorError.self) { try packed.multiplyTransposed(rng.tensor([3, 5], scale: 1), into: &wrong) }
    }
}
