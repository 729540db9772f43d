/* SPDX-License-Identifier: Apache-2.0 */
/* `watchpost status`: the running collector's counters from its control socket. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ctlc.h"
#include "wp/err.h"

int cli_status(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"state-dir", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    const char *state = getenv("WATCHPOST_STATE_DIR");
    char path[4096];
    msgpack_unpacked up;
    void *body = NULL;
    int opt = 0;

    if (state == NULL) {
        state = "/var/lib/watchpost";
    }
    optind = 1;
    while ((opt = getopt_long(argc, argv, "s:", longopts, NULL)) != -1) {
        if (opt == 's') {
            state = optarg;
        } else {
            fprintf(stderr, "usage: watchpost status [--state-dir DIR]\n");
            return 2;
        }
    }
    snprintf(path, sizeof(path), "%s/collector.sock", state);
    msgpack_unpacked_init(&up);
    int rc = cli_ctl_request(path, "stats", 5000, &up, &body);
    if (rc < 0) {
        fprintf(stderr, "status: no collector answering on %s: %s\n", path, wp_strerror(rc));
        msgpack_unpacked_destroy(&up);
        free(body);
        return 1;
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
    static const struct option longopts[] = {
        {"state-dir", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    const char *state = getenv("WATCHPOST_STATE_DIR");
    char path[4096];
    msgpack_unpacked up;
    void *body = NULL;
    int opt = 0;
    int ok = 0;

    if (state == NULL) {
        state = "/var/lib/watchpost";
    }
    optind = 1;
    while ((opt = getopt_long(argc, argv, "s:", longopts, NULL)) != -1) {
        if (opt == 's') {
            state = optarg;
        } else {
            fprintf(stderr, "usage: watchpost reload [--state-dir DIR]\n");
            return 2;
        }
    }
    snprintf(path, sizeof(path), "%s/collector.sock", state);
    msgpack_unpacked_init(&up);
    int rc = cli_ctl_request(path, "reload", 30000, &up, &body);
    if (rc < 0) {
        fprintf(stderr, "reload: no collector answering on %s: %s\n", path, wp_strerror(rc));
        msgpack_unpacked_destroy(&up);
        free(body);
        return 1;
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
