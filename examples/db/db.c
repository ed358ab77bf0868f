/*
 * db — player persistence on SQLite. A root: the gate and the game nodes
 * connect to it and call its Db service (idl/db.idl).
 *
 *   db [NAME] CONFIG.json      (the database file: the server's or the
 *                               config's "db", default var/ember.sqlite)
 *   db --dump FILE.sqlite      print every player as NAME|X|Y, by name (what
 *                               the sqlite3 shell prints for the same query)
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "db.h"
#include "server.h"

typedef struct dbsrv {
    srv s;
    sqlite3 *db;
    sqlite3_stmt *find, *insert, *count_login, *get_pos, *save_pos, *logout;
} dbsrv;

static int mkdirs(const char *path)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(buf, 0755) && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return 0;
}

static int prepare(dbsrv *d, sqlite3_stmt **st, const char *sql)
{
    if (sqlite3_prepare_v2(d->db, sql, -1, st, NULL) != SQLITE_OK) {
        srv_log(&d->s, "sqlite: %s: %s", sql, sqlite3_errmsg(d->db));
        return -1;
    }
    return 0;
}

static int open_db(dbsrv *d, const char *path)
{
    if (mkdirs(path) || sqlite3_open(path, &d->db) != SQLITE_OK) {
        srv_log(&d->s, "cannot open %s: %s", path, d->db ? sqlite3_errmsg(d->db) : "");
        return -1;
    }
    sqlite3_busy_timeout(d->db, 2000);
    const char *schema =
        "PRAGMA journal_mode=WAL;"
        "PRAGMA synchronous=NORMAL;"
        "CREATE TABLE IF NOT EXISTS players ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " name TEXT NOT NULL UNIQUE,"
        " x INTEGER NOT NULL DEFAULT 0,"
        " y INTEGER NOT NULL DEFAULT 0,"
        " logins INTEGER NOT NULL DEFAULT 0,"
        " created_at TEXT NOT NULL DEFAULT (datetime('now')),"
        " last_login TEXT,"
        " last_logout TEXT);";
    char *err = NULL;
    if (sqlite3_exec(d->db, schema, NULL, NULL, &err) != SQLITE_OK) {
        srv_log(&d->s, "sqlite schema: %s", err);
        sqlite3_free(err);
        return -1;
    }
    if (prepare(d, &d->find, "SELECT id, x, y, logins FROM players WHERE name = ?") ||
        prepare(d, &d->insert, "INSERT INTO players (name) VALUES (?)") ||
        prepare(d, &d->count_login,
                "UPDATE players SET logins = logins + 1, last_login = datetime('now') WHERE id = ?") ||
        prepare(d, &d->get_pos, "SELECT x, y FROM players WHERE id = ?") ||
        prepare(d, &d->save_pos, "UPDATE players SET x = ?, y = ? WHERE id = ?") ||
        prepare(d, &d->logout, "UPDATE players SET last_logout = datetime('now') WHERE id = ?"))
        return -1;
    srv_log(&d->s, "database %s", path);
    return 0;
}

static int step_done(dbsrv *d, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        srv_log(&d->s, "sqlite: %s", sqlite3_errmsg(d->db));
        return -1;
    }
    return 0;
}

static void remote_login(ember_call *call, const char *name, void *ud)
{
    dbsrv *d = ud;
    db_Player p;
    memset(&p, 0, sizeof p);
    if (!name || !*name) {
        ember_call_fail(call, "empty player name");
        return;
    }
    sqlite3_bind_text(d->find, 1, name, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(d->find) == SQLITE_ROW) {
        p.id = (uint64_t)sqlite3_column_int64(d->find, 0);
        p.pos.x = sqlite3_column_int(d->find, 1);
        p.pos.y = sqlite3_column_int(d->find, 2);
        p.logins = (uint32_t)sqlite3_column_int(d->find, 3);
    } else {
        p.created = true;
    }
    sqlite3_reset(d->find);
    if (p.created) {
        sqlite3_bind_text(d->insert, 1, name, -1, SQLITE_TRANSIENT);
        if (step_done(d, d->insert)) {
            ember_call_fail(call, "cannot create player %s", name);
            return;
        }
        p.id = (uint64_t)sqlite3_last_insert_rowid(d->db);
    }
    sqlite3_bind_int64(d->count_login, 1, (sqlite3_int64)p.id);
    step_done(d, d->count_login);
    p.logins++;
    p.name = name;
    db_Db_login_reply(call, &p);
}

/* The stored position of player; -1 when there is none. */
static int read_pos(dbsrv *d, uint64_t player, client_Pos *pos)
{
    sqlite3_bind_int64(d->get_pos, 1, (sqlite3_int64)player);
    int rc = sqlite3_step(d->get_pos);
    if (rc == SQLITE_ROW) {
        pos->x = sqlite3_column_int(d->get_pos, 0);
        pos->y = sqlite3_column_int(d->get_pos, 1);
    }
    sqlite3_reset(d->get_pos);
    return rc == SQLITE_ROW ? 0 : -1;
}

