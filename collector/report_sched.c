/* SPDX-License-Identifier: Apache-2.0 */
/* Scheduled reports: the `reports:` config, due times, the archive, the job,
 * the scheduler; see report_sched.h. */
#include "report_sched.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "attendance.h"
#include "coll.h"
#include "coll_conf.h"
#include "notify.h"
#include "outbox.h"
#include "report_doc.h"
#include "report_inspect.h"
#include "wp/buf.h"
#include "wp/clock.h"
#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"

#define DAY_MS (24 * 3600 * 1000LL)
#define CHECK_EVERY_MS                                                               \
    10000                           /* how often the scheduler looks for due reports \
                                     */
#define JOB_TIMEOUT_MS (30 * 60000) /* a job still running then is killed */
#define MAX_FILE_BYTES (64 << 20)   /* larger files are neither attached nor served */

/* ---- the kinds
 * ----------------------------------------------------------------------------
 */

struct rsched_job {
    const char *state_dir, *rrd_dir, *lang, *schedule;
    const struct insp_limits *limits; /* inspection: NULL for the defaults */
    const char *kind;
    struct rep_period cur;
    int unit;
};

struct rsched_kind {
    const char *name;
    const char *at;                      /* default schedule */
    int enabled;                         /* enabled by default once `reports:` is there */
    unsigned units;                      /* 1 << enum rsched_unit: the schedules it takes */
    const char *subject_en, *subject_zh; /* mail subjects, the period label follows */
    /* Build the document of j->cur. 0, or <0 with err. */
    int (*build)(const struct rsched_job *j, struct rdoc **out, char *err, size_t errlen);
    /* The period of a run due at due_ms (label NULL) or named label; NULL: the
     * last complete day / week / month before the due time (rsched_period_of). 0
     * or -EINVAL. */
    int (*period)(int64_t due_ms, const char *label, struct rep_period *p);
};

static int build_health(const struct rsched_job *j, struct rdoc **out, char *err, size_t errlen)
{
    struct rep_period c, p;
    struct rep_stats *cur = NULL, *prev = NULL;
    struct att_sched *sched = NULL;
    struct wp_conf_err cerr;
    struct rep_opts o = {.lang = j->lang, .rrd_dir = j->rrd_dir};
    int rc =
        j->unit == RS_WEEK ? rep_week(j->cur.label, 0, &c, &p) : rep_month(j->cur.label, 0, &c, &p);

    *out = NULL;
    if (rc < 0) {
        snprintf(err, errlen, "bad period %s", j->cur.label);
        return rc;
    }
    /* schedule: adds seat attendance to the telephony section */
    if (j->schedule != NULL && (rc = att_sched_load(j->schedule, &sched, &cerr)) < 0) {
        snprintf(err, errlen, "%s", cerr.msg);
        return rc;
    }
    rc = rep_stats_build(j->state_dir, &c, &o, &cur, err, errlen);
    if (rc == 0) {
        rc = rep_stats_build(j->state_dir, &p, &o, &prev, err, errlen);
    }
    if (rc == 0 && sched != NULL) {
        rc = rep_stats_attendance(cur, j->state_dir, sched, wp_clock_now_ms(), err, errlen);
    }
    if (rc == 0 && sched != NULL) {
        rc = rep_stats_attendance(prev, j->state_dir, sched, wp_clock_now_ms(), err, errlen);
    }
    if (rc == 0) {
        *out = rep_health_doc(j->kind, cur, prev, &o);
    }
    rep_stats_free(cur);
    rep_stats_free(prev);
    att_sched_free(sched);
    return rc;
}

static int build_attendance(const struct rsched_job *j, struct rdoc **out, char *err, size_t errlen)
{
    struct att_sched *sched = NULL;
    struct att_report *att = NULL;
    struct wp_conf_err cerr;
    struct rep_opts o = {.lang = j->lang, .rrd_dir = j->rrd_dir};
    int rc = 0;

    *out = NULL;
    if (j->schedule == NULL) {
        snprintf(err, errlen, "attendance needs reports.kinds[].schedule (the shifts file)");
        return -EINVAL;
    }
    if ((rc = att_sched_load(j->schedule, &sched, &cerr)) < 0) {
        snprintf(err, errlen, "%s", cerr.msg);
        return rc;
    }
    rc = att_build(j->state_dir, sched, &j->cur, wp_clock_now_ms(), &att, err, errlen);
    if (rc == 0) {
        *out = att_doc(att, &o);
    }
    att_report_free(att);
    att_sched_free(sched);
    return rc;
}

static int build_inspection(const struct rsched_job *j, struct rdoc **out, char *err, size_t errlen)
{
    struct rep_opts o = {.lang = j->lang, .rrd_dir = j->rrd_dir};
    return rep_inspection_doc(j->state_dir, &j->cur, &o, j->limits, out, err, errlen);
}

/* The inspection of the due time: [the same time the day before, due), labelled
 * by its day
 * ("2026-11-30", "2026-11-30-0900" when not at 08:30; report_inspect.h). */
static int inspection_period(int64_t due_ms, const char *label, struct rep_period *p)
{
    struct rep_period prev;
    char spec[32];
    int y = 0, mon = 0, d = 0, h = 0, m = 0;
    char tail = 0;

    if (label == NULL) {
        time_t t = (time_t)(due_ms / 1000);
        struct tm tm;
        localtime_r(&t, &tm);
        strftime(spec, sizeof(spec), "%Y-%m-%dT%H:%M", &tm);
        return rep_inspection_day(spec, due_ms, p, &prev);
    }
    if (sscanf(label, "%4d-%2d-%2d-%2d%2d%c", &y, &mon, &d, &h, &m, &tail) == 5) {
        snprintf(spec, sizeof(spec), "%04d-%02d-%02dT%02d:%02d", y, mon, d, h, m);
        label = spec;
    }
    return rep_inspection_day(label, due_ms, p, &prev);
}

/* Adding a kind is one entry here (its name is then valid in reports.kinds[]
 * and the API). */
static const struct rsched_kind kinds[] = {
    {"weekly", "mon 08:00", 1, 1u << RS_WEEK, "Watchpost weekly report", "Watchpost 周报",
     build_health, NULL},
    {"monthly", "1 08:00", 1, 1u << RS_MONTH, "Watchpost monthly report", "Watchpost 月报",
     build_health, NULL},
    {"attendance", "1 08:30", 0, (1u << RS_WEEK) | (1u << RS_MONTH), "Watchpost attendance report",
     "Watchpost 考勤报告", build_attendance, NULL},
    {"inspection", "08:30", 1, 1u << RS_DAY, "Watchpost daily inspection report",
     "Watchpost 每日巡检报告", build_inspection, inspection_period},
};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

const char *const *rsched_kind_names(void)
{
    static const char *names[NKINDS + 1];
    for (size_t i = 0; i < NKINDS; i++) {
        names[i] = kinds[i].name;
    }
    return names;
}

const struct rsched_kconf *rsched_conf_kind(const struct rsched_conf *c, const char *kind)
{
    for (size_t i = 0; c != NULL && i < c->neff; i++) {
        if (strcmp(c->eff[i].kind, kind) == 0) {
            return &c->eff[i];
        }
    }
    return NULL;
}

static const struct rsched_kind *kind_by_name(const char *name)
{
    for (size_t i = 0; i < NKINDS; i++) {
        if (strcmp(kinds[i].name, name) == 0) {
            return &kinds[i];
        }
    }
    return NULL;
}

/* ---- schedules
 * ----------------------------------------------------------------------------
 */

static const char *const wdays[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

int rsched_parse_at(const char *s, struct rsched_at *out)
{
    struct rsched_at a = {0};
    char word[16] = "";
    char tail = 0;
    int h = -1, m = -1, n = 0;

    if (s == NULL) {
        return -EINVAL;
    }
    if (sscanf(s, "%2d:%2d%c", &h, &m, &tail) == 2) {
        a.unit = RS_DAY;
    } else if (sscanf(s, "%d %2d:%2d%c", &n, &h, &m, &tail) == 3) {
        if (n < 1 || n > 31) {
            return -EINVAL;
        }
        a.unit = RS_MONTH;
        a.mday = n;
    } else if (sscanf(s, "%15s %2d:%2d%c", word, &h, &m, &tail) == 3) {
        a.unit = RS_WEEK;
        a.wday = -1;
        for (int i = 0; i < 7; i++) {
            if (strncasecmp(word, wdays[i], 3) == 0 && strlen(word) >= 3) {
                a.wday = i;
            }
        }
        if (a.wday < 0) {
            return -EINVAL;
        }
    } else {
        return -EINVAL;
    }
    if (h < 0 || h > 23 || m < 0 || m > 59 || strlen(strchr(s, ':')) != 3) {
        return -EINVAL;
    }
    a.hour = h;
    a.min = m;
    *out = a;
    return 0;
}

static int64_t local_at(int y, int mon, int mday, int h, int min)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = mday;
    tm.tm_hour = h;
    tm.tm_min = min;
    tm.tm_isdst = -1;
    return (int64_t)mktime(&tm) * 1000;
}

