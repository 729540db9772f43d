/* SPDX-License-Identifier: Apache-2.0 */
/* Seat attendance against a schedule of shifts and holidays (see attendance.h). */
#include "attendance.h"

#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sqlite3.h>

#include "report_int.h"
#include "wp/clock.h"
#include "wp/err.h"
#include "wp/mem.h"

#define MIN_MS      (60 * 1000LL)
#define DAY_MS      (24 * 3600 * 1000LL)
#define GRACE_MAX   240 /* minutes */
#define LOOKBACK_MS (31 * DAY_MS)

/* ---- the schedule ---- */

struct att_shift {
    char *name;
    char **seats, **hosts; /* globs; hosts may be empty (any host) */
    size_t nseats, nhosts;
    unsigned days; /* bit tm_wday */
    int start_min, end_min, grace_min;
};

struct att_sched {
    struct att_shift *shifts;
    size_t nshifts;
    int64_t *holidays, *workdays; /* day numbers (days since 1970-01-01), sorted */
    size_t nholidays, nworkdays;
};

struct top_in {
    struct wp_conf_node *shifts, *holidays, *workdays;
};

struct shift_in {
    char *name, *start, *end;
    struct wp_conf_node *seats, *hosts;
    struct wp_strlist days;
    int64_t grace;
};

static const struct wp_opt top_opts[] = {
    {.name = "shifts",
     .type = WP_OPT_CUSTOM,
     .help = "the shifts: a list of {name, seats, hosts, days, start, end, grace_minutes}",
     .offset = offsetof(struct top_in, shifts),
     .required = 1,
     .custom = wp_conf_capture_node},
    {.name = "holidays",
     .type = WP_OPT_CUSTOM,
     .help = "public holidays: dates (2026-10-01) or ranges (2026-10-01..2026-10-07)",
     .offset = offsetof(struct top_in, holidays),
     .custom = wp_conf_capture_node},
    {.name = "workdays",
     .type = WP_OPT_CUSTOM,
     .help = "make-up working days (调休): dates or ranges worked although not a shift's weekday",
     .offset = offsetof(struct top_in, workdays),
     .custom = wp_conf_capture_node},
    WP_OPT_TABLE_END,
};

static const struct wp_opt shift_opts[] = {
    {.name = "name",
     .type = WP_OPT_STR,
     .help = "shown in the day list",
     .offset = offsetof(struct shift_in, name),
     .required = 1},
    {.name = "seats",
     .type = WP_OPT_CUSTOM,
     .help = "seat names or globs (80*), one or a list",
     .offset = offsetof(struct shift_in, seats),
     .required = 1,
     .custom = wp_conf_capture_node},
    {.name = "hosts",
     .type = WP_OPT_CUSTOM,
     .help = "host globs (default: any host)",
     .offset = offsetof(struct shift_in, hosts),
     .custom = wp_conf_capture_node},
    {.name = "days",
     .type = WP_OPT_STRLIST,
     .help = "weekdays: mon-fri, [mon, wed, fri], sat,sun",
     .offset = offsetof(struct shift_in, days),
     .required = 1},
    {.name = "start",
     .type = WP_OPT_STR,
     .help = "start, HH:MM local time",
     .offset = offsetof(struct shift_in, start),
     .required = 1},
    {.name = "end",
     .type = WP_OPT_STR,
     .help = "end, HH:MM local time (24:00 = midnight); at or before start: the next day",
     .offset = offsetof(struct shift_in, end),
     .required = 1},
    {.name = "grace_minutes",
     .type = WP_OPT_INT,
     .def = "0",
     .help = "a login up to this many minutes after start is not late",
     .offset = offsetof(struct shift_in, grace),
     .min = 0,
     .max = GRACE_MAX},
    WP_OPT_TABLE_END,
};

