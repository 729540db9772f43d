/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Health and fault reports (report.c): the weekly / monthly health report and the fault
 * report of one incident, computed from stored data only (STATE_DIR/incidents.db, lines.db,
 * watchpost.db, events.db and the RRD files; read-only connections, so the collector may
 * run), as a report document
 * (report_doc.h) that is then written as HTML and CSV. Everything is computed "as of the
 * period end": an acknowledgement or resolution after the period does not change the
 * report of the period, and nothing reads the clock except to pick the default period, so
 * a rerun on the same data gives the same bytes. Times are shown in the process's local
 * time zone (TZ). docs/REPORTS.md defines every figure. Single-threaded.
 */
#ifndef WP_COLLECTOR_REPORT_H
#define WP_COLLECTOR_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "report_doc.h"

struct att_sched;  /* attendance.h */
struct att_report; /* attendance.h */

/* A report period [from_ms, to_ms) with its label ("2026-W47", "2026-11"). */
struct rep_period {
    int64_t from_ms, to_ms;
    char label[32];
};

/* ISO week spec ("2026-W47"; NULL or "": the last complete week before now_ms), in local
 * time: Monday 00:00 to the next Monday 00:00. Fills the week and the one before it.
 * 0 or -EINVAL (bad or impossible spec). */
int rep_week(const char *spec, int64_t now_ms, struct rep_period *cur, struct rep_period *prev);
/* Month spec ("2026-11"; NULL or "": the last complete month before now_ms), local time. */
int rep_month(const char *spec, int64_t now_ms, struct rep_period *cur, struct rep_period *prev);

struct rep_opts {
    const char *lang;          /* "en" (default) or "zh-CN" */
    const char *silence_rules; /* comma-separated rules whose incidents mean "host down";
                                  NULL: "host_silent" */
    const char *rrd_dir;       /* the RRD root; NULL: STATE_DIR/rrd */
};

/* Duration statistics over n samples (ms): median (mean of the two middle values when n is
 * even) and p90 (nearest rank: the ceil(0.9 n)-th smallest). 0 when n is 0. */
struct rep_dist {
    size_t n;
    int64_t median_ms, p90_ms;
};

enum rep_sla { REP_SLA_PENDING = 0, REP_SLA_MET = 1, REP_SLA_BREACHED = 2 };

/* One incident as of the period end. */
struct rep_inc {
    int64_t id;
    int priority, impact, status; /* status as of the period end (enum inc_status) */
    char *category, *rule, *host, *summary, *note; /* note: the resolution note, or "" */
    char *tickets; /* remote tickets linked by the notification outbox: "rt: 1234, ..." */
    int64_t opened_ms, acked_ms, resolved_ms; /* 0 = not by the period end */
    int64_t response_due_ms, resolve_due_ms;
    int opened_in, resolved_in;     /* opened / resolved within the period */
    int active_in;                  /* open or acknowledged at some time in the period */
    int escalations_in, max_level;  /* escalation steps within the period, level at its end */
    int flapping_in, reopens_in;    /* flapping marked / reopened within the period */
    int suppressed;                 /* suppressed at some point */
    enum rep_sla response, resolve; /* for incidents opened in the period */
};

struct rep_host {
    char *host;
    int silences;                /* silence incidents overlapping the period */
    int64_t down_ms, planned_ms; /* unplanned / planned (maintenance) silence */
    double avail_pct;            /* 100 * (T - planned - down) / (T - planned) */
};

#define REP_NSTATES                                                           \
    10 /* idle ringing in_use on_hold busy unavailable out_of_service blocked \
          unknown other */

struct rep_line {
    char *host, *group, *object;
    int reg;      /* a registration: 0 no, 1 kamreg extension, 2 sipping target */
    int reg_lost; /* changes into unavailable of a registration within the period */
    int64_t state_ms[REP_NSTATES];
    int64_t known_ms, bad_ms, nodata_ms; /* known: not unknown / before the first report */
    int blocked_n, bad_n;                /* entries into blocked / into any bad state */
    double avail_pct;                    /* 100 * (known - bad) / known; 100 with no data */
};

struct rep_seat {
    char *host, *seat;
    int sessions, days;
    int64_t logged_ms, paused_ms;
};

/* A host metric over the period from its RRD file (AVERAGE rows of the finest archive that
 * covers the period; rows without a value skipped). metric: "cpu" (100 - idle, %), "mem"
 * (used / total, %), "load" (load1), "df /u01" (used_pct). */
struct rep_metric {
    char *host, *metric;
    size_t n;
    double avg, p95, peak; /* p95: nearest rank; peak: the highest row */
    double full_days;      /* df: days after the period end until the least-squares trend
                              over the period reaches 100 % (0: full); -1: not rising */
    char *path;            /* its RRD file */
    int kind;              /* which data sources (report.c) */
};

