// lorta-fuzz: one libFuzzer binary for every harness (Harness.swift lists them).
//
//   lorta-fuzz <harness> [libFuzzer options] [corpus directories]
//   lorta-fuzz --list
//   lorta-fuzz --make-seeds <corpus root>
//
// scripts/fuzz.sh builds it with `-sanitize=fuzzer,address` and runs every harness. Our own
// `main` calls libFuzzer's `LLVMFuzzerRunDriver`, so libFuzzer's `main` is not linked and the
// harness name can be the first argument.
import CFuzzDriver
import Foundation

let arguments = CommandLine.arguments
/// The per-input function of the chosen harness (set once, before libFuzzer starts). Declared
/// before any top-level statement uses it: in main.swift a global declared later would be
/// initialized (to the empty function) after the assignment below.
nonisolated(unsafe) var currentInput: (Data) -> Void = { _ in }

func usage() -> Never {
    FileHandle.standardError.write(Data("""
    usage: lorta-fuzz <harness> [libFuzzer options] [corpus directories]
           lorta-fuzz --list
           lorta-fuzz --make-seeds <corpus root>
    harnesses: \(Harness.all.map(\.name).joined(separator: " "))

    """.utf8))
    exit(2)
}

guard arguments.count >= 2 else { usage() }
switch arguments[1] {
case "--list":
    for h in Harness.all { print("\(h.name)\t\(h.summary)") }
    exit(0)
case "--make-seeds":
    guard arguments.count == 3 else { usage() }
    do {
        try SeedCorpus.write(into: URL(fileURLWithPath: arguments[2]))
    } catch {
        FileHandle.standardError.write(Data("lorta-fuzz: \(error)\n".utf8))
        exit(1)
    }
    exit(0)
default:
    break
}
guard let harness = Harness.all.first(where: { $0.name == arguments[1] }) else { usage() }
do {
    currentInput = try harness.make()
} catch {
    FileHandle.standardError.write(Data("lorta-fuzz: cannot set up \(harness.name): \(error)\n".utf8))
    exit(1)
}
atexit { Scratch.removeAll() }

func testOneInput(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = count > 0 && bytes != nil ? Data(bytes: bytes!, count: count) : Data()
    currentInput(data)
    return 0
}

/// libFuzzer's conventional entry point. The driver call below passes `testOneInput` itself; the
/// symbol is defined because a link may still pull in libFuzzer's `main` (debug builds, no
/// --gc-sections), whose object refers to it. SwiftPM's `--defsym main=…` keeps ours as `main`.
@_cdecl("LLVMFuzzerTestOneInput")
func llvmFuzzerTestOneInput(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt { testOneInput(bytes, count) }

// libFuzzer sees argv without the harness name.
var cArguments: [UnsafeMutablePointer<CChar>?] = ([arguments[0]] + arguments.dropFirst(2)).map { strdup($0) } + [nil]
var argc = CInt(cArguments.count - 1)
let status = cArguments.withUnsafeMutableBufferPointer { buffer -> CInt in
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = buffer.baseAddress
    return LLVMFuzzerRunDriver(&argc, &argv, testOneInput)
}
exit(status)
