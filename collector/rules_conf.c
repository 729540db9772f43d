/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Rules files: load and validate the model of rules.h from YAML (every error names
 * file:line:column and what was expected), and the helpers the engine shares with the loader:
 * globs, label matchers, "avg(5m) > 90" expressions and maintenance windows.
 *
 * Details the header leaves open:
 *   - regex matchers (re, not_re) must match the whole label value (PCRE2_ANCHORED |
 *     PCRE2_ENDANCHORED, UTF-8; invalid UTF-8 in a value never matches instead of failing);
 *   - log patterns search the line (not anchored), UTF-8, case-sensitive unless
 *     `ignore_case: true` is given in the log map;
 *   - weekly windows: days are sun..sat or sunday..saturday (any case); to "24:00" ends at
 *     midnight; a window that wraps midnight belongs to the day it starts on;
 *   - `for` applies to when: and forecast: rules, recover/recover_for to when: rules only;
 *     log, line_state, line_share and line_mass rules take no metric;
 *   - maintenance hosts: or groups: given as an empty list is an error (leaving both out
 *     means every host).
 */
#include "rules.h"

#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <yaml.h>

#include "wp/clock.h"
#include "wp/err.h"
#include "wp/mem.h"

#define GOT_MAX 48 /* characters of an offending value quoted in messages */

static const char *const fn_names[] = {"last", "avg",  "min",   "max",
                                       "p95",  "rate", "delta", "count"};
#define FN_LIST "last, avg, min, max, p95, rate, delta or count"

static const char *const cond_keys[] = {"when",  "nodata",   "log",      "line_state", "line_share",
                                        "check", "forecast", "line_mass"};
#define NCOND     (sizeof(cond_keys) / sizeof(cond_keys[0]))
#define COND_LIST "when, nodata, log, line_state, line_share, check, forecast or line_mass"

/* ---- YAML view ----
 *
 * wp/conf.h has no map iteration and no node positions yet, which the groups map and the
 * "first at FILE:LINE:COL" messages need. conf.c documents that a struct wp_conf_node is a
 * yaml_node_t inside the document, and the root node is the first of the document's node
 * array (yaml_document_get_root_node), so node index i is root + i - 1. These helpers belong
 * in common/conf.c (wp_conf_map_len, wp_conf_map_at, wp_conf_node_pos) once it can change.
 */

static const yaml_node_t *ycn(const struct wp_conf_node *n)
{
    return (const yaml_node_t *)(const void *)n;
}

static int node_line(const struct wp_conf_node *n)
{
    return n != NULL ? (int)ycn(n)->start_mark.line + 1 : 1;
}

static int node_col(const struct wp_conf_node *n)
{
    return n != NULL ? (int)ycn(n)->start_mark.column + 1 : 1;
}

/* Does a come before b in the document? */
static int node_before(const struct wp_conf_node *a, const struct wp_conf_node *b)
{
    return ycn(a)->start_mark.index < ycn(b)->start_mark.index;
}

static size_t map_len(const struct wp_conf_node *n)
{
    if (!wp_conf_is_map(n)) {
        return 0;
    }
    return (size_t)(ycn(n)->data.mapping.pairs.top - ycn(n)->data.mapping.pairs.start);
}

static void map_at(struct wp_conf_doc *doc, const struct wp_conf_node *n, size_t i,
                   struct wp_conf_node **k, struct wp_conf_node **v)
{
    const yaml_node_t *base = ycn(wp_conf_root(doc));
    const yaml_node_pair_t *p = &ycn(n)->data.mapping.pairs.start[i];

    *k = (struct wp_conf_node *)(void *)(uintptr_t)(base + p->key - 1);
    *v = (struct wp_conf_node *)(void *)(uintptr_t)(base + p->value - 1);
}

/* "key:" with nothing after it. */
static int is_null(const struct wp_conf_node *n)
{
    const char *s = wp_conf_scalar(n);

    if (n == NULL) {
        return 1;
    }
    if (s == NULL || ycn(n)->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        return 0;
    }
    return strcmp(s, "") == 0 || strcmp(s, "~") == 0 || strcasecmp(s, "null") == 0;
}

/* A node for "got ..." in messages: a quoted, shortened scalar or its kind. */
static const char *describe(const struct wp_conf_node *n, char *buf, size_t len)
{
    const char *s = wp_conf_scalar(n);
    size_t o = 0;

    if (n == NULL || is_null(n)) {
        snprintf(buf, len, "nothing");
        return buf;
    }
    if (wp_conf_is_map(n)) {
        snprintf(buf, len, "a mapping");
        return buf;
    }
    if (wp_conf_is_seq(n)) {
        snprintf(buf, len, "a sequence");
        return buf;
    }
    if (s == NULL || len < 8) {
        snprintf(buf, len, "nothing");
        return buf;
    }
    buf[o++] = '"';
    for (size_t i = 0; s[i] != '\0' && i < GOT_MAX && o + 6 < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(buf + o, len - o, "\\x%02x", c);
        } else {
            if (c == '"' || c == '\\') {
                buf[o++] = '\\';
            }
            buf[o++] = (char)c;
        }
    }
    snprintf(buf + o, len - o, "%s\"", strlen(s) > GOT_MAX ? "..." : "");
    return buf;
}

/* ---- small parsers ---- */

/* A decimal number: [+-]digits[.digits][e[+-]digits] (no hex, inf or nan). Returns the length
 * scanned, 0 when s does not start with one. */
static size_t scan_number(const char *s)
{
    size_t i = 0;
    size_t digits = 0;

    if (s[i] == '+' || s[i] == '-') {
        i++;
    }
    while (s[i] >= '0' && s[i] <= '9') {
        i++;
        digits++;
    }
    if (s[i] == '.') {
        i++;
        while (s[i] >= '0' && s[i] <= '9') {
            i++;
            digits++;
        }
    }
    if (digits == 0) {
        return 0;
    }
    if (s[i] == 'e' || s[i] == 'E') {
        size_t j = i + 1;
        if (s[j] == '+' || s[j] == '-') {
            j++;
        }
        if (s[j] >= '0' && s[j] <= '9') {
            while (s[j] >= '0' && s[j] <= '9') {
                j++;
            }
            i = j;
        }
    }
    return i;
}

static int parse_number(const char *s, double *out)
{
    size_t n = scan_number(s);
    double v = 0;

    if (n == 0 || s[n] != '\0') {
        return -EINVAL;
    }
    v = strtod(s, NULL);
    if (!isfinite(v)) {
        return -ERANGE;
    }
    *out = v;
    return 0;
}

static int read_digits(const char **sp, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        char c = (*sp)[i];
        if (c < '0' || c > '9') {
            return -EINVAL;
        }
        v = v * 10 + (c - '0');
    }
    *sp += n;
    *out = v;
    return 0;
}

