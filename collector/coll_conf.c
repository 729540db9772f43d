/* SPDX-License-Identifier: Apache-2.0 */
/* The collector's configuration: option tables for collector.yaml. */
#include "coll_conf.h"
#include "notify.h"
#include "report_sched.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rrdw.h"
#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"

#define DEFAULT_LISTEN "127.0.0.1:7443"
#define SPAN_MAX_S     (20LL * 366 * 86400) /* an archive covers at most ~20 years */
#define COLL_DASHBOARDS_DIR "/usr/share/watchpost/dashboards"

static const char *const cf_names[] = {"AVERAGE", "MIN", "MAX", "LAST", NULL};

#define SEC(sec, f) (offsetof(struct coll_conf, sec.f) - offsetof(struct coll_conf, sec))

static const struct wp_opt tls_opts[] = {
    {.name = "ca",
     .type = WP_OPT_STR,
     .help = "CA certificate; agents must present a certificate it signed",
     .offset = SEC(tls, ca),
     .required = 1},
    {.name = "cert",
     .type = WP_OPT_STR,
     .help = "the collector's certificate",
     .offset = SEC(tls, cert),
     .required = 1},
    {.name = "key",
     .type = WP_OPT_STR,
     .help = "the collector's private key",
     .offset = SEC(tls, key),
     .required = 1},
    {.name = "crl",
     .type = WP_OPT_STR,
     .help = "revocation list from `watchpost ca revoke` (optional)",
     .offset = SEC(tls, crl)},
    {.name = "crl_check_interval",
     .type = WP_OPT_DURATION,
     .def = "5s",
     .help = "how often the CRL file is checked for changes",
     .offset = SEC(tls, crl_check_interval_ms),
     .min = 1000,
     .max = 86400000},
    WP_OPT_TABLE_END,
};

static const struct wp_opt limits_opts[] = {
    {.name = "max_frame",
     .type = WP_OPT_SIZE,
     .def = "4MiB",
     .help = "largest frame accepted; a larger one closes the connection",
     .offset = SEC(limits, max_frame),
     .min = 64 << 10,
     .max = 64 << 20},
    {.name = "max_agents",
     .type = WP_OPT_INT,
     .def = "20000",
     .help = "connections accepted at once",
     .offset = SEC(limits, max_agents),
     .min = 1,
     .max = 1000000},
    {.name = "handshake_timeout",
     .type = WP_OPT_DURATION,
     .def = "10s",
     .help = "TLS handshake plus HELLO",
     .offset = SEC(limits, handshake_timeout_ms),
     .min = 100,
     .max = 600000},
    {.name = "idle_timeout",
     .type = WP_OPT_DURATION,
     .def = "120s",
     .help = "a connection silent this long is closed",
     .offset = SEC(limits, idle_timeout_ms),
     .min = 1000,
     .max = 86400000},
    {.name = "log_events_per_min",
     .type = WP_OPT_INT,
     .def = "600",
     .help = "log events stored per host and minute (events.db); the rest are counted",
     .offset = SEC(limits, log_events_per_min),
     .min = 1,
     .max = 1000000},
    WP_OPT_TABLE_END,
};

static const struct wp_opt journal_opts[] = {
    {.name = "segment_bytes",
     .type = WP_OPT_SIZE,
     .def = "64MiB",
     .help = "journal segment size",
     .offset = SEC(journal, segment_bytes),
     .min = 64 << 10,
     .max = 4LL << 30},
    {.name = "fsync",
     .type = WP_OPT_BOOL,
     .def = "true",
     .help = "fsync before acknowledging (off loses acked data on a crash)",
     .offset = SEC(journal, fsync)},
    WP_OPT_TABLE_END,
};

static int decode_archives(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                           const void *arg, struct wp_conf_err *err);
static void free_archives(void *field, const void *arg);

