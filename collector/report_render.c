/* SPDX-License-Identifier: Apache-2.0 */
/* The health report and the fault report as documents (see report.h): sections, tables and
 * findings, in English or Chinese, every number in a fixed format and every table sorted. */
#include "report.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "attendance.h"
#include "incident.h"
#include "report_int.h"
#include "wp/err.h"
#include "wp/mem.h"

#define UP   "\xe2\x86\x91" /* U+2191 */
#define DOWN "\xe2\x86\x93" /* U+2193 */
#define SAME "\xe2\x86\x92" /* U+2192 */

/* Findings thresholds (docs/REPORTS.md). */
#define FIND_BLOCKED_TIMES 2
#define FIND_LINE_AVAIL    99.0
#define FIND_NOISY_RULE    5
#define FIND_FULL_DAYS     30.0 /* a file system full within (days) */
#define FIND_METRIC_P95    90.0 /* cpu, mem, df: p95 at or above (%) */
#define TOP_N              10
#define FIND_MAX_PER_KIND  20 /* findings listed per kind, worst first */
#define GRAPHS_MAX         12
#define FIND_REG_LOST      2    /* a registration lost at least this often */
#define FIND_CALL_SUCCESS  99.0 /* test calls answered below (%) */
#define FIND_SLOW_RATIO    1.5  /* answer time p95 at least this times the previous ... */
#define FIND_SLOW_DELTA_S  1.0  /* ... and this much longer (s) */
#define TOP_MSGS           20   /* log messages listed */
#define TOP_PROCS          20   /* processes listed, by CPU and by memory */
#define FIND_LATE_TIMES    2    /* a seat late at least this often ... */
#define FIND_EARLY_TIMES   2    /* ... leaving early at least this often ... */
#define FIND_ABSENT_DAYS   2    /* ... or absent on at least this many working days */

struct ctx {
    int zh;
    struct rdoc *d;
};

/* A literal pair, so that printf formats stay checked. */
#define tr(c, en_, zh_) ((c)->zh ? (zh_) : (en_))

/* A time, "" for 0 (not yet). */
static const char *tstr(int64_t ms)
{
    return ms != 0 ? rep_time_str(ms) : "";
}

static const char *mins(int64_t ms)
{
    char *b = rep_ring();
    snprintf(b, REP_FMT_LEN, "%.1f", (double)ms / 60000.0);
    return b;
}

/* A statistic of a distribution, "n/a" when it has no sample. */
static const char *dmins(const struct rep_dist *d, int64_t ms)
{
    return d->n > 0 ? mins(ms) : "n/a";
}

static const char *pct(double v)
{
    char *b = rep_ring();
    snprintf(b, REP_FMT_LEN, "%.2f", v);
    return b;
}

static const char *days(double v)
{
    char *b = rep_ring();
    snprintf(b, REP_FMT_LEN, "%.1f", v);
    return b;
}

static const char *num(size_t v)
{
    char *b = rep_ring();
    snprintf(b, REP_FMT_LEN, "%zu", v);
    return b;
}

static const char *arrow_d(double cur, double prev)
{
    /* compare at the printed precision so that equal-looking values say "same" */
    long long a = (long long)(cur * 100.0 + 0.5), b = (long long)(prev * 100.0 + 0.5);
    return a > b ? UP : a < b ? DOWN : SAME;
}

static const char *prio_name(int p)
{
    static const char *const n[] = {"P1", "P2", "P3", "P4"};
    return p >= 1 && p <= 4 ? n[p - 1] : "P?";
}

static const char *status_name(const struct ctx *c, int s)
{
    switch (s) {
    case INC_OPEN:
        return tr(c, "open", "未处理");
    case INC_ACKNOWLEDGED:
        return tr(c, "acknowledged", "已确认");
    case INC_RESOLVED:
        return tr(c, "resolved", "已解决");
    case INC_CLOSED:
        return tr(c, "closed", "已关闭");
    default:
        return "?";
    }
}

/* ---- counts by key (this period and the previous one) ---- */

struct kc {
    const char *key;
    size_t cur, prev;
};

struct kcs {
    struct kc *v;
    size_t n, cap;
};

static void kc_add(struct kcs *s, const char *key, int which, size_t by)
{
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->v[i].key, key) == 0) {
            *(which ? &s->v[i].prev : &s->v[i].cur) += by;
            return;
        }
    }
    if (s->n == s->cap) {
        s->cap = s->cap != 0 ? s->cap * 2 : 32;
        s->v = wp_xrealloc(s->v, s->cap * sizeof(*s->v));
    }
    s->v[s->n].key = key;
    s->v[s->n].cur = which ? 0 : by;
    s->v[s->n].prev = which ? by : 0;
    s->n++;
}

static int cmp_kc(const void *a, const void *b)
{
    const struct kc *x = a, *y = b;
    if (x->cur != y->cur) {
        return x->cur < y->cur ? 1 : -1;
    }
    if (x->prev != y->prev) {
        return x->prev < y->prev ? 1 : -1;
    }
    return strcmp(x->key, y->key);
}

static const char *inc_key(const struct rep_inc *i, int field)
{
    const char *k = field == 0 ? i->category : field == 1 ? i->host : i->rule;
    return k[0] != '\0' ? k : "-";
}

/* Incidents per category, host or rule (field 0, 1, 2) in this period and the previous one:
 * opened, every key; or (noisy) opened plus reopened within the period, the top TOP_N keys of
 * this period. */
static void by_key_table(struct ctx *c, const struct rep_stats *cur, const struct rep_stats *prev,
                         int field, int noisy, const char *csv, const char *caption,
                         const char *col)
{
    struct kcs s;
    const char *cols[4] = {
        col, noisy ? tr(c, "Opened + reopened", "新增+重开") : tr(c, "Opened", "新增"),
        tr(c, "Previous", "上期"), tr(c, "Trend", "趋势")};

    memset(&s, 0, sizeof(s));
    for (int w = 0; w < 2; w++) {
        const struct rep_stats *st = w == 0 ? cur : prev;
        for (size_t i = 0; i < st->ninc; i++) {
            size_t n = (size_t)st->inc[i].opened_in + (noisy ? (size_t)st->inc[i].reopens_in : 0);
            if (n > 0) {
                kc_add(&s, inc_key(&st->inc[i], field), w, n);
            }
        }
    }
    if (s.n > 1) {
        qsort(s.v, s.n, sizeof(*s.v), cmp_kc);
    }
    struct rtable *t = rdoc_table(c->d, csv, caption, 4, cols);
    for (size_t i = 0; i < s.n && (!noisy || (i < TOP_N && s.v[i].cur > 0)); i++) {
        rtable_cell(t, "%s", s.v[i].key);
        rtable_cell(t, "%zu", s.v[i].cur);
        rtable_cell(t, "%zu", s.v[i].prev);
        rtable_cell(t, "%s", arrow_d((double)s.v[i].cur, (double)s.v[i].prev));
    }
    free(s.v);
}

/* ---- findings ---- */

struct finding {
    int order;
    double sev; /* worse first within its kind */
    char *text, *cur, *prev;
    const char *arrow;
};

/* Kinds of findings, in the order they are listed. */
enum {
    F_HOST = 1,
    F_FULL,
    F_METRIC,
    F_SLA,
    F_P1,
    F_BLOCKED,
    F_LINE,
    F_REG,
    F_CALL,
    F_SLOW,
    F_ABSENT,
    F_LATE,
    F_EARLY,
    F_RULE,
    F_LOG,
    F_FLAP,
    F_DEAD
};

struct findings {
    struct finding *v;
    size_t n, cap;
};

static void find_add(struct findings *f, int order, char *text, const char *cur, const char *prev,
                     const char *arrow)
{
    if (f->n == f->cap) {
        f->cap = f->cap != 0 ? f->cap * 2 : 16;
        f->v = wp_xrealloc(f->v, f->cap * sizeof(*f->v));
    }
    f->v[f->n].order = order;
    /* a line's availability, the days to full and the calls answered: lower is worse; every
     * other: higher */
    f->v[f->n].sev = order == F_LINE || order == F_FULL || order == F_CALL ? -strtod(cur, NULL)
                                                                           : strtod(cur, NULL);
    f->v[f->n].text = text;
    f->v[f->n].cur = wp_xstrdup(cur);
    f->v[f->n].prev = wp_xstrdup(prev);
    f->v[f->n].arrow = arrow;
    f->n++;
}

/* A finding of a seat's attendance: n times this period and, when the seat is known there (prev),
 * pn times in the previous one. */
static void find_seat(struct findings *f, int order, char *text, int n, int prev, int pn)
{
    find_add(f, order, text, num((size_t)n), prev ? num((size_t)pn) : "n/a",
             prev ? arrow_d(n, pn) : "");
}

static int cmp_finding(const void *a, const void *b)
{
    const struct finding *x = a, *y = b;
    if (x->order != y->order) {
        return x->order - y->order;
    }
    if (x->sev != y->sev) {
        return x->sev < y->sev ? 1 : -1;
    }
    return strcmp(x->text, y->text);
}

static const struct rep_host *find_host(const struct rep_stats *s, const char *host)
{
    for (size_t i = 0; i < s->nhosts; i++) {
        if (strcmp(s->hosts[i].host, host) == 0) {
            return &s->hosts[i];
        }
    }
    return NULL;
}

/* The one of the n elements of size bytes at v whose strings at offsets ka and kb are a and b
 * (a host and the name of something on it); NULL when there is none. */
static const void *find_by2(const void *v, size_t n, size_t size, size_t ka, size_t kb,
                            const char *a, const char *b)
{
    for (size_t i = 0; i < n; i++) {
        const char *e = (const char *)v + i * size;
        const char *x = NULL, *y = NULL;
        memcpy(&x, e + ka, sizeof(x));
        memcpy(&y, e + kb, sizeof(y));
        if (strcmp(x, a) == 0 && strcmp(y, b) == 0) {
            return e;
        }
    }
    return NULL;
}

static const struct rep_line *find_line(const struct rep_stats *s, const struct rep_line *l)
{
    return find_by2(s->lines, s->nlines, sizeof(*s->lines), offsetof(struct rep_line, host),
                    offsetof(struct rep_line, object), l->host, l->object);
}

static const struct rep_metric *find_metric(const struct rep_stats *s, const struct rep_metric *m)
{
    return find_by2(s->metrics, s->nmetrics, sizeof(*s->metrics), offsetof(struct rep_metric, host),
                    offsetof(struct rep_metric, metric), m->host, m->metric);
}

static const struct rep_call *find_call(const struct rep_stats *s, const struct rep_call *c)
{
    return find_by2(s->calls, s->ncalls, sizeof(*s->calls), offsetof(struct rep_call, host),
                    offsetof(struct rep_call, target), c->host, c->target);
}

static const struct rep_proc *find_proc(const struct rep_stats *s, const struct rep_proc *r)
{
    return find_by2(s->procs, s->nprocs, sizeof(*s->procs), offsetof(struct rep_proc, host),
                    offsetof(struct rep_proc, name), r->host, r->name);
}

/* A seat's attendance in s (NULL without a schedule): the same host and seat, else the same
 * seat where either host is unknown (a seat the schedule names without a host, with no
 * session in that period). */
