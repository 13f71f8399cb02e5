#define _GNU_SOURCE
#include "smartpoll_loop.h"
#include "smartpoll_posix.h"
#include "smartpoll_internal.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

int sp_epoll_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}

int sp_epoll_control(int epfd, sp_epoll_operation op, int fd, uint32_t interest, uint64_t token) {
    int operation;
    switch (op) {
    case SP_EPOLL_ADD: operation = EPOLL_CTL_ADD; break;
    case SP_EPOLL_MOD: operation = EPOLL_CTL_MOD; break;
    case SP_EPOLL_DEL: operation = EPOLL_CTL_DEL; break;
    default:
        return sp_fail(EINVAL);
    }
    struct epoll_event event;
    memset(&event, 0, sizeof event);
    event.events = ((interest & SP_READABLE) ? EPOLLIN | EPOLLRDHUP : 0) | ((interest & SP_WRITABLE) ? EPOLLOUT : 0);
    event.data.u64 = token;
    return epoll_ctl(epfd, operation, fd, &event);
}

int sp_epoll_wait(int epfd, sp_ready *ready, int capacity, int timeout_ms) {
    struct epoll_event events[256];
    if (capacity < 1 || capacity > 256) return sp_fail(EINVAL);
    int count = epoll_wait(epfd, events, capacity, timeout_ms);
    if (count < 0) return errno == EINTR ? 0 : -1;
    for (int i = 0; i < count; i++) {
        uint32_t flags = 0;
        if (events[i].events & EPOLLIN) flags |= SP_READABLE;
        if (events[i].events & EPOLLOUT) flags |= SP_WRITABLE;
        if (events[i].events & (EPOLLHUP | EPOLLRDHUP)) flags |= SP_HANGUP;
        if (events[i].events & EPOLLERR) flags |= SP_ERROR;
        ready[i].token = events[i].data.u64;
        ready[i].events = flags;
    }
    return count;
}

int sp_timerfd_create(void) {
    return timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
}

int sp_timerfd_arm(int fd, int64_t deadline_ns) {
    if (deadline_ns < 0) return sp_fail(EINVAL);
    struct itimerspec spec;
    memset(&spec, 0, sizeof spec);
    spec.it_value.tv_sec = deadline_ns / 1000000000;
    spec.it_value.tv_nsec = deadline_ns % 1000000000;
    return timerfd_settime(fd, TFD_TIMER_ABSTIME, &spec, NULL);
}

// Reads the 8-byte counter of a timerfd or an eventfd; one that is not readable (EAGAIN) has
// nothing to reset.
static int sp_read_counter(int fd) {
    uint64_t value;
    ssize_t count;
    do {
        count = read(fd, &value, sizeof value);
    } while (count < 0 && errno == EINTR);
    if (count < 0 && errno != EAGAIN) return -1;
    return 0;
}

int sp_timerfd_drain(int fd) {
    return sp_read_counter(fd);
}

int64_t sp_monotonic_ns(void) {
    struct timespec now;
    // CLOCK_MONOTONIC always exists and `now` is valid: clock_gettime cannot fail here.
    (void)clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

int sp_signalfd_for_shutdown_signals(void) {
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) return -1;
    sp_spawn_dispositions_changed();
    int error = pthread_sigmask(SIG_BLOCK, &mask, NULL);
    if (error != 0) return sp_fail(error);
    return signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
}

int sp_signalfd_read(int fd) {
    struct signalfd_siginfo info;
    ssize_t count;
    do {
        count = read(fd, &info, sizeof info);
    } while (count < 0 && errno == EINTR);
    if (count < 0) return errno == EAGAIN ? 0 : -1;
    // A signalfd hands out whole records only.
    if (count != (ssize_t)sizeof info) return sp_fail(EIO);
    return (int)info.ssi_signo;
}

int sp_eventfd_create(void) {
    return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

int sp_eventfd_signal(int fd) {
    uint64_t one = 1;
    ssize_t count;
    do {
        count = write(fd, &one, sizeof one);
    } while (count < 0 && errno == EINTR);
    if (count < 0 && errno != EAGAIN) return -1;
    return 0;
}

int sp_eventfd_drain(int fd) {
    return sp_read_counter(fd);
}
