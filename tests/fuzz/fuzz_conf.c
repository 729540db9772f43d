/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the config loader: the input is a YAML file, parsed and decoded with
 * a collector-like option table (every option type, nested sections, a custom sequence);
 * every error must be a positioned message and every success must respect the bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wp/conf.h"
#include "wp/err.h"
#include "wp/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_conf: invariant broken: %s\n", what);
        abort();
    }
}

struct fz_archive {
    int cf;
    int64_t resolution_ms;
    int64_t span_ms;
};

struct fz_conf {
    char *listen;
    char *state_dir;
    int log_level;
    struct {
        char *ca, *cert, *key, *crl;
        int64_t crl_check_interval_ms;
    } tls;
    struct {
        uint64_t max_frame;
        int64_t max_agents;
        int64_t idle_timeout_ms;
    } limits;
    struct {
        uint64_t segment_bytes;
        int fsync;
    } journal;
    struct {
        char *dir;
        int64_t flush_interval_ms;
        int64_t heartbeat_steps;
        struct fz_archive *archives;
        size_t narchives;
    } rrd;
    struct wp_strlist labels;
    struct wp_strlist allow;
};

static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
static const char *const cfs[] = {"AVERAGE", "MIN", "MAX", "LAST", NULL};

#define SEC(sec, f) (offsetof(struct fz_conf, sec.f) - offsetof(struct fz_conf, sec))

static const struct wp_opt archive_opts[] = {
    {.name = "cf",
     .type = WP_OPT_ENUM,
     .offset = offsetof(struct fz_archive, cf),
     .required = 1,
     .enum_names = cfs},
    {.name = "resolution",
     .type = WP_OPT_DURATION,
     .def = "0",
     .offset = offsetof(struct fz_archive, resolution_ms)},
    {.name = "span",
     .type = WP_OPT_DURATION,
     .offset = offsetof(struct fz_archive, span_ms),
     .required = 1},
    WP_OPT_TABLE_END,
};

/* field is &rrd.archives; narchives follows in the same struct */
static size_t *narch_of(void *field)
{
    return (size_t *)(void *)((char *)field + offsetof(struct fz_conf, rrd.narchives) -
                              offsetof(struct fz_conf, rrd.archives));
}

static int decode_archives(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                           const void *arg, struct wp_conf_err *err)
{
    struct fz_archive **a = field;
    size_t n = wp_conf_seq_len(doc, node);
    char path[48];

    (void)arg;
    if (!wp_conf_is_seq(node)) {
        return wp_conf_errorf(doc, node, err, "rrd.archives: expected a list");
    }
    *a = wp_xcalloc(n, sizeof(**a));
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "rrd.archives[%zu]", i);
        int rc =
            wp_opts_apply(doc, wp_conf_seq_at(doc, node, i), archive_opts, &(*a)[i], path, err);
        if (rc < 0) {
            return rc;
        }
        *narch_of(field) = i + 1;
    }
    return 0;
}

static void free_archives(void *field, const void *arg)
{
    struct fz_archive **a = field;

    (void)arg;
    free(*a);
    *a = NULL;
    *narch_of(field) = 0;
}

static const struct wp_opt tls_opts[] = {
    {.name = "ca", .type = WP_OPT_STR, .offset = SEC(tls, ca), .required = 1},
    {.name = "cert", .type = WP_OPT_STR, .offset = SEC(tls, cert), .required = 1},
    {.name = "key", .type = WP_OPT_STR, .offset = SEC(tls, key), .required = 1},
    {.name = "crl", .type = WP_OPT_STR, .offset = SEC(tls, crl)},
    {.name = "crl_check_interval",
     .type = WP_OPT_DURATION,
     .def = "5s",
     .offset = SEC(tls, crl_check_interval_ms),
     .min = 1000,
     .max = 86400000},
    WP_OPT_TABLE_END,
};

static const struct wp_opt limits_opts[] = {
    {.name = "max_frame",
     .type = WP_OPT_SIZE,
     .def = "4MiB",
     .offset = SEC(limits, max_frame),
     .min = 64 << 10,
     .max = 64 << 20},
    {.name = "max_agents",
     .type = WP_OPT_INT,
     .def = "20000",
     .offset = SEC(limits, max_agents),
     .min = 1,
     .max = 1000000},
    {.name = "idle_timeout",
     .type = WP_OPT_DURATION,
     .def = "120s",
     .offset = SEC(limits, idle_timeout_ms),
     .min = 1000},
    WP_OPT_TABLE_END,
};

static const struct wp_opt journal_opts[] = {
    {.name = "segment_bytes",
     .type = WP_OPT_SIZE,
     .def = "64MiB",
     .offset = SEC(journal, segment_bytes)},
    {.name = "fsync", .type = WP_OPT_BOOL, .def = "true", .offset = SEC(journal, fsync)},
    WP_OPT_TABLE_END,
};

