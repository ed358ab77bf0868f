/*
 * pb_server — ember's side of the PB workloads (bench/pb.sh): a root that
 * serves bench.idl's Echo on a Perspective Broker listener. Prints
 * "port=N", then serves until killed.
 */
#include <stdio.h>

#include <event2/event.h>

#include <ember/ember.h>

#include "bench.h"

static void echo(ember_call *call, const char *s, void *ud)
{
    (void)ud;
    bench_Echo_echo_reply(call, s);
}

int main(void)
{
    static const bench_Echo_handlers h = {echo};
    struct event_base *base = event_base_new();
    ember_root *r = base ? ember_root_new(base, NULL) : NULL;
    if (!r || bench_Echo_export(ember_root_exports(r), &h, NULL) ||
        ember_root_listen_pb(r, "127.0.0.1:0")) {
        fprintf(stderr, "pb_server: %s\n", ember_last_error());
        return 1;
    }
    printf("port=%d\n", ember_root_listener_port(r, 0));
    fflush(stdout);
    event_base_dispatch(base);
    ember_root_free(r);
    event_base_free(base);
    return 0;
}
