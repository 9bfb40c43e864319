import Testing
@testable import LoRTA

@Suite("Runtime", .serialized)
struct RuntimeTests {
    @Test func scalarAlwaysAvailable() throws {
        try Runtime.initialize()
        #expect(Runtime.availableInstructionSets.contains(.scalar))
        #expect(Runtime.threadCount >= 1)
    }
}
