/* SPDX-License-Identifier: Apache-2.0 */
/* Series dictionary ((group, inst) -> id, persisted in series.dict) and batch building. */
#include "sink.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wp/crc.h"
#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"

#define DICT_MAGIC     "WPDICT1\n"
#define DICT_MAGIC_LEN 8
#define REC_HDR        8 /* body len, crc */
/* The largest body: fixed part + group + inst + every field at its limit. */
#define REC_BODY_MAX                                         \
    (4 + 1 + 4 + 1 + (2 + WP_NAME_MAX) + (2 + WP_INST_MAX) + \
     WP_SERIES_MAX_FIELDS * (2 + WP_NAME_MAX))
#define DEFS_CHUNK       128                 /* defs per frame: at most ~330 KiB */
#define DEFS_FRAME_BYTES ((1u << 20) - 4096) /* cut a frame before this many bytes */

/* One series. Its strings live in the arena at str_off: group\0inst\0field\0...field\0. */
struct series {
    uint32_t str_off;
    uint32_t hash; /* of (group, inst) */
    uint32_t step_s;
    uint16_t group_len;
    uint16_t inst_len;
    uint8_t type;
    uint8_t nfields;
    const struct wp_series_kind *kind; /* the kind that last matched: the fast path */
};

struct agent_sink {
    struct wp_sink wp; /* what probes see; wp.ctx points here */
    int fd;
    int fsync;
    char *path;
    uint64_t file_len; /* bytes known good on disk */
    uint32_t durable;  /* ids up to this one are on disk */

    struct series *ser; /* ser[id - 1] */
    uint32_t nser, ser_cap;
    char *arena;
    size_t arena_len, arena_cap;
    uint32_t *slots; /* open addressing: series id, 0 = empty */
    uint32_t slot_mask;

    struct wp_buf pending; /* records of new series not yet written */
    struct wp_batch_enc enc;
    uint64_t dropped_rows;
};

/* ---- little-endian helpers ------------------------------------------------------------------ */

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* ---- hashing and the table ------------------------------------------------------------------ */

static uint32_t hash_key(const char *group, size_t glen, const char *inst, size_t ilen)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (size_t i = 0; i < glen; i++) {
        h = (h ^ (uint8_t)group[i]) * 16777619u;
    }
    h = (h ^ 0xffu) * 16777619u; /* separator: ("ab","c") != ("a","bc") */
    for (size_t i = 0; i < ilen; i++) {
        h = (h ^ (uint8_t)inst[i]) * 16777619u;
    }
    return h ^ (h >> 15);
}

static void slots_insert(struct agent_sink *s, uint32_t id)
{
    uint32_t i = s->ser[id - 1].hash & s->slot_mask;

    while (s->slots[i] != 0) {
        i = (i + 1) & s->slot_mask;
    }
    s->slots[i] = id;
}

/* Keep the table at most half full. */
static void slots_grow(struct agent_sink *s)
{
    uint32_t cap = s->slot_mask + 1;

    if ((uint64_t)(s->nser + 1) * 2 <= cap) {
        return;
    }
    while ((uint64_t)(s->nser + 1) * 2 > cap) {
        cap *= 2;
    }
    free(s->slots);
    s->slots = wp_xcalloc(cap, sizeof(*s->slots));
    s->slot_mask = cap - 1;
    for (uint32_t id = 1; id <= s->nser; id++) {
        slots_insert(s, id);
    }
}

static const char *ser_group(const struct agent_sink *s, const struct series *e)
{
    return s->arena + e->str_off;
}

static const char *ser_inst(const struct agent_sink *s, const struct series *e)
{
    return s->arena + e->str_off + e->group_len + 1;
}

static const char *ser_fields(const struct agent_sink *s, const struct series *e)
{
    return ser_inst(s, e) + e->inst_len + 1;
}

/* Does series e have exactly kind's layout? */
static int ser_matches_kind(const struct agent_sink *s, const struct series *e,
                            const struct wp_series_kind *kind)
{
    if (e->type != (uint8_t)kind->type || e->nfields != kind->nfields || kind->fields == NULL ||
        strcmp(ser_group(s, e), kind->group) != 0) {
        return 0;
    }
    const char *f = ser_fields(s, e);
    for (uint32_t k = 0; k < kind->nfields; k++) {
        if (kind->fields[k] == NULL || strcmp(f, kind->fields[k]) != 0) {
            return 0;
        }
        f += strlen(f) + 1;
    }
    return 1;
}

/* ---- adding series -------------------------------------------------------------------------- */

