/* The spawn reference: COUNT runs of PATH, INFLIGHT at a time, each waited for.
 * Prints {"spawns":N,"inflight":K,"seconds":S,"per_second":R}.
 *
 * usage: spawn_loop COUNT INFLIGHT PATH [CGROUP_DIR [fresh|capture]]
 *
 * Without CGROUP_DIR: posix_spawn + wait, nothing else. With it, the containment work a run of
 * the supervisor does in cgroup mode (supervisor(8) CONTAINMENT): each child alone in a cgroup
 * of its own under CGROUP_DIR (which it creates and removes), born in it as the supervisor's
 * runs are (clone3 with CLONE_VM | CLONE_VFORK | CLONE_INTO_CGROUP; where that is refused, or
 * not on x86-64, clone and a write of "0" to the cgroup's cgroup.procs in the child); after the
 * wait, cgroup.events is read (the cgroup must be empty) and cpu.stat (the run's CPU time). As
 * the supervisor does, a cgroup is a slot reused by later children once empty, one per child in
 * flight, its directory and cgroup.procs kept open. With "fresh", a new cgroup per spawn
 * instead, entered through cgroup.procs and removed after the wait (the supervisor before its
 * slots).
 *
 * With "capture", the same containment plus the output capture a run of the supervisor has
 * (smartpoll.json(5): stdout, stderr and descriptor 3 are pipes the supervisor reads): three
 * pipes a run, close-on-exec, the parent's read ends non-blocking; the child starts its own
 * session, gets /dev/null, the three write ends as 0-3, nothing else open, the parent-death
 * signal and an empty signal mask; the parent holds every signal blocked across the clone, takes
 * the child's pidfd from clone (CLONE_PIDFD), watches the pidfd and the read ends with epoll,
 * reads what the child writes as it comes, and at the pidfd's readiness reaps the child with
 * waitid (its CPU time), closes its copies of the write ends, reads each pipe to its end, reads
 * the cgroup's files and closes the rest. That is the work SPEC 3's contract gives a run, in
 * plain C, and what our spawn rate is measured against to show what that contract costs. A
 * CGROUP_DIR of "-" (capture only) leaves the cgroups out, and with them all containment: what
 * the subreaper mode's rows are measured against, which does not walk /proc at a run's end as
 * the supervisor does in that mode. */
#include "common.h"
#include "../../Sources/CSmartPollPosix/smartpoll_clone3.h"
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

extern char **environ;

struct child_args {
    char **argv;
    int procs;
};

static int child_main(void *raw) {
    struct child_args *args = raw;
    if (args->procs >= 0 && write(args->procs, "0", 1) != 1) _exit(126);
    execve(args->argv[0], args->argv, environ);
    _exit(127);
}

/* A child born in the cgroup of CGROUP_DIR_FD, as the supervisor's runs are (clone3 with
 * CLONE_INTO_CGROUP, CLONE_VM and CLONE_VFORK, on STACK, through the supervisor's own clone3
 * trampoline): its pid, or -1 (errno) where that cannot be done (not x86-64, or the kernel
 * refuses), and then the caller moves it in through cgroup.procs. With PIDFD, CLONE_PIDFD too. */
static pid_t clone_into(int (*fn)(void *), void *arg, char *stack, size_t size, int cgroup_dir_fd, int *pidfd) {
#ifdef SP_HAVE_CLONE3
    struct sp_clone_args ca = {
        .flags = CLONE_VFORK | CLONE_VM | CLONE_INTO_CGROUP | (pidfd ? CLONE_PIDFD : 0),
        .pidfd = (uint64_t)(uintptr_t)pidfd,
        .exit_signal = SIGCHLD,
        .stack = (uint64_t)(uintptr_t)stack,
        .stack_size = size,
        .cgroup = (uint64_t)cgroup_dir_fd,
    };
    long result = sp_clone3(&ca, fn, arg);
    if (result >= 0) return (pid_t)result;
    errno = (int)-result;
    return -1;
#else
    (void)fn; (void)arg; (void)stack; (void)size; (void)cgroup_dir_fd; (void)pidfd;
    errno = ENOSYS;
    return -1;
#endif
}

/* "capture": a run's pipes (stdout, stderr, descriptor 3), its pidfd, and what the child needs. */
struct capture_run {
    int out[3][2];
    int pidfd;
    int open_pipes;
};

struct capture_child_args {
    char **argv;
    int procs, devnull;
    int fds[3];
    pid_t parent;
};

