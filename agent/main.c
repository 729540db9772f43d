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

#define DEFAULT_CONF "/etc/watchpost/agent.yaml"
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
                "  -c, --config FILE   configuration (default " DEFAULT_CONF ")\n"
                "  --check-config      load the configuration, print ok or the error\n"
                "  --once              sample every probe (two rounds 1 s apart), print the\n"
                "                      rows as \"group inst field=value ...\", do not connect\n"
                "  --version           print the version\n"
                "  --log-level L       override agent.log_level\n");
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
    a->conf = DEFAULT_CONF;
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

static void on_signal(uv_signal_t *h, int signum)
{
    struct agent *a = h->data;

    if (signum == SIGHUP) {
        WP_INFO("agent", "reload not supported yet, restart to apply config");
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
out:
    free(path);
    return rc;
}

static void free_state(struct agent *a)
{
    agent_sched_free(a->sched);
    agent_sender_free(a->sender);
    wp_tls_ctx_free(a->tls);
    agent_sink_free(a->sink);
    wp_spool_close(a->spool);
    a->sched = NULL;
    a->sender = NULL;
    a->tls = NULL;
    a->sink = NULL;
    a->spool = NULL;
}

static int run(struct agent_conf *conf)
{
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
        rc = run(conf);
    }
    agent_conf_free(conf);
    return rc;
}
