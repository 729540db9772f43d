/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sipcall probe: a SIP test call (to the hotline, an IVR, any number) on a schedule, from
 * a minimal UAC over UDP on the agent's loop, with the audio of the answer checked for dead
 * air.
 *
 * Config:
 *   - kind: sipcall
 *     name: hotline
 *     interval: 60s             # how often finished calls are reported
 *     group: hotline            # state group of the targets (default sip)
 *     from_user: watchpost
 *     targets:
 *       - name: hotline         # series instance, state object, check sipcall_<name>
 *         uri: "sip:4000@10.1.2.3:5060"   # or host, port and user
 *         auth_user: probe      # digest auth (401/407), with the password's file
 *         password_file: /etc/watchpost/sipcall.pass
 *         interval: 5m          # one call every 5 minutes (default: the probe's interval)
 *         timeout: 30s          # no final answer after this long: CANCEL, no_answer
 *         dead_air: 5s          # longest silence after the answer that is still fine
 *         listen: 8s            # listen this long after the answer, then BYE
 *         slow_answer: 20s      # answered later than this: WARNING (0: off)
 *         forward_to: "8002"    # the call must reach this user ...
 *         forward_within: 25s   # ... this soon after the INVITE
 *
 * A call: INVITE with an SDP offer (PCMU and PCMA, our RTP port on its own UDP socket),
 * retransmitted per RFC 3261 timer A (T1 500 ms, doubling) until the first response; with no
 * response at all after min(timeout, timer B = 32 s) the target is unreachable. 401/407 is
 * answered once with MD5 digest (qop=auth with nc and cnonce when offered); a 3xx is followed
 * to its Contact (at most 3 times); 486/600 is busy, any other final >= 300 rejected; every
 * non-2xx final is ACKed. A 2xx is ACKed (route set from Record-Route), then the probe
 * listens for `listen`, decodes G.711 RTP (mu-law, A-law) and measures the longest stretch
 * without audible audio (RMS under SC_SILENCE_RMS, or no packet) from the answer to the end of
 * listening; then BYE (retransmitted with timer E up to 4 s, given up after 4 s). At the
 * timeout after a provisional response the INVITE is CANCELled and the 487 ACKed.
 *
 * Times (from the first INVITE): first 100, post-dial delay (first 18x), answer (2xx); first
 * RTP after the answer. Per finished call (emitted at the next sample): series group
 * "sipcall", instance <name>: trying_s, pdd_s, answer_s, first_rtp_s, silence_max_s, sip_code,
 * answered, dead_air (NaN when unknown). A check sipcall_<name>: OK answered with audio;
 * WARNING dead air, slow answer or busy; CRITICAL no answer, unreachable, rejected, forward
 * missed. A state for object <name> in the group: idle when answered well, else unavailable;
 * raw "<code> <reason>, <outcome>"; info host:port; sent first and on changes.
 *
 * Responses are parsed with libosip2 (sip_util.c) and matched on Call-ID, CSeq and the Via
 * branch. Names resolve with uv_getaddrinfo. The password is never logged and is wiped
 * when the probe is freed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "probe.h"
#include "sip_util.h"
#include "wp/err.h"
#include "wp/mem.h"

#define SC_NAME_MAX      64
#define SC_TARGETS_MAX   100
#define SC_DGRAM_MAX     8192 /* larger SIP datagrams are ignored */
#define SC_RTP_MAX       2048
#define SC_T1_MS         500
#define SC_T2_MS         4000
#define SC_TIMER_B_MS    (64 * SC_T1_MS)
#define SC_BYE_WAIT_MS   4000 /* BYE or CANCEL: wait this long for the answer */
#define SC_REDIRECTS_MAX 3
#define SC_SILENCE_RMS   200.0 /* about -44 dBov: quieter counts as silence */
#define SC_PASS_MAX      256

enum sc_phase {
    PH_RESOLVE = 1, /* waiting for uv_getaddrinfo */
    PH_INVITE,      /* INVITE sent, no final answer yet */
    PH_CANCEL,      /* timed out: CANCEL sent, waiting for the 487 */
    PH_LISTEN,      /* answered and ACKed: taking in RTP */
    PH_BYE,         /* BYE sent */
    PH_DONE,        /* handles closing */
};

enum sc_outcome {
    OUT_NONE = 0,
    OUT_ANSWERED,
    OUT_BUSY,
    OUT_REJECTED,
    OUT_NO_ANSWER,
    OUT_UNREACHABLE,
};

static const char *const outcome_names[] = {"error",    "answered",  "busy",
                                            "rejected", "no_answer", "unreachable"};

/* The result of one finished call, kept until the next sample. */
struct sc_result {
    enum sc_outcome outcome;
    int code;
    char reason[64];
    double trying_s, pdd_s, answer_s, first_rtp_s, silence_max_s;
    int dead_air;
    int forward;      /* 0 not asked, 1 reached in time, -1 missed */
    double forward_s; /* when it was reached, NaN when not */
    char answered_by[WP_SIP_TOKEN_MAX];
    char error[160]; /* why the call could not be made, "" */
    unsigned rtp_packets;
};

struct sc_call;
struct sc_ctx;

struct sc_target {
    /* options */
    char *name;
    char *uri;
    char *host;
    int64_t port;
    char *user;
    char *auth_user;
    char *password_file;
    int64_t every_ms;
    int64_t timeout_ms;
    int64_t dead_air_ms;
    int64_t listen_ms;
    int64_t slow_ms;
    char *forward_to;
    int64_t forward_within_ms;

    /* derived at init */
    char *check; /* "sipcall_<name>" */
    char *where; /* "host:port" */
    char *ruri;  /* the Request-URI and To */
    char *dhost; /* where to send (the URI's host or host) */
    int dport;
    char password[SC_PASS_MAX];
    int has_password;

    /* running */
    struct sc_ctx *c;
    uv_timer_t sched;
    int sched_open;
    struct sc_call *call;
    int have_result;
    struct sc_result res;
    int reported;
    char reported_state[16];
    char reported_raw[128];
};

struct sc_targets {
    struct sc_target *v;
    size_t n;
};

struct sc_ctx {
    struct sc_targets targets;
    char *group;
    char *from_user;
    struct wp_probe *p;
    uv_loop_t *loop;
    int started;
    int stopping;
};

struct sc_call {
    struct sc_target *t;
    struct sc_ctx *c;
    uv_getaddrinfo_t gai;
    uv_udp_t sip;
    uv_udp_t rtp;
    uv_timer_t deadline; /* timeout, listen end, BYE wait */
    uv_timer_t tx;       /* retransmissions */
    int nopen;           /* handles not yet closed */
    int gai_pending;
    int socks_open;
    enum sc_phase phase;

    struct sockaddr_storage dst; /* the next hop */
    socklen_t dstlen;
    char me[INET6_ADDRSTRLEN + 2];
    unsigned sip_port, rtp_port;
    char call_id[64];
    char from_tag[24];
    char branch[40]; /* of the current INVITE (or CANCEL) transaction, without z9hG4bK */
    char bye_branch[40];
    char ruri[WP_SIP_URI_MAX];
    uint32_t cseq;   /* of the current INVITE */
    char auth[1024]; /* Authorization header line for the current INVITE, "" */
    char req[4096];  /* the request being retransmitted */
    size_t req_len;
    uint64_t tx_ms;

