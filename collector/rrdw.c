/* SPDX-License-Identifier: Apache-2.0 */
/* RRD write-behind: rows pend per file on the loop; a writer thread applies them in batches. */
#include "rrdw.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <rrd.h>

#include "rrdq.h"
#include "wp/clock.h"
#include "wp/crc.h"
#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"
#include "wp/wire.h"

#define W_COMP         "rrd"
#define W_MAX_FAILS    3       /* failed updates in a row before a file's rows are dropped */
#define W_LOG_EVERY_MS 60000   /* one failure log per file per minute */
#define W_FUTURE_MS    3600000 /* rows more than 1 h ahead of the wall clock are refused */
#define W_MAX_STEP     86400
#define W_INST_MAX     100 /* sanitised instance bytes kept in a file name */
#define W_DS_NAME_MAX  19

static const struct wp_rrd_archive default_archives[] = {
    {"AVERAGE", 0, 3 * 3600},    {"AVERAGE", 60, 25 * 3600}, {"MAX", 60, 25 * 3600},
    {"AVERAGE", 300, 8 * 86400}, {"MAX", 300, 8 * 86400},    {"AVERAGE", 3600, 400 * 86400},
    {"MIN", 3600, 400 * 86400},  {"MAX", 3600, 400 * 86400},
};

/* Rows from one journal segment, in order. */
struct segrun {
    uint64_t seg;
    uint32_t n;
};

/* A file's rows: one growable array of timestamps and one of values (nvals per row). */
struct rows {
    int64_t *ts;
    double *vals;
    uint32_t n, cap;
    struct segrun *runs;
    uint32_t nruns, runcap;
};

struct wp_rrdw_file {
    struct wp_rrdw_file *hnext; /* hash chain (active files only) */
    struct wp_rrdw_file *next;  /* every file, for cleanup */
    char *rel;                  /* "<agent>/<name>.rrd" */
    char *path;                 /* dir + "/" + rel */
    char *agent;
    char **fields;
    uint32_t nfields;
    int ds_type;
    uint32_t step_s;
    int retired; /* replaced by a file_get with another layout: never renames the file */
    uint64_t phase_ms;
    /* loop thread */
    struct rows pend;
    size_t heap_idx; /* SIZE_MAX when not in the heap; in it iff pend.n > 0 */
    uint64_t due_ms;
    uint32_t fails;
    uint64_t last_log_ms;
    int logged;
    /* writer thread */
    int w_checked;
    int64_t w_last_ms;
};

struct job {
    struct job *next;
    struct wp_rrdw_file *f; /* NULL: a barrier */
    void (*cb)(void *arg);
    void *arg;
    struct rows rows;
    int retired; /* the file was retired when this job was made (read by the writer) */
    int status;
    char err[200];
    uint64_t written, skipped, calls;
    int created;
};

struct joblist {
    struct job *head, *tail;
};

struct segcount {
    uint64_t seg;
    uint64_t n;
};

struct wp_rrdw {
    uv_loop_t *loop;
    uv_timer_t timer;
    uv_async_t async;
    int nclosing;
    int closing;
    char *dir;
    uint64_t interval_ms;
    uint64_t slack_ms;
    uint32_t max_pending;
    uint32_t heartbeat_steps;
    struct wp_rrd_archive *archives;
    size_t narchives;
    /* files */
    struct wp_rrdw_file **buckets;
    size_t nbuckets, nfiles;
    struct wp_rrdw_file *all;
    /* due heap of files with pending rows */
    struct wp_rrdw_file **heap;
    size_t nheap, heapcap;
    uint64_t timer_due; /* UINT64_MAX when stopped */
    /* segment -> pending rows, sorted by segment, live entries from sc_head */
    struct segcount *sc;
    size_t sc_head, sc_len, sc_cap;
    uint64_t inflight_jobs;
    struct wp_rrdw_stats st;
    uint64_t last_reject_log_ms;
    /* shared with the writer */
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct joblist queue, done;
    int stop;
    /* writer thread only */
    char *sbuf;
    size_t scap;
    size_t *soff;
    const char **argv;
    size_t argcap;
};

/* ---- names ------------------------------------------------------------------------------ */

static int group_ok(const char *g)
{
    size_t n = strlen(g);

    if (n == 0 || n > WP_NAME_MAX || g[0] == '.') {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = g[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.')) {
            return 0;
        }
    }
    return 1;
}

static int inst_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

int wp_rrd_file_name(const char *group, const char *inst, char *buf, size_t len)
{
    char s[W_INST_MAX + 1];
    size_t n = 0;
    int changed = 0; /* anything beyond the reversible path mapping */
    int n_int = 0;

    if (!group_ok(group)) {
        return -EINVAL;
    }
    if (inst == NULL || inst[0] == '\0') {
        n_int = snprintf(buf, len, "%s.rrd", group);
        return (n_int < 0 || (size_t)n_int >= len) ? WP_ETOOBIG : 0;
    }
    if (strcmp(inst, "/") == 0) {
        snprintf(s, sizeof(s), "root");
    } else {
        /* "/var/log" -> "var_log": the leading '/' goes, inner ones become '_'; that is
         * reversible only while the raw instance has no '_' of its own */
        const char *p = inst[0] == '/' ? inst + 1 : inst;
        int has_slash = 0;
        int has_us = strchr(p, '_') != NULL;
        for (; *p != '\0'; p++) {
            char c = *p;
            if (n == W_INST_MAX) {
                changed = 1; /* truncated */
                break;
            }
            if (c == '/') {
                has_slash = 1;
                c = '_';
            } else if (!inst_char_ok(c)) {
                changed = 1;
                c = '_';
            }
            s[n++] = c;
        }
        s[n] = '\0';
        if (has_slash && has_us) {
            changed = 1;
        }
        if (n == 0) {
            changed = 1;
        }
    }
    if (changed) {
        uint32_t h = wp_crc32c(0, inst, strlen(inst));
        n_int = snprintf(buf, len, "%s-%s-%08" PRIx32 ".rrd", group, s, h);
    } else {
        n_int = snprintf(buf, len, "%s-%s.rrd", group, s);
    }
    return (n_int < 0 || (size_t)n_int >= len) ? WP_ETOOBIG : 0;
}

