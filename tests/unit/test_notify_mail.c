/* SPDX-License-Identifier: Apache-2.0 */
/* Incident mail rendering: headers, threading ids, encoded-word subjects, header injection,
 * determinism, English and Simplified Chinese, HTML escaping; bodies are decoded and read. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka needs these first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "notify.h"

#define T_EVENT INT64_C(1796026021000) /* Mon, 30 Nov 2026 08:07:01 +0000 */

static const char *const rcpts[] = {"oncall@example.com", "noc@example.org", NULL};

static struct notify_inc inc(const char *event, int64_t seq)
{
    struct notify_inc m;

    memset(&m, 0, sizeof(m));
    m.id = 42;
    m.key = "disk_full|web01|mount=/var";
    m.priority = 1;
    m.status = "open";
    m.host = "web01";
    m.rule = "disk_full";
    m.category = "capacity";
    m.summary = "Disk full on web01";
    m.description = "The /var partition is almost full.\nLogs rotate at midnight.";
    m.runbook = "https://wiki.example.com/runbooks/disk";
    m.values_json = "{\"used_pct\": 97.5, \"free_bytes\": 1048576, \"mount\": \"/var\"}";
    m.opened_ms = T_EVENT - 60000;
    m.response_due_ms = T_EVENT + 900000;
    m.resolve_due_ms = T_EVENT + 4 * 3600000;
    m.acked_by = "";
    m.event = event;
    m.event_by = "rule";
    m.event_text = "used_pct 97.5 > 95";
    m.event_ms = T_EVENT;
    m.seq = seq;
    m.event_id = "mail-42-7";
    return m;
}

static struct notify_mail_opts opts(enum notify_lang lang)
{
    struct notify_mail_opts o;

    memset(&o, 0, sizeof(o));
    o.from = "Watchpost <watchpost@coll.example>";
    o.to = rcpts;
    o.lang = lang;
    o.domain = "coll.example";
    o.dashboard_url = "https://dash.example/";
    return o;
}

/* ---- a small reader of what notify_mail_render wrote ------------------------------------- */

struct msg {
    char *raw;
    size_t len;
    char *hdr;  /* the header block, unfolded, "\n"-separated */
    char *body; /* after the blank line */
    char *text; /* decoded text/plain */
    char *html; /* decoded text/html */
};

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

