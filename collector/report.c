/* SPDX-License-Identifier: Apache-2.0 */
/* Health report figures for a period, from the stores, as of the period end (see report.h). */
#include "report.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <rrd.h>
#include <sqlite3.h>

#include "attendance.h"
#include "incident.h"
#include "report_int.h"
#include "rrdq.h"
#include "wp/err.h"
#include "wp/mem.h"

#define DAY_MS (24 * 3600 * 1000LL)

#ifdef __SANITIZE_ADDRESS__
/* LeakSanitizer hooks (reserved names, by the sanitizer's contract), linked into whatever
 * makes reports: librrd 1.7 loses a few small blocks inside every rrd_graph_v() call, and
 * fontconfig (under pango, report_pdf.c) while it parses its configuration once per process.
 * Neither is ours to free. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:librrd.so\nleak:libfontconfig.so\n";
}

const char *__lsan_default_options(void);
const char *__lsan_default_options(void)
{
    return "print_suppressions=0";
}
#endif

/* ---- periods ---- */

/* Fill a week starting on the Monday year-mon-mday (any normalisable date). */
static void week_at(int year, int mon, int mday, struct rep_period *p)
{
    struct tm tm;

    p->from_ms = rep_local_at(year, mon, mday, 0);
    p->to_ms = rep_local_at(year, mon, mday + 7, 0);
    rep_local_tm(p->from_ms + 12 * 3600 * 1000LL, &tm);
    strftime(p->label, sizeof(p->label), "%G-W%V", &tm);
}

int rep_week(const char *spec, int64_t now_ms, struct rep_period *cur, struct rep_period *prev)
{
    struct tm tm;
    int y = 0, mon = 0, mday = 0;

    if (spec == NULL || spec[0] == '\0') {
        rep_local_tm(now_ms, &tm);
        y = tm.tm_year + 1900;
        mon = tm.tm_mon + 1;
        mday = tm.tm_mday - (tm.tm_wday + 6) % 7 - 7; /* Monday of last week */
    } else {
        int w = 0;
        char tail = 0;
        if (sscanf(spec, "%4d-W%2d%c", &y, &w, &tail) != 2 || y < 1971 || y > 9999 || w < 1 ||
            w > 53) {
            return -EINVAL;
        }
        /* 4 January is always in week 1 */
        int64_t jan4 = rep_local_at(y, 1, 4, 0);
        rep_local_tm(jan4, &tm);
        mon = 1;
        mday = 4 - (tm.tm_wday + 6) % 7 + (w - 1) * 7;
    }
    week_at(y, mon, mday, cur);
    week_at(y, mon, mday - 7, prev);
    if (spec != NULL && spec[0] != '\0') {
        char want[16];
        int w = 0;
        sscanf(spec, "%4d-W%2d", &y, &w);
        snprintf(want, sizeof(want), "%04d-W%02d", y, w);
        if (strcmp(want, cur->label) != 0) {
            return -EINVAL; /* week 53 of a year with 52 */
        }
    }
    return 0;
}

static void month_at(int year, int mon, struct rep_period *p)
{
    struct tm tm;

    p->from_ms = rep_local_at(year, mon, 1, 0);
    p->to_ms = rep_local_at(year, mon + 1, 1, 0);
    rep_local_tm(p->from_ms + 12 * 3600 * 1000LL, &tm);
    strftime(p->label, sizeof(p->label), "%Y-%m", &tm);
}

int rep_month(const char *spec, int64_t now_ms, struct rep_period *cur, struct rep_period *prev)
{
    struct tm tm;
    int y = 0, mon = 0;

    if (spec == NULL || spec[0] == '\0') {
        rep_local_tm(now_ms, &tm);
        y = tm.tm_year + 1900;
        mon = tm.tm_mon; /* last month, 0 = December of last year (normalised) */
    } else {
        char tail = 0;
        if (sscanf(spec, "%4d-%2d%c", &y, &mon, &tail) != 2 || y < 1971 || y > 9999 || mon < 1 ||
            mon > 12) {
            return -EINVAL;
        }
    }
    month_at(y, mon, cur);
    month_at(y, mon - 1, prev);
    return 0;
}

/* ---- small helpers ---- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

struct rep_dist rep_dist_of(int64_t *v, size_t n)
{
    struct rep_dist d;

    memset(&d, 0, sizeof(d));
    d.n = n;
    if (n == 0) {
        return d;
    }
    qsort(v, n, sizeof(*v), cmp_i64);
    d.median_ms = n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    size_t rank = (n * 9 + 9) / 10; /* ceil(0.9 n), 1-based */
    d.p90_ms = v[rank - 1];
    return d;
}

/* ---- helpers shared by the report modules (report_int.h) ---- */

int rep_ro_open(const char *dir, const char *name, sqlite3 **out, char *err, size_t errlen)
{
    struct stat sb;
    char *path = wp_xasprintf("%s/%s", dir, name);
    int rc = 0;

    *out = NULL;
    if (stat(path, &sb) != 0) {
        free(path);
        return WP_ENOTFOUND;
    }
    if (sqlite3_open_v2(path, out, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, *out != NULL ? sqlite3_errmsg(*out) : "no memory");
        sqlite3_close(*out);
        *out = NULL;
        rc = WP_EDB;
    } else {
        sqlite3_busy_timeout(*out, 5000);
    }
    free(path);
    return rc;
}

int rep_has_table(sqlite3 *db, const char *name)
{
    sqlite3_stmt *s = NULL;
    int found = 0;

    if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1", -1,
                           &s, NULL) == SQLITE_OK) {
        sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
        found = sqlite3_step(s) == SQLITE_ROW;
    }
    sqlite3_finalize(s);
    return found;
}

int rep_db_fail(sqlite3 *db, const char *what, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: %s", what, sqlite3_errmsg(db));
    return WP_EDB;
}

const char *rep_col_str(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t != NULL ? (const char *)t : "";
}

char *rep_col_dup(sqlite3_stmt *s, int i)
{
    return wp_xstrdup(rep_col_str(s, i));
}

int rep_in_list(const char *list, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = list; p != NULL && *p != '\0';) {
        const char *e = strchr(p, ',');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) {
            return 1;
        }
        p = e != NULL ? e + 1 : NULL;
    }
    return 0;
}

int rep_vec_add(void *arg, int64_t ts_s, double value)
{
    struct rep_vec *v = arg;

    if (v->n == v->cap) {
        v->cap = v->cap != 0 ? v->cap * 2 : 1024;
        v->v = wp_xrealloc(v->v, v->cap * sizeof(*v->v));
        v->ts = wp_xrealloc(v->ts, v->cap * sizeof(*v->ts));
    }
    v->ts[v->n] = ts_s;
    v->v[v->n++] = value;
    return 0;
}

void rep_vec_free(struct rep_vec *v)
{
    free(v->v);
    free(v->ts);
    memset(v, 0, sizeof(*v));
}

int rep_rrd_rows(const char *path, const char *ds, int64_t s0, int64_t s1, int finite,
                 struct rep_vec *v, uint32_t *step)
{
    size_t n0 = v->n, n = v->n;
    int rc = wp_rrdq_fetch(path, ds, s0, s1, finite ? WP_RRDQ_SKIP_NAN : 0, rep_vec_add, v, step);

    if (rc != 0) {
        v->n = n0;
        return rc;
    }
    /* librrd also gives the row that ends at s0 (and may give rows past s1) */
    for (size_t i = n0; i < v->n; i++) {
        if (v->ts[i] > s0 && v->ts[i] <= s1 && (!finite || isfinite(v->v[i]))) {
            v->ts[n] = v->ts[i];
            v->v[n++] = v->v[i];
        }
    }
    v->n = n;
    return 0;
}

