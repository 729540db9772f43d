/* SPDX-License-Identifier: Apache-2.0 */
/* Runtime maintenance windows (maint.c): validation, times, the store (add, end, list, the
 * change counter, a second connection as the CLI would use), the in-memory set (active at a
 * time, hosts by glob, groups of the rules config, ended early, transitions) and the rules
 * engine's suppression through the set: a window suppresses, ending it unsuppresses. */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* cmocka needs these first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "incident.h"
#include "maint.h"
#include "rules.h"
#include "rules_eval.h"
#include "wp/conf.h"
#include "wp/err.h"
#include "wp/mem.h"

#define MIN_MS  60000LL
#define HOUR_MS (60 * MIN_MS)
#define DAY_MS  (24 * HOUR_MS)
#define T0      1767225600000LL /* 2026-01-01T00:00:00Z */

static const char RULES[] = "groups:\n"
                            "  databases: [\"db-*\"]\n"
                            "  pbx: [pbx-1]\n"
                            "rules:\n"
                            "  - name: cpu_high\n"
                            "    metric: cpu.user\n"
                            "    when: \"last > 90\"\n";

struct fix {
    char dir[64];
    char path[128];
    struct maint_store *st;
    struct rule_set *rs;
};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fix *fx = wp_xcalloc(1, sizeof(*fx));
    struct wp_conf_err err;

    snprintf(fx->dir, sizeof(fx->dir), "/tmp/wp-maint-XXXXXX");
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof(fx->path), "%s/incidents.db", fx->dir);
    memset(&err, 0, sizeof(err));
    if (maint_open(fx->path, &fx->st) != 0 ||
        rules_parse("test.yaml", RULES, strlen(RULES), &err, &fx->rs) != 0) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fix *fx = *state;

    maint_close(fx->st);
    rules_free(fx->rs);
    if (getenv("WP_KEEP") == NULL) {
        nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    free(fx);
    return 0;
}

static const char *const H_DB1[] = {"db-1"};
static const char *const G_DB[] = {"databases"};

static struct maint_new good(void)
{
    struct maint_new n;
    memset(&n, 0, sizeof(n));
    n.name = "DB patching";
    n.hosts = H_DB1;
    n.nhosts = 1;
    n.starts_ms = T0;
    n.ends_ms = T0 + 2 * HOUR_MS;
    n.reason = "kernel update";
    n.by = "otto";
    return n;
}

/* maint_validate's verdict and that err holds `want` */
static void expect_bad(const struct maint_new *n, const struct rule_set *rs, const char *want)
{
    char err[512] = "";
    assert_int_equal(maint_validate(n, rs, T0, err, sizeof(err)), -EINVAL);
    if (strstr(err, want) == NULL) {
        fail_msg("error \"%s\" lacks \"%s\"", err, want);
    }
}

