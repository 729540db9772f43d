/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Incident mail: renders one incident event as an RFC 5322 + MIME message (CRLF, UTF-8),
 * threaded per incident, in English or Simplified Chinese, byte-identical for the same input.
 *
 * Threading: the open event is <inc-ID.0@domain>, the thread root; every later event is
 * <inc-ID.SEQ@domain> with In-Reply-To and References naming the root. The subject keeps
 * "[INC-ID] P<prio> <summary>" and adds a short event suffix; it is sent as RFC 2047
 * encoded-words (base64, at most 75 characters each, never splitting a UTF-8 sequence) when it
 * is not plain ASCII. The body is multipart/alternative: text/plain then text/html, both
 * base64 with 76-character lines, the boundary derived from the event id.
 *
 * Sending with libcurl (7.88.1, OpenSSL flavour), as tests/harness/mailsend.c does against
 * exim 4.96 in tests/integration/test_mail_smtp.sh; the same options on an easy handle added
 * to the delivery worker's multi handle:
 *   CURLOPT_URL            "smtp://host:port/<ehlo-name>" (plain, or STARTTLS on 25/587);
 *                          "smtps://host:465/<ehlo-name>" for implicit TLS (not tested here).
 *                          The path is the EHLO name; without it libcurl sends its default.
 *   CURLOPT_PROTOCOLS_STR  "smtp,smtps"
 *   CURLOPT_MAIL_FROM      "<noc@example.com>": the bare envelope address in angle brackets
 *   CURLOPT_MAIL_RCPT      curl_slist of "<rcpt@example.com>", one per recipient
 *   CURLOPT_UPLOAD 1L, CURLOPT_READFUNCTION + CURLOPT_READDATA over the rendered bytes,
 *   CURLOPT_INFILESIZE_LARGE the rendered length. The bytes already end lines with CRLF: do
 *                          not set CURLOPT_CRLF. libcurl dot-stuffs and ends with CRLF.CRLF.
 *   CURLOPT_USE_SSL        (long)CURLUSESSL_ALL: STARTTLS required (CURLE_USE_SSL_FAILED when
 *                          the server does not offer it); CURLOPT_CAINFO for a private CA.
 *                          The certificate must name the URL's host: for a name that does
 *                          not resolve, CURLOPT_RESOLVE "name:port:addr".
 *   CURLOPT_USERNAME, CURLOPT_PASSWORD  SMTP AUTH; CURLOPT_LOGIN_OPTIONS "AUTH=PLAIN" picks
 *                          the mechanism (servers often offer AUTH only after STARTTLS)
 *   CURLOPT_ERRORBUFFER, CURLOPT_CONNECTTIMEOUT_MS, CURLOPT_TIMEOUT_MS, CURLOPT_NOSIGNAL 1L
 * After the transfer CURLINFO_RESPONSE_CODE is the last SMTP reply: 250 when sent; a refused
 * recipient ends the transfer with CURLE_SEND_ERROR and its code (451: retry, 550: dead
 * letter), unless CURLOPT_MAIL_RCPT_ALLOWFAILS is set; a refused login gives
 * CURLE_LOGIN_DENIED and 535 (a dead letter until the configuration changes).
 */
#include "notify.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "wp/buf.h"
#include "wp/mem.h"

#define SUMMARY_MAX 200 /* bytes of summary in the subject */
#define VALUES_MAX  64  /* rows of the values table */
#define VALUE_MAX   200 /* bytes of one rendered value */
#define EW_CHUNK    39  /* input bytes per encoded-word: 52 base64 chars, a 64-char word */
#define HDR_FOLD    78  /* fold ASCII header lines before this */
#define B64_LINE    76

int notify_lang_parse(const char *s, enum notify_lang *out)
{
    static const char *const zh[] = {"zh", "zh-cn", "zh_cn", "zh-hans", "zh-hans-cn", NULL};

    if (s == NULL || out == NULL) {
        return -EINVAL;
    }
    if (strcasecmp(s, "en") == 0 || strncasecmp(s, "en-", 3) == 0 ||
        strncasecmp(s, "en_", 3) == 0) {
        *out = NOTIFY_EN;
        return 0;
    }
    for (size_t i = 0; zh[i] != NULL; i++) {
        if (strcasecmp(s, zh[i]) == 0) {
            *out = NOTIFY_ZH;
            return 0;
        }
    }
    return -EINVAL;
}

/* ---- small output helpers ------------------------------------------------------------------ */

static void put(struct wp_buf *b, const char *s)
{
    wp_buf_append(b, s, strlen(s));
}

static void putn(struct wp_buf *b, const char *s, size_t n)
{
    wp_buf_append(b, s, n);
}

