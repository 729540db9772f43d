/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the wire codec: round trips of every message, and every malformed input
 * the decoder must refuse with the right code, without crashing or over-allocating. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka needs the four headers above first */
#include <cmocka.h>

#include <msgpack.h>

#include "wp/buf.h"
#include "wp/err.h"
#include "wp/wire.h"

/* ---- allocation counting (ASan builds) ------------------------------------------------ */

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ASAN_HOOKS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ASAN_HOOKS 1
#endif
#endif

static volatile int alloc_counting;
static volatile size_t alloc_count;

#ifdef HAVE_ASAN_HOOKS
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));

static void count_malloc(const volatile void *p, size_t n)
{
    (void)p;
    (void)n;
    if (alloc_counting) {
        alloc_count++;
    }
}

static void ignore_free(const volatile void *p)
{
    (void)p;
}
#endif

/* ---- helpers ---------------------------------------------------------------------------- */

#define MAX_U32 4294967295ull
#define DAY_MS  86400000ll
#define TS0     1700000000000ll

static int buf_write(void *data, const char *p, size_t n)
{
    wp_buf_append(data, p, n);
    return 0;
}

/* A msgpack body under construction (no frame header). */
struct body {
    struct wp_buf b;
    msgpack_packer pk;
};

static void body_init(struct body *x)
{
    wp_buf_init(&x->b);
    msgpack_packer_init(&x->pk, &x->b, buf_write);
}

static void pk_s(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* A string of n copies of c. */
static void pk_rep(msgpack_packer *pk, char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
    free(s);
}

static int decode_bytes(const uint8_t *p, size_t n)
{
    struct wp_msg m;
    wp_msg_init(&m);
    int rc = wp_msg_decode(&m, p, n);
    wp_msg_cleanup(&m);
    return rc;
}

/* Decode the one whole frame at the head of b into m; returns wp_msg_decode()'s result. */
static int decode_frame_at(const uint8_t *p, size_t n, struct wp_msg *m, size_t *frame_len)
{
    uint32_t len = 0;
    assert_int_equal(wp_frame_peek(p, n, WP_FRAME_MAX_DEFAULT, &len), 0);
    assert_true((size_t)len + WP_FRAME_HDR <= n);
    if (frame_len != NULL) {
        *frame_len = WP_FRAME_HDR + (size_t)len;
    }
    return wp_msg_decode(m, p + WP_FRAME_HDR, len);
}

static int decode_frame(const struct wp_buf *b, struct wp_msg *m)
{
    size_t flen = 0;
    int rc = decode_frame_at(wp_buf_head(b), wp_buf_unread(b), m, &flen);
    assert_int_equal(flen, wp_buf_unread(b));
    return rc;
}

static void assert_str(struct wp_str s, const char *want)
{
    assert_int_equal(s.len, strlen(want));
    if (s.len > 0) {
        assert_memory_equal(s.p, want, s.len);
    }
}

static struct wp_str ws(const char *s)
{
    struct wp_str r = {s, (uint32_t)strlen(s)};
    return r;
}

/* ---- message templates with one field replaced or removed ------------------------------- */

typedef void (*pack_fn)(msgpack_packer *pk);

struct field {
    const char *key;
    pack_fn val;
};

static void v_hello(msgpack_packer *pk)
{
    pk_s(pk, "hello");
}
static void v_welcome(msgpack_packer *pk)
{
    pk_s(pk, "welcome");
}
static void v_ack(msgpack_packer *pk)
{
    pk_s(pk, "ack");
}
static void v_error(msgpack_packer *pk)
{
    pk_s(pk, "error");
}
static void v_defs(msgpack_packer *pk)
{
    pk_s(pk, "defs");
}
static void v_batch(msgpack_packer *pk)
{
    pk_s(pk, "batch");
}
static void v_bogus(msgpack_packer *pk)
{
    pk_s(pk, "bogus");
}
static void v_t17(msgpack_packer *pk)
{
    pk_rep(pk, 'b', 17);
}
static void v_x(msgpack_packer *pk)
{
    pk_s(pk, "x");
}
static void v_empty(msgpack_packer *pk)
{
    pk_s(pk, "");
}
static void v_zero(msgpack_packer *pk)
{
    msgpack_pack_uint64(pk, 0);
}
static void v_one(msgpack_packer *pk)
{
    msgpack_pack_uint64(pk, 1);
}
static void v_ts(msgpack_packer *pk)
{
    msgpack_pack_int64(pk, 1000);
}
static void v_neg(msgpack_packer *pk)
{
    msgpack_pack_int64(pk, -1);
}
static void v_float(msgpack_packer *pk)
{
    msgpack_pack_double(pk, 1.5);
}
static void v_float32(msgpack_packer *pk)
{
    msgpack_pack_float(pk, 1000.0f);
}
static void v_nil(msgpack_packer *pk)
{
    msgpack_pack_nil(pk);
}
static void v_true(msgpack_packer *pk)
{
    msgpack_pack_true(pk);
}
static void v_arr(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 0);
}
static void v_map(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 0);
}
static void v_bin(msgpack_packer *pk)
{
    msgpack_pack_bin_with_body(pk, "a1", 2);
}
static void v_2p53(msgpack_packer *pk)
{
    msgpack_pack_uint64(pk, 1ull << 53);
}
static void v_agent(msgpack_packer *pk)
{
    pk_s(pk, "web-01");
}
static void v_agent128(msgpack_packer *pk)
{
    pk_rep(pk, 'a', WP_AGENT_ID_MAX);
}
static void v_agent129(msgpack_packer *pk)
{
    pk_rep(pk, 'a', WP_AGENT_ID_MAX + 1);
}
static void v_host257(msgpack_packer *pk)
{
    pk_rep(pk, 'h', WP_INST_MAX + 1);
}
static void v_ver65(msgpack_packer *pk)
{
    pk_rep(pk, 'v', WP_NAME_MAX + 1);
}
static void v_msg1025(msgpack_packer *pk)
{
    pk_rep(pk, 'm', 1025);
}
static void v_msg1024(msgpack_packer *pk)
{
    pk_rep(pk, 'm', 1024);
}

static void v_labels(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    pk_s(pk, "env");
    pk_s(pk, "prod");
}

static void v_labels_intkey(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    msgpack_pack_uint64(pk, 1);
    pk_s(pk, "prod");
}

static void v_labels_intval(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    pk_s(pk, "env");
    msgpack_pack_uint64(pk, 1);
}

static void v_labels_arrval(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 2);
    pk_s(pk, "env");
    pk_s(pk, "prod");
    pk_s(pk, "rack");
    msgpack_pack_array(pk, 1);
    pk_s(pk, "r1");
}

static void v_labels_longkey(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    pk_rep(pk, 'k', WP_NAME_MAX + 1);
    pk_s(pk, "v");
}

static void v_labels_longval(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    pk_s(pk, "k");
    pk_rep(pk, 'v', WP_INST_MAX + 1);
}

static void v_labels_max(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    pk_rep(pk, 'k', WP_NAME_MAX);
    pk_rep(pk, 'v', WP_INST_MAX);
}

static void labels_n(msgpack_packer *pk, unsigned n)
{
    char k[16];
    msgpack_pack_map(pk, n);
    for (unsigned i = 0; i < n; i++) {
        snprintf(k, sizeof(k), "k%u", i);
        pk_s(pk, k);
        pk_s(pk, "v");
    }
}

static void v_labels64(msgpack_packer *pk)
{
    labels_n(pk, 64);
}
static void v_labels65(msgpack_packer *pk)
{
    labels_n(pk, 65);
}

static const struct field hello_tpl[] = {
    {"t", v_hello},       {"v", v_one},         {"agent", v_agent}, {"host", v_agent},
    {"version", v_agent}, {"labels", v_labels}, {"boot", v_ts},
};
static const struct field welcome_tpl[] = {{"t", v_welcome}, {"v", v_one}, {"acked", v_one}};
static const struct field ack_tpl[] = {{"t", v_ack}, {"seq", v_one}};
static const struct field error_tpl[] = {{"t", v_error}, {"msg", v_x}};
static const struct field defs_tpl[] = {{"t", v_defs}, {"series", v_arr}};
static const struct field batch_tpl[] = {
    {"t", v_batch}, {"seq", v_one}, {"ts", v_ts}, {"recs", v_arr}};

#define TPL(t) t, sizeof(t) / sizeof(t[0])

/* Pack a template as a map; the field named key gets value repl, or is left out if
 * repl is NULL. key NULL packs the template unchanged. */
static void pack_tpl(struct body *x, const struct field *f, size_t n, const char *key, pack_fn repl)
{
    size_t count = n;
    for (size_t i = 0; i < n; i++) {
        if (key != NULL && strcmp(f[i].key, key) == 0 && repl == NULL) {
            count--;
        }
    }
    msgpack_pack_map(&x->pk, count);
    for (size_t i = 0; i < n; i++) {
        int hit = key != NULL && strcmp(f[i].key, key) == 0;
        if (hit && repl == NULL) {
            continue;
        }
        pk_s(&x->pk, f[i].key);
        (hit ? repl : f[i].val)(&x->pk);
    }
}

struct field_case {
    const char *name;
    const struct field *tpl;
    size_t ntpl;
    const char *key;
    pack_fn repl;
    int rc;
};