static const struct wp_opt rrd_opts[] = {
    {.name = "dir",
     .type = WP_OPT_STR,
     .help = "RRD files (default: <state_dir>/rrd)",
     .offset = SEC(rrd, dir)},
    {.name = "flush_interval",
     .type = WP_OPT_DURATION,
     .def = "60s",
     .help = "each file is written at most this often",
     .offset = SEC(rrd, flush_interval_ms),
     .min = 1000,
     .max = 3600000},
    {.name = "max_pending",
     .type = WP_OPT_INT,
     .def = "300",
     .help = "rows queued for one file before it is written early",
     .offset = SEC(rrd, max_pending),
     .min = 1,
     .max = 100000},
    {.name = "heartbeat_steps",
     .type = WP_OPT_INT,
     .def = "2",
     .help = "a data source without an update for this many steps becomes unknown",
     .offset = SEC(rrd, heartbeat_steps),
     .min = 1,
     .max = 10},
    {.name = "archives",
     .type = WP_OPT_CUSTOM,
     .help = "round-robin archives of new files: [{cf, resolution, span}]",
     .offset = SEC(rrd, archives),
     .custom = decode_archives,
     .custom_free = free_archives},
    WP_OPT_TABLE_END,
};

#define HTTP_TLS(f) (offsetof(struct coll_conf, http.tls.f) - offsetof(struct coll_conf, http.tls))

static const struct wp_opt http_tls_opts[] = {
    {.name = "cert",
     .type = WP_OPT_STR,
     .help = "certificate for HTTPS (e.g. from `watchpost ca issue NAME --server`)",
     .offset = HTTP_TLS(cert)},
    {.name = "key",
     .type = WP_OPT_STR,
     .help = "its private key",
     .offset = HTTP_TLS(key)},
    WP_OPT_TABLE_END,
};

#define ENR(f) (offsetof(struct coll_conf, http.enroll.f) - offsetof(struct coll_conf, http.enroll))

static const struct wp_opt http_enroll_opts[] = {
    {.name = "ca_dir",
     .type = WP_OPT_STR,
     .help = "the CA directory of `watchpost ca` that signs enrolled agents' certificates "
             "(the collector must read its key and write its index); absent = enrolment off",
     .offset = ENR(ca_dir)},
    {.name = "cert_days",
     .type = WP_OPT_INT,
     .def = "825",
     .help = "validity of an enrolled agent's certificate, in days",
     .offset = ENR(cert_days),
     .min = 1,
     .max = 36500},
    WP_OPT_TABLE_END,
};

static const struct wp_opt http_opts[] = {
    {.name = "listen",
     .type = WP_OPT_STR,
     .help = "address of the dashboard and JSON API, host:port (port 0 = any free port; "
             "absent = no HTTP server)",
     .offset = SEC(http, listen)},
    {.name = "tls",
     .type = WP_OPT_SECTION,
     .help = "serve HTTPS with this certificate and key (no client certificate is asked for)",
     .offset = SEC(http, tls),
     .sub = http_tls_opts},
    {.name = "static_dir",
     .type = WP_OPT_STR,
     .help = "dashboard files (default $WATCHPOST_DASHBOARDS, else " COLL_DASHBOARDS_DIR ")",
     .offset = SEC(http, static_dir)},
    {.name = "max_connections",
     .type = WP_OPT_INT,
     .def = "1024",
     .help = "connections at once; more are refused with 503",
     .offset = SEC(http, max_connections),
     .min = 1,
     .max = 100000},
    {.name = "max_header",
     .type = WP_OPT_SIZE,
     .def = "16KiB",
     .help = "request line and headers; larger gets 431",
     .offset = SEC(http, max_header),
     .min = 1 << 10,
     .max = 64 << 10}, /* http-parser's own ceiling is 80 KiB */
    {.name = "max_body",
     .type = WP_OPT_SIZE,
     .def = "1MiB",
     .help = "request body; larger gets 413",
     .offset = SEC(http, max_body),
     .min = 1 << 10,
     .max = 64 << 20},
    {.name = "header_timeout",
     .type = WP_OPT_DURATION,
     .def = "10s",
     .help = "a request head (and the TLS handshake) must arrive within this",
     .offset = SEC(http, header_timeout_ms),
     .min = 50,
     .max = 600000},
    {.name = "body_timeout",
     .type = WP_OPT_DURATION,
     .def = "30s",
     .help = "a request body may pause at most this long",
     .offset = SEC(http, body_timeout_ms),
     .min = 50,
     .max = 600000},
    {.name = "idle_timeout",
     .type = WP_OPT_DURATION,
     .def = "60s",
     .help = "a kept-alive connection idle this long is closed",
     .offset = SEC(http, idle_timeout_ms),
     .min = 50,
     .max = 3600000},
    {.name = "sse_ping",
     .type = WP_OPT_DURATION,
     .def = "15s",
     .help = "keep-alive comment on an idle event stream",
     .offset = SEC(http, sse_ping_ms),
     .min = 50,
     .max = 3600000},
    {.name = "session_idle",
     .type = WP_OPT_DURATION,
     .def = "12h",
     .help = "a login session without a request for this long ends",
     .offset = SEC(http, session_idle_ms),
     .min = 60000,
     .max = 30 * 86400000LL},
    {.name = "session_max",
     .type = WP_OPT_DURATION,
     .def = "7d",
     .help = "a login session ends this long after the login, however busy",
     .offset = SEC(http, session_max_ms),
     .min = 60000,
     .max = 365 * 86400000LL},
    {.name = "login_failures",
     .type = WP_OPT_INT,
     .def = "5",
     .help = "failed logins per user name and per client address within login_window; "
             "more get 429",
     .offset = SEC(http, login_failures),
     .min = 1,
     .max = 32},
    {.name = "login_window",
     .type = WP_OPT_DURATION,
     .def = "60s",
     .help = "the window of login_failures",
     .offset = SEC(http, login_window_ms),
     .min = 1000,
     .max = 86400000},
    {.name = "enroll",
     .type = WP_OPT_SECTION,
     .help = "agent enrolment with bootstrap tokens: POST /api/v1/enroll (docs/PACKAGING.md)",
     .offset = SEC(http, enroll),
     .sub = http_enroll_opts},
    WP_OPT_TABLE_END,
};

