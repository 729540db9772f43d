/* SPDX-License-Identifier: Apache-2.0 */
/* Ingest: HELLO/DEFS/BATCH handling, exactly-once by seq, journal before ack, RRD rows. */
#include "ingest.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coll.h"
#include "coll_conf.h"
#include "coll_rules.h"
#include "events.h"
#include "http_api.h"
#include "linerrd.h"
#include "lines.h"
#include "seats.h"
#include "db.h"
#include "journal.h"
#include "rrdw.h"
#include "server.h"
#include "wp/clock.h"
#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"
#include "wp/wire.h"

/* ---- agents table ---------------------------------------------------------------------- */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    }
    return h;
}

struct coll_agent *coll_agent_find(struct coll_server *s, const char *id)
{
    if (s->agents_cap == 0) {
        return NULL;
    }
    struct coll_agent *a = s->agents[hash_str(id) & (s->agents_cap - 1)];
    while (a != NULL && strcmp(a->id, id) != 0) {
        a = a->hnext;
    }
    return a;
}

static struct coll_agent *agent_get(struct coll_server *s, const char *id)
{
    struct coll_agent *a = coll_agent_find(s, id);

    if (a != NULL) {
        return a;
    }
    if (s->nagents + 1 > s->agents_cap) {
        size_t cap = s->agents_cap ? s->agents_cap * 2 : 1024;
        struct coll_agent **t = wp_xcalloc(cap, sizeof(*t));
        for (size_t i = 0; i < s->agents_cap; i++) {
            struct coll_agent *e = s->agents[i];
            while (e != NULL) {
                struct coll_agent *next = e->hnext;
                size_t b = hash_str(e->id) & (cap - 1);
                e->hnext = t[b];
                t[b] = e;
                e = next;
            }
        }
        free(s->agents);
        s->agents = t;
        s->agents_cap = cap;
    }
    a = wp_xcalloc(1, sizeof(*a));
    a->id = wp_xstrdup(id);
    a->host = wp_xstrdup(id);
    a->version = wp_xstrdup("");
    size_t b = hash_str(id) & (s->agents_cap - 1);
    a->hnext = s->agents[b];
    s->agents[b] = a;
    s->nagents++;
    return a;
}

void coll_agents_free(struct coll_server *s)
{
    for (size_t i = 0; i < s->agents_cap; i++) {
        struct coll_agent *a = s->agents[i];
        while (a != NULL) {
            struct coll_agent *next = a->hnext;
            free(a->id);
            free(a->host);
            free(a->version);
            free(a->labels);
            for (uint32_t k = 0; k < a->series_cap; k++) {
                free(a->series[k].rs);
            }
            free(a->series);
            free(a);
            a = next;
        }
    }
    free(s->agents);
    s->agents = NULL;
    s->agents_cap = s->nagents = 0;
}

static void put_series(struct coll_agent *a, uint32_t id, struct wp_rrdw_file *f, uint32_t n)
{
    if (id >= a->series_cap) {
        uint32_t cap = a->series_cap ? a->series_cap : 64;
        while (cap <= id) {
            cap *= 2;
        }
        a->series = wp_xrealloc(a->series, cap * sizeof(*a->series));
        memset(a->series + a->series_cap, 0, (cap - a->series_cap) * sizeof(*a->series));
        a->series_cap = cap;
    }
    a->series[id].file = f;
    a->series[id].nfields = n;
}

/* Resolve a definition to its RRD file; *err set on invalid names. */
static struct wp_rrdw_file *def_file(struct coll_server *s, const char *agent,
                                     const struct wp_series_def *d, int *err)
{
    char names[WP_SERIES_MAX_FIELDS][WP_NAME_MAX + 1];
    const char *fields[WP_SERIES_MAX_FIELDS];
    char group[WP_NAME_MAX + 1];
    char inst[WP_INST_MAX + 1];

    memcpy(group, d->group.p, d->group.len);
    group[d->group.len] = '\0';
    memcpy(inst, d->inst.p, d->inst.len);
    inst[d->inst.len] = '\0';
    for (uint32_t i = 0; i < d->nfields; i++) {
        memcpy(names[i], d->fields[i].p, d->fields[i].len);
        names[i][d->fields[i].len] = '\0';
        fields[i] = names[i];
    }
    return wp_rrdw_file_get(s->rrdw, agent, group, inst, fields, d->nfields, d->type, d->step_s,
                            err);
}