/* "YYYY-MM-DD" of a real date into a day number; -1 when not. */
static int parse_date(const char *s, size_t len, int64_t *out)
{
    int y = 0, m = 0, d = 0;
    char buf[16];

    if (len != 10) {
        return -1;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    for (int i = 0; i < 10; i++) {
        if (i == 4 || i == 7 ? buf[i] != '-' : (buf[i] < '0' || buf[i] > '9')) {
            return -1;
        }
    }
    if (sscanf(buf, "%4d-%2d-%2d", &y, &m, &d) != 3 || y < 1971 || !wp_civil_valid(y, m, d)) {
        return -1;
    }
    *out = wp_days_from_civil(y, m, d);
    return 0;
}

static int day_index(const char *s, size_t len)
{
    static const char *const shortn[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
    static const char *const longn[] = {"sunday",   "monday", "tuesday", "wednesday",
                                        "thursday", "friday", "saturday"};

    for (int d = 0; d < 7; d++) {
        if ((len == strlen(shortn[d]) && strncasecmp(s, shortn[d], len) == 0) ||
            (len == strlen(longn[d]) && strncasecmp(s, longn[d], len) == 0)) {
            return d;
        }
    }
    return -1;
}

/* "mon-fri", "sat", "fri-mon" (wraps), comma-separated: bits into *days. -1 when bad. */
static int parse_days(const char *s, unsigned *days)
{
    const char *p = s;

    while (*p != '\0') {
        const char *e = strchr(p, ',');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
        while (len > 0 && *p == ' ') {
            p++;
            len--;
        }
        while (len > 0 && p[len - 1] == ' ') {
            len--;
        }
        const char *dash = memchr(p, '-', len);
        int a = day_index(p, dash != NULL ? (size_t)(dash - p) : len);
        int b = dash != NULL ? day_index(dash + 1, len - (size_t)(dash + 1 - p)) : a;
        if (a < 0 || b < 0) {
            return -1;
        }
        for (int d = a;; d = (d + 1) % 7) {
            *days |= 1u << d;
            if (d == b) {
                break;
            }
        }
        p += len;
        while (*p == ' ') {
            p++;
        }
        if (*p == ',') {
            p++;
        }
    }
    return 0;
}

static int is_null_node(const struct wp_conf_node *n)
{
    const char *s = wp_conf_scalar(n);
    return s != NULL && (s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0);
}

/* A scalar or a list of scalars as a NULL-terminated vector of copies. */
static int node_strv(struct wp_conf_doc *doc, struct wp_conf_node *n, const char *path,
                     const char *what, char ***out, size_t *nout, struct wp_conf_err *err)
{
    size_t len = 0;

    *out = NULL;
    *nout = 0;
    if (wp_conf_is_scalar(n) && !is_null_node(n)) {
        *out = wp_xcalloc(2, sizeof(**out));
        (*out)[0] = wp_xstrdup(wp_conf_scalar(n));
        *nout = 1;
        return 0;
    }
    if (!wp_conf_is_seq(n) || wp_conf_seq_len(doc, n) == 0) {
        return wp_conf_errorf(doc, n, err, "%s: expected %s or a list of them", path, what);
    }
    len = wp_conf_seq_len(doc, n);
    *out = wp_xcalloc(len + 1, sizeof(**out));
    for (size_t i = 0; i < len; i++) {
        struct wp_conf_node *it = wp_conf_seq_at(doc, n, i);
        if (!wp_conf_is_scalar(it) || is_null_node(it)) {
            return wp_conf_errorf(doc, it, err, "%s[%zu]: expected %s", path, i, what);
        }
        (*out)[i] = wp_xstrdup(wp_conf_scalar(it));
        *nout = i + 1;
    }
    return 0;
}

static void strv_free(char **v)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++) {
        free(v[i]);
    }
    free(v);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* holidays: / workdays: a list of dates or date ranges into sorted day numbers. */
static int parse_dates(struct wp_conf_doc *doc, struct wp_conf_node *n, const char *path,
                       int64_t **out, size_t *nout, struct wp_conf_err *err)
{
    size_t cap = 0;

    if (n == NULL || is_null_node(n)) {
        return 0;
    }
    if (!wp_conf_is_seq(n)) {
        return wp_conf_errorf(doc, n, err,
                              "%s: expected a list of dates like 2026-10-01 or ranges like "
                              "2026-10-01..2026-10-07",
                              path);
    }
    for (size_t i = 0; i < wp_conf_seq_len(doc, n); i++) {
        struct wp_conf_node *it = wp_conf_seq_at(doc, n, i);
        const char *s = wp_conf_scalar(it);
        const char *dots = s != NULL ? strstr(s, "..") : NULL;
        int64_t a = 0, b = 0;
        if (s == NULL || parse_date(s, dots != NULL ? (size_t)(dots - s) : strlen(s), &a) < 0 ||
            (dots != NULL && parse_date(dots + 2, strlen(dots + 2), &b) < 0)) {
            return wp_conf_errorf(doc, it, err,
                                  "%s[%zu]: expected a date like 2026-10-01 or a range like "
                                  "2026-10-01..2026-10-07, got \"%s\"",
                                  path, i, s != NULL ? s : "(not a scalar)");
        }
        if (dots == NULL) {
            b = a;
        }
        if (b < a || b - a > 366) {
            return wp_conf_errorf(doc, it, err,
                                  "%s[%zu]: the range must run forwards and span at most a year",
                                  path, i);
        }
        for (int64_t d = a; d <= b; d++) {
            if (*nout == cap) {
                cap = cap != 0 ? cap * 2 : 32;
                *out = wp_xrealloc(*out, cap * sizeof(**out));
            }
            (*out)[(*nout)++] = d;
        }
    }
    if (*nout > 0) {
        qsort(*out, *nout, sizeof(**out), cmp_i64);
    }
    return 0;
}

static int has_day(const int64_t *v, size_t n, int64_t day)
{
    return n > 0 && bsearch(&day, v, n, sizeof(*v), cmp_i64) != NULL;
}

static int parse_shift(struct wp_conf_doc *doc, struct wp_conf_node *item, size_t idx,
                       struct att_shift *sh, struct wp_conf_err *err)
{
    struct shift_in si;
    char path[48];
    int rc = 0;

    memset(&si, 0, sizeof(si));
    snprintf(path, sizeof(path), "shifts[%zu]", idx);
    if (!wp_conf_is_map(item)) {
        return wp_conf_errorf(doc, item, err, "%s: expected a map {name, seats, days, start, end}",
                              path);
    }
    rc = wp_opts_apply(doc, item, shift_opts, &si, path, err);
    if (rc < 0) {
        goto out;
    }
    sh->name = wp_xstrdup(si.name);
    sh->grace_min = (int)si.grace;
    char sub[64];
    snprintf(sub, sizeof(sub), "%s.seats", path);
    rc = node_strv(doc, si.seats, sub, "a seat name or glob", &sh->seats, &sh->nseats, err);
    if (rc < 0) {
        goto out;
    }
    if (si.hosts != NULL) {
        snprintf(sub, sizeof(sub), "%s.hosts", path);
        rc = node_strv(doc, si.hosts, sub, "a host name or glob", &sh->hosts, &sh->nhosts, err);
        if (rc < 0) {
            goto out;
        }
    }
    for (size_t i = 0; i < si.days.n; i++) {
        if (parse_days(si.days.v[i], &sh->days) < 0) {
            rc = wp_conf_errorf(doc, wp_conf_map_get(doc, item, "days"), err,
                                "%s.days: \"%s\" is not a weekday or a range of them (expected "
                                "mon, tue, wed, thu, fri, sat, sun or a range like mon-fri)",
                                path, si.days.v[i]);
            goto out;
        }
    }
    if (sh->days == 0) {
        rc = wp_conf_errorf(doc, wp_conf_map_get(doc, item, "days"), err,
                            "%s.days: expected at least one weekday", path);
        goto out;
    }
    if (wp_parse_hhmm(si.start, 0, &sh->start_min) < 0) {
        rc = wp_conf_errorf(doc, wp_conf_map_get(doc, item, "start"), err,
                            "%s.start: expected a time like 08:30 (00:00 to 23:59), got \"%s\"",
                            path, si.start);
        goto out;
    }
    if (wp_parse_hhmm(si.end, 1, &sh->end_min) < 0) {
        rc = wp_conf_errorf(doc, wp_conf_map_get(doc, item, "end"), err,
                            "%s.end: expected a time like 17:30 (00:00 to 24:00), got \"%s\"", path,
                            si.end);
        goto out;
    }
    /* an end at or before the start is an overnight shift ending the next day (22:00 to
     * 06:00); an end equal to the start would be a 24-hour shift, most likely a typo */
    if (sh->end_min == sh->start_min) {
        rc = wp_conf_errorf(doc, wp_conf_map_get(doc, item, "end"), err,
                            "%s.end: %s is the same time as start %s; a shift lasts less than "
                            "24 hours (an end before the start is an overnight shift ending "
                            "the next day)",
                            path, si.end, si.start);
        goto out;
    }
out:
    wp_opts_free(shift_opts, &si);
    return rc;
}

void att_sched_free(struct att_sched *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->nshifts; i++) {
        free(s->shifts[i].name);
        strv_free(s->shifts[i].seats);
        strv_free(s->shifts[i].hosts);
    }
    free(s->shifts);
    free(s->holidays);
    free(s->workdays);
    free(s);
}