#define INC(f) (offsetof(struct coll_conf, incidents.f) - offsetof(struct coll_conf, incidents))
#define SLA(f)  offsetof(struct sla_item, f)

struct sla_item {
    int64_t response_ms, resolve_ms;
};

#define SLA_OPTS(tbl, resp, res)                                                            \
    static const struct wp_opt tbl[] = {                                                     \
        {.name = "response",                                                                 \
         .type = WP_OPT_DURATION,                                                            \
         .def = resp,                                                                        \
         .help = "acknowledge within this, or the incident escalates",                       \
         .offset = SLA(response_ms),                                                         \
         .min = 1000},                                                                       \
        {.name = "resolve",                                                                  \
         .type = WP_OPT_DURATION,                                                            \
         .def = res,                                                                         \
         .help = "resolve within this (escalation at 50, 80 and 100 %)",                     \
         .offset = SLA(resolve_ms),                                                          \
         .min = 1000},                                                                       \
        WP_OPT_TABLE_END,                                                                    \
    }
SLA_OPTS(sla_p1, "15m", "4h");
SLA_OPTS(sla_p2, "30m", "8h");
SLA_OPTS(sla_p3, "4h", "3d");
SLA_OPTS(sla_p4, "1d", "5d");

#define SLA_AT(i) ((size_t)(i) * sizeof(struct sla_item)) /* within incidents.sla */

static const struct wp_opt sla_opts[] = {
    {.name = "p1", .type = WP_OPT_SECTION, .help = "P1 deadlines", .offset = SLA_AT(0),
     .sub = sla_p1},
    {.name = "p2", .type = WP_OPT_SECTION, .help = "P2 deadlines", .offset = SLA_AT(1),
     .sub = sla_p2},
    {.name = "p3", .type = WP_OPT_SECTION, .help = "P3 deadlines", .offset = SLA_AT(2),
     .sub = sla_p3},
    {.name = "p4", .type = WP_OPT_SECTION, .help = "P4 deadlines", .offset = SLA_AT(3),
     .sub = sla_p4},
    WP_OPT_TABLE_END,
};

#define MATRIX_AT(i) ((size_t)(i) * sizeof(struct wp_strlist)) /* within incidents.matrix */

static const struct wp_opt matrix_opts[] = {
    {.name = "high", .type = WP_OPT_STRLIST,
     .help = "priority of a high-impact incident for urgency high, medium, low",
     .offset = MATRIX_AT(0)},
    {.name = "medium", .type = WP_OPT_STRLIST,
     .help = "priority of a medium-impact incident for urgency high, medium, low",
     .offset = MATRIX_AT(1)},
    {.name = "low", .type = WP_OPT_STRLIST,
     .help = "priority of a low-impact incident for urgency high, medium, low",
     .offset = MATRIX_AT(2)},
    WP_OPT_TABLE_END,
};