static int ds_name_ok(const char *f)
{
    size_t n = strlen(f);

    if (n == 0 || n > W_DS_NAME_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = f[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_')) {
            return 0;
        }
    }
    return 1;
}

static const char *ds_type_name(int t)
{
    switch (t) {
    case WP_DS_GAUGE:
        return "GAUGE";
    case WP_DS_COUNTER:
        return "COUNTER";
    case WP_DS_DERIVE:
        return "DERIVE";
    case WP_DS_ABSOLUTE:
        return "ABSOLUTE";
    default:
        return NULL;
    }
}

/* ---- rows -------------------------------------------------------------------------------- */

static void rows_free(struct rows *r)
{
    free(r->ts);
    free(r->vals);
    free(r->runs);
    memset(r, 0, sizeof(*r));
}

static void rows_reserve(struct rows *r, uint32_t more, uint32_t nvals)
{
    if (r->n + more <= r->cap) {
        return;
    }
    uint32_t cap = r->cap ? r->cap : 16;
    while (cap < r->n + more) {
        cap *= 2;
    }
    r->ts = wp_xrealloc(r->ts, (size_t)cap * sizeof(*r->ts));
    r->vals = wp_xrealloc(r->vals, (size_t)cap * nvals * sizeof(*r->vals));
    r->cap = cap;
}

static void rows_run_add(struct rows *r, uint64_t seg, uint32_t n)
{
    if (r->nruns > 0 && r->runs[r->nruns - 1].seg == seg) {
        r->runs[r->nruns - 1].n += n;
        return;
    }
    if (r->nruns == r->runcap) {
        r->runcap = r->runcap ? r->runcap * 2 : 4;
        r->runs = wp_xrealloc(r->runs, r->runcap * sizeof(*r->runs));
    }
    r->runs[r->nruns].seg = seg;
    r->runs[r->nruns].n = n;
    r->nruns++;
}

/* Append all of src to dst (same nvals). */
static void rows_append(struct rows *dst, const struct rows *src, uint32_t nvals)
{
    if (src->n == 0) {
        return;
    }
    rows_reserve(dst, src->n, nvals);
    memcpy(dst->ts + dst->n, src->ts, (size_t)src->n * sizeof(*src->ts));
    memcpy(dst->vals + (size_t)dst->n * nvals, src->vals,
           (size_t)src->n * nvals * sizeof(*src->vals));
    dst->n += src->n;
    for (uint32_t i = 0; i < src->nruns; i++) {
        rows_run_add(dst, src->runs[i].seg, src->runs[i].n);
    }
}

/* ---- segment counts ---------------------------------------------------------------------- */

static size_t sc_find(const struct wp_rrdw *w, uint64_t seg, int *found)
{
    size_t lo = w->sc_head, hi = w->sc_len;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (w->sc[mid].seg < seg) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = lo < w->sc_len && w->sc[lo].seg == seg;
    return lo;
}

static void sc_add(struct wp_rrdw *w, uint64_t seg, uint64_t n)
{
    int found = 0;
    size_t i = 0;

    if (w->sc_len > w->sc_head && w->sc[w->sc_len - 1].seg == seg) {
        w->sc[w->sc_len - 1].n += n;
        return;
    }
    i = sc_find(w, seg, &found);
    if (found) {
        w->sc[i].n += n;
        return;
    }
    if (w->sc_head > 0 && w->sc_len == w->sc_cap) {
        memmove(w->sc, w->sc + w->sc_head, (w->sc_len - w->sc_head) * sizeof(*w->sc));
        i -= w->sc_head;
        w->sc_len -= w->sc_head;
        w->sc_head = 0;
    }
    if (w->sc_len == w->sc_cap) {
        w->sc_cap = w->sc_cap ? w->sc_cap * 2 : 16;
        w->sc = wp_xrealloc(w->sc, w->sc_cap * sizeof(*w->sc));
    }
    memmove(w->sc + i + 1, w->sc + i, (w->sc_len - i) * sizeof(*w->sc));
    w->sc[i].seg = seg;
    w->sc[i].n = n;
    w->sc_len++;
}

static void sc_sub(struct wp_rrdw *w, uint64_t seg, uint64_t n)
{
    int found = 0;
    size_t i = sc_find(w, seg, &found);

    if (!found) {
        return;
    }
    w->sc[i].n -= n <= w->sc[i].n ? n : w->sc[i].n;
    while (w->sc_head < w->sc_len && w->sc[w->sc_head].n == 0) {
        w->sc_head++;
    }
    if (w->sc_head == w->sc_len) {
        w->sc_head = 0;
        w->sc_len = 0;
    }
}

static void sc_sub_rows(struct wp_rrdw *w, const struct rows *r)
{
    for (uint32_t i = 0; i < r->nruns; i++) {
        sc_sub(w, r->runs[i].seg, r->runs[i].n);
    }
}

/* ---- due heap ---------------------------------------------------------------------------- */

static void heap_set(struct wp_rrdw *w, size_t i, struct wp_rrdw_file *f)
{
    w->heap[i] = f;
    f->heap_idx = i;
}

static void heap_up(struct wp_rrdw *w, size_t i)
{
    struct wp_rrdw_file *f = w->heap[i];

    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (w->heap[p]->due_ms <= f->due_ms) {
            break;
        }
        heap_set(w, i, w->heap[p]);
        i = p;
    }
    heap_set(w, i, f);
}

