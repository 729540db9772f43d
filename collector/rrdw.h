/* SPDX-License-Identifier: Apache-2.0 */
/* RRD write-behind: values are grouped per file and written with many timestamps per call. */
#ifndef WP_COLLECTOR_RRDW_H
#define WP_COLLECTOR_RRDW_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

/*
 * One RRD file per series group instance (agent, group, inst), one data source per field.
 * A file is created on first sight (rrd_create_r) with the series' step and the archive
 * layout from the config; values are appended to the file's pending list in memory and a
 * writer thread applies each file's list with one rrd_updatex_r() call (skip past updates,
 * so a journal replay after a crash does not fail on values already written) at most every
 * flush_interval, or sooner when a file has max_pending rows.
 *
 * Each row carries the journal segment it came from; wp_rrdw_min_segment() tells the lowest
 * segment that still has rows not written, so the journal can release what is below it.
 *
 * wp_rrdw_flush_file()/wp_rrdw_flush_all() write pending rows now (queries and graphs call
 * it, so what was acked is what is shown).
 *
 * Thread model: add/flush calls come from the loop thread; the writer thread only runs
 * librrd and reports completion with uv_async.
 */
struct wp_rrdw;

struct wp_rrd_archive {
    const char *cf;    /* AVERAGE, MIN, MAX, LAST */
    uint32_t resolution_s; /* 0 = the series step */
    uint32_t span_s;       /* how long this archive covers */
};

struct wp_rrdw_opts {
    const char *dir;               /* root; files at DIR/<agent>/<group>[-<inst>].rrd */
    int64_t flush_interval_ms;     /* default 60 s */
    uint32_t max_pending;          /* rows per file before an early flush, default 300 */
    uint32_t heartbeat_steps;      /* DS heartbeat = steps * step, default 2 */
    const struct wp_rrd_archive *archives; /* NULL = documented defaults */
    size_t narchives;
};

int wp_rrdw_open(uv_loop_t *loop, const struct wp_rrdw_opts *opts, struct wp_rrdw **out);
/* Flush everything, stop the writer thread, close handles. */
void wp_rrdw_close(struct wp_rrdw *w);

/* A file handle: find or create the series file entry (the RRD file is created lazily by
 * the writer). fields are the DS names. Returns NULL with an error code in *err for
 * invalid names. The handle lives as long as w. */
struct wp_rrdw_file;
struct wp_rrdw_file *wp_rrdw_file_get(struct wp_rrdw *w, const char *agent, const char *group,
                                      const char *inst, const char *const *fields,
                                      uint32_t nfields, int ds_type, uint32_t step_s, int *err);
/* The file's path (relative to dir), for the series registry. */
const char *wp_rrdw_file_path(const struct wp_rrdw_file *f);

/* Queue one row: ts in ms, nvals values (NaN = unknown), from journal segment seg. */
void wp_rrdw_add(struct wp_rrdw *w, struct wp_rrdw_file *f, int64_t ts_ms, const double *vals,
                 uint32_t nvals, uint64_t seg);

/* Lowest journal segment with rows not yet written; UINT64_MAX when nothing is pending. */
uint64_t wp_rrdw_min_segment(const struct wp_rrdw *w);

/* Write everything pending now; cb(arg) runs on the loop once it is on disk. */
void wp_rrdw_flush_all(struct wp_rrdw *w, void (*cb)(void *arg), void *arg);

struct wp_rrdw_stats {
    uint64_t files, files_created;
    uint64_t rows_added, rows_written, rows_skipped, values_written;
    uint64_t update_calls, errors;
    uint64_t pending_rows;
    uint64_t rows_dropped; /* given up after repeated failed updates (or at close) */
};
void wp_rrdw_stats(const struct wp_rrdw *w, struct wp_rrdw_stats *out);

/* Path helpers shared with the query tool: the file name for a group and instance
 * (sanitised; an instance that had to be changed gets a hash suffix), written into buf. */
int wp_rrd_file_name(const char *group, const char *inst, char *buf, size_t len);

#endif
