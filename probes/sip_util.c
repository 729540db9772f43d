/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SIP helpers shared by the SIP probes: a response parsed with libosip2 into a flat struct
 * of bounded copies, the audio stream of an SDP answer, RFC 2617 digest answers (MD5 from
 * mbedTLS), RTP payload extraction and G.711 decoding. Everything here reads bytes from
 * the network: every length is checked before use (tests/fuzz/fuzz_sip.c).
 */
#include "sip_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/md.h>
#include <osipparser2/osip_message.h>
#include <osipparser2/osip_parser.h>
#include <osipparser2/osip_port.h>

#include "wp/err.h"
#include "wp/mem.h"

#define SDP_LINE_MAX 1024

/* ---- init, random ---- */

static pthread_once_t sip_once = PTHREAD_ONCE_INIT;

static void osip_trace_none(const char *file, int line, osip_trace_level_t level, const char *fmt,
                            va_list ap)
{
    (void)file;
    (void)line;
    (void)level;
    (void)fmt;
    (void)ap;
}

static void sip_init_once(void)
{
    parser_init();
    /* libosip2 traces malformed input to stdout; peers control what we read */
    osip_trace_initialize_func(END_TRACE_LEVEL, osip_trace_none);
    for (int l = TRACE_LEVEL0; l < END_TRACE_LEVEL; l++) {
        osip_trace_disable_level((osip_trace_level_t)l);
    }
}

void wp_sip_init(void)
{
    pthread_once(&sip_once, sip_init_once);
}

void wp_sip_rand_hex(char *out, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t b[32];
    size_t got = 0;

    if (len > sizeof(b)) {
        len = sizeof(b);
    }
    while (got < len) {
        ssize_t r = getrandom(b + got, len - got, 0);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            /* no entropy source: uniqueness still comes from the time and the pid */
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t x =
                (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ ((uint64_t)getpid() << 48);
            for (; got < len; got++) {
                x = x * 6364136223846793005ULL + 1442695040888963407ULL;
                b[got] = (uint8_t)(x >> 56);
            }
            break;
        }
        got += (size_t)r;
    }
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * len] = '\0';
}

/* ---- local address ---- */

void wp_sip_local_host(const struct sockaddr_storage *addr, socklen_t alen, char *out, size_t len)
{
    struct sockaddr_storage me;
    socklen_t mlen = sizeof(me);
    char ip[INET6_ADDRSTRLEN] = "";
    int fd = socket(addr->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    snprintf(out, len, "%s", addr->ss_family == AF_INET6 ? "[::1]" : "127.0.0.1");
    if (fd < 0) {
        return;
    }
    if (connect(fd, (const struct sockaddr *)addr, alen) == 0 &&
        getsockname(fd, (struct sockaddr *)&me, &mlen) == 0) {
        if (me.ss_family == AF_INET6 &&
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&me)->sin6_addr, ip, sizeof(ip))) {
            snprintf(out, len, "[%s]", ip);
        } else if (me.ss_family == AF_INET &&
                   inet_ntop(AF_INET, &((struct sockaddr_in *)&me)->sin_addr, ip, sizeof(ip))) {
            snprintf(out, len, "%s", ip);
        }
    }
    close(fd);
}

/* ---- response ---- */

/* Copy src (NULL: "") into dst of size len: -1 when it does not fit or holds a control
 * character (it goes into our own requests and into logs). */
static int copy_tok(char *dst, size_t len, const char *src)
{
    size_t n = src != NULL ? strlen(src) : 0;

    if (n >= len) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)src[i];
        if (ch < 0x20 || ch == 0x7f) {
            return -1;
        }
    }
    memcpy(dst, src != NULL ? src : "", n);
    dst[n] = '\0';
    return 0;
}

/* Like copy_tok without the surrounding double quotes, if any. */
static int copy_unquoted(char *dst, size_t len, const char *src)
{
    size_t n = src != NULL ? strlen(src) : 0;

    if (n >= 2 && src[0] == '"' && src[n - 1] == '"') {
        if (n - 2 >= len) {
            return -1;
        }
        char tmp[WP_SIP_NONCE_MAX];
        if (n - 2 >= sizeof(tmp)) {
            return -1;
        }
        memcpy(tmp, src + 1, n - 2);
        tmp[n - 2] = '\0';
        return copy_tok(dst, len, tmp);
    }
    return copy_tok(dst, len, src);
}

