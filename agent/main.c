/* SPDX-License-Identifier: Apache-2.0 */
/* watchpost-agent: options, --check-config, --once, and the daemon's setup and clean shutdown. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "agent.h"
#include "agent_conf.h"
#include "agent_sched.h"
#include "enroll.h"
#include "probe.h"
#include "sender.h"
#include "sink.h"
#include "spool.h"
#include "wp/clock.h"
#include "wp/err.h"
#include "wp/log.h"
#include "wp/sdnotify.h"
#include "wp/mem.h"
#include "wp/tls.h"

#define CLOSE_ROUNDS 100 /* bound on the shutdown drain loop */

enum { OPT_CHECK = 1000, OPT_ONCE, OPT_VERSION, OPT_LOG_LEVEL };

struct args {
    const char *conf;
    int check;
    int once;
    int version;
    int have_level;
    enum wp_log_level level;
};

static void usage(FILE *fp)
{
    fprintf(fp, "usage: watchpost-agent [-c FILE] [--check-config] [--once] [--version]\n"
                "                       [--log-level error|warn|info|debug]\n"
                "       watchpost-agent enroll --collector HOST:PORT --token T ...\n"
                "  -c, --config FILE   configuration (default " AGENT_CONF_DEFAULT ")\n"
                "  --check-config      load the configuration, print ok or the error\n"
                "  --once              sample every probe (two rounds 1 s apart), print the\n"
                "                      rows as \"group inst field=value ...\", do not connect\n"
                "  --version           print the version\n"
                "  --log-level L       override agent.log_level\n"
                "SIGHUP re-reads the configuration: unchanged probes and the connection keep\n"
                "running; a file with an error is refused and the running configuration stays.\n");
}

/* Returns 0, 1 to exit with success (help), or -1 for a usage error. */
static int parse_args(int argc, char **argv, struct args *a)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, OPT_CHECK},
        {"once", no_argument, NULL, OPT_ONCE},
        {"version", no_argument, NULL, OPT_VERSION},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch = 0;

    memset(a, 0, sizeof(*a));
    a->conf = AGENT_CONF_DEFAULT;
    while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            a->conf = optarg;
            break;
        case OPT_CHECK:
            a->check = 1;
            break;
        case OPT_ONCE:
            a->once = 1;
            break;
        case OPT_VERSION:
            a->version = 1;
            break;
        case OPT_LOG_LEVEL:
            if (wp_log_level_parse(optarg, &a->level) < 0) {
                fprintf(stderr,
                        "watchpost-agent: bad log level \"%s\" (error, warn, info, debug)\n",
                        optarg);
                return -1;
            }
            a->have_level = 1;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "watchpost-agent: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return -1;
    }
    return 0;
}

/* ---- --once --------------------------------------------------------------------------------- */

struct once {
    int print;
};

static void once_metric(struct wp_sink *ws, const struct wp_series_kind *kind, const char *inst,
                        const double *vals)
{
    const struct once *o = ws->ctx;

    if (!o->print || kind == NULL) {
        return;
    }
    printf("%s %s", kind->group, (inst != NULL && inst[0] != '\0') ? inst : "-");
    for (uint32_t k = 0; k < kind->nfields && k < WP_SERIES_MAX_FIELDS; k++) {
        if (isnan(vals[k])) {
            printf(" %s=U", kind->fields[k]); /* RRD's spelling of unknown */
        } else {
            printf(" %s=%.10g", kind->fields[k], vals[k]);
        }
    }
    putchar('\n');
}

static void once_round(const struct agent_conf *conf, struct wp_sink *ws, int64_t ts)
{
    for (size_t i = 0; i < conf->nprobes; i++) {
        struct wp_probe *p = conf->probes[i];
        int64_t every = p->interval_ms / 1000;
        if (p->ops->sample == NULL) {
            continue;
        }
        ws->ts_ms = ts;
        ws->step_s = every < 1 ? 1 : (uint32_t)every;
        int rc = p->ops->sample(p, ws);
        if (rc < 0) {
            WP_PLOG(p, WP_LOG_WARN, "sample failed: %s", wp_strerror(rc));
        }
    }
}

/* Two rounds a second apart (the first gives counters a base), print the second. Probes'
 * committed() is not called: nothing was made durable. */
