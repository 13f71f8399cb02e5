#define _GNU_SOURCE
#include "smartpoll_posix.h"
#include "smartpoll_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
// glibc has P_PIDFD in idtype_t from 2.36 on; the kernel value is stable.
#define SP_P_PIDFD ((idtype_t)3)

// glibc's clone under its own name: the same function, but one that ThreadSanitizer does not
// interpose. Its clone interceptor treats every clone as a fork and, in a child that shares
// our memory (CLONE_VM), corrupts its own state: a CHECK failure in ForkAfter under
// `swift test --sanitize=thread`.
#if defined(__GLIBC__)
extern int __clone(int (*fn)(void *), void *stack, int flags, void *arg, ...);
#define sp_clone __clone
#else
#define sp_clone clone
#endif

// 0 while clone3 with CLONE_INTO_CGROUP may still be tried (sp_spawn_options.cgroup_fd); once
// it was turned off, why: the errno clone3 refused it with, or -1 for a child killed as it was
// born. One variable, so that a reader never sees it off without its reason.
static int sp_births_refusal = 0;

static void sp_turn_births_off(int reason) { __atomic_store_n(&sp_births_refusal, reason, __ATOMIC_RELAXED); }

int sp_spawn_births_refusal(void) { return __atomic_load_n(&sp_births_refusal, __ATOMIC_RELAXED); }

// The kernel's sigset_t is _NSIG bits; glibc's is larger.
#define SP_KERNEL_SIGSET_SIZE (_NSIG / 8)
// Upper bound of the descriptor loop when close_range is missing (Linux < 5.9).
#define SP_CLOSE_LOOP_LIMIT (1 << 20)
#define SP_CHILD_STACK_SIZE (128 * 1024)

// Everything the child needs, prepared by the parent. The child shares the
// parent's memory (CLONE_VM) and the parent is suspended until the child execs
// or exits (CLONE_VFORK), so the child reads this directly and reports a
// failure by writing `err`, which the parent reads once it resumes: the same
// channel glibc's posix_spawn uses, with no pipe to create or drain.
struct sp_child_args {
    const char *path;
    char *const *argv;
    char *const *envp;
    const char *cwd;
    int fds[4];
    int cgroup_procs_fd;
    int set_credentials;
    uid_t uid;
    gid_t gid;
    int set_nice;
    int nice;
    unsigned int set_limits;
    unsigned long long limits[4];
    pid_t parent;
    uint64_t reset_signals;
    // Non-zero: the soft RLIMIT_NOFILE the supervisor was started with, which the child takes
    // back (sp_raise_nofile_limit), unless it sets its own limit.
    unsigned long long nofile_soft;
    unsigned long long nofile_hard;
    volatile int err;
    // Set by the child first thing: a child that never ran (killed as it was born) leaves it 0.
    volatile int started;
    volatile sp_spawn_step failed_step;
};

// The resources of sp_spawn_options.set_limits, bit i for limits[i], with the step that names it.
static const struct {
    int resource;
    sp_spawn_step step;
} sp_limit_resources[4] = {
    {RLIMIT_NOFILE, SP_SPAWN_STEP_LIMIT_NOFILE},
    {RLIMIT_AS, SP_SPAWN_STEP_LIMIT_AS},
    {RLIMIT_CPU, SP_SPAWN_STEP_LIMIT_CPU},
    {RLIMIT_CORE, SP_SPAWN_STEP_LIMIT_CORE},
};

// This process's id, asked once (and again in a forked child): a spawn passes it to
// the child, which checks that its parent has not died before PR_SET_PDEATHSIG.
static pid_t sp_pid;
static void sp_forget_pid(void) { sp_pid = 0; }
static pthread_once_t sp_pid_once = PTHREAD_ONCE_INIT;
static void sp_watch_forks(void) { pthread_atfork(NULL, NULL, sp_forget_pid); }

static pid_t sp_own_pid(void) {
    pthread_once(&sp_pid_once, sp_watch_forks);
    pid_t pid = __atomic_load_n(&sp_pid, __ATOMIC_RELAXED);
    if (pid == 0) {
        pid = getpid();
        __atomic_store_n(&sp_pid, pid, __ATOMIC_RELAXED);
    }
    return pid;
}

