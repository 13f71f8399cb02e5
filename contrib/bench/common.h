/* Shared helpers for the benchmark's C reference programs: time, statistics, sockets. */
#ifndef SMARTPOLL_BENCH_COMMON_H
#define SMARTPOLL_BENCH_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static inline int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void die(const char *what) {
    fprintf(stderr, "%s: %s\n", what, strerror(errno));
    exit(1);
}

static int compare_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Sorts in place; the value at quantile q (0...1), nearest rank. */
static inline int64_t quantile(int64_t *v, size_t n, double q) {
    if (n == 0) return 0;
    qsort(v, n, sizeof *v, compare_i64);
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static inline int connect_unix(const char *path) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path) { fprintf(stderr, "socket path too long\n"); exit(2); }
    strcpy(a.sun_path, path);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die(path);
    return fd;
}

static inline void write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) { if (errno == EINTR) continue; die("write"); }
        p += w; n -= (size_t)w;
    }
}

/* A line reader over a descriptor: returns the next line without its newline, or NULL at EOF
 * or, when deadline (CLOCK_MONOTONIC ns) is set, once it has passed. */
struct line_reader { int fd; char *buf; size_t cap, start, end; int64_t deadline; };

static inline void reader_init(struct line_reader *r, int fd) {
    r->fd = fd; r->cap = 1 << 16; r->buf = malloc(r->cap); r->start = r->end = 0; r->deadline = 0;
    if (!r->buf) die("malloc");
}

static inline char *read_line(struct line_reader *r, size_t *len) {
    for (;;) {
        char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
        if (nl) {
            char *line = r->buf + r->start;
            *nl = 0;
            if (len) *len = (size_t)(nl - line);
            r->start = (size_t)(nl - r->buf) + 1;
            return line;
        }
        if (r->start > 0) {
            memmove(r->buf, r->buf + r->start, r->end - r->start);
            r->end -= r->start; r->start = 0;
        }
        if (r->end == r->cap) {
            r->cap *= 2; r->buf = realloc(r->buf, r->cap);
            if (!r->buf) die("realloc");
        }
        if (r->deadline) {
            int64_t left = r->deadline - now_ns();
            if (left <= 0) return NULL;
            struct pollfd p = {.fd = r->fd, .events = POLLIN};
            int ready = poll(&p, 1, (int)(left / 1000000) + 1);
            if (ready < 0 && errno != EINTR) die("poll");
            if (ready <= 0) continue;
        }
        ssize_t n = read(r->fd, r->buf + r->end, r->cap - r->end);
        if (n < 0) { if (errno == EINTR) continue; die("read"); }
        if (n == 0) return NULL;
        r->end += (size_t)n;
    }
}

/* Connects to PATH, sends LINE and a newline, and returns the reply line (NULL when the
 * connection closed first); *reader keeps the connection for more. */
static inline char *request_line(const char *path, const char *line, struct line_reader *reader) {
    int fd = connect_unix(path);
    size_t n = strlen(line);
    char *message = malloc(n + 1);
    if (!message) die("malloc");
    memcpy(message, line, n);
    message[n] = '\n';
    write_all(fd, message, n + 1);
    free(message);
    reader_init(reader, fd);
    return read_line(reader, NULL);
}

/* A Unix stream socket listening at `path` (a stale file there replaced); prints "ready" on
 * stdout for the script that started the server. Exits on failure. */
static inline int listen_ready(const char *path) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path) exit(2);
    strcpy(a.sun_path, path);
    unlink(path);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    if (listen(fd, 64) < 0) die("listen");
    printf("ready\n");
    fflush(stdout);
    return fd;
}

#endif
