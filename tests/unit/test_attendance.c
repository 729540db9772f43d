/* SPDX-License-Identifier: Apache-2.0 */
/* Attendance report tests: a synthetic week (2026-W47, UTC+8) of seat sessions written through
 * the real seats API with injected times, checked against a schedule with a holiday and a
 * make-up working day, with hand-computed answers. `WP_ATT_MAKE=DIR test_attendance` only
 * writes the data and DIR/attendance.yaml (tests/integration/test_report.sh runs the CLI). */
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

#include "attendance.h"
#include "lines.h"
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

static char g_dir[64];

static const char sched_yaml[] =
    "# Wednesday 2026-11-18 a public holiday, Saturday 2026-11-21 a make-up working day\n"
    "shifts:\n"
    "  - name: day\n"
    "    seats: [\"80*\", \"8020\"]\n"
    "    hosts: pbx1\n"
    "    days: mon-fri\n"
    "    start: \"08:30\"\n"
    "    end: \"17:30\"\n"
    "  - name: late\n"
    "    seats: 8101\n"
    "    days: [mon, wed, fri]\n"
    "    start: \"12:00\"\n"
    "    end: \"20:00\"\n"
    "    grace_minutes: 5\n"
    "holidays:\n"
    "  - 2026-11-18\n"
    "  - 2026-12-31..2027-01-01\n"
    "workdays:\n"
    "  - 2026-11-21\n";

/* ---- the synthetic data ---- */

static void ev(struct coll_seats *s, const char *host, const char *seat, const char *queue,
               const char *action, int64_t at)
{
    assert_int_equal(coll_seats_put(s, host, seat, queue, action,
                                    strcmp(action, "pause") == 0 ? "lunch" : NULL, at, 0, 0),
                     1);
}

/* One session of seat in queue q1 on day d (0 = Monday) from h1:m1 to h2:m2. */
static void session(struct coll_seats *s, const char *host, const char *seat, int d, int h1, int m1,
                    int h2, int m2)
{
    ev(s, host, seat, "q1", "login", F + d * DAY + h1 * HOUR + m1 * MIN);
    ev(s, host, seat, "q1", "logout", F + d * DAY + h2 * HOUR + m2 * MIN);
}

static void make_state(const char *dir)
{
    char path[256];
    struct coll_lines *l = rfx_lines_begin(dir);
    struct coll_seats *s = coll_lines_seats(l);

    /* 8011: Monday 08:30-17:30 in two queues with a lunch pause */
    ev(s, "pbx1", "8011", "q1", "login", F + 8 * HOUR + 30 * MIN);
    ev(s, "pbx1", "8011", "q2", "login", F + 8 * HOUR + 30 * MIN);
    ev(s, "pbx1", "8011", "q1", "pause", F + 12 * HOUR);
    ev(s, "pbx1", "8011", "q1", "unpause", F + 13 * HOUR);
    ev(s, "pbx1", "8011", "q1", "logout", F + 17 * HOUR + 30 * MIN);
    ev(s, "pbx1", "8011", "q2", "logout", F + 17 * HOUR + 30 * MIN);
    session(s, "pbx1", "8011", 1, 8, 47, 17, 30); /* Tuesday: late by 17 min */
    /* Wednesday: the holiday, no session */
    session(s, "pbx1", "8011", 3, 8, 25, 16, 50); /* Thursday: early leave by 40 min */
    session(s, "pbx1", "8011", 4, 8, 30, 17, 30); /* Friday */
    session(s, "pbx1", "8011", 5, 8, 29, 17, 31); /* Saturday, the make-up working day */

    /* 8012: Monday and Thursday only: absent Tuesday, Friday and the make-up Saturday */
    session(s, "pbx1", "8012", 0, 8, 30, 17, 30);
    session(s, "pbx1", "8012", 3, 8, 30, 17, 30);

    /* 8101 on the late shift (12:00-20:00, 5 min grace) */
    session(s, "pbx2", "8101", 0, 12, 4, 20, 0); /* within the grace: not late */
    session(s, "pbx2", "8101", 2, 12, 0, 16, 0); /* works on the holiday */
    session(s, "pbx2", "8101", 4, 12, 6, 19, 0); /* late by 6 min, early by 60 */
    /* 9000 has no shift */
    session(s, "pbx1", "9000", 0, 9, 0, 10, 0);
    /* 8013 on another host than the day shift's: no shift either */
    session(s, "pbx9", "8013", 0, 9, 0, 10, 0);
    /* 8014: logged in Friday 08:30 and still logged in at the end of the data */
    ev(s, "pbx1", "8014", "q1", "login", F + 4 * DAY + 8 * HOUR + 30 * MIN);
    rfx_lines_end(l);

    snprintf(path, sizeof(path), "%s/attendance.yaml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(sched_yaml, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    return rfx_setup(g_dir, sizeof(g_dir), "wp-attendance", make_state);
}

static int teardown(void **state)
{
    (void)state;
    rfx_rmtree(g_dir);
    return 0;
}

/* ---- helpers ---- */

static struct att_sched *sched(void)
{
    struct att_sched *s = NULL;
    struct wp_conf_err err;
    char path[128];

    snprintf(path, sizeof(path), "%s/attendance.yaml", g_dir);
    int rc = att_sched_load(path, &s, &err);
    if (rc != 0) {
        fprintf(stderr, "%s\n", err.msg);
    }
    assert_int_equal(rc, 0);
    return s;
}

static struct att_report *build_at(int64_t now)
{
    struct rep_period c, p;
    struct att_report *r = NULL;
    struct att_sched *s = sched();
    char err[256];

    assert_int_equal(rep_week("2026-W47", 0, &c, &p), 0);
    int rc = att_build(g_dir, s, &c, now, &r, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "%s\n", err);
    }
    assert_int_equal(rc, 0);
    att_sched_free(s);
    return r;
}

