/* SPDX-License-Identifier: Apache-2.0 */
/* The collector's configuration (YAML), decoded with option tables. */
#ifndef WP_COLLECTOR_CONF_H
#define WP_COLLECTOR_CONF_H

#include <stdint.h>

#include "wp/conf.h"

struct wp_rrd_archive;
struct notify_conf;
struct rsched_conf;

/*
 * collector.yaml:
 *   listen: 127.0.0.1:7443        (port 0 = any free port; see --port-file)
 *   state_dir: /var/lib/watchpost (journal/, rrd/, watchpost.db, collector.sock)
 *   log_level: info
 *   tls:     {ca, cert, key, crl, crl_check_interval: 5s}
 *   limits:  {max_frame: 4MiB, max_agents: 20000, handshake_timeout: 10s, idle_timeout: 120s,
 *             log_events_per_min: 600}
 *   journal: {segment_bytes: 64MiB, fsync: true}
 *   rrd:     {dir (default state_dir/rrd), flush_interval: 60s, max_pending: 300,
 *             heartbeat_steps: 2, archives: [{cf: AVERAGE, resolution: 1m, span: 25h}, ...]}
 *   incidents: {rules: [rules.d/default.yaml], reopen_window: 30m, flap_changes: 5,
 *               flap_window: 1h,
 *               matrix: {high: [P1, P2, P3], medium: [P2, P3, P4], low: [P3, P4, P4]},
 *                        (impact: priorities for urgency high, medium, low)
 *               sla: {p1: {response: 15m, resolve: 4h}, p2: ..., p3: ..., p4: ...}}
 *   notify: {domain, dashboard_url, max_age, destinations: [...], routes: [...]}
 *            (notify_conf.c, docs/NOTIFY.md)
 *   reports: {archive_dir, keep, formats, lang, recipients, kinds: [...]}
 *            (report_sched.c, docs/REPORTS.md)
 *   http:   {listen: 127.0.0.1:8080 (no listen: no HTTP server), tls: {cert, key},
 *            static_dir (default $WATCHPOST_DASHBOARDS or /usr/share/watchpost/dashboards),
 *            max_connections: 1024, max_header: 16KiB, max_body: 1MiB, header_timeout: 10s,
 *            body_timeout: 30s, idle_timeout: 60s, sse_ping: 15s, session_idle: 12h,
 *            session_max: 7d, login_failures: 5, login_window: 60s,
 *            enroll: {ca_dir, cert_days: 825}}   (docs/API.md)
 * Relative paths are relative to the config file's directory.
 */
struct coll_conf {
    char *path;
    char *listen_host;
    char *listen_port;
    char *state_dir;
    int log_level;
    struct {
        char *ca, *cert, *key, *crl;
        int64_t crl_check_interval_ms;
    } tls;
    struct {
        uint64_t max_frame;
        int64_t max_agents;
        int64_t handshake_timeout_ms, idle_timeout_ms;
        int64_t log_events_per_min; /* events.h flood cap */
    } limits;
    struct {
        uint64_t segment_bytes;
        int fsync;
    } journal;
    struct {
        char *dir;
        int64_t flush_interval_ms;
        int64_t max_pending;
        int64_t heartbeat_steps;
        struct wp_rrd_archive *archives; /* cf strings owned */
        size_t narchives;                /* 0 = defaults */
    } rrd;
    struct {
        struct wp_strlist rules; /* rules files, paths resolved against the config file */
        int64_t reopen_window_ms;
        int64_t flap_changes;
        int64_t flap_window_ms;
        struct wp_strlist matrix[3]; /* high, medium, low impact: "P1".."P4" per urgency */
        struct {
            int64_t response_ms, resolve_ms;
        } sla[4];
        int matrix_prio[3][3]; /* decoded from matrix (finish) */
    } incidents;
    struct notify_conf *notify; /* `notify:` (notify.h); NULL when absent */
    struct rsched_conf *reports; /* `reports:` (report_sched.h); NULL when absent */
    struct {
        char *listen; /* "host:port" as written; NULL: no HTTP server */
        char *listen_host, *listen_port; /* split from listen (finish) */
        struct {
            char *cert, *key; /* both or neither: HTTPS */
        } tls;
        char *static_dir;
        int64_t max_connections;
        uint64_t max_header, max_body;
        int64_t header_timeout_ms, body_timeout_ms, idle_timeout_ms, sse_ping_ms;
        int64_t session_idle_ms, session_max_ms; /* login sessions (http_auth.h) */
        int64_t login_failures, login_window_ms;
        struct {
            char *ca_dir; /* NULL: enrolment off (enroll_api.h) */
            int64_t cert_days;
        } enroll;
        const char *port_file; /* --http-port-file (main.c), not from the YAML */
    } http;
};

int coll_conf_load(const char *path, struct wp_conf_err *err, struct coll_conf **out);
void coll_conf_free(struct coll_conf *c);

#endif
/* The option tables, for the generated reference (docs/CONFIG.md): "top", "rrd.archives". */
const struct wp_opt *coll_conf_opts(const char *which);
