/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP server (collector/http.c) on a private loop in a thread, driven by a raw TCP client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>
#include <zlib.h>

#include "http.h"
#include "wp/err.h"
#include "wp/log.h"

#define IO_TIMEOUT_MS 5000
#define RESP_MAX      (256 * 1024)

enum cmd { CMD_NONE, CMD_STOP, CMD_SSE_SEND, CMD_SSE_CLOSE, CMD_STATS };

struct fx {
    uv_loop_t loop;
    uv_async_t async;
    pthread_t thr;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    enum cmd cmd;
    int done; /* the command ran */
    int rc;   /* its result */
    struct http_server *srv;
    int port;
    struct http_stats stats;
    struct http_sse *sse;
    int sse_closed;
    char tmp[64];
    char root[128];
    /* deferred replies (h_slow): the work blocks until the test opens the gate */
    pthread_cond_t wcv;
    int work_started, gate, done_calls, done_gone;
    int defer_bad;             /* http_defer() did not answer as documented */
    struct http_defer_queue q; /* h_serial's jobs, one at a time */
};

static struct fx F;

/* ---- handlers (loop thread) ---- */

static void h_hello(struct http_req *req, void *arg)
{
    (void)arg;
    http_respond(req, 200, "text/plain", "hello", 5);
}

static void h_echo(struct http_req *req, void *arg)
{
    (void)arg;
    http_respond(req, 200, "application/octet-stream", req->body, req->body_len);
}

static void h_thing(struct http_req *req, void *arg)
{
    const char *x = http_req_query(req, "x");
    const char *ua = http_req_header(req, "user-agent");

    (void)arg;
    http_respond_json(
        req, 200, json_pack("{s:b,s:s?,s:s?,s:s}", "ok", 1, "x", x, "ua", ua, "path", req->path));
}

static void h_silent(struct http_req *req, void *arg)
{
    (void)req;
    (void)arg; /* answers nothing: the server must send 500 */
}

/* Deferred work (a pool thread): blocks until the gate opens (at most 20 s). */
static void slow_work(void *arg)
{
    struct fx *f = arg;
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 20;
    pthread_mutex_lock(&f->mu);
    f->work_started++;
    pthread_cond_broadcast(&f->wcv);
    while (!f->gate) {
        if (pthread_cond_timedwait(&f->wcv, &f->mu, &ts) == ETIMEDOUT) {
            break;
        }
    }
    pthread_mutex_unlock(&f->mu);
}

static void slow_done(struct http_req *req, void *arg)
{
    struct fx *f = arg;

    if (req != NULL) {
        http_resp_header(req, "X-Deferred", "1");
        http_respond(req, 200, "text/plain", "slow", 4);
    }
    pthread_mutex_lock(&f->mu);
    f->done_calls++;
    f->done_gone += req == NULL;
    pthread_cond_broadcast(&f->wcv);
    pthread_mutex_unlock(&f->mu);
}

static void h_slow(struct http_req *req, void *arg)
{
    struct fx *f = arg;

    if (http_defer(req, slow_work, slow_done, arg) != 0) {
        f->defer_bad = 1;
        http_respond_error(req, 500, "http_defer failed");
        return;
    }
    /* once deferred, the request is not the handler's to defer again */
    if (http_defer(req, slow_work, slow_done, arg) != -EALREADY) {
        f->defer_bad = 1;
    }
}

static void h_serial(struct http_req *req, void *arg)
{
    struct fx *f = arg;

    if (http_defer_serial(req, &f->q, slow_work, slow_done, arg) != 0) {
        f->defer_bad = 1;
        http_respond_error(req, 500, "http_defer_serial failed");
    }
}

/* A shared body of 4000 bytes (gzipped for clients that ask). */
static void h_shared(struct http_req *req, void *arg)
{
    char *data = malloc(4000);

    (void)arg;
    for (int i = 0; i < 4000; i++) {
        data[i] = (char)('a' + i % 7);
    }
    struct http_body *b = http_body_new(data, 4000);
    http_respond_body(req, 200, "text/plain", b);
    http_body_unref(b); /* the write keeps its own reference */
}

static void sse_closed_cb(struct http_sse *h, void *arg)
{
    struct fx *f = arg;

    (void)h;
    pthread_mutex_lock(&f->mu);
    f->sse_closed = 1;
    pthread_mutex_unlock(&f->mu);
}

static void h_sse(struct http_req *req, void *arg)
{
    struct fx *f = arg;
    struct http_sse *h = http_sse_open(req);

    if (h == NULL) {
        return;
    }
    http_sse_set_close_cb(h, sse_closed_cb, f);
    pthread_mutex_lock(&f->mu);
    f->sse = h;
    f->sse_closed = 0;
    pthread_mutex_unlock(&f->mu);
}

/* ---- the loop thread ---- */

