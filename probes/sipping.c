/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sipping probe: SIP OPTIONS "qualify" of phones, IVR ports and trunks over UDP or TCP.
 *
 * Config:
 *   - kind: sipping
 *     name: phones
 *     interval: 10s
 *     group: hotline          # the state group of the targets
 *     timeout: 2s             # wait for a final answer this long after the send
 *     down_after: 3           # consecutive misses before a target is down
 *     up_after: 1             # consecutive answers before it is up again
 *     from_user: watchpost
 *     targets:
 *       - {name: "8001", host: 10.1.2.31, port: 5060, user: "8001"}
 *       - {name: sbc1, host: 10.1.2.5, port: 5060, transport: tcp}
 *
 * Each sample sends one OPTIONS to every target (one UDP socket per address family, bound to
 * an ephemeral port) with its own Call-ID, Via branch and From tag, then polls for answers
 * until all targets answered or their timeout passed. Answers are parsed with libosip2 and
 * matched by Call-ID, CSeq (number and method OPTIONS) and the top Via branch; anything else
 * is ignored, and at most 4 datagrams per target (64 for a few targets; 8 KiB each) are
 * read in a round. Any final response (even 404 or 503) means reachable: RFC 3261 §11.2
 * makes a UAS answer OPTIONS as it would an INVITE. 1xx responses are ignored. No
 * retransmission: a lost datagram is one miss, which the down_after hysteresis absorbs.
 *
 * transport: tcp opens a new connection per target and round (uv_tcp on a private libuv loop
 * for the round, whose backend fd joins the UDP poll set, so both kinds run concurrently; at
 * most SIP_TCP_PARALLEL connections at once), sends the OPTIONS with "Via: SIP/2.0/TCP", reads
 * into a bounded buffer (SIP_TCP_BUF), frames each message by its Content-Length (no header
 * means 0; CRLF keepalives are skipped) and hands the framed message to libosip2 as a
 * datagram would be. The timeout covers connect and answer. A refused or failed connect, a
 * connection closed before the answer, or an answer larger than the buffer is a miss; the
 * connection is closed when the round ends. rtt_s is from the write to the final response.
 *
 * Per target: series group "sipping", instance <name>, gauges up (1/0 after the hysteresis,
 * NaN until the first decision), rtt_s (send to final response, NaN without one),
 * status_code (NaN without an answer) and misses (consecutive). A state for object <name> in
 * the group: "idle" when up (raw "200 OK", the status line's words), "unavailable" when down
 * (raw "no answer"), "unknown" until decided; info "host:port" ("host:port/tcp"); sent on the
 * first sample and when the state or the status code changes. A check "sipping_<name>": OK
 * "SIP OK: 200 OK in 0.003 s", WARNING for a miss before down_after, CRITICAL "SIP CRITICAL: no
 * answer to OPTIONS in 2 s (3 in a row)" once down (over TCP the reason when there is one:
 * "SIP CRITICAL: host:port/tcp: cannot connect: Connection refused (3 in a row)").
 *
 * Names are resolved with getaddrinfo(), which the timeout does not bound: WP_PROBE_BLOCKING.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include <osipparser2/osip_message.h>
#include <osipparser2/osip_parser.h>
#include <osipparser2/osip_port.h>

#include "probe.h"
#include "sip_util.h"
#include "wp/err.h"
#include "wp/mem.h"

#define SIP_NAME_MAX     64
#define SIP_TARGETS_MAX  10000
#define SIP_DGRAM_MAX    8192 /* larger datagrams are ignored */
#define SIP_READS_PER    4    /* datagrams read per target and round, at most ... */
#define SIP_READS_MIN    64   /* ... but this many for a few targets */
#define SIP_REASON_MAX   64
#define SIP_TCP_BUF      16384 /* bytes buffered per TCP connection; a larger message is a miss */
#define SIP_TCP_MSGS     16    /* messages read per TCP connection and round */
#define SIP_TCP_PARALLEL 256   /* TCP connections open at once */

enum sip_state { SIP_UNKNOWN = 0, SIP_UP, SIP_DOWN };
enum sip_transport { SIP_UDP = 0, SIP_TCP };

static const char *const transport_names[] = {"udp", "tcp", NULL};

struct sip_target {
    char *name;
    char *host;
    int64_t port;
    char *user; /* Request-URI user part, or NULL */
    int transport;

    char *check; /* "sipping_<name>" */
    char *where; /* "host:port" ("[v6]:port") */
    char *uri;   /* "sip:[user@]host:port[;transport=tcp]" */
    char *info;  /* the state's info: where, "/tcp" added for TCP */

    /* kept across samples (zeroed by the decoder) */
    enum sip_state state;
    unsigned misses;  /* consecutive */
    unsigned answers; /* consecutive */
    int reported;     /* a state record was sent */
    enum sip_state reported_state;
    int reported_code;
};

struct sip_targets {
    struct sip_target *v;
    size_t n;
};

struct sip_ctx {
    struct sip_targets targets; /* decoded by wp_probe_targets_decode (the registry frees it) */
    char *group;
    int64_t timeout_ms;
    int64_t down_after;
    int64_t up_after;
    char *from_user;
    uint32_t cseq; /* CSeq number of the round */
};

