/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's configuration: option tables for agent.yaml, collectors and probes. */
#include "agent_conf.h"

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "probe.h"
#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"

#define AGENT_ID_MAX        64
#define DEFAULT_SERVER_NAME "watchpost-collector"


#define SEC(sec, f) (offsetof(struct agent_conf, sec.f) - offsetof(struct agent_conf, sec))

static const struct wp_opt agent_opts[] = {
    {.name = "id",
     .type = WP_OPT_STR,
     .help = "agent id, the CN of its certificate (default: hostname)",
     .offset = SEC(agent, id)},
    {.name = "host",
     .type = WP_OPT_STR,
     .help = "host name reported to the collector (default: hostname)",
     .offset = SEC(agent, host)},
    {.name = "labels",
     .type = WP_OPT_STRMAP,
     .help = "labels added to every series, e.g. {site: par1}",
     .offset = SEC(agent, labels)},
    {.name = "state_dir",
     .type = WP_OPT_STR,
     .def = "/var/lib/watchpost/agent",
     .help = "spool and sequence state",
     .offset = SEC(agent, state_dir)},
    {.name = "log_level",
     .type = WP_OPT_ENUM,
     .def = "info",
     .help = "error, warn, info or debug",
     .offset = SEC(agent, log_level),
     .enum_names = wp_log_level_names},
    WP_OPT_TABLE_END,
};

static const struct wp_opt tls_opts[] = {
    {.name = "ca",
     .type = WP_OPT_STR,
     .help = "CA certificate that signed the collector's certificate",
     .offset = SEC(tls, ca),
     .required = 1},
    {.name = "cert",
     .type = WP_OPT_STR,
     .help = "this agent's certificate (CN = agent id)",
     .offset = SEC(tls, cert),
     .required = 1},
    {.name = "key",
     .type = WP_OPT_STR,
     .help = "this agent's private key",
     .offset = SEC(tls, key),
     .required = 1},
    WP_OPT_TABLE_END,
};

static const struct wp_opt spool_opts[] = {
    {.name = "max_bytes",
     .type = WP_OPT_SIZE,
     .def = "256MiB",
     .help = "disk space for unacknowledged batches; the oldest are dropped beyond it",
     .offset = SEC(spool, max_bytes),
     .min = 64 << 10},
    {.name = "max_age",
     .type = WP_OPT_DURATION,
     .def = "7d",
     .help = "batches older than this are dropped",
     .offset = SEC(spool, max_age_ms),
     .min = 60000},
    {.name = "segment_bytes",
     .type = WP_OPT_SIZE,
     .def = "0",
     .help = "spool segment size (0 = chosen from max_bytes)",
     .offset = SEC(spool, segment_bytes)},
    {.name = "fsync",
     .type = WP_OPT_BOOL,
     .def = "true",
     .help = "fsync each batch before sending it",
     .offset = SEC(spool, fsync)},
    WP_OPT_TABLE_END,
};

static const struct wp_opt sender_opts[] = {
    {.name = "max_inflight",
     .type = WP_OPT_INT,
     .def = "64",
     .help = "batches sent and not yet acknowledged",
     .offset = SEC(sender, max_inflight),
     .min = 1,
     .max = 65536},
    {.name = "backoff_min",
     .type = WP_OPT_DURATION,
     .def = "500ms",
     .help = "first reconnect delay (jittered, doubles up to backoff_max)",
     .offset = SEC(sender, backoff_min_ms),
     .min = 10,
     .max = 3600000},
    {.name = "backoff_max",
     .type = WP_OPT_DURATION,
     .def = "30s",
     .help = "longest reconnect delay",
     .offset = SEC(sender, backoff_max_ms),
     .min = 10,
     .max = 3600000},
    {.name = "connect_timeout",
     .type = WP_OPT_DURATION,
     .def = "10s",
     .help = "TCP connect plus TLS handshake",
     .offset = SEC(sender, connect_timeout_ms),
     .min = 100,
     .max = 600000},
    WP_OPT_TABLE_END,
};

/* The mapping form of a collectors entry. */
struct collector_item {
    char *address;
    char *server_name;
};

static const struct wp_opt collector_item_opts[] = {
    {.name = "address",
     .type = WP_OPT_STR,
     .help = "host:port, IPv6 as [::1]:7443",
     .offset = offsetof(struct collector_item, address),
     .required = 1},
    {.name = "server_name",
     .type = WP_OPT_STR,
     .def = DEFAULT_SERVER_NAME,
     .help = "expected CN of the collector's certificate",
     .offset = offsetof(struct collector_item, server_name)},
    WP_OPT_TABLE_END,
};