static const struct att_seat *find_att(const struct rep_stats *s, const struct att_seat *a)
{
    const struct att_seat *any = NULL;

    for (size_t i = 0; s->att != NULL && i < s->att->nseats; i++) {
        const struct att_seat *b = &s->att->seats[i];
        if (strcmp(b->seat, a->seat) != 0) {
            continue;
        }
        if (strcmp(b->host, a->host) == 0) {
            return b;
        }
        if (any == NULL && (b->host[0] == '\0' || a->host[0] == '\0')) {
            any = b;
        }
    }
    return any;
}

/* "8011 (pbx1)", or "8011" when the host is not known; in Chinese "8011（pbx1）" or "8011 ",
 * so that the text that follows needs no space of its own. */
static const char *seat_name(const struct ctx *c, const struct att_seat *a)
{
    char *b = rep_ring();

    if (a->host[0] == '\0') {
        snprintf(b, REP_FMT_LEN, tr(c, "%s", "%s "), a->seat);
    } else {
        snprintf(b, REP_FMT_LEN, tr(c, "%s (%s)", "%s（%s）"), a->seat, a->host);
    }
    return b;
}

/* The count of key (and rule, for messages) in a previous period's counts; 0 when absent. */
static size_t count_of(const struct rep_count *v, size_t n, const struct rep_count *k)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].key, k->key) == 0 &&
            (k->rule == NULL || (v[i].rule != NULL && strcmp(v[i].rule, k->rule) == 0))) {
            return v[i].n;
        }
    }
    return 0;
}

static const char *sev_name(const struct ctx *c, int sev)
{
    switch (sev) {
    case 3:
        return tr(c, "critical", "严重");
    case 2:
        return tr(c, "error", "错误");
    case 1:
        return tr(c, "warning", "警告");
    default:
        return tr(c, "info", "信息");
    }
}

static const char *secs(double v)
{
    char *b = rep_ring();
    snprintf(b, REP_FMT_LEN, "%.1f", v);
    return b;
}

static const char *metric_name(const struct ctx *c, const char *metric)
{
    char *b = rep_ring();

    if (strcmp(metric, "cpu") == 0) {
        return tr(c, "CPU busy (%)", "CPU 使用率 (%)");
    }
    if (strcmp(metric, "mem") == 0) {
        return tr(c, "memory used (%)", "内存使用率 (%)");
    }
    if (strcmp(metric, "load") == 0) {
        return tr(c, "load average (1 min)", "平均负载（1 分钟）");
    }
    snprintf(b, REP_FMT_LEN, tr(c, "disk %s used (%%)", "磁盘 %s 使用率 (%%)"), metric + 3);
    return b;
}

static size_t breaches(const struct rep_stats *s)
{
    return s->resp[REP_SLA_BREACHED] + s->res[REP_SLA_BREACHED];
}

static void findings(struct ctx *c, const struct rep_stats *cur, const struct rep_stats *prev)
{
    struct findings f;
    const char *cols[4] = {tr(c, "Finding", "发现"), tr(c, "This period", "本期"),
                           tr(c, "Previous", "上期"), tr(c, "Trend", "趋势")};

    memset(&f, 0, sizeof(f));
    for (size_t i = 0; i < cur->nhosts; i++) {
        const struct rep_host *h = &cur->hosts[i];
        const struct rep_host *ph = find_host(prev, h->host);
        int64_t pd = ph != NULL ? ph->down_ms : 0;
        if (h->down_ms > 0) {
            find_add(&f, F_HOST,
                     wp_xasprintf(tr(c, "Host %s unavailable for %s min (availability %s %%)",
                                     "主机 %s 不可用 %s 分钟（可用率 %s %%）"),
                                  h->host, mins(h->down_ms), pct(h->avail_pct)),
                     mins(h->down_ms), mins(pd), arrow_d((double)h->down_ms, (double)pd));
        }
    }
    for (size_t i = 0; i < cur->nmetrics; i++) {
        const struct rep_metric *m = &cur->metrics[i];
        const struct rep_metric *pm = find_metric(prev, m);
        int df = strncmp(m->metric, "df ", 3) == 0;
        if (df && m->full_days >= 0 && m->full_days <= FIND_FULL_DAYS) {
            find_add(&f, F_FULL,
                     wp_xasprintf(tr(c, "%s on %s full in %.1f days (trend of the period)",
                                     "%s：%s 按本期趋势 %.1f 天后写满"),
                                  m->metric + 3, m->host, m->full_days),
                     days(m->full_days),
                     pm != NULL && pm->full_days >= 0 ? days(pm->full_days) : "n/a",
                     pm != NULL && pm->full_days >= 0 ? arrow_d(m->full_days, pm->full_days) : "");
        }
        if ((df || strcmp(m->metric, "cpu") == 0 || strcmp(m->metric, "mem") == 0) &&
            m->p95 >= FIND_METRIC_P95) {
            find_add(&f, F_METRIC,
                     wp_xasprintf(tr(c, "%s on %s: p95 %s", "%s：%s 的 p95 为 %s"),
                                  metric_name(c, m->metric), m->host, pct(m->p95)),
                     pct(m->p95), pm != NULL ? pct(pm->p95) : "n/a",
                     pm != NULL ? arrow_d(m->p95, pm->p95) : "");
        }
    }
    if (breaches(cur) > 0) {
        find_add(&f, F_SLA,
                 wp_xasprintf(tr(c, "SLA breached %zu times (response %zu, resolve %zu)",
                                 "SLA 超时 %zu 次（响应 %zu，解决 %zu）"),
                              breaches(cur), cur->resp[REP_SLA_BREACHED],
                              cur->res[REP_SLA_BREACHED]),
                 num(breaches(cur)), num(breaches(prev)),
                 arrow_d((double)breaches(cur), (double)breaches(prev)));
    }
    if (cur->opened_prio[0] > 0) {
        find_add(&f, F_P1,
                 wp_xasprintf(tr(c, "%zu P1 incidents opened", "新增 P1 事件 %zu 个"),
                              cur->opened_prio[0]),
                 num(cur->opened_prio[0]), num(prev->opened_prio[0]),
                 arrow_d((double)cur->opened_prio[0], (double)prev->opened_prio[0]));
    }
    for (size_t i = 0; i < cur->nlines; i++) {
        const struct rep_line *l = &cur->lines[i];
        const struct rep_line *pl = find_line(prev, l);
        if (l->blocked_n >= FIND_BLOCKED_TIMES) {
            int pn = pl != NULL ? pl->blocked_n : 0;
            find_add(&f, F_BLOCKED,
                     wp_xasprintf(tr(c, "%s (%s) blocked %d times", "%s（%s）阻塞 %d 次"),
                                  l->object, l->host, l->blocked_n),
                     num((size_t)l->blocked_n), num((size_t)pn), arrow_d(l->blocked_n, pn));
        }
        if (l->avail_pct < FIND_LINE_AVAIL) {
            double pa = pl != NULL ? pl->avail_pct : 100.0;
            find_add(&f, F_LINE,
                     wp_xasprintf(tr(c, "%s (%s) available %s %% (%s min not in service)",
                                     "%s（%s）可用率 %s %%（%s 分钟不可服务）"),
                                  l->object, l->host, pct(l->avail_pct), mins(l->bad_ms)),
                     pct(l->avail_pct), pct(pa), arrow_d(l->avail_pct, pa));
        }
    }
    for (size_t i = 0; i < cur->nlines; i++) {
        const struct rep_line *l = &cur->lines[i];
        const struct rep_line *pl = find_line(prev, l);
        int pn = pl != NULL ? pl->reg_lost : 0;
        if (l->reg != 0 && l->reg_lost >= FIND_REG_LOST) {
            find_add(&f, F_REG,
                     wp_xasprintf(
                         tr(c, "%s (%s) lost its registration %d times", "%s（%s）注册丢失 %d 次"),
                         l->object, l->host, l->reg_lost),
                     num((size_t)l->reg_lost), num((size_t)pn), arrow_d(l->reg_lost, pn));
        }
    }
    for (size_t i = 0; i < cur->ncalls; i++) {
        const struct rep_call *k = &cur->calls[i];
        const struct rep_call *pk = find_call(prev, k);
        if (k->calls > 0 && k->success_pct < FIND_CALL_SUCCESS) {
            find_add(&f, F_CALL,
                     wp_xasprintf(tr(c, "Test calls to %s (%s): %s %% answered (%.0f of %zu)",
                                     "%s（%s）测试呼叫接通率 %s %%（%.0f / %zu）"),
                                  k->target, k->host, pct(k->success_pct), k->answered, k->calls),
                     pct(k->success_pct),
                     pk != NULL && pk->calls > 0 ? pct(pk->success_pct) : "n/a",
                     pk != NULL && pk->calls > 0 ? arrow_d(k->success_pct, pk->success_pct) : "");
        }
        if (k->n_answer > 0 && pk != NULL && pk->n_answer > 0 &&
            k->answer_p95 >= pk->answer_p95 * FIND_SLOW_RATIO &&
            k->answer_p95 - pk->answer_p95 >= FIND_SLOW_DELTA_S) {
            find_add(&f, F_SLOW,
                     wp_xasprintf(tr(c, "%s (%s) answer time p95 rose from %.1f s to %.1f s",
                                     "%s（%s）应答时间 p95 由 %.1f 秒升至 %.1f 秒"),
                                  k->target, k->host, pk->answer_p95, k->answer_p95),
                     secs(k->answer_p95), secs(pk->answer_p95),
                     arrow_d(k->answer_p95, pk->answer_p95));
        }
    }
    for (size_t i = 0; cur->att != NULL && i < cur->att->nseats; i++) {
        const struct att_seat *a = &cur->att->seats[i];
        const struct att_seat *pa = find_att(prev, a);
        if (a->absent_days >= FIND_ABSENT_DAYS) {
            find_seat(&f, F_ABSENT,
                      wp_xasprintf(tr(c, "%s absent %d days (of %d working days)",
                                      "%s缺勤 %d 天（应出勤 %d 天）"),
                                   seat_name(c, a), a->absent_days, a->work_days),
                      a->absent_days, pa != NULL, pa != NULL ? pa->absent_days : 0);
        }
        if (a->late_n >= FIND_LATE_TIMES) {
            find_seat(&f, F_LATE,
                      wp_xasprintf(tr(c, "%s late %d times (%" PRId64 " min)",
                                      "%s迟到 %d 次（共 %" PRId64 " 分钟）"),
                                   seat_name(c, a), a->late_n, a->late_min),
                      a->late_n, pa != NULL, pa != NULL ? pa->late_n : 0);
        }
        if (a->early_n >= FIND_EARLY_TIMES) {
            find_seat(&f, F_EARLY,
                      wp_xasprintf(tr(c, "%s left early %d times (%" PRId64 " min)",
                                      "%s早退 %d 次（共 %" PRId64 " 分钟）"),
                                   seat_name(c, a), a->early_n, a->early_min),
                      a->early_n, pa != NULL, pa != NULL ? pa->early_n : 0);
        }
    }
    for (size_t i = 0; i < cur->nlog_rules; i++) {
        const struct rep_count *r = &cur->log_rules[i];
        size_t pn = count_of(prev->log_rules, prev->nlog_rules, r);
        if (r->sev >= 3) {
            find_add(&f, F_LOG,
                     wp_xasprintf(tr(c, "Log rule %s matched %zu times (critical)",
                                     "日志规则 %s 命中 %zu 次（严重）"),
                                  r->key, r->n),
                     num(r->n), num(pn), arrow_d((double)r->n, (double)pn));
        }
    }
    {
        struct kcs s;
        memset(&s, 0, sizeof(s));
        for (int w = 0; w < 2; w++) {
            const struct rep_stats *st = w == 0 ? cur : prev;
            for (size_t i = 0; i < st->ninc; i++) {
                if (st->inc[i].opened_in) {
                    kc_add(&s, inc_key(&st->inc[i], 2), w, 1);
                }
            }
        }
        for (size_t i = 0; i < s.n; i++) {
            if (s.v[i].cur >= FIND_NOISY_RULE) {
                find_add(
                    &f, F_RULE,
                    wp_xasprintf(tr(c, "Rule %s opened %zu incidents", "规则 %s 产生 %zu 个事件"),
                                 s.v[i].key, s.v[i].cur),
                    num(s.v[i].cur), num(s.v[i].prev),
                    arrow_d((double)s.v[i].cur, (double)s.v[i].prev));
            }
        }
        free(s.v);
    }
    if (cur->flapping > 0) {
        find_add(&f, F_FLAP,
                 wp_xasprintf(tr(c, "%zu incidents flapping", "%zu 个事件抖动"), cur->flapping),
                 num(cur->flapping), num(prev->flapping),
                 arrow_d((double)cur->flapping, (double)prev->flapping));
    }
    if (cur->ndead > 0) {
        find_add(&f, F_DEAD,
                 wp_xasprintf(tr(c, "%zu notifications could not be delivered (dead letters)",
                                 "%zu 条通知投递失败（死信）"),
                              cur->ndead),
                 num(cur->ndead), num(prev->ndead),
                 arrow_d((double)cur->ndead, (double)prev->ndead));
    }
    if (f.n > 1) {
        qsort(f.v, f.n, sizeof(*f.v), cmp_finding);
    }
    struct rtable *t = rdoc_table(c->d, "findings", "", 4, cols);
    size_t shown = 0;
    for (size_t i = 0; i < f.n; i++) {
        shown = i > 0 && f.v[i].order == f.v[i - 1].order ? shown + 1 : 1;
        if (shown <= FIND_MAX_PER_KIND) {
            rtable_cell(t, "%s", f.v[i].text);
            rtable_cell(t, "%s", f.v[i].cur);
            rtable_cell(t, "%s", f.v[i].prev);
            rtable_cell(t, "%s", f.v[i].arrow);
        } else if (i + 1 == f.n || f.v[i + 1].order != f.v[i].order) {
            /* the worst ones are listed; the tables below have them all */
            rtable_cell(t,
                        tr(c, "... and %zu more like these (see the tables below)",
                           "……另有 %zu 项同类问题（见下方各表）"),
                        shown - FIND_MAX_PER_KIND);
            rtable_cell(t, "%s", "");
            rtable_cell(t, "%s", "");
            rtable_cell(t, "%s", "");
        }
    }
    for (size_t i = 0; i < f.n; i++) {
        free(f.v[i].text);
        free(f.v[i].cur);
        free(f.v[i].prev);
    }
    free(f.v);
}

