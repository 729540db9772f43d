/* SPDX-License-Identifier: Apache-2.0 */
/* Check results, their status history and log events in SQLite (see events.h). */
#include "events.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sqlite3.h>

#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"

enum { S_GET, S_NEW, S_SAME, S_CHANGE, S_HIST, S_EVENT, S_PRUNE_H, S_PRUNE_E, S_PRUNE_C, S_N };

static const char *const sql[S_N] = {
    [S_GET] = "SELECT status, ts_ms FROM checks WHERE host = ?1 AND name = ?2",
    [S_NEW] = "INSERT INTO checks (host, name, status, output, since_ms, ts_ms) "
              "VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    [S_SAME] = "UPDATE checks SET output = ?4, ts_ms = ?5 WHERE host = ?1 AND name = ?2",
    [S_CHANGE] = "UPDATE checks SET status = ?3, output = ?4, since_ms = ?5, ts_ms = ?5 "
                 "WHERE host = ?1 AND name = ?2",
    [S_HIST] = "INSERT INTO check_history (host, name, status, output, ts_ms) "
               "VALUES (?1, ?2, ?3, ?4, ?5)",
    [S_EVENT] = "INSERT INTO log_events (host, ts_ms, source, rule, severity, text, fields) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [S_PRUNE_H] = "DELETE FROM check_history WHERE id IN (SELECT id FROM check_history "
                  "WHERE ts_ms < ?1 ORDER BY ts_ms LIMIT ?2)",
    [S_PRUNE_E] = "DELETE FROM log_events WHERE id IN (SELECT id FROM log_events "
                  "WHERE ts_ms < ?1 ORDER BY ts_ms LIMIT ?2)",
    [S_PRUNE_C] = "DELETE FROM checks WHERE rowid IN (SELECT rowid FROM checks "
                  "WHERE ts_ms < ?1 LIMIT ?2)",
};

/* The schema is shared with the report code: names and columns must not change. */
static const char *const schema =
    "PRAGMA journal_mode = WAL;"
    "PRAGMA synchronous = NORMAL;"
    "CREATE TABLE IF NOT EXISTS checks(host TEXT NOT NULL, name TEXT NOT NULL, status INTEGER "
    "NOT NULL, output TEXT NOT NULL, since_ms INTEGER NOT NULL, ts_ms INTEGER NOT NULL, "
    "PRIMARY KEY(host, name));"
    "CREATE TABLE IF NOT EXISTS check_history(id INTEGER PRIMARY KEY, host TEXT NOT NULL, "
    "name TEXT NOT NULL, ts_ms INTEGER NOT NULL, status INTEGER NOT NULL, output TEXT NOT "
    "NULL);"
    "CREATE INDEX IF NOT EXISTS check_history_ts ON check_history(ts_ms);"
    "CREATE INDEX IF NOT EXISTS check_history_host ON check_history(host, name, ts_ms);"
    "CREATE TABLE IF NOT EXISTS log_events(id INTEGER PRIMARY KEY, host TEXT NOT NULL, ts_ms "
    "INTEGER NOT NULL, source TEXT NOT NULL, rule TEXT NOT NULL, severity INTEGER NOT NULL, "
    "text TEXT NOT NULL, fields TEXT NOT NULL DEFAULT '{}');"
    "CREATE INDEX IF NOT EXISTS log_events_ts ON log_events(ts_ms);"
    "CREATE INDEX IF NOT EXISTS log_events_host ON log_events(host, ts_ms);";

#define FLOOD_BUCKETS  256
#define FLOOD_IDLE_MIN 10 /* a host's counter is forgotten after 10 quiet minutes */

/* Log events stored and dropped by one host in its current minute. */
struct flood {
    char *host;
    int64_t minute; /* now_ms / 60000 of the window */
    uint32_t count;
    uint64_t dropped; /* in the window, not yet logged */
    struct flood *next;
};

struct coll_events {
    sqlite3 *db;
    sqlite3_stmt *st[S_N];
    uint32_t flood_per_min;
    uint64_t dropped_total;
    struct flood *flood[FLOOD_BUCKETS];
};

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s; s++) {
        h = (h ^ (uint8_t)*s) * 16777619u;
    }
    return h;
}

