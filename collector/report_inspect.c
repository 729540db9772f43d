/* SPDX-License-Identifier: Apache-2.0 */
/* The daily inspection report: items per host and site from the stores, and their document
 * (see report_inspect.h). */
#include "report_inspect.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "report_int.h"
#include "rrdq.h"
#include "wp/err.h"
#include "wp/mem.h"

#define MIN_MS      (60 * 1000LL)
#define HOUR_MS     (60 * MIN_MS)
#define EVIDENCE_TX 160 /* bytes of a log line or check output shown in the evidence */

/* Item kinds, in their order within a host. */
enum {
    K_AGENT,
    K_CPU,
    K_MEM,
    K_LOAD,
    K_DISK,
    K_FILE,
    K_PROC,
    K_HTTP,
    K_DB,
    K_TCP,
    K_SIPCALL,
    K_SIPPING,
    K_CHECK,
    K_NODATA,
    K_LOG,
    K_LINES
};

#define tr(zh_, en_, cn_) ((zh_) ? (cn_) : (en_))

/* ---- small helpers ---- */

/* Append printf output to the heap string *s (NULL: start one). */
static void sadd(char **s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sadd(char **s, const char *fmt, ...)
{
    va_list ap;
    size_t a = *s != NULL ? strlen(*s) : 0;

    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return; /* a bad format: nothing added */
    }
    *s = wp_xrealloc(*s, a + (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(*s + a, (size_t)n + 1, fmt, ap);
    va_end(ap);
}

/* A duration in whole minutes: "2 h 10 min", "1 d 3 h", "5 min". */
static char *dstr(int zh, int64_t ms, char *b, size_t n)
{
    int64_t m = ms / MIN_MS;

    if (m >= 24 * 60) {
        snprintf(b, n, tr(zh, "%" PRId64 " d %" PRId64 " h", "%" PRId64 "天%" PRId64 "小时"),
                 m / 1440, m % 1440 / 60);
    } else if (m >= 60) {
        snprintf(b, n, tr(zh, "%" PRId64 " h %" PRId64 " min", "%" PRId64 "小时%" PRId64 "分"),
                 m / 60, m % 60);
    } else {
        snprintf(b, n, tr(zh, "%" PRId64 " min", "%" PRId64 "分钟"), m);
    }
    return b;
}

/* At most max bytes of s, cut on a UTF-8 character boundary, newlines as blanks, "..." added
 * when cut. Free the result. */
static char *excerpt(const char *s, size_t max)
{
    size_t n = rep_utf8_cut(s, max);
    int cut = s[n] != '\0';
    char *o = wp_xmalloc(n + 4);
    for (size_t i = 0; i < n; i++) {
        o[i] = s[i] == '\n' || s[i] == '\r' || s[i] == '\t' ? ' ' : s[i];
    }
    memcpy(o + n, cut ? "..." : "", cut ? 4 : 1);
    return o;
}

static const char *status_name(int zh, int s)
{
    static const char *const en[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};
    static const char *const cn[] = {"正常", "警告", "严重", "未知"};
    if (s < 0 || s > 3) {
        s = 3;
    }
    return zh ? cn[s] : en[s];
}

/* ---- the inspection time ---- */

static void day_at(int y, int mon, int mday, int minute, struct rep_period *p)
{
    struct tm tm;

    p->to_ms = rep_local_at(y, mon, mday, minute);
    p->from_ms = rep_local_at(y, mon, mday - 1, minute);
    rep_local_tm(p->to_ms, &tm);
    size_t n = strftime(p->label, sizeof(p->label), "%Y-%m-%d", &tm);
    if (minute != INSP_DEFAULT_MIN) {
        snprintf(p->label + n, sizeof(p->label) - n, "-%02d%02d", minute / 60, minute % 60);
    }
}

static int parse_hm(const char *s, int *minute)
{
    int h = 0, m = 0;
    char tail = 0;

    if (strlen(s) != 5 || sscanf(s, "%2d:%2d%c", &h, &m, &tail) != 2 || h < 0 || h > 23 || m < 0 ||
        m > 59) {
        return -EINVAL;
    }
    *minute = h * 60 + m;
    return 0;
}

int rep_inspection_day(const char *spec, int64_t now_ms, struct rep_period *cur,
                       struct rep_period *prev)
{
    int y = 0, mon = 0, mday = 0, minute = INSP_DEFAULT_MIN;
    struct tm tm;

    if (spec == NULL || spec[0] == '\0' || strchr(spec, '-') == NULL) {
        rep_local_tm(now_ms, &tm);
        y = tm.tm_year + 1900;
        mon = tm.tm_mon + 1;
        mday = tm.tm_mday;
        if (spec != NULL && spec[0] != '\0' && parse_hm(spec, &minute) < 0) {
            return -EINVAL;
        }
    } else {
        char date[16];
        size_t n = strlen(spec);
        if (n != 10 && n != 16) {
            return -EINVAL;
        }
        if (n == 16 && ((spec[10] != 'T' && spec[10] != ' ') || parse_hm(spec + 11, &minute) < 0)) {
            return -EINVAL;
        }
        memcpy(date, spec, 10);
        date[10] = '\0';
        char tail = 0;
        if (sscanf(date, "%4d-%2d-%2d%c", &y, &mon, &mday, &tail) != 3 || y < 1971 || y > 9999 ||
            mon < 1 || mon > 12 || mday < 1 || mday > 31 || date[4] != '-' || date[7] != '-') {
            return -EINVAL;
        }
        /* 2026-02-30 would normalise to March: refuse it */
        rep_local_tm(rep_local_at(y, mon, mday, 12 * 60), &tm);
        if (tm.tm_mday != mday || tm.tm_mon != mon - 1) {
            return -EINVAL;
        }
    }
    day_at(y, mon, mday, minute, cur);
    day_at(y, mon, mday - 1, minute, prev);
    return 0;
}

/* ---- limits ---- */

void insp_limits_default(struct insp_limits *l)
{
    l->disk_pct = 90;
    l->inode_pct = 90;
    l->warn_pct = 85;
    l->cpu_pct = 90;
    l->mem_pct = 90;
    l->load_per_core = 2;
    l->stale_ms = 15 * MIN_MS;
}

int insp_limits_parse(const char *spec, struct insp_limits *l, char *err, size_t errlen)
{
    char *copy = wp_xstrdup(spec);
    char *save = NULL;
    int rc = 0;

    for (char *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        char *end = NULL;
        double v = 0;
        if (eq == NULL) {
            snprintf(err, errlen, "limits: \"%s\": expected NAME=NUMBER", tok);
            rc = -EINVAL;
            break;
        }
        *eq = '\0';
        v = strtod(eq + 1, &end);
        if (end == eq + 1 || *end != '\0' || !isfinite(v) || v <= 0 ||
            (strcmp(tok, "load") != 0 && strcmp(tok, "stale") != 0 && v > 100)) {
            snprintf(err, errlen, "limits: %s: expected a positive number%s", tok,
                     strcmp(tok, "load") != 0 && strcmp(tok, "stale") != 0 ? " up to 100" : "");
            rc = -EINVAL;
            break;
        }
        if (strcmp(tok, "disk") == 0) {
            l->disk_pct = v;
        } else if (strcmp(tok, "inode") == 0) {
            l->inode_pct = v;
        } else if (strcmp(tok, "warn") == 0) {
            l->warn_pct = v;
        } else if (strcmp(tok, "cpu") == 0) {
            l->cpu_pct = v;
        } else if (strcmp(tok, "mem") == 0) {
            l->mem_pct = v;
        } else if (strcmp(tok, "load") == 0) {
            l->load_per_core = v;
        } else if (strcmp(tok, "stale") == 0) {
            l->stale_ms = (int64_t)(v * (double)MIN_MS);
        } else {
            snprintf(err, errlen,
                     "limits: unknown \"%s\" (disk, inode, warn, cpu, mem, load, stale)", tok);
            rc = -EINVAL;
            break;
        }
    }
    free(copy);
    return rc;
}

/* ---- the build context ---- */

struct open_inc {
    int64_t id;
    char *host, *rule, *fp, *summary;
};

struct series {
    char *host, *grp, *inst, *path;
    int64_t step_ms;
};

struct ctx {
    int zh;
    int64_t at, since; /* inspection time, previous inspection */
    const struct insp_limits *l;
    const char *silence;
    struct insp_result *r;
    size_t cap;
    struct open_inc *inc;
    size_t ninc;
    struct series *ser;
    size_t nser;
    char **hosts;
    size_t nhosts, hcap;
};

static struct insp_item *item_add(struct ctx *c, const char *host, int site, int order,
                                  const char *key)
{
    if (c->r->n == c->cap) {
        c->cap = c->cap != 0 ? c->cap * 2 : 64;
        c->r->items = wp_xrealloc(c->r->items, c->cap * sizeof(*c->r->items));
    }
    struct insp_item *it = &c->r->items[c->r->n++];
    memset(it, 0, sizeof(*it));
    it->host = wp_xstrdup(host);
    it->site = site;
    it->order = order;
    it->key = wp_xstrdup(key != NULL ? key : "");
    it->incidents = wp_xstrdup("");
    return it;
}

static void host_add(struct ctx *c, const char *host)
{
    if (host[0] == '\0') {
        return;
    }
    for (size_t i = 0; i < c->nhosts; i++) {
        if (strcmp(c->hosts[i], host) == 0) {
            return;
        }
    }
    if (c->nhosts == c->hcap) {
        c->hcap = c->hcap != 0 ? c->hcap * 2 : 32;
        c->hosts = wp_xrealloc(c->hosts, c->hcap * sizeof(*c->hosts));
    }
    c->hosts[c->nhosts++] = wp_xstrdup(host);
}

/* Does fingerprint fp carry label=value (as "|label=value", whole)? */
static int fp_has(const char *fp, const char *label, const char *value)
{
    size_t ll = strlen(label), vl = strlen(value);

    for (const char *p = strchr(fp, '|'); p != NULL; p = strchr(p + 1, '|')) {
        if (strncmp(p + 1, label, ll) == 0 && p[1 + ll] == '=' &&
            strncmp(p + 2 + ll, value, vl) == 0 &&
            (p[2 + ll + vl] == '|' || p[2 + ll + vl] == '\0')) {
            return 1;
        }
    }
    return 0;
}

/* Link the open incidents of it's host that match: by fingerprint label (label, value), or
 * (label NULL) by a rule name containing value. */
static void link_incidents(struct ctx *c, struct insp_item *it, const char *label,
                           const char *value)
{
    char *s = NULL;

    for (size_t i = 0; i < c->ninc; i++) {
        const struct open_inc *in = &c->inc[i];
        if (strcmp(in->host, it->host) != 0) {
            continue;
        }
        int m = label != NULL ? fp_has(in->fp, label, value)
                              : (value[0] == '\0' ? rep_in_list(c->silence, in->rule)
                                                  : strstr(in->rule, value) != NULL);
        if (m) {
            sadd(&s, "%s#%" PRId64 " %s", s != NULL ? "; " : "", in->id, in->summary);
        }
    }
    if (s != NULL) {
        free(it->incidents);
        it->incidents = s;
    }
}

/* ---- incidents open at the inspection time ---- */

static int load_incidents(struct ctx *c, const char *dir, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    int rc = rep_ro_open(dir, "incidents.db", &db, err, errlen);
    int r = 0;
    size_t cap = 0;

    if (rc == WP_ENOTFOUND) {
        return 0;
    }
    if (rc < 0) {
        return rc;
    }
    if (!rep_has_table(db, "incidents")) {
        goto out;
    }
    if (sqlite3_prepare_v2(db,
                           "SELECT id, host, rule, fingerprint, summary FROM incidents"
                           " WHERE opened_ms <= ?1 AND (resolved_ms = 0 OR resolved_ms > ?1)"
                           " AND (closed_ms = 0 OR closed_ms > ?1) ORDER BY id",
                           -1, &q, NULL) != SQLITE_OK) {
        rc = rep_db_fail(db, "incidents.db", err, errlen);
        goto out;
    }
    sqlite3_bind_int64(q, 1, c->at);
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        if (c->ninc == cap) {
            cap = cap != 0 ? cap * 2 : 32;
            c->inc = wp_xrealloc(c->inc, cap * sizeof(*c->inc));
        }
        struct open_inc *in = &c->inc[c->ninc++];
        in->id = sqlite3_column_int64(q, 0);
        in->host = wp_xstrdup(rep_col_str(q, 1));
        in->rule = wp_xstrdup(rep_col_str(q, 2));
        in->fp = wp_xstrdup(rep_col_str(q, 3));
        in->summary = wp_xstrdup(rep_col_str(q, 4));
    }
    if (r != SQLITE_DONE) {
        rc = rep_db_fail(db, "incidents.db", err, errlen);
    }
out:
    sqlite3_finalize(q);
    sqlite3_close(db);
    return rc;
}

/* ---- registry: hosts, series, agent connection ---- */

/* Rows of ds in (at - window, at], unknown rows kept (NaN). 0 or <0. */
static int fetch(const struct series *s, const char *ds, int64_t at_ms, int64_t window_ms,
                 struct rep_vec *v)
{
    return rep_rrd_rows(s->path, ds, (at_ms - window_ms) / 1000, at_ms / 1000, 0, v, NULL);
}

static const struct series *series_of(const struct ctx *c, const char *host, const char *grp,
                                      const char *inst)
{
    for (size_t i = 0; i < c->nser; i++) {
        const struct series *s = &c->ser[i];
        if (strcmp(s->host, host) == 0 && strcmp(s->grp, grp) == 0 &&
            (inst == NULL || strcmp(s->inst, inst) == 0)) {
            return s;
        }
    }
    return NULL;
}

/* The agent item: FAIL when a silence incident is open at the inspection time or the agent
 * was last seen longer than the stale limit before it. */
static void agent_item(struct ctx *c, const char *host, int64_t last_seen_ms)
{
    struct insp_item *it = item_add(c, host, 0, K_AGENT, "");

    it->name = wp_xstrdup(tr(c->zh, "Agent connected", "代理在线"));
    it->status = INSP_PASS;
    link_incidents(c, it, NULL, "");
    if (it->incidents[0] != '\0') {
        it->status = INSP_FAIL;
        it->evidence = wp_xstrdup(
            tr(c->zh, "silent (a silence incident is open)", "失联（有未关闭的失联事件）"));
    } else if (last_seen_ms > 0 && last_seen_ms < c->at - c->l->stale_ms) {
        it->status = INSP_FAIL;
        it->evidence =
            wp_xasprintf(tr(c->zh, "last seen %s", "最后在线 %s"), rep_time_str(last_seen_ms));
    } else {
        it->evidence =
            wp_xstrdup(tr(c->zh, "connected, no silence incident open", "在线，无失联事件"));
    }
}

static void pct_evidence(struct ctx *c, struct insp_item *it, double v, double limit)
{
    if (v >= limit) {
        it->status = INSP_FAIL;
        it->evidence = wp_xasprintf(
            tr(c->zh, "%.1f %% used (limit %.0f %%)", "已用 %.1f%%（上限 %.0f%%）"), v, limit);
    } else if (v >= c->l->warn_pct) {
        it->status = INSP_PASS;
        it->evidence = wp_xasprintf(tr(c->zh, "%.1f %% used (above %.0f %%, limit %.0f %%)",
                                       "已用 %.1f%%（超过 %.0f%%，上限 %.0f%%）"),
                                    v, c->l->warn_pct, limit);
    } else {
        it->status = INSP_PASS;
        it->evidence = wp_xasprintf(
            tr(c->zh, "%.1f %% used (limit %.0f %%)", "已用 %.1f%%（上限 %.0f%%）"), v, limit);
    }
}

static void na_nodata(struct ctx *c, struct insp_item *it)
{
    it->status = INSP_NA;
    it->evidence =
        wp_xstrdup(tr(c->zh, "no data in the hour before the inspection", "巡检前一小时无数据"));
}

/* The last known value of ds in the hour before the inspection; NAN when none. */
static double last_value(const struct ctx *c, const struct series *s, const char *ds,
                         int64_t window_ms, int64_t *ts_s)
{
    struct rep_vec v;
    double out = NAN;

    memset(&v, 0, sizeof(v));
    if (fetch(s, ds, c->at, window_ms, &v) == 0) {
        for (size_t i = v.n; i > 0; i--) {
            if (isfinite(v.v[i - 1])) {
                out = v.v[i - 1];
                if (ts_s != NULL) {
                    *ts_s = v.ts[i - 1];
                }
                break;
            }
        }
    }
    rep_vec_free(&v);
    return out;
}

static void disk_items(struct ctx *c, const struct series *s)
{
    char *name = NULL, *key = NULL;
    struct insp_item *it = item_add(c, s->host, 0, K_DISK, s->inst);
    double v = last_value(c, s, "used_pct", HOUR_MS, NULL);

    it->name = wp_xasprintf(tr(c->zh, "Disk space %s", "磁盘空间 %s"), s->inst);
    if (isfinite(v)) {
        pct_evidence(c, it, v, c->l->disk_pct);
    } else {
        na_nodata(c, it);
    }
    if (it->status == INSP_FAIL) {
        link_incidents(c, it, "instance", s->inst);
    }
    v = last_value(c, s, "inodes_used_pct", HOUR_MS, NULL);
    if (!isfinite(v)) {
        return; /* no inode counts (btrfs, vfat) or no such data source */
    }
    /* right after the space item of the same file system ("\x01" sorts before any name) */
    key = wp_xasprintf("%s\x01", s->inst);
    it = item_add(c, s->host, 0, K_DISK, key);
    free(key);
    name = wp_xasprintf(tr(c->zh, "Inodes %s", "inode %s"), s->inst);
    it->name = name;
    pct_evidence(c, it, v, c->l->inode_pct);
    if (it->status == INSP_FAIL) {
        link_incidents(c, it, "instance", s->inst);
    }
}

/* Average and peak over the last hour of cpu busy (kind 0), memory used (1) or load1 (2). */
static int hour_stats(const struct ctx *c, const struct series *s, int kind, double *avg,
                      double *peak)
{
    struct rep_vec a, t;
    size_t n = 0;
    double sum = 0, max = 0;

    memset(&a, 0, sizeof(a));
    memset(&t, 0, sizeof(t));
    if (fetch(s,
              kind == 0   ? "idle"
              : kind == 1 ? "used"
                          : "load1",
              c->at, HOUR_MS, &a) != 0 ||
        (kind == 1 && fetch(s, "total", c->at, HOUR_MS, &t) != 0)) {
        goto out;
    }
    for (size_t i = 0; i < a.n; i++) {
        double v = a.v[i];
        if (kind == 0) {
            v = 100.0 - v;
        } else if (kind == 1) {
            v = i < t.n && t.v[i] > 0 ? 100.0 * v / t.v[i] : NAN;
        }
        if (isfinite(v)) {
            sum += v;
            max = n == 0 || v > max ? v : max;
            n++;
        }
    }
out:
    rep_vec_free(&a);
    rep_vec_free(&t);
    if (n == 0) {
        return 0;
    }
    *avg = sum / (double)n;
    *peak = max;
    return 1;
}

static void load_items(struct ctx *c, const char *host)
{
    const struct series *s = NULL;
    double avg = 0, peak = 0;
    struct insp_item *it = NULL;

    if ((s = series_of(c, host, "cpu", "total")) != NULL) {
        it = item_add(c, host, 0, K_CPU, "");
        it->name = wp_xstrdup(tr(c->zh, "CPU busy (last hour)", "CPU 使用率（近一小时）"));
        if (hour_stats(c, s, 0, &avg, &peak)) {
            it->status = avg >= c->l->cpu_pct ? INSP_FAIL : INSP_PASS;
            it->evidence = wp_xasprintf(tr(c->zh, "average %.1f %%, peak %.1f %% (limit %.0f %%)",
                                           "平均 %.1f%%，峰值 %.1f%%（上限 %.0f%%）"),
                                        avg, peak, c->l->cpu_pct);
        } else {
            na_nodata(c, it);
        }
        if (it->status == INSP_FAIL) {
            link_incidents(c, it, NULL, "cpu");
        }
    }
    if ((s = series_of(c, host, "mem", NULL)) != NULL) {
        it = item_add(c, host, 0, K_MEM, "");
        it->name = wp_xstrdup(tr(c->zh, "Memory used (last hour)", "内存使用率（近一小时）"));
        if (hour_stats(c, s, 1, &avg, &peak)) {
            it->status = avg >= c->l->mem_pct ? INSP_FAIL : INSP_PASS;
            it->evidence = wp_xasprintf(tr(c->zh, "average %.1f %%, peak %.1f %% (limit %.0f %%)",
                                           "平均 %.1f%%，峰值 %.1f%%（上限 %.0f%%）"),
                                        avg, peak, c->l->mem_pct);
        } else {
            na_nodata(c, it);
        }
        if (it->status == INSP_FAIL) {
            link_incidents(c, it, NULL, "mem");
        }
    }
    if ((s = series_of(c, host, "load", NULL)) != NULL) {
        int cores = 0;
        for (size_t i = 0; i < c->nser; i++) {
            if (strcmp(c->ser[i].host, host) == 0 && strcmp(c->ser[i].grp, "cpu") == 0 &&
                strcmp(c->ser[i].inst, "total") != 0) {
                cores++;
            }
        }
        it = item_add(c, host, 0, K_LOAD, "");
        it->name = wp_xstrdup(tr(c->zh, "Load per core (last hour)", "每核负载（近一小时）"));
        if (!hour_stats(c, s, 2, &avg, &peak)) {
            na_nodata(c, it);
        } else if (cores == 0) {
            it->status = INSP_NA;
            it->evidence = wp_xasprintf(
                tr(c->zh,
                   "load1 average %.2f, peak %.2f; core count unknown (no per-core cpu series)",
                   "load1 平均 %.2f，峰值 %.2f；核数未知（无每核 CPU 数据）"),
                avg, peak);
        } else {
            double per = avg / cores;
            it->status = per >= c->l->load_per_core ? INSP_FAIL : INSP_PASS;
            it->evidence =
                wp_xasprintf(tr(c->zh,
                                "load1 average %.2f, peak %.2f on %d cores: %.2f per "
                                "core (limit %.2f)",
                                "load1 平均 %.2f，峰值 %.2f，%d 核：每核 %.2f（上限 %.2f）"),
                             avg, peak, cores, per, c->l->load_per_core);
        }
        if (it->status == INSP_FAIL) {
            link_incidents(c, it, NULL, "load");
        }
    }
}

static int load_registry(struct ctx *c, const char *dir, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    int rc = rep_ro_open(dir, "watchpost.db", &db, err, errlen);
    int r = 0;
    size_t cap = 0;
    int64_t *seen = NULL;
    char **ahosts = NULL;
    size_t na = 0;

    if (rc == WP_ENOTFOUND) {
        return 0;
    }
    if (rc < 0) {
        return rc;
    }
    if (!rep_has_table(db, "agents")) {
        goto out;
    }
    /* hosts registered by the inspection time, with the latest last_seen of their agents */
    if (sqlite3_prepare_v2(db,
                           "SELECT host, max(last_seen) FROM agents WHERE host <> ''"
                           " AND first_seen * 1000 <= ?1 GROUP BY host ORDER BY host",
                           -1, &q, NULL) != SQLITE_OK) {
        rc = rep_db_fail(db, "watchpost.db", err, errlen);
        goto out;
    }
    sqlite3_bind_int64(q, 1, c->at);
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        ahosts = wp_xrealloc(ahosts, (na + 1) * sizeof(*ahosts));
        seen = wp_xrealloc(seen, (na + 1) * sizeof(*seen));
        ahosts[na] = wp_xstrdup(rep_col_str(q, 0));
        seen[na++] = sqlite3_column_int64(q, 1) * 1000;
    }
    sqlite3_finalize(q);
    q = NULL;
    if (r != SQLITE_DONE) {
        rc = rep_db_fail(db, "watchpost.db", err, errlen);
        goto out;
    }
    if (rep_has_table(db, "series")) {
        if (sqlite3_prepare_v2(db,
                               "SELECT a.host, s.grp, s.inst, s.file, min(s.step) FROM series s"
                               " JOIN agents a ON a.id = s.agent GROUP BY a.host, s.grp, s.inst"
                               " ORDER BY a.host, s.grp, s.inst",
                               -1, &q, NULL) != SQLITE_OK) {
            rc = rep_db_fail(db, "watchpost.db series", err, errlen);
            goto out;
        }
        while ((r = sqlite3_step(q)) == SQLITE_ROW) {
            if (c->nser == cap) {
                cap = cap != 0 ? cap * 2 : 64;
                c->ser = wp_xrealloc(c->ser, cap * sizeof(*c->ser));
            }
            struct series *s = &c->ser[c->nser++];
            s->host = wp_xstrdup(rep_col_str(q, 0));
            s->grp = wp_xstrdup(rep_col_str(q, 1));
            s->inst = wp_xstrdup(rep_col_str(q, 2));
            s->path = wp_xasprintf("/%s", rep_col_str(q, 3));
            s->step_ms = sqlite3_column_int64(q, 4) * 1000;
        }
        if (r != SQLITE_DONE) {
            rc = rep_db_fail(db, "watchpost.db series", err, errlen);
            goto out;
        }
    }
    for (size_t i = 0; i < na; i++) {
        host_add(c, ahosts[i]);
        agent_item(c, ahosts[i], seen[i]);
    }
out:
    for (size_t i = 0; i < na; i++) {
        free(ahosts[i]);
    }
    free(ahosts);
    free(seen);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return rc;
}