    /* dialog, after a 2xx */
    char to_tag[WP_SIP_TOKEN_MAX];
    char remote_target[WP_SIP_URI_MAX];
    char route[WP_SIP_ROUTE_MAX];

    uint64_t t0, t_100, t_18x, t_answer, t_rtp, t_last_audio, t_forward;
    int got_response;
    int auth_tried;
    int redirects;
    int redirected_to_fwd; /* following a 3xx whose Contact user is forward_to */
    struct sc_result res;

    char sipbuf[SC_DGRAM_MAX + 1];
    uint8_t rtpbuf[SC_RTP_MAX];
};

static int check_target(struct wp_conf_doc *doc, struct wp_conf_node *it, const char *path,
                        void *item, struct wp_conf_err *err);
static void free_target(void *item);

#define TGT(f) offsetof(struct sc_target, f)

static const struct wp_opt target_opts[] = {
    {.name = "name",
     .type = WP_OPT_STR,
     .help = "target name: the series instance, the state object and the check sipcall_<name>",
     .offset = TGT(name),
     .required = 1},
    {.name = "uri",
     .type = WP_OPT_STR,
     .help = "SIP URI to call, sip:user@host[:port] (instead of host, port and user)",
     .offset = TGT(uri)},
    {.name = "host",
     .type = WP_OPT_STR,
     .help = "host name or IP address of the PBX, SBC or phone",
     .offset = TGT(host)},
    {.name = "port",
     .type = WP_OPT_INT,
     .def = "5060",
     .help = "SIP UDP port",
     .offset = TGT(port),
     .min = 1,
     .max = 65535},
    {.name = "user",
     .type = WP_OPT_STR,
     .help = "the number or user to call (user part of the Request-URI)",
     .offset = TGT(user)},
    {.name = "auth_user",
     .type = WP_OPT_STR,
     .help = "digest user name for 401/407 challenges (needs password_file)",
     .offset = TGT(auth_user)},
    {.name = "password_file",
     .type = WP_OPT_STR,
     .help = "file whose first line is the digest password (never logged)",
     .offset = TGT(password_file)},
    {.name = "interval",
     .type = WP_OPT_DURATION,
     .def = "0",
     .help = "time between calls (default: the probe's interval)",
     .offset = TGT(every_ms),
     .min = 0,
     .max = 86400000},
    {.name = "timeout",
     .type = WP_OPT_DURATION,
     .def = "30s",
     .help = "no final answer this long after the INVITE: CANCEL, outcome no_answer",
     .offset = TGT(timeout_ms),
     .min = 500,
     .max = 300000},
    {.name = "dead_air",
     .type = WP_OPT_DURATION,
     .def = "5s",
     .help = "longest silence (or missing RTP) after the answer that is still fine",
     .offset = TGT(dead_air_ms),
     .min = 100,
     .max = 600000},
    {.name = "listen",
     .type = WP_OPT_DURATION,
     .def = "8s",
     .help = "how long to listen after the answer before the BYE",
     .offset = TGT(listen_ms),
     .min = 0,
     .max = 600000},
    {.name = "slow_answer",
     .type = WP_OPT_DURATION,
     .def = "0",
     .help = "answered later than this after the INVITE: WARNING (0: off)",
     .offset = TGT(slow_ms),
     .min = 0,
     .max = 300000},
    {.name = "forward_to",
     .type = WP_OPT_STR,
     .help = "user (number) the call must reach: a followed 3xx Contact or the answer's "
             "Contact or To user",
     .offset = TGT(forward_to)},
    {.name = "forward_within",
     .type = WP_OPT_DURATION,
     .def = "30s",
     .help = "the forward target must ring or answer this soon after the INVITE",
     .offset = TGT(forward_within_ms),
     .min = 100,
     .max = 300000},
    WP_OPT_TABLE_END,
};

static const struct wp_probe_targets_spec targets_spec = {
    .example = "[{name: hotline, uri: \"sip:4000@10.1.2.3\"}]",
    .opts = target_opts,
    .size = sizeof(struct sc_target),
    .name_off = TGT(name),
    .name_max = SC_NAME_MAX,
    .max = SC_TARGETS_MAX,
    .check = check_target,
    .item_free = free_target,
};

#define CO(f) offsetof(struct sc_ctx, f)

static const struct wp_opt sc_opts[] = {
    {.name = "targets",
     .type = WP_OPT_CUSTOM,
     .help = "numbers to call: [{name, uri | host, port, user, auth_user, password_file, "
             "interval, timeout, dead_air, listen, slow_answer, forward_to, forward_within}]",
     .offset = CO(targets),
     .required = 1,
     .custom = wp_probe_targets_decode,
     .custom_free = wp_probe_targets_free,
     .arg = &targets_spec},
    {.name = "group",
     .type = WP_OPT_STR,
     .def = "sip",
     .help = "state group of the targets (a hotline, a queue)",
     .offset = CO(group)},
    {.name = "from_user",
     .type = WP_OPT_STR,
     .def = "watchpost",
     .help = "user part of the From and Contact URIs",
     .offset = CO(from_user)},
    WP_OPT_TABLE_END,
};

static const char *const sc_fields[] = {"trying_s",      "pdd_s",    "answer_s", "first_rtp_s",
                                        "silence_max_s", "sip_code", "answered", "dead_air"};
static const struct wp_series_kind kind_sc = {"sipcall", sc_fields, 8, WP_DS_GAUGE};

/* ---- config ---- */

/* Letters, digits and '.', '-', ':' (IPv6), at most 253: it goes into SIP headers. */
static int host_ok(const char *h)
{
    size_t n = h != NULL ? strlen(h) : 0;

    if (n == 0 || n > 253) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = h[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '-' || ch == ':')) {
            return 0;
        }
    }
    return 1;
}

/* A SIP user part we put in headers: 1..64 of [A-Za-z0-9._-+*#]. */
static int user_ok(const char *u)
{
    size_t n = u != NULL ? strlen(u) : 0;

    if (n == 0 || n > SC_NAME_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = u[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '-' || ch == '_' || ch == '+' || ch == '*' || ch == '#')) {
            return 0;
        }
    }
    return 1;
}

/* uri "sip:[user@]host[:port]" (no parameters): user, host, port into t. 0 or -1. */
static int split_uri(struct sc_target *t)
{
    const char *s = t->uri;
    const char *at = NULL;
    const char *hp = NULL;
    const char *colon = NULL;
    char host[256];
    size_t hl = 0;

    if (strncmp(s, "sip:", 4) != 0) {
        return -1;
    }
    s += 4;
    at = strchr(s, '@');
    if (at != NULL) {
        free(t->user);
        t->user = wp_xstrndup(s, (size_t)(at - s));
        if (!user_ok(t->user)) {
            return -1;
        }
        s = at + 1;
    }
    hp = s;
    if (*hp == '[') { /* [v6]:port */
        const char *e = strchr(hp, ']');
        if (e == NULL) {
            return -1;
        }
        hl = (size_t)(e - hp - 1);
        if (hl == 0 || hl >= sizeof(host)) {
            return -1;
        }
        memcpy(host, hp + 1, hl);
        colon = e[1] == ':' ? e + 1 : NULL;
        if (e[1] != '\0' && e[1] != ':') {
            return -1;
        }
    } else {
        colon = strchr(hp, ':');
        hl = colon != NULL ? (size_t)(colon - hp) : strlen(hp);
        if (hl == 0 || hl >= sizeof(host)) {
            return -1;
        }
        memcpy(host, hp, hl);
    }
    host[hl] = '\0';
    if (!host_ok(host)) {
        return -1;
    }
    if (colon != NULL) {
        char *end = NULL;
        long port = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || *end != '\0' || port < 1 || port > 65535) {
            return -1;
        }
        t->port = port;
    }
    free(t->host);
    t->host = wp_xstrdup(host);
    return 0;
}

