/* SPDX-License-Identifier: Apache-2.0 */
/* The delivery worker: libcurl multi on the libuv loop; see deliver.h. */
#include "deliver.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "incident.h"
#include "notify_render.h"
#include "wp/clock.h"
#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"

#define MAX_FLIGHT      32
#define MAX_PER_DEST    4
#define MAX_RESPONSE    (1u << 20) /* bytes of a response kept (ids, error text) */
#define RATE_RING_MAX   10000
#define GENERATE_BATCH  500

enum fkind { F_SEND, F_SEARCH };

struct flight {
    struct deliver *dl;
    enum fkind kind;
    int64_t msg_id, incident_id, created_ms;
    int attempts;
    int ev_open;   /* the open of a destination that keeps a remote id */
    size_t di;     /* destination index */
    CURL *easy;
    struct curl_slist *hdrs, *rcpt;
    char *body;
    size_t body_len, body_off;
    char *resp;
    size_t resp_len;
    int64_t retry_after_ms;
    char errbuf[CURL_ERROR_SIZE];
    struct flight *next;
};

struct dstate {
    int in_flight;
    int64_t *starts; /* ring of completion times for the rate limit (see rate_ok) */
    size_t head, n, cap;
    int dead_open;   /* the dead-letter incident of this destination is open */
};

struct deliver {
    uv_loop_t *loop;
    const struct notify_conf *conf;
    struct outbox *ob;
    struct inc_store *inc;
    CURLM *multi;
    uv_timer_t timer;
    int nclosing;
    void (*stop_cb)(void *);
    void *stop_arg;
    int stopping;
    struct flight *flights;
    size_t nflight;
    struct dstate *ds;
    struct deliver_stats st;
    uint64_t rnd;
};

struct sock {
    uv_poll_t poll;
    curl_socket_t fd;
    struct deliver *dl;
};

static void check_done(struct deliver *dl);
static void rate_note(struct deliver *dl, size_t di, int64_t now);

/* ---- libcurl <-> libuv ------------------------------------------------------------------------ */

static void poll_cb(uv_poll_t *h, int status, int events)
{
    struct sock *sk = h->data;
    int flags = 0;
    int running = 0;

    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    } else {
        flags |= (events & UV_READABLE) ? CURL_CSELECT_IN : 0;
        flags |= (events & UV_WRITABLE) ? CURL_CSELECT_OUT : 0;
    }
    curl_multi_socket_action(sk->dl->multi, sk->fd, flags, &running);
    check_done(sk->dl);
}

/* One handle closed: the last one while stopping frees the worker. */
static void closed_one(struct deliver *dl)
{
    if (--dl->nclosing == 0 && dl->stopping) {
        void (*cb)(void *) = dl->stop_cb;
        void *arg = dl->stop_arg;
        for (size_t i = 0; i < dl->conf->ndests; i++) {
            free(dl->ds[i].starts);
        }
        free(dl->ds);
        free(dl);
        if (cb != NULL) {
            cb(arg);
        }
    }
}

static void sock_closed(uv_handle_t *h)
{
    struct sock *sk = h->data;
    struct deliver *dl = sk->dl;
    free(sk);
    closed_one(dl);
}

static int socket_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct deliver *dl = userp;
    struct sock *sk = socketp;

    (void)e;
    if (what == CURL_POLL_REMOVE) {
        if (sk != NULL) {
            uv_poll_stop(&sk->poll);
            if (!dl->stopping) {
                curl_multi_assign(dl->multi, fd, NULL);
            }
            dl->nclosing++;
            uv_close((uv_handle_t *)&sk->poll, sock_closed);
        }
        return 0;
    }
    if (sk == NULL) {
        sk = wp_xcalloc(1, sizeof(*sk));
        sk->fd = fd;
        sk->dl = dl;
        if (uv_poll_init_socket(dl->loop, &sk->poll, fd) != 0) {
            free(sk);
            return -1;
        }
        sk->poll.data = sk;
        curl_multi_assign(dl->multi, fd, sk);
    }
    int ev = 0;
    ev |= (what == CURL_POLL_IN || what == CURL_POLL_INOUT) ? UV_READABLE : 0;
    ev |= (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) ? UV_WRITABLE : 0;
    uv_poll_start(&sk->poll, ev, poll_cb);
    return 0;
}

