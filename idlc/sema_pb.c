/*
 * sema_pb.c — how services travel over Twisted Perspective Broker: the @pb
 * annotations, checked and resolved (docs/idl.md, "Perspective Broker").
 *
 *   @pb(dispatch = "callTarget") service S { ... }
 *       command mode: every method travels as the message "callTarget" with
 *       its method id as the first argument (Firefly's CommandService).
 *   @pb("status") NodeStatus status() = 101;
 *       by name: the message is the PB name (default: the IDL name), served
 *       by remote_<name> on the Python side.
 */
#include <stdlib.h>
#include <string.h>

#include "sema.h"

#define PB_NAME_MAX 64

/* The name the runtime owns: registration with a Firefly root. */
static const char reserved[] = "takeProxy";

/* A Python identifier of ASCII letters, digits and '_', 1..64 bytes. */
static bool valid_name(const idl_annot *a)
{
    size_t n = a->value_len;
    if (n == 0 || n > PB_NAME_MAX || strlen(a->value) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = a->value[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

/* Checks the annotation's name, key and value; false when it is unusable. */
static bool check_annot(idl_diag *diag, const idl_annot *a, const char *want_key,
                        const char *where)
{
    if (strcmp(a->name, "pb") != 0) {
        diag_error(diag, a->loc, "unknown annotation '@%s' (idlc knows @pb)", a->name);
        return false;
    }
    bool key_ok = want_key ? a->key && strcmp(a->key, want_key) == 0
                           : !a->key || strcmp(a->key, "name") == 0;
    if (!key_ok) {
        if (want_key)
            diag_error(diag, a->key ? a->key_loc : a->loc,
                       "@pb on %s takes %s = \"NAME\"", where, want_key);
        else
            diag_error(diag, a->key_loc, "@pb on %s takes the PB name: @pb(\"NAME\")", where);
        return false;
    }
    if (!valid_name(a)) {
        diag_error(diag, a->value_loc,
                   "PB name must be a Python identifier of 1..%d ASCII letters, digits "
                   "and '_', not starting with a digit", PB_NAME_MAX);
        return false;
    }
    if (strcmp(a->value, reserved) == 0) {
        diag_error(diag, a->value_loc, "PB name '%s' is the runtime's own (registration)",
                   reserved);
        return false;
    }
    return true;
}

static int cmp_pb_name(const void *a, const void *b)
{
    const idl_method *x = *(const idl_method *const *)a;
    const idl_method *y = *(const idl_method *const *)b;
    int c = strcmp(x->pb_name, y->pb_name);
    return c ? c : (x->loc.line > y->loc.line) - (x->loc.line < y->loc.line);
}

/* By-name methods of one service: each PB name once. */
static void check_unique(idl_diag *diag, idl_decl *d)
{
    size_t n = 0;
    for (idl_method *me = d->methods; me; me = me->next)
        n++;
    if (n < 2)
        return;
    idl_method **v = idl_xcalloc(n, sizeof *v);
    n = 0;
    for (idl_method *me = d->methods; me; me = me->next)
        v[n++] = me;
    qsort(v, n, sizeof *v, cmp_pb_name);
    for (size_t i = 1; i < n; i++)
        if (strcmp(v[i]->pb_name, v[i - 1]->pb_name) == 0 &&
            strcmp(v[i]->name, v[i - 1]->name) != 0) {
            diag_error(diag, v[i]->annot ? v[i]->annot->value_loc : v[i]->loc,
                       "PB name '%s' is used twice in service '%s'", v[i]->pb_name, d->name);
            diag_note(diag, v[i - 1]->loc, "method '%s' travels as '%s' too",
                      v[i - 1]->name, v[i]->pb_name);
        }
    free(v);
}

static void resolve_service(idl_diag *diag, idl_decl *d)
{
    d->pb_dispatch = NULL;
    if (d->annot && check_annot(diag, d->annot, "dispatch", "a service"))
        d->pb_dispatch = d->annot->value;
    for (idl_method *me = d->methods; me; me = me->next) {
        me->pb_name = me->name;
        if (!me->annot)
            continue;
        if (d->annot && strcmp(d->annot->name, "pb") == 0) {
            diag_error(diag, me->annot->loc,
                       "method '%s' travels by command id (service '%s' has @pb(dispatch)): "
                       "a PB name does not apply", me->name, d->name);
            continue;
        }
        if (check_annot(diag, me->annot, NULL, "a method"))
            me->pb_name = me->annot->value;
    }
    if (!d->pb_dispatch)
        check_unique(diag, d);
}

void sema_pb_module(idl_diag *diag, idl_module *m)
{
    for (idl_decl *d = m->decls; d; d = d->next)
        if (d->kind == IDL_SERVICE && !d->syntax_error)
            resolve_service(diag, d);
    /* A by-name method must not take a message name a command-mode service
     * of the module dispatches on. */
    for (idl_decl *c = m->decls; c; c = c->next) {
        if (c->kind != IDL_SERVICE || !c->pb_dispatch)
            continue;
        for (idl_decl *d = m->decls; d; d = d->next) {
            if (d->kind != IDL_SERVICE || d->pb_dispatch)
                continue;
            for (idl_method *me = d->methods; me; me = me->next)
                if (me->pb_name && strcmp(me->pb_name, c->pb_dispatch) == 0) {
                    diag_error(diag, me->annot ? me->annot->value_loc : me->loc,
                               "PB name '%s' of method '%s.%s' is the dispatch message of "
                               "service '%s'", me->pb_name, d->name, me->name, c->name);
                    diag_note(diag, c->annot->value_loc, "'%s' dispatches here", c->name);
                }
        }
    }
}
