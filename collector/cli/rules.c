/* SPDX-License-Identifier: Apache-2.0 */
/* `watchpost rules test FILE... --at TIME`: evaluate rules against the stored RRD data and
 * print what would fire, for people tuning thresholds. The maintenance windows of the rules
 * files and the runtime ones of STATE_DIR/incidents.db active at TIME suppress as in the
 * collector. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cliutil.h"
#include "coll_conf.h"
#include "ctlc.h"
#include "db.h"
#include "incident.h"
#include "maint.h"
#include "rrdq.h"
#include "rules.h"
#include "rules_eval.h"
#include "wp/clock.h"
#include "wp/conf.h"
#include "wp/err.h"
#include "wp/mem.h"

#define MIN_LOOKBACK_MS (15 * 60000LL)

/* What the engine said last about each fingerprint (summary, priority, suppression). */
struct said {
    char *fp, *summary;
    char *supp; /* why it is suppressed ("maintenance NAME"), or NULL */
    int impact, urgency;
    struct said *next;
};

struct rt {
    struct rules_eng *e;
    struct said *said;
    const char *rrd_dir;
    int64_t start_s, at_s;
    int64_t at_ms;
    struct coll_db *db;
    const struct rule_set *rs;
    struct maint_set *mset; /* runtime maintenance windows not over at at_ms, or NULL */
    size_t nseries, nsamples, nhosts;
    int errors;
    /* hosts of the registry: agent id -> engine host and its newest sample */
    struct host_ref {
        char *agent;
        struct rules_host *h;
        int64_t newest_ms;
    } *hosts;
    size_t hcap;
};

static struct said *said_get(struct rt *t, const char *fp)
{
    for (struct said *s = t->said; s != NULL; s = s->next) {
        if (strcmp(s->fp, fp) == 0) {
            return s;
        }
    }
    struct said *s = wp_xcalloc(1, sizeof(*s));
    s->fp = wp_xstrdup(fp);
    s->next = t->said;
    t->said = s;
    return s;
}

static int t_fire(void *arg, const struct inc_signal *sig, int64_t now)
{
    struct said *s = said_get(arg, sig->fingerprint);
    (void)now;
    free(s->summary);
    s->summary = wp_xstrdup(sig->summary);
    s->impact = sig->impact;
    s->urgency = sig->urgency;
    return 0;
}

static int t_clear(void *arg, const char *fp, int64_t now)
{
    (void)arg;
    (void)fp;
    (void)now;
    return 0;
}

static int t_suppress(void *arg, const char *fp, int on, const char *reason, int64_t now)
{
    struct said *s = said_get(arg, fp);
    (void)now;
    free(s->supp);
    s->supp = on ? wp_xstrdup(reason) : NULL;
    return 0;
}

/* The engine's runtime window lookup, as the collector's (coll_rules.c maint_match). */
static const char *t_maint(void *arg, const char *host, int64_t now)
{
    struct rt *t = arg;
    return maint_set_match(t->mset, t->rs, host, now);
}

struct maint_seen {
    int64_t at_ms;
    int n;
    char names[512];
};

static int maint_seen_cb(void *arg, const struct maint_win *w)
{
    struct maint_seen *m = arg;
    size_t len = strlen(m->names);
    if (!maint_win_active(w, m->at_ms)) {
        return 0;
    }
    snprintf(m->names + len, sizeof(m->names) - len, "%s\"%s\"", m->n > 0 ? ", " : "", w->name);
    m->n++;
    return 0;
}

/* Load the runtime windows of STATE_DIR/incidents.db not over at t->at_ms into t->mset and say
 * which are active then (note: the line printed). Without incidents.db nothing is loaded and
 * the note says so. Returns 0, or -1 after printing why they could not be read. */
static int maint_load(struct rt *t, const char *state, char *note, size_t len)
{
    char *path = wp_xasprintf("%s/incidents.db", state);
    struct maint_store *st = NULL;
    struct maint_seen seen;
    int rc = 0;

    memset(&seen, 0, sizeof(seen));
    seen.at_ms = t->at_ms;
    if (access(path, F_OK) != 0) {
        snprintf(note, len,
                 "runtime maintenance windows not consulted: no incidents.db in %s "
                 "(give --state-dir DIR or -c collector.yaml)",
                 state);
    } else if (maint_open(path, &st) < 0 || maint_set_load(st, t->at_ms, &t->mset) < 0 ||
               maint_list(st, t->at_ms, maint_seen_cb, &seen) < 0) {
        fprintf(stderr, "rules test: maintenance windows of %s not read: %s\n", path,
                st != NULL ? maint_errmsg(st) : "cannot open");
        snprintf(note, len, "runtime maintenance windows not consulted: %s not readable", path);
        rc = -1;
    } else if (seen.n == 0) {
        snprintf(note, len, "runtime maintenance windows (%s): none active", path);
    } else {
        snprintf(note, len, "runtime maintenance windows (%s): %d active: %s", path, seen.n,
                 seen.names);
    }
    maint_close(st);
    free(path);
    return rc;
}