static void metric_items(struct ctx *c)
{
    for (size_t h = 0; h < c->nhosts; h++) {
        load_items(c, c->hosts[h]);
        for (size_t i = 0; i < c->nser; i++) {
            if (strcmp(c->ser[i].host, c->hosts[h]) == 0 && strcmp(c->ser[i].grp, "df") == 0) {
                disk_items(c, &c->ser[i]);
            }
        }
    }
}

/* ---- checks and log events (events.db) ---- */

static void check_kind(int zh, const char *name, int *order, const char **label, const char **grp,
                       const char **inst)
{
    static const struct {
        const char *prefix;
        int order;
        const char *en, *cn;
    } kinds[] = {
        {"proc_", K_PROC, "Process", "进程"},
        {"http_", K_HTTP, "Web page", "网页"},
        {"mysql_", K_DB, "Database", "数据库"},
        {"pgsql_", K_DB, "Database", "数据库"},
        {"tcp_", K_TCP, "TCP port", "TCP 端口"},
        {"sipcall_", K_SIPCALL, "Test call", "测试呼叫"},
        {"sipping_", K_SIPPING, "SIP reachability", "SIP 可达"},
        {"kamreg_", K_CHECK, "SIP registrations", "SIP 注册"},
        {"file_", K_FILE, "Backup/log file", "备份/日志文件"},
    };
    static char g[32];

    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        size_t n = strlen(kinds[i].prefix);
        if (strncmp(name, kinds[i].prefix, n) == 0 && name[n] != '\0') {
            *order = kinds[i].order;
            *label = zh ? kinds[i].cn : kinds[i].en;
            snprintf(g, sizeof(g), "%.*s", (int)(n - 1), kinds[i].prefix);
            *grp = g;
            *inst = name + n;
            return;
        }
    }
    *order = K_CHECK;
    *label = zh ? "检查" : "Check";
    *grp = NULL;
    *inst = NULL;
}

