/* SPDX-License-Identifier: Apache-2.0 */
/* Allocation that logs and aborts when memory runs out. */
#ifndef WP_COMMON_MEM_H
#define WP_COMMON_MEM_H

#include <stddef.h>

void *wp_xmalloc(size_t n);
void *wp_xcalloc(size_t nmemb, size_t size);
void *wp_xrealloc(void *p, size_t n);
char *wp_xstrdup(const char *s);
char *wp_xstrndup(const char *s, size_t n);
/* printf into a new string; free() it. */
char *wp_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
