/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tcp probe: is host:port accepting connections, and how long does the connect take.
 *
 * Config:
 *   - kind: tcp
 *     interval: 30s
 *     targets:
 *       - {name: db, host: 127.0.0.1, port: 5432, timeout: 3s}
 *
 * Series group "tcp", instance <target name>, gauges: up (1/0) and connect_s (from the
 * first connect() to the established connection, name resolution not included; NaN when
 * down). Check "tcp_<name>": OK "TCP OK: 127.0.0.1:5432 connected in 0.001 s", or CRITICAL
 * with the reason: "TCP CRITICAL: 127.0.0.1:5432: connection refused", "... timed out after
 * 3 s", "... cannot resolve: Name or service not known".
 *
 * All targets of a round connect concurrently: non-blocking sockets, one poll() over them,
 * each with its own deadline (timeout); a name with several addresses tries them in the
 * resolver's order until one connects or the deadline passes. Names are resolved first, one
 * by one, with getaddrinfo(), which the timeout does not bound (the resolver's own timeouts
 * in resolv.conf do). Hence WP_PROBE_BLOCKING: sample() runs on the agent's thread pool.
 */
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"
#include "wp/err.h"
#include "wp/mem.h"

#define TCP_NAME_MAX 64

struct tcp_target {
    char *name;
    char *host;
    int64_t port;
    int64_t timeout_ms;

    char *check; /* "tcp_<name>" */
    char *where; /* "host:port" ("[v6]:port") for messages */
};

struct tcp_targets {
    struct tcp_target *v;
    size_t n;
};

struct tcp_ctx {
    struct tcp_targets targets; /* decoded by wp_probe_targets_decode (the registry frees it) */
};

/* One connection attempt of a sample. */
struct tcp_run {
    const struct tcp_target *t;
    struct addrinfo *ai;  /* getaddrinfo() result */
    struct addrinfo *cur; /* the address being tried */
    int fd;               /* -1 when no connect is pending */
    int done;
    int up;
    int err;       /* -errno of the last failure */
    int gai_err;   /* getaddrinfo() failure, 0 if none */
    int64_t t0_ns; /* the first connect() */
    int64_t deadline_ns;
    double connect_s;
};

static int check_target(struct wp_conf_doc *doc, struct wp_conf_node *it, const char *path,
                        void *item, struct wp_conf_err *err);
static void free_target(void *item);

#define TO(f) offsetof(struct tcp_target, f)

static const struct wp_opt target_opts[] = {
    {.name = "name",
     .type = WP_OPT_STR,
     .help = "target name: the series instance and the check tcp_<name>",
     .offset = TO(name),
     .required = 1},
    {.name = "host",
     .type = WP_OPT_STR,
     .help = "host name or IP address",
     .offset = TO(host),
     .required = 1},
    {.name = "port",
     .type = WP_OPT_INT,
     .help = "TCP port",
     .offset = TO(port),
     .min = 1,
     .max = 65535,
     .required = 1},
    {.name = "timeout",
     .type = WP_OPT_DURATION,
     .def = "3s",
     .help = "limit for the connect (name resolution not included)",
     .offset = TO(timeout_ms),
     .min = 100,
     .max = 300000},
    WP_OPT_TABLE_END,
};

static const struct wp_probe_targets_spec targets_spec = {
    .example = "[{name: db, host: 127.0.0.1, port: 5432}]",
    .opts = target_opts,
    .size = sizeof(struct tcp_target),
    .name_off = TO(name),
    .name_max = TCP_NAME_MAX,
    .check = check_target,
    .item_free = free_target,
};

static const struct wp_opt tcp_opts[] = {
    {.name = "targets",
     .type = WP_OPT_CUSTOM,
     .help = "ports to connect to: [{name, host, port, timeout}]",
     .offset = offsetof(struct tcp_ctx, targets),
     .required = 1,
     .custom = wp_probe_targets_decode,
     .custom_free = wp_probe_targets_free,
     .arg = &targets_spec},
    WP_OPT_TABLE_END,
};