/* Decode base64 from s (n chars, whitespace skipped) into a new NUL-terminated string. */
static char *b64dec(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;

    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        int v = b64val(s[i]);
        if (v < 0) {
            continue;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[o] = '\0';
    return out;
}

/* The decoded body of the part whose Content-Type starts with ctype. */
static char *part(const char *body, const char *ctype)
{
    char want[64];
    const char *p;
    const char *start;
    const char *end;

    snprintf(want, sizeof(want), "Content-Type: %s", ctype);
    p = strstr(body, want);
    assert_non_null(p);
    start = strstr(p, "\r\n\r\n");
    assert_non_null(start);
    start += 4;
    end = strstr(start, "\r\n--");
    assert_non_null(end);
    return b64dec(start, (size_t)(end - start));
}

static void msg_parse(struct msg *g)
{
    char *sep = strstr(g->raw, "\r\n\r\n");
    size_t o = 0;

    assert_non_null(sep);
    g->hdr = calloc(1, (size_t)(sep - g->raw) + 2);
    assert_non_null(g->hdr);
    for (const char *p = g->raw; p < sep; p++) {
        if (p[0] == '\r' && p[1] == '\n') {
            if (p[2] == ' ' || p[2] == '\t') {
                p += 1; /* folded: CRLF goes, the whitespace stays */
                continue;
            }
            g->hdr[o++] = '\n';
            p++;
            continue;
        }
        g->hdr[o++] = *p;
    }
    g->hdr[o++] = '\n';
    g->body = sep + 4;
    g->text = part(g->body, "text/plain");
    g->html = part(g->body, "text/html");
}

static int render(const struct notify_inc *m, const struct notify_mail_opts *o, struct msg *g)
{
    int rc;

    memset(g, 0, sizeof(*g));
    rc = notify_mail_render(m, o, &g->raw, &g->len);
    if (rc == 0) {
        assert_non_null(g->raw);
        assert_int_equal(strlen(g->raw), g->len);
        msg_parse(g);
    }
    return rc;
}

static void msg_free(struct msg *g)
{
    free(g->raw);
    free(g->hdr);
    free(g->text);
    free(g->html);
}

/* The unfolded value of header name, or NULL; the returned copy must be freed. */
static char *header(const struct msg *g, const char *name)
{
    size_t n = strlen(name);

    for (const char *l = g->hdr; *l != '\0';) {
        const char *nl = strchr(l, '\n');
        if (strncasecmp(l, name, n) == 0 && l[n] == ':') {
            const char *v = l + n + 1;
            while (*v == ' ') {
                v++;
            }
            return strndup(v, (size_t)(nl - v));
        }
        l = nl + 1;
    }
    return NULL;
}

static void assert_header(const struct msg *g, const char *name, const char *want)
{
    char *v = header(g, name);

    if (v == NULL || strcmp(v, want) != 0) {
        print_error("header %s: got \"%s\", want \"%s\"\n", name, v != NULL ? v : "(none)", want);
        free(v);
        fail();
    }
    free(v);
}

static bool utf8_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t l = s[i] < 0x80 ? 1 : s[i] >= 0xf0 ? 4 : s[i] >= 0xe0 ? 3 : s[i] >= 0xc2 ? 2 : 0;
        if (l == 0 || i + l > n) {
            return false;
        }
        for (size_t k = 1; k < l; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return false;
            }
        }
        i += l;
    }
    return true;
}

/* Decode an unfolded subject of RFC 2047 B words (checking each), or return it as it is. */
static char *subject_decoded(const struct msg *g)
{
    char *v = header(g, "Subject");
    char *out = calloc(1, strlen(v) + 1);
    const char *p = v;

    assert_non_null(out);
    if (strncmp(v, "=?", 2) != 0) {
        strcpy(out, v);
        free(v);
        return out;
    }
    while (*p != '\0') {
        const char *end;
        char *dec;

        while (*p == ' ') {
            p++; /* whitespace between adjacent encoded-words is not part of the text */
        }
        if (*p == '\0') {
            break;
        }
        assert_memory_equal(p, "=?UTF-8?B?", 10);
        end = strstr(p + 10, "?=");
        assert_non_null(end);
        assert_true((size_t)(end + 2 - p) <= 75); /* RFC 2047 section 2 */
        dec = b64dec(p + 10, (size_t)(end - p - 10));
        assert_true(utf8_valid((const unsigned char *)dec, strlen(dec))); /* not split */
        strcat(out, dec);
        free(dec);
        p = end + 2;
    }
    free(v);
    return out;
}

/* Every line ends with CRLF; header lines fit 78 columns and base64 lines 76. */
static void assert_lines(const struct msg *g)
{
    const char *sep = strstr(g->raw, "\r\n\r\n");

    for (const char *l = g->raw; *l != '\0';) {
        const char *nl = strchr(l, '\n');
        assert_non_null(nl);
        assert_true(nl > l || l == g->raw + g->len); /* no empty line without CR */
        assert_int_equal(nl[-1], '\r');
        size_t n = (size_t)(nl - l) - 1;
        if (l < sep) {
            assert_true(n <= 78);
        } else {
            assert_true(n <= 76);
        }
        assert_null(memchr(l, '\r', n)); /* no bare CR inside a line */
        l = nl + 1;
    }
}

/* ---- tests --------------------------------------------------------------------------------- */

