/* SPDX-License-Identifier: Apache-2.0 */
/*
 * collector.yaml `notify:` (see notify.h and docs/NOTIFY.md):
 *
 *   notify:
 *     domain: noc.example.com            # Message-IDs
 *     dashboard_url: https://noc.example.com:8443
 *     max_age: 3d                        # retried until this old, then dead-lettered
 *     destinations:
 *       - name: servicedesk
 *         kind: webhook                  # webhook | pagerduty | email | rt
 *         url: https://sd.example.com/api/tickets
 *         secret_file: /etc/watchpost/sd.token
 *         headers: {Authorization: "Bearer {secret}"}
 *         requests:
 *           open:    {body: '{"title": {summary}, "priority": {priority}, "key": {key}}'}
 *           update:  {url: "https://sd.example.com/api/tickets/{remote_id}/notes",
 *                     body: '{"text": {event_text}}'}
 *           resolve: {method: PUT, url: "https://sd.example.com/api/tickets/{remote_id}",
 *                     body: '{"state": "closed"}'}
 *         store: id                      # the remote id in the open response
 *         rate: {max: 60, per: 1m}
 *     routes:
 *       - {priorities: [P1, P2], to: [servicedesk, pd]}
 *       - {categories: [telephony], from_level: 2, to: [vendor-mail]}
 */
#include "notify.h"
#include "notify_render.h"

#include <errno.h>
#include <fnmatch.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wp/err.h"
#include "wp/mem.h"

const char *const notify_ev_names[NEV_N + 1] = {"open",    "reopen",  "update", "escalate",
                                                "ack",     "resolve", "close",  NULL};
const char *const notify_kind_names[] = {"webhook", "pagerduty", "email", "rt", NULL};

#define DEFAULT_EVENTS "open,reopen,escalate,ack,resolve"

/* ---- tables -------------------------------------------------------------------------------- */

#define REQ(f) offsetof(struct notify_req, f)

static const struct wp_opt req_opts[] = {
    {.name = "method", .type = WP_OPT_STR, .help = "HTTP method (default POST)",
     .offset = REQ(method)},
    {.name = "url", .type = WP_OPT_STR, .help = "URL template (default: the destination's url)",
     .offset = REQ(url)},
    {.name = "body", .type = WP_OPT_STR,
     .help = "JSON template; each {placeholder} becomes a JSON value", .offset = REQ(body)},
    {.name = "headers", .type = WP_OPT_STRMAP, .help = "header name: template",
     .offset = REQ(headers)},
    WP_OPT_TABLE_END,
};

#define REQ_AT(i) ((size_t)(i) * sizeof(struct notify_req))

static const struct wp_opt requests_opts[] = {
    {.name = "open", .type = WP_OPT_SECTION, .help = "a new incident", .offset = REQ_AT(NEV_OPEN),
     .sub = req_opts},
    {.name = "reopen", .type = WP_OPT_SECTION, .help = "reopened (default: update)",
     .offset = REQ_AT(NEV_REOPEN), .sub = req_opts},
    {.name = "update", .type = WP_OPT_SECTION, .help = "values changed", .offset = REQ_AT(NEV_UPDATE),
     .sub = req_opts},
    {.name = "escalate", .type = WP_OPT_SECTION, .help = "escalated (default: update)",
     .offset = REQ_AT(NEV_ESCALATE), .sub = req_opts},
    {.name = "ack", .type = WP_OPT_SECTION, .help = "acknowledged (default: update)",
     .offset = REQ_AT(NEV_ACK), .sub = req_opts},
    {.name = "resolve", .type = WP_OPT_SECTION, .help = "resolved",
     .offset = REQ_AT(NEV_RESOLVE), .sub = req_opts},
    {.name = "close", .type = WP_OPT_SECTION, .help = "closed (default: none)",
     .offset = REQ_AT(NEV_CLOSE), .sub = req_opts},
    {.name = "digest", .type = WP_OPT_SECTION,
     .help = "the summary of a burst (with digest: true): {count} {items} {text} {subject}",
     .offset = REQ_AT(NEV_N), .sub = req_opts},
    WP_OPT_TABLE_END,
};

