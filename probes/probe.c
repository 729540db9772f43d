/* SPDX-License-Identifier: Apache-2.0 */
/* The probe registry: create probe instances from config nodes, free them, log for them. */
#include "probe.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wp/err.h"
#include "wp/mem.h"

#define PROBE_INSTANCE_MAX 64

/* The keys every probe has; decoded into the head of a scratch buffer. */
struct probe_common {
    char *kind;
    char *name;
    int64_t interval_ms;
};

static const struct wp_opt common_opts[] = {
    {.name = "kind",
     .type = WP_OPT_STR,
     .help = "the probe kind",
     .offset = offsetof(struct probe_common, kind)},
    {.name = "name",
     .type = WP_OPT_STR,
     .help = "instance name, unique per kind (default: the kind)",
     .offset = offsetof(struct probe_common, name)},
    {.name = "interval",
     .type = WP_OPT_DURATION,
     .def = "10s",
     .help = "how often to sample",
     .offset = offsetof(struct probe_common, interval_ms),
     .min = 1000,
     .max = 3600000},
    WP_OPT_TABLE_END,
};

/* The kind's context follows the common head, aligned for any field type. */
static size_t ctx_offset(void)
{
    size_t a = alignof(max_align_t);
    return (sizeof(struct probe_common) + a - 1) / a * a;
}

/* common_opts followed by the kind's options, shifted past the head. Free with free(). */
static struct wp_opt *combined_opts(const struct wp_probe_ops *ops)
{
    size_t nc = sizeof(common_opts) / sizeof(common_opts[0]) - 1;
    size_t nk = 0;
    struct wp_opt *all = NULL;

    while (ops->opts != NULL && ops->opts[nk].type != WP_OPT_END) {
        nk++;
    }
    all = wp_xcalloc(nc + nk + 1, sizeof(*all));
    memcpy(all, common_opts, nc * sizeof(*all));
    for (size_t i = 0; i < nk; i++) {
        all[nc + i] = ops->opts[i];
        all[nc + i].offset += ctx_offset();
    }
    return all; /* the calloc'd last entry is the WP_OPT_END terminator */
}

/* "probes[2]" when node is an item of a top-level sequence, else the kind. */
static void probe_label(struct wp_conf_doc *doc, struct wp_conf_node *node,
                        const struct wp_probe_ops *ops, char *buf, size_t len)
{
    struct wp_conf_node *root = wp_conf_root(doc);
    static const char *const keys[] = {"probes"};

    if (node == NULL) {
        snprintf(buf, len, "default probe");
        return;
    }
    snprintf(buf, len, "%s", ops->name);
    if (root == NULL) {
        return;
    }
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        struct wp_conf_node *seq = wp_conf_map_get(doc, root, keys[k]);
        size_t n = wp_conf_seq_len(doc, seq);
        for (size_t i = 0; i < n; i++) {
            if (wp_conf_seq_at(doc, seq, i) == node) {
                snprintf(buf, len, "%s[%zu]", keys[k], i);
                return;
            }
        }
    }
}

int wp_probe_new(const struct wp_probe_ops *ops, struct wp_conf_doc *doc, struct wp_conf_node *node,
                 struct wp_conf_err *err, struct wp_probe **out)
{
    int rc = 0;
    struct wp_opt *opts = combined_opts(ops);
    size_t off = ctx_offset();
    size_t ctx_size = ops->ctx_size != 0 ? ops->ctx_size : 1;
    char *scratch = wp_xcalloc(1, off + ctx_size);
    struct probe_common *com = (struct probe_common *)(void *)scratch;
    struct wp_probe *p = NULL;
    char label[64];

    *out = NULL;
    probe_label(doc, node, ops, label, sizeof(label));
    rc = wp_opts_apply(doc, node, opts, scratch, label, err);
    if (rc < 0) {
        goto out;
    }
    if (com->kind != NULL && strcmp(com->kind, ops->name) != 0) {
        rc = wp_conf_errorf(doc, wp_conf_map_get(doc, node, "kind"), err,
                            "%s.kind: expected \"%s\", got \"%s\"", label, ops->name, com->kind);
        goto out;
    }
    if (com->name != NULL && !wp_probe_name_ok(com->name, PROBE_INSTANCE_MAX)) {
        rc =
            wp_conf_errorf(doc, wp_conf_map_get(doc, node, "name"), err,
                           "%s.name: expected 1 to %d letters, digits, '_', '-' or '.', got \"%s\"",
                           label, PROBE_INSTANCE_MAX, com->name);
        goto out;
    }

    p = wp_xcalloc(1, sizeof(*p));
    p->ops = ops;
    p->instance = com->name != NULL ? com->name : wp_xstrdup(ops->name);
    com->name = NULL;
    p->interval_ms = com->interval_ms;
    p->conf_text = wp_conf_node_text(doc, node);
    /* the decoded kind options move, pointers and all, into their own allocation */
    p->ctx = wp_xcalloc(1, ctx_size);
    memcpy(p->ctx, scratch + off, ctx_size);
    memset(scratch + off, 0, ctx_size);

