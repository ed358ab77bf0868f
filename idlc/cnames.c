/*
 * cnames.c — rejects input whose generated C would declare one identifier
 * twice (see cnames.h). Every name is built by the same gen_util.c helpers
 * the generators call (gu_decl_cname, gu_method_prefix, gu_mangle,
 * gu_ctype, gu_decl_mangle, gu_ident) and the same GU_SFX_/GU_PFX_ fixed
 * parts (gen_util.h), so the list cannot drift from what is emitted.
 *
 * One hash table per scope (the module's file scope, then each struct's
 * members), so a module costs O(names).
 */
#include "cnames.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gen_util.h"
#include "sema.h"

/* One generated identifier and what it belongs to, for the messages:
 * "<role> of <what> '<who>'", or just "<what> '<who>'" when role is NULL
 * (the declaration's own type or value). */
typedef struct cn_entry {
    const char *name;
    uint64_t hash;      /* of name: probes and growth skip most strcmp/rehashing */
    const char *role;
    const char *what;
    const char *who;
    const void *owner;  /* same owner, same thing: not a clash */
    const idl_module *mod; /* whose generated code has the name */
    idl_loc loc;
    size_t same, tail;  /* the index of publics: index + 1 of the next entry
                           with this name, and (in the first) of the last */
} cn_entry;

typedef struct cn_table {
    cn_entry *v;
    size_t n, cap;
    size_t *slots;      /* index + 1 into v, 0 for empty; size a power of 2 */
    size_t nslots;
} cn_table;

typedef struct cn_ctx {
    idl_diag *diag;
    idl_arena *arena;   /* names and descriptions, freed at the end */
    gen_ctx g;
    strset reported;    /* owner pairs already reported: one error per pair */
    const char *word;   /* "name" (file scope) or "member" */
    gbuf b;             /* the name being built */
    /* Listing another module's public names beside this one's (an import,
     * or any module of the run, whose functions share the link): names
     * are written "module.Decl", members and static helpers are skipped. */
    bool publics;
    /* Not NULL while the publics of every module are listed into it: add()
     * keeps every owner of a name, chained, and reports nothing. */
    cn_table *index;
    /* The modules of the run by address (mod_index), and for each the
     * number of the last closure() that reached it and its place in it. */
    const idl_module **mods;
    size_t nmods;
    size_t *stamp, *pre, pass;
} cn_ctx;

/* Every container shares one owner: two list<u32> fields make one type. */
static const char container_owner;
static const char nothing_owner;

static size_t *find_slot(const cn_table *t, const char *name, uint64_t hash)
{
    size_t i = (size_t)hash & (t->nslots - 1);
    while (t->slots[i]) {
        const cn_entry *e = &t->v[t->slots[i] - 1];
        if (e->hash == hash && strcmp(e->name, name) == 0)
            break;
        i = (i + 1) & (t->nslots - 1);
    }
    return &t->slots[i];
}

static void table_grow(cn_table *t)
{
    size_t old = t->nslots;
    size_t *slots = t->slots;
    t->nslots = old ? old * 2 : 64;
    t->slots = idl_xcalloc(t->nslots, sizeof *t->slots);
    for (size_t i = 0; i < old; i++)
        if (slots[i])
            *find_slot(t, t->v[slots[i] - 1].name, t->v[slots[i] - 1].hash) = slots[i];
    free(slots);
}

static void table_free(cn_table *t)
{
    free(t->v);
    free(t->slots);
    memset(t, 0, sizeof *t);
}

static void describe(gbuf *out, const cn_entry *e)
{
    if (e->role)
        gb_printf(out, "the %s of ", e->role);
    gb_printf(out, "%s '%s'", e->what, e->who);
}

/* now, about to be added, meets old, which has its name: reported once
 * per pair of owners, unless it is no clash (one owner, one IDL name). */
