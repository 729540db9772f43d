/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP/1.1 server on the loop: http-parser, limits, timeouts, TLS, routes, static files, SSE. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <http_parser.h>
#include <zlib.h>

#include "wp/buf.h"
#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"
#include "wp/tls.h"

/*
 * Design notes.
 *
 * Input: bytes read (decrypted first under TLS) go to c->in and are fed to http-parser.
 * While the request head is incomplete they are fed in slices of HEAD_SLICE bytes, so the
 * raw size of the head is known to within a slice (431 past max_header_bytes); the URL and
 * headers are also copied into c->head, which has the same limit. on_message_complete pauses
 * the parser, so one request is answered before the next pipelined one is parsed; replies
 * are queued in order on the socket.
 *
 * Output: a reply is one buffer (head and body) and one uv_write (one TLS write under TLS).
 * A shared body (http_respond_body: a cached list sent to hundreds of clients a second) is not
 * copied: the uv_write gathers the head and the body, and holds a reference to the body until
 * the write is done. When more than WRITE_HIGH bytes are queued (a client that pipelines but
 * does not read), the connection stops reading until the queue drains below half of it.
 *
 * Timers: one per connection. A request head must be complete header_timeout after the
 * connection was accepted (TLS handshake included) or after its first byte on a kept-alive
 * connection; a body must not pause longer than body_timeout; a kept-alive connection may
 * idle for idle_timeout. On expiry the connection is closed and counted. Event streams use
 * the timer for keep-alive comments instead.
 *
 * Closing: after an error reply or "Connection: close" the socket is shut down for writing
 * once the reply is out, and what the client still sends is read and dropped for at most
 * LINGER_MS, so the reply is not lost to a TCP reset (the 413 case: a client still sending
 * its body).
 *
 * Deferred replies: http_defer() queues the work on the thread pool and leaves the request
 * in PH_HANDLER with c->defer set; nothing more is parsed on the connection until the job's
 * after-work callback (on the loop) has run done() and answered. A connection closed
 * meanwhile is not freed by its close callback while c->defer is set: the after-work callback
 * calls done(NULL, arg) and frees it, so the job never points at freed memory. Jobs of an
 * http_defer_queue wait in it (on the loop) and go to the pool one at a time; one whose
 * client left while it waited is finished without running.
 *
 * Static files: the root is opened once; each request walks its path one component at a
 * time with openat(O_NOFOLLOW), so no symbolic link inside the root is followed and ".."
 * is refused before any lookup: nothing outside the root can be reached.
 */

#define DEF_MAX_CONNS    1024
#define DEF_MAX_HEAD     (16u << 10)
#define DEF_MAX_BODY     (1u << 20)
#define DEF_HEAD_TIMEOUT 10000
#define DEF_BODY_TIMEOUT 30000
#define DEF_IDLE_TIMEOUT 60000
#define DEF_SSE_PING     15000
#define MAX_HEADERS      100
#define HEAD_SLICE       1024
#define WRITE_HIGH       (1u << 20)
#define LINGER_MS        2000
#define FILE_MAX         (16u << 20)
#define READ_BUF         (64u << 10)
#define SSE_RETRY_MS     2000
#define GZIP_MIN         1024 /* shared bodies from this size are sent gzipped if the client asks */

enum phase { PH_HEAD, PH_BODY, PH_HANDLER, PH_KEEPALIVE, PH_SSE, PH_LINGER };

struct route {
    char *method;
    char *path;
    size_t plen;
    int prefix; /* path ends in "/": matches everything below */
    enum http_role role;
    http_handler_fn fn;
    void *arg;
};

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int listener_open; /* close callback not yet run */
    int stopping;
    char *host, *port;
    struct http_opts o;
    int static_fd;
    int bound_port;
    struct wp_tls_ctx *tls;
    struct route *routes;
    size_t nroutes;
    http_auth_fn auth;
    void *auth_arg;
    struct http_conn *conns;
    size_t nconns;
    size_t nalive; /* connections not yet freed */
    struct http_stats st;
    uint8_t rbuf[READ_BUF]; /* reads are consumed before the next one */
};

struct hdr {
    size_t name, nlen, value, vlen; /* offsets into c->head */
};

struct qparam {
    char *k, *v;
};

struct http_body {
    size_t refs;
    size_t len;
    void *data;
    struct http_body *gz; /* the gzip form, made at the first request that accepts it */
    int gz_tried;
};

struct http_defer_job {
    uv_work_t w;
    struct http_conn *c;
    http_work_fn work;
    http_done_fn done;
    void *arg;
    struct http_defer_queue *q; /* http_defer_serial(): its queue */
    struct http_defer_job *next;
};

struct http_sse {
    struct http_conn *conn; /* NULL once the client left or the owner closed it */
    void (*cb)(struct http_sse *h, void *arg);
    void *arg;
};

struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shut;
    int handles_open;
    struct http_server *srv;
    struct wp_tls_conn *tls;
    int handshaken;
    http_parser parser;
    struct wp_buf in; /* plaintext not yet parsed */
    enum phase phase;
    int closing;   /* uv_close() called */
    int finishing; /* no more requests: shut down once the reply is out */
    int reading;
    int blocked;   /* stopped reading: too much queued for the client */
    int requests;  /* answered on this connection */
    size_t queued; /* bytes in uv_write requests */
    char client[64];
    struct http_conn *prev, *next;
    struct http_sse *sse;
    struct http_defer_job *defer; /* the request's work is on the thread pool */

    /* the request being parsed or answered */
    struct wp_buf head; /* URL, then name\0value\0 per header */
    size_t url_len;
    struct hdr hdrs[MAX_HEADERS];
    size_t nhdrs;
    int last_cb; /* 0: URL, 1: header name, 2: header value */
    uint64_t raw_head;
    int head_done, msg_done;
    int err_status;
    const char *err_msg;
    struct wp_buf body;
    char *path; /* decoded */
    char *raw_path;
    struct qparam *q;
    size_t nq;
    int q_parsed;
    struct wp_buf rhdr; /* extra reply headers */
    int responded;
    int keep_alive;
    uint64_t t_start;
    struct http_req req;
};

struct wreq {
    uv_write_t req;
    struct http_conn *c;
    size_t len;             /* data and body */
    struct http_body *body; /* written after data; a reference held until the write is done */
    uint8_t data[];
};

static void conn_process(struct http_conn *c);
static void conn_finish(struct http_conn *c);
static void send_reply(struct http_conn *c, int status, const char *ctype, const void *body,
                       size_t len);

/* ---- small helpers ---- */

const char *http_status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    default:
        return status < 300   ? "OK"
               : status < 400 ? "Redirect"
               : status < 500 ? "Error"
                              : "Server Error";
    }
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

/* Percent-decode s[0..n) ("+" as space when plus); NULL on a bad escape or a NUL byte. */
static char *pct_decode(const char *s, size_t n, int plus)
{
    char *out = wp_xmalloc(n + 1);
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            int hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                free(out);
                return NULL;
            }
            ch = (char)(hi * 16 + lo);
            i += 2;
        } else if (plus && ch == '+') {
            ch = ' ';
        }
        if (ch == '\0') {
            free(out);
            return NULL;
        }
        out[o++] = ch;
    }
    out[o] = '\0';
    return out;
}

