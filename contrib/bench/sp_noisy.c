/* The noisy-neighbour scenario's clients (contrib/bench/run --only noisy).
 *   sp_noisy watch SOCKET SECONDS PREFIX [TASK=MS...]
 *       watches for SECONDS. Quiet lateness: the late_ms of every task_started event of a task
 *       whose name starts with PREFIX (how long after its due time the process started, by the
 *       supervisor's clock). Timeout lateness: for each TASK=MS, every task_finished event of
 *       TASK that timed out gives duration_ms - MS, MS being when the run should have ended
 *       (its timeout, plus kill_grace when it ignores the kill signal). Prints one flat JSON
 *       object: quiet_samples, quiet_p50_ms, quiet_p99_ms, quiet_max_ms, and TASK_samples,
 *       TASK_p50_ms, TASK_max_ms for each TASK.
 *   sp_noisy pull SOCKET SECONDS
 *       sends {"cmd":"results"} and reads the whole reply, again and again for SECONDS: the
 *       client that hoards the supervisor's time with big replies. Prints pulls, bytes, max_ms.
 *   sp_noisy stall SOCKET SECONDS
 *       sends {"cmd":"watch"} and never reads: the client whose stream backs up. Prints how
 *       long it stalled. */
#include "common.h"

#define MAX_TIMEOUT_TASKS 8

struct samples { int64_t *v; size_t n, cap; };

static void add(struct samples *s, int64_t value) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (!s->v) die("realloc");
    }
    s->v[s->n++] = value;
}

/* The number after "KEY": in LINE, in nanoseconds from milliseconds; 0 when absent or null. */
static int number_ms(const char *line, const char *key, int64_t *ns) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    const char *p = strstr(line, pattern);
    if (!p) return 0;
    p += strlen(pattern);
    if (!strncmp(p, "null", 4)) return 0;
    *ns = (int64_t)(strtod(p, NULL) * 1e6);
    return 1;
}

/* Whether the event's "task" is NAME (exact), or starts with NAME when prefix is set. */
static int task_is(const char *line, const char *name, int prefix) {
    const char *p = strstr(line, "\"task\":\"");
    if (!p) return 0;
    p += 8;
    size_t n = strlen(name);
    if (strncmp(p, name, n) != 0) return 0;
    return prefix || p[n] == '"';
}

static int watch(const char *path, double seconds, const char *prefix, int count, char **specs) {
    const char *names[MAX_TIMEOUT_TASKS];
    int64_t expected[MAX_TIMEOUT_TASKS];
    struct samples timeouts[MAX_TIMEOUT_TASKS] = {{0}}, quiet = {0};
    if (count > MAX_TIMEOUT_TASKS) { fprintf(stderr, "sp_noisy: at most %d TASK=MS\n", MAX_TIMEOUT_TASKS); return 2; }
    for (int i = 0; i < count; i++) {
        char *equals = strchr(specs[i], '=');
        if (!equals) { fprintf(stderr, "sp_noisy: %s: TASK=MS expected\n", specs[i]); return 2; }
        *equals = 0;
        names[i] = specs[i];
        expected[i] = (int64_t)(atof(equals + 1) * 1e6);
    }
    /* The deadline covers the watch's own reply: a stalled supervisor gives no sample, not a hang. */
    static const char request[] = "{\"cmd\":\"watch\"}\n";
    struct line_reader r;
    reader_init(&r, connect_unix(path));
    r.deadline = now_ns() + (int64_t)(seconds * 1e9);
    write_all(r.fd, request, sizeof request - 1);
    char *line = read_line(&r, NULL);
    if (line && !strstr(line, "\"ok\":true")) { fprintf(stderr, "sp_noisy: watch refused: %.200s\n", line); return 1; }
    while (line && (line = read_line(&r, NULL))) {
        int64_t value;
        if (strstr(line, "\"event\":\"task_started\"")) {
            if (task_is(line, prefix, 1) && number_ms(line, "late_ms", &value)) add(&quiet, value);
        } else if (strstr(line, "\"event\":\"task_finished\"") && strstr(line, "\"timed_out\":true")) {
            for (int i = 0; i < count; i++) {
                if (task_is(line, names[i], 0) && number_ms(line, "duration_ms", &value)) add(&timeouts[i], value - expected[i]);
            }
        }
    }
    /* No sample at all (a loop that never got to start a task) prints nulls. */
    if (quiet.n == 0) {
        printf("{\"quiet_samples\":0,\"quiet_p50_ms\":null,\"quiet_p99_ms\":null,\"quiet_max_ms\":null");
    } else {
        printf("{\"quiet_samples\":%zu,\"quiet_p50_ms\":%.3f,\"quiet_p99_ms\":%.3f,\"quiet_max_ms\":%.3f", quiet.n,
               quantile(quiet.v, quiet.n, 0.5) / 1e6, quantile(quiet.v, quiet.n, 0.99) / 1e6,
               quantile(quiet.v, quiet.n, 1) / 1e6);
    }
    for (int i = 0; i < count; i++) {
        struct samples *s = &timeouts[i];
        if (s->n == 0) {
            printf(",\"%s_samples\":0,\"%s_p50_ms\":null,\"%s_max_ms\":null", names[i], names[i], names[i]);
            continue;
        }
        printf(",\"%s_samples\":%zu,\"%s_p50_ms\":%.3f,\"%s_max_ms\":%.3f", names[i], s->n, names[i],
               quantile(s->v, s->n, 0.5) / 1e6, names[i], quantile(s->v, s->n, 1) / 1e6);
    }
    printf("}\n");
    return 0;
}

