/* SPDX-License-Identifier: Apache-2.0 */
/* The JSON API: incidents (list, show, ack, resolve, comment), lines, seats, hosts, outbox,
 * Prometheus /metrics and the Server-Sent Events stream of incident changes. */
#include "http_api.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sqlite3.h>

#include "coll.h"
#include "coll_conf.h"
#include "coll_rules.h"
#include "http_auth.h"
#include "incident.h"
#include "lines.h"
#include "outbox.h"
#include "seats.h"
#include "wp/buf.h"
#include "wp/clock.h"
#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"

#define LIST_MAX    10000 /* rows in one list reply at most */
#define LIST_DEF    1000
#define NOTE_MAX    4096 /* bytes of an operator's note */
#define POLL_MS     1000 /* event stream poll of the timeline */
#define POLL_BATCH  500  /* timeline entries sent per poll at most */
#define MAX_STREAMS 256  /* open event streams at once */
#define LINES_MAX   2000 /* changed lines in one "lines" event; more: "overflow", reload */

struct stream {
    struct http_sse *h;
    struct coll_api *api;
    struct stream *next;
};

/* Serialised replies of the list endpoints, kept CACHE_MS: under a wall of open dashboards
 * one list is built once a second instead of once per request (tests/bench/dashboard.sh).
 * Operator actions and new timeline entries clear it, so nobody sees their own change late.
 * A kept reply is an http_body: written to every client without a copy, gzipped once for
 * the clients that accept gzip (http_respond_body). */
#define CACHE_SLOTS 16
#define CACHE_MS    1000

struct cache_ent {
    char *key;              /* path?query */
    struct http_body *body; /* sent from here without a copy (http_respond_body) */
    const char *ctype;
    int64_t at_ms; /* monotonic */
};

struct coll_api {
    struct coll_server *s;
    struct http_auth *auth;
    struct cache_ent cache[CACHE_SLOTS];
    int64_t cache_tl; /* the timeline id the cache was built at */
    uint64_t cache_hits, cache_misses;
    uv_timer_t timer;
    sqlite3 *tl;     /* read-only connection to incidents.db for the event poll */
    int64_t tl_last; /* highest timeline id sent (or seen when the first stream opened) */
    struct stream *streams;
    size_t nstreams;
    uint64_t events_sent;
    json_t *lines_pending; /* "agent\x1fobject" -> the line's latest change since the last poll */
    int lines_overflow;    /* more than LINES_MAX changed: the next event says reload */
};

/* ---- small helpers ---- */

static void cache_clear(struct coll_api *api)
{
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        free(api->cache[i].key);
        http_body_unref(api->cache[i].body); /* replies being written keep their reference */
        memset(&api->cache[i], 0, sizeof(api->cache[i]));
    }
}

/* A fresh cached reply for this GET: sent, returns 1. */
static int cache_reply(struct coll_api *api, struct http_req *req)
{
    char *k = wp_xasprintf("%s?%s", req->path, req->query != NULL ? req->query : "");
    int64_t now = wp_clock_mono_ms();

    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        struct cache_ent *e = &api->cache[i];
        if (e->key != NULL && now - e->at_ms < CACHE_MS && strcmp(e->key, k) == 0) {
            free(k);
            api->cache_hits++;
            http_resp_header(req, "Cache-Control", "no-store");
            http_respond_body(req, 200, e->ctype, e->body);
            return 1;
        }
    }
    free(k);
    api->cache_misses++;
    return 0;
}

/* Keep this reply (the slot of the same key, else an empty or the oldest one) and send it. */
static void cache_send(struct coll_api *api, struct http_req *req, const char *ctype, char *body,
                       size_t len)
{
    char *k = wp_xasprintf("%s?%s", req->path, req->query != NULL ? req->query : "");
    size_t pick = 0;

    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        struct cache_ent *e = &api->cache[i];
        if (e->key != NULL && strcmp(e->key, k) == 0) {
            pick = i;
            break;
        }
        if (e->key == NULL || e->at_ms < api->cache[pick].at_ms) {
            pick = i;
        }
    }
    struct cache_ent *e = &api->cache[pick];
    free(e->key);
    http_body_unref(e->body);
    e->key = k;
    e->body = http_body_new(body, len);
    e->ctype = ctype;
    e->at_ms = wp_clock_mono_ms();
    http_resp_header(req, "Cache-Control", "no-store");
    http_respond_body(req, 200, ctype, e->body);
}

/* http_respond_json through the cache (takes json). */
static void reply_cached_json(struct coll_api *api, struct http_req *req, json_t *json)
{
    char *txt = json != NULL ? json_dumps(json, JSON_COMPACT) : NULL;
    json_decref(json);
    if (txt == NULL) {
        http_respond_error(req, 500, "cannot encode the reply");
        return;
    }
    cache_send(api, req, "application/json", txt, strlen(txt));
}

static json_t *jint(int64_t v)
{
    return json_integer((json_int_t)v);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1f) : n == 3 ? (c & 0x0f) : (c & 0x07);

    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return n;
}

/* A copy of s with every byte that is not part of valid UTF-8 replaced by '?' (agents send
 * bytes, JSON and Prometheus need UTF-8). Free it. */
static char *utf8_clean(const char *s)
{
    char *out = wp_xstrdup(s != NULL ? s : "");

    for (size_t i = 0; out[i] != '\0';) {
        size_t n = utf8_len((const unsigned char *)out + i);
        if (n == 0) {
            out[i++] = '?';
        } else {
            i += n;
        }
    }
    return out;
}

/* A JSON string of s (NULL: ""), never NULL: invalid UTF-8 is cleaned. */
static json_t *jstr(const char *s)
{
    json_t *j = json_string(s != NULL ? s : "");

    if (j == NULL) {
        char *c = utf8_clean(s);
        j = json_string(c);
        free(c);
    }
    return j != NULL ? j : json_string("");
}

