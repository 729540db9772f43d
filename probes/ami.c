/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ami probe: follows the lines (devices), calls and seats (queue members, agents) of an
 * Asterisk PBX over one Asterisk Manager Interface connection kept on the agent's loop, and
 * reports line states and seat session events.
 *
 * Config:
 *   - kind: ami
 *     name: pbx1
 *     interval: 10s
 *     host: 127.0.0.1          (a name or an address; the first resolved address is used)
 *     port: 5038
 *     username: monitor
 *     secret_file: /etc/watchpost/ami.secret   (first line; never logged)
 *     group: pbx1              (the state group of the lines; default: the probe name)
 *     ping_interval: 20s       (keepalive; no message for 2 intervals drops the link)
 *     reconnect_min: 1s
 *     reconnect_max: 30s
 *
 * Session: banner, Action: Login (Events: system,call,agent), then ListCommands (an account
 * that may run Originate, Command, ModuleLoad or UpdateConfig is warned about, once per
 * connect) and a resync with four list actions, each with its own ActionID:
 * DeviceStateList, ExtensionStateList, QueueStatus and CoreShowChannels. List items and the
 * live events that come meanwhile go to a pending snapshot; only when all four lists are
 * complete (or answered with an error: that domain then keeps what it knew, except a refused
 * DeviceStateList, which drops the link) is the snapshot applied and the differences
 * emitted. A link lost mid-list discards the pending snapshot. Then the probe follows
 * DeviceStateChange, ExtensionStatus, ContactStatus/PeerStatus, Newchannel/Newstate/Hangup,
 * QueueMemberAdded/Removed/Pause(d)/Status and AgentLogin/Logoff/Connect/Complete.
 *
 * A line is a device ("PJSIP/1001"). Its state, by precedence (the first that applies):
 *   1. the link is down: unknown, raw "link lost";
 *   2. the device was in no resync list: unknown, raw "not listed" (once, then forgotten);
 *   3. its contact is unreachable (the last of PeerStatus Unreachable/Unregistered/Rejected
 *      or ContactStatus with no reachable contact left): unavailable, raw the PBX's word;
 *   4. its device state (DeviceStateList / DeviceStateChange), raw the Asterisk token;
 *   5. the state of a hint that names this device alone (ExtensionStateList /
 *      ExtensionStatus), raw its StatusText: only for devices with no device state;
 *   6. unknown, raw "UNKNOWN".
 * Device state wins over extension state because a hint is an aggregate of device states in
 * which UNKNOWN reads Idle. Contact state comes from events only (listing contacts needs
 * write=system), so it starts afresh at each connect. The info of a line is its call:
 * caller, connected line, channel state and the call's start (UTC), from CoreShowChannels and
 * Newchannel/Newstate/Hangup (the channel "PJSIP/1001-0000002a" belongs to "PJSIP/1001").
 *
 * Seats: a dynamic or realtime queue member (queue, interface; static members have no login)
 * or an app_agent_pool agent (queue ""). QueueMemberAdded/Removed give login/logout,
 * QueueMemberPause(d) and a changed Paused in QueueMemberStatus give pause/unpause with the
 * reason, AgentLogin/AgentLogoff give login/logout. After each resync the QueueStatus members
 * are compared with what the probe knew: a member it did not know is an observed login at its
 * LoginTime, a member that is gone an observed logout at the time the link came back, a
 * changed LoginTime an observed logout and login, a changed Paused an observed pause (at
 * LastPause) or unpause. Each becomes an event (src "ami:<name>", rule "seat", fields seat,
 * queue, interface, device (the line device: the member's StateInterface, else its Interface,
 * or an agent's login channel, when one names a device), action login|logout|pause|unpause,
 * reason, at (ms since the epoch), observed 0|1, and login_at for an agent logout) at the
 * next sample. Event times come from
 * the Timestamp header (timestampevents=yes) or the agent's clock; logins use LoginTime.
 *
 * On EOF, an error, a bad message or a silent link, every line becomes unknown (raw "link
 * lost"), the link object "ami:<name>" (group telephony_link) becomes unavailable, and the
 * probe reconnects with exponential backoff and jitter (reconnect_min doubling up to
 * reconnect_max). A FullyBooted with a smaller Uptime than at the previous login means the
 * PBX restarted: it is logged, the line table starts afresh and logged-in agents get an
 * observed logout.
 *
 * sample() runs on the loop: after each completed resync it emits every line (a full
 * snapshot, with the link object "available"), otherwise the lines that changed since the
 * last sample: wp_sink_state(object = device, group, normalised state, raw, call info), then
 * the queued seat events. Series group "ami", instance <name>: up, last_message_age_s,
 * reconnects (connection attempts after the first), lines, lines_unavailable (unavailable,
 * out_of_service, unknown), lines_in_use (in_use, busy, on_hold); group "ami_seats":
 * logged_in, paused, agent_calls (AgentConnect seen), talk_s (AgentComplete TalkTime sum).
 *
 * The message parser (ami.h) is incremental and bounded: reads may split anywhere, LF or
 * CRLF, a line over 8 KiB, a message over 64 KiB or with more than 1024 keys, or a NUL byte
 * drops the connection.
 */
#include "ami.h"

#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "probe.h"
#include "wp/clock.h"
#include "wp/err.h"
#include "wp/mem.h"

#define AMI_LINES_MAX  20000 /* devices kept; more are ignored (logged once) */
#define AMI_DEV_MAX    255   /* bytes of a device name */
#define AMI_CHANS_MAX  20000 /* channels followed */
#define AMI_SEATS_MAX  20000 /* queue members and agents followed */
#define AMI_EVQ_MAX    10000 /* seat events waiting for the next sample */
#define AMI_SECRET_MAX 512
#define AMI_STOP       (-1) /* on_msg: the connection was dropped, stop feeding */

/* ---- parser ---- */

void wp_ami_parser_init(struct wp_ami_parser *p, int banner)
{
    memset(p, 0, sizeof(*p));
    p->buf = wp_xmalloc(WP_AMI_MSG_MAX + 1);
    p->want_banner = banner != 0;
}

void wp_ami_parser_reset(struct wp_ami_parser *p, int banner)
{
    p->len = 0;
    p->line_start = 0;
    p->nkeys = 0;
    p->err = 0;
    p->want_banner = banner != 0;
}

void wp_ami_parser_cleanup(struct wp_ami_parser *p)
{
    free(p->buf);
    p->buf = NULL;
}

const char *wp_ami_get(const struct wp_ami_msg *m, const char *key)
{
    for (size_t i = 0; i < m->nkeys; i++) {
        if (strcasecmp(m->key[i], key) == 0) {
            return m->val[i];
        }
    }
    return NULL;
}

static void parser_restart(struct wp_ami_parser *p)
{
    p->len = 0;
    p->line_start = 0;
    p->nkeys = 0;
}

/* A complete line (NUL-terminated, CR dropped) at buf + line_start: a key, the banner or the
 * end of a message. Returns 1 when a message went out, 0, or fn's negative return. */
static int parser_line(struct wp_ami_parser *p, wp_ami_msg_fn fn, void *arg)
{
    char *line = p->buf + p->line_start;
    struct wp_ami_msg *m = &p->msg;
    int rc = 0;

    if (line[0] == '\0') {
        if (p->nkeys == 0) {
            parser_restart(p); /* blank lines between messages */
            return 0;
        }
        m->banner = NULL;
        m->nkeys = p->nkeys;
        for (size_t i = 0; i < p->nkeys; i++) {
            m->key[i] = p->buf + p->koff[i];
            m->val[i] = p->buf + p->voff[i];
        }
        parser_restart(p); /* the bytes stay valid until the next feed writes over them */
        rc = fn(arg, m);
        return rc < 0 ? rc : 1;
    }
    if (p->want_banner) {
        p->want_banner = 0;
        m->banner = line;
        m->nkeys = 0;
        parser_restart(p);
        rc = fn(arg, m);
        return rc < 0 ? rc : 1;
    }
    if (p->nkeys == WP_AMI_KEYS_MAX) {
        return WP_ETOOBIG;
    }
    char *colon = strchr(line, ':');
    p->koff[p->nkeys] = p->line_start;
    if (colon == NULL) {
        p->voff[p->nkeys] = p->len - 1; /* the line's NUL: an empty value */
    } else {
        char *v = colon + 1;
        *colon = '\0';
        while (*v == ' ' || *v == '\t') {
            v++;
        }
        p->voff[p->nkeys] = (size_t)(v - p->buf);
    }
    p->nkeys++;
    p->line_start = p->len;
    return 0;
}

int wp_ami_parse_feed(struct wp_ami_parser *p, const char *buf, size_t len, wp_ami_msg_fn fn,
                      void *arg)
{
    size_t i = 0;
    int n = 0;

    if (p->err != 0) {
        return p->err;
    }
    while (i < len) {
        const char *nl = memchr(buf + i, '\n', len - i);
        size_t seg = nl != NULL ? (size_t)(nl - (buf + i)) : len - i;
        size_t total = p->len + seg + (nl != NULL ? 1 : 0);
        size_t line = p->len + seg - p->line_start;

        if (memchr(buf + i, '\0', seg) != NULL) {
            p->err = WP_EPROTO;
            return p->err;
        }
        /* the same verdicts whatever the split: counted on bytes seen so far */
        if (total > WP_AMI_MSG_MAX || line > WP_AMI_LINE_MAX + 1) {
            p->err = WP_ETOOBIG;
            return p->err;
        }
        memcpy(p->buf + p->len, buf + i, seg);
        p->len += seg;
        i += seg;
        if (nl == NULL) {
            break;
        }
        i++; /* the LF */
        if (line > 0 && p->buf[p->len - 1] == '\r') {
            p->buf[p->len - 1] = '\0';
            line--;
        }
        if (line > WP_AMI_LINE_MAX) {
            p->err = WP_ETOOBIG;
            return p->err;
        }
        p->buf[p->len++] = '\0';
        int rc = parser_line(p, fn, arg);
        if (rc < 0) {
            if (rc == WP_ETOOBIG) {
                p->err = rc;
            }
            return rc;
        }
        n += rc;
    }
    return n;
}

/* ---- probe state ---- */

enum { L_DEV, L_EXT, L_QUEUE, L_CHAN, L_N }; /* the resync lists */

static const char *const list_action[L_N] = {"DeviceStateList", "ExtensionStateList", "QueueStatus",
                                             "CoreShowChannels"};

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

struct ami_write {
    uv_write_t req;
    size_t len;
    char data[];
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

static const char *const ami_fields[] = {"up",    "last_message_age_s", "reconnects",
                                         "lines", "lines_unavailable",  "lines_in_use"};
static const struct wp_series_kind kind_ami = {"ami", ami_fields, 6, WP_DS_GAUGE};
static const char *const seat_fields[] = {"logged_in", "paused", "agent_calls", "talk_s"};
static const struct wp_series_kind kind_seats = {"ami_seats", seat_fields, 4, WP_DS_GAUGE};

#define CO(f) offsetof(struct ami_ctx, f)

static const struct wp_opt ami_opts[] = {
    {.name = "host",
     .type = WP_OPT_STR,
     .def = "127.0.0.1",
     .help = "AMI host name or address",
     .offset = CO(host)},
    {.name = "port",
     .type = WP_OPT_INT,
     .def = "5038",
     .help = "AMI TCP port",
     .offset = CO(port),
     .min = 1,
     .max = 65535},
    {.name = "username",
     .type = WP_OPT_STR,
     .help = "AMI user (manager.conf; read=system,call,agent write=reporting is enough)",
     .offset = CO(username),
     .required = 1},
    {.name = "secret_file",
     .type = WP_OPT_STR,
     .help = "file whose first line is the AMI secret (never logged)",
     .offset = CO(secret_file),
     .required = 1},
    {.name = "group",
     .type = WP_OPT_STR,
     .help = "state group of the lines (default: the probe name)",
     .offset = CO(group)},
    {.name = "ping_interval",
     .type = WP_OPT_DURATION,
     .def = "20s",
     .help = "keepalive Ping period; no message for two periods drops the link",
     .offset = CO(ping_ms),
     .min = 100,
     .max = 3600000},
    {.name = "reconnect_min",
     .type = WP_OPT_DURATION,
     .def = "1s",
     .help = "first reconnect delay (doubles, with jitter, after each failure)",
     .offset = CO(rmin_ms),
     .min = 10,
     .max = 3600000},
    {.name = "reconnect_max",
     .type = WP_OPT_DURATION,
     .def = "30s",
     .help = "largest reconnect delay",
     .offset = CO(rmax_ms),
     .min = 10,
     .max = 3600000},
    WP_OPT_TABLE_END,
};

/* Asterisk device state token -> normalised state. */
static const char *normalise(const char *raw)
{
    static const char *const map[][2] = {
        {"NOT_INUSE", "idle"},          {"INUSE", "in_use"},           {"BUSY", "busy"},
        {"UNAVAILABLE", "unavailable"}, {"RINGING", "ringing"},        {"RINGINUSE", "ringing"},
        {"ONHOLD", "on_hold"},          {"INVALID", "out_of_service"}, {"UNKNOWN", "unknown"},
    };

    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcasecmp(raw, map[i][0]) == 0) {
            return map[i][1];
        }
    }
    return "unknown";
}

/* ExtensionStatus Status (a bit mask, enum ast_extension_states) -> normalised state. */
static const char *ext_normalise(int st)
{
    if (st < 0) {
        return "unknown";
    }
    if (st & 8) {
        return "ringing"; /* Ringing, InUse&Ringing */
    }
    if (st & 16) {
        return "on_hold"; /* Hold, InUse&Hold */
    }
    if (st & 4) {
        return "unavailable";
    }
    if (st & 2) {
        return "busy";
    }
    if (st & 1) {
        return "in_use";
    }
    return "idle";
}

static int streq0(const char *a, const char *b)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }
    return strcmp(a, b) == 0;
}