    rc = ops->init != NULL ? ops->init(p) : 0;
    if (rc < 0) {
        char who[160];
        if (strcmp(p->instance, ops->name) == 0) {
            snprintf(who, sizeof(who), "%s (%s)", label, ops->name);
        } else {
            snprintf(who, sizeof(who), "%s (%s:%s)", label, ops->name, p->instance);
        }
        rc = wp_conf_errorf(doc, node, err, "%s: init failed: %s (the log has the details)", who,
                            wp_strerror(rc));
        wp_probe_free(p); /* destroy() copes with a failed init */
        p = NULL;
        goto out;
    }
    *out = p;
out:
    wp_opts_free(opts, scratch);
    free(scratch);
    free(opts);
    return rc;
}

void wp_probe_free(struct wp_probe *p)
{
    if (p == NULL) {
        return;
    }
    if (p->ops->destroy != NULL) {
        p->ops->destroy(p);
    }
    wp_opts_free(p->ops->opts, p->ctx);
    free(p->ctx);
    free(p->instance);
    free(p->conf_text);
    free(p);
}

int wp_probe_name_ok(const char *s, size_t max)
{
    size_t n = s != NULL ? strnlen(s, max + 1) : 0;

    if (n == 0 || n > max) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.')) {
            return 0;
        }
    }
    return 1;
}

int wp_probe_read_secret(const struct wp_probe *p, const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = 0;

    if (fd < 0) {
        int rc = -errno;
        WP_PLOG(p, WP_LOG_ERROR, "secret file %s: %s", path, wp_strerror(rc));
        return rc;
    }
    n = read(fd, buf, len - 1);
    int rc = n < 0 ? -errno : 0;
    close(fd);
    if (rc < 0) {
        WP_PLOG(p, WP_LOG_ERROR, "secret file %s: %s", path, wp_strerror(rc));
        return rc;
    }
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

int wp_probe_map_names_ok(const struct wp_probe *p, const struct wp_strlist *map,
                          const char *what)
{
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        if (!wp_probe_name_ok(map->v[i], 64)) {
            WP_PLOG(p, WP_LOG_ERROR, "%s: name \"%s\" must be 1-64 of [A-Za-z0-9._-]", what,
                    map->v[i]);
            return WP_ECONFIG;
        }
    }
    return 0;
}

int wp_probe_spawn(char *const *argv, char *const *envp, pid_t *pid, int *out_fd)
{
    int rc = 0;
    int pfd[2] = {-1, -1};
    int fa_ok = 0;
    int at_ok = 0;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, deflt;
    static const int reset_sigs[] = {SIGPIPE, SIGHUP,  SIGINT,  SIGQUIT, SIGTERM, SIGCHLD, SIGUSR1,
                                     SIGUSR2, SIGALRM, SIGXFSZ, SIGTSTP, SIGTTIN, SIGTTOU};

    if (pipe2(pfd, O_CLOEXEC) < 0) {
        rc = -errno;
        goto out;
    }
    while (pfd[1] <= 2) { /* keep the write end off 0..2, which the dup2 actions overwrite */
        int fd = fcntl(pfd[1], F_DUPFD_CLOEXEC, 3);
        if (fd < 0) {
            rc = -errno;
            goto out;
        }
        close(pfd[1]);
        pfd[1] = fd;
    }
    if (fcntl(pfd[0], F_SETFL, O_NONBLOCK) < 0) {
        rc = -errno;
        goto out;
    }
    rc = -posix_spawn_file_actions_init(&fa);
    if (rc < 0) {
        goto out;
    }
    fa_ok = 1;
    rc = -posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (rc == 0) {
        rc = -posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    }
    if (rc == 0) {
        rc = -posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
    }
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    if (rc == 0) {
        rc = -posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    }
#endif
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 29))
    if (rc == 0) {
        rc = -posix_spawn_file_actions_addchdir_np(&fa, "/");
    }
#endif
    if (rc < 0) {
        goto out;
    }
    rc = -posix_spawnattr_init(&at);
    if (rc < 0) {
        goto out;
    }
    at_ok = 1;
    sigemptyset(&none);
    sigemptyset(&deflt);
    for (size_t i = 0; i < sizeof(reset_sigs) / sizeof(reset_sigs[0]); i++) {
        sigaddset(&deflt, reset_sigs[i]);
    }
    rc = -posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                            POSIX_SPAWN_SETSIGDEF);
    if (rc == 0) {
        rc = -posix_spawnattr_setpgroup(&at, 0);
    }
    if (rc == 0) {
        rc = -posix_spawnattr_setsigmask(&at, &none);
    }
    if (rc == 0) {
        rc = -posix_spawnattr_setsigdefault(&at, &deflt);
    }
    if (rc < 0) {
        goto out;
    }
    rc = -posix_spawn(pid, argv[0], &fa, &at, argv, envp);
    if (rc < 0) {
        goto out;
    }
    *out_fd = pfd[0];
    pfd[0] = -1;