static void lang_parse(void **state)
{
    enum notify_lang l = NOTIFY_ZH;

    (void)state;
    assert_int_equal(notify_lang_parse("en", &l), 0);
    assert_int_equal(l, NOTIFY_EN);
    assert_int_equal(notify_lang_parse("zh-CN", &l), 0);
    assert_int_equal(l, NOTIFY_ZH);
    l = NOTIFY_EN;
    assert_int_equal(notify_lang_parse("zh", &l), 0);
    assert_int_equal(l, NOTIFY_ZH);
    assert_int_equal(notify_lang_parse("en-GB", &l), 0);
    assert_int_equal(l, NOTIFY_EN);
    assert_int_equal(notify_lang_parse("fr", &l), -EINVAL);
    assert_int_equal(notify_lang_parse("zh-TW", &l), -EINVAL); /* traditional: not this text */
    assert_int_equal(notify_lang_parse(NULL, &l), -EINVAL);
    assert_int_equal(l, NOTIFY_EN);
}

static void headers_of_the_root(void **state)
{
    struct notify_inc m = inc("open", 3);
    struct notify_mail_opts o = opts(NOTIFY_EN);
    struct msg g;
    char *v;

    (void)state;
    assert_int_equal(render(&m, &o, &g), 0);
    assert_header(&g, "From", "\"Watchpost\" <watchpost@coll.example>");
    assert_header(&g, "To", "oncall@example.com, noc@example.org");
    assert_header(&g, "Subject", "[INC-42] P1 Disk full on web01");
    assert_header(&g, "Date", "Mon, 30 Nov 2026 08:07:01 +0000");
    assert_header(&g, "Message-ID", "<inc-42.0@coll.example>"); /* open is the root, .0 */
    assert_header(&g, "MIME-Version", "1.0");
    assert_header(&g, "Auto-Submitted", "auto-generated");
    assert_header(&g, "X-Watchpost-Incident", "42");
    assert_header(&g, "X-Watchpost-Event-Id", "mail-42-7");
    assert_null(header(&g, "In-Reply-To"));
    assert_null(header(&g, "References"));
    v = header(&g, "Content-Type");
    assert_non_null(strstr(v, "multipart/alternative;"));
    assert_non_null(strstr(v, "boundary=\"=_wp_"));
    free(v);
    assert_lines(&g);
    msg_free(&g);

    /* named mailboxes: quoted ASCII names, encoded-word names, folded between recipients */
    {
        static const char *const named[] = {"On \"Call\" <oncall@example.com>",
                                            "值班工程师 <duty@example.cn>",
                                            "a-rather-long-address-for-folding@example.org", NULL};
        char *s;
        o.from = "\"Watchpost, NOC\" <watchpost@coll.example>";
        o.to = named;
        assert_int_equal(render(&m, &o, &g), 0);
        assert_header(&g, "From", "\"Watchpost, NOC\" <watchpost@coll.example>");
        s = header(&g, "To");
        assert_string_equal(s, "\"On \\\"Call\\\"\" <oncall@example.com>, "
                               "=?UTF-8?B?5YC854+t5bel56iL5biI?= <duty@example.cn>, "
                               "a-rather-long-address-for-folding@example.org");
        free(s);
        assert_lines(&g);
        msg_free(&g);
        o = opts(NOTIFY_EN);
    }
    assert_int_equal(render(&m, &o, &g), 0);
    /* plain first, HTML last (the preferred alternative) */
    assert_true(strstr(g.body, "text/plain") < strstr(g.body, "text/html"));
    assert_non_null(strstr(g.text, "Priority: P1\r\n"));
    assert_non_null(strstr(g.text, "Host: web01\r\n"));
    assert_non_null(strstr(g.text, "Opened: 2026-11-30 08:06:01 UTC\r\n"));
    msg_free(&g);
}

