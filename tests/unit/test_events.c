/* SPDX-License-Identifier: Apache-2.0 */
/* Check results and log events (events.h): history rows only on a change of status with
 * since_ms kept, replays ignored, seat events not stored, the fields as JSON, newest-first
 * listing with filters, bounded retention pruning and the per-host flood cap. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <msgpack.h>
#include <sqlite3.h>

/* cmocka needs these first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "events.h"

#define T0  1767254400000LL /* 2026-01-01T08:00:00Z */
#define MIN 60000LL
#define DAY 86400000LL

struct store {
    char dir[32];
    char path[64];
    struct coll_events *e;
};

static void store_open(struct store *st, int flood)
{
    snprintf(st->dir, sizeof(st->dir), "/tmp/wp-events-XXXXXX");
    assert_non_null(mkdtemp(st->dir));
    snprintf(st->path, sizeof(st->path), "%s/events.db", st->dir);
    assert_int_equal(coll_events_open(st->path, flood, &st->e), 0);
}

static void store_close(struct store *st)
{
    char p[96];

    coll_events_close(st->e);
    unlink(st->path);
    snprintf(p, sizeof(p), "%s-wal", st->path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", st->path);
    unlink(p);
    rmdir(st->dir);
}

/* One integer from a query on a second connection (what reports do). */
static int64_t count(struct store *st, const char *q)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    int64_t v = -1;

    assert_int_equal(sqlite3_open_v2(st->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, q, -1, &s, NULL), SQLITE_OK);
    if (sqlite3_step(s) == SQLITE_ROW) {
        v = sqlite3_column_int64(s, 0);
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

struct seen {
    char text[4096];
    int n;
};

static int check_cb(void *arg, const struct coll_check *c)
{
    struct seen *s = arg;
    size_t len = strlen(s->text);

    snprintf(s->text + len, sizeof(s->text) - len, "%s/%s=%d since %lld at %lld: %s|", c->host,
             c->name, c->status, (long long)((c->since_ms - T0) / MIN),
             (long long)((c->ts_ms - T0) / MIN), c->output);
    s->n++;
    return 0;
}

static int event_cb(void *arg, const struct coll_logevent *ev)
{
    struct seen *s = arg;
    size_t len = strlen(s->text);

    snprintf(s->text + len, sizeof(s->text) - len, "%s %lld %s/%s %d %s %s|", ev->host,
             (long long)((ev->ts_ms - T0) / MIN), ev->source, ev->rule, ev->severity, ev->text,
             ev->fields);
    s->n++;
    return 0;
}

static const char *checks(struct store *st, const char *host, int status, struct seen *s)
{
    memset(s, 0, sizeof(*s));
    assert_int_equal(coll_events_checks_each(st->e, host, status, check_cb, s), 0);
    return s->text;
}

static const char *events(struct store *st, const char *host, int64_t since, size_t limit,
                          struct seen *s)
{
    memset(s, 0, sizeof(*s));
    assert_int_equal(coll_events_log_each(st->e, host, since, limit, event_cb, s), 0);
    return s->text;
}

static void check_history(void **state)
{
    struct store st;
    struct seen s;

    (void)state;
    store_open(&st, 0);
    assert_int_equal(coll_events_begin(st.e), 0);
    assert_int_equal(coll_events_put_check(st.e, "web1", "disk", 0, "DISK OK", T0), 1);
    assert_int_equal(coll_events_put_check(st.e, "web1", "disk", 0, "DISK OK 80%", T0 + MIN), 0);
    assert_int_equal(coll_events_put_check(st.e, "web1", "disk", 2, "DISK CRIT", T0 + 2 * MIN), 1);
    assert_int_equal(coll_events_put_check(st.e, "web1", "disk", 2, "DISK CRIT 99%", T0 + 3 * MIN),
                     0);
    /* a replayed older result changes nothing */
    assert_int_equal(coll_events_put_check(st.e, "web1", "disk", 0, "DISK OK", T0 + MIN), 0);
    assert_int_equal(coll_events_put_check(st.e, "db1", "proc_pg", 9, "odd status", T0), 1);
    assert_int_equal(coll_events_commit(st.e), 0);

    /* since_ms is when CRITICAL began, ts_ms the latest result, output the latest */
    assert_string_equal(checks(&st, NULL, -1, &s), "db1/proc_pg=3 since 0 at 0: odd status|"
                                                   "web1/disk=2 since 2 at 3: DISK CRIT 99%|");
    assert_string_equal(checks(&st, "web1", -1, &s), "web1/disk=2 since 2 at 3: DISK CRIT 99%|");
    assert_string_equal(checks(&st, NULL, 3, &s), "db1/proc_pg=3 since 0 at 0: odd status|");
    assert_string_equal(checks(&st, NULL, 1, &s), "");
    /* history: the first result and the change, not the repeats */
    assert_int_equal(count(&st, "SELECT COUNT(*) FROM check_history WHERE host = 'web1'"), 2);
    assert_int_equal(count(&st, "SELECT SUM(status) FROM check_history WHERE host = 'web1'"), 2);
    assert_int_equal(count(&st, "SELECT MAX(ts_ms) FROM check_history WHERE host = 'web1'"),
                     T0 + 2 * MIN);
    /* back to OK: a third row */
    assert_int_equal(coll_events_put_check(st.e, "web1", "disk", 0, "DISK OK", T0 + 4 * MIN), 1);
    assert_int_equal(count(&st, "SELECT COUNT(*) FROM check_history WHERE host = 'web1'"), 3);
    store_close(&st);
}

/* A msgpack map of str -> str from k, v, ..., NULL, packed in sb (which u points into:
 * destroy both after use), unpacked in u. */
static const msgpack_object_map *fields(msgpack_sbuffer *sb, msgpack_unpacked *u,
                                        const char *const *kv)
{
    msgpack_packer pk;
    size_t n = 0;

    while (kv[n] != NULL) {
        n++;
    }
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, n / 2);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_str(&pk, strlen(kv[i]));
        msgpack_pack_str_body(&pk, kv[i], strlen(kv[i]));
    }
    msgpack_unpacked_init(u);
    assert_int_equal(msgpack_unpack_next(u, sb->data, sb->size, NULL), MSGPACK_UNPACK_SUCCESS);
    return &u->data.via.map;
}

