import CKernels
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes files and whole directories so that a reader, a crash or an error never sees a half
/// written output: every output is built under a temporary name beside its destination,
/// flushed to disk and renamed into place only once it is complete.
///
/// - **Files** (``write(_:to:)``, ``copyFile(from:to:)``; the safetensors and GGUF writers):
///   the bytes go to a new temporary file in the destination's directory, which is flushed
///   (`fsync`) and renamed over the destination; then the directory itself is flushed, so the
///   rename survives a power loss. An existing destination keeps its permission bits; a new
///   file gets mode 0644 minus the process's umask. On any failure the temporary file is
///   removed and an existing destination is left untouched.
/// - **Directories** (``replaceDirectory(at:_:)``): the contents are produced in a temporary
///   sibling directory and swapped in as a whole, so the result holds exactly the new set of
///   files, and a failure leaves the previous directory as it was.
public enum AtomicFileWriter {
    /// A failed system call: `operation` ("create", "write", "fsync", "close", "rename to …"),
    /// the path it concerned and the system's reason. Library writers map it to their own error
    /// type (``SafeTensorsError/fileSystem(path:operation:reason:)``, …).
    public struct Failure: Error, Equatable, CustomStringConvertible {
        /// What was attempted ("create", "write", "fsync", "rename to /x/y", …).
        public let operation: String
        /// The path the operation concerned.
        public let path: String
        /// The system's reason (`strerror`).
        public let reason: String

        /// Makes a failure record.
        public init(operation: String, path: String, reason: String) {
            self.operation = operation
            self.path = path
            self.reason = reason
        }

        /// `operation path: reason`.
        public var description: String { "\(operation) \(path): \(reason)" }
    }

    /// Writes `data` to `url` atomically (see the type's discussion).
    /// - Throws: ``Failure`` for a failed system call (e.g. the directory does not exist).
    /// - Complexity: O(`data.count`).
    public static func write(_ data: Data, to url: URL) throws {
        try write(to: url) { write in try data.withUnsafeBytes { try write($0) } }
    }

    /// Creates the temporary file, lets `produce` write the contents through the function it
    /// receives (which writes all the bytes, retrying on EINTR), then flushes, renames and
    /// flushes the directory.
    /// - Throws: ``Failure`` for a failed system call; whatever `produce` throws (the
    ///   temporary file is removed either way).
    static func write(to url: URL, _ produce: (_ write: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        let target = url.path
        let directory = url.deletingLastPathComponent().path
        let temporary = (directory.isEmpty ? "." : directory) + "/." + url.lastPathComponent + "." + UUID().uuidString + ".tmp"
        // An existing file keeps its permission bits (a new one: 0644 minus the umask).
        var existing = stat()
        let keptMode: mode_t? = stat(target, &existing) == 0 && (existing.st_mode & S_IFMT) == S_IFREG
            ? existing.st_mode & 0o777 : nil
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("create", temporary, errno) }
        var closed = false
        var renamed = false
        defer {
            if !closed { close(fd) }
            if !renamed { unlink(temporary) }
        }
        if let keptMode, fchmod(fd, keptMode) != 0 { throw failure("set the mode of", temporary, errno) }
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
        try syncDirectory(directory.isEmpty ? "." : directory)
    }