static void later_events_thread_to_the_root(void **state)
{
    static const char *const evs[] = {"escalate", "ack", "update", "resolve", "close", "reopen"};
    struct notify_mail_opts o = opts(NOTIFY_EN);

    (void)state;
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
        struct notify_inc m = inc(evs[i], 17 + (int64_t)i);
        struct msg g;
        char want[64];

        assert_int_equal(render(&m, &o, &g), 0);
        snprintf(want, sizeof(want), "<inc-42.%d@coll.example>", 17 + (int)i);
        assert_header(&g, "Message-ID", want);
        assert_header(&g, "In-Reply-To", "<inc-42.0@coll.example>");
        assert_header(&g, "References", "<inc-42.0@coll.example>");
        msg_free(&g);
    }

    /* the subject stays, the event is a suffix */
    struct notify_inc m = inc("resolve", 20);
    struct msg g;
    char *s;
    m.status = "resolved";
    m.resolved_ms = T_EVENT;
    assert_int_equal(render(&m, &o, &g), 0);
    s = subject_decoded(&g);
    assert_string_equal(s, "[INC-42] P1 Disk full on web01 — resolved");
    free(s);
    assert_non_null(strstr(g.text, "Status: resolved\r\n"));
    msg_free(&g);

    /* a later event numbered 0 would take the root's id */
    m.seq = 0;
    assert_int_equal(notify_mail_render(&m, &o, &g.raw, &g.len), -EINVAL);
    assert_null(g.raw);
}

static void chinese_subject_round_trips(void **state)
{
    /* long enough for several encoded-words; a 4-byte emoji and 3-byte CJK at chunk edges */
    static const char summary[] = "磁盘空间不足：web01 上 /var 分区使用率超过百分之九十五 🔥 "
                                  "请立即处理，否则日志写入将失败";
    struct notify_inc m = inc("resolve", 9);
    struct notify_mail_opts o = opts(NOTIFY_ZH);
    struct msg g;
    char want[512];
    char *s;
    char *raw;

    (void)state;
    m.summary = summary;
    m.status = "resolved";
    m.resolved_ms = T_EVENT;
    assert_int_equal(render(&m, &o, &g), 0);
    raw = header(&g, "Subject");
    assert_memory_equal(raw, "=?UTF-8?B?", 10);
    assert_non_null(strstr(raw, "?= =?UTF-8?B?")); /* more than one word */
    free(raw);
    s = subject_decoded(&g);
    snprintf(want, sizeof(want), "[INC-42] P1 %s — 已恢复", summary);
    assert_string_equal(s, want);
    free(s);
    assert_lines(&g);
    assert_header(&g, "Content-Language", "zh-CN");

    /* every chunk length from 1 to 3 chunks: sequences of 1..4 bytes at every offset */
    for (size_t pad = 0; pad < 8; pad++) {
        char sum[256];
        struct msg h;
        memset(sum, 'a', pad);
        strcpy(sum + pad, "é中𝄞文字ü€😀中中中中中中中中中中中");
        m.summary = sum;
        assert_int_equal(render(&m, &o, &h), 0);
        s = subject_decoded(&h);
        snprintf(want, sizeof(want), "[INC-42] P1 %s — 已恢复", sum);
        assert_string_equal(s, want);
        free(s);
        assert_lines(&h);
        msg_free(&h);
    }
    msg_free(&g);
}