// The child runs on the parent's memory, with the parent's thread-local storage, while the
// parent is suspended: nothing in it may be instrumented by a sanitizer (whose per-thread
// state is the parent's) and no libc function a sanitizer intercepts may be called (their
// bookkeeping, such as ThreadSanitizer's table of descriptors, is the parent's too). So the
// child makes raw system calls only, through syscall(2), which no sanitizer intercepts.
#if defined(__has_attribute)
#if __has_attribute(disable_sanitizer_instrumentation)
#define SP_CHILD_CODE __attribute__((disable_sanitizer_instrumentation))
#endif
#endif
#ifndef SP_CHILD_CODE
#define SP_CHILD_CODE __attribute__((no_sanitize("address", "thread", "undefined")))
#endif

// The clone3 trampoline (sp_clone3, SP_HAVE_CLONE3), uninstrumented: the child runs part of it.
#define SP_CLONE3_ATTRIBUTES SP_CHILD_CODE
#include "smartpoll_clone3.h"

// Reports the errno of the failed step to the parent and exits.
SP_CHILD_CODE __attribute__((noreturn)) static void sp_child_fail(struct sp_child_args *a) {
    a->err = errno != 0 ? errno : ECHILD;
    for (;;) syscall(SYS_exit_group, 127);
}

// Closes the descriptors from `low` to `high` (inclusive) in the child: close_range, or on Linux
// before 5.9 a loop up to the descriptor limit.
SP_CHILD_CODE static void sp_child_close_from(unsigned int low, unsigned int high) {
    if (low > high) return;
    if (syscall(SYS_close_range, low, high, 0U) == 0) return;
    struct rlimit rl;
    long limit = SP_CLOSE_LOOP_LIMIT;
    if (syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < SP_CLOSE_LOOP_LIMIT) {
        limit = (long)rl.rlim_cur;
    }
    for (long fd = low; fd < limit && fd <= (long)high; fd++) (void)syscall(SYS_close, fd);
}