void rep_ivs_add(struct rep_ivs *s, int64_t a, int64_t b, int64_t lo, int64_t hi)
{
    a = a < lo ? lo : a;
    b = b > hi ? hi : b;
    if (a >= b) {
        return;
    }
    if (s->n == s->cap) {
        s->cap = s->cap != 0 ? s->cap * 2 : 16;
        s->v = wp_xrealloc(s->v, s->cap * sizeof(*s->v));
    }
    s->v[s->n][0] = a;
    s->v[s->n][1] = b;
    s->n++;
}

static int cmp_iv(const void *a, const void *b)
{
    const int64_t *x = a, *y = b;
    return (x[0] > y[0]) - (x[0] < y[0]);
}

int64_t rep_ivs_union(struct rep_ivs *s)
{
    int64_t total = 0;
    size_t o = 0;

    if (s->n == 0) {
        return 0;
    }
    qsort(s->v, s->n, sizeof(*s->v), cmp_iv);
    for (size_t i = 1; i < s->n; i++) {
        if (s->v[i][0] <= s->v[o][1]) {
            if (s->v[i][1] > s->v[o][1]) {
                s->v[o][1] = s->v[i][1];
            }
        } else {
            o++;
            s->v[o][0] = s->v[i][0];
            s->v[o][1] = s->v[i][1];
        }
    }
    s->n = o + 1;
    for (size_t i = 0; i < s->n; i++) {
        total += s->v[i][1] - s->v[i][0];
    }
    return total;
}

void rep_ivs_free(struct rep_ivs *s)
{
    free(s->v);
    memset(s, 0, sizeof(*s));
}

int64_t rep_local_at(int y, int mon, int mday, int minute)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = mday;
    tm.tm_hour = minute / 60;
    tm.tm_min = minute % 60;
    tm.tm_isdst = -1;
    return (int64_t)mktime(&tm) * 1000;
}

void rep_local_tm(int64_t ms, struct tm *tm)
{
    time_t t = (time_t)(ms / 1000);

    localtime_r(&t, tm);
}

char *rep_ring(void)
{
    static char bufs[16][REP_FMT_LEN];
    static unsigned k;
    return bufs[k++ % 16];
}

const char *rep_time_str(int64_t ms)
{
    char *b = rep_ring();
    struct tm tm;

    rep_local_tm(ms, &tm);
    strftime(b, REP_FMT_LEN, "%Y-%m-%d %H:%M", &tm);
    return b;
}

const char *rep_iso_str(int64_t ms)
{
    char *b = rep_ring();
    char z[16];
    struct tm tm;

    rep_local_tm(ms, &tm);
    strftime(b, REP_FMT_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
    strftime(z, sizeof(z), "%z", &tm); /* +0800 */
    if (strlen(z) == 5) {
        size_t n = strlen(b);
        snprintf(b + n, REP_FMT_LEN - n, "%.3s:%s", z, z + 3);
    }
    return b;
}

const char *rep_tz_str(int64_t ms)
{
    char *b = rep_ring();
    char z[16];
    struct tm tm;

    rep_local_tm(ms, &tm);
    strftime(z, sizeof(z), "%z", &tm);
    snprintf(b, REP_FMT_LEN, "UTC%.3s:%s", z, strlen(z) == 5 ? z + 3 : "00");
    return b;
}

const char *rep_hours_str(int64_t ms)
{
    char *b = rep_ring();
    snprintf(b, REP_FMT_LEN, "%.2f", (double)ms / 3600000.0);
    return b;
}

size_t rep_utf8_cut(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) {
            n--;
        }
    }
    return n;
}

/* ---- hosts ---- */

struct hostacc {
    char *host;
    int silences;
    struct rep_ivs down, planned;
};

struct hosts {
    struct hostacc *h;
    size_t n, cap;
};

static struct hostacc *host_get(struct hosts *hs, const char *host)
{
    for (size_t i = 0; i < hs->n; i++) {
        if (strcmp(hs->h[i].host, host) == 0) {
            return &hs->h[i];
        }
    }
    if (hs->n == hs->cap) {
        hs->cap = hs->cap != 0 ? hs->cap * 2 : 16;
        hs->h = wp_xrealloc(hs->h, hs->cap * sizeof(*hs->h));
    }
    struct hostacc *a = &hs->h[hs->n++];
    memset(a, 0, sizeof(*a));
    a->host = wp_xstrdup(host);
    return a;
}

/* ---- incidents ---- */

/* Walk an incident's timeline up to the period end: its state then, and for silence
 * incidents the silent time (and the part of it in maintenance) within the period. */
static int walk_timeline(sqlite3_stmt *tl, const struct rep_period *p, struct rep_inc *r,
                         struct hostacc *ha)
{
    int64_t first_resolved = 0, seg = 0;
    int down = 0, maint = 0, rc = 0;

    sqlite3_reset(tl);
    sqlite3_bind_int64(tl, 1, r->id);
    sqlite3_bind_int64(tl, 2, p->to_ms);
    while ((rc = sqlite3_step(tl)) == SQLITE_ROW) {
        int64_t at = sqlite3_column_int64(tl, 0);
        const char *kind = rep_col_str(tl, 1);
        const char *by = rep_col_str(tl, 2);
        const char *text = rep_col_str(tl, 3);
        int in = at >= p->from_ms;

        if (ha != NULL && down) {
            rep_ivs_add(&ha->down, seg, at, p->from_ms, p->to_ms);
            if (maint) {
                rep_ivs_add(&ha->planned, seg, at, p->from_ms, p->to_ms);
            }
        }
        /* open or acknowledged during [seg, at), and that overlaps the period */
        if (seg != 0 && (r->status == INC_OPEN || r->status == INC_ACKNOWLEDGED) &&
            at > p->from_ms) {
            r->active_in = 1;
        }
        seg = at;
        if (strcmp(kind, "opened") == 0) {
            r->status = INC_OPEN;
            down = 1;
        } else if (strcmp(kind, "acknowledged") == 0) {
            if (r->acked_ms == 0) {
                r->acked_ms = at;
            }
            if (r->status == INC_OPEN) {
                r->status = INC_ACKNOWLEDGED;
            }
        } else if (strcmp(kind, "resolved") == 0) {
            r->status = INC_RESOLVED;
            r->resolved_ms = at;
            if (first_resolved == 0) {
                first_resolved = at;
            }
            free(r->note);
            r->note = wp_xasprintf("%s%s%s", text, by[0] != '\0' ? " - " : "", by);
            down = 0;
        } else if (strcmp(kind, "reopened") == 0) {
            r->status = INC_OPEN;
            r->resolved_ms = 0;
            r->reopens_in += in;
            down = 1;
        } else if (strcmp(kind, "closed") == 0) {
            r->status = INC_CLOSED;
            down = 0;
        } else if (strcmp(kind, "escalated") == 0) {
            r->max_level++;
            r->escalations_in += in;
        } else if (strcmp(kind, "flapping") == 0) {
            r->flapping_in |= in;
        } else if (strcmp(kind, "suppressed") == 0) {
            r->suppressed = 1;
            maint = strncmp(text, "maintenance", 11) == 0;
        } else if (strcmp(kind, "unsuppressed") == 0) {
            maint = 0;
        }
    }
    if (rc != SQLITE_DONE) {
        return WP_EDB;
    }
    if (ha != NULL && down) {
        rep_ivs_add(&ha->down, seg, p->to_ms, p->from_ms, p->to_ms);
        if (maint) {
            rep_ivs_add(&ha->planned, seg, p->to_ms, p->from_ms, p->to_ms);
        }
    }
    if (seg != 0 && (r->status == INC_OPEN || r->status == INC_ACKNOWLEDGED)) {
        r->active_in = 1; /* still open at the period end */
    }
    if (r->max_level > 4) {
        r->max_level = 4;
    }
    r->opened_in = r->opened_ms >= p->from_ms;
    r->active_in |= r->opened_in;
    r->resolved_in = r->resolved_ms >= p->from_ms && r->resolved_ms != 0;
    if (r->opened_in) {
        /* response: acknowledged, or resolved, by the response deadline */
        int64_t t = r->acked_ms;
        if (first_resolved != 0 && (t == 0 || first_resolved < t)) {
            t = first_resolved;
        }
        if (t != 0) {
            r->response = t <= r->response_due_ms ? REP_SLA_MET : REP_SLA_BREACHED;
        } else {
            r->response = r->response_due_ms < p->to_ms ? REP_SLA_BREACHED : REP_SLA_PENDING;
        }
        if (r->resolved_ms != 0) {
            r->resolve = r->resolved_ms <= r->resolve_due_ms ? REP_SLA_MET : REP_SLA_BREACHED;
        } else {
            r->resolve = r->resolve_due_ms < p->to_ms ? REP_SLA_BREACHED : REP_SLA_PENDING;
        }
    }
    return 0;
}