__attribute__((format(printf, 2, 3))) static void putf(struct wp_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0) {
        return;
    }
    char *p = (char *)wp_buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static const char *nz(const char *s)
{
    return s != NULL ? s : "";
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t cp;

    if (s[0] < 0x80) {
        return 1;
    }
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        cp = s[0] & 0x1fu;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        cp = s[0] & 0x0fu;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        cp = s[0] & 0x07u;
    } else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    /* overlong forms, surrogates and values past U+10FFFF */
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return len;
}

/*
 * Copy s as clean UTF-8: invalid bytes become U+FFFD; control characters (C0, DEL, C1) become
 * a space, except that with multiline \n stays (CRLF and lone CR become \n) and \t stays.
 * At most max bytes are kept (0 = no limit), cut at a character boundary. free() the result.
 */
static char *clean(const char *s, bool multiline, size_t max)
{
    const unsigned char *p = (const unsigned char *)nz(s);
    size_t n = strlen((const char *)p);
    struct wp_buf b;

    wp_buf_init(&b);
    for (size_t i = 0; i < n;) {
        size_t l = utf8_seq(p + i, n - i);
        const char *add = NULL;
        size_t addlen = 0;

        if (l == 0) {
            add = "\xef\xbf\xbd";
            addlen = 3;
            l = 1;
        } else if (l == 1 && (p[i] < 0x20 || p[i] == 0x7f)) {
            if (multiline && p[i] == '\r') {
                add = "\n";
                if (i + 1 < n && p[i + 1] == '\n') {
                    l = 2;
                }
            } else if (multiline && (p[i] == '\n' || p[i] == '\t')) {
                add = p[i] == '\n' ? "\n" : "\t";
            } else {
                add = " ";
            }
            addlen = 1;
        } else if (l == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0) {
            add = " "; /* C1 controls, U+0085 NEL among them */
            addlen = 1;
        } else {
            add = (const char *)p + i;
            addlen = l;
        }
        if (max > 0 && b.len + addlen > max) {
            break;
        }
        putn(&b, add, addlen);
        i += l;
    }
    putn(&b, "", 1);
    return (char *)b.data;
}

static bool is_ascii(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p >= 0x80) {
            return false;
        }
    }
    return true;
}

static void b64_chunk(struct wp_buf *b, const unsigned char *in, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char q[4];

    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        size_t k = n - i;

        if (k > 1) {
            v |= (uint32_t)in[i + 1] << 8;
        }
        if (k > 2) {
            v |= in[i + 2];
        }
        q[0] = tab[(v >> 18) & 63];
        q[1] = tab[(v >> 12) & 63];
        q[2] = k > 1 ? tab[(v >> 6) & 63] : '=';
        q[3] = k > 2 ? tab[v & 63] : '=';
        putn(b, q, 4);
    }
}

/* A MIME body in base64, lines of 76 characters, CRLF after each line. */
static void b64_body(struct wp_buf *b, const unsigned char *in, size_t n)
{
    const size_t per = B64_LINE / 4 * 3; /* 57 input bytes per line */

    for (size_t i = 0; i < n; i += per) {
        b64_chunk(b, in + i, n - i < per ? n - i : per);
        put(b, "\r\n");
    }
}

/*
 * Fold plain ASCII v into b before spaces so that no line passes HDR_FOLD; col is the length
 * of "Name: " already written. False (b partly written) when a word is too long for that.
 */
static bool header_fold(struct wp_buf *b, size_t col, const char *v)
{
    size_t n = strlen(v);
    size_t i = 0;

    while (i < n) {
        size_t take = n - i;

        if (col + take > HDR_FOLD) {
            /* break before the last space that keeps the line short */
            size_t cut = 0;

            for (size_t j = 1; j < take && col + j <= HDR_FOLD; j++) {
                if (v[i + j] == ' ') {
                    cut = j;
                }
            }
            if (cut == 0) {
                return false;
            }
            take = cut;
        }
        putn(b, v + i, take);
        i += take;
        if (i < n) {
            put(b, "\r\n"); /* the space that follows starts the continuation line */
            col = 0;
        }
    }
    return true;
}

/*
 * Write a header value that may need RFC 2047: plain (folded at spaces) when it is ASCII,
 * holds no "=?" and folds within HDR_FOLD, else encoded-words of at most EW_CHUNK input
 * bytes each, cut between UTF-8 sequences, one per line. col is the length of "Name: "
 * already written.
 */