    /// Copies the regular file at `source` to `destination` atomically, as a real file:
    /// symbolic links (e.g. a Hugging Face cache's `snapshots/…/config.json →
    /// ../../blobs/…`) are followed, never copied as links. The copy gets the destination's
    /// mode rules of ``write(_:to:)``.
    /// - Throws: ``Failure`` when `source` cannot be opened, is not a regular file (a
    ///   directory, a FIFO — opened without blocking —, a dangling link), or a read or write
    ///   fails.
    /// - Complexity: O(file size) time, O(1) memory (copied in 1 MiB chunks).
    public static func copyFile(from source: URL, to destination: URL) throws {
        let path = source.path
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw failure("open", path, errno) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw failure("stat", path, errno) }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw Failure(operation: "copy", path: path, reason: "not a regular file")
        }
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 64)
        defer { buffer.deallocate() }
        try write(to: destination) { write in
            while true {
                let n = read(fd, buffer, chunk)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw failure("read", path, errno)
                }
                if n == 0 { break }
                try write(UnsafeRawBufferPointer(start: buffer, count: n))
            }
        }
    }

    /// Builds a directory and moves it into place as a whole: `produce` fills a new, empty
    /// temporary directory beside `url` (named `.<name>.<UUID>.tmp`; it receives its URL),
    /// everything in it is flushed to disk, and only then is it renamed to `url`. A directory
    /// already at `url` stays in place and readable while `produce` runs; it is then renamed
    /// aside (`.<name>.<UUID>.old`), the new one renamed in, the parent directory flushed, and
    /// the old one deleted — so `url` ends up holding exactly the files `produce` made, never
    /// a mix with an earlier run's. If `produce` throws or a step fails, the temporary
    /// directory is removed and the previous directory is left (or put back) at `url`.
    ///
    /// A replaced directory's permission bits are kept; a new one gets 0777 minus the umask.
    /// Missing parent directories are created. Whether an existing directory may be replaced
    /// at all (an `--overwrite` rule) is the caller's decision, checked before calling.
    ///
    /// ```swift
    /// try AtomicFileWriter.replaceDirectory(at: out) { staging in
    ///     try AtomicFileWriter.write(config, to: staging.appendingPathComponent("config.json"))
    ///     try weights.write(to: staging.appendingPathComponent("model.safetensors"))
    /// }
    /// ```
    ///
    /// Replacing an existing directory is one atomic exchange of the two paths (Linux
    /// `renameat2(RENAME_EXCHANGE)`, `lt_rename_exchange`): a process killed at any moment leaves
    /// either the complete old directory or the complete new one at `url`. Where the exchange is
    /// not supported it falls back to two renames; a process killed between those leaves no
    /// directory at `url` and the previous one complete under its `.old` name.
    /// - Parameters:
    ///   - url: the directory to create or replace.
    ///   - produce: writes the new contents into the directory it receives.
    /// - Returns: what `produce` returns.
    /// - Throws: ``Failure`` when `url` exists and is not a directory, or a system call fails;
    ///   whatever `produce` throws.
    /// - Complexity: O(number of files) system calls besides `produce`'s own work; the old
    ///   directory is deleted after the swap.
    @discardableResult
    public static func replaceDirectory<T>(at url: URL, _ produce: (URL) throws -> T) throws -> T {
        try replaceDirectory(at: url, exchanging: true, renaming: { rename($0, $1) }, produce)
    }

    /// ``replaceDirectory(at:_:)`` with the `rename(2)` it uses injectable (tests make it fail)
    /// and the atomic exchange optional (tests of the two-rename fallback turn it off).
    static func replaceDirectory<T>(at url: URL, exchanging: Bool = true, renaming: (String, String) -> Int32,
                                    _ produce: (URL) throws -> T) throws -> T {
        let fm = FileManager.default
        let target = url.standardizedFileURL
        let name = target.lastPathComponent
        guard !name.isEmpty, name != "/", name != ".", name != ".." else {
            throw Failure(operation: "replace", path: target.path, reason: "not a directory name")
        }
        var isDirectory: ObjCBool = false
        let exists = fm.fileExists(atPath: target.path, isDirectory: &isDirectory)
        if exists && !isDirectory.boolValue {
            throw Failure(operation: "replace", path: target.path, reason: "exists and is not a directory")
        }
        let parent = target.deletingLastPathComponent()
        do { try fm.createDirectory(at: parent, withIntermediateDirectories: true) } catch {
            throw Failure(operation: "create directory", path: parent.path, reason: error.localizedDescription)
        }
        let stamp = UUID().uuidString
        let staging = parent.appendingPathComponent(".\(name).\(stamp).tmp")
        let aside = parent.appendingPathComponent(".\(name).\(stamp).old")
        guard mkdir(staging.path, 0o777) == 0 else { throw failure("create", staging.path, errno) }
        var placed = false
        defer { if !placed { try? fm.removeItem(at: staging) } }
        // A replaced directory keeps its permission bits (a new one: 0777 minus the umask).
        var existing = stat()
        if exists, stat(target.path, &existing) == 0, chmod(staging.path, existing.st_mode & 0o777) != 0 {
            throw failure("set the mode of", staging.path, errno)
        }
        let result = try produce(staging)
        try syncTree(staging.path)
        // Where the kernel allows it, one atomic exchange: `url` is the old directory, then the
        // new one, never missing. Elsewhere two renames (below).
        if exchanging, fm.fileExists(atPath: target.path) {
            let code = lt_rename_exchange(staging.path, target.path)
            if code == 0 {
                placed = true  // `staging` now holds the old directory
                try syncDirectory(parent.path)
                try? fm.removeItem(at: staging)
                return result
            }
            guard code == ENOSYS || code == EINVAL else { throw failure("exchange with \(target.path)", staging.path, code) }
        }
        var movedAside = false
        if fm.fileExists(atPath: target.path) {
            guard renaming(target.path, aside.path) == 0 else { throw failure("rename to \(aside.path)", target.path, errno) }
            movedAside = true
        }
        guard renaming(staging.path, target.path) == 0 else {
            let code = errno
            if movedAside && renaming(aside.path, target.path) != 0 {
                throw Failure(operation: "rename to \(target.path)", path: staging.path,
                              reason: "\(String(cString: strerror(code))); the previous directory could not be put back and is at \(aside.path)")
            }
            throw failure("rename to \(target.path)", staging.path, code)
        }
        placed = true
        try syncDirectory(parent.path)
        if movedAside { try? fm.removeItem(at: aside) }
        return result
    }

    // MARK: - Flushing

    /// Flushes a directory's entries (after a rename into it). A file system that cannot sync
    /// directories (EINVAL) is accepted.
    static func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw failure("open directory", path, errno) }
        defer { close(fd) }
        guard fsync(fd) == 0 || errno == EINVAL else { throw failure("fsync directory", path, errno) }
    }

    /// Flushes every regular file and directory under `path` (symbolic links are not followed),
    /// the directories after their contents.
    static func syncTree(_ path: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { throw failure("stat", path, errno) }
        switch info.st_mode & S_IFMT {
        case S_IFDIR:
            let entries: [String]
            do { entries = try FileManager.default.contentsOfDirectory(atPath: path) } catch {
                throw Failure(operation: "list", path: path, reason: error.localizedDescription)
            }
            for entry in entries { try syncTree(path + "/" + entry) }
            try syncDirectory(path)
        case S_IFREG:
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw failure("open", path, errno) }
            defer { close(fd) }
            guard fsync(fd) == 0 || errno == EINVAL else { throw failure("fsync", path, errno) }
        default:
            break
        }
    }

    private static func failure(_ operation: String, _ path: String, _ code: Int32) -> Failure {
        Failure(operation: operation, path: path, reason: String(cString: strerror(code)))
    }
}

/// `write(2)` (a free function, so the name does not resolve to ``AtomicFileWriter/write(_:to:)``).
private func systemWrite(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, bytes, count)
}
