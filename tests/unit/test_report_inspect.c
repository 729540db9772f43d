/* SPDX-License-Identifier: Apache-2.0 */
/* Daily inspection report tests: a synthetic state directory for the inspection of
 * 2026-11-30 08:30 (UTC+8) written through the real stores with injected times (events.db with
 * the events schema written here), and the items, HTML and CSV the report makes of it, checked
 * against hand-computed answers. `WP_INSPECT_MAKE=DIR test_report_inspect` only writes the data
 * into DIR (tests/integration/test_report.sh runs the CLI on it). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* cmocka needs these first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <rrd.h>
#include <sqlite3.h>

#include "db.h"
#include "incident.h"
#include "lines.h"
#include "report_fixture.h"
#include "report_inspect.h"
#include "wp/err.h"
#include "wp/mem.h"

#define SEC  INT64_C(1000)
#define MIN  (60 * SEC)
#define HOUR (60 * MIN)
#define DAY  (24 * HOUR)
#define T    INT64_C(1795998600000) /* 2026-11-30T08:30:00+08:00, the inspection */
#define PREV (T - DAY)              /* the previous inspection */

static char g_dir[64];

/* ---- the synthetic data ---- */

static int64_t fire(struct inc_store *st, const char *fp, const char *rule, const char *host,
                    const char *summary, int64_t at)
{
    struct inc_signal s;
    int64_t id = 0;

    memset(&s, 0, sizeof(s));
    s.fingerprint = fp;
    s.rule = rule;
    s.host = host;
    s.impact = 2;
    s.urgency = 2;
    s.category = "general";
    s.summary = summary;
    s.runbook = "";
    s.values_json = "{}";
    assert_true(inc_fire(st, &s, at, &id) >= 0);
    return id;
}

static void make_incidents(const char *dir)
{
    char path[128];
    struct inc_store *st = NULL;

    snprintf(path, sizeof(path), "%s/incidents.db", dir);
    assert_int_equal(inc_open(path, NULL, &st), 0);
    /* 1: pmon down, open at the inspection */
    fire(st, "proc_down|db1|check=proc_ora_pmon", "proc_down", "db1", "ora_pmon down on db1",
         T - 2 * HOUR);
    /* 2: pmon down the day before, cleared: not linked */
    fire(st, "proc_gone|db1|check=proc_ora_pmon", "proc_gone", "db1", "old pmon problem",
         T - 30 * HOUR);
    assert_int_equal(inc_clear(st, "proc_gone|db1|check=proc_ora_pmon", T - 29 * HOUR), 0);
    /* 3: /u01 full, open */
    fire(st, "disk_full|db1|instance=/u01", "disk_full", "db1", "Disk /u01 on db1 is 93% full",
         T - 3 * HOUR);
    /* 4: line 8011 blocked, open */
    fire(st, "line_blocked|pbx1|line=8011", "line_blocked", "pbx1", "8011 blocked on pbx1",
         T - 2 * HOUR);
    /* 5: ORA- errors on db1, open */
    fire(st, "ora_errors|db1|source=/u01/alert_ORCL.log", "ora_errors", "db1", "ORA- errors on db1",
         T - 10 * MIN);
    /* 6: the backup of db1 too old, open */
    fire(st, "file_stale|db1|check=file_backup", "file_stale", "db1", "db1 backup is 30h old",
         T - 4 * HOUR);
    inc_close(st);
}

static void put(struct coll_lines *l, const char *obj, const char *grp, const char *state,
                int64_t at)
{
    assert_true(coll_lines_put(l, "pbx1", "pbx1", obj, grp, state, state, "", at) >= 0);
}

static void make_lines(const char *dir)
{
    struct coll_lines *l = rfx_lines_begin(dir);

    put(l, "8011", "ext", "idle", T - 3 * DAY);
    put(l, "8011", "ext", "blocked", T - 2 * HOUR - 10 * MIN); /* blocked 2 h 10 min */
    put(l, "8012", "ext", "idle", T - 3 * DAY);
    put(l, "8013", "ext", "idle", T - DAY);
    put(l, "8013", "ext", "blocked", T + 10 * MIN); /* after the inspection */
    put(l, "ivr1", "ivr", "in_use", T - 3 * DAY);
    put(l, "9999", "ext", "idle", T + HOUR); /* first seen after the inspection */
    rfx_lines_end(l);
}

