/* SPDX-License-Identifier: Apache-2.0 */
/* Maintenance windows made at run time: store, validation and the in-memory active set; see
 * maint.h. */
#include "maint.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sqlite3.h>

#include "rules.h"
#include "wp/conf.h"
#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"

#define HOST_MAX  253 /* bytes of a host name or glob */
#define GROUP_MAX 128 /* bytes of a group name */

/* hosts and groups are JSON arrays of strings; ended_ms is NULL until ended early.
 * maintenance_gen holds one row: the change counter (maint_gen). */
static const char schema[] =
    "CREATE TABLE IF NOT EXISTS maintenance("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name TEXT NOT NULL, hosts TEXT NOT NULL DEFAULT '[]', groups TEXT NOT NULL DEFAULT '[]',"
    " starts_ms INTEGER NOT NULL, ends_ms INTEGER NOT NULL,"
    " reason TEXT NOT NULL DEFAULT '', created_by TEXT NOT NULL DEFAULT '',"
    " created_ms INTEGER NOT NULL, ended_ms INTEGER, ended_by TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX IF NOT EXISTS maintenance_end ON maintenance(ends_ms);"
    "CREATE TABLE IF NOT EXISTS maintenance_gen("
    " id INTEGER PRIMARY KEY CHECK (id = 1), gen INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO maintenance_gen(id, gen) VALUES(1, 0);";

#define COLS                                                                       \
    "id, name, hosts, groups, starts_ms, ends_ms, reason, created_by, created_ms," \
    " coalesce(ended_ms, 0), ended_by"

enum { S_INSERT, S_END, S_GET, S_LIST, S_GEN, S_BUMP, S_COUNT };

static const char *const sqls[S_COUNT] = {
    [S_INSERT] = "INSERT INTO maintenance(name, hosts, groups, starts_ms, ends_ms, reason,"
                 " created_by, created_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [S_END] = "UPDATE maintenance SET ended_ms = ?2, ended_by = ?3"
              " WHERE id = ?1 AND ended_ms IS NULL",
    [S_GET] = "SELECT " COLS " FROM maintenance WHERE id = ?1",
    [S_LIST] = "SELECT " COLS " FROM maintenance"
               " WHERE coalesce(ended_ms, ends_ms) >= ?1 AND ends_ms >= ?1"
               " ORDER BY starts_ms, id",
    [S_GEN] = "SELECT gen FROM maintenance_gen WHERE id = 1",
    [S_BUMP] = "UPDATE maintenance_gen SET gen = gen + 1 WHERE id = 1",
};

struct maint_store {
    sqlite3 *h;
    sqlite3_stmt *st[S_COUNT];
    char err[512];
};

struct maint_set {
    struct maint_win *w;
    int *active; /* per window: active at the last maint_set_transitions */
    size_t n;
};

/* ---- windows ---- */

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

void maint_win_cleanup(struct maint_win *w)
{
    if (w == NULL) {
        return;
    }
    free(w->name);
    strv_free(w->hosts, w->nhosts);
    strv_free(w->groups, w->ngroups);
    free(w->reason);
    free(w->created_by);
    free(w->ended_by);
    memset(w, 0, sizeof(*w));
}

int64_t maint_win_end(const struct maint_win *w)
{
    return w->ended_ms != 0 && w->ended_ms < w->ends_ms ? w->ended_ms : w->ends_ms;
}

int maint_win_active(const struct maint_win *w, int64_t now_ms)
{
    return now_ms >= w->starts_ms && now_ms < maint_win_end(w);
}

int maint_win_covers(const struct maint_win *w, const struct rule_set *rs, const char *host)
{
    const char *h = host != NULL ? host : "";

    for (size_t i = 0; i < w->nhosts; i++) {
        if (rules_glob(w->hosts[i], h)) {
            return 1;
        }
    }
    for (size_t i = 0; rs != NULL && i < w->ngroups; i++) {
        if (rules_host_in_group(rs, w->groups[i], h)) {
            return 1;
        }
    }
    return 0;
}

/* ---- validation ---- */

static int name_chars_ok(const char *s, const char *extra)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-' || strchr(extra, *p) != NULL)) {
            return 0;
        }
    }
    return 1;
}

static int has_control(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            return 1;
        }
    }
    return 0;
}

static int group_known(const struct rule_set *rs, const char *g)
{
    for (size_t i = 0; i < rs->ngroups; i++) {
        if (strcmp(rs->groups[i].name, g) == 0) {
            return 1;
        }
    }
    return 0;
}

