/* SPDX-License-Identifier: Apache-2.0 */
/* The notification outbox: timeline cursor -> queued messages; see outbox.h. */
#include "outbox.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"

#define BY_NOTIFY "notify"

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS outbox_cursor("
    " id INTEGER PRIMARY KEY CHECK (id = 1), timeline_id INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS outbox("
    " id INTEGER PRIMARY KEY,"
    " event_id TEXT NOT NULL UNIQUE, dest TEXT NOT NULL, incident_id INTEGER NOT NULL,"
    " inc_key TEXT NOT NULL, event TEXT NOT NULL, seq INTEGER NOT NULL,"
    " state TEXT NOT NULL, created_ms INTEGER NOT NULL, next_ms INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0, last_code INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT NOT NULL DEFAULT '', sent_ms INTEGER NOT NULL DEFAULT 0,"
    " ctx TEXT NOT NULL, method TEXT, url TEXT, headers TEXT, body BLOB, rcpt TEXT);"
    "CREATE INDEX IF NOT EXISTS outbox_queue ON outbox(state, dest, incident_id, id);"
    "CREATE INDEX IF NOT EXISTS outbox_next ON outbox(state, next_ms);"
    "CREATE INDEX IF NOT EXISTS outbox_incident ON outbox(incident_id, dest);"
    "CREATE TABLE IF NOT EXISTS outbox_remote("
    " dest TEXT NOT NULL, incident_id INTEGER NOT NULL, remote_id TEXT NOT NULL DEFAULT '',"
    " state TEXT NOT NULL, PRIMARY KEY (dest, incident_id));";

#define MSG_COLS                                                                              \
    "id, event_id, dest, inc_key, event, state, incident_id, seq, created_ms, next_ms,"       \
    " sent_ms, attempts, last_code, last_error, ctx, method, url, headers, body, rcpt"

enum {
    S_CURSOR_GET,
    S_CURSOR_PUT,
    S_TL_NEW,
    S_INC,
    S_INSERT,
    S_COALESCE_SEL,
    S_SET_STATE,
    S_TL_ADD,
    S_DUE,
    S_NEXT,
    S_RENDERED,
    S_SENT,
    S_RETRY,
    S_DEAD,
    S_REMOTE_GET,
    S_REMOTE_PUT,
    S_GET,
    S_TOLD,
    S_SUPP_REASON,
    S_SKIP,
    S_OPEN_STATE,
    S_COUNT
};

static const char *const sqls[S_COUNT] = {
    [S_CURSOR_GET] = "SELECT timeline_id FROM outbox_cursor WHERE id = 1",
    [S_CURSOR_PUT] = "INSERT INTO outbox_cursor(id, timeline_id) VALUES(1, ?1)"
                     " ON CONFLICT(id) DO UPDATE SET timeline_id = ?1",
    [S_TL_NEW] = "SELECT id, incident_id, at_ms, kind, \"by\", text FROM timeline"
                 " WHERE id > ?1 ORDER BY id LIMIT ?2",
    [S_INC] = "SELECT fingerprint, status, priority, category, rule, host, summary, description,"
              " runbook, values_json, opened_ms, acked_ms, resolved_ms, response_due_ms,"
              " resolve_due_ms, escalation, suppressed, flapping, acked_by"
              " FROM incidents WHERE id = ?1",
    [S_INSERT] = "INSERT OR IGNORE INTO outbox(event_id, dest, incident_id, inc_key, event, seq,"
                 " state, created_ms, next_ms, ctx) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9)",
    [S_COALESCE_SEL] = "SELECT id, event_id FROM outbox WHERE state = 'queued' AND dest = ?1"
                       " AND incident_id = ?2 AND event = 'update' AND attempts = 0",
    [S_SET_STATE] = "UPDATE outbox SET state = ?2 WHERE id = ?1",
    [S_TL_ADD] = "INSERT INTO timeline(incident_id, at_ms, kind, \"by\", text)"
                 " VALUES(?1, ?2, ?3, '" BY_NOTIFY "', ?4)",
    [S_DUE] = "SELECT " MSG_COLS " FROM outbox o WHERE o.state = 'queued' AND o.next_ms <= ?1"
              " AND o.id = (SELECT min(p.id) FROM outbox p WHERE p.state = 'queued'"
              " AND p.dest = o.dest AND p.incident_id = o.incident_id)"
              " ORDER BY o.next_ms, o.id LIMIT ?2",
    [S_NEXT] = "SELECT min(next_ms) FROM outbox WHERE state = 'queued'",
    [S_RENDERED] = "UPDATE outbox SET method = ?2, url = ?3, headers = ?4, body = ?5, rcpt = ?6"
                   " WHERE id = ?1",
    [S_SENT] = "UPDATE outbox SET state = 'sent', sent_ms = ?2, last_code = ?3,"
               " attempts = attempts + 1, last_error = '' WHERE id = ?1",
    [S_RETRY] = "UPDATE outbox SET next_ms = ?2, last_code = ?3, last_error = ?4,"
                " attempts = attempts + 1 WHERE id = ?1",
    [S_DEAD] = "UPDATE outbox SET state = 'dead', last_code = ?2, last_error = ?3,"
               " attempts = attempts + 1 WHERE id = ?1",
    [S_REMOTE_GET] = "SELECT remote_id, state FROM outbox_remote WHERE dest = ?1 AND incident_id = ?2",
    [S_REMOTE_PUT] = "INSERT INTO outbox_remote(dest, incident_id, remote_id, state)"
                     " VALUES(?1, ?2, ?3, ?4) ON CONFLICT(dest, incident_id) DO UPDATE SET"
                     " remote_id = ?3, state = ?4",
    [S_GET] = "SELECT " MSG_COLS " FROM outbox WHERE id = ?1",
    /* the newest message that announced the incident (open, reopen, update, escalate) and
     * the newest that ended it, of those not skipped */
    [S_TOLD] = "SELECT max(CASE WHEN event IN ('open', 'reopen', 'update', 'escalate') THEN id"
               " END), max(CASE WHEN event IN ('resolve', 'close') THEN id END) FROM outbox"
               " WHERE incident_id = ?2 AND dest = ?1 AND state != 'skipped'",
    [S_SUPP_REASON] = "SELECT text, at_ms FROM timeline WHERE incident_id = ?1"
                      " AND kind = 'suppressed' AND id < ?2 ORDER BY id DESC LIMIT 1",
    [S_SKIP] = "UPDATE outbox SET state = 'skipped', last_code = ?2, last_error = ?3 WHERE id = ?1",
    /* the newest open of (destination, incident) before a message that went out or is on
     * its way */
    [S_OPEN_STATE] = "SELECT id, state FROM outbox WHERE dest = ?1 AND incident_id = ?2"
                     " AND id < ?3 AND event = 'open' AND state IN ('queued', 'sent', 'dead')"
                     " ORDER BY id DESC LIMIT 1",
};

struct outbox {
    sqlite3 *h;
    const struct notify_conf *conf;
    int (*in_group)(void *arg, const char *group, const char *host);
    void *group_arg;
    sqlite3_stmt *st[S_COUNT];
    int64_t prune_after; /* outbox_prune() goes on after this id */
    char err[512];
};

static int dberr(struct outbox *ob, const char *what)
{
    snprintf(ob->err, sizeof(ob->err), "%s: %s", what, sqlite3_errmsg(ob->h));
    return WP_EDB;
}

const char *outbox_errmsg(struct outbox *ob)
{
    return ob->err;
}

static sqlite3_stmt *stmt(struct outbox *ob, int i)
{
    sqlite3_reset(ob->st[i]);
    sqlite3_clear_bindings(ob->st[i]);
    return ob->st[i];
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
    if (v == NULL) {
        sqlite3_bind_null(s, i);
    } else {
        sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
    }
}

static const char *col_text(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t != NULL ? (const char *)t : "";
}

int outbox_open(const char *path, const struct notify_conf *conf, struct outbox **out)
{
    struct outbox *ob = wp_xcalloc(1, sizeof(*ob));
    int rc = 0;

    *out = NULL;
    ob->conf = conf;
    if (sqlite3_open_v2(path, &ob->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        WP_ERROR("notify", "cannot open %s: %s", path, ob->h ? sqlite3_errmsg(ob->h) : "no memory");
        sqlite3_close(ob->h);
        free(ob);
        return WP_EDB;
    }
    sqlite3_busy_timeout(ob->h, 5000);
    if (sqlite3_exec(ob->h, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL,
                     NULL) != SQLITE_OK ||
        sqlite3_exec(ob->h, schema, NULL, NULL, NULL) != SQLITE_OK) {
        rc = dberr(ob, path);
        goto fail;
    }
    for (int i = 0; i < S_COUNT; i++) {
        if (sqlite3_prepare_v3(ob->h, sqls[i], -1, SQLITE_PREPARE_PERSISTENT, &ob->st[i], NULL) !=
            SQLITE_OK) {
            rc = dberr(ob, "prepare");
            goto fail;
        }
    }
    /* a new outbox starts at the end of the timeline: enabling notifications does not send
     * the history */
    if (sqlite3_exec(ob->h,
                     "INSERT OR IGNORE INTO outbox_cursor(id, timeline_id)"
                     " SELECT 1, coalesce(max(id), 0) FROM timeline",
                     NULL, NULL, NULL) != SQLITE_OK) {
        rc = dberr(ob, "cursor");
        goto fail;
    }
    *out = ob;
    return 0;
fail:
    WP_ERROR("notify", "outbox: %s", ob->err);
    outbox_close(ob);
    return rc;
}

void outbox_close(struct outbox *ob)
{
    if (ob == NULL) {
        return;
    }
    for (int i = 0; i < S_COUNT; i++) {
        sqlite3_finalize(ob->st[i]);
    }
    sqlite3_close(ob->h);
    free(ob);
}

static int tl_add(struct outbox *ob, int64_t inc, int64_t at, const char *kind, const char *fmt,
                  ...) __attribute__((format(printf, 5, 6)));
static int tl_add(struct outbox *ob, int64_t inc, int64_t at, const char *kind, const char *fmt,
                  ...)
{
    char text[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    sqlite3_stmt *s = stmt(ob, S_TL_ADD);
    sqlite3_bind_int64(s, 1, inc);
    sqlite3_bind_int64(s, 2, at);
    bind_text(s, 3, kind);
    bind_text(s, 4, text);
    return sqlite3_step(s) == SQLITE_DONE ? 0 : dberr(ob, "timeline");
}

/* ---- generation ---------------------------------------------------------------------------- */

void outbox_set_groups(struct outbox *ob, int (*fn)(void *arg, const char *group, const char *host),
                       void *arg)
{
    ob->in_group = fn;
    ob->group_arg = arg;
}

static int ev_of_kind(const char *kind)
{
    static const struct {
        const char *kind;
        int ev;
    } map[] = {{"opened", NEV_OPEN},       {"reopened", NEV_REOPEN},  {"value update", NEV_UPDATE},
               {"escalated", NEV_ESCALATE}, {"acknowledged", NEV_ACK}, {"resolved", NEV_RESOLVE},
               {"closed", NEV_CLOSE}};
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(map[i].kind, kind) == 0) {
            return map[i].ev;
        }
    }
    return -1;
}

static void iso_time(char *buf, size_t len, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0) {
        buf[0] = '\0';
        return;
    }
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *const status_names[] = {"open", "acknowledged", "resolved", "closed"};

struct gen {
    struct outbox *ob;
    int64_t tl_id, inc_id, at_ms, now_ms;
    int ev;
    const char *by, *text;
    json_t *ctx;          /* without event_id */
    const char *key;
    int suppressed, flapping;
    int lifted; /* an "unsuppressed" entry: announce the incident where nobody knows of it */
    int queued;
    int rc;
};

static json_t *snapshot(sqlite3_stmt *s, int64_t inc_id, const char *event, const char *by,
                        const char *text, int64_t at_ms, int64_t seq)
{
    char t[40];
    json_t *o = json_object();
    json_t *vals = json_loads(col_text(s, 9), 0, NULL);
    int status = sqlite3_column_int(s, 1);

    json_object_set_new(o, "id", json_integer(inc_id));
    json_object_set_new(o, "key", json_string(col_text(s, 0)));
    json_object_set_new(o, "status", json_string(status >= 0 && status <= 3 ? status_names[status]
                                                                           : "open"));
    json_object_set_new(o, "priority", json_integer(sqlite3_column_int(s, 2)));
    json_object_set_new(o, "category", json_string(col_text(s, 3)));
    json_object_set_new(o, "rule", json_string(col_text(s, 4)));
    json_object_set_new(o, "host", json_string(col_text(s, 5)));
    json_object_set_new(o, "summary", json_string(col_text(s, 6)));
    json_object_set_new(o, "description", json_string(col_text(s, 7)));
    json_object_set_new(o, "runbook", json_string(col_text(s, 8)));
    json_object_set_new(o, "values", json_is_object(vals) ? vals : json_object());
    if (!json_is_object(vals)) {
        json_decref(vals);
    }
    json_object_set_new(o, "opened_ms", json_integer(sqlite3_column_int64(s, 10)));
    iso_time(t, sizeof(t), sqlite3_column_int64(s, 10));
    json_object_set_new(o, "opened", json_string(t));
    json_object_set_new(o, "acked_ms", json_integer(sqlite3_column_int64(s, 11)));
    json_object_set_new(o, "resolved_ms", json_integer(sqlite3_column_int64(s, 12)));
    json_object_set_new(o, "response_due_ms", json_integer(sqlite3_column_int64(s, 13)));
    json_object_set_new(o, "resolve_due_ms", json_integer(sqlite3_column_int64(s, 14)));
    json_object_set_new(o, "escalation", json_integer(sqlite3_column_int(s, 15)));
    json_object_set_new(o, "acked_by", json_string(col_text(s, 18)));
    json_object_set_new(o, "event", json_string(event));
    json_object_set_new(o, "event_by", json_string(by));
    json_object_set_new(o, "event_text", json_string(text));
    json_object_set_new(o, "event_ms", json_integer(at_ms));
    iso_time(t, sizeof(t), at_ms);
    json_object_set_new(o, "event_at", json_string(t));
    json_object_set_new(o, "seq", json_integer(seq));
    return o;
}

/* Older, never attempted value updates of this (destination, incident) give way to g's. */
static int coalesce(struct gen *g, const struct notify_dest *d)
{
    struct outbox *ob = g->ob;
    int64_t ids[64];
    size_t n = 0;

    sqlite3_stmt *s = stmt(ob, S_COALESCE_SEL);
    bind_text(s, 1, d->name);
    sqlite3_bind_int64(s, 2, g->inc_id);
    while (n < sizeof(ids) / sizeof(ids[0]) && sqlite3_step(s) == SQLITE_ROW) {
        ids[n++] = sqlite3_column_int64(s, 0);
    }
    sqlite3_reset(s);
    for (size_t i = 0; i < n; i++) {
        s = stmt(ob, S_SET_STATE);
        sqlite3_bind_int64(s, 1, ids[i]);
        bind_text(s, 2, "coalesced");
        if (sqlite3_step(s) != SQLITE_DONE) {
            return dberr(ob, "coalesce");
        }
        int rc = tl_add(ob, g->inc_id, g->now_ms, "notify coalesced",
                        "update to %s not sent: a newer update replaces it", d->name);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

enum { TOLD_NOTHING, TOLD_OPEN, TOLD_ENDED };

/* What destination d has been told of g's incident by messages not skipped: nothing that
 * announced it (an ack or resolve that went out while it was suppressed creates nothing at
 * the receiver: no ticket, no PagerDuty alert), that it is open, or last that it ended.
 * Returns one of TOLD_*, or -1 with g->rc set. */
static int told(struct gen *g, const struct notify_dest *d)
{
    sqlite3_stmt *s = stmt(g->ob, S_TOLD);
    int r = TOLD_NOTHING;

    bind_text(s, 1, d->name);
    sqlite3_bind_int64(s, 2, g->inc_id);
    if (sqlite3_step(s) != SQLITE_ROW) {
        g->rc = dberr(g->ob, "told");
        sqlite3_reset(s);
        return -1;
    }
    if (sqlite3_column_type(s, 0) != SQLITE_NULL) {
        r = sqlite3_column_type(s, 1) != SQLITE_NULL &&
                    sqlite3_column_int64(s, 1) > sqlite3_column_int64(s, 0)
                ? TOLD_ENDED
                : TOLD_OPEN;
    }
    sqlite3_reset(s);
    return r;
}

static void gen_dest(void *arg, const struct notify_dest *d)
{
    struct gen *g = arg;
    struct outbox *ob = g->ob;
    char event_id[256];
    const char *state = "queued";
    const char *why = NULL;
    int ev = g->ev;

    if (g->rc < 0) {
        return;
    }
    if (g->suppressed && ev != NEV_RESOLVE && ev != NEV_CLOSE && ev != NEV_ACK) {
        state = "skipped";
        why = "the incident is suppressed";
    } else if (g->flapping && ev == NEV_UPDATE) {
        state = "skipped";
        why = "the incident is flapping";
    }
    if (why == NULL && (g->lifted || ev == NEV_REOPEN)) {
        /* The suppression lifted with the incident still open: what was skipped meanwhile
         * comes now, as an open where it was never announced (a ticket is created, PagerDuty
         * triggers) or a reopen where the last word was its resolution; nothing where it is
         * known to be open (notified before, or by an earlier lift). A reopen is an open to
         * a destination that never heard of the incident (its open was skipped). */
        int t = told(g, d);
        if (t < 0) {
            return;
        }
        if (g->lifted && t == TOLD_OPEN) {
            return;
        }
        if (t == TOLD_NOTHING && (d->ev_mask & (1u << NEV_OPEN))) {
            ev = NEV_OPEN;
        } else if (g->lifted && t == TOLD_ENDED) {
            ev = NEV_REOPEN;
        }
    }
    if (!(d->ev_mask & (1u << ev))) {
        return;
    }
    if (why == NULL && ev == NEV_UPDATE && (g->rc = coalesce(g, d)) < 0) {
        return;
    }
    snprintf(event_id, sizeof(event_id), "%s-%" PRId64 "-%" PRId64, d->name, g->inc_id, g->tl_id);
    json_object_set_new(g->ctx, "event", json_string(notify_ev_names[ev]));
    char *ctx = json_dumps(g->ctx, JSON_COMPACT | JSON_SORT_KEYS);
    sqlite3_stmt *s = stmt(ob, S_INSERT);
    bind_text(s, 1, event_id);
    bind_text(s, 2, d->name);
    sqlite3_bind_int64(s, 3, g->inc_id);
    bind_text(s, 4, g->key);
    bind_text(s, 5, notify_ev_names[ev]);
    sqlite3_bind_int64(s, 6, g->tl_id);
    bind_text(s, 7, state);
    sqlite3_bind_int64(s, 8, g->now_ms);
    bind_text(s, 9, ctx != NULL ? ctx : "{}");
    int step = sqlite3_step(s);
    free(ctx);
    if (step != SQLITE_DONE) {
        g->rc = dberr(ob, "queue");
        return;
    }
    if (why != NULL) {
        g->rc = tl_add(ob, g->inc_id, g->now_ms, "notify skipped", "%s to %s not sent: %s",
                       notify_ev_names[ev], d->name, why);
    } else {
        g->queued++;
    }
}

/* The event text of what an "unsuppressed" entry (g) sends: why it comes late, with the
 * reason and start of the suppression that ended (the incident's last "suppressed" entry). */
static void lifted_text(struct outbox *ob, const struct gen *g, json_t *ctx)
{
    char text[1024], since[40] = "", until[40], reason[512] = "";
    sqlite3_stmt *s = stmt(ob, S_SUPP_REASON);

    sqlite3_bind_int64(s, 1, g->inc_id);
    sqlite3_bind_int64(s, 2, g->tl_id);
    if (sqlite3_step(s) == SQLITE_ROW) {
        /* "REASON; no escalation while suppressed" (incident.c) */
        const char *t = col_text(s, 0);
        const char *cut = strstr(t, "no escalation while suppressed");
        size_t n = cut != NULL ? (size_t)(cut - t) : strlen(t);
        while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == ';')) {
            n--;
        }
        snprintf(reason, sizeof(reason), "%.*s", (int)n, t);
        iso_time(since, sizeof(since), sqlite3_column_int64(s, 1));
    }
    sqlite3_reset(s);
    iso_time(until, sizeof(until), g->at_ms);
    /* lifted at the first pass after a restart (rules_eval.c): it ended at some time while
     * the collector was down, noticed now */
    int down = g->text != NULL && strstr(g->text, "while the collector was down") != NULL;
    if (reason[0] != '\0' && down) {
        snprintf(text, sizeof(text),
                 "still open when its suppression (%s, since %s) ended while the collector was "
                 "down (noticed at %s); nothing was sent while it was suppressed",
                 reason, since, until);
    } else if (reason[0] != '\0') {
        snprintf(text, sizeof(text),
                 "still open when its suppression (%s, since %s) ended at %s; nothing was sent "
                 "while it was suppressed",
                 reason, since, until);
    } else {
        snprintf(text, sizeof(text),
                 "still open when its suppression ended at %s; nothing was sent while it was "
                 "suppressed",
                 until);
    }
    json_object_set_new(ctx, "event_text", json_string(text));
}

int outbox_generate(struct outbox *ob, int64_t now_ms, size_t max)
{
    struct {
        int64_t id, inc, at;
        char *kind, *by, *text;
    } *rows = NULL;
    size_t n = 0;
    int64_t cursor = 0;
    int queued = 0;
    int rc = 0;

    if (ob->conf == NULL) {
        return 0;
    }
    if (sqlite3_exec(ob->h, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        return dberr(ob, "begin");
    }
    sqlite3_stmt *s = stmt(ob, S_CURSOR_GET);
    if (sqlite3_step(s) == SQLITE_ROW) {
        cursor = sqlite3_column_int64(s, 0);
    }
    sqlite3_reset(s);
    rows = wp_xcalloc(max + 1, sizeof(*rows));
    s = stmt(ob, S_TL_NEW);
    sqlite3_bind_int64(s, 1, cursor);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)max);
    while (n < max && sqlite3_step(s) == SQLITE_ROW) {
        rows[n].id = sqlite3_column_int64(s, 0);
        rows[n].inc = sqlite3_column_int64(s, 1);
        rows[n].at = sqlite3_column_int64(s, 2);
        rows[n].kind = wp_xstrdup(col_text(s, 3));
        rows[n].by = wp_xstrdup(col_text(s, 4));
        rows[n].text = wp_xstrdup(col_text(s, 5));
        n++;
    }
    sqlite3_reset(s);
    for (size_t i = 0; i < n && rc == 0; i++) {
        int ev = ev_of_kind(rows[i].kind);
        /* the end of a suppression (maintenance, silent host, parent rule, mass change) */
        int lifted = ev < 0 && strcmp(rows[i].kind, "unsuppressed") == 0;
        cursor = rows[i].id;
        if (lifted) {
            ev = NEV_OPEN;
        }
        if (ev < 0) {
            continue;
        }
        s = stmt(ob, S_INC);
        sqlite3_bind_int64(s, 1, rows[i].inc);
        if (sqlite3_step(s) != SQLITE_ROW) {
            sqlite3_reset(s);
            continue; /* the incident is gone */
        }
        /* only an incident still open (status 0) and not suppressed again by now: an
         * acknowledged one has an owner (its ack went out), a resolved one sent its resolve,
         * and a new suppression is announced when it lifts */
        if (lifted && (sqlite3_column_int(s, 1) != 0 || sqlite3_column_int(s, 16) != 0)) {
            sqlite3_reset(s);
            continue;
        }
        struct gen g = {.ob = ob,
                        .tl_id = rows[i].id,
                        .inc_id = rows[i].inc,
                        .at_ms = rows[i].at,
                        .now_ms = now_ms,
                        .ev = ev,
                        .by = rows[i].by,
                        .text = rows[i].text};
        g.ctx = snapshot(s, rows[i].inc, notify_ev_names[ev], rows[i].by, rows[i].text,
                         rows[i].at, rows[i].id);
        char *key = wp_xstrdup(col_text(s, 0));
        g.key = key;
        g.suppressed = sqlite3_column_int(s, 16);
        g.flapping = sqlite3_column_int(s, 17);
        g.lifted = lifted;
        if (lifted) {
            lifted_text(ob, &g, g.ctx);
        }
        struct notify_route_in in = {.priority = sqlite3_column_int(s, 2),
                                     .category = col_text(s, 3),
                                     .host = col_text(s, 5),
                                     .rule = col_text(s, 4),
                                     .escalation = sqlite3_column_int(s, 15),
                                     .now_ms = now_ms,
                                     .in_group = ob->in_group,
                                     .group_arg = ob->group_arg};
        char *cat = wp_xstrdup(in.category), *host = wp_xstrdup(in.host);
        char *rule = wp_xstrdup(in.rule);
        in.category = cat;
        in.host = host;
        in.rule = rule;
        sqlite3_reset(s);
        notify_route(ob->conf, &in, gen_dest, &g);
        rc = g.rc;
        queued += g.queued;
        json_decref(g.ctx);
        free(key);
        free(cat);
        free(host);
        free(rule);
    }
    for (size_t i = 0; i < n; i++) {
        free(rows[i].kind);
        free(rows[i].by);
        free(rows[i].text);
    }
    free(rows);
    if (rc == 0) {
        s = stmt(ob, S_CURSOR_PUT);
        sqlite3_bind_int64(s, 1, cursor);
        if (sqlite3_step(s) != SQLITE_DONE) {
            rc = dberr(ob, "cursor");
        }
    }
    if (rc == 0 && sqlite3_exec(ob->h, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        rc = dberr(ob, "commit");
    }
    if (rc < 0) {
        sqlite3_exec(ob->h, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    return queued;
}

/* ---- delivery bookkeeping -------------------------------------------------------------------- */

static void msg_of(sqlite3_stmt *s, struct outbox_msg *m)
{
    m->id = sqlite3_column_int64(s, 0);
    m->event_id = col_text(s, 1);
    m->dest = col_text(s, 2);
    m->inc_key = col_text(s, 3);
    m->event = col_text(s, 4);
    m->state = col_text(s, 5);
    m->incident_id = sqlite3_column_int64(s, 6);
    m->seq = sqlite3_column_int64(s, 7);
    m->created_ms = sqlite3_column_int64(s, 8);
    m->next_ms = sqlite3_column_int64(s, 9);
    m->sent_ms = sqlite3_column_int64(s, 10);
    m->attempts = sqlite3_column_int(s, 11);
    m->last_code = sqlite3_column_int(s, 12);
    m->last_error = col_text(s, 13);
    m->ctx = col_text(s, 14);
    m->method = sqlite3_column_type(s, 15) == SQLITE_NULL ? NULL : col_text(s, 15);
    m->url = sqlite3_column_type(s, 16) == SQLITE_NULL ? NULL : col_text(s, 16);
    m->headers = sqlite3_column_type(s, 17) == SQLITE_NULL ? NULL : col_text(s, 17);
    m->body = sqlite3_column_blob(s, 18);
    m->body_len = (size_t)sqlite3_column_bytes(s, 18);
    m->rcpt = sqlite3_column_type(s, 19) == SQLITE_NULL ? NULL : col_text(s, 19);
}

/* fn for each row of s (the MSG_COLS) until it returns nonzero; the rows read. */
static int msgs_each(sqlite3_stmt *s, int (*fn)(void *arg, const struct outbox_msg *m), void *arg)
{
    struct outbox_msg m;
    int n = 0;

    while (sqlite3_step(s) == SQLITE_ROW) {
        msg_of(s, &m);
        n++;
        if (fn(arg, &m) != 0) {
            break;
        }
    }
    return n;
}

int outbox_due(struct outbox *ob, int64_t now_ms, size_t max,
               int (*fn)(void *arg, const struct outbox_msg *m), void *arg)
{
    sqlite3_stmt *s = stmt(ob, S_DUE);
    sqlite3_bind_int64(s, 1, now_ms);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)max);
    int n = msgs_each(s, fn, arg);
    sqlite3_reset(s);
    return n;
}

int64_t outbox_next_due(struct outbox *ob)
{
    int64_t v = INT64_MAX;
    sqlite3_stmt *s = stmt(ob, S_NEXT);
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
        v = sqlite3_column_int64(s, 0);
    }
    sqlite3_reset(s);
    return v;
}