static void clash(cn_ctx *c, const cn_entry *old, const cn_entry *now)
{
    bool same_role = old->role == now->role
                     || (old->role && now->role && strcmp(old->role, now->role) == 0);
    if (old->owner == now->owner && same_role)
        return;
    if (old->owner != now->owner && strcmp(old->who, now->who) == 0)
        return;                                 /* one IDL name twice: sema said it */
    if (c->publics && old->mod == now->mod)
        return;                                 /* the module's own pass said it */
    char key[2 * sizeof(void *) * 3 + 4];
    const void *lo = old->owner < now->owner ? old->owner : now->owner;
    snprintf(key, sizeof key, "%p %p", lo, lo == now->owner ? old->owner : now->owner);
    if (!strset_add(&c->reported, key))
        return;                                 /* one clash per pair is enough */
    gbuf a = {0}, o = {0};
    describe(&a, now);
    describe(&o, old);
    diag_error(c->diag, now->loc, "generated C %s '%s' of %s clashes with %s",
               c->word, now->name, gb_str(&a), gb_str(&o));
    diag_note(c->diag, old->loc, "%s '%s' is %s here", old->what, old->who,
              old->owner == &container_owner ? "first used" : "declared");
    gb_free(&a);
    gb_free(&o);
}

static size_t push_entry(cn_ctx *c, cn_table *t, const cn_entry *e)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->v = idl_xrealloc(t->v, t->cap * sizeof *t->v);
    }
    t->v[t->n] = *e;
    t->v[t->n].name = idl_strndup(c->arena, e->name, c->b.n);
    return ++t->n;
}

/* Adds c->b's text; reports it if another owner already has it. Into
 * c->index, every owner is kept and nothing is reported. */
static void add(cn_ctx *c, cn_table *t, const char *role, const char *what,
                const char *who, const void *owner, idl_loc loc)
{
    if ((t->n + 1) * 2 > t->nslots)             /* keep the load under 1/2 */
        table_grow(t);
    const char *name = gb_str(&c->b);
    uint64_t hash = idl_fnv1a64(name, c->b.n);
    size_t *slot = find_slot(t, name, hash);
    cn_entry now = { name, hash, role, what, who, owner, c->g.m, loc, 0, 0 };
    if (*slot && c->index == t) {
        size_t head = *slot - 1;
        const cn_entry *last = &t->v[t->v[head].tail - 1];
        bool same_role = last->role == role || (last->role && role && strcmp(last->role, role) == 0);
        if (last->owner == owner && last->mod == now.mod && same_role)
            return;                             /* a container used twice */
        size_t at = push_entry(c, t, &now);
        t->v[t->v[head].tail - 1].same = at;
        t->v[head].tail = at;
        return;
    }
    if (*slot) {
        clash(c, &t->v[*slot - 1], &now);
        return;
    }
    size_t at = push_entry(c, t, &now);
    t->v[at - 1].tail = at;
    *slot = at;
}

/* c->b = prefix + suffix, then add. */
static void add_sfx(cn_ctx *c, cn_table *t, const char *prefix, const char *sfx,
                    const char *role, const char *what, const char *who,
                    const void *owner, idl_loc loc)
{
    gb_clear(&c->b);
    gb_printf(&c->b, "%s%s", prefix, sfx);
    add(c, t, role, what, who, owner, loc);
}

static const char *kind_word(const idl_decl *d)
{
    switch (d->kind) {
    case IDL_CONST: return "constant";
    case IDL_ENUM: return "enum";
    case IDL_STRUCT: return "struct";
    case IDL_ERROR: return "error";
    default: return "service";
    }
}

/* "Pos" in its own module, "common.Pos" when imported or listed with
 * another module's names. */
static const char *decl_who(cn_ctx *c, const idl_decl *d)
{
    if ((d->module == c->g.m && !c->publics) || !d->module || !d->module->name)
        return d->name;
    gbuf b = {0};
    gb_printf(&b, "%s.%s", d->module->name, d->name);
    const char *s = idl_strdup(c->arena, gb_str(&b));
    gb_free(&b);
    return s;
}

static const char *sub_who(cn_ctx *c, const char *outer, const char *inner)
{
    gbuf b = {0};
    gb_printf(&b, "%s.%s", outer, inner);
    const char *s = idl_strdup(c->arena, gb_str(&b));
    gb_free(&b);
    return s;
}