static int month_days(int y, int mon)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return mon == 2 && leap ? 29 : d[mon - 1];
}

/* The due time of at in the day / week / month that is back periods before the
 * one of tm. */
static int64_t due_in(const struct rsched_at *at, const struct tm *tm, int back)
{
    int y = tm->tm_year + 1900, mon = tm->tm_mon + 1;

    switch (at->unit) {
    case RS_DAY:
        return local_at(y, mon, tm->tm_mday - back, at->hour, at->min);
    case RS_WEEK: {
        int delta = (tm->tm_wday - at->wday + 7) % 7; /* days since the last such weekday */
        return local_at(y, mon, tm->tm_mday - delta - 7 * back, at->hour, at->min);
    }
    default:
        mon -= back;
        while (mon < 1) {
            mon += 12;
            y--;
        }
        int d = at->mday < month_days(y, mon) ? at->mday : month_days(y, mon);
        return local_at(y, mon, d, at->hour, at->min);
    }
}

int64_t rsched_last_due(const struct rsched_at *at, int64_t now_ms)
{
    time_t t = (time_t)(now_ms / 1000);
    struct tm tm;

    localtime_r(&t, &tm);
    for (int back = 0; back < 3; back++) {
        int64_t due = due_in(at, &tm, back);
        if (due <= now_ms) {
            return due;
        }
    }
    return due_in(at, &tm, 3);
}

static void day_period(int y, int mon, int mday, struct rep_period *p)
{
    struct tm tm;
    time_t t;

    p->from_ms = local_at(y, mon, mday, 0, 0);
    p->to_ms = local_at(y, mon, mday + 1, 0, 0);
    t = (time_t)(p->from_ms / 1000 + 12 * 3600);
    localtime_r(&t, &tm);
    strftime(p->label, sizeof(p->label), "%Y-%m-%d", &tm);
}

void rsched_period_of(const struct rsched_at *at, int64_t due_ms, struct rep_period *p)
{
    struct rep_period prev;
    time_t t = (time_t)(due_ms / 1000);
    struct tm tm;

    switch (at->unit) {
    case RS_DAY:
        localtime_r(&t, &tm);
        day_period(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday - 1, p);
        break;
    case RS_WEEK:
        rep_week(NULL, due_ms, p, &prev);
        break;
    default:
        rep_month(NULL, due_ms, p, &prev);
        break;
    }
}

int rsched_period_parse(int unit, const char *label, struct rep_period *p)
{
    struct rep_period prev;
    int y = 0, mon = 0, mday = 0;
    char tail = 0;

    if (label == NULL || label[0] == '\0') {
        return -EINVAL;
    }
    switch (unit) {
    case RS_DAY:
        if (sscanf(label, "%4d-%2d-%2d%c", &y, &mon, &mday, &tail) != 3 || y < 1971 || mon < 1 ||
            mon > 12 || mday < 1 || mday > month_days(y, mon)) {
            return -EINVAL;
        }
        day_period(y, mon, mday, p);
        return strcmp(p->label, label) == 0 ? 0 : -EINVAL;
    case RS_WEEK:
        return rep_week(label, 0, p, &prev);
    default:
        return rep_month(label, 0, p, &prev);
    }
}

/* The period of kind k due at due_ms (label NULL), or named label. 0 or
 * -EINVAL. */
static int kind_period(const struct rsched_kconf *k, int64_t due_ms, const char *label,
                       struct rep_period *p)
{
    if (k->k->period != NULL) {
        return k->k->period(due_ms, label, p);
    }
    if (label != NULL) {
        return rsched_period_parse(k->when.unit, label, p);
    }
    rsched_period_of(&k->when, due_ms, p);
    return 0;
}

/* ---- configuration
 * ------------------------------------------------------------------------ */

static int decode_kinds(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                        const void *arg, struct wp_conf_err *err);
static void free_kinds(void *field, const void *arg);

static const struct wp_opt kind_opts[] = {
    {.name = "kind",
     .type = WP_OPT_STR,
     .required = 1,
     .help = "weekly, monthly, attendance, inspection",
     .offset = offsetof(struct rsched_kconf, kind)},
    {.name = "enabled",
     .type = WP_OPT_BOOL,
     .def = "true",
     .help = "generate and mail this kind",
     .offset = offsetof(struct rsched_kconf, enabled)},
    {.name = "at",
     .type = WP_OPT_STR,
     .help = "when, local time: \"08:30\" daily, \"mon 08:00\" weekly, \"1 "
             "08:00\" monthly "
             "(default: weekly mon 08:00, monthly 1 08:00, attendance 1 08:30, "
             "inspection "
             "08:30)",
     .offset = offsetof(struct rsched_kconf, at)},
    {.name = "formats",
     .type = WP_OPT_STRLIST,
     .help = "html, pdf, csv (default: reports.formats)",
     .offset = offsetof(struct rsched_kconf, formats)},
    {.name = "lang",
     .type = WP_OPT_STR,
     .help = "en or zh-CN (default: reports.lang)",
     .offset = offsetof(struct rsched_kconf, lang)},
    {.name = "recipients",
     .type = WP_OPT_STRLIST,
     .help = "email destinations of notify: or addresses (default: "
             "reports.recipients)",
     .offset = offsetof(struct rsched_kconf, recipients)},
    {.name = "schedule",
     .type = WP_OPT_STR,
     .help = "attendance: the shifts and holidays file (docs/REPORTS.md); weekly, monthly: "
             "optional, adds seat attendance to the telephony section",
     .offset = offsetof(struct rsched_kconf, schedule)},
    {.name = "limits",
     .type = WP_OPT_STRMAP,
     .help = "inspection: item limits, any of disk, inode, warn (used %), cpu, mem (busy/used %, "
             "last hour), load (per core), stale (minutes), e.g. {disk: 85, load: 4} "
             "(default disk 90, inode 90, warn 85, cpu 90, mem 90, load 2, stale 15; the same as "
             "`watchpost report inspection --limits`)",
     .offset = offsetof(struct rsched_kconf, limits)},
    WP_OPT_TABLE_END,
};

static const struct wp_opt top_opts[] = {
    {.name = "archive_dir",
     .type = WP_OPT_STR,
     .help = "where reports are kept: <archive_dir>/<kind>/<period>/ (default "
             "<state_dir>/reports)",
     .offset = offsetof(struct rsched_conf, archive_dir)},
    {.name = "keep",
     .type = WP_OPT_DURATION,
     .def = "400d",
     .min = 86400000,
     .max = 3650LL * 86400000,
     .help = "reports older than this are removed from the archive",
     .offset = offsetof(struct rsched_conf, keep_ms)},
    {.name = "formats",
     .type = WP_OPT_STRLIST,
     .help = "html, pdf, csv (default html and pdf; html alone in a build "
             "without PDF)",
     .offset = offsetof(struct rsched_conf, formats)},
    {.name = "lang",
     .type = WP_OPT_STR,
     .def = "en",
     .help = "en or zh-CN",
     .offset = offsetof(struct rsched_conf, lang)},
    {.name = "recipients",
     .type = WP_OPT_STRLIST,
     .help = "email destinations of notify: (names) or addresses; none: "
             "archive only",
     .offset = offsetof(struct rsched_conf, recipients)},
    {.name = "mail_via",
     .type = WP_OPT_STR,
     .help = "the email destination that carries mail to addresses (default: "
             "the first)",
     .offset = offsetof(struct rsched_conf, mail_via)},
    {.name = "retry_min",
     .type = WP_OPT_DURATION,
     .def = "1m",
     .min = 1000,
     .max = 86400000,
     .help = "first retry after a failed report run (doubling)",
     .offset = offsetof(struct rsched_conf, retry_min_ms)},
    {.name = "retry_max",
     .type = WP_OPT_DURATION,
     .def = "1h",
     .min = 1000,
     .max = 7 * 86400000LL,
     .help = "longest wait between retries",
     .offset = offsetof(struct rsched_conf, retry_max_ms)},
    {.name = "kinds",
     .type = WP_OPT_CUSTOM,
     .help = "per report kind (see below); kinds not listed keep their defaults",
     .offset = offsetof(struct rsched_conf, kinds),
     .custom = decode_kinds,
     .custom_free = free_kinds},
    WP_OPT_TABLE_END,
};

