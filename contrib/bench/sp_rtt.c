/* Protocol timing on one persistent connection.
 *   sp_rtt SOCKET LINE COUNT              COUNT round trips of LINE, one at a time: prints
 *                                         p50, min and max in microseconds
 *   sp_rtt --pipeline SOCKET LINE COUNT   COUNT copies of LINE written by one thread while this
 *                                         one reads the replies: prints requests per second
 * Every reply must be one line; with a supervisor it must say "ok":true. */
#include "common.h"
#include <pthread.h>

struct writer_args { int fd; const char *line; size_t len; long count; };

static void *writer(void *p) {
    struct writer_args *w = p;
    size_t batch = 64, size = batch * (w->len + 1);
    char *buf = malloc(size);
    for (size_t i = 0; i < batch; i++) { memcpy(buf + i * (w->len + 1), w->line, w->len); buf[i * (w->len + 1) + w->len] = '\n'; }
    for (long sent = 0; sent < w->count;) {
        long n = w->count - sent < (long)batch ? w->count - sent : (long)batch;
        write_all(w->fd, buf, (size_t)n * (w->len + 1));
        sent += n;
    }
    free(buf);
    return NULL;
}

static void check(const char *reply, const char *line) {
    if (!reply) { fprintf(stderr, "sp_rtt: connection closed\n"); exit(1); }
    if (strcmp(reply, line) != 0 && !strstr(reply, "\"ok\":true")) {
        fprintf(stderr, "sp_rtt: unexpected reply: %.200s\n", reply);
        exit(1);
    }
}

int main(int argc, char **argv) {
    int pipeline = argc == 5 && !strcmp(argv[1], "--pipeline");
    if (argc != 4 + pipeline) { fprintf(stderr, "usage: sp_rtt [--pipeline] SOCKET LINE COUNT\n"); return 2; }
    const char *path = argv[1 + pipeline], *line = argv[2 + pipeline];
    long count = atol(argv[3 + pipeline]);
    if (count < 1) return 2;
    int fd = connect_unix(path);
    struct line_reader r;
    reader_init(&r, fd);
    size_t len = strlen(line);
    if (pipeline) {
        struct writer_args w = {fd, line, len, count};
        pthread_t t;
        int64_t t0 = now_ns();
        pthread_create(&t, NULL, writer, &w);
        for (long i = 0; i < count; i++) check(read_line(&r, NULL), line);
        double s = (now_ns() - t0) / 1e9;
        pthread_join(t, NULL);
        printf("{\"requests\":%ld,\"seconds\":%.4f,\"per_second\":%.0f}\n", count, s, count / s);
        return 0;
    }
    char *msg = malloc(len + 1);
    memcpy(msg, line, len); msg[len] = '\n';
    int64_t *rtt = calloc((size_t)count, sizeof *rtt);
    for (long i = -count / 10 - 1; i < count; i++) {   /* the first tenth warms up */
        int64_t t0 = now_ns();
        write_all(fd, msg, len + 1);
        check(read_line(&r, NULL), line);
        if (i >= 0) rtt[i] = now_ns() - t0;
    }
    int64_t lo = quantile(rtt, (size_t)count, 0), hi = quantile(rtt, (size_t)count, 1);
    printf("{\"round_trips\":%ld,\"p50_us\":%.2f,\"min_us\":%.2f,\"max_us\":%.2f}\n", count,
           quantile(rtt, (size_t)count, 0.5) / 1e3, lo / 1e3, hi / 1e3);
    return 0;
}
