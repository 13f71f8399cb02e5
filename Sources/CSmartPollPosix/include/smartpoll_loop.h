#ifndef SMARTPOLL_LOOP_H
#define SMARTPOLL_LOOP_H
// The event-loop primitives Swift's Glibc module does not import (epoll, timerfd, signalfd,
// eventfd), behind a small C surface with plain structs (epoll_event is packed on x86_64).
// Errors and EINTR: smartpoll_convention.h.

#include "smartpoll_convention.h"

#include <stdint.h>
#include <signal.h>

SP_ASSUME_NONNULL_BEGIN

/// What a descriptor is watched for (SP_READABLE, SP_WRITABLE) and what it is ready for (all
/// four), as bits.
enum {
    SP_READABLE = 1,
    SP_WRITABLE = 2,
    SP_HANGUP = 4,
    SP_ERROR = 8,
};

/// The operations of sp_epoll_control (epoll_ctl's EPOLL_CTL_ADD, _MOD and _DEL).
typedef enum sp_epoll_operation {
    SP_EPOLL_ADD = 1,
    SP_EPOLL_MOD = 2,
    SP_EPOLL_DEL = 3,
} sp_epoll_operation;

/// One ready descriptor, as sp_epoll_wait reports it.
typedef struct sp_ready {
    /// The token given to sp_epoll_control for the registration that became ready.
    uint64_t token;
    /// SP_READABLE | SP_WRITABLE | SP_HANGUP | SP_ERROR.
    uint32_t events;
} sp_ready;

/// A new epoll instance (close-on-exec), or -1.
int sp_epoll_create(void);

/// Adds, modifies or removes `fd`, watching `interest` (SP_READABLE | SP_WRITABLE),
/// level-triggered. `token` is kept by the kernel for this registration and handed back by
/// sp_epoll_wait with each of its events (SP_EPOLL_MOD replaces it; SP_EPOLL_DEL ignores it and
/// `interest`). Returns 0, or -1 (EINVAL for an unknown `op`).
int sp_epoll_control(int epfd, sp_epoll_operation op, int fd, uint32_t interest, uint64_t token);

/// Waits up to `timeout_ms` (-1: forever) and fills at most `capacity` (1 to 256) entries.
/// Returns the count; 0 when the timeout passed or a signal interrupted the wait; -1 on other
/// failures (EINVAL for a capacity out of range).
int sp_epoll_wait(int epfd, sp_ready *ready, int capacity, int timeout_ms);

/// A CLOCK_MONOTONIC timerfd (non-blocking, close-on-exec), or -1.
int sp_timerfd_create(void);
/// Arms `fd` to fire once at the absolute CLOCK_MONOTONIC time `deadline_ns` (0 disarms; a
/// time in the past fires at once). Returns 0, or -1 (EINVAL for a negative deadline).
int sp_timerfd_arm(int fd, int64_t deadline_ns);
/// Reads the expiration count so the timerfd stops being readable. Returns 0 (also when it had
/// not expired: a spurious wake-up), or -1.
int sp_timerfd_drain(int fd);

/// Nanoseconds of CLOCK_MONOTONIC. Cannot fail.
int64_t sp_monotonic_ns(void);

/// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (call before starting any thread so
/// all inherit it) and returns a signalfd delivering them, or -1. SIGPIPE is ignored in the
/// process: a client that goes away must not kill the supervisor.
int sp_signalfd_for_shutdown_signals(void);
/// Reads one signal from a signalfd. Returns its number, 0 when none is pending, or -1.
int sp_signalfd_read(int fd);

/// A non-blocking, close-on-exec eventfd, to wake the loop from another thread; or -1.
int sp_eventfd_create(void);
/// Wakes the loop watching `fd`. Returns 0 (also when the counter is full: it is readable
/// then), or -1.
int sp_eventfd_signal(int fd);
/// Resets the counter so the eventfd stops being readable. Returns 0 (also when it was not
/// signalled), or -1.
int sp_eventfd_drain(int fd);

SP_ASSUME_NONNULL_END

#endif
