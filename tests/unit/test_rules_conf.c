/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for the rules loader: every kind, error positions, matchers, expressions, windows. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "rules.h"
#include "wp/conf.h"
#include "wp/err.h"
#include "wp/mem.h"

static struct rule_set *parse_ok(const char *text)
{
    struct wp_conf_err err;
    struct rule_set *rs = NULL;
    int rc = rules_parse("t.yaml", text, strlen(text), &err, &rs);

    if (rc != 0) {
        print_error("unexpected error: %s\n", err.msg);
    }
    assert_int_equal(rc, 0);
    assert_non_null(rs);
    return rs;
}

/* The error must start with want (position and message, or a prefix of the message). */
static void expect_err(const char *text, const char *want)
{
    struct wp_conf_err err;
    struct rule_set *rs = (struct rule_set *)(uintptr_t)0x1;
    int rc = rules_parse("t.yaml", text, strlen(text), &err, &rs);

    if (rc == 0 || strncmp(err.msg, want, strlen(want)) != 0) {
        print_error("want: %s\ngot:  %s\n", want, rc == 0 ? "(no error)" : err.msg);
        fail();
    }
    assert_int_equal(rc, WP_ECONFIG);
    assert_ptr_equal(rs, (struct rule_set *)(uintptr_t)0x1); /* untouched */
}

static const struct rule *find(const struct rule_set *rs, const char *name)
{
    for (size_t i = 0; i < rs->nrules; i++) {
        if (strcmp(rs->rules[i].name, name) == 0) {
            return &rs->rules[i];
        }
    }
    fail_msg("rule %s not found", name);
    return NULL;
}

/* ---- a full file ---- */

static const char full_yaml[] = "groups:\n"                    /* 1 */
                                "  db: [\"db-*\", \"ora*\"]\n" /* 2 */
                                "  pbx: pbx-1\n"               /* 3 */
                                "maintenance:\n"               /* 4 */
                                "  - name: Sunday patching\n"  /* 5 */
                                "    hosts: [\"app-*\"]\n"     /* 6 */
                                "    groups: [db]\n"           /* 7 */
                                "    weekly: {days: [sun, Saturday], from: \"22:00\", to: "
                                "\"04:00\"}\n"                          /* 8 */
                                "  - name: SAN move\n"                  /* 9 */
                                "    hosts: [db-1]\n"                   /* 10 */
                                "    from: 2026-12-01T22:00:00+08:00\n" /* 11 */
                                "    to: 2026-12-02T02:00:00Z\n"        /* 12 */
                                "dependencies:\n"                       /* 13 */
                                "  - parent: silent\n"                  /* 14 */
                                "    suppress: [\"*\"]\n"               /* 15 */
                                "  - parent: pbx_down\n"                /* 16 */
                                "    suppress: [blocked, share]\n"      /* 17 */
                                "rules:\n"                              /* 18 */
                                "  - name: disk_full\n"                 /* 19 */
                                "    metric: df.used_pct\n"
                                "    match:\n"
                                "      instance: {not_re: \"/(boot|snap)(/.*)?\"}\n"
                                "      host: {glob: \"db-*\"}\n"
                                "      fs: ext4\n"
                                "    groups: [db]\n"
                                "    when: \" avg( 5m )>=90.5 \"\n"
                                "    for: 5m\n"
                                "    recover: \"avg(5m) < 85\"\n"
                                "    recover_for: 2m\n"
                                "    impact: high\n"
                                "    urgency: LOW\n"
                                "    category: capacity\n"
                                "    key: [instance, fs]\n"
                                "    summary: \"Disk {instance} on {host} is {value}% full\"\n"
                                "    description: desc\n"
                                "    runbook: rb\n"
                                "  - name: silent\n"
                                "    nodata: 2m\n"
                                "  - name: series_silent\n"
                                "    metric: \"cpu.*\"\n"
                                "    nodata: 90s\n"
                                "  - name: ora\n"
                                "    log: {pattern: \"ORA-0?0600\", count: 3, window: 10m}\n"
                                "    match: {source: {glob: \"*alert_*.log\"}}\n"
                                "  - name: ora_ci\n"
                                "    log: {pattern: \"severe\", window: 1m, ignore_case: true}\n"
                                "  - name: blocked\n"
                                "    line_state: {state: blocked, for: 10m}\n"
                                "  - name: share\n"
                                "    line_share: {states: [blocked, unavailable], above: 12.5}\n"
                                "  - name: mass\n"
                                "    line_mass: {states: [blocked], share: 75, within: 2m}\n"
                                "  - name: mass_default\n"
                                "    line_mass: {}\n"
                                "  - name: pbx_down\n"
                                "    check: {status: critical, consecutive: 3}\n"
                                "    match: {check: {eq: pbx}}\n"
                                "  - name: warn_check\n"
                                "    check: {status: warning}\n"
                                "  - name: fc\n"
                                "    metric: df.used_pct\n"
                                "    forecast: {limit: 100, within: 6d, window: 1d}\n"
                                "    for: 1h\n"
                                "  - name: cpu.last-1\n"
                                "    metric: cpu.idle\n"
                                "    when: last != -1e3\n";

