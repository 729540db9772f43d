/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Seat sessions (seats.c): the login/logout of every queue member and agent the agents report
 * (event records of rule "seat", from the ami probe), with the pauses inside each session,
 * in SQLite: tables seat_sessions and seat_pauses in STATE_DIR/lines.db, on the line store's
 * connection (lines.c attaches them), so a batch's seat events share its transaction and are
 * pruned with the line history. `watchpost seats` lists them. Loop thread only.
 */
#ifndef WP_COLLECTOR_SEATS_H
#define WP_COLLECTOR_SEATS_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

struct sqlite3;
struct coll_seats;

/* One session as listed: reasons is the distinct pause reasons ("break,lunch", may be
 * empty), paused_ms the paused time (an open pause counts up to the logout or now_ms),
 * logout_ms 0 while the session is open. */
struct coll_seat_session {
    int64_t id;
    const char *host, *seat, *queue, *reasons;
    int64_t login_ms, logout_ms, paused_ms;
    int login_observed, logout_observed;
    int npauses;
    int paused_now;     /* the session has an open pause */
    const char *device; /* the line device the seat sits on ("PJSIP/1001"); NULL: unknown */
};

/* Create the tables on db (if missing) and prepare the statements. The handle borrows db,
 * which must outlive it. 0 or WP_EDB (logged). */
int coll_seats_attach(struct sqlite3 *db, struct coll_seats **out);
void coll_seats_free(struct coll_seats *s);

/*
 * One seat event of host: action is login, logout, pause or unpause, at_ms its time,
 * observed 1 when the probe inferred it (after an outage) rather than saw it; login_at_ms
 * (0: unknown) gives a logout with no open session its start. Idempotent: a login for a
 * seat that already has an open session or the same (host, seat, queue, at) is ignored, as
 * are a second logout, a pause inside a pause and an unpause outside one, so replayed or
 * repeated events change nothing. Returns 1 when the store changed, 0 when not, WP_EINVAL
 * for an unknown action, WP_EDB. No transaction of its own: callers wrap a batch.
 */
int coll_seats_put(struct coll_seats *s, const char *host, const char *seat, const char *queue,
                   const char *action, const char *reason, int64_t at_ms, int observed,
                   int64_t login_at_ms);

/* The same with the line device of the seat (the object of its line, "PJSIP/1001"; NULL or
 * "": unknown), stored with a new session and given to a stored session that has none. */
int coll_seats_put_dev(struct coll_seats *s, const char *host, const char *seat, const char *queue,
                       const char *device, const char *action, const char *reason, int64_t at_ms,
                       int observed, int64_t login_at_ms);

/* The same from an event record's fields (seat, queue, device, action, reason, at, observed,
 * login_at; as checked by wp_batch_rec()); an older probe sends no device (the interface
 * field, a queue member's or an agent's channel, is not one). -EINVAL when one is missing or
 * bad. */
int coll_seats_put_fields(struct coll_seats *s, const char *host, const msgpack_object_map *f);

/* Drop sessions (and their pauses) that ended before before_ms. Rows deleted or WP_EDB. */
int coll_seats_prune(struct coll_seats *s, int64_t before_ms);

/* Sessions of host (NULL: every host) that were open at some point since since_ms, by host,
 * login, seat, queue. fn returns nonzero to stop. Strings valid during the call only. */
int coll_seats_each(struct coll_seats *s, const char *host, int64_t since_ms, int64_t now_ms,
                    int (*fn)(void *arg, const struct coll_seat_session *ss), void *arg);

#endif
