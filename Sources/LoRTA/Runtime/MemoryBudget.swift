import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A request for memory was refused, or a memory size could not be parsed.
public enum MemoryError: Error, Equatable, CustomStringConvertible {
    /// `purpose` needs `bytes` bytes (nil: the size overflows a 64-bit byte count), more than
    /// `budget` allows. Nothing was allocated.
    case exceedsBudget(purpose: String, bytes: Int?, budget: MemoryBudget)
    /// The system refused an allocation of `bytes` bytes that the budget allowed.
    case allocationFailed(purpose: String, bytes: Int)
    /// A memory size (`--max-memory`, `LORTA_MAX_MEMORY`) that is not a positive number of
    /// bytes with an optional unit (K, M, G, T).
    case invalidSize(text: String, origin: String)

    public var description: String {
        switch self {
        case .exceedsBudget(let purpose, let bytes, let budget):
            let size = bytes.map(MemoryBudget.format) ?? "more than \(MemoryBudget.format(Int.max)) (the size overflows a 64-bit byte count)"
            return "\(purpose): \(size), more than the \(MemoryBudget.format(budget.bytes)) memory budget "
                + "(\(budget.origin); change it with --max-memory or LORTA_MAX_MEMORY)"
        case .allocationFailed(let purpose, let bytes):
            return "\(purpose): the system refused to allocate \(MemoryBudget.format(bytes))"
        case .invalidSize(let text, let origin):
            return "\(origin) \(text.debugDescription) is not a memory size: use bytes or a number with K, M, G or T "
                + "(powers of 1024), e.g. 512M or 4G"
        }
    }
}

/// The most memory one request may ask for: every allocation whose size comes from input (a
/// file's shape, a label count, a rank, a class count, a size in a JSON file) is computed with
/// overflow checks and compared with the budget *before* anything is allocated, so an
/// impossible request is a ``MemoryError/exceedsBudget(purpose:bytes:budget:)`` that says what
/// needs how much, never an abort.
///
/// The budget bounds each *request* (one buffer, or a group of buffers the caller adds up, such
/// as all the per-label tables of a statistics object); it does not account for the process's
/// total. Tensor storage checks every tensor; statistics, detectors and the `.npy` and CSV
/// readers check their own buffers (see ``check(bytes:purpose:)-swift.type.method``).
///
/// Which budget applies, first match wins:
/// 1. a budget bound to the current task with ``withBudget(_:_:)`` (tests, embedders);
/// 2. the process default set with ``setProcessDefault(_:)`` (the CLI's `--max-memory`);
/// 3. the environment variable `LORTA_MAX_MEMORY` (read once), e.g. `512M`, `4G`, `1048576`;
/// 4. ``machine``: the physical memory, or the cgroup memory limit or the address-space limit
///    (`ulimit -v`) when lower.
///
/// Sizes are bytes, or a number with a unit `K`, `M`, `G`, `T` (powers of 1024; `KB`, `KiB`
/// and lower case are accepted too).
public struct MemoryBudget: Sendable, Equatable, CustomStringConvertible {
    /// The largest request allowed, in bytes (≥ 1).
    public let bytes: Int
    /// Where the budget comes from, for messages (`physical memory`, `--max-memory 4G`, …).
    public let origin: String

    /// A budget of `bytes` bytes.
    /// - Throws: ``MemoryError/invalidSize(text:origin:)`` unless `bytes >= 1`.
    public init(bytes: Int, origin: String = "set by the caller") throws(MemoryError) {
        guard bytes >= 1 else { throw .invalidSize(text: String(bytes), origin: origin) }
        self.bytes = bytes
        self.origin = origin
    }

    /// A budget parsed from text such as `512M`, `4G`, `1.5G` or `1048576` (see
    /// ``parseByteCount(_:)``).
    /// - Throws: ``MemoryError/invalidSize(text:origin:)``.
    public init(parsing text: String, origin: String) throws(MemoryError) {
        guard let n = MemoryBudget.parseByteCount(text) else { throw .invalidSize(text: text, origin: origin) }
        try self.init(bytes: n, origin: origin)
    }

    public var description: String { "\(MemoryBudget.format(bytes)) (\(origin))" }

    // MARK: Checks

