/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Seat attendance (attendance.c): the seat sessions of lines.db (seats.h) checked against a
 * schedule file (shifts per seat or seat glob, weekdays and times in local time, grace
 * minutes, public holidays and make-up working days): per seat and scheduled day the first
 * login, last logout, logged-in and paused hours, late start, early leave or absence, and
 * per seat totals, as a report document (report_doc.h). Like report.c it reads stored data
 * only and computes as of the period end, so a rerun on the same data gives the same bytes.
 * Times are local (TZ). docs/REPORTS.md defines every figure. Single-threaded.
 */
#ifndef WP_COLLECTOR_ATTENDANCE_H
#define WP_COLLECTOR_ATTENDANCE_H

#include <stddef.h>
#include <stdint.h>

#include "report.h"
#include "report_doc.h"
#include "wp/conf.h"

/* A parsed schedule file (opaque). */
struct att_sched;

/* Load the schedule file path (YAML: shifts, holidays, workdays; see docs/REPORTS.md).
 * 0, or WP_ECONFIG / -errno with "FILE:LINE:COL: ..." in err. Free with att_sched_free(). */
int att_sched_load(const char *path, struct att_sched **out, struct wp_conf_err *err);
/* The same from text; name is used in messages. */
int att_sched_parse(const char *name, const char *text, size_t len, struct att_sched **out,
                    struct wp_conf_err *err);
void att_sched_free(struct att_sched *s);

enum att_kind {
    ATT_OFF = 0, /* no shift that day */
    ATT_WORK,    /* a scheduled day (a shift's weekday, or a make-up working day) */
    ATT_HOLIDAY, /* a shift's weekday that is a public holiday */
    ATT_NOT_YET, /* scheduled, but its shift ends after the time the report was made */
};

/* One local calendar day of one seat. */
struct att_day {
    int64_t day_ms; /* local midnight */
    enum att_kind kind;
    int makeup;                   /* a make-up working day (workdays:) */
    const char *shift;            /* the shift's name (in att_report.shift_names), or NULL */
    int64_t start_ms, end_ms;     /* the shift that day (ATT_WORK, ATT_HOLIDAY); end_ms on the
                                     next day for an overnight shift */
    int overnight;                /* the shift ends after midnight (22:00-06:00) */
    int64_t first_ms, last_ms;    /* first login / last logout of the sessions overlapping the
                                     day (0: none); last_ms of a session still open is 0 */
    int open;                     /* still logged in at the end of the data */
    int64_t logged_ms, paused_ms; /* within the calendar day */
    int absent;                   /* ATT_WORK and no session overlapping the shift */
    int late_min, early_min;      /* whole minutes; late only beyond the grace (else 0) */
};

struct att_seat {
    char *host, *seat;
    struct att_day *days; /* one per calendar day of the period */
    size_t ndays;
    int work_days, present_days, absent_days, holiday_days, late_n, early_n;
    int64_t late_min, early_min;
    int64_t logged_ms, paused_ms; /* over the whole period */
};

struct att_report {
    struct rep_period p;
    int64_t asof_ms;        /* min(period end, now): open sessions count up to it */
    int64_t horizon_ms;     /* min(period end + 1 day, now): sessions read up to it, for the
                               overnight shift of the last day */
    struct att_seat *seats; /* by host, seat */
    size_t nseats;
    char **unscheduled; /* "seat (host)" of seats with sessions but no shift, sorted */
    size_t nunscheduled;
    char **shift_names; /* copies of the schedule's shift names */
    size_t nshift_names;
};

/*
 * Attendance over period p from STATE_DIR/lines.db (read-only) against schedule s. now_ms
 * (the clock, or INT64_MAX in tests) only limits a period that has not ended: days whose shift
 * ends after it are ATT_NOT_YET. Seats: those with a session in the period or the 31 days
 * before it whose name (and host) a shift matches, plus the seats a shift names without a
 * wildcard. 0, or <0 with err. Free with att_report_free().
 */
int att_build(const char *state_dir, const struct att_sched *s, const struct rep_period *p,
              int64_t now_ms, struct att_report **out, char *err, size_t errlen);
void att_report_free(struct att_report *r);

/* The attendance report document (o->lang "en" or "zh-CN"). Free with rdoc_free(). */
struct rdoc *att_doc(const struct att_report *r, const struct rep_opts *o);

#endif