static struct host_ref *host_ref(struct rt *t, const char *agent)
{
    for (size_t i = 0; i < t->nhosts; i++) {
        if (strcmp(t->hosts[i].agent, agent) == 0) {
            return &t->hosts[i];
        }
    }
    return NULL;
}

static int agent_cb(void *arg, const struct coll_db_agent *a)
{
    struct rt *t = arg;
    if (t->nhosts == t->hcap) {
        t->hcap = t->hcap ? t->hcap * 2 : 16;
        t->hosts = wp_xrealloc(t->hosts, t->hcap * sizeof(*t->hosts));
    }
    struct host_ref *r = &t->hosts[t->nhosts++];
    r->agent = wp_xstrdup(a->id);
    /* a host with nothing in the lookback was last seen at its start at the latest */
    r->h = rules_eng_host(t->e, a->host != NULL ? a->host : a->id, a->id, NULL,
                          t->start_s * 1000);
    r->newest_ms = 0;
    return 0;
}

struct samples {
    int64_t *ts;
    double *v;
    size_t n, cap;
};

static int row_cb(void *arg, int64_t ts_s, double value)
{
    struct samples *s = arg;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->ts = wp_xrealloc(s->ts, s->cap * sizeof(*s->ts));
        s->v = wp_xrealloc(s->v, s->cap * sizeof(*s->v));
    }
    s->ts[s->n] = ts_s * 1000;
    s->v[s->n] = value;
    s->n++;
    return 0;
}

static int series_cb(void *arg, const char *agent, const struct wp_series_def *d, const char *file)
{
    struct rt *t = arg;
    struct host_ref *hr = host_ref(t, agent);
    char metric[2 * WP_NAME_MAX + 2];
    char field[WP_NAME_MAX + 1];
    char inst[WP_INST_MAX + 1];
    char path[4096];

    if (hr == NULL) {
        return 0;
    }
    snprintf(inst, sizeof(inst), "%.*s", (int)d->inst.len, d->inst.p);
    snprintf(path, sizeof(path), "%s/%s", t->rrd_dir, file);
    for (uint32_t i = 0; i < d->nfields; i++) {
        snprintf(field, sizeof(field), "%.*s", (int)d->fields[i].len, d->fields[i].p);
        snprintf(metric, sizeof(metric), "%.*s.%s", (int)d->group.len, d->group.p, field);
        struct rules_series *se = rules_eng_series(t->e, hr->h, metric, inst);
        if (se == NULL) {
            continue;
        }
        struct samples s;
        memset(&s, 0, sizeof(s));
        int rc = wp_rrdq_fetch(path, field, t->start_s, t->at_s, WP_RRDQ_SKIP_NAN, row_cb, &s,
                               NULL);
        if (rc < 0 && rc != -ENOENT) {
            fprintf(stderr, "rules test: %s (%s): %s\n", path, field, wp_strerror(rc));
            t->errors++;
        }
        for (size_t k = 0; k < s.n; k++) {
            rules_sample(t->e, se, s.ts[k], s.v[k]);
            if (s.ts[k] > hr->newest_ms) {
                hr->newest_ms = s.ts[k];
            }
        }
        t->nseries++;
        t->nsamples += s.n;
        free(s.ts);
        free(s.v);
    }
    return 0;
}

struct print_ctx {
    struct rt *t;
    struct inc_policy pol;
    int firing, pending;
};

static const char *state_name(enum rules_state st)
{
    switch (st) {
    case RS_PENDING:
        return "PENDING";
    case RS_FIRING:
        return "FIRING";
    case RS_RECOVERING:
        return "RECOVERING";
    default:
        return "OK";
    }
}

