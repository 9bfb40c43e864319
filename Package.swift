// swift-tools-version: 6.2
// Tools version 6.2+ is required: it lets packages that depend on swift-lorta *by version*
// accept the unsafe flags (-fopenmp) of its C target.
import PackageDescription

let package = Package(
    name: "swift-lorta",
    products: [
        .library(name: "LoRTA", targets: ["LoRTA"]),
        .library(name: "LoRTAReport", targets: ["LoRTAReport"]),
        .executable(name: "lorta", targets: ["lorta"]),
        // Optional, needs Open MPI (`libopenmpi-dev`): data-parallel training and sharded
        // statistics. Nothing above depends on it.
        .library(name: "LoRTADistributed", targets: ["LoRTADistributed"]),
        .executable(name: "lorta-mpi", targets: ["lorta-mpi"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // Documentation only: `swift package generate-documentation --target LoRTA`
        // (scripts/check-docs.sh). A command plugin: nothing of it is linked into the library.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // OpenBLAS (CBLAS) and LAPACKE, found with pkg-config.
        .systemLibrary(
            name: "CBLAS",
            path: "Sources/CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]
        ),
        // The hand-written C kernels (OpenMP + runtime-selected SIMD). Public API: CKernels/include.
        .target(
            name: "CKernels",
            dependencies: ["CBLAS"],
            path: "CKernels",
            sources: ["src"],
            publicHeadersPath: "include",
            cSettings: [
                .unsafeFlags(["-fopenmp", "-O3", "-fno-math-errno"]),
            ],
            linkerSettings: [
                .linkedLibrary("omp5"),
                .linkedLibrary("lapacke"),
            ]
        ),
        .target(
            name: "LoRTA",
            dependencies: ["CKernels", "CBLAS"],
            path: "Sources/LoRTA"
        ),
        // The monitor's self-contained HTML report (inline SVG, no JavaScript). No dependencies,
        // not even on LoRTA, so the core library stays free of it.
        .target(name: "LoRTAReport", path: "Sources/LoRTAReport"),
        // The command-line tools' commands and options, shared by `lorta` and `lorta-mpi` (not a
        // product).
        .target(
            name: "LoRTACommandLine",
            dependencies: [
                "LoRTA",
                "LoRTAReport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/LoRTACommandLine"
        ),
        .executableTarget(
            name: "lorta",
            dependencies: ["LoRTACommandLine", "LoRTA"],
            path: "Sources/lorta"
        ),
        // Open MPI's C API, found with pkg-config (only the distributed targets below use it).
        .systemLibrary(
            name: "CMPI",
            path: "Sources/CMPI",
            pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev"])]
        ),
        // Data parallelism over MPI: a typed communicator, the MPI gradient exchange for
        // Trainer, statistics merged across ranks.
        .target(
            name: "LoRTADistributed",
            dependencies: ["LoRTA", "CMPI"],
            path: "Sources/LoRTADistributed"
        ),
        .executableTarget(
            name: "lorta-mpi",
            dependencies: [
                "LoRTADistributed",
                "LoRTACommandLine",
                "LoRTA",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/lorta-mpi"
        ),
        .testTarget(
            name: "LoRTATests",
            dependencies: ["LoRTA", "LoRTAReport", "CKernels", "lorta"],
            path: "Tests/LoRTATests",
            resources: [.copy("Fixtures")]
        ),
    ]
)