static void set_str(char **dst, const char *src)
{
    if (streq0(*dst, src)) {
        return;
    }
    free(*dst);
    *dst = src != NULL ? wp_xstrdup(src) : NULL;
}

/* An integer header, or def when absent or not a number. */
static int64_t get_int(const struct wp_ami_msg *m, const char *key, int64_t def)
{
    const char *s = wp_ami_get(m, key);
    char *end = NULL;
    long long v = 0;

    if (s == NULL || s[0] == '\0') {
        return def;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s) {
        return def;
    }
    return v;
}

/* A header value that is not empty and not Asterisk's "<unknown>", else NULL. */
static const char *get_known(const struct wp_ami_msg *m, const char *key)
{
    const char *s = wp_ami_get(m, key);

    if (s == NULL || s[0] == '\0' || strcmp(s, "<unknown>") == 0) {
        return NULL;
    }
    return s;
}

/* When an event happened: its Timestamp header ("1767254400.125001", timestampevents=yes)
 * in ms, else the agent's clock. */
static int64_t event_ms(const struct wp_ami_msg *m)
{
    const char *s = wp_ami_get(m, "Timestamp");
    int64_t sec = 0;
    int64_t ms = 0;
    int digits = 0;

    if (s == NULL || *s < '0' || *s > '9') {
        return wp_clock_now_ms();
    }
    for (; *s >= '0' && *s <= '9' && sec < 100000000000LL; s++) {
        sec = sec * 10 + (*s - '0');
    }
    if (*s == '.') {
        for (s++; *s >= '0' && *s <= '9' && digits < 3; s++, digits++) {
            ms = ms * 10 + (*s - '0');
        }
    }
    for (; digits < 3; digits++) {
        ms *= 10;
    }
    if (sec <= 0 || sec >= 100000000000LL) {
        return wp_clock_now_ms();
    }
    return sec * 1000 + ms;
}

/* ---- hash index ---- */

typedef const char *(*ami_key_fn)(const void *tab, size_t i);

static size_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;

    for (; *s != '\0'; s++) {
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    }
    return (size_t)h;
}

static void idx_put(struct ami_idx *x, const char *k, size_t i)
{
    size_t m = x->cap - 1;
    size_t h = hash_str(k) & m;

    while (x->slot[h] != 0) {
        h = (h + 1) & m;
    }
    x->slot[h] = (uint32_t)i + 1;
}

/* Make x index the n keys of tab when it is stale or too small for n entries. */
static void idx_ensure(struct ami_idx *x, size_t n, ami_key_fn key, const void *tab)
{
    size_t cap = 64;

    if (!x->stale && x->cap > 2 * n) {
        return;
    }
    while (cap <= 2 * n) {
        cap *= 2;
    }
    if (cap != x->cap) {
        free(x->slot);
        x->slot = wp_xcalloc(cap, sizeof(*x->slot));
        x->cap = cap;
    } else {
        memset(x->slot, 0, cap * sizeof(*x->slot));
    }
    for (size_t i = 0; i < n; i++) {
        idx_put(x, key(tab, i), i);
    }
    x->stale = 0;
}

/* The position of k among the n keys of tab, or -1. */
static ssize_t idx_find(struct ami_idx *x, const char *k, size_t n, ami_key_fn key, const void *tab)
{
    size_t m = 0;
    size_t h = 0;

    idx_ensure(x, n, key, tab);
    m = x->cap - 1;
    h = hash_str(k) & m;
    while (x->slot[h] != 0) {
        size_t i = x->slot[h] - 1;
        if (strcmp(key(tab, i), k) == 0) {
            return (ssize_t)i;
        }
        h = (h + 1) & m;
    }
    return -1;
}

/* Key i of tab was just appended (tab now has n entries). */
static void idx_added(struct ami_idx *x, size_t i, size_t n, ami_key_fn key, const void *tab)
{
    if (x->stale || x->cap <= 2 * n) {
        idx_ensure(x, n, key, tab);
        return;
    }
    idx_put(x, key(tab, i), i);
}

static void idx_free(struct ami_idx *x)
{
    free(x->slot);
    memset(x, 0, sizeof(*x));
}

/* ---- string map ---- */

static const char *kv_key(const void *tab, size_t i)
{
    return ((const struct ami_kv *)tab)->k[i];
}

static ssize_t kv_find(struct ami_kv *kv, const char *k)
{
    return idx_find(&kv->idx, k, kv->n, kv_key, kv);
}

static const char *kv_get(struct ami_kv *kv, const char *k)
{
    ssize_t i = kv_find(kv, k);

    return i < 0 ? NULL : kv->v[i];
}

/* Set k to v (a copy); at most max entries (0 when full). Returns 1 when set. */
static int kv_set(struct ami_kv *kv, const char *k, const char *v, size_t max)
{
    ssize_t i = kv_find(kv, k);

    if (i >= 0) {
        set_str(&kv->v[i], v);
        return 1;
    }
    if (kv->n >= max) {
        return 0;
    }
    if (kv->n == kv->cap) {
        kv->cap = kv->cap != 0 ? kv->cap * 2 : 32;
        kv->k = wp_xrealloc(kv->k, kv->cap * sizeof(*kv->k));
        kv->v = wp_xrealloc(kv->v, kv->cap * sizeof(*kv->v));
    }
    kv->k[kv->n] = wp_xstrdup(k);
    kv->v[kv->n] = wp_xstrdup(v);
    kv->n++;
    idx_added(&kv->idx, kv->n - 1, kv->n, kv_key, kv);
    return 1;
}