/* ---- registry persistence ----------------------------------------------------------- */

static void save_agent(struct coll_server *s, struct coll_agent *a)
{
    struct coll_db_agent r = {
        .id = a->id,
        .host = a->host,
        .version = a->version,
        .fingerprint = a->fingerprint[0] ? a->fingerprint : NULL,
        .addr = a->addr[0] ? a->addr : NULL,
        .first_seen = a->first_seen,
        .last_seen = a->last_seen,
        .connected = a->connected,
        .committed_seq = a->committed,
        .labels = a->labels,
    };
    coll_db_agent_put(s->db, &r);
    a->dirty = 0;
}

void coll_ingest_save_registry(struct coll_server *s, int all)
{
    int began = 0;

    for (size_t i = 0; i < s->agents_cap; i++) {
        for (struct coll_agent *a = s->agents[i]; a != NULL; a = a->hnext) {
            if (!a->dirty && !all) {
                continue;
            }
            if (!began) {
                coll_db_begin(s->db);
                began = 1;
            }
            save_agent(s, a);
        }
    }
    if (began) {
        coll_db_commit(s->db);
    }
}

static int load_agent_cb(void *arg, const struct coll_db_agent *r)
{
    struct coll_server *s = arg;
    struct coll_agent *a = agent_get(s, r->id);

    free(a->host);
    free(a->version);
    a->host = wp_xstrdup(r->host ? r->host : r->id);
    a->version = wp_xstrdup(r->version ? r->version : "");
    snprintf(a->fingerprint, sizeof(a->fingerprint), "%s", r->fingerprint ? r->fingerprint : "");
    snprintf(a->addr, sizeof(a->addr), "%s", r->addr ? r->addr : "");
    a->first_seen = r->first_seen;
    a->last_seen = r->last_seen;
    a->committed = a->appended = r->committed_seq;
    free(a->labels);
    a->labels = wp_xstrdup(r->labels != NULL ? r->labels : "");
    coll_rules_host(s, a);
    return 0;
}

static int load_series_cb(void *arg, const char *agent, const struct wp_series_def *d,
                          const char *file)
{
    struct coll_server *s = arg;
    struct coll_agent *a = agent_get(s, agent);
    int err = 0;

    (void)file;
    struct wp_rrdw_file *f = def_file(s, agent, d, &err);
    if (f == NULL) {
        WP_WARN("collector", "stored series %u of agent %s is invalid: %s", d->id, agent,
                wp_strerror(err));
        return 0;
    }
    put_series(a, d->id, f, d->nfields);
    coll_rules_bind(s, a, d);
    return 0;
}

int coll_ingest_load(struct coll_server *s)
{
    int rc = coll_db_agents_disconnected(s->db);
    if (rc == 0) {
        rc = coll_db_agent_each(s->db, load_agent_cb, s);
    }
    if (rc == 0) {
        rc = coll_db_series_each(s->db, load_series_cb, s);
    }
    return rc;
}

/* ---- rows ----------------------------------------------------------------------------- */

/* Check every record of a batch before anything is journaled: the agent's series exist
 * and the value counts match. Returns 0 or an error with a reason in why. */
