/* SPDX-License-Identifier: Apache-2.0 */
/* GET /api/v1/checks and GET /api/v1/logevents: check results and log events from events.db
 * (events.h) for the Host page and scripts (docs/API.md). */
#include "http_api_host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "coll.h"
#include "events.h"
#include "http.h"
#include "ingest.h"
#include "wp/mem.h"

#define CHECKS_MAX    10000 /* rows in one reply at most */
#define LOGEVENTS_DEF 100
#define LOGEVENTS_MAX 1000

static const char *const status_names[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};

/* A JSON string of s; bytes that are not UTF-8 (agents send bytes) become '?'. */
static json_t *jstr(const char *s)
{
    json_t *j = json_string(s != NULL ? s : "");

    if (j == NULL) {
        char *c = wp_xstrdup(s);
        for (unsigned char *p = (unsigned char *)c; *p != '\0'; p++) {
            if (*p >= 0x80) {
                *p = '?';
            }
        }
        j = json_string(c);
        free(c);
    }
    return j != NULL ? j : json_string("");
}

/* A non-negative decimal of at most 18 digits, the whole of s. */
static int parse_num(const char *s, int64_t *out)
{
    int64_t v = 0;
    size_t n = strlen(s);

    if (n == 0 || n > 18) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* host= names a host or an agent id (the Host page has the id): the stores key on the host. */
static const char *query_host(struct coll_server *s, struct http_req *req)
{
    const char *h = http_req_query(req, "host");

    if (h == NULL || h[0] == '\0') {
        return NULL;
    }
    struct coll_agent *a = coll_agent_find(s, h);
    return a != NULL && a->host != NULL ? a->host : h;
}

struct checks_ctx {
    json_t *arr;
    int truncated;
};

static int check_cb(void *arg, const struct coll_check *c)
{
    struct checks_ctx *x = arg;

    if (json_array_size(x->arr) >= CHECKS_MAX) {
        x->truncated = 1;
        return 1;
    }
    int st = c->status >= 0 && c->status <= 3 ? c->status : 3;
    json_array_append_new(x->arr,
                          json_pack("{s:o,s:o,s:i,s:s,s:o,s:I,s:I}", "host", jstr(c->host), "name",
                                    jstr(c->name), "status", st, "status_name", status_names[st],
                                    "output", jstr(c->output), "since_ms", (json_int_t)c->since_ms,
                                    "ts_ms", (json_int_t)c->ts_ms));
    return 0;
}

/* GET /api/v1/checks?host=&status=0..3|ok|warning|critical|unknown */
static void checks_list(struct http_req *req, void *arg)
{
    struct coll_server *s = arg;
    const char *ss = http_req_query(req, "status");
    int status = -1;

    if (ss != NULL && ss[0] != '\0') {
        for (int i = 0; i < 4; i++) {
            char num[2] = {(char)('0' + i), '\0'};
            if (strcmp(ss, num) == 0 || strcasecmp(ss, status_names[i]) == 0) {
                status = i;
            }
        }
        if (status < 0) {
            http_respond_error(req, 400, "status: 0-3 or ok, warning, critical, unknown");
            return;
        }
    }
    if (s->events == NULL) {
        http_respond_error(req, 503, "the event store is not open");
        return;
    }
    struct checks_ctx x = {json_array(), 0};
    if (coll_events_checks_each(s->events, query_host(s, req), status, check_cb, &x) < 0) {
        json_decref(x.arr);
        http_respond_error(req, 500, "cannot read the checks");
        return;
    }
    http_resp_header(req, "Cache-Control", "no-store");
    http_respond_json(req, 200, json_pack("{s:o,s:b}", "checks", x.arr, "truncated", x.truncated));
}

static int logevent_cb(void *arg, const struct coll_logevent *ev)
{
    json_t *fields = ev->fields != NULL ? json_loads(ev->fields, 0, NULL) : NULL;

    if (!json_is_object(fields)) {
        json_decref(fields);
        fields = json_object();
    }
    json_array_append_new(arg,
                          json_pack("{s:I,s:o,s:I,s:o,s:o,s:i,s:o,s:o}", "id", (json_int_t)ev->id,
                                    "host", jstr(ev->host), "ts_ms", (json_int_t)ev->ts_ms,
                                    "source", jstr(ev->source), "rule", jstr(ev->rule), "severity",
                                    ev->severity, "text", jstr(ev->text), "fields", fields));
    return 0;
}

/* GET /api/v1/logevents?host=&since=MS&limit=100 (newest first) */
static void logevents_list(struct http_req *req, void *arg)
{
    struct coll_server *s = arg;
    const char *since = http_req_query(req, "since");
    const char *limit = http_req_query(req, "limit");
    int64_t since_ms = 0, lim = LOGEVENTS_DEF;

    if (since != NULL && since[0] != '\0' && parse_num(since, &since_ms) < 0) {
        http_respond_error(req, 400, "since: milliseconds since the epoch");
        return;
    }
    if (limit != NULL && limit[0] != '\0' && (parse_num(limit, &lim) < 0 || lim == 0)) {
        http_respond_error(req, 400, "limit: a positive number (at most 1000)");
        return;
    }
    if (s->events == NULL) {
        http_respond_error(req, 503, "the event store is not open");
        return;
    }
    lim = lim > LOGEVENTS_MAX ? LOGEVENTS_MAX : lim;
    json_t *arr = json_array();
    if (coll_events_log_each(s->events, query_host(s, req), since_ms, (size_t)lim + 1, logevent_cb,
                             arr) < 0) {
        json_decref(arr);
        http_respond_error(req, 500, "cannot read the log events");
        return;
    }
    int truncated = json_array_size(arr) > (size_t)lim;
    if (truncated) {
        json_array_remove(arr, (size_t)lim);
    }
    http_resp_header(req, "Cache-Control", "no-store");
    http_respond_json(req, 200,
                      json_pack("{s:o,s:b,s:I}", "events", arr, "truncated", truncated, "dropped",
                                (json_int_t)coll_events_dropped(s->events)));
}

int coll_api_host_start(struct coll_server *s)
{
    http_route_role(s->http, "GET", "/api/v1/checks", HTTP_ROLE_VIEWER, checks_list, s);
    http_route_role(s->http, "GET", "/api/v1/logevents", HTTP_ROLE_VIEWER, logevents_list, s);
    return 0;
}