/* ---- the static value helpers and container typedefs (gen_c.c's
 * enc_<T>/dec_<T>, gen_h.c's <mod>_list_.../<mod>_map_...) ---- */

static void walk_type(cn_ctx *c, cn_table *t, const idl_type *ty)
{
    gu_class k = gu_classify(ty);
    if (k == GU_PRIM)
        return;
    if (k == GU_MAP)
        walk_type(c, t, ty->key);
    if (k == GU_LIST || k == GU_MAP)
        walk_type(c, t, ty->elem);

    const char *what, *who;
    const void *owner;
    idl_loc loc = ty->loc;
    if (k == GU_LIST || k == GU_MAP) {
        idl_buf sp = {0};
        idl_spell_type_in(&sp, ty, c->g.m);
        if (c->publics)
            idl_buf_printf(&sp, " of module %s", c->g.mod);
        what = "type";
        who = idl_strdup(c->arena, sp.p ? sp.p : "");
        idl_buf_free(&sp);
        /* one typedef per module for each container type it uses */
        owner = c->publics ? (const void *)c->g.m : &container_owner;
        gb_clear(&c->b);
        gu_ctype(&c->b, &c->g, ty);
        add(c, t, NULL, what, who, owner, loc);
    } else {
        if (!ty->decl)
            return;
        what = kind_word(ty->decl);
        who = decl_who(c, ty->decl);
        owner = ty->decl;
        loc = ty->decl->loc;
    }
    if (c->publics)
        return;     /* the helpers below are static to the module's .c */
    gbuf m = {0};
    gu_mangle(&m, &c->g, ty);
    add_sfx(c, t, GU_PFX_ENC, gb_str(&m), "static encoder", what, who, owner, loc);
    add_sfx(c, t, GU_PFX_DEC, gb_str(&m), "static decoder", what, who, owner, loc);
    add_sfx(c, t, GU_PFX_TYPE, gb_str(&m), "static type table", what, who, owner, loc);
    if (k == GU_STRUCT)
        add_sfx(c, t, GU_PFX_FIELDS, gb_str(&m), "static field table", what, who, owner, loc);
    gb_free(&m);
}

/* ---- members of one generated struct ---- */

static void check_members(cn_ctx *c, const idl_field *fields, bool params)
{
    if (c->publics)
        return;     /* checked with the module's own names */
    cn_table t = {0};
    gbuf scratch = {0};
    const char *what = params ? "parameter" : "field";
    c->word = "member";
    for (const idl_field *f = fields; f; f = f->next) {
        gb_clear(&c->b);
        gb_puts(&c->b, gu_ident(f->name, params, &scratch));
        add(c, &t, NULL, what, f->name, f, f->loc);
        /* gen_h.c emit_member, gen_c.c emit_method: optionals other than
         * structs get a flag (in argument structs too) */
        if (f->optional && gu_classify(f->type) != GU_STRUCT)
            add_sfx(c, &t, GU_PFX_HAS, f->name, "presence flag", what, f->name, f, f->loc);
    }
    c->word = "name";
    gb_free(&scratch);
    table_free(&t);
}

/* ---- one module ---- */