struct rate_in {
    int64_t max;
    int64_t per_ms;
};

#define DEST(f) offsetof(struct notify_dest, f)

static const struct wp_opt rate_opts[] = {
    {.name = "max", .type = WP_OPT_INT, .def = "0", .help = "requests per window (0 = no limit)",
     .offset = DEST(rate_max) - DEST(rate_max), .min = 0, .max = 1000000},
    {.name = "per", .type = WP_OPT_DURATION, .def = "1m", .help = "the window",
     .offset = DEST(rate_per_ms) - DEST(rate_max), .min = 1000, .max = 86400000},
    WP_OPT_TABLE_END,
};

static const struct wp_opt dest_opts[] = {
    {.name = "name", .type = WP_OPT_STR, .required = 1, .help = "[a-z0-9_.-]+",
     .offset = DEST(name)},
    {.name = "kind", .type = WP_OPT_ENUM, .required = 1,
     .help = "webhook, pagerduty, email or rt", .offset = DEST(kind),
     .enum_names = notify_kind_names},
    {.name = "url", .type = WP_OPT_STR,
     .help = "endpoint: https://..., smtp://host:port, the RT base URL", .offset = DEST(url)},
    {.name = "secret_file", .type = WP_OPT_STR,
     .help = "token, password or routing key (first line); {secret} in templates",
     .offset = DEST(secret_file)},
    {.name = "username", .type = WP_OPT_STR, .help = "SMTP user", .offset = DEST(username)},
    {.name = "headers", .type = WP_OPT_STRMAP, .help = "header name: template",
     .offset = DEST(headers)},
    {.name = "events", .type = WP_OPT_STRLIST, .help = "events sent (default " DEFAULT_EVENTS ")",
     .offset = DEST(events)},
    {.name = "timeout", .type = WP_OPT_DURATION, .def = "30s", .help = "per request",
     .offset = DEST(timeout_ms), .min = 1000, .max = 600000},
    {.name = "rate", .type = WP_OPT_SECTION, .help = "{max, per}: requests per window",
     .offset = DEST(rate_max), .sub = rate_opts},
    {.name = "digest", .type = WP_OPT_BOOL, .def = "false",
     .help = "email, webhook: over the rate limit, one summary per window lists what waits",
     .offset = DEST(digest)},
    {.name = "insecure", .type = WP_OPT_BOOL, .def = "false",
     .help = "do not verify the server certificate (tests only)", .offset = DEST(insecure)},
    {.name = "ca_file", .type = WP_OPT_STR, .help = "CA bundle for the server certificate",
     .offset = DEST(ca_file)},
    {.name = "requests", .type = WP_OPT_SECTION, .help = "webhook: request per event",
     .offset = DEST(req), .sub = requests_opts},
    {.name = "store", .type = WP_OPT_STR,
     .help = "webhook: dotted path of the remote id in the open response", .offset = DEST(store)},
    {.name = "search", .type = WP_OPT_SECTION,
     .help = "webhook: request that finds the remote id by {key} (after a crash)",
     .offset = DEST(search), .sub = req_opts},
    {.name = "search_store", .type = WP_OPT_STR,
     .help = "webhook: dotted path of the remote id in the search response",
     .offset = DEST(search_store)},
    {.name = "from", .type = WP_OPT_STR, .help = "email: sender", .offset = DEST(from)},
    {.name = "to", .type = WP_OPT_STRLIST, .help = "email: recipients", .offset = DEST(to)},
    {.name = "lang", .type = WP_OPT_STR, .def = "en", .help = "email: en or zh-CN",
     .offset = DEST(lang)},
    {.name = "starttls", .type = WP_OPT_BOOL, .def = "false",
     .help = "email: require STARTTLS", .offset = DEST(starttls)},
    {.name = "queue", .type = WP_OPT_STR, .def = "General", .help = "rt: the queue",
     .offset = DEST(queue)},
    {.name = "key_field", .type = WP_OPT_STR, .def = "Watchpost-Key",
     .help = "rt: custom field holding the incident key", .offset = DEST(key_field)},
    WP_OPT_TABLE_END,
};

