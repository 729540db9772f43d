/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The delivery worker (deliver.c): libcurl multi driven by the collector's libuv loop. Each
 * pump turns new timeline entries into messages (outbox_generate) and starts the messages
 * that are due: only the oldest queued one per (destination, incident), at most
 * `rate.max` requests per `rate.per` and a few at a time per destination.
 *
 * Outcomes: 2xx (SMTP 2xx/3xx) sent; network errors, timeouts, 408, 429 (Retry-After
 * honoured, capped at retry_after_max), 5xx and SMTP 4xx retried with jittered exponential
 * backoff until the message is max_age old; other 4xx and SMTP 5xx dead-lettered at once.
 * A dead letter opens (or updates) the incident "notify_dead_letter" of that destination,
 * which resolves when a message to it goes through again. A message for a ticket the
 * destination never got (RT after the open, a webhook request with {remote_id}, and no open
 * of the incident went there before it) is skipped instead: nothing failed.
 *
 * Tickets: before an open goes to a destination that keeps a remote id (RT, a webhook with
 * store:), the outbox records "creating"; when a retry of that open finds "creating" (the
 * collector died, or the answer was lost, after the create call), it first searches the
 * destination by the incident key and only creates when nothing is found.
 */
#ifndef WP_COLLECTOR_DELIVER_H
#define WP_COLLECTOR_DELIVER_H

#include <stdint.h>

#include <uv.h>

#include "notify.h"
#include "outbox.h"

struct deliver;
struct inc_store;

/* inc (may be NULL) receives the dead-letter incidents. */
int deliver_start(uv_loop_t *loop, const struct notify_conf *conf, struct outbox *ob,
                  struct inc_store *inc, struct deliver **out);
/* Cancel what is in flight (it stays queued: sent again at the next start) and close. cb
 * runs once every handle is closed. */
void deliver_stop(struct deliver *dl, void (*cb)(void *arg), void *arg);
/* Generate and start what is due (call every second, and after incidents change). */
void deliver_pump(struct deliver *dl, int64_t now_ms);

struct deliver_stats {
    uint64_t sent, retried, dead, reconciled, started;
    uint64_t digested; /* messages folded into summaries */
    uint64_t in_flight;
};
void deliver_stats(const struct deliver *dl, struct deliver_stats *out);

#endif
