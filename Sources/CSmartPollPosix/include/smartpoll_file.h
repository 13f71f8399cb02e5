#ifndef SMARTPOLL_FILE_H
#define SMARTPOLL_FILE_H
// Durable files for the supervisor's state directory: what a crash-safe write needs (fsync of
// the file and of its directory, renameat, an advisory lock) behind calls that retry EINTR and
// report which step failed.

#include <stddef.h>
#include <sys/types.h>

/// The step of a durable write that failed, for the message (`cannot save state: fsync: ...`).
enum {
    SP_FILE_STEP_OPEN = 1,
    SP_FILE_STEP_WRITE = 2,
    SP_FILE_STEP_FSYNC = 3,
    SP_FILE_STEP_CLOSE = 4,
    SP_FILE_STEP_RENAME = 5,
    SP_FILE_STEP_FSYNC_DIRECTORY = 6,
};

/// A close-on-exec descriptor of the directory `path` (O_DIRECTORY), or -1 and errno.
int sp_open_directory(const char *path);

/// Creates `path` and its missing parents with `mode` (like `mkdir -p`). Returns 0 or an errno
/// value.
int sp_make_directories(const char *path, mode_t mode);

/// Writes `length` bytes to `name` inside `dirfd` (created 0600 or truncated), flushes them to
/// the device (fsync) and closes the file. On failure the partial file is unlinked. Returns 0,
/// or an errno value with `*step` set to the SP_FILE_STEP that failed.
int sp_write_file_synced(int dirfd, const char *name, const void *bytes, size_t length, int *step);

/// Replaces `name` inside `dirfd` atomically and durably: writes `temporary` as
/// `sp_write_file_synced` does, renames it over `name`, then fsyncs the directory so the rename
/// itself survives a crash. A reader sees the old file or the new one, never a mixture.
/// Returns 0, or an errno value with `*step` set.
int sp_replace_file(int dirfd, const char *temporary, const char *name, const void *bytes, size_t length, int *step);

/// fsync, retried on EINTR. Returns 0 or an errno value.
int sp_fsync(int fd);

/// renameat within one directory. Returns 0 or an errno value.
int sp_renameat(int dirfd, const char *from, const char *to);

/// An exclusive advisory lock (flock) on `name` inside `dirfd`, created 0600 if missing.
/// Returns the close-on-exec descriptor that holds the lock, or -1 and errno (EWOULDBLOCK when
/// another process holds it).
int sp_lock_file(int dirfd, const char *name);

/// Reads the whole of `name` inside `dirfd` into a buffer from malloc (free it with `free`),
/// refusing files larger than `limit`. Returns 0 with `*bytes` and `*length` set, or an errno
/// value (EFBIG when the file is larger than `limit`).
int sp_read_file(int dirfd, const char *name, size_t limit, void **bytes, size_t *length);

#endif
