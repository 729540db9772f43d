/* SPDX-License-Identifier: Apache-2.0 */
/* The collector's SQLite store: agents registry and each agent's series dictionary. */
#ifndef WP_COLLECTOR_DB_H
#define WP_COLLECTOR_DB_H

#include <stdint.h>

#include "wp/wire.h"

struct coll_db;

/* A row of the agents table. Strings are owned by whoever filled the struct. */
struct coll_db_agent {
    const char *id;
    const char *host;
    const char *version;
    const char *fingerprint;
    const char *addr;
    int64_t first_seen; /* unix s */
    int64_t last_seen;
    int connected;
    uint64_t committed_seq;
    const char *labels; /* the agent's HELLO labels: "k\x1fv\x1e" per label ("" = none) */
};

/* Open (creating the schema) DIR/watchpost.db in WAL mode. Loop thread only. */
int coll_db_open(const char *path, struct coll_db **out);
void coll_db_close(struct coll_db *db);

/* Transactions group many row changes into one commit. */
int coll_db_begin(struct coll_db *db);
int coll_db_commit(struct coll_db *db);

/* Insert or update an agent (first_seen is kept from the first insert). */
int coll_db_agent_put(struct coll_db *db, const struct coll_db_agent *a);

/* Call fn for every stored agent (strings valid during the call only). */
int coll_db_agent_each(struct coll_db *db, int (*fn)(void *arg, const struct coll_db_agent *a),
                       void *arg);

/* Mark every agent disconnected (collector start). */
int coll_db_agents_disconnected(struct coll_db *db);

/* Store one series definition of an agent and the RRD file it maps to. */
int coll_db_series_put(struct coll_db *db, const char *agent, const struct wp_series_def *d,
                       const char *file);

/* Call fn for every series of every agent (strings valid during the call only). */
int coll_db_series_each(struct coll_db *db,
                        int (*fn)(void *arg, const char *agent, const struct wp_series_def *d,
                                  const char *file),
                        void *arg);

/* Series of one agent whose group is grp (and instance inst, if not NULL). */
int coll_db_series_of(struct coll_db *db, const char *agent, const char *grp, const char *inst,
                      int (*fn)(void *arg, const char *agent, const struct wp_series_def *d,
                                const char *file),
                      void *arg);

/* For `watchpost query`: the agent id whose id or host equals host (first match), copied into
 * buf. Returns 0 or WP_ENOTFOUND. */
int coll_db_find_agent(struct coll_db *db, const char *host, char *buf, size_t len);

/* The last SQLite error message. */
const char *coll_db_errmsg(struct coll_db *db);

#endif
