/* SPDX-License-Identifier: Apache-2.0 */
/* The connection to the collector: TLS over libuv TCP, failover, backoff, batch streaming. */
#ifndef WP_AGENT_SENDER_H
#define WP_AGENT_SENDER_H

#include <stdint.h>

struct agent;
struct agent_sender;

/*
 * Connects to conf->collectors[i] (resolved with uv_getaddrinfo, every address tried in
 * turn) and moves to the next collector after any failure or disconnect. Attempts are
 * spaced by exponential backoff with full jitter: uniform in [backoff_min,
 * min(backoff_max, backoff_min * 2^n)], n reset once a connection stayed up 30 s. The
 * first attempt waits a random [0, backoff_min] so a fleet started at once spreads out.
 * sender.connect_timeout covers resolving, TCP connect, TLS handshake and WELCOME.
 *
 * Session: TLS handshake, then HELLO {agent id, host, WP_VERSION, labels, boot = the
 * host's boot time in ms since the epoch}; on WELCOME {acked}: wp_spool_sync_remote(),
 * defs frames with the whole durable dictionary, then batches from acked + 1 read from
 * the spool, at most max_inflight unacked. ACK {seq} acks the spool and sends more. A
 * series made durable after the last defs is defined in a defs frame right before the
 * next batch. An ERROR frame is logged and ends the connection; so does a bad frame
 * (max 1 MiB from the collector). Ciphertext is written once per loop iteration; no more
 * batches are encrypted while the socket's write queue is over 512 KiB (the spool is
 * the buffer).
 *
 * Loop thread only.
 */

struct agent_sender_stats {
    int connected;          /* WELCOME received and the connection is up */
    uint64_t reconnects;    /* attempts started after a failure or a disconnect */
    uint64_t batches_sent;  /* batch frames written, resends included */
    uint64_t batches_acked; /* sent batches the collector acked */
    uint64_t acked_seq;     /* highest seq acked on the wire */
    char collector[300];    /* "host:port" of the current or last collector */
    char last_error[200];   /* why the last attempt or connection ended, "" if none */
};

/* Start connecting. a->loop, a->conf, a->spool, a->sink and a->tls must be set. */
int agent_sender_start(struct agent *a, struct agent_sender **out);

/* A batch was appended to the spool: send it if the connection can. */
void agent_sender_kick(struct agent_sender *s);

/* Close the connection (with close_notify when up) and the timers; no more attempts. */
void agent_sender_stop(struct agent_sender *s);

/* The settings changed (a reload: a->conf and a->tls may point at new ones): close the
 * connection (close_notify), forget the attempt in progress and connect again from the
 * first collector after a short jittered delay. Unacked batches stay in the spool and are
 * resent from the collector's acked + 1. */
void agent_sender_reconnect(struct agent_sender *s, const char *why);

/* Free after the loop has ended. NULL is fine. */
void agent_sender_free(struct agent_sender *s);

void agent_sender_stats(const struct agent_sender *s, struct agent_sender_stats *out);

#endif