void wp_sip_copy_reason(char *dst, size_t len, const char *src)
{
    size_t j = 0;

    for (size_t i = 0; src != NULL && src[i] != '\0' && j + 1 < len; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[j++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    dst[j] = '\0';
}

static int parse_challenge(osip_message_t *m, struct wp_sip_challenge *ch)
{
    osip_www_authenticate_t *wa = NULL;
    const char *type = NULL;
    const char *algo = NULL;
    const char *qop = NULL;

    memset(ch, 0, sizeof(*ch));
    if (osip_message_get_www_authenticate(m, 0, &wa) < 0 || wa == NULL) {
        wa = NULL;
        if (osip_message_get_proxy_authenticate(m, 0, &wa) < 0 || wa == NULL) {
            return 0;
        }
        ch->proxy = 1;
    }
    type = osip_www_authenticate_get_auth_type(wa);
    if (type == NULL || strcasecmp(type, "Digest") != 0) {
        return 0;
    }
    if (copy_unquoted(ch->realm, sizeof(ch->realm), osip_www_authenticate_get_realm(wa)) < 0 ||
        copy_unquoted(ch->nonce, sizeof(ch->nonce), osip_www_authenticate_get_nonce(wa)) < 0 ||
        copy_unquoted(ch->opaque, sizeof(ch->opaque), osip_www_authenticate_get_opaque(wa)) < 0) {
        return -1;
    }
    if (strchr(ch->realm, '"') != NULL || strchr(ch->nonce, '"') != NULL ||
        strchr(ch->opaque, '"') != NULL || strchr(ch->realm, '\\') != NULL ||
        strchr(ch->nonce, '\\') != NULL || strchr(ch->opaque, '\\') != NULL) {
        return -1; /* they go back quoted in our Authorization header */
    }
    algo = osip_www_authenticate_get_algorithm(wa);
    ch->algo_ok = algo == NULL || strcasecmp(algo, "MD5") == 0 || strcasecmp(algo, "\"MD5\"") == 0;
    qop = osip_www_authenticate_get_qop_options(wa);
    if (qop != NULL) {
        /* "auth", "auth,auth-int", "\"auth-int, auth\"": look for the token auth */
        const char *s = qop;
        while ((s = strstr(s, "auth")) != NULL) {
            char before = s == qop ? ',' : s[-1];
            char after = s[4];
            if ((before == ',' || before == '"' || before == ' ') &&
                (after == '\0' || after == ',' || after == '"' || after == ' ')) {
                ch->qop_auth = 1;
                break;
            }
            s += 4;
        }
    }
    ch->present = 1;
    return 0;
}

/* Record-Route entries in reverse order into r->route. */
static int parse_route(osip_message_t *m, struct wp_sip_resp *r)
{
    int n = osip_list_size(&m->record_routes);
    size_t used = 0;

    r->route[0] = '\0';
    for (int i = n - 1; i >= 0; i--) {
        osip_record_route_t *rr = NULL;
        char *s = NULL;
        int w = 0;
        if (osip_message_get_record_route(m, i, &rr) < 0 || rr == NULL ||
            osip_record_route_to_str(rr, &s) != 0 || s == NULL) {
            return -1;
        }
        if (strpbrk(s, "\r\n") != NULL) {
            osip_free(s);
            return -1;
        }
        w = snprintf(r->route + used, sizeof(r->route) - used, "%s%s", used > 0 ? ", " : "", s);
        osip_free(s);
        if (w < 0 || (size_t)w >= sizeof(r->route) - used) {
            return -1;
        }
        used += (size_t)w;
    }
    return 0;
}

static int parse_contact(osip_message_t *m, struct wp_sip_resp *r)
{
    osip_contact_t *ct = NULL;
    osip_uri_t *u = NULL;
    char *s = NULL;
    int rc = 0;

    if (osip_message_get_contact(m, 0, &ct) < 0 || ct == NULL ||
        (u = osip_contact_get_url(ct)) == NULL) {
        return 0; /* none, or "*" */
    }
    if (osip_uri_to_str(u, &s) != 0 || s == NULL) {
        return -1;
    }
    rc = copy_tok(r->contact, sizeof(r->contact), s);
    osip_free(s);
    if (rc < 0 || copy_tok(r->contact_user, sizeof(r->contact_user), u->username) < 0 ||
        copy_tok(r->contact_host, sizeof(r->contact_host), u->host) < 0) {
        return -1;
    }
    if (u->port != NULL) {
        char *end = NULL;
        long p = strtol(u->port, &end, 10);
        if (end == u->port || *end != '\0' || p < 1 || p > 65535) {
            return -1;
        }
        r->contact_port = (int)p;
    }
    return 0;
}

int wp_sip_parse_response(const char *buf, size_t len, struct wp_sip_resp *r)
{
    osip_message_t *m = NULL;
    osip_via_t *via = NULL;
    osip_generic_param_t *gp = NULL;
    osip_cseq_t *cseq = NULL;
    osip_to_t *to = NULL;
    osip_content_type_t *ctype = NULL;
    osip_body_t *body = NULL;
    char *cid = NULL;
    char *copy = NULL;
    char bname[] = "branch";
    char *end = NULL;
    unsigned long num = 0;
    int rc = WP_EPROTO;

    memset(r, 0, sizeof(*r));
    if (len == 0 || len > 65535) {
        return WP_EPROTO;
    }
    /* libosip2 wants a NUL-terminated message */
    copy = wp_xmalloc(len + 1);
    memcpy(copy, buf, len);
    copy[len] = '\0';
    if (osip_message_init(&m) != 0) {
        free(copy);
        return WP_EPROTO;
    }
    if (osip_message_parse(m, copy, len) != 0 || !MSG_IS_RESPONSE(m)) {
        goto out;
    }
    r->code = osip_message_get_status_code(m);
    if (r->code < 100 || r->code > 699) {
        goto out;
    }
    wp_sip_copy_reason(r->reason, sizeof(r->reason), osip_message_get_reason_phrase(m));
    if (osip_message_get_call_id(m) == NULL ||
        osip_call_id_to_str(osip_message_get_call_id(m), &cid) != 0 || cid == NULL ||
        copy_tok(r->call_id, sizeof(r->call_id), cid) < 0) {
        goto out;
    }
    cseq = osip_message_get_cseq(m);
    if (cseq == NULL || osip_cseq_get_method(cseq) == NULL || osip_cseq_get_number(cseq) == NULL ||
        copy_tok(r->method, sizeof(r->method), osip_cseq_get_method(cseq)) < 0) {
        goto out;
    }
    errno = 0;
    num = strtoul(osip_cseq_get_number(cseq), &end, 10);
    if (errno != 0 || end == osip_cseq_get_number(cseq) || *end != '\0' || num > 0xffffffffUL) {
        goto out;
    }
    r->cseq = (uint32_t)num;
    if (osip_message_get_via(m, 0, &via) >= 0 && via != NULL &&
        osip_via_param_get_byname(via, bname, &gp) == 0 && gp != NULL &&
        copy_tok(r->branch, sizeof(r->branch), gp->gvalue) < 0) {
        goto out;
    }
    to = osip_message_get_to(m);
    if (to != NULL) {
        gp = NULL;
        if (osip_to_get_tag(to, &gp) == 0 && gp != NULL &&
            copy_tok(r->to_tag, sizeof(r->to_tag), gp->gvalue) < 0) {
            goto out;
        }
        if (to->url != NULL && copy_tok(r->to_user, sizeof(r->to_user), to->url->username) < 0) {
            goto out;
        }
    }
    if (parse_contact(m, r) < 0 || parse_route(m, r) < 0 || parse_challenge(m, &r->ch) < 0) {
        goto out;
    }
    ctype = osip_message_get_content_type(m);
    if (ctype != NULL && ctype->type != NULL && ctype->subtype != NULL &&
        strcasecmp(ctype->type, "application") == 0 && strcasecmp(ctype->subtype, "sdp") == 0 &&
        osip_message_get_body(m, 0, &body) >= 0 && body != NULL && body->body != NULL) {
        if (body->length >= sizeof(r->body)) {
            goto out;
        }
        memcpy(r->body, body->body, body->length);
        r->body[body->length] = '\0';
        r->body_len = body->length;
        r->has_sdp = 1;
    }
    rc = 0;
out:
    if (cid != NULL) {
        osip_free(cid);
    }
    osip_message_free(m);
    free(copy);
    if (rc < 0) {
        memset(r, 0, sizeof(*r));
    }
    return rc;
}

/* ---- SDP ---- */

/* Parse a decimal in [0, max] at s (advancing it); -1 when there is none. */
static long parse_num(const char **s, long max)
{
    long v = 0;
    const char *p = *s;

    if (*p < '0' || *p > '9') {
        return -1;
    }
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p - '0');
        if (v > max) {
            return -1;
        }
        p++;
    }
    *s = p;
    return v;
}