#define ROUTE(f) offsetof(struct notify_route, f)

static const struct wp_opt route_opts[] = {
    {.name = "priorities", .type = WP_OPT_STRLIST, .help = "P1..P4 (default any)",
     .offset = ROUTE(priorities)},
    {.name = "categories", .type = WP_OPT_STRLIST, .help = "globs (default any)",
     .offset = ROUTE(categories)},
    {.name = "hosts", .type = WP_OPT_STRLIST, .help = "globs (default any)",
     .offset = ROUTE(hosts)},
    {.name = "rules", .type = WP_OPT_STRLIST, .help = "globs (default any)",
     .offset = ROUTE(rules)},
    {.name = "groups", .type = WP_OPT_STRLIST,
     .help = "host groups of the rules files (default any)", .offset = ROUTE(groups)},
    {.name = "from_level", .type = WP_OPT_INT, .def = "0",
     .help = "escalation level reached (0 first line, 2 second line, 3 vendor, 4 management)",
     .offset = ROUTE(from_level), .min = 0, .max = 4},
    {.name = "hours", .type = WP_OPT_STR, .help = "HH:MM-HH:MM local time (default always)",
     .offset = ROUTE(hours)},
    {.name = "to", .type = WP_OPT_STRLIST, .required = 1, .help = "destination names",
     .offset = ROUTE(to)},
    WP_OPT_TABLE_END,
};

#define NC(f) offsetof(struct notify_conf, f)

static int decode_dests(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                        const void *arg, struct wp_conf_err *err);
static int decode_routes(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                         const void *arg, struct wp_conf_err *err);

static const struct wp_opt top_opts[] = {
    {.name = "destinations", .type = WP_OPT_CUSTOM,
     .help = "[{name, kind, url, ...}]: where messages go", .offset = NC(dests),
     .custom = decode_dests},
    {.name = "routes", .type = WP_OPT_CUSTOM,
     .help = "[{priorities, categories, hosts, rules, from_level, hours, to}]",
     .offset = NC(routes), .custom = decode_routes},
    {.name = "domain", .type = WP_OPT_STR, .help = "right-hand side of Message-IDs",
     .offset = NC(domain)},
    {.name = "dashboard_url", .type = WP_OPT_STR, .def = "", .help = "links in messages",
     .offset = NC(dashboard_url)},
    {.name = "max_age", .type = WP_OPT_DURATION, .def = "3d",
     .help = "a message is retried until this old, then dead-lettered",
     .offset = NC(max_age_ms), .min = 60000, .max = 30LL * 86400000},
    {.name = "backoff_min", .type = WP_OPT_DURATION, .def = "2s", .help = "first retry delay",
     .offset = NC(backoff_min_ms), .min = 100, .max = 3600000},
    {.name = "backoff_max", .type = WP_OPT_DURATION, .def = "10m", .help = "longest retry delay",
     .offset = NC(backoff_max_ms), .min = 1000, .max = 86400000},
    {.name = "retry_after_max", .type = WP_OPT_DURATION, .def = "1h",
     .help = "cap on a receiver's Retry-After", .offset = NC(retry_after_max_ms), .min = 1000,
     .max = 86400000},
    {.name = "keep", .type = WP_OPT_DURATION, .def = "35d",
     .help = "sent, skipped, coalesced and digested messages are deleted when this old",
     .offset = NC(keep_ms), .min = 3600000, .max = 3650LL * 86400000},
    {.name = "keep_dead", .type = WP_OPT_DURATION, .def = "90d",
     .help = "dead letters are deleted when this old (retry them before)",
     .offset = NC(keep_dead_ms), .min = 3600000, .max = 3650LL * 86400000},
    WP_OPT_TABLE_END,
};

/* ---- decoding ------------------------------------------------------------------------------ */

static int name_ok(const char *s)
{
    if (s == NULL || *s == '\0' || strlen(s) > 64) {
        return 0;
    }
    for (; *s != '\0'; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' ||
              *s == '.')) {
            return 0;
        }
    }
    return 1;
}

