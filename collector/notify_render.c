/* SPDX-License-Identifier: Apache-2.0 */
/* Rendering messages into requests; see notify_render.h. */
#include "notify_render.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wp/buf.h"
#include "wp/err.h"
#include "wp/mem.h"

static const char *const vars[] = {
    "id",         "key",         "priority",   "status",     "host",       "rule",
    "category",   "summary",     "description", "runbook",   "values",     "opened",
    "opened_ms",  "escalation",  "acked_by",   "event",      "event_by",   "event_text",
    "event_at",   "event_ms",    "event_id",   "remote_id",  "secret",     "dashboard_url",
    "subject",    "text",        "severity",   "queue",      "key_field",  "ref",
    "count",      "items",       NULL};

static int var_known(const char *name, size_t n)
{
    for (size_t i = 0; vars[i] != NULL; i++) {
        if (strlen(vars[i]) == n && memcmp(vars[i], name, n) == 0) {
            return 1;
        }
    }
    return 0;
}

/* A placeholder at s ("{name}"): its name length, or 0. */
static size_t placeholder(const char *s)
{
    size_t n = 0;
    if (s[0] != '{') {
        return 0;
    }
    while ((s[1 + n] >= 'a' && s[1 + n] <= 'z') || s[1 + n] == '_') {
        n++;
    }
    return n > 0 && s[1 + n] == '}' ? n : 0;
}

int notify_template_check(const char *tpl, char *why, size_t whylen)
{
    for (const char *s = tpl; s != NULL && *s != '\0'; s++) {
        size_t n = placeholder(s);
        if (n > 0 && !var_known(s + 1, n)) {
            snprintf(why, whylen, "unknown placeholder {%.*s} (known: id, key, priority, status, "
                     "host, rule, category, summary, description, runbook, values, opened, "
                     "escalation, acked_by, event, event_by, event_text, event_at, event_id, "
                     "remote_id, secret, dashboard_url, subject, text, severity, ref)",
                     (int)n, s + 1);
            return -EINVAL;
        }
    }
    return 0;
}

void notify_request_free(struct notify_request *r)
{
    free(r->method);
    free(r->url);
    free(r->headers);
    free(r->body);
    free(r->rcpt);
    memset(r, 0, sizeof(*r));
}

int notify_dest_sends(const struct notify_dest *d, int ev)
{
    if (!(d->ev_mask & (1u << ev))) {
        return 0;
    }
    if (d->kind != NOTIFY_WEBHOOK) {
        return 1;
    }
    const struct notify_req *r = &d->req[ev];
    if (r->body != NULL || r->url != NULL) {
        return 1;
    }
    /* reopen, escalate and ack fall back to the update request */
    return (ev == NEV_REOPEN || ev == NEV_ESCALATE || ev == NEV_ACK) &&
           (d->req[NEV_UPDATE].body != NULL || d->req[NEV_UPDATE].url != NULL);
}

static const struct notify_req *req_for(const struct notify_dest *d, int ev)
{
    const struct notify_req *r = &d->req[ev];
    if (r->body != NULL || r->url != NULL) {
        return r;
    }
    return &d->req[NEV_UPDATE];
}

static int ev_index(const char *name)
{
    for (int i = 0; i < NEV_N; i++) {
        if (strcmp(notify_ev_names[i], name) == 0) {
            return i;
        }
    }
    return -1;
}

/* ---- variables -------------------------------------------------------------------------------- */

static const char *const ev_words[NEV_N] = {"opened",       "reopened", "updated",  "escalated",
                                            "acknowledged", "resolved", "closed"};