/* RFC 3339: 2026-12-01T22:00:00+08:00, Z, optional fraction; seconds may be left out. */
static int parse_rfc3339(const char *s, int64_t *out_ms)
{
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, oh = 0, om = 0, sign = 0;
    int64_t ms = 0;
    const char *p = s;

    if (read_digits(&p, 4, &y) < 0 || *p++ != '-' || read_digits(&p, 2, &mo) < 0 || *p++ != '-' ||
        read_digits(&p, 2, &d) < 0) {
        return -EINVAL;
    }
    if (*p != 'T' && *p != 't' && *p != ' ') {
        return -EINVAL;
    }
    p++;
    if (read_digits(&p, 2, &h) < 0 || *p++ != ':' || read_digits(&p, 2, &mi) < 0) {
        return -EINVAL;
    }
    if (*p == ':') {
        p++;
        if (read_digits(&p, 2, &sec) < 0) {
            return -EINVAL;
        }
        if (*p == '.') {
            int64_t scale = 100;
            p++;
            if (*p < '0' || *p > '9') {
                return -EINVAL;
            }
            while (*p >= '0' && *p <= '9') {
                ms += (*p - '0') * scale;
                scale /= 10;
                p++;
            }
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '-' ? -1 : 1;
        p++;
        if (read_digits(&p, 2, &oh) < 0 || *p++ != ':' || read_digits(&p, 2, &om) < 0) {
            return -EINVAL;
        }
    } else {
        return -EINVAL; /* a time without an offset is ambiguous */
    }
    if (*p != '\0' || !wp_civil_valid(y, mo, d) || h > 23 || mi > 59 || sec > 60 || oh > 23 ||
        om > 59) {
        return -EINVAL;
    }
    if (sec == 60) {
        sec = 59; /* a leap second: close enough for a maintenance window */
    }
    int64_t t = wp_days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + sec;
    t -= (int64_t)sign * (oh * 3600 + om * 60);
    *out_ms = t * 1000 + ms;
    return 0;
}

/* ---- public helpers ---- */

int rules_glob(const char *pattern, const char *s)
{
    /* no FNM_PATHNAME: "/u*" matches "/u01/data" */
    return fnmatch(pattern, s != NULL ? s : "", 0) == 0;
}

static int re_match(const pcre2_code *re, const char *s)
{
    pcre2_match_data *md = NULL;
    int rc = 0;

    if (re == NULL) {
        return 0;
    }
    /* a yes/no answer needs no captures: one pair is enough (rc 0 still means a match) */
    md = pcre2_match_data_create(1, NULL);
    if (md == NULL) {
        return 0;
    }
    rc = pcre2_match(re, (PCRE2_SPTR)s, strlen(s), 0, 0, md, NULL);
    pcre2_match_data_free(md);
    return rc >= 0;
}

int rules_matcher_ok(const struct rule_matcher *m, const char *value)
{
    const char *v = value != NULL ? value : "";

    switch (m->op) {
    case RULE_EQ:
        return strcmp(v, m->value) == 0;
    case RULE_NE:
        return strcmp(v, m->value) != 0;
    case RULE_GLOB:
        return rules_glob(m->value, v);
    case RULE_NGLOB:
        return !rules_glob(m->value, v);
    case RULE_RE:
        return re_match(m->re, v);
    case RULE_NRE:
        return !re_match(m->re, v);
    }
    return 0;
}

int rules_host_in_group(const struct rule_set *rs, const char *group, const char *host)
{
    for (size_t i = 0; i < rs->ngroups; i++) {
        if (strcmp(rs->groups[i].name, group) != 0) {
            continue;
        }
        for (size_t j = 0; j < rs->groups[i].nhosts; j++) {
            if (rules_glob(rs->groups[i].hosts[j], host)) {
                return 1;
            }
        }
        return 0;
    }
    return 0;
}

const char *rules_level_name(enum rule_level l)
{
    switch (l) {
    case RULE_HIGH:
        return "high";
    case RULE_MEDIUM:
        return "medium";
    case RULE_LOW:
        return "low";
    }
    return "unknown";
}

static int maint_has_host(const struct rule_set *rs, const struct rule_maint *m, const char *host)
{
    if (m->nhosts == 0 && m->ngroups == 0) {
        return 1;
    }
    for (size_t i = 0; i < m->nhosts; i++) {
        if (rules_glob(m->hosts[i], host)) {
            return 1;
        }
    }
    for (size_t i = 0; i < m->ngroups; i++) {
        if (rules_host_in_group(rs, m->groups[i], host)) {
            return 1;
        }
    }
    return 0;
}

const char *rules_in_maintenance(const struct rule_set *rs, const char *host, int64_t now_ms)
{
    /* floor division, so instants before 1970 land in the right second */
    int64_t secs = now_ms >= 0 ? now_ms / 1000 : -((-now_ms + 999) / 1000);
    time_t t = (time_t)secs;
    struct tm tm;
    int have_tm = 0;
    const char *h = host != NULL ? host : "";

    for (size_t i = 0; i < rs->nmaint; i++) {
        const struct rule_maint *m = &rs->maint[i];
        int in = 0;

        if (!maint_has_host(rs, m, h)) {
            continue;
        }
        if (!m->weekly) {
            in = now_ms >= m->start_ms && now_ms < m->end_ms;
        } else {
            if (!have_tm) {
                if (localtime_r(&t, &tm) == NULL) {
                    continue;
                }
                have_tm = 1;
            }
            int minute = tm.tm_hour * 60 + tm.tm_min;
            unsigned today = 1u << tm.tm_wday;
            unsigned yesterday = 1u << ((tm.tm_wday + 6) % 7);
            if (m->from_min < m->to_min) {
                in = (m->days & today) && minute >= m->from_min && minute < m->to_min;
            } else {
                /* wraps midnight: a listed day's evening, or the morning after one */
                in = ((m->days & today) && minute >= m->from_min) ||
                     ((m->days & yesterday) && minute < m->to_min);
            }
        }
        if (in) {
            return m->name;
        }
    }
    return NULL;
}

/* ---- expressions ---- */

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    return p;
}

static int is_word(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* The token at p for "got ..." in messages: up to the next blank, shortened. */
static void token_at(const char *p, char *buf, size_t len)
{
    size_t n = strcspn(p, " \t");

    if (*p == '\0') {
        snprintf(buf, len, "the end");
        return;
    }
    snprintf(buf, len, "\"%.*s%s\"", (int)(n > 16 ? 16 : n), p, n > 16 ? "..." : "");
}

static int expr_fail(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int expr_fail(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;

    if (why != NULL && whylen > 0) {
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

int rules_parse_expr(const char *s, struct rule_expr *out, char *why, size_t whylen)
{
    struct rule_expr e = {RULE_FN_LAST, 0, RULE_GT, 0};
    const char *p = NULL;
    const char *start = NULL;
    char tok[32];
    size_t n = 0;
    size_t i = 0;

    if (s == NULL) {
        return expr_fail(why, whylen, "empty condition (expected something like avg(5m) > 90)");
    }
    p = skip_ws(s);
    if (*p == '\0') {
        return expr_fail(why, whylen, "empty condition (expected something like avg(5m) > 90)");
    }
    /* function */
    start = p;
    while (is_word(*p)) {
        p++;
    }
    n = (size_t)(p - start);
    if (n == 0) {
        token_at(start, tok, sizeof(tok));
        return expr_fail(why, whylen, "expected a function (" FN_LIST ") at character %zu, got %s",
                         (size_t)(start - s) + 1, tok);
    }
    for (i = 0; i < sizeof(fn_names) / sizeof(fn_names[0]); i++) {
        if (strlen(fn_names[i]) == n && strncmp(fn_names[i], start, n) == 0) {
            break;
        }
    }
    if (i == sizeof(fn_names) / sizeof(fn_names[0])) {
        return expr_fail(why, whylen, "unknown function \"%.*s\" (expected " FN_LIST ")",
                         (int)(n > 24 ? 24 : n), start);
    }
    e.fn = (enum rule_fn)i;
    p = skip_ws(p);
    /* window */
    if (e.fn == RULE_FN_LAST) {
        if (*p == '(') {
            return expr_fail(why, whylen,
                             "\"last\" takes no window at character %zu (write \"last > 90\")",
                             (size_t)(p - s) + 1);
        }
    } else {
        if (*p != '(') {
            token_at(p, tok, sizeof(tok));
            return expr_fail(why, whylen,
                             "expected \"(\" and a window after \"%s\" at character %zu, like "
                             "%s(5m), got %s",
                             fn_names[e.fn], (size_t)(p - s) + 1, fn_names[e.fn], tok);
        }
        p = skip_ws(p + 1);
        start = p;
        while (is_word(*p)) {
            p++;
        }
        n = (size_t)(p - start);
        if (n == 0) {
            token_at(start, tok, sizeof(tok));
            return expr_fail(why, whylen, "expected a window like 5m at character %zu, got %s",
                             (size_t)(start - s) + 1, tok);
        }
        if (n >= sizeof(tok)) {
            return expr_fail(why, whylen, "window at character %zu is too long",
                             (size_t)(start - s) + 1);
        }
        memcpy(tok, start, n);
        tok[n] = '\0';
        if (wp_parse_duration_ms(tok, &e.window_ms) < 0) {
            return expr_fail(why, whylen,
                             "bad window \"%s\" at character %zu (expected a duration like 30s, "
                             "5m or 1h)",
                             tok, (size_t)(start - s) + 1);
        }
        if (e.window_ms <= 0) {
            return expr_fail(why, whylen, "window at character %zu must be longer than 0",
                             (size_t)(start - s) + 1);
        }
        p = skip_ws(p);
        if (*p != ')') {
            token_at(p, tok, sizeof(tok));
            return expr_fail(why, whylen,
                             "expected \")\" after the window at character %zu, got %s",
                             (size_t)(p - s) + 1, tok);
        }
        p = skip_ws(p + 1);
    }
    /* operator */
    if (p[0] == '>' && p[1] == '=') {
        e.cmp = RULE_GE;
        p += 2;
    } else if (p[0] == '<' && p[1] == '=') {
        e.cmp = RULE_LE;
        p += 2;
    } else if (p[0] == '=' && p[1] == '=') {
        e.cmp = RULE_EQC;
        p += 2;
    } else if (p[0] == '!' && p[1] == '=') {
        e.cmp = RULE_NEC;
        p += 2;
    } else if (p[0] == '>') {
        e.cmp = RULE_GT;
        p++;
    } else if (p[0] == '<') {
        e.cmp = RULE_LT;
        p++;
    } else {
        token_at(p, tok, sizeof(tok));
        return expr_fail(why, whylen,
                         "expected an operator (>, >=, <, <=, == or !=) at "
                         "character %zu, got %s",
                         (size_t)(p - s) + 1, tok);
    }
    /* number */
    p = skip_ws(p);
    n = scan_number(p);
    if (n == 0) {
        token_at(p, tok, sizeof(tok));
        return expr_fail(why, whylen, "expected a number at character %zu, got %s",
                         (size_t)(p - s) + 1, tok);
    }
    e.threshold = strtod(p, NULL);
    if (!isfinite(e.threshold)) {
        return expr_fail(why, whylen, "number at character %zu is out of range",
                         (size_t)(p - s) + 1);
    }
    p = skip_ws(p + n);
    if (*p != '\0') {
        token_at(p, tok, sizeof(tok));
        return expr_fail(why, whylen,
                         "unexpected %s at character %zu after the number (expected the end)", tok,
                         (size_t)(p - s) + 1);
    }
    *out = e;
    return 0;
}

/* ---- freeing ---- */

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++) {
        free(v[i]);
    }
    free(v);
}

static void rule_cleanup(struct rule *r)
{
    free(r->name);
    free(r->file);
    free(r->metric);
    for (size_t i = 0; i < r->nmatch; i++) {
        free(r->match[i].label);
        free(r->match[i].value);
        pcre2_code_free(r->match[i].re);
    }
    free(r->match);
    strv_free(r->groups, r->ngroups);
    free(r->log_pattern);
    pcre2_code_free(r->log_re);
    strv_free(r->states, r->nstates);
    free(r->category);
    strv_free(r->key, r->nkey);
    free(r->summary);
    free(r->description);
    free(r->runbook);
    memset(r, 0, sizeof(*r));
}

static void group_cleanup(struct rule_group *g)
{
    free(g->name);
    strv_free(g->hosts, g->nhosts);
}

static void maint_cleanup(struct rule_maint *m)
{
    free(m->name);
    strv_free(m->hosts, m->nhosts);
    strv_free(m->groups, m->ngroups);
}

static void dep_cleanup(struct rule_dep *d)
{
    free(d->parent);
    strv_free(d->suppress, d->nsuppress);
}

void rules_free(struct rule_set *rs)
{
    if (rs == NULL) {
        return;
    }
    for (size_t i = 0; i < rs->nrules; i++) {
        rule_cleanup(&rs->rules[i]);
    }
    for (size_t i = 0; i < rs->ngroups; i++) {
        group_cleanup(&rs->groups[i]);
    }
    for (size_t i = 0; i < rs->nmaint; i++) {
        maint_cleanup(&rs->maint[i]);
    }
    for (size_t i = 0; i < rs->ndeps; i++) {
        dep_cleanup(&rs->deps[i]);
    }
    free(rs->rules);
    free(rs->groups);
    free(rs->maint);
    free(rs->deps);
    free(rs);
}

/* ---- the loader ---- */

/* Where an item came from, kept until the cross-references are checked. */
struct src {
    struct wp_conf_doc *doc;
    const char *file;
    struct wp_conf_node *node; /* the item (rule, maintenance, dependency) or group value */
    struct wp_conf_node *at;   /* the rule's name value, the group's key */
};

struct loader {
    struct rule_set *rs;
    struct wp_conf_doc **docs;
    char **files;
    size_t ndocs;
    struct src *rule_src, *group_src, *maint_src, *dep_src;
};

/* Append one zeroed element to an array of n, growing it one at a time (files are small). */
static void *push(void *arr, size_t n, size_t size)
{
    char *p = wp_xrealloc(arr, (n + 1) * size);

    memset(p + n * size, 0, size);
    return p;
}

/* A scalar or a list of scalars into a string vector; path names it in messages. */
static int node_strv(struct wp_conf_doc *doc, struct wp_conf_node *n, const char *path,
                     const char *what, char ***out, size_t *nout, struct wp_conf_err *err)
{
    char got[GOT_MAX * 4 + 16];
    size_t len = 0;

    *out = NULL;
    *nout = 0;
    if (wp_conf_is_scalar(n) && !is_null(n)) {
        *out = wp_xcalloc(2, sizeof(**out));
        (*out)[0] = wp_xstrdup(wp_conf_scalar(n));
        *nout = 1;
        return 0;
    }
    if (!wp_conf_is_seq(n)) {
        return wp_conf_errorf(doc, n, err, "%s: expected %s or a list of them, got %s", path, what,
                              describe(n, got, sizeof(got)));
    }
    len = wp_conf_seq_len(doc, n);
    *out = wp_xcalloc(len + 1, sizeof(**out));
    for (size_t i = 0; i < len; i++) {
        struct wp_conf_node *it = wp_conf_seq_at(doc, n, i);
        if (!wp_conf_is_scalar(it) || is_null(it)) {
            return wp_conf_errorf(doc, it, err, "%s[%zu]: expected %s, got %s", path, i, what,
                                  describe(it, got, sizeof(got)));
        }
        (*out)[i] = wp_xstrdup(wp_conf_scalar(it));
        *nout = i + 1;
    }
    return 0;
}

/* The n-th entry node of a list given as a scalar or a sequence (for messages). */
static struct wp_conf_node *strv_node(struct wp_conf_doc *doc, struct wp_conf_node *n, size_t i)
{
    if (wp_conf_is_seq(n)) {
        return wp_conf_seq_at(doc, n, i);
    }
    return n;
}

static int compile_re(struct wp_conf_doc *doc, struct wp_conf_node *at, const char *path,
                      const char *pattern, uint32_t opts, pcre2_code **out, struct wp_conf_err *err)
{
    int code = 0;
    PCRE2_SIZE off = 0;
    PCRE2_UCHAR msg[256];

    *out = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                         opts | PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &code, &off, NULL);
    if (*out != NULL) {
        return 0;
    }
    if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0) {
        snprintf((char *)msg, sizeof(msg), "error %d", code);
    }
    return wp_conf_errorf(doc, at, err, "%s: regex \"%s\" does not compile: %s at offset %zu", path,
                          pattern, (const char *)msg, (size_t)off);
}

