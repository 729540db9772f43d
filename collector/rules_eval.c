/* SPDX-License-Identifier: Apache-2.0 */
/* The rules engine: windows, state machines, suppression; see rules_eval.h. */
#include "rules_eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"

#define UPDATE_EVERY_MS 60000 /* a firing problem re-signals its value at most this often */
#define MAX_WINDOW_SAMPLES 100000u /* per series: bounds memory whatever the window */
#define MAX_LOG_EVENTS 10000u      /* per problem */
/* The reason of an "unsuppressed" entry written at the first pass after a restart: the
 * suppression the store recorded no longer holds, and it ended while nobody was looking. */
#define RESTART_LIFT "suppression ended while the collector was down"

/* ---- a small string-keyed hash table ----------------------------------------------------- */

struct hent {
    char *key;
    void *val;
    struct hent *next;
};

struct hmap {
    struct hent **b;
    size_t cap, n;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s != '\0'; s++) {
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    }
    return h;
}

static void *hmap_get(const struct hmap *m, const char *key)
{
    if (m->cap == 0) {
        return NULL;
    }
    for (struct hent *e = m->b[hash_str(key) & (m->cap - 1)]; e != NULL; e = e->next) {
        if (strcmp(e->key, key) == 0) {
            return e->val;
        }
    }
    return NULL;
}

static void hmap_put(struct hmap *m, const char *key, void *val)
{
    if (m->n + 1 > m->cap / 2 * 3 || m->cap == 0) {
        size_t ncap = m->cap == 0 ? 64 : m->cap * 2;
        struct hent **nb = wp_xcalloc(ncap, sizeof(*nb));
        for (size_t i = 0; i < m->cap; i++) {
            struct hent *e = m->b[i];
            while (e != NULL) {
                struct hent *nx = e->next;
                size_t k = hash_str(e->key) & (ncap - 1);
                e->next = nb[k];
                nb[k] = e;
                e = nx;
            }
        }
        free(m->b);
        m->b = nb;
        m->cap = ncap;
    }
    size_t k = hash_str(key) & (m->cap - 1);
    for (struct hent *e = m->b[k]; e != NULL; e = e->next) {
        if (strcmp(e->key, key) == 0) {
            e->val = val;
            return;
        }
    }
    struct hent *e = wp_xmalloc(sizeof(*e));
    e->key = wp_xstrdup(key);
    e->val = val;
    e->next = m->b[k];
    m->b[k] = e;
    m->n++;
}

static void hmap_del(struct hmap *m, const char *key)
{
    if (m->cap == 0) {
        return;
    }
    for (struct hent **p = &m->b[hash_str(key) & (m->cap - 1)]; *p != NULL; p = &(*p)->next) {
        if (strcmp((*p)->key, key) == 0) {
            struct hent *e = *p;
            *p = e->next;
            free(e->key);
            free(e);
            m->n--;
            return;
        }
    }
}

static void hmap_clear(struct hmap *m, void (*fr)(void *))
{
    for (size_t i = 0; i < m->cap; i++) {
        struct hent *e = m->b[i];
        while (e != NULL) {
            struct hent *nx = e->next;
            if (fr != NULL) {
                fr(e->val);
            }
            free(e->key);
            free(e);
            e = nx;
        }
    }
    free(m->b);
    memset(m, 0, sizeof(*m));
}

static int state_active(int st)
{
    return st == RS_FIRING || st == RS_RECOVERING;
}

/* ---- model ----------------------------------------------------------------------------------- */

struct saved {
    int state;
    int64_t since;
    int64_t last_signal;
    int supp;     /* -1 unknown (a restart: only the store knows), else the suppressed flag */
    char *reason; /* its reason when supp is 1 */
};

static void saved_free(void *v)
{
    struct saved *sv = v;
    free(sv->reason);
    free(sv);
}

struct lgroup;

struct line {
    char *host_line; /* key: host \x1f line */
    struct rules_host *h;
    char *name, *group, *state;
    int64_t since;
    struct lgroup *g; /* its group on its host */
    size_t gi;        /* its index in g->v */
    int changed;      /* since is a change we saw (not the first report of the line) */
};

/* The lines of one group on one host (share and mass-change rules count over it). */
struct lgroup {
    struct line **v;
    size_t n, cap;
};

struct prob;

struct rules_host {
    char *host, *agent;
    char **labels; /* k, v, ..., NULL */
    size_t nlabels;
    int64_t last_seen;
    int bound;          /* host-wide no-data problems made for the current rule set */
    struct prob *probs; /* every problem of this host (chained by hnext) */
    struct prob *active; /* its firing or recovering problems (anext/aprev) */
    struct prob **nodata; /* its host-wide no-data problems */
    size_t nnodata;
    struct rules_host *next;
};

struct rules_series {
    struct rules_host *h;
    char *metric, *instance;
    int64_t *t;
    double *v;
    size_t head, n, cap; /* sliding array: live samples are [head, head + n) */
    int64_t keep_ms;
    int64_t last_ts;
    struct prob **probs;
    size_t nprobs;
    struct rules_series *next;
};

struct prob {
    const struct rule *r;
    struct rules_host *h;
    struct rules_series *se; /* metric rules */
    char *fp;
    char *key_value; /* instance / source / line / check / group, for templates */
    enum rules_state st;
    int64_t since;
    int64_t last_signal;
    double value;
    int has_value;
    int suppressed;
    char *supp_reason;
    /* restored after a restart while firing: what the store recorded of its suppression is
     * unknown here, so its first pass reports the suppression either way (the store writes
     * only a change) */
    int supp_sync;
    int64_t *ev; /* log: match times (ring-less, compacted) */
    size_t nev, evcap;
    /* log, restored after a restart or a reload: the matches before that are not known, so
     * fewer than `count` in the window is no verdict until this time (-1: its next window
     * step sets it a window ahead; 0: none) */
    int64_t hold_until;
    int64_t consecutive; /* check */
    char *text;          /* last log line / check output */
    int in_active;
    struct prob *hnext, *next;
    struct prob *anext, *aprev; /* the host's active list */
};

/* Rules of one exact metric name (the index that keeps binding cheap with many rules). */
struct rlist {
    size_t *idx;
    size_t n;
};

struct rules_eng {
    const struct rule_set *rs;
    struct hmap by_metric; /* exact metric -> struct rlist */
    struct rlist glob_rules; /* series rules whose metric is a glob */
    struct rules_sink sink;
    struct hmap hosts;   /* host \x1f agent -> rules_host */
    struct hmap probs;   /* fp -> prob */
    struct hmap restore; /* fp -> saved */
    /* rule \x1f host -> how many of the saved states in restore are firing or recovering:
     * a restored parent or mass change not yet seen again still counts (silence resolves
     * nothing; its data will say when it clears) */
    struct hmap rest_active;
    struct hmap lines;   /* host \x1f line -> line */
    struct hmap lgroups; /* host \x1f group -> lgroup */
    struct rules_host *hlist;
    struct rules_series *slist;
    struct prob *plist;
    struct prob **timed; /* problems the tick must look at: series no-data, log, line state */
    size_t ntimed;
    /* restore may hold log states the next tick should make problems again (they wait for no
     * event: their window runs out by the clock) */
    int rest_scan;
    struct rules_eng_stats st;
    /* runtime maintenance windows (maint.c) beside the config's, or NULL */
    const char *(*maint_fn)(void *arg, const char *host, int64_t now_ms);
    void *maint_arg;
};

/* ---- saved states not seen again yet ---------------------------------------------------- */

/* "rule\x1fhost" of a fingerprint "rule|host[|k=v...]". */
static void fp_rule_host(const char *fp, char *buf, size_t len)
{
    const char *a = strchr(fp, '|');
    const char *b = a != NULL ? strchr(a + 1, '|') : NULL;

    if (a == NULL) {
        snprintf(buf, len, "%s\x1f", fp);
        return;
    }
    snprintf(buf, len, "%.*s\x1f%.*s", (int)(a - fp), fp,
             (int)(b != NULL ? (size_t)(b - a - 1) : strlen(a + 1)), a + 1);
}