static void heap_down(struct wp_rrdw *w, size_t i)
{
    struct wp_rrdw_file *f = w->heap[i];

    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= w->nheap) {
            break;
        }
        if (c + 1 < w->nheap && w->heap[c + 1]->due_ms < w->heap[c]->due_ms) {
            c++;
        }
        if (w->heap[c]->due_ms >= f->due_ms) {
            break;
        }
        heap_set(w, i, w->heap[c]);
        i = c;
    }
    heap_set(w, i, f);
}

static void heap_push(struct wp_rrdw *w, struct wp_rrdw_file *f)
{
    if (w->nheap == w->heapcap) {
        w->heapcap = w->heapcap ? w->heapcap * 2 : 64;
        w->heap = wp_xrealloc(w->heap, w->heapcap * sizeof(*w->heap));
    }
    w->heap[w->nheap] = f;
    f->heap_idx = w->nheap;
    w->nheap++;
    heap_up(w, f->heap_idx);
}

static void heap_remove(struct wp_rrdw *w, struct wp_rrdw_file *f)
{
    size_t i = f->heap_idx;

    if (i == SIZE_MAX) {
        return;
    }
    f->heap_idx = SIZE_MAX;
    w->nheap--;
    if (i == w->nheap) {
        return;
    }
    heap_set(w, i, w->heap[w->nheap]);
    heap_down(w, i);
    heap_up(w, w->heap[i]->heap_idx);
}

/* ---- writer thread ----------------------------------------------------------------------- */

static void sbuf_reserve(struct wp_rrdw *w, size_t need)
{
    if (need <= w->scap) {
        return;
    }
    size_t cap = w->scap ? w->scap : 4096;
    while (cap < need) {
        cap *= 2;
    }
    w->sbuf = wp_xrealloc(w->sbuf, cap);
    w->scap = cap;
}

static size_t fmt_u64(char *p, uint64_t u)
{
    char tmp[24];
    size_t n = 0, k = 0;

    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    while (n > 0) {
        p[k++] = tmp[--n];
    }
    return k;
}

/* "1700000000" or "1700000000.5": librrd 1.7 takes fractional seconds. Returns the length. */
static size_t fmt_ts(char *p, int64_t ts_ms)
{
    size_t k = fmt_u64(p, (uint64_t)(ts_ms / 1000));
    int ms = (int)(ts_ms % 1000);

    if (ms != 0) {
        p[k++] = '.';
        p[k++] = (char)('0' + ms / 100);
        p[k++] = (char)('0' + ms / 10 % 10);
        p[k++] = (char)('0' + ms % 10);
    }
    return k;
}

/*
 * Write v into p (room for 32 bytes) for librrd to parse; returns the length. NaN and the
 * infinities are 'U'. Integers print exactly; other values in [1e-4, 1e15) with 17
 * significant digits in fixed point, without printf (which costs ~1 us a value), exact to a
 * few 1e-16; the rest with "%.17g". librrd's own parser is no better than that (measured:
 * 3.6e-16 relative), so stored values match what was sent to about 5e-16.
 */
static size_t fmt_value(char *p, double v)
{
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9, 1e10,
                                   1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20};
    double a = fabs(v);
    size_t k = 0;

    if (!isfinite(v)) {
        p[0] = 'U';
        return 1;
    }
    if (a < 1e15 && v == trunc(v)) {
        if (v < 0) {
            p[k++] = '-';
        }
        return k + fmt_u64(p + k, (uint64_t)a);
    }
    if (a < 1e-4 || a >= 1e15) {
        return (size_t)snprintf(p, 32, "%.17g", v);
    }
    /* digits before the point (0 below 1), then as many after as make 17 in all */
    int intdig = 0;
    while (intdig < 15 && a >= pow10[intdig]) {
        intdig++;
    }
    int frac = 17 - intdig;
    if (intdig == 0) {
        int zeros = 0; /* 0.00ddd: the zeros after the point are not significant */
        while (zeros < 3 && a * pow10[zeros + 1] < 1) {
            zeros++;
        }
        frac += zeros;
    }
    uint64_t m = (uint64_t)llround(a * pow10[frac]);
    char digits[24];
    size_t nd = fmt_u64(digits, m);
    if (v < 0) {
        p[k++] = '-';
    }
    if (nd <= (size_t)frac) {
        p[k++] = '0';
        p[k++] = '.';
        for (size_t i = nd; i < (size_t)frac; i++) {
            p[k++] = '0';
        }
        memcpy(p + k, digits, nd);
        k += nd;
    } else {
        memcpy(p + k, digits, nd - (size_t)frac);
        k += nd - (size_t)frac;
        p[k++] = '.';
        memcpy(p + k, digits + nd - (size_t)frac, (size_t)frac);
        k += (size_t)frac;
    }
    while (p[k - 1] == '0') {
        k--;
    }
    if (p[k - 1] == '.') {
        k--;
    }
    return k;
}

/* The archive list for a step: resolutions below the step become the step, duplicates of one
 * (cf, steps) pair keep the longest. Returns how many were written into out. */
