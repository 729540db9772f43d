/* SPDX-License-Identifier: Apache-2.0 */
/* The collector's rules and incidents: loads rules files, feeds the engine from ingest,
 * records incidents in STATE_DIR/incidents.db, reloads on SIGHUP and `watchpost reload`. */
#include "coll_rules.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll.h"
#include "coll_conf.h"
#include "db.h"
#include "incident.h"
#include "ingest.h"
#include "maint.h"
#include "rules.h"
#include "rules_eval.h"
#include "wp/clock.h"
#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"
#include "wp/wire.h"

#define DELAY_SAMPLES 8192

struct coll_rules {
    struct coll_server *s;
    struct inc_store *inc;
    struct rule_set *rs;
    struct rules_eng *eng;
    uint64_t opened, errors, fires;
    /* delay from the arrival of the breaching data (or the tick) to the committed
     * incident row of an opened or reopened incident, microseconds: the last
     * DELAY_SAMPLES of them */
    int64_t arrived_us;
    uint32_t delay_us[DELAY_SAMPLES];
    uint64_t ndelays;
    uint64_t delay_le[COLL_RULES_DELAY_BUCKETS]; /* cumulative counts, see coll_rules.h */
    /* Everything the engine says about one batch (or one tick) commits in one transaction:
     * a batch often moves many problems of its host at once (value updates, states). */
    int in_tx;
    uint32_t tx_opens; /* incidents opened in the open transaction: timed at commit */
    /* runtime maintenance windows: the store, and the active and upcoming ones in memory,
     * loaded again when the store's change counter moves (API, or the CLI in another
     * process: read once a second on the tick) and once a minute to drop the ones over */
    struct maint_store *maint;
    struct maint_set *mset;
    int64_t mgen, mloaded_ms;
    int merr; /* the last refresh failed (logged once) */
};

const int64_t coll_rules_delay_bounds_us[COLL_RULES_DELAY_BUCKETS] = {
    250, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 1000000, INT64_MAX};

static int64_t mono_us(void)
{
    return (int64_t)(uv_hrtime() / 1000);
}

/* ---- the sink: engine -> incident store ------------------------------------------------ */

static void record_delay(struct coll_rules *r, int64_t d)
{
    r->delay_us[r->ndelays++ % DELAY_SAMPLES] =
        (uint32_t)(d < 0 ? 0 : d > (int64_t)UINT32_MAX ? UINT32_MAX : d);
    for (int b = 0; b < COLL_RULES_DELAY_BUCKETS; b++) {
        if (d <= coll_rules_delay_bounds_us[b]) {
            r->delay_le[b]++;
        }
    }
}

/* Open the transaction of this batch or tick on the first change. */
static void tx_need(struct coll_rules *r)
{
    if (!r->in_tx && inc_begin(r->inc) == 0) {
        r->in_tx = 1;
    }
}

/* Commit what the batch or tick changed; the opened incidents are now committed rows. */
static void tx_done(struct coll_rules *r)
{
    if (!r->in_tx) {
        return;
    }
    r->in_tx = 0;
    if (inc_commit(r->inc) < 0) {
        r->errors++;
        WP_ERROR("rules", "incident changes not committed: %s", inc_errmsg(r->inc));
        r->tx_opens = 0;
        return;
    }
    int64_t d = mono_us() - r->arrived_us;
    for (; r->tx_opens > 0; r->tx_opens--) {
        record_delay(r, d);
    }
}

static int sink_fire(void *arg, const struct inc_signal *sig, int64_t now)
{
    struct coll_rules *r = arg;
    int64_t id = 0;

    tx_need(r);
    int rc = inc_fire(r->inc, sig, now, &id);

    r->fires++;
    if (rc < 0) {
        r->errors++;
        WP_ERROR("rules", "incident for %s not recorded: %s", sig->fingerprint,
                 inc_errmsg(r->inc));
        return rc;
    }
    if (rc == 1) {
        r->tx_opens++; /* opened or reopened: timed when its row is committed */
        r->opened++;
        WP_WARN("rules", "incident %lld opened: %s [%s] (%s)", (long long)id, sig->summary,
                sig->rule, sig->fingerprint);
    }
    return 0;
}

