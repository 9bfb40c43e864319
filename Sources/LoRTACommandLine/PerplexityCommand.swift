import ArgumentParser
import Foundation
import LoRTA

/// `lorta perplexity`: how well a causal language model predicts a text.
struct Perplexity: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Perplexity of a text file under a Llama-family model, as llama.cpp's perplexity tool measures it.",
        discussion: """
        The text is tokenized as a whole (with the tokenizer's own prefix, e.g. a BOS when the \
        model adds one), cut into non-overlapping windows of --context tokens (a last partial \
        window is dropped), and each window is scored on its second half: the tokens at \
        positions N/2+1 … N-1, each predicted from all tokens before it in its window.
        """)

    @Option(help: "Model: a .gguf file or a Hugging Face directory.")
    var model: String
    @Option(help: "Text file (UTF-8).")
    var data: String
    @Option(help: "Window length N in tokens.")
    var context: Int = 512
    @Option(help: "Windows evaluated together.")
    var batchSize: Int = 1
    @Option(help: "An adapter directory (LoRA in PEFT's layout or LoRTA, e.g. written by `lorta train`), applied unmerged.")
    var adapter: String?
    @Option(help: "Threads (default: LORTA_NUM_THREADS or all cores).")
    var threads: Int?
    @Flag(help: "Print a JSON object {tokens, nll, perplexity, …}.")
    var json = false

    func validate() throws {
        try OptionRange.check(context, "context", 4...1_048_576)
        try OptionRange.check(batchSize, "batch-size", 1...4096)
        try OptionRange.check(threads, "threads", 1...OptionRange.threads)
    }

    func run() throws {
        try reportingErrors {
            try Runtime.initialize()
            if let threads { try Runtime.setThreadCount(threads) }
            var lm = try CausalLanguageModel(contentsOf: URL(fileURLWithPath: model))
            if let adapter { try lm.loadAdapter(from: URL(fileURLWithPath: adapter)) }
            let tokens = lm.encode(try TextFile.read(URL(fileURLWithPath: data)))
            let terminal = isatty(2) != 0
            let (result, seconds) = try timed {
                try lm.model.perplexity(of: tokens, context: context, batchSize: batchSize, adapter: lm.adapter) { done, total in
                    if terminal && !json {
                        FileHandle.standardError.write(Data("\r\u{1B}[Kwindow \(done)/\(total)".utf8))
                    }
                }
            }
            if terminal && !json { FileHandle.standardError.write(Data("\n".utf8)) }
            if json {
                print(jsonText([
                    "tokens": result.tokenCount,
                    "windows": result.windowCount,
                    "context": context,
                    "text_tokens": tokens.count,
                    "nll": result.negativeLogLikelihood,
                    "perplexity": result.perplexity,
                    "seconds": seconds,
                ] as [String: Any]))
            } else {
                print("tokens scored: \(result.tokenCount) (\(result.windowCount) windows of \(context); text: \(tokens.count) tokens)")
                print(String(format: "mean negative log-likelihood: %.6f", result.negativeLogLikelihood))
                print(String(format: "perplexity: %.4f", result.perplexity))
                printError(String(format: "%.1f s, %.0f tokens/s", seconds, Double(result.windowCount * context) / seconds))
            }
        }
    }
}
