/* SPDX-License-Identifier: Apache-2.0 */
/* Wire protocol v1 codec: frame headers, message decode with validation, encoders. */
#include "wp/wire.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "wp/err.h"
#include "wp/mem.h"

#define MAX_DEPTH 16
#define WP_TS_SPAN_MS (400LL * 86400 * 1000) /* a record within 400 days of its batch */
#define WP_TS_MAX_MS  (1LL << 52)

/* ---- length pre-scan ----------------------------------------------------------------
 * msgpack-c allocates a container's element array from its declared count before it
 * reads the elements, so a 5-byte header claiming 100 M elements costs gigabytes. Walk
 * the encoded bytes once first and refuse any count that the remaining bytes cannot
 * hold, any length past the end, and nesting deeper than MAX_DEPTH. */

static int need(size_t have, size_t want)
{
    return have >= want ? 0 : WP_ETRUNC;
}

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

static int scan(const uint8_t *p, size_t n, size_t *used, int depth)
{
    size_t off = 0;
    uint64_t items = 1; /* values still to read at this level */

    if (depth > MAX_DEPTH) {
        return WP_EPROTO;
    }
    while (items > 0) {
        if (off >= n) {
            return WP_ETRUNC;
        }
        uint8_t b = p[off++];
        uint64_t len = 0;
        uint64_t children = 0;
        int lb = 0;
        items--;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            continue;
        }
        if ((b & 0xf0) == 0x80) {
            children = (uint64_t)(b & 0x0f) * 2;
        } else if ((b & 0xf0) == 0x90) {
            children = b & 0x0f;
        } else if ((b & 0xe0) == 0xa0) {
            len = b & 0x1f;
        } else {
            switch (b) {
            case 0xcc: case 0xd0: len = 1; break;
            case 0xcd: case 0xd1: len = 2; break;
            case 0xca: case 0xce: case 0xd2: len = 4; break;
            case 0xcb: case 0xcf: case 0xd3: len = 8; break;
            case 0xd4: len = 2; break;
            case 0xd5: len = 3; break;
            case 0xd6: len = 5; break;
            case 0xd7: len = 9; break;
            case 0xd8: len = 17; break;
            case 0xc4: case 0xd9: lb = 1; break;
            case 0xc5: case 0xda: lb = 2; break;
            case 0xc6: case 0xdb: lb = 4; break;
            case 0xc7: lb = 1; len = 1; break; /* ext 8: length + type byte */
            case 0xc8: lb = 2; len = 1; break;
            case 0xc9: lb = 4; len = 1; break;
            case 0xdc: lb = -2; break;
            case 0xdd: lb = -4; break;
            case 0xde: lb = -2; break;
            case 0xdf: lb = -4; break;
            default: return WP_EPROTO; /* 0xc1 is never used */
            }
            if (lb > 0) {
                int rc = need(n - off, (size_t)lb);
                if (rc < 0) {
                    return rc;
                }
                len += be(p + off, lb);
                off += (size_t)lb;
            } else if (lb < 0) {
                int rc = need(n - off, (size_t)-lb);
                if (rc < 0) {
                    return rc;
                }
                uint64_t cnt = be(p + off, -lb);
                off += (size_t)-lb;
                children = (b == 0xde || b == 0xdf) ? cnt * 2 : cnt;
            }
        }
        if (len > 0) {
            if (len > n - off) {
                return WP_ETRUNC;
            }
            off += (size_t)len;
        }
        if (children > 0) {
            /* every element takes at least one byte */
            if (children > n - off) {
                return WP_ETRUNC;
            }
            size_t sub = 0;
            for (uint64_t i = 0; i < children; i++) {
                int rc = scan(p + off, n - off, &sub, depth + 1);
                if (rc < 0) {
                    return rc;
                }
                off += sub;
            }
        }
    }
    *used = off;
    return 0;
}

/* ---- frames -------------------------------------------------------------------------- */

