/*
 * lt_fs.h — the one file-system primitive Swift's Glibc overlay does not expose.
 *
 * lt_rename_exchange swaps two existing paths atomically (Linux renameat2 with RENAME_EXCHANGE):
 * a directory replaced this way is, at every instant, either the old one or the new one —
 * never missing. Used by AtomicFileWriter.replaceDirectory; it falls back to two renames when
 * the kernel or file system does not support the exchange.
 */
#ifndef LT_FS_H
#define LT_FS_H

#ifdef __cplusplus
extern "C" {
#endif

/* Atomically exchanges the paths `a` and `b` (both must exist). Returns 0, or the errno of the
 * failure: ENOSYS or EINVAL when exchanging is not supported here (the caller falls back),
 * ENOENT, EACCES, EXDEV, ... otherwise. Never aborts, never prints. */
int lt_rename_exchange(const char *a, const char *b);

#ifdef __cplusplus
}
#endif
#endif
