/* Request latency on one persistent connection, as a client that asks now and then would see it.
 *   sp_latency SOCKET SECONDS INTERVAL_MS LINE
 * For SECONDS, sends LINE, waits for its reply (which must say "ok":true), then pauses
 * INTERVAL_MS before the next one; prints the count and p50, p99 and max of the round trips in
 * milliseconds. A reply that takes longer than the whole run still counts: the run waits for
 * it (a stalled supervisor shows up as a huge max, not as a missing sample), up to 60 s after
 * the run's end; one that never comes counts as that long, and "unanswered" says so. */
#include "common.h"

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: sp_latency SOCKET SECONDS INTERVAL_MS LINE\n"); return 2; }
    const char *path = argv[1], *line = argv[4];
    double seconds = atof(argv[2]);
    long interval_ms = atol(argv[3]);
    int fd = connect_unix(path);
    struct line_reader r;
    reader_init(&r, fd);
    size_t len = strlen(line);
    char *message = malloc(len + 1);
    if (!message) die("malloc");
    memcpy(message, line, len);
    message[len] = '\n';
    size_t cap = 1 << 16, n = 0;
    int64_t *rtt = calloc(cap, sizeof *rtt);
    if (!rtt) die("calloc");
    int64_t end = now_ns() + (int64_t)(seconds * 1e9);
    int unanswered = 0;
    r.deadline = end + 60 * 1000000000LL;
    while (now_ns() < end && n < cap) {
        int64_t t0 = now_ns();
        write_all(fd, message, len + 1);
        char *reply = read_line(&r, NULL);
        if (!reply && now_ns() >= r.deadline) {
            rtt[n++] = now_ns() - t0;
            unanswered = 1;
            break;
        }
        if (!reply) { fprintf(stderr, "sp_latency: the connection closed\n"); return 1; }
        if (!strstr(reply, "\"ok\":true")) { fprintf(stderr, "sp_latency: %.200s\n", reply); return 1; }
        rtt[n++] = now_ns() - t0;
        if (interval_ms > 0) {
            struct timespec pause = {interval_ms / 1000, (interval_ms % 1000) * 1000000};
            nanosleep(&pause, NULL);
        }
    }
    printf("{\"samples\":%zu,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"unanswered\":%d}\n", n,
           quantile(rtt, n, 0.5) / 1e6, quantile(rtt, n, 0.99) / 1e6, quantile(rtt, n, 1) / 1e6, unanswered);
    return 0;
}