static int batch_check(const struct coll_agent *a, const struct wp_msg *m, uint32_t *nvals,
                       char *why, size_t whylen)
{
    struct wp_rec r;
    uint32_t n = 0;

    for (uint32_t i = 0; i < m->u.batch.recs->size; i++) {
        int rc = wp_batch_rec(m, i, &r);
        if (rc < 0) {
            snprintf(why, whylen, "batch %llu record %u: %s",
                     (unsigned long long)m->u.batch.seq, i, wp_strerror(rc));
            return rc;
        }
        if (r.kind != WP_REC_METRIC) {
            n += r.kind == WP_REC_HEARTBEAT ? 0 : 1; /* an event, check or state: one value */
            continue;
        }
        if (r.id >= a->series_cap || a->series[r.id].file == NULL) {
            snprintf(why, whylen, "batch %llu record %u: series id %u was never defined",
                     (unsigned long long)m->u.batch.seq, i, r.id);
            return WP_EPROTO;
        }
        if (r.nvals != a->series[r.id].nfields) {
            snprintf(why, whylen, "batch %llu record %u: %u values for a series of %u fields",
                     (unsigned long long)m->u.batch.seq, i, r.nvals, a->series[r.id].nfields);
            return WP_EPROTO;
        }
        n += r.nvals;
    }
    *nvals = n;
    return 0;
}

/* A line state report into lines.db (one transaction per batch, opened on the first). */
static void store_line(struct coll_server *s, const struct coll_agent *a, const struct wp_rec *r,
                       int *tx)
{
    if (!*tx) {
        *tx = coll_lines_begin(s->lines) == 0;
    }
    char *object = wp_str_dup(r->name), *group = wp_str_dup(r->group);
    char *state = wp_str_dup(r->text), *raw = wp_str_dup(r->raw), *info = wp_str_dup(r->info);
    const char *host = a->host != NULL ? a->host : a->id;
    int rc = coll_lines_put(s->lines, a->id, host, object, group, state, raw, info, r->ts_ms);
    if (rc < 0) {
        WP_ERROR("collector", "line %s of agent %s not stored: %s", object, a->id,
                 coll_lines_errmsg(s->lines));
    } else {
        coll_linerrd_put(s, a->id, object, state, r->ts_ms);
        if (rc == 1 && s->api != NULL) {
            /* to the dashboards' event stream, coalesced there (http_api.c) */
            coll_api_line_changed(s->api, a->id, host, object, group, state, raw, info, r->ts_ms);
        }
    }
    free(object);
    free(group);
    free(state);
    free(raw);
    free(info);
}

/* A seat session event (rule "seat", from the ami probe) into lines.db, in the same
 * transaction as the batch's line states; the store ignores replays. */
static void store_seat(struct coll_server *s, const struct coll_agent *a, const struct wp_rec *r,
                       int *tx)
{
    if (r->group.len != 4 || memcmp(r->group.p, "seat", 4) != 0) {
        return;
    }
    if (!*tx) {
        *tx = coll_lines_begin(s->lines) == 0;
    }
    int rc = coll_seats_put_fields(coll_lines_seats(s->lines), a->host != NULL ? a->host : a->id,
                                   r->fields);
    if (rc < 0) {
        WP_ERROR("collector", "seat event of agent %s not stored: %s", a->id,
                 rc == WP_EDB ? coll_lines_errmsg(s->lines) : wp_strerror(rc));
    }
}

/* A check result or a log event into events.db (one transaction per batch, opened on the
 * first). Seat events are skipped by the store. */
static void store_event(struct coll_server *s, const struct coll_agent *a, const struct wp_rec *r,
                        int *tx)
{
    if (r->kind == WP_REC_EVENT && r->group.len == 4 && memcmp(r->group.p, "seat", 4) == 0) {
        return;
    }
    if (!*tx) {
        *tx = coll_events_begin(s->events) == 0;
    }
    const char *host = a->host != NULL ? a->host : a->id;
    char *name = wp_str_dup(r->name), *text = wp_str_dup(r->text);
    int rc = 0;
    if (r->kind == WP_REC_CHECK) {
        rc = coll_events_put_check(s->events, host, name, (int)r->level, text, r->ts_ms);
    } else {
        char *rule = wp_str_dup(r->group);
        rc = coll_events_put_event(s->events, host, name, rule, (int)r->level, text, r->fields,
                                   r->ts_ms, wp_clock_now_ms());
        free(rule);
    }
    if (rc < 0) {
        WP_ERROR("collector", "%s %s of agent %s not stored: %s",
                 r->kind == WP_REC_CHECK ? "check" : "event from", name, a->id,
                 coll_events_errmsg(s->events));
    }
    free(name);
    free(text);
}

