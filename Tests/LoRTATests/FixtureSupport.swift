import Foundation
import Testing

/// A committed fixture under `Tests/LoRTATests/Fixtures/` (the test bundle's resources); the
/// test fails, never skips, when it is missing.
func testFixture(_ relative: String) throws -> URL {
    let base = try #require(Bundle.module.resourceURL, "test bundle has no resources")
    let url = base.appendingPathComponent("Fixtures").appendingPathComponent(relative)
    try #require(FileManager.default.fileExists(atPath: url.path), "fixture \(relative) missing")
    return url
}

/// Where the test process puts its scratch directories: `lorta-tests-<pid>` under the
/// temporary directory, removed when the process exits normally (so a test that forgets its
/// `defer` leaves nothing behind).
let testScratchRoot: URL = {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("lorta-tests-\(getpid())")
    try? FileManager.default.removeItem(at: url)   // a crashed process with the same pid
    atexit { try? FileManager.default.removeItem(at: testScratchRoot) }
    return url
}()

/// A fresh empty directory `<prefix>-<UUID>` under ``testScratchRoot``; callers may remove it
/// with a `defer`, whatever is left goes when the process exits.
func testScratchDirectory(_ prefix: String) throws -> URL {
    let url = testScratchRoot.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}
