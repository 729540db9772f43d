/* SPDX-License-Identifier: Apache-2.0 */
/* Tests: what the report tests (test_report, test_report_inspect, test_attendance) share to
 * write a synthetic state directory through the real stores and to read back what the reports
 * make of it. Include after <cmocka.h>. */
#ifndef WP_TESTS_REPORT_FIXTURE_H
#define WP_TESTS_REPORT_FIXTURE_H

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "db.h"
#include "lines.h"
#include "report_doc.h"
#include "wp/mem.h"

/* The schema of the collector's events store (events.db): checks, their history, log events. */
#define RFX_EVENTS_SCHEMA                                                                          \
    "CREATE TABLE checks(host TEXT NOT NULL, name TEXT NOT NULL, status INTEGER NOT NULL, "        \
    "output TEXT NOT NULL, since_ms INTEGER NOT NULL, ts_ms INTEGER NOT NULL, "                    \
    "PRIMARY KEY(host, name));"                                                                    \
    "CREATE TABLE check_history(id INTEGER PRIMARY KEY, host TEXT NOT NULL, name TEXT NOT NULL, "  \
    "ts_ms INTEGER NOT NULL, status INTEGER NOT NULL, output TEXT NOT NULL);"                      \
    "CREATE TABLE log_events(id INTEGER PRIMARY KEY, host TEXT NOT NULL, ts_ms INTEGER NOT NULL, " \
    "source TEXT NOT NULL, rule TEXT NOT NULL, severity INTEGER NOT NULL, text TEXT NOT NULL, "    \
    "fields TEXT NOT NULL DEFAULT '{}');"

/* The collector's local time zone in every report test: UTC+8, no daylight saving. */
static inline void rfx_tz(void)
{
    setenv("TZ", "CST-8", 1);
    tzset();
}

/* The data builder mode of a test (tests/integration/test_report.sh runs the CLI on its data):
 * when the environment variable env names a directory, make it and make(dir) in it. Returns 1
 * when it did (the test then exits), else 0. */
static inline int rfx_make_only(const char *env, void (*make)(const char *dir))
{
    const char *dir = getenv(env);

    if (dir == NULL) {
        return 0;
    }
    mkdir(dir, 0755);
    make(dir);
    return 1;
}

/* cmocka group setup: a new directory /tmp/<name>-XXXXXX in dir (n bytes) with make(dir) run in
 * it (make may be NULL). 0, or -1 when the directory cannot be made. */
static inline int rfx_setup(char *dir, size_t n, const char *name, void (*make)(const char *dir))
{
    snprintf(dir, n, "/tmp/%s-XXXXXX", name);
    if (mkdtemp(dir) == NULL) {
        return -1;
    }
    if (make != NULL) {
        make(dir);
    }
    return 0;
}

static inline int rfx_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Remove dir and everything below it, unless WP_KEEP is set (to look at the data). */
static inline void rfx_rmtree(const char *dir)
{
    if (getenv("WP_KEEP") == NULL) {
        nftw(dir, rfx_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
}

/* sqlite3_exec(), failing the test with the statement and SQLite's message on an error. */
static inline void rfx_exec(sqlite3 *h, const char *sql)
{
    char *msg = NULL;

    if (sqlite3_exec(h, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fail_msg("%s: %s", sql, msg);
    }
}

/* DIR/events.db made with RFX_EVENTS_SCHEMA; sqlite3_close() it. */
static inline sqlite3 *rfx_events_db(const char *dir)
{
    char path[256];
    sqlite3 *h = NULL;

    snprintf(path, sizeof(path), "%s/events.db", dir);
    assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
    rfx_exec(h, RFX_EVENTS_SCHEMA);
    return h;
}

/* DIR/lines.db opened through the lines store with a transaction begun; end with
 * rfx_lines_end(). */
static inline struct coll_lines *rfx_lines_begin(const char *dir)
{
    char path[256];
    struct coll_lines *l = NULL;

    snprintf(path, sizeof(path), "%s/lines.db", dir);
    assert_int_equal(coll_lines_open(path, &l), 0);
    assert_int_equal(coll_lines_begin(l), 0);
    return l;
}

/* Commit and close. */
static inline void rfx_lines_end(struct coll_lines *l)
{
    assert_int_equal(coll_lines_commit(l), 0);
    coll_lines_close(l);
}

/* An agent of host (its id too) in the registry DIR/watchpost.db, first and last seen at the
 * unix times given. */
static inline void rfx_agent_put(const char *dir, const char *host, int64_t first_s, int64_t last_s)
{
    char path[256];
    struct coll_db *db = NULL;
    struct coll_db_agent a;

    snprintf(path, sizeof(path), "%s/watchpost.db", dir);
    assert_int_equal(coll_db_open(path, &db), 0);
    memset(&a, 0, sizeof(a));
    a.id = host;
    a.host = host;
    a.labels = "";
    a.first_seen = first_s;
    a.last_seen = last_s;
    assert_int_equal(coll_db_agent_put(db, &a), 0);
    coll_db_close(db);
}

/* A series of agent in the registry DIR/watchpost.db: gauges fields[0..nf), a row every
 * step_s, stored in file (relative to the RRD root). */
static inline void rfx_series_put(const char *dir, const char *agent, uint32_t sid, const char *grp,
                                  const char *inst, const char *const *fields, int nf,
                                  const char *file, uint32_t step_s)
{
    char path[256];
    struct coll_db *db = NULL;
    struct wp_series_def d;

    snprintf(path, sizeof(path), "%s/watchpost.db", dir);
    assert_int_equal(coll_db_open(path, &db), 0);
    memset(&d, 0, sizeof(d));
    d.id = sid;
    d.group.p = grp;
    d.group.len = (uint32_t)strlen(grp);
    d.inst.p = inst;
    d.inst.len = (uint32_t)strlen(inst);
    d.nfields = (uint32_t)nf;
    for (int i = 0; i < nf; i++) {
        d.fields[i].p = fields[i];
        d.fields[i].len = (uint32_t)strlen(fields[i]);
    }
    d.type = WP_DS_GAUGE;
    d.step_s = step_s;
    assert_int_equal(coll_db_series_put(db, agent, &d, file), 0);
    coll_db_close(db);
}

/* The path DIR/rrd/<agent>/<file> into path (n bytes), its directories made. */
static inline void rfx_rrd_path(const char *dir, const char *agent, const char *file, char *path,
                                size_t n)
{
    snprintf(path, n, "%s/rrd", dir);
    mkdir(path, 0755);
    snprintf(path, n, "%s/rrd/%s", dir, agent);
    mkdir(path, 0755);
    snprintf(path, n, "%s/rrd/%s/%s", dir, agent, file);
}

/* The document as HTML (free()). noinline: inlined at -O2, GCC 12 takes the result for a
 * pointer to the local that open_memstream() wrote it through (-Wdangling-pointer, a false
 * positive). */
__attribute__((noinline, unused)) static char *rfx_html(const struct rdoc *d)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(f);
    assert_int_equal(rdoc_write_html(d, f), 0);
    fclose(f);
    return buf;
}

/* The whole file at path with a NUL added (free()), its length in *len. */
static inline char *rfx_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;

    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = wp_xmalloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

#endif
