#ifndef SMARTPOLL_CONVENTION_H
#define SMARTPOLL_CONVENTION_H
// How every function of CSmartPollPosix reports, stated once for all its headers.
//
// - Failure is -1 with errno set, as for the system calls. Success is 0, or a value that is
//   never negative (a descriptor, a count, a signal number), as each function says. No function
//   returns an errno value.
// - EINTR never reaches a caller: a function retries an interrupted system call itself, except
//   that sp_epoll_wait reports an interrupted wait as an empty one (a retry would restart its
//   timeout).
// - An output parameter is meaningful only after success, unless its function says otherwise.
// - Pointer parameters and fields are non-null (each header is an assume_nonnull region,
//   SP_ASSUME_NONNULL_BEGIN to _END); those that may be NULL say _Nullable.
// - Descriptors the shim creates are close-on-exec.
// - Functions that cannot fail return nothing or their value (sp_monotonic_ns).

// Nullability is clang's; other compilers read the headers without it.
#if defined(__clang__)
#define SP_ASSUME_NONNULL_BEGIN _Pragma("clang assume_nonnull begin")
#define SP_ASSUME_NONNULL_END _Pragma("clang assume_nonnull end")
#else
#define SP_ASSUME_NONNULL_BEGIN
#define SP_ASSUME_NONNULL_END
#define _Nullable
#define _Nonnull
#endif

#endif
