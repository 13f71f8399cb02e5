#ifndef SMARTPOLL_FILE_H
#define SMARTPOLL_FILE_H
// Durable files for the supervisor's state directory: what a crash-safe write needs (fsync of
// the file and of its directory, renameat, an advisory lock) behind calls that report which
// step failed. Errors and EINTR: smartpoll_convention.h.

#include "smartpoll_convention.h"

#include <stddef.h>
#include <sys/types.h>

SP_ASSUME_NONNULL_BEGIN

/// The step of a durable write that failed, for the message (`cannot save state: fsync: ...`).
typedef enum sp_file_step {
    SP_FILE_STEP_NONE = 0,
    SP_FILE_STEP_OPEN = 1,
    SP_FILE_STEP_WRITE = 2,
    SP_FILE_STEP_FSYNC = 3,
    SP_FILE_STEP_CLOSE = 4,
    SP_FILE_STEP_RENAME = 5,
    SP_FILE_STEP_FSYNC_DIRECTORY = 6,
    /// Cutting off a failed append failed too: the file may end in a partial line.
    SP_FILE_STEP_TRUNCATE = 7,
} sp_file_step;

/// A close-on-exec descriptor of the directory `path` (O_DIRECTORY), or -1.
int sp_open_directory(const char *path);

/// Creates `path` and its missing parents with `mode` (like `mkdir -p`). Returns 0, or -1
/// (ENOENT for an empty path, ENOTDIR when `path` exists and is not a directory).
int sp_make_directories(const char *path, mode_t mode);

/// Removes what is at `name` inside `dirfd` unless it is a folder, without following a symbolic
/// link: a leftover temporary file, or a link or FIFO planted there. Returns 1 when something was
/// removed (`*kind` is its S_IFMT type), 0 when nothing was there or it is a folder (`*kind` set
/// then), or -1.
int sp_remove_stale(int dirfd, const char *name, mode_t *kind);

/// Writes `length` bytes (`bytes` may be NULL when `length` is 0) to `name` inside `dirfd`
/// (whatever had the name but a folder is removed first, ``sp_remove_stale``; then created 0600
/// with O_EXCL and O_NOFOLLOW), flushes them to the device (fsync) and closes the file. Returns
/// 0, or -1 with `*step` set to the step that failed; the partial file is unlinked then.
int sp_write_file_synced(int dirfd, const char *name, const void *_Nullable bytes, size_t length,
                         sp_file_step *step);

/// Replaces `name` inside `dirfd` atomically and durably: writes `temporary` as
/// `sp_write_file_synced` does, renames it over `name`, then fsyncs the directory so the rename
/// itself survives a crash. A reader sees the old file or the new one, never a mixture.
/// Returns 0, or -1 with `*step` set (after SP_FILE_STEP_FSYNC_DIRECTORY the new file is in
/// place but its rename may not survive a crash).
int sp_replace_file(int dirfd, const char *temporary, const char *name, const void *_Nullable bytes,
                    size_t length, sp_file_step *step);

/// fsync of a file or a directory. Returns 0, or -1.
int sp_fsync(int fd);

/// renameat within one directory. Returns 0, or -1.
int sp_renameat(int dirfd, const char *from, const char *to);

/// An exclusive advisory lock (flock) on `name` inside `dirfd`, created 0600 if missing.
/// Returns the close-on-exec descriptor that holds the lock, or -1 (EWOULDBLOCK when another
/// process holds it).
int sp_lock_file(int dirfd, const char *name);

/// Reads the whole of `name` inside `dirfd` into a buffer from malloc (free it with `free`),
/// refusing files larger than `limit`. Returns 0 with `*bytes` (not NULL) and `*length` set, or
/// -1 (EFBIG when the file is larger than `limit`, EISDIR or EINVAL when it is not a regular
/// file, ELOOP for a symbolic link). Opened with O_NONBLOCK and O_NOFOLLOW, so that a FIFO or a
/// link at the name is refused instead of blocking or being followed.
int sp_read_file(int dirfd, const char *name, size_t limit, void *_Nullable *_Nonnull bytes, size_t *length);

/// Opens the existing regular file `name` inside `dirfd` for writing at known offsets (O_NOFOLLOW,
/// O_NONBLOCK), cut to `length` bytes (and flushed) when it is longer. Returns the close-on-exec
/// descriptor, or -1 (EINVAL when it is not a regular file).
int sp_open_journal(int dirfd, const char *name, off_t length);

/// Writes `length` bytes at `offset` of `fd` and flushes them (fsync). Returns 0, or -1 with
/// `*step` set; what was written is cut off again (ftruncate to `offset`), and `*step` is
/// SP_FILE_STEP_TRUNCATE when even that failed.
int sp_append_synced(int fd, off_t offset, const void *_Nullable bytes, size_t length, sp_file_step *step);

SP_ASSUME_NONNULL_END

#endif