static void header_text(struct wp_buf *b, size_t col, const char *v)
{
    size_t n = strlen(v);

    if (is_ascii(v) && strstr(v, "=?") == NULL) {
        size_t mark = b->len;

        if (header_fold(b, col, v)) {
            return;
        }
        b->len = mark; /* a word too long to fold: encode it all instead */
    }
    for (size_t i = 0; i < n;) {
        size_t take = n - i < EW_CHUNK ? n - i : EW_CHUNK;

        /* back up over continuation bytes so no UTF-8 sequence is split */
        while (i + take < n && take > 1 && ((unsigned char)v[i + take] & 0xc0) == 0x80) {
            take--;
        }
        if (i > 0) {
            put(b, "\r\n ");
        }
        put(b, "=?UTF-8?B?");
        b64_chunk(b, (const unsigned char *)v + i, take);
        put(b, "?=");
        i += take;
    }
}

/* The bare address of "Name <addr>" or "addr"; NULL when it is not a plain address. */
static char *addr_of(const char *s)
{
    const char *lt = strrchr(s, '<');
    const char *a = s;
    size_t n = strlen(s);

    if (lt != NULL) {
        const char *gt = strchr(lt, '>');

        if (gt == NULL || gt[1] != '\0') {
            return NULL;
        }
        a = lt + 1;
        n = (size_t)(gt - a);
    }
    if (n == 0 || n > 254) {
        return NULL;
    }
    const char *at = memchr(a, '@', n);
    if (at == NULL || at == a || at == a + n - 1) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)a[i];
        if (c <= 0x20 || c >= 0x7f || c == '<' || c == '>' || c == ',' || c == '"' || c == '(' ||
            c == ')' || c == ';' || c == '\\') {
            return NULL;
        }
    }
    return wp_xstrndup(a, n);
}

/* Columns written since the last line break in b. */
static size_t line_col(const struct wp_buf *b)
{
    size_t i = b->len;

    while (i > 0 && b->data[i - 1] != '\n') {
        i--;
    }
    return b->len - i;
}

/*
 * One mailbox: "Name <addr>" with the name quoted (ASCII) or as encoded-words, or the bare
 * "addr" as given. The name is cleaned of control characters and cut at 64 bytes; the address
 * must be plain. 0 or -EINVAL.
 */
static int mailbox(struct wp_buf *b, const char *s)
{
    char *addr = addr_of(s);
    const char *lt = strrchr(s, '<');

    if (addr == NULL) {
        return -EINVAL;
    }
    if (lt == NULL) {
        put(b, addr);
        free(addr);
        return 0;
    }
    char *raw = wp_xstrndup(s, (size_t)(lt - s));
    char *nm = clean(raw, false, 0);
    char *name = nm;
    size_t n = strlen(name);
    while (n > 0 && name[n - 1] == ' ') {
        name[--n] = '\0';
    }
    while (*name == ' ') {
        name++;
        n--;
    }
    if (n >= 2 && name[0] == '"' && name[n - 1] == '"') {
        name[--n] = '\0';
        name++;
        n--;
    }
    char *q = clean(name, false, 64);
    if (*q != '\0') {
        if (is_ascii(q) && strstr(q, "=?") == NULL) {
            put(b, "\"");
            for (const char *c = q; *c != '\0'; c++) {
                if (*c == '"' || *c == '\\') {
                    put(b, "\\");
                }
                putn(b, c, 1);
            }
            put(b, "\"");
        } else {
            header_text(b, line_col(b), q);
        }
        put(b, line_col(b) + strlen(addr) + 3 > HDR_FOLD ? "\r\n " : " ");
    }
    putf(b, "<%s>", addr);
    free(q);
    free(nm);
    free(raw);
    free(addr);
    return 0;
}

/* From: one mailbox. */
static int header_from(struct wp_buf *b, const char *from)
{
    int rc;

    put(b, "From: ");
    rc = mailbox(b, from);
    put(b, "\r\n");
    return rc;
}

/* To: the recipients, "addr" or "Name <addr>", folded between them. */
static int header_to(struct wp_buf *b, const char *const *to)
{
    put(b, "To: ");
    for (size_t i = 0; to[i] != NULL; i++) {
        if (i > 0) {
            put(b, ",");
            put(b, line_col(b) + 1 + strlen(to[i]) > HDR_FOLD ? "\r\n " : " ");
        }
        int rc = mailbox(b, to[i]);
        if (rc < 0) {
            return rc;
        }
    }
    put(b, "\r\n");
    return 0;
}

static bool domain_ok(const char *d)
{
    size_t n = strlen(d);

    if (n == 0 || n > 253) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = d[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-')) {
            return false;
        }
    }
    return true;
}

