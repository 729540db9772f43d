/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The files probe: are the backups and logs where they should be, fresh and big enough.
 *
 * Config:
 *   - kind: files
 *     interval: 5m
 *     targets:
 *       - {name: db_dump, path: "/backup/db1-*.dmp", max_age: 26h, min_size: 100MiB}
 *       - {name: app_log, path: /var/log/app/app.log, max_age: 15m}
 *
 * Each target's path is a file or a glob(3) pattern (braces too). Of the regular files it
 * matches (symbolic links followed, directories ignored) the newest by modification time
 * is judged: its age at the sample time against max_age and, when min_size is set, its size
 * against min_size. Check "file_<name>":
 *   FILE OK: newest /backup/db1-2026-11-29.dmp is 3h12m old (max 26h), 1.2 GiB
 *   FILE CRITICAL: newest /backup/db1-2026-11-27.dmp is 3d2h old (max 26h), 1.2 GiB
 *   FILE CRITICAL: newest /backup/db1-2026-11-29.dmp is 3h12m old (max 26h), 12 KiB, below
 *                  the minimum of 100 MiB
 *   FILE CRITICAL: no file matches /backup/db1-*.dmp
 *   FILE CRITICAL: /var/log/app/app.log: No such file or directory
 * Series group "file", instance <name>, gauges: age_s and size_bytes of the newest file (NaN
 * when there is none) and count, the number of regular files matched.
 *
 * A backup directory is often on NFS, where stat() can hang: WP_PROBE_BLOCKING, so sample()
 * runs on the agent's thread pool.
 */
#include <errno.h>
#include <glob.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "probe.h"
#include "wp/err.h"
#include "wp/mem.h"

#define FILES_NAME_MAX 64
#define FILES_OUT_MAX  1024

struct files_target {
    char *name;
    char *path;
    int64_t max_age_ms;
    uint64_t min_size;

    char *check; /* "file_<name>" */
};

struct files_targets {
    struct files_target *v;
    size_t n;
};

struct files_ctx {
    struct files_targets targets; /* decoded by wp_probe_targets_decode (the registry frees it) */
};

static int check_target(struct wp_conf_doc *doc, struct wp_conf_node *it, const char *path,
                        void *item, struct wp_conf_err *err);
static void free_target(void *item);

#define TO(f) offsetof(struct files_target, f)

static const struct wp_opt target_opts[] = {
    {.name = "name",
     .type = WP_OPT_STR,
     .help = "target name: the series instance and the check file_<name>",
     .offset = TO(name),
     .required = 1},
    {.name = "path",
     .type = WP_OPT_STR,
     .help = "a file, or a glob(3) pattern whose newest match is judged",
     .offset = TO(path),
     .required = 1},
    {.name = "max_age",
     .type = WP_OPT_DURATION,
     .help = "CRITICAL when the newest file was modified longer ago than this",
     .offset = TO(max_age_ms),
     .min = 1000,
     .max = (int64_t)3660 * 86400 * 1000,
     .required = 1},
    {.name = "min_size",
     .type = WP_OPT_SIZE,
     .def = "0",
     .help = "CRITICAL when the newest file is smaller (0 = any size)",
     .offset = TO(min_size)},
    WP_OPT_TABLE_END,
};

static const struct wp_probe_targets_spec targets_spec = {
    .example = "[{name: db_dump, path: \"/backup/db1-*.dmp\", max_age: 26h}]",
    .opts = target_opts,
    .size = sizeof(struct files_target),
    .name_off = TO(name),
    .name_max = FILES_NAME_MAX,
    .check = check_target,
    .item_free = free_target,
};

static const struct wp_opt files_opts[] = {
    {.name = "targets",
     .type = WP_OPT_CUSTOM,
     .help = "files to judge: [{name, path, max_age, min_size}]",
     .offset = offsetof(struct files_ctx, targets),
     .required = 1,
     .custom = wp_probe_targets_decode,
     .custom_free = wp_probe_targets_free,
     .arg = &targets_spec},
    WP_OPT_TABLE_END,
};

static const char *const file_fields[] = {"age_s", "size_bytes", "count"};
static const struct wp_series_kind kind_file = {"file", file_fields, 3, WP_DS_GAUGE};