/* A saved state of fp enters (delta 1) or leaves (-1) the restore map. */
static void rest_count(struct rules_eng *e, const char *fp, int state, int delta)
{
    char key[600];

    if (!state_active(state)) {
        return;
    }
    fp_rule_host(fp, key, sizeof(key));
    size_t *n = hmap_get(&e->rest_active, key);
    if (n == NULL) {
        if (delta < 0) {
            return;
        }
        n = wp_xcalloc(1, sizeof(*n));
        hmap_put(&e->rest_active, key, n);
    }
    if (delta > 0) {
        (*n)++;
    } else if (--*n == 0) {
        hmap_del(&e->rest_active, key);
        free(n);
    }
}

/* Does a saved, not yet seen again state say that rule fires on host? */
static int rest_firing(struct rules_eng *e, const char *rule, const char *host)
{
    char key[600];

    if (e->rest_active.n == 0) {
        return 0;
    }
    snprintf(key, sizeof(key), "%s\x1f%s", rule, host);
    return hmap_get(&e->rest_active, key) != NULL;
}

/* ---- labels and templates ---------------------------------------------------------------- */

struct ctx {
    const struct rules_host *h;
    const char *metric, *instance, *source, *line, *group, *check;
};

static const char *label_of(const struct ctx *c, const char *k)
{
    if (strcmp(k, "host") == 0) {
        return c->h->host;
    }
    if (strcmp(k, "agent") == 0) {
        return c->h->agent;
    }
    if (strcmp(k, "metric") == 0) {
        return c->metric;
    }
    if (strcmp(k, "instance") == 0) {
        return c->instance;
    }
    if (strcmp(k, "source") == 0) {
        return c->source;
    }
    if (strcmp(k, "line") == 0) {
        return c->line;
    }
    if (strcmp(k, "group") == 0) {
        return c->group;
    }
    if (strcmp(k, "check") == 0) {
        return c->check;
    }
    for (size_t i = 0; i + 1 < c->h->nlabels; i += 2) {
        if (strcmp(c->h->labels[i], k) == 0) {
            return c->h->labels[i + 1];
        }
    }
    return NULL;
}

/* Does rule r select this context (metric glob, matchers, host groups)? */
static int selects(const struct rule_set *rs, const struct rule *r, const struct ctx *c)
{
    if (r->metric != NULL && (c->metric == NULL || !rules_glob(r->metric, c->metric))) {
        return 0;
    }
    for (size_t i = 0; i < r->nmatch; i++) {
        if (!rules_matcher_ok(&r->match[i], label_of(c, r->match[i].label))) {
            return 0;
        }
    }
    if (r->ngroups > 0) {
        size_t g = 0;
        while (g < r->ngroups && !rules_host_in_group(rs, r->groups[g], c->h->host)) {
            g++;
        }
        if (g == r->ngroups) {
            return 0;
        }
    }
    return 1;
}

static char *fingerprint(const struct rule *r, const struct ctx *c)
{
    size_t cap = 256, len = 0;
    int keyed = 0;
    char *s = wp_xmalloc(cap);
    len = (size_t)snprintf(s, cap, "%s|%s", r->name, c->h->host);
    for (size_t i = 0; i < r->nkey && i < 16; i++) {
        const char *v = label_of(c, r->key[i]);
        if (v == NULL || *v == '\0') {
            continue;
        }
        size_t need = len + strlen(r->key[i]) + strlen(v) + 3;
        if (need > cap) {
            cap = need * 2;
            s = wp_xrealloc(s, cap);
        }
        len += (size_t)snprintf(s + len, cap - len, "|%s=%s", r->key[i], v);
        keyed = 1;
    }
    /* events always tell their problems apart by what they are about */
    static const char *const natural[] = {
        [RULE_LOG] = "source", [RULE_LINE_STATE] = "line", [RULE_LINE_SHARE] = "group",
        [RULE_CHECK] = "check", [RULE_LINE_MASS] = "group"};
    const char *nk = (size_t)r->kind < sizeof(natural) / sizeof(natural[0]) ? natural[r->kind]
                                                                           : NULL;
    const char *nv = nk != NULL ? label_of(c, nk) : NULL;
    if (!keyed && nv != NULL && *nv != '\0') {
        size_t need = len + strlen(nk) + strlen(nv) + 3;
        if (need > cap) {
            s = wp_xrealloc(s, need);
            cap = need;
        }
        len += (size_t)snprintf(s + len, cap - len, "|%s=%s", nk, nv);
    }
    return s;
}

static void fmt_value(char *buf, size_t len, double v)
{
    if (isnan(v)) {
        snprintf(buf, len, "-");
    } else if (fabs(v) >= 1e15 || v == floor(v)) {
        snprintf(buf, len, "%.15g", v);
    } else {
        snprintf(buf, len, "%.2f", v);
    }
}

/* Expand {host} {agent} {instance} {metric} {rule} {value} {threshold} {label.NAME} ... */
static char *expand(const char *tpl, const struct prob *p, const struct ctx *c)
{
    size_t cap = 256, len = 0;
    char *out = wp_xmalloc(cap);

    out[0] = '\0';
    if (tpl == NULL) {
        return out;
    }
    for (const char *s = tpl; *s != '\0';) {
        const char *rep = NULL;
        char num[64];
        const char *close = (*s == '{') ? strchr(s, '}') : NULL;
        size_t adv = 1;
        if (close != NULL && close - s < 80) {
            char name[80];
            size_t nl = (size_t)(close - s - 1);
            memcpy(name, s + 1, nl);
            name[nl] = '\0';
            if (strcmp(name, "rule") == 0) {
                rep = p->r->name;
            } else if (strcmp(name, "value") == 0) {
                fmt_value(num, sizeof(num), p->has_value ? p->value : NAN);
                rep = num;
            } else if (strcmp(name, "threshold") == 0) {
                double th = p->r->kind == RULE_FORECAST ? p->r->fc_limit
                            : p->r->kind == RULE_LINE_SHARE || p->r->kind == RULE_LINE_MASS
                                ? p->r->share_above_pct
                                : p->r->when.threshold;
                fmt_value(num, sizeof(num), th);
                rep = num;
            } else if (strcmp(name, "text") == 0) {
                rep = p->text != NULL ? p->text : "";
            } else if (strcmp(name, "suppressed") == 0) {
                rep = p->supp_reason != NULL ? p->supp_reason : "";
            } else if (strncmp(name, "label.", 6) == 0) {
                rep = label_of(c, name + 6);
            } else {
                rep = label_of(c, name);
            }
            if (rep != NULL) {
                adv = nl + 2;
            }
        }
        const char *src = rep != NULL ? rep : s;
        size_t n = rep != NULL ? strlen(rep) : 1;
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            out = wp_xrealloc(out, cap);
        }
        memcpy(out + len, src, n);
        len += n;
        out[len] = '\0';
        s += adv;
    }
    return out;
}

static void prob_ctx(const struct prob *p, struct ctx *c)
{
    memset(c, 0, sizeof(*c));
    c->h = p->h;
    if (p->se != NULL) {
        c->metric = p->se->metric;
        c->instance = p->se->instance;
    }
    switch (p->r->kind) {
    case RULE_LOG:
        c->source = p->key_value;
        break;
    case RULE_LINE_STATE:
        c->line = p->key_value;
        break;
    case RULE_LINE_SHARE:
    case RULE_LINE_MASS:
        c->group = p->key_value;
        break;
    case RULE_CHECK:
        c->check = p->key_value;
        break;
    default:
        break;
    }
}

/* ---- signals ----------------------------------------------------------------------------- */

static void json_escape(char *dst, size_t len, const char *s)
{
    size_t o = 0;
    for (; s != NULL && *s != '\0' && o + 7 < len; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            dst[o++] = '\\';
            dst[o++] = (char)ch;
        } else if (ch < 0x20) {
            o += (size_t)snprintf(dst + o, len - o, "\\u%04x", ch);
        } else {
            dst[o++] = (char)ch;
        }
    }
    dst[o] = '\0';
}

