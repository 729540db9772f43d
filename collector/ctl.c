/* SPDX-License-Identifier: Apache-2.0 */
/* Control socket (unix, mode 0600) for the CLI: "stats" and "flush" requests as frames. */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <msgpack.h>

#include "coll.h"
#include "deliver.h"
#include "coll_rules.h"
#include "outbox.h"
#include "report_sched.h"
#include "journal.h"
#include "rrdw.h"
#include "wp/clock.h"
#include "wp/buf.h"
#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"
#include "wp/wire.h"

#define CTL_MAX_FRAME (64 * 1024)

struct coll_ctl {
    uv_pipe_t pipe;
    struct coll_server *srv;
    char *path;
    int reload_rc;      /* the last reload's outcome, for fill_reload */
    char reload_msg[1024];
};

struct ctl_client {
    uv_pipe_t pipe;
    struct coll_ctl *ctl;
    struct wp_buf in;
    int closing;
    int closed; /* the close callback ran */
    int flushes; /* flush requests still running: free only when 0 */
};

struct ctl_write {
    uv_write_t req;
    struct wp_buf buf;
};

static void client_close_cb(uv_handle_t *h)
{
    struct ctl_client *cl = h->data;
    cl->closed = 1;
    if (cl->flushes == 0) {
        wp_buf_cleanup(&cl->in);
        free(cl);
    }
}

static void client_close(struct ctl_client *cl)
{
    if (!cl->closing) {
        cl->closing = 1;
        uv_close((uv_handle_t *)&cl->pipe, client_close_cb);
    }
}

static void write_cb(uv_write_t *req, int status)
{
    struct ctl_write *w = (struct ctl_write *)req;
    (void)status;
    wp_buf_cleanup(&w->buf);
    free(w);
}

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

static void pk_kv(msgpack_packer *pk, const char *k, uint64_t v)
{
    pk_str(pk, k);
    msgpack_pack_uint64(pk, v);
}

/* Send one reply frame built by fill(). */
static void reply(struct ctl_client *cl, void (*fill)(msgpack_packer *pk, struct coll_server *s))
{
    struct ctl_write *w = NULL;
    msgpack_packer pk;

    if (cl->closing) {
        return;
    }
    w = wp_xcalloc(1, sizeof(*w));
    wp_buf_init(&w->buf);
    wp_buf_reserve(&w->buf, 4);
    w->buf.len = 4;
    msgpack_packer_init(&pk, &w->buf, buf_write);
    fill(&pk, cl->ctl->srv);
    size_t body = w->buf.len - 4;
    w->buf.data[0] = (uint8_t)(body >> 24);
    w->buf.data[1] = (uint8_t)(body >> 16);
    w->buf.data[2] = (uint8_t)(body >> 8);
    w->buf.data[3] = (uint8_t)body;
    uv_buf_t b = uv_buf_init((char *)w->buf.data, (unsigned)w->buf.len);
    if (uv_write(&w->req, (uv_stream_t *)&cl->pipe, &b, 1, write_cb) < 0) {
        wp_buf_cleanup(&w->buf);
        free(w);
        client_close(cl);
    }
}

static void fill_ok(msgpack_packer *pk, struct coll_server *s)
{
    (void)s;
    msgpack_pack_map(pk, 1);
    pk_str(pk, "t");
    pk_str(pk, "ok");
}

static void fill_error(msgpack_packer *pk, struct coll_server *s)
{
    (void)s;
    msgpack_pack_map(pk, 2);
    pk_str(pk, "t");
    pk_str(pk, "error");
    pk_str(pk, "msg");
    pk_str(pk, "unknown request (expected stats, flush or reload)");
}

static void fill_reload(msgpack_packer *pk, struct coll_server *s)
{
    const struct coll_ctl *c = s->ctl;
    msgpack_pack_map(pk, 2);
    pk_str(pk, "t");
    pk_str(pk, c->reload_rc < 0 ? "error" : "ok");
    pk_str(pk, "msg");
    pk_str(pk, c->reload_msg);
}

