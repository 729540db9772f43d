/* SPDX-License-Identifier: Apache-2.0 */
/* Incident store: incidents, timelines and rule state in SQLite (WAL), with escalation,
 * reopen window and flapping (see incident.h). */
#include "incident.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"

#define INC_SCHEMA_VERSION 1
#define FLAP_MAX           1000  /* most flap_changes (collector.yaml allows 2..1000) */
#define VALUE_UPDATE_MS    60000 /* at most one "value update" entry a minute */
#define BY_RULE            "rule"
#define BY_SYSTEM          "watchpost"
#define NO_DUE             INT64_MAX

/*
 * incidents.next_due_ms is the earliest time inc_tick has something to do for the row (the
 * next escalation level, or flap_due_ms: the end of a flapping quiet window, set by the
 * signals with the collector's policy, so that the CLI, which changes rows with the default
 * policy, never moves it); NULL when nothing is due.
 * flap holds, per fingerprint, the last signal (1 fire, 0 clear) and the recent change
 * times (comma-separated unix ms), so flapping is counted across incidents.
 */
static const char schema[] =
    "CREATE TABLE IF NOT EXISTS incidents("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " fingerprint TEXT NOT NULL, status INTEGER NOT NULL,"
    " priority INTEGER NOT NULL, impact INTEGER NOT NULL, urgency INTEGER NOT NULL,"
    " category TEXT NOT NULL DEFAULT '', rule TEXT NOT NULL DEFAULT '',"
    " host TEXT NOT NULL DEFAULT '', summary TEXT NOT NULL DEFAULT '',"
    " description TEXT, runbook TEXT, values_json TEXT,"
    " opened_ms INTEGER NOT NULL, acked_ms INTEGER NOT NULL DEFAULT 0,"
    " resolved_ms INTEGER NOT NULL DEFAULT 0, closed_ms INTEGER NOT NULL DEFAULT 0,"
    " response_due_ms INTEGER NOT NULL, resolve_due_ms INTEGER NOT NULL,"
    " escalation INTEGER NOT NULL DEFAULT 0, suppressed INTEGER NOT NULL DEFAULT 0,"
    " flapping INTEGER NOT NULL DEFAULT 0, reopened INTEGER NOT NULL DEFAULT 0,"
    " acked_by TEXT NOT NULL DEFAULT '', value_update_ms INTEGER NOT NULL DEFAULT 0,"
    " flap_due_ms INTEGER NOT NULL DEFAULT 0, next_due_ms INTEGER);"
    "CREATE INDEX IF NOT EXISTS incidents_fp ON incidents(fingerprint, status);"
    "CREATE INDEX IF NOT EXISTS incidents_due ON incidents(status, next_due_ms);"
    "CREATE TABLE IF NOT EXISTS timeline("
    " id INTEGER PRIMARY KEY,"
    " incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,"
    " at_ms INTEGER NOT NULL, kind TEXT NOT NULL, \"by\" TEXT NOT NULL DEFAULT '',"
    " text TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX IF NOT EXISTS timeline_inc ON timeline(incident_id, at_ms);"
    "CREATE TABLE IF NOT EXISTS flap("
    " fingerprint TEXT PRIMARY KEY, last_signal INTEGER NOT NULL,"
    " last_change_ms INTEGER NOT NULL, changes TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX IF NOT EXISTS flap_stale ON flap(last_signal, last_change_ms);"
    "CREATE TABLE IF NOT EXISTS rule_state("
    " key TEXT PRIMARY KEY, state INTEGER NOT NULL, since_ms INTEGER NOT NULL);";

#define COLS                                                                                  \
    "id, fingerprint, status, priority, impact, urgency, category, rule, host, summary,"      \
    " description, runbook, values_json, opened_ms, acked_ms, resolved_ms, closed_ms,"        \
    " response_due_ms, resolve_due_ms, escalation, suppressed, flapping, reopened, acked_by," \
    " value_update_ms, flap_due_ms"

enum {
    S_GET,
    S_FIND_ACTIVE,
    S_FIND_RESOLVED,
    S_INSERT,
    S_SAVE,
    S_SET_VALUES,
    S_TL_ADD,
    S_FLAP_GET,
    S_FLAP_PUT,
    S_FLAP_PRUNE,
    S_DUE,
    S_STATE_PUT,
    S_STATE_DEL,
    S_COUNT
};

static const char *const sqls[S_COUNT] = {
    [S_GET] = "SELECT " COLS " FROM incidents WHERE id = ?1",
    [S_FIND_ACTIVE] = "SELECT " COLS " FROM incidents WHERE fingerprint = ?1 AND status IN (0, 1)"
                      " ORDER BY id DESC LIMIT 1",
    [S_FIND_RESOLVED] = "SELECT " COLS " FROM incidents WHERE fingerprint = ?1 AND status = 2"
                        " ORDER BY resolved_ms DESC, id DESC LIMIT 1",
    [S_INSERT] = "INSERT INTO incidents(fingerprint, status, priority, impact, urgency, category,"
                 " rule, host, summary, description, runbook, values_json, opened_ms,"
                 " response_due_ms, resolve_due_ms, value_update_ms)"
                 " VALUES(?1, 0, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?12)",
    [S_SAVE] = "UPDATE incidents SET status = ?2, acked_ms = ?3, resolved_ms = ?4, closed_ms = ?5,"
               " escalation = ?6, suppressed = ?7, flapping = ?8, reopened = ?9, acked_by = ?10,"
               " value_update_ms = ?11, flap_due_ms = ?12, next_due_ms = ?13 WHERE id = ?1",
    [S_SET_VALUES] = "UPDATE incidents SET summary = coalesce(?2, summary),"
                     " values_json = coalesce(?3, values_json) WHERE id = ?1",
    [S_TL_ADD] = "INSERT INTO timeline(incident_id, at_ms, kind, \"by\", text)"
                 " VALUES(?1, ?2, ?3, ?4, ?5)",
    [S_FLAP_GET] = "SELECT last_signal, last_change_ms, changes FROM flap WHERE fingerprint = ?1",
    [S_FLAP_PUT] = "INSERT INTO flap(fingerprint, last_signal, last_change_ms, changes)"
                   " VALUES(?1, ?2, ?3, ?4) ON CONFLICT(fingerprint) DO UPDATE SET"
                   " last_signal = ?2, last_change_ms = ?3, changes = ?4",
    [S_FLAP_PRUNE] = "DELETE FROM flap WHERE last_signal = 0 AND last_change_ms <= ?1",
    [S_DUE] = "SELECT id FROM incidents WHERE status IN (0, 1) AND next_due_ms <= ?1"
              " ORDER BY next_due_ms, id",
    [S_STATE_PUT] = "INSERT INTO rule_state(key, state, since_ms) VALUES(?1, ?2, ?3)"
                    " ON CONFLICT(key) DO UPDATE SET state = ?2, since_ms = ?3",
    [S_STATE_DEL] = "DELETE FROM rule_state WHERE key = ?1",
};

