import Foundation
import LoRTA

// The JSON configuration files: adapter_config.json (PEFT), BERT and Llama config.json. After a
// successful parse, everything derived from the configuration is computed too (a parse that
// accepts a value the derived quantities cannot handle is a bug).

extension Harness {
    static let peftConfig = Harness(name: "peft-config",
                                    summary: "PEFTAdapterConfiguration(jsonData:) / (contentsOf:), LoRTA configuration, JSON round trip") {
        { data in
            for d in variants(data) {
                guard let c = try? PEFTAdapterConfiguration(jsonData: d) else { continue }
                for module in ["query", "value", "q_proj", "attention.output.dense", "encoder.layer.0.attention.self.query", ""] {
                    _ = c.targetModules.matches(module)
                    _ = c.rank(forModule: module)
                    _ = c.alpha(forModule: module)
                    _ = c.scale(forModule: module)
                }
                if let lorta = try? LoRTAConfiguration(peftConfiguration: c) {
                    _ = lorta.peftConfiguration
                    _ = lorta.factorATensorNames
                    _ = lorta.factorTensorShapes
                    if let json = try? lorta.adapterConfigJSON() { _ = try? PEFTAdapterConfiguration(jsonData: json) }
                }
                _ = try? LoRTAConfiguration(peftConfiguration: c, headDimension: 4)
            }
            _ = try? PEFTAdapterConfiguration(contentsOf: Scratch.file("adapter_config.json", data))
        }
    }

    static let bertConfig = Harness(name: "bert-config",
                                    summary: "BertConfiguration(json:) / (contentsOf:) and its adapter host") {
        { data in
            for d in variants(data) {
                guard let c = try? BertConfiguration(json: d) else { continue }
                _ = c.headSize
                let host = c.adapterHost
                for m in host.modules { _ = host.peftTargetName(m); _ = host.peftPrefix(layer: 0, module: m) }
            }
            _ = try? BertConfiguration(contentsOf: Scratch.file("config.json", data))
        }
    }

    static let llamaConfig = Harness(name: "llama-config",
                                     summary: "LlamaConfiguration(json:) / (contentsOf:), parameter count, rotary frequencies") {
        { data in
            for d in variants(data) {
                guard let c = try? LlamaConfiguration(json: d) else { continue }
                _ = c.queryWidth
                _ = c.keyValueWidth
                _ = c.parameterCount
                _ = c.rotaryInverseFrequencies
            }
            _ = try? LlamaConfiguration(contentsOf: Scratch.file("config.json", data))
        }
    }
}
