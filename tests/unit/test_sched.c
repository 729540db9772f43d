/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for the agent scheduler: aligned ticks, one spooled batch per tick, committed(), skips. */
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <uv.h>

#include "agent.h"
#include "agent_conf.h"
#include "agent_sched.h"
#include "probe.h"
#include "sink.h"
#include "spool.h"
#include "wp/buf.h"
#include "wp/clock.h"
#include "wp/err.h"
#include "wp/mem.h"
#include "wp/wire.h"

#define BASE_SEC  1700000000LL /* a multiple of 10 */
#define MAX_CALLS 64

static const char *const fake_fields[] = {"n", "x"};
static const struct wp_series_kind fake_kind = {"fake", fake_fields, 2, WP_DS_GAUGE};

struct fake_ctx {
    struct wp_spool *spool; /* to check committed() comes after the append */
    int fail;               /* sample() returns this error and emits nothing */
    int nsamples;
    int64_t sample_ts[MAX_CALLS];
    uint32_t sample_step[MAX_CALLS];
    int ncommitted;
    int64_t committed_ts[MAX_CALLS];
    int committed_durable[MAX_CALLS]; /* the spool held a record with that ts */
    int stopped;
};

static int fake_sample(struct wp_probe *p, struct wp_sink *out)
{
    struct fake_ctx *c = p->ctx;
    double v[2];

    if (c->nsamples < MAX_CALLS) {
        c->sample_ts[c->nsamples] = out->ts_ms;
        c->sample_step[c->nsamples] = out->step_s;
    }
    c->nsamples++;
    if (c->fail != 0) {
        return c->fail;
    }
    v[0] = c->nsamples;
    v[1] = NAN;
    wp_sink_metric(out, &fake_kind, p->instance, v);
    return 0;
}

/* The newest spooled record's ts, or -1. */
static int64_t newest_ts(struct wp_spool *sp)
{
    struct wp_spool_stats st;
    uint64_t seq = 0;
    int64_t ts = -1;
    const uint8_t *pl = NULL;
    size_t len = 0;

    wp_spool_stats(sp, &st);
    if (st.next_seq <= 1 || wp_spool_read(sp, st.next_seq - 1, &seq, &ts, &pl, &len) < 0) {
        return -1;
    }
    return ts;
}

static void fake_committed(struct wp_probe *p, int64_t ts_ms)
{
    struct fake_ctx *c = p->ctx;

    if (c->ncommitted < MAX_CALLS) {
        c->committed_ts[c->ncommitted] = ts_ms;
        c->committed_durable[c->ncommitted] = newest_ts(c->spool) == ts_ms;
    }
    c->ncommitted++;
}

static void fake_stop(struct wp_probe *p)
{
    ((struct fake_ctx *)p->ctx)->stopped++;
}

static const struct wp_probe_ops fake_ops = {
    .name = "fake",
    .sample = fake_sample,
    .stop = fake_stop,
    .committed = fake_committed,
};

static const struct wp_probe_ops fake_nostop_ops = {
    .name = "fake",
    .sample = fake_sample,
    .committed = fake_committed,
};

static const struct wp_probe_ops fake_blocking_ops = {
    .name = "fakeblock",
    .flags = WP_PROBE_BLOCKING,
    .sample = fake_sample,
    .stop = fake_stop,
    .committed = fake_committed,
};