static const struct att_seat *seat_of(const struct att_report *r, const char *host,
                                      const char *seat)
{
    for (size_t i = 0; i < r->nseats; i++) {
        if (strcmp(r->seats[i].host, host) == 0 && strcmp(r->seats[i].seat, seat) == 0) {
            return &r->seats[i];
        }
    }
    fail_msg("no seat %s (%s)", seat, host);
    return NULL;
}

/* ---- tests ---- */

static void late_early_absent(void **state)
{
    struct att_report *r = build_at(INT64_MAX);

    (void)state;
    assert_int_equal(r->asof_ms, F + 7 * DAY);
    /* 8011, 8012, 8014, 8020 on pbx1 and 8101 on pbx2; 9000 and 8013 have no shift */
    assert_int_equal(r->nseats, 5);
    assert_string_equal(r->seats[0].seat, "8011");
    assert_string_equal(r->seats[3].seat, "8020");
    assert_string_equal(r->seats[4].seat, "8101");
    assert_int_equal(r->nunscheduled, 2);
    assert_string_equal(r->unscheduled[0], "8013 (pbx9)");
    assert_string_equal(r->unscheduled[1], "9000 (pbx1)");

    const struct att_seat *s = seat_of(r, "pbx1", "8011");
    assert_int_equal(s->ndays, 7);
    /* Monday: in from 08:30 to 17:30, one hour's lunch pause */
    assert_int_equal(s->days[0].kind, ATT_WORK);
    assert_string_equal(s->days[0].shift, "day");
    assert_int_equal(s->days[0].first_ms, F + 8 * HOUR + 30 * MIN);
    assert_int_equal(s->days[0].last_ms, F + 17 * HOUR + 30 * MIN);
    assert_int_equal(s->days[0].logged_ms, 9 * HOUR);
    assert_int_equal(s->days[0].paused_ms, HOUR);
    assert_int_equal(s->days[0].late_min, 0);
    assert_int_equal(s->days[0].early_min, 0);
    /* Tuesday: 08:47 against an 08:30 start is late by 17 min */
    assert_int_equal(s->days[1].late_min, 17);
    assert_int_equal(s->days[1].early_min, 0);
    assert_int_equal(s->days[1].absent, 0);
    /* Wednesday: a public holiday is not an absence */
    assert_int_equal(s->days[2].kind, ATT_HOLIDAY);
    assert_int_equal(s->days[2].absent, 0);
    /* Thursday: left at 16:50, early by 40 min */
    assert_int_equal(s->days[3].early_min, 40);
    assert_int_equal(s->days[3].late_min, 0);
    /* Saturday: the make-up working day counts */
    assert_int_equal(s->days[5].kind, ATT_WORK);
    assert_int_equal(s->days[5].makeup, 1);
    assert_int_equal(s->days[5].late_min, 0);
    /* Sunday: off */
    assert_int_equal(s->days[6].kind, ATT_OFF);
    assert_int_equal(s->work_days, 5);
    assert_int_equal(s->present_days, 5);
    assert_int_equal(s->absent_days, 0);
    assert_int_equal(s->holiday_days, 1);
    assert_int_equal(s->late_n, 1);
    assert_int_equal(s->late_min, 17);
    assert_int_equal(s->early_n, 1);
    assert_int_equal(s->early_min, 40);
    assert_int_equal(s->logged_ms, (540 + 523 + 505 + 540 + 542) * MIN);
    assert_int_equal(s->paused_ms, HOUR);

    /* 8012: no session on Tuesday, Friday and the make-up Saturday: absent */
    s = seat_of(r, "pbx1", "8012");
    assert_int_equal(s->days[1].absent, 1);
    assert_int_equal(s->days[2].absent, 0); /* the holiday */
    assert_int_equal(s->days[4].absent, 1);
    assert_int_equal(s->days[5].absent, 1);
    assert_int_equal(s->work_days, 5);
    assert_int_equal(s->present_days, 2);
    assert_int_equal(s->absent_days, 3);

    /* 8020: named in the schedule, never logged in: absent every working day */
    s = seat_of(r, "pbx1", "8020");
    assert_int_equal(s->absent_days, 5);
    assert_int_equal(s->holiday_days, 1);

    /* 8014: still logged in since Friday 08:30 */
    s = seat_of(r, "pbx1", "8014");
    assert_int_equal(s->days[4].open, 1);
    assert_int_equal(s->days[4].last_ms, 0);
    assert_int_equal(s->days[4].early_min, 0);
    assert_int_equal(s->days[5].early_min, 0); /* logged in all Saturday */
    assert_int_equal(s->days[5].late_min, 0);
    assert_int_equal(s->absent_days, 3);
    assert_int_equal(s->logged_ms, (15 * 60 + 30) * MIN + 2 * DAY);

    /* 8101, late shift with 5 min grace: 12:04 is not late, 12:06 is late by 6 */
    s = seat_of(r, "pbx2", "8101");
    assert_int_equal(s->days[0].late_min, 0);
    assert_int_equal(s->days[2].kind, ATT_HOLIDAY);
    assert_int_equal(s->days[2].logged_ms, 4 * HOUR);
    assert_int_equal(s->days[4].late_min, 6);
    assert_int_equal(s->days[4].early_min, 60);
    assert_int_equal(s->days[1].kind, ATT_OFF);  /* Tuesday: not a late-shift day */
    assert_int_equal(s->days[5].kind, ATT_WORK); /* every shift works the make-up day */
    assert_int_equal(s->days[5].absent, 1);
    assert_int_equal(s->work_days, 3);
    assert_int_equal(s->late_n, 1);
    assert_int_equal(s->early_n, 1);
    att_report_free(r);
}