/* ---- groups ---- */

static int parse_groups(struct loader *L, struct wp_conf_doc *doc, const char *file,
                        struct wp_conf_node *node, struct wp_conf_err *err)
{
    struct rule_set *rs = L->rs;
    char got[GOT_MAX * 4 + 16];
    char path[160];

    if (is_null(node)) {
        return 0;
    }
    if (!wp_conf_is_map(node)) {
        return wp_conf_errorf(doc, node, err,
                              "groups: expected a mapping of group names to host globs, like "
                              "{db: [\"db-*\"]}, got %s",
                              describe(node, got, sizeof(got)));
    }
    for (size_t i = 0; i < map_len(node); i++) {
        struct wp_conf_node *k = NULL;
        struct wp_conf_node *v = NULL;
        struct rule_group g = {NULL, NULL, 0};
        int rc = 0;

        map_at(doc, node, i, &k, &v);
        const char *name = wp_conf_scalar(k);
        if (name == NULL || name[0] == '\0') {
            return wp_conf_errorf(doc, k, err, "groups: expected a group name, got %s",
                                  describe(k, got, sizeof(got)));
        }
        for (size_t j = 0; j < rs->ngroups; j++) {
            if (strcmp(rs->groups[j].name, name) == 0) {
                const struct src *f = &L->group_src[j];
                return wp_conf_errorf(doc, k, err,
                                      "group \"%s\" is defined twice (first at %s:%d:%d)", name,
                                      f->file, node_line(f->at), node_col(f->at));
            }
        }
        snprintf(path, sizeof(path), "groups.%s", name);
        rc = node_strv(doc, v, path, "a host glob", &g.hosts, &g.nhosts, err);
        if (rc == 0 && g.nhosts == 0) {
            rc = wp_conf_errorf(doc, v, err, "%s: expected at least one host glob", path);
        }
        if (rc < 0) {
            strv_free(g.hosts, g.nhosts);
            return rc;
        }
        g.name = wp_xstrdup(name);
        rs->groups = push(rs->groups, rs->ngroups, sizeof(*rs->groups));
        L->group_src = push(L->group_src, rs->ngroups, sizeof(*L->group_src));
        rs->groups[rs->ngroups] = g;
        L->group_src[rs->ngroups] = (struct src){doc, file, v, k};
        rs->ngroups++;
    }
    return 0;
}

/* ---- maintenance ---- */

struct weekly_in {
    struct wp_strlist days;
    char *from, *to;
};

static const struct wp_opt weekly_opts[] = {
    {.name = "days",
     .type = WP_OPT_STRLIST,
     .help = "days the window starts on: sun, mon, tue, wed, thu, fri, sat",
     .offset = offsetof(struct weekly_in, days),
     .required = 1},
    {.name = "from",
     .type = WP_OPT_STR,
     .help = "start, HH:MM local time of the collector",
     .offset = offsetof(struct weekly_in, from),
     .required = 1},
    {.name = "to",
     .type = WP_OPT_STR,
     .help = "end, HH:MM (earlier than from: the window wraps midnight; 24:00 "
             "= midnight)",
     .offset = offsetof(struct weekly_in, to),
     .required = 1},
    WP_OPT_TABLE_END,
};

struct maint_in {
    char *name;
    struct wp_conf_node *hosts, *groups, *weekly, *from, *to;
};

static const struct wp_opt maint_opts[] = {
    {.name = "name",
     .type = WP_OPT_STR,
     .help = "shown on suppressed incidents",
     .offset = offsetof(struct maint_in, name),
     .required = 1},
    {.name = "hosts",
     .type = WP_OPT_CUSTOM,
     .help = "host globs",
     .offset = offsetof(struct maint_in, hosts),
     .custom = wp_conf_capture_node},
    {.name = "groups",
     .type = WP_OPT_CUSTOM,
     .help = "host groups",
     .offset = offsetof(struct maint_in, groups),
     .custom = wp_conf_capture_node},
    {.name = "weekly",
     .type = WP_OPT_CUSTOM,
     .help = "{days, from, to}: a weekly window in the collector's local time",
     .offset = offsetof(struct maint_in, weekly),
     .custom = wp_conf_capture_node},
    {.name = "from",
     .type = WP_OPT_CUSTOM,
     .help = "one-off start, RFC 3339",
     .offset = offsetof(struct maint_in, from),
     .custom = wp_conf_capture_node},
    {.name = "to",
     .type = WP_OPT_CUSTOM,
     .help = "one-off end, RFC 3339",
     .offset = offsetof(struct maint_in, to),
     .custom = wp_conf_capture_node},
    WP_OPT_TABLE_END,
};