struct fx {
    char dir[64];
    uv_loop_t loop;
    struct agent a;
    struct agent_conf conf;
    struct wp_probe probes[3];
    struct wp_probe *pp[3];
    struct fake_ctx ctx[3];
    struct agent_sched *sched;
    int64_t every0; /* p0's interval in ms; 0 = 1000 */
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Probes: p0 every 1 s, p1 every 5 s, p2 (kind per test) every 2 s. */
static void fx_start(struct fx *f, const struct wp_probe_ops *third, int64_t now_ms)
{
    static char *names[3] = {"a", "b", "c"};
    static const int64_t every[3] = {1000, 5000, 2000};
    struct wp_spool_limits lim = {.max_bytes = 1u << 20, .max_age_ms = 0, .fsync = 0};
    char path[128];

    wp_clock_set_fake(now_ms);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    snprintf(path, sizeof(path), "%s/spool", f->dir);
    assert_int_equal(wp_spool_open(path, &lim, &f->a.spool), 0);
    snprintf(path, sizeof(path), "%s/series.dict", f->dir);
    assert_int_equal(agent_sink_open(path, 0, &f->a.sink), 0);
    for (int i = 0; i < 3; i++) {
        f->probes[i].ops = i == 2 ? third : &fake_ops;
        f->probes[i].instance = names[i];
        f->probes[i].interval_ms = (i == 0 && f->every0 != 0) ? f->every0 : every[i];
        f->probes[i].ctx = &f->ctx[i];
        f->ctx[i].spool = f->a.spool;
        f->pp[i] = &f->probes[i];
    }
    f->conf.probes = f->pp;
    f->conf.nprobes = third != NULL ? 3 : 2;
    f->a.loop = &f->loop;
    f->a.conf = &f->conf;
    assert_int_equal(agent_sched_start(&f->a, &f->sched), 0);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

static void fx_stop(struct fx *f)
{
    agent_sched_stop(f->sched);
    uv_walk(&f->loop, close_walk, NULL);
    int rc = uv_loop_close(&f->loop);
    for (int i = 0; i < 10 && rc == UV_EBUSY; i++) {
        uv_run(&f->loop, UV_RUN_DEFAULT);
        rc = uv_loop_close(&f->loop);
    }
    assert_int_equal(rc, 0);
    agent_sched_free(f->sched);
    agent_sink_free(f->a.sink);
    wp_spool_close(f->a.spool);
    f->sched = NULL;
}

static int setup(void **state)
{
    struct fx *f = wp_xcalloc(1, sizeof(*f));

    snprintf(f->dir, sizeof(f->dir), "/tmp/wp_test_sched.XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    wp_clock_set_fake(-1);
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Decode spooled record seq: its ts and, per row, the series id. Returns the row count. */
static uint32_t read_batch(struct fx *f, uint64_t seq, int64_t *ts, uint32_t *ids, uint32_t max)
{
    uint64_t got = 0;
    const uint8_t *pl = NULL;
    size_t len = 0;
    struct wp_buf frame;
    struct wp_msg m;
    struct wp_rec rec;
    uint32_t n = 0;

    assert_int_equal(wp_spool_read(f->a.spool, seq, &got, ts, &pl, &len), 0);
    assert_int_equal(got, seq);
    wp_buf_init(&frame);
    wp_put_batch(&frame, seq, pl, len);
    wp_msg_init(&m);
    assert_int_equal(wp_msg_decode(&m, frame.data + WP_FRAME_HDR, frame.len - WP_FRAME_HDR), 0);
    assert_int_equal(m.u.batch.ts_ms, *ts);
    n = m.u.batch.recs->size;
    for (uint32_t i = 0; i < n && i < max; i++) {
        assert_int_equal(wp_batch_rec(&m, i, &rec), 0);
        assert_int_equal(rec.ts_ms, *ts); /* every row carries the aligned tick time */
        ids[i] = rec.id;
    }
    wp_msg_cleanup(&m);
    wp_buf_cleanup(&frame);
    return n;
}

static uint32_t id_of(struct fx *f, const char *group, const char *inst)
{
    struct wp_series_def d;

    for (uint32_t id = 1; id <= agent_sink_max_id(f->a.sink); id++) {
        assert_int_equal(agent_sink_def(f->a.sink, id, &d), 0);
        if (wp_str_eq(d.group, group) && wp_str_eq(d.inst, inst)) {
            return id;
        }
    }
    return 0;
}

static void ticks_are_aligned_one_batch_each(void **state)
{
    struct fx *f = *state;
    struct wp_spool_stats st;
    struct wp_series_def d;
    uint32_t ids[8];
    int64_t ts = 0;

    fx_start(f, NULL, BASE_SEC * 1000 + 300);
    for (int64_t sec = BASE_SEC; sec < BASE_SEC + 10; sec++) {
        agent_sched_tick(f->sched, sec);
    }
    /* p0 every second, p1 at multiples of 5 only; each with its interval as step */
    assert_int_equal(f->ctx[0].nsamples, 10);
    assert_int_equal(f->ctx[1].nsamples, 2);
    assert_int_equal(f->ctx[1].sample_ts[0], BASE_SEC * 1000);
    assert_int_equal(f->ctx[1].sample_ts[1], (BASE_SEC + 5) * 1000);
    assert_int_equal(f->ctx[1].sample_step[0], 5);
    assert_int_equal(f->ctx[0].sample_ts[3], (BASE_SEC + 3) * 1000);
    assert_int_equal(f->ctx[0].sample_step[3], 1);

    /* one spool record per tick */
    wp_spool_stats(f->a.spool, &st);
    assert_int_equal(st.next_seq, 11);
    uint32_t a = id_of(f, "fake", "a");
    uint32_t b = id_of(f, "fake", "b");
    uint32_t self = id_of(f, "agent", "");
    assert_true(a != 0 && b != 0 && self != 0);
    /* tick BASE_SEC: a, b and the agent's own series (sec % 10 == 0) */
    assert_int_equal(read_batch(f, 1, &ts, ids, 8), 3);
    assert_int_equal(ts, BASE_SEC * 1000);
    assert_int_equal(ids[0], a);
    assert_int_equal(ids[1], b);
    assert_int_equal(ids[2], self);
    assert_int_equal(agent_sink_def(f->a.sink, self, &d), 0);
    assert_int_equal(d.step_s, 10);
    assert_int_equal(d.nfields, 12);
    assert_true(wp_str_eq(d.fields[0], "spool_bytes"));
    for (uint32_t k = 0; k < d.nfields; k++) {
        assert_true(d.fields[k].len <= 19); /* RRD data source names */
    }
    assert_int_equal(agent_sink_def(f->a.sink, b, &d), 0);
    assert_int_equal(d.step_s, 5);
    /* tick BASE_SEC + 1: only a */
    assert_int_equal(read_batch(f, 2, &ts, ids, 8), 1);
    assert_int_equal(ts, (BASE_SEC + 1) * 1000);
    assert_int_equal(ids[0], a);
    /* tick BASE_SEC + 5: a and b, no self metrics */
    assert_int_equal(read_batch(f, 6, &ts, ids, 8), 2);
    assert_int_equal(ts, (BASE_SEC + 5) * 1000);

    /* committed() after each append, with the tick's ts, and the batch was in the spool */
    assert_int_equal(f->ctx[0].ncommitted, 10);
    assert_int_equal(f->ctx[1].ncommitted, 2);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(f->ctx[0].committed_ts[i], (BASE_SEC + i) * 1000);
        assert_true(f->ctx[0].committed_durable[i]);
    }
    fx_stop(f);
    assert_int_equal(f->ctx[0].stopped, 1);
    assert_int_equal(f->ctx[1].stopped, 1);
}

static void nothing_due_appends_nothing(void **state)
{
    struct fx *f = *state;
    struct wp_spool_stats st;

    f->every0 = 5000;
    fx_start(f, NULL, BASE_SEC * 1000);
    agent_sched_tick(f->sched, BASE_SEC + 1);
    agent_sched_tick(f->sched, BASE_SEC + 2);
    wp_spool_stats(f->a.spool, &st);
    assert_int_equal(st.next_seq, 1);
    assert_int_equal(f->ctx[0].nsamples, 0);
    fx_stop(f);
}

static void failing_probe_does_not_stop_the_others(void **state)
{
    struct fx *f = *state;
    struct wp_spool_stats st;
    uint32_t ids[4];
    int64_t ts = 0;

    fx_start(f, NULL, BASE_SEC * 1000);
    f->ctx[1].fail = -EIO;
    agent_sched_tick(f->sched, BASE_SEC + 5);
    wp_spool_stats(f->a.spool, &st);
    assert_int_equal(st.next_seq, 2);
    assert_int_equal(read_batch(f, 1, &ts, ids, 4), 1);
    assert_int_equal(ids[0], id_of(f, "fake", "a"));
    assert_int_equal(f->ctx[1].nsamples, 1);
    /* it sampled, its (empty) round is durable: committed() still runs */
    assert_int_equal(f->ctx[1].ncommitted, 1);
    fx_stop(f);
}

static void blocking_probe_spools_its_own_batch(void **state)
{
    struct fx *f = *state;
    struct wp_spool_stats st;
    uint32_t ids[4];
    int64_t ts = 0;

    fx_start(f, &fake_blocking_ops, BASE_SEC * 1000 + 100);
    agent_sched_tick(f->sched, BASE_SEC + 2); /* p0 on the loop, p2 on the pool */
    assert_int_equal(f->ctx[0].ncommitted, 1);
    for (int i = 0; i < 50 && f->ctx[2].ncommitted == 0; i++) {
        uv_run(&f->loop, UV_RUN_ONCE); /* returns when the work is done */
    }
    assert_int_equal(f->ctx[2].nsamples, 1);
    assert_int_equal(f->ctx[2].ncommitted, 1);
    assert_int_equal(f->ctx[2].committed_ts[0], (BASE_SEC + 2) * 1000);
    assert_true(f->ctx[2].committed_durable[0]);
    wp_spool_stats(f->a.spool, &st);
    assert_int_equal(st.next_seq, 3);
    assert_int_equal(read_batch(f, 2, &ts, ids, 4), 1);
    assert_int_equal(ts, (BASE_SEC + 2) * 1000);
    assert_int_equal(ids[0], id_of(f, "fake", "c"));
    assert_int_equal(f->ctx[2].sample_step[0], 2);
    fx_stop(f);
    assert_int_equal(f->ctx[2].stopped, 1);
}

static void late_loop_skips_missed_ticks(void **state)
{
    struct fx *f = *state;
    struct wp_spool_stats st;
    uint32_t ids[4];
    int64_t ts = 0;

    /* started half a second before BASE_SEC + 1: the timer waits ~500 ms of real time */
    fx_start(f, NULL, BASE_SEC * 1000 + 500);
    /* the loop comes back four seconds late */
    wp_clock_set_fake((BASE_SEC + 5) * 1000 + 2);
    for (int i = 0; i < 10 && f->ctx[0].nsamples == 0; i++) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_int_equal(agent_sched_skipped(f->sched), 4);
    assert_int_equal(f->ctx[0].nsamples, 1); /* no burst of the missed seconds */
    assert_int_equal(f->ctx[0].sample_ts[0], (BASE_SEC + 5) * 1000);
    wp_spool_stats(f->a.spool, &st);
    assert_int_equal(st.next_seq, 2);
    assert_int_equal(read_batch(f, 1, &ts, ids, 4), 2); /* a and b (5 s) */
    assert_int_equal(ts, (BASE_SEC + 5) * 1000);
    fx_stop(f);
}

/* A reload keeps a borrowed probe (same entry, schedule and state), stops a dropped one and
 * starts a new one. b has no stop() here, so the old config frees it as usual. */
static void reload_keeps_stops_and_starts(void **state)
{
    struct fx *f = *state;
    struct fake_ctx dctx;
    struct wp_probe d = {.ops = &fake_ops, .instance = "d", .interval_ms = 1000, .ctx = &dctx};
    struct wp_probe *npp[2] = {NULL, &d};
    unsigned char reused[2] = {1, 0};
    struct agent_conf nc;
    struct agent_sched_diff diff;

    memset(&dctx, 0, sizeof(dctx));
    memset(&nc, 0, sizeof(nc));
    fx_start(f, NULL, BASE_SEC * 1000 + 100);
    f->probes[1].ops = &fake_nostop_ops;
    dctx.spool = f->a.spool;
    agent_sched_tick(f->sched, BASE_SEC + 1);
    assert_int_equal(f->ctx[0].nsamples, 1);
    npp[0] = f->pp[0]; /* a: unchanged; b: gone; d: new */
    nc.probes = npp;
    nc.nprobes = 2;
    nc.probe_reused = reused;
    agent_sched_reload(f->sched, &nc, &f->conf, &diff);
    assert_int_equal(diff.kept, 1);
    assert_int_equal(diff.stopped, 1);
    assert_int_equal(diff.started, 1);
    assert_int_equal(f->ctx[0].stopped, 0);
    assert_ptr_equal(f->pp[1], &f->probes[1]); /* still the old config's to free */
    agent_sched_tick(f->sched, BASE_SEC + 5);  /* b would be due at a multiple of 5 s */
    assert_int_equal(f->ctx[0].nsamples, 2);
    assert_int_equal(f->ctx[1].nsamples, 0);
    assert_int_equal(dctx.nsamples, 1);
    assert_int_equal(dctx.ncommitted, 1);
    assert_int_equal(dctx.sample_ts[0], (BASE_SEC + 5) * 1000);
    fx_stop(f);
    assert_int_equal(f->ctx[0].stopped, 1);
    assert_int_equal(dctx.stopped, 1);
}

/* Heap probes the scheduler frees after a reload; their calls are counted here. */
static int counted_stops, counted_commits, counted_destroys;

static int counting_sample(struct wp_probe *p, struct wp_sink *out)
{
    double v[2] = {1, 2};

    wp_sink_metric(out, &fake_kind, p->instance, v);
    return 0;
}

static void counting_stop(struct wp_probe *p)
{
    (void)p;
    counted_stops++;
}

static void counting_committed(struct wp_probe *p, int64_t ts_ms)
{
    (void)p;
    (void)ts_ms;
    counted_commits++;
}

static void counting_destroy(struct wp_probe *p)
{
    (void)p;
    counted_destroys++;
}

static int counting_start(struct wp_probe *p, uv_loop_t *loop)
{
    (void)p;
    (void)loop;
    return 0;
}

static const struct wp_probe_ops counting_blocking_ops = {
    .name = "countblock",
    .flags = WP_PROBE_BLOCKING,
    .sample = counting_sample,
    .destroy = counting_destroy,
    .committed = counting_committed,
};

/* Like ami and sipcall: start() opens handles in the probe, stop() closes them. */
static const struct wp_probe_ops counting_stream_ops = {
    .name = "countstream",
    .start = counting_start,
    .stop = counting_stop,
    .destroy = counting_destroy,
};

/* Start the scheduler again with c as the third probe. */
static void restart_with(struct fx *f, const struct wp_probe_ops *ops, int64_t every_ms)
{
    struct wp_probe *c = wp_xcalloc(1, sizeof(*c));

    counted_stops = counted_commits = counted_destroys = 0;
    c->ops = ops;
    c->instance = wp_xstrdup("c");
    c->interval_ms = every_ms;
    c->ctx = wp_xcalloc(1, 8);
    fx_start(f, &fake_ops, BASE_SEC * 1000 + 100);
    agent_sched_stop(f->sched);
    uv_walk(&f->loop, close_walk, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    agent_sched_free(f->sched);
    f->ctx[0].stopped = f->ctx[1].stopped = 0;
    f->pp[2] = c;
    assert_int_equal(agent_sched_start(&f->a, &f->sched), 0);
}

/* Drop the third probe: a and b stay. */
static void drop_third(struct fx *f)
{
    static unsigned char reused[2] = {1, 1};
    struct agent_conf nc;
    struct agent_sched_diff diff;

    memset(&nc, 0, sizeof(nc));
    nc.probes = f->pp;
    nc.nprobes = 2;
    nc.probe_reused = reused;
    agent_sched_reload(f->sched, &nc, &f->conf, &diff);
    assert_int_equal(diff.kept, 2);
    assert_int_equal(diff.stopped, 1);
    f->conf.nprobes = 2;
}

/* A blocking probe dropped while its sample is queued or running: freed when the sample
 * finishes or is cancelled; a sample that ran is still spooled and committed. */
static void reload_retires_a_running_blocking_probe(void **state)
{
    struct fx *f = *state;
    struct wp_spool_stats st;

    restart_with(f, &counting_blocking_ops, 2000);
    agent_sched_tick(f->sched, BASE_SEC + 2); /* c's sample goes to the pool */
    drop_third(f);
    assert_null(f->pp[2]); /* the scheduler owns it now */
    assert_int_equal(counted_destroys, 0);
    for (int i = 0; i < 50 && counted_destroys == 0; i++) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_int_equal(counted_destroys, 1);
    /* the pool may not have started the sample yet (then it is cancelled) */
    wp_spool_stats(f->a.spool, &st);
    assert_true(counted_commits <= 1);
    assert_int_equal(st.next_seq, counted_commits == 1 ? 3 : 2);
    fx_stop(f);
    assert_int_equal(counted_destroys, 1);
}

/* A streaming probe dropped by a reload is stopped at once but freed only after the loop has
 * drained (its handles close asynchronously). */
static void reload_keeps_a_stopped_stream_until_exit(void **state)
{
    struct fx *f = *state;

    restart_with(f, &counting_stream_ops, 1000);
    drop_third(f);
    assert_null(f->pp[2]);
    assert_int_equal(counted_stops, 1);
    assert_int_equal(counted_destroys, 0);
    agent_sched_tick(f->sched, BASE_SEC + 1);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(counted_destroys, 0);
    fx_stop(f);
    assert_int_equal(counted_stops, 1); /* not stopped again at shutdown */
    assert_int_equal(counted_destroys, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(ticks_are_aligned_one_batch_each, setup, teardown),
        cmocka_unit_test_setup_teardown(nothing_due_appends_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(failing_probe_does_not_stop_the_others, setup, teardown),
        cmocka_unit_test_setup_teardown(blocking_probe_spools_its_own_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(late_loop_skips_missed_ticks, setup, teardown),
        cmocka_unit_test_setup_teardown(reload_keeps_stops_and_starts, setup, teardown),
        cmocka_unit_test_setup_teardown(reload_retires_a_running_blocking_probe, setup, teardown),
        cmocka_unit_test_setup_teardown(reload_keeps_a_stopped_stream_until_exit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
