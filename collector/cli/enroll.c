/* SPDX-License-Identifier: Apache-2.0 */
/* `watchpost enroll-token`: bootstrap tokens for agent enrolment (STATE_DIR/enroll.db). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>

#include "cli.h"
#include "cliutil.h"
#include "coll_conf.h"
#include "enroll.h"
#include "wp/clock.h"
#include "wp/conf.h"
#include "wp/err.h"
#include "wp/pki.h"

#define DEFAULT_TTL "24h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: watchpost enroll-token add [--ttl 24h] [--name AGENT_ID]\n"
            "       watchpost enroll-token list\n"
            "       watchpost enroll-token del ID\n"
            "       watchpost enroll-token prune\n"
            "  options: [--state-dir DIR | -c collector.yaml]\n"
            "  add prints a single-use token once (only its hash is stored); it expires after\n"
            "  --ttl (default " DEFAULT_TTL ") and, with --name, only that agent id may use it.\n"
            "  An agent uses it with: watchpost-agent enroll --collector HOST:PORT --token T\n"
            "  prune deletes used and expired tokens.\n");
}

static int row(void *arg, const struct enroll_token_info *t)
{
    char c[48], x[48], u[48];
    int64_t now = *(const int64_t *)arg;
    const char *state = t->used_ms != 0 ? "used" : now >= t->expires_ms ? "expired" : "unused";

    printf("%-16s %-20s %-17s %-17s %-7s %s%s%s\n", t->id, t->agent[0] ? t->agent : "(any)",
           cli_short_local(t->created_ms, c, sizeof(c)),
           cli_short_local(t->expires_ms, x, sizeof(x)), state,
           t->used_ms != 0 ? cli_short_local(t->used_ms, u, sizeof(u)) : "",
           t->used_ms != 0 ? " by " : "", t->used_ms != 0 ? t->used_by : "");
    return 0;
}

static int open_db(const char *sd, struct enroll_store **s)
{
    char path[4096];
    struct stat dst;

    if ((size_t)snprintf(path, sizeof(path), "%s/enroll.db", sd) >= sizeof(path)) {
        fprintf(stderr, "state dir path too long\n");
        return -1;
    }
    int existed = access(path, F_OK) == 0;
    int rc = enroll_store_open(path, s);
    if (rc < 0) {
        fprintf(stderr, "cannot open %s: %s\n", path, wp_strerror(rc));
        return -1;
    }
    /* made by root for a collector that runs as the state dir's owner: give it to them */
    if (!existed && geteuid() == 0 && stat(sd, &dst) == 0 && dst.st_uid != 0) {
        char side[4200];
        if (chown(path, dst.st_uid, dst.st_gid) != 0) {
            fprintf(stderr, "warning: cannot give %s to uid %u: %s\n", path, (unsigned)dst.st_uid,
                    strerror(errno));
        }
        /* and the WAL files SQLite may have made beside it */
        snprintf(side, sizeof(side), "%s-wal", path);
        (void)!chown(side, dst.st_uid, dst.st_gid);
        snprintf(side, sizeof(side), "%s-shm", path);
        (void)!chown(side, dst.st_uid, dst.st_gid);
    }
    return 0;
}

/* The CA's fingerprint for the agent's --ca-fingerprint, when the config names the CA. */
static void print_fingerprint(const struct coll_conf *conf)
{
    char path[4096], buf[WP_PKI_CERT_MAX + 1], fp[65];
    size_t n = 0;
    FILE *f = NULL;

    if (conf == NULL || conf->http.enroll.ca_dir == NULL ||
        (size_t)snprintf(path, sizeof(path), "%s/ca.crt", conf->http.enroll.ca_dir) >=
            sizeof(path)) {
        return;
    }
    f = fopen(path, "re");
    if (f == NULL) {
        return;
    }
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    if (n > 0 && n <= WP_PKI_CERT_MAX && wp_pki_fingerprint(buf, n, fp) == 0) {
        fprintf(stderr, "CA fingerprint (for --ca-fingerprint): %s\n", fp);
    }
}

