/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The notification outbox (outbox.c), in incidents.db next to the incidents.
 *
 * The incident timeline is the durable record of every incident change, written in the
 * change's own transaction by whoever made it (the rules engine, the escalation tick, an
 * operator's `watchpost incidents ack` in another process, later the dashboard). The outbox
 * follows it with a cursor: outbox_generate() reads the entries after the cursor and, in ONE
 * transaction, queues the messages they cause (routing by priority, category, host, rule,
 * escalation level and hours), records what was skipped or coalesced on the timeline, and
 * moves the cursor. A crash before that commit re-reads the same entries; after it, nothing
 * is read twice: every change causes its messages exactly once.
 *
 * A message has a stable event id "<dest>-<incident>-<timeline id>" and a snapshot of the
 * incident at the event (JSON). It is rendered on its first attempt (so a template can use
 * the remote ticket id the open call stored) and the rendered request is stored: every retry
 * sends identical bytes. Delivery (deliver.c) takes, per (destination, incident), only the
 * oldest queued message, so a trigger never arrives after its resolve; a newer update
 * coalesces an older queued one.
 *
 * States: queued -> sent | dead; queued -> coalesced (by a newer update) | skipped (the
 * incident was suppressed or flapping when the event came, or, at delivery, the message is
 * for a ticket its destination never got because the open was never sent) | digested (folded into a
 * summary message, event "digest", incident 0, when the destination was over its limit). `watchpost outbox retry ID`
 * puts a dead message back in the queue.
 */
#ifndef WP_COLLECTOR_OUTBOX_H
#define WP_COLLECTOR_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "notify.h"

struct outbox;

struct outbox_msg {
    int64_t id;
    const char *event_id, *dest, *inc_key, *event, *state;
    int64_t incident_id, seq;
    int64_t created_ms, next_ms, sent_ms;
    int attempts;
    int last_code;
    const char *last_error;
    const char *ctx; /* JSON snapshot: the template variables */
    /* rendered request (NULL / 0 until the first attempt) */
    const char *method, *url, *headers; /* headers: "Name: value\n"... */
    const void *body;
    size_t body_len;
    const char *rcpt; /* email: recipients, "\n"-separated */
};

/* Open the outbox tables in the incidents database at path (own connection). conf may be
 * NULL (the CLI): then nothing is generated. */
int outbox_open(const char *path, const struct notify_conf *conf, struct outbox **out);
void outbox_close(struct outbox *ob);
const char *outbox_errmsg(struct outbox *ob);

/* Routes with groups: ask fn whether a host is in a host group of the loaded rules. */
void outbox_set_groups(struct outbox *ob, int (*fn)(void *arg, const char *group, const char *host),
                       void *arg);

/* Queue the messages of new timeline entries (at most max entries per call). Returns the
 * number of messages queued, or <0. */
int outbox_generate(struct outbox *ob, int64_t now_ms, size_t max);

/* Messages due at now_ms: queued, next_ms <= now, and the oldest queued message of their
 * (destination, incident). fn returns nonzero to stop. Strings valid during the call. */
int outbox_due(struct outbox *ob, int64_t now_ms, size_t max,
               int (*fn)(void *arg, const struct outbox_msg *m), void *arg);
/* The earliest next_ms of a queued message, or INT64_MAX. */
int64_t outbox_next_due(struct outbox *ob);

/* Store the rendered request of message id (first attempt). */
int outbox_rendered(struct outbox *ob, int64_t id, const char *method, const char *url,
                    const char *headers, const void *body, size_t len, const char *rcpt);
/* Outcomes; each also writes the audit entry on the incident's timeline (by "notify"). */
int outbox_sent(struct outbox *ob, int64_t id, int code, const char *note, int64_t now_ms);
int outbox_retry(struct outbox *ob, int64_t id, int code, const char *err, int64_t next_ms,
                 int64_t now_ms);
