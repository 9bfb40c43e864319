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

/// A fresh empty directory under the temporary directory (`<prefix>-<UUID>`), removed by the
/// caller's `defer`.
func testScratchDirectory(_ prefix: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}
