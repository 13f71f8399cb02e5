// clone3 (Linux 5.3 and later) for a child that runs a function on a stack of its own, as
// glibc's clone does for clone(2): glibc has no clone3 of its own to call. Shared by the
// supervisor's spawn (smartpoll_posix.c) and the benchmark's C reference
// (contrib/bench/spawn_loop.c), which includes it by path. x86-64 only (SP_HAVE_CLONE3).
#ifndef SMARTPOLL_CLONE3_H
#define SMARTPOLL_CLONE3_H

#include <stdint.h>
#include <sys/syscall.h>

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif

// clone3's argument as Linux 5.7 and later take it (CLONE_ARGS_SIZE_VER2, 88 bytes).
struct sp_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
        set_tid_size, cgroup;
};

// What the includer puts on sp_clone3 (the supervisor: no sanitizer instrumentation).
#ifndef SP_CLONE3_ATTRIBUTES
#define SP_CLONE3_ATTRIBUTES
#endif

#if defined(__x86_64__)
#define SP_HAVE_CLONE3 1
// Makes the clone3 call `args` describes, with CLONE_VM and a stack in `args`; the child runs
// `fn(arg)` there and exits with what it returns. Returns the child's pid, or -errno. The child
// gets the parent's registers but %rax (0) and %rsp (the new stack's top, which must be 16-byte
// aligned): `fn` and `arg` reach it in registers the system call keeps (not %rcx, %r11), and
// are moved to %rcx and %rdi before %rbp (which may hold one of them) is cleared for the new
// frame.
SP_CLONE3_ATTRIBUTES __attribute__((noinline, unused)) static long sp_clone3(struct sp_clone_args *args,
                                                                            int (*fn)(void *), void *arg) {
    long result;
    __asm__ volatile("syscall\n\t"
                     "testq %%rax, %%rax\n\t"
                     "jnz 1f\n\t"
                     "movq %[arg], %%rdi\n\t"
                     "movq %[fn], %%rcx\n\t"
                     "xorl %%ebp, %%ebp\n\t"
                     "callq *%%rcx\n\t"
                     "movl %%eax, %%edi\n\t"
                     "movl %[exit], %%eax\n\t"
                     "syscall\n\t"
                     "ud2\n"
                     "1:"
                     : "=a"(result)
                     : "0"((long)SYS_clone3), "D"(args), "S"(sizeof *args), [fn] "r"(fn), [arg] "r"(arg),
                       [exit] "i"(SYS_exit)
                     : "rcx", "r11", "memory", "cc");
    return result;
}
#endif

#endif
