/* SPDX-License-Identifier: Apache-2.0 */
/* GET /api/v1/hosts/{host}: one agent with the latest value of each of its series fields and
 * its open incidents; GET /api/v1/graph: its series drawn by rrd_graph_v (SVG or PNG) with the
 * thresholds of the matching rules as HRULE lines.
 *
 * Nothing from the query reaches a file path or an rrdtool argument unchecked: the host must
 * be a known agent, a metric must be GROUP.FIELD of one of its registered series ([a-z0-9_.]
 * only), an instance must be one the registry holds for it, and the RRD file is the one the
 * registry names (built by the writer from sanitised names), below rrd.dir. Ranges come from a
 * list, start/end are plain integers and width/height are bounded. Legends and the title are
 * reduced to a safe character set and rule names to the rule name syntax. */
#include "http_graph.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <rrd.h>

#include "coll.h"
#include "coll_conf.h"
#include "coll_rules.h"
#include "db.h"
#include "http.h"
#include "incident.h"
#include "rrdw.h"
#include "rules.h"
#include "wp/clock.h"
#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"
#include "wp/wire.h"

#define MAX_SERIES     16  /* lines on one graph */
#define MAX_METRICS    8   /* metric= parameters */
#define MAX_HRULES     8   /* threshold lines */
#define METRIC_MAX     128 /* bytes of GROUP.FIELD */
#define INST_MAX       255
#define WIDTH_MIN      100
#define WIDTH_MAX      2000
#define HEIGHT_MIN     50
#define HEIGHT_MAX     1000
#define SPAN_MAX_S     (2 * 366 * 86400LL)
#define FLUSH_EVERY_MS 1000 /* at most one write-behind flush kicked per second */

#ifdef __SANITIZE_ADDRESS__
/* LeakSanitizer: librrd 1.7 loses the key strings of the legend entries of every
 * rrd_graph_v() call (a few dozen bytes per legend) and pango/fontconfig keep caches for the
 * process; neither is ours to free. Weak: report.c has the same hooks for the CLI (its
 * strong definitions win where both are linked). Symbolising those stacks needs
 * ASAN_OPTIONS=fast_unwind_on_malloc=0 (librrd has no frame pointers). */
__attribute__((weak)) const char *__lsan_default_suppressions(void);
__attribute__((weak)) const char *__lsan_default_suppressions(void)
{
    return "leak:librrd.so\nleak:libfontconfig.so\nleak:libpango\nleak:libcairo.so\n";
}
#endif

static int64_t last_flush_ms;

/* ---- registry rows of one agent ---- */

struct srow {
    char *group, *inst, *file;
    char **fields;
    uint32_t nfields;
    uint32_t step_s;
    int type;
};

struct srows {
    const char *agent;
    struct srow *v;
    size_t n, cap;
};

static char *wstr(const struct wp_str *s)
{
    return wp_xstrndup(s->p != NULL ? s->p : "", s->len);
}

static int srow_cb(void *arg, const char *agent, const struct wp_series_def *d, const char *file)
{
    struct srows *r = arg;

    if (strcmp(agent, r->agent) != 0) {
        return 0;
    }
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->v = wp_xrealloc(r->v, r->cap * sizeof(*r->v));
    }
    struct srow *x = &r->v[r->n++];
    memset(x, 0, sizeof(*x));
    x->group = wstr(&d->group);
    x->inst = wstr(&d->inst);
    x->file = wp_xstrdup(file != NULL ? file : "");
    x->nfields = d->nfields;
    x->fields = wp_xcalloc(d->nfields + 1, sizeof(char *));
    for (uint32_t i = 0; i < d->nfields; i++) {
        x->fields[i] = wstr(&d->fields[i]);
    }
    x->step_s = d->step_s;
    x->type = d->type;
    return 0;
}

static void srows_free(struct srows *r)
{
    for (size_t i = 0; i < r->n; i++) {
        for (uint32_t f = 0; f < r->v[i].nfields; f++) {
            free(r->v[i].fields[f]);
        }
        free(r->v[i].fields);
        free(r->v[i].group);
        free(r->v[i].inst);
        free(r->v[i].file);
    }
    free(r->v);
}

static int srows_load(struct coll_server *s, const char *agent, struct srows *r)
{
    memset(r, 0, sizeof(*r));
    r->agent = agent;
    return coll_db_series_each(s->db, srow_cb, r) < 0 ? -1 : 0;
}