/* A week that has not ended: days whose shift has not ended are not counted yet. */
static void not_yet(void **state)
{
    struct att_report *r = build_at(F + 3 * DAY + 12 * HOUR); /* Thursday noon */

    (void)state;
    assert_int_equal(r->asof_ms, F + 3 * DAY + 12 * HOUR);
    const struct att_seat *s = seat_of(r, "pbx1", "8011");
    assert_int_equal(s->days[3].kind, ATT_NOT_YET);
    assert_int_equal(s->days[4].kind, ATT_NOT_YET);
    assert_int_equal(s->work_days, 2);
    assert_int_equal(s->absent_days, 0);
    /* Thursday's session is open as of noon */
    assert_int_equal(s->days[3].open, 1);
    att_report_free(r);
}

static void config_errors(void **state)
{
    static const struct {
        const char *yaml, *want;
    } cases[] = {
        {"shifts:\n  - name: night\n    seats: \"8*\"\n    days: mon-fri\n"
         "    start: \"22:00\"\n    end: \"22:00\"\n",
         "t.yaml:6:10: shifts[0].end: 22:00 is the same time as start 22:00"},
        {"shifts:\n  - name: day\n    seats: \"8*\"\n    days: mon-fry\n"
         "    start: \"08:30\"\n    end: \"17:30\"\n",
         "t.yaml:4:11: shifts[0].days: \"mon-fry\" is not a weekday"},
        {"shifts:\n  - name: day\n    seats: \"8*\"\n    days: mon-fri\n"
         "    start: \"8h30\"\n    end: \"17:30\"\n",
         "t.yaml:5:12: shifts[0].start: expected a time like 08:30"},
        {"shifts:\n  - name: day\n    seats: \"8*\"\n    days: mon-fri\n"
         "    start: \"08:30\"\n    end: \"17:30\"\nholidays: [2026-02-30]\n",
         "t.yaml:7:12: holidays[0]: expected a date like 2026-10-01"},
        {"shifts:\n  - name: day\n    seats: \"8*\"\n    days: mon-fri\n"
         "    start: \"08:30\"\n    end: \"17:30\"\nholidays: [2026-10-01..2026-10-07]\n"
         "workdays: [2026-10-07]\n",
         "t.yaml:8:11: workdays: 2026-10-07 is both a holiday and a make-up working day"},
        {"shifts:\n  - name: day\n    days: mon-fri\n    start: \"08:30\"\n    end: \"17:30\"\n",
         "seats"},
        {"shifts:\n  - name: day\n    seats: \"8*\"\n    days: mon-fri\n"
         "    start: \"08:30\"\n    end: \"17:30\"\n    grace_minutes: 500\n",
         "t.yaml:7:20: shifts[0].grace_minutes"},
        {"shifts: []\n", "shifts: expected a list of at least one shift"},
    };
    struct wp_conf_err err;
    struct att_sched *s = NULL;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(&err, 0, sizeof(err));
        int rc = att_sched_parse("t.yaml", cases[i].yaml, strlen(cases[i].yaml), &s, &err);
        if (rc != WP_ECONFIG || strstr(err.msg, cases[i].want) == NULL) {
            fail_msg("case %zu: rc %d, message \"%s\", expected \"%s\"", i, rc, err.msg,
                     cases[i].want);
        }
        assert_null(s);
    }
    /* a shift ending at midnight is fine */
    const char *ok = "shifts:\n  - {name: eve, seats: \"8*\", days: \"sat,sun\", start: \"16:00\","
                     " end: \"24:00\"}\n";
    assert_int_equal(att_sched_parse("t.yaml", ok, strlen(ok), &s, &err), 0);
    att_sched_free(s);
}