static void http_date(time_t t, char *buf, size_t len)
{
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, len, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static int has_crlf(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

/* ---- connection lifetime ---- */

static void server_maybe_free(struct http_server *s)
{
    if (s->listener_open || s->nalive > 0) {
        return;
    }
    for (size_t i = 0; i < s->nroutes; i++) {
        free(s->routes[i].method);
        free(s->routes[i].path);
    }
    free(s->routes);
    wp_tls_ctx_free(s->tls);
    if (s->static_fd >= 0) {
        close(s->static_fd);
    }
    free((char *)(uintptr_t)s->o.static_dir);
    free(s->host);
    free(s->port);
    free(s);
}

static void req_reset(struct http_conn *c)
{
    wp_buf_reset(&c->head);
    c->url_len = 0;
    c->nhdrs = 0;
    c->last_cb = 0;
    c->raw_head = 0;
    c->head_done = 0;
    c->msg_done = 0;
    c->err_status = 0;
    c->err_msg = NULL;
    wp_buf_reset(&c->body);
    free(c->path);
    c->path = NULL;
    free(c->raw_path);
    c->raw_path = NULL;
    for (size_t i = 0; i < c->nq; i++) {
        free(c->q[i].k);
        free(c->q[i].v);
    }
    free(c->q);
    c->q = NULL;
    c->nq = 0;
    c->q_parsed = 0;
    wp_buf_reset(&c->rhdr);
    c->responded = 0;
    memset(&c->req, 0, sizeof(c->req));
}

static void conn_free(struct http_conn *c)
{
    struct http_server *s = c->srv;

    req_reset(c);
    wp_buf_cleanup(&c->head);
    wp_buf_cleanup(&c->body);
    wp_buf_cleanup(&c->rhdr);
    wp_buf_cleanup(&c->in);
    wp_tls_conn_free(c->tls);
    free(c);
    s->nalive--;
    server_maybe_free(s);
}

static void conn_close_cb(uv_handle_t *h)
{
    struct http_conn *c = h->data;

    if (--c->handles_open > 0 || c->defer != NULL) {
        return; /* a deferred job still points here: its after-work callback frees c */
    }
    conn_free(c);
}

static void conn_close(struct http_conn *c, const char *why)
{
    struct http_server *s = c->srv;

    if (c->closing) {
        return;
    }
    c->closing = 1;
    WP_DEBUG("http", "closing connection client=%s: %s", c->client, why);
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        s->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    s->nconns--;
    if (c->sse != NULL) {
        struct http_sse *h = c->sse;
        c->sse = NULL;
        h->conn = NULL;
        s->st.sse_streams--;
        if (h->cb != NULL) {
            h->cb(h, h->arg); /* may call http_sse_close(h): h is not touched after this */
        }
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->timer, conn_close_cb);
    uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct http_conn *c = h->data;

    (void)hint;
    *buf = uv_buf_init((char *)c->srv->rbuf, sizeof(c->srv->rbuf));
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void reading_set(struct http_conn *c, int on)
{
    if (c->closing || c->reading == on) {
        return;
    }
    if (on) {
        if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) == 0) {
            c->reading = 1;
        }
    } else {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

static void timer_start(struct http_conn *c, int64_t ms, uint64_t repeat, uv_timer_cb cb)
{
    uv_timer_start(&c->timer, cb, (uint64_t)ms, repeat);
}

static void timeout_cb(uv_timer_t *t);

/* ---- output ---- */

static void write_cb(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct http_conn *c = w->c;

    c->queued -= w->len;
    http_body_unref(w->body);
    free(w);
    if (c->closing) {
        return;
    }
    if (status < 0) {
        conn_close(c, uv_strerror(status));
        return;
    }
    if (c->phase == PH_KEEPALIVE) {
        /* a long download is progress, not idleness */
        timer_start(c, c->srv->o.idle_timeout_ms, 0, timeout_cb);
    }
    if (c->blocked && c->queued < WRITE_HIGH / 2) {
        c->blocked = 0;
        reading_set(c, 1);
        conn_process(c);
    }
}

/* Queue p[0..n) (copied) and then the shared body (if any, referenced) in one write. */
static void raw_write_body(struct http_conn *c, const void *p, size_t n, struct http_body *body)
{
    size_t blen = body != NULL ? body->len : 0;

    if (n + blen == 0 || c->closing) {
        return;
    }
    struct wreq *w = wp_xmalloc(sizeof(*w) + n);
    uv_buf_t b[2];
    unsigned nb = 0;
    memcpy(w->data, p, n);
    w->len = n + blen;
    w->c = c;
    w->body = blen > 0 ? http_body_ref(body) : NULL;
    if (n > 0) {
        b[nb++] = uv_buf_init((char *)w->data, (unsigned)n);
    }
    if (blen > 0) {
        b[nb++] = uv_buf_init((char *)body->data, (unsigned)blen);
    }
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, b, nb, write_cb);
    if (rc < 0) {
        http_body_unref(w->body);
        free(w);
        conn_close(c, uv_strerror(rc));
        return;
    }
    c->queued += w->len;
}

static void raw_write(struct http_conn *c, const void *p, size_t n)
{
    raw_write_body(c, p, n, NULL);
}

static void tls_flush(struct http_conn *c)
{
    struct wp_buf *out = wp_tls_outbuf(c->tls);

    raw_write(c, wp_buf_head(out), wp_buf_unread(out));
    wp_buf_reset(out);
}

/* Send plaintext (encrypted under TLS). */
static void conn_send(struct http_conn *c, const void *p, size_t n)
{
    if (c->closing || n == 0) {
        return;
    }
    if (c->tls == NULL) {
        raw_write(c, p, n);
        return;
    }
    if (wp_tls_write(c->tls, p, n) < 0) {
        conn_close(c, wp_tls_last_error(c->tls));
        return;
    }
    tls_flush(c);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    struct http_conn *c = req->data;

    if (status < 0 && !c->closing) {
        conn_close(c, uv_strerror(status)); /* usually: the client closed first */
    }
}

/* No more requests on this connection: once the queued reply is out, shut down writing and
 * drop what the client still sends for a while (see the design notes). */
static void conn_finish(struct http_conn *c)
{
    if (c->closing || c->finishing) {
        return;
    }
    c->finishing = 1;
    c->phase = PH_LINGER;
    if (c->tls != NULL && c->handshaken) {
        wp_tls_close_notify(c->tls);
        tls_flush(c);
    }
    if (c->closing) {
        return;
    }
    c->shut.data = c;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, shutdown_cb) < 0) {
        conn_close(c, "shutdown failed");
        return;
    }
    c->blocked = 0;
    reading_set(c, 1);
    timer_start(c, LINGER_MS, 0, timeout_cb);
}

static void timeout_cb(uv_timer_t *t)
{
    struct http_conn *c = t->data;
    struct http_server *s = c->srv;

    switch (c->phase) {
    case PH_HEAD:
        s->st.timeouts_header++;
        WP_DEBUG("http", "client=%s: request head not complete in time", c->client);
        conn_close(c, "header timeout");
        break;
    case PH_BODY:
        s->st.timeouts_body++;
        WP_DEBUG("http", "client=%s: request body stalled", c->client);
        conn_close(c, "body timeout");
        break;
    case PH_KEEPALIVE:
        s->st.timeouts_idle++;
        conn_close(c, "idle timeout");
        break;
    case PH_SSE: {
        static const char ping[] = ": ping\n\n";
        conn_send(c, ping, sizeof(ping) - 1);
        if (!c->closing && c->queued > WRITE_HIGH) {
            conn_close(c, "event stream client does not read");
        }
        break;
    }
    case PH_LINGER:
    case PH_HANDLER:
    default:
        conn_close(c, "linger done");
        break;
    }
}

/* ---- replies ---- */

static const char *req_header(const struct http_conn *c, const char *name)
{
    const char *base = (const char *)wp_buf_head(&c->head);

    if (!c->head_done) {
        return NULL;
    }
    for (size_t i = 0; i < c->nhdrs; i++) {
        if (strcasecmp(base + c->hdrs[i].name, name) == 0) {
            return base + c->hdrs[i].value;
        }
    }
    return NULL;
}