/* ---- sections ---- */

static size_t blocked_total(const struct rep_stats *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nlines; i++) {
        n += (size_t)s->lines[i].blocked_n;
    }
    return n;
}

static void summary_row(struct rtable *t, const char *name, const char *cur, const char *prev,
                        double a, double b)
{
    rtable_cell(t, "%s", name);
    rtable_cell(t, "%s", cur);
    rtable_cell(t, "%s", prev);
    rtable_cell(t, "%s", arrow_d(a, b));
}

static void summary(struct ctx *c, const struct rep_stats *cur, const struct rep_stats *prev)
{
    const char *cols[4] = {tr(c, "Measure", "指标"), tr(c, "This period", "本期"),
                           tr(c, "Previous", "上期"), tr(c, "Trend", "趋势")};
    struct rtable *t = rdoc_table(c->d, "summary", "", 4, cols);

    summary_row(t, tr(c, "Host availability, mean (%)", "主机平均可用率 (%)"), pct(cur->avail_pct),
                pct(prev->avail_pct), cur->avail_pct, prev->avail_pct);
    summary_row(t, tr(c, "Incidents opened", "新增事件"), num(cur->opened), num(prev->opened),
                (double)cur->opened, (double)prev->opened);
    for (int p = 0; p < 4; p++) {
        char name[64];
        snprintf(name, sizeof(name), tr(c, "  of which %s", "  其中 %s"), prio_name(p + 1));
        summary_row(t, name, num(cur->opened_prio[p]), num(prev->opened_prio[p]),
                    (double)cur->opened_prio[p], (double)prev->opened_prio[p]);
    }
    summary_row(t, tr(c, "Incidents resolved", "已解决事件"), num(cur->resolved),
                num(prev->resolved), (double)cur->resolved, (double)prev->resolved);
    for (int w = 0; w < 2; w++) {
        const struct rep_dist *a = w == 0 ? &cur->mtta : &cur->mttr;
        const struct rep_dist *b = w == 0 ? &prev->mtta : &prev->mttr;
        rtable_cell(t, "%s",
                    w == 0 ? tr(c, "MTTA median (min)", "确认时间中位数（分钟）")
                           : tr(c, "MTTR median (min)", "修复时间中位数（分钟）"));
        rtable_cell(t, "%s", dmins(a, a->median_ms));
        rtable_cell(t, "%s", dmins(b, b->median_ms));
        rtable_cell(t, "%s",
                    a->n > 0 && b->n > 0 ? arrow_d((double)a->median_ms, (double)b->median_ms)
                                         : "");
    }
    summary_row(t, tr(c, "SLA met (response + resolve)", "SLA 达标（响应+解决）"),
                num(cur->resp[REP_SLA_MET] + cur->res[REP_SLA_MET]),
                num(prev->resp[REP_SLA_MET] + prev->res[REP_SLA_MET]),
                (double)(cur->resp[REP_SLA_MET] + cur->res[REP_SLA_MET]),
                (double)(prev->resp[REP_SLA_MET] + prev->res[REP_SLA_MET]));
    summary_row(t, tr(c, "SLA breached (response + resolve)", "SLA 超时（响应+解决）"),
                num(breaches(cur)), num(breaches(prev)), (double)breaches(cur),
                (double)breaches(prev));
    summary_row(t, tr(c, "Tickets created or linked", "已建工单"), num(cur->tickets),
                num(prev->tickets), (double)cur->tickets, (double)prev->tickets);
    summary_row(t, tr(c, "Escalation steps", "升级次数"), num(cur->escalations),
                num(prev->escalations), (double)cur->escalations, (double)prev->escalations);
    summary_row(t, tr(c, "Flapping incidents", "抖动事件"), num(cur->flapping), num(prev->flapping),
                (double)cur->flapping, (double)prev->flapping);
    summary_row(t, tr(c, "Line blocked events", "线路阻塞次数"), num(blocked_total(cur)),
                num(blocked_total(prev)), (double)blocked_total(cur), (double)blocked_total(prev));
    summary_row(t, tr(c, "Dead-letter notifications", "死信通知"), num(cur->ndead),
                num(prev->ndead), (double)cur->ndead, (double)prev->ndead);
    summary_row(t, tr(c, "Registration losses", "注册丢失次数"), num(cur->reg_lost),
                num(prev->reg_lost), (double)cur->reg_lost, (double)prev->reg_lost);
    summary_row(t, tr(c, "Log events", "日志事件"), num(cur->nlog), num(prev->nlog),
                (double)cur->nlog, (double)prev->nlog);
    summary_row(t, tr(c, "  of which critical", "  其中严重"), num(cur->log_sev[3]),
                num(prev->log_sev[3]), (double)cur->log_sev[3], (double)prev->log_sev[3]);
}

/* Why deadline k (0 response, 1 resolve) of r was breached, as of the period end. */
static const char *breach_reason(const struct ctx *c, const struct rep_inc *r, int k)
{
    if (k == 0) {
        if (r->acked_ms == 0 && r->resolved_ms == 0) {
            return r->status == INC_CLOSED ? tr(c, "closed without acknowledgement", "未确认即关闭")
                                           : tr(c, "not acknowledged", "未确认");
        }
        if (r->acked_ms == 0) {
            return tr(c, "resolved late, never acknowledged", "未确认，解决超时");
        }
        return tr(c, "acknowledged late", "确认超时");
    }
    if (r->resolved_ms == 0) {
        return r->status == INC_ACKNOWLEDGED ? tr(c, "acknowledged, not resolved", "已确认，未解决")
                                             : tr(c, "not resolved", "未解决");
    }
    return r->reopens_in > 0 ? tr(c, "resolved late (reopened)", "解决超时（曾重开）")
                             : tr(c, "resolved late", "解决超时");
}