static void arena_add(struct agent_sink *s, const char *p, size_t n)
{
    if (s->arena_cap - s->arena_len < n + 1) {
        size_t cap = s->arena_cap ? s->arena_cap : 4096;
        while (cap - s->arena_len < n + 1) {
            cap *= 2;
        }
        s->arena = wp_xrealloc(s->arena, cap);
        s->arena_cap = cap;
    }
    memcpy(s->arena + s->arena_len, p, n);
    s->arena[s->arena_len + n] = '\0';
    s->arena_len += n + 1;
}

/* Add series id nser + 1 with these names. names: group, inst, then nfields field names. */
static uint32_t ser_add(struct agent_sink *s, uint8_t type, uint32_t step_s, uint32_t nfields,
                        const char *const *names, const size_t *lens)
{
    if (s->nser == s->ser_cap) {
        s->ser_cap = s->ser_cap ? s->ser_cap * 2 : 64;
        s->ser = wp_xrealloc(s->ser, (size_t)s->ser_cap * sizeof(*s->ser));
    }
    slots_grow(s);
    struct series *e = &s->ser[s->nser];
    memset(e, 0, sizeof(*e));
    e->str_off = (uint32_t)s->arena_len;
    e->group_len = (uint16_t)lens[0];
    e->inst_len = (uint16_t)lens[1];
    e->type = type;
    e->step_s = step_s;
    e->nfields = (uint8_t)nfields;
    e->hash = hash_key(names[0], lens[0], names[1], lens[1]);
    for (uint32_t i = 0; i < 2 + nfields; i++) {
        arena_add(s, names[i], lens[i]);
    }
    s->nser++;
    slots_insert(s, s->nser);
    return s->nser;
}

/* Queue the dictionary record of series id for agent_sink_sync(). */
static void record_queue(struct agent_sink *s, uint32_t id)
{
    const struct series *e = &s->ser[id - 1];
    uint8_t *p = wp_buf_reserve(&s->pending, REC_HDR + REC_BODY_MAX);
    size_t at = s->pending.len; /* after reserve(), which may compact */
    uint8_t *b = p + REC_HDR;
    size_t n = 0;
    const char *str = ser_group(s, e);

    put_u32(b + n, id);
    n += 4;
    b[n++] = e->type;
    put_u32(b + n, e->step_s);
    n += 4;
    b[n++] = e->nfields;
    for (uint32_t i = 0; i < 2u + e->nfields; i++) {
        size_t l = strlen(str);
        put_u16(b + n, (uint16_t)l);
        memcpy(b + n + 2, str, l);
        n += 2 + l;
        str += l + 1;
    }
    put_u32(p, (uint32_t)n);
    put_u32(p + 4, wp_crc32c(0, b, n));
    s->pending.len = at + REC_HDR + n;
}

static int name_ok(const char *name, size_t max, size_t *len)
{
    if (name == NULL) {
        return 0;
    }
    *len = strnlen(name, max + 1);
    return *len >= 1 && *len <= max;
}

static void drop_row(struct agent_sink *s, const struct wp_series_kind *kind, const char *why)
{
    s->dropped_rows++;
    /* the same bad kind comes back every tick: log at 1, 2, 4, 8, ... drops */
    if ((s->dropped_rows & (s->dropped_rows - 1)) == 0) {
        WP_WARN("agent", "dropping row group=%s reason=\"%s\" dropped_rows=%llu",
                (kind != NULL && kind->group != NULL) ? kind->group : "?", why,
                (unsigned long long)s->dropped_rows);
    }
}