static void kv_del(struct ami_kv *kv, const char *k)
{
    ssize_t i = kv_find(kv, k);

    if (i < 0) {
        return;
    }
    free(kv->k[i]);
    free(kv->v[i]);
    kv->n--;
    kv->k[i] = kv->k[kv->n];
    kv->v[i] = kv->v[kv->n];
    kv->idx.stale = 1;
}

static void kv_clear(struct ami_kv *kv)
{
    for (size_t i = 0; i < kv->n; i++) {
        free(kv->k[i]);
        free(kv->v[i]);
    }
    kv->n = 0;
    kv->idx.stale = 1;
}

static void kv_free(struct ami_kv *kv)
{
    kv_clear(kv);
    free(kv->k);
    free(kv->v);
    kv->k = NULL;
    kv->v = NULL;
    kv->cap = 0;
    idx_free(&kv->idx);
}

/* ---- the line table ---- */

static const char *line_key(const void *tab, size_t i)
{
    return ((const struct ami_table *)tab)->v[i].dev;
}

static struct ami_line *line_find(struct ami_table *t, const char *dev)
{
    ssize_t i = idx_find(&t->idx, dev, t->n, line_key, t);

    return i < 0 ? NULL : &t->v[i];
}

static void line_free(struct ami_line *l)
{
    free(l->dev);
    free(l->dev_raw);
    free(l->ext_raw);
    free(l->reach_raw);
    free(l->call);
    free(l->raw);
    free(l->info);
    memset(l, 0, sizeof(*l));
}

static void table_clear(struct ami_table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        line_free(&t->v[i]);
    }
    t->n = 0;
    t->idx.stale = 1;
}

static void table_free(struct ami_table *t)
{
    table_clear(t);
    free(t->v);
    t->v = NULL;
    t->cap = 0;
    idx_free(&t->idx);
}

/* dev's line, added (with no state yet) when create is set; NULL when absent or full. */
static struct ami_line *line_get(struct ami_ctx *c, const char *dev, int create)
{
    struct ami_table *t = &c->lines;
    struct ami_line *l = line_find(t, dev);

    if (l != NULL || !create) {
        return l;
    }
    if (strlen(dev) > AMI_DEV_MAX || dev[0] == '\0') {
        return NULL;
    }
    if (t->n >= AMI_LINES_MAX) {
        if (!c->too_many) {
            c->too_many = 1;
            WP_PLOG(c->p, WP_LOG_WARN, "more than %d devices: the rest are ignored", AMI_LINES_MAX);
        }
        return NULL;
    }
    if (t->n == t->cap) {
        t->cap = t->cap != 0 ? t->cap * 2 : 64;
        t->v = wp_xrealloc(t->v, t->cap * sizeof(*t->v));
    }
    l = &t->v[t->n++];
    memset(l, 0, sizeof(*l));
    l->dev = wp_xstrdup(dev);
    idx_added(&t->idx, t->n - 1, t->n, line_key, t);
    return l;
}

/* Work out a line's state from its sources by the precedence in the file comment; marks it
 * dirty when the state, raw state or info changed. */
static void line_eval(const struct ami_ctx *c, struct ami_line *l)
{
    const char *raw = "UNKNOWN";
    const char *state = "unknown";
    const char *info = NULL;

    if (!c->up) {
        raw = "link lost";
    } else if (l->gone) {
        raw = "not listed";
    } else {
        info = l->call;
        if (l->reach_raw != NULL) {
            raw = l->reach_raw;
            state = "unavailable";
        } else if (l->dev_raw != NULL) {
            raw = l->dev_raw;
            state = normalise(raw);
        } else if (l->ext_raw != NULL) {
            raw = l->ext_raw;
            state = ext_normalise(l->ext_status);
        }
    }
    if (l->raw == NULL || strcmp(l->raw, raw) != 0 || l->state == NULL ||
        strcmp(l->state, state) != 0 || !streq0(l->info, info)) {
        set_str(&l->raw, raw);
        set_str(&l->info, info);
        l->state = state;
        l->dirty = 1;
    }
}

static void lines_eval(struct ami_ctx *c)
{
    for (size_t i = 0; i < c->lines.n; i++) {
        line_eval(c, &c->lines.v[i]);
    }
}

/* ---- channels ---- */

static void chan_free(struct ami_chan *ch)
{
    free(ch->uid);
    free(ch->name);
    free(ch->dev);
    free(ch->cid_num);
    free(ch->cid_name);
    free(ch->conn_num);
    free(ch->conn_name);
    free(ch->state);
}

static void chans_clear(struct ami_chans *t)
{
    for (size_t i = 0; i < t->n; i++) {
        chan_free(&t->v[i]);
    }
    t->n = 0;
}

static void chans_free(struct ami_chans *t)
{
    chans_clear(t);
    free(t->v);
    t->v = NULL;
    t->cap = 0;
}

static struct ami_chan *chan_find(struct ami_chans *t, const char *uid)
{
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->v[i].uid, uid) == 0) {
            return &t->v[i];
        }
    }
    return NULL;
}

/* The device of a channel: its name without the "-<hex>" sequence suffix (and a Local
 * channel's ";1"/";2"): "PJSIP/1001-0000002a" -> "PJSIP/1001". A copy. */
static char *chan_device(const char *name)
{
    const char *dash = strrchr(name, '-');
    size_t n = strlen(name);

    if (dash != NULL && dash != name) {
        const char *s = dash + 1;
        size_t hex = strspn(s, "0123456789abcdefABCDEF");
        if (hex > 0 &&
            (s[hex] == '\0' ||
             (s[hex] == ';' && (s[hex + 1] == '1' || s[hex + 1] == '2') && s[hex + 2] == '\0'))) {
            n = (size_t)(dash - name);
        }
    }
    return wp_xasprintf("%.*s", (int)n, name);
}

static void iso_utc(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        snprintf(buf, len, "%lld", (long long)ms);
    }
}

/* Rebuild the call info of dev's line from the channels (the oldest call; "calls=N" when
 * there are more) and re-evaluate it. */
static void line_call_refresh(struct ami_ctx *c, const char *dev)
{
    struct ami_line *l = line_find(&c->lines, dev);
    const struct ami_chan *best = NULL;
    size_t n = 0;
    char buf[768];
    char when[32];
    size_t at = 0;

    if (l == NULL) {
        return;
    }
    for (size_t i = 0; i < c->chans.n; i++) {
        const struct ami_chan *ch = &c->chans.v[i];
        if (strcmp(ch->dev, dev) == 0) {
            n++;
            if (best == NULL || ch->start_ms < best->start_ms) {
                best = ch;
            }
        }
    }
    if (best == NULL) {
        free(l->call);
        l->call = NULL;
        line_eval(c, l);
        return;
    }
    buf[0] = '\0';
#define ADD(...)                                                        \
    do {                                                                \
        if (at < sizeof(buf)) {                                         \
            int k_ = snprintf(buf + at, sizeof(buf) - at, __VA_ARGS__); \
            at = k_ < 0 ? sizeof(buf) : at + (size_t)k_;                \
        }                                                               \
    } while (0)
    if (best->cid_num != NULL || best->cid_name != NULL) {
        ADD("caller=%.64s", best->cid_num != NULL ? best->cid_num : "");
        if (best->cid_name != NULL) {
            ADD(" (%.64s)", best->cid_name);
        }
        ADD(" ");
    }
    if (best->conn_num != NULL || best->conn_name != NULL) {
        ADD("connected=%.64s", best->conn_num != NULL ? best->conn_num : "");
        if (best->conn_name != NULL) {
            ADD(" (%.64s)", best->conn_name);
        }
        ADD(" ");
    }
    if (best->state != NULL) {
        ADD("state=%.32s ", best->state);
    }
    iso_utc(best->start_ms, when, sizeof(when));
    ADD("since=%s", when);
    if (n > 1) {
        ADD(" calls=%zu", n);
    }
#undef ADD
    set_str(&l->call, buf);
    line_eval(c, l);
}

/* A channel field from m when m has the key ("<unknown>" or empty clears it). */
static void chan_field(char **dst, const struct wp_ami_msg *m, const char *key)
{
    if (wp_ami_get(m, key) != NULL) {
        set_str(dst, get_known(m, key));
    }
}

/* Add or update the channel of m (Newchannel, Newstate, CoreShowChannel) in t. start_ms is
 * used for a channel not seen before. Returns the channel or NULL. */
static struct ami_chan *chan_update(struct ami_chans *t, const struct wp_ami_msg *m,
                                    int64_t start_ms)
{
    const char *uid = wp_ami_get(m, "Uniqueid");
    const char *name = wp_ami_get(m, "Channel");
    struct ami_chan *ch = NULL;

    if (uid == NULL || uid[0] == '\0' || name == NULL || name[0] == '\0' ||
        strlen(name) > AMI_DEV_MAX) {
        return NULL;
    }
    ch = chan_find(t, uid);
    if (ch == NULL) {
        if (t->n >= AMI_CHANS_MAX) {
            return NULL;
        }
        if (t->n == t->cap) {
            t->cap = t->cap != 0 ? t->cap * 2 : 32;
            t->v = wp_xrealloc(t->v, t->cap * sizeof(*t->v));
        }
        ch = &t->v[t->n++];
        memset(ch, 0, sizeof(*ch));
        ch->uid = wp_xstrdup(uid);
        ch->start_ms = start_ms;
    }
    if (!streq0(ch->name, name)) {
        set_str(&ch->name, name);
        free(ch->dev);
        ch->dev = chan_device(name);
    }
    chan_field(&ch->cid_num, m, "CallerIDNum");
    chan_field(&ch->cid_name, m, "CallerIDName");
    chan_field(&ch->conn_num, m, "ConnectedLineNum");
    chan_field(&ch->conn_name, m, "ConnectedLineName");
    if (get_known(m, "ChannelStateDesc") != NULL) {
        set_str(&ch->state, get_known(m, "ChannelStateDesc"));
    }
    return ch;
}

