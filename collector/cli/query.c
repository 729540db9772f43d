/* SPDX-License-Identifier: Apache-2.0 */
/* `watchpost query`: print stored values of one metric of one host from its RRD files. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "coll_conf.h"
#include "ctlc.h"
#include "db.h"
#include "linerrd.h"
#include "lines.h"
#include "rrdw.h"
#include "rrdq.h"
#include "wp/clock.h"
#include "wp/conf.h"
#include "wp/err.h"
#include "wp/mem.h"

enum fmt { FMT_TEXT, FMT_CSV, FMT_RAW };

struct query {
    const char *rrd_dir;
    const char *host;
    const char *field;
    enum fmt fmt;
    int all;
    time_t start, end;
    int matched;  /* series that have the field */
    long rows;
    int errors;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: watchpost query --host HOST --metric GROUP.FIELD [--instance I]\n"
            "                       [--since 1h] [--until 0s] [--format text|csv|raw] [--all]\n"
            "                       [--state-dir DIR | -c collector.yaml]\n"
            "  e.g. watchpost query --host db1 --metric df.used_pct --instance /u01 --since 24h\n"
            "  GROUP.FIELD: cpu.user, mem.available, load.load1, df.used_pct, disk.busy_pct,\n"
            "  net.rx_bytes, system.procs, ... (the collector's series of that host);\n"
            "  line.state, line.avail, line.busy per phone line (--instance 8001)\n");
}

static void print_row(struct query *q, const char *inst, time_t t, double v)
{
    char ts[64];
    struct tm tm;

    switch (q->fmt) {
    case FMT_RAW:
        printf("%lld %s %.17g\n", (long long)t, inst[0] ? inst : "-", v);
        break;
    case FMT_CSV:
        gmtime_r(&t, &tm);
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
        printf("%s,%s,%s,%.15g\n", ts, q->host, inst, v);
        break;
    default:
        localtime_r(&t, &tm);
        strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
        if (isnan(v)) {
            printf("%s  %-12s  -\n", ts, inst[0] ? inst : "-");
        } else {
            printf("%s  %-12s  %.10g\n", ts, inst[0] ? inst : "-", v);
        }
        break;
    }
    q->rows++;
}

struct fetch_ctx {
    struct query *q;
    const char *inst;
};

static int row_cb(void *arg, int64_t ts_s, double value)
{
    struct fetch_ctx *f = arg;
    print_row(f->q, f->inst, (time_t)ts_s, value);
    return 0;
}

static int fetch(struct query *q, const char *inst, const char *file)
{
    char path[4096];
    struct fetch_ctx f = {.q = q, .inst = inst};

    snprintf(path, sizeof(path), "%s/%s", q->rrd_dir, file);
    int rc = wp_rrdq_fetch(path, q->field, q->start, q->end, q->all ? 0 : WP_RRDQ_SKIP_NAN, row_cb,
                           &f, NULL);
    if (rc == -ENOENT) {
        return 0; /* defined but nothing written yet */
    }
    if (rc < 0) {
        fprintf(stderr, "query: %s: %s\n", path, wp_strerror(rc));
        q->errors++;
    }
    return rc;
}

static int series_cb(void *arg, const char *agent, const struct wp_series_def *d, const char *file)
{
    struct query *q = arg;
    char inst[WP_INST_MAX + 1];

    (void)agent;
    for (uint32_t i = 0; i < d->nfields; i++) {
        if (wp_str_eq(d->fields[i], q->field)) {
            memcpy(inst, d->inst.p, d->inst.len);
            inst[d->inst.len] = '\0';
            q->matched++;
            fetch(q, inst, file);
            break;
        }
    }
    return 0;
}

/* Per-line series (linerrd.h) are the collector's own, not in the agent's series registry:
 * the lines of the agent come from lines.db. */
struct line_q {
    struct query *q;
    const char *agent;
    const char *inst;
};

static int line_cb(void *arg, const struct coll_line *l)
{
    struct line_q *lq = arg;
    char name[256];

    if (strcmp(l->agent, lq->agent) != 0 || (lq->inst != NULL && strcmp(l->object, lq->inst) != 0)) {
        return 0;
    }
    if (wp_rrd_file_name(COLL_LINERRD_GROUP, l->object, name, sizeof(name)) < 0) {
        return 0;
    }
    char *file = wp_xasprintf("%s/%s", l->agent, name);
    lq->q->matched++;
    fetch(lq->q, l->object, file);
    free(file);
    return 0;
}

static void query_lines(struct query *q, const char *state, const char *agent, const char *inst)
{
    char path[4096];
    struct coll_lines *lines = NULL;
    int known = 0;

    for (size_t i = 0; i < COLL_LINERRD_NFIELDS; i++) {
        known |= strcmp(q->field, coll_linerrd_fields[i]) == 0;
    }
    snprintf(path, sizeof(path), "%s/lines.db", state);
    if (!known || access(path, R_OK) != 0 || coll_lines_open(path, &lines) < 0) {
        return;
    }
    struct line_q lq = {.q = q, .agent = agent, .inst = inst};
    coll_lines_each(lines, NULL, NULL, NULL, line_cb, &lq);
    coll_lines_close(lines);
}

