/* SPDX-License-Identifier: Apache-2.0 */
/* Incident store tests: priority matrix and deadlines, reopen window, escalation boundaries,
 * suppression, operator actions, flapping, persistence and rule state; time is injected. */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
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
#include "wp/err.h"
#include "wp/mem.h"

#define T0   INT64_C(1767225600000) /* 2026-01-01T00:00:00Z */
#define SEC  INT64_C(1000)
#define MIN  (60 * SEC)
#define HOUR (60 * MIN)
#define DAY  (24 * HOUR)

#define MAX_TL 256

struct fix {
    char dir[64];
    char path[128];
    struct inc_store *st;
};

/* A copy of an incident's timeline. */
struct tl {
    int n;
    int64_t at[MAX_TL];
    char kind[MAX_TL][32];
    char by[MAX_TL][32];
    char text[MAX_TL][256];
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

    snprintf(fx->dir, sizeof(fx->dir), "/tmp/wp-inc-XXXXXX");
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof(fx->path), "%s/incidents.db", fx->dir);
    if (inc_open(fx->path, NULL, &fx->st) != 0) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fix *fx = *state;

    inc_close(fx->st);
    if (getenv("WP_KEEP") == NULL) {
        nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    } else {
        fprintf(stderr, "kept %s\n", fx->path);
    }
    free(fx);
    return 0;
}

static void reopen_store(struct fix *fx)
{
    inc_close(fx->st);
    fx->st = NULL;
    assert_int_equal(inc_open(fx->path, NULL, &fx->st), 0);
}

static struct inc_signal sig(const char *fp, int impact, int urgency, const char *values)
{
    struct inc_signal s = {
        .fingerprint = fp,
        .rule = "disk_full",
        .host = "db-1",
        .impact = impact,
        .urgency = urgency,
        .category = "capacity",
        .summary = "Disk /u01 on db-1 is full",
        .description = "the filesystem is nearly full",
        .runbook = "https://wiki/runbooks/disk",
        .values_json = values,
    };
    return s;
}

static int64_t fire(struct fix *fx, const char *fp, int64_t now, int expect_rc)
{
    struct inc_signal s = sig(fp, 1, 1, "{\"value\":95}");
    int64_t id = 0;

    assert_int_equal(inc_fire(fx->st, &s, now, &id), expect_rc);
    assert_true(id > 0);
    return id;
}

static int tl_cb(void *arg, int64_t at_ms, const char *kind, const char *by, const char *text)
{
    struct tl *t = arg;

    if (t->n < MAX_TL) {
        t->at[t->n] = at_ms;
        snprintf(t->kind[t->n], sizeof(t->kind[0]), "%s", kind);
        snprintf(t->by[t->n], sizeof(t->by[0]), "%s", by);
        snprintf(t->text[t->n], sizeof(t->text[0]), "%s", text);
        t->n++;
    }
    return 0;
}

static void timeline(struct fix *fx, int64_t id, struct tl *t)
{
    memset(t, 0, sizeof(*t));
    assert_int_equal(inc_timeline(fx->st, id, tl_cb, t), 0);
}

static int count_kind(const struct tl *t, const char *kind)
{
    int c = 0;

    for (int i = 0; i < t->n; i++) {
        if (strcmp(t->kind[i], kind) == 0) {
            c++;
        }
    }
    return c;
}

static void get(struct fix *fx, int64_t id, struct inc_row *r)
{
    assert_int_equal(inc_get(fx->st, id, r), 0);
    inc_row_cleanup(r); /* only the fixed fields are checked */
}

static int count_cb(void *arg, const struct inc_row *r)
{
    (void)r;
    (*(int *)arg)++;
    return 0;
}

static int count_incidents(struct fix *fx, int status)
{
    int n = 0;

    assert_int_equal(inc_list(fx->st, status, 0, count_cb, &n), 0);
    return n;
}

/* ---- tests ---- */

static void policy_defaults(void **state)
{
    struct inc_policy p;

    (void)state;
    inc_policy_default(&p);
    assert_int_equal(p.response_ms[0], 15 * MIN);
    assert_int_equal(p.resolve_ms[0], 4 * HOUR);
    assert_int_equal(p.response_ms[1], 30 * MIN);
    assert_int_equal(p.resolve_ms[1], 8 * HOUR);
    assert_int_equal(p.response_ms[2], 4 * HOUR);
    assert_int_equal(p.resolve_ms[2], 3 * DAY);
    assert_int_equal(p.response_ms[3], DAY);
    assert_int_equal(p.resolve_ms[3], 5 * DAY);
    assert_int_equal(p.reopen_window_ms, 30 * MIN);
    assert_int_equal(p.flap_changes, 5);
    assert_int_equal(p.flap_window_ms, HOUR);
}