static void chan_remove(struct ami_chans *t, const char *uid, char **dev)
{
    struct ami_chan *ch = chan_find(t, uid);

    *dev = NULL;
    if (ch == NULL) {
        return;
    }
    *dev = ch->dev;
    ch->dev = NULL;
    chan_free(ch);
    *ch = t->v[--t->n];
}

/* "hh:mm:ss" (CoreShowChannel Duration) in ms, or -1. */
static int64_t hms_ms(const char *s)
{
    unsigned h = 0, m = 0, sec = 0;

    if (s == NULL || sscanf(s, "%u:%u:%u", &h, &m, &sec) != 3 || m > 59 || sec > 59 || h > 100000) {
        return -1;
    }
    return ((int64_t)h * 3600 + m * 60 + sec) * 1000;
}

/* ---- seats ---- */

static void member_free(struct ami_member *mb)
{
    free(mb->queue);
    free(mb->iface);
    free(mb->dev);
    free(mb->name);
    free(mb->reason);
}

static void members_clear(struct ami_members *t)
{
    for (size_t i = 0; i < t->n; i++) {
        member_free(&t->v[i]);
    }
    t->n = 0;
}

static void members_free(struct ami_members *t)
{
    members_clear(t);
    free(t->v);
    t->v = NULL;
    t->cap = 0;
}

static struct ami_member *member_find(struct ami_members *t, const char *queue, const char *iface)
{
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->v[i].queue, queue) == 0 && strcmp(t->v[i].iface, iface) == 0) {
            return &t->v[i];
        }
    }
    return NULL;
}

static struct ami_member *member_add(struct ami_ctx *c, struct ami_members *t, const char *queue,
                                     const char *iface, const char *dev, const char *name)
{
    struct ami_member *mb = NULL;

    if (t->n >= AMI_SEATS_MAX) {
        if (!c->too_many_seats) {
            c->too_many_seats = 1;
            WP_PLOG(c->p, WP_LOG_WARN, "more than %d queue members: the rest are ignored",
                    AMI_SEATS_MAX);
        }
        return NULL;
    }
    if (t->n == t->cap) {
        t->cap = t->cap != 0 ? t->cap * 2 : 32;
        t->v = wp_xrealloc(t->v, t->cap * sizeof(*t->v));
    }
    mb = &t->v[t->n++];
    memset(mb, 0, sizeof(*mb));
    mb->queue = wp_xstrdup(queue);
    mb->iface = wp_xstrdup(iface);
    mb->dev = wp_xstrdup(dev);
    mb->name = wp_xstrdup(name != NULL && name[0] != '\0' ? name : iface);
    return mb;
}

static void member_del(struct ami_members *t, struct ami_member *mb)
{
    member_free(mb);
    *mb = t->v[--t->n];
}

/* The line device of a seat, a copy ("" when none): the state interface when it names a
 * device, else the interface ("PJSIP/1001"; a channel "PJSIP/1004-00000014" stands for its
 * device). Local channels and "hint:" state interfaces name no device. */
static char *seat_device(const char *iface, const char *state_iface)
{
    const char *v[2] = {state_iface, iface};

    for (int i = 0; i < 2; i++) {
        if (v[i] != NULL && strchr(v[i], '/') != NULL && strncasecmp(v[i], "Local/", 6) != 0 &&
            strncasecmp(v[i], "hint:", 5) != 0) {
            return chan_device(v[i]);
        }
    }
    return wp_xstrdup("");
}

/* Queue one seat event for the next sample. */
static void seat_event(struct ami_ctx *c, const char *seat, const char *queue, const char *iface,
                       const char *dev, const char *action, const char *reason, int64_t at,
                       int observed, int64_t login_at)
{
    struct ami_seat_ev *e = NULL;

    if (c->nevq >= AMI_EVQ_MAX) {
        if (!c->too_many_seats) {
            c->too_many_seats = 1;
            WP_PLOG(c->p, WP_LOG_WARN,
                    "more than %d seat events between samples: the rest "
                    "are dropped",
                    AMI_EVQ_MAX);
        }
        return;
    }
    if (c->nevq == c->evq_cap) {
        c->evq_cap = c->evq_cap != 0 ? c->evq_cap * 2 : 32;
        c->evq = wp_xrealloc(c->evq, c->evq_cap * sizeof(*c->evq));
    }
    e = &c->evq[c->nevq++];
    e->seat = wp_xstrdup(seat);
    e->queue = wp_xstrdup(queue);
    e->iface = wp_xstrdup(iface != NULL ? iface : "");
    e->dev = wp_xstrdup(dev != NULL ? dev : "");
    e->reason = wp_xstrdup(reason != NULL ? reason : "");
    e->action = action;
    e->at = at;
    e->observed = observed;
    e->login_at = login_at;
}

static void member_event(struct ami_ctx *c, const struct ami_member *mb, const char *action,
                         int64_t at, int observed)
{
    int pause = strcmp(action, "pause") == 0 || strcmp(action, "unpause") == 0;

    seat_event(c, mb->name, mb->queue, mb->iface, mb->dev, action, pause ? mb->reason : NULL, at,
               observed, 0);
}

static void evq_clear(struct ami_ctx *c)
{
    for (size_t i = 0; i < c->nevq; i++) {
        free(c->evq[i].seat);
        free(c->evq[i].queue);
        free(c->evq[i].iface);
        free(c->evq[i].dev);
        free(c->evq[i].reason);
    }
    c->nevq = 0;
}

/* A queue member message: QueueMember (a QueueStatus item: Name, Location) or a
 * QueueMember* event (MemberName, Interface). */
struct member_msg {
    const char *queue, *iface, *state_iface, *name, *reason;
    int is_static;
    int paused; /* -1: not in the message */
    int64_t logintime_s, lastpause_s;
};

static int member_parse(const struct wp_ami_msg *m, struct member_msg *mm)
{
    const char *ms = wp_ami_get(m, "Membership");

    mm->queue = wp_ami_get(m, "Queue");
    mm->iface = wp_ami_get(m, "Interface");
    if (mm->iface == NULL) {
        mm->iface = wp_ami_get(m, "Location");
    }
    mm->state_iface = wp_ami_get(m, "StateInterface");
    mm->name = wp_ami_get(m, "MemberName");
    if (mm->name == NULL) {
        mm->name = wp_ami_get(m, "Name");
    }
    mm->reason = wp_ami_get(m, "PausedReason");
    mm->is_static = ms != NULL && strcasecmp(ms, "static") == 0;
    mm->paused = (int)get_int(m, "Paused", -1);
    if (mm->paused > 1) {
        mm->paused = 1;
    }
    mm->logintime_s = get_int(m, "LoginTime", 0);
    mm->lastpause_s = get_int(m, "LastPause", 0);
    if (mm->logintime_s < 0 || mm->logintime_s > 100000000000LL) {
        mm->logintime_s = 0;
    }
    if (mm->lastpause_s < 0 || mm->lastpause_s > 100000000000LL) {
        mm->lastpause_s = 0;
    }
    if (mm->queue == NULL || mm->queue[0] == '\0' || mm->iface == NULL || mm->iface[0] == '\0' ||
        strlen(mm->queue) > AMI_DEV_MAX || strlen(mm->iface) > AMI_DEV_MAX ||
        (mm->name != NULL && strlen(mm->name) > AMI_DEV_MAX)) {
        return -1;
    }
    return 0;
}

/* A QueueMember* event. Live, it becomes seat events; during a resync it updates the pending
 * members (the differences go out when the resync is applied). */
static void on_member(struct ami_ctx *c, const char *ev, const struct wp_ami_msg *m)
{
    struct member_msg mm;
    int live = c->phase == PH_LIVE;
    struct ami_members *t = live ? &c->members : &c->sync.members;
    struct ami_member *mb = NULL;
    int64_t at = event_ms(m);
    int added = strcasecmp(ev, "QueueMemberAdded") == 0;

    if (member_parse(m, &mm) < 0 || mm.is_static) {
        return;
    }
    mb = member_find(t, mm.queue, mm.iface);
    if (strcasecmp(ev, "QueueMemberRemoved") == 0) {
        if (mb != NULL) {
            if (live) {
                member_event(c, mb, "logout", at, 0);
            }
            member_del(t, mb);
        }
        return;
    }
    if (mb == NULL) {
        char *dev = seat_device(mm.iface, mm.state_iface);
        mb = member_add(c, t, mm.queue, mm.iface, dev, mm.name);
        free(dev);
        if (mb == NULL) {
            return;
        }
        mb->logintime_s = mm.logintime_s;
        /* LoginTime rather than the event time: a QueueStatus after a reconnect names it */
        mb->login_ms = mm.logintime_s > 0 ? mm.logintime_s * 1000 : at;
        mb->login_seen = added;
        if (live) {
            member_event(c, mb, "login", mb->login_ms, !added);
        }
    }
    if (mm.paused >= 0 && mm.paused != mb->paused) {
        mb->paused = mm.paused;
        set_str(&mb->reason, mm.reason != NULL ? mm.reason : "");
        mb->pause_ms = at;
        mb->pause_seen = 1;
        if (live) {
            member_event(c, mb, mb->paused ? "pause" : "unpause", at, 0);
        }
    }
}