// Runs in the child between clone and execve: async-signal-safe raw system calls only, no
// allocation, no locks, no stdio.
SP_CHILD_CODE static int sp_child_main(void *p) {
    struct sp_child_args *a = p;
    a->started = 1;

    if (syscall(SYS_setsid) < 0) sp_child_fail(a);

    // The descriptors first, so that the child holds none of the parent's (its listening
    // socket above all) for longer than it must: the cgroup move below can take a while, and
    // a parent killed meanwhile must not leave its socket open in a child about to exit.
    int cgroup_fd = a->cgroup_procs_fd;
    if (cgroup_fd >= 0 && cgroup_fd <= 3) {
        cgroup_fd = (int)syscall(SYS_fcntl, cgroup_fd, F_DUPFD_CLOEXEC, 4);
        if (cgroup_fd < 0) sp_child_fail(a);
    }
    // A source already numbered 0-3 could be overwritten by an earlier dup: move
    // all of those above 3 first.
    int src[4];
    for (int i = 0; i < 4; i++) {
        src[i] = a->fds[i];
        if (src[i] >= 0 && src[i] <= 3) {
            src[i] = (int)syscall(SYS_fcntl, src[i], F_DUPFD, 4);
            if (src[i] < 0) sp_child_fail(a);
        }
    }
    for (int i = 0; i < 4; i++) {
        if (src[i] >= 0) {
            // dup3 to another number also clears FD_CLOEXEC on the target (the sources are
            // above 3 by now, so never the same number, which dup3 refuses).
            if (syscall(SYS_dup3, src[i], i, 0) < 0) sp_child_fail(a);
        } else {
            (void)syscall(SYS_close, i);
        }
    }
    if (cgroup_fd >= 0) {
        sp_child_close_from(4U, (unsigned int)cgroup_fd - 1U);
        sp_child_close_from((unsigned int)cgroup_fd + 1U, ~0U);
    } else {
        sp_child_close_from(4U, ~0U);
    }

    // Into the run's cgroup before the program starts, so that every process it starts is
    // born there; still with the supervisor's credentials, which may write the file. Writing
    // "0" moves the writer itself.
    if (cgroup_fd >= 0) {
        if (syscall(SYS_write, cgroup_fd, "0", 1) != 1) sp_child_fail(a);
        (void)syscall(SYS_close, cgroup_fd);
    }

    // The nice value and the resource limits before the credentials change: a lower nice
    // value than the supervisor's needs CAP_SYS_NICE and a raised hard limit CAP_SYS_RESOURCE,
    // which a root supervisor has and the task's user may not. A task without them makes no
    // call here. The kernel's struct rlimit64 is two 64-bit values on every architecture.
    if (a->set_nice && syscall(SYS_setpriority, PRIO_PROCESS, 0, a->nice) != 0) {
        a->failed_step = SP_SPAWN_STEP_NICE;
        sp_child_fail(a);
    }
    if (a->nofile_soft != 0) {
        // Lowering a soft limit needs no privilege; the hard limit stays the supervisor's. Should
        // someone have lowered the supervisor's hard limit since (prlimit --pid), the call fails
        // and the child takes the soft limit down to what is left of it.
        unsigned long long limit[2] = {a->nofile_soft, a->nofile_hard};
        if (syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, limit, NULL) != 0 &&
            syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, limit) == 0) {
            if (limit[0] > a->nofile_soft) limit[0] = a->nofile_soft;
            (void)syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, limit, NULL);
        }
    }
    if (a->set_limits != 0) {
        for (int i = 0; i < 4; i++) {
            if (!(a->set_limits & (1U << i))) continue;
            const unsigned long long limit[2] = {a->limits[i], a->limits[i]};
            if (syscall(SYS_prlimit64, 0, sp_limit_resources[i].resource, limit, NULL) != 0) {
                a->failed_step = sp_limit_resources[i].step;
                sp_child_fail(a);
            }
        }
    }

    // A task with `user` or `group` (the supervisor is root): supplementary groups cleared,
    // then the group, then the user, so that each step still has the privilege it needs. Raw
    // calls, because glibc's setuid and setgid broadcast the change to every thread of the
    // process, and the threads they would find in the memory we share are the parent's.
    if (a->set_credentials) {
        if (syscall(SYS_setgroups, 0, NULL) != 0) sp_child_fail(a);
        if (syscall(SYS_setresgid, a->gid, a->gid, a->gid) != 0) sp_child_fail(a);
        if (syscall(SYS_setresuid, a->uid, a->uid, a->uid) != 0) sp_child_fail(a);
    }
    // After the credentials: changing them clears the parent-death signal.
    if (syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) sp_child_fail(a);
    // The parent may have died before PR_SET_PDEATHSIG took effect: then the
    // signal never comes, so do not start an orphan.
    if (syscall(SYS_getppid) != a->parent) syscall(SYS_exit_group, 127);

    // Back to SIG_DFL for every signal the parent does not leave at SIG_DFL (an
    // ignored one would stay ignored after exec; a handled one could run here,
    // on the parent's memory, in the moment between unblocking and exec). The
    // raw syscall, because glibc's sigaction refuses the real-time signals it
    // reserves. All zeros is SIG_DFL, no flags and an empty mask in every
    // architecture's layout of the kernel's struct sigaction.
    static const unsigned long dfl[4] = {0, 0, 0, 0};
    for (int sig = 1; sig < _NSIG && sig <= 64; sig++) {
        if (a->reset_signals & (1ULL << (sig - 1))) {
            (void)syscall(SYS_rt_sigaction, sig, dfl, NULL, SP_KERNEL_SIGSET_SIZE);
        }
    }

    if (a->cwd != NULL && syscall(SYS_chdir, a->cwd) < 0) {
        a->failed_step = SP_SPAWN_STEP_CWD;
        sp_child_fail(a);
    }

    // An empty mask: all zeros, in the kernel's size.
    static const unsigned long empty[(SP_KERNEL_SIGSET_SIZE + sizeof(unsigned long) - 1) / sizeof(unsigned long)];
    (void)syscall(SYS_rt_sigprocmask, SIG_SETMASK, empty, NULL, SP_KERNEL_SIGSET_SIZE);

    syscall(SYS_execve, a->path, a->argv, a->envp);
    sp_child_fail(a);
}

