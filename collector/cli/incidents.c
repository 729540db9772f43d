/* SPDX-License-Identifier: Apache-2.0 */
/* `watchpost incidents`: list, show, acknowledge, resolve and close incidents in
 * STATE_DIR/incidents.db (the collector's incident store, opened directly). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cliutil.h"
#include "coll_conf.h"
#include "incident.h"
#include "wp/clock.h"
#include "wp/conf.h"
#include "wp/err.h"
#include "wp/mem.h"

enum fmt { FMT_TEXT, FMT_CSV };

/* list filter: a status, "active" (open + acknowledged) or all */
#define ST_ACTIVE (-2)
#define ST_ALL    (-1)

struct list_ctx {
    int status;
    enum fmt fmt;
    int rows;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: watchpost incidents list [--status S] [--priority P1..P4] [--format text|csv]\n"
            "       watchpost incidents show ID\n"
            "       watchpost incidents ack ID --by NAME [--note TEXT]\n"
            "       watchpost incidents resolve ID --by NAME --note TEXT\n"
            "       watchpost incidents close ID --by NAME\n"
            "  options for all: [--state-dir DIR | -c collector.yaml]\n"
            "  S: open, acknowledged, resolved, closed, active (open + acknowledged, the\n"
            "     default) or all\n");
}

/* "in 3h12m" / "overdue by 20m" relative to now. */
static const char *rel(int64_t due_ms, int64_t now_ms, char *buf, size_t n)
{
    int64_t d = due_ms - now_ms;
    int64_t a = d < 0 ? -d : d;
    int64_t days = a / 86400000;
    int64_t hours = a % 86400000 / 3600000;
    int64_t mins = a % 3600000 / 60000;
    char v[48];

    if (days > 0) {
        snprintf(v, sizeof(v), "%" PRId64 "d%" PRId64 "h", days, hours);
    } else if (hours > 0) {
        snprintf(v, sizeof(v), "%" PRId64 "h%" PRId64 "m", hours, mins);
    } else {
        snprintf(v, sizeof(v), "%" PRId64 "m", mins);
    }
    snprintf(buf, n, d < 0 ? "overdue by %s" : "in %s", v);
    return buf;
}

static void csv_int(int64_t v, int last)
{
    printf("%" PRId64 "%s", v, last ? "\r\n" : ",");
}

static const char *const csv_header[] = {
    "id",           "priority", "status",   "escalation",  "opened",
    "acknowledged", "acked_by", "resolved", "closed",      "response_due",
    "resolve_due",  "host",     "rule",     "category",    "summary",
    "suppressed",   "flapping", "reopened", "fingerprint",
};

static int list_cb(void *arg, const struct inc_row *r)
{
    struct list_ctx *c = arg;
    char t[5][48];
    char prio[8];

    if (c->status == ST_ACTIVE && r->status != INC_OPEN && r->status != INC_ACKNOWLEDGED) {
        return 0;
    }
    snprintf(prio, sizeof(prio), "P%d", r->priority);
    if (c->fmt == FMT_CSV) {
        csv_int(r->id, 0);
        cli_csv_field(prio, 0);
        cli_csv_field(inc_status_name(r->status), 0);
        csv_int(r->escalation, 0);
        cli_csv_field(cli_iso_local(r->opened_ms, t[0], sizeof(t[0])), 0);
        cli_csv_field(r->acked_ms ? cli_iso_local(r->acked_ms, t[1], sizeof(t[1])) : "", 0);
        cli_csv_field(r->acked_by, 0);
        cli_csv_field(r->resolved_ms ? cli_iso_local(r->resolved_ms, t[2], sizeof(t[2])) : "", 0);
        cli_csv_field(r->closed_ms ? cli_iso_local(r->closed_ms, t[3], sizeof(t[3])) : "", 0);
        cli_csv_field(cli_iso_local(r->response_due_ms, t[4], sizeof(t[4])), 0);
        cli_csv_field(cli_iso_local(r->resolve_due_ms, t[0], sizeof(t[0])), 0);
        cli_csv_field(r->host, 0);
        cli_csv_field(r->rule, 0);
        cli_csv_field(r->category, 0);
        cli_csv_field(r->summary, 0);
        csv_int(r->suppressed, 0);
        csv_int(r->flapping, 0);
        csv_int(r->reopened, 0);
        cli_csv_field(r->fingerprint, 1);
    } else {
        char flags[48];
        snprintf(flags, sizeof(flags), "%s%s%s", r->suppressed ? " [suppressed]" : "",
                 r->flapping ? " [flapping]" : "", r->reopened ? " [reopened]" : "");
        printf("%-6" PRId64 " %-4s %-12s L%d  %-16s  %-16s %-20s %s%s\n", r->id, prio,
               inc_status_name(r->status), r->escalation,
               cli_short_local(r->opened_ms, t[0], sizeof(t[0])), r->host, r->rule, r->summary, flags);
    }
    c->rows++;
    return 0;
}

