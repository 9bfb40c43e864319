import Foundation
import Testing
import CKernels
@testable import LoRTA

// BERT's frozen weights packed once (BertModel.packFrozenWeights, lt_linear_*_packed in lt_nn.h):
// the packed forward products must give exactly the unpacked ones' bits — the C functions on
// shapes with one and several k-chunks (d_in > 384), with bias, residual, terms and GELU, and a
// BERT's forward and LoRA training gradients — on every ISA, 1 and 2 threads and both GEMM
// backends; a buffer packed under another ISA (or a NULL one) falls back to W with the same bits,
// and a packed buffer is really read when it can be (a buffer packed from another W changes the
// result on our GEMM core only).

/// Floats in one malloc'd block (NaN or a value), freed with the object.
private final class PBuf {
    let p: UnsafeMutablePointer<Float>
    let count: Int
    init(_ count: Int, fill: Float = .nan) {
        self.count = max(count, 1)
        p = .allocate(capacity: self.count)
        p.initialize(repeating: fill, count: self.count)
    }
    convenience init(_ values: [Float]) {
        self.init(values.count)
        for (i, v) in values.enumerated() { p[i] = v }
    }
    deinit { p.deallocate() }
    var array: [Float] { Array(UnsafeBufferPointer(start: p, count: count)) }
}

/// One product Y[n × d_out] = X[n × d_in] Wᵀ with its extras, row padding NaN (inputs) or a
/// sentinel (outputs), so reading or writing past a row shows up.
private struct PackedCase {
    let n, dIn, dOut: Int
    var ldx: Int { dIn + 3 }
    var ldw: Int { dIn + 1 }
    var ldy: Int { dOut + 4 }   // also ldr, ldz, ldg (R may be Y)
    static let rank = 5
    let x, w, bias, r, coef, m: PBuf

    init(n: Int, dIn: Int, dOut: Int, seed: UInt64) {
        self.n = n; self.dIn = dIn; self.dOut = dOut
        var rng = LoRATestRNG(seed: seed)
        func matrix(_ rows: Int, _ cols: Int, _ ld: Int, _ scale: Float) -> PBuf {
            let b = PBuf(rows * ld)
            for i in 0..<rows { for j in 0..<cols { b.p[i * ld + j] = rng.uniform(scale) } }
            return b
        }
        x = matrix(n, dIn, dIn + 3, 1)
        w = matrix(dOut, dIn, dIn + 1, 1 / Float(dIn).squareRoot() * 2)
        bias = matrix(1, dOut, dOut, 0.5)
        r = matrix(n, dOut, dOut + 4, 1)
        coef = matrix(n, Self.rank, Self.rank, 1)
        m = matrix(Self.rank, dOut, dOut, 0.5)
    }

    /// Two terms: ranks 3 and 2 over overlapping column ranges (inside 0 ..< d_out).
    var terms: [lt_lowrank_term] {
        let w1 = max(dOut - 1, 0), w2 = dOut / 2
        return [lt_lowrank_term(col: Int64(dOut - w1), width: Int64(w1), rank: 3, coef: UnsafePointer(coef.p), ldcoef: Int64(Self.rank),
                                M: UnsafePointer(m.p), ldm: Int64(dOut)),
                lt_lowrank_term(col: 0, width: Int64(w2), rank: 2, coef: UnsafePointer(coef.p + 3), ldcoef: Int64(Self.rank),
                                M: UnsafePointer(m.p + 3 * dOut), ldm: Int64(dOut))]
    }

    /// W (or `other`, same layout) packed for the active ISA.
    func pack(_ other: PBuf? = nil) -> PBuf {
        var floats: Int64 = 0
        precondition(lt_sgemm_packed_b_size(1, Int64(dIn), Int64(dOut), &floats) == LT_OK)
        let b = PBuf(Int(floats))
        precondition(lt_sgemm_pack_b(1, Int64(dIn), Int64(dOut), UnsafePointer((other ?? w).p), Int64(ldw), b.p, floats) == LT_OK)
        return b
    }

    enum Kind: CaseIterable {
        case plain, bias, residual, biasResidual, inPlace, terms, termsBiasResidual, gelu, geluInPlace
    }

