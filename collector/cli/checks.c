/* SPDX-License-Identifier: Apache-2.0 */
/* `watchpost checks` and `watchpost logevents`: the latest check results and the stored log
 * events, read-only from STATE_DIR/events.db, as a table or as CSV for Excel. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cliutil.h"
#include "coll_conf.h"
#include "events.h"
#include "wp/clock.h"
#include "wp/log.h"

#define STATUS_PROBLEM (-2) /* --status problem: anything but OK */

static const char *const status_names[] = {"ok", "warning", "critical", "unknown"};
static const char *const status_upper[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};
static const char *const sev_names[] = {"info", "warning", "error", "critical"};
static const char *const check_cols[] = {"host", "check",  "status", "since",
                                         "last", "output", NULL};
static const char *const log_cols[] = {"time",   "host", "severity", "rule",
                                       "source", "text", "fields",   NULL};
#define CHECK_ROW "%-16s %-24s %-8s %-16s %-16s %s\n"
#define LOG_ROW   "%-16s %-16s %-8s %-16s %-24s %s\n"

static void checks_usage(FILE *f)
{
    fprintf(f, "usage: watchpost checks [--host H] [--status critical|warning|unknown|ok|problem]\n"
               "                        [--csv | --format text|csv]\n"
               "  options: [--state-dir DIR | -c collector.yaml]\n"
               "  the latest result of every check the agents run: status, since when, last\n"
               "  result and its output; problem means anything but OK\n");
}

static void logevents_usage(FILE *f)
{
    fprintf(f, "usage: watchpost logevents [--host H] [--since 24h|7d|YYYY-MM-DD[THH:MM]]\n"
               "                           [--rule R] [--limit N] [--csv | --format text|csv]\n"
               "  options: [--state-dir DIR | -c collector.yaml]\n"
               "  the stored log events, newest first (default: the last 24 h, at most 100)\n");
}

/* The events store of s's state dir, read-only, with the CSV header printed for --csv; NULL
 * after saying why. */