int outbox_rendered(struct outbox *ob, int64_t id, const char *method, const char *url,
                    const char *headers, const void *body, size_t len, const char *rcpt)
{
    sqlite3_stmt *s = stmt(ob, S_RENDERED);
    sqlite3_bind_int64(s, 1, id);
    bind_text(s, 2, method != NULL ? method : "");
    bind_text(s, 3, url != NULL ? url : "");
    bind_text(s, 4, headers != NULL ? headers : "");
    sqlite3_bind_blob(s, 5, body != NULL ? body : "", (int)len, SQLITE_TRANSIENT);
    bind_text(s, 6, rcpt);
    return sqlite3_step(s) == SQLITE_DONE ? 0 : dberr(ob, "rendered");
}

/* Incident, destination and event of message id (for the audit entries). */
static int msg_ids(struct outbox *ob, int64_t id, int64_t *inc, char *dest, size_t dl, char *ev,
                   size_t el, int *attempts)
{
    sqlite3_stmt *s = stmt(ob, S_GET);
    sqlite3_bind_int64(s, 1, id);
    if (sqlite3_step(s) != SQLITE_ROW) {
        sqlite3_reset(s);
        snprintf(ob->err, sizeof(ob->err), "no message %" PRId64, id);
        return WP_ENOTFOUND;
    }
    *inc = sqlite3_column_int64(s, 6);
    snprintf(dest, dl, "%s", col_text(s, 2));
    snprintf(ev, el, "%s", col_text(s, 4));
    *attempts = sqlite3_column_int(s, 11);
    sqlite3_reset(s);
    return 0;
}