static int check_target(struct wp_conf_doc *doc, struct wp_conf_node *it, const char *path,
                        void *item, struct wp_conf_err *err)
{
    struct sc_target *t = item;

    if (t->uri != NULL) {
        if (t->host != NULL) {
            return wp_conf_errorf(doc, wp_probe_at_key(doc, it, "host"), err,
                                  "%s: expected uri or host, not both", path);
        }
        if (split_uri(t) < 0) {
            return wp_conf_errorf(doc, wp_probe_at_key(doc, it, "uri"), err,
                                  "%s.uri: expected sip:user@host[:port], got \"%s\"", path,
                                  t->uri);
        }
    } else if (t->host == NULL) {
        return wp_conf_errorf(doc, it, err, "%s: expected uri or host", path);
    } else if (!host_ok(t->host)) {
        return wp_conf_errorf(doc, wp_probe_at_key(doc, it, "host"), err,
                              "%s.host: expected a host name or an IP address", path);
    }
    if (t->user != NULL && !user_ok(t->user)) {
        return wp_conf_errorf(doc, wp_probe_at_key(doc, it, "user"), err,
                              "%s.user: expected 1 to %d of letters, digits and ._-+*#", path,
                              SC_NAME_MAX);
    }
    if (t->forward_to != NULL && !user_ok(t->forward_to)) {
        return wp_conf_errorf(doc, wp_probe_at_key(doc, it, "forward_to"), err,
                              "%s.forward_to: expected 1 to %d of letters, digits and ._-+*#", path,
                              SC_NAME_MAX);
    }
    if ((t->auth_user == NULL) != (t->password_file == NULL)) {
        return wp_conf_errorf(doc, it, err, "%s: expected auth_user and password_file together",
                              path);
    }
    if (t->auth_user != NULL && !user_ok(t->auth_user)) {
        return wp_conf_errorf(doc, wp_probe_at_key(doc, it, "auth_user"), err,
                              "%s.auth_user: expected 1 to %d of letters, digits and ._-+*#", path,
                              SC_NAME_MAX);
    }
    t->check = wp_xasprintf("sipcall_%s", t->name);
    t->where = wp_probe_hostport(t->host, t->port);
    t->ruri = wp_xasprintf("sip:%s%s%s", t->user != NULL ? t->user : "", t->user != NULL ? "@" : "",
                           t->where);
    t->dhost = wp_xstrdup(t->host);
    t->dport = (int)t->port;
    return 0;
}

static void free_target(void *item)
{
    struct sc_target *t = item;

    free(t->check);
    free(t->where);
    free(t->ruri);
    free(t->dhost);
    explicit_bzero(t->password, sizeof(t->password));
}

/* ---- helpers ---- */

static uint64_t now_ns(void)
{
    return uv_hrtime();
}

static double since_s(uint64_t t0, uint64_t t)
{
    return t == 0 || t < t0 ? NAN : (double)(t - t0) / 1e9;
}

/* ---- call lifetime ---- */

static void call_finish(struct sc_call *k);
static void start_resolve(struct sc_call *k, const char *host, int port);

static void call_free_if_closed(struct sc_call *k)
{
    if (k->nopen > 0 || k->gai_pending) {
        return;
    }
    if (k->t->call == k) {
        k->t->call = NULL;
    }
    free(k);
}

static void on_closed(uv_handle_t *h)
{
    struct sc_call *k = h->data;

    k->nopen--;
    call_free_if_closed(k);
}

static void close_handles(struct sc_call *k)
{
    uv_handle_t *hs[] = {(uv_handle_t *)&k->deadline, (uv_handle_t *)&k->tx, (uv_handle_t *)&k->sip,
                         (uv_handle_t *)&k->rtp};
    size_t n = k->socks_open ? 4 : 2;

    for (size_t i = 0; i < n; i++) {
        if (!uv_is_closing(hs[i])) {
            uv_close(hs[i], on_closed);
        }
    }
    k->socks_open = 0;
    if (k->gai_pending) {
        uv_cancel((uv_req_t *)&k->gai);
    }
}

/* Send buf to the next hop (to when not NULL); a lost datagram is covered by retransmission
 * or by the outcome. */
static void send_dgram(struct sc_call *k, const char *buf, size_t len, const struct sockaddr *to)
{
    uv_buf_t b = uv_buf_init((char *)(uintptr_t)buf, (unsigned)len);
    int rc = uv_udp_try_send(&k->sip, &b, 1, to != NULL ? to : (const struct sockaddr *)&k->dst);

    if (rc < 0) {
        WP_PLOG(k->c->p, WP_LOG_DEBUG, "%s: send: %s", k->t->name, uv_strerror(rc));
    }
}

/* ---- requests ---- */

static size_t build_invite(struct sc_call *k)
{
    char sdp[512];
    int sl = 0;
    int n = 0;
    const char *ip4 = k->me[0] == '[' ? "IP6" : "IP4";
    char addr[INET6_ADDRSTRLEN + 2];

    snprintf(addr, sizeof(addr), "%s", k->me);
    if (addr[0] == '[') { /* SDP wants the bare IPv6 address */
        memmove(addr, addr + 1, strlen(addr));
        addr[strcspn(addr, "]")] = '\0';
    }
    sl = snprintf(sdp, sizeof(sdp),
                  "v=0\r\n"
                  "o=watchpost %s 1 IN %s %s\r\n"
                  "s=watchpost\r\n"
                  "c=IN %s %s\r\n"
                  "t=0 0\r\n"
                  "m=audio %u RTP/AVP 0 8\r\n"
                  "a=rtpmap:0 PCMU/8000\r\n"
                  "a=rtpmap:8 PCMA/8000\r\n"
                  "a=ptime:20\r\n"
                  "a=sendrecv\r\n",
                  k->from_tag, ip4, addr, ip4, addr, k->rtp_port);
    if (sl < 0 || (size_t)sl >= sizeof(sdp)) {
        return 0;
    }
    n = snprintf(k->req, sizeof(k->req),
                 "INVITE %s SIP/2.0\r\n"
                 "Via: SIP/2.0/UDP %s:%u;branch=z9hG4bK%s;rport\r\n"
                 "Max-Forwards: 70\r\n"
                 "From: <sip:%s@%s>;tag=%s\r\n"
                 "To: <%s>\r\n"
                 "Call-ID: %s\r\n"
                 "CSeq: %u INVITE\r\n"
                 "Contact: <sip:%s@%s:%u>\r\n"
                 "%s"
                 "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n"
                 "User-Agent: watchpost\r\n"
                 "Content-Type: application/sdp\r\n"
                 "Content-Length: %d\r\n"
                 "\r\n"
                 "%s",
                 k->ruri, k->me, k->sip_port, k->branch, k->c->from_user, k->me, k->from_tag,
                 k->t->ruri, k->call_id, (unsigned)k->cseq, k->c->from_user, k->me, k->sip_port,
                 k->auth, sl, sdp);
    if (n < 0 || (size_t)n >= sizeof(k->req)) {
        return 0;
    }
    k->req_len = (size_t)n;
    return (size_t)n;
}

