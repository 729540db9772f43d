/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Rendering a queued message into the request that delivers it (notify_render.c):
 * webhook templates, PagerDuty Events v2, Request Tracker 5 REST 2.0, email.
 *
 * Templates: {name} is a variable of the incident event (docs/NOTIFY.md lists them: id, key,
 * priority, status, host, rule, category, summary, description, runbook, values, opened,
 * escalation, acked_by, event, event_by, event_text, event_at, event_id, remote_id, secret,
 * dashboard_url, subject, text, severity, ref = "<domain>/INC-<id>": the correlation id of the
 * incident at a destination). In a body each placeholder becomes a JSON value (strings
 * quoted and escaped by jansson, numbers as numbers, values as an object), so a template
 * cannot produce broken JSON from an incident's text; in a URL the value is percent-encoded;
 * in a header it is the plain text (control characters refused). "{" not followed by a
 * variable name and "}" is literal, so JSON braces need no escaping.
 */
#ifndef WP_COLLECTOR_NOTIFY_RENDER_H
#define WP_COLLECTOR_NOTIFY_RENDER_H

#include <stddef.h>

#include "notify.h"
#include "outbox.h"

struct notify_request {
    char *method;  /* "POST", ...; "SMTP" for mail */
    char *url;
    char *headers; /* "Name: value\n"... */
    char *body;
    size_t body_len;
    char *rcpt;    /* mail: recipients "\n"-separated */
};
void notify_request_free(struct notify_request *r);

/* Is event ev sendable to d (a webhook needs a template for it, or for update)? */
int notify_dest_sends(const struct notify_dest *d, int ev);

/* Render message m for destination d. remote_id: the ticket id kept for the incident ("" =
 * none yet). Returns 0; WP_ENOTFOUND with why when the event goes to the incident's ticket
 * (RT after the open, a webhook request with {remote_id}) and remote_id is empty; or another
 * <0 with why (a template that cannot be rendered, ...). */
int notify_render(const struct notify_conf *c, const struct notify_dest *d,
                  const struct outbox_msg *m, const char *remote_id, struct notify_request *out,
                  char *why, size_t whylen);

/* The request that finds an incident's remote id by its key (webhook search:, RT TicketSQL
 * on the key field). Returns 0, WP_ENOTFOUND when d has no search, or <0. */
int notify_render_search(const struct notify_conf *c, const struct notify_dest *d,
                         const struct outbox_msg *m, struct notify_request *out, char *why,
                         size_t whylen);

/* Does d keep a remote id from the open call (webhook store:, RT)? Its dotted path in the
 * create response and in the search response. */
const char *notify_store_path(const struct notify_dest *d);
const char *notify_search_path(const struct notify_dest *d);
/* Did a 2xx answer to request body req do what it asked? RT answers a comment that also sets
 * Status with 201 even when the status change was refused (rights, lifecycle, unresolved
 * dependencies; messages in English, RT's default). 0, or -EPROTO with RT's answer in why
 * (not retried: the comment is in). 0 for every other destination kind. */
int notify_response_check(const struct notify_dest *d, const char *req, size_t req_len,
                          const char *resp, size_t resp_len, char *why, size_t whylen);
/* Pick the dotted path ("id", "result.sys_id", "items.0.id") out of a JSON response into
 * buf. 0 or WP_ENOTFOUND. */
int notify_json_pick(const char *json, size_t len, const char *path, char *buf, size_t buflen);

/* Check a template at config time: every placeholder is a known variable. 0 or -EINVAL with
 * the unknown name in why. */
int notify_template_check(const char *tpl, char *why, size_t whylen);

#endif
