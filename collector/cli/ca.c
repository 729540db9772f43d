/* SPDX-License-Identifier: Apache-2.0 */
/* `watchpost ca`: create the fleet CA, issue, revoke and list certificates, refresh the CRL. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "wp/clock.h"
#include "wp/err.h"
#include "wp/pki.h"

#define CA_DEFAULT_CN "Watchpost CA"
#define ARGS_HELP     (-1) /* parse_args() printed the help: exit 0 */

struct ca_args {
    const char *dir;
    const char *cn;
    const char *out;
    const char *name;
    int days; /* 0: the command's default */
    int server;
};

static void ca_usage(FILE *f)
{
    fprintf(f,
            "usage: watchpost ca init [--dir D] [--cn NAME] [--days N]\n"
            "       watchpost ca issue NAME [--server] [--dir D] [--out DIR] [--days N]\n"
            "       watchpost ca revoke NAME [--dir D]\n"
            "       watchpost ca list [--dir D]\n"
            "       watchpost ca crl [--dir D] [--days N]\n"
            "\n"
            "  --dir D     the CA directory (default: $WATCHPOST_CA_DIR, else ./ca)\n"
            "  --cn NAME   the CA's common name (default: \"" CA_DEFAULT_CN "\")\n"
            "  --days N    validity: CA %d, certificates %d, CRL %d days by default\n"
            "  --server    a collector certificate (serverAuth, DNS name NAME);\n"
            "              the default is an agent certificate (clientAuth, CN = agent id)\n"
            "  --out DIR   where NAME.crt and NAME.key go (default: the CA directory)\n",
            WP_PKI_CA_DAYS, WP_PKI_CERT_DAYS, WP_PKI_CRL_DAYS);
}

static int parse_days(const char *cmd, const char *s, int *out)
{
    char *end = NULL;

    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > WP_PKI_MAX_DAYS) {
        fprintf(stderr, "ca %s: --days wants a number from 1 to %d, not \"%s\"\n", cmd,
                WP_PKI_MAX_DAYS, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* Is opt one of the comma-separated words in allowed? */
static int opt_allowed(const char *allowed, const char *opt)
{
    size_t n = strlen(opt);

    for (const char *w = allowed; *w != '\0';) {
        size_t wl = strcspn(w, ",");
        if (wl == n && strncmp(w, opt, n) == 0) {
            return 1;
        }
        w += wl;
        if (*w == ',') {
            w++;
        }
    }
    return 0;
}

/*
 * Parse argv[2..] of "ca CMD ..." into a. allowed lists the options CMD takes
 * ("dir,cn,days,server,out"); want_name says whether CMD takes one NAME.
 * Returns 0, 2 (usage error, already reported) or ARGS_HELP.
 */
static int parse_args(int argc, char **argv, const char *cmd, const char *allowed, int want_name,
                      struct ca_args *a)
{
    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = NULL;
        char opt[16];

        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            ca_usage(stdout);
            return ARGS_HELP;
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            if (!want_name || a->name != NULL) {
                fprintf(stderr, "ca %s: unexpected argument \"%s\"\n", cmd, arg);
                return 2;
            }
            a->name = arg;
            continue;
        }
        const char *eq = strchr(arg, '=');
        size_t olen = eq != NULL ? (size_t)(eq - arg - 2) : strlen(arg + 2);
        if (olen == 0 || olen >= sizeof(opt)) {
            fprintf(stderr, "ca %s: unknown option \"%s\"\n", cmd, arg);
            return 2;
        }
        memcpy(opt, arg + 2, olen);
        opt[olen] = '\0';
        if (!opt_allowed(allowed, opt)) {
            fprintf(stderr, "ca %s: unknown option \"--%s\"\n", cmd, opt);
            return 2;
        }
        if (strcmp(opt, "server") == 0) {
            if (eq != NULL) {
                fprintf(stderr, "ca %s: --server takes no value\n", cmd);
                return 2;
            }
            a->server = 1;
            continue;
        }
        if (eq != NULL) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            fprintf(stderr, "ca %s: --%s needs a value\n", cmd, opt);
            return 2;
        }
        if (strcmp(opt, "dir") == 0) {
            a->dir = val;
        } else if (strcmp(opt, "cn") == 0) {
            a->cn = val;
        } else if (strcmp(opt, "out") == 0) {
            a->out = val;
        } else if (strcmp(opt, "days") == 0 && parse_days(cmd, val, &a->days) < 0) {
            return 2;
        }
    }
    if (want_name && a->name == NULL) {
        fprintf(stderr, "ca %s: missing NAME\n", cmd);
        return 2;
    }
    if (a->dir == NULL) {
        const char *env = getenv("WATCHPOST_CA_DIR");
        a->dir = env != NULL && env[0] != '\0' ? env : "./ca";
    }
    return 0;
}

