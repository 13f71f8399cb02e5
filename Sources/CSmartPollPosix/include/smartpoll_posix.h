#ifndef SMARTPOLL_POSIX_H
#define SMARTPOLL_POSIX_H

// Child processes (a clone shim whose child makes raw system calls only), pipes, pidfds and
// waiting. Errors and EINTR: smartpoll_convention.h.

#include "smartpoll_convention.h"
// Included here as well: a header new to the umbrella folder is not seen by a build whose
// module cache predates it; a change to this one rebuilds the module.
#include "smartpoll_libc.h"

#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

SP_ASSUME_NONNULL_BEGIN

/// The step of the child's set-up that made a spawn fail, for the message: the step that is
/// not the program itself names what could not be done (`cannot enter its working directory`,
/// `cannot set its nice value`, `cannot set its rlimit nofile`).
typedef enum sp_spawn_step {
    /// Starting the program, or a step with no name of its own (a descriptor, the cgroup move).
    SP_SPAWN_STEP_OTHER = 0,
    /// Entering `cwd`.
    SP_SPAWN_STEP_CWD = 1,
    /// setpriority to `nice` (EACCES: a lower value than the supervisor's, without CAP_SYS_NICE).
    SP_SPAWN_STEP_NICE = 2,
    /// prlimit of RLIMIT_NOFILE, RLIMIT_AS, RLIMIT_CPU, RLIMIT_CORE (EPERM: above the hard limit,
    /// without CAP_SYS_RESOURCE; for nofile also above /proc/sys/fs/nr_open).
    SP_SPAWN_STEP_LIMIT_NOFILE = 3,
    SP_SPAWN_STEP_LIMIT_AS = 4,
    SP_SPAWN_STEP_LIMIT_CPU = 5,
    SP_SPAWN_STEP_LIMIT_CORE = 6,
} sp_spawn_step;

/// The bits of `sp_spawn_options.set_limits`: which resource limits the child sets.
enum {
    SP_LIMIT_NOFILE = 1,
    SP_LIMIT_AS = 2,
    SP_LIMIT_CPU = 4,
    SP_LIMIT_CORE = 8,
};

/// A limit value meaning no limit (the kernel's RLIM64_INFINITY).
#define SP_LIMIT_INFINITY (~0ULL)

/// What `sp_spawn` starts. All pointers are borrowed for the duration of the call.
typedef struct sp_spawn_options {
    /// The program: a path (anything with a `/`, relative to `cwd` when given)
    /// or a bare name looked up in the `PATH` entry of `envp`
    /// (`/bin:/usr/bin` when there is none), as execvpe does.
    const char *file;
    /// NULL-terminated argument vector; `argv[0]` is passed as is.
    char *_Nullable const *_Nonnull argv;
    /// NULL-terminated `KEY=VALUE` array: the child's whole environment.
    char *_Nullable const *_Nonnull envp;
    /// Working directory of the child, or NULL to keep the parent's.
    const char *_Nullable cwd;
    /// Descriptors that become 0, 1 and 2 in the child; -1 means /dev/null.
    int stdin_fd;
    int stdout_fd;
    int stderr_fd;
    /// Descriptor that becomes 3 in the child; -1 means 3 is closed.
    int directive_fd;
    /// A descriptor of a cgroup v2 `cgroup.procs` file opened for writing (close-on-exec), or
    /// -1: the child writes "0" to it right after setsid, so that it and everything it starts
    /// belong to that cgroup; the spawn fails with that write's errno if it fails.
    int cgroup_procs_fd;
    /// A descriptor of that cgroup's directory (`O_PATH` is enough), or -1: with it, the child
    /// is born in the cgroup (clone3 with CLONE_INTO_CGROUP, Linux 5.7 and later, x86-64 only)
    /// and makes no write to `cgroup_procs_fd`, which stays the way in where the kernel or a
    /// seccomp filter refuses that or a child born so is killed before it runs (both remembered
    /// for later spawns: sp_spawn_births_refusal) or, for that spawn, when it fails otherwise.
    /// A move through `cgroup.procs` takes a lock whose writer waits for an RCU grace period
    /// when no move came shortly before it, milliseconds during which the parent waits for the
    /// child; a birth in the cgroup does not take it.
    int cgroup_fd;
    /// Non-zero: the child clears its supplementary groups, then takes `gid` as its real,
    /// effective and saved group id and `uid` as its user ids, before anything else it does
    /// (so the working directory and the program are reached as that user). Needs root.
    int set_credentials;
    uid_t uid;
    gid_t gid;
    /// Non-zero: the child sets its nice value to `nice` (-20 to 19; the kernel clamps others),
    /// after the cgroup move and before the credentials change, so that a root supervisor may
    /// give a task running as another user a lower value than its own. Zero: it keeps the
    /// supervisor's, with no system call.
    int set_nice;
    int nice;
    /// SP_LIMIT_* bits: the resource limits the child sets, each as both its soft and its hard
    /// limit (as `ulimit -n N` does), to the value below (SP_LIMIT_INFINITY: no limit): open
    /// descriptors, bytes of address space, seconds of CPU time, bytes of a core dump. Set after
    /// the cgroup move and before the credentials change (raising a hard limit needs
    /// CAP_SYS_RESOURCE, which the new user lacks). 0: the supervisor's limits, no system call.
    unsigned int set_limits;
    unsigned long long limit_nofile;
    unsigned long long limit_as;
    unsigned long long limit_cpu;
    unsigned long long limit_core;
    /// Set by a spawn that fails: the step of the child's set-up that failed (SP_SPAWN_STEP_CWD:
    /// the error names the folder then, not the program); SP_SPAWN_STEP_OTHER otherwise.
    sp_spawn_step failed_step;
} sp_spawn_options;

