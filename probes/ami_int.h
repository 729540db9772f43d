/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ami probe's internals, shared by its pieces (not for other code):
 *   ami.c        options, connection, login, keepalive, reconnect/backoff, dispatch, sample;
 *   ami_proto.c  the message parser (ami.h) and header accessors;
 *   ami_lines.c  the string map, the line table and its state precedence, channels, contacts,
 *                and the resync of the four lists (applied by ami_finish_resync);
 *   ami_seats.c  seat sessions: queue members, agents, the seat event queue.
 * Everything here runs on the probe's loop.
 */
#ifndef WP_PROBES_AMI_INT_H
#define WP_PROBES_AMI_INT_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "ami.h"
#include "probe.h"

#define AMI_LINES_MAX 20000 /* devices kept; more are ignored (logged once) */
#define AMI_DEV_MAX   255   /* bytes of a device name */
#define AMI_CHANS_MAX 20000 /* channels followed */
#define AMI_SEATS_MAX 20000 /* queue members and agents followed */
#define AMI_EVQ_MAX   10000 /* seat events waiting for the next sample */

enum { L_DEV, L_EXT, L_QUEUE, L_CHAN, L_N }; /* the resync lists */

/* A hash index over the keys of a table: key -> position. Rebuilt lazily after a removal
 * (which moves entries), so lookups stay O(1) with AMI_LINES_MAX devices. */
struct ami_idx {
    uint32_t *slot; /* position + 1; 0: empty */
    size_t cap;     /* a power of two, above twice the entries */
    int stale;
};

/* A string map: pending device and extension states, contacts, agents. */
struct ami_kv {
    char **k;
    char **v;
    size_t n, cap;
    struct ami_idx idx;
};

struct ami_line {
    char *dev;
    char *dev_raw;   /* device state token; NULL: none */
    char *ext_raw;   /* StatusText of a hint naming this device alone; NULL: none */
    int ext_status;  /* its Status */
    char *reach_raw; /* the contact/peer verdict while unreachable; NULL: reachable/unknown */
    char *call;      /* call info; NULL: no call */
    /* the evaluated state (line_eval), emitted at the next sample when dirty */
    char *raw;
    const char *state; /* static */
    char *info;
    int dirty;
    int gone; /* in no resync list: emitted once more ("not listed"), then removed */
};

struct ami_table {
    struct ami_line *v;
    size_t n, cap;
    struct ami_idx idx;
};

struct ami_chan {
    char *uid, *name, *dev;
    char *cid_num, *cid_name, *conn_num, *conn_name, *state;
    int64_t start_ms; /* wall clock */
};

struct ami_chans {
    struct ami_chan *v;
    size_t n, cap;
};

struct ami_member {
    char *queue, *iface, *name, *reason;
    char *dev;           /* the line device (see seat_device()); "" when none */
    int64_t logintime_s; /* LoginTime from the PBX; 0: unknown */
    int64_t login_ms;    /* 0: not known yet (the time the link came back) */
    int login_seen;      /* the login itself was seen (QueueMemberAdded) */
    int paused;
    int64_t pause_ms; /* 0: not known yet */
    int pause_seen;
};

struct ami_members {
    struct ami_member *v;
    size_t n, cap;
};

struct ami_seat_ev {
    char *seat, *queue, *iface, *dev, *reason;
    const char *action; /* static */
    int64_t at, login_at;
    int observed;
};

/* The resync being collected (list items and the live events that come meanwhile). */
struct ami_sync {
    char id[L_N][32];
    unsigned done;    /* bit per list: complete (or refused) */
    unsigned refused; /* bit per list: answered with an error */
    struct ami_kv devs;
    struct ami_kv exts; /* device -> "<status>:<StatusText>" */
    struct ami_chans chans;
    struct ami_members members;
};

enum ami_phase {
    PH_IDLE = 0, /* waiting for the retry timer */
    PH_RESOLVING,
    PH_CONNECTING,
    PH_BANNER,
    PH_LOGIN,
    PH_RESYNC,
    PH_LIVE,
    PH_CLOSING, /* the socket is closing; the retry is armed from its close callback */
};

struct ami_ctx {
    /* options */
    char *host;
    int64_t port;
    char *username;
    char *secret_file;
    char *group;
    int64_t ping_ms;
    int64_t rmin_ms;
    int64_t rmax_ms;

