#define _GNU_SOURCE
#include "smartpoll_file.h"
#include "smartpoll_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

int sp_open_directory(const char *path) {
    int fd;
    do {
        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    return fd;
}

int sp_make_directories(const char *path, mode_t mode) {
    size_t length = strlen(path);
    if (length == 0) return sp_fail(ENOENT);
    char *copy = malloc(length + 1);
    if (copy == NULL) return -1;
    memcpy(copy, path, length + 1);
    // Each prefix ending before a '/', then the whole path.
    for (size_t i = 1; i <= length; i++) {
        if (i < length && copy[i] != '/') continue;
        char saved = copy[i];
        copy[i] = '\0';
        if (mkdir(copy, mode) != 0 && errno != EEXIST) {
            int error = errno;
            free(copy);
            return sp_fail(error);
        }
        copy[i] = saved;
    }
    free(copy);
    struct stat info;
    if (stat(path, &info) != 0) return -1;
    return S_ISDIR(info.st_mode) ? 0 : sp_fail(ENOTDIR);
}

int sp_fsync(int fd) {
    int result;
    do {
        result = fsync(fd);
    } while (result != 0 && errno == EINTR);
    return result;
}

int sp_renameat(int dirfd, const char *from, const char *to) {
    return renameat(dirfd, from, dirfd, to);
}

int sp_remove_stale(int dirfd, const char *name, mode_t *kind) {
    struct stat info;
    if (fstatat(dirfd, name, &info, AT_SYMLINK_NOFOLLOW) != 0) return errno == ENOENT ? 0 : -1;
    *kind = info.st_mode & S_IFMT;
    // A folder may hold someone's files: it is left alone, and the write that needs its name fails.
    if (S_ISDIR(info.st_mode)) return 0;
    if (unlinkat(dirfd, name, 0) != 0) return errno == ENOENT ? 0 : -1;
    return 1;
}

int sp_write_file_synced(int dirfd, const char *name, const void *bytes, size_t length, sp_file_step *step) {
    // Whatever has the name (a leftover, or a symbolic link or FIFO planted there) is replaced,
    // never followed or written through: unlinked, then created afresh with O_EXCL.
    mode_t kind = 0;
    (void)sp_remove_stale(dirfd, name, &kind);
    if (S_ISDIR(kind)) {
        *step = SP_FILE_STEP_OPEN;
        return sp_fail(EISDIR);
    }
    int fd;
    do {
        fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        *step = SP_FILE_STEP_OPEN;
        return -1;
    }
    const char *cursor = bytes;
    size_t left = length;
    int error = 0;
    while (left > 0) {
        ssize_t written = write(fd, cursor, left);
        if (written < 0) {
            if (errno == EINTR) continue;
            error = errno;
            break;
        }
        cursor += written;
        left -= (size_t)written;
    }
    if (error != 0) {
        *step = SP_FILE_STEP_WRITE;
    } else if (sp_fsync(fd) != 0) {
        error = errno;
        *step = SP_FILE_STEP_FSYNC;
    }
    // close can report a deferred write error (NFS); after fsync it rarely does, but it counts.
    // EINTR from close is no error: Linux has released the descriptor, and fsync has the data.
    if (close(fd) != 0 && error == 0 && errno != EINTR) {
        error = errno;
        *step = SP_FILE_STEP_CLOSE;
    }
    if (error == 0) return 0;
    // Best effort: a partial file left behind is overwritten by the next write of that name.
    (void)unlinkat(dirfd, name, 0);
    return sp_fail(error);
}

int sp_replace_file(int dirfd, const char *temporary, const char *name, const void *bytes, size_t length,
                    sp_file_step *step) {
    if (sp_write_file_synced(dirfd, temporary, bytes, length, step) != 0) return -1;
    if (sp_renameat(dirfd, temporary, name) != 0) {
        int error = errno;
        *step = SP_FILE_STEP_RENAME;
        // Best effort: the state loader removes a leftover temporary file at start.
        (void)unlinkat(dirfd, temporary, 0);
        return sp_fail(error);
    }
    if (sp_fsync(dirfd) != 0) {
        *step = SP_FILE_STEP_FSYNC_DIRECTORY;
        return -1;
    }
    return 0;
}

int sp_lock_file(int dirfd, const char *name) {
    int fd;
    do {
        fd = openat(dirfd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return -1;
    int result;
    do {
        result = flock(fd, LOCK_EX | LOCK_NB);
    } while (result != 0 && errno == EINTR);
    if (result != 0) {
        int error = errno;
        // Released even when close reports an error; the lock was never held.
        (void)close(fd);
        return sp_fail(error);
    }
    return fd;
}

// Closes a descriptor only read from, after a failure or once read to its end: Linux releases
// it even when close reports an error, and no data of ours can be lost in it.
static void sp_close_read_only(int fd) {
    (void)close(fd);
}

int sp_read_file(int dirfd, const char *name, size_t limit, void **bytes, size_t *length) {
    int fd;
    do {
        // O_NONBLOCK: a FIFO planted at the name must not block open; fstat below refuses it.
        fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return -1;
    struct stat info;
    if (fstat(fd, &info) != 0) {
        int error = errno;
        sp_close_read_only(fd);
        return sp_fail(error);
    }
    if (!S_ISREG(info.st_mode)) {
        sp_close_read_only(fd);
        return sp_fail(S_ISDIR(info.st_mode) ? EISDIR : EINVAL);
    }
    if ((size_t)info.st_size > limit) {
        sp_close_read_only(fd);
        return sp_fail(EFBIG);
    }
    size_t capacity = (size_t)info.st_size + 1;
    char *buffer = malloc(capacity);
    if (buffer == NULL) {
        sp_close_read_only(fd);
        return sp_fail(ENOMEM);
    }
    size_t used = 0;
    for (;;) {
        if (used == capacity) {
            // The file grew while we read it; take what fits the limit.
            if (capacity > limit) {
                free(buffer);
                sp_close_read_only(fd);
                return sp_fail(EFBIG);
            }
            char *larger = realloc(buffer, capacity * 2);
            if (larger == NULL) {
                free(buffer);
                sp_close_read_only(fd);
                return sp_fail(ENOMEM);
            }
            buffer = larger;
            capacity *= 2;
        }
        ssize_t count = read(fd, buffer + used, capacity - used);
        if (count < 0) {
            if (errno == EINTR) continue;
            int error = errno;
            free(buffer);
            sp_close_read_only(fd);
            return sp_fail(error);
        }
        if (count == 0) break;
        used += (size_t)count;
    }
    sp_close_read_only(fd);
    *bytes = buffer;
    *length = used;
    return 0;
}

int sp_open_journal(int dirfd, const char *name, off_t length) {
    int fd;
    do {
        fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return -1;
    struct stat info;
    int error = 0;
    if (fstat(fd, &info) != 0) {
        error = errno;
    } else if (!S_ISREG(info.st_mode)) {
        error = EINVAL;
    } else if (info.st_size != length) {
        if (ftruncate(fd, length) != 0 || sp_fsync(fd) != 0) error = errno;
    }
    if (error != 0) {
        (void)close(fd);
        return sp_fail(error);
    }
    return fd;
}

int sp_append_synced(int fd, off_t offset, const void *bytes, size_t length, sp_file_step *step) {
    const char *cursor = bytes;
    size_t left = length;
    off_t at = offset;
    int error = 0;
    while (left > 0) {
        ssize_t written = pwrite(fd, cursor, left, at);
        if (written < 0) {
            if (errno == EINTR) continue;
            error = errno;
            *step = SP_FILE_STEP_WRITE;
            break;
        }
        cursor += written;
        left -= (size_t)written;
        at += written;
    }
    if (error == 0 && sp_fsync(fd) != 0) {
        error = errno;
        *step = SP_FILE_STEP_FSYNC;
    }
    if (error == 0) return 0;
    // What was written of a failed append is cut off, so that the next append follows whole lines.
    if (ftruncate(fd, offset) != 0) *step = SP_FILE_STEP_TRUNCATE;
    return sp_fail(error);
}
