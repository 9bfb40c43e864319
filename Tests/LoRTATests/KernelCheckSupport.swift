import Foundation

// Helpers shared by the kernel test suites (NNKernelTests, DecoderKernelTests): float64
// finite differences and error measures.

/// Central differences of a float64 function at the given coordinates (all when nil):
/// `(f(x + h·e_i) − f(x − h·e_i)) / 2h`. O(count) evaluations.
func numericGradient(_ x: [Double], at indices: [Int]? = nil, h: Double = 1e-6,
                     _ f: ([Double]) -> Double) -> [Double] {
    var x = x
    let idx = indices ?? Array(x.indices)
    var g = [Double](repeating: 0, count: idx.count)
    for (n, i) in idx.enumerated() {
        let v = x[i]
        x[i] = v + h; let fp = f(x)
        x[i] = v - h; let fm = f(x)
        x[i] = v
        g[n] = (fp - fm) / (2 * h)
    }
    return g
}

/// max |a − b| / max(1e-3, max |b|)
func relativeError(_ a: [Float], _ b: [Double]) -> Double {
    precondition(a.count == b.count)
    var diff = 0.0, scale = 1e-3
    for i in a.indices {
        diff = max(diff, abs(Double(a[i]) - b[i]))
        scale = max(scale, abs(b[i]))
    }
    return diff / scale
}

func d64(_ a: [Float]) -> [Double] { a.map(Double.init) }
func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
