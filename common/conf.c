/* SPDX-License-Identifier: Apache-2.0 */
/* YAML configuration: load documents with positions and decode maps with option tables. */
#include "wp/conf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <yaml.h>

#include "wp/buf.h"
#include "wp/err.h"
#include "wp/mem.h"

#define CONF_MAX_BYTES (4u << 20) /* larger files are refused */
#define CONF_MAX_DEPTH 64         /* nesting deeper than this is refused */
#define CONF_PATH_MAX  256        /* dotted paths in messages */
#define CONF_GOT_MAX   48         /* characters of an offending value quoted in messages */

struct wp_conf_doc {
    yaml_document_t ydoc;
    char *name;
};

/* struct wp_conf_node is never defined: a node pointer is a yaml_node_t in doc->ydoc. */
static yaml_node_t *ynode(struct wp_conf_node *n)
{
    return (yaml_node_t *)(void *)n;
}

static const yaml_node_t *cynode(const struct wp_conf_node *n)
{
    return (const yaml_node_t *)(const void *)n;
}

static struct wp_conf_node *wnode(yaml_node_t *n)
{
    return (struct wp_conf_node *)(void *)n;
}

static yaml_node_t *doc_node(struct wp_conf_doc *doc, int index)
{
    return yaml_document_get_node(&doc->ydoc, index);
}

/* ---- messages ---- */

static int verrorf_mark(const char *name, const yaml_mark_t *mark, struct wp_conf_err *err,
                        const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

static int verrorf_mark(const char *name, const yaml_mark_t *mark, struct wp_conf_err *err,
                        const char *fmt, va_list ap)
{
    int n = 0;

    if (err == NULL) {
        return WP_ECONFIG;
    }
    if (mark != NULL) {
        n = snprintf(err->msg, sizeof(err->msg), "%s:%zu:%zu: ", name, mark->line + 1,
                     mark->column + 1);
    } else {
        n = snprintf(err->msg, sizeof(err->msg), "%s: ", name);
    }
    if (n < 0 || (size_t)n >= sizeof(err->msg)) {
        return WP_ECONFIG;
    }
    vsnprintf(err->msg + n, sizeof(err->msg) - (size_t)n, fmt, ap);
    return WP_ECONFIG;
}

static int errorf_mark(const char *name, const yaml_mark_t *mark, struct wp_conf_err *err,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int errorf_mark(const char *name, const yaml_mark_t *mark, struct wp_conf_err *err,
                       const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    verrorf_mark(name, mark, err, fmt, ap);
    va_end(ap);
    return WP_ECONFIG;
}

int wp_conf_errorf(struct wp_conf_doc *doc, const struct wp_conf_node *n, struct wp_conf_err *err,
                   const char *fmt, ...)
{
    static const yaml_mark_t start = {0, 0, 0};
    va_list ap;

    va_start(ap, fmt);
    /* no node: the document's start, so editors can still jump to the file */
    verrorf_mark(doc != NULL ? doc->name : "(config)", n != NULL ? &cynode(n)->start_mark : &start,
                 err, fmt, ap);
    va_end(ap);
    return WP_ECONFIG;
}

/* Describe a node for "got ..." in messages: a quoted, shortened scalar or its kind. */
static void describe(const yaml_node_t *n, char *buf, size_t len)
{
    if (n == NULL) {
        snprintf(buf, len, "nothing");
        return;
    }
    switch (n->type) {
    case YAML_MAPPING_NODE:
        snprintf(buf, len, "a mapping");
        return;
    case YAML_SEQUENCE_NODE:
        snprintf(buf, len, "a sequence");
        return;
    case YAML_SCALAR_NODE:
        break;
    default:
        snprintf(buf, len, "nothing");
        return;
    }
    const char *v = (const char *)n->data.scalar.value;
    size_t vlen = n->data.scalar.length;
    char tmp[CONF_GOT_MAX * 4 + 8];
    size_t o = 0;

    for (size_t i = 0; i < vlen && i < CONF_GOT_MAX; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(tmp + o, sizeof(tmp) - o, "\\x%02x", c);
        } else if (c == '"' || c == '\\') {
            tmp[o++] = '\\';
            tmp[o++] = (char)c;
        } else {
            tmp[o++] = (char)c;
        }
    }
    tmp[o] = '\0';
    snprintf(buf, len, "\"%s%s\"", tmp, vlen > CONF_GOT_MAX ? "..." : "");
}

static void path_join(char *out, size_t len, const char *path, const char *name)
{
    int n = 0;

    if (path == NULL || path[0] == '\0') {
        n = snprintf(out, len, "%s", name);
    } else {
        n = snprintf(out, len, "%s.%s", path, name);
    }
    if (n < 0 || (size_t)n >= len) {
        out[len - 1] = '\0'; /* a cut path still names the place well enough */
    }
}

/* "path: " or "" at the root, for messages about a whole section. */
static const char *path_prefix(const char *path, char *buf, size_t len)
{
    if (path == NULL || path[0] == '\0') {
        buf[0] = '\0';
    } else {
        snprintf(buf, len, "%s: ", path);
    }
    return buf;
}

/* ---- loading ---- */

static int syntax_error(const char *name, const yaml_parser_t *p, struct wp_conf_err *err)
{
    const char *problem = p->problem != NULL ? p->problem : "invalid YAML";

    if (p->error == YAML_MEMORY_ERROR) {
        return errorf_mark(name, NULL, err, "out of memory while parsing");
    }
    if (p->context != NULL) {
        return errorf_mark(name, &p->problem_mark, err, "%s %s", problem, p->context);
    }
    return errorf_mark(name, &p->problem_mark, err, "%s", problem);
}

/*
 * First pass over the event stream: report syntax errors, refuse aliases (a few bytes of
 * nested aliases expand to gigabytes when walked: "billion laughs"), more than one document
 * and absurd nesting, before the document is built.
 */
static int scan_events(const char *name, const unsigned char *text, size_t len,
                       struct wp_conf_err *err)
{
    int rc = 0;
    yaml_parser_t parser;
    yaml_event_t ev;
    int depth = 0;
    int docs = 0;
    int done = 0;

    if (!yaml_parser_initialize(&parser)) {
        return errorf_mark(name, NULL, err, "cannot initialise the YAML parser");
    }
    yaml_parser_set_input_string(&parser, text, len);
    /* each event consumes input, so this ends at STREAM_END or an error */
    while (!done) {
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = syntax_error(name, &parser, err);
            break;
        }
        switch (ev.type) {
        case YAML_ALIAS_EVENT:
            rc = errorf_mark(name, &ev.start_mark, err,
                             "alias \"*%s\" refused: anchors and aliases are not supported",
                             (const char *)ev.data.alias.anchor);
            break;
        case YAML_DOCUMENT_START_EVENT:
            docs++;
            if (docs > 1) {
                rc = errorf_mark(name, &ev.start_mark, err,
                                 "only one YAML document per file is supported");
            }
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            depth++;
            if (depth > CONF_MAX_DEPTH) {
                rc = errorf_mark(name, &ev.start_mark, err, "nested more than %d levels deep",
                                 CONF_MAX_DEPTH);
            }
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            depth--;
            break;
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
        if (rc < 0) {
            break;
        }
    }
    yaml_parser_delete(&parser);
    return rc;
}

/* Find the dotted path of node target below cur (a tree: aliases are refused). */
static int find_path(struct wp_conf_doc *doc, yaml_node_t *cur, const yaml_node_t *target,
                     const char *path, char *out, size_t len, int depth)
{
    char sub[CONF_PATH_MAX];

    if (cur == target) {
        snprintf(out, len, "%s", path);
        return 1;
    }
    if (depth > CONF_MAX_DEPTH) {
        return 0;
    }
    if (cur->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *pr = cur->data.mapping.pairs.start; pr < cur->data.mapping.pairs.top;
             pr++) {
            yaml_node_t *k = doc_node(doc, pr->key);
            yaml_node_t *v = doc_node(doc, pr->value);
            if (k == NULL || v == NULL || k->type != YAML_SCALAR_NODE) {
                continue;
            }
            path_join(sub, sizeof(sub), path, (const char *)k->data.scalar.value);
            if (find_path(doc, v, target, sub, out, len, depth + 1)) {
                return 1;
            }
        }
    } else if (cur->type == YAML_SEQUENCE_NODE) {
        size_t i = 0;
        for (yaml_node_item_t *it = cur->data.sequence.items.start;
             it < cur->data.sequence.items.top; it++, i++) {
            yaml_node_t *v = doc_node(doc, *it);
            if (v == NULL) {
                continue;
            }
            snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
            if (find_path(doc, v, target, sub, out, len, depth + 1)) {
                return 1;
            }
        }
    }
    return 0;
}

