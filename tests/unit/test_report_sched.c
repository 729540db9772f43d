/* SPDX-License-Identifier: Apache-2.0 */
/* Scheduled reports (report_sched.h): schedules parsed, the most recent due time and the
 * period it reports on, across year ends, month ends and (Europe/Berlin) DST changes; period
 * labels; archive name checks; limits: of the inspection kind. No clock is read: every "now"
 * is given. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* cmocka needs these first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "report_sched.h"

#define HOUR (3600 * INT64_C(1000))

static void tz(const char *z)
{
    setenv("TZ", z, 1);
    tzset();
}

/* Local wall time -> ms (mktime in the current TZ; isdst chosen by the C library). */
static int64_t at_local(int y, int mon, int d, int h, int m)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_isdst = -1;
    return (int64_t)mktime(&tm) * 1000;
}

static void fmt_local(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%M %a", &tm);
}

/* The due time of spec at now (local wall time), as "YYYY-MM-DD HH:MM Day", and its period. */
static void due(const char *spec, int64_t now, const char *want_due, const char *want_label)
{
    struct rsched_at a;
    struct rep_period p;
    char buf[64];

    assert_int_equal(rsched_parse_at(spec, &a), 0);
    int64_t d = rsched_last_due(&a, now);
    assert_true(d <= now);
    fmt_local(d, buf, sizeof(buf));
    if (strcmp(buf, want_due) != 0) {
        fail_msg("%s: due %s, want %s", spec, buf, want_due);
    }
    rsched_period_of(&a, d, &p);
    assert_string_equal(p.label, want_label);
    assert_true(p.to_ms <= d);
    /* the label names the same period again */
    struct rep_period q;
    assert_int_equal(rsched_period_parse(a.unit, p.label, &q), 0);
    assert_true(q.from_ms == p.from_ms && q.to_ms == p.to_ms);
}

static void test_parse(void **state)
{
    struct rsched_at a;
    (void)state;
    assert_int_equal(rsched_parse_at("08:30", &a), 0);
    assert_int_equal(a.unit, RS_DAY);
    assert_true(a.hour == 8 && a.min == 30);
    assert_int_equal(rsched_parse_at("mon 08:00", &a), 0);
    assert_true(a.unit == RS_WEEK && a.wday == 1 && a.hour == 8);
    assert_int_equal(rsched_parse_at("Sunday 23:59", &a), 0);
    assert_true(a.unit == RS_WEEK && a.wday == 0 && a.min == 59);
    assert_int_equal(rsched_parse_at("1 08:00", &a), 0);
    assert_true(a.unit == RS_MONTH && a.mday == 1);
    assert_int_equal(rsched_parse_at("31 00:00", &a), 0);
    const char *bad[] = {"",         "8",        "24:00", "08:60", "mo 08:00",    "xyz 08:00",
                         "0 08:00",  "32 08:00", "mon",   "08:3",  "08:30 extra", "mon 08:00x",
                         "-1 08:00", NULL};
    for (size_t i = 0; bad[i] != NULL; i++) {
        if (rsched_parse_at(bad[i], &a) == 0) {
            fail_msg("\"%s\" accepted", bad[i]);
        }
    }
    assert_int_equal(rsched_parse_at(NULL, &a), -EINVAL);
}

static void test_weekly_year_end(void **state)
{
    (void)state;
    tz("CST-8");
    /* 2026 has 53 ISO weeks: Mon 28 Dec 2026 starts W53 */
    due("mon 08:00", at_local(2027, 1, 1, 10, 0), "2026-12-28 08:00 Mon", "2026-W52");
    due("mon 08:00", at_local(2027, 1, 4, 7, 59), "2026-12-28 08:00 Mon", "2026-W52");
    due("mon 08:00", at_local(2027, 1, 4, 8, 0), "2027-01-04 08:00 Mon", "2026-W53");
    due("mon 08:00", at_local(2027, 1, 10, 23, 0), "2027-01-04 08:00 Mon", "2026-W53");
    due("mon 08:00", at_local(2027, 1, 11, 8, 1), "2027-01-11 08:00 Mon", "2027-W01");
    /* a Wednesday schedule still reports the last complete week */
    due("wed 06:00", at_local(2026, 11, 30, 12, 0), "2026-11-25 06:00 Wed", "2026-W47");
    due("sun 23:00", at_local(2026, 11, 30, 0, 0), "2026-11-29 23:00 Sun", "2026-W47");
}

