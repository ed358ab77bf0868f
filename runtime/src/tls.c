/*
 * tls.c — the TLS transport: OpenSSL SSL objects in nonblocking mode over
 * the connection's own socket. conn.c keeps its contiguous buffers and raw
 * events; this file only turns "read bytes" / "write bytes" into SSL_read /
 * SSL_write and tells conn.c which readiness a stalled operation waits for
 * (c->read_needs_write, c->write_needs_read). The handshake runs inside the
 * first reads and writes. Everything above (framing, registration, calls)
 * is the same as on plain TCP.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "conn-internal.h"
#include "ember-internal.h"
#include "ep-internal.h"
#include "wire-internal.h"

/* The most useful text for what just failed: a certificate verdict first
 * (that is what an operator can fix), else OpenSSL's error queue. */
static int tls_fail(ember_conn *c, const char *what, int err)
{
    SSL *ssl = c->tls;
    char buf[256] = "";
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    unsigned long e = ERR_peek_last_error();
    if (vr != X509_V_OK && !c->tls_done) {
        snprintf(buf, sizeof buf, "certificate verification failed: %s",
                 X509_verify_cert_error_string(vr));
    } else if (e) {
        ERR_error_string_n(e, buf, sizeof buf);
    } else if (err == SSL_ERROR_SYSCALL) {
        snprintf(buf, sizeof buf, "%s", errno ? strerror(errno)
                                              : "peer closed the connection");
    } else if (err == SSL_ERROR_ZERO_RETURN) {
        snprintf(buf, sizeof buf, "peer closed the TLS session");
    } else {
        snprintf(buf, sizeof buf, "SSL error %d", err);
    }
    ERR_clear_error();
    ember_seterr("TLS %s failed: %s", what, buf);
    errno = EPROTO;
    return -1;
}

/* Maps a nonpositive SSL_* result: -1 EAGAIN (with the readiness wanted
 * recorded on c) or -1 failure. */
static int tls_stall(ember_conn *c, int r, const char *what, bool reading)
{
    int err = SSL_get_error(c->tls, r);
    if (err == SSL_ERROR_WANT_READ) {
        if (!reading)
            c->write_needs_read = true;
        errno = EAGAIN;
        return -1;
    }
    if (err == SSL_ERROR_WANT_WRITE) {
        if (reading)
            c->read_needs_write = true;
        errno = EAGAIN;
        return -1;
    }
    return tls_fail(c, what, err);
}

/* Drives the handshake. 1: done, -1 with errno EAGAIN or a failure. */
static int tls_handshake(ember_conn *c, bool reading)
{
    if (c->tls_done)
        return 1;
    ERR_clear_error();
    int r = SSL_do_handshake(c->tls);
    if (r == 1) {
        c->tls_done = true;
        ember_log(EMBER_LOG_DEBUG, "%s: TLS with %s: %s, %s", c->ep->what,
                  c->peer, SSL_get_version(c->tls), SSL_get_cipher(c->tls));
        return 1;
    }
    return tls_stall(c, r, "handshake", reading);
}

/* A failure kept by tls_read (c->tls_err): every later read or write
 * reports it. */
static const char tls_err_oom[] = "TLS read failed (out of memory for the reason)";

static int tls_failed(ember_conn *c)
{
    ember_seterr("%s", c->tls_err);
    errno = EPROTO;
    return -1;
}

static ssize_t tls_read(ember_conn *c, void *p, size_t n)
{
    if (c->tls_err)
        return tls_failed(c);
    if (tls_handshake(c, true) < 0)
        return -1;
    /* A record at a time; keep going while records are there, so a large
     * frame comes in with few trips through the loop. */
    size_t got = 0;
    while (got < n) {
        size_t want = n - got > (size_t)INT_MAX ? (size_t)INT_MAX : n - got;
        ERR_clear_error();
        int r = SSL_read(c->tls, (uint8_t *)p + got, (int)want);
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        if (got > 0) {
            /* Report what we have. A failure behind it (garbage after a
             * good record) has consumed its bytes: the socket may announce
             * nothing more, so keep its reason for the next read, which
             * tls_pending makes come at once. */
            int err = SSL_get_error(c->tls, r);
            if (err == SSL_ERROR_WANT_WRITE)
                c->read_needs_write = true;
            else if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_ZERO_RETURN &&
                     !c->tls_err) {
                tls_fail(c, "read", err);
                c->tls_err = ember_strdup(ember_last_error());
                if (!c->tls_err)
                    c->tls_err = (char *)tls_err_oom;
            }
            ERR_clear_error();
            break;
        }
        int err = SSL_get_error(c->tls, r);
        if (err == SSL_ERROR_ZERO_RETURN)
            return 0; /* close_notify: an orderly end of stream */
        return tls_stall(c, r, "read", true);
    }
    return (ssize_t)got;
}

