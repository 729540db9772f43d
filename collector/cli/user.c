/* SPDX-License-Identifier: Apache-2.0 */
/* `watchpost user` and `watchpost token`: dashboard users and API tokens (STATE_DIR/users.db). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>

#include "cli.h"
#include "cliutil.h"
#include "coll_conf.h"
#include "http_auth.h"
#include "wp/clock.h"
#include "wp/err.h"

#define PASS_MIN 8

static void usage(FILE *f, int token)
{
    if (token) {
        fprintf(f, "usage: watchpost token add NAME --role viewer|operator|admin\n"
                   "       watchpost token list\n"
                   "       watchpost token del NAME\n"
                   "  options: [--state-dir DIR | -c collector.yaml]\n"
                   "  add prints the token once; only its hash is stored.\n");
        return;
    }
    fprintf(f,
            "usage: watchpost user add NAME --role viewer|operator|admin\n"
            "       watchpost user passwd NAME\n"
            "       watchpost user role NAME viewer|operator|admin\n"
            "       watchpost user list\n"
            "       watchpost user del NAME\n"
            "  options: [--state-dir DIR | -c collector.yaml]\n"
            "  The password is asked for twice without echo on a terminal, else read as the\n"
            "  first line of standard input (at least %d characters).\n",
            PASS_MIN);
}

/* One line without its newline from fp into buf: 0, or -1 at EOF / too long. */
static int read_line(FILE *fp, char *buf, size_t len)
{
    if (fgets(buf, (int)len, fp) == NULL) {
        return -1;
    }
    size_t n = strcspn(buf, "\r\n");
    if (buf[n] == '\0' && n == len - 1) {
        return -1; /* longer than the buffer */
    }
    buf[n] = '\0';
    return 0;
}

static int prompt(const char *what, char *buf, size_t len)
{
    struct termios old, quiet;
    int rc = 0;

    fprintf(stderr, "%s: ", what);
    fflush(stderr);
    if (tcgetattr(STDIN_FILENO, &old) != 0) {
        return -1;
    }
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    quiet.c_lflag |= ECHONL;
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) != 0) {
        return -1;
    }
    rc = read_line(stdin, buf, len);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    return rc;
}

/* The new password: twice from the terminal, or one line of stdin. 0 or -1 (said why). */
static int get_password(char *buf, size_t len)
{
    char again[HTTP_AUTH_PASS_MAX + 2];
    int rc = -1;

    if (isatty(STDIN_FILENO)) {
        if (prompt("New password", buf, len) == 0 && prompt("Again", again, sizeof(again)) == 0) {
            rc = strcmp(buf, again) == 0 ? 0 : -1;
            if (rc < 0) {
                fprintf(stderr, "the passwords differ\n");
            }
        }
    } else {
        rc = read_line(stdin, buf, len);
        if (rc < 0) {
            fprintf(stderr, "no password on standard input (or longer than %d bytes)\n",
                    HTTP_AUTH_PASS_MAX);
        }
    }
    mbedtls_platform_zeroize(again, sizeof(again));
    if (rc == 0 && strlen(buf) < PASS_MIN) {
        fprintf(stderr, "the password must have at least %d characters\n", PASS_MIN);
        rc = -1;
    }
    return rc;
}

static int row(void *arg, const char *name, enum http_role role, int64_t created_ms,
               int64_t last_ms)
{
    char c[48], l[48];

    (void)arg;
    printf("%-24s %-9s %-17s %s\n", name, http_role_name(role),
           cli_short_local(created_ms, c, sizeof(c)), cli_short_local(last_ms, l, sizeof(l)));
    return 0;
}

static int open_db(const char *sd, struct http_auth **a)
{
    char path[4096];
    struct stat dst;

    if ((size_t)snprintf(path, sizeof(path), "%s/users.db", sd) >= sizeof(path)) {
        fprintf(stderr, "state dir path too long\n");
        return -1;
    }
    int existed = access(path, F_OK) == 0;
    int rc = http_auth_open(path, NULL, a);
    if (rc < 0) {
        fprintf(stderr, "cannot open %s: %s\n", path, wp_strerror(rc));
        return -1;
    }
    /* created by root for a collector that runs as the state dir's owner: give it to them */
    if (!existed && geteuid() == 0 && stat(sd, &dst) == 0 && dst.st_uid != 0 &&
        chown(path, dst.st_uid, dst.st_gid) != 0) {
        fprintf(stderr, "warning: cannot give %s to uid %u: %s\n", path, (unsigned)dst.st_uid,
                strerror(errno));
    }
    return 0;
}

