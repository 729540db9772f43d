/* SPDX-License-Identifier: Apache-2.0 */
/* Line states in SQLite: the current table and the history of changes (see lines.h). */
#include "lines.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "seats.h"
#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"

enum { S_GET, S_UPSERT, S_TOUCH, S_HIST, S_PRUNE, S_N };

static const char *const sql[S_N] = {
    [S_GET] = "SELECT state, updated_ms FROM lines WHERE agent = ?1 AND object = ?2",
    [S_UPSERT] = "INSERT INTO lines (agent, host, object, grp, state, raw, info, since_ms, "
                 "updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8) "
                 "ON CONFLICT (agent, object) DO UPDATE SET host = ?2, grp = ?4, state = ?5, "
                 "raw = ?6, info = ?7, since_ms = ?8, updated_ms = ?8",
    [S_TOUCH] = "UPDATE lines SET host = ?2, grp = ?4, raw = ?6, info = ?7, updated_ms = ?8 "
                "WHERE agent = ?1 AND object = ?3",
    [S_HIST] = "INSERT INTO history (agent, host, object, grp, state, raw, info, at_ms) "
               "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [S_PRUNE] = "DELETE FROM history WHERE at_ms < ?1",
};

static const char *const schema =
    "PRAGMA journal_mode = WAL;"
    "PRAGMA synchronous = NORMAL;"
    "CREATE TABLE IF NOT EXISTS lines ("
    "  agent TEXT NOT NULL, host TEXT NOT NULL, object TEXT NOT NULL, grp TEXT NOT NULL,"
    "  state TEXT NOT NULL, raw TEXT NOT NULL, info TEXT NOT NULL,"
    "  since_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (agent, object));"
    "CREATE INDEX IF NOT EXISTS lines_host ON lines (host, grp, object);"
    "CREATE TABLE IF NOT EXISTS history ("
    "  id INTEGER PRIMARY KEY, agent TEXT NOT NULL, host TEXT NOT NULL, object TEXT NOT NULL,"
    "  grp TEXT NOT NULL, state TEXT NOT NULL, raw TEXT NOT NULL, info TEXT NOT NULL,"
    "  at_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS history_line ON history (host, object, at_ms);"
    "CREATE INDEX IF NOT EXISTS history_at ON history (at_ms);";

struct coll_lines {
    sqlite3 *db;
    sqlite3_stmt *st[S_N];
    struct coll_seats *seats; /* seat sessions, in the same file (seats.h) */
};

