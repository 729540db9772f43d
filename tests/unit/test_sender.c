/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for the agent sender against an in-process fake collector (TLS on 127.0.0.1:0). */
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <uv.h>

#include "agent.h"
#include "agent_conf.h"
#include "probe.h"
#include "sender.h"
#include "sink.h"
#include "spool.h"
#include "wp/buf.h"
#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"
#include "wp/pki.h"
#include "wp/tls.h"
#include "wp/wire.h"

#define MAX_IDS     256
#define MAX_BATCHES 256
#define WAIT_ROUNDS 500 /* x 10 ms guard ticks: a 5 s bound on every wait */

static const char *const t_fields[] = {"v"};
static const struct wp_series_kind t_kind = {"t", t_fields, 1, WP_DS_GAUGE};

static char g_dir[64]; /* certificates, made once for the group */

/* ---- the fake collector --------------------------------------------------------------------- */

struct fcoll;

struct fconn {
    uv_tcp_t tcp;
    struct fcoll *fc;
    struct fconn *next;
    struct wp_tls_conn *tls;
    int hs_done;
    int closing;
    struct wp_buf in;
    char rbuf[16384];
    uint8_t defined[MAX_IDS]; /* ids defined on this connection */
};

struct fcoll {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int port;
    struct wp_tls_ctx *tls;
    struct fconn *conns;
    struct fconn *cur;
    /* behaviour */
    uint64_t welcome_acked;
    int auto_ack;
    int errors_left;  /* answer this many HELLOs with an error frame */
    int garbage_left; /* after this many WELCOMEs, send a frame header over 1 MiB */
    /* what arrived */
    int naccepted;
    int nhello;
    char hello_agent[64];
    int ndefs_frames;
    uint64_t seqs[MAX_BATCHES];
    uint32_t nrows[MAX_BATCHES];
    int nbatches;
    int undefined_use; /* rows naming an id not defined on their connection */
};

struct wreq {
    uv_write_t req;
    char *data;
};

static void fc_write_cb(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;

    (void)status;
    free(w->data);
    free(w);
}

static void fc_flush(struct fconn *c)
{
    struct wp_buf *out = wp_tls_outbuf(c->tls);
    size_t n = wp_buf_unread(out);

    if (n == 0 || c->closing) {
        return;
    }
    struct wreq *w = wp_xcalloc(1, sizeof(*w));
    w->data = wp_xmalloc(n);
    memcpy(w->data, wp_buf_head(out), n);
    wp_buf_consume(out, n);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, fc_write_cb) < 0) {
        free(w->data);
        free(w);
    }
}

static void fc_send(struct fconn *c, struct wp_buf *frame)
{
    assert_int_equal(wp_tls_write(c->tls, wp_buf_head(frame), wp_buf_unread(frame)), 0);
    fc_flush(c);
}

static void fc_closed(uv_handle_t *h)
{
    struct fconn *c = h->data;
    struct fconn **pp = &c->fc->conns;

    while (*pp != c) {
        pp = &(*pp)->next;
    }
    *pp = c->next;
    if (c->fc->cur == c) {
        c->fc->cur = NULL;
    }
    wp_tls_conn_free(c->tls);
    wp_buf_cleanup(&c->in);
    free(c);
}

static void fc_close(struct fconn *c)
{
    if (!c->closing) {
        c->closing = 1;
        uv_close((uv_handle_t *)&c->tcp, fc_closed);
    }
}

