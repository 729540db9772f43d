/* SPDX-License-Identifier: Apache-2.0 */
/* Report tests: a synthetic fortnight (2026-W46 and W47, UTC+8) written through the real
 * stores with injected times, and the figures, findings, HTML and CSV the report makes of it,
 * checked against hand-computed answers. `WP_REPORT_MAKE=DIR test_report` only writes the
 * data into DIR (tests/integration/test_report.sh runs the CLI on it); `WP_REPORT_BIG=DIR
 * test_report` writes a 1,000-host fortnight for the timing (tests/bench/report.sh). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
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
#include "outbox.h"
#include "report.h"
#include "report_fixture.h"
#include "seats.h"
#include "wp/err.h"
#include "wp/mem.h"

#define SEC  INT64_C(1000)
#define MIN  (60 * SEC)
#define HOUR (60 * MIN)
#define DAY  (24 * HOUR)
#define F    INT64_C(1794758400000) /* 2026-11-16T00:00:00+08:00, Monday of 2026-W47 */
#define PF   (F - 7 * DAY)          /* 2026-W46 */

static char g_dir[64];

/* ---- the synthetic data ---- */

static void sig(struct inc_signal *s, const char *rule, const char *host, int imp, int urg,
                const char *cat, const char *summary)
{
    static char fp[256];

    snprintf(fp, sizeof(fp), "%s|%s", rule, host);
    memset(s, 0, sizeof(*s));
    s->fingerprint = fp;
    s->rule = rule;
    s->host = host;
    s->impact = imp;
    s->urgency = urg;
    s->category = cat;
    s->summary = summary;
    s->runbook = "Check the thing.\n检查。";
    s->values_json = "{\"value\": 97.5}";
}

static int64_t fire(struct inc_store *st, const char *rule, const char *host, int imp, int urg,
                    const char *cat, int64_t at)
{
    struct inc_signal s;
    char summary[128];
    int64_t id = 0;

    snprintf(summary, sizeof(summary), "%s on %s", rule, host);
    sig(&s, rule, host, imp, urg, cat, summary);
    assert_true(inc_fire(st, &s, at, &id) >= 0);
    return id;
}

static void clear(struct inc_store *st, const char *rule, const char *host, int64_t at)
{
    char fp[256];

    snprintf(fp, sizeof(fp), "%s|%s", rule, host);
    assert_int_equal(inc_clear(st, fp, at), 0);
}

static void make_incidents(const char *dir)
{
    char path[128], err[256];
    struct inc_store *st = NULL;
    int64_t id = 0, t = 0;

    snprintf(path, sizeof(path), "%s/incidents.db", dir);
    assert_int_equal(inc_open(path, NULL, &st), 0);
    /* previous week: db1 silent 30 min (P1, not acknowledged: response breached) */
    fire(st, "host_silent", "db1", 1, 1, "availability", PF + DAY);
    clear(st, "host_silent", "db1", PF + DAY + 30 * MIN);
    /* 1: db1 silent exactly 1 h (P1), escalated once (response deadline), resolved by rule */
    fire(st, "host_silent", "db1", 1, 1, "availability", F + DAY);
    assert_int_equal(inc_tick(st, F + DAY + 20 * MIN), 1);
    clear(st, "host_silent", "db1", F + DAY + HOUR);
    /* 2: app1 silent 2 h inside a maintenance window (P4) */
    fire(st, "host_silent", "app1", 3, 3, "availability", F + 2 * DAY);
    assert_int_equal(
        inc_suppress(st, "host_silent|app1", 1, "maintenance Sunday patching", F + 2 * DAY), 0);
    clear(st, "host_silent", "app1", F + 2 * DAY + 2 * HOUR);
    /* 3: disk on db1 (P2): acked after 10 min, resolved after 50 min */
    t = F + 3 * DAY + 10 * HOUR;
    id = fire(st, "disk_full", "db1", 1, 2, "capacity", t);
    assert_int_equal(
        inc_ack(st, id, "Li Wei", "cleaning archive logs", t + 10 * MIN, err, sizeof(err)), 0);
    assert_int_equal(
        inc_resolve(st, id, "Li Wei", "archived logs cleaned", t + 50 * MIN, err, sizeof(err)), 0);
    /* 4: cpu on web1 (P3): acked after 5 h (response breached), resolved after 20 h */
    t = F + 4 * DAY + 9 * HOUR;
    id = fire(st, "cpu_high", "web1", 2, 2, "performance", t);
    assert_int_equal(inc_ack(st, id, "Zhang San", "", t + 5 * HOUR, err, sizeof(err)), 0);
    assert_int_equal(
        inc_resolve(st, id, "Zhang San", "batch job moved", t + 20 * HOUR, err, sizeof(err)), 0);
    /* 5: login page on web1 (P2): acked after 20 min, cleared after 9 h (resolve breached) */
    t = F + 5 * DAY + 8 * HOUR;
    id = fire(st, "login_page", "web1", 1, 2, "availability", t);
    assert_int_equal(inc_ack(st, id, "Li Wei", "tomcat restarting", t + 20 * MIN, err, sizeof(err)),
                     0);
    clear(st, "login_page", "web1", t + 9 * HOUR);
    /* 6: line blocked on pbx1 (P3), still open at the week's end: response breached */
    fire(st, "line_blocked", "pbx1", 2, 2, "telephony", F + 6 * DAY + 10 * HOUR);
    /* 7: sip registration flapping on pbx1 (P4): open at the end, resolve pending */
    t = F + 6 * DAY + 12 * HOUR;
    for (int i = 0; i < 7; i++) {
        if (i % 2 == 0) {
            fire(st, "sip_reg", "pbx1", 3, 3, "telephony", t + i * MIN);
        } else {
            clear(st, "sip_reg", "pbx1", t + i * MIN);
        }
    }
    inc_close(st);

    /* one dead-letter notification in the week */
    struct outbox *ob = NULL;
    sqlite3 *h = NULL;
    assert_int_equal(outbox_open(path, NULL, &ob), 0);
    assert_int_equal(outbox_remote_put(ob, "rt", 4, "RT#1234", "linked"), 0);
    assert_int_equal(outbox_remote_put(ob, "jira", 5, "", "creating"), 0);
    outbox_close(ob);
    assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
    char *sql = wp_xasprintf(
        "INSERT INTO outbox(event_id, dest, incident_id, inc_key, event, seq, state, created_ms,"
        " next_ms, attempts, last_code, last_error, ctx) VALUES('mail-1-9', 'noc-mail', 1, 'k',"
        " 'trigger', 1, 'dead', %" PRId64 ", 0, 8, 550, 'mailbox unavailable', '{}')",
        F + DAY + MIN);
    assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    free(sql);
    sqlite3_close(h);
}

static void put(struct coll_lines *l, const char *obj, const char *grp, const char *state,
                int64_t at)
{
    assert_true(coll_lines_put(l, "pbx1", "pbx1", obj, grp, state, state, "", at) >= 0);
}

static void put_raw(struct coll_lines *l, const char *obj, const char *state, const char *raw,
                    int64_t at)
{
    assert_true(coll_lines_put(l, "pbx1", "pbx1", obj, "ext", state, raw, "", at) >= 0);
}

