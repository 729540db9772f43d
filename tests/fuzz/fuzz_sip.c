/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for what the sipcall probe reads from the network (probes/sip_util.c): the
 * input is taken as a SIP response (and its SDP body, and its digest challenge answered), as an
 * SDP body alone and as an RTP packet (with its G.711 payload decoded). Every copied field must
 * be NUL-terminated inside its buffer and every offset inside the input. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sip_util.h"
#include "wp/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_sip: invariant broken: %s\n", what);
        abort();
    }
}

static void check_str(const char *s, size_t cap, const char *what)
{
    check(memchr(s, '\0', cap) != NULL, what);
}

static void check_sdp(const struct wp_sdp *sdp)
{
    check_str(sdp->addr, sizeof(sdp->addr), "SDP address terminated");
    check(sdp->port >= 0 && sdp->port <= 65535, "SDP port in range");
    check(sdp->pt >= -1 && sdp->pt <= 127, "SDP payload type in range");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct wp_sip_resp r;
    struct wp_sdp sdp;
    char auth[1024];
    int pt = 0;
    size_t off = 0;
    size_t plen = 0;

    wp_sip_init();
    if (wp_sip_parse_response((const char *)data, size, &r) == 0) {
        check(r.code >= 100 && r.code <= 699, "status code in range");
        check_str(r.reason, sizeof(r.reason), "reason terminated");
        check_str(r.call_id, sizeof(r.call_id), "Call-ID terminated");
        check_str(r.method, sizeof(r.method), "CSeq method terminated");
        check_str(r.branch, sizeof(r.branch), "branch terminated");
        check_str(r.to_tag, sizeof(r.to_tag), "To tag terminated");
        check_str(r.to_user, sizeof(r.to_user), "To user terminated");
        check_str(r.contact, sizeof(r.contact), "Contact terminated");
        check_str(r.contact_user, sizeof(r.contact_user), "Contact user terminated");
        check_str(r.contact_host, sizeof(r.contact_host), "Contact host terminated");
        check(r.contact_port >= 0 && r.contact_port <= 65535, "Contact port in range");
        check_str(r.route, sizeof(r.route), "route set terminated");
        check(r.body_len < sizeof(r.body), "body within its buffer");
        check(strchr(r.route, '\r') == NULL && strchr(r.route, '\n') == NULL,
              "no line break in the route set");
        if (r.has_sdp && wp_sdp_parse(r.body, r.body_len, &sdp) == 0) {
            check_sdp(&sdp);
        }
        if (r.ch.present) {
            check_str(r.ch.realm, sizeof(r.ch.realm), "realm terminated");
            check_str(r.ch.nonce, sizeof(r.ch.nonce), "nonce terminated");
            check(strchr(r.ch.nonce, '"') == NULL, "no quote in the nonce");
            int rc = wp_sip_digest(&r.ch, "probe", "pw", "INVITE", "sip:4000@127.0.0.1", "0a4f113b",
                                   1, auth, sizeof(auth));
            check(rc == 0 || rc == WP_ETOOBIG || rc == WP_EPROTO, "digest result");
            if (rc == 0) {
                check(strlen(auth) < sizeof(auth), "digest answer fits");
                check(strpbrk(auth, "\r\n") == NULL, "no line break in the digest answer");
            }
        }
    }
    if (wp_sdp_parse((const char *)data, size, &sdp) == 0) {
        check_sdp(&sdp);
    }
    if (wp_rtp_payload(data, size, &pt, &off, &plen) == 0) {
        check(pt >= 0 && pt <= 127, "RTP payload type in range");
        check(off >= 12 && off <= size && plen <= size - off, "RTP payload inside the packet");
        double rms = wp_g711_rms(data + off, plen, pt == 8);
        check(rms >= 0.0 && rms <= 32768.0 && !isnan(rms), "RMS in range");
    }
    return 0;
}