static void async_cb(uv_async_t *a)
{
    struct fx *f = a->data;

    pthread_mutex_lock(&f->mu);
    enum cmd cmd = f->cmd;
    f->cmd = CMD_NONE;
    pthread_mutex_unlock(&f->mu);
    int rc = 0;
    switch (cmd) {
    case CMD_STOP:
        http_server_stop(f->srv);
        uv_close((uv_handle_t *)&f->async, NULL);
        break;
    case CMD_SSE_SEND:
        rc = http_sse_send(f->sse, "tick", "a\nb");
        break;
    case CMD_SSE_CLOSE:
        http_sse_close(f->sse);
        f->sse = NULL;
        break;
    case CMD_STATS:
        http_server_stats(f->srv, &f->stats);
        break;
    case CMD_NONE:
        return;
    }
    pthread_mutex_lock(&f->mu);
    f->rc = rc;
    f->done = 1;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static void *loop_main(void *arg)
{
    struct fx *f = arg;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    return NULL;
}

static int run_cmd(struct fx *f, enum cmd cmd)
{
    struct timespec ts;

    pthread_mutex_lock(&f->mu);
    f->cmd = cmd;
    f->done = 0;
    pthread_mutex_unlock(&f->mu);
    uv_async_send(&f->async);
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    pthread_mutex_lock(&f->mu);
    while (!f->done) {
        if (pthread_cond_timedwait(&f->cv, &f->mu, &ts) == ETIMEDOUT) {
            break;
        }
    }
    int done = f->done;
    int rc = f->rc;
    pthread_mutex_unlock(&f->mu);
    assert_true(done);
    return rc;
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void make_tree(struct fx *f)
{
    char p[256];

    snprintf(f->tmp, sizeof(f->tmp), "/tmp/wp-httpd.XXXXXX");
    assert_non_null(mkdtemp(f->tmp));
    snprintf(f->root, sizeof(f->root), "%s/root", f->tmp);
    assert_int_equal(mkdir(f->root, 0755), 0);
    snprintf(p, sizeof(p), "%s/secret.txt", f->tmp);
    write_file(p, "TOPSECRET\n");
    snprintf(p, sizeof(p), "%s/index.html", f->root);
    write_file(p, "<!DOCTYPE html><title>Watchpost</title>\n");
    snprintf(p, sizeof(p), "%s/app.js", f->root);
    write_file(p, "console.log(1);\n");
    snprintf(p, sizeof(p), "%s/big.bin", f->root);
    {
        FILE *fp = fopen(p, "w");
        assert_non_null(fp);
        for (int i = 0; i < 65536; i++) {
            fputc('a' + i % 26, fp);
        }
        fclose(fp);
    }
    snprintf(p, sizeof(p), "%s/.hidden", f->root);
    write_file(p, "hidden\n");
    snprintf(p, sizeof(p), "%s/sub", f->root);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/sub/page.css", f->root);
    write_file(p, "body{}\n");
    snprintf(p, sizeof(p), "%s/sub/index.html", f->root);
    write_file(p, "<p>sub</p>\n");
    snprintf(p, sizeof(p), "%s/link.txt", f->root);
    assert_int_equal(symlink("../secret.txt", p), 0);
    snprintf(p, sizeof(p), "%s/up", f->root);
    assert_int_equal(symlink("..", p), 0);
    snprintf(p, sizeof(p), "%s/abs", f->root);
    assert_int_equal(symlink("/etc", p), 0);
}

static void remove_tree(struct fx *f)
{
    static const char *const names[] = {"root/sub/page.css",
                                        "root/sub/index.html",
                                        "root/sub",
                                        "root/index.html",
                                        "root/app.js",
                                        "root/big.bin",
                                        "root/.hidden",
                                        "root/link.txt",
                                        "root/up",
                                        "root/abs",
                                        "root",
                                        "secret.txt"};
    char p[256];

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", f->tmp, names[i]);
        if (unlink(p) < 0) {
            rmdir(p);
        }
    }
    rmdir(f->tmp);
}

static void start(struct fx *f, struct http_opts *o)
{
    char err[256];

    memset(f, 0, sizeof(*f));
    make_tree(f);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    pthread_cond_init(&f->wcv, NULL);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_async_init(&f->loop, &f->async, async_cb);
    f->async.data = f;
    o->host = "127.0.0.1";
    o->port = "0";
    o->static_dir = f->root;
    int rc = http_server_start(&f->loop, o, err, sizeof(err), &f->srv);
    if (rc < 0) {
        fail_msg("http_server_start: %s", err);
    }
    f->port = http_server_port(f->srv);
    assert_true(f->port > 0);
    assert_int_equal(http_route(f->srv, "GET", "/hello", h_hello, f), 0);
    assert_int_equal(http_route(f->srv, "POST", "/echo", h_echo, f), 0);
    assert_int_equal(http_route(f->srv, "GET", "/api/v1/thing", h_thing, f), 0);
    assert_int_equal(http_route(f->srv, "GET", "/api/v1/silent", h_silent, f), 0);
    assert_int_equal(http_route(f->srv, "GET", "/events", h_sse, f), 0);
    assert_int_equal(http_route(f->srv, "GET", "/slow", h_slow, f), 0);
    assert_int_equal(http_route(f->srv, "GET", "/shared", h_shared, f), 0);
    assert_int_equal(http_route(f->srv, "GET", "/serial", h_serial, f), 0);
    assert_int_equal(http_route(f->srv, "GET", "bad", h_hello, f), -EINVAL);
    assert_int_equal(pthread_create(&f->thr, NULL, loop_main, f), 0);
}

/* Wait until *field >= value (set under f->mu, signalled on wcv); at most 10 s. */
static void wait_for(struct fx *f, const int *field, int value)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    pthread_mutex_lock(&f->mu);
    while (*field < value) {
        if (pthread_cond_timedwait(&f->wcv, &f->mu, &ts) == ETIMEDOUT) {
            break;
        }
    }
    int got = *field;
    pthread_mutex_unlock(&f->mu);
    assert_true(got >= value);
}

static void gate_open(struct fx *f)
{
    pthread_mutex_lock(&f->mu);
    f->gate = 1;
    pthread_cond_broadcast(&f->wcv);
    pthread_mutex_unlock(&f->mu);
}

/* After CMD_STOP: the loop ends, then everything is freed. */
static void stop_rest(struct fx *f)
{
    pthread_join(f->thr, NULL);
    /* every handle closed and every connection freed: the loop closes cleanly */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    pthread_cond_destroy(&f->wcv);
    remove_tree(f);
}

static void stop(struct fx *f)
{
    run_cmd(f, CMD_STOP);
    gate_open(f); /* deferred work still blocked would keep the loop alive */
    pthread_join(f->thr, NULL);
    /* every handle closed and every connection freed: the loop closes cleanly */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    pthread_cond_destroy(&f->wcv);
    remove_tree(f);
}

static struct http_stats stats(struct fx *f)
{
    run_cmd(f, CMD_STATS);
    return f->stats;
}

/* ---- a raw client ---- */

static int cconnect(int port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static void csend(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return; /* the server may have closed already (413, 431): the reply is readable */
        }
        c += w;
        n -= (size_t)w;
    }
}