int maint_validate(const struct maint_new *n, const struct rule_set *rs, int64_t now_ms, char *err,
                   size_t errlen)
{
    if (n->name == NULL || n->name[0] == '\0') {
        snprintf(err, errlen, "name: required (e.g. \"DB patching\")");
        return -EINVAL;
    }
    if (strlen(n->name) > MAINT_NAME_MAX || has_control(n->name)) {
        snprintf(err, errlen, "name: at most %d bytes, no control characters", MAINT_NAME_MAX);
        return -EINVAL;
    }
    if (n->nhosts + n->ngroups == 0) {
        snprintf(err, errlen, "hosts, groups: name at least one host or group");
        return -EINVAL;
    }
    if (n->nhosts + n->ngroups > MAINT_TARGETS) {
        snprintf(err, errlen, "hosts, groups: at most %d in one window", MAINT_TARGETS);
        return -EINVAL;
    }
    for (size_t i = 0; i < n->nhosts; i++) {
        const char *h = n->hosts[i];
        if (h == NULL || h[0] == '\0' || strlen(h) > HOST_MAX || !name_chars_ok(h, "*?")) {
            snprintf(err, errlen,
                     "hosts: \"%.64s\" is not a host name (letters, digits, . _ - and the globs "
                     "* ?, at most %d bytes)",
                     h != NULL ? h : "", HOST_MAX);
            return -EINVAL;
        }
    }
    for (size_t i = 0; i < n->ngroups; i++) {
        const char *g = n->groups[i];
        if (g == NULL || g[0] == '\0' || strlen(g) > GROUP_MAX || !name_chars_ok(g, "")) {
            snprintf(err, errlen, "groups: \"%.64s\" is not a group name (letters, digits, . _ -)",
                     g != NULL ? g : "");
            return -EINVAL;
        }
        if (rs != NULL && !group_known(rs, g)) {
            snprintf(err, errlen, "groups: no group \"%s\" in the rules config", g);
            return -EINVAL;
        }
    }
    if (n->starts_ms < 0 || n->starts_ms > MAINT_TIME_MAX || n->ends_ms < 0 ||
        n->ends_ms > MAINT_TIME_MAX) {
        snprintf(err, errlen, "starts, ends: times between 1970 and 9999");
        return -EINVAL;
    }
    if (n->ends_ms <= n->starts_ms) {
        snprintf(err, errlen, "ends: must be after the start");
        return -EINVAL;
    }
    if (n->ends_ms - n->starts_ms > MAINT_MAX_MS) {
        snprintf(err, errlen, "ends: a window lasts at most 31 days");
        return -EINVAL;
    }
    if (n->ends_ms <= now_ms) {
        snprintf(err, errlen, "ends: already in the past");
        return -EINVAL;
    }
    if (n->reason != NULL && strlen(n->reason) > MAINT_REASON_MAX) {
        snprintf(err, errlen, "reason: at most %d bytes", MAINT_REASON_MAX);
        return -EINVAL;
    }
    if (n->by == NULL || n->by[0] == '\0') {
        snprintf(err, errlen, "by: who creates the window is required");
        return -EINVAL;
    }
    return 0;
}

int maint_parse_time(const char *s, int64_t now_ms, int64_t *out_ms)
{
    static const char *const fmts[] = {"%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M",
                                       "%Y-%m-%d %H:%M"};
    int64_t d = 0;

    if (s == NULL || s[0] == '\0') {
        return -EINVAL;
    }
    if (strcmp(s, "now") == 0) {
        *out_ms = now_ms;
        return 0;
    }
    if (s[0] == '+') {
        if (wp_parse_duration_ms(s + 1, &d) < 0 || d < 0 || d > MAINT_TIME_MAX ||
            now_ms > MAINT_TIME_MAX) {
            return -EINVAL;
        }
        *out_ms = now_ms + d;
        return 0;
    }
    for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
        struct tm tm;
        memset(&tm, 0, sizeof(tm));
        const char *end = strptime(s, fmts[i], &tm);
        if (end == NULL) {
            continue;
        }
        if (*end == '\0') {
            tm.tm_isdst = -1;
            time_t t = mktime(&tm); /* local time */
            if (t == (time_t)-1) {
                return -EINVAL;
            }
            *out_ms = (int64_t)t * 1000;
            return 0;
        }
        if (strcmp(end, "Z") == 0 || strcmp(end, "z") == 0) {
            *out_ms = (int64_t)timegm(&tm) * 1000;
            return 0;
        }
        int hh = 0, mm = 0;
        char sign = end[0];
        if ((sign == '+' || sign == '-') && strlen(end) == 6 && end[3] == ':' &&
            sscanf(end + 1, "%2d:%2d", &hh, &mm) == 2 && hh <= 23 && mm <= 59) {
            int64_t off = (int64_t)(hh * 60 + mm) * 60;
            *out_ms = ((int64_t)timegm(&tm) - (sign == '+' ? off : -off)) * 1000;
            return 0;
        }
        return -EINVAL;
    }
    return -EINVAL;
}