static int decode_collectors(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                             const void *arg, struct wp_conf_err *err);
static void free_collectors(void *field, const void *arg);
static int decode_probes(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                         const void *arg, struct wp_conf_err *err);
static void free_probes(void *field, const void *arg);

/* collectors and probes fill several fields, so their custom decoders get the whole conf */
static const struct wp_opt top_opts[] = {
    {.name = "agent",
     .type = WP_OPT_SECTION,
     .help = "identity, labels, state and logging",
     .offset = offsetof(struct agent_conf, agent),
     .sub = agent_opts},
    {.name = "collectors",
     .type = WP_OPT_CUSTOM,
     .help = "collectors to send to, in order of preference",
     .offset = 0,
     .required = 1,
     .custom = decode_collectors,
     .custom_free = free_collectors},
    {.name = "tls",
     .type = WP_OPT_SECTION,
     .help = "certificates (from `watchpost ca`)",
     .offset = offsetof(struct agent_conf, tls),
     .sub = tls_opts},
    {.name = "spool",
     .type = WP_OPT_SECTION,
     .help = "on-disk queue of batches until the collector acknowledges them",
     .offset = offsetof(struct agent_conf, spool),
     .sub = spool_opts},
    {.name = "sender",
     .type = WP_OPT_SECTION,
     .help = "connection to the collector",
     .offset = offsetof(struct agent_conf, sender),
     .sub = sender_opts},
    {.name = "probes",
     .type = WP_OPT_CUSTOM,
     .help = "what to collect (default: one host probe)",
     .offset = 0,
     .custom = decode_probes,
     .custom_free = free_probes},
    WP_OPT_TABLE_END,
};

static int decode_collectors(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                             const void *arg, struct wp_conf_err *err)
{
    struct agent_conf *c = field;
    size_t n = wp_conf_seq_len(doc, node);
    struct collector_item item = {NULL, NULL};
    char path[48];
    int rc = 0;

    (void)arg;
    if (!wp_conf_is_seq(node)) {
        return wp_conf_errorf(doc, node, err,
                              "collectors: expected a list like [\"collector.example:7443\"]");
    }
    if (n == 0) {
        return wp_conf_errorf(doc, node, err, "collectors: at least one collector is required");
    }
    c->collectors = wp_xcalloc(n, sizeof(*c->collectors));
    for (size_t i = 0; i < n; i++) {
        struct wp_conf_node *it = wp_conf_seq_at(doc, node, i);
        struct wp_conf_node *at = it;
        struct agent_collector *ac = &c->collectors[i];
        const char *addr = NULL;

        snprintf(path, sizeof(path), "collectors[%zu]", i);
        if (wp_conf_is_map(it)) {
            rc = wp_opts_apply(doc, it, collector_item_opts, &item, path, err);
            if (rc < 0) {
                goto out;
            }
            addr = item.address;
            at = wp_conf_map_get(doc, it, "address");
            snprintf(path, sizeof(path), "collectors[%zu].address", i);
        } else if (wp_conf_is_scalar(it)) {
            addr = wp_conf_scalar(it);
        } else {
            rc = wp_conf_errorf(doc, it, err, "%s: expected \"host:port\" or a mapping", path);
            goto out;
        }
        if (wp_conf_split_hostport(addr, 1, &ac->host, &ac->port) < 0) {
            rc = wp_conf_errorf(doc, at, err,
                                "%s: expected \"host:port\" (IPv6 as \"[::1]:7443\"), got \"%s\"",
                                path, addr);
            goto out;
        }
        ac->server_name =
            wp_xstrdup(item.server_name != NULL ? item.server_name : DEFAULT_SERVER_NAME);
        c->ncollectors = i + 1;
        wp_opts_free(collector_item_opts, &item);
    }
out:
    wp_opts_free(collector_item_opts, &item);
    return rc;
}

static void free_collectors(void *field, const void *arg)
{
    struct agent_conf *c = field;

    (void)arg;
    /* entries past ncollectors were never filled (decoding stopped there) */
    for (size_t i = 0; i < c->ncollectors; i++) {
        free(c->collectors[i].host);
        free(c->collectors[i].port);
        free(c->collectors[i].server_name);
    }
    free(c->collectors);
    c->collectors = NULL;
    c->ncollectors = 0;
}