struct inc_store {
    sqlite3 *h;
    struct inc_policy pol;
    sqlite3_stmt *stmt[S_COUNT];
    char err[512];
};

/* An incident row plus the bookkeeping columns the public row does not show. */
struct irow {
    struct inc_row r;
    int64_t value_update_ms;
    int64_t flap_due_ms; /* while flapping: when it ends if no change comes */
};

/* Per-fingerprint flap bookkeeping. */
struct flap {
    int exists;
    int last_signal; /* 1 fire, 0 clear */
    int64_t last_change_ms;
    int64_t t[FLAP_MAX]; /* change times, oldest first; at most flap_changes are kept */
    int n;
};

static const char *const status_names[] = {"open", "acknowledged", "resolved", "closed"};

const char *inc_status_name(enum inc_status s)
{
    if ((int)s < 0 || (int)s > INC_CLOSED) {
        return "unknown";
    }
    return status_names[s];
}

void inc_policy_default(struct inc_policy *p)
{
    static const int matrix[3][3] = {{1, 2, 3}, {2, 3, 4}, {3, 4, 4}};
    const int64_t min = 60 * 1000;
    const int64_t hour = 60 * min;
    const int64_t day = 24 * hour;

    memset(p, 0, sizeof(*p));
    memcpy(p->matrix, matrix, sizeof(matrix));
    p->response_ms[0] = 15 * min;
    p->response_ms[1] = 30 * min;
    p->response_ms[2] = 4 * hour;
    p->response_ms[3] = day;
    p->resolve_ms[0] = 4 * hour;
    p->resolve_ms[1] = 8 * hour;
    p->resolve_ms[2] = 3 * day;
    p->resolve_ms[3] = 5 * day;
    p->reopen_window_ms = 30 * min;
    p->flap_changes = 5;
    p->flap_window_ms = hour;
}

static void seterr(struct inc_store *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void seterr(struct inc_store *st, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(st->err, sizeof(st->err), fmt, ap);
    va_end(ap);
}

/* An operator error: into err (when given) and the store's message. */
static void operr(struct inc_store *st, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void operr(struct inc_store *st, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(st->err, sizeof(st->err), fmt, ap);
    va_end(ap);
    if (err != NULL && errlen > 0) {
        snprintf(err, errlen, "%s", st->err);
    }
}

static int dberr(struct inc_store *st, const char *what)
{
    seterr(st, "%s: %s", what, sqlite3_errmsg(st->h));
    return WP_EDB;
}

/* Pass the store's message (a database error) on to an operator's err. */
static void operr_db(struct inc_store *st, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0) {
        snprintf(err, errlen, "%s", st->err);
    }
}

const char *inc_errmsg(struct inc_store *st)
{
    return st->err;
}

/* Copy at most size-1 bytes without cutting a UTF-8 sequence in half. */
static void cpy(char *dst, size_t size, const char *src)
{
    size_t n = src ? strlen(src) : 0;

    if (n >= size) {
        n = size - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80) {
            n--;
        }
    }
    if (n > 0) {
        memcpy(dst, src, n);
    }
    dst[n] = '\0';
}

static int blank(const char *s)
{
    if (s == NULL) {
        return 1;
    }
    for (; *s != '\0'; s++) {
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') {
            return 0;
        }
    }
    return 1;
}

/* "4h", "15m", "1h30m", "3d", "90s" -> "1m30s"; buf of at least 32 bytes. */
static const char *fmt_dur(int64_t ms, char *buf, size_t n)
{
    static const struct {
        int64_t ms;
        char unit;
    } units[] = {{86400000, 'd'}, {3600000, 'h'}, {60000, 'm'}, {1000, 's'}};
    size_t len = 0;

    buf[0] = '\0';
    if (ms < 1000) {
        snprintf(buf, n, "%" PRId64 "ms", ms);
        return buf;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]) && len < n; i++) {
        int64_t q = ms / units[i].ms;
        if (q > 0) {
            int w = snprintf(buf + len, n - len, "%" PRId64 "%c", q, units[i].unit);
            if (w < 0) {
                break;
            }
            len += (size_t)w;
            ms -= q * units[i].ms;
        }
    }
    return buf;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
    if (v == NULL) {
        sqlite3_bind_null(s, i);
    } else {
        sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
    }
}

static void bind_due(sqlite3_stmt *s, int i, int64_t due)
{
    if (due == NO_DUE) {
        sqlite3_bind_null(s, i);
    } else {
        sqlite3_bind_int64(s, i, due);
    }
}