/* One check as of the inspection time. */
static void check_item(struct ctx *c, sqlite3_stmt *hist, const char *host, const char *name,
                       int status, const char *output, int64_t since_ms, int64_t ts_ms)
{
    int order = 0;
    const char *label = NULL, *grp = NULL, *inst = NULL;
    int64_t last = ts_ms; /* the last result known by the inspection time */
    char *out_text = NULL;

    if (since_ms > c->at) {
        /* the status changed after the inspection: the history has the one before */
        int found = 0;
        sqlite3_reset(hist);
        sqlite3_bind_text(hist, 1, host, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(hist, 2, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(hist, 3, c->at);
        if (sqlite3_step(hist) == SQLITE_ROW) {
            since_ms = sqlite3_column_int64(hist, 0);
            status = sqlite3_column_int(hist, 1);
            out_text = wp_xstrdup(rep_col_str(hist, 2));
            found = 1;
        }
        sqlite3_reset(hist);
        if (!found) {
            return; /* no result of that check by the inspection time */
        }
        last = c->at; /* results went on after the inspection */
    } else if (ts_ms > c->at) {
        last = c->at;
    }
    if (out_text == NULL) {
        out_text = wp_xstrdup(output);
    }
    check_kind(c->zh, name, &order, &label, &grp, &inst);
    struct insp_item *it = item_add(c, host, 0, order, name);
    it->name = wp_xasprintf("%s %s", label, inst != NULL ? inst : name);
    const struct series *s = grp != NULL ? series_of(c, host, grp, inst) : NULL;
    int64_t stale = c->l->stale_ms;
    if (s != NULL && 3 * s->step_ms > stale) {
        stale = 3 * s->step_ms;
    }
    char *ex = excerpt(out_text, EVIDENCE_TX);
    if (c->at - last > stale) {
        it->status = INSP_FAIL;
        it->evidence = wp_xasprintf(
            tr(c->zh, "no result since %s (last: %s: %s)", "%s 以来无结果（最后：%s：%s）"),
            rep_time_str(last), status_name(c->zh, status), ex);
    } else {
        it->status = status == 0 ? INSP_PASS : INSP_FAIL;
        it->evidence = wp_xasprintf(tr(c->zh, "%s since %s: %s", "%s，自 %s：%s"),
                                    status_name(c->zh, status), rep_time_str(since_ms), ex);
        if (order == K_SIPCALL && s != NULL) {
            /* the answer time of the last call in the window */
            int64_t ts = 0;
            int64_t win = 3 * s->step_ms > HOUR_MS ? 3 * s->step_ms : HOUR_MS;
            double a = last_value(c, s, "answer_s", win, &ts);
            if (isfinite(a)) {
                char *e = it->evidence;
                it->evidence = wp_xasprintf(tr(c->zh, "answered in %.1f s (call at %s); %s",
                                               "%.1f 秒接通（%s 的呼叫）；%s"),
                                            a, rep_time_str(ts * 1000), e);
                free(e);
            }
        }
    }
    free(ex);
    free(out_text);
    if (it->status == INSP_FAIL) {
        link_incidents(c, it, "check", name);
    }
}

static void log_item(struct ctx *c, sqlite3_stmt *q, const char *host)
{
    char *by_rule = NULL, *last = NULL;
    int64_t errors = 0, warnings = 0;
    int r = 0;
    struct insp_item *it = item_add(c, host, 0, K_LOG, "");

    it->name = wp_xstrdup(
        tr(c->zh, "New log errors since the last inspection", "上次巡检以来的新日志错误"));
    sqlite3_reset(q);
    sqlite3_bind_text(q, 1, host, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 2, c->since);
    sqlite3_bind_int64(q, 3, c->at);
    /* rows: rule, severity >= error, count, the latest (ts, source, text) of the group */
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t n = sqlite3_column_int64(q, 2);
        if (sqlite3_column_int(q, 1) == 0) {
            warnings += n;
            continue;
        }
        errors += n;
        sadd(&by_rule, "%s%s %" PRId64, by_rule != NULL ? ", " : "", rep_col_str(q, 0), n);
        if (last == NULL) {
            /* groups come latest first: the first one has the latest error */
            char *ex = excerpt(rep_col_str(q, 5), EVIDENCE_TX);
            last = wp_xasprintf("%s %s: %s", rep_time_str(sqlite3_column_int64(q, 3)),
                                rep_col_str(q, 4), ex);
            free(ex);
        }
    }
    sqlite3_reset(q);
    if (errors == 0) {
        it->status = INSP_PASS;
        it->evidence = wp_xasprintf(
            tr(c->zh, "no errors (warnings: %" PRId64 ")", "无错误（警告 %" PRId64 " 条）"),
            warnings);
    } else {
        it->status = INSP_FAIL;
        it->evidence =
            wp_xasprintf(tr(c->zh, "errors: %" PRId64 " (%s), warnings: %" PRId64 "; last %s",
                            "错误 %" PRId64 " 条（%s），警告 %" PRId64 " 条；最后 %s"),
                         errors, by_rule, warnings, last);
        for (size_t i = 0; i < c->ninc; i++) {
            /* log rules key their incidents by source: any of them on this host */
            if (strcmp(c->inc[i].host, host) == 0 && strstr(c->inc[i].fp, "|source=") != NULL) {
                sadd(&it->incidents, "%s#%" PRId64 " %s", it->incidents[0] != '\0' ? "; " : "",
                     c->inc[i].id, c->inc[i].summary);
            }
        }
    }
    free(by_rule);
    free(last);
}

static int load_events(struct ctx *c, const char *dir, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL, *hist = NULL, *logs = NULL;
    int rc = rep_ro_open(dir, "events.db", &db, err, errlen);
    int r = 0;

    if (rc == WP_ENOTFOUND) {
        for (size_t h = 0; h < c->nhosts; h++) {
            struct insp_item *it = item_add(c, c->hosts[h], 0, K_NODATA, "");
            it->name = wp_xstrdup(tr(c->zh, "Checks and log events", "检查与日志事件"));
            it->status = INSP_NA;
            it->evidence = wp_xstrdup(tr(c->zh, "no data: no events.db in the state directory",
                                         "无数据：状态目录中没有 events.db"));
        }
        return 0;
    }
    if (rc < 0) {
        return rc;
    }
    c->r->have_events = 1;
    if (!rep_has_table(db, "checks") || !rep_has_table(db, "check_history") ||
        !rep_has_table(db, "log_events")) {
        snprintf(err, errlen, "events.db: expected the tables checks, check_history, log_events");
        rc = WP_EDB;
        goto out;
    }
    if (sqlite3_prepare_v2(db,
                           "SELECT host, name, status, output, since_ms, ts_ms FROM checks"
                           " ORDER BY host, name",
                           -1, &q, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "SELECT ts_ms, status, output FROM check_history WHERE host = ?1"
                           " AND name = ?2 AND ts_ms <= ?3 ORDER BY ts_ms DESC, id DESC LIMIT 1",
                           -1, &hist, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "SELECT rule, severity >= 2 AS err, count(*), max(ts_ms),"
                           " (SELECT source FROM log_events l2 WHERE l2.host = ?1 AND l2.rule ="
                           "  l.rule AND (l2.severity >= 2) = (l.severity >= 2) AND l2.ts_ms >= ?2"
                           "  AND l2.ts_ms < ?3 ORDER BY ts_ms DESC, id DESC LIMIT 1),"
                           " (SELECT text FROM log_events l2 WHERE l2.host = ?1 AND l2.rule ="
                           "  l.rule AND (l2.severity >= 2) = (l.severity >= 2) AND l2.ts_ms >= ?2"
                           "  AND l2.ts_ms < ?3 ORDER BY ts_ms DESC, id DESC LIMIT 1)"
                           " FROM log_events l WHERE host = ?1 AND ts_ms >= ?2 AND ts_ms < ?3"
                           " GROUP BY rule, severity >= 2 ORDER BY max(ts_ms) DESC, rule",
                           -1, &logs, NULL) != SQLITE_OK) {
        rc = rep_db_fail(db, "events.db", err, errlen);
        goto out;
    }
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        const char *host = rep_col_str(q, 0);
        host_add(c, host);
        check_item(c, hist, host, rep_col_str(q, 1), sqlite3_column_int(q, 2), rep_col_str(q, 3),
                   sqlite3_column_int64(q, 4), sqlite3_column_int64(q, 5));
    }
    if (r != SQLITE_DONE) {
        rc = rep_db_fail(db, "events.db", err, errlen);
        goto out;
    }
    for (size_t h = 0; h < c->nhosts; h++) {
        log_item(c, logs, c->hosts[h]);
    }
out:
    sqlite3_finalize(q);
    sqlite3_finalize(hist);
    sqlite3_finalize(logs);
    sqlite3_close(db);
    return rc;
}

