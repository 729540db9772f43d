/* SPDX-License-Identifier: Apache-2.0 */
/* Wire protocol v1: length-prefixed msgpack frames between agents and the collector. */
#ifndef WP_COMMON_WIRE_H
#define WP_COMMON_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "wp/buf.h"

#define WP_WIRE_VERSION       1
#define WP_FRAME_HDR          4
#define WP_FRAME_MAX_DEFAULT  (4u << 20)
#define WP_SERIES_MAX_FIELDS  32  /* data sources per series group (RRD file) */
#define WP_NAME_MAX           64  /* group, field and label names */
#define WP_INST_MAX           256 /* instance names: mount points, devices, lines */
#define WP_AGENT_ID_MAX       128
#define WP_SOURCE_MAX         1024  /* event sources (file paths), check and object names */
#define WP_TEXT_MAX           65536 /* event text, check output, state names */
#define WP_EVENT_MAX_FIELDS   16    /* named fields of one event */

/*
 * Frames: 4-byte big-endian body length, then one msgpack map with key "t" naming the type.
 *
 *   agent -> collector
 *     hello  {t, v, agent, host, version, labels{str:str}, boot}
 *     defs   {t, series: [[id, group, inst, [field...], type, step_s], ...]}
 *     batch  {t, seq, ts, recs: [rec...]}        ts: base time, ms since the epoch
 *   collector -> agent
 *     welcome {t, v, acked}                      highest seq durably committed
 *     ack     {t, seq}                           batch seq is durable
 *     error   {t, msg}                           sent before the collector closes
 *
 * Records inside a batch are arrays whose first element is the kind:
 *     [0, id, dts, v1, v2, ...]   metric row: series id, ms offset from the batch ts,
 *                                 one value per field (int, float, or nil = unknown)
 *     [1, dts]                    heartbeat
 *     [2, dts, src, rule, sev, text, {k: v}]   event (a log record): source (file), the
 *                                 rule that matched, severity 0 info 1 warning 2 error
 *                                 3 critical, UTF-8 text, named fields (str: str)
 *     [3, dts, check, status, output]          check result: 0 OK 1 WARNING 2 CRITICAL
 *                                 3 UNKNOWN, with the plugin's output
 *     [4, dts, object, group, state, raw, info]  state of an object (a phone line, an IVR
 *                                 port) in a group: normalised state, the source's own
 *                                 words for it, call info (raw and info may be absent)
 * A batch is self-contained except for series ids, which the agent defines with a
 * defs frame after every WELCOME (its whole dictionary) and before first use.
 */

enum wp_msg_type {
    WP_MSG_HELLO = 1,
    WP_MSG_WELCOME,
    WP_MSG_DEFS,
    WP_MSG_BATCH,
    WP_MSG_ACK,
    WP_MSG_ERROR,
};

enum wp_rec_kind {
    WP_REC_METRIC = 0,
    WP_REC_HEARTBEAT = 1,
    WP_REC_EVENT = 2,
    WP_REC_CHECK = 3,
    WP_REC_STATE = 4,
};

/* RRD data source types; the agent sends rates it computed itself as gauges. */
enum wp_ds_type {
    WP_DS_GAUGE = 0,
    WP_DS_COUNTER = 1,
    WP_DS_DERIVE = 2,
    WP_DS_ABSOLUTE = 3,
};

/* A string borrowed from a decoded message (not NUL-terminated). */
struct wp_str {
    const char *p;
    uint32_t len;
};

struct wp_label {
    struct wp_str key;
    struct wp_str val;
};

/* One series group: an RRD file with one data source per field. */
struct wp_series_def {
    uint32_t id;
    struct wp_str group;
    struct wp_str inst; /* may be empty */
    uint32_t nfields;
    struct wp_str fields[WP_SERIES_MAX_FIELDS];
    uint8_t type;    /* enum wp_ds_type */
    uint32_t step_s; /* sampling interval */
};

struct wp_hello {
    uint32_t version;
    struct wp_str agent;
    struct wp_str host;
    struct wp_str sw_version;
    const msgpack_object_map *labels; /* str -> str, validated */
    int64_t boot;
};

/* A decoded message. Pointers borrow the buffer given to wp_msg_decode() and the
 * unpacked zone; they are valid until wp_msg_cleanup() or the next decode. */
struct wp_msg {
    enum wp_msg_type type;
    msgpack_unpacked up;
    union {
        struct wp_hello hello;
        struct {
            uint32_t version;
            uint64_t acked;
        } welcome;
        struct {
            uint64_t seq;
        } ack;
        struct {
            struct wp_str msg;
        } error;
        struct {
            const msgpack_object_array *series;
        } defs;
        struct {
            uint64_t seq;
            int64_t ts_ms;
            const msgpack_object_array *recs;
        } batch;
    } u;
};