static int sink_clear(void *arg, const char *fp, int64_t now)
{
    struct coll_rules *r = arg;

    tx_need(r);
    int rc = inc_clear(r->inc, fp, now);

    if (rc < 0) {
        r->errors++;
        WP_ERROR("rules", "resolution of %s not recorded: %s", fp, inc_errmsg(r->inc));
    } else {
        WP_INFO("rules", "condition cleared: %s", fp);
    }
    return rc;
}

static int sink_suppress(void *arg, const char *fp, int on, const char *reason, int64_t now)
{
    struct coll_rules *r = arg;

    tx_need(r);
    int rc = inc_suppress(r->inc, fp, on, reason, now);

    if (rc < 0) {
        r->errors++;
        WP_ERROR("rules", "suppression of %s not recorded: %s", fp, inc_errmsg(r->inc));
    }
    return rc;
}

static int sink_state_put(void *arg, const char *fp, int state, int64_t since)
{
    struct coll_rules *r = arg;
    tx_need(r);
    return inc_state_put(r->inc, fp, state, since);
}

static int sink_state_del(void *arg, const char *fp)
{
    struct coll_rules *r = arg;
    tx_need(r);
    return inc_state_del(r->inc, fp);
}

static int restore_cb(void *arg, const char *key, int state, int64_t since)
{
    struct coll_rules *r = arg;
    rules_eng_restore(r->eng, key, state, since);
    return 0;
}

/* ---- runtime maintenance windows ------------------------------------------------------- */

static const char *maint_match(void *arg, const char *host, int64_t now)
{
    struct coll_rules *r = arg;
    return maint_set_match(r->mset, r->rs, host, now);
}

static void maint_log(void *arg, const struct maint_win *w, int started)
{
    (void)arg;
    int early = !started && w->ended_ms != 0;
    const char *how = started ? "started" : early ? "ended early" : "ended";
    const char *by = early && w->ended_by != NULL ? w->ended_by : "";

    WP_INFO("rules", "maintenance window %" PRId64 " \"%s\" %s (%zu hosts, %zu groups)%s%s",
            w->id, w->name, how, w->nhosts, w->ngroups, by[0] != '\0' ? " by " : "", by);
}

/* Load the windows again when they changed (or force, or a minute passed); then log the
 * ones that started or ended. The engine sees the new set at its next pass. */
static void maint_refresh(struct coll_rules *r, int64_t now, int force)
{
    int64_t gen = 0;
    struct maint_set *ms = NULL;

    if (r->maint == NULL) {
        return;
    }
    if (maint_gen(r->maint, &gen) < 0) {
        if (!r->merr) {
            WP_ERROR("rules", "maintenance windows not read: %s", maint_errmsg(r->maint));
        }
        r->merr = 1;
        return;
    }
    if (force || gen != r->mgen || r->mset == NULL || now - r->mloaded_ms >= 60000) {
        if (maint_set_load(r->maint, now, &ms) < 0) {
            if (!r->merr) {
                WP_ERROR("rules", "maintenance windows not loaded: %s", maint_errmsg(r->maint));
            }
            r->merr = 1;
            return;
        }
        maint_set_transitions(ms, r->mset, now, maint_log, r);
        maint_set_free(r->mset);
        r->mset = ms;
        r->mgen = gen;
        r->mloaded_ms = now;
    } else {
        maint_set_transitions(r->mset, NULL, now, maint_log, r);
    }
    if (r->merr) {
        WP_INFO("rules", "maintenance windows read again");
    }
    r->merr = 0;
}

/* ---- binding --------------------------------------------------------------------------- */

