/*
 * net.h — plain TCP on the loopback, shared by the test programs that play
 * raw peers. Header-only like loop.h.
 */
#ifndef EMBER_TEST_NET_H
#define EMBER_TEST_NET_H

#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

/* 127.0.0.1:port (0: any free port, for bind). */
static inline struct sockaddr_in loopback_addr(int port)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sa;
}

/* A blocking TCP connection to 127.0.0.1:port; -1 on failure. */
static inline int loopback_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = loopback_addr(port);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

#endif