static const char *const tcp_fields[] = {"up", "connect_s"};
static const struct wp_series_kind kind_tcp = {"tcp", tcp_fields, 2, WP_DS_GAUGE};

/* ---- config ---- */

static int check_target(struct wp_conf_doc *doc, struct wp_conf_node *it, const char *path,
                        void *item, struct wp_conf_err *err)
{
    struct tcp_target *t = item;

    if (t->host[0] == '\0' || strlen(t->host) > 253) {
        return wp_conf_errorf(doc, wp_probe_at_key(doc, it, "host"), err,
                              "%s.host: expected a host name or an IP address", path);
    }
    t->check = wp_xasprintf("tcp_%s", t->name);
    t->where = wp_probe_hostport(t->host, t->port);
    return 0;
}

static void free_target(void *item)
{
    struct tcp_target *t = item;

    free(t->check);
    free(t->where);
}

/* ---- connecting ---- */

static int64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void run_close(struct tcp_run *r)
{
    if (r->fd >= 0) {
        close(r->fd);
        r->fd = -1;
    }
}

/* Start connecting to r->cur or the addresses after it; done when none is left. */
static void run_next(struct tcp_run *r)
{
    while (r->cur != NULL) {
        const struct addrinfo *a = r->cur;
        r->fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (r->fd < 0) {
            r->err = -errno;
            r->cur = r->cur->ai_next;
            continue;
        }
        if (r->t0_ns == 0) {
            r->t0_ns = mono_ns();
        }
        if (connect(r->fd, a->ai_addr, a->ai_addrlen) == 0) {
            r->up = 1;
            r->done = 1;
            r->connect_s = (double)(mono_ns() - r->t0_ns) / 1e9;
            run_close(r);
            return;
        }
        if (errno == EINPROGRESS) {
            return; /* poll() says when */
        }
        r->err = -errno;
        run_close(r);
        r->cur = r->cur->ai_next;
    }
    r->done = 1;
}

/* poll() reported r->fd: connected, or on to the next address. */
static void run_ready(struct tcp_run *r)
{
    int soerr = 0;
    socklen_t len = sizeof(soerr);

    if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) {
        soerr = errno;
    }
    if (soerr == 0) {
        r->up = 1;
        r->done = 1;
        r->connect_s = (double)(mono_ns() - r->t0_ns) / 1e9;
        run_close(r);
        return;
    }
    r->err = -soerr;
    run_close(r);
    r->cur = r->cur->ai_next;
    run_next(r);
}

static void run_start(struct tcp_run *r)
{
    struct addrinfo hints;
    char port[8];
    int rc = 0;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%lld", (long long)r->t->port);
    rc = getaddrinfo(r->t->host, port, &hints, &r->ai);
    if (rc != 0) {
        r->gai_err = rc;
        r->err = rc == EAI_SYSTEM ? -errno : 0;
        r->ai = NULL;
        r->done = 1;
        return;
    }
    /* the timeout counts from here: resolution above is bounded by the resolver */
    r->deadline_ns = mono_ns() + r->t->timeout_ms * 1000000;
    r->cur = r->ai;
    r->err = -EHOSTUNREACH; /* if the list is empty */
    run_next(r);
}

/* "connection refused": strerror() with a lower-case first letter. */
static void err_text(int err, char *buf, size_t len)
{
    snprintf(buf, len, "%s", wp_strerror(err));
    if (buf[0] >= 'A' && buf[0] <= 'Z' && !(buf[1] >= 'A' && buf[1] <= 'Z')) {
        buf[0] = (char)(buf[0] - 'A' + 'a');
    }
}