/* ---- the store ---- */

static int dberr(struct maint_store *st, const char *what)
{
    snprintf(st->err, sizeof(st->err), "%s: %s", what, sqlite3_errmsg(st->h));
    return WP_EDB;
}

const char *maint_errmsg(struct maint_store *st)
{
    return st->err;
}

static sqlite3_stmt *stmt(struct maint_store *st, int i)
{
    sqlite3_reset(st->st[i]);
    sqlite3_clear_bindings(st->st[i]);
    return st->st[i];
}

static const char *col_text(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t != NULL ? (const char *)t : "";
}

int maint_open(const char *path, struct maint_store **out)
{
    struct maint_store *st = wp_xcalloc(1, sizeof(*st));
    int rc = 0;

    *out = NULL;
    if (sqlite3_open_v2(path, &st->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        WP_ERROR("maint", "cannot open %s: %s", path,
                 st->h != NULL ? sqlite3_errmsg(st->h) : "no memory");
        sqlite3_close(st->h);
        free(st);
        return WP_EDB;
    }
    sqlite3_busy_timeout(st->h, 5000);
    if (sqlite3_exec(st->h, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL,
                     NULL) != SQLITE_OK ||
        sqlite3_exec(st->h, schema, NULL, NULL, NULL) != SQLITE_OK) {
        rc = dberr(st, path);
        goto fail;
    }
    for (int i = 0; i < S_COUNT; i++) {
        if (sqlite3_prepare_v3(st->h, sqls[i], -1, SQLITE_PREPARE_PERSISTENT, &st->st[i], NULL) !=
            SQLITE_OK) {
            rc = dberr(st, "prepare");
            goto fail;
        }
    }
    *out = st;
    return 0;
fail:
    WP_ERROR("maint", "%s", st->err);
    maint_close(st);
    return rc;
}

void maint_close(struct maint_store *st)
{
    if (st == NULL) {
        return;
    }
    for (int i = 0; i < S_COUNT; i++) {
        sqlite3_finalize(st->st[i]);
    }
    sqlite3_close(st->h);
    free(st);
}

static char *strv_json(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(a, json_string(v[i]));
    }
    char *s = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return s != NULL ? s : wp_xstrdup("[]");
}

/* A JSON array of strings (as stored) into a vector; anything else gives an empty one. */
static void strv_parse(const char *text, char ***out, size_t *n)
{
    json_t *a = json_loads(text, 0, NULL);

    *out = NULL;
    *n = 0;
    if (!json_is_array(a) || json_array_size(a) == 0) {
        json_decref(a);
        return;
    }
    *out = wp_xcalloc(json_array_size(a), sizeof(**out));
    for (size_t i = 0; i < json_array_size(a); i++) {
        const char *s = json_string_value(json_array_get(a, i));
        if (s != NULL) {
            (*out)[(*n)++] = wp_xstrdup(s);
        }
    }
    json_decref(a);
}

static void row_read(sqlite3_stmt *s, struct maint_win *w)
{
    memset(w, 0, sizeof(*w));
    w->id = sqlite3_column_int64(s, 0);
    w->name = wp_xstrdup(col_text(s, 1));
    strv_parse(col_text(s, 2), &w->hosts, &w->nhosts);
    strv_parse(col_text(s, 3), &w->groups, &w->ngroups);
    w->starts_ms = sqlite3_column_int64(s, 4);
    w->ends_ms = sqlite3_column_int64(s, 5);
    w->reason = wp_xstrdup(col_text(s, 6));
    w->created_by = wp_xstrdup(col_text(s, 7));
    w->created_ms = sqlite3_column_int64(s, 8);
    w->ended_ms = sqlite3_column_int64(s, 9);
    w->ended_by = wp_xstrdup(col_text(s, 10));
}

static int exec(struct maint_store *st, const char *sql)
{
    if (sqlite3_exec(st->h, sql, NULL, NULL, NULL) != SQLITE_OK) {
        return dberr(st, sql);
    }
    return 0;
}