/* Overnight shifts, 22:00 to 06:00 on Monday, Tuesday, Wednesday (a holiday), Thursday and
 * Sunday: each belongs to the day it starts on. */
static const char night_yaml[] = "shifts:\n"
                                 "  - name: night\n"
                                 "    seats: \"70*\"\n"
                                 "    days: [mon, tue, wed, thu, sun]\n"
                                 "    start: \"22:00\"\n"
                                 "    end: \"06:00\"\n"
                                 "holidays: [2026-11-18]\n";

static struct att_report *night_build(const char *dir, int64_t now)
{
    struct att_sched *s = NULL;
    struct att_report *r = NULL;
    struct wp_conf_err cerr;
    struct rep_period c, p;
    char err[256];

    assert_int_equal(att_sched_parse("night.yaml", night_yaml, strlen(night_yaml), &s, &cerr), 0);
    assert_int_equal(rep_week("2026-W47", 0, &c, &p), 0);
    assert_int_equal(att_build(dir, s, &c, now, &r, err, sizeof(err)), 0);
    att_sched_free(s);
    return r;
}

static void overnight(void **state)
{
    char dir[64];

    (void)state;
    assert_int_equal(rfx_setup(dir, sizeof(dir), "wp-attendance-night", NULL), 0);
    struct coll_lines *l = rfx_lines_begin(dir);
    struct coll_seats *s = coll_lines_seats(l);
    /* 7001: Monday night 22:10 to Tuesday 06:00 (late by 10 min) */
    ev(s, "pbx1", "7001", "q1", "login", F + 22 * HOUR + 10 * MIN);
    ev(s, "pbx1", "7001", "q1", "logout", F + DAY + 6 * HOUR);
    /* Tuesday night 21:55 to Wednesday 05:30 (early leave by 30 min) */
    ev(s, "pbx1", "7001", "q1", "login", F + DAY + 21 * HOUR + 55 * MIN);
    ev(s, "pbx1", "7001", "q1", "logout", F + 2 * DAY + 5 * HOUR + 30 * MIN);
    /* Wednesday night: the holiday (of the start day); Thursday night: absent */
    /* Sunday night 22:00 to Monday 06:00 of the next week, after the period end */
    ev(s, "pbx1", "7001", "q1", "login", F + 6 * DAY + 22 * HOUR);
    ev(s, "pbx1", "7001", "q1", "logout", F + 7 * DAY + 6 * HOUR);
    /* 7002: only the night from the Sunday before (22:00 to Monday 06:00): that is the
     * previous week's shift, so Monday night is an absence */
    ev(s, "pbx1", "7002", "q1", "login", F - 2 * HOUR);
    ev(s, "pbx1", "7002", "q1", "logout", F + 6 * HOUR);
    rfx_lines_end(l);

    struct att_report *r = night_build(dir, INT64_MAX);
    const struct att_seat *a = seat_of(r, "pbx1", "7001");
    assert_int_equal(a->ndays, 7);
    assert_int_equal(a->days[0].kind, ATT_WORK);
    assert_int_equal(a->days[0].overnight, 1);
    assert_int_equal(a->days[0].start_ms, F + 22 * HOUR);
    assert_int_equal(a->days[0].end_ms, F + DAY + 6 * HOUR);
    assert_int_equal(a->days[0].late_min, 10);
    assert_int_equal(a->days[0].early_min, 0);
    assert_int_equal(a->days[0].first_ms, F + 22 * HOUR + 10 * MIN);
    assert_int_equal(a->days[0].last_ms, F + DAY + 6 * HOUR);
    assert_int_equal(a->days[1].late_min, 0);
    assert_int_equal(a->days[1].early_min, 30);
    assert_int_equal(a->days[1].first_ms, F + DAY + 21 * HOUR + 55 * MIN);
    assert_int_equal(a->days[2].kind, ATT_HOLIDAY);
    assert_int_equal(a->days[2].absent, 0);
    assert_int_equal(a->days[3].kind, ATT_WORK);
    assert_int_equal(a->days[3].absent, 1);
    assert_int_equal(a->days[4].kind, ATT_OFF);
    assert_int_equal(a->days[5].kind, ATT_OFF);
    /* Sunday's shift ends Monday 06:00 of the next week: judged on the sessions after it */
    assert_int_equal(a->days[6].kind, ATT_WORK);
    assert_int_equal(a->days[6].absent, 0);
    assert_int_equal(a->days[6].late_min, 0);
    assert_int_equal(a->days[6].early_min, 0);
    assert_int_equal(a->work_days, 4);
    assert_int_equal(a->present_days, 3);
    assert_int_equal(a->absent_days, 1);
    assert_int_equal(a->holiday_days, 1);
    assert_int_equal(a->late_n, 1);
    assert_int_equal(a->late_min, 10);
    assert_int_equal(a->early_n, 1);
    assert_int_equal(a->early_min, 30);
    /* logged-in hours per calendar day of the period: Monday 1:50, Tuesday 6:00 + 2:05,
     * Wednesday 5:30, Sunday 2:00 (the rest is next week's) */
    assert_int_equal(a->days[0].logged_ms, HOUR + 50 * MIN);
    assert_int_equal(a->days[1].logged_ms, 8 * HOUR + 5 * MIN);
    assert_int_equal(a->days[2].logged_ms, 5 * HOUR + 30 * MIN);
    assert_int_equal(a->days[6].logged_ms, 2 * HOUR);
    assert_int_equal(a->logged_ms, 17 * HOUR + 25 * MIN);
    const struct att_seat *b = seat_of(r, "pbx1", "7002");
    assert_int_equal(b->days[0].absent, 1);
    assert_int_equal(b->days[0].first_ms, 0); /* the morning belongs to last Sunday's shift */
    assert_int_equal(b->absent_days, 4);
    assert_int_equal(b->present_days, 0);
    assert_int_equal(b->logged_ms, 6 * HOUR);

    struct rdoc *d = att_doc(r, NULL);
    char *h = rfx_html(d);
    assert_non_null(strstr(h, "22:00-06:00 (+1)"));
    free(h);
    rdoc_free(d);
    att_report_free(r);

    /* Monday 02:00 after the week: Sunday's shift is not over yet */
    r = night_build(dir, F + 7 * DAY + 2 * HOUR);
    a = seat_of(r, "pbx1", "7001");
    assert_int_equal(a->days[6].kind, ATT_NOT_YET);
    assert_int_equal(a->work_days, 3);
    assert_int_equal(a->present_days, 2);
    assert_int_equal(a->days[6].logged_ms, 2 * HOUR);
    att_report_free(r);

    rfx_rmtree(dir);
}