struct key_ref {
    const char *s;
    size_t len;
    size_t idx; /* pair index in the mapping: document order */
};

static int key_ref_cmp(const void *a, const void *b)
{
    const struct key_ref *x = a;
    const struct key_ref *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);

    if (c != 0) {
        return c;
    }
    if (x->len != y->len) {
        return x->len < y->len ? -1 : 1;
    }
    return x->idx < y->idx ? -1 : (x->idx > y->idx ? 1 : 0);
}

/* The earliest duplicate key in mapping m (by pair index), or -1; *first gets the original. */
static long mapping_dup(struct wp_conf_doc *doc, yaml_node_t *m, size_t *first)
{
    size_t n = (size_t)(m->data.mapping.pairs.top - m->data.mapping.pairs.start);
    struct key_ref *refs = NULL;
    size_t nrefs = 0;
    long best = -1;

    if (n < 2) {
        return -1;
    }
    refs = wp_xcalloc(n, sizeof(*refs));
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *k = doc_node(doc, m->data.mapping.pairs.start[i].key);
        if (k == NULL || k->type != YAML_SCALAR_NODE) {
            continue; /* complex keys are refused where the map is decoded */
        }
        refs[nrefs].s = (const char *)k->data.scalar.value;
        refs[nrefs].len = k->data.scalar.length;
        refs[nrefs].idx = i;
        nrefs++;
    }
    qsort(refs, nrefs, sizeof(*refs), key_ref_cmp);
    for (size_t i = 1; i < nrefs; i++) {
        if (refs[i].len == refs[i - 1].len && memcmp(refs[i].s, refs[i - 1].s, refs[i].len) == 0) {
            /* group start is the original; sorted by idx inside the group */
            size_t g = i - 1;
            while (g > 0 && refs[g - 1].len == refs[i].len &&
                   memcmp(refs[g - 1].s, refs[i].s, refs[i].len) == 0) {
                g--;
            }
            if (best < 0 || (long)refs[i].idx < best) {
                best = (long)refs[i].idx;
                *first = refs[g].idx;
            }
        }
    }
    free(refs);
    return best;
}

