/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kamreg probe: which expected extensions are registered at a Kamailio registrar, read
 * from usrloc over JSON-RPC (jsonrpcs over xhttp) with libcurl, one ul.dump per round.
 *
 * Config:
 *   - kind: kamreg
 *     name: pbx1
 *     interval: 10s
 *     url: "http://127.0.0.1:5060/RPC"   # jsonrpcs behind xhttp (the SIP TCP port)
 *     table: location                    # the usrloc table (domain) save() writes
 *     group: seats                       # default group of the extensions (default: the name)
 *     timeout: 5s
 *     max_response: 16MiB                # a larger answer is an error, never read further
 *     user: monitor                      # optional basic auth (a proxy in front), with
 *     password_file: /etc/watchpost/kamreg.pass   # the password on its first line
 *     ca: /etc/watchpost/kamailio-ca.crt # https: trust this CA instead of the system's
 *     extensions:
 *       - "2001"                                       # name = AoR, the default group
 *       - {name: "3001", group: ivr}
 *       - {name: sales1, aor: "2101@pbx.example", group: seats}   # usrloc use_domain=1
 *
 * Why ul.dump and not one ul.lookup per AoR: one request per round however many extensions,
 * one consistent snapshot, and an empty table still lists itself, so "not registered" is told
 * apart from "wrong table". (A table of many thousands of contacts needs Kamailio's private
 * memory, -M, sized for the dump; max_response bounds what the agent reads.)
 *
 * Per extension, a state (object <name>, its group): "idle" when the AoR has a live contact
 * (Expires > 0 seconds left, or permanent), raw "registered", info "<contact> ua=<User-Agent>
 * expires=<n>s"; "unavailable" with raw "expired" when all its contacts have expired but not
 * been swept yet, or "not registered" when the AoR is not in the table. A registration that
 * lapses is seen at the first poll after its Expires runs out. Only changes are sent (state,
 * raw, contact or user agent), every extension on the first round and after a recovery.
 *
 * When Kamailio cannot be asked (connect error, timeout, HTTP error, a JSON-RPC error, an
 * answer that is not JSON or too large, the table missing), every extension becomes "unknown"
 * (raw "link lost") once and the link object "kamailio:<name>" (group "telephony_link") goes
 * "unavailable" with the reason as raw; it is "idle" (raw "ok") while answers come. Never
 * "all unregistered" because the registrar could not be read.
 *
 * Rows: kamreg/<name> (up, response_s, size_bytes, aors, contacts, registered, expected);
 * kamreg_group/<name>/<group> (registered, expected; registered NaN while the link is down);
 * kamreg_ext/<name>/<extension> (registered 1/0, expires_s: seconds left on the best live
 * contact, NaN when none, permanent or the link is down).
 * Check kamreg_<name>: OK when all expected extensions are registered, WARNING listing the
 * first ones that are not, CRITICAL when Kamailio cannot be read.
 *
 * sample() runs a private curl multi handle on the thread pool (WP_PROBE_BLOCKING), as the
 * http probe does. URLs and the password are never logged.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "probe.h"
#include "wp/clock.h"
#include "wp/err.h"
#include "wp/mem.h"

#define KR_NAME_MAX    64
#define KR_AOR_MAX     255
#define KR_EXTS_MAX    10000
#define KR_GROUPS_MAX  256
#define KR_INFO_MAX    400 /* contact, user agent and expires in a state's info */
#define KR_SLACK_MS    2000
#define KR_LINK_GROUP  "telephony_link"
#define KR_MISSING_MAX 10 /* extensions named in the check output */
#define KR_PASS_MAX    256

/* One expected extension: options, then what decoding and earlier rounds keep. */
struct kr_ext {
    char *name;
    char *aor;
    char *group;

    size_t gidx;       /* index into kr_ctx.groups */
    char *inst;        /* "<probe>/<name>" */
    const char *state; /* last state sent: "idle", "unavailable", "unknown"; NULL: none */
    char *raw;         /* last raw sent */
    char *key;         /* contact and user agent last sent */
};

struct kr_exts {
    struct kr_ext *v;
    size_t n;
};

/* What one round's dump says about an extension. */
struct kr_seen {
    int found;        /* the AoR is in the table */
    int live;         /* it has a live contact */
    int permanent;    /* the best live contact never expires */
    int64_t expires;  /* seconds left on the best live contact */
    const char *addr; /* of the best (or the latest expired) contact; borrowed from the JSON */
    const char *ua;
    size_t ncontacts; /* live contacts */
};

struct kr_group {
    char *name;
    char *inst; /* "<probe>/<group>" */
    unsigned expected;
    unsigned registered;
};

/* An extension's AoR (borrowed) and index, for the sorted lookup table. */
struct kr_aor {
    const char *aor;
    size_t idx;
};

