/* Measures a running supervisor through its event stream or its status.
 *   sp_events SOCKET finished N REQUEST...  watch; send each REQUEST line on a second connection;
 *                                            time until the Nth task_finished event: runs/s
 *   sp_events SOCKET runs N REQUEST...       the same, but without a watcher (which costs the
 *                                            supervisor a write and this program a wake-up per
 *                                            event): polls status every 50 ms until the tasks'
 *                                            runs add up to N more than before; the rate is
 *                                            the runs counted over the time of that poll, so
 *                                            the interval does not bias it while the runs go on
 *                                            (the tasks reschedule themselves), and a longer one
 *                                            costs the measured supervisor less
 *   sp_events SOCKET late SECONDS            watch for SECONDS; the late_ms of every
 *                                            task_started event: p50, p99, max
 * Prints one JSON object. */
#include "common.h"

/* Sends LINE on a connection of its own; the reply must say "ok":true. */
static void request(const char *path, const char *line) {
    struct line_reader r;
    char *reply = request_line(path, line, &r);
    if (!reply || !strstr(reply, "\"ok\":true")) { fprintf(stderr, "sp_events: %s: %s\n", line, reply ? reply : "no reply"); exit(1); }
    free(r.buf);
    close(r.fd);
}

/* The sum of the tasks' "runs" in a status reply (the first "runs" is the loop's). */
static long status_runs(const char *path) {
    struct line_reader r;
    char *reply = request_line(path, "{\"cmd\":\"status\"}", &r);
    if (!reply || !strstr(reply, "\"ok\":true")) { fprintf(stderr, "sp_events: status failed\n"); exit(1); }
    long sum = 0;
    char *p = strstr(reply, "\"tasks\":");
    while (p && (p = strstr(p, "\"runs\":"))) { p += 7; sum += strtol(p, NULL, 10); }
    free(r.buf);
    close(r.fd);
    return sum;
}

int main(int argc, char **argv) {
    if (argc >= 4 && !strcmp(argv[2], "runs")) {
        long want = atol(argv[3]), base = status_runs(argv[1]), done = 0;
        int64_t t0 = now_ns();
        for (int i = 4; i < argc; i++) request(argv[1], argv[i]);
        while ((done = status_runs(argv[1]) - base) < want) {
            if (now_ns() - t0 > 600 * 1000000000LL) { fprintf(stderr, "sp_events: only %ld of %ld runs\n", done, want); return 1; }
            struct timespec ts = {0, 50000000};
            nanosleep(&ts, NULL);
        }
        double s = (now_ns() - t0) / 1e9;
        printf("{\"runs\":%ld,\"seconds\":%.4f,\"per_second\":%.1f}\n", done, s, done / s);
        return 0;
    }
    if (argc < 4) { fprintf(stderr, "usage: sp_events SOCKET finished N REQUEST... | SOCKET late SECONDS\n"); return 2; }
    const char *path = argv[1];
    struct line_reader r;
    char *line = request_line(path, "{\"cmd\":\"watch\"}", &r);
    if (!line || !strstr(line, "\"ok\":true")) { fprintf(stderr, "sp_events: watch refused\n"); return 1; }

    if (!strcmp(argv[2], "finished")) {
        long want = atol(argv[3]), seen = 0, failed = 0;
        int64_t t0 = now_ns();
        for (int i = 4; i < argc; i++) request(path, argv[i]);
        r.deadline = now_ns() + 600 * 1000000000LL;
        while (seen < want && (line = read_line(&r, NULL))) {
            if (!strstr(line, "\"event\":\"task_finished\"")) continue;
            seen++;
            if (!strstr(line, "\"succeeded\":true")) failed++;
        }
        double s = (now_ns() - t0) / 1e9;
        if (seen < want) { fprintf(stderr, "sp_events: only %ld of %ld runs finished\n", seen, want); return 1; }
        printf("{\"runs\":%ld,\"failed\":%ld,\"seconds\":%.4f,\"per_second\":%.1f}\n", seen, failed, s, seen / s);
        return failed ? 1 : 0;
    }
    if (!strcmp(argv[2], "late")) {
        size_t cap = 1 << 20, n = 0;
        int64_t *late = calloc(cap, sizeof *late);
        r.deadline = now_ns() + (int64_t)(atof(argv[3]) * 1e9);
        while ((line = read_line(&r, NULL)) && n < cap) {
            if (!strstr(line, "\"event\":\"task_started\"")) continue;
            char *p = strstr(line, "\"late_ms\":");
            if (!p || !strncmp(p + 10, "null", 4)) continue;
            late[n++] = (int64_t)(strtod(p + 10, NULL) * 1e6);
        }
        if (n == 0) { fprintf(stderr, "sp_events: no task_started events\n"); return 1; }
        int64_t max = quantile(late, n, 1);
        printf("{\"samples\":%zu,\"p50_ms\":%.4f,\"p99_ms\":%.4f,\"max_ms\":%.4f}\n", n,
               quantile(late, n, 0.5) / 1e6, quantile(late, n, 0.99) / 1e6, max / 1e6);
        return 0;
    }
    fprintf(stderr, "sp_events: unknown mode %s\n", argv[2]);
    return 2;
}