static void timer_cb(uv_timer_t *t)
{
    struct deliver *dl = t->data;
    int running = 0;
    curl_multi_socket_action(dl->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(dl);
}

static int timerfn(CURLM *m, long timeout_ms, void *userp)
{
    struct deliver *dl = userp;
    (void)m;
    if (timeout_ms < 0) {
        uv_timer_stop(&dl->timer);
    } else {
        uv_timer_start(&dl->timer, timer_cb, (uint64_t)timeout_ms, 0);
    }
    return 0;
}

/* ---- requests ------------------------------------------------------------------------------- */

static size_t write_cb(char *p, size_t sz, size_t n, void *arg)
{
    struct flight *f = arg;
    size_t len = sz * n;
    size_t keep = f->resp_len + len > MAX_RESPONSE ? MAX_RESPONSE - f->resp_len : len;
    if (keep > 0) {
        f->resp = wp_xrealloc(f->resp, f->resp_len + keep + 1);
        memcpy(f->resp + f->resp_len, p, keep);
        f->resp_len += keep;
        f->resp[f->resp_len] = '\0';
    }
    return len;
}

static size_t header_cb(char *p, size_t sz, size_t n, void *arg)
{
    struct flight *f = arg;
    size_t len = sz * n;
    if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
        char v[128];
        size_t vl = len - 12 < sizeof(v) - 1 ? len - 12 : sizeof(v) - 1;
        memcpy(v, p + 12, vl);
        v[vl] = '\0';
        char *s = v;
        while (*s == ' ' || *s == '\t') {
            s++;
        }
        s[strcspn(s, "\r\n")] = '\0';
        char *end = NULL;
        long secs = strtol(s, &end, 10);
        if (end != s && *end == '\0' && secs >= 0) {
            f->retry_after_ms = (int64_t)secs * 1000;
        } else {
            time_t when = curl_getdate(s, NULL);
            if (when > 0) {
                int64_t d = (int64_t)when * 1000 - wp_clock_now_ms();
                f->retry_after_ms = d > 0 ? d : 0;
            }
        }
    }
    return len;
}

static size_t read_cb(char *buf, size_t sz, size_t n, void *arg)
{
    struct flight *f = arg;
    size_t want = sz * n;
    size_t left = f->body_len - f->body_off;
    size_t k = want < left ? want : left;
    memcpy(buf, f->body + f->body_off, k);
    f->body_off += k;
    return k;
}

/* "Name <a@b>" -> "<a@b>"; a bare address is wrapped. The address is the LAST <...>, as
 * the renderer's From/To headers take it (a display name may hold a '<'). */
static char *mail_addr(const char *s)
{
    const char *lt = strrchr(s, '<');
    const char *gt = lt != NULL ? strchr(lt, '>') : NULL;
    if (lt != NULL && gt != NULL) {
        return wp_xasprintf("%.*s", (int)(gt - lt + 1), lt);
    }
    return wp_xasprintf("<%s>", s);
}

/* SMTP: libcurl hands the server's reply lines to the header callback; keep the last 4xx/5xx
 * one, the refusal an operator reads in `watchpost outbox list`. */
static size_t smtp_reply_cb(char *p, size_t sz, size_t n, void *arg)
{
    struct flight *f = arg;
    size_t len = sz * n;
    size_t k = len < 300 ? len : 300;

    if (len >= 3 && (p[0] == '4' || p[0] == '5')) {
        while (k > 0 && (p[k - 1] == '\r' || p[k - 1] == '\n')) {
            k--;
        }
        f->resp = wp_xrealloc(f->resp, k + 1);
        memcpy(f->resp, p, k);
        f->resp[k] = '\0';
        f->resp_len = k;
    }
    return len;
}

static void flight_free(struct flight *f)
{
    if (f->easy != NULL) {
        curl_multi_remove_handle(f->dl->multi, f->easy);
        curl_easy_cleanup(f->easy);
    }
    curl_slist_free_all(f->hdrs);
    curl_slist_free_all(f->rcpt);
    free(f->body);
    free(f->resp);
    free(f);
}

