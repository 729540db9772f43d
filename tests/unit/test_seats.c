/* SPDX-License-Identifier: Apache-2.0 */
/* Seat sessions: logins open sessions and logouts close them, pauses inside sessions sum up
 * with their reasons, replays and repeats change nothing, an agent logout with no login
 * seen makes a closed session, the event-field path, listing filters and pruning, the line
 * device of a seat (stored, listed, added to a table made before it). */
#include <errno.h>
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

#include "lines.h"
#include "seats.h"
#include "wp/mem.h"

#define T0  1767254400000LL /* 2026-01-01T08:00:00Z */
#define MIN 60000LL

struct seen {
    char text[4096];
    int n;
};

static int collect(void *arg, const struct coll_seat_session *ss)
{
    struct seen *s = arg;
    size_t len = strlen(s->text);

    snprintf(s->text + len, sizeof(s->text) - len, "%s %s %s %lld%s-%lld%s paused=%lld/%d [%s]|",
             ss->host, ss->seat, ss->queue[0] != '\0' ? ss->queue : "-",
             (long long)((ss->login_ms - T0) / MIN), ss->login_observed ? "*" : "",
             ss->logout_ms > 0 ? (long long)((ss->logout_ms - T0) / MIN) : -1LL,
             ss->logout_observed ? "*" : "", (long long)(ss->paused_ms / MIN), ss->npauses,
             ss->reasons);
    s->n++;
    return 0;
}

struct store {
    char dir[32];
    char path[64];
    struct coll_lines *l;
    struct coll_seats *s;
};

static void store_open(struct store *st)
{
    snprintf(st->dir, sizeof(st->dir), "/tmp/wp-seats-XXXXXX");
    assert_non_null(mkdtemp(st->dir));
    snprintf(st->path, sizeof(st->path), "%s/lines.db", st->dir);
    assert_int_equal(coll_lines_open(st->path, &st->l), 0);
    st->s = coll_lines_seats(st->l);
    assert_non_null(st->s);
}

