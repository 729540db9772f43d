/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for YAML configuration: option types, positions in messages, probes, both daemons. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent_conf.h"
#include "coll_conf.h"
#include "probe.h"
#include "rrdw.h"
#include "wp/clock.h"
#include "wp/conf.h"
#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"

/* ---- a table with every option type ---- */

struct sample {
    char *s;
    int64_t i;
    int b;
    int64_t d;
    uint64_t z;
    int e;
    struct wp_strlist l;
    struct wp_strlist m;
    struct {
        char *host;
        int64_t port;
    } sec;
    char *c;
};

static const char *const levels[] = {"error", "warn", "info", "debug", NULL};

static int custom_upper(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                        const void *arg, struct wp_conf_err *err)
{
    const char *s = wp_conf_scalar(node);
    char **out = field;

    (void)arg;
    if (s == NULL) {
        return wp_conf_errorf(doc, node, err, "c: expected a scalar");
    }
    free(*out);
    *out = wp_xstrdup(s);
    for (char *p = *out; *p != '\0'; p++) {
        if (*p >= 'a' && *p <= 'z') {
            *p = (char)(*p - 'a' + 'A');
        }
    }
    return 0;
}

static void custom_free(void *field, const void *arg)
{
    char **p = field;

    (void)arg;
    free(*p);
    *p = NULL;
}

#define SSEC(f) (offsetof(struct sample, sec.f) - offsetof(struct sample, sec))

static const struct wp_opt sec_opts[] = {
    {.name = "host", .type = WP_OPT_STR, .offset = SSEC(host)},
    {.name = "port",
     .type = WP_OPT_INT,
     .def = "7443",
     .offset = SSEC(port),
     .min = 0,
     .max = 65535},
    WP_OPT_TABLE_END,
};

static const struct wp_opt sample_opts[] = {
    {.name = "s", .type = WP_OPT_STR, .def = "dflt", .offset = offsetof(struct sample, s)},
    {.name = "i",
     .type = WP_OPT_INT,
     .def = "5",
     .offset = offsetof(struct sample, i),
     .min = 1,
     .max = 100},
    {.name = "b", .type = WP_OPT_BOOL, .def = "true", .offset = offsetof(struct sample, b)},
    {.name = "d",
     .type = WP_OPT_DURATION,
     .def = "10s",
     .offset = offsetof(struct sample, d),
     .min = 1000,
     .max = 3600000},
    {.name = "z",
     .type = WP_OPT_SIZE,
     .def = "4MiB",
     .offset = offsetof(struct sample, z),
     .min = 64 << 10,
     .max = 64 << 20},
    {.name = "e",
     .type = WP_OPT_ENUM,
     .def = "info",
     .offset = offsetof(struct sample, e),
     .enum_names = levels},
    {.name = "l", .type = WP_OPT_STRLIST, .offset = offsetof(struct sample, l)},
    {.name = "m", .type = WP_OPT_STRMAP, .offset = offsetof(struct sample, m)},
    {.name = "sec",
     .type = WP_OPT_SECTION,
     .offset = offsetof(struct sample, sec),
     .sub = sec_opts},
    {.name = "c",
     .type = WP_OPT_CUSTOM,
     .offset = offsetof(struct sample, c),
     .custom = custom_upper,
     .custom_free = custom_free},
    WP_OPT_TABLE_END,
};

/* Required keys, one of them inside a section. */
struct req {
    char *name;
    struct {
        char *ca;
    } tls;
};

static const struct wp_opt req_tls_opts[] = {
    {.name = "ca", .type = WP_OPT_STR, .offset = 0, .required = 1},
    WP_OPT_TABLE_END,
};

static const struct wp_opt req_opts[] = {
    {.name = "name", .type = WP_OPT_STR, .offset = offsetof(struct req, name)},
    {.name = "tls",
     .type = WP_OPT_SECTION,
     .offset = offsetof(struct req, tls),
     .sub = req_tls_opts},
    WP_OPT_TABLE_END,
};

/* Parse text as t.yaml and apply opts to base; err holds the message on failure. */
static int apply(const char *text, const struct wp_opt *opts, void *base, struct wp_conf_err *err)
{
    struct wp_conf_doc *doc = NULL;
    int rc = wp_conf_parse("t.yaml", text, strlen(text), err, &doc);

    if (rc < 0) {
        return rc;
    }
    rc = wp_opts_apply(doc, wp_conf_root(doc), opts, base, "", err);
    wp_conf_free(doc);
    return rc;
}

/* Apply text to a fresh sample and expect exactly msg; frees what was decoded. */
static void expect_sample_error(const char *text, const char *msg)
{
    struct sample s;
    struct wp_conf_err err;

    memset(&s, 0, sizeof(s));
    memset(&err, 0, sizeof(err));
    assert_int_equal(apply(text, sample_opts, &s, &err), WP_ECONFIG);
    assert_string_equal(err.msg, msg);
    wp_opts_free(sample_opts, &s);
}

/* Parsing alone must fail with msg. */
static void expect_parse_error(const char *text, const char *msg)
{
    struct wp_conf_doc *doc = NULL;
    struct wp_conf_err err;

    memset(&err, 0, sizeof(err));
    assert_int_equal(wp_conf_parse("t.yaml", text, strlen(text), &err, &doc), WP_ECONFIG);
    assert_null(doc);
    assert_string_equal(err.msg, msg);
}

/* ---- scalar parsers ---- */