static void count_status(struct http_server *s, int status)
{
    if (status < 300) {
        s->st.status_2xx++;
    } else if (status < 400) {
        s->st.status_3xx++;
    } else if (status < 500) {
        s->st.status_4xx++;
    } else {
        s->st.status_5xx++;
    }
}

static void access_log(struct http_conn *c, int status, size_t bytes)
{
    if (WP_LOG_DEBUG > wp_log_level_cur) {
        return;
    }
    double ms = (double)(uv_hrtime() - c->t_start) / 1e6;
    /* the raw path without the query (tokens may ride in it); headers are never logged */
    WP_DEBUG("http", "%s \"%s %s\" %d %zu %.1fms%s", c->client,
             c->req.method != NULL ? c->req.method : "-", c->raw_path != NULL ? c->raw_path : "-",
             status, bytes, ms, c->tls ? " tls" : "");
}

/* Build and queue head + body (shared: the body is that one, not copied over plain HTTP).
 * ctype NULL: no Content-Type. No body for HEAD, 204 and 304. */
static void send_head_body(struct http_conn *c, int status, const char *ctype, const void *body,
                           size_t len, int stream, struct http_body *shared)
{
    struct http_server *s = c->srv;
    struct wp_buf b;
    char date[64];
    char line[256];
    int nobody = c->req.head || status == 204 || status == 304;

    if (shared != NULL) {
        body = shared->data;
        len = shared->len;
    }
    wp_buf_init(&b);
    http_date(time(NULL), date, sizeof(date));
    snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: watchpost\r\n", status,
             http_status_text(status), date);
    wp_buf_append(&b, line, strlen(line));
    if (ctype != NULL) {
        snprintf(line, sizeof(line), "Content-Type: %s\r\n", ctype);
        wp_buf_append(&b, line, strlen(line));
    }
    if (!stream && status != 204 && status != 304) {
        snprintf(line, sizeof(line), "Content-Length: %zu\r\n", len);
        wp_buf_append(&b, line, strlen(line));
    }
    snprintf(line, sizeof(line), "Connection: %s\r\n", c->keep_alive ? "keep-alive" : "close");
    wp_buf_append(&b, line, strlen(line));
    static const char sec[] = "X-Content-Type-Options: nosniff\r\n"
                              "X-Frame-Options: DENY\r\n"
                              "Content-Security-Policy: default-src 'self'; object-src 'none'; "
                              "frame-ancestors 'none'; base-uri 'self'; form-action 'self'\r\n"
                              "Referrer-Policy: same-origin\r\n";
    wp_buf_append(&b, sec, sizeof(sec) - 1);
    if (c->tls != NULL) {
        static const char hsts[] = "Strict-Transport-Security: max-age=31536000\r\n";
        wp_buf_append(&b, hsts, sizeof(hsts) - 1);
    }
    wp_buf_append(&b, wp_buf_head(&c->rhdr), wp_buf_unread(&c->rhdr));
    wp_buf_append(&b, "\r\n", 2);
    if (shared != NULL && !nobody && len > 0) {
        if (c->tls == NULL) {
            raw_write_body(c, wp_buf_head(&b), wp_buf_unread(&b), shared);
        } else {
            conn_send(c, wp_buf_head(&b), wp_buf_unread(&b));
            conn_send(c, body, len);
        }
    } else {
        if (!nobody && len > 0) {
            wp_buf_append(&b, body, len);
        }
        conn_send(c, wp_buf_head(&b), wp_buf_unread(&b));
    }
    wp_buf_cleanup(&b);
    c->responded = 1;
    c->requests++;
    count_status(s, status);
    access_log(c, status, nobody ? 0 : len);
}

/* After a complete reply: the next request, or close. */
static void reply_done(struct http_conn *c)
{
    if (c->closing) {
        return;
    }
    if (!c->keep_alive) {
        conn_finish(c);
        return;
    }
    c->phase = PH_KEEPALIVE;
    timer_start(c, c->srv->o.idle_timeout_ms, 0, timeout_cb);
    if (c->queued > WRITE_HIGH) {
        WP_DEBUG("http", "client=%s: %zu bytes queued, not reading until it drains", c->client,
                 c->queued);
        c->blocked = 1;
        reading_set(c, 0);
    }
}

static void send_reply_shared(struct http_conn *c, int status, const char *ctype, const void *body,
                              size_t len, struct http_body *shared)
{
    if (c->responded || c->closing) {
        return;
    }
    send_head_body(c, status, ctype, body, len, 0, shared);
    reply_done(c);
}

static void send_reply(struct http_conn *c, int status, const char *ctype, const void *body,
                       size_t len)
{
    send_reply_shared(c, status, ctype, body, len, NULL);
}

static char *error_json(const char *msg, size_t *len)
{
    json_t *j = json_pack("{s:s}", "error", msg != NULL ? msg : "error");
    char *txt = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;

    json_decref(j);
    if (txt == NULL) {
        txt = wp_xstrdup("{\"error\":\"error\"}");
    }
    *len = strlen(txt);
    return txt;
}

static void send_error(struct http_conn *c, int status, const char *msg)
{
    size_t len = 0;
    char *txt = error_json(msg, &len);

    if (status >= 500 || status == 400 || status == 413 || status == 431 || status == 503) {
        /* the request stream can not be trusted any more */
        c->keep_alive = 0;
    }
    static const char nostore[] = "Cache-Control: no-store\r\n";
    wp_buf_append(&c->rhdr, nostore, sizeof(nostore) - 1);
    send_reply(c, status, "application/json", txt, len);
    free(txt);
}

void http_resp_header(struct http_req *req, const char *name, const char *value)
{
    struct http_conn *c = req->conn;

    if (c == NULL || c->responded || name == NULL || value == NULL || has_crlf(name) ||
        has_crlf(value) || strchr(name, ':') != NULL) {
        WP_WARN("http", "response header %s dropped (CR, LF or ':' in it)",
                name != NULL ? name : "(null)");
        return;
    }
    wp_buf_append(&c->rhdr, name, strlen(name));
    wp_buf_append(&c->rhdr, ": ", 2);
    wp_buf_append(&c->rhdr, value, strlen(value));
    wp_buf_append(&c->rhdr, "\r\n", 2);
}

void http_respond(struct http_req *req, int status, const char *content_type, const void *body,
                  size_t len)
{
    if (req->conn == NULL || status < 200 || status > 599) {
        return;
    }
    send_reply(req->conn, status, content_type, body, len);
}

struct http_body *http_body_new(void *data, size_t len)
{
    struct http_body *b = wp_xcalloc(1, sizeof(*b));

    b->refs = 1;
    b->data = data;
    b->len = len;
    return b;
}

struct http_body *http_body_ref(struct http_body *b)
{
    b->refs++;
    return b;
}

void http_body_unref(struct http_body *b)
{
    if (b != NULL && --b->refs == 0) {
        http_body_unref(b->gz);
        free(b->data);
        free(b);
    }
}

