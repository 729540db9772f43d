/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Maintenance windows made at run time by operators (maint.c): the `maintenance` table in
 * incidents.db, written by the API and by `watchpost maintenance` (another process), and an
 * in-memory set of the active and upcoming windows that the rules engine asks for every host
 * on every pass, so no pass queries SQLite.
 *
 * A window covers a host when one of its hosts (a name or glob) matches, or one of its groups
 * (the host groups of the rules config) holds the host. It is active from starts_ms until
 * ends_ms, or until ended_ms when an operator ended it early. Every add and end bumps a
 * change counter (maint_gen) in the same transaction, so another process's change is seen
 * by reading one row once a second.
 *
 * Windows of the rules config (`maintenance:` in rules files) stay where they are
 * (rules_in_maintenance); these come on top of them. Loop thread (collector) or the CLI.
 */
#ifndef WP_COLLECTOR_MAINT_H
#define WP_COLLECTOR_MAINT_H

#include <stddef.h>
#include <stdint.h>

struct rule_set;
struct maint_store;
struct maint_set;

#define MAINT_MAX_MS     (31LL * 86400 * 1000) /* longest window: 31 days */
#define MAINT_NAME_MAX   128                   /* bytes of a window's name */
#define MAINT_REASON_MAX 1024                  /* bytes of its reason */
#define MAINT_TARGETS    256                   /* hosts + groups of one window at most */
#define MAINT_TIME_MAX   253402300799999LL     /* latest time: 9999-12-31T23:59:59.999Z */

/* One stored window. Strings are malloc'd (maint_win_cleanup frees them). */
struct maint_win {
    int64_t id;
    char *name;
    char **hosts; /* names or globs */
    size_t nhosts;
    char **groups; /* host groups of the rules config */
    size_t ngroups;
    int64_t starts_ms, ends_ms;
    char *reason;
    char *created_by;
    int64_t created_ms;
    int64_t ended_ms; /* 0 = not ended early */
    char *ended_by;   /* "" while not ended early */
};
void maint_win_cleanup(struct maint_win *w);

/* A new window as an operator asks for it (borrowed strings). */
struct maint_new {
    const char *name;
    const char *const *hosts;
    size_t nhosts;
    const char *const *groups;
    size_t ngroups;
    int64_t starts_ms, ends_ms;
    const char *reason; /* may be NULL */
    const char *by;     /* who asks: user, "token:NAME" or the CLI user */
};

/* Check a new window: a name (1..128 bytes, no control characters), at least one host or
 * group, plausible host names/globs ([A-Za-z0-9._-*?]) and group names, groups known to rs
 * (when rs is not NULL), times from 1970 to 9999, ends after starts, at most 31 days long,
 * ends after now_ms, a reason
 * of at most 1024 bytes. Returns 0, or -EINVAL with what is wrong in err. */
int maint_validate(const struct maint_new *n, const struct rule_set *rs, int64_t now_ms, char *err,
                   size_t errlen);

/* A time for the CLI and the API: "now", "+2h" (from now_ms), an ISO 8601 time with an
 * offset (2026-03-01T22:00:00Z, 2026-03-01T22:00+08:00) or a local time ("2026-03-01 22:00",
 * "2026-03-01T22:00:00"). Returns 0 or -EINVAL. */
int maint_parse_time(const char *s, int64_t now_ms, int64_t *out_ms);

/* Is w active at now_ms (started, neither over nor ended early)? */
int maint_win_active(const struct maint_win *w, int64_t now_ms);
/* The effective end: ended_ms when ended early, else ends_ms. */
int64_t maint_win_end(const struct maint_win *w);
/* Does w cover host (a host glob matches, or a group of rs holds it; rs may be NULL)? */
int maint_win_covers(const struct maint_win *w, const struct rule_set *rs, const char *host);

/* Open (creating the table) the store in the incidents database at path, own connection.
 * Returns 0 or an error (logged). */
int maint_open(const char *path, struct maint_store **out);
void maint_close(struct maint_store *st);
const char *maint_errmsg(struct maint_store *st);

/* Validate (maint_validate with rs) and store a window. *id_out: its id (may be NULL).
 * Returns 0, -EINVAL (err says why) or WP_EDB. */
int maint_add(struct maint_store *st, const struct maint_new *n, const struct rule_set *rs,
              int64_t now_ms, int64_t *id_out, char *err, size_t errlen);
/* End window id now (an upcoming one is cancelled: it ends before it starts). Returns 0,
 * WP_ENOTFOUND, -EINVAL when it is already over or ended (err says which) or WP_EDB. */
int maint_end(struct maint_store *st, int64_t id, const char *by, int64_t now_ms, char *err,
              size_t errlen);
/* One window. Returns 0 (clean *out with maint_win_cleanup) or WP_ENOTFOUND / WP_EDB. */
int maint_get(struct maint_store *st, int64_t id, struct maint_win *out);
/* Every window whose (effective) end is at or after since_ms, by start time; fn returns
 * nonzero to stop. The window passed is valid during the call only. */
int maint_list(struct maint_store *st, int64_t since_ms,
               int (*fn)(void *arg, const struct maint_win *w), void *arg);
/* The change counter: grows with every add and end, in any process. */
int maint_gen(struct maint_store *st, int64_t *out);

/* The windows not over at now_ms (active and upcoming), in memory. Returns 0 or WP_EDB. */
int maint_set_load(struct maint_store *st, int64_t now_ms, struct maint_set **out);
void maint_set_free(struct maint_set *ms);
size_t maint_set_count(const struct maint_set *ms);
/* The name of an active window of ms covering host at now_ms, or NULL (ms may be NULL). The
 * string lives as long as ms. */
const char *maint_set_match(const struct maint_set *ms, const struct rule_set *rs, const char *host,
                            int64_t now_ms);
/* Windows of ms that started or ended since the last call (or since load: prev, which may be
 * NULL, tells which of them were already active): fn(arg, w, 1) on start, (arg, w, 0) on end. */
void maint_set_transitions(struct maint_set *ms, const struct maint_set *prev, int64_t now_ms,
                           void (*fn)(void *arg, const struct maint_win *w, int started),
                           void *arg);

#endif
