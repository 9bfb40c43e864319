import ArgumentParser
import LoRTA

/// `--max-memory`: the memory budget of the commands that allocate from their input (see
/// ``MemoryBudget``). Include with `@OptionGroup var memory: MemoryOptions` and call
/// ``apply()`` first thing in `run()`.
struct MemoryOptions: ParsableArguments {
    @Option(name: .customLong("max-memory"), help: ArgumentHelp(
        "Largest memory one request may ask for (a matrix, a table, a tensor): bytes or a size with K, M, G, T "
            + "(powers of 1024), e.g. 512M or 4G. Sizes that come from the input are checked before anything is "
            + "allocated. Default: LORTA_MAX_MEMORY, else the machine's physical memory (or its cgroup limit).",
        valueName: "size"))
    var maxMemory: String?

    func validate() throws {
        if let maxMemory, MemoryBudget.parseByteCount(maxMemory) == nil {
            throw ValidationError(MemoryError.invalidSize(text: maxMemory, origin: "--max-memory").description)
        }
    }

    /// Makes `--max-memory` the process's budget (it overrides `LORTA_MAX_MEMORY`).
    func apply() throws {
        guard let maxMemory else { return }
        MemoryBudget.setProcessDefault(try MemoryBudget(parsing: maxMemory, origin: "--max-memory \(maxMemory)"))
    }
}
