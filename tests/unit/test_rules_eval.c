/* SPDX-License-Identifier: Apache-2.0 */
/* Rules engine tests with injected time: for / recover_for edges, hysteresis, window
 * functions, no data, logs, lines, checks, forecast, suppression, restart and reload. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka needs these first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "incident.h"
#include "rules.h"
#include "rules_eval.h"
#include "wp/err.h"
#include "wp/mem.h"

#define MIN_MS  60000LL
#define HOUR_MS (60 * MIN_MS)
#define DAY_MS  (24 * HOUR_MS)
#define T0      1767225600000LL /* 2026-01-01T00:00:00Z */

/* A sink that records what the engine said. */
struct rec {
    int fires, clears, supp_on, supp_off;
    int opens, firing; /* fires that began a problem (single-problem tests) */
    char last_fp[512];
    char last_summary[512];
    char last_values[1024];
    char last_reason[256];
    int64_t last_fire_at, last_clear_at;
    /* persisted states */
    char state_fp[128][256];
    int state[128];
    int64_t state_since[128];
    int nstates;
    char fired[128][128]; /* every fingerprint that fired (distinct) */
    int nfired;
};

static const char *find_fp(const struct rec *r, const char *fp)
{
    for (int i = 0; i < r->nfired; i++) {
        if (strcmp(r->fired[i], fp) == 0) {
            return r->fired[i];
        }
    }
    return NULL;
}

static int r_fire(void *arg, const struct inc_signal *sig, int64_t now)
{
    struct rec *r = arg;
    r->fires++;
    r->opens += r->firing ? 0 : 1;
    r->firing = 1;
    snprintf(r->last_fp, sizeof(r->last_fp), "%s", sig->fingerprint);
    if (find_fp(r, sig->fingerprint) == NULL && r->nfired < 128) {
        snprintf(r->fired[r->nfired++], sizeof(r->fired[0]), "%s", sig->fingerprint);
    }
    snprintf(r->last_summary, sizeof(r->last_summary), "%s", sig->summary);
    snprintf(r->last_values, sizeof(r->last_values), "%s", sig->values_json);
    r->last_fire_at = now;
    return 0;
}

static int r_clear(void *arg, const char *fp, int64_t now)
{
    struct rec *r = arg;
    r->clears++;
    r->firing = 0;
    snprintf(r->last_fp, sizeof(r->last_fp), "%s", fp);
    r->last_clear_at = now;
    return 0;
}

static int r_suppress(void *arg, const char *fp, int on, const char *reason, int64_t now)
{
    struct rec *r = arg;
    (void)now;
    if (on) {
        r->supp_on++;
    } else {
        r->supp_off++;
    }
    snprintf(r->last_fp, sizeof(r->last_fp), "%s", fp);
    snprintf(r->last_reason, sizeof(r->last_reason), "%s", reason);
    return 0;
}

static int find_state(struct rec *r, const char *fp)
{
    for (int i = 0; i < r->nstates; i++) {
        if (strcmp(r->state_fp[i], fp) == 0) {
            return i;
        }
    }
    return -1;
}

static int r_state_put(void *arg, const char *fp, int state, int64_t since)
{
    struct rec *r = arg;
    int i = find_state(r, fp);
    if (i < 0) {
        assert_true(r->nstates < 128);
        i = r->nstates++;
        snprintf(r->state_fp[i], sizeof(r->state_fp[i]), "%s", fp);
    }
    r->state[i] = state;
    r->state_since[i] = since;
    return 0;
}

static int r_state_del(void *arg, const char *fp)
{
    struct rec *r = arg;
    int i = find_state(r, fp);
    if (i >= 0) {
        r->nstates--;
        memmove(&r->state_fp[i], &r->state_fp[i + 1], (size_t)(r->nstates - i) * 256);
        memmove(&r->state[i], &r->state[i + 1], (size_t)(r->nstates - i) * sizeof(int));
        memmove(&r->state_since[i], &r->state_since[i + 1],
                (size_t)(r->nstates - i) * sizeof(int64_t));
    }
    return 0;
}

struct fix {
    struct rec rec;
    struct rule_set *rs;
    struct rules_eng *e;
    struct rules_host *h;
};

static void setup_rules(struct fix *f, const char *yaml)
{
    struct wp_conf_err err;
    memset(&err, 0, sizeof(err));
    int rc = rules_parse("test.yaml", yaml, strlen(yaml), &err, &f->rs);
    if (rc < 0) {
        fail_msg("rules did not parse: %s", err.msg);
    }
    struct rules_sink sink = {
        .arg = &f->rec,
        .fire = r_fire,
        .clear = r_clear,
        .suppress = r_suppress,
        .state_put = r_state_put,
        .state_del = r_state_del,
    };
    f->e = rules_eng_new(f->rs, &sink);
    f->h = rules_eng_host(f->e, "db-1", "db-1", NULL, T0);
}

static void teardown_rules(struct fix *f)
{
    rules_eng_free(f->e);
    rules_free(f->rs);
}

/* ---- threshold ----------------------------------------------------------------------- */

static const char *const DISK_RULES = "rules:\n"
                                      "  - name: disk_full\n"
                                      "    metric: df.used_pct\n"
                                      "    when: \"last > 90\"\n"
                                      "    for: 5m\n"
                                      "    recover: \"last < 85\"\n"
                                      "    recover_for: 2m\n"
                                      "    impact: high\n"
                                      "    summary: \"Disk {instance} on {host} is {value}% full\"\n";

