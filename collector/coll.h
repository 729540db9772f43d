/* SPDX-License-Identifier: Apache-2.0 */
/* The collector process: one struct coll_server owns the loop, listener, agents and stores. */
#ifndef WP_COLLECTOR_COLL_H
#define WP_COLLECTOR_COLL_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "wp/buf.h"

struct coll_conf;
struct coll_db;
struct wp_journal;
struct wp_rrdw;
struct wp_rrdw_file;
struct wp_tls_ctx;
struct wp_tls_conn;
struct coll_conn;
struct coll_ctl;
struct http_server;
struct enroll_api;
struct rsched;
struct coll_rules;
struct coll_lines;
struct coll_events;
struct rules_host;
struct rules_series;

/* One series of an agent: its RRD file and field count (indexed by the agent's series id). */
struct coll_series {
    struct wp_rrdw_file *file;
    uint32_t nfields;
    struct rules_series **rs; /* per field, NULL when no rule selects any field */
};

#define COLL_MAX_SERIES_ID 1000000u /* ids at or above are refused (bounds the table) */

struct coll_agent {
    char *id;
    char *host;
    char *version;
    char fingerprint[65];
    char addr[64];
    uint64_t committed; /* highest seq durable in the journal (what WELCOME reports) */
    uint64_t appended;  /* highest seq handed to the journal */
    struct coll_series *series;
    uint32_t series_cap;
    struct coll_conn *conn; /* the live connection, if any */
    struct rules_host *rh;  /* the rules engine's view of its host */
    char *labels;           /* HELLO labels, "k\x1fv\x1e" per label ("" = none; kept in the registry) */
    int64_t first_seen, last_seen; /* unix s */
    int connected;
    int dirty;          /* registry row changed: write it at the next flush */
    uint64_t batches, values, dup_batches, missing_batches;
    struct coll_agent *hnext; /* hash chain */
};

struct coll_stats {
    uint64_t accepted, handshakes, resumed, refused_tls, refused_auth, closed_proto;
    uint64_t batches, values_received, values_acked, dup_batches, missing_batches;
    uint64_t journal_errors, replayed_batches, replayed_values;
    uint64_t acks_sent;
};

struct coll_server {
    uv_loop_t *loop;
    struct coll_conf *conf;
    struct wp_tls_ctx *tls;
    struct coll_db *db;
    struct wp_journal *journal;
    struct wp_rrdw *rrdw;
    struct coll_ctl *ctl;
    struct coll_rules *rules;
    struct coll_lines *lines; /* line states (lines.db) */
    struct coll_events *events; /* checks and log events (events.db, events.h) */
    int64_t last_events_prune_ms;
    int events_prune_more; /* the last prune hit its batch limit: go on next tick */
    int64_t last_outbox_prune_ms;
    int outbox_prune_more; /* the same for the notification outbox */
    struct outbox *outbox;    /* notification outbox (incidents.db), NULL without notify: */
    struct deliver *deliver;
    struct rsched *reports;   /* scheduled reports (report_sched.c), NULL without reports: */
    struct http_server *http; /* dashboard and JSON API (coll_http.c), NULL when off */
    struct coll_api *api;     /* its routes, login and event streams (http_api.c) */
    /* agent enrolment, POST /api/v1/enroll (enroll_api.c); NULL when HTTP is off */
    struct enroll_api *enroll;
    int64_t last_prune_ms;
    int64_t last_linerrd_ms; /* the once-a-minute per-line RRD refresh (linerrd.h) */

    uv_tcp_t listener;
    int listening;
    uv_timer_t crl_timer;
    uv_timer_t tick_timer; /* 1 s housekeeping: registry writes, journal release */
    uv_signal_t sig_term, sig_int, sig_hup;
    int stopping;
    int exit_code;

    struct coll_agent **agents; /* hash table by id */
    size_t agents_cap, nagents;
    struct coll_conn *conns;    /* all live connections (doubly linked) */
    size_t nconns;
    struct coll_conn *paused;   /* connections waiting for journal space */

    int handles_started;
    uint64_t released_below; /* journal segments below this are deleted */
    uint64_t release_below_pending;
    int releasing;           /* a syncfs + release is running */
    int64_t last_release_ms;
    uv_work_t release_work;
    int rrd_dirfd;

    struct coll_stats st;
};

/* Set up everything from the loaded config; replays the journal; starts listening.
 * port_file: where to write the bound port (may be NULL). Returns 0 or an error (logged). */
int coll_server_start(struct coll_server *s, uv_loop_t *loop, struct coll_conf *conf,
                      const char *port_file);
/* Begin a clean shutdown: stop listening, close connections, flush RRD, release the
 * journal, close stores. The loop then ends by itself. */
void coll_server_stop(struct coll_server *s);
/* Free what remains after the loop ended. */
void coll_server_cleanup(struct coll_server *s);

/* Control socket (ctl.c): stats and flush for the CLI. */
int coll_ctl_start(struct coll_server *s, const char *path, struct coll_ctl **out);
void coll_ctl_stop(struct coll_ctl *c);

/* One counter as `watchpost status` shows it. */
typedef void (*coll_stat_fn)(void *arg, const char *name, uint64_t value);
/* Call fn for every counter of `watchpost status`, in its order (ctl.c; also GET
 * /api/v1/status). Loop thread only. */
void coll_stats_foreach(struct coll_server *s, coll_stat_fn fn, void *arg);

/* Dashboard and JSON API server (coll_http.c): started when conf->http.listen is set, writes
 * the bound port to conf->http.port_file when set. 0 or an error (logged). */
int coll_http_start(struct coll_server *s);
void coll_http_stop(struct coll_server *s);

#endif
