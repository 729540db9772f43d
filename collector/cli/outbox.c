/* SPDX-License-Identifier: Apache-2.0 */
/* `watchpost outbox`: the notification outbox (STATE_DIR/incidents.db): what was sent, what
 * waits for a retry, what was given up (dead letters), and putting a dead one back. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cliutil.h"
#include "coll_conf.h"
#include "outbox.h"
#include "wp/clock.h"
#include "wp/mem.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: watchpost outbox [list] [--state queued|sent|dead|coalesced|skipped|digested]\n"
               "                        [--limit N] [--csv | --format text|csv]\n"
               "       watchpost outbox retry ID     queue a dead message again\n"
               "  options for all: [--state-dir DIR | -c collector.yaml]\n");
}

struct show {
    int csv;
    size_t rows;
};

static int row_cb(void *arg, const struct outbox_msg *m)
{
    struct show *sh = arg;
    char c[48], n[48], id[32], inc[32], att[16], code[16];

    sh->rows++;
    snprintf(id, sizeof(id), "%" PRId64, m->id);
    snprintf(inc, sizeof(inc), "INC-%" PRId64, m->incident_id);
    snprintf(att, sizeof(att), "%d", m->attempts);
    snprintf(code, sizeof(code), "%d", m->last_code);
    if (sh->csv) {
        cli_csv_field(id, 0);
        cli_csv_field(m->state, 0);
        cli_csv_field(m->dest, 0);
        cli_csv_field(inc, 0);
        cli_csv_field(m->event, 0);
        cli_csv_field(m->event_id, 0);
        cli_csv_field(cli_iso_local(m->created_ms, c, sizeof(c)), 0);
        cli_csv_field(cli_iso_local(m->sent_ms, n, sizeof(n)), 0);
        cli_csv_field(att, 0);
        cli_csv_field(code, 0);
        cli_csv_field(m->last_error, 1);
        return 0;
    }
    const char *when = strcmp(m->state, "queued") == 0 ? cli_short_local(m->next_ms, n, sizeof(n))
                                                       : cli_short_local(m->sent_ms, n, sizeof(n));
    printf("%-6s %-9s %-14s %-9s %-8s %-16s %-16s %3d %3d %s\n", id, m->state, m->dest, inc,
           m->event, cli_short_local(m->created_ms, c, sizeof(c)), when, m->attempts,
           m->last_code, m->last_error);
    return 0;
}

int cli_outbox(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"state", required_argument, NULL, 's'},
        {"limit", required_argument, NULL, 'n'},
        CLI_CSV_LONGOPTS,
        CLI_STD_LONGOPTS,
    };
    struct cli_std so = {.cmd = "outbox"};
    const char *state = NULL;
    struct show sh = {0, 0};
    long limit = 100;
    struct coll_conf *conf = NULL;
    struct outbox *ob = NULL;
    char path[4096];
    int rc = 1;
    int o, stop;

    optind = 1;
    while ((o = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (o) {
        case 's':
            state = optarg;
            break;
        case 'n':
            limit = strtol(optarg, NULL, 10);
            break;
        default:
            if ((stop = cli_std_opt(&so, o, optarg, usage)) >= 0) {
                return stop;
            }
        }
    }
    sh.csv = so.csv;
    /* getopt moved the operands to the end: [list | retry ID] */
    const char *cmd = optind < argc ? argv[optind++] : "list";
    const char *sd = cli_state_dir(so.config, so.dir, &conf);
    if (sd == NULL) {
        return 1;
    }
    snprintf(path, sizeof(path), "%s/incidents.db", sd);
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "outbox: no %s (has the collector run with this state dir?)\n", path);
        goto out;
    }
    if (outbox_open(path, NULL, &ob) < 0) {
        fprintf(stderr, "outbox: cannot open %s\n", path);
        goto out;
    }
    if (strcmp(cmd, "list") == 0) {
        if (limit <= 0) {
            limit = 100;
        }
        if (sh.csv) {
            cli_csv_bom();
            printf("id,state,destination,incident,event,event_id,queued,sent,attempts,code,"
                   "last_error\r\n");
        } else {
            printf("%-6s %-9s %-14s %-9s %-8s %-16s %-16s %3s %3s %s\n", "ID", "STATE",
                   "DESTINATION", "INCIDENT", "EVENT", "QUEUED", "NEXT/SENT", "TRY", "RC",
                   "LAST ERROR");
        }
        if (outbox_list(ob, state, (size_t)limit, row_cb, &sh) < 0) {
            fprintf(stderr, "outbox: %s\n", outbox_errmsg(ob));
            goto out;
        }
        if (!sh.csv) {
            struct outbox_counts n;
            if (outbox_counts(ob, &n) == 0) {
                char t[48];
                printf("%llu queued (oldest %s), %llu sent, %llu dead, %llu coalesced, %llu "
                       "skipped, %llu digested\n",
                       (unsigned long long)n.queued,
                       cli_short_local(n.oldest_queued_ms, t, sizeof(t)),
                       (unsigned long long)n.sent, (unsigned long long)n.dead,
                       (unsigned long long)n.coalesced, (unsigned long long)n.skipped,
                       (unsigned long long)n.digested);
            }
        }
        rc = 0;
    } else if (strcmp(cmd, "retry") == 0) {
        char err[256];
        if (optind >= argc) {
            usage(stderr);
            rc = 2;
            goto out;
        }
        char *end = NULL;
        long long id = strtoll(argv[optind], &end, 10);
        if (end == argv[optind] || *end != '\0' || id <= 0) {
            fprintf(stderr, "outbox retry: expected a message id (a number from `watchpost "
                            "outbox list`), got \"%s\"\n", argv[optind]);
            rc = 2;
            goto out;
        }
        if (outbox_requeue(ob, id, wp_clock_now_ms(), err, sizeof(err)) < 0) {
            fprintf(stderr, "outbox retry: %s\n", err);
            goto out;
        }
        printf("message %lld queued again; the collector sends it within a second\n", id);
        rc = 0;
    } else {
        usage(stderr);
        rc = 2;
    }
out:
    outbox_close(ob);
    if (conf != NULL) {
        coll_conf_free(conf);
    }
    return rc;
}