static void make_lines(const char *dir)
{
    struct coll_lines *l = rfx_lines_begin(dir);

    /* 8011: blocked once in W46, three times 20 min in W47 */
    put(l, "8011", "ext", "idle", PF + HOUR);
    put(l, "8011", "ext", "blocked", PF + 2 * DAY + 10 * HOUR);
    put(l, "8011", "ext", "idle", PF + 2 * DAY + 10 * HOUR + 30 * MIN);
    for (int d = 1; d <= 5; d += 2) {
        put(l, "8011", "ext", "blocked", F + d * DAY + 10 * HOUR);
        put(l, "8011", "ext", "idle", F + d * DAY + 10 * HOUR + 20 * MIN);
    }
    /* 8012: out of service for 48 h */
    put(l, "8012", "ext", "idle", PF);
    put(l, "8012", "ext", "out_of_service", F + 2 * DAY);
    put(l, "8012", "ext", "idle", F + 4 * DAY);
    /* 8013: first reported half-way through the week */
    put(l, "8013", "ext", "idle", F + 3 * DAY + 12 * HOUR);
    /* an IVR port in use all along */
    put(l, "ivr1", "ivr", "in_use", PF);
    /* 8014, a kamreg extension: registration lost once in W46, twice in W47 (the link lost
     * in between a loss and the next "not registered" is no recovery) */
    put_raw(l, "8014", "idle", "registered", PF);
    put_raw(l, "8014", "unavailable", "expired", PF + 3 * DAY);
    put_raw(l, "8014", "idle", "registered", PF + 3 * DAY + HOUR);
    put_raw(l, "8014", "unavailable", "expired", F + DAY);
    put_raw(l, "8014", "idle", "registered", F + DAY + 30 * MIN);
    put_raw(l, "8014", "unavailable", "not registered", F + 2 * DAY);
    put_raw(l, "8014", "unknown", "link lost", F + 2 * DAY + 10 * MIN);
    put_raw(l, "8014", "unavailable", "not registered", F + 2 * DAY + 20 * MIN);
    put_raw(l, "8014", "idle", "registered", F + 2 * DAY + 40 * MIN);
    /* sbc1, a sipping target (the registry says so): no answer once in W47 */
    put_raw(l, "sbc1", "idle", "200 OK", F);
    put_raw(l, "sbc1", "unavailable", "no answer", F + 5 * DAY);
    put_raw(l, "sbc1", "idle", "200 OK", F + 5 * DAY + 15 * MIN);

    struct coll_seats *s = coll_lines_seats(l);
    /* 8011: Monday 08:30-17:30 in two queues with a lunch pause, Tuesday 08:47-17:30 */
    assert_int_equal(
        coll_seats_put(s, "pbx1", "8011", "q1", "login", NULL, F + 8 * HOUR + 30 * MIN, 0, 0), 1);
    assert_int_equal(
        coll_seats_put(s, "pbx1", "8011", "q2", "login", NULL, F + 8 * HOUR + 30 * MIN, 0, 0), 1);
    assert_int_equal(coll_seats_put(s, "pbx1", "8011", "q1", "pause", "lunch", F + 12 * HOUR, 0, 0),
                     1);
    assert_int_equal(coll_seats_put(s, "pbx1", "8011", "q1", "unpause", NULL, F + 13 * HOUR, 0, 0),
                     1);
    assert_int_equal(
        coll_seats_put(s, "pbx1", "8011", "q1", "logout", NULL, F + 17 * HOUR + 30 * MIN, 0, 0), 1);
    assert_int_equal(
        coll_seats_put(s, "pbx1", "8011", "q2", "logout", NULL, F + 17 * HOUR + 30 * MIN, 0, 0), 1);
    assert_int_equal(
        coll_seats_put(s, "pbx1", "8011", "q1", "login", NULL, F + DAY + 8 * HOUR + 47 * MIN, 0, 0),
        1);
    assert_int_equal(coll_seats_put(s, "pbx1", "8011", "q1", "logout", NULL,
                                    F + DAY + 17 * HOUR + 30 * MIN, 0, 0),
                     1);
    /* 8012: logged in Sunday 20:00, still logged in at the week's end */
    assert_int_equal(
        coll_seats_put(s, "pbx1", "8012", "q1", "login", NULL, F + 6 * DAY + 20 * HOUR, 0, 0), 1);
    rfx_lines_end(l);
}

static void make_registry(const char *dir)
{
    static const char *const hosts[] = {"web1", "db1", "app1"};

    for (size_t i = 0; i < 3; i++) {
        rfx_agent_put(dir, hosts[i], PF / 1000, F / 1000 + 7 * 86400);
    }
}

/* A series in the registry (watchpost.db) of agent with one or two fields. */
static void register_series(const char *dir, const char *agent, uint32_t sid, const char *grp,
                            const char *inst, const char *file, const char *ds, const char *ds2,
                            uint32_t step)
{
    const char *fields[2] = {ds, ds2};
    char rel[128];

    snprintf(rel, sizeof(rel), "%s/%s", agent, file);
    rfx_series_put(dir, agent, sid, grp, inst, fields, ds2 != NULL ? 2 : 1, rel, step);
}

/* One RRD file of data source ds (and ds2 at a constant v2, when not NULL), a row a minute
 * from PF to the end of W47, value(t). */
static void make_rrd(const char *dir, const char *agent, const char *file, const char *grp,
                     const char *inst, const char *ds, uint32_t sid, double (*value)(int64_t),
                     const char *ds2, double v2)
{
    char path[256], def[64], def2[64];
    const char *args[3];

    rfx_rrd_path(dir, agent, file, path, sizeof(path));
    snprintf(def, sizeof(def), "DS:%s:GAUGE:120:U:U", ds);
    snprintf(def2, sizeof(def2), "DS:%s:GAUGE:120:U:U", ds2 != NULL ? ds2 : "");
    args[0] = def;
    args[1] = "RRA:AVERAGE:0.5:1:30000";
    args[2] = def2;
    rrd_clear_error();
    assert_int_equal(rrd_create_r(path, 60, (time_t)(PF / 1000 - 60), ds2 != NULL ? 3 : 2, args),
                     0);
    enum { BATCH = 500 };
    static char bufs[BATCH][80];
    const char *argv[BATCH];
    int n = 0;
    for (int64_t t = PF + MIN; t <= F + 7 * DAY; t += MIN) {
        if (ds2 != NULL) {
            snprintf(bufs[n], sizeof(bufs[n]), "%lld:%.6f:%.6f", (long long)(t / 1000), value(t),
                     v2);
        } else {
            snprintf(bufs[n], sizeof(bufs[n]), "%lld:%.6f", (long long)(t / 1000), value(t));
        }
        argv[n] = bufs[n];
        if (++n == BATCH || t + MIN > F + 7 * DAY) {
            assert_int_equal(rrd_update_r(path, NULL, n, argv), 0);
            n = 0;
        }
    }

    register_series(dir, agent, sid, grp, inst, file, ds, ds2, 60);
}

/* db1: CPU 10 % busy in W46; 20 % in W47 but 100 % for one hour */
static double cpu_idle(int64_t t)
{
    if (t <= F) {
        return 90;
    }
    return t > F + 2 * DAY + 10 * HOUR && t <= F + 2 * DAY + 11 * HOUR ? 0 : 80;
}

/* db1 memory: 4 of 8 GB used in W46, 2 in W47 */
static double mem_used(int64_t t)
{
    return t <= F ? 4e9 : 2e9;
}

/* db1 /u02: 40 % used in W46, filling from 60 % to 90 % during W47 (30 / 7 % a day) */
static double u02_used(int64_t t)
{
    return t <= F ? 40 : 60.0 + 30.0 * (double)(t - F) / (double)(7 * DAY);
}

/* db1 /u01: 50 % used in W46, 92 % in W47 */
static double u01_used(int64_t t)
{
    return t <= F ? 50 : 92;
}

/* Hotline test calls of target "ivr" from app1, one every 10 minutes on a 5-minute step
 * (the row before each call unknown, as the collector writes a gap): in W46 10 calls all
 * answered in 2.1 s; in W47 10 calls, 9 answered in 2.0, 2.1, ... 2.7 and 9.8 s, one not
 * answered. */
static void make_calls(const char *dir)
{
    char path[256];
    const char *args[] = {"DS:answered:GAUGE:600:U:U", "DS:answer_s:GAUGE:600:U:U",
                          "RRA:AVERAGE:0.5:1:5000"};
    static const double w47[] = {2.0, 2.1, 2.2, 2.3, 2.4, 2.5, 2.6, 2.7, 9.8, NAN};

    rfx_rrd_path(dir, "app1", "sipcall-ivr.rrd", path, sizeof(path));
    rrd_clear_error();
    assert_int_equal(rrd_create_r(path, 300, (time_t)(PF / 1000 - 300), 3, args), 0);
    for (int w = 0; w < 2; w++) {
        for (int k = 1; k <= 10; k++) {
            int64_t t = (w == 0 ? PF : F) + DAY + k * 10 * MIN;
            char a[80], b[80];
            const char *argv[2] = {a, b};
            double v = w == 0 ? 2.1 : w47[k - 1];
            snprintf(a, sizeof(a), "%lld:U:U", (long long)(t / 1000 - 300));
            if (isnan(v)) {
                snprintf(b, sizeof(b), "%lld:0:U", (long long)(t / 1000));
            } else {
                snprintf(b, sizeof(b), "%lld:1:%.1f", (long long)(t / 1000), v);
            }
            assert_int_equal(rrd_update_r(path, NULL, 2, argv), 0);
        }
    }
    register_series(dir, "app1", 1, "sipcall", "ivr", "sipcall-ivr.rrd", "answered", "answer_s",
                    300);
}

/* db1's oracle: 100 % of a core in W46, 150 % in W47 but 300 % for one hour; 2 GiB */
static double oracle_cpu(int64_t t)
{
    if (t <= F) {
        return 100;
    }
    return t > F + 3 * DAY && t <= F + 3 * DAY + HOUR ? 300 : 150;
}

static double java_cpu(int64_t t)
{
    (void)t;
    return 20;
}