int wp_frame_peek(const uint8_t *p, size_t n, uint32_t max, uint32_t *body_len)
{
    if (n < WP_FRAME_HDR) {
        return WP_EAGAIN;
    }
    uint32_t len = (uint32_t)be(p, 4);
    if (len == 0) {
        return WP_EPROTO;
    }
    if (len > max) {
        return WP_ETOOBIG;
    }
    *body_len = len;
    return 0;
}

static void frame_begin(struct wp_buf *out, size_t *hdr_at)
{
    *hdr_at = out->len;
    wp_buf_reserve(out, 4);
    out->len += 4;
}

static void frame_end(struct wp_buf *out, size_t hdr_at)
{
    size_t body = out->len - hdr_at - 4;
    uint8_t *h = out->data + hdr_at;
    h[0] = (uint8_t)(body >> 24);
    h[1] = (uint8_t)(body >> 16);
    h[2] = (uint8_t)(body >> 8);
    h[3] = (uint8_t)body;
}

/* ---- decode -------------------------------------------------------------------------- */

static const msgpack_object *map_get(const msgpack_object_map *m, const char *key)
{
    size_t kl = strlen(key);
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kl &&
            memcmp(k->via.str.ptr, key, kl) == 0) {
            return &m->ptr[i].val;
        }
    }
    return NULL;
}

static int get_str(const msgpack_object_map *m, const char *key, uint32_t max, struct wp_str *out)
{
    const msgpack_object *o = map_get(m, key);
    if (o == NULL) {
        return WP_EPROTO;
    }
    if (o->type != MSGPACK_OBJECT_STR) {
        return WP_ETYPE;
    }
    if (o->via.str.size > max) {
        return WP_ETOOBIG;
    }
    out->p = o->via.str.ptr;
    out->len = o->via.str.size;
    return 0;
}

static int get_u64(const msgpack_object_map *m, const char *key, uint64_t *out)
{
    const msgpack_object *o = map_get(m, key);
    if (o == NULL) {
        return WP_EPROTO;
    }
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        return WP_ETYPE;
    }
    *out = o->via.u64;
    return 0;
}

static int obj_i64(const msgpack_object *o, int64_t *out)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > (uint64_t)INT64_MAX) {
            return WP_ETYPE;
        }
        *out = (int64_t)o->via.u64;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
        return 0;
    }
    return WP_ETYPE;
}

static int get_i64(const msgpack_object_map *m, const char *key, int64_t *out)
{
    const msgpack_object *o = map_get(m, key);
    if (o == NULL) {
        return WP_EPROTO;
    }
    return obj_i64(o, out);
}

static int get_array(const msgpack_object_map *m, const char *key,
                     const msgpack_object_array **out)
{
    const msgpack_object *o = map_get(m, key);
    if (o == NULL) {
        return WP_EPROTO;
    }
    if (o->type != MSGPACK_OBJECT_ARRAY) {
        return WP_ETYPE;
    }
    *out = &o->via.array;
    return 0;
}

static const struct {
    const char *name;
    enum wp_msg_type type;
} msg_names[] = {
    {"hello", WP_MSG_HELLO}, {"welcome", WP_MSG_WELCOME}, {"defs", WP_MSG_DEFS},
    {"batch", WP_MSG_BATCH}, {"ack", WP_MSG_ACK},         {"error", WP_MSG_ERROR},
};

const char *wp_msg_name(enum wp_msg_type t)
{
    for (size_t i = 0; i < sizeof(msg_names) / sizeof(msg_names[0]); i++) {
        if (msg_names[i].type == t) {
            return msg_names[i].name;
        }
    }
    return "?";
}

void wp_msg_init(struct wp_msg *m)
{
    memset(m, 0, sizeof(*m));
    msgpack_unpacked_init(&m->up);
}

void wp_msg_cleanup(struct wp_msg *m)
{
    msgpack_unpacked_destroy(&m->up);
    memset(&m->u, 0, sizeof(m->u));
    msgpack_unpacked_init(&m->up);
}