static int do_list(struct inc_store *st, int status, int priority, enum fmt fmt)
{
    struct list_ctx c = {.status = status, .fmt = fmt};

    if (fmt == FMT_CSV) {
        cli_csv_bom(); /* Excel reads UTF-8 */
        for (size_t i = 0; i < sizeof(csv_header) / sizeof(csv_header[0]); i++) {
            cli_csv_field(csv_header[i], i + 1 == sizeof(csv_header) / sizeof(csv_header[0]));
        }
    } else {
        printf("%-6s %-4s %-12s %-3s %-16s  %-16s %-20s %s\n", "ID", "PRIO", "STATUS", "ESC",
               "OPENED", "HOST", "RULE", "SUMMARY");
    }
    int rc = inc_list(st, status < 0 ? -1 : status, priority, list_cb, &c);
    if (rc < 0) {
        fprintf(stderr, "incidents: %s\n", inc_errmsg(st));
        return 1;
    }
    if (fmt == FMT_TEXT && c.rows == 0) {
        printf("(no incidents)\n");
    }
    return 0;
}

static int timeline_cb(void *arg, int64_t at_ms, const char *kind, const char *by, const char *text)
{
    char t[48];

    (void)arg;
    printf("  %s  %-16s %-12s %s\n", cli_iso_local(at_ms, t, sizeof(t)), kind, by[0] ? by : "-", text);
    return 0;
}

static const char *level_name(int v)
{
    static const char *const names[] = {"high", "medium", "low"};
    return v >= 1 && v <= 3 ? names[v - 1] : "?";
}

static int do_show(struct inc_store *st, int64_t id)
{
    struct inc_row r;
    char t[48];
    char d[48];
    int64_t now = wp_clock_now_ms();
    int rc = inc_get(st, id, &r);

    if (rc == WP_ENOTFOUND) {
        fprintf(stderr, "incidents: no incident %" PRId64 "\n", id);
        return 1;
    }
    if (rc < 0) {
        fprintf(stderr, "incidents: %s\n", inc_errmsg(st));
        return 1;
    }
    int unresolved = r.status == INC_OPEN || r.status == INC_ACKNOWLEDGED;
    printf("incident %" PRId64 "  P%d  %s  escalation level %d\n", r.id, r.priority,
           inc_status_name(r.status), r.escalation);
    printf("summary       %s\n", r.summary);
    printf("rule          %s\n", r.rule);
    printf("host          %s\n", r.host);
    printf("category      %s\n", r.category);
    printf("impact        %s\n", level_name(r.impact));
    printf("urgency       %s\n", level_name(r.urgency));
    printf("fingerprint   %s\n", r.fingerprint);
    printf("opened        %s\n", cli_iso_local(r.opened_ms, t, sizeof(t)));
    printf("response due  %s", cli_iso_local(r.response_due_ms, t, sizeof(t)));
    if (r.status == INC_OPEN && r.acked_ms == 0) {
        printf("  (%s)", rel(r.response_due_ms, now, d, sizeof(d)));
    }
    printf("\nresolve due   %s", cli_iso_local(r.resolve_due_ms, t, sizeof(t)));
    if (unresolved) {
        printf("  (%s)", rel(r.resolve_due_ms, now, d, sizeof(d)));
    }
    printf("\nacknowledged  %s", cli_iso_local(r.acked_ms, t, sizeof(t)));
    if (r.acked_by[0] != '\0') {
        printf(" by %s", r.acked_by);
    }
    printf("\nresolved      %s\n", cli_iso_local(r.resolved_ms, t, sizeof(t)));
    printf("closed        %s\n", cli_iso_local(r.closed_ms, t, sizeof(t)));
    printf("suppressed    %s\n", r.suppressed ? "yes (no escalation while suppressed)" : "no");
    printf("flapping      %s\n", r.flapping ? "yes" : "no");
    printf("reopened      %d time%s\n", r.reopened, r.reopened == 1 ? "" : "s");
    printf("values        %s\n", r.values_json ? r.values_json : "-");
    printf("description   %s\n", r.description ? r.description : "-");
    printf("runbook       %s\n", r.runbook ? r.runbook : "-");
    printf("\ntimeline:\n");
    inc_row_cleanup(&r);
    rc = inc_timeline(st, id, timeline_cb, NULL);
    if (rc < 0) {
        fprintf(stderr, "incidents: %s\n", inc_errmsg(st));
        return 1;
    }
    return 0;
}

/* A positive decimal incident id; 0 when s is not one. */
static int64_t parse_id(const char *s)
{
    char *end = NULL;

    if (s == NULL || *s < '0' || *s > '9') {
        return 0;
    }
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v <= 0) {
        return 0;
    }
    return (int64_t)v;
}

