/* SPDX-License-Identifier: Apache-2.0 */
/* Collector lifecycle: open the stores, replay, listen, housekeeping, clean shutdown. */
#include "coll.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "coll_conf.h"
#include "coll_rules.h"
#include "deliver.h"
#include "events.h"
#include "linerrd.h"
#include "lines.h"
#include "outbox.h"
#include "report_sched.h"
#include "db.h"
#include "ingest.h"
#include "journal.h"
#include "rrdw.h"
#include "server.h"
#include "wp/clock.h"
#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"
#include "wp/sdnotify.h"
#include "wp/tls.h"

#define RELEASE_EVERY_MS 30000
#define LINES_PRUNE_EVERY_MS 3600000LL /* line history pruned hourly ... */
#define LINES_KEEP_MS (35LL * 86400000) /* ... to 35 days: a monthly report and a margin */

static int mkdirs(const char *path, mode_t mode)
{
    char buf[4096];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof(buf)) {
        return -ENAMETOOLONG;
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, mode) < 0 && errno != EEXIST) {
                return -errno;
            }
            buf[i] = c;
        }
    }
    return 0;
}

static int write_port_file(const char *path, int port)
{
    char tmp[4096];
    FILE *f = NULL;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "we");
    if (f == NULL) {
        return -errno;
    }
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0 || rename(tmp, path) < 0) {
        return -errno;
    }
    return 0;
}

/* ---- journal release: RRD files synced, registry saved, then segments deleted ---------- */

static void release_work(uv_work_t *w)
{
    struct coll_server *s = w->data;
    if (s->rrd_dirfd >= 0 && syncfs(s->rrd_dirfd) < 0) {
        WP_WARN("collector", "syncfs of the RRD directory: %s", strerror(errno));
    }
}

static uint64_t release_target(struct coll_server *s)
{
    uint64_t min = wp_rrdw_min_segment(s->rrdw);
    uint64_t cur = wp_journal_segment(s->journal);
    return min < cur ? min : cur;
}

static void release_after(uv_work_t *w, int status)
{
    struct coll_server *s = w->data;

    (void)status;
    s->releasing = 0;
    if (s->stopping) {
        return; /* shutdown does its own final release */
    }
    coll_ingest_save_registry(s, 1);
    uint64_t below = s->release_below_pending;
    if (below > s->released_below && wp_journal_release(s->journal, below) == 0) {
        s->released_below = below;
    }
}

static void maybe_release(struct coll_server *s)
{
    uint64_t target = release_target(s);

    if (s->releasing || target <= s->released_below) {
        return;
    }
    s->releasing = 1;
    s->release_below_pending = target;
    s->release_work.data = s;
    s->last_release_ms = wp_clock_mono_ms();
    uv_queue_work(s->loop, &s->release_work, release_work, release_after);
}