/* The registry's file, relative to rrd.dir, as a full path; NULL if it does not look like one
 * the writer makes (relative, no "." or ".." component). */
static char *rrd_path(struct coll_server *s, const char *file)
{
    if (file[0] == '\0' || file[0] == '/' || strstr(file, "//") != NULL) {
        return NULL;
    }
    for (const char *p = file; *p != '\0';) {
        const char *e = strchr(p, '/');
        size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) {
            return NULL;
        }
        p += n + (e != NULL);
    }
    for (const char *p = file; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20) {
            return NULL;
        }
    }
    return wp_xasprintf("%s/%s", s->conf->rrd.dir, file);
}

/* ---- helpers ---- */

static json_t *jstr(const char *s)
{
    json_t *j = json_string(s != NULL ? s : "");
    if (j == NULL) { /* not UTF-8: replace what is not ASCII */
        char *c = wp_xstrdup(s);
        for (char *p = c; *p != '\0'; p++) {
            if ((unsigned char)*p >= 0x80) {
                *p = '?';
            }
        }
        j = json_string(c);
        free(c);
    }
    return j != NULL ? j : json_string("");
}

static struct coll_agent *find_agent(struct coll_server *s, const char *name)
{
    struct coll_agent *by_host = NULL;

    for (size_t i = 0; i < s->agents_cap; i++) {
        for (struct coll_agent *a = s->agents[i]; a != NULL; a = a->hnext) {
            if (strcmp(a->id, name) == 0) {
                return a;
            }
            if (by_host == NULL && a->host != NULL && strcmp(a->host, name) == 0) {
                by_host = a;
            }
        }
    }
    return by_host;
}

/* Write-behind: kick a flush of everything pending (at most once a second); the reply shows
 * what is on disk now, the flush lands within milliseconds for the next request. */
static void flush_done(void *arg)
{
    (void)arg;
}

static void kick_flush(struct coll_server *s)
{
    struct wp_rrdw_stats st;
    int64_t now = wp_clock_mono_ms();

    if (s->rrdw == NULL) {
        return;
    }
    wp_rrdw_stats(s->rrdw, &st);
    if (st.pending_rows > 0 && now - last_flush_ms >= FLUSH_EVERY_MS) {
        last_flush_ms = now;
        wp_rrdw_flush_all(s->rrdw, flush_done, NULL);
    }
}

/* A copy of s reduced to characters safe in an rrdtool legend or title. */
static char *safe_text(const char *s, size_t max)
{
    size_t n = strlen(s);
    char *o = NULL;

    if (n > max) {
        n = max;
    }
    o = wp_xstrndup(s, n);
    for (char *p = o; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '/' || c == '-' || c == ' ' || c == '>' || c == '<' ||
              c == '=' || c == '(' || c == ')')) {
            *p = '_';
        }
    }
    return o;
}

/* An RRD path inside a DEF: ':' and '\' escaped. */
static char *def_escape(const char *path)
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

/* ---- GET /api/v1/hosts/{host} ---- */

struct inc_ctx {
    const char *host, *id;
    json_t *arr;
    int64_t now_ms;
};

static int inc_cb(void *arg, const struct inc_row *r)
{
    struct inc_ctx *c = arg;

    if (strcmp(r->host, c->host) != 0 && strcmp(r->host, c->id) != 0) {
        return 0;
    }
    int64_t due = r->status == INC_OPEN ? r->response_due_ms : r->resolve_due_ms;
    json_array_append_new(
        c->arr, json_pack("{s:I,s:s,s:i,s:o,s:o,s:o,s:I,s:o,s:o}", "id", (json_int_t)r->id,
                          "status", inc_status_name(r->status), "priority", r->priority, "rule",
                          jstr(r->rule), "summary", jstr(r->summary), "category", jstr(r->category),
                          "opened_ms", (json_int_t)r->opened_ms, "deadline_ms",
                          due > 0 ? json_integer(due) : json_null(), "time_left_s",
                          due > 0 ? json_integer((due - c->now_ms) / 1000) : json_null()));
    return 0;
}