static const struct wp_opt rrd_opts[] = {
    {.name = "dir", .type = WP_OPT_STR, .offset = SEC(rrd, dir)},
    {.name = "flush_interval",
     .type = WP_OPT_DURATION,
     .def = "60s",
     .offset = SEC(rrd, flush_interval_ms),
     .min = 1000,
     .max = 3600000},
    {.name = "heartbeat_steps",
     .type = WP_OPT_INT,
     .def = "2",
     .offset = SEC(rrd, heartbeat_steps),
     .min = 1,
     .max = 10},
    {.name = "archives",
     .type = WP_OPT_CUSTOM,
     .offset = SEC(rrd, archives),
     .custom = decode_archives,
     .custom_free = free_archives},
    WP_OPT_TABLE_END,
};

static const struct wp_opt top_opts[] = {
    {.name = "listen",
     .type = WP_OPT_STR,
     .def = "127.0.0.1:7443",
     .offset = offsetof(struct fz_conf, listen)},
    {.name = "state_dir",
     .type = WP_OPT_STR,
     .def = "/var/lib/watchpost",
     .offset = offsetof(struct fz_conf, state_dir)},
    {.name = "log_level",
     .type = WP_OPT_ENUM,
     .def = "info",
     .offset = offsetof(struct fz_conf, log_level),
     .enum_names = levels},
    {.name = "tls",
     .type = WP_OPT_SECTION,
     .offset = offsetof(struct fz_conf, tls),
     .sub = tls_opts},
    {.name = "limits",
     .type = WP_OPT_SECTION,
     .offset = offsetof(struct fz_conf, limits),
     .sub = limits_opts},
    {.name = "journal",
     .type = WP_OPT_SECTION,
     .offset = offsetof(struct fz_conf, journal),
     .sub = journal_opts},
    {.name = "rrd",
     .type = WP_OPT_SECTION,
     .offset = offsetof(struct fz_conf, rrd),
     .sub = rrd_opts},
    {.name = "labels", .type = WP_OPT_STRMAP, .offset = offsetof(struct fz_conf, labels)},
    {.name = "allow", .type = WP_OPT_STRLIST, .offset = offsetof(struct fz_conf, allow)},
    WP_OPT_TABLE_END,
};

static void check_list(const struct wp_strlist *l, int pairs)
{
    if (l->v == NULL) {
        check(l->n == 0, "an absent list has n == 0");
        return;
    }
    for (size_t i = 0; i < l->n; i++) {
        check(l->v[i] != NULL, "list items are set");
    }
    check(l->v[l->n] == NULL, "lists are NULL-terminated");
    check(!pairs || l->n % 2 == 0, "maps hold pairs");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wp_conf_doc *doc = NULL;
    struct wp_conf_err err;
    struct fz_conf c;
    int rc = 0;

    memset(&err, 0, sizeof(err));
    rc = wp_conf_parse("fuzz.yaml", (const char *)data, size, &err, &doc);
    if (rc < 0) {
        check(doc == NULL, "no document on error");
        check(strncmp(err.msg, "fuzz.yaml:", 10) == 0, "parse errors name the file");
        return 0;
    }
    memset(&c, 0, sizeof(c));
    memset(&err, 0, sizeof(err));
    rc = wp_opts_apply(doc, wp_conf_root(doc), top_opts, &c, "", &err);
    if (rc < 0) {
        check(rc == WP_ECONFIG, "apply returns WP_ECONFIG");
        check(strncmp(err.msg, "fuzz.yaml:", 10) == 0, "apply errors name the file");
    } else {
        check(c.listen != NULL && c.state_dir != NULL, "defaults set");
        check(c.tls.ca != NULL && c.tls.cert != NULL && c.tls.key != NULL, "required set");
        check(c.log_level >= 0 && c.log_level <= 3, "enum in range");
        check(c.limits.max_frame >= (64u << 10) && c.limits.max_frame <= (64u << 20),
              "size bounds");
        check(c.limits.max_agents >= 1 && c.limits.max_agents <= 1000000, "int bounds");
        check(c.rrd.flush_interval_ms >= 1000 && c.rrd.flush_interval_ms <= 3600000,
              "duration bounds");
        check(c.journal.fsync == 0 || c.journal.fsync == 1, "bool");
        for (size_t i = 0; i < c.rrd.narchives; i++) {
            check(c.rrd.archives[i].cf >= 0 && c.rrd.archives[i].cf <= 3, "cf in range");
            check(c.rrd.archives[i].span_ms >= 0, "durations are not negative");
        }
        check_list(&c.labels, 1);
        check_list(&c.allow, 0);
    }
    /* after success or failure alike: LeakSanitizer checks that everything is released */
    wp_opts_free(top_opts, &c);
    check(c.listen == NULL && c.tls.ca == NULL && c.rrd.archives == NULL && c.labels.v == NULL,
          "freed fields are reset");
    wp_conf_free(doc);
    return 0;
}
