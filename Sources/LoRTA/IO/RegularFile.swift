#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

import Foundation

/// Every reader that loads a whole file at once (`.npy`, CSV, JSON configurations, tokenizer
/// files, training data, checkpoints) goes through ``read(_:mapped:)``, which accepts regular
/// files only: a FIFO, a socket or a character device would block the read, or never end it.
enum RegularFile {
    /// Why a file could not be read: a sentence for the caller's own error.
    struct Failure: Error {
        let reason: String
    }

    /// The whole contents of `url` (symbolic links followed); `mapped` maps it when the system
    /// allows. O(file size).
    /// - Throws: ``Failure`` when the path is not a regular file (checked before opening, so a
    ///   FIFO never blocks) or cannot be read.
    static func read(_ url: URL, mapped: Bool = false) throws(Failure) -> Data {
        if let problem = problem(at: url.path) { throw Failure(reason: problem) }
        do {
            return try Data(contentsOf: url, options: mapped ? .mappedIfSafe : [])
        } catch {
            throw Failure(reason: error.localizedDescription)
        }
    }

    /// Why `path` (symbolic links followed) cannot be read whole, or nil when it is a regular
    /// file or cannot be examined (then the read itself reports the problem, e.g. a missing
    /// file).
    static func problem(at path: String) -> String? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        let kind: String
        switch st.st_mode & S_IFMT {
        case S_IFREG: return nil
        case S_IFDIR: return "it is a directory"
        case S_IFIFO: kind = "a FIFO (named pipe)"
        case S_IFSOCK: kind = "a socket"
        case S_IFCHR: kind = "a character device"
        case S_IFBLK: kind = "a block device"
        default: kind = "not a regular file"
        }
        return "it is \(kind); the file is read whole, so only regular files are accepted (save the data to a file first)"
    }
}

/// A UTF-8 text file read whole (a prompt, a corpus for perplexity).
public enum TextFile {
    /// The text of the regular file at `url` (symbolic links followed). O(file size).
    /// - Throws: ``TextFileError`` when the path is missing, not a regular file (a FIFO is
    ///   refused before it is opened), unreadable, or not valid UTF-8.
    public static func read(_ url: URL) throws(TextFileError) -> String {
        let data: Data
        do { data = try RegularFile.read(url) } catch { throw TextFileError(path: url.path, reason: error.reason) }
        guard let text = String(data: data, encoding: .utf8) else {
            throw TextFileError(path: url.path, reason: "not valid UTF-8")
        }
        return text
    }
}

/// A text file that ``TextFile/read(_:)`` could not read.
public struct TextFileError: Error, CustomStringConvertible, Equatable {
    /// The file.
    public let path: String
    /// Why it could not be read.
    public let reason: String
    public var description: String { "cannot read \(path): \(reason)" }
}
