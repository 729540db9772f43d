/* SPDX-License-Identifier: Apache-2.0 */
/* GET/POST /api/v1/maintenance and POST /api/v1/maintenance/{id}/end: maintenance windows
 * that operators make and end at run time (maint.h), beside the rules config's (docs/API.md). */
#include "http_api_maint.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "coll.h"
#include "coll_rules.h"
#include "http.h"
#include "http_api.h"
#include "maint.h"
#include "rules.h"
#include "wp/clock.h"
#include "wp/conf.h"
#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"

#define PAST_MS   (30LL * 86400 * 1000) /* ended windows listed: the last 30 days */
#define LIST_MAX  2000                  /* runtime windows in one reply at most */
#define BODY_MAX  65536                 /* bytes of a create request */
#define NAMES_MAX MAINT_TARGETS

static const char *const day_names[7] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

/* A JSON string of s; bytes that are not UTF-8 (the CLI takes any bytes) become '?'. */
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

static json_t *jstrv(char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(a, jstr(v[i]));
    }
    return a;
}

static const char *win_state(const struct maint_win *w, int64_t now)
{
    if (w->ended_ms != 0 && w->ended_ms <= now) {
        return "ended"; /* ended early by an operator */
    }
    if (now >= w->ends_ms) {
        return "over";
    }
    return now >= w->starts_ms ? "active" : "upcoming";
}

static json_t *win_json(const struct maint_win *w, int64_t now)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(w->id));
    json_object_set_new(o, "source", json_string("runtime"));
    json_object_set_new(o, "read_only", json_false());
    json_object_set_new(o, "name", jstr(w->name));
    json_object_set_new(o, "hosts", jstrv(w->hosts, w->nhosts));
    json_object_set_new(o, "groups", jstrv(w->groups, w->ngroups));
    json_object_set_new(o, "starts_ms", json_integer(w->starts_ms));
    json_object_set_new(o, "ends_ms", json_integer(w->ends_ms));
    json_object_set_new(o, "reason", jstr(w->reason));
    json_object_set_new(o, "created_by", jstr(w->created_by));
    json_object_set_new(o, "created_ms", json_integer(w->created_ms));
    json_object_set_new(o, "ended_ms", w->ended_ms != 0 ? json_integer(w->ended_ms) : json_null());
    json_object_set_new(o, "ended_by", w->ended_ms != 0 ? jstr(w->ended_by) : json_null());
    json_object_set_new(o, "state", json_string(win_state(w, now)));
    return o;
}

/* A window of the rules config (read-only here): is it in force now? A copy that names no
 * host covers every host, so the engine's own test answers for the window alone. */
static json_t *conf_json(const struct rule_maint *m, int64_t now)
{
    struct rule_maint one = *m;
    struct rule_set tmp;
    char from[32], to[32];

    one.nhosts = 0;
    one.ngroups = 0;
    memset(&tmp, 0, sizeof(tmp));
    tmp.maint = &one;
    tmp.nmaint = 1;
    json_t *o = json_object();
    json_object_set_new(o, "source", json_string("config"));
    json_object_set_new(o, "read_only", json_true());
    json_object_set_new(o, "name", jstr(m->name));
    json_object_set_new(o, "hosts", jstrv(m->hosts, m->nhosts));
    json_object_set_new(o, "groups", jstrv(m->groups, m->ngroups));
    if (m->weekly) {
        json_t *days = json_array();
        for (int d = 0; d < 7; d++) {
            if (m->days & (1u << d)) {
                json_array_append_new(days, json_string(day_names[d]));
            }
        }
        snprintf(from, sizeof(from), "%02d:%02d", m->from_min / 60, m->from_min % 60);
        snprintf(to, sizeof(to), "%02d:%02d", m->to_min / 60, m->to_min % 60);
        json_object_set_new(o, "weekly",
                            json_pack("{s:o,s:s,s:s}", "days", days, "from", from, "to", to));
    } else {
        json_object_set_new(o, "starts_ms", json_integer(m->start_ms));
        json_object_set_new(o, "ends_ms", json_integer(m->end_ms));
    }
    int active = rules_in_maintenance(&tmp, "", now) != NULL;
    json_object_set_new(o, "state",
                        json_string(active              ? "active"
                                    : m->weekly         ? "weekly"
                                    : now < m->start_ms ? "upcoming"
                                                        : "over"));
    return o;
}

struct list_ctx {
    json_t *arr;
    int64_t now;
    size_t n;
    int truncated;
};

static int list_cb(void *arg, const struct maint_win *w)
{
    struct list_ctx *c = arg;

    if (c->n >= LIST_MAX) {
        c->truncated = 1;
        return 1;
    }
    json_array_append_new(c->arr, win_json(w, c->now));
    c->n++;
    return 0;
}

