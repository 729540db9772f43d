/* SPDX-License-Identifier: Apache-2.0 */
/* Probe scheduling: one timer on whole wall-clock seconds, one batch per tick into the spool. */
#ifndef WP_AGENT_SCHED_H
#define WP_AGENT_SCHED_H

#include <stddef.h>
#include <stdint.h>

struct agent;
struct agent_conf;
struct agent_sched;

/*
 * Ticks fall on whole seconds of wall time (wp_clock_now_ms). A probe with an interval of
 * N s (rounded down to whole seconds, at least 1) samples at the seconds that are
 * multiples of N, so its rows carry aligned timestamps (multiples of its interval) and
 * map to exactly one row of an RRD file whose step is N. Every probe due in a second
 * writes into one batch (sink ts = that second, step = the probe's interval); the batch
 * goes into the spool with one append, then each sampled probe's committed() runs and
 * the sender is kicked. A late loop (suspend, stall) skips the missed seconds instead of
 * catching up.
 *
 * Probes flagged WP_PROBE_BLOCKING sample on the libuv thread pool into a private
 * capture; their rows become a batch of their own (same aligned ts) when they finish. A
 * blocking probe still running at its next due second skips that second.
 *
 * Every 10 s the batch also carries the agent's own series, group "agent", inst "":
 * spool_bytes, spool_pending, spool_drop_batches, spool_drop_values (unacked batches
 * and their values the spool had to drop, since it was made), connected, reconnects,
 * batches_sent, batches_acked, rss_bytes, cpu_pct (of one core since the last sample),
 * series (dictionary size), bad_rows (rows dropped by the sink). Field names fit RRD's
 * 19-character data source names.
 *
 * Loop thread only.
 */

/* Start the timer and the streaming probes (start()). a->sink, a->spool, a->conf must be
 * set; a->sender may be NULL (nothing is kicked). Returns 0 (start failures are logged). */
int agent_sched_start(struct agent *a, struct agent_sched **out);

/* Stop the probes (stop()) and close the timer. Work running on the thread pool finishes
 * and its batch still goes into the spool while the loop drains. */
void agent_sched_stop(struct agent_sched *s);

/* What agent_sched_reload() did. */
struct agent_sched_diff {
    size_t kept;    /* probes the new config borrowed: still running, state and all */
    size_t stopped; /* removed, or replaced because their config changed */
    size_t started; /* added, or the replacements */
};

/*
 * Switch to the probes of nc (from agent_conf_reload(), before agent_conf_adopt()): a probe
 * nc borrowed from old keeps its entry and schedule; every other old probe is stopped, and
 * nc's new probes are started. An old probe the scheduler must keep past the reload has its
 * slot in old set to NULL (the scheduler owns it): a blocking one whose sample is running
 * (stopped and freed when the sample finishes) and one with stop() (streaming probes close
 * libuv handles that live in the probe; freed by agent_sched_free() after the loop has
 * drained). The caller then adopts and frees old. Loop thread only.
 */
void agent_sched_reload(struct agent_sched *s, struct agent_conf *nc, struct agent_conf *old,
                        struct agent_sched_diff *diff);

/* Free after the loop has ended. NULL is fine. */
void agent_sched_free(struct agent_sched *s);

/* Run the tick for second sec (ms = sec * 1000) now: the probes due then, self metrics
 * when sec % 10 == 0, one spool append. For tests and --once style callers. */
void agent_sched_tick(struct agent_sched *s, int64_t sec);

/* Ticks skipped because the loop was late, since start. */
uint64_t agent_sched_skipped(const struct agent_sched *s);

#endif