static int outcome(struct outbox *ob, int which, int64_t id, int code, const char *err,
                   int64_t next_ms, int64_t now_ms)
{
    int64_t inc = 0;
    char dest[128], ev[32];
    int attempts = 0;
    int rc = msg_ids(ob, id, &inc, dest, sizeof(dest), ev, sizeof(ev), &attempts);

    if (rc < 0) {
        return rc;
    }
    if (sqlite3_exec(ob->h, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        return dberr(ob, "begin");
    }
    sqlite3_stmt *s = stmt(ob, which);
    sqlite3_bind_int64(s, 1, id);
    if (which == S_SENT) {
        sqlite3_bind_int64(s, 2, now_ms);
        sqlite3_bind_int(s, 3, code);
    } else if (which == S_RETRY) {
        sqlite3_bind_int64(s, 2, next_ms);
        sqlite3_bind_int(s, 3, code);
        bind_text(s, 4, err);
    } else {
        sqlite3_bind_int(s, 2, code);
        bind_text(s, 3, err);
    }
    rc = sqlite3_step(s) == SQLITE_DONE ? 0 : dberr(ob, "outcome");
    if (rc == 0 && inc > 0) { /* a digest (incident 0) has no timeline of its own */
        if (which == S_SKIP) {
            rc = tl_add(ob, inc, now_ms, "notify skipped", "%s to %s not sent: %s", ev, dest, err);
        } else if (which == S_SENT) {
            rc = tl_add(ob, inc, now_ms, "notify sent", "%s sent to %s%s%s (attempt %d)", ev,
                        dest, err != NULL && *err ? ": " : "", err != NULL ? err : "",
                        attempts + 1);
        } else if (which == S_RETRY) {
            rc = tl_add(ob, inc, now_ms, "notify retry",
                        "%s to %s failed (attempt %d): %s; retry in %" PRId64 " s", ev, dest,
                        attempts + 1, err, (next_ms - now_ms + 999) / 1000);
        } else {
            rc = tl_add(ob, inc, now_ms, "notify dead", "%s to %s given up (attempt %d): %s", ev,
                        dest, attempts + 1, err);
        }
    }
    if (rc == 0 && sqlite3_exec(ob->h, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        rc = dberr(ob, "commit");
    }
    if (rc < 0) {
        sqlite3_exec(ob->h, "ROLLBACK", NULL, NULL, NULL);
    }
    return rc;
}

int outbox_sent(struct outbox *ob, int64_t id, int code, const char *note, int64_t now_ms)
{
    return outcome(ob, S_SENT, id, code, note, 0, now_ms);
}

int outbox_retry(struct outbox *ob, int64_t id, int code, const char *err, int64_t next_ms,
                 int64_t now_ms)
{
    return outcome(ob, S_RETRY, id, code, err, next_ms, now_ms);
}

int outbox_dead(struct outbox *ob, int64_t id, int code, const char *err, int64_t now_ms)
{
    return outcome(ob, S_DEAD, id, code, err, 0, now_ms);
}

int outbox_skip(struct outbox *ob, int64_t id, const char *why, int64_t now_ms)
{
    return outcome(ob, S_SKIP, id, 0, why, 0, now_ms);
}

int outbox_open_state(struct outbox *ob, const char *dest, int64_t incident_id, int64_t before,
                      int64_t *id, char *state, size_t statelen)
{
    sqlite3_stmt *s = stmt(ob, S_OPEN_STATE);
    int rc = 0;

    bind_text(s, 1, dest);
    sqlite3_bind_int64(s, 2, incident_id);
    sqlite3_bind_int64(s, 3, before);
    switch (sqlite3_step(s)) {
    case SQLITE_ROW:
        *id = sqlite3_column_int64(s, 0);
        snprintf(state, statelen, "%s", col_text(s, 1));
        break;
    case SQLITE_DONE:
        rc = WP_ENOTFOUND;
        break;
    default:
        rc = dberr(ob, "open state");
    }
    sqlite3_reset(s);
    return rc;
}

int outbox_remote_get(struct outbox *ob, const char *dest, int64_t incident_id, char *id,
                      size_t idlen, char *state, size_t statelen)
{
    sqlite3_stmt *s = stmt(ob, S_REMOTE_GET);
    bind_text(s, 1, dest);
    sqlite3_bind_int64(s, 2, incident_id);
    if (sqlite3_step(s) != SQLITE_ROW) {
        sqlite3_reset(s);
        return WP_ENOTFOUND;
    }
    snprintf(id, idlen, "%s", col_text(s, 0));
    snprintf(state, statelen, "%s", col_text(s, 1));
    sqlite3_reset(s);
    return 0;
}

int outbox_remote_put(struct outbox *ob, const char *dest, int64_t incident_id,
                      const char *remote_id, const char *state)
{
    sqlite3_stmt *s = stmt(ob, S_REMOTE_PUT);
    bind_text(s, 1, dest);
    sqlite3_bind_int64(s, 2, incident_id);
    bind_text(s, 3, remote_id != NULL ? remote_id : "");
    bind_text(s, 4, state);
    return sqlite3_step(s) == SQLITE_DONE ? 0 : dberr(ob, "remote");
}

/* ---- digests ------------------------------------------------------------------------------- */

int outbox_digest(struct outbox *ob, const char *dest, int64_t now_ms, int64_t next_ms,
                  size_t min)
{
    sqlite3_stmt *s = NULL;
    json_t *items = json_array();
    struct {
        int64_t id, inc;
        char *event;
    } *rows = NULL;
    size_t n = 0, cap = 0;
    int64_t max_seq = 0;
    int rc = 0;

    if (sqlite3_exec(ob->h, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        json_decref(items);
        return dberr(ob, "begin");
    }
    if (sqlite3_prepare_v2(ob->h,
                           "SELECT id, incident_id, event, seq, ctx FROM outbox WHERE state ="
                           " 'queued' AND dest = ?1 AND event != 'digest' AND next_ms <= ?2 AND"
                           " attempts = 0 AND method IS NULL ORDER BY id LIMIT 10000",
                           -1, &s, NULL) != SQLITE_OK) {
        rc = dberr(ob, "digest");
        goto out;
    }
    bind_text(s, 1, dest);
    sqlite3_bind_int64(s, 2, now_ms);
    while (sqlite3_step(s) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap == 0 ? 64 : cap * 2;
            rows = wp_xrealloc(rows, cap * sizeof(*rows));
        }
        rows[n].id = sqlite3_column_int64(s, 0);
        rows[n].inc = sqlite3_column_int64(s, 1);
        rows[n].event = wp_xstrdup(col_text(s, 2));
        if (sqlite3_column_int64(s, 3) > max_seq) {
            max_seq = sqlite3_column_int64(s, 3);
        }
        json_t *ctx = json_loads(col_text(s, 4), 0, NULL);
        json_t *it = json_object();
        static const char *const keep[] = {"id",      "priority", "status", "host",
                                           "rule",    "summary",  "event",  "event_at",
                                           "escalation"};
        for (size_t k = 0; k < sizeof(keep) / sizeof(keep[0]); k++) {
            json_t *v = json_object_get(ctx, keep[k]);
            if (v != NULL) {
                json_object_set(it, keep[k], v);
            }
        }
        json_array_append_new(items, it);
        json_decref(ctx);
        n++;
    }
    sqlite3_finalize(s);
    s = NULL;
    if (n < min || n == 0) {
        goto out; /* rc 0: nothing folded */
    }
    char event_id[256];
    snprintf(event_id, sizeof(event_id), "%s-digest-%" PRId64, dest, rows[0].id);
    json_t *ctx = json_object();
    json_object_set_new(ctx, "event", json_string("digest"));
    json_object_set_new(ctx, "count", json_integer((json_int_t)n));
    json_object_set(ctx, "items", items);
    json_object_set_new(ctx, "event_ms", json_integer(now_ms));
    json_object_set_new(ctx, "seq", json_integer(max_seq));
    char *cs = json_dumps(ctx, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(ctx);
    s = stmt(ob, S_INSERT);
    bind_text(s, 1, event_id);
    bind_text(s, 2, dest);
    sqlite3_bind_int64(s, 3, 0);
    bind_text(s, 4, "");
    bind_text(s, 5, "digest");
    sqlite3_bind_int64(s, 6, max_seq);
    bind_text(s, 7, "queued");
    sqlite3_bind_int64(s, 8, now_ms);
    bind_text(s, 9, cs != NULL ? cs : "{}");
    int step = sqlite3_step(s);
    free(cs);
    if (step != SQLITE_DONE) {
        rc = dberr(ob, "digest insert");
        goto out;
    }
    if (sqlite3_prepare_v2(ob->h, "UPDATE outbox SET next_ms = ?2 WHERE event_id = ?1", -1, &s,
                           NULL) != SQLITE_OK) {
        rc = dberr(ob, "digest");
        goto out;
    }
    bind_text(s, 1, event_id);
    sqlite3_bind_int64(s, 2, next_ms);
    step = sqlite3_step(s);
    sqlite3_finalize(s);
    s = NULL;
    if (step != SQLITE_DONE) {
        rc = dberr(ob, "digest");
        goto out;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        sqlite3_stmt *u = stmt(ob, S_SET_STATE);
        sqlite3_bind_int64(u, 1, rows[i].id);
        bind_text(u, 2, "digested");
        if (sqlite3_step(u) != SQLITE_DONE) {
            rc = dberr(ob, "digest");
            break;
        }
        rc = tl_add(ob, rows[i].inc, now_ms, "notify digested",
                    "%s to %s folded into the summary %s (rate limit reached)", rows[i].event,
                    dest, event_id);
    }
out:
    if (s != NULL) {
        sqlite3_finalize(s);
    }
    if (rc == 0 && sqlite3_exec(ob->h, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        rc = dberr(ob, "commit");
    }
    if (rc < 0) {
        sqlite3_exec(ob->h, "ROLLBACK", NULL, NULL, NULL);
    }
    for (size_t i = 0; i < n; i++) {
        free(rows[i].event);
    }
    free(rows);
    json_decref(items);
    return rc < 0 ? rc : (n >= min ? (int)n : 0);
}

/* ---- messages rendered by their producer ---------------------------------------------------- */

int outbox_queue_rendered(struct outbox *ob, const char *event_id, const char *dest,
                          const char *inc_key, const char *event, const char *ctx,
                          const char *method, const char *url, const char *headers,
                          const void *body, size_t len, const char *rcpt, int64_t now_ms)
{
    sqlite3_stmt *s = NULL;

    if (sqlite3_prepare_v2(ob->h,
                           "INSERT OR IGNORE INTO outbox(event_id, dest, incident_id, inc_key,"
                           " event, seq, state, created_ms, next_ms, ctx, method, url, headers,"
                           " body, rcpt) VALUES(?1, ?2, 0, ?3, ?4, 0, 'queued', ?5, ?5, ?6, ?7,"
                           " ?8, ?9, ?10, ?11)",
                           -1, &s, NULL) != SQLITE_OK) {
        return dberr(ob, "queue");
    }
    bind_text(s, 1, event_id);
    bind_text(s, 2, dest);
    bind_text(s, 3, inc_key);
    bind_text(s, 4, event);
    sqlite3_bind_int64(s, 5, now_ms);
    bind_text(s, 6, ctx != NULL ? ctx : "{}");
    bind_text(s, 7, method);
    bind_text(s, 8, url != NULL ? url : "");
    bind_text(s, 9, headers != NULL ? headers : "");
    sqlite3_bind_blob64(s, 10, body != NULL ? body : "", (sqlite3_uint64)len, SQLITE_TRANSIENT);
    bind_text(s, 11, rcpt);
    int step = sqlite3_step(s);
    sqlite3_finalize(s);
    if (step != SQLITE_DONE) {
        return dberr(ob, "queue");
    }
    return sqlite3_changes(ob->h) > 0 ? 0 : 1;
}

/* ---- CLI ----------------------------------------------------------------------------------- */

int outbox_list(struct outbox *ob, const char *state, size_t limit,
                int (*fn)(void *arg, const struct outbox_msg *m), void *arg)
{
    sqlite3_stmt *s = NULL;
    int n;

    if (sqlite3_prepare_v2(ob->h,
                           "SELECT " MSG_COLS " FROM outbox WHERE (?1 IS NULL OR state = ?1)"
                           " ORDER BY id DESC LIMIT ?2",
                           -1, &s, NULL) != SQLITE_OK) {
        return dberr(ob, "list");
    }
    bind_text(s, 1, state);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)limit);
    n = msgs_each(s, fn, arg);
    sqlite3_finalize(s);
    return n;
}

int outbox_requeue(struct outbox *ob, int64_t id, int64_t now_ms, char *err, size_t errlen)
{
    int64_t inc = 0;
    char dest[128], ev[32], state[32] = "";
    int attempts = 0;
    sqlite3_stmt *s = NULL;

    if (msg_ids(ob, id, &inc, dest, sizeof(dest), ev, sizeof(ev), &attempts) < 0) {
        snprintf(err, errlen, "no message %" PRId64 " in the outbox", id);
        return WP_ENOTFOUND;
    }
    s = stmt(ob, S_GET);
    sqlite3_bind_int64(s, 1, id);
    if (sqlite3_step(s) == SQLITE_ROW) {
        snprintf(state, sizeof(state), "%s", col_text(s, 5));
    }
    sqlite3_reset(s);
    if (strcmp(state, "dead") != 0) {
        snprintf(err, errlen, "message %" PRId64 " is %s, not dead: nothing to retry", id, state);
        return -EINVAL;
    }
    if (sqlite3_exec(ob->h, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(ob->h));
        return WP_EDB;
    }
    if (sqlite3_prepare_v2(ob->h,
                           "UPDATE outbox SET state = 'queued', next_ms = ?2, created_ms = ?2"
                           " WHERE id = ?1",
                           -1, &s, NULL) != SQLITE_OK) {
        sqlite3_exec(ob->h, "ROLLBACK", NULL, NULL, NULL);
        snprintf(err, errlen, "%s", sqlite3_errmsg(ob->h));
        return WP_EDB;
    }
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, now_ms);
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : WP_EDB;
    sqlite3_finalize(s);
    if (rc == 0 && inc > 0) {
        rc = tl_add(ob, inc, now_ms, "notify requeued", "%s to %s queued again by an operator",
                    ev, dest);
    }
    if (rc == 0 && sqlite3_exec(ob->h, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        rc = WP_EDB;
    }
    if (rc < 0) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(ob->h));
        sqlite3_exec(ob->h, "ROLLBACK", NULL, NULL, NULL);
    }
    return rc;
}