/* Second pass over the built document: duplicate keys and NUL bytes inside strings. */
static int check_document(struct wp_conf_doc *doc, struct wp_conf_err *err)
{
    yaml_node_t *dup_map = NULL;
    yaml_node_t *dup_key = NULL;
    yaml_node_t *dup_first = NULL;

    for (yaml_node_t *n = doc->ydoc.nodes.start; n < doc->ydoc.nodes.top; n++) {
        if (n->type == YAML_SCALAR_NODE &&
            strlen((const char *)n->data.scalar.value) != n->data.scalar.length) {
            return errorf_mark(doc->name, &n->start_mark, err,
                               "NUL characters are not allowed in values");
        }
        if (n->type != YAML_MAPPING_NODE) {
            continue;
        }
        size_t first = 0;
        long d = mapping_dup(doc, n, &first);
        if (d < 0) {
            continue;
        }
        yaml_node_t *k = doc_node(doc, n->data.mapping.pairs.start[d].key);
        if (dup_key == NULL || k->start_mark.index < dup_key->start_mark.index) {
            dup_map = n;
            dup_key = k;
            dup_first = doc_node(doc, n->data.mapping.pairs.start[first].key);
        }
    }
    if (dup_key != NULL) {
        char path[CONF_PATH_MAX] = "";
        char full[CONF_PATH_MAX];
        yaml_node_t *root = yaml_document_get_root_node(&doc->ydoc);

        if (root != NULL) {
            find_path(doc, root, dup_map, "", path, sizeof(path), 0);
        }
        path_join(full, sizeof(full), path, (const char *)dup_key->data.scalar.value);
        return errorf_mark(doc->name, &dup_key->start_mark, err,
                           "%s: duplicate key (first defined at line %zu)", full,
                           dup_first->start_mark.line + 1);
    }
    return 0;
}

int wp_conf_parse(const char *name, const char *text, size_t len, struct wp_conf_err *err,
                  struct wp_conf_doc **out)
{
    int rc = 0;
    struct wp_conf_doc *doc = NULL;
    yaml_parser_t parser;
    int have_parser = 0;

    *out = NULL;
    if (name == NULL) {
        name = "(config)";
    }
    if (len > CONF_MAX_BYTES) {
        return errorf_mark(name, NULL, err, "larger than %u MiB, refused", CONF_MAX_BYTES >> 20);
    }
    rc = scan_events(name, (const unsigned char *)text, len, err);
    if (rc < 0) {
        goto out;
    }
    if (!yaml_parser_initialize(&parser)) {
        rc = errorf_mark(name, NULL, err, "cannot initialise the YAML parser");
        goto out;
    }
    have_parser = 1;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    doc = wp_xcalloc(1, sizeof(*doc));
    doc->name = wp_xstrdup(name);
    if (!yaml_parser_load(&parser, &doc->ydoc)) {
        rc = syntax_error(name, &parser, err);
        free(doc->name);
        free(doc);
        doc = NULL;
        goto out;
    }
    rc = check_document(doc, err);
    if (rc < 0) {
        goto out;
    }
    *out = doc;
    doc = NULL;
out:
    if (have_parser) {
        yaml_parser_delete(&parser);
    }
    wp_conf_free(doc);
    return rc;
}

int wp_conf_load(const char *path, struct wp_conf_err *err, struct wp_conf_doc **out)
{
    int rc = 0;
    FILE *fp = NULL;
    char *text = NULL;
    size_t len = 0;
    struct stat st;

    *out = NULL;
    fp = fopen(path, "re");
    if (fp == NULL) {
        rc = -errno;
        errorf_mark(path, NULL, err, "cannot open: %s", strerror(-rc));
        goto out;
    }
    if (fstat(fileno(fp), &st) < 0) {
        rc = -errno;
        errorf_mark(path, NULL, err, "cannot stat: %s", strerror(-rc));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = errorf_mark(path, NULL, err, "not a regular file");
        goto out;
    }
    if (st.st_size > (off_t)CONF_MAX_BYTES) {
        rc = errorf_mark(path, NULL, err, "larger than %u MiB, refused", CONF_MAX_BYTES >> 20);
        goto out;
    }
    /* read at most one byte past the limit: the file may grow after fstat() */
    text = wp_xmalloc(CONF_MAX_BYTES + 1);
    len = fread(text, 1, CONF_MAX_BYTES + 1, fp);
    if (ferror(fp)) {
        rc = -EIO;
        errorf_mark(path, NULL, err, "cannot read: %s", strerror(EIO));
        goto out;
    }
    rc = wp_conf_parse(path, text, len, err, out);
out:
    free(text);
    if (fp != NULL) {
        fclose(fp);
    }
    return rc;
}

void wp_conf_free(struct wp_conf_doc *doc)
{
    if (doc == NULL) {
        return;
    }
    yaml_document_delete(&doc->ydoc);
    free(doc->name);
    free(doc);
}

struct wp_conf_node *wp_conf_root(struct wp_conf_doc *doc)
{
    return wnode(yaml_document_get_root_node(&doc->ydoc));
}

/* ---- node helpers ---- */

int wp_conf_is_map(const struct wp_conf_node *n)
{
    return n != NULL && cynode(n)->type == YAML_MAPPING_NODE;
}

int wp_conf_is_seq(const struct wp_conf_node *n)
{
    return n != NULL && cynode(n)->type == YAML_SEQUENCE_NODE;
}

int wp_conf_is_scalar(const struct wp_conf_node *n)
{
    return n != NULL && cynode(n)->type == YAML_SCALAR_NODE;
}

size_t wp_conf_seq_len(struct wp_conf_doc *doc, struct wp_conf_node *n)
{
    (void)doc;
    if (!wp_conf_is_seq(n)) {
        return 0;
    }
    return (size_t)(ynode(n)->data.sequence.items.top - ynode(n)->data.sequence.items.start);
}

struct wp_conf_node *wp_conf_seq_at(struct wp_conf_doc *doc, struct wp_conf_node *n, size_t i)
{
    if (i >= wp_conf_seq_len(doc, n)) {
        return NULL;
    }
    return wnode(doc_node(doc, ynode(n)->data.sequence.items.start[i]));
}