static void matrix_and_deadlines(void **state)
{
    struct fix *fx = *state;
    /* [impact-1][urgency-1]: H/H P1, H/M P2, H/L P3, M/H P2, M/M P3, M/L P4, L/H P3, ... */
    static const int want[3][3] = {{1, 2, 3}, {2, 3, 4}, {3, 4, 4}};
    static const int64_t resp[4] = {15 * MIN, 30 * MIN, 4 * HOUR, DAY};
    static const int64_t reso[4] = {4 * HOUR, 8 * HOUR, 3 * DAY, 5 * DAY};
    struct inc_row r;
    char fp[32];

    for (int i = 1; i <= 3; i++) {
        for (int u = 1; u <= 3; u++) {
            int64_t id = 0;
            int64_t now = T0 + i * 10 * SEC + u * SEC;
            snprintf(fp, sizeof(fp), "fp-%d-%d", i, u);
            struct inc_signal s = sig(fp, i, u, NULL);
            assert_int_equal(inc_fire(fx->st, &s, now, &id), 1);
            get(fx, id, &r);
            int p = want[i - 1][u - 1];
            assert_int_equal(r.priority, p);
            assert_int_equal(r.impact, i);
            assert_int_equal(r.urgency, u);
            assert_int_equal(r.status, INC_OPEN);
            assert_int_equal(r.opened_ms, now);
            assert_int_equal(r.response_due_ms, now + resp[p - 1]);
            assert_int_equal(r.resolve_due_ms, now + reso[p - 1]);
            assert_int_equal(r.escalation, 0);
            assert_string_equal(r.fingerprint, fp);
        }
    }
    assert_int_equal(count_incidents(fx, -1), 9);
    assert_int_equal(count_incidents(fx, INC_OPEN), 9);

    /* invalid impact/urgency */
    struct inc_signal bad = sig("bad", 0, 1, NULL);
    assert_int_equal(inc_fire(fx->st, &bad, T0, NULL), -EINVAL);
    bad.impact = 1;
    bad.urgency = 4;
    assert_int_equal(inc_fire(fx->st, &bad, T0, NULL), -EINVAL);
    assert_non_null(strstr(inc_errmsg(fx->st), "urgency"));
}

static void one_incident_per_fingerprint(void **state)
{
    struct fix *fx = *state;
    struct inc_row r;
    struct tl t;
    int64_t id = fire(fx, "a", T0, 1);
    int64_t id2 = 0;
    struct inc_signal s = sig("a", 1, 1, "{\"value\":96}");

    assert_int_equal(inc_fire(fx->st, &s, T0 + 30 * SEC, &id2), 0);
    assert_int_equal(id2, id);
    s.values_json = "{\"value\":97}";
    s.summary = "Disk /u01 on db-1 is 97% full";
    assert_int_equal(inc_fire(fx->st, &s, T0 + 61 * SEC, &id2), 0);
    s.values_json = "{\"value\":98}";
    assert_int_equal(inc_fire(fx->st, &s, T0 + 90 * SEC, &id2), 0);
    assert_int_equal(id2, id);
    assert_int_equal(inc_get(fx->st, id, &r), 0);
    assert_string_equal(r.values_json, "{\"value\":98}");
    assert_string_equal(r.summary, "Disk /u01 on db-1 is 97% full");
    assert_string_equal(r.description, "the filesystem is nearly full");
    assert_string_equal(r.runbook, "https://wiki/runbooks/disk");
    inc_row_cleanup(&r);

    timeline(fx, id, &t);
    assert_int_equal(t.n, 2);
    assert_string_equal(t.kind[0], "opened");
    assert_string_equal(t.by[0], "rule");
    assert_non_null(strstr(t.text[0], "Disk /u01 on db-1 is full"));
    assert_non_null(strstr(t.text[0], "{\"value\":95}"));
    assert_non_null(strstr(t.text[0], "P1"));
    /* at most one value update a minute: 30 s no, 61 s yes, 90 s no */
    assert_string_equal(t.kind[1], "value update");
    assert_int_equal(t.at[1], T0 + 61 * SEC);
    assert_string_equal(t.text[1], "{\"value\":97}");

    /* another fingerprint is another incident */
    int64_t other = fire(fx, "b", T0 + 2 * MIN, 1);
    assert_true(other != id);
    assert_int_equal(inc_find_open(fx->st, "a", &r), 0);
    assert_int_equal(r.id, id);
    inc_row_cleanup(&r);
    assert_int_equal(inc_find_open(fx->st, "nope", &r), WP_ENOTFOUND);
    inc_row_cleanup(&r);
    assert_int_equal(count_incidents(fx, -1), 2);

    /* clear with nothing open */
    assert_int_equal(inc_clear(fx->st, "nope", T0 + 3 * MIN), 0);
}