static struct coll_events *open_store(const struct cli_std *s, struct coll_conf **conf,
                                      const char *const *csv_cols)
{
    struct coll_events *ev = NULL;
    char err[512];
    char *path = cli_store_path(s, conf, "events.db", "the collector has not stored any check yet");

    if (path == NULL) {
        return NULL;
    }
    wp_log_set_level(WP_LOG_ERROR);
    if (coll_events_open_ro(path, &ev, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: cannot read %s\n", s->cmd, err);
    }
    free(path);
    if (ev != NULL && s->csv) {
        cli_csv_head(csv_cols);
    }
    return ev;
}

/* Text cells stay on one line. */
static const char *one_line(const char *s, char *buf, size_t n)
{
    size_t i = 0;

    for (; s != NULL && s[i] != '\0' && i + 1 < n; i++) {
        buf[i] = s[i] == '\n' || s[i] == '\r' || s[i] == '\t' ? ' ' : s[i];
    }
    buf[i] = '\0';
    return buf;
}

/* getopt_long over argv ("c:h" and longopts): own() takes the subcommand's options (0 when
 * taken, 2 after saying why, -1 when not its own), cli_std_opt() the rest, and no argument may
 * be left. -1 when the subcommand goes on, else its exit code. */
static int parse_opts(int argc, char **argv, const struct option *longopts, struct cli_std *so,
                      void (*usage)(FILE *f), int (*own)(void *ctx, int o, const char *arg),
                      void *ctx)
{
    int o, stop;

    optind = 1;
    while ((o = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        stop = own(ctx, o, optarg);
        if (stop < 0) {
            stop = cli_std_opt(so, o, optarg, usage);
        } else if (stop == 0) {
            continue;
        }
        if (stop >= 0) {
            return stop;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    return -1;
}

/* ---- checks ---- */

struct checks_show {
    int csv, status;
    size_t rows, by_status[4];
};

static int check_cb(void *arg, const struct coll_check *c)
{
    struct checks_show *sh = arg;
    int st = c->status >= 0 && c->status <= 3 ? c->status : 3;
    char a[48], b[48], out[256];

    if (sh->status == STATUS_PROBLEM && st == 0) {
        return 0;
    }
    sh->rows++;
    sh->by_status[st]++;
    if (sh->csv) {
        cli_csv_field(c->host, 0);
        cli_csv_field(c->name, 0);
        cli_csv_field(status_names[st], 0);
        cli_csv_field(cli_iso_local(c->since_ms, a, sizeof(a)), 0);
        cli_csv_field(cli_iso_local(c->ts_ms, b, sizeof(b)), 0);
        cli_csv_field(c->output, 1);
        return 0;
    }
    printf(CHECK_ROW, c->host, c->name, status_upper[st],
           cli_short_local(c->since_ms, a, sizeof(a)), cli_short_local(c->ts_ms, b, sizeof(b)),
           one_line(c->output, out, sizeof(out)));
    return 0;
}

struct checks_opts {
    const char *host;
    int status;
};

static int checks_opt(void *ctx, int o, const char *arg)
{
    struct checks_opts *c = ctx;

    switch (o) {
    case 'H':
        c->host = arg;
        return 0;
    case 's':
        c->status = strcmp(arg, "problem") == 0 ? STATUS_PROBLEM : -1;
        for (int i = 0; i < 4; i++) {
            if (strcmp(arg, status_names[i]) == 0) {
                c->status = i;
            }
        }
        if (c->status == -1) {
            fprintf(stderr, "checks: --status takes critical, warning, unknown, ok or "
                            "problem\n");
            return 2;
        }
        return 0;
    default:
        return -1;
    }
}

int cli_checks(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'H'},
        {"status", required_argument, NULL, 's'},
        CLI_CSV_LONGOPTS,
        CLI_STD_LONGOPTS,
    };
    struct cli_std so = {.cmd = "checks"};
    struct checks_opts co = {NULL, -1};
    struct checks_show sh = {.status = -1};
    struct coll_conf *conf = NULL;
    struct coll_events *ev = NULL;
    int rc = 1;
    int stop;

    if ((stop = parse_opts(argc, argv, longopts, &so, checks_usage, checks_opt, &co)) >= 0) {
        return stop;
    }
    sh.status = co.status;
    sh.csv = so.csv;
    ev = open_store(&so, &conf, check_cols);
    if (ev == NULL) {
        goto out;
    }
    if (!sh.csv) {
        printf(CHECK_ROW, "HOST", "CHECK", "STATUS", "SINCE", "LAST", "OUTPUT");
    }
    if (coll_events_checks_each(ev, co.host, sh.status >= 0 ? sh.status : -1, check_cb, &sh) < 0) {
        fprintf(stderr, "checks: %s\n", coll_events_errmsg(ev));
        goto out;
    }
    if (!sh.csv) {
        printf("%zu check%s: %zu critical, %zu warning, %zu unknown, %zu ok\n", sh.rows,
               sh.rows == 1 ? "" : "s", sh.by_status[2], sh.by_status[1], sh.by_status[3],
               sh.by_status[0]);
    }
    rc = 0;
out:
    coll_events_close(ev);
    coll_conf_free(conf);
    return rc;
}

/* ---- logevents ---- */

struct log_show {
    int csv;
    size_t rows;
};

static int log_cb(void *arg, const struct coll_logevent *e)
{
    struct log_show *sh = arg;
    const char *sev = e->severity >= 0 && e->severity <= 3 ? sev_names[e->severity] : "?";
    char t[48], text[512];

    sh->rows++;
    if (sh->csv) {
        cli_csv_field(cli_iso_local(e->ts_ms, t, sizeof(t)), 0);
        cli_csv_field(e->host, 0);
        cli_csv_field(sev, 0);
        cli_csv_field(e->rule, 0);
        cli_csv_field(e->source, 0);
        cli_csv_field(e->text, 0);
        cli_csv_field(e->fields, 1);
        return 0;
    }
    printf(LOG_ROW, cli_short_local(e->ts_ms, t, sizeof(t)), e->host, sev, e->rule, e->source,
           one_line(e->text, text, sizeof(text)));
    return 0;
}

struct log_opts {
    const char *host, *since, *rule;
    long limit;
};

static int log_opt(void *ctx, int o, const char *arg)
{
    struct log_opts *l = ctx;
    char *end = NULL;

    switch (o) {
    case 'H':
        l->host = arg;
        return 0;
    case 'S':
        l->since = arg;
        return 0;
    case 'r':
        l->rule = arg;
        return 0;
    case 'n':
        l->limit = strtol(arg, &end, 10);
        if (*end != '\0' || l->limit <= 0 || l->limit > 1000000) {
            fprintf(stderr, "logevents: --limit takes a number from 1 to 1000000\n");
            return 2;
        }
        return 0;
    default:
        return -1;
    }
}

int cli_logevents(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'H'},
        {"since", required_argument, NULL, 'S'},
        {"rule", required_argument, NULL, 'r'},
        {"limit", required_argument, NULL, 'n'},
        CLI_CSV_LONGOPTS,
        CLI_STD_LONGOPTS,
    };
    struct cli_std so = {.cmd = "logevents"};
    struct log_show sh = {0, 0};
    struct log_opts lo = {NULL, "24h", NULL, 100};
    struct coll_conf *conf = NULL;
    struct coll_events *ev = NULL;
    int64_t since_ms = 0;
    int rc = 1;
    int stop;

    if ((stop = parse_opts(argc, argv, longopts, &so, logevents_usage, log_opt, &lo)) >= 0) {
        return stop;
    }
    if (cli_parse_since(lo.since, wp_clock_now_ms(), &since_ms) < 0) {
        fprintf(stderr, "logevents: --since takes a duration like 24h or 7d, or a local time "
                        "YYYY-MM-DD[THH:MM]\n");
        return 2;
    }
    sh.csv = so.csv;
    ev = open_store(&so, &conf, log_cols);
    if (ev == NULL) {
        goto out;
    }
    if (!sh.csv) {
        printf(LOG_ROW, "TIME", "HOST", "SEVERITY", "RULE", "SOURCE", "TEXT");
    }
    if (coll_events_log_rule_each(ev, lo.host, lo.rule, since_ms, (size_t)lo.limit, log_cb, &sh) <
        0) {
        fprintf(stderr, "logevents: %s\n", coll_events_errmsg(ev));
        goto out;
    }
    if (!sh.csv) {
        printf("%zu event%s%s\n", sh.rows, sh.rows == 1 ? "" : "s",
               sh.rows == (size_t)lo.limit ? " (the limit: older ones not shown, see --limit)"
                                           : "");
    }
    rc = 0;
out:
    coll_events_close(ev);
    coll_conf_free(conf);
    return rc;
}