/* Queue every metric row of a checked batch to the RRD writer; a live batch (not a journal
 * replay) also goes to the rules engine, in the same pass over the records. */
static void batch_apply(struct coll_server *s, struct coll_agent *a, const struct wp_msg *m,
                        uint64_t segment, int live)
{
    struct wp_rec r;
    double vals[WP_SERIES_MAX_FIELDS];

    int lines_tx = 0, events_tx = 0;

    if (live) {
        coll_rules_batch_begin(s, a);
    }
    for (uint32_t i = 0; i < m->u.batch.recs->size; i++) {
        if (wp_batch_rec(m, i, &r) < 0) {
            continue;
        }
        if (r.kind != WP_REC_METRIC) {
            if (live && r.kind == WP_REC_STATE && s->lines != NULL) {
                store_line(s, a, &r, &lines_tx);
            }
            if (live && r.kind == WP_REC_EVENT && s->lines != NULL) {
                store_seat(s, a, &r, &lines_tx);
            }
            if (live && (r.kind == WP_REC_CHECK || r.kind == WP_REC_EVENT) && s->events != NULL) {
                store_event(s, a, &r, &events_tx);
            }
            if (live && r.kind != WP_REC_HEARTBEAT) {
                coll_rules_record(s, a, &r);
            }
            continue;
        }
        if (r.id >= a->series_cap || a->series[r.id].file == NULL ||
            r.nvals != a->series[r.id].nfields) {
            continue;
        }
        for (uint32_t k = 0; k < r.nvals; k++) {
            vals[k] = wp_val(&r.vals[k]);
        }
        wp_rrdw_add(s->rrdw, a->series[r.id].file, r.ts_ms, vals, r.nvals, segment);
        if (live && a->series[r.id].rs != NULL) {
            coll_rules_row(s, &a->series[r.id], r.ts_ms, vals);
        }
    }
    if (live) {
        coll_rules_batch_end(s);
    }
    if (lines_tx && coll_lines_commit(s->lines) < 0) {
        WP_ERROR("collector", "line states of agent %s not stored: %s", a->id,
                 coll_lines_errmsg(s->lines));
    }
    if (events_tx && coll_events_commit(s->events) < 0) {
        WP_ERROR("collector", "checks and log events of agent %s not stored: %s", a->id,
                 coll_events_errmsg(s->events));
    }
}

/* ---- journal completion ------------------------------------------------------------------ */

struct pending {
    struct coll_server *s;
    struct coll_agent *a;
    uint64_t seq;
    uint32_t nvals;
};

static void send_ack(struct coll_server *s, struct coll_agent *a, uint64_t seq)
{
    struct wp_buf b;

    if (a->conn == NULL) {
        return;
    }
    wp_buf_init(&b);
    wp_put_ack(&b, seq);
    coll_conn_send(a->conn, &b);
    wp_buf_cleanup(&b);
    s->st.acks_sent++;
}

static void journal_done(void *arg, int status, uint64_t segment)
{
    struct pending *p = arg;
    struct coll_server *s = p->s;
    struct coll_agent *a = p->a;

    (void)segment;
    if (status < 0 && status != WP_ECLOSED) {
        /* a notice: the write failed (disk full?) and the journal retries it; no ack until
         * the final callback, so agents keep the batch in their spools */
        s->st.journal_errors++;
        if (s->st.journal_errors == 1 || s->st.journal_errors % 1000 == 0) {
            WP_ERROR("collector", "journal write failed (%s): not acking until it succeeds; "
                     "agents keep spooling (%llu failures)", wp_strerror(status),
                     (unsigned long long)s->st.journal_errors);
        }
        return;
    }
    if (status == 0) {
        if (p->seq > a->committed) {
            a->committed = p->seq;
        }
        s->st.values_acked += p->nvals;
        send_ack(s, a, p->seq);
    }
    /* WP_ECLOSED: shutting down with the write still failing: never acked, the agent
     * resends it to the next collector run */
    free(p);
    if (s->paused != NULL && !s->stopping) {
        coll_server_resume_paused(s);
    }
}