static void make_agents(const char *dir)
{
    static const char *const hosts[] = {"db1", "web1", "pbx1", "new1"};

    for (size_t i = 0; i < 4; i++) {
        /* new1 enrolled after the inspection: not inspected */
        rfx_agent_put(dir, hosts[i], (i == 3 ? T + HOUR : T - 30 * DAY) / 1000, (T + DAY) / 1000);
    }
}

/* An RRD file with data sources ds[] at constant values v[], a row a minute over the two days
 * before the inspection and the hour after it. */
static void make_rrd(const char *dir, const char *agent, const char *file, uint32_t sid,
                     const char *grp, const char *inst, const char *const *ds, const double *v,
                     int nds)
{
    char path[256], rel[128], defs[4][64];
    const char *args[5];

    rfx_rrd_path(dir, agent, file, path, sizeof(path));
    for (int i = 0; i < nds; i++) {
        snprintf(defs[i], sizeof(defs[i]), "DS:%s:GAUGE:120:U:U", ds[i]);
        args[i] = defs[i];
    }
    args[nds] = "RRA:AVERAGE:0.5:1:4000";
    rrd_clear_error();
    int64_t t0 = T - 2 * DAY;
    assert_int_equal(rrd_create_r(path, 60, (time_t)(t0 / 1000 - 60), nds + 1, args), 0);
    enum { BATCH = 500 };
    static char bufs[BATCH][96];
    const char *argv[BATCH];
    int n = 0;
    for (int64_t t = t0; t <= T + HOUR; t += MIN) {
        int k = snprintf(bufs[n], sizeof(bufs[n]), "%lld", (long long)(t / 1000));
        for (int i = 0; i < nds; i++) {
            k += snprintf(bufs[n] + k, sizeof(bufs[n]) - (size_t)k, ":%.6f", v[i]);
        }
        argv[n] = bufs[n];
        if (++n == BATCH || t + MIN > T + HOUR) {
            assert_int_equal(rrd_update_r(path, NULL, n, argv), 0);
            n = 0;
        }
    }
    snprintf(rel, sizeof(rel), "%s/%s", agent, file);
    rfx_series_put(dir, agent, sid, grp, inst, ds, nds, rel, 60);
}

static void check(sqlite3 *h, const char *host, const char *name, int status, const char *output,
                  int64_t since, int64_t ts)
{
    char *sql = sqlite3_mprintf("INSERT INTO checks VALUES(%Q, %Q, %d, %Q, %lld, %lld)", host, name,
                                status, output, (long long)since, (long long)ts);
    rfx_exec(h, sql);
    sqlite3_free(sql);
}

static void hist(sqlite3 *h, const char *host, const char *name, int status, const char *output,
                 int64_t ts)
{
    char *sql = sqlite3_mprintf("INSERT INTO check_history(host, name, ts_ms, status, output)"
                                " VALUES(%Q, %Q, %lld, %d, %Q)",
                                host, name, (long long)ts, status, output);
    rfx_exec(h, sql);
    sqlite3_free(sql);
}

static void logev(sqlite3 *h, const char *host, int64_t ts, const char *rule, int sev,
                  const char *text)
{
    char *sql = sqlite3_mprintf("INSERT INTO log_events(host, ts_ms, source, rule, severity, text)"
                                " VALUES(%Q, %lld, '/u01/alert_ORCL.log', %Q, %d, %Q)",
                                host, (long long)ts, rule, sev, text);
    rfx_exec(h, sql);
    sqlite3_free(sql);
}