static void store_close(struct store *st)
{
    char p[96];

    coll_lines_close(st->l);
    unlink(st->path);
    snprintf(p, sizeof(p), "%s-wal", st->path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", st->path);
    unlink(p);
    rmdir(st->dir);
}

static const char *list(struct store *st, const char *host, int64_t since, int64_t now,
                        struct seen *s)
{
    memset(s, 0, sizeof(*s));
    assert_int_equal(coll_seats_each(st->s, host, since, now, collect, s), 0);
    return s->text;
}

#define PUT(action, seat, queue, reason, at, obs, la)                             \
    coll_seats_put(st.s, "pbx1", seat, queue, action, reason, T0 + (at)*MIN, obs, \
                   (la) > 0 ? T0 + (la)*MIN : 0)

static void sessions_and_pauses(void **state)
{
    struct store st;
    struct seen s;

    (void)state;
    store_open(&st);
    assert_int_equal(coll_lines_begin(st.l), 0);
    assert_int_equal(PUT("login", "Alice", "support", NULL, 0, 1, 0), 1);
    assert_int_equal(PUT("login", "Alice", "sales", NULL, 0, 0, 0), 1);
    assert_int_equal(PUT("pause", "Alice", "support", "lunch", 60, 0, 0), 1);
    assert_int_equal(PUT("unpause", "Alice", "support", "", 90, 0, 0), 1);
    assert_int_equal(PUT("pause", "Alice", "support", "break", 120, 0, 0), 1);
    assert_int_equal(PUT("unpause", "Alice", "support", "", 130, 0, 0), 1);
    assert_int_equal(PUT("pause", "Alice", "support", "lunch", 200, 0, 0), 1);
    /* a logout closes the open pause */
    assert_int_equal(PUT("logout", "Alice", "support", NULL, 210, 1, 0), 1);
    assert_int_equal(coll_lines_commit(st.l), 0);

    /* replays and repeats change nothing */
    assert_int_equal(PUT("login", "Alice", "support", NULL, 0, 1, 0), 0);    /* same at */
    assert_int_equal(PUT("login", "Alice", "sales", NULL, 5, 1, 0), 0);      /* open already */
    assert_int_equal(PUT("logout", "Alice", "support", NULL, 210, 1, 0), 0); /* closed at */
    assert_int_equal(PUT("pause", "Alice", "sales", "x", 10, 0, 0), 1);
    assert_int_equal(PUT("pause", "Alice", "sales", "y", 11, 0, 0), 0); /* paused already */
    assert_int_equal(PUT("unpause", "Alice", "sales", "", 12, 0, 0), 1);
    assert_int_equal(PUT("unpause", "Alice", "sales", "", 13, 0, 0), 0); /* not paused */
    assert_int_equal(PUT("pause", "Alice", "sales", "x", 10, 0, 0), 0);  /* replayed pause */
    assert_int_equal(PUT("pause", "Bob", "support", "x", 10, 0, 0), 0);  /* no session */
    assert_int_equal(PUT("unpause", "Bob", "support", "", 10, 0, 0), 0);
    assert_int_equal(PUT("logout", "Bob", "support", NULL, 10, 0, 0), 0); /* never logged in */
    assert_int_equal(PUT("dance", "Bob", "support", NULL, 10, 0, 0), -EINVAL);

    /* an agent logout whose login was never seen: a closed session from login_at */
    assert_int_equal(PUT("logout", "2001", "", NULL, 300, 0, 240), 1);
    assert_int_equal(PUT("logout", "2001", "", NULL, 300, 0, 240), 0);
    /* a new session after the first one closed */
    assert_int_equal(PUT("login", "Alice", "support", NULL, 400, 0, 0), 1);
    assert_int_equal(PUT("pause", "Alice", "support", "meeting", 410, 0, 0), 1);

    /* now = +420 min: Alice/support's second session is open, paused for 10 min */
    const char *t = list(&st, NULL, 0, T0 + 420 * MIN, &s);
    assert_string_equal(t, "pbx1 Alice sales 0--1 paused=2/1 [x]|"
                           "pbx1 Alice support 0*-210* paused=50/3 [lunch,break]|"
                           "pbx1 2001 - 240*-300 paused=0/0 []|"
                           "pbx1 Alice support 400--1 paused=10/1 [meeting]|");
    /* since +220 min: the sessions closed before are left out */
    t = list(&st, NULL, T0 + 220 * MIN, T0 + 420 * MIN, &s);
    assert_string_equal(t, "pbx1 Alice sales 0--1 paused=2/1 [x]|"
                           "pbx1 2001 - 240*-300 paused=0/0 []|"
                           "pbx1 Alice support 400--1 paused=10/1 [meeting]|");
    t = list(&st, "pbx2", 0, T0 + 420 * MIN, &s);
    assert_string_equal(t, "");

    /* pruning drops sessions that ended before the cut, with their pauses */
    assert_true(coll_lines_prune(st.l, T0 + 250 * MIN) >= 4); /* a session and its 3 pauses */
    t = list(&st, NULL, 0, T0 + 420 * MIN, &s);
    assert_string_equal(t, "pbx1 Alice sales 0--1 paused=2/1 [x]|"
                           "pbx1 2001 - 240*-300 paused=0/0 []|"
                           "pbx1 Alice support 400--1 paused=10/1 [meeting]|");
    store_close(&st);
}

/* The ingest path: an event record's fields. */
static void from_fields(void **state)
{
    struct store st;
    struct seen s;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked u;
    static const char *const kv[] = {
        "seat", "Bob", "queue",         "support",  "action", "login",     "reason",
        "",     "at",  "1767254400000", "observed", "1",      "interface", "PJSIP/1002"};

    (void)state;
    store_open(&st);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 7);
    for (size_t i = 0; i < 14; i++) {
        msgpack_pack_str(&pk, strlen(kv[i]));
        msgpack_pack_str_body(&pk, kv[i], strlen(kv[i]));
    }
    msgpack_unpacked_init(&u);
    assert_int_equal(msgpack_unpack_next(&u, sb.data, sb.size, NULL), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(coll_seats_put_fields(st.s, "pbx1", &u.data.via.map), 1);
    assert_int_equal(coll_seats_put_fields(st.s, "pbx1", &u.data.via.map), 0); /* a replay */
    const char *t = list(&st, NULL, 0, T0 + 60 * MIN, &s);
    assert_string_equal(t, "pbx1 Bob support 0*--1 paused=0/0 []|");
    /* a bad time */
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_map(&pk, 3);
    static const char *const bad[] = {"seat", "Bob", "action", "logout", "at", "soon"};
    for (size_t i = 0; i < 6; i++) {
        msgpack_pack_str(&pk, strlen(bad[i]));
        msgpack_pack_str_body(&pk, bad[i], strlen(bad[i]));
    }
    msgpack_unpacked_init(&u);
    assert_int_equal(msgpack_unpack_next(&u, sb.data, sb.size, NULL), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(coll_seats_put_fields(st.s, "pbx1", &u.data.via.map), -EINVAL);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    store_close(&st);
}

static int paused_cb(void *arg, const struct coll_seat_session *ss)
{
    char *out = arg;
    size_t len = strlen(out);

    snprintf(out + len, 256 - len, "%s:%d%s|", ss->seat, ss->paused_now,
             ss->logout_ms > 0 ? "(out)" : "");
    return 0;
}

/* paused_now: only while the open session has an open pause (the Telephony wall) */
static const char *paused_now(struct store *st, char *out)
{
    out[0] = '\0';
    assert_int_equal(coll_seats_each(st->s, NULL, 0, T0 + 600 * MIN, paused_cb, out), 0);
    return out;
}

static void paused_state(void **state)
{
    struct store st;
    char out[256];

    (void)state;
    store_open(&st);
    assert_int_equal(PUT("login", "Ann", "q", NULL, 0, 0, 0), 1);
    assert_int_equal(PUT("login", "Ben", "q", NULL, 0, 0, 0), 1);
    assert_string_equal(paused_now(&st, out), "Ann:0|Ben:0|");
    assert_int_equal(PUT("pause", "Ann", "q", "lunch", 10, 0, 0), 1);
    assert_int_equal(PUT("pause", "Ben", "q", "break", 10, 0, 0), 1);
    assert_string_equal(paused_now(&st, out), "Ann:1|Ben:1|");
    assert_int_equal(PUT("unpause", "Ann", "q", NULL, 20, 0, 0), 1);
    assert_int_equal(PUT("logout", "Ben", "q", NULL, 30, 0, 0), 1); /* ends the pause too */
    assert_string_equal(paused_now(&st, out), "Ann:0|Ben:0(out)|");
    store_close(&st);
}

static int device_cb(void *arg, const struct coll_seat_session *ss)
{
    char *out = arg;
    size_t len = strlen(out);

    snprintf(out + len, 256 - len, "%s/%s:%s|", ss->seat, ss->queue,
             ss->device != NULL ? ss->device : "NULL");
    return 0;
}

static const char *devices(struct store *st, char *out)
{
    out[0] = '\0';
    assert_int_equal(coll_seats_each(st->s, NULL, 0, T0 + 600 * MIN, device_cb, out), 0);
    return out;
}

/* Pack the string pairs kv (n strings) as a map and store it as a seat event's fields. */
static int put_kv(struct store *st, const char *const *kv, size_t n)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked u;
    int rc = 0;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, n / 2);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_str(&pk, strlen(kv[i]));
        msgpack_pack_str_body(&pk, kv[i], strlen(kv[i]));
    }
    msgpack_unpacked_init(&u);
    assert_int_equal(msgpack_unpack_next(&u, sb.data, sb.size, NULL), MSGPACK_UNPACK_SUCCESS);
    rc = coll_seats_put_fields(st->s, "pbx1", &u.data.via.map);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* The device of a seat: from the device field (not the interface), NULL without one (an older
 * probe); a later event gives it to a session stored without one. */