/* Log events in events.db, made with the schema the collector uses. */
static void make_events(const char *dir)
{
    sqlite3 *h = rfx_events_db(dir);

    static const struct {
        const char *host, *rule;
        int sev;
        int64_t at;
        const char *text;
    } ev[] = {
        /* W47: 5 ORA-00600 at different times, 2 ORA-01555, 3 out of memory on web1 */
        {"db1", "ora_600", 3, F + HOUR,
         "ORA-00600: internal error code, arguments: [kcbz] at 12:03"},
        {"db1", "ora_600", 3, F + 2 * HOUR,
         "ORA-00600: internal error code, arguments: [kcbz] at 12:17"},
        {"db1", "ora_600", 3, F + DAY,
         "ORA-00600: internal error code,  arguments: [kcbz] at 9:41"},
        {"db1", "ora_600", 3, F + 2 * DAY,
         "ORA-00600: internal error code, arguments: [kcbz] at 23:59"},
        {"db1", "ora_600", 3, F + 7 * DAY - 1,
         "ORA-00600: internal error code, arguments: [kcbz] at 0:00"},
        {"db1", "ora_1555", 2, F + 3 * DAY,
         "ORA-01555: snapshot too old: rollback segment number 12"},
        {"db1", "ora_1555", 2, F + 4 * DAY,
         "ORA-01555: snapshot too old: rollback segment number 7"},
        {"web1", "oom", 1, F + 5 * DAY, "java.lang.OutOfMemoryError: Java heap space"},
        {"web1", "oom", 1, F + 5 * DAY + MIN, "java.lang.OutOfMemoryError: Java heap space"},
        {"web1", "oom", 1, F + 5 * DAY + 2 * MIN, "java.lang.OutOfMemoryError: Java heap space"},
        /* W46: 2 ORA-00600 (one in its last millisecond); one just after W47 */
        {"db1", "ora_600", 3, PF + DAY,
         "ORA-00600: internal error code, arguments: [kcbz] at 1:00"},
        {"db1", "ora_600", 3, F - 1, "ORA-00600: internal error code, arguments: [kcbz] at 23:59"},
        {"db1", "ora_600", 3, F + 7 * DAY,
         "ORA-00600: internal error code, arguments: [kcbz] at 0:00"},
    };
    for (size_t i = 0; i < sizeof(ev) / sizeof(ev[0]); i++) {
        char *sql =
            sqlite3_mprintf("INSERT INTO log_events(host, ts_ms, source, rule, severity,"
                            " text) VALUES(%Q, %lld, 'alert.log', %Q, %d, %Q)",
                            ev[i].host, (long long)ev[i].at, ev[i].rule, ev[i].sev, ev[i].text);
        assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_free(sql);
    }
    sqlite3_close(h);
}

static void make_state(const char *dir)
{
    make_registry(dir);
    make_rrd(dir, "db1", "cpu-total.rrd", "cpu", "total", "idle", 1, cpu_idle, NULL, 0);
    make_rrd(dir, "db1", "df-u01.rrd", "df", "/u01", "used_pct", 2, u01_used, NULL, 0);
    make_rrd(dir, "db1", "mem.rrd", "mem", "", "used", 3, mem_used, "total", 8e9);
    make_rrd(dir, "db1", "df-u02.rrd", "df", "/u02", "used_pct", 4, u02_used, NULL, 0);
    make_rrd(dir, "db1", "proc-oracle.rrd", "proc", "oracle", "cpu_pct", 5, oracle_cpu, "rss_bytes",
             2147483648.0);
    make_rrd(dir, "web1", "proc-java.rrd", "proc", "java", "cpu_pct", 1, java_cpu, "rss_bytes",
             536870912.0);
    make_calls(dir);
    /* pbx1's registry entries: 8014 a kamreg extension, sbc1 a sipping target */
    register_series(dir, "pbx1", 1, "kamreg_ext", "kam/8014", "kamreg_ext-8014.rrd", "registered",
                    "expires_s", 60);
    register_series(dir, "pbx1", 2, "sipping", "sbc1", "sipping-sbc1.rrd", "up", "rtt_s", 10);
    make_events(dir);
    make_incidents(dir);
    make_lines(dir);
}

/* ---- the 1,000-host fortnight for the timing (WP_REPORT_BIG=DIR; docs/PERFORMANCE.md) ---- */

#define BIG_HOSTS 1000
#define BIG_STEP  300 /* s: the 5-minute rows a week's report reads */

static uint32_t big_rand(uint32_t *x)
{
    *x = *x * 1103515245u + 12345u;
    return (*x >> 8) & 0xffffff;
}

/* An RRD file at step BIG_STEP from PF to the end of W47 with the collector's default archives
 * at that step (5-minute average and maximum for 32 days, hourly for 400), fields nf, value
 * fn(variant, field, t). */
static void big_rrd(const char *path, const char *const *fields, int nf, int variant,
                    double (*fn)(int, int, int64_t))
{
    char defs[4][64];
    const char *args[8];
    int na = 0;

    for (int i = 0; i < nf; i++) {
        snprintf(defs[i], sizeof(defs[i]), "DS:%s:GAUGE:%d:U:U", fields[i], 2 * BIG_STEP);
        args[na++] = defs[i];
    }
    args[na++] = "RRA:AVERAGE:0.5:1:9216";
    args[na++] = "RRA:MAX:0.5:1:9216";
    args[na++] = "RRA:AVERAGE:0.5:12:9600";
    rrd_clear_error();
    assert_int_equal(rrd_create_r(path, BIG_STEP, (time_t)(PF / 1000 - BIG_STEP), na, args), 0);
    enum { BATCH = 512 };
    static char bufs[BATCH][128];
    const char *argv[BATCH];
    int n = 0;
    for (int64_t t = PF + BIG_STEP * SEC; t <= F + 7 * DAY; t += BIG_STEP * SEC) {
        int o = snprintf(bufs[n], sizeof(bufs[n]), "%lld", (long long)(t / 1000));
        for (int i = 0; i < nf; i++) {
            double v = fn(variant, i, t);
            o += isnan(v) ? snprintf(bufs[n] + o, sizeof(bufs[n]) - (size_t)o, ":U")
                          : snprintf(bufs[n] + o, sizeof(bufs[n]) - (size_t)o, ":%.3f", v);
        }
        argv[n] = bufs[n];
        if (++n == BATCH || t + BIG_STEP * SEC > F + 7 * DAY) {
            assert_int_equal(rrd_update_r(path, NULL, n, argv), 0);
            n = 0;
        }
    }
}

/* Values that vary with the variant (0..9) and the time of day. */
static double big_value(int variant, int field, int64_t t)
{
    int64_t m = (t / MIN) % (24 * 60);
    double day = m >= 8 * 60 && m < 18 * 60 ? 1.0 : 0.3;
    switch (field) {
    case 0:
        return 100.0 - (10.0 + 8.0 * variant) * day; /* idle, or used_pct, or cpu_pct */
    default:
        return 1e9 * (1.0 + variant) * (0.8 + 0.2 * day);
    }
}

static double big_df(int variant, int field, int64_t t)
{
    (void)field;
    return 40.0 + 5.0 * variant + 3.0 * (double)(t - PF) / (double)DAY;
}

static double big_mem(int variant, int field, int64_t t)
{
    return field == 0 ? big_value(variant, 1, t) : 16e9;
}

static double big_proc(int variant, int field, int64_t t)
{
    return field == 0 ? 100.0 - big_value(variant, 0, t) : big_value(variant, 1, t) / 4;
}

/* A test call every 10 minutes (a row between them unknown); variant 0 answers slowly in W47
 * and misses one call in 20. */
static double big_call(int variant, int field, int64_t t)
{
    int64_t k = t / (BIG_STEP * SEC);
    if (k % 2 == 1) {
        return NAN;
    }
    int missed = variant == 0 && t > F && (k / 2) % 20 == 0;
    if (field == 0) {
        return missed ? 0 : 1;
    }
    return missed ? NAN : (variant == 0 && t > F ? 9.0 : 2.0) + 0.1 * (double)((k / 2) % 7);
}

static void copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    char buf[65536];
    size_t n = 0;

    assert_non_null(a);
    assert_non_null(b);
    while ((n = fread(buf, 1, sizeof(buf), a)) > 0) {
        assert_int_equal(fwrite(buf, 1, n, b), n);
    }
    fclose(a);
    assert_int_equal(fclose(b), 0);
}

