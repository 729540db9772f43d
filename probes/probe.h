/* SPDX-License-Identifier: Apache-2.0 */
/* The probe interface: every probe kind is a struct of callbacks with an option table. */
#ifndef WP_PROBES_PROBE_H
#define WP_PROBES_PROBE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include "wp/conf.h"
#include "wp/log.h"
#include "wp/wire.h"

/*
 * A series kind: the layout of one series group (one RRD file per instance), static in
 * the probe. Example: group "cpu", fields {"user", "nice", "system", ...}, gauge.
 */
struct wp_series_kind {
    const char *group;
    const char *const *fields; /* nfields names, [a-z0-9_], at most 19 chars (RRD DS names) */
    uint32_t nfields;
    enum wp_ds_type type;
};

/*
 * Where probes put what they sample. The agent's sink maps (kind, instance) to a series
 * id and appends a row to the current batch; tests use a capturing sink
 * (tests/harness/capture.h). Rows carry the sink's ts_ms (the aligned sample time).
 */
struct wp_sink {
    int64_t ts_ms;    /* sample time for this round, set by the scheduler */
    uint32_t step_s;  /* the probe's interval, becomes the RRD step */
    void (*metric)(struct wp_sink *s, const struct wp_series_kind *kind, const char *inst,
                   const double *vals);
    void *ctx;
    /* Events, check results and states (wire records 2, 3, 4; see wp/wire.h). A sink may
     * leave them NULL: the helpers below then drop the record. */
    void (*event)(struct wp_sink *s, const char *src, const char *rule, unsigned sev,
                  const char *text, const char *const *fields);
    void (*check)(struct wp_sink *s, const char *check, unsigned status, const char *output);
    void (*state)(struct wp_sink *s, const char *object, const char *group, const char *state,
                  const char *raw, const char *info);
};

enum wp_severity { WP_SEV_INFO = 0, WP_SEV_WARNING = 1, WP_SEV_ERROR = 2, WP_SEV_CRITICAL = 3 };
enum wp_check_status { WP_CHECK_OK = 0, WP_CHECK_WARNING = 1, WP_CHECK_CRITICAL = 2,
                       WP_CHECK_UNKNOWN = 3 };

/* Emit one row: vals has kind->nfields values, NaN for unknown. */
static inline void wp_sink_metric(struct wp_sink *s, const struct wp_series_kind *kind,
                                  const char *inst, const double *vals)
{
    s->metric(s, kind, inst, vals);
}

/* One event (a log record): src is the file or source, rule the rule that matched, sev a
 * wp_severity, text UTF-8 (cut at WP_TEXT_MAX), fields k, v, ..., NULL (or NULL). */
static inline void wp_sink_event(struct wp_sink *s, const char *src, const char *rule,
                                 unsigned sev, const char *text, const char *const *fields)
{
    if (s->event != NULL) {
        s->event(s, src, rule, sev, text, fields);
    }
}

/* One check result: status is a wp_check_status, output the first line(s) of output. */
static inline void wp_sink_check(struct wp_sink *s, const char *check, unsigned status,
                                 const char *output)
{
    if (s->check != NULL) {
        s->check(s, check, status, output);
    }
}

/* The state of an object (a phone line, an IVR port) in a group: state is the normalised
 * one (idle, ringing, in_use, on_hold, busy, unavailable, out_of_service, blocked, unknown),
 * raw the source's own words for it (kept verbatim), info call info; raw and info may be
 * NULL. */
static inline void wp_sink_state(struct wp_sink *s, const char *object, const char *group,
                                 const char *state, const char *raw, const char *info)
{
    if (s->state != NULL) {
        s->state(s, object, group, state, raw, info);
    }
}

struct wp_probe;

enum { WP_PROBE_BLOCKING = 1 }; /* sample() may block: the agent runs it off the loop */

struct wp_probe_ops {
    const char *name;          /* config key, e.g. "host" */
    const char *summary;
    const struct wp_opt *opts; /* option table (decoded into ctx) ending with WP_OPT_TABLE_END */
    size_t ctx_size;           /* the registry allocates p->ctx zeroed */
    unsigned flags;
    int (*init)(struct wp_probe *p);                        /* check opts, open; <0 fails */
    int (*sample)(struct wp_probe *p, struct wp_sink *out); /* periodic; or NULL */
    int (*start)(struct wp_probe *p, uv_loop_t *loop);      /* streaming; or NULL */
    void (*stop)(struct wp_probe *p);
    void (*destroy)(struct wp_probe *p); /* must cope with a failed init */
    /*
     * Optional (NULL for most probes): called on the loop thread after the rows sampled
     * at ts_ms (and every earlier round) are durable in the agent's spool.
     */
    void (*committed)(struct wp_probe *p, int64_t ts_ms);
};

/* A configured probe instance. */
struct wp_probe {
    const struct wp_probe_ops *ops;
    char *instance;       /* config "name", defaults to the kind */
    int64_t interval_ms;  /* config "interval", default 10 s, at least 1 s */
    void *ctx;            /* ops->ctx_size bytes, options decoded into it */
    int64_t next_due_ms;  /* scheduler state */
    char *conf_text;      /* its config as wp_conf_node_text(): a reload keeps the probe
                           * running when this is unchanged */
};