static void times_and_sla(struct ctx *c, const struct rep_stats *cur, const struct rep_stats *prev)
{
    const char *tcols[6] = {tr(c, "Measure", "指标"),
                            tr(c, "Incidents", "事件数"),
                            tr(c, "Median (min)", "中位数（分钟）"),
                            tr(c, "p90 (min)", "p90（分钟）"),
                            tr(c, "Previous median (min)", "上期中位数（分钟）"),
                            tr(c, "Previous p90 (min)", "上期 p90（分钟）")};
    struct rtable *t =
        rdoc_table(c->d, "response_times", tr(c, "MTTA and MTTR", "MTTA 与 MTTR"), 6, tcols);
    for (int w = 0; w < 2; w++) {
        const struct rep_dist *a = w == 0 ? &cur->mtta : &cur->mttr;
        const struct rep_dist *b = w == 0 ? &prev->mtta : &prev->mttr;
        rtable_cell(t, "%s", w == 0 ? "MTTA" : "MTTR");
        rtable_cell(t, "%zu", a->n);
        rtable_cell(t, "%s", dmins(a, a->median_ms));
        rtable_cell(t, "%s", dmins(a, a->p90_ms));
        rtable_cell(t, "%s", dmins(b, b->median_ms));
        rtable_cell(t, "%s", dmins(b, b->p90_ms));
    }
    rdoc_para(
        c->d, "%s",
        tr(c,
           "MTTA (time to acknowledge): from an incident's opening to its first "
           "acknowledgement, over the incidents opened in the period and acknowledged by "
           "its end. MTTR (time to resolve): from opening to resolution (the last one, if it "
           "was reopened), over the incidents opened in the period and resolved by its end. "
           "Median: the middle value (the mean of the two middle values for an even count); "
           "p90: the value 90 % of the incidents do not exceed (nearest rank).",
           "MTTA（确认时间）：从事件产生到首次确认的时间，统计本期产生且在期末前已确认的事件。"
           "MTTR（修复时间）：从事件产生到解决（重开过的以最后一次解决为准）的时间，统计本期产生"
           "且在期末前已解决的事件。中位数：居中的值（偶数个时取中间两个值的平均）；"
           "p90：90 % 的事件不超过的值（最近秩法）。"));

    const char *scols[7] = {tr(c, "Priority", "级别"),
                            tr(c, "Response met", "响应达标"),
                            tr(c, "Response breached", "响应超时"),
                            tr(c, "Response pending", "响应未到期"),
                            tr(c, "Resolve met", "解决达标"),
                            tr(c, "Resolve breached", "解决超时"),
                            tr(c, "Resolve pending", "解决未到期")};
    size_t v[4][6];
    memset(v, 0, sizeof(v));
    for (size_t i = 0; i < cur->ninc; i++) {
        const struct rep_inc *r = &cur->inc[i];
        if (r->opened_in) {
            size_t *row = v[r->priority - 1];
            row[r->response == REP_SLA_MET ? 0 : r->response == REP_SLA_BREACHED ? 1 : 2]++;
            row[r->resolve == REP_SLA_MET ? 3 : r->resolve == REP_SLA_BREACHED ? 4 : 5]++;
        }
    }
    t = rdoc_table(c->d, "sla", tr(c, "Service levels", "服务级别 (SLA)"), 7, scols);
    for (int p = 0; p < 4; p++) {
        rtable_cell(t, "%s", prio_name(p + 1));
        for (int k = 0; k < 6; k++) {
            rtable_cell(t, "%zu", v[p][k]);
        }
    }
    rdoc_para(
        c->d, "%s",
        tr(c,
           "Response is met when the incident was acknowledged (or resolved) by its response "
           "deadline; resolve is met when it was resolved by its resolve deadline. A deadline "
           "after the period end with nothing done yet is pending. Incidents opened in the "
           "period are counted.",
           "响应达标：在响应期限前确认（或解决）；解决达标：在解决期限前解决。期限在期末之后且尚未"
           "处理的计为未到期。统计本期产生的事件。"));

    const char *bcols[9] = {
        tr(c, "Incident", "事件"),    tr(c, "Priority", "级别"),           tr(c, "Host", "主机"),
        tr(c, "Rule", "规则"),        tr(c, "Deadline", "期限"),           tr(c, "Due", "到期时间"),
        tr(c, "Done at", "完成时间"), tr(c, "Late (min)", "超时（分钟）"), tr(c, "Reason", "原因")};
    t = rdoc_table(c->d, "sla_breaches", tr(c, "SLA breaches", "SLA 超时事件"), 9, bcols);
    for (size_t i = 0; i < cur->ninc; i++) {
        const struct rep_inc *r = &cur->inc[i];
        for (int k = 0; k < 2 && r->opened_in; k++) {
            enum rep_sla s = k == 0 ? r->response : r->resolve;
            if (s != REP_SLA_BREACHED) {
                continue;
            }
            int64_t due = k == 0 ? r->response_due_ms : r->resolve_due_ms;
            int64_t done = k == 0 ? r->acked_ms : r->resolved_ms;
            if (k == 0 && r->resolved_ms != 0 && (done == 0 || r->resolved_ms < done)) {
                done = r->resolved_ms;
            }
            int64_t end = done != 0 ? done : cur->p.to_ms;
            rtable_cell(t, "%" PRId64, r->id);
            rtable_cell(t, "%s", prio_name(r->priority));
            rtable_cell(t, "%s", r->host);
            rtable_cell(t, "%s", r->rule);
            rtable_cell(t, "%s", k == 0 ? tr(c, "response", "响应") : tr(c, "resolve", "解决"));
            rtable_cell(t, "%s", tstr(due));
            rtable_cell(t, "%s", done != 0 ? tstr(done) : tr(c, "not by period end", "期末未完成"));
            rtable_cell(t, "%s", mins(end - due));
            rtable_cell(t, "%s", breach_reason(c, r, k));
        }
    }
}

static void incident_lists(struct ctx *c, const struct rep_stats *cur)
{
    const char *ecols[7] = {tr(c, "Incident", "事件"),  tr(c, "Priority", "级别"),
                            tr(c, "Host", "主机"),      tr(c, "Rule", "规则"),
                            tr(c, "Steps", "升级步数"), tr(c, "Level at end", "期末级别"),
                            tr(c, "Summary", "摘要")};
    struct rtable *t = rdoc_table(c->d, "escalations", tr(c, "Escalations", "升级"), 7, ecols);
    for (size_t i = 0; i < cur->ninc; i++) {
        const struct rep_inc *r = &cur->inc[i];
        if (r->escalations_in > 0) {
            rtable_cell(t, "%" PRId64, r->id);
            rtable_cell(t, "%s", prio_name(r->priority));
            rtable_cell(t, "%s", r->host);
            rtable_cell(t, "%s", r->rule);
            rtable_cell(t, "%d", r->escalations_in);
            rtable_cell(t, "%d", r->max_level);
            rtable_cell(t, "%s", r->summary);
        }
    }
    const char *fcols[5] = {tr(c, "Incident", "事件"), tr(c, "Host", "主机"), tr(c, "Rule", "规则"),
                            tr(c, "Opened", "产生时间"), tr(c, "Summary", "摘要")};
    t = rdoc_table(c->d, "flapping", tr(c, "Flapping", "抖动"), 5, fcols);
    for (size_t i = 0; i < cur->ninc; i++) {
        const struct rep_inc *r = &cur->inc[i];
        if (r->flapping_in) {
            rtable_cell(t, "%" PRId64, r->id);
            rtable_cell(t, "%s", r->host);
            rtable_cell(t, "%s", r->rule);
            rtable_cell(t, "%s", tstr(r->opened_ms));
            rtable_cell(t, "%s", r->summary);
        }
    }
    const char *dcols[8] = {tr(c, "Message", "消息"),         tr(c, "Created", "创建时间"),
                            tr(c, "Destination", "目的地"),   tr(c, "Incident", "事件"),
                            tr(c, "Event", "事件类型"),       tr(c, "Attempts", "尝试次数"),
                            tr(c, "Last code", "最后状态码"), tr(c, "Last error", "最后错误")};
    t = rdoc_table(c->d, "dead_letters", tr(c, "Dead-letter notifications", "死信通知"), 8, dcols);
    for (size_t i = 0; i < cur->ndead; i++) {
        const struct rep_dead *d = &cur->dead[i];
        rtable_cell(t, "%" PRId64, d->id);
        rtable_cell(t, "%s", tstr(d->created_ms));
        rtable_cell(t, "%s", d->dest);
        rtable_cell(t, "%" PRId64, d->incident_id);
        rtable_cell(t, "%s", d->event);
        rtable_cell(t, "%d", d->attempts);
        rtable_cell(t, "%d", d->code);
        rtable_cell(t, "%s", d->error);
    }
    const char *kcols[6] = {tr(c, "Incident", "事件"),   tr(c, "Priority", "级别"),
                            tr(c, "Host", "主机"),       tr(c, "Rule", "规则"),
                            tr(c, "Opened", "产生时间"), tr(c, "Tickets", "工单")};
    t = rdoc_table(c->d, "tickets", tr(c, "Tickets created or linked", "已建工单"), 6, kcols);
    for (size_t i = 0; i < cur->ninc; i++) {
        const struct rep_inc *r = &cur->inc[i];
        if (r->opened_in && r->tickets[0] != '\0') {
            rtable_cell(t, "%" PRId64, r->id);
            rtable_cell(t, "%s", prio_name(r->priority));
            rtable_cell(t, "%s", r->host);
            rtable_cell(t, "%s", r->rule);
            rtable_cell(t, "%s", tstr(r->opened_ms));
            rtable_cell(t, "%s", r->tickets);
        }
    }
}

/* librrd's SVG through cairo names its elements with process-wide counters (surface97) and
 * the same glyph ids in every graph: number the surfaces from 1 and prefix every id and
 * reference with the graph's number, so that a page with many graphs keeps each one's
 * glyphs and the bytes do not depend on what was drawn before. */
static char *svg_fix(const char *in, size_t len, size_t gi, size_t *outlen)
{
    static const char *const refs[] = {" id=\"", "href=\"#", "url(#"};
    long seen[256];
    size_t nseen = 0, n = 0, cap = len + len / 4 + 64;
    char *o = wp_xmalloc(cap);

    for (size_t i = 0; i < len;) {
        if (n + 64 > cap) {
            cap *= 2;
            o = wp_xrealloc(o, cap);
        }
        int done = 0;
        for (size_t r = 0; r < 3 && !done; r++) {
            size_t rl = strlen(refs[r]);
            if (len - i >= rl && memcmp(in + i, refs[r], rl) == 0) {
                memcpy(o + n, refs[r], rl);
                n += rl;
                n += (size_t)snprintf(o + n, cap - n, "g%zu-", gi);
                i += rl;
                done = 1;
            }
        }
        if (!done && len - i > 7 && memcmp(in + i, "surface", 7) == 0 && in[i + 7] >= '0' &&
            in[i + 7] <= '9') {
            long v = 0;
            size_t k = 0;
            i += 7;
            while (i < len && in[i] >= '0' && in[i] <= '9') {
                v = v * 10 + (in[i++] - '0');
            }
            while (k < nseen && seen[k] != v) {
                k++;
            }
            if (k == nseen && nseen < 256) {
                seen[nseen++] = v;
            }
            n += (size_t)snprintf(o + n, cap - n, "surface%zu", k + 1);
            done = 1;
        }
        if (!done) {
            o[n++] = in[i++];
        }
    }
    *outlen = n;
    return o;
}

static int cmp_graph(const void *a, const void *b)
{
    const struct rep_metric *x = *(const struct rep_metric *const *)a;
    const struct rep_metric *y = *(const struct rep_metric *const *)b;
    if (x->p95 != y->p95) {
        return x->p95 < y->p95 ? 1 : -1;
    }
    int r = strcmp(x->host, y->host);
    return r != 0 ? r : strcmp(x->metric, y->metric);
}

/* Graphs of the busiest CPU, memory and file system metrics (by p95), as SVG for the HTML
 * and PNG for the PDF. */
static void graphs(struct ctx *c, const struct rep_stats *cur)
{
    const struct rep_metric **v = wp_xcalloc(cur->nmetrics + 1, sizeof(*v));
    size_t n = 0;

    for (size_t i = 0; i < cur->nmetrics; i++) {
        if (strcmp(cur->metrics[i].metric, "load") != 0) {
            v[n++] = &cur->metrics[i];
        }
    }
    if (n > 1) {
        qsort(v, n, sizeof(*v), cmp_graph);
    }
    if (n > 0) {
        rdoc_heading(c->d, 3, tr(c, "Graphs (highest p95 first)", "图表（按 p95 从高到低）"));
    }
    for (size_t i = 0; i < n && i < GRAPHS_MAX; i++) {
        char title[512];
        size_t sl = 0, pl = 0;
        snprintf(title, sizeof(title), "%s: %s", v[i]->host, metric_name(c, v[i]->metric));
        char *svg = rep_metric_graph(v[i], &cur->p, "SVG", title, &sl);
        void *png = rep_metric_graph(v[i], &cur->p, "PNG", title, &pl);
        if (svg != NULL) {
            size_t fl = 0;
            char *fixed = svg_fix(svg, sl, i + 1, &fl);
            free(svg);
            svg = fixed;
            sl = fl;
        }
        if (svg != NULL || png != NULL) {
            rdoc_image(c->d, svg, sl, png, pl);
        }
        free(svg);
        free(png);
    }
    free(v);
}