    /// Runs `kind` unpacked (`packed` nil and `unpacked` true) or through the packed function
    /// (with `packed`, possibly nil); `weight` replaces W. Returns the status and Y (Z|G for GELU).
    func run(_ kind: Kind, packed: PBuf?, unpacked: Bool = false, weight: PBuf? = nil) -> (lt_status, [Float]) {
        let n64 = Int64(n), di = Int64(dIn), dO = Int64(dOut), ly = Int64(ldy)
        let W = UnsafePointer((weight ?? w).p), X = UnsafePointer(x.p), P = packed.map { UnsafePointer($0.p) }
        let y = PBuf(n * ldy, fill: 7.25)
        let g = PBuf(n * ldy, fill: -3.5)
        let b = UnsafePointer(bias.p), R = UnsafePointer(r.p)
        var st: lt_status
        switch kind {
        case .plain, .bias, .residual, .biasResidual, .inPlace:
            let hasB = kind == .bias || kind == .biasResidual || kind == .inPlace
            var res: UnsafePointer<Float>? = (kind == .residual || kind == .biasResidual) ? R : nil
            if kind == .inPlace {
                for i in 0..<n { for j in 0..<dOut { y.p[i * ldy + j] = r.p[i * ldy + j] } }
                res = UnsafePointer(y.p)
            }
            st = unpacked ? lt_linear_forward(n64, di, dO, X, Int64(ldx), W, Int64(ldw), hasB ? b : nil, res, ly, y.p, ly)
                          : lt_linear_forward_packed(n64, di, dO, X, Int64(ldx), W, Int64(ldw), P, hasB ? b : nil, res, ly, y.p, ly)
            return (st, y.array)
        case .terms, .termsBiasResidual:
            let t = terms, full = kind == .termsBiasResidual
            st = t.withUnsafeBufferPointer { tp in
                unpacked ? lt_linear_forward_terms(n64, di, dO, X, Int64(ldx), W, Int64(ldw), full ? b : nil, full ? R : nil, ly,
                                                   tp.baseAddress, 2, y.p, ly)
                         : lt_linear_forward_packed_terms(n64, di, dO, X, Int64(ldx), W, Int64(ldw), P, full ? b : nil,
                                                          full ? R : nil, ly, tp.baseAddress, 2, y.p, ly)
            }
            return (st, y.array)
        case .gelu, .geluInPlace:
            let gp = kind == .gelu ? g.p : y.p
            st = unpacked ? lt_linear_gelu_forward(n64, di, dO, X, Int64(ldx), W, Int64(ldw), b, y.p, ly, gp, ly)
                          : lt_linear_gelu_forward_packed(n64, di, dO, X, Int64(ldx), W, Int64(ldw), P, b, y.p, ly, gp, ly)
            return (st, y.array + (kind == .gelu ? g.array : []))
        }
    }
}

/// A random BERT wider than the tiny one (so its products are not all narrow for the GEMM core):
/// vocab 30, d = 64, 4 heads, `layers` layers, I = `intermediate`, 16 positions.
private func widerBertModel(seed: UInt64 = 5, layers: Int = 2, intermediate: Int = 416) throws -> BertModel {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lorta-packed-bert-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let d = 64, inter = intermediate, vocab = 30, positions = 16
    let cfg: [String: Any] = [
        "model_type": "bert", "vocab_size": vocab, "hidden_size": d, "num_hidden_layers": layers,
        "num_attention_heads": 4, "intermediate_size": inter, "max_position_embeddings": positions,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
    ]
    try JSONSerialization.data(withJSONObject: cfg).write(to: dir.appendingPathComponent("config.json"))
    var rng = LoRATestRNG(seed: seed)
    var shapes: [(String, [Int])] = [
        ("embeddings.word_embeddings.weight", [vocab, d]), ("embeddings.position_embeddings.weight", [positions, d]),
        ("embeddings.token_type_embeddings.weight", [2, d]), ("embeddings.LayerNorm.weight", [d]),
        ("embeddings.LayerNorm.bias", [d]),
    ]
    for l in 0..<layers {
        let p = "encoder.layer.\(l)."
        for m in ["query", "key", "value"] {
            shapes += [(p + "attention.self.\(m).weight", [d, d]), (p + "attention.self.\(m).bias", [d])]
        }
        shapes += [(p + "attention.output.dense.weight", [d, d]), (p + "attention.output.dense.bias", [d]),
                   (p + "attention.output.LayerNorm.weight", [d]), (p + "attention.output.LayerNorm.bias", [d]),
                   (p + "intermediate.dense.weight", [inter, d]), (p + "intermediate.dense.bias", [inter]),
                   (p + "output.dense.weight", [d, inter]), (p + "output.dense.bias", [d]),
                   (p + "output.LayerNorm.weight", [d]), (p + "output.LayerNorm.bias", [d])]
    }
    var writer = SafeTensorsWriter()
    for (name, shape) in shapes {
        if name.hasSuffix("LayerNorm.weight") {
            try writer.add(name, try Tensor(rng.array(shape[0], scale: 0.3).map { 1 + $0 }, shape: shape))
        } else {
            // Weights scaled by 1/√fan_in so activations stay O(1) through the layers.
            let scale: Float = shape.count == 2 && !name.contains("embeddings") ? 1.5 / Float(shape[1]).squareRoot() : 0.5
            try writer.add(name, rng.tensor(shape, scale: scale))
        }
    }
    try writer.write(to: dir.appendingPathComponent("model.safetensors"))
    return try BertModel(directory: dir)
}