static void test_for_and_recover_for_edges(void **state)
{
    struct fix f;
    (void)state;
    memset(&f, 0, sizeof(f));
    setup_rules(&f, DISK_RULES);
    struct rules_series *se = rules_eng_series(f.e, f.h, "df.used_pct", "/u01");
    assert_non_null(se);
    assert_null(rules_eng_series(f.e, f.h, "df.inodes_pct", "/u01"));

    rules_sample(f.e, se, T0, 50);
    rules_sample(f.e, se, T0 + 10000, 95); /* pending from here */
    assert_int_equal(f.rec.nstates, 1);
    assert_int_equal(f.rec.state[0], RS_PENDING);
    assert_int_equal(f.rec.state_since[0], T0 + 10000);
    rules_sample(f.e, se, T0 + 10000 + 5 * MIN_MS - 1, 96); /* 1 ms short of `for` */
    assert_int_equal(f.rec.fires, 0);
    rules_sample(f.e, se, T0 + 10000 + 5 * MIN_MS, 97); /* exactly `for` */
    assert_int_equal(f.rec.fires, 1);
    assert_string_equal(f.rec.last_fp, "disk_full|db-1|instance=/u01");
    assert_string_equal(f.rec.last_summary, "Disk /u01 on db-1 is 97% full");
    assert_non_null(strstr(f.rec.last_values, "\"value\": 97"));

    /* recovery needs < 85 held for 2 min */
    int64_t t = T0 + 10 * MIN_MS;
    rules_sample(f.e, se, t, 80);
    rules_sample(f.e, se, t + 2 * MIN_MS - 1, 80);
    assert_int_equal(f.rec.clears, 0);
    rules_sample(f.e, se, t + 2 * MIN_MS, 80);
    assert_int_equal(f.rec.clears, 1);
    assert_int_equal(f.rec.nstates, 0);

    /* a dip below `for` never fires */
    t += 10 * MIN_MS;
    rules_sample(f.e, se, t, 95);
    rules_sample(f.e, se, t + MIN_MS, 50);
    rules_sample(f.e, se, t + 6 * MIN_MS, 95);
    assert_int_equal(f.rec.fires, 1);
    teardown_rules(&f);
}

static void test_hysteresis_one_incident(void **state)
{
    struct fix f;
    (void)state;
    memset(&f, 0, sizeof(f));
    setup_rules(&f, "rules:\n"
                    "  - name: cpu_hot\n"
                    "    metric: cpu.busy\n"
                    "    when: \"last > 90\"\n"
                    "    recover: \"last < 85\"\n");
    struct rules_series *se = rules_eng_series(f.e, f.h, "cpu.busy", "total");
    assert_non_null(se);
    for (int i = 0; i < 100; i++) {
        /* oscillates between the two thresholds after the first breach */
        rules_sample(f.e, se, T0 + i * 1000LL, i % 2 == 0 ? 94 : 86);
    }
    assert_int_equal(f.rec.opens, 1);
    assert_int_equal(f.rec.fires, 2); /* opened, and one value update after a minute */
    assert_int_equal(f.rec.clears, 0);
    rules_sample(f.e, se, T0 + 200000, 84);
    assert_int_equal(f.rec.clears, 1);
    teardown_rules(&f);
}

static void test_window_functions(void **state)
{
    int64_t t[] = {1000, 2000, 3000, 4000, 5000};
    double v[] = {10, 20, 30, 40, 100};
    double out = 0;
    (void)state;

    assert_int_equal(rules_window_fn(RULE_FN_LAST, t, v, 5, 0, 5000, &out), 0);
    assert_true(out == 100);
    assert_int_equal(rules_window_fn(RULE_FN_AVG, t, v, 5, 3000, 5000, &out), 0);
    assert_true(fabs(out - (30 + 40 + 100) / 3.0) < 1e-9); /* 2000 is outside (2000, 5000] */
    assert_int_equal(rules_window_fn(RULE_FN_MIN, t, v, 5, 10000, 5000, &out), 0);
    assert_true(out == 10);
    assert_int_equal(rules_window_fn(RULE_FN_MAX, t, v, 5, 10000, 4000, &out), 0);
    assert_true(out == 40); /* samples after end are not seen */
    assert_int_equal(rules_window_fn(RULE_FN_P95, t, v, 5, 10000, 5000, &out), 0);
    assert_true(out == 100);
    assert_int_equal(rules_window_fn(RULE_FN_DELTA, t, v, 5, 10000, 5000, &out), 0);
    assert_true(out == 90);
    assert_int_equal(rules_window_fn(RULE_FN_RATE, t, v, 5, 10000, 5000, &out), 0);
    assert_true(fabs(out - 22.5) < 1e-9); /* 90 over 4 s */
    assert_int_equal(rules_window_fn(RULE_FN_COUNT, t, v, 5, 2500, 5000, &out), 0);
    assert_true(out == 3);
    /* p95 by selection: 1..200 shuffled, nearest rank 190; with duplicates too */
    int64_t tt[200];
    double vv[200];
    for (int i = 0; i < 200; i++) {
        tt[i] = 1000 + i;
        vv[i] = (double)((i * 73) % 200 + 1); /* a permutation of 1..200 */
    }
    assert_int_equal(rules_window_fn(RULE_FN_P95, tt, vv, 200, 100000, 1199, &out), 0);
    assert_true(out == 190);
    for (int i = 0; i < 200; i++) {
        vv[i] = (double)(i % 3);
    }
    assert_int_equal(rules_window_fn(RULE_FN_P95, tt, vv, 200, 100000, 1199, &out), 0);
    assert_true(out == 2);
    /* an empty window gives no verdict */
    assert_int_equal(rules_window_fn(RULE_FN_AVG, t, v, 5, 500, 9000, &out), WP_ENOTFOUND);
    assert_int_equal(rules_window_fn(RULE_FN_RATE, t, v, 1, 10000, 5000, &out), WP_ENOTFOUND);
}

static void test_empty_window_resolves_nothing(void **state)
{
    struct fix f;
    (void)state;
    memset(&f, 0, sizeof(f));
    setup_rules(&f, "rules:\n"
                    "  - name: load_high\n"
                    "    metric: load.load1\n"
                    "    when: \"avg(1m) > 10\"\n");
    struct rules_series *se = rules_eng_series(f.e, f.h, "load.load1", "");
    rules_sample(f.e, se, T0, 20);
    assert_int_equal(f.rec.fires, 1);
    /* silence, then one low sample an hour later: the window holds only that sample */
    rules_eng_tick(f.e, T0 + HOUR_MS);
    assert_int_equal(f.rec.clears, 0);
    rules_sample(f.e, se, T0 + HOUR_MS, 1);
    assert_int_equal(f.rec.clears, 1);
    teardown_rules(&f);
}

/* ---- no data ------------------------------------------------------------------------- */

