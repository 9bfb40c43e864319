/// swift-lorta: parameter-efficient fine-tuning (LoRA, LoRTA), adapter merging and activation
/// statistics on the CPU, with hot paths in C (OpenMP + SIMD) under `CKernels`.
///
/// Not in the DocC documentation: the Swift symbol-graph extractor drops every symbol whose
/// name starts with the module name followed by `Version` (it takes them for the generated
/// `<Module>VersionNumber` / `<Module>VersionString` symbols).
public enum LoRTAVersion {
    /// The library's version.
    public static let string = "0.1.0"
}