static int parse_days(struct wp_conf_doc *doc, struct wp_conf_node *wnode,
                      const struct weekly_in *w, const char *path, unsigned *days,
                      struct wp_conf_err *err)
{
    static const char *const shortn[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
    static const char *const longn[] = {"sunday",   "monday", "tuesday", "wednesday",
                                        "thursday", "friday", "saturday"};
    struct wp_conf_node *dn = wp_conf_map_get(doc, wnode, "days");

    *days = 0;
    if (w->days.n == 0) {
        return wp_conf_errorf(doc, dn, err, "%s.days: expected at least one day", path);
    }
    for (size_t i = 0; i < w->days.n; i++) {
        size_t d = 0;
        for (d = 0; d < 7; d++) {
            if (strcasecmp(w->days.v[i], shortn[d]) == 0 ||
                strcasecmp(w->days.v[i], longn[d]) == 0) {
                break;
            }
        }
        if (d == 7) {
            return wp_conf_errorf(doc, strv_node(doc, dn, i), err,
                                  "%s.days: unknown day \"%s\" (expected sun, mon, tue, wed, thu, "
                                  "fri or sat)",
                                  path, w->days.v[i]);
        }
        *days |= 1u << d;
    }
    return 0;
}

static int parse_weekly(struct wp_conf_doc *doc, struct wp_conf_node *wnode, struct rule_maint *m,
                        struct wp_conf_err *err)
{
    int rc = 0;
    struct weekly_in w;

    memset(&w, 0, sizeof(w));
    rc = wp_opts_apply(doc, wnode, weekly_opts, &w, "weekly", err);
    if (rc < 0) {
        goto out;
    }
    rc = parse_days(doc, wnode, &w, "weekly", &m->days, err);
    if (rc < 0) {
        goto out;
    }
    if (wp_parse_hhmm(w.from, 0, &m->from_min) < 0) {
        rc = wp_conf_errorf(doc, wp_conf_map_get(doc, wnode, "from"), err,
                            "weekly.from: expected a time like 02:00 (00:00 to 23:59), got "
                            "\"%s\"",
                            w.from);
        goto out;
    }
    if (wp_parse_hhmm(w.to, 1, &m->to_min) < 0) {
        rc = wp_conf_errorf(doc, wp_conf_map_get(doc, wnode, "to"), err,
                            "weekly.to: expected a time like 04:00 (00:00 to 24:00), got \"%s\"",
                            w.to);
        goto out;
    }
    if (m->to_min == m->from_min) {
        rc = wp_conf_errorf(doc, wp_conf_map_get(doc, wnode, "to"), err,
                            "weekly.to: same time as from, the window would be empty or a whole "
                            "day (for a whole day write from: \"00:00\", to: \"24:00\")");
        goto out;
    }
    m->weekly = 1;
out:
    wp_opts_free(weekly_opts, &w);
    return rc;
}

static int parse_oneoff(struct wp_conf_doc *doc, struct wp_conf_node *item,
                        const struct maint_in *mi, struct rule_maint *m, struct wp_conf_err *err)
{
    char got[GOT_MAX * 4 + 16];

    if (mi->from == NULL || mi->to == NULL) {
        return wp_conf_errorf(doc, item, err,
                              "maintenance \"%s\": expected weekly: {days, from, to} or one-off "
                              "from: and to: times",
                              mi->name);
    }
    if (wp_conf_scalar(mi->from) == NULL ||
        parse_rfc3339(wp_conf_scalar(mi->from), &m->start_ms) < 0) {
        return wp_conf_errorf(doc, mi->from, err,
                              "from: expected an RFC 3339 time like 2026-12-01T22:00:00+08:00, "
                              "got %s",
                              describe(mi->from, got, sizeof(got)));
    }
    if (wp_conf_scalar(mi->to) == NULL || parse_rfc3339(wp_conf_scalar(mi->to), &m->end_ms) < 0) {
        return wp_conf_errorf(doc, mi->to, err,
                              "to: expected an RFC 3339 time like 2026-12-02T02:00:00+08:00, got "
                              "%s",
                              describe(mi->to, got, sizeof(got)));
    }
    if (m->start_ms >= m->end_ms) {
        return wp_conf_errorf(doc, mi->to, err, "to: must be later than from (%s)",
                              wp_conf_scalar(mi->from));
    }
    return 0;
}

static int parse_maint_item(struct loader *L, struct wp_conf_doc *doc, const char *file,
                            struct wp_conf_node *item, size_t idx, struct wp_conf_err *err)
{
    struct rule_set *rs = L->rs;
    struct maint_in mi;
    struct rule_maint m;
    char path[48];
    int rc = 0;

    memset(&mi, 0, sizeof(mi));
    memset(&m, 0, sizeof(m));
    snprintf(path, sizeof(path), "maintenance[%zu]", idx);
    rc = wp_opts_apply(doc, item, maint_opts, &mi, path, err);
    if (rc < 0) {
        goto out;
    }
    /* an empty list would silently mean every host: leave the key out for that */
    if (mi.hosts != NULL) {
        rc = node_strv(doc, mi.hosts, "hosts", "a host glob", &m.hosts, &m.nhosts, err);
        if (rc == 0 && m.nhosts == 0) {
            rc = wp_conf_errorf(doc, mi.hosts, err,
                                "hosts: expected at least one host glob (without hosts: and "
                                "groups: the window covers every host)");
        }
        if (rc < 0) {
            goto out;
        }
    }
    if (mi.groups != NULL) {
        rc = node_strv(doc, mi.groups, "groups", "a group name", &m.groups, &m.ngroups, err);
        if (rc == 0 && m.ngroups == 0) {
            rc = wp_conf_errorf(doc, mi.groups, err,
                                "groups: expected at least one group name (without hosts: and "
                                "groups: the window covers every host)");
        }
        if (rc < 0) {
            goto out;
        }
    }
    if (mi.weekly != NULL) {
        if (mi.from != NULL || mi.to != NULL) {
            rc = wp_conf_errorf(doc, mi.from != NULL ? mi.from : mi.to, err,
                                "%s: a one-off time next to weekly: (put from/to inside weekly: "
                                "for a weekly window, or make two windows)",
                                mi.from != NULL ? "from" : "to");
            goto out;
        }
        rc = parse_weekly(doc, mi.weekly, &m, err);
    } else {
        rc = parse_oneoff(doc, item, &mi, &m, err);
    }
    if (rc < 0) {
        goto out;
    }
    m.name = mi.name;
    mi.name = NULL;
    rs->maint = push(rs->maint, rs->nmaint, sizeof(*rs->maint));
    L->maint_src = push(L->maint_src, rs->nmaint, sizeof(*L->maint_src));
    rs->maint[rs->nmaint] = m;
    L->maint_src[rs->nmaint] = (struct src){doc, file, item, item};
    rs->nmaint++;
    memset(&m, 0, sizeof(m));
out:
    maint_cleanup(&m);
    wp_opts_free(maint_opts, &mi);
    return rc;
}

/* ---- dependencies ---- */

struct dep_in {
    char *parent;
    struct wp_strlist suppress;
};

static const struct wp_opt dep_opts[] = {
    {.name = "parent",
     .type = WP_OPT_STR,
     .help = "while this rule fires on a host ...",
     .offset = offsetof(struct dep_in, parent),
     .required = 1},
    {.name = "suppress",
     .type = WP_OPT_STRLIST,
     .help = "... these rules of the same host are suppressed (\"*\" = every "
             "other rule)",
     .offset = offsetof(struct dep_in, suppress),
     .required = 1},
    WP_OPT_TABLE_END,
};

static int parse_dep_item(struct loader *L, struct wp_conf_doc *doc, const char *file,
                          struct wp_conf_node *item, size_t idx, struct wp_conf_err *err)
{
    struct rule_set *rs = L->rs;
    struct dep_in di;
    char path[48];
    int rc = 0;

