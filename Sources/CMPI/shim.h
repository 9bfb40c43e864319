#pragma once
// Open MPI's C API, for the optional LoRTADistributed target (found with `pkg-config ompi-c`).
// MPI's predefined handles (MPI_COMM_WORLD, MPI_FLOAT, …) are macros over addresses of global
// objects, which Swift cannot import; these one-line functions hand them over.
#include <mpi.h>

static inline MPI_Comm lt_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Errhandler lt_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline MPI_Datatype lt_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype lt_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype lt_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype lt_mpi_int64(void) { return MPI_INT64_T; }
static inline int lt_mpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
static inline int lt_mpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