static int flight_start(struct deliver *dl, struct flight *f, const struct notify_dest *d,
                        const char *method, const char *url, const char *headers,
                        const void *body, size_t body_len, const char *rcpt)
{
    CURL *e = curl_easy_init();
    if (e == NULL) {
        return -ENOMEM;
    }
    f->easy = e;
    f->body = wp_xmalloc(body_len + 1);
    memcpy(f->body, body != NULL ? body : "", body_len);
    f->body[body_len] = '\0';
    f->body_len = body_len;
    for (const char *h = headers != NULL ? headers : ""; *h != '\0';) {
        const char *nl = strchr(h, '\n');
        size_t n = nl != NULL ? (size_t)(nl - h) : strlen(h);
        if (n > 0) {
            char *line = wp_xasprintf("%.*s", (int)n, h);
            f->hdrs = curl_slist_append(f->hdrs, line);
            free(line);
        }
        h += n + (nl != NULL ? 1 : 0);
    }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, f);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, f->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)d->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(d->timeout_ms < 10000 ? d->timeout_ms
                                                                                 : 10000));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, f);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https,smtp,smtps");
    if (d->insecure) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (d->ca_file != NULL) {
        curl_easy_setopt(e, CURLOPT_CAINFO, d->ca_file);
    }
    if (strcmp(method, "SMTP") == 0) {
        /* smtp://host:port without a path: libcurl's EHLO would be gethostname(), often not
         * a FQDN (a container's "vm"), which strict MTAs refuse (504 5.5.2 -> dead letters).
         * Say the notify domain instead; a path in the URL still names it explicitly. */
        const char *hp = strstr(url, "://");
        const char *path = hp != NULL ? strchr(hp + 3, '/') : NULL;
        if (path == NULL || path[1] == '\0') {
            char *u = wp_xasprintf("%s%s%s", url, path == NULL ? "/" : "", dl->conf->domain);
            curl_easy_setopt(e, CURLOPT_URL, u); /* libcurl copies it */
            free(u);
        }
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, smtp_reply_cb);
        char *from = mail_addr(d->from);
        curl_easy_setopt(e, CURLOPT_MAIL_FROM, from);
        free(from);
        for (const char *r = rcpt != NULL ? rcpt : ""; *r != '\0';) {
            const char *nl = strchr(r, '\n');
            size_t n = nl != NULL ? (size_t)(nl - r) : strlen(r);
            if (n > 0) {
                char *one = wp_xasprintf("%.*s", (int)n, r);
                char *addr = mail_addr(one);
                f->rcpt = curl_slist_append(f->rcpt, addr);
                free(addr);
                free(one);
            }
            r += n + (nl != NULL ? 1 : 0);
        }
        curl_easy_setopt(e, CURLOPT_MAIL_RCPT, f->rcpt);
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, read_cb);
        curl_easy_setopt(e, CURLOPT_READDATA, f);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(e, CURLOPT_USE_SSL, d->starttls ? (long)CURLUSESSL_ALL : (long)CURLUSESSL_NONE);
        if (d->username != NULL) {
            curl_easy_setopt(e, CURLOPT_USERNAME, d->username);
            curl_easy_setopt(e, CURLOPT_PASSWORD, d->secret != NULL ? d->secret : "");
        }
    } else {
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, f->hdrs);
        if (strcmp(method, "GET") == 0) {
            curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        } else {
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, f->body);
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
            if (strcmp(method, "POST") != 0) {
                curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
            }
        }
    }
    if (curl_multi_add_handle(dl->multi, e) != CURLM_OK) {
        return -EIO;
    }
    f->next = dl->flights;
    dl->flights = f;
    dl->nflight++;
    dl->ds[f->di].in_flight++;
    dl->st.started++;
    return 0;
}

/* ---- outcomes ----------------------------------------------------------------------------- */

static uint64_t rnd_next(struct deliver *dl)
{
    dl->rnd ^= dl->rnd << 13;
    dl->rnd ^= dl->rnd >> 7;
    dl->rnd ^= dl->rnd << 17;
    return dl->rnd;
}

static int64_t backoff_ms(struct deliver *dl, int attempts)
{
    int64_t d = dl->conf->backoff_min_ms;
    for (int i = 1; i < attempts && d < dl->conf->backoff_max_ms; i++) {
        d *= 2;
    }
    if (d > dl->conf->backoff_max_ms) {
        d = dl->conf->backoff_max_ms;
    }
    /* full jitter over the upper half: never all at once after an outage */
    return d / 2 + (int64_t)(rnd_next(dl) % (uint64_t)(d / 2 + 1));
}

