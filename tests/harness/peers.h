/* SPDX-License-Identifier: Apache-2.0 */
/* Tests that start real peers (databases, servers): a free loopback port, shell commands,
 * recursive removal, and building a probe from YAML text. Include after cmocka.h and
 * capture.h. */
#ifndef WP_TESTS_PEERS_H
#define WP_TESTS_PEERS_H

#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "capture.h"
#include "probe.h"
#include "wp/conf.h"

/* A free loopback port for a server that cannot take port 0: bind port 0, read it back,
 * release it (callers retry the start if another process takes it in between). */
static inline int peers_free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static inline int64_t peers_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void peers_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

#define assert_contains(hay, needle)                                     \
    do {                                                                 \
        if (strstr((hay), (needle)) == NULL) {                           \
            fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle)); \
        }                                                                \
    } while (0)

/* Stop a server child: SIGTERM, wait up to grace_ms, then SIGKILL; always reaped. *pid = 0. */
static inline void peers_stop(pid_t *pid, int64_t grace_ms)
{
    int64_t end = peers_mono_ms() + grace_ms;

    if (*pid <= 0) {
        return;
    }
    kill(*pid, SIGTERM);
    while (waitpid(*pid, NULL, WNOHANG) == 0) {
        if (peers_mono_ms() >= end) {
            kill(*pid, SIGKILL);
            waitpid(*pid, NULL, 0);
            break;
        }
        peers_sleep_ms(10);
    }
    *pid = 0;
}

/* system() of a formatted command. */
static inline int peers_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int peers_sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    return system(cmd);
}

static inline int peers_rm_one(const char *path, const struct stat *st, int flag,
                               struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* rm -rf dir */
static inline void peers_rmtree(const char *dir)
{
    nftw(dir, peers_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A probe of kind ops from YAML text; fails the test with the message when refused. */
static inline struct wp_probe *peers_probe(const struct wp_probe_ops *ops, const char *yaml)
{
    struct wp_conf_doc *doc = NULL;
    struct wp_conf_err err;
    struct wp_probe *p = NULL;

    if (wp_conf_parse("probe.yaml", yaml, strlen(yaml), &err, &doc) < 0) {
        fail_msg("yaml: %s", err.msg);
    }
    if (wp_probe_new(ops, doc, wp_conf_root(doc), &err, &p) < 0) {
        wp_conf_free(doc);
        fail_msg("wp_probe_new: %s", err.msg);
    }
    wp_conf_free(doc);
    return p;
}

/* Field name of the captured row (group, inst); fails the test when missing. */
static inline double peers_field(const struct capture *c, const char *group, const char *inst,
                                 const char *name)
{
    const struct cap_row *r = capture_row(c, group, inst);
    if (r == NULL) {
        fail_msg("no row %s/%s", group, inst);
    }
    for (uint32_t i = 0; i < r->nfields; i++) {
        if (strcmp(r->fields[i], name) == 0) {
            return r->vals[i];
        }
    }
    fail_msg("no field %s in %s", name, group);
    return 0;
}

#endif