/* One request of a sample. */
struct sip_run {
    struct sip_target *t;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int sock; /* index into the round's sockets, -1 when the target could not be sent to */
    int sent;
    int done;
    int answered;
    int code;
    int err;     /* -errno of a send failure */
    int gai_err; /* getaddrinfo() failure */
    int tcp;
    const char *fail; /* TCP: what went wrong ("cannot connect", ...); err may add why */
    char reason[SIP_REASON_MAX];
    char call_id[64]; /* "wp<index>.<16 hex>" */
    char branch[32];
    int64_t t0_ns;
    int64_t deadline_ns;
    double rtt_s;
};

static int check_target(struct wp_conf_doc *doc, struct wp_conf_node *it, const char *path,
                        void *item, struct wp_conf_err *err);
static void free_target(void *item);
static int decode_name(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                       const void *arg, struct wp_conf_err *err);
static void free_name(void *field, const void *arg);

#define TGT(f) offsetof(struct sip_target, f)

static const struct wp_opt target_opts[] = {
    {.name = "name",
     .type = WP_OPT_STR,
     .help = "target name: the series instance, the state object and the check sipping_<name>",
     .offset = TGT(name),
     .required = 1},
    {.name = "host",
     .type = WP_OPT_STR,
     .help = "host name or IP address of the phone, IVR port or trunk",
     .offset = TGT(host),
     .required = 1},
    {.name = "port",
     .type = WP_OPT_INT,
     .def = "5060",
     .help = "SIP port",
     .offset = TGT(port),
     .min = 1,
     .max = 65535},
    {.name = "user",
     .type = WP_OPT_STR,
     .help = "user part of the Request-URI (sip:user@host:port); none by default",
     .offset = TGT(user)},
    {.name = "transport",
     .type = WP_OPT_ENUM,
     .def = "udp",
     .help = "udp, or tcp (a new connection every round)",
     .offset = TGT(transport),
     .enum_names = transport_names},
    WP_OPT_TABLE_END,
};

static const struct wp_probe_targets_spec targets_spec = {
    .example = "[{name: \"8001\", host: 10.1.2.31, port: 5060}]",
    .opts = target_opts,
    .size = sizeof(struct sip_target),
    .name_off = TGT(name),
    .name_max = SIP_NAME_MAX,
    .max = SIP_TARGETS_MAX,
    .check = check_target,
    .item_free = free_target,
};

#define CO(f) offsetof(struct sip_ctx, f)

static const struct wp_opt sip_opts[] = {
    {.name = "targets",
     .type = WP_OPT_CUSTOM,
     .help = "SIP endpoints to qualify: [{name, host, port, user, transport}]",
     .offset = CO(targets),
     .required = 1,
     .custom = wp_probe_targets_decode,
     .custom_free = wp_probe_targets_free,
     .arg = &targets_spec},
    {.name = "group",
     .type = WP_OPT_CUSTOM,
     .help = "state group of the targets (a hotline, a queue); default sip",
     .offset = CO(group),
     .custom = decode_name,
     .custom_free = free_name,
     .arg = "group"},
    {.name = "timeout",
     .type = WP_OPT_DURATION,
     .def = "2s",
     .help = "wait this long for a final response to each OPTIONS",
     .offset = CO(timeout_ms),
     .min = 100,
     .max = 60000},
    {.name = "down_after",
     .type = WP_OPT_INT,
     .def = "3",
     .help = "consecutive unanswered rounds before a target is down",
     .offset = CO(down_after),
     .min = 1,
     .max = 1000},
    {.name = "up_after",
     .type = WP_OPT_INT,
     .def = "1",
     .help = "consecutive answered rounds before a target is up",
     .offset = CO(up_after),
     .min = 1,
     .max = 1000},
    {.name = "from_user",
     .type = WP_OPT_CUSTOM,
     .help = "user part of the From and Contact URIs; default watchpost",
     .offset = CO(from_user),
     .custom = decode_name,
     .custom_free = free_name,
     .arg = "from_user"},
    WP_OPT_TABLE_END,
};

static const char *const sip_fields[] = {"up", "rtt_s", "status_code", "misses"};
static const struct wp_series_kind kind_sip = {"sipping", sip_fields, 4, WP_DS_GAUGE};

/* ---- config ---- */

