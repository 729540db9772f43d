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
 *
 * This file has the options, the connection, login, keepalive, reconnect/backoff, message
 * dispatch and sample(); ami_proto.c the parser, ami_lines.c the lines and the resync,
 * ami_seats.c the seats (ami_int.h).
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
#include <unistd.h>

#include <uv.h>

#include "ami_int.h"
#include "probe.h"
#include "wp/clock.h"
#include "wp/err.h"
#include "wp/mem.h"

#define AMI_SECRET_MAX 512
#define AMI_STOP       (-1) /* on_msg: the connection was dropped, stop feeding */

/* ---- probe state ---- */

static const char *const list_action[L_N] = {"DeviceStateList", "ExtensionStateList", "QueueStatus",
                                             "CoreShowChannels"};

struct ami_write {
    uv_write_t req;
    size_t len;
    char data[];
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
    ami_lines_eval(c); /* every line unknown, "link lost" */
    if (c->link_state == NULL || strcmp(c->link_state, "unavailable") != 0) {
        c->link_state = "unavailable";
        c->link_raw = "link lost";
        c->link_dirty = 1;
    }
    ami_sync_clear(&c->sync); /* a partial resync is discarded */
    ami_kv_clear(&c->contacts);
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

    ami_sync_clear(&c->sync);
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
        ami_finish_resync(c);
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
        ami_table_clear(&c->lines);
        ami_chans_clear(&c->chans);
        /* agents have no list to resync from, and a restart logs them all off */
        for (size_t i = 0; i < c->agents.n; i++) {
            ami_seat_event(c, c->agents.k[i], "", NULL, NULL, "logout", NULL, c->link_up_ms, 1,
                           strtoll(c->agents.v[i], NULL, 10));
        }
        ami_kv_clear(&c->agents);
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
            ami_on_member_item(c, m);
            return 0;
        }
        if (k == L_CHAN && strcasecmp(ev, "CoreShowChannel") == 0) {
            ami_on_channel(c, ev, m, 1);
            return 0;
        }
        /* DeviceStateChange and ExtensionStatus items take the live path below */
    }
    if (strcasecmp(ev, "FullyBooted") == 0) {
        on_fully_booted(c, m);
    } else if (strcasecmp(ev, "DeviceStateChange") == 0) {
        ami_on_device_state(c, m);
    } else if (strcasecmp(ev, "ExtensionStatus") == 0) {
        ami_on_extension(c, m);
    } else if (strcasecmp(ev, "PeerStatus") == 0 || strcasecmp(ev, "ContactStatus") == 0) {
        ami_on_contact(c, ev, m);
    } else if (strcasecmp(ev, "Newchannel") == 0 || strcasecmp(ev, "Newstate") == 0 ||
               strcasecmp(ev, "NewConnectedLine") == 0 || strcasecmp(ev, "Hangup") == 0) {
        ami_on_channel(c, ev, m, 0);
    } else if (strcasecmp(ev, "QueueMemberAdded") == 0 ||
               strcasecmp(ev, "QueueMemberRemoved") == 0 ||
               strcasecmp(ev, "QueueMemberPause") == 0 ||
               strcasecmp(ev, "QueueMemberPaused") == 0 ||
               strcasecmp(ev, "QueueMemberStatus") == 0) {
        if (c->phase == PH_LIVE || c->phase == PH_RESYNC) {
            ami_on_member(c, ev, m);
        }
    } else if (strcasecmp(ev, "AgentLogin") == 0 || strcasecmp(ev, "AgentLogoff") == 0) {
        ami_on_agent(c, ev, m);
    } else if (strcasecmp(ev, "AgentConnect") == 0) {
        c->agent_calls++;
    } else if (strcasecmp(ev, "AgentComplete") == 0) {
        int64_t talk = ami_get_int(m, "TalkTime", 0);
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
            ami_line_free(l);
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
        ami_emit_seats(c, out); /* during a resync they wait for its end */
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
    ami_table_free(&c->lines);
    ami_chans_free(&c->chans);
    ami_members_free(&c->members);
    ami_kv_free(&c->contacts);
    ami_kv_free(&c->agents);
    ami_sync_free(&c->sync);
    ami_evq_clear(c);
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
