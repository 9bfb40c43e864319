// swift-tools-version: 6.2
// Benchmarks live in their own package so that users of swift-lorta never resolve
// benchmark-only dependencies. Run: `bash scripts/bench.sh` from the repository root.
import PackageDescription

let package = Package(
    name: "swift-lorta-benchmarks",
    dependencies: [.package(name: "swift-lorta", path: "..")],
    targets: [
        .executableTarget(
            name: "lorta-bench",
            dependencies: [.product(name: "LoRTA", package: "swift-lorta")],
            path: "Sources/lorta-bench",
            swiftSettings: [.unsafeFlags(["-Ounchecked"])]
        ),
    ]
)