static void test_validate(void **state)
{
    struct fix *fx = *state;
    char err[512] = "";
    struct maint_new n = good();
    const char *const bad_host[] = {"db 1;rm"};
    const char *const glob_host[] = {"db-*", "web?.example.com"};
    const char *const bad_group[] = {"no such"};
    const char *const unknown_group[] = {"webservers"};
    char longname[MAINT_NAME_MAX + 2];

    assert_int_equal(maint_validate(&n, fx->rs, T0, err, sizeof(err)), 0);
    n.hosts = glob_host;
    n.nhosts = 2;
    assert_int_equal(maint_validate(&n, fx->rs, T0, err, sizeof(err)), 0);

    n = good();
    n.name = "";
    expect_bad(&n, fx->rs, "name: required");
    n.name = NULL;
    expect_bad(&n, fx->rs, "name: required");
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    n.name = longname;
    expect_bad(&n, fx->rs, "at most 128 bytes");
    n.name = "line\nbreak";
    expect_bad(&n, fx->rs, "no control characters");

    n = good();
    n.nhosts = 0;
    expect_bad(&n, fx->rs, "at least one host or group");
    n.hosts = bad_host;
    n.nhosts = 1;
    expect_bad(&n, fx->rs, "\"db 1;rm\" is not a host name");

    n = good();
    n.groups = bad_group;
    n.ngroups = 1;
    expect_bad(&n, fx->rs, "is not a group name");
    n.groups = unknown_group;
    expect_bad(&n, fx->rs, "no group \"webservers\" in the rules config");
    /* without a rule set (the CLI without -c) a plausible group passes */
    assert_int_equal(maint_validate(&n, NULL, T0, err, sizeof(err)), 0);
    n.nhosts = 0;
    n.groups = G_DB;
    assert_int_equal(maint_validate(&n, fx->rs, T0, err, sizeof(err)), 0);

    n = good();
    n.ends_ms = n.starts_ms;
    expect_bad(&n, fx->rs, "ends: must be after the start");
    n.ends_ms = n.starts_ms - 1;
    expect_bad(&n, fx->rs, "ends: must be after the start");
    n.ends_ms = n.starts_ms + 31 * DAY_MS; /* exactly 31 days: fine */
    assert_int_equal(maint_validate(&n, fx->rs, T0, err, sizeof(err)), 0);
    n.ends_ms = n.starts_ms + 31 * DAY_MS + 1;
    expect_bad(&n, fx->rs, "at most 31 days");
    n = good();
    n.starts_ms = T0 - 3 * HOUR_MS;
    n.ends_ms = T0 - HOUR_MS;
    expect_bad(&n, fx->rs, "already in the past");
    n = good();
    n.by = "";
    expect_bad(&n, fx->rs, "by:");
    /* times far out of range are refused before any arithmetic on them */
    n = good();
    n.starts_ms = INT64_MIN;
    n.ends_ms = INT64_MAX;
    expect_bad(&n, fx->rs, "between 1970 and 9999");
    n.starts_ms = -1;
    n.ends_ms = T0 + HOUR_MS;
    expect_bad(&n, fx->rs, "between 1970 and 9999");
    n.starts_ms = T0;
    n.ends_ms = MAINT_TIME_MAX + 1;
    expect_bad(&n, fx->rs, "between 1970 and 9999");
}

static void test_parse_time(void **state)
{
    int64_t t = 0;
    (void)state;

    assert_int_equal(maint_parse_time("now", T0, &t), 0);
    assert_int_equal(t, T0);
    assert_int_equal(maint_parse_time("+90m", T0, &t), 0);
    assert_int_equal(t, T0 + 90 * MIN_MS);
    assert_int_equal(maint_parse_time("2026-01-01T02:00:00Z", T0, &t), 0);
    assert_int_equal(t, T0 + 2 * HOUR_MS);
    assert_int_equal(maint_parse_time("2026-01-01T10:00+08:00", T0, &t), 0);
    assert_int_equal(t, T0 + 2 * HOUR_MS);
    assert_int_equal(maint_parse_time("2026-01-01T00:00:00-01:30", T0, &t), 0);
    assert_int_equal(t, T0 + 90 * MIN_MS);
    assert_int_equal(maint_parse_time("2026-01-01 02:00", T0, &t), 0); /* local: parses */
    assert_int_equal(maint_parse_time("", T0, &t), -EINVAL);
    assert_int_equal(maint_parse_time("tomorrow", T0, &t), -EINVAL);
    assert_int_equal(maint_parse_time("+soon", T0, &t), -EINVAL);
    assert_int_equal(maint_parse_time("+999999999999999999s", T0, &t), -EINVAL); /* no overflow */
    assert_int_equal(maint_parse_time("2026-01-01T02:00:00+8", T0, &t), -EINVAL);
    assert_int_equal(maint_parse_time("2026-13-01T02:00:00Z", T0, &t), -EINVAL);
}

struct collect {
    int64_t ids[16];
    int n;
};

static int collect_cb(void *arg, const struct maint_win *w)
{
    struct collect *c = arg;
    if (c->n < 16) {
        c->ids[c->n++] = w->id;
    }
    return 0;
}