/* events.db with the schema of the collector's events store */
static void make_events(const char *dir)
{
    sqlite3 *h = rfx_events_db(dir);

    /* pmon: CRITICAL since 06:30 */
    check(h, "db1", "proc_ora_pmon", 2,
          "PROCS CRITICAL: 0 processes matching ora_pmon (expected 1..1)", T - 2 * HOUR, T - MIN);
    hist(h, "db1", "proc_ora_pmon", 0, "PROCS OK", T - 10 * DAY);
    hist(h, "db1", "proc_ora_pmon", 2, "PROCS CRITICAL", T - 2 * HOUR);
    /* the backup: CRITICAL since 04:30 */
    check(h, "db1", "file_backup", 2,
          "FILE CRITICAL: newest /backup/db1-2026-11-29.dmp is 30h old (max 26h), 1.2 GiB",
          T - 4 * HOUR, T - 5 * MIN);
    /* the login page: OK */
    check(h, "db1", "http_login", 0, "HTTP OK: 200 in 0.120 s", T - 10 * DAY, T - 30 * SEC);
    /* the database went CRITICAL an hour after the inspection: OK at the inspection */
    check(h, "db1", "mysql_main", 2, "MYSQL CRITICAL: connection refused", T + HOUR, T + 2 * HOUR);
    hist(h, "db1", "mysql_main", 0, "MYSQL OK: 1 ms", T - 3 * DAY);
    hist(h, "db1", "mysql_main", 2, "MYSQL CRITICAL: connection refused", T + HOUR);
    /* a check created after the inspection: not an item */
    check(h, "db1", "tcp_later", 0, "TCP OK", T + HOUR, T + HOUR);
    /* web1: a TCP check silent for 40 min */
    check(h, "web1", "tcp_app", 0, "TCP OK: 10.0.0.5:8080 in 1 ms", T - 5 * DAY, T - 40 * MIN);
    /* the hotline test call */
    check(h, "pbx1", "sipcall_hotline", 0, "SIPCALL OK: answered with audio", T - 5 * DAY,
          T - 2 * MIN);
    /* ORA- errors: one before the previous inspection, three since, one after */
    logev(h, "db1", PREV - 10 * MIN, "ora_internal", 3, "ORA-00600: internal error [old]");
    logev(h, "db1", PREV + HOUR, "ora_internal", 3, "ORA-00600: internal error [kdsgrp1]");
    logev(h, "db1", T - 2 * HOUR, "ora_eof", 2, "ORA-03113: end-of-file on channel");
    logev(h, "db1", T - 10 * MIN, "ora_internal", 3, "ORA-00600: internal error [kcbz]");
    logev(h, "db1", T - HOUR, "ora_space", 1, "ORA-01653: unable to extend (warning)");
    logev(h, "db1", T + 5 * MIN, "ora_internal", 3, "ORA-00600: after the inspection");
    sqlite3_close(h);
}

static void make_state(const char *dir)
{
    static const char *const df[] = {"used_pct", "inodes_used_pct"};
    static const char *const cpu[] = {"idle"};
    static const char *const mem[] = {"used", "total"};
    static const char *const load[] = {"load1"};
    static const char *const call[] = {"answer_s", "answered"};
    const double u01[] = {93, 12}, u02[] = {80, 50}, idle[] = {80}, memv[] = {2e9, 8e9};
    const double l1[] = {1.5}, hot[] = {3.2, 1};

    make_agents(dir);
    make_rrd(dir, "db1", "df-u01.rrd", 1, "df", "/u01", df, u01, 2);
    make_rrd(dir, "db1", "df-u02.rrd", 2, "df", "/u02", df, u02, 2);
    make_rrd(dir, "db1", "cpu-total.rrd", 3, "cpu", "total", cpu, idle, 1);
    make_rrd(dir, "db1", "mem.rrd", 4, "mem", "", mem, memv, 2);
    make_rrd(dir, "db1", "load.rrd", 5, "load", "", load, l1, 1);
    /* two cores (their files are not read) */
    rfx_series_put(dir, "db1", 6, "cpu", "0", cpu, 1, "db1/cpu-0.rrd", 60);
    rfx_series_put(dir, "db1", 7, "cpu", "1", cpu, 1, "db1/cpu-1.rrd", 60);
    make_rrd(dir, "pbx1", "sipcall-hotline.rrd", 8, "sipcall", "hotline", call, hot, 2);
    make_incidents(dir);
    make_lines(dir);
    make_events(dir);
}

