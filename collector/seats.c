/* SPDX-License-Identifier: Apache-2.0 */
/* Seat sessions and pauses in SQLite, on the line store's connection (see seats.h). */
#include "seats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"

enum {
    S_SAME,       /* a session of (host, seat, queue) that logged in at ?4 */
    S_OPEN,       /* the open session of (host, seat, queue) */
    S_LOGIN,      /* a new session */
    S_CLOSED_AT,  /* a closed session that logged out at ?4 */
    S_LOGOUT,     /* close session ?1 at ?2 */
    S_PAUSE_OPEN, /* the open pause of session ?1 */
    S_PAUSE_AT,   /* a pause of session ?1 starting at ?2 */
    S_PAUSE,      /* a new pause */
    S_UNPAUSE,    /* end the open pause of session ?1 at ?2 */
    S_PRUNE_P,
    S_PRUNE_S,
    S_DEVICE, /* give session ?1 the device ?2 when it has none */
    S_N
};

static const char *const sql[S_N] = {
    [S_SAME] = "SELECT id FROM seat_sessions WHERE host = ?1 AND seat = ?2 AND queue = ?3 AND "
               "login_ms = ?4",
    [S_OPEN] = "SELECT id, login_ms FROM seat_sessions WHERE host = ?1 AND seat = ?2 AND "
               "queue = ?3 AND logout_ms IS NULL ORDER BY login_ms DESC LIMIT 1",
    [S_LOGIN] = "INSERT INTO seat_sessions (host, seat, queue, login_ms, logout_ms, "
                "login_observed, logout_observed, device) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [S_CLOSED_AT] = "SELECT id FROM seat_sessions WHERE host = ?1 AND seat = ?2 AND queue = ?3 "
                    "AND logout_ms = ?4",
    [S_LOGOUT] = "UPDATE seat_sessions SET logout_ms = ?2, logout_observed = ?3 WHERE id = ?1",
    [S_PAUSE_OPEN] = "SELECT start_ms FROM seat_pauses WHERE session = ?1 AND end_ms IS NULL",
    [S_PAUSE_AT] = "SELECT 1 FROM seat_pauses WHERE session = ?1 AND start_ms = ?2",
    [S_PAUSE] = "INSERT INTO seat_pauses (session, start_ms, end_ms, reason) "
                "VALUES (?1, ?2, NULL, ?3)",
    [S_UNPAUSE] = "UPDATE seat_pauses SET end_ms = max(?2, start_ms) WHERE session = ?1 AND "
                  "end_ms IS NULL",
    [S_PRUNE_P] = "DELETE FROM seat_pauses WHERE session IN (SELECT id FROM seat_sessions "
                  "WHERE logout_ms < ?1)",
    [S_PRUNE_S] = "DELETE FROM seat_sessions WHERE logout_ms < ?1",
    [S_DEVICE] = "UPDATE seat_sessions SET device = ?2 WHERE id = ?1 AND device IS NULL",
};

static const char *const schema =
    "CREATE TABLE IF NOT EXISTS seat_sessions ("
    "  id INTEGER PRIMARY KEY, host TEXT NOT NULL, seat TEXT NOT NULL, queue TEXT NOT NULL,"
    "  login_ms INTEGER NOT NULL, logout_ms INTEGER,"
    "  login_observed INTEGER NOT NULL DEFAULT 0, logout_observed INTEGER NOT NULL DEFAULT 0,"
    "  device TEXT,"
    "  UNIQUE (host, seat, queue, login_ms));"
    "CREATE INDEX IF NOT EXISTS seat_sessions_open ON seat_sessions (host, seat, queue, "
    "  logout_ms);"
    "CREATE INDEX IF NOT EXISTS seat_sessions_logout ON seat_sessions (logout_ms);"
    "CREATE TABLE IF NOT EXISTS seat_pauses ("
    "  session INTEGER NOT NULL, start_ms INTEGER NOT NULL, end_ms INTEGER,"
    "  reason TEXT NOT NULL, PRIMARY KEY (session, start_ms));";

struct coll_seats {
    sqlite3 *db; /* borrowed */
    sqlite3_stmt *st[S_N];
};

/* Add column device to a seat_sessions table made before it existed (its rows keep NULL).
 * 0 or WP_EDB (logged). */