/// Starts a child in its own session and process group, in the cgroup of `cgroup_procs_fd` when
/// given, with the nice value and resource limits asked for (as `uid` and `gid` when
/// `set_credentials`), with SIGKILL as its parent-death signal, an empty signal mask, default signal dispositions (the
/// parent's are read at its first spawn and after each
/// sp_spawn_dispositions_changed()), descriptors 0-3 as given and nothing else
/// open, then executes `file`.
///
/// Returns 0 and sets `*pid_out` and `*pidfd_out` (a CLOEXEC pidfd, or -1 when
/// the kernel has none: the caller falls back to the pid), or -1 with errno:
/// ENOENT or EACCES when the program cannot be found or run, EINVAL for a `nice` out of
/// range, the errno of the failing step otherwise (in the child too, with `failed_step`
/// naming it). On failure no child is left behind
/// (it is reaped) and both outputs are -1.
///
/// - Important: the parent-death signal fires when the *thread* that called
///   `sp_spawn` exits, not the process: call it from a thread that lives as long
///   as the children should.
int sp_spawn(sp_spawn_options *options, pid_t *pid_out, int *pidfd_out);

/// 0 while children may still be born in their cgroups (sp_spawn_options.cgroup_fd); once that
/// was turned off, the errno clone3 refused it with, or -1 for a child killed as it was born.
int sp_spawn_births_refusal(void);

/// Opens the directory `path` with O_PATH (close-on-exec) for `sp_spawn_options.cgroup_fd`:
/// a descriptor, or -1 with errno.
int sp_open_path_directory(const char *_Nonnull path);

/// Raises the process's soft limit of open descriptors (RLIMIT_NOFILE) to its hard limit, as a
/// program that never uses select(2) may; children started by sp_spawn afterwards take the old
/// soft limit back (unless they set their own), since many programs still use select(2). Not
/// where close_range(2) is missing: a child would close its descriptors one by one up to the
/// limit. `before` and `after` get the soft limit before and after. Returns 0, or -1 with
/// errno set (the limit is unchanged then).
int sp_raise_nofile_limit(unsigned long long *_Nonnull before, unsigned long long *_Nonnull after);

/// Tells sp_spawn that this process changed a signal's disposition (handler,
/// SIG_IGN or SIG_DFL): it reads them again at the next spawn, to know which
/// ones a child must set back to SIG_DFL.
void sp_spawn_dispositions_changed(void);

/// `pipe2` with O_CLOEXEC, plus O_NONBLOCK on both ends when `nonblock` is
/// non-zero. Returns 0, or -1.
/// - Important: O_NONBLOCK belongs to the open file, so a child given one end
///   sees it too; for a child's pipe use `sp_set_nonblocking` on the parent's end.
int sp_pipe2_cloexec(int fds[_Nonnull 2], int nonblock);

/// pipe2(O_CLOEXEC) with the read end made non-blocking. Returns 0, or -1 (no
/// descriptor is left open then).
int sp_pipe_nonblocking_read_end(int fds[_Nonnull 2]);

/// Sets O_NONBLOCK on `fd`. Returns 0, or -1.
int sp_set_nonblocking(int fd);

/// A CLOEXEC pidfd for `pid`, or -1 (ENOSYS before Linux 5.3).
int sp_pidfd_open(pid_t pid);

/// Sends `sig` to the process behind `pidfd`. Returns 0, or -1 (ESRCH when it
/// has exited).
int sp_pidfd_send_signal(int pidfd, int sig);

/// Sends `sig` to every process of the process group `pgid`. Returns 0, or -1
/// (ESRCH when the group is empty, EINVAL for a `pgid` below 1).
int sp_kill_group(pid_t pgid, int sig);

/// How a waited-for child ended.
typedef struct sp_exit_status {
    /// 0 when a non-blocking wait found the child still running (the other
    /// fields are then 0), 1 when it has ended and been reaped.
    int ended;
    /// 1 when the child called exit, 0 when a signal killed it.
    int exited;
    /// The exit code when `exited`.
    int code;
    /// The signal number when not `exited`.
    int signal;
    /// User plus system CPU time of the child and of the children it waited for, in
    /// microseconds, when `ended`.
    long long cpu_usec;
} sp_exit_status;

/// Reaps the child behind `pidfd` (waitid P_PIDFD, WEXITED), blocking unless
/// `nohang`. Returns 0, or -1 (ECHILD when it was already reaped, EINVAL on
/// Linux 5.3, which has pidfds but not P_PIDFD).
int sp_wait_pidfd(int pidfd, sp_exit_status *status, int nohang);

/// The same as `sp_wait_pidfd` for one child `pid` (waitid P_PID); never waits
/// for any other child.
int sp_wait_pid(pid_t pid, sp_exit_status *status, int nohang);

/// Makes this process a child subreaper (PR_SET_CHILD_SUBREAPER): orphans of its descendants
/// become its children instead of init's. Returns 0, or -1.
int sp_set_child_subreaper(void);

/// Reaps the child `pid` if it has ended (waitid P_PID, WEXITED | WNOHANG). Returns 1 when it
/// was reaped, 0 when it is still running, -1 with errno (ECHILD: not a child of this process).
int sp_reap_if_ended(pid_t pid);

SP_ASSUME_NONNULL_END

#ifdef __cplusplus
}
#endif

#endif