static void html_csv_rerun(void **state)
{
    struct att_report *r = build_at(INT64_MAX);
    struct rep_opts o;
    char out[128], err[256], path[256];
    size_t len = 0;

    (void)state;
    memset(&o, 0, sizeof(o));
    struct rdoc *d = att_doc(r, &o);
    char *h = rfx_html(d);
    assert_non_null(strstr(h, "Watchpost seat attendance report 2026-W47"));
    assert_non_null(strstr(h, "8013 (pbx9), 9000 (pbx1)"));
    snprintf(out, sizeof(out), "%s/out", g_dir);
    mkdir(out, 0755);
    assert_int_equal(rdoc_write_csv_dir(d, out, "a", err, sizeof(err)), 2);
    rdoc_free(d);
    att_report_free(r);

    /* the same data again: the same bytes */
    r = build_at(INT64_MAX);
    d = att_doc(r, &o);
    char *h2 = rfx_html(d);
    assert_string_equal(h, h2);
    free(h2);
    free(h);
    rdoc_free(d);

    snprintf(path, sizeof(path), "%s/a-seats.csv", out);
    char *c = rfx_slurp(path, &len);
    assert_memory_equal(c, "\xEF\xBB\xBF\"Host\",\"Seat\",\"Scheduled days\",\"Present\",", 43);
    assert_non_null(strstr(c, "\"pbx1\",\"8011\",\"5\",\"5\",\"0\",\"1\",\"17\",\"1\",\"40\",\"1\","
                              "\"44.17\",\"1.00\"\r\n"));
    assert_non_null(strstr(c, "\"pbx1\",\"8012\",\"5\",\"2\",\"3\",\"0\",\"0\",\"0\",\"0\",\"1\","
                              "\"18.00\",\"0.00\"\r\n"));
    free(c);
    snprintf(path, sizeof(path), "%s/a-days.csv", out);
    c = rfx_slurp(path, &len);
    assert_non_null(strstr(c, "\"2026-11-17\",\"Tue\",\"pbx1\",\"8011\",\"day\","
                              "\"08:30-17:30\",\"08:47\",\"17:30\",\"8.72\",\"0.00\","
                              "\"17\",\"0\",\"late\"\r\n"));
    assert_non_null(strstr(c, "\"2026-11-18\",\"Wed\",\"pbx1\",\"8011\",\"day\",\"08:30-17:30\","
                              "\"\",\"\",\"0.00\",\"0.00\",\"\",\"\",\"holiday\"\r\n"));
    assert_non_null(strstr(c, "\"2026-11-19\",\"Thu\",\"pbx1\",\"8011\",\"day\",\"08:30-17:30\","
                              "\"08:25\",\"16:50\",\"8.42\",\"0.00\",\"0\",\"40\","
                              "\"early leave\"\r\n"));
    assert_non_null(strstr(c, "\"2026-11-21\",\"Sat\",\"pbx1\",\"8011\",\"day\",\"08:30-17:30\","
                              "\"08:29\",\"17:31\",\"9.03\",\"0.00\",\"0\",\"0\","
                              "\"present (make-up workday)\"\r\n"));
    assert_non_null(strstr(c, "\"2026-11-20\",\"Fri\",\"pbx1\",\"8012\",\"day\",\"08:30-17:30\","
                              "\"\",\"\",\"0.00\",\"0.00\",\"\",\"\",\"absent\"\r\n"));
    assert_non_null(strstr(c, "\"2026-11-20\",\"Fri\",\"pbx1\",\"8014\",\"day\",\"08:30-17:30\","
                              "\"08:30\",\"(logged in)\""));
    assert_non_null(strstr(c, "\"2026-11-21\",\"Sat\",\"pbx1\",\"8014\",\"day\",\"08:30-17:30\","
                              "\"11-20 08:30\",\"(logged in)\",\"24.00\""));
    assert_non_null(strstr(c, "\"2026-11-22\",\"Sun\",\"pbx1\",\"8014\",\"\",\"\","
                              "\"11-20 08:30\",\"(logged in)\",\"24.00\",\"0.00\",\"\",\"\","
                              "\"not scheduled\"\r\n"));
    assert_null(strstr(c, "\"2026-11-22\",\"Sun\",\"pbx1\",\"8011\""));
    free(c);

    o.lang = "zh-CN";
    d = att_doc(r, &o);
    h = rfx_html(d);
    assert_non_null(strstr(h, "lang=\"zh-CN\""));
    assert_non_null(strstr(h, "Watchpost 座席考勤报告 2026-W47"));
    assert_non_null(strstr(h, "迟到"));
    assert_non_null(strstr(h, "出勤（调休上班）"));
    free(h);
    rdoc_free(d);
    att_report_free(r);
}

