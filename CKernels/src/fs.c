/*
 * fs.c — lt_rename_exchange (see lt_fs.h).
 */
#define _GNU_SOURCE
#include "lt_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif
#endif

int lt_rename_exchange(const char *a, const char *b) {
    if (a == NULL || b == NULL) return EINVAL;
#if defined(__linux__) && defined(SYS_renameat2)
    if (syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) == 0) return 0;
    return errno;
#else
    return ENOSYS;
#endif
}
