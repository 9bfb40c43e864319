import Foundation
import LoRTA

/// A fuzz target: `make` builds whatever state the harness needs once (a tokenizer, a model's
/// adapter host) and returns the function libFuzzer calls for every input. The function must
/// never crash: every error the library throws is an acceptable answer to a hostile input.
struct Harness: Sendable {
    let name: String
    let summary: String
    let make: @Sendable () throws -> (Data) -> Void

    static let all: [Harness] = [
        .safeTensors, .gguf, .npy, .csv,
        .peftConfig, .bertConfig, .llamaConfig,
        .wordPiece, .bpeJSON, .bpeConfig, .chatTemplate,
        .labelledText, .causalJSONL,
        .statisticsFile, .optimizerCheckpoint, .trainerCheckpoint, .adapterDirectory,
    ]
}

/// The repository root (the fuzz package lives in `<root>/Fuzz`); fixtures are read from its
/// `Tests/LoRTATests/Fixtures` at set-up time.
let repositoryRoot: URL = {
    if let root = ProcessInfo.processInfo.environment["LORTA_ROOT"] { return URL(fileURLWithPath: root) }
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<4 { url.deleteLastPathComponent() }   // Support.swift, lorta-fuzz, Sources, Fuzz
    return url
}()

func fixture(_ path: String) -> URL {
    repositoryRoot.appendingPathComponent("Tests/LoRTATests/Fixtures").appendingPathComponent(path)
}

/// A private scratch directory per process for harnesses whose API only takes a URL.
enum Scratch {
    nonisolated(unsafe) private static var made = false
    static let directory: URL = {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("lorta-fuzz-\(ProcessInfo.processInfo.processIdentifier)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        made = true
        return url
    }()

    /// Writes `data` to `name` in the scratch directory (replacing it) and returns its URL.
    static func file(_ name: String, _ data: Data) -> URL {
        let url = directory.appendingPathComponent(name)
        do { try data.write(to: url) } catch { fatalError("lorta-fuzz: cannot write \(url.path): \(error)") }
        return url
    }

    /// A fresh empty subdirectory `name` of the scratch directory.
    static func emptyDirectory(_ name: String) -> URL {
        let url = directory.appendingPathComponent(name)
        try? FileManager.default.removeItem(at: url)
        do { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) } catch {
            fatalError("lorta-fuzz: cannot create \(url.path): \(error)")
        }
        return url
    }

    static func removeAll() {
        if made { try? FileManager.default.removeItem(at: directory) }
    }
}

/// The input as given and as a slice whose `startIndex` is not 0 (a parser that indexes `Data`
/// from 0 instead of `startIndex` fails on the second).
func variants(_ data: Data) -> [Data] {
    var padded = Data([0xA5])
    padded.append(data)
    return [data, padded.dropFirst()]
}

/// The input as text the way a reader that accepts any bytes would see it (invalid UTF-8 repaired).
func text(_ data: Data) -> String { String(decoding: data, as: UTF8.self) }

/// Lines of `data` split on "\n" (a trailing "\r" kept, as a caller holding raw lines would).
func lines(_ data: Data) -> [String] {
    text(data).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
}

/// Splits `data` into consecutive parts: the first byte is a selector, the next two bytes
/// (little-endian) the length of the first part, the rest the second part. Returns nil when the
/// input is too short.
func splitInput(_ data: Data) -> (selector: UInt8, first: Data, second: Data)? {
    let bytes = [UInt8](data)
    guard bytes.count >= 3 else { return nil }
    let n = min(Int(bytes[1]) | Int(bytes[2]) << 8, bytes.count - 3)
    return (bytes[0], Data(bytes[3..<(3 + n)]), Data(bytes[(3 + n)...]))
}

/// Builds the input `splitInput` takes apart (for the seed corpus).
func joinInput(selector: UInt8, _ first: Data, _ second: Data) -> Data {
    precondition(first.count <= 0xFFFF)
    var out = Data([selector, UInt8(first.count & 0xFF), UInt8(first.count >> 8)])
    out.append(first)
    out.append(second)
    return out
}

/// Texts every tokenizer harness encodes with the tokenizer it built.
let sampleTexts = [
    "", " ", "Hello, world! The movie was great.", "  leading and trailing  ", "ÀÉÎõü ß ﬁ Ωμέγα",
    "日本語のテキスト 中文", "emoji 🤖👍🏽 and ZWJ 👨‍👩‍👧", "\u{0}\u{1}\t\r\n\u{7F}\u{85}\u{2028}",
    "<|im_start|>user\nhi<|im_end|>", "[CLS] [SEP] [UNK] [PAD] [MASK]", "don't can't 123 4567 3.14",
    String(repeating: "a", count: 300), String(repeating: "ab ", count: 100),
]