static void signal_fire(struct rules_eng *e, struct prob *p, int64_t now)
{
    struct ctx c;
    struct inc_signal sig;
    char values[1024], num[64], esc[512];

    prob_ctx(p, &c);
    fmt_value(num, sizeof(num), p->has_value ? p->value : NAN);
    json_escape(esc, sizeof(esc), p->text);
    snprintf(values, sizeof(values), "{\"value\": %s, \"since_ms\": %lld%s%s%s}",
             p->has_value && isfinite(p->value) ? num : "null", (long long)p->since,
             p->text != NULL ? ", \"text\": \"" : "", p->text != NULL ? esc : "",
             p->text != NULL ? "\"" : "");
    char *summary = expand(p->r->summary != NULL ? p->r->summary : "{rule} on {host}", p, &c);
    char *desc = expand(p->r->description, p, &c);
    char *runbook = expand(p->r->runbook, p, &c);
    memset(&sig, 0, sizeof(sig));
    sig.fingerprint = p->fp;
    sig.rule = p->r->name;
    sig.host = p->h->host;
    sig.impact = (int)p->r->impact;
    sig.urgency = (int)p->r->urgency;
    sig.category = p->r->category != NULL ? p->r->category : "general";
    sig.summary = summary;
    sig.description = desc;
    sig.runbook = runbook;
    sig.values_json = values;
    if (e->sink.fire(e->sink.arg, &sig, now) < 0) {
        wp_log(WP_LOG_ERROR, "rules", "could not record incident %s", p->fp);
    }
    p->last_signal = now;
    free(summary);
    free(desc);
    free(runbook);
}

static void persist(struct rules_eng *e, struct prob *p)
{
    if (p->st == RS_OK) {
        if (e->sink.state_del != NULL) {
            e->sink.state_del(e->sink.arg, p->fp);
        }
    } else if (e->sink.state_put != NULL) {
        e->sink.state_put(e->sink.arg, p->fp, (int)p->st, p->since);
    }
}

/* Keep the host's active list (firing and recovering problems) in step with p's state:
 * suppression and the tick only ever look at that list. */
static void active_sync(struct prob *p)
{
    int want = p->st == RS_FIRING || p->st == RS_RECOVERING;
    struct rules_host *h = p->h;

    if (want == p->in_active) {
        return;
    }
    if (want) {
        p->aprev = NULL;
        p->anext = h->active;
        if (h->active != NULL) {
            h->active->aprev = p;
        }
        h->active = p;
    } else {
        if (p->aprev != NULL) {
            p->aprev->anext = p->anext;
        } else {
            h->active = p->anext;
        }
        if (p->anext != NULL) {
            p->anext->aprev = p->aprev;
        }
        p->anext = p->aprev = NULL;
    }
    p->in_active = want;
}

/* What suppresses every problem of a host right now: an open maintenance window, or the
 * host being silent (built in). Computed once per host per pass. */
struct host_supp {
    const char *maint;         /* maintenance window name, or NULL */
    const struct prob *silent; /* the firing host-wide no-data problem, or NULL */
};

static void host_bind(struct rules_eng *e, struct rules_host *h);

static void host_supp_get(struct rules_eng *e, struct rules_host *h, int64_t now,
                          struct host_supp *hs)
{
    /* its host-wide no-data problems first: a silence saved before a restart counts from the
     * first pass, not only after the next tick */
    host_bind(e, h);
    hs->maint = rules_in_maintenance(e->rs, h->host, now);
    if (hs->maint == NULL && e->maint_fn != NULL) {
        hs->maint = e->maint_fn(e->maint_arg, h->host, now);
    }
    hs->silent = NULL;
    for (size_t i = 0; i < h->nnodata; i++) {
        if (h->nodata[i]->st == RS_FIRING || h->nodata[i]->st == RS_RECOVERING) {
            hs->silent = h->nodata[i];
            break;
        }
    }
}

/* The group of a line problem's line ("" when the line is gone). */
static const char *line_group(struct rules_eng *e, const struct prob *p)
{
    char key[600];
    snprintf(key, sizeof(key), "%s\x1f%s", p->h->host, p->key_value != NULL ? p->key_value : "");
    const struct line *l = hmap_get(&e->lines, key);
    return l != NULL ? l->group : "";
}

/* A line_state or line_share problem whose group has a firing mass change on its host: the
 * name of that mass-change rule, else NULL. */
static const char *mass_change_of(struct rules_eng *e, const struct prob *p,
                                  const char **group)
{
    if (p->r->kind != RULE_LINE_STATE && p->r->kind != RULE_LINE_SHARE) {
        return NULL;
    }
    for (struct prob *q = p->h->active; q != NULL; q = q->anext) {
        if (q->r->kind != RULE_LINE_MASS || q->key_value == NULL) {
            continue;
        }
        if (*group == NULL) {
            *group = p->r->kind == RULE_LINE_SHARE ? (p->key_value != NULL ? p->key_value : "")
                                                    : line_group(e, p);
        }
        if (strcmp(q->key_value, *group) == 0) {
            return q->r->name;
        }
    }
    /* a mass change saved before a restart whose lines have not all reported again: it
     * still holds (the first report of a line is no change, so nothing else can tell) */
    for (size_t i = 0; i < e->rs->nrules; i++) {
        const struct rule *m = &e->rs->rules[i];
        if (m->kind != RULE_LINE_MASS || !rest_firing(e, m->name, p->h->host)) {
            continue;
        }
        if (*group == NULL) {
            *group = p->r->kind == RULE_LINE_SHARE ? (p->key_value != NULL ? p->key_value : "")
                                                   : line_group(e, p);
        }
        struct ctx c;
        memset(&c, 0, sizeof(c));
        c.h = p->h;
        c.group = *group;
        char *fp = fingerprint(m, &c);
        const struct saved *sv = hmap_get(&e->restore, fp);
        free(fp);
        if (sv != NULL && state_active(sv->state)) {
            return m->name;
        }
    }
    return NULL;
}

/* Is this problem suppressed now, and why (maintenance, a silent host, a firing parent, a
 * mass change of its group)? */
static const char *suppress_reason(struct rules_eng *e, struct prob *p,
                                   const struct host_supp *hs, char *buf, size_t len)
{
    if (hs->maint != NULL) {
        snprintf(buf, len, "maintenance %s", hs->maint);
        return buf;
    }
    if (hs->silent != NULL && hs->silent != p) {
        snprintf(buf, len, "host %s silent (%s)", p->h->host, hs->silent->r->name);
        return buf;
    }
    const char *group = NULL;
    const char *mass = mass_change_of(e, p, &group);
    if (mass != NULL) {
        snprintf(buf, len, "mass change of group %s on %s (%s)", group, p->h->host, mass);
        return buf;
    }
    for (size_t d = 0; d < e->rs->ndeps; d++) {
        const struct rule_dep *dep = &e->rs->deps[d];
        if (strcmp(dep->parent, p->r->name) == 0) {
            continue;
        }
        int hit = 0;
        for (size_t k = 0; k < dep->nsuppress && !hit; k++) {
            hit = strcmp(dep->suppress[k], "*") == 0 || strcmp(dep->suppress[k], p->r->name) == 0;
        }
        if (!hit) {
            continue;
        }
        for (struct prob *q = p->h->active; q != NULL; q = q->anext) {
            if (q != p && strcmp(q->r->name, dep->parent) == 0) {
                snprintf(buf, len, "%s on %s", dep->parent, p->h->host);
                return buf;
            }
        }
        /* a parent firing when the collector stopped that has not reported again */
        if (rest_firing(e, dep->parent, p->h->host)) {
            snprintf(buf, len, "%s on %s", dep->parent, p->h->host);
            return buf;
        }
    }
    return NULL;
}

