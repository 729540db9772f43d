/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers shared by the report modules (report.c, report_render.c, report_inspect.c,
 * attendance.c), defined in report.c: read-only access to the stores, the rows of an RRD file,
 * interval sets, local time and the fixed formats of report values. Not for other modules.
 * Single-threaded: the formatted values live in one ring of static buffers.
 */
#ifndef WP_COLLECTOR_REPORT_INT_H
#define WP_COLLECTOR_REPORT_INT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <sqlite3.h>

/* ---- the stores (SQLite, read-only) ---- */

/* Open DIR/name read-only with a 5 s busy timeout. 0; WP_ENOTFOUND when the file is not there
 * (err untouched); WP_EDB with "PATH: message" in err. Close *out with sqlite3_close(). */
int rep_ro_open(const char *dir, const char *name, sqlite3 **out, char *err, size_t errlen);
/* 1 when db has a table called name, else 0. */
int rep_has_table(sqlite3 *db, const char *name);
/* Puts "what: <SQLite's message>" in err and returns WP_EDB. */
int rep_db_fail(sqlite3 *db, const char *what, char *err, size_t errlen);
/* Column i of the current row as text, "" for NULL; valid until the next step. */
const char *rep_col_str(sqlite3_stmt *s, int i);
/* The same as a copy (free()). */
char *rep_col_dup(sqlite3_stmt *s, int i);
/* 1 when name is an item of the comma-separated list (NULL: no item), else 0. */
int rep_in_list(const char *list, const char *name);

/* ---- the rows of an RRD file ---- */

struct rep_vec {
    double *v;
    int64_t *ts; /* the end of each row's interval, s */
    size_t n, cap;
};

/* A wp_rrdq_fn appending (ts_s, value) to the struct rep_vec arg; returns 0. */
int rep_vec_add(void *arg, int64_t ts_s, double value);
void rep_vec_free(struct rep_vec *v);
/* Append to v the AVERAGE rows of data source ds of the RRD file path that end within (s0, s1]
 * (seconds), from the finest archive that covers the range (wp_rrdq_fetch()). finite: only the
 * rows with a value; else unknown rows are kept as NAN, so that two data sources of one file
 * stay aligned by index. *step (may be NULL) gets the rows' resolution. 0, or the error of
 * wp_rrdq_fetch() with v as it was. */
int rep_rrd_rows(const char *path, const char *ds, int64_t s0, int64_t s1, int finite,
                 struct rep_vec *v, uint32_t *step);

/* ---- sets of time intervals [a, b) ---- */

struct rep_ivs {
    int64_t (*v)[2];
    size_t n, cap;
};

/* Add [a, b) clipped to [lo, hi); an empty interval is not added. */
void rep_ivs_add(struct rep_ivs *s, int64_t a, int64_t b, int64_t lo, int64_t hi);
/* Sort and merge in place; returns the length of the union. */
int64_t rep_ivs_union(struct rep_ivs *s);
void rep_ivs_free(struct rep_ivs *s);

/* ---- local time (TZ) ---- */

/* y-m-d plus minute minutes, local time, in ms; mktime() normalises out-of-range months,
 * days and minutes (the 0th is the last day of the month before, 24:00 the next midnight). */
int64_t rep_local_at(int y, int mon, int mday, int minute);
void rep_local_tm(int64_t ms, struct tm *tm);

/* ---- formatted values ---- */

#define REP_FMT_LEN 128 /* bytes of a ring buffer */

/* The next of 16 buffers of REP_FMT_LEN bytes, enough for the values of one table row: a
 * value stays valid for 15 more calls. */
char *rep_ring(void);
/* "2026-11-30 08:30", local time (ring). */
const char *rep_time_str(int64_t ms);
/* ISO 8601 local time with its offset, "2026-11-23T00:00:00+08:00" (ring). */
const char *rep_iso_str(int64_t ms);
/* The UTC offset at ms, "UTC+08:00" (ring). */
const char *rep_tz_str(int64_t ms);
/* ms as hours with two decimals, "8.72" (ring). */
const char *rep_hours_str(int64_t ms);
/* The length of s cut to at most max bytes on a UTF-8 character boundary. */
size_t rep_utf8_cut(const char *s, size_t max);

#endif