static const char *sp_env_lookup(char *const *envp, const char *name) {
    size_t len = strlen(name);
    for (char *const *e = envp; *e != NULL; e++) {
        if (strncmp(*e, name, len) == 0 && (*e)[len] == '=') return *e + len + 1;
    }
    return NULL;
}

// Checks `candidate` as execve would see it after chdir(cwd).
// Returns 0 when it is an executable regular file, -1 and errno otherwise.
static int sp_check_executable(const char *candidate, const char *cwd) {
    char *joined = NULL;
    const char *check = candidate;
    if (candidate[0] != '/' && cwd != NULL) {
        size_t n = strlen(cwd) + 1 + strlen(candidate) + 1;
        joined = malloc(n);
        if (joined == NULL) return -1;
        strcpy(joined, cwd);
        strcat(joined, "/");
        strcat(joined, candidate);
        check = joined;
    }
    int err = 0;
    struct stat st;
    if (stat(check, &st) != 0) {
        err = errno;
    } else if (!S_ISREG(st.st_mode)) {
        err = EACCES;
    } else if (faccessat(AT_FDCWD, check, X_OK, AT_EACCESS) != 0) {
        err = errno;
    }
    free(joined);
    return err == 0 ? 0 : sp_fail(err);
}

// Resolves a bare program name through PATH like execvpe, but in the parent,
// so the child only calls execve. Returns 0 and a malloc'ed path, or -1 and errno.
static int sp_resolve_program(const char *file, char *const *envp, const char *cwd, char **resolved) {
    *resolved = NULL;
    if (file[0] == '\0') return sp_fail(ENOENT);
    if (strchr(file, '/') != NULL) {
        *resolved = strdup(file);
        return *resolved != NULL ? 0 : -1;
    }
    const char *path = sp_env_lookup(envp, "PATH");
    if (path == NULL) path = "/bin:/usr/bin";

    size_t file_len = strlen(file);
    int seen_eacces = 0;
    const char *p = path;
    for (;;) {
        const char *end = strchrnul(p, ':');
        size_t dir_len = (size_t)(end - p);
        // An empty element is the working directory, as for execvpe.
        const char *dir = dir_len == 0 ? "." : p;
        if (dir_len == 0) dir_len = 1;
        char *candidate = malloc(dir_len + 1 + file_len + 1);
        if (candidate == NULL) return -1;
        memcpy(candidate, dir, dir_len);
        candidate[dir_len] = '/';
        memcpy(candidate + dir_len + 1, file, file_len + 1);

        if (sp_check_executable(candidate, cwd) == 0) {
            *resolved = candidate;
            return 0;
        }
        int err = errno;
        free(candidate);
        if (err == EACCES) seen_eacces = 1;
        else if (err == ENOMEM) return sp_fail(ENOMEM);
        if (*end == '\0') break;
        p = end + 1;
    }
    return sp_fail(seen_eacces ? EACCES : ENOENT);
}


static int sp_wait_common(idtype_t type, id_t id, sp_exit_status *status, int nohang) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    memset(status, 0, sizeof *status);
    // The raw call, for the CPU time of the child (and of the children it waited for), which
    // glibc's waitid does not return.
    struct rusage usage;
    memset(&usage, 0, sizeof usage);
    long r;
    do {
        r = syscall(SYS_waitid, type, id, &info, WEXITED | (nohang ? WNOHANG : 0), &usage);
    } while (r < 0 && errno == EINTR);
    if (r < 0) return -1;
    // With WNOHANG and no change, waitid leaves si_pid zero.
    if (info.si_pid == 0) return 0;
    status->ended = 1;
    status->cpu_usec = (long long)usage.ru_utime.tv_sec * 1000000 + usage.ru_utime.tv_usec +
                       (long long)usage.ru_stime.tv_sec * 1000000 + usage.ru_stime.tv_usec;
    if (info.si_code == CLD_EXITED) {
        status->exited = 1;
        status->code = info.si_status;
    } else {
        status->signal = info.si_status;
    }
    return 0;
}

