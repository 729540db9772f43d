/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP/1.1 (and HTTPS) server on a libuv loop: routes, JSON replies, static files, SSE. */
#ifndef WP_COLLECTOR_HTTP_H
#define WP_COLLECTOR_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

/*
 * One server listens on one address. Requests are parsed with http-parser; a connection
 * serves its requests one after another (keep-alive, pipelined requests answered in order).
 * Everything here runs on the loop thread: handlers, http_respond*(), http_sse_*(); only the
 * work function of http_defer() runs on a pool thread.
 *
 * Limits: request line + headers (max_header_bytes, else 431), body (max_body_bytes, else
 * 413), connections (max_connections, else 503 and close), a whole request head within
 * header_timeout, no pause longer than body_timeout inside a body, idle_timeout between
 * requests. Every response carries the security headers (docs/API.md).
 */

struct http_server;
struct http_sse;
struct http_conn;

struct http_opts {
    const char *host;     /* listen address, e.g. "127.0.0.1" or "::1" */
    const char *port;     /* "0" = any free port (http_server_port() tells which) */
    const char *tls_cert; /* PEM certificate and key: HTTPS; NULL: plain HTTP */
    const char *tls_key;
    const char *static_dir;    /* files served for GET/HEAD outside the routes; NULL: none */
    int64_t max_connections;   /* 0: 1024 */
    uint64_t max_header_bytes; /* 0: 16 KiB */
    uint64_t max_body_bytes;   /* 0: 1 MiB */
    int64_t header_timeout_ms; /* 0: 10 s */
    int64_t body_timeout_ms;   /* 0: 30 s */
    int64_t idle_timeout_ms;   /* 0: 60 s */
    int64_t sse_ping_ms;       /* comment line sent on idle event streams; 0: 15 s */
};

/* Counters; read with http_server_stats(). */
struct http_stats {
    uint64_t accepted, refused_busy, requests, bad_requests, too_large_head, too_large_body;
    uint64_t timeouts_header, timeouts_body, timeouts_idle, tls_failed;
    uint64_t status_2xx, status_3xx, status_4xx, status_5xx;
    uint64_t connections, sse_streams; /* open now */
    uint64_t deferred, deferred_gone;  /* deferred replies; of them, the client left first */
    uint64_t deferred_pending;         /* deferred replies whose work is not done (now) */
};

/* Roles a route may require (the login layer decides who has which; see http_set_auth). */
enum http_role { HTTP_ROLE_NONE = 0, HTTP_ROLE_VIEWER, HTTP_ROLE_OPERATOR, HTTP_ROLE_ADMIN };

/* A parsed request, borrowed by the handler; valid until the handler returns (or, after
 * http_sse_open(), until then too: copy what you keep). Header values and the body are the
 * client's bytes: check them before use. */
struct http_req {
    const char *method;  /* "GET", "POST", ... (HEAD requests run the GET route) */
    const char *path;    /* percent-decoded, without the query; starts with "/" */
    const char *query;   /* the raw query string after "?" ("" if none) */
    const uint8_t *body; /* NUL-terminated copy (body[body_len] == 0) */
    size_t body_len;
    const char *client;     /* "ip:port" */
    int tls;                /* arrived over HTTPS */
    int head;               /* a HEAD request: the body of the reply is not sent */
    struct http_conn *conn; /* private */
};

typedef void (*http_handler_fn)(struct http_req *req, void *arg);
/* Decide whether req may use a route that requires role: 0 to allow, or an HTTP status to
 * refuse with (401, 403); the server sends the JSON error. */
typedef int (*http_auth_fn)(struct http_req *req, enum http_role role, void *arg);

/* Listen as opts says (strings are copied). Returns 0, WP_ECONFIG (address), WP_ETLS / -errno
 * (certificate; err says which file) or a libuv error; err (size errlen) describes it. */
int http_server_start(uv_loop_t *loop, const struct http_opts *opts, char *err, size_t errlen,
                      struct http_server **out);
/* The TCP port actually bound. */
int http_server_port(const struct http_server *s);

/* TCP helpers shared with the agent listener (server.c); loop thread only. */
/* Resolve host:port (a numeric port; host NULL = every address), bind the initialised
 * handle h and listen with backlog and cb. Returns 0 with *bound_port set (the port chosen
 * for port 0), WP_ECONFIG (the address does not resolve) or a libuv error; err (size errlen)
 * describes it. On failure h stays open: the caller closes it. */
int http_tcp_listen(uv_tcp_t *h, const char *host, const char *port, int backlog,
                    uv_connection_cb cb, int *bound_port, char *err, size_t errlen);
/* The peer of tcp as "ip:port" ("[ip]:port" for IPv6 when bracket_v6; "?:0" when unknown). */
void http_peer_name(uv_tcp_t *tcp, int bracket_v6, char *buf, size_t len);
/* Stop listening, close every connection and event stream; the server frees itself once its
 * handles are closed (keep running the loop). NULL does nothing. */
void http_server_stop(struct http_server *s);
void http_server_stats(const struct http_server *s, struct http_stats *out);

