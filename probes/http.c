/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The http probe: fetch URLs with libcurl (multi) and report the status code, the total time
 * and its parts, the body size, redirects, a body regex match and the days left on the TLS
 * certificate, as one row and one check result per target.
 *
 * Config:
 *   - kind: http
 *     interval: 60s
 *     targets:
 *       - {name: login, url: "https://app.example/login", expect_status: [200],
 *          body_regex: "name=\"password\"", timeout: 10s, follow_redirects: true,
 *          max_redirects: 5, ca: /etc/watchpost/app-ca.crt, insecure: false,
 *          user: u, password: p,  (or bearer: TOKEN), method: GET, headers: {X-Probe: "1"},
 *          warn_days: 14, crit_days: 3}
 * Targets are checked at config load (file:line:col errors): name [A-Za-z0-9_.-]{1,64} and
 * unique, an http:// or https:// URL, a regex that compiles, expect_status items NNN or Nxx.
 *
 * Series group "http", instance <target name>, gauges:
 *   status_code        the final response's status (NaN when no response came)
 *   time_total_s       the whole operation, redirects included
 *   time_dns_s         name resolution
 *   time_connect_s     TCP connect (after resolution)
 *   time_tls_s         TLS handshake (after connect; NaN for plain http)
 *   time_first_byte_s  from the end of connect/handshake to the first response byte
 *   size_bytes         body bytes of the final response
 *   redirects          redirects followed
 *   cert_days_left     days until the leaf certificate expires (NaN for http)
 *   body_match         1/0 when body_regex is set, NaN otherwise
 * The parts are deltas of curl's cumulative CURLINFO_*_TIME_T values. curl adds each
 * redirect hop's times into those values, so with redirects the parts are sums over the
 * hops (a chain mixing http and https can make time_tls_s only approximate; it is clamped
 * at 0). A part that was never reached (connection refused, timeout) is NaN.
 *
 * Check "http_<name>": CRITICAL when the transfer fails (connect error, TLS error, timeout),
 * the status is not expected or the body does not match; else WARNING/CRITICAL when the
 * certificate expires in less than warn_days/crit_days; else OK. Output is Nagios-like:
 * "HTTP OK: 200 in 0.012 s, 1532 bytes", "HTTP CRITICAL: timed out after 2 s".
 *
 * Why a blocking sample and not curl on the agent's uv loop: the sink is only valid during
 * sample(), and a round's rows belong to that round's batch. Running one private curl multi
 * handle inside sample(), on the thread pool (WP_PROBE_BLOCKING), keeps every transfer of a
 * round inside one call, concurrent with each other, bounded by the largest target timeout,
 * with no curl sockets or timers on the loop and no state shared with it. The price is one
 * pool thread busy for at most that timeout per round; the scheduler skips a round while the
 * previous one still runs. Connections are fresh every round (no reuse), so the connect and
 * TLS times and the certificate are measured each time.
 *
 * The body kept for the regex is capped at HTTP_BODY_MAX bytes (the rest is read and
 * counted, not kept). Passwords and tokens go to curl only; they are never logged, and URLs
 * are not logged either (they may carry user:password@).
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "probe.h"
#include "wp/clock.h"
#include "wp/err.h"
#include "wp/mem.h"

#define HTTP_BODY_MAX   (1u << 20) /* body bytes kept for the regex */
#define HTTP_NAME_MAX   64
#define HTTP_EXPECT_MAX 32
#define HTTP_SLACK_MS   2000 /* the sample's own deadline past the largest curl timeout */

enum { HTTP_GET = 0, HTTP_HEAD = 1 };

/* A status range lo..hi (200..200 for "200", 200..299 for "2xx"). */
struct http_expect {
    int lo, hi;
};

/* One target: options decoded with target_opts, then what the decoder and init derive. */
struct http_target {
    char *name;
    char *url;
    struct wp_strlist expect_status;
    char *body_regex;
    int64_t timeout_ms;
    int follow_redirects;
    int64_t max_redirects;
    char *ca;
    int insecure;
    char *user;
    char *password;
    char *bearer;
    int method;
    struct wp_strlist headers; /* k, v, k, v */
    int64_t warn_days;
    int64_t crit_days;

