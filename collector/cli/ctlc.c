/* SPDX-License-Identifier: Apache-2.0 */
/* Blocking control-socket client: one request, one reply frame. */
#include "ctlc.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "wp/clock.h"
#include "wp/err.h"
#include "wp/wire.h"

static int read_full(int fd, uint8_t *p, size_t n, int64_t deadline)
{
    size_t got = 0;
    while (got < n) {
        int64_t left = deadline - wp_clock_mono_ms();
        if (left <= 0) {
            return -ETIMEDOUT;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return r == 0 ? -ETIMEDOUT : -errno;
        }
        ssize_t k = read(fd, p + got, n - got);
        if (k == 0) {
            return WP_ECLOSED;
        }
        if (k < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        got += (size_t)k;
    }
    return 0;
}

int cli_ctl_request(const char *path, const char *req, int timeout_ms, msgpack_unpacked *up,
                    void **body_out)
{
    struct sockaddr_un sa;
    uint8_t frame[64];
    uint8_t hdr[4];
    uint8_t *body = NULL;
    int fd = -1;
    int rc = 0;
    int64_t deadline = wp_clock_mono_ms() + timeout_ms;

    *body_out = NULL;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path) || strlen(req) > 32) {
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        rc = -errno;
        goto out;
    }
    /* {t: req}: fixmap(1) fixstr("t") fixstr(req) */
    size_t rl = strlen(req);
    size_t blen = 1 + 2 + 1 + rl;
    frame[0] = frame[1] = frame[2] = 0;
    frame[3] = (uint8_t)blen;
    frame[4] = 0x81;
    frame[5] = 0xa1;
    frame[6] = 't';
    frame[7] = (uint8_t)(0xa0 | rl);
    memcpy(frame + 8, req, rl);
    if (write(fd, frame, 4 + blen) != (ssize_t)(4 + blen)) {
        rc = -errno;
        goto out;
    }
    if ((rc = read_full(fd, hdr, 4, deadline)) < 0) {
        goto out;
    }
    uint32_t len = 0;
    if ((rc = wp_frame_peek(hdr, 4, 1u << 20, &len)) < 0) {
        goto out;
    }
    body = malloc(len);
    if (body == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = read_full(fd, body, len, deadline)) < 0) {
        goto out;
    }
    size_t off = 0;
    if (msgpack_unpack_next(up, (const char *)body, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        up->data.type != MSGPACK_OBJECT_MAP) {
        rc = WP_EPROTO;
    }
    *body_out = body;
    body = NULL;
out:
    free(body);
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}