static int decode_hello(struct wp_msg *m, const msgpack_object_map *map)
{
    struct wp_hello *h = &m->u.hello;
    uint64_t v = 0;
    int rc = get_u64(map, "v", &v);
    if (rc < 0) {
        return rc;
    }
    h->version = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
    if ((rc = get_str(map, "agent", WP_AGENT_ID_MAX, &h->agent)) < 0 ||
        (rc = get_str(map, "host", WP_INST_MAX, &h->host)) < 0 ||
        (rc = get_str(map, "version", WP_NAME_MAX, &h->sw_version)) < 0 ||
        (rc = get_i64(map, "boot", &h->boot)) < 0) {
        return rc;
    }
    if (h->agent.len == 0) {
        return WP_EPROTO;
    }
    const msgpack_object *labels = map_get(map, "labels");
    if (labels != NULL) {
        if (labels->type != MSGPACK_OBJECT_MAP) {
            return WP_ETYPE;
        }
        const msgpack_object_map *lm = &labels->via.map;
        if (lm->size > 64) {
            return WP_ETOOBIG;
        }
        for (uint32_t i = 0; i < lm->size; i++) {
            const msgpack_object *k = &lm->ptr[i].key;
            const msgpack_object *val = &lm->ptr[i].val;
            if (k->type != MSGPACK_OBJECT_STR || val->type != MSGPACK_OBJECT_STR) {
                return WP_ETYPE;
            }
            if (k->via.str.size > WP_NAME_MAX || val->via.str.size > WP_INST_MAX) {
                return WP_ETOOBIG;
            }
        }
        h->labels = lm;
    }
    return 0;
}

static int msg_decode(struct wp_msg *m, const uint8_t *body, size_t len)
{
    size_t used = 0;
    size_t off = 0;
    int rc = scan(body, len, &used, 0);

    if (rc < 0) {
        return rc == WP_ETRUNC ? WP_ETRUNC : WP_EPROTO;
    }
    if (used != len) {
        return WP_EPROTO; /* trailing bytes after the map */
    }
    msgpack_unpacked_destroy(&m->up);
    msgpack_unpacked_init(&m->up);
    if (msgpack_unpack_next(&m->up, (const char *)body, len, &off) != MSGPACK_UNPACK_SUCCESS) {
        return WP_EPROTO;
    }
    if (m->up.data.type != MSGPACK_OBJECT_MAP) {
        return WP_EPROTO;
    }
    const msgpack_object_map *map = &m->up.data.via.map;
    struct wp_str t;
    if ((rc = get_str(map, "t", 16, &t)) < 0) {
        return rc;
    }
    m->type = 0;
    for (size_t i = 0; i < sizeof(msg_names) / sizeof(msg_names[0]); i++) {
        if (wp_str_eq(t, msg_names[i].name)) {
            m->type = msg_names[i].type;
        }
    }
    switch (m->type) {
    case WP_MSG_HELLO:
        return decode_hello(m, map);
    case WP_MSG_WELCOME: {
        uint64_t v = 0;
        if ((rc = get_u64(map, "v", &v)) < 0) {
            return rc;
        }
        m->u.welcome.version = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
        return get_u64(map, "acked", &m->u.welcome.acked);
    }
    case WP_MSG_ACK:
        return get_u64(map, "seq", &m->u.ack.seq);
    case WP_MSG_ERROR:
        return get_str(map, "msg", 1024, &m->u.error.msg);
    case WP_MSG_DEFS:
        return get_array(map, "series", &m->u.defs.series);
    case WP_MSG_BATCH:
        if ((rc = get_u64(map, "seq", &m->u.batch.seq)) < 0 ||
            (rc = get_i64(map, "ts", &m->u.batch.ts_ms)) < 0) {
            return rc;
        }
        if (m->u.batch.ts_ms < 0 || m->u.batch.ts_ms > WP_TS_MAX_MS) {
            return WP_EPROTO;
        }
        if (m->u.batch.seq == 0) {
            return WP_EPROTO; /* seq starts at 1; 0 means "nothing acked" */
        }
        return get_array(map, "recs", &m->u.batch.recs);
    default:
        return WP_EKIND;
    }
}

