/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's series dictionary ((group, inst) -> id, persisted) and the batch being built. */
#ifndef WP_AGENT_SINK_H
#define WP_AGENT_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "probe.h"
#include "wp/buf.h"
#include "wp/wire.h"

/*
 * Series ids are 1, 2, 3, ... in order of first sight and are never reused, so a batch
 * that waits in the spool across a restart still names the right series. A series is the
 * whole definition: (group, inst, step, type, fields); if a probe's definition changes
 * (new interval, new fields), the same (group, inst) gets a new id and the old one stays
 * defined for the batches that still use it.
 *
 * The dictionary file <state_dir>/series.dict is an 8-byte magic "WPDICT1\n" followed by
 * append-only records, one per new series: [u32 body len][u32 crc32c of the body][body],
 * body = [u32 id][u8 type][u32 step_s][u8 nfields][u16 len, group][u16 len, inst]
 * ([u16 len, field] x nfields), integers little-endian. On open, records are loaded until
 * the first torn or corrupt one (short, bad CRC, bad lengths, id not the next one); the
 * file is cut there. A bad magic is WP_ECORRUPT: the agent refuses to guess what ids the
 * spool's batches mean.
 *
 * Steady state (no new series) does no allocation: a lookup hashes (group, inst) into an
 * open-addressed table and compares the kind pointer, and rows are appended to the batch
 * encoder, whose buffer keeps its capacity across batches.
 *
 * Loop thread only.
 */
struct agent_sink;

#define AGENT_SERIES_MAX 500000u /* below the collector's id limit; rows over it are dropped */

/* Open or create the dictionary at path. fsync: fdatasync the file in agent_sink_sync().
 * Returns 0, -errno, WP_ECORRUPT (bad magic). *out is NULL on failure. */
int agent_sink_open(const char *path, int fsync, struct agent_sink **out);
void agent_sink_free(struct agent_sink *s);

/*
 * The sink probes write into. Set ->ts_ms and ->step_s before each probe's sample(); rows
 * go into the current batch. A row with a bad kind (no fields, over WP_SERIES_MAX_FIELDS,
 * names too long) or an instance over WP_INST_MAX is dropped and counted.
 */
struct wp_sink *agent_sink_wp(struct agent_sink *s);

/* Start a new batch with base time ts_ms (drops any rows not finished). */
void agent_sink_batch_begin(struct agent_sink *s, int64_t ts_ms);
/* Rows and values in the current batch. */
uint32_t agent_sink_batch_rows(const struct agent_sink *s);
uint32_t agent_sink_batch_values(const struct agent_sink *s);
/* Append records encoded elsewhere with the same base time (events, checks and states a
 * blocking probe emitted off the loop). Returns 0 or -EINVAL (other base time). */
int agent_sink_merge(struct agent_sink *s, const struct wp_batch_enc *recs);
/* Append the current batch's tail (wp_batch_enc_finish) to out. */
void agent_sink_batch_finish(const struct agent_sink *s, struct wp_buf *out);

/*
 * Make the series created since the last call durable: one write() of their records and,
 * if enabled, one fdatasync. Call before the batch that uses them goes into the spool.
 * Returns 0 or -errno; on failure the file is cut back and the records are kept for the
 * next call.
 */
int agent_sink_sync(struct agent_sink *s);

/* The highest id assigned (== number of series), 0 when empty. */
uint32_t agent_sink_max_id(const struct agent_sink *s);

/* The highest id whose record is durable (agent_sink_sync()). Only these may be sent in
 * defs: an id not yet on disk would be given to another series after a crash. Spooled
 * batches only use durable ids, since the scheduler syncs before it appends. */
uint32_t agent_sink_durable_id(const struct agent_sink *s);

/* The definition of series id (1..max). Strings borrow the dictionary and stay valid
 * until the next new series. Returns 0 or WP_ENOTFOUND. */
int agent_sink_def(const struct agent_sink *s, uint32_t id, struct wp_series_def *out);

/*
 * Append defs frames for ids in (after, upto] to out, several frames if needed so that
 * none is much over 1 MiB. Returns the number of frames written.
 */
size_t agent_sink_put_defs(const struct agent_sink *s, uint32_t after, uint32_t upto,
                           struct wp_buf *out);

/* Rows dropped because of a bad kind or instance, or the series limit. */
uint64_t agent_sink_dropped_rows(const struct agent_sink *s);

#endif
