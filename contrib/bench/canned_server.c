/* A stand-in supervisor for make bench-check: a Unix stream socket server that answers the first
 * line of every connection with the same canned reply (one line, from a file), then closes it,
 * one connection at a time. So `smartpollctl status` against it does the same work every run.
 * usage: canned_server PATH REPLY_FILE   (runs until killed; prints "ready" once listening) */
#include "common.h"
#include <signal.h>

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: canned_server PATH REPLY_FILE\n"); return 2; }
    FILE *file = fopen(argv[2], "rb");
    if (!file) die(argv[2]);
    static char reply[1 << 20];
    size_t length = fread(reply, 1, sizeof reply - 1, file);
    if (ferror(file) || !feof(file)) { fprintf(stderr, "%s: unreadable or over 1 MiB\n", argv[2]); return 1; }
    fclose(file);
    signal(SIGPIPE, SIG_IGN);   /* a client gone early is an error message, not a silent end */
    if (length == 0 || reply[length - 1] != '\n') reply[length++] = '\n';

    int fd = listen_ready(argv[1]);
    static char buf[1 << 16];
    for (;;) {
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) { if (errno == EINTR) continue; die("accept"); }
        for (;;) {
            ssize_t n = read(c, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            if (memchr(buf, '\n', (size_t)n)) { write_all(c, reply, length); break; }
        }
        close(c);
    }
}