static void log_events(void **state)
{
    struct store st;
    struct seen s;
    msgpack_unpacked u;
    msgpack_sbuffer sb;
    static const char *const kv[] = {"user", "root", "ip", "10.0.0.\xff", NULL};

    (void)state;
    store_open(&st, 0);
    assert_int_equal(coll_events_begin(st.e), 0);
    assert_int_equal(coll_events_put_event(st.e, "web1", "logtail:auth", "ssh_fail", 2,
                                           "Failed password", fields(&sb, &u, kv), T0, T0),
                     1);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    assert_int_equal(coll_events_put_event(st.e, "web1", "logtail:app", "oom", 3, "Out of memory",
                                           NULL, T0 + 5 * MIN, T0),
                     1);
    assert_int_equal(coll_events_put_event(st.e, "db1", "logtail:pg", "deadlock", 1, "deadlock",
                                           NULL, T0 + 2 * MIN, T0),
                     1);
    /* seat events stay in the seat sessions */
    assert_int_equal(
        coll_events_put_event(st.e, "pbx1", "ami:pbx", "seat", 0, "Alice login", NULL, T0, T0), 0);
    assert_int_equal(coll_events_commit(st.e), 0);
    assert_int_equal(count(&st, "SELECT COUNT(*) FROM log_events WHERE rule = 'seat'"), 0);

    /* newest first; the fields as a JSON object, bytes that are not UTF-8 as '?' */
    assert_string_equal(events(&st, NULL, 0, 10, &s),
                        "web1 5 logtail:app/oom 3 Out of memory {}|"
                        "db1 2 logtail:pg/deadlock 1 deadlock {}|"
                        "web1 0 logtail:auth/ssh_fail 2 Failed password "
                        "{\"ip\":\"10.0.0.?\",\"user\":\"root\"}|");
    assert_string_equal(events(&st, "web1", 0, 1, &s),
                        "web1 5 logtail:app/oom 3 Out of memory {}|");
    assert_string_equal(events(&st, NULL, T0 + MIN, 10, &s),
                        "web1 5 logtail:app/oom 3 Out of memory {}|"
                        "db1 2 logtail:pg/deadlock 1 deadlock {}|");
    /* text and check output are stored as valid UTF-8 (agents send bytes) */
    assert_int_equal(
        coll_events_put_event(st.e, "x", "s", "r", 0, "bad \xff byte \xe4\xb8\xad", NULL, T0, T0),
        1);
    assert_int_equal(coll_events_put_check(st.e, "x", "c", 0, "\xc3(", T0), 1);
    assert_int_equal(
        count(&st, "SELECT COUNT(*) FROM log_events WHERE text = 'bad ? byte \xe4\xb8\xad'"), 1);
    assert_int_equal(count(&st, "SELECT COUNT(*) FROM checks WHERE output = '?('"), 1);
    store_close(&st);
}