static int setup(void **state)
{
    (void)state;
    return rfx_setup(g_dir, sizeof(g_dir), "wp-inspect", make_state);
}

static int teardown(void **state)
{
    (void)state;
    rfx_rmtree(g_dir);
    return 0;
}

/* ---- helpers ---- */

static struct insp_result *build(const char *lang)
{
    struct rep_period p, pp;
    struct rep_opts o;
    struct insp_result *r = NULL;
    char err[256] = "";

    memset(&o, 0, sizeof(o));
    o.lang = lang;
    assert_int_equal(rep_inspection_day("2026-11-30", 0, &p, &pp), 0);
    int rc = insp_build(g_dir, &p, &o, NULL, &r, err, sizeof(err));
    if (rc != 0) {
        fail_msg("insp_build: %s", err);
    }
    return r;
}

static const struct insp_item *item(const struct insp_result *r, const char *host, const char *name)
{
    for (size_t i = 0; i < r->n; i++) {
        if (strcmp(r->items[i].host, host) == 0 && strcmp(r->items[i].name, name) == 0) {
            return &r->items[i];
        }
    }
    fail_msg("no item %s / %s", host, name);
    return NULL;
}

static int has_item(const struct insp_result *r, const char *host, const char *name)
{
    for (size_t i = 0; i < r->n; i++) {
        if (strcmp(r->items[i].host, host) == 0 && strcmp(r->items[i].name, name) == 0) {
            return 1;
        }
    }
    return 0;
}

static char *html_of(const char *lang)
{
    struct rep_period p, pp;
    struct rep_opts o;
    struct rdoc *d = NULL;
    char err[256] = "";

    memset(&o, 0, sizeof(o));
    o.lang = lang;
    assert_int_equal(rep_inspection_day("2026-11-30", 0, &p, &pp), 0);
    assert_int_equal(rep_inspection_doc(g_dir, &p, &o, NULL, &d, err, sizeof(err)), 0);
    char *buf = rfx_html(d);
    rdoc_free(d);
    return buf;
}

/* ---- tests ---- */

static void days(void **state)
{
    struct rep_period p, pp;

    (void)state;
    assert_int_equal(rep_inspection_day("2026-11-30", 0, &p, &pp), 0);
    assert_int_equal(p.to_ms, T);
    assert_int_equal(p.from_ms, PREV);
    assert_int_equal(pp.to_ms, PREV);
    assert_string_equal(p.label, "2026-11-30");
    assert_string_equal(pp.label, "2026-11-29");
    assert_int_equal(rep_inspection_day("2026-11-30T09:15", 0, &p, &pp), 0);
    assert_int_equal(p.to_ms, T + 45 * MIN);
    assert_string_equal(p.label, "2026-11-30-0915");
    /* the default: today at 08:30 */
    assert_int_equal(rep_inspection_day(NULL, T + 5 * HOUR, &p, &pp), 0);
    assert_int_equal(p.to_ms, T);
    assert_int_equal(rep_inspection_day("07:00", T + 5 * HOUR, &p, &pp), 0);
    assert_int_equal(p.to_ms, T - 90 * MIN);
    /* the first of the month: since the last day of the month before */
    assert_int_equal(rep_inspection_day("2026-12-01", 0, &p, &pp), 0);
    assert_int_equal(p.from_ms, T);
    static const char *const bad[] = {
        "2026-02-30",       "2026-13-01", "2026-11-30T24:00", "26-11-30",
        "2026-11-30X08:30", "8:30",       "2026-11-3",        "x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(rep_inspection_day(bad[i], 0, &p, &pp), -EINVAL);
    }
}