/* "host, selftest": the kinds compiled in, for the unknown-kind message. */
static void known_kinds(char *buf, size_t len)
{
    size_t n = 0;

    buf[0] = '\0';
    for (size_t i = 0; wp_probe_list[i] != NULL && n < len; i++) {
        n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? ", " : "", wp_probe_list[i]->name);
    }
    if (wp_probe_list[0] == NULL) {
        snprintf(buf, len, "none compiled in");
    }
}

static void push_probe(struct agent_conf *c, struct wp_probe *p, int reused)
{
    c->probes = wp_xrealloc(c->probes, (c->nprobes + 1) * sizeof(*c->probes));
    c->probe_reused = wp_xrealloc(c->probe_reused, c->nprobes + 1);
    c->probe_reused[c->nprobes] = (unsigned char)reused;
    c->probes[c->nprobes++] = p;
}

/* The running probe of the old config with this kind and config text, not yet borrowed. */
static struct wp_probe *find_reusable(const struct agent_conf *c, const struct wp_probe_ops *ops,
                                      const char *text)
{
    const struct agent_conf *old = c->reuse_from;

    if (old == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < old->nprobes; i++) {
        struct wp_probe *p = old->probes[i];
        int taken = 0;
        if (p == NULL || p->ops != ops || p->conf_text == NULL || strcmp(p->conf_text, text)) {
            continue;
        }
        for (size_t j = 0; j < c->nprobes && !taken; j++) {
            taken = c->probes[j] == p;
        }
        if (!taken) {
            return p;
        }
    }
    return NULL;
}

static int decode_probes(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                         const void *arg, struct wp_conf_err *err)
{
    struct agent_conf *c = field;
    size_t n = wp_conf_seq_len(doc, node);
    char known[256];

    (void)arg;
    if (!wp_conf_is_seq(node)) {
        return wp_conf_errorf(doc, node, err, "probes: expected a list like [{kind: host}]");
    }
    for (size_t i = 0; i < n; i++) {
        struct wp_conf_node *it = wp_conf_seq_at(doc, node, i);
        struct wp_conf_node *kn = wp_conf_map_get(doc, it, "kind");
        const struct wp_probe_ops *ops = NULL;
        struct wp_probe *p = NULL;
        int rc = 0;

        if (!wp_conf_is_map(it)) {
            return wp_conf_errorf(doc, it, err, "probes[%zu]: expected a mapping like {kind: host}",
                                  i);
        }
        if (kn == NULL) {
            return wp_conf_errorf(doc, it, err, "probes[%zu].kind: required key is missing", i);
        }
        if (!wp_conf_is_scalar(kn)) {
            return wp_conf_errorf(doc, kn, err, "probes[%zu].kind: expected a string", i);
        }
        ops = wp_probe_find(wp_conf_scalar(kn));
        if (ops == NULL) {
            known_kinds(known, sizeof(known));
            return wp_conf_errorf(
                doc, kn, err, "probes[%zu].kind: unknown probe kind \"%s\" (%s%s)", i,
                wp_conf_scalar(kn), wp_probe_list[0] != NULL ? "known: " : "", known);
        }
        char *text = wp_conf_node_text(doc, it);
        int reused = 0;
        p = find_reusable(c, ops, text);
        free(text);
        if (p != NULL) {
            reused = 1;
        } else {
            rc = wp_probe_new(ops, doc, it, err, &p);
            if (rc < 0) {
                return rc;
            }
        }
        for (size_t j = 0; j < c->nprobes; j++) {
            if (c->probes[j]->ops == ops && strcmp(c->probes[j]->instance, p->instance) == 0) {
                rc = wp_conf_errorf(doc, it, err,
                                    "probes[%zu]: probes[%zu] is also %s:%s (set a different "
                                    "name)",
                                    i, j, ops->name, p->instance);
                if (!reused) {
                    wp_probe_free(p);
                }
                return rc;
            }
        }
        push_probe(c, p, reused);
    }
    return 0;
}

static void free_probes(void *field, const void *arg)
{
    struct agent_conf *c = field;

    (void)arg;
    for (size_t i = 0; i < c->nprobes; i++) {
        if (c->probe_reused == NULL || !c->probe_reused[i]) {
            wp_probe_free(c->probes[i]); /* borrowed ones belong to the old config */
        }
    }
    free(c->probes);
    free(c->probe_reused);
    c->probes = NULL;
    c->probe_reused = NULL;
    c->nprobes = 0;
}