/* the operator's name for the timeline: the user, or "token:NAME" */
static int who(struct coll_api *api, struct http_req *req, char *by, size_t len)
{
    struct http_principal p;

    if (api->auth == NULL) {
        snprintf(by, len, "api");
        return 0;
    }
    if (http_auth_principal(api->auth, req, &p) != 0) {
        return -1;
    }
    snprintf(by, len, "%s", p.user);
    return 0;
}

int coll_api_who(struct coll_api *api, struct http_req *req, char *by, size_t len)
{
    return who(api, req, by, len);
}

/* a non-negative decimal id of at most 18 digits, the whole of s[0..n) */
static int parse_id(const char *s, size_t n, int64_t *out)
{
    int64_t v = 0;

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

static long query_limit(struct http_req *req)
{
    const char *l = http_req_query(req, "limit");
    int64_t v = 0;

    if (l == NULL || parse_id(l, strlen(l), &v) < 0 || v == 0) {
        return LIST_DEF;
    }
    return v > LIST_MAX ? LIST_MAX : (long)v;
}

/* The deadline that matters now: response while open, resolve while acknowledged. */
static int64_t deadline(const struct inc_row *r)
{
    if (r->status == INC_OPEN) {
        return r->response_due_ms;
    }
    if (r->status == INC_ACKNOWLEDGED) {
        return r->resolve_due_ms;
    }
    return 0;
}

static json_t *inc_json(const struct inc_row *r, int64_t now_ms)
{
    int64_t due = deadline(r);
    json_t *o = json_object();

    json_object_set_new(o, "id", jint(r->id));
    json_object_set_new(o, "status", json_string(inc_status_name(r->status)));
    json_object_set_new(o, "priority", json_integer(r->priority));
    json_object_set_new(o, "impact", json_integer(r->impact));
    json_object_set_new(o, "urgency", json_integer(r->urgency));
    json_object_set_new(o, "category", jstr(r->category));
    json_object_set_new(o, "rule", jstr(r->rule));
    json_object_set_new(o, "host", jstr(r->host));
    json_object_set_new(o, "summary", jstr(r->summary));
    json_object_set_new(o, "fingerprint", jstr(r->fingerprint));
    json_object_set_new(o, "opened_ms", jint(r->opened_ms));
    json_object_set_new(o, "acked_ms", jint(r->acked_ms));
    json_object_set_new(o, "acked_by", jstr(r->acked_by));
    json_object_set_new(o, "resolved_ms", jint(r->resolved_ms));
    json_object_set_new(o, "closed_ms", jint(r->closed_ms));
    json_object_set_new(o, "response_due_ms", jint(r->response_due_ms));
    json_object_set_new(o, "resolve_due_ms", jint(r->resolve_due_ms));
    json_object_set_new(o, "deadline_ms", due > 0 ? jint(due) : json_null());
    json_object_set_new(o, "time_left_s", due > 0 ? jint((due - now_ms) / 1000) : json_null());
    json_object_set_new(o, "escalation", json_integer(r->escalation));
    json_object_set_new(o, "suppressed", json_boolean(r->suppressed));
    json_object_set_new(o, "flapping", json_boolean(r->flapping));
    json_object_set_new(o, "reopened", json_integer(r->reopened));
    return o;
}

static struct inc_store *store_or_503(struct coll_api *api, struct http_req *req)
{
    struct inc_store *st = coll_rules_store(api->s);

    if (st == NULL) {
        http_respond_error(req, 503, "the incident store is not open");
    }
    return st;
}

/* ---- incidents ---- */

struct inc_item {
    int active;
    int priority;
    int64_t key; /* active: the deadline; otherwise -(last change) */
    int64_t id;
    json_t *j;
};

struct inc_collect {
    struct inc_item *v;
    size_t n, cap, max;
    int64_t now;
    int truncated;
};

static int inc_collect_cb(void *arg, const struct inc_row *r)
{
    struct inc_collect *c = arg;

    if (c->n == c->max) {
        c->truncated = 1;
        return 1;
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->v = wp_xrealloc(c->v, c->cap * sizeof(*c->v));
    }
    struct inc_item *it = &c->v[c->n++];
    it->active = r->status == INC_OPEN || r->status == INC_ACKNOWLEDGED;
    it->priority = r->priority;
    int64_t last = r->closed_ms ? r->closed_ms : r->resolved_ms ? r->resolved_ms : r->opened_ms;
    it->key = it->active ? deadline(r) : -last;
    it->id = r->id;
    it->j = inc_json(r, c->now);
    return 0;
}

static int inc_item_cmp(const void *pa, const void *pb)
{
    const struct inc_item *a = pa, *b = pb;

    if (a->active != b->active) {
        return b->active - a->active;
    }
    if (a->priority != b->priority) {
        return a->priority - b->priority;
    }
    if (a->key != b->key) {
        return a->key < b->key ? -1 : 1;
    }
    return a->id < b->id ? -1 : a->id > b->id;
}

static int parse_status(const char *s)
{
    static const char *const names[] = {"open", "acknowledged", "resolved", "closed"};

    for (int i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            return i;
        }
    }
    return strcmp(s, "active") == 0 ? -2 : strcmp(s, "all") == 0 ? -1 : -3;
}

static int parse_priority(const char *s)
{
    if (s == NULL || s[0] == '\0') {
        return 0;
    }
    if (s[0] == 'P' || s[0] == 'p') {
        s++;
    }
    return s[0] >= '1' && s[0] <= '4' && s[1] == '\0' ? s[0] - '0' : -1;
}

