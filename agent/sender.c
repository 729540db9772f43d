/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's connection to the collector: failover, backoff, TLS, HELLO/WELCOME, batches. */
#include "sender.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "agent_conf.h"
#include "sink.h"
#include "spool.h"
#include "wp/clock.h"
#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"
#include "wp/tls.h"
#include "wp/wire.h"

#define FRAME_IN_MAX  (1u << 20)   /* collector -> agent frames are small */
#define WRITEQ_MAX    (512u << 10) /* stop encrypting batches above this many queued bytes */
#define STABLE_MS     30000        /* a connection up this long resets the backoff */
#define READ_BUF      16384
#define KEEPALIVE_S   60
#define WREQ_POOL_MAX 4
#define BUF_KEEP      (256u << 10) /* buffers larger than this are freed after use */
#define INFLIGHT_MAX  4096u

enum conn_state { CS_CONNECTING, CS_HANDSHAKE, CS_HELLO, CS_STREAMING };

static const char *const state_names[] = {"TCP connect", "TLS handshake", "waiting for WELCOME",
                                          "streaming"};

/* One connection attempt; freed by its close callback. */
struct conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    struct agent_sender *s; /* NULL once the connection is closing */
    struct wp_tls_conn *tls;
    enum conn_state st;
    struct wp_buf in; /* plaintext from the collector */
    char rbuf[READ_BUF];
};

/* A socket write: owns its ciphertext until the write callback. */
struct wreq {
    uv_write_t req;
    struct agent_sender *s;
    struct wreq *next;
    struct wp_buf buf;
};

/* A name resolution; s is NULL once abandoned (timeout, stop) and the callback just frees. */
struct resolve {
    uv_getaddrinfo_t req;
    struct agent_sender *s;
};

struct agent_sender {
    struct agent *a;
    uv_timer_t retry;     /* backoff before the next attempt */
    uv_timer_t deadline;  /* connect_timeout of the current attempt */
    uv_prepare_t flusher; /* writes the TLS output once per loop iteration, before polling */
    int stopped;
    size_t cur;       /* collector index */
    unsigned attempt; /* backoff exponent */
    uint64_t rng;
    int64_t boot_ms;
    struct resolve *res;
    struct addrinfo *ai, *ai_next;
    struct conn *conn;
    int64_t up_since_ms; /* monotonic */

    /* streaming */
    uint64_t next_seq; /* the next seq to read from the spool */
    uint64_t *ring;    /* seqs sent and not acked, oldest at ring_head */
    uint32_t ring_cap, ring_head, ring_n;
    uint32_t defs_upto; /* series ids defined on this connection */
    int more;           /* pump() stopped on the inflight or write-queue limit */
    int read_err;       /* last spool read error, logged once */
    struct wp_buf plain;
    struct wreq *pool;
    unsigned npool;

    struct agent_sender_stats st;
};

static void conn_fail_at(struct agent_sender *s, enum wp_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define conn_fail(s, ...) conn_fail_at((s), WP_LOG_WARN, __VA_ARGS__)
static void pump(struct agent_sender *s);

/* ---- small helpers -------------------------------------------------------------------------- */

static uint64_t rnd(struct agent_sender *s)
{
    /* xorshift64*: jitter needs spread, not secrecy */
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return s->rng * 2685821657736338717ull;
}

/* The host's boot time in ms since the epoch (/proc/stat btime is stable across calls). */
static int64_t host_boot_ms(void)
{
    char line[256];
    long long btime = 0;
    FILE *fp = fopen("/proc/stat", "re");

    if (fp != NULL) {
        while (fgets(line, sizeof(line), fp) != NULL) {
            if (sscanf(line, "btime %lld", &btime) == 1) {
                break;
            }
        }
        fclose(fp);
    }
    if (btime > 0) {
        return btime * 1000;
    }
    struct timespec rt;
    struct timespec bt;
    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_BOOTTIME, &bt);
    return ((int64_t)(rt.tv_sec - bt.tv_sec)) * 1000;
}

static const struct agent_collector *cur_collector(const struct agent_sender *s)
{
    return &s->a->conf->collectors[s->cur];
}