static int load_incidents(sqlite3 *db, const struct rep_period *p, const char *silence,
                          struct rep_stats *st, struct hosts *hs, char *err, size_t errlen)
{
    sqlite3_stmt *q = NULL, *tl = NULL;
    int rc = 0, r = 0;
    size_t cap = 0;
    int64_t *mtta = NULL, *mttr = NULL;
    size_t na = 0, nr = 0;

    if (sqlite3_prepare_v2(db,
                           "SELECT id, priority, impact, category, rule, host, summary, opened_ms,"
                           " response_due_ms, resolve_due_ms FROM incidents WHERE opened_ms < ?2"
                           " AND (opened_ms >= ?1 OR status IN (0, 1) OR resolved_ms = 0"
                           " OR resolved_ms >= ?1 OR closed_ms >= ?1) ORDER BY id",
                           -1, &q, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "SELECT at_ms, kind, \"by\", text FROM timeline WHERE incident_id = ?1"
                           " AND at_ms < ?2 ORDER BY at_ms, id",
                           -1, &tl, NULL) != SQLITE_OK) {
        rc = rep_db_fail(db, "incidents.db", err, errlen);
        goto out;
    }
    sqlite3_bind_int64(q, 1, p->from_ms);
    sqlite3_bind_int64(q, 2, p->to_ms);
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        if (st->ninc == cap) {
            cap = cap != 0 ? cap * 2 : 64;
            st->inc = wp_xrealloc(st->inc, cap * sizeof(*st->inc));
            mtta = wp_xrealloc(mtta, cap * sizeof(*mtta));
            mttr = wp_xrealloc(mttr, cap * sizeof(*mttr));
        }
        struct rep_inc *i = &st->inc[st->ninc++];
        memset(i, 0, sizeof(*i));
        i->id = sqlite3_column_int64(q, 0);
        i->priority = sqlite3_column_int(q, 1);
        if (i->priority < 1 || i->priority > 4) {
            i->priority = 4;
        }
        i->impact = sqlite3_column_int(q, 2);
        i->category = rep_col_dup(q, 3);
        i->rule = rep_col_dup(q, 4);
        i->host = rep_col_dup(q, 5);
        i->summary = rep_col_dup(q, 6);
        i->opened_ms = sqlite3_column_int64(q, 7);
        i->response_due_ms = sqlite3_column_int64(q, 8);
        i->resolve_due_ms = sqlite3_column_int64(q, 9);
        i->note = wp_xstrdup("");
        i->tickets = wp_xstrdup("");
        struct hostacc *ha = NULL;
        if (rep_in_list(silence, i->rule) && i->host[0] != '\0') {
            ha = host_get(hs, i->host);
        }
        if (walk_timeline(tl, p, i, ha) < 0) {
            rc = rep_db_fail(db, "incidents.db timeline", err, errlen);
            goto out;
        }
        if (ha != NULL) {
            ha->silences++;
        }
        if (i->opened_in) {
            st->opened++;
            st->opened_prio[i->priority - 1]++;
            st->resp[i->response]++;
            st->res[i->resolve]++;
            if (i->acked_ms != 0) {
                mtta[na++] = i->acked_ms - i->opened_ms;
            }
            if (i->resolved_ms != 0) {
                mttr[nr++] = i->resolved_ms - i->opened_ms;
            }
        }
        if (i->resolved_in) {
            st->resolved++;
            st->resolved_prio[i->priority - 1]++;
        }
        st->escalations += (size_t)i->escalations_in;
        st->flapping += (size_t)i->flapping_in;
        st->reopens += (size_t)i->reopens_in;
    }
    if (r != SQLITE_DONE) {
        rc = rep_db_fail(db, "incidents.db", err, errlen);
        goto out;
    }
    st->mtta = rep_dist_of(mtta, na);
    st->mttr = rep_dist_of(mttr, nr);
out:
    free(mtta);
    free(mttr);
    sqlite3_finalize(q);
    sqlite3_finalize(tl);
    return rc;
}

static int cmp_inc_id(const void *key, const void *elem)
{
    int64_t k = *(const int64_t *)key, id = ((const struct rep_inc *)elem)->id;
    return (k > id) - (k < id);
}

/* Tickets the outbox created (or found) for the incidents, from outbox_remote. */
static int load_tickets(sqlite3 *db, struct rep_stats *st, char *err, size_t errlen)
{
    sqlite3_stmt *q = NULL;
    int r = 0;

    if (!rep_has_table(db, "outbox_remote") || st->ninc == 0) {
        return 0;
    }
    if (sqlite3_prepare_v2(db,
                           "SELECT incident_id, dest, remote_id FROM outbox_remote"
                           " WHERE state = 'linked' AND remote_id <> ''"
                           " ORDER BY incident_id, dest, remote_id",
                           -1, &q, NULL) != SQLITE_OK) {
        return rep_db_fail(db, "outbox_remote", err, errlen);
    }
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(q, 0);
        struct rep_inc *i = bsearch(&id, st->inc, st->ninc, sizeof(*st->inc), cmp_inc_id);
        if (i == NULL) {
            continue;
        }
        char *t = wp_xasprintf("%s%s%s: %s", i->tickets, i->tickets[0] != '\0' ? ", " : "",
                               rep_col_str(q, 1), rep_col_str(q, 2));
        if (i->tickets[0] == '\0' && i->opened_in) {
            st->tickets++;
        }
        free(i->tickets);
        i->tickets = t;
    }
    sqlite3_finalize(q);
    return r == SQLITE_DONE ? 0 : rep_db_fail(db, "outbox_remote", err, errlen);
}

static int load_dead(sqlite3 *db, const struct rep_period *p, struct rep_stats *st, char *err,
                     size_t errlen)
{
    sqlite3_stmt *q = NULL;
    int r = 0;
    size_t cap = 0;

    if (!rep_has_table(db, "outbox")) {
        return 0;
    }
    st->have_outbox = 1;
    if (sqlite3_prepare_v2(db,
                           "SELECT id, incident_id, created_ms, dest, event, last_error, attempts,"
                           " last_code FROM outbox WHERE state = 'dead' AND created_ms >= ?1"
                           " AND created_ms < ?2 ORDER BY id",
                           -1, &q, NULL) != SQLITE_OK) {
        return rep_db_fail(db, "outbox", err, errlen);
    }
    sqlite3_bind_int64(q, 1, p->from_ms);
    sqlite3_bind_int64(q, 2, p->to_ms);
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        if (st->ndead == cap) {
            cap = cap != 0 ? cap * 2 : 16;
            st->dead = wp_xrealloc(st->dead, cap * sizeof(*st->dead));
        }
        struct rep_dead *d = &st->dead[st->ndead++];
        d->id = sqlite3_column_int64(q, 0);
        d->incident_id = sqlite3_column_int64(q, 1);
        d->created_ms = sqlite3_column_int64(q, 2);
        d->dest = rep_col_dup(q, 3);
        d->event = rep_col_dup(q, 4);
        d->error = rep_col_dup(q, 5);
        d->attempts = sqlite3_column_int(q, 6);
        d->code = sqlite3_column_int(q, 7);
    }
    sqlite3_finalize(q);
    return r == SQLITE_DONE ? 0 : rep_db_fail(db, "outbox", err, errlen);
}