/* The latest update of one file: {"updated_ms", "values": {field: number|null}} */
static json_t *latest(struct coll_server *s, const struct srow *x)
{
    json_t *vals = json_object();
    json_t *o = json_object();
    char *path = rrd_path(s, x->file);
    time_t last = 0;
    unsigned long cnt = 0;
    char **names = NULL, **data = NULL;

    for (uint32_t f = 0; f < x->nfields; f++) {
        json_object_set_new(vals, x->fields[f], json_null());
    }
    if (path != NULL) {
        rrd_clear_error();
        if (rrd_lastupdate_r(path, &last, &cnt, &names, &data) == 0) {
            for (unsigned long i = 0; i < cnt; i++) {
                char *end = NULL;
                double v = strtod(data[i], &end);
                if (json_object_get(vals, names[i]) != NULL && end != data[i] && *end == '\0' &&
                    isfinite(v)) {
                    json_object_set_new(vals, names[i], json_real(v));
                }
                free(names[i]);
                free(data[i]);
            }
            free(names);
            free(data);
        } else {
            last = 0;
        }
        rrd_clear_error();
    }
    free(path);
    json_object_set_new(o, "group", jstr(x->group));
    json_object_set_new(o, "instance", jstr(x->inst));
    json_object_set_new(o, "step_s", json_integer(x->step_s));
    json_object_set_new(o, "updated_ms",
                        last > 0 ? json_integer((json_int_t)last * 1000) : json_null());
    json_object_set_new(o, "values", vals);
    return o;
}

static int srow_cmp(const void *pa, const void *pb)
{
    const struct srow *a = pa, *b = pb;
    int c = strcmp(a->group, b->group);
    return c != 0 ? c : strcmp(a->inst, b->inst);
}

static void host_show(struct http_req *req, void *arg)
{
    struct coll_server *s = arg;
    const char *name = req->path + strlen("/api/v1/hosts/");
    struct coll_agent *a = NULL;
    struct srows rows;

    if (name[0] == '\0' || strchr(name, '/') != NULL || strlen(name) > 256) {
        http_respond_error(req, 400, "bad host name");
        return;
    }
    if ((a = find_agent(s, name)) == NULL) {
        http_respond_error(req, 404, "no such host");
        return;
    }
    kick_flush(s);
    if (srows_load(s, a->id, &rows) < 0) {
        srows_free(&rows);
        http_respond_error(req, 500, "cannot read the series registry");
        return;
    }
    if (rows.n > 1) {
        qsort(rows.v, rows.n, sizeof(*rows.v), srow_cmp);
    }
    json_t *series = json_array();
    for (size_t i = 0; i < rows.n; i++) {
        json_array_append_new(series, latest(s, &rows.v[i]));
    }
    srows_free(&rows);

    struct inc_ctx ic = {a->host != NULL ? a->host : a->id, a->id, json_array(), wp_clock_now_ms()};
    struct inc_store *st = coll_rules_store(s);
    if (st != NULL && (inc_list(st, INC_OPEN, 0, inc_cb, &ic) < 0 ||
                       inc_list(st, INC_ACKNOWLEDGED, 0, inc_cb, &ic) < 0)) {
        json_decref(series);
        json_decref(ic.arr);
        http_respond_error(req, 500, "cannot read incidents");
        return;
    }
    json_t *o =
        json_pack("{s:o,s:o,s:o,s:o,s:b,s:I,s:I,s:o,s:o,s:I}", "id", jstr(a->id), "host",
                  jstr(a->host), "version", jstr(a->version), "addr", jstr(a->addr), "connected",
                  a->connected, "first_seen_ms", (json_int_t)a->first_seen * 1000, "last_seen_ms",
                  (json_int_t)a->last_seen * 1000, "series", series, "incidents", ic.arr, "now_ms",
                  (json_int_t)ic.now_ms);
    http_respond_json(req, 200, o);
}

/* ---- GET /api/v1/graph ---- */

static const struct {
    const char *name;
    int64_t secs;
} ranges[] = {
    {"1h", 3600}, {"24h", 86400}, {"7d", 7 * 86400}, {"30d", 30 * 86400}, {"1y", 365 * 86400}};