/* GET /api/v1/incidents?status=active|open|acknowledged|resolved|closed|all&priority=P1 */
static void incidents_list(struct http_req *req, void *arg)
{
    struct coll_api *api = arg;
    if (cache_reply(api, req)) {
        return;
    }
    const char *ss = http_req_query(req, "status");
    int status = parse_status(ss != NULL ? ss : "active");
    int prio = parse_priority(http_req_query(req, "priority"));
    /* collect up to LIST_MAX, sort, then cut to limit: the cut keeps the most urgent */
    struct inc_collect c = {NULL, 0, 0, LIST_MAX, wp_clock_now_ms(), 0};
    size_t limit = (size_t)query_limit(req);
    int rc = 0;

    if (status == -3 || prio < 0) {
        http_respond_error(req, 400,
                           "status: active|open|acknowledged|resolved|closed|all; priority: 1-4");
        return;
    }
    struct inc_store *st = store_or_503(api, req);
    if (st == NULL) {
        return;
    }
    if (status == -2) {
        rc = inc_list(st, INC_OPEN, prio, inc_collect_cb, &c);
        if (rc == 0) {
            rc = inc_list(st, INC_ACKNOWLEDGED, prio, inc_collect_cb, &c);
        }
    } else {
        rc = inc_list(st, status, prio, inc_collect_cb, &c);
    }
    if (c.n > 1) {
        qsort(c.v, c.n, sizeof(*c.v), inc_item_cmp);
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < c.n; i++) {
        if (i < limit) {
            json_array_append_new(arr, c.v[i].j);
        } else {
            json_decref(c.v[i].j);
            c.truncated = 1;
        }
    }
    free(c.v);
    if (rc < 0) {
        json_decref(arr);
        WP_ERROR("http", "listing incidents: %s", inc_errmsg(st));
        http_respond_error(req, 500, "cannot list incidents");
        return;
    }
    reply_cached_json(api, req,
                      json_pack("{s:o,s:b,s:I}", "incidents", arr, "truncated", c.truncated,
                                "now_ms", (json_int_t)c.now));
}

static int timeline_cb(void *arg, int64_t at_ms, const char *kind, const char *by, const char *text)
{
    json_array_append_new(arg, json_pack("{s:I,s:o,s:o,s:o}", "at_ms", (json_int_t)at_ms, "kind",
                                         jstr(kind), "by", jstr(by), "text", jstr(text)));
    return 0;
}

static void incident_reply(struct coll_api *api, struct http_req *req, struct inc_store *st,
                           int64_t id)
{
    struct inc_row r;
    int rc = inc_get(st, id, &r);

    if (rc == WP_ENOTFOUND) {
        http_respond_error(req, 404, "no such incident");
        return;
    }
    if (rc < 0) {
        http_respond_error(req, 500, "cannot read the incident");
        return;
    }
    (void)api;
    json_t *o = inc_json(&r, wp_clock_now_ms());
    json_t *tl = json_array();
    json_object_set_new(o, "description", jstr(r.description));
    json_object_set_new(o, "runbook", jstr(r.runbook));
    json_t *vals = r.values_json != NULL ? json_loads(r.values_json, 0, NULL) : NULL;
    json_object_set_new(o, "values", vals != NULL ? vals : json_object());
    inc_row_cleanup(&r);
    if (inc_timeline(st, id, timeline_cb, tl) < 0) {
        json_decref(o);
        json_decref(tl);
        http_respond_error(req, 500, "cannot read the timeline");
        return;
    }
    json_object_set_new(o, "timeline", tl);
    http_respond_json(req, 200, o);
}

/* GET /api/v1/incidents/{id} */
static void incident_show(struct http_req *req, void *arg)
{
    struct coll_api *api = arg;
    const char *tail = req->path + strlen("/api/v1/incidents/");
    int64_t id = 0;

    if (parse_id(tail, strlen(tail), &id) < 0) {
        http_respond_error(req, 404, "no such incident");
        return;
    }
    struct inc_store *st = store_or_503(api, req);
    if (st != NULL) {
        incident_reply(api, req, st, id);
    }
}

/* The "note" of a JSON body ({} or empty: NULL). Returns 0, or -1 after answering 400. */
static int body_note(struct http_req *req, char *note, size_t len, int *has)
{
    json_error_t jerr;

    *has = 0;
    note[0] = '\0';
    if (req->body_len == 0) {
        return 0;
    }
    json_t *j = json_loadb((const char *)req->body, req->body_len, 0, &jerr);
    if (!json_is_object(j)) {
        json_decref(j);
        http_respond_error(req, 400, "expected a JSON object like {\"note\": \"...\"}");
        return -1;
    }
    json_t *n = json_object_get(j, "note");
    if (n != NULL && !json_is_null(n)) {
        const char *s = json_string_value(n);
        if (s == NULL || strlen(s) >= len || strlen(s) > NOTE_MAX) {
            json_decref(j);
            http_respond_error(req, 400, "note: a string of at most 4096 bytes");
            return -1;
        }
        snprintf(note, len, "%s", s);
        *has = note[0] != '\0';
    }
    json_decref(j);
    return 0;
}

/* POST /api/v1/incidents/{id}/ack|resolve|comment (operator) */
static void incident_action(struct http_req *req, void *arg)
{
    struct coll_api *api = arg;
    cache_clear(api); /* the operator sees their change at once */
    const char *tail = req->path + strlen("/api/v1/incidents/");
    const char *slash = strchr(tail, '/');
    char note[NOTE_MAX + 1], by[96], err[512] = "";
    int64_t id = 0;
    int has = 0;
    int rc = 0;

    if (slash == NULL || parse_id(tail, (size_t)(slash - tail), &id) < 0) {
        http_respond_error(req, 404, "no such incident action");
        return;
    }
    const char *action = slash + 1;
    if (strcmp(action, "ack") != 0 && strcmp(action, "resolve") != 0 &&
        strcmp(action, "comment") != 0) {
        http_respond_error(req, 404, "no such incident action (ack, resolve, comment)");
        return;
    }
    if (body_note(req, note, sizeof(note), &has) < 0) {
        return;
    }
    if (!has && strcmp(action, "ack") != 0) {
        http_respond_error(req, 400, "a note is required");
        return;
    }
    if (who(api, req, by, sizeof(by)) < 0) {
        http_respond_error(req, 401, "login required");
        return;
    }
    struct inc_store *st = store_or_503(api, req);
    if (st == NULL) {
        return;
    }
    int64_t now = wp_clock_now_ms();
    /* through the store: the timeline entry is what the notification outbox follows */
    if (strcmp(action, "ack") == 0) {
        rc = inc_ack(st, id, by, has ? note : "", now, err, sizeof(err));
    } else if (strcmp(action, "resolve") == 0) {
        rc = inc_resolve(st, id, by, note, now, err, sizeof(err));
    } else {
        struct inc_row r;
        rc = inc_get(st, id, &r);
        if (rc == 0) {
            inc_row_cleanup(&r);
            rc = inc_note(st, id, "comment", by, note, now);
        }
        if (rc < 0) {
            snprintf(err, sizeof(err), "%s",
                     rc == WP_ENOTFOUND ? "no such incident" : "cannot add the comment");
        }
    }
    if (rc == WP_ENOTFOUND) {
        http_respond_error(req, 404, "no such incident");
        return;
    }
    if (rc == -EINVAL) {
        http_respond_error(req, 409, err[0] ? err : "not possible in this state");
        return;
    }
    if (rc < 0) {
        WP_ERROR("http", "incident %" PRId64 " %s by %s: %s", id, action, by,
                 err[0] ? err : inc_errmsg(st));
        http_respond_error(req, 500, "cannot change the incident");
        return;
    }
    WP_INFO("http", "incident %" PRId64 " %s by %s client=%s", id, action, by, req->client);
    incident_reply(api, req, st, id);
}