struct wp_conf_node *wp_conf_map_get(struct wp_conf_doc *doc, struct wp_conf_node *n,
                                     const char *key)
{
    size_t klen = strlen(key);

    if (!wp_conf_is_map(n)) {
        return NULL;
    }
    for (yaml_node_pair_t *pr = ynode(n)->data.mapping.pairs.start;
         pr < ynode(n)->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = doc_node(doc, pr->key);
        if (k != NULL && k->type == YAML_SCALAR_NODE && k->data.scalar.length == klen &&
            memcmp(k->data.scalar.value, key, klen) == 0) {
            return wnode(doc_node(doc, pr->value));
        }
    }
    return NULL;
}

const char *wp_conf_scalar(const struct wp_conf_node *n)
{
    if (!wp_conf_is_scalar(n)) {
        return NULL;
    }
    return (const char *)cynode(n)->data.scalar.value;
}

/* A plain empty, "~" or "null" scalar: "key:" with nothing after it. */
static int is_null(const yaml_node_t *n)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};

    if (n == NULL) {
        return 1;
    }
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        return 0;
    }
    for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++) {
        if (strcmp((const char *)n->data.scalar.value, nulls[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* ---- scalar parsers ---- */

/* Parse leading decimal digits into *v; returns the number of digits or -1 on overflow. */
static int parse_digits(const char **sp, uint64_t *v)
{
    const char *s = *sp;
    int n = 0;

    *v = 0;
    while (*s >= '0' && *s <= '9') {
        unsigned d = (unsigned)(*s - '0');
        if (*v > (UINT64_MAX - d) / 10) {
            return -1;
        }
        *v = *v * 10 + d;
        s++;
        n++;
    }
    *sp = s;
    return n;
}

int wp_parse_duration_ms(const char *s, int64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}, {"w", 604800000},
    };
    uint64_t total = 0;
    uint64_t v = 0;
    int parts = 0;

    if (s == NULL || *s == '\0') {
        return WP_ECONFIG;
    }
    /* a bare number is seconds */
    const char *p = s;
    int nd = parse_digits(&p, &v);
    if (nd > 0 && *p == '\0') {
        if (v > (uint64_t)INT64_MAX / 1000) {
            return WP_ECONFIG;
        }
        *out = (int64_t)(v * 1000);
        return 0;
    }
    /* otherwise one or more <number><unit> parts: "1h30m" */
    p = s;
    while (*p != '\0') {
        nd = parse_digits(&p, &v);
        if (nd <= 0) {
            return WP_ECONFIG;
        }
        size_t best = 0;
        uint64_t mult = 0;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            size_t ul = strlen(units[i].unit);
            /* longest match, so "ms" is not read as "m" + "s" */
            if (ul > best && strncmp(p, units[i].unit, ul) == 0) {
                best = ul;
                mult = units[i].ms;
            }
        }
        if (best == 0) {
            return WP_ECONFIG;
        }
        p += best;
        if (v > (uint64_t)INT64_MAX / mult || total > (uint64_t)INT64_MAX - v * mult) {
            return WP_ECONFIG;
        }
        total += v * mult;
        parts++;
    }
    if (parts == 0) {
        return WP_ECONFIG;
    }
    *out = (int64_t)total;
    return 0;
}

int wp_parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {
        {"", 1},
        {"B", 1},
        {"KB", 1000ull},
        {"MB", 1000ull * 1000},
        {"GB", 1000ull * 1000 * 1000},
        {"TB", 1000ull * 1000 * 1000 * 1000},
        {"KiB", 1ull << 10},
        {"MiB", 1ull << 20},
        {"GiB", 1ull << 30},
        {"TiB", 1ull << 40},
    };
    uint64_t v = 0;
    const char *p = s;

    if (s == NULL || parse_digits(&p, &v) <= 0) {
        return WP_ECONFIG;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(p, units[i].unit) == 0) {
            if (v > UINT64_MAX / units[i].mult) {
                return WP_ECONFIG;
            }
            *out = v * units[i].mult;
            return 0;
        }
    }
    return WP_ECONFIG;
}

int wp_parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};

    if (s == NULL) {
        return WP_ECONFIG;
    }
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return WP_ECONFIG;
}

int wp_parse_hhmm(const char *s, int allow_24, int *out)
{
    int h = 0;
    size_t i = 0;

    if (s == NULL || s[i] < '0' || s[i] > '9') {
        return WP_ECONFIG;
    }
    h = s[i++] - '0';
    if (s[i] >= '0' && s[i] <= '9') {
        h = h * 10 + (s[i++] - '0');
    }
    if (s[i] != ':' || s[i + 1] < '0' || s[i + 1] > '5' || s[i + 2] < '0' || s[i + 2] > '9' ||
        s[i + 3] != '\0') {
        return WP_ECONFIG;
    }
    int m = (s[i + 1] - '0') * 10 + (s[i + 2] - '0');
    if (h > 24 || (h == 24 && (m != 0 || !allow_24))) {
        return WP_ECONFIG;
    }
    *out = h * 60 + m;
    return 0;
}

int wp_conf_capture_node(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                         const void *arg, struct wp_conf_err *err)
{
    (void)doc;
    (void)arg;
    (void)err;
    *(struct wp_conf_node **)field = node;
    return 0;
}

static int parse_int(const char *s, int64_t *out)
{
    char *end = NULL;
    long long v = 0;

    if (s == NULL || *s == '\0' || (*s != '-' && *s != '+' && (*s < '0' || *s > '9'))) {
        return WP_ECONFIG;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0') {
        return WP_ECONFIG;
    }
    *out = (int64_t)v;
    return 0;
}