static void check_method(cn_ctx *c, cn_table *t, const idl_decl *s, const idl_method *me)
{
    gbuf pre = {0};
    gu_method_prefix(&pre, &c->g, s, me);
    const char *p = gb_str(&pre);
    const char *who = sub_who(c, decl_who(c, s), me->name);
    const char *w = "method";
    idl_loc l = me->loc;

    add_sfx(c, t, p, "", "client stub", w, who, me, l);
    add_sfx(c, t, p, GU_SFX_ID, "ID macro", w, who, me, l);
    if (me->raises)
        add_sfx(c, t, GU_PFX_RAISES, p, "static raises table", w, who, me, l);
    if (me->params) {
        add_sfx(c, t, GU_PFX_PARAMS, p, "static parameter table", w, who, me, l);
        add_sfx(c, t, p, GU_SFX_ARGS, "argument struct", w, who, me, l);
        add_sfx(c, t, p, GU_SFX_ARGS GU_SFX_INIT, "argument init function", w, who, me, l);
        add_sfx(c, t, p, GU_SFX_ARGS GU_SFX_ENCODE, "argument encoder", w, who, me, l);
        add_sfx(c, t, p, GU_SFX_ARGS GU_SFX_DECODE, "argument decoder", w, who, me, l);
    }
    if (me->ret) {
        add_sfx(c, t, p, GU_SFX_RESULT, "result struct", w, who, me, l);
        add_sfx(c, t, p, GU_SFX_RESULT GU_SFX_INIT, "result init function", w, who, me, l);
        add_sfx(c, t, p, GU_SFX_RESULT GU_SFX_ENCODE, "result encoder", w, who, me, l);
        add_sfx(c, t, p, GU_SFX_RESULT GU_SFX_DECODE, "result decoder", w, who, me, l);
    }
    if (!me->oneway) {
        add_sfx(c, t, p, GU_SFX_CB, "callback type", w, who, me, l);
        add_sfx(c, t, p, GU_SFX_DONE, "completion function", w, who, me, l);
        add_sfx(c, t, p, GU_SFX_BROADCAST, "broadcast function", w, who, me, l);
        add_sfx(c, t, p, GU_SFX_REPLY, "reply helper", w, who, me, l);
        for (const idl_name *r = me->raises; r; r = r->next) {
            if (!r->decl)
                continue;
            gb_clear(&c->b);
            gb_printf(&c->b, "%s" GU_SFX_FAIL, p);
            gu_decl_mangle(&c->b, &c->g, r->decl);
            add(c, t, "fail helper", w, who, me, l);
        }
    }
    add_sfx(c, t, p, GU_SFX_DISPATCH, "dispatch function", w, who, me, l);
    gb_free(&pre);
    if (me->params)
        check_members(c, me->params, true);
}

static void check_decl(cn_ctx *c, cn_table *t, const idl_decl *d)
{
    gbuf cn = {0};
    gu_decl_cname(&cn, d);
    const char *n = gb_str(&cn);
    const char *w = kind_word(d);
    const char *who = decl_who(c, d);
    idl_loc l = d->loc;

    switch (d->kind) {
    case IDL_CONST:
        add_sfx(c, t, n, "", NULL, w, who, d, l);
        break;
    case IDL_ENUM:
        add_sfx(c, t, n, "", NULL, w, who, d, l);
        add_sfx(c, t, n, GU_SFX_NAME, "name function", w, who, d, l);
        for (const idl_enumerator *e = d->enumerators; e; e = e->next) {
            gb_clear(&c->b);
            gb_printf(&c->b, "%s_%s", n, e->name);
            add(c, t, NULL, "enumerator", sub_who(c, who, e->name), e, e->loc);
        }
        break;
    case IDL_STRUCT:
    case IDL_ERROR:
        add_sfx(c, t, n, "", NULL, w, who, d, l);
        add_sfx(c, t, n, GU_SFX_INIT, "init function", w, who, d, l);
        add_sfx(c, t, n, GU_SFX_ENCODE, "encoder", w, who, d, l);
        add_sfx(c, t, n, GU_SFX_DECODE, "decoder", w, who, d, l);
        if (d->kind == IDL_ERROR)
            add_sfx(c, t, n, GU_SFX_ID, "ID macro", w, who, d, l);
        check_members(c, d->fields, false);
        break;
    case IDL_SERVICE:
        add_sfx(c, t, n, GU_SFX_SERVICE, "descriptor", w, who, d, l);
        add_sfx(c, t, n, GU_SFX_SERVICE_ID, "service id macro", w, who, d, l);
        add_sfx(c, t, n, GU_SFX_HANDLERS, "handler table", w, who, d, l);
        add_sfx(c, t, n, GU_SFX_EXPORT, "export function", w, who, d, l);
        add_sfx(c, t, n, GU_SFX_LOCAL, "local-object function", w, who, d, l);
        if (d->methods)
            add_sfx(c, t, n, GU_SFX_METHODS, "method table", w, who, d, l);
        for (const idl_method *me = d->methods; me; me = me->next)
            check_method(c, t, d, me);
        break;
    }
    gb_free(&cn);
}