static void print_cb(void *arg, const char *fp, const struct rule *r, enum rules_state st,
                     int64_t since_ms, double value, int suppressed)
{
    struct print_ctx *c = arg;
    char since[32], val[48];
    time_t ts = (time_t)(since_ms / 1000);
    struct tm tm;
    int prio = c->pol.matrix[r->impact - 1][r->urgency - 1];

    localtime_r(&ts, &tm);
    strftime(since, sizeof(since), "%Y-%m-%d %H:%M:%S", &tm);
    if (isnan(value)) {
        snprintf(val, sizeof(val), "-");
    } else {
        snprintf(val, sizeof(val), "%.6g", value);
    }
    struct said *s = NULL;
    for (struct said *x = c->t->said; x != NULL; x = x->next) {
        if (strcmp(x->fp, fp) == 0) {
            s = x;
        }
    }
    /* why, as on the incident's timeline: "suppressed: maintenance NAME" */
    const char *why = s != NULL && s->supp != NULL ? s->supp : "yes";
    printf("%-10s P%d  %-40s value %-12s since %s%s%s\n", state_name(st), prio, fp, val, since,
           suppressed ? "  suppressed: " : "", suppressed ? why : "");
    if (s != NULL && s->summary != NULL && st != RS_PENDING) {
        printf("           %s\n", s->summary);
    }
    if (st == RS_PENDING) {
        c->pending++;
    } else {
        c->firing++;
    }
}

static int parse_at(const char *s, int64_t *out_ms)
{
    struct tm tm;
    const char *end = NULL;
    int64_t ago = 0;

    if (strcmp(s, "now") == 0) {
        *out_ms = wp_clock_now_ms();
        return 0;
    }
    if (s[0] == '-' && wp_parse_duration_ms(s + 1, &ago) == 0) {
        *out_ms = wp_clock_now_ms() - ago;
        return 0;
    }
    static const char *const fmts[] = {"%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S",
                                       "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"};
    for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
        memset(&tm, 0, sizeof(tm));
        end = strptime(s, fmts[i], &tm);
        if (end == NULL) {
            continue;
        }
        if (*end == '\0') {
            tm.tm_isdst = -1;
            *out_ms = (int64_t)mktime(&tm) * 1000; /* local time */
            return 0;
        }
        if (strcmp(end, "Z") == 0) {
            *out_ms = (int64_t)timegm(&tm) * 1000;
            return 0;
        }
        int hh = 0, mm = 0;
        char sign = end[0];
        if ((sign == '+' || sign == '-') && sscanf(end + 1, "%2d:%2d", &hh, &mm) == 2 &&
            strlen(end) == 6) {
            int64_t off = (int64_t)(hh * 60 + mm) * 60;
            *out_ms = ((int64_t)timegm(&tm) - (sign == '+' ? off : -off)) * 1000;
            return 0;
        }
    }
    return -EINVAL;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: watchpost rules test FILE... [--at TIME] [--lookback DURATION]\n"
               "                            [--state-dir DIR | -c collector.yaml]\n"
               "  Evaluates the rules against the stored data up to TIME and prints what\n"
               "  would fire or is pending. TIME: now (default), -2h (two hours ago),\n"
               "  2026-11-30T08:00:00+08:00, 2026-11-30 08:00 (local time). The maintenance\n"
               "  windows of the rules files and those of `watchpost maintenance` (in the\n"
               "  state dir's incidents.db) active at TIME suppress as in the collector.\n");
}

static int64_t lookback_of(const struct rule_set *rs)
{
    int64_t lb = MIN_LOOKBACK_MS;
    for (size_t i = 0; i < rs->nrules; i++) {
        const struct rule *r = &rs->rules[i];
        int64_t w = r->when.window_ms;
        w = r->recover.window_ms > w ? r->recover.window_ms : w;
        w = r->fc_window_ms > w ? r->fc_window_ms : w;
        w = r->nodata_ms > w ? r->nodata_ms : w;
        w += r->for_ms + r->recover_for_ms + r->state_for_ms + 5 * 60000LL;
        lb = w > lb ? w : lb;
    }
    return lb;
}