/* ---- telephony sites (lines.db) ---- */

struct lstate {
    char *host, *grp, *object, *state;
    int64_t since;
};

static int bad_line_state(const char *s)
{
    return strcmp(s, "blocked") == 0 || strcmp(s, "unavailable") == 0 ||
           strcmp(s, "out_of_service") == 0;
}

static const char *state_text(int zh, const char *s)
{
    if (!zh) {
        return s;
    }
    return strcmp(s, "blocked") == 0       ? "阻塞"
           : strcmp(s, "unavailable") == 0 ? "不可用"
                                           : "停用"; /* out_of_service */
}

static void group_item(struct ctx *c, struct lstate *ls, size_t a, size_t b)
{
    char b1[32];
    size_t bad = 0;
    struct insp_item *it = item_add(c, ls[a].host, 1, K_LINES, ls[a].grp);
    char *list = NULL;

    it->name = wp_xasprintf(tr(c->zh, "Lines in service (%s)", "在用线路（%s）"), ls[a].grp);
    for (size_t i = a; i < b; i++) {
        if (bad_line_state(ls[i].state)) {
            bad++;
            sadd(&list, tr(c->zh, "; %s %s for %s", "；%s %s 已 %s"), ls[i].object,
                 state_text(c->zh, ls[i].state), dstr(c->zh, c->at - ls[i].since, b1, sizeof(b1)));
        }
    }
    it->status = bad > 0 ? INSP_FAIL : INSP_PASS;
    it->evidence = wp_xasprintf(tr(c->zh, "%zu of %zu in service%s", "%zu / %zu 在用%s"),
                                b - a - bad, b - a, list != NULL ? list : "");
    free(list);
    if (bad > 0) {
        for (size_t i = a; i < b; i++) {
            if (bad_line_state(ls[i].state)) {
                struct insp_item tmp = *it;
                tmp.incidents = wp_xstrdup("");
                link_incidents(c, &tmp, "line", ls[i].object);
                if (tmp.incidents[0] != '\0') {
                    sadd(&it->incidents, "%s%s", it->incidents[0] != '\0' ? "; " : "",
                         tmp.incidents);
                }
                free(tmp.incidents);
            }
        }
        {
            /* line_share / line_mass incidents of the whole group */
            struct insp_item tmp = *it;
            tmp.incidents = wp_xstrdup("");
            link_incidents(c, &tmp, "group", ls[a].grp);
            if (tmp.incidents[0] != '\0') {
                sadd(&it->incidents, "%s%s", it->incidents[0] != '\0' ? "; " : "", tmp.incidents);
            }
            free(tmp.incidents);
        }
    }
}