static int valid_id(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > AGENT_ID_MAX) {
        return 0;
    }
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* Fill what the option tables cannot: hostname defaults, the default probe, cross checks. */
static int finish(void *obj, struct wp_conf_doc *doc, struct wp_conf_err *err)
{
    struct agent_conf *c = obj;
    struct wp_conf_node *root = wp_conf_root(doc);
    struct wp_conf_node *agent = wp_conf_map_get(doc, root, "agent");
    char hn[HOST_NAME_MAX + 1];

    if (c->agent.id == NULL || c->agent.host == NULL) {
        if (gethostname(hn, sizeof(hn)) < 0) {
            snprintf(hn, sizeof(hn), "localhost");
        }
        hn[sizeof(hn) - 1] = '\0';
        if (c->agent.id == NULL) {
            c->agent.id = wp_xstrdup(hn);
        }
        if (c->agent.host == NULL) {
            c->agent.host = wp_xstrdup(hn);
        }
    }
    if (!valid_id(c->agent.id)) {
        struct wp_conf_node *at = wp_conf_map_get(doc, agent, "id");
        return wp_conf_errorf(doc, at != NULL ? at : root, err,
                              "agent.id: expected 1 to %d letters, digits, '.', '_' or '-', got "
                              "\"%s\"%s",
                              AGENT_ID_MAX, c->agent.id, at == NULL ? " (from the hostname)" : "");
    }
    if (c->sender.backoff_min_ms > c->sender.backoff_max_ms) {
        struct wp_conf_node *sender = wp_conf_map_get(doc, root, "sender");
        struct wp_conf_node *at = wp_conf_map_get(doc, sender, "backoff_min");
        return wp_conf_errorf(doc, at != NULL ? at : sender, err,
                              "sender.backoff_min: must not be longer than sender.backoff_max");
    }
    if (wp_conf_map_get(doc, root, "probes") == NULL) {
        const struct wp_probe_ops *host = wp_probe_find("host");
        if (host != NULL) {
            char *text = wp_conf_node_text(doc, NULL);
            struct wp_probe *p = find_reusable(c, host, text);
            free(text);
            if (p != NULL) {
                push_probe(c, p, 1);
            } else {
                int rc = wp_probe_new(host, doc, NULL, err, &p);
                if (rc < 0) {
                    return rc;
                }
                push_probe(c, p, 0);
            }
        }
    }
    wp_conf_resolve_path(c->path, &c->agent.state_dir);
    wp_conf_resolve_path(c->path, &c->tls.ca);
    wp_conf_resolve_path(c->path, &c->tls.cert);
    wp_conf_resolve_path(c->path, &c->tls.key);
    return 0;
}

int agent_conf_load(const char *path, struct wp_conf_err *err, struct agent_conf **out)
{
    return agent_conf_reload(path, NULL, err, out);
}

int agent_conf_reload(const char *path, const struct agent_conf *old, struct wp_conf_err *err,
                      struct agent_conf **out)
{
    struct agent_conf *c = wp_xcalloc(1, sizeof(*c));
    int rc = 0;

    *out = NULL;
    c->path = wp_xstrdup(path);
    c->reuse_from = old;
    rc = wp_opts_load(path, top_opts, c, finish, err);
    if (rc < 0) {
        agent_conf_free(c);
        return rc;
    }
    c->reuse_from = NULL;
    *out = c;
    return 0;
}

void agent_conf_free(struct agent_conf *c)
{
    if (c == NULL) {
        return;
    }
    wp_opts_free(top_opts, c);
    free(c->path);
    free(c);
}

void agent_conf_adopt(struct agent_conf *c, struct agent_conf *old)
{
    for (size_t i = 0; i < c->nprobes; i++) {
        if (c->probe_reused == NULL || !c->probe_reused[i]) {
            continue;
        }
        for (size_t j = 0; j < old->nprobes; j++) {
            if (old->probes[j] == c->probes[i]) {
                old->probes[j] = NULL;
            }
        }
        c->probe_reused[i] = 0;
    }
}

const struct wp_opt *agent_conf_opts(const char *which)
{
    if (strcmp(which, "top") == 0) {
        return top_opts;
    }
    if (strcmp(which, "collectors") == 0) {
        return collector_item_opts;
    }
    return NULL;
}