static void test_store(void **state)
{
    struct fix *fx = *state;
    struct maint_new n = good();
    struct maint_win w;
    struct maint_store *other = NULL;
    struct collect c;
    char err[512] = "";
    int64_t id = 0, id2 = 0, g0 = 0, g1 = 0, g2 = 0;

    assert_int_equal(maint_gen(fx->st, &g0), 0);
    assert_int_equal(maint_add(fx->st, &n, fx->rs, T0, &id, err, sizeof(err)), 0);
    assert_true(id > 0);
    assert_int_equal(maint_gen(fx->st, &g1), 0);
    assert_true(g1 > g0);
    /* a bad one is refused and changes nothing */
    n.nhosts = 0;
    assert_int_equal(maint_add(fx->st, &n, fx->rs, T0, NULL, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "at least one host or group"));
    assert_int_equal(maint_gen(fx->st, &g2), 0);
    assert_int_equal(g2, g1);

    assert_int_equal(maint_get(fx->st, id, &w), 0);
    assert_string_equal(w.name, "DB patching");
    assert_int_equal(w.nhosts, 1);
    assert_string_equal(w.hosts[0], "db-1");
    assert_int_equal(w.ngroups, 0);
    assert_int_equal(w.starts_ms, T0);
    assert_int_equal(w.ends_ms, T0 + 2 * HOUR_MS);
    assert_string_equal(w.reason, "kernel update");
    assert_string_equal(w.created_by, "otto");
    assert_int_equal(w.created_ms, T0);
    assert_int_equal(w.ended_ms, 0);
    maint_win_cleanup(&w);
    assert_int_equal(maint_get(fx->st, id + 100, &w), WP_ENOTFOUND);

    /* another connection (the CLI) adds one: the counter moves for this one too */
    assert_int_equal(maint_open(fx->path, &other), 0);
    n = good();
    n.name = "PBX move";
    n.nhosts = 0;
    n.groups = (const char *const[]){"pbx"};
    n.ngroups = 1;
    n.starts_ms = T0 + DAY_MS;
    n.ends_ms = T0 + DAY_MS + HOUR_MS;
    assert_int_equal(maint_add(other, &n, fx->rs, T0, &id2, err, sizeof(err)), 0);
    assert_int_equal(maint_gen(fx->st, &g2), 0);
    assert_true(g2 > g1);

    /* end: once; the second time says who did it; unknown ids are not found */
    assert_int_equal(maint_end(fx->st, id, "vera", T0 + HOUR_MS, err, sizeof(err)), 0);
    assert_int_equal(maint_end(other, id, "otto", T0 + HOUR_MS, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "already ended by vera"));
    assert_int_equal(maint_end(fx->st, 999, "otto", T0, err, sizeof(err)), WP_ENOTFOUND);
    assert_non_null(strstr(err, "no maintenance window 999"));
    /* a window that is over cannot be ended */
    assert_int_equal(maint_end(fx->st, id2, "otto", T0 + 2 * DAY_MS, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "already over"));
    assert_int_equal(maint_get(fx->st, id, &w), 0);
    assert_int_equal(w.ended_ms, T0 + HOUR_MS);
    assert_string_equal(w.ended_by, "vera");
    assert_int_equal(maint_win_end(&w), T0 + HOUR_MS);
    maint_win_cleanup(&w);

    /* list: by end time since; the ended one ended at T0 + 1h */
    memset(&c, 0, sizeof(c));
    assert_int_equal(maint_list(fx->st, T0, collect_cb, &c), 0);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.ids[0], id);
    assert_int_equal(c.ids[1], id2);
    memset(&c, 0, sizeof(c));
    assert_int_equal(maint_list(fx->st, T0 + HOUR_MS + 1, collect_cb, &c), 0);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.ids[0], id2);
    maint_close(other);
}