/* Bring the problem's suppressed flag in line with its host's situation. */
static void update_suppression(struct rules_eng *e, struct prob *p, const struct host_supp *hs,
                               int64_t now)
{
    char buf[256];
    const char *why;

    if (p->st != RS_FIRING && p->st != RS_RECOVERING) {
        return;
    }
    why = suppress_reason(e, p, hs, buf, sizeof(buf));
    if (p->supp_sync) {
        /* The first pass of a problem restored after a restart: the store may hold a
         * suppression that ended while the collector was down (or none where one began),
         * so it is told either way and writes only a change. What this pass knows: the
         * windows, and the saved states of the host's silence, parents and mass changes
         * (kept until their own data says otherwise). */
        p->supp_sync = 0;
        p->suppressed = why != NULL;
        free(p->supp_reason);
        p->supp_reason = why != NULL ? wp_xstrdup(why) : NULL;
        e->st.suppressed += why != NULL ? 1 : 0;
        e->sink.suppress(e->sink.arg, p->fp, why != NULL, why != NULL ? why : RESTART_LIFT, now);
        return;
    }
    if ((why != NULL) == (p->suppressed != 0) &&
        (why == NULL || (p->supp_reason != NULL && strcmp(p->supp_reason, why) == 0))) {
        return;
    }
    p->suppressed = why != NULL;
    free(p->supp_reason);
    p->supp_reason = why != NULL ? wp_xstrdup(why) : NULL;
    e->st.suppressed += why != NULL ? 1 : 0;
    e->sink.suppress(e->sink.arg, p->fp, why != NULL, why != NULL ? why : "no longer", now);
}

static void host_suppression(struct rules_eng *e, struct rules_host *h, int64_t now)
{
    struct host_supp hs;

    if (h->active == NULL) {
        return;
    }
    host_supp_get(e, h, now, &hs);
    for (struct prob *q = h->active; q != NULL; q = q->anext) {
        update_suppression(e, q, &hs, now);
    }
}

static void go_firing(struct rules_eng *e, struct prob *p, int64_t now)
{
    p->st = RS_FIRING;
    active_sync(p);
    e->st.fired++;
    signal_fire(e, p, now);
    persist(e, p);
    /* suppressed at birth when its parent already fires, and its own children now */
    host_suppression(e, p->h, now);
}

static void go_ok(struct rules_eng *e, struct prob *p, int64_t now)
{
    int was = p->st == RS_FIRING || p->st == RS_RECOVERING;
    p->st = RS_OK;
    p->since = 0;
    active_sync(p);
    persist(e, p);
    if (was) {
        e->st.cleared++;
        if (p->suppressed) {
            p->suppressed = 0;
            free(p->supp_reason);
            p->supp_reason = NULL;
        }
        e->sink.clear(e->sink.arg, p->fp, now);
        host_suppression(e, p->h, now);
    }
}

/*
 * Step the state machine: holds = the firing condition holds (1), does not (0) or no verdict
 * (-1); recovers = the recovery condition holds (1/0/-1). at = the time of the evidence.
 */
static void step(struct rules_eng *e, struct prob *p, int holds, int recovers, int64_t at,
                 int64_t now)
{
    const struct rule *r = p->r;
    /* a line state's duration is part of its condition */
    int64_t for_ms = r->for_ms + (r->kind == RULE_LINE_STATE ? r->state_for_ms : 0);

    e->st.evals++;
    switch (p->st) {
    case RS_OK:
        if (holds == 1) {
            p->st = RS_PENDING;
            p->since = at;
            if (for_ms <= 0) {
                go_firing(e, p, now);
            } else {
                persist(e, p);
            }
        }
        break;
    case RS_PENDING:
        if (holds == 0) {
            p->st = RS_OK;
            p->since = 0;
            persist(e, p);
        } else if (holds == 1 && at - p->since >= for_ms) {
            go_firing(e, p, now);
        }
        break;
    case RS_FIRING:
        if (recovers == 1) {
            p->st = RS_RECOVERING;
            p->since = at;
            if (r->recover_for_ms <= 0) {
                go_ok(e, p, now);
            } else {
                persist(e, p);
            }
        } else if (holds == 1 && now - p->last_signal >= UPDATE_EVERY_MS) {
            signal_fire(e, p, now);
        }
        break;
    case RS_RECOVERING:
        if (recovers == 0 || holds == 1) {
            p->st = RS_FIRING; /* still the same incident: nothing to signal */
            persist(e, p);
        } else if (recovers == 1 && at - p->since >= r->recover_for_ms) {
            go_ok(e, p, now);
        }
        break;
    }
    active_sync(p);
}

/* ---- problems ------------------------------------------------------------------------------ */

/* A new problem of fingerprint fp (taken over), with its saved state if there is one. */
static struct prob *prob_new(struct rules_eng *e, const struct rule *r, struct rules_host *h,
                             struct rules_series *se, char *fp, const char *key_value)
{
    struct prob *p = wp_xcalloc(1, sizeof(*p));
    p->r = r;
    p->h = h;
    p->se = se;
    p->fp = fp;
    p->key_value = key_value != NULL ? wp_xstrdup(key_value) : NULL;
    struct saved *sv = hmap_get(&e->restore, fp);
    if (sv != NULL) {
        p->st = (enum rules_state)sv->state;
        p->since = sv->since;
        p->last_signal = sv->last_signal;
        p->hold_until = r->kind == RULE_LOG && sv->state != RS_OK ? -1 : 0;
        if (sv->supp < 0) {
            p->supp_sync = state_active(sv->state);
        } else {
            p->suppressed = sv->supp;
            p->supp_reason = sv->reason;
            sv->reason = NULL;
        }
        rest_count(e, fp, sv->state, -1);
        hmap_del(&e->restore, fp);
        saved_free(sv);
    }
    hmap_put(&e->probs, fp, p);
    p->hnext = h->probs;
    h->probs = p;
    p->next = e->plist;
    e->plist = p;
    e->st.problems++;
    active_sync(p);
    if (r->kind == RULE_NODATA && r->metric == NULL) {
        h->nodata = wp_xrealloc(h->nodata, (h->nnodata + 1) * sizeof(*h->nodata));
        h->nodata[h->nnodata++] = p;
    } else if (r->kind == RULE_NODATA || r->kind == RULE_LOG || r->kind == RULE_LINE_STATE) {
        if ((e->ntimed & (e->ntimed - 1)) == 0) { /* 0, 1, 2, 4, ...: grow to the next power */
            e->timed = wp_xrealloc(e->timed, (e->ntimed == 0 ? 1 : e->ntimed * 2) *
                                                 sizeof(*e->timed));
        }
        e->timed[e->ntimed++] = p;
    }
    return p;
}

static struct prob *prob_get(struct rules_eng *e, const struct rule *r, struct rules_host *h,
                             struct rules_series *se, const struct ctx *c, const char *key_value)
{
    char *fp = fingerprint(r, c);
    struct prob *p = hmap_get(&e->probs, fp);
    if (p != NULL) {
        free(fp);
        if (se != NULL) {
            p->se = se;
        }
        return p;
    }
    return prob_new(e, r, h, se, fp, key_value);
}

/* The value of label k in fingerprint fp ("rule|host|k=v|..."), copied, or NULL. */
static char *fp_label(const char *fp, const char *k)
{
    size_t kl = strlen(k);
    const char *a = strchr(fp, '|');
    a = a != NULL ? strchr(a + 1, '|') : NULL;
    for (; a != NULL; a = strchr(a + 1, '|')) {
        if (strncmp(a + 1, k, kl) == 0 && a[1 + kl] == '=') {
            const char *v = a + 2 + kl;
            const char *end = strchr(v, '|');
            return wp_xstrndup(v, end != NULL ? (size_t)(end - v) : strlen(v));
        }
    }
    return NULL;
}

/* Saved states of log problems (a restart, a reload) wait for no event: make them problems
 * of their host again (a host the engine knows; the others wait for theirs) so the tick runs
 * their window out as it does for a live one. */