static void no_store(void **state)
{
    char dir[64], err[256];
    struct rep_period c, p;
    struct att_report *r = NULL;
    struct att_sched *s = sched();

    (void)state;
    assert_int_equal(rfx_setup(dir, sizeof(dir), "wp-attendance-empty", NULL), 0);
    assert_int_equal(rep_month("2026-11", 0, &c, &p), 0);
    assert_int_equal(att_build(dir, s, &c, INT64_MAX, &r, err, sizeof(err)), 0);
    assert_int_equal(r->nseats, 2); /* 8020 and 8101, named in the schedule */
    assert_string_equal(r->seats[0].seat, "8101");
    assert_string_equal(r->seats[0].host, "");
    assert_string_equal(r->seats[1].seat, "8020");
    assert_int_equal(r->seats[1].ndays, 30);
    /* November 2026: 21 weekdays, less the holiday, plus the make-up Saturday */
    assert_int_equal(r->seats[1].absent_days, 21);
    struct rdoc *d = att_doc(r, NULL);
    rdoc_free(d);
    att_report_free(r);
    att_sched_free(s);
    rmdir(dir);
}

/* The weekly health report with a schedule (report weekly --schedule): the same per-seat
 * figures in its telephony section, the previous week's beside them, and findings. */
static struct rdoc *health_doc(const char *dir, const char *lang, int with_schedule)
{
    struct rep_period c, p;
    struct rep_stats *cur = NULL, *prev = NULL;
    struct att_sched *s = sched();
    struct rep_opts o;
    char err[256];

