import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a file atomically: the bytes go to a new temporary file in the destination's
/// directory, which is flushed to disk (`fsync`) and renamed over the destination. On any
/// failure the temporary file is removed and an existing file at the destination is left
/// untouched. The one implementation behind the safetensors and GGUF writers.
enum AtomicFileWriter {
    /// A failed system call: `operation` ("create", "write", "fsync", "close", "rename to …"),
    /// the path it concerned and the system's reason. Each writer maps it to its own error type.
    struct Failure: Error {
        let operation: String
        let path: String
        let reason: String
    }

    /// Creates the temporary file, lets `produce` write the contents through the function it
    /// receives (which writes all the bytes, retrying on EINTR), then flushes and renames.
    /// - Throws: ``Failure`` for a failed system call; whatever `produce` throws (the
    ///   temporary file is removed either way).
    static func write(to url: URL, _ produce: (_ write: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        let target = url.path
        let directory = url.deletingLastPathComponent().path
        let temporary = (directory.isEmpty ? "." : directory) + "/." + url.lastPathComponent + "." + UUID().uuidString + ".tmp"
        func failure(_ operation: String, _ path: String, _ code: Int32) -> Failure {
            Failure(operation: operation, path: path, reason: String(cString: strerror(code)))
        }
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("create", temporary, errno) }
        var closed = false
        var renamed = false
        defer {
            if !closed { close(fd) }
            if !renamed { unlink(temporary) }
        }
        try produce { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = systemWrite(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw failure("write", temporary, errno)
                }
                offset += n
            }
        }
        guard fsync(fd) == 0 else { throw failure("fsync", temporary, errno) }
        closed = true
        guard close(fd) == 0 else { throw failure("close", temporary, errno) }
        guard rename(temporary, target) == 0 else { throw failure("rename to \(target)", temporary, errno) }
        renamed = true
    }
}

/// `write(2)` (a free function, so the name does not resolve to ``AtomicFileWriter/write(to:_:)``).
private func systemWrite(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, bytes, count)
}
