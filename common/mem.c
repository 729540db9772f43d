/* SPDX-License-Identifier: Apache-2.0 */
/* Allocation wrappers: out of memory is not recoverable in a daemon, so abort loudly. */
#include "wp/mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wp/log.h"

static void oom(size_t n)
{
    wp_log(WP_LOG_ERROR, "mem", "out of memory allocating %zu bytes", n);
    abort();
}

void *wp_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        oom(n);
    }
    return p;
}

void *wp_xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (p == NULL) {
        oom(nmemb * size);
    }
    return p;
}

void *wp_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) {
        oom(n);
    }
    return q;
}

char *wp_xstrdup(const char *s)
{
    return wp_xstrndup(s, strlen(s));
}

char *wp_xstrndup(const char *s, size_t n)
{
    char *p = wp_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *wp_xasprintf(const char *fmt, ...)
{
    char *out = NULL;
    va_list ap;

    va_start(ap, fmt);
    int n = vasprintf(&out, fmt, ap);
    va_end(ap);
    if (n < 0) {
        oom(0);
    }
    return out;
}
