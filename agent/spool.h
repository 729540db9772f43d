/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's on-disk spool: every batch stays here, numbered by seq, until acked. */
#ifndef WP_AGENT_SPOOL_H
#define WP_AGENT_SPOOL_H

#include <stddef.h>
#include <stdint.h>

/*
 * Layout: a directory of segment files "NNNNNNNNNNNNNNNNNNNN.seg" (first seq, 20 digits),
 * each a run of records [u32 len][u32 crc32c of the rest][u64 seq][i64 ts_ms][u32 nvals]
 * [payload], and a "state" file (written to a temp file, fsynced, renamed) holding the
 * highest acked seq and the next seq. Seq numbers start at 1, grow by one per batch and
 * are never reused, across restarts too: next seq = max(state.next, last record + 1).
 *
 * Bounds: when an append would take the spool over max_bytes, or the oldest segment is
 * older than max_age_ms, whole oldest segments are dropped (acked or not); the drop is
 * counted in the stats. The segment being written is never dropped; a record larger than
 * the whole bound is refused with WP_ETOOBIG.
 *
 * A torn or corrupt tail (crash mid-write) is cut at the last good record on open; a
 * corrupt record in the middle of a segment ends that segment (logged, counted as dropped).
 *
 * Single-threaded: only the agent loop thread calls these.
 */
struct wp_spool;

struct wp_spool_limits {
    uint64_t max_bytes;       /* default 256 MiB */
    int64_t max_age_ms;       /* default 7 days; 0 = no age limit */
    uint64_t segment_bytes;   /* default min(16 MiB, max_bytes / 8), at least 64 KiB */
    int fsync;                /* fdatasync after each append (default 1) */
};

struct wp_spool_stats {
    uint64_t acked_seq;       /* highest seq acked (0 = none) */
    uint64_t next_seq;        /* seq the next append gets */
    uint64_t first_seq;       /* lowest seq still stored (== next_seq when empty) */
    uint64_t bytes;           /* on disk */
    uint64_t records;         /* stored records (acked ones included until their segment goes) */
    uint64_t pending;         /* records with seq > acked_seq */
    uint64_t dropped_records; /* unacked records dropped by the bounds, since the spool was made */
    uint64_t dropped_values;  /* values in those records */
    uint64_t dropped_bytes;
    int64_t oldest_ts_ms;     /* ts of the oldest unacked record, 0 if none */
};

/* Open or create the spool in dir (created 0700 if missing). */
int wp_spool_open(const char *dir, const struct wp_spool_limits *lim, struct wp_spool **out);
void wp_spool_close(struct wp_spool *s);

/* Append one batch tail (see wp_batch_enc_finish) with its base ts and value count.
 * Assigns the next seq into *seq. Applies the bounds first. */
int wp_spool_append(struct wp_spool *s, const void *payload, size_t len, int64_t ts_ms,
                    uint32_t nvals, uint64_t *seq);

/* Everything <= seq is durable at the collector. Whole segments below it are deleted,
 * after the state file is written. seq above the last assigned is clamped. */
int wp_spool_ack(struct wp_spool *s, uint64_t seq);

/*
 * The collector told us (WELCOME) it has committed up to acked. Ack locally as above; if
 * acked >= next seq (this spool was lost or restored from an old copy) move next seq past
 * it so new batches are not taken for duplicates. Returns 0.
 */
int wp_spool_sync_remote(struct wp_spool *s, uint64_t acked);

/*
 * Read the first stored record with seq >= from. Copies its payload into a buffer that
 * stays valid until the next call on this spool; returns 0, WP_ENOTFOUND when there is
 * none, or an error.
 */
int wp_spool_read(struct wp_spool *s, uint64_t from, uint64_t *seq, int64_t *ts_ms,
                  const uint8_t **payload, size_t *len);

void wp_spool_stats(const struct wp_spool *s, struct wp_spool_stats *out);

#endif
