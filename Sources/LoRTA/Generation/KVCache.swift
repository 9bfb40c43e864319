/// The keys and values of the tokens a causal model has already seen, per layer, so that each
/// new token costs one pass over the weights instead of re-running the whole prefix.
///
/// Layout per layer: `[batchSize · capacity, H_kv · d_h]` for keys and values; sequence `b`
/// owns rows `b·capacity ..< (b+1)·capacity`, of which the first ``length`` are filled (every
/// sequence of a batch has the same length). Keys are stored after the rotary embedding.
/// Memory: `2 · L · batchSize · capacity · H_kv · d_h` floats (SmolLM2-135M: 46 KB per token
/// and sequence), allocated up front by ``LlamaModel/makeCache(batchSize:capacity:)``.
public struct KVCache: Sendable {
    public let batchSize: Int
    /// Tokens per sequence the cache can hold.
    public let capacity: Int
    /// Tokens per sequence already cached (the position of the next token).
    public internal(set) var length: Int = 0
    let layerCount: Int
    let width: Int
    var keys: [Tensor]
    var values: [Tensor]

    /// A transient cache stores nothing: a forward pass from it reads each layer's keys and
    /// values where it computed them and leaves the cache empty (``length`` stays 0). For passes
    /// whose cache would be thrown away (training, scoring, observation): it saves
    /// `2 · L · B · T · H_kv · d_h` floats and their copies.
    let isTransient: Bool

    init(layerCount: Int, batchSize: Int, capacity: Int, width: Int) throws {
        self.batchSize = batchSize
        self.capacity = capacity
        self.layerCount = layerCount
        self.width = width
        isTransient = false
        keys = try (0..<layerCount).map { _ in try Tensor(zeros: [batchSize * capacity, width]) }
        values = try (0..<layerCount).map { _ in try Tensor(zeros: [batchSize * capacity, width]) }
    }

    /// A transient cache (see ``isTransient``) for one pass over `batchSize` sequences of `length` tokens.
    init(transientBatchSize batchSize: Int, length: Int, for configuration: LlamaConfiguration) {
        self.batchSize = batchSize
        capacity = length
        layerCount = configuration.layerCount
        width = configuration.keyValueWidth
        isTransient = true
        keys = (0..<layerCount).map { _ in Tensor(uninitializedShape: [0]) }
        values = keys
    }

    /// Tokens that still fit.
    public var remainingCapacity: Int { capacity - length }

    /// Forgets every cached token (the buffers are kept).
    public mutating func reset() { length = 0 }

    /// Keeps the first `count` cached tokens (e.g. to re-run from a shared prefix).
    /// - Throws: ``LlamaError/invalidParameter(name:value:expected:)`` unless `0 ≤ count ≤ length`.
    public mutating func truncate(to count: Int) throws(LlamaError) {
        guard count >= 0, count <= length else {
            throw .invalidParameter(name: "count", value: "\(count)", expected: "0...\(length)")
        }
        length = count
    }

    /// Bytes held by the cache.
    public var byteCount: Int { isTransient ? 0 : 2 * layerCount * batchSize * capacity * width * MemoryLayout<Float>.stride }
}