    memset(&di, 0, sizeof(di));
    snprintf(path, sizeof(path), "dependencies[%zu]", idx);
    rc = wp_opts_apply(doc, item, dep_opts, &di, path, err);
    if (rc < 0) {
        goto out;
    }
    struct wp_conf_node *sn = wp_conf_map_get(doc, item, "suppress");
    if (di.suppress.n == 0) {
        rc = wp_conf_errorf(doc, sn, err,
                            "suppress: expected at least one rule name (or \"*\" for every "
                            "other rule)");
        goto out;
    }
    for (size_t i = 0; di.suppress.n > 1 && i < di.suppress.n; i++) {
        if (strcmp(di.suppress.v[i], "*") == 0) {
            rc = wp_conf_errorf(doc, strv_node(doc, sn, i), err,
                                "suppress: \"*\" (every other rule) must be the only entry");
            goto out;
        }
    }
    rs->deps = push(rs->deps, rs->ndeps, sizeof(*rs->deps));
    L->dep_src = push(L->dep_src, rs->ndeps, sizeof(*L->dep_src));
    rs->deps[rs->ndeps].parent = di.parent;
    rs->deps[rs->ndeps].suppress = di.suppress.v;
    rs->deps[rs->ndeps].nsuppress = di.suppress.n;
    L->dep_src[rs->ndeps] = (struct src){doc, file, item, item};
    rs->ndeps++;
    memset(&di, 0, sizeof(di));
out:
    wp_opts_free(dep_opts, &di);
    return rc;
}

/* ---- rules ---- */

/* The custom decoder of impact and urgency: arg is the key for the error. */
static int decode_level(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                        const void *arg, struct wp_conf_err *err)
{
    static const char *const names[] = {"high", "medium", "low"};
    const char *what = arg;
    const char *s = wp_conf_scalar(node);
    char got[GOT_MAX * 4 + 16];

    for (int i = 0; s != NULL && i < 3; i++) {
        if (strcasecmp(s, names[i]) == 0) {
            *(enum rule_level *)field = (enum rule_level)(RULE_HIGH + i);
            return 0;
        }
    }
    return wp_conf_errorf(doc, node, err, "%s: expected high, medium or low, got %s", what,
                          describe(node, got, sizeof(got)));
}

/* A custom decoder of a number (a double field): arg is the key path for the error. */
static int decode_number(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                         const void *arg, struct wp_conf_err *err)
{
    const char *what = arg;
    char got[GOT_MAX * 4 + 16];
    const char *s = wp_conf_scalar(node);

    if (s == NULL || is_null(node) || parse_number(s, field) < 0) {
        return wp_conf_errorf(doc, node, err, "%s: expected a number, got %s", what,
                              describe(node, got, sizeof(got)));
    }
    return 0;
}

/* decode_number for a percentage above 0 and at most 100: arg is the key path. */
static int decode_percent(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                          const void *arg, struct wp_conf_err *err)
{
    double *v = field;
    int rc = decode_number(doc, node, v, arg, err);

    if (rc == 0 && !(*v > 0 && *v <= 100)) {
        rc = wp_conf_errorf(doc, node, err,
                            "%s: expected a percentage above 0 and at most 100, got %g",
                            (const char *)arg, *v);
    }
    return rc;
}

struct log_in {
    char *pattern;
    int64_t count;
    int64_t window_ms;
    int ignore_case;
};

static const struct wp_opt log_opts[] = {
    {.name = "pattern",
     .type = WP_OPT_STR,
     .help = "PCRE2 regex searched in each line",
     .offset = offsetof(struct log_in, pattern),
     .required = 1},
    {.name = "count",
     .type = WP_OPT_INT,
     .def = "1",
     .help = "matching lines within window",
     .offset = offsetof(struct log_in, count),
     .min = 1,
     .max = 1000000},
    {.name = "window",
     .type = WP_OPT_DURATION,
     .help = "the window lines are counted in",
     .offset = offsetof(struct log_in, window_ms),
     .min = 1000,
     .required = 1},
    {.name = "ignore_case",
     .type = WP_OPT_BOOL,
     .def = "false",
     .help = "match regardless of case",
     .offset = offsetof(struct log_in, ignore_case)},
    WP_OPT_TABLE_END,
};

struct line_state_in {
    char *state;
    int64_t for_ms;
};

static const struct wp_opt line_state_opts[] = {
    {.name = "state",
     .type = WP_OPT_STR,
     .help = "line state, e.g. blocked",
     .offset = offsetof(struct line_state_in, state),
     .required = 1},
    {.name = "for",
     .type = WP_OPT_DURATION,
     .help = "how long the line must stay in it",
     .offset = offsetof(struct line_state_in, for_ms),
     .required = 1},
    WP_OPT_TABLE_END,
};

struct line_share_in {
    struct wp_strlist states;
    double above;
};

static const struct wp_opt line_share_opts[] = {
    {.name = "states",
     .type = WP_OPT_STRLIST,
     .help = "line states counted",
     .offset = offsetof(struct line_share_in, states),
     .required = 1},
    {.name = "above",
     .type = WP_OPT_CUSTOM,
     .help = "percent of the group's lines, above 0 and at most 100",
     .offset = offsetof(struct line_share_in, above),
     .required = 1,
     .custom = decode_percent,
     .arg = "line_share.above"},
    WP_OPT_TABLE_END,
};

struct line_mass_in {
    struct wp_strlist states;
    double share;
    int64_t within_ms;
    int64_t min_lines;
};

static const struct wp_opt line_mass_opts[] = {
    {.name = "states",
     .type = WP_OPT_STRLIST,
     .help = "line states a mass change goes into (default blocked, unavailable, "
             "out_of_service)",
     .offset = offsetof(struct line_mass_in, states)},
    {.name = "share",
     .type = WP_OPT_CUSTOM,
     .help = "percent of the group's lines that changed, above 0 and at most 100 (default "
             "80)",
     .offset = offsetof(struct line_mass_in, share),
     .custom = decode_percent,
     .arg = "line_mass.share"},
    {.name = "within",
     .type = WP_OPT_DURATION,
     .def = "60s",
     .help = "the window the changes happened in",
     .offset = offsetof(struct line_mass_in, within_ms),
     .min = 1000,
     .max = 86400000},
    {.name = "min_lines",
     .type = WP_OPT_INT,
     .def = "5",
     .help = "groups with fewer lines changed never count as a mass change",
     .offset = offsetof(struct line_mass_in, min_lines),
     .min = 1,
     .max = 1000000},
    WP_OPT_TABLE_END,
};

static const char *const check_status_names[] = {"warning", "critical", NULL};

struct check_in {
    int status;
    int64_t consecutive;
};

static const struct wp_opt check_opts[] = {
    {.name = "status",
     .type = WP_OPT_ENUM,
     .help = "warning (warning or worse) or critical",
     .offset = offsetof(struct check_in, status),
     .required = 1,
     .enum_names = check_status_names},
    {.name = "consecutive",
     .type = WP_OPT_INT,
     .def = "1",
     .help = "results in a row",
     .offset = offsetof(struct check_in, consecutive),
     .min = 1,
     .max = 1000000},
    WP_OPT_TABLE_END,
};

struct forecast_in {
    double limit;
    int64_t within_ms;
    int64_t window_ms;
};

static const struct wp_opt forecast_opts[] = {
    {.name = "limit",
     .type = WP_OPT_CUSTOM,
     .help = "the value the trend must not reach",
     .offset = offsetof(struct forecast_in, limit),
     .required = 1,
     .custom = decode_number,
     .arg = "forecast.limit"},
    {.name = "within",
     .type = WP_OPT_DURATION,
     .help = "how far ahead",
     .offset = offsetof(struct forecast_in, within_ms),
     .min = 1000,
     .required = 1},
    {.name = "window",
     .type = WP_OPT_DURATION,
     .def = "1d",
     .help = "history the trend is fitted over",
     .offset = offsetof(struct forecast_in, window_ms),
     .min = 60000},
    WP_OPT_TABLE_END,
};

static int valid_rule_name(const char *s)
{
    if (*s == '\0') {
        return 0;
    }
    for (; *s != '\0'; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '.' ||
              *s == '-')) {
            return 0;
        }
    }
    return 1;
}

static int decode_match(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                        const void *arg, struct wp_conf_err *err)
{
    struct rule *r = field;
    static const char *const ops[] = {"eq", "not", "glob", "not_glob", "re", "not_re"};
    static const enum rule_match_op opv[] = {RULE_EQ,    RULE_NE, RULE_GLOB,
                                             RULE_NGLOB, RULE_RE, RULE_NRE};
    char got[GOT_MAX * 4 + 16];
    char path[160];
    size_t n = map_len(node);

    (void)arg;
    if (is_null(node)) {
        return 0;
    }
    if (!wp_conf_is_map(node)) {
        return wp_conf_errorf(doc, node, err,
                              "match: expected a mapping of labels, like {instance: {glob: "
                              "\"/u*\"}}, got %s",
                              describe(node, got, sizeof(got)));
    }
    r->match = wp_xcalloc(n, sizeof(*r->match));
    for (size_t i = 0; i < n; i++) {
        struct wp_conf_node *k = NULL;
        struct wp_conf_node *v = NULL;
        struct wp_conf_node *vn = NULL;
        struct rule_matcher *m = &r->match[r->nmatch];
        const char *label = NULL;
        const char *opname = "eq";

        map_at(doc, node, i, &k, &v);
        label = wp_conf_scalar(k);
        if (label == NULL || label[0] == '\0') {
            return wp_conf_errorf(doc, k, err, "match: expected a label name, got %s",
                                  describe(k, got, sizeof(got)));
        }
        snprintf(path, sizeof(path), "match.%s", label);
        if (wp_conf_is_scalar(v) && !is_null(v)) {
            m->op = RULE_EQ;
            vn = v;
        } else if (wp_conf_is_map(v) && map_len(v) == 1) {
            struct wp_conf_node *ok = NULL;
            size_t o = 0;
            map_at(doc, v, 0, &ok, &vn);
            const char *os = wp_conf_scalar(ok);
            for (o = 0; os != NULL && o < sizeof(ops) / sizeof(ops[0]); o++) {
                if (strcmp(os, ops[o]) == 0) {
                    break;
                }
            }
            if (os == NULL || o == sizeof(ops) / sizeof(ops[0])) {
                return wp_conf_errorf(doc, ok, err,
                                      "%s: unknown operator %s (expected eq, not, glob, "
                                      "not_glob, re or not_re)",
                                      path, describe(ok, got, sizeof(got)));
            }
            m->op = opv[o];
            opname = ops[o];
            if (!wp_conf_is_scalar(vn) || is_null(vn)) {
                return wp_conf_errorf(doc, vn, err, "%s.%s: expected a string, got %s", path,
                                      opname, describe(vn, got, sizeof(got)));
            }
        } else {
            return wp_conf_errorf(doc, v, err,
                                  "%s: expected a value or one operator, like {glob: \"db-*\"} "
                                  "(eq, not, glob, not_glob, re or not_re), got %s",
                                  path, describe(v, got, sizeof(got)));
        }
        m->label = wp_xstrdup(label);
        m->value = wp_xstrdup(wp_conf_scalar(vn));
        r->nmatch++;
        if (m->op == RULE_RE || m->op == RULE_NRE) {
            char rpath[200];
            snprintf(rpath, sizeof(rpath), "%s.%s", path, opname);
            int rc = compile_re(doc, vn, rpath, m->value, PCRE2_ANCHORED | PCRE2_ENDANCHORED,
                                &m->re, err);
            if (rc < 0) {
                return rc;
            }
        }
    }
    return 0;
}