static void test_set(void **state)
{
    struct fix *fx = *state;
    struct maint_new n = good();
    struct maint_set *ms = NULL;
    char err[512] = "";
    int64_t a = 0, b = 0, c = 0;
    const char *const web[] = {"web-?"};

    /* a: db-1 from T0 to T0+2h; b: group databases from T0+1h to T0+3h; c: web-? later */
    assert_int_equal(maint_add(fx->st, &n, fx->rs, T0, &a, err, sizeof(err)), 0);
    n.name = "all databases";
    n.nhosts = 0;
    n.groups = G_DB;
    n.ngroups = 1;
    n.starts_ms = T0 + HOUR_MS;
    n.ends_ms = T0 + 3 * HOUR_MS;
    assert_int_equal(maint_add(fx->st, &n, fx->rs, T0, &b, err, sizeof(err)), 0);
    n = good();
    n.name = "web";
    n.hosts = web;
    n.starts_ms = T0 + 10 * HOUR_MS;
    n.ends_ms = T0 + 11 * HOUR_MS;
    assert_int_equal(maint_add(fx->st, &n, fx->rs, T0, &c, err, sizeof(err)), 0);

    assert_int_equal(maint_set_load(fx->st, T0, &ms), 0);
    assert_int_equal(maint_set_count(ms), 3);
    /* starts is inclusive, ends exclusive */
    assert_null(maint_set_match(ms, fx->rs, "db-1", T0 - 1));
    assert_string_equal(maint_set_match(ms, fx->rs, "db-1", T0), "DB patching");
    assert_null(maint_set_match(ms, fx->rs, "db-2", T0));
    /* db-2 only through the group, from T0+1h */
    assert_string_equal(maint_set_match(ms, fx->rs, "db-2", T0 + HOUR_MS), "all databases");
    assert_string_equal(maint_set_match(ms, fx->rs, "db-1", T0 + 2 * HOUR_MS), "all databases");
    assert_null(maint_set_match(ms, fx->rs, "db-2", T0 + 3 * HOUR_MS));
    /* groups need the rules config; hosts are globs */
    assert_null(maint_set_match(ms, NULL, "db-2", T0 + HOUR_MS));
    assert_null(maint_set_match(ms, fx->rs, "pbx-1", T0 + HOUR_MS));
    assert_string_equal(maint_set_match(ms, fx->rs, "web-7", T0 + 10 * HOUR_MS), "web");
    assert_null(maint_set_match(ms, fx->rs, "web-17", T0 + 10 * HOUR_MS));
    assert_null(maint_set_match(NULL, fx->rs, "db-1", T0));
    maint_set_free(ms);

    /* ended early: the set loaded afterwards no longer covers the host */
    assert_int_equal(maint_end(fx->st, b, "otto", T0 + 90 * MIN_MS, err, sizeof(err)), 0);
    assert_int_equal(maint_set_load(fx->st, T0 + 90 * MIN_MS, &ms), 0);
    assert_null(maint_set_match(ms, fx->rs, "db-2", T0 + 90 * MIN_MS));
    assert_string_equal(maint_set_match(ms, fx->rs, "db-1", T0 + 90 * MIN_MS), "DB patching");
    maint_set_free(ms);
    /* an upcoming window cancelled before its start never covers anything */
    assert_int_equal(maint_end(fx->st, c, "otto", T0 + 2 * HOUR_MS, err, sizeof(err)), 0);
    assert_int_equal(maint_set_load(fx->st, T0 + 2 * HOUR_MS, &ms), 0);
    assert_null(maint_set_match(ms, fx->rs, "web-7", T0 + 10 * HOUR_MS));
    maint_set_free(ms);
}

struct trans {
    int starts, ends;
    int64_t last_id;
};

static void trans_cb(void *arg, const struct maint_win *w, int started)
{
    struct trans *t = arg;
    if (started) {
        t->starts++;
    } else {
        t->ends++;
    }
    t->last_id = w->id;
}

static void test_transitions(void **state)
{
    struct fix *fx = *state;
    struct maint_new n = good();
    struct maint_set *ms = NULL, *ms2 = NULL;
    struct trans t = {0, 0, 0};
    char err[512] = "";
    int64_t id = 0;

    n.starts_ms = T0 + HOUR_MS;
    n.ends_ms = T0 + 3 * HOUR_MS;
    assert_int_equal(maint_add(fx->st, &n, fx->rs, T0, &id, err, sizeof(err)), 0);
    assert_int_equal(maint_set_load(fx->st, T0, &ms), 0);
    maint_set_transitions(ms, NULL, T0, trans_cb, &t);
    assert_int_equal(t.starts + t.ends, 0);
    maint_set_transitions(ms, NULL, T0 + HOUR_MS, trans_cb, &t);
    assert_int_equal(t.starts, 1);
    assert_int_equal(t.last_id, id);
    maint_set_transitions(ms, NULL, T0 + HOUR_MS + 1000, trans_cb, &t);
    assert_int_equal(t.starts, 1); /* once */
    /* ended early: the reloaded set no longer holds it, the end is told once */
    assert_int_equal(maint_end(fx->st, id, "otto", T0 + 2 * HOUR_MS, err, sizeof(err)), 0);
    assert_int_equal(maint_set_load(fx->st, T0 + 2 * HOUR_MS + 1, &ms2), 0);
    maint_set_transitions(ms2, ms, T0 + 2 * HOUR_MS + 1, trans_cb, &t);
    assert_int_equal(t.ends, 1);
    assert_int_equal(t.starts, 1);
    maint_set_free(ms);
    maint_set_transitions(ms2, NULL, T0 + 2 * HOUR_MS + 2000, trans_cb, &t);
    assert_int_equal(t.ends, 1);
    maint_set_free(ms2);
}

