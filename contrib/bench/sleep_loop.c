/* The timer reference: TASKS timers each firing every PERIOD_MS, phases spread evenly, for
 * SECONDS, on one thread sleeping with clock_nanosleep(TIMER_ABSTIME) to the next deadline.
 * Lateness = wake-up time minus deadline. Prints p50, p99 and max in milliseconds.
 * usage: sleep_loop TASKS PERIOD_MS SECONDS */
#include "common.h"

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: sleep_loop TASKS PERIOD_MS SECONDS\n"); return 2; }
    int tasks = atoi(argv[1]);
    int64_t period = (int64_t)atoi(argv[2]) * 1000000, seconds = atoi(argv[3]);
    if (tasks < 1 || period <= 0 || seconds <= 0) return 2;
    size_t cap = (size_t)(tasks * (seconds * 1000000000 / period + 1)), n = 0;
    int64_t *late = calloc(cap, sizeof *late);
    int64_t start = now_ns() + 10000000, step = period / tasks;
    for (int64_t due = start; due < start + seconds * 1000000000 && n < cap; due += step) {
        struct timespec ts = {.tv_sec = due / 1000000000, .tv_nsec = due % 1000000000};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
        late[n++] = now_ns() - due;
    }
    int64_t max = quantile(late, n, 1);
    printf("{\"samples\":%zu,\"p50_ms\":%.4f,\"p99_ms\":%.4f,\"max_ms\":%.4f}\n", n,
           quantile(late, n, 0.5) / 1e6, quantile(late, n, 0.99) / 1e6, max / 1e6);
    return 0;
}