const struct wp_opt *rsched_conf_opts(const char *which)
{
    if (strcmp(which, "top") == 0) {
        return top_opts;
    }
    if (strcmp(which, "kinds") == 0) {
        return kind_opts;
    }
    return NULL;
}

static size_t *nkinds_of(void *field)
{
    const size_t delta = offsetof(struct rsched_conf, nkinds) - offsetof(struct rsched_conf, kinds);
    return (size_t *)(void *)((char *)field + delta);
}

static int parse_formats(const struct wp_strlist *l, unsigned *out, char *bad, size_t badlen)
{
    unsigned f = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->v[i], "html") == 0) {
            f |= RSCHED_FMT_HTML;
        } else if (strcmp(l->v[i], "csv") == 0) {
            f |= RSCHED_FMT_CSV;
        } else if (strcmp(l->v[i], "pdf") == 0) {
#ifdef WP_HAVE_PDF
            f |= RSCHED_FMT_PDF;
#else
            snprintf(bad, badlen, "pdf (this build has no PDF output)");
            return -EINVAL;
#endif
        } else {
            snprintf(bad, badlen, "\"%s\"", l->v[i]);
            return -EINVAL;
        }
    }
    *out = f;
    return 0;
}

/* The limits: map of kind k (item it of reports.kinds), applied over the defaults with
 * insp_limits_parse(), the parser of --limits; an error names the offending value's position. */
static int decode_limits(struct wp_conf_doc *doc, struct wp_conf_node *it, struct rsched_kconf *k,
                         const char *path, struct wp_conf_err *err)
{
    struct wp_conf_node *ln = wp_conf_map_get(doc, it, "limits");
    char why[256];

    insp_limits_default(&k->lim);
    if (ln == NULL) {
        return 0;
    }
    if (k->k->build != build_inspection) {
        return wp_conf_errorf(doc, ln, err, "%s.limits: only the inspection report has limits",
                              path);
    }
    for (size_t i = 0; i + 1 < k->limits.n; i += 2) {
        const char *name = k->limits.v[i], *val = k->limits.v[i + 1];
        struct wp_conf_node *vn = wp_conf_map_get(doc, ln, name);
        /* one NAME=NUMBER at a time: a value may not smuggle in a second pair */
        char *spec = wp_xasprintf("%s=%s", name, val);
        int rc = -EINVAL;
        if (strpbrk(name, ",=") != NULL || strchr(val, ',') != NULL) {
            snprintf(why, sizeof(why), "limits: %s: expected a number", name);
        } else {
            rc = insp_limits_parse(spec, &k->lim, why, sizeof(why));
        }
        free(spec);
        if (rc < 0) {
            const char *w = strncmp(why, "limits: ", 8) == 0 ? why + 8 : why;
            if (strncmp(w, "unknown", 7) == 0) {
                return wp_conf_errorf(doc, vn != NULL ? vn : ln, err, "%s.limits: %s", path, w);
            }
            return wp_conf_errorf(doc, vn != NULL ? vn : ln, err, "%s.limits: %s, got \"%s\"",
                                  path, w, val);
        }
    }
    k->has_limits = 1;
    return 0;
}

static int decode_kinds(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                        const void *arg, struct wp_conf_err *err)
{
    struct rsched_kconf **arr = field;
    size_t *n = nkinds_of(field);
    size_t len = wp_conf_seq_len(doc, node);
    char path[48];

    (void)arg;
    if (!wp_conf_is_seq(node)) {
        return wp_conf_errorf(doc, node, err,
                              "reports.kinds: expected a list like [{kind: weekly, at: "
                              "\"mon 08:00\"}]");
    }
    *arr = wp_xcalloc(len + 1, sizeof(**arr));
    for (size_t i = 0; i < len; i++) {
        struct wp_conf_node *it = wp_conf_seq_at(doc, node, i);
        struct rsched_kconf *k = &(*arr)[i];
        snprintf(path, sizeof(path), "reports.kinds[%zu]", i);
        *n = i + 1;
        int rc = wp_opts_apply(doc, it, kind_opts, k, path, err);
        if (rc < 0) {
            return rc;
        }
        k->k = kind_by_name(k->kind);
        if (k->k == NULL) {
            char names[256] = "";
            for (size_t j = 0; j < NKINDS; j++) {
                snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
                         j > 0 ? ", " : "", kinds[j].name);
            }
            return wp_conf_errorf(doc, wp_conf_map_get(doc, it, "kind"), err,
                                  "%s.kind: unknown report kind \"%s\" (expected one of: %s)", path,
                                  k->kind, names);
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp((*arr)[j].kind, k->kind) == 0) {
                return wp_conf_errorf(doc, wp_conf_map_get(doc, it, "kind"), err,
                                      "%s.kind: \"%s\" is listed twice", path, k->kind);
            }
        }
        const char *at = k->at != NULL ? k->at : k->k->at;
        if (rsched_parse_at(at, &k->when) < 0 || !(k->k->units & (1u << k->when.unit))) {
            return wp_conf_errorf(
                doc, wp_conf_map_get(doc, it, "at"), err, "%s.at: expected %s, got \"%s\"", path,
                k->k->units == (1u << RS_WEEK)    ? "a weekday and a time "
                                                    "like \"mon 08:00\""
                : k->k->units == (1u << RS_MONTH) ? "a day of the month and "
                                                    "a time like \"1 08:00\""
                : k->k->units == (1u << RS_DAY)   ? "a time like \"08:30\""
                                                : "\"mon 08:00\" (weekly) or \"1 08:00\" (monthly)",
                at);
        }
        char bad[64];
        if (k->formats.n > 0 && parse_formats(&k->formats, &k->fmts, bad, sizeof(bad)) < 0) {
            return wp_conf_errorf(doc, wp_conf_map_get(doc, it, "formats"), err,
                                  "%s.formats: expected html, pdf or csv, got %s", path, bad);
        }
        if (k->lang != NULL && strcmp(k->lang, "en") != 0 && strcmp(k->lang, "zh-CN") != 0) {
            return wp_conf_errorf(doc, wp_conf_map_get(doc, it, "lang"), err,
                                  "%s.lang: expected en or zh-CN, got \"%s\"", path, k->lang);
        }
        rc = decode_limits(doc, it, k, path, err);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

static void free_kinds(void *field, const void *arg)
{
    struct rsched_kconf **arr = field;
    size_t *n = nkinds_of(field);

    (void)arg;
    for (size_t i = 0; *arr != NULL && i < *n; i++) {
        wp_opts_free(kind_opts, &(*arr)[i]);
    }
    free(*arr);
    *arr = NULL;
    *n = 0;
}