static const struct field_case field_cases[] = {
    /* every template is valid as it is */
    {"hello ok", TPL(hello_tpl), NULL, NULL, 0},
    {"welcome ok", TPL(welcome_tpl), NULL, NULL, 0},
    {"ack ok", TPL(ack_tpl), NULL, NULL, 0},
    {"error ok", TPL(error_tpl), NULL, NULL, 0},
    {"defs ok", TPL(defs_tpl), NULL, NULL, 0},
    {"batch ok", TPL(batch_tpl), NULL, NULL, 0},
    /* the type key */
    {"t missing", TPL(hello_tpl), "t", NULL, WP_EPROTO},
    {"t int", TPL(hello_tpl), "t", v_one, WP_ETYPE},
    {"t nil", TPL(batch_tpl), "t", v_nil, WP_ETYPE},
    {"t bin", TPL(batch_tpl), "t", v_bin, WP_ETYPE},
    {"t unknown", TPL(hello_tpl), "t", v_bogus, WP_EKIND},
    {"t empty", TPL(ack_tpl), "t", v_empty, WP_EKIND},
    {"t too long", TPL(ack_tpl), "t", v_t17, WP_ETOOBIG},
    /* hello */
    {"hello v missing", TPL(hello_tpl), "v", NULL, WP_EPROTO},
    {"hello v string", TPL(hello_tpl), "v", v_x, WP_ETYPE},
    {"hello v negative", TPL(hello_tpl), "v", v_neg, WP_ETYPE},
    {"hello agent missing", TPL(hello_tpl), "agent", NULL, WP_EPROTO},
    {"hello agent int", TPL(hello_tpl), "agent", v_one, WP_ETYPE},
    {"hello agent bin", TPL(hello_tpl), "agent", v_bin, WP_ETYPE},
    {"hello agent empty", TPL(hello_tpl), "agent", v_empty, WP_EPROTO},
    {"hello agent 128", TPL(hello_tpl), "agent", v_agent128, 0},
    {"hello agent 129", TPL(hello_tpl), "agent", v_agent129, WP_ETOOBIG},
    {"hello host missing", TPL(hello_tpl), "host", NULL, WP_EPROTO},
    {"hello host too long", TPL(hello_tpl), "host", v_host257, WP_ETOOBIG},
    {"hello version too long", TPL(hello_tpl), "version", v_ver65, WP_ETOOBIG},
    {"hello version array", TPL(hello_tpl), "version", v_arr, WP_ETYPE},
    {"hello labels missing", TPL(hello_tpl), "labels", NULL, 0},
    {"hello labels array", TPL(hello_tpl), "labels", v_arr, WP_ETYPE},
    {"hello labels string", TPL(hello_tpl), "labels", v_x, WP_ETYPE},
    {"hello labels nil", TPL(hello_tpl), "labels", v_nil, WP_ETYPE},
    {"hello labels int key", TPL(hello_tpl), "labels", v_labels_intkey, WP_ETYPE},
    {"hello labels int value", TPL(hello_tpl), "labels", v_labels_intval, WP_ETYPE},
    {"hello labels array value", TPL(hello_tpl), "labels", v_labels_arrval, WP_ETYPE},
    {"hello labels long key", TPL(hello_tpl), "labels", v_labels_longkey, WP_ETOOBIG},
    {"hello labels long value", TPL(hello_tpl), "labels", v_labels_longval, WP_ETOOBIG},
    {"hello labels at limits", TPL(hello_tpl), "labels", v_labels_max, 0},
    {"hello labels 64", TPL(hello_tpl), "labels", v_labels64, 0},
    {"hello labels 65", TPL(hello_tpl), "labels", v_labels65, WP_ETOOBIG},
    {"hello boot missing", TPL(hello_tpl), "boot", NULL, WP_EPROTO},
    {"hello boot string", TPL(hello_tpl), "boot", v_x, WP_ETYPE},
    {"hello boot float", TPL(hello_tpl), "boot", v_float, WP_ETYPE},
    {"hello boot negative", TPL(hello_tpl), "boot", v_neg, 0},
    /* welcome, ack, error, defs */
    {"welcome v missing", TPL(welcome_tpl), "v", NULL, WP_EPROTO},
    {"welcome acked missing", TPL(welcome_tpl), "acked", NULL, WP_EPROTO},
    {"welcome acked string", TPL(welcome_tpl), "acked", v_x, WP_ETYPE},
    {"welcome acked negative", TPL(welcome_tpl), "acked", v_neg, WP_ETYPE},
    {"welcome acked zero", TPL(welcome_tpl), "acked", v_zero, 0},
    {"ack seq missing", TPL(ack_tpl), "seq", NULL, WP_EPROTO},
    {"ack seq string", TPL(ack_tpl), "seq", v_x, WP_ETYPE},
    {"ack seq float", TPL(ack_tpl), "seq", v_float, WP_ETYPE},
    {"ack seq true", TPL(ack_tpl), "seq", v_true, WP_ETYPE},
    {"error msg missing", TPL(error_tpl), "msg", NULL, WP_EPROTO},
    {"error msg int", TPL(error_tpl), "msg", v_one, WP_ETYPE},
    {"error msg 1024", TPL(error_tpl), "msg", v_msg1024, 0},
    {"error msg 1025", TPL(error_tpl), "msg", v_msg1025, WP_ETOOBIG},
    {"defs series missing", TPL(defs_tpl), "series", NULL, WP_EPROTO},
    {"defs series map", TPL(defs_tpl), "series", v_map, WP_ETYPE},
    {"defs series nil", TPL(defs_tpl), "series", v_nil, WP_ETYPE},
    /* batch */
    {"batch seq missing", TPL(batch_tpl), "seq", NULL, WP_EPROTO},
    {"batch seq string", TPL(batch_tpl), "seq", v_x, WP_ETYPE},
    {"batch seq float", TPL(batch_tpl), "seq", v_float, WP_ETYPE},
    {"batch seq negative", TPL(batch_tpl), "seq", v_neg, WP_ETYPE},
    {"batch seq zero", TPL(batch_tpl), "seq", v_zero, WP_EPROTO},
    {"batch ts missing", TPL(batch_tpl), "ts", NULL, WP_EPROTO},
    {"batch ts float", TPL(batch_tpl), "ts", v_float, WP_ETYPE},
    {"batch ts float32", TPL(batch_tpl), "ts", v_float32, WP_ETYPE},
    {"batch ts string", TPL(batch_tpl), "ts", v_x, WP_ETYPE},
    {"batch ts negative", TPL(batch_tpl), "ts", v_neg, WP_EPROTO},
    {"batch ts past 2^52", TPL(batch_tpl), "ts", v_2p53, WP_EPROTO},
    {"batch recs missing", TPL(batch_tpl), "recs", NULL, WP_EPROTO},
    {"batch recs map", TPL(batch_tpl), "recs", v_map, WP_ETYPE},
    {"batch recs string", TPL(batch_tpl), "recs", v_x, WP_ETYPE},
    {"batch recs int", TPL(batch_tpl), "recs", v_one, WP_ETYPE},
};

static void decode_rejects_bad_fields(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(field_cases) / sizeof(field_cases[0]); i++) {
        const struct field_case *c = &field_cases[i];
        struct body x;
        body_init(&x);
        pack_tpl(&x, c->tpl, c->ntpl, c->key, c->repl);
        int rc = decode_bytes(wp_buf_head(&x.b), wp_buf_unread(&x.b));
        if (rc != c->rc) {
            fail_msg("case \"%s\": got %d (%s), want %d (%s)", c->name, rc, wp_strerror(rc), c->rc,
                     wp_strerror(c->rc));
        }
        wp_buf_cleanup(&x.b);
    }
}

/* ---- round trips ------------------------------------------------------------------------ */

static void hello_round_trip(void **state)
{
    const char *const labels[] = {"env", "prod", "rack", "r7", "empty", "", NULL};
    struct wp_buf b;
    struct wp_msg m;

    (void)state;
    wp_buf_init(&b);
    wp_msg_init(&m);
    wp_put_hello(&b, "web-01", "web-01.example.net", "0.1.0", labels, 1699990000123);
    assert_int_equal(decode_frame(&b, &m), 0);
    assert_int_equal(m.type, WP_MSG_HELLO);
    assert_int_equal(m.u.hello.version, WP_WIRE_VERSION);
    assert_str(m.u.hello.agent, "web-01");
    assert_str(m.u.hello.host, "web-01.example.net");
    assert_str(m.u.hello.sw_version, "0.1.0");
    assert_true(m.u.hello.boot == 1699990000123);
    assert_non_null(m.u.hello.labels);
    assert_int_equal(m.u.hello.labels->size, 3);
    for (uint32_t i = 0; i < 3; i++) {
        const msgpack_object_kv *kv = &m.u.hello.labels->ptr[i];
        struct wp_str k = {kv->key.via.str.ptr, kv->key.via.str.size};
        struct wp_str v = {kv->val.via.str.ptr, kv->val.via.str.size};
        assert_int_equal(kv->key.type, MSGPACK_OBJECT_STR);
        assert_str(k, labels[i * 2]);
        assert_str(v, labels[i * 2 + 1]);
    }
    char *agent = wp_str_dup(m.u.hello.agent);
    assert_string_equal(agent, "web-01");
    free(agent);
    wp_msg_cleanup(&m);

    /* no labels, a negative boot time */
    wp_buf_reset(&b);
    wp_put_hello(&b, "a", "h", "v", NULL, -5);
    assert_int_equal(decode_frame(&b, &m), 0);
    assert_int_equal(m.type, WP_MSG_HELLO);
    assert_true(m.u.hello.boot == -5);
    assert_non_null(m.u.hello.labels);
    assert_int_equal(m.u.hello.labels->size, 0);
    wp_msg_cleanup(&m);
    wp_buf_cleanup(&b);
}

static void small_messages_round_trip(void **state)
{
    const uint64_t nums[] = {0, 1, 127, 128, 65536, MAX_U32 + 1, UINT64_MAX};
    struct wp_buf b;
    struct wp_msg m;

    (void)state;
    wp_buf_init(&b);
    wp_msg_init(&m);
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        wp_buf_reset(&b);
        wp_put_welcome(&b, nums[i]);
        assert_int_equal(decode_frame(&b, &m), 0);
        assert_int_equal(m.type, WP_MSG_WELCOME);
        assert_int_equal(m.u.welcome.version, WP_WIRE_VERSION);
        assert_true(m.u.welcome.acked == nums[i]);
        wp_msg_cleanup(&m);

        wp_buf_reset(&b);
        wp_put_ack(&b, nums[i]);
        assert_int_equal(decode_frame(&b, &m), 0);
        assert_int_equal(m.type, WP_MSG_ACK);
        assert_true(m.u.ack.seq == nums[i]);
        wp_msg_cleanup(&m);
    }
    wp_buf_reset(&b);
    wp_put_error(&b, "agent id does not match certificate");
    assert_int_equal(decode_frame(&b, &m), 0);
    assert_int_equal(m.type, WP_MSG_ERROR);
    assert_str(m.u.error.msg, "agent id does not match certificate");
    assert_string_equal(wp_msg_name(m.type), "error");
    wp_msg_cleanup(&m);
    wp_buf_cleanup(&b);
}

