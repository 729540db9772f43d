/* SPDX-License-Identifier: Apache-2.0 */
/* Ingest: agents, their series, dedup by seq, journal-then-ack, rows to the RRD writer. */
#ifndef WP_COLLECTOR_INGEST_H
#define WP_COLLECTOR_INGEST_H

#include <stddef.h>
#include <stdint.h>

struct coll_server;
struct coll_conn;
struct coll_agent;
struct wp_msg;

/*
 * Handle one decoded frame from connection c. body/len is the frame body as received (the
 * journal stores it verbatim). Returns 0; WP_EAGAIN when the journal queue is full (the
 * caller keeps the frame and retries after coll_server_resume_paused); or <0 after
 * closing the connection with a logged reason.
 */
int coll_ingest_msg(struct coll_server *s, struct coll_conn *c, const struct wp_msg *m,
                    const uint8_t *body, size_t len);

/* The connection of agent a is going away. */
void coll_ingest_detach(struct coll_server *s, struct coll_agent *a, struct coll_conn *c);

/* Load agents and series dictionaries from SQLite (before replay). */
int coll_ingest_load(struct coll_server *s);
/* Replay the journal into the RRD writer and recover committed seqs. */
int coll_ingest_replay(struct coll_server *s);
/* Write changed registry rows (all = every agent, as before a journal release). */
void coll_ingest_save_registry(struct coll_server *s, int all);

struct coll_agent *coll_agent_find(struct coll_server *s, const char *id);
void coll_agents_free(struct coll_server *s);

#endif
