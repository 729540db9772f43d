/* SPDX-License-Identifier: Apache-2.0 */
/* Line-at-a-time logging to stderr. */
#include "wp/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "wp/err.h"

int wp_log_level_cur = WP_LOG_INFO;

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

const char *const wp_log_level_names[] = {"error", "warn", "info", "debug", NULL};

void wp_log_set_level(enum wp_log_level level)
{
    wp_log_level_cur = (int)level;
}

int wp_log_level_parse(const char *s, enum wp_log_level *out)
{
    for (int i = 0; wp_log_level_names[i] != NULL; i++) {
        if (strcasecmp(s, wp_log_level_names[i]) == 0) {
            *out = (enum wp_log_level)i;
            return 0;
        }
    }
    return WP_ECONFIG;
}

void wp_log(enum wp_log_level level, const char *component, const char *fmt, ...)
{
    char line[2048];
    int n = 0;
    va_list ap;

    if ((int)level < 0 || (int)level > WP_LOG_DEBUG) {
        level = WP_LOG_ERROR;
    }
    n = snprintf(line, sizeof(line), "%s %s: ", level_names[level], component);
    if (n < 0) {
        return;
    }
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (m < 0) {
        return;
    }
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2) {
        len = sizeof(line) - 2;
    }
    line[len++] = '\n';
    /* one write() per line so lines from threads and processes do not interleave */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
