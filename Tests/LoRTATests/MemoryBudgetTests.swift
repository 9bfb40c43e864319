import Foundation
import Testing
@testable import LoRTA

/// The memory budget: sizes, the budget in force, and tensor storage / adapters / heads that
/// refuse an impossible request with a typed error instead of aborting. Every test binds a
/// small budget to its own task (``MemoryBudget/withBudget(_:_:)``): nothing large is allocated.
@Suite("Memory budget")
struct MemoryBudgetTests {
    static let mebibyte = 1 << 20

    static func budget(_ bytes: Int) throws -> MemoryBudget { try MemoryBudget(bytes: bytes, origin: "test") }

    @Test func sizesParse() {
        let cases: [(String, Int?)] = [
            ("1048576", 1_048_576), ("512M", 512 << 20), ("4G", 4 << 30), ("4g", 4 << 30), ("4GB", 4 << 30),
            ("4GiB", 4 << 30), ("100k", 102_400), ("1.5G", 3 << 29), ("2T", 2 << 40), ("1P", 1 << 50), (" 8M ", 8 << 20),
            ("1024B", 1024), ("0", nil), ("", nil), ("G", nil), ("-1G", nil), ("1.5", nil), ("1e9", nil), ("4 G", nil),
            ("12Q", nil), ("5iB", nil), ("99999999999999999999", nil), ("9000000P", nil), (".5G", nil),
        ]
        for (text, want) in cases {
            #expect(MemoryBudget.parseByteCount(text) == want, "\(text)")
        }
        #expect(throws: MemoryError.invalidSize(text: "lots", origin: "--max-memory")) {
            try MemoryBudget(parsing: "lots", origin: "--max-memory")
        }
        #expect(throws: MemoryError.invalidSize(text: "0", origin: "x")) { try MemoryBudget(bytes: 0, origin: "x") }
    }

    @Test func sizesFormat() {
        #expect(MemoryBudget.format(512) == "512 bytes")
        #expect(MemoryBudget.format(1536) == "1.50 KiB")
        #expect(MemoryBudget.format(64 << 20) == "64.0 MiB")
        #expect(MemoryBudget.format(320_003_200_000) == "298 GiB")
        #expect(MemoryBudget.format(Int.max) == "8.00 EiB")
    }

    @Test func checkedArithmetic() {
        #expect(MemoryBudget.byteCount(Double.self, 200_000, 200_000) == 320_000_000_000)
        #expect(MemoryBudget.byteCount(Float.self, Int.max / 2, 3) == nil)
        #expect(MemoryBudget.byteCount(Float.self, -1) == nil)
        #expect(MemoryBudget.sum(1, 2, 3) == 6)
        #expect(MemoryBudget.sum(Int.max, 1) == nil)
        #expect(MemoryBudget.sum(1, nil) == nil)
    }

    @Test func refusalSaysWhatNeedsHowMuch() throws {
        let b = try Self.budget(1 << 30)
        let error = #expect(throws: MemoryError.self) {
            try b.check(bytes: 320_003_200_000, purpose: "statistics of 200000 features need a 200000×200000 float64 co-moment matrix")
        }
        #expect(error?.description == "statistics of 200000 features need a 200000×200000 float64 co-moment matrix: 298 GiB, "
                + "more than the 1.00 GiB memory budget (test; change it with --max-memory or LORTA_MAX_MEMORY)")
        let overflow = #expect(throws: MemoryError.self) { try b.check(bytes: nil, purpose: "x") }
        #expect(overflow?.description.contains("overflows a 64-bit byte count") == true)
        try b.check(bytes: 1 << 30, purpose: "fits exactly")
    }

    @Test func taskBudgetWinsAndIsScoped() throws {
        let machine = MemoryBudget.machine
        #expect(machine.bytes >= 1)
        let small = try Self.budget(1000)
        try MemoryBudget.withBudget(small) { () throws in
            #expect(try MemoryBudget.current == small)
            #expect(throws: MemoryError.self) { try MemoryBudget.check(bytes: 1001, purpose: "p") }
        }
        #expect(try MemoryBudget.current != small)
    }

    @Test func tensorStorageThrowsInsteadOfAborting() throws {
        try MemoryBudget.withBudget(try Self.budget(Self.mebibyte)) { () throws in
            // 2^40 floats: 4 TiB. Before the budget this ended in "Fatal error: out of memory".
            let error = #expect(throws: MemoryError.self) { try Tensor(zeros: [1 << 20, 1 << 20]) }
            #expect(error?.description.hasPrefix("a float32 tensor of shape [1048576, 1048576]: 4.00 TiB, more than the 1.00 MiB memory budget") == true)
            #expect(throws: MemoryError.self) { try Tensor(repeating: 1, shape: [1 << 19]) }
            #expect(throws: MemoryError.self) { try Tensor(shape: [1 << 19]) { _ in } }
            #expect(throws: MemoryError.self) { try Tensor(uninitialized: [1 << 19]) }
            #expect(throws: MemoryError.self) { try ScratchBuffer().floats(1 << 19) }
            // Within the budget everything works as before.
            let t = try Tensor(repeating: 2, shape: [1 << 10])
            #expect(t.scalars.allSatisfy { $0 == 2 })
        }
    }

    @Test func absurdAdapterRanksAndClassCountsThrowBeforeAllocating() throws {
        let host = try tinyBertModel().configuration.adapterHost
        try MemoryBudget.withBudget(try Self.budget(64 * Self.mebibyte)) { () throws in
            for kind in [AdapterKind.lora, .lorta] {
                let recipe = AdapterRecipe(kind: kind, rank: 2_000_000_000, alpha: 16, targets: ["query", "value"], seed: 1)
                let error = #expect(throws: MemoryError.self, "\(kind)") { try recipe.makeAdapter(for: host) }
                let text = error?.description ?? ""
                #expect(text.contains("of rank 2000000000 ") && text.contains("more than the 64.0 MiB memory budget (test;"), "\(text)")
            }
            let head = #expect(throws: MemoryError.self) { try BertClassificationHead(hiddenSize: 768, classCount: 1_000_000_000_000, seed: 1) }
            #expect(head?.description.hasPrefix("a classification head of 1000000000000 classes on 768 features needs a "
                                                + "1000000000000×768 float32 weight matrix: 2.73 PiB, more than") == true)
            let overflow = #expect(throws: MemoryError.self) { try BertClassificationHead(hiddenSize: 768, classCount: Int.max / 4, seed: 1) }
            #expect(overflow?.description.contains("overflows") == true)
            // Small requests still work under the same budget.
            _ = try AdapterRecipe(kind: .lora, rank: 2, alpha: 4, targets: ["query"], seed: 1).makeAdapter(for: host)
            _ = try BertClassificationHead(hiddenSize: 16, classCount: 3, seed: 1)
        }
    }
}