/* A digest's variables: count, items (the snapshot's), a subject and a text listing them. */
static json_t *digest_variables(const struct notify_conf *c, const struct notify_dest *d,
                                const struct outbox_msg *m, enum notify_lang lang)
{
    json_t *o = json_loads(m->ctx != NULL ? m->ctx : "{}", 0, NULL);
    char buf[512];

    if (!json_is_object(o)) {
        json_decref(o);
        o = json_object();
    }
    json_int_t n = json_integer_value(json_object_get(o, "count"));
    json_object_set_new(o, "event_id", json_string(m->event_id));
    json_object_set_new(o, "secret", json_string(d->secret != NULL ? d->secret : ""));
    json_object_set_new(o, "dashboard_url",
                        json_string(c->dashboard_url != NULL ? c->dashboard_url : ""));
    if (lang == NOTIFY_ZH) {
        snprintf(buf, sizeof(buf), "[Watchpost] %lld 条事件汇总 (%s)", (long long)n,
                 c->domain != NULL ? c->domain : "");
    } else {
        snprintf(buf, sizeof(buf), "[Watchpost] %lld incident events (summary, %s)", (long long)n,
                 c->domain != NULL ? c->domain : "");
    }
    json_object_set_new(o, "subject", json_string(buf));
    struct wp_sb t = {NULL, 0, 0};
    wp_sb_add(&t, "", 0);
    wp_sb_puts(&t, lang == NOTIFY_ZH
                       ? "发送速率达到上限，以下事件合并发送：\n"
                       : "The rate limit was reached; these events are sent together:\n");
    json_t *items = json_object_get(o, "items");
    for (size_t i = 0; i < json_array_size(items); i++) {
        json_t *it = json_array_get(items, i);
        const char *ev = json_string_value(json_object_get(it, "event"));
        const char *host = json_string_value(json_object_get(it, "host"));
        const char *sum = json_string_value(json_object_get(it, "summary"));
        const char *at = json_string_value(json_object_get(it, "event_at"));
        snprintf(buf, sizeof(buf), "P%lld INC-%lld %s %s %s: %s\n",
                 (long long)json_integer_value(json_object_get(it, "priority")),
                 (long long)json_integer_value(json_object_get(it, "id")), at != NULL ? at : "",
                 ev != NULL ? ev : "", host != NULL ? host : "", sum != NULL ? sum : "");
        wp_sb_puts(&t, buf);
    }
    json_object_set_new(o, "text", json_string(t.p));
    free(t.p);
    return o;
}

/* The variables of message m: the snapshot plus what the destination adds. */
static json_t *variables(const struct notify_conf *c, const struct notify_dest *d,
                         const struct outbox_msg *m, const char *remote_id)
{
    json_t *o = json_loads(m->ctx != NULL ? m->ctx : "{}", 0, NULL);
    char buf[2048];

    if (!json_is_object(o)) {
        json_decref(o);
        o = json_object();
    }
    int prio = (int)json_integer_value(json_object_get(o, "priority"));
    const char *summary = json_string_value(json_object_get(o, "summary"));
    const char *host = json_string_value(json_object_get(o, "host"));
    const char *evname = json_string_value(json_object_get(o, "event"));
    int ev = evname != NULL ? ev_index(evname) : -1;
    json_int_t id = json_integer_value(json_object_get(o, "id"));

    json_object_set_new(o, "event_id", json_string(m->event_id));
    json_object_set_new(o, "remote_id", json_string(remote_id != NULL ? remote_id : ""));
    json_object_set_new(o, "secret", json_string(d->secret != NULL ? d->secret : ""));
    json_object_set_new(o, "dashboard_url",
                        json_string(c->dashboard_url != NULL ? c->dashboard_url : ""));
    json_object_set_new(o, "queue", json_string(d->queue != NULL ? d->queue : ""));
    json_object_set_new(o, "key_field", json_string(d->key_field != NULL ? d->key_field : ""));
    snprintf(buf, sizeof(buf), "[INC-%lld] P%d %s", (long long)id, prio,
             summary != NULL ? summary : "");
    json_object_set_new(o, "subject", json_string(buf));
    /* the correlation id of this incident at a destination: unique per collector and
     * incident (the key is the problem's, shared by its later incidents) */
    snprintf(buf, sizeof(buf), "%s/INC-%lld", c->domain != NULL ? c->domain : "watchpost",
             (long long)id);
    json_object_set_new(o, "ref", json_string(buf));
    static const char *const sev[] = {"critical", "critical", "error", "warning", "info"};
    json_object_set_new(o, "severity", json_string(sev[prio >= 1 && prio <= 4 ? prio : 4]));
    /* a plain-text account of the event, for ticket comments and chat */
    char *vals = json_dumps(json_object_get(o, "values"), JSON_COMPACT | JSON_SORT_KEYS);
    const char *etext = json_string_value(json_object_get(o, "event_text"));
    const char *eby = json_string_value(json_object_get(o, "event_by"));
    const char *runbook = json_string_value(json_object_get(o, "runbook"));
    snprintf(buf, sizeof(buf),
             "[INC-%lld] P%d %s\nhost: %s\nevent: %s by %s%s%s\nvalues: %s\n%s%s", (long long)id,
             prio, summary != NULL ? summary : "", host != NULL ? host : "",
             ev >= 0 ? ev_words[ev] : "changed", eby != NULL ? eby : "",
             etext != NULL && *etext ? ": " : "", etext != NULL ? etext : "",
             vals != NULL ? vals : "{}",
             ev == NEV_OPEN && runbook != NULL && *runbook ? "runbook:\n" : "",
             ev == NEV_OPEN && runbook != NULL ? runbook : "");
    free(vals);
    json_object_set_new(o, "text", json_string(buf));
    return o;
}

