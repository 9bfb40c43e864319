import Testing
import CKernels
@testable import LoRTA

// MARK: - ISA coverage (shared by every test that loops over the instruction sets)

/// The instruction sets a test that loops over every ISA runs on this machine (all that the CPU
/// supports, scalar first), printed with the ones it lacks — e.g.
/// `ISA coverage: LoRAKernelTests.swift isaPathsAgree(): scalar avx2 avx512 (not on this CPU: none)`
/// — so a CI log shows what each run really tested. The per-ISA tests of ``SIMDKernelTests``
/// are the visible skips (`.enabled(if:)`) when an ISA is missing.
func testedInstructionSets(fileID: String = #fileID, function: String = #function) -> [InstructionSet] {
    let available = Runtime.availableInstructionSets
    let missing = InstructionSet.allCases.filter { !available.contains($0) }
    let file = fileID.split(separator: "/").last.map(String.init) ?? fileID
    print("ISA coverage: \(file) \(function): \(available.map(\.rawValue).joined(separator: " "))"
          + " (not on this CPU: \(missing.isEmpty ? "none" : missing.map(\.rawValue).joined(separator: " ")))")
    return available
}

/// Whether this CPU runs `isa` (for `.enabled(if:)`: a missing ISA is a reported skip).
func cpuSupports(_ isa: InstructionSet) -> Bool { Runtime.availableInstructionSets.contains(isa) }

/// The dot_many / axpy_many micro-kernels (simd.h), each ISA variant called directly through
/// lt_kernel_dot_many / lt_kernel_axpy_many and checked against a float64 reference and against
/// the scalar variant. Lengths cover empty, single, one-short/exact/one-over a vector of 16, and
/// two vectors plus one; ranks 0…9 cover the 4-row blocking of dot_many and its remainders.
/// Padding after each row and after x/y holds NaN (inputs) or a sentinel (outputs), so reading
/// or writing past the end shows up.
@Suite("SIMD micro-kernels")
struct SIMDKernelTests {
    static let lengths = [0, 1, 15, 16, 17, 33, 64, 100]
    static let ranks = Array(0...9)

    struct Problem {
        let d, r, ldm: Int
        var x: [Float]          // d valid + 16 NaN
        var m: [Float]          // r × ldm, NaN padding
        var coef: [Float]       // r
        var y0: [Float]         // d valid + 16 sentinel

        init(d: Int, r: Int, seed: UInt64) {
            var rng = LoRATestRNG(seed: seed)
            self.d = d; self.r = r; ldm = d + 5
            x = rng.array(d) + [Float](repeating: .nan, count: 16)
            m = rng.padded(rows: r, cols: d, ld: ldm)
            coef = rng.array(r)
            y0 = rng.array(d) + [Float](repeating: 1234, count: 16)
        }

        func dot(_ isa: InstructionSet) -> (lt_status, [Float]) {
            var out = [Float](repeating: .nan, count: r + 4)
            let st = x.withUnsafeBufferPointer { px in
                m.withUnsafeBufferPointer { pm in
                    out.withUnsafeMutableBufferPointer { po in
                        lt_kernel_dot_many(isa.cValue, px.baseAddress, pm.baseAddress, Int64(ldm), Int64(r), Int64(d), po.baseAddress)
                    }
                }
            }
            return (st, out)
        }

        func axpy(_ isa: InstructionSet) -> (lt_status, [Float]) {
            var y = y0
            let st = coef.withUnsafeBufferPointer { pc in
                m.withUnsafeBufferPointer { pm in
                    y.withUnsafeMutableBufferPointer { py in
                        lt_kernel_axpy_many(isa.cValue, py.baseAddress, pc.baseAddress ?? UnsafePointer(py.baseAddress!),
                                            pm.baseAddress, Int64(ldm), Int64(r), Int64(d))
                    }
                }
            }
            return (st, y)
        }

        /// float64 reference and the error scale Σ|terms| per output.
        func dotReference() -> [(value: Double, scale: Double)] {
            (0..<r).map { k in
                var v = 0.0, s = 0.0
                for j in 0..<d { let t = Double(x[j]) * Double(m[k * ldm + j]); v += t; s += abs(t) }
                return (v, s)
            }
        }

        func axpyReference() -> [(value: Double, scale: Double)] {
            (0..<d).map { j in
                var v = Double(y0[j]), s = abs(Double(y0[j]))
                for k in 0..<r { let t = Double(coef[k]) * Double(m[k * ldm + j]); v += t; s += abs(t) }
                return (v, s)
            }
        }
    }

    // One test per ISA: an ISA this CPU lacks shows up as a skipped test, never as a pass.
    @Test("dot_many, scalar: matches float64 for d ∈ {0,1,15,16,17,33,64,100}, r ∈ 0…9")
    func dotManyScalar() throws { try dotMany(isa: .scalar) }

    @Test("dot_many, AVX2: matches float64 and scalar", .enabled(if: cpuSupports(.avx2), "this CPU has no AVX2+FMA"))
    func dotManyAVX2() throws { try dotMany(isa: .avx2) }

    @Test("dot_many, AVX-512: matches float64 and scalar", .enabled(if: cpuSupports(.avx512), "this CPU has no AVX-512F"))
    func dotManyAVX512() throws { try dotMany(isa: .avx512) }

    @Test("axpy_many, scalar: matches float64, writes only y[0..<d]")
    func axpyManyScalar() throws { try axpyMany(isa: .scalar) }

