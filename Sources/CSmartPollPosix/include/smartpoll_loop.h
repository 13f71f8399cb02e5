#ifndef SMARTPOLL_LOOP_H
#define SMARTPOLL_LOOP_H
// The event-loop primitives Swift's Glibc module does not import (epoll, timerfd, signalfd,
// eventfd), behind a small C surface with plain structs (epoll_event is packed on x86_64).

#include <stdint.h>
#include <signal.h>

enum {
    SP_READABLE = 1,
    SP_WRITABLE = 2,
    SP_HANGUP = 4,
    SP_ERROR = 8,
};

typedef struct sp_ready {
    int32_t fd;
    uint32_t events; // SP_READABLE | SP_WRITABLE | SP_HANGUP | SP_ERROR
} sp_ready;

/// A new epoll instance (close-on-exec); -1 and errno on failure.
int sp_epoll_create(void);
/// Adds (op 0), modifies (op 1) or removes (op 2) `fd`, watching `interest` (SP_READABLE |
/// SP_WRITABLE), level-triggered. Returns 0, or -1 and errno.
int sp_epoll_control(int epfd, int op, int fd, uint32_t interest);
/// Waits up to `timeout_ms` (-1: forever) and fills at most `capacity` entries. Returns the
/// count, 0 on timeout or EINTR, -1 and errno on other failures.
int sp_epoll_wait(int epfd, sp_ready *ready, int capacity, int timeout_ms);

/// A CLOCK_MONOTONIC timerfd (non-blocking, close-on-exec).
int sp_timerfd_create(void);
/// Arms `fd` to fire once at the absolute CLOCK_MONOTONIC time `deadline_ns`; 0 disarms.
int sp_timerfd_arm(int fd, int64_t deadline_ns);
/// Reads the expiration count so the timerfd stops being readable.
void sp_timerfd_drain(int fd);

/// Nanoseconds of CLOCK_MONOTONIC.
int64_t sp_monotonic_ns(void);

/// Blocks SIGTERM, SIGINT, SIGHUP and SIGPIPE in the calling thread (call before starting any
/// thread so all inherit it) and returns a signalfd delivering the first three (SIGPIPE is
/// just ignored: a client that goes away must not kill the supervisor).
int sp_signalfd_for_shutdown_signals(void);
/// Reads one signal from a signalfd; returns its number, or 0 when none is pending.
int sp_signalfd_read(int fd);

/// A non-blocking, close-on-exec eventfd, to wake the loop from another thread.
int sp_eventfd_create(void);
void sp_eventfd_signal(int fd);
void sp_eventfd_drain(int fd);

#endif