/* A name a probe's config gives to a target, check or query (it becomes part of series
 * instances and check names): 1 to max bytes of [A-Za-z0-9._-]. Returns 1 when valid. */
int wp_probe_name_ok(const char *s, size_t max);

/* Read a secret (a password) from the first line of path into buf (NUL-terminated, line end
 * dropped). The secret is never logged; an error names the file only. 0 or -errno. */
int wp_probe_read_secret(const struct wp_probe *p, const char *path, char *buf, size_t len);

/* Check the names of a name -> value option map (queries, ...): each wp_probe_name_ok(64).
 * what names the option in the error. 0 or WP_ECONFIG (logged). */
int wp_probe_map_names_ok(const struct wp_probe *p, const struct wp_strlist *map,
                          const char *what);

/* Start argv[0] (absolute path, no shell) with envp: stdin /dev/null, stdout and stderr
 * into one pipe whose read end (non-blocking, close-on-exec) goes to *out_fd, in its own
 * process group (kill(-pid, ...) reaches everything it starts), working directory /, no
 * other inherited fds, default signal dispositions and an empty signal mask. The caller
 * reaps *pid. 0, or -errno with nothing started. */
int wp_probe_spawn(char *const *argv, char *const *envp, pid_t *pid, int *out_fd);

/* Decoding a probe's list of targets: the node of key in item, or item when absent (for
 * error positions). */
struct wp_conf_node *wp_probe_at_key(struct wp_conf_doc *doc, struct wp_conf_node *item,
                                     const char *key);
/* Check target i's name (path "targets[i]"): wp_probe_name_ok(max) and not the name of an
 * earlier target. names points at targets[0]'s name field and stride is sizeof(target), so
 * target j's name is *(char **)((char *)names + j * stride). 0 or the error in err. */
int wp_probe_target_name(struct wp_conf_doc *doc, struct wp_conf_node *item,
                         struct wp_conf_err *err, const char *path, const char *name, size_t max,
                         char *const *names, size_t stride, size_t i);
/*
 * How wp_probe_targets_decode() reads a probe's option "targets": a list of mappings, each
 * decoded with opts into one item of size bytes whose char * at name_off is its name.
 */
struct wp_probe_targets_spec {
    const char *example;       /* a short valid list, for the error when the node is not one */
    const struct wp_opt *opts; /* each item's option table */
    size_t size;               /* sizeof one item */
    size_t name_off;           /* offsetof(item, name) */
    size_t name_max;           /* for wp_probe_target_name() */
    size_t max;                /* at most this many items; 0: no limit */
    /* After item i's options and name: check the rest, derive fields (path is
     * "targets[i]"). 0 or the error in err. */
    int (*check)(struct wp_conf_doc *doc, struct wp_conf_node *it, const char *path, void *item,
                 struct wp_conf_err *err);
    /* Free what check derived and wipe secrets, before the options are freed; or NULL. */
    void (*item_free)(void *item);
};
/*
 * The custom decode and free of a probe's option "targets": .custom and .custom_free, with
 * .arg the probe's struct wp_probe_targets_spec (arg here). field is a struct { T *v;
 * size_t n; } in the probe's ctx (that layout: the item array, then the count). Decode
 * replaces what field held with the items of node, a list (spec); on error it leaves
 * nothing (v NULL, n 0) and err names the item and key. 0 or WP_ECONFIG.
 */
int wp_probe_targets_decode(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                            const void *arg, struct wp_conf_err *err);
/* Free the items of field (spec->item_free, then the options) and the array; v NULL, n 0. */
void wp_probe_targets_free(void *field, const void *arg);
/* "host:port", or "[host]:port" for an IPv6 address (malloc'd). */
char *wp_probe_hostport(const char *host, int64_t port);

/* Monotonic seconds, for timing what a probe measures. */
double wp_probe_mono_s(void);

/* Log with the probe's identity: "LEVEL probe:host:main: ..." */
void wp_probe_log(const struct wp_probe *p, enum wp_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define WP_PLOG(p, lvl, ...)                                                                       \
    do {                                                                                           \
        if ((int)(lvl) <= wp_log_level_cur) {                                                      \
            wp_probe_log((p), (lvl), __VA_ARGS__);                                                 \
        }                                                                                          \
    } while (0)

/* The keys every probe takes (kind, name, interval), for docs/CONFIG.md. */
const struct wp_opt *wp_probe_common_opts(void);

/* The probe kinds compiled in (probe_list.c, generated from probes/CMakeLists.txt). */
extern const struct wp_probe_ops *const wp_probe_list[];
const struct wp_probe_ops *wp_probe_find(const char *name);

/*
 * Create a probe of kind ops from a config mapping node (keys: kind, name, interval and the
 * kind's own options). Runs ops->init. Returns 0 or WP_ECONFIG with err filled.
 */
int wp_probe_new(const struct wp_probe_ops *ops, struct wp_conf_doc *doc,
                 struct wp_conf_node *node, struct wp_conf_err *err, struct wp_probe **out);
void wp_probe_free(struct wp_probe *p);

#endif