static int load_lines(struct ctx *c, const char *dir, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    int rc = rep_ro_open(dir, "lines.db", &db, err, errlen);
    int r = 0;
    struct lstate *ls = NULL;
    size_t n = 0, cap = 0;

    if (rc == WP_ENOTFOUND) {
        return 0;
    }
    if (rc < 0) {
        return rc;
    }
    if (!rep_has_table(db, "history") || !rep_has_table(db, "lines")) {
        goto out;
    }
    /* the current table adds the state of a line whose last change was pruned from history */
    if (sqlite3_prepare_v2(db,
                           "SELECT host, object, grp, state, at_ms FROM history WHERE at_ms <= ?1"
                           " UNION SELECT host, object, grp, state, since_ms FROM lines"
                           " WHERE since_ms <= ?1 ORDER BY 1, 2, 5, 4",
                           -1, &q, NULL) != SQLITE_OK) {
        rc = rep_db_fail(db, "lines.db", err, errlen);
        goto out;
    }
    sqlite3_bind_int64(q, 1, c->at);
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        const char *host = rep_col_str(q, 0), *object = rep_col_str(q, 1),
                   *state = rep_col_str(q, 3);
        struct lstate *l = n > 0 ? &ls[n - 1] : NULL;
        if (l == NULL || strcmp(l->host, host) != 0 || strcmp(l->object, object) != 0) {
            if (n == cap) {
                cap = cap != 0 ? cap * 2 : 64;
                ls = wp_xrealloc(ls, cap * sizeof(*ls));
            }
            l = &ls[n++];
            l->host = wp_xstrdup(host);
            l->object = wp_xstrdup(object);
            l->grp = wp_xstrdup(rep_col_str(q, 2));
            l->state = wp_xstrdup(state);
            l->since = sqlite3_column_int64(q, 4);
            continue;
        }
        free(l->grp);
        l->grp = wp_xstrdup(rep_col_str(q, 2));
        if (strcmp(l->state, state) != 0) {
            free(l->state);
            l->state = wp_xstrdup(state);
            l->since = sqlite3_column_int64(q, 4);
        }
    }
    if (r != SQLITE_DONE) {
        rc = rep_db_fail(db, "lines.db", err, errlen);
        goto out;
    }
    /* by host, group, object */
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j > 0; j--) {
            struct lstate *x = &ls[j - 1], *y = &ls[j];
            int k = strcmp(x->host, y->host);
            k = k != 0 ? k : strcmp(x->grp, y->grp);
            k = k != 0 ? k : strcmp(x->object, y->object);
            if (k <= 0) {
                break;
            }
            struct lstate t = *x;
            *x = *y;
            *y = t;
        }
    }
    for (size_t a = 0, b = 0; a < n; a = b) {
        for (b = a;
             b < n && strcmp(ls[b].host, ls[a].host) == 0 && strcmp(ls[b].grp, ls[a].grp) == 0;
             b++) {
        }
        group_item(c, ls, a, b);
    }