static int run_once(const struct agent_conf *conf)
{
    struct once o = {0};
    struct wp_sink ws = {0};
    int64_t ts = wp_clock_now_ms() / 1000 * 1000;
    struct timespec sec = {1, 0};

    ws.metric = once_metric;
    ws.ctx = &o;
    once_round(conf, &ws, ts);
    while (nanosleep(&sec, &sec) < 0 && errno == EINTR) {
    }
    o.print = 1;
    once_round(conf, &ws, ts + 1000);
    fflush(stdout);
    return 0;
}


/* ---- the daemon ----------------------------------------------------------------------------- */

static int mkdir_p(const char *path)
{
    char *p = wp_xstrdup(path);
    int rc = 0;

    for (char *q = p + 1; *q != '\0'; q++) {
        if (*q != '/') {
            continue;
        }
        *q = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST) {
            rc = -errno;
            goto out;
        }
        *q = '/';
    }
    if (mkdir(p, 0700) < 0 && errno != EEXIST) {
        rc = -errno;
    }
out:
    free(p);
    return rc;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

static void agent_stop(struct agent *a, const char *why)
{
    if (a->stopping) {
        return;
    }
    a->stopping = 1;
    WP_INFO("agent", "stopping (%s)", why);
    wp_sd_notify("agent", "STOPPING=1");
    /* probes stop first; a sample still running on the pool spools its batch as the loop
     * drains, so nothing sampled is lost */
    agent_sched_stop(a->sched);
    agent_sender_stop(a->sender);
    uv_walk(a->loop, close_walk, NULL);
}

/* ---- reload (SIGHUP) ------------------------------------------------------------------------ */

static int str_eq(const char *x, const char *y)
{
    return (x == NULL || y == NULL) ? x == y : strcmp(x, y) == 0;
}

static int strlist_eq(const struct wp_strlist *x, const struct wp_strlist *y)
{
    if (x->n != y->n) {
        return 0;
    }
    for (size_t i = 0; i < x->n; i++) {
        if (!str_eq(x->v[i], y->v[i])) {
            return 0;
        }
    }
    return 1;
}

/* FNV-1a over the TLS files' paths and contents: a certificate renewed in place counts as a
 * change. An unreadable file adds its errno (the TLS setup then names the problem). */
static uint64_t tls_files_sum(const struct agent_conf *conf)
{
    const char *const paths[3] = {conf->tls.ca, conf->tls.cert, conf->tls.key};
    uint64_t h = 1469598103934665603ull;
    unsigned char buf[4096];

    for (size_t i = 0; i < 3; i++) {
        const char *path = paths[i] != NULL ? paths[i] : "";
        FILE *fp = fopen(path, "re");
        size_t n = 0;
        for (const char *c = path; *c != '\0'; c++) {
            h = (h ^ (unsigned char)*c) * 1099511628211ull;
        }
        if (fp == NULL) {
            h = (h ^ (uint64_t)errno) * 1099511628211ull;
            continue;
        }
        while ((n = fread(buf, 1, sizeof(buf), fp)) > 0) {
            for (size_t k = 0; k < n; k++) {
                h = (h ^ buf[k]) * 1099511628211ull;
            }
        }
        fclose(fp);
    }
    return h;
}

/* Why the connection must be made again after a reload to nc, or NULL to keep it. *tls is
 * set when the TLS context must be made again. */
static const char *link_change(const struct agent *a, const struct agent_conf *nc, uint64_t tls_sum,
                               int *tls)
{
    const struct agent_conf *o = a->conf;

    *tls = !str_eq(o->tls.ca, nc->tls.ca) || !str_eq(o->tls.cert, nc->tls.cert) ||
           !str_eq(o->tls.key, nc->tls.key) || tls_sum != a->tls_sum;
    if (*tls) {
        return "tls settings or files changed";
    }
    if (!str_eq(o->agent.id, nc->agent.id) || !str_eq(o->agent.host, nc->agent.host) ||
        !strlist_eq(&o->agent.labels, &nc->agent.labels)) {
        return "agent id, host or labels changed";
    }
    if (o->ncollectors != nc->ncollectors) {
        return "collectors changed";
    }
    for (size_t i = 0; i < o->ncollectors; i++) {
        const struct agent_collector *x = &o->collectors[i];
        const struct agent_collector *y = &nc->collectors[i];
        if (!str_eq(x->host, y->host) || !str_eq(x->port, y->port) ||
            !str_eq(x->server_name, y->server_name)) {
            return "collectors changed";
        }
    }
    if (o->sender.max_inflight != nc->sender.max_inflight) {
        return "sender.max_inflight changed";
    }
    return NULL; /* backoff and connect_timeout are read at each attempt */
}