static void full_file(void **state)
{
    struct rule_set *rs = parse_ok(full_yaml);
    const struct rule *r = NULL;

    (void)state;
    assert_int_equal(rs->nrules, 13);
    assert_int_equal(rs->ngroups, 2);
    assert_string_equal(rs->groups[0].name, "db");
    assert_int_equal(rs->groups[0].nhosts, 2);
    assert_string_equal(rs->groups[0].hosts[1], "ora*");
    assert_string_equal(rs->groups[1].name, "pbx");
    assert_int_equal(rs->groups[1].nhosts, 1);
    assert_string_equal(rs->groups[1].hosts[0], "pbx-1");

    assert_int_equal(rs->nmaint, 2);
    assert_string_equal(rs->maint[0].name, "Sunday patching");
    assert_int_equal(rs->maint[0].weekly, 1);
    assert_int_equal(rs->maint[0].days, (1u << 0) | (1u << 6));
    assert_int_equal(rs->maint[0].from_min, 22 * 60);
    assert_int_equal(rs->maint[0].to_min, 4 * 60);
    assert_int_equal(rs->maint[0].nhosts, 1);
    assert_int_equal(rs->maint[0].ngroups, 1);
    assert_string_equal(rs->maint[0].groups[0], "db");
    assert_int_equal(rs->maint[1].weekly, 0);
    /* 2026-12-01T14:00:00Z = 1796133600 */
    assert_true(rs->maint[1].start_ms == INT64_C(1796133600000));
    assert_true(rs->maint[1].end_ms == INT64_C(1796133600000) + 12 * 3600 * 1000);

    assert_int_equal(rs->ndeps, 2);
    assert_string_equal(rs->deps[0].parent, "silent");
    assert_int_equal(rs->deps[0].nsuppress, 1);
    assert_string_equal(rs->deps[0].suppress[0], "*");
    assert_int_equal(rs->deps[1].nsuppress, 2);
    assert_string_equal(rs->deps[1].suppress[1], "share");

    r = find(rs, "disk_full");
    assert_int_equal(r->kind, RULE_THRESHOLD);
    assert_string_equal(r->file, "t.yaml");
    assert_int_equal(r->line, 19);
    assert_string_equal(r->metric, "df.used_pct");
    assert_int_equal(r->nmatch, 3);
    assert_string_equal(r->match[0].label, "instance");
    assert_int_equal(r->match[0].op, RULE_NRE);
    assert_non_null(r->match[0].re);
    assert_int_equal(r->match[1].op, RULE_GLOB);
    assert_string_equal(r->match[1].value, "db-*");
    assert_int_equal(r->match[2].op, RULE_EQ);
    assert_string_equal(r->match[2].value, "ext4");
    assert_int_equal(r->ngroups, 1);
    assert_string_equal(r->groups[0], "db");
    assert_int_equal(r->when.fn, RULE_FN_AVG);
    assert_true(r->when.window_ms == 300000);
    assert_int_equal(r->when.cmp, RULE_GE);
    assert_true(r->when.threshold == 90.5);
    assert_true(r->for_ms == 300000);
    assert_int_equal(r->has_recover, 1);
    assert_int_equal(r->recover.cmp, RULE_LT);
    assert_true(r->recover.threshold == 85);
    assert_true(r->recover_for_ms == 120000);
    assert_int_equal(r->impact, RULE_HIGH);
    assert_int_equal(r->urgency, RULE_LOW);
    assert_string_equal(r->category, "capacity");
    assert_int_equal(r->nkey, 2);
    assert_string_equal(r->key[1], "fs");
    assert_string_equal(r->summary, "Disk {instance} on {host} is {value}% full");
    assert_string_equal(r->description, "desc");
    assert_string_equal(r->runbook, "rb");

    r = find(rs, "silent");
    assert_int_equal(r->kind, RULE_NODATA);
    assert_null(r->metric);
    assert_true(r->nodata_ms == 120000);
    /* defaults */
    assert_int_equal(r->impact, RULE_MEDIUM);
    assert_int_equal(r->urgency, RULE_MEDIUM);
    assert_string_equal(r->category, "general");
    assert_int_equal(r->nkey, 1);
    assert_string_equal(r->key[0], "instance");
    assert_string_equal(r->summary, "{rule} on {host}");
    assert_null(r->description);
    assert_null(r->runbook);
    assert_int_equal(r->has_recover, 0);
    assert_int_equal(r->nmatch, 0);

    r = find(rs, "series_silent");
    assert_string_equal(r->metric, "cpu.*");
    assert_true(r->nodata_ms == 90000);

    r = find(rs, "ora");
    assert_int_equal(r->kind, RULE_LOG);
    assert_string_equal(r->log_pattern, "ORA-0?0600");
    assert_non_null(r->log_re);
    assert_true(r->log_count == 3);
    assert_true(r->log_window_ms == 600000);
    assert_int_equal(r->nmatch, 1);
    assert_string_equal(r->match[0].label, "source");

    r = find(rs, "ora_ci");
    assert_true(r->log_count == 1);
    assert_true(r->log_window_ms == 60000);

    r = find(rs, "blocked");
    assert_int_equal(r->kind, RULE_LINE_STATE);
    assert_int_equal(r->nstates, 1);
    assert_string_equal(r->states[0], "blocked");
    assert_true(r->state_for_ms == 600000);

    r = find(rs, "share");
    assert_int_equal(r->kind, RULE_LINE_SHARE);
    assert_int_equal(r->nstates, 2);
    assert_string_equal(r->states[1], "unavailable");
    assert_true(r->share_above_pct == 12.5);

    r = find(rs, "mass");
    assert_int_equal(r->kind, RULE_LINE_MASS);
    assert_int_equal(r->nstates, 1);
    assert_true(r->share_above_pct == 75);
    assert_true(r->mass_within_ms == 120000);
    assert_true(r->mass_min_lines == 5);
    r = find(rs, "mass_default");
    assert_int_equal(r->nstates, 3);
    assert_string_equal(r->states[2], "out_of_service");
    assert_true(r->share_above_pct == 80);
    assert_true(r->mass_within_ms == 60000);

    r = find(rs, "pbx_down");
    assert_int_equal(r->kind, RULE_CHECK);
    assert_int_equal(r->check_status, CHECK_CRITICAL);
    assert_true(r->check_consecutive == 3);
    assert_int_equal(r->match[0].op, RULE_EQ);

    r = find(rs, "warn_check");
    assert_int_equal(r->check_status, CHECK_WARNING);
    assert_true(r->check_consecutive == 1);

    r = find(rs, "fc");
    assert_int_equal(r->kind, RULE_FORECAST);
    assert_true(r->fc_limit == 100);
    assert_true(r->fc_within_ms == 6 * 86400000LL);
    assert_true(r->fc_window_ms == 86400000LL);
    assert_true(r->for_ms == 3600000);

    r = find(rs, "cpu.last-1");
    assert_int_equal(r->when.fn, RULE_FN_LAST);
    assert_true(r->when.window_ms == 0);
    assert_int_equal(r->when.cmp, RULE_NEC);
    assert_true(r->when.threshold == -1000);

    assert_true(rules_host_in_group(rs, "db", "ora7"));
    assert_true(rules_host_in_group(rs, "pbx", "pbx-1"));
    assert_false(rules_host_in_group(rs, "pbx", "pbx-2"));
    assert_false(rules_host_in_group(rs, "nope", "db-1"));
    rules_free(rs);
}

static void empty_files(void **state)
{
    struct rule_set *rs = NULL;

    (void)state;
    rs = parse_ok("");
    assert_int_equal(rs->nrules, 0);
    rules_free(rs);
    rs = parse_ok("# nothing yet\nrules:\n");
    assert_int_equal(rs->nrules, 0);
    rules_free(rs);
    rules_free(NULL);
}

/* ---- errors, with their positions ---- */

static void err_expressions(void **state)
{
    (void)state;
    expect_err("rules:\n"
               "  - name: a\n"
               "    metric: m\n"
               "    when: \"avgg(5m) > 1\"\n",
               "t.yaml:4:11: when: unknown function \"avgg\" (expected last, "
               "avg, min, max, p95, "
               "rate, delta or count)");
    expect_err("rules:\n"
               "  - name: a\n"
               "    metric: m\n"
               "    when: avg(5m) > 1\n"
               "    recover: avg(5m) = 1\n",
               "t.yaml:5:14: recover: expected an operator (>, >=, <, <=, == or "
               "!=) at character "
               "9, got \"=\"");
    expect_err("rules:\n"
               "  - name: a\n"
               "    metric: m\n"
               "    when: [1]\n",
               "t.yaml:4:11: when: expected a string");
}