int cli_query(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'H'},   {"metric", required_argument, NULL, 'm'},
        {"instance", required_argument, NULL, 'i'}, {"since", required_argument, NULL, 's'},
        {"until", required_argument, NULL, 'u'},  {"format", required_argument, NULL, 'f'},
        {"all", no_argument, NULL, 'a'},          {"state-dir", required_argument, NULL, 'd'},
        {"config", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct query q;
    const char *metric = NULL;
    const char *inst = NULL;
    const char *since = "1h";
    const char *until = "0s";
    const char *state = getenv("WATCHPOST_STATE_DIR");
    const char *config = NULL;
    struct coll_conf *conf = NULL;
    struct coll_db *db = NULL;
    char *rrd_dir = NULL;
    char group[WP_NAME_MAX + 1];
    char agent[WP_AGENT_ID_MAX + 1];
    char path[4096];
    int opt = 0;
    int rc = 1;

    memset(&q, 0, sizeof(q));
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'H': q.host = optarg; break;
        case 'm': metric = optarg; break;
        case 'i': inst = optarg; break;
        case 's': since = optarg; break;
        case 'u': until = optarg; break;
        case 'a': q.all = 1; break;
        case 'd': state = optarg; break;
        case 'c': config = optarg; break;
        case 'f':
            if (strcmp(optarg, "text") == 0) {
                q.fmt = FMT_TEXT;
            } else if (strcmp(optarg, "csv") == 0) {
                q.fmt = FMT_CSV;
            } else if (strcmp(optarg, "raw") == 0) {
                q.fmt = FMT_RAW;
            } else {
                fprintf(stderr, "query: --format must be text, csv or raw\n");
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    const char *dot = metric ? strchr(metric, '.') : NULL;
    if (q.host == NULL || metric == NULL || dot == NULL || dot == metric || dot[1] == '\0' ||
        (size_t)(dot - metric) > WP_NAME_MAX) {
        usage(stderr);
        return 2;
    }
    memcpy(group, metric, (size_t)(dot - metric));
    group[dot - metric] = '\0';
    q.field = dot + 1;
    int64_t since_ms = 0;
    int64_t until_ms = 0;
    if (wp_parse_duration_ms(since, &since_ms) < 0 || wp_parse_duration_ms(until, &until_ms) < 0) {
        fprintf(stderr, "query: --since/--until take a duration like 90s, 15m, 1h, 7d\n");
        return 2;
    }
    time_t now = (time_t)(wp_clock_now_ms() / 1000);
    q.end = now - (time_t)(until_ms / 1000);
    q.start = q.end - (time_t)(since_ms / 1000);

    if (config != NULL) {
        struct wp_conf_err err;
        if (coll_conf_load(config, &err, &conf) < 0) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        state = conf->state_dir;
        rrd_dir = wp_xstrdup(conf->rrd.dir);
    }
    if (state == NULL) {
        state = "/var/lib/watchpost";
    }
    if (rrd_dir == NULL) {
        rrd_dir = wp_xasprintf("%s/rrd", state);
    }
    q.rrd_dir = rrd_dir;

    /* make the collector write what it holds in memory, so what was acked is shown */
    snprintf(path, sizeof(path), "%s/collector.sock", state);
    msgpack_unpacked up;
    void *body = NULL;
    msgpack_unpacked_init(&up);
    int frc = cli_ctl_request(path, "flush", 30000, &up, &body);
    msgpack_unpacked_destroy(&up);
    free(body);
    if (frc == -ENOENT || frc == -ECONNREFUSED) {
        fprintf(stderr, "query: no collector running on %s; showing what is on disk\n", state);
    } else if (frc < 0) {
        fprintf(stderr, "query: collector did not flush (%s); recent values may be missing\n",
                wp_strerror(frc));
    }

    snprintf(path, sizeof(path), "%s/watchpost.db", state);
    if (coll_db_open(path, &db) < 0) {
        fprintf(stderr, "query: cannot open %s\n", path);
        goto out;
    }
    if (coll_db_find_agent(db, q.host, agent, sizeof(agent)) < 0) {
        fprintf(stderr, "query: no agent or host named \"%s\" in %s\n", q.host, path);
        goto out;
    }
    if (q.fmt == FMT_CSV) {
        fputs("\xEF\xBB\xBFtime,host,instance,value\n", stdout); /* BOM: Excel reads UTF-8 */
    }
    coll_db_series_of(db, agent, group, inst, series_cb, &q);
    if (q.matched == 0 && strcmp(group, COLL_LINERRD_GROUP) == 0) {
        query_lines(&q, state, agent, inst);
    }
    if (q.matched == 0) {
        fprintf(stderr, "query: host %s has no series %s%s%s\n", q.host, metric,
                inst ? " with instance " : "", inst ? inst : "");
        goto out;
    }
    rc = q.errors ? 1 : 0;
out:
    coll_db_close(db);
    free(rrd_dir);
    if (conf != NULL) {
        coll_conf_free(conf);
    }
    return rc;
}