static void set_label(struct agent_sender *s)
{
    const struct agent_collector *c = cur_collector(s);
    int v6 = strchr(c->host, ':') != NULL;

    snprintf(s->st.collector, sizeof(s->st.collector), "%s%s%s:%s", v6 ? "[" : "", c->host,
             v6 ? "]" : "", c->port);
}

/* Collector text for a log line: printable ASCII only, so it cannot forge lines. */
static void sanitize(const struct wp_str *in, char *out, size_t len)
{
    size_t n = in->len < len - 1 ? in->len : len - 1;

    for (size_t i = 0; i < n; i++) {
        char ch = in->p[i];
        out[i] = (ch >= 0x20 && ch < 0x7f) ? ch : '?';
    }
    out[n] = '\0';
}

/* ---- writes --------------------------------------------------------------------------------- */

static struct wreq *pool_get(struct agent_sender *s)
{
    struct wreq *w = s->pool;

    if (w != NULL) {
        s->pool = w->next;
        s->npool--;
        return w;
    }
    w = wp_xcalloc(1, sizeof(*w));
    w->s = s;
    wp_buf_init(&w->buf);
    return w;
}

static void pool_put(struct agent_sender *s, struct wreq *w)
{
    if (s->npool >= WREQ_POOL_MAX || w->buf.cap > BUF_KEEP) {
        wp_buf_cleanup(&w->buf);
        free(w);
        return;
    }
    wp_buf_reset(&w->buf);
    w->next = s->pool;
    s->pool = w;
    s->npool++;
}

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct agent_sender *s = w->s;
    int mine = s->conn != NULL && req->handle == (uv_stream_t *)&s->conn->tcp;

    pool_put(s, w);
    if (!mine) {
        return; /* an old connection's write, finished or cancelled by its close */
    }
    if (status < 0) {
        conn_fail(s, "write: %s", uv_strerror(status));
        return;
    }
    if (s->more) {
        pump(s); /* the write queue drained: room for more batches */
    }
}

/* Move the connection's pending ciphertext into one uv_write. Returns 0 or a libuv error. */
static int flush_conn(struct agent_sender *s, struct conn *c)
{
    struct wp_buf *out = NULL;
    struct wreq *w = NULL;
    size_t n = 0;
    int rc = 0;

    if (c->tls == NULL) {
        return 0;
    }
    out = wp_tls_outbuf(c->tls);
    n = wp_buf_unread(out);
    if (n == 0) {
        return 0;
    }
    w = pool_get(s);
    wp_buf_append(&w->buf, wp_buf_head(out), n);
    wp_buf_consume(out, n);
    uv_buf_t b = uv_buf_init((char *)(w->buf.data + w->buf.off), (unsigned)n);
    rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc < 0) {
        pool_put(s, w);
    }
    return rc;
}

static void on_flush(uv_prepare_t *h)
{
    struct agent_sender *s = h->data;
    int rc = 0;

    uv_prepare_stop(h);
    if (s->conn != NULL) {
        rc = flush_conn(s, s->conn);
        if (rc < 0) {
            conn_fail(s, "write: %s", uv_strerror(rc));
        }
    }
}

/* A prepare handle runs after the timer and I/O callbacks of an iteration and before the
 * loop blocks, so everything queued in those callbacks leaves in one write without delay
 * (a check handle would wait for the next poll to return). */
static void want_flush(struct agent_sender *s)
{
    if (!s->stopped && !uv_is_active((uv_handle_t *)&s->flusher)) {
        uv_prepare_start(&s->flusher, on_flush);
    }
}

/* Encrypt s->plain (one TLS write) and schedule the socket write. 0, or <0 when the
 * connection failed (already handled). */
static int tls_send(struct agent_sender *s, struct conn *c)
{
    int rc = wp_tls_write(c->tls, wp_buf_head(&s->plain), wp_buf_unread(&s->plain));

    wp_buf_reset(&s->plain);
    if (rc < 0) {
        conn_fail(s, "TLS write: %s", wp_tls_last_error(c->tls));
        return rc;
    }
    want_flush(s);
    return 0;
}