    char *check;       /* "http_<name>" */
    char *expect_text; /* "200", "2xx,301": for messages */
    struct http_expect expect[HTTP_EXPECT_MAX];
    size_t nexpect;
    pcre2_code *re;          /* compiled by the decoder */
    pcre2_match_data *md;    /* init */
    struct curl_slist *hdrs; /* init: "K: v" lines */
};

struct http_targets {
    struct http_target *v;
    size_t n;
};

struct http_ctx {
    struct http_targets targets; /* decoded by decode_targets (the registry frees it) */
};

/* One transfer of a sample. */
struct http_run {
    struct http_target *t;
    CURL *easy;
    int added; /* in the multi handle */
    int done;
    CURLcode res;
    char errbuf[CURL_ERROR_SIZE];
    char *body; /* the final response's body, at most HTTP_BODY_MAX bytes */
    size_t len, cap;
};

static int decode_targets(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                          const void *arg, struct wp_conf_err *err);
static int target_check(struct wp_conf_doc *doc, struct wp_conf_node *it, const char *path,
                        void *item, struct wp_conf_err *err);
static void free_target(void *item);

static const char *const method_names[] = {"GET", "HEAD", NULL};

#define TO(f) offsetof(struct http_target, f)

static const struct wp_opt target_opts[] = {
    {.name = "name",
     .type = WP_OPT_STR,
     .help = "target name: the series instance and the check http_<name>",
     .offset = TO(name),
     .required = 1},
    {.name = "url",
     .type = WP_OPT_STR,
     .help = "http:// or https:// URL",
     .offset = TO(url),
     .required = 1},
    {.name = "expect_status",
     .type = WP_OPT_STRLIST,
     .def = "2xx",
     .help = "status codes that are OK: numbers or classes like 2xx",
     .offset = TO(expect_status)},
    {.name = "body_regex",
     .type = WP_OPT_STR,
     .help = "PCRE2 regex the body (its first 1 MiB) must match",
     .offset = TO(body_regex)},
    {.name = "timeout",
     .type = WP_OPT_DURATION,
     .def = "10s",
     .help = "limit for the whole transfer, redirects included",
     .offset = TO(timeout_ms),
     .min = 100,
     .max = 300000},
    {.name = "follow_redirects",
     .type = WP_OPT_BOOL,
     .def = "false",
     .help = "follow Location: redirects",
     .offset = TO(follow_redirects)},
    {.name = "max_redirects",
     .type = WP_OPT_INT,
     .def = "5",
     .help = "redirects followed at most",
     .offset = TO(max_redirects),
     .min = 0,
     .max = 50},
    {.name = "ca",
     .type = WP_OPT_STR,
     .help = "PEM file of the CA(s) to trust instead of the system's",
     .offset = TO(ca)},
    {.name = "insecure",
     .type = WP_OPT_BOOL,
     .def = "false",
     .help = "do not verify the server certificate (its expiry is still reported)",
     .offset = TO(insecure)},
    {.name = "user", .type = WP_OPT_STR, .help = "basic auth user name", .offset = TO(user)},
    {.name = "password",
     .type = WP_OPT_STR,
     .help = "basic auth password (never logged)",
     .offset = TO(password)},
    {.name = "bearer",
     .type = WP_OPT_STR,
     .help = "bearer token (never logged)",
     .offset = TO(bearer)},
    {.name = "method",
     .type = WP_OPT_ENUM,
     .def = "GET",
     .help = "GET or HEAD",
     .offset = TO(method),
     .enum_names = method_names},
    {.name = "headers",
     .type = WP_OPT_STRMAP,
     .help = "extra request headers {Name: value}",
     .offset = TO(headers)},
    {.name = "warn_days",
     .type = WP_OPT_INT,
     .def = "14",
     .help = "WARNING when the certificate expires in fewer days",
     .offset = TO(warn_days),
     .min = 0,
     .max = 36500},
    {.name = "crit_days",
     .type = WP_OPT_INT,
     .def = "3",
     .help = "CRITICAL when the certificate expires in fewer days",
     .offset = TO(crit_days),
     .min = 0,
     .max = 36500},
    WP_OPT_TABLE_END,
};

static const struct wp_probe_targets_spec targets_spec = {
    .example = "[{name: web, url: \"https://example.org/\"}]",
    .opts = target_opts,
    .size = sizeof(struct http_target),
    .name_off = TO(name),
    .name_max = HTTP_NAME_MAX,
    .check = target_check,
    .item_free = free_target,
};

