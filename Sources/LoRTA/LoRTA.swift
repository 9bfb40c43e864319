/// swift-lorta: parameter-efficient fine-tuning (LoRA, LoRTA), adapter merging and activation
/// statistics on the CPU, with hot paths in C (OpenMP + SIMD) under ``CKernels``.
public enum LoRTAVersion {
    /// The library's version.
    public static let string = "0.1.0"
}