static void defs_round_trip(void **state)
{
    char names[WP_SERIES_MAX_FIELDS][WP_NAME_MAX + 1];
    char longgroup[WP_NAME_MAX + 1];
    char longinst[WP_INST_MAX + 1];
    struct wp_series_def d[4];
    struct wp_series_def got;
    struct wp_buf b;
    struct wp_msg m;

    (void)state;
    memset(d, 0, sizeof(d));
    memset(longgroup, 'g', WP_NAME_MAX);
    longgroup[WP_NAME_MAX] = '\0';
    memset(longinst, 'i', WP_INST_MAX);
    longinst[WP_INST_MAX] = '\0';
    for (int k = 0; k < WP_SERIES_MAX_FIELDS; k++) {
        /* distinct names, the last one at the length limit */
        memset(names[k], 'a' + k % 26, WP_NAME_MAX);
        names[k][k == WP_SERIES_MAX_FIELDS - 1 ? WP_NAME_MAX : k + 1] = '\0';
    }
    d[0] = (struct wp_series_def){.id = 1,
                                  .group = ws("cpu"),
                                  .inst = ws(""),
                                  .nfields = 3,
                                  .type = WP_DS_GAUGE,
                                  .step_s = 10};
    d[0].fields[0] = ws("user");
    d[0].fields[1] = ws("system");
    d[0].fields[2] = ws("idle");
    d[1] = (struct wp_series_def){.id = (uint32_t)MAX_U32,
                                  .group = ws(longgroup),
                                  .inst = ws(longinst),
                                  .nfields = WP_SERIES_MAX_FIELDS,
                                  .type = WP_DS_COUNTER,
                                  .step_s = 86400};
    for (int k = 0; k < WP_SERIES_MAX_FIELDS; k++) {
        d[1].fields[k] = ws(names[k]);
    }
    d[2] = (struct wp_series_def){.id = 0,
                                  .group = ws("disk"),
                                  .inst = ws("/var/lib"),
                                  .nfields = 1,
                                  .type = WP_DS_DERIVE,
                                  .step_s = 1};
    d[2].fields[0] = ws("read_bytes");
    d[3] = (struct wp_series_def){.id = 70000,
                                  .group = ws("net"),
                                  .inst = ws("eth0"),
                                  .nfields = 2,
                                  .type = WP_DS_ABSOLUTE,
                                  .step_s = 60};
    d[3].fields[0] = ws("rx");
    d[3].fields[1] = ws("tx");

    wp_buf_init(&b);
    wp_msg_init(&m);
    wp_put_defs(&b, d, 4);
    assert_int_equal(decode_frame(&b, &m), 0);
    assert_int_equal(m.type, WP_MSG_DEFS);
    assert_int_equal(m.u.defs.series->size, 4);
    for (uint32_t i = 0; i < 4; i++) {
        memset(&got, 0xa5, sizeof(got));
        assert_int_equal(wp_defs_get(&m, i, &got), 0);
        assert_int_equal(got.id, d[i].id);
        assert_int_equal(got.type, d[i].type);
        assert_int_equal(got.step_s, d[i].step_s);
        assert_int_equal(got.nfields, d[i].nfields);
        assert_int_equal(got.group.len, d[i].group.len);
        assert_memory_equal(got.group.p, d[i].group.p, got.group.len);
        assert_int_equal(got.inst.len, d[i].inst.len);
        if (got.inst.len > 0) {
            assert_memory_equal(got.inst.p, d[i].inst.p, got.inst.len);
        }
        for (uint32_t k = 0; k < got.nfields; k++) {
            assert_int_equal(got.fields[k].len, d[i].fields[k].len);
            assert_memory_equal(got.fields[k].p, d[i].fields[k].p, got.fields[k].len);
        }
    }
    assert_int_equal(wp_defs_get(&m, 4, &got), WP_EPROTO);
    assert_int_equal(wp_defs_get(&m, UINT32_MAX, &got), WP_EPROTO);
    wp_msg_cleanup(&m);

    /* an empty dictionary is valid */
    wp_buf_reset(&b);
    wp_put_defs(&b, NULL, 0);
    assert_int_equal(decode_frame(&b, &m), 0);
    assert_int_equal(m.u.defs.series->size, 0);
    assert_int_equal(wp_defs_get(&m, 0, &got), WP_EPROTO);
    wp_msg_cleanup(&m);
    wp_buf_cleanup(&b);
}

struct row {
    uint32_t id;
    int64_t ts;
    uint32_t n;
    double v[6];
    msgpack_object_type t[6]; /* the encoding each value must use */
};

static void batch_round_trip(void **state)
{
    const float f32 = 0.1f;
    const struct row rows[] = {
        {1,
         TS0,
         6,
         {0, 1, 127, 128, 65535, 4294967296.0},
         {MSGPACK_OBJECT_POSITIVE_INTEGER, MSGPACK_OBJECT_POSITIVE_INTEGER,
          MSGPACK_OBJECT_POSITIVE_INTEGER, MSGPACK_OBJECT_POSITIVE_INTEGER,
          MSGPACK_OBJECT_POSITIVE_INTEGER, MSGPACK_OBJECT_POSITIVE_INTEGER}},
        {2,
         TS0 + 10000,
         5,
         {-1, -32, -33, -2147483649.0, -9007199254740991.0},
         {MSGPACK_OBJECT_NEGATIVE_INTEGER, MSGPACK_OBJECT_NEGATIVE_INTEGER,
          MSGPACK_OBJECT_NEGATIVE_INTEGER, MSGPACK_OBJECT_NEGATIVE_INTEGER,
          MSGPACK_OBJECT_NEGATIVE_INTEGER}},
        /* integral past 2^53 but exact in float32 (2^60, FLT_MAX) goes as float32 too */
        {3,
         TS0 - 5000,
         5,
         {0.5, -2.25, (double)f32, 1152921504606846976.0, (double)FLT_MAX},
         {MSGPACK_OBJECT_FLOAT32, MSGPACK_OBJECT_FLOAT32, MSGPACK_OBJECT_FLOAT32,
          MSGPACK_OBJECT_FLOAT32, MSGPACK_OBJECT_FLOAT32}},
        {4,
         TS0 + 1,
         5,
         {0.1, 3.141592653589793, -1e-300, 1e300, 123456789.123},
         {MSGPACK_OBJECT_FLOAT64, MSGPACK_OBJECT_FLOAT64, MSGPACK_OBJECT_FLOAT64,
          MSGPACK_OBJECT_FLOAT64, MSGPACK_OBJECT_FLOAT64}},
        {(uint32_t)MAX_U32,
         TS0 + 400 * DAY_MS - 1,
         3,
         {NAN, 7, -NAN},
         {MSGPACK_OBJECT_NIL, MSGPACK_OBJECT_POSITIVE_INTEGER, MSGPACK_OBJECT_NIL}},
    };
    const size_t nrows = sizeof(rows) / sizeof(rows[0]);
    struct wp_batch_enc e;
    struct wp_buf tail;
    struct wp_buf b;
    struct wp_msg m;
    struct wp_rec r;

    (void)state;
    wp_batch_enc_init(&e, TS0);
    wp_buf_init(&tail);
    wp_buf_init(&b);
    wp_msg_init(&m);
    wp_batch_enc_heartbeat(&e, TS0 - 1);
    for (size_t i = 0; i < nrows; i++) {
        wp_batch_enc_metric(&e, rows[i].id, rows[i].ts, rows[i].v, rows[i].n);
    }
    wp_batch_enc_heartbeat(&e, TS0 + 60000);
    assert_int_equal(e.nrecs, nrows + 2);
    assert_int_equal(e.nvals, 24);
    wp_batch_enc_finish(&e, &tail);
    wp_put_batch(&b, 42, wp_buf_head(&tail), wp_buf_unread(&tail));

    assert_int_equal(decode_frame(&b, &m), 0);
    assert_int_equal(m.type, WP_MSG_BATCH);
    assert_true(m.u.batch.seq == 42);
    assert_true(m.u.batch.ts_ms == TS0);
    assert_int_equal(m.u.batch.recs->size, nrows + 2);

    assert_int_equal(wp_batch_rec(&m, 0, &r), 0);
    assert_int_equal(r.kind, WP_REC_HEARTBEAT);
    assert_true(r.ts_ms == TS0 - 1);
    for (size_t i = 0; i < nrows; i++) {
        memset(&r, 0xa5, sizeof(r));
        assert_int_equal(wp_batch_rec(&m, (uint32_t)i + 1, &r), 0);
        assert_int_equal(r.kind, WP_REC_METRIC);
        assert_int_equal(r.id, rows[i].id);
        assert_true(r.ts_ms == rows[i].ts);
        assert_int_equal(r.nvals, rows[i].n);
        for (uint32_t k = 0; k < r.nvals; k++) {
            double want = rows[i].v[k];
            double got = wp_val(&r.vals[k]);
            if (r.vals[k].type != rows[i].t[k]) {
                fail_msg("row %zu value %u: type %d, want %d", i, k, r.vals[k].type, rows[i].t[k]);
            }
            if (isnan(want)) {
                assert_true(isnan(got));
            } else if (got != want) {
                fail_msg("row %zu value %u: %.17g, want %.17g", i, k, got, want);
            }
        }
    }
    assert_int_equal(wp_batch_rec(&m, (uint32_t)nrows + 1, &r), 0);
    assert_int_equal(r.kind, WP_REC_HEARTBEAT);
    assert_true(r.ts_ms == TS0 + 60000);
    assert_int_equal(wp_batch_rec(&m, (uint32_t)nrows + 2, &r), WP_EPROTO);
    assert_int_equal(wp_batch_rec(&m, UINT32_MAX, &r), WP_EPROTO);
    assert_string_equal(wp_msg_name(m.type), "batch");
    wp_msg_cleanup(&m);

    /* reset: the encoder is reused with nothing left from the last batch */
    wp_batch_enc_reset(&e, TS0 + 1000);
    wp_buf_reset(&tail);
    wp_buf_reset(&b);
    wp_batch_enc_finish(&e, &tail);
    wp_put_batch(&b, 43, wp_buf_head(&tail), wp_buf_unread(&tail));
    assert_int_equal(decode_frame(&b, &m), 0);
    assert_true(m.u.batch.ts_ms == TS0 + 1000);
    assert_int_equal(m.u.batch.recs->size, 0);
    assert_int_equal(wp_batch_rec(&m, 0, &r), WP_EPROTO);
    wp_msg_cleanup(&m);

    wp_buf_cleanup(&b);
    wp_buf_cleanup(&tail);
    wp_batch_enc_cleanup(&e);
}

/* The spool keeps tails; one tail must make a valid batch with any seq. */
static void batch_tail_with_any_seq(void **state)
{
    const uint64_t seqs[] = {1, 1ull << 40, UINT64_MAX};
    const double v[2] = {1.5, 300};
    struct wp_batch_enc e;
    struct wp_buf tail;
    struct wp_buf b;
    struct wp_msg m;
    struct wp_rec r;

    (void)state;
    wp_batch_enc_init(&e, TS0);
    wp_buf_init(&tail);
    wp_buf_init(&b);
    wp_msg_init(&m);
    wp_batch_enc_metric(&e, 9, TS0 + 250, v, 2);
    wp_batch_enc_heartbeat(&e, TS0);
    wp_batch_enc_finish(&e, &tail);
    wp_batch_enc_cleanup(&e); /* the tail stands alone */

    uint8_t *copy = malloc(wp_buf_unread(&tail));
    assert_non_null(copy);
    memcpy(copy, wp_buf_head(&tail), wp_buf_unread(&tail));
    /* all frames into one buffer, as a sender queues them */
    for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
        wp_put_batch(&b, seqs[i], wp_buf_head(&tail), wp_buf_unread(&tail));
    }
    assert_memory_equal(copy, wp_buf_head(&tail), wp_buf_unread(&tail));
    free(copy);

    size_t off = 0;
    for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
        size_t flen = 0;
        assert_int_equal(decode_frame_at(wp_buf_head(&b) + off, wp_buf_unread(&b) - off, &m, &flen),
                         0);
        off += flen;
        assert_int_equal(m.type, WP_MSG_BATCH);
        assert_true(m.u.batch.seq == seqs[i]);
        assert_true(m.u.batch.ts_ms == TS0);
        assert_int_equal(m.u.batch.recs->size, 2);
        assert_int_equal(wp_batch_rec(&m, 0, &r), 0);
        assert_int_equal(r.id, 9);
        assert_true(r.ts_ms == TS0 + 250);
        assert_int_equal(r.nvals, 2);
        assert_true(wp_val(&r.vals[0]) == 1.5);
        assert_true(wp_val(&r.vals[1]) == 300);
        assert_int_equal(wp_batch_rec(&m, 1, &r), 0);
        assert_int_equal(r.kind, WP_REC_HEARTBEAT);
        wp_msg_cleanup(&m);
    }
    assert_int_equal(off, wp_buf_unread(&b));
    wp_buf_cleanup(&b);
    wp_buf_cleanup(&tail);
}