struct kr_ctx {
    /* options */
    char *url;
    char *table;
    char *group;
    struct kr_exts exts;
    int64_t timeout_ms;
    uint64_t max_response;
    char *user;
    char *password_file;
    char *ca;

    /* derived */
    char password[KR_PASS_MAX];
    char *check;
    char *link_obj;
    struct kr_group *groups;
    size_t ngroups;
    struct kr_aor *by_aor; /* the extensions sorted by AoR */

    /* across rounds */
    int first;
    int down;
    const char *link_state;
    char *link_raw;
    unsigned rpc_id;
};

/* One round's transfer. */
struct kr_run {
    const struct kr_ctx *c;
    char *body;
    size_t len, cap;
    int too_big;
    char errbuf[CURL_ERROR_SIZE];
};

static int decode_exts(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                       const void *arg, struct wp_conf_err *err);
static void free_exts(void *field, const void *arg);

#define EO(f) offsetof(struct kr_ext, f)

static const struct wp_opt ext_opts[] = {
    {.name = "name",
     .type = WP_OPT_STR,
     .help = "extension: the state object and the series instance",
     .offset = EO(name),
     .required = 1},
    {.name = "aor",
     .type = WP_OPT_STR,
     .help = "the AoR in usrloc (default: the name; user@domain with use_domain)",
     .offset = EO(aor)},
    {.name = "group",
     .type = WP_OPT_STR,
     .help = "state group (seats, ivr, ...); default: the probe's group",
     .offset = EO(group)},
    WP_OPT_TABLE_END,
};

#define KO(f) offsetof(struct kr_ctx, f)

static const struct wp_opt kr_opts[] = {
    {.name = "url",
     .type = WP_OPT_STR,
     .help = "Kamailio's JSON-RPC URL (jsonrpcs over xhttp), http:// or https://",
     .offset = KO(url),
     .required = 1},
    {.name = "table",
     .type = WP_OPT_STR,
     .def = "location",
     .help = "usrloc table (domain) the registrar saves to",
     .offset = KO(table)},
    {.name = "group",
     .type = WP_OPT_STR,
     .help = "default state group of the extensions (default: the probe's name)",
     .offset = KO(group)},
    {.name = "extensions",
     .type = WP_OPT_CUSTOM,
     .help = "expected extensions: [\"2001\", {name, aor, group}]",
     .offset = KO(exts),
     .required = 1,
     .custom = decode_exts,
     .custom_free = free_exts},
    {.name = "timeout",
     .type = WP_OPT_DURATION,
     .def = "5s",
     .help = "limit for the whole request",
     .offset = KO(timeout_ms),
     .min = 100,
     .max = 300000},
    {.name = "max_response",
     .type = WP_OPT_SIZE,
     .def = "16MiB",
     .help = "a larger answer is an error (the link is down)",
     .offset = KO(max_response),
     .min = 1024,
     .max = 1024LL << 20},
    {.name = "user",
     .type = WP_OPT_STR,
     .help = "basic auth user (a proxy in front of Kamailio)",
     .offset = KO(user)},
    {.name = "password_file",
     .type = WP_OPT_STR,
     .help = "file whose first line is the basic auth password (never logged)",
     .offset = KO(password_file)},
    {.name = "ca",
     .type = WP_OPT_STR,
     .help = "PEM file of the CA(s) to trust for https instead of the system's",
     .offset = KO(ca)},
    WP_OPT_TABLE_END,
};

static const char *const kr_fields[] = {"up",       "response_s", "size_bytes", "aors",
                                        "contacts", "registered", "expected"};
static const struct wp_series_kind kind_kr = {"kamreg", kr_fields, 7, WP_DS_GAUGE};
static const char *const group_fields[] = {"registered", "expected"};
static const struct wp_series_kind kind_group = {"kamreg_group", group_fields, 2, WP_DS_GAUGE};
static const char *const ext_fields[] = {"registered", "expires_s"};
static const struct wp_series_kind kind_ext = {"kamreg_ext", ext_fields, 2, WP_DS_GAUGE};

/* ---- libcurl global state ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_init_once(void)
{
    /* never cleaned up: the agent keeps probes until it exits */
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- config ---- */

/* An AoR goes into a JSON string and is compared byte for byte: printable ASCII, no quotes,
 * backslashes or blanks. */
static int aor_ok(const char *s)
{
    size_t n = strnlen(s, KR_AOR_MAX + 1);

    if (n == 0 || n > KR_AOR_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\\') {
            return 0;
        }
    }
    return 1;
}