/* Format ms in the largest unit that divides it: "90s", "5m", "500ms". */
static void fmt_duration(int64_t ms, char *buf, size_t len)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};

    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (ms != 0 && ms % units[i].ms == 0) {
            snprintf(buf, len, "%" PRId64 "%s", ms / units[i].ms, units[i].unit);
            return;
        }
    }
    snprintf(buf, len, "%" PRId64 "ms", ms);
}

static void fmt_size(uint64_t b, char *buf, size_t len)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {
        {"TiB", 1ull << 40}, {"GiB", 1ull << 30}, {"MiB", 1ull << 20}, {"KiB", 1ull << 10}};

    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (b != 0 && b % units[i].mult == 0) {
            snprintf(buf, len, "%" PRIu64 "%s", b / units[i].mult, units[i].unit);
            return;
        }
    }
    snprintf(buf, len, "%" PRIu64, b);
}

/* ---- option decoding ---- */

static size_t opts_count(const struct wp_opt *opts)
{
    size_t n = 0;

    while (opts[n].type != WP_OPT_END) {
        n++;
    }
    return n;
}

static void *field_at(void *base, const struct wp_opt *o)
{
    return (char *)base + o->offset;
}

/* Reset the fields of known types, so wp_opts_free() is safe whatever happens next. */
static void opts_clear(const struct wp_opt *opts, void *base)
{
    for (const struct wp_opt *o = opts; o->type != WP_OPT_END; o++) {
        void *f = field_at(base, o);
        switch (o->type) {
        case WP_OPT_STR:
            *(char **)f = NULL;
            break;
        case WP_OPT_INT:
        case WP_OPT_DURATION:
            *(int64_t *)f = 0;
            break;
        case WP_OPT_SIZE:
            *(uint64_t *)f = 0;
            break;
        case WP_OPT_BOOL:
        case WP_OPT_ENUM:
            *(int *)f = 0;
            break;
        case WP_OPT_STRLIST:
        case WP_OPT_STRMAP:
            memset(f, 0, sizeof(struct wp_strlist));
            break;
        case WP_OPT_SECTION:
            opts_clear(o->sub, f);
            break;
        case WP_OPT_CUSTOM:
        case WP_OPT_END:
            break;
        }
    }
}

/* Is there a bound at all ("0,0 = unbounded"), and an upper one (max 0 = none)? */
static int has_bounds(const struct wp_opt *o)
{
    return o->min != 0 || o->max != 0;
}

/* Human description of what a scalar option expects, for messages. */
static void expect_text(const struct wp_opt *o, char *buf, size_t len)
{
    size_t n = 0;

    switch (o->type) {
    case WP_OPT_STR:
        snprintf(buf, len, "a string");
        break;
    case WP_OPT_INT:
        snprintf(buf, len, "an integer");
        break;
    case WP_OPT_BOOL:
        snprintf(buf, len, "true or false");
        break;
    case WP_OPT_DURATION:
        snprintf(buf, len, "a duration like 10s");
        break;
    case WP_OPT_SIZE:
        snprintf(buf, len, "a size like 256MiB");
        break;
    case WP_OPT_ENUM:
        n = (size_t)snprintf(buf, len, "one of:");
        for (size_t i = 0; o->enum_names != NULL && o->enum_names[i] != NULL && n < len; i++) {
            n += (size_t)snprintf(buf + n, len - n, "%s %s", i ? "," : "", o->enum_names[i]);
        }
        if (n < len) {
            snprintf(buf + n, len - n, ";");
        }
        break;
    default:
        snprintf(buf, len, "a value");
        break;
    }
}

/* Check a decoded number against the option's bounds; fills why on failure. */
static int check_bounds(const struct wp_opt *o, int64_t v, char *why, size_t wlen)
{
    char a[32], b[32], got[32];

    if (!has_bounds(o) || (v >= o->min && (o->max == 0 || v <= o->max))) {
        return 0;
    }
    if (o->type == WP_OPT_DURATION) {
        fmt_duration(o->min, a, sizeof(a));
        fmt_duration(o->max, b, sizeof(b));
        fmt_duration(v, got, sizeof(got));
    } else if (o->type == WP_OPT_SIZE) {
        fmt_size((uint64_t)o->min, a, sizeof(a));
        fmt_size((uint64_t)o->max, b, sizeof(b));
        fmt_size((uint64_t)v, got, sizeof(got));
    } else {
        snprintf(a, sizeof(a), "%" PRId64, o->min);
        snprintf(b, sizeof(b), "%" PRId64, o->max);
        snprintf(got, sizeof(got), "%" PRId64, v);
    }
    if (o->max == 0) {
        snprintf(why, wlen, "must be at least %s, got %s", a, got);
    } else {
        snprintf(why, wlen, "must be between %s and %s, got %s", a, b, got);
    }
    return WP_ECONFIG;
}

static void strlist_push(struct wp_strlist *l, const char *s)
{
    l->v = wp_xrealloc(l->v, (l->n + 2) * sizeof(*l->v));
    l->v[l->n++] = wp_xstrdup(s);
    l->v[l->n] = NULL;
}

/*
 * Decode scalar text into a field of a scalar type (STR..ENUM) or a one-item STRLIST.
 * got describes the value for messages. Returns 0 or WP_ECONFIG with why filled.
 */
