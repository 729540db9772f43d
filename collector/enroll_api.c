/* SPDX-License-Identifier: Apache-2.0 */
/* POST /api/v1/enroll and GET /api/v1/enroll/ca: token check, CSR signing, rate limit. */
#include "enroll_api.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "enroll.h"
#include "wp/clock.h"
#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"
#include "wp/pki.h"

#define RL_SLOTS    256
#define RL_ADDR     64
#define RL_MAX_FAIL 32

struct rl_slot {
    char addr[RL_ADDR]; /* "" = free */
    int64_t fail[RL_MAX_FAIL];
    int n, next;
    int64_t last_ms;
};

struct enroll_api {
    char *ca_dir; /* NULL: off */
    int cert_days;
    int max_failures;
    int64_t window_ms;
    struct enroll_store *store;
    struct rl_slot *rl; /* RL_SLOTS */
    int64_t bucket_milli, bucket_ms;
};

/* ---- rate limit ---- */

/* The address part of "ip:port" or "[v6]:port". */
static void client_addr(const char *client, char *out, size_t n)
{
    const char *c = client != NULL ? client : "?";
    const char *colon = strrchr(c, ':');
    size_t len = colon != NULL && colon != c ? (size_t)(colon - c) : strlen(c);

    if (len >= n) {
        len = n - 1;
    }
    memcpy(out, c, len);
    out[len] = '\0';
}

static struct rl_slot *rl_find(struct enroll_api *e, const char *addr, int create, int64_t now)
{
    struct rl_slot *oldest = &e->rl[0];

    for (int i = 0; i < RL_SLOTS; i++) {
        struct rl_slot *s = &e->rl[i];
        if (s->addr[0] != '\0' && strcmp(s->addr, addr) == 0) {
            return s;
        }
        if (s->last_ms < oldest->last_ms) {
            oldest = s;
        }
    }
    if (!create) {
        return NULL;
    }
    /* free slots have last_ms 0, so they go first; else the least recently seen */
    memset(oldest, 0, sizeof(*oldest));
    snprintf(oldest->addr, sizeof(oldest->addr), "%s", addr);
    oldest->last_ms = now;
    return oldest;
}

/* Failures within the window: seconds until the oldest expires when at the limit, else 0. */
static int64_t rl_blocked(struct enroll_api *e, const char *addr, int64_t now)
{
    struct rl_slot *s = rl_find(e, addr, 0, now);
    int64_t oldest = INT64_MAX;
    int recent = 0;

    if (s == NULL) {
        return 0;
    }
    for (int i = 0; i < s->n; i++) {
        if (now - s->fail[i] < e->window_ms) {
            recent++;
            oldest = s->fail[i] < oldest ? s->fail[i] : oldest;
        }
    }
    if (recent < e->max_failures) {
        return 0;
    }
    int64_t wait = (oldest + e->window_ms - now + 999) / 1000;
    return wait < 1 ? 1 : wait;
}

static void rl_fail(struct enroll_api *e, const char *addr, int64_t now)
{
    struct rl_slot *s = rl_find(e, addr, 1, now);

    s->fail[s->next] = now;
    s->next = (s->next + 1) % e->max_failures;
    if (s->n < e->max_failures) {
        s->n++;
    }
    s->last_ms = now;
}

/* One attempt from the global bucket: 0, or seconds to wait. */
static int64_t bucket_take(struct enroll_api *e, int64_t now)
{
    int64_t dt = now - e->bucket_ms;

    if (dt > 0) {
        e->bucket_milli += dt * ENROLL_API_PER_S;
        if (e->bucket_milli > ENROLL_API_BURST * 1000LL) {
            e->bucket_milli = ENROLL_API_BURST * 1000LL;
        }
        e->bucket_ms = now;
    }
    if (e->bucket_milli < 1000) {
        return 1;
    }
    e->bucket_milli -= 1000;
    return 0;
}

/* ---- handlers ---- */

struct issue_ctx {
    struct enroll_api *e;
    const char *agent;
    const char *csr;
    size_t csr_len;
    char *crt;
    char *ca;
    struct wp_pki_entry entry;
    char err[256];
};

static int issue_cb(void *arg)
{
    struct issue_ctx *c = arg;

    return wp_pki_issue_csr(c->e->ca_dir, c->agent, c->csr, c->csr_len, c->e->cert_days, &c->crt,
                            &c->ca, &c->entry, c->err, sizeof(c->err));
}

