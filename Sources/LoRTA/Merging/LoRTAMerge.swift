import Foundation

extension AdapterMerger {
    /// LoRTA adapters: not merged by the CLI yet (the fused LoRTA kernels land separately).
    static func lortaUpdates(config: PEFTAdapterConfiguration, adapter: SafeTensorsReader,
                             base: SafeTensorsReader) throws -> [String: Tensor] {
        throw AdapterConfigurationError.unsupportedPEFTType("LORTA (merging LoRTA adapters is not implemented yet)")
    }
}
