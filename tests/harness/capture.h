/* SPDX-License-Identifier: Apache-2.0 */
/* Tests: a struct wp_sink that records every row a probe emits, looked up by "group/inst/field". */
#ifndef WP_TESTS_CAPTURE_H
#define WP_TESTS_CAPTURE_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "probe.h"
#include "wp/mem.h"
#include "wp/wire.h"

/* One emitted row; strings are copies. */
struct cap_row {
    int64_t ts_ms;
    char *group;
    char *inst;
    uint32_t nfields;
    char *fields[WP_SERIES_MAX_FIELDS];
    double vals[WP_SERIES_MAX_FIELDS];
};

/*
 * Use: capture_init(&c, ts); probe sample(p, &c.sink); look up values; capture_clear(&c)
 * between samples (and set c.sink.ts_ms); capture_cleanup(&c) at the end.
 * bad counts rows that break the sink contract (names not [a-z0-9_]{1,19}, no fields or more
 * than WP_SERIES_MAX_FIELDS, instance of WP_INST_MAX bytes or more, a (group, inst) row twice
 * in one round); tests assert it stays 0.
 */
/* One event, check result or state (kind: WP_REC_EVENT, WP_REC_CHECK, WP_REC_STATE).
 * name: event source / check / object; group: event rule / state group; text: event text /
 * check output / state; raw, info: a state's raw state and call info ("" when absent);
 * level: severity / status; fields: event fields k, v, ..., NULL. */
struct cap_rec {
    int kind;
    int64_t ts_ms;
    char *name, *group, *text, *raw, *info;
    unsigned level;
    char *fields[2 * WP_EVENT_MAX_FIELDS + 1];
};

struct capture {
    struct wp_sink sink;
    struct cap_row *rows;
    size_t n, cap;
    unsigned bad;
    struct cap_rec *recs; /* events, checks, states in the order they came */
    size_t nrecs, recs_cap;
};

static inline int cap_valid_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 19) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_')) {
            return 0;
        }
    }
    return 1;
}

/* The row for (group, inst) in this round, or NULL. */
static inline const struct cap_row *capture_row(const struct capture *c, const char *group,
                                                const char *inst)
{
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->rows[i].group, group) == 0 && strcmp(c->rows[i].inst, inst) == 0) {
            return &c->rows[i];
        }
    }
    return NULL;
}

static inline void capture_metric(struct wp_sink *s, const struct wp_series_kind *kind,
                                  const char *inst, const double *vals)
{
    struct capture *c = s->ctx;
    struct cap_row *r = NULL;

    if (kind->nfields == 0 || kind->nfields > WP_SERIES_MAX_FIELDS ||
        !cap_valid_name(kind->group) || strlen(inst) >= WP_INST_MAX) {
        c->bad++;
        return;
    }
    if (capture_row(c, kind->group, inst) != NULL) {
        c->bad++;
    }
    if (c->n == c->cap) {
        c->cap = c->cap != 0 ? c->cap * 2 : 64;
        c->rows = wp_xrealloc(c->rows, c->cap * sizeof(*c->rows));
    }
    r = &c->rows[c->n++];
    memset(r, 0, sizeof(*r));
    r->ts_ms = s->ts_ms;
    r->group = wp_xstrdup(kind->group);
    r->inst = wp_xstrdup(inst);
    r->nfields = kind->nfields;
    for (uint32_t i = 0; i < kind->nfields; i++) {
        if (!cap_valid_name(kind->fields[i])) {
            c->bad++;
        }
        r->fields[i] = wp_xstrdup(kind->fields[i]);
        r->vals[i] = vals[i];
    }
}

static inline struct cap_rec *capture_rec_new(struct capture *c, int kind, const char *name,
                                               const char *group, const char *text,
                                               unsigned level)
{
    if (c->nrecs == c->recs_cap) {
        c->recs_cap = c->recs_cap ? c->recs_cap * 2 : 16;
        c->recs = (struct cap_rec *)wp_xrealloc(c->recs, c->recs_cap * sizeof(*c->recs));
    }
    struct cap_rec *r = &c->recs[c->nrecs++];
    memset(r, 0, sizeof(*r));
    r->kind = kind;
    r->ts_ms = c->sink.ts_ms;
    r->name = wp_xstrdup(name != NULL ? name : "");
    r->group = wp_xstrdup(group != NULL ? group : "");
    r->text = wp_xstrdup(text != NULL ? text : "");
    r->raw = wp_xstrdup("");
    r->info = wp_xstrdup("");
    r->level = level;
    return r;
}

static inline void capture_event(struct wp_sink *s, const char *src, const char *rule,
                                 unsigned sev, const char *text, const char *const *fields)
{
    struct capture *c = (struct capture *)s->ctx;
    struct cap_rec *r = capture_rec_new(c, WP_REC_EVENT, src, rule, text, sev);
    for (size_t i = 0; fields != NULL && fields[i] != NULL && fields[i + 1] != NULL &&
                       i < 2 * WP_EVENT_MAX_FIELDS;
         i += 2) {
        r->fields[i] = wp_xstrdup(fields[i]);
        r->fields[i + 1] = wp_xstrdup(fields[i + 1]);
    }
    if (sev > 3) {
        c->bad++;
    }
}