static int sched_of(struct wp_conf_doc *doc, struct att_sched **out, struct wp_conf_err *err)
{
    struct att_sched *s = wp_xcalloc(1, sizeof(*s));
    struct wp_conf_node *root = wp_conf_root(doc);
    struct top_in top;
    int rc = 0;

    memset(&top, 0, sizeof(top));
    if (root == NULL || !wp_conf_is_map(root)) {
        rc = wp_conf_errorf(doc, root, err,
                            "expected a map with shifts: (and holidays:, workdays:)");
        goto out;
    }
    rc = wp_opts_apply(doc, root, top_opts, &top, "", err);
    if (rc < 0) {
        goto out;
    }
    if (!wp_conf_is_seq(top.shifts) || wp_conf_seq_len(doc, top.shifts) == 0) {
        rc = wp_conf_errorf(doc, top.shifts, err, "shifts: expected a list of at least one shift");
        goto out;
    }
    size_t n = wp_conf_seq_len(doc, top.shifts);
    s->shifts = wp_xcalloc(n, sizeof(*s->shifts));
    for (size_t i = 0; i < n; i++) {
        s->nshifts = i + 1;
        rc = parse_shift(doc, wp_conf_seq_at(doc, top.shifts, i), i, &s->shifts[i], err);
        if (rc < 0) {
            goto out;
        }
    }
    rc = parse_dates(doc, top.holidays, "holidays", &s->holidays, &s->nholidays, err);
    if (rc == 0) {
        rc = parse_dates(doc, top.workdays, "workdays", &s->workdays, &s->nworkdays, err);
    }
    if (rc < 0) {
        goto out;
    }
    for (size_t i = 0; i < s->nworkdays; i++) {
        if (has_day(s->holidays, s->nholidays, s->workdays[i])) {
            char day[16];
            time_t t = (time_t)(s->workdays[i] * 86400);
            struct tm tm;
            gmtime_r(&t, &tm);
            strftime(day, sizeof(day), "%Y-%m-%d", &tm);
            rc = wp_conf_errorf(doc, top.workdays, err,
                                "workdays: %s is both a holiday and a make-up working day", day);
            goto out;
        }
    }
    *out = s;
    s = NULL;
out:
    att_sched_free(s);
    return rc;
}