out:
    for (size_t i = 0; i < n; i++) {
        free(ls[i].host);
        free(ls[i].grp);
        free(ls[i].object);
        free(ls[i].state);
    }
    free(ls);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return rc;
}

/* ---- result ---- */

static int cmp_item(const void *a, const void *b)
{
    const struct insp_item *x = a, *y = b;
    int k = x->site - y->site;

    k = k != 0 ? k : strcmp(x->host, y->host);
    k = k != 0 ? k : x->order - y->order;
    k = k != 0 ? k : strcmp(x->key, y->key);
    return k;
}

void insp_result_free(struct insp_result *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->n; i++) {
        free(r->items[i].host);
        free(r->items[i].key);
        free(r->items[i].name);
        free(r->items[i].evidence);
        free(r->items[i].incidents);
    }
    free(r->items);
    free(r);
}

int insp_build(const char *state_dir, const struct rep_period *p, const struct rep_opts *o,
               const struct insp_limits *l, struct insp_result **out, char *err, size_t errlen)
{
    struct insp_limits def;
    struct ctx c;
    int rc = 0;
    const char *lang = o != NULL && o->lang != NULL ? o->lang : "en";
    char *rrd_dir = o != NULL && o->rrd_dir != NULL ? wp_xstrdup(o->rrd_dir)
                                                    : wp_xasprintf("%s/rrd", state_dir);

    *out = NULL;
    if (l == NULL) {
        insp_limits_default(&def);
        l = &def;
    }
    memset(&c, 0, sizeof(c));
    c.zh = strncmp(lang, "zh", 2) == 0;
    c.at = p->to_ms;
    c.since = p->from_ms;
    c.l = l;
    c.silence = o != NULL && o->silence_rules != NULL ? o->silence_rules : "host_silent";
    c.r = wp_xcalloc(1, sizeof(*c.r));
    c.r->p = *p;
    c.r->zh = c.zh;
    rc = load_incidents(&c, state_dir, err, errlen);
    if (rc == 0) {
        rc = load_registry(&c, state_dir, err, errlen);
    }
    for (size_t i = 0; i < c.nser; i++) {
        /* load_registry() stored the file name relative to the RRD root */
        char *full = wp_xasprintf("%s%s", rrd_dir, c.ser[i].path);
        free(c.ser[i].path);
        c.ser[i].path = full;
    }
    if (rc == 0) {
        metric_items(&c);
        rc = load_events(&c, state_dir, err, errlen);
    }
    if (rc == 0) {
        rc = load_lines(&c, state_dir, err, errlen);
    }
    if (rc == 0) {
        struct insp_result *r = c.r;
        if (r->n > 1) {
            qsort(r->items, r->n, sizeof(*r->items), cmp_item);
        }
        for (size_t i = 0; i < r->n; i++) {
            const struct insp_item *it = &r->items[i];
            r->pass += it->status == INSP_PASS;
            r->fail += it->status == INSP_FAIL;
            r->na += it->status == INSP_NA;
            if (i == 0 || it->site != r->items[i - 1].site ||
                strcmp(it->host, r->items[i - 1].host) != 0) {
                if (it->site) {
                    r->sites++;
                } else {
                    r->hosts++;
                }
            }
        }
        *out = c.r;
        c.r = NULL;
    }
    insp_result_free(c.r);
    for (size_t i = 0; i < c.ninc; i++) {
        free(c.inc[i].host);
        free(c.inc[i].rule);
        free(c.inc[i].fp);
        free(c.inc[i].summary);
    }
    free(c.inc);
    for (size_t i = 0; i < c.nser; i++) {
        free(c.ser[i].host);
        free(c.ser[i].grp);
        free(c.ser[i].inst);
        free(c.ser[i].path);
    }
    free(c.ser);
    for (size_t i = 0; i < c.nhosts; i++) {
        free(c.hosts[i]);
    }
    free(c.hosts);
    free(rrd_dir);
    return rc;
}