int cli_rules(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"at", required_argument, NULL, 'a'},
        {"lookback", required_argument, NULL, 'l'},
        CLI_STD_LONGOPTS,
    };
    struct cli_std so = {.cmd = "rules test"};
    const char *at = "now";
    const char *lookback = NULL;
    const char *state = NULL;
    struct coll_conf *conf = NULL;
    struct rule_set *rs = NULL;
    struct wp_conf_err err;
    struct rt t;
    struct print_ctx pc;
    char *rrd_dir = NULL;
    char path[4096];
    char mnote[1024];
    int opt = 0, stop = 0;
    int rc = 1;

    memset(&t, 0, sizeof(t));
    memset(&pc, 0, sizeof(pc));
    if (argc < 2 || strcmp(argv[1], "test") != 0) {
        usage(argc >= 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
        return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    argc--;
    argv++;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'a':
            at = optarg;
            break;
        case 'l':
            lookback = optarg;
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
    if (parse_at(at, &t.at_ms) < 0) {
        fprintf(stderr, "rules test: --at \"%s\": expected now, -DURATION, or a date and time "
                        "like 2026-11-30T08:00:00+08:00\n", at);
        return 2;
    }
    memset(&err, 0, sizeof(err));
    if (rules_load((const char *const *)&argv[optind], (size_t)(argc - optind), &err, &rs) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int64_t lb_ms = lookback_of(rs);
    if (lookback != NULL && wp_parse_duration_ms(lookback, &lb_ms) < 0) {
        fprintf(stderr, "rules test: --lookback takes a duration like 1h or 2d\n");
        goto out;
    }
    pc.t = &t;
    inc_policy_default(&pc.pol);
    state = cli_state_dir(so.config, so.dir, &conf);
    if (state == NULL) {
        goto out;
    }
    if (conf != NULL) {
        rrd_dir = wp_xstrdup(conf->rrd.dir);
        memcpy(pc.pol.matrix, conf->incidents.matrix_prio, sizeof(pc.pol.matrix));
    }
    if (rrd_dir == NULL) {
        rrd_dir = wp_xasprintf("%s/rrd", state);
    }
    /* a running collector writes what it holds in memory first */
    snprintf(path, sizeof(path), "%s/collector.sock", state);
    msgpack_unpacked up;
    void *body = NULL;
    msgpack_unpacked_init(&up);
    (void)cli_ctl_request(path, "flush", 30000, &up, &body);
    msgpack_unpacked_destroy(&up);
    free(body);
    snprintf(path, sizeof(path), "%s/watchpost.db", state);
    if (coll_db_open(path, &t.db) < 0) {
        fprintf(stderr, "rules test: cannot open %s\n", path);
        goto out;
    }
    struct rules_sink sink = {.arg = &t, .fire = t_fire, .clear = t_clear,
                              .suppress = t_suppress};
    t.e = rules_eng_new(rs, &sink);
    t.rs = rs;
    t.rrd_dir = rrd_dir;
    if (maint_load(&t, state, mnote, sizeof(mnote)) < 0) {
        t.errors++;
    }
    rules_eng_set_maint(t.e, t_maint, &t);
    t.at_s = t.at_ms / 1000;
    t.start_s = t.at_s - lb_ms / 1000;
    coll_db_agent_each(t.db, agent_cb, &t);
    coll_db_series_each(t.db, series_cb, &t);
    for (size_t i = 0; i < t.nhosts; i++) {
        if (t.hosts[i].newest_ms > 0) {
            rules_host_seen(t.e, t.hosts[i].h, t.hosts[i].newest_ms);
        }
    }
    rules_eng_tick(t.e, t.at_ms);

    char when[32];
    time_t ats = (time_t)t.at_s;
    struct tm tm;
    localtime_r(&ats, &tm);
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
    printf("rules test at %s (lookback %llds): %zu rules, %zu hosts, %zu series, %zu samples\n",
           when, (long long)(lb_ms / 1000), rs->nrules, t.nhosts, t.nseries, t.nsamples);
    printf("%s\n", mnote);
    rules_eng_each(t.e, print_cb, &pc);
    printf("%d firing, %d pending\n", pc.firing, pc.pending);
    rc = t.errors ? 1 : 0;
out:
    rules_eng_free(t.e);
    for (size_t i = 0; i < t.nhosts; i++) {
        free(t.hosts[i].agent);
    }
    free(t.hosts);
    while (t.said != NULL) {
        struct said *nx = t.said->next;
        free(t.said->fp);
        free(t.said->summary);
        free(t.said->supp);
        free(t.said);
        t.said = nx;
    }
    coll_db_close(t.db);
    maint_set_free(t.mset);
    rules_free(rs);
    free(rrd_dir);
    coll_conf_free(conf);
    return rc;
}