int outbox_counts(struct outbox *ob, struct outbox_counts *out)
{
    sqlite3_stmt *s = NULL;

    memset(out, 0, sizeof(*out));
    if (sqlite3_prepare_v2(ob->h, "SELECT state, count(*), min(created_ms) FROM outbox GROUP BY state",
                           -1, &s, NULL) != SQLITE_OK) {
        return dberr(ob, "counts");
    }
    while (sqlite3_step(s) == SQLITE_ROW) {
        const char *st = col_text(s, 0);
        uint64_t n = (uint64_t)sqlite3_column_int64(s, 1);
        if (strcmp(st, "queued") == 0) {
            out->queued = n;
            out->oldest_queued_ms = sqlite3_column_int64(s, 2);
        } else if (strcmp(st, "sent") == 0) {
            out->sent = n;
        } else if (strcmp(st, "dead") == 0) {
            out->dead = n;
        } else if (strcmp(st, "coalesced") == 0) {
            out->coalesced = n;
        } else if (strcmp(st, "skipped") == 0) {
            out->skipped = n;
        } else if (strcmp(st, "digested") == 0) {
            out->digested = n;
        }
    }
    sqlite3_finalize(s);
    return 0;
}

/* ---- the snapshot as renderer input ---------------------------------------------------------- */

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s != NULL ? s : "";
}

