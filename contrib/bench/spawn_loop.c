/* The spawn reference: COUNT runs of PATH, INFLIGHT at a time, each waited for.
 * Prints {"spawns":N,"inflight":K,"seconds":S,"per_second":R}.
 *
 * usage: spawn_loop COUNT INFLIGHT PATH [CGROUP_DIR [fresh]]
 *
 * Without CGROUP_DIR: posix_spawn + wait, nothing else. With it, the containment work a run of
 * the supervisor does in cgroup mode (supervisor(8) CONTAINMENT): each child alone in a cgroup
 * of its own under CGROUP_DIR (which it creates and removes), entered before it executes PATH
 * (clone with CLONE_VM | CLONE_VFORK, as posix_spawn does, and a write of "0" to the cgroup's
 * cgroup.procs in the child); after the wait, cgroup.events is read (the cgroup must be empty)
 * and cpu.stat (the run's CPU time). As the supervisor does, a cgroup is a slot reused by later
 * children once empty, one per child in flight, its cgroup.procs kept open. With "fresh", a new
 * cgroup per spawn instead, removed after the wait (the supervisor before its slots). */
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

/* One read of a small cgroupfs file: the content's length, or -1. */
static ssize_t read_small(const char *directory, const char *file, char *buffer, size_t size) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", directory, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t count = read(fd, buffer, size - 1);
    close(fd);
    if (count >= 0) buffer[count] = 0;
    return count;
}

int main(int argc, char **argv) {
    if (argc < 4 || argc > 6 || (argc == 6 && strcmp(argv[5], "fresh") != 0)) {
        fprintf(stderr, "usage: spawn_loop COUNT INFLIGHT PATH [CGROUP_DIR [fresh]]\n");
        return 2;
    }
    int count = atoi(argv[1]), inflight = atoi(argv[2]);
    const char *cgroups = argc >= 5 ? argv[4] : NULL;
    int fresh = argc == 6;
    char *args[] = {argv[3], NULL};
    if (count < 1 || inflight < 1) return 2;
    if (cgroups && mkdir(cgroups, 0755) != 0 && errno != EEXIST) die("mkdir CGROUP_DIR");
    /* Per child in flight: its pid, and its slot's directory and open cgroup.procs. */
    pid_t *pids = calloc((size_t)inflight, sizeof *pids);
    char (*slots)[4096] = calloc((size_t)inflight, sizeof *slots);
    int *procs = calloc((size_t)inflight, sizeof *procs);
    char *stack = malloc(STACK_SIZE);
    if (!pids || !slots || !procs || !stack) die("malloc");
    for (int slot = 0; slot < inflight; slot++) procs[slot] = -1;
    char path[4096], text[1024];
    int started = 0, done = 0, running = 0;
    int64_t t0 = now_ns();
    while (done < count) {
        while (running < inflight && started < count) {
            int slot = 0;
            while (pids[slot] != 0) slot++;
            pid_t pid;
            if (cgroups) {
                if (procs[slot] < 0) {
                    snprintf(slots[slot], sizeof slots[slot], "%s/%s-%d", cgroups, fresh ? "run" : "slot",
                             fresh ? started : slot);
                    if (mkdir(slots[slot], 0755) != 0) die("mkdir");
                    snprintf(path, sizeof path, "%s/cgroup.procs", slots[slot]);
                    procs[slot] = open(path, O_WRONLY | O_CLOEXEC);
                    if (procs[slot] < 0) die("open cgroup.procs");
                }
                struct child_args child = {args, procs[slot]};
                pid = clone(child_main, stack + STACK_SIZE, CLONE_VM | CLONE_VFORK | SIGCHLD, &child);
                if (pid < 0) die("clone");
                if (fresh) { close(procs[slot]); procs[slot] = -1; }
            } else {
                int rc = posix_spawn(&pid, args[0], NULL, NULL, args, environ);
                if (rc) { errno = rc; die("posix_spawn"); }
            }
            pids[slot] = pid;
            started++; running++;
        }
        int status;
        pid_t pid = wait(&status);
        if (pid < 0) { if (errno == EINTR) continue; die("wait"); }
        for (int slot = 0; slot < inflight; slot++) {
            if (pids[slot] != pid) continue;
            pids[slot] = 0;
            if (cgroups) {
                if (read_small(slots[slot], "cgroup.events", text, sizeof text) < 0) die("read cgroup.events");
                if (!strstr(text, "populated 0")) { fprintf(stderr, "spawn_loop: %s not empty\n", slots[slot]); return 1; }
                if (read_small(slots[slot], "cpu.stat", text, sizeof text) < 0) die("read cpu.stat");
                if (fresh && rmdir(slots[slot]) != 0) die("rmdir");
            }
            break;
        }
        running--; done++;
    }
    double s = (now_ns() - t0) / 1e9;
    if (cgroups) {
        for (int slot = 0; slot < inflight; slot++) {
            if (procs[slot] >= 0) { close(procs[slot]); rmdir(slots[slot]); }
        }
        rmdir(cgroups);
    }
    printf("{\"spawns\":%d,\"inflight\":%d,\"seconds\":%.4f,\"per_second\":%.1f}\n", count, inflight, s, count / s);
    return 0;
}