int wp_msg_decode(struct wp_msg *m, const uint8_t *body, size_t len)
{
    int rc = msg_decode(m, body, len);

    if (rc < 0) {
        /* Leave nothing that wp_batch_rec() or wp_defs_get() could take for a message:
         * the type may already be set, with the union half-filled or pointing into the
         * zone of an earlier message that the decode has freed. */
        m->type = 0;
        memset(&m->u, 0, sizeof(m->u));
    }
    return rc;
}

/* A non-empty-or-empty string of at most max bytes into out; 0 when not. */
static int rec_str(const msgpack_object *o, uint32_t max, struct wp_str *out)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > max) {
        return 0;
    }
    out->p = o->via.str.ptr;
    out->len = o->via.str.size;
    return 1;
}

static int is_number(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
           o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER || o->type == MSGPACK_OBJECT_FLOAT32 ||
           o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_NIL;
}

int wp_batch_rec(const struct wp_msg *m, uint32_t i, struct wp_rec *out)
{
    const msgpack_object_array *recs = m->u.batch.recs;
    int64_t dts = 0;
    int64_t kind = 0;

    if (m->type != WP_MSG_BATCH || i >= recs->size) {
        return WP_EPROTO;
    }
    const msgpack_object *r = &recs->ptr[i];
    if (r->type != MSGPACK_OBJECT_ARRAY) {
        return WP_ETYPE;
    }
    const msgpack_object_array *a = &r->via.array;
    if (a->size < 2) {
        return WP_EPROTO;
    }
    if (obj_i64(&a->ptr[0], &kind) < 0) {
        return WP_ETYPE;
    }
    if (kind < WP_REC_METRIC || kind > WP_REC_STATE) {
        return WP_EKIND;
    }
    static const uint32_t min_size[] = {
        [WP_REC_METRIC] = 4, [WP_REC_HEARTBEAT] = 2, [WP_REC_EVENT] = 7, [WP_REC_CHECK] = 5,
        [WP_REC_STATE] = 5};
    if (a->size < min_size[kind]) {
        return WP_EPROTO;
    }
    if (obj_i64(&a->ptr[kind == WP_REC_METRIC ? 2 : 1], &dts) < 0) {
        return WP_ETYPE;
    }
    if (dts < -WP_TS_SPAN_MS || dts > WP_TS_SPAN_MS) {
        return WP_EPROTO; /* also keeps ts + dts from overflowing */
    }
    memset(out, 0, sizeof(*out));
    switch (kind) {
    case WP_REC_METRIC: {
        if (a->ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a->ptr[1].via.u64 > UINT32_MAX) {
            return WP_ETYPE;
        }
        uint32_t nvals = a->size - 3;
        if (nvals > WP_SERIES_MAX_FIELDS) {
            return WP_ETOOBIG;
        }
        for (uint32_t k = 0; k < nvals; k++) {
            if (!is_number(&a->ptr[3 + k])) {
                return WP_ETYPE;
            }
        }
        out->kind = WP_REC_METRIC;
        out->id = (uint32_t)a->ptr[1].via.u64;
        out->nvals = nvals;
        out->vals = &a->ptr[3];
        break;
    }
    case WP_REC_HEARTBEAT:
        out->kind = WP_REC_HEARTBEAT;
        break;
    case WP_REC_EVENT: {
        /* [2, dts, src, rule, sev, text, {k: v}] */
        int64_t sev = 0;
        if (!rec_str(&a->ptr[2], WP_SOURCE_MAX, &out->name) ||
            !rec_str(&a->ptr[3], WP_NAME_MAX, &out->group) ||
            !rec_str(&a->ptr[5], WP_TEXT_MAX, &out->text)) {
            return a->ptr[2].type != MSGPACK_OBJECT_STR || a->ptr[3].type != MSGPACK_OBJECT_STR ||
                           a->ptr[5].type != MSGPACK_OBJECT_STR
                       ? WP_ETYPE
                       : WP_ETOOBIG;
        }
        if (obj_i64(&a->ptr[4], &sev) < 0 || sev < 0 || sev > 3) {
            return WP_ETYPE;
        }
        if (a->ptr[6].type != MSGPACK_OBJECT_MAP) {
            return WP_ETYPE;
        }
        const msgpack_object_map *fm = &a->ptr[6].via.map;
        if (fm->size > WP_EVENT_MAX_FIELDS) {
            return WP_ETOOBIG;
        }
        for (uint32_t k = 0; k < fm->size; k++) {
            struct wp_str ks, vs;
            if (!rec_str(&fm->ptr[k].key, WP_NAME_MAX, &ks) ||
                !rec_str(&fm->ptr[k].val, WP_TEXT_MAX, &vs)) {
                return WP_ETYPE;
            }
        }
        out->kind = WP_REC_EVENT;
        out->level = (uint32_t)sev;
        out->fields = fm;
        break;
    }
    case WP_REC_CHECK: {
        /* [3, dts, check, status, output] */
        int64_t st = 0;
        if (!rec_str(&a->ptr[2], WP_SOURCE_MAX, &out->name) ||
            !rec_str(&a->ptr[4], WP_TEXT_MAX, &out->text)) {
            return WP_ETYPE;
        }
        if (obj_i64(&a->ptr[3], &st) < 0 || st < 0 || st > 3) {
            return WP_ETYPE;
        }
        out->kind = WP_REC_CHECK;
        out->level = (uint32_t)st;
        break;
    }
    case WP_REC_STATE:
        /* [4, dts, object, group, state, raw, info]: raw and info optional (older agents) */
        if (!rec_str(&a->ptr[2], WP_SOURCE_MAX, &out->name) ||
            !rec_str(&a->ptr[3], WP_INST_MAX, &out->group) ||
            !rec_str(&a->ptr[4], WP_NAME_MAX, &out->text) ||
            (a->size > 5 && !rec_str(&a->ptr[5], WP_NAME_MAX, &out->raw)) ||
            (a->size > 6 && !rec_str(&a->ptr[6], WP_TEXT_MAX, &out->info))) {
            return WP_ETYPE;
        }
        out->kind = WP_REC_STATE;
        break;
    default:
        return WP_EKIND;
    }
    out->ts_ms = m->u.batch.ts_ms + dts;
    return 0;
}