static int decode_exts(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                       const void *arg, struct wp_conf_err *err)
{
    struct kr_exts *es = field;
    size_t n = wp_conf_seq_len(doc, node);
    char path[48];
    int rc = 0;

    (void)arg;
    if (!wp_conf_is_seq(node) || n == 0) {
        return wp_conf_errorf(doc, node, err,
                              "extensions: expected a list like [\"2001\", {name: \"3001\", "
                              "group: ivr}]");
    }
    if (n > KR_EXTS_MAX) {
        return wp_conf_errorf(doc, node, err, "extensions: %zu extensions, at most %d", n,
                              KR_EXTS_MAX);
    }
    free_exts(es, NULL);
    es->v = wp_xcalloc(n, sizeof(*es->v));
    for (size_t i = 0; i < n; i++) {
        struct wp_conf_node *it = wp_conf_seq_at(doc, node, i);
        struct kr_ext *e = &es->v[i];

        es->n = i + 1; /* free_exts frees what this item got, even half decoded */
        snprintf(path, sizeof(path), "extensions[%zu]", i);
        if (wp_conf_is_scalar(it)) {
            e->name = wp_xstrdup(wp_conf_scalar(it));
        } else {
            rc = wp_opts_apply(doc, it, ext_opts, e, path, err);
            if (rc < 0) {
                return rc;
            }
        }
        if (!wp_probe_name_ok(e->name, KR_NAME_MAX)) {
            return wp_conf_errorf(doc, wp_probe_at_key(doc, it, "name"), err,
                                  "%s.name: expected 1 to %d letters, digits, '_', '-' or '.', "
                                  "got \"%s\"",
                                  path, KR_NAME_MAX, e->name);
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(es->v[j].name, e->name) == 0) {
                return wp_conf_errorf(doc, wp_probe_at_key(doc, it, "name"), err,
                                      "%s.name: \"%s\" is already extensions[%zu]", path, e->name,
                                      j);
            }
        }
        if (e->aor == NULL) {
            e->aor = wp_xstrdup(e->name);
        } else if (!aor_ok(e->aor)) {
            return wp_conf_errorf(doc, wp_probe_at_key(doc, it, "aor"), err,
                                  "%s.aor: expected an AoR like 2001 or 2001@pbx.example (no "
                                  "blanks or quotes, at most %d bytes)",
                                  path, KR_AOR_MAX);
        }
        if (e->group != NULL && !wp_probe_name_ok(e->group, KR_NAME_MAX)) {
            return wp_conf_errorf(doc, wp_probe_at_key(doc, it, "group"), err,
                                  "%s.group: expected 1 to %d letters, digits, '_', '-' or '.'",
                                  path, KR_NAME_MAX);
        }
    }
    return 0;
}

static void free_exts(void *field, const void *arg)
{
    struct kr_exts *es = field;

    (void)arg;
    for (size_t i = 0; i < es->n; i++) {
        wp_opts_free(ext_opts, &es->v[i]);
        free(es->v[i].inst);
        free(es->v[i].raw);
        free(es->v[i].key);
    }
    free(es->v);
    es->v = NULL;
    es->n = 0;
}

