// Entry point of the `lorta` command-line tool.
//
// Before anything else, the BLAS core check: if OpenBLAS runs kernels weaker than this CPU
// supports (distribution builds misdetect new CPUs) and the user has not set
// OPENBLAS_CORETYPE, re-execute once with it set (OpenBLAS reads it only at load time).
import LoRTA

Launcher.reexecuteWithBetterBLASCoreIfNeeded()
Lorta.main()