static void make_big(const char *dir)
{
    static const char *const rules[] = {
        "host_silent", "cpu_high",  "mem_high",  "disk_full",   "load_high",
        "proc_down",   "tcp_down",  "http_slow", "ora_alert",   "line_blocked",
        "sip_reg",     "swap_high", "ntp_drift", "cert_expiry", "backup_failed",
        "queue_long",  "db_conn",   "log_error", "fan_fail",    "raid_degraded"};
    static const char *const cats[] = {"availability", "performance", "capacity", "telephony"};
    static const char *const f_cpu[] = {"idle"}, *const f_mem[] = {"used", "total"};
    static const char *const f_df[] = {"used_pct"}, *const f_proc[] = {"cpu_pct", "rss_bytes"};
    static const char *const f_call[] = {"answered", "answer_s"};
    static const struct {
        const char *file, *grp, *inst;
        const char *const *fields;
        int nf;
        double (*fn)(int, int, int64_t);
    } kinds[] = {
        {"cpu-total.rrd", "cpu", "total", f_cpu, 1, big_value},
        {"mem.rrd", "mem", "", f_mem, 2, big_mem},
        {"df-u01.rrd", "df", "/u01", f_df, 1, big_df},
        {"proc-oracle.rrd", "proc", "oracle", f_proc, 2, big_proc},
        {"proc-java.rrd", "proc", "java", f_proc, 2, big_proc},
    };
    char path[512], tpl[512], host[32], err[256];
    uint32_t x = 42;

    mkdir(dir, 0755);
    snprintf(path, sizeof(path), "%s/rrd", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/tpl", dir);
    mkdir(path, 0755);
    /* 10 variants of every kind of file, copied to the hosts */
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        for (int v = 0; v < 10; v++) {
            snprintf(tpl, sizeof(tpl), "%s/tpl/%d-%s", dir, v, kinds[k].file);
            big_rrd(tpl, kinds[k].fields, kinds[k].nf, v, kinds[k].fn);
        }
    }
    for (int v = 0; v < 10; v++) {
        snprintf(tpl, sizeof(tpl), "%s/tpl/%d-sipcall.rrd", dir, v);
        big_rrd(tpl, f_call, 2, v, big_call);
    }
    struct coll_db *db = NULL;
    snprintf(path, sizeof(path), "%s/watchpost.db", dir);
    assert_int_equal(coll_db_open(path, &db), 0);
    for (int h = 0; h < BIG_HOSTS; h++) {
        struct coll_db_agent a;
        snprintf(host, sizeof(host), "h%04d", h + 1);
        memset(&a, 0, sizeof(a));
        a.id = host;
        a.host = host;
        a.labels = "";
        a.first_seen = PF / 1000;
        a.last_seen = F / 1000 + 7 * 86400;
        assert_int_equal(coll_db_agent_put(db, &a), 0);
    }
    coll_db_close(db);
    for (int h = 0; h < BIG_HOSTS; h++) {
        snprintf(host, sizeof(host), "h%04d", h + 1);
        snprintf(path, sizeof(path), "%s/rrd/%s", dir, host);
        mkdir(path, 0755);
        for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
            snprintf(tpl, sizeof(tpl), "%s/tpl/%d-%s", dir, (h * 7 + (int)k) % 10, kinds[k].file);
            snprintf(path, sizeof(path), "%s/rrd/%s/%s", dir, host, kinds[k].file);
            copy_file(tpl, path);
            register_series(dir, host, (uint32_t)k + 1, kinds[k].grp, kinds[k].inst, kinds[k].file,
                            kinds[k].fields[0], kinds[k].nf > 1 ? kinds[k].fields[1] : NULL,
                            BIG_STEP);
        }
        if (h < 20) { /* 20 hotlines and IVRs, tested from the first 20 hosts */
            char inst[32];
            snprintf(inst, sizeof(inst), "hotline%02d", h + 1);
            snprintf(tpl, sizeof(tpl), "%s/tpl/%d-sipcall.rrd", dir, h % 10);
            snprintf(path, sizeof(path), "%s/rrd/%s/sipcall-%s.rrd", dir, host, inst);
            copy_file(tpl, path);
            snprintf(tpl, sizeof(tpl), "sipcall-%s.rrd", inst);
            register_series(dir, host, 10, "sipcall", inst, tpl, "answered", "answer_s", BIG_STEP);
        }
    }

    /* 6,000 incidents over the fortnight with their timelines */
    struct inc_store *st = NULL;
    snprintf(path, sizeof(path), "%s/incidents.db", dir);
    assert_int_equal(inc_open(path, NULL, &st), 0);
    assert_int_equal(inc_begin(st), 0);
    for (int i = 0; i < 6000; i++) {
        int64_t t = PF + (int64_t)i * (14 * DAY) / 6000;
        const char *rule = rules[i % 20];
        /* every (rule, host) once, so that no fire lands on an open incident */
        snprintf(host, sizeof(host), "h%04d", (i * 7 + i / 1000) % BIG_HOSTS + 1);
        int64_t id = fire(st, rule, host, 1 + (int)(big_rand(&x) % 3), 1 + (int)(big_rand(&x) % 3),
                          cats[i % 4], t);
        if (i % 3 != 0) {
            assert_int_equal(
                inc_ack(st, id, "Li Wei", "looking", t + (1 + i % 40) * MIN, err, sizeof(err)), 0);
        }
        if (i % 10 != 0) {
            clear(st, rule, host, t + (5 + i % 180) * MIN);
        }
        if (i % 50 == 0) {
            inc_tick(st, t);
        }
    }
    assert_int_equal(inc_commit(st), 0);
    inc_close(st);

    /* 3,000 lines on 20 PBX hosts with 20 changes each; the first 1,000 kamreg extensions */
    struct coll_lines *l = rfx_lines_begin(dir);
    static const char *const states[] = {"idle",    "in_use", "idle",
                                         "blocked", "idle",   "unavailable"};
    for (int i = 0; i < 3000; i++) {
        char obj[32];
        snprintf(host, sizeof(host), "h%04d", i % 20 + 1);
        snprintf(obj, sizeof(obj), "%d", 8000 + i);
        for (int c = 0; c < 20; c++) {
            const char *s = states[(i + c) % 6];
            int64_t at = PF + (int64_t)c * (14 * DAY / 20) + (int64_t)(i % 60) * MIN;
            assert_true(coll_lines_put(l, host, host, obj, "ext", s,
                                       strcmp(s, "unavailable") == 0 ? "expired" : s, "", at) >= 0);
        }
    }
    rfx_lines_end(l);
    for (int i = 0; i < 1000; i++) {
        char inst[32];
        snprintf(host, sizeof(host), "h%04d", i % 20 + 1);
        snprintf(inst, sizeof(inst), "kam/%d", 8000 + i);
        register_series(dir, host, (uint32_t)(100 + i), "kamreg_ext", inst, "none.rrd",
                        "registered", "expires_s", 60);
    }

    /* 100,000 log events, 300 messages with varying digits */
    sqlite3 *h = rfx_events_db(dir);
    rfx_exec(h, "CREATE INDEX log_events_ts ON log_events(ts_ms); BEGIN");
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_prepare_v2(h,
                                        "INSERT INTO log_events(host, ts_ms, source, rule,"
                                        " severity, text) VALUES(?1, ?2, 'app.log', ?3, ?4, ?5)",
                                        -1, &q, NULL),
                     SQLITE_OK);
    for (int i = 0; i < 100000; i++) {
        char text[160], rule[32];
        int m = (int)(big_rand(&x) % 300);
        snprintf(host, sizeof(host), "h%04d", (int)(big_rand(&x) % BIG_HOSTS) + 1);
        snprintf(rule, sizeof(rule), "rule%02d", m % 25);
        snprintf(text, sizeof(text),
                 "E%03d: something failed in module m%d after %u ms at %02u:%02u", m, m % 17,
                 big_rand(&x) % 5000, big_rand(&x) % 24, big_rand(&x) % 60);
        sqlite3_reset(q);
        sqlite3_bind_text(q, 1, host, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(q, 2, PF + (int64_t)i * (14 * DAY) / 100000);
        sqlite3_bind_text(q, 3, rule, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(q, 4, m % 4);
        sqlite3_bind_text(q, 5, text, -1, SQLITE_TRANSIENT);
        assert_int_equal(sqlite3_step(q), SQLITE_DONE);
    }
    sqlite3_finalize(q);
    assert_int_equal(sqlite3_exec(h, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
}

static int setup(void **state)
{
    (void)state;
    return rfx_setup(g_dir, sizeof(g_dir), "wp-report", make_state);
}

static int teardown(void **state)
{
    (void)state;
    rfx_rmtree(g_dir);
    return 0;
}

/* ---- helpers ---- */

struct both {
    struct rep_period pc, pp;
    struct rep_stats *cur, *prev;
};

static void build(struct both *b)
{
    char err[256];

    assert_int_equal(rep_week("2026-W47", 0, &b->pc, &b->pp), 0);
    assert_int_equal(rep_stats_build(g_dir, &b->pc, NULL, &b->cur, err, sizeof(err)), 0);
    assert_int_equal(rep_stats_build(g_dir, &b->pp, NULL, &b->prev, err, sizeof(err)), 0);
}

static void unbuild(struct both *b)
{
    rep_stats_free(b->cur);
    rep_stats_free(b->prev);
}

static char *health_html(const char *lang)
{
    struct both b;
    struct rep_opts o;

    memset(&o, 0, sizeof(o));
    o.lang = lang;
    build(&b);
    struct rdoc *d = rep_health_doc("weekly", b.cur, b.prev, &o);
    char *html = rfx_html(d);
    rdoc_free(d);
    unbuild(&b);
    return html;
}

/* Every element other than a void one is closed, in order; no stray < or &. */
static void well_formed(const char *s)
{
    static const char *const voids[] = {"meta", "br", "hr", "img", "link", "input", NULL};
    char stack[64][16];
    int depth = 0;

    if (strncmp(s, "<!DOCTYPE html>", 15) == 0) {
        s += 15;
    }
    for (; *s != '\0'; s++) {
        if (*s == '&') {
            assert_true(strncmp(s, "&amp;", 5) == 0 || strncmp(s, "&lt;", 4) == 0 ||
                        strncmp(s, "&gt;", 4) == 0 || strncmp(s, "&quot;", 6) == 0 ||
                        strncmp(s, "&#39;", 5) == 0 || strncmp(s, "&nbsp;", 6) == 0);
            continue;
        }
        if (*s != '<') {
            assert_true(*s != '>');
            continue;
        }
        if (strncmp(s, "<!--", 4) == 0) {
            s = strstr(s, "-->");
            assert_non_null(s);
            s += 2;
            continue;
        }
        int closing = s[1] == '/';
        const char *n = s + 1 + closing;
        size_t len = strspn(n, "abcdefghijklmnopqrstuvwxyz0123456789");
        assert_true(len > 0 && len < 16);
        const char *end = strchr(n, '>');
        assert_non_null(end);
        assert_null(memchr(n, '<', (size_t)(end - n)));
        char name[16];
        memcpy(name, n, len);
        name[len] = '\0';
        int is_void = 0;
        for (int i = 0; voids[i] != NULL; i++) {
            is_void |= strcmp(voids[i], name) == 0;
        }
        if (closing) {
            assert_true(depth > 0);
            assert_string_equal(stack[depth - 1], name);
            depth--;
        } else if (!is_void && end[-1] != '/') { /* <path .../> (inline SVG) */
            assert_true(depth < 64);
            snprintf(stack[depth++], sizeof(stack[0]), "%s", name);
        }
        s = end;
    }
    assert_int_equal(depth, 0);
}

/* ---- tests ---- */

static void periods(void **state)
{
    struct rep_period c, p;

    (void)state;
    assert_int_equal(rep_week("2026-W47", 0, &c, &p), 0);
    assert_int_equal(c.from_ms, F);
    assert_int_equal(c.to_ms, F + 7 * DAY);
    assert_string_equal(c.label, "2026-W47");
    assert_int_equal(p.from_ms, PF);
    assert_string_equal(p.label, "2026-W46");
    /* default: the last complete week before now */
    assert_int_equal(rep_week(NULL, F + 3 * DAY, &c, &p), 0);
    assert_string_equal(c.label, "2026-W46");
    assert_int_equal(rep_week("2026-W53", 0, &c, &p), 0); /* 2026 has 53 weeks */
    assert_int_equal(c.from_ms, F + 6 * 7 * DAY);
    assert_int_equal(rep_week("2025-W53", 0, &c, &p), -EINVAL);
    assert_int_equal(rep_week("2026-47", 0, &c, &p), -EINVAL);
    assert_int_equal(rep_week("2026-W01", 0, &c, &p), 0);
    assert_string_equal(p.label, "2025-W52");
    assert_int_equal(rep_month("2026-11", 0, &c, &p), 0);
    assert_int_equal(c.from_ms, INT64_C(1793462400000));
    assert_int_equal(c.to_ms, INT64_C(1793462400000) + 30 * DAY);
    assert_string_equal(p.label, "2026-10");
    assert_int_equal(rep_month(NULL, F, &c, &p), 0);
    assert_string_equal(c.label, "2026-10");
    assert_int_equal(rep_month("2026-01", 0, &c, &p), 0);
    assert_string_equal(p.label, "2025-12");
    assert_int_equal(rep_month("2026-13", 0, &c, &p), -EINVAL);
}

static void distribution(void **state)
{
    int64_t v[] = {300, 10, 20};
    int64_t w[] = {4, 1, 3, 2};

    (void)state;
    struct rep_dist d = rep_dist_of(v, 3);
    assert_int_equal(d.median_ms, 20);
    assert_int_equal(d.p90_ms, 300);
    d = rep_dist_of(w, 4);
    assert_int_equal(d.median_ms, 2); /* (2 + 3) / 2 in integer ms */
    assert_int_equal(d.p90_ms, 4);
    d = rep_dist_of(NULL, 0);
    assert_int_equal(d.n, 0);
}

static void incident_figures(void **state)
{
    struct both b;

    (void)state;
    build(&b);
    const struct rep_stats *s = b.cur;
    assert_int_equal(s->opened, 7);
    assert_int_equal(s->resolved, 5);
    assert_int_equal(s->opened_prio[0], 1);
    assert_int_equal(s->opened_prio[1], 2);
    assert_int_equal(s->opened_prio[2], 2);
    assert_int_equal(s->opened_prio[3], 2);
    /* MTTA over 10, 20, 300 min; MTTR over 50, 60, 120, 540, 1200 min */
    assert_int_equal(s->mtta.n, 3);
    assert_int_equal(s->mtta.median_ms, 20 * MIN);
    assert_int_equal(s->mtta.p90_ms, 300 * MIN);
    assert_int_equal(s->mttr.n, 5);
    assert_int_equal(s->mttr.median_ms, 120 * MIN);
    assert_int_equal(s->mttr.p90_ms, 1200 * MIN);
    /* response: 2, 3, 5, 7 met; 1, 4, 6 breached. resolve: 1-4 met, 5 breached, 6, 7 pending */
    assert_int_equal(s->resp[REP_SLA_MET], 4);
    assert_int_equal(s->resp[REP_SLA_BREACHED], 3);
    assert_int_equal(s->resp[REP_SLA_PENDING], 0);
    assert_int_equal(s->res[REP_SLA_MET], 4);
    assert_int_equal(s->res[REP_SLA_BREACHED], 1);
    assert_int_equal(s->res[REP_SLA_PENDING], 2);
    assert_int_equal(s->escalations, 1);
    assert_int_equal(s->flapping, 1);
    assert_int_equal(s->ndead, 1);
    assert_int_equal(s->dead[0].code, 550);
    assert_int_equal(s->tickets, 1); /* RT#1234; the one still being created does not count */
    assert_int_equal(s->inc[2].id, 4);
    assert_string_equal(s->inc[2].tickets, "rt: RT#1234");
    /* the previous week */
    assert_int_equal(b.prev->opened, 1);
    assert_int_equal(b.prev->resp[REP_SLA_BREACHED], 1);
    assert_int_equal(b.prev->ndead, 0);
    unbuild(&b);
}

/* The week after: nothing opened, the two incidents still open carried over. */
static void carried_over(void **state)
{
    struct rep_period c, p;
    struct rep_stats *s = NULL;
    char err[256];
    size_t active = 0;

    (void)state;
    assert_int_equal(rep_week("2026-W48", 0, &c, &p), 0);
    assert_int_equal(rep_stats_build(g_dir, &c, NULL, &s, err, sizeof(err)), 0);
    assert_int_equal(s->opened, 0);
    assert_int_equal(s->mtta.n, 0);
    for (size_t i = 0; i < s->ninc; i++) {
        if (s->inc[i].active_in) {
            active++;
            assert_true(s->inc[i].id == 7 || s->inc[i].id == 8);
            assert_int_equal(s->inc[i].status, INC_OPEN);
        }
    }
    assert_int_equal(active, 2);
    /* line 8011 idle all week, 8013 too: no data before is gone */
    assert_int_equal(s->lines[2].nodata_ms, 0);
    rep_stats_free(s);
}

static void host_availability(void **state)
{
    struct both b;

    (void)state;
    build(&b);
    const struct rep_stats *s = b.cur;
    assert_int_equal(s->nhosts, 3);
    assert_string_equal(s->hosts[0].host, "app1");
    assert_int_equal(s->hosts[0].down_ms, 0);
    assert_int_equal(s->hosts[0].planned_ms, 2 * HOUR);
    assert_true(fabs(s->hosts[0].avail_pct - 100.0) < 1e-9);
    assert_string_equal(s->hosts[1].host, "db1");
    assert_int_equal(s->hosts[1].down_ms, HOUR);
    assert_int_equal(s->hosts[1].planned_ms, 0);
    char buf[16];
    snprintf(buf, sizeof(buf), "%.2f", s->hosts[1].avail_pct);
    assert_string_equal(buf, "99.40"); /* 167 / 168 */
    assert_string_equal(s->hosts[2].host, "web1");
    assert_true(fabs(s->hosts[2].avail_pct - 100.0) < 1e-9);
    snprintf(buf, sizeof(buf), "%.2f", s->avail_pct);
    assert_string_equal(buf, "99.80");
    assert_int_equal(b.prev->hosts[1].down_ms, 30 * MIN);
    unbuild(&b);
}

static void host_metrics(void **state)
{
    struct both b;
    char buf[64];

    (void)state;
    build(&b);
    const struct rep_stats *s = b.cur;
    assert_int_equal(s->nmetrics, 4);
    assert_string_equal(s->metrics[0].host, "db1");
    assert_string_equal(s->metrics[0].metric, "cpu");
    /* 10020 minutes at 20 %, 60 at 100 % */
    snprintf(buf, sizeof(buf), "%.2f %.2f %.2f", s->metrics[0].avg, s->metrics[0].p95,
             s->metrics[0].peak);
    assert_string_equal(buf, "20.48 20.00 100.00");
    assert_string_equal(s->metrics[1].metric, "df /u01");
    snprintf(buf, sizeof(buf), "%.2f %.2f %.2f", s->metrics[1].avg, s->metrics[1].p95,
             s->metrics[1].peak);
    assert_string_equal(buf, "92.00 92.00 92.00");
    assert_true(s->metrics[1].full_days < 0); /* not rising */
    /* /u02 ends the week at 90 %, rising 30 / 7 % a day: full in 10 / (30 / 7) = 2.33 days */
    assert_string_equal(s->metrics[2].metric, "df /u02");
    snprintf(buf, sizeof(buf), "%.2f", s->metrics[2].full_days);
    assert_string_equal(buf, "2.33");
    assert_string_equal(s->metrics[3].metric, "mem");
    snprintf(buf, sizeof(buf), "%.2f %.2f %.2f", s->metrics[3].avg, s->metrics[3].p95,
             s->metrics[3].peak);
    assert_string_equal(buf, "25.00 25.00 25.00");
    assert_int_equal(b.prev->nmetrics, 4);
    assert_true(b.prev->metrics[2].full_days < 0);
    snprintf(buf, sizeof(buf), "%.2f", b.prev->metrics[3].avg);
    assert_string_equal(buf, "50.00");
    snprintf(buf, sizeof(buf), "%.2f", b.prev->metrics[0].avg);
    assert_string_equal(buf, "10.00");
    unbuild(&b);
}

static void telephony(void **state)
{
    struct both b;

    (void)state;
    build(&b);
    const struct rep_stats *s = b.cur;
    assert_int_equal(s->nlines, 6);
    const struct rep_line *l = &s->lines[0];
    assert_string_equal(l->object, "8011");
    assert_int_equal(l->blocked_n, 3);
    assert_int_equal(l->bad_ms, HOUR);
    assert_int_equal(l->known_ms, 7 * DAY);
    l = &s->lines[1];
    assert_string_equal(l->object, "8012");
    assert_int_equal(l->state_ms[6], 2 * DAY);
    assert_int_equal(l->bad_n, 1);
    char buf[16];
    snprintf(buf, sizeof(buf), "%.2f", l->avail_pct);
    assert_string_equal(buf, "71.43"); /* 120 / 168 */
    l = &s->lines[2];
    assert_string_equal(l->object, "8013");
    assert_int_equal(l->nodata_ms, 3 * DAY + 12 * HOUR);
    assert_true(fabs(l->avail_pct - 100.0) < 1e-9);
    l = &s->lines[4];
    assert_string_equal(l->object, "ivr1");
    assert_string_equal(l->group, "ivr");
    assert_int_equal(l->state_ms[2], 7 * DAY);
    assert_int_equal(b.prev->lines[0].blocked_n, 1);

    assert_int_equal(s->nseats, 2);
    assert_string_equal(s->seats[0].seat, "8011");
    assert_int_equal(s->seats[0].sessions, 3);
    assert_int_equal(s->seats[0].days, 2);
    assert_int_equal(s->seats[0].logged_ms, 9 * HOUR + 8 * HOUR + 43 * MIN);
    assert_int_equal(s->seats[0].paused_ms, HOUR);
    assert_string_equal(s->seats[1].seat, "8012");
    assert_int_equal(s->seats[1].logged_ms, 4 * HOUR);
    assert_int_equal(s->seats[1].days, 1);
    unbuild(&b);
}

static void logs(void **state)
{
    struct both b;

    (void)state;
    build(&b);
    const struct rep_stats *s = b.cur;
    assert_int_equal(s->have_events, 1);
    assert_int_equal(s->nlog, 10);
    assert_int_equal(s->log_sev[3], 5);
    assert_int_equal(s->log_sev[2], 2);
    assert_int_equal(s->log_sev[1], 3);
    assert_int_equal(s->log_sev[0], 0);
    /* by rule: most first */
    assert_int_equal(s->nlog_rules, 3);
    assert_string_equal(s->log_rules[0].key, "ora_600");
    assert_int_equal(s->log_rules[0].n, 5);
    assert_int_equal(s->log_rules[0].sev, 3);
    assert_string_equal(s->log_rules[1].key, "oom");
    assert_int_equal(s->log_rules[1].n, 3);
    assert_string_equal(s->log_rules[2].key, "ora_1555");
    assert_int_equal(s->log_rules[2].n, 2);
    /* by host: the 5 + 2 ORA- events on db1 */
    assert_int_equal(s->nlog_hosts, 2);
    assert_string_equal(s->log_hosts[0].key, "db1");
    assert_int_equal(s->log_hosts[0].n, 7);
    assert_string_equal(s->log_hosts[1].key, "web1");
    assert_int_equal(s->log_hosts[1].n, 3);
    /* the five ORA-00600 variants are one message; the two ORA-01555 another */
    assert_int_equal(s->nlog_msgs, 3);
    assert_string_equal(s->log_msgs[0].key, "ORA-#: internal error code, arguments: [kcbz] at #:#");
    assert_string_equal(s->log_msgs[0].rule, "ora_600");
    assert_int_equal(s->log_msgs[0].n, 5);
    assert_string_equal(s->log_msgs[1].key, "java.lang.OutOfMemoryError: Java heap space");
    assert_int_equal(s->log_msgs[1].n, 3);
    assert_string_equal(s->log_msgs[2].key, "ORA-#: snapshot too old: rollback segment number #");
    assert_int_equal(s->log_msgs[2].n, 2);
    /* the previous week: 2 ORA-00600, the last one in its final millisecond */
    assert_int_equal(b.prev->nlog, 2);
    assert_int_equal(b.prev->log_rules[0].n, 2);
    unbuild(&b);

    char *n = rep_log_norm("  ORA-00600 at 12:03\t\n on  db1 ");
    assert_string_equal(n, "ORA-# at #:# on db#");
    free(n);
    n = rep_log_norm("");
    assert_string_equal(n, "");
    free(n);
}

static void registrations_calls_procs(void **state)
{
    struct both b;
    char buf[128];

    (void)state;
    build(&b);
    const struct rep_stats *s = b.cur;
    /* 8014 (kamreg) lost twice, sbc1 (sipping) once; 8012 out of service is not a
     * registration */
    const struct rep_line *l = &s->lines[3];
    assert_string_equal(l->object, "8014");
    assert_int_equal(l->reg, 1);
    assert_int_equal(l->reg_lost, 2);
    assert_int_equal(l->state_ms[5], HOUR);
    assert_string_equal(b.prev->lines[2].object, "8014"); /* 8013 came in W47 */
    assert_int_equal(b.prev->lines[2].reg_lost, 1);
    assert_string_equal(s->lines[5].object, "sbc1");
    assert_int_equal(s->lines[5].reg, 2);
    assert_int_equal(s->lines[5].reg_lost, 1);
    assert_int_equal(s->lines[1].reg, 0);
    assert_int_equal(s->lines[1].reg_lost, 0);
    assert_int_equal(s->reg_lost, 3);
    assert_int_equal(b.prev->reg_lost, 1);

    /* 10 calls, 9 answered: 90 %; answer p50 the 5th of 9 (2.4 s), p95 the 9th (9.8 s) */
    assert_int_equal(s->ncalls, 1);
    const struct rep_call *c = &s->calls[0];
    assert_string_equal(c->host, "app1");
    assert_string_equal(c->target, "ivr");
    assert_int_equal(c->step_s, 300);
    assert_int_equal(c->calls, 10);
    snprintf(buf, sizeof(buf), "%.2f %.1f %.1f %.1f %zu", c->success_pct, c->answer_p50,
             c->answer_p95, c->answer_max, c->n_answer);
    assert_string_equal(buf, "90.00 2.4 9.8 9.8 9");
    snprintf(buf, sizeof(buf), "%.2f %.1f %zu", b.prev->calls[0].success_pct,
             b.prev->calls[0].answer_p95, b.prev->calls[0].calls);
    assert_string_equal(buf, "100.00 2.1 10");

    /* processes: oracle on db1 at 150 % with one hour at 300 %, java on web1 */
    assert_int_equal(s->nprocs, 2);
    const struct rep_proc *p = &s->procs[0];
    assert_string_equal(p->host, "db1");
    assert_string_equal(p->name, "oracle");
    /* (10020 * 150 + 60 * 300) / 10080 */
    snprintf(buf, sizeof(buf), "%.2f %.2f %.1f %.1f", p->cpu_avg, p->cpu_peak,
             p->mem_avg / 1048576.0, p->mem_peak / 1048576.0);
    assert_string_equal(buf, "150.89 300.00 2048.0 2048.0");
    assert_string_equal(s->procs[1].host, "web1");
    assert_string_equal(s->procs[1].name, "java");
    snprintf(buf, sizeof(buf), "%.2f", b.prev->procs[0].cpu_avg);
    assert_string_equal(buf, "100.00");

    struct rdoc *d = rep_health_doc("weekly", b.cur, b.prev, NULL);
    char *h = rfx_html(d);
    well_formed(h);
    assert_non_null(strstr(h, "ivr (app1) answer time p95 rose from 2.1 s to 9.8 s</td>"));
    assert_non_null(strstr(h, "Test calls to ivr (app1): 90.00 % answered (9 of 10)</td>"));
    assert_non_null(strstr(h, "8014 (pbx1) lost its registration 2 times</td>"));
    assert_non_null(strstr(h, "Log rule ora_600 matched 5 times (critical)</td>"));
    assert_non_null(strstr(h, "ORA-#: internal error code, arguments: [kcbz] at #:#</td>"));
    assert_non_null(strstr(h, ">6. Logs<"));
    assert_non_null(strstr(h, "Top processes by CPU"));
    /* finding kinds in order: registrations, calls, slow answers, log rules */
    assert_true(strstr(h, "lost its registration") < strstr(h, "Test calls to ivr"));
    assert_true(strstr(h, "Test calls to ivr") < strstr(h, "answer time p95 rose"));
    assert_true(strstr(h, "answer time p95 rose") < strstr(h, "Log rule ora_600"));
    free(h);
    rdoc_free(d);
    struct rep_opts o;
    memset(&o, 0, sizeof(o));
    o.lang = "zh-CN";
    d = rep_health_doc("weekly", b.cur, b.prev, &o);
    h = rfx_html(d);
    well_formed(h);
    assert_non_null(strstr(h, "ivr（app1）应答时间 p95 由 2.1 秒升至 9.8 秒"));
    assert_non_null(strstr(h, "8014（pbx1）注册丢失 2 次"));
    free(h);
    rdoc_free(d);
    unbuild(&b);
}

static void html_findings_rerun(void **state)
{
    (void)state;
    char *a = health_html("en");
    char *b = health_html("en");

    assert_string_equal(a, b); /* byte-identical on rerun */
    well_formed(a);
    assert_non_null(strstr(a, "<html lang=\"en\">"));
    assert_non_null(strstr(a, "Watchpost weekly health report 2026-W47"));
    /* findings with the week-over-week arrow */
    assert_non_null(strstr(a, "Host db1 unavailable for 60.0 min (availability 99.40 %)</td>"
                              "<td style=\"border:1px solid #d0d7de;padding:3px 8px;"
                              "vertical-align:top;text-align:right\">60.0</td>"));
    assert_non_null(strstr(a, "8011 (pbx1) blocked 3 times</td>"));
    assert_non_null(strstr(a, ">3</td><td style=\"border:1px solid #d0d7de;padding:3px 8px;"
                              "vertical-align:top;text-align:right\">1</td><td style=\"border:1px "
                              "solid #d0d7de;padding:3px 8px;vertical-align:top\">\xe2\x86\x91"));
    assert_non_null(strstr(a, "8012 (pbx1) available 71.43 % (2880.0 min not in service)"));
    assert_non_null(strstr(a, "SLA breached 4 times (response 3, resolve 1)"));
    assert_non_null(strstr(a, "disk /u01 used (%) on db1: p95 92.00</td>"));
    assert_non_null(strstr(a, "/u02 on db1 full in 2.3 days (trend of the period)</td>"));
    /* findings in their order: downtime, disk full, metrics, SLA */
    assert_true(strstr(a, "Host db1 unavailable") < strstr(a, "/u02 on db1 full in"));
    assert_true(strstr(a, "/u02 on db1 full in") < strstr(a, "disk /u01 used (%) on db1"));
    assert_true(strstr(a, "disk /u01 used (%) on db1") < strstr(a, "SLA breached 4 times"));
    assert_non_null(strstr(a, "MTTA (time to acknowledge)"));
    /* self-contained: nothing to load (the SVG's xmlns names are not loaded) */
    assert_null(strstr(a, "src="));
    for (const char *u = strstr(a, "url("); u != NULL; u = strstr(u + 4, "url(")) {
        assert_true(u[4] == '#'); /* only references inside the document */
    }
    assert_null(strstr(a, "<link"));
    assert_null(strstr(a, "<script"));
    assert_non_null(strstr(a, "<svg"));
    assert_non_null(strstr(a, "id=\"g2-surface1\""));
    free(a);
    free(b);

    char *z = health_html("zh-CN");
    well_formed(z);
    assert_non_null(strstr(z, "<html lang=\"zh-CN\">"));
    assert_non_null(strstr(z, "8011（pbx1）阻塞 3 次"));
    free(z);
}

static void html_escapes(void **state)
{
    struct rdoc *d = rdoc_new("a<b & \"c\"", "en");
    const char *cols[1] = {"<x>"};

    (void)state;
    rdoc_para(d, "%s", "<script>alert('x')</script>");
    rtable_cell(rdoc_table(d, "t", "cap & more", 1, cols), "%s", "1 < 2");
    char *h = rfx_html(d);
    well_formed(h);
    assert_null(strstr(h, "<script>"));
    assert_non_null(strstr(h, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    assert_non_null(strstr(h, "<title>a&lt;b &amp; &quot;c&quot;</title>"));
    free(h);
    rdoc_free(d);
}

static void csv_files(void **state)
{
    struct both b;
    char out[128], err[256], path[256];
    size_t len = 0;

    (void)state;
    build(&b);
    struct rdoc *d = rep_health_doc("weekly", b.cur, b.prev, NULL);
    snprintf(out, sizeof(out), "%s/out", g_dir);
    mkdir(out, 0755);
    int n = rdoc_write_csv_dir(d, out, "w", err, sizeof(err));
    assert_true(n >= 15);

    snprintf(path, sizeof(path), "%s/w-findings.csv", out);
    char *c = rfx_slurp(path, &len);
    assert_memory_equal(
        c, "\xEF\xBB\xBF\"Finding\",\"This period\",\"Previous\",\"Trend\"\r\n",
        strlen("\xEF\xBB\xBF\"Finding\",\"This period\",\"Previous\",\"Trend\"\r\n"));
    assert_non_null(strstr(c, "\"8011 (pbx1) blocked 3 times\",\"3\",\"1\",\"\xe2\x86\x91\"\r\n"));
    for (size_t i = 0; i < len; i++) {
        if (c[i] == '\n') {
            assert_true(i > 0 && c[i - 1] == '\r');
        }
    }
    free(c);

    snprintf(path, sizeof(path), "%s/w-host_availability.csv", out);
    c = rfx_slurp(path, &len);
    assert_non_null(strstr(c, "\xEF\xBB\xBF\"Host\",\"Silences\",\"Unplanned down (min)\","
                              "\"Planned maintenance (min)\",\"Availability (%)\","
                              "\"Previous (%)\",\"Trend\"\r\n"));
    assert_non_null(
        strstr(c, "\"db1\",\"1\",\"60.0\",\"0.0\",\"99.40\",\"99.70\",\"\xe2\x86\x93\"\r\n"));
    assert_non_null(
        strstr(c, "\"app1\",\"1\",\"0.0\",\"120.0\",\"100.00\",\"100.00\",\"\xe2\x86\x92\"\r\n"));
    free(c);

    snprintf(path, sizeof(path), "%s/w-response_times.csv", out);
    c = rfx_slurp(path, &len);
    assert_non_null(strstr(c, "\"MTTA\",\"3\",\"20.0\",\"300.0\",\"n/a\",\"n/a\"\r\n"));
    assert_non_null(strstr(c, "\"MTTR\",\"5\",\"120.0\",\"1200.0\",\"30.0\",\"30.0\"\r\n"));
    free(c);

    snprintf(path, sizeof(path), "%s/w-line_availability.csv", out);
    c = rfx_slurp(path, &len);
    assert_non_null(strstr(c, "\"pbx1\",\"ext\",\"8011\",\"99.40\",\"3\",\"60.0\",\"0.0\",\"0.0\","
                              "\"0.0\",\"0.0\"\r\n"));
    free(c);

    snprintf(path, sizeof(path), "%s/w-test_calls.csv", out);
    c = rfx_slurp(path, &len);
    assert_non_null(strstr(c, "\"app1\",\"ivr\",\"10\",\"90.00\",\"100.00\",\"2.4\",\"9.8\","
                              "\"2.1\",\"\xe2\x86\x91\",\"9.8\",\"300\"\r\n"));
    free(c);

    snprintf(path, sizeof(path), "%s/w-registration_losses.csv", out);
    c = rfx_slurp(path, &len);
    assert_non_null(strstr(c, "\"pbx1\",\"8014\",\"kamreg\",\"2\",\"1\",\"\xe2\x86\x91\","
                              "\"60.0\"\r\n"));
    assert_non_null(strstr(c, "\"pbx1\",\"sbc1\",\"sipping\",\"1\",\"0\""));
    free(c);

    snprintf(path, sizeof(path), "%s/w-log_hosts.csv", out);
    c = rfx_slurp(path, &len);
    assert_non_null(strstr(c, "\"db1\",\"critical\",\"7\",\"2\",\"\xe2\x86\x91\"\r\n"));
    free(c);

    snprintf(path, sizeof(path), "%s/w-top_processes_cpu.csv", out);
    c = rfx_slurp(path, &len);
    assert_non_null(strstr(c, "\"db1\",\"oracle\",\"150.89\",\"300.00\",\"2048.0\","
                              "\"2048.0\",\"100.00\",\"\xe2\x86\x91\"\r\n"));
    free(c);

    snprintf(path, sizeof(path), "%s/w-sla_breaches.csv", out);
    c = rfx_slurp(path, &len);
    assert_non_null(strstr(c, ",\"Reason\"\r\n"));
    assert_non_null(strstr(c, "\"acknowledged late\"\r\n"));
    assert_non_null(strstr(c, "\"not acknowledged\"\r\n"));
    free(c);

    snprintf(path, sizeof(path), "%s/w-tickets.csv", out);
    c = rfx_slurp(path, &len);
    assert_non_null(strstr(c, "\"4\",\"P2\",\"db1\",\"disk_full\""));
    assert_non_null(strstr(c, "\"rt: RT#1234\"\r\n"));
    free(c);

    snprintf(path, sizeof(path), "%s/w-seat_sessions.csv", out);
    c = rfx_slurp(path, &len);
    assert_non_null(strstr(c, "\"pbx1\",\"8011\",\"3\",\"2\",\"17.72\",\"1.00\"\r\n"));
    free(c);
    rdoc_free(d);
    unbuild(&b);
}

#ifdef WP_HAVE_PDF
static void pdf_rerun(void **state)
{
    struct both b;
    char p1[128], p2[128], err[256];
    size_t n1 = 0, n2 = 0;

    (void)state;
    build(&b);
    struct rdoc *d = rep_health_doc("weekly", b.cur, b.prev, NULL);
    snprintf(p1, sizeof(p1), "%s/a.pdf", g_dir);
    snprintf(p2, sizeof(p2), "%s/b.pdf", g_dir);
    assert_int_equal(rdoc_write_pdf(d, p1, err, sizeof(err)), 0);
    assert_int_equal(rdoc_write_pdf(d, p2, err, sizeof(err)), 0);
    char *a = rfx_slurp(p1, &n1);
    char *c = rfx_slurp(p2, &n2);
    assert_true(n1 > 1000);
    assert_memory_equal(a, "%PDF-", 5);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, c, n1); /* no timestamp: byte-identical */
    free(a);
    free(c);
    rdoc_free(d);
    unbuild(&b);
}
#endif

static void fault_report(void **state)
{
    struct rdoc *d = NULL;
    struct rep_opts o;
    char err[256];

    (void)state;
    memset(&o, 0, sizeof(o));
    /* incident 1 is last week's; 4 is the disk incident of this week */
    assert_int_equal(rep_incident_doc(g_dir, 4, &o, &d, err, sizeof(err)), 0);
    char *h = rfx_html(d);
    char *h2 = NULL;
    well_formed(h);
    assert_non_null(strstr(h, "Fault report: incident 4"));
    assert_non_null(strstr(h, "capacity / disk_full"));
    assert_non_null(strstr(h, ">db1<"));
    assert_non_null(strstr(h, ">P2<"));
    assert_non_null(strstr(h, ">0:50<")); /* time to resolve */
    assert_non_null(strstr(h, "Li Wei (acknowledged): cleaning archive logs"));
    assert_non_null(strstr(h, "Li Wei: archived logs cleaned"));
    assert_non_null(strstr(h, "Check the thing."));
    assert_non_null(strstr(h, ">rt: RT#1234<"));
    rdoc_free(d);
    assert_int_equal(rep_incident_doc(g_dir, 4, &o, &d, err, sizeof(err)), 0);
    h2 = rfx_html(d);
    assert_string_equal(h, h2);
    rdoc_free(d);
    free(h);
    free(h2);
    o.lang = "zh-CN";
    assert_int_equal(rep_incident_doc(g_dir, 4, &o, &d, err, sizeof(err)), 0);
    h = rfx_html(d);
    well_formed(h);
    assert_non_null(strstr(h, "故障报告：事件 4"));
    free(h);
    rdoc_free(d);
    assert_int_equal(rep_incident_doc(g_dir, 999, &o, &d, err, sizeof(err)), WP_ENOTFOUND);
    assert_null(d);
}

/* A long findings list shows the worst 20 of a kind and counts the rest. */
static void findings_capped(void **state)
{
    struct rep_stats *cur = wp_xcalloc(1, sizeof(*cur));
    struct rep_stats *prev = wp_xcalloc(1, sizeof(*prev));

    (void)state;
    cur->nlines = 25;
    cur->lines = wp_xcalloc(25, sizeof(*cur->lines));
    for (int i = 0; i < 25; i++) {
        struct rep_line *l = &cur->lines[i];
        l->host = wp_xstrdup("pbx1");
        l->group = wp_xstrdup("ext");
        l->object = wp_xasprintf("%d", 8100 + i);
        l->blocked_n = 2 + i; /* 8124 is the worst */
        l->avail_pct = 100.0;
    }
    cur->avail_pct = prev->avail_pct = 100.0;
    struct rdoc *d = rep_health_doc("weekly", cur, prev, NULL);
    char *h = rfx_html(d);
    well_formed(h);
    assert_non_null(strstr(h, "8124 (pbx1) blocked 26 times"));
    assert_non_null(strstr(h, "8105 (pbx1) blocked 7 times"));
    assert_null(strstr(h, "8104 (pbx1) blocked 6 times"));
    assert_non_null(strstr(h, "... and 5 more like these (see the tables below)"));
    assert_true(strstr(h, "8124 (pbx1)") < strstr(h, "8123 (pbx1)"));
    free(h);
    rdoc_free(d);
    rep_stats_free(cur);
    rep_stats_free(prev);
}

static void empty_state(void **state)
{
    char dir[64], err[256];
    struct rep_period c, p;
    struct rep_stats *s = NULL;

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/wp-report-empty-XXXXXX");
    assert_non_null(mkdtemp(dir));
    assert_int_equal(rep_week("2026-W47", 0, &c, &p), 0);
    assert_int_equal(rep_stats_build(dir, &c, NULL, &s, err, sizeof(err)), 0);
    assert_int_equal(s->ninc, 0);
    assert_int_equal(s->nhosts, 0);
    assert_int_equal(s->have_events, 0);
    struct rdoc *d = rep_health_doc("weekly", s, s, NULL);
    char *h = rfx_html(d);
    well_formed(h);
    /* no events.db: the section says so, it is no error */
    assert_non_null(strstr(h, "No log data: there is no events.db in the state directory."));
    free(h);
    rdoc_free(d);
    rep_stats_free(s);
    rmdir(dir);
}

int main(void)
{
    rfx_tz();
    if (rfx_make_only("WP_REPORT_MAKE", make_state) || rfx_make_only("WP_REPORT_BIG", make_big)) {
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(periods),
        cmocka_unit_test(distribution),
        cmocka_unit_test(incident_figures),
        cmocka_unit_test(carried_over),
        cmocka_unit_test(host_availability),
        cmocka_unit_test(host_metrics),
        cmocka_unit_test(telephony),
        cmocka_unit_test(html_findings_rerun),
        cmocka_unit_test(html_escapes),
        cmocka_unit_test(csv_files),
        cmocka_unit_test(fault_report),
        cmocka_unit_test(findings_capped),
        cmocka_unit_test(logs),
        cmocka_unit_test(registrations_calls_procs),
#ifdef WP_HAVE_PDF
        cmocka_unit_test(pdf_rerun),
#endif
        cmocka_unit_test(empty_state),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