/// Three sequences of lengths 12, 7 and 3 (padded to 12), ids in 0 ..< 30.
private func widerBertBatch(seed: UInt64 = 3) -> TokenBatch {
    var rng = LoRATestRNG(seed: seed)
    let rows: [[Int32]] = [12, 7, 3].map { len in (0..<len).map { _ in Int32(15 + rng.uniform(14.9)) } }
    return tinyBertBatch(rows, length: 12)
}

/// A LoRA adapter on Q, K, V and the attention output with random non-zero A and B.
private func widerBertLoRA(_ c: BertConfiguration, rank: Int = 4, seed: UInt64 = 17) throws -> any Adapter {
    var rng = LoRATestRNG(seed: seed)
    let targets = BertProjection.allCases
    let d = c.hiddenSize
    let a = (0..<c.layerCount).flatMap { _ in targets.map { _ in rng.tensor([rank, d], scale: 0.2) } }
    let b = (0..<c.layerCount).flatMap { _ in targets.map { _ in rng.tensor([d, rank], scale: 0.2) } }
    return try LoRAAdapter(host: c.adapterHost, targets: targets.map(\.rawValue),
                           configuration: LoRAConfiguration(rank: rank, alpha: 2 * Float(rank)), a: a, b: b)
}

/// Forward (plain and with the adapter) and training gradients flattened into one array.
private func bertResults(_ model: BertModel, adapter: any Adapter, head: BertClassificationHead,
                         batch: TokenBatch) throws -> [Float] {
    let plain = try model.forward(batch)
    let adapted = try model.forward(batch, adapter: adapter)
    let g = try model.gradients(batch, labels: [0, 1, 1], adapter: adapter, head: head)
    return plain.lastHiddenState.scalars + plain.pooled.scalars + adapted.lastHiddenState.scalars + [g.loss]
        + g.logits.scalars + g.headWeight.scalars + g.headBias.scalars + (g.adapter ?? []).flatMap(\.scalars)
}

@Suite("BERT with frozen weights packed once (lt_linear_*_packed, BertModel.packFrozenWeights)", .serialized)
struct BertPackedWeightsTests {
    /// n × d_in × d_out: one k-chunk and several (d_in 385, 769, 1000), d_out past and below the
    /// NR widths, BERT-like projections.
    static let shapes: [(n: Int, dIn: Int, dOut: Int)] = [
        (1, 1, 1), (7, 33, 50), (36, 64, 192), (40, 385, 97), (64, 769, 64), (19, 1000, 130), (130, 128, 416),
    ]

    // MARK: C functions