/* ---- the document ---- */

static const char *st_name(int zh, enum insp_status s)
{
    switch (s) {
    case INSP_PASS:
        return tr(zh, "PASS", "通过");
    case INSP_FAIL:
        return tr(zh, "FAIL", "不通过");
    default:
        return tr(zh, "N/A", "不适用");
    }
}

struct rdoc *insp_doc(const struct insp_result *r, const struct insp_limits *l)
{
    struct insp_limits def;
    int zh = r->zh;

    if (l == NULL) {
        insp_limits_default(&def);
        l = &def;
    }
    char *title = wp_xasprintf("%s %s", tr(zh, "Watchpost daily inspection", "Watchpost 每日巡检"),
                               rep_time_str(r->p.to_ms));
    struct rdoc *d = rdoc_new(title, zh ? "zh-CN" : "en");
    free(title);
    rdoc_set_empty_text(d, tr(zh, "none", "无"));
    rdoc_set_date(d, rep_iso_str(r->p.to_ms));
    rdoc_para(d,
              tr(zh,
                 "State at the inspection time %s; new log errors counted since the previous "
                 "inspection at %s. Limits: disk and inodes %.0f %% used (noted from %.0f %%), "
                 "CPU %.0f %%, memory %.0f %% (last-hour average), load %.2f per core; a check "
                 "without a result for %" PRId64 " min (or 3 of its intervals) fails.",
                 "巡检时间 %s 的状态；新日志错误自上次巡检 %s 起计。阈值：磁盘与 inode 已用 %.0f%%"
                 "（%.0f%% 起提示），CPU %.0f%%，内存 %.0f%%（近一小时平均），每核负载 %.2f；"
                 "检查超过 %" PRId64 " 分钟（或 3 个周期）无结果即不通过。"),
              rep_time_str(r->p.to_ms), rep_time_str(r->p.from_ms), l->disk_pct, l->warn_pct,
              l->cpu_pct, l->mem_pct, l->load_per_core, (int64_t)(l->stale_ms / MIN_MS));