static void finish(sqlite3_stmt *s)
{
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

/* Step a statement that returns no rows, then reset it. */
static int run(struct inc_store *st, sqlite3_stmt *s, const char *what)
{
    int r = sqlite3_step(s);
    int rc = 0;

    if (r != SQLITE_DONE) {
        rc = dberr(st, what);
    }
    finish(s);
    return rc;
}

static int exec(struct inc_store *st, const char *sql)
{
    char *msg = NULL;

    if (sqlite3_exec(st->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
        seterr(st, "%s: %s", sql, msg ? msg : sqlite3_errmsg(st->h));
        sqlite3_free(msg);
        return WP_EDB;
    }
    return 0;
}

/* Run sql, keeping the message of an earlier error (rollback paths). */
static void exec_quiet(struct inc_store *st, const char *sql)
{
    sqlite3_exec(st->h, sql, NULL, NULL, NULL);
}

/*
 * Each change is one transaction. Outside a caller's inc_begin() take the write lock up front
 * (BEGIN IMMEDIATE): a deferred transaction that reads, then writes, fails with
 * SQLITE_BUSY_SNAPSHOT when the CLI wrote in between, without waiting. Inside one, a savepoint.
 */
static int tx_begin(struct inc_store *st, int *own)
{
    *own = sqlite3_get_autocommit(st->h) != 0;
    return exec(st, *own ? "BEGIN IMMEDIATE" : "SAVEPOINT inc_op");
}

static int tx_end(struct inc_store *st, int own, int rc)
{
    if (rc >= 0) {
        int r = exec(st, own ? "COMMIT" : "RELEASE inc_op");
        if (r == 0) {
            return rc;
        }
        rc = r;
    }
    if (own) {
        exec_quiet(st, "ROLLBACK");
    } else {
        exec_quiet(st, "ROLLBACK TO inc_op");
        exec_quiet(st, "RELEASE inc_op");
    }
    return rc;
}

static char *col_dup(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? wp_xstrdup((const char *)t) : NULL;
}

static void col_cpy(sqlite3_stmt *s, int i, char *dst, size_t size)
{
    cpy(dst, size, (const char *)sqlite3_column_text(s, i));
}

/* The row at the statement's cursor (columns COLS). */
static void read_row(sqlite3_stmt *s, struct irow *o)
{
    struct inc_row *r = &o->r;

    memset(o, 0, sizeof(*o));
    r->id = sqlite3_column_int64(s, 0);
    col_cpy(s, 1, r->fingerprint, sizeof(r->fingerprint));
    r->status = (enum inc_status)sqlite3_column_int(s, 2);
    r->priority = sqlite3_column_int(s, 3);
    r->impact = sqlite3_column_int(s, 4);
    r->urgency = sqlite3_column_int(s, 5);
    col_cpy(s, 6, r->category, sizeof(r->category));
    col_cpy(s, 7, r->rule, sizeof(r->rule));
    col_cpy(s, 8, r->host, sizeof(r->host));
    col_cpy(s, 9, r->summary, sizeof(r->summary));
    r->description = col_dup(s, 10);
    r->runbook = col_dup(s, 11);
    r->values_json = col_dup(s, 12);
    r->opened_ms = sqlite3_column_int64(s, 13);
    r->acked_ms = sqlite3_column_int64(s, 14);
    r->resolved_ms = sqlite3_column_int64(s, 15);
    r->closed_ms = sqlite3_column_int64(s, 16);
    r->response_due_ms = sqlite3_column_int64(s, 17);
    r->resolve_due_ms = sqlite3_column_int64(s, 18);
    r->escalation = sqlite3_column_int(s, 19);
    r->suppressed = sqlite3_column_int(s, 20);
    r->flapping = sqlite3_column_int(s, 21);
    r->reopened = sqlite3_column_int(s, 22);
    col_cpy(s, 23, r->acked_by, sizeof(r->acked_by));
    o->value_update_ms = sqlite3_column_int64(s, 24);
    o->flap_due_ms = sqlite3_column_int64(s, 25);
}

void inc_row_cleanup(struct inc_row *r)
{
    if (r == NULL) {
        return;
    }
    free(r->description);
    free(r->runbook);
    free(r->values_json);
    r->description = NULL;
    r->runbook = NULL;
    r->values_json = NULL;
}

/* One row of a prepared single-row query whose ?1 is bound. 0, WP_ENOTFOUND or WP_EDB. */
static int fetch_one(struct inc_store *st, sqlite3_stmt *s, struct irow *o)
{
    int r = sqlite3_step(s);
    int rc = 0;

    memset(o, 0, sizeof(*o));
    if (r == SQLITE_ROW) {
        read_row(s, o);
    } else if (r == SQLITE_DONE) {
        rc = WP_ENOTFOUND;
    } else {
        rc = dberr(st, "read incident");
    }
    finish(s);
    return rc;
}

static int get_by_id(struct inc_store *st, int64_t id, struct irow *o)
{
    sqlite3_stmt *s = st->stmt[S_GET];

    sqlite3_bind_int64(s, 1, id);
    return fetch_one(st, s, o);
}

static int get_by_fp(struct inc_store *st, int which, const char *fp, struct irow *o)
{
    sqlite3_stmt *s = st->stmt[which];

    bind_text(s, 1, fp);
    return fetch_one(st, s, o);
}

static int timeline_add(struct inc_store *st, int64_t id, int64_t at_ms, const char *kind,
                        const char *by, const char *text)
{
    sqlite3_stmt *s = st->stmt[S_TL_ADD];

    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, at_ms);
    bind_text(s, 3, kind);
    bind_text(s, 4, by ? by : "");
    bind_text(s, 5, text ? text : "");
    return run(st, s, "add timeline entry");
}

static int timeline_addf(struct inc_store *st, int64_t id, int64_t at_ms, const char *kind,
                         const char *by, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static int timeline_addf(struct inc_store *st, int64_t id, int64_t at_ms, const char *kind,
                         const char *by, const char *fmt, ...)
{
    va_list ap;
    char *text = NULL;
    int rc = 0;
    int n = 0;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return -EINVAL;
    }
    text = wp_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(text, (size_t)n + 1, fmt, ap);
    va_end(ap);
    rc = timeline_add(st, id, at_ms, kind, by, text);
    free(text);
    return rc;
}

/* ---- flap bookkeeping ---- */

static int flap_load(struct inc_store *st, const char *fp, struct flap *f)
{
    sqlite3_stmt *s = st->stmt[S_FLAP_GET];
    int rc = 0;

    memset(f, 0, sizeof(*f));
    bind_text(s, 1, fp);
    int r = sqlite3_step(s);
    if (r == SQLITE_ROW) {
        const char *p = (const char *)sqlite3_column_text(s, 2);
        f->exists = 1;
        f->last_signal = sqlite3_column_int(s, 0);
        f->last_change_ms = sqlite3_column_int64(s, 1);
        while (p != NULL && *p != '\0' && f->n < FLAP_MAX) {
            char *end = NULL;
            long long v = strtoll(p, &end, 10);
            if (end == p) {
                break;
            }
            f->t[f->n++] = (int64_t)v;
            p = *end == ',' ? end + 1 : end;
        }
    } else if (r != SQLITE_DONE) {
        rc = dberr(st, "read flap state");
    }
    finish(s);
    return rc;
}

/* flap_changes 0 turns flapping detection off. */
static int flap_on(const struct inc_store *st)
{
    return st->pol.flap_changes > 0;
}

/* Changes within the flap window ending at now_ms. */
static int flap_count(const struct inc_store *st, const struct flap *f, int64_t now_ms)
{
    int c = 0;

    for (int i = 0; i < f->n; i++) {
        if (now_ms - f->t[i] < st->pol.flap_window_ms) {
            c++;
        }
    }
    return c;
}

/*
 * Record a fire (signal 1) or clear (0) of fp. A change is a signal different from the last
 * one; no record counts as "clear", so the first fire is a change. Sets *changed and the
 * number of changes within the flap window.
 */
static int flap_signal(struct inc_store *st, const char *fp, int signal, int64_t now_ms,
                       int *changed, int *count)
{
    struct flap f;
    char *buf = NULL;
    size_t size = 0;
    size_t len = 0;
    int keep = flap_on(st) ? st->pol.flap_changes : 1;
    int rc = flap_load(st, fp, &f);

    *changed = 0;
    *count = 0;
    if (rc < 0) {
        return rc;
    }
    if ((f.exists ? f.last_signal : 0) == signal) {
        *count = flap_count(st, &f, now_ms);
        return 0;
    }
    /* keep only changes inside the window; flapping needs no more than the newest
     * flap_changes of them */
    int k = 0;
    for (int i = 0; i < f.n; i++) {
        if (now_ms - f.t[i] < st->pol.flap_window_ms) {
            f.t[k++] = f.t[i];
        }
    }
    f.n = k;
    if (f.n >= keep) {
        memmove(f.t, f.t + (f.n - keep + 1), sizeof(f.t[0]) * (size_t)(keep - 1));
        f.n = keep - 1;
    }
    f.t[f.n++] = now_ms;
    size = (size_t)f.n * 21 + 1;
    buf = wp_xmalloc(size);
    buf[0] = '\0';
    for (int i = 0; i < f.n; i++) {
        int w = snprintf(buf + len, size - len, "%s%" PRId64, i ? "," : "", f.t[i]);
        if (w < 0 || (size_t)w >= size - len) {
            break;
        }
        len += (size_t)w;
    }
    sqlite3_stmt *s = st->stmt[S_FLAP_PUT];
    bind_text(s, 1, fp);
    sqlite3_bind_int(s, 2, signal);
    sqlite3_bind_int64(s, 3, now_ms);
    bind_text(s, 4, buf);
    free(buf);
    rc = run(st, s, "write flap state");
    if (rc < 0) {
        return rc;
    }
    *changed = 1;
    *count = flap_count(st, &f, now_ms);
    return 0;
}

/* ---- escalation ---- */

static const int level_pct[5] = {0, 0, 50, 80, 100};

/* When level (1..4) becomes due. */
static int64_t level_time(const struct inc_row *r, int level)
{
    if (level == 1) {
        return r->response_due_ms;
    }
    return r->opened_ms + (r->resolve_due_ms - r->opened_ms) * level_pct[level] / 100;
}

/* Level 1 is about the response: only while open and never acknowledged (a reopened incident
 * that was acknowledged before met its response deadline). 2..4 while unresolved. */
static int level_applies(const struct inc_row *r, int level)
{
    if (r->status != INC_OPEN && r->status != INC_ACKNOWLEDGED) {
        return 0;
    }
    if (level == 1) {
        return r->status == INC_OPEN && r->acked_ms == 0;
    }
    return 1;
}

static int active(const struct inc_row *r)
{
    return r->status == INC_OPEN || r->status == INC_ACKNOWLEDGED;
}

/* The next time inc_tick has work for this row, or NO_DUE. */
static int64_t next_due(const struct irow *o)
{
    const struct inc_row *r = &o->r;
    int64_t due = NO_DUE;

    if (!active(r)) {
        return NO_DUE;
    }
    if (!r->suppressed) {
        for (int l = r->escalation + 1; l <= 4; l++) {
            if (level_applies(r, l) && level_time(r, l) < due) {
                due = level_time(r, l);
            }
        }
    }
    if (r->flapping && o->flap_due_ms < due) {
        due = o->flap_due_ms;
    }
    return due;
}

/* Write the mutable columns of o and its next due time. */
static int save(struct inc_store *st, const struct irow *o)
{
    const struct inc_row *r = &o->r;
    sqlite3_stmt *s = st->stmt[S_SAVE];

    sqlite3_bind_int64(s, 1, r->id);
    sqlite3_bind_int(s, 2, (int)r->status);
    sqlite3_bind_int64(s, 3, r->acked_ms);
    sqlite3_bind_int64(s, 4, r->resolved_ms);
    sqlite3_bind_int64(s, 5, r->closed_ms);
    sqlite3_bind_int(s, 6, r->escalation);
    sqlite3_bind_int(s, 7, r->suppressed);
    sqlite3_bind_int(s, 8, r->flapping);
    sqlite3_bind_int(s, 9, r->reopened);
    bind_text(s, 10, r->acked_by);
    sqlite3_bind_int64(s, 11, o->value_update_ms);
    sqlite3_bind_int64(s, 12, o->flap_due_ms);
    bind_due(s, 13, next_due(o));
    return run(st, s, "update incident");
}

/* ---- open / close ---- */

static int check_policy(struct inc_store *st, const struct inc_policy *p)
{
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) {
            if (p->matrix[i][j] < 1 || p->matrix[i][j] > INC_NPRIO) {
                seterr(st, "policy: priority matrix entry %d/%d is %d, not 1..4", i + 1, j + 1,
                       p->matrix[i][j]);
                return -EINVAL;
            }
        }
    }
    for (int i = 0; i < INC_NPRIO; i++) {
        if (p->response_ms[i] <= 0 || p->resolve_ms[i] <= 0) {
            seterr(st, "policy: P%d response and resolve times must be positive", i + 1);
            return -EINVAL;
        }
    }
    if (p->reopen_window_ms < 0 || p->flap_changes < 0 || p->flap_changes == 1 ||
        p->flap_changes > FLAP_MAX || p->flap_window_ms <= 0) {
        seterr(st, "policy: reopen window >= 0, flap changes 0 (off) or 2..%d, flap window > 0",
               FLAP_MAX);
        return -EINVAL;
    }
    return 0;
}