/* A host goes into the Request-URI and To: letters, digits, '.', '-', ':' (IPv6) only. */
static int host_ok(const char *h)
{
    size_t n = strlen(h);

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

static int check_target(struct wp_conf_doc *doc, struct wp_conf_node *it, const char *path,
                        void *item, struct wp_conf_err *err)
{
    struct sip_target *t = item;

    if (!host_ok(t->host)) {
        return wp_conf_errorf(doc, wp_probe_at_key(doc, it, "host"), err,
                              "%s.host: expected a host name or an IP address", path);
    }
    if (t->user != NULL && !wp_probe_name_ok(t->user, SIP_NAME_MAX)) {
        return wp_conf_errorf(doc, wp_probe_at_key(doc, it, "user"), err,
                              "%s.user: expected 1 to %d letters, digits, '_', '-' or '.'", path,
                              SIP_NAME_MAX);
    }
    t->check = wp_xasprintf("sipping_%s", t->name);
    t->where = wp_probe_hostport(t->host, t->port);
    t->uri =
        wp_xasprintf("sip:%s%s%s%s", t->user != NULL ? t->user : "", t->user != NULL ? "@" : "",
                     t->where, t->transport == SIP_TCP ? ";transport=tcp" : "");
    t->info = wp_xasprintf("%s%s", t->where, t->transport == SIP_TCP ? "/tcp" : "");
    return 0;
}

static void free_target(void *item)
{
    struct sip_target *t = item;

    free(t->check);
    free(t->where);
    free(t->uri);
    free(t->info);
}

/* group and from_user: a name (it goes into SIP headers and state records); arg is the
 * option's name, for the message. */
static int decode_name(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                       const void *arg, struct wp_conf_err *err)
{
    const char *what = arg;
    char **dst = field;
    const char *s = wp_conf_scalar(node);

    if (s == NULL || !wp_probe_name_ok(s, SIP_NAME_MAX)) {
        return wp_conf_errorf(doc, node, err,
                              "%s: expected 1 to %d letters, digits, '_', '-' or '.'", what,
                              SIP_NAME_MAX);
    }
    free(*dst);
    *dst = wp_xstrdup(s);
    return 0;
}

static void free_name(void *field, const void *arg)
{
    char **s = field;

    (void)arg;
    free(*s);
    *s = NULL;
}

/* ---- helpers ---- */

static int64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A non-blocking UDP socket of family bound to an ephemeral port; its port in *port.
 * The fd or -errno. */
static int open_socket(int family, unsigned *port)
{
    struct sockaddr_storage a;
    socklen_t alen = 0;
    int one = 1;
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        return -errno;
    }
    memset(&a, 0, sizeof(a));
    if (family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a;
        s6->sin6_family = AF_INET6;
        s6->sin6_addr = in6addr_any;
        alen = sizeof(*s6);
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&a;
        s4->sin_family = AF_INET;
        s4->sin_addr.s_addr = htonl(INADDR_ANY);
        alen = sizeof(*s4);
    }
    if (bind(fd, (struct sockaddr *)&a, alen) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    *port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&a)->sin6_port
                                     : ((struct sockaddr_in *)&a)->sin_port);
    return fd;
}

/* ---- one round ---- */

struct sip_round;

/* One TCP connection of a round; lives in the round's conns array until the loop is closed. */
struct sip_conn {
    uv_tcp_t h;
    uv_connect_t creq;
    uv_write_t wreq;
    struct sip_round *rd;
    struct sip_run *r;
    char out[2048];
    char *in; /* SIP_TCP_BUF + 1 bytes, allocated on the first read */
    size_t inlen;
    unsigned msgs;
    int open;    /* uv_tcp_init done, close callback not run yet */
    int closing; /* uv_close called */
};

struct sip_round {
    struct sip_ctx *c;
    struct sip_run *runs;
    size_t n;
    int fds[2]; /* AF_INET, AF_INET6; -1 until needed */
    unsigned ports[2];
    int fd_err[2];
    char buf[SIP_DGRAM_MAX + 1];

    /* TCP targets: a private loop, the runs' indices and their connections */
    uv_loop_t loop;
    int loop_ok;
    size_t *tcp_idx;
    struct sip_conn *conns;
    size_t ntcp;
    size_t tcp_next;   /* next connection to start */
    size_t tcp_active; /* started and not closing */
};

static int family_slot(int family)
{
    return family == AF_INET6 ? 1 : 0;
}

/* Resolve the target and pick its socket; r->done when it cannot be sent to. */
static void run_prepare(struct sip_round *rd, struct sip_run *r, size_t idx)
{
    struct addrinfo hints;
    struct addrinfo *ai = NULL;
    char port[8];
    int rc = 0;
    int slot = 0;

    r->sock = -1;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = r->tcp ? SOCK_STREAM : SOCK_DGRAM;
    hints.ai_protocol = r->tcp ? IPPROTO_TCP : IPPROTO_UDP;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%lld", (long long)r->t->port);
    rc = getaddrinfo(r->t->host, port, &hints, &ai);
    if (rc != 0 || ai == NULL) {
        r->gai_err = rc != 0 ? rc : EAI_NONAME;
        r->err = rc == EAI_SYSTEM ? -errno : 0;
        r->done = 1;
        return;
    }
    memcpy(&r->addr, ai->ai_addr, ai->ai_addrlen);
    r->addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    wp_sip_rand_hex(r->branch, 10);
    {
        char rnd[33];
        wp_sip_rand_hex(rnd, 8);
        snprintf(r->call_id, sizeof(r->call_id), "wp%zu.%s", idx, rnd);
    }
    if (r->tcp) {
        return; /* connected when the round starts */
    }
    slot = family_slot(r->addr.ss_family);
    if (rd->fds[slot] < 0 && rd->fd_err[slot] == 0) {
        rc = open_socket(r->addr.ss_family, &rd->ports[slot]);
        if (rc < 0) {
            rd->fd_err[slot] = rc;
        } else {
            rd->fds[slot] = rc;
        }
    }
    if (rd->fds[slot] < 0) {
        r->err = rd->fd_err[slot];
        r->done = 1;
        return;
    }
    r->sock = slot;
}