static int decode_text(const struct wp_opt *o, const char *s, const char *got, void *f, char *why,
                       size_t wlen)
{
    char exp[256];
    int64_t i64 = 0;
    uint64_t u64 = 0;
    int b = 0;

    switch (o->type) {
    case WP_OPT_STR:
        free(*(char **)f);
        *(char **)f = wp_xstrdup(s);
        return 0;
    case WP_OPT_INT:
        if (parse_int(s, &i64) < 0) {
            break;
        }
        if (check_bounds(o, i64, why, wlen) < 0) {
            return WP_ECONFIG;
        }
        *(int64_t *)f = i64;
        return 0;
    case WP_OPT_BOOL:
        if (wp_parse_bool(s, &b) < 0) {
            break;
        }
        *(int *)f = b;
        return 0;
    case WP_OPT_DURATION:
        if (wp_parse_duration_ms(s, &i64) < 0) {
            break;
        }
        if (check_bounds(o, i64, why, wlen) < 0) {
            return WP_ECONFIG;
        }
        *(int64_t *)f = i64;
        return 0;
    case WP_OPT_SIZE:
        if (wp_parse_size(s, &u64) < 0) {
            break;
        }
        /* sizes beyond INT64_MAX compare as out of any bound */
        if (has_bounds(o) &&
            check_bounds(o, u64 > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)u64, why, wlen) < 0) {
            return WP_ECONFIG;
        }
        *(uint64_t *)f = u64;
        return 0;
    case WP_OPT_ENUM:
        for (int i = 0; o->enum_names != NULL && o->enum_names[i] != NULL; i++) {
            if (strcasecmp(s, o->enum_names[i]) == 0) {
                *(int *)f = i;
                return 0;
            }
        }
        expect_text(o, exp, sizeof(exp));
        snprintf(why, wlen, "expected %s got %s", exp, got);
        return WP_ECONFIG;
    case WP_OPT_STRLIST:
        wp_strlist_free(f);
        strlist_push(f, s);
        return 0;
    default:
        snprintf(why, wlen, "cannot be set from text");
        return WP_ECONFIG;
    }
    expect_text(o, exp, sizeof(exp));
    snprintf(why, wlen, "expected %s, got %s", exp, got);
    return WP_ECONFIG;
}

static int opts_apply(struct wp_conf_doc *doc, yaml_node_t *node, const yaml_node_t *pos,
                      const struct wp_opt *opts, void *base, const char *path,
                      struct wp_conf_err *err);

/* A sequence of scalars, or one scalar, into a wp_strlist. */
static int decode_strlist(struct wp_conf_doc *doc, yaml_node_t *n, struct wp_strlist *l,
                          const char *path, struct wp_conf_err *err)
{
    char got[CONF_GOT_MAX * 4 + 16];

    wp_strlist_free(l);
    l->v = wp_xcalloc(1, sizeof(*l->v));
    if (is_null(n)) {
        return 0;
    }
    if (n->type == YAML_SCALAR_NODE) {
        strlist_push(l, (const char *)n->data.scalar.value);
        return 0;
    }
    if (n->type != YAML_SEQUENCE_NODE) {
        describe(n, got, sizeof(got));
        return errorf_mark(doc->name, &n->start_mark, err, "%s: expected a list of strings, got %s",
                           path, got);
    }
    size_t i = 0;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++, i++) {
        yaml_node_t *v = doc_node(doc, *it);
        if (v == NULL || v->type != YAML_SCALAR_NODE || is_null(v)) {
            describe(is_null(v) ? NULL : v, got, sizeof(got));
            return errorf_mark(doc->name, v != NULL ? &v->start_mark : &n->start_mark, err,
                               "%s[%zu]: expected a string, got %s", path, i, got);
        }
        strlist_push(l, (const char *)v->data.scalar.value);
    }
    return 0;
}

/* A mapping of scalars into k, v, k, v pairs. */
static int decode_strmap(struct wp_conf_doc *doc, yaml_node_t *n, struct wp_strlist *l,
                         const char *path, struct wp_conf_err *err)
{
    char got[CONF_GOT_MAX * 4 + 16];
    char sub[CONF_PATH_MAX];

    wp_strlist_free(l);
    l->v = wp_xcalloc(1, sizeof(*l->v));
    if (is_null(n)) {
        return 0;
    }
    if (n->type != YAML_MAPPING_NODE) {
        describe(n, got, sizeof(got));
        return errorf_mark(doc->name, &n->start_mark, err, "%s: expected a mapping, got %s", path,
                           got);
    }
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = doc_node(doc, pr->key);
        yaml_node_t *v = doc_node(doc, pr->value);
        if (k == NULL || k->type != YAML_SCALAR_NODE || is_null(k)) {
            describe(is_null(k) ? NULL : k, got, sizeof(got));
            return errorf_mark(doc->name, k != NULL ? &k->start_mark : &n->start_mark, err,
                               "%s: keys must be strings, got %s", path, got);
        }
        path_join(sub, sizeof(sub), path, (const char *)k->data.scalar.value);
        if (v == NULL || v->type != YAML_SCALAR_NODE || is_null(v)) {
            describe(is_null(v) ? NULL : v, got, sizeof(got));
            return errorf_mark(doc->name, v != NULL ? &v->start_mark : &k->start_mark, err,
                               "%s: expected a string, got %s", sub, got);
        }
        strlist_push(l, (const char *)k->data.scalar.value);
        strlist_push(l, (const char *)v->data.scalar.value);
    }
    return 0;
}