int wp_sdp_parse(const char *buf, size_t len, struct wp_sdp *out)
{
    char line[SDP_LINE_MAX + 1];
    char sess_addr[sizeof(out->addr)] = "";
    int seen_v = 0;
    int in_audio = 0; /* inside the first m=audio section */
    int audio_done = 0;
    size_t i = 0;

    memset(out, 0, sizeof(*out));
    out->pt = -1;
    while (i < len) {
        size_t n = 0;
        while (i < len && buf[i] != '\n') {
            if (n >= SDP_LINE_MAX) {
                return WP_EPROTO;
            }
            line[n++] = buf[i++];
        }
        i++; /* the LF */
        if (n > 0 && line[n - 1] == '\r') {
            n--;
        }
        line[n] = '\0';
        if (memchr(line, '\0', n) != NULL || n < 2 || line[1] != '=') {
            continue; /* NUL inside, or not a type=value line: ignored */
        }
        if (line[0] == 'v') {
            seen_v = 1;
        } else if (line[0] == 'm') {
            in_audio = 0;
            if (!audio_done && strncmp(line + 2, "audio ", 6) == 0) {
                const char *s = line + 8;
                long port = parse_num(&s, 65535);
                long pt = -1;
                if (port < 0) {
                    return WP_EPROTO;
                }
                if (*s == '/') { /* port/count */
                    s++;
                    if (parse_num(&s, 65535) < 0) {
                        return WP_EPROTO;
                    }
                }
                while (*s == ' ') {
                    s++;
                }
                s = strchr(s, ' '); /* skip the proto */
                if (s != NULL) {
                    while (*s == ' ') {
                        s++;
                    }
                    pt = parse_num(&s, 127);
                }
                out->port = (int)port;
                out->pt = (int)pt;
                in_audio = 1;
                audio_done = 1;
            }
        } else if (line[0] == 'c') {
            /* c=IN IP4 addr[/ttl] */
            const char *a = strrchr(line, ' ');
            char addr[sizeof(out->addr)];
            size_t al = 0;
            if (a == NULL || strncmp(line + 2, "IN IP", 5) != 0) {
                continue;
            }
            a++;
            al = strcspn(a, "/");
            if (al == 0 || al >= sizeof(addr)) {
                return WP_EPROTO;
            }
            for (size_t k = 0; k < al; k++) {
                char ch = a[k];
                if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
                      (ch >= 'A' && ch <= 'Z') || ch == '.' || ch == ':' || ch == '-')) {
                    return WP_EPROTO;
                }
            }
            memcpy(addr, a, al);
            addr[al] = '\0';
            if (in_audio) {
                memcpy(out->addr, addr, al + 1);
            } else if (!audio_done) {
                memcpy(sess_addr, addr, al + 1);
            }
        }
    }
    if (!seen_v) {
        memset(out, 0, sizeof(*out));
        out->pt = -1;
        return WP_EPROTO;
    }
    if (out->addr[0] == '\0') {
        memcpy(out->addr, sess_addr, sizeof(out->addr));
    }
    return 0;
}