void coll_stats_foreach(struct coll_server *s, coll_stat_fn fn, void *arg)
{
    struct coll_rules_stats rst;
    struct wp_journal_stats js;
    struct wp_rrdw_stats rs;
    size_t connected = 0;

    memset(&js, 0, sizeof(js));
    memset(&rs, 0, sizeof(rs));
    if (s->journal != NULL) {
        wp_journal_stats(s->journal, &js);
    }
    if (s->rrdw != NULL) {
        wp_rrdw_stats(s->rrdw, &rs);
    }
    for (size_t i = 0; i < s->agents_cap; i++) {
        for (struct coll_agent *a = s->agents[i]; a != NULL; a = a->hnext) {
            connected += a->connected ? 1 : 0;
        }
    }
    coll_rules_stats(s, &rst);
    struct deliver_stats ds;
    struct outbox_counts oc;
    memset(&ds, 0, sizeof(ds));
    memset(&oc, 0, sizeof(oc));
    if (s->deliver != NULL) {
        deliver_stats(s->deliver, &ds);
    }
    if (s->outbox != NULL) {
        outbox_counts(s->outbox, &oc);
    }
    int64_t oldest_s = oc.oldest_queued_ms > 0 ? (wp_clock_now_ms() - oc.oldest_queued_ms) / 1000
                                               : 0;
    struct rsched_stats rps;
    rsched_stats(s->reports, &rps);
    const struct {
        const char *name;
        uint64_t value;
    } kv[] = {
        {"agents", s->nagents},
        {"agents_connected", connected},
        {"connections", s->nconns},
        {"accepted", s->st.accepted},
        {"handshakes", s->st.handshakes},
        {"resumed", s->st.resumed},
        {"refused_tls", s->st.refused_tls},
        {"refused_auth", s->st.refused_auth},
        {"closed_proto", s->st.closed_proto},
        {"batches", s->st.batches},
        {"values_received", s->st.values_received},
        {"values_acked", s->st.values_acked},
        {"acks_sent", s->st.acks_sent},
        {"dup_batches", s->st.dup_batches},
        {"missing_batches", s->st.missing_batches},
        {"journal_errors", s->st.journal_errors},
        {"replayed_batches", s->st.replayed_batches},
        {"replayed_values", s->st.replayed_values},
        {"journal_records", js.records},
        {"journal_bytes", js.bytes},
        {"journal_syncs", js.syncs},
        {"journal_failed", (uint64_t)js.failed},
        {"rrd_files", rs.files},
        {"rrd_files_created", rs.files_created},
        {"rrd_rows_written", rs.rows_written},
        {"rrd_rows_skipped", rs.rows_skipped},
        {"rrd_values_written", rs.values_written},
        {"rrd_update_calls", rs.update_calls},
        {"rrd_errors", rs.errors},
        {"rrd_pending_rows", rs.pending_rows},
        {"rules_samples", rst.samples},
        {"rules_problems", rst.problems},
        {"rules_errors", rst.errors},
        {"rules_fires", rst.fires},
        {"rules_fire_delay_p50_us", rst.delay_p50_us},
        {"rules_fire_delay_p99_us", rst.delay_p99_us},
        {"rules_fire_delay_max_us", rst.delay_max_us},
        {"incidents_opened", rst.opened},
        {"notify_started", ds.started},
        {"notify_sent", ds.sent},
        {"notify_retried", ds.retried},
        {"notify_dead", ds.dead},
        {"notify_reconciled", ds.reconciled},
        {"notify_digested", ds.digested},
        {"notify_in_flight", ds.in_flight},
        {"notify_queued", oc.queued},
        {"notify_dead_total", oc.dead},
        {"notify_oldest_queued_s", oldest_s > 0 ? (uint64_t)oldest_s : 0},
        {"report_runs", rps.runs},
        {"report_runs_ok", rps.ok},
        {"report_runs_failed", rps.failed},
    };
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) {
        fn(arg, kv[i].name, kv[i].value);
    }
    for (int b = 0; b < COLL_RULES_DELAY_BUCKETS; b++) {
        char name[48];
        if (coll_rules_delay_bounds_us[b] == INT64_MAX) {
            snprintf(name, sizeof(name), "rules_open_delay_le_inf");
        } else {
            snprintf(name, sizeof(name), "rules_open_delay_le_%lldus",
                     (long long)coll_rules_delay_bounds_us[b]);
        }
        fn(arg, name, rst.delay_le[b]);
    }
}

static void count_stat(void *arg, const char *name, uint64_t value)
{
    (void)name;
    (void)value;
    (*(uint32_t *)arg)++;
}

static void pack_stat(void *arg, const char *name, uint64_t value)
{
    pk_kv(arg, name, value);
}

static void fill_stats(msgpack_packer *pk, struct coll_server *s)
{
    uint32_t n = 0;

    /* the map header is counted by the same walk so it can never drift */
    coll_stats_foreach(s, count_stat, &n);
    msgpack_pack_map(pk, 1 + n);
    pk_str(pk, "t");
    pk_str(pk, "stats");
    coll_stats_foreach(s, pack_stat, pk);
}

static void flush_done(void *arg)
{
    struct ctl_client *cl = arg;

    cl->flushes--;
    if (cl->closing) {
        if (cl->flushes == 0 && cl->closed) {
            /* the close callback already ran while we were pending: free now */
            wp_buf_cleanup(&cl->in);
            free(cl);
        }
        return;
    }
    reply(cl, fill_ok);
}

