/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the wire codec: the input is a stream of frames, decoded as the
 * collector and the agent do, every record and definition checked, and every valid
 * message re-encoded and decoded again, which must give the same values. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wp/buf.h"
#include "wp/err.h"
#include "wp/wire.h"

#define FRAME_MAX (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant: abort so that libFuzzer (or the replay driver) reports it. */
static void fail(const char *what)
{
    fprintf(stderr, "fuzz_frame: invariant broken: %s\n", what);
    abort();
}

static void check(int ok, const char *what)
{
    if (!ok) {
        fail(what);
    }
}

/* A record string as a C string (up to its first NUL). */
static char *rec_cstr(struct wp_str x)
{
    size_t n = x.p != NULL ? strnlen(x.p, x.len) : 0;
    char *s = malloc(n + 1);
    if (s == NULL) {
        abort();
    }
    if (n > 0) {
        memcpy(s, x.p, n);
    }
    s[n] = '\0';
    return s;
}

/* b is a up to a's first NUL. */
static int same_prefix(struct wp_str a, struct wp_str b)
{
    size_t n = a.p != NULL ? strnlen(a.p, a.len) : 0;
    return b.len == n && (n == 0 || memcmp(a.p, b.p, n) == 0);
}

static int same_str(struct wp_str a, struct wp_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static int same_val(double a, double b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

/* Decode the single frame at the start of buf into m; it must be whole and valid. */
static void decode_own(const struct wp_buf *buf, struct wp_msg *m)
{
    uint32_t len = 0;

    check(wp_frame_peek(wp_buf_head(buf), wp_buf_unread(buf), UINT32_MAX, &len) == 0,
          "re-encoded frame header");
    check(len == wp_buf_unread(buf) - WP_FRAME_HDR, "re-encoded frame length");
    check(wp_msg_decode(m, wp_buf_head(buf) + WP_FRAME_HDR, len) == 0, "re-encoded frame");
}

static void check_batch(const struct wp_msg *m)
{
    struct wp_batch_enc enc;
    struct wp_buf tail;
    struct wp_buf frame;
    struct wp_msg again;
    uint32_t ok = 0;
    double vals[WP_SERIES_MAX_FIELDS];

    wp_batch_enc_init(&enc, m->u.batch.ts_ms);
    wp_buf_init(&tail);
    wp_buf_init(&frame);
    wp_msg_init(&again);
    for (uint32_t i = 0; i < m->u.batch.recs->size; i++) {
        struct wp_rec r;
        if (wp_batch_rec(m, i, &r) < 0) {
            continue;
        }
        ok++;
        if (r.kind == WP_REC_HEARTBEAT) {
            wp_batch_enc_heartbeat(&enc, r.ts_ms);
            continue;
        }
        if (r.kind == WP_REC_EVENT || r.kind == WP_REC_CHECK || r.kind == WP_REC_STATE) {
            /* strings as C strings: a NUL inside one ends it, which the round trip allows */
            char *name = rec_cstr(r.name), *group = rec_cstr(r.group), *text = rec_cstr(r.text);
            check(r.level <= 3, "severity or status in range");
            if (r.kind == WP_REC_EVENT) {
                check(r.fields != NULL && r.fields->size <= WP_EVENT_MAX_FIELDS, "event fields");
                wp_batch_enc_event(&enc, r.ts_ms, name, group, r.level, text, NULL);
            } else if (r.kind == WP_REC_CHECK) {
                wp_batch_enc_check(&enc, r.ts_ms, name, r.level, text);
            } else {
                char *raw = rec_cstr(r.raw), *info = rec_cstr(r.info);
                wp_batch_enc_state(&enc, r.ts_ms, name, group, text, raw, info);
                free(raw);
                free(info);
            }
            free(name);
            free(group);
            free(text);
            continue;
        }
        check(r.kind == WP_REC_METRIC, "record kind");
        check(r.nvals >= 1 && r.nvals <= WP_SERIES_MAX_FIELDS, "value count");
        for (uint32_t k = 0; k < r.nvals; k++) {
            vals[k] = wp_val(&r.vals[k]);
        }
        wp_batch_enc_metric(&enc, r.id, r.ts_ms, vals, r.nvals);
    }
    wp_batch_enc_finish(&enc, &tail);
    wp_put_batch(&frame, m->u.batch.seq, wp_buf_head(&tail), wp_buf_unread(&tail));
    decode_own(&frame, &again);
    check(again.type == WP_MSG_BATCH && again.u.batch.seq == m->u.batch.seq &&
              again.u.batch.ts_ms == m->u.batch.ts_ms && again.u.batch.recs->size == ok,
          "batch header round trip");

    /* walk both again: the j-th valid record of m is record j of the copy */
    uint32_t j = 0;
    for (uint32_t i = 0; i < m->u.batch.recs->size; i++) {
        struct wp_rec a;
        struct wp_rec b;
        if (wp_batch_rec(m, i, &a) < 0) {
            continue;
        }
        check(wp_batch_rec(&again, j++, &b) == 0, "re-encoded record");
        check(a.kind == b.kind && a.ts_ms == b.ts_ms, "record kind/ts round trip");
        if (a.kind == WP_REC_EVENT || a.kind == WP_REC_CHECK || a.kind == WP_REC_STATE) {
            check(a.level == b.level, "level round trip");
            check(same_prefix(a.name, b.name) && same_prefix(a.text, b.text) &&
                      (a.kind == WP_REC_CHECK || same_prefix(a.group, b.group)) &&
                      (a.kind != WP_REC_STATE ||
                       (same_prefix(a.raw, b.raw) && same_prefix(a.info, b.info))),
                  "string round trip");
        }
        if (a.kind == WP_REC_METRIC) {
            check(a.id == b.id && a.nvals == b.nvals, "record id round trip");
            for (uint32_t k = 0; k < a.nvals; k++) {
                check(same_val(wp_val(&a.vals[k]), wp_val(&b.vals[k])), "value round trip");
            }
        }
    }
    wp_msg_cleanup(&again);
    wp_buf_cleanup(&frame);
    wp_buf_cleanup(&tail);
    wp_batch_enc_cleanup(&enc);
}

/* Check every definition; re-encode the first DEFS_COPY valid ones and compare. */
static void check_defs(const struct wp_msg *m)
{
    enum { DEFS_COPY = 64 };
    struct wp_series_def *defs = calloc(DEFS_COPY, sizeof(*defs));
    struct wp_buf frame;
    struct wp_msg again;
    uint32_t ok = 0;

    if (defs == NULL) {
        fail("out of memory");
    }
    wp_buf_init(&frame);
    wp_msg_init(&again);
    for (uint32_t i = 0; i < m->u.defs.series->size; i++) {
        struct wp_series_def d;
        if (wp_defs_get(m, i, &d) < 0) {
            continue;
        }
        check(d.group.len >= 1 && d.group.len <= WP_NAME_MAX, "group length");
        check(d.inst.len <= WP_INST_MAX, "instance length");
        check(d.nfields >= 1 && d.nfields <= WP_SERIES_MAX_FIELDS, "field count");
        check(d.type <= WP_DS_ABSOLUTE && d.step_s >= 1, "type and step");
        for (uint32_t k = 0; k < d.nfields; k++) {
            check(d.fields[k].len >= 1 && d.fields[k].len <= WP_NAME_MAX, "field length");
        }
        if (ok < DEFS_COPY) {
            defs[ok++] = d;
        }
    }
    wp_put_defs(&frame, defs, ok);
    decode_own(&frame, &again);
    check(again.type == WP_MSG_DEFS && again.u.defs.series->size == ok, "defs round trip");
    for (uint32_t i = 0; i < ok; i++) {
        struct wp_series_def b;
        const struct wp_series_def *a = &defs[i];
        check(wp_defs_get(&again, i, &b) == 0, "re-encoded def");
        check(a->id == b.id && a->type == b.type && a->step_s == b.step_s &&
                  a->nfields == b.nfields && same_str(a->group, b.group) &&
                  same_str(a->inst, b.inst),
              "def round trip");
        for (uint32_t k = 0; k < a->nfields; k++) {
            check(same_str(a->fields[k], b.fields[k]), "field name round trip");
        }
    }
    wp_msg_cleanup(&again);
    wp_buf_cleanup(&frame);
    free(defs);
}

/* A copy of s as a C string, or NULL when s holds a NUL (the encoders take C strings). */
static char *cstr(struct wp_str s)
{
    if (s.len > 0 && memchr(s.p, '\0', s.len) != NULL) {
        return NULL;
    }
    return wp_str_dup(s);
}

static struct wp_str kv_str(const msgpack_object *o)
{
    struct wp_str r = {o->via.str.ptr, o->via.str.size};
    return r;
}

/* Check the labels, then re-encode the hello (when its strings have no NUL) and compare. */
static void check_hello(const struct wp_msg *m)
{
    const struct wp_hello *h = &m->u.hello;
    uint32_t nl = h->labels != NULL ? h->labels->size : 0;
    char **strs = calloc(3 + 2 * (size_t)nl + 1, sizeof(*strs));
    int all = 1;
    struct wp_buf frame;
    struct wp_msg again;

    if (strs == NULL) {
        fail("out of memory");
    }
    check(h->agent.len >= 1 && h->agent.len <= WP_AGENT_ID_MAX, "agent id length");
    for (uint32_t i = 0; i < nl; i++) {
        const msgpack_object_kv *kv = &h->labels->ptr[i];
        check(kv->key.type == MSGPACK_OBJECT_STR && kv->val.type == MSGPACK_OBJECT_STR,
              "label types");
        check(kv->key.via.str.size <= WP_NAME_MAX && kv->val.via.str.size <= WP_INST_MAX,
              "label lengths");
        strs[3 + 2 * i] = cstr(kv_str(&kv->key));
        strs[3 + 2 * i + 1] = cstr(kv_str(&kv->val));
        all = all && strs[3 + 2 * i] != NULL && strs[3 + 2 * i + 1] != NULL;
    }
    strs[0] = cstr(h->agent);
    strs[1] = cstr(h->host);
    strs[2] = cstr(h->sw_version);
    all = all && strs[0] != NULL && strs[1] != NULL && strs[2] != NULL;
    wp_buf_init(&frame);
    wp_msg_init(&again);
    if (all) {
        wp_put_hello(&frame, strs[0], strs[1], strs[2], (const char *const *)&strs[3], h->boot);
        decode_own(&frame, &again);
        check(again.type == WP_MSG_HELLO && again.u.hello.version == WP_WIRE_VERSION &&
                  again.u.hello.boot == h->boot && same_str(again.u.hello.agent, h->agent) &&
                  same_str(again.u.hello.host, h->host) &&
                  same_str(again.u.hello.sw_version, h->sw_version) &&
                  again.u.hello.labels != NULL && again.u.hello.labels->size == nl,
              "hello round trip");
        for (uint32_t i = 0; i < nl; i++) {
            const msgpack_object_kv *a = &h->labels->ptr[i];
            const msgpack_object_kv *b = &again.u.hello.labels->ptr[i];
            check(same_str(kv_str(&a->key), kv_str(&b->key)) &&
                      same_str(kv_str(&a->val), kv_str(&b->val)),
                  "label round trip");
        }
    }
    for (size_t i = 0; i < 3 + 2 * (size_t)nl; i++) {
        free(strs[i]);
    }
    free(strs);
    wp_msg_cleanup(&again);
    wp_buf_cleanup(&frame);
}

/* Re-encode ack, welcome and error messages and compare. */
static void check_small(const struct wp_msg *m)
{
    struct wp_buf frame;
    struct wp_msg again;

    wp_buf_init(&frame);
    wp_msg_init(&again);
    switch (m->type) {
    case WP_MSG_ACK:
        wp_put_ack(&frame, m->u.ack.seq);
        decode_own(&frame, &again);
        check(again.type == WP_MSG_ACK && again.u.ack.seq == m->u.ack.seq, "ack round trip");
        break;
    case WP_MSG_WELCOME:
        wp_put_welcome(&frame, m->u.welcome.acked);
        decode_own(&frame, &again);
        check(again.type == WP_MSG_WELCOME && again.u.welcome.acked == m->u.welcome.acked,
              "welcome round trip");
        break;
    case WP_MSG_ERROR: {
        char *msg = cstr(m->u.error.msg);
        if (msg != NULL) {
            wp_put_error(&frame, msg);
            decode_own(&frame, &again);
            check(again.type == WP_MSG_ERROR && same_str(again.u.error.msg, m->u.error.msg),
                  "error round trip");
            free(msg);
        }
        break;
    }
    default:
        break;
    }
    wp_msg_cleanup(&again);
    wp_buf_cleanup(&frame);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;

    while (size - off >= WP_FRAME_HDR) {
        uint32_t len = 0;
        struct wp_msg m;
        int rc = wp_frame_peek(data + off, size - off, FRAME_MAX, &len);
        if (rc < 0) {
            check(rc == WP_EPROTO || rc == WP_ETOOBIG, "frame_peek error code");
            break;
        }
        check(len >= 1 && len <= FRAME_MAX, "frame_peek length");
        if (len > size - off - WP_FRAME_HDR) {
            break; /* a reader would wait for more bytes */
        }
        wp_msg_init(&m);
        rc = wp_msg_decode(&m, data + off + WP_FRAME_HDR, len);
        if (rc == 0) {
            check(strcmp(wp_msg_name(m.type), "?") != 0, "decoded type");
            switch (m.type) {
            case WP_MSG_BATCH:
                check_batch(&m);
                break;
            case WP_MSG_DEFS:
                check_defs(&m);
                break;
            case WP_MSG_HELLO:
                check_hello(&m);
                break;
            default:
                check_small(&m);
                break;
            }
        } else {
            check(rc == WP_EPROTO || rc == WP_ETOOBIG || rc == WP_ETRUNC || rc == WP_ETYPE ||
                      rc == WP_EKIND,
                  "decode error code");
            check(m.type == 0, "a failed decode leaves a message type");
        }
        wp_msg_cleanup(&m);
        off += WP_FRAME_HDR + (size_t)len;
    }
    return 0;
}