/* The types m's declarations use: container typedefs, and (for m's own
 * pass) the static helpers of every type. */
static void walk_types(cn_ctx *c, cn_table *t, const idl_module *m)
{
    for (const idl_decl *d = m->decls; d; d = d->next) {
        if (d->kind == IDL_STRUCT || d->kind == IDL_ERROR) {
            for (const idl_field *f = d->fields; f; f = f->next)
                walk_type(c, t, f->type);
        } else if (d->kind == IDL_SERVICE) {
            for (const idl_method *me = d->methods; me; me = me->next) {
                for (const idl_field *p = me->params; p; p = p->next)
                    walk_type(c, t, p->type);
                if (me->ret)
                    walk_type(c, t, me->ret);
            }
        }
    }
}

/* What m's header declares, added to a table of another scope. */
static void add_publics(cn_ctx *c, cn_table *t, const idl_module *m)
{
    gen_ctx_init(&c->g, m);
    c->publics = true;
    walk_types(c, t, m);
    for (const idl_decl *d = m->decls; d; d = d->next)
        check_decl(c, t, d);
    c->publics = false;
    gen_ctx_free(&c->g);
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)*(const idl_module *const *)a;
    uintptr_t y = (uintptr_t)*(const idl_module *const *)b;
    return (x > y) - (x < y);
}

static size_t mod_index(const cn_ctx *c, const idl_module *m)
{
    const idl_module **p = bsearch(&m, c->mods, c->nmods, sizeof *c->mods, cmp_ptr);
    return p ? (size_t)(p - c->mods) : SIZE_MAX;
}

/* Every module m's header includes, however deep, once each: marked with
 * a new c->pass and numbered depth-first, in the order their headers'
 * names come into m's .c. Iterative: a chain of thousands of imports is
 * as deep. */
static void closure(cn_ctx *c, const idl_module *m)
{
    c->pass++;
    const idl_import **stack = NULL;
    size_t depth = 0, cap = 0, order = 0;
    const idl_import *next = m->imports;
    for (;;) {
        if (!next) {
            if (depth == 0)
                break;
            next = stack[--depth];
            continue;
        }
        const idl_import *im = next;
        next = im->next;
        const idl_module *i = im->module;
        size_t k = i && i->name ? mod_index(c, i) : SIZE_MAX;
        if (k == SIZE_MAX || c->stamp[k] == c->pass)
            continue;
        c->stamp[k] = c->pass;
        c->pre[k] = order++;
        if (depth == cap) {
            cap = cap ? cap * 2 : 16;
            stack = idl_xrealloc(stack, cap * sizeof *stack);
        }
        stack[depth++] = next;
        next = i->imports;
    }
    free(stack);
}

typedef struct cn_hit {
    size_t own, other, order;
} cn_hit;

static int cmp_hit(const void *a, const void *b)
{
    const cn_hit *x = a, *y = b;
    if (x->order != y->order)
        return (x->order > y->order) - (x->order < y->order);
    return (x->other > y->other) - (x->other < y->other);
}

/* The names m's .c gets from the headers it includes (its imports,
 * however deep) against m's own (t): each of m's names is looked up among
 * the publics of every module (c->index), so a module costs O(its names),
 * not O(the names of all it imports). Clashes between two imports are the
 * run's, found when every module's publics are listed together. */