static int migrate(sqlite3 *db)
{
    sqlite3_stmt *q = NULL;
    int found = 0, rc = 0;

    if (sqlite3_prepare_v2(db,
                           "SELECT 1 FROM pragma_table_info('seat_sessions') "
                           "WHERE name = 'device'",
                           -1, &q, NULL) != SQLITE_OK) {
        WP_ERROR("seats", "schema: %s", sqlite3_errmsg(db));
        return WP_EDB;
    }
    rc = sqlite3_step(q);
    found = rc == SQLITE_ROW;
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        WP_ERROR("seats", "schema: %s", sqlite3_errmsg(db));
        return WP_EDB;
    }
    /* the CLI and the collector may both be the first to open it: one of them finds the
     * column made by the other */
    if (!found &&
        sqlite3_exec(db, "ALTER TABLE seat_sessions ADD COLUMN device TEXT", NULL, NULL, NULL) !=
            SQLITE_OK &&
        strstr(sqlite3_errmsg(db), "duplicate column") == NULL) {
        WP_ERROR("seats", "schema: add column device: %s", sqlite3_errmsg(db));
        return WP_EDB;
    }
    return 0;
}

int coll_seats_attach(struct sqlite3 *db, struct coll_seats **out)
{
    struct coll_seats *s = wp_xcalloc(1, sizeof(*s));
    int rc = 0;

    *out = NULL;
    s->db = db;
    if (sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK) {
        WP_ERROR("seats", "schema: %s", sqlite3_errmsg(db));
        rc = WP_EDB;
        goto out;
    }
    rc = migrate(db);
    if (rc < 0) {
        goto out;
    }
    for (int i = 0; i < S_N; i++) {
        if (sqlite3_prepare_v3(db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) !=
            SQLITE_OK) {
            WP_ERROR("seats", "%s", sqlite3_errmsg(db));
            rc = WP_EDB;
            goto out;
        }
    }
    *out = s;
    s = NULL;
out:
    coll_seats_free(s);
    return rc;
}

void coll_seats_free(struct coll_seats *s)
{
    if (s == NULL) {
        return;
    }
    for (int i = 0; i < S_N; i++) {
        sqlite3_finalize(s->st[i]);
    }
    free(s);
}

static void done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static int run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);

    done(st);
    return rc == SQLITE_DONE ? 0 : WP_EDB;
}

static void bind_key(sqlite3_stmt *st, const char *host, const char *seat, const char *queue)
{
    sqlite3_bind_text(st, 1, host, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, seat, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, queue, -1, SQLITE_STATIC);
}

/* Step a query of at most one row: 1 with the first column in *v, 0 for none, WP_EDB. */
static int one(sqlite3_stmt *st, int64_t *v, int64_t *v2)
{
    int rc = sqlite3_step(st);
    int found = rc == SQLITE_ROW;

    if (found) {
        *v = sqlite3_column_int64(st, 0);
        if (v2 != NULL) {
            *v2 = sqlite3_column_int64(st, 1);
        }
    }
    done(st);
    return found ? 1 : rc == SQLITE_DONE ? 0 : WP_EDB;
}

