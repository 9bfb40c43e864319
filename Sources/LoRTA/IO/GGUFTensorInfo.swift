/// One tensor's entry in a GGUF file: its name, storage type, dimensions and where its bytes
/// are. Values are validated by ``GGUFReader`` (or built by ``GGUFWriter``).
public struct GGUFTensorInfo: Sendable, Equatable {
    /// The tensor's name (e.g. `blk.0.attn_q.weight`).
    public let name: String
    /// The ggml storage type.
    public let type: GGMLType
    /// Dimensions as GGUF stores them, **innermost first** (ggml's `ne`): a PyTorch matrix of
    /// shape [out, in] is stored as [in, out]. 1 to 4 entries.
    public let dimensions: [Int]
    /// Offset of the tensor's bytes from the start of the data section (a multiple of the
    /// file's alignment).
    public let offset: Int
    /// Number of elements (product of the dimensions).
    public let elementCount: Int
    /// Bytes of the stored tensor (element count / block elements × block bytes).
    public let byteCount: Int

    public init(name: String, type: GGMLType, dimensions: [Int], offset: Int, elementCount: Int, byteCount: Int) {
        self.name = name
        self.type = type
        self.dimensions = dimensions
        self.offset = offset
        self.elementCount = elementCount
        self.byteCount = byteCount
    }

    /// Dimensions **outermost first** (PyTorch order, the shape of ``GGUFReader/tensor(named:)``):
    /// `dimensions` reversed. O(rank).
    public var shape: [Int] { dimensions.reversed() }

    /// Elements per row: the innermost dimension.
    public var rowLength: Int { dimensions.first ?? 1 }

    /// Number of rows: the product of the outer dimensions (1 for a vector).
    public var rowCount: Int { rowLength == 0 ? 0 : elementCount / rowLength }

    /// Bytes of one row.
    public var rowByteCount: Int { rowLength / type.blockElements * type.blockBytes }
}