static void too_many(struct http_req *req, int64_t retry_s, const char *addr, const char *why)
{
    char ra[32];

    snprintf(ra, sizeof(ra), "%" PRId64, retry_s);
    http_resp_header(req, "Retry-After", ra);
    http_respond_error(req, 429, "too many enrolment attempts: try again later");
    WP_WARN("enroll", "refused client=%s reason=\"%s\" retry_after=%" PRId64 "s", addr, why,
            retry_s);
}

/* A refusal the client caused: logged (never with the token) and counted. */
static void refuse(struct http_req *req, struct enroll_api *e, const char *addr, int64_t now,
                   int status, const char *msg, const char *agent, const char *token_id)
{
    rl_fail(e, addr, now);
    WP_WARN("enroll", "refused agent=%s client=%s token_id=%s status=%d reason=\"%s\"",
            agent != NULL ? agent : "-", req->client, token_id != NULL ? token_id : "-", status,
            msg);
    http_respond_error(req, status, msg);
}

static void enroll_post(struct http_req *req, void *arg)
{
    struct enroll_api *e = arg;
    int64_t now = wp_clock_now_ms();
    char addr[RL_ADDR];
    json_error_t jerr;
    json_t *j = NULL;
    struct issue_ctx c;
    struct enroll_token_info info;
    enum enroll_verdict v = ENROLL_UNKNOWN;

    memset(&c, 0, sizeof(c));
    client_addr(req->client, addr, sizeof(addr));
    if (e->ca_dir == NULL) {
        http_respond_error(req, 404, "enrolment is not enabled on this collector");
        return;
    }
    if (!req->tls) {
        http_respond_error(req, 403, "enrolment needs HTTPS");
        return;
    }
    int64_t wait = rl_blocked(e, addr, now);
    if (wait > 0) {
        too_many(req, wait, addr, "too many refused attempts from this address");
        return;
    }
    if (bucket_take(e, now) > 0) {
        too_many(req, 1, addr, "too many attempts from all clients");
        return;
    }
    j = json_loadb((const char *)req->body, req->body_len, 0, &jerr);
    const char *token = json_string_value(json_object_get(j, "token"));
    const char *agent = json_string_value(json_object_get(j, "agent"));
    const char *csr = json_string_value(json_object_get(j, "csr"));
    if (!json_is_object(j) || token == NULL || agent == NULL || csr == NULL) {
        refuse(req, e, addr, now, 400,
               "expected {\"token\": \"...\", \"agent\": \"AGENT_ID\", \"csr\": \"PEM\"}", NULL,
               NULL);
        goto out;
    }
    if (!wp_pki_name_ok(agent)) {
        refuse(req, e, addr, now, 400,
               "bad agent id: 1 to 64 of A-Z a-z 0-9 . _ -, starting alphanumeric", NULL, NULL);
        goto out;
    }
    c.csr_len = json_string_length(json_object_get(j, "csr"));
    if (c.csr_len == 0 || c.csr_len > WP_PKI_CSR_MAX) {
        refuse(req, e, addr, now, 400, "the CSR must be 1 to 4096 bytes of PEM", agent, NULL);
        goto out;
    }
    c.e = e;
    c.agent = agent;
    c.csr = csr;
    int rc = enroll_token_redeem(e->store, token, agent, req->client, now, issue_cb, &c, &v, &info);
    const char *tid = info.id[0] != '\0' ? info.id : NULL;
    if (rc == -EEXIST) {
        /* the token was good: not a failure to count */
        WP_WARN("enroll", "refused agent=%s client=%s token_id=%s status=409 reason=\"%s\"", agent,
                req->client, tid != NULL ? tid : "-", c.err);
        http_respond_error(req, 409,
                           "this agent id has a valid certificate already: revoke it on the "
                           "collector (watchpost ca revoke) to enrol again");
        goto out;
    }
    if (rc == -EINVAL) {
        refuse(req, e, addr, now, 400, c.err, agent, tid);
        goto out;
    }
    if (rc < 0) {
        WP_ERROR("enroll", "cannot issue a certificate agent=%s client=%s: %s", agent, req->client,
                 c.err[0] != '\0' ? c.err : wp_strerror(rc));
        if (rc == WP_EDB) {
            WP_ERROR("enroll", "token database: %s", enroll_store_errmsg(e->store));
        }
        http_respond_error(req, 500, "cannot issue the certificate now (see the collector's log)");
        goto out;
    }
    switch (v) {
    case ENROLL_OK:
        break;
    case ENROLL_USED:
        refuse(req, e, addr, now, 401, "enrolment token already used", agent, tid);
        goto out;
    case ENROLL_EXPIRED:
        refuse(req, e, addr, now, 401, "enrolment token expired", agent, tid);
        goto out;
    case ENROLL_WRONG_AGENT:
        refuse(req, e, addr, now, 403, "this enrolment token is for another agent id", agent, tid);
        goto out;
    default:
        refuse(req, e, addr, now, 401, "unknown enrolment token", agent, NULL);
        goto out;
    }
    WP_INFO("enroll", "enrolled agent=%s serial=%s client=%s token_id=%s", agent,
            c.entry.serial_hex, req->client, tid != NULL ? tid : "-");
    http_respond_json(req, 200,
                      json_pack("{s:s,s:s,s:s,s:s,s:I}", "agent", agent, "certificate", c.crt, "ca",
                                c.ca, "serial", c.entry.serial_hex, "not_after",
                                (json_int_t)c.entry.not_after));
out:
    free(c.crt);
    free(c.ca);
    json_decref(j);
}