/* "k\x1fv\x1e..." (coll_agent.labels) as k, v, ..., NULL; *buf owns the strings. */
static const char **labels_split(const char *s, char **buf)
{
    size_t n = 0;
    for (const char *p = s; p != NULL && *p != '\0'; p++) {
        n += *p == '\x1e';
    }
    const char **v = wp_xcalloc(2 * n + 1, sizeof(*v));
    *buf = wp_xstrdup(s != NULL ? s : "");
    size_t i = 0;
    for (char *p = *buf; *p != '\0' && i < 2 * n;) {
        char *us = strchr(p, '\x1f');
        char *rs = us != NULL ? strchr(us + 1, '\x1e') : NULL;
        if (us == NULL || rs == NULL) {
            break;
        }
        *us = '\0';
        *rs = '\0';
        v[i++] = p;
        v[i++] = us + 1;
        p = rs + 1;
    }
    v[i] = NULL;
    return v;
}

void coll_rules_host(struct coll_server *s, struct coll_agent *a)
{
    char *buf = NULL;

    if (s->rules == NULL) {
        return;
    }
    const char **labels = labels_split(a->labels, &buf);
    a->rh = rules_eng_host(s->rules->eng, a->host != NULL ? a->host : a->id, a->id, labels,
                           wp_clock_now_ms());
    free(labels);
    free(buf);
}

void coll_rules_bind(struct coll_server *s, struct coll_agent *a, const struct wp_series_def *d)
{
    char metric[2 * WP_NAME_MAX + 2];
    char inst[WP_INST_MAX + 1];
    struct coll_series *cs;

    if (s->rules == NULL || d->id >= a->series_cap) {
        return;
    }
    if (a->rh == NULL) {
        coll_rules_host(s, a);
    }
    cs = &a->series[d->id];
    free(cs->rs);
    cs->rs = NULL;
    snprintf(inst, sizeof(inst), "%.*s", (int)d->inst.len, d->inst.p);
    for (uint32_t i = 0; i < d->nfields && i < cs->nfields; i++) {
        snprintf(metric, sizeof(metric), "%.*s.%.*s", (int)d->group.len, d->group.p,
                 (int)d->fields[i].len, d->fields[i].p);
        struct rules_series *se = rules_eng_series(s->rules->eng, a->rh, metric, inst);
        if (se != NULL) {
            if (cs->rs == NULL) {
                cs->rs = wp_xcalloc(cs->nfields, sizeof(*cs->rs));
            }
            cs->rs[i] = se;
        }
    }
}

/* An event, check result or state: copied out of the frame (the engine wants C strings). */
static void feed_record(struct rules_eng *e, struct rules_host *h, const struct wp_rec *r)
{
    char *name = wp_str_dup(r->name);
    char *group = wp_str_dup(r->group);
    char *text = wp_str_dup(r->text);

    switch (r->kind) {
    case WP_REC_EVENT:
        rules_log(e, h, name, text, r->ts_ms);
        break;
    case WP_REC_CHECK:
        rules_check(e, h, name, (enum check_status)r->level, text, r->ts_ms);
        break;
    case WP_REC_STATE:
        rules_line(e, h, name, group, text, r->ts_ms);
        break;
    default:
        break;
    }
    free(name);
    free(group);
    free(text);
}

void coll_rules_batch_begin(struct coll_server *s, struct coll_agent *a)
{
    if (s->rules == NULL || a->rh == NULL) {
        return;
    }
    s->rules->arrived_us = mono_us();
    rules_host_seen(s->rules->eng, a->rh, wp_clock_now_ms());
}

void coll_rules_row(struct coll_server *s, const struct coll_series *cs, int64_t ts_ms,
                    const double *vals)
{
    for (uint32_t k = 0; k < cs->nfields; k++) {
        if (cs->rs[k] != NULL) {
            rules_sample(s->rules->eng, cs->rs[k], ts_ms, vals[k]);
        }
    }
}

void coll_rules_batch_end(struct coll_server *s)
{
    if (s->rules != NULL) {
        tx_done(s->rules);
    }
}

void coll_rules_record(struct coll_server *s, struct coll_agent *a, const struct wp_rec *r)
{
    if (s->rules == NULL || a->rh == NULL) {
        return;
    }
    feed_record(s->rules->eng, a->rh, r);
}

static int rebind_cb(void *arg, const char *agent, const struct wp_series_def *d,
                     const char *file)
{
    struct coll_server *s = arg;
    struct coll_agent *a = coll_agent_find(s, agent);

    (void)file;
    if (a != NULL) {
        coll_rules_bind(s, a, d);
    }
    return 0;
}

