/* SPDX-License-Identifier: Apache-2.0 */
/* Error codes: system errors are -errno, project errors are WP_E* below -1000. */
#ifndef WP_COMMON_ERR_H
#define WP_COMMON_ERR_H

#include <stddef.h>

enum {
    WP_EPROTO = -1001,    /* malformed frame or message */
    WP_ETOOBIG = -1002,   /* a length over its configured limit */
    WP_ETRUNC = -1003,    /* input ends inside a frame or record */
    WP_ETYPE = -1004,     /* a msgpack value of the wrong type */
    WP_EKIND = -1005,     /* unknown message type or record kind */
    WP_EVERSION = -1006,  /* protocol version not supported */
    WP_ECONFIG = -1007,   /* invalid configuration */
    WP_ETLS = -1008,      /* TLS failure (handshake, record) */
    WP_EAUTH = -1009,     /* peer not allowed (CA, revoked, CN mismatch) */
    WP_EAGAIN = -1010,    /* needs more input or output space, try again */
    WP_ECORRUPT = -1011,  /* on-disk data failed its checksum */
    WP_ENOTFOUND = -1012, /* no such agent, series or file */
    WP_ECLOSED = -1013,   /* peer closed the connection */
    WP_ERRD = -1014,      /* librrd reported an error */
    WP_EDB = -1015,       /* SQLite reported an error */
};

/* Name an error code: "-errno" values via strerror(), WP_E* by their meaning.
 * Returns a static string; thread-safe. */
const char *wp_strerror(int err);

/* printf into the caller's message buffer err (size errlen); err may be NULL or errlen 0,
 * then nothing is written. */
void wp_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