    @Test("axpy_many, AVX2: matches float64 and scalar, writes only y[0..<d]", .enabled(if: cpuSupports(.avx2), "this CPU has no AVX2+FMA"))
    func axpyManyAVX2() throws { try axpyMany(isa: .avx2) }

    @Test("axpy_many, AVX-512: matches float64 and scalar, writes only y[0..<d]", .enabled(if: cpuSupports(.avx512), "this CPU has no AVX-512F"))
    func axpyManyAVX512() throws { try axpyMany(isa: .avx512) }

    func dotMany(isa: InstructionSet) throws {
        print("ISA coverage: SIMDKernelTests.swift dot_many: \(isa)")
        for d in Self.lengths {
            for r in Self.ranks {
                let p = Problem(d: d, r: r, seed: UInt64(d * 16 + r))
                let (st, out) = p.dot(isa)
                let (sts, scalar) = p.dot(.scalar)
                #expect(st == LT_OK && sts == LT_OK)
                for (k, ref) in p.dotReference().enumerated() {
                    let tol = 1e-6 * ref.scale + 1e-30
                    #expect(abs(Double(out[k]) - ref.value) <= tol, "\(isa) d=\(d) r=\(r) k=\(k): \(out[k]) vs \(ref.value)")
                    #expect(abs(Double(out[k]) - Double(scalar[k])) <= 2 * tol, "\(isa) vs scalar d=\(d) r=\(r) k=\(k)")
                }
                #expect(out[r...].allSatisfy { $0.isNaN }, "\(isa) wrote past out[r-1] (d=\(d) r=\(r))")
            }
        }
    }

    func axpyMany(isa: InstructionSet) throws {
        print("ISA coverage: SIMDKernelTests.swift axpy_many: \(isa)")
        for d in Self.lengths {
            for r in Self.ranks {
                let p = Problem(d: d, r: r, seed: UInt64(1000 + d * 16 + r))
                let (st, y) = p.axpy(isa)
                let (sts, scalar) = p.axpy(.scalar)
                #expect(st == LT_OK && sts == LT_OK)
                for (j, ref) in p.axpyReference().enumerated() {
                    let tol = 1e-6 * ref.scale + 1e-30
                    #expect(abs(Double(y[j]) - ref.value) <= tol, "\(isa) d=\(d) r=\(r) j=\(j): \(y[j]) vs \(ref.value)")
                    #expect(abs(Double(y[j]) - Double(scalar[j])) <= 2 * tol, "\(isa) vs scalar d=\(d) r=\(r) j=\(j)")
                }
                #expect(y[d...].allSatisfy { $0 == 1234 }, "\(isa) wrote past y[d-1] (d=\(d) r=\(r))")
                if r == 0 { #expect(LoRAReference.bitwiseEqual(y, p.y0)) }
            }
        }
    }

    @Test("a long dot product (d = 4099) stays accurate on every ISA")
    func longDot() throws {
        let p = Problem(d: 4099, r: 5, seed: 4099)
        for isa in testedInstructionSets() {
            let (st, out) = p.dot(isa)
            #expect(st == LT_OK)
            for (k, ref) in p.dotReference().enumerated() {
                #expect(abs(Double(out[k]) - ref.value) <= 1e-5 * ref.scale, "\(isa) k=\(k)")
            }
        }
    }

    @Test("entry points validate: unknown ISA, unsupported ISA, ldm < d, negative sizes, null pointers")
    func validation() throws {
        var buf = [Float](repeating: 1, count: 64)
        buf.withUnsafeMutableBufferPointer { b in
            let p = b.baseAddress!
            #expect(lt_kernel_dot_many(7, p, p, 4, 2, 4, p + 32) == LT_ERR_INVALID_ARGUMENT)
            #expect(lt_kernel_dot_many(-1, p, p, 4, 2, 4, p + 32) == LT_ERR_INVALID_ARGUMENT)
            #expect(lt_kernel_dot_many(0, p, p, 3, 2, 4, p + 32) == LT_ERR_INVALID_ARGUMENT)
            #expect(lt_kernel_dot_many(0, p, p, 4, -2, 4, p + 32) == LT_ERR_INVALID_ARGUMENT)
            #expect(lt_kernel_dot_many(0, nil, p, 4, 2, 4, p + 32) == LT_ERR_NULL_POINTER)
            #expect(lt_kernel_axpy_many(0, p + 32, p, p, 4, -1, 4) == LT_ERR_INVALID_ARGUMENT)
            #expect(lt_kernel_axpy_many(0, p + 32, p, p, 3, 1, 4) == LT_ERR_INVALID_ARGUMENT)
            #expect(lt_kernel_axpy_many(0, nil, p, p, 4, 1, 4) == LT_ERR_NULL_POINTER)
            #expect(lt_kernel_axpy_many(0, p + 32, p, p, 4, 2, 4) == LT_OK)
            for isa in InstructionSet.allCases where !Runtime.availableInstructionSets.contains(isa) {
                #expect(lt_kernel_dot_many(isa.cValue, p, p, 4, 2, 4, p + 32) == LT_ERR_UNSUPPORTED_ISA)
                #expect(lt_kernel_axpy_many(isa.cValue, p + 32, p, p, 4, 2, 4) == LT_ERR_UNSUPPORTED_ISA)
            }
        }
    }
}
