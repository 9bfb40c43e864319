// Compiled with the README's Swift snippets by scripts/check-embedding.sh (never run): the names
// the snippets use without defining them. Every snippet becomes the body of a function
// `readmeSnippetN() async throws` in ReadmeSnippets.swift beside this file.
import Foundation
import LoRTA

let modelURL = URL(filePath: "assets/all-MiniLM-L6-v2")
let trainURL = URL(filePath: "assets/movies/train.tsv")
let checkpointURL = URL(filePath: "runs/checkpoint")
let outURL = URL(filePath: "runs/adapter")
let exportURL = URL(filePath: "runs/merged")
var testData: LabelledTextDataset {
    get throws { try LabelledTextDataset.load(from: URL(filePath: "assets/movies/test.tsv"), labelCount: 2) }
}