static int put_login(struct coll_seats *s, const char *host, const char *seat, const char *queue,
                     const char *device, int64_t at, int64_t logout, int observed,
                     int logout_observed)
{
    int64_t id = 0, login = 0;
    int rc = 0;

    bind_key(s->st[S_SAME], host, seat, queue);
    sqlite3_bind_int64(s->st[S_SAME], 4, at);
    rc = one(s->st[S_SAME], &id, NULL);
    if (rc != 0) {
        return rc < 0 ? rc : 0; /* this very session: a replay */
    }
    if (logout == 0) {
        bind_key(s->st[S_OPEN], host, seat, queue);
        rc = one(s->st[S_OPEN], &id, &login);
        if (rc != 0) {
            return rc < 0 ? rc : 0; /* already logged in */
        }
    }
    sqlite3_stmt *ins = s->st[S_LOGIN];
    bind_key(ins, host, seat, queue);
    sqlite3_bind_int64(ins, 4, at);
    if (logout > 0) {
        sqlite3_bind_int64(ins, 5, logout);
    } else {
        sqlite3_bind_null(ins, 5);
    }
    sqlite3_bind_int(ins, 6, observed != 0);
    sqlite3_bind_int(ins, 7, logout_observed != 0);
    if (device != NULL && device[0] != '\0') {
        sqlite3_bind_text(ins, 8, device, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(ins, 8);
    }
    return run(ins) < 0 ? WP_EDB : 1;
}

int coll_seats_put(struct coll_seats *s, const char *host, const char *seat, const char *queue,
                   const char *action, const char *reason, int64_t at_ms, int observed,
                   int64_t login_at_ms)
{
    return coll_seats_put_dev(s, host, seat, queue, NULL, action, reason, at_ms, observed,
                              login_at_ms);
}

int coll_seats_put_dev(struct coll_seats *s, const char *host, const char *seat, const char *queue,
                       const char *device, const char *action, const char *reason, int64_t at_ms,
                       int observed, int64_t login_at_ms)
{
    int64_t id = 0, login = 0, start = 0;
    int rc = 0;

    if (strcmp(action, "login") == 0) {
        return put_login(s, host, seat, queue, device, at_ms, 0, observed, 0);
    }
    if (strcmp(action, "logout") != 0 && strcmp(action, "pause") != 0 &&
        strcmp(action, "unpause") != 0) {
        return -EINVAL;
    }
    bind_key(s->st[S_OPEN], host, seat, queue);
    rc = one(s->st[S_OPEN], &id, &login);
    if (rc < 0) {
        return rc;
    }
    if (rc == 0 || login > at_ms) {
        if (strcmp(action, "logout") != 0) {
            return 0; /* a pause outside any session */
        }
        bind_key(s->st[S_CLOSED_AT], host, seat, queue);
        sqlite3_bind_int64(s->st[S_CLOSED_AT], 4, at_ms);
        rc = one(s->st[S_CLOSED_AT], &id, NULL);
        if (rc != 0) {
            return rc < 0 ? rc : 0; /* logged out already */
        }
        if (login_at_ms <= 0 || login_at_ms > at_ms) {
            return 0; /* a logout of a session never seen, with no start */
        }
        return put_login(s, host, seat, queue, device, login_at_ms, at_ms, 1, observed);
    }
    if (device != NULL && device[0] != '\0') {
        /* a session stored before its events carried the device (an older agent) */
        sqlite3_bind_int64(s->st[S_DEVICE], 1, id);
        sqlite3_bind_text(s->st[S_DEVICE], 2, device, -1, SQLITE_STATIC);
        if (run(s->st[S_DEVICE]) < 0) {
            return WP_EDB;
        }
    }
    if (strcmp(action, "logout") == 0) {
        sqlite3_bind_int64(s->st[S_UNPAUSE], 1, id);
        sqlite3_bind_int64(s->st[S_UNPAUSE], 2, at_ms);
        sqlite3_bind_int64(s->st[S_LOGOUT], 1, id);
        sqlite3_bind_int64(s->st[S_LOGOUT], 2, at_ms);
        sqlite3_bind_int(s->st[S_LOGOUT], 3, observed != 0);
        return run(s->st[S_UNPAUSE]) < 0 || run(s->st[S_LOGOUT]) < 0 ? WP_EDB : 1;
    }
    sqlite3_bind_int64(s->st[S_PAUSE_OPEN], 1, id);
    rc = one(s->st[S_PAUSE_OPEN], &start, NULL);
    if (rc < 0) {
        return rc;
    }
    if (strcmp(action, "unpause") == 0) {
        if (rc == 0 || start > at_ms) {
            return 0;
        }
        sqlite3_bind_int64(s->st[S_UNPAUSE], 1, id);
        sqlite3_bind_int64(s->st[S_UNPAUSE], 2, at_ms);
        return run(s->st[S_UNPAUSE]) < 0 ? WP_EDB : 1;
    }
    if (rc == 1) {
        return 0; /* paused already */
    }
    sqlite3_bind_int64(s->st[S_PAUSE_AT], 1, id);
    sqlite3_bind_int64(s->st[S_PAUSE_AT], 2, at_ms);
    rc = one(s->st[S_PAUSE_AT], &start, NULL);
    if (rc != 0) {
        return rc < 0 ? rc : 0; /* this pause, ended since: a replay */
    }
    sqlite3_bind_int64(s->st[S_PAUSE], 1, id);
    sqlite3_bind_int64(s->st[S_PAUSE], 2, at_ms);
    sqlite3_bind_text(s->st[S_PAUSE], 3, reason != NULL ? reason : "", -1, SQLITE_STATIC);
    return run(s->st[S_PAUSE]) < 0 ? WP_EDB : 1;
}

/* Field key of an event's map as a copy, or NULL. */
static char *field(const msgpack_object_map *f, const char *key)
{
    size_t n = strlen(key);

    for (uint32_t i = 0; f != NULL && i < f->size; i++) {
        const msgpack_object *k = &f->ptr[i].key;
        const msgpack_object *v = &f->ptr[i].val;
        if (k->type == MSGPACK_OBJECT_STR && v->type == MSGPACK_OBJECT_STR &&
            k->via.str.size == n && memcmp(k->via.str.ptr, key, n) == 0) {
            return wp_xstrndup(v->via.str.ptr, v->via.str.size);
        }
    }
    return NULL;
}

/* A decimal ms time, or -1. */
static int64_t ms_of(const char *s)
{
    char *end = NULL;
    long long v = 0;

    if (s == NULL || s[0] == '\0') {
        return -1;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0) {
        return -1;
    }
    return v;
}

int coll_seats_put_fields(struct coll_seats *s, const char *host, const msgpack_object_map *f)
{
    char *seat = field(f, "seat"), *queue = field(f, "queue"), *action = field(f, "action");
    char *reason = field(f, "reason"), *at = field(f, "at"), *obs = field(f, "observed");
    char *login_at = field(f, "login_at"), *device = field(f, "device");
    int64_t at_ms = ms_of(at);
    int64_t la = ms_of(login_at);
    int rc = -EINVAL;

    if (seat != NULL && seat[0] != '\0' && action != NULL && at_ms > 0) {
        rc = coll_seats_put_dev(s, host, seat, queue != NULL ? queue : "", device, action, reason,
                                at_ms, obs != NULL && strcmp(obs, "1") == 0, la > 0 ? la : 0);
    }
    free(device);
    free(seat);
    free(queue);
    free(action);
    free(reason);
    free(at);
    free(obs);
    free(login_at);
    return rc;
}

int coll_seats_prune(struct coll_seats *s, int64_t before_ms)
{
    sqlite3_bind_int64(s->st[S_PRUNE_P], 1, before_ms);
    sqlite3_bind_int64(s->st[S_PRUNE_S], 1, before_ms);
    if (run(s->st[S_PRUNE_P]) < 0) {
        return WP_EDB;
    }
    int n = sqlite3_changes(s->db);
    if (run(s->st[S_PRUNE_S]) < 0) {
        return WP_EDB;
    }
    return n + sqlite3_changes(s->db);
}

int coll_seats_each(struct coll_seats *s, const char *host, int64_t since_ms, int64_t now_ms,
                    int (*fn)(void *arg, const struct coll_seat_session *ss), void *arg)
{
    sqlite3_stmt *q = NULL;
    int rc = 0;

    if (sqlite3_prepare_v2(
            s->db,
            "SELECT s.id, s.host, s.seat, s.queue, s.login_ms, COALESCE(s.logout_ms, 0), "
            "s.login_observed, s.logout_observed, "
            "(SELECT COALESCE(SUM(max(0, min(COALESCE(p.end_ms, s.logout_ms, ?3), "
            "COALESCE(s.logout_ms, ?3)) - p.start_ms)), 0) FROM seat_pauses p "
            "WHERE p.session = s.id), "
            "(SELECT COALESCE(group_concat(DISTINCT p.reason), '') FROM seat_pauses p "
            "WHERE p.session = s.id AND p.reason <> ''), "
            "(SELECT COUNT(*) FROM seat_pauses p WHERE p.session = s.id), "
            "(s.logout_ms IS NULL AND EXISTS (SELECT 1 FROM seat_pauses p WHERE p.session = s.id "
            "AND p.end_ms IS NULL)), s.device "
            "FROM seat_sessions s WHERE (?1 IS NULL OR s.host = ?1) AND "
            "COALESCE(s.logout_ms, ?3) >= ?2 ORDER BY s.host, s.login_ms, s.seat, s.queue",
            -1, &q, NULL) != SQLITE_OK) {
        return WP_EDB;
    }
    sqlite3_bind_text(q, 1, host, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, since_ms);
    sqlite3_bind_int64(q, 3, now_ms);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct coll_seat_session ss = {
            .id = sqlite3_column_int64(q, 0),
            .host = (const char *)sqlite3_column_text(q, 1),
            .seat = (const char *)sqlite3_column_text(q, 2),
            .queue = (const char *)sqlite3_column_text(q, 3),
            .login_ms = sqlite3_column_int64(q, 4),
            .logout_ms = sqlite3_column_int64(q, 5),
            .login_observed = sqlite3_column_int(q, 6),
            .logout_observed = sqlite3_column_int(q, 7),
            .paused_ms = sqlite3_column_int64(q, 8),
            .reasons = (const char *)sqlite3_column_text(q, 9),
            .npauses = sqlite3_column_int(q, 10),
            .paused_now = sqlite3_column_int(q, 11),
            .device = (const char *)sqlite3_column_text(q, 12),
        };
        if (fn(arg, &ss) != 0) {
            break;
        }
    }
    int ok = rc == SQLITE_ROW || rc == SQLITE_DONE;
    sqlite3_finalize(q);
    return ok ? 0 : WP_EDB;
}