static int decode_log(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                      const void *arg, struct wp_conf_err *err)
{
    struct rule *r = field;
    struct log_in li;
    int rc = 0;

    (void)arg;
    memset(&li, 0, sizeof(li));
    rc = wp_opts_apply(doc, node, log_opts, &li, "log", err);
    if (rc < 0) {
        goto out;
    }
    if (li.pattern[0] == '\0') {
        rc = wp_conf_errorf(doc, wp_conf_map_get(doc, node, "pattern"), err,
                            "log.pattern: expected a regex, got an empty string");
        goto out;
    }
    rc = compile_re(doc, wp_conf_map_get(doc, node, "pattern"), "log.pattern", li.pattern,
                    li.ignore_case ? PCRE2_CASELESS : 0, &r->log_re, err);
    if (rc < 0) {
        goto out;
    }
    r->kind = RULE_LOG;
    r->log_pattern = li.pattern;
    li.pattern = NULL;
    r->log_count = li.count;
    r->log_window_ms = li.window_ms;
out:
    wp_opts_free(log_opts, &li);
    return rc;
}

static int decode_line_state(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                             const void *arg, struct wp_conf_err *err)
{
    struct rule *r = field;
    struct line_state_in ls;
    int rc = 0;

    (void)arg;
    memset(&ls, 0, sizeof(ls));
    rc = wp_opts_apply(doc, node, line_state_opts, &ls, "line_state", err);
    if (rc < 0) {
        goto out;
    }
    if (ls.state[0] == '\0') {
        rc = wp_conf_errorf(doc, wp_conf_map_get(doc, node, "state"), err,
                            "line_state.state: expected a line state like blocked");
        goto out;
    }
    r->kind = RULE_LINE_STATE;
    r->states = wp_xcalloc(2, sizeof(*r->states));
    r->states[0] = ls.state;
    r->nstates = 1;
    ls.state = NULL;
    r->state_for_ms = ls.for_ms;
out:
    wp_opts_free(line_state_opts, &ls);
    return rc;
}

static int decode_line_share(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                             const void *arg, struct wp_conf_err *err)
{
    struct rule *r = field;
    struct line_share_in ls;
    int rc = 0;

    (void)arg;
    memset(&ls, 0, sizeof(ls));
    rc = wp_opts_apply(doc, node, line_share_opts, &ls, "line_share", err);
    if (rc < 0) {
        goto out;
    }
    if (ls.states.n == 0) {
        rc = wp_conf_errorf(doc, wp_conf_map_get(doc, node, "states"), err,
                            "line_share.states: expected at least one line state");
        goto out;
    }
    r->kind = RULE_LINE_SHARE;
    r->states = ls.states.v;
    r->nstates = ls.states.n;
    memset(&ls.states, 0, sizeof(ls.states));
    r->share_above_pct = ls.above;
out:
    wp_opts_free(line_share_opts, &ls);
    return rc;
}

static int decode_line_mass(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                            const void *arg, struct wp_conf_err *err)
{
    struct rule *r = field;
    struct line_mass_in lm;
    int rc = 0;

    (void)arg;
    memset(&lm, 0, sizeof(lm));
    rc = wp_opts_apply(doc, node, line_mass_opts, &lm, "line_mass", err);
    if (rc < 0) {
        goto out;
    }
    if (lm.states.n == 0 && wp_conf_map_get(doc, node, "states") != NULL) {
        rc = wp_conf_errorf(doc, wp_conf_map_get(doc, node, "states"), err,
                            "line_mass.states: expected at least one line state");
        goto out;
    }
    if (lm.states.n == 0) {
        static const char *const def[] = {"blocked", "unavailable", "out_of_service"};
        size_t nd = sizeof(def) / sizeof(def[0]);
        lm.states.v = wp_xcalloc(nd + 1, sizeof(*lm.states.v));
        for (size_t i = 0; i < nd; i++) {
            lm.states.v[i] = wp_xstrdup(def[i]);
        }
        lm.states.n = nd;
    }
    if (wp_conf_map_get(doc, node, "share") == NULL) {
        lm.share = 80;
    }
    r->kind = RULE_LINE_MASS;
    r->states = lm.states.v;
    r->nstates = lm.states.n;
    memset(&lm.states, 0, sizeof(lm.states));
    r->share_above_pct = lm.share;
    r->mass_within_ms = lm.within_ms;
    r->mass_min_lines = lm.min_lines;
out:
    wp_opts_free(line_mass_opts, &lm);
    return rc;
}

static int decode_check(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                        const void *arg, struct wp_conf_err *err)
{
    struct rule *r = field;
    struct check_in ci;
    int rc = 0;

    (void)arg;
    memset(&ci, 0, sizeof(ci));
    rc = wp_opts_apply(doc, node, check_opts, &ci, "check", err);
    if (rc < 0) {
        return rc;
    }
    r->kind = RULE_CHECK;
    r->check_status = ci.status == 0 ? CHECK_WARNING : CHECK_CRITICAL;
    r->check_consecutive = ci.consecutive;
    return 0;
}

static int decode_forecast(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                           const void *arg, struct wp_conf_err *err)
{
    struct rule *r = field;
    struct forecast_in fi;
    int rc = 0;

    (void)arg;
    memset(&fi, 0, sizeof(fi));
    rc = wp_opts_apply(doc, node, forecast_opts, &fi, "forecast", err);
    if (rc < 0) {
        return rc;
    }
    r->kind = RULE_FORECAST;
    r->fc_limit = fi.limit;
    r->fc_within_ms = fi.within_ms;
    r->fc_window_ms = fi.window_ms;
    return 0;
}

/* Conditions, levels and matchers are decoded as their keys come, so the first error in a
 * rule is the first in the file; their decoders get the whole rule_in (offset 0), or the rule
 * being built (offsetof(struct rule_in, r)) when that is all they fill. */
struct rule_in {
    struct rule r;
    struct loader *L;
    const char *file;
    struct wp_conf_node *name_node;
    char *metric, *category, *summary, *description, *runbook;
    struct wp_strlist groups, key;
    int64_t for_ms, recover_for_ms;
};

static int decode_name(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                       const void *arg, struct wp_conf_err *err)
{
    struct rule_in *ri = field;
    const struct rule_set *rs = ri->L->rs;
    const char *name = wp_conf_scalar(node);
    char got[GOT_MAX * 4 + 16];

    (void)arg;
    if (name == NULL || is_null(node)) {
        return wp_conf_errorf(doc, node, err, "name: expected a rule name, got %s",
                              describe(node, got, sizeof(got)));
    }
    if (!valid_rule_name(name)) {
        return wp_conf_errorf(doc, node, err,
                              "name: \"%s\" is not a valid rule name (expected lower case "
                              "letters, digits, _ . or -)",
                              name);
    }
    for (size_t i = 0; i < rs->nrules; i++) {
        if (strcmp(rs->rules[i].name, name) == 0) {
            const struct src *f = &ri->L->rule_src[i];
            return wp_conf_errorf(doc, node, err,
                                  "rule \"%s\" is defined twice (first at %s:%d:%d)", name, f->file,
                                  node_line(f->node), node_col(f->node));
        }
    }
    ri->r.name = wp_xstrdup(name);
    ri->name_node = node;
    return 0;
}

static int decode_expr(struct wp_conf_doc *doc, struct wp_conf_node *node, const char *key,
                       struct rule_expr *out, struct wp_conf_err *err)
{
    char why[256];
    char got[GOT_MAX * 4 + 16];
    const char *s = wp_conf_scalar(node);

    if (s == NULL || is_null(node)) {
        return wp_conf_errorf(doc, node, err, "%s: expected a string like \"avg(5m) > 90\", got %s",
                              key, describe(node, got, sizeof(got)));
    }
    if (rules_parse_expr(s, out, why, sizeof(why)) < 0) {
        return wp_conf_errorf(doc, node, err, "%s: %s", key, why);
    }
    return 0;
}

static int decode_when(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                       const void *arg, struct wp_conf_err *err)
{
    struct rule_in *ri = field;

    (void)arg;
    return decode_expr(doc, node, "when", &ri->r.when, err);
}

static int decode_recover(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                          const void *arg, struct wp_conf_err *err)
{
    struct rule_in *ri = field;
    int rc = decode_expr(doc, node, "recover", &ri->r.recover, err);

    (void)arg;
    ri->r.has_recover = rc == 0;
    return rc;
}

static int decode_nodata(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                         const void *arg, struct wp_conf_err *err)
{
    struct rule_in *ri = field;
    const char *s = wp_conf_scalar(node);
    char got[GOT_MAX * 4 + 16];

    (void)arg;
    if (s == NULL || wp_parse_duration_ms(s, &ri->r.nodata_ms) < 0) {
        return wp_conf_errorf(doc, node, err, "nodata: expected a duration like 2m, got %s",
                              describe(node, got, sizeof(got)));
    }
    if (ri->r.nodata_ms < 1000) {
        return wp_conf_errorf(doc, node, err, "nodata: must be at least 1s, got %s", s);
    }
    return 0;
}

