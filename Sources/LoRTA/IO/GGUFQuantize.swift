import CKernels
import Foundation

/// Encoding Float32 values into ggml block formats for GGUF files (`lt_quant.h`).
public enum GGUFQuantize {
    /// The Q8_0 blocks of `tensor`'s values in row-major order (34 bytes per 32 values): bit for
    /// bit what the `gguf` Python package's `gguf.quants.quantize(x, GGMLQuantizationType.Q8_0)`
    /// and ggml's reference quantizer write. O(element count).
    /// - Throws: ``GGUFError/rowNotMultipleOfBlockSize(tensor:type:rowLength:blockElements:)``
    ///   when the innermost dimension is not a multiple of 32;
    ///   ``GGUFError/unrepresentableValue(tensor:type:element:value:)`` for NaN, infinity, or a
    ///   magnitude whose block scale `|x|/127` overflows F16 (about 8.32e6 and above).
    public static func q8_0(_ tensor: Tensor, name: String = "") throws -> Data {
        let row = tensor.shape.last ?? 1
        guard row % 32 == 0 else {
            throw GGUFError.rowNotMultipleOfBlockSize(tensor: name, type: .q8_0, rowLength: row, blockElements: 32)
        }
        if let (i, v) = StoredFloat.q8_0.firstUnstorable(in: tensor) {
            throw GGUFError.unrepresentableValue(tensor: name, type: .q8_0,
                                                 element: StoredFloat.coordinates(of: i, in: tensor.shape), value: v)
        }
        let n = tensor.count
        let (bytes, overflow) = (n / 32).multipliedReportingOverflow(by: 34)
        guard !overflow else {
            throw GGUFError.sizeOverflow(tensor: name, dimensions: tensor.shape.reversed(), type: .q8_0)
        }
        var out = Data(count: bytes)
        let status = tensor.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBytes { dst in
                lt_quantize_q8_0(src.baseAddress, Int64(n), dst.baseAddress, Int64(bytes))
            }
        }
        try KernelFailure.check(status, "lt_quantize_q8_0(\(name))")
        return out
    }
}