static const struct wp_opt incidents_opts[] = {
    {.name = "rules",
     .type = WP_OPT_STRLIST,
     .help = "rules files (reloaded on SIGHUP and `watchpost reload`)",
     .offset = INC(rules)},
    {.name = "reopen_window",
     .type = WP_OPT_DURATION,
     .def = "30m",
     .help = "a problem back within this after its resolution reopens its incident",
     .offset = INC(reopen_window_ms),
     .min = 0,
     .max = 30LL * 86400000},
    {.name = "flap_changes",
     .type = WP_OPT_INT,
     .def = "5",
     .help = "this many state changes within flap_window mark an incident flapping",
     .offset = INC(flap_changes),
     .min = 2,
     .max = 1000},
    {.name = "flap_window",
     .type = WP_OPT_DURATION,
     .def = "1h",
     .help = "window of the flapping detection",
     .offset = INC(flap_window_ms),
     .min = 1000,
     .max = 7LL * 86400000},
    {.name = "matrix",
     .type = WP_OPT_SECTION,
     .help = "priority from impact x urgency",
     .offset = INC(matrix),
     .sub = matrix_opts},
    {.name = "sla",
     .type = WP_OPT_SECTION,
     .help = "response and resolve deadlines per priority",
     .offset = INC(sla),
     .sub = sla_opts},
    WP_OPT_TABLE_END,
};

static const struct wp_opt top_opts[] = {
    {.name = "listen",
     .type = WP_OPT_STR,
     .def = DEFAULT_LISTEN,
     .help = "address for agents, host:port (port 0 = any free port)",
     .offset = offsetof(struct coll_conf, listen_host)}, /* split in finish() */
    {.name = "state_dir",
     .type = WP_OPT_STR,
     .def = "/var/lib/watchpost",
     .help = "journal, RRD files, database and control socket",
     .offset = offsetof(struct coll_conf, state_dir)},
    {.name = "log_level",
     .type = WP_OPT_ENUM,
     .def = "info",
     .help = "error, warn, info or debug",
     .offset = offsetof(struct coll_conf, log_level),
     .enum_names = wp_log_level_names},
    {.name = "tls",
     .type = WP_OPT_SECTION,
     .help = "certificates (from `watchpost ca`)",
     .offset = offsetof(struct coll_conf, tls),
     .sub = tls_opts},
    {.name = "limits",
     .type = WP_OPT_SECTION,
     .help = "protection against misbehaving agents",
     .offset = offsetof(struct coll_conf, limits),
     .sub = limits_opts},
    {.name = "journal",
     .type = WP_OPT_SECTION,
     .help = "append-only journal (batches are acked once in it)",
     .offset = offsetof(struct coll_conf, journal),
     .sub = journal_opts},
    {.name = "rrd",
     .type = WP_OPT_SECTION,
     .help = "RRD write-behind",
     .offset = offsetof(struct coll_conf, rrd),
     .sub = rrd_opts},
    {.name = "incidents",
     .type = WP_OPT_SECTION,
     .help = "rules files and the incident policy",
     .offset = offsetof(struct coll_conf, incidents),
     .sub = incidents_opts},
    {.name = "notify",
     .type = WP_OPT_CUSTOM,
     .help = "tickets and notifications: destinations and routes (docs/NOTIFY.md)",
     .offset = offsetof(struct coll_conf, notify),
     .custom = notify_conf_decode,
     .custom_free = notify_conf_free},
    {.name = "reports",
     .type = WP_OPT_CUSTOM,
     .help = "scheduled reports: archive and mail (docs/REPORTS.md)",
     .offset = offsetof(struct coll_conf, reports),
     .custom = rsched_conf_decode,
     .custom_free = rsched_conf_free},
    {.name = "http",
     .type = WP_OPT_SECTION,
     .help = "dashboard and JSON API server (docs/API.md)",
     .offset = offsetof(struct coll_conf, http),
     .sub = http_opts},
    WP_OPT_TABLE_END,
};

/* One archive in its mapping form. */
struct archive_item {
    int cf;
    int64_t resolution_ms;
    int64_t span_ms;
};

static const struct wp_opt archive_opts[] = {
    {.name = "cf",
     .type = WP_OPT_ENUM,
     .help = "consolidation function",
     .offset = offsetof(struct archive_item, cf),
     .required = 1,
     .enum_names = cf_names},
    {.name = "resolution",
     .type = WP_OPT_DURATION,
     .def = "0",
     .help = "time per row (0 = the series step)",
     .offset = offsetof(struct archive_item, resolution_ms)},
    {.name = "span",
     .type = WP_OPT_DURATION,
     .help = "how far back the archive reaches",
     .offset = offsetof(struct archive_item, span_ms),
     .required = 1},
    WP_OPT_TABLE_END,
};