static void rebind_all(struct coll_server *s);

void coll_rules_relabel(struct coll_server *s, struct coll_agent *a)
{
    int bound = 0;

    if (s->rules == NULL) {
        return;
    }
    for (uint32_t k = 0; k < a->series_cap && !bound; k++) {
        bound = a->series[k].rs != NULL;
    }
    if (!bound) {
        return; /* nothing was selected with the old labels: the DEFS to come bind afresh */
    }
    /* rare (an agent's config changed): every problem keeps its state across the swap */
    WP_INFO("rules", "labels of agent %s changed: selecting series again", a->id);
    rules_eng_set(s->rules->eng, s->rules->rs);
    rebind_all(s);
}

/* Every series handle died with the old rule set: clear them, then bind again. */
static void rebind_all(struct coll_server *s)
{
    for (size_t i = 0; i < s->agents_cap; i++) {
        for (struct coll_agent *a = s->agents[i]; a != NULL; a = a->hnext) {
            for (uint32_t k = 0; k < a->series_cap; k++) {
                free(a->series[k].rs);
                a->series[k].rs = NULL;
            }
        }
    }
    coll_db_series_each(s->db, rebind_cb, s);
}

/* ---- lifecycle ------------------------------------------------------------------------- */

static int load_rules(const struct coll_conf *c, struct rule_set **out, char *err, size_t len)
{
    struct wp_conf_err e;

    memset(&e, 0, sizeof(e));
    int rc = rules_load((const char *const *)c->incidents.rules.v, c->incidents.rules.n, &e, out);
    if (rc < 0) {
        snprintf(err, len, "%s", e.msg);
    }
    return rc;
}

int coll_rules_start(struct coll_server *s)
{
    struct inc_policy p;
    char path[4096];
    char err[1024] = "";
    int rc = 0;
    struct coll_rules *r = wp_xcalloc(1, sizeof(*r));
    const struct coll_conf *c = s->conf;

    r->s = s;
    inc_policy_default(&p);
    for (int i = 0; i < 3; i++) {
        for (int k = 0; k < 3; k++) {
            p.matrix[i][k] = c->incidents.matrix_prio[i][k];
        }
    }
    for (int i = 0; i < INC_NPRIO; i++) {
        p.response_ms[i] = c->incidents.sla[i].response_ms;
        p.resolve_ms[i] = c->incidents.sla[i].resolve_ms;
    }
    p.reopen_window_ms = c->incidents.reopen_window_ms;
    p.flap_changes = (int)c->incidents.flap_changes;
    p.flap_window_ms = c->incidents.flap_window_ms;
    if ((rc = load_rules(c, &r->rs, err, sizeof(err))) < 0) {
        WP_ERROR("collector", "rules: %s", err);
        free(r);
        return rc;
    }
    snprintf(path, sizeof(path), "%s/incidents.db", c->state_dir);
    if ((rc = inc_open(path, &p, &r->inc)) < 0) {
        WP_ERROR("collector", "incidents store %s: %s", path,
                 r->inc != NULL ? inc_errmsg(r->inc) : wp_strerror(rc));
        inc_close(r->inc);
        rules_free(r->rs);
        free(r);
        return rc;
    }
    struct rules_sink sink = {
        .arg = r,
        .fire = sink_fire,
        .clear = sink_clear,
        .suppress = sink_suppress,
        .state_put = sink_state_put,
        .state_del = sink_state_del,
    };
    if ((rc = maint_open(path, &r->maint)) < 0) {
        inc_close(r->inc);
        rules_free(r->rs);
        free(r);
        return rc;
    }
    r->eng = rules_eng_new(r->rs, &sink);
    rules_eng_set_maint(r->eng, maint_match, r);
    maint_refresh(r, wp_clock_now_ms(), 1);
    inc_state_each(r->inc, restore_cb, r);
    s->rules = r;
    WP_INFO("collector", "rules: %zu rules from %zu files; incidents in %s", r->rs->nrules,
            c->incidents.rules.n, path);
    return 0;
}