/* "Mon, 30 Nov 2026 08:07:01 +0000" (RFC 5322 3.3), independent of the locale. */
static void rfc5322_date(char *out, size_t n, int64_t ms)
{
    static const char *const wd[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const mo[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)((ms >= 0 ? ms : 0) / 1000);
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    gmtime_r(&t, &tm);
    snprintf(out, n, "%s, %02d %s %04d %02d:%02d:%02d +0000", wd[tm.tm_wday % 7], tm.tm_mday,
             mo[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* "2026-11-30 08:07:01 UTC" for the body. */
static void body_time(char *out, size_t n, int64_t ms)
{
    time_t t = (time_t)((ms >= 0 ? ms : 0) / 1000);
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    gmtime_r(&t, &tm);
    snprintf(out, n, "%04d-%02d-%02d %02d:%02d:%02d UTC", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* 64-bit FNV-1a: the boundary is a function of the event, so retries are identical. */
static uint64_t fnv1a(const char *s, uint64_t h)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        h ^= *p;
        h *= UINT64_C(1099511628211);
    }
    return h;
}

/* ---- language ------------------------------------------------------------------------------- */

enum {
    L_EVENT,
    L_PRIORITY,
    L_STATUS,
    L_HOST,
    L_RULE,
    L_CATEGORY,
    L_OPENED,
    L_ACKED,
    L_RESOLVED,
    L_RESPONSE_DUE,
    L_RESOLVE_DUE,
    L_ESCALATION,
    L_DESCRIPTION,
    L_VALUES,
    L_RUNBOOK,
    L_LINK,
    L_BY,
    L_FOOTER,
    L_COUNT
};

static const char *const labels[2][L_COUNT] = {
    [NOTIFY_EN] =
        {
            [L_EVENT] = "Event",
            [L_PRIORITY] = "Priority",
            [L_STATUS] = "Status",
            [L_HOST] = "Host",
            [L_RULE] = "Rule",
            [L_CATEGORY] = "Category",
            [L_OPENED] = "Opened",
            [L_ACKED] = "Acknowledged",
            [L_RESOLVED] = "Resolved",
            [L_RESPONSE_DUE] = "Response due",
            [L_RESOLVE_DUE] = "Resolution due",
            [L_ESCALATION] = "Escalation level",
            [L_DESCRIPTION] = "Description",
            [L_VALUES] = "Values",
            [L_RUNBOOK] = "Runbook",
            [L_LINK] = "Open in the dashboard",
            [L_BY] = "by",
            [L_FOOTER] = "Automatic message from Watchpost; replies are not read.",
        },
    [NOTIFY_ZH] =
        {
            [L_EVENT] = "事件",
            [L_PRIORITY] = "优先级",
            [L_STATUS] = "状态",
            [L_HOST] = "主机",
            [L_RULE] = "规则",
            [L_CATEGORY] = "类别",
            [L_OPENED] = "发生时间",
            [L_ACKED] = "确认时间",
            [L_RESOLVED] = "恢复时间",
            [L_RESPONSE_DUE] = "响应期限",
            [L_RESOLVE_DUE] = "解决期限",
            [L_ESCALATION] = "升级级别",
            [L_DESCRIPTION] = "描述",
            [L_VALUES] = "触发值",
            [L_RUNBOOK] = "处理步骤",
            [L_LINK] = "在监控面板中查看",
            [L_BY] = "操作人",
            [L_FOOTER] = "此邮件由 Watchpost 自动发送，请勿回复。",
        },
};

struct word {
    const char *key, *en, *zh;
};

/* Event names (the subject suffix, "" for open) and status names. */
static const struct word events[] = {
    {"open", "", ""},
    {"reopen", "reopened", "重新打开"},
    {"update", "updated", "已更新"},
    {"escalate", "escalated", "已升级"},
    {"ack", "acknowledged", "已确认"},
    {"resolve", "resolved", "已恢复"},
    {"close", "closed", "已关闭"},
    {NULL, NULL, NULL},
};

static const struct word event_names[] = {
    {"open", "opened", "发生"},      {"reopen", "reopened", "重新打开"},
    {"update", "updated", "更新"},   {"escalate", "escalated", "升级"},
    {"ack", "acknowledged", "确认"}, {"resolve", "resolved", "恢复"},
    {"close", "closed", "关闭"},     {NULL, NULL, NULL},
};

static const struct word statuses[] = {
    {"open", "open", "未处理"},
    {"acknowledged", "acknowledged", "已确认"},
    {"resolved", "resolved", "已恢复"},
    {"closed", "closed", "已关闭"},
    {NULL, NULL, NULL},
};

/* The word for key in lang, or NULL when the table does not know key. */
static const char *word(const struct word *t, const char *key, enum notify_lang lang)
{
    for (size_t i = 0; t[i].key != NULL; i++) {
        if (strcmp(t[i].key, key) == 0) {
            return lang == NOTIFY_ZH ? t[i].zh : t[i].en;
        }
    }
    return NULL;
}

/* ---- the body ------------------------------------------------------------------------------- */

/* Everything the two parts show, cleaned once. */
struct view {
    enum notify_lang lang;
    const char *const *l;
    char *title; /* the subject */
    char *status, *host, *rule, *category, *description, *runbook, *event_by, *event_text;
    char *acked_by, *event_line;
    char *link;   /* "" when there is none */
    bool link_ok; /* link may be an href (http/https) */
    size_t nvals;
    char *vkey[VALUES_MAX], *vval[VALUES_MAX];
};

static void view_cleanup(struct view *v)
{
    char **s[] = {&v->title,      &v->status,      &v->host,       &v->rule,
                  &v->category,   &v->description, &v->runbook,    &v->event_by,
                  &v->event_text, &v->acked_by,    &v->event_line, &v->link};

    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
        free(*s[i]);
        *s[i] = NULL;
    }
    for (size_t i = 0; i < v->nvals; i++) {
        free(v->vkey[i]);
        free(v->vval[i]);
    }
    v->nvals = 0;
}

static char *value_text(const json_t *j)
{
    char num[64];
    char *dump = NULL;
    char *r = NULL;

    switch (json_typeof(j)) {
    case JSON_STRING:
        return clean(json_string_value(j), false, VALUE_MAX);
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(j));
        return wp_xstrdup(num);
    case JSON_REAL:
        snprintf(num, sizeof(num), "%.15g", json_real_value(j));
        return wp_xstrdup(num);
    case JSON_TRUE:
        return wp_xstrdup("true");
    case JSON_FALSE:
        return wp_xstrdup("false");
    case JSON_NULL:
        return wp_xstrdup("null");
    default:
        dump = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        r = clean(dump, false, VALUE_MAX);
        free(dump);
        return r;
    }
}

/* The values table: the keys of a JSON object in the order they came; nothing otherwise. */
static void view_values(struct view *v, const char *json)
{
    json_error_t err;
    json_t *root = NULL;
    const char *k = NULL;
    json_t *val = NULL;

    if (json == NULL || *json == '\0') {
        return;
    }
    root = json_loadb(json, strlen(json), 0, &err);
    if (root == NULL || !json_is_object(root)) {
        json_decref(root);
        return;
    }
    json_object_foreach(root, k, val)
    {
        if (v->nvals == VALUES_MAX) {
            break;
        }
        v->vkey[v->nvals] = clean(k, false, VALUE_MAX);
        v->vval[v->nvals] = value_text(val);
        v->nvals++;
    }
    json_decref(root);
}

/* An http(s) URL without whitespace: safe as an href once escaped. */
static bool is_url(const char *s)
{
    if (strncasecmp(s, "http://", 7) != 0 && strncasecmp(s, "https://", 8) != 0) {
        return false;
    }
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == ' ' || *p == '\n' || *p == '\t') {
            return false;
        }
    }
    return true;
}