/* ---- hosts from the registry ---- */

/* ---- host metrics from the RRD files ---- */

enum { MET_CPU, MET_MEM, MET_LOAD, MET_DF };

/* Least squares over the rows (x in days from the first; two passes, centred, so a flat
 * series gives a slope of exactly 0): days after end_s until the line reaches 100, 0 when it
 * is there already, -1 when it does not rise. */
static double full_in_days(const struct rep_vec *a, size_t n, int64_t end_s)
{
    double mx = 0, my = 0, sxx = 0, sxy = 0;

    if (n < 2) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        mx += (double)(a->ts[i] - a->ts[0]) / 86400.0;
        my += a->v[i];
    }
    mx /= (double)n;
    my /= (double)n;
    for (size_t i = 0; i < n; i++) {
        double dx = (double)(a->ts[i] - a->ts[0]) / 86400.0 - mx;
        sxx += dx * dx;
        sxy += dx * (a->v[i] - my);
    }
    if (sxx <= 0) {
        return -1;
    }
    double slope = sxy / sxx; /* per day */
    double at_end = my + slope * ((double)(end_s - a->ts[0]) / 86400.0 - mx);
    if (at_end >= 100.0) {
        return 0;
    }
    if (slope <= 0) {
        return -1;
    }
    return (100.0 - at_end) / slope;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The metric of one file over the period; 0 with m->n = 0 when there is nothing to show. */
static void metric_of(const char *path, int kind, const struct rep_period *p, struct rep_metric *m)
{
    static const char *const ds[] = {"idle", "used", "load1", "used_pct"};
    struct rep_vec a, b;
    int64_t s0 = p->from_ms / 1000, s1 = p->to_ms / 1000;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    /* unknown rows kept so that the two data sources of mem stay aligned */
    if (rep_rrd_rows(path, ds[kind], s0, s1, 0, &a, NULL) != 0 ||
        (kind == MET_MEM && rep_rrd_rows(path, "total", s0, s1, 0, &b, NULL) != 0)) {
        goto out;
    }
    size_t n = 0;
    double sum = 0;
    for (size_t i = 0; i < a.n; i++) {
        double v = a.v[i];
        if (kind == MET_CPU) {
            v = 100.0 - v;
        } else if (kind == MET_MEM) {
            v = i < b.n && b.v[i] > 0 ? 100.0 * v / b.v[i] : NAN;
        }
        if (isfinite(v)) {
            a.ts[n] = a.ts[i];
            a.v[n++] = v;
            sum += v;
        }
    }
    if (n == 0) {
        goto out;
    }
    m->full_days = kind == MET_DF ? full_in_days(&a, n, s1) : -1;
    qsort(a.v, n, sizeof(*a.v), cmp_dbl);
    m->n = n;
    m->avg = sum / (double)n;
    m->p95 = a.v[(n * 95 + 99) / 100 - 1];
    m->peak = a.v[n - 1];
out:
    rep_vec_free(&a);
    rep_vec_free(&b);
}

/* An RRD path inside a DEF: ':' must be escaped. */
static char *rrd_escape(const char *path)
{
    char *o = wp_xmalloc(strlen(path) * 2 + 1);
    size_t n = 0;

    for (; *path != '\0'; path++) {
        if (*path == ':' || *path == '\\') {
            o[n++] = '\\';
        }
        o[n++] = *path;
    }
    o[n] = '\0';
    return o;
}

void *rep_metric_graph(const struct rep_metric *m, const struct rep_period *p, const char *fmt,
                       const char *title, size_t *len)
{
    static const char *const cdef[] = {"CDEF:c=100,v,-", "CDEF:c=v,t,/,100,*", "CDEF:c=v",
                                       "CDEF:c=v"};
    static const char *const ds[] = {"idle", "used", "load1", "used_pct"};
    char *esc = rrd_escape(m->path);
    char *args[32];
    int n = 0;
    void *img = NULL;

    *len = 0;
    args[n++] = wp_xstrdup("graph");
    args[n++] = wp_xstrdup("-");
    args[n++] = wp_xstrdup("--imgformat");
    args[n++] = wp_xstrdup(fmt);
    args[n++] = wp_xasprintf("--start=%lld", (long long)(p->from_ms / 1000));
    args[n++] = wp_xasprintf("--end=%lld", (long long)(p->to_ms / 1000));
    args[n++] = wp_xstrdup("--width=640");
    args[n++] = wp_xstrdup("--height=120");
    args[n++] = wp_xasprintf("--title=%s", title);
    args[n++] = wp_xstrdup("--lower-limit=0");
    args[n++] = wp_xstrdup("--disable-rrdtool-tag");
    args[n++] = wp_xstrdup("--border=0");
    args[n++] = wp_xstrdup("--font=DEFAULT:7:DejaVu Sans");
    args[n++] = wp_xasprintf("DEF:v=%s:%s:AVERAGE", esc, ds[m->kind]);
    if (m->kind == MET_MEM) {
        args[n++] = wp_xasprintf("DEF:t=%s:total:AVERAGE", esc);
    }
    args[n++] = wp_xstrdup(cdef[m->kind]);
    args[n++] = wp_xstrdup("AREA:c#9fc5e8");
    args[n++] = wp_xstrdup("LINE1:c#0b5394");
    rrd_clear_error();
    rrd_info_t *info = rrd_graph_v(n, args);
    for (rrd_info_t *i = info; i != NULL; i = i->next) {
        if (strcmp(i->key, "image") == 0 && i->type == RD_I_BLO && i->value.u_blo.size > 0) {
            img = wp_xmalloc(i->value.u_blo.size);
            memcpy(img, i->value.u_blo.ptr, i->value.u_blo.size);
            *len = i->value.u_blo.size;
        }
    }
    rrd_info_free(info);
    rrd_clear_error();
    for (int i = 0; i < n; i++) {
        free(args[i]);
    }
    free(esc);
    return img;
}

static int cmp_metric(const void *a, const void *b)
{
    const struct rep_metric *x = a, *y = b;
    int c = strcmp(x->host, y->host);
    return c != 0 ? c : strcmp(x->metric, y->metric);
}

static int load_metrics(sqlite3 *db, const char *rrd_dir, const struct rep_period *p,
                        struct rep_stats *st, char *err, size_t errlen)
{
    sqlite3_stmt *q = NULL;
    size_t cap = 0;
    int r = 0;

    if (!rep_has_table(db, "series")) {
        return 0;
    }
    if (sqlite3_prepare_v2(db,
                           "SELECT a.host, s.grp, s.inst, s.file FROM series s JOIN agents a"
                           " ON a.id = s.agent WHERE (s.grp = 'cpu' AND s.inst = 'total')"
                           " OR s.grp IN ('mem', 'load', 'df') GROUP BY a.host, s.grp, s.inst"
                           " ORDER BY a.host, s.grp, s.inst",
                           -1, &q, NULL) != SQLITE_OK) {
        return rep_db_fail(db, "watchpost.db series", err, errlen);
    }
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        const char *grp = rep_col_str(q, 1), *inst = rep_col_str(q, 2);
        int kind = strcmp(grp, "cpu") == 0    ? MET_CPU
                   : strcmp(grp, "mem") == 0  ? MET_MEM
                   : strcmp(grp, "load") == 0 ? MET_LOAD
                                              : MET_DF;
        struct rep_metric m;
        memset(&m, 0, sizeof(m));
        char *path = wp_xasprintf("%s/%s", rrd_dir, rep_col_str(q, 3));
        metric_of(path, kind, p, &m);
        free(path);
        if (m.n == 0) {
            continue;
        }
        if (st->nmetrics == cap) {
            cap = cap != 0 ? cap * 2 : 32;
            st->metrics = wp_xrealloc(st->metrics, cap * sizeof(*st->metrics));
        }
        m.host = rep_col_dup(q, 0);
        m.path = wp_xasprintf("%s/%s", rrd_dir, rep_col_str(q, 3));
        m.kind = kind;
        m.metric = kind == MET_DF ? wp_xasprintf("df %s", inst) : wp_xstrdup(grp);
        st->metrics[st->nmetrics++] = m;
    }
    sqlite3_finalize(q);
    if (st->nmetrics > 1) {
        qsort(st->metrics, st->nmetrics, sizeof(*st->metrics), cmp_metric);
    }
    return r == SQLITE_DONE ? 0 : rep_db_fail(db, "watchpost.db series", err, errlen);
}

