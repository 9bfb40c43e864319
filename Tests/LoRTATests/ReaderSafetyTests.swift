import Foundation
import Testing
@testable import LoRTA
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The whole-file readers (.npy, CSV) refuse FIFOs and other non-regular files instead of
/// blocking, and check what they allocate against the memory budget.
@Suite("Readers: non-regular files and memory budget", .serialized)
struct ReaderSafetyTests {
    /// Makes a FIFO in `dir` and, in the background, opens it for writing once a reader is
    /// waiting and closes it at once, so a reader that (wrongly) opened it sees an empty file
    /// instead of blocking the test forever.
    static func fifo(in dir: URL, name: String) throws -> URL {
        let url = dir.appendingPathComponent(name)
        #expect(mkfifo(url.path, 0o600) == 0)
        let path = url.path
        Thread.detachNewThread {
            for _ in 0..<50 {
                let fd = open(path, O_WRONLY | O_NONBLOCK)  // fails (ENXIO) while nobody reads
                if fd >= 0 { close(fd); return }
                usleep(100_000)
            }
        }
        return url
    }

    @Test func fifosAreRefused() throws {
        let dir = try testScratchDirectory("reader-fifo")
        defer { try? FileManager.default.removeItem(at: dir) }
        let npy = try Self.fifo(in: dir, name: "rows.npy")
        let e1 = #expect(throws: NumpyFileError.self) { try NumpyArray(contentsOf: npy) }
        guard case .unreadableFile(_, let reason)? = e1 else { Issue.record("\(String(describing: e1))"); return }
        #expect(reason.hasPrefix("it is a FIFO (named pipe); the file is read whole"))
        let csv = try Self.fifo(in: dir, name: "rows.csv")
        let e2 = #expect(throws: CSVMatrixError.self) { try CSVMatrix.read(contentsOf: csv) }
        guard case .unreadableFile(_, let reason2)? = e2 else { Issue.record("\(String(describing: e2))"); return }
        #expect(reason2.contains("FIFO"))
        // A directory is refused the same way; a missing file keeps its own error.
        #expect(throws: NumpyFileError.unreadableFile(path: dir.path, reason: "it is a directory")) { try NumpyArray(contentsOf: dir) }
        #expect(throws: NumpyFileError.self) { try NumpyArray(contentsOf: dir.appendingPathComponent("missing.npy")) }
    }

    /// Every other reader of a whole file (configurations, tokenizer files, training data,
    /// checkpoints, safetensors, GGUF, text) refuses a FIFO the same way instead of blocking.
    @Test func everyWholeFileReaderRefusesAFIFO() throws {
        let dir = try testScratchDirectory("reader-fifo-all")
        defer { try? FileManager.default.removeItem(at: dir) }
        func fifo(_ name: String) throws -> URL { try Self.fifo(in: dir, name: name) }
        func mentionsFIFO(_ error: (any Error)?) -> Bool { "\(error.map { "\($0)" } ?? "")".contains("FIFO") }

        #expect(mentionsFIFO(#expect(throws: BertError.self) { try BertConfiguration(contentsOf: fifo("bert.json")) }))
        #expect(mentionsFIFO(#expect(throws: LlamaError.self) { try LlamaConfiguration(contentsOf: fifo("llama.json")) }))
        #expect(mentionsFIFO(#expect(throws: AdapterConfigurationError.self) {
            try PEFTAdapterConfiguration(contentsOf: fifo("adapter_config.json")) }))
        #expect(mentionsFIFO(#expect(throws: TokenizerError.self) { try BertTokenizer(vocabularyURL: fifo("vocab.txt")) }))
        #expect(mentionsFIFO(#expect(throws: BPETokenizerError.self) {
            try ByteLevelBPETokenizer(tokenizerJSONURL: fifo("tokenizer.json")) }))
        #expect(mentionsFIFO(#expect(throws: DatasetError.self) {
            try LabelledTextDataset.load(from: fifo("train.tsv"), labelCount: 2) }))
        #expect(mentionsFIFO(#expect(throws: TextFileError.self) { try TextFile.read(fifo("prompt.txt")) }))
        // The memory-mapping readers open without blocking and then refuse the file.
        #expect("\(#expect(throws: (any Error).self) { try SafeTensorsReader(contentsOf: fifo("w.safetensors")) }!)"
            .contains("not a regular file"))
        #expect("\(#expect(throws: (any Error).self) { try GGUFReader(contentsOf: fifo("m.gguf")) }!)"
            .contains("not a regular file"))
        // A directory named like a file is refused as well.
        let e = #expect(throws: TextFileError.self) { try TextFile.read(dir) }
        #expect(e?.reason == "it is a directory")
    }

    @Test func csvLineIndexIsCheckedBeforeItIsBuilt() throws {
        // 1 MB of line ends would need a 16 MB index of line ranges.
        let lines = Data(repeating: 0x0A, count: 1 << 20)
        try MemoryBudget.withBudget(try MemoryBudget(bytes: 4 << 20, origin: "test")) { () throws in
            let error = #expect(throws: MemoryError.self) { try CSVMatrix.read(data: lines) }
            #expect(error?.description.hasPrefix("the index of a CSV file's 1048577 lines") == true)
        }
        #expect(throws: CSVMatrixError.emptyFile) { try CSVMatrix.read(data: lines) }
    }

    @Test func csvWithAMillionColumnsIsCheckedAgainstTheBudget() throws {
        let line = Data((String(repeating: "0,", count: 999_999) + "0\n").utf8)  // 2 MB, 1 row × 10⁶ columns
        try MemoryBudget.withBudget(try MemoryBudget(bytes: 4 << 20, origin: "test")) { () throws in
            let error = #expect(throws: MemoryError.self) { try CSVMatrix.read(data: line) }
            #expect(error?.description.hasPrefix("a 1×1000000 CSV matrix needs as many float64 values: 7.63 MiB, more than the 4.00 MiB") == true)
        }
        try MemoryBudget.withBudget(try MemoryBudget(bytes: 16 << 20, origin: "test")) { () throws in
            let m = try CSVMatrix.read(data: line)
            #expect(m.rows == 1 && m.columns == 1_000_000)
            // …and then the statistics of a million features are refused.
            #expect(throws: MemoryError.self) { try ActivationStatistics(dimension: m.columns) }
        }
    }

    @Test func npyConversionsAreCheckedAgainstTheBudget() throws {
        // 100,000 int8 labels (100 kB of data) become 400 kB of Float32 and 800 kB of Int / Double.
        let data = [Int8](repeating: 1, count: 100_000).withUnsafeBytes { NumpyWriter.file(.int8, shape: [100_000], elements: $0) }
        let a = try NumpyArray(data: data)
        try MemoryBudget.withBudget(try MemoryBudget(bytes: 300_000, origin: "test")) { () throws in
            #expect(throws: MemoryError.self) { try a.integerLabels() }
            #expect(throws: MemoryError.self) { try a.doubleValues() }
            #expect(throws: MemoryError.self) { try a.floatMatrix() }
        }
        #expect(try a.integerLabels().count == 100_000)
    }
}
