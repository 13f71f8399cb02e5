/* The spawn reference: COUNT runs of PATH with posix_spawn + waitpid, INFLIGHT at a time.
 * Prints {"spawns":N,"inflight":K,"seconds":S,"per_second":R}.
 * usage: spawn_loop COUNT INFLIGHT PATH */
#include "common.h"
#include <spawn.h>
#include <sys/wait.h>

extern char **environ;

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: spawn_loop COUNT INFLIGHT PATH\n"); return 2; }
    int count = atoi(argv[1]), inflight = atoi(argv[2]);
    char *args[] = {argv[3], NULL};
    if (count < 1 || inflight < 1) return 2;
    int started = 0, done = 0, running = 0;
    int64_t t0 = now_ns();
    while (done < count) {
        while (running < inflight && started < count) {
            pid_t pid;
            int rc = posix_spawn(&pid, args[0], NULL, NULL, args, environ);
            if (rc) { errno = rc; die("posix_spawn"); }
            started++; running++;
        }
        int status;
        if (wait(&status) < 0) { if (errno == EINTR) continue; die("wait"); }
        running--; done++;
    }
    double s = (now_ns() - t0) / 1e9;
    printf("{\"spawns\":%d,\"inflight\":%d,\"seconds\":%.4f,\"per_second\":%.1f}\n", count, inflight, s, count / s);
    return 0;
}