/* ---- lines and seats ---- */

struct list_ctx {
    json_t *arr;
    size_t max;
    int truncated;
};

static int line_cb(void *arg, const struct coll_line *l)
{
    struct list_ctx *c = arg;

    if (json_array_size(c->arr) >= c->max) {
        c->truncated = 1;
        return 1;
    }
    json_array_append_new(c->arr, json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:I,s:I}", "agent",
                                            jstr(l->agent), "host", jstr(l->host), "object",
                                            jstr(l->object), "group", jstr(l->group), "state",
                                            jstr(l->state), "raw", jstr(l->raw), "info",
                                            jstr(l->info), "since_ms", (json_int_t)l->since_ms,
                                            "updated_ms", (json_int_t)l->updated_ms));
    return 0;
}

/* GET /api/v1/lines?host=&group=&state= */
static void lines_list(struct http_req *req, void *arg)
{
    struct coll_api *api = arg;
    if (cache_reply(api, req)) {
        return;
    }
    struct list_ctx c = {json_array(), LIST_MAX * 10, 0};

    if (api->s->lines == NULL ||
        coll_lines_each(api->s->lines, http_req_query(req, "host"), http_req_query(req, "group"),
                        http_req_query(req, "state"), line_cb, &c) < 0) {
        json_decref(c.arr);
        http_respond_error(req, 500, "cannot read the lines");
        return;
    }
    reply_cached_json(api, req, json_pack("{s:o,s:b}", "lines", c.arr, "truncated", c.truncated));
}

static int seat_cb(void *arg, const struct coll_seat_session *ss)
{
    struct list_ctx *c = arg;

    if (json_array_size(c->arr) >= c->max) {
        c->truncated = 1;
        return 1;
    }
    json_array_append_new(
        c->arr, json_pack("{s:I,s:o,s:o,s:o,s:o,s:I,s:I,s:I,s:i,s:b,s:b,s:b,s:o?}", "id",
                          (json_int_t)ss->id, "host", jstr(ss->host), "seat", jstr(ss->seat),
                          "queue", jstr(ss->queue), "pause_reasons", jstr(ss->reasons), "login_ms",
                          (json_int_t)ss->login_ms, "logout_ms", (json_int_t)ss->logout_ms,
                          "paused_ms", (json_int_t)ss->paused_ms, "pauses", ss->npauses,
                          "login_observed", ss->login_observed, "logout_observed",
                          ss->logout_observed, "paused", ss->paused_now, "device",
                          ss->device != NULL ? jstr(ss->device) : NULL)); /* NULL: json null */
    return 0;
}

/* GET /api/v1/seats?host=&since_s=86400 */
static void seats_list(struct http_req *req, void *arg)
{
    struct coll_api *api = arg;
    if (cache_reply(api, req)) {
        return;
    }
    struct list_ctx c = {json_array(), (size_t)query_limit(req), 0};
    const char *since = http_req_query(req, "since_s");
    int64_t since_s = 86400;
    int64_t now = wp_clock_now_ms();

    if (since != NULL && (parse_id(since, strlen(since), &since_s) < 0 || since_s > 400 * 86400)) {
        json_decref(c.arr);
        http_respond_error(req, 400, "since_s: seconds, at most 400 days");
        return;
    }
    if (api->s->lines == NULL ||
        coll_seats_each(coll_lines_seats(api->s->lines), http_req_query(req, "host"),
                        now - since_s * 1000, now, seat_cb, &c) < 0) {
        json_decref(c.arr);
        http_respond_error(req, 500, "cannot read the seat sessions");
        return;
    }
    reply_cached_json(api, req, json_pack("{s:o,s:b}", "seats", c.arr, "truncated", c.truncated));
}

/* ---- hosts ---- */

struct host_counts {
    json_t *by_host; /* host -> [total, p1, p2, p3, p4] */
};

static int count_cb(void *arg, const struct inc_row *r)
{
    struct host_counts *hc = arg;
    json_t *a = json_object_get(hc->by_host, r->host);

    if (a == NULL) {
        a = json_pack("[i,i,i,i,i]", 0, 0, 0, 0, 0);
        /* a lookup table only, never encoded: the key need not be UTF-8 */
        json_object_set_new_nocheck(hc->by_host, r->host, a);
    }
    json_array_set_new(a, 0, json_integer(json_integer_value(json_array_get(a, 0)) + 1));
    if (r->priority >= 1 && r->priority <= 4) {
        size_t i = (size_t)r->priority;
        json_array_set_new(a, i, json_integer(json_integer_value(json_array_get(a, i)) + 1));
    }
    return 0;
}