/* Settings the open spool and dictionary were made with: they stay until a restart. */
static void keep_state_settings(const struct agent_conf *o, struct agent_conf *nc)
{
    const char *what = NULL;

    if (!str_eq(o->agent.state_dir, nc->agent.state_dir)) {
        what = "agent.state_dir";
        free(nc->agent.state_dir);
        nc->agent.state_dir = wp_xstrdup(o->agent.state_dir);
    }
    if (o->spool.max_bytes != nc->spool.max_bytes || o->spool.max_age_ms != nc->spool.max_age_ms ||
        o->spool.segment_bytes != nc->spool.segment_bytes || o->spool.fsync != nc->spool.fsync) {
        what = what != NULL ? "agent.state_dir and spool" : "spool";
        nc->spool = o->spool;
    }
    if (what != NULL) {
        WP_WARN("agent", "reload: %s changed; that needs a restart, the running values stay", what);
    }
}

/* Log what the reload does to each probe; counts in n[0] added, n[1] restarted, n[2]
 * removed. */
static void log_probe_changes(const struct agent_conf *o, const struct agent_conf *nc, size_t n[3])
{
    n[0] = n[1] = n[2] = 0;
    for (size_t i = 0; i < nc->nprobes; i++) {
        const struct wp_probe *p = nc->probes[i];
        int same_id = 0;
        if (nc->probe_reused[i]) {
            continue;
        }
        for (size_t j = 0; j < o->nprobes && !same_id; j++) {
            const struct wp_probe *q = o->probes[j];
            same_id = q != NULL && q->ops == p->ops && strcmp(q->instance, p->instance) == 0;
        }
        WP_INFO("agent", "reload: %s probe %s:%s",
                same_id ? "restarting (config changed)" : "adding", p->ops->name, p->instance);
        n[same_id ? 1 : 0]++;
    }
    for (size_t j = 0; j < o->nprobes; j++) {
        const struct wp_probe *q = o->probes[j];
        int found = 0;
        if (q == NULL) {
            continue;
        }
        for (size_t i = 0; i < nc->nprobes && !found; i++) {
            const struct wp_probe *p = nc->probes[i];
            found = p->ops == q->ops && strcmp(p->instance, q->instance) == 0;
        }
        if (!found) {
            WP_INFO("agent", "reload: removing probe %s:%s", q->ops->name, q->instance);
            n[2]++;
        }
    }
}

/*
 * SIGHUP: read the config again. A bad file is refused with its error and everything keeps
 * running as it was. Otherwise unchanged probes keep running (with their state), removed
 * ones stop, added and changed ones start, and the connection stays unless the collectors,
 * the identity or TLS changed (then it is made again; the spool keeps what was not acked).
 */
