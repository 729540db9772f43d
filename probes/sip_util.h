/* SPDX-License-Identifier: Apache-2.0 */
/* SIP helpers for the SIP probes: response and SDP parsing, digest auth, the local address,
 * RTP and G.711. */
#ifndef WP_PROBES_SIP_UTIL_H
#define WP_PROBES_SIP_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define WP_SIP_TOKEN_MAX 128 /* Call-ID, tags, branch, user parts */
#define WP_SIP_URI_MAX   256
#define WP_SIP_ROUTE_MAX 1024
#define WP_SIP_NONCE_MAX 256
#define WP_SIP_BODY_MAX  4096

/* A digest challenge (WWW-Authenticate or Proxy-Authenticate), values unquoted. */
struct wp_sip_challenge {
    int present;  /* a Digest challenge was found */
    int proxy;    /* Proxy-Authenticate (407) rather than WWW-Authenticate (401) */
    int qop_auth; /* qop options include "auth" */
    int algo_ok;  /* algorithm absent or MD5 */
    char realm[WP_SIP_NONCE_MAX];
    char nonce[WP_SIP_NONCE_MAX];
    char opaque[WP_SIP_NONCE_MAX];
};

/*
 * What the SIP probes need of one response, copied out of libosip2's parse (every string
 * NUL-terminated, printable ASCII; a field too long for its buffer makes the parse fail).
 */
struct wp_sip_resp {
    int code;
    char reason[64];
    char call_id[WP_SIP_TOKEN_MAX];
    uint32_t cseq;
    char method[16];               /* the CSeq method */
    char branch[WP_SIP_TOKEN_MAX]; /* of the top Via, "" when absent */
    char to_tag[WP_SIP_TOKEN_MAX]; /* "" when absent */
    char to_user[WP_SIP_TOKEN_MAX];
    char contact[WP_SIP_URI_MAX]; /* the first Contact's URI, "" when absent */
    char contact_user[WP_SIP_TOKEN_MAX];
    char contact_host[WP_SIP_URI_MAX];
    int contact_port;             /* 0 when absent */
    char route[WP_SIP_ROUTE_MAX]; /* Record-Route reversed, "<a>, <b>" (a UAC's route set) */
    struct wp_sip_challenge ch;
    int has_sdp; /* Content-Type application/sdp with a body */
    char body[WP_SIP_BODY_MAX];
    size_t body_len;
};

/* The parts of an SDP answer the call probe uses. */
struct wp_sdp {
    char addr[64]; /* c= connection address ("" when absent) */
    int port;      /* m=audio port; 0 when absent or refused */
    int pt;        /* first payload type of m=audio, -1 when absent */
};

/* Initialise libosip2's parser once, with its traces off. Any thread. */
void wp_sip_init(void);

/* len random bytes as 2*len hex digits into out (2*len+1 bytes); len at most 32. */
void wp_sip_rand_hex(char *out, size_t len);

/* The local address the kernel would send from to addr (alen bytes), for Via and Contact, as
 * URI host text ("[v6]" for IPv6) into out; the loopback address when it cannot tell. A
 * connected UDP socket sends nothing. */
void wp_sip_local_host(const struct sockaddr_storage *addr, socklen_t alen, char *out, size_t len);

/* src (NULL: "") as a reason phrase into dst of size len: non-printable bytes become '?', cut
 * to fit. */
void wp_sip_copy_reason(char *dst, size_t len, const char *src);

/*
 * Parse a SIP response of len bytes (buf need not be NUL-terminated) into *r. 0, or
 * WP_EPROTO for anything that is not a well-formed response with Call-ID and CSeq, or whose
 * fields do not fit. Call wp_sip_init() first.
 */
int wp_sip_parse_response(const char *buf, size_t len, struct wp_sip_resp *r);

/* Parse an SDP body of len bytes for its connection address and first audio stream. 0 or
 * WP_EPROTO (no v= line, a line over 1 KiB, a bad port). */
int wp_sdp_parse(const char *buf, size_t len, struct wp_sdp *out);

/*
 * The value of an Authorization (or Proxy-Authorization) header answering ch for method and
 * uri with user and pass (RFC 2617 MD5, qop=auth with cnonce and nc when offered) into out.
 * 0, WP_ETOOBIG when out is too small, WP_EPROTO for an unsupported algorithm.
 */
int wp_sip_digest(const struct wp_sip_challenge *ch, const char *user, const char *pass,
                  const char *method, const char *uri, const char *cnonce, unsigned nc, char *out,
                  size_t len);

/* The payload of an RTP packet: 0 with *pt, *off and *plen set, or WP_EPROTO (not version
 * 2, header, CSRC list, extension or padding beyond len). */
int wp_rtp_payload(const uint8_t *pkt, size_t len, int *pt, size_t *off, size_t *plen);

/* Linear 16-bit sample of a G.711 mu-law / A-law byte. */
int16_t wp_g711_ulaw(uint8_t b);
int16_t wp_g711_alaw(uint8_t b);

/* Root mean square of n G.711 samples (alaw: A-law, else mu-law), 0..32768; 0 for n 0. */
double wp_g711_rms(const uint8_t *p, size_t n, int alaw);

#endif