static void imported_clashes(cn_ctx *c, const cn_table *t, const idl_module *m)
{
    const cn_table *ix = c->index;
    cn_hit *hits = NULL;
    size_t n = 0, cap = 0;
    bool marked = false;
    for (size_t e = 0; e < t->n && ix->nslots; e++) {
        const cn_entry *own = &t->v[e];
        for (size_t x = *find_slot(ix, own->name, own->hash); x; x = ix->v[x - 1].same) {
            const idl_module *o = ix->v[x - 1].mod;
            if (o == m)
                continue;
            if (!marked) {
                closure(c, m);
                marked = true;
            }
            size_t k = mod_index(c, o);
            if (k == SIZE_MAX || c->stamp[k] != c->pass)
                continue;   /* not included: another .c */
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                hits = idl_xrealloc(hits, cap * sizeof *hits);
            }
            hits[n++] = (cn_hit){ e, x - 1, c->pre[k] };
        }
    }
    if (n)
        qsort(hits, n, sizeof *hits, cmp_hit);
    c->publics = true;
    for (size_t i = 0; i < n; i++)
        clash(c, &t->v[hits[i].own], &ix->v[hits[i].other]);
    c->publics = false;
    free(hits);
}

static void check_module(cn_ctx *c, const idl_module *m)
{
    cn_table t = {0};
    gen_ctx_init(&c->g, m);

    /* Names the generators make up come first, so that an error lands on
     * the user's declaration, the thing to rename. */
    if (c->g.need_empty) {
        gb_clear(&c->b);
        gb_puts(&c->b, GU_NOTHING);
        add(c, &t, "empty-payload encoder", "module", c->g.mod, &nothing_owner, m->loc);
    }
    walk_types(c, &t, m);
    for (size_t i = 0; i < c->g.nraised; i++) {
        const idl_decl *e = c->g.raised[i];
        gb_clear(&c->b);
        gb_puts(&c->b, GU_PFX_RAISE);
        gu_decl_mangle(&c->b, &c->g, e);
        add(c, &t, "static raise helper", "error", decl_who(c, e), e, e->loc);
    }
    for (const idl_decl *d = m->decls; d; d = d->next)
        check_decl(c, &t, d);
    gen_ctx_free(&c->g);

    /* NAME.c includes the headers of every import: their names share its
     * file scope (a module 'enc' declares enc_... as the static encoders
     * do; module 'a_b' struct S and module 'a' struct b_S are both a_b_S). */
    imported_clashes(c, &t, m);
    table_free(&t);
}

/* ---- module names: every generated name starts with the module's ---- */

typedef struct mod_ref {
    const idl_module *m;
    size_t order;       /* load order, so the first file loaded gets the note */
} mod_ref;

static int cmp_mod(const void *a, const void *b)
{
    const mod_ref *x = a, *y = b;
    int c = strcmp(x->m->name, y->m->name);
    return c ? c : (x->order > y->order) - (x->order < y->order);
}

/* Two files declaring one module (two inputs, or an input and another's
 * import) would both generate <mod>_... for everything. Sorted, so that
 * thousands of modules cost n log n. */
static void check_module_names(const idl_module *modules, idl_diag *diag)
{
    size_t n = 0;
    for (const idl_module *m = modules; m; m = m->next)
        n += m->name != NULL;
    mod_ref *v = idl_xcalloc(n ? n : 1, sizeof *v);
    n = 0;
    for (const idl_module *m = modules; m; m = m->next)
        if (m->name) {
            v[n] = (mod_ref){ m, n };
            n++;
        }
    qsort(v, n, sizeof *v, cmp_mod);
    for (size_t i = 1, first = 0; i < n; i++) {
        if (strcmp(v[i].m->name, v[first].m->name) != 0) {
            first = i;
            continue;
        }
        /* An import of the importer's name, or two imports of one module
         * name, were reported at the import: once is enough. */
        if (v[i].m->name_clash_reported && v[first].m->name_clash_reported)
            continue;
        diag_error(diag, v[i].m->loc, "module '%s' is also declared by '%s'; their generated C names would clash",
                   v[i].m->name, v[first].m->path);
        diag_note(diag, v[first].m->loc, "module '%s' is declared here", v[first].m->name);
    }
    free(v);
}

/* A type name of the headers the generated code includes: a generated
 * type or function of that name would redeclare it (module 'uint32',
 * struct 't' is 'uint32_t'). */