static void clear_and_reopen_window(void **state)
{
    struct fix *fx = *state;
    struct inc_row r;
    struct tl t;

    /* within the window: same id, reopened, deadlines kept */
    int64_t id = fire(fx, "a", T0, 1);
    assert_int_equal(inc_clear(fx->st, "a", T0 + 10 * MIN), 0);
    get(fx, id, &r);
    assert_int_equal(r.status, INC_RESOLVED);
    assert_int_equal(r.resolved_ms, T0 + 10 * MIN);
    assert_int_equal(fire(fx, "a", T0 + 40 * MIN, 1), id); /* exactly 30 min later */
    get(fx, id, &r);
    assert_int_equal(r.status, INC_OPEN);
    assert_int_equal(r.reopened, 1);
    assert_int_equal(r.resolved_ms, 0);
    assert_int_equal(r.opened_ms, T0);
    assert_int_equal(r.response_due_ms, T0 + 15 * MIN);
    assert_int_equal(r.resolve_due_ms, T0 + 4 * HOUR);
    timeline(fx, id, &t);
    assert_int_equal(t.n, 3);
    assert_string_equal(t.kind[1], "resolved");
    assert_string_equal(t.by[1], "rule");
    assert_string_equal(t.kind[2], "reopened");
    assert_non_null(strstr(t.text[2], "30m"));
    /* the response deadline passed while it was resolved: level 1 is due right away */
    assert_int_equal(inc_tick(fx->st, T0 + 40 * MIN), 1);

    /* outside the window: a new incident */
    int64_t b = fire(fx, "b", T0, 1);
    assert_int_equal(inc_clear(fx->st, "b", T0 + MIN), 0);
    int64_t b2 = fire(fx, "b", T0 + 31 * MIN + 1, 1);
    assert_true(b2 != b);
    get(fx, b, &r);
    assert_int_equal(r.status, INC_RESOLVED);
    get(fx, b2, &r);
    assert_int_equal(r.status, INC_OPEN);
    assert_int_equal(r.reopened, 0);
    assert_int_equal(r.opened_ms, T0 + 31 * MIN + 1);

    /* a closed incident is never reopened */
    int64_t c = fire(fx, "c", T0, 1);
    assert_int_equal(inc_clear(fx->st, "c", T0 + MIN), 0);
    assert_int_equal(inc_close_incident(fx->st, c, "alice", T0 + 2 * MIN, NULL, 0), 0);
    assert_true(fire(fx, "c", T0 + 3 * MIN, 1) != c);
}

/* P1 (H/H): response 15 min, resolve 4 h: levels at 15m, 2h, 3h12m, 4h. */
static void escalation_boundaries(void **state)
{
    struct fix *fx = *state;
    struct inc_row r;
    struct tl t;
    int64_t id = fire(fx, "a", T0, 1);

    assert_int_equal(inc_tick(fx->st, T0), 0);
    assert_int_equal(inc_tick(fx->st, T0 + 15 * MIN - 1), 0);
    assert_int_equal(inc_tick(fx->st, T0 + 15 * MIN), 1);
    get(fx, id, &r);
    assert_int_equal(r.escalation, 1);
    assert_int_equal(inc_tick(fx->st, T0 + 15 * MIN), 0);
    assert_int_equal(inc_tick(fx->st, T0 + 2 * HOUR - 1), 0);
    assert_int_equal(inc_tick(fx->st, T0 + 2 * HOUR), 1);
    get(fx, id, &r);
    assert_int_equal(r.escalation, 2);
    assert_int_equal(inc_tick(fx->st, T0 + 192 * MIN - 1), 0);
    assert_int_equal(inc_tick(fx->st, T0 + 192 * MIN), 1);
    assert_int_equal(inc_tick(fx->st, T0 + 4 * HOUR - 1), 0);
    assert_int_equal(inc_tick(fx->st, T0 + 4 * HOUR), 1);
    get(fx, id, &r);
    assert_int_equal(r.escalation, 4);
    assert_int_equal(inc_tick(fx->st, T0 + 40 * HOUR), 0);

    timeline(fx, id, &t);
    assert_int_equal(count_kind(&t, "escalated"), 4);
    assert_string_equal(t.text[1], "level 1: response time (15m) passed without acknowledgement");
    assert_int_equal(t.at[1], T0 + 15 * MIN);
    assert_string_equal(t.text[2], "level 2: 50% of the resolve time (4h) passed, second line");
    assert_string_equal(t.text[3],
                        "level 3: 80% of the resolve time (4h) passed, third line / vendor");
    assert_string_equal(t.text[4], "level 4: 100% of the resolve time (4h) passed, management");
}