static int user_version(struct inc_store *st, int *out)
{
    sqlite3_stmt *s = NULL;
    int rc = 0;

    *out = 0;
    if (sqlite3_prepare_v2(st->h, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK) {
        return dberr(st, "read schema version");
    }
    if (sqlite3_step(s) == SQLITE_ROW) {
        *out = sqlite3_column_int(s, 0);
    } else {
        rc = dberr(st, "read schema version");
    }
    sqlite3_finalize(s);
    return rc;
}

static int make_schema(struct inc_store *st, const char *path)
{
    char sql[64];
    int ver = 0;
    int own = 0;
    int rc = tx_begin(st, &own);

    if (rc < 0) {
        return rc;
    }
    rc = user_version(st, &ver);
    if (rc == 0 && ver > INC_SCHEMA_VERSION) {
        seterr(st, "%s: schema version %d is newer than this program's (%d)", path, ver,
               INC_SCHEMA_VERSION);
        rc = WP_EVERSION;
    }
    if (rc == 0) {
        rc = exec(st, schema);
    }
    if (rc == 0 && ver < INC_SCHEMA_VERSION) {
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", INC_SCHEMA_VERSION);
        rc = exec(st, sql);
    }
    return tx_end(st, own, rc);
}

int inc_open(const char *path, const struct inc_policy *p, struct inc_store **out)
{
    int rc = 0;
    struct inc_store *st = wp_xcalloc(1, sizeof(*st));

    *out = NULL;
    if (p != NULL) {
        st->pol = *p;
    } else {
        inc_policy_default(&st->pol);
    }
    rc = check_policy(st, &st->pol);
    if (rc < 0) {
        goto out;
    }
    if (sqlite3_open_v2(path, &st->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        seterr(st, "cannot open %s: %s", path, st->h ? sqlite3_errmsg(st->h) : "no memory");
        rc = WP_EDB;
        goto out;
    }
    sqlite3_busy_timeout(st->h, 5000);
    sqlite3_extended_result_codes(st->h, 1);
    rc = exec(st, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;");
    if (rc < 0) {
        goto out;
    }
    rc = make_schema(st, path);
    if (rc < 0) {
        goto out;
    }
    for (int i = 0; i < S_COUNT; i++) {
        if (sqlite3_prepare_v3(st->h, sqls[i], -1, SQLITE_PREPARE_PERSISTENT, &st->stmt[i], NULL) !=
            SQLITE_OK) {
            rc = dberr(st, "prepare");
            goto out;
        }
    }
    *out = st;
    st = NULL;
out:
    if (st != NULL) {
        WP_ERROR("incident", "%s", st->err);
    }
    inc_close(st);
    return rc;
}

void inc_close(struct inc_store *st)
{
    if (st == NULL) {
        return;
    }
    for (int i = 0; i < S_COUNT; i++) {
        sqlite3_finalize(st->stmt[i]);
    }
    sqlite3_close(st->h);
    free(st);
}

int inc_begin(struct inc_store *st)
{
    return exec(st, "BEGIN IMMEDIATE");
}

int inc_commit(struct inc_store *st)
{
    int rc = exec(st, "COMMIT");

    if (rc < 0) {
        exec_quiet(st, "ROLLBACK");
    }
    return rc;
}

/* ---- signals from the rules engine ---- */

static int mark_flapping(struct inc_store *st, struct irow *o, int count, int64_t now_ms)
{
    char w[32];

    o->r.flapping = 1;
    return timeline_addf(st, o->r.id, now_ms, "flapping", BY_RULE,
                         "%d state changes within %s: a clear does not resolve it until the "
                         "condition stays put for %s",
                         count, fmt_dur(st->pol.flap_window_ms, w, sizeof(w)), w);
}

static int set_values(struct inc_store *st, int64_t id, const struct inc_signal *sig)
{
    sqlite3_stmt *s = st->stmt[S_SET_VALUES];

    sqlite3_bind_int64(s, 1, id);
    bind_text(s, 2, sig->summary);
    bind_text(s, 3, sig->values_json);
    return run(st, s, "update incident values");
}

static int insert(struct inc_store *st, const struct inc_signal *sig, int64_t now_ms, int64_t *id)
{
    int prio = st->pol.matrix[sig->impact - 1][sig->urgency - 1];
    sqlite3_stmt *s = st->stmt[S_INSERT];

    bind_text(s, 1, sig->fingerprint);
    sqlite3_bind_int(s, 2, prio);
    sqlite3_bind_int(s, 3, sig->impact);
    sqlite3_bind_int(s, 4, sig->urgency);
    bind_text(s, 5, sig->category ? sig->category : "");
    bind_text(s, 6, sig->rule ? sig->rule : "");
    bind_text(s, 7, sig->host ? sig->host : "");
    bind_text(s, 8, sig->summary ? sig->summary : "");
    bind_text(s, 9, sig->description);
    bind_text(s, 10, sig->runbook);
    bind_text(s, 11, sig->values_json);
    sqlite3_bind_int64(s, 12, now_ms);
    sqlite3_bind_int64(s, 13, now_ms + st->pol.response_ms[prio - 1]);
    sqlite3_bind_int64(s, 14, now_ms + st->pol.resolve_ms[prio - 1]);
    int rc = run(st, s, "insert incident");
    if (rc < 0) {
        return rc;
    }
    *id = sqlite3_last_insert_rowid(st->h);
    return 0;
}

static const char *const level_names[4] = {"high", "medium", "low", "?"};

static int fire_locked(struct inc_store *st, const struct inc_signal *sig, int64_t now_ms,
                       int64_t *id_out)
{
    struct irow o;
    char d[32];
    int changed = 0;
    int count = 0;
    int ret = 0;
    int rc = flap_signal(st, sig->fingerprint, 1, now_ms, &changed, &count);

    memset(&o, 0, sizeof(o));
    if (rc < 0) {
        goto out;
    }
    rc = get_by_fp(st, S_FIND_ACTIVE, sig->fingerprint, &o);
    if (rc == 0) {
        /* still (or again, while flapping) firing: refresh the values */
        if (now_ms - o.value_update_ms >= VALUE_UPDATE_MS && sig->values_json != NULL &&
            (o.r.values_json == NULL || strcmp(o.r.values_json, sig->values_json) != 0)) {
            rc = timeline_add(st, o.r.id, now_ms, "value update", BY_RULE, sig->values_json);
            if (rc < 0) {
                goto out;
            }
            o.value_update_ms = now_ms;
        }
        rc = set_values(st, o.r.id, sig);
    } else if (rc == WP_ENOTFOUND) {
        rc = get_by_fp(st, S_FIND_RESOLVED, sig->fingerprint, &o);
        if (rc == 0 && now_ms - o.r.resolved_ms <= st->pol.reopen_window_ms) {
            /* the SLA clock does not restart: deadlines and escalation level stay */
            int64_t ago = now_ms - o.r.resolved_ms;
            o.r.status = INC_OPEN;
            o.r.resolved_ms = 0;
            o.r.reopened++;
            /* a suppression of its earlier life ended with the condition (the rules engine
             * does not lift it on a resolved incident): the caller suppresses it again if
             * its host still is, else it would stay silent and never escalate */
            o.r.suppressed = 0;
            o.value_update_ms = now_ms;
            rc = timeline_addf(st, o.r.id, now_ms, "reopened", BY_RULE,
                               "fired again %s after it was resolved (reopened %d time%s)%s%s",
                               fmt_dur(ago, d, sizeof(d)), o.r.reopened,
                               o.r.reopened == 1 ? "" : "s", sig->values_json ? "; values " : "",
                               sig->values_json ? sig->values_json : "");
            if (rc == 0) {
                rc = set_values(st, o.r.id, sig);
            }
            ret = 1;
        } else if (rc == 0 || rc == WP_ENOTFOUND) {
            int64_t id = 0;
            inc_row_cleanup(&o.r);
            rc = insert(st, sig, now_ms, &id);
            if (rc == 0) {
                rc = get_by_id(st, id, &o);
            }
            if (rc == 0) {
                rc = timeline_addf(
                    st, id, now_ms, "opened", BY_RULE, "P%d (impact %s, urgency %s): %s%s%s",
                    o.r.priority, level_names[sig->impact - 1], level_names[sig->urgency - 1],
                    sig->summary ? sig->summary : "", sig->values_json ? "; values " : "",
                    sig->values_json ? sig->values_json : "");
            }
            ret = 1;
        }
    }
    if (rc < 0) {
        goto out;
    }
    if (changed && !o.r.flapping && flap_on(st) && count >= st->pol.flap_changes) {
        rc = mark_flapping(st, &o, count, now_ms);
        if (rc < 0) {
            goto out;
        }
    }
    if (changed && o.r.flapping) {
        o.flap_due_ms = now_ms + st->pol.flap_window_ms;
    }
    rc = save(st, &o);
    if (rc < 0) {
        goto out;
    }
    if (id_out != NULL) {
        *id_out = o.r.id;
    }
out:
    inc_row_cleanup(&o.r);
    return rc < 0 ? rc : ret;
}

int inc_fire(struct inc_store *st, const struct inc_signal *sig, int64_t now_ms, int64_t *id_out)
{
    int own = 0;
    int rc = 0;

    if (id_out != NULL) {
        *id_out = 0;
    }
    if (sig == NULL || blank(sig->fingerprint)) {
        seterr(st, "fire: the signal has no fingerprint");
        return -EINVAL;
    }
    if (sig->impact < 1 || sig->impact > 3 || sig->urgency < 1 || sig->urgency > 3) {
        seterr(st, "fire %s: impact %d / urgency %d, each must be 1 (high) .. 3 (low)",
               sig->fingerprint, sig->impact, sig->urgency);
        return -EINVAL;
    }
    rc = tx_begin(st, &own);
    if (rc < 0) {
        return rc;
    }
    rc = fire_locked(st, sig, now_ms, id_out);
    return tx_end(st, own, rc);
}

static int clear_locked(struct inc_store *st, const char *fp, int64_t now_ms)
{
    struct irow o;
    char w[32];
    int changed = 0;
    int count = 0;
    int rc = flap_signal(st, fp, 0, now_ms, &changed, &count);

    memset(&o, 0, sizeof(o));
    if (rc < 0) {
        goto out;
    }
    rc = get_by_fp(st, S_FIND_ACTIVE, fp, &o);
    if (rc == WP_ENOTFOUND) {
        rc = 0; /* nothing open */
        goto out;
    }
    if (rc < 0) {
        goto out;
    }
    if (changed && !o.r.flapping && flap_on(st) && count >= st->pol.flap_changes) {
        rc = mark_flapping(st, &o, count, now_ms);
        if (rc < 0) {
            goto out;
        }
    }
    if (changed && o.r.flapping) {
        o.flap_due_ms = now_ms + st->pol.flap_window_ms;
    }
    if (o.r.flapping) {
        if (changed) {
            rc = timeline_addf(st, o.r.id, now_ms, "cleared", BY_RULE,
                               "condition cleared while flapping: stays open until no change "
                               "for %s",
                               fmt_dur(st->pol.flap_window_ms, w, sizeof(w)));
        }
    } else {
        o.r.status = INC_RESOLVED;
        o.r.resolved_ms = now_ms;
        rc = timeline_add(st, o.r.id, now_ms, "resolved", BY_RULE, "condition cleared");
    }
    if (rc == 0) {
        rc = save(st, &o);
    }
out:
    inc_row_cleanup(&o.r);
    return rc;
}

int inc_clear(struct inc_store *st, const char *fingerprint, int64_t now_ms)
{
    int own = 0;
    int rc = 0;

    if (blank(fingerprint)) {
        seterr(st, "clear: no fingerprint");
        return -EINVAL;
    }
    rc = tx_begin(st, &own);
    if (rc < 0) {
        return rc;
    }
    rc = clear_locked(st, fingerprint, now_ms);
    return tx_end(st, own, rc);
}

int inc_suppress(struct inc_store *st, const char *fingerprint, int on, const char *reason,
                 int64_t now_ms)
{
    struct irow o;
    int own = 0;
    int rc = 0;

    memset(&o, 0, sizeof(o));
    if (blank(fingerprint)) {
        seterr(st, "suppress: no fingerprint");
        return -EINVAL;
    }
    rc = tx_begin(st, &own);
    if (rc < 0) {
        return rc;
    }
    rc = get_by_fp(st, S_FIND_ACTIVE, fingerprint, &o);
    if (rc == WP_ENOTFOUND) {
        rc = 0; /* nothing open to suppress */
        goto out;
    }
    if (rc < 0 || (o.r.suppressed != 0) == (on != 0)) {
        goto out;
    }
    o.r.suppressed = on != 0;
    rc = timeline_addf(
        st, o.r.id, now_ms, on ? "suppressed" : "unsuppressed", BY_RULE, "%s%s",
        blank(reason) ? "" : reason,
        on ? (blank(reason) ? "no escalation while suppressed" : "; no escalation while suppressed")
           : (blank(reason) ? "escalation resumes" : "; escalation resumes"));
    if (rc == 0) {
        rc = save(st, &o);
    }
out:
    inc_row_cleanup(&o.r);
    return tx_end(st, own, rc);
}

/* ---- tick ---- */

static const char *const level_text[5] = {
    "", "", "second line", "third line / vendor", "management",
};

static int escalate(struct inc_store *st, struct irow *o, int level, int64_t now_ms)
{
    const struct inc_row *r = &o->r;
    char d[32];
    int rc = 0;

    if (level == 1) {
        rc = timeline_addf(st, r->id, now_ms, "escalated", BY_SYSTEM,
                           "level 1: response time (%s) passed without acknowledgement",
                           fmt_dur(r->response_due_ms - r->opened_ms, d, sizeof(d)));
    } else {
        rc = timeline_addf(
            st, r->id, now_ms, "escalated", BY_SYSTEM,
            "level %d: %d%% of the resolve time (%s) passed, %s", level, level_pct[level],
            fmt_dur(r->resolve_due_ms - r->opened_ms, d, sizeof(d)), level_text[level]);
    }
    if (rc == 0) {
        o->r.escalation = level;
    }
    return rc;
}

/* Work due for one incident; adds the escalation steps taken to *steps. */
static int tick_one(struct inc_store *st, int64_t id, int64_t now_ms, int *steps)
{
    struct irow o;
    struct flap f;
    char w[32];
    int rc = get_by_id(st, id, &o);

    if (rc < 0) {
        return rc == WP_ENOTFOUND ? 0 : rc;
    }
    if (!active(&o.r)) {
        goto save;
    }
    if (o.r.flapping) {
        rc = flap_load(st, o.r.fingerprint, &f);
        if (rc < 0) {
            goto out;
        }
        if (now_ms >= o.flap_due_ms) {
            o.r.flapping = 0;
            o.flap_due_ms = 0;
            if (f.exists && f.last_signal == 1) {
                rc = timeline_addf(st, id, now_ms, "flapping stopped", BY_SYSTEM,
                                   "no state change for %s; the condition still holds",
                                   fmt_dur(st->pol.flap_window_ms, w, sizeof(w)));
            } else {
                o.r.status = INC_RESOLVED;
                o.r.resolved_ms = now_ms;
                rc = timeline_add(st, id, now_ms, "resolved", BY_RULE,
                                  "resolved after flapping stopped");
            }
            if (rc < 0) {
                goto out;
            }
        }
    }
    /* levels only go up; several due at once are taken in order, each on the timeline */
    for (int l = o.r.escalation + 1; l <= 4 && !o.r.suppressed; l++) {
        if (level_applies(&o.r, l) && now_ms >= level_time(&o.r, l)) {
            rc = escalate(st, &o, l, now_ms);
            if (rc < 0) {
                goto out;
            }
            (*steps)++;
        }
    }
save:
    rc = save(st, &o);
out:
    inc_row_cleanup(&o.r);
    return rc;
}

int inc_tick(struct inc_store *st, int64_t now_ms)
{
    sqlite3_stmt *s = st->stmt[S_DUE];
    int64_t *ids = NULL;
    size_t n = 0;
    size_t cap = 0;
    int steps = 0;
    int own = 0;
    int rc = 0;
    int r = 0;

    /* find what is due without the write lock; most ticks have nothing to do */
    sqlite3_bind_int64(s, 1, now_ms);
    for (r = sqlite3_step(s); r == SQLITE_ROW; r = sqlite3_step(s)) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            ids = wp_xrealloc(ids, cap * sizeof(*ids));
        }
        ids[n++] = sqlite3_column_int64(s, 0);
    }
    finish(s);
    if (r != SQLITE_DONE) {
        rc = dberr(st, "find due incidents");
        goto out;
    }
    if (n > 0) {
        rc = tx_begin(st, &own);
        if (rc < 0) {
            goto out;
        }
        for (size_t i = 0; i < n && rc == 0; i++) {
            rc = tick_one(st, ids[i], now_ms, &steps);
        }
        rc = tx_end(st, own, rc);
        if (rc < 0) {
            goto out;
        }
    }
    /* a clear signal without recent changes is the same as no record */
    s = st->stmt[S_FLAP_PRUNE];
    sqlite3_bind_int64(s, 1, now_ms - st->pol.flap_window_ms);
    rc = run(st, s, "prune flap state");
out:
    free(ids);
    return rc < 0 ? rc : steps;
}

/* ---- operators ---- */

/* Load incident id for an operator action; WP_ENOTFOUND with a message. */
static int op_load(struct inc_store *st, int64_t id, struct irow *o, char *err, size_t errlen)
{
    int rc = get_by_id(st, id, o);

    if (rc == WP_ENOTFOUND) {
        operr(st, err, errlen, "no incident %" PRId64, id);
    } else if (rc < 0) {
        operr_db(st, err, errlen);
    }
    return rc;
}

int inc_ack(struct inc_store *st, int64_t id, const char *by, const char *note, int64_t now_ms,
            char *err, size_t errlen)
{
    struct irow o;
    int own = 0;
    int rc = 0;

    memset(&o, 0, sizeof(o));
    if (blank(by)) {
        operr(st, err, errlen, "acknowledging incident %" PRId64 " needs a name (by)", id);
        return -EINVAL;
    }
    rc = tx_begin(st, &own);
    if (rc < 0) {
        operr_db(st, err, errlen);
        return rc;
    }
    rc = op_load(st, id, &o, err, errlen);
    if (rc < 0) {
        goto out;
    }
    if (o.r.status == INC_ACKNOWLEDGED) {
        operr(st, err, errlen, "incident %" PRId64 " is already acknowledged by %s", id,
              o.r.acked_by);
        rc = -EINVAL;
        goto out;
    }
    if (o.r.status != INC_OPEN) {
        operr(st, err, errlen,
              "incident %" PRId64 " is %s: only open incidents can be acknowledged", id,
              inc_status_name(o.r.status));
        rc = -EINVAL;
        goto out;
    }
    o.r.status = INC_ACKNOWLEDGED;
    o.r.acked_ms = now_ms;
    cpy(o.r.acked_by, sizeof(o.r.acked_by), by);
    rc = timeline_add(st, id, now_ms, "acknowledged", by, note);
    if (rc == 0) {
        rc = save(st, &o);
    }
    if (rc < 0) {
        operr_db(st, err, errlen);
    }
out:
    inc_row_cleanup(&o.r);
    return tx_end(st, own, rc);
}

int inc_resolve(struct inc_store *st, int64_t id, const char *by, const char *note, int64_t now_ms,
                char *err, size_t errlen)
{
    struct irow o;
    int own = 0;
    int rc = 0;

    memset(&o, 0, sizeof(o));
    if (blank(by)) {
        operr(st, err, errlen, "resolving incident %" PRId64 " needs a name (by)", id);
        return -EINVAL;
    }
    rc = tx_begin(st, &own);
    if (rc < 0) {
        operr_db(st, err, errlen);
        return rc;
    }
    rc = op_load(st, id, &o, err, errlen);
    if (rc < 0) {
        goto out;
    }
    if (!active(&o.r)) {
        operr(st, err, errlen, "incident %" PRId64 " is %s%s", id,
              o.r.status == INC_RESOLVED ? "already " : "", inc_status_name(o.r.status));
        rc = -EINVAL;
        goto out;
    }
    if (blank(note)) {
        operr(st, err, errlen,
              "resolving incident %" PRId64 " needs a note: what was the cause, what was done", id);
        rc = -EINVAL;
        goto out;
    }
    o.r.status = INC_RESOLVED;
    o.r.resolved_ms = now_ms;
    rc = timeline_add(st, id, now_ms, "resolved", by, note);
    if (rc == 0) {
        rc = save(st, &o);
    }
    if (rc < 0) {
        operr_db(st, err, errlen);
    }
out:
    inc_row_cleanup(&o.r);
    return tx_end(st, own, rc);
}

int inc_close_incident(struct inc_store *st, int64_t id, const char *by, int64_t now_ms, char *err,
                       size_t errlen)
{
    struct irow o;
    int own = 0;
    int rc = 0;

    memset(&o, 0, sizeof(o));
    if (blank(by)) {
        operr(st, err, errlen, "closing incident %" PRId64 " needs a name (by)", id);
        return -EINVAL;
    }
    rc = tx_begin(st, &own);
    if (rc < 0) {
        operr_db(st, err, errlen);
        return rc;
    }
    rc = op_load(st, id, &o, err, errlen);
    if (rc < 0) {
        goto out;
    }
    if (o.r.status == INC_CLOSED) {
        operr(st, err, errlen, "incident %" PRId64 " is already closed", id);
        rc = -EINVAL;
        goto out;
    }
    if (o.r.status != INC_RESOLVED) {
        operr(st, err, errlen, "incident %" PRId64 " is %s: resolve it first", id,
              inc_status_name(o.r.status));
        rc = -EINVAL;
        goto out;
    }
    o.r.status = INC_CLOSED;
    o.r.closed_ms = now_ms;
    rc = timeline_add(st, id, now_ms, "closed", by, "");
    if (rc == 0) {
        rc = save(st, &o);
    }
    if (rc < 0) {
        operr_db(st, err, errlen);
    }
out:
    inc_row_cleanup(&o.r);
    return tx_end(st, own, rc);
}

int inc_note(struct inc_store *st, int64_t id, const char *kind, const char *by, const char *text,
             int64_t now_ms)
{
    struct irow o;
    int own = 0;
    int rc = 0;

    memset(&o, 0, sizeof(o));
    if (blank(kind)) {
        seterr(st, "note on incident %" PRId64 ": no kind", id);
        return -EINVAL;
    }
    rc = tx_begin(st, &own);
    if (rc < 0) {
        return rc;
    }
    rc = op_load(st, id, &o, NULL, 0);
    if (rc == 0) {
        rc = timeline_add(st, id, now_ms, kind, by, text);
    }
    inc_row_cleanup(&o.r);
    return tx_end(st, own, rc);
}

/* ---- queries ---- */

int inc_list(struct inc_store *st, int status, int priority,
             int (*fn)(void *arg, const struct inc_row *r), void *arg)
{
    sqlite3_stmt *s = NULL;
    struct irow o;
    int rc = 0;
    int r = 0;

    /* a statement of its own: fn may call back into the store */
    if (sqlite3_prepare_v2(st->h,
                           "SELECT " COLS " FROM incidents WHERE (?1 < 0 OR status = ?1)"
                           " AND (?2 = 0 OR priority = ?2) ORDER BY id",
                           -1, &s, NULL) != SQLITE_OK) {
        return dberr(st, "list incidents");
    }
    sqlite3_bind_int(s, 1, status);
    sqlite3_bind_int(s, 2, priority);
    for (r = sqlite3_step(s); r == SQLITE_ROW; r = sqlite3_step(s)) {
        read_row(s, &o);
        int stop = fn(arg, &o.r);
        inc_row_cleanup(&o.r);
        if (stop != 0) {
            break;
        }
    }
    if (r != SQLITE_ROW && r != SQLITE_DONE) {
        rc = dberr(st, "list incidents");
    }
    sqlite3_finalize(s);
    return rc;
}

int inc_get(struct inc_store *st, int64_t id, struct inc_row *out)
{
    struct irow o;
    int rc = get_by_id(st, id, &o);

    if (rc == WP_ENOTFOUND) {
        seterr(st, "no incident %" PRId64, id);
    }
    *out = o.r;
    return rc;
}

int inc_find_open(struct inc_store *st, const char *fingerprint, struct inc_row *out)
{
    struct irow o;
    int rc = get_by_fp(st, S_FIND_ACTIVE, fingerprint, &o);

    if (rc == WP_ENOTFOUND) {
        seterr(st, "no open incident for %s", fingerprint ? fingerprint : "(null)");
    }
    *out = o.r;
    return rc;
}

int inc_timeline(struct inc_store *st, int64_t id,
                 int (*fn)(void *arg, int64_t at_ms, const char *kind, const char *by,
                           const char *text),
                 void *arg)
{
    sqlite3_stmt *s = NULL;
    int rc = 0;
    int r = 0;

    if (sqlite3_prepare_v2(st->h,
                           "SELECT at_ms, kind, \"by\", text FROM timeline WHERE incident_id = ?1"
                           " ORDER BY at_ms, id",
                           -1, &s, NULL) != SQLITE_OK) {
        return dberr(st, "read timeline");
    }
    sqlite3_bind_int64(s, 1, id);
    for (r = sqlite3_step(s); r == SQLITE_ROW; r = sqlite3_step(s)) {
        const char *kind = (const char *)sqlite3_column_text(s, 1);
        const char *by = (const char *)sqlite3_column_text(s, 2);
        const char *text = (const char *)sqlite3_column_text(s, 3);
        if (fn(arg, sqlite3_column_int64(s, 0), kind ? kind : "", by ? by : "", text ? text : "") !=
            0) {
            break;
        }
    }
    if (r != SQLITE_ROW && r != SQLITE_DONE) {
        rc = dberr(st, "read timeline");
    }
    sqlite3_finalize(s);
    return rc;
}

/* ---- rule state ---- */

int inc_state_put(struct inc_store *st, const char *key, int state, int64_t since_ms)
{
    sqlite3_stmt *s = st->stmt[S_STATE_PUT];

    if (key == NULL) {
        seterr(st, "rule state: no key");
        return -EINVAL;
    }
    bind_text(s, 1, key);
    sqlite3_bind_int(s, 2, state);
    sqlite3_bind_int64(s, 3, since_ms);
    return run(st, s, "write rule state");
}

int inc_state_del(struct inc_store *st, const char *key)
{
    sqlite3_stmt *s = st->stmt[S_STATE_DEL];

    if (key == NULL) {
        seterr(st, "rule state: no key");
        return -EINVAL;
    }
    bind_text(s, 1, key);
    return run(st, s, "delete rule state");
}

int inc_state_each(struct inc_store *st,
                   int (*fn)(void *arg, const char *key, int state, int64_t since_ms), void *arg)
{
    sqlite3_stmt *s = NULL;
    int rc = 0;
    int r = 0;

    if (sqlite3_prepare_v2(st->h, "SELECT key, state, since_ms FROM rule_state ORDER BY key", -1,
                           &s, NULL) != SQLITE_OK) {
        return dberr(st, "read rule state");
    }
    for (r = sqlite3_step(s); r == SQLITE_ROW; r = sqlite3_step(s)) {
        const char *key = (const char *)sqlite3_column_text(s, 0);
        if (fn(arg, key ? key : "", sqlite3_column_int(s, 1), sqlite3_column_int64(s, 2)) != 0) {
            break;
        }
    }
    if (r != SQLITE_ROW && r != SQLITE_DONE) {
        rc = dberr(st, "read rule state");
    }
    sqlite3_finalize(s);
    return rc;
}