static void err_regex(void **state)
{
    (void)state;
    expect_err("rules:\n"
               "  - name: a\n"
               "    metric: m\n"
               "    when: last > 1\n"
               "    match:\n"
               "      instance: {re: \"(\"}\n",
               "t.yaml:6:22: match.instance.re: regex \"(\" does not compile: "
               "missing closing "
               "parenthesis at offset 1");
    expect_err("rules:\n"
               "  - name: a\n"
               "    log: {pattern: \"a[\", window: 1m}\n",
               "t.yaml:3:20: log.pattern: regex \"a[\" does not compile: missing "
               "terminating ] "
               "for character class at offset 2");
    expect_err("rules:\n"
               "  - name: a\n"
               "    metric: m\n"
               "    when: last > 1\n"
               "    match:\n"
               "      instance: {regex: \"x\"}\n",
               "t.yaml:6:18: match.instance: unknown operator \"regex\" "
               "(expected eq, not, glob, "
               "not_glob, re or not_re)");
    expect_err("rules:\n"
               "  - name: a\n"
               "    metric: m\n"
               "    when: last > 1\n"
               "    match:\n"
               "      instance: {glob: \"x\", re: \"y\"}\n",
               "t.yaml:6:17: match.instance: expected a value or one operator");
}

static void err_levels_and_keys(void **state)
{
    (void)state;
    expect_err("rules:\n"
               "  - name: a\n"
               "    nodata: 1m\n"
               "    impact: hgih\n",
               "t.yaml:4:13: impact: expected high, medium or low, got \"hgih\"");
    expect_err("rules:\n"
               "  - name: a\n"
               "    nodata: 1m\n"
               "    urgency: 1\n",
               "t.yaml:4:14: urgency: expected high, medium or low, got \"1\"");
    expect_err("rules:\n"
               "  - name: a\n"
               "    nodata: 1m\n"
               "    runbok: x\n",
               "t.yaml:4:5: unknown key \"runbok\" (expected one of: name, "
               "metric, match, groups, "
               "when, for, recover,");
    /* the first error in the file wins, whatever the kind of key */
    expect_err("rules:\n"
               "  - name: a\n"
               "    metric: m\n"
               "    when: avg(5m) >> 1\n"
               "    impact: hgih\n"
               "    log: {pattern: \"(\", window: 1m}\n",
               "t.yaml:4:11: when: expected a number at character 10, got \">\"");
    expect_err("rules:\n"
               "  - name: a\n"
               "    metric: m\n"
               "    forecast: {limit: 1, within: 1}\n"
               "    line_state: {state: x, for: 1m, oops: 1}\n"
               "    impact: hgih\n",
               "t.yaml:5:37: line_state: unknown key \"oops\"");
    expect_err("rule:\n  - name: a\n",
               "t.yaml:1:1: unknown key \"rule\" (expected one of: groups, maintenance, "
               "dependencies, rules)");
    expect_err("rules:\n"
               "  - name: a\n"
               "    log: {pattern: x, window: 1m, cnt: 2}\n",
               "t.yaml:3:35: log: unknown key \"cnt\" (expected one of: pattern, "
               "count, window, "
               "ignore_case)");
    expect_err("rules:\n"
               "  - name: Disk Full\n"
               "    nodata: 1m\n",
               "t.yaml:2:11: name: \"Disk Full\" is not a valid rule name");
    expect_err("rules:\n"
               "  - nodata: 1m\n",
               "t.yaml:2:5: name: required key is missing");
    expect_err("rules: {a: 1}\n", "t.yaml:1:8: rules: expected a list like");
    expect_err("rules:\n  - just a string\n", "t.yaml:2:5: rules[0]: expected a rule");
}

static void err_duplicates(void **state)
{
    (void)state;
    expect_err("rules:\n"
               "  - name: disk_full\n"
               "    nodata: 1m\n"
               "  - name: other\n"
               "    nodata: 1m\n"
               "  - name: disk_full\n"
               "    nodata: 2m\n",
               "t.yaml:6:11: rule \"disk_full\" is defined twice (first at t.yaml:2:5)");
    expect_err("rules:\n"
               "  - name: a\n"
               "    nodata: 1m\n"
               "    nodata: 2m\n",
               "t.yaml:4:5: rules[0].nodata: duplicate key (first defined at line 3)");
}

static void err_conditions(void **state)
{
    (void)state;
    expect_err("rules:\n"
               "  - name: a\n"
               "    metric: m\n",
               "t.yaml:2:5: rule \"a\" has no condition (expected one of when, "
               "nodata, log, "
               "line_state, line_share, check, forecast or line_mass)");
    expect_err("rules:\n"
               "  - name: a\n"
               "    metric: m\n"
               "    nodata: 5m\n"
               "    when: last > 1\n",
               "t.yaml:5:11: when: rule \"a\" already has a condition (nodata); "
               "expected exactly "
               "one of");
    expect_err("rules:\n"
               "  - name: a\n"
               "    metric: m\n"
               "    when: avg(5m) > 1\n"
               "    for: soon\n",
               "t.yaml:5:10: for: expected a duration like 10s, got \"soon\"");
    expect_err("rules:\n"
               "  - name: a\n"
               "    when: avg(5m) > 1\n",
               "t.yaml:2:5: rule \"a\": when: needs a metric");
    expect_err("rules:\n"
               "  - name: a\n"
               "    forecast: {limit: 100, within: 6d}\n",
               "t.yaml:2:5: rule \"a\": forecast: needs a metric");
    expect_err("rules:\n"
               "  - name: a\n"
               "    nodata: 1m\n"
               "    for: 5m\n",
               "t.yaml:4:10: for: only with when: or forecast:");
    expect_err("rules:\n"
               "  - name: a\n"
               "    check: {status: critical}\n"
               "    recover: last < 1\n",
               "t.yaml:4:14: recover: only with when:");
    expect_err("rules:\n"
               "  - name: a\n"
               "    metric: m\n"
               "    line_state: {state: blocked, for: 1m}\n",
               "t.yaml:3:13: metric: not used by line_state rules");
    expect_err("rules:\n"
               "  - name: a\n"
               "    nodata: 0\n",
               "t.yaml:3:13: nodata: must be at least 1s, got 0");
}