int cli_enroll_token(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"ttl", required_argument, NULL, 't'},
        {"name", required_argument, NULL, 'n'},
        CLI_STD_LONGOPTS,
    };
    struct cli_std so = {.cmd = "enroll-token"};
    const char *ttl_s = NULL, *name = NULL;
    struct coll_conf *conf = NULL;
    struct enroll_store *s = NULL;
    int64_t ttl = 0;
    int rc = 1;
    int o, stop;

    optind = 1;
    while ((o = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (o) {
        case 't':
            ttl_s = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        default:
            if ((stop = cli_std_opt(&so, o, optarg, usage)) >= 0) {
                return stop;
            }
        }
    }
    const char *sub = optind < argc ? argv[optind++] : "list";
    const char *id = NULL;
    if (strcmp(sub, "del") == 0) {
        id = optind < argc ? argv[optind++] : NULL;
        if (id == NULL) {
            usage(stderr);
            return 2;
        }
    }
    int is_add = strcmp(sub, "add") == 0;
    if (optind < argc || (!is_add && (ttl_s != NULL || name != NULL)) ||
        (strcmp(sub, "list") != 0 && strcmp(sub, "del") != 0 && strcmp(sub, "prune") != 0 &&
         !is_add)) {
        usage(stderr);
        return 2;
    }
    if (is_add) {
        if (wp_parse_duration_ms(ttl_s != NULL ? ttl_s : DEFAULT_TTL, &ttl) < 0 || ttl < 1000 ||
            ttl > ENROLL_TTL_MAX_MS) {
            fprintf(stderr, "enroll-token: --ttl wants a duration from 1s to 366d (e.g. 24h)\n");
            return 2;
        }
        if (name != NULL && !wp_pki_name_ok(name)) {
            fprintf(stderr,
                    "enroll-token: bad agent id \"%s\": 1 to %d of A-Z a-z 0-9 . _ -, starting "
                    "alphanumeric\n",
                    name, WP_PKI_NAME_MAX);
            return 2;
        }
    }
    const char *sd = cli_state_dir(so.config, so.dir, &conf);
    if (sd == NULL || open_db(sd, &s) < 0) {
        goto out;
    }
    int64_t now = wp_clock_now_ms();
    int r = 0;
    if (strcmp(sub, "list") == 0) {
        printf("%-16s %-20s %-17s %-17s %-7s %s\n", "ID", "AGENT", "CREATED", "EXPIRES", "STATE",
               "USED");
        r = enroll_token_each(s, row, &now);
    } else if (strcmp(sub, "del") == 0) {
        r = enroll_token_del(s, id);
        if (r == WP_ENOTFOUND) {
            fprintf(stderr, "no enrolment token %s\n", id);
            goto out;
        }
    } else if (strcmp(sub, "prune") == 0) {
        r = enroll_token_prune(s, now, 0);
        if (r >= 0) {
            fprintf(stderr, "%d token%s deleted\n", r, r == 1 ? "" : "s");
        }
    } else {
        char tok[ENROLL_TOKEN_LEN + 1], tid[ENROLL_ID_LEN + 1], exp[48];
        r = enroll_token_add(s, name, ttl, now, tok, sizeof(tok), tid);
        if (r == 0) {
            printf("%s\n", tok);
            fflush(stdout);
            fprintf(stderr,
                    "enrolment token %s for %s, single use, expires %s: it is shown only now\n",
                    tid, name != NULL ? name : "any agent id",
                    cli_iso_local(now + ttl, exp, sizeof(exp)));
            print_fingerprint(conf);
        }
        mbedtls_platform_zeroize(tok, sizeof(tok));
    }
    if (r < 0) {
        fprintf(stderr, "enroll-token %s: %s (%s)\n", sub, wp_strerror(r), enroll_store_errmsg(s));
        goto out;
    }
    rc = 0;
out:
    enroll_store_close(s);
    coll_conf_free(conf);
    return rc;
}
