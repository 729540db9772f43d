/* SPDX-License-Identifier: Apache-2.0 */
/* The collector's append-only journal: a batch is acked only once it is here and fsynced. */
#ifndef WP_COLLECTOR_JOURNAL_H
#define WP_COLLECTOR_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

/*
 * Segments "NNNNNNNNNNNNNNNNNNNN.wpj" (segment number) in the journal directory, each a run
 * of records [u32 len][u32 crc32c][u32 agent_len][agent id][u64 seq][payload], where the
 * payload is the batch frame body exactly as received. A writer thread appends and calls
 * fdatasync once per group (everything queued while the previous sync ran: group commit),
 * then reports back on the loop (uv_async) with the callback of every record in the group.
 *
 * Segments roll at segment_bytes. A segment is deleted by wp_journal_release() once
 * everything in it has been applied to RRD (the owner tracks that with the segment number
 * each append reports). On start, wp_journal_replay() reads every remaining segment in
 * order; a torn tail is cut at the last good record.
 *
 * Disk full or any write error: the record's callback gets the error, the journal enters a
 * failed state and retries the write every second; the owner must not ack (agents keep
 * spooling). Once a write succeeds again, the queued records complete normally.
 */
struct wp_journal;

/* Called on the loop thread once the record is durable (status 0) or failed (<0).
 * A status < 0 other than WP_ECLOSED is a notice (segment 0): the write failed and the
 * journal keeps retrying the record, so a final callback with 0 follows once it is durable.
 * WP_ECLOSED is final: the journal was closed while writes still failed. arg must stay
 * valid until the final callback; callbacks still due run inside wp_journal_close(). */
typedef void (*wp_journal_cb)(void *arg, int status, uint64_t segment);

struct wp_journal_opts {
    const char *dir;
    uint64_t segment_bytes; /* default 64 MiB */
    int fsync;              /* default 1; 0 only for benchmarks of the rest of the path */
};

int wp_journal_open(uv_loop_t *loop, const struct wp_journal_opts *opts, struct wp_journal **out);
/* Stop the writer thread after draining the queue, close the async handle (loop thread). */
void wp_journal_close(struct wp_journal *j);
/* Change the back-pressure limit on queued bytes (default 64 MiB). Loop thread. */
void wp_journal_set_max_queue(struct wp_journal *j, uint64_t bytes);

/*
 * Queue one record; copies agent and payload. cb runs later on the loop thread.
 * Returns 0 or a queue error (WP_ETOOBIG when more than max_queue_bytes are pending:
 * back-pressure; the caller stops reading from that agent until callbacks arrive).
 */
int wp_journal_append(struct wp_journal *j, const char *agent, uint64_t seq, const void *payload,
                      size_t len, wp_journal_cb cb, void *arg);

/* Replay every record in the journal, in order (call before the first append). */
typedef int (*wp_journal_replay_fn)(void *arg, uint64_t segment, const char *agent, uint64_t seq,
                                    const uint8_t *payload, size_t len);
int wp_journal_replay(struct wp_journal *j, wp_journal_replay_fn fn, void *arg);

/* Delete every segment numbered below segment (never the one being written). */
int wp_journal_release(struct wp_journal *j, uint64_t below_segment);

/* Current segment number (what an append made now would report). */
uint64_t wp_journal_segment(const struct wp_journal *j);

struct wp_journal_stats {
    uint64_t records, bytes, syncs, errors, segments;
    uint64_t queued_bytes;
    int failed; /* 1 while writes fail (e.g. disk full) */
};
void wp_journal_stats(const struct wp_journal *j, struct wp_journal_stats *out);

#endif