static void device_field(void **state)
{
    struct store st;
    char out[256];
    static const char *const ann[] = {"seat",      "Ann",          "queue",  "q",
                                      "interface", "Local/1001@x", "device", "PJSIP/1001",
                                      "action",    "login",        "at",     "1767254400000"};
    static const char *const ben[] = {"seat",       "Ben",    "queue", "q",  "interface",
                                      "PJSIP/1002", "action", "login", "at", "1767254400000"};
    static const char *const cy[] = {"seat", "Cy", "action", "login", "at", "1767254400000"};
    static const char *const cy_pause[] = {"seat",   "Cy",    "device", "PJSIP/1003",
                                           "action", "pause", "at",     "1767254460000"};

    (void)state;
    store_open(&st);
    assert_int_equal(put_kv(&st, ann, 12), 1);
    assert_int_equal(put_kv(&st, ben, 10), 1);
    assert_int_equal(put_kv(&st, cy, 6), 1);
    assert_string_equal(devices(&st, out), "Ann/q:PJSIP/1001|Ben/q:NULL|Cy/:NULL|");
    assert_int_equal(put_kv(&st, cy_pause, 8), 1);
    assert_string_equal(devices(&st, out), "Ann/q:PJSIP/1001|Ben/q:NULL|Cy/:PJSIP/1003|");
    /* a device once known is kept */
    assert_int_equal(
        coll_seats_put_dev(st.s, "pbx1", "Ann", "q", "PJSIP/9", "pause", NULL, T0 + 2 * MIN, 0, 0),
        1);
    assert_string_equal(devices(&st, out), "Ann/q:PJSIP/1001|Ben/q:NULL|Cy/:PJSIP/1003|");
    /* a logout with no session seen makes a closed one with the device */
    assert_int_equal(coll_seats_put_dev(st.s, "pbx1", "2001", "", "PJSIP/1004", "logout", NULL,
                                        T0 + 5 * MIN, 0, T0 + MIN),
                     1);
    assert_string_equal(devices(&st, out),
                        "Ann/q:PJSIP/1001|Ben/q:NULL|Cy/:PJSIP/1003|2001/:PJSIP/1004|");
    store_close(&st);
}

