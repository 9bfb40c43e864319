import Foundation
import LoRTA

// The binary and tabular file formats: safetensors, GGUF, .npy, CSV. Each parses the input
// from memory (as given and as a slice not starting at index 0) and from a file, then reads
// everything the parsed value offers.

extension Harness {
    static let safeTensors = Harness(name: "safetensors",
                                     summary: "SafeTensorsReader(data:) / (contentsOf:), every tensor read") {
        { data in
            for d in variants(data) {
                if let reader = try? SafeTensorsReader(data: d) { readAll(reader) }
            }
            if let reader = try? SafeTensorsReader(contentsOf: Scratch.file("input.safetensors", data)) {
                readAll(reader)
            }
            _ = try? SafeTensors.load(Scratch.directory.appendingPathComponent("input.safetensors"))
        }
    }

    static let gguf = Harness(name: "gguf",
                              summary: "GGUFReader, its tensors and metadata, Llama config/model, GGUF vocabulary") {
        { data in
            for d in variants(data) {
                if let reader = try? GGUFReader(data: d) { readAll(reader) }
            }
            _ = try? GGUFReader(contentsOf: Scratch.file("input.gguf", data))
        }
    }

    static let npy = Harness(name: "npy", summary: "NumpyArray(data:) / (contentsOf:) and every conversion") {
        { data in
            for d in variants(data) {
                if let array = try? NumpyArray(data: d) { readAll(array) }
            }
            if let array = try? NumpyArray(contentsOf: Scratch.file("input.npy", data)) { readAll(array) }
        }
    }

    static let csv = Harness(name: "csv", summary: "CSVMatrix.read(data:) with header detection on/off/auto and three delimiters") {
        { data in
            for d in variants(data) {
                for header in [nil, true, false] as [Bool?] { _ = try? CSVMatrix.read(data: d, hasHeader: header) }
                _ = try? CSVMatrix.read(data: d, delimiter: ";")
                _ = try? CSVMatrix.read(data: d, delimiter: "\t")
            }
            _ = try? CSVMatrix.read(contentsOf: Scratch.file("input.csv", data))
        }
    }
}

private func readAll(_ reader: SafeTensorsReader) {
    _ = reader.metadata
    _ = reader.dataByteCount
    for entry in reader.entries {
        _ = reader.entry(entry.name)
        _ = try? reader.rawBytes(entry.name)
        _ = try? reader.storedBytes(entry.name)
        _ = try? reader.tensor(entry.name)
    }
}

private func readAll(_ reader: GGUFReader) {
    let m = reader.metadata
    _ = m.description
    for (key, value) in m {
        _ = value.description
        _ = try? m.string(forKey: key); _ = try? m.int(forKey: key); _ = try? m.float(forKey: key)
        _ = try? m.double(forKey: key); _ = try? m.bool(forKey: key); _ = try? m.array(forKey: key)
        _ = try? m.stringArray(forKey: key); _ = try? m.int32Array(forKey: key)
        _ = try? m.intArray(forKey: key); _ = try? m.floatArray(forKey: key)
    }
    for info in reader.tensorInfos {
        _ = reader.tensorInfo(named: info.name)
        _ = reader.fileRange(of: info)
        _ = try? reader.rawBytes(of: info.name)
        _ = try? reader.tensor(named: info.name)
    }
    if let tokenizer = try? ByteLevelBPETokenizer(gguf: reader) { exercise(tokenizer) }
    _ = try? LlamaTokenizerExport.huggingFaceFiles(fromGGUF: m)
    if let configuration = try? LlamaConfiguration(gguf: reader) {
        _ = configuration.parameterCount
        _ = configuration.rotaryInverseFrequencies
    }
    // A model that loads must also run (a forward over two tokens), unless it is big.
    if let model = try? LlamaModel(gguf: reader), model.configuration.parameterCount <= 1 << 20 {
        _ = try? model.logits(for: [0, 1])
    }
}

private func readAll(_ array: NumpyArray) {
    _ = try? array.floatMatrix()
    _ = try? array.doubleMatrix()
    _ = try? array.doubleValues()
    _ = try? array.integerLabels()
    _ = array.firstNonFiniteIndex()
}

/// Encodes, decodes and stream-decodes the sample texts with a tokenizer built from fuzzed input.
func exercise(_ tokenizer: ByteLevelBPETokenizer) {
    for text in sampleTexts {
        for special in [true, false] {
            let ids = tokenizer.encode(text, addingSpecialTokens: special, parsingSpecialTokens: special)
            _ = try? tokenizer.decode(ids)
            _ = try? tokenizer.decode(ids, skippingSpecialTokens: true)
            var stream = tokenizer.makeStreamingDecoder()
            for id in ids { _ = try? stream.append(id) }
            _ = stream.finish()
        }
        _ = tokenizer.tokenize(text)
    }
    let n = Int32(clamping: tokenizer.vocabularySize)
    for id in [0, 1, n / 2, n - 1, n, -1, Int32.max] {
        _ = tokenizer.token(for: id)
        _ = tokenizer.isSpecial(id)
        _ = try? tokenizer.bytes(for: id)
        _ = try? tokenizer.decode([id])
    }
    if let template = tokenizer.chatTemplate { exercise(template: template) }
}

/// Parses a chat template and renders a few conversations with it.
func exercise(template source: String) {
    guard let template = try? ChatTemplate(source) else { return }
    _ = template.defaultSystemMessage
    let conversations: [[ChatMessage]] = [
        [], [.user("hi")], [.system("be brief"), .user("hi"), .assistant("hello"), .user("again")],
        [ChatMessage(role: "tool", content: "{\"x\": 1}"), .assistant("")],
    ]
    for messages in conversations {
        _ = template.render(messages, addGenerationPrompt: true)
        _ = template.render(messages, addGenerationPrompt: false)
    }
}