/* field is &rrd.archives; narchives sits at a fixed distance inside the same struct. */
static size_t *narchives_of(void *field)
{
    const size_t delta =
        offsetof(struct coll_conf, rrd.narchives) - offsetof(struct coll_conf, rrd.archives);
    return (size_t *)(void *)((char *)field + delta);
}

static int decode_archives(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                           const void *arg, struct wp_conf_err *err)
{
    struct wp_rrd_archive **arch = field;
    size_t *narch = narchives_of(field);
    size_t n = wp_conf_seq_len(doc, node);
    char path[48];

    (void)arg;
    if (!wp_conf_is_seq(node)) {
        return wp_conf_errorf(doc, node, err,
                              "rrd.archives: expected a list like [{cf: AVERAGE, span: 25h}]");
    }
    *arch = wp_xcalloc(n, sizeof(**arch));
    for (size_t i = 0; i < n; i++) {
        struct wp_conf_node *it = wp_conf_seq_at(doc, node, i);
        struct archive_item a = {0, 0, 0};
        int rc = 0;

        snprintf(path, sizeof(path), "rrd.archives[%zu]", i);
        rc = wp_opts_apply(doc, it, archive_opts, &a, path, err);
        if (rc < 0) {
            return rc; /* archive_opts hold no heap fields */
        }
        if (a.resolution_ms % 1000 != 0) {
            return wp_conf_errorf(doc, wp_conf_map_get(doc, it, "resolution"), err,
                                  "%s.resolution: must be whole seconds", path);
        }
        if (a.span_ms <= 0 || a.span_ms % 1000 != 0 || a.span_ms / 1000 > SPAN_MAX_S) {
            return wp_conf_errorf(doc, wp_conf_map_get(doc, it, "span"), err,
                                  "%s.span: must be whole seconds, more than 0 and at most 20 "
                                  "years",
                                  path);
        }
        if (a.resolution_ms > a.span_ms) {
            return wp_conf_errorf(doc, wp_conf_map_get(doc, it, "resolution"), err,
                                  "%s.resolution: must not be longer than span", path);
        }
        (*arch)[i].cf = wp_xstrdup(cf_names[a.cf]);
        (*arch)[i].resolution_s = (uint32_t)(a.resolution_ms / 1000);
        (*arch)[i].span_s = (uint32_t)(a.span_ms / 1000);
        *narch = i + 1;
    }
    return 0;
}

static void free_archives(void *field, const void *arg)
{
    struct wp_rrd_archive **arch = field;
    size_t *narch = narchives_of(field);

    (void)arg;
    for (size_t i = 0; *arch != NULL && i < *narch; i++) {
        /* cf is const for rrdw's readers, but the conf owns the copy */
        free((char *)(uintptr_t)(*arch)[i].cf);
    }
    free(*arch);
    *arch = NULL;
    *narch = 0;
}