static void err_kinds(void **state)
{
    (void)state;
    expect_err("rules:\n"
               "  - name: a\n"
               "    log: {pattern: x}\n",
               "t.yaml:3:10: log.window: required key is missing");
    expect_err("rules:\n"
               "  - name: a\n"
               "    log: {pattern: x, count: 0, window: 1m}\n",
               "t.yaml:3:30: log.count: must be between 1 and 1000000, got 0");
    expect_err("rules:\n"
               "  - name: a\n"
               "    log: {count: 2, window: 1m}\n",
               "t.yaml:3:10: log.pattern: required key is missing");
    expect_err("rules:\n"
               "  - name: a\n"
               "    line_state: {state: blocked}\n",
               "t.yaml:3:17: line_state.for: required key is missing");
    expect_err("rules:\n"
               "  - name: a\n"
               "    line_state: {for: 10m}\n",
               "t.yaml:3:17: line_state.state: required key is missing");
    expect_err("rules:\n"
               "  - name: a\n"
               "    line_share: {states: [blocked], above: 120}\n",
               "t.yaml:3:44: line_share.above: expected a percentage above 0 and "
               "at most 100, "
               "got 120");
    expect_err("rules:\n"
               "  - name: a\n"
               "    line_share: {states: [blocked], above: 0}\n",
               "t.yaml:3:44: line_share.above: expected a percentage above 0");
    expect_err("rules:\n"
               "  - name: a\n"
               "    line_share: {states: [], above: 5}\n",
               "t.yaml:3:26: line_share.states: expected at least one line state");
    expect_err("rules:\n"
               "  - name: a\n"
               "    check: {status: ok}\n",
               "t.yaml:3:21: check.status: expected one of: warning, critical; "
               "got \"ok\"");
    expect_err("rules:\n"
               "  - name: a\n"
               "    check: {consecutive: 2}\n",
               "t.yaml:3:12: check.status: required key is missing");
    expect_err("rules:\n"
               "  - name: a\n"
               "    check: {status: warning, consecutive: 0}\n",
               "t.yaml:3:43: check.consecutive: must be between 1 and 1000000, got 0");
    expect_err("rules:\n"
               "  - name: a\n"
               "    metric: m\n"
               "    forecast: {limit: lots, within: 6d}\n",
               "t.yaml:4:23: forecast.limit: expected a number, got \"lots\"");
}

static void err_references(void **state)
{
    (void)state;
    expect_err("groups: {db: [\"db-*\"]}\n"
               "rules:\n"
               "  - name: a\n"
               "    nodata: 1m\n"
               "    groups: [db, web]\n",
               "t.yaml:5:18: groups: unknown host group \"web\" (define it under "
               "groups:)");
    expect_err("groups: {db: [\"db-*\"]}\n"
               "dependencies:\n"
               "  - parent: a\n"
               "    suppress: [b]\n"
               "rules:\n"
               "  - name: a\n"
               "    nodata: 1m\n",
               "t.yaml:4:16: suppress: unknown rule \"b\"");
    expect_err("dependencies:\n"
               "  - parent: nope\n"
               "    suppress: \"*\"\n",
               "t.yaml:2:13: parent: unknown rule \"nope\"");
    expect_err("dependencies:\n"
               "  - parent: a\n"
               "    suppress: [\"*\", a]\n"
               "rules:\n"
               "  - name: a\n"
               "    nodata: 1m\n",
               "t.yaml:3:16: suppress: \"*\" (every other rule) must be the only entry");
    expect_err("maintenance:\n"
               "  - name: m\n"
               "    groups: [db]\n"
               "    weekly: {days: [sun], from: \"01:00\", to: \"02:00\"}\n",
               "t.yaml:3:14: groups: unknown host group \"db\"");
    expect_err("groups:\n"
               "  db: []\n",
               "t.yaml:2:7: groups.db: expected at least one host glob");
}

static void err_maintenance(void **state)
{
    (void)state;
    expect_err("maintenance:\n"
               "  - name: m\n"
               "    weekly: {days: [sun, sonday], from: \"01:00\", to: \"02:00\"}\n",
               "t.yaml:3:26: weekly.days: unknown day \"sonday\" (expected sun, mon, "
               "tue, wed, "
               "thu, fri or sat)");
    expect_err("maintenance:\n"
               "  - name: m\n"
               "    weekly: {days: [sun], from: \"25:00\", to: \"02:00\"}\n",
               "t.yaml:3:33: weekly.from: expected a time like 02:00 (00:00 to "
               "23:59), got "
               "\"25:00\"");
    expect_err("maintenance:\n"
               "  - name: m\n"
               "    weekly: {days: [sun], from: \"01:00\", to: \"2pm\"}\n",
               "t.yaml:3:46: weekly.to: expected a time like 04:00");
    expect_err("maintenance:\n"
               "  - name: m\n"
               "    weekly: {days: [sun], from: \"01:00\", to: \"01:00\"}\n",
               "t.yaml:3:46: weekly.to: same time as from");
    expect_err("maintenance:\n"
               "  - name: m\n"
               "    weekly: {days: [sun], from: \"01:00\"}\n",
               "t.yaml:3:13: weekly.to: required key is missing");
    expect_err("maintenance:\n"
               "  - name: m\n"
               "    from: 2026-12-02T02:00:00+08:00\n"
               "    to: 2026-12-01T22:00:00+08:00\n",
               "t.yaml:4:9: to: must be later than from (2026-12-02T02:00:00+08:00)");
    expect_err("maintenance:\n"
               "  - name: m\n"
               "    from: 2026-12-01T22:00:00+08:00\n"
               "    to: 2026-12-01T22:00:00+08:00\n",
               "t.yaml:4:9: to: must be later than from");
    expect_err("maintenance:\n"
               "  - name: m\n"
               "    from: 2026-02-30T22:00:00Z\n"
               "    to: 2026-12-01T22:00:00Z\n",
               "t.yaml:3:11: from: expected an RFC 3339 time like "
               "2026-12-01T22:00:00+08:00, "
               "got \"2026-02-30T22:00:00Z\"");
    expect_err("maintenance:\n"
               "  - name: m\n"
               "    from: 2026-12-01T22:00:00\n"
               "    to: 2026-12-01T23:00:00Z\n",
               "t.yaml:3:11: from: expected an RFC 3339 time");
    expect_err("maintenance:\n"
               "  - name: m\n"
               "    hosts: []\n"
               "    weekly: {days: [sun], from: \"01:00\", to: \"02:00\"}\n",
               "t.yaml:3:12: hosts: expected at least one host glob");
    expect_err("maintenance:\n"
               "  - name: m\n"
               "    hosts: [x]\n",
               "t.yaml:2:5: maintenance \"m\": expected weekly: {days, from, to} "
               "or one-off from: "
               "and to: times");
    expect_err("maintenance:\n"
               "  - name: m\n"
               "    weekly: {days: [sun], from: \"01:00\", to: \"02:00\"}\n"
               "    to: 2026-12-01T23:00:00Z\n",
               "t.yaml:4:9: to: a one-off time next to weekly:");
}

