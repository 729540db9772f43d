/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The rules engine: keeps per-series windows and per-problem state machines, and tells a
 * sink (the incident store in the collector, a recorder in tests) when a problem fires,
 * clears or is suppressed. Loop thread only. Time comes in as arguments: sample and event
 * times drive `for` / `recover_for`; now_ms (rules_eng_tick) drives no-data, maintenance
 * and durations of line states.
 *
 * State of one problem (rule + host + key labels = its fingerprint):
 *   ok -> pending (condition holds; `for` not yet elapsed) -> firing (signal fire)
 *   firing -> recovering (recovery holds; `recover_for` not yet elapsed) -> ok (signal clear)
 * A window with no samples gives no verdict: silence never resolves anything by itself
 * (that is the no-data rule's job). Pending, firing and recovering states are handed to the
 * sink's state_put so a restarted collector resumes a half-elapsed `for`.
 */
#ifndef WP_COLLECTOR_RULES_EVAL_H
#define WP_COLLECTOR_RULES_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "incident.h"
#include "rules.h"

struct rules_eng;
struct rules_host;
struct rules_series;

enum rules_state { RS_OK = 0, RS_PENDING = 1, RS_FIRING = 2, RS_RECOVERING = 3 };

struct rules_sink {
    void *arg;
    /* Required: a problem fires (again: at most once a minute while it stays firing). */
    int (*fire)(void *arg, const struct inc_signal *sig, int64_t now_ms);
    int (*clear)(void *arg, const char *fingerprint, int64_t now_ms);
    int (*suppress)(void *arg, const char *fingerprint, int on, const char *reason,
                    int64_t now_ms);
    /* Optional: persist / forget a problem's state (NULL = not persisted). */
    int (*state_put)(void *arg, const char *fingerprint, int state, int64_t since_ms);
    int (*state_del)(void *arg, const char *fingerprint);
};

struct rules_eng_stats {
    uint64_t samples, evals, fired, cleared, suppressed;
    size_t series, problems, hosts;
};

/* A new engine over rs (not owned; keep it alive until rules_eng_set replaces it or the
 * engine is freed). */
struct rules_eng *rules_eng_new(const struct rule_set *rs, const struct rules_sink *sink);
void rules_eng_free(struct rules_eng *e);
/* A state to resume (from the sink's store at start): applied when the problem with this
 * fingerprint appears; a log problem's is made a problem again at the next tick when its
 * host is known (its window runs out by the clock, counted from then). */
void rules_eng_restore(struct rules_eng *e, const char *fingerprint, int state, int64_t since_ms);
/* Reload: every series handle becomes invalid (the caller adds its series again); hosts
 * stay valid; problems keep their state across the swap when their fingerprint stays. */
void rules_eng_set(struct rules_eng *e, const struct rule_set *rs);
const struct rule_set *rules_eng_rules(const struct rules_eng *e);

/* The host of an agent (found or created; valid until rules_eng_free). labels: k, v, ...,
 * NULL (may be NULL). Host-wide no-data rules start watching it. */
struct rules_host *rules_eng_host(struct rules_eng *e, const char *host, const char *agent,
                                  const char *const *labels, int64_t now_ms);
/* The agent sent something: host-wide no-data clears. */
void rules_host_seen(struct rules_eng *e, struct rules_host *h, int64_t now_ms);

/* A metric series ("cpu.user" instance "total") of a host: NULL when no rule selects it. */
struct rules_series *rules_eng_series(struct rules_eng *e, struct rules_host *h,
                                      const char *metric, const char *instance);
/* One sample (NaN = unknown, skipped). */
void rules_sample(struct rules_eng *e, struct rules_series *se, int64_t ts_ms, double v);

/* Events from probes: a log line of file source; a line (extension/IVR port) state; a
 * check result. */
void rules_log(struct rules_eng *e, struct rules_host *h, const char *source, const char *text,
               int64_t ts_ms);
void rules_line(struct rules_eng *e, struct rules_host *h, const char *line, const char *group,
                const char *state, int64_t ts_ms);
void rules_check(struct rules_eng *e, struct rules_host *h, const char *check,
                 enum check_status status, const char *text, int64_t ts_ms);

/* Time-driven conditions (no data, line state durations, log windows running out,
 * maintenance windows). Call every second. */
void rules_eng_tick(struct rules_eng *e, int64_t now_ms);
/* Maintenance windows beside the rules config's (runtime windows, maint.c): fn(arg, host,
 * now_ms) names the window covering host at now_ms, or returns NULL; the name is copied at
 * once. Asked once per host per pass, so it must not query a database. NULL fn = none. A
 * window that opens or closes takes effect at the next tick. */
void rules_eng_set_maint(struct rules_eng *e,
                         const char *(*fn)(void *arg, const char *host, int64_t now_ms),
                         void *arg);

void rules_eng_stats(const struct rules_eng *e, struct rules_eng_stats *out);

/* For `watchpost rules test` and tests: call fn for every problem not in RS_OK. */
void rules_eng_each(struct rules_eng *e,
                    void (*fn)(void *arg, const char *fingerprint, const struct rule *r,
                               enum rules_state st, int64_t since_ms, double value,
                               int suppressed),
                    void *arg);

/* Evaluate FN over samples (t ascending) of window [end - window, end]; returns 0 and *out,
 * or WP_ENOTFOUND when the window holds no sample (no verdict). */
int rules_window_fn(enum rule_fn fn, const int64_t *t, const double *v, size_t n,
                    int64_t window_ms, int64_t end_ms, double *out);
/* Least-squares forecast: when will the trend reach limit? *eta_ms from end (0 = already);
 * WP_ENOTFOUND when never (flat or going away) or too few samples. */
int rules_forecast(const int64_t *t, const double *v, size_t n, double limit, int64_t *eta_ms);

#endif