/* Does an Accept-Encoding value accept gzip (a "gzip" or "x-gzip" token without q=0)? */
static int accepts_gzip(const char *ae)
{
    for (int guard = 0; ae != NULL && *ae != '\0' && guard < 100; guard++) {
        while (*ae == ' ' || *ae == '\t' || *ae == ',') {
            ae++;
        }
        size_t n = strcspn(ae, ",");
        size_t t = strcspn(ae, ";, \t");
        if ((t == 4 && strncasecmp(ae, "gzip", 4) == 0) ||
            (t == 6 && strncasecmp(ae, "x-gzip", 6) == 0)) {
            const char *q = ae + t;
            while (q < ae + n && (*q == ' ' || *q == '\t' || *q == ';')) {
                q++;
            }
            if (q + 1 < ae + n && (q[0] == 'q' || q[0] == 'Q') && q[1] == '=') {
                /* q=0, q=0.0, q=0.00, q=0.000: refused */
                const char *v = q + 2;
                int zero = *v == '0';
                for (v++; zero && v < ae + n && *v != ' ' && *v != '\t'; v++) {
                    zero = *v == '.' || *v == '0';
                }
                return !zero;
            }
            return 1;
        }
        ae += n;
    }
    return 0;
}

/* b gzipped (level 1: it runs on the loop), kept with b; NULL if it does not pay. */
static struct http_body *body_gzip(struct http_body *b)
{
    z_stream z;

    if (b->gz_tried) {
        return b->gz;
    }
    b->gz_tried = 1;
    memset(&z, 0, sizeof(z));
    if (b->len > UINT_MAX / 2 ||
        deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        return NULL;
    }
    size_t cap = deflateBound(&z, (uLong)b->len);
    uint8_t *out = wp_xmalloc(cap);
    z.next_in = b->data;
    z.avail_in = (uInt)b->len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    size_t n = cap - z.avail_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END || n >= b->len) {
        free(out);
        return NULL;
    }
    b->gz = http_body_new(out, n);
    return b->gz;
}

const void *http_body_data(const struct http_body *b)
{
    return b->data;
}

size_t http_body_len(const struct http_body *b)
{
    return b->len;
}

void http_respond_body(struct http_req *req, int status, const char *content_type,
                       struct http_body *b)
{
    if (req->conn == NULL || status < 200 || status > 599 || b == NULL) {
        return;
    }
    if (b->len >= GZIP_MIN) {
        struct http_body *gz = NULL;
        http_resp_header(req, "Vary", "Accept-Encoding");
        if (accepts_gzip(req_header(req->conn, "Accept-Encoding")) && (gz = body_gzip(b)) != NULL) {
            http_resp_header(req, "Content-Encoding", "gzip");
            b = gz;
        }
    }
    send_reply_shared(req->conn, status, content_type, NULL, 0, b);
}

void http_respond_json(struct http_req *req, int status, json_t *json)
{
    char *txt = json != NULL ? json_dumps(json, JSON_COMPACT) : NULL;

    json_decref(json);
    if (txt == NULL) {
        http_respond_error(req, 500, "cannot encode the reply");
        return;
    }
    http_resp_header(req, "Cache-Control", "no-store");
    http_respond(req, status, "application/json", txt, strlen(txt));
    free(txt);
}

void http_respond_error(struct http_req *req, int status, const char *msg)
{
    if (req->conn == NULL || req->conn->responded) {
        return;
    }
    send_error(req->conn, status, msg);
}

/* ---- request accessors ---- */

const char *http_req_header(const struct http_req *req, const char *name)
{
    return req->conn != NULL ? req_header(req->conn, name) : NULL;
}

static void parse_query(struct http_conn *c)
{
    const char *q = c->req.query;
    size_t cap = 0;

    c->q_parsed = 1;
    for (int guard = 0; q != NULL && *q != '\0' && guard < 1000; guard++) {
        size_t n = strcspn(q, "&");
        const char *eq = memchr(q, '=', n);
        size_t kl = eq != NULL ? (size_t)(eq - q) : n;
        char *k = pct_decode(q, kl, 1);
        char *v = eq != NULL ? pct_decode(eq + 1, n - kl - 1, 1) : wp_xstrdup("");
        if (k != NULL && v != NULL) {
            if (c->nq == cap) {
                cap = cap ? cap * 2 : 8;
                c->q = wp_xrealloc(c->q, cap * sizeof(*c->q));
            }
            c->q[c->nq].k = k;
            c->q[c->nq].v = v;
            c->nq++;
        } else {
            free(k);
            free(v);
        }
        q += n;
        if (*q == '&') {
            q++;
        }
    }
}

const char *http_req_query(const struct http_req *req, const char *name)
{
    struct http_conn *c = req->conn;

    if (c == NULL) {
        return NULL;
    }
    if (!c->q_parsed) {
        parse_query(c);
    }
    for (size_t i = 0; i < c->nq; i++) {
        if (strcmp(c->q[i].k, name) == 0) {
            return c->q[i].v;
        }
    }
    return NULL;
}

/* ---- static files ---- */

static const char *mime_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {"html", "text/html; charset=utf-8"},
        {"htm", "text/html; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},
        {"js", "text/javascript; charset=utf-8"},
        {"mjs", "text/javascript; charset=utf-8"},
        {"json", "application/json"},
        {"map", "application/json"},
        {"webmanifest", "application/manifest+json"},
        {"txt", "text/plain; charset=utf-8"},
        {"svg", "image/svg+xml"},
        {"png", "image/png"},
        {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},
        {"gif", "image/gif"},
        {"ico", "image/x-icon"},
        {"webp", "image/webp"},
        {"woff", "font/woff"},
        {"woff2", "font/woff2"},
        {"ttf", "font/ttf"},
        {"pdf", "application/pdf"},
        {"xml", "application/xml"},
        {"wasm", "application/wasm"},
    };
    const char *dot = strrchr(name, '.');

    if (dot != NULL && strchr(dot, '/') == NULL) {
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
            if (strcasecmp(dot + 1, types[i].ext) == 0) {
                return types[i].type;
            }
        }
    }
    return "application/octet-stream";
}

/* Does an If-None-Match list name etag (weak comparison)? */
static int etag_matches(const char *list, const char *etag)
{
    size_t elen = strlen(etag);

    for (int guard = 0; *list != '\0' && guard < 100; guard++) {
        while (*list == ' ' || *list == '\t' || *list == ',') {
            list++;
        }
        if (*list == '*') {
            return 1;
        }
        if (strncmp(list, "W/", 2) == 0) {
            list += 2;
        }
        size_t n = strcspn(list, ",");
        size_t t = n;
        while (t > 0 && (list[t - 1] == ' ' || list[t - 1] == '\t')) {
            t--;
        }
        if (t == elen && memcmp(list, etag, elen) == 0) {
            return 1;
        }
        list += n;
    }
    return 0;
}

/* Open path (decoded, starts with "/") below the root without following any symbolic link.
 * Returns an fd, or the HTTP status to answer with. */
static int static_open(struct http_server *s, const char *path, int *status)
{
    int dfd = s->static_fd;
    int fd = -1;
    const char *p = path;

    *status = 404;
    for (int depth = 0; depth < 64; depth++) {
        while (*p == '/') {
            p++;
        }
        if (*p == '\0') {
            /* the path names a directory (the root or one ending in "/") */
            fd = dfd == s->static_fd ? dup(dfd) : dfd;
            return fd;
        }
        size_t n = strcspn(p, "/");
        char seg[NAME_MAX + 1];
        if (n > NAME_MAX) {
            break;
        }
        memcpy(seg, p, n);
        seg[n] = '\0';
        if (strcmp(seg, ".") == 0 || strcmp(seg, "..") == 0 || strchr(seg, '\\') != NULL) {
            *status = 400;
            break;
        }
        if (seg[0] == '.') {
            break; /* hidden files (.git, .htpasswd) are not served */
        }
        p += n;
        int last = *p == '\0';
        fd = openat(dfd, seg,
                    O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | (last ? 0 : O_DIRECTORY));
        if (dfd != s->static_fd) {
            close(dfd);
        }
        dfd = s->static_fd;
        if (fd < 0) {
            return -1;
        }
        if (last) {
            return fd;
        }
        dfd = fd;
        fd = -1;
    }
    if (dfd != s->static_fd) {
        close(dfd);
    }
    return -1;
}

