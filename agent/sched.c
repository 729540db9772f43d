/* SPDX-License-Identifier: Apache-2.0 */
/* Probe scheduling on whole wall-clock seconds, one spooled batch per tick, self metrics. */
#include "agent_sched.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "agent.h"
#include "agent_conf.h"
#include "probe.h"
#include "sender.h"
#include "sink.h"
#include "spool.h"
#include "wp/clock.h"
#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"

#define SELF_EVERY_S 10
#define CLOCK_BACK_S 2 /* a wall clock this far behind the next tick was stepped back */

enum {
    SF_SPOOL_BYTES,
    SF_SPOOL_PENDING,
    SF_SPOOL_DROP_BATCHES,
    SF_SPOOL_DROP_VALUES,
    SF_CONNECTED,
    SF_RECONNECTS,
    SF_BATCHES_SENT,
    SF_BATCHES_ACKED,
    SF_RSS_BYTES,
    SF_CPU_PCT,
    SF_SERIES,
    SF_BAD_ROWS,
    SF_COUNT,
};

static const char *const self_fields[SF_COUNT] = {
    "spool_bytes", "spool_pending", "spool_drop_batches", "spool_drop_values", "connected",
    "reconnects",  "batches_sent",  "batches_acked",      "rss_bytes",         "cpu_pct",
    "series",      "bad_rows",
};

static const struct wp_series_kind self_kind = {"agent", self_fields, SF_COUNT, WP_DS_GAUGE};

struct sched_probe {
    struct agent_sched *sched;
    struct wp_probe *p;
    uint32_t every_s;
    int failing; /* last sample() failed: log again only on recovery */
    /* WP_PROBE_BLOCKING: sample() on the thread pool into cap */
    int busy;
    int stop_pending; /* stop() waits for the running sample */
    int64_t work_ts;
    int work_rc;
    uv_work_t work;
    struct wp_sink cap_sink;
    struct wp_buf cap;           /* rows: [kind ptr][u16 inst len][inst][double x nfields] */
    struct wp_batch_enc cap_enc; /* events, checks, states of the running sample */
    /* dropped by a reload while its sample ran (work_done() frees it and owns_p's probe), or
     * a probe with stop(), whose handles close asynchronously (kept until agent_sched_free(),
     * after the loop has drained, as at shutdown) */
    int retired;
    int keep_until_exit;
    int owns_p;
    struct sched_probe *next_retired;
};

struct agent_sched {
    struct agent *a;
    uv_timer_t timer;
    int timer_open;
    int stopped;
    int64_t next_sec; /* the second the timer waits for */
    struct sched_probe **probes;
    size_t nprobes;
    struct sched_probe *retired; /* dropped by a reload, still owned here (list) */
    struct sched_probe **due;    /* probes sampled in the current tick */
    struct wp_buf tail;          /* the batch tail handed to the spool */
    uint64_t skipped;
    int append_failing;
    /* cpu_pct */
    int64_t cpu_prev_us, cpu_prev_mono_ms;
};

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* ---- self metrics --------------------------------------------------------------------------- */

static double rss_bytes(void)
{
    char buf[128];
    unsigned long size = 0;
    unsigned long resident = 0;
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);

    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n > 0) {
            buf[n] = '\0';
            if (sscanf(buf, "%lu %lu", &size, &resident) == 2) {
                return (double)resident * (double)sysconf(_SC_PAGESIZE);
            }
        }
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        return (double)ru.ru_maxrss * 1024.0; /* the peak, better than nothing */
    }
    return NAN;
}