/* The OPTIONS request of r into buf, sent from me:lport (me is URI host text); its length. */
static size_t build_request(struct sip_round *rd, const struct sip_run *r, const char *me,
                            unsigned lport, char *buf, size_t len)
{
    char tag[17];
    int n = 0;

    wp_sip_rand_hex(tag, 8);
    n = snprintf(buf, len,
                 "OPTIONS %s SIP/2.0\r\n"
                 "Via: SIP/2.0/%s %s:%u;branch=z9hG4bK%s%s\r\n"
                 "Max-Forwards: 70\r\n"
                 "From: <sip:%s@%s>;tag=%s\r\n"
                 "To: <%s>\r\n"
                 "Call-ID: %s\r\n"
                 "CSeq: %u OPTIONS\r\n"
                 "Contact: <sip:%s@%s:%u%s>\r\n"
                 "Accept: application/sdp\r\n"
                 "User-Agent: watchpost\r\n"
                 "Content-Length: 0\r\n"
                 "\r\n",
                 r->t->uri, r->tcp ? "TCP" : "UDP", me, lport, r->branch, r->tcp ? "" : ";rport",
                 rd->c->from_user, me, tag, r->t->uri, r->call_id, (unsigned)rd->c->cseq,
                 rd->c->from_user, me, lport, r->tcp ? ";transport=tcp" : "");
    if (n < 0 || (size_t)n >= len) {
        return 0;
    }
    return (size_t)n;
}

/* Parse one datagram; a final response to one of our requests marks that run answered. */
static void handle_datagram(struct sip_round *rd, const char *buf, size_t len, int64_t now)
{
    osip_message_t *m = NULL;
    osip_via_t *via = NULL;
    osip_generic_param_t *br = NULL;
    osip_cseq_t *cseq = NULL;
    char *cid = NULL;
    char bname[] = "branch";
    struct sip_run *r = NULL;
    unsigned long idx = 0;
    char *end = NULL;
    int code = 0;

    if (osip_message_init(&m) != 0) {
        return;
    }
    if (osip_message_parse(m, buf, len) != 0 || !MSG_IS_RESPONSE(m)) {
        goto out;
    }
    code = osip_message_get_status_code(m);
    if (code < 200 || code > 699) {
        goto out; /* provisional: wait for the final one */
    }
    if (osip_message_get_call_id(m) == NULL ||
        osip_call_id_to_str(osip_message_get_call_id(m), &cid) != 0 || cid == NULL) {
        goto out;
    }
    if (strncmp(cid, "wp", 2) != 0) {
        goto out;
    }
    errno = 0;
    idx = strtoul(cid + 2, &end, 10);
    if (errno != 0 || end == cid + 2 || *end != '.' || idx >= rd->n) {
        goto out;
    }
    r = &rd->runs[idx];
    if (!r->sent || r->done || strcmp(cid, r->call_id) != 0) {
        goto out;
    }
    cseq = osip_message_get_cseq(m);
    if (cseq == NULL || osip_cseq_get_method(cseq) == NULL || osip_cseq_get_number(cseq) == NULL ||
        strcmp(osip_cseq_get_method(cseq), "OPTIONS") != 0 ||
        strtoul(osip_cseq_get_number(cseq), NULL, 10) != rd->c->cseq) {
        goto out;
    }
    if (osip_message_get_via(m, 0, &via) < 0 || via == NULL ||
        osip_via_param_get_byname(via, bname, &br) != 0 || br == NULL || br->gvalue == NULL ||
        strncmp(br->gvalue, "z9hG4bK", 7) != 0 || strcmp(br->gvalue + 7, r->branch) != 0) {
        goto out;
    }
    r->answered = 1;
    r->done = 1;
    r->code = code;
    r->rtt_s = (double)(now - r->t0_ns) / 1e9;
    wp_sip_copy_reason(r->reason, sizeof(r->reason), osip_message_get_reason_phrase(m));
out:
    if (cid != NULL) {
        osip_free(cid);
    }
    osip_message_free(m);
}

/* Read what is queued on fd; at most *budget datagrams. */
static void drain(struct sip_round *rd, int fd, size_t *budget)
{
    while (*budget > 0) {
        ssize_t got = recv(fd, rd->buf, sizeof(rd->buf), MSG_TRUNC);
        if (got < 0) {
            return; /* EAGAIN, or an ICMP error queued on the socket: nothing to read */
        }
        (*budget)--;
        if ((size_t)got > SIP_DGRAM_MAX || got == 0) {
            continue; /* oversize (truncated) or empty */
        }
        rd->buf[got] = '\0';
        handle_datagram(rd, rd->buf, (size_t)got, mono_ns());
    }
}

/* ---- TCP ---- */

static void conn_closed(uv_handle_t *h)
{
    struct sip_conn *k = h->data;

    k->open = 0;
}

/* The run of k is over (answered or not): close the connection. */
static void conn_finish(struct sip_conn *k)
{
    k->r->done = 1;
    if (!k->closing) {
        k->closing = 1;
        k->rd->tcp_active--;
        uv_close((uv_handle_t *)&k->h, conn_closed);
    }
}

static void conn_fail(struct sip_conn *k, const char *fail, int err)
{
    if (!k->r->done) {
        k->r->fail = fail;
        k->r->err = err;
    }
    conn_finish(k);
}