static size_t rra_plan(const struct wp_rrdw *w, uint32_t step, struct wp_rrdq_rra *out)
{
    size_t n = 0;

    for (size_t i = 0; i < w->narchives; i++) {
        const struct wp_rrd_archive *a = &w->archives[i];
        uint64_t res = a->resolution_s ? a->resolution_s : step;
        if (res < step) {
            res = step;
        }
        uint64_t steps = (res + step / 2) / step;
        if (steps == 0) {
            steps = 1;
        }
        uint64_t width = steps * step;
        uint64_t rows = ((uint64_t)a->span_s + width - 1) / width;
        if (rows < 2) {
            rows = 2;
        }
        size_t k = 0;
        for (k = 0; k < n; k++) {
            if (strcmp(out[k].cf, a->cf) == 0 && out[k].pdp_per_row == steps) {
                break;
            }
        }
        if (k < n) {
            if (rows > out[k].rows) {
                out[k].rows = (uint32_t)rows;
            }
            continue;
        }
        snprintf(out[n].cf, sizeof(out[n].cf), "%s", a->cf);
        out[n].pdp_per_row = (uint32_t)steps;
        out[n].rows = rows > UINT32_MAX ? UINT32_MAX : (uint32_t)rows;
        n++;
    }
    return n;
}

/* Create the file (through a temporary name, so a crash never leaves half a file). */
static int file_create(struct wp_rrdw *w, struct wp_rrdw_file *f, int64_t start_s, struct job *jb)
{
    int rc = 0;
    size_t nrra = 0;
    struct wp_rrdq_rra *plan = wp_xcalloc(w->narchives, sizeof(*plan));
    size_t argc = 0;
    char **argv = NULL;
    const char **cargv = NULL;
    char *tmp = wp_xasprintf("%s.tmp", f->path);
    char *adir = wp_xasprintf("%s/%s", w->dir, f->agent);
    uint64_t hb = (uint64_t)w->heartbeat_steps * f->step_s;
    const char *min = (f->ds_type == WP_DS_COUNTER || f->ds_type == WP_DS_DERIVE) ? "0" : "U";

    if (mkdir(adir, 0750) < 0 && errno != EEXIST) {
        rc = -errno;
        snprintf(jb->err, sizeof(jb->err), "mkdir %s: %s", adir, strerror(errno));
        goto out;
    }
    nrra = rra_plan(w, f->step_s, plan);
    argv = wp_xcalloc(f->nfields + nrra, sizeof(*argv));
    for (uint32_t i = 0; i < f->nfields; i++) {
        argv[argc++] = wp_xasprintf("DS:%s:%s:%" PRIu64 ":%s:U", f->fields[i],
                                    ds_type_name(f->ds_type), hb, min);
    }
    for (size_t i = 0; i < nrra; i++) {
        argv[argc++] = wp_xasprintf("RRA:%s:0.5:%" PRIu32 ":%" PRIu32, plan[i].cf,
                                    plan[i].pdp_per_row, plan[i].rows);
    }
    cargv = wp_xcalloc(argc, sizeof(*cargv));
    for (size_t i = 0; i < argc; i++) {
        cargv[i] = argv[i];
    }
    unlink(tmp);
    rrd_clear_error();
    if (rrd_create_r2(tmp, f->step_s, (time_t)start_s, 1, NULL, NULL, (int)argc, cargv) != 0) {
        rc = WP_ERRD;
        snprintf(jb->err, sizeof(jb->err), "create: %s", rrd_get_error());
        rrd_clear_error();
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, f->path) < 0) {
        rc = -errno;
        snprintf(jb->err, sizeof(jb->err), "rename %s: %s", tmp, strerror(errno));
        unlink(tmp);
        goto out;
    }
    jb->created = 1;
out:
    for (size_t i = 0; i < argc; i++) {
        free(argv[i]);
    }
    free(argv);
    free(cargv);
    free(plan);
    free(tmp);
    free(adir);
    return rc;
}

/* Does the file on disk have this entry's step and data sources (names, order, types)? */
static int layout_matches(const struct wp_rrdw_file *f, const struct wp_rrdq_info *in)
{
    if (in->step_s != f->step_s || in->nds != f->nfields) {
        return 0;
    }
    for (uint32_t i = 0; i < f->nfields; i++) {
        if (strcmp(in->ds_names[i], f->fields[i]) != 0 ||
            strcmp(in->ds_types[i], ds_type_name(f->ds_type)) != 0) {
            return 0;
        }
    }
    return 1;
}

/* First write of a file in this process: create it, or learn its last update. */
static int file_check(struct wp_rrdw *w, struct wp_rrdw_file *f, struct job *jb)
{
    int rc = 0;
    struct wp_rrdq_info *in = NULL;
    int64_t start_s = jb->rows.ts[0] / 1000 - (int64_t)f->step_s;

    if (start_s < 1) {
        start_s = 1;
    }
    rc = wp_rrdq_info(f->path, &in);
    if (rc == -ENOENT) {
        /* start one step before the first row, so the first row fills a whole PDP */
        rc = file_create(w, f, start_s, jb);
        if (rc == 0) {
            f->w_last_ms = start_s * 1000;
        }
        goto out;
    }
    if (rc < 0) {
        snprintf(jb->err, sizeof(jb->err), "info: %s",
                 rc == WP_ERRD ? rrd_get_error() : wp_strerror(rc));
        rrd_clear_error();
        goto out;
    }
    if (!layout_matches(f, in)) {
        if (jb->retired) {
            rc = WP_ECONFIG;
            snprintf(jb->err, sizeof(jb->err), "layout on disk differs (old definition)");
            goto out;
        }
        char *aside = wp_xasprintf("%s.old-%" PRId64, f->path, wp_clock_now_ms() / 1000);
        WP_WARN(W_COMP, "layout changed, moving the old file aside file=%s to=%s", f->path, aside);
        if (rename(f->path, aside) < 0) {
            rc = -errno;
            snprintf(jb->err, sizeof(jb->err), "rename aside: %s", strerror(errno));
            free(aside);
            goto out;
        }
        free(aside);
        rc = file_create(w, f, start_s, jb);
        if (rc == 0) {
            f->w_last_ms = start_s * 1000;
        }
        goto out;
    }
    f->w_last_ms = in->last_update_s * 1000;
out:
    wp_rrdq_info_free(in);
    return rc;
}