static void escalation_several_at_once(void **state)
{
    struct fix *fx = *state;
    struct tl t;
    struct inc_row r;
    struct inc_signal s = sig("p3", 2, 2, NULL); /* P3: 4 h / 3 d */
    int64_t id = 0;

    assert_int_equal(inc_fire(fx->st, &s, T0, &id), 1);
    int64_t a = fire(fx, "a", T0, 1);
    /* nothing ticked for a day: the P1 takes all four steps, in order; the P3 only level 1 */
    assert_int_equal(inc_tick(fx->st, T0 + DAY), 5);
    timeline(fx, a, &t);
    assert_int_equal(t.n, 5);
    for (int l = 1; l <= 4; l++) {
        char want[16];
        snprintf(want, sizeof(want), "level %d:", l);
        assert_string_equal(t.kind[l], "escalated");
        assert_memory_equal(t.text[l], want, strlen(want));
    }
    get(fx, id, &r);
    assert_int_equal(r.escalation, 1);
    /* P3 at 50 % of 3 d = 36 h */
    assert_int_equal(inc_tick(fx->st, T0 + 36 * HOUR - 1), 0);
    assert_int_equal(inc_tick(fx->st, T0 + 36 * HOUR), 1);
}

static void no_escalation_while_suppressed(void **state)
{
    struct fix *fx = *state;
    struct inc_row r;
    struct tl t;
    int64_t id = fire(fx, "a", T0, 1);

    assert_int_equal(inc_suppress(fx->st, "a", 1, "maintenance Sunday patching", T0 + MIN), 0);
    assert_int_equal(inc_suppress(fx->st, "a", 1, "maintenance Sunday patching", T0 + 2 * MIN),
                     0); /* no change, no entry */
    get(fx, id, &r);
    assert_int_equal(r.suppressed, 1);
    assert_int_equal(inc_tick(fx->st, T0 + 5 * HOUR), 0);
    get(fx, id, &r);
    assert_int_equal(r.escalation, 0);
    assert_int_equal(inc_suppress(fx->st, "a", 0, "maintenance over", T0 + 5 * HOUR), 0);
    assert_int_equal(inc_suppress(fx->st, "a", 0, "maintenance over", T0 + 5 * HOUR), 0);
    /* still unresolved after the window: the levels that passed are taken now */
    assert_int_equal(inc_tick(fx->st, T0 + 5 * HOUR), 4);
    timeline(fx, id, &t);
    assert_int_equal(count_kind(&t, "suppressed"), 1);
    assert_int_equal(count_kind(&t, "unsuppressed"), 1);
    assert_non_null(strstr(t.text[1], "maintenance Sunday patching"));
    assert_non_null(strstr(t.text[1], "no escalation while suppressed"));
    /* nothing open: nothing to suppress */
    assert_int_equal(inc_suppress(fx->st, "none", 1, "host silent", T0), 0);
}

