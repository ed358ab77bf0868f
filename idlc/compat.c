/*
 * compat.c — schema evolution: which changes break a peer built from the
 * old version of a module.
 *
 * Identity on the wire is numeric: fields and parameters by tag, methods by
 * their service's id (a hash of "module.Service") and their id (unique
 * within the service), enumerators by value. Names of fields,
 * parameters, enumerators and types never travel, so renaming them is free.
 * What breaks an older peer (each reported once):
 *   - a field or parameter tag whose type changed;
 *   - a field removed from a struct or error, a method removed, a service
 *     removed or renamed (its id is the hash of its name);
 *   - a method id reused for a different method, a method moved to another id;
 *   - a method's return type or oneway-ness changed, or a new error raised;
 *   - a required (non-optional) field added to a struct or error, or an
 *     optional field made required (older peers do not send it);
 *   - a parameter made required (older callers may leave it out) or made
 *     optional (a newer caller may leave it out, and an older server reads
 *     the missing argument as a zero it was sent and acts on it);
 *   - an enum value removed (older peers may still send it);
 *   - a type or service that became another kind of declaration under the
 *     same name (enum Tier -> struct Tier): every use is spelled as before
 *     but means something else on the wire.
 * Twisted PB peers (docs/idl.md, "Perspective Broker") also identify a
 * method by its PB name and its arguments by position, so these break too:
 *   - a service's @pb(dispatch) added, removed or changed;
 *   - a by-name method's PB name changed (an explicit @pb or the IDL name);
 *   - a parameter that is no longer at its old position (reordered, or a
 *     parameter inserted before it).
 *   - a parameter added to a method of a service that carries a @pb
 *     annotation (on itself or a method): a newer caller passes it as an
 *     argument an older server does not take, a TypeError.
 * Compatible: adding optional fields, adding parameters to a service with
 * no @pb (an older caller's call decodes them as zero/empty, or absent
 * when optional), adding methods, services, types and enum
 * values, making a required field optional, dropping an error from raises,
 * and any renaming of fields, parameters or enumerators.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "sema.h"

/* The new module's declarations by name (unique within a module, whatever
 * their kind) and methods by (service name, id), sorted for binary search: a
 * 10,000-declaration module must not take quadratic time. */
typedef struct method_ref {
    uint64_t id;
    const idl_method *m;
    const idl_decl *svc;
} method_ref;

typedef struct compat {
    const idl_module *old_mod, *new_mod;
    idl_diag *diag;
    int breaks;
    const idl_decl **decls;
    size_t ndecls;
    method_ref *methods;        /* by (service name, id) */
    method_ref *by_name;        /* the same, by (service name, method name) */
    size_t nmethods;
} compat;

static int cmp_decl(const void *a, const void *b)
{
    const idl_decl *x = *(const idl_decl *const *)a, *y = *(const idl_decl *const *)b;
    return strcmp(x->name, y->name);
}

