/*
 * freeport — prints N free TCP ports on 127.0.0.1, one per line, for a
 * cluster config whose servers start later (the config names their ports).
 *
 *   freeport [N]
 *
 * The ports come from below the kernel's ephemeral range
 * (/proc/sys/net/ipv4/ip_local_port_range): every outgoing connection the
 * cluster's servers make (to the master, to db, to the gate) takes its local
 * port from that range, so a port chosen there could be taken by one of
 * them before the server meant to listen on it starts. Below the range only
 * an explicit bind can take a port. Each candidate is bound to prove it is
 * free; the N sockets are held open together so the ports are distinct.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The first ephemeral port; 32768 (Linux's default) when unreadable. */
static int ephemeral_low(void)
{
    int lo = 32768, hi;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d %d", &lo, &hi) != 2)
            lo = 32768;
        fclose(f);
    }
    return lo;
}

/* A socket bound to 127.0.0.1:port, or -1 when the port is taken. */
static int try_bind(int port)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons((uint16_t)port);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0)
        return fd;
    if (fd >= 0)
        close(fd);
    return -1;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1;
    if (n < 1 || n > 64) {
        fprintf(stderr, "usage: freeport [N]   (1..64)\n");
        return 2;
    }
    /* Candidates from [low, top): 10000 up to the ephemeral range. */
    int low = 10000, top = ephemeral_low();
    if (top - low < 1000) {
        fprintf(stderr, "freeport: the ephemeral range starts at %d: no room below it\n", top);
        return 1;
    }
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    int fds[64], got = 0;
    for (int tries = 0; got < n && tries < 10000; tries++) {
        int port = low + rand() % (top - low);
        int fd = try_bind(port);
        if (fd < 0)
            continue;
        fds[got++] = fd;
        printf("%d\n", port);
    }
    for (int i = 0; i < got; i++)
        close(fds[i]);
    if (got < n) {
        fprintf(stderr, "freeport: found only %d free ports below %d\n", got, top);
        return 1;
    }
    return 0;
}