/* The id of (kind, inst, step), created if new; 0 if the row must be dropped. */
static uint32_t lookup(struct agent_sink *s, const struct wp_series_kind *kind, const char *inst,
                       uint32_t step_s)
{
    size_t glen = 0;
    size_t ilen = strnlen(inst, WP_INST_MAX + 1);
    const char *names[2 + WP_SERIES_MAX_FIELDS];
    size_t lens[2 + WP_SERIES_MAX_FIELDS];

    if (ilen > WP_INST_MAX) {
        drop_row(s, kind, "instance name too long");
        return 0;
    }
    if (kind == NULL || !name_ok(kind->group, WP_NAME_MAX, &glen)) {
        drop_row(s, kind, "bad group name");
        return 0;
    }
    uint32_t h = hash_key(kind->group, glen, inst, ilen);
    for (uint32_t i = h & s->slot_mask; s->slots[i] != 0; i = (i + 1) & s->slot_mask) {
        struct series *e = &s->ser[s->slots[i] - 1];
        if (e->hash != h || e->step_s != step_s || e->inst_len != ilen ||
            memcmp(ser_inst(s, e), inst, ilen) != 0) {
            continue;
        }
        if (e->kind == kind) {
            return s->slots[i];
        }
        if (ser_matches_kind(s, e, kind)) {
            e->kind = kind;
            return s->slots[i];
        }
    }

    /* a new series: check everything the wire and the dictionary file limit */
    if (kind->nfields == 0 || kind->nfields > WP_SERIES_MAX_FIELDS || kind->fields == NULL) {
        drop_row(s, kind, "bad field count");
        return 0;
    }
    if ((unsigned)kind->type > WP_DS_ABSOLUTE) {
        drop_row(s, kind, "bad series type");
        return 0;
    }
    if (step_s == 0 || step_s > 86400) {
        drop_row(s, kind, "bad step");
        return 0;
    }
    if (s->nser >= AGENT_SERIES_MAX) {
        drop_row(s, kind, "too many series");
        return 0;
    }
    names[0] = kind->group;
    lens[0] = glen;
    names[1] = inst;
    lens[1] = ilen;
    for (uint32_t k = 0; k < kind->nfields; k++) {
        if (!name_ok(kind->fields[k], WP_NAME_MAX, &lens[2 + k])) {
            drop_row(s, kind, "bad field name");
            return 0;
        }
        names[2 + k] = kind->fields[k];
    }
    uint32_t id = ser_add(s, (uint8_t)kind->type, step_s, kind->nfields, names, lens);
    s->ser[id - 1].kind = kind;
    record_queue(s, id);
    WP_DEBUG("agent", "new series id=%u group=%s inst=%s step=%u", id, kind->group, inst, step_s);
    return id;
}

static void sink_metric(struct wp_sink *ws, const struct wp_series_kind *kind, const char *inst,
                        const double *vals)
{
    struct agent_sink *s = ws->ctx;
    uint32_t id = lookup(s, kind, inst != NULL ? inst : "", ws->step_s);

    if (id == 0) {
        return;
    }
    wp_batch_enc_metric(&s->enc, id, ws->ts_ms, vals, kind->nfields);
}

static void sink_event(struct wp_sink *ws, const char *src, const char *rule, unsigned sev,
                       const char *text, const char *const *fields)
{
    struct agent_sink *s = ws->ctx;
    wp_batch_enc_event(&s->enc, ws->ts_ms, src, rule, sev, text, fields);
}

static void sink_check(struct wp_sink *ws, const char *check, unsigned status, const char *output)
{
    struct agent_sink *s = ws->ctx;
    wp_batch_enc_check(&s->enc, ws->ts_ms, check, status, output);
}

static void sink_state(struct wp_sink *ws, const char *object, const char *group,
                       const char *state, const char *raw, const char *info)
{
    struct agent_sink *s = ws->ctx;
    wp_batch_enc_state(&s->enc, ws->ts_ms, object, group, state, raw, info);
}

/* ---- loading -------------------------------------------------------------------------------- */

/* Parse one record body; adds the series. Returns 0 or WP_ECORRUPT. */
static int load_body(struct agent_sink *s, const uint8_t *b, size_t n)
{
    const char *names[2 + WP_SERIES_MAX_FIELDS];
    size_t lens[2 + WP_SERIES_MAX_FIELDS];
    size_t off = 10;

    if (n < 10) {
        return WP_ECORRUPT;
    }
    uint32_t id = get_u32(b);
    uint8_t type = b[4];
    uint32_t step = get_u32(b + 5);
    uint8_t nfields = b[9];
    if (id != s->nser + 1 || id > AGENT_SERIES_MAX || type > WP_DS_ABSOLUTE || step == 0 ||
        step > 86400 || nfields == 0 || nfields > WP_SERIES_MAX_FIELDS) {
        return WP_ECORRUPT;
    }
    for (uint32_t i = 0; i < 2u + nfields; i++) {
        size_t max = i == 1 ? WP_INST_MAX : WP_NAME_MAX;
        if (n - off < 2) {
            return WP_ECORRUPT;
        }
        size_t l = get_u16(b + off);
        off += 2;
        if (l > max || l > n - off || (i != 1 && l == 0) || memchr(b + off, '\0', l) != NULL) {
            return WP_ECORRUPT;
        }
        names[i] = (const char *)b + off;
        lens[i] = l;
        off += l;
    }
    if (off != n) {
        return WP_ECORRUPT;
    }
    ser_add(s, type, step, nfields, names, lens);
    return 0;
}