static const char *const SILENT_RULES = "rules:\n"
                                        "  - name: host_silent\n"
                                        "    nodata: 2m\n"
                                        "    impact: high\n"
                                        "  - name: disk_full\n"
                                        "    metric: df.used_pct\n"
                                        "    when: \"last > 90\"\n";

static void test_host_nodata(void **state)
{
    struct fix f;
    (void)state;
    memset(&f, 0, sizeof(f));
    setup_rules(&f, SILENT_RULES);
    rules_eng_tick(f.e, T0 + 2 * MIN_MS - 1);
    assert_int_equal(f.rec.fires, 0);
    rules_eng_tick(f.e, T0 + 2 * MIN_MS);
    assert_int_equal(f.rec.fires, 1);
    assert_string_equal(f.rec.last_fp, "host_silent|db-1");
    rules_eng_tick(f.e, T0 + 2 * MIN_MS + 30000);
    assert_int_equal(f.rec.fires, 1); /* updated at most once a minute */
    rules_eng_tick(f.e, T0 + 3 * MIN_MS);
    assert_int_equal(f.rec.fires, 2); /* the same problem again: the store updates it */
    assert_string_equal(f.rec.last_fp, "host_silent|db-1");
    rules_host_seen(f.e, f.h, T0 + 4 * MIN_MS);
    assert_int_equal(f.rec.clears, 1);
    teardown_rules(&f);
}

static void test_silent_host_suppresses_in_any_order(void **state)
{
    struct fix f;
    (void)state;
    memset(&f, 0, sizeof(f));
    setup_rules(&f, SILENT_RULES);
    struct rules_series *se = rules_eng_series(f.e, f.h, "df.used_pct", "/");

    /* child first, then the host goes silent */
    rules_sample(f.e, se, T0 + 1000, 99);
    assert_int_equal(f.rec.fires, 1);
    assert_int_equal(f.rec.supp_on, 0);
    rules_eng_tick(f.e, T0 + 1000 + 2 * MIN_MS);
    assert_int_equal(f.rec.fires, 2);
    assert_int_equal(f.rec.supp_on, 1);
    assert_string_equal(f.rec.last_fp, "disk_full|db-1|instance=/");
    assert_non_null(strstr(f.rec.last_reason, "silent"));
    /* silence never resolves the child */
    rules_eng_tick(f.e, T0 + HOUR_MS);
    assert_int_equal(f.rec.clears, 0);
    /* the host is back: the silence clears, the child is no longer suppressed */
    rules_host_seen(f.e, f.h, T0 + HOUR_MS + 1000);
    assert_int_equal(f.rec.clears, 1);
    assert_int_equal(f.rec.supp_off, 1);
    teardown_rules(&f);

    /* host silent first, then a child fires (late data): born suppressed */
    memset(&f, 0, sizeof(f));
    setup_rules(&f, SILENT_RULES);
    se = rules_eng_series(f.e, f.h, "df.used_pct", "/");
    rules_eng_tick(f.e, T0 + 3 * MIN_MS);
    assert_int_equal(f.rec.fires, 1);
    rules_sample(f.e, se, T0 + 1000, 99);
    assert_int_equal(f.rec.fires, 2);
    assert_int_equal(f.rec.supp_on, 1);
    assert_string_equal(f.rec.last_fp, "disk_full|db-1|instance=/");
    teardown_rules(&f);
}

static void test_dependency_and_maintenance(void **state)
{
    struct fix f;
    (void)state;
    memset(&f, 0, sizeof(f));
    setup_rules(&f, "maintenance:\n"
                    "  - name: SAN move\n"
                    "    hosts: [\"db-*\"]\n"
                    "    from: 2026-01-01T01:00:00Z\n"
                    "    to: 2026-01-01T02:00:00Z\n"
                    "dependencies:\n"
                    "  - parent: pbx_link_down\n"
                    "    suppress: [line_blocked]\n"
                    "rules:\n"
                    "  - name: pbx_link_down\n"
                    "    metric: pbx.link_up\n"
                    "    when: \"last < 1\"\n"
                    "  - name: line_blocked\n"
                    "    line_state: {state: blocked, for: 10m}\n");
    struct rules_series *link = rules_eng_series(f.e, f.h, "pbx.link_up", "trunk1");
    rules_line(f.e, f.h, "8001", "hotline", "blocked", T0);
    rules_eng_tick(f.e, T0 + 10 * MIN_MS - 1);
    assert_int_equal(f.rec.fires, 0);
    rules_eng_tick(f.e, T0 + 10 * MIN_MS);
    assert_int_equal(f.rec.fires, 1);
    assert_string_equal(f.rec.last_fp, "line_blocked|db-1|line=8001");
    rules_sample(f.e, link, T0 + 11 * MIN_MS, 0);
    assert_int_equal(f.rec.fires, 2);
    assert_int_equal(f.rec.supp_on, 1);
    assert_string_equal(f.rec.last_fp, "line_blocked|db-1|line=8001");
    rules_sample(f.e, link, T0 + 12 * MIN_MS, 1);
    assert_int_equal(f.rec.clears, 1);
    assert_int_equal(f.rec.supp_off, 1);

    /* the maintenance window suppresses both while it lasts */
    rules_sample(f.e, link, T0 + 65 * MIN_MS, 0);
    rules_eng_tick(f.e, T0 + 65 * MIN_MS);
    assert_non_null(strstr(f.rec.last_reason, "maintenance SAN move"));
    int on = f.rec.supp_on;
    assert_true(on >= 3);
    rules_eng_tick(f.e, T0 + 2 * HOUR_MS + 1000);
    assert_true(f.rec.supp_off >= 2);
    teardown_rules(&f);
}

/* ---- events ---------------------------------------------------------------------------- */

