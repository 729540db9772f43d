/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-line RRD series (linerrd.c): the collector turns the line states it stores (lines.c)
 * into one RRD file per line, DIR/<agent>/line-<object>.rrd, step 60 s, three gauges:
 *   state  the state's code (1 idle, 2 ringing, 3 in_use, 4 on_hold, 5 busy,
 *          6 unavailable, 7 out_of_service, 8 blocked; unknown and states we do not know
 *          leave it unknown) - read it with LAST or MAX (the worst state of a step);
 *   avail  1 in service (idle .. busy), 0 unavailable, out of service or blocked, unknown
 *          when the state is unknown (never counted as available): its AVERAGE is the
 *          line's availability;
 *   busy   1 ringing, in use, on hold or busy, else 0: its AVERAGE is the occupancy.
 * A row is written on every change and, because states only come on change, every line's
 * current state again once a minute (so the RRD heartbeat never runs out on a quiet line).
 * `watchpost query --metric line.avail --instance 8001` reads them. Answer times and SIP
 * round trips are ordinary probe series (sipping, sipcall) and need nothing here.
 */
#ifndef WP_COLLECTOR_LINERRD_H
#define WP_COLLECTOR_LINERRD_H

#include <stdint.h>

struct coll_server;

#define COLL_LINERRD_GROUP  "line"
#define COLL_LINERRD_STEP_S 60
#define COLL_LINERRD_NFIELDS 3
extern const char *const coll_linerrd_fields[COLL_LINERRD_NFIELDS];

/* The three values of a state (NaN for unknown). */
void coll_linerrd_values(const char *state, double vals[COLL_LINERRD_NFIELDS]);

/* A state report of a line of agent at ts_ms. */
void coll_linerrd_put(struct coll_server *s, const char *agent, const char *object,
                      const char *state, int64_t ts_ms);

/* Every line's current state at ts_ms (the once-a-minute refresh). Returns lines written or
 * <0. */
int coll_linerrd_refresh(struct coll_server *s, int64_t ts_ms);

#endif