/* GET /api/v1/maintenance */
static void maint_list_h(struct http_req *req, void *arg)
{
    struct coll_server *s = arg;
    struct maint_store *st = coll_rules_maint(s);
    const struct rule_set *rs = coll_rules_set(s);
    int64_t now = wp_clock_now_ms();
    struct list_ctx c = {json_array(), now, 0, 0};

    if (st == NULL) {
        json_decref(c.arr);
        http_respond_error(req, 503, "the rules engine is not running");
        return;
    }
    if (maint_list(st, now - PAST_MS, list_cb, &c) < 0) {
        WP_ERROR("http", "maintenance list: %s", maint_errmsg(st));
        json_decref(c.arr);
        http_respond_error(req, 500, "cannot read the maintenance windows");
        return;
    }
    json_t *conf = json_array();
    json_t *groups = json_array();
    for (size_t i = 0; rs != NULL && i < rs->nmaint; i++) {
        json_array_append_new(conf, conf_json(&rs->maint[i], now));
    }
    for (size_t i = 0; rs != NULL && i < rs->ngroups; i++) {
        json_array_append_new(groups, jstr(rs->groups[i].name));
    }
    http_resp_header(req, "Cache-Control", "no-store");
    http_respond_json(req, 200,
                      json_pack("{s:o,s:o,s:o,s:b,s:I}", "windows", c.arr, "config", conf, "groups",
                                groups, "truncated", c.truncated, "now_ms", (json_int_t)now));
}

/* hosts / groups of a request: a JSON array of strings, or one string "a, b" (commas or
 * spaces). Returns the count, or -1 with why in err. The strings point into j or buf. */
static int names_of(json_t *j, const char *key, const char **out, char *buf, size_t buflen,
                    char *err, size_t errlen)
{
    json_t *v = json_object_get(j, key);
    int n = 0;

    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (json_is_string(v)) {
        snprintf(buf, buflen, "%s", json_string_value(v));
        for (char *save = NULL, *t = strtok_r(buf, ", \t", &save); t != NULL;
             t = strtok_r(NULL, ", \t", &save)) {
            if (n >= NAMES_MAX) {
                snprintf(err, errlen, "%s: at most %d names", key, NAMES_MAX);
                return -1;
            }
            out[n++] = t;
        }
        return n;
    }
    if (!json_is_array(v)) {
        snprintf(err, errlen, "%s: expected a list of names like [\"db-1\", \"db-2\"]", key);
        return -1;
    }
    for (size_t i = 0; i < json_array_size(v); i++) {
        const char *t = json_string_value(json_array_get(v, i));
        if (t == NULL) {
            snprintf(err, errlen, "%s: expected a list of strings", key);
            return -1;
        }
        if (n >= NAMES_MAX) {
            snprintf(err, errlen, "%s: at most %d names", key, NAMES_MAX);
            return -1;
        }
        out[n++] = t;
    }
    return n;
}

/* A time field: unix ms (a number) or a string for maint_parse_time. 1 = set, 0 = absent,
 * -1 = bad (err says why). */
static int time_of(json_t *j, const char *key, int64_t now, int64_t *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(j, key);

    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 1;
    }
    if (json_is_string(v) && maint_parse_time(json_string_value(v), now, out) == 0) {
        return 1;
    }
    snprintf(err, errlen,
             "%s: expected unix ms, \"now\", \"+2h\" or a time like \"2026-03-01T22:00:00+08:00\"",
             key);
    return -1;
}