static int capture_child_main(void *raw) {
    struct capture_child_args *a = raw;
    if (syscall(SYS_setsid) < 0) _exit(126);
    if (syscall(SYS_dup3, a->devnull, 0, 0) < 0) _exit(126);
    for (int i = 0; i < 3; i++) {
        if (syscall(SYS_dup3, a->fds[i], i + 1, 0) < 0) _exit(126);
    }
    if (a->procs < 0) {
        syscall(SYS_close_range, 4U, ~0U, 0U);
    } else {
        int procs = (int)syscall(SYS_fcntl, a->procs, F_DUPFD_CLOEXEC, 4);
        if (procs < 0) _exit(126);
        syscall(SYS_close_range, 4U, (unsigned)procs - 1U, 0U);
        syscall(SYS_close_range, (unsigned)procs + 1U, ~0U, 0U);
        if (syscall(SYS_write, procs, "0", 1) != 1) _exit(126);
        syscall(SYS_close, procs);
    }
    if (syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) _exit(126);
    if (syscall(SYS_getppid) != a->parent) _exit(127);
    sigset_t empty;
    sigemptyset(&empty);
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &empty, NULL, 8);
    syscall(SYS_execve, a->argv[0], a->argv, environ);
    _exit(127);
}

/* Reads what is there; 1 at the pipe's end, 0 when it would block. */
static int capture_drain(int fd) {
    char buffer[16384];
    for (;;) {
        ssize_t n = read(fd, buffer, sizeof buffer);
        if (n > 0) continue;
        if (n == 0) return 1;
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return 0;
        die("read");
    }
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

/* The "capture" mode's loop (see the top of this file); returns the seconds it took. */
static double capture_loop(int count, int inflight, char **args, const char *cgroups) {
    struct capture_run *runs = calloc((size_t)inflight, sizeof *runs);
    char (*slots)[4096] = calloc((size_t)inflight, sizeof *slots);
    int *procs = calloc((size_t)inflight, sizeof *procs), *dirs = calloc((size_t)inflight, sizeof *dirs);
    char *stack = malloc(STACK_SIZE);
    int epoll = epoll_create1(EPOLL_CLOEXEC), devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (!runs || !slots || !procs || !dirs || !stack || epoll < 0 || devnull < 0) die("capture setup");
    char path[4096], text[1024];
    for (int slot = 0; slot < inflight; slot++) {
        runs[slot].pidfd = -1;
        procs[slot] = -1;
        if (!cgroups) continue;
        snprintf(slots[slot], sizeof slots[slot], "%s/slot-%d", cgroups, slot);
        if (mkdir(slots[slot], 0755) != 0) die("mkdir");
        snprintf(path, sizeof path, "%s/cgroup.procs", slots[slot]);
        procs[slot] = open(path, O_WRONLY | O_CLOEXEC);
        dirs[slot] = open(slots[slot], O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (procs[slot] < 0 || dirs[slot] < 0) die("open cgroup.procs");
    }
    int started = 0, done = 0, running = 0;
    pid_t parent = getpid();
    int64_t t0 = now_ns();
    while (done < count) {
        while (running < inflight && started < count) {
            int slot = 0;
            while (runs[slot].pidfd >= 0) slot++;
            struct capture_run *run = &runs[slot];
            struct capture_child_args child = {args, procs[slot], devnull, {0}, parent};
            for (int i = 0; i < 3; i++) {
                if (pipe2(run->out[i], O_CLOEXEC) != 0) die("pipe2");
                if (fcntl(run->out[i][0], F_SETFL, O_NONBLOCK) != 0) die("fcntl");
                child.fds[i] = run->out[i][1];
            }
            sigset_t all, old;
            sigfillset(&all);
            sigprocmask(SIG_BLOCK, &all, &old);
            int pidfd = -1;
            pid_t pid = -1;
            if (cgroups) {
                child.procs = -1;
                pid = clone_into(capture_child_main, &child, stack, STACK_SIZE, dirs[slot], &pidfd);
                if (pid < 0) child.procs = procs[slot];
            }
            if (pid < 0) {
                pid = clone(capture_child_main, stack + STACK_SIZE, CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD,
                            &child, &pidfd);
            }
            sigprocmask(SIG_SETMASK, &old, NULL);
            if (pid < 0 || pidfd < 0) die("clone");
            run->pidfd = pidfd;
            run->open_pipes = 3;
            for (int i = 0; i < 4; i++) {
                struct epoll_event event = {.events = EPOLLIN, .data.u64 = (uint64_t)slot * 4 + (uint64_t)i};
                if (epoll_ctl(epoll, EPOLL_CTL_ADD, i < 3 ? run->out[i][0] : pidfd, &event) != 0) die("epoll_ctl");
            }
            started++; running++;
        }
        struct epoll_event events[64];
        int n = epoll_wait(epoll, events, 64, -1);
        if (n < 0) { if (errno == EINTR) continue; die("epoll_wait"); }
        for (int e = 0; e < n; e++) {
            int slot = (int)(events[e].data.u64 / 4), kind = (int)(events[e].data.u64 % 4);
            struct capture_run *run = &runs[slot];
            if (run->pidfd < 0) continue; /* ended earlier in this batch */
            if (kind < 3) {
                /* The supervisor holds the write ends until the reap, so this is output only. */
                capture_drain(run->out[kind][0]);
                continue;
            }
            siginfo_t info;
            struct rusage usage;
            if (syscall(SYS_waitid, P_PIDFD, run->pidfd, &info, WEXITED, &usage) != 0) die("waitid");
            for (int i = 0; i < 3; i++) {
                close(run->out[i][1]);
                if (!capture_drain(run->out[i][0])) { fprintf(stderr, "spawn_loop: a pipe outlived its run\n"); exit(1); }
                close(run->out[i][0]);
            }
            if (cgroups) {
                if (read_small(slots[slot], "cgroup.events", text, sizeof text) < 0) die("read cgroup.events");
                if (!strstr(text, "populated 0")) { fprintf(stderr, "spawn_loop: %s not empty\n", slots[slot]); exit(1); }
                if (read_small(slots[slot], "cpu.stat", text, sizeof text) < 0) die("read cpu.stat");
            }
            close(run->pidfd);
            run->pidfd = -1;
            running--; done++;
        }
    }
    double s = (now_ns() - t0) / 1e9;
    if (cgroups) {
        for (int slot = 0; slot < inflight; slot++) { close(procs[slot]); close(dirs[slot]); rmdir(slots[slot]); }
        rmdir(cgroups);
    }
    return s;
}

int main(int argc, char **argv) {
    if (argc < 4 || argc > 6 || (argc == 6 && strcmp(argv[5], "fresh") != 0 && strcmp(argv[5], "capture") != 0)) {
        fprintf(stderr, "usage: spawn_loop COUNT INFLIGHT PATH [CGROUP_DIR [fresh|capture]]\n");
        return 2;
    }
    int count = atoi(argv[1]), inflight = atoi(argv[2]);
    const char *cgroups = argc >= 5 && strcmp(argv[4], "-") != 0 ? argv[4] : NULL;
    int fresh = argc == 6 && strcmp(argv[5], "fresh") == 0;
    if (argc >= 5 && !cgroups && !(argc == 6 && !fresh)) {
        fprintf(stderr, "spawn_loop: a CGROUP_DIR of - is for capture only\n");
        return 2;
    }
    char *args[] = {argv[3], NULL};
    if (count < 1 || inflight < 1) return 2;
    if (cgroups && mkdir(cgroups, 0755) != 0 && errno != EEXIST) die("mkdir CGROUP_DIR");
    if (argc == 6 && !fresh) {
        double s = capture_loop(count, inflight, args, cgroups);
        printf("{\"spawns\":%d,\"inflight\":%d,\"seconds\":%.4f,\"per_second\":%.1f}\n", count, inflight, s, count / s);
        return 0;
    }
    /* Per child in flight: its pid, and its slot's directory and open cgroup.procs. */
    pid_t *pids = calloc((size_t)inflight, sizeof *pids);
    char (*slots)[4096] = calloc((size_t)inflight, sizeof *slots);
    int *procs = calloc((size_t)inflight, sizeof *procs), *dirs = calloc((size_t)inflight, sizeof *dirs);
    char *stack = malloc(STACK_SIZE);
    if (!pids || !slots || !procs || !dirs || !stack) die("malloc");
    for (int slot = 0; slot < inflight; slot++) procs[slot] = dirs[slot] = -1;
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
                    dirs[slot] = fresh ? -1 : open(slots[slot], O_PATH | O_DIRECTORY | O_CLOEXEC);
                }
                struct child_args child = {args, -1};
                pid = dirs[slot] >= 0 ? clone_into(child_main, &child, stack, STACK_SIZE, dirs[slot], NULL) : -1;
                if (pid < 0) {
                    child.procs = procs[slot];
                    pid = clone(child_main, stack + STACK_SIZE, CLONE_VM | CLONE_VFORK | SIGCHLD, &child);
                }
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
            if (dirs[slot] >= 0) close(dirs[slot]);
            if (procs[slot] >= 0) { close(procs[slot]); rmdir(slots[slot]); }
        }
        rmdir(cgroups);
    }
    printf("{\"spawns\":%d,\"inflight\":%d,\"seconds\":%.4f,\"per_second\":%.1f}\n", count, inflight, s, count / s);
    return 0;
}