static int read_all(int fd, uint8_t *buf, size_t size)
{
    size_t got = 0;

    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        got += (size_t)n;
    }
    return 0;
}

static void serve_static(struct http_conn *c)
{
    struct http_server *s = c->srv;
    struct http_req *req = &c->req;
    struct stat st;
    int status = 404;
    int fd = -1;
    uint8_t *data = NULL;
    const char *name = req->path;
    char etag[96], lm[64];

    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        http_resp_header(req, "Allow", "GET, HEAD");
        send_error(c, 405, "method not allowed");
        return;
    }
    if (s->static_fd < 0) {
        send_error(c, 404, "not found");
        return;
    }
    fd = static_open(s, req->path, &status);
    if (fd < 0) {
        send_error(c, status, status == 400 ? "bad path" : "not found");
        return;
    }
    if (fstat(fd, &st) < 0) {
        goto notfound;
    }
    if (S_ISDIR(st.st_mode)) {
        size_t pl = strlen(c->raw_path);
        if (pl == 0 || c->raw_path[pl - 1] != '/') {
            char *loc = wp_xasprintf("%s/", c->raw_path);
            http_resp_header(req, "Location", loc);
            free(loc);
            close(fd);
            send_reply(c, 301, NULL, NULL, 0);
            return;
        }
        int ifd = openat(fd, "index.html", O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        close(fd);
        fd = ifd;
        name = "index.html";
        if (fd < 0 || fstat(fd, &st) < 0) {
            goto notfound;
        }
    }
    if (!S_ISREG(st.st_mode)) {
        goto notfound;
    }
    if ((uint64_t)st.st_size > FILE_MAX) {
        close(fd);
        send_error(c, 403, "file too large to serve");
        return;
    }
    snprintf(etag, sizeof(etag), "\"%llx-%llx-%llx\"", (unsigned long long)st.st_ino,
             (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec * 1000000000ULL +
                 (unsigned long long)st.st_mtim.tv_nsec);
    http_date(st.st_mtim.tv_sec, lm, sizeof(lm));
    http_resp_header(req, "ETag", etag);
    http_resp_header(req, "Last-Modified", lm);
    const char *type = mime_type(name);
    http_resp_header(req, "Cache-Control",
                     strncmp(type, "text/html", 9) == 0 ? "no-cache" : "public, max-age=300");
    const char *inm = req_header(c, "If-None-Match");
    const char *ims = req_header(c, "If-Modified-Since");
    int not_modified = 0;
    if (inm != NULL) {
        not_modified = etag_matches(inm, etag);
    } else if (ims != NULL) {
        struct tm tm;
        memset(&tm, 0, sizeof(tm));
        const char *end = strptime(ims, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        not_modified = end != NULL && *end == '\0' && st.st_mtim.tv_sec <= timegm(&tm);
    }
    if (not_modified) {
        close(fd);
        send_reply(c, 304, NULL, NULL, 0);
        return;
    }
    size_t size = (size_t)st.st_size;
    data = wp_xmalloc(size + 1);
    if (read_all(fd, data, size) < 0) {
        free(data);
        close(fd);
        send_error(c, 500, "cannot read the file");
        return;
    }
    close(fd);
    send_reply(c, 200, type, data, size);
    free(data);
    return;
notfound:
    if (fd >= 0) {
        close(fd);
    }
    send_error(c, 404, "not found");
}

/* ---- routing ---- */

static int route_matches(const struct route *r, const char *path)
{
    if (r->prefix) {
        return strncmp(path, r->path, r->plen) == 0;
    }
    return strcmp(path, r->path) == 0;
}

static void dispatch(struct http_conn *c)
{
    struct http_server *s = c->srv;
    struct http_req *req = &c->req;
    struct http_parser_url u;
    char *url = (char *)c->head.data + c->head.off; /* NUL-terminated (on_headers_complete) */

    s->st.requests++;
    c->keep_alive = http_should_keep_alive(&c->parser) && !c->parser.upgrade && !s->stopping;
    req->method = http_method_str((enum http_method)c->parser.method);
    req->conn = c;
    req->client = c->client;
    req->tls = c->tls != NULL;
    req->head = c->parser.method == HTTP_HEAD;
    req->body = wp_buf_unread(&c->body) > 0 ? wp_buf_head(&c->body) : (const uint8_t *)"";
    req->body_len = wp_buf_unread(&c->body);
    if (req->body_len > 0) {
        /* NUL-terminate for handlers that parse text (the buffer has the room reserved) */
        *wp_buf_reserve(&c->body, 1) = 0;
        req->body = wp_buf_head(&c->body);
    }
    http_parser_url_init(&u);
    if (c->parser.method == HTTP_CONNECT || http_parser_parse_url(url, c->url_len, 0, &u) != 0 ||
        !(u.field_set & (1 << UF_PATH)) || url[u.field_data[UF_PATH].off] != '/') {
        s->st.bad_requests++;
        send_error(c, 400, "bad request target");
        return;
    }
    c->raw_path = wp_xstrndup(url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
    req->query = "";
    if (u.field_set & (1 << UF_QUERY)) {
        /* the URL is NUL-terminated in c->head and the query ends it (fragments are not sent) */
        req->query = url + u.field_data[UF_QUERY].off;
        if (u.field_set & (1 << UF_FRAGMENT)) {
            url[u.field_data[UF_QUERY].off + u.field_data[UF_QUERY].len] = '\0';
        }
    }
    c->path = pct_decode(c->raw_path, strlen(c->raw_path), 0);
    if (c->path == NULL) {
        s->st.bad_requests++;
        send_error(c, 400, "bad path encoding");
        return;
    }
    req->path = c->path;

    const char *m = req->head ? "GET" : req->method;
    const struct route *best = NULL;
    size_t longest = 0;
    int any = 0;
    for (size_t i = 0; i < s->nroutes; i++) {
        const struct route *r = &s->routes[i];
        if (!route_matches(r, req->path)) {
            continue;
        }
        any = 1;
        longest = r->plen > longest ? r->plen : longest;
        if (strcmp(r->method, m) == 0 && (best == NULL || r->plen > best->plen)) {
            best = r;
        }
    }
    if (best == NULL && any) {
        char allow[256] = "";
        size_t o = 0;
        for (size_t i = 0; i < s->nroutes; i++) {
            const struct route *r = &s->routes[i];
            if (r->plen != longest || !route_matches(r, req->path) ||
                strstr(allow, r->method) != NULL) {
                continue;
            }
            int n = snprintf(allow + o, sizeof(allow) - o, "%s%s%s", o ? ", " : "", r->method,
                             strcmp(r->method, "GET") == 0 ? ", HEAD" : "");
            if (n < 0 || (size_t)n >= sizeof(allow) - o) {
                break;
            }
            o += (size_t)n;
        }
        http_resp_header(req, "Allow", allow);
        send_error(c, 405, "method not allowed");
        return;
    }
    if (best == NULL) {
        if (strncmp(req->path, "/api/", 5) == 0 || strcmp(req->path, "/api") == 0) {
            send_error(c, 404, "no such API endpoint");
        } else {
            serve_static(c);
        }
        return;
    }
    if (best->role != HTTP_ROLE_NONE && s->auth != NULL) {
        int refuse = s->auth(req, best->role, s->auth_arg);
        if (refuse != 0) {
            send_error(c, refuse, refuse == 401 ? "login required" : "forbidden");
            return;
        }
    }
    best->fn(req, best->arg);
    if (!c->responded && !c->closing && c->defer == NULL) {
        WP_ERROR("http", "handler for %s %s gave no reply", req->method, best->path);
        send_error(c, 500, "no reply");
    }
}

/* ---- deferred replies ---- */

static void defer_work(uv_work_t *w)
{
    struct http_defer_job *j = w->data;

    j->work(j->arg);
}

/* The work ran (or was skipped: the client had left): done() and on with the connection. */
static void defer_finish(struct http_defer_job *j)
{
    struct http_conn *c = j->c;
    struct http_server *s = c->srv;

    s->st.deferred_pending--;
    c->defer = NULL;
    if (c->closing) {
        /* the client left (or the server stopped) while the work ran */
        s->st.deferred_gone++;
        j->done(NULL, j->arg);
        free(j);
        if (c->handles_open == 0) {
            conn_free(c); /* its close callback ran and left it to us */
        }
        return;
    }
    j->done(&c->req, j->arg);
    free(j);
    if (c->defer != NULL) {
        return; /* deferred again */
    }
    if (!c->responded && !c->closing) {
        WP_ERROR("http", "deferred handler for %s %s gave no reply", c->req.method,
                 c->raw_path != NULL ? c->raw_path : "-");
        send_error(c, 500, "no reply");
    }
    if (c->closing || c->finishing || c->sse != NULL) {
        return;
    }
    /* as conn_process() does after an answer: on with the next (pipelined) request */
    req_reset(c);
    http_parser_pause(&c->parser, 0);
    if (!c->blocked) {
        reading_set(c, 1);
    }
    conn_process(c);
}

static void defer_after(uv_work_t *w, int status);

/* Start queued jobs of q until one runs on the pool; a job whose client left meanwhile is
 * finished without running its work. */
static void queue_next(struct http_defer_queue *q)
{
    for (int guard = 0; q->head != NULL && !q->running && guard < 1000000; guard++) {
        struct http_defer_job *j = q->head;
        q->head = j->next;
        if (q->head == NULL) {
            q->tail = NULL;
        }
        j->next = NULL;
        if (!j->c->closing && uv_queue_work(j->c->srv->loop, &j->w, defer_work, defer_after) == 0) {
            q->running = 1;
            return;
        }
        if (!j->c->closing) {
            conn_close(j->c, "cannot queue deferred work");
        }
        defer_finish(j);
    }
}

static void defer_after(uv_work_t *w, int status)
{
    struct http_defer_job *j = w->data;
    struct http_defer_queue *q = j->q;

    (void)status;    /* never cancelled */
    defer_finish(j); /* frees j; done() may queue another job on q */
    if (q != NULL) {
        q->running = 0;
        queue_next(q);
    }
}

int http_defer_serial(struct http_req *req, struct http_defer_queue *q, http_work_fn work,
                      http_done_fn done, void *arg)
{
    struct http_conn *c = req != NULL ? req->conn : NULL;

    if (c == NULL || work == NULL || done == NULL || c->responded || c->closing ||
        c->defer != NULL || c->sse != NULL) {
        return -EALREADY;
    }
    struct http_defer_job *j = wp_xcalloc(1, sizeof(*j));
    j->c = c;
    j->work = work;
    j->done = done;
    j->arg = arg;
    j->q = q;
    j->w.data = j;
    if (q == NULL) {
        int rc = uv_queue_work(c->srv->loop, &j->w, defer_work, defer_after);
        if (rc < 0) {
            free(j);
            return rc;
        }
    }
    c->defer = j;
    c->srv->st.deferred++;
    c->srv->st.deferred_pending++;
    if (q != NULL) {
        if (q->tail != NULL) {
            q->tail->next = j;
        } else {
            q->head = j;
        }
        q->tail = j;
        queue_next(q);
    }
    return 0;
}

int http_defer(struct http_req *req, http_work_fn work, http_done_fn done, void *arg)
{
    return http_defer_serial(req, NULL, work, done, arg);
}

int http_route_role(struct http_server *s, const char *method, const char *path,
                    enum http_role role, http_handler_fn handler, void *arg)
{
    if (method == NULL || path == NULL || path[0] != '/' || handler == NULL ||
        strlen(method) == 0 || strlen(method) > 16) {
        return -EINVAL;
    }
    s->routes = wp_xrealloc(s->routes, (s->nroutes + 1) * sizeof(*s->routes));
    struct route *r = &s->routes[s->nroutes++];
    r->method = wp_xstrdup(method);
    r->path = wp_xstrdup(path);
    r->plen = strlen(path);
    r->prefix = path[r->plen - 1] == '/';
    r->role = role;
    r->fn = handler;
    r->arg = arg;
    return 0;
}

int http_route(struct http_server *s, const char *method, const char *path, http_handler_fn handler,
               void *arg)
{
    return http_route_role(s, method, path, HTTP_ROLE_NONE, handler, arg);
}

void http_set_auth(struct http_server *s, http_auth_fn fn, void *arg)
{
    s->auth = fn;
    s->auth_arg = arg;
}

/* ---- parser callbacks ---- */

static int head_append(struct http_conn *c, const char *at, size_t len)
{
    if (wp_buf_unread(&c->head) + len + 2 > c->srv->o.max_header_bytes) {
        c->err_status = 431;
        c->err_msg = "request head too large";
        return -1;
    }
    wp_buf_append(&c->head, at, len);
    return 0;
}

static int on_message_begin(http_parser *p)
{
    struct http_conn *c = p->data;

    if (c->phase == PH_KEEPALIVE) {
        /* the next request's head must arrive within header_timeout of its first byte */
        timer_start(c, c->srv->o.header_timeout_ms, 0, timeout_cb);
    }
    c->phase = PH_HEAD;
    c->t_start = uv_hrtime();
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;

    if (head_append(c, at, len) < 0) {
        return -1;
    }
    c->url_len += len;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;

    if (c->last_cb != 1) {
        if (c->nhdrs == MAX_HEADERS) {
            c->err_status = 431;
            c->err_msg = "too many header fields";
            return -1;
        }
        if (head_append(c, "", 1) < 0) { /* ends the URL or the previous value */
            return -1;
        }
        c->hdrs[c->nhdrs].name = wp_buf_unread(&c->head);
        c->hdrs[c->nhdrs].nlen = 0;
        c->hdrs[c->nhdrs].vlen = 0;
        c->nhdrs++;
        c->last_cb = 1;
    }
    c->hdrs[c->nhdrs - 1].nlen += len;
    return head_append(c, at, len);
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;

    if (c->last_cb != 2) {
        if (head_append(c, "", 1) < 0) {
            return -1;
        }
        c->hdrs[c->nhdrs - 1].value = wp_buf_unread(&c->head);
        c->last_cb = 2;
    }
    c->hdrs[c->nhdrs - 1].vlen += len;
    if (memchr(at, '\0', len) != NULL) {
        c->err_status = 400;
        c->err_msg = "NUL in a header";
        return -1;
    }
    return head_append(c, at, len);
}

static int on_headers_complete(http_parser *p)
{
    struct http_conn *c = p->data;
    struct http_server *s = c->srv;

    if (head_append(c, "", 1) < 0) {
        return -1;
    }
    if (c->last_cb == 1) {
        /* a name without a value (http-parser allows "X:\r\n"): give it an empty value */
        c->hdrs[c->nhdrs - 1].value = wp_buf_unread(&c->head) - 1;
    }
    c->head_done = 1;
    int chunked = (p->flags & F_CHUNKED) != 0;
    int has_len = (p->flags & F_CONTENTLENGTH) != 0;
    if (has_len && p->content_length > s->o.max_body_bytes) {
        c->err_status = 413;
        c->err_msg = "request body too large";
        return -1;
    }
    if (chunked || (has_len && p->content_length > 0)) {
        const char *expect = req_header(c, "Expect");
        if (expect != NULL && strcasecmp(expect, "100-continue") == 0) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            conn_send(c, cont, sizeof(cont) - 1);
        }
        c->phase = PH_BODY;
        timer_start(c, s->o.body_timeout_ms, 0, timeout_cb);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;

    if (wp_buf_unread(&c->body) + len > c->srv->o.max_body_bytes) {
        c->err_status = 413;
        c->err_msg = "request body too large";
        return -1;
    }
    wp_buf_append(&c->body, at, len);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct http_conn *c = p->data;

    c->msg_done = 1;
    c->phase = PH_HANDLER;
    uv_timer_stop(&c->timer);
    http_parser_pause(p, 1); /* one request at a time: dispatch before parsing on */
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Parse and answer what is buffered, one request at a time. */
static void conn_process(struct http_conn *c)
{
    struct http_server *s = c->srv;

    for (int guard = 0; guard < 100000; guard++) {
        if (c->closing || c->finishing || c->sse != NULL || c->blocked || c->defer != NULL) {
            break;
        }
        size_t avail = wp_buf_unread(&c->in);
        if (avail == 0) {
            break;
        }
        size_t feed = avail;
        int in_head = !c->head_done;
        if (in_head && feed > HEAD_SLICE) {
            feed = HEAD_SLICE;
        }
        size_t n = http_parser_execute(&c->parser, &parser_settings,
                                       (const char *)wp_buf_head(&c->in), feed);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        wp_buf_consume(&c->in, n);
        if (in_head && !c->head_done && e == HPE_OK) {
            c->raw_head += n;
            if (c->raw_head > s->o.max_header_bytes) {
                c->err_status = 431;
                c->err_msg = "request head too large";
                e = HPE_CB_header_value; /* any error: answered below */
            }
        }
        if (e == HPE_PAUSED && c->msg_done) {
            dispatch(c);
            if (c->closing || c->finishing || c->sse != NULL || c->defer != NULL) {
                break; /* deferred: defer_after() goes on with the next request */
            }
            req_reset(c);
            http_parser_pause(&c->parser, 0);
            continue;
        }
        if (e != HPE_OK) {
            int status = c->err_status != 0 ? c->err_status : e == HPE_HEADER_OVERFLOW ? 431 : 400;
            if (status == 431) {
                s->st.too_large_head++;
            } else if (status == 413) {
                s->st.too_large_body++;
            } else {
                s->st.bad_requests++;
            }
            WP_DEBUG("http", "client=%s: refused with %d: %s", c->client, status,
                     c->err_msg != NULL ? c->err_msg : http_errno_name(e));
            c->keep_alive = 0;
            if (c->t_start == 0) {
                c->t_start = uv_hrtime();
            }
            send_error(c, status,
                       c->err_msg != NULL ? c->err_msg
                       : status == 431    ? "request head too large"
                                          : "malformed request");
            break;
        }
    }
    if (wp_buf_unread(&c->in) == 0 && c->in.cap > 2 * READ_BUF) {
        wp_buf_cleanup(&c->in);
    }
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct http_conn *c = st->data;
    struct http_server *s = c->srv;

    if (nread < 0) {
        conn_close(c, nread == UV_EOF ? "client closed" : uv_strerror((int)nread));
        return;
    }
    if (nread == 0 || c->phase == PH_LINGER) {
        return; /* lingering: drop what the client still sends */
    }
    if (c->tls == NULL) {
        if (c->sse == NULL) {
            wp_buf_append(&c->in, buf->base, (size_t)nread);
        }
    } else {
        wp_tls_feed(c->tls, buf->base, (size_t)nread);
        if (!c->handshaken) {
            int rc = wp_tls_handshake(c->tls);
            tls_flush(c);
            if (rc == WP_EAGAIN || c->closing) {
                return;
            }
            if (rc < 0) {
                s->st.tls_failed++;
                WP_DEBUG("http", "client=%s: TLS handshake failed: %s", c->client,
                         wp_tls_last_error(c->tls));
                conn_close(c, "TLS handshake failed");
                return;
            }
            c->handshaken = 1;
        }
        for (int guard = 0; guard < 4096; guard++) {
            uint8_t *dst = wp_buf_reserve(&c->in, 16384);
            ssize_t n = wp_tls_read(c->tls, dst, 16384);
            if (n == WP_EAGAIN) {
                break;
            }
            if (n == WP_ECLOSED || n < 0) {
                conn_close(c, n == WP_ECLOSED ? "close_notify" : wp_tls_last_error(c->tls));
                return;
            }
            if (c->sse == NULL) {
                c->in.len += (size_t)n;
            }
        }
        tls_flush(c);
        if (c->closing) {
            return;
        }
    }
    if (c->sse != NULL) {
        wp_buf_reset(&c->in);
        return;
    }
    if (c->defer != NULL && wp_buf_unread(&c->in) > READ_BUF) {
        reading_set(c, 0); /* pipelined requests wait for the deferred reply: not unbounded */
    }
    if (c->phase == PH_BODY) {
        timer_start(c, s->o.body_timeout_ms, 0, timeout_cb);
    }
    conn_process(c);
}

void http_peer_name(uv_tcp_t *tcp, int bracket_v6, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    int n = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &n) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            uv_ip4_name(a, host, sizeof(host));
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, host, sizeof(host));
            port = ntohs(a->sin6_port);
        }
    }
    snprintf(buf, len, bracket_v6 && ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", host, port);
}

static void accept_cb(uv_stream_t *server, int status)
{
    struct http_server *s = server->data;
    struct http_conn *c = NULL;

    if (status < 0) {
        WP_WARN("http", "accept failed: %s", uv_strerror(status));
        return;
    }
    c = wp_xcalloc(1, sizeof(*c));
    c->srv = s;
    wp_buf_init(&c->in);
    wp_buf_init(&c->head);
    wp_buf_init(&c->body);
    wp_buf_init(&c->rhdr);
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    c->phase = PH_HEAD;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->next = s->conns;
    if (s->conns) {
        s->conns->prev = c;
    }
    s->conns = c;
    s->nconns++;
    s->nalive++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c, "accept failed");
        return;
    }
    s->st.accepted++;
    http_peer_name(&c->tcp, 1, c->client, sizeof(c->client));
    uv_tcp_nodelay(&c->tcp, 1);
    if ((int64_t)s->nconns > s->o.max_connections) {
        s->st.refused_busy++;
        WP_DEBUG("http", "client=%s refused: %zu connections (http.max_connections)", c->client,
                 s->nconns - 1);
        if (s->tls != NULL) {
            conn_close(c, "too many connections"); /* no handshake spent on a refusal */
            return;
        }
        c->t_start = uv_hrtime();
        c->keep_alive = 0;
        reading_set(c, 1);
        send_error(c, 503, "too many connections");
        return;
    }
    if (s->tls != NULL && wp_tls_conn_new(s->tls, NULL, &c->tls) < 0) {
        conn_close(c, "cannot create TLS state");
        return;
    }
    timer_start(c, s->o.header_timeout_ms, 0, timeout_cb);
    reading_set(c, 1);
}

