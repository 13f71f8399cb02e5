#ifndef SMARTPOLL_SYSTEMD_H
#define SMARTPOLL_SYSTEMD_H
// The two systemd interfaces the supervisor speaks without libsystemd: the notify protocol (a
// datagram to $NOTIFY_SOCKET) and socket activation (a listening socket as descriptor 3).
// Errors and EINTR: smartpoll_convention.h.

#include "smartpoll_convention.h"

#include <stddef.h>

SP_ASSUME_NONNULL_BEGIN

/// Sends `length` bytes of `message` (`READY=1\nSTATUS=...`; NULL only when `length` is 0) as
/// one datagram to `address`: an absolute path, or a Linux abstract address written with a
/// leading '@'. Returns 0, or -1 (EAFNOSUPPORT for any other form, such as systemd's `vsock:`;
/// ENAMETOOLONG for one too long for a sockaddr_un).
int sp_notify_send(const char *address, const void *_Nullable message, size_t length);

/// Checks that `fd` is a listening Unix stream socket and makes it non-blocking and
/// close-on-exec, so it can serve as the control socket. Returns 0, or -1 (ENOTSOCK for a
/// descriptor that is not a socket, EINVAL for a socket of another kind or one that does not
/// listen).
int sp_adopt_listener(int fd);

/// The path a Unix socket is bound to, copied into `buffer` of `size` bytes (NUL-terminated);
/// an abstract address is written with a leading '@'. Returns the length, or -1 (EINVAL for a
/// socket that is not a bound Unix socket, ENAMETOOLONG when the path does not fit `buffer`).
int sp_socket_path(int fd, char *buffer, size_t size);

SP_ASSUME_NONNULL_END

#endif