int rsched_conf_decode(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                       const void *arg, struct wp_conf_err *err)
{
    struct rsched_conf **out = field;
    struct rsched_conf *c = wp_xcalloc(1, sizeof(*c));
    char bad[64];
    unsigned fmts = 0;

    (void)arg;
    *out = c; /* freed by rsched_conf_free on error too */
    if (!wp_conf_is_map(node)) {
        return wp_conf_errorf(doc, node, err, "reports: expected a map (docs/REPORTS.md)");
    }
    int rc = wp_opts_apply(doc, node, top_opts, c, "reports", err);
    if (rc < 0) {
        return rc;
    }
    if (parse_formats(&c->formats, &fmts, bad, sizeof(bad)) < 0) {
        return wp_conf_errorf(doc, wp_conf_map_get(doc, node, "formats"), err,
                              "reports.formats: expected html, pdf or csv, got %s", bad);
    }
    if (c->formats.n == 0) {
        fmts = RSCHED_FMT_HTML;
#ifdef WP_HAVE_PDF
        fmts |= RSCHED_FMT_PDF;
#endif
    }
    if (strcmp(c->lang, "en") != 0 && strcmp(c->lang, "zh-CN") != 0) {
        return wp_conf_errorf(doc, wp_conf_map_get(doc, node, "lang"), err,
                              "reports.lang: expected en or zh-CN, got \"%s\"", c->lang);
    }
    /* one effective entry per kind of the table: strings borrowed from c or the
     * table */
    c->eff = wp_xcalloc(NKINDS, sizeof(*c->eff));
    c->neff = NKINDS;
    for (size_t i = 0; i < NKINDS; i++) {
        struct rsched_kconf *e = &c->eff[i];
        const struct rsched_kconf *w = NULL;
        for (size_t j = 0; j < c->nkinds; j++) {
            if (c->kinds[j].k == &kinds[i]) {
                w = &c->kinds[j];
            }
        }
        e->k = &kinds[i];
        e->kind = (char *)(uintptr_t)kinds[i].name;
        e->enabled = w != NULL ? w->enabled : kinds[i].enabled;
        e->at = w != NULL && w->at != NULL ? w->at : (char *)(uintptr_t)kinds[i].at;
        rsched_parse_at(e->at, &e->when);
        e->fmts = w != NULL && w->formats.n > 0 ? w->fmts : fmts;
        e->formats = w != NULL && w->formats.n > 0 ? w->formats : c->formats;
        e->lang = w != NULL && w->lang != NULL ? w->lang : c->lang;
        e->recipients = w != NULL && w->recipients.n > 0 ? w->recipients : c->recipients;
        e->schedule = w != NULL ? w->schedule : NULL;
        e->has_limits = w != NULL && w->has_limits;
        if (e->has_limits) {
            e->lim = w->lim;
        } else {
            insp_limits_default(&e->lim);
        }
        if (e->enabled && e->k->build == build_attendance && e->schedule == NULL) {
            return wp_conf_errorf(doc, node, err,
                                  "reports.kinds: attendance needs schedule: (the shifts file)");
        }
    }
    return 0;
}

void rsched_conf_free(void *field, const void *arg)
{
    struct rsched_conf **pc = field;
    struct rsched_conf *c = *pc;

    (void)arg;
    if (c == NULL) {
        return;
    }
    wp_opts_free(top_opts, c);
    free(c->eff);
    free(c);
    *pc = NULL;
}

static const struct notify_dest *email_dest(const struct notify_conf *n, const char *name)
{
    for (size_t i = 0; n != NULL && i < n->ndests; i++) {
        if (n->dests[i].kind == NOTIFY_EMAIL &&
            (name == NULL || strcmp(n->dests[i].name, name) == 0)) {
            return &n->dests[i];
        }
    }
    return NULL;
}

/* An address we are willing to put in a header: local@domain, no spaces,
 * controls or <>. */
static int plain_address(const char *s)
{
    const char *at = strchr(s, '@');
    if (at == NULL || at == s || at[1] == '\0' || strchr(at + 1, '@') != NULL) {
        return 0;
    }
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p <= 0x20 || *p == 0x7f || *p == '<' || *p == '>' || *p == ',' || *p == '"') {
            return 0;
        }
    }
    return 1;
}

int rsched_conf_finish(struct rsched_conf *c, const struct notify_conf *n, const char *conf_path,
                       const char *state_dir, struct wp_conf_doc *doc, struct wp_conf_node *node,
                       struct wp_conf_err *err)
{
    wp_conf_resolve_path(conf_path, &c->archive_dir);
    if (c->archive_dir == NULL) {
        c->archive_dir = wp_xasprintf("%s/reports", state_dir);
    }
    for (size_t i = 0; i < c->nkinds; i++) {
        wp_conf_resolve_path(conf_path, &c->kinds[i].schedule);
    }
    for (size_t i = 0; i < c->neff; i++) {
        for (size_t j = 0; j < c->nkinds; j++) {
            if (c->kinds[j].k == c->eff[i].k) {
                c->eff[i].schedule = c->kinds[j].schedule; /* the resolved path (realloc'd) */
            }
        }
    }
    if (c->mail_via != NULL && email_dest(n, c->mail_via) == NULL) {
        return wp_conf_errorf(
            doc, wp_conf_map_get(doc, node, "mail_via"), err,
            "reports.mail_via: \"%s\" is not an email destination of notify:", c->mail_via);
    }
    for (size_t i = 0; i < c->neff; i++) {
        const struct wp_strlist *r = &c->eff[i].recipients;
        for (size_t j = 0; j < r->n; j++) {
            const char *v = r->v[j];
            if (strchr(v, '@') != NULL) {
                if (!plain_address(v)) {
                    return wp_conf_errorf(doc, node, err,
                                          "reports: recipient \"%s\": expected an address like "
                                          "noc@example.com or an email destination name",
                                          v);
                }
                if (email_dest(n, c->mail_via) == NULL) {
                    return wp_conf_errorf(doc, node, err,
                                          "reports: recipient \"%s\" needs an email destination "
                                          "in notify: to send through",
                                          v);
                }
            } else if (email_dest(n, v) == NULL) {
                return wp_conf_errorf(doc, node, err,
                                      "reports: recipient \"%s\" is not an email destination of "
                                      "notify: (or an address)",
                                      v);
            }
        }
    }
    return 0;
}

/* ---- names and files
 * ---------------------------------------------------------------------- */

int rsched_valid_name(const char *name)
{
    size_t n = name != NULL ? strlen(name) : 0;
    if (n == 0 || n > 128 || name[0] == '.') {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.')) {
            return 0;
        }
    }
    return strstr(name, "..") == NULL;
}

static int mkdir_p(const char *path, mode_t mode)
{
    char *p = wp_xstrdup(path);
    int rc = 0;

    for (char *s = p + 1; *s != '\0'; s++) {
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, mode) != 0 && errno != EEXIST) {
                rc = -errno;
            }
            *s = '/';
        }
    }
    if (rc == 0 && mkdir(p, mode) != 0 && errno != EEXIST) {
        rc = -errno;
    }
    free(p);
    return rc;
}

/* Remove a directory of plain files (one level: what a period directory holds).
 */
static void rm_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;

    if (d != NULL) {
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
                char *f = wp_xasprintf("%s/%s", path, de->d_name);
                unlink(f);
                free(f);
            }
        }
        closedir(d);
    }
    rmdir(path);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The files of dir, sorted, "\n"-separated, and their total size. */
static char *dir_files(const char *dir, int64_t *bytes)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0, len = 1;

    *bytes = 0;
    while (d != NULL && (de = readdir(d)) != NULL) {
        struct stat st;
        char *f = wp_xasprintf("%s/%s", dir, de->d_name);
        if (rsched_valid_name(de->d_name) && lstat(f, &st) == 0 && S_ISREG(st.st_mode)) {
            if (n == cap) {
                cap = cap == 0 ? 16 : cap * 2;
                names = wp_xrealloc(names, cap * sizeof(*names));
            }
            names[n++] = wp_xstrdup(de->d_name);
            len += strlen(de->d_name) + 1;
            *bytes += st.st_size;
        }
        free(f);
    }
    if (d != NULL) {
        closedir(d);
    }
    qsort(names, n, sizeof(*names), cmp_str);
    char *out = wp_xcalloc(1, len);
    for (size_t i = 0; i < n; i++) {
        strcat(out, names[i]);
        strcat(out, i + 1 < n ? "\n" : "");
        free(names[i]);
    }
    free(names);
    return out;
}

static int read_file(const char *path, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    int rc = 0;

    *out = NULL;
    if (fd < 0) {
        return -errno;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > MAX_FILE_BYTES) {
        close(fd);
        return -EINVAL;
    }
    char *buf = wp_xmalloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r <= 0) {
            rc = r < 0 ? -errno : -EIO;
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return 0;
}

