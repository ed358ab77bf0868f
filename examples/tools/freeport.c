/*
 * freeport — prints N free TCP ports on 127.0.0.1, one per line, by asking
 * the kernel (bind port 0, read the port). The N sockets are held open
 * together so the ports are distinct, then closed.
 *
 *   freeport [N]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1;
    if (n < 1 || n > 64) {
        fprintf(stderr, "usage: freeport [N]   (1..64)\n");
        return 2;
    }
    int fds[64];
    for (int i = 0; i < n; i++) {
        struct sockaddr_in sin;
        memset(&sin, 0, sizeof sin);
        sin.sin_family = AF_INET;
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof sin;
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&sin, sizeof sin) ||
            getsockname(fds[i], (struct sockaddr *)&sin, &len)) {
            perror("freeport");
            return 1;
        }
        printf("%d\n", ntohs(sin.sin_port));
    }
    for (int i = 0; i < n; i++)
        close(fds[i]);
    return 0;
}
