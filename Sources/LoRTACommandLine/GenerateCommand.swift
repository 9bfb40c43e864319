import ArgumentParser
import Foundation
import LoRTA

/// `lorta generate`: continue a prompt or answer a chat message with a causal language model.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text with a Llama-family model (GGUF file or Hugging Face directory).",
        discussion: """
        Streams the generated text to stdout as it is produced and prints the prompt and \
        generation speeds to stderr. --chat renders the message with the model's chat template \
        (a template the package cannot render is an error); --prompt / --prompt-file are used \
        as they are. Greedy decoding by default (--temperature 0); sampling is seeded.
        """)

    @Option(help: "Model: a .gguf file or a Hugging Face directory.")
    var model: String
    @Option(help: "Plain prompt text.")
    var prompt: String?
    @Option(help: "Read the plain prompt from this file (UTF-8).")
    var promptFile: String?
    @Option(help: "A user message, rendered with the model's chat template.")
    var chat: String?
    @Option(help: "System message for --chat (default: the template's own, if any).")
    var system: String?
    @Option(help: "Most tokens to generate.")
    var maxTokens: Int = 256
    @Option(help: "Sampling temperature (0 = greedy).")
    var temperature: Float = 0
    @Option(help: "Keep the K most likely tokens (0 = no limit).")
    var topK: Int = 0
    @Option(help: "Nucleus sampling mass in (0, 1] (1 = off).")
    var topP: Float = 1
    @Option(help: "Seed of the sampling.")
    var seed: UInt64 = 0
    @Option(help: "An adapter directory (LoRA in PEFT's layout or LoRTA, e.g. written by `lorta train`), applied unmerged.")
    var adapter: String?
    @Option(help: "Threads (default: LORTA_NUM_THREADS or all cores).")
    var threads: Int?
    @Flag(help: "Print one JSON object (prompt_tokens, tokens, text, prompt_tokens_per_second, tokens_per_second, …) instead of streaming.")
    var json = false
    @Option(name: .customLong("repeat"), help: "Generate N times in this process (same prompt and seed, so the same tokens) and report the medians of the speeds over runs 2 … N: the first run warms the caches, as a benchmark's warm-up. The text is printed once.")
    var repeatCount: Int = 1

    func validate() throws {
        let sources = [prompt != nil, promptFile != nil, chat != nil].filter { $0 }.count
        guard sources == 1 else { throw ValidationError("give exactly one of --prompt, --prompt-file or --chat") }
        if system != nil && chat == nil { throw ValidationError("--system needs --chat") }
        try OptionRange.check(maxTokens, "max-tokens", 1...1_000_000)
        try OptionRange.check(temperature, "temperature", 0...1_000)
        try OptionRange.check(topK, "top-k", 0...OptionRange.count)
        try OptionRange.check(topP, "top-p", 0...1, exclusiveLower: true)
        try OptionRange.check(threads, "threads", 1...OptionRange.threads)
        try OptionRange.check(repeatCount, "repeat", 1...1_000)
    }

    func run() throws {
        try reportingErrors {
            try Runtime.initialize()
            if let threads { try Runtime.setThreadCount(threads) }
            var lm = try CausalLanguageModel(contentsOf: URL(fileURLWithPath: model))
            if let adapter { try lm.loadAdapter(from: URL(fileURLWithPath: adapter)) }
            let ids: [Int32]
            if let chat {
                var messages: [ChatMessage] = []
                if let system { messages.append(.system(system)) }
                messages.append(.user(chat))
                ids = try lm.encodeChat(messages)
            } else if let promptFile {
                ids = lm.encode(try TextFile.read(URL(fileURLWithPath: promptFile)))
            } else {
                ids = lm.encode(prompt ?? "")
            }
            let parameters = GenerationParameters(
                maxTokens: maxTokens,
                sampling: SamplingParameters(temperature: temperature, topK: topK, topP: topP, seed: seed))
            let out = FileHandle.standardOutput
            var runs: [GenerationResult] = []
            var text = ""
            for run in 0..<repeatCount {
                let (result, t) = try lm.generate(prompt: ids, parameters: parameters) { piece in
                    if !json && run == 0 { out.write(Data(piece.utf8)) }
                    return .proceed
                }
                runs.append(result)
                text = t
            }
            let result = runs[0]
            let timed = runs.count > 1 ? Array(runs.dropFirst()) : runs
            func median(_ v: [Double]) -> Double { let s = v.sorted(); return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2 }
            let promptSeconds = median(timed.map(\.promptSeconds)), decodeSeconds = median(timed.map(\.decodeSeconds))
            let promptRate = median(timed.map(\.promptTokensPerSecond)), decodeRate = median(timed.map(\.tokensPerSecond))
            if json {
                print(jsonText([
                    "prompt_tokens": result.promptTokenCount,
                    "tokens": result.tokens.map { Int($0) },
                    "text": text,
                    "stop_reason": result.stopReason.rawValue,
                    "prompt_seconds": promptSeconds,
                    "prompt_tokens_per_second": promptRate,
                    "decode_steps": result.decodeSteps,
                    "decode_seconds": decodeSeconds,
                    "tokens_per_second": decodeRate,
                    "threads": Runtime.threadCount,
                    "runs": repeatCount,
                ] as [String: Any]))
            } else {
                out.write(Data("\n".utf8))
                printError(String(format: "prompt: %d tokens, %.1f tokens/s; generated: %d tokens (%@), %.1f tokens/s; %d threads%@",
                                  result.promptTokenCount, promptRate, result.tokens.count,
                                  result.stopReason.rawValue, decodeRate, Runtime.threadCount,
                                  repeatCount > 1 ? " (medians of runs 2 … \(repeatCount))" : ""))
            }
        }
    }
}