    memset(&o, 0, sizeof(o));
    o.lang = lang;
    assert_int_equal(rep_week("2026-W47", 0, &c, &p), 0);
    assert_int_equal(rep_stats_build(dir, &c, &o, &cur, err, sizeof(err)), 0);
    assert_int_equal(rep_stats_build(dir, &p, &o, &prev, err, sizeof(err)), 0);
    if (with_schedule) {
        assert_int_equal(rep_stats_attendance(cur, dir, s, INT64_MAX, err, sizeof(err)), 0);
        assert_int_equal(rep_stats_attendance(prev, dir, s, INT64_MAX, err, sizeof(err)), 0);
        assert_non_null(cur->att);
    }
    struct rdoc *d = rep_health_doc("weekly", cur, prev, &o);
    rep_stats_free(cur);
    rep_stats_free(prev);
    att_sched_free(s);
    return d;
}

static int csv_of(const struct rdoc *d, const char *out)
{
    char err[256];
    mkdir(out, 0755);
    int n = rdoc_write_csv_dir(d, out, "w", err, sizeof(err));
    assert_true(n > 0);
    return n;
}

static void weekly_with_schedule(void **state)
{
    char out[128], path[256];
    size_t len = 0;

    (void)state;
    struct rdoc *d = health_doc(g_dir, NULL, 0);
    char *h = rfx_html(d);
    assert_null(strstr(h, "Seat attendance"));
    assert_non_null(strstr(h, "is in the attendance report"));
    snprintf(out, sizeof(out), "%s/hw0", g_dir);
    int n0 = csv_of(d, out);
    free(h);
    rdoc_free(d);

    d = health_doc(g_dir, NULL, 1);
    h = rfx_html(d);
    assert_non_null(strstr(h, "Watchpost weekly health report 2026-W47"));
    assert_non_null(strstr(h, "Seat attendance"));
    snprintf(out, sizeof(out), "%s/hw1", g_dir);
    assert_int_equal(csv_of(d, out), n0 + 1); /* one table more: seat_attendance */
    /* the same data again: the same bytes */
    struct rdoc *d2 = health_doc(g_dir, NULL, 1);
    char *h2 = rfx_html(d2);
    assert_string_equal(h, h2);
    free(h2);
    rdoc_free(d2);
    free(h);
    rdoc_free(d);

    snprintf(path, sizeof(path), "%s/hw1/w-seat_attendance.csv", g_dir);
    char *c = rfx_slurp(path, &len);
    assert_memory_equal(c,
                        "\xEF\xBB\xBF\"Host\",\"Seat\",\"Shift\",\"Working days\",\"Logged in "
                        "(h)\",\"Late (times)\",\"Late (min)\",\"Early leave (times)\",\"Early "
                        "leave (min)\",\"Absent (days)\",\"Late, previous (times)\",\"Absent, "
                        "previous (days)\"\r\n",
                        190);
    /* 8011: 08:47 against 08:30 is one late start of 17 min, 16:50 one early leave of 40;
     * Wednesday the holiday is no absence: 5 working days (the make-up Saturday in), none
     * absent. Not seen the week before. */
    assert_non_null(strstr(c, "\"pbx1\",\"8011\",\"day\",\"5\",\"44.17\",\"1\",\"17\",\"1\","
                              "\"40\",\"0\",\"n/a\",\"n/a\"\r\n"));
    assert_non_null(strstr(c, "\"pbx1\",\"8012\",\"day\",\"5\",\"18.00\",\"0\",\"0\",\"0\","
                              "\"0\",\"3\",\"n/a\",\"n/a\"\r\n"));
    /* 8020, named in the schedule, never logged in: absent both weeks */
    assert_non_null(strstr(c, "\"pbx1\",\"8020\",\"day\",\"5\",\"0.00\",\"0\",\"0\",\"0\","
                              "\"0\",\"5\",\"0\",\"5\"\r\n"));
    /* 8101: the week before it had no session, so no host: matched by its seat */
    assert_non_null(strstr(c, "\"pbx2\",\"8101\",\"late\",\"3\",\"18.83\",\"1\",\"6\",\"1\","
                              "\"60\",\"1\",\"0\",\"3\"\r\n"));
    assert_null(strstr(c, "\"9000\"")); /* no shift */
    free(c);
    snprintf(path, sizeof(path), "%s/hw1/w-findings.csv", g_dir);
    c = rfx_slurp(path, &len);
    assert_non_null(strstr(c, "\"8020 (pbx1) absent 5 days (of 5 working days)\",\"5\",\"5\","
                              "\"\xe2\x86\x92\"\r\n"));
    assert_non_null(
        strstr(c, "\"8012 (pbx1) absent 3 days (of 5 working days)\",\"3\",\"n/a\",\"\"\r\n"));
    /* once late is not a finding; 8101's one absence neither */
    assert_null(strstr(c, "late 1 times"));
    assert_null(strstr(c, "8101"));
    free(c);

    d = health_doc(g_dir, "zh-CN", 1);
    h = rfx_html(d);
    assert_non_null(strstr(h, "座席考勤"));
    assert_non_null(strstr(h, "应出勤天数"));
    assert_non_null(strstr(h, "8012（pbx1）缺勤 3 天（应出勤 5 天）"));
    free(h);
    rdoc_free(d);
}