int att_sched_load(const char *path, struct att_sched **out, struct wp_conf_err *err)
{
    struct wp_conf_doc *doc = NULL;
    int rc = 0;

    *out = NULL;
    rc = wp_conf_load(path, err, &doc);
    if (rc == 0) {
        rc = sched_of(doc, out, err);
    }
    wp_conf_free(doc);
    return rc;
}

int att_sched_parse(const char *name, const char *text, size_t len, struct att_sched **out,
                    struct wp_conf_err *err)
{
    struct wp_conf_doc *doc = NULL;
    int rc = 0;

    *out = NULL;
    rc = wp_conf_parse(name, text, len, err, &doc);
    if (rc == 0) {
        rc = sched_of(doc, out, err);
    }
    wp_conf_free(doc);
    return rc;
}

static int any_match(char **globs, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (fnmatch(globs[i], s, 0) == 0) {
            return 1;
        }
    }
    return 0;
}

static int shift_matches(const struct att_shift *sh, const char *host, const char *seat)
{
    return any_match(sh->seats, sh->nseats, seat) &&
           (sh->nhosts == 0 || host[0] == '\0' || any_match(sh->hosts, sh->nhosts, host));
}

/* ---- the computation ---- */

/* Length of a merged set within [a, b). */
static int64_t ivs_within(const struct rep_ivs *s, int64_t a, int64_t b)
{
    int64_t t = 0;

    for (size_t i = 0; i < s->n; i++) {
        int64_t x = s->v[i][0] > a ? s->v[i][0] : a;
        int64_t y = s->v[i][1] < b ? s->v[i][1] : b;
        if (y > x) {
            t += y - x;
        }
    }
    return t;
}

static const struct att_shift *shift_for(const struct att_sched *s, const char *host,
                                         const char *seat, int wday, int makeup)
{
    for (size_t i = 0; i < s->nshifts; i++) {
        const struct att_shift *sh = &s->shifts[i];
        if ((makeup || (sh->days & (1u << wday)) != 0) && shift_matches(sh, host, seat)) {
            return sh;
        }
    }
    return NULL;
}

static void day_of(const struct att_sched *s, const struct att_report *r, struct att_seat *st,
                   struct att_day *d, const struct rep_ivs *in, const struct rep_ivs *pz)
{
    struct tm tm;

    rep_local_tm(d->day_ms, &tm);
    int y = tm.tm_year + 1900, m = tm.tm_mon + 1, md = tm.tm_mday;
    int64_t next = rep_local_at(y, m, md + 1, 0);
    int64_t dn = wp_days_from_civil(y, m, md);
    int holiday = has_day(s->holidays, s->nholidays, dn);
    const struct att_shift *sh = NULL;

    d->makeup = has_day(s->workdays, s->nworkdays, dn);
    sh = shift_for(s, st->host, st->seat, tm.tm_wday, d->makeup);
    d->logged_ms = ivs_within(in, d->day_ms, next);
    d->paused_ms = ivs_within(pz, d->day_ms, next);
    st->logged_ms += d->logged_ms;
    st->paused_ms += d->paused_ms;
    /* first login / last logout: of the calendar day, or of the shift itself when it runs
     * past midnight (the shift belongs to the day it starts on; the night before is the
     * previous day's) */
    int64_t w0 = d->day_ms, w1 = next;
    if (sh != NULL) {
        d->shift = r->shift_names[sh - s->shifts];
        d->start_ms = rep_local_at(y, m, md, sh->start_min);
        /* an end at or before the start is on the next day; 24:00 is the next midnight */
        d->end_ms = rep_local_at(y, m, md + (sh->end_min <= sh->start_min), sh->end_min);
        d->overnight = sh->end_min <= sh->start_min;
        if (d->overnight) {
            w0 = d->start_ms;
            w1 = d->end_ms;
        }
    }
    for (size_t i = 0; i < in->n; i++) {
        if (in->v[i][1] > w0 && in->v[i][0] < w1) {
            if (d->first_ms == 0) {
                d->first_ms = in->v[i][0];
            }
            d->open = in->v[i][1] >= r->asof_ms;
            d->last_ms = d->open ? 0 : in->v[i][1];
        }
    }
    if (sh == NULL) {
        d->kind = ATT_OFF;
        return;
    }
    if (holiday) {
        d->kind = ATT_HOLIDAY;
        st->holiday_days++;
        return;
    }
    /* an overnight shift of the period's last day ends after it: judged on the sessions up
     * to its end (horizon_ms), or not yet when that is still to come */
    if (d->end_ms > r->horizon_ms) {
        d->kind = ATT_NOT_YET;
        return;
    }
    d->kind = ATT_WORK;
    st->work_days++;
    int64_t in_at = -1, out_at = -1;
    for (size_t i = 0; i < in->n; i++) {
        if (in->v[i][1] > d->start_ms && in->v[i][0] < d->end_ms) {
            if (in_at < 0) {
                in_at = in->v[i][0] > d->start_ms ? in->v[i][0] : d->start_ms;
            }
            out_at = in->v[i][1] < d->end_ms ? in->v[i][1] : d->end_ms;
        }
    }
    if (in_at < 0) {
        d->absent = 1;
        st->absent_days++;
        return;
    }
    st->present_days++;
    int late = (int)((in_at - d->start_ms) / MIN_MS);
    int early = (int)((d->end_ms - out_at) / MIN_MS);
    if (late > sh->grace_min) {
        d->late_min = late;
        st->late_n++;
        st->late_min += late;
    }
    if (early > 0) {
        d->early_min = early;
        st->early_n++;
        st->early_min += early;
    }
}