static void limits(void **state)
{
    struct insp_limits l;
    char err[128];

    (void)state;
    insp_limits_default(&l);
    assert_true(l.disk_pct == 90 && l.warn_pct == 85 && l.load_per_core == 2);
    assert_int_equal(l.stale_ms, 15 * MIN);
    assert_int_equal(insp_limits_parse("disk=95,stale=30,load=1.5", &l, err, sizeof(err)), 0);
    assert_true(l.disk_pct == 95 && l.load_per_core == 1.5);
    assert_int_equal(l.stale_ms, 30 * MIN);
    assert_int_equal(insp_limits_parse("disk=101", &l, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "disk"));
    assert_int_equal(insp_limits_parse("disc=90", &l, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "unknown \"disc\""));
    assert_int_equal(insp_limits_parse("cpu", &l, err, sizeof(err)), -EINVAL);
}

static void host_items(void **state)
{
    (void)state;
    struct insp_result *r = build("en");
    const struct insp_item *it = NULL;

    /* db1, web1, pbx1 (new1 enrolled after the inspection); one site, pbx1 */
    assert_int_equal(r->hosts, 3);
    assert_int_equal(r->sites, 1);
    assert_false(has_item(r, "new1", "Agent connected"));

    it = item(r, "db1", "Disk space /u01");
    assert_int_equal(it->status, INSP_FAIL);
    assert_string_equal(it->evidence, "93.0 % used (limit 90 %)");
    assert_non_null(strstr(it->incidents, "#3 Disk /u01 on db1 is 93% full"));
    it = item(r, "db1", "Disk space /u02");
    assert_int_equal(it->status, INSP_PASS);
    assert_string_equal(it->evidence, "80.0 % used (limit 90 %)");
    assert_string_equal(it->incidents, "");
    it = item(r, "db1", "Inodes /u01");
    assert_int_equal(it->status, INSP_PASS);
    assert_string_equal(it->evidence, "12.0 % used (limit 90 %)");

    it = item(r, "db1", "CPU busy (last hour)");
    assert_int_equal(it->status, INSP_PASS);
    assert_string_equal(it->evidence, "average 20.0 %, peak 20.0 % (limit 90 %)");
    it = item(r, "db1", "Memory used (last hour)");
    assert_string_equal(it->evidence, "average 25.0 %, peak 25.0 % (limit 90 %)");
    it = item(r, "db1", "Load per core (last hour)");
    assert_int_equal(it->status, INSP_PASS);
    assert_string_equal(it->evidence,
                        "load1 average 1.50, peak 1.50 on 2 cores: 0.75 per core (limit 2.00)");

    /* the process check CRITICAL fails and links its open incident, not the cleared one */
    it = item(r, "db1", "Process ora_pmon");
    assert_int_equal(it->status, INSP_FAIL);
    assert_non_null(strstr(it->evidence, "CRITICAL since 2026-11-30 06:30: PROCS CRITICAL"));
    assert_string_equal(it->incidents, "#1 ora_pmon down on db1");

    it = item(r, "db1", "Web page login");
    assert_int_equal(it->status, INSP_PASS);
    /* CRITICAL an hour after the inspection: OK at it, from the history */
    it = item(r, "db1", "Database main");
    assert_int_equal(it->status, INSP_PASS);
    assert_string_equal(it->evidence, "OK since 2026-11-27 08:30: MYSQL OK: 1 ms");
    assert_false(has_item(r, "db1", "TCP port later"));

    /* a stale check */
    it = item(r, "web1", "TCP port app");
    assert_int_equal(it->status, INSP_FAIL);
    assert_non_null(strstr(it->evidence, "no result since 2026-11-30 07:50"));

    /* 3 errors since yesterday's 08:30: not the one before, not the one after, not the warning */
    it = item(r, "db1", "New log errors since the last inspection");
    assert_int_equal(it->status, INSP_FAIL);
    assert_non_null(strstr(it->evidence, "errors: 3 (ora_internal 2, ora_eof 1), warnings: 1"));
    assert_non_null(strstr(it->evidence, "last 2026-11-30 08:20 /u01/alert_ORCL.log: ORA-00600"));
    assert_string_equal(it->incidents, "#5 ORA- errors on db1");
    it = item(r, "web1", "New log errors since the last inspection");
    assert_int_equal(it->status, INSP_PASS);

    /* the hotline call answered in 3.2 s */
    it = item(r, "pbx1", "Test call hotline");
    assert_int_equal(it->status, INSP_PASS);
    assert_non_null(strstr(it->evidence, "answered in 3.2 s (call at 2026-11-30 08:30)"));

    it = item(r, "db1", "Agent connected");
    assert_int_equal(it->status, INSP_PASS);
    insp_result_free(r);
}