static void remote_position(ember_call *call, uint64_t player, void *ud)
{
    client_Pos pos = {0, 0};
    if (read_pos(ud, player, &pos))
        ember_call_fail(call, "no player %llu", (unsigned long long)player);
    else
        db_Db_position_reply(call, &pos);
}

static int write_pos(dbsrv *d, uint64_t player, const client_Pos *pos)
{
    sqlite3_bind_int(d->save_pos, 1, pos->x);
    sqlite3_bind_int(d->save_pos, 2, pos->y);
    sqlite3_bind_int64(d->save_pos, 3, (sqlite3_int64)player);
    return step_done(d, d->save_pos);
}

static void remote_save(ember_call *call, uint64_t player, const client_Pos *pos, void *ud)
{
    if (write_pos(ud, player, pos))
        ember_call_fail(call, "cannot save player %llu", (unsigned long long)player);
    else
        db_Db_save_reply(call);
}

/* Stores at only when given (NULL: absent): the game node saved every move,
 * so the stored position is newer than anything the gate could guess. */
static void remote_logout(ember_call *call, uint64_t player, const client_Pos *at, void *ud)
{
    dbsrv *d = ud;
    client_Pos pos = {0, 0};
    sqlite3_bind_int64(d->logout, 1, (sqlite3_int64)player);
    if ((at && write_pos(d, player, at)) || step_done(d, d->logout) ||
        read_pos(d, player, &pos))
        ember_call_fail(call, "cannot log player %llu out", (unsigned long long)player);
    else
        db_Db_logout_reply(call, &pos);
}

static const db_Db_handlers handlers = {
    .remote_login = remote_login,
    .remote_position = remote_position,
    .remote_save = remote_save,
    .remote_logout = remote_logout,
};

/* db --dump: the players' positions, read only, for tests without sqlite3. */
static int dump(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT name, x, y FROM players ORDER BY name", -1, &st, NULL) !=
            SQLITE_OK) {
        fprintf(stderr, "db: %s: %s\n", path, db ? sqlite3_errmsg(db) : "cannot open");
        sqlite3_close(db);
        return 1;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        printf("%s|%d|%d\n", (const char *)sqlite3_column_text(st, 0), sqlite3_column_int(st, 1),
               sqlite3_column_int(st, 2));
    if (rc != SQLITE_DONE)
        fprintf(stderr, "db: %s: %s\n", path, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc == SQLITE_DONE ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--dump") == 0)
        return dump(argv[2]);
    dbsrv d;
    memset(&d, 0, sizeof d);
    if (srv_init(&d.s, "db", argc, argv))
        return 1;
    if (open_db(&d, d.s.me->db))
        return 1;
    ember_root *root = srv_root(&d.s);
    if (!root || db_Db_export(ember_root_exports(root), &handlers, &d))
        return 1;
    int rc = srv_run(&d.s);
    sqlite3_stmt *all[] = {d.find, d.insert, d.count_login, d.get_pos, d.save_pos, d.logout};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        sqlite3_finalize(all[i]);
    sqlite3_close(d.db);
    return rc;
}