/* A lines.db whose seat_sessions table predates the device column gets it; its rows NULL. */
static void device_migration(void **state)
{
    struct store st;
    sqlite3 *db = NULL;
    char out[256];

    (void)state;
    snprintf(st.dir, sizeof(st.dir), "/tmp/wp-seats-XXXXXX");
    assert_non_null(mkdtemp(st.dir));
    snprintf(st.path, sizeof(st.path), "%s/lines.db", st.dir);
    assert_int_equal(sqlite3_open(st.path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "CREATE TABLE seat_sessions (id INTEGER PRIMARY KEY, host TEXT NOT NULL, "
                     "seat TEXT NOT NULL, queue TEXT NOT NULL, login_ms INTEGER NOT NULL, "
                     "logout_ms INTEGER, login_observed INTEGER NOT NULL DEFAULT 0, "
                     "logout_observed INTEGER NOT NULL DEFAULT 0, "
                     "UNIQUE (host, seat, queue, login_ms));"
                     "INSERT INTO seat_sessions (host, seat, queue, login_ms) "
                     "VALUES ('pbx1', 'Old', 'q', 1767254400000);",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(coll_lines_open(st.path, &st.l), 0);
    st.s = coll_lines_seats(st.l);
    assert_non_null(st.s);
    assert_int_equal(
        coll_seats_put_dev(st.s, "pbx1", "New", "q", "PJSIP/1001", "login", NULL, T0 + MIN, 0, 0),
        1);
    assert_string_equal(devices(&st, out), "Old/q:NULL|New/q:PJSIP/1001|");
    /* the old open session learns its device from its next event */
    assert_int_equal(coll_seats_put_dev(st.s, "pbx1", "Old", "q", "PJSIP/1002", "pause", "x",
                                        T0 + 2 * MIN, 0, 0),
                     1);
    assert_string_equal(devices(&st, out), "Old/q:PJSIP/1002|New/q:PJSIP/1001|");
    /* opened again: the column is there already */
    coll_lines_close(st.l);
    assert_int_equal(coll_lines_open(st.path, &st.l), 0);
    st.s = coll_lines_seats(st.l);
    assert_string_equal(devices(&st, out), "Old/q:PJSIP/1002|New/q:PJSIP/1001|");
    store_close(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sessions_and_pauses), cmocka_unit_test(from_fields),
        cmocka_unit_test(paused_state),        cmocka_unit_test(device_field),
        cmocka_unit_test(device_migration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
