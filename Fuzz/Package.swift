// swift-tools-version: 6.2
// libFuzzer harnesses for the parsers of untrusted input (see docs/architecture.md, "Fuzzing and
// sanitizers", and scripts/fuzz.sh). A separate package so that the library never builds with
// fuzzer instrumentation by accident. Build only with the sanitizer flags scripts/fuzz.sh passes:
//   swift build -c release -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=address
// (`LLVMFuzzerRunDriver` comes from the libFuzzer runtime that `-sanitize=fuzzer` links).
import PackageDescription

let package = Package(
    name: "lorta-fuzz",
    dependencies: [
        .package(name: "swift-lorta", path: ".."),
    ],
    targets: [
        // The declaration of libFuzzer's `LLVMFuzzerRunDriver` (no code).
        .target(name: "CFuzzDriver", path: "Sources/CFuzzDriver"),
        // `lorta-fuzz <harness> [libFuzzer options] [corpus dirs]`; `lorta-fuzz --list`;
        // `lorta-fuzz --make-seeds <dir>` writes the generated part of the seed corpora.
        .executableTarget(
            name: "lorta-fuzz",
            dependencies: [
                "CFuzzDriver",
                .product(name: "LoRTA", package: "swift-lorta"),
            ],
            path: "Sources/lorta-fuzz",
            // GNU gold (the toolchain's default on Linux) fails on this link with an internal
            // error in dwarf_reader.cc once ASan and libFuzzer are in; LLVM's lld links it.
            linkerSettings: [.unsafeFlags(["-use-ld=lld"])]
        ),
    ]
)