/* ---- registrations, hotline calls and processes from the registry ---- */

/* Lines that are registrations: (agent, object) of the kamreg_ext series (instance
 * "<probe>/<extension>") and the sipping series (instance = the target), sorted by key. */
struct regent {
    char *key; /* agent \x1f object */
    int kind;  /* 1 kamreg, 2 sipping */
};

struct regset {
    struct regent *v;
    size_t n;
};

static char *reg_key(const char *agent, const char *object)
{
    return wp_xasprintf("%s\x1f%s", agent, object);
}

static int cmp_regent(const void *a, const void *b)
{
    return strcmp(((const struct regent *)a)->key, ((const struct regent *)b)->key);
}

static int regset_kind(const struct regset *rs, const char *agent, const char *object)
{
    struct regent k;
    int kind = 0;

    if (rs->n == 0) {
        return 0;
    }
    k.key = reg_key(agent, object);
    const struct regent *e = bsearch(&k, rs->v, rs->n, sizeof(*rs->v), cmp_regent);
    if (e != NULL) {
        kind = e->kind;
    }
    free(k.key);
    return kind;
}

static void regset_free(struct regset *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        free(rs->v[i].key);
    }
    free(rs->v);
    memset(rs, 0, sizeof(*rs));
}

static int load_regset(sqlite3 *db, struct regset *rs, char *err, size_t errlen)
{
    sqlite3_stmt *q = NULL;
    size_t cap = 0;
    int r = 0;

    if (sqlite3_prepare_v2(db,
                           "SELECT DISTINCT agent, grp, inst FROM series"
                           " WHERE grp IN ('kamreg_ext', 'sipping') ORDER BY agent, grp, inst",
                           -1, &q, NULL) != SQLITE_OK) {
        return rep_db_fail(db, "watchpost.db series", err, errlen);
    }
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        const char *grp = rep_col_str(q, 1), *inst = rep_col_str(q, 2);
        int kamreg = strcmp(grp, "kamreg_ext") == 0;
        const char *slash = strchr(inst, '/');
        if (kamreg && slash == NULL) {
            continue;
        }
        if (rs->n == cap) {
            cap = cap != 0 ? cap * 2 : 64;
            rs->v = wp_xrealloc(rs->v, cap * sizeof(*rs->v));
        }
        rs->v[rs->n].key = reg_key(rep_col_str(q, 0), kamreg ? slash + 1 : inst);
        rs->v[rs->n].kind = kamreg ? 1 : 2;
        rs->n++;
    }
    sqlite3_finalize(q);
    if (rs->n > 1) {
        qsort(rs->v, rs->n, sizeof(*rs->v), cmp_regent);
    }
    return r == SQLITE_DONE ? 0 : rep_db_fail(db, "watchpost.db series", err, errlen);
}

/* The rows of data source ds of a file within (from, to] with a value (none when it cannot be
 * read). */
static void period_rows(const char *path, const char *ds, const struct rep_period *p,
                        struct rep_vec *v, uint32_t *step)
{
    rep_rrd_rows(path, ds, p->from_ms / 1000, p->to_ms / 1000, 1, v, step);
}

/* Nearest rank: the ceil(q/100 n)-th smallest of sorted v[0..n). */
static double nearest_rank(const double *v, size_t n, unsigned q)
{
    size_t rank = (n * q + 99) / 100;
    return n > 0 ? v[(rank > 0 ? rank : 1) - 1] : 0;
}

static void call_of(const char *path, const struct rep_period *p, struct rep_call *c)
{
    struct rep_vec a, b;
    uint32_t step = 0;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    period_rows(path, "answered", p, &a, &step);
    c->step_s = step;
    c->calls = a.n;
    for (size_t i = 0; i < a.n; i++) {
        c->answered += a.v[i];
    }
    c->success_pct = a.n > 0 ? 100.0 * c->answered / (double)a.n : 0;
    period_rows(path, "answer_s", p, &b, NULL);
    if (b.n > 0) {
        qsort(b.v, b.n, sizeof(*b.v), cmp_dbl);
        c->n_answer = b.n;
        c->answer_p50 = nearest_rank(b.v, b.n, 50);
        c->answer_p95 = nearest_rank(b.v, b.n, 95);
        c->answer_max = b.v[b.n - 1];
    }
    rep_vec_free(&a);
    rep_vec_free(&b);
}

static void proc_of(const char *path, const struct rep_period *p, struct rep_proc *r)
{
    struct rep_vec a, b;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    period_rows(path, "cpu_pct", p, &a, NULL);
    period_rows(path, "rss_bytes", p, &b, NULL);
    r->n = a.n > b.n ? a.n : b.n;
    for (size_t i = 0; i < a.n; i++) {
        r->cpu_avg += a.v[i];
        r->cpu_peak = i == 0 || a.v[i] > r->cpu_peak ? a.v[i] : r->cpu_peak;
    }
    r->cpu_avg = a.n > 0 ? r->cpu_avg / (double)a.n : 0;
    for (size_t i = 0; i < b.n; i++) {
        r->mem_avg += b.v[i];
        r->mem_peak = i == 0 || b.v[i] > r->mem_peak ? b.v[i] : r->mem_peak;
    }
    r->mem_avg = b.n > 0 ? r->mem_avg / (double)b.n : 0;
    rep_vec_free(&a);
    rep_vec_free(&b);
}

/* The sipcall targets and the proc matches of every host (one file per host and instance). */
static int load_calls_procs(sqlite3 *db, const char *rrd_dir, const struct rep_period *p,
                            struct rep_stats *st, char *err, size_t errlen)
{
    sqlite3_stmt *q = NULL;
    size_t ccap = 0, pcap = 0;
    int r = 0;

    if (sqlite3_prepare_v2(db,
                           "SELECT a.host, s.grp, s.inst, s.file FROM series s JOIN agents a"
                           " ON a.id = s.agent WHERE s.grp IN ('sipcall', 'proc')"
                           " GROUP BY a.host, s.grp, s.inst ORDER BY a.host, s.grp, s.inst",
                           -1, &q, NULL) != SQLITE_OK) {
        return rep_db_fail(db, "watchpost.db series", err, errlen);
    }
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        char *path = wp_xasprintf("%s/%s", rrd_dir, rep_col_str(q, 3));
        if (strcmp(rep_col_str(q, 1), "sipcall") == 0) {
            struct rep_call c;
            memset(&c, 0, sizeof(c));
            call_of(path, p, &c);
            if (c.calls > 0 || c.n_answer > 0) {
                if (st->ncalls == ccap) {
                    ccap = ccap != 0 ? ccap * 2 : 16;
                    st->calls = wp_xrealloc(st->calls, ccap * sizeof(*st->calls));
                }
                c.host = rep_col_dup(q, 0);
                c.target = rep_col_dup(q, 2);
                st->calls[st->ncalls++] = c;
            }
        } else {
            struct rep_proc pr;
            memset(&pr, 0, sizeof(pr));
            proc_of(path, p, &pr);
            if (pr.n > 0) {
                if (st->nprocs == pcap) {
                    pcap = pcap != 0 ? pcap * 2 : 64;
                    st->procs = wp_xrealloc(st->procs, pcap * sizeof(*st->procs));
                }
                pr.host = rep_col_dup(q, 0);
                pr.name = rep_col_dup(q, 2);
                st->procs[st->nprocs++] = pr;
            }
        }
        free(path);
    }
    sqlite3_finalize(q);
    return r == SQLITE_DONE ? 0 : rep_db_fail(db, "watchpost.db series", err, errlen);
}