static void parse_durations(void **state)
{
    int64_t v = -1;

    (void)state;
    assert_int_equal(wp_parse_duration_ms("250ms", &v), 0);
    assert_int_equal(v, 250);
    assert_int_equal(wp_parse_duration_ms("10s", &v), 0);
    assert_int_equal(v, 10000);
    assert_int_equal(wp_parse_duration_ms("5m", &v), 0);
    assert_int_equal(v, 300000);
    assert_int_equal(wp_parse_duration_ms("2h", &v), 0);
    assert_int_equal(v, 7200000);
    assert_int_equal(wp_parse_duration_ms("7d", &v), 0);
    assert_int_equal(v, 604800000);
    assert_int_equal(wp_parse_duration_ms("30", &v), 0);
    assert_int_equal(v, 30000);
    assert_int_equal(wp_parse_duration_ms("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(wp_parse_duration_ms("1h30m", &v), 0);
    assert_int_equal(v, 5400000);
    assert_int_equal(wp_parse_duration_ms("1m500ms", &v), 0);
    assert_int_equal(v, 60500);

    const char *bad[] = {"",
                         "s",
                         "10x",
                         "-1s",
                         "1.5s",
                         "10 s",
                         "ms10",
                         "99999999999999999999",
                         "9999999999999999d",
                         "10s5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = -7;
        assert_int_equal(wp_parse_duration_ms(bad[i], &v), WP_ECONFIG);
        assert_int_equal(v, -7);
    }
}

static void parse_sizes(void **state)
{
    uint64_t v = 0;

    (void)state;
    assert_int_equal(wp_parse_size("512", &v), 0);
    assert_int_equal(v, 512);
    assert_int_equal(wp_parse_size("64KiB", &v), 0);
    assert_int_equal(v, 65536);
    assert_int_equal(wp_parse_size("4MiB", &v), 0);
    assert_int_equal(v, 4u << 20);
    assert_int_equal(wp_parse_size("1GiB", &v), 0);
    assert_int_equal(v, 1u << 30);
    assert_int_equal(wp_parse_size("1KB", &v), 0);
    assert_int_equal(v, 1000);
    assert_int_equal(wp_parse_size("1MB", &v), 0);
    assert_int_equal(v, 1000000);
    assert_int_equal(wp_parse_size("100B", &v), 0);
    assert_int_equal(v, 100);

    const char *bad[] = {
        "", "lots", "MiB", "1.5MiB", "-1", "1 MiB", "4Mi", "20000000TiB", "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = 7;
        assert_int_equal(wp_parse_size(bad[i], &v), WP_ECONFIG);
        assert_int_equal(v, 7);
    }
}

static void parse_bools(void **state)
{
    const char *yes[] = {"true", "yes", "on", "True", "ON"};
    const char *no[] = {"false", "no", "off", "FALSE"};
    int v = -1;

    (void)state;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        assert_int_equal(wp_parse_bool(yes[i], &v), 0);
        assert_int_equal(v, 1);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        assert_int_equal(wp_parse_bool(no[i], &v), 0);
        assert_int_equal(v, 0);
    }
    assert_int_equal(wp_parse_bool("1", &v), WP_ECONFIG);
    assert_int_equal(wp_parse_bool("maybe", &v), WP_ECONFIG);
}

static void parse_hhmm(void **state)
{
    static const char *const bad[] = {"",      "7",      "7:5",    "07:60", "7:65",  "25:00",
                                      "24:01", "123:00", "07:00 ", "a7:00", "07.00", "-1:00"};
    int v = -1;

    (void)state;
    assert_int_equal(wp_parse_hhmm("00:00", 0, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(wp_parse_hhmm("7:05", 0, &v), 0);
    assert_int_equal(v, 7 * 60 + 5);
    assert_int_equal(wp_parse_hhmm("23:59", 0, &v), 0);
    assert_int_equal(v, 23 * 60 + 59);
    assert_int_equal(wp_parse_hhmm("24:00", 0, &v), WP_ECONFIG);
    assert_int_equal(wp_parse_hhmm("24:00", 1, &v), 0);
    assert_int_equal(v, 24 * 60);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = -1;
        assert_int_equal(wp_parse_hhmm(bad[i], 1, &v), WP_ECONFIG);
        assert_int_equal(v, -1); /* untouched on error */
    }
    assert_int_equal(wp_parse_hhmm(NULL, 1, &v), WP_ECONFIG);
}

static void civil_dates(void **state)
{
    (void)state;
    assert_int_equal(wp_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(wp_days_from_civil(1969, 12, 31), -1);
    assert_int_equal(wp_days_from_civil(2000, 3, 1), 11017);
    assert_int_equal(wp_days_from_civil(2024, 2, 29) + 1, wp_days_from_civil(2024, 3, 1));
    assert_int_equal(wp_days_from_civil(2026, 10, 1) * 86400LL, 1790812800LL);
    assert_true(wp_civil_valid(2024, 2, 29));
    assert_true(wp_civil_valid(2000, 2, 29));
    assert_false(wp_civil_valid(1900, 2, 29));
    assert_false(wp_civil_valid(2026, 2, 29));
    assert_true(wp_civil_valid(2026, 12, 31));
    assert_false(wp_civil_valid(2026, 4, 31));
    assert_false(wp_civil_valid(2026, 13, 1));
    assert_false(wp_civil_valid(2026, 0, 1));
    assert_false(wp_civil_valid(2026, 1, 0));
}

static void split_hostport(void **state)
{
    char *h = NULL;
    char *p = NULL;

    (void)state;
    assert_int_equal(wp_conf_split_hostport("c1.example:7443", 1, &h, &p), 0);
    assert_string_equal(h, "c1.example");
    assert_string_equal(p, "7443");
    free(h);
    free(p);
    assert_int_equal(wp_conf_split_hostport("[::1]:0", 0, &h, &p), 0);
    assert_string_equal(h, "::1");
    assert_string_equal(p, "0");
    free(h);
    free(p);

    const char *bad[] = {"c1",   "c1:",  ":7443",    "::1:7443", "[::1]7443", "[::1]:",
                         "[]:1", "c1:0", "c1:65536", "c1:12a",   "c1:-1",     "c1:007443"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        h = p = NULL;
        assert_int_equal(wp_conf_split_hostport(bad[i], 1, &h, &p), WP_ECONFIG);
        assert_null(h);
        assert_null(p);
    }
}

static void resolve_paths(void **state)
{
    char *p = NULL;
    char cwd[PATH_MAX];
    char want[PATH_MAX + 16];

    (void)state;
    p = wp_xstrdup("x/y");
    wp_conf_resolve_path("/etc/agent.yaml", &p);
    assert_string_equal(p, "/etc/x/y");
    free(p);
    p = wp_xstrdup("tls");
    wp_conf_resolve_path("/agent.yaml", &p);
    assert_string_equal(p, "/tls");
    free(p);
    p = wp_xstrdup("tls");
    wp_conf_resolve_path("/no/such/dir/agent.yaml", &p); /* not resolvable: kept as written */
    assert_string_equal(p, "/no/such/dir/tls");
    free(p);
    /* a bare file name is in the working directory */
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    p = wp_xstrdup("state");
    wp_conf_resolve_path("agent.yaml", &p);
    snprintf(want, sizeof(want), "%s/state", strcmp(cwd, "/") == 0 ? "" : cwd);
    assert_string_equal(p, want);
    free(p);
    p = wp_xstrdup("/abs");
    wp_conf_resolve_path("/etc/agent.yaml", &p);
    assert_string_equal(p, "/abs");
    free(p);
    p = NULL;
    wp_conf_resolve_path("/etc/agent.yaml", &p);
    assert_null(p);
}

/* ---- option tables ---- */

static void opts_all_types_good(void **state)
{
    const char *text = "s: hello\n"
                       "i: 42\n"
                       "b: off\n"
                       "d: 1m30s\n"
                       "z: 2MiB\n"
                       "e: DEBUG\n"
                       "l: [a, b, c]\n"
                       "m: {k1: v1, k2: v2}\n"
                       "sec: {host: h, port: 0}\n"
                       "c: xyz\n";
    struct sample s;
    struct wp_conf_err err;

    (void)state;
    memset(&s, 0xa5, sizeof(s)); /* wp_opts_apply must not read what it did not write */
    s.c = NULL;                  /* custom fields are the caller's to zero */
    if (apply(text, sample_opts, &s, &err) != 0) {
        fail_msg("%s", err.msg);
    }
    assert_string_equal(s.s, "hello");
    assert_int_equal(s.i, 42);
    assert_int_equal(s.b, 0);
    assert_int_equal(s.d, 90000);
    assert_int_equal(s.z, 2u << 20);
    assert_int_equal(s.e, WP_LOG_DEBUG);
    assert_int_equal(s.l.n, 3);
    assert_string_equal(s.l.v[0], "a");
    assert_string_equal(s.l.v[2], "c");
    assert_null(s.l.v[3]);
    assert_int_equal(s.m.n, 4);
    assert_string_equal(s.m.v[0], "k1");
    assert_string_equal(s.m.v[1], "v1");
    assert_string_equal(s.m.v[2], "k2");
    assert_string_equal(s.m.v[3], "v2");
    assert_null(s.m.v[4]);
    assert_string_equal(s.sec.host, "h");
    assert_int_equal(s.sec.port, 0);
    assert_string_equal(s.c, "XYZ");
    wp_opts_free(sample_opts, &s);
    assert_null(s.s);
    assert_null(s.l.v);
    assert_null(s.c);
    wp_opts_free(sample_opts, &s); /* twice is harmless */
}

static void opts_defaults(void **state)
{
    struct sample s;
    struct wp_conf_err err;
    struct wp_conf_doc *doc = NULL;

    (void)state;
    memset(&s, 0, sizeof(s));
    assert_int_equal(apply("l: one\n", sample_opts, &s, &err), 0);
    assert_string_equal(s.s, "dflt");
    assert_int_equal(s.i, 5);
    assert_int_equal(s.b, 1);
    assert_int_equal(s.d, 10000);
    assert_int_equal(s.z, 4u << 20);
    assert_int_equal(s.e, WP_LOG_INFO);
    assert_int_equal(s.l.n, 1); /* a single scalar is a one-item list */
    assert_string_equal(s.l.v[0], "one");
    assert_null(s.l.v[1]);
    assert_int_equal(s.m.n, 0);
    assert_null(s.sec.host);
    assert_int_equal(s.sec.port, 7443); /* an absent section still gets its defaults */
    assert_null(s.c);
    wp_opts_free(sample_opts, &s);

    /* an empty document and a NULL node mean all defaults */
    assert_int_equal(wp_conf_parse("t.yaml", "", 0, &err, &doc), 0);
    assert_null(wp_conf_root(doc));
    memset(&s, 0, sizeof(s));
    assert_int_equal(wp_opts_apply(doc, NULL, sample_opts, &s, "", &err), 0);
    assert_int_equal(s.i, 5);
    assert_int_equal(s.sec.port, 7443);
    wp_opts_free(sample_opts, &s);
    wp_conf_free(doc);

    /* "sec:" with nothing after it is an empty section */
    memset(&s, 0, sizeof(s));
    assert_int_equal(apply("sec:\ns: x\n", sample_opts, &s, &err), 0);
    assert_int_equal(s.sec.port, 7443);
    wp_opts_free(sample_opts, &s);
}

static void opts_type_errors(void **state)
{
    (void)state;
    expect_sample_error("i: abc\n", "t.yaml:1:4: i: expected an integer, got \"abc\"");
    expect_sample_error("i: 12x\n", "t.yaml:1:4: i: expected an integer, got \"12x\"");
    expect_sample_error("b: maybe\n", "t.yaml:1:4: b: expected true or false, got \"maybe\"");
    expect_sample_error("d: fast\n", "t.yaml:1:4: d: expected a duration like 10s, got \"fast\"");
    expect_sample_error("z: lots\n", "t.yaml:1:4: z: expected a size like 256MiB, got \"lots\"");
    expect_sample_error("e: loud\n",
                        "t.yaml:1:4: e: expected one of: error, warn, info, debug; got \"loud\"");
    expect_sample_error("s: [a, b]\n", "t.yaml:1:4: s: expected a string, got a sequence");
    expect_sample_error("s: {a: b}\n", "t.yaml:1:4: s: expected a string, got a mapping");
    expect_sample_error("i: [1]\n", "t.yaml:1:4: i: expected an integer, got a sequence");
    expect_sample_error("e: [x]\n",
                        "t.yaml:1:4: e: expected one of: error, warn, info, debug; got a sequence");
    expect_sample_error("s: x\ni:\n", "t.yaml:2:3: i: expected an integer, got nothing");
    expect_sample_error("l: [a, {x: 1}]\n", "t.yaml:1:8: l[1]: expected a string, got a mapping");
    expect_sample_error("l: {a: b}\n", "t.yaml:1:4: l: expected a list of strings, got a mapping");
    expect_sample_error("m: x\n", "t.yaml:1:4: m: expected a mapping, got \"x\"");
    expect_sample_error("m: {a: [1]}\n", "t.yaml:1:8: m.a: expected a string, got a sequence");
    expect_sample_error("sec: 5\n", "t.yaml:1:6: sec: expected a mapping, got \"5\"");
    expect_sample_error("c: [1]\n", "t.yaml:1:4: c: expected a scalar");
    /* values are quoted safely and shortened */
    expect_sample_error("z: \"a\\tb\\\"c\"\n",
                        "t.yaml:1:4: z: expected a size like 256MiB, got \"a\\x09b\\\"c\"");
    expect_sample_error("z: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
                        "t.yaml:1:4: z: expected a size like 256MiB, got "
                        "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\"");
}

static void opts_range_errors(void **state)
{
    (void)state;
    expect_sample_error("i: 0\n", "t.yaml:1:4: i: must be between 1 and 100, got 0");
    expect_sample_error("i: 101\n", "t.yaml:1:4: i: must be between 1 and 100, got 101");
    expect_sample_error("d: 500ms\n", "t.yaml:1:4: d: must be between 1s and 1h, got 500ms");
    expect_sample_error("d: 2h\n", "t.yaml:1:4: d: must be between 1s and 1h, got 2h");
    expect_sample_error("z: 1KiB\n", "t.yaml:1:4: z: must be between 64KiB and 64MiB, got 1KiB");
    expect_sample_error("z: 1GiB\n", "t.yaml:1:4: z: must be between 64KiB and 64MiB, got 1GiB");
    expect_sample_error("sec:\n  host: h\n  port: 70000\n",
                        "t.yaml:3:9: sec.port: must be between 0 and 65535, got 70000");
}

static void opts_unknown_key(void **state)
{
    (void)state;
    expect_sample_error("s: a\nsx: b\n",
                        "t.yaml:2:1: unknown key \"sx\" (expected one of: s, i, b, d, z, e, l, m, "
                        "sec, c)");
    expect_sample_error("sec:\n  hots: x\n",
                        "t.yaml:2:3: sec: unknown key \"hots\" (expected one of: host, port)");
    expect_sample_error("? [a]\n: 1\n", "t.yaml:1:3: keys must be strings, got a sequence");
    expect_sample_error("- a\n", "t.yaml:1:1: expected a mapping, got a sequence");
}

static void opts_required(void **state)
{
    struct req r;
    struct wp_conf_err err;

    (void)state;
    /* the position is the mapping that lacks the key */
    memset(&r, 0, sizeof(r));
    assert_int_equal(apply("name: x\ntls:\n  cx: 1\n", req_opts, &r, &err), WP_ECONFIG);
    assert_string_equal(err.msg, "t.yaml:3:3: tls: unknown key \"cx\" (expected one of: ca)");
    wp_opts_free(req_opts, &r);

    memset(&r, 0, sizeof(r));
    assert_int_equal(apply("name: x\ntls: {}\n", req_opts, &r, &err), WP_ECONFIG);
    assert_string_equal(err.msg, "t.yaml:2:6: tls.ca: required key is missing");
    wp_opts_free(req_opts, &r);

    /* an absent section: the nearest mapping that exists */
    memset(&r, 0, sizeof(r));
    assert_int_equal(apply("\n\nname: x\n", req_opts, &r, &err), WP_ECONFIG);
    assert_string_equal(err.msg, "t.yaml:3:1: tls.ca: required key is missing");
    wp_opts_free(req_opts, &r);

    memset(&r, 0, sizeof(r));
    assert_int_equal(apply("", req_opts, &r, &err), WP_ECONFIG);
    assert_string_equal(err.msg, "t.yaml:1:1: tls.ca: required key is missing");
    wp_opts_free(req_opts, &r);

    memset(&r, 0, sizeof(r));
    assert_int_equal(apply("tls: {ca: x}\n", req_opts, &r, &err), 0);
    assert_string_equal(r.tls.ca, "x");
    wp_opts_free(req_opts, &r);
}

static void opts_free_after_failure(void **state)
{
    (void)state;
    /* strings, lists, a map, a section and a custom field decoded before the error: ASan's
     * leak check fails the test if wp_opts_free() misses any of them */
    expect_sample_error("s: a\n"
                        "l: [x, y]\n"
                        "m: {k: v}\n"
                        "sec: {host: h}\n"
                        "c: q\n"
                        "i: nope\n",
                        "t.yaml:6:4: i: expected an integer, got \"nope\"");
    /* the error inside a list after some items were stored */
    expect_sample_error("l: [x, y, [z]]\n", "t.yaml:1:11: l[2]: expected a string, got a sequence");
    expect_sample_error("m: {a: b, c: {}}\n", "t.yaml:1:14: m.c: expected a string, got a mapping");
}

/* ---- documents ---- */

static void doc_duplicate_key(void **state)
{
    (void)state;
    expect_parse_error("sec:\n  host: a\n  port: 1\n  host: b\n",
                       "t.yaml:4:3: sec.host: duplicate key (first defined at line 2)");
    expect_parse_error("a: 1\nb: 2\na: 3\n",
                       "t.yaml:3:1: a: duplicate key (first defined at line 1)");
    expect_parse_error("probes:\n  - kind: x\n  - {kind: y, kind: z}\n",
                       "t.yaml:3:15: probes[1].kind: duplicate key (first defined at line 3)");
    /* the earliest duplicate in the file is the one reported */
    expect_parse_error("x:\n  a: 1\n  a: 2\ny: 1\ny: 2\n",
                       "t.yaml:3:3: x.a: duplicate key (first defined at line 2)");
}

static void doc_alias_refused(void **state)
{
    (void)state;
    expect_parse_error("a: &x 1\nb: *x\n",
                       "t.yaml:2:4: alias \"*x\" refused: anchors and aliases are not supported");
    /* billion laughs: refused at the first alias, before anything is expanded */
    expect_parse_error("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
                       "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                       "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                       "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n",
                       "t.yaml:2:8: alias \"*a\" refused: anchors and aliases are not supported");
}

static void doc_syntax_errors(void **state)
{
    (void)state;
    expect_parse_error("a:\n\tb: 1\n", "t.yaml:2:1: found character that cannot start any token "
                                       "while scanning for the next token");
    expect_parse_error("a:\n  b: 1\n c: 2\n",
                       "t.yaml:3:2: did not find expected key while parsing a block mapping");
    expect_parse_error("a: [1, 2\nb: 3\n",
                       "t.yaml:2:2: did not find expected ',' or ']' while parsing a flow "
                       "sequence");
    expect_parse_error("a: \"unterminated\n",
                       "t.yaml:2:1: found unexpected end of stream while scanning a quoted "
                       "scalar");
    expect_parse_error("a: 1\n---\nb: 2\n",
                       "t.yaml:2:1: only one YAML document per file is supported");
    expect_parse_error("s: \"a\\0b\"\n", "t.yaml:1:4: NUL characters are not allowed in values");
}

static void doc_deep_nesting_refused(void **state)
{
    char text[400];
    size_t n = 0;

    (void)state;
    for (int i = 0; i < 100; i++) {
        text[n++] = '[';
    }
    for (int i = 0; i < 100; i++) {
        text[n++] = ']';
    }
    text[n] = '\0';
    expect_parse_error(text, "t.yaml:1:65: nested more than 64 levels deep");
}

static char tmpdir[PATH_MAX];

static int tmp_setup(void **state)
{
    char tmpl[] = "/tmp/wp-conf-XXXXXX";
    char *real = NULL;

    (void)state;
    if (mkdtemp(tmpl) == NULL) {
        return -1;
    }
    real = realpath(tmpl, NULL); /* the loaders resolve relative paths with realpath() */
    if (real == NULL) {
        return -1;
    }
    snprintf(tmpdir, sizeof(tmpdir), "%s", real);
    free(real);
    return 0;
}

static const char *const tmp_files[] = {"big.yaml", "agent.yaml", "collector.yaml", "x.yaml"};

static int tmp_teardown(void **state)
{
    char p[PATH_MAX + 32];

    (void)state;
    for (size_t i = 0; i < sizeof(tmp_files) / sizeof(tmp_files[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", tmpdir, tmp_files[i]);
        unlink(p);
    }
    return rmdir(tmpdir);
}

/* Write text to tmpdir/name; returns the path in a static buffer. */
static const char *write_file(const char *name, const char *text)
{
    static char p[PATH_MAX + 32];
    FILE *f = NULL;

    snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
    f = fopen(p, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
    return p;
}

/* wp_opts_load(): a table with a captured node and a finish step that checks it. */
struct loaded {
    char *name;
    struct wp_conf_node *extra;
    int finished;
};

static const struct wp_opt loaded_opts[] = {
    {.name = "name", .type = WP_OPT_STR, .offset = offsetof(struct loaded, name), .required = 1},
    {.name = "extra",
     .type = WP_OPT_CUSTOM,
     .offset = offsetof(struct loaded, extra),
     .custom = wp_conf_capture_node},
    WP_OPT_TABLE_END,
};

static int loaded_finish(void *obj, struct wp_conf_doc *doc, struct wp_conf_err *err)
{
    struct loaded *l = obj;

    l->finished++;
    if (l->extra != NULL && !wp_conf_is_seq(l->extra)) {
        return wp_conf_errorf(doc, l->extra, err, "extra: expected a list");
    }
    return 0;
}

static void opts_load_runs_finish(void **state)
{
    struct loaded l;
    struct wp_conf_err err;
    const char *p = NULL;

    (void)state;
    memset(&l, 0, sizeof(l));
    p = write_file("x.yaml", "name: a\nextra: [1, 2]\n");
    assert_int_equal(wp_opts_load(p, loaded_opts, &l, loaded_finish, &err), 0);
    assert_string_equal(l.name, "a");
    assert_non_null(l.extra); /* the node itself; the document is gone now */
    assert_int_equal(l.finished, 1);
    wp_opts_free(loaded_opts, &l);

    memset(&l, 0, sizeof(l));
    p = write_file("x.yaml", "name: a\nextra: {b: 1}\n");
    assert_int_equal(wp_opts_load(p, loaded_opts, &l, loaded_finish, &err), WP_ECONFIG);
    assert_non_null(strstr(err.msg, "x.yaml:2:8: extra: expected a list"));
    assert_int_equal(l.finished, 1);
    wp_opts_free(loaded_opts, &l);

    /* the table fails first: no finish */
    memset(&l, 0, sizeof(l));
    p = write_file("x.yaml", "extra: [1]\n");
    assert_int_equal(wp_opts_load(p, loaded_opts, &l, loaded_finish, &err), WP_ECONFIG);
    assert_non_null(strstr(err.msg, "name"));
    assert_int_equal(l.finished, 0);
    wp_opts_free(loaded_opts, &l);

    /* no finish step; a missing file */
    memset(&l, 0, sizeof(l));
    p = write_file("x.yaml", "name: b\n");
    assert_int_equal(wp_opts_load(p, loaded_opts, &l, NULL, &err), 0);
    assert_string_equal(l.name, "b");
    assert_null(l.extra);
    wp_opts_free(loaded_opts, &l);
    memset(&l, 0, sizeof(l));
    assert_int_equal(wp_opts_load("/nonexistent/x.yaml", loaded_opts, &l, loaded_finish, &err),
                     -ENOENT);
    assert_int_equal(l.finished, 0);
}

static void doc_size_limit(void **state)
{
    size_t len = (4u << 20) + 1;
    char *big = wp_xmalloc(len + 1);
    struct wp_conf_doc *doc = NULL;
    struct wp_conf_err err;
    char want[PATH_MAX + 64];

    (void)state;
    memset(big, '#', len); /* a comment: valid YAML, only too big */
    big[len] = '\0';
    assert_int_equal(wp_conf_parse("t.yaml", big, len, &err, &doc), WP_ECONFIG);
    assert_string_equal(err.msg, "t.yaml: larger than 4 MiB, refused");
    /* exactly 4 MiB is fine */
    assert_int_equal(wp_conf_parse("t.yaml", big, len - 1, &err, &doc), 0);
    assert_null(wp_conf_root(doc));
    wp_conf_free(doc);

    const char *p = write_file("big.yaml", big);
    assert_int_equal(wp_conf_load(p, &err, &doc), WP_ECONFIG);
    snprintf(want, sizeof(want), "%s: larger than 4 MiB, refused", p);
    assert_string_equal(err.msg, want);
    assert_null(doc);
    free(big);
}

static void doc_load_errors(void **state)
{
    struct wp_conf_doc *doc = NULL;
    struct wp_conf_err err;
    char want[PATH_MAX + 128];
    char p[PATH_MAX + 32];

    (void)state;
    snprintf(p, sizeof(p), "%s/missing.yaml", tmpdir);
    assert_int_equal(wp_conf_load(p, &err, &doc), -ENOENT);
    snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", p);
    assert_string_equal(err.msg, want);
    assert_null(doc);

    assert_int_equal(wp_conf_load(tmpdir, &err, &doc), WP_ECONFIG);
    snprintf(want, sizeof(want), "%s: not a regular file", tmpdir);
    assert_string_equal(err.msg, want);

    /* a syntax error in a file names the file */
    const char *x = write_file("x.yaml", "a: 1\n  b: 2\n");
    assert_int_equal(wp_conf_load(x, &err, &doc), WP_ECONFIG);
    snprintf(want, sizeof(want), "%s:2:4: mapping values are not allowed in this context", x);
    assert_string_equal(err.msg, want);
}

static void doc_node_helpers(void **state)
{
    const char *text = "a: [x, y]\nb: {c: d}\n";
    struct wp_conf_doc *doc = NULL;
    struct wp_conf_err err;

    (void)state;
    assert_int_equal(wp_conf_parse("t.yaml", text, strlen(text), &err, &doc), 0);
    struct wp_conf_node *root = wp_conf_root(doc);
    assert_true(wp_conf_is_map(root));
    struct wp_conf_node *a = wp_conf_map_get(doc, root, "a");
    assert_true(wp_conf_is_seq(a));
    assert_int_equal(wp_conf_seq_len(doc, a), 2);
    assert_string_equal(wp_conf_scalar(wp_conf_seq_at(doc, a, 1)), "y");
    assert_null(wp_conf_seq_at(doc, a, 2));
    assert_null(wp_conf_map_get(doc, root, "zz"));
    assert_null(wp_conf_scalar(a));
    assert_int_equal(wp_conf_seq_len(doc, root), 0);
    struct wp_conf_node *b = wp_conf_map_get(doc, root, "b");
    assert_string_equal(wp_conf_scalar(wp_conf_map_get(doc, b, "c")), "d");
    assert_int_equal(wp_conf_errorf(doc, b, &err, "b: %s %d", "bad", 7), WP_ECONFIG);
    assert_string_equal(err.msg, "t.yaml:2:4: b: bad 7");
    wp_conf_free(doc);
}

/* ---- probes (a fake kind: the registry works on any ops) ---- */

struct fake_ctx {
    int64_t threshold;
    char *path;
    int fail;
};

static int fake_inits;
static int fake_destroys;

static int fake_init(struct wp_probe *p)
{
    struct fake_ctx *c = p->ctx;

    fake_inits++;
    return c->fail ? -EINVAL : 0;
}

static void fake_destroy(struct wp_probe *p)
{
    (void)p;
    fake_destroys++;
}

static const struct wp_opt fake_opts[] = {
    {.name = "threshold",
     .type = WP_OPT_INT,
     .def = "10",
     .offset = offsetof(struct fake_ctx, threshold),
     .min = 0,
     .max = 100},
    {.name = "path", .type = WP_OPT_STR, .def = "/tmp", .offset = offsetof(struct fake_ctx, path)},
    {.name = "fail",
     .type = WP_OPT_BOOL,
     .def = "false",
     .offset = offsetof(struct fake_ctx, fail)},
    WP_OPT_TABLE_END,
};

static const struct wp_probe_ops fake_ops = {
    .name = "fake",
    .summary = "a probe for tests",
    .opts = fake_opts,
    .ctx_size = sizeof(struct fake_ctx),
    .init = fake_init,
    .destroy = fake_destroy,
};

/* Create a fake probe from item i of the probes list in text. */
static int fake_probe(const char *text, size_t i, struct wp_conf_err *err, struct wp_probe **out)
{
    struct wp_conf_doc *doc = NULL;
    int rc = wp_conf_parse("t.yaml", text, strlen(text), err, &doc);

    assert_int_equal(rc, 0);
    struct wp_conf_node *seq = wp_conf_map_get(doc, wp_conf_root(doc), "probes");
    rc = wp_probe_new(&fake_ops, doc, wp_conf_seq_at(doc, seq, i), err, out);
    wp_conf_free(doc); /* the probe keeps no pointer into the document */
    return rc;
}

static void probe_new_decodes_options(void **state)
{
    const char *text = "probes:\n"
                       "  - kind: fake\n"
                       "    name: one\n"
                       "    interval: 30s\n"
                       "    threshold: 7\n"
                       "    path: /var/x\n";
    struct wp_probe *p = NULL;
    struct wp_conf_err err;

    (void)state;
    fake_inits = fake_destroys = 0;
    assert_int_equal(fake_probe(text, 0, &err, &p), 0);
    assert_non_null(p);
    assert_ptr_equal(p->ops, &fake_ops);
    assert_string_equal(p->instance, "one");
    assert_int_equal(p->interval_ms, 30000);
    struct fake_ctx *c = p->ctx;
    assert_int_equal(c->threshold, 7);
    assert_string_equal(c->path, "/var/x");
    assert_int_equal(c->fail, 0);
    assert_int_equal(fake_inits, 1);
    wp_probe_free(p);
    assert_int_equal(fake_destroys, 1);
}

static void probe_new_defaults(void **state)
{
    struct wp_probe *p = NULL;
    struct wp_conf_err err;
    struct wp_conf_doc *doc = NULL;

    (void)state;
    /* no node at all (the agent's default probe) */
    assert_int_equal(wp_conf_parse("t.yaml", "", 0, &err, &doc), 0);
    assert_int_equal(wp_probe_new(&fake_ops, doc, NULL, &err, &p), 0);
    assert_string_equal(p->instance, "fake");
    assert_int_equal(p->interval_ms, 10000);
    assert_int_equal(((struct fake_ctx *)p->ctx)->threshold, 10);
    assert_string_equal(((struct fake_ctx *)p->ctx)->path, "/tmp");
    wp_probe_free(p);
    wp_conf_free(doc);

    assert_int_equal(fake_probe("probes: [{kind: fake}]\n", 0, &err, &p), 0);
    assert_string_equal(p->instance, "fake");
    assert_int_equal(p->interval_ms, 10000);
    wp_probe_free(p);
}

static void probe_new_errors(void **state)
{
    struct wp_probe *p = NULL;
    struct wp_conf_err err;

    (void)state;
    fake_inits = fake_destroys = 0;
    assert_int_equal(fake_probe("probes:\n"
                                "  - kind: fake\n"
                                "  - kind: fake\n"
                                "    name: two\n"
                                "    threshold: 200\n",
                                1, &err, &p),
                     WP_ECONFIG);
    assert_null(p);
    assert_string_equal(err.msg, "t.yaml:5:16: probes[1].threshold: must be between 0 and 100, got "
                                 "200");

    assert_int_equal(fake_probe("probes:\n  - kind: fake\n    treshold: 1\n", 0, &err, &p),
                     WP_ECONFIG);
    assert_string_equal(err.msg, "t.yaml:3:5: probes[0]: unknown key \"treshold\" (expected one "
                                 "of: kind, name, interval, threshold, path, fail)");

    assert_int_equal(fake_probe("probes:\n  - kind: fake\n    interval: 500ms\n", 0, &err, &p),
                     WP_ECONFIG);
    assert_string_equal(err.msg,
                        "t.yaml:3:15: probes[0].interval: must be between 1s and 1h, got 500ms");

    assert_int_equal(fake_probe("probes:\n  - kind: other\n", 0, &err, &p), WP_ECONFIG);
    assert_string_equal(err.msg, "t.yaml:2:11: probes[0].kind: expected \"fake\", got \"other\"");

    assert_int_equal(fake_probe("probes:\n  - kind: fake\n    name: a b\n", 0, &err, &p),
                     WP_ECONFIG);
    assert_string_equal(err.msg, "t.yaml:3:11: probes[0].name: expected 1 to 64 letters, digits, "
                                 "'_', '-' or '.', got \"a b\"");

    assert_int_equal(fake_probe("probes:\n  - fake\n", 0, &err, &p), WP_ECONFIG);
    assert_string_equal(err.msg, "t.yaml:2:5: probes[0]: expected a mapping, got \"fake\"");
    /* none of these reached init */
    assert_int_equal(fake_inits, 0);
    assert_int_equal(fake_destroys, 0);
}

static void probe_init_failure(void **state)
{
    struct wp_probe *p = NULL;
    struct wp_conf_err err;

    (void)state;
    fake_inits = fake_destroys = 0;
    assert_int_equal(fake_probe("probes:\n"
                                "  - kind: fake\n"
                                "  - kind: fake\n"
                                "    name: web\n"
                                "    fail: yes\n",
                                1, &err, &p),
                     WP_ECONFIG);
    assert_null(p);
    assert_string_equal(err.msg, "t.yaml:3:5: probes[1] (fake:web): init failed: Invalid argument "
                                 "(the log has the details)");
    assert_int_equal(fake_inits, 1);
    assert_int_equal(fake_destroys, 1); /* destroy copes with a failed init */
}

static void probe_log_prefix(void **state)
{
    struct wp_probe *p = NULL;
    struct wp_conf_err err;
    char path[PATH_MAX + 32];
    char buf[256];
    int saved = dup(STDERR_FILENO);
    int fd = -1;

    (void)state;
    assert_int_equal(fake_probe("probes: [{kind: fake, name: one}]\n", 0, &err, &p), 0);
    snprintf(path, sizeof(path), "%s/x.yaml", tmpdir);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0 && saved >= 0);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    wp_probe_log(p, WP_LOG_WARN, "hello %d", 5);
    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    close(fd);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, "WARN probe: fake:one: hello 5\n");
    wp_probe_free(p);
}

/* ---- the agent ---- */

static const char *const agent_full = "# a full agent config\n"
                                      "agent:\n"
                                      "  id: web-01\n"
                                      "  host: web-01.example\n"
                                      "  labels: {site: par1, role: web}\n"
                                      "  state_dir: state\n"
                                      "  log_level: debug\n"
                                      "collectors:\n"
                                      "  - \"c1.example:7443\"\n"
                                      "  - {address: \"[::1]:7444\", server_name: c2}\n"
                                      "tls:\n"
                                      "  ca: tls/ca.crt\n"
                                      "  cert: ./tls/agent.crt\n"
                                      "  key: /etc/watchpost/tls/agent.key\n"
                                      "spool: {max_bytes: 1GiB, max_age: 2d, segment_bytes: 16MiB,"
                                      " fsync: false}\n"
                                      "sender:\n"
                                      "  max_inflight: 8\n"
                                      "  backoff_min: 1s\n"
                                      "  backoff_max: 1m\n"
                                      "  connect_timeout: 5s\n"
                                      "probes: []\n";

static void agent_full_config(void **state)
{
    struct agent_conf *c = NULL;
    struct wp_conf_err err;
    char want[PATH_MAX + 64];

    (void)state;
    const char *p = write_file("agent.yaml", agent_full);
    assert_int_equal(agent_conf_load(p, &err, &c), 0);
    assert_string_equal(c->path, p);
    assert_string_equal(c->agent.id, "web-01");
    assert_string_equal(c->agent.host, "web-01.example");
    assert_int_equal(c->agent.labels.n, 4);
    assert_string_equal(c->agent.labels.v[0], "site");
    assert_string_equal(c->agent.labels.v[3], "web");
    snprintf(want, sizeof(want), "%s/state", tmpdir);
    assert_string_equal(c->agent.state_dir, want);
    assert_int_equal(c->agent.log_level, WP_LOG_DEBUG);
    assert_int_equal(c->ncollectors, 2);
    assert_string_equal(c->collectors[0].host, "c1.example");
    assert_string_equal(c->collectors[0].port, "7443");
    assert_string_equal(c->collectors[0].server_name, "watchpost-collector");
    assert_string_equal(c->collectors[1].host, "::1");
    assert_string_equal(c->collectors[1].port, "7444");
    assert_string_equal(c->collectors[1].server_name, "c2");
    snprintf(want, sizeof(want), "%s/tls/ca.crt", tmpdir);
    assert_string_equal(c->tls.ca, want);
    snprintf(want, sizeof(want), "%s/./tls/agent.crt", tmpdir);
    assert_string_equal(c->tls.cert, want);
    assert_string_equal(c->tls.key, "/etc/watchpost/tls/agent.key");
    assert_int_equal(c->spool.max_bytes, 1u << 30);
    assert_int_equal(c->spool.max_age_ms, 2 * 86400000);
    assert_int_equal(c->spool.segment_bytes, 16u << 20);
    assert_int_equal(c->spool.fsync, 0);
    assert_int_equal(c->sender.max_inflight, 8);
    assert_int_equal(c->sender.backoff_min_ms, 1000);
    assert_int_equal(c->sender.backoff_max_ms, 60000);
    assert_int_equal(c->sender.connect_timeout_ms, 5000);
    assert_int_equal(c->nprobes, 0); /* an explicit empty list: no probes */
    agent_conf_free(c);
}

static void agent_defaults(void **state)
{
    struct agent_conf *c = NULL;
    struct wp_conf_err err;
    char hn[HOST_NAME_MAX + 1];

    (void)state;
    const char *p = write_file("agent.yaml", "collectors: [\"127.0.0.1:7443\"]\n"
                                             "tls: {ca: ca.crt, cert: a.crt, key: a.key}\n");
    assert_int_equal(agent_conf_load(p, &err, &c), 0);
    assert_int_equal(gethostname(hn, sizeof(hn)), 0);
    hn[sizeof(hn) - 1] = '\0';
    assert_string_equal(c->agent.id, hn);
    assert_string_equal(c->agent.host, hn);
    assert_int_equal(c->agent.labels.n, 0);
    assert_string_equal(c->agent.state_dir, "/var/lib/watchpost/agent");
    assert_int_equal(c->agent.log_level, WP_LOG_INFO);
    assert_int_equal(c->spool.max_bytes, 256u << 20);
    assert_int_equal(c->spool.max_age_ms, 7 * 86400000LL);
    assert_int_equal(c->spool.segment_bytes, 0);
    assert_int_equal(c->spool.fsync, 1);
    assert_int_equal(c->sender.max_inflight, 64);
    assert_int_equal(c->sender.backoff_min_ms, 500);
    assert_int_equal(c->sender.backoff_max_ms, 30000);
    assert_int_equal(c->sender.connect_timeout_ms, 10000);
    /* no probes key: one host probe with its defaults, when it is compiled in */
    if (wp_probe_find("host") != NULL) {
        assert_int_equal(c->nprobes, 1);
        assert_string_equal(c->probes[0]->ops->name, "host");
        assert_string_equal(c->probes[0]->instance, "host");
        assert_int_equal(c->probes[0]->interval_ms, 10000);
    } else {
        assert_int_equal(c->nprobes, 0);
    }
    agent_conf_free(c);
}

/* Load text as agent.yaml and expect msg after "<path>:". */
static void expect_agent_error(const char *text, const char *msg)
{
    struct agent_conf *c = NULL;
    struct wp_conf_err err;
    char want[PATH_MAX + 600];

    const char *p = write_file("agent.yaml", text);
    assert_int_equal(agent_conf_load(p, &err, &c), WP_ECONFIG);
    assert_null(c);
    snprintf(want, sizeof(want), "%s:%s", p, msg);
    assert_string_equal(err.msg, want);
}

#define AGENT_TLS "tls: {ca: ca.crt, cert: a.crt, key: a.key}\n"

static void agent_errors(void **state)
{
    (void)state;
    expect_agent_error(AGENT_TLS, "1:1: collectors: required key is missing");
    expect_agent_error("collectors: []\n" AGENT_TLS,
                       "1:13: collectors: at least one collector is required");
    expect_agent_error("collectors: c1:7443\n" AGENT_TLS,
                       "1:13: collectors: expected a list like [\"collector.example:7443\"]");
    expect_agent_error("colectors: [a:1]\n" AGENT_TLS,
                       "1:1: unknown key \"colectors\" (expected one of: agent, collectors, tls, "
                       "spool, sender, probes)");
    expect_agent_error("collectors:\n  - \"a:1\"\n  - \"::1:7443\"\n" AGENT_TLS,
                       "3:5: collectors[1]: expected \"host:port\" (IPv6 as \"[::1]:7443\"), got "
                       "\"::1:7443\"");
    expect_agent_error("collectors: [c1]\n" AGENT_TLS,
                       "1:14: collectors[0]: expected \"host:port\" (IPv6 as \"[::1]:7443\"), got "
                       "\"c1\"");
    expect_agent_error("collectors: [\"c1:0\"]\n" AGENT_TLS,
                       "1:14: collectors[0]: expected \"host:port\" (IPv6 as \"[::1]:7443\"), got "
                       "\"c1:0\"");
    expect_agent_error("collectors: [\"c1:65536\"]\n" AGENT_TLS,
                       "1:14: collectors[0]: expected \"host:port\" (IPv6 as \"[::1]:7443\"), got "
                       "\"c1:65536\"");
    expect_agent_error("collectors:\n  - {address: \"[::1]7443\"}\n" AGENT_TLS,
                       "2:15: collectors[0].address: expected \"host:port\" (IPv6 as "
                       "\"[::1]:7443\"), got \"[::1]7443\"");
    expect_agent_error("collectors:\n  - {server_name: x}\n" AGENT_TLS,
                       "2:5: collectors[0].address: required key is missing");
    expect_agent_error("collectors:\n  - {adress: \"a:1\"}\n" AGENT_TLS,
                       "2:6: collectors[0]: unknown key \"adress\" (expected one of: address, "
                       "server_name)");
    expect_agent_error("collectors: [\"a:1\"]\ntls:\n  ca: ca.crt\n  cert: a.crt\n",
                       "3:3: tls.key: required key is missing");
    expect_agent_error("collectors: [\"a:1\"]\n" AGENT_TLS "spool:\n  max_bytes: lots\n",
                       "4:14: spool.max_bytes: expected a size like 256MiB, got \"lots\"");
    expect_agent_error("collectors: [\"a:1\"]\n" AGENT_TLS "sender: {backoff_min: 1m}\n",
                       "3:23: sender.backoff_min: must not be longer than sender.backoff_max");
    expect_agent_error("agent: {id: \"web 01\"}\ncollectors: [\"a:1\"]\n" AGENT_TLS,
                       "1:13: agent.id: expected 1 to 64 letters, digits, '.', '_' or '-', got "
                       "\"web 01\"");
    expect_agent_error("agent: {log_level: loud}\ncollectors: [\"a:1\"]\n" AGENT_TLS,
                       "1:20: agent.log_level: expected one of: error, warn, info, debug; got "
                       "\"loud\"");
}

static void agent_probe_errors(void **state)
{
    char known[256] = "";
    char msg[512];
    size_t n = 0;

    (void)state;
    for (size_t i = 0; wp_probe_list[i] != NULL; i++) {
        n += (size_t)snprintf(known + n, sizeof(known) - n, "%s%s",
                              i ? ", " : "known: ", wp_probe_list[i]->name);
    }
    if (n == 0) {
        snprintf(known, sizeof(known), "none compiled in");
    }
    snprintf(msg, sizeof(msg), "4:12: probes[0].kind: unknown probe kind \"dsik\" (%s)", known);
    expect_agent_error("collectors: [\"a:1\"]\n" AGENT_TLS "probes:\n"
                       "  - {kind: dsik}\n",
                       msg);
    expect_agent_error("collectors: [\"a:1\"]\n" AGENT_TLS "probes:\n  - {name: x}\n",
                       "4:5: probes[0].kind: required key is missing");
    expect_agent_error("collectors: [\"a:1\"]\n" AGENT_TLS "probes: {kind: host}\n",
                       "3:9: probes: expected a list like [{kind: host}]");
    expect_agent_error("collectors: [\"a:1\"]\n" AGENT_TLS "probes:\n  - [host]\n",
                       "4:5: probes[0]: expected a mapping like {kind: host}");
}

static void agent_host_probes(void **state)
{
    struct agent_conf *c = NULL;
    struct wp_conf_err err;

    (void)state;
    if (wp_probe_find("host") == NULL) {
        skip();
    }
    /* a bad common option inside a probe: its own position */
    expect_agent_error("collectors: [\"a:1\"]\n" AGENT_TLS "probes:\n"
                       "  - kind: host\n"
                       "  - kind: host\n"
                       "    name: second\n"
                       "    interval: 5h\n",
                       "7:15: probes[1].interval: must be between 1s and 1h, got 5h");
    expect_agent_error("collectors: [\"a:1\"]\n" AGENT_TLS "probes:\n"
                       "  - kind: host\n"
                       "    bogus_option: 1\n",
                       "5:5: probes[0]: unknown key \"bogus_option\" (expected one of: kind, "
                       "name, interval, proc_root, sys_root, root_fs, fs_exclude_types, "
                       "fs_include_types, mount_exclude, remote_fs, disk_exclude, net_exclude, "
                       "per_cpu, procs_interval)");
    expect_agent_error("collectors: [\"a:1\"]\n" AGENT_TLS "probes:\n"
                       "  - kind: host\n"
                       "  - kind: host\n",
                       "5:5: probes[1]: probes[0] is also host:host (set a different name)");

    const char *p = write_file("agent.yaml", "collectors: [\"a:1\"]\n" AGENT_TLS "probes:\n"
                                             "  - kind: host\n"
                                             "  - kind: host\n"
                                             "    name: slow\n"
                                             "    interval: 1m\n");
    assert_int_equal(agent_conf_load(p, &err, &c), 0);
    assert_int_equal(c->nprobes, 2);
    assert_string_equal(c->probes[0]->instance, "host");
    assert_int_equal(c->probes[0]->interval_ms, 10000);
    assert_string_equal(c->probes[1]->instance, "slow");
    assert_int_equal(c->probes[1]->interval_ms, 60000);
    agent_conf_free(c);
}

/* ---- the collector ---- */

static void collector_full_config(void **state)
{
    struct coll_conf *c = NULL;
    struct wp_conf_err err;
    char want[PATH_MAX + 64];

    (void)state;
    const char *p = write_file("collector.yaml", "listen: \"[::]:0\"\n"
                                                 "state_dir: state\n"
                                                 "log_level: warn\n"
                                                 "tls:\n"
                                                 "  ca: tls/ca.crt\n"
                                                 "  cert: tls/collector.crt\n"
                                                 "  key: /k/collector.key\n"
                                                 "  crl: tls/ca.crl\n"
                                                 "  crl_check_interval: 30s\n"
                                                 "limits:\n"
                                                 "  max_frame: 1MiB\n"
                                                 "  max_agents: 10\n"
                                                 "  handshake_timeout: 2s\n"
                                                 "  idle_timeout: 5m\n"
                                                 "journal: {segment_bytes: 8MiB, fsync: no}\n"
                                                 "rrd:\n"
                                                 "  dir: /srv/rrd\n"
                                                 "  flush_interval: 5s\n"
                                                 "  max_pending: 50\n"
                                                 "  heartbeat_steps: 3\n"
                                                 "  archives:\n"
                                                 "    - {cf: AVERAGE, span: 1d}\n"
                                                 "    - {cf: max, resolution: 1h, span: 1y}\n");
    /* "1y" is not a unit: the error comes first, then the fixed file loads */
    assert_int_equal(coll_conf_load(p, &err, &c), WP_ECONFIG);
    snprintf(want, sizeof(want),
             "%s:23:39: rrd.archives[1].span: expected a duration like 10s, got \"1y\"", p);
    assert_string_equal(err.msg, want);

    p = write_file("collector.yaml", "listen: \"[::]:0\"\n"
                                     "state_dir: state\n"
                                     "log_level: warn\n"
                                     "tls:\n"
                                     "  ca: tls/ca.crt\n"
                                     "  cert: tls/collector.crt\n"
                                     "  key: /k/collector.key\n"
                                     "  crl: tls/ca.crl\n"
                                     "  crl_check_interval: 30s\n"
                                     "limits:\n"
                                     "  max_frame: 1MiB\n"
                                     "  max_agents: 10\n"
                                     "  handshake_timeout: 2s\n"
                                     "  idle_timeout: 5m\n"
                                     "journal: {segment_bytes: 8MiB, fsync: no}\n"
                                     "rrd:\n"
                                     "  dir: /srv/rrd\n"
                                     "  flush_interval: 5s\n"
                                     "  max_pending: 50\n"
                                     "  heartbeat_steps: 3\n"
                                     "  archives:\n"
                                     "    - {cf: AVERAGE, span: 1d}\n"
                                     "    - {cf: max, resolution: 1h, span: 365d}\n");
    assert_int_equal(coll_conf_load(p, &err, &c), 0);
    assert_string_equal(c->path, p);
    assert_string_equal(c->listen_host, "::");
    assert_string_equal(c->listen_port, "0");
    snprintf(want, sizeof(want), "%s/state", tmpdir);
    assert_string_equal(c->state_dir, want);
    assert_int_equal(c->log_level, WP_LOG_WARN);
    snprintf(want, sizeof(want), "%s/tls/ca.crt", tmpdir);
    assert_string_equal(c->tls.ca, want);
    snprintf(want, sizeof(want), "%s/tls/collector.crt", tmpdir);
    assert_string_equal(c->tls.cert, want);
    assert_string_equal(c->tls.key, "/k/collector.key");
    snprintf(want, sizeof(want), "%s/tls/ca.crl", tmpdir);
    assert_string_equal(c->tls.crl, want);
    assert_int_equal(c->tls.crl_check_interval_ms, 30000);
    assert_int_equal(c->limits.max_frame, 1u << 20);
    assert_int_equal(c->limits.max_agents, 10);
    assert_int_equal(c->limits.handshake_timeout_ms, 2000);
    assert_int_equal(c->limits.idle_timeout_ms, 300000);
    assert_int_equal(c->journal.segment_bytes, 8u << 20);
    assert_int_equal(c->journal.fsync, 0);
    assert_string_equal(c->rrd.dir, "/srv/rrd");
    assert_int_equal(c->rrd.flush_interval_ms, 5000);
    assert_int_equal(c->rrd.max_pending, 50);
    assert_int_equal(c->rrd.heartbeat_steps, 3);
    assert_int_equal(c->rrd.narchives, 2);
    assert_string_equal(c->rrd.archives[0].cf, "AVERAGE");
    assert_int_equal(c->rrd.archives[0].resolution_s, 0);
    assert_int_equal(c->rrd.archives[0].span_s, 86400);
    assert_string_equal(c->rrd.archives[1].cf, "MAX");
    assert_int_equal(c->rrd.archives[1].resolution_s, 3600);
    assert_int_equal(c->rrd.archives[1].span_s, 365 * 86400);
    coll_conf_free(c);
}

static void collector_defaults(void **state)
{
    struct coll_conf *c = NULL;
    struct wp_conf_err err;
    char want[PATH_MAX + 64];

    (void)state;
    const char *p = write_file("collector.yaml", "tls: {ca: /a, cert: /b, key: /c}\n");
    assert_int_equal(coll_conf_load(p, &err, &c), 0);
    assert_string_equal(c->listen_host, "127.0.0.1");
    assert_string_equal(c->listen_port, "7443");
    assert_string_equal(c->state_dir, "/var/lib/watchpost");
    assert_int_equal(c->log_level, WP_LOG_INFO);
    assert_null(c->tls.crl);
    assert_int_equal(c->tls.crl_check_interval_ms, 5000);
    assert_int_equal(c->limits.max_frame, 4u << 20);
    assert_int_equal(c->limits.max_agents, 20000);
    assert_int_equal(c->limits.handshake_timeout_ms, 10000);
    assert_int_equal(c->limits.idle_timeout_ms, 120000);
    assert_int_equal(c->journal.segment_bytes, 64u << 20);
    assert_int_equal(c->journal.fsync, 1);
    assert_string_equal(c->rrd.dir, "/var/lib/watchpost/rrd");
    assert_int_equal(c->rrd.flush_interval_ms, 60000);
    assert_int_equal(c->rrd.max_pending, 300);
    assert_int_equal(c->rrd.heartbeat_steps, 2);
    assert_null(c->rrd.archives);
    assert_int_equal(c->rrd.narchives, 0);
    coll_conf_free(c);

    /* rrd.dir follows a relative state_dir */
    p = write_file("collector.yaml", "state_dir: st\ntls: {ca: /a, cert: /b, key: /c}\n");
    assert_int_equal(coll_conf_load(p, &err, &c), 0);
    snprintf(want, sizeof(want), "%s/st/rrd", tmpdir);
    assert_string_equal(c->rrd.dir, want);
    coll_conf_free(c);
}

static void expect_coll_error(const char *text, const char *msg)
{
    struct coll_conf *c = NULL;
    struct wp_conf_err err;
    char want[PATH_MAX + 600];

    const char *p = write_file("collector.yaml", text);
    assert_int_equal(coll_conf_load(p, &err, &c), WP_ECONFIG);
    assert_null(c);
    snprintf(want, sizeof(want), "%s:%s", p, msg);
    assert_string_equal(err.msg, want);
}

#define COLL_TLS "tls: {ca: /a, cert: /b, key: /c}\n"

static void collector_errors(void **state)
{
    (void)state;
    expect_coll_error("listen: 7443\n" COLL_TLS,
                      "1:9: listen: expected \"host:port\" (IPv6 as \"[::1]:7443\", port 0 = any "
                      "free port), got \"7443\"");
    expect_coll_error("listen: \"1.2.3.4:99999\"\n" COLL_TLS,
                      "1:9: listen: expected \"host:port\" (IPv6 as \"[::1]:7443\", port 0 = any "
                      "free port), got \"1.2.3.4:99999\"");
    expect_coll_error("listen: 127.0.0.1:0\n", "1:1: tls.ca: required key is missing");
    expect_coll_error(COLL_TLS "limits:\n  max_frame: 1KiB\n",
                      "3:14: limits.max_frame: must be between 64KiB and 64MiB, got 1KiB");
    expect_coll_error(COLL_TLS "limits:\n  max_frame: 128MiB\n",
                      "3:14: limits.max_frame: must be between 64KiB and 64MiB, got 128MiB");
    expect_coll_error(COLL_TLS "rrd: {heartbeat_steps: 11}\n",
                      "2:24: rrd.heartbeat_steps: must be between 1 and 10, got 11");
    expect_coll_error(COLL_TLS "rrd: {flush_interval: 100ms}\n",
                      "2:23: rrd.flush_interval: must be between 1s and 1h, got 100ms");
    expect_coll_error(COLL_TLS "rrd:\n  archives:\n    - {cf: MEAN, span: 1d}\n",
                      "4:12: rrd.archives[0].cf: expected one of: AVERAGE, MIN, MAX, LAST; got "
                      "\"MEAN\"");
    expect_coll_error(COLL_TLS "rrd:\n  archives:\n    - {cf: MIN}\n",
                      "4:7: rrd.archives[0].span: required key is missing");
    expect_coll_error(COLL_TLS "rrd:\n  archives:\n    - {cf: MIN, span: 1d}\n"
                               "    - {cf: MIN, span: 1500ms}\n",
                      "5:23: rrd.archives[1].span: must be whole seconds, more than 0 and at most "
                      "20 years");
    expect_coll_error(COLL_TLS "rrd:\n  archives:\n    - {cf: LAST, resolution: 2d, span: 1d}\n",
                      "4:30: rrd.archives[0].resolution: must not be longer than span");
    expect_coll_error(COLL_TLS "rrd:\n  archives: {cf: LAST}\n",
                      "3:13: rrd.archives: expected a list like [{cf: AVERAGE, span: 25h}]");
    expect_coll_error(COLL_TLS "journal:\n  fsync: sometimes\n",
                      "3:10: journal.fsync: expected true or false, got \"sometimes\"");
}

/* The text a reload compares: comments, layout and flow/block style do not count; any value,
 * key or order does, and a scalar cannot pass for structure. */
static void node_text_compares_settings(void **state)
{
    static const char *const same[] = {
        "probes: [{kind: fake, name: a, threshold: 5}]\n",
        "# a comment\nprobes:\n  - kind: fake   # here too\n    name: a\n\n    threshold: 5\n",
        "probes: [{kind: fake, name: a, threshold: \"5\"}]\n",
    };
    static const char *const differ[] = {
        "probes: [{kind: fake, name: a, threshold: 6}]\n",
        "probes: [{name: a, kind: fake, threshold: 5}]\n",
        "probes: [{kind: fake, name: \"a, threshold: 5\"}]\n",
        "probes: [{kind: fake, name: a, threshold: [5]}]\n",
    };
    struct wp_conf_err err;
    char *ref = NULL;

    (void)state;
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]) + sizeof(differ) / sizeof(differ[0]);
         i++) {
        int is_same = i < sizeof(same) / sizeof(same[0]);
        const char *text = is_same ? same[i] : differ[i - sizeof(same) / sizeof(same[0])];
        struct wp_conf_doc *doc = NULL;
        assert_int_equal(wp_conf_parse("t.yaml", text, strlen(text), &err, &doc), 0);
        struct wp_conf_node *seq = wp_conf_map_get(doc, wp_conf_root(doc), "probes");
        char *t = wp_conf_node_text(doc, wp_conf_seq_at(doc, seq, 0));
        if (ref == NULL) {
            ref = t;
        } else {
            if ((strcmp(ref, t) == 0) != is_same) {
                print_error("case %zu: \"%s\" vs \"%s\"\n", i, t, ref);
            }
            assert_int_equal(strcmp(ref, t) == 0, is_same);
            free(t);
        }
        wp_conf_free(doc);
    }
    free(ref);
}

/* agent_conf_reload() borrows the running probe of an unchanged entry (no second init()),
 * makes new ones for changed and added entries, and a refused reload leaves the old config
 * whole. */
static void agent_reload_borrows_unchanged(void **state)
{
    static const char head[] = "collectors: [\"c1.example:7443\"]\n"
                               "tls: {ca: ca.crt, cert: a.crt, key: a.key}\n";
    struct agent_conf *old = NULL;
    struct agent_conf *nc = NULL;
    struct wp_conf_err err;
    char *text = NULL;
    const char *p = NULL;

    (void)state;
    text = wp_xasprintf("%sprobes:\n  - {kind: selftest, name: a, series: 1}\n"
                        "  - {kind: selftest, name: b, series: 1}\n",
                        head);
    p = write_file("agent.yaml", text);
    free(text);
    assert_int_equal(agent_conf_load(p, &err, &old), 0);
    assert_int_equal(old->nprobes, 2);

    /* a unchanged (comment added), b changed, c added */
    text = wp_xasprintf("%sprobes:\n  - {kind: selftest, name: a, series: 1}  # same\n"
                        "  - {kind: selftest, name: b, series: 2}\n"
                        "  - {kind: selftest, name: c}\n",
                        head);
    p = write_file("agent.yaml", text);
    free(text);
    assert_int_equal(agent_conf_reload(p, old, &err, &nc), 0);
    assert_int_equal(nc->nprobes, 3);
    assert_ptr_equal(nc->probes[0], old->probes[0]);
    assert_int_equal(nc->probe_reused[0], 1);
    assert_true(nc->probes[1] != old->probes[1]);
    assert_int_equal(nc->probe_reused[1], 0);
    assert_int_equal(nc->probe_reused[2], 0);
    assert_string_equal(nc->probes[2]->instance, "c");
    agent_conf_adopt(nc, old);
    assert_null(old->probes[0]);
    assert_int_equal(nc->probe_reused[0], 0);
    agent_conf_free(old); /* frees the old b only */
    old = nc;
    nc = NULL;

    /* a refused reload: the borrowed probe must survive the failure */
    text = wp_xasprintf("%sprobes:\n  - {kind: selftest, name: a, series: 1}\n"
                        "  - {kind: selftest, name: b, series: 2}\n"
                        "  - {kind: selftest, name: c, series: lots}\n",
                        head);
    p = write_file("agent.yaml", text);
    free(text);
    assert_int_equal(agent_conf_reload(p, old, &err, &nc), WP_ECONFIG);
    assert_null(nc);
    assert_non_null(strstr(err.msg, "agent.yaml:6:"));
    assert_non_null(strstr(err.msg, "series"));
    assert_string_equal(old->probes[0]->instance, "a"); /* still alive (ASan would say) */
    assert_string_equal(old->probes[1]->instance, "b");
    /* a duplicate of a borrowed probe is refused without freeing it */
    text = wp_xasprintf("%sprobes:\n  - {kind: selftest, name: a, series: 1}\n"
                        "  - {kind: selftest, name: a, series: 1}\n",
                        head);
    p = write_file("agent.yaml", text);
    free(text);
    assert_int_equal(agent_conf_reload(p, old, &err, &nc), WP_ECONFIG);
    assert_non_null(strstr(err.msg, "is also selftest:a"));
    assert_string_equal(old->probes[0]->instance, "a");
    agent_conf_free(old);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_durations),    cmocka_unit_test(parse_sizes),
        cmocka_unit_test(parse_bools),        cmocka_unit_test(split_hostport),
        cmocka_unit_test(resolve_paths),      cmocka_unit_test(opts_all_types_good),
        cmocka_unit_test(opts_defaults),      cmocka_unit_test(opts_type_errors),
        cmocka_unit_test(opts_range_errors),  cmocka_unit_test(opts_unknown_key),
        cmocka_unit_test(opts_required),      cmocka_unit_test(opts_free_after_failure),
        cmocka_unit_test(doc_duplicate_key),  cmocka_unit_test(doc_alias_refused),
        cmocka_unit_test(doc_syntax_errors),  cmocka_unit_test(doc_deep_nesting_refused),
        cmocka_unit_test(doc_size_limit),     cmocka_unit_test(doc_load_errors),
        cmocka_unit_test(doc_node_helpers),   cmocka_unit_test(probe_new_decodes_options),
        cmocka_unit_test(probe_new_defaults), cmocka_unit_test(probe_new_errors),
        cmocka_unit_test(probe_init_failure), cmocka_unit_test(probe_log_prefix),
        cmocka_unit_test(agent_full_config),  cmocka_unit_test(agent_defaults),
        cmocka_unit_test(agent_errors),       cmocka_unit_test(agent_probe_errors),
        cmocka_unit_test(agent_host_probes),  cmocka_unit_test(collector_full_config),
        cmocka_unit_test(collector_defaults), cmocka_unit_test(collector_errors),
        cmocka_unit_test(node_text_compares_settings),
        cmocka_unit_test(agent_reload_borrows_unchanged),
        cmocka_unit_test(parse_hhmm),
        cmocka_unit_test(civil_dates),
        cmocka_unit_test(opts_load_runs_finish),
    };
    return cmocka_run_group_tests(tests, tmp_setup, tmp_teardown);
}