static void tick_cb(uv_timer_t *t)
{
    struct coll_server *s = t->data;

    coll_ingest_save_registry(s, 0);
    coll_rules_tick(s);
    if (s->deliver != NULL) {
        deliver_pump(s->deliver, wp_clock_now_ms());
    }
    rsched_tick(s->reports, wp_clock_now_ms());
    if (s->lines != NULL && wp_clock_mono_ms() - s->last_prune_ms >= LINES_PRUNE_EVERY_MS) {
        s->last_prune_ms = wp_clock_mono_ms();
        int n = coll_lines_prune(s->lines, wp_clock_now_ms() - LINES_KEEP_MS);
        if (n > 0) {
            WP_INFO("collector", "line history: %d rows older than %d days dropped", n,
                    (int)(LINES_KEEP_MS / 86400000));
        }
    }
    if (s->events != NULL) {
        coll_events_tick(s->events, wp_clock_now_ms());
        if (s->events_prune_more ||
            wp_clock_mono_ms() - s->last_events_prune_ms >= LINES_PRUNE_EVERY_MS) {
            /* bounded batches, one a second while there is more: the loop never stalls */
            s->last_events_prune_ms = wp_clock_mono_ms();
            int n = coll_events_prune(s->events, wp_clock_now_ms() - COLL_EVENTS_KEEP_MS, 5000,
                                      &s->events_prune_more);
            if (n > 0) {
                WP_INFO("collector", "checks and log events: %d rows older than %d days dropped", n,
                        (int)(COLL_EVENTS_KEEP_MS / 86400000));
            } else if (n < 0) {
                s->events_prune_more = 0;
                WP_WARN("collector", "pruning events.db: %s", coll_events_errmsg(s->events));
            }
        }
    }
    if (s->outbox != NULL && s->conf->notify != NULL &&
        (s->outbox_prune_more ||
         wp_clock_mono_ms() - s->last_outbox_prune_ms >= LINES_PRUNE_EVERY_MS)) {
        /* like events.db: bounded batches, one a second while there is more */
        const struct notify_conf *nc = s->conf->notify;
        s->last_outbox_prune_ms = wp_clock_mono_ms();
        int n = outbox_prune(s->outbox, wp_clock_now_ms(), nc->keep_ms, nc->keep_dead_ms, 1000,
                             &s->outbox_prune_more);
        if (n > 0) {
            WP_INFO("collector", "notification outbox: %d finished messages dropped", n);
        } else if (n < 0) {
            s->outbox_prune_more = 0;
            WP_WARN("collector", "pruning the outbox: %s", outbox_errmsg(s->outbox));
        }
    }
    if (s->lines != NULL &&
        wp_clock_mono_ms() - s->last_linerrd_ms >= COLL_LINERRD_STEP_S * 1000) {
        s->last_linerrd_ms = wp_clock_mono_ms();
        /* a little in the past, so changes in flight are not written behind a refresh */
        int n = coll_linerrd_refresh(s, wp_clock_now_ms() - 5000);
        if (n < 0) {
            WP_WARN("collector", "per-line RRD refresh failed: %s", wp_strerror(n));
        }
    }
    if (wp_clock_mono_ms() - s->last_release_ms >= RELEASE_EVERY_MS) {
        maybe_release(s);
    }
}

static void crl_check(struct coll_server *s)
{
    char err[512] = "";
    int rc = wp_tls_ctx_reload_crl(s->tls, err, sizeof(err));

    if (rc == 1) {
        WP_INFO("collector", "CRL reloaded from %s", s->conf->tls.crl);
        coll_close_revoked(s);
    } else if (rc < 0) {
        WP_WARN("collector", "CRL not reloaded, the previous one stays in force: %s", err);
    }
}

static void crl_cb(uv_timer_t *t)
{
    crl_check(t->data);
}

static void signal_cb(uv_signal_t *h, int signum)
{
    struct coll_server *s = h->data;

    if (signum == SIGHUP) {
        char err[1024], msg[96];
        struct timespec mono;
        /* systemd (Type=notify-reload): reloading since now, then ready again */
        clock_gettime(CLOCK_MONOTONIC, &mono);
        snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
                 (unsigned long long)mono.tv_sec * 1000000ull +
                     (unsigned long long)mono.tv_nsec / 1000);
        wp_sd_notify("collector", msg);
        WP_INFO("collector", "SIGHUP: checking the CRL, reloading the rules");
        if (s->conf->tls.crl != NULL) {
            crl_check(s);
        }
        coll_rules_reload(s, err, sizeof(err));
        wp_sd_notify("collector", "READY=1");
        return;
    }
    WP_INFO("collector", "signal %d: shutting down", signum);
    coll_server_stop(s);
}