/* ---- the request ---- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct kr_run *r = arg;
    size_t len = size * nmemb;

    if (len > r->c->max_response || r->len > r->c->max_response - len) {
        r->too_big = 1;
        return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
    }
    if (r->len + len + 1 > r->cap) {
        size_t cap = r->cap != 0 ? r->cap : 16384;
        while (cap < r->len + len + 1) {
            cap *= 2;
        }
        r->body = wp_xrealloc(r->body, cap);
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, len);
    r->len += len;
    r->body[r->len] = '\0';
    return len;
}

#define SETOPT(e, opt, val)                                    \
    do {                                                       \
        if (curl_easy_setopt((e), (opt), (val)) != CURLE_OK) { \
            goto fail;                                         \
        }                                                      \
    } while (0)

/* A configured easy handle POSTing req, or NULL. */
static CURL *easy_new(struct kr_ctx *c, struct kr_run *r, const char *req, struct curl_slist *hdrs)
{
    CURL *e = curl_easy_init();

    if (e == NULL) {
        return NULL;
    }
    SETOPT(e, CURLOPT_URL, c->url);
    SETOPT(e, CURLOPT_ERRORBUFFER, r->errbuf);
    SETOPT(e, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    SETOPT(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SETOPT(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SETOPT(e, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    SETOPT(e, CURLOPT_CONNECTTIMEOUT_MS, (long)c->timeout_ms);
    SETOPT(e, CURLOPT_FORBID_REUSE, 1L);
    SETOPT(e, CURLOPT_USERAGENT, "watchpost-agent/" WP_VERSION);
    SETOPT(e, CURLOPT_POSTFIELDS, req);
    SETOPT(e, CURLOPT_HTTPHEADER, hdrs);
    SETOPT(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_response);
    SETOPT(e, CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(e, CURLOPT_WRITEDATA, (void *)r);
    if (c->ca != NULL) {
        SETOPT(e, CURLOPT_CAINFO, c->ca);
        SETOPT(e, CURLOPT_CAPATH, (char *)NULL);
    }
    if (c->user != NULL) {
        SETOPT(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        SETOPT(e, CURLOPT_USERNAME, c->user);
        SETOPT(e, CURLOPT_PASSWORD, c->password);
    }
    return e;
fail:
    curl_easy_cleanup(e);
    return NULL;
}

/*
 * POST req to the URL and collect the answer into r. 0 with r->body (maybe empty), or -1
 * with why filled. *status gets the HTTP status (0 without a response).
 */
static int rpc_call(struct kr_ctx *c, struct kr_run *r, const char *req, long *status, char *why,
                    size_t wlen)
{
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    CURLM *m = curl_multi_init();
    CURL *e = NULL;
    CURLcode res = CURLE_FAILED_INIT;
    int added = 0;
    int done = 0;
    int running = 0;
    int rc = -1;
    int64_t deadline = wp_clock_mono_ms() + c->timeout_ms + KR_SLACK_MS;

    *status = 0;
    if (hdrs == NULL || m == NULL) {
        snprintf(why, wlen, "cannot set up the request: out of memory");
        goto out;
    }
    e = easy_new(c, r, req, hdrs);
    if (e == NULL || curl_multi_add_handle(m, e) != CURLM_OK) {
        snprintf(why, wlen, "cannot set up the request (libcurl too old?)");
        goto out;
    }
    added = 1;
    for (;;) {
        CURLMsg *msg = NULL;
        int left = 0;
        CURLMcode mc = curl_multi_perform(m, &running);
        if (mc != CURLM_OK) {
            snprintf(why, wlen, "curl: %s", curl_multi_strerror(mc));
            goto out;
        }
        for (;;) {
            msg = curl_multi_info_read(m, &left);
            if (msg == NULL) {
                break;
            }
            if (msg->msg == CURLMSG_DONE && msg->easy_handle == e) {
                res = msg->data.result;
                done = 1;
            }
        }
        if (done || running == 0) {
            break;
        }
        if (wp_clock_mono_ms() >= deadline) {
            res = CURLE_OPERATION_TIMEDOUT;
            done = 1;
            break;
        }
        mc = curl_multi_poll(m, NULL, 0, 250, NULL);
        if (mc != CURLM_OK) {
            snprintf(why, wlen, "curl: %s", curl_multi_strerror(mc));
            goto out;
        }
    }
    if (!done) {
        res = CURLE_OPERATION_TIMEDOUT;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
    if (r->too_big || res == CURLE_FILESIZE_EXCEEDED) {
        snprintf(why, wlen, "answer larger than max_response (%llu bytes)",
                 (unsigned long long)c->max_response);
        goto out;
    }
    if (res == CURLE_OPERATION_TIMEDOUT) {
        snprintf(why, wlen, "no answer in %g s", (double)c->timeout_ms / 1000.0);
        goto out;
    }
    if (res != CURLE_OK) {
        /* curl's own words and the OS error, not the error buffer: it holds timings ("after
         * 3 ms") that would make every round's reason a new link state */
        long oserr = 0;
        curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &oserr);
        snprintf(why, wlen, "%s%s%s", curl_easy_strerror(res), oserr != 0 ? ": " : "",
                 oserr != 0 ? wp_strerror(-(int)oserr) : "");
        goto out;
    }
    rc = 0;
out:
    if (added) {
        curl_multi_remove_handle(m, e);
    }
    if (e != NULL) {
        curl_easy_cleanup(e);
    }
    if (m != NULL) {
        curl_multi_cleanup(m);
    }
    curl_slist_free_all(hdrs);
    return rc;
}

/* ---- the answer ---- */

/* Copy s into dst keeping printable ASCII (others become '?'), cut at len - 1. */
static void copy_clean(char *dst, size_t len, const char *s)
{
    size_t j = 0;

    for (size_t i = 0; s != NULL && s[i] != '\0' && j + 1 < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        dst[j++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    dst[j] = '\0';
}

static int cmp_aor(const void *a, const void *b)
{
    return strcmp(((const struct kr_aor *)a)->aor, ((const struct kr_aor *)b)->aor);
}

/* The extension index whose AoR is aor, or -1. */
static long find_aor(const struct kr_ctx *c, const char *aor)
{
    size_t lo = 0;
    size_t hi = c->exts.n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int d = strcmp(c->by_aor[mid].aor, aor);
        if (d == 0) {
            return (long)c->by_aor[mid].idx;
        }
        if (d < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return -1;
}

/* Fold one Contact object into s. */
static void fold_contact(struct kr_seen *s, json_t *ct)
{
    json_t *ex = json_object_get(ct, "Expires");
    const char *addr = json_string_value(json_object_get(ct, "Address"));
    const char *ua = json_string_value(json_object_get(ct, "User-Agent"));
    int live = 0;
    int permanent = 0;
    int64_t left = 0;

    if (json_is_integer(ex)) {
        left = (int64_t)json_integer_value(ex);
        live = left > 0;
    } else if (json_is_string(ex) && strcmp(json_string_value(ex), "permanent") == 0) {
        live = 1;
        permanent = 1;
    } /* "expired", "deleted", anything else: not live */
    if (!live) {
        if (!s->live && s->addr == NULL) {
            s->addr = addr; /* keep one for the info of an expired registration */
            s->ua = ua;
        }
        return;
    }
    s->ncontacts++;
    if (!s->live || permanent > s->permanent ||
        (!s->permanent && !permanent && left > s->expires)) {
        s->live = 1;
        s->permanent = permanent;
        s->expires = left;
        s->addr = addr;
        s->ua = ua;
    }
}

/*
 * Parse an ul.dump answer into seen[] (one per extension). Returns 0 with *root holding the
 * tree seen[] borrows from (json_decref it), or -1 with why filled. *naors and *ncontacts
 * count the whole table.
 */
static int parse_dump(struct kr_ctx *c, const char *body, size_t len, long status,
                      struct kr_seen *seen, json_t **root, size_t *naors, size_t *ncontacts,
                      char *why, size_t wlen)
{
    json_error_t jerr;
    json_t *doc = NULL;
    json_t *res = NULL;
    json_t *doms = NULL;
    json_t *error = NULL;
    int found_table = 0;

    *root = NULL;
    *naors = 0;
    *ncontacts = 0;
    if (len == 0) {
        snprintf(why, wlen, "HTTP %ld with an empty body", status);
        return -1;
    }
    doc = json_loadb(body, len, 0, &jerr);
    if (doc == NULL) {
        char t[JSON_ERROR_TEXT_LENGTH];
        copy_clean(t, sizeof(t), jerr.text);
        if (status != 200) {
            snprintf(why, wlen, "HTTP %ld, not a JSON-RPC answer", status);
        } else {
            snprintf(why, wlen, "bad JSON at line %d column %d: %s", jerr.line, jerr.column, t);
        }
        return -1;
    }
    if (!json_is_object(doc)) {
        snprintf(why, wlen, "bad JSON-RPC answer: not an object");
        goto fail;
    }
    error = json_object_get(doc, "error");
    if (error != NULL) {
        char m[160];
        copy_clean(m, sizeof(m), json_string_value(json_object_get(error, "message")));
        snprintf(why, wlen, "ul.dump failed: %lld %s",
                 (long long)json_integer_value(json_object_get(error, "code")),
                 m[0] != '\0' ? m : "(no message)");
        goto fail;
    }
    if (status != 200) {
        snprintf(why, wlen, "HTTP %ld", status);
        goto fail;
    }
    res = json_object_get(doc, "result");
    doms = json_object_get(res, "Domains");
    if (!json_is_array(doms)) {
        snprintf(why, wlen, "bad ul.dump answer: no result.Domains list");
        goto fail;
    }
    for (size_t d = 0; d < json_array_size(doms); d++) {
        json_t *dom = json_object_get(json_array_get(doms, d), "Domain");
        const char *name = json_string_value(json_object_get(dom, "Domain"));
        json_t *aors = json_object_get(dom, "AoRs");

        if (name == NULL || strcmp(name, c->table) != 0) {
            continue;
        }
        found_table = 1;
        for (size_t a = 0; a < json_array_size(aors); a++) {
            json_t *info = json_object_get(json_array_get(aors, a), "Info");
            const char *aor = json_string_value(json_object_get(info, "AoR"));
            json_t *cts = json_object_get(info, "Contacts");
            struct kr_seen one;
            long idx = 0;

            if (aor == NULL) {
                continue;
            }
            (*naors)++;
            memset(&one, 0, sizeof(one));
            idx = find_aor(c, aor);
            for (size_t k = 0; k < json_array_size(cts); k++) {
                fold_contact(idx >= 0 ? &seen[idx] : &one,
                             json_object_get(json_array_get(cts, k), "Contact"));
            }
            if (idx >= 0) {
                seen[idx].found = 1;
                *ncontacts += seen[idx].ncontacts;
            } else {
                *ncontacts += one.ncontacts;
            }
        }
    }
    if (!found_table) {
        char t[80];
        copy_clean(t, sizeof(t), c->table);
        snprintf(why, wlen, "table \"%s\" is not in ul.dump (usrloc has no such domain)", t);
        goto fail;
    }
    *root = doc;
    return 0;
fail:
    json_decref(doc);
    return -1;
}

/* ---- reporting ---- */

static int streq_opt(const char *a, const char *b)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }
    return strcmp(a, b) == 0;
}

static void emit_link(struct wp_probe *p, struct wp_sink *out, const char *state, const char *raw)
{
    struct kr_ctx *c = p->ctx;

    if (streq_opt(c->link_state, state) && streq_opt(c->link_raw, raw)) {
        return;
    }
    wp_sink_state(out, c->link_obj, KR_LINK_GROUP, state, raw, NULL);
    c->link_state = state;
    free(c->link_raw);
    c->link_raw = wp_xstrdup(raw);
}

/* Remember what was sent for e. */
static void ext_sent(struct kr_ext *e, const char *state, const char *raw, const char *key)
{
    e->state = state;
    free(e->raw);
    e->raw = wp_xstrdup(raw);
    free(e->key);
    e->key = key != NULL ? wp_xstrdup(key) : NULL;
}

/* The state of one extension from its kr_seen; sent when it changed (or full). */
static void report_ext(struct wp_probe *p, struct wp_sink *out, struct kr_ext *e,
                       const struct kr_seen *s, int full)
{
    struct kr_ctx *c = p->ctx;
    const char *state = s->live ? "idle" : "unavailable";
    const char *raw = s->live ? "registered" : s->found ? "expired" : "not registered";
    char addr[160];
    char ua[120];
    char key[300];
    char info[KR_INFO_MAX];
    double v[2];

    key[0] = '\0';
    info[0] = '\0';
    if (s->addr != NULL || s->ua != NULL) {
        copy_clean(addr, sizeof(addr), s->addr != NULL ? s->addr : "?");
        copy_clean(ua, sizeof(ua), s->ua != NULL ? s->ua : "");
        snprintf(key, sizeof(key), "%s ua=%s", addr, ua);
        if (s->live && s->permanent) {
            snprintf(info, sizeof(info), "%s expires=permanent", key);
        } else if (s->live) {
            snprintf(info, sizeof(info), "%s expires=%llds", key, (long long)s->expires);
        } else {
            snprintf(info, sizeof(info), "%s", key);
        }
        if (s->ncontacts > 1) {
            size_t l = strlen(info);
            snprintf(info + l, sizeof(info) - l, " (+%zu more)", s->ncontacts - 1);
        }
    }
    if (full || !streq_opt(e->state, state) || !streq_opt(e->raw, raw) ||
        !streq_opt(e->key, key[0] != '\0' ? key : NULL)) {
        wp_sink_state(out, e->name, e->group != NULL ? e->group : c->group, state, raw,
                      info[0] != '\0' ? info : NULL);
        ext_sent(e, state, raw, key[0] != '\0' ? key : NULL);
    }
    v[0] = s->live ? 1.0 : 0.0;
    v[1] = s->live && !s->permanent ? (double)s->expires : NAN;
    wp_sink_metric(out, &kind_ext, e->inst, v);
}

/* The check: all registered, the missing ones, or the link down. */
static void report_check(struct wp_probe *p, struct wp_sink *out, const struct kr_seen *seen,
                         unsigned registered, const char *why)
{
    struct kr_ctx *c = p->ctx;
    char msg[2048];
    size_t l = 0;
    unsigned missing = (unsigned)c->exts.n - registered;
    unsigned named = 0;

    if (why != NULL) {
        snprintf(msg, sizeof(msg), "KAMREG CRITICAL: cannot read the registrar: %s", why);
        wp_sink_check(out, c->check, WP_CHECK_CRITICAL, msg);
        return;
    }
    l = (size_t)snprintf(msg, sizeof(msg), "KAMREG %s: %u/%zu registered (",
                         missing == 0 ? "OK" : "WARNING", registered, c->exts.n);
    for (size_t g = 0; g < c->ngroups && l < sizeof(msg); g++) {
        l += (size_t)snprintf(msg + l, sizeof(msg) - l, "%s%s %u/%u", g > 0 ? ", " : "",
                              c->groups[g].name, c->groups[g].registered, c->groups[g].expected);
    }
    if (l < sizeof(msg)) {
        l += (size_t)snprintf(msg + l, sizeof(msg) - l, ")");
    }
    for (size_t i = 0; i < c->exts.n && missing > 0 && l < sizeof(msg); i++) {
        if (seen[i].live) {
            continue;
        }
        if (named == KR_MISSING_MAX) {
            l += (size_t)snprintf(msg + l, sizeof(msg) - l, " and %u more", missing - named);
            break;
        }
        l += (size_t)snprintf(msg + l, sizeof(msg) - l, "%s%s%s",
                              named == 0 ? "; not registered: " : ", ", c->exts.v[i].name,
                              seen[i].found ? " (expired)" : "");
        named++;
    }
    wp_sink_check(out, c->check, missing == 0 ? WP_CHECK_OK : WP_CHECK_WARNING, msg);
}

/* ---- probe callbacks ---- */

static int kr_sample(struct wp_probe *p, struct wp_sink *out)
{
    struct kr_ctx *c = p->ctx;
    struct kr_run run;
    struct kr_seen *seen = wp_xcalloc(c->exts.n, sizeof(*seen));
    json_t *root = NULL;
    char req[128];
    char why[512];
    long status = 0;
    double t0 = wp_probe_mono_s();
    double took = 0;
    size_t naors = 0;
    size_t ncontacts = 0;
    unsigned registered = 0;
    int full = c->first || c->down;
    int rc = 0;
    double v[7];

    memset(&run, 0, sizeof(run));
    run.c = c;
    why[0] = '\0';
    c->rpc_id = c->rpc_id % 1000000000u + 1;
    /* byte for byte what the Kamailio filter in docs/PROBES.md lets through: keep in step */
    snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"method\":\"ul.dump\",\"id\":%u}", c->rpc_id);
    rc = rpc_call(c, &run, req, &status, why, sizeof(why));
    took = wp_probe_mono_s() - t0;
    if (rc == 0) {
        rc = parse_dump(c, run.body, run.len, status, seen, &root, &naors, &ncontacts, why,
                        sizeof(why));
    }
    for (size_t g = 0; g < c->ngroups; g++) {
        c->groups[g].registered = 0;
    }
    if (rc < 0) {
        if (run.errbuf[0] != '\0') {
            WP_PLOG(p, WP_LOG_DEBUG, "curl: %s", run.errbuf);
        }
        if (!c->down) {
            WP_PLOG(p, WP_LOG_WARN, "registrar lost: %s", why);
            for (size_t i = 0; i < c->exts.n; i++) {
                struct kr_ext *e = &c->exts.v[i];
                wp_sink_state(out, e->name, e->group != NULL ? e->group : c->group, "unknown",
                              "link lost", NULL);
                ext_sent(e, "unknown", "link lost", NULL);
            }
        }
        c->down = 1;
        emit_link(p, out, "unavailable", why);
        for (size_t i = 0; i < c->exts.n; i++) {
            double ev[2] = {NAN, NAN};
            wp_sink_metric(out, &kind_ext, c->exts.v[i].inst, ev);
        }
    } else {
        if (c->down) {
            WP_PLOG(p, WP_LOG_INFO, "registrar back: %zu AoRs in table %s", naors, c->table);
        }
        if (full) {
            c->link_state = NULL; /* the link state goes with the snapshot */
        }
        emit_link(p, out, "idle", "ok");
        for (size_t i = 0; i < c->exts.n; i++) {
            struct kr_ext *e = &c->exts.v[i];
            report_ext(p, out, e, &seen[i], full);
            if (seen[i].live) {
                registered++;
                c->groups[e->gidx].registered++;
            }
        }
        c->down = 0;
    }
    c->first = 0;

    v[0] = c->down ? 0.0 : 1.0;
    v[1] = c->down ? NAN : took;
    v[2] = c->down ? NAN : (double)run.len;
    v[3] = c->down ? NAN : (double)naors;
    v[4] = c->down ? NAN : (double)ncontacts;
    v[5] = c->down ? NAN : (double)registered;
    v[6] = (double)c->exts.n;
    wp_sink_metric(out, &kind_kr, p->instance, v);
    for (size_t g = 0; g < c->ngroups; g++) {
        double gv[2] = {c->down ? NAN : (double)c->groups[g].registered,
                        (double)c->groups[g].expected};
        wp_sink_metric(out, &kind_group, c->groups[g].inst, gv);
    }
    report_check(p, out, seen, registered, c->down ? why : NULL);
    json_decref(root); /* seen[] borrowed strings from it */
    free(seen);
    free(run.body);
    return 0;
}

static int kr_init(struct wp_probe *p)
{
    struct kr_ctx *c = p->ctx;
    const char *colon = NULL;
    int rc = 0;

    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK) {
        WP_PLOG(p, WP_LOG_ERROR, "curl_global_init failed");
        return WP_ECONFIG;
    }
    colon = strstr(c->url, "://");
    if (colon == NULL || !((colon - c->url == 4 && strncasecmp(c->url, "http", 4) == 0) ||
                           (colon - c->url == 5 && strncasecmp(c->url, "https", 5) == 0))) {
        WP_PLOG(p, WP_LOG_ERROR, "url: expected an http:// or https:// URL");
        return WP_ECONFIG;
    }
    if (!aor_ok(c->table) || strlen(c->table) > KR_NAME_MAX) {
        WP_PLOG(p, WP_LOG_ERROR, "table: expected a usrloc table name like location");
        return WP_ECONFIG;
    }
    if (c->group == NULL) {
        c->group = wp_xstrdup(p->instance);
    } else if (!wp_probe_name_ok(c->group, KR_NAME_MAX)) {
        WP_PLOG(p, WP_LOG_ERROR, "group: expected 1 to %d letters, digits, '_', '-' or '.'",
                KR_NAME_MAX);
        return WP_ECONFIG;
    }
    if ((c->user == NULL) != (c->password_file == NULL)) {
        WP_PLOG(p, WP_LOG_ERROR, "user and password_file go together");
        return WP_ECONFIG;
    }
    if (c->password_file != NULL) {
        rc = wp_probe_read_secret(p, c->password_file, c->password, sizeof(c->password));
        if (rc < 0) {
            return rc;
        }
    }
    if (c->ca != NULL && access(c->ca, R_OK) != 0) {
        rc = -errno;
        WP_PLOG(p, WP_LOG_ERROR, "cannot read ca %s: %s", c->ca, wp_strerror(rc));
        return rc;
    }
    c->by_aor = wp_xcalloc(c->exts.n, sizeof(*c->by_aor));
    for (size_t i = 0; i < c->exts.n; i++) {
        c->by_aor[i].aor = c->exts.v[i].aor;
        c->by_aor[i].idx = i;
    }
    qsort(c->by_aor, c->exts.n, sizeof(*c->by_aor), cmp_aor);
    for (size_t i = 1; i < c->exts.n; i++) {
        if (strcmp(c->by_aor[i - 1].aor, c->by_aor[i].aor) == 0) {
            WP_PLOG(p, WP_LOG_ERROR, "extensions: %s and %s have the same AoR %s",
                    c->exts.v[c->by_aor[i - 1].idx].name, c->exts.v[c->by_aor[i].idx].name,
                    c->by_aor[i].aor);
            return WP_ECONFIG;
        }
    }
    for (size_t i = 0; i < c->exts.n; i++) {
        struct kr_ext *e = &c->exts.v[i];
        const char *g = e->group != NULL ? e->group : c->group;
        size_t k = 0;

        while (k < c->ngroups && strcmp(c->groups[k].name, g) != 0) {
            k++;
        }
        if (k == c->ngroups) {
            if (c->ngroups == KR_GROUPS_MAX) {
                WP_PLOG(p, WP_LOG_ERROR, "extensions: more than %d groups", KR_GROUPS_MAX);
                return WP_ECONFIG;
            }
            c->groups = wp_xrealloc(c->groups, (c->ngroups + 1) * sizeof(*c->groups));
            c->groups[k].name = wp_xstrdup(g);
            c->groups[k].inst = wp_xasprintf("%s/%s", p->instance, g);
            c->groups[k].expected = 0;
            c->groups[k].registered = 0;
            c->ngroups++;
        }
        c->groups[k].expected++;
        e->gidx = k;
        e->inst = wp_xasprintf("%s/%s", p->instance, e->name);
    }
    c->check = wp_xasprintf("kamreg_%s", p->instance);
    c->link_obj = wp_xasprintf("kamailio:%s", p->instance);
    c->first = 1;
    if (c->timeout_ms > p->interval_ms) {
        WP_PLOG(p, WP_LOG_WARN,
                "timeout %lld ms is above the interval; a slow round skips the next",
                (long long)c->timeout_ms);
    }
    return 0;
}

static void kr_destroy(struct wp_probe *p)
{
    struct kr_ctx *c = p->ctx;

    if (c == NULL) {
        return;
    }
    memset(c->password, 0, sizeof(c->password));
    for (size_t g = 0; g < c->ngroups; g++) {
        free(c->groups[g].name);
        free(c->groups[g].inst);
    }
    free(c->groups);
    c->groups = NULL;
    c->ngroups = 0;
    free(c->by_aor);
    c->by_aor = NULL;
    free(c->check);
    c->check = NULL;
    free(c->link_obj);
    c->link_obj = NULL;
    free(c->link_raw);
    c->link_raw = NULL;
}

const struct wp_probe_ops wp_probe_kamreg = {
    .name = "kamreg",
    .summary = "Kamailio registrar (usrloc over JSON-RPC): which expected extensions are "
               "registered",
    .opts = kr_opts,
    .ctx_size = sizeof(struct kr_ctx),
    .flags = WP_PROBE_BLOCKING,
    .init = kr_init,
    .sample = kr_sample,
    .start = NULL,
    .stop = NULL,
    .destroy = kr_destroy,
    .committed = NULL,
};