static void handle(struct ctl_client *cl, const uint8_t *body, size_t len)
{
    msgpack_unpacked up;
    size_t off = 0;
    const char *t = NULL;
    size_t tl = 0;

    msgpack_unpacked_init(&up);
    if (msgpack_unpack_next(&up, (const char *)body, len, &off) == MSGPACK_UNPACK_SUCCESS &&
        up.data.type == MSGPACK_OBJECT_MAP) {
        const msgpack_object_map *m = &up.data.via.map;
        for (uint32_t i = 0; i < m->size; i++) {
            const msgpack_object *k = &m->ptr[i].key;
            const msgpack_object *v = &m->ptr[i].val;
            if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == 1 && k->via.str.ptr[0] == 't' &&
                v->type == MSGPACK_OBJECT_STR) {
                t = v->via.str.ptr;
                tl = v->via.str.size;
            }
        }
    }
    struct coll_server *s = cl->ctl->srv;
    if (t != NULL && tl == 5 && memcmp(t, "stats", 5) == 0) {
        reply(cl, fill_stats);
    } else if (t != NULL && tl == 6 && memcmp(t, "reload", 6) == 0) {
        cl->ctl->reload_rc = coll_rules_reload(s, cl->ctl->reload_msg,
                                               sizeof(cl->ctl->reload_msg));
        reply(cl, fill_reload);
    } else if (t != NULL && tl == 5 && memcmp(t, "flush", 5) == 0 && s->rrdw != NULL) {
        cl->flushes++;
        wp_rrdw_flush_all(s->rrdw, flush_done, cl);
    } else {
        reply(cl, fill_error);
    }
    msgpack_unpacked_destroy(&up);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct ctl_client *cl = h->data;
    (void)hint;
    uint8_t *p = wp_buf_reserve(&cl->in, 4096);
    *buf = uv_buf_init((char *)p, 4096);
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct ctl_client *cl = st->data;

    (void)buf;
    if (nread < 0) {
        client_close(cl);
        return;
    }
    cl->in.len += (size_t)nread;
    for (int guard = 0; guard < 64; guard++) {
        uint32_t len = 0;
        int rc = wp_frame_peek(wp_buf_head(&cl->in), wp_buf_unread(&cl->in), CTL_MAX_FRAME, &len);
        if (rc == WP_EAGAIN) {
            break;
        }
        if (rc < 0) {
            client_close(cl);
            return;
        }
        if (wp_buf_unread(&cl->in) < 4 + (size_t)len) {
            break;
        }
        handle(cl, wp_buf_head(&cl->in) + 4, len);
        wp_buf_consume(&cl->in, 4 + (size_t)len);
    }
}

static void conn_cb(uv_stream_t *server, int status)
{
    struct coll_ctl *ctl = server->data;

    if (status < 0) {
        return;
    }
    struct ctl_client *cl = wp_xcalloc(1, sizeof(*cl));
    cl->ctl = ctl;
    wp_buf_init(&cl->in);
    uv_pipe_init(ctl->srv->loop, &cl->pipe, 0);
    cl->pipe.data = cl;
    if (uv_accept(server, (uv_stream_t *)&cl->pipe) < 0) {
        client_close(cl);
        return;
    }
    uv_read_start((uv_stream_t *)&cl->pipe, alloc_cb, read_cb);
}

static void ctl_close_cb(uv_handle_t *h)
{
    struct coll_ctl *ctl = h->data;
    free(ctl->path);
    free(ctl);
}

int coll_ctl_start(struct coll_server *s, const char *path, struct coll_ctl **out)
{
    struct coll_ctl *ctl = wp_xcalloc(1, sizeof(*ctl));
    int rc = 0;

    *out = NULL;
    ctl->srv = s;
    ctl->path = wp_xstrdup(path);
    uv_pipe_init(s->loop, &ctl->pipe, 0);
    ctl->pipe.data = ctl;
    unlink(path); /* a stale socket from a crashed run */
    mode_t old = umask(0177);
    rc = uv_pipe_bind(&ctl->pipe, path);
    umask(old);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&ctl->pipe, 16, conn_cb);
    }
    if (rc < 0) {
        WP_ERROR("collector", "control socket %s: %s", path, uv_strerror(rc));
        uv_close((uv_handle_t *)&ctl->pipe, ctl_close_cb);
        return rc;
    }
    *out = ctl;
    return 0;
}

void coll_ctl_stop(struct coll_ctl *c)
{
    unlink(c->path);
    uv_close((uv_handle_t *)&c->pipe, ctl_close_cb);
}