/* Apply one job: rows at or before the last update are skipped, the rest go in one call. */
static void write_job(struct wp_rrdw *w, struct job *jb)
{
    struct wp_rrdw_file *f = jb->f;
    const struct rows *r = &jb->rows;
    size_t used = 0;
    size_t argc = 0;
    int64_t last = 0;
    int64_t step_ms = (int64_t)f->step_s * 1000;
    int64_t hb_ms = (int64_t)w->heartbeat_steps * step_ms;
    int rc = 0;

    if (!f->w_checked) {
        rc = file_check(w, f, jb);
        if (rc < 0) {
            jb->status = rc;
            return;
        }
        f->w_checked = 1;
    }
    last = f->w_last_ms;
    if ((size_t)r->n * 2 > w->argcap) {
        w->argcap = (size_t)r->n * 2;
        w->soff = wp_xrealloc(w->soff, w->argcap * sizeof(*w->soff));
        w->argv = wp_xrealloc(w->argv, w->argcap * sizeof(*w->argv));
    }
    for (uint32_t i = 0; i < r->n; i++) {
        int64_t ts = r->ts[i];
        if (ts <= last) {
            jb->skipped++;
            continue;
        }
        sbuf_reserve(w, used + 64 + (size_t)f->nfields * 35);
        char *p = w->sbuf + used;
        char *start = p;
        if (ts - last > hb_ms && ts - step_ms > last) {
            /* after a gap (agent or link down): mark the gap unknown up to one step before
             * this row, so the row still stands for its own step instead of the whole gap
             * (which RRD would store as unknown, the gap being longer than the heartbeat) */
            p += fmt_ts(p, ts - step_ms);
            for (uint32_t k = 0; k < f->nfields; k++) {
                *p++ = ':';
                *p++ = 'U';
            }
            *p++ = '\0';
            w->soff[argc++] = (size_t)(start - w->sbuf);
            start = p;
        }
        last = ts;
        p += fmt_ts(p, ts);
        const double *v = r->vals + (size_t)i * f->nfields;
        for (uint32_t k = 0; k < f->nfields; k++) {
            *p++ = ':';
            p += fmt_value(p, v[k]);
        }
        *p++ = '\0';
        w->soff[argc++] = (size_t)(start - w->sbuf);
        jb->written++;
        used = (size_t)(p - w->sbuf);
    }
    if (argc == 0) {
        return;
    }
    for (size_t i = 0; i < argc; i++) {
        w->argv[i] = w->sbuf + w->soff[i];
    }
    rrd_clear_error();
    jb->calls++;
    rc = rrd_updatex_r(f->path, NULL, RRD_SKIP_PAST_UPDATES, (int)argc, w->argv);
    if (rc != 0) {
        jb->status = WP_ERRD;
        snprintf(jb->err, sizeof(jb->err), "update: %s", rrd_get_error());
        rrd_clear_error();
        f->w_checked = 0; /* look at the file again next time (deleted, replaced) */
        jb->written = 0;
        return;
    }
    f->w_last_ms = last;
}

static void *writer_main(void *arg)
{
    struct wp_rrdw *w = arg;

    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->queue.head == NULL && !w->stop) {
            pthread_cond_wait(&w->cond, &w->mu);
        }
        struct joblist chunk = w->queue;
        w->queue.head = NULL;
        w->queue.tail = NULL;
        if (chunk.head == NULL) {
            break;
        }
        pthread_mutex_unlock(&w->mu);
        for (struct job *jb = chunk.head; jb != NULL; jb = jb->next) {
            if (jb->f != NULL) {
                write_job(w, jb);
            }
        }
        pthread_mutex_lock(&w->mu);
        if (w->done.tail != NULL) {
            w->done.tail->next = chunk.head;
        } else {
            w->done.head = chunk.head;
        }
        w->done.tail = chunk.tail;
        uv_async_send(&w->async);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ---- loop thread ------------------------------------------------------------------------- */

static void queue_jobs(struct wp_rrdw *w, struct joblist *l)
{
    if (l->head == NULL) {
        return;
    }
    pthread_mutex_lock(&w->mu);
    if (w->queue.tail != NULL) {
        w->queue.tail->next = l->head;
    } else {
        w->queue.head = l->head;
        pthread_cond_signal(&w->cond);
    }
    w->queue.tail = l->tail;
    pthread_mutex_unlock(&w->mu);
    l->head = NULL;
    l->tail = NULL;
    uv_ref((uv_handle_t *)&w->async);
}

static void joblist_push(struct joblist *l, struct job *jb)
{
    jb->next = NULL;
    if (l->tail != NULL) {
        l->tail->next = jb;
    } else {
        l->head = jb;
    }
    l->tail = jb;
}

/* Hand the file's pending rows to a job (the file keeps an empty array). */
static struct job *take_file(struct wp_rrdw *w, struct wp_rrdw_file *f)
{
    struct job *jb = wp_xcalloc(1, sizeof(*jb));

    heap_remove(w, f);
    jb->f = f;
    jb->retired = f->retired;
    jb->rows = f->pend;
    memset(&f->pend, 0, sizeof(f->pend));
    w->inflight_jobs++;
    return jb;
}

static uint64_t due_for(const struct wp_rrdw *w, const struct wp_rrdw_file *f, uint64_t now)
{
    /* each file flushes at its own phase of the interval, so flushes spread evenly */
    uint64_t d = (f->phase_ms + w->interval_ms - now % w->interval_ms) % w->interval_ms;
    return now + (d == 0 ? w->interval_ms : d);
}

static void arm_timer(struct wp_rrdw *w);