static int read_full(int fd, void *buf, size_t n, size_t *got)
{
    size_t done = 0;

    while (done < n) {
        ssize_t r = read(fd, (uint8_t *)buf + done, n - done);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (r == 0) {
            break;
        }
        done += (size_t)r;
    }
    *got = done;
    return 0;
}

/* Load every good record; file_len ends at the last one. */
static int load(struct agent_sink *s)
{
    uint8_t hdr[REC_HDR];
    uint8_t *body = wp_xmalloc(REC_BODY_MAX);
    size_t got = 0;
    int rc = 0;

    for (;;) {
        rc = read_full(s->fd, hdr, REC_HDR, &got);
        if (rc < 0 || got < REC_HDR) {
            break;
        }
        uint32_t len = get_u32(hdr);
        if (len > REC_BODY_MAX) {
            break;
        }
        rc = read_full(s->fd, body, len, &got);
        if (rc < 0 || got < len) {
            break;
        }
        if (get_u32(hdr + 4) != wp_crc32c(0, body, len) || load_body(s, body, len) < 0) {
            break;
        }
        s->file_len += REC_HDR + len;
    }
    free(body);
    return rc;
}

static int fsync_dir_of(const char *path)
{
    char *copy = wp_xstrdup(path);
    int rc = 0;
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (dfd < 0) {
        rc = -errno;
    } else {
        if (fsync(dfd) < 0) {
            rc = -errno;
        }
        close(dfd);
    }
    free(copy);
    return rc;
}

/* A new or empty file gets the magic; a torn magic from a crash at creation is redone. */
static int check_magic(struct agent_sink *s, uint64_t size)
{
    char magic[DICT_MAGIC_LEN];
    size_t got = 0;
    int rc = 0;

    if (size > 0) {
        rc = read_full(s->fd, magic, DICT_MAGIC_LEN, &got);
        if (rc < 0) {
            return rc;
        }
        if (got == DICT_MAGIC_LEN && memcmp(magic, DICT_MAGIC, DICT_MAGIC_LEN) == 0) {
            s->file_len = DICT_MAGIC_LEN;
            return 0;
        }
        if (got == DICT_MAGIC_LEN || memcmp(magic, DICT_MAGIC, got) != 0) {
            return WP_ECORRUPT;
        }
    }
    if (ftruncate(s->fd, 0) < 0) {
        return -errno;
    }
    ssize_t w = pwrite(s->fd, DICT_MAGIC, DICT_MAGIC_LEN, 0);
    if (w < 0) {
        return -errno;
    }
    if (w != DICT_MAGIC_LEN) {
        return -EIO;
    }
    if (fdatasync(s->fd) < 0) {
        return -errno;
    }
    s->file_len = DICT_MAGIC_LEN;
    if (lseek(s->fd, DICT_MAGIC_LEN, SEEK_SET) < 0) {
        return -errno;
    }
    return fsync_dir_of(s->path);
}

int agent_sink_open(const char *path, int fsync, struct agent_sink **out)
{
    struct agent_sink *s = NULL;
    struct stat st;
    int rc = 0;

    *out = NULL;
    s = wp_xcalloc(1, sizeof(*s));
    s->fd = -1;
    s->fsync = fsync;
    s->path = wp_xstrdup(path);
    s->slots = wp_xcalloc(64, sizeof(*s->slots));
    s->slot_mask = 63;
    wp_buf_init(&s->pending);
    wp_batch_enc_init(&s->enc, 0);
    s->wp.metric = sink_metric;
    s->wp.event = sink_event;
    s->wp.check = sink_check;
    s->wp.state = sink_state;
    s->wp.ctx = s;
    s->wp.step_s = 1;

    s->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->fd < 0 || fstat(s->fd, &st) < 0) {
        rc = -errno;
        goto out;
    }
    rc = check_magic(s, (uint64_t)st.st_size);
    if (rc < 0) {
        goto out;
    }
    rc = load(s);
    if (rc < 0) {
        goto out;
    }
    if ((uint64_t)st.st_size > s->file_len) {
        WP_WARN("agent", "series dictionary %s: cut torn tail at offset %llu (%llu bytes)", path,
                (unsigned long long)s->file_len,
                (unsigned long long)((uint64_t)st.st_size - s->file_len));
        if (ftruncate(s->fd, (off_t)s->file_len) < 0) {
            rc = -errno;
            goto out;
        }
    }
    s->durable = s->nser;
    *out = s;
    s = NULL;
out:
    agent_sink_free(s);
    return rc;
}

