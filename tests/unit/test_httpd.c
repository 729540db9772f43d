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
    assert_int_equal(http_route(f->srv, "GET", "bad", h_hello, f), -EINVAL);
    assert_int_equal(pthread_create(&f->thr, NULL, loop_main, f), 0);
}

static void stop(struct fx *f)
{
    run_cmd(f, CMD_STOP);
    pthread_join(f->thr, NULL);
    /* every handle closed and every connection freed: the loop closes cleanly */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
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

int main(void)
{
    if (getenv("WP_TEST_VERBOSE") != NULL) {
        wp_log_set_level(WP_LOG_DEBUG);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(get_and_security_headers), cmocka_unit_test(keepalive_and_pipelining),
        cmocka_unit_test(malformed_and_limits),     cmocka_unit_test(slow_clients_time_out),
        cmocka_unit_test(path_traversal_refused),   cmocka_unit_test(static_files),
        cmocka_unit_test(server_sent_events),       cmocka_unit_test(too_many_connections),
        cmocka_unit_test(pipelining_backpressure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
