/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Notifications (notify*.c): what a message says about one incident event, shared by the
 * outbox (which turns incident timeline entries into stored messages), the renderers (mail,
 * webhook templates, PagerDuty, Request Tracker) and the delivery worker.
 *
 * A message is rendered once, when it is queued, and stored as bytes: every retry sends
 * identical bytes with the same event id.
 */
#ifndef WP_COLLECTOR_NOTIFY_H
#define WP_COLLECTOR_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include "wp/conf.h"

/* One incident event as the renderers see it. Strings are never NULL ("" when empty). */
struct notify_inc {
    int64_t id;           /* incident number: INC-<id> */
    const char *key;      /* incident key (the fingerprint: rule|host|labels), stable */
    int priority;         /* 1..4 */
    const char *status;   /* open, acknowledged, resolved, closed */
    const char *host, *rule, *category, *summary, *description, *runbook;
    const char *values_json; /* JSON object of the values that triggered it */
    int64_t opened_ms, acked_ms, resolved_ms; /* 0 = not yet */
    int64_t response_due_ms, resolve_due_ms;
    int escalation;       /* 0..4 */
    const char *acked_by;

    const char *event;    /* open, reopen, update, escalate, ack, resolve, close */
    const char *event_by; /* who: rule, system, an operator's name */
    const char *event_text; /* the timeline text of the event */
    int64_t event_ms;
    int64_t seq;          /* the event's timeline id: orders events, names messages */
    const char *event_id; /* stable id of this message: "<dest>-<incident>-<seq>" */
};

/* Languages of the rendered text. */
enum notify_lang { NOTIFY_EN = 0, NOTIFY_ZH = 1 };
/* "en" (also "en-*"), "zh-CN" (also "zh", "zh-Hans"), any case: 0, or -EINVAL and *out
 * untouched. */
int notify_lang_parse(const char *s, enum notify_lang *out);

/* ---- mail (notify_mail.c) ---------------------------------------------------------------- */

struct notify_mail_opts {
    const char *from;          /* "Watchpost <noc@example.com>" or an address */
    const char *const *to;     /* recipients ("addr" or "Name <addr>"), NULL-terminated */
    enum notify_lang lang;
    const char *domain;        /* right-hand side of Message-IDs, e.g. the collector's host */
    const char *dashboard_url; /* base URL for links ("" = no links) */
};

/*
 * Render one RFC 5322 message (CRLF line ends, UTF-8): one thread per incident —
 * Message-ID <inc-ID.SEQ@domain> (the open event's is the thread root <inc-ID.0@domain>),
 * In-Reply-To and References to the root on every later event, subject
 * "[INC-ID] P<prio> <summary>" with the event as a short suffix (encoded-word when not
 * ASCII), Auto-Submitted: auto-generated, Date from event_ms, multipart/alternative
 * text/plain + text/html (base64, 76-column lines), in the recipient's language.
 * *out is malloc'd (NUL-terminated too; free() it), *len its length. 0 or -errno: -EINVAL
 * when from, to or domain is missing or malformed (from and each recipient are "addr" or
 * "Name <addr>"; an address or domain with control characters is refused, not repaired),
 * or when a later event has seq <= 0 (it would take the root's Message-ID). Control
 * characters in the incident's text never reach a header. Same input, same bytes (the
 * MIME boundary comes from event_id and domain).
 * Pure: any thread.
 */
int notify_mail_render(const struct notify_inc *m, const struct notify_mail_opts *o, char **out,
                       size_t *len);

/* ---- configuration (notify_conf.c): collector.yaml `notify:` ------------------------------ */

enum notify_kind { NOTIFY_WEBHOOK = 0, NOTIFY_PAGERDUTY, NOTIFY_EMAIL, NOTIFY_RT };
enum notify_ev { NEV_OPEN = 0, NEV_REOPEN, NEV_UPDATE, NEV_ESCALATE, NEV_ACK, NEV_RESOLVE,
                 NEV_CLOSE, NEV_N };