static int cmp_method(const void *a, const void *b)
{
    const method_ref *x = a, *y = b;
    int c = strcmp(x->svc->name, y->svc->name);
    if (c)
        return c;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int cmp_method_name(const void *a, const void *b)
{
    const method_ref *x = a, *y = b;
    int c = strcmp(x->svc->name, y->svc->name);
    return c ? c : strcmp(x->m->name, y->m->name);
}

static void index_module(compat *C, const idl_module *m)
{
    for (const idl_decl *d = m->decls; d; d = d->next) {
        C->ndecls++;
        if (d->kind == IDL_SERVICE)
            for (const idl_method *me = d->methods; me; me = me->next)
                C->nmethods++;
    }
    C->decls = idl_xcalloc(C->ndecls, sizeof *C->decls);
    C->methods = idl_xcalloc(C->nmethods, sizeof *C->methods);
    size_t i = 0, j = 0;
    for (const idl_decl *d = m->decls; d; d = d->next) {
        C->decls[i++] = d;
        if (d->kind == IDL_SERVICE)
            for (const idl_method *me = d->methods; me; me = me->next)
                C->methods[j++] = (method_ref){ me->id, me, d };
    }
    qsort(C->decls, C->ndecls, sizeof *C->decls, cmp_decl);
    qsort(C->methods, C->nmethods, sizeof *C->methods, cmp_method);
    C->by_name = idl_xcalloc(C->nmethods ? C->nmethods : 1, sizeof *C->by_name);
    if (C->nmethods)
        memcpy(C->by_name, C->methods, C->nmethods * sizeof *C->by_name);
    qsort(C->by_name, C->nmethods, sizeof *C->by_name, cmp_method_name);
}

static const idl_decl *find_decl(const compat *C, const char *name)
{
    idl_decl key;
    memset(&key, 0, sizeof key);
    key.name = name;
    const idl_decl *kp = &key;
    const idl_decl **hit = bsearch(&kp, C->decls, C->ndecls, sizeof *C->decls, cmp_decl);
    return hit ? *hit : NULL;
}

/* Types are compared by their spelling, with each version's own names left
 * unqualified: a renamed module is reported once, not at every use. */
static bool same_type(const compat *C, const idl_type *a, const idl_type *b, char **sa, char **sb,
                      idl_buf *ba, idl_buf *bb)
{
    ba->len = bb->len = 0;
    idl_spell_type_in(ba, a, C->old_mod);
    idl_spell_type_in(bb, b, C->new_mod);
    *sa = ba->p;
    *sb = bb->p;
    return strcmp(ba->p, bb->p) == 0;
}

/* A member list by tag, and an enum by value, sorted for binary search:
 * a struct of 100,000 fields must not take quadratic time either. */
typedef struct by_key {
    int64_t key;            /* a tag, or an enumerator's value */
    size_t pos;             /* 1-based position in the list */
    const void *item;       /* the idl_field or idl_enumerator */
} by_key;

static int cmp_key(const void *a, const void *b)
{
    const by_key *x = a, *y = b;
    return x->key < y->key ? -1 : x->key > y->key;
}

static by_key *index_fields(const idl_field *list, size_t *n)
{
    *n = 0;
    for (const idl_field *f = list; f; f = f->next)
        (*n)++;
    by_key *v = idl_xcalloc(*n ? *n : 1, sizeof *v);
    size_t i = 0;
    for (const idl_field *f = list; f; f = f->next, i++)
        v[i] = (by_key){ (int64_t)f->tag, i + 1, f };
    qsort(v, *n, sizeof *v, cmp_key);
    return v;
}

static const by_key *find_key(const by_key *v, size_t n, int64_t key)
{
    by_key k = { key, 0, NULL };
    return bsearch(&k, v, n, sizeof *v, cmp_key);
}

static const idl_field *field_by_tag(const by_key *v, size_t n, uint64_t tag)
{
    const by_key *hit = find_key(v, n, (int64_t)tag);
    return hit ? hit->item : NULL;
}

/* Fields of a struct/error (is_struct) or parameters of a method. */
static void compare_members(compat *C, const idl_field *olds, const idl_field *news,
                            const char *owner, bool is_struct)
{
    const char *what = is_struct ? "field" : "parameter";
    idl_buf ba = { 0 }, bb = { 0 };
    size_t nold, nnew;
    by_key *old_tags = index_fields(olds, &nold), *new_tags = index_fields(news, &nnew);
    for (const idl_field *o = olds; o; o = o->next) {
        const idl_field *n = field_by_tag(new_tags, nnew, o->tag);
        if (!n) {
            diag_error(C->diag, o->loc, "%s '%s' (tag %" PRIu64 ") of '%s' was removed", what, o->name,
                       o->tag, owner);
            C->breaks++;
            continue;
        }
        char *so, *sn;
        if (!same_type(C, o->type, n->type, &so, &sn, &ba, &bb)) {
            diag_error(C->diag, n->type->loc, "type of %s tag %" PRIu64 " of '%s' changed from '%s' to '%s'",
                       what, o->tag, owner, so, sn);
            diag_note(C->diag, o->type->loc, "the old type is here");
            C->breaks++;
        } else if (is_struct && o->optional && !n->optional) {
            diag_error(C->diag, n->loc,
                       "field '%s' (tag %" PRIu64 ") of '%s' became required; older peers may leave it out",
                       n->name, n->tag, owner);
            C->breaks++;
        } else if (!is_struct && o->optional && !n->optional) {
            diag_error(C->diag, n->loc,
                       "parameter '%s' (tag %" PRIu64 ") of '%s' became required; older callers may leave it out",
                       n->name, n->tag, owner);
            C->breaks++;
        } else if (!is_struct && !o->optional && n->optional) {
            diag_error(C->diag, n->loc,
                       "parameter '%s' (tag %" PRIu64 ") of '%s' became optional; a newer caller may leave it out, "
                       "and an older server takes that as zero/empty",
                       n->name, n->tag, owner);
            C->breaks++;
        }
    }
    if (is_struct) {
        for (const idl_field *n = news; n; n = n->next) {
            if (!n->optional && !field_by_tag(old_tags, nold, n->tag)) {
                diag_error(C->diag, n->loc,
                           "new field '%s' (tag %" PRIu64 ") of '%s' is required, but older peers never send it; make it optional",
                           n->name, n->tag, owner);
                C->breaks++;
            }
        }
    }
    free(old_tags);
    free(new_tags);
    idl_buf_free(&ba);
    idl_buf_free(&bb);
}

/* An enumerator's value (an i32 once sema accepted it; -0 is 0). */
static int64_t enum_value(const idl_enumerator *e)
{
    return e->value.negative ? -(int64_t)e->value.u : (int64_t)e->value.u;
}

static void compare_enum(compat *C, const idl_decl *od, const idl_decl *nd)
{
    size_t n = 0, i = 0;
    for (const idl_enumerator *e = nd->enumerators; e; e = e->next)
        n++;
    by_key *v = idl_xcalloc(n ? n : 1, sizeof *v);
    for (const idl_enumerator *e = nd->enumerators; e; e = e->next, i++)
        v[i] = (by_key){ enum_value(e), i + 1, e };
    qsort(v, n, sizeof *v, cmp_key);
    for (const idl_enumerator *o = od->enumerators; o; o = o->next) {
        if (!find_key(v, n, enum_value(o))) {
            diag_error(C->diag, o->loc, "enum value '%s.%s' (%s%" PRIu64 ") was removed; older peers may still send it",
                       od->name, o->name, o->value.negative && o->value.u ? "-" : "", o->value.u);
            C->breaks++;
        }
    }
    free(v);
}

/* A declaration's kind, for messages. */
static const char *const a_kind[] = {
    [IDL_CONST] = "a constant", [IDL_ENUM] = "an enum", [IDL_STRUCT] = "a struct",
    [IDL_ERROR] = "an error", [IDL_SERVICE] = "a service",
};

static const idl_method *method_by_id(const compat *C, const idl_decl *svc, uint64_t id)
{
    method_ref key = { id, NULL, svc };
    const method_ref *hit = bsearch(&key, C->methods, C->nmethods, sizeof *C->methods, cmp_method);
    return hit ? hit->m : NULL;
}

/* Method names are unique within a service (sema checks it). */
static const idl_method *method_by_name(const compat *C, const idl_decl *svc, const char *name)
{
    idl_method m;
    memset(&m, 0, sizeof m);
    m.name = name;
    method_ref key = { 0, &m, svc };
    const method_ref *hit = bsearch(&key, C->by_name, C->nmethods, sizeof *C->by_name, cmp_method_name);
    return hit ? hit->m : NULL;
}

static bool same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* PB passes arguments by position: every old parameter keeps its index. */
static void compare_positions(compat *C, const idl_field *o, const idl_field *n, const char *owner)
{
    size_t nnew;
    by_key *v = index_fields(n, &nnew);
    for (size_t i = 1; o; o = o->next, i++) {
        const by_key *hit = find_key(v, nnew, (int64_t)o->tag);
        const idl_field *f = hit ? hit->item : NULL;
        size_t j = hit ? hit->pos : 0;
        if (f && i != j) {
            diag_error(C->diag, f->loc,
                       "parameter '%s' (tag %" PRIu64 ") of '%s' moved from position %zu to %zu; "
                       "PB peers pass arguments by position", f->name, f->tag, owner, i, j);
            C->breaks++;
            break;
        }
    }
    free(v);
}

/* A service declared to travel over PB: a @pb on it or on one of its
 * methods. Any service can be served over PB by name, but only these are
 * known to be, and only for them an added parameter is reported. */
static bool travels_over_pb(const idl_decl *svc)
{
    if (svc->annot)
        return true;
    for (const idl_method *m = svc->methods; m; m = m->next)
        if (m->annot)
            return true;
    return false;
}

/* Over PB a newer caller passes the new parameters as arguments an older
 * server does not take: a TypeError there, on an ember server as on a
 * Python one. */
static void compare_added_params(compat *C, const idl_field *o, const idl_field *n, const char *owner)
{
    size_t nold;
    by_key *v = index_fields(o, &nold);
    for (; n; n = n->next) {
        if (find_key(v, nold, (int64_t)n->tag))
            continue;
        diag_error(C->diag, n->loc,
                   "new parameter '%s' (tag %" PRIu64 ") of '%s': over PB a newer caller passes it as an "
                   "argument that older servers do not take (TypeError)", n->name, n->tag, owner);
        C->breaks++;
    }
    free(v);
}

/* An error in a raises list: its module ("" for the module's own) and name. */
typedef struct raise_key {
    const char *mod, *name;
} raise_key;

static int cmp_raise(const void *a, const void *b)
{
    const raise_key *x = a, *y = b;
    int c = strcmp(x->mod, y->mod);
    return c ? c : strcmp(x->name, y->name);
}

static void compare_method(compat *C, const idl_decl *svc, const idl_method *o, const idl_method *n, bool pb)
{
    char owner[256];
    snprintf(owner, sizeof owner, "%s.%s", svc->name, n->name);
    if (o->oneway != n->oneway) {
        diag_error(C->diag, n->loc, "method '%s' changed from %s to %s", owner,
                   o->oneway ? "oneway" : "two-way", n->oneway ? "oneway" : "two-way");
        C->breaks++;
    }
    idl_buf ba = { 0 }, bb = { 0 };
    /* A changed oneway-ness already says the reply no longer matches; the
     * parameters and raises are compared either way. */
    if (!o->oneway && !n->oneway) {
        bool same;
        char *so = "void", *sn = "void";
        if (o->ret && n->ret)
            same = same_type(C, o->ret, n->ret, &so, &sn, &ba, &bb);
        else {
            same = !o->ret && !n->ret;
            if (o->ret) {
                idl_spell_type_in(&ba, o->ret, C->old_mod);
                so = ba.p;
            }
            if (n->ret) {
                idl_spell_type_in(&bb, n->ret, C->new_mod);
                sn = bb.p;
            }
        }
        if (!same) {
            diag_error(C->diag, n->ret ? n->ret->loc : n->loc,
                       "return type of method '%s' changed from '%s' to '%s'", owner, so, sn);
            C->breaks++;
        }
    }
    compare_members(C, o->params, n->params, owner, false);
    compare_positions(C, o->params, n->params, owner);
    if (pb)
        compare_added_params(C, o->params, n->params, owner);
    if (!svc->pb_dispatch && !same_str(o->pb_name, n->pb_name)) {
        diag_error(C->diag, n->annot ? n->annot->value_loc : n->loc,
                   "PB name of method '%s' changed from '%s' to '%s'; Python callers use it",
                   owner, o->pb_name ? o->pb_name : "", n->pb_name ? n->pb_name : "");
        C->breaks++;
    }
    /* The old raises by (module, name), twice: with the module's own
     * errors under "" (a renamed module keeps them), and as named. */
    size_t nq = 0;
    for (const idl_name *q = o->raises; q; q = q->next)
        nq++;
    raise_key *own = idl_xcalloc(nq ? nq : 1, sizeof *own), *named = idl_xcalloc(nq ? nq : 1, sizeof *named);
    size_t k = 0;
    for (const idl_name *q = o->raises; q; q = q->next) {
        if (!q->decl)
            continue;
        own[k] = (raise_key){ q->decl->module == C->old_mod ? "" : q->decl->module->name, q->decl->name };
        named[k++] = (raise_key){ q->decl->module->name, q->decl->name };
    }
    qsort(own, k, sizeof *own, cmp_raise);
    qsort(named, k, sizeof *named, cmp_raise);
    for (const idl_name *r = n->raises; r; r = r->next) {
        bool known = false;
        if (r->decl) {
            raise_key a = { r->decl->module == C->new_mod ? "" : r->decl->module->name, r->decl->name };
            raise_key b = { r->decl->module->name, r->decl->name };
            known = bsearch(&a, own, k, sizeof *own, cmp_raise) || bsearch(&b, named, k, sizeof *named, cmp_raise);
        }
        if (!known) {
            /* spelled as types are: the module's own unqualified */
            const idl_module *em = r->decl ? r->decl->module : NULL;
            bool qualify = em && em != C->new_mod && em->name;
            diag_error(C->diag, r->loc, "method '%s' now raises '%s%s%s', which older callers do not know",
                       owner, qualify ? em->name : "", qualify ? "." : "", r->name);
            C->breaks++;
        }
    }
    free(own);
    free(named);
    idl_buf_free(&ba);
    idl_buf_free(&bb);
}

int compat_check(const idl_module *old_mod, const idl_module *new_mod, idl_diag *diag)
{
    compat C = { old_mod, new_mod, diag, 0, NULL, 0, NULL, NULL, 0 };
    index_module(&C, new_mod);
    if (old_mod->name && new_mod->name && strcmp(old_mod->name, new_mod->name) != 0) {
        diag_error(diag, new_mod->loc, "module renamed from '%s' to '%s': every qualified name changes",
                   old_mod->name, new_mod->name);
        C.breaks++;
    }
    for (const idl_decl *od = old_mod->decls; od; od = od->next) {
        const idl_decl *nd = find_decl(&C, od->name);
        if (nd && nd->kind != od->kind && od->kind != IDL_CONST) {
            /* Every use keeps its spelling, so the change is reported here,
             * once, and the two are not compared member by member. */
            diag_error(diag, nd->loc, "'%s' changed from %s to %s; every use of it means something else on the wire",
                       od->name, a_kind[od->kind], a_kind[nd->kind]);
            diag_note(diag, od->loc, "the old declaration is here");
            C.breaks++;
        }
        bool kind_changed = nd && nd->kind != od->kind;
        if (kind_changed)
            nd = NULL;
        if (od->kind == IDL_STRUCT || od->kind == IDL_ERROR) {
            if (nd)
                compare_members(&C, od->fields, nd->fields, nd->name, true);
        } else if (od->kind == IDL_ENUM) {
            if (nd)
                compare_enum(&C, od, nd);
        } else if (od->kind == IDL_SERVICE && !nd && !kind_changed) {
            /* Calls name the service by the hash of its name. */
            diag_error(diag, od->loc, "service '%s' was removed (or renamed: its id is its name), "
                       "so older callers' calls to it fail", od->name);
            C.breaks++;
        } else if (od->kind == IDL_SERVICE && nd) {
            if (!same_str(od->pb_dispatch, nd->pb_dispatch)) {
                diag_error(diag, nd->annot ? nd->annot->value_loc : nd->loc,
                           "PB dispatch of service '%s' changed from %s%s%s to %s%s%s",
                           nd->name, od->pb_dispatch ? "'" : "", od->pb_dispatch ? od->pb_dispatch : "by name",
                           od->pb_dispatch ? "'" : "", nd->pb_dispatch ? "'" : "",
                           nd->pb_dispatch ? nd->pb_dispatch : "by name", nd->pb_dispatch ? "'" : "");
                C.breaks++;
            }
            bool pb = travels_over_pb(od) || travels_over_pb(nd);
            for (const idl_method *om = od->methods; om; om = om->next) {
                const idl_decl *ns = nd;
                const idl_method *nm = method_by_id(&C, nd, om->id);
                if (nm && strcmp(nm->name, om->name) != 0) {
                    diag_error(diag, nm->id_loc, "method id %" PRIu64 " reused: it was '%s.%s', now it is '%s.%s'",
                               om->id, od->name, om->name, ns->name, nm->name);
                    diag_note(diag, om->loc, "the old method is here");
                    C.breaks++;
                } else if (nm) {
                    compare_method(&C, ns, om, nm, pb);
                } else {
                    /* Same service and name under another id? */
                    const idl_method *moved = method_by_name(&C, nd, om->name);
                    if (moved) {
                        diag_error(diag, moved->id_loc, "method '%s.%s' moved from id %" PRIu64 " to %" PRIu64,
                                   od->name, om->name, om->id, moved->id);
                    } else {
                        diag_error(diag, om->loc, "method '%s.%s' (id %" PRIu64 ") was removed",
                                   od->name, om->name, om->id);
                    }
                    C.breaks++;
                }
            }
        }
    }
    free(C.decls);
    free(C.methods);
    free(C.by_name);
    return C.breaks;
}