/* ---- connection teardown and retry ---------------------------------------------------------- */

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;

    wp_tls_conn_free(c->tls);
    wp_buf_cleanup(&c->in);
    free(c);
}

/* Detach and close the current connection; notify: send close_notify first. */
static void conn_close(struct agent_sender *s, int notify)
{
    struct conn *c = s->conn;

    if (c == NULL) {
        return;
    }
    if (notify && c->tls != NULL && c->st >= CS_HELLO) {
        wp_tls_close_notify(c->tls);
        (void)flush_conn(s, c); /* best effort: libuv writes it at once if it can */
    }
    s->conn = NULL;
    c->s = NULL;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void abandon_resolve(struct agent_sender *s)
{
    if (s->res != NULL) {
        s->res->s = NULL;
        uv_cancel((uv_req_t *)&s->res->req); /* if it already runs, its callback frees it */
        s->res = NULL;
    }
}

static void free_ai(struct agent_sender *s)
{
    if (s->ai != NULL) {
        uv_freeaddrinfo(s->ai);
    }
    s->ai = NULL;
    s->ai_next = NULL;
}

static void on_retry(uv_timer_t *t);

static void schedule_retry(struct agent_sender *s)
{
    uint64_t min = (uint64_t)s->a->conf->sender.backoff_min_ms;
    uint64_t max = (uint64_t)s->a->conf->sender.backoff_max_ms;
    uint64_t cap = min;
    uint64_t delay = 0;

    if (s->stopped) {
        return;
    }
    for (unsigned i = 0; i < s->attempt && cap < max; i++) {
        cap *= 2;
    }
    if (cap > max) {
        cap = max;
    }
    delay = cap > min ? min + rnd(s) % (cap - min + 1) : min;
    if (s->attempt < 64) {
        s->attempt++;
    }
    s->st.reconnects++;
    WP_DEBUG("agent", "next attempt in %llums collector=%s", (unsigned long long)delay,
             s->a->conf->collectors[s->cur].host);
    uv_timer_start(&s->retry, on_retry, delay, 0);
}

/* The attempt or the connection is over: log why, close, move to the next collector. */
static void conn_fail_at(struct agent_sender *s, enum wp_log_level lvl, const char *fmt, ...)
{
    char why[sizeof(s->st.last_error)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    snprintf(s->st.last_error, sizeof(s->st.last_error), "%s", why);
    if (s->st.connected) {
        int64_t up = wp_clock_mono_ms() - s->up_since_ms;
        WP_LOG_AT(lvl, "agent", "disconnected collector=%s after %llds: %s", s->st.collector,
                  (long long)(up / 1000), why);
        if (up >= STABLE_MS) {
            s->attempt = 0;
        }
    } else {
        WP_LOG_AT(lvl, "agent", "cannot connect collector=%s: %s", s->st.collector, why);
    }
    s->st.connected = 0;
    conn_close(s, 0);
    abandon_resolve(s);
    free_ai(s);
    uv_timer_stop(&s->deadline);
    s->ring_n = 0;
    s->more = 0;
    s->cur = (s->cur + 1) % s->a->conf->ncollectors;
    schedule_retry(s);
}

/* ---- the session ---------------------------------------------------------------------------- */

static void pump(struct agent_sender *s)
{
    struct agent *a = s->a;
    struct conn *c = s->conn;

    s->more = 0;
    if (s->stopped || c == NULL || c->st != CS_STREAMING) {
        return;
    }
    while (s->conn == c) {
        uint64_t seq = 0;
        int64_t ts = 0;
        const uint8_t *payload = NULL;
        size_t len = 0;
        size_t queued = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) +
                        wp_buf_unread(wp_tls_outbuf(c->tls));

        if (s->ring_n == s->ring_cap || queued > WRITEQ_MAX) {
            s->more = 1;
            break;
        }
        int rc = wp_spool_read(a->spool, s->next_seq, &seq, &ts, &payload, &len);
        if (rc == WP_ENOTFOUND) {
            s->read_err = 0;
            break;
        }
        if (rc < 0) {
            if (rc != s->read_err) {
                WP_ERROR("agent", "cannot read spool seq=%llu: %s", (unsigned long long)s->next_seq,
                         wp_strerror(rc));
            }
            s->read_err = rc; /* retried at the next tick or ack */
            break;
        }
        s->read_err = 0;
        wp_buf_reset(&s->plain);
        uint32_t max = agent_sink_durable_id(a->sink);
        if (max > s->defs_upto) {
            agent_sink_put_defs(a->sink, s->defs_upto, max, &s->plain);
            s->defs_upto = max;
        }
        wp_put_batch(&s->plain, seq, payload, len);
        if (tls_send(s, c) < 0) {
            return;
        }
        s->ring[(s->ring_head + s->ring_n) % s->ring_cap] = seq;
        s->ring_n++;
        s->next_seq = seq + 1;
        s->st.batches_sent++;
    }
    if (s->plain.cap > BUF_KEEP) {
        wp_buf_cleanup(&s->plain);
    }
}

static void on_welcome(struct agent_sender *s, struct conn *c, uint64_t acked)
{
    struct agent *a = s->a;
    struct wp_spool_stats sp;
    uint32_t max = agent_sink_durable_id(a->sink);

    wp_spool_sync_remote(a->spool, acked);
    wp_spool_stats(a->spool, &sp);
    uv_timer_stop(&s->deadline);
    c->st = CS_STREAMING;
    s->st.connected = 1;
    s->st.acked_seq = acked;
    s->st.last_error[0] = '\0';
    s->up_since_ms = wp_clock_mono_ms();
    s->next_seq = acked + 1;
    s->ring_head = 0;
    s->ring_n = 0;
    s->read_err = 0;
    WP_INFO("agent", "connected collector=%s acked=%llu resumed=%d pending=%llu series=%u",
            s->st.collector, (unsigned long long)acked, wp_tls_resumed(c->tls),
            (unsigned long long)sp.pending, max);
    /* every connection learns the whole dictionary before the first batch */
    wp_buf_reset(&s->plain);
    agent_sink_put_defs(a->sink, 0, max, &s->plain);
    s->defs_upto = max;
    if (wp_buf_unread(&s->plain) > 0 && tls_send(s, c) < 0) {
        return;
    }
    pump(s);
}

static void on_ack(struct agent_sender *s, uint64_t seq)
{
    int rc = 0;

    if (seq >= s->next_seq) {
        conn_fail(s, "collector acked seq %llu, which was not sent (next %llu)",
                  (unsigned long long)seq, (unsigned long long)s->next_seq);
        return;
    }
    while (s->ring_n > 0 && s->ring[s->ring_head] <= seq) {
        s->ring_head = (s->ring_head + 1) % s->ring_cap;
        s->ring_n--;
        s->st.batches_acked++;
    }
    if (seq > s->st.acked_seq) {
        s->st.acked_seq = seq;
        rc = wp_spool_ack(s->a->spool, seq);
        if (rc < 0) {
            WP_WARN("agent", "spool ack seq=%llu: %s", (unsigned long long)seq, wp_strerror(rc));
        }
    }
    if (s->more) {
        pump(s);
    }
}

/* Returns 0, or <0 when the connection was closed. */
static int handle_msg(struct agent_sender *s, struct conn *c, const struct wp_msg *m)
{
    char text[256];

    switch (m->type) {
    case WP_MSG_WELCOME:
        if (c->st != CS_HELLO) {
            break;
        }
        if (m->u.welcome.version != WP_WIRE_VERSION) {
            conn_fail(s, "collector speaks protocol v%u, this agent v%d", m->u.welcome.version,
                      WP_WIRE_VERSION);
            return WP_EVERSION;
        }
        on_welcome(s, c, m->u.welcome.acked);
        return s->conn == c ? 0 : WP_ECLOSED;
    case WP_MSG_ACK:
        if (c->st != CS_STREAMING) {
            break;
        }
        on_ack(s, m->u.ack.seq);
        return s->conn == c ? 0 : WP_ECLOSED;
    case WP_MSG_ERROR:
        sanitize(&m->u.error.msg, text, sizeof(text));
        conn_fail(s, "collector error: %s", text);
        return WP_ECLOSED;
    default:
        break;
    }
    conn_fail(s, "unexpected %s message (%s)", wp_msg_name(m->type), state_names[c->st]);
    return WP_EPROTO;
}

/* Decode every whole frame in c->in. Returns 0, or <0 when the connection was closed. */
static int parse_frames(struct agent_sender *s, struct conn *c)
{
    struct wp_msg m;
    int rc = 0;

    while (s->conn == c) {
        size_t have = wp_buf_unread(&c->in);
        uint32_t len = 0;
        rc = wp_frame_peek(wp_buf_head(&c->in), have, FRAME_IN_MAX, &len);
        if (rc == WP_EAGAIN) {
            return 0;
        }
        if (rc < 0) {
            conn_fail(s, "bad frame from collector: %s", wp_strerror(rc));
            return rc;
        }
        if (have - WP_FRAME_HDR < len) {
            return 0;
        }
        wp_msg_init(&m);
        rc = wp_msg_decode(&m, wp_buf_head(&c->in) + WP_FRAME_HDR, len);
        if (rc == 0) {
            rc = handle_msg(s, c, &m);
        } else {
            conn_fail(s, "bad message from collector: %s", wp_strerror(rc));
        }
        wp_msg_cleanup(&m);
        if (rc < 0) {
            return rc;
        }
        wp_buf_consume(&c->in, WP_FRAME_HDR + len);
    }
    return WP_ECLOSED;
}

/* Read every decrypted byte and handle the frames. */
static void read_plain(struct agent_sender *s, struct conn *c)
{
    while (s->conn == c) {
        uint8_t *p = wp_buf_reserve(&c->in, READ_BUF);
        ssize_t n = wp_tls_read(c->tls, p, READ_BUF);
        if (n == WP_EAGAIN) {
            break;
        }
        if (n == WP_ECLOSED) {
            conn_fail(s, "collector closed the TLS session");
            return;
        }
        if (n < 0) {
            conn_fail(s, "TLS read: %s", wp_tls_last_error(c->tls));
            return;
        }
        c->in.len += (size_t)n;
        if (parse_frames(s, c) < 0) {
            return;
        }
    }
    if (s->conn == c) {
        want_flush(s); /* TLS may have queued alerts */
    }
}

static void send_hello(struct agent_sender *s, struct conn *c)
{
    const struct agent_conf *conf = s->a->conf;

    c->st = CS_HELLO;
    WP_DEBUG("agent", "TLS up collector=%s suite=%s resumed=%d", s->st.collector,
             wp_tls_suite(c->tls), wp_tls_resumed(c->tls));
    wp_buf_reset(&s->plain);
    wp_put_hello(&s->plain, conf->agent.id, conf->agent.host, WP_VERSION,
                 (const char *const *)conf->agent.labels.v, s->boot_ms);
    tls_send(s, c);
}

static void drive_handshake(struct agent_sender *s, struct conn *c)
{
    int rc = wp_tls_handshake(c->tls);

    want_flush(s);
    if (rc == WP_EAGAIN) {
        return;
    }
    if (rc == WP_EAUTH) {
        /* a refused certificate needs an operator, not just another try */
        conn_fail_at(s, WP_LOG_ERROR, "certificate refused: %s", wp_tls_last_error(c->tls));
        return;
    }
    if (rc < 0) {
        conn_fail(s, "TLS handshake: %s", wp_tls_last_error(c->tls));
        return;
    }
    send_hello(s, c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;

    (void)suggested;
    *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = stream->data;
    struct agent_sender *s = c->s;

    if (s == NULL || nread == 0) {
        return;
    }
    if (nread < 0) {
        if (nread == UV_EOF) {
            conn_fail(s, "collector closed the connection (%s)", state_names[c->st]);
        } else {
            conn_fail(s, "read: %s", uv_strerror((int)nread));
        }
        return;
    }
    wp_tls_feed(c->tls, buf->base, (size_t)nread);
    if (c->st == CS_HANDSHAKE) {
        drive_handshake(s, c);
        if (s->conn != c || c->st == CS_HANDSHAKE) {
            return;
        }
    }
    read_plain(s, c);
}

static void try_next_addr(struct agent_sender *s);

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *c = req->handle->data;
    struct agent_sender *s = c->s;
    int rc = 0;

    if (s == NULL) {
        return; /* closed meanwhile (timeout, stop) */
    }
    if (status < 0) {
        snprintf(s->st.last_error, sizeof(s->st.last_error), "connect: %s", uv_strerror(status));
        conn_close(s, 0);
        try_next_addr(s);
        return;
    }
    free_ai(s);
    uv_tcp_nodelay(&c->tcp, 1);
    uv_tcp_keepalive(&c->tcp, 1, KEEPALIVE_S);
    rc = wp_tls_conn_new(s->a->tls, cur_collector(s)->server_name, &c->tls);
    if (rc < 0) {
        conn_fail(s, "TLS setup: %s", wp_strerror(rc));
        return;
    }
    rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc < 0) {
        conn_fail(s, "read: %s", uv_strerror(rc));
        return;
    }
    c->st = CS_HANDSHAKE;
    drive_handshake(s, c);
}