/* ACK for a non-2xx final answer (same transaction) or CANCEL of the current INVITE. */
static void send_in_txn(struct sc_call *k, const char *method, const char *to_tag)
{
    char buf[2048];
    int n = snprintf(buf, sizeof(buf),
                     "%s %s SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP %s:%u;branch=z9hG4bK%s;rport\r\n"
                     "Max-Forwards: 70\r\n"
                     "From: <sip:%s@%s>;tag=%s\r\n"
                     "To: <%s>%s%s\r\n"
                     "Call-ID: %s\r\n"
                     "CSeq: %u %s\r\n"
                     "User-Agent: watchpost\r\n"
                     "Content-Length: 0\r\n"
                     "\r\n",
                     method, k->ruri, k->me, k->sip_port, k->branch, k->c->from_user, k->me,
                     k->from_tag, k->t->ruri, to_tag[0] != '\0' ? ";tag=" : "", to_tag, k->call_id,
                     (unsigned)k->cseq, method);

    if (n > 0 && (size_t)n < sizeof(buf)) {
        send_dgram(k, buf, (size_t)n, NULL);
        if (strcmp(method, "CANCEL") == 0) {
            memcpy(k->req, buf, (size_t)n);
            k->req_len = (size_t)n;
        }
    }
}

/* Where in-dialog requests go: the next hop when there is a route set, else the remote
 * target's address when it is a numeric IP of our family. */
static void dialog_dest(struct sc_call *k, struct sockaddr_storage *to)
{
    char host[WP_SIP_URI_MAX];
    int port = 5060;
    const char *s = k->remote_target;
    const char *at = NULL;
    size_t hl = 0;

    *to = k->dst;
    if (k->route[0] != '\0' || strncmp(s, "sip:", 4) != 0) {
        return;
    }
    s += 4;
    at = strchr(s, '@');
    if (at != NULL) {
        s = at + 1;
    }
    hl = strcspn(s, ":;>");
    if (hl == 0 || hl >= sizeof(host)) {
        return;
    }
    memcpy(host, s, hl);
    host[hl] = '\0';
    if (s[hl] == ':') {
        port = atoi(s + hl + 1);
        if (port < 1 || port > 65535) {
            return;
        }
    }
    if (k->dst.ss_family == AF_INET) {
        struct sockaddr_in a;
        memset(&a, 0, sizeof(a));
        if (inet_pton(AF_INET, host, &a.sin_addr) == 1) {
            a.sin_family = AF_INET;
            a.sin_port = htons((uint16_t)port);
            memcpy(to, &a, sizeof(a));
        }
    }
}

/* ACK for a 2xx, or BYE: a new transaction in the dialog. */
static void send_in_dialog(struct sc_call *k, const char *method, uint32_t cseq, const char *branch)
{
    struct sockaddr_storage to;
    char route[WP_SIP_ROUTE_MAX + 16] = "";
    int n = 0;

    if (k->route[0] != '\0') {
        snprintf(route, sizeof(route), "Route: %s\r\n", k->route);
    }
    n = snprintf(k->req, sizeof(k->req),
                 "%s %s SIP/2.0\r\n"
                 "Via: SIP/2.0/UDP %s:%u;branch=z9hG4bK%s;rport\r\n"
                 "Max-Forwards: 70\r\n"
                 "%s"
                 "From: <sip:%s@%s>;tag=%s\r\n"
                 "To: <%s>;tag=%s\r\n"
                 "Call-ID: %s\r\n"
                 "CSeq: %u %s\r\n"
                 "User-Agent: watchpost\r\n"
                 "Content-Length: 0\r\n"
                 "\r\n",
                 method, k->remote_target[0] != '\0' ? k->remote_target : k->ruri, k->me,
                 k->sip_port, branch, route, k->c->from_user, k->me, k->from_tag, k->t->ruri,
                 k->to_tag, k->call_id, (unsigned)cseq, method);
    if (n < 0 || (size_t)n >= sizeof(k->req)) {
        k->req_len = 0;
        return;
    }
    k->req_len = (size_t)n;
    dialog_dest(k, &to);
    send_dgram(k, k->req, k->req_len, (const struct sockaddr *)&to);
}

/* ---- timers ---- */

static void on_tx(uv_timer_t *h)
{
    struct sc_call *k = h->data;
    struct sockaddr_storage to;

    if (k->req_len == 0) {
        return;
    }
    if (k->phase == PH_INVITE && !k->got_response) {
        send_dgram(k, k->req, k->req_len, NULL);
        k->tx_ms *= 2; /* timer A doubles without a cap */
    } else if (k->phase == PH_BYE) {
        dialog_dest(k, &to);
        send_dgram(k, k->req, k->req_len, (const struct sockaddr *)&to);
        k->tx_ms = k->tx_ms * 2 > SC_T2_MS ? SC_T2_MS : k->tx_ms * 2; /* timer E */
    } else if (k->phase == PH_CANCEL) {
        send_dgram(k, k->req, k->req_len, NULL);
        k->tx_ms = k->tx_ms * 2 > SC_T2_MS ? SC_T2_MS : k->tx_ms * 2;
    } else {
        return;
    }
    uv_timer_start(&k->tx, on_tx, k->tx_ms, 0);
}

static void arm_tx(struct sc_call *k)
{
    k->tx_ms = SC_T1_MS;
    uv_timer_start(&k->tx, on_tx, k->tx_ms, 0);
}

static void send_bye(struct sc_call *k);

static void on_deadline(uv_timer_t *h)
{
    struct sc_call *k = h->data;
    uint64_t now = now_ns();

    switch (k->phase) {
    case PH_INVITE:
        if (!k->got_response) {
            k->res.outcome = OUT_UNREACHABLE;
            call_finish(k);
        } else if ((now - k->t0) / 1000000 + 5 < (uint64_t)k->t->timeout_ms) {
            /* timer B fired first but there was an answer: wait for the timeout */
            uv_timer_start(&k->deadline, on_deadline,
                           (uint64_t)k->t->timeout_ms - (now - k->t0) / 1000000, 0);
        } else {
            k->res.outcome = OUT_NO_ANSWER;
            k->phase = PH_CANCEL;
            send_in_txn(k, "CANCEL", "");
            arm_tx(k);
            uv_timer_start(&k->deadline, on_deadline, SC_BYE_WAIT_MS, 0);
        }
        break;
    case PH_LISTEN:
        send_bye(k);
        break;
    case PH_CANCEL:
    case PH_BYE:
        call_finish(k); /* no answer to the CANCEL or BYE: give up */
        break;
    case PH_RESOLVE:
        if (k->t0 == 0) {
            snprintf(k->res.error, sizeof(k->res.error), "cannot resolve %s in %g s", k->t->dhost,
                     (double)k->t->timeout_ms / 1000.0);
        } else {
            k->res.outcome = OUT_NO_ANSWER; /* a redirect target that does not resolve */
        }
        call_finish(k);
        break;
    default:
        break;
    }
}