static void site_items(void **state)
{
    (void)state;
    struct insp_result *r = build("en");
    const struct insp_item *it = item(r, "pbx1", "Lines in service (ext)");

    assert_int_equal(it->site, 1);
    assert_int_equal(it->status, INSP_FAIL);
    /* 8013 was blocked only after the inspection, 9999 first seen after it */
    assert_string_equal(it->evidence, "2 of 3 in service; 8011 blocked for 2 h 10 min");
    assert_string_equal(it->incidents, "#4 8011 blocked on pbx1");
    it = item(r, "pbx1", "Lines in service (ivr)");
    assert_int_equal(it->status, INSP_PASS);
    assert_string_equal(it->evidence, "1 of 1 in service");
    insp_result_free(r);
}

static void counts_and_order(void **state)
{
    (void)state;
    struct insp_result *r = build("en");
    size_t fail = 0;

    for (size_t i = 0; i < r->n; i++) {
        fail += r->items[i].status == INSP_FAIL;
        if (i > 0) {
            const struct insp_item *a = &r->items[i - 1], *b = &r->items[i];
            assert_true(a->site < b->site || (a->site == b->site && strcmp(a->host, b->host) <= 0));
        }
    }
    /* /u01, the backup, pmon, log errors, tcp_app, ext lines */
    assert_int_equal(fail, 6);
    assert_int_equal(r->fail, 6);
    assert_int_equal(r->pass + r->fail + r->na, r->n);
    insp_result_free(r);
}

/* A check of the files probe (file_<name>) is a backup or log file item, after the file
 * systems and before the processes, and links the incidents of its check. */
static void file_items(void **state)
{
    (void)state;
    struct insp_result *r = build("en");
    const struct insp_item *it = item(r, "db1", "Backup/log file backup");
    size_t k = (size_t)(it - r->items);

    assert_int_equal(it->status, INSP_FAIL);
    assert_string_equal(it->evidence, "CRITICAL since 2026-11-30 04:30: FILE CRITICAL: newest "
                                      "/backup/db1-2026-11-29.dmp is 30h old (max 26h), 1.2 GiB");
    assert_string_equal(it->incidents, "#6 db1 backup is 30h old");
    assert_true(k > 0 && k + 1 < r->n);
    assert_string_equal(r->items[k - 1].name, "Inodes /u02");
    assert_string_equal(r->items[k + 1].name, "Process ora_pmon");
    insp_result_free(r);

    r = build("zh-CN");
    it = item(r, "db1", "备份/日志文件 backup");
    assert_int_equal(it->status, INSP_FAIL);
    assert_non_null(strstr(it->evidence, "严重，自 2026-11-30 04:30：FILE CRITICAL: newest"));
    insp_result_free(r);
}

static void html_rerun_and_zh(void **state)
{
    (void)state;
    char *a = html_of("en");
    char *b = html_of("en");

    assert_string_equal(a, b);
    assert_non_null(strstr(a, "Watchpost daily inspection 2026-11-30 08:30"));
    /* the failed items table comes before the check list */
    char *failed = strstr(a, "2. Failed items");
    char *list = strstr(a, "4. Check list");
    assert_non_null(failed);
    assert_non_null(list);
    assert_true(strstr(failed, "93.0 % used") < list);
    free(a);
    free(b);
    char *z = html_of("zh-CN");
    assert_non_null(strstr(z, "lang=\"zh-CN\""));
    assert_non_null(strstr(z, "Watchpost 每日巡检 2026-11-30 08:30"));
    assert_non_null(strstr(z, "不通过"));
    assert_non_null(strstr(z, "磁盘空间 /u01"));
    assert_non_null(strstr(z, "已用 93.0%（上限 90%）"));
    assert_non_null(strstr(z, "8011 阻塞 已 2小时10分"));
    assert_null(strstr(z, "Disk space"));
    free(z);
}