    @Test("lt_linear_*_packed give the unpacked functions' bits (every ISA, 1 and 2 threads, both backends)")
    func cFunctionsMatchUnpacked() throws {
        for isa in testedInstructionSets() {
            try Runtime.withInstructionSet(isa) {
                for backend in [GEMMBackend.lorta, .openblas] {
                    try Runtime.withGEMMBackend(backend) {
                        for threads in [1, 2] {
                            try Runtime.withThreadCount(threads) {
                                for (index, s) in Self.shapes.enumerated() {
                                    let c = PackedCase(n: s.n, dIn: s.dIn, dOut: s.dOut, seed: 100 + UInt64(index))
                                    let packed = c.pack()
                                    for kind in PackedCase.Kind.allCases {
                                        let what = "\(isa) \(backend) \(threads)t \(s.n)×\(s.dIn)→\(s.dOut) \(kind)"
                                        let (s1, want) = c.run(kind, packed: nil, unpacked: true)
                                        let (s2, got) = c.run(kind, packed: packed)
                                        let (s3, none) = c.run(kind, packed: nil)
                                        #expect(s1 == LT_OK && s2 == LT_OK && s3 == LT_OK, "\(what): \(s1) \(s2) \(s3)")
                                        #expect(LoRAReference.bitwiseEqual(want, got),
                                                "\(what): packed differs in \(LoRAReference.bitDifferences(want, got)) values")
                                        #expect(LoRAReference.bitwiseEqual(want, none), "\(what): NULL W_packed differs")
                                        #expect(!want.contains { $0.isNaN }, "\(what): NaN in the output")
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    @Test("the packed buffer is read on our core (a buffer of another W gives that W's result), declined elsewhere")
    func packedBufferIsReallyUsed() throws {
        let isas = testedInstructionSets()
        for (index, s) in [(36, 64, 192), (40, 385, 97)].enumerated() {
            let c = PackedCase(n: s.0, dIn: s.1, dOut: s.2, seed: 300 + UInt64(index))
            let other = PackedCase(n: s.0, dIn: s.1, dOut: s.2, seed: 400 + UInt64(index)).w
            for isa in isas {
                try Runtime.withInstructionSet(isa) {
                    let packedOther = c.pack(other)
                    for kind in PackedCase.Kind.allCases where kind != .inPlace {
                        let what = "\(isa) \(s) \(kind)"
                        let withOther = c.run(kind, packed: nil, unpacked: true, weight: other).1
                        // Our core reads the buffer: the result is the other weight's.
                        #expect(LoRAReference.bitwiseEqual(c.run(kind, packed: packedOther).1, withOther), "\(what): buffer not read")
                        // OpenBLAS: declined, W is used.
                        let blas = Runtime.withGEMMBackend(.openblas) { c.run(kind, packed: packedOther).1 }
                        let blasW = Runtime.withGEMMBackend(.openblas) { c.run(kind, packed: nil, unpacked: true).1 }
                        #expect(LoRAReference.bitwiseEqual(blas, blasW), "\(what): OpenBLAS backend did not decline")
                        // Under another ISA: declined, W is used (same bits as the unpacked function there).
                        for other in isas where other != isa {
                            let (got, want) = try Runtime.withInstructionSet(other) {
                                (c.run(kind, packed: packedOther).1, c.run(kind, packed: nil, unpacked: true).1)
                            }
                            #expect(LoRAReference.bitwiseEqual(got, want), "\(what) run under \(other): not declined")
                        }
                    }
                    // In place (R == Y): always the unpacked path.
                    #expect(LoRAReference.bitwiseEqual(c.run(.inPlace, packed: packedOther).1,
                                                       c.run(.inPlace, packed: nil, unpacked: true).1), "\(isa) in place")
                }
            }
        }
    }

    @Test("argument errors of lt_linear_*_packed (nothing written)")
    func argumentErrors() throws {
        let c = PackedCase(n: 9, dIn: 40, dOut: 50, seed: 7)
        let packed = c.pack()
        let X = UnsafePointer(c.x.p), W = UnsafePointer(c.w.p), P = UnsafePointer(packed.p), b = UnsafePointer(c.bias.p)
        let y = PBuf(c.n * c.ldy, fill: 7.25), g = PBuf(c.n * c.ldy, fill: 7.25)
        let ly = Int64(c.ldy)
        // lt_linear_forward_packed
        #expect(lt_linear_forward_packed(9, 40, 50, nil, 43, W, 41, P, b, nil, 0, y.p, ly) == LT_ERR_NULL_POINTER)
        #expect(lt_linear_forward_packed(9, 40, 50, X, 43, nil, 41, P, b, nil, 0, y.p, ly) == LT_ERR_NULL_POINTER)
        #expect(lt_linear_forward_packed(9, 40, 50, X, 43, W, 41, P, b, nil, 0, nil, ly) == LT_ERR_NULL_POINTER)
        #expect(lt_linear_forward_packed(-1, 40, 50, X, 43, W, 41, P, b, nil, 0, y.p, ly) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_linear_forward_packed(9, 40, 50, X, 39, W, 41, P, b, nil, 0, y.p, ly) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_linear_forward_packed(9, 40, 50, X, 43, W, 39, P, b, nil, 0, y.p, ly) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_linear_forward_packed(9, 40, 50, X, 43, W, 41, P, b, nil, 0, y.p, 49) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_linear_forward_packed(9, 40, 50, X, 43, W, 41, P, b, UnsafePointer(c.r.p), 49, y.p, ly) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_linear_forward_packed(9, 40, 50, X, 43, W, 41, P, b, UnsafePointer(y.p), ly - 1, y.p, ly) == LT_ERR_INVALID_ARGUMENT)
        // lt_linear_forward_packed_terms
        var terms = c.terms
        #expect(lt_linear_forward_packed_terms(9, 40, 50, X, 43, nil, 41, P, b, nil, 0, &terms, 2, y.p, ly) == LT_ERR_NULL_POINTER)
        #expect(lt_linear_forward_packed_terms(9, 40, 50, X, 43, W, 41, P, b, UnsafePointer(y.p), ly, &terms, 2, y.p, ly)
                == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_linear_forward_packed_terms(9, 40, 50, X, 43, W, 41, P, b, nil, 0, &terms, -1, y.p, ly) == LT_ERR_INVALID_ARGUMENT)
        terms[0].width = 51
        #expect(lt_linear_forward_packed_terms(9, 40, 50, X, 43, W, 41, P, b, nil, 0, &terms, 2, y.p, ly) == LT_ERR_INVALID_ARGUMENT)
        terms = c.terms
        terms[1].M = nil
        #expect(lt_linear_forward_packed_terms(9, 40, 50, X, 43, W, 41, P, b, nil, 0, &terms, 2, y.p, ly) == LT_ERR_NULL_POINTER)
        terms = c.terms
        #expect(lt_linear_forward_packed_terms(9, 40, 50, X, 39, W, 41, P, b, nil, 0, &terms, 2, y.p, ly) == LT_ERR_INVALID_ARGUMENT)
        // lt_linear_gelu_forward_packed
        #expect(lt_linear_gelu_forward_packed(9, 40, 50, X, 43, nil, 41, P, b, y.p, ly, g.p, ly) == LT_ERR_NULL_POINTER)
        #expect(lt_linear_gelu_forward_packed(9, 40, 50, X, 43, W, 41, P, b, y.p, ly, nil, ly) == LT_ERR_NULL_POINTER)
        #expect(lt_linear_gelu_forward_packed(9, 40, 50, X, 43, W, 41, P, b, y.p, ly, y.p, ly + 1) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_linear_gelu_forward_packed(9, 40, 50, X, 43, W, 41, P, b, y.p, ly, g.p, 49) == LT_ERR_INVALID_ARGUMENT)
        #expect(lt_linear_gelu_forward_packed(9, -2, 50, X, 43, W, 41, P, b, y.p, ly, g.p, ly) == LT_ERR_INVALID_ARGUMENT)
        #expect(y.array.allSatisfy { $0 == 7.25 } && g.array.allSatisfy { $0 == 7.25 }, "an error wrote to the outputs")
        // A buffer for another shape is declined (W is used: the unpacked bits), not an error.
        let wrongShape = PackedCase(n: 9, dIn: 40, dOut: 49, seed: 8).pack()
        for kind in PackedCase.Kind.allCases {
            let (st, got) = c.run(kind, packed: wrongShape)
            #expect(st == LT_OK && LoRAReference.bitwiseEqual(got, c.run(kind, packed: nil, unpacked: true).1), "\(kind)")
        }
        // Empty products.
        #expect(lt_linear_forward_packed(0, 40, 50, X, 43, W, 41, P, b, nil, 0, y.p, ly) == LT_OK)
        #expect(lt_linear_gelu_forward_packed(9, 40, 0, X, 43, W, 41, P, b, y.p, ly, g.p, ly) == LT_OK)
        withExtendedLifetime((c, packed, y, g)) {}
    }

    // MARK: BERT

    @Test("packFrozenWeights: forward and LoRA gradients equal the unpacked model's bits (every ISA, 1 and 2 threads, both backends)")
    func bertPackedMatchesUnpacked() throws {
        let model = try widerBertModel()
        let c = model.configuration
        let adapter = try widerBertLoRA(c)
        let head = try BertClassificationHead(hiddenSize: c.hiddenSize, classCount: 2, seed: 4)
        let batch = widerBertBatch()
        #expect(model.packedWeightBytes == 0)
        for isa in testedInstructionSets() {
            try Runtime.withInstructionSet(isa) {
                var packed = model
                try packed.packFrozenWeights()
                let d = c.hiddenSize, inter = c.intermediateSize
                func bytes(_ rows: Int, _ cols: Int) -> Int { 4 * (16 + (rows + 47) / 48 * 48 * cols) }
                #expect(packed.packedWeightBytes == c.layerCount * (bytes(3 * d, d) + bytes(d, d) + bytes(inter, d) + bytes(d, inter)))
                #expect(model.packedWeightBytes == 0, "packing a copy changed the original")
                for backend in [GEMMBackend.lorta, .openblas] {
                    try Runtime.withGEMMBackend(backend) {
                        for threads in [1, 2] {
                            try Runtime.withThreadCount(threads) {
                                let want = try bertResults(model, adapter: adapter, head: head, batch: batch)
                                let got = try bertResults(packed, adapter: adapter, head: head, batch: batch)
                                #expect(LoRAReference.bitwiseEqual(want, got),
                                        "\(isa) \(backend) \(threads)t: differs in \(LoRAReference.bitDifferences(want, got)) values")
                                #expect(!want.contains { !$0.isFinite })
                            }
                        }
                    }
                }
            }
        }
    }

    @Test("packed under one ISA, run under another: the same bits (the copies repack), and they are really read")
    func bertPackedThenISASwitch() throws {
        let isas = testedInstructionSets()
        var model = try widerBertModel(seed: 9, layers: 1)
        let c = model.configuration
        let adapter = try widerBertLoRA(c, seed: 23)
        let head = try BertClassificationHead(hiddenSize: c.hiddenSize, classCount: 2, seed: 6)
        let batch = widerBertBatch(seed: 8)
        for packISA in isas {
            var packed = model
            try Runtime.withInstructionSet(packISA) { try packed.packFrozenWeights() }
            for runISA in isas {
                try Runtime.withInstructionSet(runISA) {
                    let want = try bertResults(model, adapter: adapter, head: head, batch: batch)
                    let got = try bertResults(packed, adapter: adapter, head: head, batch: batch)
                    #expect(LoRAReference.bitwiseEqual(want, got), "packed under \(packISA), run under \(runISA)")
                    #expect(packed.layers[0].packedIntermediateWeight?.packedInstructionSet == runISA)
                }
            }
        }
        // The copies are what the forward reads: a copy of another weight changes the output on
        // our core (and not with OpenBLAS, which uses the weight itself).
        let plain = try model.forward(batch, adapter: adapter).lastHiddenState.scalars
        let blasPlain = try Runtime.withGEMMBackend(.openblas) { try model.forward(batch, adapter: adapter).lastHiddenState.scalars }
        let projections: [(String, WritableKeyPath<BertLayerWeights, Tensor>, WritableKeyPath<BertLayerWeights, PackedMatrix?>)] = [
            ("QKV", \.queryKeyValueWeight, \.packedQueryKeyValueWeight),
            ("attention output", \.attentionOutputWeight, \.packedAttentionOutputWeight),
            ("intermediate", \.intermediateWeight, \.packedIntermediateWeight),
            ("output", \.outputWeight, \.packedOutputWeight),
        ]
        for (name, weight, copy) in projections {
            var tampered = model
            try tampered.packFrozenWeights()
            var w = tampered.layers[0][keyPath: weight].scalars
            w[5] += 0.25
            tampered.layers[0][keyPath: copy] = try PackedMatrix(try Tensor(w, shape: tampered.layers[0][keyPath: weight].shape))
            let got = try tampered.forward(batch, adapter: adapter).lastHiddenState.scalars
            #expect(!LoRAReference.bitwiseEqual(got, plain), "\(name): packed copy not read")
            let blas = try Runtime.withGEMMBackend(.openblas) { try tampered.forward(batch, adapter: adapter).lastHiddenState.scalars }
            #expect(LoRAReference.bitwiseEqual(blas, blasPlain), "\(name): OpenBLAS backend read the packed copy")
        }
        var w = model.layers[0].intermediateWeight.scalars
        w[5] += 0.25
        // Changing a weight drops its packed copy; dropPackedWeights drops them all.
        model.layers[0].intermediateWeight = try Tensor(w, shape: model.layers[0].intermediateWeight.shape)
        try model.packFrozenWeights()
        model.layers[0].outputWeight = model.layers[0].outputWeight
        #expect(model.layers[0].packedOutputWeight == nil && model.layers[0].packedIntermediateWeight != nil)
        let merged = try model.merged(with: adapter)
        #expect(merged.layers[0].packedQueryKeyValueWeight == nil && merged.layers[0].packedAttentionOutputWeight == nil
                && merged.layers[0].packedIntermediateWeight != nil)
        var mergedUnpacked = merged
        mergedUnpacked.dropPackedWeights()
        #expect(LoRAReference.bitwiseEqual(try merged.forward(batch).lastHiddenState.scalars,
                                           try mergedUnpacked.forward(batch).lastHiddenState.scalars))
        model.dropPackedWeights()
        #expect(model.packedWeightBytes == 0)
    }
}