static ssize_t tls_write(ember_conn *c, const void *p, size_t n)
{
    if (c->tls_err)
        return tls_failed(c);
    if (tls_handshake(c, false) < 0)
        return -1;
    ERR_clear_error();
    int r = SSL_write(c->tls, p, n > (size_t)INT_MAX ? INT_MAX : (int)n);
    if (r > 0)
        return r;
    return tls_stall(c, r, "write", false);
}

/* More to read now, though the socket may say nothing: decrypted bytes,
 * a failure or the peer's close_notify found behind the last bytes read. */
static bool tls_pending(ember_conn *c)
{
    return c->tls && (SSL_pending(c->tls) > 0 || c->tls_err ||
                      (SSL_get_shutdown(c->tls) & SSL_RECEIVED_SHUTDOWN));
}

static void tls_close(ember_conn *c)
{
    if (!c->tls)
        return;
    /* One try at close_notify; we do not wait for the peer's. */
    if (c->tls_done) {
        ERR_clear_error();
        SSL_shutdown(c->tls);
    }
    ERR_clear_error();
    SSL_free(c->tls);
    c->tls = NULL;
    if (c->tls_err != tls_err_oom)
        ember_strfree(c->tls_err);
    c->tls_err = NULL;
}

static const ember_transport tls_transport = {tls_read, tls_write, tls_pending,
                                              tls_close};

/* Sets the name the root's certificate must carry: an IP address against
 * its IP SANs, else a DNS name (also sent as SNI). 1 or 0 (refused). */