    rdoc_heading(d, 2, tr(zh, "1. Summary", "1. 概要"));
    const char *scols[2] = {tr(zh, "Figure", "项目"), tr(zh, "Value", "数值")};
    struct rtable *t = rdoc_table(d, NULL, NULL, 2, scols);
    rtable_cell(t, "%s", tr(zh, "Hosts inspected", "巡检主机"));
    rtable_cell(t, "%zu", r->hosts);
    rtable_cell(t, "%s", tr(zh, "Telephony sites inspected", "巡检电话站点"));
    rtable_cell(t, "%zu", r->sites);
    rtable_cell(t, "%s", tr(zh, "Items", "检查项"));
    rtable_cell(t, "%zu", r->n);
    rtable_cell(t, "%s", tr(zh, "Passed", "通过"));
    rtable_cell(t, "%zu", r->pass);
    rtable_cell(t, "%s", tr(zh, "Failed", "不通过"));
    rtable_cell(t, "%zu", r->fail);
    rtable_cell(t, "%s", tr(zh, "Not applicable (no data)", "不适用（无数据）"));
    rtable_cell(t, "%zu", r->na);

    rdoc_heading(d, 2, tr(zh, "2. Failed items", "2. 不通过项"));
    const char *fcols[4] = {tr(zh, "Host", "主机"), tr(zh, "Item", "检查项"),
                            tr(zh, "Evidence", "依据"), tr(zh, "Open incidents", "未关闭事件")};
    t = rdoc_table(d, NULL, NULL, 4, fcols);
    for (size_t i = 0; i < r->n; i++) {
        const struct insp_item *it = &r->items[i];
        if (it->status == INSP_FAIL) {
            rtable_cell(t, "%s", it->host);
            rtable_cell(t, "%s", it->name);
            rtable_cell(t, "%s", it->evidence);
            rtable_cell(t, "%s", it->incidents);
        }
    }

    rdoc_heading(d, 2, tr(zh, "3. Hosts and sites", "3. 主机与站点"));
    const char *hcols[5] = {tr(zh, "Host", "主机"), tr(zh, "Kind", "类型"),
                            tr(zh, "Passed", "通过"), tr(zh, "Failed", "不通过"),
                            tr(zh, "N/A", "不适用")};
    t = rdoc_table(d, NULL, NULL, 5, hcols);
    for (size_t a = 0, b = 0; a < r->n; a = b) {
        size_t np = 0, nf = 0, nn = 0;
        for (b = a; b < r->n && r->items[b].site == r->items[a].site &&
                    strcmp(r->items[b].host, r->items[a].host) == 0;
             b++) {
            np += r->items[b].status == INSP_PASS;
            nf += r->items[b].status == INSP_FAIL;
            nn += r->items[b].status == INSP_NA;
        }
        rtable_cell(t, "%s", r->items[a].host);
        rtable_cell(t, "%s",
                    r->items[a].site ? tr(zh, "telephony site", "电话站点")
                                     : tr(zh, "host", "主机"));
        rtable_cell(t, "%zu", np);
        rtable_cell(t, "%zu", nf);
        rtable_cell(t, "%zu", nn);
    }

    rdoc_heading(d, 2, tr(zh, "4. Check list", "4. 巡检清单"));
    const char *icols[5] = {tr(zh, "Host", "主机"), tr(zh, "Item", "检查项"),
                            tr(zh, "Status", "结果"), tr(zh, "Evidence", "依据"),
                            tr(zh, "Open incidents", "未关闭事件")};
    t = rdoc_table(d, "items", NULL, 5, icols);
    for (size_t i = 0; i < r->n; i++) {
        const struct insp_item *it = &r->items[i];
        rtable_cell(t, "%s", it->host);
        rtable_cell(t, "%s", it->name);
        rtable_cell(t, "%s", st_name(zh, it->status));
        rtable_cell(t, "%s", it->evidence);
        rtable_cell(t, "%s", it->incidents);
    }
    if (!r->have_events) {
        rdoc_para(d, "%s",
                  tr(zh, "events.db was not found: checks and log events are not inspected.",
                     "未找到 events.db：未巡检检查结果与日志事件。"));
    }
    return d;
}

int rep_inspection_doc(const char *state_dir, const struct rep_period *p, const struct rep_opts *o,
                       const struct insp_limits *l, struct rdoc **out, char *err, size_t errlen)
{
    struct insp_result *r = NULL;
    int rc = insp_build(state_dir, p, o, l, &r, err, errlen);

    *out = NULL;
    if (rc < 0) {
        return rc;
    }
    *out = insp_doc(r, l);
    insp_result_free(r);
    return 0;
}
