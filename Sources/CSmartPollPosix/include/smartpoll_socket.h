#ifndef SMARTPOLL_SOCKET_H
#define SMARTPOLL_SOCKET_H
// Unix stream sockets for the control protocol: what Swift's Glibc makes awkward (sockaddr_un,
// accept4, SO_PEERCRED). Errors and EINTR: smartpoll_convention.h.

#include "smartpoll_convention.h"

#include <stdint.h>
#include <sys/types.h>

SP_ASSUME_NONNULL_BEGIN

/// A non-blocking, close-on-exec listening socket bound at `path`, with permission bits `mode`.
/// The caller has made sure nothing live is there. Returns the descriptor, or -1
/// (ENAMETOOLONG for a path that does not fit a sockaddr_un).
int sp_listen_unix(const char *path, int backlog, uint32_t mode);

/// A blocking, close-on-exec socket connected to `path`, or -1.
int sp_connect_unix(const char *path);

/// Accepts one connection (non-blocking, close-on-exec) and reports the peer's credentials.
/// Returns the descriptor, or -1 (EAGAIN when none is waiting).
int sp_accept(int listener, uid_t *uid, gid_t *gid, pid_t *pid);

/// Sends `length` bytes (`bytes` may be NULL when `length` is 0) without raising SIGPIPE.
/// Returns the count sent, or -1 (EAGAIN on a full non-blocking socket, EPIPE when the peer is
/// gone).
ssize_t sp_send(int fd, const void *_Nullable bytes, size_t length);

SP_ASSUME_NONNULL_END

#endif