static int tls_set_host(SSL *ssl, const char *host)
{
    unsigned char ip[16];
    if (!*host)
        return 0;
    if (inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
    return SSL_set1_host(ssl, host) && SSL_set_tlsext_host_name(ssl, host);
}

int ember_tls_host_check(ember_ep *ep, const char *host)
{
    SSL *ssl = SSL_new(ep->tls_ctx);
    if (!ssl)
        return ember_seterr("TLS: cannot create a session");
    int ok = tls_set_host(ssl, host);
    SSL_free(ssl);
    ERR_clear_error();
    return ok ? 0 : ember_seterr("TLS: bad server name \"%s\"", host);
}

/* Counts what OpenSSL reads from the socket until the handshake is done:
 * input it buffers itself, which a root's unregistered budget must see
 * (conn.c, unreg_charge). */
static long tls_count_in(BIO *b, int oper, const char *argp, size_t len,
                         int argi, long argl, int ret, size_t *processed)
{
    (void)argp;
    (void)len;
    (void)argi;
    (void)argl;
    ember_conn *c = (ember_conn *)BIO_get_callback_arg(b);
    if (oper == (BIO_CB_READ | BIO_CB_RETURN) && ret > 0 && processed && c &&
        !c->tls_done)
        c->tls_hs_in += *processed;
    return ret;
}

int ember_tls_attach(ember_conn *c, bool server, const char *host)
{
    SSL *ssl = SSL_new(c->ep->tls_ctx);
    if (!ssl)
        return ember_seterr("TLS: cannot create a session");
    /* Partial writes: SSL_write returns after each record, like write(2).
     * Moving buffer: our output buffer may be compacted between retries. */
    SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
                          SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (!SSL_set_fd(ssl, c->fd)) {
        SSL_free(ssl);
        return ember_seterr("TLS: cannot attach the socket");
    }
    BIO_set_callback_ex(SSL_get_rbio(ssl), tls_count_in);
    BIO_set_callback_arg(SSL_get_rbio(ssl), (char *)c);
    if (server) {
        SSL_set_accept_state(ssl);
    } else {
        /* Check the root's certificate names the host we meant to reach. */
        if (!tls_set_host(ssl, host)) {
            SSL_free(ssl);
            ERR_clear_error();
            return ember_seterr("TLS: bad server name \"%s\"", host);
        }
        SSL_set_connect_state(ssl);
    }
    c->tls = ssl;
    c->tp = &tls_transport;
    if (!server) {
        /* The node speaks first in TLS (ClientHello) though the root speaks
         * first in ember (HELLO): start the handshake now. */
        if (tls_handshake(c, true) < 0 && errno != EAGAIN) {
            c->tp = &ember_plain_transport;
            c->tls = NULL;
            SSL_free(ssl);
            return -1;
        }
        if (c->read_needs_write && !c->wev_added && event_add(c->wev, NULL) == 0)
            c->wev_added = true;
    }
    return 0;
}

/* Why loading a file failed, from the first error OpenSSL queued (the
 * cause: "No such file or directory", not the last: "system lib"). */
static void load_why(char *buf, size_t n)
{
    unsigned long e = ERR_peek_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    if (e && ERR_GET_LIB(e) == ERR_LIB_SYS)
        snprintf(buf, n, "%s", strerror(ERR_GET_REASON(e)));
    else if (e && ERR_GET_LIB(e) == ERR_LIB_PEM &&
             ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
        snprintf(buf, n, "no PEM data in it (no \"-----BEGIN\" line)");
    else if (e && ERR_GET_LIB(e) == ERR_LIB_X509 &&
             ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
        snprintf(buf, n, "it is not the key of cert_file");
    else if (r)
        snprintf(buf, n, "%s", r);
    else if (e)
        ERR_error_string_n(e, buf, n);
    else
        buf[0] = 0;
}

int ember_tls_ctx_new(ember_ep *ep, const ember_tls_config *cfg, bool server)
{
    char err[200];
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!ctx)
        return ember_seterr("TLS: cannot create a context");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    const char *key = cfg->key_file ? cfg->key_file : cfg->cert_file;
    const char *what = NULL, *file = NULL;
    bool cause = true; /* OpenSSL's reason adds to what */
    ERR_clear_error();
    if (server && !cfg->cert_file) {
        what = "a root needs cert_file and key_file";
    } else if (!server && !cfg->ca_file) {
        what = "a node needs ca_file to verify the root";
    } else if (cfg->key_file && !cfg->cert_file) {
        what = "key_file without cert_file (the certificate it is the key of)";
    } else if (cfg->cert_file &&
               SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1) {
        what = "cannot load cert_file";
        file = cfg->cert_file;
    } else if (cfg->cert_file &&
               SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        what = cfg->key_file ? "cannot load key_file"
                             : "no key_file, and no private key in cert_file";
        file = key;
        cause = cfg->key_file != NULL; /* else only "unsupported" */
    } else if (cfg->cert_file && SSL_CTX_check_private_key(ctx) != 1) {
        what = "key_file does not match cert_file";
    } else if (cfg->ca_file &&
               SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL) != 1) {
        what = "cannot load ca_file";
        file = cfg->ca_file;
    } else if (server && cfg->require_client_cert && !cfg->ca_file) {
        what = "require_client_cert needs ca_file";
    }
    if (what) {
        err[0] = 0;
        if (cause)
            load_why(err, sizeof err);
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return ember_seterr("TLS: %s%s%s%s%s", what, file ? " " : "",
                            file ? file : "", err[0] ? ": " : "", err);
    }
    if (!server)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    else if (cfg->require_client_cert)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                           NULL);
    else if (cfg->ca_file)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL); /* checked if sent */
    ep->tls_ctx = ctx;
    return 0;
}

void ember_tls_ctx_free(ember_ep *ep)
{
    if (ep->tls_ctx)
        SSL_CTX_free(ep->tls_ctx);
    ep->tls_ctx = NULL;
}