static double cpu_pct(struct agent_sched *s)
{
    struct rusage ru;
    double pct = NAN;

    if (getrusage(RUSAGE_SELF, &ru) < 0) {
        return NAN;
    }
    int64_t us = (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
                 ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
    int64_t mono = wp_clock_mono_ms();
    if (s->cpu_prev_mono_ms != 0 && mono > s->cpu_prev_mono_ms) {
        pct = (double)(us - s->cpu_prev_us) / 10.0 / (double)(mono - s->cpu_prev_mono_ms);
        pct = round(pct * 1000.0) / 1000.0;
    }
    s->cpu_prev_us = us;
    s->cpu_prev_mono_ms = mono;
    return pct;
}

static void self_metrics(struct agent_sched *s, int64_t ts)
{
    struct agent *a = s->a;
    struct wp_sink *ws = agent_sink_wp(a->sink);
    struct wp_spool_stats sp;
    struct agent_sender_stats se;
    double v[SF_COUNT];

    wp_spool_stats(a->spool, &sp);
    memset(&se, 0, sizeof(se));
    if (a->sender != NULL) {
        agent_sender_stats(a->sender, &se);
    }
    v[SF_SPOOL_BYTES] = (double)sp.bytes;
    v[SF_SPOOL_PENDING] = (double)sp.pending;
    v[SF_SPOOL_DROP_BATCHES] = (double)sp.dropped_records;
    v[SF_SPOOL_DROP_VALUES] = (double)sp.dropped_values;
    v[SF_CONNECTED] = se.connected ? 1 : 0;
    v[SF_RECONNECTS] = (double)se.reconnects;
    v[SF_BATCHES_SENT] = (double)se.batches_sent;
    v[SF_BATCHES_ACKED] = (double)se.batches_acked;
    v[SF_RSS_BYTES] = rss_bytes();
    v[SF_CPU_PCT] = cpu_pct(s);
    v[SF_SERIES] = (double)agent_sink_max_id(a->sink);
    v[SF_BAD_ROWS] = (double)agent_sink_dropped_rows(a->sink);
    ws->ts_ms = ts;
    ws->step_s = SELF_EVERY_S;
    wp_sink_metric(ws, &self_kind, "", v);
}

/* ---- one batch into the spool --------------------------------------------------------------- */

/* Spool the sink's current batch (base ts), then tell the sampled probes and the sender. */
static void commit(struct agent_sched *s, int64_t ts, struct sched_probe *const *sampled, size_t n)
{
    struct agent *a = s->a;
    uint64_t seq = 0;
    int rc = 0;

    if (agent_sink_batch_rows(a->sink) > 0) {
        /* the dictionary records first: a spooled batch must never name an unknown id */
        rc = agent_sink_sync(a->sink);
        if (rc == 0) {
            wp_buf_reset(&s->tail);
            agent_sink_batch_finish(a->sink, &s->tail);
            rc = wp_spool_append(a->spool, wp_buf_head(&s->tail), wp_buf_unread(&s->tail), ts,
                                 agent_sink_batch_values(a->sink), &seq);
        }
        if (rc < 0) {
            if (!s->append_failing) {
                WP_ERROR("agent", "cannot spool batch ts=%lld rows=%u, rows lost: %s",
                         (long long)ts, agent_sink_batch_rows(a->sink), wp_strerror(rc));
            }
            s->append_failing = 1;
            return;
        }
        if (s->append_failing) {
            WP_INFO("agent", "spooling batches again seq=%llu", (unsigned long long)seq);
            s->append_failing = 0;
        }
        if (s->tail.cap > (1u << 20)) {
            wp_buf_cleanup(&s->tail); /* a rare huge batch should not pin its memory */
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct wp_probe *p = sampled[i]->p;
        if (p->ops->committed != NULL) {
            p->ops->committed(p, ts);
        }
    }
    if (seq != 0 && a->sender != NULL) {
        agent_sender_kick(a->sender);
    }
}

static void note_result(struct sched_probe *sp, int rc)
{
    if (rc < 0 && !sp->failing) {
        WP_PLOG(sp->p, WP_LOG_WARN, "sample failed: %s", wp_strerror(rc));
        sp->failing = 1;
    } else if (rc >= 0 && sp->failing) {
        WP_PLOG(sp->p, WP_LOG_INFO, "sampling again");
        sp->failing = 0;
    }
}

/* ---- blocking probes: sample on the thread pool, replay on the loop ------------------------- */

static void cap_metric(struct wp_sink *ws, const struct wp_series_kind *kind, const char *inst,
                       const double *vals)
{
    struct sched_probe *sp = ws->ctx;
    size_t ilen = 0;
    uint16_t l16 = 0;

    if (kind == NULL || kind->nfields == 0 || kind->nfields > WP_SERIES_MAX_FIELDS) {
        return; /* the sink counts bad rows; this one cannot even be replayed */
    }
    inst = inst != NULL ? inst : "";
    ilen = strnlen(inst, WP_INST_MAX + 1);
    l16 = (uint16_t)ilen;
    wp_buf_append(&sp->cap, &kind, sizeof(kind));
    wp_buf_append(&sp->cap, &l16, sizeof(l16));
    wp_buf_append(&sp->cap, inst, ilen);
    wp_buf_append(&sp->cap, vals, kind->nfields * sizeof(double));
}

/* Events, checks and states of a blocking probe: encoded right away (they need no series
 * dictionary) into the probe's own encoder, merged into the batch on the loop. */
static void cap_event(struct wp_sink *ws, const char *src, const char *rule, unsigned sev,
                      const char *text, const char *const *fields)
{
    struct sched_probe *sp = ws->ctx;
    wp_batch_enc_event(&sp->cap_enc, ws->ts_ms, src, rule, sev, text, fields);
}

static void cap_check(struct wp_sink *ws, const char *check, unsigned status, const char *output)
{
    struct sched_probe *sp = ws->ctx;
    wp_batch_enc_check(&sp->cap_enc, ws->ts_ms, check, status, output);
}

static void cap_state(struct wp_sink *ws, const char *object, const char *group, const char *state,
                      const char *raw, const char *info)
{
    struct sched_probe *sp = ws->ctx;
    wp_batch_enc_state(&sp->cap_enc, ws->ts_ms, object, group, state, raw, info);
}

/* ---- probe entries -------------------------------------------------------------------------- */

static struct sched_probe *sp_new(struct agent_sched *s, struct wp_probe *p)
{
    struct sched_probe *sp = wp_xcalloc(1, sizeof(*sp));
    int64_t every = p->interval_ms / 1000;

    sp->sched = s;
    sp->p = p;
    sp->every_s = every < 1 ? 1 : every > 86400 ? 86400 : (uint32_t)every;
    if ((int64_t)sp->every_s * 1000 != sp->p->interval_ms) {
        WP_PLOG(sp->p, WP_LOG_WARN, "interval %lldms is not whole seconds, using %us",
                (long long)sp->p->interval_ms, sp->every_s);
    }
    wp_buf_init(&sp->cap);
    sp->cap_sink.metric = cap_metric;
    sp->cap_sink.event = cap_event;
    sp->cap_sink.check = cap_check;
    sp->cap_sink.state = cap_state;
    sp->cap_sink.ctx = sp;
    wp_batch_enc_init(&sp->cap_enc, 0);
    return sp;
}

static void sp_start(struct agent_sched *s, struct sched_probe *sp)
{
    if (sp->p->ops->start != NULL) {
        int rc = sp->p->ops->start(sp->p, s->a->loop);
        if (rc < 0) {
            WP_PLOG(sp->p, WP_LOG_ERROR, "start failed: %s", wp_strerror(rc));
        }
    }
}

static void sp_free(struct sched_probe *sp)
{
    if (sp == NULL) {
        return;
    }
    wp_buf_cleanup(&sp->cap);
    wp_batch_enc_cleanup(&sp->cap_enc);
    if (sp->owns_p) {
        wp_probe_free(sp->p);
    }
    free(sp);
}

/* A retired entry's sample has finished: take it off the list and free it. */
static void sp_unretire_free(struct agent_sched *s, struct sched_probe *sp)
{
    for (struct sched_probe **pp = &s->retired; *pp != NULL; pp = &(*pp)->next_retired) {
        if (*pp == sp) {
            *pp = sp->next_retired;
            break;
        }
    }
    sp_free(sp);
}

/* Stop sp's probe now, or when its running sample finishes. */
static void sp_stop(struct sched_probe *sp)
{
    if (sp->p->ops->stop == NULL) {
        return;
    }
    if (sp->busy) {
        /* never stop() under a running sample(); work_done() stops it */
        sp->stop_pending = 1;
        uv_cancel((uv_req_t *)&sp->work); /* fails harmlessly once it is running */
    } else {
        sp->p->ops->stop(sp->p);
    }
}

static void work_sample(uv_work_t *w)
{
    struct sched_probe *sp = w->data;

    sp->work_rc = sp->p->ops->sample(sp->p, &sp->cap_sink);
}

static void work_done(uv_work_t *w, int status)
{
    struct sched_probe *sp = w->data;
    struct agent_sched *s = sp->sched;
    struct wp_sink *ws = agent_sink_wp(s->a->sink);
    struct sched_probe *one[1] = {sp};
    char inst[WP_INST_MAX + 2]; /* cap_metric keeps one byte over the limit: the sink drops it */
    double vals[WP_SERIES_MAX_FIELDS];
    size_t off = sp->cap.off;

    sp->busy = 0;
    if (sp->stop_pending) {
        sp->stop_pending = 0;
        sp->p->ops->stop(sp->p);
    }
    if (status < 0) { /* cancelled at shutdown before it ran */
        wp_buf_reset(&sp->cap);
        wp_batch_enc_reset(&sp->cap_enc, 0);
        if (sp->retired && !sp->keep_until_exit) {
            sp_unretire_free(s, sp);
        }
        return;
    }
    note_result(sp, sp->work_rc);
    agent_sink_batch_begin(s->a->sink, sp->work_ts);
    ws->ts_ms = sp->work_ts;
    ws->step_s = sp->every_s;
    while (off < sp->cap.len) {
        const struct wp_series_kind *kind = NULL;
        uint16_t ilen = 0;
        memcpy(&kind, sp->cap.data + off, sizeof(kind));
        off += sizeof(kind);
        memcpy(&ilen, sp->cap.data + off, sizeof(ilen));
        off += sizeof(ilen);
        memcpy(inst, sp->cap.data + off, ilen);
        inst[ilen] = '\0';
        off += ilen;
        memcpy(vals, sp->cap.data + off, kind->nfields * sizeof(double));
        off += kind->nfields * sizeof(double);
        wp_sink_metric(ws, kind, inst, vals);
    }
    wp_buf_reset(&sp->cap);
    agent_sink_merge(s->a->sink, &sp->cap_enc); /* same base: work_ts */
    commit(s, sp->work_ts, one, 1);
    if (sp->retired && !sp->keep_until_exit) {
        sp_unretire_free(s, sp);
    }
}

static void start_blocking(struct agent_sched *s, struct sched_probe *sp, int64_t ts)
{
    int rc = 0;

    if (sp->busy) {
        WP_PLOG(sp->p, WP_LOG_DEBUG, "previous sample still running, skipping ts=%lld",
                (long long)ts);
        return;
    }
    sp->work_ts = ts;
    sp->cap_sink.ts_ms = ts;
    wp_batch_enc_reset(&sp->cap_enc, ts);
    sp->cap_sink.step_s = sp->every_s;
    sp->work.data = sp;
    rc = uv_queue_work(s->a->loop, &sp->work, work_sample, work_done);
    if (rc < 0) {
        WP_PLOG(sp->p, WP_LOG_WARN, "cannot queue sample: %s", uv_strerror(rc));
        return;
    }
    sp->busy = 1;
}

/* ---- ticks ---------------------------------------------------------------------------------- */

void agent_sched_tick(struct agent_sched *s, int64_t sec)
{
    struct agent *a = s->a;
    struct wp_sink *ws = agent_sink_wp(a->sink);
    int64_t ts = sec * 1000;
    size_t n = 0;

    agent_sink_batch_begin(a->sink, ts);
    for (size_t i = 0; i < s->nprobes; i++) {
        struct sched_probe *sp = s->probes[i];
        if (sp->p->ops->sample == NULL || floor_div(sec, sp->every_s) * sp->every_s != sec) {
            continue;
        }
        if (sp->p->ops->flags & WP_PROBE_BLOCKING) {
            start_blocking(s, sp, ts);
            continue;
        }
        ws->ts_ms = ts;
        ws->step_s = sp->every_s;
        note_result(sp, sp->p->ops->sample(sp->p, ws));
        s->due[n++] = sp;
    }
    if (floor_div(sec, SELF_EVERY_S) * SELF_EVERY_S == sec) {
        self_metrics(s, ts);
    }
    commit(s, ts, s->due, n);
}

static void on_timer(uv_timer_t *t);

/* Arm the timer for the start of next_sec, measured on the wall clock. */
static void arm(struct agent_sched *s)
{
    int64_t delay = 0;

    uv_update_time(s->a->loop); /* the timer counts from the loop's cached time */
    delay = s->next_sec * 1000 - wp_clock_now_ms();
    if (delay < 0) {
        delay = 0;
    }
    /* +1 ms: libuv rounds to whole ms, and firing a hair early costs a second wakeup */
    uv_timer_start(&s->timer, on_timer, (uint64_t)delay + 1, 0);
}

static void on_timer(uv_timer_t *t)
{
    struct agent_sched *s = t->data;
    int64_t sec = floor_div(wp_clock_now_ms(), 1000);

    if (s->stopped) {
        return;
    }
    if (sec < s->next_sec) {
        if (s->next_sec - sec <= CLOCK_BACK_S) {
            arm(s); /* early: the monotonic and wall clocks disagree by a little */
            return;
        }
        WP_INFO("agent", "wall clock stepped back %llds, rescheduling",
                (long long)(s->next_sec - sec));
    } else if (sec > s->next_sec) {
        s->skipped += (uint64_t)(sec - s->next_sec);
        WP_DEBUG("agent", "loop late, skipped %lld tick(s)", (long long)(sec - s->next_sec));
    }
    agent_sched_tick(s, sec);
    s->next_sec = sec + 1;
    arm(s);
}

int agent_sched_start(struct agent *a, struct agent_sched **out)
{
    struct agent_sched *s = wp_xcalloc(1, sizeof(*s));
    const struct agent_conf *conf = a->conf;

    s->a = a;
    s->nprobes = conf->nprobes;
    s->probes = wp_xcalloc(s->nprobes ? s->nprobes : 1, sizeof(*s->probes));
    s->due = wp_xcalloc(s->nprobes ? s->nprobes : 1, sizeof(*s->due));
    wp_buf_init(&s->tail);
    for (size_t i = 0; i < s->nprobes; i++) {
        s->probes[i] = sp_new(s, conf->probes[i]);
        sp_start(s, s->probes[i]);
    }
    uv_timer_init(a->loop, &s->timer);
    s->timer.data = s;
    s->timer_open = 1;
    s->next_sec = floor_div(wp_clock_now_ms(), 1000) + 1;
    cpu_pct(s); /* the baseline for the first self sample */
    arm(s);
    *out = s;
    return 0;
}

void agent_sched_stop(struct agent_sched *s)
{
    if (s == NULL || s->stopped) {
        return;
    }
    s->stopped = 1;
    if (s->timer_open) {
        uv_timer_stop(&s->timer);
        uv_close((uv_handle_t *)&s->timer, NULL);
    }
    for (size_t i = 0; i < s->nprobes; i++) {
        sp_stop(s->probes[i]);
    }
}

void agent_sched_reload(struct agent_sched *s, struct agent_conf *nc, struct agent_conf *old,
                        struct agent_sched_diff *diff)
{
    struct sched_probe **probes = NULL;
    size_t n = nc->nprobes;

    memset(diff, 0, sizeof(*diff));
    probes = wp_xcalloc(n ? n : 1, sizeof(*probes));
    /* the old entries: kept when the new config borrowed their probe, else stopped */
    for (size_t i = 0; i < s->nprobes; i++) {
        struct sched_probe *sp = s->probes[i];
        size_t k = n;
        for (size_t j = 0; j < n && k == n; j++) {
            if (nc->probes[j] == sp->p) {
                k = j;
            }
        }
        if (k < n) {
            probes[k] = sp;
            diff->kept++;
            continue;
        }
        sp_stop(sp);
        if (sp->busy || sp->p->ops->stop != NULL) {
            /* its sample still runs on the pool, or stop() closed libuv handles that live in
             * the probe: the entry and the probe outlive the old config (until work_done(),
             * or until agent_sched_free() after the loop has drained) */
            for (size_t j = 0; j < old->nprobes; j++) {
                if (old->probes[j] == sp->p) {
                    old->probes[j] = NULL;
                }
            }
            sp->owns_p = 1;
            sp->retired = 1;
            sp->keep_until_exit = sp->p->ops->stop != NULL;
            sp->next_retired = s->retired;
            s->retired = sp;
        } else {
            sp_free(sp); /* the old config frees the probe */
        }
    }
    for (size_t j = 0; j < n; j++) {
        if (probes[j] == NULL) {
            probes[j] = sp_new(s, nc->probes[j]);
            if (!s->stopped) {
                sp_start(s, probes[j]);
            }
            diff->started++;
        }
    }
    diff->stopped = s->nprobes - diff->kept;
    free(s->probes);
    free(s->due);
    s->probes = probes;
    s->nprobes = n;
    s->due = wp_xcalloc(n ? n : 1, sizeof(*s->due));
}

void agent_sched_free(struct agent_sched *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->nprobes; i++) {
        sp_free(s->probes[i]);
    }
    while (s->retired != NULL) { /* normally freed by work_done() while the loop drains */
        struct sched_probe *sp = s->retired;
        s->retired = sp->next_retired;
        sp_free(sp);
    }
    wp_buf_cleanup(&s->tail);
    free(s->probes);
    free(s->due);
    free(s);
}

uint64_t agent_sched_skipped(const struct agent_sched *s)
{
    return s->skipped;
}
