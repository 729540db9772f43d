/* SPDX-License-Identifier: Apache-2.0 */
/* `watchpost maintenance`: add, list and end the maintenance windows operators make at run
 * time (maint.h, in STATE_DIR/incidents.db); a running collector sees a change within a
 * second. The rules config's own windows (`maintenance:` in rules files) are listed with -c. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cliutil.h"
#include "coll_conf.h"
#include "maint.h"
#include "rules.h"
#include "wp/clock.h"
#include "wp/conf.h"
#include "wp/err.h"
#include "wp/mem.h"

#define PAST_MS (30LL * 86400 * 1000)

static void usage(FILE *f)
{
    fprintf(f, "usage: watchpost maintenance add NAME [--hosts H,H] [--groups G,G] [--from TIME]\n"
               "                                 (--to TIME | --for DURATION) [--reason TEXT]\n"
               "                                 [--by NAME]\n"
               "       watchpost maintenance list [--all] [--csv | --format text|csv]\n"
               "       watchpost maintenance end ID [--by NAME]\n"
               "  TIME: now, +30m, 2026-03-01T22:00:00+08:00, 2026-03-01 22:00 (local)\n"
               "  list shows active, upcoming and the last 30 days' ended windows (--all: every "
               "one)\n"
               "  options for all: [--state-dir DIR | -c collector.yaml] (with -c, groups are\n"
               "  checked against the rules config and its own windows are listed too)\n");
}

/* "a,b c" -> v (pointers into buf); returns the count or -1 when over max */
static int split_names(char *buf, const char **v, int n, int max)
{
    for (char *save = NULL, *t = strtok_r(buf, ", \t", &save); t != NULL;
         t = strtok_r(NULL, ", \t", &save)) {
        if (n >= max) {
            return -1;
        }
        v[n++] = t;
    }
    return n;
}

static const char *default_by(char *buf, size_t len)
{
    const char *u = getenv("SUDO_USER");
    if (u == NULL || u[0] == '\0') {
        struct passwd *pw = getpwuid(getuid());
        u = pw != NULL ? pw->pw_name : getenv("USER");
    }
    snprintf(buf, len, "%s", u != NULL && u[0] != '\0' ? u : "cli");
    return buf;
}

static const char *win_state(const struct maint_win *w, int64_t now)
{
    if (w->ended_ms != 0 && w->ended_ms <= now) {
        return "ended";
    }
    if (now >= w->ends_ms) {
        return "over";
    }
    return now >= w->starts_ms ? "active" : "upcoming";
}

static char *targets(const struct maint_win *w)
{
    size_t len = 1;
    for (size_t i = 0; i < w->nhosts; i++) {
        len += strlen(w->hosts[i]) + 1;
    }
    for (size_t i = 0; i < w->ngroups; i++) {
        len += strlen(w->groups[i]) + 7;
    }
    char *s = wp_xcalloc(1, len);
    for (size_t i = 0; i < w->nhosts; i++) {
        strcat(s, s[0] != '\0' ? "," : "");
        strcat(s, w->hosts[i]);
    }
    for (size_t i = 0; i < w->ngroups; i++) {
        strcat(s, s[0] != '\0' ? "," : "");
        strcat(s, "group:");
        strcat(s, w->groups[i]);
    }
    return s;
}

struct show {
    int csv;
    int64_t now;
    size_t rows;
};

static int row_cb(void *arg, const struct maint_win *w)
{
    struct show *sh = arg;
    char id[32], a[48], b[48], e[48], c[48];
    char *t = targets(w);
    int64_t end = maint_win_end(w); /* a cancelled window ended before its start */

    sh->rows++;
    snprintf(id, sizeof(id), "%" PRId64, w->id);
    if (sh->csv) {
        cli_csv_field(id, 0);
        cli_csv_field(win_state(w, sh->now), 0);
        cli_csv_field(w->name, 0);
        cli_csv_field(t, 0);
        cli_csv_field(cli_iso_local(w->starts_ms, a, sizeof(a)), 0);
        cli_csv_field(cli_iso_local(w->ends_ms, b, sizeof(b)), 0);
        cli_csv_field(w->ended_ms != 0 ? cli_iso_local(w->ended_ms, e, sizeof(e)) : "", 0);
        cli_csv_field(w->ended_by, 0);
        cli_csv_field(w->created_by, 0);
        cli_csv_field(cli_iso_local(w->created_ms, c, sizeof(c)), 0);
        cli_csv_field(w->reason, 1);
    } else {
        printf("%-5s %-8s %-16s %-16s %-24s %-32s %-12s %s\n", id, win_state(w, sh->now),
               cli_short_local(w->starts_ms, a, sizeof(a)),
               cli_short_local(end < w->starts_ms ? w->starts_ms : end, b, sizeof(b)), w->name, t,
               w->created_by, w->reason);
    }
    free(t);
    return 0;
}