static void err_yaml_syntax(void **state)
{
    (void)state;
    expect_err("rules:\n  - name: a\n   nodata: [1m\n", "t.yaml:");
}

/* ---- matchers and globs ---- */

static void globs(void **state)
{
    (void)state;
    assert_true(rules_glob("/u*", "/u01/data"));
    assert_true(rules_glob("db-*", "db-1"));
    assert_true(rules_glob("db-?", "db-1"));
    assert_true(rules_glob("*", ""));
    assert_true(rules_glob("", NULL));
    assert_false(rules_glob("db-*", "app-1"));
    assert_false(rules_glob("db-[0-3]", "db-7"));
    assert_true(rules_glob("*alert_*.log", "/u01/app/oracle/diag/rdbms/orcl/trace/alert_orcl.log"));
}

static void matchers(void **state)
{
    struct rule_set *rs = parse_ok("rules:\n"
                                   "  - name: a\n"
                                   "    nodata: 1m\n"
                                   "    match:\n"
                                   "      a: x\n"
                                   "      b: {eq: x}\n"
                                   "      c: {not: x}\n"
                                   "      d: {glob: \"x*\"}\n"
                                   "      e: {not_glob: \"x*\"}\n"
                                   "      f: {re: \"a|ab\"}\n"
                                   "      g: {not_re: \"/(boot|snap)(/.*)?\"}\n"
                                   "      h: {re: \"é.\"}\n"
                                   "      i: {re: \"\"}\n");
    const struct rule *r = &rs->rules[0];

    (void)state;
    assert_int_equal(r->nmatch, 9);
    assert_int_equal(r->match[0].op, RULE_EQ);
    assert_true(rules_matcher_ok(&r->match[0], "x"));
    assert_false(rules_matcher_ok(&r->match[0], "xy"));
    assert_false(rules_matcher_ok(&r->match[0], NULL));
    assert_int_equal(r->match[1].op, RULE_EQ);
    assert_true(rules_matcher_ok(&r->match[1], "x"));
    assert_int_equal(r->match[2].op, RULE_NE);
    assert_false(rules_matcher_ok(&r->match[2], "x"));
    assert_true(rules_matcher_ok(&r->match[2], "y"));
    assert_true(rules_matcher_ok(&r->match[2], NULL));
    assert_int_equal(r->match[3].op, RULE_GLOB);
    assert_true(rules_matcher_ok(&r->match[3], "x/y"));
    assert_false(rules_matcher_ok(&r->match[3], "yx"));
    assert_int_equal(r->match[4].op, RULE_NGLOB);
    assert_false(rules_matcher_ok(&r->match[4], "xx"));
    assert_true(rules_matcher_ok(&r->match[4], "yx"));
    assert_true(rules_matcher_ok(&r->match[4], NULL));
    /* anchored at both ends; the end anchor backtracks into the longer branch */
    assert_int_equal(r->match[5].op, RULE_RE);
    assert_true(rules_matcher_ok(&r->match[5], "a"));
    assert_true(rules_matcher_ok(&r->match[5], "ab"));
    assert_false(rules_matcher_ok(&r->match[5], "abc"));
    assert_false(rules_matcher_ok(&r->match[5], "xab"));
    assert_false(rules_matcher_ok(&r->match[5], NULL));
    assert_int_equal(r->match[6].op, RULE_NRE);
    assert_false(rules_matcher_ok(&r->match[6], "/boot"));
    assert_false(rules_matcher_ok(&r->match[6], "/boot/efi"));
    assert_true(rules_matcher_ok(&r->match[6], "/"));
    assert_true(rules_matcher_ok(&r->match[6], "/u01/boot"));
    assert_true(rules_matcher_ok(&r->match[6], "/bootx"));
    /* UTF-8: "." is one character; invalid UTF-8 in a value does not match, no error */
    assert_true(rules_matcher_ok(&r->match[7], "éü"));
    assert_false(rules_matcher_ok(&r->match[7], "é\xff"));
    assert_false(rules_matcher_ok(&r->match[7], "\xff\xfe"));
    assert_true(rules_matcher_ok(&r->match[8], ""));
    assert_true(rules_matcher_ok(&r->match[8], NULL));
    assert_false(rules_matcher_ok(&r->match[8], "x"));
    rules_free(rs);
}

static int log_matches(const struct rule *r, const char *line)
{
    pcre2_match_data_8 *md = pcre2_match_data_create_from_pattern_8(r->log_re, NULL);
    int rc = pcre2_match_8(r->log_re, (const unsigned char *)line, strlen(line), 0, 0, md, NULL);

    pcre2_match_data_free_8(md);
    return rc >= 0;
}

static void log_patterns(void **state)
{
    struct rule_set *rs =
        parse_ok("rules:\n"
                 "  - name: a\n"
                 "    log: {pattern: \"ORA-0?0600\", window: 1m}\n"
                 "  - name: b\n"
                 "    log: {pattern: \"severe\", window: 1m, ignore_case: yes}\n");

    (void)state;
    /* a search, not anchored; case-sensitive by default */
    assert_true(log_matches(&rs->rules[0], "Errors in file x.trc: ORA-00600: internal error"));
    assert_false(log_matches(&rs->rules[0], "ora-00600"));
    assert_true(log_matches(&rs->rules[1], "06-Jan-2026 SEVERE [main] x"));
    assert_true(log_matches(&rs->rules[1], "bad byte \xff then Severe"));
    rules_free(rs);
}

/* ---- expressions ---- */

