/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Incidents (incident.c): a SQLite store (WAL) of incidents and their timelines, with the
 * priority matrix, service-level deadlines, escalation, reopen window and flapping.
 * Every function takes the time as now_ms (unix ms): nothing reads the clock itself, so
 * tests inject time. The store keeps no state in memory that SQLite does not hold: the CLI
 * may ack/resolve/close in the same database while the collector runs.
 *
 * Status: open -> acknowledged -> resolved -> closed; resolved -> open again (reopened)
 * when the same fingerprint fires within reopen_window of its resolution.
 * Escalation levels: 0 none; 1 response deadline passed while not acknowledged;
 * 2 at 50 % of the resolve time unresolved (second line); 3 at 80 % (third line / vendor);
 * 4 at 100 % (management). Levels only go up, each step is on the timeline once.
 */
#ifndef WP_COLLECTOR_INCIDENT_H
#define WP_COLLECTOR_INCIDENT_H

#include <stddef.h>
#include <stdint.h>

struct inc_store;

enum inc_status { INC_OPEN = 0, INC_ACKNOWLEDGED = 1, INC_RESOLVED = 2, INC_CLOSED = 3 };

#define INC_NPRIO 4 /* P1..P4 */

struct inc_policy {
    int matrix[3][3];          /* [impact-1][urgency-1] -> priority 1..4 (rule_level order) */
    int64_t response_ms[INC_NPRIO]; /* [priority-1] */
    int64_t resolve_ms[INC_NPRIO];
    int64_t reopen_window_ms;  /* default 30 min */
    int flap_changes;          /* state changes within flap_window_ms that mark flapping; */
    int64_t flap_window_ms;    /*   default 5 in 1 h */
};

/* Defaults: matrix H/H P1, H/M P2, H/L P3, M/H P2, M/M P3, M/L P4, L/H P3, L/M P4, L/L P4;
 * P1 15 min / 4 h, P2 30 min / 8 h, P3 4 h / 3 d, P4 1 d / 5 d. */
void inc_policy_default(struct inc_policy *p);

/* What the rules engine says about one problem (fingerprint = rule + host + key labels). */
struct inc_signal {
    const char *fingerprint;
    const char *rule;
    const char *host;
    int impact, urgency; /* 1 high, 2 medium, 3 low */
    const char *category;
    const char *summary;
    const char *description;
    const char *runbook;
    const char *values_json; /* JSON object: the values that triggered it */
};

struct inc_row {
    int64_t id;
    char fingerprint[512];
    enum inc_status status;
    int priority, impact, urgency;
    char category[64];
    char rule[128];
    char host[256];
    char summary[512];
    char *description, *runbook, *values_json; /* malloc'd; inc_row_cleanup frees */
    int64_t opened_ms, acked_ms, resolved_ms, closed_ms; /* 0 = not yet */
    int64_t response_due_ms, resolve_due_ms;
    int escalation;
    int suppressed; /* 1 while suppressed (maintenance or dependency) */
    int flapping;
    int reopened;   /* times */
    char acked_by[64];
};
void inc_row_cleanup(struct inc_row *r);

/* Open (creating the schema) the store at path. Returns 0 or an error (message in err). */
int inc_open(const char *path, const struct inc_policy *p, struct inc_store **out);
void inc_close(struct inc_store *st);
const char *inc_errmsg(struct inc_store *st);

/* The condition holds: open a new incident, reopen a resolved one within the reopen window,
 * or update the open one (its values; a "value update" timeline entry at most once a minute).
 * A fire/clear cycle counts as state changes for flapping. *id_out: the incident (may be NULL).
 * Returns 0, or 1 when a new incident was opened or one reopened, or <0 on error. */
int inc_fire(struct inc_store *st, const struct inc_signal *sig, int64_t now_ms, int64_t *id_out);
/* The condition cleared: resolve the open incident of this fingerprint ("resolved by rule"),
 * unless it is flapping (then it stays open, marked flapping, until no changes for one flap
 * window). Returns 0 (also when there was nothing open) or <0. */
int inc_clear(struct inc_store *st, const char *fingerprint, int64_t now_ms);
/* Mark an open incident of this fingerprint suppressed (on=1, reason e.g. "maintenance Sunday
 * patching" or "host silent") or not; each change is on the timeline. */
int inc_suppress(struct inc_store *st, const char *fingerprint, int on, const char *reason,
                 int64_t now_ms);
/* Escalations due at now_ms, flapping that calmed down; call every second or so. Returns the
 * number of escalation steps taken, or <0. */
int inc_tick(struct inc_store *st, int64_t now_ms);

/* Operators (CLI, later the dashboard): errors say what is wrong in err (e.g. "incident 7 is
 * closed"). resolve needs a note. */
int inc_ack(struct inc_store *st, int64_t id, const char *by, const char *note, int64_t now_ms,
            char *err, size_t errlen);
int inc_resolve(struct inc_store *st, int64_t id, const char *by, const char *note,
                int64_t now_ms, char *err, size_t errlen);
int inc_close_incident(struct inc_store *st, int64_t id, const char *by, int64_t now_ms,
                       char *err, size_t errlen);
/* Add a timeline entry (kind e.g. "ticket linked", "notification sent"). */
int inc_note(struct inc_store *st, int64_t id, const char *kind, const char *by,
             const char *text, int64_t now_ms);

/* Queries. status < 0 / priority 0 = any. fn returns nonzero to stop. */
int inc_list(struct inc_store *st, int status, int priority,
             int (*fn)(void *arg, const struct inc_row *r), void *arg);
int inc_get(struct inc_store *st, int64_t id, struct inc_row *out); /* WP_ENOTFOUND */
int inc_find_open(struct inc_store *st, const char *fingerprint, struct inc_row *out);
int inc_timeline(struct inc_store *st, int64_t id,
                 int (*fn)(void *arg, int64_t at_ms, const char *kind, const char *by,
                           const char *text),
                 void *arg);

/* Rule engine state that must survive a restart (a half-elapsed `for`): key -> two numbers. */
int inc_state_put(struct inc_store *st, const char *key, int state, int64_t since_ms);
int inc_state_del(struct inc_store *st, const char *key);
int inc_state_each(struct inc_store *st,
                   int (*fn)(void *arg, const char *key, int state, int64_t since_ms), void *arg);
int inc_begin(struct inc_store *st);
int inc_commit(struct inc_store *st);

const char *inc_status_name(enum inc_status s);

#endif
