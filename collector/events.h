/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Check results and log events (events.c): the latest result of every check the agents run
 * (wire record kind 3) with the history of its status changes, and the log events they send
 * (kind 2, every rule but "seat", whose events are seat sessions: seats.h), in SQLite (WAL,
 * STATE_DIR/events.db, tables checks, check_history and log_events). The Host page and GET
 * /api/v1/checks and /api/v1/logevents read it; reports read the same file. A noisy host is
 * capped at flood_per_min stored log events per minute (the overflow is counted and logged
 * once a minute). Time is passed in. The collector writes on its loop thread, one
 * transaction per batch.
 */
#ifndef WP_COLLECTOR_EVENTS_H
#define WP_COLLECTOR_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

struct coll_events;

#define COLL_EVENTS_FLOOD_PER_MIN 600               /* default of limits.log_events_per_min */
#define COLL_EVENTS_KEEP_MS       (35LL * 86400000) /* history and log events kept 35 days */

/* The latest result of one check. */
struct coll_check {
    const char *host, *name, *output;
    int status; /* 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN */
    int64_t since_ms, ts_ms;
};

/* One stored log event; fields is a JSON object ("{}" without fields). */
struct coll_logevent {
    int64_t id, ts_ms;
    const char *host, *source, *rule, *text, *fields;
    int severity;
};

/* Open (creating the schema) the store at path; flood_per_min <= 0 takes the default.
 * 0 or WP_EDB (logged). */
int coll_events_open(const char *path, int flood_per_min, struct coll_events **out);
/* Open an existing store at path read-only (the CLI, beside a running collector): no schema is
 * created, only the *_each queries work. 0 or WP_EDB with the reason in err. */
int coll_events_open_ro(const char *path, struct coll_events **out, char *err, size_t errlen);
void coll_events_close(struct coll_events *e);

/* Wrap a batch's puts in one transaction. 0 or WP_EDB. */
int coll_events_begin(struct coll_events *e);
int coll_events_commit(struct coll_events *e);

/*
 * One check result of host at ts_ms (status clamped to 0..3). The first result and every
 * change of status add a row to check_history and start a new since_ms; the same status only
 * refreshes output and ts_ms. A result older than the stored one is ignored (a replay).
 * Returns 1 when the status changed (or the check is new), 0 when not, WP_EDB.
 */
int coll_events_put_check(struct coll_events *e, const char *host, const char *name, int status,
                          const char *output, int64_t ts_ms);

/*
 * One log event of host (source, rule, severity 0..3, text, fields from the record, may be
 * NULL) at ts_ms, arriving at now_ms (the flood window: minutes of now_ms). Events of rule
 * "seat" are not log events and are skipped. Returns 1 when stored, 0 when skipped or over
 * the host's cap for the minute (counted), WP_EDB.
 */
int coll_events_put_event(struct coll_events *e, const char *host, const char *source,
                          const char *rule, int severity, const char *text,
                          const msgpack_object_map *fields, int64_t ts_ms, int64_t now_ms);

/* Log (once per host and minute) the log events dropped over the cap in minutes that ended
 * before now_ms, and forget hosts idle for a while. Call about once a second. */
void coll_events_tick(struct coll_events *e, int64_t now_ms);

/* Log events dropped over the cap since the store was opened. */
uint64_t coll_events_dropped(const struct coll_events *e);

/* Delete check history and log events older than before_ms, and checks not reported since
 * then, at most max rows per table (0: 10000). *more is set when a table had more to delete
 * (call again). Returns rows deleted or WP_EDB. */
int coll_events_prune(struct coll_events *e, int64_t before_ms, int max, int *more);

/* Latest check results, host NULL for every host, status -1 for any, by host and name.
 * fn returns nonzero to stop. Strings valid during the call only. 0 or WP_EDB. */
int coll_events_checks_each(struct coll_events *e, const char *host, int status,
                            int (*fn)(void *arg, const struct coll_check *c), void *arg);

/* Log events of host (NULL: any) with ts_ms >= since_ms, newest first, at most limit. */
int coll_events_log_each(struct coll_events *e, const char *host, int64_t since_ms, size_t limit,
                         int (*fn)(void *arg, const struct coll_logevent *ev), void *arg);
/* The same, of rule only (NULL: any rule). */
int coll_events_log_rule_each(struct coll_events *e, const char *host, const char *rule,
                              int64_t since_ms, size_t limit,
                              int (*fn)(void *arg, const struct coll_logevent *ev), void *arg);

const char *coll_events_errmsg(struct coll_events *e);

#endif