/* The Content-Length of the header block hdr (hdr_len bytes, ending with the blank line): 0
 * when absent, -1 when malformed or above SIP_TCP_BUF. Long form or compact "l". */
static long content_length(const char *hdr, size_t hdr_len)
{
    const char *p = memchr(hdr, '\n', hdr_len); /* past the status line */
    const char *end = hdr + hdr_len;

    while (p != NULL && p + 1 < end) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        size_t n = eol != NULL ? (size_t)(eol - line) : (size_t)(end - line);
        const char *v = NULL;

        if (n >= 15 && strncasecmp(line, "Content-Length", 14) == 0) {
            v = line + 14;
        } else if (n >= 2 && (line[0] == 'l' || line[0] == 'L') &&
                   (line[1] == ':' || line[1] == ' ' || line[1] == '\t')) {
            v = line + 1;
        }
        if (v != NULL) {
            long val = 0;
            int digits = 0;
            while (v < line + n && (*v == ' ' || *v == '\t')) {
                v++;
            }
            if (v < line + n && *v == ':') {
                v++;
                while (v < line + n && (*v == ' ' || *v == '\t')) {
                    v++;
                }
                while (v < line + n && *v >= '0' && *v <= '9') {
                    val = val * 10 + (*v - '0');
                    digits++;
                    if (val > SIP_TCP_BUF) {
                        return -1;
                    }
                    v++;
                }
                while (v < line + n && (*v == ' ' || *v == '\t' || *v == '\r')) {
                    v++;
                }
                return digits > 0 && v == line + n ? val : -1;
            }
        }
        p = eol;
    }
    return 0;
}

/* Hand every complete message in k->in to the SIP parser; finish k when its run is done. */
static void conn_frame(struct sip_conn *k)
{
    while (!k->r->done) {
        size_t skip = 0;
        const char *he = NULL;
        size_t hdr_len = 0;
        long clen = 0;
        size_t total = 0;
        char save = 0;

        while (skip < k->inlen && (k->in[skip] == '\r' || k->in[skip] == '\n')) {
            skip++; /* CRLF keepalives (RFC 5626) */
        }
        if (skip > 0) {
            memmove(k->in, k->in + skip, k->inlen - skip);
            k->inlen -= skip;
        }
        he = memmem(k->in, k->inlen, "\r\n\r\n", 4);
        if (he == NULL) {
            if (k->inlen >= SIP_TCP_BUF) {
                conn_fail(k, "answer larger than 16 KiB", 0);
            }
            return;
        }
        hdr_len = (size_t)(he - k->in) + 4;
        clen = content_length(k->in, hdr_len);
        if (clen < 0 || hdr_len + (size_t)clen > SIP_TCP_BUF) {
            conn_fail(
                k, clen < 0 ? "bad Content-Length in the answer" : "answer larger than 16 KiB", 0);
            return;
        }
        total = hdr_len + (size_t)clen;
        if (k->inlen < total) {
            return; /* the body is still coming */
        }
        save = k->in[total];
        k->in[total] = '\0';
        handle_datagram(k->rd, k->in, total, mono_ns());
        k->in[total] = save;
        memmove(k->in, k->in + total, k->inlen - total);
        k->inlen -= total;
        if (++k->msgs >= SIP_TCP_MSGS && !k->r->done) {
            conn_fail(k, "no answer among the messages read", 0);
            return;
        }
    }
    conn_finish(k);
}

static void conn_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct sip_conn *k = h->data;

    (void)hint;
    if (k->in == NULL) {
        k->in = wp_xmalloc(SIP_TCP_BUF + 1);
    }
    *buf = uv_buf_init(k->in + k->inlen, (unsigned)(SIP_TCP_BUF - k->inlen));
}

static void conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct sip_conn *k = s->data;

    (void)buf;
    if (k->r->done || k->closing) {
        return;
    }
    if (nread == UV_EOF) {
        conn_fail(k, "connection closed before an answer", 0);
        return;
    }
    if (nread == UV_ENOBUFS) {
        conn_fail(k, "answer larger than 16 KiB", 0);
        return;
    }
    if (nread < 0) {
        conn_fail(k, "connection lost before an answer", (int)nread);
        return;
    }
    k->inlen += (size_t)nread;
    conn_frame(k);
}

static void conn_written(uv_write_t *req, int status)
{
    struct sip_conn *k = req->data;

    if (status < 0 && status != UV_ECANCELED && !k->closing) {
        conn_fail(k, "cannot send OPTIONS", status);
    }
}