static void test_monthly_ends(void **state)
{
    (void)state;
    tz("CST-8");
    due("1 08:00", at_local(2027, 1, 1, 7, 0), "2026-12-01 08:00 Tue", "2026-11");
    due("1 08:00", at_local(2027, 1, 1, 8, 0), "2027-01-01 08:00 Fri", "2026-12");
    /* day 31 means the month's last day: 28 Feb 2027, 29 Feb 2028 */
    due("31 09:00", at_local(2027, 3, 1, 0, 0), "2027-02-28 09:00 Sun", "2027-01");
    due("31 09:00", at_local(2028, 3, 1, 0, 0), "2028-02-29 09:00 Tue", "2028-01");
    due("31 09:00", at_local(2027, 3, 31, 8, 0), "2027-02-28 09:00 Sun", "2027-01");
    due("31 09:00", at_local(2027, 3, 31, 9, 0), "2027-03-31 09:00 Wed", "2027-02");
    due("30 12:00", at_local(2027, 3, 15, 0, 0), "2027-02-28 12:00 Sun", "2027-01");
}

static void test_daily(void **state)
{
    (void)state;
    tz("CST-8");
    due("08:30", at_local(2026, 3, 1, 0, 10), "2026-02-28 08:30 Sat", "2026-02-27");
    due("08:30", at_local(2026, 3, 1, 8, 30), "2026-03-01 08:30 Sun", "2026-02-28");
    due("08:30", at_local(2027, 1, 1, 9, 0), "2027-01-01 08:30 Fri", "2026-12-31");
}

static void test_berlin_dst(void **state)
{
    struct rsched_at a;
    struct rep_period p;
    (void)state;
    tz("Europe/Berlin");
    /* DST starts Sun 29 Mar 2026 02:00 -> 03:00: the week W13 is 167 h long */
    due("mon 08:00", at_local(2026, 3, 30, 9, 0), "2026-03-30 08:00 Mon", "2026-W13");
    assert_int_equal(rsched_period_parse(RS_WEEK, "2026-W13", &p), 0);
    assert_true(p.to_ms - p.from_ms == 167 * HOUR);
    /* a due time the same wall clock on either side of the change */
    due("sun 08:00", at_local(2026, 3, 29, 9, 0), "2026-03-29 08:00 Sun", "2026-W12");
    assert_int_equal(rsched_parse_at("sun 08:00", &a), 0);
    assert_true(rsched_last_due(&a, at_local(2026, 3, 29, 9, 0)) == at_local(2026, 3, 29, 8, 0));
    assert_true(at_local(2026, 3, 29, 8, 0) - at_local(2026, 3, 22, 8, 0) == 167 * HOUR);
    /* DST ends Sun 25 Oct 2026 03:00 -> 02:00: W43 is 169 h, the day 25 h */
    due("mon 08:00", at_local(2026, 10, 26, 8, 0), "2026-10-26 08:00 Mon", "2026-W43");
    assert_int_equal(rsched_period_parse(RS_WEEK, "2026-W43", &p), 0);
    assert_true(p.to_ms - p.from_ms == 169 * HOUR);
    due("08:30", at_local(2026, 10, 26, 8, 30), "2026-10-26 08:30 Mon", "2026-10-25");
    assert_int_equal(rsched_period_parse(RS_DAY, "2026-10-25", &p), 0);
    assert_true(p.to_ms - p.from_ms == 25 * HOUR);
    /* 02:30 does not exist on 29 Mar: the due time is still once that day, before now */
    assert_int_equal(rsched_parse_at("02:30", &a), 0);
    int64_t now = at_local(2026, 3, 29, 12, 0);
    int64_t d = rsched_last_due(&a, now);
    assert_true(d <= now && now - d < 11 * HOUR && now - d > 8 * HOUR);
    due("1 08:00", at_local(2026, 11, 1, 8, 0), "2026-11-01 08:00 Sun", "2026-10");
    assert_int_equal(rsched_period_parse(RS_MONTH, "2026-10", &p), 0);
    assert_true(p.to_ms - p.from_ms == (31 * 24 + 1) * HOUR);
}

static void test_period_parse(void **state)
{
    struct rep_period p;
    (void)state;
    tz("CST-8");
    assert_int_equal(rsched_period_parse(RS_DAY, "2026-02-28", &p), 0);
    assert_string_equal(p.label, "2026-02-28");
    assert_true(p.to_ms - p.from_ms == 24 * HOUR);
    const char *bad_day[] = {"2026-02-29", "2026-13-01", "2026-2-1", "2026-02-28x", "", NULL};
    for (size_t i = 0; bad_day[i] != NULL; i++) {
        assert_int_equal(rsched_period_parse(RS_DAY, bad_day[i], &p), -EINVAL);
    }
    assert_int_equal(rsched_period_parse(RS_WEEK, "2026-W53", &p), 0);
    assert_int_equal(rsched_period_parse(RS_WEEK, "2027-W53", &p), -EINVAL);
    assert_int_equal(rsched_period_parse(RS_WEEK, "../etc", &p), -EINVAL);
    assert_int_equal(rsched_period_parse(RS_MONTH, "2026-12", &p), 0);
    assert_int_equal(rsched_period_parse(RS_MONTH, "2026-13", &p), -EINVAL);
}

