/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ami probe: follows the device (line) states of an Asterisk PBX over one Asterisk
 * Manager Interface connection kept on the agent's loop, and reports them as states.
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
 * Session: banner, Action: Login (Events: system,call,agent), then a resync with
 * DeviceStateList: the listed devices (and live DeviceStateChange events that come
 * meanwhile) are collected until the list's completion event, and only then applied to the
 * table; DeviceStateChange events follow. A Ping every ping_interval. On EOF, an error, a
 * bad message or a silent link, every line becomes unknown (raw "link lost"), the link
 * object "ami:<name>" (group telephony_link) becomes unavailable, and the probe reconnects
 * with exponential backoff and jitter (reconnect_min doubling up to reconnect_max). A
 * FullyBooted with a smaller Uptime than at the previous login means the PBX restarted: it
 * is logged and the table starts afresh. A device missing from a resync list is reported
 * once more as unknown (raw "not listed") and then forgotten.
 *
 * sample() runs on the loop: after each completed resync it emits every line (a full
 * snapshot, with the link object "available"), otherwise the lines that changed since the
 * last sample: wp_sink_state(object = device, e.g. "PJSIP/1001", group, normalised state,
 * raw Asterisk token, NULL). Series group "ami", instance <name>: up, last_message_age_s,
 * reconnects (connection attempts after the first), lines, lines_unavailable (unavailable,
 * out_of_service, unknown), lines_in_use (in_use, busy, on_hold).
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
#include <unistd.h>

#include <uv.h>

#include "probe.h"
#include "wp/err.h"
#include "wp/mem.h"

#define AMI_LINES_MAX  20000 /* devices kept; more are ignored (logged once) */
#define AMI_DEV_MAX    255   /* bytes of a device name */
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

/* ---- probe ---- */

struct ami_line {
    char *dev;
    char *raw;         /* the Asterisk token, verbatim */
    const char *state; /* normalised (static) */
    int dirty;         /* changed since the last sample */
    int gone;          /* not in the last resync list: emitted once more, then removed */
};

struct ami_table {
    struct ami_line *v;
    size_t n, cap;
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
    char list_id[32];
    double attempt_t0; /* mono s when the current attempt started */
    double last_msg;   /* mono s of the last message; 0: none yet */
    unsigned attempts; /* failed attempts since the last good resync (backoff) */
    uint64_t connects; /* attempts started */
    uint64_t rng;
    int up;
    int64_t last_uptime; /* FullyBooted Uptime at the previous login; -1: none */
    int too_many;        /* AMI_LINES_MAX hit (logged once) */

    struct ami_table lines;
    struct ami_table pending; /* the DeviceStateList being collected */
    int snapshot;             /* emit every line at the next sample */
    int link_dirty;
    const char *link_state, *link_raw;
    char *link_obj; /* "ami:<name>" */
};

static const char *const ami_fields[] = {"up",    "last_message_age_s", "reconnects",
                                         "lines", "lines_unavailable",  "lines_in_use"};
static const struct wp_series_kind kind_ami = {"ami", ami_fields, 6, WP_DS_GAUGE};

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

/* ---- the line table ---- */

static struct ami_line *table_find(struct ami_table *t, const char *dev)
{
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->v[i].dev, dev) == 0) {
            return &t->v[i];
        }
    }
    return NULL;
}

static void table_clear(struct ami_table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].dev);
        free(t->v[i].raw);
    }
    t->n = 0;
}

static void table_free(struct ami_table *t)
{
    table_clear(t);
    free(t->v);
    t->v = NULL;
    t->cap = 0;
}

/* Set dev's raw state (adding the line); state NULL: normalise raw. Marks it dirty when the
 * raw state changed. */