/* A fresh encoder with no records makes a valid empty batch. Before the fix,
 * wp_batch_enc_finish() took wp_buf_head() of the never-allocated record buffer, NULL + 0,
 * which clang's UBSan stops on (found by fuzz_frame). */
static void batch_empty_encoder(void **state)
{
    struct wp_batch_enc e;
    struct wp_buf tail;
    struct wp_buf b;
    struct wp_msg m;

    (void)state;
    wp_batch_enc_init(&e, TS0);
    wp_buf_init(&tail);
    wp_buf_init(&b);
    wp_msg_init(&m);
    wp_batch_enc_finish(&e, &tail);
    wp_put_batch(&b, 1, wp_buf_head(&tail), wp_buf_unread(&tail));
    assert_int_equal(decode_frame(&b, &m), 0);
    assert_int_equal(m.type, WP_MSG_BATCH);
    assert_true(m.u.batch.ts_ms == TS0);
    assert_int_equal(m.u.batch.recs->size, 0);
    wp_msg_cleanup(&m);
    wp_buf_cleanup(&b);
    wp_buf_cleanup(&tail);
    wp_batch_enc_cleanup(&e);
}

/* A batch of 100 rows of 5 small integers must cost well under 15 bytes per value. */
static void batch_is_compact(void **state)
{
    struct wp_batch_enc e;
    struct wp_buf tail;
    struct wp_buf b;
    double v[5];

    (void)state;
    wp_batch_enc_init(&e, TS0);
    wp_buf_init(&tail);
    wp_buf_init(&b);
    for (int row = 0; row < 100; row++) {
        for (int k = 0; k < 5; k++) {
            v[k] = (row * 37 + k * 11) % 1000; /* 0..999 */
        }
        wp_batch_enc_metric(&e, (uint32_t)(row % 20), TS0 + row * 10000, v, 5);
    }
    wp_batch_enc_finish(&e, &tail);
    wp_put_batch(&b, 123456, wp_buf_head(&tail), wp_buf_unread(&tail));
    double per = (double)wp_buf_unread(&b) / 500.0;
    print_message("batch of 100 rows x 5 values: %zu bytes, %.2f bytes/value\n", wp_buf_unread(&b),
                  per);
    assert_true(per < 15.0);
    wp_buf_cleanup(&b);
    wp_buf_cleanup(&tail);
    wp_batch_enc_cleanup(&e);
}

/* A reader's loop over a stream of mixed frames. */
static void stream_of_frames(void **state)
{
    const enum wp_msg_type want[] = {WP_MSG_HELLO, WP_MSG_DEFS,    WP_MSG_BATCH,
                                     WP_MSG_ACK,   WP_MSG_WELCOME, WP_MSG_ERROR};
    struct wp_batch_enc e;
    struct wp_buf tail;
    struct wp_buf b;
    struct wp_msg m;
    struct wp_series_def d;

    (void)state;
    memset(&d, 0, sizeof(d));
    d = (struct wp_series_def){.id = 1,
                               .group = ws("mem"),
                               .inst = ws(""),
                               .nfields = 1,
                               .type = WP_DS_GAUGE,
                               .step_s = 5};
    d.fields[0] = ws("used");
    wp_batch_enc_init(&e, TS0);
    wp_buf_init(&tail);
    wp_buf_init(&b);
    wp_msg_init(&m);
    wp_batch_enc_heartbeat(&e, TS0);
    wp_batch_enc_finish(&e, &tail);
    wp_put_hello(&b, "a", "h", "v", NULL, 0);
    wp_put_defs(&b, &d, 1);
    wp_put_batch(&b, 1, wp_buf_head(&tail), wp_buf_unread(&tail));
    wp_put_ack(&b, 1);
    wp_put_welcome(&b, 1);
    wp_put_error(&b, "bye");

    size_t off = 0;
    size_t i = 0;
    while (off < wp_buf_unread(&b)) {
        size_t flen = 0;
        assert_true(i < sizeof(want) / sizeof(want[0]));
        /* a decode into a message still holding the last one must not leak */
        assert_int_equal(decode_frame_at(wp_buf_head(&b) + off, wp_buf_unread(&b) - off, &m, &flen),
                         0);
        assert_int_equal(m.type, want[i]);
        assert_string_not_equal(wp_msg_name(m.type), "?");
        off += flen;
        i++;
    }
    assert_int_equal(i, sizeof(want) / sizeof(want[0]));
    wp_msg_cleanup(&m);
    wp_buf_cleanup(&b);
    wp_buf_cleanup(&tail);
    wp_batch_enc_cleanup(&e);
}

static void small_helpers(void **state)
{
    msgpack_object o;

    (void)state;
    assert_true(wp_str_eq(ws("abc"), "abc"));
    assert_false(wp_str_eq(ws("abc"), "ab"));
    assert_false(wp_str_eq(ws("ab"), "abc"));
    assert_true(wp_str_eq(ws(""), ""));
    struct wp_str part = {"hello world", 5};
    char *s = wp_str_dup(part);
    assert_string_equal(s, "hello");
    free(s);
    assert_string_equal(wp_msg_name(WP_MSG_HELLO), "hello");
    assert_string_equal(wp_msg_name(WP_MSG_WELCOME), "welcome");
    assert_string_equal(wp_msg_name(WP_MSG_DEFS), "defs");
    assert_string_equal(wp_msg_name(WP_MSG_ACK), "ack");
    assert_string_equal(wp_msg_name((enum wp_msg_type)0), "?");
    assert_string_equal(wp_msg_name((enum wp_msg_type)99), "?");
    o.type = MSGPACK_OBJECT_NIL;
    assert_true(isnan(wp_val(&o)));
    o.type = MSGPACK_OBJECT_STR;
    assert_true(isnan(wp_val(&o)));
    o.type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
    o.via.i64 = -7;
    assert_true(wp_val(&o) == -7.0);
    o.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    o.via.u64 = UINT64_MAX;
    assert_true(wp_val(&o) == 18446744073709551616.0);
}

/* ---- frame header ----------------------------------------------------------------------- */

static void frame_header_limits(void **state)
{
    const uint8_t zero[4] = {0, 0, 0, 0};
    const uint8_t one[4] = {0, 0, 0, 1};
    const uint8_t max[4] = {0x00, 0x40, 0x00, 0x00};  /* 4 MiB */
    const uint8_t over[4] = {0x00, 0x40, 0x00, 0x01}; /* 4 MiB + 1 */
    const uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};
    const uint8_t sign[4] = {0x80, 0x00, 0x00, 0x00};
    uint32_t len = 77;

    (void)state;
    for (size_t n = 0; n < WP_FRAME_HDR; n++) {
        assert_int_equal(wp_frame_peek(max, n, WP_FRAME_MAX_DEFAULT, &len), WP_EAGAIN);
    }
    assert_int_equal(len, 77);
    assert_int_equal(wp_frame_peek(zero, 4, WP_FRAME_MAX_DEFAULT, &len), WP_EPROTO);
    assert_int_equal(wp_frame_peek(over, 4, WP_FRAME_MAX_DEFAULT, &len), WP_ETOOBIG);
    assert_int_equal(wp_frame_peek(huge, 4, WP_FRAME_MAX_DEFAULT, &len), WP_ETOOBIG);
    assert_int_equal(wp_frame_peek(sign, 4, WP_FRAME_MAX_DEFAULT, &len), WP_ETOOBIG);
    assert_int_equal(wp_frame_peek(one, 4, 0, &len), WP_ETOOBIG);
    assert_int_equal(len, 77);
    assert_int_equal(wp_frame_peek(max, 4, WP_FRAME_MAX_DEFAULT, &len), 0);
    assert_int_equal(len, WP_FRAME_MAX_DEFAULT);
    assert_int_equal(wp_frame_peek(one, 4, 1, &len), 0);
    assert_int_equal(len, 1);
    assert_int_equal(wp_frame_peek(huge, 4, UINT32_MAX, &len), 0);
    assert_int_equal(len, UINT32_MAX);
}

/* ---- malformed bodies ------------------------------------------------------------------- */

static void body_not_a_map(void **state)
{
    static const struct {
        const char *name;
        uint8_t b[8];
        size_t n;
        int rc;
    } cases[] = {
        {"array", {0x92, 0x01, 0x02}, 3, WP_EPROTO},
        {"empty array", {0x90}, 1, WP_EPROTO},
        {"string", {0xa3, 'm', 'a', 'p'}, 4, WP_EPROTO},
        {"int", {0x05}, 1, WP_EPROTO},
        {"negative int", {0xd0, 0x80}, 2, WP_EPROTO},
        {"nil", {0xc0}, 1, WP_EPROTO},
        {"true", {0xc3}, 1, WP_EPROTO},
        {"float", {0xca, 0x3f, 0x80, 0x00, 0x00}, 5, WP_EPROTO},
        {"bin", {0xc4, 0x01, 0x00}, 3, WP_EPROTO},
        {"fixext", {0xd4, 0x01, 0x00}, 3, WP_EPROTO},
        {"never used 0xc1", {0xc1}, 1, WP_EPROTO},
        {"empty map", {0x80}, 1, WP_EPROTO},
        {"map of nils", {0x81, 0xc0, 0xc0}, 3, WP_EPROTO},
        {"zero bytes", {0}, 0, WP_ETRUNC},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = decode_bytes(cases[i].b, cases[i].n);
        if (rc != cases[i].rc) {
            fail_msg("case \"%s\": got %d, want %d", cases[i].name, rc, cases[i].rc);
        }
    }
    assert_int_equal(decode_bytes(NULL, 0), WP_ETRUNC);
}

