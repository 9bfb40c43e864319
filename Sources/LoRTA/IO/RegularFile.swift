#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The readers that load a whole file at once (`.npy`, CSV) accept regular files only: a FIFO,
/// a socket or a character device would block the read, or never end it.
enum RegularFile {
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