static void conn_connected(uv_connect_t *req, int status)
{
    struct sip_conn *k = req->data;
    struct sip_run *r = k->r;
    struct sockaddr_storage me;
    int mlen = (int)sizeof(me);
    char host[INET6_ADDRSTRLEN + 2] = "127.0.0.1";
    char ip[INET6_ADDRSTRLEN] = "";
    unsigned lport = 0;
    size_t len = 0;
    uv_buf_t b;
    int rc = 0;

    if (status == UV_ECANCELED || k->closing) {
        return;
    }
    if (status < 0) {
        conn_fail(k, "cannot connect", status);
        return;
    }
    if (uv_tcp_getsockname(&k->h, (struct sockaddr *)&me, &mlen) == 0) {
        if (me.ss_family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&me;
            inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
            snprintf(host, sizeof(host), "[%s]", ip);
            lport = ntohs(s6->sin6_port);
        } else {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&me;
            inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
            snprintf(host, sizeof(host), "%s", ip);
            lport = ntohs(s4->sin_port);
        }
    }
    len = build_request(k->rd, r, host, lport, k->out, sizeof(k->out));
    if (len == 0) {
        conn_fail(k, "cannot send OPTIONS", -EMSGSIZE);
        return;
    }
    b = uv_buf_init(k->out, (unsigned)len);
    r->t0_ns = mono_ns();
    r->sent = 1;
    rc = uv_write(&k->wreq, (uv_stream_t *)&k->h, &b, 1, conn_written);
    if (rc == 0) {
        rc = uv_read_start((uv_stream_t *)&k->h, conn_alloc, conn_read);
    }
    if (rc < 0) {
        conn_fail(k, "cannot send OPTIONS", rc);
    }
}

/* Start TCP connections up to SIP_TCP_PARALLEL at once. */
static void tcp_start_more(struct sip_round *rd)
{
    while (rd->tcp_next < rd->ntcp && rd->tcp_active < SIP_TCP_PARALLEL) {
        struct sip_conn *k = &rd->conns[rd->tcp_next];
        struct sip_run *r = &rd->runs[rd->tcp_idx[rd->tcp_next]];
        int rc = 0;

        rd->tcp_next++;
        if (r->done) {
            continue; /* not resolved */
        }
        k->rd = rd;
        k->r = r;
        rc = uv_tcp_init(&rd->loop, &k->h);
        if (rc < 0) {
            r->fail = "cannot connect";
            r->err = rc;
            r->done = 1;
            continue;
        }
        k->open = 1;
        k->h.data = k;
        k->creq.data = k;
        k->wreq.data = k;
        rd->tcp_active++;
        r->deadline_ns = mono_ns() + rd->c->timeout_ms * 1000000;
        rc = uv_tcp_connect(&k->creq, &k->h, (const struct sockaddr *)&r->addr, conn_connected);
        if (rc < 0) {
            conn_fail(k, "cannot connect", rc);
        }
    }
}

/* Close the connections whose timeout passed; the time until the next deadline in ns (or -1
 * when none is pending). */
static int64_t tcp_deadlines(struct sip_round *rd, int64_t now)
{
    int64_t wait = -1;

    for (size_t i = 0; i < rd->tcp_next; i++) {
        struct sip_conn *k = &rd->conns[i];
        if (!k->open || k->closing || k->r->done) {
            continue;
        }
        if (k->r->deadline_ns <= now) {
            conn_finish(k); /* no answer */
        } else if (wait < 0 || k->r->deadline_ns - now < wait) {
            wait = k->r->deadline_ns - now;
        }
    }
    return wait;
}

static int tcp_all_done(const struct sip_round *rd)
{
    return !rd->loop_ok || (rd->tcp_next == rd->ntcp && rd->tcp_active == 0);
}

/* Close what is still open and the loop itself. */
static void tcp_cleanup(struct sip_round *rd)
{
    if (!rd->loop_ok) {
        return;
    }
    for (size_t i = 0; i < rd->tcp_next; i++) {
        if (rd->conns[i].open) {
            conn_finish(&rd->conns[i]);
        }
    }
    /* only close callbacks and cancelled requests are left: this returns */
    uv_run(&rd->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&rd->loop) != 0) {
        abort(); /* a handle still open: a bug here, not bad input */
    }
    rd->loop_ok = 0;
    for (size_t i = 0; i < rd->ntcp; i++) {
        free(rd->conns[i].in);
    }
}

/* ---- the round ---- */