static void flood_cap(void **state)
{
    struct store st;
    struct seen s;
    int stored = 0;

    (void)state;
    store_open(&st, 5);
    assert_int_equal(coll_events_begin(st.e), 0);
    for (int i = 0; i < 20; i++) {
        stored +=
            coll_events_put_event(st.e, "noisy", "logtail:x", "r", 1, "spam", NULL, T0 + i, T0 + i);
    }
    /* another host has its own allowance */
    assert_int_equal(
        coll_events_put_event(st.e, "quiet", "logtail:x", "r", 1, "one", NULL, T0, T0 + 20), 1);
    assert_int_equal(coll_events_commit(st.e), 0);
    assert_int_equal(stored, 5);
    assert_int_equal(coll_events_dropped(st.e), 15);
    assert_int_equal(count(&st, "SELECT COUNT(*) FROM log_events WHERE host = 'noisy'"), 5);
    /* the minute is over (its overflow logged by the tick): the next minute stores again */
    coll_events_tick(st.e, T0 + MIN);
    assert_int_equal(coll_events_put_event(st.e, "noisy", "logtail:x", "r", 1, "later", NULL,
                                           T0 + MIN, T0 + MIN),
                     1);
    assert_int_equal(count(&st, "SELECT COUNT(*) FROM log_events WHERE host = 'noisy'"), 6);
    assert_int_equal(coll_events_dropped(st.e), 15);
    /* idle hosts are forgotten by the tick; they start afresh */
    coll_events_tick(st.e, T0 + 30 * MIN);
    assert_int_equal(coll_events_put_event(st.e, "noisy", "logtail:x", "r", 1, "again", NULL,
                                           T0 + 30 * MIN, T0 + 30 * MIN),
                     1);
    assert_string_equal(events(&st, "noisy", T0 + MIN, 10, &s),
                        "noisy 30 logtail:x/r 1 again {}|noisy 1 logtail:x/r 1 later {}|");
    store_close(&st);
}

static void retention(void **state)
{
    struct store st;
    struct seen s;
    int more = 0;

    (void)state;
    store_open(&st, 100);
    assert_int_equal(coll_events_begin(st.e), 0);
    for (int i = 0; i < 10; i++) {
        /* 10 status changes a day apart, 10 events a day apart */
        assert_int_equal(coll_events_put_check(st.e, "web1", "disk", i % 2, "x", T0 + i * DAY), 1);
        assert_int_equal(
            coll_events_put_event(st.e, "web1", "s", "r", 0, "e", NULL, T0 + i * DAY, T0), 1);
    }
    assert_int_equal(coll_events_put_check(st.e, "old", "gone", 0, "x", T0), 1);
    assert_int_equal(coll_events_commit(st.e), 0);
    /* before day 5: 6 history rows (one of "old"), 5 events and the check "old" not reported
     * since, in batches of 3 */
    int64_t before = T0 + 5 * DAY;
    assert_int_equal(coll_events_prune(st.e, before, 3, &more), 3 + 3 + 1);
    assert_int_equal(more, 1);
    assert_int_equal(coll_events_prune(st.e, before, 3, &more), 3 + 2);
    assert_int_equal(more, 1); /* history hit the batch size: maybe more */
    assert_int_equal(coll_events_prune(st.e, before, 3, &more), 0);
    assert_int_equal(more, 0);
    assert_int_equal(count(&st, "SELECT MIN(ts_ms) FROM check_history"), before);
    assert_int_equal(count(&st, "SELECT COUNT(*) FROM check_history"), 5);
    assert_int_equal(count(&st, "SELECT COUNT(*) FROM log_events"), 5);
    /* the current result of a live check stays, with its since */
    assert_string_equal(checks(&st, NULL, -1, &s), "web1/disk=1 since 12960 at 12960: x|");
    store_close(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(check_history),
        cmocka_unit_test(log_events),
        cmocka_unit_test(flood_cap),
        cmocka_unit_test(retention),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
