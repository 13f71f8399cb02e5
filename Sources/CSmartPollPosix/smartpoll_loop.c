#define _GNU_SOURCE
#include "smartpoll_loop.h"
#include "smartpoll_posix.h"

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

int sp_epoll_control(int epfd, int op, int fd, uint32_t interest) {
    struct epoll_event event;
    memset(&event, 0, sizeof event);
    event.events = ((interest & SP_READABLE) ? EPOLLIN | EPOLLRDHUP : 0) | ((interest & SP_WRITABLE) ? EPOLLOUT : 0);
    event.data.fd = fd;
    int operation = op == 0 ? EPOLL_CTL_ADD : op == 1 ? EPOLL_CTL_MOD : EPOLL_CTL_DEL;
    return epoll_ctl(epfd, operation, fd, &event);
}

int sp_epoll_wait(int epfd, sp_ready *ready, int capacity, int timeout_ms) {
    struct epoll_event events[256];
    if (capacity > 256) capacity = 256;
    int count = epoll_wait(epfd, events, capacity, timeout_ms);
    if (count < 0) return errno == EINTR ? 0 : -1;
    for (int i = 0; i < count; i++) {
        uint32_t flags = 0;
        if (events[i].events & EPOLLIN) flags |= SP_READABLE;
        if (events[i].events & EPOLLOUT) flags |= SP_WRITABLE;
        if (events[i].events & (EPOLLHUP | EPOLLRDHUP)) flags |= SP_HANGUP;
        if (events[i].events & EPOLLERR) flags |= SP_ERROR;
        ready[i].fd = events[i].data.fd;
        ready[i].events = flags;
    }
    return count;
}

int sp_timerfd_create(void) {
    return timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
}

int sp_timerfd_arm(int fd, int64_t deadline_ns) {
    struct itimerspec spec;
    memset(&spec, 0, sizeof spec);
    if (deadline_ns > 0) {
        spec.it_value.tv_sec = deadline_ns / 1000000000;
        spec.it_value.tv_nsec = deadline_ns % 1000000000;
    }
    return timerfd_settime(fd, TFD_TIMER_ABSTIME, &spec, NULL);
}

void sp_timerfd_drain(int fd) {
    uint64_t expirations;
    while (read(fd, &expirations, sizeof expirations) < 0 && errno == EINTR) {}
}

int64_t sp_monotonic_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

int sp_signalfd_for_shutdown_signals(void) {
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    signal(SIGPIPE, SIG_IGN);
    sp_spawn_dispositions_changed();
    if (pthread_sigmask(SIG_BLOCK, &mask, NULL) != 0) return -1;
    return signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
}

int sp_signalfd_read(int fd) {
    struct signalfd_siginfo info;
    ssize_t count;
    do {
        count = read(fd, &info, sizeof info);
    } while (count < 0 && errno == EINTR);
    return count == (ssize_t)sizeof info ? (int)info.ssi_signo : 0;
}

int sp_eventfd_create(void) {
    return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

void sp_eventfd_signal(int fd) {
    uint64_t one = 1;
    while (write(fd, &one, sizeof one) < 0 && errno == EINTR) {}
}

void sp_eventfd_drain(int fd) {
    uint64_t value;
    while (read(fd, &value, sizeof value) < 0 && errno == EINTR) {}
}