int coll_server_start(struct coll_server *s, uv_loop_t *loop, struct coll_conf *conf,
                      const char *port_file)
{
    char path[4096];
    char err[512] = "";
    int rc = 0;
    int port = 0;

    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->conf = conf;
    s->rrd_dirfd = -1;
    s->last_release_ms = wp_clock_mono_ms();

    if ((rc = mkdirs(conf->state_dir, 0750)) < 0 || (rc = mkdirs(conf->rrd.dir, 0750)) < 0) {
        WP_ERROR("collector", "cannot create state directories under %s: %s", conf->state_dir,
                 wp_strerror(rc));
        return rc;
    }
    snprintf(path, sizeof(path), "%s/watchpost.db", conf->state_dir);
    if ((rc = coll_db_open(path, &s->db)) < 0) {
        return rc;
    }
    snprintf(path, sizeof(path), "%s/ticket.key", conf->state_dir);
    struct wp_tls_opts topts = {
        .ca_path = conf->tls.ca,
        .cert_path = conf->tls.cert,
        .key_path = conf->tls.key,
        .crl_path = conf->tls.crl,
        .ticket_key_path = path,
        .is_server = 1,
    };
    if ((rc = wp_tls_ctx_new(&topts, err, sizeof(err), &s->tls)) < 0) {
        WP_ERROR("collector", "TLS setup: %s", err);
        return rc;
    }
    snprintf(path, sizeof(path), "%s/journal", conf->state_dir);
    struct wp_journal_opts jopts = {
        .dir = path,
        .segment_bytes = conf->journal.segment_bytes,
        .fsync = conf->journal.fsync,
    };
    if ((rc = wp_journal_open(loop, &jopts, &s->journal)) < 0) {
        WP_ERROR("collector", "journal %s: %s", path, wp_strerror(rc));
        return rc;
    }
    struct wp_rrdw_opts ropts = {
        .dir = conf->rrd.dir,
        .flush_interval_ms = conf->rrd.flush_interval_ms,
        .max_pending = (uint32_t)conf->rrd.max_pending,
        .heartbeat_steps = (uint32_t)conf->rrd.heartbeat_steps,
        .archives = conf->rrd.archives,
        .narchives = conf->rrd.narchives,
    };
    if ((rc = wp_rrdw_open(loop, &ropts, &s->rrdw)) < 0) {
        WP_ERROR("collector", "RRD writer %s: %s", conf->rrd.dir, wp_strerror(rc));
        return rc;
    }
    s->rrd_dirfd = open(conf->rrd.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if ((rc = coll_rules_start(s)) < 0) {
        return rc;
    }
    if (conf->notify != NULL) {
        snprintf(path, sizeof(path), "%s/incidents.db", conf->state_dir);
        if ((rc = outbox_open(path, conf->notify, &s->outbox)) < 0 ||
            (rc = deliver_start(loop, conf->notify, s->outbox, coll_rules_store(s),
                                &s->deliver)) < 0) {
            WP_ERROR("collector", "notifications: %s", wp_strerror(rc));
            return rc;
        }
        outbox_set_groups(s->outbox, coll_rules_in_group, s);
    }
    if ((rc = rsched_start(s, &s->reports)) < 0) {
        return rc;
    }
    snprintf(path, sizeof(path), "%s/lines.db", conf->state_dir);
    if ((rc = coll_lines_open(path, &s->lines)) < 0) {
        return rc;
    }
    snprintf(path, sizeof(path), "%s/events.db", conf->state_dir);
    if ((rc = coll_events_open(path, (int)conf->limits.log_events_per_min, &s->events)) < 0) {
        return rc;
    }
    if ((rc = coll_ingest_load(s)) < 0) {
        WP_ERROR("collector", "loading the registry: %s", coll_db_errmsg(s->db));
        return rc;
    }
    if ((rc = coll_ingest_replay(s)) < 0) {
        return rc;
    }
    if ((rc = coll_listen(s, conf->listen_host, conf->listen_port, &port)) < 0) {
        return rc;
    }
    if (port_file != NULL && (rc = write_port_file(port_file, port)) < 0) {
        WP_ERROR("collector", "cannot write port file %s: %s", port_file, wp_strerror(rc));
        return rc;
    }
    snprintf(path, sizeof(path), "%s/collector.sock", conf->state_dir);
    if ((rc = coll_ctl_start(s, path, &s->ctl)) < 0) {
        return rc;
    }
    if ((rc = coll_http_start(s)) < 0) {
        return rc;
    }
    uv_timer_init(loop, &s->tick_timer);
    s->tick_timer.data = s;
    uv_timer_start(&s->tick_timer, tick_cb, 1000, 1000);
    uv_timer_init(loop, &s->crl_timer);
    s->crl_timer.data = s;
    if (conf->tls.crl != NULL) {
        uint64_t every = (uint64_t)conf->tls.crl_check_interval_ms;
        uv_timer_start(&s->crl_timer, crl_cb, every, every);
    }
    uv_signal_init(loop, &s->sig_term);
    uv_signal_init(loop, &s->sig_int);
    uv_signal_init(loop, &s->sig_hup);
    s->sig_term.data = s->sig_int.data = s->sig_hup.data = s;
    uv_signal_start(&s->sig_term, signal_cb, SIGTERM);
    uv_signal_start(&s->sig_int, signal_cb, SIGINT);
    uv_signal_start(&s->sig_hup, signal_cb, SIGHUP);
    s->handles_started = 1;
    WP_INFO("collector", "listening on %s:%d state=%s rrd=%s agents=%zu", conf->listen_host, port,
            conf->state_dir, conf->rrd.dir, s->nagents);
    return 0;
}

static void final_release(struct coll_server *s)
{
    if (s->rrd_dirfd >= 0 && syncfs(s->rrd_dirfd) < 0) {
        WP_WARN("collector", "syncfs of the RRD directory: %s", strerror(errno));
    }
    if (s->db != NULL) {
        coll_ingest_save_registry(s, 1);
    }
    if (s->journal != NULL && s->rrdw != NULL) {
        uint64_t below = release_target(s);
        if (below > s->released_below) {
            wp_journal_release(s->journal, below);
            s->released_below = below;
        }
    }
}

static void stop_flushed(void *arg)
{
    struct coll_server *s = arg;

    final_release(s);
    if (s->rrdw != NULL) {
        wp_rrdw_close(s->rrdw);
        s->rrdw = NULL;
    }
    if (s->journal != NULL) {
        wp_journal_close(s->journal);
        s->journal = NULL;
    }
    WP_INFO("collector", "stopped: batches=%llu values acked=%llu", (unsigned long long)s->st.batches,
            (unsigned long long)s->st.values_acked);
}

void coll_server_stop(struct coll_server *s)
{
    if (s->stopping) {
        return;
    }
    s->stopping = 1;
    if (s->listening) {
        uv_close((uv_handle_t *)&s->listener, NULL);
        s->listening = 0;
    }
    if (s->ctl != NULL) {
        coll_ctl_stop(s->ctl);
        s->ctl = NULL;
    }
    coll_http_stop(s);
    coll_close_all_conns(s, "collector shutting down");
    if (s->deliver != NULL) {
        deliver_stop(s->deliver, NULL, NULL); /* what is in flight stays queued */
        s->deliver = NULL;
    }
    rsched_stop(s->reports); /* a running job is stopped; the next start makes it again */
    s->reports = NULL;
    if (s->handles_started) {
        uv_close((uv_handle_t *)&s->tick_timer, NULL);
        uv_close((uv_handle_t *)&s->crl_timer, NULL);
        uv_close((uv_handle_t *)&s->sig_term, NULL);
        uv_close((uv_handle_t *)&s->sig_int, NULL);
        uv_close((uv_handle_t *)&s->sig_hup, NULL);
        s->handles_started = 0;
    }
    if (s->rrdw != NULL) {
        wp_rrdw_flush_all(s->rrdw, stop_flushed, s);
    } else {
        stop_flushed(s);
    }
}

void coll_server_cleanup(struct coll_server *s)
{
    outbox_close(s->outbox);
    s->outbox = NULL;
    coll_rules_stop(s);
    coll_lines_close(s->lines);
    s->lines = NULL;
    coll_events_close(s->events);
    s->events = NULL;
    coll_agents_free(s);
    coll_db_close(s->db);
    s->db = NULL;
    wp_tls_ctx_free(s->tls);
    s->tls = NULL;
    if (s->rrd_dirfd >= 0) {
        close(s->rrd_dirfd);
        s->rrd_dirfd = -1;
    }
}