static const char *const colours[] = {
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
    "#7f7f7f", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d"};

/* A decimal integer of at most 12 digits, the whole string. */
static int parse_num(const char *s, int64_t *out)
{
    int64_t v = 0;
    size_t n = strlen(s);

    if (n == 0 || n > 12) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* The raw metric= values of the query (repeatable). Each must be [a-z0-9_.] literally.
 * Returns the count, or -1 (bad value or too many). */
static int query_metrics(const char *q, char out[][METRIC_MAX + 1])
{
    int n = 0;

    while (q != NULL && *q != '\0') {
        const char *e = strchr(q, '&');
        size_t len = e != NULL ? (size_t)(e - q) : strlen(q);
        if (len > 7 && memcmp(q, "metric=", 7) == 0) {
            size_t vl = len - 7;
            if (n == MAX_METRICS || vl == 0 || vl > METRIC_MAX) {
                return -1;
            }
            for (size_t i = 0; i < vl; i++) {
                char c = q[7 + i];
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.')) {
                    return -1;
                }
            }
            memcpy(out[n], q + 7, vl);
            out[n][vl] = '\0';
            if (strchr(out[n], '.') == NULL || out[n][0] == '.' || out[n][vl - 1] == '.') {
                return -1;
            }
            n++;
        } else if (len == 7 && memcmp(q, "metric=", 7) == 0) {
            return -1;
        }
        q = e != NULL ? e + 1 : NULL;
    }
    return n;
}

static int inst_ok(const char *inst)
{
    size_t n = strlen(inst);

    if (n == 0 || n > INST_MAX) {
        return 0;
    }
    for (const char *p = inst; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == '\\') {
            return 0;
        }
    }
    for (const char *p = inst; *p != '\0';) { /* no "." or ".." component */
        const char *e = strchr(p, '/');
        size_t l = e != NULL ? (size_t)(e - p) : strlen(p);
        if ((l == 1 && p[0] == '.') || (l == 2 && p[0] == '.' && p[1] == '.')) {
            return 0;
        }
        p += l + (e != NULL);
    }
    return 1;
}

/* Does rule r draw a threshold on metric (GROUP.FIELD) of host, instance inst (NULL:
 * several)? */
static int rule_applies(const struct rule_set *rs, const struct rule *r, const char *metric,
                        const char *host, const char *inst)
{
    if (r->kind != RULE_THRESHOLD || r->metric == NULL || !rules_glob(r->metric, metric)) {
        return 0;
    }
    if (r->when.fn == RULE_FN_RATE || r->when.fn == RULE_FN_DELTA || r->when.fn == RULE_FN_COUNT ||
        !isfinite(r->when.threshold)) {
        return 0; /* not in the series' unit */
    }
    if (r->ngroups > 0) {
        int in = 0;
        for (size_t g = 0; g < r->ngroups && !in; g++) {
            in = rules_host_in_group(rs, r->groups[g], host);
        }
        if (!in) {
            return 0;
        }
    }
    for (size_t m = 0; m < r->nmatch; m++) {
        const struct rule_matcher *mt = &r->match[m];
        if (strcmp(mt->label, "host") == 0 && !rules_matcher_ok(mt, host)) {
            return 0;
        }
        if (strcmp(mt->label, "instance") == 0 && inst != NULL && !rules_matcher_ok(mt, inst)) {
            return 0;
        }
    }
    return 1;
}

static const char *cmp_text(enum rule_cmp c)
{
    static const char *const t[] = {">", ">=", "<", "<=", "==", "!="};
    return (unsigned)c < sizeof(t) / sizeof(t[0]) ? t[c] : "?";
}

/* Insert a <desc> listing the legends after the opening <svg ...> tag: cairo draws text as
 * glyph outlines, so this keeps the names readable for screen readers and tests. */
static void *svg_desc(const void *img, size_t len, const char *desc, size_t *out_len)
{
    const char *p = memmem(img, len, "<svg", 4);
    const char *gt = p != NULL ? memchr(p, '>', len - (size_t)(p - (const char *)img)) : NULL;
    char *esc = NULL, *o = NULL;
    size_t at = 0, el = 0;

    if (gt == NULL) {
        return NULL;
    }
    at = (size_t)(gt - (const char *)img) + 1;
    esc = wp_xmalloc(strlen(desc) * 5 + 1);
    for (const char *d = desc; *d != '\0'; d++) {
        const char *r = *d == '<' ? "&lt;" : *d == '>' ? "&gt;" : *d == '&' ? "&amp;" : NULL;
        if (r != NULL) {
            memcpy(esc + el, r, strlen(r));
            el += strlen(r);
        } else {
            esc[el++] = *d;
        }
    }
    esc[el] = '\0';
    o = wp_xasprintf("%.*s\n<desc>%s</desc>%.*s", (int)at, (const char *)img, esc, (int)(len - at),
                     (const char *)img + at);
    *out_len = strlen(o);
    free(esc);
    return o;
}