static void send_bye(struct sc_call *k)
{
    uint64_t now = now_ns();
    double gap = since_s(k->t_last_audio, now);

    if (k->phase == PH_LISTEN) {
        if (!isnan(gap) && (isnan(k->res.silence_max_s) || gap > k->res.silence_max_s)) {
            k->res.silence_max_s = gap;
        }
    }
    k->phase = PH_BYE;
    wp_sip_rand_hex(k->bye_branch, 10);
    send_in_dialog(k, "BYE", k->cseq + 1, k->bye_branch);
    arm_tx(k);
    uv_timer_start(&k->deadline, on_deadline, SC_BYE_WAIT_MS, 0);
}

/* ---- responses ---- */

static void note_forward(struct sc_call *k, const struct wp_sip_resp *r, uint64_t now)
{
    const char *fwd = k->t->forward_to;

    if (fwd == NULL || k->t_forward != 0) {
        return;
    }
    if (k->redirected_to_fwd && r->code > 100 && r->code < 300) {
        k->t_forward = now; /* the redirect target rings or answers */
    } else if (r->code >= 200 && r->code < 300 &&
               (strcmp(r->contact_user, fwd) == 0 || strcmp(r->to_user, fwd) == 0)) {
        k->t_forward = now;
    }
}

static void send_invite(struct sc_call *k)
{
    wp_sip_rand_hex(k->branch, 10);
    if (build_invite(k) == 0) {
        snprintf(k->res.error, sizeof(k->res.error), "INVITE does not fit in %zu bytes",
                 sizeof(k->req));
        call_finish(k);
        return;
    }
    k->got_response = 0;
    send_dgram(k, k->req, k->req_len, NULL);
    arm_tx(k);
}

/* A 3xx: the next INVITE goes to its Contact. 1 when followed. */
static int follow_redirect(struct sc_call *k, const struct wp_sip_resp *r)
{
    if (r->contact[0] == '\0' || r->contact_host[0] == '\0' || k->redirects >= SC_REDIRECTS_MAX ||
        strncmp(r->contact, "sip:", 4) != 0) {
        return 0;
    }
    k->redirects++;
    k->phase = PH_RESOLVE;
    snprintf(k->ruri, sizeof(k->ruri), "%s", r->contact);
    k->redirected_to_fwd =
        k->t->forward_to != NULL && strcmp(r->contact_user, k->t->forward_to) == 0;
    k->cseq++;
    k->auth[0] = '\0';
    k->auth_tried = 0;
    WP_PLOG(k->c->p, WP_LOG_DEBUG, "%s: %d redirect to %s", k->t->name, r->code, r->contact);
    start_resolve(k, r->contact_host, r->contact_port != 0 ? r->contact_port : 5060);
    return 1;
}

/* A 401/407: the INVITE again with credentials. 1 when sent. */
static int answer_challenge(struct sc_call *k, const struct wp_sip_resp *r)
{
    struct sc_target *t = k->t;
    char cnonce[17];
    char val[900];
    int rc = 0;

    if (!t->has_password || k->auth_tried || !r->ch.present) {
        return 0;
    }
    if (!r->ch.algo_ok) {
        snprintf(k->res.error, sizeof(k->res.error),
                 "digest challenge with an algorithm other "
                 "than MD5");
        return 0;
    }
    wp_sip_rand_hex(cnonce, 8);
    rc = wp_sip_digest(&r->ch, t->auth_user, t->password, "INVITE", k->ruri, cnonce, 1, val,
                       sizeof(val));
    if (rc < 0) {
        snprintf(k->res.error, sizeof(k->res.error), "cannot answer the digest challenge: %s",
                 wp_strerror(rc));
        return 0;
    }
    snprintf(k->auth, sizeof(k->auth), "%s: %s\r\n",
             r->ch.proxy ? "Proxy-Authorization" : "Authorization", val);
    explicit_bzero(val, sizeof(val));
    k->auth_tried = 1;
    k->cseq++;
    send_invite(k);
    return 1;
}

static void on_answer(struct sc_call *k, const struct wp_sip_resp *r, uint64_t now)
{
    struct wp_sdp sdp;

    snprintf(k->to_tag, sizeof(k->to_tag), "%s", r->to_tag);
    snprintf(k->remote_target, sizeof(k->remote_target), "%s", r->contact);
    snprintf(k->route, sizeof(k->route), "%s", r->route);
    wp_sip_rand_hex(k->bye_branch, 10);
    send_in_dialog(k, "ACK", k->cseq, k->bye_branch);
    uv_timer_stop(&k->tx);
    if (k->phase == PH_CANCEL) {
        send_bye(k); /* answered while we cancelled: hang up, the outcome stays no_answer */
        return;
    }
    k->t_answer = now;
    k->t_last_audio = now;
    k->res.outcome = OUT_ANSWERED;
    k->res.code = r->code;
    snprintf(k->res.reason, sizeof(k->res.reason), "%s", r->reason);
    snprintf(k->res.answered_by, sizeof(k->res.answered_by), "%s",
             r->contact_user[0] != '\0' ? r->contact_user : r->to_user);
    if (r->has_sdp && wp_sdp_parse(r->body, r->body_len, &sdp) == 0) {
        if (sdp.port == 0 || (sdp.pt != 0 && sdp.pt != 8)) {
            WP_PLOG(k->c->p, WP_LOG_DEBUG, "%s: answer SDP port %d payload %d", k->t->name,
                    sdp.port, sdp.pt);
        }
    }
    k->phase = PH_LISTEN;
    uv_timer_start(&k->deadline, on_deadline, (uint64_t)k->t->listen_ms, 0);
}