int coll_events_open(const char *path, int flood_per_min, struct coll_events **out)
{
    struct coll_events *e = wp_xcalloc(1, sizeof(*e));
    int rc = 0;

    *out = NULL;
    e->flood_per_min = flood_per_min > 0 ? (uint32_t)flood_per_min : COLL_EVENTS_FLOOD_PER_MIN;
    if (sqlite3_open_v2(path, &e->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
            SQLITE_OK ||
        sqlite3_busy_timeout(e->db, 5000) != SQLITE_OK ||
        sqlite3_exec(e->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
        WP_ERROR("events", "%s: %s", path, e->db != NULL ? sqlite3_errmsg(e->db) : "no memory");
        rc = WP_EDB;
        goto out;
    }
    for (int i = 0; i < S_N; i++) {
        if (sqlite3_prepare_v3(e->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &e->st[i], NULL) !=
            SQLITE_OK) {
            WP_ERROR("events", "%s: %s", path, sqlite3_errmsg(e->db));
            rc = WP_EDB;
            goto out;
        }
    }
    *out = e;
    e = NULL;
out:
    coll_events_close(e);
    return rc;
}

int coll_events_open_ro(const char *path, struct coll_events **out, char *err, size_t errlen)
{
    struct coll_events *e = wp_xcalloc(1, sizeof(*e));
    sqlite3_stmt *q = NULL;

    *out = NULL;
    if (sqlite3_open_v2(path, &e->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_busy_timeout(e->db, 5000) != SQLITE_OK ||
        sqlite3_prepare_v2(e->db, "SELECT 1 FROM checks, log_events LIMIT 0", -1, &q, NULL) !=
            SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, e->db != NULL ? sqlite3_errmsg(e->db) : "no memory");
        coll_events_close(e);
        return WP_EDB;
    }
    sqlite3_finalize(q);
    *out = e;
    return 0;
}

void coll_events_close(struct coll_events *e)
{
    if (e == NULL) {
        return;
    }
    for (int i = 0; i < S_N; i++) {
        sqlite3_finalize(e->st[i]);
    }
    for (int b = 0; b < FLOOD_BUCKETS; b++) {
        while (e->flood[b] != NULL) {
            struct flood *f = e->flood[b];
            e->flood[b] = f->next;
            free(f->host);
            free(f);
        }
    }
    sqlite3_close(e->db);
    free(e);
}

const char *coll_events_errmsg(struct coll_events *e)
{
    return sqlite3_errmsg(e->db);
}

int coll_events_begin(struct coll_events *e)
{
    return sqlite3_exec(e->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK ? 0 : WP_EDB;
}

int coll_events_commit(struct coll_events *e)
{
    if (sqlite3_exec(e->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_exec(e->db, "ROLLBACK", NULL, NULL, NULL);
        return WP_EDB;
    }
    return 0;
}

static int run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);

    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : WP_EDB;
}

static void bind_check(sqlite3_stmt *st, const char *host, const char *name, int status,
                       const char *output, int64_t ts_ms)
{
    sqlite3_bind_text(st, 1, host, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, status);
    sqlite3_bind_text(st, 4, output != NULL ? output : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, ts_ms);
}

/* Length of the valid UTF-8 sequence at s[0..n) (1..4), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    uint32_t cp = k == 1 ? c : k == 2 ? (c & 0x1f) : k == 3 ? (c & 0x0f) : (c & 0x07);

    if (k == 0 || k > n) {
        return 0;
    }
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((k == 2 && cp < 0x80) || (k == 3 && cp < 0x800) || (k == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return k;
}

/* A NUL-terminated copy of p[0..n) that is valid UTF-8 without NULs (others become '?'). */
static char *utf8_copy(const char *p, size_t n)
{
    char *out = wp_xmalloc(n + 1);

    for (size_t i = 0; i < n;) {
        size_t k = p[i] == '\0' ? 0 : utf8_len((const unsigned char *)p + i, n - i);
        if (k == 0) {
            out[i++] = '?';
        } else {
            memcpy(out + i, p + i, k);
            i += k;
        }
    }
    out[n] = '\0';
    return out;
}

/* NULL when s is valid UTF-8, else a cleaned copy (free it): agents send bytes, the API and
 * the reports need text. */
static char *utf8_fix(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;

    for (size_t i = 0; i < n;) {
        size_t k = utf8_len((const unsigned char *)s + i, n - i);
        if (k == 0) {
            return utf8_copy(s, n);
        }
        i += k;
    }
    return NULL;
}

static int put_check(struct coll_events *e, const char *host, const char *name, int status,
                     const char *output, int64_t ts_ms)
{
    sqlite3_stmt *get = e->st[S_GET];
    int old = -1;
    int64_t old_ts = 0;

    sqlite3_bind_text(get, 1, host, -1, SQLITE_STATIC);
    sqlite3_bind_text(get, 2, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(get);
    if (rc == SQLITE_ROW) {
        old = sqlite3_column_int(get, 0);
        old_ts = sqlite3_column_int64(get, 1);
    }
    sqlite3_reset(get);
    sqlite3_clear_bindings(get);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        return WP_EDB;
    }
    if (old >= 0 && ts_ms < old_ts) {
        return 0; /* older than what is stored: a replayed batch */
    }
    if (old == status) {
        bind_check(e->st[S_SAME], host, name, status, output, ts_ms);
        return run(e->st[S_SAME]);
    }
    sqlite3_stmt *up = e->st[old < 0 ? S_NEW : S_CHANGE];
    bind_check(up, host, name, status, output, ts_ms);
    bind_check(e->st[S_HIST], host, name, status, output, ts_ms);
    if (run(up) < 0 || run(e->st[S_HIST]) < 0) {
        return WP_EDB;
    }
    return 1;
}

int coll_events_put_check(struct coll_events *e, const char *host, const char *name, int status,
                          const char *output, int64_t ts_ms)
{
    status = status < 0 ? 3 : status > 3 ? 3 : status;
    char *fixed = utf8_fix(output);
    int rc = put_check(e, host, name, status, fixed != NULL ? fixed : output, ts_ms);
    free(fixed);
    return rc;
}

/* The event's fields (str -> str, checked by wp_batch_rec()) as a JSON object text. */
static char *fields_json(const msgpack_object_map *f)
{
    if (f == NULL || f->size == 0) {
        return NULL;
    }
    json_t *o = json_object();
    for (uint32_t i = 0; i < f->size; i++) {
        const msgpack_object *k = &f->ptr[i].key, *v = &f->ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR || v->type != MSGPACK_OBJECT_STR) {
            continue;
        }
        char *ks = utf8_copy(k->via.str.ptr, k->via.str.size);
        char *vs = utf8_copy(v->via.str.ptr, v->via.str.size);
        json_object_set_new(o, ks, json_string(vs));
        free(ks);
        free(vs);
    }
    char *txt = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return txt;
}

static struct flood *flood_get(struct coll_events *e, const char *host)
{
    uint32_t b = hash_str(host) % FLOOD_BUCKETS;
    struct flood *f = e->flood[b];

    while (f != NULL && strcmp(f->host, host) != 0) {
        f = f->next;
    }
    if (f == NULL) {
        f = wp_xcalloc(1, sizeof(*f));
        f->host = wp_xstrdup(host);
        f->next = e->flood[b];
        e->flood[b] = f;
    }
    return f;
}

static void flood_report(struct coll_events *e, struct flood *f)
{
    if (f->dropped > 0) {
        WP_WARN("events", "host %s sent more than %u log events a minute: %" PRIu64 " not stored",
                f->host, e->flood_per_min, f->dropped);
        f->dropped = 0;
    }
}

int coll_events_put_event(struct coll_events *e, const char *host, const char *source,
                          const char *rule, int severity, const char *text,
                          const msgpack_object_map *fields, int64_t ts_ms, int64_t now_ms)
{
    if (rule != NULL && strcmp(rule, "seat") == 0) {
        return 0; /* a seat session event (seats.h) */
    }
    struct flood *f = flood_get(e, host);
    int64_t minute = now_ms / 60000;
    if (f->minute != minute) {
        flood_report(e, f);
        f->minute = minute;
        f->count = 0;
    }
    if (f->count >= e->flood_per_min) {
        f->dropped++;
        e->dropped_total++;
        return 0;
    }
    f->count++;
    char *fj = fields_json(fields);
    char *fixed = utf8_fix(text);
    sqlite3_stmt *st = e->st[S_EVENT];
    sqlite3_bind_text(st, 1, host, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, ts_ms);
    sqlite3_bind_text(st, 3, source != NULL ? source : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, rule != NULL ? rule : "", -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, severity < 0 ? 0 : severity > 3 ? 3 : severity);
    sqlite3_bind_text(st, 6, fixed != NULL ? fixed : text != NULL ? text : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, fj != NULL ? fj : "{}", -1, SQLITE_STATIC);
    int rc = run(st);
    free(fj);
    free(fixed);
    return rc < 0 ? rc : 1;
}

void coll_events_tick(struct coll_events *e, int64_t now_ms)
{
    int64_t minute = now_ms / 60000;

    for (int b = 0; b < FLOOD_BUCKETS; b++) {
        for (struct flood **pp = &e->flood[b]; *pp != NULL;) {
            struct flood *f = *pp;
            if (f->minute < minute) {
                flood_report(e, f);
            }
            if (f->minute + FLOOD_IDLE_MIN < minute) {
                *pp = f->next;
                free(f->host);
                free(f);
                continue;
            }
            pp = &f->next;
        }
    }
}

uint64_t coll_events_dropped(const struct coll_events *e)
{
    return e->dropped_total;
}

int coll_events_prune(struct coll_events *e, int64_t before_ms, int max, int *more)
{
    static const int which[] = {S_PRUNE_H, S_PRUNE_E, S_PRUNE_C};
    int total = 0;

    *more = 0;
    max = max > 0 ? max : 10000;
    for (size_t i = 0; i < sizeof(which) / sizeof(which[0]); i++) {
        sqlite3_stmt *st = e->st[which[i]];
        sqlite3_bind_int64(st, 1, before_ms);
        sqlite3_bind_int(st, 2, max);
        if (run(st) < 0) {
            return WP_EDB;
        }
        int n = sqlite3_changes(e->db);
        total += n;
        if (n >= max) {
            *more = 1;
        }
    }
    return total;
}

int coll_events_checks_each(struct coll_events *e, const char *host, int status,
                            int (*fn)(void *arg, const struct coll_check *c), void *arg)
{
    sqlite3_stmt *q = NULL;
    int rc = 0;

    if (sqlite3_prepare_v2(e->db,
                           "SELECT host, name, status, output, since_ms, ts_ms FROM checks "
                           "WHERE (?1 IS NULL OR host = ?1) AND (?2 < 0 OR status = ?2) "
                           "ORDER BY host, name",
                           -1, &q, NULL) != SQLITE_OK) {
        return WP_EDB;
    }
    sqlite3_bind_text(q, 1, host, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 2, status);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct coll_check c = {
            .host = (const char *)sqlite3_column_text(q, 0),
            .name = (const char *)sqlite3_column_text(q, 1),
            .status = sqlite3_column_int(q, 2),
            .output = (const char *)sqlite3_column_text(q, 3),
            .since_ms = sqlite3_column_int64(q, 4),
            .ts_ms = sqlite3_column_int64(q, 5),
        };
        if (fn(arg, &c) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : WP_EDB;
}

int coll_events_log_each(struct coll_events *e, const char *host, int64_t since_ms, size_t limit,
                         int (*fn)(void *arg, const struct coll_logevent *ev), void *arg)
{
    return coll_events_log_rule_each(e, host, NULL, since_ms, limit, fn, arg);
}

int coll_events_log_rule_each(struct coll_events *e, const char *host, const char *rule,
                              int64_t since_ms, size_t limit,
                              int (*fn)(void *arg, const struct coll_logevent *ev), void *arg)
{
    sqlite3_stmt *q = NULL;
    int rc = 0;

    if (sqlite3_prepare_v2(e->db,
                           "SELECT id, host, ts_ms, source, rule, severity, text, fields "
                           "FROM log_events WHERE (?1 IS NULL OR host = ?1) AND ts_ms >= ?2 "
                           "AND (?4 IS NULL OR rule = ?4) "
                           "ORDER BY ts_ms DESC, id DESC LIMIT ?3",
                           -1, &q, NULL) != SQLITE_OK) {
        return WP_EDB;
    }
    sqlite3_bind_text(q, 1, host, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, since_ms);
    sqlite3_bind_int64(q, 3, (sqlite3_int64)limit);
    sqlite3_bind_text(q, 4, rule, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct coll_logevent ev = {
            .id = sqlite3_column_int64(q, 0),
            .host = (const char *)sqlite3_column_text(q, 1),
            .ts_ms = sqlite3_column_int64(q, 2),
            .source = (const char *)sqlite3_column_text(q, 3),
            .rule = (const char *)sqlite3_column_text(q, 4),
            .severity = sqlite3_column_int(q, 5),
            .text = (const char *)sqlite3_column_text(q, 6),
            .fields = (const char *)sqlite3_column_text(q, 7),
        };
        if (fn(arg, &ev) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : WP_EDB;
}