static json_t *labels_json(const char *l)
{
    json_t *o = json_object();

    /* "k\x1fv\x1e" per label */
    for (int guard = 0; l != NULL && *l != '\0' && guard < 1000; guard++) {
        const char *us = strchr(l, '\x1f');
        const char *rs = strchr(l, '\x1e');
        if (us == NULL || rs == NULL || us > rs) {
            break;
        }
        char *k = wp_xstrndup(l, (size_t)(us - l));
        char *v = wp_xstrndup(us + 1, (size_t)(rs - us - 1));
        char *kc = utf8_clean(k);
        json_object_set_new(o, kc, jstr(v));
        free(kc);
        free(v);
        free(k);
        l = rs + 1;
    }
    return o;
}

/* GET /api/v1/hosts: every known agent, connected or not, with its open incidents */
static void hosts_list(struct http_req *req, void *arg)
{
    struct coll_api *api = arg;
    if (cache_reply(api, req)) {
        return;
    }
    struct coll_server *s = api->s;
    struct host_counts hc = {json_object()};
    struct inc_store *st = coll_rules_store(s);
    json_t *arr = json_array();

    if (st != NULL && (inc_list(st, INC_OPEN, 0, count_cb, &hc) < 0 ||
                       inc_list(st, INC_ACKNOWLEDGED, 0, count_cb, &hc) < 0)) {
        json_decref(hc.by_host);
        json_decref(arr);
        http_respond_error(req, 500, "cannot count incidents");
        return;
    }
    for (size_t i = 0; i < s->agents_cap; i++) {
        for (struct coll_agent *a = s->agents[i]; a != NULL; a = a->hnext) {
            json_t *c = json_object_get(hc.by_host, a->host ? a->host : "");
            if (c == NULL) {
                c = json_object_get(hc.by_host, a->id);
            }
            int worst = 0;
            for (size_t p = 1; c != NULL && p <= 4 && worst == 0; p++) {
                worst = json_integer_value(json_array_get(c, p)) > 0 ? (int)p : 0;
            }
            json_t *o = json_pack(
                "{s:o,s:o,s:o,s:o,s:b,s:I,s:I,s:o,s:{s:I,s:I,s:I,s:I,s:I},s:o}", "id", jstr(a->id),
                "host", jstr(a->host), "version", jstr(a->version), "addr", jstr(a->addr),
                "connected", a->connected, "first_seen_ms", (json_int_t)a->first_seen * 1000,
                "last_seen_ms", (json_int_t)a->last_seen * 1000, "labels", labels_json(a->labels),
                "open_incidents", "total", json_integer_value(json_array_get(c, 0)), "p1",
                json_integer_value(json_array_get(c, 1)), "p2",
                json_integer_value(json_array_get(c, 2)), "p3",
                json_integer_value(json_array_get(c, 3)), "p4",
                json_integer_value(json_array_get(c, 4)), "worst_priority",
                worst ? json_integer(worst) : json_null());
            json_array_append_new(arr, o);
        }
    }
    json_decref(hc.by_host);
    reply_cached_json(api, req, json_pack("{s:o}", "hosts", arr));
}

/* ---- outbox ---- */

static int outbox_cb(void *arg, const struct outbox_msg *m)
{
    /* never the rendered request: its URL and headers may hold keys */
    json_array_append_new(arg,
                          json_pack("{s:I,s:o,s:o,s:o,s:o,s:I,s:I,s:I,s:I,s:i,s:i,s:o}", "id",
                                    (json_int_t)m->id, "event_id", jstr(m->event_id), "dest",
                                    jstr(m->dest), "event", jstr(m->event), "state", jstr(m->state),
                                    "incident_id", (json_int_t)m->incident_id, "created_ms",
                                    (json_int_t)m->created_ms, "next_ms", (json_int_t)m->next_ms,
                                    "sent_ms", (json_int_t)m->sent_ms, "attempts", m->attempts,
                                    "last_code", m->last_code, "last_error", jstr(m->last_error)));
    return 0;
}

/* GET /api/v1/outbox?state=dead&limit=100 */
static void outbox_get(struct http_req *req, void *arg)
{
    static const char *const states[] = {"queued",    "sent",    "dead",
                                         "coalesced", "skipped", "digested"};
    struct coll_api *api = arg;
    const char *state = http_req_query(req, "state");
    int ok = state == NULL;

    for (size_t i = 0; !ok && i < sizeof(states) / sizeof(states[0]); i++) {
        ok = strcmp(state, states[i]) == 0;
    }
    if (!ok) {
        http_respond_error(req, 400, "state: queued|sent|dead|coalesced|skipped|digested");
        return;
    }
    json_t *arr = json_array();
    if (api->s->outbox != NULL &&
        outbox_list(api->s->outbox, state, (size_t)query_limit(req), outbox_cb, arr) < 0) {
        json_decref(arr);
        http_respond_error(req, 500, "cannot read the outbox");
        return;
    }
    http_respond_json(req, 200,
                      json_pack("{s:o,s:b}", "messages", arr, "notify", api->s->outbox != NULL));
}

/* POST /api/v1/outbox/{id}/retry (operator) */
static void outbox_post(struct http_req *req, void *arg)
{
    struct coll_api *api = arg;
    cache_clear(api); /* the operator sees their change at once */
    const char *tail = req->path + strlen("/api/v1/outbox/");
    const char *slash = strchr(tail, '/');
    char err[256] = "", by[96];
    int64_t id = 0;

    if (slash == NULL || strcmp(slash, "/retry") != 0 ||
        parse_id(tail, (size_t)(slash - tail), &id) < 0) {
        http_respond_error(req, 404, "no such outbox action (ID/retry)");
        return;
    }
    if (api->s->outbox == NULL) {
        http_respond_error(req, 404, "notifications are not configured");
        return;
    }
    if (who(api, req, by, sizeof(by)) < 0) {
        http_respond_error(req, 401, "login required");
        return;
    }
    int rc = outbox_requeue(api->s->outbox, id, wp_clock_now_ms(), err, sizeof(err));
    if (rc == WP_ENOTFOUND) {
        http_respond_error(req, 404, err[0] ? err : "no such message");
        return;
    }
    if (rc == -EINVAL) {
        http_respond_error(req, 409, err[0] ? err : "not a dead message");
        return;
    }
    if (rc < 0) {
        WP_ERROR("http", "outbox retry %" PRId64 ": %s", id, err);
        http_respond_error(req, 500, "cannot retry the message");
        return;
    }
    WP_INFO("http", "outbox message %" PRId64 " retried by %s client=%s", id, by, req->client);
    http_respond_json(req, 200, json_pack("{s:I,s:s}", "id", (json_int_t)id, "state", "queued"));
}

