@testable import LoRTA

/// Deterministic test numbers (splitmix64), independent of the library's RNG.
struct LoRTATestRNG {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    mutating func uniform() -> Float { Float(Double(next() >> 11) / 9007199254740992.0 * 2 - 1) }
    mutating func tensor(_ shape: [Int], scale: Float = 1) -> Tensor {
        let n = shape.reduce(1, *)
        return try! Tensor((0..<n).map { _ in uniform() * scale }, shape: shape)
    }
}

/// Random, non-trivial factors (B ≠ 0, C's away from zero) for a configuration.
func randomLoRTAFactors(_ c: LoRTAConfiguration, seed: UInt64) -> LoRTAFactors {
    var g = LoRTATestRNG(seed)
    let s = c.factorShapes
    return LoRTAFactors(a: s.a.map { g.tensor($0, scale: 0.5) }, b: g.tensor(s.b, scale: 0.5),
                        cH: g.tensor(s.cH), cL: g.tensor(s.cL), cM: g.tensor(s.cM))
}

/// Naive float64 LoRTA written from the definition
/// ΔW_{l,m}[o, h·d_h + j] = s Σ_k A[o,k] C_H[h,k] C_L[l,k] C_M[m,k] B[k,j]  (materialized).
struct ReferenceLoRTA {
    let c: LoRTAConfiguration
    var a: [[Double]]
    var b: [Double], cH: [Double], cL: [Double], cM: [Double]

    init(_ c: LoRTAConfiguration, _ f: LoRTAFactors) {
        self.c = c
        a = f.a.map { $0.scalars.map(Double.init) }
        b = f.b.scalars.map(Double.init)
        cH = f.cH.scalars.map(Double.init)
        cL = f.cL.scalars.map(Double.init)
        cM = f.cM.scalars.map(Double.init)
    }

    func deltaW(layer l: Int, matrix m: Int) -> [Double] {
        let r = c.rank, H = c.headCount, dh = c.headDimension, din = c.inputSize
        let dout = c.outputSizes[m], A = a[c.factorAIndex(forMatrix: m)]
        let s = Double(c.alpha) / Double(r)
        var w = [Double](repeating: 0, count: dout * din)
        for o in 0..<dout {
            for h in 0..<H {
                for k in 0..<r {
                    let coef = s * A[o * r + k] * cH[h * r + k] * cL[l * r + k] * cM[m * r + k]
                    for j in 0..<dh { w[o * din + h * dh + j] += coef * b[k * dh + j] }
                }
            }
        }
        return w
    }

    /// X ΔW_{l,m}ᵀ for X (n × d_in).
    func apply(layer l: Int, matrix m: Int, x: [Double], n: Int) -> [Double] {
        let w = deltaW(layer: l, matrix: m), din = c.inputSize, dout = c.outputSizes[m]
        var y = [Double](repeating: 0, count: n * dout)
        for i in 0..<n {
            for o in 0..<dout {
                var acc = 0.0
                for q in 0..<din { acc += x[i * din + q] * w[o * din + q] }
                y[i * dout + o] = acc
            }
        }
        return y
    }
}

/// max|x - y| / max(max|y|, tiny).
func relativeMaxError(_ x: [Float], _ y: [Double]) -> Double {
    precondition(x.count == y.count)
    var e = 0.0, m = 0.0
    for i in x.indices { e = max(e, abs(Double(x[i]) - y[i])); m = max(m, abs(y[i])) }
    return e / max(m, 1e-30)
}

func relativeMaxError(_ x: Tensor, _ y: Tensor) -> Double {
    relativeMaxError(x.scalars, y.scalars.map(Double.init))
}
