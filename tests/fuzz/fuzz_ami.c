/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the ami probe's message parser: the input is an AMI byte stream, fed
 * whole and again split at a point taken from the input; both must give the same messages
 * and the same verdict (error or not), and every message must respect the bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ami.h"
#include "wp/err.h"
#include "wp/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_ami: invariant broken: %s\n", what);
        abort();
    }
}

/* The messages of one run, rendered as "B banner\n" / "key\tvalue\n" ... "--\n". */
struct out {
    char *s;
    size_t len, cap;
    size_t n;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        o->cap = (o->len + n + 1) * 2;
        o->s = wp_xrealloc(o->s, o->cap);
    }
    memcpy(o->s + o->len, s, n);
    o->len += n;
    o->s[o->len] = '\0';
}

static int on_msg(void *arg, const struct wp_ami_msg *m)
{
    struct out *o = arg;
    size_t bytes = 0;

    check(m->nkeys <= WP_AMI_KEYS_MAX, "at most WP_AMI_KEYS_MAX keys");
    if (m->banner != NULL) {
        check(o->n == 0, "the banner comes first");
        check(m->nkeys == 0, "a banner has no keys");
        check(m->banner[0] != '\0', "a banner is not empty");
        check(strlen(m->banner) <= WP_AMI_LINE_MAX, "banner within the line limit");
        check(strchr(m->banner, '\n') == NULL, "no LF in a banner");
        put(o, "B ", 2);
        put(o, m->banner, strlen(m->banner));
        put(o, "\n", 1);
    } else {
        check(m->nkeys > 0, "a message has keys");
    }
    for (size_t i = 0; i < m->nkeys; i++) {
        size_t kl = strlen(m->key[i]);
        size_t vl = strlen(m->val[i]);
        check(kl + vl <= WP_AMI_LINE_MAX, "key and value within the line limit");
        check(memchr(m->key[i], '\n', kl) == NULL && memchr(m->val[i], '\n', vl) == NULL,
              "no LF in keys or values");
        check(strchr(m->key[i], ':') == NULL, "keys end at the first colon");
        check(vl == 0 || (m->val[i][0] != ' ' && m->val[i][0] != '\t'), "values are trimmed");
        bytes += kl + vl + 2;
        put(o, m->key[i], kl);
        put(o, "\t", 1);
        put(o, m->val[i], vl);
        put(o, "\n", 1);
    }
    check(bytes <= WP_AMI_MSG_MAX + 2 * WP_AMI_KEYS_MAX, "message within the size limit");
    put(o, "--\n", 3);
    o->n++;
    return 0;
}

/* Feed data in two pieces cut at cut; the result (messages or error) of the whole run. */
static int run(struct wp_ami_parser *p, const uint8_t *data, size_t size, size_t cut, struct out *o)
{
    int rc = wp_ami_parse_feed(p, (const char *)data, cut, on_msg, o);
    size_t n = 0;

    if (rc < 0) {
        return rc;
    }
    n = (size_t)rc;
    rc = wp_ami_parse_feed(p, (const char *)data + cut, size - cut, on_msg, o);
    if (rc < 0) {
        return rc;
    }
    n += (size_t)rc;
    check(n == o->n, "the feed counts the messages it delivers");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct wp_ami_parser *p = NULL;
    struct out a = {0};
    struct out b = {0};
    int banner = size > 0 && (data[0] & 1) != 0;
    size_t cut = size > 1 ? ((size_t)data[size - 1] * 257 + data[0]) % size : 0;
    int ra = 0;
    int rb = 0;

    if (p == NULL) {
        p = wp_xmalloc(sizeof(*p));
        wp_ami_parser_init(p, banner);
    }
    wp_ami_parser_reset(p, banner);
    ra = run(p, data, size, size, &a);
    if (ra < 0) {
        check(ra == WP_ETOOBIG || ra == WP_EPROTO, "errors are WP_ETOOBIG or WP_EPROTO");
        check(wp_ami_parse_feed(p, "\n\n", 2, on_msg, &a) == ra, "errors are sticky");
    }
    wp_ami_parser_reset(p, banner);
    rb = run(p, data, size, cut, &b);
    check((ra < 0) == (rb < 0), "the same verdict whatever the split");
    check(a.n == b.n, "the same number of messages whatever the split");
    check(a.len == b.len && (a.len == 0 || memcmp(a.s, b.s, a.len) == 0),
          "the same messages whatever the split");
    free(a.s);
    free(b.s);
    return 0;
}
