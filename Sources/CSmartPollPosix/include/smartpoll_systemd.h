#ifndef SMARTPOLL_SYSTEMD_H
#define SMARTPOLL_SYSTEMD_H
// The two systemd interfaces the supervisor speaks without libsystemd: the notify protocol (a
// datagram to $NOTIFY_SOCKET) and socket activation (a listening socket as descriptor 3).

#include <stddef.h>

/// Sends `length` bytes of `message` (`READY=1\nSTATUS=...`) as one datagram to `address`: an
/// absolute path, or a Linux abstract address written with a leading '@'. Returns 0 or an
/// errno value (EAFNOSUPPORT for any other form, such as systemd's `vsock:`).
int sp_notify_send(const char *address, const void *message, size_t length);

/// Checks that `fd` is a listening Unix stream socket and makes it non-blocking and
/// close-on-exec, so it can serve as the control socket. Returns 0 or an errno value (ENOTSOCK
/// for a descriptor that is not a socket, EINVAL for a socket of another kind or one that does
/// not listen).
int sp_adopt_listener(int fd);

/// The path a Unix socket is bound to, copied into `buffer` (NUL-terminated); an abstract
/// address is written with a leading '@'. Returns the length, or -1 (unbound, or too long).
int sp_socket_path(int fd, char *buffer, size_t size);

#endif