static void fc_msg(struct fconn *c, const struct wp_msg *m)
{
    struct fcoll *fc = c->fc;
    struct wp_buf out;
    struct wp_series_def d;
    struct wp_rec rec;

    wp_buf_init(&out);
    switch (m->type) {
    case WP_MSG_HELLO:
        fc->nhello++;
        snprintf(fc->hello_agent, sizeof(fc->hello_agent), "%.*s", (int)m->u.hello.agent.len,
                 m->u.hello.agent.p);
        if (fc->errors_left > 0) {
            fc->errors_left--;
            wp_put_error(&out, "go away");
            fc_send(c, &out);
            break;
        }
        wp_put_welcome(&out, fc->welcome_acked);
        if (fc->garbage_left > 0) {
            /* in the same TLS record as the WELCOME, so the agent reads both at once and
             * never gets to send a batch on this connection */
            static const uint8_t huge[4] = {0x7f, 0xff, 0xff, 0xff};
            fc->garbage_left--;
            wp_buf_append(&out, huge, sizeof(huge));
        }
        fc_send(c, &out);
        break;
    case WP_MSG_DEFS:
        fc->ndefs_frames++;
        for (uint32_t i = 0; i < m->u.defs.series->size; i++) {
            assert_int_equal(wp_defs_get(m, i, &d), 0);
            assert_true(d.id < MAX_IDS);
            c->defined[d.id] = 1;
        }
        break;
    case WP_MSG_BATCH:
        assert_true(fc->nbatches < MAX_BATCHES);
        fc->seqs[fc->nbatches] = m->u.batch.seq;
        fc->nrows[fc->nbatches] = m->u.batch.recs->size;
        fc->nbatches++;
        for (uint32_t i = 0; i < m->u.batch.recs->size; i++) {
            assert_int_equal(wp_batch_rec(m, i, &rec), 0);
            if (rec.kind == WP_REC_METRIC && (rec.id >= MAX_IDS || !c->defined[rec.id])) {
                fc->undefined_use++;
            }
        }
        if (fc->auto_ack) {
            wp_put_ack(&out, m->u.batch.seq);
            fc_send(c, &out);
        }
        break;
    default:
        fail_msg("unexpected message from the agent: %s", wp_msg_name(m->type));
    }
    wp_buf_cleanup(&out);
}

static void fc_alloc(uv_handle_t *h, size_t sz, uv_buf_t *buf)
{
    struct fconn *c = h->data;

    (void)sz;
    *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void fc_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct fconn *c = st->data;
    struct wp_msg m;

    if (n < 0) {
        fc_close(c);
        return;
    }
    wp_tls_feed(c->tls, buf->base, (size_t)n);
    if (!c->hs_done) {
        int rc = wp_tls_handshake(c->tls);
        fc_flush(c);
        if (rc == WP_EAGAIN) {
            return;
        }
        if (rc < 0) {
            fc_close(c);
            return;
        }
        c->hs_done = 1;
    }
    for (;;) {
        uint8_t *p = wp_buf_reserve(&c->in, 16384);
        ssize_t r = wp_tls_read(c->tls, p, 16384);
        if (r < 0) {
            if (r != WP_EAGAIN) {
                fc_close(c);
            }
            break;
        }
        c->in.len += (size_t)r;
    }
    for (;;) {
        uint32_t len = 0;
        if (wp_frame_peek(wp_buf_head(&c->in), wp_buf_unread(&c->in), 4u << 20, &len) < 0 ||
            wp_buf_unread(&c->in) - WP_FRAME_HDR < len) {
            break;
        }
        wp_msg_init(&m);
        assert_int_equal(wp_msg_decode(&m, wp_buf_head(&c->in) + WP_FRAME_HDR, len), 0);
        fc_msg(c, &m);
        wp_msg_cleanup(&m);
        wp_buf_consume(&c->in, WP_FRAME_HDR + len);
    }
}

static void fc_accept(uv_stream_t *server, int status)
{
    struct fcoll *fc = server->data;
    struct fconn *c = wp_xcalloc(1, sizeof(*c));

    assert_int_equal(status, 0);
    c->fc = fc;
    wp_buf_init(&c->in);
    uv_tcp_init(fc->loop, &c->tcp);
    c->tcp.data = c;
    c->next = fc->conns;
    fc->conns = c;
    assert_int_equal(uv_accept(server, (uv_stream_t *)&c->tcp), 0);
    assert_int_equal(wp_tls_conn_new(fc->tls, NULL, &c->tls), 0);
    fc->cur = c;
    fc->naccepted++;
    uv_read_start((uv_stream_t *)&c->tcp, fc_alloc, fc_read);
}