static int bump(struct maint_store *st)
{
    if (sqlite3_step(stmt(st, S_BUMP)) != SQLITE_DONE) {
        return dberr(st, "change counter");
    }
    return 0;
}

int maint_add(struct maint_store *st, const struct maint_new *n, const struct rule_set *rs,
              int64_t now_ms, int64_t *id_out, char *err, size_t errlen)
{
    int rc = maint_validate(n, rs, now_ms, err, errlen);
    char *hosts = NULL, *groups = NULL;

    if (rc < 0) {
        return rc;
    }
    hosts = strv_json(n->hosts, n->nhosts);
    groups = strv_json(n->groups, n->ngroups);
    if ((rc = exec(st, "BEGIN IMMEDIATE")) < 0) {
        goto out;
    }
    sqlite3_stmt *s = stmt(st, S_INSERT);
    sqlite3_bind_text(s, 1, n->name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, hosts, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 3, groups, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 4, n->starts_ms);
    sqlite3_bind_int64(s, 5, n->ends_ms);
    sqlite3_bind_text(s, 6, n->reason != NULL ? n->reason : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 7, n->by, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 8, now_ms);
    if (sqlite3_step(s) != SQLITE_DONE) {
        rc = dberr(st, "insert");
    } else {
        int64_t id = sqlite3_last_insert_rowid(st->h);
        rc = bump(st);
        if (rc == 0 && id_out != NULL) {
            *id_out = id;
        }
    }
    if (rc == 0) {
        rc = exec(st, "COMMIT");
    }
    if (rc < 0) {
        sqlite3_exec(st->h, "ROLLBACK", NULL, NULL, NULL);
        snprintf(err, errlen, "%s", st->err);
    }
out:
    free(hosts);
    free(groups);
    return rc;
}

int maint_get(struct maint_store *st, int64_t id, struct maint_win *out)
{
    sqlite3_stmt *s = stmt(st, S_GET);
    int rc = 0;

    memset(out, 0, sizeof(*out));
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        row_read(s, out);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = WP_ENOTFOUND;
    } else {
        rc = dberr(st, "get");
    }
    sqlite3_reset(s);
    return rc;
}

int maint_end(struct maint_store *st, int64_t id, const char *by, int64_t now_ms, char *err,
              size_t errlen)
{
    struct maint_win w;
    int rc = 0;

    if (by == NULL || by[0] == '\0') {
        snprintf(err, errlen, "by: who ends the window is required");
        return -EINVAL;
    }
    if ((rc = exec(st, "BEGIN IMMEDIATE")) < 0) {
        snprintf(err, errlen, "%s", st->err);
        return rc;
    }
    rc = maint_get(st, id, &w);
    if (rc == WP_ENOTFOUND) {
        snprintf(err, errlen, "no maintenance window %" PRId64, id);
    } else if (rc == 0 && w.ended_ms != 0) {
        snprintf(err, errlen, "maintenance window %" PRId64 " was already ended by %s", id,
                 w.ended_by[0] != '\0' ? w.ended_by : "someone");
        rc = -EINVAL;
    } else if (rc == 0 && w.ends_ms <= now_ms) {
        snprintf(err, errlen, "maintenance window %" PRId64 " is already over", id);
        rc = -EINVAL;
    } else if (rc == 0) {
        sqlite3_stmt *s = stmt(st, S_END);
        sqlite3_bind_int64(s, 1, id);
        sqlite3_bind_int64(s, 2, now_ms);
        sqlite3_bind_text(s, 3, by, -1, SQLITE_TRANSIENT);
        rc = sqlite3_step(s) == SQLITE_DONE ? bump(st) : dberr(st, "end");
        if (rc == 0) {
            rc = exec(st, "COMMIT");
        }
        if (rc < 0) {
            snprintf(err, errlen, "%s", st->err);
        }
    } else {
        snprintf(err, errlen, "%s", st->err);
    }
    maint_win_cleanup(&w);
    if (rc != 0 || sqlite3_get_autocommit(st->h) == 0) {
        sqlite3_exec(st->h, "ROLLBACK", NULL, NULL, NULL);
    }
    return rc;
}

int maint_list(struct maint_store *st, int64_t since_ms,
               int (*fn)(void *arg, const struct maint_win *w), void *arg)
{
    sqlite3_stmt *s = stmt(st, S_LIST);
    int rc = 0;

    sqlite3_bind_int64(s, 1, since_ms);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct maint_win w;
        row_read(s, &w);
        int stop = fn(arg, &w);
        maint_win_cleanup(&w);
        if (stop) {
            break;
        }
    }
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : dberr(st, "list");
    sqlite3_reset(s);
    return rc;
}