/* ---- messages ----------------------------------------------------------------------------- */

static int refuse(struct coll_server *s, struct coll_conn *c, int rc, const char *why)
{
    (void)s;
    coll_conn_send_error(c, why);
    coll_conn_close(c, WP_LOG_WARN, why);
    return rc < 0 ? rc : WP_EPROTO;
}

static int valid_id(const char *id)
{
    if (id[0] == '\0' || id[0] == '.' || strlen(id) > WP_AGENT_ID_MAX) {
        return 0;
    }
    for (const char *p = id; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.')) {
            return 0;
        }
    }
    return 1;
}

/* HELLO labels (checked str -> str by the decoder) as "k\x1fv\x1e..." for the registry. */
static char *labels_string(const msgpack_object_map *m)
{
    struct wp_buf b;
    char *out = NULL;

    wp_buf_init(&b);
    for (uint32_t i = 0; m != NULL && i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR || v->type != MSGPACK_OBJECT_STR) {
            continue;
        }
        wp_buf_append(&b, k->via.str.ptr, k->via.str.size);
        wp_buf_append(&b, "\x1f", 1);
        wp_buf_append(&b, v->via.str.ptr, v->via.str.size);
        wp_buf_append(&b, "\x1e", 1);
    }
    out = wp_xstrndup(wp_buf_unread(&b) > 0 ? (const char *)wp_buf_head(&b) : "",
                      wp_buf_unread(&b));
    wp_buf_cleanup(&b);
    return out;
}

static int on_hello(struct coll_server *s, struct coll_conn *c, const struct wp_msg *m)
{
    const struct wp_hello *h = &m->u.hello;
    char why[512];
    char id[WP_AGENT_ID_MAX + 1];

    if (h->version != WP_WIRE_VERSION) {
        snprintf(why, sizeof(why), "protocol version %u not supported (this collector speaks %d)",
                 h->version, WP_WIRE_VERSION);
        return refuse(s, c, WP_EVERSION, why);
    }
    memcpy(id, h->agent.p, h->agent.len);
    id[h->agent.len] = '\0';
    if (strcmp(id, coll_conn_cn(c)) != 0) {
        s->st.refused_auth++;
        snprintf(why, sizeof(why), "agent id \"%.128s\" does not match certificate CN \"%.128s\"",
                 id, coll_conn_cn(c));
        return refuse(s, c, WP_EAUTH, why);
    }
    if (!valid_id(id)) {
        s->st.refused_auth++;
        return refuse(s, c, WP_EAUTH, "agent id must be [A-Za-z0-9._-], not starting with '.'");
    }
    struct coll_agent *a = agent_get(s, id);
    if (a->conn != NULL && a->conn != c) {
        struct coll_conn *old = a->conn;
        coll_conn_close(old, WP_LOG_INFO, "replaced by a new connection of the same agent");
    }
    a->conn = c;
    coll_conn_set_agent(c, a);
    free(a->host);
    free(a->version);
    a->host = h->host.len ? wp_str_dup(h->host) : wp_xstrdup(id);
    a->version = wp_str_dup(h->sw_version);
    coll_conn_fingerprint(c, a->fingerprint);
    snprintf(a->addr, sizeof(a->addr), "%s", coll_conn_peer(c));
    int64_t now = wp_clock_now_ms() / 1000;
    if (a->first_seen == 0) {
        a->first_seen = now;
    }
    a->last_seen = now;
    a->connected = 1;
    a->dirty = 1;
    char *labels = labels_string(h->labels);
    if (a->labels == NULL || strcmp(a->labels, labels) != 0) {
        int had = a->labels != NULL;
        free(a->labels);
        a->labels = labels;
        coll_rules_host(s, a);
        if (had) {
            coll_rules_relabel(s, a); /* the agent's labels changed: rules select again */
        }
    } else {
        free(labels);
        coll_rules_host(s, a);
    }

    struct wp_buf b;
    wp_buf_init(&b);
    wp_put_welcome(&b, a->committed);
    coll_conn_send(c, &b);
    wp_buf_cleanup(&b);
    WP_INFO("collector", "agent connected agent=%s host=%s version=%s peer=%s acked=%llu", a->id,
            a->host, a->version, a->addr, (unsigned long long)a->committed);
    return 0;
}