/* Connect to the next resolved address, or give up on this collector. */
static void try_next_addr(struct agent_sender *s)
{
    char why[sizeof(s->st.last_error)];

    while (s->ai_next != NULL) {
        struct addrinfo *ai = s->ai_next;
        struct conn *c = wp_xcalloc(1, sizeof(*c));
        int rc = 0;

        s->ai_next = ai->ai_next;
        c->s = s;
        c->st = CS_CONNECTING;
        wp_buf_init(&c->in);
        uv_tcp_init(s->a->loop, &c->tcp);
        c->tcp.data = c;
        s->conn = c;
        rc = uv_tcp_connect(&c->creq, &c->tcp, ai->ai_addr, on_connect);
        if (rc == 0) {
            return;
        }
        snprintf(s->st.last_error, sizeof(s->st.last_error), "connect: %s", uv_strerror(rc));
        conn_close(s, 0);
    }
    snprintf(why, sizeof(why), "%s", s->st.last_error[0] ? s->st.last_error : "no address");
    conn_fail(s, "%s", why);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *ai)
{
    struct resolve *r = (struct resolve *)req;
    struct agent_sender *s = r->s;

    free(r);
    if (s == NULL) {
        if (ai != NULL) {
            uv_freeaddrinfo(ai);
        }
        return;
    }
    s->res = NULL;
    if (status < 0) {
        conn_fail(s, "resolve %s: %s", cur_collector(s)->host, uv_strerror(status));
        return;
    }
    s->ai = ai;
    s->ai_next = ai;
    s->st.last_error[0] = '\0';
    try_next_addr(s);
}