static void csends(int fd, const char *s)
{
    csend(fd, s, strlen(s));
}

/* Read up to cap bytes, waiting at most ms for each chunk; returns bytes, stops at EOF. */
static size_t cread_some(int fd, char *buf, size_t cap, int ms, int *eof)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    *eof = 0;
    if (poll(&p, 1, ms) <= 0) {
        return 0;
    }
    ssize_t n = recv(fd, buf, cap, 0);
    if (n <= 0) {
        *eof = 1;
        return 0;
    }
    return (size_t)n;
}

struct resp {
    int status;
    char head[8192];
    char *body;
    size_t body_len;
    int closed; /* the server closed after this response */
};

/* Per connection: bytes read past the last response (pipelining). */
struct client {
    int fd;
    char buf[RESP_MAX];
    size_t len;
};

static void client_open(struct client *c, int port)
{
    c->fd = cconnect(port);
    c->len = 0;
}

static const char *hdr(const struct resp *r, const char *name)
{
    static char val[1024];
    size_t nl = strlen(name);
    const char *p = strstr(r->head, "\r\n");

    for (int guard = 0; p != NULL && guard < 200; guard++) {
        p += 2;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ') {
                v++;
            }
            size_t n = strcspn(v, "\r\n");
            if (n >= sizeof(val)) {
                n = sizeof(val) - 1;
            }
            memcpy(val, v, n);
            val[n] = '\0';
            return val;
        }
        p = strstr(p, "\r\n");
    }
    return NULL;
}

/* Read one response; head_req: no body follows (HEAD). Returns 0, or -1 on EOF/timeout. */
static int read_resp(struct client *c, int head_req, struct resp *r)
{
    int eof = 0;
    char *end = NULL;

    memset(r, 0, sizeof(*r));
    for (int guard = 0; guard < 1000; guard++) {
        c->buf[c->len] = '\0';
        end = strstr(c->buf, "\r\n\r\n");
        if (end != NULL) {
            break;
        }
        size_t n =
            cread_some(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, IO_TIMEOUT_MS, &eof);
        if (n == 0) {
            return -1;
        }
        c->len += n;
    }
    if (end == NULL) {
        return -1;
    }
    size_t hlen = (size_t)(end - c->buf) + 4;
    assert_true(hlen < sizeof(r->head));
    memcpy(r->head, c->buf, hlen);
    r->head[hlen] = '\0';
    r->status = atoi(r->head + 9);
    const char *cl = hdr(r, "Content-Length");
    size_t blen = 0;
    if (cl != NULL && !head_req && r->status != 304) {
        blen = (size_t)strtoul(cl, NULL, 10);
    }
    assert_true(hlen + blen < sizeof(c->buf));
    for (int guard = 0; c->len < hlen + blen && guard < 1000; guard++) {
        size_t n =
            cread_some(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, IO_TIMEOUT_MS, &eof);
        if (n == 0) {
            return -1;
        }
        c->len += n;
    }
    r->body = calloc(1, blen + 1);
    memcpy(r->body, c->buf + hlen, blen);
    r->body_len = blen;
    memmove(c->buf, c->buf + hlen + blen, c->len - hlen - blen);
    c->len -= hlen + blen;
    const char *conn = hdr(r, "Connection");
    r->closed = conn != NULL && strcasecmp(conn, "close") == 0;
    return 0;
}

static void resp_free(struct resp *r)
{
    free(r->body);
    r->body = NULL;
}

/* Wait until the server closes the connection (EOF or reset) within ms; 1 if it did. */
static int closed_within(struct client *c, int ms)
{
    char tmp[4096];
    int eof = 0;
    struct timespec t0, t1;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int guard = 0; guard < 100000; guard++) {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        long el = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
        if (el >= ms) {
            return 0;
        }
        cread_some(c->fd, tmp, sizeof(tmp), (int)(ms - el), &eof);
        if (eof) {
            return 1;
        }
    }
    return 0;
}

/* One request on a new connection; the response in r. */
static void one(struct fx *f, const char *request, int head_req, struct resp *r)
{
    struct client *c = calloc(1, sizeof(*c));

    client_open(c, f->port);
    csends(c->fd, request);
    if (read_resp(c, head_req, r) < 0) {
        r->status = -1;
    }
    close(c->fd);
    free(c);
}

/* ---- tests ---- */

