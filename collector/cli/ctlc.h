/* SPDX-License-Identifier: Apache-2.0 */
/* Client side of the collector's control socket, for the CLI. */
#ifndef WP_CLI_CTLC_H
#define WP_CLI_CTLC_H

#include <msgpack.h>

/*
 * Send {t: req} to the control socket at path and wait (up to timeout_ms) for the reply
 * map, unpacked into up. Strings in up point into *body: the caller frees *body (free())
 * after destroying up. Returns 0, -ENOENT/-ECONNREFUSED when no collector is running,
 * -ETIMEDOUT, or WP_EPROTO.
 */
int cli_ctl_request(const char *path, const char *req, int timeout_ms, msgpack_unpacked *up,
                    void **body);

#endif