/* ---- the reports table
 * -------------------------------------------------------------------- */

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS reports("
    " kind TEXT NOT NULL, period TEXT NOT NULL, created_ms INTEGER NOT NULL,"
    " from_ms INTEGER NOT NULL, to_ms INTEGER NOT NULL, bytes INTEGER NOT NULL,"
    " files TEXT NOT NULL, mailed INTEGER NOT NULL DEFAULT 0, PRIMARY KEY "
    "(kind, period));";

static int db_open(const char *state_dir, int rw, sqlite3 **out, char *err, size_t errlen)
{
    char *path = wp_xasprintf("%s/incidents.db", state_dir);
    sqlite3 *h = NULL;
    int flags = rw ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY;

    *out = NULL;
    if (sqlite3_open_v2(path, &h, flags, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, h != NULL ? sqlite3_errmsg(h) : "no memory");
        sqlite3_close(h);
        free(path);
        return WP_EDB;
    }
    free(path);
    sqlite3_busy_timeout(h, 5000);
    if (rw && (sqlite3_exec(h, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) != SQLITE_OK ||
               sqlite3_exec(h, schema, NULL, NULL, NULL) != SQLITE_OK)) {
        snprintf(err, errlen, "reports table: %s", sqlite3_errmsg(h));
        sqlite3_close(h);
        return WP_EDB;
    }
    *out = h;
    return 0;
}

int rsched_list(const char *state_dir, size_t limit,
                int (*fn)(void *arg, const struct rsched_entry *e), void *arg, char *err,
                size_t errlen)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    int rc = db_open(state_dir, 0, &h, err, errlen);

    if (rc < 0) {
        return rc == WP_EDB && access(state_dir, F_OK) == 0 ? 0 : rc; /* no database yet */
    }
    static const char with_outbox[] =
        "SELECT r.kind, r.period, r.created_ms, r.from_ms, r.to_ms, r.bytes, "
        "r.files, r.mailed,"
        " (SELECT count(*) FROM outbox o WHERE o.event = 'report' AND"
        "  o.inc_key = r.kind || '/' || r.period),"
        " (SELECT count(*) FROM outbox o WHERE o.event = 'report' AND"
        "  o.inc_key = r.kind || '/' || r.period AND o.state = 'sent'),"
        " (SELECT count(*) FROM outbox o WHERE o.event = 'report' AND"
        "  o.inc_key = r.kind || '/' || r.period AND o.state = 'dead')"
        " FROM reports r ORDER BY r.from_ms DESC, r.kind LIMIT ?1";
    static const char without[] =
        "SELECT kind, period, created_ms, from_ms, to_ms, bytes, files, mailed, "
        "0, 0, 0"
        " FROM reports ORDER BY from_ms DESC, kind LIMIT ?1";
    if (sqlite3_prepare_v2(h, with_outbox, -1, &st, NULL) != SQLITE_OK &&
        sqlite3_prepare_v2(h, without, -1, &st, NULL) != SQLITE_OK) {
        /* no reports table: nothing generated yet */
        sqlite3_close(h);
        return 0;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)limit);
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct rsched_entry e = {
            .kind = (const char *)sqlite3_column_text(st, 0),
            .period = (const char *)sqlite3_column_text(st, 1),
            .created_ms = sqlite3_column_int64(st, 2),
            .from_ms = sqlite3_column_int64(st, 3),
            .to_ms = sqlite3_column_int64(st, 4),
            .bytes = sqlite3_column_int64(st, 5),
            .files = (const char *)sqlite3_column_text(st, 6),
            .mailed = sqlite3_column_int(st, 7),
            .msgs = sqlite3_column_int(st, 8),
            .sent = sqlite3_column_int(st, 9),
            .dead = sqlite3_column_int(st, 10),
        };
        if (fn(arg, &e) != 0) {
            break;
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(h);
    return 0;
}

/* ---- the mail
 * -----------------------------------------------------------------------------
 */

/* Base64 in 76-column CRLF lines. */
static void sb_b64(struct wp_sb *b, const unsigned char *s, size_t n)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char q[4];
    int col = 0;

    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0) |
                     (i + 2 < n ? s[i + 2] : 0);
        q[0] = t[v >> 18 & 63];
        q[1] = t[v >> 12 & 63];
        q[2] = i + 1 < n ? t[v >> 6 & 63] : '=';
        q[3] = i + 2 < n ? t[v & 63] : '=';
        wp_sb_add(b, q, 4);
        col += 4;
        if (col >= 76) {
            wp_sb_puts(b, "\r\n");
            col = 0;
        }
    }
    if (col > 0) {
        wp_sb_puts(b, "\r\n");
    }
}

static void sb_b64_line(struct wp_sb *b, const char *s, size_t n)
{
    struct wp_sb t = {NULL, 0, 0};
    sb_b64(&t, (const unsigned char *)s, n);
    wp_sb_add(b, t.p, t.n - 2); /* one line: short input, no CRLF */
    free(t.p);
}

/* The subject as UTF-8 encoded-words (whole characters, at most 45 bytes each).
 */
static void sb_subject(struct wp_sb *b, const char *subject)
{
    wp_sb_puts(b, "Subject:");
    for (size_t i = 0, len = strlen(subject); i < len;) {
        size_t k = len - i < 45 ? len - i : 45;
        while (i + k < len && ((unsigned char)subject[i + k] & 0xC0) == 0x80) {
            k--;
        }
        wp_sb_puts(b, i > 0 ? "\r\n =?UTF-8?B?" : " =?UTF-8?B?");
        sb_b64_line(b, subject + i, k);
        wp_sb_puts(b, "?=");
        i += k;
    }
    wp_sb_puts(b, "\r\n");
}

/* The attachment's MIME type by its extension. */
static const char *mime_of(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (dot != NULL && strcmp(dot, ".pdf") == 0) {
        return "application/pdf";
    }
    if (dot != NULL && strcmp(dot, ".csv") == 0) {
        return "text/csv; charset=UTF-8";
    }
    if (dot != NULL && strcmp(dot, ".html") == 0) {
        return "text/html; charset=UTF-8";
    }
    return "application/octet-stream";
}

/* One multipart/mixed message: report.html as the body, the other files
 * attached as watchpost-<kind>-<period>[-table].<ext>. Same inputs, same bytes.
 */
