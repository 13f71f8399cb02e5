#define _GNU_SOURCE
#include "smartpoll_file.h"

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
    if (length == 0) return ENOENT;
    char *copy = malloc(length + 1);
    if (copy == NULL) return ENOMEM;
    memcpy(copy, path, length + 1);
    // Each prefix ending before a '/', then the whole path.
    for (size_t i = 1; i <= length; i++) {
        if (i < length && copy[i] != '/') continue;
        char saved = copy[i];
        copy[i] = '\0';
        if (mkdir(copy, mode) != 0 && errno != EEXIST) {
            int error = errno;
            free(copy);
            return error;
        }
        copy[i] = saved;
    }
    free(copy);
    struct stat info;
    if (stat(path, &info) != 0) return errno;
    return S_ISDIR(info.st_mode) ? 0 : ENOTDIR;
}

int sp_fsync(int fd) {
    while (fsync(fd) != 0) {
        if (errno != EINTR) return errno;
    }
    return 0;
}

int sp_renameat(int dirfd, const char *from, const char *to) {
    return renameat(dirfd, from, dirfd, to) == 0 ? 0 : errno;
}

int sp_write_file_synced(int dirfd, const char *name, const void *bytes, size_t length, int *step) {
    int fd;
    do {
        fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        *step = SP_FILE_STEP_OPEN;
        return errno;
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
    } else if ((error = sp_fsync(fd)) != 0) {
        *step = SP_FILE_STEP_FSYNC;
    }
    // close can report a deferred write error (NFS); after fsync it rarely does, but it counts.
    if (close(fd) != 0 && error == 0 && errno != EINTR) {
        error = errno;
        *step = SP_FILE_STEP_CLOSE;
    }
    if (error != 0) unlinkat(dirfd, name, 0);
    return error;
}

int sp_replace_file(int dirfd, const char *temporary, const char *name, const void *bytes, size_t length, int *step) {
    int error = sp_write_file_synced(dirfd, temporary, bytes, length, step);
    if (error != 0) return error;
    if ((error = sp_renameat(dirfd, temporary, name)) != 0) {
        *step = SP_FILE_STEP_RENAME;
        unlinkat(dirfd, temporary, 0);
        return error;
    }
    if ((error = sp_fsync(dirfd)) != 0) {
        *step = SP_FILE_STEP_FSYNC_DIRECTORY;
        return error;
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
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int sp_read_file(int dirfd, const char *name, size_t limit, void **bytes, size_t *length) {
    int fd;
    do {
        fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return errno;
    struct stat info;
    if (fstat(fd, &info) != 0) {
        int saved = errno;
        close(fd);
        return saved;
    }
    if (!S_ISREG(info.st_mode)) {
        close(fd);
        return S_ISDIR(info.st_mode) ? EISDIR : EINVAL;
    }
    if ((size_t)info.st_size > limit) {
        close(fd);
        return EFBIG;
    }
    size_t capacity = (size_t)info.st_size + 1;
    char *buffer = malloc(capacity);
    if (buffer == NULL) {
        close(fd);
        return ENOMEM;
    }
    size_t used = 0;
    for (;;) {
        if (used == capacity) {
            // The file grew while we read it; take what fits the limit.
            if (capacity > limit) {
                free(buffer);
                close(fd);
                return EFBIG;
            }
            char *larger = realloc(buffer, capacity * 2);
            if (larger == NULL) {
                free(buffer);
                close(fd);
                return ENOMEM;
            }
            buffer = larger;
            capacity *= 2;
        }
        ssize_t count = read(fd, buffer + used, capacity - used);
        if (count < 0) {
            if (errno == EINTR) continue;
            int saved = errno;
            free(buffer);
            close(fd);
            return saved;
        }
        if (count == 0) break;
        used += (size_t)count;
    }
    close(fd);
    *bytes = buffer;
    *length = used;
    return 0;
}