static inline void capture_check(struct wp_sink *s, const char *check, unsigned status,
                                 const char *output)
{
    struct capture *c = (struct capture *)s->ctx;
    capture_rec_new(c, WP_REC_CHECK, check, NULL, output, status);
    if (status > 3) {
        c->bad++;
    }
}

static inline void capture_state(struct wp_sink *s, const char *object, const char *group,
                                 const char *state, const char *raw, const char *info)
{
    struct cap_rec *r =
        capture_rec_new((struct capture *)s->ctx, WP_REC_STATE, object, group, state, 0);
    free(r->raw);
    free(r->info);
    r->raw = wp_xstrdup(raw != NULL ? raw : "");
    r->info = wp_xstrdup(info != NULL ? info : "");
}

/* The last captured record of kind whose name is name (NULL: any name), or NULL. */
static inline const struct cap_rec *capture_rec(const struct capture *c, int kind,
                                                 const char *name)
{
    for (size_t i = c->nrecs; i > 0; i--) {
        const struct cap_rec *r = &c->recs[i - 1];
        if (r->kind == kind && (name == NULL || strcmp(r->name, name) == 0)) {
            return r;
        }
    }
    return NULL;
}

/* A field of a captured event, or NULL. */
static inline const char *capture_field(const struct cap_rec *r, const char *key)
{
    for (size_t i = 0; r->fields[i] != NULL; i += 2) {
        if (strcmp(r->fields[i], key) == 0) {
            return r->fields[i + 1];
        }
    }
    return NULL;
}

static inline void capture_init(struct capture *c, int64_t ts_ms, uint32_t step_s)
{
    memset(c, 0, sizeof(*c));
    c->sink.ts_ms = ts_ms;
    c->sink.step_s = step_s;
    c->sink.metric = capture_metric;
    c->sink.event = capture_event;
    c->sink.check = capture_check;
    c->sink.state = capture_state;
    c->sink.ctx = c;
}

/* Forget the rows (keeps ts_ms and the bad count). */
static inline void capture_clear(struct capture *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->rows[i].group);
        free(c->rows[i].inst);
        for (uint32_t k = 0; k < c->rows[i].nfields; k++) {
            free(c->rows[i].fields[k]);
        }
    }
    c->n = 0;
    for (size_t i = 0; i < c->nrecs; i++) {
        free(c->recs[i].name);
        free(c->recs[i].group);
        free(c->recs[i].text);
        free(c->recs[i].raw);
        free(c->recs[i].info);
        for (size_t k = 0; c->recs[i].fields[k] != NULL; k++) {
            free(c->recs[i].fields[k]);
        }
    }
    c->nrecs = 0;
}

static inline void capture_cleanup(struct capture *c)
{
    capture_clear(c);
    free(c->rows);
    c->rows = NULL;
    c->cap = 0;
    free(c->recs);
    c->recs = NULL;
    c->recs_cap = 0;
}

/* Rows of group in this round. */
static inline size_t capture_count(const struct capture *c, const char *group)
{
    size_t n = 0;

    for (size_t i = 0; i < c->n; i++) {
        n += strcmp(c->rows[i].group, group) == 0;
    }
    return n;
}

/*
 * Find "group/inst/field": the group ends at the first '/', the field starts after the last
 * one, the instance is what lies between ("df///used_pct" is mount "/", "mem//total" the
 * empty instance, "df//u01/used_pct" mount "/u01"). Returns 0 and *out, or -1 if absent.
 */
static inline int capture_find(const struct capture *c, const char *path, double *out)
{
    const char *a = strchr(path, '/');
    const char *b = strrchr(path, '/');
    char group[WP_NAME_MAX];
    char inst[WP_INST_MAX];

    if (a == NULL || a == b || (size_t)(a - path) >= sizeof(group) ||
        (size_t)(b - a - 1) >= sizeof(inst)) {
        return -1;
    }
    memcpy(group, path, (size_t)(a - path));
    group[a - path] = '\0';
    memcpy(inst, a + 1, (size_t)(b - a - 1));
    inst[b - a - 1] = '\0';
    const struct cap_row *r = capture_row(c, group, inst);
    if (r == NULL) {
        return -1;
    }
    for (uint32_t i = 0; i < r->nfields; i++) {
        if (strcmp(r->fields[i], b + 1) == 0) {
            *out = r->vals[i];
            return 0;
        }
    }
    return -1;
}

/* capture_find() for tests: the value, or a sentinel (-1e300) when the series is absent, so
 * that absent and NaN differ. */
#define CAP_ABSENT (-1e300)
static inline double capture_get(const struct capture *c, const char *path)
{
    double v = CAP_ABSENT;

    if (capture_find(c, path, &v) < 0) {
        return CAP_ABSENT;
    }
    return v;
}

#endif