static int64_t jint(json_t *o, const char *k)
{
    return (int64_t)json_integer_value(json_object_get(o, k));
}

void *notify_inc_from_ctx(const char *ctx, struct notify_inc *m)
{
    json_t *o = json_loads(ctx != NULL ? ctx : "{}", 0, NULL);

    if (!json_is_object(o)) {
        json_decref(o);
        o = json_object();
    }
    memset(m, 0, sizeof(*m));
    m->id = jint(o, "id");
    m->key = jstr(o, "key");
    m->priority = (int)jint(o, "priority");
    m->status = jstr(o, "status");
    m->host = jstr(o, "host");
    m->rule = jstr(o, "rule");
    m->category = jstr(o, "category");
    m->summary = jstr(o, "summary");
    m->description = jstr(o, "description");
    m->runbook = jstr(o, "runbook");
    json_t *v = json_object_get(o, "values");
    char *vs = json_dumps(v != NULL ? v : json_object(), JSON_COMPACT | JSON_SORT_KEYS);
    json_object_set_new(o, "values_text", json_string(vs != NULL ? vs : "{}"));
    free(vs);
    m->values_json = jstr(o, "values_text");
    m->opened_ms = jint(o, "opened_ms");
    m->acked_ms = jint(o, "acked_ms");
    m->resolved_ms = jint(o, "resolved_ms");
    m->response_due_ms = jint(o, "response_due_ms");
    m->resolve_due_ms = jint(o, "resolve_due_ms");
    m->escalation = (int)jint(o, "escalation");
    m->acked_by = jstr(o, "acked_by");
    m->event = jstr(o, "event");
    m->event_by = jstr(o, "event_by");
    m->event_text = jstr(o, "event_text");
    m->event_ms = jint(o, "event_ms");
    m->seq = jint(o, "seq");
    m->event_id = "";
    return o;
}