static void enroll_ca(struct http_req *req, void *arg)
{
    struct enroll_api *e = arg;
    char *path = NULL;
    FILE *f = NULL;
    char buf[WP_PKI_CERT_MAX + 1];
    size_t n = 0;
    char fp[65];

    if (e->ca_dir == NULL) {
        http_respond_error(req, 404, "enrolment is not enabled on this collector");
        return;
    }
    path = wp_xasprintf("%s/ca.crt", e->ca_dir);
    f = fopen(path, "re");
    if (f != NULL) {
        n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
    }
    if (f == NULL || n == 0 || n > WP_PKI_CERT_MAX || wp_pki_fingerprint(buf, n, fp) < 0) {
        WP_ERROR("enroll", "cannot read the CA certificate %s", path);
        http_respond_error(req, 500, "cannot read the CA certificate");
        free(path);
        return;
    }
    buf[n] = '\0';
    free(path);
    http_resp_header(req, "Cache-Control", "no-store");
    http_respond_json(req, 200, json_pack("{s:s,s:s}", "ca", buf, "sha256", fp));
}

int enroll_api_start(struct http_server *srv, const struct enroll_api_opts *o,
                     struct enroll_api **out)
{
    struct enroll_api *e = wp_xcalloc(1, sizeof(*e));
    int rc = 0;

    *out = NULL;
    e->cert_days = o->cert_days > 0 ? o->cert_days : WP_PKI_CERT_DAYS;
    e->max_failures = o->max_failures > 0 ? o->max_failures : 5;
    e->max_failures = e->max_failures > RL_MAX_FAIL ? RL_MAX_FAIL : e->max_failures;
    e->window_ms = o->window_ms > 0 ? o->window_ms : 60000;
    e->rl = wp_xcalloc(RL_SLOTS, sizeof(*e->rl));
    e->bucket_milli = ENROLL_API_BURST * 1000LL;
    e->bucket_ms = wp_clock_now_ms();
    if (o->ca_dir != NULL) {
        rc = enroll_store_open(o->db_path, &e->store);
        if (rc < 0) {
            WP_ERROR("enroll", "cannot open the enrolment token database %s: %s", o->db_path,
                     wp_strerror(rc));
            enroll_api_free(e);
            return rc;
        }
        e->ca_dir = wp_xstrdup(o->ca_dir);
        WP_INFO("enroll", "enrolment on: POST /api/v1/enroll, CA %s, tokens %s", e->ca_dir,
                o->db_path);
    }
    http_route(srv, "POST", "/api/v1/enroll", enroll_post, e);
    http_route(srv, "GET", "/api/v1/enroll/ca", enroll_ca, e);
    *out = e;
    return 0;
}

void enroll_api_free(struct enroll_api *e)
{
    if (e == NULL) {
        return;
    }
    enroll_store_close(e->store);
    free(e->rl);
    free(e->ca_dir);
    free(e);
}