/* ---- digest ---- */

static int md5_hex(const char *s, char out[33])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char d[16];
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_MD5);

    if (md == NULL || mbedtls_md(md, (const unsigned char *)s, strlen(s), d) != 0) {
        return WP_EPROTO;
    }
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[32] = '\0';
    return 0;
}

int wp_sip_digest(const struct wp_sip_challenge *ch, const char *user, const char *pass,
                  const char *method, const char *uri, const char *cnonce, unsigned nc, char *out,
                  size_t len)
{
    char ha1[33], ha2[33], resp[33];
    char *a1 = NULL;
    char *a2 = NULL;
    char *kd = NULL;
    int rc = 0;
    int w = 0;

    if (!ch->present || !ch->algo_ok) {
        return WP_EPROTO;
    }
    a1 = wp_xasprintf("%s:%s:%s", user, ch->realm, pass);
    a2 = wp_xasprintf("%s:%s", method, uri);
    rc = md5_hex(a1, ha1);
    if (rc == 0) {
        rc = md5_hex(a2, ha2);
    }
    if (rc == 0) {
        kd = ch->qop_auth ? wp_xasprintf("%s:%s:%08x:%s:auth:%s", ha1, ch->nonce, nc, cnonce, ha2)
                          : wp_xasprintf("%s:%s:%s", ha1, ch->nonce, ha2);
        rc = md5_hex(kd, resp);
    }
    if (rc == 0) {
        if (ch->qop_auth) {
            w = snprintf(out, len,
                         "Digest username=\"%s\", realm=\"%s\", nonce=\"%s\", uri=\"%s\", "
                         "response=\"%s\", algorithm=MD5, cnonce=\"%s\", qop=auth, nc=%08x%s%s%s",
                         user, ch->realm, ch->nonce, uri, resp, cnonce, nc,
                         ch->opaque[0] != '\0' ? ", opaque=\"" : "", ch->opaque,
                         ch->opaque[0] != '\0' ? "\"" : "");
        } else {
            w = snprintf(out, len,
                         "Digest username=\"%s\", realm=\"%s\", nonce=\"%s\", uri=\"%s\", "
                         "response=\"%s\", algorithm=MD5%s%s%s",
                         user, ch->realm, ch->nonce, uri, resp,
                         ch->opaque[0] != '\0' ? ", opaque=\"" : "", ch->opaque,
                         ch->opaque[0] != '\0' ? "\"" : "");
        }
        if (w < 0 || (size_t)w >= len) {
            rc = WP_ETOOBIG;
        }
    }
    /* a1 holds the password */
    if (a1 != NULL) {
        explicit_bzero(a1, strlen(a1));
    }
    explicit_bzero(ha1, sizeof(ha1));
    free(a1);
    free(a2);
    free(kd);
    return rc;
}

