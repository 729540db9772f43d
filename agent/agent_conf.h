/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's configuration (YAML), decoded with option tables. */
#ifndef WP_AGENT_CONF_H
#define WP_AGENT_CONF_H

#include <stdint.h>

#include "wp/conf.h"

/* The configuration file the agent and `watchpost-agent enroll` read without -c. */
#define AGENT_CONF_DEFAULT "/etc/watchpost/agent.yaml"

struct wp_probe;

/*
 * agent.yaml:
 *   agent:   {id, host, labels: {k: v}, state_dir, log_level}
 *   collectors: [ "127.0.0.1:7443", {address: "c2.example:7443", server_name: c2} ]
 *   tls:     {ca, cert, key}
 *   spool:   {max_bytes: 256MiB, max_age: 7d, segment_bytes, fsync: true}
 *   sender:  {max_inflight: 64, backoff_min: 500ms, backoff_max: 30s, connect_timeout: 10s}
 *   probes:  [ {kind: host, name, interval: 10s, ...kind options} ]
 * Relative paths are relative to the config file's directory.
 */
struct agent_collector {
    char *host;        /* address without port */
    char *port;        /* service */
    char *server_name; /* expected certificate CN; default "watchpost-collector" */
};

struct agent_conf {
    char *path; /* the file this came from */
    struct {
        char *id;   /* default: hostname */
        char *host; /* default: hostname */
        struct wp_strlist labels; /* k, v pairs */
        char *state_dir;
        int log_level;
    } agent;
    struct agent_collector *collectors;
    size_t ncollectors;
    struct {
        char *ca, *cert, *key;
    } tls;
    struct {
        uint64_t max_bytes;
        int64_t max_age_ms;
        uint64_t segment_bytes;
        int fsync;
    } spool;
    struct {
        int64_t max_inflight;
        int64_t backoff_min_ms, backoff_max_ms, connect_timeout_ms;
    } sender;
    struct wp_probe **probes; /* created and initialised */
    size_t nprobes;
    /* agent_conf_reload(): probes[i] is the running probe of the old config (same kind and
     * unchanged config text), borrowed until agent_conf_adopt() */
    unsigned char *probe_reused;
    const struct agent_conf *reuse_from; /* only while loading */
};

/* Load and validate; on error err holds "file:line:col: ..." and *out is NULL. */
int agent_conf_load(const char *path, struct wp_conf_err *err, struct agent_conf **out);
/*
 * For a reload: load path like agent_conf_load(), but a probe whose config text is unchanged
 * from one in old (same kind, name and options) is not created again: the new config
 * borrows old's running probe (probe_reused[i] = 1), so its init() does not run twice and
 * its state stays. old is not changed. Free a refused result with agent_conf_free() as
 * usual (borrowed probes are not freed); accept it with agent_conf_adopt().
 */
int agent_conf_reload(const char *path, const struct agent_conf *old, struct wp_conf_err *err,
                      struct agent_conf **out);
/* Move the borrowed probes from old to c: their slots in old become NULL, so freeing old
 * later frees only the probes the new config dropped or replaced. */
void agent_conf_adopt(struct agent_conf *c, struct agent_conf *old);
/* The option tables, for docs/CONFIG.md: "top", "collectors". */
const struct wp_opt *agent_conf_opts(const char *which);
void agent_conf_free(struct agent_conf *c);

#endif
