/* SPDX-License-Identifier: Apache-2.0 */
/* The linetable probe on fixtures/telephony (a real DevLink line table), as a file and a command.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "capture.h"
#include "probe.h"
#include "probe_fixture.h"
#include "wp/conf.h"
#include "wp/err.h"
#include "wp/mem.h"

extern const struct wp_probe_ops wp_probe_linetable;

#define T0      1000000
#define IN_TEST "lt.yaml"
#define LINK    "linetable:devlink"

struct env {
    char dir[64];
    char *fix;   /* $WP_FIXTURES/telephony */
    char *table; /* the fixture text */
    char *file;  /* dir/lines.txt */
    struct capture cap;
    struct wp_probe *p;
    struct wp_conf_err err;
};

/* Set the file's mtime to now - ago_s. */
static void set_age(const char *path, long ago_s)
{
    struct timespec ts[2];

    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= ago_s;
    ts[1] = ts[0];
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static int setup(void **state)
{
    struct env *e = wp_xcalloc(1, sizeof(*e));
    const char *fix = getenv("WP_FIXTURES");
    char *src = NULL;

    assert_non_null(fix);
    e->fix = wp_xasprintf("%s/telephony", fix);
    src = wp_xasprintf("%s/devlink-lines.txt", e->fix);
    e->table = fixture_read_file(src, NULL);
    free(src);
    snprintf(e->dir, sizeof(e->dir), "/tmp/wp-lt-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    e->file = wp_xasprintf("%s/lines.txt", e->dir);
    fixture_write_file(e->file, e->table);
    capture_init(&e->cap, T0, 10);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    char cmd[128];

    wp_probe_free(e->p);
    capture_cleanup(&e->cap);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
    assert_int_equal(system(cmd), 0);
    free(e->fix);
    free(e->table);
    free(e->file);
    free(e);
    return 0;
}

static int make(struct env *e, const char *yaml)
{
    return fixture_probe_remake(&wp_probe_linetable, IN_TEST, yaml, &e->err, &e->p);
}

static void make_ok(struct env *e, const char *yaml)
{
    int rc = make(e, yaml);

    if (rc != 0) {
        print_error("config: %s\n", e->err.msg);
    }
    assert_int_equal(rc, 0);
    assert_non_null(e->p);
}

static void make_file(struct env *e)
{
    char *y = wp_xasprintf("{kind: linetable, name: devlink, file: %s, group: ivr}", e->file);

    make_ok(e, y);
    free(y);
}

static void sample(struct env *e)
{
    capture_clear(&e->cap);
    assert_int_equal(e->p->ops->sample(e->p, &e->cap.sink), 0);
    assert_int_equal(e->cap.bad, 0);
}

static size_t nstates(const struct env *e)
{
    size_t n = 0;

    for (size_t i = 0; i < e->cap.nrecs; i++) {
        n += e->cap.recs[i].kind == WP_REC_STATE;
    }
    return n;
}

static void expect_state(const struct env *e, const char *obj, const char *group, const char *state,
                         const char *raw)
{
    const struct cap_rec *r = capture_rec(&e->cap, WP_REC_STATE, obj);

    if (r == NULL) {
        print_error("no state for %s\n", obj);
    }
    assert_non_null(r);
    if (strcmp(r->text, state) != 0 || strcmp(r->raw, raw) != 0 || strcmp(r->group, group) != 0) {
        print_error("%s: got %s/%s (%s), want %s/%s (%s)\n", obj, r->text, r->raw, r->group, state,
                    raw, group);
    }
    assert_string_equal(r->text, state);
    assert_string_equal(r->raw, raw);
    assert_string_equal(r->group, group);
}

static void expect_val(const struct env *e, const char *field, double want)
{
    char path[128];
    double v = 0;

    snprintf(path, sizeof(path), "linetable/devlink/%s", field);
    v = capture_get(&e->cap, path);
    if (v != want) {
        print_error("%s: got %g, want %g\n", path, v, want);
    }
    assert_true(v == want);
}

/* The fixture's counts: 10 lines, 6 idle, 1 each busy, ringing, in_use, blocked, oos. */
static void expect_fixture(const struct env *e)
{
    const struct cap_rec *r = NULL;

    expect_state(e, "8001", "ivr", "idle", "Idle");
    expect_state(e, "8003", "ivr", "busy", "Busy");
    r = capture_rec(&e->cap, WP_REC_STATE, "8003");
    assert_string_equal(r->info, "Call1=0x10347 133924, Call2=0x0 0");
    expect_state(e, "8004", "ivr", "out_of_service", "OutOfService");
    expect_state(e, "8005", "ivr", "ringing", "Ringing");
    expect_state(e, "8006", "ivr", "blocked", "Blocked");
    expect_state(e, "203", "ivr", "in_use", "Connected");
    expect_state(e, LINK, "telephony_link", "idle", "IPO DevLink connected");
    assert_int_equal(nstates(e), 11);
    expect_val(e, "up", 1);
    expect_val(e, "lines", 10);
    expect_val(e, "idle", 5);
    expect_val(e, "in_use", 1);
    expect_val(e, "busy", 1);
    expect_val(e, "ringing", 1);
    expect_val(e, "unavailable", 1);
    expect_val(e, "blocked", 1);
}

/* ---- tests ---- */

static void parses_fixture(void **state)
{
    struct env *e = *state;
    double age = 0;

    make_file(e);
    sample(e);
    expect_fixture(e);
    age = capture_get(&e->cap, "linetable/devlink/age_s");
    assert_true(age >= 0 && age < 30);
    /* nothing changed: nothing emitted, the row still comes */
    sample(e);
    assert_int_equal(nstates(e), 0);
    expect_val(e, "up", 1);
    expect_val(e, "lines", 10);
}

static void emits_only_changes(void **state)
{
    struct env *e = *state;
    char *t = NULL;
    char *p = NULL;

    make_file(e);
    sample(e);
    /* 8001 starts ringing, 8003 hangs up */
    t = wp_xstrdup(e->table);
    p = strstr(t, "8001\tY\tExtension\tIdle\tIdle");
    assert_non_null(p);
    memcpy(p + strlen("8001\tY\tExtension\t"), "Ring", 4); /* "Ring" is unmapped */
    p = strstr(t, "8003\tY\tExtension\tBusy\tBusy");
    assert_non_null(p);
    memcpy(p + strlen("8003\tY\tExtension\t"), "Idle", 4);
    fixture_write_file(e->file, t);
    free(t);
    sample(e);
    assert_int_equal(nstates(e), 2);
    expect_state(e, "8001", "ivr", "unknown", "Ring");
    expect_state(e, "8003", "ivr", "idle", "Idle");
    expect_val(e, "idle", 5);
    expect_val(e, "busy", 0);
    expect_val(e, "unavailable", 2);
}

static void stale_then_recovered(void **state)
{
    struct env *e = *state;

    make_file(e);
    sample(e);
    set_age(e->file, 120);
    sample(e);
    assert_int_equal(nstates(e), 11);
    expect_state(e, "8001", "ivr", "unknown", "link lost");
    expect_state(e, "203", "ivr", "unknown", "link lost");
    {
        const struct cap_rec *r = capture_rec(&e->cap, WP_REC_STATE, LINK);
        assert_non_null(r);
        assert_string_equal(r->text, "unavailable");
        assert_non_null(strstr(r->raw, "stale"));
    }
    expect_val(e, "up", 0);
    assert_true(capture_get(&e->cap, "linetable/devlink/age_s") >= 119);
    expect_val(e, "unavailable", 10);
    expect_val(e, "idle", 0);
    /* still stale: said once */
    sample(e);
    assert_int_equal(nstates(e), 0);
    expect_val(e, "up", 0);
    /* fresh again: the full snapshot */
    set_age(e->file, 0);
    sample(e);
    expect_fixture(e);
}

static void missing_file(void **state)
{
    struct env *e = *state;

    make_file(e);
    sample(e);
    assert_int_equal(unlink(e->file), 0);
    sample(e);
    expect_val(e, "up", 0);
    expect_state(e, "8005", "ivr", "unknown", "link lost");
    assert_non_null(strstr(capture_rec(&e->cap, WP_REC_STATE, LINK)->raw, "No such file"));
}

static void command_source(void **state)
{
    struct env *e = *state;
    char *y = wp_xasprintf("{kind: linetable, name: devlink, group: ivr, command: "
                           "[%s/devlink-dump.sh, --lines]}",
                           e->fix);

    make_ok(e, y);
    free(y);
    sample(e);
    expect_fixture(e);
    assert_true(isnan(capture_get(&e->cap, "linetable/devlink/age_s")));
}

static void command_fails(void **state)
{
    struct env *e = *state;

    make_ok(e, "{kind: linetable, name: devlink, command: [/bin/false]}");
    sample(e);
    expect_val(e, "up", 0);
    expect_val(e, "lines", 0);
    expect_state(e, LINK, "telephony_link", "unavailable", "command exited with status 1");
    assert_int_equal(nstates(e), 1);
}

static void command_times_out(void **state)
{
    struct env *e = *state;
    const struct cap_rec *r = NULL;

    make_ok(e, "{kind: linetable, name: devlink, command: [/bin/sleep, \"30\"], timeout: 200ms}");
    sample(e);
    expect_val(e, "up", 0);
    r = capture_rec(&e->cap, WP_REC_STATE, LINK);
    assert_non_null(r);
    assert_non_null(strstr(r->raw, "timed out"));
}

static void group_column(void **state)
{
    struct env *e = *state;
    char *y =
        wp_xasprintf("{kind: linetable, name: devlink, file: %s, group_column: Type}", e->file);

    make_ok(e, y);
    free(y);
    sample(e);
    expect_state(e, "8001", "Extension", "idle", "Idle");
}

/* Every normalised state can be a state_map target, on_hold too (it was refused). */
static void state_map_targets(void **state)
{
    struct env *e = *state;
    char *y = wp_xasprintf("{kind: linetable, name: devlink, file: %s, group: ivr,\n"
                           "  state_map: {Busy: on_hold, Ringing: unavailable}}",
                           e->file);

    make_ok(e, y);
    free(y);
    sample(e);
    expect_state(e, "8003", "ivr", "on_hold", "Busy");
    expect_state(e, "8005", "ivr", "unavailable", "Ringing");
    expect_state(e, "8001", "ivr", "idle", "Idle");
}

static void config_errors(void **state)
{
    struct env *e = *state;
    char *y = NULL;

    assert_int_equal(make(e, "{kind: linetable, name: devlink}"), WP_ECONFIG);
    assert_null(e->p);
    assert_non_null(strstr(e->err.msg, IN_TEST ":1:1:"));
    assert_non_null(strstr(e->err.msg, "init failed"));

    y = wp_xasprintf("{kind: linetable, file: %s,\n  command: [/bin/cat]}", e->file);
    assert_int_equal(make(e, y), WP_ECONFIG);
    free(y);

    y = wp_xasprintf("{kind: linetable, file: %s, columns: {phone: X}}", e->file);
    assert_int_equal(make(e, y), WP_ECONFIG);
    free(y);

    y = wp_xasprintf("{kind: linetable, file: %s,\n  stale_after: soon}", e->file);
    assert_int_equal(make(e, y), WP_ECONFIG);
    assert_non_null(strstr(e->err.msg, IN_TEST ":2:16:"));
    free(y);

    /* a header name not in the table is found at the first read */
    y = wp_xasprintf("{kind: linetable, name: devlink, file: %s, columns: {state: Status}}",
                     e->file);
    make_ok(e, y);
    free(y);
    sample(e);
    expect_val(e, "up", 0);
    assert_string_equal(capture_rec(&e->cap, WP_REC_STATE, LINK)->raw,
                        "column \"Status\" (state) is not in the header");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(parses_fixture, setup, teardown),
        cmocka_unit_test_setup_teardown(emits_only_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(stale_then_recovered, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(command_source, setup, teardown),
        cmocka_unit_test_setup_teardown(command_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(command_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(group_column, setup, teardown),
        cmocka_unit_test_setup_teardown(state_map_targets, setup, teardown),
        cmocka_unit_test_setup_teardown(config_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