static int finish(void *obj, struct wp_conf_doc *doc, struct wp_conf_err *err)
{
    struct coll_conf *c = obj;
    struct wp_conf_node *root = wp_conf_root(doc);
    char *listen = c->listen_host; /* the table stored the whole "host:port" text here */

    c->listen_host = NULL;
    if (wp_conf_split_hostport(listen, 0, &c->listen_host, &c->listen_port) < 0) {
        int rc = wp_conf_errorf(doc, wp_conf_map_get(doc, root, "listen"), err,
                                "listen: expected \"host:port\" (IPv6 as \"[::1]:7443\", port 0 "
                                "= any free port), got \"%s\"",
                                listen);
        free(listen);
        return rc;
    }
    free(listen);
    if (c->http.listen != NULL &&
        wp_conf_split_hostport(c->http.listen, 0, &c->http.listen_host, &c->http.listen_port) < 0) {
        struct wp_conf_node *h = wp_conf_map_get(doc, root, "http");
        return wp_conf_errorf(doc, h != NULL ? wp_conf_map_get(doc, h, "listen") : root, err,
                              "http.listen: expected \"host:port\" (port 0 = any free port), "
                              "got \"%s\"",
                              c->http.listen);
    }
    if ((c->http.tls.cert == NULL) != (c->http.tls.key == NULL)) {
        struct wp_conf_node *h = wp_conf_map_get(doc, root, "http");
        return wp_conf_errorf(doc, h != NULL ? wp_conf_map_get(doc, h, "tls") : root, err,
                              "http.tls: needs both cert and key");
    }
    if (c->http.static_dir == NULL) {
        const char *env = getenv("WATCHPOST_DASHBOARDS");
        c->http.static_dir = wp_xstrdup(env != NULL && env[0] != '\0' ? env : COLL_DASHBOARDS_DIR);
    }
    wp_conf_resolve_path(c->path, &c->http.static_dir);
    wp_conf_resolve_path(c->path, &c->http.tls.cert);
    wp_conf_resolve_path(c->path, &c->http.tls.key);
    wp_conf_resolve_path(c->path, &c->http.enroll.ca_dir);
    wp_conf_resolve_path(c->path, &c->state_dir);
    wp_conf_resolve_path(c->path, &c->tls.ca);
    wp_conf_resolve_path(c->path, &c->tls.cert);
    wp_conf_resolve_path(c->path, &c->tls.key);
    wp_conf_resolve_path(c->path, &c->tls.crl);
    wp_conf_resolve_path(c->path, &c->rrd.dir);
    if (c->rrd.dir == NULL) {
        c->rrd.dir = wp_xasprintf("%s/rrd", c->state_dir);
    }
    for (size_t i = 0; i < c->incidents.rules.n; i++) {
        wp_conf_resolve_path(c->path, &c->incidents.rules.v[i]);
    }
    if (c->reports != NULL) {
        int rc = rsched_conf_finish(c->reports, c->notify, c->path, c->state_dir, doc,
                                    wp_conf_map_get(doc, root, "reports"), err);
        if (rc < 0) {
            return rc;
        }
    }
    static const char *const lv[] = {"high", "medium", "low"};
    static const int defaults[3][3] = {{1, 2, 3}, {2, 3, 4}, {3, 4, 4}};
    for (int i = 0; i < 3; i++) {
        const struct wp_strlist *l = &c->incidents.matrix[i];
        if (l->n == 0) {
            memcpy(c->incidents.matrix_prio[i], defaults[i], sizeof(defaults[i]));
            continue;
        }
        struct wp_conf_node *mx = wp_conf_map_get(doc, root, "incidents");
        mx = mx != NULL ? wp_conf_map_get(doc, mx, "matrix") : NULL;
        struct wp_conf_node *at = mx != NULL ? wp_conf_map_get(doc, mx, lv[i]) : NULL;
        if (l->n != 3) {
            return wp_conf_errorf(doc, at != NULL ? at : root, err,
                                  "incidents.matrix.%s: expected three priorities (for urgency "
                                  "high, medium, low), like [P1, P2, P3]",
                                  lv[i]);
        }
        for (int k = 0; k < 3; k++) {
            const char *v = l->v[k];
            if ((v[0] != 'P' && v[0] != 'p') || v[1] < '1' || v[1] > '4' || v[2] != '\0') {
                return wp_conf_errorf(doc, at != NULL ? at : root, err,
                                      "incidents.matrix.%s: expected P1, P2, P3 or P4, got \"%s\"",
                                      lv[i], v);
            }
            c->incidents.matrix_prio[i][k] = v[1] - '0';
        }
    }
    return 0;
}

int coll_conf_load(const char *path, struct wp_conf_err *err, struct coll_conf **out)
{
    struct coll_conf *c = wp_xcalloc(1, sizeof(*c));
    int rc = 0;

    *out = NULL;
    c->path = wp_xstrdup(path);
    rc = wp_opts_load(path, top_opts, c, finish, err);
    if (rc < 0) {
        coll_conf_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void coll_conf_free(struct coll_conf *c)
{
    if (c == NULL) {
        return;
    }
    wp_opts_free(top_opts, c);
    free(c->listen_port);
    free(c->http.listen_host);
    free(c->http.listen_port);
    free(c->path);
    free(c);
}

const struct wp_opt *coll_conf_opts(const char *which)
{
    if (strcmp(which, "top") == 0) {
        return top_opts;
    }
    if (strcmp(which, "rrd.archives") == 0) {
        return archive_opts;
    }
    return NULL;
}