static void expr_good(void **state)
{
    struct rule_expr e;
    char why[256];

    (void)state;
    assert_int_equal(rules_parse_expr("avg(5m) > 90", &e, why, sizeof(why)), 0);
    assert_int_equal(e.fn, RULE_FN_AVG);
    assert_true(e.window_ms == 300000);
    assert_int_equal(e.cmp, RULE_GT);
    assert_true(e.threshold == 90);
    assert_int_equal(rules_parse_expr("  p95 ( 30s )<=0.25  ", &e, why, sizeof(why)), 0);
    assert_int_equal(e.fn, RULE_FN_P95);
    assert_true(e.window_ms == 30000);
    assert_int_equal(e.cmp, RULE_LE);
    assert_true(e.threshold == 0.25);
    assert_int_equal(rules_parse_expr("last<-3", &e, why, sizeof(why)), 0);
    assert_int_equal(e.fn, RULE_FN_LAST);
    assert_true(e.window_ms == 0);
    assert_int_equal(e.cmp, RULE_LT);
    assert_true(e.threshold == -3);
    assert_int_equal(rules_parse_expr("rate(1h30m) == 1e6", &e, why, sizeof(why)), 0);
    assert_int_equal(e.fn, RULE_FN_RATE);
    assert_true(e.window_ms == 5400000);
    assert_int_equal(e.cmp, RULE_EQC);
    assert_true(e.threshold == 1e6);
    assert_int_equal(rules_parse_expr("delta(10m)>=+.5", &e, why, sizeof(why)), 0);
    assert_int_equal(e.cmp, RULE_GE);
    assert_true(e.threshold == 0.5);
    assert_int_equal(rules_parse_expr("min(1m) != 0", &e, why, sizeof(why)), 0);
    assert_int_equal(e.fn, RULE_FN_MIN);
    assert_int_equal(e.cmp, RULE_NEC);
    assert_int_equal(rules_parse_expr("max(90) > 1", &e, NULL, 0), 0);
    assert_true(e.window_ms == 90000); /* a bare number is seconds, as everywhere */
    assert_int_equal(rules_parse_expr("count(5m) >= 3", &e, why, sizeof(why)), 0);
    assert_int_equal(e.fn, RULE_FN_COUNT);
}

static void expect_expr_err(const char *s, const char *want)
{
    struct rule_expr e = {RULE_FN_MAX, 42, RULE_NEC, 7};
    char why[256];

    why[0] = '\0';
    assert_true(rules_parse_expr(s, &e, why, sizeof(why)) < 0);
    if (strcmp(why, want) != 0) {
        print_error("expr: %s\nwant: %s\ngot:  %s\n", s, want, why);
        fail();
    }
    assert_int_equal(e.fn, RULE_FN_MAX); /* untouched */
    assert_true(e.window_ms == 42);
}

static void expr_bad(void **state)
{
    (void)state;
    expect_expr_err("", "empty condition (expected something like avg(5m) > 90)");
    expect_expr_err("   ", "empty condition (expected something like avg(5m) > 90)");
    expect_expr_err("avgg(5m) > 1", "unknown function \"avgg\" (expected last, "
                                    "avg, min, max, p95, rate, delta or "
                                    "count)");
    expect_expr_err("> 1", "expected a function (last, avg, min, max, p95, rate, delta or count) "
                           "at character 1, got \">\"");
    expect_expr_err("avg > 1", "expected \"(\" and a window after \"avg\" at character 5, like "
                               "avg(5m), got \">\"");
    expect_expr_err("avg() > 1", "expected a window like 5m at character 5, got \")\"");
    expect_expr_err("avg(5x) > 1", "bad window \"5x\" at character 5 (expected a "
                                   "duration like 30s, 5m or 1h)");
    expect_expr_err("avg(0s) > 1", "window at character 5 must be longer than 0");
    expect_expr_err("avg(5m > 1", "expected \")\" after the window at character 8, got \">\"");
    expect_expr_err("avg(5m) 1", "expected an operator (>, >=, <, <=, == or !=) at character 9, "
                                 "got \"1\"");
    expect_expr_err("avg(5m) =< 1", "expected an operator (>, >=, <, <=, == or !=) at character 9, "
                                    "got \"=<\"");
    expect_expr_err("avg(5m) >", "expected a number at character 10, got the end");
    expect_expr_err("avg(5m) > x", "expected a number at character 11, got \"x\"");
    expect_expr_err("avg(5m) > nan", "expected a number at character 11, got \"nan\"");
    expect_expr_err("avg(5m) > 0x10", "unexpected \"x10\" at character 12 after the number "
                                      "(expected the end)");
    expect_expr_err("avg(5m) > 90 for 5m", "unexpected \"for\" at character 14 after the number "
                                           "(expected the end)");
    expect_expr_err("avg(5m) > 1e999", "number at character 11 is out of range");
    expect_expr_err("last(5m) > 1",
                    "\"last\" takes no window at character 5 (write \"last > 90\")");
    expect_expr_err("AVG(5m) > 1", "unknown function \"AVG\" (expected last, avg, min, max, p95, "
                                   "rate, delta or count)");
    /* why may be absent */
    struct rule_expr e;
    assert_true(rules_parse_expr("x", &e, NULL, 0) < 0);
    assert_true(rules_parse_expr(NULL, &e, NULL, 0) < 0);
}

/* ---- maintenance windows ---- */

/* Unix ms of a UTC wall-clock time (TZ=UTC in these tests). */
static int64_t utc_ms(int y, int mo, int d, int h, int mi)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    return (int64_t)timegm(&tm) * 1000;
}