extern const char *const notify_ev_names[NEV_N + 1];  /* "open", "reopen", ... */
extern const char *const notify_kind_names[];         /* "webhook", "pagerduty", ... */

/* A webhook request template: placeholders {name} (see docs/NOTIFY.md). */
struct notify_req {
    char *method;              /* default POST */
    char *url;                 /* default: the destination's url */
    char *body;                /* JSON template: each placeholder becomes a JSON value */
    struct wp_strlist headers; /* name, template, ... (added to the destination's) */
};

struct notify_dest {
    char *name;
    int kind;                  /* enum notify_kind */
    char *url;
    char *secret_file;         /* token / password / routing key: {secret}, never logged */
    char *secret;              /* read at load */
    char *username;
    struct wp_strlist headers; /* name, template, ... */
    struct wp_strlist events;  /* event names sent (default open, reopen, escalate, ack,
                                  resolve) */
    unsigned ev_mask;
    int64_t timeout_ms;
    int64_t rate_max;          /* at most rate_max requests per rate_per_ms (0 = no limit) */
    int64_t rate_per_ms;
    int insecure;              /* skip TLS verification (tests only) */
    char *ca_file;
    int digest;                /* over the rate limit: fold what waits into one summary */
    /* webhook */
    struct notify_req req[NEV_N];
    struct notify_req digest_req; /* right after req[]: the option table relies on it */
    char *store;               /* dotted path of the remote id in the open response */
    struct notify_req search;  /* find the remote id by {key} after a crash mid-create */
    char *search_store;        /* dotted path of the remote id in the search response */
    /* email */
    char *from;
    struct wp_strlist to;
    char *lang;
    int starttls;
    /* Request Tracker */
    char *queue;
    char *key_field;           /* the custom field holding the incident key */
};

struct notify_route {
    struct wp_strlist priorities; /* "P1".. (empty = any) */
    unsigned prio_mask;
    struct wp_strlist categories; /* globs (empty = any) */
    struct wp_strlist hosts;      /* globs */
    struct wp_strlist groups;     /* host groups of the rules files (groups:) */
    struct wp_strlist rules;      /* globs */
    int64_t from_level;           /* the incident has escalated at least this far */
    char *hours;                  /* "HH:MM-HH:MM" local time when the route applies, or NULL */
    int from_min, to_min;
    struct wp_strlist to;         /* destination names */
    size_t *dest_idx;             /* resolved */
};

struct notify_conf {
    char *domain;        /* Message-IDs (default: the host name) */
    char *dashboard_url; /* links in messages ("" = none) */
    int64_t max_age_ms;  /* retry until a message is this old, then dead-letter it */
    int64_t backoff_min_ms, backoff_max_ms;
    int64_t retry_after_max_ms;
    int64_t keep_ms;      /* ended messages (sent, skipped, coalesced, digested) kept */
    int64_t keep_dead_ms; /* dead letters kept this long (retry them before) */
    struct notify_dest *dests;
    size_t ndests;
    struct notify_route *routes;
    size_t nroutes;
};

/* Decode the `notify:` section (WP_OPT_CUSTOM in collector.yaml); secrets are read here.
 * *out stays NULL when the section is absent. */
int notify_conf_decode(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                       const void *arg, struct wp_conf_err *err);
void notify_conf_free(void *field, const void *arg);
/* The option tables, for docs/CONFIG.md: "top", "destinations", "routes". */
const struct wp_opt *notify_conf_opts(const char *which);

/* The destinations a route sends an incident event to: calls fn for each distinct one. */
struct notify_route_in {
    int priority;
    const char *category, *host, *rule;
    int escalation;
    int64_t now_ms; /* for hours */
    /* is host in the rules' host group? (NULL: routes with groups: never match) */
    int (*in_group)(void *arg, const char *group, const char *host);
    void *group_arg;
};
void notify_route(const struct notify_conf *c, const struct notify_route_in *in,
                  void (*fn)(void *arg, const struct notify_dest *d), void *arg);

#endif
