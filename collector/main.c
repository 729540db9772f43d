/* SPDX-License-Identifier: Apache-2.0 */
/* watchpost-collector: receives agent streams over mutual TLS and stores them. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <uv.h>

#include "coll.h"
#include "coll_conf.h"
#include "report_sched.h"
#include "wp/err.h"
#include "wp/log.h"
#include "wp/sdnotify.h"

/* One descriptor per agent: raise the soft limit towards max_agents (up to the hard limit). */
static void raise_nofile(int64_t max_agents)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)max_agents + 256;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want) {
        return;
    }
    rlim_t got = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    rl.rlim_cur = got;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0 && got < want) {
        WP_WARN("collector", "open files limited to %llu (hard limit): fewer than limits.max_agents "
                "= %lld agents can connect", (unsigned long long)got, (long long)max_agents);
    }
}

/* Tells systemd the collector is stopping; runs beside the server's own SIGTERM/SIGINT handler
 * (libuv calls every watcher of a signal), unreferenced so it never keeps the loop alive. */
static void on_stop_signal(uv_signal_t *h, int signum)
{
    (void)h;
    (void)signum;
    wp_sd_notify("collector", "STOPPING=1");
}

static void usage(FILE *f)
{
    fprintf(f, "usage: watchpost-collector [-c FILE] [--port-file FILE] [--check-config]\n"
               "                           [--log-level error|warn|info|debug] [--version]\n"
               "  -c, --config FILE   configuration (default /etc/watchpost/collector.yaml)\n"
               "  --port-file FILE    write the bound TCP port here once listening\n"
               "  --http-port-file FILE  the same for the HTTP server (http.listen)\n"
               "  --check-config      load the configuration, report, exit\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"port-file", required_argument, NULL, 'p'},
        {"http-port-file", required_argument, NULL, 'H'},
        {"check-config", no_argument, NULL, 'C'},
        {"log-level", required_argument, NULL, 'l'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = "/etc/watchpost/collector.yaml";
    const char *port_file = NULL;
    const char *http_port_file = NULL;
    const char *level = NULL;
    int check_only = 0;
    int opt = 0;

    if (argc > 1 && strcmp(argv[1], "--report-job") == 0) {
        /* the scheduler's child process (report_sched.h): one report, then exit */
        return rsched_job_main(argc - 1, argv + 1);
    }
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 'p':
            port_file = optarg;
            break;
        case 'H':
            http_port_file = optarg;
            break;
        case 'C':
            check_only = 1;
            break;
        case 'l':
            level = optarg;
            break;
        case 'V':
            printf("watchpost-collector %s\n", WP_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    struct wp_conf_err err;
    struct coll_conf *conf = NULL;
    if (coll_conf_load(config, &err, &conf) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    if (check_only) {
        printf("%s: ok\n", config);
        coll_conf_free(conf);
        return 0;
    }
    wp_log_set_level((enum wp_log_level)conf->log_level);
    if (level != NULL) {
        enum wp_log_level l;
        if (wp_log_level_parse(level, &l) < 0) {
            fprintf(stderr, "--log-level: expected error, warn, info or debug, got \"%s\"\n", level);
            coll_conf_free(conf);
            return 2;
        }
        wp_log_set_level(l);
    }
    signal(SIGPIPE, SIG_IGN);
    conf->http.port_file = http_port_file;
    raise_nofile(conf->limits.max_agents +
                 (conf->http.listen != NULL ? conf->http.max_connections : 0));

    uv_loop_t loop;
    struct coll_server srv;
    uv_loop_init(&loop);
    uv_signal_t stop_sig[2];
    int rc = coll_server_start(&srv, &loop, conf, port_file);
    if (rc < 0) {
        coll_server_stop(&srv);
    }
    for (int i = 0; i < 2; i++) {
        uv_signal_init(&loop, &stop_sig[i]);
        uv_signal_start(&stop_sig[i], on_stop_signal, i == 0 ? SIGTERM : SIGINT);
        uv_unref((uv_handle_t *)&stop_sig[i]);
    }
    if (rc == 0) {
        wp_sd_notify("collector", "READY=1"); /* listening, control socket up, journal replayed */
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&stop_sig[0], NULL);
    uv_close((uv_handle_t *)&stop_sig[1], NULL);
    coll_server_cleanup(&srv);
    /* every handle is closed by now; loop_close must succeed (tests rely on a clean exit) */
    for (int i = 0; i < 10 && uv_loop_close(&loop) == UV_EBUSY; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    coll_conf_free(conf);
    return rc < 0 || srv.exit_code ? 1 : 0;
}