/* Every valid frame type, for the truncation and trailing-bytes tests. */
static void all_frames(struct wp_buf *out, size_t *ends, size_t *n)
{
    const char *const labels[] = {"env", "prod", NULL};
    const double v[4] = {1, -2.5, NAN, 0.1};
    struct wp_series_def d;
    struct wp_batch_enc e;
    struct wp_buf tail;

    memset(&d, 0, sizeof(d));
    d = (struct wp_series_def){.id = 3,
                               .group = ws("cpu"),
                               .inst = ws("0"),
                               .nfields = 2,
                               .type = WP_DS_GAUGE,
                               .step_s = 10};
    d.fields[0] = ws("user");
    d.fields[1] = ws("sys");
    wp_batch_enc_init(&e, TS0);
    wp_buf_init(&tail);
    wp_batch_enc_metric(&e, 3, TS0 + 1, v, 4);
    wp_batch_enc_heartbeat(&e, TS0);
    wp_batch_enc_finish(&e, &tail);
    *n = 0;
    wp_put_hello(out, "web-01", "web", "0.1.0", labels, 99);
    ends[(*n)++] = out->len;
    wp_put_welcome(out, 5);
    ends[(*n)++] = out->len;
    wp_put_ack(out, 6);
    ends[(*n)++] = out->len;
    wp_put_error(out, "no");
    ends[(*n)++] = out->len;
    wp_put_defs(out, &d, 1);
    ends[(*n)++] = out->len;
    wp_put_batch(out, 7, wp_buf_head(&tail), wp_buf_unread(&tail));
    ends[(*n)++] = out->len;
    wp_buf_cleanup(&tail);
    wp_batch_enc_cleanup(&e);
}

/* Every proper prefix of a valid body is refused as truncated; every prefix of a frame
 * is either "need more" at the header or a length beyond the bytes at hand. */
static void truncated_at_every_byte(void **state)
{
    struct wp_buf b;
    size_t ends[8];
    size_t n = 0;
    size_t start = 0;

    (void)state;
    wp_buf_init(&b);
    all_frames(&b, ends, &n);
    for (size_t f = 0; f < n; f++) {
        const uint8_t *frame = b.data + start;
        size_t flen = ends[f] - start;
        size_t blen = flen - WP_FRAME_HDR;
        uint32_t len = 0;

        assert_int_equal(decode_bytes(frame + WP_FRAME_HDR, blen), 0);
        for (size_t k = 0; k < blen; k++) {
            /* an exact-size copy, so that ASan sees any read past the prefix */
            uint8_t *p = malloc(k ? k : 1);
            assert_non_null(p);
            memcpy(p, frame + WP_FRAME_HDR, k);
            int rc = decode_bytes(p, k);
            free(p);
            if (rc != WP_ETRUNC) {
                fail_msg("frame %zu cut at %zu of %zu: got %d, want WP_ETRUNC", f, k, blen, rc);
            }
        }
        for (size_t k = 0; k < flen; k++) {
            int rc = wp_frame_peek(frame, k, WP_FRAME_MAX_DEFAULT, &len);
            if (k < WP_FRAME_HDR) {
                assert_int_equal(rc, WP_EAGAIN);
            } else {
                assert_int_equal(rc, 0);
                assert_true(len > k - WP_FRAME_HDR);
            }
        }
        start = ends[f];
    }
    wp_buf_cleanup(&b);
}

static void trailing_bytes_refused(void **state)
{
    struct wp_buf b;
    struct wp_buf body;
    size_t ends[8];
    size_t n = 0;
    size_t start = 0;
    const uint8_t junk[] = {0xc0, 0x00, 0xff, 0x80};

    (void)state;
    wp_buf_init(&b);
    wp_buf_init(&body);
    all_frames(&b, ends, &n);
    for (size_t f = 0; f < n; f++) {
        const uint8_t *p = b.data + start + WP_FRAME_HDR;
        size_t blen = ends[f] - start - WP_FRAME_HDR;
        for (size_t j = 0; j < sizeof(junk); j++) {
            wp_buf_reset(&body);
            wp_buf_append(&body, p, blen);
            wp_buf_append(&body, &junk[j], 1);
            assert_int_equal(decode_bytes(wp_buf_head(&body), wp_buf_unread(&body)), WP_EPROTO);
        }
        /* two whole maps in one frame */
        wp_buf_reset(&body);
        wp_buf_append(&body, p, blen);
        wp_buf_append(&body, p, blen);
        assert_int_equal(decode_bytes(wp_buf_head(&body), wp_buf_unread(&body)), WP_EPROTO);
        start = ends[f];
    }
    wp_buf_cleanup(&body);
    wp_buf_cleanup(&b);
}

/* Containers and strings claiming more than the body holds fail in the pre-scan, with
 * WP_ETRUNC, before msgpack-c would allocate for the claimed count (msgpack-c itself
 * never returns WP_ETRUNC). ASan builds also count the allocations. */
static void huge_counts_fail_fast(void **state)
{
    static const struct {
        const char *name;
        uint8_t b[40];
        size_t n;
    } cases[] = {
        {"array32 2^32-1", {0xdd, 0xff, 0xff, 0xff, 0xff}, 5},
        {"map32 2^32-1", {0xdf, 0xff, 0xff, 0xff, 0xff}, 5},
        {"array16 65535", {0xdc, 0xff, 0xff, 0xc0, 0xc0}, 5},
        {"map16 65535", {0xde, 0xff, 0xff, 0xc0, 0xc0}, 5},
        {"fixmap 15 with 3 pairs", {0x8f, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0}, 7},
        {"str32 2^32-1", {0x81, 0xdb, 0xff, 0xff, 0xff, 0xff, 'a'}, 7},
        {"bin32 2^32-1", {0x81, 0xc6, 0xff, 0xff, 0xff, 0xff, 'a'}, 7},
        {"ext32 2^32-1", {0x81, 0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 'a'}, 8},
        {"array32 missing count bytes", {0xdd, 0xff, 0xff}, 3},
        {"batch recs array32 2^32-1",
         {0x84, 0xa1, 't',  0xa5, 'b', 'a', 't', 'c', 'h',  0xa3, 's',  'e',  'q',  0x01, 0xa2,
          't',  's',  0x01, 0xa4, 'r', 'e', 'c', 's', 0xdd, 0xff, 0xff, 0xff, 0xff, 0x90},
         29},
        {"batch recs map32 in a record",
         {0x84, 0xa1, 't',  0xa5, 'b', 'a', 't', 'c', 'h',  0xa3, 's',  'e',  'q',  0x01, 0xa2,
          't',  's',  0x01, 0xa4, 'r', 'e', 'c', 's', 0x91, 0xdf, 0x7f, 0xff, 0xff, 0xff, 0x90},
         30},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct wp_msg m;
        wp_msg_init(&m);
        alloc_count = 0;
        alloc_counting = 1;
        int rc = wp_msg_decode(&m, cases[i].b, cases[i].n);
        alloc_counting = 0;
        wp_msg_cleanup(&m);
        if (rc != WP_ETRUNC) {
            fail_msg("case \"%s\": got %d, want WP_ETRUNC", cases[i].name, rc);
        }
        if (alloc_count != 0) {
            fail_msg("case \"%s\": %zu allocations while decoding", cases[i].name,
                     (size_t)alloc_count);
        }
    }
#ifdef HAVE_ASAN_HOOKS
    /* the counter works: a valid body does allocate (msgpack-c's zone) */
    const uint8_t ack[] = {0x82, 0xa1, 't', 0xa3, 'a', 'c', 'k', 0xa3, 's', 'e', 'q', 0x01};
    struct wp_msg m;
    wp_msg_init(&m);
    alloc_count = 0;
    alloc_counting = 1;
    assert_int_equal(wp_msg_decode(&m, ack, sizeof(ack)), 0);
    alloc_counting = 0;
    wp_msg_cleanup(&m);
    assert_true(alloc_count > 0);
#else
    print_message("allocation counting needs ASan; checked the error codes only\n");
#endif
}

/* {t: ack, seq: 1, x: <depth nested containers>} */
static int decode_nested(size_t depth, uint8_t open, uint8_t leaf)
{
    struct body x;
    body_init(&x);
    msgpack_pack_map(&x.pk, 3);
    pk_s(&x.pk, "t");
    pk_s(&x.pk, "ack");
    pk_s(&x.pk, "seq");
    msgpack_pack_uint64(&x.pk, 1);
    pk_s(&x.pk, "x");
    for (size_t i = 0; i < depth; i++) {
        wp_buf_append(&x.b, &open, 1);
        if (open == 0x81) {
            wp_buf_append(&x.b, "\xc0", 1); /* key nil, the value is the next level */
        }
    }
    wp_buf_append(&x.b, &leaf, 1);
    int rc = decode_bytes(wp_buf_head(&x.b), wp_buf_unread(&x.b));
    wp_buf_cleanup(&x.b);
    return rc;
}

static void deep_nesting_refused(void **state)
{
    (void)state;
    assert_int_equal(decode_nested(8, 0x91, 0xc0), 0);
    assert_int_equal(decode_nested(8, 0x81, 0xc0), 0);
    assert_int_equal(decode_nested(8, 0x91, 0x90), 0);
    /* 20 is within msgpack-c's own stack (32) and refused by the codec's limit */
    assert_int_equal(decode_nested(20, 0x91, 0xc0), WP_EPROTO);
    assert_int_equal(decode_nested(20, 0x81, 0xc0), WP_EPROTO);
    assert_int_equal(decode_nested(40, 0x91, 0xc0), WP_EPROTO);
    assert_int_equal(decode_nested(40, 0x81, 0xc0), WP_EPROTO);
    assert_int_equal(decode_nested(40, 0x91, 0x90), WP_EPROTO);
    /* far past any stack: must be refused, not recursed into */
    assert_int_equal(decode_nested(200000, 0x91, 0xc0), WP_EPROTO);
}

/* Unknown keys are ignored whatever their type: the pre-scan must size every msgpack
 * format exactly, or "t" and "seq" after them would not be found. */
