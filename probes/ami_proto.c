/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ami probe's protocol layer: the incremental, bounded AMI message parser (ami.h) and
 * the header accessors the rest of the probe reads messages with.
 */
#include "ami.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ami_int.h"
#include "wp/clock.h"
#include "wp/err.h"
#include "wp/mem.h"

/* ---- parser ---- */

void wp_ami_parser_init(struct wp_ami_parser *p, int banner)
{
    memset(p, 0, sizeof(*p));
    p->buf = wp_xmalloc(WP_AMI_MSG_MAX + 1);
    p->want_banner = banner != 0;
}

void wp_ami_parser_reset(struct wp_ami_parser *p, int banner)
{
    p->len = 0;
    p->line_start = 0;
    p->nkeys = 0;
    p->err = 0;
    p->want_banner = banner != 0;
}

void wp_ami_parser_cleanup(struct wp_ami_parser *p)
{
    free(p->buf);
    p->buf = NULL;
}

const char *wp_ami_get(const struct wp_ami_msg *m, const char *key)
{
    for (size_t i = 0; i < m->nkeys; i++) {
        if (strcasecmp(m->key[i], key) == 0) {
            return m->val[i];
        }
    }
    return NULL;
}

static void parser_restart(struct wp_ami_parser *p)
{
    p->len = 0;
    p->line_start = 0;
    p->nkeys = 0;
}

/* A complete line (NUL-terminated, CR dropped) at buf + line_start: a key, the banner or the
 * end of a message. Returns 1 when a message went out, 0, or fn's negative return. */
static int parser_line(struct wp_ami_parser *p, wp_ami_msg_fn fn, void *arg)
{
    char *line = p->buf + p->line_start;
    struct wp_ami_msg *m = &p->msg;
    int rc = 0;

    if (line[0] == '\0') {
        if (p->nkeys == 0) {
            parser_restart(p); /* blank lines between messages */
            return 0;
        }
        m->banner = NULL;
        m->nkeys = p->nkeys;
        for (size_t i = 0; i < p->nkeys; i++) {
            m->key[i] = p->buf + p->koff[i];
            m->val[i] = p->buf + p->voff[i];
        }
        parser_restart(p); /* the bytes stay valid until the next feed writes over them */
        rc = fn(arg, m);
        return rc < 0 ? rc : 1;
    }
    if (p->want_banner) {
        p->want_banner = 0;
        m->banner = line;
        m->nkeys = 0;
        parser_restart(p);
        rc = fn(arg, m);
        return rc < 0 ? rc : 1;
    }
    if (p->nkeys == WP_AMI_KEYS_MAX) {
        return WP_ETOOBIG;
    }
    char *colon = strchr(line, ':');
    p->koff[p->nkeys] = p->line_start;
    if (colon == NULL) {
        p->voff[p->nkeys] = p->len - 1; /* the line's NUL: an empty value */
    } else {
        char *v = colon + 1;
        *colon = '\0';
        while (*v == ' ' || *v == '\t') {
            v++;
        }
        p->voff[p->nkeys] = (size_t)(v - p->buf);
    }
    p->nkeys++;
    p->line_start = p->len;
    return 0;
}

int wp_ami_parse_feed(struct wp_ami_parser *p, const char *buf, size_t len, wp_ami_msg_fn fn,
                      void *arg)
{
    size_t i = 0;
    int n = 0;

    if (p->err != 0) {
        return p->err;
    }
    while (i < len) {
        const char *nl = memchr(buf + i, '\n', len - i);
        size_t seg = nl != NULL ? (size_t)(nl - (buf + i)) : len - i;
        size_t total = p->len + seg + (nl != NULL ? 1 : 0);
        size_t line = p->len + seg - p->line_start;

        if (memchr(buf + i, '\0', seg) != NULL) {
            p->err = WP_EPROTO;
            return p->err;
        }
        /* the same verdicts whatever the split: counted on bytes seen so far */
        if (total > WP_AMI_MSG_MAX || line > WP_AMI_LINE_MAX + 1) {
            p->err = WP_ETOOBIG;
            return p->err;
        }
        memcpy(p->buf + p->len, buf + i, seg);
        p->len += seg;
        i += seg;
        if (nl == NULL) {
            break;
        }
        i++; /* the LF */
        if (line > 0 && p->buf[p->len - 1] == '\r') {
            p->buf[p->len - 1] = '\0';
            line--;
        }
        if (line > WP_AMI_LINE_MAX) {
            p->err = WP_ETOOBIG;
            return p->err;
        }
        p->buf[p->len++] = '\0';
        int rc = parser_line(p, fn, arg);
        if (rc < 0) {
            if (rc == WP_ETOOBIG) {
                p->err = rc;
            }
            return rc;
        }
        n += rc;
    }
    return n;
}

/* An integer header, or def when absent or not a number. */
int64_t ami_get_int(const struct wp_ami_msg *m, const char *key, int64_t def)
{
    const char *s = wp_ami_get(m, key);
    char *end = NULL;
    long long v = 0;

    if (s == NULL || s[0] == '\0') {
        return def;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s) {
        return def;
    }
    return v;
}

/* A header value that is not empty and not Asterisk's "<unknown>", else NULL. */
const char *ami_get_known(const struct wp_ami_msg *m, const char *key)
{
    const char *s = wp_ami_get(m, key);

    if (s == NULL || s[0] == '\0' || strcmp(s, "<unknown>") == 0) {
        return NULL;
    }
    return s;
}

/* When an event happened: its Timestamp header ("1767254400.125001", timestampevents=yes)
 * in ms, else the agent's clock. */
int64_t ami_event_ms(const struct wp_ami_msg *m)
{
    const char *s = wp_ami_get(m, "Timestamp");
    int64_t sec = 0;
    int64_t ms = 0;
    int digits = 0;

    if (s == NULL || *s < '0' || *s > '9') {
        return wp_clock_now_ms();
    }
    for (; *s >= '0' && *s <= '9' && sec < 100000000000LL; s++) {
        sec = sec * 10 + (*s - '0');
    }
    if (*s == '.') {
        for (s++; *s >= '0' && *s <= '9' && digits < 3; s++, digits++) {
            ms = ms * 10 + (*s - '0');
        }
    }
    for (; digits < 3; digits++) {
        ms *= 10;
    }
    if (sec <= 0 || sec >= 100000000000LL) {
        return wp_clock_now_ms();
    }
    return sec * 1000 + ms;
}