/*
 * Add a route: method ("GET", "POST", ...) and a path. A path ending in "/" matches every path
 * below it, any other path only itself; the longest match wins. A GET route also answers
 * HEAD. A path matched with another method gets 405 with Allow. handler must answer before
 * it returns (http_respond*() or http_sse_open()); if it does not, the client gets 500.
 * http_route_role() also names the role the route requires (checked by the auth hook).
 * Returns 0 or -EINVAL (bad method or path).
 */
int http_route(struct http_server *s, const char *method, const char *path, http_handler_fn handler,
               void *arg);
int http_route_role(struct http_server *s, const char *method, const char *path,
                    enum http_role role, http_handler_fn handler, void *arg);
/* Install the hook that checks roles (NULL: every route is open). */
void http_set_auth(struct http_server *s, http_auth_fn fn, void *arg);

/* A request header by name (case-insensitive; the first if repeated), or NULL. */
const char *http_req_header(const struct http_req *req, const char *name);
/* A query parameter, percent- and "+"-decoded, or NULL. The string lives as long as req.
 * A parameter with a NUL or a bad %-escape counts as absent. */
const char *http_req_query(const struct http_req *req, const char *name);

/* Add a response header (before http_respond*()). name and value must not hold CR or LF
 * (such a header is dropped and logged). */
void http_resp_header(struct http_req *req, const char *name, const char *value);
/* Answer with status, content type (NULL: none) and body (copied). */
void http_respond(struct http_req *req, int status, const char *content_type, const void *body,
                  size_t len);
/* Answer with a JSON document; takes ownership of json (decref'd). */
void http_respond_json(struct http_req *req, int status, json_t *json);
/* Answer with {"error": msg}. */
void http_respond_error(struct http_req *req, int status, const char *msg);

/*
 * A reply body shared by many replies (a cached list): reference-counted, loop thread only.
 * http_respond_body() sends it without copying it over plain HTTP (the socket writes from it
 * and holds a reference until the write is done); under TLS it is encrypted from it.
 */
struct http_body;
/* Wrap data (malloc'd; taken, freed with the last reference) of len bytes: one reference. */
struct http_body *http_body_new(void *data, size_t len);
/* Another reference to b; returns b. */
struct http_body *http_body_ref(struct http_body *b);
/* Drop a reference (NULL does nothing). */
void http_body_unref(struct http_body *b);
const void *http_body_data(const struct http_body *b);
size_t http_body_len(const struct http_body *b);
/* Answer with status, content type (NULL: none) and a shared body (b stays the caller's). */
void http_respond_body(struct http_req *req, int status, const char *content_type,
                       struct http_body *b);

/*
 * Deferred replies: work that must not block the loop (a password hash, an rrd_graph call).
 * A handler calls http_defer() and returns without answering; work(arg) runs on libuv's
 * thread pool (it must not touch the request, the server or anything the loop owns), then
 * done(req, arg) runs on the loop and answers req as a handler would (if it does not, the
 * client gets 500). The request (path, query, headers, body) stays valid until done returns;
 * pipelined requests behind it wait. If the client left or the server stopped meanwhile, done
 * gets req == NULL and must only free arg: the connection is kept (not freed) until then, so
 * nothing dangles. Returns 0, or -EALREADY (req already answered or deferred; nothing is run:
 * answer it yourself or free arg).
 */
typedef void (*http_work_fn)(void *arg);
typedef void (*http_done_fn)(struct http_req *req, void *arg);
int http_defer(struct http_req *req, http_work_fn work, http_done_fn done, void *arg);

/*
 * The same, one job at a time per queue (work that calls a library that is not thread-safe):
 * the others wait in the queue on the loop, not on a pool thread, so they never hold the
 * pool's few threads. A job whose client leaves while it waits is not run (done gets NULL).
 * A zero-initialised queue is empty; it must outlive its jobs (a static one does). Loop
 * thread only.
 */
struct http_defer_job;
struct http_defer_queue {
    struct http_defer_job *head, *tail; /* private */
    int running;
};
int http_defer_serial(struct http_req *req, struct http_defer_queue *q, http_work_fn work,
                      http_done_fn done, void *arg);

/*
 * Server-Sent Events. http_sse_open() answers the request with 200 text/event-stream and
 * keeps the connection for events; it returns a handle (NULL if the request was already
 * answered). The handle stays valid until the owner calls http_sse_close(), even after the
 * client left: then http_sse_send() returns WP_ECLOSED and the close callback (if set) has
 * run once. A client that does not read falls behind; past 1 MiB queued it is disconnected.
 */
struct http_sse *http_sse_open(struct http_req *req);
/* Send one event: "event: <event>" (NULL: none), one "data:" line per line of data.
 * Returns 0, WP_ECLOSED (client gone) or -EINVAL (event holds CR/LF). */
int http_sse_send(struct http_sse *h, const char *event, const char *data);
/* Whether the client is still connected. */
int http_sse_is_open(const struct http_sse *h);
/* Called once, on the loop, when the client disconnects or the server stops. */
void http_sse_set_close_cb(struct http_sse *h, void (*fn)(struct http_sse *h, void *arg),
                           void *arg);
/* The owner is done: ends the stream if still open and frees the handle. NULL does nothing. */
void http_sse_close(struct http_sse *h);

/* Reason phrase of a status code ("Not Found"). */
const char *http_status_text(int status);

#endif
