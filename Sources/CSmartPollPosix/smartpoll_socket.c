#define _GNU_SOURCE
#include "smartpoll_socket.h"
#include "smartpoll_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int fill_address(struct sockaddr_un *address, const char *path) {
    memset(address, 0, sizeof *address);
    address->sun_family = AF_UNIX;
    size_t length = strlen(path);
    if (length == 0 || length >= sizeof address->sun_path) return sp_fail(ENAMETOOLONG);
    memcpy(address->sun_path, path, length);
    return 0;
}

int sp_listen_unix(const char *path, int backlog, uint32_t mode) {
    struct sockaddr_un address;
    if (fill_address(&address, path) != 0) return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    // bind creates the socket file with the permission bits the umask leaves of 0777, so the
    // umask makes them exactly `mode`, with no chmod by path afterwards (which would follow a
    // symbolic link put in the socket's place).
    mode_t previous = umask(~(mode_t)mode & 0777);
    int bound = bind(fd, (struct sockaddr *)&address, sizeof address);
    int bind_error = errno;
    // umask cannot fail; it returns the mask it replaces.
    (void)umask(previous);
    errno = bind_error;
    if (bound != 0 || listen(fd, backlog) != 0) {
        int saved = errno;
        // Released even when close reports an error; nothing was sent on it.
        (void)close(fd);
        return sp_fail(saved);
    }
    return fd;
}

int sp_connect_unix(const char *path) {
    struct sockaddr_un address;
    if (fill_address(&address, path) != 0) return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int result;
    do {
        result = connect(fd, (struct sockaddr *)&address, sizeof address);
    } while (result != 0 && errno == EINTR);
    if (result != 0) {
        int saved = errno;
        // Released even when close reports an error; nothing was sent on it.
        (void)close(fd);
        return sp_fail(saved);
    }
    return fd;
}

int sp_accept(int listener, uid_t *uid, gid_t *gid, pid_t *pid) {
    int fd;
    do {
        fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return -1;
    struct ucred credentials;
    socklen_t length = sizeof credentials;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) {
        int saved = errno;
        // Released even when close reports an error; nothing was sent on it.
        (void)close(fd);
        return sp_fail(saved);
    }
    *uid = credentials.uid;
    *gid = credentials.gid;
    *pid = credentials.pid;
    return fd;
}

ssize_t sp_send(int fd, const void *bytes, size_t length) {
    ssize_t sent;
    do {
        sent = send(fd, bytes, length, MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    return sent;
}