static const struct wp_opt rule_opts[] = {
    {.name = "name",
     .type = WP_OPT_CUSTOM,
     .help = "unique over all rules files: lower case letters, digits, _ . -",
     .required = 1,
     .custom = decode_name},
    {.name = "metric",
     .type = WP_OPT_STR,
     .help = "series group.field (globs allowed)",
     .offset = offsetof(struct rule_in, metric)},
    {.name = "match",
     .type = WP_OPT_CUSTOM,
     .help = "label matchers: {label: value | {eq|not|glob|not_glob|re|not_re: "
             "value}}",
     .offset = offsetof(struct rule_in, r),
     .custom = decode_match},
    {.name = "groups",
     .type = WP_OPT_STRLIST,
     .help = "the host must be in one of these host groups",
     .offset = offsetof(struct rule_in, groups)},
    {.name = "when",
     .type = WP_OPT_CUSTOM,
     .help = "condition \"FN(WINDOW) OP NUMBER\" or \"last OP NUMBER\"",
     .custom = decode_when},
    {.name = "for",
     .type = WP_OPT_DURATION,
     .def = "0",
     .help = "how long the condition must hold",
     .offset = offsetof(struct rule_in, for_ms)},
    {.name = "recover",
     .type = WP_OPT_CUSTOM,
     .help = "recovery condition (default: when no longer holds)",
     .custom = decode_recover},
    {.name = "recover_for",
     .type = WP_OPT_DURATION,
     .def = "0",
     .help = "how long the recovery condition must hold",
     .offset = offsetof(struct rule_in, recover_for_ms)},
    {.name = "nodata",
     .type = WP_OPT_CUSTOM,
     .help = "the series (or the whole host without metric) silent this long",
     .custom = decode_nodata},
    {.name = "log",
     .type = WP_OPT_CUSTOM,
     .help = "{pattern, count, window, ignore_case}: matching log lines in a "
             "window",
     .offset = offsetof(struct rule_in, r),
     .custom = decode_log},
    {.name = "line_state",
     .type = WP_OPT_CUSTOM,
     .help = "{state, for}: a line in a state longer than for",
     .offset = offsetof(struct rule_in, r),
     .custom = decode_line_state},
    {.name = "line_share",
     .type = WP_OPT_CUSTOM,
     .help = "{states, above}: share (%) of a group's lines in these states",
     .offset = offsetof(struct rule_in, r),
     .custom = decode_line_share},
    {.name = "line_mass",
     .type = WP_OPT_CUSTOM,
     .help = "{states, share, within, min_lines}: share (%) of a group's lines that changed "
             "into these states within a window",
     .offset = offsetof(struct rule_in, r),
     .custom = decode_line_mass},
    {.name = "check",
     .type = WP_OPT_CUSTOM,
     .help = "{status, consecutive}: a check failing N times in a row",
     .offset = offsetof(struct rule_in, r),
     .custom = decode_check},
    {.name = "forecast",
     .type = WP_OPT_CUSTOM,
     .help = "{limit, within, window}: a linear trend reaching limit",
     .offset = offsetof(struct rule_in, r),
     .custom = decode_forecast},
    {.name = "impact",
     .type = WP_OPT_CUSTOM,
     .help = "high, medium or low (default medium)",
     .offset = offsetof(struct rule_in, r.impact),
     .custom = decode_level,
     .arg = "impact"},
    {.name = "urgency",
     .type = WP_OPT_CUSTOM,
     .help = "high, medium or low (default medium)",
     .offset = offsetof(struct rule_in, r.urgency),
     .custom = decode_level,
     .arg = "urgency"},
    {.name = "category",
     .type = WP_OPT_STR,
     .def = "general",
     .help = "free text",
     .offset = offsetof(struct rule_in, category)},
    {.name = "key",
     .type = WP_OPT_STRLIST,
     .def = "instance",
     .help = "labels that tell problems apart",
     .offset = offsetof(struct rule_in, key)},
    {.name = "summary",
     .type = WP_OPT_STR,
     .def = "{rule} on {host}",
     .help = "template: {host} {agent} {instance} {metric} {rule} {value} "
             "{threshold} "
             "{label.NAME}",
     .offset = offsetof(struct rule_in, summary)},
    {.name = "description",
     .type = WP_OPT_STR,
     .help = "template",
     .offset = offsetof(struct rule_in, description)},
    {.name = "runbook",
     .type = WP_OPT_STR,
     .help = "what to do (template)",
     .offset = offsetof(struct rule_in, runbook)},
    WP_OPT_TABLE_END,
};

/* Exactly one of the cond_keys (each decoded already, in document order). */
static int check_condition(struct wp_conf_doc *doc, struct wp_conf_node *item, struct rule_in *ri,
                           struct wp_conf_err *err)
{
    static const enum rule_kind kinds[NCOND] = {RULE_THRESHOLD,  RULE_NODATA,     RULE_LOG,
                                                RULE_LINE_STATE, RULE_LINE_SHARE, RULE_CHECK,
                                                RULE_FORECAST,   RULE_LINE_MASS};
    struct wp_conf_node *at[NCOND];
    size_t first = NCOND;
    size_t second = NCOND;

    for (size_t c = 0; c < NCOND; c++) {
        at[c] = wp_conf_map_get(doc, item, cond_keys[c]);
        if (at[c] == NULL) {
            continue;
        }
        if (first == NCOND || node_before(at[c], at[first])) {
            second = first;
            first = c;
        } else if (second == NCOND || node_before(at[c], at[second])) {
            second = c;
        }
    }
    if (first == NCOND) {
        return wp_conf_errorf(doc, item, err,
                              "rule \"%s\" has no condition (expected one of " COND_LIST ")",
                              ri->r.name);
    }
    if (second != NCOND) {
        return wp_conf_errorf(doc, at[second], err,
                              "%s: rule \"%s\" already has a condition (%s); expected exactly one "
                              "of " COND_LIST,
                              cond_keys[second], ri->r.name, cond_keys[first]);
    }
    ri->r.kind = kinds[first];
    return 0;
}

static const char *kind_key(enum rule_kind k)
{
    static const char *const names[] = {
        [RULE_THRESHOLD] = "when",        [RULE_NODATA] = "nodata",         [RULE_LOG] = "log",
        [RULE_LINE_STATE] = "line_state", [RULE_LINE_SHARE] = "line_share", [RULE_CHECK] = "check",
        [RULE_FORECAST] = "forecast",     [RULE_LINE_MASS] = "line_mass",
    };
    return names[k];
}

/* Keys that only some kinds take. */
static int check_kind_keys(struct wp_conf_doc *doc, struct wp_conf_node *item,
                           const struct rule_in *ri, struct wp_conf_err *err)
{
    const struct rule *r = &ri->r;
    struct wp_conf_node *n = NULL;

    if ((r->kind == RULE_THRESHOLD || r->kind == RULE_FORECAST) && ri->metric == NULL) {
        return wp_conf_errorf(doc, item, err,
                              "rule \"%s\": %s: needs a metric (the series group.field, e.g. "
                              "metric: df.used_pct)",
                              r->name, kind_key(r->kind));
    }
    n = wp_conf_map_get(doc, item, "metric");
    if (n != NULL &&
        (r->kind == RULE_LOG || r->kind == RULE_LINE_STATE || r->kind == RULE_LINE_SHARE ||
         r->kind == RULE_LINE_MASS)) {
        return wp_conf_errorf(doc, n, err,
                              "metric: not used by %s rules (select with match: on the event's "
                              "labels)",
                              kind_key(r->kind));
    }
    n = wp_conf_map_get(doc, item, "for");
    if (n != NULL && r->kind != RULE_THRESHOLD && r->kind != RULE_FORECAST) {
        return wp_conf_errorf(doc, n, err,
                              "for: only with when: or forecast: (a %s rule has its own "
                              "duration)",
                              kind_key(r->kind));
    }
    if (r->kind != RULE_THRESHOLD) {
        const char *key = "recover";
        n = wp_conf_map_get(doc, item, key);
        if (n == NULL) {
            key = "recover_for";
            n = wp_conf_map_get(doc, item, key);
        }
        if (n != NULL) {
            return wp_conf_errorf(doc, n, err,
                                  "%s: only with when: (a %s rule recovers when its condition "
                                  "no longer holds)",
                                  key, kind_key(r->kind));
        }
    }
    return 0;
}

static int parse_rule_item(struct loader *L, struct wp_conf_doc *doc, const char *file,
                           struct wp_conf_node *item, size_t idx, struct wp_conf_err *err)
{
    struct rule_set *rs = L->rs;
    struct rule_in ri;
    char got[GOT_MAX * 4 + 16];
    int rc = 0;

    memset(&ri, 0, sizeof(ri));
    ri.L = L;
    ri.file = file;
    ri.r.impact = RULE_MEDIUM; /* custom fields keep what is set before wp_opts_apply */
    ri.r.urgency = RULE_MEDIUM;
    if (!wp_conf_is_map(item)) {
        rc = wp_conf_errorf(doc, item, err,
                            "rules[%zu]: expected a rule (a mapping with name: and a condition), "
                            "got %s",
                            idx, describe(item, got, sizeof(got)));
        goto out;
    }
    rc = wp_opts_apply(doc, item, rule_opts, &ri, "", err);
    if (rc < 0) {
        goto out;
    }
    rc = check_condition(doc, item, &ri, err);
    if (rc < 0) {
        goto out;
    }
    rc = check_kind_keys(doc, item, &ri, err);
    if (rc < 0) {
        goto out;
    }
    ri.r.file = wp_xstrdup(file);
    ri.r.line = node_line(item);
    ri.r.metric = ri.metric;
    ri.r.groups = ri.groups.v;
    ri.r.ngroups = ri.groups.n;
    ri.r.for_ms = ri.for_ms;
    ri.r.recover_for_ms = ri.recover_for_ms;
    ri.r.category = ri.category;
    ri.r.key = ri.key.v;
    ri.r.nkey = ri.key.n;
    ri.r.summary = ri.summary;
    ri.r.description = ri.description;
    ri.r.runbook = ri.runbook;
    /* moved into r: wp_opts_free must not see them */
    ri.metric = ri.category = ri.summary = ri.description = ri.runbook = NULL;
    memset(&ri.groups, 0, sizeof(ri.groups));
    memset(&ri.key, 0, sizeof(ri.key));

