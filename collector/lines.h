/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Line states (lines.c): the current state of every phone line, IVR port and trunk the
 * agents report (wire record kind 4), and the history of its changes, in SQLite (WAL,
 * STATE_DIR/lines.db). The NOC's "table of seat extensions and IVR ports" is a query on it
 * (`watchpost lines`); the attendance and fault reports read the history. Time is passed in.
 * The collector writes on its loop thread, one transaction per batch; the CLI reads the same
 * file while it runs.
 */
#ifndef WP_COLLECTOR_LINES_H
#define WP_COLLECTOR_LINES_H

#include <stddef.h>
#include <stdint.h>

struct coll_lines;

struct coll_line {
    const char *agent, *host, *object, *group, *state, *raw, *info;
    int64_t since_ms;   /* when it entered this state (its first report of it) */
    int64_t updated_ms; /* the last report */
};

/* Open (creating the schema) the store at path. 0 or <0 (logged). */
int coll_lines_open(const char *path, struct coll_lines **out);
void coll_lines_close(struct coll_lines *l);

/* One report of a line's state at ts_ms. A report of the state the line is already in only
 * refreshes updated_ms (and raw/info); a new state starts a new since_ms and adds a row to
 * the history. Reports older than the line's last one are ignored (a replayed batch).
 * Returns 1 when the state changed, 0 when not, <0 on error. It opens no transaction
 * itself: wrap a batch's reports in coll_lines_begin() / coll_lines_commit(). */
int coll_lines_put(struct coll_lines *l, const char *agent, const char *host,
                   const char *object, const char *group, const char *state, const char *raw,
                   const char *info, int64_t ts_ms);
int coll_lines_begin(struct coll_lines *l);
int coll_lines_commit(struct coll_lines *l);

/* Drop history older than before_ms, and seat sessions that ended before it (seats.h).
 * Returns rows deleted or <0. */
int coll_lines_prune(struct coll_lines *l, int64_t before_ms);

/* The seat session store on the same file and connection (its writes join the current
 * coll_lines_begin() transaction). Owned by l. */
struct coll_seats *coll_lines_seats(struct coll_lines *l);

/* Current lines, filtered (NULL = any; host matches the host or the agent id), ordered by host,
 * group, object. fn returns nonzero
 * to stop. Strings are valid during the call only. */
int coll_lines_each(struct coll_lines *l, const char *host, const char *group, const char *state,
                    int (*fn)(void *arg, const struct coll_line *line), void *arg);
/* History of one line (or every line when object is NULL) since since_ms, oldest first. */
int coll_lines_history(struct coll_lines *l, const char *host, const char *object,
                       int64_t since_ms, int (*fn)(void *arg, const struct coll_line *line),
                       void *arg);

const char *coll_lines_errmsg(struct coll_lines *l);

#endif