/* ---- expansion ---------------------------------------------------------------------------------- */

enum ctx_kind { IN_BODY, IN_URL, IN_HEADER };

/* The plain text of a variable (strings as they are, others as JSON). malloc'd. */
static char *plain(json_t *v)
{
    if (json_is_string(v)) {
        return wp_xstrdup(json_string_value(v));
    }
    if (v == NULL) {
        return wp_xstrdup("");
    }
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
    return s != NULL ? s : wp_xstrdup("");
}

static int expand(const char *tpl, json_t *vars_o, enum ctx_kind k, char **out, char *why,
                  size_t whylen)
{
    struct wp_sb b = {NULL, 0, 0};

    wp_sb_add(&b, "", 0);
    for (const char *s = tpl; *s != '\0';) {
        size_t n = placeholder(s);
        if (n == 0) {
            wp_sb_add(&b, s, 1);
            s++;
            continue;
        }
        char name[64];
        snprintf(name, sizeof(name), "%.*s", (int)n, s + 1);
        json_t *v = json_object_get(vars_o, name);
        if (k == IN_BODY) {
            char *j = json_dumps(v != NULL ? v : json_string(""), JSON_COMPACT | JSON_ENCODE_ANY |
                                                                      JSON_SORT_KEYS);
            wp_sb_puts(&b, j != NULL ? j : "\"\"");
            free(j);
        } else {
            char *t = plain(v);
            if (k == IN_URL) {
                char *e = curl_easy_escape(NULL, t, 0);
                wp_sb_puts(&b, e != NULL ? e : "");
                curl_free(e);
            } else {
                for (const char *q = t; *q != '\0'; q++) {
                    if ((unsigned char)*q < 0x20 || *q == 0x7f) {
                        snprintf(why, whylen, "header value of {%s} has a control character",
                                 name);
                        free(t);
                        free(b.p);
                        return -EINVAL;
                    }
                }
                wp_sb_puts(&b, t);
            }
            free(t);
        }
        s += n + 2;
    }
    *out = b.p;
    return 0;
}

static int add_headers(struct wp_sb *h, const struct wp_strlist *l, json_t *vo, char *why,
                       size_t whylen)
{
    for (size_t i = 0; i + 1 < l->n; i += 2) {
        char *v = NULL;
        int rc = expand(l->v[i + 1], vo, IN_HEADER, &v, why, whylen);
        if (rc < 0) {
            return rc;
        }
        wp_sb_puts(h, l->v[i]);
        wp_sb_puts(h, ": ");
        wp_sb_puts(h, v);
        wp_sb_puts(h, "\n");
        free(v);
    }
    return 0;
}