static const char *mib(double bytes)
{
    char *b = rep_ring();
    snprintf(b, REP_FMT_LEN, "%.1f", bytes / 1048576.0);
    return b;
}

struct procrank {
    const struct rep_proc *p;
    double v;
};

static int cmp_procrank(const void *a, const void *b)
{
    const struct procrank *x = a, *y = b;
    if (x->v != y->v) {
        return x->v < y->v ? 1 : -1;
    }
    int r = strcmp(x->p->host, y->p->host);
    return r != 0 ? r : strcmp(x->p->name, y->p->name);
}

/* The processes using the most CPU and the most memory (average over the period). */
static void procs_tables(struct ctx *c, const struct rep_stats *cur, const struct rep_stats *prev)
{
    struct procrank *v = wp_xcalloc(cur->nprocs + 1, sizeof(*v));

    for (int w = 0; w < 2; w++) {
        const char *cols[8] = {tr(c, "Host", "主机"),
                               tr(c, "Process", "进程"),
                               tr(c, "CPU average (%)", "CPU 平均 (%)"),
                               tr(c, "CPU peak (%)", "CPU 峰值 (%)"),
                               tr(c, "Memory average (MiB)", "内存平均 (MiB)"),
                               tr(c, "Memory peak (MiB)", "内存峰值 (MiB)"),
                               w == 0
                                   ? tr(c, "Previous CPU average (%)", "上期 CPU 平均 (%)")
                                   : tr(c, "Previous memory average (MiB)", "上期内存平均 (MiB)"),
                               tr(c, "Trend", "趋势")};
        for (size_t i = 0; i < cur->nprocs; i++) {
            v[i].p = &cur->procs[i];
            v[i].v = w == 0 ? cur->procs[i].cpu_avg : cur->procs[i].mem_avg;
        }
        if (cur->nprocs > 1) {
            qsort(v, cur->nprocs, sizeof(*v), cmp_procrank);
        }
        struct rtable *t =
            rdoc_table(c->d, w == 0 ? "top_processes_cpu" : "top_processes_memory",
                       w == 0 ? tr(c, "Top processes by CPU", "CPU 占用最高的进程")
                              : tr(c, "Top processes by memory", "内存占用最高的进程"),
                       8, cols);
        for (size_t i = 0; i < cur->nprocs && i < TOP_PROCS; i++) {
            const struct rep_proc *r = v[i].p;
            const struct rep_proc *pr = find_proc(prev, r);
            rtable_cell(t, "%s", r->host);
            rtable_cell(t, "%s", r->name);
            rtable_cell(t, "%s", pct(r->cpu_avg));
            rtable_cell(t, "%s", pct(r->cpu_peak));
            rtable_cell(t, "%s", mib(r->mem_avg));
            rtable_cell(t, "%s", mib(r->mem_peak));
            if (pr == NULL) {
                rtable_cell(t, "%s", "n/a");
                rtable_cell(t, "%s", "");
            } else if (w == 0) {
                rtable_cell(t, "%s", pct(pr->cpu_avg));
                rtable_cell(t, "%s", arrow_d(r->cpu_avg, pr->cpu_avg));
            } else {
                rtable_cell(t, "%s", mib(pr->mem_avg));
                rtable_cell(t, "%s", arrow_d(r->mem_avg / 1048576.0, pr->mem_avg / 1048576.0));
            }
        }
    }
    free(v);
    rdoc_para(
        c->d, "%s",
        tr(c,
           "From the proc probe's series (one per host and process match): CPU is cpu_pct, in "
           "% of one core (200 % is two cores busy), memory the resident set (rss_bytes) of "
           "the matched processes. Average and peak are over the same archive rows as the host "
           "metrics (the peak is the highest row average). The 20 highest averages of all "
           "hosts are listed.",
           "来自 proc 探针的序列（每台主机每个进程匹配一条）：CPU 为 cpu_pct，单位为一个核心的 %"
           "（200 % 即两个核心满载）；内存为匹配进程的常驻内存（rss_bytes）。平均值和峰值基于与主机"
           "指标相同的归档数据行（峰值为行平均值中的最大值）。列出所有主机中平均值最高的 20 个。"));
}

static void hosts_section(struct ctx *c, const struct rep_stats *cur, const struct rep_stats *prev)
{
    const char *cols[7] = {tr(c, "Host", "主机"),
                           tr(c, "Silences", "失联次数"),
                           tr(c, "Unplanned down (min)", "计划外中断（分钟）"),
                           tr(c, "Planned maintenance (min)", "计划维护（分钟）"),
                           tr(c, "Availability (%)", "可用率 (%)"),
                           tr(c, "Previous (%)", "上期 (%)"),
                           tr(c, "Trend", "趋势")};
    struct rtable *t =
        rdoc_table(c->d, "host_availability", tr(c, "Host availability", "主机可用率"), 7, cols);
    for (size_t i = 0; i < cur->nhosts; i++) {
        const struct rep_host *h = &cur->hosts[i];
        const struct rep_host *ph = find_host(prev, h->host);
        double pa = ph != NULL ? ph->avail_pct : 100.0;
        rtable_cell(t, "%s", h->host);
        rtable_cell(t, "%d", h->silences);
        rtable_cell(t, "%s", mins(h->down_ms));
        rtable_cell(t, "%s", mins(h->planned_ms));
        rtable_cell(t, "%s", pct(h->avail_pct));
        rtable_cell(t, "%s", pct(pa));
        rtable_cell(t, "%s", arrow_d(h->avail_pct, pa));
    }
    rdoc_para(
        c->d, "%s",
        tr(c,
           "Availability = (period - planned - unplanned down) / (period - planned). Down "
           "time is the time a host-silence incident (rule host_silent) was open, clipped to "
           "the period; it starts when the incident opened, so the rule's no-data delay (2 "
           "min by default) before it is not counted. Planned is the part of it while the "
           "incident was suppressed by a maintenance window. The report cannot tell a host "
           "that was down from one whose agent or network path failed, nor a planned "
           "shutdown outside a configured maintenance window.",
           "可用率 = （周期 − 计划维护 − 计划外中断）/（周期 − 计划维护）。中断时间为主机失联事件"
           "（规则 host_silent）处于打开状态的时间（截取到本期）；从事件产生时起算，规则的无数据"
           "等待时间（默认 2 分钟）不计入。计划维护为其中因维护窗口被抑制的部分。报告无法区分主机"
           "宕机与代理或网络故障，也无法识别未配置维护窗口的计划停机。"));
    const char *mcols[8] = {tr(c, "Host", "主机"),      tr(c, "Metric", "指标"),
                            tr(c, "Average", "平均值"), tr(c, "p95", "p95"),
                            tr(c, "Peak", "峰值"),      tr(c, "Previous average", "上期平均值"),
                            tr(c, "Trend", "趋势"),     tr(c, "Full in (days)", "预计写满（天）")};
    t = rdoc_table(c->d, "host_metrics", tr(c, "Host metrics", "主机指标"), 8, mcols);
    for (size_t i = 0; i < cur->nmetrics; i++) {
        const struct rep_metric *m = &cur->metrics[i];
        const struct rep_metric *pm = find_metric(prev, m);
        rtable_cell(t, "%s", m->host);
        rtable_cell(t, "%s", metric_name(c, m->metric));
        rtable_cell(t, "%.2f", m->avg);
        rtable_cell(t, "%.2f", m->p95);
        rtable_cell(t, "%.2f", m->peak);
        rtable_cell(t, "%s", pm != NULL ? pct(pm->avg) : "n/a");
        rtable_cell(t, "%s", pm != NULL ? arrow_d(m->avg, pm->avg) : "");
        rtable_cell(t, "%s", m->full_days >= 0 ? days(m->full_days) : "");
    }
    rdoc_para(
        c->d, "%s",
        tr(c,
           "From the RRD files: CPU busy % (100 - idle of cpu total), memory used % (used / "
           "total), load average (1 min), file system used % per mount. Average, p95 "
           "(nearest rank) and peak are over the rows of the finest archive that covers the "
           "period (5-minute averages for a week, hourly for a month by default), so the "
           "peak is the highest such average, not the highest sample. Full in: for a file "
           "system, the days after the period end until the least-squares trend of the "
           "period reaches 100 % (empty when it is not rising).",
           "来自 RRD 文件：CPU 使用率 %（100 − cpu total 的 idle）、内存使用率 %（used / "
           "total）、1 分钟平均负载、各挂载点文件系统使用率 %。平均值、p95（最近秩法）和峰值"
           "基于覆盖本期的最细归档的数据行（默认一周为 5 分钟平均值，一月为 1 小时平均值），因此"
           "峰值是这些平均值中的最大值，而非单个采样的最大值。预计写满：文件系统按本期最小二乘趋势"
           "，"
           "从期末起到达 100 % 的天数（不增长时为空）。"));
    procs_tables(c, cur, prev);
    graphs(c, cur);
}

static const char *reg_source(int reg)
{
    return reg == 1 ? "kamreg" : reg == 2 ? "sipping" : "";
}