static int read_secret(const char *path, char **out, char *why, size_t whylen)
{
    char buf[4096];
    FILE *f = fopen(path, "re");

    if (f == NULL) {
        snprintf(why, whylen, "cannot read %s: %s", path, strerror(errno));
        return -errno;
    }
    if (fgets(buf, sizeof(buf), f) == NULL) {
        buf[0] = '\0';
    }
    fclose(f);
    buf[strcspn(buf, "\r\n")] = '\0';
    if (buf[0] == '\0') {
        snprintf(why, whylen, "%s: the first line is empty", path);
        return -EINVAL;
    }
    *out = wp_xstrdup(buf);
    return 0;
}

static int parse_hours(const char *s, int *from, int *to)
{
    int h1, m1, h2, m2;
    char tail;

    if (sscanf(s, "%d:%d-%d:%d%c", &h1, &m1, &h2, &m2, &tail) != 4 || h1 < 0 || h1 > 23 ||
        m1 < 0 || m1 > 59 || h2 < 0 || h2 > 24 || m2 < 0 || m2 > 59 || (h2 == 24 && m2 != 0)) {
        return -EINVAL;
    }
    *from = h1 * 60 + m1;
    *to = h2 * 60 + m2;
    return 0;
}

static void dest_free(struct notify_dest *d)
{
    wp_opts_free(dest_opts, d);
    if (d->secret != NULL) {
        memset(d->secret, 0, strlen(d->secret));
        free(d->secret);
    }
}

static void route_free(struct notify_route *r)
{
    wp_opts_free(route_opts, r);
    free(r->dest_idx);
}

void notify_conf_free(void *field, const void *arg)
{
    struct notify_conf **pc = field;
    struct notify_conf *c = *pc;

    (void)arg;
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->ndests; i++) {
        dest_free(&c->dests[i]);
    }
    free(c->dests);
    for (size_t i = 0; i < c->nroutes; i++) {
        route_free(&c->routes[i]);
    }
    free(c->routes);
    wp_opts_free(top_opts, c);
    free(c);
    *pc = NULL;
}