static void header_injection_is_defused(void **state)
{
    struct notify_inc m = inc("update", 5);
    struct notify_mail_opts o = opts(NOTIFY_EN);
    struct msg g;
    char *s;
    const char *const bad_to[] = {"oncall@example.com\r\nBcc: victim@evil.example", NULL};
    const char *const no_at[] = {"oncall", NULL};
    const char *const none[] = {NULL};

    (void)state;
    m.summary = "disk\r\nBcc: victim@evil.example\r\n\r\n<b>body</b>";
    m.host = "web01\nX-Evil: 1";
    m.event_id = "mail-42-5\r\nX-Evil: 2";
    assert_int_equal(render(&m, &o, &g), 0);
    for (const char *l = g.hdr; *l != '\0'; l = strchr(l, '\n') + 1) {
        assert_false(strncasecmp(l, "Bcc:", 4) == 0);
        assert_false(strncasecmp(l, "X-Evil:", 7) == 0);
    }
    s = subject_decoded(&g);
    assert_string_equal(s, "[INC-42] P1 disk  Bcc: victim@evil.example    <b>body</b> — updated");
    free(s);
    assert_header(&g, "X-Watchpost-Event-Id", "mail-42-5__X-Evil:_2");
    assert_non_null(strstr(g.text, "Host: web01 X-Evil: 1\r\n"));
    assert_lines(&g);
    msg_free(&g);

    /* addresses come from the configuration: refused, not repaired */
    m = inc("update", 5);
    o.to = bad_to;
    assert_int_equal(notify_mail_render(&m, &o, &g.raw, &g.len), -EINVAL);
    o.to = no_at;
    assert_int_equal(notify_mail_render(&m, &o, &g.raw, &g.len), -EINVAL);
    o = opts(NOTIFY_EN);
    o.from = "Watchpost <watchpost@coll.example>\r\nBcc: x@evil.example";
    assert_int_equal(notify_mail_render(&m, &o, &g.raw, &g.len), -EINVAL);
    o = opts(NOTIFY_EN);
    o.domain = "coll.example>\r\nX-Evil: 1";
    assert_int_equal(notify_mail_render(&m, &o, &g.raw, &g.len), -EINVAL);

    /* missing from, to, domain */
    o = opts(NOTIFY_EN);
    o.from = NULL;
    assert_int_equal(notify_mail_render(&m, &o, &g.raw, &g.len), -EINVAL);
    o.from = "";
    assert_int_equal(notify_mail_render(&m, &o, &g.raw, &g.len), -EINVAL);
    o = opts(NOTIFY_EN);
    o.to = NULL;
    assert_int_equal(notify_mail_render(&m, &o, &g.raw, &g.len), -EINVAL);
    o.to = none;
    assert_int_equal(notify_mail_render(&m, &o, &g.raw, &g.len), -EINVAL);
    o = opts(NOTIFY_EN);
    o.domain = NULL;
    assert_int_equal(notify_mail_render(&m, &o, &g.raw, &g.len), -EINVAL);
    o.domain = "";
    assert_int_equal(notify_mail_render(&m, &o, &g.raw, &g.len), -EINVAL);
    assert_null(g.raw);
    assert_int_equal(g.len, 0);
}

static void long_ascii_subjects_fold(void **state)
{
    static const char spaced[] = "Disk full on web01 where the var partition is above ninety five "
                                 "percent and the log rotation did not run last night";
    char word[120];
    struct notify_inc m = inc("open", 0);
    struct notify_mail_opts o = opts(NOTIFY_EN);
    struct msg g;
    char want[256];
    char *s;

    (void)state;
    m.summary = spaced;
    assert_int_equal(render(&m, &o, &g), 0);
    assert_lines(&g); /* folded before a space, no line past 78 */
    s = subject_decoded(&g);
    snprintf(want, sizeof(want), "[INC-42] P1 %s", spaced);
    assert_string_equal(s, want);
    free(s);
    msg_free(&g);

    /* one word too long to fold: encoded-words instead */
    memset(word, 'x', sizeof(word) - 1);
    word[sizeof(word) - 1] = '\0';
    m.summary = word;
    assert_int_equal(render(&m, &o, &g), 0);
    assert_lines(&g);
    s = subject_decoded(&g);
    snprintf(want, sizeof(want), "[INC-42] P1 %s", word);
    assert_string_equal(s, want);
    free(s);
    msg_free(&g);

    /* "=?" in a plain subject would be read as an encoded-word: encoded */
    m.summary = "rate =?UTF-8?B?QQ==?= high";
    assert_int_equal(render(&m, &o, &g), 0);
    s = subject_decoded(&g);
    assert_string_equal(s, "[INC-42] P1 rate =?UTF-8?B?QQ==?= high");
    free(s);
    msg_free(&g);
}