static void every_msgpack_type_skipped(void **state)
{
    static const uint8_t raw[][8] = {
        {0xdc, 0x00, 0x01, 0xc0},             /* array16 [nil] */
        {0xdd, 0x00, 0x00, 0x00, 0x01, 0xc2}, /* array32 [false] */
        {0xde, 0x00, 0x01, 0xc0, 0xc3},       /* map16 {nil: true} */
        {0xdf, 0x00, 0x00, 0x00, 0x00},       /* map32 {} */
    };
    static const size_t raw_len[] = {4, 6, 5, 5};
    static const size_t ext_len[] = {1, 2, 4, 8, 16, 0, 3, 255, 256, 65535, 65536};
    static const size_t str_len[] = {0, 31, 32, 255, 256, 65535, 65536};
    char *blob = calloc(1, 65536);
    struct body x;
    uint32_t n = 0;

    (void)state;
    assert_non_null(blob);
    body_init(&x);
    /* the map count goes into a map32 header, patched at the end */
    const uint8_t map32[5] = {0xdf, 0, 0, 0, 0};
    wp_buf_append(&x.b, map32, sizeof(map32));
    for (size_t i = 0; i < sizeof(ext_len) / sizeof(ext_len[0]); i++) {
        msgpack_pack_uint32(&x.pk, n++);
        msgpack_pack_ext(&x.pk, ext_len[i], 7);
        msgpack_pack_ext_body(&x.pk, blob, ext_len[i]);
    }
    for (size_t i = 0; i < sizeof(str_len) / sizeof(str_len[0]); i++) {
        msgpack_pack_uint32(&x.pk, n++);
        msgpack_pack_str(&x.pk, str_len[i]);
        msgpack_pack_str_body(&x.pk, blob, str_len[i]);
        msgpack_pack_uint32(&x.pk, n++);
        msgpack_pack_bin(&x.pk, str_len[i]);
        msgpack_pack_bin_body(&x.pk, blob, str_len[i]);
    }
    for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
        msgpack_pack_uint32(&x.pk, n++);
        wp_buf_append(&x.b, raw[i], raw_len[i]);
    }
    msgpack_pack_uint32(&x.pk, n++);
    msgpack_pack_fix_uint8(&x.pk, 200);
    msgpack_pack_uint32(&x.pk, n++);
    msgpack_pack_fix_uint16(&x.pk, 60000);
    msgpack_pack_uint32(&x.pk, n++);
    msgpack_pack_fix_uint32(&x.pk, 4000000000u);
    msgpack_pack_uint32(&x.pk, n++);
    msgpack_pack_fix_uint64(&x.pk, UINT64_MAX);
    msgpack_pack_uint32(&x.pk, n++);
    msgpack_pack_fix_int8(&x.pk, -100);
    msgpack_pack_uint32(&x.pk, n++);
    msgpack_pack_fix_int16(&x.pk, -30000);
    msgpack_pack_uint32(&x.pk, n++);
    msgpack_pack_fix_int32(&x.pk, INT32_MIN);
    msgpack_pack_uint32(&x.pk, n++);
    msgpack_pack_fix_int64(&x.pk, INT64_MIN);
    msgpack_pack_uint32(&x.pk, n++);
    msgpack_pack_float(&x.pk, 1.5f);
    msgpack_pack_uint32(&x.pk, n++);
    msgpack_pack_double(&x.pk, -0.25);
    msgpack_pack_int64(&x.pk, -7); /* a negative fixint key */
    msgpack_pack_false(&x.pk);
    n++;
    pk_s(&x.pk, "t");
    pk_s(&x.pk, "ack");
    pk_s(&x.pk, "seq");
    msgpack_pack_uint64(&x.pk, 77);
    n += 2;
    x.b.data[1] = (uint8_t)(n >> 24);
    x.b.data[2] = (uint8_t)(n >> 16);
    x.b.data[3] = (uint8_t)(n >> 8);
    x.b.data[4] = (uint8_t)n;

    struct wp_msg m;
    wp_msg_init(&m);
    assert_int_equal(wp_msg_decode(&m, wp_buf_head(&x.b), wp_buf_unread(&x.b)), 0);
    assert_int_equal(m.type, WP_MSG_ACK);
    assert_true(m.u.ack.seq == 77);
    assert_int_equal(m.up.data.via.map.size, n);
    wp_msg_cleanup(&m);
    /* and every proper prefix is truncated */
    for (size_t k = 0; k < wp_buf_unread(&x.b); k += 1 + k / 64) {
        assert_int_equal(decode_bytes(wp_buf_head(&x.b), k), WP_ETRUNC);
    }
    wp_buf_cleanup(&x.b);
    free(blob);
}

/* ---- records ---------------------------------------------------------------------------- */

static void r_pack_vals(msgpack_packer *pk, uint32_t kind, uint32_t n)
{
    msgpack_pack_array(pk, 3 + n);
    msgpack_pack_uint32(pk, kind);
    msgpack_pack_uint32(pk, 1);
    msgpack_pack_int64(pk, 0);
    for (uint32_t i = 0; i < n; i++) {
        msgpack_pack_uint32(pk, i);
    }
}

/* a metric [0, 1, dts, 1] */
static void r_metric_dts(msgpack_packer *pk, int64_t dts)
{
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_int64(pk, dts);
    msgpack_pack_uint8(pk, 1);
}

static void r_ok(msgpack_packer *pk)
{
    r_pack_vals(pk, 0, 1);
}
static void r_ok32(msgpack_packer *pk)
{
    r_pack_vals(pk, 0, 32);
}
static void r_vals33(msgpack_packer *pk)
{
    r_pack_vals(pk, 0, 33);
}
static void r_kind7(msgpack_packer *pk)
{
    r_pack_vals(pk, 7, 1);
}
static void r_kind2(msgpack_packer *pk)
{
    r_pack_vals(pk, 2, 1);
}
static void r_dts_i64max(msgpack_packer *pk)
{
    r_metric_dts(pk, INT64_MAX);
}
static void r_dts_i64min(msgpack_packer *pk)
{
    r_metric_dts(pk, INT64_MIN);
}
/* ts + dts would pass INT64_MAX with the batch ts of 1000 */
static void r_dts_overflow(msgpack_packer *pk)
{
    r_metric_dts(pk, INT64_MAX - 999);
}
static void r_dts_year(msgpack_packer *pk)
{
    r_metric_dts(pk, 365 * DAY_MS);
}
static void r_dts_back(msgpack_packer *pk)
{
    r_metric_dts(pk, -365 * DAY_MS);
}
static void r_dts_far(msgpack_packer *pk)
{
    r_metric_dts(pk, 4000 * DAY_MS);
}
static void r_dts_far_back(msgpack_packer *pk)
{
    r_metric_dts(pk, -4000 * DAY_MS);
}

static void r_dts_u64max(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_uint64(pk, UINT64_MAX);
    msgpack_pack_uint8(pk, 1);
}

static void r_dts_float(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_double(pk, 1.0);
    msgpack_pack_uint8(pk, 1);
}

static void r_hb_dts_max(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_int64(pk, INT64_MAX);
}

static void r_hb_dts_str(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint8(pk, 1);
    pk_s(pk, "0");
}

static void r_hb_extra(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_int64(pk, -5);
    msgpack_pack_nil(pk);
}

/* a metric whose one value is packed by fn */
static void r_val(msgpack_packer *pk, pack_fn fn)
{
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_uint8(pk, 0);
    fn(pk);
}

static void r_val_str(msgpack_packer *pk)
{
    r_val(pk, v_x);
}
static void r_val_true(msgpack_packer *pk)
{
    r_val(pk, v_true);
}
static void r_val_arr(msgpack_packer *pk)
{
    r_val(pk, v_arr);
}
static void r_val_map(msgpack_packer *pk)
{
    r_val(pk, v_map);
}
static void r_val_bin(msgpack_packer *pk)
{
    r_val(pk, v_bin);
}
static void r_val_nil(msgpack_packer *pk)
{
    r_val(pk, v_nil);
}
static void r_val_neg(msgpack_packer *pk)
{
    r_val(pk, v_neg);
}
static void r_val_f32(msgpack_packer *pk)
{
    r_val(pk, v_float32);
}

/* a record with the given elements */
static void r_elems(msgpack_packer *pk, size_t n, pack_fn a, pack_fn b, pack_fn c, pack_fn d)
{
    const pack_fn fns[4] = {a, b, c, d};
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++) {
        fns[i](pk);
    }
}

static void r_empty(msgpack_packer *pk)
{
    r_elems(pk, 0, NULL, NULL, NULL, NULL);
}
static void r_just0(msgpack_packer *pk)
{
    r_elems(pk, 1, v_zero, NULL, NULL, NULL);
}
static void r_just1(msgpack_packer *pk)
{
    r_elems(pk, 1, v_one, NULL, NULL, NULL);
}
static void r_metric_noval(msgpack_packer *pk)
{
    r_elems(pk, 3, v_zero, v_one, v_zero, NULL);
}
static void r_metric_2(msgpack_packer *pk)
{
    r_elems(pk, 2, v_zero, v_one, NULL, NULL);
}
static void r_kind_str(msgpack_packer *pk)
{
    r_elems(pk, 2, v_x, v_zero, NULL, NULL);
}
static void r_kind_float(msgpack_packer *pk)
{
    r_elems(pk, 2, v_float, v_zero, NULL, NULL);
}
static void r_kind_nil(msgpack_packer *pk)
{
    r_elems(pk, 2, v_nil, v_zero, NULL, NULL);
}
static void r_kind_neg(msgpack_packer *pk)
{
    r_elems(pk, 2, v_neg, v_zero, NULL, NULL);
}
static void r_id_neg(msgpack_packer *pk)
{
    r_elems(pk, 4, v_zero, v_neg, v_zero, v_one);
}
static void r_id_str(msgpack_packer *pk)
{
    r_elems(pk, 4, v_zero, v_x, v_zero, v_one);
}
static void r_id_nil(msgpack_packer *pk)
{
    r_elems(pk, 4, v_zero, v_nil, v_zero, v_one);
}
static void r_not_array(msgpack_packer *pk)
{
    msgpack_pack_uint8(pk, 5);
}
static void r_map(msgpack_packer *pk)
{
    v_labels(pk);
}

static void r_id_u32max(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_uint64(pk, MAX_U32);
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_uint8(pk, 1);
}

static void r_id_2p32(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_uint64(pk, MAX_U32 + 1);
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_uint8(pk, 1);
}

/* events, checks and states: [2, dts, src, rule, sev, text, {k: v}] and friends */
static void r_event_ok(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 7);
    msgpack_pack_uint8(pk, 2);
    msgpack_pack_int64(pk, 5);
    pk_s(pk, "/u01/app/oracle/alert_orcl.log");
    pk_s(pk, "ora_600");
    msgpack_pack_uint8(pk, 3);
    pk_s(pk, "ORA-00600: internal error code");
    msgpack_pack_map(pk, 1);
    pk_s(pk, "code");
    pk_s(pk, "00600");
}
static void r_event_short(msgpack_packer *pk)
{
    r_pack_vals(pk, 2, 1);
}
static void r_event_sev4(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 7);
    msgpack_pack_uint8(pk, 2);
    msgpack_pack_int64(pk, 0);
    pk_s(pk, "f");
    pk_s(pk, "r");
    msgpack_pack_uint8(pk, 4);
    pk_s(pk, "t");
    msgpack_pack_map(pk, 0);
}
static void r_event_field_int(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 7);
    msgpack_pack_uint8(pk, 2);
    msgpack_pack_int64(pk, 0);
    pk_s(pk, "f");
    pk_s(pk, "r");
    msgpack_pack_uint8(pk, 1);
    pk_s(pk, "t");
    msgpack_pack_map(pk, 1);
    pk_s(pk, "k");
    msgpack_pack_uint8(pk, 1);
}
static void r_event_text_big(msgpack_packer *pk)
{
    static char big[WP_TEXT_MAX + 2];
    memset(big, 'x', WP_TEXT_MAX + 1);
    msgpack_pack_array(pk, 7);
    msgpack_pack_uint8(pk, 2);
    msgpack_pack_int64(pk, 0);
    pk_s(pk, "f");
    pk_s(pk, "r");
    msgpack_pack_uint8(pk, 1);
    pk_s(pk, big);
    msgpack_pack_map(pk, 0);
}
static void r_check_ok(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 5);
    msgpack_pack_uint8(pk, 3);
    msgpack_pack_int64(pk, 0);
    pk_s(pk, "http_login");
    msgpack_pack_uint8(pk, 2);
    pk_s(pk, "HTTP CRITICAL: 503");
}
static void r_check_status9(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 5);
    msgpack_pack_uint8(pk, 3);
    msgpack_pack_int64(pk, 0);
    pk_s(pk, "x");
    msgpack_pack_uint8(pk, 9);
    pk_s(pk, "");
}
static void r_state_ok(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 5);
    msgpack_pack_uint8(pk, 4);
    msgpack_pack_int64(pk, 0);
    pk_s(pk, "SIP/8001");
    pk_s(pk, "hotline");
    pk_s(pk, "blocked");
}
static void r_state_nil(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 5);
    msgpack_pack_uint8(pk, 4);
    msgpack_pack_int64(pk, 0);
    pk_s(pk, "SIP/8001");
    msgpack_pack_nil(pk);
    pk_s(pk, "idle");
}
static void r_state_raw_int(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 6);
    msgpack_pack_uint8(pk, 4);
    msgpack_pack_int64(pk, 0);
    pk_s(pk, "SIP/8001");
    pk_s(pk, "hotline");
    pk_s(pk, "idle");
    msgpack_pack_uint8(pk, 1);
}
static void r_kind5(msgpack_packer *pk)
{
    r_pack_vals(pk, 5, 1);
}