static void on_deadline(uv_timer_t *t)
{
    struct agent_sender *s = t->data;
    const char *stage = s->res != NULL    ? "resolving"
                        : s->conn != NULL ? state_names[s->conn->st]
                                          : "connecting";

    conn_fail(s, "timed out after %lldms (%s)", (long long)s->a->conf->sender.connect_timeout_ms,
              stage);
}

static void on_retry(uv_timer_t *t)
{
    struct agent_sender *s = t->data;
    const struct agent_collector *c = cur_collector(s);
    struct addrinfo hints;
    struct resolve *r = NULL;
    int rc = 0;

    if (s->stopped) {
        return;
    }
    set_label(s);
    WP_DEBUG("agent", "connecting collector=%s", s->st.collector);
    uv_timer_start(&s->deadline, on_deadline, (uint64_t)s->a->conf->sender.connect_timeout_ms, 0);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    r = wp_xcalloc(1, sizeof(*r));
    r->s = s;
    rc = uv_getaddrinfo(s->a->loop, &r->req, on_resolved, c->host, c->port, &hints);
    if (rc < 0) {
        free(r);
        conn_fail(s, "resolve %s: %s", c->host, uv_strerror(rc));
        return;
    }
    s->res = r;
}

/* ---- public --------------------------------------------------------------------------------- */