static void bind_restored_logs(struct rules_eng *e)
{
    const struct rule **logr = NULL;
    size_t nlogr = 0, n = 0, cap = 0;
    char **fps = NULL;
    const struct rule **rv = NULL;
    struct hmap hosts;

    if (!e->rest_scan) {
        return;
    }
    e->rest_scan = 0;
    memset(&hosts, 0, sizeof(hosts));
    for (size_t i = 0; i < e->rs->nrules && e->restore.n > 0; i++) {
        if (e->rs->rules[i].kind == RULE_LOG) {
            logr = wp_xrealloc(logr, (nlogr + 1) * sizeof(*logr));
            logr[nlogr++] = &e->rs->rules[i];
        }
    }
    for (size_t b = 0; b < e->restore.cap && nlogr > 0; b++) {
        for (const struct hent *en = e->restore.b[b]; en != NULL; en = en->next) {
            const char *bar = strchr(en->key, '|');
            size_t nl = bar != NULL ? (size_t)(bar - en->key) : 0;
            for (size_t k = 0; k < nlogr; k++) {
                if (nl > 0 && strncmp(logr[k]->name, en->key, nl) == 0 &&
                    logr[k]->name[nl] == '\0') {
                    if (n == cap) {
                        cap = cap == 0 ? 8 : cap * 2;
                        fps = wp_xrealloc(fps, cap * sizeof(*fps));
                        rv = wp_xrealloc(rv, cap * sizeof(*rv));
                    }
                    fps[n] = wp_xstrdup(en->key);
                    rv[n++] = logr[k];
                    break;
                }
            }
        }
    }
    for (struct rules_host *h = e->hlist; h != NULL && n > 0; h = h->next) {
        if (hmap_get(&hosts, h->host) == NULL) {
            hmap_put(&hosts, h->host, h);
        }
    }
    for (size_t i = 0; i < n; i++) {
        char key[600];
        fp_rule_host(fps[i], key, sizeof(key));
        const char *us = strchr(key, '\x1f');
        struct rules_host *h = us != NULL ? hmap_get(&hosts, us + 1) : NULL;
        if (h == NULL || hmap_get(&e->probs, fps[i]) != NULL) {
            free(fps[i]); /* its host is not known yet: a new host scans again */
            continue;
        }
        char *source = fp_label(fps[i], "source");
        prob_new(e, rv[i], h, NULL, fps[i], source);
        free(source);
    }
    hmap_clear(&hosts, NULL);
    free(fps);
    free(rv);
    free(logr);
}

static void prob_free(struct prob *p)
{
    free(p->fp);
    free(p->key_value);
    free(p->supp_reason);
    free(p->ev);
    free(p->text);
    free(p);
}

/* ---- engine ------------------------------------------------------------------------------- */

static void rlist_add(struct rlist *l, size_t i)
{
    l->idx = wp_xrealloc(l->idx, (l->n + 1) * sizeof(*l->idx));
    l->idx[l->n++] = i;
}

static void rlist_free(void *v)
{
    struct rlist *l = v;
    free(l->idx);
    free(l);
}

static void index_rules(struct rules_eng *e)
{
    hmap_clear(&e->by_metric, rlist_free);
    free(e->glob_rules.idx);
    memset(&e->glob_rules, 0, sizeof(e->glob_rules));
    for (size_t i = 0; i < e->rs->nrules; i++) {
        const struct rule *r = &e->rs->rules[i];
        if (r->metric == NULL ||
            (r->kind != RULE_THRESHOLD && r->kind != RULE_NODATA && r->kind != RULE_FORECAST)) {
            continue;
        }
        if (strpbrk(r->metric, "*?[") != NULL) {
            rlist_add(&e->glob_rules, i);
            continue;
        }
        struct rlist *l = hmap_get(&e->by_metric, r->metric);
        if (l == NULL) {
            l = wp_xcalloc(1, sizeof(*l));
            hmap_put(&e->by_metric, r->metric, l);
        }
        rlist_add(l, i);
    }
}

struct rules_eng *rules_eng_new(const struct rule_set *rs, const struct rules_sink *sink)
{
    struct rules_eng *e = wp_xcalloc(1, sizeof(*e));
    e->rs = rs;
    e->sink = *sink;
    index_rules(e);
    return e;
}

static void series_free(struct rules_series *se)
{
    free(se->metric);
    free(se->instance);
    free(se->t);
    free(se->v);
    free(se->probs);
    free(se);
}

static void free_series_all(struct rules_eng *e)
{
    while (e->slist != NULL) {
        struct rules_series *nx = e->slist->next;
        series_free(e->slist);
        e->slist = nx;
    }
    e->st.series = 0;
}

static void free_probs_all(struct rules_eng *e, int keep_state)
{
    for (struct prob *p = e->plist; p != NULL;) {
        struct prob *nx = p->next;
        if (keep_state && p->st != RS_OK && hmap_get(&e->restore, p->fp) == NULL) {
            struct saved *sv = wp_xcalloc(1, sizeof(*sv));
            sv->state = (int)p->st;
            sv->since = p->since;
            sv->last_signal = p->last_signal;
            /* a reload keeps what the store was told of its suppression */
            sv->supp = p->supp_sync ? -1 : p->suppressed;
            sv->reason =
                sv->supp == 1 && p->supp_reason != NULL ? wp_xstrdup(p->supp_reason) : NULL;
            hmap_put(&e->restore, p->fp, sv);
            rest_count(e, p->fp, sv->state, 1);
        }
        prob_free(p);
        p = nx;
    }
    e->plist = NULL;
    hmap_clear(&e->probs, NULL);
    free(e->timed);
    e->timed = NULL;
    e->ntimed = 0;
    for (struct rules_host *h = e->hlist; h != NULL; h = h->next) {
        h->probs = NULL;
        h->active = NULL;
        free(h->nodata);
        h->nodata = NULL;
        h->nnodata = 0;
        h->bound = 0;
    }
    e->st.problems = 0;
}

static void lgroup_free(void *v)
{
    struct lgroup *g = v;
    free(g->v);
    free(g);
}

static void line_free(void *v)
{
    struct line *l = v;
    free(l->host_line);
    free(l->name);
    free(l->group);
    free(l->state);
    free(l);
}

void rules_eng_free(struct rules_eng *e)
{
    if (e == NULL) {
        return;
    }
    free_series_all(e);
    free_probs_all(e, 0);
    hmap_clear(&e->by_metric, rlist_free);
    free(e->glob_rules.idx);
    hmap_clear(&e->restore, saved_free);
    hmap_clear(&e->rest_active, free);
    hmap_clear(&e->lines, line_free);
    hmap_clear(&e->lgroups, lgroup_free);
    hmap_clear(&e->hosts, NULL);
    while (e->hlist != NULL) {
        struct rules_host *nx = e->hlist->next;
        free(e->hlist->host);
        free(e->hlist->agent);
        for (size_t i = 0; i < e->hlist->nlabels; i++) {
            free(e->hlist->labels[i]);
        }
        free(e->hlist->labels);
        free(e->hlist->nodata);
        free(e->hlist);
        e->hlist = nx;
    }
    free(e);
}

void rules_eng_restore(struct rules_eng *e, const char *fp, int state, int64_t since_ms)
{
    struct prob *p = hmap_get(&e->probs, fp);
    if (p != NULL) {
        p->st = (enum rules_state)state;
        p->since = since_ms;
        p->supp_sync = state_active(state);
        p->hold_until = p->r->kind == RULE_LOG && state != RS_OK ? -1 : 0;
        active_sync(p);
        return;
    }
    e->rest_scan = 1;
    struct saved *sv = hmap_get(&e->restore, fp);
    if (sv == NULL) {
        sv = wp_xcalloc(1, sizeof(*sv));
        hmap_put(&e->restore, fp, sv);
    } else {
        rest_count(e, fp, sv->state, -1);
        free(sv->reason);
        sv->reason = NULL;
    }
    sv->last_signal = 0;
    sv->state = state;
    sv->since = since_ms;
    sv->supp = -1; /* only the store knows: the first pass tells it either way */
    rest_count(e, fp, state, 1);
}

void rules_eng_set(struct rules_eng *e, const struct rule_set *rs)
{
    free_series_all(e);
    free_probs_all(e, 1);
    e->rs = rs;
    index_rules(e);
    e->rest_scan = 1;
}

const struct rule_set *rules_eng_rules(const struct rules_eng *e)
{
    return e->rs;
}

static int labels_same(const struct rules_host *h, const char *const *labels)
{
    size_t n = 0;
    while (labels[n] != NULL && labels[n + 1] != NULL) {
        if (n >= h->nlabels || strcmp(h->labels[n], labels[n]) != 0 ||
            strcmp(h->labels[n + 1], labels[n + 1]) != 0) {
            return 0;
        }
        n += 2;
    }
    return n == h->nlabels;
}