/* A QueueStatus QueueMember item: the member as the PBX has it now (pending). */
static void on_member_item(struct ami_ctx *c, const struct wp_ami_msg *m)
{
    struct member_msg mm;
    struct ami_member *mb = NULL;

    if (member_parse(m, &mm) < 0 || mm.is_static) {
        return;
    }
    mb = member_find(&c->sync.members, mm.queue, mm.iface);
    if (mb == NULL) {
        char *dev = seat_device(mm.iface, mm.state_iface);
        mb = member_add(c, &c->sync.members, mm.queue, mm.iface, dev, mm.name);
        free(dev);
        if (mb == NULL) {
            return;
        }
        mb->logintime_s = mm.logintime_s;
        mb->login_ms = mm.logintime_s * 1000; /* 0: the time the link came back */
    }
    if (mm.paused >= 0 && mm.paused != mb->paused) {
        mb->paused = mm.paused;
        set_str(&mb->reason, mm.reason != NULL ? mm.reason : "");
        mb->pause_ms = mm.paused && mm.lastpause_s > 0 ? mm.lastpause_s * 1000 : 0;
        mb->pause_seen = 0;
    }
}

/* Apply the QueueStatus members: the differences with the known ones become seat events. */
static void members_apply(struct ami_ctx *c)
{
    struct ami_members *now = &c->sync.members;
    int64_t back = c->link_up_ms;

    for (size_t i = 0; i < c->members.n;) {
        struct ami_member *k = &c->members.v[i];
        struct ami_member *p = member_find(now, k->queue, k->iface);
        if (p == NULL) {
            member_event(c, k, "logout", back, 1); /* gone during the outage */
            member_del(&c->members, k);
            continue;
        }
        i++;
    }
    for (size_t i = 0; i < now->n; i++) {
        struct ami_member *p = &now->v[i];
        struct ami_member *k = member_find(&c->members, p->queue, p->iface);
        if (p->login_ms <= 0) {
            p->login_ms = back;
        }
        if (p->paused && p->pause_ms <= 0) {
            p->pause_ms = back;
        }
        if (k != NULL && p->logintime_s > 0 && k->logintime_s > 0 &&
            p->logintime_s != k->logintime_s) {
            /* logged out and in again during the outage */
            member_event(c, k, "logout", p->login_ms < back ? p->login_ms : back, 1);
            member_del(&c->members, k);
            k = NULL;
        }
        if (k == NULL) {
            k = member_add(c, &c->members, p->queue, p->iface, p->dev, p->name);
            if (k == NULL) {
                continue;
            }
            k->logintime_s = p->logintime_s;
            k->login_ms = p->login_ms;
            k->login_seen = p->login_seen;
            member_event(c, k, "login", k->login_ms, !p->login_seen);
        }
        if (k->logintime_s == 0) {
            k->logintime_s = p->logintime_s;
        }
        if (p->paused != k->paused) {
            k->paused = p->paused;
            set_str(&k->reason, p->reason != NULL ? p->reason : "");
            k->pause_ms = p->paused ? p->pause_ms : back;
            member_event(c, k, k->paused ? "pause" : "unpause",
                         k->paused ? p->pause_ms : (p->pause_seen ? p->pause_ms : back),
                         !p->pause_seen);
        }
    }
    members_clear(now);
}

/* AgentLogin / AgentLogoff (app_agent_pool): sessions with no queue. */
static void on_agent(struct ami_ctx *c, const char *ev, const struct wp_ami_msg *m)
{
    const char *agent = wp_ami_get(m, "Agent");
    const char *chan = wp_ami_get(m, "Channel");
    int64_t at = event_ms(m);
    char buf[32];

    if (agent == NULL || agent[0] == '\0' || strlen(agent) > AMI_DEV_MAX) {
        return;
    }
    if (strcasecmp(ev, "AgentLogin") == 0) {
        if (kv_get(&c->agents, agent) != NULL) {
            return; /* already logged in */
        }
        snprintf(buf, sizeof(buf), "%lld", (long long)at);
        if (!kv_set(&c->agents, agent, buf, AMI_SEATS_MAX)) {
            return;
        }
        char *dev = seat_device(chan, NULL);
        seat_event(c, agent, "", chan, dev, "login", NULL, at, 0, 0);
        free(dev);
        return;
    }
    /* AgentLogoff: Logintime is the session length in seconds */
    int64_t secs = get_int(m, "Logintime", -1);
    int64_t login_at = kv_get(&c->agents, agent) != NULL
                           ? strtoll(kv_get(&c->agents, agent), NULL, 10)
                           : (secs >= 0 && secs < 100000000 ? at - secs * 1000 : 0);
    char *dev = seat_device(chan, NULL);
    seat_event(c, agent, "", chan, dev, "logout", NULL, at, 0, login_at);
    free(dev);
    kv_del(&c->agents, agent);
}

/* ---- contacts ---- */

/* PeerStatus (Peer "PJSIP/1003") or ContactStatus (EndpointName "1003"): the last verdict
 * decides whether the device's line is unavailable (see the precedence above). */
static void on_contact(struct ami_ctx *c, const char *ev, const struct wp_ami_msg *m)
{
    char dev[AMI_DEV_MAX + 8];
    char key[2 * AMI_DEV_MAX + 16];
    struct ami_line *l = NULL;
    const char *verdict = NULL;

    if (strcasecmp(ev, "PeerStatus") == 0) {
        const char *peer = wp_ami_get(m, "Peer");
        const char *st = wp_ami_get(m, "PeerStatus");
        if (peer == NULL || st == NULL || strlen(peer) > AMI_DEV_MAX) {
            return;
        }
        l = line_find(&c->lines, peer);
        if (l == NULL) {
            return;
        }
        if (strcasecmp(st, "Unreachable") == 0 || strcasecmp(st, "Unregistered") == 0 ||
            strcasecmp(st, "Rejected") == 0) {
            verdict = st;
        }
        set_str(&l->reach_raw, verdict);
        line_eval(c, l);
        return;
    }
    const char *ep = wp_ami_get(m, "EndpointName");
    const char *uri = wp_ami_get(m, "URI");
    const char *st = wp_ami_get(m, "ContactStatus");
    if (ep == NULL || uri == NULL || st == NULL || strlen(ep) > AMI_DEV_MAX - 6 ||
        strlen(uri) > AMI_DEV_MAX) {
        return;
    }
    snprintf(dev, sizeof(dev), "PJSIP/%s", ep);
    l = line_find(&c->lines, dev);
    if (l == NULL) {
        return;
    }
    snprintf(key, sizeof(key), "%s\x1f%s", dev, uri);
    if (strcasecmp(st, "Removed") == 0) {
        kv_del(&c->contacts, key);
    } else {
        kv_set(&c->contacts, key, strcasecmp(st, "Unreachable") == 0 ? "0" : "1", AMI_LINES_MAX);
    }
    size_t nk = strlen(dev);
    int any = 0, ok = 0;
    for (size_t i = 0; i < c->contacts.n; i++) {
        if (strncmp(c->contacts.k[i], dev, nk) == 0 && c->contacts.k[i][nk] == '\x1f') {
            any = 1;
            ok |= c->contacts.v[i][0] == '1';
        }
    }
    if (!ok) {
        verdict = any ? "Unreachable" : "Removed";
    }
    set_str(&l->reach_raw, verdict);
    line_eval(c, l);
}

/* ---- resync ---- */

static void sync_clear(struct ami_sync *y)
{
    kv_clear(&y->devs);
    kv_clear(&y->exts);
    chans_clear(&y->chans);
    members_clear(&y->members);
    y->done = 0;
    y->refused = 0;
    for (int i = 0; i < L_N; i++) {
        y->id[i][0] = '\0';
    }
}

static void sync_free(struct ami_sync *y)
{
    sync_clear(y);
    kv_free(&y->devs);
    kv_free(&y->exts);
    chans_free(&y->chans);
    members_free(&y->members);
}

/* The device a hint names alone ("PJSIP/1001", "PJSIP/1001,CustomPresence:1001"), copied
 * into buf; 0 when it names several devices or none. */
static int hint_device(const char *hint, char *buf, size_t len)
{
    size_t n = strcspn(hint, ",");

    if (n == 0 || n >= len || memchr(hint, '&', n) != NULL) {
        return 0;
    }
    memcpy(buf, hint, n);
    buf[n] = '\0';
    return 1;
}

/* ExtensionStatus: a list item or an event. */
static void on_extension(struct ami_ctx *c, const struct wp_ami_msg *m)
{
    const char *hint = wp_ami_get(m, "Hint");
    const char *text = wp_ami_get(m, "StatusText");
    int64_t st = get_int(m, "Status", -100);
    char dev[AMI_DEV_MAX + 1];
    char val[96];
    struct ami_line *l = NULL;

    if (hint == NULL || st == -100 || !hint_device(hint, dev, sizeof(dev))) {
        return;
    }
    if (text == NULL || text[0] == '\0') {
        text = "Unknown";
    }
    if (c->phase == PH_RESYNC) {
        if (st < 0) {
            kv_del(&c->sync.exts, dev); /* the hint or the extension was removed */
        } else {
            snprintf(val, sizeof(val), "%d:%.64s", (int)st, text);
            kv_set(&c->sync.exts, dev, val, AMI_LINES_MAX);
        }
        return;
    }
    if (c->phase != PH_LIVE) {
        return;
    }
    l = line_get(c, dev, st >= 0);
    if (l == NULL) {
        return;
    }
    if (st < 0) {
        free(l->ext_raw);
        l->ext_raw = NULL;
    } else {
        set_str(&l->ext_raw, text);
        l->ext_status = (int)st;
    }
    line_eval(c, l);
}

