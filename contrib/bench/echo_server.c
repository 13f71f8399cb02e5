/* The protocol reference: a Unix stream socket server that echoes every byte back, one
 * connection at a time. It parses nothing, so it is what the socket itself costs.
 * usage: echo_server PATH   (runs until killed; prints "ready" once listening) */
#include "common.h"

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: echo_server PATH\n"); return 2; }
    int fd = listen_ready(argv[1]);
    static char buf[1 << 16];
    for (;;) {
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) { if (errno == EINTR) continue; die("accept"); }
        for (;;) {
            ssize_t n = read(c, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            write_all(c, buf, (size_t)n);
        }
        close(c);
    }
}