struct rec_case {
    const char *name;
    pack_fn rec;
    int rc;
};

static const struct rec_case rec_cases[] = {
    {"metric ok", r_ok, 0},
    {"metric 32 values", r_ok32, 0},
    {"metric 33 values", r_vals33, WP_ETOOBIG},
    {"kind 7", r_kind7, WP_EKIND},
    {"kind 2 (event) too short", r_kind2, WP_EPROTO},
    {"kind 5", r_kind5, WP_EKIND},
    {"event ok", r_event_ok, 0},
    {"event too short", r_event_short, WP_EPROTO},
    {"event severity 4", r_event_sev4, WP_ETYPE},
    {"event field not a string", r_event_field_int, WP_ETYPE},
    {"event text over the limit", r_event_text_big, WP_ETOOBIG},
    {"check ok", r_check_ok, 0},
    {"check status 9", r_check_status9, WP_ETYPE},
    {"state ok", r_state_ok, 0},
    {"state group nil", r_state_nil, WP_ETYPE},
    {"state raw not a string", r_state_raw_int, WP_ETYPE},
    {"kind -1", r_kind_neg, WP_EKIND},
    {"kind string", r_kind_str, WP_ETYPE},
    {"kind float", r_kind_float, WP_ETYPE},
    {"kind nil", r_kind_nil, WP_ETYPE},
    {"record not an array", r_not_array, WP_ETYPE},
    {"record a map", r_map, WP_ETYPE},
    {"record empty", r_empty, WP_EPROTO},
    {"metric kind only", r_just0, WP_EPROTO},
    {"heartbeat kind only", r_just1, WP_EPROTO},
    {"metric without dts", r_metric_2, WP_EPROTO},
    {"metric without values", r_metric_noval, WP_EPROTO},
    {"value string", r_val_str, WP_ETYPE},
    {"value bool", r_val_true, WP_ETYPE},
    {"value array", r_val_arr, WP_ETYPE},
    {"value map", r_val_map, WP_ETYPE},
    {"value bin", r_val_bin, WP_ETYPE},
    {"value nil", r_val_nil, 0},
    {"value negative", r_val_neg, 0},
    {"value float32", r_val_f32, 0},
    {"id negative", r_id_neg, WP_ETYPE},
    {"id string", r_id_str, WP_ETYPE},
    {"id nil", r_id_nil, WP_ETYPE},
    {"id 2^32-1", r_id_u32max, 0},
    {"id 2^32", r_id_2p32, WP_ETYPE},
    {"dts INT64_MAX", r_dts_i64max, WP_EPROTO},
    {"dts INT64_MIN", r_dts_i64min, WP_EPROTO},
    {"dts overflowing ts", r_dts_overflow, WP_EPROTO},
    {"dts UINT64_MAX", r_dts_u64max, WP_ETYPE},
    {"dts float", r_dts_float, WP_ETYPE},
    {"dts a year ahead", r_dts_year, 0},
    {"dts a year back", r_dts_back, 0},
    {"dts 4000 days ahead", r_dts_far, WP_EPROTO},
    {"dts 4000 days back", r_dts_far_back, WP_EPROTO},
    {"heartbeat dts INT64_MAX", r_hb_dts_max, WP_EPROTO},
    {"heartbeat dts string", r_hb_dts_str, WP_ETYPE},
    {"heartbeat extra element", r_hb_extra, 0},
};

/* Encoder and decoder agree on events, checks and states; long text is cut on a UTF-8
 * boundary; merge appends records of the same base time only. */
static void batch_events_round_trip(void **state)
{
    struct wp_batch_enc e, other;
    struct wp_buf tail, frame;
    struct wp_msg m;
    struct wp_rec r;
    const char *fields[] = {"code", "00600", "sid", "orcl", NULL};
    static char big[WP_TEXT_MAX + 8];
    (void)state;

    /* "数" is 3 bytes: fill so that the limit falls inside the last character */
    memset(big, 'a', WP_TEXT_MAX - 1);
    memcpy(big + WP_TEXT_MAX - 1, "\xe6\x95\xb0", 4);
    wp_batch_enc_init(&e, 1000000);
    wp_batch_enc_init(&other, 1000000);
    wp_batch_enc_event(&e, 1000010, "/u01/alert_orcl.log", "ora_600", 3,
                       "ORA-00600: 内部错误", fields);
    wp_batch_enc_check(&e, 1000020, "http_login", 2, "HTTP CRITICAL");
    wp_batch_enc_state(&other, 1000030, "SIP/8001", "hotline", "blocked", "Blocked",
                       "Call1=0x0 0, Call2=0x0 0");
    wp_batch_enc_event(&other, 1000040, "f", "r", 1, big, NULL);
    assert_int_equal(wp_batch_enc_merge(&e, &other), 0);
    wp_batch_enc_reset(&other, 5);
    assert_int_equal(wp_batch_enc_merge(&e, &other), -EINVAL);
    wp_buf_init(&tail);
    wp_buf_init(&frame);
    wp_batch_enc_finish(&e, &tail);
    wp_put_batch(&frame, 7, wp_buf_head(&tail), wp_buf_unread(&tail));
    wp_msg_init(&m);
    assert_int_equal(wp_msg_decode(&m, wp_buf_head(&frame) + 4, wp_buf_unread(&frame) - 4), 0);
    assert_int_equal(m.u.batch.recs->size, 4);
    assert_int_equal(wp_batch_rec(&m, 0, &r), 0);
    assert_int_equal(r.kind, WP_REC_EVENT);
    assert_int_equal(r.ts_ms, 1000010);
    assert_true(wp_str_eq(r.name, "/u01/alert_orcl.log"));
    assert_true(wp_str_eq(r.group, "ora_600"));
    assert_true(wp_str_eq(r.text, "ORA-00600: 内部错误"));
    assert_int_equal(r.level, 3);
    assert_int_equal(r.fields->size, 2);
    assert_int_equal(wp_batch_rec(&m, 1, &r), 0);
    assert_int_equal(r.kind, WP_REC_CHECK);
    assert_true(wp_str_eq(r.name, "http_login"));
    assert_int_equal(r.level, 2);
    assert_int_equal(wp_batch_rec(&m, 2, &r), 0);
    assert_int_equal(r.kind, WP_REC_STATE);
    assert_true(wp_str_eq(r.group, "hotline"));
    assert_true(wp_str_eq(r.text, "blocked"));
    assert_true(wp_str_eq(r.raw, "Blocked"));
    assert_true(wp_str_eq(r.info, "Call1=0x0 0, Call2=0x0 0"));
    assert_int_equal(r.ts_ms, 1000030);
    assert_int_equal(wp_batch_rec(&m, 3, &r), 0);
    assert_int_equal(r.text.len, WP_TEXT_MAX - 1); /* cut before the 3-byte character */
    wp_msg_cleanup(&m);
    wp_buf_cleanup(&tail);
    wp_buf_cleanup(&frame);
    wp_batch_enc_cleanup(&e);
    wp_batch_enc_cleanup(&other);
}

static void batch_records_validated(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rec_cases) / sizeof(rec_cases[0]); i++) {
        const struct rec_case *c = &rec_cases[i];
        struct body x;
        struct wp_msg m;
        struct wp_rec r;

        body_init(&x);
        pack_tpl(&x, TPL(batch_tpl), "recs", NULL);
        /* the template without recs is a 3-entry map: patch it to 4, then add recs */
        assert_int_equal(x.b.data[0], 0x83);
        x.b.data[0] = 0x84;
        pk_s(&x.pk, "recs");
        msgpack_pack_array(&x.pk, 1);
        c->rec(&x.pk);
        wp_msg_init(&m);
        assert_int_equal(wp_msg_decode(&m, wp_buf_head(&x.b), wp_buf_unread(&x.b)), 0);
        int rc = wp_batch_rec(&m, 0, &r);
        if (rc != c->rc) {
            fail_msg("case \"%s\": got %d (%s), want %d", c->name, rc, wp_strerror(rc), c->rc);
        }
        if (rc == 0 && r.kind == WP_REC_METRIC) {
            assert_true(r.nvals >= 1 && r.nvals <= WP_SERIES_MAX_FIELDS);
            assert_true(r.vals == &m.u.batch.recs->ptr[0].via.array.ptr[3]);
        }
        wp_msg_cleanup(&m);
        wp_buf_cleanup(&x.b);
    }
}

/* ---- series definitions ----------------------------------------------------------------- */

/* [id, group, inst, fields, type, step] with one element replaced (index at, fn) */
static void def_with(msgpack_packer *pk, size_t n, int at, pack_fn fn)
{
    msgpack_pack_array(pk, n);
    for (int i = 0; i < (int)n; i++) {
        if (i == at) {
            fn(pk);
            continue;
        }
        switch (i) {
        case 0:
            msgpack_pack_uint32(pk, 1);
            break;
        case 1:
            pk_s(pk, "cpu");
            break;
        case 2:
            pk_s(pk, "");
            break;
        case 3:
            msgpack_pack_array(pk, 1);
            pk_s(pk, "user");
            break;
        case 4:
            msgpack_pack_uint8(pk, WP_DS_GAUGE);
            break;
        case 5:
            msgpack_pack_uint32(pk, 10);
            break;
        default:
            msgpack_pack_nil(pk);
            break;
        }
    }
}

static void f_names(msgpack_packer *pk, unsigned n, size_t len)
{
    msgpack_pack_array(pk, n);
    for (unsigned i = 0; i < n; i++) {
        pk_rep(pk, (char)('a' + i % 26), len);
    }
}