/* POST /api/v1/maintenance {name, hosts, groups, starts, ends | duration, reason} */
static void maint_create_h(struct http_req *req, void *arg)
{
    struct coll_server *s = arg;
    struct maint_store *st = coll_rules_maint(s);
    const char *hosts[NAMES_MAX], *groups[NAMES_MAX];
    char hbuf[8192], gbuf[8192], err[512] = "", by[96];
    int64_t now = wp_clock_now_ms(), id = 0;
    struct maint_new n;
    json_error_t jerr;
    json_t *j = NULL;
    int nh = 0, ng = 0, rc = 0;

    memset(&n, 0, sizeof(n));
    if (st == NULL) {
        http_respond_error(req, 503, "the rules engine is not running");
        return;
    }
    if (coll_api_who(s->api, req, by, sizeof(by)) < 0) {
        http_respond_error(req, 401, "login required");
        return;
    }
    if (req->body_len <= BODY_MAX) {
        j = json_loadb((const char *)req->body, req->body_len, 0, &jerr);
    }
    if (!json_is_object(j)) {
        json_decref(j);
        http_respond_error(req, 400,
                           "expected a JSON object like {\"name\": \"DB patching\", \"hosts\": "
                           "[\"db-1\"], \"starts\": \"now\", \"duration\": \"2h\", \"reason\": "
                           "\"...\"}");
        return;
    }
    json_t *name = json_object_get(j, "name");
    json_t *reason = json_object_get(j, "reason");
    json_t *dur = json_object_get(j, "duration");
    if ((name != NULL && !json_is_string(name)) ||
        (reason != NULL && !json_is_null(reason) && !json_is_string(reason))) {
        snprintf(err, sizeof(err), "name, reason: expected strings");
        goto bad;
    }
    n.name = json_string_value(name);
    n.reason = json_string_value(reason);
    if ((nh = names_of(j, "hosts", hosts, hbuf, sizeof(hbuf), err, sizeof(err))) < 0 ||
        (ng = names_of(j, "groups", groups, gbuf, sizeof(gbuf), err, sizeof(err))) < 0) {
        goto bad;
    }
    n.hosts = hosts;
    n.nhosts = (size_t)nh;
    n.groups = groups;
    n.ngroups = (size_t)ng;
    n.by = by;
    n.starts_ms = now;
    if (time_of(j, "starts", now, &n.starts_ms, err, sizeof(err)) < 0) {
        goto bad;
    }
    rc = time_of(j, "ends", now, &n.ends_ms, err, sizeof(err));
    if (rc < 0) {
        goto bad;
    }
    if (dur != NULL && !json_is_null(dur)) {
        int64_t d = 0;
        if (rc == 1) {
            snprintf(err, sizeof(err), "ends, duration: give one of them, not both");
            goto bad;
        }
        if (json_is_integer(dur)) {
            d = (int64_t)json_integer_value(dur);
        } else if (!json_is_string(dur) || wp_parse_duration_ms(json_string_value(dur), &d) < 0) {
            snprintf(err, sizeof(err), "duration: expected ms or a duration like 90m, 2h, 1d");
            goto bad;
        }
        if (n.starts_ms < 0 || n.starts_ms > MAINT_TIME_MAX) {
            snprintf(err, sizeof(err), "starts, ends: times between 1970 and 9999");
            goto bad;
        }
        if (d <= 0 || d > MAINT_MAX_MS) {
            snprintf(err, sizeof(err), "duration: more than 0 and at most 31 days");
            goto bad;
        }
        n.ends_ms = n.starts_ms + d;
    } else if (rc == 0) {
        snprintf(err, sizeof(err), "ends or duration: required (e.g. \"duration\": \"2h\")");
        goto bad;
    }
    rc = maint_add(st, &n, coll_rules_set(s), now, &id, err, sizeof(err));
    if (rc == -EINVAL) {
        goto bad;
    }
    if (rc < 0) {
        WP_ERROR("http", "maintenance window \"%s\" by %s not stored: %s", n.name, by, err);
        json_decref(j);
        http_respond_error(req, 500, "cannot store the maintenance window");
        return;
    }
    json_decref(j);
    WP_INFO("http", "maintenance window %" PRId64 " created by %s client=%s", id, by, req->client);
    coll_rules_maint_changed(s); /* the engine applies it at its next pass */
    struct maint_win w;
    if (maint_get(st, id, &w) == 0) {
        http_respond_json(req, 201, win_json(&w, now));
        maint_win_cleanup(&w);
    } else {
        http_respond_json(req, 201, json_pack("{s:I}", "id", (json_int_t)id));
    }
    return;
bad:
    json_decref(j);
    http_respond_error(req, 400, err);
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

/* POST /api/v1/maintenance/{id}/end */
static void maint_end_h(struct http_req *req, void *arg)
{
    struct coll_server *s = arg;
    struct maint_store *st = coll_rules_maint(s);
    const char *tail = req->path + strlen("/api/v1/maintenance/");
    const char *slash = strchr(tail, '/');
    char err[512] = "", by[96];
    int64_t id = 0, now = wp_clock_now_ms();

    if (slash == NULL || strcmp(slash, "/end") != 0 ||
        parse_id(tail, (size_t)(slash - tail), &id) < 0) {
        http_respond_error(req, 404, "no such maintenance action (ID/end)");
        return;
    }
    if (st == NULL) {
        http_respond_error(req, 503, "the rules engine is not running");
        return;
    }
    if (coll_api_who(s->api, req, by, sizeof(by)) < 0) {
        http_respond_error(req, 401, "login required");
        return;
    }
    int rc = maint_end(st, id, by, now, err, sizeof(err));
    if (rc == WP_ENOTFOUND) {
        http_respond_error(req, 404, err);
        return;
    }
    if (rc == -EINVAL) {
        http_respond_error(req, 409, err);
        return;
    }
    if (rc < 0) {
        WP_ERROR("http", "maintenance window %" PRId64 " end by %s: %s", id, by, err);
        http_respond_error(req, 500, "cannot end the maintenance window");
        return;
    }
    WP_INFO("http", "maintenance window %" PRId64 " ended by %s client=%s", id, by, req->client);
    coll_rules_maint_changed(s); /* suppressed problems come back at the engine's next pass */
    struct maint_win w;
    if (maint_get(st, id, &w) == 0) {
        http_respond_json(req, 200, win_json(&w, now));
        maint_win_cleanup(&w);
    } else {
        http_respond_json(req, 200, json_pack("{s:I}", "id", (json_int_t)id));
    }
}

int coll_api_maint_start(struct coll_server *s)
{
    http_route_role(s->http, "GET", "/api/v1/maintenance", HTTP_ROLE_VIEWER, maint_list_h, s);
    http_route_role(s->http, "POST", "/api/v1/maintenance", HTTP_ROLE_OPERATOR, maint_create_h, s);
    http_route_role(s->http, "POST", "/api/v1/maintenance/", HTTP_ROLE_OPERATOR, maint_end_h, s);
    return 0;
}