static int load_registry(const char *dir, const char *rrd_dir, struct hosts *hs, struct regset *rs,
                         struct rep_stats *st, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    int rc = rep_ro_open(dir, "watchpost.db", &db, err, errlen);
    int r = 0;

    if (rc == WP_ENOTFOUND) {
        return 0;
    }
    if (rc < 0) {
        return rc;
    }
    if (rep_has_table(db, "agents")) {
        st->have_registry = 1;
        if (sqlite3_prepare_v2(db, "SELECT DISTINCT host FROM agents WHERE host <> ''", -1, &q,
                               NULL) != SQLITE_OK) {
            rc = rep_db_fail(db, "watchpost.db", err, errlen);
            goto out;
        }
        while ((r = sqlite3_step(q)) == SQLITE_ROW) {
            host_get(hs, rep_col_str(q, 0));
        }
        if (r != SQLITE_DONE) {
            rc = rep_db_fail(db, "watchpost.db", err, errlen);
            goto out;
        }
        rc = load_metrics(db, rrd_dir, &st->p, st, err, errlen);
        if (rc == 0 && rep_has_table(db, "series")) {
            rc = load_regset(db, rs, err, errlen);
        }
        if (rc == 0 && rep_has_table(db, "series")) {
            rc = load_calls_procs(db, rrd_dir, &st->p, st, err, errlen);
        }
    }
out:
    sqlite3_finalize(q);
    sqlite3_close(db);
    return rc;
}

static int cmp_host(const void *a, const void *b)
{
    return strcmp(((const struct rep_host *)a)->host, ((const struct rep_host *)b)->host);
}

static void finish_hosts(struct hosts *hs, const struct rep_period *p, struct rep_stats *st)
{
    double sum = 0;
    int64_t len = p->to_ms - p->from_ms;

    st->hosts = wp_xcalloc(hs->n + 1, sizeof(*st->hosts));
    for (size_t i = 0; i < hs->n; i++) {
        struct hostacc *a = &hs->h[i];
        struct rep_host *h = &st->hosts[st->nhosts++];
        int64_t down = rep_ivs_union(&a->down);
        int64_t planned = rep_ivs_union(&a->planned);
        h->host = a->host;
        a->host = NULL;
        h->silences = a->silences;
        h->planned_ms = planned;
        h->down_ms = down - planned;
        h->avail_pct =
            len - planned > 0 ? 100.0 * (double)(len - down) / (double)(len - planned) : 100.0;
        sum += h->avail_pct;
        rep_ivs_free(&a->down);
        rep_ivs_free(&a->planned);
    }
    free(hs->h);
    if (st->nhosts > 1) {
        qsort(st->hosts, st->nhosts, sizeof(*st->hosts), cmp_host);
    }
    st->avail_pct = st->nhosts > 0 ? sum / (double)st->nhosts : 100.0;
}

/* ---- lines ---- */

static const char *const state_names[REP_NSTATES] = {
    "idle",        "ringing",        "in_use",  "on_hold", "busy",
    "unavailable", "out_of_service", "blocked", "unknown", "other"};

static int state_index(const char *s)
{
    for (int i = 0; i < REP_NSTATES - 1; i++) {
        if (strcmp(s, state_names[i]) == 0) {
            return i;
        }
    }
    return REP_NSTATES - 1;
}

static int bad_state(int i)
{
    return i == 5 || i == 6 || i == 7;
}

static void line_account(struct rep_line *l, int cur, int64_t a, int64_t b)
{
    if (b <= a) {
        return;
    }
    if (cur < 0 || cur == 8) {
        l->nodata_ms += b - a;
        if (cur == 8) {
            l->state_ms[8] += b - a;
        }
        return;
    }
    l->state_ms[cur] += b - a;
    l->known_ms += b - a;
    if (bad_state(cur)) {
        l->bad_ms += b - a;
    }
}

static void line_finish(struct rep_line *l)
{
    l->avail_pct =
        l->known_ms > 0 ? 100.0 * (double)(l->known_ms - l->bad_ms) / (double)l->known_ms : 100.0;
}

/* kamreg's words for a lapsed registration (probes/kamreg.c), for a line the registry does
 * not name */
static int reg_raw(const char *raw)
{
    return strcmp(raw, "expired") == 0 || strcmp(raw, "not registered") == 0;
}

static int load_lines(sqlite3 *db, const struct rep_period *p, const struct regset *rs,
                      struct rep_stats *st, char *err, size_t errlen)
{
    sqlite3_stmt *q = NULL;
    struct rep_line *l = NULL;
    int cur = -1, known = -1, r = 0;
    int64_t t = 0;
    size_t cap = 0;

    if (!rep_has_table(db, "history") || !rep_has_table(db, "lines")) {
        return 0;
    }
    st->have_lines = 1;
    /* the current table adds the state of a line whose last change was pruned from history */
    if (sqlite3_prepare_v2(db,
                           "SELECT host, object, grp, state, at_ms, agent, raw FROM history"
                           " WHERE at_ms < ?1 UNION SELECT host, object, grp, state, since_ms,"
                           " agent, raw FROM lines WHERE since_ms < ?1 ORDER BY 1, 2, 5, 4, 6, 7",
                           -1, &q, NULL) != SQLITE_OK) {
        return rep_db_fail(db, "lines.db", err, errlen);
    }
    sqlite3_bind_int64(q, 1, p->to_ms);
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        const char *host = rep_col_str(q, 0), *object = rep_col_str(q, 1);
        int64_t at = sqlite3_column_int64(q, 4);
        int s = state_index(rep_col_str(q, 3));
        if (l == NULL || strcmp(l->host, host) != 0 || strcmp(l->object, object) != 0) {
            if (l != NULL) {
                line_account(l, cur, t, p->to_ms);
                line_finish(l);
                st->reg_lost += (size_t)l->reg_lost;
            }
            if (st->nlines == cap) {
                cap = cap != 0 ? cap * 2 : 64;
                st->lines = wp_xrealloc(st->lines, cap * sizeof(*st->lines));
            }
            l = &st->lines[st->nlines++];
            memset(l, 0, sizeof(*l));
            l->host = wp_xstrdup(host);
            l->object = wp_xstrdup(object);
            l->group = rep_col_dup(q, 2);
            cur = -1;
            known = -1;
            t = p->from_ms;
        } else {
            free(l->group);
            l->group = rep_col_dup(q, 2);
        }
        if (l->reg == 0) {
            l->reg = regset_kind(rs, rep_col_str(q, 5), object);
        }
        if (l->reg == 0 && s == 5 && reg_raw(rep_col_str(q, 6))) {
            l->reg = 1;
        }
        /* a registration lost: into unavailable from another known state (unknown, the link
         * lost, in between does not count as a recovery) */
        int lost = s == 5 && known >= 0 && known != 5;
        if (s != 8) {
            known = s;
        }
        if (at < p->from_ms) {
            cur = s;
            continue;
        }
        if (lost && l->reg != 0) {
            l->reg_lost++;
        }
        if (s == cur) {
            continue;
        }
        line_account(l, cur, t, at);
        if (s == 7) {
            l->blocked_n++;
        }
        if (bad_state(s) && (cur < 0 || !bad_state(cur))) {
            l->bad_n++;
        }
        cur = s;
        t = at;
    }
    if (l != NULL) {
        line_account(l, cur, t, p->to_ms);
        line_finish(l);
        st->reg_lost += (size_t)l->reg_lost;
    }
    sqlite3_finalize(q);
    return r == SQLITE_DONE ? 0 : rep_db_fail(db, "lines.db", err, errlen);
}