static int dest_check(struct wp_conf_doc *doc, struct wp_conf_node *it, struct notify_conf *c,
                      size_t i, struct wp_conf_err *err)
{
    struct notify_dest *d = &c->dests[i];
    char why[512];

    if (!name_ok(d->name)) {
        return wp_conf_errorf(doc, wp_conf_map_get(doc, it, "name"), err,
                              "notify.destinations[%zu].name: expected 1 to 64 of [a-z0-9_.-], "
                              "got \"%s\"",
                              i, d->name);
    }
    for (size_t j = 0; j < i; j++) {
        if (strcmp(c->dests[j].name, d->name) == 0) {
            return wp_conf_errorf(doc, wp_conf_map_get(doc, it, "name"), err,
                                  "notify.destinations[%zu].name: \"%s\" is already the name of "
                                  "destinations[%zu]",
                                  i, d->name, j);
        }
    }
    if (d->events.n == 0) {
        d->ev_mask = 0;
        const char *def[] = {"open", "reopen", "escalate", "ack", "resolve"};
        for (size_t k = 0; k < sizeof(def) / sizeof(def[0]); k++) {
            for (int e = 0; e < NEV_N; e++) {
                d->ev_mask |= strcmp(notify_ev_names[e], def[k]) == 0 ? 1u << e : 0;
            }
        }
    }
    for (size_t k = 0; k < d->events.n; k++) {
        int found = 0;
        for (int e = 0; e < NEV_N; e++) {
            if (strcmp(notify_ev_names[e], d->events.v[k]) == 0) {
                d->ev_mask |= 1u << e;
                found = 1;
            }
        }
        if (!found) {
            return wp_conf_errorf(doc, wp_conf_map_get(doc, it, "events"), err,
                                  "notify.destinations[%zu].events: expected open, reopen, "
                                  "update, escalate, ack, resolve or close, got \"%s\"",
                                  i, d->events.v[k]);
        }
    }
    if (d->url == NULL || d->url[0] == '\0') {
        return wp_conf_errorf(doc, it, err,
                              "notify.destinations[%zu] (%s): url is missing (%s)", i, d->name,
                              d->kind == NOTIFY_EMAIL  ? "smtp://host:port or smtps://host:port"
                              : d->kind == NOTIFY_RT   ? "the RT base URL, e.g. https://rt.example.com"
                              : d->kind == NOTIFY_PAGERDUTY
                                  ? "https://events.pagerduty.com/v2/enqueue"
                                  : "the receiver's https://... URL");
    }
    if (d->kind == NOTIFY_EMAIL && (d->from == NULL || d->to.n == 0)) {
        return wp_conf_errorf(doc, it, err,
                              "notify.destinations[%zu] (%s): email needs from: and to: [...]", i,
                              d->name);
    }
    if (d->kind == NOTIFY_EMAIL) {
        enum notify_lang l;
        if (notify_lang_parse(d->lang, &l) < 0) {
            return wp_conf_errorf(doc, wp_conf_map_get(doc, it, "lang"), err,
                                  "notify.destinations[%zu].lang: expected en or zh-CN, got "
                                  "\"%s\"",
                                  i, d->lang);
        }
    }
    if ((d->kind == NOTIFY_PAGERDUTY || d->kind == NOTIFY_RT) && d->secret_file == NULL) {
        return wp_conf_errorf(doc, it, err,
                              "notify.destinations[%zu] (%s): secret_file is missing (%s)", i,
                              d->name,
                              d->kind == NOTIFY_RT ? "the RT auth token" : "the routing key");
    }
    if (d->kind == NOTIFY_WEBHOOK && d->req[NEV_OPEN].body == NULL &&
        d->req[NEV_UPDATE].body == NULL && d->req[NEV_RESOLVE].body == NULL) {
        return wp_conf_errorf(doc, it, err,
                              "notify.destinations[%zu] (%s): a webhook needs requests: with at "
                              "least one of open, update or resolve (each {method, url, body, "
                              "headers})",
                              i, d->name);
    }
    if (d->digest && (d->kind == NOTIFY_RT || d->kind == NOTIFY_PAGERDUTY)) {
        return wp_conf_errorf(doc, wp_conf_map_get(doc, it, "digest"), err,
                              "notify.destinations[%zu].digest: only for email and webhook "
                              "destinations (a ticket or alert per incident cannot be summed up)",
                              i);
    }
    if (d->digest && d->rate_max <= 0) {
        return wp_conf_errorf(doc, wp_conf_map_get(doc, it, "digest"), err,
                              "notify.destinations[%zu].digest: needs rate: {max, per} (the "
                              "summary is sent when the limit is reached)",
                              i);
    }
    if (d->digest && d->kind == NOTIFY_WEBHOOK && d->digest_req.body == NULL) {
        return wp_conf_errorf(doc, wp_conf_map_get(doc, it, "digest"), err,
                              "notify.destinations[%zu].digest: a webhook needs requests.digest "
                              "({body: ...} with {text}, {count} or {items})",
                              i);
    }
    if (d->kind == NOTIFY_WEBHOOK) {
        struct {
            const char *what, *tpl;
        } t[NEV_N * 2 + 4];
        size_t nt = 0;
        for (int e = 0; e < NEV_N; e++) {
            t[nt].what = notify_ev_names[e];
            t[nt++].tpl = d->req[e].url;
            t[nt].what = notify_ev_names[e];
            t[nt++].tpl = d->req[e].body;
        }
        t[nt].what = "search";
        t[nt++].tpl = d->search.url;
        t[nt].what = "digest";
        t[nt++].tpl = d->digest_req.body;
        for (size_t k = 0; k < nt; k++) {
            if (t[k].tpl != NULL && notify_template_check(t[k].tpl, why, sizeof(why)) < 0) {
                return wp_conf_errorf(doc, wp_conf_map_get(doc, it, "requests"), err,
                                      "notify.destinations[%zu].requests.%s: %s", i, t[k].what,
                                      why);
            }
        }
        for (int e = 0; e < NEV_N; e++) {
            for (size_t k = 0; k + 1 < d->req[e].headers.n; k += 2) {
                if (notify_template_check(d->req[e].headers.v[k + 1], why, sizeof(why)) < 0) {
                    return wp_conf_errorf(doc, wp_conf_map_get(doc, it, "requests"), err,
                                          "notify.destinations[%zu].requests.%s.headers: %s", i,
                                          notify_ev_names[e], why);
                }
            }
        }
        for (int e = 0; e < NEV_N; e++) {
            if (!notify_dest_sends(d, e)) {
                d->ev_mask &= ~(1u << e); /* no request for it: not queued at all */
            }
        }
    }
    for (size_t k = 0; k + 1 < d->headers.n; k += 2) {
        if (notify_template_check(d->headers.v[k + 1], why, sizeof(why)) < 0) {
            return wp_conf_errorf(doc, wp_conf_map_get(doc, it, "headers"), err,
                                  "notify.destinations[%zu].headers: %s", i, why);
        }
    }
    if (d->secret_file != NULL) {
        if (read_secret(d->secret_file, &d->secret, why, sizeof(why)) < 0) {
            return wp_conf_errorf(doc, wp_conf_map_get(doc, it, "secret_file"), err,
                                  "notify.destinations[%zu].secret_file: %s", i, why);
        }
    }
    return 0;
}