static void agent_reload(struct agent *a)
{
    struct agent_conf *old = a->conf;
    struct agent_conf *nc = NULL;
    struct wp_tls_ctx *tls = NULL;
    struct wp_conf_err err;
    struct agent_sched_diff d;
    struct timespec mono;
    const char *why = NULL;
    char msg[96];
    size_t n[3];
    uint64_t sum = 0;
    unsigned long long usec = 0;
    int new_tls = 0;
    int rc = 0;

    clock_gettime(CLOCK_MONOTONIC, &mono);
    usec = (unsigned long long)mono.tv_sec * 1000000ull + (unsigned long long)mono.tv_nsec / 1000;
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu", usec);
    wp_sd_notify("agent", msg);
    WP_INFO("agent", "SIGHUP: reloading %s", old->path);
    memset(&err, 0, sizeof(err));
    rc = agent_conf_reload(old->path, old, &err, &nc);
    if (rc < 0) {
        WP_ERROR("agent", "reload refused, the running configuration stays: %s",
                 err.msg[0] != '\0' ? err.msg : wp_strerror(rc));
        goto out;
    }
    keep_state_settings(old, nc);
    sum = tls_files_sum(nc);
    why = link_change(a, nc, sum, &new_tls);
    if (new_tls) {
        struct wp_tls_opts topts;
        char terr[512] = "";
        memset(&topts, 0, sizeof(topts));
        topts.ca_path = nc->tls.ca;
        topts.cert_path = nc->tls.cert;
        topts.key_path = nc->tls.key;
        rc = wp_tls_ctx_new(&topts, terr, sizeof(terr), &tls);
        if (rc < 0) {
            WP_ERROR("agent", "reload refused, the running configuration stays: %s: TLS: %s",
                     nc->path, terr[0] != '\0' ? terr : wp_strerror(rc));
            agent_conf_free(nc);
            goto out;
        }
    }
    if (!a->log_level_fixed) {
        wp_log_set_level((enum wp_log_level)nc->agent.log_level);
    }
    log_probe_changes(old, nc, n);
    agent_sched_reload(a->sched, nc, old, &d);
    agent_conf_adopt(nc, old);
    a->conf = nc;
    agent_conf_free(old); /* with the probes that were stopped */
    if (tls != NULL) {
        a->tls_retired =
            wp_xrealloc(a->tls_retired, (a->ntls_retired + 1) * sizeof(*a->tls_retired));
        a->tls_retired[a->ntls_retired++] = a->tls;
        a->tls = tls;
        a->tls_sum = sum;
    }
    if (why != NULL) {
        agent_sender_reconnect(a->sender, why);
    }
    WP_INFO("agent",
            "reloaded probes=%zu kept=%zu added=%zu restarted=%zu removed=%zu connection=%s",
            nc->nprobes, d.kept, n[0], n[1], n[2], why != NULL ? why : "kept");
out:
    wp_sd_notify("agent", "READY=1");
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct agent *a = h->data;

    if (signum == SIGHUP) {
        if (!a->stopping) {
            agent_reload(a);
        }
        return;
    }
    agent_stop(a, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void signal_start(struct agent *a, uv_signal_t *h, int signum)
{
    uv_signal_init(a->loop, h);
    h->data = a;
    uv_signal_start(h, on_signal, signum);
}

static int open_state(struct agent *a)
{
    const struct agent_conf *conf = a->conf;
    struct wp_spool_limits lim;
    struct wp_tls_opts topts;
    char err[512];
    char *path = NULL;
    int rc = 0;

    rc = mkdir_p(conf->agent.state_dir);
    if (rc < 0) {
        WP_ERROR("agent", "cannot create state_dir %s: %s", conf->agent.state_dir, wp_strerror(rc));
        return rc;
    }
    memset(&lim, 0, sizeof(lim));
    lim.max_bytes = conf->spool.max_bytes;
    lim.max_age_ms = conf->spool.max_age_ms;
    lim.segment_bytes = conf->spool.segment_bytes;
    lim.fsync = conf->spool.fsync;
    path = wp_xasprintf("%s/spool", conf->agent.state_dir);
    rc = wp_spool_open(path, &lim, &a->spool);
    if (rc < 0) {
        WP_ERROR("agent", "cannot open spool %s: %s", path, wp_strerror(rc));
        goto out;
    }
    free(path);
    path = wp_xasprintf("%s/series.dict", conf->agent.state_dir);
    rc = agent_sink_open(path, conf->spool.fsync, &a->sink);
    if (rc == WP_ECORRUPT) {
        WP_ERROR("agent",
                 "series dictionary %s is not a dictionary file; the spooled batches "
                 "cannot be read without it (remove %s/spool and it to start afresh)",
                 path, conf->agent.state_dir);
        goto out;
    }
    if (rc < 0) {
        WP_ERROR("agent", "cannot open series dictionary %s: %s", path, wp_strerror(rc));
        goto out;
    }
    memset(&topts, 0, sizeof(topts));
    topts.ca_path = conf->tls.ca;
    topts.cert_path = conf->tls.cert;
    topts.key_path = conf->tls.key;
    topts.is_server = 0;
    err[0] = '\0';
    rc = wp_tls_ctx_new(&topts, err, sizeof(err), &a->tls);
    if (rc < 0) {
        WP_ERROR("agent", "TLS setup failed: %s", err[0] != '\0' ? err : wp_strerror(rc));
        goto out;
    }
    a->tls_sum = tls_files_sum(conf);
out:
    free(path);
    return rc;
}

static void free_state(struct agent *a)
{
    agent_sched_free(a->sched);
    agent_sender_free(a->sender);
    wp_tls_ctx_free(a->tls);
    for (size_t i = 0; i < a->ntls_retired; i++) {
        wp_tls_ctx_free(a->tls_retired[i]);
    }
    free(a->tls_retired);
    a->tls_retired = NULL;
    a->ntls_retired = 0;
    agent_sink_free(a->sink);
    wp_spool_close(a->spool);
    a->sched = NULL;
    a->sender = NULL;
    a->tls = NULL;
    a->sink = NULL;
    a->spool = NULL;
}

/* Runs until SIGTERM/SIGINT. A reload replaces the config: *confp is the one in force at
 * the end (the caller frees it). */
static int run(struct agent_conf **confp, int level_fixed)
{
    struct agent_conf *conf = *confp;
    struct agent a;
    uv_loop_t loop;
    int rc = 0;

    memset(&a, 0, sizeof(a));
    rc = uv_loop_init(&loop);
    if (rc < 0) {
        WP_ERROR("agent", "uv_loop_init: %s", uv_strerror(rc));
        return 1;
    }
    a.loop = &loop;
    a.conf = conf;
    a.log_level_fixed = level_fixed;
    signal(SIGPIPE, SIG_IGN);
    rc = open_state(&a);
    if (rc == 0) {
        signal_start(&a, &a.sig_term, SIGTERM);
        signal_start(&a, &a.sig_int, SIGINT);
        signal_start(&a, &a.sig_hup, SIGHUP);
        WP_INFO("agent",
                "started id=%s host=%s version=%s probes=%zu collectors=%zu "
                "state_dir=%s",
                conf->agent.id, conf->agent.host, WP_VERSION, conf->nprobes, conf->ncollectors,
                conf->agent.state_dir);
        agent_sched_start(&a, &a.sched);
        agent_sender_start(&a, &a.sender);
        /* state open, probes scheduled; the link to the collector comes up on its own */
        wp_sd_notify("agent", "READY=1");
        uv_run(&loop, UV_RUN_DEFAULT);
        if (!a.stopping) {
            WP_ERROR("agent", "event loop ended unexpectedly");
            agent_stop(&a, "loop ended");
            rc = 1;
        }
    }
    /* drain: close callbacks, thread-pool work and resolutions still in flight */
    for (int i = 0; i < CLOSE_ROUNDS && uv_loop_close(&loop) == UV_EBUSY; i++) {
        uv_walk(&loop, close_walk, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    free_state(&a);
    *confp = a.conf;
    if (rc == 0) {
        WP_INFO("agent", "stopped");
    }
    return rc < 0 ? 1 : rc;
}

int main(int argc, char **argv)
{
    struct args args;
    struct wp_conf_err err;
    struct agent_conf *conf = NULL;
    int rc = 0;

    if (argc >= 2 && strcmp(argv[1], "enroll") == 0) {
        return agent_enroll_main(argc - 1, argv + 1);
    }
    rc = parse_args(argc, argv, &args);
    if (rc != 0) {
        return rc < 0 ? 2 : 0;
    }
    if (args.version) {
        printf("watchpost-agent %s\n", WP_VERSION);
        return 0;
    }
    if (args.have_level) {
        wp_log_set_level(args.level);
    }
    memset(&err, 0, sizeof(err));
    rc = agent_conf_load(args.conf, &err, &conf);
    if (rc < 0) {
        fprintf(stderr, "%s\n", err.msg[0] != '\0' ? err.msg : wp_strerror(rc));
        return 1;
    }
    if (!args.have_level) {
        wp_log_set_level((enum wp_log_level)conf->agent.log_level);
    }
    if (args.check) {
        printf("ok\n");
        rc = 0;
    } else if (args.once) {
        rc = run_once(conf);
    } else {
        rc = run(&conf, args.have_level);
    }
    agent_conf_free(conf);
    return rc;
}