static void same_input_same_bytes(void **state)
{
    struct notify_inc m = inc("escalate", 11);
    struct notify_mail_opts o = opts(NOTIFY_ZH);
    char *a = NULL;
    char *b = NULL;
    size_t alen = 0;
    size_t blen = 0;
    char *ba;
    char *bb;

    (void)state;
    m.escalation = 2;
    assert_int_equal(notify_mail_render(&m, &o, &a, &alen), 0);
    assert_int_equal(notify_mail_render(&m, &o, &b, &blen), 0);
    assert_int_equal(alen, blen);
    assert_memory_equal(a, b, alen);
    free(b);

    /* another event of the same incident: another boundary */
    m.event_id = "mail-42-12";
    m.seq = 12;
    assert_int_equal(notify_mail_render(&m, &o, &b, &blen), 0);
    ba = strstr(a, "boundary=\"");
    bb = strstr(b, "boundary=\"");
    assert_non_null(ba);
    assert_non_null(bb);
    assert_false(strncmp(ba, bb, 40) == 0);
    free(a);
    free(b);
}

static void both_languages(void **state)
{
    struct notify_inc m = inc("ack", 8);
    struct notify_mail_opts en = opts(NOTIFY_EN);
    struct notify_mail_opts zh = opts(NOTIFY_ZH);
    struct msg g;
    char *s;

    (void)state;
    m.status = "acknowledged";
    m.acked_ms = T_EVENT;
    m.acked_by = "alice";
    m.event_by = "alice";

    assert_int_equal(render(&m, &en, &g), 0);
    {
        static const char *const want[] = {"Priority: P1\r\n",
                                           "Status: acknowledged\r\n",
                                           "Host: web01\r\n",
                                           "Rule: disk_full\r\n",
                                           "Opened: 2026-11-30 08:06:01 UTC\r\n",
                                           "Acknowledged: 2026-11-30 08:07:01 UTC (alice)\r\n",
                                           "Runbook:\r\n",
                                           "Values:\r\n",
                                           "  used_pct    97.5\r\n",
                                           "  free_bytes  1048576\r\n",
                                           "  mount       /var\r\n",
                                           "https://dash.example/incidents/42"};
        for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
            if (strstr(g.text, want[i]) == NULL) {
                print_error("text/plain lacks \"%s\":\n%s\n", want[i], g.text);
                fail();
            }
        }
    }
    assert_non_null(strstr(g.html, "<html lang=\"en\">"));
    assert_non_null(strstr(g.html, ">Priority</th>"));
    s = subject_decoded(&g);
    assert_string_equal(s, "[INC-42] P1 Disk full on web01 — acknowledged");
    free(s);
    assert_header(&g, "Content-Language", "en");
    msg_free(&g);

    assert_int_equal(render(&m, &zh, &g), 0);
    {
        static const char *const want[] = {"优先级: P1\r\n",
                                           "状态: 已确认\r\n",
                                           "主机: web01\r\n",
                                           "规则: disk_full\r\n",
                                           "发生时间: 2026-11-30 08:06:01 UTC\r\n",
                                           "确认时间: 2026-11-30 08:07:01 UTC (alice)\r\n",
                                           "处理步骤:\r\n",
                                           "触发值:\r\n",
                                           "事件: 确认",
                                           "https://dash.example/incidents/42"};
        for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
            if (strstr(g.text, want[i]) == NULL) {
                print_error("text/plain lacks \"%s\":\n%s\n", want[i], g.text);
                fail();
            }
        }
    }
    assert_non_null(strstr(g.html, "<html lang=\"zh-CN\">"));
    assert_non_null(strstr(g.html, ">优先级</th>"));
    assert_non_null(strstr(g.html, ">处理步骤</h3>"));
    s = subject_decoded(&g);
    assert_string_equal(s, "[INC-42] P1 Disk full on web01 — 已确认");
    free(s);
    msg_free(&g);
}