int agent_sender_start(struct agent *a, struct agent_sender **out)
{
    struct agent_sender *s = wp_xcalloc(1, sizeof(*s));
    int64_t inflight = a->conf->sender.max_inflight;
    uint64_t first = 0;

    s->a = a;
    if (getrandom(&s->rng, sizeof(s->rng), GRND_NONBLOCK) != (ssize_t)sizeof(s->rng)) {
        s->rng = (uint64_t)wp_clock_mono_ms() ^ ((uint64_t)getpid() << 32);
    }
    s->rng |= 1; /* xorshift never leaves 0 */
    s->boot_ms = host_boot_ms();
    s->ring_cap = inflight < 1 ? 1 : inflight > INFLIGHT_MAX ? INFLIGHT_MAX : (uint32_t)inflight;
    s->ring = wp_xcalloc(s->ring_cap, sizeof(*s->ring));
    wp_buf_init(&s->plain);
    uv_timer_init(a->loop, &s->retry);
    uv_timer_init(a->loop, &s->deadline);
    uv_prepare_init(a->loop, &s->flusher);
    s->retry.data = s;
    s->deadline.data = s;
    s->flusher.data = s;
    set_label(s);
    /* a fleet started at once (or a host booting) spreads its first handshakes out */
    first = rnd(s) % ((uint64_t)a->conf->sender.backoff_min_ms + 1);
    uv_timer_start(&s->retry, on_retry, first, 0);
    *out = s;
    return 0;
}