static int arr_str(const msgpack_object *o, uint32_t max, int allow_empty, struct wp_str *out)
{
    if (o->type != MSGPACK_OBJECT_STR) {
        return WP_ETYPE;
    }
    if (o->via.str.size > max) {
        return WP_ETOOBIG;
    }
    if (!allow_empty && o->via.str.size == 0) {
        return WP_EPROTO;
    }
    out->p = o->via.str.ptr;
    out->len = o->via.str.size;
    return 0;
}

int wp_defs_get(const struct wp_msg *m, uint32_t i, struct wp_series_def *out)
{
    int rc = 0;

    if (m->type != WP_MSG_DEFS || i >= m->u.defs.series->size) {
        return WP_EPROTO;
    }
    const msgpack_object *d = &m->u.defs.series->ptr[i];
    if (d->type != MSGPACK_OBJECT_ARRAY) {
        return WP_ETYPE;
    }
    const msgpack_object_array *a = &d->via.array;
    if (a->size != 6) {
        return WP_EPROTO;
    }
    memset(out, 0, sizeof(*out));
    if (a->ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a->ptr[0].via.u64 > UINT32_MAX ||
        a->ptr[4].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a->ptr[4].via.u64 > WP_DS_ABSOLUTE ||
        a->ptr[5].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a->ptr[5].via.u64 == 0 ||
        a->ptr[5].via.u64 > 86400 || a->ptr[3].type != MSGPACK_OBJECT_ARRAY) {
        return WP_ETYPE;
    }
    out->id = (uint32_t)a->ptr[0].via.u64;
    out->type = (uint8_t)a->ptr[4].via.u64;
    out->step_s = (uint32_t)a->ptr[5].via.u64;
    if ((rc = arr_str(&a->ptr[1], WP_NAME_MAX, 0, &out->group)) < 0 ||
        (rc = arr_str(&a->ptr[2], WP_INST_MAX, 1, &out->inst)) < 0) {
        return rc;
    }
    const msgpack_object_array *f = &a->ptr[3].via.array;
    if (f->size == 0) {
        return WP_EPROTO;
    }
    if (f->size > WP_SERIES_MAX_FIELDS) {
        return WP_ETOOBIG;
    }
    out->nfields = f->size;
    for (uint32_t k = 0; k < f->size; k++) {
        if ((rc = arr_str(&f->ptr[k], WP_NAME_MAX, 0, &out->fields[k])) < 0) {
            return rc;
        }
    }
    return 0;
}