static int pull(const char *path, double seconds) {
    static const char request[] = "{\"cmd\":\"results\"}\n";
    int fd = connect_unix(path);
    size_t cap = 1 << 20;
    char *buffer = malloc(cap);
    if (!buffer) die("malloc");
    long pulls = 0;
    int64_t bytes = 0, slowest = 0, end = now_ns() + (int64_t)(seconds * 1e9);
    while (now_ns() < end) {
        int64_t t0 = now_ns();
        write_all(fd, request, sizeof request - 1);
        size_t seen = 0;
        for (;;) {
            ssize_t n = read(fd, buffer, cap);
            if (n < 0) { if (errno == EINTR) continue; die("read"); }
            if (n == 0) { fprintf(stderr, "sp_noisy: the connection closed\n"); return 1; }
            if (seen == 0 && !memmem(buffer, (size_t)n < 64 ? (size_t)n : 64, "\"ok\":true", 9)) {
                fprintf(stderr, "sp_noisy: results failed: %.200s\n", buffer);
                return 1;
            }
            seen += (size_t)n;
            /* One request in flight: its reply ends with the only newline. */
            if (memchr(buffer, '\n', (size_t)n)) break;
        }
        bytes += (int64_t)seen;
        pulls++;
        if (now_ns() - t0 > slowest) slowest = now_ns() - t0;
    }
    printf("{\"pulls\":%ld,\"bytes\":%lld,\"max_ms\":%.3f}\n", pulls, (long long)bytes, slowest / 1e6);
    return 0;
}

static int stall(const char *path, double seconds) {
    static const char request[] = "{\"cmd\":\"watch\"}\n";
    int fd = connect_unix(path);
    write_all(fd, request, sizeof request - 1);
    struct timespec pause = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {}
    printf("{\"stalled_seconds\":%.1f}\n", seconds);
    close(fd);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 5 && !strcmp(argv[1], "watch")) return watch(argv[2], atof(argv[3]), argv[4], argc - 5, argv + 5);
    if (argc == 4 && !strcmp(argv[1], "pull")) return pull(argv[2], atof(argv[3]));
    if (argc == 4 && !strcmp(argv[1], "stall")) return stall(argv[2], atof(argv[3]));
    fprintf(stderr, "usage: sp_noisy watch SOCKET SECONDS PREFIX [TASK=MS...] | pull SOCKET SECONDS | stall SOCKET SECONDS\n");
    return 2;
}
