// See smartpoll_libc.h.
#include "smartpoll_libc.h"

extern char **environ;

static int recorded_argc;
static char **recorded_argv;

// glibc calls the executable's .init_array functions with (argc, argv, envp), static or dynamic.
static void record_arguments(int argc, char **argv, char **envp) {
    (void)envp;
    recorded_argc = argc;
    recorded_argv = argv;
}

__attribute__((section(".init_array"), used)) static void (*const record_arguments_entry)(int, char **, char **) =
    record_arguments;

int sp_errno(void) { return errno; }

char **sp_environ(void) { return environ; }

int sp_argc(void) { return recorded_argc; }

char **sp_argv(void) { return recorded_argv; }
