/* SPDX-License-Identifier: Apache-2.0 */
/* The agent process: one struct agent owns the loop's parts and is passed explicitly. */
#ifndef WP_AGENT_AGENT_H
#define WP_AGENT_AGENT_H

#include <stdint.h>

#include <uv.h>

struct agent_conf;
struct agent_sched;
struct agent_sender;
struct agent_sink;
struct wp_spool;
struct wp_tls_ctx;

/*
 * Everything lives on one loop thread. main.c fills the pointers in this order: conf,
 * spool, sink, tls, then the scheduler and the sender (which read the others); on
 * shutdown the scheduler and sender stop first, the loop drains, then the rest is freed.
 */
struct agent {
    uv_loop_t *loop;
    struct agent_conf *conf;
    struct wp_spool *spool;
    struct agent_sink *sink;
    struct wp_tls_ctx *tls;
    struct agent_sched *sched;
    struct agent_sender *sender;
    uv_signal_t sig_term, sig_int, sig_hup;
    int stopping;
    int log_level_fixed; /* --log-level given: a reload leaves the level alone */
    uint64_t tls_sum;    /* of the TLS files' contents, to notice a renewed certificate */
    /* TLS contexts replaced by a reload; a closing connection may still use one, so they
     * are freed with the rest at shutdown */
    struct wp_tls_ctx **tls_retired;
    size_t ntls_retired;
};

#endif
