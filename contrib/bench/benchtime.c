/* Whole-process timing, pair by pair: runs command A, then command B, ROUNDS times (A B A B ...),
 * after WARMUP unmeasured pairs, so that drift on a noisy machine touches both alike. Each run is
 * posix_spawn -> waitpid wall time, stdout to /dev/null. Any failed run is an error.
 * Prints one JSON object: medians, minimums and maximums in milliseconds, and the ratio A/B of
 * the medians. With one command (no :::), times it alone.
 * usage: benchtime [-n ROUNDS] [-w WARMUP] -- A [ARG...] [::: B [ARG...]] */
#include "common.h"
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

extern char **environ;

static int64_t run_once(char **argv, posix_spawn_file_actions_t *fa) {
    pid_t pid;
    int64_t t0 = now_ns();
    int rc = posix_spawn(&pid, argv[0], fa, NULL, argv, environ);
    if (rc) { errno = rc; die(argv[0]); }
    int status;
    while (waitpid(pid, &status, 0) < 0) if (errno != EINTR) die("waitpid");
    int64_t t1 = now_ns();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "benchtime: %s failed (status %d)\n", argv[0], status);
        exit(1);
    }
    return t1 - t0;
}

static void print_stats(const char *key, int64_t *v, int n) {
    int64_t lo = quantile(v, (size_t)n, 0), hi = quantile(v, (size_t)n, 1), med = quantile(v, (size_t)n, 0.5);
    printf("\"%s\":{\"median_ms\":%.4f,\"min_ms\":%.4f,\"max_ms\":%.4f}", key, med / 1e6, lo / 1e6, hi / 1e6);
}

int main(int argc, char **argv) {
    int rounds = 100, warmup = 5, i = 1;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "-n") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-w") && i + 1 < argc) warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--")) { i++; break; }
        else { fprintf(stderr, "usage: benchtime [-n ROUNDS] [-w WARMUP] -- A... [::: B...]\n"); return 2; }
    }
    if (i >= argc || rounds < 1) { fprintf(stderr, "benchtime: no command\n"); return 2; }
    char **a = argv + i, **b = NULL;
    for (int j = i; j < argc; j++)
        if (!strcmp(argv[j], ":::")) { argv[j] = NULL; b = argv + j + 1; break; }
    if (b && !b[0]) { fprintf(stderr, "benchtime: empty command after :::\n"); return 2; }

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);

    int64_t *ta = calloc((size_t)rounds, sizeof *ta), *tb = calloc((size_t)rounds, sizeof *tb);
    for (int r = 0; r < warmup; r++) { run_once(a, &fa); if (b) run_once(b, &fa); }
    for (int r = 0; r < rounds; r++) {
        ta[r] = run_once(a, &fa);
        if (b) tb[r] = run_once(b, &fa);
    }
    int64_t ma = quantile(ta, (size_t)rounds, 0.5);
    printf("{\"rounds\":%d,", rounds);
    print_stats("a", ta, rounds);
    if (b) {
        int64_t mb = quantile(tb, (size_t)rounds, 0.5);
        printf(",");
        print_stats("b", tb, rounds);
        printf(",\"ratio\":%.3f", (double)ma / (double)mb);
    }
    printf("}\n");
    return 0;
}