void agent_sender_kick(struct agent_sender *s)
{
    if (s != NULL) {
        pump(s);
    }
}

void agent_sender_stop(struct agent_sender *s)
{
    if (s == NULL || s->stopped) {
        return;
    }
    if (s->st.connected) {
        WP_INFO("agent", "closing connection collector=%s acked=%llu", s->st.collector,
                (unsigned long long)s->st.acked_seq);
    }
    abandon_resolve(s);
    free_ai(s);
    conn_close(s, 1);
    s->stopped = 1;
    s->st.connected = 0;
    uv_close((uv_handle_t *)&s->retry, NULL);
    uv_close((uv_handle_t *)&s->deadline, NULL);
    uv_close((uv_handle_t *)&s->flusher, NULL);
}

void agent_sender_reconnect(struct agent_sender *s, const char *why)
{
    int64_t inflight = 0;
    uint32_t cap = 0;

    if (s == NULL || s->stopped) {
        return;
    }
    if (s->st.connected) {
        WP_INFO("agent", "closing connection collector=%s acked=%llu: %s", s->st.collector,
                (unsigned long long)s->st.acked_seq, why);
    }
    abandon_resolve(s);
    free_ai(s);
    conn_close(s, 1);
    uv_timer_stop(&s->deadline);
    uv_timer_stop(&s->retry);
    s->st.connected = 0;
    s->ring_n = 0;
    s->ring_head = 0;
    s->more = 0;
    s->cur = 0; /* the list may have changed: start again at the preferred collector */
    s->attempt = 0;
    inflight = s->a->conf->sender.max_inflight;
    cap = inflight < 1 ? 1 : inflight > INFLIGHT_MAX ? INFLIGHT_MAX : (uint32_t)inflight;
    if (cap != s->ring_cap) {
        free(s->ring);
        s->ring_cap = cap;
        s->ring = wp_xcalloc(s->ring_cap, sizeof(*s->ring));
    }
    set_label(s);
    /* unacked batches stay in the spool; the next WELCOME says where to resume */
    uv_timer_start(&s->retry, on_retry, rnd(s) % ((uint64_t)s->a->conf->sender.backoff_min_ms + 1),
                   0);
}

void agent_sender_free(struct agent_sender *s)
{
    if (s == NULL) {
        return;
    }
    free_ai(s);
    while (s->pool != NULL) {
        struct wreq *w = s->pool;
        s->pool = w->next;
        wp_buf_cleanup(&w->buf);
        free(w);
    }
    wp_buf_cleanup(&s->plain);
    free(s->ring);
    free(s);
}

void agent_sender_stats(const struct agent_sender *s, struct agent_sender_stats *out)
{
    *out = s->st;
}