static void reg_calls(struct ctx *c, const struct rep_stats *cur, const struct rep_stats *prev)
{
    const char *rcols[7] = {tr(c, "Host", "主机"),
                            tr(c, "Extension", "分机"),
                            tr(c, "Source", "来源"),
                            tr(c, "Registration lost (times)", "注册丢失（次）"),
                            tr(c, "Previous", "上期"),
                            tr(c, "Trend", "趋势"),
                            tr(c, "Unavailable (min)", "不可用（分钟）")};
    struct rtable *t =
        rdoc_table(c->d, "registration_losses", tr(c, "Registration losses", "注册丢失"), 7, rcols);
    for (size_t i = 0; i < cur->nlines; i++) {
        const struct rep_line *l = &cur->lines[i];
        const struct rep_line *pl = find_line(prev, l);
        int pn = pl != NULL ? pl->reg_lost : 0;
        if (l->reg == 0 || (l->reg_lost == 0 && pn == 0)) {
            continue;
        }
        rtable_cell(t, "%s", l->host);
        rtable_cell(t, "%s", l->object);
        rtable_cell(t, "%s", reg_source(l->reg));
        rtable_cell(t, "%d", l->reg_lost);
        rtable_cell(t, "%d", pn);
        rtable_cell(t, "%s", arrow_d(l->reg_lost, pn));
        rtable_cell(t, "%s", mins(l->state_ms[5]));
    }
    rdoc_para(
        c->d, "%s",
        tr(c,
           "A registration is lost when an extension watched by the kamreg probe (its "
           "registration expired or is gone from the registrar) or a target of the sipping "
           "probe (no answer to OPTIONS) changes into unavailable from another known state "
           "within the period; the registrar being unreachable (unknown) in between does not "
           "count as a recovery. kamreg sees a lapse at its first poll after the Expires ran "
           "out.",
           "注册丢失：kamreg 探针监视的分机（注册过期或已从注册服务器消失）或 sipping 探针的目标"
           "（OPTIONS 无应答）在本期内从其他已知状态变为不可用（unavailable）；其间注册服务器"
           "无法访问（unknown）不算恢复。kamreg 在注册有效期过后的第一次轮询时发现失效。"));

    const char *ccols[11] = {tr(c, "Host", "主机"),
                             tr(c, "Target", "目标"),
                             tr(c, "Calls", "呼叫数"),
                             tr(c, "Answered (%)", "接通率 (%)"),
                             tr(c, "Previous (%)", "上期 (%)"),
                             tr(c, "Answer p50 (s)", "应答 p50（秒）"),
                             tr(c, "Answer p95 (s)", "应答 p95（秒）"),
                             tr(c, "Previous p95 (s)", "上期 p95（秒）"),
                             tr(c, "Trend", "趋势"),
                             tr(c, "Answer max (s)", "应答最大（秒）"),
                             tr(c, "Row (s)", "数据行（秒）")};
    t = rdoc_table(c->d, "test_calls", tr(c, "Hotline test calls", "热线测试呼叫"), 11, ccols);
    for (size_t i = 0; i < cur->ncalls; i++) {
        const struct rep_call *k = &cur->calls[i];
        const struct rep_call *pk = find_call(prev, k);
        int pp95 = pk != NULL && pk->n_answer > 0;
        rtable_cell(t, "%s", k->host);
        rtable_cell(t, "%s", k->target);
        rtable_cell(t, "%zu", k->calls);
        rtable_cell(t, "%s", k->calls > 0 ? pct(k->success_pct) : "n/a");
        rtable_cell(t, "%s", pk != NULL && pk->calls > 0 ? pct(pk->success_pct) : "n/a");
        rtable_cell(t, "%s", k->n_answer > 0 ? secs(k->answer_p50) : "n/a");
        rtable_cell(t, "%s", k->n_answer > 0 ? secs(k->answer_p95) : "n/a");
        rtable_cell(t, "%s", pp95 ? secs(pk->answer_p95) : "n/a");
        rtable_cell(t, "%s", pp95 && k->n_answer > 0 ? arrow_d(k->answer_p95, pk->answer_p95) : "");
        rtable_cell(t, "%s", k->n_answer > 0 ? secs(k->answer_max) : "n/a");
        rtable_cell(t, "%u", (unsigned)k->step_s);
    }
    rdoc_para(
        c->d, "%s",
        tr(c,
           "From the sipcall probe's series, at the resolution they are stored at: the rows "
           "of the finest archive that covers the period (Row: its length in seconds) with a "
           "value. Calls: rows with a known outcome (answered 1 or 0); answered: their mean. "
           "Answer p50 / p95: nearest rank over the rows' answer_s (INVITE to 200 OK). When a "
           "row is as long as the call interval each row is one call; when it is longer (a "
           "month, with hourly rows) a row is the mean of the calls in it, so the calls "
           "count rows and the percentiles are of those means (a single slow call is "
           "smoothed).",
           "来自 sipcall 探针的序列，按其存储精度：覆盖本期的最细归档中有值的数据行（数据行：每行"
           "的秒数）。呼叫数：结果已知（answered 为 1 或 0）的行数；接通率：其平均值。应答 p50 / "
           "p95：各行 answer_s（INVITE 到 200 OK）的最近秩百分位。每行时长等于呼叫间隔时每行即一次"
           "呼叫；更长时（如月报的小时行）一行是其中各次呼叫的平均值，此时呼叫数为行数，百分位基于"
           "这些平均值（单次慢呼叫会被平滑）。"));
}

/* The shifts of a seat's scheduled days, in the order they first come ("day", "day, night"). */
static const char *shifts_of(const struct att_seat *a)
{
    char *b = rep_ring();
    size_t len = 0;

    b[0] = '\0';
    for (size_t k = 0; k < a->ndays; k++) {
        const char *sh = a->days[k].shift;
        int seen = 0;
        if (sh == NULL) {
            continue;
        }
        for (size_t j = 0; j < k && !seen; j++) {
            seen = a->days[j].shift != NULL && strcmp(a->days[j].shift, sh) == 0;
        }
        if (!seen && len + strlen(sh) + 3 < REP_FMT_LEN) {
            len += (size_t)snprintf(b + len, REP_FMT_LEN - len, "%s%s", len > 0 ? ", " : "", sh);
        }
    }
    return b;
}

/* Seat attendance against the schedule (--schedule): the per-seat totals of attendance.c. */
static void attendance_table(struct ctx *c, const struct rep_stats *cur,
                             const struct rep_stats *prev)
{
    const char *cols[12] = {tr(c, "Host", "主机"),
                            tr(c, "Seat", "座席"),
                            tr(c, "Shift", "班次"),
                            tr(c, "Working days", "应出勤天数"),
                            tr(c, "Logged in (h)", "登录时长（小时）"),
                            tr(c, "Late (times)", "迟到次数"),
                            tr(c, "Late (min)", "迟到（分钟）"),
                            tr(c, "Early leave (times)", "早退次数"),
                            tr(c, "Early leave (min)", "早退（分钟）"),
                            tr(c, "Absent (days)", "缺勤天数"),
                            tr(c, "Late, previous (times)", "上期迟到次数"),
                            tr(c, "Absent, previous (days)", "上期缺勤天数")};
    struct rtable *t =
        rdoc_table(c->d, "seat_attendance", tr(c, "Seat attendance", "座席考勤"), 12, cols);

    for (size_t i = 0; i < cur->att->nseats; i++) {
        const struct att_seat *a = &cur->att->seats[i];
        const struct att_seat *pa = find_att(prev, a);
        rtable_cell(t, "%s", a->host);
        rtable_cell(t, "%s", a->seat);
        rtable_cell(t, "%s", shifts_of(a));
        rtable_cell(t, "%d", a->work_days);
        rtable_cell(t, "%s", rep_hours_str(a->logged_ms));
        rtable_cell(t, "%d", a->late_n);
        rtable_cell(t, "%" PRId64, a->late_min);
        rtable_cell(t, "%d", a->early_n);
        rtable_cell(t, "%" PRId64, a->early_min);
        rtable_cell(t, "%d", a->absent_days);
        rtable_cell(t, "%s", pa != NULL ? num((size_t)pa->late_n) : "n/a");
        rtable_cell(t, "%s", pa != NULL ? num((size_t)pa->absent_days) : "n/a");
    }
    rdoc_para(
        c->d, "%s",
        tr(c,
           "Against the schedule of shifts and holidays: working days are the scheduled days "
           "of the period that are not public holidays (make-up working days included) and "
           "whose shift has ended. Late: the first login in the shift came more than the "
           "grace after its start (minutes from the start). Early leave: the last logout in "
           "the shift came before its end. Absent: no session overlapping the shift on a "
           "working day. Logged-in hours are the union over all queues within each calendar "
           "day. The day list is in the attendance report (watchpost report attendance).",
           "按排班和节假日统计：应出勤天数为本期内已结束、且不是法定节假日的排班日（含调休上班"
           "日）。迟到：班次内首次登录晚于开始时间加宽限时间（从开始时间起计分钟）。早退：班次内"
           "最后登出早于结束时间。缺勤：应出勤日内没有与班次重叠的会话。登录时长为各队列合并后在"
           "每个自然日内的时长。每日明细见考勤报告（watchpost report attendance）。"));
}

static void lines_section(struct ctx *c, const struct rep_stats *cur, const struct rep_stats *prev)
{
    const char *cols[10] = {tr(c, "Host", "主机"),
                            tr(c, "Group", "分组"),
                            tr(c, "Line", "线路"),
                            tr(c, "Availability (%)", "可用率 (%)"),
                            tr(c, "Blocked (times)", "阻塞（次）"),
                            tr(c, "Blocked (min)", "阻塞（分钟）"),
                            tr(c, "Unavailable (min)", "不可用（分钟）"),
                            tr(c, "Out of service (min)", "停止服务（分钟）"),
                            tr(c, "In use (min)", "使用中（分钟）"),
                            tr(c, "No data (min)", "无数据（分钟）")};
    struct rtable *t = rdoc_table(c->d, "line_availability",
                                  tr(c, "Extensions and IVR ports", "分机与 IVR 端口"), 10, cols);
    for (size_t i = 0; i < cur->nlines; i++) {
        const struct rep_line *l = &cur->lines[i];
        rtable_cell(t, "%s", l->host);
        rtable_cell(t, "%s", l->group);
        rtable_cell(t, "%s", l->object);
        rtable_cell(t, "%s", pct(l->avail_pct));
        rtable_cell(t, "%d", l->blocked_n);
        rtable_cell(t, "%s", mins(l->state_ms[7]));
        rtable_cell(t, "%s", mins(l->state_ms[5]));
        rtable_cell(t, "%s", mins(l->state_ms[6]));
        rtable_cell(t, "%s", mins(l->state_ms[2] + l->state_ms[3] + l->state_ms[4]));
        rtable_cell(t, "%s", mins(l->nodata_ms));
    }
    rdoc_para(
        c->d, "%s",
        tr(c,
           "A line is available while its state is neither blocked, unavailable nor "
           "out_of_service. Availability = available time / time with a known state; time "
           "before its first report and in state unknown is no data. The state history "
           "records changes only: a line whose agent went silent keeps its last state.",
           "线路状态不是阻塞（blocked）、不可用（unavailable）或停止服务（out_of_service）时"
           "为可用。可用率 = 可用时间 / 状态已知的时间；首次上报前及状态未知（unknown）的时间计"
           "为无数据。状态历史只记录变化：代理失联的线路保持最后的状态。"));

    const char *scols[6] = {tr(c, "Host", "主机"),
                            tr(c, "Seat", "座席"),
                            tr(c, "Sessions", "登录次数"),
                            tr(c, "Days", "天数"),
                            tr(c, "Logged in (h)", "登录时长（小时）"),
                            tr(c, "Paused (h)", "暂停时长（小时）")};
    t = rdoc_table(c->d, "seat_sessions", tr(c, "Seat sessions", "座席登录"), 6, scols);
    for (size_t i = 0; i < cur->nseats; i++) {
        const struct rep_seat *s = &cur->seats[i];
        rtable_cell(t, "%s", s->host);
        rtable_cell(t, "%s", s->seat);
        rtable_cell(t, "%d", s->sessions);
        rtable_cell(t, "%d", s->days);
        rtable_cell(t, "%s", rep_hours_str(s->logged_ms));
        rtable_cell(t, "%s", rep_hours_str(s->paused_ms));
    }
    if (cur->att == NULL) {
        rdoc_para(
            c->d, "%s",
            tr(c,
               "Logged-in time is the union of a seat's sessions (over all its queues) within "
               "the period; a session still open at the period end counts up to it. Attendance "
               "against schedules and holidays (late starts, early leaves, absences) is in the "
               "attendance report (watchpost report attendance).",
               "登录时长为座席在本期内所有队列登录时段的并集；期末仍在登录的计算到期末。按排班和"
               "节假日统计的考勤（迟到、早退、缺勤）见考勤报告（watchpost report attendance）。"));
    } else {
        rdoc_para(c->d, "%s",
                  tr(c,
                     "Logged-in time is the union of a seat's sessions (over all its queues) "
                     "within the period; a session still open at the period end counts up to it.",
                     "登录时长为座席在本期内所有队列登录时段的并集；期末仍在登录的计算到期末。"));
        attendance_table(c, cur, prev);
    }
    reg_calls(c, cur, prev);
}