static void on_timer(uv_timer_t *t)
{
    struct wp_rrdw *w = t->data;
    uint64_t now = uv_now(w->loop);
    struct joblist chunk = {NULL, NULL};

    w->timer_due = UINT64_MAX;
    /* everything due within the slack goes in one chunk */
    while (w->nheap > 0 && w->heap[0]->due_ms <= now + w->slack_ms) {
        joblist_push(&chunk, take_file(w, w->heap[0]));
    }
    queue_jobs(w, &chunk);
    arm_timer(w);
}

static void arm_timer(struct wp_rrdw *w)
{
    if (w->closing) {
        return;
    }
    if (w->nheap == 0) {
        if (w->timer_due != UINT64_MAX) {
            uv_timer_stop(&w->timer);
            w->timer_due = UINT64_MAX;
        }
        return;
    }
    uint64_t due = w->heap[0]->due_ms;
    if (due == w->timer_due) {
        return;
    }
    uint64_t now = uv_now(w->loop);
    uv_timer_start(&w->timer, on_timer, due > now ? due - now : 0, 0);
    w->timer_due = due;
}

static void log_failure(struct wp_rrdw *w, struct wp_rrdw_file *f, const struct job *jb,
                        int dropped)
{
    uint64_t now = uv_now(w->loop);

    if (dropped) {
        WP_ERROR(W_COMP,
                 "dropping rows after %d failed updates file=%s rows=%" PRIu32 " err=\"%s\"",
                 W_MAX_FAILS, f->path, jb->rows.n, jb->err);
        return;
    }
    if (f->logged && now - f->last_log_ms < W_LOG_EVERY_MS) {
        return;
    }
    f->logged = 1;
    f->last_log_ms = now;
    WP_ERROR(W_COMP, "update failed file=%s rows=%" PRIu32 " attempt=%" PRIu32 " err=\"%s\"",
             f->path, jb->rows.n, f->fails, jb->err);
}

/* Loop side of a finished file job: stats, segment counts, retry or drop on failure. */
static void job_finished(struct wp_rrdw *w, struct job *jb)
{
    struct wp_rrdw_file *f = jb->f;
    uint32_t n = jb->rows.n;

    w->inflight_jobs--;
    w->st.update_calls += jb->calls;
    w->st.files_created += (uint64_t)jb->created;
    if (jb->status == 0 || w->closing) {
        if (jb->status != 0) {
            w->st.errors++;
            w->st.rows_dropped += n;
            WP_ERROR(W_COMP, "update failed at shutdown file=%s rows=%" PRIu32 " err=\"%s\"",
                     f->path, n, jb->err);
        }
        f->fails = 0;
        w->st.rows_written += jb->written;
        w->st.rows_skipped += jb->skipped;
        w->st.values_written += jb->written * f->nfields;
        w->st.pending_rows -= n;
        sc_sub_rows(w, &jb->rows);
        rows_free(&jb->rows);
        return;
    }
    w->st.errors++;
    f->fails++;
    if (f->fails >= W_MAX_FAILS) {
        log_failure(w, f, jb, 1);
        f->fails = 0;
        w->st.rows_dropped += n;
        w->st.pending_rows -= n;
        sc_sub_rows(w, &jb->rows);
        rows_free(&jb->rows);
        return;
    }
    log_failure(w, f, jb, 0);
    /* retry: these rows go back in front of what arrived meanwhile */
    int was_empty = f->pend.n == 0;
    rows_append(&jb->rows, &f->pend, f->nfields);
    rows_free(&f->pend);
    f->pend = jb->rows;
    memset(&jb->rows, 0, sizeof(jb->rows));
    if (was_empty) {
        f->due_ms = uv_now(w->loop) + w->interval_ms;
        heap_push(w, f);
    }
}

static void run_done(struct wp_rrdw *w)
{
    struct joblist l;
    struct joblist barriers = {NULL, NULL};

    pthread_mutex_lock(&w->mu);
    l = w->done;
    w->done.head = NULL;
    w->done.tail = NULL;
    pthread_mutex_unlock(&w->mu);
    for (struct job *jb = l.head; jb != NULL;) {
        struct job *next = jb->next;
        if (jb->f == NULL) {
            w->inflight_jobs--;
            joblist_push(&barriers, jb);
        } else {
            job_finished(w, jb);
            free(jb);
        }
        jb = next;
    }
    if (w->inflight_jobs == 0) {
        uv_unref((uv_handle_t *)&w->async);
    }
    arm_timer(w);
    /* last, so that a callback may even close the writer */
    for (struct job *jb = barriers.head; jb != NULL;) {
        struct job *next = jb->next;
        jb->cb(jb->arg);
        free(jb);
        jb = next;
    }
}

static void on_async(uv_async_t *h)
{
    run_done(h->data);
}

static void file_free(struct wp_rrdw_file *f)
{
    for (uint32_t i = 0; i < f->nfields; i++) {
        free(f->fields[i]);
    }
    free(f->fields);
    rows_free(&f->pend);
    free(f->rel);
    free(f->path);
    free(f->agent);
    free(f);
}

static void rrdw_free(struct wp_rrdw *w)
{
    if (w == NULL) {
        return;
    }
    for (struct wp_rrdw_file *f = w->all; f != NULL;) {
        struct wp_rrdw_file *next = f->next;
        file_free(f);
        f = next;
    }
    for (size_t i = 0; i < w->narchives; i++) {
        free((char *)(uintptr_t)w->archives[i].cf);
    }
    free(w->archives);
    free(w->buckets);
    free(w->heap);
    free(w->sc);
    free(w->sbuf);
    free(w->soff);
    free(w->argv);
    free(w->dir);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct wp_rrdw *w = h->data;

    if (--w->nclosing == 0) {
        rrdw_free(w);
    }
}

