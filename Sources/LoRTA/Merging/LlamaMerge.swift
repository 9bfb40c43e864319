import Foundation

extension StackedProjection {
    /// All parts as one float32 matrix `[outputWidth, inputWidth]` (quantized runs dequantized).
    func dense() throws -> Tensor {
        var out = try Tensor(uninitialized: [outputWidth, inputWidth])
        let op = out.mutablePointer
        for (run, offset) in zip(runs, offsets) {
            let t = try run.dequantized()
            (op + offset * inputWidth).update(from: t.pointer, count: t.count)
            withExtendedLifetime(t) {}
        }
        return out
    }
}

extension LlamaModel {
    /// Where each adaptable projection of a layer lives: its stacked group and first row.
    private func rowRange(_ module: String) -> (group: String, offset: Int, rows: Int)? {
        let c = configuration
        switch module {
        case "q_proj": return ("qkv", 0, c.queryWidth)
        case "k_proj": return ("qkv", c.queryWidth, c.keyValueWidth)
        case "v_proj": return ("qkv", c.queryWidth + c.keyValueWidth, c.keyValueWidth)
        case "gate_proj": return ("gu", 0, c.intermediateSize)
        case "up_proj": return ("gu", c.intermediateSize, c.intermediateSize)
        case "o_proj": return ("o", 0, c.hiddenSize)
        case "down_proj": return ("down", 0, c.hiddenSize)
        default: return nil
        }
    }

    /// The float32 weight (Hugging Face orientation and row order) of one projection.
    /// - Throws: ``AdapterError/unknownTarget(_:available:)`` for another module name.
    public func weight(layer l: Int, module: String) throws -> Tensor {
        guard l >= 0, l < layers.count else {
            throw LlamaError.invalidParameter(name: "layer", value: "\(l)", expected: "0..<\(layers.count)")
        }
        guard let (group, offset, rows) = rowRange(module) else {
            throw AdapterError.unknownTarget(module, available: adapterHost.modules.map(\.name))
        }
        let w = layers[l]
        switch group {
        case "o": return try w.attentionOutput.dequantized()
        case "down": return try w.down.dequantized()
        default:
            let all = try (group == "qkv" ? w.queryKeyValue : w.gateUp).dense()
            let cols = all.shape[1]
            return try Tensor(Array(all.scalars[(offset * cols)..<((offset + rows) * cols)]), shape: [rows, cols])
        }
    }

    /// `W + ΔW` of every projection the adapter changes, by Hugging Face weight name
    /// (`model.layers.3.self_attn.q_proj.weight`), float32 in Hugging Face's row order.
    /// - Throws: ``AdapterError`` when the adapter does not fit the model.
    /// - Complexity: O(L · Σ_targets d_out · d_in · r) plus dequantizing the adapted matrices.
    public func mergedWeights(with adapter: any Adapter) throws -> [String: Tensor] {
        let host = adapterHost
        try adapter.validate(for: host)
        var out: [String: Tensor] = [:]
        for l in layers.indices {
            for name in adapter.targetModules {
                guard let module = host.module(named: name) else { continue }
                var w = try weight(layer: l, module: module.name)
                try adapter.merge(into: &w, layer: l, module: module.name)
                out["\(LlamaWeightNames.layer(l, module.path)).weight"] = w
            }
        }
        return out
    }

    /// The model with the adapter merged into its weights: the adapted projections become
    /// float32 matrices `W + ΔW` (the others keep their stored type), so its plain forward
    /// equals the adapted forward up to rounding.
    /// - Throws: ``AdapterError`` when the adapter does not fit the model.
    public func merged(with adapter: any Adapter) throws -> LlamaModel {
        let host = adapterHost
        try adapter.validate(for: host)
        var model = self
        for l in layers.indices {
            let targets = adapter.targetModules.compactMap { host.module(named: $0)?.name }
            guard !targets.isEmpty else { continue }
            var w = model.layers[l]
            var qkv: Tensor? = nil, gu: Tensor? = nil
            for m in targets {
                guard let delta = try adapter.delta(layer: l, module: m), let (group, offset, rows) = rowRange(m) else { continue }
                switch group {
                case "o":
                    var t = try w.attentionOutput.dequantized()
                    try add(delta, into: &t, rowOffset: 0, rows: rows)
                    w.attentionOutput = try QuantizedMatrix(t, name: w.attentionOutput.name)
                case "down":
                    var t = try w.down.dequantized()
                    try add(delta, into: &t, rowOffset: 0, rows: rows)
                    w.down = try QuantizedMatrix(t, name: w.down.name)
                case "qkv":
                    if qkv == nil { qkv = try w.queryKeyValue.dense() }
                    try add(delta, into: &qkv!, rowOffset: offset, rows: rows)
                default:
                    if gu == nil { gu = try w.gateUp.dense() }
                    try add(delta, into: &gu!, rowOffset: offset, rows: rows)
                }
            }
            if let qkv {
                w.queryKeyValue = try StackedProjection([QuantizedMatrix(qkv, name: LlamaWeightNames.layer(l, "self_attn.qkv"))],
                                                        name: LlamaWeightNames.layer(l, "self_attn.qkv"))
            }
            if let gu {
                w.gateUp = try StackedProjection([QuantizedMatrix(gu, name: LlamaWeightNames.layer(l, "mlp.gate_up"))],
                                                 name: LlamaWeightNames.layer(l, "mlp.gate_up"))
            }
            model.layers[l] = w
        }
        return model
    }

    private func add(_ delta: Tensor, into w: inout Tensor, rowOffset: Int, rows: Int) throws {
        let cols = w.shape[1]
        guard delta.shape == [rows, cols] else {
            throw AdapterError.incompatible("update of shape \(delta.shape) for \(rows) rows of width \(cols)")
        }
        let wp = w.mutablePointer + rowOffset * cols, dp = delta.pointer
        for i in 0..<(rows * cols) { wp[i] += dp[i] }
        withExtendedLifetime(delta) {}
    }
}