static void maintenance_windows(void **state)
{
    struct rule_set *rs = NULL;

    (void)state;
    setenv("TZ", "UTC", 1);
    tzset();
    rs = parse_ok("groups:\n"
                  "  db: [\"db-*\"]\n"
                  "maintenance:\n"
                  "  - name: sunday\n"
                  "    hosts: [\"app-*\"]\n"
                  "    weekly: {days: [sun], from: \"02:00\", to: \"04:00\"}\n"
                  "  - name: nightly\n"
                  "    groups: [db]\n"
                  "    weekly: {days: [fri], from: \"22:00\", to: \"02:00\"}\n"
                  "  - name: everyone\n"
                  "    weekly: {days: [wed], from: \"12:00\", to: \"24:00\"}\n"
                  "  - name: all_monday\n"
                  "    hosts: [\"mon-*\"]\n"
                  "    weekly: {days: [mon], from: \"00:00\", to: \"24:00\"}\n"
                  "  - name: san\n"
                  "    hosts: [\"ora1\"]\n"
                  "    from: 2026-12-01T22:00:00+08:00\n"
                  "    to: 2026-12-02T02:00:00+08:00\n");
    /* 2026-03-01 is a Sunday, 2026-03-06 a Friday, 2026-03-04 a Wednesday */
    assert_string_equal(rules_in_maintenance(rs, "app-1", utc_ms(2026, 3, 1, 2, 0)), "sunday");
    assert_string_equal(rules_in_maintenance(rs, "app-1", utc_ms(2026, 3, 1, 3, 59)), "sunday");
    assert_null(rules_in_maintenance(rs, "app-1", utc_ms(2026, 3, 1, 4, 0)));
    assert_null(rules_in_maintenance(rs, "app-1", utc_ms(2026, 3, 1, 1, 59)));
    assert_null(rules_in_maintenance(rs, "app-1", utc_ms(2026, 3, 2, 3, 0))); /* Monday */
    assert_null(rules_in_maintenance(rs, "db-1", utc_ms(2026, 3, 1, 3, 0)));
    assert_null(rules_in_maintenance(rs, NULL, utc_ms(2026, 3, 1, 3, 0)));
    /* wraps midnight: Friday 22:00 to Saturday 02:00, by group */
    assert_null(rules_in_maintenance(rs, "db-1", utc_ms(2026, 3, 6, 21, 59)));
    assert_string_equal(rules_in_maintenance(rs, "db-1", utc_ms(2026, 3, 6, 22, 0)), "nightly");
    assert_string_equal(rules_in_maintenance(rs, "db-1", utc_ms(2026, 3, 6, 23, 59)), "nightly");
    assert_string_equal(rules_in_maintenance(rs, "db-1", utc_ms(2026, 3, 7, 0, 0)), "nightly");
    assert_string_equal(rules_in_maintenance(rs, "db-1", utc_ms(2026, 3, 7, 1, 59)), "nightly");
    assert_null(rules_in_maintenance(rs, "db-1", utc_ms(2026, 3, 7, 2, 0)));
    assert_null(rules_in_maintenance(rs, "db-1", utc_ms(2026, 3, 7, 22, 30))); /* Saturday */
    assert_null(rules_in_maintenance(rs, "db-1", utc_ms(2026, 3, 6, 1, 0)));   /* Fri morning */
    assert_null(rules_in_maintenance(rs, "app-1", utc_ms(2026, 3, 6, 23, 0)));
    /* no hosts and no groups: every host; to 24:00 runs to midnight */
    assert_string_equal(rules_in_maintenance(rs, "anything", utc_ms(2026, 3, 4, 23, 59)),
                        "everyone");
    assert_null(rules_in_maintenance(rs, "anything", utc_ms(2026, 3, 5, 0, 0)));
    assert_null(rules_in_maintenance(rs, "anything", utc_ms(2026, 3, 4, 11, 59)));
    /* a whole day */
    assert_null(rules_in_maintenance(rs, "mon-1", utc_ms(2026, 3, 1, 23, 59)));
    assert_string_equal(rules_in_maintenance(rs, "mon-1", utc_ms(2026, 3, 2, 0, 0)), "all_monday");
    assert_string_equal(rules_in_maintenance(rs, "mon-1", utc_ms(2026, 3, 2, 23, 59)),
                        "all_monday");
    assert_null(rules_in_maintenance(rs, "mon-1", utc_ms(2026, 3, 3, 0, 0)));
    /* one-off, absolute: 14:00Z to 18:00Z on 2026-12-01 */
    assert_null(rules_in_maintenance(rs, "ora1", utc_ms(2026, 12, 1, 13, 59)));
    assert_string_equal(rules_in_maintenance(rs, "ora1", utc_ms(2026, 12, 1, 14, 0)), "san");
    assert_string_equal(rules_in_maintenance(rs, "ora1", utc_ms(2026, 12, 1, 17, 59)), "san");
    assert_null(rules_in_maintenance(rs, "ora1", utc_ms(2026, 12, 1, 18, 0)));
    assert_null(rules_in_maintenance(rs, "ora2", utc_ms(2026, 12, 1, 15, 0)));
    rules_free(rs);

    /* the same weekly window in another zone is another instant */
    setenv("TZ", "Asia/Shanghai", 1);
    tzset();
    rs = parse_ok("maintenance:\n"
                  "  - name: sunday\n"
                  "    weekly: {days: [sun], from: \"02:00\", to: \"04:00\"}\n");
    if (strcmp(tzname[0], "CST") == 0) { /* zone data installed */
        assert_null(rules_in_maintenance(rs, "h", utc_ms(2026, 3, 1, 2, 0)));
        assert_string_equal(rules_in_maintenance(rs, "h", utc_ms(2026, 2, 28, 18, 30)), "sunday");
    }
    rules_free(rs);
    setenv("TZ", "UTC", 1);
    tzset();
}

static void level_names(void **state)
{
    (void)state;
    assert_string_equal(rules_level_name(RULE_HIGH), "high");
    assert_string_equal(rules_level_name(RULE_MEDIUM), "medium");
    assert_string_equal(rules_level_name(RULE_LOW), "low");
    assert_string_equal(rules_level_name((enum rule_level)9), "unknown");
}

/* ---- files ---- */

static char tmpdir[PATH_MAX];