static int render_webhook(const struct notify_dest *d, const struct notify_req *r, json_t *vo,
                          const char *default_method, struct notify_request *out, char *why,
                          size_t whylen)
{
    struct wp_sb h = {NULL, 0, 0};
    int rc = 0;

    wp_sb_add(&h, "", 0);
    out->method = wp_xstrdup(r->method != NULL ? r->method : default_method);
    if (r->url != NULL) {
        rc = expand(r->url, vo, IN_URL, &out->url, why, whylen);
    } else {
        out->url = wp_xstrdup(d->url);
    }
    if (rc == 0 && r->body != NULL) {
        rc = expand(r->body, vo, IN_BODY, &out->body, why, whylen);
        if (rc == 0) {
            json_error_t je;
            json_t *chk = json_loads(out->body, 0, &je);
            if (chk == NULL) {
                snprintf(why, whylen, "the body template does not give JSON: %s", je.text);
                rc = -EINVAL;
            }
            json_decref(chk);
            out->body_len = strlen(out->body);
            wp_sb_puts(&h, "Content-Type: application/json\n");
        }
    }
    if (rc == 0) {
        /* the same on every retry: receivers drop duplicates by it */
        const char *eid = json_string_value(json_object_get(vo, "event_id"));
        wp_sb_puts(&h, "Idempotency-Key: ");
        wp_sb_puts(&h, eid != NULL ? eid : "");
        wp_sb_puts(&h, "\n");
        rc = add_headers(&h, &d->headers, vo, why, whylen);
    }
    if (rc == 0) {
        rc = add_headers(&h, &r->headers, vo, why, whylen);
    }
    out->headers = h.p;
    return rc;
}

/* ---- built-in destinations ------------------------------------------------------------------ */

static char *dumps(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return s;
}

static int render_pagerduty(const struct notify_dest *d, json_t *vo, int ev,
                            struct notify_request *out)
{
    static const char *const action[NEV_N] = {"trigger", "trigger", "trigger", "trigger",
                                              "acknowledge", "resolve", "resolve"};
    json_t *o = json_object();
    const char *key = json_string_value(json_object_get(vo, "key"));

    json_object_set_new(o, "routing_key", json_string(d->secret != NULL ? d->secret : ""));
    json_object_set_new(o, "event_action", json_string(action[ev]));
    /* at most 255 characters: a longer incident key is cut (it stays unique by its id) */
    char dk[256];
    snprintf(dk, sizeof(dk), "%s", key != NULL ? key : "");
    json_object_set_new(o, "dedup_key", json_string(dk));
    if (ev <= NEV_ESCALATE) {
        json_t *p = json_object();
        char sum[1025];
        snprintf(sum, sizeof(sum), "%s", json_string_value(json_object_get(vo, "subject")));
        json_object_set_new(p, "summary", json_string(sum));
        json_object_set(p, "source", json_object_get(vo, "host"));
        json_object_set(p, "severity", json_object_get(vo, "severity"));
        json_object_set(p, "timestamp", json_object_get(vo, "event_at"));
        json_object_set(p, "component", json_object_get(vo, "rule"));
        json_object_set(p, "class", json_object_get(vo, "category"));
        json_t *cd = json_object();
        json_object_set(cd, "values", json_object_get(vo, "values"));
        json_object_set(cd, "incident", json_object_get(vo, "id"));
        json_object_set(cd, "event", json_object_get(vo, "event"));
        json_object_set(cd, "event_id", json_object_get(vo, "event_id"));
        json_object_set(cd, "escalation", json_object_get(vo, "escalation"));
        json_object_set(cd, "runbook", json_object_get(vo, "runbook"));
        json_object_set_new(p, "custom_details", cd);
        json_object_set_new(o, "payload", p);
        json_object_set_new(o, "client", json_string("Watchpost"));
    }
    out->method = wp_xstrdup("POST");
    out->url = wp_xstrdup(d->url);
    out->body = dumps(o);
    out->body_len = strlen(out->body);
    out->headers = wp_xasprintf("Content-Type: application/json\nIdempotency-Key: %s\n",
                                json_string_value(json_object_get(vo, "event_id")));
    return 0;
}