static void test_log_pattern_count(void **state)
{
    struct fix f;
    (void)state;
    memset(&f, 0, sizeof(f));
    setup_rules(&f, "rules:\n"
                    "  - name: ora_errors\n"
                    "    log: {pattern: \"ORA-(00600|07445)\", count: 3, window: 10m}\n"
                    "    match: {source: {glob: \"*alert_*.log\"}}\n"
                    "    key: [source]\n");
    const char *src = "/u01/app/oracle/diag/rdbms/orcl/trace/alert_orcl.log";
    rules_log(f.e, f.h, src, "ORA-00600: internal error code", T0);
    rules_log(f.e, f.h, src, "ORA-01555: snapshot too old", T0 + 1000); /* no match */
    rules_log(f.e, f.h, "/var/log/other.log", "ORA-00600: elsewhere", T0 + 2000);
    rules_log(f.e, f.h, src, "ORA-07445: exception encountered", T0 + MIN_MS);
    assert_int_equal(f.rec.fires, 0);
    rules_log(f.e, f.h, src, "ORA-00600: again", T0 + 9 * MIN_MS);
    assert_int_equal(f.rec.fires, 1);
    assert_non_null(strstr(f.rec.last_fp, "source=" "/u01/app"));
    /* the first match leaves the window at T0 + 10 min */
    rules_eng_tick(f.e, T0 + 10 * MIN_MS);
    assert_int_equal(f.rec.clears, 1);
    teardown_rules(&f);
}

static void test_line_share_and_check(void **state)
{
    struct fix f;
    (void)state;
    memset(&f, 0, sizeof(f));
    setup_rules(&f, "rules:\n"
                    "  - name: lines_down\n"
                    "    line_share: {states: [blocked, unavailable], above: 20}\n"
                    "    key: [group]\n"
                    "  - name: hotline_call\n"
                    "    check: {status: critical, consecutive: 2}\n"
                    "    key: [check]\n");
    char name[16];
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "80%02d", i);
        rules_line(f.e, f.h, name, "ivr", "idle", T0);
    }
    rules_line(f.e, f.h, "8000", "ivr", "blocked", T0 + 1000);
    rules_line(f.e, f.h, "8001", "ivr", "unavailable", T0 + 2000);
    assert_int_equal(f.rec.fires, 0); /* 20 % is not above 20 % */
    rules_line(f.e, f.h, "8002", "ivr", "blocked", T0 + 3000);
    assert_int_equal(f.rec.fires, 1);
    assert_string_equal(f.rec.last_fp, "lines_down|db-1|group=ivr");
    rules_line(f.e, f.h, "8002", "ivr", "idle", T0 + 4000);
    assert_int_equal(f.rec.clears, 1);

    rules_check(f.e, f.h, "sip_hotline", CHECK_CRITICAL, "no answer", T0);
    rules_check(f.e, f.h, "sip_hotline", CHECK_OK, "ok", T0 + 60000);
    rules_check(f.e, f.h, "sip_hotline", CHECK_CRITICAL, "no answer", T0 + 120000);
    assert_int_equal(f.rec.fires, 1);
    rules_check(f.e, f.h, "sip_hotline", CHECK_CRITICAL, "no answer", T0 + 180000);
    assert_int_equal(f.rec.fires, 2);
    assert_string_equal(f.rec.last_fp, "hotline_call|db-1|check=sip_hotline");
    assert_non_null(strstr(f.rec.last_values, "no answer"));
    rules_check(f.e, f.h, "sip_hotline", CHECK_OK, "ok", T0 + 240000);
    assert_int_equal(f.rec.clears, 2);
    teardown_rules(&f);
}

/* A middleware hang: 40 of 50 seats go blocked within 40 s. One mass-change problem for the
 * group, the per-line and share problems of that group suppressed while it fires; a group on
 * another middleware is untouched; the first report of every line (a restarted collector)
 * is no change; recovery when fewer than 80 % are still blocked. */
static void test_line_mass_change(void **state)
{
    struct fix f;
    char name[16];
    (void)state;
    memset(&f, 0, sizeof(f));
    setup_rules(&f, "rules:\n"
                    "  - name: middleware_mass\n"
                    "    line_mass: {states: [blocked, unavailable], share: 80, within: 60s}\n"
                    "  - name: seat_blocked\n"
                    "    line_state: {state: blocked, for: 0s}\n"
                    "  - name: seats_down\n"
                    "    line_share: {states: [blocked], above: 50}\n");
    /* first sight: 45 of 50 seats already blocked is a standing condition, not a change */
    for (int i = 0; i < 50; i++) {
        snprintf(name, sizeof(name), "80%02d", i);
        rules_line(f.e, f.h, name, "seats", i < 45 ? "blocked" : "idle", T0);
    }
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "90%02d", i);
        rules_line(f.e, f.h, name, "ivr", "idle", T0);
    }
    assert_null(find_fp(&f.rec, "middleware_mass|db-1|group=seats"));
    for (int i = 0; i < 50; i++) {
        snprintf(name, sizeof(name), "80%02d", i);
        rules_line(f.e, f.h, name, "seats", "idle", T0 + MIN_MS);
    }
    int fires0 = f.rec.fires;
    int clears0 = f.rec.clears;

    /* 39 seats in 40 s (78 %): not yet; the 40th makes 80 % */
    for (int i = 0; i < 39; i++) {
        snprintf(name, sizeof(name), "80%02d", i);
        rules_line(f.e, f.h, name, "seats", "blocked", T0 + 10 * MIN_MS + i * 1000);
    }
    assert_null(find_fp(&f.rec, "middleware_mass|db-1|group=seats"));
    int supp0 = f.rec.supp_on;
    rules_line(f.e, f.h, "8039", "seats", "blocked", T0 + 10 * MIN_MS + 40000);
    assert_non_null(find_fp(&f.rec, "middleware_mass|db-1|group=seats"));
    /* every seat_blocked problem and seats_down are suppressed, with the reason */
    assert_int_equal(f.rec.supp_on - supp0, 41);
    assert_non_null(strstr(f.rec.last_reason, "mass change of group seats"));
    /* a seat blocked later in the same group is suppressed at birth */
    supp0 = f.rec.supp_on;
    rules_line(f.e, f.h, "8045", "seats", "blocked", T0 + 12 * MIN_MS);
    assert_int_equal(f.rec.supp_on - supp0, 1);
    /* the IVR group is not suppressed by the seats' mass change */
    supp0 = f.rec.supp_on;
    rules_line(f.e, f.h, "9000", "ivr", "blocked", T0 + 12 * MIN_MS);
    assert_int_equal(f.rec.supp_on - supp0, 0);
    assert_non_null(find_fp(&f.rec, "seat_blocked|db-1|line=9000"));

    /* recovery: the middleware comes back, seats go idle; below 80 % blocked clears */
    int clears1 = f.rec.clears;
    for (int i = 0; i < 41; i++) {
        snprintf(name, sizeof(name), "80%02d", i);
        rules_line(f.e, f.h, name, "seats", "idle", T0 + 20 * MIN_MS + i * 100);
    }
    assert_true(f.rec.clears - clears1 >= 42); /* mass + 41 seats (+ the share rule) */
    (void)fires0;
    (void)clears0;
    teardown_rules(&f);
}

