// Entry point of the `lorta` command-line tool (the commands live in LoRTACommandLine, shared
// with `lorta-mpi`).
//
// Before anything else, the BLAS core check: if OpenBLAS runs kernels weaker than this CPU
// supports (distribution builds misdetect new CPUs) and the user has not set
// OPENBLAS_CORETYPE, re-execute once with it set (OpenBLAS reads it only at load time).
import LoRTACommandLine

Launcher.reexecuteWithBetterBLASCoreIfNeeded()
Lorta.main()