static void on_invite_response(struct sc_call *k, const struct wp_sip_resp *r, uint64_t now)
{
    int code = r->code;

    if (r->cseq != k->cseq) {
        return; /* an earlier INVITE's (challenged, redirected) */
    }
    if (code >= 200 && code < 300) {
        if (k->phase != PH_INVITE && k->phase != PH_CANCEL && k->phase != PH_LISTEN &&
            k->phase != PH_BYE) {
            return;
        }
        if (k->phase == PH_LISTEN || k->phase == PH_BYE) {
            if (strcmp(r->to_tag, k->to_tag) == 0 && k->phase == PH_LISTEN) {
                /* a retransmitted 2xx: our ACK was lost */
                char ab[40];
                snprintf(ab, sizeof(ab), "%s", k->bye_branch);
                send_in_dialog(k, "ACK", k->cseq, ab);
            }
            return;
        }
        note_forward(k, r, now);
        on_answer(k, r, now);
        return;
    }
    if (k->phase != PH_INVITE && k->phase != PH_CANCEL) {
        return;
    }
    if (strncmp(r->branch, "z9hG4bK", 7) != 0 || strcmp(r->branch + 7, k->branch) != 0) {
        return;
    }
    k->got_response = 1;
    if (code < 200) {
        uv_timer_stop(&k->tx); /* timer A stops at a provisional answer */
        if (code == 100) {
            if (k->t_100 == 0) {
                k->t_100 = now;
            }
        } else if (k->t_18x == 0) {
            k->t_18x = now;
        }
        if (k->res.code == 0 || k->res.code < 200) {
            k->res.code = code;
            snprintf(k->res.reason, sizeof(k->res.reason), "%s", r->reason);
        }
        note_forward(k, r, now);
        return;
    }
    /* a final non-2xx: ACK it in its transaction */
    uv_timer_stop(&k->tx);
    send_in_txn(k, "ACK", r->to_tag);
    k->res.code = code;
    snprintf(k->res.reason, sizeof(k->res.reason), "%s", r->reason);
    if (k->phase == PH_CANCEL) {
        call_finish(k); /* the 487 (or anything) ends the cancelled INVITE */
        return;
    }
    if (code < 400 && follow_redirect(k, r)) {
        return;
    }
    if ((code == 401 || code == 407) && answer_challenge(k, r)) {
        return;
    }
    if (k->t_18x == 0) {
        k->t_18x = now; /* RFC 6076 SRD: a failure ends the request delay too */
    }
    k->res.outcome = (code == 486 || code == 600) ? OUT_BUSY : OUT_REJECTED;
    call_finish(k);
}

static void on_sip_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct sc_call *k = h->data;

    (void)suggested;
    *buf = uv_buf_init(k->sipbuf, SC_DGRAM_MAX);
}

static void on_sip_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                        const struct sockaddr *addr, unsigned flags)
{
    struct sc_call *k = h->data;
    struct wp_sip_resp *r = NULL;
    uint64_t now = now_ns();

    if (nread <= 0 || addr == NULL || (flags & UV_UDP_PARTIAL) || (size_t)nread > SC_DGRAM_MAX ||
        k->phase == PH_DONE) {
        return; /* nothing, an error (ICMP), or truncated */
    }
    r = wp_xmalloc(sizeof(*r));
    if (wp_sip_parse_response(buf->base, (size_t)nread, r) < 0 ||
        strcmp(r->call_id, k->call_id) != 0) {
        goto out;
    }
    if (strcmp(r->method, "INVITE") == 0) {
        on_invite_response(k, r, now);
    } else if (strcmp(r->method, "BYE") == 0 && k->phase == PH_BYE && r->code >= 200 &&
               r->cseq == k->cseq + 1) {
        call_finish(k);
    } else if (strcmp(r->method, "CANCEL") == 0 && k->phase == PH_CANCEL && r->code >= 200) {
        uv_timer_stop(&k->tx); /* the INVITE's 487 ends the call */
    }
out:
    free(r);
}

static void on_rtp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct sc_call *k = h->data;

    (void)suggested;
    *buf = uv_buf_init((char *)k->rtpbuf, sizeof(k->rtpbuf));
}

static void on_rtp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                        const struct sockaddr *addr, unsigned flags)
{
    struct sc_call *k = h->data;
    uint64_t now = now_ns();
    int pt = 0;
    size_t off = 0;
    size_t plen = 0;

    if (nread <= 0 || addr == NULL || (flags & UV_UDP_PARTIAL) || k->phase != PH_LISTEN) {
        return; /* early media before the answer is not measured */
    }
    if (wp_rtp_payload((const uint8_t *)buf->base, (size_t)nread, &pt, &off, &plen) < 0) {
        return;
    }
    k->res.rtp_packets++;
    if (k->t_rtp == 0) {
        k->t_rtp = now;
    }
    if ((pt == 0 || pt == 8) &&
        wp_g711_rms((const uint8_t *)buf->base + off, plen, pt == 8) >= SC_SILENCE_RMS) {
        double gap = since_s(k->t_last_audio, now);
        if (!isnan(gap) && (isnan(k->res.silence_max_s) || gap > k->res.silence_max_s)) {
            k->res.silence_max_s = gap;
        }
        k->t_last_audio = now;
    }
}

/* ---- starting a call ---- */

static int open_sockets(struct sc_call *k)
{
    struct sockaddr_storage a;
    int alen = sizeof(a);
    int rc = 0;
    uv_udp_t *hs[2] = {&k->sip, &k->rtp};
    unsigned *ports[2] = {&k->sip_port, &k->rtp_port};

    for (int i = 0; i < 2; i++) {
        rc = uv_udp_init_ex(k->c->loop, hs[i], k->dst.ss_family);
        if (rc < 0) {
            if (i == 1) {
                uv_close((uv_handle_t *)&k->sip, on_closed);
            }
            return rc;
        }
        hs[i]->data = k;
        k->nopen++;
    }
    k->socks_open = 1;
    for (int i = 0; i < 2; i++) {
        memset(&a, 0, sizeof(a));
        a.ss_family = k->dst.ss_family;
        rc = uv_udp_bind(hs[i], (const struct sockaddr *)&a, 0);
        if (rc == 0) {
            alen = sizeof(a);
            rc = uv_udp_getsockname(hs[i], (struct sockaddr *)&a, &alen);
        }
        if (rc < 0) {
            return rc;
        }
        *ports[i] = ntohs(a.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&a)->sin6_port
                                                  : ((struct sockaddr_in *)&a)->sin_port);
    }
    rc = uv_udp_recv_start(&k->sip, on_sip_alloc, on_sip_recv);
    if (rc == 0) {
        rc = uv_udp_recv_start(&k->rtp, on_rtp_alloc, on_rtp_recv);
    }
    return rc;
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *ai)
{
    struct sc_call *k = req->data;
    int rc = 0;

    k->gai_pending = 0;
    if (k->phase == PH_DONE) {
        uv_freeaddrinfo(ai);
        call_free_if_closed(k);
        return;
    }
    if (status < 0 || ai == NULL) {
        snprintf(k->res.error, sizeof(k->res.error), "cannot resolve %s", k->t->dhost);
        if (k->redirects > 0) {
            k->res.outcome = OUT_REJECTED;
        }
        uv_freeaddrinfo(ai);
        call_finish(k);
        return;
    }
    if (k->socks_open && ai->ai_family != k->dst.ss_family) {
        snprintf(k->res.error, sizeof(k->res.error), "redirect to another address family");
        k->res.outcome = OUT_REJECTED;
        uv_freeaddrinfo(ai);
        call_finish(k);
        return;
    }
    memcpy(&k->dst, ai->ai_addr, ai->ai_addrlen);
    k->dstlen = ai->ai_addrlen;
    uv_freeaddrinfo(ai);
    if (!k->socks_open) {
        wp_sip_local_host(&k->dst, k->dstlen, k->me, sizeof(k->me));
        rc = open_sockets(k);
        if (rc < 0) {
            snprintf(k->res.error, sizeof(k->res.error), "cannot open a UDP socket: %s",
                     uv_strerror(rc));
            call_finish(k);
            return;
        }
    }
    k->phase = PH_INVITE;
    if (k->t0 == 0) {
        uint64_t ms = (uint64_t)k->t->timeout_ms;
        k->t0 = now_ns();
        uv_timer_start(&k->deadline, on_deadline, ms < SC_TIMER_B_MS ? ms : SC_TIMER_B_MS, 0);
    }
    send_invite(k);
}