void notify_inc_free(void *handle)
{
    json_decref(handle);
}

/* Retention. Queued messages are never deleted, nor anything of a (destination, incident)
 * that still has one (delivery order, and outbox_open_state() looking before it). Of the
 * others, the rows the history checks return are kept however old: per (destination,
 * incident), the newest announcing and the newest ending message not skipped (told(), which
 * decides what an unsuppression or reopen sends) and the newest open that went out or was
 * given up (outbox_open_state()). Those checks only ever take the max id of a set, and
 * every new message has a larger id, so their answers are the same after a prune as before.
 * Incident 0 (digests, report mails) has no such history. outbox_remote (ticket ids) is
 * left alone.
 *
 * A call looks at the next max rows by id after the last one it looked at (the kept history
 * is looked at again on every pass, so the work of a call is bounded by rows looked at, not
 * rows deleted), and stops deleting when PRUNE_BYTES of bodies went (report mails are big:
 * freeing a row reads its overflow pages). */
#define PRUNE_BYTES (64 << 20)

int outbox_prune(struct outbox *ob, int64_t now_ms, int64_t keep_ms, int64_t keep_dead_ms,
                 size_t max, int *more)
{
    static const char window_sql[] =
        "SELECT count(*), max(id) FROM (SELECT id FROM outbox WHERE id > ?1 ORDER BY id LIMIT ?2)";
    static const char sel_sql[] =
        "SELECT o.id, coalesce(length(o.body), 0) FROM outbox o WHERE o.id > ?3 AND o.id <= ?4"
        " AND ((+o.state IN ('sent', 'skipped', 'coalesced', 'digested') AND o.created_ms < ?1)"
        " OR (+o.state = 'dead' AND o.created_ms < ?2))"
        " AND (o.incident_id = 0 OR ("
        " NOT EXISTS (SELECT 1 FROM outbox q WHERE q.incident_id = o.incident_id"
        " AND q.dest = o.dest AND q.state = 'queued')"
        " AND o.id IS NOT (SELECT max(w.id) FROM outbox w WHERE w.incident_id = o.incident_id"
        " AND w.dest = o.dest AND w.state != 'skipped'"
        " AND w.event IN ('open', 'reopen', 'update', 'escalate'))"
        " AND o.id IS NOT (SELECT max(w.id) FROM outbox w WHERE w.incident_id = o.incident_id"
        " AND w.dest = o.dest AND w.state != 'skipped' AND w.event IN ('resolve', 'close'))"
        " AND o.id IS NOT (SELECT max(w.id) FROM outbox w WHERE w.incident_id = o.incident_id"
        " AND w.dest = o.dest AND w.event = 'open'"
        " AND w.state IN ('queued', 'sent', 'dead'))))"
        " ORDER BY o.id";
    sqlite3_stmt *s = NULL;
    int64_t *ids = NULL, *lens = NULL, seen = 0, hi = 0;
    size_t n = 0, done = 0;
    int rc = 0;

    *more = 0;
    if (max == 0) {
        return 0;
    }
    if (sqlite3_prepare_v2(ob->h, window_sql, -1, &s, NULL) != SQLITE_OK) {
        return dberr(ob, "prune");
    }
    sqlite3_bind_int64(s, 1, ob->prune_after);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)max);
    if (sqlite3_step(s) != SQLITE_ROW) {
        rc = dberr(ob, "prune");
        sqlite3_finalize(s);
        return rc;
    }
    seen = sqlite3_column_int64(s, 0);
    hi = sqlite3_column_int64(s, 1);
    sqlite3_finalize(s);
    if (seen == 0) {
        ob->prune_after = 0; /* at the end: the next pass starts over */
        return 0;
    }
    ids = wp_xcalloc(max, sizeof(*ids));
    lens = wp_xcalloc(max, sizeof(*lens));
    if (sqlite3_prepare_v2(ob->h, sel_sql, -1, &s, NULL) != SQLITE_OK) {
        rc = dberr(ob, "prune");
        goto out;
    }
    sqlite3_bind_int64(s, 1, now_ms - keep_ms);
    sqlite3_bind_int64(s, 2, now_ms - keep_dead_ms);
    sqlite3_bind_int64(s, 3, ob->prune_after);
    sqlite3_bind_int64(s, 4, hi);
    while (n < max && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        ids[n] = sqlite3_column_int64(s, 0);
        lens[n++] = sqlite3_column_int64(s, 1);
    }
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : dberr(ob, "prune");
    sqlite3_finalize(s);
    s = NULL;
    if (rc < 0) {
        goto out;
    }
    if (n > 0) {
        int64_t bytes = 0;
        if (sqlite3_exec(ob->h, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(ob->h, "DELETE FROM outbox WHERE id = ?1", -1, &s, NULL) !=
                SQLITE_OK) {
            rc = dberr(ob, "prune");
            sqlite3_exec(ob->h, "ROLLBACK", NULL, NULL, NULL);
            goto out;
        }
        for (; done < n && (done == 0 || bytes + lens[done] <= PRUNE_BYTES); done++) {
            sqlite3_reset(s);
            sqlite3_bind_int64(s, 1, ids[done]);
            if (sqlite3_step(s) != SQLITE_DONE) {
                rc = dberr(ob, "prune");
                break;
            }
            bytes += lens[done];
        }
        sqlite3_finalize(s);
        s = NULL;
        if (rc < 0 || sqlite3_exec(ob->h, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
            rc = rc < 0 ? rc : dberr(ob, "prune");
            sqlite3_exec(ob->h, "ROLLBACK", NULL, NULL, NULL);
            goto out;
        }
    }
    if (done < n) {
        ob->prune_after = ids[done - 1]; /* the byte budget ran out: go on from there */
        *more = 1;
    } else if ((size_t)seen == max) {
        ob->prune_after = hi;
        *more = 1;
    } else {
        ob->prune_after = 0;
    }
    rc = (int)done;
out:
    sqlite3_finalize(s);
    free(ids);
    free(lens);
    return rc;
}
