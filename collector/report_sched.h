/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Scheduled reports (report_sched.c): collector.yaml `reports:` says which report kinds run
 * when ("mon 08:00", "1 08:00", "08:30", local time of the collector, TZ respected), in which
 * formats and languages, and who gets them by mail. On its tick the collector finds, for each
 * enabled kind, the most recent due time and the period it reports on (the last complete
 * ISO week / month before it; the daily inspection: the 24 h before it). When the archive has
 * no report of that period, a child process (the collector's own binary with --report-job, so
 * the report code, which takes seconds and uses librrd's not thread-safe rrd_graph, never
 * runs on the loop) writes it to <archive>/<kind>/<period>/ (temporary directory + rename),
 * records it in the table `reports` of incidents.db and queues one outbox message per (kind,
 * period, destination), already rendered (multipart/mixed: the HTML report as the body, PDF
 * and CSVs attached) with the stable event id "<dest>-report-<kind>-<period>": a restart never
 * generates or mails the same period twice. Failures are logged and retried with exponential
 * backoff (docs/REPORTS.md, "Scheduled reports").
 *
 * Adding a report kind is one entry of the kind table in report_sched.c (name, default
 * schedule, subjects, build function, optionally its own period function).
 */
#ifndef WP_COLLECTOR_REPORT_SCHED_H
#define WP_COLLECTOR_REPORT_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "report.h"
#include "report_inspect.h"
#include "wp/conf.h"

/* ---- schedules (pure, any thread; local time of the process) ---- */

enum rsched_unit { RS_DAY = 0, RS_WEEK = 1, RS_MONTH = 2 };

struct rsched_at {
    int unit;      /* enum rsched_unit */
    int wday;      /* RS_WEEK: 0 = Sunday .. 6 = Saturday */
    int mday;      /* RS_MONTH: 1..31 (clamped to the month's last day) */
    int hour, min; /* local time */
};

/* "08:30" (daily), "mon 08:00" (weekly; mon..sun), "1 08:00" (monthly,
 * day 1..31: a day past the month's end means its last day). 0 or -EINVAL. */
int rsched_parse_at(const char *s, struct rsched_at *out);
/* The most recent due time at or before now_ms (ms since the epoch). */
int64_t rsched_last_due(const struct rsched_at *at, int64_t now_ms);
/* The period a report due at due_ms covers: the last complete day
 * ("2026-11-29"), ISO week
 * ("2026-W47") or month ("2026-11") before due_ms, in local time. */
void rsched_period_of(const struct rsched_at *at, int64_t due_ms, struct rep_period *p);
/* The period named label in unit (as above; "2026-W47" ...). 0 or -EINVAL. */
int rsched_period_parse(int unit, const char *label, struct rep_period *p);

/* ---- configuration ---- */

#define RSCHED_FMT_HTML 1u
#define RSCHED_FMT_PDF  2u
#define RSCHED_FMT_CSV  4u

struct rsched_kind;

struct rsched_kconf {
    /* from the YAML (reports.kinds[]) */
    char *kind;
    int enabled;
    char *at;
    struct wp_strlist formats, recipients;
    char *lang;
    char *schedule;           /* attendance: the shifts and holidays file */
    struct wp_strlist limits; /* inspection: name, value pairs (insp_limits_parse names) */
    /* decoded */
    const struct rsched_kind *k;
    struct rsched_at when;
    unsigned fmts;
    int has_limits;         /* inspection: limits: was given */
    struct insp_limits lim; /* the defaults overridden by limits: */
};

struct rsched_conf {
    char *archive_dir;                  /* default <state_dir>/reports (coll_conf finish) */
    int64_t keep_ms;                    /* archive entries older than this are removed */
    struct wp_strlist formats;          /* default html,pdf */
    char *lang;                         /* en or zh-CN */
    struct wp_strlist recipients;       /* email destination names or addresses */
    char *mail_via;                     /* the destination that carries mail to addresses */
    int64_t retry_min_ms, retry_max_ms; /* backoff after a failed run */
    struct rsched_kconf *kinds;         /* as written under kinds: */
    size_t nkinds;
    struct rsched_kconf *eff; /* one per kind of the table, defaults filled in */
    size_t neff;
};

/* `reports:` (WP_OPT_CUSTOM in collector.yaml). *out stays NULL when the
 * section is absent. */
int rsched_conf_decode(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                       const void *arg, struct wp_conf_err *err);
void rsched_conf_free(void *field, const void *arg);
/* Finish after the whole file is read: archive dir default and paths,
 * recipients checked against notify: (an email destination name or an address).
 * node: the `reports:` node. */
struct notify_conf;
int rsched_conf_finish(struct rsched_conf *c, const struct notify_conf *n, const char *conf_path,
                       const char *state_dir, struct wp_conf_doc *doc, struct wp_conf_node *node,
                       struct wp_conf_err *err);
/* The option tables, for docs/CONFIG.md: "top", "kinds". */
const struct wp_opt *rsched_conf_opts(const char *which);
/* The effective settings of kind (defaults filled in), NULL for c NULL or an unknown kind. */
const struct rsched_kconf *rsched_conf_kind(const struct rsched_conf *c, const char *kind);
/* Names of the report kinds, NULL-terminated ("weekly", "monthly", ...). */
const char *const *rsched_kind_names(void);

/* ---- the archive (any thread; own SQLite connection per call) ---- */

struct rsched_entry {
    const char *kind, *period;
    int64_t created_ms, from_ms, to_ms;
    int64_t bytes;
    const char *files;    /* "\n"-separated file names in the period directory */
    int mailed;           /* messages queued */
    int msgs, sent, dead; /* outbox messages of this report and their states */
};

/* List the archive (newest first, at most limit). fn returns nonzero to stop. 0
 * or <0 with err. */
int rsched_list(const char *state_dir, size_t limit,
                int (*fn)(void *arg, const struct rsched_entry *e), void *arg, char *err,
                size_t errlen);
/* Is name a valid kind / period label / file name of the archive (no '/', no
 * "..", only [A-Za-z0-9._-], not starting with '.')? */
int rsched_valid_name(const char *name);

/* ---- the job (the child process) ---- */

/* `watchpost-collector --report-job KIND [--period LABEL] [--force] [--no-mail]
 * -c FILE`: generate (unless already in the archive, or --force), record and
 * queue the mail. Exit status 0, 1 (failed; the reason on stderr) or 2 (usage).
 */
int rsched_job_main(int argc, char **argv);

/* ---- the scheduler (loop thread) ---- */

struct coll_server;
struct rsched;

/* Start the scheduler of conf (s->conf->reports; nothing when NULL). */
int rsched_start(struct coll_server *s, struct rsched **out);
/* Run a due check now (every tick calls it; it does nothing when a job is
 * running or the next check is not due). */
void rsched_tick(struct rsched *r, int64_t now_ms);
/* Run kind for period now (the API); force regenerates an existing report (it
 * is not mailed again). 0, -EBUSY (a job is running), -EINVAL (unknown kind or
 * period). */
int rsched_run(struct rsched *r, const char *kind, const char *period, int force);
/* Kill a running job and close the handles (the loop frees them). NULL does
 * nothing. */
void rsched_stop(struct rsched *r);
/* Counters for the status page. */
struct rsched_stats {
    uint64_t runs, ok, failed; /* jobs started, succeeded, failed */
    int running;
};
void rsched_stats(const struct rsched *r, struct rsched_stats *out);

#endif