static char *write_file(const char *name, const char *text)
{
    char *path = wp_xasprintf("%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static int files_setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/wp-rules-XXXXXX");
    return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

static int files_teardown(void **state)
{
    char *cmd = wp_xasprintf("rm -rf '%s'", tmpdir);
    int rc = system(cmd);

    (void)state;
    free(cmd);
    return rc == 0 ? 0 : -1;
}

static void default_file_loads(void **state)
{
    const char *fx = getenv("WP_FIXTURES");
    char *path = NULL;
    struct wp_conf_err err;
    struct rule_set *rs = NULL;
    int rc = 0;

    (void)state;
    assert_non_null(fx);
    path = wp_xasprintf("%s/../../packaging/etc/rules.d/default.yaml", fx);
    const char *paths[] = {path};
    rc = rules_load(paths, 1, &err, &rs);
    if (rc != 0) {
        print_error("%s\n", err.msg);
    }
    assert_int_equal(rc, 0);
    assert_true(rs->nrules >= 18);
    /* every kind is used, and every rule says what to do */
    int kinds[RULE_KIND_LAST + 1] = {0};
    for (size_t i = 0; i < rs->nrules; i++) {
        kinds[rs->rules[i].kind]++;
        assert_non_null(rs->rules[i].runbook);
        assert_non_null(rs->rules[i].description);
        assert_non_null(rs->rules[i].summary);
    }
    for (int k = 0; k <= RULE_KIND_LAST; k++) {
        assert_true(kinds[k] > 0);
    }
    const struct rule *r = find(rs, "disk_space_low");
    assert_true(r->when.threshold == 85);
    assert_true(r->for_ms == 600000);
    assert_int_equal(r->impact, RULE_MEDIUM);
    r = find(rs, "disk_space_critical");
    assert_true(r->when.threshold == 95);
    assert_int_equal(r->impact, RULE_HIGH);
    r = find(rs, "host_silent");
    assert_int_equal(r->kind, RULE_NODATA);
    assert_null(r->metric);
    assert_true(r->nodata_ms == 120000);
    assert_int_equal(r->impact, RULE_HIGH);
    r = find(rs, "disk_full_forecast");
    assert_true(r->fc_limit == 100);
    assert_true(r->fc_within_ms == 6 * 86400000LL);
    r = find(rs, "cpu_saturated");
    assert_string_equal(r->metric, "cpu.idle");
    assert_int_equal(r->when.fn, RULE_FN_AVG);
    assert_int_equal(r->when.cmp, RULE_LT);
    r = find(rs, "oracle_alert_errors");
    assert_true(r->log_count == 1);
    assert_true(r->log_window_ms == 600000);
    assert_true(rules_matcher_ok(&r->match[0], "/u01/app/oracle/diag/rdbms/orcl/orcl/trace/"
                                               "alert_orcl.log"));
    assert_true(log_matches(r, "ORA-00257: archiver error. Connect internal only"));
    assert_false(log_matches(r, "ORA-01017: invalid username/password"));
    r = find(rs, "process_missing");
    assert_int_equal(r->check_status, CHECK_CRITICAL);
    assert_true(r->check_consecutive == 2);
    assert_true(rules_matcher_ok(&r->match[0], "proc_oracle"));
    r = find(rs, "tomcat_out_of_memory");
    assert_true(log_matches(r, "Exception in thread \"http-nio-8080\" "
                               "java.lang.OutOfMemoryError: Java heap space"));
    r = find(rs, "line_share_unavailable");
    assert_true(r->share_above_pct == 20);
    /* the telephony rules select what the probes really send (probes/sipcall.c,
     * sipping.c: checks sipcall_<name>, sipping_<name>, series sipcall; link objects in
     * group telephony_link) */
    r = find(rs, "hotline_call_slow");
    assert_string_equal(r->metric, "sipcall.answer_s");
    assert_true(r->when.threshold == 8);
    r = find(rs, "hotline_dead_air");
    assert_string_equal(r->metric, "sipcall.dead_air");
    r = find(rs, "hotline_call_failing");
    assert_true(rules_matcher_ok(&r->match[0], "sipcall_hotline"));
    assert_false(rules_matcher_ok(&r->match[0], "sipping_hotline"));
    r = find(rs, "phone_unreachable");
    assert_true(rules_matcher_ok(&r->match[0], "sipping_seat8001"));
    r = find(rs, "telephony_link_lost");
    assert_int_equal(r->kind, RULE_LINE_STATE);
    assert_string_equal(r->match[0].label, "group");
    assert_true(rules_matcher_ok(&r->match[0], "telephony_link"));
    int star = 0;
    for (size_t i = 0; i < rs->ndeps; i++) {
        if (strcmp(rs->deps[i].parent, "host_silent") == 0 && rs->deps[i].nsuppress == 1 &&
            strcmp(rs->deps[i].suppress[0], "*") == 0) {
            star = 1;
        }
    }
    assert_true(star);
    rules_free(rs);
    free(path);
}

static void multi_file(void **state)
{
    char *a = write_file("a.yaml", "groups:\n"
                                   "  db: [\"db-*\"]\n"
                                   "rules:\n"
                                   "  - name: disk_full\n"
                                   "    metric: df.used_pct\n"
                                   "    when: avg(5m) > 90\n");
    /* references across files: group db and rule disk_full come from a.yaml */
    char *b = write_file("b.yaml", "dependencies:\n"
                                   "  - parent: silent\n"
                                   "    suppress: [disk_full]\n"
                                   "rules:\n"
                                   "  - name: silent\n"
                                   "    nodata: 2m\n"
                                   "    groups: [db]\n");
    char *c = write_file("c.yaml", "rules:\n"
                                   "  - name: other\n"
                                   "    nodata: 2m\n"
                                   "  - name: disk_full\n"
                                   "    nodata: 5m\n");
    char *d = write_file("d.yaml", "groups:\n"
                                   "  db: [\"ora*\"]\n");
    char *missing = wp_xasprintf("%s/missing.yaml", tmpdir);
    struct wp_conf_err err;
    struct rule_set *rs = NULL;
    struct rule_set *sentinel = (struct rule_set *)(uintptr_t)0x1;

    (void)state;
    {
        const char *paths[] = {a, b};
        assert_int_equal(rules_load(paths, 2, &err, &rs), 0);
        assert_int_equal(rs->nrules, 2);
        assert_int_equal(rs->ndeps, 1);
        assert_string_equal(rs->rules[0].file, a);
        assert_string_equal(rs->rules[1].file, b);
        assert_int_equal(rs->rules[1].line, 5);
        rules_free(rs);
    }
    {
        /* b alone: its references have nothing to point to; all or nothing */
        const char *paths[] = {b};
        rs = sentinel;
        assert_int_equal(rules_load(paths, 1, &err, &rs), WP_ECONFIG);
        assert_ptr_equal(rs, sentinel);
        char *want = wp_xasprintf("%s:3:16: suppress: unknown rule \"disk_full\"", b);
        assert_string_equal(err.msg, want);
        free(want);
    }
    {
        const char *paths[] = {a, b, c};
        rs = sentinel;
        assert_int_equal(rules_load(paths, 3, &err, &rs), WP_ECONFIG);
        assert_ptr_equal(rs, sentinel);
        char *want =
            wp_xasprintf("%s:4:11: rule \"disk_full\" is defined twice (first at %s:4:5)", c, a);
        assert_string_equal(err.msg, want);
        free(want);
    }
    {
        const char *paths[] = {a, d};
        rs = sentinel;
        assert_int_equal(rules_load(paths, 2, &err, &rs), WP_ECONFIG);
        assert_ptr_equal(rs, sentinel);
        char *want = wp_xasprintf("%s:2:3: group \"db\" is defined twice (first at %s:2:3)", d, a);
        assert_string_equal(err.msg, want);
        free(want);
    }
    {
        const char *paths[] = {a, missing};
        rs = sentinel;
        assert_true(rules_load(paths, 2, &err, &rs) == -ENOENT);
        assert_ptr_equal(rs, sentinel);
        assert_non_null(strstr(err.msg, "missing.yaml: cannot open"));
    }
    {
        rs = NULL;
        assert_int_equal(rules_load(NULL, 0, &err, &rs), 0);
        assert_int_equal(rs->nrules, 0);
        rules_free(rs);
    }
    free(a);
    free(b);
    free(c);
    free(d);
    free(missing);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(full_file),
        cmocka_unit_test(empty_files),
        cmocka_unit_test(err_expressions),
        cmocka_unit_test(err_regex),
        cmocka_unit_test(err_levels_and_keys),
        cmocka_unit_test(err_duplicates),
        cmocka_unit_test(err_conditions),
        cmocka_unit_test(err_kinds),
        cmocka_unit_test(err_references),
        cmocka_unit_test(err_maintenance),
        cmocka_unit_test(err_yaml_syntax),
        cmocka_unit_test(globs),
        cmocka_unit_test(matchers),
        cmocka_unit_test(log_patterns),
        cmocka_unit_test(expr_good),
        cmocka_unit_test(expr_bad),
        cmocka_unit_test(maintenance_windows),
        cmocka_unit_test(level_names),
        cmocka_unit_test(default_file_loads),
        cmocka_unit_test(multi_file),
    };
    return cmocka_run_group_tests(tests, files_setup, files_teardown);
}
