extension BertModel {
    /// The model with the adapter merged into its weights (`W += ΔW` for every adapted
    /// projection, through ``Adapter/merge(into:layer:module:)``): its plain forward equals the
    /// adapted forward up to rounding.
    /// - Throws: ``AdapterError`` when the adapter was made for another model shape.
    /// - Complexity: O(L · |targets| · d² · r).
    public func merged(with adapter: any Adapter) throws -> BertModel {
        try adapter.validate(for: adapterHost)
        let d = configuration.hiddenSize
        var model = self
        for l in layers.indices {
            var lw = model.layers[l]
            // Q, K, V are the row blocks of the fused [3d, d] weight.
            var qkv = lw.queryKeyValueWeight.scalars
            for (m, p) in [BertProjection.query, .key, .value].enumerated() {
                var slice = try Tensor(Array(qkv[(m * d * d)..<((m + 1) * d * d)]), shape: [d, d])
                try adapter.merge(into: &slice, layer: l, module: p.rawValue)
                qkv.replaceSubrange((m * d * d)..<((m + 1) * d * d), with: slice.scalars)
            }
            lw.queryKeyValueWeight = try Tensor(qkv, shape: [3 * d, d])
            try adapter.merge(into: &lw.attentionOutputWeight, layer: l, module: BertProjection.attentionOutput.rawValue)
            model.layers[l] = lw
        }
        return model
    }
}
