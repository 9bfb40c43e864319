import Foundation
import LoRTA

// The tokenizers' files: a WordPiece vocab.txt, a Hugging Face tokenizer.json and
// tokenizer_config.json, and the chat templates they carry. (The GGUF vocabulary is read by the
// gguf harness.) Every tokenizer that builds is used: the sample texts and the input itself are
// encoded and decoded.

extension Harness {
    static let wordPiece = Harness(name: "wordpiece",
                                   summary: "BertTokenizer(vocabulary:) from lines / (vocabularyURL:), encoding") {
        { data in
            let vocabulary = lines(data)
            for lowercase in [true, false] {
                guard let t = try? BertTokenizer(vocabulary: vocabulary, lowercase: lowercase) else { continue }
                exercise(t, input: text(data))
            }
            if let t = try? BertTokenizer(vocabularyURL: Scratch.file("vocab.txt", data)) { exercise(t, input: text(data)) }
        }
    }

    static let bpeJSON = Harness(name: "bpe-json",
                                 summary: "ByteLevelBPETokenizer(tokenizerJSON:) / (tokenizerJSONURL:), encoding and decoding") {
        { data in
            for d in variants(data) {
                if let t = try? ByteLevelBPETokenizer(tokenizerJSON: d) { exercise(t) }
            }
            _ = try? ByteLevelBPETokenizer(tokenizerJSONURL: Scratch.file("tokenizer.json", data))
        }
    }

    /// tokenizer_config.json (added tokens, special tokens, chat template) next to the committed
    /// tiny tokenizer.json.
    static let bpeConfig = Harness(name: "bpe-config",
                                   summary: "ByteLevelBPETokenizer(tokenizerJSON: tiny fixture, tokenizerConfig: input)") {
        let tokenizerJSON = try Data(contentsOf: fixture("bpe/tiny/tokenizer.json"))
        return { data in
            if let t = try? ByteLevelBPETokenizer(tokenizerJSON: tokenizerJSON, tokenizerConfig: data) { exercise(t) }
        }
    }

    static let chatTemplate = Harness(name: "chat-template", summary: "ChatTemplate(source) and rendering") {
        { data in exercise(template: text(data)) }
    }
}

private func exercise(_ t: BertTokenizer, input: String) {
    for s in sampleTexts + [input] {
        _ = t.tokenize(s)
        _ = t.pieceIDs(s)
        _ = try? t.encode(s, maxLength: 16)
    }
    _ = try? t.encodeBatch(sampleTexts, maxLength: 8)
    _ = try? t.encodeBatch([input, ""], maxLength: 64, padding: .fixed)
    for id in [0, 1, Int32(clamping: t.vocabularySize) - 1, Int32(clamping: t.vocabularySize), -1] { _ = t.token(for: id) }
}