/* ---- through the rules engine ---- */

struct rec {
    int fires, clears, supp_on, supp_off;
    char reason[256];
};

static int r_fire(void *arg, const struct inc_signal *sig, int64_t now)
{
    (void)sig;
    (void)now;
    ((struct rec *)arg)->fires++;
    return 0;
}

static int r_clear(void *arg, const char *fp, int64_t now)
{
    (void)fp;
    (void)now;
    ((struct rec *)arg)->clears++;
    return 0;
}

static int r_suppress(void *arg, const char *fp, int on, const char *reason, int64_t now)
{
    struct rec *r = arg;
    (void)fp;
    (void)now;
    if (on) {
        r->supp_on++;
    } else {
        r->supp_off++;
    }
    snprintf(r->reason, sizeof(r->reason), "%s", reason);
    return 0;
}

struct eng_ctx {
    struct maint_set *ms;
    const struct rule_set *rs;
};

static const char *eng_maint(void *arg, const char *host, int64_t now)
{
    struct eng_ctx *c = arg;
    return maint_set_match(c->ms, c->rs, host, now);
}

static void test_engine(void **state)
{
    struct fix *fx = *state;
    struct rec rec;
    struct rules_sink sink = {&rec, r_fire, r_clear, r_suppress, NULL, NULL};
    struct eng_ctx ctx = {NULL, fx->rs};
    struct maint_new n = good();
    char err[512] = "";
    int64_t id = 0;

    memset(&rec, 0, sizeof(rec));
    struct rules_eng *e = rules_eng_new(fx->rs, &sink);
    rules_eng_set_maint(e, eng_maint, &ctx);
    struct rules_host *h1 = rules_eng_host(e, "db-1", "db-1", NULL, T0);
    struct rules_host *h2 = rules_eng_host(e, "web-1", "web-1", NULL, T0);
    struct rules_series *s1 = rules_eng_series(e, h1, "cpu.user", "total");
    struct rules_series *s2 = rules_eng_series(e, h2, "cpu.user", "total");
    assert_non_null(s1);
    assert_non_null(s2);

    /* a window for the group "databases" from T0 for 2 h */
    n.nhosts = 0;
    n.groups = G_DB;
    n.ngroups = 1;
    assert_int_equal(maint_add(fx->st, &n, fx->rs, T0, &id, err, sizeof(err)), 0);
    assert_int_equal(maint_set_load(fx->st, T0, &ctx.ms), 0);

    /* db-1 breaches inside the window: suppressed with the window's name at once */
    rules_sample(e, s1, T0 + MIN_MS, 95);
    assert_int_equal(rec.fires, 1);
    assert_int_equal(rec.supp_on, 1);
    assert_string_equal(rec.reason, "maintenance DB patching");
    /* web-1 is not in the group: not suppressed */
    rules_sample(e, s2, T0 + MIN_MS, 95);
    assert_int_equal(rec.fires, 2);
    assert_int_equal(rec.supp_on, 1);
    rules_eng_tick(e, T0 + 2 * MIN_MS);
    assert_int_equal(rec.supp_off, 0);

    /* the operator ends it; the next tick after the reload lifts the suppression */
    assert_int_equal(maint_end(fx->st, id, "otto", T0 + 3 * MIN_MS, err, sizeof(err)), 0);
    rules_eng_tick(e, T0 + 3 * MIN_MS); /* the old set still holds it */
    assert_int_equal(rec.supp_off, 0);
    maint_set_free(ctx.ms);
    assert_int_equal(maint_set_load(fx->st, T0 + 3 * MIN_MS, &ctx.ms), 0);
    rules_eng_tick(e, T0 + 3 * MIN_MS + 1000);
    assert_int_equal(rec.supp_off, 1);
    assert_int_equal(rec.clears, 0);

    /* without a hook nothing is suppressed by runtime windows */
    rules_eng_set_maint(e, NULL, NULL);
    rules_eng_tick(e, T0 + 4 * MIN_MS);
    assert_int_equal(rec.supp_on, 1);
    rules_eng_free(e);
    maint_set_free(ctx.ms);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_time),
        cmocka_unit_test_setup_teardown(test_validate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transitions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