static void view_init(struct view *v, const struct notify_inc *m, const struct notify_mail_opts *o)
{
    char *summary = clean(m->summary, false, SUMMARY_MAX);
    const char *ev = nz(m->event);
    const char *suffix = word(events, ev, o->lang);
    char *evclean = clean(ev, false, 40);
    struct wp_buf b;

    memset(v, 0, sizeof(*v));
    v->lang = o->lang;
    v->l = labels[o->lang];
    wp_buf_init(&b);
    putf(&b, "[INC-%" PRId64 "] P%d %s", m->id, m->priority, summary);
    if (suffix == NULL) {
        suffix = evclean; /* an event this file does not know yet: its name */
    }
    if (*suffix != '\0') {
        putf(&b, " — %s", suffix);
    }
    putn(&b, "", 1);
    v->title = (char *)b.data;
    free(summary);

    const char *st = word(statuses, nz(m->status), o->lang);
    v->status = st != NULL ? wp_xstrdup(st) : clean(m->status, false, 40);
    v->host = clean(m->host, false, 0);
    v->rule = clean(m->rule, false, 0);
    v->category = clean(m->category, false, 0);
    v->description = clean(m->description, true, 0);
    v->runbook = clean(m->runbook, true, 0);
    v->event_by = clean(m->event_by, false, 0);
    v->event_text = clean(m->event_text, true, 0);
    v->acked_by = clean(m->acked_by, false, 0);

    char when[40];
    const char *en = word(event_names, ev, o->lang);
    body_time(when, sizeof(when), m->event_ms);
    wp_buf_init(&b);
    putf(&b, "%s", en != NULL ? en : evclean);
    if (m->escalation > 0 && strcmp(ev, "escalate") == 0) {
        putf(&b, o->lang == NOTIFY_ZH ? "（%d 级）" : " (level %d)", m->escalation);
    }
    putf(&b, o->lang == NOTIFY_ZH ? "，%s" : ", %s", when);
    if (*v->event_by != '\0') {
        putf(&b, o->lang == NOTIFY_ZH ? "，%s：%s" : ", %s %s", v->l[L_BY], v->event_by);
    }
    putn(&b, "", 1);
    v->event_line = (char *)b.data;
    free(evclean);

    char *base = clean(o->dashboard_url, false, 0);
    size_t bl = strlen(base);
    while (bl > 0 && (base[bl - 1] == '/' || base[bl - 1] == ' ')) {
        base[--bl] = '\0';
    }
    if (bl > 0) {
        v->link = wp_xasprintf("%s/incidents/%" PRId64, base, m->id);
        v->link_ok = is_url(v->link);
    } else {
        v->link = wp_xstrdup("");
    }
    free(base);
    view_values(v, m->values_json);
}