struct rules_host *rules_eng_host(struct rules_eng *e, const char *host, const char *agent,
                                  const char *const *labels, int64_t now_ms)
{
    char key[600];
    snprintf(key, sizeof(key), "%s\x1f%s", host, agent);
    struct rules_host *h = hmap_get(&e->hosts, key);
    if (h != NULL && labels != NULL && !labels_same(h, labels)) {
        /* the agent's labels changed: new ones for the next selection */
        for (size_t i = 0; i < h->nlabels; i++) {
            free(h->labels[i]);
        }
        free(h->labels);
        size_t n = 0;
        while (labels[n] != NULL && labels[n + 1] != NULL) {
            n += 2;
        }
        h->labels = wp_xcalloc(n + 1, sizeof(char *));
        for (size_t i = 0; i < n; i++) {
            h->labels[i] = wp_xstrdup(labels[i]);
        }
        h->nlabels = n;
    }
    if (h == NULL) {
        h = wp_xcalloc(1, sizeof(*h));
        h->host = wp_xstrdup(host);
        h->agent = wp_xstrdup(agent);
        size_t n = 0;
        while (labels != NULL && labels[n] != NULL && labels[n + 1] != NULL) {
            n += 2;
        }
        h->labels = wp_xcalloc(n + 1, sizeof(char *));
        for (size_t i = 0; i < n; i++) {
            h->labels[i] = wp_xstrdup(labels[i]);
        }
        h->nlabels = n;
        h->last_seen = now_ms;
        h->next = e->hlist;
        e->hlist = h;
        hmap_put(&e->hosts, key, h);
        e->st.hosts++;
        /* saved log states of this host may wait for it */
        e->rest_scan |= e->restore.n > 0;
    }
    return h;
}

/* Make the host-wide no-data problems of h exist (with their saved states). */
static void host_bind(struct rules_eng *e, struct rules_host *h)
{
    struct ctx c;

    if (h->bound) {
        return;
    }
    memset(&c, 0, sizeof(c));
    c.h = h;
    for (size_t i = 0; i < e->rs->nrules; i++) {
        const struct rule *r = &e->rs->rules[i];
        if (r->kind == RULE_NODATA && r->metric == NULL && selects(e->rs, r, &c)) {
            prob_get(e, r, h, NULL, &c, NULL);
        }
    }
    h->bound = 1;
}

void rules_host_seen(struct rules_eng *e, struct rules_host *h, int64_t now_ms)
{
    h->last_seen = now_ms;
    /* a silence saved before a restart ends with the host's first report */
    host_bind(e, h);
    for (size_t i = 0; i < h->nnodata; i++) {
        if (h->nodata[i]->st != RS_OK) {
            step(e, h->nodata[i], 0, 1, now_ms, now_ms);
        }
    }
}

struct rules_series *rules_eng_series(struct rules_eng *e, struct rules_host *h,
                                      const char *metric, const char *instance)
{
    struct ctx c;
    struct rules_series *se = NULL;

    memset(&c, 0, sizeof(c));
    c.h = h;
    c.metric = metric;
    c.instance = instance != NULL ? instance : "";
    const struct rlist *exact = hmap_get(&e->by_metric, metric);
    size_t nexact = exact != NULL ? exact->n : 0;
    /* candidates: the rules of this exact metric, then those with a metric glob, in the
     * order of the rule set within each list */
    for (size_t k = 0; k < nexact + e->glob_rules.n; k++) {
        size_t i = k < nexact ? exact->idx[k] : e->glob_rules.idx[k - nexact];
        const struct rule *r = &e->rs->rules[i];
        if (!selects(e->rs, r, &c)) {
            continue;
        }
        if (se == NULL) {
            se = wp_xcalloc(1, sizeof(*se));
            se->h = h;
            se->metric = wp_xstrdup(metric);
            se->instance = wp_xstrdup(c.instance);
            se->last_ts = 0;
            se->next = e->slist;
            e->slist = se;
            e->st.series++;
            c.metric = se->metric;
            c.instance = se->instance;
        }
        int64_t w = 0;
        if (r->kind == RULE_THRESHOLD) {
            w = r->when.window_ms > r->recover.window_ms ? r->when.window_ms : r->recover.window_ms;
        } else if (r->kind == RULE_FORECAST) {
            w = r->fc_window_ms;
        }
        if (w > se->keep_ms) {
            se->keep_ms = w;
        }
        struct prob *p = prob_get(e, r, h, se, &c, c.instance);
        se->probs = wp_xrealloc(se->probs, (se->nprobs + 1) * sizeof(*se->probs));
        se->probs[se->nprobs++] = p;
    }
    return se;
}

/* Append to the series window and drop what is older than keep_ms (the last sample stays).
 * The window is a sliding array: live samples are t[head..head+n), contiguous, so window
 * functions read it in place; when the end is reached the live part moves to the front
 * (amortised O(1) per sample) or the array grows. */
static void window_push(struct rules_series *se, int64_t ts, double v)
{
    while (se->n > 1 &&
           (se->n >= MAX_WINDOW_SAMPLES || ts - se->t[se->head] > se->keep_ms)) {
        se->head++;
        se->n--;
    }
    if (se->n == 1 && ts - se->t[se->head] > se->keep_ms) {
        se->head++;
        se->n--;
    }
    if (se->head + se->n == se->cap) {
        if (se->head > 0 && se->n <= se->cap / 2) {
            memmove(se->t, se->t + se->head, se->n * sizeof(*se->t));
            memmove(se->v, se->v + se->head, se->n * sizeof(*se->v));
            se->head = 0;
        } else {
            size_t ncap = se->cap == 0 ? 4 : se->cap * 2;
            se->t = wp_xrealloc(se->t, ncap * sizeof(*se->t));
            se->v = wp_xrealloc(se->v, ncap * sizeof(*se->v));
            se->cap = ncap;
        }
    }
    se->t[se->head + se->n] = ts;
    se->v[se->head + se->n] = v;
    se->n++;
}

static int cmp_holds(enum rule_cmp c, double a, double b)
{
    switch (c) {
    case RULE_GT:
        return a > b;
    case RULE_GE:
        return a >= b;
    case RULE_LT:
        return a < b;
    case RULE_LE:
        return a <= b;
    case RULE_EQC:
        return a == b;
    case RULE_NEC:
        return a != b;
    }
    return 0;
}

static int expr_eval(const struct rule_expr *x, const int64_t *t, const double *v, size_t n,
                     int64_t end, double *val)
{
    double r;
    if (rules_window_fn(x->fn, t, v, n, x->window_ms, end, &r) < 0 || isnan(r)) {
        return -1;
    }
    if (val != NULL) {
        *val = r;
    }
    return cmp_holds(x->cmp, r, x->threshold);
}

static void eval_series_prob(struct rules_eng *e, struct prob *p, const int64_t *t,
                             const double *v, size_t n, int64_t ts)
{
    const struct rule *r = p->r;
    double val = NAN;
    int holds, recovers;

    switch (r->kind) {
    case RULE_THRESHOLD:
        holds = expr_eval(&r->when, t, v, n, ts, &val);
        if (r->has_recover) {
            recovers = expr_eval(&r->recover, t, v, n, ts, NULL);
        } else {
            recovers = holds < 0 ? -1 : !holds;
        }
        if (holds >= 0) {
            p->value = val;
            p->has_value = 1;
        }
        step(e, p, holds, recovers, ts, ts);
        break;
    case RULE_FORECAST: {
        int64_t eta;
        int64_t span = n > 0 ? t[n - 1] - t[0] : 0;
        /* a trend needs a quarter of the window at least before it means anything */
        if (n < 3 || span * 4 < r->fc_window_ms) {
            return;
        }
        holds = rules_forecast(t, v, n, r->fc_limit, &eta) == 0 && eta <= r->fc_within_ms;
        p->value = holds ? (double)eta / 86400000.0 : NAN;
        p->has_value = holds;
        step(e, p, holds, !holds, ts, ts);
        break;
    }
    case RULE_NODATA:
        if (p->st != RS_OK) {
            step(e, p, 0, 1, ts, ts);
        }
        break;
    default:
        break;
    }
}