/* A group too small for a mass change (min_lines) and a slow drift (outside the window). */
static void test_line_mass_change_not(void **state)
{
    struct fix f;
    char name[16];
    (void)state;
    memset(&f, 0, sizeof(f));
    setup_rules(&f, "rules:\n"
                    "  - name: mass\n"
                    "    line_mass: {share: 80, within: 60s, min_lines: 5}\n");
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof(name), "70%02d", i);
        rules_line(f.e, f.h, name, "trunks", "idle", T0);
    }
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof(name), "70%02d", i);
        rules_line(f.e, f.h, name, "trunks", "out_of_service", T0 + MIN_MS + i * 1000);
    }
    assert_int_equal(f.rec.fires, 0);
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "80%02d", i);
        rules_line(f.e, f.h, name, "seats", "idle", T0);
    }
    /* one seat every 30 s: never 80 % within a minute */
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "80%02d", i);
        rules_line(f.e, f.h, name, "seats", "unavailable", T0 + 5 * MIN_MS + i * 30000);
    }
    assert_int_equal(f.rec.fires, 0);
    teardown_rules(&f);
}

/* ---- forecast ---------------------------------------------------------------------------- */

static void test_forecast_linear_fill(void **state)
{
    int64_t t[100];
    double v[100];
    int64_t eta = 0;
    (void)state;

    for (int i = 0; i < 100; i++) {
        t[i] = T0 + i * HOUR_MS / 4;
        v[i] = 50 + 0.25 * i; /* 1 % per hour */
    }
    assert_int_equal(rules_forecast(t, v, 100, 100, &eta), 0);
    /* last value 74.75: 25.25 % left at 1 %/h */
    assert_true(llabs(eta - (int64_t)(25.25 * HOUR_MS)) < 1000);
    for (int i = 0; i < 100; i++) {
        v[i] = 80 - 0.01 * i;
    }
    assert_int_equal(rules_forecast(t, v, 100, 100, &eta), WP_ENOTFOUND);

    struct fix f;
    memset(&f, 0, sizeof(f));
    setup_rules(&f, "rules:\n"
                    "  - name: disk_fill\n"
                    "    metric: df.used_pct\n"
                    "    forecast: {limit: 100, within: 6d, window: 1d}\n"
                    "    summary: \"{instance} full in {value} days\"\n");
    struct rules_series *se = rules_eng_series(f.e, f.h, "df.used_pct", "/u01");
    /* 5 % a day from 40 %: full in 12 days at first, then within 6 days */
    for (int i = 0; i <= 10 * 24; i++) {
        rules_sample(f.e, se, T0 + i * HOUR_MS, 40 + 5.0 * i / 24);
        if (f.rec.fires > 0) {
            break;
        }
    }
    assert_int_equal(f.rec.fires, 1);
    /* fired once the trend said 6 days: at 70 %, i.e. after 6 days */
    assert_true(f.rec.last_fire_at >= T0 + 6 * DAY_MS - HOUR_MS);
    assert_true(f.rec.last_fire_at <= T0 + 6 * DAY_MS + HOUR_MS);
    assert_non_null(strstr(f.rec.last_summary, "/u01 full in"));
    teardown_rules(&f);
}

/* ---- restart and reload ------------------------------------------------------------------ */

static void test_restart_mid_for(void **state)
{
    struct fix f;
    (void)state;
    memset(&f, 0, sizeof(f));
    setup_rules(&f, DISK_RULES);
    struct rules_series *se = rules_eng_series(f.e, f.h, "df.used_pct", "/u01");
    rules_sample(f.e, se, T0, 95);
    rules_sample(f.e, se, T0 + 3 * MIN_MS, 95);
    assert_int_equal(f.rec.nstates, 1);
    struct rec saved = f.rec;
    rules_eng_free(f.e);

    /* a new engine resumes from the persisted state: `for` keeps counting from T0 */
    struct rules_sink sink = {
        .arg = &f.rec,
        .fire = r_fire,
        .clear = r_clear,
        .suppress = r_suppress,
        .state_put = r_state_put,
        .state_del = r_state_del,
    };
    f.e = rules_eng_new(f.rs, &sink);
    rules_eng_restore(f.e, saved.state_fp[0], saved.state[0], saved.state_since[0]);
    f.h = rules_eng_host(f.e, "db-1", "db-1", NULL, T0 + 4 * MIN_MS);
    se = rules_eng_series(f.e, f.h, "df.used_pct", "/u01");
    rules_sample(f.e, se, T0 + 5 * MIN_MS, 95);
    assert_int_equal(f.rec.fires, 1);

    /* reload with the same rule: firing state kept, no second incident */
    struct rule_set *rs2 = NULL;
    struct wp_conf_err err;
    assert_int_equal(rules_parse("test2.yaml", DISK_RULES, strlen(DISK_RULES), &err, &rs2), 0);
    rules_eng_set(f.e, rs2);
    rules_free(f.rs);
    f.rs = rs2;
    se = rules_eng_series(f.e, f.h, "df.used_pct", "/u01");
    rules_sample(f.e, se, T0 + 5 * MIN_MS + 30000, 96);
    assert_int_equal(f.rec.fires, 1);
    rules_sample(f.e, se, T0 + 7 * MIN_MS, 50);
    rules_sample(f.e, se, T0 + 10 * MIN_MS, 50);
    assert_int_equal(f.rec.clears, 1);
    teardown_rules(&f);
}

/* ---- a restart while a suppression ends ------------------------------------------------- */

/* The collector's sink, on a real incidents.db (coll_rules.c does the same). */
static int st_fire(void *arg, const struct inc_signal *sig, int64_t now)
{
    return inc_fire(arg, sig, now, NULL) < 0 ? -1 : 0;
}

