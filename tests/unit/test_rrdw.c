/* SPDX-License-Identifier: Apache-2.0 */
/* RRD write-behind tests with the real librrd: values, skips, segments, names, batching. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* cmocka needs these first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <uv.h>

#include "rrdq.h"
#include "rrdw.h"
#include "wp/err.h"
#include "wp/mem.h"
#include "wp/wire.h"

#define T0 1700000000LL /* a multiple of 10 s */

struct fix {
    uv_loop_t loop;
    char dir[64];
    struct wp_rrdw *w;
    int flushed;
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fix *fx = wp_xcalloc(1, sizeof(*fx));

    snprintf(fx->dir, sizeof(fx->dir), "/tmp/wprrdwXXXXXX");
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    uv_loop_init(&fx->loop);
    *state = fx;
    return 0;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

static int teardown(void **state)
{
    struct fix *fx = *state;

    if (fx->w != NULL) {
        wp_rrdw_close(fx->w);
        fx->w = NULL;
    }
    uv_walk(&fx->loop, close_walk, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&fx->loop);
    nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return rc == 0 ? 0 : -1;
}

static void on_guard(uv_timer_t *t)
{
    (void)t;
}

static int run_until(struct fix *fx, int (*pred)(struct fix *fx), int64_t timeout_ms)
{
    uv_timer_t guard;
    uint64_t end = uv_now(&fx->loop) + (uint64_t)timeout_ms;
    int ok = 0;

    uv_timer_init(&fx->loop, &guard);
    uv_timer_start(&guard, on_guard, 10, 10);
    while (!(ok = pred(fx))) {
        uv_update_time(&fx->loop);
        if (uv_now(&fx->loop) >= end) {
            break;
        }
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    return ok;
}

static void wopen(struct fix *fx, int64_t interval_ms, uint32_t max_pending)
{
    struct wp_rrdw_opts o = {
        .dir = fx->dir, .flush_interval_ms = interval_ms, .max_pending = max_pending};
    assert_int_equal(wp_rrdw_open(&fx->loop, &o, &fx->w), 0);
}

static void wclose(struct fix *fx)
{
    wp_rrdw_close(fx->w);
    fx->w = NULL;
    uv_run(&fx->loop, UV_RUN_NOWAIT);
}

static void on_flushed(void *arg)
{
    struct fix *fx = arg;
    fx->flushed++;
}

static int is_flushed(struct fix *fx)
{
    return fx->flushed > 0;
}

static void flush(struct fix *fx)
{
    fx->flushed = 0;
    wp_rrdw_flush_all(fx->w, on_flushed, fx);
    assert_true(run_until(fx, is_flushed, 30000));
}

/* Values read back: ts -> value for one DS. */
struct series {
    int n;
    int64_t ts[4096];
    double v[4096];
};

static int collect(void *arg, int64_t ts, double v)
{
    struct series *s = arg;
    if (s->n >= 4096) {
        return -1;
    }
    s->ts[s->n] = ts;
    s->v[s->n] = v;
    s->n++;
    return 0;
}

/* The stored value at ts (NaN when unknown); fails the test when ts was not returned. */
static double value_at(const struct series *s, int64_t ts)
{
    for (int i = 0; i < s->n; i++) {
        if (s->ts[i] == ts) {
            return s->v[i];
        }
    }
    fail_msg("no row at %" PRId64, ts);
    return NAN;
}

static void fetch(struct fix *fx, const char *rel, const char *ds, int64_t from, int64_t to,
                  struct series *s, uint32_t want_step)
{
    char path[512];
    uint32_t step = 0;

    snprintf(path, sizeof(path), "%s/%s", fx->dir, rel);
    s->n = 0;
    assert_int_equal(wp_rrdq_fetch(path, ds, from, to, 0, collect, s, &step), 0);
    assert_int_equal(step, want_step);
}

static void assert_close(double got, double want)
{
    if (!(fabs(got - want) <= 1e-12 * fabs(want))) {
        fail_msg("got %.17g want %.17g", got, want);
    }
}

static const char *const f3[] = {"user", "system", "idle"};

static double val3(int file, int row, int k)
{
    /* integers, fractions and thirds: both formatting paths */
    switch (k) {
    case 0:
        return file * 1000 + row;
    case 1:
        return file + row * 0.25;
    default:
        return (file + 1) / 3.0 + row * 1e-3;
    }
}

static void rrdw_writes_exact_values(void **state)
{
    struct fix *fx = *state;
    struct wp_rrdw_file *f[3];
    const char *agents[] = {"db01", "db01", "app.example.com"};
    const char *insts[] = {"cpu0", "cpu1", ""};
    int err = 0;
    struct wp_rrdw_stats st;
    struct series s;

    wopen(fx, 60000, 1000);
    for (int i = 0; i < 3; i++) {
        f[i] = wp_rrdw_file_get(fx->w, agents[i], "cpu", insts[i], f3, 3, WP_DS_GAUGE, 10, &err);
        assert_non_null(f[i]);
        assert_int_equal(err, 0);
    }
    assert_string_equal(wp_rrdw_file_path(f[0]), "db01/cpu-cpu0.rrd");
    assert_string_equal(wp_rrdw_file_path(f[2]), "app.example.com/cpu.rrd");
    /* the same key gives the same handle */
    assert_ptr_equal(wp_rrdw_file_get(fx->w, "db01", "cpu", "cpu1", f3, 3, WP_DS_GAUGE, 10, &err),
                     f[1]);
    for (int r = 0; r < 20; r++) {
        for (int i = 0; i < 3; i++) {
            double v[3] = {val3(i, r, 0), val3(i, r, 1), val3(i, r, 2)};
            wp_rrdw_add(fx->w, f[i], (T0 + r * 10) * 1000, v, 3, 1);
        }
    }
    wp_rrdw_stats(fx->w, &st);
    assert_int_equal(st.rows_added, 60);
    assert_int_equal(st.pending_rows, 60);
    assert_int_equal(st.rows_written, 0);
    flush(fx);
    wp_rrdw_stats(fx->w, &st);
    assert_int_equal(st.rows_written, 60);
    assert_int_equal(st.values_written, 180);
    assert_int_equal(st.pending_rows, 0);
    assert_int_equal(st.files, 3);
    assert_int_equal(st.files_created, 3);
    assert_int_equal(st.update_calls, 3);
    assert_int_equal(st.errors, 0);

    for (int i = 0; i < 3; i++) {
        for (int k = 0; k < 3; k++) {
            fetch(fx, wp_rrdw_file_path(f[i]), f3[k], T0 - 10, T0 + 190, &s, 10);
            for (int r = 0; r < 20; r++) {
                assert_close(value_at(&s, T0 + r * 10), val3(i, r, k));
            }
        }
    }
    /* a DS that is not there */
    char path[512];
    snprintf(path, sizeof(path), "%s/db01/cpu-cpu0.rrd", fx->dir);
    assert_int_equal(wp_rrdq_fetch(path, "nice", T0, T0 + 100, 0, collect, &s, NULL), WP_ENOTFOUND);
    snprintf(path, sizeof(path), "%s/db01/nothere.rrd", fx->dir);
    assert_int_equal(wp_rrdq_fetch(path, "user", T0, T0 + 100, 0, collect, &s, NULL), -ENOENT);
    wclose(fx);
}

static void rrdw_fractional_ms_and_nan(void **state)
{
    struct fix *fx = *state;
    const char *const fields[] = {"a", "b"};
    int err = 0;
    struct series s;

    wopen(fx, 60000, 1000);
    struct wp_rrdw_file *f =
        wp_rrdw_file_get(fx->w, "h1", "frac", "", fields, 2, WP_DS_GAUGE, 1, &err);
    assert_non_null(f);
    double r0[2] = {10, 1};
    double r1[2] = {20, NAN};
    double r2[2] = {30, 3};
    wp_rrdw_add(fx->w, f, T0 * 1000 + 500, r0, 2, 1);
    wp_rrdw_add(fx->w, f, (T0 + 1) * 1000 + 500, r1, 2, 1);
    wp_rrdw_add(fx->w, f, (T0 + 2) * 1000, r2, 2, 1);
    flush(fx);

    /* the half seconds reached librrd: each PDP averages two halves */
    fetch(fx, "h1/frac.rrd", "a", T0 - 5, T0 + 5, &s, 1);
    assert_close(value_at(&s, T0), 10);
    assert_close(value_at(&s, T0 + 1), 15);
    assert_close(value_at(&s, T0 + 2), 25);
    assert_true(isnan(value_at(&s, T0 + 3)));
    /* NaN is written as unknown ('U') */
    struct wp_rrdw_file *g =
        wp_rrdw_file_get(fx->w, "h1", "nan", "", fields, 2, WP_DS_GAUGE, 1, &err);
    double n0[2] = {1, 1};
    double n1[2] = {2, NAN};
    double n2[2] = {3, 3};
    wp_rrdw_add(fx->w, g, T0 * 1000, n0, 2, 1);
    wp_rrdw_add(fx->w, g, (T0 + 1) * 1000, n1, 2, 1);
    wp_rrdw_add(fx->w, g, (T0 + 2) * 1000, n2, 2, 1);
    flush(fx);
    fetch(fx, "h1/nan.rrd", "b", T0 - 5, T0 + 5, &s, 1);
    assert_close(value_at(&s, T0), 1);
    assert_true(isnan(value_at(&s, T0 + 1)));
    assert_close(value_at(&s, T0 + 2), 3);
    fetch(fx, "h1/nan.rrd", "a", T0 - 5, T0 + 5, &s, 1);
    assert_close(value_at(&s, T0 + 1), 2);

    /* the skip filter: later rows only */
    s.n = 0;
    char path[512];
    snprintf(path, sizeof(path), "%s/h1/frac.rrd", fx->dir);
    assert_int_equal(wp_rrdq_fetch(path, "a", T0 - 5, T0 + 5, WP_RRDQ_SKIP_NAN, collect, &s, NULL),
                     0);
    assert_int_equal(s.n, 3);
    wclose(fx);
}

static void rrdw_row_after_a_gap_keeps_its_value(void **state)
{
    struct fix *fx = *state;
    const char *const fields[] = {"v"};
    int err = 0;
    struct series s;
    const int at[] = {0, 1, 2, 6, 7, 20};

    /* heartbeat 2 s: gaps of 4 and 13 s, as when an agent restarts */
    wopen(fx, 60000, 1000);
    struct wp_rrdw_file *f =
        wp_rrdw_file_get(fx->w, "g", "gap", "", fields, 1, WP_DS_GAUGE, 1, &err);
    for (int i = 0; i < 6; i++) {
        double v = 100 + at[i];
        wp_rrdw_add(fx->w, f, (T0 + at[i]) * 1000, &v, 1, 1);
    }
    flush(fx);
    fetch(fx, "g/gap.rrd", "v", T0 - 1, T0 + 21, &s, 1);
    for (int t = 0; t <= 20; t++) {
        int sampled = 0;
        for (int i = 0; i < 6; i++) {
            sampled |= at[i] == t;
        }
        if (sampled) {
            assert_close(value_at(&s, T0 + t), 100 + t);
        } else {
            assert_true(isnan(value_at(&s, T0 + t)));
        }
    }
    struct wp_rrdw_stats st;
    wp_rrdw_stats(fx->w, &st);
    assert_int_equal(st.rows_written, 6);
    assert_int_equal(st.update_calls, 1);
    wclose(fx);
}

static void add_rows(struct fix *fx, struct wp_rrdw_file *f, int from, int to, double plus,
                     uint64_t seg)
{
    for (int r = from; r < to; r++) {
        double v[3] = {val3(0, r, 0) + plus, val3(0, r, 1) + plus, val3(0, r, 2) + plus};
        wp_rrdw_add(fx->w, f, (T0 + r * 10) * 1000, v, 3, seg);
    }
}

static void rrdw_replay_is_skipped(void **state)
{
    struct fix *fx = *state;
    int err = 0;
    struct wp_rrdw_stats st;
    struct series s;

    wopen(fx, 60000, 1000);
    struct wp_rrdw_file *f = wp_rrdw_file_get(fx->w, "a1", "cpu", "", f3, 3, WP_DS_GAUGE, 10, &err);
    add_rows(fx, f, 0, 20, 0, 1);
    flush(fx);
    /* the same timestamps again (as a journal replay sends them), then new ones */
    add_rows(fx, f, 0, 20, 1000, 2);
    add_rows(fx, f, 20, 25, 0, 2);
    flush(fx);
    wp_rrdw_stats(fx->w, &st);
    assert_int_equal(st.rows_written, 25);
    assert_int_equal(st.rows_skipped, 20);
    assert_int_equal(st.errors, 0);
    wclose(fx);

    /* a new process learns the last update from the file */
    wopen(fx, 60000, 1000);
    f = wp_rrdw_file_get(fx->w, "a1", "cpu", "", f3, 3, WP_DS_GAUGE, 10, &err);
    add_rows(fx, f, 0, 25, 2000, 3);
    add_rows(fx, f, 25, 30, 0, 3);
    flush(fx);
    wp_rrdw_stats(fx->w, &st);
    assert_int_equal(st.rows_written, 5);
    assert_int_equal(st.rows_skipped, 25);
    assert_int_equal(st.files_created, 0);
    assert_int_equal(st.errors, 0);
    for (int k = 0; k < 3; k++) {
        fetch(fx, "a1/cpu.rrd", f3[k], T0 - 10, T0 + 290, &s, 10);
        for (int r = 0; r < 30; r++) {
            assert_close(value_at(&s, T0 + r * 10), val3(0, r, k));
        }
    }
    wclose(fx);
}

static int written_ge(struct fix *fx, uint64_t n)
{
    struct wp_rrdw_stats st;
    wp_rrdw_stats(fx->w, &st);
    return st.rows_written + st.rows_skipped >= n;
}

static int written_4(struct fix *fx)
{
    return written_ge(fx, 4);
}

static int written_8(struct fix *fx)
{
    return written_ge(fx, 8);
}

static int written_11(struct fix *fx)
{
    return written_ge(fx, 11);
}

static void rrdw_min_segment_advances(void **state)
{
    struct fix *fx = *state;
    int err = 0;
    struct wp_rrdw_file *f[3];
    const char *insts[] = {"a", "b", "c"};

    /* max_pending 4: a file with 4 rows goes to the writer at once */
    wopen(fx, 60000, 4);
    assert_int_equal(wp_rrdw_min_segment(fx->w), UINT64_MAX);
    for (int i = 0; i < 3; i++) {
        f[i] = wp_rrdw_file_get(fx->w, "s1", "g", insts[i], f3, 3, WP_DS_GAUGE, 10, &err);
        assert_non_null(f[i]);
    }
    add_rows(fx, f[1], 0, 3, 0, 6);
    add_rows(fx, f[2], 0, 3, 0, 7);
    add_rows(fx, f[0], 0, 3, 0, 5);
    assert_int_equal(wp_rrdw_min_segment(fx->w), 5);
    add_rows(fx, f[0], 3, 4, 0, 5);
    assert_true(run_until(fx, written_4, 10000));
    assert_int_equal(wp_rrdw_min_segment(fx->w), 6);
    add_rows(fx, f[1], 3, 4, 0, 8);
    assert_true(run_until(fx, written_8, 10000));
    assert_int_equal(wp_rrdw_min_segment(fx->w), 7);
    /* f[2] still has 3 rows of segment 7 */
    flush(fx);
    assert_int_equal(wp_rrdw_min_segment(fx->w), UINT64_MAX);
    wclose(fx);
    (void)written_11;
}

static int all_written(struct fix *fx)
{
    struct wp_rrdw_stats st;
    wp_rrdw_stats(fx->w, &st);
    return st.pending_rows == 0 && st.rows_written > 0;
}

static void rrdw_timer_flushes_without_being_asked(void **state)
{
    struct fix *fx = *state;
    int err = 0;
    struct wp_rrdw_stats st;

    wopen(fx, 200, 1000);
    struct wp_rrdw_file *f = wp_rrdw_file_get(fx->w, "t1", "cpu", "", f3, 3, WP_DS_GAUGE, 10, &err);
    add_rows(fx, f, 0, 5, 0, 1);
    assert_true(run_until(fx, all_written, 5000));
    wp_rrdw_stats(fx->w, &st);
    assert_int_equal(st.rows_written, 5);
    assert_int_equal(st.update_calls, 1);
    assert_int_equal(wp_rrdw_min_segment(fx->w), UINT64_MAX);
    wclose(fx);
}

static void name_is(const char *group, const char *inst, const char *want)
{
    char buf[256];
    assert_int_equal(wp_rrd_file_name(group, inst, buf, sizeof(buf)), 0);
    assert_string_equal(buf, want);
}

/* The name has the form group-<sanitised>-<8 hex>.rrd */
static void name_hashed(const char *group, const char *inst, const char *prefix, char *out)
{
    assert_int_equal(wp_rrd_file_name(group, inst, out, 256), 0);
    size_t p = strlen(prefix);
    size_t n = strlen(out);
    assert_true(strncmp(out, prefix, p) == 0);
    assert_int_equal(n, p + 1 + 8 + 4);
    assert_int_equal(out[p], '-');
    for (size_t i = p + 1; i < p + 9; i++) {
        assert_non_null(strchr("0123456789abcdef", out[i]));
    }
    assert_string_equal(out + p + 9, ".rrd");
}

static void rrd_file_names(void **state)
{
    char a[256], b[256], c[256];

    (void)state;
    name_is("cpu", "", "cpu.rrd");
    name_is("cpu", NULL, "cpu.rrd");
    name_is("df", "/", "df-root.rrd");
    name_is("df", "/u01", "df-u01.rrd");
    name_is("df", "/var/log", "df-var_log.rrd");
    name_is("if", "eth0.100", "if-eth0.100.rrd");
    name_is("disk", "sda-1", "disk-sda-1.rrd");
    /* a raw '_' next to a converted '/' could collide: hash */
    name_hashed("df", "/var_log/x", "df-var_log_x", a);
    name_hashed("df", "/var/log_x", "df-var_log_x", b);
    assert_string_not_equal(a, b);
    /* the examples in docs/STORAGE.md */
    name_is("line", "SIP/100 ext", "line-SIP_100_ext-df1c27b1.rrd");
    name_is("df", "/var_log/x", "df-var_log_x-6bcfa090.rrd");
    name_is("df", "/var/log_x", "df-var_log_x-9f6a094f.rrd");
    /* characters outside [A-Za-z0-9._-] */
    name_hashed("line", "SIP/100 ext", "line-SIP_100_ext", a);
    name_hashed("x", "a:b", "x-a_b", b);
    name_hashed("x", "a;b", "x-a_b", c);
    assert_string_not_equal(b, c);
    /* no path can come out of an instance */
    name_is("x", "../../etc", "x-.._.._etc.rrd");
    name_hashed("x", "a\\..\n", "x-a_.._", a);
    assert_null(strchr(a, '/'));
    /* long instances are cut and hashed */
    char lng[300];
    memset(lng, 'q', sizeof(lng) - 1);
    lng[sizeof(lng) - 1] = '\0';
    assert_int_equal(wp_rrd_file_name("g", lng, a, sizeof(a)), 0);
    assert_true(strlen(a) < 255);
    lng[298] = 'r';
    assert_int_equal(wp_rrd_file_name("g", lng, b, sizeof(b)), 0);
    assert_string_not_equal(a, b);
    /* groups are plain names */
    assert_int_equal(wp_rrd_file_name("a/b", "", a, sizeof(a)), -EINVAL);
    assert_int_equal(wp_rrd_file_name("..", "", a, sizeof(a)), -EINVAL);
    assert_int_equal(wp_rrd_file_name(".x", "", a, sizeof(a)), -EINVAL);
    assert_int_equal(wp_rrd_file_name("a-b", "", a, sizeof(a)), -EINVAL);
    assert_int_equal(wp_rrd_file_name("", "x", a, sizeof(a)), -EINVAL);
    assert_int_equal(wp_rrd_file_name("cpu", "x", a, 6), WP_ETOOBIG);
    /* paths */
    assert_int_equal(wp_rrdq_path("/r", "db01", "df", "/u01", a, sizeof(a)), 0);
    assert_string_equal(a, "/r/db01/df-u01.rrd");
    assert_int_equal(wp_rrdq_path("/r", "../x", "df", "", a, sizeof(a)), -EINVAL);
    assert_int_equal(wp_rrdq_path("/r", "a/b", "df", "", a, sizeof(a)), -EINVAL);
    assert_int_equal(wp_rrdq_path("/r", "", "df", "", a, sizeof(a)), -EINVAL);
}

static void rrdw_rejects_bad_names(void **state)
{
    struct fix *fx = *state;
    int err = 0;
    const char *const bad1[] = {"ok", "bad-name"};
    const char *const bad2[] = {"abcdefghijklmnopqrst"}; /* 20 chars */
    const char *const bad3[] = {""};
    const char *const dup[] = {"a", "a"};
    const char *const good[] = {"abcdefghijklmnopqrs"}; /* 19 chars */

    wopen(fx, 60000, 100);
    assert_null(wp_rrdw_file_get(fx->w, "h", "g", "", bad1, 2, WP_DS_GAUGE, 10, &err));
    assert_int_equal(err, -EINVAL);
    assert_null(wp_rrdw_file_get(fx->w, "h", "g", "", bad2, 1, WP_DS_GAUGE, 10, &err));
    assert_int_equal(err, -EINVAL);
    assert_null(wp_rrdw_file_get(fx->w, "h", "g", "", bad3, 1, WP_DS_GAUGE, 10, &err));
    assert_null(wp_rrdw_file_get(fx->w, "h", "g", "", dup, 2, WP_DS_GAUGE, 10, &err));
    assert_null(wp_rrdw_file_get(fx->w, "h", "g", "", good, 0, WP_DS_GAUGE, 10, &err));
    assert_null(wp_rrdw_file_get(fx->w, "h", "g", "", good, 1, 99, 10, &err));
    assert_null(wp_rrdw_file_get(fx->w, "h", "g", "", good, 1, WP_DS_GAUGE, 0, &err));
    assert_null(wp_rrdw_file_get(fx->w, "..", "g", "", good, 1, WP_DS_GAUGE, 10, &err));
    assert_int_equal(err, -EINVAL);
    assert_null(wp_rrdw_file_get(fx->w, "a/b", "g", "", good, 1, WP_DS_GAUGE, 10, &err));
    assert_null(wp_rrdw_file_get(fx->w, "h", "g/x", "", good, 1, WP_DS_GAUGE, 10, &err));
    assert_non_null(wp_rrdw_file_get(fx->w, "h", "g", "", good, 1, WP_DS_GAUGE, 10, &err));
    assert_int_equal(err, 0);
    wclose(fx);
}

static void rrdw_default_layout(void **state)
{
    struct fix *fx = *state;
    int err = 0;
    const char *const c1[] = {"rx", "tx"};
    struct wp_rrdq_info *in = NULL;
    char path[512];

    wopen(fx, 60000, 100);
    struct wp_rrdw_file *f =
        wp_rrdw_file_get(fx->w, "h", "if", "eth0", c1, 2, WP_DS_DERIVE, 10, &err);
    struct wp_rrdw_file *g = wp_rrdw_file_get(fx->w, "h", "load", "", c1, 2, WP_DS_GAUGE, 60, &err);
    double v[2] = {1, 2};
    wp_rrdw_add(fx->w, f, T0 * 1000, v, 2, 1);
    wp_rrdw_add(fx->w, g, T0 * 1000, v, 2, 1);
    flush(fx);

    snprintf(path, sizeof(path), "%s/h/if-eth0.rrd", fx->dir);
    assert_int_equal(wp_rrdq_info(path, &in), 0);
    assert_int_equal(in->step_s, 10);
    assert_int_equal(in->last_update_s, T0);
    assert_int_equal(in->nds, 2);
    assert_string_equal(in->ds_names[0], "rx");
    assert_string_equal(in->ds_names[1], "tx");
    assert_string_equal(in->ds_types[0], "DERIVE");
    static const struct wp_rrdq_rra want10[] = {
        {"AVERAGE", 1, 1080}, {"AVERAGE", 6, 1500},   {"MAX", 6, 1500},   {"AVERAGE", 30, 2304},
        {"MAX", 30, 2304},    {"AVERAGE", 360, 9600}, {"MIN", 360, 9600}, {"MAX", 360, 9600},
    };
    assert_int_equal(in->nrras, 8);
    for (uint32_t i = 0; i < 8; i++) {
        assert_string_equal(in->rras[i].cf, want10[i].cf);
        assert_int_equal(in->rras[i].pdp_per_row, want10[i].pdp_per_row);
        assert_int_equal(in->rras[i].rows, want10[i].rows);
    }
    wp_rrdq_info_free(in);

    /* step 60: the step archive and the 1-minute one are the same resolution: one archive */
    snprintf(path, sizeof(path), "%s/h/load.rrd", fx->dir);
    assert_int_equal(wp_rrdq_info(path, &in), 0);
    static const struct wp_rrdq_rra want60[] = {
        {"AVERAGE", 1, 1500},  {"MAX", 1, 1500},  {"AVERAGE", 5, 2304}, {"MAX", 5, 2304},
        {"AVERAGE", 60, 9600}, {"MIN", 60, 9600}, {"MAX", 60, 9600},
    };
    assert_int_equal(in->nrras, 7);
    for (uint32_t i = 0; i < 7; i++) {
        assert_string_equal(in->rras[i].cf, want60[i].cf);
        assert_int_equal(in->rras[i].pdp_per_row, want60[i].pdp_per_row);
        assert_int_equal(in->rras[i].rows, want60[i].rows);
    }
    wp_rrdq_info_free(in);
    wclose(fx);
}

static void rrdw_layout_change_moves_old_file_aside(void **state)
{
    struct fix *fx = *state;
    int err = 0;
    const char *const c2[] = {"user", "system"};
    struct wp_rrdq_info *in = NULL;
    char path[512];
    glob_t gl;

    wopen(fx, 60000, 100);
    struct wp_rrdw_file *f = wp_rrdw_file_get(fx->w, "h", "cpu", "", f3, 3, WP_DS_GAUGE, 10, &err);
    add_rows(fx, f, 0, 3, 0, 1);
    struct wp_rrdw_file *g = wp_rrdw_file_get(fx->w, "h", "cpu", "", c2, 2, WP_DS_GAUGE, 10, &err);
    assert_non_null(g);
    assert_ptr_not_equal(f, g);
    double v[2] = {7, 8};
    wp_rrdw_add(fx->w, g, (T0 + 100) * 1000, v, 2, 1);
    flush(fx);
    struct wp_rrdw_stats st;
    wp_rrdw_stats(fx->w, &st);
    assert_int_equal(st.rows_written, 4);
    assert_int_equal(st.files_created, 2);
    assert_int_equal(st.files, 1);

    snprintf(path, sizeof(path), "%s/h/cpu.rrd", fx->dir);
    assert_int_equal(wp_rrdq_info(path, &in), 0);
    assert_int_equal(in->nds, 2);
    wp_rrdq_info_free(in);
    snprintf(path, sizeof(path), "%s/h/cpu.rrd.old-*", fx->dir);
    assert_int_equal(glob(path, 0, NULL, &gl), 0);
    assert_int_equal(gl.gl_pathc, 1);
    assert_int_equal(wp_rrdq_info(gl.gl_pathv[0], &in), 0);
    assert_int_equal(in->nds, 3);
    wp_rrdq_info_free(in);
    globfree(&gl);
    wclose(fx);
}

static void rrdw_bad_file_is_dropped_after_retries(void **state)
{
    struct fix *fx = *state;
    int err = 0;
    struct wp_rrdw_stats st;
    char path[512];

    wopen(fx, 60000, 1000);
    struct wp_rrdw_file *bad =
        wp_rrdw_file_get(fx->w, "h", "bad", "", f3, 3, WP_DS_GAUGE, 10, &err);
    struct wp_rrdw_file *good =
        wp_rrdw_file_get(fx->w, "h", "good", "", f3, 3, WP_DS_GAUGE, 10, &err);
    /* not an RRD file */
    snprintf(path, sizeof(path), "%s/h", fx->dir);
    assert_int_equal(mkdir(path, 0750), 0);
    snprintf(path, sizeof(path), "%s/h/bad.rrd", fx->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("this is not an RRD file, but it is long enough to be read as a header .....\n", fp);
    fclose(fp);

    add_rows(fx, bad, 0, 5, 0, 3);
    for (int round = 1; round <= 3; round++) {
        add_rows(fx, good, round * 2, round * 2 + 2, 0, 4);
        flush(fx);
        wp_rrdw_stats(fx->w, &st);
        assert_int_equal(st.errors, round);
        assert_int_equal(st.rows_written, (uint64_t)round * 2);
        if (round < 3) {
            /* the bad file's rows are kept for a retry: segment 3 stays pinned */
            assert_int_equal(wp_rrdw_min_segment(fx->w), 3);
            assert_int_equal(st.rows_dropped, 0);
        }
    }
    assert_int_equal(st.rows_dropped, 5);
    assert_int_equal(st.pending_rows, 0);
    assert_int_equal(wp_rrdw_min_segment(fx->w), UINT64_MAX);
    wclose(fx);
}

static void rrdw_batches_many_rows_per_call(void **state)
{
    struct fix *fx = *state;
    int err = 0;
    const int nfiles = 200, nrows = 60;
    struct wp_rrdw_file **f = wp_xcalloc((size_t)nfiles, sizeof(*f));
    struct wp_rrdw_stats st;
    struct series s;
    char inst[32];

    wopen(fx, 60000, 1000);
    for (int i = 0; i < nfiles; i++) {
        snprintf(inst, sizeof(inst), "i%d", i);
        f[i] = wp_rrdw_file_get(fx->w, "bulk", "cpu", inst, f3, 3, WP_DS_GAUGE, 1, &err);
        assert_non_null(f[i]);
    }
    for (int r = 0; r < nrows; r++) {
        for (int i = 0; i < nfiles; i++) {
            double v[3] = {val3(i, r, 0), val3(i, r, 1), val3(i, r, 2)};
            wp_rrdw_add(fx->w, f[i], (T0 + r) * 1000, v, 3, 1 + (uint64_t)r / 20);
        }
    }
    assert_int_equal(wp_rrdw_min_segment(fx->w), 1);
    flush(fx);
    wp_rrdw_stats(fx->w, &st);
    print_message("      %d files x %d rows: %" PRIu64 " rrd_update calls\n", nfiles, nrows,
                  st.update_calls);
    assert_int_equal(st.rows_written, (uint64_t)nfiles * nrows);
    assert_int_equal(st.files_created, (uint64_t)nfiles);
    assert_true(st.update_calls <= (uint64_t)nfiles);
    assert_int_equal(wp_rrdw_min_segment(fx->w), UINT64_MAX);
    /* spot check one file */
    snprintf(inst, sizeof(inst), "bulk/cpu-i%d.rrd", 123);
    fetch(fx, inst, "system", T0 - 2, T0 + nrows, &s, 1);
    for (int r = 0; r < nrows; r++) {
        assert_close(value_at(&s, T0 + r), val3(123, r, 1));
    }
    free(f);
    wclose(fx);
}

static void rrdw_close_flushes(void **state)
{
    struct fix *fx = *state;
    int err = 0;
    struct series s;

    wopen(fx, 60000, 1000);
    struct wp_rrdw_file *f = wp_rrdw_file_get(fx->w, "c", "cpu", "", f3, 3, WP_DS_GAUGE, 10, &err);
    add_rows(fx, f, 0, 7, 0, 1);
    wclose(fx);
    fetch(fx, "c/cpu.rrd", "user", T0 - 10, T0 + 60, &s, 10);
    for (int r = 0; r < 7; r++) {
        assert_close(value_at(&s, T0 + r * 10), val3(0, r, 0));
    }
}

static void rrdw_values_of_every_magnitude(void **state)
{
    struct fix *fx = *state;
    const char *const fields[] = {"v"};
    int err = 0;
    const int n = 400;
    double *want = wp_xcalloc((size_t)n, sizeof(*want));
    struct series s;
    uint64_t x = 88172645463325252ull;

    wopen(fx, 60000, 1000);
    struct wp_rrdw_file *f =
        wp_rrdw_file_get(fx->w, "m", "mag", "", fields, 1, WP_DS_GAUGE, 1, &err);
    for (int i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double mant = (double)(x >> 11) / 9007199254740992.0; /* [0, 1) */
        double v = mant * pow(10, (i % 26) - 9);              /* 1e-9 .. 1e16 */
        if (i % 3 == 1) {
            v = -v;
        }
        if (i % 50 == 7) {
            v = (double)(int64_t)(v * 1000);
        }
        want[i] = v;
        wp_rrdw_add(fx->w, f, (T0 + i) * 1000, &v, 1, 1);
    }
    flush(fx);
    fetch(fx, "m/mag.rrd", "v", T0 - 1, T0 + n - 1, &s, 1);
    for (int i = 0; i < n; i++) {
        double got = value_at(&s, T0 + i);
        /* 17 significant digits are written; librrd's parser adds a few 1e-16 */
        if (!(fabs(got - want[i]) <= 1e-15 * fabs(want[i]))) {
            fail_msg("row %d: got %.17g want %.17g", i, got, want[i]);
        }
    }
    free(want);
    wclose(fx);
}

struct closer {
    struct fix *fx;
    int called;
};

static void close_from_cb(void *arg)
{
    struct closer *c = arg;
    /* as the collector's shutdown does: the last flush's callback closes the writer */
    c->called++;
    wp_rrdw_close(c->fx->w);
    c->fx->w = NULL;
}

static void rrdw_close_inside_flush_callback(void **state)
{
    struct fix *fx = *state;
    int err = 0;
    struct series s;
    struct closer c = {fx, 0};

    wopen(fx, 60000, 1000);
    struct wp_rrdw_file *f = wp_rrdw_file_get(fx->w, "c", "cpu", "", f3, 3, WP_DS_GAUGE, 10, &err);
    add_rows(fx, f, 0, 4, 0, 1);
    wp_rrdw_flush_all(fx->w, close_from_cb, &c);
    add_rows(fx, f, 4, 7, 0, 1); /* after the flush was asked: close writes them */
    for (int i = 0; i < 1000 && c.called == 0; i++) {
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
    assert_int_equal(c.called, 1);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    fetch(fx, "c/cpu.rrd", "user", T0 - 10, T0 + 60, &s, 10);
    for (int r = 0; r < 7; r++) {
        assert_close(value_at(&s, T0 + r * 10), val3(0, r, 0));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(rrdw_writes_exact_values, setup, teardown),
        cmocka_unit_test_setup_teardown(rrdw_fractional_ms_and_nan, setup, teardown),
        cmocka_unit_test_setup_teardown(rrdw_replay_is_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(rrdw_row_after_a_gap_keeps_its_value, setup, teardown),
        cmocka_unit_test_setup_teardown(rrdw_min_segment_advances, setup, teardown),
        cmocka_unit_test_setup_teardown(rrdw_timer_flushes_without_being_asked, setup, teardown),
        cmocka_unit_test(rrd_file_names),
        cmocka_unit_test_setup_teardown(rrdw_rejects_bad_names, setup, teardown),
        cmocka_unit_test_setup_teardown(rrdw_default_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(rrdw_layout_change_moves_old_file_aside, setup, teardown),
        cmocka_unit_test_setup_teardown(rrdw_bad_file_is_dropped_after_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(rrdw_batches_many_rows_per_call, setup, teardown),
        cmocka_unit_test_setup_teardown(rrdw_values_of_every_magnitude, setup, teardown),
        cmocka_unit_test_setup_teardown(rrdw_close_flushes, setup, teardown),
        cmocka_unit_test_setup_teardown(rrdw_close_inside_flush_callback, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
