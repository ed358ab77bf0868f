/* guard.c — see guard.h. */
#include "guard.h"

#include "config.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

bool guard_is_loopback(const char *host)
{
    return cfg_is_loopback(host);
}

const char *guard_refuse_listen(const char *host, const char *secret, const char *token)
{
    const char *why = cfg_refuse_secret(host, secret);
    if (why || guard_is_loopback(host))
        return why;
    if (cfg_is_shipped(token))
        return "the admin_token is the one examples/cluster.json ships with, known to "
               "everyone who read the repository";
    return NULL;
}

void guard_init(guard *g, const char *token, const char *host, int port)
{
    memset(g, 0, sizeof *g);
    g->token = token;
    /* Bound to every interface: any name of the host may be in Host. */
    g->any_host = !*host || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0;
    bool v6 = strchr(host, ':') != NULL;
    snprintf(g->hosts[g->nhosts++], sizeof g->hosts[0], v6 ? "[%s]:%d" : "%s:%d", host, port);
    if (guard_is_loopback(host)) {
        snprintf(g->hosts[g->nhosts++], sizeof g->hosts[0], "localhost:%d", port);
        snprintf(g->hosts[g->nhosts++], sizeof g->hosts[0], "127.0.0.1:%d", port);
        snprintf(g->hosts[g->nhosts++], sizeof g->hosts[0], "[::1]:%d", port);
    }
}

/* Equal without a timing that tells how much of the token was right: the
 * two SHA-256 digests are compared in constant time. */
static bool token_equal(const char *got, const char *want)
{
    unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)got, strlen(got), a);
    SHA256((const unsigned char *)want, strlen(want), b);
    return CRYPTO_memcmp(a, b, sizeof a) == 0;
}

/* True if h holds one of the headers the check reads more than once: it
 * reads the first, a server behind or before it may read the last (RFC
 * 9110 allows each once), so the request is malformed. Content-Length
 * too: evhttp reads the body by the first, and a proxy in front that
 * framed it by another would take the rest for a request of its own. */
static bool repeated(const struct evkeyvalq *h)
{
    static const char *const once[] = {"Host", "Origin", "Sec-Fetch-Site", "Content-Type",
                                       "Content-Length", "Authorization"};
    for (size_t i = 0; i < sizeof once / sizeof once[0]; i++) {
        int n = 0;
        const struct evkeyval *kv;
        for (kv = h->tqh_first; kv; kv = kv->next.tqe_next)
            n += strcasecmp(kv->key, once[i]) == 0;
        if (n > 1)
            return true;
    }
    return false;
}

int guard_check_change(const guard *g, struct evhttp_request *req, const char **why)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    if (repeated(h)) {
        *why = "Host, Origin, Sec-Fetch-Site, Content-Type, Content-Length or Authorization "
               "given twice";
        return 400;
    }
    const char *host = evhttp_find_header(h, "Host");
    const char *origin = evhttp_find_header(h, "Origin");
    const char *site = evhttp_find_header(h, "Sec-Fetch-Site");
    const char *type = evhttp_find_header(h, "Content-Type");
    const char *auth = evhttp_find_header(h, "Authorization");
    int i = 0;
    while (host && i < g->nhosts && strcasecmp(host, g->hosts[i]) != 0)
        i++;
    if (!host || (i == g->nhosts && !g->any_host)) {
        *why = "the Host header does not name this admin server";
        return 403;
    }
    char self[200];
    snprintf(self, sizeof self, "http://%s", host);
    if ((origin && strcasecmp(origin, self) != 0) ||
        (site && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0)) {
        *why = "cross-site request";
        return 403;
    }
    /* Not a "simple" request: a browser sends it cross-site only after a
     * preflight this server never answers. */
    size_t tl = strlen("application/json");
    if (!type || strncasecmp(type, "application/json", tl) != 0 ||
        (type[tl] && type[tl] != ';' && type[tl] != ' ')) {
        *why = "Content-Type must be application/json";
        return 415;
    }
    if (!*g->token) {
        *why = "no admin_token in the cluster config: nothing may change the cluster over HTTP";
        return 403;
    }
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0 || !token_equal(auth + 7, g->token)) {
        *why = "Authorization: Bearer <admin_token> missing or wrong";
        return 401;
    }
    return 0;
}

void html_escape(struct evbuffer *out, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': evbuffer_add(out, "&amp;", 5); break;
        case '<': evbuffer_add(out, "&lt;", 4); break;
        case '>': evbuffer_add(out, "&gt;", 4); break;
        case '"': evbuffer_add(out, "&quot;", 6); break;
        case '\'': evbuffer_add(out, "&#39;", 5); break;
        default: evbuffer_add(out, s, 1); break;
        }
    }
}