static int on_defs(struct coll_server *s, struct coll_conn *c, struct coll_agent *a,
                   const struct wp_msg *m)
{
    struct wp_series_def d;
    char why[256];
    int began = 0;
    int rc = 0;

    for (uint32_t i = 0; i < m->u.defs.series->size; i++) {
        int err = 0;
        if ((rc = wp_defs_get(m, i, &d)) < 0) {
            snprintf(why, sizeof(why), "series definition %u: %s", i, wp_strerror(rc));
            break;
        }
        if (d.id == 0 || d.id >= COLL_MAX_SERIES_ID) {
            snprintf(why, sizeof(why), "series id %u out of range 1..%u", d.id,
                     COLL_MAX_SERIES_ID - 1);
            rc = WP_EPROTO;
            break;
        }
        struct wp_rrdw_file *f = def_file(s, a->id, &d, &err);
        if (f == NULL) {
            snprintf(why, sizeof(why), "series %u (%.*s): %s", d.id, (int)d.group.len, d.group.p,
                     wp_strerror(err));
            rc = err < 0 ? err : WP_EPROTO;
            break;
        }
        if (d.id < a->series_cap && a->series[d.id].file == f &&
            a->series[d.id].nfields == d.nfields) {
            continue; /* known: the usual case on every reconnect */
        }
        if (!began) {
            coll_db_begin(s->db);
            began = 1;
        }
        coll_db_series_put(s->db, a->id, &d, wp_rrdw_file_path(f));
        put_series(a, d.id, f, d.nfields);
        coll_rules_bind(s, a, &d);
    }
    if (began) {
        coll_db_commit(s->db);
    }
    if (rc < 0) {
        return refuse(s, c, rc, why);
    }
    return 0;
}

static int on_batch(struct coll_server *s, struct coll_conn *c, struct coll_agent *a,
                    const struct wp_msg *m, const uint8_t *body, size_t len)
{
    uint64_t seq = m->u.batch.seq;
    uint32_t nvals = 0;
    char why[256];
    int rc = batch_check(a, m, &nvals, why, sizeof(why));

    if (rc < 0) {
        return refuse(s, c, rc, why);
    }
    if (seq <= a->committed) {
        /* a resend of something durable: ack again, apply nothing */
        s->st.dup_batches++;
        a->dup_batches++;
        send_ack(s, a, seq);
        return 0;
    }
    if (seq <= a->appended) {
        /* in the journal queue already; its completion acks it */
        s->st.dup_batches++;
        a->dup_batches++;
        return 0;
    }
    struct pending *p = wp_xmalloc(sizeof(*p));
    *p = (struct pending){.s = s, .a = a, .seq = seq, .nvals = nvals};
    uint64_t segment = wp_journal_segment(s->journal);
    rc = wp_journal_append(s->journal, a->id, seq, body, len, journal_done, p);
    if (rc == WP_ETOOBIG) {
        free(p);
        return WP_EAGAIN;
    }
    if (rc < 0) {
        free(p);
        snprintf(why, sizeof(why), "journal append failed: %s", wp_strerror(rc));
        coll_conn_close(c, WP_LOG_ERROR, why);
        return rc;
    }
    if (seq > a->appended + 1) {
        /* also for an agent's first batch: seq starts at 1, so anything before it was
         * dropped by the agent's spool (or went to another collector after a failover) */
        uint64_t gap = seq - a->appended - 1;
        s->st.missing_batches += gap;
        a->missing_batches += gap;
        WP_WARN("collector", "agent %s skipped %llu batches (%llu..%llu): dropped by its spool",
                a->id, (unsigned long long)gap, (unsigned long long)a->appended + 1,
                (unsigned long long)seq - 1);
    }
    a->appended = seq;
    a->batches++;
    a->values += nvals;
    s->st.batches++;
    s->st.values_received += nvals;
    batch_apply(s, a, m, segment, 1);
    return 0;
}