void agent_sink_free(struct agent_sink *s)
{
    if (s == NULL) {
        return;
    }
    if (s->fd >= 0) {
        close(s->fd);
    }
    wp_batch_enc_cleanup(&s->enc);
    wp_buf_cleanup(&s->pending);
    free(s->slots);
    free(s->arena);
    free(s->ser);
    free(s->path);
    free(s);
}

/* ---- batches and the sender's view ---------------------------------------------------------- */

struct wp_sink *agent_sink_wp(struct agent_sink *s)
{
    return &s->wp;
}

void agent_sink_batch_begin(struct agent_sink *s, int64_t ts_ms)
{
    wp_batch_enc_reset(&s->enc, ts_ms);
    s->wp.ts_ms = ts_ms;
}

uint32_t agent_sink_batch_rows(const struct agent_sink *s)
{
    return s->enc.nrecs;
}

uint32_t agent_sink_batch_values(const struct agent_sink *s)
{
    return s->enc.nvals > UINT32_MAX ? UINT32_MAX : (uint32_t)s->enc.nvals;
}

int agent_sink_merge(struct agent_sink *s, const struct wp_batch_enc *recs)
{
    return wp_batch_enc_merge(&s->enc, recs);
}

void agent_sink_batch_finish(const struct agent_sink *s, struct wp_buf *out)
{
    wp_batch_enc_finish(&s->enc, out);
}

int agent_sink_sync(struct agent_sink *s)
{
    size_t n = wp_buf_unread(&s->pending);
    size_t done = 0;
    int rc = 0;

    if (n == 0) {
        s->durable = s->nser;
        return 0;
    }
    while (done < n) {
        ssize_t w =
            pwrite(s->fd, wp_buf_head(&s->pending) + done, n - done, (off_t)(s->file_len + done));
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            rc = -errno;
            goto out;
        }
        done += (size_t)w;
    }
    if (s->fsync && fdatasync(s->fd) < 0) {
        rc = -errno;
        goto out;
    }
    s->file_len += n;
    s->durable = s->nser;
    wp_buf_reset(&s->pending);
out:
    if (rc < 0 && ftruncate(s->fd, (off_t)s->file_len) < 0) {
        /* the next sync writes at file_len again, over whatever is there */
        WP_DEBUG("agent", "series dictionary: cannot cut back: %s", strerror(errno));
    }
    return rc;
}

uint32_t agent_sink_max_id(const struct agent_sink *s)
{
    return s->nser;
}

uint32_t agent_sink_durable_id(const struct agent_sink *s)
{
    return s->durable;
}

int agent_sink_def(const struct agent_sink *s, uint32_t id, struct wp_series_def *out)
{
    if (id == 0 || id > s->nser) {
        return WP_ENOTFOUND;
    }
    const struct series *e = &s->ser[id - 1];
    memset(out, 0, sizeof(*out));
    out->id = id;
    out->group.p = ser_group(s, e);
    out->group.len = e->group_len;
    out->inst.p = ser_inst(s, e);
    out->inst.len = e->inst_len;
    out->nfields = e->nfields;
    out->type = e->type;
    out->step_s = e->step_s;
    const char *f = ser_fields(s, e);
    for (uint32_t k = 0; k < e->nfields; k++) {
        out->fields[k].p = f;
        out->fields[k].len = (uint32_t)strlen(f);
        f += out->fields[k].len + 1;
    }
    return 0;
}

size_t agent_sink_put_defs(const struct agent_sink *s, uint32_t after, uint32_t upto,
                           struct wp_buf *out)
{
    struct wp_series_def *defs = NULL;
    size_t frames = 0;
    size_t n = 0;
    size_t bytes = 0;

    if (upto > s->nser) {
        upto = s->nser;
    }
    if (after >= upto) {
        return 0;
    }
    defs = wp_xmalloc(DEFS_CHUNK * sizeof(*defs));
    for (uint32_t id = after + 1; id <= upto; id++) {
        struct wp_series_def *d = &defs[n];
        agent_sink_def(s, id, d);
        /* msgpack overhead per string is at most 3 bytes here, per def ~16 */
        bytes += 16 + d->group.len + d->inst.len + 3u * d->nfields;
        for (uint32_t k = 0; k < d->nfields; k++) {
            bytes += d->fields[k].len;
        }
        n++;
        if (n == DEFS_CHUNK || bytes >= DEFS_FRAME_BYTES || id == upto) {
            wp_put_defs(out, defs, n);
            frames++;
            n = 0;
            bytes = 0;
        }
    }
    free(defs);
    return frames;
}

uint64_t agent_sink_dropped_rows(const struct agent_sink *s)
{
    return s->dropped_rows;
}