static void run_round(struct sip_round *rd)
{
    size_t n = rd->n;
    size_t next = 0;   /* next run to send */
    size_t oldest = 0; /* runs before it are done */
    size_t budget = n * SIP_READS_PER < SIP_READS_MIN ? SIP_READS_MIN : n * SIP_READS_PER;
    int64_t timeout_ns = rd->c->timeout_ms * 1000000;
    int64_t round_end = mono_ns() + 2 * timeout_ns; /* bounds a send buffer that stays full */
    char req[2048];
    char me[INET6_ADDRSTRLEN + 2];

    for (;;) {
        struct pollfd pfd[3];
        nfds_t np = 0;
        int64_t now = 0;
        int64_t wait_ns = -1;
        int64_t tcp_wait = -1;
        int blocked = 0;

        if (rd->loop_ok) {
            tcp_start_more(rd);
            uv_run(&rd->loop, UV_RUN_NOWAIT);
        }
        /* send until the socket buffer is full */
        while (next < n) {
            struct sip_run *r = &rd->runs[next];
            size_t len = 0;
            if (r->done || r->tcp) {
                next++;
                continue;
            }
            wp_sip_local_host(&r->addr, r->addrlen, me, sizeof(me));
            len = build_request(rd, r, me, rd->ports[r->sock], req, sizeof(req));
            if (len == 0) {
                r->err = -EMSGSIZE;
                r->done = 1;
                next++;
                continue;
            }
            r->t0_ns = mono_ns();
            if (sendto(rd->fds[r->sock], req, len, MSG_NOSIGNAL, (struct sockaddr *)&r->addr,
                       r->addrlen) < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
                    blocked = 1;
                    break;
                }
                r->err = -errno;
                r->done = 1;
                next++;
                continue;
            }
            r->sent = 1;
            r->deadline_ns = r->t0_ns + timeout_ns;
            next++;
        }
        now = mono_ns();
        if (blocked && now >= round_end) {
            for (; next < n; next++) {
                if (!rd->runs[next].done && !rd->runs[next].tcp) {
                    rd->runs[next].err = -ENOBUFS;
                    rd->runs[next].done = 1;
                }
            }
            blocked = 0;
        }
        /* UDP runs are sent in order with one timeout, so their deadlines come in order too */
        while (oldest < next) {
            struct sip_run *r = &rd->runs[oldest];
            if (!r->tcp && !r->done && r->sent) {
                if (r->deadline_ns > now) {
                    wait_ns = r->deadline_ns - now;
                    break;
                }
                r->done = 1; /* no answer */
            }
            oldest++;
        }
        if (rd->loop_ok) {
            tcp_wait = tcp_deadlines(rd, now);
            tcp_start_more(rd); /* slots the deadlines freed */
        }
        if (oldest == next && next == n && tcp_all_done(rd)) {
            break;
        }
        if (budget == 0) {
            break; /* flooded: the rest count as unanswered */
        }
        if (wait_ns < 0 || blocked) {
            wait_ns = wait_ns < 0 ? 100000000 : (wait_ns < 100000000 ? wait_ns : 100000000);
        }
        if (tcp_wait >= 0 && tcp_wait < wait_ns) {
            wait_ns = tcp_wait;
        }
        for (int s = 0; s < 2; s++) {
            if (rd->fds[s] >= 0) {
                pfd[np].fd = rd->fds[s];
                pfd[np].events = POLLIN | (blocked ? POLLOUT : 0);
                pfd[np].revents = 0;
                np++;
            }
        }
        if (rd->loop_ok) {
            /* the private loop's epoll fd: readable when one of its sockets is ready */
            pfd[np].fd = uv_backend_fd(&rd->loop);
            pfd[np].events = POLLIN;
            pfd[np].revents = 0;
            np++;
            if (uv_backend_timeout(&rd->loop) == 0) {
                wait_ns = 0; /* callbacks are pending */
            }
        }
        if (np == 0) {
            break;
        }
        if (poll(pfd, np, (int)((wait_ns + 999999) / 1000000)) < 0 && errno != EINTR) {
            break;
        }
        for (nfds_t i = 0; i < np; i++) {
            if ((pfd[i].revents & (POLLIN | POLLERR)) &&
                (pfd[i].fd == rd->fds[0] || pfd[i].fd == rd->fds[1])) {
                drain(rd, pfd[i].fd, &budget);
            }
        }
    }
    /* what is left (a flood used up the reads) counts as unanswered */
    for (size_t i = 0; i < n; i++) {
        if (!rd->runs[i].done) {
            rd->runs[i].done = 1;
        }
    }
    tcp_cleanup(rd);
}

/* ---- reporting ---- */

static const char *state_name(enum sip_state s)
{
    switch (s) {
    case SIP_UP:
        return "idle";
    case SIP_DOWN:
        return "unavailable";
    default:
        return "unknown";
    }
}

static void report(struct wp_probe *p, struct sip_run *r, struct wp_sink *out)
{
    struct sip_ctx *c = p->ctx;
    struct sip_target *t = r->t;
    double v[4];
    char raw[SIP_REASON_MAX + 16];
    char msg[512];
    unsigned status = WP_CHECK_OK;

    if (r->answered) {
        t->misses = 0;
        t->answers++;
        if (t->state != SIP_UP && t->answers >= (unsigned)c->up_after) {
            t->state = SIP_UP;
        }
        snprintf(raw, sizeof(raw), "%d%s%s", r->code, r->reason[0] != '\0' ? " " : "", r->reason);
        snprintf(msg, sizeof(msg), "SIP OK: %s in %.3f s", raw, r->rtt_s);
    } else {
        t->answers = 0;
        t->misses++;
        if (t->state != SIP_DOWN && t->misses >= (unsigned)c->down_after) {
            t->state = SIP_DOWN;
        }
        snprintf(raw, sizeof(raw), "no answer");
        status = t->state == SIP_DOWN ? WP_CHECK_CRITICAL : WP_CHECK_WARNING;
        if (r->gai_err != 0) {
            snprintf(msg, sizeof(msg), "SIP %s: %s: cannot resolve: %s (%u in a row)",
                     status == WP_CHECK_CRITICAL ? "CRITICAL" : "WARNING", t->where,
                     r->gai_err == EAI_SYSTEM ? wp_strerror(r->err) : gai_strerror(r->gai_err),
                     t->misses);
        } else if (r->fail != NULL) {
            snprintf(msg, sizeof(msg), "SIP %s: %s: %s%s%s (%u in a row)",
                     status == WP_CHECK_CRITICAL ? "CRITICAL" : "WARNING", t->info, r->fail,
                     r->err != 0 ? ": " : "", r->err != 0 ? wp_strerror(r->err) : "", t->misses);
        } else if (r->err != 0) {
            snprintf(msg, sizeof(msg), "SIP %s: %s: cannot send OPTIONS: %s (%u in a row)",
                     status == WP_CHECK_CRITICAL ? "CRITICAL" : "WARNING", t->where,
                     wp_strerror(r->err), t->misses);
        } else {
            snprintf(msg, sizeof(msg), "SIP %s: no answer to OPTIONS in %g s (%u in a row)",
                     status == WP_CHECK_CRITICAL ? "CRITICAL" : "WARNING",
                     (double)c->timeout_ms / 1000.0, t->misses);
        }
    }
    v[0] = t->state == SIP_UP ? 1.0 : t->state == SIP_DOWN ? 0.0 : NAN;
    v[1] = r->answered ? r->rtt_s : NAN;
    v[2] = r->answered ? (double)r->code : NAN;
    v[3] = (double)t->misses;
    WP_PLOG(p, WP_LOG_DEBUG, "%s: %s", t->name, msg);
    wp_sink_metric(out, &kind_sip, t->name, v);
    /* a state record on the first round, on a state change, and on a new status code while
     * up; misses before down_after change nothing */
    if (!t->reported || t->state != t->reported_state ||
        (r->answered && t->state == SIP_UP && r->code != t->reported_code)) {
        wp_sink_state(out, t->name, c->group, state_name(t->state), raw, t->info);
        t->reported = 1;
        t->reported_state = t->state;
        t->reported_code = r->answered ? r->code : 0;
    }
    wp_sink_check(out, t->check, status, msg);
}

