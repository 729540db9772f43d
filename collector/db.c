/* SPDX-License-Identifier: Apache-2.0 */
/* SQLite store for the agents registry and series dictionaries (WAL, prepared statements). */
#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"

struct coll_db {
    sqlite3 *h;
    sqlite3_stmt *agent_put;
    sqlite3_stmt *series_put;
};

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "PRAGMA foreign_keys=ON;"
    "CREATE TABLE IF NOT EXISTS agents("
    " id TEXT PRIMARY KEY, host TEXT NOT NULL, version TEXT, fingerprint TEXT, addr TEXT,"
    " first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,"
    " connected INTEGER NOT NULL DEFAULT 0, committed_seq INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS agents_host ON agents(host);"
    "CREATE TABLE IF NOT EXISTS series("
    " agent TEXT NOT NULL, id INTEGER NOT NULL, grp TEXT NOT NULL, inst TEXT NOT NULL,"
    " fields TEXT NOT NULL, type INTEGER NOT NULL, step INTEGER NOT NULL, file TEXT NOT NULL,"
    " PRIMARY KEY(agent, id));"
    "CREATE INDEX IF NOT EXISTS series_grp ON series(agent, grp, inst);";

static int prep(struct coll_db *db, const char *sql, sqlite3_stmt **st)
{
    if (sqlite3_prepare_v3(db->h, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK) {
        WP_ERROR("db", "prepare failed: %s", sqlite3_errmsg(db->h));
        return WP_EDB;
    }
    return 0;
}

int coll_db_open(const char *path, struct coll_db **out)
{
    int rc = 0;
    char *msg = NULL;
    struct coll_db *db = wp_xcalloc(1, sizeof(*db));

    *out = NULL;
    if (sqlite3_open_v2(path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        WP_ERROR("db", "cannot open %s: %s", path, db->h ? sqlite3_errmsg(db->h) : "no memory");
        rc = WP_EDB;
        goto out;
    }
    sqlite3_busy_timeout(db->h, 5000);
    if (sqlite3_exec(db->h, schema, NULL, NULL, &msg) != SQLITE_OK) {
        WP_ERROR("db", "schema of %s: %s", path, msg ? msg : "?");
        sqlite3_free(msg);
        rc = WP_EDB;
        goto out;
    }
    /* registries made before labels were kept gain the column (an error only when it exists) */
    sqlite3_exec(db->h, "ALTER TABLE agents ADD COLUMN labels TEXT NOT NULL DEFAULT ''", NULL, NULL,
                 NULL);
    if ((rc = prep(db,
                   "INSERT INTO agents(id, host, version, fingerprint, addr, first_seen,"
                   " last_seen, connected, committed_seq, labels)"
                   " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)"
                   " ON CONFLICT(id) DO UPDATE SET host=?2, version=?3, fingerprint=?4,"
                   " addr=?5, last_seen=?7, connected=?8,"
                   " committed_seq=max(committed_seq, ?9), labels=?10",
                   &db->agent_put)) < 0 ||
        (rc = prep(db,
                   "INSERT OR REPLACE INTO series(agent, id, grp, inst, fields, type, step, file)"
                   " VALUES(?1,?2,?3,?4,?5,?6,?7,?8)",
                   &db->series_put)) < 0) {
        goto out;
    }
    *out = db;
    db = NULL;
out:
    coll_db_close(db);
    return rc;
}

void coll_db_close(struct coll_db *db)
{
    if (db == NULL) {
        return;
    }
    sqlite3_finalize(db->agent_put);
    sqlite3_finalize(db->series_put);
    sqlite3_close(db->h);
    free(db);
}

const char *coll_db_errmsg(struct coll_db *db)
{
    return sqlite3_errmsg(db->h);
}

static int exec(struct coll_db *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
        WP_ERROR("db", "%s: %s", sql, msg ? msg : "?");
        sqlite3_free(msg);
        return WP_EDB;
    }
    return 0;
}

int coll_db_begin(struct coll_db *db)
{
    return exec(db, "BEGIN");
}

int coll_db_commit(struct coll_db *db)
{
    return exec(db, "COMMIT");
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s == NULL) {
        sqlite3_bind_null(st, i);
    } else {
        sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    }
}

static int step_done(struct coll_db *db, sqlite3_stmt *st)
{
    int r = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (r != SQLITE_DONE) {
        WP_ERROR("db", "write failed: %s", sqlite3_errmsg(db->h));
        return WP_EDB;
    }
    return 0;
}

int coll_db_agent_put(struct coll_db *db, const struct coll_db_agent *a)
{
    sqlite3_stmt *st = db->agent_put;

    bind_text(st, 1, a->id);
    bind_text(st, 2, a->host ? a->host : a->id);
    bind_text(st, 3, a->version);
    bind_text(st, 4, a->fingerprint);
    bind_text(st, 5, a->addr);
    sqlite3_bind_int64(st, 6, a->first_seen);
    sqlite3_bind_int64(st, 7, a->last_seen);
    sqlite3_bind_int(st, 8, a->connected);
    sqlite3_bind_int64(st, 9, (sqlite3_int64)a->committed_seq);
    bind_text(st, 10, a->labels != NULL ? a->labels : "");
    return step_done(db, st);
}