static struct att_seat *seat_add(struct att_report *r, size_t *cap, const char *host,
                                 const char *seat)
{
    if (r->nseats == *cap) {
        *cap = *cap != 0 ? *cap * 2 : 32;
        r->seats = wp_xrealloc(r->seats, *cap * sizeof(*r->seats));
    }
    struct att_seat *st = &r->seats[r->nseats++];
    memset(st, 0, sizeof(*st));
    st->host = wp_xstrdup(host);
    st->seat = wp_xstrdup(seat);
    return st;
}

static int cmp_seat(const void *a, const void *b)
{
    const struct att_seat *x = a, *y = b;
    int c = strcmp(x->host, y->host);
    return c != 0 ? c : strcmp(x->seat, y->seat);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The seats: from the sessions, then the ones the schedule names outright. */
static int list_seats(sqlite3 *db, const struct att_sched *s, const struct rep_period *p,
                      struct att_report *r, char *err, size_t errlen)
{
    sqlite3_stmt *q = NULL;
    size_t cap = 0, ucap = 0;
    int rc = 0, x = 0;

    if (db != NULL) {
        if (sqlite3_prepare_v2(db,
                               "SELECT host, seat, max(login_ms < ?2 AND (logout_ms IS NULL OR "
                               "logout_ms > ?1)) FROM seat_sessions WHERE login_ms < ?2 AND "
                               "(logout_ms IS NULL OR logout_ms > ?3) GROUP BY host, seat "
                               "ORDER BY host, seat",
                               -1, &q, NULL) != SQLITE_OK) {
            snprintf(err, errlen, "lines.db seats: %s", sqlite3_errmsg(db));
            return WP_EDB;
        }
        sqlite3_bind_int64(q, 1, p->from_ms);
        sqlite3_bind_int64(q, 2, p->to_ms);
        sqlite3_bind_int64(q, 3, p->from_ms - LOOKBACK_MS);
        while ((x = sqlite3_step(q)) == SQLITE_ROW) {
            const char *host = rep_col_str(q, 0), *seat = rep_col_str(q, 1);
            int matched = 0;
            for (size_t i = 0; i < s->nshifts && !matched; i++) {
                matched = shift_matches(&s->shifts[i], host, seat);
            }
            if (matched) {
                seat_add(r, &cap, host, seat);
            } else if (sqlite3_column_int(q, 2) != 0) {
                if (r->nunscheduled == ucap) {
                    ucap = ucap != 0 ? ucap * 2 : 16;
                    r->unscheduled = wp_xrealloc(r->unscheduled, ucap * sizeof(char *));
                }
                r->unscheduled[r->nunscheduled++] = wp_xasprintf("%s (%s)", seat, host);
            }
        }
        if (x != SQLITE_DONE) {
            snprintf(err, errlen, "lines.db seats: %s", sqlite3_errmsg(db));
            rc = WP_EDB;
        }
        sqlite3_finalize(q);
        if (rc < 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < s->nshifts; i++) {
        const struct att_shift *sh = &s->shifts[i];
        /* a literal host, when the shift names exactly one */
        const char *host =
            sh->nhosts == 1 && strpbrk(sh->hosts[0], "*?[") == NULL ? sh->hosts[0] : "";
        for (size_t k = 0; k < sh->nseats; k++) {
            const char *seat = sh->seats[k];
            int seen = 0;
            if (strpbrk(seat, "*?[") != NULL) {
                continue;
            }
            for (size_t j = 0; j < r->nseats && !seen; j++) {
                seen = strcmp(r->seats[j].seat, seat) == 0;
            }
            if (!seen) {
                seat_add(r, &cap, host, seat);
            }
        }
    }
    if (r->nseats > 0) {
        qsort(r->seats, r->nseats, sizeof(*r->seats), cmp_seat);
    }
    if (r->nunscheduled > 0) {
        qsort(r->unscheduled, r->nunscheduled, sizeof(char *), cmp_str);
    }
    return 0;
}

/* The sessions and pauses of one seat, merged, with open ones up to asof (the horizon). */
static int load_seat(sqlite3_stmt *q, sqlite3_stmt *pq, const struct att_seat *st,
                     const struct rep_period *p, int64_t asof, struct rep_ivs *in,
                     struct rep_ivs *pz)
{
    int x = 0;

    in->n = 0;
    pz->n = 0;
    sqlite3_reset(q);
    sqlite3_bind_text(q, 1, st->host, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, st->seat, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, p->from_ms - DAY_MS);
    sqlite3_bind_int64(q, 4, asof);
    while ((x = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t login = sqlite3_column_int64(q, 1), logout = sqlite3_column_int64(q, 2);
        if (logout == 0 || logout > asof) {
            logout = asof;
        }
        rep_ivs_add(in, login, logout, INT64_MIN, INT64_MAX);
        sqlite3_reset(pq);
        sqlite3_bind_int64(pq, 1, sqlite3_column_int64(q, 0));
        while ((x = sqlite3_step(pq)) == SQLITE_ROW) {
            int64_t a = sqlite3_column_int64(pq, 0), b = sqlite3_column_int64(pq, 1);
            rep_ivs_add(pz, a, b == 0 || b > logout ? logout : b, INT64_MIN, INT64_MAX);
        }
        if (x != SQLITE_DONE) {
            return WP_EDB;
        }
    }
    if (x != SQLITE_DONE) {
        return WP_EDB;
    }
    rep_ivs_union(in);
    rep_ivs_union(pz);
    return 0;
}

int att_build(const char *state_dir, const struct att_sched *s, const struct rep_period *p,
              int64_t now_ms, struct att_report **out, char *err, size_t errlen)
{
    struct att_report *r = wp_xcalloc(1, sizeof(*r));
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL, *pq = NULL;
    struct rep_ivs in, pz;
    size_t ndays = 0;
    int rc = 0;

    *out = NULL;
    memset(&in, 0, sizeof(in));
    memset(&pz, 0, sizeof(pz));
    r->p = *p;
    r->asof_ms = now_ms < p->to_ms ? now_ms : p->to_ms;
    /* the sessions are read up to a day after the period for the overnight shift of its last
     * day */
    r->horizon_ms = now_ms < p->to_ms + DAY_MS ? now_ms : p->to_ms + DAY_MS;
    r->shift_names = wp_xcalloc(s->nshifts, sizeof(char *));
    r->nshift_names = s->nshifts;
    for (size_t i = 0; i < s->nshifts; i++) {
        r->shift_names[i] = wp_xstrdup(s->shifts[i].name);
    }
    rc = rep_ro_open(state_dir, "lines.db", &db, err, errlen);
    if (rc == WP_ENOTFOUND) {
        rc = 0;
    } else if (rc < 0) {
        goto out;
    } else if (!rep_has_table(db, "seat_sessions") || !rep_has_table(db, "seat_pauses")) {
        sqlite3_close(db);
        db = NULL;
    }
    rc = list_seats(db, s, p, r, err, errlen);
    if (rc < 0) {
        goto out;
    }
    if (db != NULL && (sqlite3_prepare_v2(db,
                                          "SELECT id, login_ms, coalesce(logout_ms, 0) FROM "
                                          "seat_sessions WHERE host = ?1 AND seat = ?2 AND "
                                          "login_ms < ?4 AND (logout_ms IS NULL OR logout_ms > "
                                          "?3) ORDER BY login_ms, id",
                                          -1, &q, NULL) != SQLITE_OK ||
                       sqlite3_prepare_v2(db,
                                          "SELECT start_ms, coalesce(end_ms, 0) FROM seat_pauses "
                                          "WHERE session = ?1 ORDER BY start_ms",
                                          -1, &pq, NULL) != SQLITE_OK)) {
        snprintf(err, errlen, "lines.db seats: %s", sqlite3_errmsg(db));
        rc = WP_EDB;
        goto out;
    }
    for (int64_t t = p->from_ms; t < p->to_ms; ndays++) {
        struct tm tm;
        rep_local_tm(t, &tm);
        t = rep_local_at(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday + 1, 0);
    }
    for (size_t i = 0; i < r->nseats; i++) {
        struct att_seat *st = &r->seats[i];
        in.n = 0;
        pz.n = 0;
        if (db != NULL && load_seat(q, pq, st, p, r->horizon_ms, &in, &pz) < 0) {
            snprintf(err, errlen, "lines.db seats: %s", sqlite3_errmsg(db));
            rc = WP_EDB;
            goto out;
        }
        st->days = wp_xcalloc(ndays, sizeof(*st->days));
        st->ndays = ndays;
        int64_t t = p->from_ms;
        for (size_t k = 0; k < ndays; k++) {
            struct tm tm;
            st->days[k].day_ms = t;
            day_of(s, r, st, &st->days[k], &in, &pz);
            rep_local_tm(t, &tm);
            t = rep_local_at(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday + 1, 0);
        }
    }
    *out = r;
    r = NULL;
out:
    rep_ivs_free(&in);
    rep_ivs_free(&pz);
    sqlite3_finalize(q);
    sqlite3_finalize(pq);
    sqlite3_close(db);
    att_report_free(r);
    return rc;
}

void att_report_free(struct att_report *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->nseats; i++) {
        free(r->seats[i].host);
        free(r->seats[i].seat);
        free(r->seats[i].days);
    }
    for (size_t i = 0; i < r->nunscheduled; i++) {
        free(r->unscheduled[i]);
    }
    free(r->unscheduled);
    for (size_t i = 0; i < r->nshift_names; i++) {
        free(r->shift_names[i]);
    }
    free(r->shift_names);
    free(r->seats);
    free(r);
}

/* ---- the document ---- */

struct ctx {
    int zh;
    struct rdoc *d;
};

#define tr(c, en_, zh_) ((c)->zh ? (zh_) : (en_))

enum tfmt { T_DATE, T_HM, T_MDHM, T_FULL };

/* Local time ms as a date, HH:MM, MM-DD HH:MM or YYYY-MM-DD HH:MM. */
static const char *fmt_time(int64_t ms, enum tfmt f)
{
    char *b = rep_ring();
    struct tm tm;

    rep_local_tm(ms, &tm);
    switch (f) {
    case T_DATE:
        strftime(b, REP_FMT_LEN, "%Y-%m-%d", &tm);
        break;
    case T_HM:
        strftime(b, REP_FMT_LEN, "%H:%M", &tm);
        break;
    case T_MDHM:
        strftime(b, REP_FMT_LEN, "%m-%d %H:%M", &tm);
        break;
    case T_FULL:
        strftime(b, REP_FMT_LEN, "%Y-%m-%d %H:%M", &tm);
        break;
    }
    return b;
}

/* HH:MM, or MM-DD HH:MM when not on day_ms's calendar day. */
static const char *hm_on(int64_t ms, int64_t day_ms)
{
    struct tm a, b;

    rep_local_tm(ms, &a);
    rep_local_tm(day_ms, &b);
    if (a.tm_year == b.tm_year && a.tm_yday == b.tm_yday) {
        return fmt_time(ms, T_HM);
    }
    return fmt_time(ms, T_MDHM);
}

static const char *weekday(const struct ctx *c, int64_t ms)
{
    static const char *const en[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const zh[] = {"周日", "周一", "周二", "周三", "周四", "周五", "周六"};
    struct tm tm;

    rep_local_tm(ms, &tm);
    return c->zh ? zh[tm.tm_wday] : en[tm.tm_wday];
}

static const char *status_of(const struct ctx *c, const struct att_day *d)
{
    char *b = rep_ring();
    const char *s = "";

    switch (d->kind) {
    case ATT_OFF:
        s = tr(c, "not scheduled", "非排班日");
        break;
    case ATT_HOLIDAY:
        s = tr(c, "holiday", "节假日");
        break;
    case ATT_NOT_YET:
        s = tr(c, "not yet", "未到");
        break;
    case ATT_WORK:
        if (d->absent) {
            s = tr(c, "absent", "缺勤");
        } else if (d->late_min > 0 && d->early_min > 0) {
            s = tr(c, "late, early leave", "迟到、早退");
        } else if (d->late_min > 0) {
            s = tr(c, "late", "迟到");
        } else if (d->early_min > 0) {
            s = tr(c, "early leave", "早退");
        } else {
            s = tr(c, "present", "出勤");
        }
        break;
    }
    snprintf(b, REP_FMT_LEN, "%s%s", s,
             d->makeup ? tr(c, " (make-up workday)", "（调休上班）") : "");
    return b;
}

static void totals_table(struct ctx *c, const struct att_report *r)
{
    const char *cols[12] = {
        tr(c, "Host", "主机"),
        tr(c, "Seat", "座席"),
        tr(c, "Scheduled days", "应出勤天数"),
        tr(c, "Present", "出勤天数"),
        tr(c, "Absent", "缺勤天数"),
        tr(c, "Late (times)", "迟到次数"),
        tr(c, "Late (min)", "迟到（分钟）"),
        tr(c, "Early leave (times)", "早退次数"),
        tr(c, "Early leave (min)", "早退（分钟）"),
        tr(c, "Holidays", "节假日天数"),
        tr(c, "Logged in (h)", "登录时长（小时）"),
        tr(c, "Paused (h)", "暂停时长（小时）"),
    };
    struct rtable *t = rdoc_table(c->d, "seats", tr(c, "Per seat", "按座席汇总"), 12, cols);

    for (size_t i = 0; i < r->nseats; i++) {
        const struct att_seat *s = &r->seats[i];
        rtable_cell(t, "%s", s->host);
        rtable_cell(t, "%s", s->seat);
        rtable_cell(t, "%d", s->work_days);
        rtable_cell(t, "%d", s->present_days);
        rtable_cell(t, "%d", s->absent_days);
        rtable_cell(t, "%d", s->late_n);
        rtable_cell(t, "%" PRId64, s->late_min);
        rtable_cell(t, "%d", s->early_n);
        rtable_cell(t, "%" PRId64, s->early_min);
        rtable_cell(t, "%d", s->holiday_days);
        rtable_cell(t, "%s", rep_hours_str(s->logged_ms));
        rtable_cell(t, "%s", rep_hours_str(s->paused_ms));
    }
}

static void days_table(struct ctx *c, const struct att_report *r)
{
    const char *cols[13] = {
        tr(c, "Date", "日期"),
        tr(c, "Day", "星期"),
        tr(c, "Host", "主机"),
        tr(c, "Seat", "座席"),
        tr(c, "Shift", "班次"),
        tr(c, "Scheduled", "排班时间"),
        tr(c, "First login", "首次登录"),
        tr(c, "Last logout", "最后登出"),
        tr(c, "Logged in (h)", "登录时长（小时）"),
        tr(c, "Paused (h)", "暂停时长（小时）"),
        tr(c, "Late (min)", "迟到（分钟）"),
        tr(c, "Early leave (min)", "早退（分钟）"),
        tr(c, "Status", "状态"),
    };
    struct rtable *t = rdoc_table(c->d, "days", tr(c, "Day list", "每日明细"), 13, cols);

    for (size_t i = 0; i < r->nseats; i++) {
        const struct att_seat *s = &r->seats[i];
        for (size_t k = 0; k < s->ndays; k++) {
            const struct att_day *d = &s->days[k];
            /* days off without any login are not worth a row */
            if (d->kind == ATT_OFF && d->logged_ms == 0) {
                continue;
            }
            rtable_cell(t, "%s", fmt_time(d->day_ms, T_DATE));
            rtable_cell(t, "%s", weekday(c, d->day_ms));
            rtable_cell(t, "%s", s->host);
            rtable_cell(t, "%s", s->seat);
            rtable_cell(t, "%s", d->shift != NULL ? d->shift : "");
            if (d->shift != NULL) {
                char *a = wp_xstrdup(fmt_time(d->start_ms, T_HM));
                /* a shift ending at 24:00 ends on the next day's 00:00; an overnight one
                 * says so (22:00-06:00 (+1)) */
                rtable_cell(t, "%s-%s%s", a,
                            !d->overnight && d->end_ms - d->day_ms >= DAY_MS
                                ? "24:00"
                                : fmt_time(d->end_ms, T_HM),
                            d->overnight ? " (+1)" : "");
                free(a);
            } else {
                rtable_cell(t, "%s", "");
            }
            rtable_cell(t, "%s", d->first_ms != 0 ? hm_on(d->first_ms, d->day_ms) : "");
            rtable_cell(t, "%s",
                        d->open           ? tr(c, "(logged in)", "（在线）")
                        : d->last_ms != 0 ? hm_on(d->last_ms, d->day_ms)
                                          : "");
            rtable_cell(t, "%s", rep_hours_str(d->logged_ms));
            rtable_cell(t, "%s", rep_hours_str(d->paused_ms));
            if (d->kind == ATT_WORK && !d->absent) {
                rtable_cell(t, "%d", d->late_min);
                rtable_cell(t, "%d", d->early_min);
            } else {
                rtable_cell(t, "%s", "");
                rtable_cell(t, "%s", "");
            }
            rtable_cell(t, "%s", status_of(c, d));
        }
    }
}

struct rdoc *att_doc(const struct att_report *r, const struct rep_opts *o)
{
    struct ctx c;
    const char *lang = o != NULL && o->lang != NULL ? o->lang : "en";

    memset(&c, 0, sizeof(c));
    c.zh = strncmp(lang, "zh", 2) == 0;
    char *title = wp_xasprintf(
        "%s %s", tr(&c, "Watchpost seat attendance report", "Watchpost 座席考勤报告"), r->p.label);
    c.d = rdoc_new(title, c.zh ? "zh-CN" : "en");
    free(title);
    rdoc_set_empty_text(c.d, tr(&c, "none", "无"));
    rdoc_set_date(c.d, rep_iso_str(r->p.to_ms));
    char *from = wp_xstrdup(fmt_time(r->p.from_ms, T_FULL));
    rdoc_para(c.d,
              tr(&c, "Period %s: %s to %s (%s). Sessions as of %s.",
                 "周期 %s：%s 至 %s（%s）。会话数据截至 %s。"),
              r->p.label, from, fmt_time(r->p.to_ms, T_FULL), rep_tz_str(r->p.from_ms),
              fmt_time(r->asof_ms, T_FULL));
    free(from);
    rdoc_para(
        c.d, "%s",
        tr(&c,
           "Late: the first login in the shift came more than the grace after its start "
           "(minutes counted from the start). Early leave: the last logout in the shift "
           "came before its end. Absent: no session overlapping the shift on a scheduled "
           "day that is not a holiday. Logged-in and paused hours are the union over all "
           "queues within each calendar day.",
           "迟到：班次内首次登录晚于开始时间加宽限时间（从开始时间起计分钟）。早退：班次内最后"
           "登出早于结束时间。缺勤：非节假日的排班日内没有与班次重叠的会话。登录和暂停时长为"
           "各队列合并后在每个自然日内的时长。"));
    rdoc_heading(c.d, 2, tr(&c, "1. Per seat", "1. 按座席汇总"));
    totals_table(&c, r);
    rdoc_heading(c.d, 2, tr(&c, "2. Day list", "2. 每日明细"));
    days_table(&c, r);
    if (r->nunscheduled > 0) {
        rdoc_heading(c.d, 2, tr(&c, "3. Seats without a shift", "3. 未排班的座席"));
        size_t len = 0;
        for (size_t i = 0; i < r->nunscheduled; i++) {
            len += strlen(r->unscheduled[i]) + 2;
        }
        char *list = wp_xcalloc(1, len + 1);
        for (size_t i = 0; i < r->nunscheduled; i++) {
            if (i > 0) {
                strcat(list, ", ");
            }
            strcat(list, r->unscheduled[i]);
        }
        rdoc_para(c.d,
                  tr(&c, "Logged in during the period but matched by no shift: %s.",
                     "本期有登录但没有匹配的班次：%s。"),
                  list);
        free(list);
    }
    return c.d;
}