static void dead_incident(struct deliver *dl, size_t di, int on, const char *why, int64_t now)
{
    const struct notify_dest *d = &dl->conf->dests[di];
    char fp[256], summary[300], values[1024];

    if (dl->inc == NULL || (on == 0 && !dl->ds[di].dead_open)) {
        return;
    }
    snprintf(fp, sizeof(fp), "notify_dead_letter|%s|dest=%s", dl->conf->domain, d->name);
    inc_begin(dl->inc);
    if (on) {
        char esc[600];
        size_t o = 0;
        for (const char *s = why; *s != '\0' && o + 7 < sizeof(esc); s++) {
            unsigned char c = (unsigned char)*s;
            if (c == '"' || c == '\\') {
                esc[o++] = '\\';
                esc[o++] = (char)c;
            } else if (c >= 0x20) {
                esc[o++] = (char)c;
            }
        }
        esc[o] = '\0';
        snprintf(summary, sizeof(summary), "Notifications to %s are failing", d->name);
        snprintf(values, sizeof(values), "{\"destination\":\"%s\",\"error\":\"%s\"}", d->name, esc);
        struct inc_signal sig = {
            .fingerprint = fp,
            .rule = "notify_dead_letter",
            .host = dl->conf->domain,
            .impact = 2,
            .urgency = 1,
            .category = "monitoring",
            .summary = summary,
            .description = "A message was given up (dead letter): the receiver refused it or "
                           "it could not be delivered within max_age. See `watchpost outbox "
                           "list --state dead`; fix the cause and `watchpost outbox retry ID`.",
            .runbook = "1. watchpost outbox list --state dead: read last_error.\n"
                       "2. Fix the destination (token, queue, URL) in collector.yaml notify:.\n"
                       "3. watchpost outbox retry ID for each message that must still go.",
            .values_json = values,
        };
        inc_fire(dl->inc, &sig, now, NULL);
        dl->ds[di].dead_open = 1;
    } else {
        inc_clear(dl->inc, fp, now);
        dl->ds[di].dead_open = 0;
    }
    inc_commit(dl->inc);
}

static int http_retryable(long code)
{
    return code == 408 || code == 429 || code >= 500;
}

static void finish(struct deliver *dl, struct flight *f, CURLcode cc)
{
    const struct notify_dest *d = &dl->conf->dests[f->di];
    int64_t now = wp_clock_now_ms();
    long code = 0;
    char why[600];
    int smtp = d->kind == NOTIFY_EMAIL;

    curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &code);
    int ok = cc == CURLE_OK && (smtp ? (code == 0 || (code >= 200 && code < 400))
                                     : (code >= 200 && code < 300));
    int retry = 0;
    if (!ok) {
        if (cc != CURLE_OK && !(smtp && code >= 400)) {
            retry = 1; /* network, TLS, timeout */
            snprintf(why, sizeof(why), "%s", f->errbuf[0] ? f->errbuf : curl_easy_strerror(cc));
        } else if (smtp) {
            retry = code >= 400 && code < 500;
            snprintf(why, sizeof(why), "SMTP %ld: %s%s%.300s", code,
                     f->errbuf[0] ? f->errbuf : curl_easy_strerror(cc),
                     f->resp_len > 0 ? "; server said: " : "", f->resp_len > 0 ? f->resp : "");
            for (char *p = why; *p != '\0'; p++) {
                if ((unsigned char)*p < 0x20) {
                    *p = ' ';
                }
            }
        } else {
            retry = http_retryable(code);
            snprintf(why, sizeof(why), "HTTP %ld: %.300s", code, f->resp != NULL ? f->resp : "");
            for (char *p = why; *p != '\0'; p++) {
                if ((unsigned char)*p < 0x20) {
                    *p = ' ';
                }
            }
        }
    }
    if (ok && f->kind == F_SEND &&
        notify_response_check(d, f->body, f->body_len, f->resp, f->resp_len, why,
                              sizeof(why)) < 0) {
        ok = 0; /* a 2xx saying it did not do it (RT's status change): dead letter */
    }
    if (f->kind == F_SEARCH) {
        char rid[256];
        const char *path = notify_search_path(d);
        if (ok && path != NULL &&
            notify_json_pick(f->resp != NULL ? f->resp : "", f->resp_len, path, rid,
                             sizeof(rid)) == 0) {
            outbox_remote_put(dl->ob, d->name, f->incident_id, rid, "linked");
            char note[700];
            snprintf(note, sizeof(note), "reconciled: %s already has %s for this incident, not "
                     "created again", d->name, rid);
            outbox_sent(dl->ob, f->msg_id, (int)code, note, now);
            dl->st.reconciled++;
            return;
        }
        if (ok) {
            /* nothing there: the create never arrived; create now */
            outbox_remote_put(dl->ob, d->name, f->incident_id, "", "searched");
            return;
        }
        /* the search failed: try again later, never create blindly */
        int64_t next = now + backoff_ms(dl, f->attempts + 1);
        outbox_retry(dl->ob, f->msg_id, (int)code, why, next, now);
        dl->st.retried++;
        return;
    }
    if (ok) {
        char note[700] = "";
        const char *path = f->ev_open ? notify_store_path(d) : NULL;
        if (path != NULL) {
            char rid[256];
            if (notify_json_pick(f->resp != NULL ? f->resp : "", f->resp_len, path, rid,
                                 sizeof(rid)) == 0) {
                outbox_remote_put(dl->ob, d->name, f->incident_id, rid, "linked");
                snprintf(note, sizeof(note), "remote id %s", rid);
            } else {
                outbox_remote_put(dl->ob, d->name, f->incident_id, "", "linked");
                snprintf(note, sizeof(note), "no remote id at \"%s\" in the response", path);
            }
        }
        outbox_sent(dl->ob, f->msg_id, (int)code, note, now);
        dl->st.sent++;
        dead_incident(dl, f->di, 0, "", now);
        return;
    }
    if (retry && now - f->created_ms < dl->conf->max_age_ms) {
        int64_t delay = backoff_ms(dl, f->attempts + 1);
        if (f->retry_after_ms > 0) {
            delay = f->retry_after_ms < dl->conf->retry_after_max_ms ? f->retry_after_ms
                                                                     : dl->conf->retry_after_max_ms;
        }
        outbox_retry(dl->ob, f->msg_id, (int)code, why, now + delay, now);
        dl->st.retried++;
        return;
    }
    if (retry) {
        char w2[700];
        snprintf(w2, sizeof(w2), "%s (still failing after max_age)", why);
        outbox_dead(dl->ob, f->msg_id, (int)code, w2, now);
    } else {
        outbox_dead(dl->ob, f->msg_id, (int)code, why, now);
    }
    dl->st.dead++;
    WP_WARN("notify", "message %" PRId64 " to %s dead-lettered: %s", f->msg_id, d->name, why);
    dead_incident(dl, f->di, 1, why, now);
}