double wp_val(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return (double)o->via.u64;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return (double)o->via.i64;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return o->via.f64;
    default:
        return NAN;
    }
}

/* ---- encode -------------------------------------------------------------------------- */

static int buf_write(void *data, const char *p, size_t n)
{
    wp_buf_append(data, p, n);
    return 0;
}

static void pk_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pk_wstr(msgpack_packer *pk, struct wp_str s)
{
    msgpack_pack_str(pk, s.len);
    msgpack_pack_str_body(pk, s.p, s.len);
}

/* Starts a frame in out and its message map of nkeys keys, the first of them "t": type. */
static void msg_begin(struct wp_buf *out, msgpack_packer *pk, size_t *at, uint32_t nkeys,
                      const char *type)
{
    frame_begin(out, at);
    msgpack_packer_init(pk, out, buf_write);
    msgpack_pack_map(pk, nkeys);
    pk_str(pk, "t");
    pk_str(pk, type);
}

void wp_put_hello(struct wp_buf *out, const char *agent, const char *host, const char *version,
                  const char *const *labels, int64_t boot)
{
    msgpack_packer pk;
    size_t at = 0;
    size_t nl = 0;

    while (labels != NULL && labels[nl * 2] != NULL) {
        nl++;
    }
    msg_begin(out, &pk, &at, 7, "hello");
    pk_str(&pk, "v");
    msgpack_pack_uint32(&pk, WP_WIRE_VERSION);
    pk_str(&pk, "agent");
    pk_str(&pk, agent);
    pk_str(&pk, "host");
    pk_str(&pk, host);
    pk_str(&pk, "version");
    pk_str(&pk, version);
    pk_str(&pk, "labels");
    msgpack_pack_map(&pk, nl);
    for (size_t i = 0; i < nl; i++) {
        pk_str(&pk, labels[i * 2]);
        pk_str(&pk, labels[i * 2 + 1]);
    }
    pk_str(&pk, "boot");
    msgpack_pack_int64(&pk, boot);
    frame_end(out, at);
}

void wp_put_welcome(struct wp_buf *out, uint64_t acked)
{
    msgpack_packer pk;
    size_t at = 0;

    msg_begin(out, &pk, &at, 3, "welcome");
    pk_str(&pk, "v");
    msgpack_pack_uint32(&pk, WP_WIRE_VERSION);
    pk_str(&pk, "acked");
    msgpack_pack_uint64(&pk, acked);
    frame_end(out, at);
}

void wp_put_ack(struct wp_buf *out, uint64_t seq)
{
    msgpack_packer pk;
    size_t at = 0;

    msg_begin(out, &pk, &at, 2, "ack");
    pk_str(&pk, "seq");
    msgpack_pack_uint64(&pk, seq);
    frame_end(out, at);
}

void wp_put_error(struct wp_buf *out, const char *msg)
{
    msgpack_packer pk;
    size_t at = 0;

    msg_begin(out, &pk, &at, 2, "error");
    pk_str(&pk, "msg");
    pk_str(&pk, msg);
    frame_end(out, at);
}