int maint_gen(struct maint_store *st, int64_t *out)
{
    sqlite3_stmt *s = stmt(st, S_GEN);
    int rc = sqlite3_step(s);

    *out = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : dberr(st, "change counter");
    sqlite3_reset(s);
    return rc;
}

/* ---- the in-memory set ---- */

static int set_add(void *arg, const struct maint_win *w)
{
    struct maint_set *ms = arg;
    struct maint_win *c = NULL;

    if (maint_win_end(w) <= w->starts_ms) {
        return 0; /* cancelled before it started */
    }
    ms->w = wp_xrealloc(ms->w, (ms->n + 1) * sizeof(*ms->w));
    c = &ms->w[ms->n++];
    memset(c, 0, sizeof(*c));
    c->id = w->id;
    c->name = wp_xstrdup(w->name);
    c->hosts = wp_xcalloc(w->nhosts + 1, sizeof(*c->hosts));
    for (size_t i = 0; i < w->nhosts; i++) {
        c->hosts[c->nhosts++] = wp_xstrdup(w->hosts[i]);
    }
    c->groups = wp_xcalloc(w->ngroups + 1, sizeof(*c->groups));
    for (size_t i = 0; i < w->ngroups; i++) {
        c->groups[c->ngroups++] = wp_xstrdup(w->groups[i]);
    }
    c->starts_ms = w->starts_ms;
    c->ends_ms = w->ends_ms;
    c->ended_ms = w->ended_ms;
    c->reason = wp_xstrdup(w->reason);
    c->created_by = wp_xstrdup(w->created_by);
    c->created_ms = w->created_ms;
    c->ended_by = wp_xstrdup(w->ended_by);
    return 0;
}

int maint_set_load(struct maint_store *st, int64_t now_ms, struct maint_set **out)
{
    struct maint_set *ms = wp_xcalloc(1, sizeof(*ms));

    *out = NULL;
    /* not over at now_ms: coalesce(ended, ends) > now; the list takes >=, close enough */
    int rc = maint_list(st, now_ms, set_add, ms);
    if (rc < 0) {
        maint_set_free(ms);
        return rc;
    }
    ms->active = wp_xcalloc(ms->n + 1, sizeof(*ms->active));
    *out = ms;
    return 0;
}

void maint_set_free(struct maint_set *ms)
{
    if (ms == NULL) {
        return;
    }
    for (size_t i = 0; i < ms->n; i++) {
        maint_win_cleanup(&ms->w[i]);
    }
    free(ms->w);
    free(ms->active);
    free(ms);
}

size_t maint_set_count(const struct maint_set *ms)
{
    return ms != NULL ? ms->n : 0;
}

const char *maint_set_match(const struct maint_set *ms, const struct rule_set *rs, const char *host,
                            int64_t now_ms)
{
    for (size_t i = 0; ms != NULL && i < ms->n; i++) {
        const struct maint_win *w = &ms->w[i];
        if (maint_win_active(w, now_ms) && maint_win_covers(w, rs, host)) {
            return w->name;
        }
    }
    return NULL;
}

void maint_set_transitions(struct maint_set *ms, const struct maint_set *prev, int64_t now_ms,
                           void (*fn)(void *arg, const struct maint_win *w, int started), void *arg)
{
    if (ms == NULL) {
        return;
    }
    if (prev != NULL) {
        /* a reload: windows known before keep their state; ones that vanished from the set
         * (ended early, or over) while active end now */
        for (size_t j = 0; j < prev->n; j++) {
            int found = 0;
            for (size_t i = 0; i < ms->n && !found; i++) {
                if (ms->w[i].id == prev->w[j].id) {
                    ms->active[i] = prev->active[j];
                    found = 1;
                }
            }
            if (!found && prev->active[j]) {
                struct maint_win gone = prev->w[j]; /* shallow: only lent to fn */
                if (gone.ended_ms == 0 && now_ms < gone.ends_ms) {
                    gone.ended_ms = now_ms; /* it left the set before its end */
                }
                fn(arg, &gone, 0);
            }
        }
    }
    for (size_t i = 0; i < ms->n; i++) {
        int a = maint_win_active(&ms->w[i], now_ms);
        if (a != ms->active[i]) {
            ms->active[i] = a;
            fn(arg, &ms->w[i], a);
        }
    }
}
