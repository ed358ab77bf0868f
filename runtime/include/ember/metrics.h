/*
 * ember/metrics.h — an endpoint's metrics in the Prometheus text exposition
 * format (version 0.0.4), for a /metrics page. docs/runtime.md lists the
 * series.
 */
#ifndef EMBER_METRICS_H
#define EMBER_METRICS_H

#include <stddef.h>

#include <ember/rpc.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One endpoint to render: exactly one of root / node, and the labels every
 * one of its series carries, written as in the exposition format
 * (`server="db",endpoint="root"`), or NULL. When several endpoints are
 * rendered together their labels must tell them apart (see below). */
typedef struct ember_metrics_src {
    ember_root *root;
    ember_node *node;
    const char *labels;
} ember_metrics_src;

/*
 * Renders the metrics of n endpoints into buf (cap bytes, always
 * NUL-terminated when cap > 0), each family once with its HELP and TYPE
 * lines. Returns the length of the whole text, like snprintf: a result >= cap
 * means it was cut, and a buffer of result + 1 bytes holds it. -1 (with
 * ember_last_error) for a source with neither or both of root and node,
 * labels that are not `name="value"` pairs separated by commas, labels that
 * name a label twice, one the series carry themselves (service, service_id,
 * method, id, status, le, direction, reason) or one starting with __, or
 * two sources with the same labels (in any order): their series would clash.
 */
long ember_metrics_render(const ember_metrics_src *src, size_t n, char *buf,
                          size_t cap);

#ifdef __cplusplus
}
#endif
#endif