static int render_report_mail(const struct rsched_kconf *k, const struct rep_period *p,
                              const char *dir, const char *files, const char *from,
                              const char *const *to, size_t nto, const char *domain,
                              const char *dest, int64_t created_ms, struct wp_sb *out, char *err,
                              size_t errlen)
{
    char subject[256], date[64], boundary[128];
    time_t t = (time_t)(created_ms / 1000);
    struct tm tm;
    char *copy = wp_xstrdup(files);
    char *save = NULL;
    int rc = 0;

    snprintf(subject, sizeof(subject), "%s %s",
             strcmp(k->lang, "zh-CN") == 0 ? k->k->subject_zh : k->k->subject_en, p->label);
    snprintf(boundary, sizeof(boundary), "=_wp-report-%s-%s", k->kind, p->label);
    gmtime_r(&t, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    wp_sb_puts(out, "From: ");
    wp_sb_puts(out, from);
    wp_sb_puts(out, "\r\nTo: ");
    for (size_t i = 0; i < nto; i++) {
        wp_sb_puts(out, i > 0 ? ", " : "");
        wp_sb_puts(out, to[i]);
    }
    wp_sb_puts(out, "\r\n");
    sb_subject(out, subject);
    wp_sb_puts(out, "Date: ");
    wp_sb_puts(out, date);
    wp_sb_puts(out, "\r\nMessage-ID: <report-");
    wp_sb_puts(out, k->kind);
    wp_sb_puts(out, "-");
    wp_sb_puts(out, p->label);
    wp_sb_puts(out, ".");
    wp_sb_puts(out, dest);
    wp_sb_puts(out, "@");
    wp_sb_puts(out, domain);
    wp_sb_puts(out, ">\r\nAuto-Submitted: auto-generated\r\nContent-Language: ");
    wp_sb_puts(out, k->lang);
    wp_sb_puts(out, "\r\nX-Watchpost-Report: ");
    wp_sb_puts(out, k->kind);
    wp_sb_puts(out, "/");
    wp_sb_puts(out, p->label);
    wp_sb_puts(out, "\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"");
    wp_sb_puts(out, boundary);
    wp_sb_puts(out, "\"\r\n\r\nThis is a MIME message.\r\n");
    /* the body: the HTML report (self-contained), or a short text without it */
    char *body = NULL;
    size_t blen = 0;
    char *hp = wp_xasprintf("%s/report.html", dir);
    int have_html = read_file(hp, &body, &blen) == 0;
    free(hp);
    wp_sb_puts(out, "--");
    wp_sb_puts(out, boundary);
    if (have_html) {
        wp_sb_puts(out, "\r\nContent-Type: text/html; charset=UTF-8\r\n"
                        "Content-Transfer-Encoding: base64\r\n\r\n");
        sb_b64(out, (const unsigned char *)body, blen);
    } else {
        char *txt = wp_xasprintf("%s: see the attachments.\r\n", subject);
        wp_sb_puts(out, "\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                        "Content-Transfer-Encoding: base64\r\n\r\n");
        sb_b64(out, (const unsigned char *)txt, strlen(txt));
        free(txt);
    }
    free(body);
    /* the PDF first, then the CSVs by name */
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        free(copy);
        copy = wp_xstrdup(files);
        for (char *f = strtok_r(copy, "\n", &save); f != NULL; f = strtok_r(NULL, "\n", &save)) {
            if (strcmp(f, "report.html") == 0 || (strcmp(f, "report.pdf") == 0) != (pass == 0)) {
                continue;
            }
            char *path = wp_xasprintf("%s/%s", dir, f);
            rc = read_file(path, &body, &blen);
            free(path);
            if (rc < 0) {
                snprintf(err, errlen, "%s/%s: %s", dir, f, wp_strerror(rc));
                break;
            }
            /* report.pdf -> watchpost-weekly-2026-W47.pdf, report-x.csv -> ...-x.csv
             */
            char *name = wp_xasprintf("watchpost-%s-%s%s", k->kind, p->label, f + strlen("report"));
            wp_sb_puts(out, "--");
            wp_sb_puts(out, boundary);
            wp_sb_puts(out, "\r\nContent-Type: ");
            wp_sb_puts(out, mime_of(f));
            wp_sb_puts(out, "; name=\"");
            wp_sb_puts(out, name);
            wp_sb_puts(out, "\"\r\nContent-Disposition: attachment; filename=\"");
            wp_sb_puts(out, name);
            wp_sb_puts(out, "\"\r\nContent-Transfer-Encoding: base64\r\n\r\n");
            sb_b64(out, (const unsigned char *)body, blen);
            free(name);
            free(body);
            body = NULL;
        }
    }
    wp_sb_puts(out, "--");
    wp_sb_puts(out, boundary);
    wp_sb_puts(out, "--\r\n");
    free(copy);
    return rc;
}

/* Queue one message per destination (and per address, through mail_via).
 * Returns the number queued now (already queued ones are left alone), or <0
 * with err. */
static int queue_mails(const struct coll_conf *conf, const struct rsched_kconf *k,
                       const struct rep_period *p, const char *dir, const char *files,
                       int64_t now_ms, char *err, size_t errlen)
{
    const struct rsched_conf *rc = conf->reports;
    const struct notify_conf *n = conf->notify;
    struct outbox *ob = NULL;
    char *path = wp_xasprintf("%s/incidents.db", conf->state_dir);
    char key[96], ctx[256];
    int queued = 0;
    int r = outbox_open(path, NULL, &ob);

    free(path);
    if (r < 0) {
        snprintf(err, errlen, "outbox: %s", wp_strerror(r));
        return r;
    }
    snprintf(key, sizeof(key), "%s/%s", k->kind, p->label);
    snprintf(ctx, sizeof(ctx), "{\"kind\":\"%s\",\"period\":\"%s\"}", k->kind, p->label);
    for (size_t i = 0; i < k->recipients.n && r >= 0; i++) {
        const char *rcp = k->recipients.v[i];
        const struct notify_dest *d =
            strchr(rcp, '@') != NULL ? email_dest(n, rc->mail_via) : email_dest(n, rcp);
        const char *const *to = NULL;
        size_t nto = 0;
        char event_id[300];
        if (d == NULL) {
            snprintf(err, errlen, "recipient %s: no such email destination", rcp);
            r = -EINVAL;
            break;
        }
        if (strchr(rcp, '@') != NULL) {
            to = (const char *const *)&k->recipients.v[i];
            nto = 1;
            snprintf(event_id, sizeof(event_id), "%s-report-%s-%s-%s", d->name, k->kind, p->label,
                     rcp);
        } else {
            to = (const char *const *)d->to.v;
            nto = d->to.n;
            snprintf(event_id, sizeof(event_id), "%s-report-%s-%s", d->name, k->kind, p->label);
        }
        struct wp_sb mail = {NULL, 0, 0};
        struct wp_sb rcpt = {NULL, 0, 0};
        wp_sb_add(&rcpt, "", 0);
        for (size_t j = 0; j < nto; j++) {
            wp_sb_puts(&rcpt, to[j]);
            wp_sb_puts(&rcpt, "\n");
        }
        /* the Message-ID's tag: the destination, and the address of a single recipient */
        char tag[300];
        int single = strchr(rcp, '@') != NULL;
        snprintf(tag, sizeof(tag), "%s%s%s", d->name, single ? "." : "", single ? rcp : "");
        for (char *c = tag; *c != '\0'; c++) {
            *c = *c == '@' ? '=' : *c;
        }
        r = render_report_mail(k, p, dir, files, d->from, to, nto, n->domain, tag, now_ms, &mail,
                               err, errlen);
        if (r == 0) {
            r = outbox_queue_rendered(ob, event_id, d->name, key, "report", ctx, "SMTP", d->url, "",
                                      mail.p, mail.n, rcpt.p, now_ms);
            if (r < 0) {
                snprintf(err, errlen, "outbox: %s", outbox_errmsg(ob));
            } else if (r == 0) {
                queued++;
            }
        }
        free(mail.p);
        free(rcpt.p);
    }
    outbox_close(ob);
    return r < 0 ? r : queued;
}

/* ---- the job
 * ------------------------------------------------------------------------------
 */

static int write_html(const struct rdoc *d, const char *path)
{
    FILE *fp = fopen(path, "we");
    int rc = fp == NULL ? -errno : rdoc_write_html(d, fp);
    if (fp != NULL && fclose(fp) != 0 && rc == 0) {
        rc = -errno;
    }
    return rc;
}

/* Generate the report of k for p into a new directory tmp. */
static int generate(const struct coll_conf *conf, const struct rsched_kconf *k,
                    const struct rep_period *p, const char *tmp, char *err, size_t errlen)
{
    struct rsched_job j = {.state_dir = conf->state_dir,
                           .rrd_dir = conf->rrd.dir,
                           .lang = k->lang,
                           .schedule = k->schedule,
                           .limits = k->has_limits ? &k->lim : NULL,
                           .kind = k->kind,
                           .cur = *p,
                           .unit = k->when.unit};
    struct rdoc *d = NULL;
    int rc = k->k->build(&j, &d, err, errlen);

    if (rc < 0) {
        return rc;
    }
    if (mkdir(tmp, 0750) != 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        rdoc_free(d);
        return rc;
    }
    if (k->fmts & RSCHED_FMT_HTML) {
        char *path = wp_xasprintf("%s/report.html", tmp);
        rc = write_html(d, path);
        if (rc < 0) {
            snprintf(err, errlen, "%s: %s", path, wp_strerror(rc));
        }
        free(path);
    }
#ifdef WP_HAVE_PDF
    if (rc == 0 && (k->fmts & RSCHED_FMT_PDF)) {
        char *path = wp_xasprintf("%s/report.pdf", tmp);
        rc = rdoc_write_pdf(d, path, err, errlen);
        free(path);
    }
#endif
    if (rc == 0 && (k->fmts & RSCHED_FMT_CSV)) {
        char what[256];
        int n = rdoc_write_csv_dir(d, tmp, "report", what, sizeof(what));
        if (n < 0) {
            rc = n;
            snprintf(err, errlen, "%s: %s", what, wp_strerror(n));
        }
    }
    rdoc_free(d);
    return rc;
}

/* Remove what is older than keep (rows and directories). */
static void prune(sqlite3 *h, const struct rsched_conf *rc, int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    int64_t before = now_ms - rc->keep_ms;

    if (sqlite3_prepare_v2(h, "SELECT kind, period FROM reports WHERE created_ms < ?1", -1, &st,
                           NULL) != SQLITE_OK) {
        return;
    }
    sqlite3_bind_int64(st, 1, before);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *kind = (const char *)sqlite3_column_text(st, 0);
        const char *period = (const char *)sqlite3_column_text(st, 1);
        if (rsched_valid_name(kind) && rsched_valid_name(period)) {
            char *dir = wp_xasprintf("%s/%s/%s", rc->archive_dir, kind, period);
            rm_dir(dir);
            printf("removed %s (older than keep)\n", dir);
            free(dir);
        }
    }
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(h, "DELETE FROM reports WHERE created_ms < ?1", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_int64(st, 1, before);
        sqlite3_step(st);
        sqlite3_finalize(st);
    }
}

/* Leftovers of a job that died: temporary directories of this kind. */
static void clean_tmp(const char *kdir)
{
    DIR *d = opendir(kdir);
    struct dirent *de;

    while (d != NULL && (de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, ".tmp-", 5) == 0 || strncmp(de->d_name, ".old-", 5) == 0) {
            char *p = wp_xasprintf("%s/%s", kdir, de->d_name);
            rm_dir(p);
            free(p);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
}

static int job(const struct coll_conf *conf, const char *kind, const char *period, int force,
               int no_mail)
{
    const struct rsched_conf *rc = conf->reports;
    const struct rsched_kconf *k = NULL;
    struct rep_period p;
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    char err[768] = "";
    char *kdir = NULL, *dir = NULL, *tmp = NULL, *old = NULL, *files = NULL;
    int64_t now = wp_clock_now_ms();
    int64_t bytes = 0;
    int have_row = 0, mailed = 0, status = 1;
    struct stat sst;

    for (size_t i = 0; rc != NULL && i < rc->neff; i++) {
        if (strcmp(rc->eff[i].kind, kind) == 0) {
            k = &rc->eff[i];
        }
    }
    if (k == NULL) {
        fprintf(stderr, "report job: no report kind \"%s\" (reports: in %s)\n", kind, conf->path);
        return 2;
    }
    if (kind_period(k, rsched_last_due(&k->when, now), period, &p) < 0) {
        fprintf(stderr, "report job: bad period \"%s\" for %s\n", period, kind);
        return 2;
    }
    if (db_open(conf->state_dir, 1, &h, err, sizeof(err)) < 0) {
        goto out;
    }
    if (sqlite3_prepare_v2(h, "SELECT mailed FROM reports WHERE kind = ?1 AND period = ?2", -1, &st,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, p.label, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            have_row = 1;
            mailed = sqlite3_column_int(st, 0);
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    kdir = wp_xasprintf("%s/%s", rc->archive_dir, kind);
    dir = wp_xasprintf("%s/%s", kdir, p.label);
    tmp = wp_xasprintf("%s/.tmp-%s-%d", kdir, p.label, (int)getpid());
    old = wp_xasprintf("%s/.old-%s-%d", kdir, p.label, (int)getpid());
    int r = mkdir_p(kdir, 0750);
    if (r < 0) {
        snprintf(err, sizeof(err), "%s: %s", kdir, wp_strerror(r));
        goto out;
    }
    clean_tmp(kdir);
    int exists = stat(dir, &sst) == 0;
    if (!exists || force) {
        if (generate(conf, k, &p, tmp, err, sizeof(err)) < 0) {
            rm_dir(tmp);
            goto out;
        }
        if (exists && rename(dir, old) != 0) {
            snprintf(err, sizeof(err), "%s: %s", dir, strerror(errno));
            rm_dir(tmp);
            goto out;
        }
        if (rename(tmp, dir) != 0) {
            snprintf(err, sizeof(err), "%s: %s", dir, strerror(errno));
            rm_dir(tmp);
            goto out;
        }
        if (exists) {
            rm_dir(old);
        }
        printf("generated %s\n", dir);
        have_row = 0; /* (re)record */
    }
    if (!have_row) {
        files = dir_files(dir, &bytes);
        if (sqlite3_prepare_v2(h,
                               "INSERT INTO reports(kind, period, created_ms, from_ms, to_ms,"
                               " bytes, files) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                               " ON CONFLICT(kind, period) DO UPDATE SET created_ms = ?3,"
                               " bytes = ?6, files = ?7",
                               -1, &st, NULL) != SQLITE_OK) {
            snprintf(err, sizeof(err), "reports: %s", sqlite3_errmsg(h));
            goto out;
        }
        sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, p.label, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, now);
        sqlite3_bind_int64(st, 4, p.from_ms);
        sqlite3_bind_int64(st, 5, p.to_ms);
        sqlite3_bind_int64(st, 6, bytes);
        sqlite3_bind_text(st, 7, files, -1, SQLITE_STATIC);
        int step = sqlite3_step(st);
        sqlite3_finalize(st);
        st = NULL;
        if (step != SQLITE_DONE) {
            snprintf(err, sizeof(err), "reports: %s", sqlite3_errmsg(h));
            goto out;
        }
    }
    if (!mailed && !no_mail && k->recipients.n > 0 && conf->notify != NULL) {
        if (files == NULL) {
            files = dir_files(dir, &bytes);
        }
        int q = queue_mails(conf, k, &p, dir, files, now, err, sizeof(err));
        if (q < 0) {
            goto out;
        }
        if (sqlite3_prepare_v2(h, "UPDATE reports SET mailed = 1 WHERE kind = ?1 AND period = ?2",
                               -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, p.label, -1, SQLITE_STATIC);
            sqlite3_step(st);
            sqlite3_finalize(st);
            st = NULL;
        }
        printf("mail queued for %s %s: %d message(s)\n", kind, p.label, q);
    }
    prune(h, rc, now);
    printf("ok %s %s\n", kind, p.label);
    status = 0;
out:
    if (status != 0) {
        fprintf(stderr, "report %s %s failed: %s\n", kind, p.label, err);
    }
    sqlite3_close(h);
    free(kdir);
    free(dir);
    free(tmp);
    free(old);
    free(files);
    return status;
}

int rsched_job_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"period", required_argument, NULL, 'p'},
        {"force", no_argument, NULL, 'f'},
        {"no-mail", no_argument, NULL, 'n'},
        {NULL, 0, NULL, 0},
    };
    const char *config = "/etc/watchpost/collector.yaml", *period = NULL;
    int force = 0, no_mail = 0, opt = 0;
    struct wp_conf_err cerr;
    struct coll_conf *conf = NULL;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 'p':
            period = optarg;
            break;
        case 'f':
            force = 1;
            break;
        case 'n':
            no_mail = 1;
            break;
        default:
            fprintf(stderr, "usage: watchpost-collector --report-job KIND [--period P] [--force] "
                            "[--no-mail] -c FILE\n");
            return 2;
        }
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "report job: expected one report kind\n");
        return 2;
    }
    if (coll_conf_load(config, &cerr, &conf) < 0) {
        fprintf(stderr, "%s\n", cerr.msg);
        return 1;
    }
    int rc = job(conf, argv[optind], period, force, no_mail);
    coll_conf_free(conf);
    return rc;
}

