/* SPDX-License-Identifier: Apache-2.0 */
/* Names for error codes. */
#include "wp/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void wp_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

const char *wp_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case WP_EPROTO:
        return "protocol error";
    case WP_ETOOBIG:
        return "length over limit";
    case WP_ETRUNC:
        return "truncated input";
    case WP_ETYPE:
        return "wrong value type";
    case WP_EKIND:
        return "unknown message or record kind";
    case WP_EVERSION:
        return "unsupported protocol version";
    case WP_ECONFIG:
        return "invalid configuration";
    case WP_ETLS:
        return "TLS failure";
    case WP_EAUTH:
        return "peer not authorised";
    case WP_EAGAIN:
        return "try again";
    case WP_ECORRUPT:
        return "checksum mismatch";
    case WP_ENOTFOUND:
        return "not found";
    case WP_ECLOSED:
        return "connection closed";
    case WP_ERRD:
        return "RRD error";
    case WP_EDB:
        return "database error";
    default:
        break;
    }
    if (err < 0 && err > -1000) {
        return strerror(-err); /* glibc's strerror is thread-safe for known codes */
    }
    return "unknown error";
}