/* ---- config ---- */

static int check_target(struct wp_conf_doc *doc, struct wp_conf_node *it, const char *path,
                        void *item, struct wp_conf_err *err)
{
    struct files_target *t = item;

    if (t->path[0] != '/') {
        return wp_conf_errorf(doc, wp_probe_at_key(doc, it, "path"), err,
                              "%s.path: expected an absolute path or pattern, got \"%s\"", path,
                              t->path);
    }
    t->check = wp_xasprintf("file_%s", t->name);
    return 0;
}

static void free_target(void *item)
{
    struct files_target *t = item;

    free(t->check);
}

/* ---- formatting ---- */

/* "45s", "12m5s", "3h12m", "26h", "3d2h": hours up to two days, then days; exact only
 * when the unit's rest is 0 ("26h" is 26 h to the second). */
static void fmt_age(int64_t s, char *buf, size_t len)
{
    if (s < 60) {
        snprintf(buf, len, "%llds", (long long)s);
    } else if (s < 3600) {
        if (s % 60 == 0) {
            snprintf(buf, len, "%lldm", (long long)(s / 60));
        } else {
            snprintf(buf, len, "%lldm%llds", (long long)(s / 60), (long long)(s % 60));
        }
    } else if (s < 2 * 86400) {
        if (s % 3600 == 0) {
            snprintf(buf, len, "%lldh", (long long)(s / 3600));
        } else { /* "26h0m" for a second over 26h, which then reads differently from "26h" */
            snprintf(buf, len, "%lldh%lldm", (long long)(s / 3600), (long long)(s / 60 % 60));
        }
    } else if (s % 86400 == 0) {
        snprintf(buf, len, "%lldd", (long long)(s / 86400));
    } else {
        snprintf(buf, len, "%lldd%lldh", (long long)(s / 86400), (long long)(s / 3600 % 24));
    }
}

/* "512 B", "12 KiB", "1.2 GiB" (three significant digits at most). */
static void fmt_size(uint64_t n, char *buf, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)n;
    size_t u = 0;

    while (v >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024.0;
        u++;
    }
    if (u == 0) {
        snprintf(buf, len, "%llu B", (unsigned long long)n);
    } else {
        snprintf(buf, len, "%.3g %s", v, units[u]);
    }
}

/* ---- sampling ---- */

struct newest {
    char *path; /* malloc'd, NULL when nothing matched */
    struct stat st;
    size_t count;
    int err;           /* errno of a literal path's stat(), or of an unreadable directory */
    char errpath[256]; /* the directory glob could not read */
};

/* glob(3)'s error callback has no argument: the first error of this thread's glob() */
static _Thread_local int glob_errno;
static _Thread_local char glob_errpath[256];

static int glob_err_cb(const char *epath, int eerrno)
{
    if (glob_errno == 0) {
        glob_errno = eerrno;
        snprintf(glob_errpath, sizeof(glob_errpath), "%s", epath);
    }
    return 0; /* carry on: the other directories may still match */
}

static void consider(struct newest *nw, const char *path)
{
    struct stat st;

    if (stat(path, &st) < 0) {
        if (nw->err == 0) {
            nw->err = errno;
        }
        return;
    }
    if (!S_ISREG(st.st_mode)) {
        return;
    }
    nw->count++;
    if (nw->path == NULL || st.st_mtim.tv_sec > nw->st.st_mtim.tv_sec ||
        (st.st_mtim.tv_sec == nw->st.st_mtim.tv_sec &&
         (st.st_mtim.tv_nsec > nw->st.st_mtim.tv_nsec ||
          (st.st_mtim.tv_nsec == nw->st.st_mtim.tv_nsec && strcmp(path, nw->path) > 0)))) {
        free(nw->path);
        nw->path = wp_xstrdup(path);
        nw->st = st;
    }
}