// The signals the child must set back to SIG_DFL: bit sig-1 for each signal
// whose disposition here is not SIG_DFL, plus those glibc reserves (it does not
// let us read them). Read at the first spawn and again after
// sp_spawn_dispositions_changed(), instead of 64 system calls in every child
// while the parent waits (a tenth of a run's cost in profiles).
static uint64_t sp_reset_signals;
static int sp_reset_signals_known;

void sp_spawn_dispositions_changed(void) {
    __atomic_store_n(&sp_reset_signals_known, 0, __ATOMIC_RELEASE);
}

static uint64_t sp_signals_to_reset(void) {
    if (__atomic_load_n(&sp_reset_signals_known, __ATOMIC_ACQUIRE)) {
        return __atomic_load_n(&sp_reset_signals, __ATOMIC_RELAXED);
    }
    uint64_t set = 0;
    for (int sig = 1; sig < _NSIG && sig <= 64; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        struct sigaction old;
        if (sigaction(sig, NULL, &old) != 0 || old.sa_handler != SIG_DFL) set |= 1ULL << (sig - 1);
    }
    __atomic_store_n(&sp_reset_signals, set, __ATOMIC_RELAXED);
    __atomic_store_n(&sp_reset_signals_known, 1, __ATOMIC_RELEASE);
    return set;
}

// /dev/null, opened once for the whole process (close-on-exec; dup2 gives the child its own).
static int sp_devnull = -1;
static pthread_once_t sp_devnull_once = PTHREAD_ONCE_INIT;
static void sp_open_devnull(void) { sp_devnull = open("/dev/null", O_RDWR | O_CLOEXEC); }

// The child's stack, one per spawning thread, mapped at its first spawn and kept: a map and an
// unmap for every run showed up in profiles (the unmap flushes the TLB). CLONE_VFORK keeps the
// parent thread suspended while the child uses it, so one stack per thread is enough.
static __thread void *sp_child_stack = NULL;

// The soft RLIMIT_NOFILE before sp_raise_nofile_limit raised it, or 0, and the hard limit.
static unsigned long long sp_nofile_soft = 0;
static unsigned long long sp_nofile_hard = 0;

int sp_raise_nofile_limit(unsigned long long *before, unsigned long long *after) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return -1;
    *before = limit.rlim_cur;
    *after = limit.rlim_cur;
    // The kernel refuses a hard limit of descriptors above fs.nr_open, so the hard limit is a
    // number here, never RLIM_INFINITY.
    if (limit.rlim_max <= limit.rlim_cur) return 0;
    // Without close_range (Linux before 5.9, or a seccomp filter that refuses it) a child
    // closes its inherited descriptors one by one up to the soft limit, while the loop waits
    // for its vfork: a raised limit would make that a million calls a spawn. A range past
    // every possible descriptor closes nothing and tells whether the call exists.
    if (syscall(SYS_close_range, ~0U, ~0U, 0U) != 0) return 0;
    struct rlimit raised = {limit.rlim_max, limit.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &raised) != 0) return -1;
    __atomic_store_n(&sp_nofile_hard, (unsigned long long)limit.rlim_max, __ATOMIC_RELAXED);
    __atomic_store_n(&sp_nofile_soft, (unsigned long long)limit.rlim_cur, __ATOMIC_RELAXED);
    *after = limit.rlim_max;
    return 0;
}