static void start_resolve(struct sc_call *k, const char *host, int port)
{
    struct addrinfo hints;
    char ports[8];
    int rc = 0;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = k->socks_open ? k->dst.ss_family : AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_protocol = IPPROTO_UDP;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(ports, sizeof(ports), "%d", port);
    k->phase = k->phase == 0 ? PH_RESOLVE : k->phase;
    k->gai.data = k;
    rc = uv_getaddrinfo(k->c->loop, &k->gai, on_resolved, host, ports, &hints);
    if (rc < 0) {
        snprintf(k->res.error, sizeof(k->res.error), "cannot resolve %s: %s", host,
                 uv_strerror(rc));
        call_finish(k);
        return;
    }
    k->gai_pending = 1;
}

static void call_start(struct sc_target *t)
{
    struct sc_ctx *c = t->c;
    struct sc_call *k = wp_xcalloc(1, sizeof(*k));
    char rnd[17];

    k->t = t;
    k->c = c;
    k->res.trying_s = k->res.pdd_s = k->res.answer_s = k->res.first_rtp_s = NAN;
    k->res.silence_max_s = k->res.forward_s = NAN;
    uv_timer_init(c->loop, &k->deadline);
    uv_timer_init(c->loop, &k->tx);
    k->deadline.data = k;
    k->tx.data = k;
    k->nopen = 2;
    wp_sip_rand_hex(rnd, 8);
    snprintf(k->call_id, sizeof(k->call_id), "wpc.%s", rnd);
    wp_sip_rand_hex(k->from_tag, 8);
    snprintf(k->ruri, sizeof(k->ruri), "%s", t->ruri);
    k->cseq = 1;
    t->call = k;
    /* bounds the name resolution; re-armed at the first INVITE */
    uv_timer_start(&k->deadline, on_deadline, (uint64_t)t->timeout_ms, 0);
    WP_PLOG(c->p, WP_LOG_DEBUG, "%s: calling %s", t->name, t->ruri);
    start_resolve(k, t->dhost, t->dport);
}

/* The call is over: its result goes to the target, the handles close. */
static void call_finish(struct sc_call *k)
{
    struct sc_target *t = k->t;
    struct sc_result *res = &k->res;

    if (k->phase == PH_DONE) {
        return;
    }
    k->phase = PH_DONE;
    res->trying_s = since_s(k->t0, k->t_100);
    res->pdd_s = since_s(k->t0, k->t_18x);
    res->answer_s = since_s(k->t0, k->t_answer);
    res->first_rtp_s = since_s(k->t_answer, k->t_rtp);
    if (k->t_answer == 0) {
        res->silence_max_s = NAN;
    }
    res->dead_air = res->outcome == OUT_ANSWERED && !isnan(res->silence_max_s) &&
                    res->silence_max_s * 1000.0 > (double)t->dead_air_ms;
    if (t->forward_to != NULL) {
        res->forward_s = since_s(k->t0, k->t_forward);
        res->forward =
            !isnan(res->forward_s) && res->forward_s * 1000.0 <= (double)t->forward_within_ms ? 1
                                                                                              : -1;
    }
    if (!t->c->stopping) {
        t->res = *res;
        t->have_result = 1;
    }
    WP_PLOG(t->c->p, WP_LOG_DEBUG,
            "%s: %s code %d pdd %.3f answer %.3f first_rtp %.3f silence_max %.3f rtp %u", t->name,
            outcome_names[res->outcome], res->code, res->pdd_s, res->answer_s, res->first_rtp_s,
            res->silence_max_s, res->rtp_packets);
    close_handles(k);
}

/* Stop a call now (probe stopping): a best-effort CANCEL or BYE, then close. */
static void call_abort(struct sc_call *k)
{
    if (k->phase == PH_INVITE && k->got_response) {
        send_in_txn(k, "CANCEL", "");
    } else if (k->phase == PH_LISTEN) {
        char br[24];
        wp_sip_rand_hex(br, 10);
        send_in_dialog(k, "BYE", k->cseq + 1, br);
    }
    call_finish(k);
}

/* ---- reporting ---- */