static void find_newest(const char *pattern, struct newest *nw)
{
    glob_t g;
    int rc = 0;

    memset(nw, 0, sizeof(*nw));
    if (strpbrk(pattern, "*?[{") == NULL) {
        consider(nw, pattern);
        return;
    }
    memset(&g, 0, sizeof(g));
    glob_errno = 0;
    glob_errpath[0] = '\0';
    rc = glob(pattern, GLOB_BRACE | GLOB_NOSORT, glob_err_cb, &g);
    if (rc == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++) {
            consider(nw, g.gl_pathv[i]);
        }
    }
    globfree(&g);
    nw->err = glob_errno; /* a match that vanished meanwhile is not worth a word */
    snprintf(nw->errpath, sizeof(nw->errpath), "%s", glob_errpath);
}

static void judge(struct wp_probe *p, const struct files_target *t, struct wp_sink *out)
{
    struct newest nw;
    char text[FILES_OUT_MAX];
    char age[32];
    char maxs[32];
    char size[32];
    char mins[32];
    double v[3];
    unsigned status = WP_CHECK_OK;

    find_newest(t->path, &nw);
    fmt_age(t->max_age_ms / 1000, maxs, sizeof(maxs));
    v[2] = (double)nw.count;
    if (nw.path == NULL) {
        v[0] = NAN;
        v[1] = NAN;
        status = WP_CHECK_CRITICAL;
        if (strpbrk(t->path, "*?[{") == NULL) {
            snprintf(text, sizeof(text), "FILE CRITICAL: %s: %s", t->path,
                     nw.err != 0 ? strerror(nw.err) : "not a regular file");
        } else {
            int n = snprintf(text, sizeof(text), "FILE CRITICAL: no file matches %s", t->path);
            if (nw.err != 0 && n > 0 && (size_t)n < sizeof(text)) {
                snprintf(text + n, sizeof(text) - (size_t)n, " (cannot read %s: %s)", nw.errpath,
                         strerror(nw.err));
            }
        }
    } else {
        int64_t now_s = out->ts_ms / 1000;
        int64_t age_s = now_s - (int64_t)nw.st.st_mtim.tv_sec;
        uint64_t sz = (uint64_t)nw.st.st_size;
        const char *future = "";
        int n = 0;

        if (age_s < 0) {
            age_s = 0; /* a clock ahead on the file server; say so rather than go negative */
            future = " (modified in the future)";
        }
        v[0] = (double)age_s;
        v[1] = (double)sz;
        fmt_age(age_s, age, sizeof(age));
        fmt_size(sz, size, sizeof(size));
        if (age_s * 1000 > t->max_age_ms || (t->min_size > 0 && sz < t->min_size)) {
            status = WP_CHECK_CRITICAL;
        }
        n = snprintf(text, sizeof(text), "FILE %s: newest %s is %s old%s (max %s), %s",
                     status == WP_CHECK_OK ? "OK" : "CRITICAL", nw.path, age, future, maxs, size);
        if (t->min_size > 0 && sz < t->min_size && n > 0 && (size_t)n < sizeof(text)) {
            fmt_size(t->min_size, mins, sizeof(mins));
            snprintf(text + n, sizeof(text) - (size_t)n, ", below the minimum of %s", mins);
        }
    }
    WP_PLOG(p, WP_LOG_DEBUG, "%s: %s", t->name, text);
    wp_sink_metric(out, &kind_file, t->name, v);
    wp_sink_check(out, t->check, status, text);
    free(nw.path);
}

static int files_sample(struct wp_probe *p, struct wp_sink *out)
{
    struct files_ctx *c = p->ctx;

    for (size_t i = 0; i < c->targets.n; i++) {
        judge(p, &c->targets.v[i], out);
    }
    return 0;
}

static int files_init(struct wp_probe *p)
{
    (void)p; /* the targets are checked while decoding */
    return 0;
}

static void files_destroy(struct wp_probe *p)
{
    (void)p; /* everything lives in the targets, freed with the options */
}

const struct wp_probe_ops wp_probe_files = {
    .name = "files",
    .summary = "age, size and count of backups and logs (newest match of a path or glob)",
    .opts = files_opts,
    .ctx_size = sizeof(struct files_ctx),
    .flags = WP_PROBE_BLOCKING,
    .init = files_init,
    .sample = files_sample,
    .start = NULL,
    .stop = NULL,
    .destroy = files_destroy,
    .committed = NULL,
};