/* A multi-line text with every line indented by two spaces, CRLF line ends. */
static void text_block(struct wp_buf *b, const char *s)
{
    const char *p = s;

    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        size_t n = nl != NULL ? (size_t)(nl - p) : strlen(p);

        put(b, "  ");
        putn(b, p, n);
        put(b, "\r\n");
        p += n;
        if (*p == '\n') {
            p++;
        }
    }
}

static void text_row(struct wp_buf *b, const char *label, const char *value)
{
    if (*value == '\0') {
        return;
    }
    putf(b, "%s: %s\r\n", label, value);
}

static void text_time_row(struct wp_buf *b, const char *label, int64_t ms, const char *who)
{
    char t[40];

    if (ms <= 0) {
        return;
    }
    body_time(t, sizeof(t), ms);
    if (who != NULL && *who != '\0') {
        putf(b, "%s: %s (%s)\r\n", label, t, who);
    } else {
        putf(b, "%s: %s\r\n", label, t);
    }
}

static void render_text(struct wp_buf *b, const struct view *v, const struct notify_inc *m)
{
    const char *const *l = v->l;
    char prio[16];

    putf(b, "%s\r\n\r\n", v->title);
    putf(b, "%s: %s\r\n", l[L_EVENT], v->event_line);
    if (*v->event_text != '\0') {
        text_block(b, v->event_text);
    }
    put(b, "\r\n");
    snprintf(prio, sizeof(prio), "P%d", m->priority);
    text_row(b, l[L_PRIORITY], prio);
    text_row(b, l[L_STATUS], v->status);
    text_row(b, l[L_HOST], v->host);
    text_row(b, l[L_RULE], v->rule);
    text_row(b, l[L_CATEGORY], v->category);
    text_time_row(b, l[L_OPENED], m->opened_ms, NULL);
    text_time_row(b, l[L_ACKED], m->acked_ms, v->acked_by);
    text_time_row(b, l[L_RESOLVED], m->resolved_ms, NULL);
    if (m->resolved_ms <= 0) {
        text_time_row(b, l[L_RESPONSE_DUE], m->acked_ms <= 0 ? m->response_due_ms : 0, NULL);
        text_time_row(b, l[L_RESOLVE_DUE], m->resolve_due_ms, NULL);
    }
    if (m->escalation > 0) {
        putf(b, "%s: %d\r\n", l[L_ESCALATION], m->escalation);
    }
    if (*v->description != '\0') {
        putf(b, "\r\n%s:\r\n", l[L_DESCRIPTION]);
        text_block(b, v->description);
    }
    if (v->nvals > 0) {
        size_t w = 0;

        putf(b, "\r\n%s:\r\n", l[L_VALUES]);
        for (size_t i = 0; i < v->nvals; i++) {
            size_t n = strlen(v->vkey[i]);
            w = n > w ? n : w;
        }
        w = w > 40 ? 40 : w;
        for (size_t i = 0; i < v->nvals; i++) {
            putf(b, "  %-*s  %s\r\n", (int)w, v->vkey[i], v->vval[i]);
        }
    }
    if (*v->runbook != '\0') {
        putf(b, "\r\n%s:\r\n", l[L_RUNBOOK]);
        text_block(b, v->runbook);
    }
    if (*v->link != '\0') {
        putf(b, "\r\n%s: %s\r\n", l[L_LINK], v->link);
    }
    putf(b, "\r\n-- \r\n%s\r\n", l[L_FOOTER]);
}

/* HTML-escape s; with br, newlines become <br>. */
static void html_esc(struct wp_buf *b, const char *s, bool br)
{
    for (const char *p = s; *p != '\0'; p++) {
        switch (*p) {
        case '&':
            put(b, "&amp;");
            break;
        case '<':
            put(b, "&lt;");
            break;
        case '>':
            put(b, "&gt;");
            break;
        case '"':
            put(b, "&quot;");
            break;
        case '\'':
            put(b, "&#39;");
            break;
        case '\n':
            put(b, br ? "<br>\r\n" : " ");
            break;
        default:
            putn(b, p, 1);
        }
    }
}