static void html_is_escaped(void **state)
{
    struct notify_inc m = inc("open", 0);
    struct notify_mail_opts o = opts(NOTIFY_EN);
    struct msg g;

    (void)state;
    m.summary = "<script>alert('x')</script> & \"q\"";
    m.host = "<img src=x onerror=alert(1)>";
    m.description = "a < b\nc > d";
    m.runbook = "https://wiki.example.com/r?a=1&b=\"2\"";
    m.values_json = "{\"<k>\": \"<v>&\", \"n\": [1, \"<x>\"]}";
    o.dashboard_url = "https://dash.example/a?x=1&y=\"";
    assert_int_equal(render(&m, &o, &g), 0);
    assert_null(strstr(g.html, "<script>"));
    assert_null(strstr(g.html, "<img"));
    assert_null(strstr(g.html, "<k>"));
    assert_null(strstr(g.html, "<x>"));
    assert_non_null(
        strstr(g.html, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"));
    assert_non_null(strstr(g.html, "&lt;img src=x onerror=alert(1)&gt;"));
    assert_non_null(strstr(g.html, "a &lt; b<br>\r\nc &gt; d"));
    assert_non_null(strstr(g.html, "<code>&lt;k&gt;</code></td><td><code>&lt;v&gt;&amp;</code>"));
    assert_non_null(strstr(g.html, "[1,&quot;&lt;x&gt;&quot;]"));
    assert_non_null(
        strstr(g.html, "<a href=\"https://wiki.example.com/r?a=1&amp;b=&quot;2&quot;\">"));
    assert_non_null(
        strstr(g.html, "<a href=\"https://dash.example/a?x=1&amp;y=&quot;/incidents/42\">"));
    /* the text part is not HTML */
    assert_non_null(strstr(g.text, "<script>alert('x')</script> & \"q\""));
    msg_free(&g);

    /* a non-http link is shown, never an href; no dashboard, no link */
    m = inc("open", 0);
    o.dashboard_url = "javascript:alert(1)";
    assert_int_equal(render(&m, &o, &g), 0);
    assert_null(strstr(g.html, "href=\"javascript"));
    msg_free(&g);
    o.dashboard_url = "";
    assert_int_equal(render(&m, &o, &g), 0);
    assert_null(strstr(g.text, "/incidents/42"));
    assert_null(strstr(g.html, "/incidents/42"));
    msg_free(&g);
}

static void bad_values_and_bad_utf8(void **state)
{
    struct notify_inc m = inc("update", 4);
    struct notify_mail_opts o = opts(NOTIFY_EN);
    struct msg g;
    char *s;

    (void)state;
    m.values_json = "{\"used_pct\": 97.5,";
    m.summary = "bad \xff\xfe utf8 \xe4\xb8";
    assert_int_equal(render(&m, &o, &g), 0);
    assert_null(strstr(g.text, "Values:"));
    s = subject_decoded(&g);
    assert_string_equal(s, "[INC-42] P1 bad \xef\xbf\xbd\xef\xbf\xbd utf8 \xef\xbf\xbd\xef\xbf\xbd"
                           " — updated");
    free(s);
    msg_free(&g);

    m.values_json = "[1, 2]"; /* not an object: no table */
    assert_int_equal(render(&m, &o, &g), 0);
    assert_null(strstr(g.text, "Values:"));
    msg_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lang_parse),
        cmocka_unit_test(headers_of_the_root),
        cmocka_unit_test(later_events_thread_to_the_root),
        cmocka_unit_test(chinese_subject_round_trips),
        cmocka_unit_test(header_injection_is_defused),
        cmocka_unit_test(long_ascii_subjects_fold),
        cmocka_unit_test(same_input_same_bytes),
        cmocka_unit_test(both_languages),
        cmocka_unit_test(html_is_escaped),
        cmocka_unit_test(bad_values_and_bad_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