/* A graph of metric m over period p made by librrd (rrd_graph_v, not thread-safe: one
 * thread only): fmt "SVG" or "PNG", title shown above it. Returns the image (free() it)
 * and its length in *len, or NULL (nothing to show or librrd failed). */
void *rep_metric_graph(const struct rep_metric *m, const struct rep_period *p, const char *fmt,
                       const char *title, size_t *len);

/* A count by key (a log rule, host or normalised message), with the highest severity seen
 * (0 info .. 3 critical) and, for a message, its rule. */
struct rep_count {
    char *key, *rule;
    size_t n;
    int sev;
};

/* A hotline test call target (sipcall series) over the period, from its RRD file: the rows
 * of the finest AVERAGE archive covering the period that have a value. */
struct rep_call {
    char *host, *target;
    uint32_t step_s;    /* the resolution of those rows */
    size_t calls;       /* rows with a known "answered" */
    double answered;    /* the sum of "answered" (a row averaging k calls adds a share) */
    double success_pct; /* 100 * answered / calls; 0 without a call */
    size_t n_answer;    /* rows with a known answer_s */
    double answer_p50, answer_p95, answer_max; /* seconds, nearest rank */
};

/* A process (proc series: instance = the match name) of one host over the period. */
struct rep_proc {
    char *host, *name;
    size_t n;
    double cpu_avg, cpu_peak; /* cpu_pct: % of one core */
    double mem_avg, mem_peak; /* rss_bytes */
};

struct rep_dead {
    int64_t id, incident_id, created_ms;
    char *dest, *event, *error;
    int attempts, code;
};

struct rep_stats {
    struct rep_period p;
    struct rep_inc *inc; /* the incidents that may touch the period, by id (see active_in) */
    size_t ninc;
    size_t opened, resolved, opened_prio[4], resolved_prio[4];
    struct rep_dist mtta, mttr;
    size_t resp[3], res[3]; /* indexed by enum rep_sla */
    size_t escalations, flapping, reopens;
    size_t tickets;         /* incidents opened in the period with a ticket created or linked */
    struct rep_host *hosts; /* by host name */
    size_t nhosts;
    double avail_pct;       /* mean host availability; 100 with no host */
    struct rep_line *lines; /* by host, group, object */
    size_t nlines;
    struct rep_seat *seats; /* by host, seat */
    size_t nseats;
    struct rep_metric *metrics; /* by host, metric */
    size_t nmetrics;
    struct rep_dead *dead; /* dead-letter notifications created in the period */
    size_t ndead;
    int have_lines, have_outbox, have_registry;
    /* logs (events.db log_events with ts_ms in the period) */
    int have_events;
    size_t nlog, log_sev[4];
    struct rep_count *log_rules, *log_hosts; /* by count, then key */
    size_t nlog_rules, nlog_hosts;
    struct rep_count *log_msgs; /* by normalised message (rule, text): by count, then key */
    size_t nlog_msgs;
    /* telephony */
    size_t reg_lost;        /* registration losses, all lines */
    struct rep_call *calls; /* by host, target */
    size_t ncalls;
    /* processes */
    struct rep_proc *procs; /* by host, name */
    size_t nprocs;
    /* seat attendance against a schedule (rep_stats_attendance), or NULL: the telephony
     * section then has no attendance table */
    struct att_report *att;
};

/* A log message with every run of digits replaced by one '#' ("ORA-00600 at 12:03" and
 * "ORA-00600 at 9:41" are both "ORA-# at #:#"), and runs of white space by one space.
 * Returns a new string (free()). */
char *rep_log_norm(const char *text);

/* Compute the figures of period p from the stores in state_dir. On error returns <0 with a
 * message in err. Free *out with rep_stats_free(). */
int rep_stats_build(const char *state_dir, const struct rep_period *p, const struct rep_opts *o,
                    struct rep_stats **out, char *err, size_t errlen);
void rep_stats_free(struct rep_stats *s);

/* Seat attendance of s's period against schedule sched (att_build() of attendance.h, with
 * now_ms as there), kept in s->att, shown in the health report's telephony section and freed
 * with s. 0, or <0 with a message in err. */
int rep_stats_attendance(struct rep_stats *s, const char *state_dir, const struct att_sched *sched,
                         int64_t now_ms, char *err, size_t errlen);

/* The health report of cur with prev (the period before, computed the same way) for the
 * week-over-week comparison. kind: "weekly" or "monthly". Free with rdoc_free(). */
struct rdoc *rep_health_doc(const char *kind, const struct rep_stats *cur,
                            const struct rep_stats *prev, const struct rep_opts *o);

/* The fault report of incident id. <0 with err (WP_ENOTFOUND: no such incident). */
int rep_incident_doc(const char *state_dir, int64_t id, const struct rep_opts *o, struct rdoc **out,
                     char *err, size_t errlen);

/* Helpers, exposed for the tests. */
struct rep_dist rep_dist_of(int64_t *v, size_t n); /* sorts v */

#endif