int outbox_dead(struct outbox *ob, int64_t id, int code, const char *err, int64_t now_ms);
/* Not sent, and nothing failed: a message that has nothing to act on at its destination (an
 * ack, update or resolve for a ticket that was never created there, its open having been
 * skipped). State "skipped" with why in last_error, and a "notify skipped" timeline entry. */
int outbox_skip(struct outbox *ob, int64_t id, const char *why, int64_t now_ms);
/* The newest open message of (dest, incident_id) queued before message id `before` that went
 * out or may still go (state sent, dead or queued): 0 with its id and state, WP_ENOTFOUND
 * when there is none (never queued, or skipped, coalesced, digested), or <0. */
int outbox_open_state(struct outbox *ob, const char *dest, int64_t incident_id, int64_t before,
                      int64_t *id, char *state, size_t statelen);

/* The remote ticket id a destination keeps for an incident. state: "creating" before the
 * create call goes out, "linked" once its id is known. get: 0, or WP_ENOTFOUND. */
int outbox_remote_get(struct outbox *ob, const char *dest, int64_t incident_id, char *id,
                      size_t idlen, char *state, size_t statelen);
int outbox_remote_put(struct outbox *ob, const char *dest, int64_t incident_id,
                      const char *remote_id, const char *state);

/* The destination is over its rate limit: fold every due, never attempted message of dest
 * (at least min of them) into one "digest" message (incident 0) sent at next_ms; they
 * become "digested", each with a timeline entry. Returns the number folded (0 when fewer
 * than min), or <0. */
int outbox_digest(struct outbox *ob, const char *dest, int64_t now_ms, int64_t next_ms,
                  size_t min);

/* Queue a message its producer rendered itself (a scheduled report's mail: event "report",
 * incident 0, inc_key "<kind>/<period>"; report_sched.c): stored with its request, so every
 * attempt sends the same bytes, and delivered, retried and dead-lettered like the others.
 * Returns 0 when queued, 1 when a message with this event_id exists already (left alone:
 * a restart never queues it twice), or <0. */
int outbox_queue_rendered(struct outbox *ob, const char *event_id, const char *dest,
                          const char *inc_key, const char *event, const char *ctx,
                          const char *method, const char *url, const char *headers,
                          const void *body, size_t len, const char *rcpt, int64_t now_ms);

/* CLI: messages (state NULL = every state), newest first; put a dead one back. */
int outbox_list(struct outbox *ob, const char *state, size_t limit,
                int (*fn)(void *arg, const struct outbox_msg *m), void *arg);
int outbox_requeue(struct outbox *ob, int64_t id, int64_t now_ms, char *err, size_t errlen);

/* Retention, a bounded step of it: look at the next max messages by id (going on where the
 * last call stopped, starting over after the end) and delete those that ended (sent, skipped,
 * coalesced, digested) before now_ms - keep_ms, or went dead before now_ms - keep_dead_ms (by
 * created_ms), at most 64 MiB of bodies a call. Never a queued one, nor any of a (destination,
 * incident) with a queued one, nor the newest of a (destination, incident) that told() and
 * outbox_open_state() look up (what the destination was told). *more: call again (the pass
 * is not through). Returns the number deleted, or <0. */
int outbox_prune(struct outbox *ob, int64_t now_ms, int64_t keep_ms, int64_t keep_dead_ms,
                 size_t max, int *more);

struct outbox_counts {
    uint64_t queued, sent, dead, coalesced, skipped, digested;
    int64_t oldest_queued_ms; /* created_ms of the oldest queued message, 0 = none */
};
int outbox_counts(struct outbox *ob, struct outbox_counts *out);

/* The incident variables of a message as the renderers need them, from its ctx snapshot:
 * fills m (strings point into the returned handle; free it with notify_inc_free). */
void *notify_inc_from_ctx(const char *ctx, struct notify_inc *m);
void notify_inc_free(void *handle);

#endif