static bool std_type(const char *name)
{
    static const char *const types[] = {
        "size_t", "ptrdiff_t", "wchar_t", "max_align_t", "va_list",
        "intptr_t", "uintptr_t", "intmax_t", "uintmax_t",
    };
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (strcmp(name, types[i]) == 0)
            return true;
    const char *p = name + (strncmp(name, "uint", 4) == 0 ? 4 : strncmp(name, "int", 3) == 0 ? 3 : 0);
    if (p == name)
        return false;
    if (strncmp(p, "_least", 6) == 0)
        p += 6;
    else if (strncmp(p, "_fast", 5) == 0)
        p += 5;
    return (strcmp(p, "8_t") == 0 || strcmp(p, "16_t") == 0 || strcmp(p, "32_t") == 0 ||
            strcmp(p, "64_t") == 0);
}

/* The prefix MOD_ must leave the runtime's names (ember_..., EMBER_...)
 * and the implementation's (_...) alone; each generated type must not be
 * one of the standard headers'. */
static void check_reserved(const idl_module *m, idl_diag *diag)
{
    const char *n = m->name;
    if (strcmp(n, "ember") == 0 || strcmp(n, "EMBER") == 0 || strncmp(n, "ember_", 6) == 0 ||
        strncmp(n, "EMBER_", 6) == 0)
        diag_error(diag, m->loc, "module name '%s' gives every generated C name the prefix '%s_', "
                   "which ember's own names use; rename the module", n, n);
    else if (n[0] == '_')
        diag_error(diag, m->loc, "module name '%s' gives every generated C name the prefix '%s_'; "
                   "names starting with '_' are reserved to the C implementation", n, n);
    gbuf b = {0};
    for (const idl_decl *d = m->decls; d; d = d->next) {
        if (!d->name)
            continue;
        gb_clear(&b);
        gb_printf(&b, "%s_%s", n, d->name);
        if (std_type(gb_str(&b)))
            diag_error(diag, d->loc, "generated C name '%s' of %s '%s' is a type of <stdint.h>, "
                       "<stddef.h> or <stdarg.h>; rename it", gb_str(&b), kind_word(d), d->name);
    }
    gb_free(&b);
}

int cnames_check(const idl_module *modules, idl_diag *diag)
{
    int before = diag_errors(diag);
    check_module_names(modules, diag);
    for (const idl_module *m = modules; m; m = m->next)
        if (m->name)
            check_reserved(m, diag);
    cn_ctx c = { .diag = diag, .arena = idl_arena_new(), .word = "name" };
    for (const idl_module *m = modules; m; m = m->next)
        c.nmods++;
    c.mods = idl_xcalloc(c.nmods ? c.nmods : 1, sizeof *c.mods);
    c.stamp = idl_xcalloc(c.nmods ? c.nmods : 1, sizeof *c.stamp);
    c.pre = idl_xcalloc(c.nmods ? c.nmods : 1, sizeof *c.pre);
    c.nmods = 0;
    for (const idl_module *m = modules; m; m = m->next)
        c.mods[c.nmods++] = m;
    qsort(c.mods, c.nmods, sizeof *c.mods, cmp_ptr);
    /* What every module's header declares, once, for the modules that
     * include it. */
    cn_table index = {0};
    c.index = &index;
    for (const idl_module *m = modules; m; m = m->next)
        if (m->name)
            add_publics(&c, &index, m);
    c.index = NULL;
    for (const idl_module *m = modules; m; m = m->next)
        if (m->name) {
            c.index = &index;   /* read, not added to */
            check_module(&c, m);
        }
    c.index = NULL;
    table_free(&index);
    free(c.mods);
    free(c.stamp);
    free(c.pre);
    /* Modules compiled together are linked together: their functions
     * share one namespace whether or not one imports the other. */
    cn_table all = {0};
    for (const idl_module *m = modules; m; m = m->next)
        if (m->name)
            add_publics(&c, &all, m);
    table_free(&all);
    strset_free(&c.reported);
    gb_free(&c.b);
    idl_arena_free(c.arena);
    return diag_errors(diag) - before;
}