static void fmt_time(int64_t t, char *buf, size_t len)
{
    struct tm tm;
    time_t tt = (time_t)t;

    gmtime_r(&tt, &tm);
    if (strftime(buf, len, "%Y-%m-%d %H:%M UTC", &tm) == 0) {
        snprintf(buf, len, "%lld", (long long)t);
    }
}

struct list_state {
    int64_t now;
    int header_done;
};

static void print_header(struct list_state *ls)
{
    if (!ls->header_done) {
        printf("%-24s %-6s  %-32s  %-20s  %s\n", "NAME", "KIND", "SERIAL", "NOT AFTER", "STATUS");
        ls->header_done = 1;
    }
}

static int print_entry(const struct wp_pki_entry *e, void *arg)
{
    struct list_state *ls = arg;
    int64_t now = ls->now;
    char na[32];
    char ra[40];

    print_header(ls);
    fmt_time(e->not_after, na, sizeof(na));
    if (e->status == WP_PKI_REVOKED) {
        char when[32];
        fmt_time(e->revoked_at, when, sizeof(when));
        snprintf(ra, sizeof(ra), "revoked %s", when);
    } else {
        snprintf(ra, sizeof(ra), "%s", e->not_after <= now ? "expired" : "valid");
    }
    printf("%-24s %-6s  %-32s  %-20s  %s\n", e->name,
           e->kind == WP_PKI_SERVER ? "server" : "client", e->serial_hex, na, ra);
    return 0;
}

static int fail(const char *cmd, const char *err)
{
    fprintf(stderr, "ca %s: %s\n", cmd, err);
    return 1;
}

int cli_ca(int argc, char **argv)
{
    struct ca_args a = {0};
    char err[512] = "";
    int rc = 0;

    if (argc < 2) {
        ca_usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        ca_usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "init") == 0) {
        rc = parse_args(argc, argv, cmd, "dir,cn,days", 0, &a);
        if (rc != 0) {
            return rc == ARGS_HELP ? 0 : rc;
        }
        int days = a.days ? a.days : WP_PKI_CA_DAYS;
        const char *cn = a.cn != NULL ? a.cn : CA_DEFAULT_CN;
        if (wp_pki_ca_init(a.dir, cn, days, err, sizeof(err)) < 0) {
            return fail(cmd, err);
        }
        printf("created CA \"%s\" in %s (valid %d days): %s/ca.crt, %s/crl.pem\n", cn, a.dir, days,
               a.dir, a.dir);
        return 0;
    }
    if (strcmp(cmd, "issue") == 0) {
        rc = parse_args(argc, argv, cmd, "dir,out,days,server", 1, &a);
        if (rc != 0) {
            return rc == ARGS_HELP ? 0 : rc;
        }
        int days = a.days ? a.days : WP_PKI_CERT_DAYS;
        const char *out = a.out != NULL ? a.out : a.dir;
        if (wp_pki_issue(a.dir, a.name, a.server ? WP_PKI_SERVER : WP_PKI_CLIENT, days, out, err,
                         sizeof(err)) < 0) {
            return fail(cmd, err);
        }
        printf("issued %s certificate for %s (valid %d days): %s/%s.crt, %s/%s.key\n",
               a.server ? "a server" : "an agent", a.name, days, out, a.name, out, a.name);
        return 0;
    }
    if (strcmp(cmd, "revoke") == 0) {
        rc = parse_args(argc, argv, cmd, "dir", 1, &a);
        if (rc != 0) {
            return rc == ARGS_HELP ? 0 : rc;
        }
        if (wp_pki_revoke(a.dir, a.name, err, sizeof(err)) < 0) {
            return fail(cmd, err);
        }
        printf("revoked %s; %s/crl.pem rewritten\n", a.name, a.dir);
        return 0;
    }
    if (strcmp(cmd, "list") == 0) {
        rc = parse_args(argc, argv, cmd, "dir", 0, &a);
        if (rc != 0) {
            return rc == ARGS_HELP ? 0 : rc;
        }
        struct list_state ls = {.now = wp_clock_now_ms() / 1000, .header_done = 0};
        if (wp_pki_list(a.dir, print_entry, &ls, err, sizeof(err)) < 0) {
            return fail(cmd, err);
        }
        print_header(&ls); /* also for an empty CA */
        return 0;
    }
    if (strcmp(cmd, "crl") == 0) {
        rc = parse_args(argc, argv, cmd, "dir,days", 0, &a);
        if (rc != 0) {
            return rc == ARGS_HELP ? 0 : rc;
        }
        int days = a.days ? a.days : WP_PKI_CRL_DAYS;
        if (wp_pki_gen_crl(a.dir, days, err, sizeof(err)) < 0) {
            return fail(cmd, err);
        }
        printf("%s/crl.pem rewritten (next update in %d days)\n", a.dir, days);
        return 0;
    }
    fprintf(stderr, "ca: unknown command \"%s\"\n", cmd);
    ca_usage(stderr);
    return 2;
}
