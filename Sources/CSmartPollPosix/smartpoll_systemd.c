#define _GNU_SOURCE
#include "smartpoll_systemd.h"
#include "smartpoll_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int sp_notify_send(const char *address, const void *message, size_t length) {
    struct sockaddr_un target;
    memset(&target, 0, sizeof target);
    target.sun_family = AF_UNIX;
    size_t size = strlen(address);
    if (size < 2 || (address[0] != '/' && address[0] != '@')) return sp_fail(EAFNOSUPPORT);
    if (size > sizeof target.sun_path) return sp_fail(ENAMETOOLONG);
    if (address[0] == '/' && size == sizeof target.sun_path) return sp_fail(ENAMETOOLONG);
    memcpy(target.sun_path, address, size);
    socklen_t target_length = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + size);
    if (address[0] == '@') {
        // Abstract: a leading NUL, and the length counts exactly the name's bytes.
        target.sun_path[0] = '\0';
    } else {
        target_length += 1;
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    ssize_t sent;
    do {
        sent = sendto(fd, message, length, MSG_NOSIGNAL, (struct sockaddr *)&target, target_length);
    } while (sent < 0 && errno == EINTR);
    int error = sent < 0 ? errno : 0;
    // A datagram socket has nothing left to flush: its close cannot lose what was sent.
    (void)close(fd);
    return error == 0 ? 0 : sp_fail(error);
}

int sp_adopt_listener(int fd) {
    int value = 0;
    socklen_t length = sizeof value;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &value, &length) != 0) return -1;
    if (value != SOCK_STREAM) return sp_fail(EINVAL);
    length = sizeof value;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &length) != 0) return -1;
    if (value == 0) return sp_fail(EINVAL);
    struct sockaddr_un address;
    socklen_t address_length = sizeof address;
    if (getsockname(fd, (struct sockaddr *)&address, &address_length) != 0) return -1;
    if (address.sun_family != AF_UNIX) return sp_fail(EINVAL);
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) return -1;
    int descriptor_flags = fcntl(fd, F_GETFD);
    if (descriptor_flags < 0 || fcntl(fd, F_SETFD, descriptor_flags | FD_CLOEXEC) != 0) return -1;
    return 0;
}

int sp_socket_path(int fd, char *buffer, size_t size) {
    struct sockaddr_un address;
    socklen_t length = sizeof address;
    memset(&address, 0, sizeof address);
    if (getsockname(fd, (struct sockaddr *)&address, &length) != 0) return -1;
    if (address.sun_family != AF_UNIX || length <= offsetof(struct sockaddr_un, sun_path)) return sp_fail(EINVAL);
    size_t name_length = length - offsetof(struct sockaddr_un, sun_path);
    const char *name = address.sun_path;
    if (name[0] != '\0') name_length = strnlen(name, name_length);
    if (name_length == 0) return sp_fail(EINVAL);
    if (name_length + 1 > size) return sp_fail(ENAMETOOLONG);
    memcpy(buffer, name, name_length);
    if (buffer[0] == '\0') buffer[0] = '@';
    buffer[name_length] = '\0';
    return (int)name_length;
}