static void check_done(struct deliver *dl)
{
    CURLMsg *msg;
    int left = 0;
    int any = 0;

    while ((msg = curl_multi_info_read(dl->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        struct flight *f = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&f);
        CURLcode cc = msg->data.result;
        for (struct flight **pp = &dl->flights; *pp != NULL; pp = &(*pp)->next) {
            if (*pp == f) {
                *pp = f->next;
                break;
            }
        }
        dl->nflight--;
        dl->ds[f->di].in_flight--;
        /* the request reached the receiver at the latest now: its window counts from here */
        rate_note(dl, f->di, wp_clock_now_ms());
        if (!dl->stopping) {
            finish(dl, f, cc);
        }
        flight_free(f);
        any = 1;
    }
    if (any && !dl->stopping) {
        deliver_pump(dl, wp_clock_now_ms());
    }
}

/* ---- pump ------------------------------------------------------------------------------------- */

static int in_flight(const struct deliver *dl, int64_t msg_id)
{
    for (const struct flight *f = dl->flights; f != NULL; f = f->next) {
        if (f->msg_id == msg_id) {
            return 1;
        }
    }
    return 0;
}

/*
 * Rate limits as the receiver counts them (arrivals in any window of rate_per_ms): a request
 * arrives somewhere between its start and its completion, so completed requests are kept
 * with their completion time and requests in flight count too. A new request may start only
 * while (completed within the window) + (in flight) < rate_max: every request arriving in a
 * window [t, t + per) completed after t or is still in flight when the last of them starts,
 * so none of them is missed. A small margin covers the receiver's own clock.
 */
static int64_t rate_margin(const struct notify_dest *d)
{
    int64_t m = d->rate_per_ms / 20;
    return m < 250 ? m : 250;
}

static int rate_ok(struct deliver *dl, size_t di, int64_t now)
{
    const struct notify_dest *d = &dl->conf->dests[di];
    struct dstate *ds = &dl->ds[di];

    if (d->rate_max <= 0) {
        return 1;
    }
    while (ds->n > 0 && now - ds->starts[ds->head] >= d->rate_per_ms + rate_margin(d)) {
        ds->head = (ds->head + 1) % ds->cap;
        ds->n--;
    }
    return (int64_t)ds->n + ds->in_flight < d->rate_max;
}

/* When the oldest completion in the window leaves it (a request is allowed again; with only
 * requests in flight, soon). */
static int64_t rate_free_at(const struct deliver *dl, size_t di)
{
    const struct dstate *ds = &dl->ds[di];
    if (ds->n == 0) {
        return wp_clock_now_ms() + 1000;
    }
    return ds->starts[ds->head] + dl->conf->dests[di].rate_per_ms +
           rate_margin(&dl->conf->dests[di]);
}

static void rate_note(struct deliver *dl, size_t di, int64_t now)
{
    const struct notify_dest *d = &dl->conf->dests[di];
    struct dstate *ds = &dl->ds[di];

    if (d->rate_max <= 0) {
        return;
    }
    if (ds->cap == 0) {
        ds->cap = (size_t)(d->rate_max < RATE_RING_MAX ? d->rate_max : RATE_RING_MAX);
        ds->starts = wp_xcalloc(ds->cap, sizeof(*ds->starts));
    }
    if (ds->n == ds->cap) {
        ds->head = (ds->head + 1) % ds->cap;
        ds->n--;
    }
    ds->starts[(ds->head + ds->n) % ds->cap] = now;
    ds->n++;
}

/* A due message copied out of the query (strings and body owned). */
struct due {
    struct outbox_msg m;
    char *s[12];
    void *body;
};

static const char *keep(struct due *d, int i, const char *s)
{
    d->s[i] = s != NULL ? wp_xstrdup(s) : NULL;
    return d->s[i];
}

static void due_free(struct due *d)
{
    for (size_t i = 0; i < sizeof(d->s) / sizeof(d->s[0]); i++) {
        free(d->s[i]);
    }
    free(d->body);
}

struct pump {
    struct deliver *dl;
    int64_t now;
    struct due due[128];
    size_t n;
    size_t *picked; /* per destination */
};

static ssize_t dest_index(const struct deliver *dl, const char *name);
static int rate_ok(struct deliver *dl, size_t di, int64_t now);

static int due_cb(void *arg, const struct outbox_msg *m)
{
    struct pump *p = arg;
    if (p->n >= sizeof(p->due) / sizeof(p->due[0])) {
        return 1;
    }
    if (in_flight(p->dl, m->id)) {
        return 0;
    }
    /* a destination that cannot take more now does not crowd the others out */
    ssize_t di = dest_index(p->dl, m->dest);
    if (di >= 0) {
        const struct dstate *ds = &p->dl->ds[di];
        int full = ds->in_flight + (int)p->picked[di] >= MAX_PER_DEST;
        int limited = !rate_ok(p->dl, (size_t)di, p->now);
        if (full || (limited && (!p->dl->conf->dests[di].digest || p->picked[di] > 0))) {
            return 0;
        }
        p->picked[di]++;
    }
    struct due *d = &p->due[p->n++];
    memset(d, 0, sizeof(*d));
    d->m = *m;
    d->m.event_id = keep(d, 0, m->event_id);
    d->m.dest = keep(d, 1, m->dest);
    d->m.inc_key = keep(d, 2, m->inc_key);
    d->m.event = keep(d, 3, m->event);
    d->m.state = keep(d, 4, m->state);
    d->m.last_error = keep(d, 5, m->last_error);
    d->m.ctx = keep(d, 6, m->ctx);
    d->m.method = keep(d, 7, m->method);
    d->m.url = keep(d, 8, m->url);
    d->m.headers = keep(d, 9, m->headers);
    d->m.rcpt = keep(d, 10, m->rcpt);
    d->body = wp_xmalloc(m->body_len + 1);
    memcpy(d->body, m->body != NULL ? m->body : "", m->body_len);
    d->m.body = d->body;
    return 0;
}

static ssize_t dest_index(const struct deliver *dl, const char *name)
{
    for (size_t i = 0; i < dl->conf->ndests; i++) {
        if (strcmp(dl->conf->dests[i].name, name) == 0) {
            return (ssize_t)i;
        }
    }
    return -1;
}

/*
 * Message m needs the incident's ticket at d (RT after the open, a webhook request with
 * {remote_id}) and none is kept. The messages of one (destination, incident) go one at a
 * time in order, so an open queued before m has gone out (or been given up) by now. When no
 * open went to d before m (skipped while the incident was suppressed, not routed then),
 * there is no ticket and nothing to act on: m is skipped, which is no delivery failure.
 * Returns 1 then; 0 when it is a failure (an open went out or was given up, and no ticket id
 * came of it), with what became of the open added to why.
 */
static int skip_ticketless(struct deliver *dl, const struct notify_dest *d,
                           const struct outbox_msg *m, char *why, size_t whylen, int64_t now)
{
    int64_t oid = 0;
    char ostate[16] = "";
    int rc =
        outbox_open_state(dl->ob, d->name, m->incident_id, m->id, &oid, ostate, sizeof(ostate));

    if (rc == WP_ENOTFOUND) {
        char w[300];
        snprintf(w, sizeof(w), "no ticket at %s: the incident's open was never sent", d->name);
        if (outbox_skip(dl->ob, m->id, w, now) < 0) {
            /* still queued: looked at again at the next pump */
            WP_ERROR("notify", "message %" PRId64 " to %s: %s", m->id, d->name,
                     outbox_errmsg(dl->ob));
        } else {
            WP_INFO("notify", "message %" PRId64 " (%s) to %s skipped: %s", m->id, m->event,
                    d->name, w);
        }
        return 1;
    }
    if (rc == 0) {
        size_t n = strlen(why);
        snprintf(why + n, whylen - n, "; its open (message %" PRId64 ") is %s", oid, ostate);
    }
    return 0;
}

/* Start message m (fetched again: the due list may be stale after earlier starts). */
static void start_one(struct deliver *dl, const struct outbox_msg *m, int64_t now)
{
    ssize_t di = dest_index(dl, m->dest);
    char why[600];
    char rid[256] = "", rstate[32] = "";

    if (di < 0) {
        outbox_dead(dl->ob, m->id, 0, "the destination is no longer configured", now);
        dl->st.dead++;
        return;
    }
    const struct notify_dest *d = &dl->conf->dests[di];
    if (dl->ds[di].in_flight >= MAX_PER_DEST) {
        return; /* next pump */
    }
    if (!rate_ok(dl, (size_t)di, wp_clock_now_ms())) {
        if (d->digest) {
            /* what waits for this destination becomes one summary, sent when the limit
             * allows the next request */
            int64_t when = rate_free_at(dl, (size_t)di);
            int n = outbox_digest(dl->ob, d->name, now, when, 2);
            if (n > 0) {
                dl->st.digested += (uint64_t)n;
            }
        }
        return; /* next pump */
    }
    int is_open = strcmp(m->event, "open") == 0 && notify_store_path(d) != NULL;
    outbox_remote_get(dl->ob, d->name, m->incident_id, rid, sizeof(rid), rstate, sizeof(rstate));
    if (is_open && strcmp(rstate, "linked") == 0) {
        /* created and recorded, only the sent mark was lost */
        char note[700];
        snprintf(note, sizeof(note), "already linked to %s %s", d->name, rid);
        outbox_sent(dl->ob, m->id, 0, note, now);
        return;
    }
    struct flight *f = wp_xcalloc(1, sizeof(*f));
    f->dl = dl;
    f->msg_id = m->id;
    f->incident_id = m->incident_id;
    f->created_ms = m->created_ms;
    f->attempts = m->attempts;
    f->di = (size_t)di;
    f->ev_open = is_open;
    struct notify_request rq;
    int rc = 0;
    if (is_open && strcmp(rstate, "creating") == 0) {
        /* an earlier create may have reached the destination: look before creating again */
        rc = notify_render_search(dl->conf, d, m, &rq, why, sizeof(why));
        if (rc == 0) {
            f->kind = F_SEARCH;
            rc = flight_start(dl, f, d, rq.method, rq.url, rq.headers, rq.body, rq.body_len,
                              NULL);
            notify_request_free(&rq);
            if (rc < 0) {
                flight_free(f);
            }
            return;
        }
        if (rc != WP_ENOTFOUND) {
            flight_free(f);
            outbox_dead(dl->ob, m->id, 0, why, now);
            dl->st.dead++;
            return;
        }
        /* no way to search: create again (the receiver dedups by the Idempotency-Key) */
    }
    if (m->method == NULL) {
        rc = notify_render(dl->conf, d, m, rid, &rq, why, sizeof(why));
        if (rc == WP_ENOTFOUND && skip_ticketless(dl, d, m, why, sizeof(why), now)) {
            flight_free(f);
            return;
        }
        if (rc < 0) {
            flight_free(f);
            outbox_dead(dl->ob, m->id, 0, why, now);
            dl->st.dead++;
            dead_incident(dl, (size_t)di, 1, why, now);
            return;
        }
        outbox_rendered(dl->ob, m->id, rq.method, rq.url, rq.headers, rq.body, rq.body_len,
                        rq.rcpt);
    } else {
        memset(&rq, 0, sizeof(rq));
        rq.method = wp_xstrdup(m->method);
        rq.url = wp_xstrdup(m->url != NULL ? m->url : "");
        rq.headers = wp_xstrdup(m->headers != NULL ? m->headers : "");
        rq.body = wp_xmalloc(m->body_len + 1);
        memcpy(rq.body, m->body != NULL ? m->body : "", m->body_len);
        rq.body_len = m->body_len;
        rq.rcpt = m->rcpt != NULL ? wp_xstrdup(m->rcpt) : NULL;
    }
    if (is_open) {
        outbox_remote_put(dl->ob, d->name, m->incident_id, "", "creating");
    }
    f->kind = F_SEND;
    rc = flight_start(dl, f, d, rq.method, rq.url, rq.headers, rq.body, rq.body_len, rq.rcpt);
    notify_request_free(&rq);
    if (rc < 0) {
        WP_WARN("notify", "message %" PRId64 " to %s not started: %s", m->id, d->name,
                wp_strerror(rc));
        flight_free(f);
    }
}

void deliver_pump(struct deliver *dl, int64_t now_ms)
{
    if (dl->stopping) {
        return;
    }
    for (int i = 0; i < 20; i++) { /* bounded: 20 x 500 timeline entries per pump */
        int n = outbox_generate(dl->ob, now_ms, GENERATE_BATCH);
        if (n < 0) {
            WP_ERROR("notify", "outbox: %s", outbox_errmsg(dl->ob));
            break;
        }
        if (n == 0) {
            break;
        }
    }
    if (dl->nflight >= MAX_FLIGHT) {
        return;
    }
    struct pump *p = wp_xcalloc(1, sizeof(*p));
    p->dl = dl;
    p->now = now_ms;
    p->picked = wp_xcalloc(dl->conf->ndests + 1, sizeof(*p->picked));
    /* copied out first: starting a message writes to the outbox */
    outbox_due(dl->ob, now_ms, 1024, due_cb, p);
    for (size_t i = 0; i < p->n; i++) {
        if (dl->nflight < MAX_FLIGHT) {
            start_one(dl, &p->due[i].m, now_ms);
        }
        due_free(&p->due[i]);
    }
    free(p->picked);
    free(p);
}

int deliver_start(uv_loop_t *loop, const struct notify_conf *conf, struct outbox *ob,
                  struct inc_store *inc, struct deliver **out)
{
    struct deliver *dl = wp_xcalloc(1, sizeof(*dl));

    dl->loop = loop;
    dl->conf = conf;
    dl->ob = ob;
    dl->inc = inc;
    dl->rnd = (uint64_t)wp_clock_now_ms() * 0x9E3779B97F4A7C15ull | 1;
    dl->ds = wp_xcalloc(conf->ndests + 1, sizeof(*dl->ds));
    dl->multi = curl_multi_init();
    if (dl->multi == NULL) {
        free(dl->ds);
        free(dl);
        return -ENOMEM;
    }
    curl_multi_setopt(dl->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(dl->multi, CURLMOPT_SOCKETDATA, dl);
    curl_multi_setopt(dl->multi, CURLMOPT_TIMERFUNCTION, timerfn);
    curl_multi_setopt(dl->multi, CURLMOPT_TIMERDATA, dl);
    uv_timer_init(loop, &dl->timer);
    dl->timer.data = dl;
    *out = dl;
    return 0;
}

static void timer_closed(uv_handle_t *h)
{
    closed_one(h->data);
}

void deliver_stop(struct deliver *dl, void (*cb)(void *arg), void *arg)
{
    dl->stopping = 1;
    dl->stop_cb = cb;
    dl->stop_arg = arg;
    while (dl->flights != NULL) {
        struct flight *f = dl->flights;
        dl->flights = f->next;
        flight_free(f); /* removing the handle closes its sockets (socket_cb REMOVE) */
    }
    dl->nflight = 0;
    /* closes the cached connections too: their sockets come back through socket_cb */
    curl_multi_cleanup(dl->multi);
    dl->multi = NULL;
    uv_timer_stop(&dl->timer);
    dl->nclosing++;
    uv_close((uv_handle_t *)&dl->timer, timer_closed);
}

void deliver_stats(const struct deliver *dl, struct deliver_stats *out)
{
    *out = dl->st;
    out->in_flight = dl->nflight;
}
