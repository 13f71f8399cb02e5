/* The spawn reference: COUNT runs of PATH, INFLIGHT at a time, each waited for.
 * Prints {"spawns":N,"inflight":K,"seconds":S,"per_second":R}.
 *
 * usage: spawn_loop COUNT INFLIGHT PATH [CGROUP_DIR]
 *
 * Without CGROUP_DIR: posix_spawn + wait, nothing else. With it, the same containment work a
 * run of the supervisor does in cgroup mode: a cgroup of its own per spawn (mkdir under
 * CGROUP_DIR, which it creates and removes), the child entering it before it executes PATH
 * (clone with CLONE_VM | CLONE_VFORK, as posix_spawn does, and a write of "0" to the new
 * cgroup's cgroup.procs in the child), and the cgroup removed once the child was reaped. */
#include "common.h"
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

extern char **environ;

struct child_args {
    char **argv;
    int procs;
};

static int child_main(void *raw) {
    struct child_args *args = raw;
    if (write(args->procs, "0", 1) != 1) _exit(126);
    execve(args->argv[0], args->argv, environ);
    _exit(127);
}

#define STACK_SIZE (64 * 1024)

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: spawn_loop COUNT INFLIGHT PATH [CGROUP_DIR]\n");
        return 2;
    }
    int count = atoi(argv[1]), inflight = atoi(argv[2]);
    const char *cgroups = argc == 5 ? argv[4] : NULL;
    char *args[] = {argv[3], NULL};
    if (count < 1 || inflight < 1) return 2;
    if (cgroups && mkdir(cgroups, 0755) != 0 && errno != EEXIST) die("mkdir CGROUP_DIR");
    /* The cgroup of each child in flight, by pid (a small table: INFLIGHT entries). */
    pid_t *pids = calloc((size_t)inflight, sizeof *pids);
    int *numbers = calloc((size_t)inflight, sizeof *numbers);
    char *stack = malloc(STACK_SIZE);
    if (!pids || !numbers || !stack) die("malloc");
    char path[4096];
    int started = 0, done = 0, running = 0;
    int64_t t0 = now_ns();
    while (done < count) {
        while (running < inflight && started < count) {
            pid_t pid;
            if (cgroups) {
                snprintf(path, sizeof path, "%s/run-%d", cgroups, started);
                if (mkdir(path, 0755) != 0) die("mkdir");
                size_t length = strlen(path);
                snprintf(path + length, sizeof path - length, "/cgroup.procs");
                struct child_args child = {args, open(path, O_WRONLY | O_CLOEXEC)};
                if (child.procs < 0) die("open cgroup.procs");
                pid = clone(child_main, stack + STACK_SIZE, CLONE_VM | CLONE_VFORK | SIGCHLD, &child);
                if (pid < 0) die("clone");
                close(child.procs);
            } else {
                int rc = posix_spawn(&pid, args[0], NULL, NULL, args, environ);
                if (rc) { errno = rc; die("posix_spawn"); }
            }
            for (int slot = 0; slot < inflight; slot++) {
                if (pids[slot] == 0) { pids[slot] = pid; numbers[slot] = started; break; }
            }
            started++; running++;
        }
        int status;
        pid_t pid = wait(&status);
        if (pid < 0) { if (errno == EINTR) continue; die("wait"); }
        for (int slot = 0; slot < inflight; slot++) {
            if (pids[slot] != pid) continue;
            pids[slot] = 0;
            if (cgroups) {
                snprintf(path, sizeof path, "%s/run-%d", cgroups, numbers[slot]);
                if (rmdir(path) != 0) die("rmdir");
            }
            break;
        }
        running--; done++;
    }
    double s = (now_ns() - t0) / 1e9;
    if (cgroups) rmdir(cgroups);
    printf("{\"spawns\":%d,\"inflight\":%d,\"seconds\":%.4f,\"per_second\":%.1f}\n", count, inflight, s, count / s);
    return 0;
}
