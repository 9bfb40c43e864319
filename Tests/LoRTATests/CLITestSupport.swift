import Foundation
import Testing

/// Runs the `lorta` executable built next to the test bundle.
enum CLI {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static var executableURL: URL {
        get throws {
            let runner = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            var dir = runner.deletingLastPathComponent()
            // On Linux the runner is <bin>/swift-lortaPackageTests.xctest; on macOS it is inside a bundle.
            for _ in 0..<4 {
                let candidate = dir.appendingPathComponent("lorta")
                if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
                dir = dir.deletingLastPathComponent()
            }
            throw CLIError.notFound(runner.path)
        }
    }

    enum CLIError: Error { case notFound(String) }

    /// Runs `lorta args...` with `environment` changes applied (nil value removes a variable).
    static func run(_ args: [String], environment: [String: String?] = [:]) throws -> Result {
        let process = Process()
        process.executableURL = try executableURL
        process.arguments = args
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus,
                      stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }
}

extension CLI {
    /// Starts `lorta args...` (output discarded) and sends it SIGKILL after `seconds` if it is
    /// still running. Returns true when the kill ended it (false: it had finished on its own).
    static func runAndKill(_ args: [String], after seconds: Double) throws -> Bool {
        let process = Process()
        process.executableURL = try executableURL
        process.arguments = args
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        Thread.sleep(forTimeInterval: seconds)
        var killed = false
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            killed = true
        }
        process.waitUntilExit()
        return killed && process.terminationReason == .uncaughtSignal
    }
}
