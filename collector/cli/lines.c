/* SPDX-License-Identifier: Apache-2.0 */
/* `watchpost lines`: the table of phone lines, IVR ports and trunks with their states, and
 * the history of one line's changes (STATE_DIR/lines.db). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cliutil.h"
#include "coll_conf.h"
#include "lines.h"
#include "wp/clock.h"
#include "wp/conf.h"
#include "wp/log.h"
#include "wp/mem.h"

struct show {
    int csv;
    int history;
    int64_t now_ms;
    size_t rows;
    size_t by_state[16];
};

static const char *const states[] = {"idle",        "ringing",        "in_use",  "on_hold",
                                     "busy",        "unavailable",    "out_of_service",
                                     "blocked",     "unknown"};
#define NSTATES (sizeof(states) / sizeof(states[0]))

static void usage(FILE *f)
{
    fprintf(f, "usage: watchpost lines [list] [--host H] [--group G] [--state S] [--format "
               "text|csv]\n"
               "       watchpost lines history --host H [--line L] [--since 24h] [--format "
               "text|csv]\n"
               "  options for all: [--state-dir DIR | -c collector.yaml]\n"
               "  S: idle, ringing, in_use, on_hold, busy, unavailable, out_of_service, "
               "blocked, unknown\n");
}

static void dur(int64_t ms, char *buf, size_t n)
{
    int64_t s = ms / 1000;
    if (s >= 86400) {
        snprintf(buf, n, "%lldd%lldh", (long long)(s / 86400), (long long)(s % 86400 / 3600));
    } else if (s >= 3600) {
        snprintf(buf, n, "%lldh%lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
    } else if (s >= 60) {
        snprintf(buf, n, "%lldm%llds", (long long)(s / 60), (long long)(s % 60));
    } else {
        snprintf(buf, n, "%llds", (long long)s);
    }
}

static int row_cb(void *arg, const struct coll_line *l)
{
    struct show *sh = arg;
    char t[48], u[48], d[32];

    for (size_t i = 0; i < NSTATES; i++) {
        if (strcmp(l->state, states[i]) == 0) {
            sh->by_state[i]++;
        }
    }
    sh->rows++;
    if (sh->csv) {
        cli_csv_field(l->host, 0);
        cli_csv_field(l->group, 0);
        cli_csv_field(l->object, 0);
        cli_csv_field(l->state, 0);
        cli_csv_field(l->raw, 0);
        cli_csv_field(cli_iso_local(l->since_ms, t, sizeof(t)), 0);
        if (!sh->history) {
            cli_csv_field(cli_iso_local(l->updated_ms, u, sizeof(u)), 0);
        }
        cli_csv_field(l->info, 1);
        return 0;
    }
    if (sh->history) {
        printf("%-16s  %-16s %-20s %-15s %-14s %s\n", cli_short_local(l->since_ms, t, sizeof(t)),
               l->host, l->object, l->state, l->raw, l->info);
    } else {
        dur(sh->now_ms - l->since_ms, d, sizeof(d));
        printf("%-16s %-12s %-20s %-15s %-14s %-9s %s\n", l->host, l->group, l->object, l->state,
               l->raw, d, l->info);
    }
    return 0;
}

int cli_lines(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'H'},   {"group", required_argument, NULL, 'g'},
        {"state", required_argument, NULL, 's'},  {"line", required_argument, NULL, 'l'},
        {"since", required_argument, NULL, 'S'},  {"format", required_argument, NULL, 'f'},
        {"state-dir", required_argument, NULL, 'd'}, {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *host = NULL, *group = NULL, *state = NULL, *line = NULL, *since = "24h";
    const char *dir = NULL, *config = NULL;
    struct coll_conf *conf = NULL;
    struct coll_lines *store = NULL;
    struct show sh;
    char *path = NULL;
    int opt = 0;
    int rc = 1;

    memset(&sh, 0, sizeof(sh));
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'H': host = optarg; break;
        case 'g': group = optarg; break;
        case 's': state = optarg; break;
        case 'l': line = optarg; break;
        case 'S': since = optarg; break;
        case 'd': dir = optarg; break;
        case 'c': config = optarg; break;
        case 'f':
            if (strcmp(optarg, "csv") != 0 && strcmp(optarg, "text") != 0) {
                fprintf(stderr, "lines: --format must be text or csv\n");
                return 2;
            }
            sh.csv = strcmp(optarg, "csv") == 0;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    /* the subcommand may stand anywhere: getopt moved it behind the options */
    if (optind < argc && (strcmp(argv[optind], "list") == 0 ||
                          strcmp(argv[optind], "history") == 0)) {
        sh.history = strcmp(argv[optind], "history") == 0;
        optind++;
    }
    if (optind < argc || (sh.history && host == NULL)) {
        usage(stderr);
        return 2;
    }
    int64_t since_ms = 0;
    if (wp_parse_duration_ms(since, &since_ms) < 0) {
        fprintf(stderr, "lines: --since takes a duration like 30m, 24h, 7d\n");
        return 2;
    }
    const char *sdir = cli_state_dir(config, dir, &conf);
    if (sdir == NULL) {
        goto out;
    }
    path = wp_xasprintf("%s/lines.db", sdir);
    if (access(path, F_OK) != 0) {
        fprintf(stderr, "lines: no line states at %s (%s): no agent reported a line yet\n", path,
                strerror(errno));
        goto out;
    }
    wp_log_set_level(WP_LOG_ERROR);
    if (coll_lines_open(path, &store) < 0) {
        fprintf(stderr, "lines: cannot open %s\n", path);
        goto out;
    }
    sh.now_ms = wp_clock_now_ms();
    if (sh.csv) {
        cli_csv_bom();
        printf(sh.history ? "\"host\",\"group\",\"line\",\"state\",\"raw\",\"at\",\"info\"\r\n"
                          : "\"host\",\"group\",\"line\",\"state\",\"raw\",\"since\","
                            "\"updated\",\"info\"\r\n");
    } else if (sh.history) {
        printf("%-16s  %-16s %-20s %-15s %-14s %s\n", "AT", "HOST", "LINE", "STATE", "RAW",
               "INFO");
    } else {
        printf("%-16s %-12s %-20s %-15s %-14s %-9s %s\n", "HOST", "GROUP", "LINE", "STATE", "RAW",
               "FOR", "INFO");
    }
    int qrc = sh.history
                  ? coll_lines_history(store, host, line, sh.now_ms - since_ms, row_cb, &sh)
                  : coll_lines_each(store, host, group, state, row_cb, &sh);
    if (qrc < 0) {
        fprintf(stderr, "lines: %s\n", coll_lines_errmsg(store));
        goto out;
    }
    if (!sh.csv && !sh.history) {
        printf("%zu lines:", sh.rows);
        for (size_t i = 0; i < NSTATES; i++) {
            if (sh.by_state[i] > 0) {
                printf(" %s %zu", states[i], sh.by_state[i]);
            }
        }
        printf("\n");
    }
    rc = 0;
out:
    coll_lines_close(store);
    free(path);
    coll_conf_free(conf);
    return rc;
}
