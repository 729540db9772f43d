/* SPDX-License-Identifier: Apache-2.0 */
/* `watchpost status` and `watchpost reload`: requests to the running collector's control
 * socket. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ctlc.h"
#include "wp/err.h"

/* Parse [--state-dir DIR] for `watchpost CMD`, send {t: req} to the running collector and
 * wait up to timeout_ms. 0 with the reply in up/body (the caller destroys and frees them),
 * 1 when no collector answered (said on stderr), 2 on a usage error. */
static int ctl_call(int argc, char **argv, const char *cmd, const char *req, int timeout_ms,
                    msgpack_unpacked *up, void **body)
{
    static const struct option longopts[] = {
        {"state-dir", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    const char *state = getenv("WATCHPOST_STATE_DIR");
    char path[4096];
    int opt = 0;

    if (state == NULL) {
        state = "/var/lib/watchpost";
    }
    optind = 1;
    while ((opt = getopt_long(argc, argv, "s:", longopts, NULL)) != -1) {
        if (opt == 's') {
            state = optarg;
        } else {
            fprintf(stderr, "usage: watchpost %s [--state-dir DIR]\n", cmd);
            return 2;
        }
    }
    snprintf(path, sizeof(path), "%s/collector.sock", state);
    msgpack_unpacked_init(up);
    *body = NULL;
    int rc = cli_ctl_request(path, req, timeout_ms, up, body);
    if (rc < 0) {
        fprintf(stderr, "%s: no collector answering on %s: %s\n", cmd, path, wp_strerror(rc));
        msgpack_unpacked_destroy(up);
        free(*body);
        return 1;
    }
    return 0;
}

int cli_status(int argc, char **argv)
{
    msgpack_unpacked up;
    void *body = NULL;
    int rc = ctl_call(argc, argv, "status", "stats", 5000, &up, &body);

    if (rc != 0) {
        return rc;
    }
    const msgpack_object_map *m = &up.data.via.map;
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key;
        const msgpack_object *v = &m->ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
            continue;
        }
        printf("%-20.*s %llu\n", (int)k->via.str.size, k->via.str.ptr,
               (unsigned long long)v->via.u64);
    }
    msgpack_unpacked_destroy(&up);
    free(body);
    return 0;
}

int cli_reload(int argc, char **argv)
{
    msgpack_unpacked up;
    void *body = NULL;
    int ok = 0;
    int rc = ctl_call(argc, argv, "reload", "reload", 30000, &up, &body);

    if (rc != 0) {
        return rc;
    }
    const msgpack_object_map *m = &up.data.via.map;
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key;
        const msgpack_object *v = &m->ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR || v->type != MSGPACK_OBJECT_STR) {
            continue;
        }
        if (k->via.str.size == 1 && k->via.str.ptr[0] == 't') {
            ok = v->via.str.size == 2 && memcmp(v->via.str.ptr, "ok", 2) == 0;
        } else if (k->via.str.size == 3 && memcmp(k->via.str.ptr, "msg", 3) == 0) {
            fprintf(stderr, "%.*s\n", (int)v->via.str.size, v->via.str.ptr);
        }
    }
    msgpack_unpacked_destroy(&up);
    free(body);
    if (!ok) {
        fprintf(stderr, "reload refused: the rules already loaded stay in force\n");
    }
    return ok ? 0 : 1;
}