static void fc_start(struct fcoll *fc, uv_loop_t *loop)
{
    struct sockaddr_in sa;
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    char err[256];
    char ca[128], crt[128], key[128];
    struct wp_tls_opts o = {.is_server = 1};

    snprintf(ca, sizeof(ca), "%s/ca.crt", g_dir);
    snprintf(crt, sizeof(crt), "%s/watchpost-collector.crt", g_dir);
    snprintf(key, sizeof(key), "%s/watchpost-collector.key", g_dir);
    o.ca_path = ca;
    o.cert_path = crt;
    o.key_path = key;
    assert_int_equal(wp_tls_ctx_new(&o, err, sizeof(err), &fc->tls), 0);
    fc->loop = loop;
    uv_tcp_init(loop, &fc->listener);
    fc->listener.data = fc;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(&fc->listener, (const struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&fc->listener, 16, fc_accept), 0);
    uv_tcp_getsockname(&fc->listener, (struct sockaddr *)&bound, &len);
    fc->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
}

static void fc_ack(struct fcoll *fc, uint64_t seq)
{
    struct wp_buf out;

    assert_non_null(fc->cur);
    wp_buf_init(&out);
    wp_put_ack(&out, seq);
    fc_send(fc->cur, &out);
    wp_buf_cleanup(&out);
}

/* ---- fixture -------------------------------------------------------------------------------- */