/* ---- server ---- */

static void listener_close_cb(uv_handle_t *h)
{
    struct http_server *s = h->data;

    s->listener_open = 0;
    server_maybe_free(s);
}

int http_tcp_listen(uv_tcp_t *h, const char *host, const char *port, int backlog,
                    uv_connection_cb cb, int *bound_port, char *err, size_t errlen)
{
    struct addrinfo hints;
    struct addrinfo *res = NULL;
    struct sockaddr_storage ss;
    int n = sizeof(ss);
    int rc = 0;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "listen address %s:%s: %s", host != NULL ? host : "", port,
                 gai_strerror(rc));
        return WP_ECONFIG;
    }
    rc = uv_tcp_bind(h, res->ai_addr, 0);
    freeaddrinfo(res);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)h, backlog, cb);
    }
    if (rc < 0) {
        snprintf(err, errlen, "cannot listen on %s:%s: %s", host != NULL ? host : "", port,
                 uv_strerror(rc));
        return rc;
    }
    memset(&ss, 0, sizeof(ss));
    uv_tcp_getsockname(h, (struct sockaddr *)&ss, &n);
    *bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

int http_server_start(uv_loop_t *loop, const struct http_opts *opts, char *err, size_t errlen,
                      struct http_server **out)
{
    struct http_server *s = wp_xcalloc(1, sizeof(*s));
    int rc = 0;