int cli_incidents(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"status", required_argument, NULL, 's'},
        {"priority", required_argument, NULL, 'p'},
        {"format", required_argument, NULL, 'f'},
        {"by", required_argument, NULL, 'b'},
        {"note", required_argument, NULL, 'n'},
        CLI_STD_LONGOPTS,
    };
    static const struct {
        const char *name;
        int status;
    } statuses[] = {
        {"open", INC_OPEN},         {"acknowledged", INC_ACKNOWLEDGED},
        {"resolved", INC_RESOLVED}, {"closed", INC_CLOSED},
        {"active", ST_ACTIVE},      {"all", ST_ALL},
    };
    struct cli_std so = {.cmd = "incidents"};
    const char *by = NULL;
    const char *note = NULL;
    const char *cmd = NULL;
    struct coll_conf *conf = NULL;
    struct inc_store *st = NULL;
    char *path = NULL;
    char err[512];
    int status = ST_ACTIVE;
    int priority = 0;
    int list_opts = 0;
    enum fmt fmt = FMT_TEXT;
    int64_t id = 0;
    int opt = 0, stop = 0;
    int rc = 2;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 's':
            status = -100;
            for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
                if (strcmp(optarg, statuses[i].name) == 0) {
                    status = statuses[i].status;
                }
            }
            if (status == -100) {
                fprintf(stderr, "incidents: --status must be open, acknowledged, resolved, "
                                "closed, active or all\n");
                return 2;
            }
            list_opts = 1;
            break;
        case 'p':
            if ((optarg[0] != 'P' && optarg[0] != 'p') || optarg[1] < '1' || optarg[1] > '4' ||
                optarg[2] != '\0') {
                fprintf(stderr, "incidents: --priority must be P1, P2, P3 or P4\n");
                return 2;
            }
            priority = optarg[1] - '0';
            list_opts = 1;
            break;
        case 'f':
            if (strcmp(optarg, "text") == 0) {
                fmt = FMT_TEXT;
            } else if (strcmp(optarg, "csv") == 0) {
                fmt = FMT_CSV;
            } else {
                fprintf(stderr, "incidents: --format must be text or csv\n");
                return 2;
            }
            list_opts = 1;
            break;
        case 'b':
            by = optarg;
            break;
        case 'n':
            note = optarg;
            break;
        default:
            if ((stop = cli_std_opt(&so, opt, optarg, usage)) >= 0) {
                return stop;
            }
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    cmd = argv[optind];
    int is_list = strcmp(cmd, "list") == 0;
    int is_show = strcmp(cmd, "show") == 0;
    int is_ack = strcmp(cmd, "ack") == 0;
    int is_resolve = strcmp(cmd, "resolve") == 0;
    int is_close = strcmp(cmd, "close") == 0;
    if (!is_list && !is_show && !is_ack && !is_resolve && !is_close) {
        fprintf(stderr, "incidents: unknown subcommand \"%s\"\n", cmd);
        usage(stderr);
        return 2;
    }
    if (is_list) {
        if (optind + 1 != argc || by != NULL || note != NULL) {
            usage(stderr);
            return 2;
        }
    } else {
        if (optind + 2 != argc || list_opts) {
            usage(stderr);
            return 2;
        }
        id = parse_id(argv[optind + 1]);
        if (id == 0) {
            fprintf(stderr, "incidents: \"%s\" is not an incident id\n", argv[optind + 1]);
            return 2;
        }
        if (is_show && (by != NULL || note != NULL)) {
            usage(stderr);
            return 2;
        }
        if (is_close && note != NULL) {
            fprintf(stderr, "incidents: close takes no --note (resolve holds it)\n");
            return 2;
        }
        if (!is_show && (by == NULL || by[0] == '\0')) {
            fprintf(stderr, "incidents: %s needs --by NAME\n", cmd);
            return 2;
        }
    }

    rc = 1;
    const char *state = cli_state_dir(so.config, so.dir, &conf);
    if (state == NULL) {
        goto out;
    }
    path = wp_xasprintf("%s/incidents.db", state);
    if (access(path, F_OK) != 0) {
        fprintf(stderr, "incidents: no incident store at %s (%s)\n", path, strerror(errno));
        goto out;
    }
    /* the policy only shapes new incidents; operator actions use the stored deadlines */
    if (inc_open(path, NULL, &st) < 0) {
        fprintf(stderr, "incidents: cannot open %s\n", path);
        goto out;
    }
    if (is_list) {
        rc = do_list(st, status, priority, fmt);
        goto out;
    }
    if (is_show) {
        rc = do_show(st, id);
        goto out;
    }
    err[0] = '\0';
    int64_t now = wp_clock_now_ms();
    int r = 0;
    if (is_ack) {
        r = inc_ack(st, id, by, note, now, err, sizeof(err));
    } else if (is_resolve) {
        r = inc_resolve(st, id, by, note, now, err, sizeof(err));
    } else {
        r = inc_close_incident(st, id, by, now, err, sizeof(err));
    }
    if (r < 0) {
        fprintf(stderr, "incidents: %s\n", err[0] ? err : wp_strerror(r));
        goto out;
    }
    printf("incident %" PRId64 " %s\n", id,
           is_ack ? "acknowledged" : (is_resolve ? "resolved" : "closed"));
    rc = 0;
out:
    inc_close(st);
    free(path);
    if (conf != NULL) {
        coll_conf_free(conf);
    }
    return rc;
}
