#ifndef SMARTPOLL_LIBC_H
#define SMARTPOLL_LIBC_H

// The C library as smartpollctl's Swift uses it, for its Embedded Swift build (make
// release), which has no Glibc module: the headers it calls into, and errno, environ
// and the command line as functions (the C library's are a macro, a global and main's
// parameters). The ordinary build imports Glibc and uses these only for the command line.

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The calling thread's errno.
int sp_errno(void);

/// The process's environment (`environ`): NULL-terminated `NAME=value` strings.
char *_Nullable *_Nullable sp_environ(void);

/// The process's argc and argv as main received them, recorded before main by a constructor
/// (glibc passes them to the constructors of the executable); 0 and NULL in a library loaded
/// later.
int sp_argc(void);
char *_Nullable *_Nullable sp_argv(void);

#ifdef __cplusplus
}
#endif

#endif