    *out = NULL;
    if (errlen > 0) {
        err[0] = '\0';
    }
    s->loop = loop;
    s->o = *opts;
    s->host = wp_xstrdup(opts->host != NULL ? opts->host : "127.0.0.1");
    s->port = wp_xstrdup(opts->port != NULL ? opts->port : "0");
    s->o.host = s->host;
    s->o.port = s->port;
    s->o.tls_cert = s->o.tls_key = NULL;
    s->o.static_dir = opts->static_dir != NULL ? wp_xstrdup(opts->static_dir) : NULL;
    s->o.max_connections = opts->max_connections > 0 ? opts->max_connections : DEF_MAX_CONNS;
    s->o.max_header_bytes = opts->max_header_bytes > 0 ? opts->max_header_bytes : DEF_MAX_HEAD;
    s->o.max_body_bytes = opts->max_body_bytes > 0 ? opts->max_body_bytes : DEF_MAX_BODY;
    s->o.header_timeout_ms =
        opts->header_timeout_ms > 0 ? opts->header_timeout_ms : DEF_HEAD_TIMEOUT;
    s->o.body_timeout_ms = opts->body_timeout_ms > 0 ? opts->body_timeout_ms : DEF_BODY_TIMEOUT;
    s->o.idle_timeout_ms = opts->idle_timeout_ms > 0 ? opts->idle_timeout_ms : DEF_IDLE_TIMEOUT;
    s->o.sse_ping_ms = opts->sse_ping_ms > 0 ? opts->sse_ping_ms : DEF_SSE_PING;
    s->static_fd = -1;