static void report(struct wp_probe *p, struct sc_target *t, struct wp_sink *out)
{
    struct sc_ctx *c = p->ctx;
    struct sc_result *r = &t->res;
    double v[8];
    char codes[96];
    char raw[128];
    char msg[640];
    char detail[320];
    const char *state = "unavailable";
    unsigned status = WP_CHECK_CRITICAL;
    int n = 0;

    if (r->code != 0) {
        snprintf(codes, sizeof(codes), "%d%s%s", r->code, r->reason[0] != '\0' ? " " : "",
                 r->reason);
    } else {
        snprintf(codes, sizeof(codes), "no response");
    }
    snprintf(raw, sizeof(raw), "%s, %s", codes, outcome_names[r->outcome]);
    if (isnan(r->pdd_s)) {
        n = snprintf(detail, sizeof(detail), "no ringing");
    } else {
        n = snprintf(detail, sizeof(detail), "PDD %.2f s", r->pdd_s);
    }
    if (r->outcome == OUT_ANSWERED && n > 0 && (size_t)n < sizeof(detail)) {
        if (isnan(r->first_rtp_s)) {
            snprintf(detail + n, sizeof(detail) - (size_t)n, ", answer %.2f s, no RTP",
                     r->answer_s);
        } else {
            snprintf(detail + n, sizeof(detail) - (size_t)n,
                     ", answer %.2f s, first RTP %.2f s, longest silence %.1f s (%u RTP packets)",
                     r->answer_s, r->first_rtp_s, r->silence_max_s, r->rtp_packets);
        }
    }
    switch (r->outcome) {
    case OUT_ANSWERED:
        if (r->dead_air) {
            status = WP_CHECK_WARNING;
            snprintf(msg, sizeof(msg),
                     "SIP CALL WARNING: dead air: %.1f s without audio after the answer "
                     "(expected at most %g s); %s; %s",
                     r->silence_max_s, (double)t->dead_air_ms / 1000.0, codes, detail);
        } else if (t->slow_ms > 0 && r->answer_s * 1000.0 > (double)t->slow_ms) {
            status = WP_CHECK_WARNING;
            snprintf(msg, sizeof(msg),
                     "SIP CALL WARNING: slow answer: %.2f s (expected at most %g s); %s; %s",
                     r->answer_s, (double)t->slow_ms / 1000.0, codes, detail);
        } else {
            status = WP_CHECK_OK;
            state = "idle";
            snprintf(msg, sizeof(msg), "SIP CALL OK: answered (%s); %s", codes, detail);
        }
        break;
    case OUT_BUSY:
        status = WP_CHECK_WARNING;
        snprintf(msg, sizeof(msg), "SIP CALL WARNING: busy (%s); %s", codes, detail);
        break;
    case OUT_REJECTED:
        snprintf(msg, sizeof(msg), "SIP CALL CRITICAL: rejected (%s)%s%s; %s", codes,
                 r->error[0] != '\0' ? ": " : "", r->error, detail);
        break;
    case OUT_NO_ANSWER:
        snprintf(msg, sizeof(msg), "SIP CALL CRITICAL: no answer in %g s, cancelled (%s); %s",
                 (double)t->timeout_ms / 1000.0, codes, detail);
        break;
    case OUT_UNREACHABLE:
        snprintf(msg, sizeof(msg),
                 "SIP CALL CRITICAL: unreachable: no response to INVITE from %s "
                 "in %g s",
                 t->where,
                 (double)(t->timeout_ms < SC_TIMER_B_MS ? t->timeout_ms : SC_TIMER_B_MS) / 1000.0);
        break;
    default:
        status = WP_CHECK_UNKNOWN;
        snprintf(msg, sizeof(msg), "SIP CALL UNKNOWN: %s: %s", t->where,
                 r->error[0] != '\0' ? r->error : "the call could not be made");
        break;
    }
    if (r->forward < 0) {
        char fw[200];
        status = WP_CHECK_CRITICAL;
        state = "unavailable";
        if (isnan(r->forward_s)) {
            snprintf(fw, sizeof(fw), "SIP CALL CRITICAL: forward missed: %s never reached%s%s; ",
                     t->forward_to, r->answered_by[0] != '\0' ? ", answered by " : "",
                     r->answered_by);
        } else {
            snprintf(fw, sizeof(fw),
                     "SIP CALL CRITICAL: forward missed: %s reached after %.2f s (expected "
                     "within %g s); ",
                     t->forward_to, r->forward_s, (double)t->forward_within_ms / 1000.0);
        }
        size_t fl = strlen(fw);
        const char *rest = strstr(msg, ": "); /* drop the outcome's own "SIP CALL X: " */
        size_t skip = rest != NULL ? (size_t)(rest + 2 - msg) : 0;
        memmove(msg, msg + skip, strlen(msg + skip) + 1);
        memmove(msg + fl, msg, sizeof(msg) - fl - 1);
        memcpy(msg, fw, fl);
        msg[sizeof(msg) - 1] = '\0';
    } else if (r->forward > 0 && status == WP_CHECK_OK) {
        size_t ml = strlen(msg);
        snprintf(msg + ml, sizeof(msg) - ml, "; forwarded to %s in %.2f s", t->forward_to,
                 r->forward_s);
    }
    v[0] = r->trying_s;
    v[1] = r->pdd_s;
    v[2] = r->answer_s;
    v[3] = r->first_rtp_s;
    v[4] = r->silence_max_s;
    v[5] = r->code >= 200 ? (double)r->code : NAN;
    v[6] = r->outcome == OUT_ANSWERED ? 1.0 : r->outcome == OUT_NONE ? NAN : 0.0;
    v[7] = r->outcome == OUT_ANSWERED ? (r->dead_air ? 1.0 : 0.0) : NAN;
    WP_PLOG(p, WP_LOG_DEBUG, "%s: %s", t->name, msg);
    wp_sink_metric(out, &kind_sc, t->name, v);
    if (!t->reported || strcmp(state, t->reported_state) != 0 ||
        strcmp(raw, t->reported_raw) != 0) {
        wp_sink_state(out, t->name, c->group, state, raw, t->where);
        t->reported = 1;
        snprintf(t->reported_state, sizeof(t->reported_state), "%s", state);
        snprintf(t->reported_raw, sizeof(t->reported_raw), "%s", raw);
    }
    wp_sink_check(out, t->check, status, msg);
}

/* ---- probe callbacks ---- */

static void on_sched(uv_timer_t *h)
{
    struct sc_target *t = h->data;

    if (t->c->stopping) {
        return;
    }
    if (t->call != NULL) {
        WP_PLOG(t->c->p, WP_LOG_DEBUG, "%s: the previous call is still running", t->name);
        return;
    }
    call_start(t);
}

static int sc_start(struct wp_probe *p, uv_loop_t *loop)
{
    struct sc_ctx *c = p->ctx;

    c->loop = loop;
    c->started = 1;
    for (size_t i = 0; i < c->targets.n; i++) {
        struct sc_target *t = &c->targets.v[i];
        uint64_t every = (uint64_t)(t->every_ms > 0 ? t->every_ms : p->interval_ms);
        uv_timer_init(loop, &t->sched);
        t->sched.data = t;
        t->sched_open = 1;
        /* the first calls right away, a little apart */
        uv_timer_start(&t->sched, on_sched, (uint64_t)i * 20, every);
    }
    return 0;
}

static void sc_stop(struct wp_probe *p)
{
    struct sc_ctx *c = p->ctx;

    if (!c->started || c->stopping) {
        return;
    }
    c->stopping = 1;
    for (size_t i = 0; i < c->targets.n; i++) {
        struct sc_target *t = &c->targets.v[i];
        if (t->sched_open) {
            uv_close((uv_handle_t *)&t->sched, NULL);
            t->sched_open = 0;
        }
        if (t->call != NULL) {
            call_abort(t->call);
        }
    }
}

static int sc_sample(struct wp_probe *p, struct wp_sink *out)
{
    struct sc_ctx *c = p->ctx;

    for (size_t i = 0; i < c->targets.n; i++) {
        struct sc_target *t = &c->targets.v[i];
        if (t->have_result) {
            report(p, t, out);
            t->have_result = 0;
        }
    }
    return 0;
}

static int sc_init(struct wp_probe *p)
{
    struct sc_ctx *c = p->ctx;

    wp_sip_init();
    c->p = p;
    if (!user_ok(c->from_user)) {
        WP_PLOG(p, WP_LOG_ERROR, "from_user: expected 1 to %d of letters, digits and ._-+*#",
                SC_NAME_MAX);
        return WP_ECONFIG;
    }
    if (!wp_probe_name_ok(c->group, SC_NAME_MAX)) {
        WP_PLOG(p, WP_LOG_ERROR, "group: expected 1 to %d letters, digits, '_', '-' or '.'",
                SC_NAME_MAX);
        return WP_ECONFIG;
    }
    for (size_t i = 0; i < c->targets.n; i++) {
        struct sc_target *t = &c->targets.v[i];
        int64_t every = t->every_ms > 0 ? t->every_ms : p->interval_ms;
        t->c = c;
        if (t->password_file != NULL) {
            int rc = wp_probe_read_secret(p, t->password_file, t->password, sizeof(t->password));
            if (rc < 0) {
                return rc;
            }
            t->has_password = 1;
        }
        if (t->timeout_ms + t->listen_ms > every) {
            WP_PLOG(p, WP_LOG_WARN,
                    "%s: a call may last longer than its interval (%lld ms); a call still "
                    "running skips the next",
                    t->name, (long long)every);
        }
    }
    return 0;
}

static void sc_destroy(struct wp_probe *p)
{
    (void)p; /* the targets (and the passwords, wiped) go with the options */
}

const struct wp_probe_ops wp_probe_sipcall = {
    .name = "sipcall",
    .summary = "SIP test calls: answer time, post-dial delay, dead air, forwarding",
    .opts = sc_opts,
    .ctx_size = sizeof(struct sc_ctx),
    .flags = 0,
    .init = sc_init,
    .sample = sc_sample,
    .start = sc_start,
    .stop = sc_stop,
    .destroy = sc_destroy,
    .committed = NULL,
};