/* ---- RTP and G.711 ---- */

int wp_rtp_payload(const uint8_t *pkt, size_t len, int *pt, size_t *off, size_t *plen)
{
    size_t hdr = 12;
    size_t pad = 0;

    if (len < 12 || (pkt[0] >> 6) != 2) {
        return WP_EPROTO;
    }
    hdr += 4u * (pkt[0] & 0x0f);
    if (hdr > len) {
        return WP_EPROTO;
    }
    if (pkt[0] & 0x10) { /* header extension: 16-bit profile, 16-bit length in words */
        if (hdr + 4 > len) {
            return WP_EPROTO;
        }
        size_t ext = 4u * (((size_t)pkt[hdr + 2] << 8) | pkt[hdr + 3]);
        if (ext > len - hdr - 4) {
            return WP_EPROTO;
        }
        hdr += 4 + ext;
    }
    if (pkt[0] & 0x20) {
        pad = pkt[len - 1];
        if (pad == 0 || pad > len - hdr) {
            return WP_EPROTO;
        }
    }
    *pt = pkt[1] & 0x7f;
    *off = hdr;
    *plen = len - hdr - pad;
    return 0;
}

int16_t wp_g711_ulaw(uint8_t b)
{
    int v = 0;

    b = (uint8_t)~b;
    v = (((b & 0x0f) << 3) + 0x84) << ((b >> 4) & 7);
    v -= 0x84;
    return (int16_t)((b & 0x80) ? -v : v);
}

int16_t wp_g711_alaw(uint8_t b)
{
    int v = 0;
    int seg = 0;

    b ^= 0x55;
    seg = (b >> 4) & 7;
    v = (b & 0x0f) << 4;
    if (seg == 0) {
        v += 8;
    } else {
        v = (v + 0x108) << (seg - 1);
    }
    return (int16_t)((b & 0x80) ? v : -v);
}

double wp_g711_rms(const uint8_t *p, size_t n, int alaw)
{
    double sum = 0;

    if (n == 0) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        double s = alaw ? wp_g711_alaw(p[i]) : wp_g711_ulaw(p[i]);
        sum += s * s;
    }
    return sqrt(sum / (double)n);
}