static void list_config(const struct rule_set *rs)
{
    static const char *const days[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};

    if (rs == NULL || rs->nmaint == 0) {
        return;
    }
    printf("\nfrom the rules config (read-only here):\n");
    for (size_t i = 0; i < rs->nmaint; i++) {
        const struct rule_maint *m = &rs->maint[i];
        char when[128] = "", a[48], b[48];
        if (m->weekly) {
            for (int d = 0; d < 7; d++) {
                if (m->days & (1u << d)) {
                    strcat(when, days[d]);
                    strcat(when, ",");
                }
            }
            size_t l = strlen(when);
            snprintf(when + (l > 0 ? l - 1 : 0), sizeof(when) - (l > 0 ? l - 1 : 0),
                     " %02d:%02d-%02d:%02d", m->from_min / 60 % 100, m->from_min % 60,
                     m->to_min / 60 % 100, m->to_min % 60);
        } else {
            snprintf(when, sizeof(when), "%s - %s", cli_short_local(m->start_ms, a, sizeof(a)),
                     cli_short_local(m->end_ms, b, sizeof(b)));
        }
        printf("  %-24s %s\n", m->name, when);
    }
}

int cli_maintenance(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"hosts", required_argument, NULL, 'H'},
        {"groups", required_argument, NULL, 'G'},
        {"from", required_argument, NULL, 'F'},
        {"to", required_argument, NULL, 'T'},
        {"for", required_argument, NULL, 'D'},
        {"reason", required_argument, NULL, 'r'},
        {"by", required_argument, NULL, 'b'},
        {"all", no_argument, NULL, 'a'},
        CLI_CSV_LONGOPTS,
        CLI_STD_LONGOPTS,
    };
    struct cli_std so = {.cmd = "maintenance"};
    const char *from = NULL, *to = NULL, *dur = NULL, *reason = NULL, *by = NULL;
    char *hosts_arg = NULL, *groups_arg = NULL;
    int all = 0, csv = 0;
    struct coll_conf *conf = NULL;
    struct rule_set *rs = NULL;
    struct maint_store *st = NULL;
    char path[4096], err[512] = "", bybuf[96];
    int rc = 1;
    int o;

    optind = 1;
    while ((o = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (o) {
        case 'H':
            free(hosts_arg);
            hosts_arg = wp_xstrdup(optarg);
            break;
        case 'G':
            free(groups_arg);
            groups_arg = wp_xstrdup(optarg);
            break;
        case 'F':
            from = optarg;
            break;
        case 'T':
            to = optarg;
            break;
        case 'D':
            dur = optarg;
            break;
        case 'r':
            reason = optarg;
            break;
        case 'b':
            by = optarg;
            break;
        case 'a':
            all = 1;
            break;
        default:
            rc = cli_std_opt(&so, o, optarg, usage);
            if (rc >= 0) {
                goto out;
            }
            rc = 1;
        }
    }
    csv = so.csv;
    const char *cmd = optind < argc ? argv[optind++] : "list";
    if (strcmp(cmd, "add") != 0 && strcmp(cmd, "list") != 0 && strcmp(cmd, "end") != 0) {
        fprintf(stderr, "maintenance: unknown subcommand \"%s\"\n", cmd);
        usage(stderr);
        goto out_usage;
    }
    const char *sd = cli_state_dir(so.config, so.dir, &conf);
    if (sd == NULL) {
        goto out;
    }
    if (conf != NULL && conf->incidents.rules.n > 0) {
        struct wp_conf_err e;
        memset(&e, 0, sizeof(e));
        if (rules_load((const char *const *)conf->incidents.rules.v, conf->incidents.rules.n, &e,
                       &rs) < 0) {
            fprintf(stderr, "maintenance: %s\n", e.msg);
            goto out;
        }
    }
    snprintf(path, sizeof(path), "%s/incidents.db", sd);
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "maintenance: no %s (has the collector run with this state dir?)\n", path);
        goto out;
    }
    if (maint_open(path, &st) < 0) {
        fprintf(stderr, "maintenance: cannot open %s\n", path);
        goto out;
    }
    int64_t now = wp_clock_now_ms();
    if (by == NULL) {
        by = default_by(bybuf, sizeof(bybuf));
    }

    if (strcmp(cmd, "list") == 0) {
        struct show sh = {csv, now, 0};
        if (csv) {
            cli_csv_bom();
            printf("id,state,name,targets,starts,ends,ended,ended_by,created_by,created,"
                   "reason\r\n");
        } else {
            printf("%-5s %-8s %-16s %-16s %-24s %-32s %-12s %s\n", "ID", "STATE", "FROM", "TO",
                   "NAME", "HOSTS/GROUPS", "BY", "REASON");
        }
        if (maint_list(st, all ? INT64_MIN : now - PAST_MS, row_cb, &sh) < 0) {
            fprintf(stderr, "maintenance: %s\n", maint_errmsg(st));
            goto out;
        }
        if (!csv) {
            printf("%zu window%s\n", sh.rows, sh.rows == 1 ? "" : "s");
            list_config(rs);
        }
        rc = 0;
    } else if (strcmp(cmd, "end") == 0) {
        int64_t id = 0;
        char *end = NULL;
        if (optind >= argc) {
            fprintf(stderr, "maintenance end: which window? (an ID from `maintenance list`)\n");
            goto out_usage;
        }
        errno = 0;
        id = strtoll(argv[optind], &end, 10);
        if (errno != 0 || end == argv[optind] || *end != '\0' || id <= 0) {
            fprintf(stderr, "maintenance end: \"%s\" is not a window ID\n", argv[optind]);
            goto out_usage;
        }
        if (maint_end(st, id, by, now, err, sizeof(err)) < 0) {
            fprintf(stderr, "maintenance end: %s\n", err);
            goto out;
        }
        printf("maintenance window %" PRId64 " ended\n", id);
        rc = 0;
    } else {
        const char *hosts[MAINT_TARGETS], *groups[MAINT_TARGETS];
        struct maint_new n;
        int nh = 0, ng = 0;
        int64_t id = 0, d = 0;

        memset(&n, 0, sizeof(n));
        if (optind >= argc) {
            fprintf(stderr, "maintenance add: a NAME is required\n");
            goto out_usage;
        }
        n.name = argv[optind];
        if ((hosts_arg != NULL && (nh = split_names(hosts_arg, hosts, 0, MAINT_TARGETS)) < 0) ||
            (groups_arg != NULL && (ng = split_names(groups_arg, groups, 0, MAINT_TARGETS)) < 0)) {
            fprintf(stderr, "maintenance add: at most %d hosts and groups\n", MAINT_TARGETS);
            goto out;
        }
        n.hosts = hosts;
        n.nhosts = (size_t)nh;
        n.groups = groups;
        n.ngroups = (size_t)ng;
        n.reason = reason;
        n.by = by;
        n.starts_ms = now;
        if (from != NULL && maint_parse_time(from, now, &n.starts_ms) < 0) {
            fprintf(stderr,
                    "maintenance add: --from \"%s\": expected now, +30m, "
                    "2026-03-01T22:00:00+08:00 or 2026-03-01 22:00\n",
                    from);
            goto out;
        }
        if ((to == NULL) == (dur == NULL)) {
            fprintf(stderr, "maintenance add: give --to TIME or --for DURATION (one of them)\n");
            goto out;
        }
        if (to != NULL && maint_parse_time(to, now, &n.ends_ms) < 0) {
            fprintf(stderr,
                    "maintenance add: --to \"%s\": expected +2h, "
                    "2026-03-02T02:00:00+08:00 or 2026-03-02 02:00\n",
                    to);
            goto out;
        }
        if (dur != NULL) {
            if (wp_parse_duration_ms(dur, &d) < 0 || d <= 0 || d > MAINT_TIME_MAX ||
                n.starts_ms < 0 || n.starts_ms > MAINT_TIME_MAX) {
                fprintf(stderr,
                        "maintenance add: --for \"%s\": expected a duration like 90m, "
                        "2h, 1d\n",
                        dur);
                goto out;
            }
            n.ends_ms = n.starts_ms + d;
        }
        if (rs == NULL && ng > 0) {
            fprintf(stderr, "maintenance add: note: groups are not checked without -c "
                            "collector.yaml\n");
        }
        if (maint_add(st, &n, rs, now, &id, err, sizeof(err)) < 0) {
            fprintf(stderr, "maintenance add: %s\n", err);
            goto out;
        }
        char a[48], b[48];
        printf("maintenance window %" PRId64 " \"%s\": %s - %s\n", id, n.name,
               cli_iso_local(n.starts_ms, a, sizeof(a)), cli_iso_local(n.ends_ms, b, sizeof(b)));
        rc = 0;
    }
    goto out;
out_usage:
    rc = 2;
out:
    maint_close(st);
    rules_free(rs);
    coll_conf_free(conf);
    free(hosts_arg);
    free(groups_arg);
    return rc;
}