static void ack_stops_level1_only(void **state)
{
    struct fix *fx = *state;
    char err[256];
    struct inc_row r;
    struct tl t;
    int64_t id = fire(fx, "a", T0, 1);

    assert_int_equal(inc_ack(fx->st, id, "alice", "looking", T0 + MIN, err, sizeof(err)), 0);
    get(fx, id, &r);
    assert_int_equal(r.status, INC_ACKNOWLEDGED);
    assert_int_equal(r.acked_ms, T0 + MIN);
    assert_string_equal(r.acked_by, "alice");
    assert_int_equal(inc_tick(fx->st, T0 + 2 * HOUR - 1), 0);
    assert_int_equal(inc_tick(fx->st, T0 + 2 * HOUR), 1);
    get(fx, id, &r);
    assert_int_equal(r.escalation, 2);
    assert_int_equal(inc_tick(fx->st, T0 + 4 * HOUR), 2);
    timeline(fx, id, &t);
    assert_string_equal(t.kind[1], "acknowledged");
    assert_string_equal(t.by[1], "alice");
    assert_string_equal(t.text[1], "looking");
    assert_int_equal(count_kind(&t, "escalated"), 3);

    assert_int_equal(inc_ack(fx->st, id, "bob", NULL, T0 + 5 * HOUR, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "incident 1 is already acknowledged by alice");
    assert_int_equal(inc_ack(fx->st, id, "", NULL, T0, err, sizeof(err)), -EINVAL);
    assert_int_equal(inc_ack(fx->st, 99, "bob", NULL, T0, err, sizeof(err)), WP_ENOTFOUND);
    assert_string_equal(err, "no incident 99");
    /* a fire on an acknowledged incident updates it, it stays acknowledged */
    assert_int_equal(fire(fx, "a", T0 + 5 * HOUR, 0), id);
    get(fx, id, &r);
    assert_int_equal(r.status, INC_ACKNOWLEDGED);
}

static void resolve_needs_note(void **state)
{
    struct fix *fx = *state;
    char err[256];
    struct inc_row r;
    struct tl t;
    int64_t id = fire(fx, "a", T0, 1);

    assert_int_equal(inc_resolve(fx->st, id, "alice", NULL, T0 + MIN, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "needs a note"));
    assert_int_equal(inc_resolve(fx->st, id, "alice", " \t", T0 + MIN, err, sizeof(err)), -EINVAL);
    get(fx, id, &r);
    assert_int_equal(r.status, INC_OPEN);
    assert_int_equal(
        inc_resolve(fx->st, id, "alice", "extended /u01 by 50G", T0 + MIN, err, sizeof(err)), 0);
    get(fx, id, &r);
    assert_int_equal(r.status, INC_RESOLVED);
    assert_int_equal(r.resolved_ms, T0 + MIN);
    assert_int_equal(inc_resolve(fx->st, id, "alice", "again", T0 + MIN, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "incident 1 is already resolved");
    assert_int_equal(inc_ack(fx->st, id, "bob", NULL, T0 + MIN, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "incident 1 is resolved: only open incidents can be acknowledged");
    /* resolved incidents do not escalate */
    assert_int_equal(inc_tick(fx->st, T0 + 10 * HOUR), 0);
    timeline(fx, id, &t);
    assert_int_equal(t.n, 2);
    assert_string_equal(t.kind[1], "resolved");
    assert_string_equal(t.by[1], "alice");
    assert_string_equal(t.text[1], "extended /u01 by 50G");
}

static void close_from_resolved_only(void **state)
{
    struct fix *fx = *state;
    char err[256];
    struct inc_row r;
    int64_t id = fire(fx, "a", T0, 1);

    assert_int_equal(id, 1);
    assert_int_equal(inc_close_incident(fx->st, id, "alice", T0, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "incident 1 is open: resolve it first");
    assert_int_equal(inc_ack(fx->st, id, "alice", NULL, T0, err, sizeof(err)), 0);
    assert_int_equal(inc_close_incident(fx->st, id, "alice", T0, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "incident 1 is acknowledged: resolve it first");
    assert_int_equal(inc_close_incident(fx->st, 7, "alice", T0, err, sizeof(err)), WP_ENOTFOUND);
    assert_string_equal(err, "no incident 7");
    assert_int_equal(inc_close_incident(fx->st, id, "", T0, err, sizeof(err)), -EINVAL);
    assert_int_equal(inc_resolve(fx->st, id, "alice", "fixed", T0 + MIN, err, sizeof(err)), 0);
    assert_int_equal(inc_close_incident(fx->st, id, "bob", T0 + 2 * MIN, err, sizeof(err)), 0);
    get(fx, id, &r);
    assert_int_equal(r.status, INC_CLOSED);
    assert_int_equal(r.closed_ms, T0 + 2 * MIN);
    assert_int_equal(inc_close_incident(fx->st, id, "bob", T0 + 3 * MIN, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "incident 1 is already closed");
    assert_int_equal(inc_resolve(fx->st, id, "bob", "x", T0 + 3 * MIN, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "incident 1 is closed");
    assert_string_equal(inc_status_name(INC_CLOSED), "closed");
    assert_string_equal(inc_status_name(INC_ACKNOWLEDGED), "acknowledged");
}

static void flapping_gives_one_incident(void **state)
{
    struct fix *fx = *state;
    struct inc_row r;
    struct tl t;
    int64_t id = 0;
    int64_t now = T0;

    /* a value oscillating around its threshold: fire/clear every minute, 10 times */
    id = fire(fx, "a", now, 1);
    assert_int_equal(inc_clear(fx->st, "a", now + 30 * SEC), 0);
    for (int i = 1; i < 10; i++) {
        int64_t got = 0;
        struct inc_signal s = sig("a", 1, 1, "{\"value\":91}");
        now += MIN;
        int rc = inc_fire(fx->st, &s, now, &got);
        /* changes: fire, clear, fire(reopen), clear, fire(reopen, 5th change: flapping) ... */
        assert_int_equal(rc, i <= 2 ? 1 : 0);
        assert_int_equal(got, id);
        assert_int_equal(inc_clear(fx->st, "a", now + 30 * SEC), 0);
    }
    int64_t last_change = now + 30 * SEC;
    assert_int_equal(count_incidents(fx, -1), 1);
    get(fx, id, &r);
    assert_int_equal(r.flapping, 1);
    assert_int_equal(r.status, INC_OPEN);
    assert_int_equal(r.reopened, 2);
    timeline(fx, id, &t);
    assert_int_equal(count_kind(&t, "flapping"), 1);
    assert_true(count_kind(&t, "cleared") >= 5);

    /* repeated clears are no changes and do not extend the quiet window */
    assert_int_equal(inc_clear(fx->st, "a", last_change + 10 * MIN), 0);
    assert_true(inc_tick(fx->st, last_change + HOUR - 1) >= 0);
    get(fx, id, &r);
    assert_int_equal(r.status, INC_OPEN);
    assert_int_equal(r.flapping, 1);
    assert_int_equal(inc_tick(fx->st, last_change + HOUR) >= 0, 1);
    get(fx, id, &r);
    assert_int_equal(r.status, INC_RESOLVED);
    assert_int_equal(r.flapping, 0);
    assert_int_equal(r.resolved_ms, last_change + HOUR);
    timeline(fx, id, &t);
    assert_string_equal(t.kind[t.n - 1], "resolved");
    assert_string_equal(t.text[t.n - 1], "resolved after flapping stopped");
    assert_int_equal(count_incidents(fx, -1), 1);
}

static void flapping_stops_while_firing(void **state)
{
    struct fix *fx = *state;
    struct inc_row r;
    struct tl t;
    int64_t now = T0;
    int64_t id = fire(fx, "a", now, 1);

    /* fire, clear, fire, clear, fire: the 5th change marks it flapping; it stays firing */
    for (int i = 0; i < 2; i++) {
        now += MIN;
        assert_int_equal(inc_clear(fx->st, "a", now), 0);
        now += MIN;
        assert_int_equal(fire(fx, "a", now, 1), id);
    }
    get(fx, id, &r);
    assert_int_equal(r.flapping, 1);
    /* clear while flapping: stays open */
    now += MIN;
    assert_int_equal(inc_clear(fx->st, "a", now), 0);
    get(fx, id, &r);
    assert_int_equal(r.status, INC_OPEN);
    now += MIN;
    assert_int_equal(fire(fx, "a", now, 0), id);
    /* still firing when the quiet window ends: flag off, stays open */
    assert_int_equal(inc_tick(fx->st, now + HOUR - 1), 1); /* level 1 only */
    get(fx, id, &r);
    assert_int_equal(r.flapping, 1);
    inc_tick(fx->st, now + HOUR);
    get(fx, id, &r);
    assert_int_equal(r.flapping, 0);
    assert_int_equal(r.status, INC_OPEN);
    timeline(fx, id, &t);
    assert_int_equal(count_kind(&t, "flapping stopped"), 1);
    /* now a clear resolves again */
    assert_int_equal(inc_clear(fx->st, "a", now + 2 * HOUR), 0);
    get(fx, id, &r);
    assert_int_equal(r.status, INC_RESOLVED);
}

static void persistence_mid_escalation(void **state)
{
    struct fix *fx = *state;
    struct inc_row r;
    struct tl t;
    int64_t id = fire(fx, "a", T0, 1);

    assert_int_equal(inc_tick(fx->st, T0 + 15 * MIN), 1);
    reopen_store(fx);
    assert_int_equal(inc_tick(fx->st, T0 + 15 * MIN + 1), 0);
    get(fx, id, &r);
    assert_int_equal(r.escalation, 1);
    assert_int_equal(r.response_due_ms, T0 + 15 * MIN);
    assert_int_equal(r.resolve_due_ms, T0 + 4 * HOUR);
    assert_int_equal(inc_tick(fx->st, T0 + 2 * HOUR), 1);
    reopen_store(fx);
    assert_int_equal(inc_tick(fx->st, T0 + 2 * HOUR), 0);
    assert_int_equal(inc_tick(fx->st, T0 + 192 * MIN), 1);
    get(fx, id, &r);
    assert_int_equal(r.escalation, 3);
    timeline(fx, id, &t);
    assert_int_equal(count_kind(&t, "escalated"), 3);
    /* an update after reopening the store finds the same incident */
    assert_int_equal(fire(fx, "a", T0 + 192 * MIN, 0), id);
    /* flapping state survives too */
    int64_t now = T0 + 4 * HOUR;
    int64_t b = fire(fx, "b", now, 1);
    assert_int_equal(inc_clear(fx->st, "b", now + 1), 0);
    reopen_store(fx);
    assert_int_equal(fire(fx, "b", now + 2, 1), b);
    assert_int_equal(inc_clear(fx->st, "b", now + 3), 0);
    reopen_store(fx);
    assert_int_equal(fire(fx, "b", now + 4, 1), b);
    get(fx, b, &r);
    assert_int_equal(r.flapping, 1);
}

static void note_and_transactions(void **state)
{
    struct fix *fx = *state;
    struct tl t;
    struct inc_row r;

    assert_int_equal(inc_begin(fx->st), 0);
    int64_t a = fire(fx, "a", T0, 1);
    int64_t b = fire(fx, "b", T0, 1);
    assert_int_equal(inc_note(fx->st, a, "ticket linked", "alice", "INC-4711", T0 + 1), 0);
    assert_int_equal(inc_note(fx->st, 99, "ticket linked", "alice", "x", T0 + 1), WP_ENOTFOUND);
    assert_int_equal(inc_commit(fx->st), 0);
    timeline(fx, a, &t);
    assert_int_equal(t.n, 2);
    assert_string_equal(t.kind[1], "ticket linked");
    assert_string_equal(t.text[1], "INC-4711");
    get(fx, b, &r);
    assert_int_equal(r.status, INC_OPEN);

    /* many incidents in one transaction, one tick over all of them */
    assert_int_equal(inc_begin(fx->st), 0);
    for (int i = 0; i < 2000; i++) {
        char fp[32];
        snprintf(fp, sizeof(fp), "bulk-%d", i);
        struct inc_signal s = sig(fp, 3, 3, NULL); /* P4: response 1 d */
        assert_int_equal(inc_fire(fx->st, &s, T0, NULL), 1);
    }
    assert_int_equal(inc_commit(fx->st), 0);
    assert_int_equal(inc_tick(fx->st, T0 + HOUR), 2); /* a and b: level 1 */
    assert_int_equal(inc_tick(fx->st, T0 + HOUR), 0);
    assert_int_equal(inc_tick(fx->st, T0 + DAY), 2000 + 2 * 3); /* a, b: levels 2, 3, 4 */
}

static void custom_policy_flapping_off(void **state)
{
    struct fix *fx = *state;
    struct inc_policy p;
    struct inc_row r;
    int64_t now = T0;
    int64_t first = 0;

    inc_close(fx->st);
    inc_policy_default(&p);
    p.reopen_window_ms = 0;
    p.flap_changes = 0; /* off */
    p.matrix[0][0] = 2;
    p.response_ms[1] = 5 * MIN;
    assert_int_equal(inc_open(fx->path, &p, &fx->st), 0);
    for (int i = 0; i < 6; i++) {
        int64_t id = fire(fx, "a", now, 1);
        if (i == 0) {
            first = id;
        }
        get(fx, id, &r);
        assert_int_equal(r.priority, 2);
        assert_int_equal(r.response_due_ms, now + 5 * MIN);
        assert_int_equal(r.flapping, 0);
        now += MIN;
        assert_int_equal(inc_clear(fx->st, "a", now), 0);
        get(fx, id, &r);
        assert_int_equal(r.status, INC_RESOLVED);
        now += MIN;
    }
    assert_int_equal(count_incidents(fx, INC_RESOLVED), 6);
    assert_int_equal(first, 1);
}

/* The CLI changes the database while the collector has it open: nothing is cached. */
static void two_handles_share_state(void **state)
{
    struct fix *fx = *state;
    struct inc_store *cli = NULL;
    struct inc_row r;
    char err[256];
    int64_t id = fire(fx, "a", T0, 1);

    assert_int_equal(inc_open(fx->path, NULL, &cli), 0);
    assert_int_equal(inc_ack(cli, id, "alice", "on it", T0 + MIN, err, sizeof(err)), 0);
    assert_int_equal(inc_tick(fx->st, T0 + 15 * MIN), 0); /* acknowledged: no level 1 */
    assert_int_equal(fire(fx, "a", T0 + 20 * MIN, 0), id);
    assert_int_equal(inc_resolve(cli, id, "alice", "fixed", T0 + 30 * MIN, err, sizeof(err)), 0);
    assert_int_equal(inc_tick(fx->st, T0 + 30 * MIN + 1), 0);
    /* the condition still holds: the next fire reopens it (within the window) */
    assert_int_equal(fire(fx, "a", T0 + 31 * MIN, 1), id);
    assert_int_equal(inc_get(cli, id, &r), 0);
    assert_int_equal(r.status, INC_OPEN);
    assert_int_equal(r.reopened, 1);
    assert_string_equal(r.acked_by, "alice");
    inc_row_cleanup(&r);
    inc_close(cli);
}

static int state_cb(void *arg, const char *key, int state, int64_t since_ms)
{
    char *buf = arg;
    size_t len = strlen(buf);

    snprintf(buf + len, 256 - len, "%s=%d@%" PRId64 ";", key, state, since_ms);
    return 0;
}

static void rule_state(void **state)
{
    struct fix *fx = *state;
    char buf[256] = "";

    assert_int_equal(inc_state_put(fx->st, "disk_full|db-1|/u01", 1, 100), 0);
    assert_int_equal(inc_state_put(fx->st, "cpu|app-1", 2, 200), 0);
    assert_int_equal(inc_state_put(fx->st, "disk_full|db-1|/u01", 3, 300), 0);
    assert_int_equal(inc_state_each(fx->st, state_cb, buf), 0);
    assert_string_equal(buf, "cpu|app-1=2@200;disk_full|db-1|/u01=3@300;");
    reopen_store(fx);
    assert_int_equal(inc_state_del(fx->st, "cpu|app-1"), 0);
    assert_int_equal(inc_state_del(fx->st, "not there"), 0);
    buf[0] = '\0';
    assert_int_equal(inc_state_each(fx->st, state_cb, buf), 0);
    assert_string_equal(buf, "disk_full|db-1|/u01=3@300;");
}

static void bad_policy_refused(void **state)
{
    struct fix *fx = *state;
    struct inc_policy p;
    struct inc_store *st = (struct inc_store *)(uintptr_t)1; /* must be reset to NULL */

    inc_policy_default(&p);
    p.matrix[1][1] = 5;
    assert_int_equal(inc_open(fx->path, &p, &st), -EINVAL);
    assert_null(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(policy_defaults),
        cmocka_unit_test_setup_teardown(matrix_and_deadlines, setup, teardown),
        cmocka_unit_test_setup_teardown(one_incident_per_fingerprint, setup, teardown),
        cmocka_unit_test_setup_teardown(clear_and_reopen_window, setup, teardown),
        cmocka_unit_test_setup_teardown(escalation_boundaries, setup, teardown),
        cmocka_unit_test_setup_teardown(escalation_several_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(no_escalation_while_suppressed, setup, teardown),
        cmocka_unit_test_setup_teardown(ack_stops_level1_only, setup, teardown),
        cmocka_unit_test_setup_teardown(resolve_needs_note, setup, teardown),
        cmocka_unit_test_setup_teardown(close_from_resolved_only, setup, teardown),
        cmocka_unit_test_setup_teardown(flapping_gives_one_incident, setup, teardown),
        cmocka_unit_test_setup_teardown(flapping_stops_while_firing, setup, teardown),
        cmocka_unit_test_setup_teardown(persistence_mid_escalation, setup, teardown),
        cmocka_unit_test_setup_teardown(note_and_transactions, setup, teardown),
        cmocka_unit_test_setup_teardown(custom_policy_flapping_off, setup, teardown),
        cmocka_unit_test_setup_teardown(two_handles_share_state, setup, teardown),
        cmocka_unit_test_setup_teardown(rule_state, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_policy_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
