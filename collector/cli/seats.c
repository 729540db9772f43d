/* SPDX-License-Identifier: Apache-2.0 */
/* `watchpost seats`: seat sessions (queue members and agents logged in) with their pauses,
 * from STATE_DIR/lines.db, as a table or as CSV for Excel. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cliutil.h"
#include "coll_conf.h"
#include "lines.h"
#include "seats.h"
#include "wp/clock.h"
#include "wp/log.h"

struct show {
    int csv;
    int64_t now_ms;
    size_t rows, open, observed;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: watchpost seats [--host H] [--since 24h|7d|YYYY-MM-DD] [--csv]\n"
               "  options: [--state-dir DIR | -c collector.yaml]\n"
               "  sessions open at some point since --since (default 24h): login, logout, time\n"
               "  logged in, paused time and pause reasons; * marks a login or logout the\n"
               "  probe inferred after a link outage instead of seeing it\n");
}

static void dur(int64_t ms, char *buf, size_t n)
{
    int64_t s = ms / 1000;

    snprintf(buf, n, "%lld:%02lld:%02lld", (long long)(s / 3600), (long long)(s % 3600 / 60),
             (long long)(s % 60));
}

static int row_cb(void *arg, const struct coll_seat_session *ss)
{
    struct show *sh = arg;
    char a[48], b[48], d[32], p[32], n[32];
    int64_t end = ss->logout_ms > 0 ? ss->logout_ms : sh->now_ms;

    sh->rows++;
    sh->open += ss->logout_ms == 0;
    sh->observed += ss->login_observed || ss->logout_observed;
    if (sh->csv) {
        cli_csv_field(ss->host, 0);
        cli_csv_field(ss->seat, 0);
        cli_csv_field(ss->queue, 0);
        cli_csv_field(cli_iso_local(ss->login_ms, a, sizeof(a)), 0);
        cli_csv_field(ss->login_observed ? "1" : "0", 0);
        cli_csv_field(ss->logout_ms > 0 ? cli_iso_local(ss->logout_ms, b, sizeof(b)) : "", 0);
        cli_csv_field(ss->logout_ms > 0 ? (ss->logout_observed ? "1" : "0") : "", 0);
        snprintf(d, sizeof(d), "%lld", (long long)((end - ss->login_ms) / 1000));
        cli_csv_field(d, 0);
        snprintf(p, sizeof(p), "%lld", (long long)(ss->paused_ms / 1000));
        cli_csv_field(p, 0);
        snprintf(n, sizeof(n), "%d", ss->npauses);
        cli_csv_field(n, 0);
        cli_csv_field(ss->reasons, 1);
        return 0;
    }
    cli_short_local(ss->login_ms, a, sizeof(a));
    if (ss->logout_ms > 0) {
        cli_short_local(ss->logout_ms, b, sizeof(b));
    } else {
        snprintf(b, sizeof(b), "(open)");
    }
    dur(end - ss->login_ms, d, sizeof(d));
    dur(ss->paused_ms, p, sizeof(p));
    printf("%-12s %-14s %-10s %-16s%-1s %-16s%-1s %9s %9s %6d %s\n", ss->host, ss->seat,
           ss->queue[0] != '\0' ? ss->queue : "-", a, ss->login_observed ? "*" : "", b,
           ss->logout_observed ? "*" : "", d, p, ss->npauses, ss->reasons);
    return 0;
}

int cli_seats(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'H'},
        {"since", required_argument, NULL, 'S'},
        CLI_CSV_LONGOPTS,
        CLI_STD_LONGOPTS,
    };
    struct cli_std so = {.cmd = "seats"};
    const char *host = NULL, *since = "24h";
    struct coll_conf *conf = NULL;
    struct coll_lines *store = NULL;
    struct show sh;
    char *path = NULL;
    int64_t since_ms = 0;
    int opt = 0, stop = 0;
    int rc = 1;

    memset(&sh, 0, sizeof(sh));
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'H':
            host = optarg;
            break;
        case 'S':
            since = optarg;
            break;
        default:
            if ((stop = cli_std_opt(&so, opt, optarg, usage)) >= 0) {
                return stop;
            }
        }
    }
    sh.csv = so.csv;
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    sh.now_ms = wp_clock_now_ms();
    if (cli_parse_since(since, sh.now_ms, &since_ms) < 0) {
        fprintf(stderr, "seats: --since takes a duration like 24h or 7d, or a date YYYY-MM-DD\n");
        return 2;
    }
    path = cli_store_path(&so, &conf, "lines.db", "no agent reported a seat session yet");
    if (path == NULL) {
        goto out;
    }
    wp_log_set_level(WP_LOG_ERROR);
    if (coll_lines_open(path, &store) < 0) {
        fprintf(stderr, "seats: cannot open %s\n", path);
        goto out;
    }
    if (sh.csv) {
        cli_csv_bom();
        printf("\"host\",\"seat\",\"queue\",\"login\",\"login_observed\",\"logout\","
               "\"logout_observed\",\"logged_in_s\",\"paused_s\",\"pauses\",\"pause_reasons\"\r\n");
    } else {
        printf("%-12s %-14s %-10s %-17s %-17s %9s %9s %6s %s\n", "HOST", "SEAT", "QUEUE", "LOGIN",
               "LOGOUT", "LOGGED-IN", "PAUSED", "PAUSES", "REASONS");
    }
    if (coll_seats_each(coll_lines_seats(store), host, since_ms, sh.now_ms, row_cb, &sh) < 0) {
        fprintf(stderr, "seats: %s\n", coll_lines_errmsg(store));
        goto out;
    }
    if (!sh.csv) {
        printf("%zu sessions, %zu open%s\n", sh.rows, sh.open,
               sh.observed > 0 ? "; * observed after a link outage, not seen" : "");
    }
    rc = 0;
out:
    coll_lines_close(store);
    free(path);
    coll_conf_free(conf);
    return rc;
}