static void v_fields0(msgpack_packer *pk)
{
    f_names(pk, 0, 3);
}
static void v_fields32(msgpack_packer *pk)
{
    f_names(pk, 32, 3);
}
static void v_fields33(msgpack_packer *pk)
{
    f_names(pk, 33, 3);
}
static void v_field64(msgpack_packer *pk)
{
    f_names(pk, 1, WP_NAME_MAX);
}
static void v_field65(msgpack_packer *pk)
{
    f_names(pk, 1, WP_NAME_MAX + 1);
}
static void v_field_empty(msgpack_packer *pk)
{
    f_names(pk, 1, 0);
}
static void v_field_int(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 2);
    pk_s(pk, "a");
    msgpack_pack_uint8(pk, 1);
}
static void v_name64(msgpack_packer *pk)
{
    pk_rep(pk, 'n', WP_NAME_MAX);
}
static void v_name65(msgpack_packer *pk)
{
    pk_rep(pk, 'n', WP_NAME_MAX + 1);
}
static void v_inst256(msgpack_packer *pk)
{
    pk_rep(pk, 'i', WP_INST_MAX);
}
static void v_inst257(msgpack_packer *pk)
{
    pk_rep(pk, 'i', WP_INST_MAX + 1);
}
static void v_four(msgpack_packer *pk)
{
    msgpack_pack_uint8(pk, 4);
}
static void v_three(msgpack_packer *pk)
{
    msgpack_pack_uint8(pk, 3);
}
static void v_day(msgpack_packer *pk)
{
    msgpack_pack_uint32(pk, 86400);
}
static void v_day1(msgpack_packer *pk)
{
    msgpack_pack_uint32(pk, 86401);
}
static void v_u32max(msgpack_packer *pk)
{
    msgpack_pack_uint64(pk, MAX_U32);
}
static void v_2p32(msgpack_packer *pk)
{
    msgpack_pack_uint64(pk, MAX_U32 + 1);
}

struct def_case {
    const char *name;
    size_t n;
    int at;
    pack_fn fn;
    int rc;
};

static const struct def_case def_cases[] = {
    {"ok", 6, -1, NULL, 0},
    {"5 elements", 5, -1, NULL, WP_EPROTO},
    {"7 elements", 7, -1, NULL, WP_EPROTO},
    {"0 elements", 0, -1, NULL, WP_EPROTO},
    {"id 2^32-1", 6, 0, v_u32max, 0},
    {"id 2^32", 6, 0, v_2p32, WP_ETYPE},
    {"id negative", 6, 0, v_neg, WP_ETYPE},
    {"id string", 6, 0, v_x, WP_ETYPE},
    {"group empty", 6, 1, v_empty, WP_EPROTO},
    {"group int", 6, 1, v_one, WP_ETYPE},
    {"group 64", 6, 1, v_name64, 0},
    {"group 65", 6, 1, v_name65, WP_ETOOBIG},
    {"inst nil", 6, 2, v_nil, WP_ETYPE},
    {"inst 256", 6, 2, v_inst256, 0},
    {"inst 257", 6, 2, v_inst257, WP_ETOOBIG},
    {"fields none", 6, 3, v_fields0, WP_EPROTO},
    {"fields 32", 6, 3, v_fields32, 0},
    {"fields 33", 6, 3, v_fields33, WP_ETOOBIG},
    {"fields a string", 6, 3, v_x, WP_ETYPE},
    {"fields a map", 6, 3, v_map, WP_ETYPE},
    {"field int", 6, 3, v_field_int, WP_ETYPE},
    {"field empty", 6, 3, v_field_empty, WP_EPROTO},
    {"field 64", 6, 3, v_field64, 0},
    {"field 65", 6, 3, v_field65, WP_ETOOBIG},
    {"type 3", 6, 4, v_three, 0},
    {"type 4", 6, 4, v_four, WP_ETYPE},
    {"type negative", 6, 4, v_neg, WP_ETYPE},
    {"type string", 6, 4, v_x, WP_ETYPE},
    {"step 0", 6, 5, v_zero, WP_ETYPE},
    {"step a day", 6, 5, v_day, 0},
    {"step over a day", 6, 5, v_day1, WP_ETYPE},
    {"step float", 6, 5, v_float, WP_ETYPE},
};

static void defs_entries_validated(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(def_cases) / sizeof(def_cases[0]); i++) {
        const struct def_case *c = &def_cases[i];
        struct body x;
        struct wp_msg m;
        struct wp_series_def d;

        body_init(&x);
        msgpack_pack_map(&x.pk, 2);
        pk_s(&x.pk, "t");
        pk_s(&x.pk, "defs");
        pk_s(&x.pk, "series");
        msgpack_pack_array(&x.pk, 2);
        def_with(&x.pk, c->n, c->at, c->fn);
        msgpack_pack_uint8(&x.pk, 9); /* a second entry that is not even an array */
        wp_msg_init(&m);
        assert_int_equal(wp_msg_decode(&m, wp_buf_head(&x.b), wp_buf_unread(&x.b)), 0);
        int rc = wp_defs_get(&m, 0, &d);
        if (rc != c->rc) {
            fail_msg("case \"%s\": got %d (%s), want %d", c->name, rc, wp_strerror(rc), c->rc);
        }
        assert_int_equal(wp_defs_get(&m, 1, &d), WP_ETYPE);
        wp_msg_cleanup(&m);
        wp_buf_cleanup(&x.b);
    }
}

/* Accessors refuse a message of another type instead of reading the wrong union member. */
static void accessors_check_type(void **state)
{
    struct wp_buf b;
    struct wp_msg m;
    struct wp_rec r;
    struct wp_series_def d;

    (void)state;
    wp_buf_init(&b);
    wp_msg_init(&m);
    assert_int_equal(wp_batch_rec(&m, 0, &r), WP_EPROTO); /* never decoded */
    assert_int_equal(wp_defs_get(&m, 0, &d), WP_EPROTO);
    wp_put_ack(&b, 3);
    assert_int_equal(decode_frame(&b, &m), 0);
    assert_int_equal(wp_batch_rec(&m, 0, &r), WP_EPROTO);
    assert_int_equal(wp_defs_get(&m, 0, &d), WP_EPROTO);
    wp_msg_cleanup(&m);
    wp_buf_cleanup(&b);
}

/* A failed decode leaves no message behind: before the fix, a batch missing "recs" kept
 * type WP_MSG_BATCH with a NULL (or, after an earlier batch, a freed) recs array, and
 * wp_batch_rec() crashed on it. */
static void failed_decode_leaves_no_message(void **state)
{
    struct wp_batch_enc e;
    struct wp_buf tail;
    struct wp_buf b;
    struct body x;
    struct wp_msg m;
    struct wp_rec r;
    struct wp_series_def d;

    (void)state;
    wp_batch_enc_init(&e, TS0);
    wp_buf_init(&tail);
    wp_buf_init(&b);
    wp_batch_enc_heartbeat(&e, TS0);
    wp_batch_enc_finish(&e, &tail);
    wp_put_batch(&b, 5, wp_buf_head(&tail), wp_buf_unread(&tail));
    body_init(&x);
    pack_tpl(&x, TPL(batch_tpl), "recs", NULL);

    wp_msg_init(&m);
    assert_int_equal(wp_msg_decode(&m, wp_buf_head(&x.b), wp_buf_unread(&x.b)), WP_EPROTO);
    assert_int_not_equal(m.type, WP_MSG_BATCH);
    assert_int_equal(wp_batch_rec(&m, 0, &r), WP_EPROTO);

    assert_int_equal(decode_frame(&b, &m), 0);
    assert_int_equal(wp_batch_rec(&m, 0, &r), 0);
    /* decode a bad batch into the same message, without a cleanup in between */
    assert_int_equal(wp_msg_decode(&m, wp_buf_head(&x.b), wp_buf_unread(&x.b)), WP_EPROTO);
    assert_int_equal(wp_batch_rec(&m, 0, &r), WP_EPROTO);
    assert_int_equal(wp_defs_get(&m, 0, &d), WP_EPROTO);
    wp_msg_cleanup(&m);

    /* the same for defs whose series is not an array */
    wp_buf_reset(&x.b);
    pack_tpl(&x, TPL(defs_tpl), "series", v_map);
    assert_int_equal(wp_msg_decode(&m, wp_buf_head(&x.b), wp_buf_unread(&x.b)), WP_ETYPE);
    assert_int_equal(wp_defs_get(&m, 0, &d), WP_EPROTO);
    wp_msg_cleanup(&m);

    wp_buf_cleanup(&x.b);
    wp_buf_cleanup(&b);
    wp_buf_cleanup(&tail);
    wp_batch_enc_cleanup(&e);
}

/* wp_sb (wp/buf.h): appended text stays NUL-terminated across growth, bytes after a NUL too. */
static void sb_builds_text(void **state)
{
    struct wp_sb b = {NULL, 0, 0};
    char want[1200];

    (void)state;
    wp_sb_add(&b, "", 0);
    assert_non_null(b.p);
    assert_string_equal(b.p, "");
    for (int i = 0; i < 100; i++) {
        wp_sb_puts(&b, "0123456789");
        memcpy(want + i * 10, "0123456789", 10);
    }
    want[1000] = '\0';
    assert_int_equal(b.n, 1000);
    assert_true(b.cap > b.n);
    assert_string_equal(b.p, want);
    wp_sb_add(&b, "a\0b", 3);
    assert_int_equal(b.n, 1003);
    assert_memory_equal(b.p + 1000, "a\0b\0", 4);
    free(b.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sb_builds_text),
        cmocka_unit_test(hello_round_trip),
        cmocka_unit_test(small_messages_round_trip),
        cmocka_unit_test(defs_round_trip),
        cmocka_unit_test(batch_round_trip),
        cmocka_unit_test(batch_tail_with_any_seq),
        cmocka_unit_test(batch_empty_encoder),
        cmocka_unit_test(batch_is_compact),
        cmocka_unit_test(stream_of_frames),
        cmocka_unit_test(small_helpers),
        cmocka_unit_test(frame_header_limits),
        cmocka_unit_test(body_not_a_map),
        cmocka_unit_test(decode_rejects_bad_fields),
        cmocka_unit_test(truncated_at_every_byte),
        cmocka_unit_test(trailing_bytes_refused),
        cmocka_unit_test(huge_counts_fail_fast),
        cmocka_unit_test(deep_nesting_refused),
        cmocka_unit_test(every_msgpack_type_skipped),
        cmocka_unit_test(batch_records_validated),
        cmocka_unit_test(batch_events_round_trip),
        cmocka_unit_test(defs_entries_validated),
        cmocka_unit_test(accessors_check_type),
        cmocka_unit_test(failed_decode_leaves_no_message),
    };

#ifdef HAVE_ASAN_HOOKS
    __sanitizer_install_malloc_and_free_hooks(count_malloc, ignore_free);
#endif
    return cmocka_run_group_tests(tests, NULL, NULL);
}
