/* SPDX-License-Identifier: Apache-2.0 */
/* Agent connections: TLS over libuv, frame decoding, HELLO checks and the ack protocol. */
#include "server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "coll.h"
#include "coll_conf.h"
#include "http.h"
#include "ingest.h"
#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"
#include "wp/tls.h"
#include "wp/wire.h"

enum conn_state { CONN_HANDSHAKE, CONN_HELLO, CONN_STREAM, CONN_CLOSING };

struct coll_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    int handles_open;
    struct coll_server *srv;
    struct wp_tls_conn *tls;
    enum conn_state state;
    struct wp_buf in; /* decrypted bytes not yet framed */
    char peer[64];
    char cn[WP_AGENT_ID_MAX + 1];
    struct coll_agent *agent;
    int paused;
    int reading;
    struct coll_conn *prev, *next;
    struct coll_conn *pnext; /* paused list */
};

struct write_req {
    uv_write_t req;
    size_t len;
    uint8_t data[];
};

static uint8_t read_buf[64 * 1024]; /* one loop thread: reads are consumed before the next */

static void conn_process(struct coll_conn *c);

static void conn_timer_close_cb(uv_handle_t *h)
{
    struct coll_conn *c = h->data;
    if (--c->handles_open == 0) {
        wp_tls_conn_free(c->tls);
        wp_buf_cleanup(&c->in);
        free(c);
    }
}

/* Close a connection, logging why (level: warn for refusals and bad input, info otherwise). */
void coll_conn_close(struct coll_conn *c, int level, const char *why)
{
    struct coll_server *s = c->srv;

    if (c->state == CONN_CLOSING) {
        return;
    }
    if (level >= 0) {
        WP_LOG_AT(level, "collector", "closing connection peer=%s agent=%s: %s", c->peer,
                  c->cn[0] ? c->cn : "-", why);
    }
    c->state = CONN_CLOSING;
    if (c->agent != NULL) {
        coll_ingest_detach(s, c->agent, c);
        c->agent = NULL;
    }
    if (c->paused) {
        struct coll_conn **pp = &s->paused;
        while (*pp != NULL && *pp != c) {
            pp = &(*pp)->pnext;
        }
        if (*pp == c) {
            *pp = c->pnext;
        }
        c->paused = 0;
    }
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        s->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    s->nconns--;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->timer, conn_timer_close_cb);
    uv_close((uv_handle_t *)&c->tcp, conn_timer_close_cb);
}

static void write_cb(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    struct coll_conn *c = req->handle->data;

    free(w);
    if (status < 0 && status != UV_ECANCELED && c->state != CONN_CLOSING) {
        coll_conn_close(c, WP_LOG_INFO, uv_strerror(status));
    }
}

/* Write whatever ciphertext the TLS layer produced. */
static void conn_flush(struct coll_conn *c)
{
    struct wp_buf *out = wp_tls_outbuf(c->tls);
    size_t n = wp_buf_unread(out);

    if (n == 0 || c->state == CONN_CLOSING) {
        return;
    }
    struct write_req *w = wp_xmalloc(sizeof(*w) + n);
    memcpy(w->data, wp_buf_head(out), n);
    w->len = n;
    wp_buf_reset(out);
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, write_cb);
    if (rc < 0) {
        free(w);
        coll_conn_close(c, WP_LOG_INFO, uv_strerror(rc));
    }
}

/* Encrypt one plaintext frame and queue it. */
void coll_conn_send(struct coll_conn *c, const struct wp_buf *frame)
{
    if (c->state == CONN_CLOSING) {
        return;
    }
    if (wp_tls_write(c->tls, wp_buf_head(frame), wp_buf_unread(frame)) < 0) {
        coll_conn_close(c, WP_LOG_WARN, wp_tls_last_error(c->tls));
        return;
    }
    conn_flush(c);
}

void coll_conn_send_error(struct coll_conn *c, const char *msg)
{
    struct wp_buf b;
    wp_buf_init(&b);
    wp_put_error(&b, msg);
    coll_conn_send(c, &b);
    wp_buf_cleanup(&b);
}

const char *coll_conn_peer(const struct coll_conn *c)
{
    return c->peer;
}

const char *coll_conn_cn(const struct coll_conn *c)
{
    return c->cn;
}

struct coll_agent *coll_conn_agent(const struct coll_conn *c)
{
    return c->agent;
}

void coll_conn_set_agent(struct coll_conn *c, struct coll_agent *a)
{
    c->agent = a;
    c->state = a ? CONN_STREAM : c->state;
}