/* One rrd_graph_v call on the thread pool. librrd 1.7 is not thread-safe for graphs (its
 * option parsing and pango state are shared: rrdtool-1.x issue #867), so graphs go through
 * one queue (http_defer_serial: one at a time, the others wait on the loop, not holding pool
 * threads) and hold graph_mu besides (should anything else in the process draw). */
static struct http_defer_queue graph_q;
static pthread_mutex_t graph_mu = PTHREAD_MUTEX_INITIALIZER;

struct graph_job {
    char *args[16 + 2 * MAX_SERIES + MAX_HRULES + 16];
    int nargs;
    int png;
    char *desc;  /* the SVG <desc> */
    char *agent; /* for the log */
    void *img;   /* the result: NULL if rrd_graph failed */
    size_t len;
    char err[256];
};

static void graph_job_free(struct graph_job *j)
{
    for (int i = 0; i < j->nargs; i++) {
        free(j->args[i]);
    }
    free(j->desc);
    free(j->agent);
    free(j->img);
    free(j);
}

static void graph_work(void *arg)
{
    struct graph_job *j = arg;

    pthread_mutex_lock(&graph_mu);
    rrd_clear_error();
    rrd_info_t *info = rrd_graph_v(j->nargs, j->args);
    for (rrd_info_t *i = info; i != NULL; i = i->next) {
        if (strcmp(i->key, "image") == 0 && i->type == RD_I_BLO && i->value.u_blo.size > 0) {
            free(j->img);
            j->img = wp_xmalloc(i->value.u_blo.size);
            memcpy(j->img, i->value.u_blo.ptr, i->value.u_blo.size);
            j->len = i->value.u_blo.size;
        }
    }
    rrd_info_free(info);
    if (j->img == NULL) {
        snprintf(j->err, sizeof(j->err), "%s", rrd_get_error());
    }
    rrd_clear_error();
    pthread_mutex_unlock(&graph_mu);
    if (j->img != NULL && !j->png) {
        size_t nl = 0;
        void *d = svg_desc(j->img, j->len, j->desc, &nl);
        if (d != NULL) {
            free(j->img);
            j->img = d;
            j->len = nl;
        }
    }
}

/* On the loop: answer (req NULL: the client left). */
static void graph_done(struct http_req *req, void *arg)
{
    struct graph_job *j = arg;

    if (req != NULL && j->img == NULL) {
        WP_WARN("http", "graph of %s failed: %s", j->agent, j->err);
        http_respond_error(req, 500, "rrd_graph failed");
    } else if (req != NULL) {
        http_resp_header(req, "Cache-Control", "private, max-age=10");
        http_respond(req, 200, j->png ? "image/png" : "image/svg+xml", j->img, j->len);
    }
    graph_job_free(j);
}