static const struct wp_opt http_opts[] = {
    {.name = "targets",
     .type = WP_OPT_CUSTOM,
     .help = "URLs to fetch: [{name, url, expect_status, body_regex, timeout, ...}]",
     .offset = offsetof(struct http_ctx, targets),
     .required = 1,
     .custom = decode_targets,
     .custom_free = wp_probe_targets_free,
     .arg = &targets_spec},
    WP_OPT_TABLE_END,
};

static const char *const http_fields[] = {
    "status_code",       "time_total_s", "time_dns_s", "time_connect_s", "time_tls_s",
    "time_first_byte_s", "size_bytes",   "redirects",  "cert_days_left", "body_match"};

enum {
    F_STATUS = 0,
    F_TOTAL,
    F_DNS,
    F_CONNECT,
    F_TLS,
    F_FIRST_BYTE,
    F_SIZE,
    F_REDIRECTS,
    F_CERT_DAYS,
    F_BODY_MATCH,
    F_COUNT
};

static const struct wp_series_kind kind_http = {"http", http_fields, F_COUNT, WP_DS_GAUGE};

/* ---- libcurl global state ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_init_once(void)
{
    /* never cleaned up: the agent keeps probes until it exits */
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int http_global_init(void)
{
    pthread_once(&curl_once, curl_init_once);
    return curl_init_rc == CURLE_OK ? 0 : WP_ECONFIG;
}

/* ---- config ---- */

/* "200" or "2xx" into a range; 0 or -1. */
static int parse_expect(const char *s, struct http_expect *e)
{
    if (strlen(s) != 3 || s[0] < '1' || s[0] > '5') {
        return -1;
    }
    if ((s[1] == 'x' || s[1] == 'X') && (s[2] == 'x' || s[2] == 'X')) {
        e->lo = (s[0] - '0') * 100;
        e->hi = e->lo + 99;
        return 0;
    }
    if (s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9') {
        return -1;
    }
    e->lo = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
    e->hi = e->lo;
    return 0;
}

/* The node of key in the target mapping, or the mapping itself (for error positions). */
/* Accept only http and https URLs that curl can parse. The URL is not echoed in messages:
 * it may carry a password. */
static int check_url(struct wp_conf_doc *doc, struct wp_conf_node *it, const char *path,
                     const char *url, struct wp_conf_err *err)
{
    CURLU *u = curl_url();
    char *scheme = NULL;
    char *host = NULL;
    int rc = 0;
    const char *colon = strstr(url, "://");

    if (u == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    if (colon == NULL) {
        rc = wp_conf_errorf(doc, wp_probe_at_key(doc, it, "url"), err,
                            "%s.url: expected an http:// or https:// URL", path);
        goto out;
    }
    if (!((colon - url == 4 && strncasecmp(url, "http", 4) == 0) ||
          (colon - url == 5 && strncasecmp(url, "https", 5) == 0))) {
        rc = wp_conf_errorf(doc, wp_probe_at_key(doc, it, "url"), err,
                            "%s.url: expected an http:// or https:// URL, got scheme \"%.*s\"",
                            path, (int)(colon - url > 16 ? 16 : colon - url), url);
        goto out;
    }
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0') {
        rc = wp_conf_errorf(doc, wp_probe_at_key(doc, it, "url"), err,
                            "%s.url: not a valid URL (expected http://host[:port]/path)", path);
        goto out;
    }
out:
    curl_free(scheme);
    curl_free(host);
    if (u != NULL) {
        curl_url_cleanup(u);
    }
    return rc;
}

