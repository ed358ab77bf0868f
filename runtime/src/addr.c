/*
 * addr.c — "host:port", "[v6]:port" and "unix:/path" addresses, and socket
 * setup shared by roots and nodes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "addr-internal.h"
#include "ember-internal.h"

/* "host:port" or "[v6]:port" into host and port, checking only the form:
 * a host (0.0.0.0 or [::] for every interface, never implied by an empty
 * one) and a port of decimal digits only (no sign, space or "0x"). */
static int split_host_port(const char *addr, char *host, size_t cap,
                           const char **portp)
{
    const char *port;
    size_t hl;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':' || (hl = (size_t)(close - addr - 1)) >= cap)
            return ember_seterr("bad address \"%s\" (want [v6]:port)", addr);
        memcpy(host, addr + 1, hl);
        port = close + 2;
    } else {
        const char *colon = strrchr(addr, ':');
        if (!colon || (hl = (size_t)(colon - addr)) >= cap)
            return ember_seterr("bad address \"%s\" (want host:port)", addr);
        memcpy(host, addr, hl);
        port = colon + 1;
    }
    host[hl] = 0;
    if (hl == 0)
        return ember_seterr("bad address \"%s\": no host (0.0.0.0 or [::] "
                            "means every interface)", addr);
    size_t pl = strspn(port, "0123456789");
    if (pl == 0 || pl > 5 || port[pl] || atol(port) > 65535)
        return ember_seterr("bad port in \"%s\" (want 0 to 65535)", addr);
    *portp = port;
    return 0;
}

static int check_unix(const char *addr)
{
    const char *path = addr + 5;
    if (!*path || strlen(path) >= sizeof ((struct sockaddr_un *)0)->sun_path)
        return ember_seterr("bad unix socket path in \"%s\"", addr);
    return 0;
}

int ember_addr_check(const char *addr)
{
    char host[256];
    const char *port;
    if (!addr)
        return ember_seterr("no address");
    if (strncmp(addr, "unix:", 5) == 0)
        return check_unix(addr);
    if (split_host_port(addr, host, sizeof host, &port))
        return -1;
    if (atol(port) == 0)
        return ember_seterr("bad port in \"%s\": port 0 cannot be connected to",
                            addr);
    return 0;
}

int ember_addr_parse(const char *addr, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    if (!addr)
        return ember_seterr("no address");
    if (strncmp(addr, "unix:", 5) == 0) {
        if (check_unix(addr))
            return -1;
        struct sockaddr_un *un = (struct sockaddr_un *)ss;
        un->sun_family = AF_UNIX;
        strcpy(un->sun_path, addr + 5);
        *len = (socklen_t)sizeof *un;
        return 0;
    }
    char host[256];
    const char *port;
    if (split_host_port(addr, host, sizeof host, &port))
        return -1;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    /* Numeric addresses resolve without blocking; names use the resolver. */
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || !res)
        return ember_seterr("cannot resolve \"%s\": %s", addr, gai_strerror(rc));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

char *ember_addr_text(const struct sockaddr *sa, socklen_t len)
{
    char buf[160], host[INET6_ADDRSTRLEN];
    (void)len;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(buf, sizeof buf, "%s:%u", host, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(buf, sizeof buf, "[%s]:%u", host, ntohs(in6->sin6_port));
    } else if (sa->sa_family == AF_UNIX) {
        snprintf(buf, sizeof buf, "unix");
    } else {
        snprintf(buf, sizeof buf, "?");
    }
    return ember_strdup(buf);
}

int ember_sock_prepare(int fd)
{
    int one = 1;
    int fl = fcntl(fd, F_GETFL, 0);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return ember_seterr("fcntl: %s", strerror(errno));
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    /* Fails harmlessly on unix sockets. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return 0;
}
