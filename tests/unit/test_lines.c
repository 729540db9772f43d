/* SPDX-License-Identifier: Apache-2.0 */
/* Line states: the current table keeps when a line entered its state, the history gets one
 * row per change in order, replays are ignored, filters and pruning work. */
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

#include "lines.h"
#include "wp/mem.h"

#define T0 1767225600000LL

struct seen {
    char text[4096];
    int n;
};

static int collect(void *arg, const struct coll_line *l)
{
    struct seen *s = arg;
    size_t len = strlen(s->text);
    snprintf(s->text + len, sizeof(s->text) - len, "%s %s %s %s %lld|", l->host, l->object,
             l->state, l->raw, (long long)((l->since_ms - T0) / 1000));
    s->n++;
    return 0;
}

static void table_and_history(void **state)
{
    char dir[] = "/tmp/wp-lines-XXXXXX";
    char path[64];
    struct coll_lines *l = NULL;
    struct seen s;
    (void)state;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/lines.db", dir);
    assert_int_equal(coll_lines_open(path, &l), 0);
    assert_int_equal(coll_lines_begin(l), 0);
    assert_int_equal(coll_lines_put(l, "pbx1", "pbx1", "8001", "ivr", "idle", "Idle", NULL, T0), 1);
    assert_int_equal(coll_lines_put(l, "pbx1", "pbx1", "8002", "ivr", "busy", "Busy", "Call1", T0),
                     1);
    assert_int_equal(coll_lines_commit(l), 0);
    /* the same state again: no change, since stays */
    assert_int_equal(coll_lines_put(l, "pbx1", "pbx1", "8001", "ivr", "idle", "Idle", NULL,
                                    T0 + 10000),
                     0);
    /* a change: since moves, history grows */
    assert_int_equal(coll_lines_put(l, "pbx1", "pbx1", "8001", "ivr", "blocked", "Blocked", NULL,
                                    T0 + 20000),
                     1);
    /* a replayed older report is ignored */
    assert_int_equal(coll_lines_put(l, "pbx1", "pbx1", "8001", "ivr", "idle", "Idle", NULL,
                                    T0 + 15000),
                     0);
    assert_int_equal(coll_lines_put(l, "db1", "db1", "SIP/9", "trunk", "idle", "", NULL, T0), 1);

    memset(&s, 0, sizeof(s));
    assert_int_equal(coll_lines_each(l, NULL, NULL, NULL, collect, &s), 0);
    assert_string_equal(s.text, "db1 SIP/9 idle  0|pbx1 8001 blocked Blocked 20|"
                                "pbx1 8002 busy Busy 0|");
    memset(&s, 0, sizeof(s));
    assert_int_equal(coll_lines_each(l, "pbx1", "ivr", "blocked", collect, &s), 0);
    assert_int_equal(s.n, 1);
    memset(&s, 0, sizeof(s));
    assert_int_equal(coll_lines_history(l, "pbx1", "8001", 0, collect, &s), 0);
    assert_string_equal(s.text, "pbx1 8001 idle Idle 0|pbx1 8001 blocked Blocked 20|");
    /* pruning drops history, never the current table */
    assert_int_equal(coll_lines_prune(l, T0 + 1), 3);
    memset(&s, 0, sizeof(s));
    assert_int_equal(coll_lines_history(l, NULL, NULL, 0, collect, &s), 0);
    assert_int_equal(s.n, 1);
    memset(&s, 0, sizeof(s));
    assert_int_equal(coll_lines_each(l, NULL, NULL, NULL, collect, &s), 0);
    assert_int_equal(s.n, 3);
    coll_lines_close(l);

    /* everything is on disk */
    assert_int_equal(coll_lines_open(path, &l), 0);
    memset(&s, 0, sizeof(s));
    assert_int_equal(coll_lines_each(l, "pbx1", NULL, NULL, collect, &s), 0);
    assert_int_equal(s.n, 2);
    coll_lines_close(l);
    char *cmd = wp_xasprintf("rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table_and_history),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
