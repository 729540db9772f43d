/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by `watchpost` subcommands (see cliutil.h). */
#include "cliutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coll_conf.h"
#include "wp/conf.h"

const char *cli_iso_local(int64_t ms, char *buf, size_t n)
{
    char z[16];
    struct tm tm;
    time_t t = (time_t)(ms / 1000);

    if (ms == 0) {
        snprintf(buf, n, "-");
        return buf;
    }
    localtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    strftime(z, sizeof(z), "%z", &tm); /* +0800 */
    if (strlen(z) == 5) {
        size_t len = strlen(buf);
        snprintf(buf + len, n - len, "%.3s:%s", z, z + 3);
    }
    return buf;
}

const char *cli_short_local(int64_t ms, char *buf, size_t n)
{
    struct tm tm;
    time_t t = (time_t)(ms / 1000);

    if (ms == 0) {
        snprintf(buf, n, "-");
        return buf;
    }
    localtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%d %H:%M", &tm);
    return buf;
}

void cli_csv_field(const char *s, int last)
{
    putchar('"');
    if (s != NULL && (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\t' ||
                      s[0] == '\r')) {
        putchar('\'');
    }
    for (; s != NULL && *s != '\0'; s++) {
        if (*s == '"') {
            putchar('"');
        }
        putchar(*s);
    }
    putchar('"');
    fputs(last ? "\r\n" : ",", stdout);
}

void cli_csv_bom(void)
{
    fputs("\xEF\xBB\xBF", stdout);
}

const char *cli_state_dir(const char *config, const char *dir, struct coll_conf **conf)
{
    *conf = NULL;
    if (config != NULL) {
        struct wp_conf_err err;
        if (coll_conf_load(config, &err, conf) < 0) {
            fprintf(stderr, "%s\n", err.msg);
            return NULL;
        }
        return (*conf)->state_dir;
    }
    if (dir != NULL) {
        return dir;
    }
    const char *env = getenv("WATCHPOST_STATE_DIR");
    return env != NULL ? env : "/var/lib/watchpost";
}