void wp_put_defs(struct wp_buf *out, const struct wp_series_def *defs, size_t n)
{
    msgpack_packer pk;
    size_t at = 0;

    msg_begin(out, &pk, &at, 2, "defs");
    pk_str(&pk, "series");
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++) {
        const struct wp_series_def *d = &defs[i];
        msgpack_pack_array(&pk, 6);
        msgpack_pack_uint32(&pk, d->id);
        pk_wstr(&pk, d->group);
        pk_wstr(&pk, d->inst);
        msgpack_pack_array(&pk, d->nfields);
        for (uint32_t k = 0; k < d->nfields; k++) {
            pk_wstr(&pk, d->fields[k]);
        }
        msgpack_pack_uint8(&pk, d->type);
        msgpack_pack_uint32(&pk, d->step_s);
    }
    frame_end(out, at);
}

void wp_put_batch(struct wp_buf *out, uint64_t seq, const uint8_t *tail, size_t tail_len)
{
    msgpack_packer pk;
    size_t at = 0;

    msg_begin(out, &pk, &at, 4, "batch");
    pk_str(&pk, "seq");
    msgpack_pack_uint64(&pk, seq);
    wp_buf_append(out, tail, tail_len); /* "ts" and "recs" pairs, already encoded */
    frame_end(out, at);
}

void wp_batch_enc_init(struct wp_batch_enc *e, int64_t ts_ms)
{
    memset(e, 0, sizeof(*e));
    wp_buf_init(&e->recs);
    e->ts_ms = ts_ms;
}

void wp_batch_enc_cleanup(struct wp_batch_enc *e)
{
    wp_buf_cleanup(&e->recs);
}

void wp_batch_enc_reset(struct wp_batch_enc *e, int64_t ts_ms)
{
    wp_buf_reset(&e->recs);
    e->nrecs = 0;
    e->nvals = 0;
    e->ts_ms = ts_ms;
}

static void pk_value(msgpack_packer *pk, double v)
{
    if (isnan(v)) {
        msgpack_pack_nil(pk);
    } else if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        msgpack_pack_int64(pk, (int64_t)v); /* msgpack-c picks the smallest int form */
    } else if ((double)(float)v == v) {
        msgpack_pack_float(pk, (float)v);
    } else {
        msgpack_pack_double(pk, v);
    }
}

void wp_batch_enc_metric(struct wp_batch_enc *e, uint32_t id, int64_t ts_ms, const double *vals,
                         uint32_t n)
{
    msgpack_packer pk;

    msgpack_packer_init(&pk, &e->recs, buf_write);
    msgpack_pack_array(&pk, 3 + n);
    msgpack_pack_uint8(&pk, WP_REC_METRIC);
    msgpack_pack_uint32(&pk, id);
    msgpack_pack_int64(&pk, ts_ms - e->ts_ms);
    for (uint32_t i = 0; i < n; i++) {
        pk_value(&pk, vals[i]);
    }
    e->nrecs++;
    e->nvals += n;
}

void wp_batch_enc_heartbeat(struct wp_batch_enc *e, int64_t ts_ms)
{
    msgpack_packer pk;

    msgpack_packer_init(&pk, &e->recs, buf_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint8(&pk, WP_REC_HEARTBEAT);
    msgpack_pack_int64(&pk, ts_ms - e->ts_ms);
    e->nrecs++;
}

/* Pack s cut to at most max bytes, never inside a UTF-8 sequence. */
static void pk_str_max(msgpack_packer *pk, const char *s, size_t max)
{
    size_t n = s != NULL ? strnlen(s, max + 1) : 0;
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) {
            n--; /* s[n] continues a sequence: cut before its lead byte */
        }
    }
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s != NULL ? s : "", n);
}