static int route_check(struct wp_conf_doc *doc, struct wp_conf_node *it, struct notify_conf *c,
                       size_t i, struct wp_conf_err *err)
{
    struct notify_route *r = &c->routes[i];

    for (size_t k = 0; k < r->priorities.n; k++) {
        const char *p = r->priorities.v[k];
        if ((p[0] != 'P' && p[0] != 'p') || p[1] < '1' || p[1] > '4' || p[2] != '\0') {
            return wp_conf_errorf(doc, wp_conf_map_get(doc, it, "priorities"), err,
                                  "notify.routes[%zu].priorities: expected P1, P2, P3 or P4, got "
                                  "\"%s\"",
                                  i, p);
        }
        r->prio_mask |= 1u << (p[1] - '0');
    }
    if (r->hours != NULL && parse_hours(r->hours, &r->from_min, &r->to_min) < 0) {
        return wp_conf_errorf(doc, wp_conf_map_get(doc, it, "hours"), err,
                              "notify.routes[%zu].hours: expected HH:MM-HH:MM, got \"%s\"", i,
                              r->hours);
    }
    r->dest_idx = wp_xcalloc(r->to.n + 1, sizeof(*r->dest_idx));
    for (size_t k = 0; k < r->to.n; k++) {
        size_t j = 0;
        while (j < c->ndests && strcmp(c->dests[j].name, r->to.v[k]) != 0) {
            j++;
        }
        if (j == c->ndests) {
            return wp_conf_errorf(doc, wp_conf_map_get(doc, it, "to"), err,
                                  "notify.routes[%zu].to: no destination named \"%s\"", i,
                                  r->to.v[k]);
        }
        r->dest_idx[k] = j;
    }
    return 0;
}

/* field is &c->dests / &c->routes: the counts sit at fixed distances in struct notify_conf. */
static int decode_dests(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                        const void *arg, struct wp_conf_err *err)
{
    struct notify_conf *c = (struct notify_conf *)(void *)((char *)field - NC(dests));
    char path[64];

    (void)arg;
    if (!wp_conf_is_seq(node)) {
        return wp_conf_errorf(doc, node, err,
                              "notify.destinations: expected a list of {name, kind, url, ...}");
    }
    size_t n = wp_conf_seq_len(doc, node);
    c->dests = wp_xcalloc(n + 1, sizeof(*c->dests));
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "notify.destinations[%zu]", i);
        c->ndests = i + 1;
        int rc = wp_opts_apply(doc, wp_conf_seq_at(doc, node, i), dest_opts, &c->dests[i], path,
                               err);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

static int decode_routes(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                         const void *arg, struct wp_conf_err *err)
{
    struct notify_conf *c = (struct notify_conf *)(void *)((char *)field - NC(routes));
    char path[64];

    (void)arg;
    if (!wp_conf_is_seq(node)) {
        return wp_conf_errorf(doc, node, err, "notify.routes: expected a list of {..., to: [...]}");
    }
    size_t n = wp_conf_seq_len(doc, node);
    c->routes = wp_xcalloc(n + 1, sizeof(*c->routes));
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "notify.routes[%zu]", i);
        c->nroutes = i + 1;
        int rc = wp_opts_apply(doc, wp_conf_seq_at(doc, node, i), route_opts, &c->routes[i], path,
                               err);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

