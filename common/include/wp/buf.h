/* SPDX-License-Identifier: Apache-2.0 */
/* A growable byte buffer with a read offset (consume from the front, append at the back), and a
 * growable NUL-terminated string for text built piece by piece. */
#ifndef WP_COMMON_BUF_H
#define WP_COMMON_BUF_H

#include <stddef.h>
#include <stdint.h>

struct wp_buf {
    uint8_t *data;
    size_t off; /* first unread byte */
    size_t len; /* end of valid bytes; unread = len - off */
    size_t cap;
};

void wp_buf_init(struct wp_buf *b);
void wp_buf_cleanup(struct wp_buf *b);
/* Make room for n more bytes at the back; returns a pointer to that space. */
uint8_t *wp_buf_reserve(struct wp_buf *b, size_t n);
void wp_buf_append(struct wp_buf *b, const void *p, size_t n);
/* Drop n unread bytes from the front. */
void wp_buf_consume(struct wp_buf *b, size_t n);
void wp_buf_reset(struct wp_buf *b);

/* A growable NUL-terminated string built piece by piece (a mail, a config node's text). Start
 * from {NULL, 0, 0}; p stays NULL until the first add and then belongs to the caller, who frees
 * it with free(). */
struct wp_sb {
    char *p;
    size_t n;   /* length, without the NUL */
    size_t cap; /* bytes allocated */
};

/* Append n bytes of s and keep a NUL after them (aborts when out of memory, as wp_xrealloc). */
void wp_sb_add(struct wp_sb *b, const void *s, size_t n);
/* Append the C string s. */
void wp_sb_puts(struct wp_sb *b, const char *s);

static inline size_t wp_buf_unread(const struct wp_buf *b)
{
    return b->len - b->off;
}

static inline const uint8_t *wp_buf_head(const struct wp_buf *b)
{
    static const uint8_t empty[1];
    return b->data != NULL ? b->data + b->off : empty; /* NULL + 0 is undefined in C */
}

#endif
