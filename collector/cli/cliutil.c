/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by `watchpost` subcommands (see cliutil.h). */
#include "cliutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "coll_conf.h"
#include "wp/conf.h"
#include "wp/mem.h"

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

void cli_csv_head(const char *const *names)
{
    cli_csv_bom();
    for (size_t i = 0; names[i] != NULL; i++) {
        cli_csv_field(names[i], names[i + 1] == NULL);
    }
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

int cli_std_opt(struct cli_std *s, int o, const char *arg, void (*usage)(FILE *f))
{
    switch (o) {
    case 'd':
        s->dir = arg;
        return -1;
    case 'c':
        s->config = arg;
        return -1;
    case 'C':
        s->csv = 1;
        return -1;
    case 'f':
        if (strcmp(arg, "csv") != 0 && strcmp(arg, "text") != 0) {
            fprintf(stderr, "%s: --format must be text or csv\n", s->cmd);
            return 2;
        }
        s->csv = strcmp(arg, "csv") == 0;
        return -1;
    case 'h':
        usage(stdout);
        return 0;
    default:
        usage(stderr);
        return 2;
    }
}

char *cli_store_path(const struct cli_std *s, struct coll_conf **conf, const char *file,
                     const char *why)
{
    const char *dir = cli_state_dir(s->config, s->dir, conf);
    char *path = NULL;

    if (dir == NULL) {
        return NULL;
    }
    path = wp_xasprintf("%s/%s", dir, file);
    if (access(path, F_OK) != 0) {
        fprintf(stderr, "%s: no %s in %s: %s\n", s->cmd, file, dir,
                errno == ENOENT ? why : strerror(errno));
        free(path);
        return NULL;
    }
    return path;
}

int cli_parse_since(const char *s, int64_t now_ms, int64_t *out)
{
    static const char *const fmts[] = {"%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"};
    int64_t d = 0;
    struct tm tm;

    if (wp_parse_duration_ms(s, &d) == 0) {
        *out = now_ms - d;
        return 0;
    }
    for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
        const char *end = NULL;
        memset(&tm, 0, sizeof(tm));
        end = strptime(s, fmts[i], &tm);
        if (end != NULL && *end == '\0') {
            tm.tm_isdst = -1;
            time_t t = mktime(&tm);
            if (t == (time_t)-1) {
                return -1;
            }
            *out = (int64_t)t * 1000;
            return 0;
        }
    }
    return -1;
}