static void logs_section(struct ctx *c, const struct rep_stats *cur, const struct rep_stats *prev)
{
    if (!cur->have_events) {
        rdoc_para(c->d, "%s",
                  tr(c, "No log data: there is no events.db in the state directory.",
                     "无日志数据：状态目录中没有 events.db。"));
        return;
    }
    const char *vcols[4] = {tr(c, "Severity", "级别"), tr(c, "Events", "事件数"),
                            tr(c, "Previous", "上期"), tr(c, "Trend", "趋势")};
    struct rtable *t =
        rdoc_table(c->d, "log_severity", tr(c, "Log events by severity", "按级别"), 4, vcols);
    for (int v = 3; v >= 0; v--) {
        rtable_cell(t, "%s", sev_name(c, v));
        rtable_cell(t, "%zu", cur->log_sev[v]);
        rtable_cell(t, "%zu", prev->log_sev[v]);
        rtable_cell(t, "%s", arrow_d((double)cur->log_sev[v], (double)prev->log_sev[v]));
    }
    for (int w = 0; w < 2; w++) {
        const struct rep_count *v = w == 0 ? cur->log_rules : cur->log_hosts;
        size_t n = w == 0 ? cur->nlog_rules : cur->nlog_hosts;
        const char *cols[5] = {w == 0 ? tr(c, "Rule", "规则") : tr(c, "Host", "主机"),
                               tr(c, "Highest severity", "最高级别"), tr(c, "Events", "事件数"),
                               tr(c, "Previous", "上期"), tr(c, "Trend", "趋势")};
        t = rdoc_table(c->d, w == 0 ? "log_rules" : "log_hosts",
                       w == 0 ? tr(c, "Log events by rule", "按规则")
                              : tr(c, "Log events by host", "按主机"),
                       5, cols);
        for (size_t i = 0; i < n; i++) {
            size_t pn = w == 0 ? count_of(prev->log_rules, prev->nlog_rules, &v[i])
                               : count_of(prev->log_hosts, prev->nlog_hosts, &v[i]);
            rtable_cell(t, "%s", v[i].key);
            rtable_cell(t, "%s", sev_name(c, v[i].sev));
            rtable_cell(t, "%zu", v[i].n);
            rtable_cell(t, "%zu", pn);
            rtable_cell(t, "%s", arrow_d((double)v[i].n, (double)pn));
        }
    }
    const char *mcols[6] = {
        tr(c, "Message", "消息"),  tr(c, "Rule", "规则"),     tr(c, "Highest severity", "最高级别"),
        tr(c, "Events", "事件数"), tr(c, "Previous", "上期"), tr(c, "Trend", "趋势")};
    t = rdoc_table(c->d, "log_messages", tr(c, "Top messages", "最常见的消息"), 6, mcols);
    for (size_t i = 0; i < cur->nlog_msgs && i < TOP_MSGS; i++) {
        const struct rep_count *m = &cur->log_msgs[i];
        size_t pn = count_of(prev->log_msgs, prev->nlog_msgs, m);
        /* long messages cut at 200 bytes, on a UTF-8 character boundary */
        size_t len = rep_utf8_cut(m->key, 200);
        rtable_cell(t, "%.*s%s", (int)len, m->key, m->key[len] != '\0' ? "..." : "");
        rtable_cell(t, "%s", m->rule);
        rtable_cell(t, "%s", sev_name(c, m->sev));
        rtable_cell(t, "%zu", m->n);
        rtable_cell(t, "%zu", pn);
        rtable_cell(t, "%s", arrow_d((double)m->n, (double)pn));
    }
    rdoc_para(
        c->d, "%s",
        tr(c,
           "The log events the agents' logtail rules matched with a time in the period (the "
           "collector keeps them 35 days and stores at most 600 per host and minute by "
           "default; the overflow is not in these counts). Top messages: the 20 most "
           "frequent, grouped by rule and by the text with every run of digits shown as # "
           "and white space collapsed, so \"ORA-00600 at 12:03\" and \"ORA-00600 at 9:41\" "
           "are one message (\"ORA-# at #:#\"); the previous period is grouped the same way.",
           "本期内代理的 logtail 规则匹配到的日志事件（采集器保留 35 天，默认每台主机每分钟最多"
           "存 600 条，超出部分不在统计内）。最常见的消息：出现最多的 20 条，按规则和文本归类，"
           "文本中连续数字显示为 #、连续空白合并为一个空格，因此 \"ORA-00600 at 12:03\" 与 "
           "\"ORA-00600 at 9:41\" "
           "为同一消息（\"ORA-# at #:#\"）；上期按同样方式归类。"));
}

static void appendix(struct ctx *c, const struct rep_stats *cur)
{
    const char *cols[12] = {tr(c, "Incident", "事件"),
                            tr(c, "Priority", "级别"),
                            tr(c, "Status at end", "期末状态"),
                            tr(c, "Opened", "产生时间"),
                            tr(c, "Acknowledged", "确认时间"),
                            tr(c, "Resolved", "解决时间"),
                            tr(c, "Host", "主机"),
                            tr(c, "Rule", "规则"),
                            tr(c, "Category", "类别"),
                            tr(c, "Summary", "摘要"),
                            tr(c, "Resolution", "处理结果"),
                            tr(c, "Tickets", "工单")};
    struct rtable *t = rdoc_table(c->d, "incidents", "", 12, cols);
    for (size_t i = 0; i < cur->ninc; i++) {
        const struct rep_inc *r = &cur->inc[i];
        if (!r->active_in) {
            continue;
        }
        rtable_cell(t, "%" PRId64, r->id);
        rtable_cell(t, "%s", prio_name(r->priority));
        rtable_cell(t, "%s", status_name(c, r->status));
        rtable_cell(t, "%s", tstr(r->opened_ms));
        rtable_cell(t, "%s", tstr(r->acked_ms));
        rtable_cell(t, "%s", tstr(r->resolved_ms));
        rtable_cell(t, "%s", r->host);
        rtable_cell(t, "%s", r->rule);
        rtable_cell(t, "%s", r->category);
        rtable_cell(t, "%s", r->summary);
        rtable_cell(t, "%s", r->note);
        rtable_cell(t, "%s", r->tickets);
    }
}

struct rdoc *rep_health_doc(const char *kind, const struct rep_stats *cur,
                            const struct rep_stats *prev, const struct rep_opts *o)
{
    struct ctx c;
    int monthly = kind != NULL && strcmp(kind, "monthly") == 0;
    const char *lang = o != NULL && o->lang != NULL ? o->lang : "en";

    memset(&c, 0, sizeof(c));
    c.zh = strncmp(lang, "zh", 2) == 0;
    char *title =
        wp_xasprintf("%s %s",
                     monthly ? tr(&c, "Watchpost monthly health report", "Watchpost 月度运行报告")
                             : tr(&c, "Watchpost weekly health report", "Watchpost 每周运行报告"),
                     cur->p.label);
    c.d = rdoc_new(title, c.zh ? "zh-CN" : "en");
    free(title);
    rdoc_set_empty_text(c.d, tr(&c, "none", "无"));
    rdoc_set_date(c.d, rep_iso_str(cur->p.to_ms));
    rdoc_para(c.d,
              tr(&c, "Period %s: %s to %s (%s), compared with %s. Figures as of the period end.",
                 "周期 %s：%s 至 %s（%s），对比上期 %s。数据截至期末。"),
              cur->p.label, tstr(cur->p.from_ms), tstr(cur->p.to_ms), rep_tz_str(cur->p.from_ms),
              prev->p.label);

    rdoc_heading(c.d, 2, tr(&c, "1. Findings", "1. 需关注的问题"));
    findings(&c, cur, prev);
    rdoc_heading(c.d, 2, tr(&c, "2. Summary", "2. 概要"));
    summary(&c, cur, prev);

    rdoc_heading(c.d, 2, tr(&c, "3. Incidents", "3. 事件"));
    const char *pcols[5] = {tr(&c, "Priority", "级别"), tr(&c, "Opened", "新增"),
                            tr(&c, "Resolved", "已解决"), tr(&c, "Opened, previous", "上期新增"),
                            tr(&c, "Trend", "趋势")};
    struct rtable *t =
        rdoc_table(c.d, "incidents_by_priority", tr(&c, "By priority", "按级别"), 5, pcols);
    for (int p = 0; p < 4; p++) {
        rtable_cell(t, "%s", prio_name(p + 1));
        rtable_cell(t, "%zu", cur->opened_prio[p]);
        rtable_cell(t, "%zu", cur->resolved_prio[p]);
        rtable_cell(t, "%zu", prev->opened_prio[p]);
        rtable_cell(t, "%s", arrow_d((double)cur->opened_prio[p], (double)prev->opened_prio[p]));
    }
    by_key_table(&c, cur, prev, 0, 0, "incidents_by_category", tr(&c, "By category", "按类别"),
                 tr(&c, "Category", "类别"));
    by_key_table(&c, cur, prev, 1, 0, "incidents_by_host", tr(&c, "By host", "按主机"),
                 tr(&c, "Host", "主机"));
    by_key_table(&c, cur, prev, 2, 0, "incidents_by_rule", tr(&c, "By rule", "按规则"),
                 tr(&c, "Rule", "规则"));
    times_and_sla(&c, cur, prev);
    incident_lists(&c, cur);
    by_key_table(&c, cur, prev, 2, 1, "noisy_rules", tr(&c, "Noisiest rules", "最频繁的规则"),
                 tr(&c, "Rule", "规则"));
    by_key_table(&c, cur, prev, 1, 1, "noisy_hosts", tr(&c, "Noisiest hosts", "最频繁的主机"),
                 tr(&c, "Host", "主机"));

    rdoc_heading(c.d, 2, tr(&c, "4. Hosts", "4. 主机"));
    hosts_section(&c, cur, prev);
    rdoc_heading(c.d, 2, tr(&c, "5. Telephony", "5. 电话系统"));
    lines_section(&c, cur, prev);
    rdoc_heading(c.d, 2, tr(&c, "6. Logs", "6. 日志"));
    logs_section(&c, cur, prev);
    rdoc_heading(c.d, 2, tr(&c, "7. Appendix: incidents", "7. 附录：事件清单"));
    appendix(&c, cur);
    return c.d;
}

/* ---- fault report ---- */

struct tl_entry {
    int64_t at;
    char *kind, *by, *text;
};