static void get_and_security_headers(void **state)
{
    struct http_opts o = {0};
    struct resp r;

    (void)state;
    start(&F, &o);
    one(&F, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", 0, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello");
    assert_string_equal(hdr(&r, "X-Content-Type-Options"), "nosniff");
    assert_string_equal(hdr(&r, "X-Frame-Options"), "DENY");
    assert_non_null(strstr(hdr(&r, "Content-Security-Policy"), "default-src 'self'"));
    assert_string_equal(hdr(&r, "Referrer-Policy"), "same-origin");
    assert_null(hdr(&r, "Strict-Transport-Security")); /* plain HTTP */
    assert_false(r.closed);
    resp_free(&r);

    /* query decoding, header lookup, JSON reply */
    one(&F, "GET /api/v1/thing?y=1&x=a%20b+c HTTP/1.1\r\nUser-Agent: t/1\r\n\r\n", 0, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(hdr(&r, "Content-Type"), "application/json");
    assert_non_null(strstr(r.body, "\"x\":\"a b c\""));
    assert_non_null(strstr(r.body, "\"ua\":\"t/1\""));
    resp_free(&r);

    /* a handler that does not answer gives 500 */
    one(&F, "GET /api/v1/silent HTTP/1.1\r\n\r\n", 0, &r);
    assert_int_equal(r.status, 500);
    resp_free(&r);

    /* POST body echoed; chunked too */
    one(&F, "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcde", 0, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "abcde");
    resp_free(&r);
    one(&F,
        "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        0, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "abcde");
    resp_free(&r);
    stop(&F);
}

static void keepalive_and_pipelining(void **state)
{
    struct http_opts o = {0};
    struct client *c = calloc(1, sizeof(*c));
    struct resp r;

    (void)state;
    start(&F, &o);
    client_open(c, F.port);
    csends(c->fd, "GET /hello HTTP/1.1\r\n\r\n");
    assert_int_equal(read_resp(c, 0, &r), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    csends(c->fd, "GET /api/v1/thing?x=2 HTTP/1.1\r\n\r\n");
    assert_int_equal(read_resp(c, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"x\":\"2\""));
    resp_free(&r);

    /* three pipelined requests in one write: three answers, in order */
    csends(c->fd, "GET /api/v1/thing?x=p1 HTTP/1.1\r\n\r\n"
                  "POST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz"
                  "GET /api/v1/thing?x=p3 HTTP/1.1\r\n\r\n");
    assert_int_equal(read_resp(c, 0, &r), 0);
    assert_non_null(strstr(r.body, "\"x\":\"p1\""));
    resp_free(&r);
    assert_int_equal(read_resp(c, 0, &r), 0);
    assert_string_equal(r.body, "xyz");
    resp_free(&r);
    assert_int_equal(read_resp(c, 0, &r), 0);
    assert_non_null(strstr(r.body, "\"x\":\"p3\""));
    resp_free(&r);

    /* Connection: close is honoured */
    csends(c->fd, "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_int_equal(read_resp(c, 0, &r), 0);
    assert_true(r.closed);
    resp_free(&r);
    assert_true(closed_within(c, 3000));
    close(c->fd);

    struct http_stats st = stats(&F);
    assert_int_equal(st.requests, 6);
    assert_int_equal(st.accepted, 1);
    free(c);
    stop(&F);
}

static void malformed_and_limits(void **state)
{
    struct http_opts o = {.max_body_bytes = 64 * 1024, .max_header_bytes = 8 * 1024};
    struct resp r;
    char *big = malloc(64 * 1024);

    (void)state;
    start(&F, &o);
    one(&F, "GARBAGE\r\n\r\n", 0, &r);
    assert_int_equal(r.status, 400);
    assert_true(r.closed);
    assert_non_null(strstr(r.body, "\"error\""));
    resp_free(&r);
    one(&F, "GET /hello HTTP/1.1 extra\r\n\r\n", 0, &r);
    assert_int_equal(r.status, 400);
    resp_free(&r);
    one(&F, "GET /hello HTTP/9\r\n\r\n", 0, &r);
    assert_int_equal(r.status, 400);
    resp_free(&r);
    /* a bare "*" target and CONNECT are refused */
    one(&F, "OPTIONS * HTTP/1.1\r\n\r\n", 0, &r);
    assert_int_equal(r.status, 400);
    resp_free(&r);
    /* request smuggling: both lengths */
    one(&F,
        "POST /echo HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        "0\r\n\r\n",
        0, &r);
    assert_int_equal(r.status, 400);
    resp_free(&r);

    /* one 20 KiB header: 431 */
    snprintf(big, 64 * 1024, "GET /hello HTTP/1.1\r\nX-Big: %0*d\r\n\r\n", 20000, 7);
    one(&F, big, 0, &r);
    assert_int_equal(r.status, 431);
    assert_true(r.closed);
    resp_free(&r);
    /* a 10 KiB request line: 431 */
    memset(big, 'a', 10000);
    memcpy(big, "GET /", 5);
    snprintf(big + 10000, 64, " HTTP/1.1\r\n\r\n");
    one(&F, big, 0, &r);
    assert_int_equal(r.status, 431);
    resp_free(&r);
    /* many small headers: 431 */
    size_t o2 = (size_t)snprintf(big, 64, "GET /hello HTTP/1.1\r\n");
    for (int i = 0; i < 150; i++) {
        o2 += (size_t)snprintf(big + o2, 64, "X-H%d: v\r\n", i);
    }
    snprintf(big + o2, 8, "\r\n");
    one(&F, big, 0, &r);
    assert_int_equal(r.status, 431);
    resp_free(&r);

    /* a declared body over the limit: 413 before it is sent */
    one(&F, "POST /echo HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", 0, &r);
    assert_int_equal(r.status, 413);
    assert_true(r.closed);
    resp_free(&r);
    /* a chunked body growing over the limit: 413 */
    {
        struct client *c = calloc(1, sizeof(*c));
        client_open(c, F.port);
        csends(c->fd, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        memset(big, 'z', 32 * 1024);
        for (int i = 0; i < 3; i++) {
            csends(c->fd, "8000\r\n");
            csend(c->fd, big, 32 * 1024);
            csends(c->fd, "\r\n");
        }
        assert_int_equal(read_resp(c, 0, &r), 0);
        assert_int_equal(r.status, 413);
        resp_free(&r);
        assert_true(closed_within(c, 5000));
        close(c->fd);
        free(c);
    }
    struct http_stats st = stats(&F);
    assert_int_equal(st.too_large_head, 3);
    assert_int_equal(st.too_large_body, 2);
    assert_true(st.bad_requests >= 4);
    free(big);
    stop(&F);
}

static void slow_clients_time_out(void **state)
{
    struct http_opts o = {.header_timeout_ms = 300, .idle_timeout_ms = 300, .body_timeout_ms = 300};
    struct client *c = calloc(1, sizeof(*c));
    struct resp r;

    (void)state;
    start(&F, &o);
    /* a request head that never ends: closed after header_timeout, even while trickling */
    client_open(c, F.port);
    csends(c->fd, "GET /hello HTTP/1.1\r\n");
    for (int i = 0; i < 4; i++) {
        usleep(100 * 1000);
        csends(c->fd, "X-Slow: 1\r\n");
    }
    assert_true(closed_within(c, 3000));
    close(c->fd);
    /* a connection that never sends a byte */
    client_open(c, F.port);
    assert_true(closed_within(c, 3000));
    close(c->fd);
    /* a body that stalls */
    client_open(c, F.port);
    csends(c->fd, "POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
    assert_true(closed_within(c, 3000));
    close(c->fd);
    /* a kept-alive connection left idle */
    client_open(c, F.port);
    csends(c->fd, "GET /hello HTTP/1.1\r\n\r\n");
    assert_int_equal(read_resp(c, 0, &r), 0);
    resp_free(&r);
    assert_true(closed_within(c, 3000));
    close(c->fd);

    struct http_stats st = stats(&F);
    assert_int_equal(st.timeouts_header, 2);
    assert_int_equal(st.timeouts_body, 1);
    assert_int_equal(st.timeouts_idle, 1);
    assert_int_equal(st.connections, 0);
    free(c);
    stop(&F);
}

static void path_traversal_refused(void **state)
{
    static const char *const attempts[] = {
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2e%2e%2fsecret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/sub/../../secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/..%2f..%2fsecret.txt",
        "/..%5c..%5csecret.txt",
        "//etc/passwd",
        "/etc/passwd",
        "/link.txt",
        "/up/secret.txt",
        "/up/",
        "/abs/passwd",
        "/abs/hostname",
        "/.hidden",
        "/%00",
        "/index.html%00.js",
        "/%252e%252e/secret.txt",
        "/%",
        "/%zz",
        "http://x/../secret.txt",
    };
    struct http_opts o = {0};
    char req[512];
    struct resp r;

    (void)state;
    start(&F, &o);
    for (size_t i = 0; i < sizeof(attempts) / sizeof(attempts[0]); i++) {
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\n\r\n", attempts[i]);
        one(&F, req, 0, &r);
        if (getenv("WP_TEST_VERBOSE") != NULL) {
            printf("%s -> %d\n", attempts[i], r.status);
        }
        if (r.status != 400 && r.status != 404) {
            fail_msg("%s: status %d", attempts[i], r.status);
        }
        if (r.body != NULL && (strstr(r.body, "TOPSECRET") || strstr(r.body, "root:"))) {
            fail_msg("%s: content from outside the root", attempts[i]);
        }
        resp_free(&r);
    }
    stop(&F);
}

static void static_files(void **state)
{
    struct http_opts o = {0};
    struct resp r;
    char req[512];

    (void)state;
    start(&F, &o);
    one(&F, "GET / HTTP/1.1\r\n\r\n", 0, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "<title>Watchpost</title>"));
    assert_string_equal(hdr(&r, "Content-Type"), "text/html; charset=utf-8");
    assert_string_equal(hdr(&r, "Cache-Control"), "no-cache");
    resp_free(&r);
    one(&F, "GET /app.js HTTP/1.1\r\n\r\n", 0, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(hdr(&r, "Content-Type"), "text/javascript; charset=utf-8");
    assert_non_null(hdr(&r, "Last-Modified"));
    char etag[128];
    snprintf(etag, sizeof(etag), "%s", hdr(&r, "ETag"));
    assert_true(etag[0] == '"');
    resp_free(&r);
    one(&F, "GET /sub/page.css HTTP/1.1\r\n\r\n", 0, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(hdr(&r, "Content-Type"), "text/css; charset=utf-8");
    resp_free(&r);
    /* a directory without its slash is redirected; with it, index.html */
    one(&F, "GET /sub HTTP/1.1\r\n\r\n", 0, &r);
    assert_int_equal(r.status, 301);
    assert_string_equal(hdr(&r, "Location"), "/sub/");
    resp_free(&r);
    one(&F, "GET /sub/ HTTP/1.1\r\n\r\n", 0, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "<p>sub</p>\n");
    resp_free(&r);
    one(&F, "GET /nope.html HTTP/1.1\r\n\r\n", 0, &r);
    assert_int_equal(r.status, 404);
    resp_free(&r);

    /* conditional requests */
    snprintf(req, sizeof(req), "GET /app.js HTTP/1.1\r\nIf-None-Match: \"x\", %s\r\n\r\n", etag);
    one(&F, req, 0, &r);
    assert_int_equal(r.status, 304);
    assert_int_equal(r.body_len, 0);
    assert_string_equal(hdr(&r, "ETag"), etag);
    resp_free(&r);
    one(&F, "GET /app.js HTTP/1.1\r\nIf-None-Match: \"other\"\r\n\r\n", 0, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    one(&F, "GET /app.js HTTP/1.1\r\nIf-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n\r\n", 0,
        &r);
    assert_int_equal(r.status, 304);
    resp_free(&r);
    one(&F, "GET /app.js HTTP/1.1\r\nIf-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n", 0,
        &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);

    /* HEAD: the headers of GET, no body */
    {
        struct client *c = calloc(1, sizeof(*c));
        client_open(c, F.port);
        csends(c->fd, "HEAD /app.js HTTP/1.1\r\n\r\nHEAD /hello HTTP/1.1\r\n\r\n"
                      "GET /hello HTTP/1.1\r\n\r\n");
        assert_int_equal(read_resp(c, 1, &r), 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(hdr(&r, "Content-Length"), "16");
        resp_free(&r);
        assert_int_equal(read_resp(c, 1, &r), 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(hdr(&r, "Content-Length"), "5");
        resp_free(&r);
        /* had a HEAD reply carried a body, this would not parse as the GET's */
        assert_int_equal(read_resp(c, 0, &r), 0);
        assert_string_equal(r.body, "hello");
        resp_free(&r);
        close(c->fd);
        free(c);
    }

    /* 405 with Allow; 404 JSON for unknown API paths */
    one(&F, "POST /hello HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 0, &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(hdr(&r, "Allow"), "GET, HEAD");
    resp_free(&r);
    one(&F, "GET /echo HTTP/1.1\r\n\r\n", 0, &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(hdr(&r, "Allow"), "POST");
    resp_free(&r);
    one(&F, "DELETE /app.js HTTP/1.1\r\n\r\n", 0, &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(hdr(&r, "Allow"), "GET, HEAD");
    resp_free(&r);
    one(&F, "GET /api/v1/nope HTTP/1.1\r\n\r\n", 0, &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(hdr(&r, "Content-Type"), "application/json");
    assert_non_null(strstr(r.body, "{\"error\":"));
    resp_free(&r);
    stop(&F);
}

static void server_sent_events(void **state)
{
    struct http_opts o = {.sse_ping_ms = 200};
    struct client *c = calloc(1, sizeof(*c));
    struct resp r;
    char buf[4096];
    size_t have = 0;
    int eof = 0;

    (void)state;
    start(&F, &o);
    client_open(c, F.port);
    csends(c->fd, "GET /events HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n");
    assert_int_equal(read_resp(c, 1, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(hdr(&r, "Content-Type"), "text/event-stream; charset=utf-8");
    assert_null(hdr(&r, "Content-Length"));
    resp_free(&r);
    assert_int_equal(run_cmd(&F, CMD_SSE_SEND), 0);
    /* what read_resp buffered past the head, then the socket, until the event is complete */
    memcpy(buf, c->buf, c->len);
    have = c->len;
    buf[have] = '\0';
    for (int guard = 0; guard < 100 && strstr(buf, "data: b\n\n") == NULL; guard++) {
        size_t n = cread_some(c->fd, buf + have, sizeof(buf) - 1 - have, IO_TIMEOUT_MS, &eof);
        if (n == 0) {
            break;
        }
        have += n;
        buf[have] = '\0';
    }
    assert_non_null(strstr(buf, "retry: "));
    assert_non_null(strstr(buf, "event: tick\ndata: a\ndata: b\n\n"));
    /* idle streams get keep-alive comments */
    have = 0;
    buf[0] = '\0';
    for (int guard = 0; guard < 100 && strstr(buf, ": ping\n\n") == NULL; guard++) {
        size_t n = cread_some(c->fd, buf + have, sizeof(buf) - 1 - have, IO_TIMEOUT_MS, &eof);
        if (n == 0) {
            break;
        }
        have += n;
        buf[have] = '\0';
    }
    assert_non_null(strstr(buf, ": ping\n\n"));
    assert_int_equal(stats(&F).sse_streams, 1);

    /* the client leaves: the server notices, the owner's send fails, the handle is freed */
    close(c->fd);
    int closed = 0;
    for (int i = 0; i < 300 && !closed; i++) {
        usleep(10 * 1000);
        pthread_mutex_lock(&F.mu);
        closed = F.sse_closed;
        pthread_mutex_unlock(&F.mu);
    }
    assert_true(closed);
    assert_int_equal(run_cmd(&F, CMD_SSE_SEND), WP_ECLOSED);
    run_cmd(&F, CMD_SSE_CLOSE);
    assert_int_equal(stats(&F).sse_streams, 0);

    /* the owner ends a stream: the client sees the end */
    client_open(c, F.port);
    csends(c->fd, "GET /events HTTP/1.1\r\n\r\n");
    assert_int_equal(read_resp(c, 1, &r), 0);
    resp_free(&r);
    run_cmd(&F, CMD_SSE_CLOSE);
    assert_true(closed_within(c, 3000));
    close(c->fd);

    /* a stream still open when the server stops is closed with it */
    client_open(c, F.port);
    csends(c->fd, "GET /events HTTP/1.1\r\n\r\n");
    assert_int_equal(read_resp(c, 1, &r), 0);
    resp_free(&r);
    stop(&F);
    assert_true(F.sse_closed);
    http_sse_close(F.sse); /* the handle outlives the server until its owner lets go */
    assert_true(closed_within(c, 3000));
    close(c->fd);
    free(c);
}

static void too_many_connections(void **state)
{
    struct http_opts o = {.max_connections = 2};
    struct client *c[3];
    struct resp r;

    (void)state;
    start(&F, &o);
    for (int i = 0; i < 3; i++) {
        c[i] = calloc(1, sizeof(*c[i]));
        client_open(c[i], F.port);
        usleep(50 * 1000); /* accepted in order */
    }
    assert_int_equal(read_resp(c[2], 0, &r), 0);
    assert_int_equal(r.status, 503);
    resp_free(&r);
    csends(c[0]->fd, "GET /hello HTTP/1.1\r\n\r\n");
    assert_int_equal(read_resp(c[0], 0, &r), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    assert_int_equal(stats(&F).refused_busy, 1);
    for (int i = 0; i < 3; i++) {
        close(c[i]->fd);
        free(c[i]);
    }
    stop(&F);
}

/* A client that pipelines many requests and reads nothing: the server stops reading once
 * WRITE_HIGH is queued, and answers everything in order once the client reads. */
static void pipelining_backpressure(void **state)
{
    struct http_opts o = {0};
    struct client *c = calloc(1, sizeof(*c));
    struct resp r;
    char reqs[100 * 40];
    size_t n = 0;

    (void)state;
    start(&F, &o);
    client_open(c, F.port);
    for (int i = 0; i < 100; i++) {
        n += (size_t)snprintf(reqs + n, sizeof(reqs) - n, "GET /big.bin?i=%d HTTP/1.1\r\n\r\n", i);
    }
    csend(c->fd, reqs, n);
    usleep(300 * 1000);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(read_resp(c, 0, &r), 0);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.body_len, 65536);
        assert_int_equal(r.body[65535], 'a' + 65535 % 26);
        resp_free(&r);
    }
    assert_int_equal(stats(&F).requests, 100);
    close(c->fd);
    free(c);
    stop(&F);
}

/* While a deferred reply's work is blocked on the thread pool, the loop answers another
 * client; the deferred reply then comes, and the request pipelined behind it after it. */
static void deferred_reply_loop_stays_free(void **state)
{
    struct http_opts o = {0};
    struct client *a = calloc(1, sizeof(*a));
    struct client *b = calloc(1, sizeof(*b));
    struct resp r;

    (void)state;
    start(&F, &o);
    client_open(a, F.port);
    client_open(b, F.port);
    csends(a->fd, "GET /slow HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\n");
    wait_for(&F, &F.work_started, 1);
    /* the work is still blocked (the gate is shut): the loop must answer b now */
    csends(b->fd, "GET /hello HTTP/1.1\r\n\r\n");
    assert_int_equal(read_resp(b, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.body, "hello", 5);
    resp_free(&r);
    struct http_stats st = stats(&F);
    assert_int_equal(st.deferred, 1);
    assert_int_equal(st.deferred_pending, 1);
    pthread_mutex_lock(&F.mu);
    assert_int_equal(F.done_calls, 0);
    pthread_mutex_unlock(&F.mu);
    gate_open(&F);
    assert_int_equal(read_resp(a, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.body, "slow", 4);
    assert_non_null(hdr(&r, "X-Deferred"));
    resp_free(&r);
    assert_int_equal(read_resp(a, 0, &r), 0); /* the pipelined one, after it */
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.body, "hello", 5);
    resp_free(&r);
    /* and the connection goes on as usual */
    csends(a->fd, "HEAD /slow HTTP/1.1\r\n\r\n");
    assert_int_equal(read_resp(a, 1, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(hdr(&r, "Content-Length"), "4");
    resp_free(&r);
    st = stats(&F);
    assert_int_equal(F.defer_bad, 0);
    assert_int_equal(st.deferred, 2);
    assert_int_equal(st.deferred_pending, 0);
    assert_int_equal(st.deferred_gone, 0);
    close(a->fd);
    close(b->fd);
    free(a);
    free(b);
    stop(&F);
}

/* A client that leaves before its deferred reply is ready, and a deferred reply pending when
 * the server stops: done() gets NULL, nothing is written to or read from a freed connection
 * (ASan in Debug builds), and the loop closes cleanly. */
static void deferred_reply_client_gone(void **state)
{
    struct http_opts o = {0};
    struct client *a = calloc(1, sizeof(*a));
    struct resp r;

    (void)state;
    start(&F, &o);
    client_open(a, F.port);
    csends(a->fd, "GET /slow HTTP/1.1\r\n\r\n");
    wait_for(&F, &F.work_started, 1);
    close(a->fd);
    /* the server sees the close while the work is blocked */
    int gone = 0;
    for (int guard = 0; guard < 500 && !gone; guard++) {
        gone = stats(&F).connections == 0;
        if (!gone) {
            usleep(10 * 1000);
        }
    }
    assert_true(gone);
    gate_open(&F);
    wait_for(&F, &F.done_calls, 1);
    pthread_mutex_lock(&F.mu);
    assert_int_equal(F.done_gone, 1);
    F.gate = 0; /* shut again for the next one */
    pthread_mutex_unlock(&F.mu);
    struct http_stats st = stats(&F);
    assert_int_equal(st.deferred_gone, 1);
    assert_int_equal(st.deferred_pending, 0);
    /* the server still works */
    client_open(a, F.port);
    csends(a->fd, "GET /hello HTTP/1.1\r\n\r\n");
    assert_int_equal(read_resp(a, 0, &r), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    /* pending while the server stops */
    csends(a->fd, "GET /slow HTTP/1.1\r\n\r\n");
    wait_for(&F, &F.work_started, 2);
    run_cmd(&F, CMD_STOP);
    gate_open(&F);
    wait_for(&F, &F.done_calls, 2);
    pthread_mutex_lock(&F.mu);
    assert_int_equal(F.done_gone, 2);
    pthread_mutex_unlock(&F.mu);
    stop_rest(&F);
    close(a->fd);
    free(a);
}

/* One queue: jobs run one at a time, and one whose client left while it waited never runs. */
static void deferred_serial_queue(void **state)
{
    struct http_opts o = {0};
    struct client *c[3];
    struct resp r;

    (void)state;
    start(&F, &o);
    for (int i = 0; i < 3; i++) {
        c[i] = calloc(1, sizeof(*c[i]));
        client_open(c[i], F.port);
    }
    csends(c[0]->fd, "GET /serial HTTP/1.1\r\n\r\n");
    wait_for(&F, &F.work_started, 1);
    csends(c[1]->fd, "GET /serial HTTP/1.1\r\n\r\n");
    csends(c[2]->fd, "GET /serial HTTP/1.1\r\n\r\n");
    int queued = 0;
    for (int guard = 0; guard < 500 && !queued; guard++) {
        queued = stats(&F).deferred_pending == 3;
        if (!queued) {
            usleep(10 * 1000);
        }
    }
    assert_true(queued);
    close(c[2]->fd); /* leaves while its job waits behind the others */
    int gone = 0;
    for (int guard = 0; guard < 500 && !gone; guard++) {
        gone = stats(&F).connections == 2;
        if (!gone) {
            usleep(10 * 1000);
        }
    }
    assert_true(gone);
    gate_open(&F);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(read_resp(c[i], 0, &r), 0);
        assert_int_equal(r.status, 200);
        assert_memory_equal(r.body, "slow", 4);
        resp_free(&r);
    }
    wait_for(&F, &F.done_calls, 3);
    pthread_mutex_lock(&F.mu);
    assert_int_equal(F.work_started, 2); /* the third job never ran */
    assert_int_equal(F.done_gone, 1);
    assert_int_equal(F.defer_bad, 0);
    pthread_mutex_unlock(&F.mu);
    struct http_stats st = stats(&F);
    assert_int_equal(st.deferred, 3);
    assert_int_equal(st.deferred_gone, 1);
    assert_int_equal(st.deferred_pending, 0);
    for (int i = 0; i < 3; i++) {
        if (i < 2) {
            close(c[i]->fd);
        }
        free(c[i]);
    }
    stop(&F);
}

static size_t gunzip(const char *in, size_t n, char *out, size_t cap)
{
    z_stream z;

    memset(&z, 0, sizeof(z));
    assert_int_equal(inflateInit2(&z, 16 + 15), Z_OK);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
    size_t got = cap - z.avail_out;
    inflateEnd(&z);
    return got;
}

/* A shared body: sent as is, or gzipped to a client that accepts gzip (not with q=0). */
static void shared_body_and_gzip(void **state)
{
    struct http_opts o = {0};
    struct client *c = calloc(1, sizeof(*c));
    struct resp r;
    char out[8192];

    (void)state;
    start(&F, &o);
    client_open(c, F.port);
    csends(c->fd, "GET /shared HTTP/1.1\r\n\r\n");
    assert_int_equal(read_resp(c, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 4000);
    assert_int_equal(r.body[3999], 'a' + 3999 % 7);
    assert_null(hdr(&r, "Content-Encoding"));
    assert_string_equal(hdr(&r, "Vary"), "Accept-Encoding");
    resp_free(&r);
    static const char *const yes[] = {"gzip", "deflate, gzip", "br;q=1.0, GZIP;q=0.5", "x-gzip"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        char q[256];
        snprintf(q, sizeof(q), "GET /shared HTTP/1.1\r\nAccept-Encoding: %s\r\n\r\n", yes[i]);
        csends(c->fd, q);
        assert_int_equal(read_resp(c, 0, &r), 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(hdr(&r, "Content-Encoding"), "gzip");
        assert_true(r.body_len < 4000);
        assert_int_equal(gunzip(r.body, r.body_len, out, sizeof(out)), 4000);
        assert_int_equal(out[3999], 'a' + 3999 % 7);
        resp_free(&r);
    }
    static const char *const no[] = {"gzip;q=0", "gzip; q=0.000", "deflate, br", "gzipx"};
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        char q[256];
        snprintf(q, sizeof(q), "GET /shared HTTP/1.1\r\nAccept-Encoding: %s\r\n\r\n", no[i]);
        csends(c->fd, q);
        assert_int_equal(read_resp(c, 0, &r), 0);
        assert_int_equal(r.status, 200);
        assert_null(hdr(&r, "Content-Encoding"));
        assert_int_equal(r.body_len, 4000);
        resp_free(&r);
    }
    close(c->fd);
    free(c);
    stop(&F);
}

/* http_tcp_listen() and http_peer_name(), shared with the agent listener. */
struct tl {
    uv_tcp_t conn;
    int accepted;
    char name[2][64];
};

static void tl_accept_cb(uv_stream_t *server, int status)
{
    struct tl *t = server->data;

    assert_int_equal(status, 0);
    uv_tcp_init(server->loop, &t->conn);
    assert_int_equal(uv_accept(server, (uv_stream_t *)&t->conn), 0);
    http_peer_name(&t->conn, 0, t->name[0], sizeof(t->name[0]));
    http_peer_name(&t->conn, 1, t->name[1], sizeof(t->name[1]));
    t->accepted = 1;
}

static void tcp_listen_and_peer_name(void **state)
{
    uv_loop_t loop;
    uv_tcp_t h, h2, h3;
    struct tl t;
    struct sockaddr_in me;
    socklen_t melen = sizeof(me);
    char err[256];
    char want[64];
    int port = -1;
    int port2 = -1;
    int fd = -1;

    (void)state;
    memset(&t, 0, sizeof(t));
    assert_int_equal(uv_loop_init(&loop), 0);
    uv_tcp_init(&loop, &h);
    h.data = &t;
    assert_int_equal(
        http_tcp_listen(&h, "127.0.0.1", "0", 8, tl_accept_cb, &port, err, sizeof(err)), 0);
    assert_true(port > 0);

    /* the port is taken: bind or listen fails, h2 stays open for the caller to close */
    uv_tcp_init(&loop, &h2);
    snprintf(want, sizeof(want), "%d", port);
    assert_true(http_tcp_listen(&h2, "127.0.0.1", want, 8, tl_accept_cb, &port2, err, sizeof(err)) <
                0);
    snprintf(want, sizeof(want), "cannot listen on 127.0.0.1:%d: ", port);
    assert_memory_equal(err, want, strlen(want));
    assert_int_equal(port2, -1);
    /* not a numeric port: nothing resolved */
    uv_tcp_init(&loop, &h3);
    assert_int_equal(
        http_tcp_listen(&h3, "127.0.0.1", "http", 8, tl_accept_cb, &port2, err, sizeof(err)),
        WP_ECONFIG);
    assert_memory_equal(err, "listen address 127.0.0.1:http: ", 31);

    fd = cconnect(port);
    for (int i = 0; i < 1000 && !t.accepted; i++) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_true(t.accepted);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&me, &melen), 0);
    snprintf(want, sizeof(want), "127.0.0.1:%d", ntohs(me.sin_port));
    assert_string_equal(t.name[0], want);
    assert_string_equal(t.name[1], want); /* brackets only for IPv6 */
    close(fd);

    uv_close((uv_handle_t *)&t.conn, NULL);
    uv_close((uv_handle_t *)&h, NULL);
    uv_close((uv_handle_t *)&h2, NULL);
    uv_close((uv_handle_t *)&h3, NULL);
    int rc = uv_loop_close(&loop);
    for (int i = 0; i < 100 && rc == UV_EBUSY; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        rc = uv_loop_close(&loop);
    }
    assert_int_equal(rc, 0);
}

int main(void)
{
    if (getenv("WP_TEST_VERBOSE") != NULL) {
        wp_log_set_level(WP_LOG_DEBUG);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(get_and_security_headers),
        cmocka_unit_test(keepalive_and_pipelining),
        cmocka_unit_test(malformed_and_limits),
        cmocka_unit_test(slow_clients_time_out),
        cmocka_unit_test(path_traversal_refused),
        cmocka_unit_test(static_files),
        cmocka_unit_test(server_sent_events),
        cmocka_unit_test(too_many_connections),
        cmocka_unit_test(pipelining_backpressure),
        cmocka_unit_test(deferred_reply_loop_stays_free),
        cmocka_unit_test(deferred_reply_client_gone),
        cmocka_unit_test(deferred_serial_queue),
        cmocka_unit_test(shared_body_and_gzip),
        cmocka_unit_test(tcp_listen_and_peer_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
