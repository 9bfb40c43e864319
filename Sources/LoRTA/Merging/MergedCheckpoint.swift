import Foundation

/// A merge computed by ``AdapterMerger/merged(baseModel:adapterDirectory:unmerge:)`` and not
/// yet written: the encoded checkpoint (every value already checked) and its summary.
///
/// Nothing exists on disk until ``write(to:)`` or
/// ``writeModelDirectory(to:copyingFilesFrom:overwrite:)`` is called, so a caller can finish
/// every other step that may fail first (the CLI formats its report, JSON included) and only
/// then put the output in place.
public struct MergedCheckpoint: Sendable {
    /// What the merge changed.
    public let summary: MergeSummary
    let writer: SafeTensorsWriter
    /// The adapter directory (for its classification head, see
    /// ``writeModelDirectory(to:copyingFilesFrom:overwrite:)``).
    let adapterDirectory: URL

    /// Writes the merged checkpoint as one `.safetensors` file, atomically (temporary file,
    /// flush, rename; an existing file is replaced only once the new one is complete).
    /// - Throws: ``SafeTensorsError/fileSystem(path:operation:reason:)``,
    ///   ``SafeTensorsError/headerTooLarge(headerLength:)``.
    /// - Complexity: O(file size).
    public func write(to url: URL) throws {
        try writer.write(to: url)
    }

    /// Writes a complete model directory at `directory`: the merged weights as
    /// `model.safetensors`, a copy of every other top-level file of `source` (the
    /// model directory the base came from: `config.json`, `vocab.txt`, tokenizer files;
    /// subdirectories are skipped), and the adapter directory's classification head
    /// (``BertClassificationHead/fileName``) when it has one — a plain model directory that
    /// `transformers` and ``BertModel/init(directory:)`` load.
    ///
    /// Copies are real files: symbolic links (a Hugging Face cache's snapshot files are
    /// relative links into `blobs/`) are followed, never copied as links; a dangling link is
    /// skipped. The directory is built beside `directory` and swapped in as a whole
    /// (``AtomicFileWriter/replaceDirectory(at:_:)``): the result holds exactly these files,
    /// none of an earlier export's, and on any failure the previous directory is left as it
    /// was. `source` may be `directory` itself (its files are read before the swap).
    /// - Parameters:
    ///   - directory: the output directory (created, with missing parents, or replaced).
    ///   - source: the model directory whose other files are copied.
    ///   - overwrite: allow replacing an existing non-empty directory (an empty one is always
    ///     replaced).
    /// - Throws: ``AdapterMergeError/outputDirectoryNotEmpty(_:)``,
    ///   ``AdapterMergeError/fileSystem(path:reason:)`` (e.g. `directory` is a file, a copy
    ///   failed), ``SafeTensorsError`` for a failed write of the weights.
    /// - Complexity: O(output size).
    public func writeModelDirectory(to directory: URL, copyingFilesFrom source: URL, overwrite: Bool) throws {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: directory.path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw AdapterMergeError.fileSystem(path: directory.path, reason: "exists and is not a directory")
            }
            let contents: [String]
            do { contents = try fm.contentsOfDirectory(atPath: directory.path) } catch {
                throw AdapterMergeError.fileSystem(path: directory.path, reason: error.localizedDescription)
            }
            guard contents.isEmpty || overwrite else { throw AdapterMergeError.outputDirectoryNotEmpty(directory.path) }
        }
        let weightsName = "model.safetensors"
        let names: [String]
        do { names = try fm.contentsOfDirectory(atPath: source.path).sorted() } catch {
            throw AdapterMergeError.fileSystem(path: source.path, reason: "cannot list the model directory: \(error.localizedDescription)")
        }
        var copies: [(from: URL, name: String)] = []
        for name in names where name != weightsName {
            let url = source.appendingPathComponent(name)
            var sub: ObjCBool = false
            // fileExists follows links: a dangling link is skipped, a link to a directory too.
            guard fm.fileExists(atPath: url.path, isDirectory: &sub), !sub.boolValue else { continue }
            copies.append((url, name))
        }
        let head = adapterDirectory.appendingPathComponent(BertClassificationHead.fileName)
        if fm.fileExists(atPath: head.path) { copies.append((head, BertClassificationHead.fileName)) }
        do {
            try AtomicFileWriter.replaceDirectory(at: directory) { staging in
                try writer.write(to: staging.appendingPathComponent(weightsName))
                for (from, name) in copies {
                    try AtomicFileWriter.copyFile(from: from, to: staging.appendingPathComponent(name))
                }
            }
        } catch let f as AtomicFileWriter.Failure {
            throw AdapterMergeError.fileSystem(path: f.path, reason: "\(f.operation): \(f.reason)")
        }
    }
}
