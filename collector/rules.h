/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Rules: the model of a rules file (loaded by rules_conf.c) and the evaluation engine
 * (rules_eval.c) that turns samples and events into incident signals (incident.h).
 *
 * A rules file (YAML; several files may be named in collector.yaml `incidents.rules`):
 *
 *   groups:                          # host groups: globs over host names
 *     db: ["db-*", "ora*"]
 *   maintenance:
 *     - name: Sunday patching
 *       hosts: ["app-*"]             # globs, and/or
 *       groups: [db]                 #   host groups (none of both = every host)
 *       weekly: {days: [sun], from: "02:00", to: "04:00"}   # local time of the collector
 *     - name: SAN move
 *       hosts: [db-1]
 *       from: 2026-12-01T22:00:00+08:00                      # one-off, RFC 3339
 *       to: 2026-12-02T02:00:00+08:00
 *   dependencies:
 *     - parent: pbx_link_down        # while this rule fires on a host ...
 *       suppress: [line_blocked]     # ... these rules of the same host are suppressed
 *                                    # ("*" = every other rule of the host)
 *   rules:
 *     - name: disk_full              # unique over all loaded files; [a-z0-9_.-]+
 *       metric: df.used_pct          # group.field as the agent defines it (globs allowed)
 *       match:                       # label matchers, all must hold
 *         instance: {not_re: "/(boot|snap)(/.*)?"}  # eq (plain string), not, glob, not_glob,
 *         host: {glob: "db-*"}                   #   re, not_re (PCRE2, whole value)
 *       groups: [db]                 # the host must be in one of these groups
 *       when: "avg(5m) > 90"         # condition (see below)
 *       for: 5m                      # how long `when` must hold (default 0)
 *       recover: "avg(5m) < 85"      # default: `when` no longer holds
 *       recover_for: 2m              # default 0
 *       impact: high                 # high | medium | low (default medium)
 *       urgency: high                # high | medium | low (default medium)
 *       category: capacity           # free text (default "general")
 *       key: [instance]              # labels that tell problems apart (default [instance])
 *       summary: "Disk {instance} on {host} is {value}% full"
 *       description: "..."           # templates: {host} {agent} {instance} {metric} {rule}
 *       runbook: "..."               #   {value} {threshold} {label.NAME}
 *
 * Condition kinds, one per rule (exactly one of these keys):
 *   when: "FN(WINDOW) OP NUMBER" or "last OP NUMBER"   threshold on a window function;
 *         FN: last avg min max p95 rate delta count; OP: > >= < <= == !=;
 *         WINDOW: a duration (5m, 30s); `last` takes no window.
 *   nodata: 2m            the series (metric given) or the whole host (no metric) silent
 *   log: {pattern: "ORA-0?0600", count: 3, window: 10m}   N matching log lines in a window;
 *         `match` applies to the event's labels (host, source = file name)
 *   line_state: {state: blocked, for: 10m}                 a line in a state longer than D
 *   line_share: {states: [blocked, unavailable], above: 20}  share (%) of a group's lines
 *         in these states above P (group = the line's `group` label)
 *   check: {status: critical, consecutive: 3}              status warning = warning or worse
 *   forecast: {limit: 100, within: 6d, window: 1d}         least squares over `window`
 *         reaches `limit` within `within` (the metric must be given)
 *   line_mass: {states: [blocked, unavailable], share: 80, within: 60s, min_lines: 5}
 *         at least `share` % of a group's lines (and min_lines of them) entered one of
 *         `states` within `within`: one problem for the group (the PBX or the middleware),
 *         and while it fires the group's line_state and line_share problems are suppressed;
 *         it recovers when fewer than `share` % of the lines are still in those states
 */
#ifndef WP_COLLECTOR_RULES_H
#define WP_COLLECTOR_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "wp/conf.h"

struct pcre2_real_code_8;

enum rule_match_op { RULE_EQ, RULE_NE, RULE_GLOB, RULE_NGLOB, RULE_RE, RULE_NRE };

struct rule_matcher {
    char *label;
    enum rule_match_op op;
    char *value;                 /* literal, glob or regex text */
    struct pcre2_real_code_8 *re; /* RULE_RE / RULE_NRE, compiled anchored */
};

enum rule_fn { RULE_FN_LAST, RULE_FN_AVG, RULE_FN_MIN, RULE_FN_MAX, RULE_FN_P95,
               RULE_FN_RATE, RULE_FN_DELTA, RULE_FN_COUNT };
enum rule_cmp { RULE_GT, RULE_GE, RULE_LT, RULE_LE, RULE_EQC, RULE_NEC };

/* "avg(5m) > 90" */
struct rule_expr {
    enum rule_fn fn;
    int64_t window_ms; /* 0 for last */
    enum rule_cmp cmp;
    double threshold;
};

enum rule_kind { RULE_THRESHOLD, RULE_NODATA, RULE_LOG, RULE_LINE_STATE, RULE_LINE_SHARE,
                 RULE_CHECK, RULE_FORECAST, RULE_LINE_MASS };
#define RULE_KIND_LAST RULE_LINE_MASS

enum rule_level { RULE_HIGH = 1, RULE_MEDIUM = 2, RULE_LOW = 3 };

enum check_status { CHECK_OK = 0, CHECK_WARNING = 1, CHECK_CRITICAL = 2, CHECK_UNKNOWN = 3 };

struct rule {
    char *name;
    char *file; /* where it was defined, for messages */
    int line;
    enum rule_kind kind;
    char *metric; /* NULL when not given (host-wide nodata, log, line, check) */
    struct rule_matcher *match;
    size_t nmatch;
    char **groups; /* host group names (resolved against rule_set.groups) */
    size_t ngroups;

    struct rule_expr when;    /* RULE_THRESHOLD */
    struct rule_expr recover; /* RULE_THRESHOLD; has_recover = 0: !when */
    int has_recover;
    int64_t for_ms, recover_for_ms;

    int64_t nodata_ms; /* RULE_NODATA */

    char *log_pattern; /* RULE_LOG */
    struct pcre2_real_code_8 *log_re;
    int64_t log_count;
    int64_t log_window_ms;

    char **states; /* RULE_LINE_STATE (one) / RULE_LINE_SHARE, RULE_LINE_MASS (one or more) */
    size_t nstates;
    int64_t state_for_ms;
    double share_above_pct; /* RULE_LINE_SHARE: above; RULE_LINE_MASS: share (at least) */
    int64_t mass_within_ms; /* RULE_LINE_MASS */
    int64_t mass_min_lines;

    enum check_status check_status; /* RULE_CHECK */
    int64_t check_consecutive;

    double fc_limit; /* RULE_FORECAST */
    int64_t fc_within_ms;
    int64_t fc_window_ms;

    enum rule_level impact, urgency;
    char *category;
    char **key; /* labels in the fingerprint besides rule and host */
    size_t nkey;
    char *summary, *description, *runbook;
};

struct rule_group {
    char *name;
    char **hosts; /* globs */
    size_t nhosts;
};

struct rule_maint {
    char *name;
    char **hosts; /* globs */
    size_t nhosts;
    char **groups;
    size_t ngroups;
    int weekly;             /* 1: days/from/to; 0: one-off start/end */
    unsigned days;          /* bit 0 = Sunday ... bit 6 = Saturday */
    int from_min, to_min;   /* minutes after local midnight; to < from wraps midnight */
    int64_t start_ms, end_ms;
};

struct rule_dep {
    char *parent;
    char **suppress; /* rule names; a single "*" = every other rule */
    size_t nsuppress;
};

struct rule_set {
    struct rule *rules;
    size_t nrules;
    struct rule_group *groups;
    size_t ngroups;
    struct rule_maint *maint;
    size_t nmaint;
    struct rule_dep *deps;
    size_t ndeps;
};

/* Load and merge the rules files (all or nothing: on the first error, err holds
 * file:line:column and what was expected, *out is untouched). Rule names must be unique
 * over all files; groups, rule names in dependencies and groups in rules must exist. */
int rules_load(const char *const *paths, size_t npaths, struct wp_conf_err *err,
               struct rule_set **out);
/* The same from text (tests): name is used in messages. */
int rules_parse(const char *name, const char *text, size_t len, struct wp_conf_err *err,
                struct rule_set **out);
void rules_free(struct rule_set *rs);

/* Helpers shared by the loader and the engine. */
int rules_glob(const char *pattern, const char *s);                  /* fnmatch, 1 = match */
int rules_matcher_ok(const struct rule_matcher *m, const char *value); /* value NULL = "" */
int rules_host_in_group(const struct rule_set *rs, const char *group, const char *host);
/* Parse "avg(5m) > 90" (also used by `watchpost rules test`). Returns 0 or -EINVAL with
 * what was expected in why. */
int rules_parse_expr(const char *s, struct rule_expr *out, char *why, size_t whylen);
/* Is a maintenance window active for host at now_ms (local time)? Returns its name or NULL. */
const char *rules_in_maintenance(const struct rule_set *rs, const char *host, int64_t now_ms);
const char *rules_level_name(enum rule_level l);

#endif
