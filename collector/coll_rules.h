/* SPDX-License-Identifier: Apache-2.0 */
/* Rules and incidents inside the collector (coll_rules.c): loop thread only. */
#ifndef WP_COLLECTOR_COLL_RULES_H
#define WP_COLLECTOR_COLL_RULES_H

#include <stddef.h>
#include <stdint.h>

struct coll_server;
struct coll_agent;
struct wp_series_def;
struct wp_msg;
struct rule_set;

/* Load the rules files of the config (a bad file refuses the start with file:line:column),
 * open STATE_DIR/incidents.db and resume the engine's saved states. Before the registry
 * is loaded, so known agents are watched for silence from the start. */
int coll_rules_start(struct coll_server *s);
void coll_rules_stop(struct coll_server *s);
/* Reload the rules files: all or nothing; on error the loaded rules stay and err says why
 * (file:line:column). On success err holds a one-line summary. */
int coll_rules_reload(struct coll_server *s, char *err, size_t len);

/* Agent a is known (registry load or HELLO): watch its host (with a->labels). */
void coll_rules_host(struct coll_server *s, struct coll_agent *a);
/* a->labels changed since its series were bound: select them again. */
void coll_rules_relabel(struct coll_server *s, struct coll_agent *a);
/* Series d of agent a is defined (a->series[d->id] is set): bind its fields to rules. */
void coll_rules_bind(struct coll_server *s, struct coll_agent *a, const struct wp_series_def *d);
struct coll_series;
struct wp_rec;
/* A checked batch of a live agent arrived: its host is not silent. Then for each row of a
 * series with rules (cs->rs != NULL) coll_rules_row, for each event, check or state
 * coll_rules_record. Journal replay feeds nothing: those rows were evaluated when they
 * first arrived. */
void coll_rules_batch_begin(struct coll_server *s, struct coll_agent *a);
void coll_rules_row(struct coll_server *s, const struct coll_series *cs, int64_t ts_ms,
                    const double *vals);
void coll_rules_record(struct coll_server *s, struct coll_agent *a, const struct wp_rec *r);
/* The batch is through: commit what it changed in the incident store (one transaction). */
void coll_rules_batch_end(struct coll_server *s);
/* Every second: no-data, maintenance, escalations. */
void coll_rules_tick(struct coll_server *s);
/* Buckets of the delay histogram: counts of opened incidents whose delay was at most
 * coll_rules_delay_bounds_us[b] (cumulative, like Prometheus' le buckets). */
#define COLL_RULES_DELAY_BUCKETS 11
extern const int64_t coll_rules_delay_bounds_us[COLL_RULES_DELAY_BUCKETS];

struct coll_rules_stats {
    uint64_t opened, errors, problems, samples, fires; /* fires: opens and value updates */
    /* breaching data arrived -> row of the opened (or reopened) incident committed, over
     * the last 8192 of them */
    uint64_t delay_p50_us, delay_p99_us, delay_max_us;
    uint64_t delay_le[COLL_RULES_DELAY_BUCKETS];
};
void coll_rules_stats(struct coll_server *s, struct coll_rules_stats *out);
/* Is host in host group `group` of the loaded rules? (notification routes) */
int coll_rules_in_group(void *s, const char *group, const char *host);
/* The incident store (for the notification worker's own incidents). */
struct inc_store *coll_rules_store(struct coll_server *s);
/* The loaded rule set (read only; replaced by a reload, so do not keep it), or NULL. */
const struct rule_set *coll_rules_set(struct coll_server *s);
struct maint_store;
/* The runtime maintenance windows' store (maint.h), or NULL. */
struct maint_store *coll_rules_maint(struct coll_server *s);
/* A window was added or ended in this process: load the windows again and run the engine's
 * time pass now, so problems of the hosts it covers are (un)suppressed at once. */
void coll_rules_maint_changed(struct coll_server *s);

#endif
