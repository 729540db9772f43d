/* SPDX-License-Identifier: Apache-2.0 */
/* YAML configuration with positions: option tables decode maps into structs and every
 * error names file:line:column and what was expected. */
#ifndef WP_COMMON_CONF_H
#define WP_COMMON_CONF_H

#include <stddef.h>
#include <stdint.h>

/* An error message: "FILE:LINE:COL: what was wrong, what was expected". */
struct wp_conf_err {
    char msg[512];
};

/* A loaded YAML document (libyaml document API; nodes keep their start marks). */
struct wp_conf_doc;
/* A node inside a document; borrowed from the document. */
struct wp_conf_node;

enum wp_opt_type {
    WP_OPT_END = 0,
    WP_OPT_STR,      /* char * (heap copy; freed by wp_opts_free) */
    WP_OPT_INT,      /* int64_t, within [min, max] */
    WP_OPT_BOOL,     /* int: true/false/yes/no/on/off */
    WP_OPT_DURATION, /* int64_t milliseconds: "500ms", "10s", "5m", "1h", "7d", or a number of s */
    WP_OPT_SIZE,     /* uint64_t bytes: "4MiB", "256KiB", "1GiB", "100MB", or a number */
    WP_OPT_ENUM,     /* int: index into enum_names */
    WP_OPT_STRLIST,  /* struct wp_strlist: a sequence of scalars (or one scalar) */
    WP_OPT_STRMAP,   /* struct wp_strlist of k, v, k, v pairs: a map of scalars */
    WP_OPT_SECTION,  /* a nested map decoded by sub (offset of the nested struct) */
    WP_OPT_CUSTOM,   /* decoded by custom(); for sequences of probes, collectors, ... */
};

struct wp_strlist {
    char **v; /* NULL-terminated */
    size_t n;
};

struct wp_opt;

/* A custom decoder: node is the option's value, field the option's field, arg the option's
 * arg (settings one decoder shares between tables, e.g. a probe's targets spec). */
typedef int (*wp_opt_custom_fn)(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                                const void *arg, struct wp_conf_err *err);
/* Frees what a custom decoder allocated in field; arg is the option's arg. */
typedef void (*wp_opt_free_fn)(void *field, const void *arg);

struct wp_opt {
    const char *name;
    enum wp_opt_type type;
    const char *def;  /* default as YAML scalar text; NULL = no default (zero) */
    const char *help; /* one line for check-config and docs/CONFIG.md */
    size_t offset;    /* offsetof() the field in the struct */
    int64_t min, max; /* INT and DURATION (ms) bounds, SIZE bounds; 0,0 = unbounded */
    int required;
    const char *const *enum_names; /* ENUM: NULL-terminated */
    const struct wp_opt *sub;      /* SECTION */
    wp_opt_custom_fn custom;       /* CUSTOM */
    wp_opt_free_fn custom_free;    /* CUSTOM */
    const void *arg;               /* CUSTOM: passed to custom and custom_free */
};

#define WP_OPT_TABLE_END {NULL, WP_OPT_END, NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL, NULL, NULL}

/* Load and parse a YAML file. A syntax error fills err with file:line:column. */
int wp_conf_load(const char *path, struct wp_conf_err *err, struct wp_conf_doc **out);
/* Parse YAML text; name is used in messages. */
int wp_conf_parse(const char *name, const char *text, size_t len, struct wp_conf_err *err,
                  struct wp_conf_doc **out);
void wp_conf_free(struct wp_conf_doc *doc);

/* The root node (NULL for an empty document). */
struct wp_conf_node *wp_conf_root(struct wp_conf_doc *doc);

/*
 * Fill a struct from a mapping node using an option table: defaults first, then each key.
 * An unknown key, a wrong type, a value out of range or a missing required key is an error
 * with the node's position, e.g.
 *   agent.yaml:12:5: spool.max_bytes: expected a size like 256MiB, got "lots"
 *   agent.yaml:3:1: unknown key "colectors" (expected one of: agent, collectors, tls, ...)
 * node may be NULL (all defaults). path names the section in messages ("" at the root).
 */
int wp_opts_apply(struct wp_conf_doc *doc, struct wp_conf_node *node, const struct wp_opt *opts,
                  void *base, const char *path, struct wp_conf_err *err);
/* Free what wp_opts_apply allocated (strings, lists, sections, custom fields). */
void wp_opts_free(const struct wp_opt *opts, void *base);

/* Node helpers for custom decoders. */
int wp_conf_is_map(const struct wp_conf_node *n);
int wp_conf_is_seq(const struct wp_conf_node *n);
int wp_conf_is_scalar(const struct wp_conf_node *n);
size_t wp_conf_seq_len(struct wp_conf_doc *doc, struct wp_conf_node *n);
struct wp_conf_node *wp_conf_seq_at(struct wp_conf_doc *doc, struct wp_conf_node *n, size_t i);
/* The value under key in a mapping node, or NULL. */
struct wp_conf_node *wp_conf_map_get(struct wp_conf_doc *doc, struct wp_conf_node *n,
                                     const char *key);
const char *wp_conf_scalar(const struct wp_conf_node *n); /* NULL if not a scalar */
/* The node and everything under it as one canonical string (scalars length-prefixed, maps
 * in document order, no positions or comments): equal strings mean equal settings, so a
 * reload can tell which parts of a file changed. n may be NULL. Free with free(). */
char *wp_conf_node_text(struct wp_conf_doc *doc, struct wp_conf_node *n);
/* Format "file:line:col: " + message for a node into err; returns WP_ECONFIG. */
int wp_conf_errorf(struct wp_conf_doc *doc, const struct wp_conf_node *n, struct wp_conf_err *err,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* A loader's step after the option table (cross checks, defaults); 0 or WP_ECONFIG. */
typedef int (*wp_conf_finish_fn)(void *obj, struct wp_conf_doc *doc, struct wp_conf_err *err);
/* Load the YAML file path, decode its root into obj with opts, then run finish (unless NULL)
 * on obj. Returns 0 or the first step's error (err says where). On failure obj may be partly
 * filled: its owner frees it as usual (wp_opts_free() for what the table filled). */
int wp_opts_load(const char *path, const struct wp_opt *opts, void *obj, wp_conf_finish_fn finish,
                 struct wp_conf_err *err);

/* Parsers used by the option types, exposed for reuse and tests. 0 or WP_ECONFIG. */
int wp_parse_duration_ms(const char *s, int64_t *out);
int wp_parse_size(const char *s, uint64_t *out);
int wp_parse_bool(const char *s, int *out);
/* "HH:MM" or "H:MM" into minutes after midnight; "24:00" only when allow_24. s may be NULL. */
int wp_parse_hhmm(const char *s, int allow_24, int *out);

/* A WP_OPT_CUSTOM decoder that stores the node itself (a struct wp_conf_node * field, owned
 * by the document) for the caller to decode later. */
int wp_conf_capture_node(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                         const void *arg, struct wp_conf_err *err);

void wp_strlist_free(struct wp_strlist *l);

/* Helpers shared by the daemons' config loaders. */
/*
 * Split "host:port" or "[v6addr]:port" (an IPv6 address needs the brackets). The port is a
 * decimal number in min_port..65535. Returns 0 with *host and *port set to heap copies
 * (free() them), or WP_ECONFIG.
 */
int wp_conf_split_hostport(const char *s, int min_port, char **host, char **port);
/* Make *path absolute against the directory of the config file conf_path (resolved with
 * realpath() when it exists); absolute, empty or NULL paths are left alone. */
void wp_conf_resolve_path(const char *conf_path, char **path);

#endif