static void test_names(void **state)
{
    (void)state;
    const char *good[] = {"weekly", "2026-W47", "report.html", "report-sla_x.csv", NULL};
    const char *bad[] = {"",     ".",   "..",  "../x",   "a/b",           ".hidden",
                         "a..b", "x y", "x\n", "%2e%2e", "report.html\\", NULL};
    for (size_t i = 0; good[i] != NULL; i++) {
        assert_true(rsched_valid_name(good[i]));
    }
    for (size_t i = 0; bad[i] != NULL; i++) {
        if (rsched_valid_name(bad[i])) {
            fail_msg("\"%s\" accepted", bad[i]);
        }
    }
    assert_false(rsched_valid_name(NULL));
}

/* `reports:` of the YAML text decoded; the rc, with *out (free with rsched_conf_free). */
static int decode(const char *yaml, struct rsched_conf **out, struct wp_conf_err *err)
{
    struct wp_conf_doc *doc = NULL;
    int rc = 0;

    *out = NULL;
    memset(err, 0, sizeof(*err));
    assert_int_equal(wp_conf_parse("collector.yaml", yaml, strlen(yaml), err, &doc), 0);
    rc = rsched_conf_decode(doc, wp_conf_map_get(doc, wp_conf_root(doc), "reports"), out, NULL,
                            err);
    wp_conf_free(doc);
    return rc;
}

static void test_limits(void **state)
{
    struct rsched_conf *c = NULL;
    struct wp_conf_err err;
    const struct rsched_kconf *k = NULL;

    (void)state;
    assert_int_equal(decode("reports:\n"
                            "  kinds:\n"
                            "    - kind: inspection\n"
                            "      limits: {disk: 85, load: 3.5, stale: 30}\n",
                            &c, &err),
                     0);
    k = rsched_conf_kind(c, "inspection");
    assert_non_null(k);
    assert_true(k->has_limits);
    assert_true(k->lim.disk_pct == 85);
    assert_true(k->lim.load_per_core == 3.5);
    assert_int_equal(k->lim.stale_ms, 30 * 60000);
    assert_true(k->lim.inode_pct == 90); /* not given: the default */
    assert_true(k->lim.cpu_pct == 90);
    assert_false(rsched_conf_kind(c, "weekly")->has_limits);
    assert_null(rsched_conf_kind(c, "nosuch"));
    rsched_conf_free(&c, NULL);

    /* without limits: the defaults, and the scheduler passes none */
    assert_int_equal(decode("reports:\n  kinds: [{kind: inspection}]\n", &c, &err), 0);
    assert_false(rsched_conf_kind(c, "inspection")->has_limits);
    assert_true(rsched_conf_kind(c, "inspection")->lim.disk_pct == 90);
    rsched_conf_free(&c, NULL);
}

static void test_limits_bad(void **state)
{
    static const struct {
        const char *yaml, *want;
    } bad[] = {
        {"reports:\n  kinds:\n    - kind: inspection\n      limits: {disk: 85, cpu: 120}\n",
         "collector.yaml:4:31: reports.kinds[0].limits: cpu: expected a positive number up to 100, "
         "got \"120\""},
        {"reports:\n  kinds:\n    - kind: inspection\n      limits:\n        load: lots\n",
         "collector.yaml:5:15: reports.kinds[0].limits: load: expected a positive number, got "
         "\"lots\""},
        {"reports:\n  kinds:\n    - kind: inspection\n      limits: {disks: 85}\n",
         "collector.yaml:4:23: reports.kinds[0].limits: unknown \"disks\""},
        {"reports:\n  kinds:\n    - kind: inspection\n      limits: {mem: \"50,cpu=1\"}\n",
         "collector.yaml:4:21: reports.kinds[0].limits: mem: expected a number"},
        {"reports:\n  kinds:\n    - kind: weekly\n      limits: {disk: 80}\n",
         "collector.yaml:4:15: reports.kinds[0].limits: only the inspection report has limits"},
        {"reports:\n  kinds:\n    - kind: inspection\n      limits: 90\n", "collector.yaml:4:"},
    };
    struct rsched_conf *c = NULL;
    struct wp_conf_err err;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_true(decode(bad[i].yaml, &c, &err) < 0);
        if (strncmp(err.msg, bad[i].want, strlen(bad[i].want)) != 0) {
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, err.msg, bad[i].want);
        }
        rsched_conf_free(&c, NULL);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),        cmocka_unit_test(test_weekly_year_end),
        cmocka_unit_test(test_monthly_ends), cmocka_unit_test(test_daily),
        cmocka_unit_test(test_berlin_dst),   cmocka_unit_test(test_period_parse),
        cmocka_unit_test(test_names),        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_limits_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