/* mkdir -p for the root directory. */
static int mkdirs(const char *dir)
{
    char *p = wp_xstrdup(dir);
    int rc = 0;

    for (char *s = p + 1; *s != '\0'; s++) {
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, 0750) < 0 && errno != EEXIST) {
                rc = -errno;
                goto out;
            }
            *s = '/';
        }
    }
    if (mkdir(p, 0750) < 0 && errno != EEXIST) {
        rc = -errno;
    }
out:
    free(p);
    return rc;
}

int wp_rrdw_open(uv_loop_t *loop, const struct wp_rrdw_opts *opts, struct wp_rrdw **out)
{
    int rc = 0;
    struct wp_rrdw *w = NULL;
    const struct wp_rrd_archive *arch = default_archives;
    size_t narch = sizeof(default_archives) / sizeof(default_archives[0]);

    *out = NULL;
    if (opts == NULL || opts->dir == NULL || opts->dir[0] == '\0') {
        return -EINVAL;
    }
    if (opts->archives != NULL && opts->narchives > 0) {
        arch = opts->archives;
        narch = opts->narchives;
    }
    for (size_t i = 0; i < narch; i++) {
        const char *cf = arch[i].cf;
        if (cf == NULL || arch[i].span_s == 0 ||
            (strcmp(cf, "AVERAGE") != 0 && strcmp(cf, "MIN") != 0 && strcmp(cf, "MAX") != 0 &&
             strcmp(cf, "LAST") != 0)) {
            return WP_ECONFIG;
        }
    }
    rc = mkdirs(opts->dir);
    if (rc < 0) {
        return rc;
    }
    w = wp_xcalloc(1, sizeof(*w));
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->loop = loop;
    w->dir = wp_xstrdup(opts->dir);
    w->interval_ms = opts->flush_interval_ms > 0 ? (uint64_t)opts->flush_interval_ms : 60000;
    w->slack_ms = w->interval_ms / 60;
    if (w->slack_ms > 1000) {
        w->slack_ms = 1000;
    }
    w->max_pending = opts->max_pending ? opts->max_pending : 300;
    w->heartbeat_steps = opts->heartbeat_steps ? opts->heartbeat_steps : 2;
    w->archives = wp_xcalloc(narch, sizeof(*w->archives));
    w->narchives = narch;
    for (size_t i = 0; i < narch; i++) {
        w->archives[i] = arch[i];
        w->archives[i].cf = wp_xstrdup(arch[i].cf);
    }
    w->nbuckets = 256;
    w->buckets = wp_xcalloc(w->nbuckets, sizeof(*w->buckets));
    w->timer_due = UINT64_MAX;

    uv_timer_init(loop, &w->timer);
    w->timer.data = w;
    rc = uv_async_init(loop, &w->async, on_async);
    if (rc < 0) {
        w->nclosing = 1;
        uv_close((uv_handle_t *)&w->timer, on_handle_closed);
        return rc;
    }
    w->async.data = w;
    uv_unref((uv_handle_t *)&w->async); /* referenced only while jobs are in flight */
    rc = -pthread_create(&w->thread, NULL, writer_main, w);
    if (rc < 0) {
        w->nclosing = 2;
        uv_close((uv_handle_t *)&w->timer, on_handle_closed);
        uv_close((uv_handle_t *)&w->async, on_handle_closed);
        return rc;
    }
    w->thread_started = 1;
    *out = w;
    return 0;
}

void wp_rrdw_close(struct wp_rrdw *w)
{
    struct joblist chunk = {NULL, NULL};

    if (w == NULL) {
        return;
    }
    while (w->nheap > 0) {
        joblist_push(&chunk, take_file(w, w->heap[0]));
    }
    queue_jobs(w, &chunk);
    w->closing = 1;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
    if (w->thread_started) {
        pthread_join(w->thread, NULL);
        w->thread_started = 0;
    }
    run_done(w);
    w->nclosing = 2;
    uv_close((uv_handle_t *)&w->timer, on_handle_closed);
    uv_close((uv_handle_t *)&w->async, on_handle_closed);
}

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;

    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    }
    return h;
}

static void hash_grow(struct wp_rrdw *w)
{
    size_t nb = w->nbuckets * 2;
    struct wp_rrdw_file **b = wp_xcalloc(nb, sizeof(*b));

    for (size_t i = 0; i < w->nbuckets; i++) {
        for (struct wp_rrdw_file *f = w->buckets[i]; f != NULL;) {
            struct wp_rrdw_file *next = f->hnext;
            size_t k = str_hash(f->rel) & (nb - 1);
            f->hnext = b[k];
            b[k] = f;
            f = next;
        }
    }
    free(w->buckets);
    w->buckets = b;
    w->nbuckets = nb;
}

static int same_layout(const struct wp_rrdw_file *f, const char *const *fields, uint32_t nfields,
                       int ds_type, uint32_t step_s)
{
    if (f->nfields != nfields || f->ds_type != ds_type || f->step_s != step_s) {
        return 0;
    }
    for (uint32_t i = 0; i < nfields; i++) {
        if (strcmp(f->fields[i], fields[i]) != 0) {
            return 0;
        }
    }
    return 1;
}

/* Take a file out of the table because its layout changed; its pending rows go now. */
static void retire(struct wp_rrdw *w, struct wp_rrdw_file *f)
{
    size_t k = str_hash(f->rel) & (w->nbuckets - 1);
    struct joblist chunk = {NULL, NULL};

    for (struct wp_rrdw_file **pp = &w->buckets[k]; *pp != NULL; pp = &(*pp)->hnext) {
        if (*pp == f) {
            *pp = f->hnext;
            break;
        }
    }
    f->hnext = NULL;
    f->retired = 1;
    w->nfiles--;
    if (f->pend.n > 0) {
        joblist_push(&chunk, take_file(w, f));
        queue_jobs(w, &chunk);
    }
}