    struct wp_probe *p;
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_connect_t conn_req;
    uv_getaddrinfo_t gai;
    uv_timer_t tick;  /* watchdog and ping, while started */
    uv_timer_t retry; /* the reconnect delay */
    int started, stopping, tcp_open, gai_pending, timers_open;
    enum ami_phase phase;
    struct wp_ami_parser parser;
    char rbuf[16384];

    uint64_t seq; /* ActionIDs wp-<seq> */
    char login_id[32];
    char rights_id[32]; /* ListCommands */
    double attempt_t0;  /* mono s when the current attempt started */
    double last_msg;    /* mono s of the last message; 0: none yet */
    unsigned attempts;  /* failed attempts since the last good resync (backoff) */
    uint64_t connects;  /* attempts started */
    uint64_t rng;
    int up;
    int64_t last_uptime; /* FullyBooted Uptime at the previous login; -1: none */
    int64_t link_up_ms;  /* wall clock of the last accepted login */
    int too_many;        /* AMI_LINES_MAX hit (logged once) */
    int too_many_seats;  /* AMI_SEATS_MAX or AMI_EVQ_MAX hit (logged once) */

    struct ami_table lines;
    struct ami_chans chans;
    struct ami_members members;
    struct ami_kv contacts; /* "<device>\x1f<uri>" -> "1" reachable or "0" */
    struct ami_kv agents;   /* agent -> login ms (decimal) */
    struct ami_sync sync;
    struct ami_seat_ev *evq; /* seat events for the next sample */
    size_t nevq, evq_cap;
    uint64_t agent_calls;
    double talk_s;

    int snapshot; /* emit every line at the next sample */
    int link_dirty;
    const char *link_state, *link_raw;
    char *link_obj; /* "ami:<name>", also the seat events' source */
};

/* ---- ami_proto.c: header accessors ---- */

/* An integer header, or def when absent or not a number. */
int64_t ami_get_int(const struct wp_ami_msg *m, const char *key, int64_t def);
/* A header value that is not empty and not Asterisk's "<unknown>", else NULL. */
const char *ami_get_known(const struct wp_ami_msg *m, const char *key);
/* When an event happened: its Timestamp header in ms, else the agent's clock. */
int64_t ami_event_ms(const struct wp_ami_msg *m);

/* ---- ami_lines.c ---- */

/* Replace *dst with a copy of src (NULL frees it); nothing when equal. */
void ami_set_str(char **dst, const char *src);

const char *ami_kv_get(struct ami_kv *kv, const char *k);
int ami_kv_set(struct ami_kv *kv, const char *k, const char *v, size_t max);
void ami_kv_del(struct ami_kv *kv, const char *k);
void ami_kv_clear(struct ami_kv *kv);
void ami_kv_free(struct ami_kv *kv);

void ami_line_free(struct ami_line *l);
void ami_table_clear(struct ami_table *t);
void ami_table_free(struct ami_table *t);
void ami_lines_eval(struct ami_ctx *c);

void ami_chans_clear(struct ami_chans *t);
void ami_chans_free(struct ami_chans *t);
char *ami_chan_device(const char *name);

void ami_on_contact(struct ami_ctx *c, const char *ev, const struct wp_ami_msg *m);
void ami_on_device_state(struct ami_ctx *c, const struct wp_ami_msg *m);
void ami_on_extension(struct ami_ctx *c, const struct wp_ami_msg *m);
void ami_on_channel(struct ami_ctx *c, const char *ev, const struct wp_ami_msg *m, int list);

void ami_sync_clear(struct ami_sync *y);
void ami_sync_free(struct ami_sync *y);
void ami_finish_resync(struct ami_ctx *c);

/* ---- ami_seats.c ---- */

void ami_members_clear(struct ami_members *t);
void ami_members_free(struct ami_members *t);
void ami_seat_event(struct ami_ctx *c, const char *seat, const char *queue, const char *iface,
                    const char *dev, const char *action, const char *reason, int64_t at,
                    int observed, int64_t login_at);
void ami_evq_clear(struct ami_ctx *c);
void ami_on_member(struct ami_ctx *c, const char *ev, const struct wp_ami_msg *m);
void ami_on_member_item(struct ami_ctx *c, const struct wp_ami_msg *m);
void ami_members_apply(struct ami_ctx *c);
void ami_on_agent(struct ami_ctx *c, const char *ev, const struct wp_ami_msg *m);
void ami_emit_seats(struct ami_ctx *c, struct wp_sink *out);

#endif