    /// Throws unless a request of `bytes` bytes fits this budget. `bytes` nil means the size
    /// overflowed while being computed (see ``byteCount(_:_:)`` and ``byteCount(_:shape:)``), which never fits.
    /// - Parameters:
    ///   - bytes: the size of the request.
    ///   - purpose: what needs the memory and why, as the start of a sentence (e.g. "statistics
    ///     of 200000 features need a 200000×200000 float64 co-moment matrix"); built only when
    ///     the request is refused.
    /// - Throws: ``MemoryError/exceedsBudget(purpose:bytes:budget:)``.
    public func check(bytes: Int?, purpose: @autoclosure () -> String) throws(MemoryError) {
        guard let bytes, bytes <= self.bytes else {
            throw .exceedsBudget(purpose: purpose(), bytes: bytes, budget: self)
        }
    }

    /// ``check(bytes:purpose:)-swift.method`` against the budget in force (``current``).
    /// - Throws: ``MemoryError``.
    public static func check(bytes: Int?, purpose: @autoclosure () -> String) throws(MemoryError) {
        try current.check(bytes: bytes, purpose: purpose())
    }

    /// `MemoryLayout<T>.stride × Π counts`, or nil when a count is negative or the product
    /// overflows `Int`. O(counts).
    public static func byteCount<T>(_ type: T.Type, _ counts: Int...) -> Int? {
        byteCount(type, shape: counts)
    }

    /// `MemoryLayout<T>.stride × Π shape` (a tensor's shape), or nil when a dimension is
    /// negative or the product overflows `Int`.
    public static func byteCount<T>(_ type: T.Type, shape counts: [Int]) -> Int? {
        var n = MemoryLayout<T>.stride
        for c in counts {
            guard c >= 0 else { return nil }
            let (p, o) = n.multipliedReportingOverflow(by: c)
            guard !o else { return nil }
            n = p
        }
        return n
    }

    /// The sum of byte counts, or nil when one is nil or the sum overflows `Int`.
    public static func sum(_ parts: Int?...) -> Int? {
        var total = 0
        for p in parts {
            guard let p else { return nil }
            let (s, o) = total.addingReportingOverflow(p)
            guard !o else { return nil }
            total = s
        }
        return total
    }

    // MARK: The budget in force

    /// The budget that applies now (see the type's documentation for the order).
    /// - Throws: ``MemoryError/invalidSize(text:origin:)`` when `LORTA_MAX_MEMORY` is set to
    ///   something that is not a size (and neither a task budget nor a process default hides it).
    public static var current: MemoryBudget {
        get throws(MemoryError) {
            if let b = taskBudget { return b }
            if let b = state.withLock({ $0 }) { return b }
            if let b = try environment.get() { return b }
            return machine
        }
    }

    /// Sets (or, with nil, clears) the process-wide default; the CLI sets it from
    /// `--max-memory`. It overrides `LORTA_MAX_MEMORY`; a budget bound with
    /// ``withBudget(_:_:)`` overrides it.
    public static func setProcessDefault(_ budget: MemoryBudget?) {
        state.withLock { $0 = budget }
    }

    /// Runs `body` with `budget` in force for the current task and the work it starts
    /// synchronously (a task-local value: other tasks and threads keep theirs).
    public static func withBudget<R>(_ budget: MemoryBudget, _ body: () throws -> R) rethrows -> R {
        try $taskBudget.withValue(budget, operation: body)
    }

    @TaskLocal static var taskBudget: MemoryBudget?

    private static let state = LockedValue<MemoryBudget?>(nil)

    /// `LORTA_MAX_MEMORY`, parsed once (nil when unset).
    static let environment: Result<MemoryBudget?, MemoryError> = {
        let name = "LORTA_MAX_MEMORY"
        guard let p = getenv(name) else { return .success(nil) }
        let text = String(cString: p)
        guard let n = parseByteCount(text) else { return .failure(.invalidSize(text: text, origin: name)) }
        return .success(MemoryBudget(validated: n, origin: "\(name)=\(text)"))
    }()