int coll_lines_open(const char *path, struct coll_lines **out)
{
    struct coll_lines *l = wp_xcalloc(1, sizeof(*l));
    int rc = 0;

    *out = NULL;
    if (sqlite3_open_v2(path, &l->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
            SQLITE_OK ||
        sqlite3_busy_timeout(l->db, 5000) != SQLITE_OK ||
        sqlite3_exec(l->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
        WP_ERROR("lines", "%s: %s", path, l->db != NULL ? sqlite3_errmsg(l->db) : "no memory");
        rc = WP_EDB;
        goto out;
    }
    for (int i = 0; i < S_N; i++) {
        if (sqlite3_prepare_v3(l->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &l->st[i], NULL) !=
            SQLITE_OK) {
            WP_ERROR("lines", "%s: %s", path, sqlite3_errmsg(l->db));
            rc = WP_EDB;
            goto out;
        }
    }
    rc = coll_seats_attach(l->db, &l->seats);
    if (rc < 0) {
        goto out;
    }
    *out = l;
    l = NULL;
out:
    coll_lines_close(l);
    return rc;
}

void coll_lines_close(struct coll_lines *l)
{
    if (l == NULL) {
        return;
    }
    coll_seats_free(l->seats);
    for (int i = 0; i < S_N; i++) {
        sqlite3_finalize(l->st[i]);
    }
    sqlite3_close(l->db);
    free(l);
}

const char *coll_lines_errmsg(struct coll_lines *l)
{
    return sqlite3_errmsg(l->db);
}

int coll_lines_begin(struct coll_lines *l)
{
    return sqlite3_exec(l->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK ? 0 : WP_EDB;
}

int coll_lines_commit(struct coll_lines *l)
{
    if (sqlite3_exec(l->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
        return WP_EDB;
    }
    return 0;
}

static void bind_line(sqlite3_stmt *s, const char *agent, const char *host, const char *object,
                      const char *group, const char *state, const char *raw, const char *info,
                      int64_t ts_ms)
{
    sqlite3_bind_text(s, 1, agent, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, host, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, object, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, group, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, state, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, raw != NULL ? raw : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 7, info != NULL ? info : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 8, ts_ms);
}

static int step_done(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? 0 : WP_EDB;
}

int coll_lines_put(struct coll_lines *l, const char *agent, const char *host,
                   const char *object, const char *group, const char *state, const char *raw,
                   const char *info, int64_t ts_ms)
{
    sqlite3_stmt *g = l->st[S_GET];
    int changed = 1;

    sqlite3_bind_text(g, 1, agent, -1, SQLITE_STATIC);
    sqlite3_bind_text(g, 2, object, -1, SQLITE_STATIC);
    int rc = sqlite3_step(g);
    if (rc == SQLITE_ROW) {
        const char *cur = (const char *)sqlite3_column_text(g, 0);
        int64_t updated = sqlite3_column_int64(g, 1);
        if (ts_ms < updated) {
            sqlite3_reset(g);
            return 0; /* older than what we have: a replay */
        }
        changed = cur == NULL || strcmp(cur, state) != 0;
    } else if (rc != SQLITE_DONE) {
        sqlite3_reset(g);
        return WP_EDB;
    }
    sqlite3_reset(g);
    sqlite3_clear_bindings(g);
    sqlite3_stmt *w = l->st[changed ? S_UPSERT : S_TOUCH];
    bind_line(w, agent, host, object, group, state, raw, info, ts_ms);
    if (step_done(w) < 0) {
        return WP_EDB;
    }
    if (changed) {
        bind_line(l->st[S_HIST], agent, host, object, group, state, raw, info, ts_ms);
        if (step_done(l->st[S_HIST]) < 0) {
            return WP_EDB;
        }
    }
    return changed;
}

int coll_lines_prune(struct coll_lines *l, int64_t before_ms)
{
    sqlite3_bind_int64(l->st[S_PRUNE], 1, before_ms);
    if (step_done(l->st[S_PRUNE]) < 0) {
        return WP_EDB;
    }
    int n = sqlite3_changes(l->db);
    int ns = coll_seats_prune(l->seats, before_ms);
    return ns < 0 ? ns : n + ns;
}

struct coll_seats *coll_lines_seats(struct coll_lines *l)
{
    return l->seats;
}

static int each_rows(sqlite3_stmt *s, int with_since,
                     int (*fn)(void *arg, const struct coll_line *line), void *arg)
{
    int rc = 0;

    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct coll_line ln = {
            .agent = (const char *)sqlite3_column_text(s, 0),
            .host = (const char *)sqlite3_column_text(s, 1),
            .object = (const char *)sqlite3_column_text(s, 2),
            .group = (const char *)sqlite3_column_text(s, 3),
            .state = (const char *)sqlite3_column_text(s, 4),
            .raw = (const char *)sqlite3_column_text(s, 5),
            .info = (const char *)sqlite3_column_text(s, 6),
            .since_ms = sqlite3_column_int64(s, 7),
            .updated_ms = with_since ? sqlite3_column_int64(s, 8) : sqlite3_column_int64(s, 7),
        };
        if (fn(arg, &ln) != 0) {
            break;
        }
    }
    int ok = rc == SQLITE_ROW || rc == SQLITE_DONE;
    sqlite3_finalize(s);
    return ok ? 0 : WP_EDB;
}

int coll_lines_each(struct coll_lines *l, const char *host, const char *group, const char *state,
                    int (*fn)(void *arg, const struct coll_line *line), void *arg)
{
    sqlite3_stmt *s = NULL;

    if (sqlite3_prepare_v2(l->db,
                           "SELECT agent, host, object, grp, state, raw, info, since_ms, "
                           "updated_ms FROM lines WHERE (?1 IS NULL OR host = ?1 OR agent = ?1) AND "
                           "(?2 IS NULL OR grp = ?2) AND (?3 IS NULL OR state = ?3) "
                           "ORDER BY host, grp, object",
                           -1, &s, NULL) != SQLITE_OK) {
        return WP_EDB;
    }
    sqlite3_bind_text(s, 1, host, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, group, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, state, -1, SQLITE_STATIC);
    return each_rows(s, 1, fn, arg);
}

int coll_lines_history(struct coll_lines *l, const char *host, const char *object,
                       int64_t since_ms, int (*fn)(void *arg, const struct coll_line *line),
                       void *arg)
{
    sqlite3_stmt *s = NULL;

    if (sqlite3_prepare_v2(l->db,
                           "SELECT agent, host, object, grp, state, raw, info, at_ms "
                           "FROM history WHERE (?1 IS NULL OR host = ?1 OR agent = ?1) AND "
                           "(?2 IS NULL OR object = ?2) AND at_ms >= ?3 ORDER BY at_ms, id",
                           -1, &s, NULL) != SQLITE_OK) {
        return WP_EDB;
    }
    sqlite3_bind_text(s, 1, host, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, object, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, since_ms);
    return each_rows(s, 0, fn, arg);
}
