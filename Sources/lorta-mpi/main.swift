// Entry point of `lorta-mpi`: `lorta train` and `lorta eval` as data-parallel MPI jobs, and a
// benchmark of the exchange. Run it under mpirun:
//
//   mpirun -np 2 lorta-mpi train --model M --train T.tsv --out OUT --batch-size 32 --micro-batch-size 16
//
// Only rank 0 prints and writes. The commands and their options are `lorta`'s (LoRTACommandLine).
import ArgumentParser
import Foundation
import LoRTA
import LoRTACommandLine
import LoRTADistributed

Launcher.reexecuteWithBetterBLASCoreIfNeeded()

let world: Communicator
do {
    world = try Communicator.world()
} catch {
    FileHandle.standardError.write(Data("lorta-mpi: error: \(error)\n".utf8))
    exit(1)
}
let status: Int32
do {
    var command = try LortaMPI.parseAsRoot()
    try command.run()
    status = 0
} catch {
    // Every rank ends the same way; rank 0 alone prints (usage errors too).
    // (Not LortaMPI.exit(withError:): it would leave without MPI_Finalize.)
    status = LortaMPI.exitCode(for: error).rawValue
    let message = LortaMPI.fullMessage(for: error)
    if world.rank == 0 && !message.isEmpty {
        if status == 0 { print(message) } else { FileHandle.standardError.write(Data((message + "\n").utf8)) }
    }
}
try? Communicator.finalize()
exit(status)