/* Decode one option from its value node. */
static int decode_node(struct wp_conf_doc *doc, yaml_node_t *v, const struct wp_opt *o, void *base,
                       const char *path, struct wp_conf_err *err)
{
    char got[CONF_GOT_MAX * 4 + 16];
    char why[384];
    char exp[256];
    void *f = field_at(base, o);

    switch (o->type) {
    case WP_OPT_STRLIST:
        return decode_strlist(doc, v, f, path, err);
    case WP_OPT_STRMAP:
        return decode_strmap(doc, v, f, path, err);
    case WP_OPT_SECTION:
        /* "section:" with nothing after it means all defaults */
        return opts_apply(doc, is_null(v) ? NULL : v, v, o->sub, f, path, err);
    case WP_OPT_CUSTOM:
        if (o->custom == NULL) {
            return errorf_mark(doc->name, &v->start_mark, err, "%s: no decoder", path);
        }
        return o->custom(doc, wnode(v), f, o->arg, err);
    default:
        break;
    }
    if (v->type != YAML_SCALAR_NODE || is_null(v)) {
        describe(is_null(v) ? NULL : v, got, sizeof(got));
        expect_text(o, exp, sizeof(exp));
        return errorf_mark(doc->name, &v->start_mark, err, "%s: expected %s%s got %s", path, exp,
                           o->type == WP_OPT_ENUM ? "" : ",", got);
    }
    describe(v, got, sizeof(got));
    if (decode_text(o, (const char *)v->data.scalar.value, got, f, why, sizeof(why)) < 0) {
        return errorf_mark(doc->name, &v->start_mark, err, "%s: %s", path, why);
    }
    return 0;
}

/* Apply the default of an option whose key is absent. */
static int apply_default(struct wp_conf_doc *doc, const yaml_node_t *pos, const struct wp_opt *o,
                         void *base, const char *path, struct wp_conf_err *err)
{
    static const yaml_mark_t start = {0, 0, 0};
    char why[384];
    void *f = field_at(base, o);

    if (o->type == WP_OPT_SECTION) {
        return opts_apply(doc, NULL, pos, o->sub, f, path, err);
    }
    if (o->required) {
        return errorf_mark(doc->name, pos != NULL ? &pos->start_mark : &start, err,
                           "%s: required key is missing", path);
    }
    if (o->def == NULL || o->type == WP_OPT_CUSTOM || o->type == WP_OPT_STRMAP) {
        return 0;
    }
    if (decode_text(o, o->def, o->def, f, why, sizeof(why)) < 0) {
        /* a programmer error in an option table */
        return errorf_mark(doc->name, NULL, err, "%s: bad built-in default: %s", path, why);
    }
    return 0;
}

static void unknown_key(struct wp_conf_doc *doc, const yaml_node_t *k, const struct wp_opt *opts,
                        const char *path, struct wp_conf_err *err)
{
    char list[400];
    char got[CONF_GOT_MAX * 4 + 16];
    char pre[CONF_PATH_MAX + 2];
    size_t n = 0;

    list[0] = '\0';
    for (const struct wp_opt *o = opts; o->type != WP_OPT_END && n < sizeof(list); o++) {
        n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s", o == opts ? "" : ", ", o->name);
    }
    describe(k, got, sizeof(got));
    errorf_mark(doc->name, &k->start_mark, err, "%sunknown key %s (expected one of: %s)",
                path_prefix(path, pre, sizeof(pre)), got, list);
}

/*
 * node: the mapping (or NULL for all defaults); pos: where to report missing keys (the
 * nearest mapping that exists, NULL for the document start).
 */
static int opts_apply(struct wp_conf_doc *doc, yaml_node_t *node, const yaml_node_t *pos,
                      const struct wp_opt *opts, void *base, const char *path,
                      struct wp_conf_err *err)
{
    int rc = 0;
    size_t nopts = opts_count(opts);
    unsigned char *seen = NULL;
    char sub[CONF_PATH_MAX];
    char got[CONF_GOT_MAX * 4 + 16];
    char pre[CONF_PATH_MAX + 2];

    opts_clear(opts, base);
    if (node != NULL && node->type != YAML_MAPPING_NODE) {
        describe(node, got, sizeof(got));
        return errorf_mark(doc->name, &node->start_mark, err, "%sexpected a mapping, got %s",
                           path_prefix(path, pre, sizeof(pre)), got);
    }
    if (node != NULL) {
        pos = node;
    }
    seen = wp_xcalloc(nopts + 1, 1);
    /* keys in document order, so the first error in the file is the one reported */
    for (yaml_node_pair_t *pr = node != NULL ? node->data.mapping.pairs.start : NULL;
         node != NULL && pr < node->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = doc_node(doc, pr->key);
        yaml_node_t *v = doc_node(doc, pr->value);
        size_t i = 0;

        if (k == NULL || v == NULL) {
            rc = errorf_mark(doc->name, &node->start_mark, err, "malformed mapping");
            goto out;
        }
        if (k->type != YAML_SCALAR_NODE) {
            describe(k, got, sizeof(got));
            rc = errorf_mark(doc->name, &k->start_mark, err, "%skeys must be strings, got %s",
                             path_prefix(path, pre, sizeof(pre)), got);
            goto out;
        }
        for (i = 0; i < nopts; i++) {
            if (strcmp(opts[i].name, (const char *)k->data.scalar.value) == 0) {
                break;
            }
        }
        if (i == nopts) {
            unknown_key(doc, k, opts, path, err);
            rc = WP_ECONFIG;
            goto out;
        }
        seen[i] = 1;
        path_join(sub, sizeof(sub), path, opts[i].name);
        rc = decode_node(doc, v, &opts[i], base, sub, err);
        if (rc < 0) {
            goto out;
        }
    }
    for (size_t i = 0; i < nopts; i++) {
        if (seen[i]) {
            continue;
        }
        path_join(sub, sizeof(sub), path, opts[i].name);
        rc = apply_default(doc, pos, &opts[i], base, sub, err);
        if (rc < 0) {
            goto out;
        }
    }
out:
    free(seen);
    return rc;
}