    rs->rules = push(rs->rules, rs->nrules, sizeof(*rs->rules));
    L->rule_src = push(L->rule_src, rs->nrules, sizeof(*L->rule_src));
    rs->rules[rs->nrules] = ri.r;
    L->rule_src[rs->nrules] = (struct src){doc, file, item, ri.name_node};
    rs->nrules++;
    memset(&ri.r, 0, sizeof(ri.r));
out:
    rule_cleanup(&ri.r);
    wp_opts_free(rule_opts, &ri);
    return rc;
}

/* ---- files ---- */

struct top_in {
    struct wp_conf_node *groups, *maintenance, *dependencies, *rules;
};

static const struct wp_opt top_opts[] = {
    {.name = "groups",
     .type = WP_OPT_CUSTOM,
     .help = "host groups: name: [host globs]",
     .offset = offsetof(struct top_in, groups),
     .custom = wp_conf_capture_node},
    {.name = "maintenance",
     .type = WP_OPT_CUSTOM,
     .help = "maintenance windows",
     .offset = offsetof(struct top_in, maintenance),
     .custom = wp_conf_capture_node},
    {.name = "dependencies",
     .type = WP_OPT_CUSTOM,
     .help = "parent rules that suppress others on the same host",
     .offset = offsetof(struct top_in, dependencies),
     .custom = wp_conf_capture_node},
    {.name = "rules",
     .type = WP_OPT_CUSTOM,
     .help = "the rules",
     .offset = offsetof(struct top_in, rules),
     .custom = wp_conf_capture_node},
    WP_OPT_TABLE_END,
};

typedef int (*item_fn)(struct loader *L, struct wp_conf_doc *doc, const char *file,
                       struct wp_conf_node *item, size_t idx, struct wp_conf_err *err);

static int parse_seq(struct loader *L, struct wp_conf_doc *doc, const char *file,
                     struct wp_conf_node *node, const char *what, const char *like, item_fn fn,
                     struct wp_conf_err *err)
{
    char got[GOT_MAX * 4 + 16];

    if (is_null(node)) {
        return 0;
    }
    if (!wp_conf_is_seq(node)) {
        return wp_conf_errorf(doc, node, err, "%s: expected a list like %s, got %s", what, like,
                              describe(node, got, sizeof(got)));
    }
    for (size_t i = 0; i < wp_conf_seq_len(doc, node); i++) {
        int rc = fn(L, doc, file, wp_conf_seq_at(doc, node, i), i, err);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* One document into the set (takes ownership of doc). */
static int load_doc(struct loader *L, const char *file, struct wp_conf_doc *doc,
                    struct wp_conf_err *err)
{
    struct top_in top;
    struct wp_conf_node *root = wp_conf_root(doc);
    int rc = 0;

    L->docs = push(L->docs, L->ndocs, sizeof(*L->docs));
    L->files = push(L->files, L->ndocs, sizeof(*L->files));
    L->docs[L->ndocs] = doc;
    L->files[L->ndocs] = wp_xstrdup(file);
    file = L->files[L->ndocs];
    L->ndocs++;
    memset(&top, 0, sizeof(top));
    if (root == NULL || is_null(root)) {
        return 0; /* an empty file holds no rules */
    }
    rc = wp_opts_apply(doc, root, top_opts, &top, "", err);
    if (rc < 0) {
        return rc;
    }
    rc = parse_groups(L, doc, file, top.groups, err);
    if (rc < 0) {
        return rc;
    }
    rc = parse_seq(L, doc, file, top.maintenance, "maintenance",
                   "[{name: patching, hosts: [\"app-*\"], weekly: {days: [sun], "
                   "from: \"02:00\", "
                   "to: \"04:00\"}}]",
                   parse_maint_item, err);
    if (rc < 0) {
        return rc;
    }
    rc = parse_seq(L, doc, file, top.dependencies, "dependencies",
                   "[{parent: host_silent, suppress: [\"*\"]}]", parse_dep_item, err);
    if (rc < 0) {
        return rc;
    }
    return parse_seq(L, doc, file, top.rules, "rules", "[{name: disk_full, ...}]", parse_rule_item,
                     err);
}

static int find_group(const struct rule_set *rs, const char *name)
{
    for (size_t i = 0; i < rs->ngroups; i++) {
        if (strcmp(rs->groups[i].name, name) == 0) {
            return 1;
        }
    }
    return 0;
}

static int find_rule(const struct rule_set *rs, const char *name)
{
    for (size_t i = 0; i < rs->nrules; i++) {
        if (strcmp(rs->rules[i].name, name) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Cross-references, once every file is in: they may point into another file. */
static int check_refs(struct loader *L, struct wp_conf_err *err)
{
    const struct rule_set *rs = L->rs;

    for (size_t i = 0; i < rs->nmaint; i++) {
        const struct src *s = &L->maint_src[i];
        struct wp_conf_node *gn = wp_conf_map_get(s->doc, s->node, "groups");
        for (size_t j = 0; j < rs->maint[i].ngroups; j++) {
            if (!find_group(rs, rs->maint[i].groups[j])) {
                return wp_conf_errorf(s->doc, strv_node(s->doc, gn, j), err,
                                      "groups: unknown host group \"%s\" (define it under "
                                      "groups:)",
                                      rs->maint[i].groups[j]);
            }
        }
    }
    for (size_t i = 0; i < rs->ndeps; i++) {
        const struct src *s = &L->dep_src[i];
        if (!find_rule(rs, rs->deps[i].parent)) {
            return wp_conf_errorf(s->doc, wp_conf_map_get(s->doc, s->node, "parent"), err,
                                  "parent: unknown rule \"%s\"", rs->deps[i].parent);
        }
        struct wp_conf_node *sn = wp_conf_map_get(s->doc, s->node, "suppress");
        for (size_t j = 0; j < rs->deps[i].nsuppress; j++) {
            const char *name = rs->deps[i].suppress[j];
            if (strcmp(name, "*") != 0 && !find_rule(rs, name)) {
                return wp_conf_errorf(s->doc, strv_node(s->doc, sn, j), err,
                                      "suppress: unknown rule \"%s\"", name);
            }
        }
    }
    for (size_t i = 0; i < rs->nrules; i++) {
        const struct src *s = &L->rule_src[i];
        struct wp_conf_node *gn = wp_conf_map_get(s->doc, s->node, "groups");
        for (size_t j = 0; j < rs->rules[i].ngroups; j++) {
            if (!find_group(rs, rs->rules[i].groups[j])) {
                return wp_conf_errorf(s->doc, strv_node(s->doc, gn, j), err,
                                      "groups: unknown host group \"%s\" (define it under "
                                      "groups:)",
                                      rs->rules[i].groups[j]);
            }
        }
    }
    return 0;
}

static void loader_cleanup(struct loader *L)
{
    for (size_t i = 0; i < L->ndocs; i++) {
        wp_conf_free(L->docs[i]);
        free(L->files[i]);
    }
    free(L->docs);
    free(L->files);
    free(L->rule_src);
    free(L->group_src);
    free(L->maint_src);
    free(L->dep_src);
    rules_free(L->rs);
    memset(L, 0, sizeof(*L));
}

/* Load from files (paths) or from one text (text != NULL, name in paths[0]). */
static int load_all(const char *const *paths, size_t npaths, const char *text, size_t len,
                    struct wp_conf_err *err, struct rule_set **out)
{
    struct loader L;
    int rc = 0;

    memset(&L, 0, sizeof(L));
    L.rs = wp_xcalloc(1, sizeof(*L.rs));
    for (size_t i = 0; i < npaths; i++) {
        struct wp_conf_doc *doc = NULL;
        if (text != NULL) {
            rc = wp_conf_parse(paths[i], text, len, err, &doc);
        } else {
            rc = wp_conf_load(paths[i], err, &doc);
        }
        if (rc < 0) {
            goto out;
        }
        rc = load_doc(&L, paths[i], doc, err);
        if (rc < 0) {
            goto out;
        }
    }
    rc = check_refs(&L, err);
    if (rc < 0) {
        goto out;
    }
    *out = L.rs;
    L.rs = NULL; /* ownership moved to the caller */
out:
    loader_cleanup(&L);
    return rc;
}

int rules_load(const char *const *paths, size_t npaths, struct wp_conf_err *err,
               struct rule_set **out)
{
    return load_all(paths, npaths, NULL, 0, err, out);
}

int rules_parse(const char *name, const char *text, size_t len, struct wp_conf_err *err,
                struct rule_set **out)
{
    const char *names[1] = {name != NULL ? name : "(rules)"};

    return load_all(names, 1, text != NULL ? text : "", text != NULL ? len : 0, err, out);
}