/* ---- probe callbacks ---- */

static int sip_sample(struct wp_probe *p, struct wp_sink *out)
{
    struct sip_ctx *c = p->ctx;
    struct sip_round *rd = wp_xcalloc(1, sizeof(*rd));
    size_t n = c->targets.n;

    wp_sip_init();
    rd->c = c;
    rd->n = n;
    rd->fds[0] = -1;
    rd->fds[1] = -1;
    rd->runs = wp_xcalloc(n, sizeof(*rd->runs));
    c->cseq = c->cseq % 2000000000u + 1;
    for (size_t i = 0; i < n; i++) {
        rd->runs[i].t = &c->targets.v[i];
        rd->runs[i].tcp = c->targets.v[i].transport == SIP_TCP;
        rd->ntcp += rd->runs[i].tcp;
    }
    if (rd->ntcp > 0) {
        int rc = uv_loop_init(&rd->loop);
        if (rc < 0) {
            WP_PLOG(p, WP_LOG_WARN, "cannot start a loop for the TCP targets: %s", uv_strerror(rc));
        } else {
            rd->loop_ok = 1;
            rd->tcp_idx = wp_xcalloc(rd->ntcp, sizeof(*rd->tcp_idx));
            rd->conns = wp_xcalloc(rd->ntcp, sizeof(*rd->conns));
        }
        for (size_t i = 0, k = 0; i < n; i++) {
            if (!rd->runs[i].tcp) {
                continue;
            }
            if (rd->loop_ok) {
                rd->tcp_idx[k++] = i;
            } else {
                rd->runs[i].fail = "cannot connect";
                rd->runs[i].err = rc;
                rd->runs[i].done = 1;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!rd->runs[i].done) {
            run_prepare(rd, &rd->runs[i], i);
        }
    }
    for (int s = 0; s < 2; s++) {
        if (rd->fd_err[s] < 0) {
            WP_PLOG(p, WP_LOG_WARN, "cannot open a UDP socket (%s): %s", s == 1 ? "IPv6" : "IPv4",
                    wp_strerror(rd->fd_err[s]));
        }
    }
    run_round(rd);
    for (size_t i = 0; i < n; i++) {
        report(p, &rd->runs[i], out);
    }
    for (int s = 0; s < 2; s++) {
        if (rd->fds[s] >= 0) {
            close(rd->fds[s]);
        }
    }
    free(rd->tcp_idx);
    free(rd->conns);
    free(rd->runs);
    free(rd);
    return 0;
}

static int sip_init(struct wp_probe *p)
{
    struct sip_ctx *c = p->ctx;

    wp_sip_init();
    /* the defaults of the custom options (freed by free_name with the options) */
    if (c->group == NULL) {
        c->group = wp_xstrdup("sip");
    }
    if (c->from_user == NULL) {
        c->from_user = wp_xstrdup("watchpost");
    }
    if (c->timeout_ms > p->interval_ms) {
        WP_PLOG(p, WP_LOG_WARN,
                "timeout %lld ms is above the interval; a slow round skips the next",
                (long long)c->timeout_ms);
    }
    return 0;
}

static void sip_destroy(struct wp_probe *p)
{
    (void)p; /* everything lives in the options, freed with them */
}

const struct wp_probe_ops wp_probe_sipping = {
    .name = "sipping",
    .summary = "SIP OPTIONS qualify (reachability and round trip) of phones, IVR ports, trunks",
    .opts = sip_opts,
    .ctx_size = sizeof(struct sip_ctx),
    .flags = WP_PROBE_BLOCKING,
    .init = sip_init,
    .sample = sip_sample,
    .start = NULL,
    .stop = NULL,
    .destroy = sip_destroy,
    .committed = NULL,
};