/* A seat late, leaving early and absent repeatedly is a finding, with the week before. */
static void weekly_findings_repeated(void **state)
{
    char dir[64], path[256];
    size_t len = 0;

    (void)state;
    assert_int_equal(rfx_setup(dir, sizeof(dir), "wp-attendance-late", NULL), 0);
    struct coll_lines *l = rfx_lines_begin(dir);
    struct coll_seats *s = coll_lines_seats(l);
    /* 2026-W46: late once (08:35), otherwise on time */
    session(s, "pbx1", "8011", -7, 8, 35, 17, 30);
    for (int d = -6; d < -2; d++) {
        session(s, "pbx1", "8011", d, 8, 30, 17, 30);
    }
    /* 2026-W47: late Monday (17), Tuesday (10) and Thursday (30 min); early Friday and the
     * make-up Saturday (30 min each); Wednesday is the holiday */
    session(s, "pbx1", "8011", 0, 8, 47, 17, 30);
    session(s, "pbx1", "8011", 1, 8, 40, 17, 30);
    session(s, "pbx1", "8011", 3, 9, 0, 17, 30);
    session(s, "pbx1", "8011", 4, 8, 30, 17, 0);
    session(s, "pbx1", "8011", 5, 8, 30, 17, 0);
    rfx_lines_end(l);

    struct rdoc *d = health_doc(dir, NULL, 1);
    char out[128];
    snprintf(out, sizeof(out), "%s/out", dir);
    csv_of(d, out);
    rdoc_free(d);
    snprintf(path, sizeof(path), "%s/w-findings.csv", out);
    char *c = rfx_slurp(path, &len);
    assert_non_null(
        strstr(c, "\"8011 (pbx1) late 3 times (57 min)\",\"3\",\"1\",\"\xe2\x86\x91\"\r\n"));
    assert_non_null(
        strstr(c, "\"8011 (pbx1) left early 2 times (60 min)\",\"2\",\"0\",\"\xe2\x86\x91\"\r\n"));
    /* absences: 8020 every working day, the week before too (5 → 5) */
    assert_non_null(strstr(c, "\"8020 (pbx1) absent 5 days (of 5 working days)\",\"5\",\"5\""));
    /* the kinds in order: absences, late starts, early leaves */
    assert_true(strstr(c, "absent 5 days") < strstr(c, "late 3 times"));
    assert_true(strstr(c, "late 3 times") < strstr(c, "left early 2 times"));
    free(c);
    /* logged in 8:43 + 8:50 + 8:30 + 8:30 + 8:30 = 43.05 h */
    snprintf(path, sizeof(path), "%s/w-seat_attendance.csv", out);
    c = rfx_slurp(path, &len);
    assert_non_null(strstr(c, "\"pbx1\",\"8011\",\"day\",\"5\",\"43.05\",\"3\",\"57\",\"2\","
                              "\"60\",\"0\",\"1\",\"0\"\r\n"));
    free(c);
    rfx_rmtree(dir);
}

int main(void)
{
    rfx_tz();
    if (rfx_make_only("WP_ATT_MAKE", make_state)) {
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(late_early_absent),
        cmocka_unit_test(not_yet),
        cmocka_unit_test(config_errors),
        cmocka_unit_test(html_csv_rerun),
        cmocka_unit_test(no_store),
        cmocka_unit_test(overnight),
        cmocka_unit_test(weekly_with_schedule),
        cmocka_unit_test(weekly_findings_repeated),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