out:
    if (at_ok) {
        posix_spawnattr_destroy(&at);
    }
    if (fa_ok) {
        posix_spawn_file_actions_destroy(&fa);
    }
    if (pfd[0] >= 0) {
        close(pfd[0]);
    }
    if (pfd[1] >= 0) {
        close(pfd[1]);
    }
    return rc;
}

struct wp_conf_node *wp_probe_at_key(struct wp_conf_doc *doc, struct wp_conf_node *item,
                                     const char *key)
{
    struct wp_conf_node *n = wp_conf_map_get(doc, item, key);

    return n != NULL ? n : item;
}

int wp_probe_target_name(struct wp_conf_doc *doc, struct wp_conf_node *item,
                         struct wp_conf_err *err, const char *path, const char *name, size_t max,
                         char *const *names, size_t stride, size_t i)
{
    if (!wp_probe_name_ok(name, max)) {
        return wp_conf_errorf(doc, wp_probe_at_key(doc, item, "name"), err,
                              "%s.name: expected 1 to %zu letters, digits, '_', '-' or '.', got "
                              "\"%s\"",
                              path, max, name != NULL ? name : "");
    }
    for (size_t j = 0; j < i; j++) {
        const char *other = *(char *const *)(const void *)((const char *)names + j * stride);
        if (strcmp(other, name) == 0) {
            return wp_conf_errorf(doc, wp_probe_at_key(doc, item, "name"), err,
                                  "%s.name: \"%s\" is already the name of targets[%zu]", path,
                                  name, j);
        }
    }
    return 0;
}

/* The layout of a probe's targets field: the array (a T *, same representation as void *),
 * then the count. Copied with memcpy, as the field's own type is the probe's. */
struct probe_targets {
    void *v;
    size_t n;
};

static void free_items(const struct wp_probe_targets_spec *spec, char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        void *item = v + i * spec->size;
        if (spec->item_free != NULL) {
            spec->item_free(item);
        }
        wp_opts_free(spec->opts, item);
    }
    free(v);
}

void wp_probe_targets_free(void *field, const void *arg)
{
    const struct wp_probe_targets_spec *spec = arg;
    struct probe_targets ts;

    memcpy(&ts, field, sizeof(ts));
    free_items(spec, ts.v, ts.n);
    memset(field, 0, sizeof(ts));
}

int wp_probe_targets_decode(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                            const void *arg, struct wp_conf_err *err)
{
    const struct wp_probe_targets_spec *spec = arg;
    size_t len = wp_conf_seq_len(doc, node);
    struct probe_targets ts = {NULL, 0};
    char *items = NULL;
    char path[48];

    wp_probe_targets_free(field, spec);
    if (!wp_conf_is_seq(node) || len == 0) {
        return wp_conf_errorf(doc, node, err, "targets: expected a list like %s", spec->example);
    }
    if (spec->max != 0 && len > spec->max) {
        return wp_conf_errorf(doc, node, err, "targets: %zu targets, at most %zu", len, spec->max);
    }
    items = wp_xcalloc(len, spec->size);
    for (size_t i = 0; i < len; i++) {
        struct wp_conf_node *it = wp_conf_seq_at(doc, node, i);
        char *item = items + i * spec->size;
        int rc = 0;

        snprintf(path, sizeof(path), "targets[%zu]", i);
        rc = wp_opts_apply(doc, it, spec->opts, item, path, err);
        if (rc == 0) {
            rc = wp_probe_target_name(
                doc, it, err, path, *(char **)(void *)(item + spec->name_off), spec->name_max,
                (char *const *)(void *)(items + spec->name_off), spec->size, i);
        }
        if (rc == 0 && spec->check != NULL) {
            rc = spec->check(doc, it, path, item, err);
        }
        if (rc < 0) {
            free_items(spec, items, i + 1); /* item i too, even half decoded */
            return rc;
        }
    }
    ts.v = items;
    ts.n = len;
    memcpy(field, &ts, sizeof(ts));
    return 0;
}

char *wp_probe_hostport(const char *host, int64_t port)
{
    return strchr(host, ':') != NULL ? wp_xasprintf("[%s]:%lld", host, (long long)port)
                                     : wp_xasprintf("%s:%lld", host, (long long)port);
}

double wp_probe_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void wp_probe_log(const struct wp_probe *p, enum wp_log_level lvl, const char *fmt, ...)
{
    char msg[1536];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    wp_log(lvl, "probe", "%s:%s: %s", p->ops->name, p->instance, msg);
}

const struct wp_opt *wp_probe_common_opts(void)
{
    return common_opts;
}
