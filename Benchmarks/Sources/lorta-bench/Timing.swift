import Foundation

/// Wall-clock seconds of `body`, median over `repetitions` after `warmup` runs.
func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : 0.5 * (s[s.count / 2 - 1] + s[s.count / 2])
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Times several variants interleaved (A B C A B C …) so that machine noise hits all of them
/// alike; returns the median seconds of each.
func timeInterleaved(_ variants: [() throws -> Void], repetitions: Int, warmup: Int = 2) throws -> [Double] {
    for _ in 0..<warmup { for v in variants { try v() } }
    var samples = Array(repeating: [Double](), count: variants.count)
    for _ in 0..<repetitions {
        for (i, v) in variants.enumerated() {
            let t0 = now()
            try v()
            samples[i].append(now() - t0)
        }
    }
    return samples.map(median)
}

func ms(_ s: Double) -> String { String(format: "%8.3f ms", s * 1e3) }
func pct(_ x: Double) -> String { String(format: "%+6.1f%%", x * 100) }

/// Runs this benchmark binary again as `lorta-bench <argument>` with `environment` added to the
/// current one (settings read once at load, such as OPENBLAS_CORETYPE or LORTA_GEMM); returns
/// its exit status and standard output.
func runChild(_ argument: String, environment: [String: String]) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/proc/self/exe")
    p.arguments = [argument]
    p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
    let pipe = Pipe()
    p.standardOutput = pipe
    try p.run()
    let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    return (p.terminationStatus, out)
}