static void graph(struct http_req *req, void *arg)
{
    struct coll_server *s = arg;
    const char *host = http_req_query(req, "host");
    const char *inst = http_req_query(req, "instance");
    const char *range = http_req_query(req, "range");
    const char *qs = http_req_query(req, "start"), *qe = http_req_query(req, "end");
    const char *fmt = http_req_query(req, "format");
    const char *qw = http_req_query(req, "width"), *qh = http_req_query(req, "height");
    const char *theme = http_req_query(req, "theme");
    char metrics[MAX_METRICS][METRIC_MAX + 1];
    int nmetrics = query_metrics(req->query, metrics);
    int64_t now = wp_clock_now_ms() / 1000, start = 0, end = now, span = 3600;
    int64_t width = 640, height = 160;
    int png = 0;
    struct coll_agent *a = NULL;
    struct srows rows;
    char *args[16 + 2 * MAX_SERIES + MAX_HRULES + 16];
    int n = 0;
    char desc[4096];
    size_t dl = 0;

    memset(&rows, 0, sizeof(rows));
    if (host == NULL || host[0] == '\0' || strlen(host) > 256) {
        http_respond_error(req, 400, "host is required");
        return;
    }
    if (nmetrics <= 0) {
        http_respond_error(req, 400, "metric must be GROUP.FIELD of [a-z0-9_.] (at most 8)");
        return;
    }
    if (inst != NULL && !inst_ok(inst)) {
        http_respond_error(req, 400, "bad instance");
        return;
    }
    if (range != NULL && range[0] != '\0') {
        size_t i = 0;
        for (; i < sizeof(ranges) / sizeof(ranges[0]) && strcmp(ranges[i].name, range) != 0; i++) {
        }
        if (i == sizeof(ranges) / sizeof(ranges[0])) {
            http_respond_error(req, 400, "range must be 1h, 24h, 7d, 30d or 1y");
            return;
        }
        span = ranges[i].secs;
    }
    if ((qe != NULL && parse_num(qe, &end) < 0) || (qs != NULL && parse_num(qs, &start) < 0)) {
        http_respond_error(req, 400, "start and end are Unix seconds");
        return;
    }
    if (qs == NULL) {
        start = end - span;
    } else if (qe == NULL && range != NULL && range[0] != '\0') {
        end = start + span;
    }
    if (end <= start || end - start < 60 || end - start > SPAN_MAX_S || start <= 0) {
        http_respond_error(req, 400, "the window must be 60 s to 2 years, start before end");
        return;
    }
    if (fmt != NULL && strcmp(fmt, "png") == 0) {
        png = 1;
    } else if (fmt != NULL && strcmp(fmt, "svg") != 0) {
        http_respond_error(req, 400, "format must be svg or png");
        return;
    }
    if (theme != NULL && strcmp(theme, "dark") != 0 && strcmp(theme, "light") != 0) {
        http_respond_error(req, 400, "theme must be light or dark");
        return;
    }
    if ((qw != NULL && (parse_num(qw, &width) < 0 || width < WIDTH_MIN || width > WIDTH_MAX)) ||
        (qh != NULL &&
         (parse_num(qh, &height) < 0 || height < HEIGHT_MIN || height > HEIGHT_MAX))) {
        http_respond_error(req, 400, "width must be 100..2000 and height 50..1000");
        return;
    }
    if ((a = find_agent(s, host)) == NULL) {
        http_respond_error(req, 404, "no such host");
        return;
    }
    kick_flush(s);
    if (srows_load(s, a->id, &rows) < 0) {
        srows_free(&rows);
        http_respond_error(req, 500, "cannot read the series registry");
        return;
    }
    if (rows.n > 1) {
        qsort(rows.v, rows.n, sizeof(*rows.v), srow_cmp);
    }

    char *traw = a->host != NULL && a->host[0] != '\0' && strcmp(a->host, a->id) != 0
                     ? wp_xasprintf("%s (%s)", a->id, a->host)
                     : wp_xstrdup(a->id);
    char *title = safe_text(traw, 100);
    free(traw);
    args[n++] = wp_xstrdup("graph");
    args[n++] = wp_xstrdup("-");
    args[n++] = wp_xstrdup("--imgformat");
    args[n++] = wp_xstrdup(png ? "PNG" : "SVG");
    args[n++] = wp_xasprintf("--start=%lld", (long long)start);
    args[n++] = wp_xasprintf("--end=%lld", (long long)end);
    args[n++] = wp_xasprintf("--width=%lld", (long long)width);
    args[n++] = wp_xasprintf("--height=%lld", (long long)height);
    args[n++] = wp_xasprintf("--title=%s", title);
    args[n++] = wp_xstrdup("--disable-rrdtool-tag");
    args[n++] = wp_xstrdup("--border=0");
    args[n++] = wp_xstrdup("--font=DEFAULT:7:DejaVu Sans");
    free(title);
    if (theme != NULL && strcmp(theme, "dark") == 0) { /* the dashboard's colours */
        static const char *const dark[] = {
            "BACK#18212b", "CANVAS#0f141a", "FONT#e8eef4",  "GRID#2f3e4e",   "MGRID#46596d",
            "AXIS#9fb0c0", "ARROW#9fb0c0",  "FRAME#2f3e4e", "SHADEA#18212b", "SHADEB#18212b"};
        for (size_t i = 0; i < sizeof(dark) / sizeof(dark[0]); i++) {
            args[n++] = wp_xasprintf("--color=%s", dark[i]);
        }
    }
    desc[0] = '\0';

    int nseries = 0, nhr = 0, status = 0;
    const char *why = NULL;
    const struct rule_set *rs = coll_rules_set(s);
    for (int m = 0; m < nmetrics && status == 0; m++) {
        int found = 0;
        for (size_t i = 0; i < rows.n && status == 0; i++) {
            const struct srow *x = &rows.v[i];
            size_t gl = strlen(x->group);
            if (strncmp(metrics[m], x->group, gl) != 0 || metrics[m][gl] != '.' ||
                (inst != NULL && strcmp(inst, x->inst) != 0)) {
                continue;
            }
            const char *field = metrics[m] + gl + 1;
            uint32_t f = 0;
            for (; f < x->nfields && strcmp(x->fields[f], field) != 0; f++) {
            }
            if (f == x->nfields) {
                continue;
            }
            found = 1;
            char *path = rrd_path(s, x->file);
            if (path == NULL || access(path, R_OK) != 0) { /* created at the first flush */
                free(path);
                continue;
            }
            if (nseries == MAX_SERIES) {
                status = 400;
                why = "more than 16 series: name an instance";
                free(path);
                break;
            }
            char *esc = def_escape(path);
            char *lraw = x->inst[0] != '\0' ? wp_xasprintf("%s %s", metrics[m], x->inst)
                                            : wp_xstrdup(metrics[m]);
            char *legend = safe_text(lraw, 80);
            args[n++] = wp_xasprintf("DEF:v%d=%s:%s:AVERAGE", nseries, esc, field);
            args[n++] = wp_xasprintf("LINE1:v%d%s: %s", nseries, colours[nseries], legend);
            dl += (size_t)snprintf(desc + dl, sizeof(desc) - dl, "%s%s", dl ? "; " : "", legend);
            dl = dl >= sizeof(desc) ? sizeof(desc) - 1 : dl;
            nseries++;
            free(legend);
            free(lraw);
            free(esc);
            free(path);
        }
        if (!found && status == 0) {
            status = 404;
            why = "no such metric or instance for this host";
        }
        /* thresholds of the rules on this metric */
        for (size_t r = 0; rs != NULL && r < rs->nrules && status == 0 && nhr < MAX_HRULES; r++) {
            const struct rule *ru = &rs->rules[r];
            if (!rule_applies(rs, ru, metrics[m], a->host != NULL ? a->host : a->id, inst)) {
                continue;
            }
            char *lraw =
                wp_xasprintf("%s %s %g", ru->name, cmp_text(ru->when.cmp), ru->when.threshold);
            char *legend = safe_text(lraw, 80);
            args[n++] = wp_xasprintf("HRULE:%.10g#d62728: %s", ru->when.threshold, legend);
            dl += (size_t)snprintf(desc + dl, sizeof(desc) - dl, "%s%s", dl ? "; " : "", legend);
            dl = dl >= sizeof(desc) ? sizeof(desc) - 1 : dl;
            nhr++;
            free(legend);
            free(lraw);
        }
    }
    srows_free(&rows);
    if (status == 0 && nseries == 0) {
        status = 404;
        why = "no data stored for this metric yet";
    }

    if (status != 0) {
        for (int i = 0; i < n; i++) {
            free(args[i]);
        }
        http_respond_error(req, status, why);
        return;
    }
    /* rrd_graph_v reads the files and renders (milliseconds to seconds): off the loop */
    struct graph_job *j = wp_xcalloc(1, sizeof(*j));
    memcpy(j->args, args, (size_t)n * sizeof(args[0]));
    j->nargs = n;
    j->png = png;
    j->desc = wp_xstrdup(desc);
    j->agent = wp_xstrdup(a->id);
    if (http_defer_serial(req, &graph_q, graph_work, graph_done, j) < 0) {
        graph_job_free(j);
        http_respond_error(req, 500, "cannot draw the graph now");
    }
}

int coll_graph_start(struct coll_server *s)
{
    http_route_role(s->http, "GET", "/api/v1/hosts/", HTTP_ROLE_VIEWER, host_show, s);
    http_route_role(s->http, "GET", "/api/v1/graph", HTTP_ROLE_VIEWER, graph, s);
    return 0;
}