static void csv_items(void **state)
{
    (void)state;
    struct rep_period p, pp;
    struct rdoc *d = NULL;
    char err[256], out[128], path[200];

    assert_int_equal(rep_inspection_day("2026-11-30", 0, &p, &pp), 0);
    assert_int_equal(rep_inspection_doc(g_dir, &p, NULL, NULL, &d, err, sizeof(err)), 0);
    snprintf(out, sizeof(out), "%s/csv", g_dir);
    mkdir(out, 0755);
    /* one CSV table: the items */
    assert_int_equal(rdoc_write_csv_dir(d, out, "i", err, sizeof(err)), 1);
    rdoc_free(d);
    snprintf(path, sizeof(path), "%s/i-items.csv", out);
    FILE *f = fopen(path, "re");
    assert_non_null(f);
    char line[1024];
    assert_non_null(fgets(line, sizeof(line), f));
    assert_string_equal(
        line, "\xef\xbb\xbf\"Host\",\"Item\",\"Status\",\"Evidence\",\"Open incidents\"\r\n");
    int found = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strcmp(line, "\"db1\",\"Disk space /u01\",\"FAIL\",\"93.0 % used (limit 90 %)\","
                         "\"#3 Disk /u01 on db1 is 93% full\"\r\n") == 0) {
            found = 1;
        }
    }
    fclose(f);
    assert_true(found);
}

static void no_events(void **state)
{
    (void)state;
    char a[128], b[128];

    snprintf(a, sizeof(a), "%s/events.db", g_dir);
    snprintf(b, sizeof(b), "%s/events.db.away", g_dir);
    assert_int_equal(rename(a, b), 0);
    struct insp_result *r = build("en");
    assert_int_equal(r->have_events, 0);
    const struct insp_item *it = item(r, "db1", "Checks and log events");
    assert_int_equal(it->status, INSP_NA);
    assert_string_equal(it->evidence, "no data: no events.db in the state directory");
    /* the stores still there still give their items */
    assert_int_equal(item(r, "db1", "Disk space /u01")->status, INSP_FAIL);
    insp_result_free(r);
    assert_int_equal(rename(b, a), 0);
}

static void empty_state(void **state)
{
    (void)state;
    char dir[64];
    struct rep_period p, pp;
    struct insp_result *r = NULL;
    struct rdoc *d = NULL;
    char err[256];

    assert_int_equal(rfx_setup(dir, sizeof(dir), "wp-inspect-empty", NULL), 0);
    assert_int_equal(rep_inspection_day("2026-11-30", 0, &p, &pp), 0);
    assert_int_equal(insp_build(dir, &p, NULL, NULL, &r, err, sizeof(err)), 0);
    assert_int_equal(r->n, 0);
    d = insp_doc(r, NULL);
    assert_non_null(d);
    rdoc_free(d);
    insp_result_free(r);
    /* a damaged events.db is an error with the file named */
    char path[128];
    snprintf(path, sizeof(path), "%s/events.db", dir);
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    fputs("not a database, just text that is long enough to look like a header.......", f);
    fclose(f);
    assert_true(insp_build(dir, &p, NULL, NULL, &r, err, sizeof(err)) < 0);
    assert_null(r);
    assert_non_null(strstr(err, "events.db"));
    remove(path);
    rmdir(dir);
}

int main(void)
{
    rfx_tz();
    if (rfx_make_only("WP_INSPECT_MAKE", make_state)) {
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(days),
        cmocka_unit_test(limits),
        cmocka_unit_test(host_items),
        cmocka_unit_test(site_items),
        cmocka_unit_test(counts_and_order),
        cmocka_unit_test(file_items),
        cmocka_unit_test(html_rerun_and_zh),
        cmocka_unit_test(csv_items),
        cmocka_unit_test(no_events),
        cmocka_unit_test(empty_state),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