    /// What this machine (or container) has: the physical memory, or the cgroup memory limit
    /// (`memory.max`, cgroup v1 `memory.limit_in_bytes`) or the address-space limit
    /// (`RLIMIT_AS`) when lower. Computed once.
    public static let machine: MemoryBudget = {
        var best = Int.max
        var origin = "no memory size found"
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), pageSize = sysconf(Int32(_SC_PAGESIZE))
        if pages > 0, pageSize > 0 {
            let (p, o) = pages.multipliedReportingOverflow(by: pageSize)
            best = o ? Int.max : p
            origin = "physical memory"
        }
        for path in cgroupLimitFiles() {
            if let limit = readLimit(path), limit < best {
                best = limit
                origin = "cgroup memory limit \(path)"
            }
        }
        var rl = rlimit()
        #if canImport(Glibc)
        let status = getrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &rl)
        let infinity = rlim_t.max  // RLIM_INFINITY, ((rlim_t) -1), is not imported
        #else
        let status = getrlimit(RLIMIT_AS, &rl)
        let infinity = RLIM_INFINITY
        #endif
        if status == 0, rl.rlim_cur != infinity, UInt64(rl.rlim_cur) < UInt64(best) {
            best = Int(rl.rlim_cur)
            origin = "address-space limit (ulimit -v)"
        }
        return MemoryBudget(validated: max(1, best), origin: origin)
    }()

    private init(validated bytes: Int, origin: String) {
        self.bytes = bytes
        self.origin = origin
    }

    /// cgroup v2 `memory.max` of this process's group and of the root, cgroup v1's limit.
    private static func cgroupLimitFiles() -> [String] {
        var files = ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
        if let text = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8) {
            for line in text.split(separator: "\n") where line.hasPrefix("0::/") {
                let group = line.dropFirst(3)
                if group != "/" { files.insert("/sys/fs/cgroup\(group)/memory.max", at: 0) }
            }
        }
        return files
    }

    /// A byte count from a cgroup file; nil for `max`, a missing file or anything unparsable.
    private static func readLimit(_ path: String) -> Int? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        guard let n = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), n > 0 else { return nil }
        return n
    }

    // MARK: Sizes as text

    /// Parses a memory size: a non-negative decimal number (a fraction allowed with a unit)
    /// followed by an optional unit `K`, `M`, `G`, `T` or `P` (powers of 1024, any case,
    /// optionally followed by `B` or `iB`), or a plain number of bytes (optionally `B`).
    /// Returns nil for anything else, for 0 and for sizes that overflow `Int`.
    public static func parseByteCount(_ text: String) -> Int? {
        var s = Substring(text.trimmingCharacters(in: .whitespaces))
        if s.lowercased().hasSuffix("ib") { s = s.dropLast(2) } else if s.lowercased().hasSuffix("b") { s = s.dropLast() }
        var scale = 1.0
        var integralScale = 1
        if let last = s.last, let k = "kmgtp".firstIndex(of: Character(last.lowercased())) {
            let power = "kmgtp".distance(from: "kmgtp".startIndex, to: k) + 1
            integralScale = 1 << (10 * power)
            scale = Double(integralScale)
            s = s.dropLast()
        } else if text.lowercased().hasSuffix("ib") {
            return nil  // "iB" without a unit letter
        }
        guard !s.isEmpty, s.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }), s.filter({ $0 == "." }).count <= 1,
              s.first != ".", s.last != "." else { return nil }
        if !s.contains(".") {
            guard let n = Int(s), n > 0 else { return nil }
            let (p, o) = n.multipliedReportingOverflow(by: integralScale)
            return o ? nil : p
        }
        guard integralScale > 1, let v = Double(s) else { return nil }  // fractions need a unit
        let bytes = (v * scale).rounded(.down)
        guard bytes >= 1, bytes < 0x1p63 else { return nil }
        return Int(bytes)
    }

    /// A byte count for messages in binary units with three significant digits: `512 bytes`,
    /// `1.50 KiB`, `23.4 GiB`, `298 GiB`.
    public static func format(_ bytes: Int) -> String {
        guard bytes >= 1024 else { return "\(bytes) bytes" }
        let units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var v = Double(bytes) / 1024
        var u = 0
        while v >= 1024, u < units.count - 1 {
            v /= 1024
            u += 1
        }
        let digits = v >= 100 ? 0 : (v >= 10 ? 1 : 2)
        return String(format: "%.\(digits)f", v) + " " + units[u]
    }
}

/// A value behind a lock (the process default of ``MemoryBudget``).
final class LockedValue<Value: Sendable>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()

    init(_ value: Value) { self.value = value }

    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