/* Newchannel, Newstate, Hangup (and CoreShowChannel items, with list set). */
static void on_channel(struct ami_ctx *c, const char *ev, const struct wp_ami_msg *m, int list)
{
    int live = c->phase == PH_LIVE;
    struct ami_chans *t = live ? &c->chans : &c->sync.chans;
    char *dev = NULL;

    if (!live && c->phase != PH_RESYNC) {
        return;
    }
    if (strcasecmp(ev, "Hangup") == 0) {
        const char *uid = wp_ami_get(m, "Uniqueid");
        if (uid == NULL) {
            return;
        }
        chan_remove(t, uid, &dev);
    } else {
        int64_t start = event_ms(m);
        if (list) {
            int64_t d = hms_ms(wp_ami_get(m, "Duration"));
            start = wp_clock_now_ms() - (d > 0 ? d : 0);
        }
        struct ami_chan *ch = chan_update(t, m, start);
        if (ch != NULL) {
            dev = wp_xstrdup(ch->dev);
        }
    }
    if (live && dev != NULL) {
        line_call_refresh(c, dev);
    }
    free(dev);
}

/* ---- connection ---- */

static void start_connect(struct ami_ctx *c);

static double now_s(void)
{
    return wp_probe_mono_s();
}

static uint64_t rnd(struct ami_ctx *c)
{
    uint64_t x = c->rng;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c->rng = x;
    return x;
}

static void on_retry(uv_timer_t *t)
{
    struct ami_ctx *c = t->data;

    if (!c->stopping) {
        start_connect(c);
    }
}

/* Arm the reconnect: reconnect_min * 2^(failures-1) up to reconnect_max, then a random
 * point in its upper half so that many agents do not reconnect in step. */
static void schedule_retry(struct ami_ctx *c)
{
    uint64_t d = (uint64_t)c->rmin_ms;

    c->phase = PH_IDLE;
    if (c->stopping) {
        return;
    }
    for (unsigned i = 1; i < c->attempts && d < (uint64_t)c->rmax_ms; i++) {
        d *= 2;
    }
    if (d > (uint64_t)c->rmax_ms) {
        d = (uint64_t)c->rmax_ms;
    }
    d = d / 2 + rnd(c) % (d / 2 + 1);
    WP_PLOG(c->p, WP_LOG_DEBUG, "reconnecting in %llu ms", (unsigned long long)d);
    uv_timer_start(&c->retry, on_retry, d, 0);
}

static void on_tcp_closed(uv_handle_t *h)
{
    struct ami_ctx *c = h->data;

    c->tcp_open = 0;
    schedule_retry(c);
}

/* The link is gone (or could not be made): lines become unknown, the link unavailable, and
 * a reconnect follows. why is logged. */
static void drop(struct ami_ctx *c, const char *why)
{
    if (c->phase == PH_IDLE || c->phase == PH_CLOSING) {
        return;
    }
    if (c->up) {
        WP_PLOG(c->p, WP_LOG_WARN, "link to %s:%lld lost: %s", c->host, (long long)c->port, why);
    } else {
        /* failing again and again: warn at failures 1, 2, 4, 8, ... only */
        enum wp_log_level lvl = (c->attempts & (c->attempts + 1)) == 0 ? WP_LOG_WARN : WP_LOG_DEBUG;
        WP_PLOG(c->p, lvl, "cannot connect to %s:%lld (failure %u): %s", c->host,
                (long long)c->port, c->attempts + 1, why);
    }
    c->up = 0;
    for (size_t i = 0; i < c->lines.n; i++) {
        free(c->lines.v[i].reach_raw); /* contact states start afresh at the next connect */
        c->lines.v[i].reach_raw = NULL;
    }
    lines_eval(c); /* every line unknown, "link lost" */
    if (c->link_state == NULL || strcmp(c->link_state, "unavailable") != 0) {
        c->link_state = "unavailable";
        c->link_raw = "link lost";
        c->link_dirty = 1;
    }
    sync_clear(&c->sync); /* a partial resync is discarded */
    kv_clear(&c->contacts);
    c->attempts++;
    c->phase = PH_CLOSING;
    if (c->tcp_open) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
    } else if (c->gai_pending) {
        uv_cancel((uv_req_t *)&c->gai); /* on_resolved arms the retry */
    } else {
        schedule_retry(c);
    }
}

static void on_written(uv_write_t *req, int status)
{
    struct ami_write *w = (struct ami_write *)req;

    /* a failed write shows up as a read error; the Login carried the secret */
    (void)status;
    explicit_bzero(w->data, w->len);
    free(w);
}

/* Send one action (its lines, without the final empty line). 0 or a uv error. */
static int send_action(struct ami_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int send_action(struct ami_ctx *c, const char *fmt, ...)
{
    va_list ap;
    int n = 0;
    struct ami_write *w = NULL;
    uv_buf_t b;
    int rc = 0;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return -EINVAL;
    }
    w = wp_xmalloc(sizeof(*w) + (size_t)n + 3);
    va_start(ap, fmt);
    vsnprintf(w->data, (size_t)n + 1, fmt, ap);
    va_end(ap);
    memcpy(w->data + n, "\r\n", 3);
    w->len = (size_t)n + 2;
    b = uv_buf_init(w->data, (unsigned)w->len);
    rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
    if (rc < 0) {
        explicit_bzero(w->data, w->len);
        free(w);
    }
    return rc;
}

static void next_id(struct ami_ctx *c, char *buf, size_t len)
{
    snprintf(buf, len, "wp-%llu", (unsigned long long)++c->seq);
}

static int send_login(struct ami_ctx *c)
{
    char secret[AMI_SECRET_MAX];
    int rc = wp_probe_read_secret(c->p, c->secret_file, secret, sizeof(secret));

    if (rc < 0) {
        return rc;
    }
    next_id(c, c->login_id, sizeof(c->login_id));
    rc = send_action(c,
                     "Action: Login\r\nActionID: %s\r\nUsername: %s\r\nSecret: %s\r\n"
                     "Events: system,call,agent\r\n",
                     c->login_id, c->username, secret);
    explicit_bzero(secret, sizeof(secret));
    return rc;
}

/* After the login: ListCommands (to see the account's rights) and the four resync lists. */
static int send_resync(struct ami_ctx *c)
{
    int rc = 0;

    sync_clear(&c->sync);
    next_id(c, c->rights_id, sizeof(c->rights_id));
    rc = send_action(c, "Action: ListCommands\r\nActionID: %s\r\n", c->rights_id);
    for (int i = 0; i < L_N && rc == 0; i++) {
        next_id(c, c->sync.id[i], sizeof(c->sync.id[i]));
        rc = send_action(c, "Action: %s\r\nActionID: %s\r\n", list_action[i], c->sync.id[i]);
    }
    return rc;
}

/* ListCommands lists the actions the account may run: warn when it could do harm. */
static void check_rights(struct ami_ctx *c, const struct wp_ami_msg *m)
{
    static const char *const risky[][2] = {
        {"Originate", "originate"},
        {"Command", "command"},
        {"ModuleLoad", "system"},
        {"UpdateConfig", "config"},
    };
    char got[96];
    size_t at = 0;

    got[0] = '\0';
    for (size_t i = 0; i < sizeof(risky) / sizeof(risky[0]); i++) {
        if (wp_ami_get(m, risky[i][0]) != NULL) {
            int n = snprintf(got + at, sizeof(got) - at, "%s%s", at > 0 ? "," : "", risky[i][1]);
            if (n > 0 && (size_t)n < sizeof(got) - at) {
                at += (size_t)n;
            }
        }
    }
    if (at > 0) {
        WP_PLOG(c->p, WP_LOG_WARN,
                "AMI user %s has more rights than it needs (write=%s); read=system,call,agent "
                "write=reporting is enough",
                c->username, got);
    }
}

/* Every list is complete: apply the pending snapshot. */
static void finish_resync(struct ami_ctx *c)
{
    struct ami_sync *y = &c->sync;
    int exts_ok = !(y->refused & (1u << L_EXT));
    size_t missing = 0;

    c->up = 1;
    for (size_t i = 0; i < y->devs.n; i++) {
        struct ami_line *l = line_get(c, y->devs.k[i], 1);
        if (l != NULL) {
            set_str(&l->dev_raw, y->devs.v[i]);
        }
    }
    for (size_t i = 0; exts_ok && i < y->exts.n; i++) {
        struct ami_line *l = line_get(c, y->exts.k[i], 1);
        char *end = NULL;
        long st = strtol(y->exts.v[i], &end, 10);
        if (l != NULL && end != NULL && *end == ':') {
            set_str(&l->ext_raw, end + 1);
            l->ext_status = (int)st;
        }
    }
    for (size_t i = 0; i < c->lines.n; i++) {
        struct ami_line *l = &c->lines.v[i];
        if (kv_get(&y->devs, l->dev) == NULL) {
            free(l->dev_raw);
            l->dev_raw = NULL;
        }
        if (exts_ok && kv_get(&y->exts, l->dev) == NULL) {
            free(l->ext_raw);
            l->ext_raw = NULL;
        }
        l->gone = l->dev_raw == NULL && l->ext_raw == NULL;
        missing += (size_t)l->gone;
    }
    /* calls: the listed channels (none known when the list was refused) */
    chans_clear(&c->chans);
    if (!(y->refused & (1u << L_CHAN))) {
        struct ami_chans tmp = c->chans;
        c->chans = y->chans;
        y->chans = tmp;
    }
    for (size_t i = 0; i < c->lines.n; i++) {
        free(c->lines.v[i].call);
        c->lines.v[i].call = NULL;
    }
    for (size_t i = 0; i < c->chans.n; i++) {
        struct ami_line *l = line_find(&c->lines, c->chans.v[i].dev);
        if (l != NULL && l->call == NULL) {
            line_call_refresh(c, l->dev);
        }
    }
    if (!(y->refused & (1u << L_QUEUE))) {
        members_apply(c);
    }
    lines_eval(c);
    sync_clear(y);
    c->phase = PH_LIVE;
    c->attempts = 0;
    c->snapshot = 1;
    c->link_state = "available";
    c->link_raw = "connected";
    c->link_dirty = 1;
    WP_PLOG(c->p, WP_LOG_INFO,
            "resync done: %zu lines (%zu not listed), %zu calls, %zu queue members",
            c->lines.n - missing, missing, c->chans.n, c->members.n);
}