/* ---- the scheduler
 * ------------------------------------------------------------------------ */

struct rsched {
    struct coll_server *s;
    const struct rsched_conf *c;
    char exe[PATH_MAX];
    char *conf_path;
    char *log_path;
    uv_process_t proc;
    int running;
    size_t run_kind;
    char run_label[32];
    int run_manual;
    int stopping;
    int64_t run_started_ms;
    int64_t next_check_ms;
    char (*done)[32];  /* per kind: the last period known to be in the archive */
    int64_t *retry_at; /* per kind */
    int *fails;        /* per kind */
    struct rsched_stats st;
};

static int64_t backoff(const struct rsched *r, int fails)
{
    int64_t d = r->c->retry_min_ms;
    for (int i = 1; i < fails && d < r->c->retry_max_ms; i++) {
        d *= 2;
    }
    return d < r->c->retry_max_ms ? d : r->c->retry_max_ms;
}

/* The last line of the job's output (its result or the reason it failed). */
static void last_line(const char *path, char *buf, size_t len)
{
    char *text = NULL;
    size_t n = 0;

    buf[0] = '\0';
    if (read_file(path, &text, &n) < 0) {
        return;
    }
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r')) {
        text[--n] = '\0';
    }
    const char *nl = strrchr(text, '\n');
    snprintf(buf, len, "%s", nl != NULL ? nl + 1 : text);
    free(text);
}