int sp_spawn(sp_spawn_options *options, pid_t *pid_out, int *pidfd_out) {
    *pid_out = -1;
    *pidfd_out = -1;
    // The header says non-null; a C caller may not have listened.
    if (options == NULL || options->file == NULL || options->argv == NULL || options->envp == NULL) {
        return sp_fail(EINVAL);
    }
    options->failed_step = SP_SPAWN_STEP_OTHER;
    if (options->set_nice && (options->nice < -20 || options->nice > 19)) return sp_fail(EINVAL);

    char *path = NULL;
    if (sp_resolve_program(options->file, options->envp, options->cwd, &path) != 0) return -1;

    int devnull = -1;
    if (options->stdin_fd < 0 || options->stdout_fd < 0 || options->stderr_fd < 0) {
        pthread_once(&sp_devnull_once, sp_open_devnull);
        devnull = sp_devnull;
        if (devnull < 0) {
            free(path);
            return sp_fail(ENOENT);
        }
    }

    struct sp_child_args args = {
        .path = path,
        .argv = options->argv,
        .envp = options->envp,
        .cwd = options->cwd,
        .fds = {
            options->stdin_fd >= 0 ? options->stdin_fd : devnull,
            options->stdout_fd >= 0 ? options->stdout_fd : devnull,
            options->stderr_fd >= 0 ? options->stderr_fd : devnull,
            options->directive_fd,
        },
        .cgroup_procs_fd = options->cgroup_procs_fd,
        .set_credentials = options->set_credentials != 0,
        .uid = options->uid,
        .gid = options->gid,
        .set_nice = options->set_nice != 0,
        .nice = options->nice,
        .set_limits = options->set_limits & (SP_LIMIT_NOFILE | SP_LIMIT_AS | SP_LIMIT_CPU | SP_LIMIT_CORE),
        .limits = {options->limit_nofile, options->limit_as, options->limit_cpu, options->limit_core},
        .parent = sp_own_pid(),
        .reset_signals = sp_signals_to_reset(),
        .nofile_soft = (options->set_limits & SP_LIMIT_NOFILE) ? 0 : __atomic_load_n(&sp_nofile_soft, __ATOMIC_RELAXED),
        .nofile_hard = __atomic_load_n(&sp_nofile_hard, __ATOMIC_RELAXED),
        .err = 0,
        .started = 0,
        .failed_step = SP_SPAWN_STEP_OTHER,
    };

    if (sp_child_stack == NULL) {
        void *mapped = mmap(NULL, SP_CHILD_STACK_SIZE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (mapped == MAP_FAILED) {
            int err = errno;
            free(path);
            return sp_fail(err);
        }
        sp_child_stack = mapped;
    }
    void *stack = sp_child_stack;

    // No signal handler may run in the child, which shares our memory: block
    // every signal, glibc's reserved ones included (hence the raw syscall and
    // a fully set mask rather than sigfillset).
    sigset_t all, old;
    memset(&all, 0xff, sizeof all);
    (void)syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all, &old, SP_KERNEL_SIGSET_SIZE);

    // CLONE_PIDFD hands us the pidfd atomically, before anyone could reap the
    // child and recycle its pid. Kernels before 5.2 ignore the flag.
    pid_t pidfd = -1;
    pid_t pid = -1;
    int clone_errno = 0, born_in_cgroup = 0;
#ifdef SP_HAVE_CLONE3
    if (options->cgroup_fd >= 0 && args.cgroup_procs_fd >= 0 &&
        sp_spawn_births_refusal() == 0) {
        int kernel_pidfd = -1;
        struct sp_clone_args clone_args = {
            .flags = CLONE_VM | CLONE_VFORK | CLONE_PIDFD | CLONE_INTO_CGROUP,
            .pidfd = (uint64_t)(uintptr_t)&kernel_pidfd,
            .exit_signal = SIGCHLD,
            .stack = (uint64_t)(uintptr_t)stack,
            .stack_size = SP_CHILD_STACK_SIZE,
            .cgroup = (uint64_t)options->cgroup_fd,
        };
        args.cgroup_procs_fd = -1;
        long result = sp_clone3(&clone_args, sp_child_main, &args);
        if (result > 0 && !args.started && args.err == 0) {
            // The child died before its first instruction: Linux 6.14 on compares the
            // cgroup.kill count of the cgroup a child is born in with that of its parent's
            // cgroup, and kills the child when they differ (a cgroup that was killed once, or
            // a parent in one). The ordinary way from now on; this child is reaped.
            int status;
            while (waitpid((pid_t)result, &status, 0) < 0 && errno == EINTR) {}
            if (kernel_pidfd >= 0) (void)close(kernel_pidfd);
            args.cgroup_procs_fd = options->cgroup_procs_fd;
            sp_turn_births_off(-1);
        } else if (result > 0) {
            pid = (pid_t)result;
            pidfd = kernel_pidfd;
            born_in_cgroup = 1;
        } else {
            args.cgroup_procs_fd = options->cgroup_procs_fd;
            int err = (int)-result;
            // No clone3 (Linux before 5.3, a seccomp filter: ENOSYS, EPERM), no
            // CLONE_INTO_CGROUP (before 5.7: EINVAL, E2BIG), a cgroup it cannot take (EBADF,
            // EOPNOTSUPP, EACCES): the write to cgroup.procs from now on, which says what is
            // wrong where something is. Anything else (EAGAIN, ENOMEM, EBUSY...) is left to the
            // write for this spawn only.
            if (err == ENOSYS || err == EPERM || err == EINVAL || err == E2BIG || err == EBADF ||
                err == EOPNOTSUPP || err == EACCES) {
                sp_turn_births_off(err);
            }
        }
    }
#endif
    if (!born_in_cgroup) {
        pid = sp_clone(sp_child_main, (char *)stack + SP_CHILD_STACK_SIZE,
                       CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &args, &pidfd);
        clone_errno = errno;
    }

    (void)syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, SP_KERNEL_SIGSET_SIZE);
    free(path);

    if (pid < 0) return sp_fail(clone_errno);

    if (args.err != 0) {
        // The child has exited (or exec'd and then exited), so this returns at once; ECHILD
        // would mean someone else reaped it, which leaves nothing behind either.
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        // A pidfd is released even when close reports an error.
        if (pidfd >= 0) (void)close(pidfd);
        options->failed_step = args.failed_step;
        return sp_fail(args.err);
    }

    *pid_out = pid;
    if (pidfd < 0) pidfd = sp_pidfd_open(pid);
    *pidfd_out = pidfd;
    return 0;
}