void rules_sample(struct rules_eng *e, struct rules_series *se, int64_t ts_ms, double v)
{
    if (se == NULL || isnan(v) || ts_ms <= se->last_ts) {
        return;
    }
    e->st.samples++;
    se->last_ts = ts_ms;
    window_push(se, ts_ms, v);
    for (size_t i = 0; i < se->nprobs; i++) {
        eval_series_prob(e, se->probs[i], se->t + se->head, se->v + se->head, se->n, ts_ms);
    }
}

/* ---- events ------------------------------------------------------------------------------- */

static void log_window_step(struct rules_eng *e, struct prob *p, int64_t at, int64_t now)
{
    size_t k = 0;
    /* forget matches that left the window */
    while (k < p->nev && p->ev[k] <= at - p->r->log_window_ms) {
        k++;
    }
    if (k > 0) {
        memmove(p->ev, p->ev + k, (p->nev - k) * sizeof(*p->ev));
        p->nev -= k;
    }
    p->value = (double)p->nev;
    p->has_value = 1;
    int holds = (int64_t)p->nev >= p->r->log_count;
    int recovers = !holds;
    if (p->hold_until < 0) {
        p->hold_until = at + p->r->log_window_ms;
    }
    if (p->hold_until != 0 && at >= p->hold_until) {
        p->hold_until = 0; /* the window now holds only matches seen since the restore */
    }
    if (p->hold_until != 0 && !holds) {
        holds = recovers = -1;
    }
    step(e, p, holds, recovers, at, now);
}

void rules_log(struct rules_eng *e, struct rules_host *h, const char *source, const char *text,
               int64_t ts_ms)
{
    struct ctx c;

    memset(&c, 0, sizeof(c));
    c.h = h;
    c.source = source;
    for (size_t i = 0; i < e->rs->nrules; i++) {
        const struct rule *r = &e->rs->rules[i];
        if (r->kind != RULE_LOG || !selects(e->rs, r, &c)) {
            continue;
        }
        pcre2_match_data *md = pcre2_match_data_create_from_pattern((pcre2_code *)r->log_re, NULL);
        int rc = pcre2_match((pcre2_code *)r->log_re, (PCRE2_SPTR)text, PCRE2_ZERO_TERMINATED, 0,
                             0, md, NULL);
        pcre2_match_data_free(md);
        if (rc < 0) {
            continue;
        }
        struct prob *p = prob_get(e, r, h, NULL, &c, source);
        if (p->key_value == NULL) {
            p->key_value = wp_xstrdup(source); /* restored from a fingerprint without it */
        }
        if (p->nev == p->evcap) {
            if (p->nev >= MAX_LOG_EVENTS) {
                memmove(p->ev, p->ev + 1, (p->nev - 1) * sizeof(*p->ev));
                p->nev--;
            } else {
                p->evcap = p->evcap == 0 ? 8 : p->evcap * 2;
                p->ev = wp_xrealloc(p->ev, p->evcap * sizeof(*p->ev));
            }
        }
        p->ev[p->nev++] = ts_ms;
        free(p->text);
        p->text = wp_xstrdup(text);
        log_window_step(e, p, ts_ms, ts_ms);
    }
}

static int state_listed(const struct rule *r, const char *state)
{
    for (size_t s = 0; s < r->nstates; s++) {
        if (strcmp(r->states[s], state) == 0) {
            return 1;
        }
    }
    return 0;
}

static void line_share_eval(struct rules_eng *e, const struct rule *r, struct rules_host *h,
                            const struct lgroup *g, const char *group, int64_t at)
{
    size_t bad = 0;
    struct ctx c;

    if (g->n == 0) {
        return;
    }
    for (size_t i = 0; i < g->n; i++) {
        bad += state_listed(r, g->v[i]->state) ? 1 : 0;
    }
    memset(&c, 0, sizeof(c));
    c.h = h;
    c.group = group;
    struct prob *p = prob_get(e, r, h, NULL, &c, group);
    p->value = 100.0 * (double)bad / (double)g->n;
    p->has_value = 1;
    int holds = p->value > r->share_above_pct;
    step(e, p, holds, !holds, at, at);
}

/* Mass change: how many of the group's lines entered one of the states within the window
 * (and are still in it) against the share; recovery when fewer than the share remain in
 * those states. */
static void line_mass_eval(struct rules_eng *e, const struct rule *r, struct rules_host *h,
                           const struct lgroup *g, const char *group, int64_t at)
{
    size_t recent = 0, in = 0;
    struct ctx c;

    if (g->n == 0) {
        return;
    }
    for (size_t i = 0; i < g->n; i++) {
        const struct line *l = g->v[i];
        if (state_listed(r, l->state)) {
            in++;
            /* the first report of a line (a restarted collector) is no change */
            recent += l->changed && at - l->since <= r->mass_within_ms ? 1 : 0;
        }
    }
    double share = 100.0 * (double)recent / (double)g->n;
    int holds = (int64_t)recent >= r->mass_min_lines && share >= r->share_above_pct;
    int recovers = 100.0 * (double)in / (double)g->n < r->share_above_pct;
    memset(&c, 0, sizeof(c));
    c.h = h;
    c.group = group;
    struct prob *p = prob_get(e, r, h, NULL, &c, group);
    if (holds || p->st == RS_OK) {
        p->value = share;
        p->has_value = 1;
    }
    step(e, p, holds, recovers, at, at);
}

/* Put a line into the group index of its host (or move it there). */
static void lgroup_join(struct rules_eng *e, struct line *l, const char *group)
{
    char key[600];

    if (l->g != NULL) {
        struct lgroup *og = l->g;
        og->v[l->gi] = og->v[--og->n];
        og->v[l->gi]->gi = l->gi;
    }
    free(l->group);
    l->group = wp_xstrdup(group);
    snprintf(key, sizeof(key), "%s\x1f%s", l->h->host, l->group);
    struct lgroup *g = hmap_get(&e->lgroups, key);
    if (g == NULL) {
        g = wp_xcalloc(1, sizeof(*g));
        hmap_put(&e->lgroups, key, g);
    }
    if (g->n == g->cap) {
        g->cap = g->cap == 0 ? 16 : g->cap * 2;
        g->v = wp_xrealloc(g->v, g->cap * sizeof(*g->v));
    }
    l->g = g;
    l->gi = g->n;
    g->v[g->n++] = l;
}

void rules_line(struct rules_eng *e, struct rules_host *h, const char *line, const char *group,
                const char *state, int64_t ts_ms)
{
    char key[600];
    struct ctx c;

    snprintf(key, sizeof(key), "%s\x1f%s", h->host, line);
    struct line *l = hmap_get(&e->lines, key);
    if (group == NULL) {
        group = "";
    }
    if (l == NULL) {
        l = wp_xcalloc(1, sizeof(*l));
        l->host_line = wp_xstrdup(key);
        l->h = h;
        l->name = wp_xstrdup(line);
        l->state = wp_xstrdup(state);
        l->since = ts_ms;
        hmap_put(&e->lines, key, l);
        lgroup_join(e, l, group);
    } else {
        if (strcmp(l->state, state) != 0) {
            free(l->state);
            l->state = wp_xstrdup(state);
            l->since = ts_ms;
            l->changed = 1;
        }
        if (strcmp(l->group, group) != 0) {
            lgroup_join(e, l, group);
        }
    }
    memset(&c, 0, sizeof(c));
    c.h = h;
    c.line = line;
    c.group = l->group;
    for (size_t i = 0; i < e->rs->nrules; i++) {
        const struct rule *r = &e->rs->rules[i];
        if (r->kind == RULE_LINE_STATE && selects(e->rs, r, &c)) {
            int in = r->nstates > 0 && strcmp(r->states[0], l->state) == 0;
            struct prob *p = prob_get(e, r, h, NULL, &c, line);
            if (in && p->st == RS_OK) {
                /* the pending clock starts when the line entered the state */
                step(e, p, 1, 0, l->since, ts_ms);
            }
            step(e, p, in, !in, ts_ms, ts_ms);
        } else if (r->kind == RULE_LINE_SHARE && selects(e->rs, r, &c)) {
            line_share_eval(e, r, h, l->g, l->group, ts_ms);
        } else if (r->kind == RULE_LINE_MASS && selects(e->rs, r, &c)) {
            line_mass_eval(e, r, h, l->g, l->group, ts_ms);
        }
    }
}