static char *rt_base(const struct notify_dest *d)
{
    size_t n = strlen(d->url);
    while (n > 0 && d->url[n - 1] == '/') {
        n--;
    }
    return wp_xasprintf("%.*s/REST/2.0", (int)n, d->url);
}

static int render_rt(const struct notify_dest *d, json_t *vo, int ev, const char *remote_id,
                     struct notify_request *out, char *why, size_t whylen)
{
    char *base = rt_base(d);
    json_t *o = json_object();
    const char *text = json_string_value(json_object_get(vo, "text"));

    out->headers = wp_xasprintf("Content-Type: application/json\nAuthorization: token %s\n",
                                d->secret != NULL ? d->secret : "");
    if (ev == NEV_OPEN) {
        json_t *cf = json_object();
        json_object_set(cf, d->key_field, json_object_get(vo, "ref"));
        json_object_set_new(o, "Queue", json_string(d->queue));
        json_object_set(o, "Subject", json_object_get(vo, "subject"));
        /* RT priorities: higher is more urgent; P1 -> 90 ... P4 -> 20 */
        int prio = (int)json_integer_value(json_object_get(vo, "priority"));
        static const int rt_prio[] = {50, 90, 70, 40, 20};
        json_object_set_new(o, "Priority", json_integer(rt_prio[prio >= 1 && prio <= 4 ? prio : 0]));
        json_object_set_new(o, "CustomFields", cf);
        json_object_set_new(o, "Content", json_string(text != NULL ? text : ""));
        json_object_set_new(o, "ContentType", json_string("text/plain"));
        out->method = wp_xstrdup("POST");
        out->url = wp_xasprintf("%s/ticket", base);
    } else {
        if (remote_id == NULL || *remote_id == '\0') {
            snprintf(why, whylen, "no RT ticket is known for this incident (its open was not "
                     "sent to this destination)");
            json_decref(o);
            free(base);
            return WP_ENOTFOUND;
        }
        char *esc = curl_easy_escape(NULL, remote_id, 0);
        json_object_set_new(o, "Content", json_string(text != NULL ? text : ""));
        json_object_set_new(o, "ContentType", json_string("text/plain"));
        if (ev == NEV_RESOLVE || ev == NEV_CLOSE) {
            json_object_set_new(o, "Status", json_string("resolved"));
        } else if (ev == NEV_REOPEN) {
            json_object_set_new(o, "Status", json_string("open"));
        }
        out->method = wp_xstrdup("POST");
        out->url = wp_xasprintf("%s/ticket/%s/comment", base, esc != NULL ? esc : "");
        curl_free(esc);
    }
    out->body = dumps(o);
    out->body_len = strlen(out->body);
    free(base);
    return 0;
}

static void b64(struct wp_sb *out, const unsigned char *p, size_t n, int wrap)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t col = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        char q[4] = {a[v >> 18 & 63], a[v >> 12 & 63], i + 1 < n ? a[v >> 6 & 63] : '=',
                     i + 2 < n ? a[v & 63] : '='};
        wp_sb_add(out, q, 4);
        col += 4;
        if (wrap && col >= 76) {
            wp_sb_puts(out, "\r\n");
            col = 0;
        }
    }
    if (wrap && col > 0) {
        wp_sb_puts(out, "\r\n");
    }
}

/* A digest mail: plain text, base64, the subject as UTF-8 encoded-words (whole characters,
 * at most 45 bytes each). */
