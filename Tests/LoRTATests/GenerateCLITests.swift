import Foundation
import Testing
@testable import LoRTA

// `lorta generate`, `lorta perplexity` and `lorta info --model` on the real SmolLM2 GGUF and
// on the tiny fixture models; references from transformers (Fixtures/llama).

private let cliRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
private let smolLM2 = cliRoot.appendingPathComponent("assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf").path

private func fixture(_ relative: String) throws -> URL { try testFixture("llama/" + relative) }

private func json(_ r: CLI.Result) throws -> [String: Any] {
    try #require(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "stdout: \(r.stdout) stderr: \(r.stderr)")
}

@Suite(.serialized) struct GenerateCLITests {
    /// The greedy chat answer equals transformers' (ids and text), streamed or as JSON.
    @Test func chatAnswerMatchesTransformers() throws {
        try #require(FileManager.default.fileExists(atPath: smolLM2), "run scripts/fetch-assets.sh")
        let r = try CLI.run(["generate", "--model", smolLM2, "--chat", "What is the capital of France?",
                             "--max-tokens", "32", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let o = try json(r)
        let root = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: try fixture("smollm2.json"))) as? [String: Any])
        let prompt = try #require((root["prompts"] as? [[String: Any]])?.first { $0["name"] as? String == "chat_capital" })
        let greedy = try #require(prompt["greedy"] as? [String: Any])
        #expect((o["tokens"] as? [Int]) == (greedy["new_ids"] as? [Int]))
        #expect(o["text"] as? String == "The capital of France is Paris.")
        #expect(o["prompt_tokens"] as? Int == (prompt["ids"] as? [Int])?.count)
        #expect(o["stop_reason"] as? String == "stop_token")
        #expect((o["tokens_per_second"] as? Double ?? 0) > 0 && (o["prompt_tokens_per_second"] as? Double ?? 0) > 0)

        let streamed = try CLI.run(["generate", "--model", smolLM2, "--chat", "What is the capital of France?"])
        #expect(streamed.status == 0)
        #expect(streamed.stdout == "The capital of France is Paris.\n")
        #expect(streamed.stderr.contains("tokens/s"))
    }

    /// A plain prompt, sampling with a seed: the same seed gives the same text, the tokens stay
    /// within --max-tokens.
    @Test func seededSamplingIsReproducible() throws {
        let model = try fixture("tiny/tiny_untied.q8_0.gguf").path
        let args = ["generate", "--model", model, "--prompt", "abc", "--max-tokens", "12", "--temperature", "0.9",
                    "--top-k", "40", "--top-p", "0.95", "--seed", "7", "--json"]
        let a = try json(try CLI.run(args)), b = try json(try CLI.run(args))
        #expect(a["tokens"] as? [Int] == b["tokens"] as? [Int])
        #expect(((a["tokens"] as? [Int])?.count ?? 99) <= 12)
        let c = try json(try CLI.run(args.map { $0 == "7" ? "8" : $0 }))
        #expect(c["tokens"] as? [Int] != a["tokens"] as? [Int])
        // --repeat 3: the same tokens, the speeds of runs 2 and 3 (medians), "runs": 3.
        let r = try json(try CLI.run(args + ["--repeat", "3"]))
        #expect(r["tokens"] as? [Int] == a["tokens"] as? [Int])
        #expect(r["runs"] as? Int == 3)
        #expect(((r["prompt_tokens_per_second"] as? Double) ?? 0) > 0 && ((r["prompt_seconds"] as? Double) ?? 0) > 0)
        #expect(a["runs"] as? Int == 1)
    }

    @Test func perplexityMatchesTransformers() throws {
        try #require(FileManager.default.fileExists(atPath: smolLM2), "run scripts/fetch-assets.sh")
        let r = try CLI.run(["perplexity", "--model", smolLM2, "--data", try fixture("perplexity.txt").path,
                             "--context", "128", "--batch-size", "4", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let o = try json(r)
        let root = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: try fixture("perplexity.json"))) as? [String: Any])
        let n128 = try #require((root["results"] as? [[String: Any]])?.first { $0["window"] as? Int == 128 })
        let exact = try #require(n128["llama_cpp_exact"] as? [String: Any])
        #expect(o["tokens"] as? Int == exact["tokens_scored"] as? Int)
        let nll = try #require(o["nll"] as? Double), ref = try #require(exact["mean_nll"] as? Double)
        #expect(abs(nll - ref) <= 1e-4 * ref)
        #expect(abs((o["perplexity"] as? Double ?? 0) - exp(nll)) <= 1e-9 * exp(nll))
    }

    @Test func infoDescribesTheModel() throws {
        try #require(FileManager.default.fileExists(atPath: smolLM2), "run scripts/fetch-assets.sh")
        let r = try CLI.run(["info", "--model", smolLM2, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let o = try json(r)
        #expect(o["architecture"] as? String == "llama")
        #expect(o["format"] as? String == "gguf")
        #expect(o["parameters"] as? Int == 134_515_008)
        #expect(o["layers"] as? Int == 30 && o["heads"] as? Int == 9 && o["kv_heads"] as? Int == 3)
        #expect((o["matrix_types"] as? [String: Int]) == ["Q4_1": 120, "Q8_0": 1])
        #expect(o["vocabulary"] as? Int == 49_152)
        #expect((o["tokenizer"] as? [String: Any])?["merges"] as? Int == 48_900)
        #expect(o["chat_template"] as? String == "ChatML with a default system message")
        #expect(o["stop_tokens"] as? [Int] == [2])
        // A checkpoint without tokenizer files is still described; the tokenizer's absence is said.
        let text = try CLI.run(["info", "--model", try fixture("tiny/tiny_tied_hf").path])
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("huggingface") && text.stdout.contains("F32 ×") && text.stdout.contains("tokenizer: unavailable"))
    }

    @Test func badInputGivesClearErrors() throws {
        let tiny = try fixture("tiny/tiny_untied.q8_0.gguf").path
        let missing = try CLI.run(["generate", "--model", "/nonexistent/model.gguf", "--prompt", "x"])
        #expect(missing.status != 0 && missing.stderr.contains("/nonexistent/model.gguf"))
        let both = try CLI.run(["generate", "--model", tiny, "--prompt", "x", "--chat", "y"])
        #expect(both.status != 0 && both.stderr.contains("exactly one of"))
        let noTemplate = try CLI.run(["generate", "--model", tiny, "--chat", "hi"])
        #expect(noTemplate.status != 0 && noTemplate.stderr.contains("chat template"))
        let badT = try CLI.run(["generate", "--model", tiny, "--prompt", "x", "--temperature", "-1"])
        #expect(badT.status != 0 && badT.stderr.contains("--temperature"))
        let badRepeat = try CLI.run(["generate", "--model", tiny, "--prompt", "x", "--repeat", "0"])
        #expect(badRepeat.status != 0 && badRepeat.stderr.contains("--repeat"))
        let short = try CLI.run(["perplexity", "--model", tiny, "--data", try fixture("perplexity.txt").path, "--context", "100000"])
        #expect(short.status != 0)
        // A prompt longer than the context (256 tokens for the tiny model).
        let long = String(repeating: "ab ", count: 400)
        let tooLong = try CLI.run(["generate", "--model", tiny, "--prompt", long])
        #expect(tooLong.status != 0 && tooLong.stderr.contains("context"))
    }
}