/* The list an ActionID belongs to, or -1. */
static int list_of(const struct ami_ctx *c, const char *aid)
{
    if (aid == NULL || c->phase != PH_RESYNC) {
        return -1;
    }
    for (int i = 0; i < L_N; i++) {
        if (strcmp(aid, c->sync.id[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* List k is complete (or refused): apply the resync when it was the last. */
static void list_done(struct ami_ctx *c, int k)
{
    c->sync.done |= 1u << k;
    if (c->sync.done == (1u << L_N) - 1) {
        finish_resync(c);
    }
}

static int on_response(struct ami_ctx *c, const struct wp_ami_msg *m, const char *resp,
                       const char *aid)
{
    const char *msg = wp_ami_get(m, "Message");
    char why[160];
    int k = -1;

    if (aid == NULL) {
        return 0;
    }
    if (c->phase == PH_LOGIN && strcmp(aid, c->login_id) == 0) {
        if (strcasecmp(resp, "Success") != 0) {
            snprintf(why, sizeof(why), "login refused: %.100s", msg != NULL ? msg : resp);
            drop(c, why);
            return AMI_STOP;
        }
        c->link_up_ms = wp_clock_now_ms();
        if (send_resync(c) < 0) {
            drop(c, "cannot send the resync actions");
            return AMI_STOP;
        }
        c->phase = PH_RESYNC;
        return 0;
    }
    if (strcmp(aid, c->rights_id) == 0) {
        if (strcasecmp(resp, "Success") == 0) {
            check_rights(c, m);
        }
        return 0;
    }
    k = list_of(c, aid);
    if (k < 0 || strcasecmp(resp, "Success") == 0) {
        return 0; /* Ping answers and the lists' own start */
    }
    if (k == L_DEV) {
        snprintf(why, sizeof(why), "DeviceStateList refused: %.100s", msg != NULL ? msg : resp);
        drop(c, why);
        return AMI_STOP;
    }
    /* no hints, no app_queue, no rights: that domain keeps what it knew */
    WP_PLOG(c->p, WP_LOG_DEBUG, "%s refused: %.100s", list_action[k], msg != NULL ? msg : resp);
    c->sync.refused |= 1u << k;
    list_done(c, k);
    return 0;
}

static void on_fully_booted(struct ami_ctx *c, const struct wp_ami_msg *m)
{
    const char *s = wp_ami_get(m, "Uptime");
    char *end = NULL;
    long long up = 0;

    if (s == NULL) {
        return;
    }
    errno = 0;
    up = strtoll(s, &end, 10);
    if (errno != 0 || end == s || up < 0) {
        return;
    }
    if (c->last_uptime >= 0 && up < c->last_uptime) {
        WP_PLOG(c->p, WP_LOG_WARN, "PBX restarted (uptime %lld s, was %lld s at the last login)",
                up, (long long)c->last_uptime);
        table_clear(&c->lines);
        chans_clear(&c->chans);
        /* agents have no list to resync from, and a restart logs them all off */
        for (size_t i = 0; i < c->agents.n; i++) {
            seat_event(c, c->agents.k[i], "", NULL, NULL, "logout", NULL, c->link_up_ms, 1,
                       strtoll(c->agents.v[i], NULL, 10));
        }
        kv_clear(&c->agents);
    }
    c->last_uptime = up;
}

/* A list item or a live event. */
static int on_event(struct ami_ctx *c, const struct wp_ami_msg *m, const char *ev, const char *aid)
{
    int k = list_of(c, aid);

    if (k >= 0) {
        const char *el = wp_ami_get(m, "EventList");
        if (el != NULL && strcasecmp(el, "Complete") == 0) {
            list_done(c, k);
            return 0;
        }
        if (el != NULL && strcasecmp(el, "cancelled") == 0) {
            char why[64];
            snprintf(why, sizeof(why), "%s cancelled", list_action[k]);
            drop(c, why);
            return AMI_STOP;
        }
        if (k == L_QUEUE && strcasecmp(ev, "QueueMember") == 0) {
            on_member_item(c, m);
            return 0;
        }
        if (k == L_CHAN && strcasecmp(ev, "CoreShowChannel") == 0) {
            on_channel(c, ev, m, 1);
            return 0;
        }
        /* DeviceStateChange and ExtensionStatus items take the live path below */
    }
    if (strcasecmp(ev, "FullyBooted") == 0) {
        on_fully_booted(c, m);
    } else if (strcasecmp(ev, "DeviceStateChange") == 0) {
        const char *dev = wp_ami_get(m, "Device");
        const char *st = wp_ami_get(m, "State");
        if (dev == NULL || st == NULL) {
            return 0;
        }
        if (c->phase == PH_RESYNC) {
            if (strlen(dev) <= AMI_DEV_MAX && dev[0] != '\0') {
                kv_set(&c->sync.devs, dev, st, AMI_LINES_MAX); /* list items and changes alike */
            }
        } else if (c->phase == PH_LIVE) {
            struct ami_line *l = line_get(c, dev, 1);
            if (l != NULL) {
                set_str(&l->dev_raw, st);
                l->gone = 0;
                line_eval(c, l);
            }
        }
    } else if (strcasecmp(ev, "ExtensionStatus") == 0) {
        on_extension(c, m);
    } else if (strcasecmp(ev, "PeerStatus") == 0 || strcasecmp(ev, "ContactStatus") == 0) {
        on_contact(c, ev, m);
    } else if (strcasecmp(ev, "Newchannel") == 0 || strcasecmp(ev, "Newstate") == 0 ||
               strcasecmp(ev, "NewConnectedLine") == 0 || strcasecmp(ev, "Hangup") == 0) {
        on_channel(c, ev, m, 0);
    } else if (strcasecmp(ev, "QueueMemberAdded") == 0 ||
               strcasecmp(ev, "QueueMemberRemoved") == 0 ||
               strcasecmp(ev, "QueueMemberPause") == 0 ||
               strcasecmp(ev, "QueueMemberPaused") == 0 ||
               strcasecmp(ev, "QueueMemberStatus") == 0) {
        if (c->phase == PH_LIVE || c->phase == PH_RESYNC) {
            on_member(c, ev, m);
        }
    } else if (strcasecmp(ev, "AgentLogin") == 0 || strcasecmp(ev, "AgentLogoff") == 0) {
        on_agent(c, ev, m);
    } else if (strcasecmp(ev, "AgentConnect") == 0) {
        c->agent_calls++;
    } else if (strcasecmp(ev, "AgentComplete") == 0) {
        int64_t talk = get_int(m, "TalkTime", 0);
        if (talk > 0 && talk < 86400 * 7) {
            c->talk_s += (double)talk;
        }
    }
    return 0;
}

static int on_msg(void *arg, const struct wp_ami_msg *m)
{
    struct ami_ctx *c = arg;
    const char *ev = NULL;
    const char *resp = NULL;
    const char *aid = NULL;

    c->last_msg = now_s();
    if (m->banner != NULL) {
        if (strncmp(m->banner, "Asterisk Call Manager/", 22) != 0) {
            drop(c, "not an AMI server (unexpected banner)");
            return AMI_STOP;
        }
        if (send_login(c) < 0) {
            drop(c, "cannot send Login");
            return AMI_STOP;
        }
        c->phase = PH_LOGIN;
        return 0;
    }
    ev = wp_ami_get(m, "Event");
    aid = wp_ami_get(m, "ActionID");
    /* an event may carry a Response key (OriginateResponse): Event decides */
    if (ev != NULL) {
        return on_event(c, m, ev, aid);
    }
    resp = wp_ami_get(m, "Response");
    if (resp != NULL) {
        return on_response(c, m, resp, aid);
    }
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct ami_ctx *c = h->data;

    (void)hint;
    *b = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct ami_ctx *c = s->data;
    char why[160];
    int rc = 0;

    if (nread == 0) {
        return;
    }
    if (nread < 0) {
        drop(c, nread == UV_EOF ? "closed by the PBX" : uv_strerror((int)nread));
        return;
    }
    rc = wp_ami_parse_feed(&c->parser, b->base, (size_t)nread, on_msg, c);
    if (rc < 0 && rc != AMI_STOP) {
        snprintf(why, sizeof(why), "bad message: %s", wp_strerror(rc));
        drop(c, why);
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    struct ami_ctx *c = req->data;
    int rc = 0;

    if (status == UV_ECANCELED || c->stopping || c->phase != PH_CONNECTING) {
        return;
    }
    if (status < 0) {
        drop(c, uv_strerror(status));
        return;
    }
    c->phase = PH_BANNER;
    wp_ami_parser_reset(&c->parser, 1);
    rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc < 0) {
        drop(c, uv_strerror(rc));
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct ami_ctx *c = req->data;
    int rc = 0;

    c->gai_pending = 0;
    if (c->stopping || c->phase != PH_RESOLVING) {
        uv_freeaddrinfo(res);
        if (!c->stopping && c->phase == PH_CLOSING) {
            schedule_retry(c);
        }
        return;
    }
    if (status < 0 || res == NULL) {
        uv_freeaddrinfo(res);
        drop(c, status < 0 ? uv_strerror(status) : "no address");
        return;
    }
    uv_tcp_init(c->loop, &c->tcp);
    c->tcp.data = c;
    c->tcp_open = 1;
    c->conn_req.data = c;
    c->phase = PH_CONNECTING;
    rc = uv_tcp_connect(&c->conn_req, &c->tcp, res->ai_addr, on_connect);
    uv_freeaddrinfo(res);
    if (rc < 0) {
        drop(c, uv_strerror(rc));
    }
}

static void start_connect(struct ami_ctx *c)
{
    struct addrinfo hints;
    char port[8];
    int rc = 0;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%lld", (long long)c->port);
    c->connects++;
    c->attempt_t0 = now_s();
    c->phase = PH_RESOLVING;
    c->gai.data = c;
    rc = uv_getaddrinfo(c->loop, &c->gai, on_resolved, c->host, port, &hints);
    if (rc < 0) {
        drop(c, uv_strerror(rc));
        return;
    }
    c->gai_pending = 1;
}

/* Every ping_interval: give up an attempt that takes too long, drop a silent link, ping. */
static void on_tick(uv_timer_t *t)
{
    struct ami_ctx *c = t->data;
    double now = now_s();
    double limit = 2.0 * (double)c->ping_ms / 1000.0;
    char id[32];
    char why[96];

    switch (c->phase) {
    case PH_RESOLVING:
    case PH_CONNECTING:
    case PH_BANNER:
    case PH_LOGIN:
    case PH_RESYNC:
        if (now - c->attempt_t0 >= limit) {
            snprintf(why, sizeof(why), "no session after %.1f s", now - c->attempt_t0);
            drop(c, why);
        }
        break;
    case PH_LIVE:
        if (now - c->last_msg >= limit) {
            snprintf(why, sizeof(why), "no message for %.1f s", now - c->last_msg);
            drop(c, why);
            break;
        }
        next_id(c, id, sizeof(id));
        if (send_action(c, "Action: Ping\r\nActionID: %s\r\n", id) < 0) {
            drop(c, "cannot send Ping");
        }
        break;
    default:
        break;
    }
}

/* ---- probe callbacks ---- */

static int ami_init(struct wp_probe *p)
{
    struct ami_ctx *c = p->ctx;

    c->p = p;
    if (c->group == NULL) {
        c->group = wp_xstrdup(p->instance);
    }
    if (!wp_probe_name_ok(c->group, 64)) {
        WP_PLOG(p, WP_LOG_ERROR, "group: expected 1 to 64 letters, digits, '_', '-' or '.'");
        return WP_ECONFIG;
    }
    if (c->host[0] == '\0' || strlen(c->host) > 253) {
        WP_PLOG(p, WP_LOG_ERROR, "host: expected a host name or an IP address");
        return WP_ECONFIG;
    }
    if (c->username[0] == '\0' || strpbrk(c->username, "\r\n") != NULL) {
        WP_PLOG(p, WP_LOG_ERROR, "username: expected one line of text");
        return WP_ECONFIG;
    }
    if (c->rmin_ms > c->rmax_ms) {
        WP_PLOG(p, WP_LOG_ERROR, "reconnect_min is above reconnect_max");
        return WP_ECONFIG;
    }
    c->link_obj = wp_xasprintf("ami:%s", p->instance);
    c->last_uptime = -1;
    c->rng = (uint64_t)(now_s() * 1e9) ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
    if (c->rng == 0) {
        c->rng = 1;
    }
    wp_ami_parser_init(&c->parser, 1);
    return 0;
}

static int ami_start(struct wp_probe *p, uv_loop_t *loop)
{
    struct ami_ctx *c = p->ctx;

    c->loop = loop;
    uv_timer_init(loop, &c->tick);
    uv_timer_init(loop, &c->retry);
    c->tick.data = c;
    c->retry.data = c;
    c->timers_open = 1;
    c->started = 1;
    uv_timer_start(&c->tick, on_tick, (uint64_t)c->ping_ms, (uint64_t)c->ping_ms);
    start_connect(c);
    return 0;
}

static void ami_stop(struct wp_probe *p)
{
    struct ami_ctx *c = p->ctx;

    if (!c->started || c->stopping) {
        return;
    }
    c->stopping = 1;
    if (c->timers_open) {
        uv_close((uv_handle_t *)&c->tick, NULL);
        uv_close((uv_handle_t *)&c->retry, NULL);
        c->timers_open = 0;
    }
    if (c->tcp_open && !uv_is_closing((uv_handle_t *)&c->tcp)) {
        uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
    }
    if (c->gai_pending) {
        uv_cancel((uv_req_t *)&c->gai);
    }
}

static void emit(struct ami_ctx *c, struct wp_sink *out, const struct ami_line *l)
{
    wp_sink_state(out, l->dev, c->group, l->state, l->raw, l->info);
}

/* The queued seat events, as wp_sink_event records (see the file comment). */
static void emit_seats(struct ami_ctx *c, struct wp_sink *out)
{
    for (size_t i = 0; i < c->nevq; i++) {
        const struct ami_seat_ev *e = &c->evq[i];
        char at[24], login_at[24], text[600];
        const char *f[19];
        size_t n = 0;

        snprintf(at, sizeof(at), "%lld", (long long)e->at);
        snprintf(login_at, sizeof(login_at), "%lld", (long long)e->login_at);
        snprintf(text, sizeof(text), "%.255s %s%s%.255s%s%s%.64s", e->seat, e->action,
                 e->queue[0] != '\0' ? " queue " : "", e->queue, e->observed ? " (observed)" : "",
                 e->reason[0] != '\0' ? ": " : "", e->reason);
        f[n++] = "seat";
        f[n++] = e->seat;
        f[n++] = "queue";
        f[n++] = e->queue;
        f[n++] = "interface";
        f[n++] = e->iface;
        if (e->dev[0] != '\0') {
            f[n++] = "device";
            f[n++] = e->dev;
        }
        f[n++] = "action";
        f[n++] = e->action;
        f[n++] = "reason";
        f[n++] = e->reason;
        f[n++] = "at";
        f[n++] = at;
        f[n++] = "observed";
        f[n++] = e->observed ? "1" : "0";
        if (e->login_at > 0) {
            f[n++] = "login_at";
            f[n++] = login_at;
        }
        f[n] = NULL;
        wp_sink_event(out, c->link_obj, "seat", WP_SEV_INFO, text, f);
    }
    evq_clear(c);
}

static int ami_sample(struct wp_probe *p, struct wp_sink *out)
{
    struct ami_ctx *c = p->ctx;
    double v[6];
    size_t unavail = 0;
    size_t inuse = 0;

    if ((c->link_dirty || c->snapshot) && c->link_state != NULL) {
        wp_sink_state(out, c->link_obj, "telephony_link", c->link_state, c->link_raw, NULL);
    }
    c->link_dirty = 0;
    size_t keep = 0;
    for (size_t i = 0; i < c->lines.n; i++) {
        struct ami_line *l = &c->lines.v[i];
        if (c->snapshot || l->dirty) {
            emit(c, out, l);
        }
        l->dirty = 0;
        if (l->gone) {
            /* removed from the PBX: its last state (unknown, "not listed") went out above */
            line_free(l);
            continue;
        }
        if (strcmp(l->state, "unavailable") == 0 || strcmp(l->state, "out_of_service") == 0 ||
            strcmp(l->state, "unknown") == 0) {
            unavail++;
        } else if (strcmp(l->state, "in_use") == 0 || strcmp(l->state, "busy") == 0 ||
                   strcmp(l->state, "on_hold") == 0) {
            inuse++;
        }
        c->lines.v[keep++] = *l;
    }
    if (keep != c->lines.n) {
        c->lines.idx.stale = 1; /* lines moved */
    }
    c->lines.n = keep;
    c->snapshot = 0;
    if (c->phase != PH_RESYNC) {
        emit_seats(c, out); /* during a resync they wait for its end */
    }
    v[0] = c->up ? 1.0 : 0.0;
    v[1] = c->last_msg > 0 ? now_s() - c->last_msg : NAN;
    v[2] = c->connects > 0 ? (double)(c->connects - 1) : 0.0;
    v[3] = (double)c->lines.n;
    v[4] = (double)unavail;
    v[5] = (double)inuse;
    wp_sink_metric(out, &kind_ami, p->instance, v);
    size_t paused = 0;
    for (size_t i = 0; i < c->members.n; i++) {
        paused += (size_t)(c->members.v[i].paused != 0);
    }
    v[0] = (double)(c->members.n + c->agents.n);
    v[1] = (double)paused;
    v[2] = (double)c->agent_calls;
    v[3] = c->talk_s;
    wp_sink_metric(out, &kind_seats, p->instance, v);
    return 0;
}

static void ami_destroy(struct wp_probe *p)
{
    struct ami_ctx *c = p->ctx;

    if (c == NULL) {
        return;
    }
    table_free(&c->lines);
    chans_free(&c->chans);
    members_free(&c->members);
    kv_free(&c->contacts);
    kv_free(&c->agents);
    sync_free(&c->sync);
    evq_clear(c);
    free(c->evq);
    c->evq = NULL;
    wp_ami_parser_cleanup(&c->parser);
    free(c->link_obj);
    c->link_obj = NULL;
}

const struct wp_probe_ops wp_probe_ami = {
    .name = "ami",
    .summary = "Asterisk line states, calls and seat sessions over the Manager Interface",
    .opts = ami_opts,
    .ctx_size = sizeof(struct ami_ctx),
    .flags = 0,
    .init = ami_init,
    .sample = ami_sample,
    .start = ami_start,
    .stop = ami_stop,
    .destroy = ami_destroy,
    .committed = NULL,
};
