/* SPDX-License-Identifier: Apache-2.0 */
/* Bootstrap tokens for agent enrolment: single-use, expiring, stored hashed (STATE_DIR/enroll.db).
 */
#ifndef WP_COLLECTOR_ENROLL_H
#define WP_COLLECTOR_ENROLL_H

#include <stddef.h>
#include <stdint.h>

/*
 * A token is "wpe_" ID "_" SECRET: ID is 8 random bytes in hex (16 digits: the public handle
 * that `watchpost enroll-token list|del` show and the row is looked up by), SECRET 32 random
 * bytes (256 bits) in hex. The database (SQLite, mode 0600) keeps only the hex SHA-256 of the
 * whole token, compared in constant time; the token is shown once, by enroll_token_add().
 *
 * A token may name the agent id it is for (then only that id may use it); it expires at
 * expires_ms and is used at most once: enroll_token_redeem() checks it and marks it used in
 * one transaction (BEGIN IMMEDIATE), around the caller's certificate issue.
 *
 * One thread at a time: the collector's loop thread, or the CLI. Several processes may share
 * the file (SQLite locking; 1 s busy timeout).
 */

#define ENROLL_ID_LEN     16 /* hex digits of the id */
#define ENROLL_TOKEN_LEN  85 /* "wpe_" + 16 + "_" + 64 */
#define ENROLL_AGENT_MAX  64 /* agent ids: wp_pki_name_ok() */
#define ENROLL_TTL_MAX_MS (366LL * 86400 * 1000)

struct enroll_store;

/* Why a token was refused (enroll_token_redeem's *verdict). */
enum enroll_verdict {
    ENROLL_OK = 0,
    ENROLL_UNKNOWN,     /* malformed, never issued, deleted, or the wrong secret */
    ENROLL_USED,        /* used once already */
    ENROLL_EXPIRED,     /* past its expiry */
    ENROLL_WRONG_AGENT, /* bound to another agent id */
};

/* One token, as listed. */
struct enroll_token_info {
    char id[ENROLL_ID_LEN + 1];
    char agent[ENROLL_AGENT_MAX + 1]; /* "" when any agent id may use it */
    int64_t created_ms, expires_ms;
    int64_t used_ms;                    /* 0 while unused */
    char used_by[ENROLL_AGENT_MAX + 1]; /* the agent id that used it */
    char used_from[64];                 /* the client address ("ip:port") that used it */
};

/* A short name of a verdict: "ok", "unknown", "used", "expired", "wrong agent". */
const char *enroll_verdict_name(enum enroll_verdict v);

/* Open (creating, mode 0600) the token database at path. 0, -errno or WP_EDB; *out NULL on
 * failure. */
int enroll_store_open(const char *path, struct enroll_store **out);
/* NULL does nothing. */
void enroll_store_close(struct enroll_store *s);
/* The last SQLite error message. */
const char *enroll_store_errmsg(struct enroll_store *s);

/*
 * A new token valid for ttl_ms (1 ms .. ENROLL_TTL_MAX_MS) from now_ms, for agent (NULL or ""
 * for any agent id; else it must pass wp_pki_name_ok). The token is written to tok (toklen >
 * ENROLL_TOKEN_LEN) and its id to id (ENROLL_ID_LEN + 1); only its hash is stored. 0, -EINVAL
 * or WP_EDB / -errno.
 */
int enroll_token_add(struct enroll_store *s, const char *agent, int64_t ttl_ms, int64_t now_ms,
                     char *tok, size_t toklen, char *id);
/* Delete the token with this id (used or not). 0, WP_ENOTFOUND or WP_EDB. */
int enroll_token_del(struct enroll_store *s, const char *id);
/* Delete used tokens and tokens expired before now_ms - keep_ms; returns how many or WP_EDB. */
int enroll_token_prune(struct enroll_store *s, int64_t now_ms, int64_t keep_ms);
/* fn for every token, oldest first; a nonzero return stops the walk and is returned. */
int enroll_token_each(struct enroll_store *s,
                      int (*fn)(void *arg, const struct enroll_token_info *t), void *arg);

/*
 * Redeem token for agent (a valid name) from client: inside one transaction check the token
 * (known, right secret, unused, unexpired at now_ms, bound to agent if bound at all); if it
 * passes, call issue(arg) and, when that returns 0, mark the token used and commit. A refusal
 * sets *verdict and returns 0 without calling issue; *info (may be NULL) gets the token's row
 * whenever it was found. Returns 0 (see *verdict), issue's negative return (the token stays
 * unused), or WP_EDB (the token stays unused unless the commit itself failed after issue).
 */
int enroll_token_redeem(struct enroll_store *s, const char *token, const char *agent,
                        const char *client, int64_t now_ms, int (*issue)(void *arg), void *arg,
                        enum enroll_verdict *verdict, struct enroll_token_info *info);

#endif