/* ---- /metrics ---- */

struct metrics {
    struct wp_buf b;
};

static void mprintf(struct metrics *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mprintf(struct metrics *m, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0) {
        wp_buf_append(&m->b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
    }
}

/* a label value: valid UTF-8, \ " and newline escaped, at most 200 bytes of the value,
 * never cut inside a UTF-8 sequence */
static const char *lv(const char *raw, char *buf, size_t len)
{
    char *s = utf8_clean(raw);
    size_t o = 0;

    for (size_t i = 0; s[i] != '\0' && i < 200;) {
        size_t n = utf8_len((const unsigned char *)s + i);
        n = n == 0 ? 1 : n;
        if (o + 2 * n + 1 > len) {
            break;
        }
        if (s[i] == '\\' || s[i] == '"') {
            buf[o++] = '\\';
            buf[o++] = s[i];
        } else if (s[i] == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else {
            memcpy(buf + o, s + i, n);
            o += n;
        }
        i += n;
    }
    buf[o] = '\0';
    free(s);
    return buf;
}

static int is_gauge(const char *name)
{
    static const char *const gauges[] = {"agents", "agents_connected", "connections", "rrd_files",
                                         "journal_bytes"};

    for (size_t i = 0; i < sizeof(gauges) / sizeof(gauges[0]); i++) {
        if (strcmp(name, gauges[i]) == 0) {
            return 1;
        }
    }
    return strstr(name, "pending") != NULL || strstr(name, "queued") != NULL ||
           strstr(name, "oldest") != NULL || strstr(name, "_p50") != NULL ||
           strstr(name, "_p99") != NULL || strstr(name, "_max") != NULL ||
           strstr(name, "open") != NULL;
}

static void metric_stat(void *arg, const char *name, uint64_t value)
{
    struct metrics *m = arg;
    char n[128];
    size_t o = 0;

    /* metric names: [a-zA-Z_:][a-zA-Z0-9_:]* */
    for (size_t i = 0; name[i] != '\0' && o + 1 < sizeof(n); i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        n[o++] = ok ? c : '_';
    }
    n[o] = '\0';
    if (is_gauge(n)) {
        mprintf(m, "# TYPE watchpost_%s gauge\nwatchpost_%s %" PRIu64 "\n", n, n, value);
    } else {
        mprintf(m, "# TYPE watchpost_%s_total counter\nwatchpost_%s_total %" PRIu64 "\n", n, n,
                value);
    }
}

struct inc_counts {
    uint64_t n[2][INC_NPRIO]; /* [open, acknowledged][priority-1] */
};

static int inc_count_cb(void *arg, const struct inc_row *r)
{
    struct inc_counts *c = arg;

    if (r->priority >= 1 && r->priority <= INC_NPRIO &&
        (r->status == INC_OPEN || r->status == INC_ACKNOWLEDGED)) {
        c->n[r->status == INC_OPEN ? 0 : 1][r->priority - 1]++;
    }
    return 0;
}

struct state_counts {
    json_t *by; /* state -> count */
};

static int state_cb(void *arg, const struct coll_line *l)
{
    struct state_counts *sc = arg;
    const char *k = l->state != NULL ? l->state : "";
    json_t *v = json_object_get(sc->by, k);

    json_object_set_new(sc->by, k, json_integer(v != NULL ? json_integer_value(v) + 1 : 1));
    return 0;
}

/* GET /metrics: Prometheus text format 0.0.4 */
static void metrics(struct http_req *req, void *arg)
{
    struct coll_api *api = arg;
    if (cache_reply(api, req)) {
        return;
    }
    struct coll_server *s = api->s;
    struct metrics m;
    struct inc_counts ic;
    struct http_stats hs;
    char b1[512], b2[512];

    wp_buf_init(&m.b);
    memset(&ic, 0, sizeof(ic));
    coll_stats_foreach(s, metric_stat, &m);

    struct inc_store *st = coll_rules_store(s);
    if (st != NULL) {
        inc_list(st, INC_OPEN, 0, inc_count_cb, &ic);
        inc_list(st, INC_ACKNOWLEDGED, 0, inc_count_cb, &ic);
    }
    mprintf(&m, "# HELP watchpost_incidents Incidents not yet resolved, by status and priority.\n"
                "# TYPE watchpost_incidents gauge\n");
    for (int k = 0; k < 2; k++) {
        for (int p = 0; p < INC_NPRIO; p++) {
            mprintf(&m, "watchpost_incidents{status=\"%s\",priority=\"P%d\"} %" PRIu64 "\n",
                    k == 0 ? "open" : "acknowledged", p + 1, ic.n[k][p]);
        }
    }

    struct state_counts sc = {json_object()};
    if (s->lines != NULL) {
        coll_lines_each(s->lines, NULL, NULL, NULL, state_cb, &sc);
    }
    mprintf(&m, "# HELP watchpost_lines Phone lines, IVR ports and trunks by current state.\n"
                "# TYPE watchpost_lines gauge\n");
    const char *key;
    json_t *val;
    json_object_foreach(sc.by, key, val)
    {
        mprintf(&m, "watchpost_lines{state=\"%s\"} %" JSON_INTEGER_FORMAT "\n",
                lv(key, b1, sizeof(b1)), json_integer_value(val));
    }
    json_decref(sc.by);

    mprintf(&m, "# HELP watchpost_agent_up 1 while the agent is connected.\n"
                "# TYPE watchpost_agent_up gauge\n");
    for (size_t i = 0; i < s->agents_cap; i++) {
        for (struct coll_agent *a = s->agents[i]; a != NULL; a = a->hnext) {
            mprintf(&m, "watchpost_agent_up{agent=\"%s\",host=\"%s\"} %d\n",
                    lv(a->id, b1, sizeof(b1)), lv(a->host, b2, sizeof(b2)), a->connected ? 1 : 0);
        }
    }
    mprintf(&m, "# HELP watchpost_agent_last_seen_seconds Unix time of the agent's last data.\n"
                "# TYPE watchpost_agent_last_seen_seconds gauge\n");
    for (size_t i = 0; i < s->agents_cap; i++) {
        for (struct coll_agent *a = s->agents[i]; a != NULL; a = a->hnext) {
            mprintf(&m, "watchpost_agent_last_seen_seconds{agent=\"%s\",host=\"%s\"} %" PRId64 "\n",
                    lv(a->id, b1, sizeof(b1)), lv(a->host, b2, sizeof(b2)), a->last_seen);
        }
    }
    http_server_stats(s->http, &hs);
    mprintf(&m,
            "# TYPE watchpost_http_requests_total counter\nwatchpost_http_requests_total %" PRIu64
            "\n# TYPE watchpost_http_connections gauge\nwatchpost_http_connections %" PRIu64
            "\n# TYPE watchpost_http_event_streams gauge\nwatchpost_http_event_streams %" PRIu64
            "\n# TYPE watchpost_http_responses_total counter\n"
            "watchpost_http_responses_total{code=\"2xx\"} %" PRIu64 "\n"
            "watchpost_http_responses_total{code=\"3xx\"} %" PRIu64 "\n"
            "watchpost_http_responses_total{code=\"4xx\"} %" PRIu64 "\n"
            "watchpost_http_responses_total{code=\"5xx\"} %" PRIu64 "\n",
            hs.requests, hs.connections, hs.sse_streams, hs.status_2xx, hs.status_3xx,
            hs.status_4xx, hs.status_5xx);
    size_t mlen = wp_buf_unread(&m.b);
    char *copy = wp_xmalloc(mlen + 1);
    memcpy(copy, wp_buf_head(&m.b), mlen);
    cache_send(api, req, "text/plain; version=0.0.4; charset=utf-8", copy, mlen);
    wp_buf_cleanup(&m.b);
}

/* ---- event stream ---- */

static int tl_open(struct coll_api *api)
{
    char path[4096];

    if (api->tl != NULL) {
        return 0;
    }
    if ((size_t)snprintf(path, sizeof(path), "%s/incidents.db", api->s->conf->state_dir) >=
        sizeof(path)) {
        return -ENAMETOOLONG;
    }
    if (sqlite3_open_v2(path, &api->tl, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        WP_WARN("http", "event stream: cannot open %s: %s", path, sqlite3_errmsg(api->tl));
        sqlite3_close(api->tl);
        api->tl = NULL;
        return WP_EDB;
    }
    sqlite3_busy_timeout(api->tl, 100);
    return 0;
}

static int64_t tl_max(struct coll_api *api)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;

    if (tl_open(api) < 0 || sqlite3_prepare_v2(api->tl, "SELECT coalesce(max(id), 0) FROM timeline",
                                               -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return v;
}

static void broadcast(struct coll_api *api, const char *event, const char *data)
{
    for (struct stream *x = api->streams; x != NULL; x = x->next) {
        if (http_sse_send(x->h, event, data) == 0) {
            api->events_sent++;
        }
    }
}

static const char *col(sqlite3_stmt *st, int i)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    return s != NULL ? s : "";
}

/* New timeline entries since the last poll, each sent as an "incident" event. */
static void poll_timeline(struct coll_api *api)
{
    sqlite3_stmt *st = NULL;
    int64_t max = tl_max(api);

    if (max >= 0 && api->tl_last < 0) {
        api->tl_last = max; /* the store could not be read when the first stream opened */
        return;
    }
    if (max < 0 || max <= api->tl_last) {
        return;
    }
    if (sqlite3_prepare_v2(api->tl,
                           "SELECT t.id, t.incident_id, t.at_ms, t.kind, t.by, t.text, i.status,"
                           " i.priority, i.host, i.rule, i.summary, i.opened_ms FROM timeline t"
                           " JOIN incidents i ON i.id = t.incident_id WHERE t.id > ?"
                           " ORDER BY t.id LIMIT ?",
                           -1, &st, NULL) != SQLITE_OK) {
        return;
    }
    sqlite3_bind_int64(st, 1, api->tl_last);
    sqlite3_bind_int(st, 2, POLL_BATCH);
    int64_t now = wp_clock_now_ms();
    for (int r = sqlite3_step(st); r == SQLITE_ROW; r = sqlite3_step(st)) {
        int status = sqlite3_column_int(st, 6);
        json_t *o = json_pack(
            "{s:I,s:I,s:I,s:I,s:o,s:o,s:o,s:{s:I,s:s,s:i,s:o,s:o,s:o,s:I}}", "timeline_id",
            (json_int_t)sqlite3_column_int64(st, 0), "incident_id",
            (json_int_t)sqlite3_column_int64(st, 1), "at_ms",
            (json_int_t)sqlite3_column_int64(st, 2), "sent_ms", (json_int_t)now, "kind",
            jstr(col(st, 3)), "by", jstr(col(st, 4)), "text", jstr(col(st, 5)), "incident", "id",
            (json_int_t)sqlite3_column_int64(st, 1), "status",
            inc_status_name(status >= 0 && status <= 3 ? (enum inc_status)status : INC_OPEN),
            "priority", sqlite3_column_int(st, 7), "host", jstr(col(st, 8)), "rule",
            jstr(col(st, 9)), "summary", jstr(col(st, 10)), "opened_ms",
            (json_int_t)sqlite3_column_int64(st, 11));
        char *txt = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (txt != NULL) {
            broadcast(api, "incident", txt);
            free(txt);
        }
        api->tl_last = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
}

void coll_api_line_changed(struct coll_api *api, const char *agent, const char *host,
                           const char *object, const char *group, const char *state,
                           const char *raw, const char *info, int64_t since_ms)
{
    if (api->streams == NULL || api->lines_overflow) {
        return;
    }
    if (api->lines_pending == NULL) {
        api->lines_pending = json_object();
    }
    char *key = wp_xasprintf("%s\x1f%s", agent, object);
    if (json_object_size(api->lines_pending) >= LINES_MAX &&
        json_object_get(api->lines_pending, key) == NULL) {
        api->lines_overflow = 1;
        json_object_clear(api->lines_pending);
    } else {
        /* a lookup table: the key is never encoded, so it need not be UTF-8 */
        json_object_set_new_nocheck(
            api->lines_pending, key,
            json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:I,s:I}", "agent", jstr(agent), "host",
                      jstr(host), "object", jstr(object), "group", jstr(group), "state",
                      jstr(state), "raw", jstr(raw), "info", jstr(info), "since_ms",
                      (json_int_t)since_ms, "updated_ms", (json_int_t)since_ms));
    }
    free(key);
}

/* The lines changed since the last poll as one "lines" event: at most one a second, however
 * many changes (an "overflow" event asks the dashboards to reload the lines instead). */
static void flush_lines(struct coll_api *api)
{
    if (api->lines_pending == NULL && !api->lines_overflow) {
        return;
    }
    json_t *arr = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(api->lines_pending, k, v)
    {
        json_array_append(arr, v);
    }
    json_t *o = json_pack("{s:o,s:b,s:I}", "lines", arr, "overflow", api->lines_overflow, "sent_ms",
                          (json_int_t)wp_clock_now_ms());
    char *txt = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (txt != NULL) {
        broadcast(api, "lines", txt);
        free(txt);
    }
    json_decref(api->lines_pending);
    api->lines_pending = NULL;
    api->lines_overflow = 0;
}

static void poll_cb(uv_timer_t *t)
{
    struct coll_api *api = t->data;

    /* incidents changed (any process writes the timeline): cached lists are old */
    int64_t m = tl_max(api);
    if (m >= 0 && m != api->cache_tl) {
        cache_clear(api);
        api->cache_tl = m;
    }
    if (api->streams != NULL) {
        poll_timeline(api);
        flush_lines(api);
    }
}

static void stream_gone(struct http_sse *h, void *arg)
{
    struct stream *x = arg;
    struct coll_api *api = x->api;

    for (struct stream **pp = &api->streams; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == x) {
            *pp = x->next;
            api->nstreams--;
            break;
        }
    }
    free(x);
    http_sse_close(h);
}

/* GET /api/v1/events: Server-Sent Events */
static void events(struct http_req *req, void *arg)
{
    struct coll_api *api = arg;
    char hello[128];

    if (api->nstreams >= MAX_STREAMS) {
        http_respond_error(req, 503, "too many event streams");
        return;
    }
    if (api->streams == NULL) {
        /* nobody listened: start from now */
        int64_t m = tl_max(api);
        api->tl_last = m >= 0 ? m : -1; /* -1: not known yet, the next poll starts from there */
    }
    struct http_sse *h = http_sse_open(req);
    if (h == NULL) {
        return;
    }
    struct stream *x = wp_xcalloc(1, sizeof(*x));
    x->h = h;
    x->api = api;
    x->next = api->streams;
    api->streams = x;
    api->nstreams++;
    http_sse_set_close_cb(h, stream_gone, x);
    snprintf(hello, sizeof(hello), "{\"timeline_id\":%" PRId64 ",\"now_ms\":%" PRId64 "}",
             api->tl_last, wp_clock_now_ms());
    http_sse_send(h, "hello", hello);
}

/* ---- start and stop ---- */

int coll_api_start(struct coll_server *s, struct http_auth *auth, struct coll_api **out)
{
    struct coll_api *api = wp_xcalloc(1, sizeof(*api));
    struct http_server *h = s->http;

    api->s = s;
    api->auth = auth;
    uv_timer_init(s->loop, &api->timer);
    api->timer.data = api;
    /* half a period after the collector's 1 s tick (started after this), which opens the
     * incidents of silent hosts: those reach the streams ~0.5 s later, not ~1 s */
    uv_timer_start(&api->timer, poll_cb, POLL_MS + POLL_MS / 2, POLL_MS);

    http_route_role(h, "GET", "/api/v1/incidents", HTTP_ROLE_VIEWER, incidents_list, api);
    http_route_role(h, "GET", "/api/v1/incidents/", HTTP_ROLE_VIEWER, incident_show, api);
    http_route_role(h, "POST", "/api/v1/incidents/", HTTP_ROLE_OPERATOR, incident_action, api);
    http_route_role(h, "GET", "/api/v1/lines", HTTP_ROLE_VIEWER, lines_list, api);
    http_route_role(h, "GET", "/api/v1/seats", HTTP_ROLE_VIEWER, seats_list, api);
    http_route_role(h, "GET", "/api/v1/hosts", HTTP_ROLE_VIEWER, hosts_list, api);
    http_route_role(h, "GET", "/api/v1/outbox", HTTP_ROLE_VIEWER, outbox_get, api);
    http_route_role(h, "POST", "/api/v1/outbox/", HTTP_ROLE_OPERATOR, outbox_post, api);
    http_route_role(h, "GET", "/api/v1/events", HTTP_ROLE_VIEWER, events, api);
    http_route_role(h, "GET", "/metrics", HTTP_ROLE_VIEWER, metrics, api);
    *out = api;
    return 0;
}

static void api_free(uv_handle_t *t)
{
    struct coll_api *api = t->data;

    sqlite3_close(api->tl);
    json_decref(api->lines_pending);
    http_auth_close(api->auth);
    cache_clear(api);
    free(api);
}

void coll_api_stop(struct coll_api *api)
{
    if (api == NULL) {
        return;
    }
    while (api->streams != NULL) {
        struct stream *x = api->streams;
        api->streams = x->next;
        http_sse_set_close_cb(x->h, NULL, NULL);
        http_sse_close(x->h);
        free(x);
    }
    api->nstreams = 0;
    uv_timer_stop(&api->timer);
    uv_close((uv_handle_t *)&api->timer, api_free);
}