int coll_conn_fingerprint(const struct coll_conn *c, char out[65])
{
    return wp_tls_peer_fingerprint(c->tls, out);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h;
    (void)hint;
    *buf = uv_buf_init((char *)read_buf, sizeof(read_buf));
}

static void timeout_cb(uv_timer_t *t)
{
    struct coll_conn *c = t->data;
    coll_conn_close(c, WP_LOG_INFO,
                    c->state == CONN_HANDSHAKE ? "handshake timeout" : "idle timeout");
}

static void conn_handshake_done(struct coll_conn *c)
{
    struct coll_server *s = c->srv;

    s->st.handshakes++;
    if (wp_tls_resumed(c->tls)) {
        s->st.resumed++;
    }
    if (wp_tls_peer_cn(c->tls, c->cn, sizeof(c->cn)) < 0) {
        s->st.refused_auth++;
        coll_conn_close(c, WP_LOG_WARN, "peer certificate has no CN");
        return;
    }
    c->state = CONN_HELLO;
    WP_DEBUG("collector", "handshake done peer=%s cn=%s suite=%s resumed=%d", c->peer, c->cn,
             wp_tls_suite(c->tls), wp_tls_resumed(c->tls));
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct coll_conn *c = st->data;
    struct coll_server *s = c->srv;

    if (nread < 0) {
        coll_conn_close(c, nread == UV_EOF ? WP_LOG_DEBUG : WP_LOG_INFO,
                        nread == UV_EOF ? "peer closed" : uv_strerror((int)nread));
        return;
    }
    if (nread == 0) {
        return;
    }
    wp_tls_feed(c->tls, buf->base, (size_t)nread);
    if (c->state == CONN_HANDSHAKE) {
        int rc = wp_tls_handshake(c->tls);
        conn_flush(c);
        if (rc == WP_EAGAIN) {
            return;
        }
        if (rc < 0) {
            char why[300];
            if (rc == WP_EAUTH) {
                s->st.refused_auth++;
            } else {
                s->st.refused_tls++;
            }
            snprintf(why, sizeof(why), "TLS handshake refused: %s", wp_tls_last_error(c->tls));
            coll_conn_close(c, WP_LOG_WARN, why);
            return;
        }
        conn_handshake_done(c);
        if (c->state == CONN_CLOSING) {
            return;
        }
        uv_timer_start(&c->timer, timeout_cb, (uint64_t)s->conf->limits.idle_timeout_ms, 0);
    } else {
        /* restart the idle clock: uv_timer_again() would do nothing here,
         * the timer was started with repeat 0 */
        uv_timer_start(&c->timer, timeout_cb, (uint64_t)s->conf->limits.idle_timeout_ms, 0);
    }
    /* drain every complete record into the plaintext buffer */
    for (int guard = 0; guard < 4096; guard++) {
        uint8_t *dst = wp_buf_reserve(&c->in, 16384);
        ssize_t n = wp_tls_read(c->tls, dst, 16384);
        if (n == WP_EAGAIN) {
            break;
        }
        if (n == WP_ECLOSED) {
            coll_conn_close(c, WP_LOG_DEBUG, "close_notify");
            return;
        }
        if (n < 0) {
            coll_conn_close(c, WP_LOG_WARN, wp_tls_last_error(c->tls));
            return;
        }
        c->in.len += (size_t)n;
    }
    conn_flush(c);
    conn_process(c);
}