int wp_opts_apply(struct wp_conf_doc *doc, struct wp_conf_node *node, const struct wp_opt *opts,
                  void *base, const char *path, struct wp_conf_err *err)
{
    return opts_apply(doc, ynode(node), ynode(node), opts, base, path != NULL ? path : "", err);
}

int wp_opts_load(const char *path, const struct wp_opt *opts, void *obj, wp_conf_finish_fn finish,
                 struct wp_conf_err *err)
{
    struct wp_conf_doc *doc = NULL;
    int rc = wp_conf_load(path, err, &doc);

    if (rc == 0) {
        rc = wp_opts_apply(doc, wp_conf_root(doc), opts, obj, "", err);
    }
    if (rc == 0 && finish != NULL) {
        rc = finish(obj, doc, err);
    }
    wp_conf_free(doc);
    return rc;
}

void wp_opts_free(const struct wp_opt *opts, void *base)
{
    if (opts == NULL || base == NULL) {
        return;
    }
    for (const struct wp_opt *o = opts; o->type != WP_OPT_END; o++) {
        void *f = field_at(base, o);
        switch (o->type) {
        case WP_OPT_STR:
            free(*(char **)f);
            *(char **)f = NULL;
            break;
        case WP_OPT_STRLIST:
        case WP_OPT_STRMAP:
            wp_strlist_free(f);
            break;
        case WP_OPT_SECTION:
            wp_opts_free(o->sub, f);
            break;
        case WP_OPT_CUSTOM:
            if (o->custom_free != NULL) {
                o->custom_free(f, o->arg);
            }
            break;
        default:
            break;
        }
    }
}

void wp_strlist_free(struct wp_strlist *l)
{
    if (l == NULL) {
        return;
    }
    for (size_t i = 0; l->v != NULL && i < l->n; i++) {
        free(l->v[i]);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* ---- helpers for the daemons' loaders ---- */

int wp_conf_split_hostport(const char *s, int min_port, char **host, char **port)
{
    const char *h = s;
    size_t hlen = 0;
    const char *p = NULL;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':') {
            return WP_ECONFIG;
        }
        h = s + 1;
        hlen = (size_t)(close - h);
        p = close + 2;
    } else {
        const char *colon = strchr(s, ':');
        if (colon == NULL || strchr(colon + 1, ':') != NULL) {
            return WP_ECONFIG; /* no port, or an IPv6 address without brackets */
        }
        hlen = (size_t)(colon - s);
        p = colon + 1;
    }
    size_t plen = strlen(p);
    if (hlen == 0 || plen == 0 || plen > 5 || strspn(p, "0123456789") != plen) {
        return WP_ECONFIG;
    }
    long v = strtol(p, NULL, 10);
    if (v < min_port || v > 65535) {
        return WP_ECONFIG;
    }
    *host = wp_xstrndup(h, hlen);
    *port = wp_xstrdup(p);
    return 0;
}

void wp_conf_resolve_path(const char *conf_path, char **path)
{
    const char *slash = NULL;
    char *dir = NULL;
    char *real = NULL;

    if (*path == NULL || (*path)[0] == '/' || (*path)[0] == '\0') {
        return;
    }
    slash = strrchr(conf_path, '/');
    if (slash == NULL) {
        dir = wp_xstrdup(".");
    } else if (slash == conf_path) {
        dir = wp_xstrdup("/");
    } else {
        dir = wp_xstrndup(conf_path, (size_t)(slash - conf_path));
    }
    real = realpath(dir, NULL);
    const char *d = real != NULL ? real : dir;
    size_t dl = strlen(d);
    char *abs = wp_xasprintf("%s%s%s", d, d[dl - 1] == '/' ? "" : "/", *path);
    free(real);
    free(dir);
    free(*path);
    *path = abs;
}

/* ---- node text (what a reload compares) ---- */

/* A scalar as a length-prefixed string, so no content can imitate the structure. */
static void nt_scalar(struct wp_sb *t, const yaml_node_t *n)
{
    char head[32];
    int k = snprintf(head, sizeof(head), "%zu:", n->data.scalar.length);

    wp_sb_add(t, head, (size_t)k);
    wp_sb_add(t, (const char *)n->data.scalar.value, n->data.scalar.length);
}

static void nt_node(struct wp_conf_doc *doc, struct wp_sb *t, yaml_node_t *n, int depth)
{
    if (n == NULL || depth > CONF_MAX_DEPTH) {
        wp_sb_add(t, "~", 1);
        return;
    }
    switch (n->type) {
    case YAML_SCALAR_NODE:
        nt_scalar(t, n);
        break;
    case YAML_MAPPING_NODE:
        wp_sb_add(t, "{", 1);
        for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top;
             pr++) {
            nt_node(doc, t, doc_node(doc, pr->key), depth + 1);
            wp_sb_add(t, "=", 1);
            nt_node(doc, t, doc_node(doc, pr->value), depth + 1);
            wp_sb_add(t, ",", 1);
        }
        wp_sb_add(t, "}", 1);
        break;
    case YAML_SEQUENCE_NODE:
        wp_sb_add(t, "[", 1);
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
            nt_node(doc, t, doc_node(doc, *it), depth + 1);
            wp_sb_add(t, ",", 1);
        }
        wp_sb_add(t, "]", 1);
        break;
    default:
        wp_sb_add(t, "~", 1);
        break;
    }
}

char *wp_conf_node_text(struct wp_conf_doc *doc, struct wp_conf_node *n)
{
    struct wp_sb t = {NULL, 0, 0};

    wp_sb_add(&t, "", 0);
    nt_node(doc, &t, n != NULL ? ynode(n) : NULL, 0);
    return t.p;
}