/* A record from a batch, see wp_batch_rec(). */
struct wp_rec {
    enum wp_rec_kind kind;
    int64_t ts_ms;
    uint32_t id;              /* metric: series id */
    uint32_t nvals;           /* metric: values */
    const msgpack_object *vals;
    struct wp_str name;  /* event: source; check: check name; state: object */
    struct wp_str group; /* event: rule; state: group */
    struct wp_str text;  /* event: text; check: output; state: the state */
    struct wp_str raw;   /* state: the source's own state (empty when absent) */
    struct wp_str info;  /* state: call info (empty when absent) */
    uint32_t level;      /* event: severity 0..3; check: status 0..3 */
    const msgpack_object_map *fields; /* event: str -> str (checked), may be empty */
};

/*
 * Check a frame header. n < 4 gives WP_EAGAIN. Returns 0 and the body length when it is
 * 1..max, WP_ETOOBIG over max, WP_EPROTO for an empty body.
 */
int wp_frame_peek(const uint8_t *p, size_t n, uint32_t max, uint32_t *body_len);

/*
 * Decode and validate one frame body (without its header). Every field is type- and
 * length-checked; returns 0, or WP_EPROTO (not a map, missing key), WP_ETYPE (wrong
 * type), WP_EKIND (unknown "t"), WP_ETOOBIG (a name over its limit). Records inside a
 * batch are checked by wp_batch_rec(). Call wp_msg_cleanup() in every case.
 */
void wp_msg_init(struct wp_msg *m);
int wp_msg_decode(struct wp_msg *m, const uint8_t *body, size_t len);
void wp_msg_cleanup(struct wp_msg *m);

/* Record i of a decoded batch, validated. Returns 0, WP_EKIND, WP_ETYPE or WP_EPROTO. */
int wp_batch_rec(const struct wp_msg *m, uint32_t i, struct wp_rec *out);

/* Series definition i of a decoded defs message, validated (names, field count). */
int wp_defs_get(const struct wp_msg *m, uint32_t i, struct wp_series_def *out);

/* A record value as a double: nil gives NaN. */
double wp_val(const msgpack_object *o);

/* Encoders: each appends one whole frame (header + body) to out. */
void wp_put_hello(struct wp_buf *out, const char *agent, const char *host, const char *version,
                  const char *const *labels /* k, v, k, v, ..., NULL */, int64_t boot);
void wp_put_welcome(struct wp_buf *out, uint64_t acked);
void wp_put_ack(struct wp_buf *out, uint64_t seq);
void wp_put_error(struct wp_buf *out, const char *msg);
void wp_put_defs(struct wp_buf *out, const struct wp_series_def *defs, size_t n);
/* A batch frame around a body tail made by wp_batch_enc_finish() (the spool keeps tails). */
void wp_put_batch(struct wp_buf *out, uint64_t seq, const uint8_t *tail, size_t tail_len);

/*
 * Batch encoder (agent side): collects records, then produces the "tail" of a batch
 * frame: the ts and recs key/value pairs, ready for wp_put_batch() with any seq.
 */
struct wp_batch_enc {
    int64_t ts_ms;
    uint32_t nrecs;
    uint64_t nvals;
    struct wp_buf recs;
};

void wp_batch_enc_init(struct wp_batch_enc *e, int64_t ts_ms);
void wp_batch_enc_cleanup(struct wp_batch_enc *e);
void wp_batch_enc_reset(struct wp_batch_enc *e, int64_t ts_ms);
/* Append a metric row; NaN values are sent as nil, integral values as ints. */
void wp_batch_enc_metric(struct wp_batch_enc *e, uint32_t id, int64_t ts_ms, const double *vals,
                         uint32_t n);
void wp_batch_enc_heartbeat(struct wp_batch_enc *e, int64_t ts_ms);
/* An event; fields: k, v, k, v, ..., NULL (or NULL). Strings over their limits are cut
 * (text at WP_TEXT_MAX on a UTF-8 boundary); at most WP_EVENT_MAX_FIELDS fields. */
void wp_batch_enc_event(struct wp_batch_enc *e, int64_t ts_ms, const char *src, const char *rule,
                        unsigned sev, const char *text, const char *const *fields);
void wp_batch_enc_check(struct wp_batch_enc *e, int64_t ts_ms, const char *check, unsigned status,
                        const char *output);
/* raw and info may be NULL (sent as empty strings). */
void wp_batch_enc_state(struct wp_batch_enc *e, int64_t ts_ms, const char *object,
                        const char *group, const char *state, const char *raw,
                        const char *info);
/* Append src's records to dst; both must have the same base time. Returns 0 or -EINVAL. */
int wp_batch_enc_merge(struct wp_batch_enc *dst, const struct wp_batch_enc *src);
/* Write the tail into out (appending). The encoder can be reset and reused. */
void wp_batch_enc_finish(const struct wp_batch_enc *e, struct wp_buf *out);

/* Compare a borrowed string with a C string. */
int wp_str_eq(struct wp_str s, const char *c);
/* Copy into a NUL-terminated heap string; free() it. */
char *wp_str_dup(struct wp_str s);
/* A message type's name, for logs. */
const char *wp_msg_name(enum wp_msg_type t);

#endif
