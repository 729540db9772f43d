/* SPDX-License-Identifier: Apache-2.0 */
/* Logging to stderr (journald) as "LEVEL component: message key=value". */
#ifndef WP_COMMON_LOG_H
#define WP_COMMON_LOG_H

enum wp_log_level { WP_LOG_ERROR = 0, WP_LOG_WARN, WP_LOG_INFO, WP_LOG_DEBUG };

extern int wp_log_level_cur; /* read by the macros; set with wp_log_set_level() */

/* Set the threshold; messages above it are not formatted. */
void wp_log_set_level(enum wp_log_level level);

/* "error", "warn", "info", "debug" (indexed by enum wp_log_level) and NULL, for option
 * tables (WP_OPT_ENUM). */
extern const char *const wp_log_level_names[];

/* Parse "error|warn|info|debug"; returns 0 and sets *out, or WP_ECONFIG. */
int wp_log_level_parse(const char *s, enum wp_log_level *out);

/* Write one line. Thread-safe (one write() per line). Use the macros instead. */
void wp_log(enum wp_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define WP_LOG_AT(lvl, comp, ...)                                                                  \
    do {                                                                                           \
        if ((int)(lvl) <= wp_log_level_cur) {                                                      \
            wp_log((lvl), (comp), __VA_ARGS__);                                                    \
        }                                                                                          \
    } while (0)
#define WP_ERROR(comp, ...) WP_LOG_AT(WP_LOG_ERROR, comp, __VA_ARGS__)
#define WP_WARN(comp, ...)  WP_LOG_AT(WP_LOG_WARN, comp, __VA_ARGS__)
#define WP_INFO(comp, ...)  WP_LOG_AT(WP_LOG_INFO, comp, __VA_ARGS__)
#define WP_DEBUG(comp, ...) WP_LOG_AT(WP_LOG_DEBUG, comp, __VA_ARGS__)

#endif