int sp_open_path_directory(const char *path) { return open(path, O_PATH | O_DIRECTORY | O_CLOEXEC); }

int sp_pipe2_cloexec(int fds[2], int nonblock) {
    return pipe2(fds, O_CLOEXEC | (nonblock ? O_NONBLOCK : 0));
}

int sp_pipe_nonblocking_read_end(int fds[2]) {
    if (pipe2(fds, O_CLOEXEC) != 0) return -1;
    // A new pipe's read end has no status flag but its access mode, which F_SETFL
    // ignores: one call instead of a F_GETFL and a F_SETFL.
    if (fcntl(fds[0], F_SETFL, O_NONBLOCK) != 0) {
        int err = errno;
        // Both are released even when close reports an error, and they were never used.
        (void)close(fds[0]);
        (void)close(fds[1]);
        return sp_fail(err);
    }
    return 0;
}

int sp_set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -1;
    if (flags & O_NONBLOCK) return 0;
    return fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 ? 0 : -1;
}

int sp_pidfd_open(pid_t pid) {
    // pidfds are always close-on-exec.
    return (int)syscall(SYS_pidfd_open, pid, 0U);
}

int sp_pidfd_send_signal(int pidfd, int sig) {
    return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0U) == 0 ? 0 : -1;
}

int sp_kill_group(pid_t pgid, int sig) {
    // kill(0) and kill(-1) would reach this process's own group, or every process.
    if (pgid <= 0) return sp_fail(EINVAL);
    return kill(-pgid, sig);
}

int sp_wait_pidfd(int pidfd, sp_exit_status *status, int nohang) {
    return sp_wait_common(SP_P_PIDFD, (id_t)pidfd, status, nohang);
}

int sp_wait_pid(pid_t pid, sp_exit_status *status, int nohang) {
    if (pid <= 0) return sp_fail(EINVAL);
    return sp_wait_common(P_PID, (id_t)pid, status, nohang);
}

int sp_set_child_subreaper(void) {
    return prctl(PR_SET_CHILD_SUBREAPER, 1UL, 0UL, 0UL, 0UL) == 0 ? 0 : -1;
}

int sp_reap_if_ended(pid_t pid) {
    if (pid <= 0) return sp_fail(EINVAL);
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int r;
    do {
        r = waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r < 0) return -1;
    return info.si_pid != 0 ? 1 : 0;
}