struct wp_rrdw_file *wp_rrdw_file_get(struct wp_rrdw *w, const char *agent, const char *group,
                                      const char *inst, const char *const *fields, uint32_t nfields,
                                      int ds_type, uint32_t step_s, int *err)
{
    char name[256];
    char *rel = NULL;
    struct wp_rrdw_file *f = NULL;
    size_t k = 0;
    int rc = 0;

    *err = 0;
    rc = wp_rrd_agent_ok(agent);
    if (rc == 0) {
        rc = wp_rrd_file_name(group, inst, name, sizeof(name));
    }
    if (rc == 0 && (nfields == 0 || nfields > WP_SERIES_MAX_FIELDS ||
                    ds_type_name(ds_type) == NULL || step_s == 0 || step_s > W_MAX_STEP)) {
        rc = -EINVAL;
    }
    for (uint32_t i = 0; rc == 0 && i < nfields; i++) {
        if (!ds_name_ok(fields[i])) {
            rc = -EINVAL;
        }
        for (uint32_t j = 0; rc == 0 && j < i; j++) {
            if (strcmp(fields[i], fields[j]) == 0) {
                rc = -EINVAL;
            }
        }
    }
    if (rc < 0) {
        *err = rc;
        return NULL;
    }
    rel = wp_xasprintf("%s/%s", agent, name);
    k = str_hash(rel) & (w->nbuckets - 1);
    for (f = w->buckets[k]; f != NULL; f = f->hnext) {
        if (strcmp(f->rel, rel) == 0) {
            break;
        }
    }
    if (f != NULL) {
        if (same_layout(f, fields, nfields, ds_type, step_s)) {
            free(rel);
            return f;
        }
        WP_INFO(W_COMP, "series layout changed file=%s fields=%" PRIu32 "->%" PRIu32, f->rel,
                f->nfields, nfields);
        retire(w, f);
        k = str_hash(rel) & (w->nbuckets - 1);
    }
    f = wp_xcalloc(1, sizeof(*f));
    f->rel = rel;
    f->path = wp_xasprintf("%s/%s", w->dir, rel);
    f->agent = wp_xstrdup(agent);
    f->fields = wp_xcalloc(nfields, sizeof(*f->fields));
    for (uint32_t i = 0; i < nfields; i++) {
        f->fields[i] = wp_xstrdup(fields[i]);
    }
    f->nfields = nfields;
    f->ds_type = ds_type;
    f->step_s = step_s;
    f->heap_idx = SIZE_MAX;
    f->phase_ms = wp_crc32c(0, rel, strlen(rel)) % w->interval_ms;
    f->next = w->all;
    w->all = f;
    f->hnext = w->buckets[k];
    w->buckets[k] = f;
    w->nfiles++;
    if (w->nfiles > w->nbuckets) {
        hash_grow(w);
    }
    return f;
}

const char *wp_rrdw_file_path(const struct wp_rrdw_file *f)
{
    return f->rel;
}

void wp_rrdw_add(struct wp_rrdw *w, struct wp_rrdw_file *f, int64_t ts_ms, const double *vals,
                 uint32_t nvals, uint64_t seg)
{
    struct rows *r = &f->pend;

    if (nvals != f->nfields || ts_ms < 1000 || ts_ms > wp_clock_now_ms() + W_FUTURE_MS) {
        /* RRD reads a negative time as "now minus", a future one blocks the file */
        uint64_t now = uv_now(w->loop);
        w->st.errors++;
        if (now - w->last_reject_log_ms >= W_LOG_EVERY_MS || w->last_reject_log_ms == 0) {
            w->last_reject_log_ms = now ? now : 1;
            WP_WARN(W_COMP, "row refused file=%s ts_ms=%" PRId64 " values=%" PRIu32 "/%" PRIu32,
                    f->path, ts_ms, nvals, f->nfields);
        }
        return;
    }
    rows_reserve(r, 1, f->nfields);
    r->ts[r->n] = ts_ms;
    memcpy(r->vals + (size_t)r->n * f->nfields, vals, (size_t)nvals * sizeof(*vals));
    r->n++;
    rows_run_add(r, seg, 1);
    sc_add(w, seg, 1);
    w->st.rows_added++;
    w->st.pending_rows++;
    if (r->n >= w->max_pending) {
        struct joblist chunk = {NULL, NULL};
        joblist_push(&chunk, take_file(w, f));
        queue_jobs(w, &chunk);
        arm_timer(w);
        return;
    }
    if (r->n == 1 && f->heap_idx == SIZE_MAX) {
        f->due_ms = due_for(w, f, uv_now(w->loop));
        heap_push(w, f);
        if (f->heap_idx == 0) {
            arm_timer(w);
        }
    }
}

uint64_t wp_rrdw_min_segment(const struct wp_rrdw *w)
{
    return w->sc_head < w->sc_len ? w->sc[w->sc_head].seg : UINT64_MAX;
}

void wp_rrdw_flush_all(struct wp_rrdw *w, void (*cb)(void *arg), void *arg)
{
    struct joblist chunk = {NULL, NULL};
    struct job *barrier = wp_xcalloc(1, sizeof(*barrier));

    while (w->nheap > 0) {
        joblist_push(&chunk, take_file(w, w->heap[0]));
    }
    barrier->cb = cb;
    barrier->arg = arg;
    w->inflight_jobs++;
    joblist_push(&chunk, barrier);
    queue_jobs(w, &chunk);
    arm_timer(w);
}

void wp_rrdw_stats(const struct wp_rrdw *w, struct wp_rrdw_stats *out)
{
    *out = w->st;
    out->files = w->nfiles;
}