/* "dest: id, ..." of the tickets the outbox linked to incident id ("" when none). */
static char *tickets_of(sqlite3 *db, int64_t id)
{
    sqlite3_stmt *q = NULL;
    char *out = wp_xstrdup("");

    if (sqlite3_prepare_v2(db,
                           "SELECT dest, remote_id FROM outbox_remote WHERE incident_id = ?1"
                           " AND state = 'linked' AND remote_id <> '' ORDER BY dest, remote_id",
                           -1, &q, NULL) != SQLITE_OK) {
        sqlite3_finalize(q); /* no outbox tables in this store */
        return out;
    }
    sqlite3_bind_int64(q, 1, id);
    while (sqlite3_step(q) == SQLITE_ROW) {
        char *t = wp_xasprintf("%s%s%s: %s", out, out[0] != '\0' ? ", " : "", rep_col_str(q, 0),
                               rep_col_str(q, 1));
        free(out);
        out = t;
    }
    sqlite3_finalize(q);
    return out;
}

static int system_by(const char *by)
{
    return by[0] == '\0' || strcmp(by, "rule") == 0 || strcmp(by, "watchpost") == 0 ||
           strcmp(by, "notify") == 0;
}

static const char *level_name(const struct ctx *c, int v)
{
    return v == 1 ? tr(c, "high", "高") : v == 2 ? tr(c, "medium", "中") : tr(c, "low", "低");
}

/* The earlier of two times, 0 meaning "not yet". */
static int64_t first_of(int64_t a, int64_t b)
{
    return a == 0 ? b : b == 0 ? a : a < b ? a : b;
}

static void dur_text(int64_t ms, char *buf, size_t n)
{
    int64_t m = ms / 60000;
    snprintf(buf, n, "%lld:%02lld", (long long)(m / 60), (long long)(m % 60));
}

int rep_incident_doc(const char *state_dir, int64_t id, const struct rep_opts *o, struct rdoc **out,
                     char *err, size_t errlen)
{
    struct ctx c;
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL, *tq = NULL;
    struct tl_entry *tl = NULL;
    size_t ntl = 0, cap = 0;
    char *path = wp_xasprintf("%s/incidents.db", state_dir);
    const char *lang = o != NULL && o->lang != NULL ? o->lang : "en";
    int rc = 0, r = 0;

    *out = NULL;
    memset(&c, 0, sizeof(c));
    c.zh = strncmp(lang, "zh", 2) == 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "SELECT priority, impact, urgency, category, rule, host, summary,"
                           " description, runbook, values_json, opened_ms, acked_ms, resolved_ms,"
                           " closed_ms, response_due_ms, resolve_due_ms, escalation, suppressed,"
                           " flapping, reopened, acked_by, status FROM incidents WHERE id = ?1",
                           -1, &q, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "SELECT at_ms, kind, \"by\", text FROM timeline WHERE incident_id = ?1"
                           " ORDER BY at_ms, id",
                           -1, &tq, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, db != NULL ? sqlite3_errmsg(db) : "no memory");
        rc = WP_EDB;
        goto out;
    }
    sqlite3_bind_int64(q, 1, id);
    r = sqlite3_step(q);
    if (r != SQLITE_ROW) {
        if (r == SQLITE_DONE) {
            snprintf(err, errlen, "no incident %" PRId64, id);
            rc = WP_ENOTFOUND;
        } else {
            snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
            rc = WP_EDB;
        }
        goto out;
    }
    sqlite3_bind_int64(tq, 1, id);
    while ((r = sqlite3_step(tq)) == SQLITE_ROW) {
        if (ntl == cap) {
            cap = cap != 0 ? cap * 2 : 32;
            tl = wp_xrealloc(tl, cap * sizeof(*tl));
        }
        tl[ntl].at = sqlite3_column_int64(tq, 0);
        tl[ntl].kind = wp_xstrdup(rep_col_str(tq, 1));
        tl[ntl].by = wp_xstrdup(rep_col_str(tq, 2));
        tl[ntl].text = wp_xstrdup(rep_col_str(tq, 3));
        ntl++;
    }
    if (r != SQLITE_DONE) {
        snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
        rc = WP_EDB;
        goto out;
    }

    int prio = sqlite3_column_int(q, 0);
    int64_t opened = sqlite3_column_int64(q, 10), acked = sqlite3_column_int64(q, 11);
    int64_t resolved = sqlite3_column_int64(q, 12);
    int64_t rdue = sqlite3_column_int64(q, 14), xdue = sqlite3_column_int64(q, 15);
    char d[32];
    char *title =
        wp_xasprintf(tr(&c, "Fault report: incident %" PRId64, "故障报告：事件 %" PRId64), id);
    c.d = rdoc_new(title, c.zh ? "zh-CN" : "en");
    free(title);
    rdoc_set_empty_text(c.d, tr(&c, "none", "无"));
    rdoc_set_date(c.d, rep_iso_str(opened));

    rdoc_heading(c.d, 2, tr(&c, "1. Overview", "1. 概况"));
    const char *cols[2] = {tr(&c, "Item", "项目"), tr(&c, "Value", "内容")};
    struct rtable *t = rdoc_table(c.d, "fault", "", 2, cols);
    rtable_cell(t, "%s", tr(&c, "System", "系统"));
    rtable_cell(t, "%s / %s", rep_col_str(q, 3), rep_col_str(q, 4));
    rtable_cell(t, "%s", tr(&c, "Time", "时间"));
    rtable_cell(t, "%s (%s)", tstr(opened), rep_tz_str(opened));
    rtable_cell(t, "%s", tr(&c, "Place (host)", "地点（主机）"));
    rtable_cell(t, "%s", rep_col_str(q, 5));
    rtable_cell(t, "%s", tr(&c, "Impact", "影响"));
    rtable_cell(t, "%s", level_name(&c, sqlite3_column_int(q, 1)));
    rtable_cell(t, "%s", tr(&c, "Urgency", "紧急程度"));
    rtable_cell(t, "%s", level_name(&c, sqlite3_column_int(q, 2)));
    rtable_cell(t, "%s", tr(&c, "Fault level", "故障级别"));
    rtable_cell(t, "%s", prio_name(prio));
    rtable_cell(t, "%s", tr(&c, "Status", "状态"));
    rtable_cell(t, "%s", status_name(&c, sqlite3_column_int(q, 21)));
    rtable_cell(t, "%s", tr(&c, "Acknowledged", "确认"));
    rtable_cell(t, "%s%s%s", tstr(acked), acked != 0 ? " " : "", rep_col_str(q, 20));
    rtable_cell(t, "%s", tr(&c, "Resolved", "解决"));
    rtable_cell(t, "%s", tstr(resolved));
    rtable_cell(t, "%s", tr(&c, "Time to resolve (h:mm)", "解决用时（时:分）"));
    if (resolved != 0) {
        dur_text(resolved - opened, d, sizeof(d));
        rtable_cell(t, "%s", d);
    } else {
        rtable_cell(t, "%s", tr(&c, "not resolved", "未解决"));
    }
    rtable_cell(t, "%s", tr(&c, "Response deadline", "响应期限"));
    rtable_cell(t, "%s (%s)", tstr(rdue),
                acked != 0 || resolved != 0
                    ? (first_of(acked, resolved) <= rdue ? tr(&c, "met", "达标")
                                                         : tr(&c, "breached", "超时"))
                    : tr(&c, "not acknowledged", "未确认"));
    rtable_cell(t, "%s", tr(&c, "Resolve deadline", "解决期限"));
    rtable_cell(t, "%s (%s)", tstr(xdue),
                resolved != 0
                    ? (resolved <= xdue ? tr(&c, "met", "达标") : tr(&c, "breached", "超时"))
                    : tr(&c, "not resolved", "未解决"));
    rtable_cell(t, "%s", tr(&c, "Escalation level", "升级级别"));
    rtable_cell(t, "%d", sqlite3_column_int(q, 16));
    rtable_cell(t, "%s", tr(&c, "Reopened (times)", "重开次数"));
    rtable_cell(t, "%d", sqlite3_column_int(q, 19));
    char *tickets = tickets_of(db, id);
    rtable_cell(t, "%s", tr(&c, "Tickets", "工单"));
    rtable_cell(t, "%s", tickets);
    free(tickets);

    rdoc_heading(c.d, 2, tr(&c, "2. Symptoms", "2. 故障现象"));
    rdoc_para(c.d, "%s", rep_col_str(q, 6));
    if (rep_col_str(q, 7)[0] != '\0') {
        rdoc_pre(c.d, rep_col_str(q, 7));
    }
    if (rep_col_str(q, 9)[0] != '\0') {
        rdoc_para(c.d, "%s", tr(&c, "Values when it fired:", "触发时的数值："));
        rdoc_pre(c.d, rep_col_str(q, 9));
    }

    rdoc_heading(c.d, 2, tr(&c, "3. Timeline", "3. 时间线"));
    const char *tcols[4] = {tr(&c, "Time", "时间"), tr(&c, "Event", "事件"), tr(&c, "By", "操作人"),
                            tr(&c, "Text", "内容")};
    t = rdoc_table(c.d, "timeline", "", 4, tcols);
    for (size_t i = 0; i < ntl; i++) {
        rtable_cell(t, "%s", tstr(tl[i].at));
        rtable_cell(t, "%s", tl[i].kind);
        rtable_cell(t, "%s", tl[i].by);
        rtable_cell(t, "%s", tl[i].text);
    }

    /* operator notes pre-fill analysis, resolution notes the handling */
    rdoc_heading(c.d, 2, tr(&c, "4. Analysis (cause)", "4. 原因分析"));
    for (size_t i = 0; i < ntl; i++) {
        if (!system_by(tl[i].by) && tl[i].text[0] != '\0' && strcmp(tl[i].kind, "resolved") != 0) {
            rdoc_para(c.d, "%s %s (%s): %s", tstr(tl[i].at), tl[i].by, tl[i].kind, tl[i].text);
        }
    }
    rdoc_blank(c.d, 4);
    rdoc_heading(c.d, 2, tr(&c, "5. Handling", "5. 处理过程"));
    for (size_t i = 0; i < ntl; i++) {
        if (strcmp(tl[i].kind, "resolved") == 0 && tl[i].text[0] != '\0') {
            rdoc_para(c.d, "%s %s: %s", tstr(tl[i].at), tl[i].by, tl[i].text);
        }
    }
    rdoc_blank(c.d, 4);
    rdoc_heading(c.d, 2, tr(&c, "6. Prevention", "6. 预防措施"));
    if (rep_col_str(q, 8)[0] != '\0') {
        rdoc_para(c.d, "%s", tr(&c, "Runbook of the rule:", "规则的处理手册："));
        rdoc_pre(c.d, rep_col_str(q, 8));
    }
    rdoc_blank(c.d, 4);
    rdoc_heading(c.d, 2, tr(&c, "7. Sign-off", "7. 签字"));
    rdoc_para(c.d, "%s", tr(&c, "Prepared by / date:", "填写人 / 日期："));
    rdoc_blank(c.d, 1);
    rdoc_para(c.d, "%s", tr(&c, "Reviewed by / date:", "审核人 / 日期："));
    rdoc_blank(c.d, 1);
    *out = c.d;
out:
    for (size_t i = 0; i < ntl; i++) {
        free(tl[i].kind);
        free(tl[i].by);
        free(tl[i].text);
    }
    free(tl);
    sqlite3_finalize(q);
    sqlite3_finalize(tq);
    sqlite3_close(db);
    free(path);
    return rc;
}
