/* SPDX-License-Identifier: Apache-2.0 */
/* The files probe on fixture directories: ages set with utimensat(), sizes with ftruncate()
 * (sparse), the sample time from the capture sink, so nothing waits. */
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

extern const struct wp_probe_ops wp_probe_files;

#define T0 1764400000LL /* the sample time, s */

struct env {
    char dir[64];
    struct capture cap;
    struct wp_probe *p;
    struct wp_conf_err err;
};

static int setup(void **state)
{
    struct env *e = wp_xcalloc(1, sizeof(*e));

    snprintf(e->dir, sizeof(e->dir), "/tmp/wp-files-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    capture_init(&e->cap, T0 * 1000, 300);
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
    free(e);
    return 0;
}

/* Create DIR/name with size bytes (sparse) modified age seconds before T0. */
static void mkfile(struct env *e, const char *name, uint64_t size, int64_t age)
{
    char *path = wp_xasprintf("%s/%s", e->dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    struct timespec ts[2];

    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    close(fd);
    ts[0].tv_sec = T0 - age;
    ts[0].tv_nsec = 0;
    ts[1] = ts[0];
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
    free(path);
}

/* Create the probe from YAML text, "@" standing for the fixture directory. */
static int make(struct env *e, const char *yaml_tmpl)
{
    char yaml[4096];
    size_t n = 0;

    for (const char *c = yaml_tmpl; *c != '\0' && n + 64 < sizeof(yaml); c++) {
        if (*c == '@') {
            n += (size_t)snprintf(yaml + n, sizeof(yaml) - n, "%s", e->dir);
        } else {
            yaml[n++] = *c;
        }
    }
    yaml[n] = '\0';
    return fixture_probe_remake(&wp_probe_files, "files.yaml", yaml, &e->err, &e->p);
}

static void make_ok(struct env *e, const char *yaml)
{
    int rc = make(e, yaml);

    if (rc != 0) {
        print_error("config: %s\n", e->err.msg);
    }
    assert_int_equal(rc, 0);
}

static void sample(struct env *e)
{
    capture_clear(&e->cap);
    assert_int_equal(e->p->ops->sample(e->p, &e->cap.sink), 0);
    assert_int_equal(e->cap.bad, 0);
}

/* The check's output with the fixture directory written as "@". */
static const char *output(struct env *e, const char *check, unsigned *status)
{
    static char buf[1024];
    const struct cap_rec *r = capture_rec(&e->cap, WP_REC_CHECK, check);
    const char *s = NULL;
    size_t dl = strlen(e->dir);
    size_t n = 0;

    assert_non_null(r);
    *status = r->level;
    s = r->text;
    while (*s != '\0' && n + 1 < sizeof(buf)) {
        if (strncmp(s, e->dir, dl) == 0) {
            buf[n++] = '@';
            s += dl;
        } else {
            buf[n++] = *s++;
        }
    }
    buf[n] = '\0';
    return buf;
}

static void expect(struct env *e, const char *check, unsigned status, const char *text)
{
    unsigned got = 99;
    const char *out = output(e, check, &got);

    if (strcmp(out, text) != 0 || got != status) {
        print_error("%s: got status %u \"%s\"\n      want status %u \"%s\"\n", check, got, out,
                    status, text);
    }
    assert_string_equal(out, text);
    assert_int_equal(got, status);
}

/* ---- tests ---- */

static void newest_of_glob_ok(void **state)
{
    struct env *e = *state;

    mkfile(e, "db1-2026-11-27.dmp", 1288490189, 2 * 86400 + 3 * 3600);
    mkfile(e, "db1-2026-11-29.dmp", 1288490189, 3 * 3600 + 12 * 60); /* 1.2 GiB, 3h12m */
    mkfile(e, "other.log", 10, 60);
    make_ok(e, "{kind: files, targets: [{name: db1, path: \"@/db1-*.dmp\", max_age: 26h, "
               "min_size: 1GiB}]}");
    sample(e);
    expect(e, "file_db1", WP_CHECK_OK,
           "FILE OK: newest @/db1-2026-11-29.dmp is 3h12m old (max 26h), 1.2 GiB");
    assert_true(capture_get(&e->cap, "file/db1/age_s") == 11520.0);
    assert_true(capture_get(&e->cap, "file/db1/size_bytes") == 1288490189.0);
    assert_true(capture_get(&e->cap, "file/db1/count") == 2.0);
}

static void too_old_is_critical(void **state)
{
    struct env *e = *state;

    mkfile(e, "db1-2026-11-27.dmp", 4096, 3 * 86400 + 2 * 3600 + 59);
    make_ok(e, "{kind: files, targets: [{name: db1, path: \"@/db1-*.dmp\", max_age: 26h}]}");
    sample(e);
    expect(e, "file_db1", WP_CHECK_CRITICAL,
           "FILE CRITICAL: newest @/db1-2026-11-27.dmp is 3d2h old (max 26h), 4 KiB");
    /* one second over the limit is over it; exactly at it is not */
    mkfile(e, "db1-2026-11-27.dmp", 512, 26 * 3600);
    sample(e);
    expect(e, "file_db1", WP_CHECK_OK,
           "FILE OK: newest @/db1-2026-11-27.dmp is 26h old (max 26h), 512 B");
    mkfile(e, "db1-2026-11-27.dmp", 512, 26 * 3600 + 1);
    sample(e);
    expect(e, "file_db1", WP_CHECK_CRITICAL,
           "FILE CRITICAL: newest @/db1-2026-11-27.dmp is 26h0m old (max 26h), 512 B");
}

static void too_small_is_critical(void **state)
{
    struct env *e = *state;

    mkfile(e, "app.dmp", 12 << 10, 45);
    make_ok(e, "{kind: files, targets: [{name: app, path: \"@/app.dmp\", max_age: 15m, "
               "min_size: 100MiB}]}");
    sample(e);
    expect(e, "file_app", WP_CHECK_CRITICAL,
           "FILE CRITICAL: newest @/app.dmp is 45s old (max 15m), 12 KiB, below the minimum "
           "of 100 MiB");
    assert_true(capture_get(&e->cap, "file/app/size_bytes") == 12288.0);
    assert_true(capture_get(&e->cap, "file/app/count") == 1.0);
}

static void missing_is_critical(void **state)
{
    struct env *e = *state;
    double v = 0;

    make_ok(e, "{kind: files, targets: [{name: log, path: \"@/app.log\", max_age: 15m}, "
               "{name: bak, path: \"@/*.bak\", max_age: 1d}]}");
    sample(e);
    expect(e, "file_log", WP_CHECK_CRITICAL, "FILE CRITICAL: @/app.log: No such file or directory");
    expect(e, "file_bak", WP_CHECK_CRITICAL, "FILE CRITICAL: no file matches @/*.bak");
    assert_int_equal(capture_find(&e->cap, "file/log/age_s", &v), 0);
    assert_true(isnan(v));
    assert_int_equal(capture_find(&e->cap, "file/bak/size_bytes", &v), 0);
    assert_true(isnan(v));
    assert_true(capture_get(&e->cap, "file/bak/count") == 0.0);
    /* it appears: OK at the next sample */
    mkfile(e, "x.bak", 100, 12 * 60 + 5);
    sample(e);
    expect(e, "file_bak", WP_CHECK_OK, "FILE OK: newest @/x.bak is 12m5s old (max 24h), 100 B");
}

static void directories_are_ignored(void **state)
{
    struct env *e = *state;
    char *sub = wp_xasprintf("%s/new.bak", e->dir);

    mkfile(e, "old.bak", 1, 7200);
    assert_int_equal(mkdir(sub, 0755), 0); /* newest, but not a file */
    make_ok(e, "{kind: files, targets: [{name: bak, path: \"@/{old,new}.bak\", max_age: 1h}]}");
    sample(e);
    expect(e, "file_bak", WP_CHECK_CRITICAL,
           "FILE CRITICAL: newest @/old.bak is 2h old (max 1h), 1 B");
    assert_true(capture_get(&e->cap, "file/bak/count") == 1.0);
    /* a literal path that is a directory */
    make_ok(e, "{kind: files, targets: [{name: d, path: \"@/new.bak\", max_age: 1h}]}");
    sample(e);
    expect(e, "file_d", WP_CHECK_CRITICAL, "FILE CRITICAL: @/new.bak: not a regular file");
    free(sub);
}

static void future_mtime_is_age_zero(void **state)
{
    struct env *e = *state;

    mkfile(e, "skew.log", 3, -600);
    make_ok(e, "{kind: files, targets: [{name: skew, path: \"@/skew.log\", max_age: 10m}]}");
    sample(e);
    expect(e, "file_skew", WP_CHECK_OK,
           "FILE OK: newest @/skew.log is 0s old (modified in the future) (max 10m), 3 B");
    assert_true(capture_get(&e->cap, "file/skew/age_s") == 0.0);
}

static void bad_config_is_refused(void **state)
{
    struct env *e = *state;
    static const struct {
        const char *yaml, *want;
    } cases[] = {
        {"{kind: files, targets: [{name: a, path: rel/x.log, max_age: 1h}]}",
         "files.yaml:1:41: targets[0].path: expected an absolute path or pattern, got "
         "\"rel/x.log\""},
        {"{kind: files, targets: [{name: a, path: /x.log}]}", "max_age"},
        {"{kind: files, targets: [{name: a, path: /x, max_age: 1h}, {name: a, path: /y, "
         "max_age: 1h}]}",
         "\"a\" is already the name of targets[0]"},
        {"{kind: files, targets: [{name: a, path: /x, max_age: 1h, min_size: lots}]}", "min_size"},
        {"{kind: files, targets: []}", "targets: expected a list"},
        {"{kind: files}", "targets"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(make(e, cases[i].yaml), WP_ECONFIG);
        assert_null(e->p);
        if (strstr(e->err.msg, cases[i].want) == NULL) {
            print_error("case %zu: \"%s\" lacks \"%s\"\n", i, e->err.msg, cases[i].want);
        }
        assert_non_null(strstr(e->err.msg, cases[i].want));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(newest_of_glob_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(too_old_is_critical, setup, teardown),
        cmocka_unit_test_setup_teardown(too_small_is_critical, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_is_critical, setup, teardown),
        cmocka_unit_test_setup_teardown(directories_are_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(future_mtime_is_age_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_config_is_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