/* Check one decoded target and derive what does not need curl to run. */
static int target_check(struct wp_conf_doc *doc, struct wp_conf_node *it, const char *path,
                        void *item, struct wp_conf_err *err)
{
    struct http_target *t = item;
    int rc = 0;
    size_t tl = 0;

    rc = check_url(doc, it, path, t->url, err);
    if (rc < 0) {
        return rc;
    }
    if (t->expect_status.n == 0 || t->expect_status.n > HTTP_EXPECT_MAX) {
        return wp_conf_errorf(doc, wp_probe_at_key(doc, it, "expect_status"), err,
                              "%s.expect_status: expected 1 to %d codes like [200, 3xx]", path,
                              HTTP_EXPECT_MAX);
    }
    for (size_t i = 0; i < t->expect_status.n; i++) {
        if (parse_expect(t->expect_status.v[i], &t->expect[i]) < 0) {
            return wp_conf_errorf(doc, wp_probe_at_key(doc, it, "expect_status"), err,
                                  "%s.expect_status: expected status codes like 200 or 2xx, got "
                                  "\"%s\"",
                                  path, t->expect_status.v[i]);
        }
        tl += strlen(t->expect_status.v[i]) + 1;
    }
    t->nexpect = t->expect_status.n;
    t->expect_text = wp_xcalloc(1, tl + 1);
    for (size_t i = 0; i < t->expect_status.n; i++) {
        if (i > 0) {
            strcat(t->expect_text, ",");
        }
        strcat(t->expect_text, t->expect_status.v[i]);
    }
    if (t->bearer != NULL && (t->user != NULL || t->password != NULL)) {
        return wp_conf_errorf(doc, wp_probe_at_key(doc, it, "bearer"), err,
                              "%s.bearer: use either bearer or user/password, not both", path);
    }
    if (t->password != NULL && t->user == NULL) {
        return wp_conf_errorf(doc, wp_probe_at_key(doc, it, "password"), err, "%s.password: needs user",
                              path);
    }
    if (t->method == HTTP_HEAD && t->body_regex != NULL) {
        return wp_conf_errorf(doc, wp_probe_at_key(doc, it, "body_regex"), err,
                              "%s.body_regex: a HEAD request has no body (use method: GET)", path);
    }
    for (size_t i = 0; i + 1 < t->headers.n; i += 2) {
        const char *k = t->headers.v[i];
        const char *v = t->headers.v[i + 1];
        if (k[0] == '\0' || strpbrk(k, ": \t\r\n") != NULL || strpbrk(v, "\r\n") != NULL) {
            return wp_conf_errorf(doc, wp_probe_at_key(doc, it, "headers"), err,
                                  "%s.headers: bad header \"%s\" (a name without ':' or blanks, "
                                  "a value on one line)",
                                  path, k);
        }
    }
    if (t->ca != NULL && t->insecure) {
        return wp_conf_errorf(doc, wp_probe_at_key(doc, it, "insecure"), err,
                              "%s.insecure: ca and insecure: true exclude each other", path);
    }
    if (t->body_regex != NULL) {
        int ecode = 0;
        PCRE2_SIZE eoff = 0;
        t->re =
            pcre2_compile((PCRE2_SPTR)t->body_regex, PCRE2_ZERO_TERMINATED, 0, &ecode, &eoff, NULL);
        if (t->re == NULL) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(ecode, msg, sizeof(msg));
            return wp_conf_errorf(doc, wp_probe_at_key(doc, it, "body_regex"), err,
                                  "%s.body_regex: %s at offset %zu", path, (const char *)msg,
                                  (size_t)eoff);
        }
    }
    t->check = wp_xasprintf("http_%s", t->name);
    return 0;
}

static void free_target(void *item)
{
    struct http_target *t = item;

    /* wipe secrets before they go back to the allocator */
    if (t->password != NULL) {
        memset(t->password, 0, strlen(t->password));
    }
    if (t->bearer != NULL) {
        memset(t->bearer, 0, strlen(t->bearer));
    }
    free(t->check);
    free(t->expect_text);
    pcre2_match_data_free(t->md);
    pcre2_code_free(t->re);
    curl_slist_free_all(t->hdrs);
}

static int decode_targets(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                          const void *arg, struct wp_conf_err *err)
{
    if (http_global_init() < 0) {
        return wp_conf_errorf(doc, node, err, "targets: libcurl failed to initialise");
    }
    return wp_probe_targets_decode(doc, node, field, arg, err);
}

/* ---- one transfer ---- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct http_run *r = arg;
    size_t len = size * nmemb;
    size_t take = len;

    if (r->len + take > HTTP_BODY_MAX) {
        take = HTTP_BODY_MAX - r->len;
    }
    if (take > 0) {
        if (r->len + take > r->cap) {
            size_t cap = r->cap != 0 ? r->cap : 16384;
            while (cap < r->len + take) {
                cap *= 2;
            }
            if (cap > HTTP_BODY_MAX) {
                cap = HTTP_BODY_MAX;
            }
            r->body = wp_xrealloc(r->body, cap);
            r->cap = cap;
        }
        memcpy(r->body + r->len, data, take);
        r->len += take;
    }
    return len; /* the rest is read and counted by curl, not kept */
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    struct http_run *r = arg;
    size_t len = size * nmemb;

    /* a new status line: a redirect or a 1xx came before; keep only the last body */
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        r->len = 0;
    }
    return len;
}