static void usage_user(FILE *f)
{
    usage(f, 0);
}

static void usage_token(FILE *f)
{
    usage(f, 1);
}

static int cmd(int argc, char **argv, int token)
{
    static const struct option longopts[] = {
        {"role", required_argument, NULL, 'r'},
        CLI_STD_LONGOPTS,
    };
    struct cli_std so = {.cmd = token ? "token" : "user"};
    const char *role_s = NULL;
    struct coll_conf *conf = NULL;
    struct http_auth *a = NULL;
    char pw[HTTP_AUTH_PASS_MAX + 2];
    int rc = 1;
    int o, stop;

    optind = 1;
    while ((o = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (o) {
        case 'r':
            role_s = optarg;
            break;
        default:
            if ((stop = cli_std_opt(&so, o, optarg, token ? usage_token : usage_user)) >= 0) {
                return stop;
            }
        }
    }
    const char *sub = optind < argc ? argv[optind++] : "list";
    const char *name = optind < argc ? argv[optind++] : NULL;
    if (strcmp(sub, "role") == 0 && !token && optind < argc) {
        role_s = argv[optind++];
    }
    if (optind < argc) {
        usage(stderr, token);
        return 2;
    }
    int needs_name = strcmp(sub, "list") != 0;
    if ((needs_name && !http_auth_name_ok(name)) ||
        (strcmp(sub, "add") == 0 || strcmp(sub, "role") == 0) !=
            (http_role_parse(role_s) != HTTP_ROLE_NONE)) {
        if (needs_name && name != NULL && !http_auth_name_ok(name)) {
            fprintf(stderr, "bad name \"%s\": 1 to %d of A-Z a-z 0-9 . _ @ -\n", name,
                    HTTP_AUTH_NAME_MAX);
        }
        usage(stderr, token);
        return 2;
    }
    enum http_role role = http_role_parse(role_s);
    const char *sd = cli_state_dir(so.config, so.dir, &conf);
    if (sd == NULL || open_db(sd, &a) < 0) {
        goto out;
    }
    int64_t now = wp_clock_now_ms();
    int r = 0;
    if (strcmp(sub, "list") == 0) {
        printf("%-24s %-9s %-17s %s\n", "NAME", "ROLE", "CREATED",
               token ? "LAST USED" : "LAST LOGIN");
        r = token ? http_auth_token_each(a, row, NULL) : http_auth_user_each(a, row, NULL);
    } else if (strcmp(sub, "del") == 0) {
        r = token ? http_auth_token_del(a, name) : http_auth_user_del(a, name);
    } else if (token && strcmp(sub, "add") == 0) {
        char tok[HTTP_AUTH_TOKEN_LEN + 1];
        r = http_auth_token_add(a, name, role, now, tok, sizeof(tok));
        if (r == 0) {
            printf("%s\n", tok);
            fprintf(stderr, "token %s (%s) created: it is shown only now\n", name,
                    http_role_name(role));
        }
        mbedtls_platform_zeroize(tok, sizeof(tok));
    } else if (!token && (strcmp(sub, "add") == 0 || strcmp(sub, "passwd") == 0)) {
        if (get_password(pw, sizeof(pw)) < 0) {
            goto out;
        }
        r = strcmp(sub, "add") == 0 ? http_auth_user_add(a, name, role, pw, now)
                                    : http_auth_user_passwd(a, name, pw, now);
    } else if (!token && strcmp(sub, "role") == 0) {
        r = http_auth_user_role(a, name, role);
    } else {
        usage(stderr, token);
        rc = 2;
        goto out;
    }
    if (r == -EEXIST) {
        fprintf(stderr, "%s %s exists already\n", token ? "token" : "user", name);
    } else if (r == WP_ENOTFOUND) {
        fprintf(stderr, "no %s %s\n", token ? "token" : "user", name);
    } else if (r < 0) {
        fprintf(stderr, "%s %s: %s (%s)\n", token ? "token" : "user", sub, wp_strerror(r),
                http_auth_errmsg(a));
    } else {
        rc = 0;
    }
out:
    mbedtls_platform_zeroize(pw, sizeof(pw));
    http_auth_close(a);
    coll_conf_free(conf);
    return rc;
}

int cli_user(int argc, char **argv)
{
    return cmd(argc, argv, 0);
}

int cli_token(int argc, char **argv)
{
    return cmd(argc, argv, 1);
}
