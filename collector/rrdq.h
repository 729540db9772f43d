/* SPDX-License-Identifier: Apache-2.0 */
/* RRD read side: fetch one data source over a time range, describe a file, build paths. */
#ifndef WP_COLLECTOR_RRDQ_H
#define WP_COLLECTOR_RRDQ_H

#include <stddef.h>
#include <stdint.h>

/*
 * These functions call librrd directly (rrd_fetch_r, rrd_info_r) and need no loop; any thread
 * may call them. They read what is on disk: a caller inside the collector flushes the write-
 * behind cache first (wp_rrdw_flush_all) so that what was acked is what is shown.
 */

/* Called once per row, oldest first: ts_s is the end of the row's interval. Return 0 to go on,
 * anything else to stop; wp_rrdq_fetch() then returns that value. */
typedef int (*wp_rrdq_fn)(void *arg, int64_t ts_s, double value);

enum { WP_RRDQ_SKIP_NAN = 1 }; /* do not call fn for unknown rows */

/*
 * Fetch data source ds of the file at path between start_s and end_s (seconds since the
 * epoch) with CF AVERAGE from the finest archive that covers the range (librrd's choice for
 * a requested resolution of 1 s). *step_out (may be NULL) gets the resolution used.
 * Returns 0, the callback's non-zero value, WP_ENOTFOUND (no such DS), -ENOENT (no file),
 * -EINVAL (bad range) or WP_ERRD (librrd failed; rrd_get_error() on the calling thread has
 * its message until the next librrd call).
 */
int wp_rrdq_fetch(const char *path, const char *ds, int64_t start_s, int64_t end_s, unsigned flags,
                  wp_rrdq_fn fn, void *arg, uint32_t *step_out);

struct wp_rrdq_rra {
    char cf[16];          /* AVERAGE, MIN, MAX, LAST */
    uint32_t pdp_per_row; /* resolution = pdp_per_row * step */
    uint32_t rows;        /* span = rows * resolution */
};

struct wp_rrdq_info {
    uint32_t step_s;
    int64_t last_update_s;
    uint32_t nds;
    char **ds_names; /* nds names, in DS order */
    char **ds_types; /* GAUGE, COUNTER, DERIVE, ABSOLUTE, ... */
    uint32_t nrras;
    struct wp_rrdq_rra *rras;
};

/* Describe the file at path; *out is freed with wp_rrdq_info_free(). Returns 0, -ENOENT or
 * WP_ERRD (message in rrd_get_error(), as for wp_rrdq_fetch). */
int wp_rrdq_info(const char *path, struct wp_rrdq_info **out);
void wp_rrdq_info_free(struct wp_rrdq_info *info);

/* 0 when agent is usable as one directory name (non-empty, at most WP_AGENT_ID_MAX bytes, no
 * '/', no leading '.', no control characters), else -EINVAL. */
int wp_rrd_agent_ok(const char *agent);

/* The full path DIR/<agent>/<wp_rrd_file_name(group, inst)> into buf. Returns 0, -EINVAL
 * (bad agent or group) or WP_ETOOBIG (buf too small). */
int wp_rrdq_path(const char *dir, const char *agent, const char *group, const char *inst, char *buf,
                 size_t len);

#endif