static int render_digest_mail(const struct notify_conf *c, const struct notify_dest *d,
                              const struct outbox_msg *m, struct notify_request *out)
{
    enum notify_lang lang = NOTIFY_EN;
    notify_lang_parse(d->lang, &lang);
    json_t *vo = digest_variables(c, d, m, lang);
    const char *subject = json_string_value(json_object_get(vo, "subject"));
    const char *text = json_string_value(json_object_get(vo, "text"));
    struct wp_sb h = {NULL, 0, 0};
    char date[64];
    time_t t = (time_t)(m->created_ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    wp_sb_add(&h, "", 0);
    wp_sb_puts(&h, "From: ");
    wp_sb_puts(&h, d->from);
    wp_sb_puts(&h, "\r\nTo: ");
    for (size_t i = 0; i < d->to.n; i++) {
        wp_sb_puts(&h, i > 0 ? ", " : "");
        wp_sb_puts(&h, d->to.v[i]);
    }
    wp_sb_puts(&h, "\r\nSubject:");
    for (size_t i = 0, len = strlen(subject); i < len;) {
        size_t k = len - i < 45 ? len - i : 45;
        while (i + k < len && ((unsigned char)subject[i + k] & 0xC0) == 0x80) {
            k--; /* never cut a UTF-8 character */
        }
        wp_sb_puts(&h, i > 0 ? "\r\n =?UTF-8?B?" : " =?UTF-8?B?");
        b64(&h, (const unsigned char *)subject + i, k, 0);
        wp_sb_puts(&h, "?=");
        i += k;
    }
    wp_sb_puts(&h, "\r\nDate: ");
    wp_sb_puts(&h, date);
    wp_sb_puts(&h, "\r\nMessage-ID: <digest-");
    wp_sb_puts(&h, m->event_id);
    wp_sb_puts(&h, "@");
    wp_sb_puts(&h, c->domain);
    wp_sb_puts(&h, ">\r\nAuto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n"
                   "Content-Type: text/plain; charset=UTF-8\r\n"
                   "Content-Transfer-Encoding: base64\r\n\r\n");
    b64(&h, (const unsigned char *)text, strlen(text), 1);
    struct wp_sb r = {NULL, 0, 0};
    wp_sb_add(&r, "", 0);
    for (size_t i = 0; i < d->to.n; i++) {
        wp_sb_puts(&r, d->to.v[i]);
        wp_sb_puts(&r, "\n");
    }
    out->method = wp_xstrdup("SMTP");
    out->url = wp_xstrdup(d->url);
    out->headers = wp_xstrdup("");
    out->body = h.p;
    out->body_len = h.n;
    out->rcpt = r.p;
    json_decref(vo);
    return 0;
}

static int render_mail(const struct notify_conf *c, const struct notify_dest *d,
                       const struct outbox_msg *m, struct notify_request *out, char *why,
                       size_t whylen)
{
    struct notify_inc inc;
    struct notify_mail_opts o;
    enum notify_lang lang = NOTIFY_EN;
    char *mail = NULL;
    size_t len = 0;
    struct wp_sb r = {NULL, 0, 0};

    void *h = notify_inc_from_ctx(m->ctx, &inc);
    inc.event_id = m->event_id;
    notify_lang_parse(d->lang, &lang);
    memset(&o, 0, sizeof(o));
    o.from = d->from;
    o.to = (const char *const *)d->to.v;
    o.lang = lang;
    o.domain = c->domain;
    o.dashboard_url = c->dashboard_url != NULL ? c->dashboard_url : "";
    int rc = notify_mail_render(&inc, &o, &mail, &len);
    notify_inc_free(h);
    if (rc < 0) {
        snprintf(why, whylen, "mail not rendered: %s", wp_strerror(rc));
        return rc;
    }
    wp_sb_add(&r, "", 0);
    for (size_t i = 0; i < d->to.n; i++) {
        wp_sb_puts(&r, d->to.v[i]);
        wp_sb_puts(&r, "\n");
    }
    out->method = wp_xstrdup("SMTP");
    out->url = wp_xstrdup(d->url);
    out->headers = wp_xstrdup("");
    out->body = mail;
    out->body_len = len;
    out->rcpt = r.p;
    return 0;
}

int notify_render(const struct notify_conf *c, const struct notify_dest *d,
                  const struct outbox_msg *m, const char *remote_id, struct notify_request *out,
                  char *why, size_t whylen)
{
    int ev = ev_index(m->event);
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (strcmp(m->event, "digest") == 0) {
        if (d->kind == NOTIFY_EMAIL) {
            return render_digest_mail(c, d, m, out);
        }
        if (d->kind == NOTIFY_WEBHOOK && d->digest_req.body != NULL) {
            json_t *vo = digest_variables(c, d, m, NOTIFY_EN);
            rc = render_webhook(d, &d->digest_req, vo, "POST", out, why, whylen);
            json_decref(vo);
            if (rc < 0) {
                notify_request_free(out);
            }
            return rc;
        }
        snprintf(why, whylen, "%s cannot take a summary", d->name);
        return -EINVAL;
    }
    if (ev < 0) {
        snprintf(why, whylen, "unknown event %s", m->event);
        return -EINVAL;
    }
    json_t *vo = variables(c, d, m, remote_id);
    switch (d->kind) {
    case NOTIFY_WEBHOOK: {
        const struct notify_req *r = req_for(d, ev);
        int needs_id = (r->url != NULL && strstr(r->url, "{remote_id}") != NULL) ||
                       (r->body != NULL && strstr(r->body, "{remote_id}") != NULL);
        if (needs_id && (remote_id == NULL || *remote_id == '\0')) {
            snprintf(why, whylen, "the %s request needs {remote_id} and none is stored for this "
                     "incident (was its open sent to this destination?)", m->event);
            rc = WP_ENOTFOUND;
        } else {
            rc = render_webhook(d, r, vo, "POST", out, why, whylen);
        }
        break;
    }
    case NOTIFY_PAGERDUTY:
        rc = render_pagerduty(d, vo, ev, out);
        break;
    case NOTIFY_RT:
        rc = render_rt(d, vo, ev, remote_id, out, why, whylen);
        break;
    case NOTIFY_EMAIL:
        rc = render_mail(c, d, m, out, why, whylen);
        break;
    default:
        snprintf(why, whylen, "unknown destination kind");
        rc = -EINVAL;
    }
    json_decref(vo);
    if (rc < 0) {
        notify_request_free(out);
    }
    return rc;
}

int notify_render_search(const struct notify_conf *c, const struct notify_dest *d,
                         const struct outbox_msg *m, struct notify_request *out, char *why,
                         size_t whylen)
{
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (d->kind == NOTIFY_WEBHOOK) {
        if (d->search.url == NULL) {
            return WP_ENOTFOUND;
        }
        json_t *vo = variables(c, d, m, "");
        rc = render_webhook(d, &d->search, vo, "GET", out, why, whylen);
        json_decref(vo);
    } else if (d->kind == NOTIFY_RT) {
        char *base = rt_base(d);
        char *q = NULL;
        /* TicketSQL: 'CF.{Watchpost-Key}' = 'ref' (quotes and backslashes escaped) */
        json_t *vo = variables(c, d, m, "");
        const char *ref = json_string_value(json_object_get(vo, "ref"));
        struct wp_sb k = {NULL, 0, 0};
        wp_sb_add(&k, "", 0);
        for (const char *s = ref != NULL ? ref : ""; *s != '\0'; s++) {
            if (*s == '\'' || *s == '\\') {
                wp_sb_add(&k, "\\", 1);
            }
            wp_sb_add(&k, s, 1);
        }
        q = wp_xasprintf("'CF.{%s}' = '%s'", d->key_field, k.p);
        char *esc = curl_easy_escape(NULL, q, 0);
        out->method = wp_xstrdup("GET");
        /* RT does not keep the key unique (two creates give two tickets) and gives no order
         * by itself: ask for the lowest id first, so every reconcile picks the same one */
        out->url = wp_xasprintf("%s/tickets?query=%s&orderby=id&order=ASC", base,
                                esc != NULL ? esc : "");
        out->headers = wp_xasprintf("Authorization: token %s\n", d->secret != NULL ? d->secret : "");
        curl_free(esc);
        free(q);
        free(k.p);
        free(base);
        json_decref(vo);
    } else {
        return WP_ENOTFOUND;
    }
    if (rc < 0) {
        notify_request_free(out);
    }
    return rc;
}

const char *notify_store_path(const struct notify_dest *d)
{
    if (d->kind == NOTIFY_RT) {
        return "id";
    }
    return d->kind == NOTIFY_WEBHOOK ? d->store : NULL;
}

const char *notify_search_path(const struct notify_dest *d)
{
    if (d->kind == NOTIFY_RT) {
        return "items.0.id";
    }
    return d->kind == NOTIFY_WEBHOOK ? d->search_store : NULL;
}

int notify_response_check(const struct notify_dest *d, const char *req, size_t req_len,
                          const char *resp, size_t resp_len, char *why, size_t whylen)
{
    if (d->kind != NOTIFY_RT || req == NULL) {
        return 0;
    }
    json_t *rq = json_loadb(req, req_len, 0, NULL);
    const char *want = json_string_value(json_object_get(rq, "Status"));
    int rc = 0;
    if (want != NULL) {
        /* RT adds the comment, then tries the status and answers 201 either way:
         * ["Comments added", "Status changed from 'new' to 'resolved'"] or, refused,
         * ["Comments added", "That ticket has unresolved dependencies"]. Already in that
         * status (a retry, a resolve after a close) is "You can't change status from
         * 'resolved' to 'resolved'.": done too. */
        json_t *an = json_loadb(resp != NULL ? resp : "", resp_len, 0, NULL);
        char to[96], same[192];
        snprintf(to, sizeof(to), "to '%s'", want);
        snprintf(same, sizeof(same), "from '%s' to '%s'", want, want);
        int done = 0;
        for (size_t i = 0; i < json_array_size(an); i++) {
            const char *s = json_string_value(json_array_get(an, i));
            if (s != NULL && ((strstr(s, "changed from ") != NULL && strstr(s, to) != NULL) ||
                              strstr(s, same) != NULL)) {
                done = 1;
            }
        }
        if (!done) {
            char *txt = an != NULL ? json_dumps(an, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
            snprintf(why, whylen, "RT added the comment but did not set Status %s: %.300s", want,
                     txt != NULL ? txt : "(no JSON answer)");
            free(txt);
            rc = -EPROTO;
        }
        json_decref(an);
    }
    json_decref(rq);
    return rc;
}

int notify_json_pick(const char *json, size_t len, const char *path, char *buf, size_t buflen)
{
    json_t *root = json_loadb(json, len, 0, NULL);
    json_t *v = root;
    char part[128];

    for (const char *p = path; v != NULL && p != NULL && *p != '\0';) {
        const char *dot = strchr(p, '.');
        size_t n = dot != NULL ? (size_t)(dot - p) : strlen(p);
        snprintf(part, sizeof(part), "%.*s", (int)n, p);
        if (json_is_array(v)) {
            char *end = NULL;
            long i = strtol(part, &end, 10);
            v = end != part && *end == '\0' && i >= 0 ? json_array_get(v, (size_t)i) : NULL;
        } else {
            v = json_object_get(v, part);
        }
        p = dot != NULL ? dot + 1 : NULL;
    }
    int rc = WP_ENOTFOUND;
    if (json_is_string(v) && json_string_length(v) > 0) {
        snprintf(buf, buflen, "%s", json_string_value(v));
        rc = 0;
    } else if (json_is_integer(v)) {
        snprintf(buf, buflen, "%lld", (long long)json_integer_value(v));
        rc = 0;
    }
    json_decref(root);
    return rc;
}