int coll_db_agent_each(struct coll_db *db, int (*fn)(void *arg, const struct coll_db_agent *a),
                       void *arg)
{
    sqlite3_stmt *st = NULL;
    int rc = 0;

    if (sqlite3_prepare_v2(db->h,
                           "SELECT id, host, version, fingerprint, addr, first_seen, last_seen,"
                           " connected, committed_seq, labels FROM agents ORDER BY id",
                           -1, &st, NULL) != SQLITE_OK) {
        return WP_EDB;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct coll_db_agent a = {
            .id = (const char *)sqlite3_column_text(st, 0),
            .host = (const char *)sqlite3_column_text(st, 1),
            .version = (const char *)sqlite3_column_text(st, 2),
            .fingerprint = (const char *)sqlite3_column_text(st, 3),
            .addr = (const char *)sqlite3_column_text(st, 4),
            .first_seen = sqlite3_column_int64(st, 5),
            .last_seen = sqlite3_column_int64(st, 6),
            .connected = sqlite3_column_int(st, 7),
            .committed_seq = (uint64_t)sqlite3_column_int64(st, 8),
            .labels = (const char *)sqlite3_column_text(st, 9),
        };
        if ((rc = fn(arg, &a)) != 0) {
            break;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

int coll_db_agents_disconnected(struct coll_db *db)
{
    return exec(db, "UPDATE agents SET connected=0 WHERE connected<>0");
}

int coll_db_series_put(struct coll_db *db, const char *agent, const struct wp_series_def *d,
                       const char *file)
{
    sqlite3_stmt *st = db->series_put;
    char fields[WP_SERIES_MAX_FIELDS * (WP_NAME_MAX + 1) + 1];
    size_t n = 0;

    for (uint32_t i = 0; i < d->nfields; i++) {
        if (i > 0) {
            fields[n++] = ' ';
        }
        memcpy(fields + n, d->fields[i].p, d->fields[i].len);
        n += d->fields[i].len;
    }
    bind_text(st, 1, agent);
    sqlite3_bind_int64(st, 2, d->id);
    sqlite3_bind_text(st, 3, d->group.p, (int)d->group.len, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, d->inst.len ? d->inst.p : "", (int)d->inst.len, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, fields, (int)n, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 6, d->type);
    sqlite3_bind_int64(st, 7, d->step_s);
    bind_text(st, 8, file);
    return step_done(db, st);
}

static int series_rows(sqlite3_stmt *st,
                       int (*fn)(void *arg, const char *agent, const struct wp_series_def *d,
                                 const char *file),
                       void *arg)
{
    int rc = 0;

    while (sqlite3_step(st) == SQLITE_ROW) {
        struct wp_series_def d;
        const char *fields = (const char *)sqlite3_column_text(st, 4);
        const char *p = fields;

        memset(&d, 0, sizeof(d));
        d.id = (uint32_t)sqlite3_column_int64(st, 1);
        d.group.p = (const char *)sqlite3_column_text(st, 2);
        d.group.len = (uint32_t)sqlite3_column_bytes(st, 2);
        d.inst.p = (const char *)sqlite3_column_text(st, 3);
        d.inst.len = (uint32_t)sqlite3_column_bytes(st, 3);
        d.type = (uint8_t)sqlite3_column_int(st, 5);
        d.step_s = (uint32_t)sqlite3_column_int64(st, 6);
        while (p != NULL && *p != '\0' && d.nfields < WP_SERIES_MAX_FIELDS) {
            const char *sp = strchr(p, ' ');
            size_t len = sp ? (size_t)(sp - p) : strlen(p);
            d.fields[d.nfields].p = p;
            d.fields[d.nfields].len = (uint32_t)len;
            d.nfields++;
            p = sp ? sp + 1 : NULL;
        }
        if ((rc = fn(arg, (const char *)sqlite3_column_text(st, 0), &d,
                     (const char *)sqlite3_column_text(st, 7))) != 0) {
            break;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

#define SERIES_COLS "SELECT agent, id, grp, inst, fields, type, step, file FROM series"

int coll_db_series_each(struct coll_db *db,
                        int (*fn)(void *arg, const char *agent, const struct wp_series_def *d,
                                  const char *file),
                        void *arg)
{
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(db->h, SERIES_COLS " ORDER BY agent, id", -1, &st, NULL) !=
        SQLITE_OK) {
        return WP_EDB;
    }
    return series_rows(st, fn, arg);
}

int coll_db_series_of(struct coll_db *db, const char *agent, const char *grp, const char *inst,
                      int (*fn)(void *arg, const char *agent, const struct wp_series_def *d,
                                const char *file),
                      void *arg)
{
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(db->h,
                           SERIES_COLS " WHERE agent=?1 AND grp=?2 AND (?3 IS NULL OR inst=?3)"
                                       " ORDER BY inst",
                           -1, &st, NULL) != SQLITE_OK) {
        return WP_EDB;
    }
    sqlite3_bind_text(st, 1, agent, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, grp, -1, SQLITE_TRANSIENT);
    bind_text(st, 3, inst);
    return series_rows(st, fn, arg);
}

int coll_db_find_agent(struct coll_db *db, const char *host, char *buf, size_t len)
{
    sqlite3_stmt *st = NULL;
    int rc = WP_ENOTFOUND;

    if (sqlite3_prepare_v2(db->h,
                           "SELECT id FROM agents WHERE id=?1 UNION ALL"
                           " SELECT id FROM agents WHERE host=?1 LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK) {
        return WP_EDB;
    }
    sqlite3_bind_text(st, 1, host, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
        rc = 0;
    }
    sqlite3_finalize(st);
    return rc;
}