/* Parse and dispatch every complete frame in the plaintext buffer. */
static void conn_process(struct coll_conn *c)
{
    struct coll_server *s = c->srv;
    struct wp_msg m;

    wp_msg_init(&m);
    while (c->state != CONN_CLOSING && !c->paused) {
        uint32_t len = 0;
        int rc = wp_frame_peek(wp_buf_head(&c->in), wp_buf_unread(&c->in),
                               (uint32_t)s->conf->limits.max_frame, &len);
        if (rc == WP_EAGAIN) {
            break;
        }
        if (rc < 0) {
            char why[128];
            snprintf(why, sizeof(why), "bad frame header: %s (limit %llu bytes)",
                     wp_strerror(rc), (unsigned long long)s->conf->limits.max_frame);
            s->st.closed_proto++;
            coll_conn_send_error(c, why);
            coll_conn_close(c, WP_LOG_WARN, why);
            break;
        }
        if (wp_buf_unread(&c->in) < WP_FRAME_HDR + (size_t)len) {
            break;
        }
        const uint8_t *body = wp_buf_head(&c->in) + WP_FRAME_HDR;
        rc = wp_msg_decode(&m, body, len);
        if (rc < 0) {
            char why[128];
            snprintf(why, sizeof(why), "bad frame: %s", wp_strerror(rc));
            s->st.closed_proto++;
            coll_conn_send_error(c, why);
            coll_conn_close(c, WP_LOG_WARN, why);
            break;
        }
        rc = coll_ingest_msg(s, c, &m, body, len);
        wp_msg_cleanup(&m);
        if (rc == WP_EAGAIN) {
            /* journal full: keep the frame, stop reading until it drains */
            c->paused = 1;
            c->pnext = s->paused;
            s->paused = c;
            if (c->reading) {
                uv_read_stop((uv_stream_t *)&c->tcp);
                c->reading = 0;
            }
            break;
        }
        if (rc < 0) {
            s->st.closed_proto++;
            break; /* ingest closed the connection with its reason */
        }
        wp_buf_consume(&c->in, WP_FRAME_HDR + (size_t)len);
    }
    wp_msg_cleanup(&m);
    if (wp_buf_unread(&c->in) == 0 && c->in.cap > 0) {
        /* agents send about once a second: an idle connection keeps no plaintext buffer
         * (16 KiB each, 160 MB across 10,000 agents) */
        wp_buf_cleanup(&c->in);
    }
}

void coll_server_resume_paused(struct coll_server *s)
{
    struct coll_conn *list = s->paused;

    s->paused = NULL;
    while (list != NULL) {
        struct coll_conn *c = list;
        list = c->pnext;
        c->paused = 0;
        c->pnext = NULL;
        conn_process(c);
        if (c->state != CONN_CLOSING && !c->paused && !c->reading) {
            uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
            c->reading = 1;
        }
    }
}

static void accept_cb(uv_stream_t *server, int status)
{
    struct coll_server *s = server->data;
    struct coll_conn *c = NULL;

    if (status < 0) {
        WP_WARN("collector", "accept failed: %s", uv_strerror(status));
        return;
    }
    c = wp_xcalloc(1, sizeof(*c));
    c->srv = s;
    wp_buf_init(&c->in);
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    c->state = CONN_HANDSHAKE;
    c->next = s->conns;
    if (s->conns) {
        s->conns->prev = c;
    }
    s->conns = c;
    s->nconns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        coll_conn_close(c, -1, "");
        return;
    }
    s->st.accepted++;
    http_peer_name(&c->tcp, 0, c->peer, sizeof(c->peer));
    if ((int64_t)s->nconns > s->conf->limits.max_agents) {
        coll_conn_close(c, WP_LOG_WARN, "too many connections (limits.max_agents)");
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_tcp_keepalive(&c->tcp, 1, 60);
    if (wp_tls_conn_new(s->tls, NULL, &c->tls) < 0) {
        coll_conn_close(c, WP_LOG_ERROR, "cannot create TLS state");
        return;
    }
    uv_timer_start(&c->timer, timeout_cb, (uint64_t)s->conf->limits.handshake_timeout_ms, 0);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    c->reading = 1;
}

int coll_listen(struct coll_server *s, const char *host, const char *port, int *bound_port)
{
    char err[256];
    int rc = 0;

    uv_tcp_init(s->loop, &s->listener);
    s->listener.data = s;
    s->listening = 1;
    rc = http_tcp_listen(&s->listener, host[0] ? host : NULL, port, 4096, accept_cb, bound_port,
                         err, sizeof(err));
    if (rc < 0) {
        WP_ERROR("collector", "%s", err);
    }
    return rc;
}

void coll_close_all_conns(struct coll_server *s, const char *why)
{
    for (int guard = 0; s->conns != NULL && guard < 1000000; guard++) {
        coll_conn_close(s->conns, WP_LOG_DEBUG, why);
    }
}

void coll_close_revoked(struct coll_server *s)
{
    struct coll_conn *c = s->conns;

    while (c != NULL) {
        struct coll_conn *next = c->next;
        uint8_t serial[64];
        size_t len = sizeof(serial);
        if (c->state != CONN_HANDSHAKE && c->state != CONN_CLOSING &&
            wp_tls_peer_serial(c->tls, serial, &len) == 0 &&
            wp_tls_ctx_is_revoked(s->tls, serial, len)) {
            s->st.refused_auth++;
            coll_conn_close(c, WP_LOG_WARN, "certificate revoked");
        }
        c = next;
    }
}