static void html_row(struct wp_buf *b, const char *label, const char *value)
{
    if (*value == '\0') {
        return;
    }
    put(b, "<tr><th style=\"text-align:left;padding:2px 12px 2px 0\">");
    html_esc(b, label, false);
    put(b, "</th><td>");
    html_esc(b, value, false);
    put(b, "</td></tr>\r\n");
}

static void html_time_row(struct wp_buf *b, const char *label, int64_t ms, const char *who)
{
    char t[40];

    if (ms <= 0) {
        return;
    }
    body_time(t, sizeof(t), ms);
    if (who != NULL && *who != '\0') {
        char *s = wp_xasprintf("%s (%s)", t, who);
        html_row(b, label, s);
        free(s);
    } else {
        html_row(b, label, t);
    }
}

static void render_html(struct wp_buf *b, const struct view *v, const struct notify_inc *m)
{
    const char *const *l = v->l;
    char prio[16];
    static const char *const color[] = {"#b00020", "#c43e00", "#b58900", "#2e6da4"};

    putf(b, "<!DOCTYPE html>\r\n<html lang=\"%s\">\r\n<head>\r\n<meta charset=\"utf-8\">\r\n",
         v->lang == NOTIFY_ZH ? "zh-CN" : "en");
    put(b, "<title>");
    html_esc(b, v->title, false);
    put(b, "</title>\r\n</head>\r\n<body style=\"font-family:sans-serif;font-size:14px\">\r\n");
    putf(b, "<h2 style=\"color:%s\">",
         color[m->priority >= 1 && m->priority <= 4 ? m->priority - 1 : 3]);
    html_esc(b, v->title, false);
    put(b, "</h2>\r\n<p><b>");
    html_esc(b, l[L_EVENT], false);
    put(b, ":</b> ");
    html_esc(b, v->event_line, false);
    put(b, "</p>\r\n");
    if (*v->event_text != '\0') {
        put(b, "<p>");
        html_esc(b, v->event_text, true);
        put(b, "</p>\r\n");
    }
    put(b, "<table style=\"border-collapse:collapse\">\r\n");
    snprintf(prio, sizeof(prio), "P%d", m->priority);
    html_row(b, l[L_PRIORITY], prio);
    html_row(b, l[L_STATUS], v->status);
    html_row(b, l[L_HOST], v->host);
    html_row(b, l[L_RULE], v->rule);
    html_row(b, l[L_CATEGORY], v->category);
    html_time_row(b, l[L_OPENED], m->opened_ms, NULL);
    html_time_row(b, l[L_ACKED], m->acked_ms, v->acked_by);
    html_time_row(b, l[L_RESOLVED], m->resolved_ms, NULL);
    if (m->resolved_ms <= 0) {
        html_time_row(b, l[L_RESPONSE_DUE], m->acked_ms <= 0 ? m->response_due_ms : 0, NULL);
        html_time_row(b, l[L_RESOLVE_DUE], m->resolve_due_ms, NULL);
    }
    if (m->escalation > 0) {
        char e[16];
        snprintf(e, sizeof(e), "%d", m->escalation);
        html_row(b, l[L_ESCALATION], e);
    }
    put(b, "</table>\r\n");
    if (*v->description != '\0') {
        put(b, "<h3>");
        html_esc(b, l[L_DESCRIPTION], false);
        put(b, "</h3>\r\n<p>");
        html_esc(b, v->description, true);
        put(b, "</p>\r\n");
    }
    if (v->nvals > 0) {
        put(b, "<h3>");
        html_esc(b, l[L_VALUES], false);
        put(b, "</h3>\r\n<table style=\"border-collapse:collapse\">\r\n");
        for (size_t i = 0; i < v->nvals; i++) {
            put(b, "<tr><td style=\"padding:2px 12px 2px 0\"><code>");
            html_esc(b, v->vkey[i], false);
            put(b, "</code></td><td><code>");
            html_esc(b, v->vval[i], false);
            put(b, "</code></td></tr>\r\n");
        }
        put(b, "</table>\r\n");
    }
    if (*v->runbook != '\0') {
        put(b, "<h3>");
        html_esc(b, l[L_RUNBOOK], false);
        put(b, "</h3>\r\n<p>");
        if (is_url(v->runbook)) {
            put(b, "<a href=\"");
            html_esc(b, v->runbook, false);
            put(b, "\">");
            html_esc(b, v->runbook, false);
            put(b, "</a>");
        } else {
            html_esc(b, v->runbook, true);
        }
        put(b, "</p>\r\n");
    }
    if (*v->link != '\0') {
        put(b, "<p>");
        if (v->link_ok) {
            put(b, "<a href=\"");
            html_esc(b, v->link, false);
            put(b, "\">");
            html_esc(b, l[L_LINK], false);
            put(b, "</a>");
        } else {
            html_esc(b, l[L_LINK], false);
            put(b, ": ");
            html_esc(b, v->link, false);
        }
        put(b, "</p>\r\n");
    }
    put(b, "<p style=\"color:#777;font-size:12px\">");
    html_esc(b, l[L_FOOTER], false);
    put(b, "</p>\r\n</body>\r\n</html>\r\n");
}