static void table_set(struct ami_ctx *c, struct ami_table *t, const char *dev, const char *raw,
                      const char *state)
{
    struct ami_line *l = table_find(t, dev);

    if (l == NULL) {
        if (strlen(dev) > AMI_DEV_MAX || dev[0] == '\0') {
            return;
        }
        if (t->n >= AMI_LINES_MAX) {
            if (!c->too_many) {
                c->too_many = 1;
                WP_PLOG(c->p, WP_LOG_WARN, "more than %d devices: the rest are ignored",
                        AMI_LINES_MAX);
            }
            return;
        }
        if (t->n == t->cap) {
            t->cap = t->cap != 0 ? t->cap * 2 : 64;
            t->v = wp_xrealloc(t->v, t->cap * sizeof(*t->v));
        }
        l = &t->v[t->n++];
        l->dev = wp_xstrdup(dev);
        l->raw = wp_xstrdup(raw);
        l->state = state != NULL ? state : normalise(raw);
        l->dirty = 1;
        l->gone = 0;
        return;
    }
    if (state == NULL) {
        l->gone = 0; /* a real state from the PBX: the device exists */
    }
    if (strcmp(l->raw, raw) != 0) {
        free(l->raw);
        l->raw = wp_xstrdup(raw);
        l->state = state != NULL ? state : normalise(raw);
        l->dirty = 1;
    }
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
    for (size_t i = 0; i < c->lines.n; i++) {
        table_set(c, &c->lines, c->lines.v[i].dev, "link lost", "unknown");
    }
    if (c->link_state == NULL || strcmp(c->link_state, "unavailable") != 0) {
        c->link_state = "unavailable";
        c->link_raw = "link lost";
        c->link_dirty = 1;
    }
    table_clear(&c->pending);
    c->up = 0;
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

static int send_list(struct ami_ctx *c)
{
    next_id(c, c->list_id, sizeof(c->list_id));
    table_clear(&c->pending);
    return send_action(c, "Action: DeviceStateList\r\nActionID: %s\r\n", c->list_id);
}

/* The resync list is complete: apply it. */
static void finish_resync(struct ami_ctx *c)
{
    size_t missing = 0;

    for (size_t i = 0; i < c->pending.n; i++) {
        table_set(c, &c->lines, c->pending.v[i].dev, c->pending.v[i].raw, NULL);
    }
    for (size_t i = 0; i < c->lines.n; i++) {
        if (table_find(&c->pending, c->lines.v[i].dev) == NULL) {
            table_set(c, &c->lines, c->lines.v[i].dev, "not listed", "unknown");
            c->lines.v[i].gone = 1;
            missing++;
        }
    }
    table_clear(&c->pending);
    c->phase = PH_LIVE;
    c->up = 1;
    c->attempts = 0;
    c->snapshot = 1;
    c->link_state = "available";
    c->link_raw = "connected";
    c->link_dirty = 1;
    WP_PLOG(c->p, WP_LOG_INFO, "resync done: %zu lines (%zu not listed)", c->lines.n, missing);
}

static int on_response(struct ami_ctx *c, const struct wp_ami_msg *m, const char *resp,
                       const char *aid)
{
    const char *msg = wp_ami_get(m, "Message");
    char why[160];

    if (aid == NULL) {
        return 0;
    }
    if (c->phase == PH_LOGIN && strcmp(aid, c->login_id) == 0) {
        if (strcasecmp(resp, "Success") != 0) {
            snprintf(why, sizeof(why), "login refused: %.100s", msg != NULL ? msg : resp);
            drop(c, why);
            return AMI_STOP;
        }
        if (send_list(c) < 0) {
            drop(c, "cannot send DeviceStateList");
            return AMI_STOP;
        }
        c->phase = PH_RESYNC;
        return 0;
    }
    if (c->phase == PH_RESYNC && strcmp(aid, c->list_id) == 0 && strcasecmp(resp, "Success") != 0) {
        snprintf(why, sizeof(why), "DeviceStateList refused: %.100s", msg != NULL ? msg : resp);
        drop(c, why);
        return AMI_STOP;
    }
    return 0; /* Ping answers and the list's own start */
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
    }
    c->last_uptime = up;
}

static int on_event(struct ami_ctx *c, const struct wp_ami_msg *m, const char *ev, const char *aid)
{
    if (strcasecmp(ev, "FullyBooted") == 0) {
        on_fully_booted(c, m);
        return 0;
    }
    if (strcasecmp(ev, "DeviceStateChange") == 0) {
        const char *dev = wp_ami_get(m, "Device");
        const char *st = wp_ami_get(m, "State");
        if (dev == NULL || st == NULL) {
            return 0;
        }
        if (c->phase == PH_RESYNC) {
            table_set(c, &c->pending, dev, st, NULL); /* list items and live changes alike */
        } else if (c->phase == PH_LIVE) {
            table_set(c, &c->lines, dev, st, NULL);
        }
        return 0;
    }
    if (c->phase == PH_RESYNC && aid != NULL && strcmp(aid, c->list_id) == 0) {
        const char *el = wp_ami_get(m, "EventList");
        if (el != NULL && strcasecmp(el, "Complete") == 0) {
            finish_resync(c);
        } else if (el != NULL && strcasecmp(el, "cancelled") == 0) {
            drop(c, "DeviceStateList cancelled");
            return AMI_STOP;
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
    wp_sink_state(out, l->dev, c->group, l->state, l->raw, NULL);
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
            free(l->dev);
            free(l->raw);
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
    c->lines.n = keep;
    c->snapshot = 0;
    v[0] = c->up ? 1.0 : 0.0;
    v[1] = c->last_msg > 0 ? now_s() - c->last_msg : NAN;
    v[2] = c->connects > 0 ? (double)(c->connects - 1) : 0.0;
    v[3] = (double)c->lines.n;
    v[4] = (double)unavail;
    v[5] = (double)inuse;
    wp_sink_metric(out, &kind_ami, p->instance, v);
    return 0;
}

static void ami_destroy(struct wp_probe *p)
{
    struct ami_ctx *c = p->ctx;

    if (c == NULL) {
        return;
    }
    table_free(&c->lines);
    table_free(&c->pending);
    wp_ami_parser_cleanup(&c->parser);
    free(c->link_obj);
    c->link_obj = NULL;
}

const struct wp_probe_ops wp_probe_ami = {
    .name = "ami",
    .summary = "Asterisk line (device) states over the Manager Interface",
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
