#ifndef SMARTPOLL_INTERNAL_H
#define SMARTPOLL_INTERNAL_H
// Helpers shared by the shim's C files, not part of its interface.

#include <errno.h>

// Fails with `error`: sets errno and returns -1, so the errno of a failure survives the
// clean-up calls made after it (the convention of smartpoll_convention.h).
static inline int sp_fail(int error) {
    errno = error;
    return -1;
}

#endif