    if (s->o.static_dir != NULL) {
        s->static_fd = open(s->o.static_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (s->static_fd < 0) {
            WP_WARN("http", "static files directory %s: %s; no static files are served",
                    s->o.static_dir, strerror(errno));
        }
    }
    if (opts->tls_cert != NULL || opts->tls_key != NULL) {
        struct wp_tls_opts t = {
            .cert_path = opts->tls_cert,
            .key_path = opts->tls_key,
            .is_server = 1,
            .no_client_cert = 1,
        };
        rc = wp_tls_ctx_new(&t, err, errlen, &s->tls);
        if (rc < 0) {
            server_maybe_free(s);
            return rc;
        }
    }
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    s->listener_open = 1;
    rc = http_tcp_listen(&s->listener, s->host, s->port, 511, accept_cb, &s->bound_port, err,
                         errlen);
    if (rc < 0) {
        s->stopping = 1;
        uv_close((uv_handle_t *)&s->listener, listener_close_cb);
        return rc;
    }
    *out = s;
    return 0;
}

int http_server_port(const struct http_server *s)
{
    return s->bound_port;
}

void http_server_stop(struct http_server *s)
{
    if (s == NULL || s->stopping) {
        return;
    }
    s->stopping = 1;
    for (int guard = 0; s->conns != NULL && guard < 10000000; guard++) {
        conn_close(s->conns, "server stopping");
    }
    uv_close((uv_handle_t *)&s->listener, listener_close_cb);
}

void http_server_stats(const struct http_server *s, struct http_stats *out)
{
    *out = s->st;
    out->connections = s->nconns;
}

/* ---- Server-Sent Events ---- */

struct http_sse *http_sse_open(struct http_req *req)
{
    struct http_conn *c = req->conn;
    char retry[32];

    if (c == NULL || c->responded || c->closing) {
        return NULL;
    }
    struct http_sse *h = wp_xcalloc(1, sizeof(*h));
    h->conn = c;
    c->keep_alive = 0; /* the stream ends with the connection */
    static const char sse_hdrs[] = "Cache-Control: no-store\r\nX-Accel-Buffering: no\r\n";
    wp_buf_append(&c->rhdr, sse_hdrs, sizeof(sse_hdrs) - 1);
    send_head_body(c, 200, "text/event-stream; charset=utf-8", NULL, 0, 1, NULL);
    int n = snprintf(retry, sizeof(retry), "retry: %d\n\n", SSE_RETRY_MS);
    if (!c->req.head) {
        conn_send(c, retry, (size_t)n);
    }
    if (c->closing) {
        free(h);
        return NULL;
    }
    if (c->req.head) {
        /* HEAD: the reply is complete without events */
        free(h);
        conn_finish(c);
        return NULL;
    }
    c->sse = h;
    c->phase = PH_SSE;
    c->srv->st.sse_streams++;
    timer_start(c, c->srv->o.sse_ping_ms, (uint64_t)c->srv->o.sse_ping_ms, timeout_cb);
    wp_buf_reset(&c->in); /* nothing more is parsed on this connection */
    return h;
}

int http_sse_send(struct http_sse *h, const char *event, const char *data)
{
    struct http_conn *c = h != NULL ? h->conn : NULL;
    struct wp_buf b;

    if (c == NULL || c->closing) {
        return WP_ECLOSED;
    }
    if (event != NULL && has_crlf(event)) {
        return -EINVAL;
    }
    wp_buf_init(&b);
    if (event != NULL) {
        wp_buf_append(&b, "event: ", 7);
        wp_buf_append(&b, event, strlen(event));
        wp_buf_append(&b, "\n", 1);
    }
    const char *p = data != NULL ? data : "";
    /* every line (CRLF, CR or LF ends one) becomes a data: line */
    for (int guard = 0; guard < 1000000; guard++) {
        size_t n = strcspn(p, "\r\n");
        wp_buf_append(&b, "data: ", 6);
        wp_buf_append(&b, p, n);
        wp_buf_append(&b, "\n", 1);
        p += n;
        if (*p == '\0') {
            break;
        }
        p += (p[0] == '\r' && p[1] == '\n') ? 2 : 1;
    }
    wp_buf_append(&b, "\n", 1);
    conn_send(c, wp_buf_head(&b), wp_buf_unread(&b));
    wp_buf_cleanup(&b);
    if (c->closing) {
        return WP_ECLOSED;
    }
    if (c->queued > WRITE_HIGH) {
        conn_close(c, "event stream client does not read");
        return WP_ECLOSED;
    }
    return 0;
}

int http_sse_is_open(const struct http_sse *h)
{
    return h != NULL && h->conn != NULL;
}

void http_sse_set_close_cb(struct http_sse *h, void (*fn)(struct http_sse *h, void *arg), void *arg)
{
    h->cb = fn;
    h->arg = arg;
}

void http_sse_close(struct http_sse *h)
{
    if (h == NULL) {
        return;
    }
    struct http_conn *c = h->conn;
    if (c != NULL) {
        c->sse = NULL;
        h->conn = NULL;
        c->srv->st.sse_streams--;
        conn_finish(c);
    }
    free(h);
}
