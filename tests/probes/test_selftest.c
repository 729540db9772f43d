/* SPDX-License-Identifier: Apache-2.0 */
/* The selftest probe: exact values from the sample time, record lines only after committed(). */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "capture.h"
#include "peers.h"
#include "probe.h"
#include "probe_fixture.h"
#include "wp/conf.h"
#include "wp/mem.h"

extern const struct wp_probe_ops wp_probe_selftest;

struct env {
    char dir[64];
    char record[128];
    struct capture cap;
    struct wp_probe *p;
};

static int setup(void **state)
{
    struct env *e = wp_xcalloc(1, sizeof(*e));

    snprintf(e->dir, sizeof(e->dir), "/tmp/wp-selftest-XXXXXX");
    if (mkdtemp(e->dir) == NULL) {
        free(e);
        return -1;
    }
    snprintf(e->record, sizeof(e->record), "%s/record.txt", e->dir);
    capture_init(&e->cap, 0, 1);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;

    wp_probe_free(e->p);
    capture_cleanup(&e->cap);
    peers_rmtree(e->dir);
    free(e);
    return 0;
}

static int new_probe(const char *yaml, struct wp_probe **out)
{
    return fixture_probe_new(&wp_probe_selftest, "selftest.yaml", yaml, out);
}

static void sample_at(struct env *e, int64_t ts_ms)
{
    capture_clear(&e->cap);
    e->cap.sink.ts_ms = ts_ms;
    assert_int_equal(e->p->ops->sample(e->p, &e->cap.sink), 0);
    assert_int_equal(e->cap.bad, 0);
}

/* The record file's text ("" when it does not exist); free() it. */
static char *record_text(const struct env *e)
{
    FILE *fp = fopen(e->record, "rb");
    char *buf = wp_xcalloc(1, 1 << 16);

    if (fp != NULL) {
        size_t n = fread(buf, 1, (1 << 16) - 1, fp);
        buf[n] = '\0';
        fclose(fp);
    }
    return buf;
}

static void selftest_values_follow_time(void **state)
{
    struct env *e = *state;
    char path[64];

    assert_int_equal(new_probe("kind: selftest\nseries: 3\nfields: 4\n", &e->p), 0);
    sample_at(e, 1700000123456);
    assert_int_equal(e->cap.n, 3);
    for (int i = 0; i < 3; i++) {
        for (int k = 0; k < 4; k++) {
            snprintf(path, sizeof(path), "selftest/s%d/v%d", i, k);
            assert_true(capture_get(&e->cap, path) == 1700000123000.0 + i * 32 + k);
        }
    }
    assert_true(capture_get(&e->cap, "selftest/s0/v4") == CAP_ABSENT);
    assert_true(capture_get(&e->cap, "selftest/s3/v0") == CAP_ABSENT);
    sample_at(e, 1700000124000);
    assert_true(capture_get(&e->cap, "selftest/s2/v3") == 1700000124000.0 + 67);
}

static void selftest_defaults_and_bounds(void **state)
{
    struct env *e = *state;
    struct wp_probe *q = NULL;

    assert_int_equal(new_probe("kind: selftest\n", &e->p), 0);
    sample_at(e, 5999);
    assert_int_equal(e->cap.n, 1);
    assert_true(capture_get(&e->cap, "selftest/s0/v0") == 5000.0);
    assert_int_equal(e->cap.rows[0].nfields, 1);

    assert_true(new_probe("kind: selftest\nseries: 1001\n", &q) < 0);
    assert_null(q);
    assert_true(new_probe("kind: selftest\nfields: 33\n", &q) < 0);
    assert_true(new_probe("kind: selftest\nfields: 0\n", &q) < 0);
    assert_int_equal(new_probe("kind: selftest\nseries: 1000\nfields: 32\n", &q), 0);
    capture_clear(&e->cap);
    assert_int_equal(q->ops->sample(q, &e->cap.sink), 0);
    assert_int_equal(e->cap.n, 1000);
    assert_int_equal(e->cap.bad, 0);
    assert_true(capture_get(&e->cap, "selftest/s999/v31") == 5000.0 + 999 * 32 + 31);
    wp_probe_free(q);
}

static void selftest_records_only_committed_rows(void **state)
{
    struct env *e = *state;
    char *yaml = wp_xasprintf("kind: selftest\nseries: 2\nfields: 2\nrecord: %s\n", e->record);
    char *text = NULL;

    assert_int_equal(new_probe(yaml, &e->p), 0);
    free(yaml);
    sample_at(e, 10000);
    sample_at(e, 11000);
    sample_at(e, 12500);
    text = record_text(e);
    assert_string_equal(text, ""); /* nothing is durable yet */
    free(text);

    e->p->ops->committed(e->p, 11000);
    text = record_text(e);
    assert_string_equal(text, "10000 s0 10000 10001\n"
                              "10000 s1 10032 10033\n"
                              "11000 s0 11000 11001\n"
                              "11000 s1 11032 11033\n");
    free(text);

    e->p->ops->committed(e->p, 11000); /* again: nothing more */
    e->p->ops->committed(e->p, 12000); /* before the next round: nothing more */
    text = record_text(e);
    assert_null(strstr(text, "12500"));
    free(text);

    sample_at(e, 13000);
    e->p->ops->committed(e->p, 12500);
    text = record_text(e);
    assert_non_null(strstr(text, "11000 s1 11032 11033\n"
                                 "12500 s0 12000 12001\n"
                                 "12500 s1 12032 12033\n"));
    assert_null(strstr(text, "13000"));
    free(text);

    /* the probe goes away before 13000 is committed: it is never recorded */
    wp_probe_free(e->p);
    e->p = NULL;
    text = record_text(e);
    assert_null(strstr(text, "13000"));
    free(text);

    /* a restarted probe appends */
    yaml = wp_xasprintf("kind: selftest\nrecord: %s\n", e->record);
    assert_int_equal(new_probe(yaml, &e->p), 0);
    free(yaml);
    sample_at(e, 20000);
    e->p->ops->committed(e->p, 20000);
    text = record_text(e);
    assert_non_null(strstr(text, "12500 s1 12032 12033\n20000 s0 20000\n"));
    free(text);
}

static void selftest_bad_record_path_fails_init(void **state)
{
    struct env *e = *state;
    char *yaml = wp_xasprintf("kind: selftest\nrecord: %s/no/such/dir/rec\n", e->dir);
    struct wp_probe *q = NULL;

    assert_true(new_probe(yaml, &q) < 0);
    assert_null(q);
    free(yaml);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(selftest_values_follow_time, setup, teardown),
        cmocka_unit_test_setup_teardown(selftest_defaults_and_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(selftest_records_only_committed_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(selftest_bad_record_path_fails_init, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