/* Each line of a successful job's output (what it made, mailed, removed), at most 20. */
static void log_output(const char *path, const char *kind, const char *label)
{
    char *text = NULL;
    size_t n = 0;
    char *save = NULL;
    int lines = 0;

    if (read_file(path, &text, &n) < 0) {
        return;
    }
    for (char *l = strtok_r(text, "\n", &save); l != NULL && lines < 20;
         l = strtok_r(NULL, "\n", &save), lines++) {
        WP_INFO("report", "%s %s: %s", kind, label, l);
    }
    free(text);
}

static void rsched_free(struct rsched *r)
{
    free(r->conf_path);
    free(r->log_path);
    free(r->done);
    free(r->retry_at);
    free(r->fails);
    free(r);
}

static void proc_closed(uv_handle_t *h)
{
    struct rsched *r = h->data;
    r->running = 0;
    r->next_check_ms = 0; /* the next kind at the next tick, not after CHECK_EVERY_MS */
    if (r->stopping) {
        rsched_free(r);
    }
}

static void proc_exit(uv_process_t *p, int64_t status, int signal)
{
    struct rsched *r = p->data;
    const struct rsched_kconf *k = &r->c->eff[r->run_kind];
    char line[512];
    int64_t now = wp_clock_now_ms();

    last_line(r->log_path, line, sizeof(line));
    if (status == 0 && signal == 0) {
        if (!r->run_manual) {
            snprintf(r->done[r->run_kind], sizeof(r->done[0]), "%s", r->run_label);
        }
        r->fails[r->run_kind] = 0;
        r->retry_at[r->run_kind] = 0;
        r->st.ok++;
        log_output(r->log_path, k->kind, r->run_label);
    } else {
        r->st.failed++;
        if (!r->run_manual) {
            r->fails[r->run_kind]++;
            int64_t wait = backoff(r, r->fails[r->run_kind]);
            r->retry_at[r->run_kind] = now + wait;
            WP_ERROR("report", "%s %s not made (%s%s); retry in %" PRId64 " s", k->kind,
                     r->run_label, signal != 0 ? "killed: " : "",
                     line[0] != '\0' ? line : "no output", wait / 1000);
        } else {
            WP_ERROR("report", "%s %s (run on request) failed: %s", k->kind, r->run_label,
                     line[0] != '\0' ? line : "no output");
        }
    }
    uv_close((uv_handle_t *)p, proc_closed);
}

static int spawn(struct rsched *r, size_t ki, const char *label, int manual, int force)
{
    const struct rsched_kconf *k = &r->c->eff[ki];
    char *args[12];
    int n = 0;
    uv_process_options_t o;
    uv_stdio_container_t io[3];

    int fd = open(r->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        WP_ERROR("report", "%s: %s", r->log_path, strerror(errno));
        return -errno;
    }
    args[n++] = r->exe;
    args[n++] = "--report-job";
    args[n++] = (char *)(uintptr_t)k->kind;
    args[n++] = "-c";
    args[n++] = r->conf_path;
    if (label != NULL) {
        args[n++] = "--period";
        args[n++] = (char *)(uintptr_t)label;
    }
    if (force) {
        args[n++] = "--force";
        args[n++] = "--no-mail";
    }
    args[n] = NULL;
    memset(&o, 0, sizeof(o));
    memset(io, 0, sizeof(io));
    io[0].flags = UV_IGNORE;
    io[1].flags = UV_INHERIT_FD;
    io[1].data.fd = fd;
    io[2].flags = UV_INHERIT_FD;
    io[2].data.fd = fd;
    o.file = r->exe;
    o.args = args;
    o.exit_cb = proc_exit;
    o.stdio = io;
    o.stdio_count = 3;
    r->proc.data = r;
    int rc = uv_spawn(r->s->loop, &r->proc, &o);
    close(fd);
    if (rc < 0) {
        WP_ERROR("report", "cannot start the report job %s: %s", r->exe, uv_strerror(rc));
        uv_close((uv_handle_t *)&r->proc, proc_closed);
        r->running = 1; /* until closed */
        return rc;
    }
    r->running = 1;
    r->run_kind = ki;
    r->run_manual = manual;
    r->run_started_ms = wp_clock_now_ms();
    snprintf(r->run_label, sizeof(r->run_label), "%s", label != NULL ? label : "");
    r->st.runs++;
    WP_INFO("report", "%s %s: making the report (pid %d)", k->kind, r->run_label, r->proc.pid);
    return 0;
}

int rsched_start(struct coll_server *s, struct rsched **out)
{
    const struct rsched_conf *c = s->conf->reports;
    *out = NULL;
    if (c == NULL) {
        return 0;
    }
    struct rsched *r = wp_xcalloc(1, sizeof(*r));
    ssize_t n = readlink("/proc/self/exe", r->exe, sizeof(r->exe) - 1);
    if (n <= 0) {
        WP_ERROR("report", "cannot find the collector's own binary: %s", strerror(errno));
        free(r);
        return -errno;
    }
    r->exe[n] = '\0';
    r->s = s;
    r->c = c;
    char *rp = realpath(s->conf->path, NULL);
    r->conf_path = rp != NULL ? rp : wp_xstrdup(s->conf->path);
    r->log_path = wp_xasprintf("%s/report-job.log", s->conf->state_dir);
    r->done = wp_xcalloc(c->neff, sizeof(*r->done));
    r->retry_at = wp_xcalloc(c->neff, sizeof(*r->retry_at));
    r->fails = wp_xcalloc(c->neff, sizeof(*r->fails));
    int rc = mkdir_p(c->archive_dir, 0750);
    if (rc < 0) {
        WP_ERROR("report", "archive %s: %s", c->archive_dir, wp_strerror(rc));
    }
    r->next_check_ms = wp_clock_now_ms() + 2000; /* let the collector settle first */
    *out = r;
    return 0;
}

void rsched_tick(struct rsched *r, int64_t now_ms)
{
    if (r == NULL) {
        return;
    }
    if (r->running) {
        if (r->proc.pid > 0 && now_ms - r->run_started_ms > JOB_TIMEOUT_MS &&
            !uv_is_closing((uv_handle_t *)&r->proc)) {
            WP_ERROR("report", "the report job took over %d min: stopping it",
                     JOB_TIMEOUT_MS / 60000);
            uv_process_kill(&r->proc, SIGKILL);
        }
        return;
    }
    if (now_ms < r->next_check_ms) {
        return;
    }
    r->next_check_ms = now_ms + CHECK_EVERY_MS;
    for (size_t i = 0; i < r->c->neff; i++) {
        const struct rsched_kconf *k = &r->c->eff[i];
        struct rep_period p;
        if (!k->enabled || now_ms < r->retry_at[i]) {
            continue;
        }
        if (kind_period(k, rsched_last_due(&k->when, now_ms), NULL, &p) < 0) {
            continue;
        }
        if (strcmp(r->done[i], p.label) == 0) {
            continue;
        }
        /* the job itself finds out whether the archive has it: at most one short
         * run per kind and period after a restart */
        if (spawn(r, i, p.label, 0, 0) == 0) {
            return;
        }
        r->fails[i]++;
        r->retry_at[i] = now_ms + backoff(r, r->fails[i]);
        return;
    }
}

int rsched_run(struct rsched *r, const char *kind, const char *period, int force)
{
    struct rep_period p;

    if (r == NULL) {
        return -ENOTSUP;
    }
    for (size_t i = 0; i < r->c->neff; i++) {
        if (strcmp(r->c->eff[i].kind, kind) != 0) {
            continue;
        }
        const struct rsched_kconf *k = &r->c->eff[i];
        if (kind_period(k, rsched_last_due(&k->when, wp_clock_now_ms()),
                        period != NULL && period[0] != '\0' ? period : NULL, &p) < 0) {
            return -EINVAL;
        }
        if (r->running) {
            return -EBUSY;
        }
        return spawn(r, i, p.label, 1, force);
    }
    return -EINVAL;
}

void rsched_stop(struct rsched *r)
{
    if (r == NULL) {
        return;
    }
    if (r->running) {
        /* the handle is freed with r once libuv is done with it */
        r->stopping = 1;
        if (!uv_is_closing((uv_handle_t *)&r->proc)) {
            uv_process_kill(&r->proc, SIGTERM);
            uv_close((uv_handle_t *)&r->proc, proc_closed);
        }
        return;
    }
    rsched_free(r);
}

void rsched_stats(const struct rsched *r, struct rsched_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (r != NULL) {
        *out = r->st;
        out->running = r->running;
    }
}
