/*
 * metrics.h — the example servers' Prometheus pages: a server renders its
 * endpoints (ember_metrics_render) labelled server and endpoint; the master
 * merges the pages of the cluster into one, each family once.
 */
#ifndef EXAMPLES_METRICS_H
#define EXAMPLES_METRICS_H

#include <stddef.h>

#include <ember/ember.h>

struct evbuffer;
struct evhttp;

/* `name="VALUE"` with the value escaped for the exposition format (cut to
 * fit cap). */
void mx_label(char *buf, size_t cap, const char *name, const char *value);
/* `server="NAME",endpoint="ENDPOINT"`, both escaped. */
void mx_labels(char *buf, size_t cap, const char *server, const char *endpoint);
/* ember_metrics_render into a malloc'd text (free it); NULL on failure. */
char *mx_render(const ember_metrics_src *src, size_t n);
/* Appends the n pages to out as one: each family's HELP and TYPE once, then
 * its samples from every page in order. Lines that belong to no family are
 * dropped; a NULL page (a server that did not answer) is skipped. */
void mx_merge(struct evbuffer *out, const char *const *pages, size_t n);

#endif