void rules_check(struct rules_eng *e, struct rules_host *h, const char *check,
                 enum check_status status, const char *text, int64_t ts_ms)
{
    struct ctx c;

    memset(&c, 0, sizeof(c));
    c.h = h;
    c.check = check;
    for (size_t i = 0; i < e->rs->nrules; i++) {
        const struct rule *r = &e->rs->rules[i];
        if (r->kind != RULE_CHECK || !selects(e->rs, r, &c)) {
            continue;
        }
        struct prob *p = prob_get(e, r, h, NULL, &c, check);
        /* UNKNOWN counts as a failure of a CRITICAL rule's check too: it did not pass */
        int bad = status != CHECK_OK && (status == CHECK_UNKNOWN || status >= r->check_status);
        p->consecutive = bad ? p->consecutive + 1 : 0;
        p->value = (double)status;
        p->has_value = 1;
        free(p->text);
        p->text = wp_xstrdup(text != NULL ? text : "");
        int holds = p->consecutive >= r->check_consecutive;
        step(e, p, holds, status == CHECK_OK, ts_ms, ts_ms);
    }
}

/* ---- time ---------------------------------------------------------------------------------- */

void rules_eng_tick(struct rules_eng *e, int64_t now)
{
    bind_restored_logs(e);
    /* host-wide no-data: make the problems exist for every host */
    for (struct rules_host *h = e->hlist; h != NULL; h = h->next) {
        host_bind(e, h);
        for (size_t i = 0; i < h->nnodata; i++) {
            struct prob *p = h->nodata[i];
            const struct rule *r = p->r;
            int silent = now - h->last_seen >= r->nodata_ms;
            p->value = (double)(now - h->last_seen) / 1000.0;
            p->has_value = 1;
            if (silent) {
                /* the silence began at last_seen: `for` counts from there */
                step(e, p, 1, 0, h->last_seen + r->nodata_ms, now);
            }
        }
    }
    for (size_t i = 0; i < e->ntimed; i++) {
        struct prob *p = e->timed[i];
        const struct rule *r = p->r;
        if (r->kind == RULE_NODATA && r->metric != NULL && p->se != NULL) {
            int64_t last = p->se->last_ts != 0 ? p->se->last_ts : p->h->last_seen;
            if (now - last >= r->nodata_ms) {
                p->value = (double)(now - last) / 1000.0;
                p->has_value = 1;
                step(e, p, 1, 0, last + r->nodata_ms, now);
            }
        } else if (r->kind == RULE_LOG && (p->nev > 0 || p->st != RS_OK)) {
            log_window_step(e, p, now, now);
        } else if (r->kind == RULE_LINE_STATE && p->st != RS_OK) {
            char key[600];
            snprintf(key, sizeof(key), "%s\x1f%s", p->h->host, p->key_value);
            struct line *l = hmap_get(&e->lines, key);
            int in = l != NULL && r->nstates > 0 && strcmp(r->states[0], l->state) == 0;
            if (in) {
                step(e, p, 1, 0, now, now);
            }
        }
    }
    /* maintenance windows open and close with the clock: only active problems care */
    for (struct rules_host *h = e->hlist; h != NULL; h = h->next) {
        host_suppression(e, h, now);
    }
}

void rules_eng_set_maint(struct rules_eng *e,
                         const char *(*fn)(void *arg, const char *host, int64_t now_ms),
                         void *arg)
{
    e->maint_fn = fn;
    e->maint_arg = arg;
}

void rules_eng_stats(const struct rules_eng *e, struct rules_eng_stats *out)
{
    *out = e->st;
}

void rules_eng_each(struct rules_eng *e,
                    void (*fn)(void *arg, const char *fingerprint, const struct rule *r,
                               enum rules_state st, int64_t since_ms, double value,
                               int suppressed),
                    void *arg)
{
    for (struct prob *p = e->plist; p != NULL; p = p->next) {
        if (p->st != RS_OK) {
            fn(arg, p->fp, p->r, p->st, p->since, p->has_value ? p->value : NAN, p->suppressed);
        }
    }
}

/* ---- window functions ------------------------------------------------------------------- */

/* The k-th smallest of a[0..n) (Hoare's selection; reorders a). */
static double select_kth(double *a, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;

    while (lo < hi) {
        double pivot = a[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot) {
                i++;
            }
            while (a[j] > pivot) {
                j--;
            }
            if (i <= j) {
                double tmp = a[i];
                a[i] = a[j];
                a[j] = tmp;
                i++;
                if (j == 0) {
                    break;
                }
                j--;
            }
        }
        if (k <= j) {
            hi = j;
        } else if (k >= i) {
            lo = i;
        } else {
            break;
        }
    }
    return a[k];
}

int rules_window_fn(enum rule_fn fn, const int64_t *t, const double *v, size_t n,
                    int64_t window_ms, int64_t end_ms, double *out)
{
    size_t lo = 0;

    /* samples with end - window < t <= end */
    while (n > 0 && t[n - 1] > end_ms) {
        n--;
    }
    if (n == 0) {
        return WP_ENOTFOUND;
    }
    if (fn == RULE_FN_LAST || window_ms <= 0) {
        if (fn == RULE_FN_COUNT) {
            *out = 1;
        } else if (fn == RULE_FN_RATE || fn == RULE_FN_DELTA) {
            return WP_ENOTFOUND;
        } else {
            *out = v[n - 1];
        }
        return 0;
    }
    while (lo < n && t[lo] <= end_ms - window_ms) {
        lo++;
    }
    size_t m = n - lo;
    if (m == 0) {
        return WP_ENOTFOUND;
    }
    double acc = 0;
    switch (fn) {
    case RULE_FN_AVG:
        for (size_t i = lo; i < n; i++) {
            acc += v[i];
        }
        *out = acc / (double)m;
        return 0;
    case RULE_FN_MIN:
    case RULE_FN_MAX:
        acc = v[lo];
        for (size_t i = lo + 1; i < n; i++) {
            acc = fn == RULE_FN_MIN ? fmin(acc, v[i]) : fmax(acc, v[i]);
        }
        *out = acc;
        return 0;
    case RULE_FN_P95: {
        double stack[512];
        double *s = m <= 512 ? stack : wp_xmalloc(m * sizeof(*s));
        memcpy(s, v + lo, m * sizeof(*s));
        /* nearest rank, found by selection (no full sort) */
        size_t rank = (size_t)ceil(0.95 * (double)m);
        *out = select_kth(s, m, rank > 0 ? rank - 1 : 0);
        if (s != stack) {
            free(s);
        }
        return 0;
    }
    case RULE_FN_RATE:
    case RULE_FN_DELTA:
        if (m < 2) {
            return WP_ENOTFOUND;
        }
        *out = v[n - 1] - v[lo];
        if (fn == RULE_FN_RATE) {
            *out /= (double)(t[n - 1] - t[lo]) / 1000.0;
        }
        return 0;
    case RULE_FN_COUNT:
        *out = (double)m;
        return 0;
    case RULE_FN_LAST:
        break;
    }
    *out = v[n - 1];
    return 0;
}

int rules_forecast(const int64_t *t, const double *v, size_t n, double limit, int64_t *eta_ms)
{
    if (n < 3) {
        return WP_ENOTFOUND;
    }
    /* x in seconds relative to the last sample keeps the sums well conditioned */
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (size_t i = 0; i < n; i++) {
        double x = (double)(t[i] - t[n - 1]) / 1000.0;
        sx += x;
        sy += v[i];
        sxx += x * x;
        sxy += x * v[i];
    }
    double dn = (double)n;
    double den = dn * sxx - sx * sx;
    if (den <= 0) {
        return WP_ENOTFOUND;
    }
    double slope = (dn * sxy - sx * sy) / den; /* per second */
    double now_fit = (sy - slope * sx) / dn;   /* fitted value at the last sample */
    if (now_fit >= limit) {
        *eta_ms = 0;
        return 0;
    }
    if (slope <= 0) {
        return WP_ENOTFOUND;
    }
    double secs = (limit - now_fit) / slope;
    if (secs > 1e12) {
        return WP_ENOTFOUND;
    }
    *eta_ms = (int64_t)(secs * 1000.0);
    return 0;
}