int coll_ingest_msg(struct coll_server *s, struct coll_conn *c, const struct wp_msg *m,
                    const uint8_t *body, size_t len)
{
    struct coll_agent *a = coll_conn_agent(c);
    char why[128];

    switch (m->type) {
    case WP_MSG_HELLO:
        if (a != NULL) {
            return refuse(s, c, WP_EPROTO, "a second hello on one connection");
        }
        return on_hello(s, c, m);
    case WP_MSG_DEFS:
    case WP_MSG_BATCH:
        if (a == NULL) {
            snprintf(why, sizeof(why), "%s before hello", wp_msg_name(m->type));
            return refuse(s, c, WP_EPROTO, why);
        }
        a->last_seen = wp_clock_now_ms() / 1000;
        return m->type == WP_MSG_DEFS ? on_defs(s, c, a, m) : on_batch(s, c, a, m, body, len);
    default:
        snprintf(why, sizeof(why), "unexpected %s message from an agent", wp_msg_name(m->type));
        return refuse(s, c, WP_EKIND, why);
    }
}

void coll_ingest_detach(struct coll_server *s, struct coll_agent *a, struct coll_conn *c)
{
    (void)s;
    if (a->conn != c) {
        return;
    }
    a->conn = NULL;
    a->connected = 0;
    a->last_seen = wp_clock_now_ms() / 1000;
    a->dirty = 1;
    WP_INFO("collector", "agent disconnected agent=%s committed=%llu", a->id,
            (unsigned long long)a->committed);
}

/* ---- replay ------------------------------------------------------------------------------ */

static int replay_one(void *arg, uint64_t segment, const char *agent, uint64_t seq,
                      const uint8_t *payload, size_t len)
{
    struct coll_server *s = arg;
    struct wp_msg m;
    uint32_t nvals = 0;
    char why[256];

    wp_msg_init(&m);
    struct coll_agent *a = agent_get(s, agent);
    int rc = wp_msg_decode(&m, payload, len);
    if (rc == 0 && m.type != WP_MSG_BATCH) {
        rc = WP_EKIND;
    }
    if (rc == 0) {
        rc = batch_check(a, &m, &nvals, why, sizeof(why));
    } else {
        snprintf(why, sizeof(why), "%s", wp_strerror(rc));
    }
    if (rc < 0) {
        WP_WARN("collector", "journal record agent=%s seq=%llu skipped: %s", agent,
                (unsigned long long)seq, why);
    } else {
        batch_apply(s, a, &m, segment, 0);
        s->st.replayed_batches++;
        s->st.replayed_values += nvals;
    }
    if (seq > a->committed) {
        a->committed = seq;
    }
    if (seq > a->appended) {
        a->appended = seq;
    }
    wp_msg_cleanup(&m);
    return 0;
}

int coll_ingest_replay(struct coll_server *s)
{
    int rc = wp_journal_replay(s->journal, replay_one, s);
    if (rc < 0) {
        WP_ERROR("collector", "journal replay failed: %s", wp_strerror(rc));
        return rc;
    }
    WP_INFO("collector", "journal replayed batches=%llu values=%llu",
            (unsigned long long)s->st.replayed_batches, (unsigned long long)s->st.replayed_values);
    return 0;
}