#define SETOPT(e, opt, val)                                    \
    do {                                                       \
        if (curl_easy_setopt((e), (opt), (val)) != CURLE_OK) { \
            goto fail;                                         \
        }                                                      \
    } while (0)

/* A configured easy handle for r, or NULL (logged). */
static CURL *easy_new(struct wp_probe *p, struct http_run *r)
{
    const struct http_target *t = r->t;
    CURL *e = curl_easy_init();

    if (e == NULL) {
        WP_PLOG(p, WP_LOG_WARN, "%s: curl_easy_init failed", t->name);
        return NULL;
    }
    SETOPT(e, CURLOPT_URL, t->url);
    SETOPT(e, CURLOPT_PRIVATE, (void *)r);
    SETOPT(e, CURLOPT_ERRORBUFFER, r->errbuf);
    SETOPT(e, CURLOPT_NOSIGNAL, 1L); /* a threaded agent: no SIGALRM for DNS timeouts */
#if LIBCURL_VERSION_NUM >= 0x075500
    SETOPT(e, CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    SETOPT(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    SETOPT(e, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SETOPT(e, CURLOPT_TIMEOUT_MS, (long)t->timeout_ms);
    SETOPT(e, CURLOPT_CONNECTTIMEOUT_MS, (long)t->timeout_ms);
    SETOPT(e, CURLOPT_FRESH_CONNECT, 1L);
    SETOPT(e, CURLOPT_FORBID_REUSE, 1L);
    SETOPT(e, CURLOPT_USERAGENT, "watchpost-agent/" WP_VERSION);
    SETOPT(e, CURLOPT_FOLLOWLOCATION, t->follow_redirects ? 1L : 0L);
    SETOPT(e, CURLOPT_MAXREDIRS, (long)t->max_redirects);
    SETOPT(e, CURLOPT_CERTINFO, 1L);
    SETOPT(e, CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(e, CURLOPT_WRITEDATA, (void *)r);
    SETOPT(e, CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(e, CURLOPT_HEADERDATA, (void *)r);
    if (t->method == HTTP_HEAD) {
        SETOPT(e, CURLOPT_NOBODY, 1L);
    }
    if (t->ca != NULL) {
        SETOPT(e, CURLOPT_CAINFO, t->ca);
        SETOPT(e, CURLOPT_CAPATH, (char *)NULL); /* trust only ca, not the system's too */
    }
    if (t->insecure) {
        SETOPT(e, CURLOPT_SSL_VERIFYPEER, 0L);
        SETOPT(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (t->user != NULL) {
        SETOPT(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        SETOPT(e, CURLOPT_USERNAME, t->user);
        SETOPT(e, CURLOPT_PASSWORD, t->password != NULL ? t->password : "");
    } else if (t->bearer != NULL) {
        SETOPT(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
        SETOPT(e, CURLOPT_XOAUTH2_BEARER, t->bearer);
    }
    if (t->hdrs != NULL) {
        SETOPT(e, CURLOPT_HTTPHEADER, t->hdrs);
    }
    return e;
fail:
    WP_PLOG(p, WP_LOG_WARN, "%s: curl_easy_setopt failed (libcurl too old?)", t->name);
    curl_easy_cleanup(e);
    return NULL;
}

/* Seconds from a curl microsecond value; NaN when curl never got there (0). */
static double us_to_s(curl_off_t us)
{
    return us > 0 ? (double)us / 1e6 : NAN;
}

/* b - a in seconds, clamped at 0; NaN when b was never reached. */
static double part_s(curl_off_t b, curl_off_t a)
{
    if (b <= 0) {
        return NAN;
    }
    return b > a ? (double)(b - a) / 1e6 : 0.0;
}

/* Parse a certinfo "Expire date": OpenSSL's "Mar  3 12:00:00 2031 GMT" (maybe with
 * fractional seconds) or the GnuTLS/x509asn1 form "2031-03-03 12:00:00 GMT". */
static int parse_expire(const char *s, int64_t *out)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    struct tm tm;
    char mon[4] = "";
    int y = 0, mo = 0, d = 0, hh = 0, mm = 0, ss = 0, pos = 0;
    const char *m = NULL;
    time_t tt = 0;

    memset(&tm, 0, sizeof(tm));
    while (*s == ' ') {
        s++;
    }
    if (sscanf(s, "%d-%d-%d %d:%d:%d", &y, &mo, &d, &hh, &mm, &ss) == 6) {
        tm.tm_mon = mo - 1;
    } else if (sscanf(s, "%3s %d %d:%d:%d%n", mon, &d, &hh, &mm, &ss, &pos) == 5) {
        const char *q = s + pos;
        while (*q == '.' || (*q >= '0' && *q <= '9')) {
            q++;
        }
        if (strlen(mon) != 3 || sscanf(q, "%d", &y) != 1) {
            return -1;
        }
        m = strstr(months, mon);
        if (m == NULL || (m - months) % 3 != 0) {
            return -1;
        }
        tm.tm_mon = (int)((m - months) / 3);
    } else {
        return -1;
    }
    if (y < 1970 || tm.tm_mon < 0 || tm.tm_mon > 11 || d < 1 || d > 31) {
        return -1;
    }
    tm.tm_year = y - 1900;
    tm.tm_mday = d;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_sec = ss;
    tt = timegm(&tm);
    if (tt == (time_t)-1) {
        return -1;
    }
    *out = (int64_t)tt;
    return 0;
}

/* Days until the leaf certificate of the last connection expires, or NaN. */
static double cert_days_left(CURL *e)
{
    struct curl_certinfo *ci = NULL;
    int64_t exp_s = 0;

    if (curl_easy_getinfo(e, CURLINFO_CERTINFO, &ci) != CURLE_OK || ci == NULL ||
        ci->num_of_certs < 1) {
        return NAN;
    }
    for (struct curl_slist *s = ci->certinfo[0]; s != NULL; s = s->next) {
        if (strncmp(s->data, "Expire date:", 12) == 0 && parse_expire(s->data + 12, &exp_s) == 0) {
            return ((double)exp_s * 1000.0 - (double)wp_clock_now_ms()) / 86400000.0;
        }
    }
    return NAN;
}

static int status_expected(const struct http_target *t, long code)
{
    for (size_t i = 0; i < t->nexpect; i++) {
        if (code >= t->expect[i].lo && code <= t->expect[i].hi) {
            return 1;
        }
    }
    return 0;
}

/* Emit the row and the check of a finished (or abandoned) transfer. */
static void report(struct wp_probe *p, struct http_run *r, struct wp_sink *out)
{
    const struct http_target *t = r->t;
    double v[F_COUNT];
    char msg[640];
    char sum[96];
    unsigned st = WP_CHECK_OK;
    long code = 0;
    long nredir = 0;
    curl_off_t dns = 0, conn = 0, app = 0, start = 0, total = 0, size = 0;

    for (int i = 0; i < F_COUNT; i++) {
        v[i] = NAN;
    }
    if (r->easy != NULL) {
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_getinfo(r->easy, CURLINFO_REDIRECT_COUNT, &nredir);
        curl_easy_getinfo(r->easy, CURLINFO_NAMELOOKUP_TIME_T, &dns);
        curl_easy_getinfo(r->easy, CURLINFO_CONNECT_TIME_T, &conn);
        curl_easy_getinfo(r->easy, CURLINFO_APPCONNECT_TIME_T, &app);
        curl_easy_getinfo(r->easy, CURLINFO_STARTTRANSFER_TIME_T, &start);
        curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME_T, &total);
        curl_easy_getinfo(r->easy, CURLINFO_SIZE_DOWNLOAD_T, &size);
        v[F_TOTAL] = us_to_s(total);
        v[F_DNS] = us_to_s(dns);
        v[F_CONNECT] = part_s(conn, dns);
        v[F_TLS] = app > 0 ? part_s(app, conn) : NAN;
        v[F_FIRST_BYTE] = part_s(start, app > 0 ? app : conn);
        v[F_REDIRECTS] = (double)nredir;
        v[F_CERT_DAYS] = cert_days_left(r->easy);
    }
    if (!r->added) {
        snprintf(msg, sizeof(msg), "HTTP UNKNOWN: cannot set up the transfer (see the log)");
        st = WP_CHECK_UNKNOWN;
        goto emit;
    }
    if (r->res != CURLE_OK) {
        if (r->res == CURLE_OPERATION_TIMEDOUT) {
            snprintf(msg, sizeof(msg), "HTTP CRITICAL: timed out after %g s",
                     (double)t->timeout_ms / 1000.0);
        } else {
            snprintf(msg, sizeof(msg), "HTTP CRITICAL: %s",
                     r->errbuf[0] != '\0' ? r->errbuf : curl_easy_strerror(r->res));
        }
        st = WP_CHECK_CRITICAL;
        goto emit;
    }
    v[F_STATUS] = code > 0 ? (double)code : NAN;
    v[F_SIZE] = (double)size;
    if (isnan(v[F_TOTAL])) {
        v[F_TOTAL] = 0.0;
    }
    snprintf(sum, sizeof(sum), "%ld in %.3f s, %lld bytes", code, v[F_TOTAL], (long long)size);
    if (t->re != NULL) {
        int m = pcre2_match(t->re, (PCRE2_SPTR)(r->body != NULL ? r->body : ""), r->len, 0, 0,
                            t->md, NULL);
        if (m >= 0) {
            v[F_BODY_MATCH] = 1.0;
        } else if (m == PCRE2_ERROR_NOMATCH) {
            v[F_BODY_MATCH] = 0.0;
        } else {
            PCRE2_UCHAR em[120];
            pcre2_get_error_message(m, em, sizeof(em));
            snprintf(msg, sizeof(msg), "HTTP UNKNOWN: body_regex failed: %s (%s)", (const char *)em,
                     sum);
            st = WP_CHECK_UNKNOWN;
        }
    }
    if (!status_expected(t, code)) {
        snprintf(msg, sizeof(msg), "HTTP CRITICAL: %s, expected %s", sum, t->expect_text);
        st = WP_CHECK_CRITICAL;
    } else if (st == WP_CHECK_UNKNOWN) {
        /* msg set above */
    } else if (v[F_BODY_MATCH] == 0.0) {
        snprintf(msg, sizeof(msg), "HTTP CRITICAL: body does not match %s (%s)", t->body_regex,
                 sum);
        st = WP_CHECK_CRITICAL;
    } else if (!isnan(v[F_CERT_DAYS]) && v[F_CERT_DAYS] < (double)t->warn_days) {
        st = v[F_CERT_DAYS] < (double)t->crit_days ? WP_CHECK_CRITICAL : WP_CHECK_WARNING;
        snprintf(msg, sizeof(msg), "HTTP %s: certificate expires in %.1f days (%s)",
                 st == WP_CHECK_CRITICAL ? "CRITICAL" : "WARNING", v[F_CERT_DAYS], sum);
    } else if (!isnan(v[F_CERT_DAYS])) {
        snprintf(msg, sizeof(msg), "HTTP OK: %s, certificate expires in %.0f days", sum,
                 floor(v[F_CERT_DAYS]));
    } else {
        snprintf(msg, sizeof(msg), "HTTP OK: %s", sum);
    }
emit:
    WP_PLOG(p, WP_LOG_DEBUG, "%s: status=%u %s", t->name, st, msg);
    wp_sink_metric(out, &kind_http, t->name, v);
    wp_sink_check(out, t->check, st, msg);
}

/* Mark the transfers curl finished. */
static void collect(CURLM *m)
{
    CURLMsg *msg = NULL;
    int left = 0;

    for (;;) {
        char *priv = NULL;
        struct http_run *r = NULL;
        msg = curl_multi_info_read(m, &left);
        if (msg == NULL) {
            break;
        }
        if (msg->msg != CURLMSG_DONE ||
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv) != CURLE_OK) {
            continue;
        }
        r = (struct http_run *)(void *)priv;
        if (r != NULL && !r->done) {
            r->done = 1;
            r->res = msg->data.result;
        }
    }
}

/* ---- probe callbacks ---- */

static int http_sample(struct wp_probe *p, struct wp_sink *out)
{
    struct http_ctx *c = p->ctx;
    size_t n = c->targets.n;
    struct http_run *runs = wp_xcalloc(n, sizeof(*runs));
    CURLM *m = curl_multi_init();
    int64_t max_ms = 0;
    int64_t deadline = 0;
    int running = 0;
    int rc = 0;

    if (m == NULL) {
        WP_PLOG(p, WP_LOG_WARN, "curl_multi_init failed");
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        struct http_run *r = &runs[i];
        r->t = &c->targets.v[i];
        r->res = CURLE_FAILED_INIT;
        if (r->t->timeout_ms > max_ms) {
            max_ms = r->t->timeout_ms;
        }
        r->easy = easy_new(p, r);
        if (r->easy == NULL) {
            r->done = 1;
            continue;
        }
        if (curl_multi_add_handle(m, r->easy) != CURLM_OK) {
            WP_PLOG(p, WP_LOG_WARN, "%s: curl_multi_add_handle failed", r->t->name);
            r->done = 1;
            continue;
        }
        r->added = 1;
    }
    /* curl enforces each target's timeout; this deadline only guards against a stuck loop */
    deadline = wp_clock_mono_ms() + max_ms + HTTP_SLACK_MS;
    for (;;) {
        CURLMcode mc = curl_multi_perform(m, &running);
        if (mc != CURLM_OK) {
            WP_PLOG(p, WP_LOG_WARN, "curl_multi_perform: %s", curl_multi_strerror(mc));
            break;
        }
        collect(m);
        if (running == 0 || wp_clock_mono_ms() >= deadline) {
            break;
        }
        mc = curl_multi_poll(m, NULL, 0, 250, NULL);
        if (mc != CURLM_OK) {
            WP_PLOG(p, WP_LOG_WARN, "curl_multi_poll: %s", curl_multi_strerror(mc));
            break;
        }
    }
    collect(m);
    for (size_t i = 0; i < n; i++) {
        if (!runs[i].done) {
            runs[i].res = CURLE_OPERATION_TIMEDOUT;
        }
        report(p, &runs[i], out);
    }
out:
    for (size_t i = 0; i < n; i++) {
        if (runs[i].added) {
            curl_multi_remove_handle(m, runs[i].easy);
        }
        if (runs[i].easy != NULL) {
            curl_easy_cleanup(runs[i].easy);
        }
        free(runs[i].body);
    }
    if (m != NULL) {
        curl_multi_cleanup(m);
    }
    free(runs);
    return rc;
}

static int http_init(struct wp_probe *p)
{
    struct http_ctx *c = p->ctx;
    int rc = http_global_init();

    if (rc < 0) {
        WP_PLOG(p, WP_LOG_ERROR, "curl_global_init failed");
        return rc;
    }
    for (size_t i = 0; i < c->targets.n; i++) {
        struct http_target *t = &c->targets.v[i];
        if (t->re != NULL) {
            /* JIT when the library has it; the interpreter otherwise */
            (void)pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE);
            t->md = pcre2_match_data_create_from_pattern(t->re, NULL);
            if (t->md == NULL) {
                return -ENOMEM;
            }
        }
        for (size_t k = 0; k + 1 < t->headers.n; k += 2) {
            char *line = wp_xasprintf("%s: %s", t->headers.v[k], t->headers.v[k + 1]);
            struct curl_slist *h = curl_slist_append(t->hdrs, line);
            free(line);
            if (h == NULL) {
                return -ENOMEM;
            }
            t->hdrs = h;
        }
        if (t->ca != NULL && access(t->ca, R_OK) != 0) {
            rc = -errno;
            WP_PLOG(p, WP_LOG_ERROR, "%s: cannot read ca %s: %s", t->name, t->ca, wp_strerror(rc));
            return rc;
        }
        if (t->timeout_ms > p->interval_ms) {
            WP_PLOG(p, WP_LOG_WARN,
                    "%s: timeout %lld ms is above the interval; a slow round skips the next",
                    t->name, (long long)t->timeout_ms);
        }
    }
    return 0;
}

static void http_destroy(struct wp_probe *p)
{
    (void)p; /* everything lives in the targets, freed with the options */
}

const struct wp_probe_ops wp_probe_http = {
    .name = "http",
    .summary = "HTTP(S) status, timings, body regex and certificate expiry of URLs",
    .opts = http_opts,
    .ctx_size = sizeof(struct http_ctx),
    .flags = WP_PROBE_BLOCKING,
    .init = http_init,
    .sample = http_sample,
    .start = NULL,
    .stop = NULL,
    .destroy = http_destroy,
    .committed = NULL,
};
