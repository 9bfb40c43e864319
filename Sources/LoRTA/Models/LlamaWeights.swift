import Foundation

/// Hugging Face names of a `LlamaForCausalLM`'s tensors — the names the model, its adapters
/// and exported files use.
public enum LlamaWeightNames {
    public static let embedding = "model.embed_tokens.weight"
    public static let finalNorm = "model.norm.weight"
    public static let output = "lm_head.weight"
    /// `model.layers.<layer>.<suffix>`, e.g. `layer(0, "self_attn.q_proj.weight")`.
    public static func layer(_ layer: Int, _ suffix: String) -> String { "model.layers.\(layer).\(suffix)" }
}

/// Where a model's weights come from: a GGUF file or a Hugging Face checkpoint. Names are
/// always Hugging Face's (``LlamaWeightNames``) and matrices come in Hugging Face's row order;
/// each source maps them to its own names and layout.
protocol LlamaWeightSource {
    /// A path, for messages.
    var sourceDescription: String { get }
    /// The shape (outermost first) of the tensor `name`, or nil when absent.
    func shape(of name: String) -> [Int]?
    /// A 2-dimensional tensor, in its stored type.
    func matrix(_ name: String) throws -> QuantizedMatrix
    /// A 1-dimensional tensor widened to Float32.
    func vector(_ name: String) throws -> Tensor
    /// The name as the source stores it (for error messages).
    func storedName(_ name: String) -> String
}

/// Weights of a Hugging Face checkpoint: `model.safetensors`, or the shards listed by
/// `model.safetensors.index.json`. F32, F16 and BF16 matrices are read in place from the
/// memory-mapped file (no copy; the kernels widen half-precision values exactly on the fly);
/// F64 is rounded to Float32.
struct SafeTensorsLlamaWeights: LlamaWeightSource {
    let sourceDescription: String
    /// Reader of each tensor name.
    private let readers: [String: SafeTensorsReader]

    init(directory: URL) throws {
        let single = directory.appendingPathComponent("model.safetensors")
        let index = directory.appendingPathComponent("model.safetensors.index.json")
        let fm = FileManager.default
        if fm.fileExists(atPath: single.path) {
            let reader = try Self.open(single)
            readers = Dictionary(uniqueKeysWithValues: reader.names.map { ($0, reader) })
            sourceDescription = single.path
        } else if fm.fileExists(atPath: index.path) {
            let data: Data
            do { data = try RegularFile.read(index) } catch {
                throw LlamaError.unreadableFile(path: index.path, reason: error.reason)
            }
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let map = object["weight_map"] as? [String: Any] else {
                throw LlamaError.unreadableFile(path: index.path, reason: "no \"weight_map\" object")
            }
            var files: [String: SafeTensorsReader] = [:]
            var readers: [String: SafeTensorsReader] = [:]
            for (name, value) in map {
                guard let file = value as? String, !file.contains("/"), !file.hasPrefix(".") else {
                    throw LlamaError.unreadableFile(path: index.path, reason: "weight_map[\"\(name)\"] is not a file name in the directory")
                }
                if files[file] == nil { files[file] = try Self.open(directory.appendingPathComponent(file)) }
                guard files[file]!.entry(name) != nil else {
                    throw LlamaError.unreadableFile(path: index.path, reason: "\(file) does not hold \"\(name)\"")
                }
                readers[name] = files[file]!
            }
            self.readers = readers
            sourceDescription = directory.path
        } else {
            throw LlamaError.fileNotFound(path: single.path)
        }
    }

    private static func open(_ url: URL) throws -> SafeTensorsReader {
        guard FileManager.default.fileExists(atPath: url.path) else { throw LlamaError.fileNotFound(path: url.path) }
        do { return try SafeTensorsReader(contentsOf: url) } catch {
            throw LlamaError.unreadableFile(path: url.path, reason: "\(error)")
        }
    }

    func shape(of name: String) -> [Int]? { readers[name]?.entry(name)?.shape }

    func storedName(_ name: String) -> String { name }

    func matrix(_ name: String) throws -> QuantizedMatrix {
        guard let r = readers[name], let e = r.entry(name), e.shape.count == 2 else { throw LlamaError.missingWeight(name) }
        switch e.dtype {
        case .f16, .bf16, .f32:
            // Read in place from the mapped file (Float32 rows need 4-byte aligned data, which
            // the format's 8-byte header padding gives; a misaligned file is copied instead).
            let type: GGMLType = e.dtype == .f16 ? .f16 : e.dtype == .bf16 ? .bf16 : .f32
            let bytes = try r.storedBytes(name)
            let aligned = bytes.withUnsafeBytes { Int(bitPattern: $0.baseAddress) % 4 == 0 }
            if type == .f32 && !aligned { return try QuantizedMatrix(try r.tensor(name), name: name) }
            return try QuantizedMatrix(type: type, rows: e.shape[0], columns: e.shape[1], bytes: bytes, name: name)
        case .f64:
            return try QuantizedMatrix(try r.tensor(name), name: name)
        default:
            throw LlamaError.unsupportedConfiguration(field: "dtype of \(name)", value: e.dtype.rawValue, supported: "F32, F16, BF16, F64")
        }
    }

    func vector(_ name: String) throws -> Tensor {
        guard let r = readers[name], let e = r.entry(name) else { throw LlamaError.missingWeight(name) }
        guard e.dtype.isFloatConvertible else {
            throw LlamaError.unsupportedConfiguration(field: "dtype of \(name)", value: e.dtype.rawValue, supported: "F32, F16, BF16, F64")
        }
        return try r.tensor(name)
    }
}