struct fx {
    char dir[64];
    uv_loop_t loop;
    uv_timer_t guard;
    struct agent a;
    struct agent_conf conf;
    struct agent_collector cols[2];
    char port_s[2][16];
    struct fcoll fc;
    uv_tcp_t dead; /* bound, never listening: connections to it are refused */
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int group_setup(void **state)
{
    char err[256];

    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/wp_test_sender_ca.XXXXXX");
    if (mkdtemp(g_dir) == NULL || rmdir(g_dir) < 0 ||
        wp_pki_ca_init(g_dir, "test CA", 2, err, sizeof(err)) < 0 ||
        wp_pki_issue(g_dir, "watchpost-collector", WP_PKI_SERVER, 2, NULL, err, sizeof(err)) < 0 ||
        wp_pki_issue(g_dir, "agent1", WP_PKI_CLIENT, 2, NULL, err, sizeof(err)) < 0) {
        fprintf(stderr, "certificates: %s\n", err);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    nftw(g_dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static int setup(void **state)
{
    struct fx *f = wp_xcalloc(1, sizeof(*f));
    struct wp_spool_limits lim = {.max_bytes = 4u << 20, .fsync = 0};
    struct wp_tls_opts o = {.is_server = 0};
    char path[128], ca[128], crt[128], key[128], err[256];

    snprintf(f->dir, sizeof(f->dir), "/tmp/wp_test_sender.XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    uv_loop_init(&f->loop);
    uv_timer_init(&f->loop, &f->guard);
    f->a.loop = &f->loop;
    snprintf(path, sizeof(path), "%s/spool", f->dir);
    assert_int_equal(wp_spool_open(path, &lim, &f->a.spool), 0);
    snprintf(path, sizeof(path), "%s/series.dict", f->dir);
    assert_int_equal(agent_sink_open(path, 0, &f->a.sink), 0);
    snprintf(ca, sizeof(ca), "%s/ca.crt", g_dir);
    snprintf(crt, sizeof(crt), "%s/agent1.crt", g_dir);
    snprintf(key, sizeof(key), "%s/agent1.key", g_dir);
    o.ca_path = ca;
    o.cert_path = crt;
    o.key_path = key;
    assert_int_equal(wp_tls_ctx_new(&o, err, sizeof(err), &f->a.tls), 0);
    fc_start(&f->fc, &f->loop);
    f->fc.auto_ack = 1;

    f->conf.agent.id = "agent1";
    f->conf.agent.host = "host1";
    f->conf.collectors = f->cols;
    f->conf.ncollectors = 1;
    f->cols[0].host = "127.0.0.1";
    snprintf(f->port_s[0], sizeof(f->port_s[0]), "%d", f->fc.port);
    f->cols[0].port = f->port_s[0];
    f->cols[0].server_name = "watchpost-collector";
    f->conf.sender.max_inflight = 64;
    f->conf.sender.backoff_min_ms = 10;
    f->conf.sender.backoff_max_ms = 40;
    f->conf.sender.connect_timeout_ms = 3000;
    f->a.conf = &f->conf;
    *state = f;
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
    struct fx *f = *state;
    int rc = 0;

    agent_sender_stop(f->a.sender);
    for (struct fconn *c = f->fc.conns; c != NULL; c = c->next) {
        fc_close(c);
    }
    uv_walk(&f->loop, close_walk, NULL);
    rc = uv_loop_close(&f->loop);
    for (int i = 0; i < 20 && rc == UV_EBUSY; i++) {
        uv_run(&f->loop, UV_RUN_DEFAULT);
        rc = uv_loop_close(&f->loop);
    }
    assert_int_equal(rc, 0);
    agent_sender_free(f->a.sender);
    wp_tls_ctx_free(f->a.tls);
    wp_tls_ctx_free(f->fc.tls);
    agent_sink_free(f->a.sink);
    wp_spool_close(f->a.spool);
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Spool one batch with one row for each instance in insts (comma-free names). */
static uint64_t spool_batch(struct fx *f, int64_t ts, const char *const *insts, size_t n)
{
    struct wp_sink *ws = agent_sink_wp(f->a.sink);
    struct wp_buf tail;
    uint64_t seq = 0;
    double v = 1;

    agent_sink_batch_begin(f->a.sink, ts);
    ws->ts_ms = ts;
    ws->step_s = 1;
    for (size_t i = 0; i < n; i++) {
        wp_sink_metric(ws, &t_kind, insts[i], &v);
    }
    assert_int_equal(agent_sink_sync(f->a.sink), 0);
    wp_buf_init(&tail);
    agent_sink_batch_finish(f->a.sink, &tail);
    assert_int_equal(wp_spool_append(f->a.spool, wp_buf_head(&tail), wp_buf_unread(&tail), ts,
                                     agent_sink_batch_values(f->a.sink), &seq),
                     0);
    wp_buf_cleanup(&tail);
    return seq;
}

static void guard_cb(uv_timer_t *t)
{
    (void)t;
}

typedef int (*cond_fn)(struct fx *f);

/* Run the loop until cond holds; a 10 ms guard timer bounds each round. */
static int run_until(struct fx *f, cond_fn cond)
{
    uv_timer_start(&f->guard, guard_cb, 10, 10);
    for (int i = 0; i < WAIT_ROUNDS && !cond(f); i++) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&f->guard);
    return cond(f);
}

static int got5(struct fx *f)
{
    return f->fc.nbatches >= 5;
}

static int got3(struct fx *f)
{
    return f->fc.nbatches >= 3;
}

static int got1(struct fx *f)
{
    return f->fc.nbatches >= 1;
}

static int got2(struct fx *f)
{
    return f->fc.nbatches >= 2;
}

static int got4(struct fx *f)
{
    return f->fc.nbatches >= 4;
}

static int acked5(struct fx *f)
{
    struct wp_spool_stats st;

    wp_spool_stats(f->a.spool, &st);
    return st.acked_seq >= 5;
}

static int connected(struct fx *f)
{
    struct agent_sender_stats st;

    agent_sender_stats(f->a.sender, &st);
    return st.connected;
}

static void resumes_from_acked_with_full_defs(void **state)
{
    struct fx *f = *state;
    static const char *const i1[] = {"a", "b"};
    static const char *const i2[] = {"c"};
    struct agent_sender_stats st;

    for (int i = 0; i < 5; i++) {
        spool_batch(f, 1000 * (i + 1), i == 3 ? i2 : i1, i == 3 ? 1 : 2);
    }
    f->fc.welcome_acked = 2;
    assert_int_equal(agent_sender_start(&f->a, &f->a.sender), 0);
    assert_true(run_until(f, got3));
    assert_true(run_until(f, acked5));
    assert_int_equal(f->fc.nbatches, 3);
    assert_int_equal(f->fc.seqs[0], 3);
    assert_int_equal(f->fc.seqs[1], 4);
    assert_int_equal(f->fc.seqs[2], 5);
    assert_int_equal(f->fc.nrows[1], 1);
    assert_int_equal(f->fc.undefined_use, 0);
    assert_int_equal(f->fc.nhello, 1);
    assert_string_equal(f->fc.hello_agent, "agent1");
    /* the whole dictionary (a, b, c) is defined even though batch 1 and 2 are not resent */
    assert_non_null(f->fc.cur);
    assert_true(f->fc.cur->defined[1] && f->fc.cur->defined[2] && f->fc.cur->defined[3]);
    agent_sender_stats(f->a.sender, &st);
    assert_int_equal(st.connected, 1);
    assert_int_equal(st.batches_sent, 3);
    assert_int_equal(st.batches_acked, 3);
    assert_int_equal(st.acked_seq, 5);
}

static void inflight_is_bounded(void **state)
{
    struct fx *f = *state;
    static const char *const i1[] = {"a"};
    struct agent_sender_stats st;

    for (int i = 0; i < 5; i++) {
        spool_batch(f, 1000 * (i + 1), i1, 1);
    }
    f->conf.sender.max_inflight = 2;
    f->fc.auto_ack = 0;
    assert_int_equal(agent_sender_start(&f->a, &f->a.sender), 0);
    assert_true(run_until(f, got2));
    /* the sender writes all it may in one go: had it more room, it would have sent 5 */
    agent_sender_stats(f->a.sender, &st);
    assert_int_equal(st.batches_sent, 2);
    fc_ack(&f->fc, 2); /* cumulative: acks 1 and 2 */
    assert_true(run_until(f, got4));
    agent_sender_stats(f->a.sender, &st);
    assert_int_equal(st.batches_sent, 4);
    assert_int_equal(st.batches_acked, 2);
    fc_ack(&f->fc, 3);
    assert_true(run_until(f, got5));
    agent_sender_stats(f->a.sender, &st);
    assert_int_equal(st.batches_sent, 5);
    assert_int_equal(f->fc.seqs[4], 5);
}

static void new_series_are_defined_before_use(void **state)
{
    struct fx *f = *state;
    static const char *const i1[] = {"a"};
    static const char *const i2[] = {"a", "new1", "new2"};
    int defs_before = 0;

    spool_batch(f, 1000, i1, 1);
    assert_int_equal(agent_sender_start(&f->a, &f->a.sender), 0);
    assert_true(run_until(f, got1));
    assert_int_equal(f->fc.nbatches, 1);
    defs_before = f->fc.ndefs_frames;
    assert_int_equal(agent_sink_max_id(f->a.sink), 1);
    spool_batch(f, 2000, i2, 3); /* creates ids 2 and 3 */
    agent_sender_kick(f->a.sender);
    assert_true(run_until(f, got2));
    assert_int_equal(f->fc.nrows[1], 3);
    assert_int_equal(f->fc.undefined_use, 0);
    assert_int_equal(f->fc.ndefs_frames, defs_before + 1);
}

static void fails_over_and_survives_errors(void **state)
{
    struct fx *f = *state;
    static const char *const i1[] = {"a"};
    struct sockaddr_in sa;
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    struct agent_sender_stats st;

    /* a port nobody listens on: bound, never listening */
    uv_tcp_init(&f->loop, &f->dead);
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(&f->dead, (const struct sockaddr *)&sa, 0), 0);
    uv_tcp_getsockname(&f->dead, (struct sockaddr *)&bound, &len);
    snprintf(f->port_s[1], sizeof(f->port_s[1]), "%d",
             ntohs(((struct sockaddr_in *)&bound)->sin_port));
    f->cols[1] = f->cols[0];
    f->cols[0].port = f->port_s[1]; /* first: refused */
    f->cols[1].port = f->port_s[0]; /* second: the fake collector */
    f->conf.ncollectors = 2;
    f->fc.errors_left = 1;  /* first session: an error frame */
    f->fc.garbage_left = 1; /* next session: a bad frame after WELCOME */
    for (int i = 0; i < 3; i++) {
        spool_batch(f, 1000 * (i + 1), i1, 1);
    }
    assert_int_equal(agent_sender_start(&f->a, &f->a.sender), 0);
    assert_true(run_until(f, got3));
    /* refused, error frame, refused, bad frame, refused, then data */
    assert_int_equal(f->fc.nhello, 3);
    assert_int_equal(f->fc.naccepted, 3);
    assert_true(run_until(f, connected));
    agent_sender_stats(f->a.sender, &st);
    assert_int_equal(st.reconnects, 5);
    assert_int_equal(f->fc.nbatches, 3);
    assert_int_equal(f->fc.seqs[0], 1);
    assert_int_equal(f->fc.undefined_use, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(resumes_from_acked_with_full_defs, setup, teardown),
        cmocka_unit_test_setup_teardown(inflight_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(new_series_are_defined_before_use, setup, teardown),
        cmocka_unit_test_setup_teardown(fails_over_and_survives_errors, setup, teardown),
    };
    wp_log_set_level(WP_LOG_ERROR);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