void wp_batch_enc_event(struct wp_batch_enc *e, int64_t ts_ms, const char *src, const char *rule,
                        unsigned sev, const char *text, const char *const *fields)
{
    msgpack_packer pk;
    uint32_t nf = 0;

    while (fields != NULL && fields[2 * nf] != NULL && fields[2 * nf + 1] != NULL &&
           nf < WP_EVENT_MAX_FIELDS) {
        nf++;
    }
    msgpack_packer_init(&pk, &e->recs, buf_write);
    msgpack_pack_array(&pk, 7);
    msgpack_pack_uint8(&pk, WP_REC_EVENT);
    msgpack_pack_int64(&pk, ts_ms - e->ts_ms);
    pk_str_max(&pk, src, WP_SOURCE_MAX);
    pk_str_max(&pk, rule, WP_NAME_MAX);
    msgpack_pack_uint8(&pk, (uint8_t)(sev > 3 ? 3 : sev));
    pk_str_max(&pk, text, WP_TEXT_MAX);
    msgpack_pack_map(&pk, nf);
    for (uint32_t i = 0; i < nf; i++) {
        pk_str_max(&pk, fields[2 * i], WP_NAME_MAX);
        pk_str_max(&pk, fields[2 * i + 1], WP_TEXT_MAX);
    }
    e->nrecs++;
    e->nvals++;
}

void wp_batch_enc_check(struct wp_batch_enc *e, int64_t ts_ms, const char *check, unsigned status,
                        const char *output)
{
    msgpack_packer pk;

    msgpack_packer_init(&pk, &e->recs, buf_write);
    msgpack_pack_array(&pk, 5);
    msgpack_pack_uint8(&pk, WP_REC_CHECK);
    msgpack_pack_int64(&pk, ts_ms - e->ts_ms);
    pk_str_max(&pk, check, WP_SOURCE_MAX);
    msgpack_pack_uint8(&pk, (uint8_t)(status > 3 ? 3 : status));
    pk_str_max(&pk, output, WP_TEXT_MAX);
    e->nrecs++;
    e->nvals++;
}

void wp_batch_enc_state(struct wp_batch_enc *e, int64_t ts_ms, const char *object,
                        const char *group, const char *state, const char *raw,
                        const char *info)
{
    msgpack_packer pk;

    msgpack_packer_init(&pk, &e->recs, buf_write);
    msgpack_pack_array(&pk, 7);
    msgpack_pack_uint8(&pk, WP_REC_STATE);
    msgpack_pack_int64(&pk, ts_ms - e->ts_ms);
    pk_str_max(&pk, object, WP_SOURCE_MAX);
    pk_str_max(&pk, group, WP_INST_MAX);
    pk_str_max(&pk, state, WP_NAME_MAX);
    pk_str_max(&pk, raw, WP_NAME_MAX);
    pk_str_max(&pk, info, WP_TEXT_MAX);
    e->nrecs++;
    e->nvals++;
}

int wp_batch_enc_merge(struct wp_batch_enc *dst, const struct wp_batch_enc *src)
{
    if (dst->ts_ms != src->ts_ms) {
        return -EINVAL; /* record offsets are relative to the base time */
    }
    if (src->nrecs > 0) {
        wp_buf_append(&dst->recs, wp_buf_head(&src->recs), wp_buf_unread(&src->recs));
    }
    dst->nrecs += src->nrecs;
    dst->nvals += src->nvals;
    return 0;
}

void wp_batch_enc_finish(const struct wp_batch_enc *e, struct wp_buf *out)
{
    msgpack_packer pk;

    msgpack_packer_init(&pk, out, buf_write);
    pk_str(&pk, "ts");
    msgpack_pack_int64(&pk, e->ts_ms);
    pk_str(&pk, "recs");
    msgpack_pack_array(&pk, e->nrecs);
    if (e->nrecs > 0) {
        /* an encoder without records may never have allocated: no NULL + 0 */
        wp_buf_append(out, wp_buf_head(&e->recs), wp_buf_unread(&e->recs));
    }
}

int wp_str_eq(struct wp_str s, const char *c)
{
    size_t n = strlen(c);
    return s.len == n && memcmp(s.p, c, n) == 0;
}

char *wp_str_dup(struct wp_str s)
{
    /* a field a record kind does not have is empty with p == NULL */
    return wp_xstrndup(s.p != NULL ? s.p : "", s.len);
}