/* ---- the message ---------------------------------------------------------------------------- */

static void header_token(struct wp_buf *b, const char *name, const char *v)
{
    /* machine-read headers: printable ASCII only, anything else becomes '_' */
    putf(b, "%s: ", name);
    for (size_t i = 0; v[i] != '\0' && i < 200; i++) {
        unsigned char u = (unsigned char)v[i];
        char c = (u > 0x20 && u < 0x7f) ? (char)u : '_';
        putn(b, &c, 1);
    }
    put(b, "\r\n");
}

int notify_mail_render(const struct notify_inc *m, const struct notify_mail_opts *o, char **out,
                       size_t *len)
{
    int rc = 0;
    struct wp_buf b;
    struct wp_buf part;
    struct view v;
    char date[64];
    char boundary[80];
    bool root;

    *out = NULL;
    *len = 0;
    memset(&v, 0, sizeof(v));
    wp_buf_init(&b);
    wp_buf_init(&part);
    if (m == NULL || o == NULL || o->from == NULL || *o->from == '\0' || o->to == NULL ||
        o->to[0] == NULL || o->domain == NULL || !domain_ok(o->domain) ||
        (o->lang != NOTIFY_EN && o->lang != NOTIFY_ZH)) {
        return -EINVAL;
    }
    root = strcmp(nz(m->event), "open") == 0;
    if (m->id <= 0 || (!root && m->seq <= 0)) {
        return -EINVAL; /* a later event named .0 would claim the root's Message-ID */
    }

    rc = header_from(&b, o->from);
    if (rc < 0) {
        goto out;
    }
    rc = header_to(&b, o->to);
    if (rc < 0) {
        goto out;
    }
    view_init(&v, m, o);
    put(&b, "Subject: ");
    header_text(&b, 9, v.title);
    put(&b, "\r\n");
    rfc5322_date(date, sizeof(date), m->event_ms);
    putf(&b, "Date: %s\r\n", date);
    putf(&b, "Message-ID: <inc-%" PRId64 ".%" PRId64 "@%s>\r\n", m->id, root ? 0 : m->seq,
         o->domain);
    if (!root) {
        putf(&b, "In-Reply-To: <inc-%" PRId64 ".0@%s>\r\n", m->id, o->domain);
        putf(&b, "References: <inc-%" PRId64 ".0@%s>\r\n", m->id, o->domain);
    }
    put(&b, "MIME-Version: 1.0\r\n");
    put(&b, "Auto-Submitted: auto-generated\r\n");
    put(&b, "X-Auto-Response-Suppress: All\r\n"); /* Exchange's out-of-office and receipts */
    putf(&b, "X-Watchpost-Incident: %" PRId64 "\r\n", m->id);
    if (nz(m->event_id)[0] != '\0') {
        header_token(&b, "X-Watchpost-Event-Id", m->event_id);
    }
    putf(&b, "Content-Language: %s\r\n", o->lang == NOTIFY_ZH ? "zh-CN" : "en");
    /* "=_" never occurs in base64, so the boundary cannot appear in a part */
    snprintf(boundary, sizeof(boundary), "=_wp_%016" PRIx64 "_%" PRId64 ".%" PRId64,
             fnv1a(nz(m->event_id), fnv1a(o->domain, UINT64_C(14695981039346656037))), m->id,
             root ? 0 : m->seq);
    putf(&b, "Content-Type: multipart/alternative;\r\n boundary=\"%s\"\r\n\r\n", boundary);
    put(&b, "This is a multi-part message in MIME format.\r\n");

    render_text(&part, &v, m);
    putf(&b,
         "\r\n--%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
         "Content-Transfer-Encoding: base64\r\n\r\n",
         boundary);
    b64_body(&b, wp_buf_head(&part), wp_buf_unread(&part));
    wp_buf_reset(&part);

    render_html(&part, &v, m);
    putf(&b,
         "\r\n--%s\r\nContent-Type: text/html; charset=utf-8\r\n"
         "Content-Transfer-Encoding: base64\r\n\r\n",
         boundary);
    b64_body(&b, wp_buf_head(&part), wp_buf_unread(&part));
    putf(&b, "\r\n--%s--\r\n", boundary);

    *len = b.len;
    putn(&b, "", 1);
    *out = (char *)b.data;
    b.data = NULL; /* ownership moved to the caller */
out:
    view_cleanup(&v);
    wp_buf_cleanup(&part);
    wp_buf_cleanup(&b);
    return rc;
}
