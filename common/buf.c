/* SPDX-License-Identifier: Apache-2.0 */
/* Growable byte buffer. */
#include "wp/buf.h"

#include <stdlib.h>
#include <string.h>

#include "wp/mem.h"

void wp_buf_init(struct wp_buf *b)
{
    memset(b, 0, sizeof(*b));
}

void wp_buf_cleanup(struct wp_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

uint8_t *wp_buf_reserve(struct wp_buf *b, size_t n)
{
    if (b->off > 0 && b->off == b->len) {
        b->off = b->len = 0;
    }
    if (b->data != NULL && b->cap - b->len >= n) {
        return b->data + b->len;
    }
    /* compact first when at least half the buffer is consumed */
    if (b->off > 0 && b->off >= b->cap / 2) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->cap - b->len >= n) {
            return b->data + b->len;
        }
    }
    size_t want = b->len + n;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < want) {
        cap *= 2;
    }
    b->data = wp_xrealloc(b->data, cap);
    b->cap = cap;
    return b->data + b->len;
}

void wp_buf_append(struct wp_buf *b, const void *p, size_t n)
{
    if (n == 0) {
        return;
    }
    uint8_t *dst = wp_buf_reserve(b, n);
    memcpy(dst, p, n);
    b->len += n;
}

void wp_buf_consume(struct wp_buf *b, size_t n)
{
    if (n >= b->len - b->off) {
        b->off = b->len = 0;
        return;
    }
    b->off += n;
}

void wp_buf_reset(struct wp_buf *b)
{
    b->off = b->len = 0;
}

void wp_sb_add(struct wp_sb *b, const void *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = wp_xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

void wp_sb_puts(struct wp_sb *b, const char *s)
{
    wp_sb_add(b, s, strlen(s));
}