/* ---- seats ---- */

static int64_t next_midnight(int64_t ms)
{
    struct tm tm;

    rep_local_tm(ms, &tm);
    return rep_local_at(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday + 1, 0);
}

static void seat_finish(struct rep_seat *s, struct rep_ivs *in, struct rep_ivs *pz)
{
    int64_t last_day = 0;

    s->logged_ms = rep_ivs_union(in);
    s->paused_ms = rep_ivs_union(pz);
    for (size_t i = 0; i < in->n; i++) {
        /* count each local day with some logged-in time once */
        for (int64_t d = in->v[i][0]; d < in->v[i][1]; d = next_midnight(d)) {
            int64_t day = next_midnight(d);
            if (day != last_day) {
                s->days++;
                last_day = day;
            }
        }
    }
    in->n = 0;
    pz->n = 0;
}

static int load_seats(sqlite3 *db, const struct rep_period *p, struct rep_stats *st, char *err,
                      size_t errlen)
{
    sqlite3_stmt *q = NULL, *pq = NULL;
    struct rep_seat *s = NULL;
    struct rep_ivs in, pz;
    int r = 0, rc = 0;
    size_t cap = 0;

    memset(&in, 0, sizeof(in));
    memset(&pz, 0, sizeof(pz));
    if (!rep_has_table(db, "seat_sessions") || !rep_has_table(db, "seat_pauses")) {
        return 0;
    }
    if (sqlite3_prepare_v2(db,
                           "SELECT id, host, seat, login_ms, coalesce(logout_ms, 0)"
                           " FROM seat_sessions WHERE login_ms < ?2 AND (logout_ms IS NULL OR"
                           " logout_ms > ?1) ORDER BY host, seat, login_ms, id",
                           -1, &q, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "SELECT start_ms, coalesce(end_ms, 0) FROM seat_pauses"
                           " WHERE session = ?1 ORDER BY start_ms",
                           -1, &pq, NULL) != SQLITE_OK) {
        rc = rep_db_fail(db, "lines.db seats", err, errlen);
        goto out;
    }
    sqlite3_bind_int64(q, 1, p->from_ms);
    sqlite3_bind_int64(q, 2, p->to_ms);
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        const char *host = rep_col_str(q, 1), *seat = rep_col_str(q, 2);
        int64_t login = sqlite3_column_int64(q, 3);
        int64_t logout = sqlite3_column_int64(q, 4);
        if (logout == 0 || logout > p->to_ms) {
            logout = p->to_ms; /* still logged in at the period end */
        }
        if (s == NULL || strcmp(s->host, host) != 0 || strcmp(s->seat, seat) != 0) {
            if (s != NULL) {
                seat_finish(s, &in, &pz);
            }
            if (st->nseats == cap) {
                cap = cap != 0 ? cap * 2 : 32;
                st->seats = wp_xrealloc(st->seats, cap * sizeof(*st->seats));
            }
            s = &st->seats[st->nseats++];
            memset(s, 0, sizeof(*s));
            s->host = wp_xstrdup(host);
            s->seat = wp_xstrdup(seat);
        }
        s->sessions++;
        rep_ivs_add(&in, login, logout, p->from_ms, p->to_ms);
        sqlite3_reset(pq);
        sqlite3_bind_int64(pq, 1, sqlite3_column_int64(q, 0));
        while ((r = sqlite3_step(pq)) == SQLITE_ROW) {
            int64_t a = sqlite3_column_int64(pq, 0), b = sqlite3_column_int64(pq, 1);
            rep_ivs_add(&pz, a, b == 0 || b > logout ? logout : b, p->from_ms, p->to_ms);
        }
        if (r != SQLITE_DONE) {
            break;
        }
    }
    if (s != NULL) {
        seat_finish(s, &in, &pz);
    }
    if (r != SQLITE_DONE) {
        rc = rep_db_fail(db, "lines.db seats", err, errlen);
    }
out:
    rep_ivs_free(&in);
    rep_ivs_free(&pz);
    sqlite3_finalize(q);
    sqlite3_finalize(pq);
    return rc;
}

/* ---- logs ---- */

char *rep_log_norm(const char *text)
{
    size_t n = 0;
    char *o = wp_xmalloc(strlen(text) + 1);

    for (const char *c = text; *c != '\0';) {
        if (*c >= '0' && *c <= '9') {
            while (*c >= '0' && *c <= '9') {
                c++;
            }
            o[n++] = '#';
        } else if (*c == ' ' || *c == '\t' || *c == '\r' || *c == '\n') {
            while (*c == ' ' || *c == '\t' || *c == '\r' || *c == '\n') {
                c++;
            }
            if (n > 0 && *c != '\0') {
                o[n++] = ' ';
            }
        } else {
            o[n++] = *c++;
        }
    }
    o[n] = '\0';
    return o;
}

static int cmp_count(const void *a, const void *b)
{
    const struct rep_count *x = a, *y = b;
    if (x->n != y->n) {
        return x->n < y->n ? 1 : -1;
    }
    int c = strcmp(x->key, y->key);
    return c != 0 ? c : strcmp(x->rule != NULL ? x->rule : "", y->rule != NULL ? y->rule : "");
}

static int cmp_count_key(const void *a, const void *b)
{
    const struct rep_count *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c != 0 ? c : strcmp(x->rule, y->rule);
}

/* Run q (bound to the period) into counts: key in column 0, count in 1, max severity in 2. */
static int log_counts(sqlite3 *db, const char *sql, const struct rep_period *p,
                      struct rep_count **out, size_t *nout)
{
    sqlite3_stmt *q = NULL;
    size_t cap = 0;
    int r = 0;

    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) {
        return WP_EDB;
    }
    sqlite3_bind_int64(q, 1, p->from_ms);
    sqlite3_bind_int64(q, 2, p->to_ms);
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        if (*nout == cap) {
            cap = cap != 0 ? cap * 2 : 32;
            *out = wp_xrealloc(*out, cap * sizeof(**out));
        }
        struct rep_count *c = &(*out)[(*nout)++];
        memset(c, 0, sizeof(*c));
        c->key = rep_col_dup(q, 0);
        c->n = (size_t)sqlite3_column_int64(q, 1);
        c->sev = sqlite3_column_int(q, 2);
        c->sev = c->sev < 0 ? 0 : c->sev > 3 ? 3 : c->sev;
    }
    sqlite3_finalize(q);
    if (*nout > 1) {
        qsort(*out, *nout, sizeof(**out), cmp_count);
    }
    return r == SQLITE_DONE ? 0 : WP_EDB;
}