static int st_clear(void *arg, const char *fp, int64_t now)
{
    return inc_clear(arg, fp, now);
}

static int st_suppress(void *arg, const char *fp, int on, const char *reason, int64_t now)
{
    return inc_suppress(arg, fp, on, reason, now);
}

static int st_state_put(void *arg, const char *fp, int state, int64_t since)
{
    return inc_state_put(arg, fp, state, since);
}

static int st_state_del(void *arg, const char *fp)
{
    return inc_state_del(arg, fp);
}

static int st_restore(void *arg, const char *fp, int state, int64_t since)
{
    rules_eng_restore(arg, fp, state, since);
    return 0;
}

struct tl {
    char text[4096]; /* "kind: text\n"... */
};

static int tl_cb(void *arg, int64_t at, const char *kind, const char *by, const char *text)
{
    struct tl *t = arg;
    (void)at;
    (void)by;
    snprintf(t->text + strlen(t->text), sizeof(t->text) - strlen(t->text), "%s: %s\n", kind, text);
    return 0;
}

/* The open incident of fp: its suppressed flag, and its timeline in t. */
static int open_supp(struct inc_store *st, const char *fp, struct tl *t)
{
    struct inc_row row;
    memset(&row, 0, sizeof(row));
    memset(t, 0, sizeof(*t));
    assert_int_equal(inc_find_open(st, fp, &row), 0);
    assert_int_equal(inc_timeline(st, row.id, tl_cb, t), 0);
    int s = row.suppressed;
    inc_row_cleanup(&row);
    return s;
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

static const char *const RESTART_RULES =
    "groups:\n"
    "  watched: [db-3]\n"
    "maintenance:\n"
    "  - {name: SAN move, hosts: [db-1], from: \"2026-01-01T00:00:00Z\","
    " to: \"2026-01-01T02:00:00Z\"}\n"
    "  - {name: long job, hosts: [db-2], from: \"2026-01-01T00:00:00Z\","
    " to: \"2026-01-01T06:00:00Z\"}\n"
    "  - {name: night, hosts: [db-4], from: \"2026-01-01T02:00:00Z\","
    " to: \"2026-01-01T04:00:00Z\"}\n"
    "dependencies:\n"
    "  - {parent: db_down, suppress: [disk_full]}\n"
    "rules:\n"
    "  - {name: disk_full, metric: df.used_pct, when: \"last > 90\", impact: high}\n"
    "  - {name: host_silent, nodata: 2m, groups: [watched], impact: high}\n"
    "  - {name: db_down, check: {status: critical, consecutive: 1}, impact: high}\n";

/* Incidents suppressed when the collector stopped, whose suppression ended while it was down,
 * are unsuppressed (through the store, on the timeline) at the first pass after the restart;
 * those still covered stay suppressed; one a window began to cover meanwhile is suppressed;
 * a silent host's suppression, and a parent's that has not reported again, hold until their
 * data says otherwise. */
static void test_restart_after_suppression_ended(void **state)
{
    char dir[] = "/tmp/wp-rules-eval-XXXXXX";
    struct inc_store *st = NULL;
    struct rule_set *rs = NULL;
    struct wp_conf_err err;
    struct tl t;
    static const char *const hosts[] = {"db-1", "db-2", "db-3", "db-4", "db-5"};
    struct rules_host *h[5];
    (void)state;

    assert_non_null(mkdtemp(dir));
    char *path = wp_xasprintf("%s/incidents.db", dir);
    assert_int_equal(inc_open(path, NULL, &st), 0);
    memset(&err, 0, sizeof(err));
    if (rules_parse("restart.yaml", RESTART_RULES, strlen(RESTART_RULES), &err, &rs) < 0) {
        fail_msg("rules did not parse: %s", err.msg);
    }
    struct rules_sink sink = {.arg = st,
                              .fire = st_fire,
                              .clear = st_clear,
                              .suppress = st_suppress,
                              .state_put = st_state_put,
                              .state_del = st_state_del};

    /* before the stop: every disk fills at 00:10; db-1 and db-2 are in maintenance, db-3 is
     * silent (its disk's late sample comes first), db-4 is in no window yet, db-5's database
     * is down (the parent of its disk's problem) */
    struct rules_eng *e = rules_eng_new(rs, &sink);
    for (int i = 0; i < 5; i++) {
        h[i] = rules_eng_host(e, hosts[i], hosts[i], NULL, T0);
    }
    rules_check(e, h[4], "oracle", CHECK_CRITICAL, "ORA-12541", T0 + 5 * MIN_MS);
    for (int i = 0; i < 5; i++) {
        rules_sample(e, rules_eng_series(e, h[i], "df.used_pct", "/"), T0 + 10 * MIN_MS, 97);
    }
    for (int i = 0; i < 5; i++) {
        if (i != 2) {
            rules_host_seen(e, h[i], T0 + 11 * MIN_MS);
        }
    }
    rules_eng_tick(e, T0 + 12 * MIN_MS);
    assert_int_equal(open_supp(st, "disk_full|db-1|instance=/", &t), 1);
    assert_non_null(strstr(t.text, "suppressed: maintenance SAN move"));
    assert_int_equal(open_supp(st, "disk_full|db-2|instance=/", &t), 1);
    assert_int_equal(open_supp(st, "disk_full|db-3|instance=/", &t), 1);
    assert_non_null(strstr(t.text, "suppressed: host db-3 silent (host_silent)"));
    assert_int_equal(open_supp(st, "disk_full|db-4|instance=/", &t), 0);
    assert_int_equal(open_supp(st, "disk_full|db-5|instance=/", &t), 1);
    assert_non_null(strstr(t.text, "suppressed: db_down on db-5"));
    rules_eng_free(e);

    /* the collector is down from 00:12 to 03:00: SAN move ends at 02:00, night begins */
    const int64_t t1 = T0 + 3 * HOUR_MS;
    e = rules_eng_new(rs, &sink);
    assert_int_equal(inc_state_each(st, st_restore, e), 0);
    for (int i = 0; i < 5; i++) { /* the registry's agents and series, none reporting yet */
        h[i] = rules_eng_host(e, hosts[i], hosts[i], NULL, t1);
        assert_non_null(rules_eng_series(e, h[i], "df.used_pct", "/"));
    }
    rules_eng_tick(e, t1);

    /* the window that ended while the collector was down: unsuppressed, once */
    assert_int_equal(open_supp(st, "disk_full|db-1|instance=/", &t), 0);
    assert_non_null(strstr(t.text, "unsuppressed: suppression ended while the collector was down"));
    /* still in its window: suppressed, nothing written */
    assert_int_equal(open_supp(st, "disk_full|db-2|instance=/", &t), 1);
    assert_int_equal(count_of(t.text, "suppressed:"), 1);
    /* silent when the collector stopped and not heard from since: still suppressed */
    assert_int_equal(open_supp(st, "disk_full|db-3|instance=/", &t), 1);
    assert_int_equal(count_of(t.text, "unsuppressed"), 0);
    /* a window began while it was down: suppressed now */
    assert_int_equal(open_supp(st, "disk_full|db-4|instance=/", &t), 1);
    assert_non_null(strstr(t.text, "suppressed: maintenance night"));
    /* its parent (a check) fired when the collector stopped and has not reported since */
    assert_int_equal(open_supp(st, "disk_full|db-5|instance=/", &t), 1);
    assert_int_equal(count_of(t.text, "unsuppressed"), 0);

    /* later passes write nothing more */
    rules_eng_tick(e, t1 + 1000);
    assert_int_equal(open_supp(st, "disk_full|db-1|instance=/", &t), 0);
    assert_int_equal(count_of(t.text, "unsuppressed"), 1);
    assert_int_equal(open_supp(st, "disk_full|db-4|instance=/", &t), 1);
    assert_int_equal(count_of(t.text, "suppressed:"), 1);
    /* db-3 reports again: its silence ends, and so does its disk's suppression */
    rules_host_seen(e, h[2], t1 + 2000);
    assert_int_equal(open_supp(st, "disk_full|db-3|instance=/", &t), 0);
    assert_int_equal(count_of(t.text, "unsuppressed"), 1);
    /* db-5's check passes again: the parent resolves, its child is no longer suppressed */
    rules_eng_tick(e, t1 + 2500);
    assert_int_equal(open_supp(st, "disk_full|db-5|instance=/", &t), 1);
    rules_check(e, h[4], "oracle", CHECK_OK, "", t1 + 3000);
    assert_int_equal(open_supp(st, "disk_full|db-5|instance=/", &t), 0);
    assert_int_equal(count_of(t.text, "unsuppressed"), 1);
    /* night ends: db-4 too */
    rules_eng_tick(e, T0 + 4 * HOUR_MS);
    assert_int_equal(open_supp(st, "disk_full|db-4|instance=/", &t), 0);

    rules_eng_free(e);
    rules_free(rs);
    inc_close(st);
    free(path);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- a log problem across a restart or a reload ---------------------------------------- */

static const char *const ORA_RULES =
    "maintenance:\n"
    "  - {name: patch, hosts: [db-1], from: \"2026-01-01T00:25:00Z\","
    " to: \"2026-01-01T00:35:00Z\"}\n"
    "rules:\n"
    "  - name: oracle_alert_errors\n"
    "    log: {pattern: \"ORA-(00600|07445|04031|01555|00257)\", count: 1, window: 10m}\n"
    "    match: {source: {glob: \"*alert_*.log\"}}\n"
    "    key: [source]\n"
    "    impact: high\n"
    "    summary: \"Oracle error in {source} on {host}\"\n"
    "  - name: ora_bursts\n"
    "    log: {pattern: \"ORA-04030\", count: 3, window: 10m}\n"
    "    impact: medium\n"
    "  - name: db_down\n"
    "    check: {status: critical, consecutive: 1}\n"
    "    impact: high\n";

#define ORA_SRC  "/u01/app/oracle/diag/rdbms/orcl/trace/alert_orcl.log"
#define ORA_FP   "oracle_alert_errors|db-1|source=" ORA_SRC
#define BURST_FP "ora_bursts|db-1|source=" ORA_SRC

static int is_open(struct inc_store *st, const char *fp)
{
    struct inc_row row;
    memset(&row, 0, sizeof(row));
    int rc = inc_find_open(st, fp, &row);
    inc_row_cleanup(&row);
    assert_true(rc == 0 || rc == WP_ENOTFOUND);
    return rc == 0;
}

static int count_state(void *arg, const char *fp, int state, int64_t since)
{
    (void)fp;
    (void)state;
    (void)since;
    (*(int *)arg)++;
    return 0;
}

static int nstates_of(struct inc_store *st)
{
    int n = 0;
    assert_int_equal(inc_state_each(st, count_state, &n), 0);
    return n;
}

/* A new engine on the store's saved states, its host known (the registry's agent). */
static struct rules_eng *restarted(const struct rule_set *rs, const struct rules_sink *sink,
                                   struct inc_store *st, int64_t now, struct rules_host **h)
{
    struct rules_eng *e = rules_eng_new(rs, sink);
    assert_int_equal(inc_state_each(st, st_restore, e), 0);
    *h = rules_eng_host(e, "db-1", "db-1", NULL, now);
    return e;
}

/* A log problem resolves when its window passes without a matching line: live, after a
 * collector restart (restored from rule_state: its window counts from the restart, since
 * the matches before it are not known; its suppression is checked at the first pass), and
 * after a reload; a check problem restored after a restart waits for its next result.
 * Real incidents.db. */
static void test_log_window_runs_out_after_restart(void **state)
{
    char dir[] = "/tmp/wp-rules-eval-XXXXXX";
    struct inc_store *st = NULL;
    struct rule_set *rs = NULL;
    struct wp_conf_err err;
    struct rules_host *h = NULL;
    (void)state;

    assert_non_null(mkdtemp(dir));
    char *path = wp_xasprintf("%s/incidents.db", dir);
    assert_int_equal(inc_open(path, NULL, &st), 0);
    memset(&err, 0, sizeof(err));
    if (rules_parse("ora.yaml", ORA_RULES, strlen(ORA_RULES), &err, &rs) < 0) {
        fail_msg("rules did not parse: %s", err.msg);
    }
    struct rules_sink sink = {.arg = st,
                              .fire = st_fire,
                              .clear = st_clear,
                              .suppress = st_suppress,
                              .state_put = st_state_put,
                              .state_del = st_state_del};

    /* live: the ORA- line leaves the window 10 min later and the incident resolves */
    struct rules_eng *e = rules_eng_new(rs, &sink);
    h = rules_eng_host(e, "db-1", "db-1", NULL, T0);
    rules_log(e, h, ORA_SRC, "ORA-00600: internal error code", T0);
    assert_true(is_open(st, ORA_FP));
    rules_eng_tick(e, T0 + 10 * MIN_MS - 1000);
    assert_true(is_open(st, ORA_FP));
    rules_eng_tick(e, T0 + 10 * MIN_MS);
    assert_false(is_open(st, ORA_FP));
    assert_int_equal(nstates_of(st), 0);

    /* a restart while it fires (a second line at 00:25, the stop at 00:27, the start at
     * 00:40): the first pass keeps it; a whole window after the start without a match
     * resolves it; the rule's state goes with it */
    int64_t t = T0 + 20 * MIN_MS;
    rules_log(e, h, ORA_SRC, "ORA-04030: out of process memory", t);
    rules_log(e, h, ORA_SRC, "ORA-04030: out of process memory", t + 2 * MIN_MS);
    rules_log(e, h, ORA_SRC, "ORA-04030: out of process memory", t + 3 * MIN_MS);
    rules_log(e, h, ORA_SRC, "ORA-00600: internal error code", t + 5 * MIN_MS);
    assert_true(is_open(st, ORA_FP));
    assert_true(is_open(st, BURST_FP));
    rules_check(e, h, "oracle", CHECK_CRITICAL, "ORA-12541: no listener", t + 6 * MIN_MS);
    assert_true(is_open(st, "db_down|db-1|check=oracle"));
    rules_eng_tick(e, t + 7 * MIN_MS);
    assert_int_equal(nstates_of(st), 3);
    struct tl tl;
    assert_int_equal(open_supp(st, ORA_FP, &tl), 1); /* in the window "patch" */
    rules_eng_free(e);

    int64_t t1 = T0 + 40 * MIN_MS;
    e = restarted(rs, &sink, st, t1, &h);
    rules_eng_tick(e, t1);
    assert_true(is_open(st, ORA_FP));
    /* "patch" ended while the collector was down: lifted at the first pass, no line needed */
    assert_int_equal(open_supp(st, ORA_FP, &tl), 0);
    assert_non_null(strstr(tl.text, "unsuppressed: suppression ended while the collector"));
    assert_true(is_open(st, BURST_FP));
    /* one ORA-04030 after the start: three were in the window before it, so no verdict */
    rules_log(e, h, ORA_SRC, "ORA-04030: out of process memory", t1 + MIN_MS);
    assert_true(is_open(st, BURST_FP));
    rules_eng_tick(e, t1 + 10 * MIN_MS - 1000);
    assert_true(is_open(st, ORA_FP));
    assert_true(is_open(st, BURST_FP));
    rules_eng_tick(e, t1 + 10 * MIN_MS);
    assert_false(is_open(st, ORA_FP));
    assert_false(is_open(st, BURST_FP)); /* one match in its window is not three */
    /* the check's problem waits for its next result (silence resolves nothing) */
    rules_eng_tick(e, t1 + HOUR_MS);
    assert_true(is_open(st, "db_down|db-1|check=oracle"));
    assert_int_equal(nstates_of(st), 1);
    rules_check(e, h, "oracle", CHECK_OK, "", t1 + HOUR_MS + 1000);
    assert_false(is_open(st, "db_down|db-1|check=oracle"));
    assert_int_equal(nstates_of(st), 0);

    /* a restart, and a new match after it: open until a window after that match */
    t = T0 + 2 * HOUR_MS;
    rules_log(e, h, ORA_SRC, "ORA-00257: archiver error", t);
    assert_true(is_open(st, ORA_FP));
    rules_eng_free(e);
    e = restarted(rs, &sink, st, t + MIN_MS, &h);
    rules_eng_tick(e, t + MIN_MS);
    rules_log(e, h, ORA_SRC, "ORA-00257: archiver error", t + 5 * MIN_MS);
    rules_eng_tick(e, t + 11 * MIN_MS);
    assert_true(is_open(st, ORA_FP));
    rules_eng_tick(e, t + 15 * MIN_MS);
    assert_false(is_open(st, ORA_FP));
    assert_int_equal(nstates_of(st), 0);

    /* a reload keeps the firing state (not its matches): a window after it, resolved */
    t = T0 + 3 * HOUR_MS;
    rules_log(e, h, ORA_SRC, "ORA-07445: exception encountered", t);
    assert_true(is_open(st, ORA_FP));
    rules_eng_set(e, rs);
    rules_eng_tick(e, t + MIN_MS);
    assert_true(is_open(st, ORA_FP));
    rules_eng_tick(e, t + 11 * MIN_MS);
    assert_false(is_open(st, ORA_FP));
    assert_int_equal(nstates_of(st), 0);

    rules_eng_free(e);
    rules_free(rs);
    inc_close(st);
    free(path);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_for_and_recover_for_edges),
        cmocka_unit_test(test_hysteresis_one_incident),
        cmocka_unit_test(test_window_functions),
        cmocka_unit_test(test_empty_window_resolves_nothing),
        cmocka_unit_test(test_host_nodata),
        cmocka_unit_test(test_silent_host_suppresses_in_any_order),
        cmocka_unit_test(test_dependency_and_maintenance),
        cmocka_unit_test(test_log_pattern_count),
        cmocka_unit_test(test_line_share_and_check),
        cmocka_unit_test(test_line_mass_change),
        cmocka_unit_test(test_line_mass_change_not),
        cmocka_unit_test(test_forecast_linear_fill),
        cmocka_unit_test(test_restart_mid_for),
        cmocka_unit_test(test_restart_after_suppression_ended),
        cmocka_unit_test(test_log_window_runs_out_after_restart),
    };
    setenv("TZ", "UTC", 1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