int coll_rules_reload(struct coll_server *s, char *err, size_t len)
{
    struct rule_set *rs = NULL;
    struct coll_rules *r = s->rules;

    if (r == NULL) {
        snprintf(err, len, "rules are not running");
        return -EINVAL;
    }
    int rc = load_rules(s->conf, &rs, err, len);
    if (rc < 0) {
        WP_ERROR("collector", "rules not reloaded, the loaded ones stay in force: %s", err);
        return rc;
    }
    rules_eng_set(r->eng, rs);
    rules_free(r->rs);
    r->rs = rs;
    rebind_all(s);
    WP_INFO("collector", "rules reloaded: %zu rules", rs->nrules);
    snprintf(err, len, "%zu rules loaded", rs->nrules);
    return 0;
}

void coll_rules_tick(struct coll_server *s)
{
    if (s->rules == NULL) {
        return;
    }
    int64_t now = wp_clock_now_ms();
    s->rules->arrived_us = mono_us();
    maint_refresh(s->rules, now, 0);
    rules_eng_tick(s->rules->eng, now);
    tx_done(s->rules);
    if (inc_tick(s->rules->inc, now) < 0) {
        WP_ERROR("rules", "escalation tick: %s", inc_errmsg(s->rules->inc));
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int coll_rules_in_group(void *arg, const char *group, const char *host)
{
    struct coll_server *s = arg;
    return s->rules != NULL && s->rules->rs != NULL &&
           rules_host_in_group(s->rules->rs, group, host);
}

struct inc_store *coll_rules_store(struct coll_server *s)
{
    return s->rules != NULL ? s->rules->inc : NULL;
}

const struct rule_set *coll_rules_set(struct coll_server *s)
{
    return s->rules != NULL ? s->rules->rs : NULL;
}

struct maint_store *coll_rules_maint(struct coll_server *s)
{
    return s->rules != NULL ? s->rules->maint : NULL;
}

void coll_rules_maint_changed(struct coll_server *s)
{
    if (s->rules == NULL) {
        return;
    }
    int64_t now = wp_clock_now_ms();
    maint_refresh(s->rules, now, 1);
    /* a pass now, not at the next tick: the operator sees the effect in the reply's wake */
    s->rules->arrived_us = mono_us();
    rules_eng_tick(s->rules->eng, now);
    tx_done(s->rules);
}

void coll_rules_stats(struct coll_server *s, struct coll_rules_stats *out)
{
    struct rules_eng_stats st;
    struct coll_rules *r = s->rules;

    memset(out, 0, sizeof(*out));
    if (r == NULL) {
        return;
    }
    rules_eng_stats(r->eng, &st);
    out->opened = r->opened;
    out->errors = r->errors;
    out->problems = st.problems;
    out->samples = st.samples;
    out->fires = r->fires;
    memcpy(out->delay_le, r->delay_le, sizeof(out->delay_le));
    size_t n = r->ndelays < DELAY_SAMPLES ? (size_t)r->ndelays : DELAY_SAMPLES;
    if (n > 0) {
        uint32_t *c = wp_xmalloc(n * sizeof(*c));
        memcpy(c, r->delay_us, n * sizeof(*c));
        qsort(c, n, sizeof(*c), cmp_u32);
        out->delay_p50_us = c[(n - 1) / 2];
        out->delay_p99_us = c[(n * 99 + 99) / 100 - 1];
        out->delay_max_us = c[n - 1];
        free(c);
    }
}

void coll_rules_stop(struct coll_server *s)
{
    struct coll_rules *r = s->rules;

    if (r == NULL) {
        return;
    }
    tx_done(r);
    for (size_t i = 0; i < s->agents_cap; i++) {
        for (struct coll_agent *a = s->agents[i]; a != NULL; a = a->hnext) {
            for (uint32_t k = 0; k < a->series_cap; k++) {
                free(a->series[k].rs);
                a->series[k].rs = NULL;
            }
            a->rh = NULL;
        }
    }
    rules_eng_free(r->eng);
    rules_free(r->rs);
    maint_set_free(r->mset);
    maint_close(r->maint);
    inc_close(r->inc);
    free(r);
    s->rules = NULL;
}
