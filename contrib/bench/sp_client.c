/* The reference client: connect to a Unix socket, send one request line, read one reply line,
 * exit 0 when the reply says "ok":true. With --spawn PATH it first runs PATH with posix_spawn
 * and waits for it: the least a synchronous "run a task and report" can cost.
 * usage: sp_client [--spawn PATH] [--print] SOCKET LINE */
#include "common.h"
#include <spawn.h>
#include <sys/wait.h>

extern char **environ;

int main(int argc, char **argv) {
    const char *spawn = NULL;
    int print = 0, i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
        if (!strcmp(argv[i], "--spawn") && i + 1 < argc) spawn = argv[++i];
        else if (!strcmp(argv[i], "--print")) print = 1;
        else break;
    }
    if (argc - i != 2) { fprintf(stderr, "usage: sp_client [--spawn PATH] [--print] SOCKET LINE\n"); return 2; }
    const char *path = argv[i], *line = argv[i + 1];
    if (spawn) {
        pid_t pid;
        char *args[] = {(char *)spawn, NULL};
        int rc = posix_spawn(&pid, spawn, NULL, NULL, args, environ);
        if (rc) { errno = rc; die("posix_spawn"); }
        int status;
        while (waitpid(pid, &status, 0) < 0) if (errno != EINTR) die("waitpid");
    }
    struct line_reader r;
    char *reply = request_line(path, line, &r);
    if (!reply) { fprintf(stderr, "sp_client: no reply\n"); return 1; }
    if (print) printf("%s\n", reply);
    return strstr(reply, "\"ok\":true") ? 0 : 1;
}