static void report(struct wp_probe *p, const struct tcp_run *r, struct wp_sink *out)
{
    const struct tcp_target *t = r->t;
    double v[2] = {r->up ? 1.0 : 0.0, r->up ? r->connect_s : NAN};
    char msg[512];
    char why[256];

    if (r->up) {
        snprintf(msg, sizeof(msg), "TCP OK: %s connected in %.3f s", t->where, r->connect_s);
    } else if (r->gai_err != 0) {
        snprintf(msg, sizeof(msg), "TCP CRITICAL: %s: cannot resolve: %s", t->where,
                 r->gai_err == EAI_SYSTEM ? wp_strerror(r->err) : gai_strerror(r->gai_err));
    } else if (r->err == -ETIMEDOUT) {
        snprintf(msg, sizeof(msg), "TCP CRITICAL: %s: timed out after %g s", t->where,
                 (double)t->timeout_ms / 1000.0);
    } else {
        err_text(r->err, why, sizeof(why));
        snprintf(msg, sizeof(msg), "TCP CRITICAL: %s: %s", t->where, why);
    }
    WP_PLOG(p, WP_LOG_DEBUG, "%s: %s", t->name, msg);
    wp_sink_metric(out, &kind_tcp, t->name, v);
    wp_sink_check(out, t->check, r->up ? WP_CHECK_OK : WP_CHECK_CRITICAL, msg);
}

/* ---- probe callbacks ---- */

static int tcp_sample(struct wp_probe *p, struct wp_sink *out)
{
    struct tcp_ctx *c = p->ctx;
    size_t n = c->targets.n;
    struct tcp_run *runs = wp_xcalloc(n, sizeof(*runs));
    struct pollfd *pfd = wp_xcalloc(n, sizeof(*pfd));
    struct tcp_run **who = wp_xcalloc(n, sizeof(*who));

    for (size_t i = 0; i < n; i++) {
        runs[i].t = &c->targets.v[i];
        runs[i].fd = -1;
    }
    for (size_t i = 0; i < n; i++) {
        run_start(&runs[i]);
    }
    for (;;) {
        int64_t now = mono_ns();
        int64_t wait_ns = INT64_MAX;
        size_t np = 0;
        int prc = 0;

        for (size_t i = 0; i < n; i++) {
            struct tcp_run *r = &runs[i];
            if (r->done) {
                continue;
            }
            if (now >= r->deadline_ns) {
                r->err = -ETIMEDOUT;
                r->done = 1;
                run_close(r);
                continue;
            }
            if (r->deadline_ns - now < wait_ns) {
                wait_ns = r->deadline_ns - now;
            }
            pfd[np].fd = r->fd;
            pfd[np].events = POLLOUT;
            pfd[np].revents = 0;
            who[np++] = r;
        }
        if (np == 0) {
            break;
        }
        prc = poll(pfd, np, (int)((wait_ns + 999999) / 1000000));
        if (prc < 0 && errno != EINTR) {
            int e = -errno;
            for (size_t i = 0; i < np; i++) {
                who[i]->err = e;
                who[i]->done = 1;
                run_close(who[i]);
            }
            break;
        }
        for (size_t i = 0; prc > 0 && i < np; i++) {
            if (pfd[i].revents != 0) {
                run_ready(who[i]);
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        report(p, &runs[i], out);
        run_close(&runs[i]);
        if (runs[i].ai != NULL) {
            freeaddrinfo(runs[i].ai);
        }
    }
    free(who);
    free(pfd);
    free(runs);
    return 0;
}

static int tcp_init(struct wp_probe *p)
{
    struct tcp_ctx *c = p->ctx;

    for (size_t i = 0; i < c->targets.n; i++) {
        if (c->targets.v[i].timeout_ms > p->interval_ms) {
            WP_PLOG(p, WP_LOG_WARN,
                    "%s: timeout %lld ms is above the interval; a slow round skips the next",
                    c->targets.v[i].name, (long long)c->targets.v[i].timeout_ms);
        }
    }
    return 0;
}

static void tcp_destroy(struct wp_probe *p)
{
    (void)p; /* everything lives in the targets, freed with the options */
}

const struct wp_probe_ops wp_probe_tcp = {
    .name = "tcp",
    .summary = "TCP connect check and time of host:port targets",
    .opts = tcp_opts,
    .ctx_size = sizeof(struct tcp_ctx),
    .flags = WP_PROBE_BLOCKING,
    .init = tcp_init,
    .sample = tcp_sample,
    .start = NULL,
    .stop = NULL,
    .destroy = tcp_destroy,
    .committed = NULL,
};