int notify_conf_decode(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                       const void *arg, struct wp_conf_err *err)
{
    struct notify_conf **pc = field;
    struct notify_conf *c = NULL;
    struct wp_conf_node *dn = NULL, *rn = NULL;
    int rc = 0;

    (void)arg;
    if (!wp_conf_is_map(node)) {
        return wp_conf_errorf(doc, node, err,
                              "notify: expected a map with destinations: and routes:");
    }
    c = wp_xcalloc(1, sizeof(*c));
    *pc = c;
    rc = wp_opts_apply(doc, node, top_opts, c, "notify", err);
    if (rc < 0) {
        return rc;
    }
    if (c->domain == NULL) {
        char host[256] = "localhost";
        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        c->domain = wp_xstrdup(host);
    }
    dn = wp_conf_map_get(doc, node, "destinations");
    rn = wp_conf_map_get(doc, node, "routes");
    for (size_t i = 0; rc == 0 && i < c->ndests; i++) {
        rc = dest_check(doc, wp_conf_seq_at(doc, dn, i), c, i, err);
    }
    for (size_t i = 0; rc == 0 && i < c->nroutes; i++) {
        rc = route_check(doc, wp_conf_seq_at(doc, rn, i), c, i, err);
    }
    return rc;
}

/* ---- routing --------------------------------------------------------------------------------- */

static int any_glob(const struct wp_strlist *l, const char *s)
{
    if (l->n == 0) {
        return 1;
    }
    for (size_t i = 0; i < l->n; i++) {
        if (fnmatch(l->v[i], s != NULL ? s : "", 0) == 0) {
            return 1;
        }
    }
    return 0;
}

static int in_hours(const struct notify_route *r, int64_t now_ms)
{
    if (r->hours == NULL) {
        return 1;
    }
    time_t t = (time_t)(now_ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    int m = tm.tm_hour * 60 + tm.tm_min;
    if (r->from_min <= r->to_min) {
        return m >= r->from_min && m < r->to_min;
    }
    return m >= r->from_min || m < r->to_min; /* wraps midnight */
}

static int any_group(const struct notify_route *r, const struct notify_route_in *in)
{
    if (r->groups.n == 0) {
        return 1;
    }
    for (size_t i = 0; in->in_group != NULL && i < r->groups.n; i++) {
        if (in->in_group(in->group_arg, r->groups.v[i], in->host)) {
            return 1;
        }
    }
    return 0;
}

void notify_route(const struct notify_conf *c, const struct notify_route_in *in,
                  void (*fn)(void *arg, const struct notify_dest *d), void *arg)
{
    unsigned char sent[256];
    size_t nd = c->ndests < sizeof(sent) ? c->ndests : sizeof(sent);

    memset(sent, 0, sizeof(sent));
    for (size_t i = 0; i < c->nroutes; i++) {
        const struct notify_route *r = &c->routes[i];
        if ((r->prio_mask != 0 && !(r->prio_mask & (1u << in->priority))) ||
            in->escalation < r->from_level || !any_glob(&r->categories, in->category) ||
            !any_glob(&r->hosts, in->host) || !any_glob(&r->rules, in->rule) ||
            !any_group(r, in) || !in_hours(r, in->now_ms)) {
            continue;
        }
        for (size_t k = 0; k < r->to.n; k++) {
            size_t j = r->dest_idx[k];
            if (j < nd && !sent[j]) {
                sent[j] = 1;
                fn(arg, &c->dests[j]);
            }
        }
    }
}

const struct wp_opt *notify_conf_opts(const char *which)
{
    if (strcmp(which, "top") == 0) {
        return top_opts;
    }
    if (strcmp(which, "destinations") == 0) {
        return dest_opts;
    }
    if (strcmp(which, "routes") == 0) {
        return route_opts;
    }
    return NULL;
}