/* The messages, grouped by rule and normalised text. */
static int log_messages(sqlite3 *db, const struct rep_period *p, struct rep_stats *st)
{
    sqlite3_stmt *q = NULL;
    struct rep_count *v = NULL;
    size_t n = 0, cap = 0, o = 0;
    int r = 0;

    if (sqlite3_prepare_v2(db,
                           "SELECT rule, text, count(*), max(severity) FROM log_events"
                           " WHERE ts_ms >= ?1 AND ts_ms < ?2 GROUP BY rule, text",
                           -1, &q, NULL) != SQLITE_OK) {
        return WP_EDB;
    }
    sqlite3_bind_int64(q, 1, p->from_ms);
    sqlite3_bind_int64(q, 2, p->to_ms);
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap != 0 ? cap * 2 : 64;
            v = wp_xrealloc(v, cap * sizeof(*v));
        }
        v[n].rule = rep_col_dup(q, 0);
        v[n].key = rep_log_norm(rep_col_str(q, 1));
        v[n].n = (size_t)sqlite3_column_int64(q, 2);
        v[n].sev = sqlite3_column_int(q, 3);
        v[n].sev = v[n].sev < 0 ? 0 : v[n].sev > 3 ? 3 : v[n].sev;
        n++;
    }
    sqlite3_finalize(q);
    if (n > 1) {
        qsort(v, n, sizeof(*v), cmp_count_key);
    }
    for (size_t i = 0; i < n; i++) {
        if (o > 0 && cmp_count_key(&v[o - 1], &v[i]) == 0) {
            v[o - 1].n += v[i].n;
            v[o - 1].sev = v[i].sev > v[o - 1].sev ? v[i].sev : v[o - 1].sev;
            free(v[i].key);
            free(v[i].rule);
        } else {
            v[o++] = v[i];
        }
    }
    if (o > 1) {
        qsort(v, o, sizeof(*v), cmp_count);
    }
    st->log_msgs = v;
    st->nlog_msgs = o;
    return r == SQLITE_DONE ? 0 : WP_EDB;
}

/* Log events of the period from events.db; none when the file or the table is missing. */
static int load_logs(const char *dir, const struct rep_period *p, struct rep_stats *st, char *err,
                     size_t errlen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    int rc = rep_ro_open(dir, "events.db", &db, err, errlen);
    int r = 0;

    if (rc == WP_ENOTFOUND) {
        return 0;
    }
    if (rc < 0) {
        return rc;
    }
    if (!rep_has_table(db, "log_events")) {
        goto out;
    }
    st->have_events = 1;
    if (sqlite3_prepare_v2(db,
                           "SELECT severity, count(*) FROM log_events WHERE ts_ms >= ?1"
                           " AND ts_ms < ?2 GROUP BY severity",
                           -1, &q, NULL) != SQLITE_OK) {
        rc = rep_db_fail(db, "events.db", err, errlen);
        goto out;
    }
    sqlite3_bind_int64(q, 1, p->from_ms);
    sqlite3_bind_int64(q, 2, p->to_ms);
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        int sev = sqlite3_column_int(q, 0);
        size_t n = (size_t)sqlite3_column_int64(q, 1);
        st->log_sev[sev < 0 ? 0 : sev > 3 ? 3 : sev] += n;
        st->nlog += n;
    }
    if (r != SQLITE_DONE ||
        log_counts(db,
                   "SELECT rule, count(*), max(severity) FROM log_events WHERE ts_ms >= ?1"
                   " AND ts_ms < ?2 GROUP BY rule",
                   p, &st->log_rules, &st->nlog_rules) < 0 ||
        log_counts(db,
                   "SELECT host, count(*), max(severity) FROM log_events WHERE ts_ms >= ?1"
                   " AND ts_ms < ?2 GROUP BY host",
                   p, &st->log_hosts, &st->nlog_hosts) < 0 ||
        log_messages(db, p, st) < 0) {
        rc = rep_db_fail(db, "events.db log_events", err, errlen);
    }
out:
    sqlite3_finalize(q);
    sqlite3_close(db);
    return rc;
}

/* ---- build ---- */

int rep_stats_build(const char *state_dir, const struct rep_period *p, const struct rep_opts *o,
                    struct rep_stats **out, char *err, size_t errlen)
{
    struct rep_stats *st = wp_xcalloc(1, sizeof(*st));
    struct hosts hs;
    struct regset rs;
    sqlite3 *db = NULL;
    const char *silence = o != NULL && o->silence_rules != NULL ? o->silence_rules : "host_silent";
    int rc = 0;

    *out = NULL;
    memset(&hs, 0, sizeof(hs));
    memset(&rs, 0, sizeof(rs));
    st->p = *p;
    char *rrd_dir = o != NULL && o->rrd_dir != NULL ? wp_xstrdup(o->rrd_dir)
                                                    : wp_xasprintf("%s/rrd", state_dir);
    rc = load_registry(state_dir, rrd_dir, &hs, &rs, st, err, errlen);
    free(rrd_dir);
    if (rc < 0) {
        goto out;
    }
    rc = rep_ro_open(state_dir, "incidents.db", &db, err, errlen);
    if (rc == 0 && rep_has_table(db, "incidents") && rep_has_table(db, "timeline")) {
        rc = load_incidents(db, p, silence, st, &hs, err, errlen);
        if (rc == 0) {
            rc = load_dead(db, p, st, err, errlen);
        }
        if (rc == 0) {
            rc = load_tickets(db, st, err, errlen);
        }
    } else if (rc == WP_ENOTFOUND) {
        rc = 0;
    }
    sqlite3_close(db);
    db = NULL;
    if (rc < 0) {
        goto out;
    }
    rc = rep_ro_open(state_dir, "lines.db", &db, err, errlen);
    if (rc == 0) {
        rc = load_lines(db, p, &rs, st, err, errlen);
        if (rc == 0) {
            rc = load_seats(db, p, st, err, errlen);
        }
    } else if (rc == WP_ENOTFOUND) {
        rc = 0;
    }
    sqlite3_close(db);
    if (rc < 0) {
        goto out;
    }
    rc = load_logs(state_dir, p, st, err, errlen);
out:
    regset_free(&rs);
    finish_hosts(&hs, p, st);
    if (rc < 0) {
        rep_stats_free(st);
        return rc;
    }
    *out = st;
    return 0;
}

void rep_stats_free(struct rep_stats *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->ninc; i++) {
        free(s->inc[i].category);
        free(s->inc[i].rule);
        free(s->inc[i].host);
        free(s->inc[i].summary);
        free(s->inc[i].note);
        free(s->inc[i].tickets);
    }
    for (size_t i = 0; i < s->nhosts; i++) {
        free(s->hosts[i].host);
    }
    for (size_t i = 0; i < s->nlines; i++) {
        free(s->lines[i].host);
        free(s->lines[i].group);
        free(s->lines[i].object);
    }
    for (size_t i = 0; i < s->nseats; i++) {
        free(s->seats[i].host);
        free(s->seats[i].seat);
    }
    for (size_t i = 0; i < s->nmetrics; i++) {
        free(s->metrics[i].host);
        free(s->metrics[i].metric);
        free(s->metrics[i].path);
    }
    free(s->metrics);
    for (size_t i = 0; i < s->ndead; i++) {
        free(s->dead[i].dest);
        free(s->dead[i].event);
        free(s->dead[i].error);
    }
    struct rep_count *cv[3] = {s->log_rules, s->log_hosts, s->log_msgs};
    size_t cn[3] = {s->nlog_rules, s->nlog_hosts, s->nlog_msgs};
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < cn[k]; i++) {
            free(cv[k][i].key);
            free(cv[k][i].rule);
        }
        free(cv[k]);
    }
    for (size_t i = 0; i < s->ncalls; i++) {
        free(s->calls[i].host);
        free(s->calls[i].target);
    }
    free(s->calls);
    for (size_t i = 0; i < s->nprocs; i++) {
        free(s->procs[i].host);
        free(s->procs[i].name);
    }
    free(s->procs);
    free(s->inc);
    free(s->hosts);
    free(s->lines);
    free(s->seats);
    free(s->dead);
    att_report_free(s->att);
    free(s);
}

int rep_stats_attendance(struct rep_stats *s, const char *state_dir, const struct att_sched *sched,
                         int64_t now_ms, char *err, size_t errlen)
{
    struct att_report *r = NULL;
    int rc = att_build(state_dir, sched, &s->p, now_ms, &r, err, errlen);

    if (rc < 0) {
        return rc;
    }
    att_report_free(s->att);
    s->att = r;
    return 0;
}
