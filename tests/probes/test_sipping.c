/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sipping probe against SIPp as a UAS on 127.0.0.1 (the scenarios in tests/fixtures/sip;
 * SIPp cannot take port 0, so a free port from peers_free_port() and a retry when the bind
 * fails), over UDP and over TCP (-t t1), a port where nothing listens, and in-test responder
 * threads that send noise before their answer (UDP) or split, pad and oversize it (TCP). SIPp dies
 * with the test: PR_SET_PDEATHSIG, and SIGTERM/SIGKILL with a bounded wait in every path.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "capture.h"
#include "peers.h"
#include "probe.h"
#include "probe_fixture.h"
#include "wp/conf.h"
#include "wp/err.h"
#include "wp/mem.h"
#include "wp/wire.h"

extern const struct wp_probe_ops wp_probe_sipping;

#define SIPP_WAIT_MS 5000

struct sipp {
    pid_t pid;
    int port;
    int tcp; /* -t t1 */
    char scenario[64];
};

struct env {
    char dir[64];
    struct sipp ok;  /* options_uas.xml: 200 OK */
    struct sipp nf;  /* options_404.xml: 404 Not Found */
    struct sipp tmp; /* started and stopped by one test */
    struct sipp tcp; /* options_uas.xml over TCP */
    struct capture cap;
};

static struct env g_env;

/* ---- helpers ---- */

/* SIGTERM, wait up to 1 s, then SIGKILL and reap. */
static void sipp_stop(struct sipp *s)
{
    peers_stop(&s->pid, 1000);
}

/* Does SIPp pid answer an OPTIONS on 127.0.0.1:port within ms? (Its To tag holds its pid:
 * an answer from anything else on the port does not count.) */
static int sip_answers(int port, int tcp, pid_t pid, int ms)
{
    char tag[32];

    struct sockaddr_in a;
    char req[512];
    char buf[2048];
    int fd = socket(AF_INET, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
    struct pollfd pfd;
    int ok = 0;
    int n = 0;

    if (fd < 0) {
        return 0;
    }
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    n = snprintf(req, sizeof(req),
                 "OPTIONS sip:127.0.0.1:%d SIP/2.0\r\n"
                 "Via: SIP/2.0/%s 127.0.0.1:9;branch=z9hG4bKready%d;rport\r\n"
                 "Max-Forwards: 70\r\n"
                 "From: <sip:ready@127.0.0.1>;tag=r1\r\n"
                 "To: <sip:127.0.0.1:%d>\r\n"
                 "Call-ID: ready-%d-%lld\r\n"
                 "CSeq: 1 OPTIONS\r\n"
                 "Content-Length: 0\r\n\r\n",
                 port, tcp ? "TCP" : "UDP", port, port, port, (long long)peers_mono_ms());
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && send(fd, req, (size_t)n, 0) == n) {
        pfd.fd = fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        ssize_t got = poll(&pfd, 1, ms) == 1 ? recv(fd, buf, sizeof(buf) - 1, 0) : -1;
        if (got > 0) {
            buf[got] = '\0';
            snprintf(tag, sizeof(tag), "tag=%dSIPpTag", (int)pid);
            /* the socket may have got port itself from the kernel and read its own OPTIONS */
            ok = strstr(buf, tag) != NULL;
        }
    }
    close(fd);
    return ok;
}

/* Fork and exec SIPp on port; the pid or -1. */
static pid_t sipp_spawn(const char *scenario, int port, int tcp)
{
    const char *fix = getenv("WP_FIXTURES");
    char sf[512];
    char ports[16];
    char errf[160];
    char logf[160];

    snprintf(sf, sizeof(sf), "%s/sip/%s", fix, scenario);
    snprintf(ports, sizeof(ports), "%d", port);
    snprintf(errf, sizeof(errf), "%s/sipp-%d-err.log", g_env.dir, port);
    snprintf(logf, sizeof(logf), "%s/sipp-%d.out", g_env.dir, port);
    const char *const argv[] = {"sipp",     "-sf",        sf,
                                "-i",       "127.0.0.1",  "-p",
                                ports,      "-t",         tcp ? "t1" : "u1",
                                "-m",       "1000000",    "-nd",
                                "-nostdin", "-trace_err", "-error_file",
                                errf,       NULL};

    /* SIPp writes its screens to stdout; keep them out of the test's output */
    return fixture_spawn(g_env.dir, logf, 0, SIGKILL, argv);
}

/* Start SIPp with scenario on port (0: a free port, retried on bind failure), over TCP when
 * tcp; 0 or -1. */
static int sipp_start_t(const char *scenario, int port, int tcp, struct sipp *s)
{
    const char *fix = getenv("WP_FIXTURES");

    s->pid = 0;
    s->port = 0;
    snprintf(s->scenario, sizeof(s->scenario), "%s", scenario);
    if (fix == NULL) {
        fprintf(stderr, "WP_FIXTURES is not set (run through ctest)\n");
        return -1;
    }
    for (int attempt = 0; attempt < 5; attempt++) {
        int p = port != 0 ? port : peers_free_port();
        int64_t end = peers_mono_ms() + SIPP_WAIT_MS;
        pid_t pid = p > 0 ? sipp_spawn(scenario, p, tcp) : -1;

        if (pid < 0) {
            continue;
        }
        while (peers_mono_ms() < end) {
            if (waitpid(pid, NULL, WNOHANG) == pid) {
                pid = 0; /* the port was taken, most likely: try again */
                break;
            }
            if (sip_answers(p, tcp, pid, 100)) {
                s->pid = pid;
                s->port = p;
                s->tcp = tcp;
                return 0;
            }
            if (tcp) {
                peers_sleep_ms(20); /* a refused connect returns at once */
            }
        }
        if (pid > 0) {
            struct sipp dead = {.pid = pid};
            sipp_stop(&dead);
        }
        peers_sleep_ms(100);
    }
    fprintf(stderr, "sipp (%s%s) did not answer OPTIONS\n", scenario, tcp ? ", tcp" : "");
    return -1;
}

static int sipp_start(const char *scenario, int port, struct sipp *s)
{
    return sipp_start_t(scenario, port, 0, s);
}

static struct wp_probe *probe_new(const char *yaml)
{
    return peers_probe(&wp_probe_sipping, yaml);
}

/* Sample p once into g_env.cap (cleared first); returns the time it took in ms. */
static int64_t sample(struct wp_probe *p)
{
    int64_t t0 = peers_mono_ms();

    capture_clear(&g_env.cap);
    g_env.cap.sink.ts_ms += 10000;
    assert_int_equal(p->ops->sample(p, &g_env.cap.sink), 0);
    assert_int_equal(g_env.cap.bad, 0);
    return peers_mono_ms() - t0;
}

static double val(const char *inst, const char *field)
{
    return peers_field(&g_env.cap, "sipping", inst, field);
}

static const struct cap_rec *check_of(const char *name)
{
    const struct cap_rec *r = capture_rec(&g_env.cap, WP_REC_CHECK, name);

    if (r == NULL) {
        fail_msg("no check %s", name);
    }
    return r;
}

static size_t states_of(const char *object)
{
    size_t n = 0;

    for (size_t i = 0; i < g_env.cap.nrecs; i++) {
        n += g_env.cap.recs[i].kind == WP_REC_STATE && strcmp(g_env.cap.recs[i].name, object) == 0;
    }
    return n;
}

/* ---- tests ---- */

static void sipping_answered(void **state)
{
    char yaml[512];
    char where[32];
    struct wp_probe *p = NULL;
    const struct cap_rec *st = NULL;

    (void)state;
    snprintf(yaml, sizeof(yaml),
             "kind: sipping\nname: phones\ngroup: hotline\ntimeout: 2s\n"
             "targets:\n  - {name: \"8001\", host: 127.0.0.1, port: %d, user: \"8001\"}\n",
             g_env.ok.port);
    p = probe_new(yaml);
    assert_true(sample(p) < 1500);
    assert_true(val("8001", "up") == 1.0);
    assert_true(val("8001", "rtt_s") >= 0.0 && val("8001", "rtt_s") < 1.5);
    assert_true(val("8001", "status_code") == 200.0);
    assert_true(val("8001", "misses") == 0.0);
    st = capture_rec(&g_env.cap, WP_REC_STATE, "8001");
    assert_non_null(st);
    assert_string_equal(st->group, "hotline");
    assert_string_equal(st->text, "idle");
    assert_string_equal(st->raw, "200 OK");
    snprintf(where, sizeof(where), "127.0.0.1:%d", g_env.ok.port);
    assert_string_equal(st->info, where);
    assert_int_equal(check_of("sipping_8001")->level, WP_CHECK_OK);
    assert_contains(check_of("sipping_8001")->text, "SIP OK: 200 OK in ");

    /* the next round: still up, no new state record, a new Call-ID is answered too */
    sample(p);
    assert_true(val("8001", "up") == 1.0);
    assert_true(val("8001", "status_code") == 200.0);
    assert_int_equal(states_of("8001"), 0);
    wp_probe_free(p);
}

static void sipping_not_found_is_reachable(void **state)
{
    char yaml[512];
    struct wp_probe *p = NULL;
    const struct cap_rec *st = NULL;

    (void)state;
    snprintf(yaml, sizeof(yaml),
             "kind: sipping\ntargets:\n  - {name: trunk-a, host: localhost, port: %d}\n",
             g_env.nf.port);
    p = probe_new(yaml);
    sample(p);
    assert_true(val("trunk-a", "up") == 1.0);
    assert_true(val("trunk-a", "status_code") == 404.0);
    st = capture_rec(&g_env.cap, WP_REC_STATE, "trunk-a");
    assert_non_null(st);
    assert_string_equal(st->group, "sip"); /* the default group */
    assert_string_equal(st->text, "idle");
    assert_string_equal(st->raw, "404 Not Found");
    assert_int_equal(check_of("sipping_trunk-a")->level, WP_CHECK_OK);
    assert_contains(check_of("sipping_trunk-a")->text, "SIP OK: 404 Not Found in ");
    wp_probe_free(p);
}

/* A dead port next to a live one: the round lasts one timeout, the dead target goes down on
 * the third miss and its state is sent on the first round and once more when down. */
static void sipping_no_answer_hysteresis(void **state)
{
    char yaml[512];
    struct wp_probe *p = NULL;
    const struct cap_rec *st = NULL;
    int dead = peers_free_port();
    int64_t ms = 0;

    (void)state;
    assert_true(dead > 0);
    snprintf(yaml, sizeof(yaml),
             "kind: sipping\ngroup: ivr\ntimeout: 500ms\ndown_after: 3\n"
             "targets:\n  - {name: dead, host: 127.0.0.1, port: %d}\n"
             "  - {name: live, host: 127.0.0.1, port: %d}\n",
             dead, g_env.ok.port);
    p = probe_new(yaml);

    ms = sample(p);
    assert_true(ms >= 450 && ms < 1500);
    assert_true(isnan(val("dead", "up")));
    assert_true(isnan(val("dead", "rtt_s")));
    assert_true(isnan(val("dead", "status_code")));
    assert_true(val("dead", "misses") == 1.0);
    assert_true(val("live", "up") == 1.0);
    st = capture_rec(&g_env.cap, WP_REC_STATE, "dead");
    assert_non_null(st);
    assert_string_equal(st->text, "unknown");
    assert_string_equal(st->raw, "no answer");
    assert_int_equal(check_of("sipping_dead")->level, WP_CHECK_WARNING);

    sample(p);
    assert_true(isnan(val("dead", "up")));
    assert_true(val("dead", "misses") == 2.0);
    assert_int_equal(states_of("dead"), 0);

    sample(p);
    assert_true(val("dead", "up") == 0.0);
    assert_true(val("dead", "misses") == 3.0);
    assert_int_equal(states_of("dead"), 1);
    st = capture_rec(&g_env.cap, WP_REC_STATE, "dead");
    assert_string_equal(st->text, "unavailable");
    assert_string_equal(st->raw, "no answer");
    assert_string_equal(st->group, "ivr");
    assert_int_equal(check_of("sipping_dead")->level, WP_CHECK_CRITICAL);
    assert_contains(check_of("sipping_dead")->text,
                    "SIP CRITICAL: no answer to OPTIONS in 0.5 s (3 in a row)");

    sample(p);
    assert_true(val("dead", "up") == 0.0);
    assert_true(val("dead", "misses") == 4.0);
    assert_int_equal(states_of("dead"), 0);
    assert_true(val("live", "up") == 1.0);
    assert_int_equal(states_of("live"), 0);
    wp_probe_free(p);
}

/* SIPp stopped: down after down_after misses; restarted: up after up_after answers. */
static void sipping_restart(void **state)
{
    char yaml[512];
    struct wp_probe *p = NULL;
    int port = 0;

    (void)state;
    assert_int_equal(sipp_start("options_uas.xml", 0, &g_env.tmp), 0);
    port = g_env.tmp.port;
    snprintf(yaml, sizeof(yaml),
             "kind: sipping\ntimeout: 500ms\ndown_after: 3\nup_after: 2\n"
             "targets:\n  - {name: ivr1, host: 127.0.0.1, port: %d}\n",
             port);
    p = probe_new(yaml);
    sample(p);
    sample(p); /* up_after 2: the second answer decides */
    assert_true(val("ivr1", "up") == 1.0);

    sipp_stop(&g_env.tmp);
    for (int i = 1; i <= 3; i++) {
        sample(p);
        assert_true(val("ivr1", "misses") == (double)i);
        assert_true(val("ivr1", "up") == (i < 3 ? 1.0 : 0.0));
        assert_int_equal(states_of("ivr1"), i < 3 ? 0 : 1);
    }
    assert_string_equal(capture_rec(&g_env.cap, WP_REC_STATE, "ivr1")->text, "unavailable");

    assert_int_equal(sipp_start("options_uas.xml", port, &g_env.tmp), 0);
    sample(p);
    assert_true(val("ivr1", "up") == 0.0); /* one answer is not enough */
    assert_true(val("ivr1", "misses") == 0.0);
    assert_true(val("ivr1", "status_code") == 200.0);
    assert_int_equal(states_of("ivr1"), 0);
    assert_int_equal(check_of("sipping_ivr1")->level, WP_CHECK_OK);
    sample(p);
    assert_true(val("ivr1", "up") == 1.0);
    assert_int_equal(states_of("ivr1"), 1);
    assert_string_equal(capture_rec(&g_env.cap, WP_REC_STATE, "ivr1")->text, "idle");
    sipp_stop(&g_env.tmp);
    wp_probe_free(p);
}

/* ---- a noisy responder: junk, an oversize datagram, foreign and provisional answers ---- */

struct noisy {
    int fd;
    int port;
    int sent; /* datagrams sent */
};

/* Copy the request's header line starting with name (with CRLF) to out. */
static void copy_header(const char *req, const char *name, char *out, size_t len)
{
    const char *h = strstr(req, name);
    const char *e = h != NULL ? strstr(h, "\r\n") : NULL;

    out[0] = '\0';
    if (h != NULL && e != NULL && (size_t)(e - h) + 3 < len) {
        memcpy(out, h, (size_t)(e - h) + 2);
        out[e - h + 2] = '\0';
    }
}

static void *noisy_main(void *arg)
{
    struct noisy *nz = arg;
    char req[4096];
    struct sockaddr_storage from;
    socklen_t flen = sizeof(from);
    ssize_t n = recvfrom(nz->fd, req, sizeof(req) - 1, 0, (struct sockaddr *)&from, &flen);
    char via[512], fromh[512], to[512], cid[256], cseq[128];
    char msg[4096];
    char *big = NULL;
    int len = 0;

    if (n <= 0) {
        return NULL;
    }
    req[n] = '\0';
    copy_header(req, "Via:", via, sizeof(via));
    copy_header(req, "From:", fromh, sizeof(fromh));
    copy_header(req, "To:", to, sizeof(to));
    to[strcspn(to, "\r")] = '\0'; /* a tag goes after it */
    copy_header(req, "Call-ID:", cid, sizeof(cid));
    copy_header(req, "CSeq:", cseq, sizeof(cseq));
#define SEND(buf, l)                                                                     \
    do {                                                                                 \
        if (sendto(nz->fd, (buf), (size_t)(l), 0, (struct sockaddr *)&from, flen) > 0) { \
            nz->sent++;                                                                  \
        }                                                                                \
    } while (0)
    SEND("\x01\x02garbage\r\n\r\n", 13);
    /* an oversize copy of a valid answer is ignored */
    big = wp_xmalloc(9000);
    len = snprintf(big, 9000, "SIP/2.0 500 Big\r\n%s%s%s;tag=b\r\n%s%sX-Pad: ", via, fromh, to, cid,
                   cseq);
    memset(big + len, 'a', 9000 - (size_t)len);
    SEND(big, 9000);
    free(big);
    /* a foreign Call-ID, a wrong CSeq method, a provisional answer */
    len = snprintf(msg, sizeof(msg),
                   "SIP/2.0 503 Foreign\r\n%s%s%s;tag=f\r\nCall-ID: wp0.ffff\r\n%s"
                   "Content-Length: 0\r\n\r\n",
                   via, fromh, to, cseq);
    SEND(msg, len);
    len = snprintf(msg, sizeof(msg),
                   "SIP/2.0 502 Method\r\n%s%s%s;tag=m\r\n%sCSeq: 1 INVITE\r\n"
                   "Content-Length: 0\r\n\r\n",
                   via, fromh, to, cid);
    SEND(msg, len);
    len = snprintf(msg, sizeof(msg), "SIP/2.0 100 Trying\r\n%s%s%s%s%sContent-Length: 0\r\n\r\n",
                   via, fromh, to, cid, cseq);
    SEND(msg, len);
    peers_sleep_ms(50);
    len = snprintf(msg, sizeof(msg),
                   "SIP/2.0 486 Busy Here\r\n%s%s%s;tag=ok\r\n%s%sContent-Length: 0\r\n\r\n", via,
                   fromh, to, cid, cseq);
    SEND(msg, len);
#undef SEND
    return NULL;
}

/* Run the noisy responder on host (127.0.0.1 or ::1) and sample a probe pointed at it; 0, or
 * -1 when host cannot be bound (no IPv6 on this machine). */
static int run_noisy(int family, const char *host)
{
    struct noisy nz = {.fd = -1};
    struct sockaddr_storage a;
    socklen_t alen = 0;
    pthread_t th;
    char yaml[512];
    struct wp_probe *p = NULL;

    memset(&a, 0, sizeof(a));
    if (family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a;
        s6->sin6_family = AF_INET6;
        s6->sin6_addr = in6addr_loopback;
        alen = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&a;
        s4->sin_family = AF_INET;
        s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        alen = sizeof(*s4);
    }
    nz.fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (nz.fd < 0 || bind(nz.fd, (struct sockaddr *)&a, alen) < 0) {
        if (nz.fd >= 0) {
            close(nz.fd);
        }
        return -1;
    }
    assert_int_equal(getsockname(nz.fd, (struct sockaddr *)&a, &alen), 0);
    nz.port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&a)->sin6_port
                                       : ((struct sockaddr_in *)&a)->sin_port);
    assert_int_equal(pthread_create(&th, NULL, noisy_main, &nz), 0);
    snprintf(yaml, sizeof(yaml),
             "kind: sipping\ntimeout: 1s\ntargets:\n  - {name: seat1, host: \"%s\", port: %d}\n",
             host, nz.port);
    p = probe_new(yaml);
    sample(p);
    pthread_join(th, NULL);
    close(nz.fd);
    wp_probe_free(p);
    assert_int_equal(nz.sent, 6);
    return 0;
}

static void sipping_ignores_noise(void **state)
{
    (void)state;
    assert_int_equal(run_noisy(AF_INET, "127.0.0.1"), 0);
    assert_true(val("seat1", "up") == 1.0);
    assert_true(val("seat1", "status_code") == 486.0);
    assert_true(val("seat1", "rtt_s") >= 0.04);
    assert_string_equal(capture_rec(&g_env.cap, WP_REC_STATE, "seat1")->raw, "486 Busy Here");
}

static void sipping_ipv6(void **state)
{
    (void)state;
    if (run_noisy(AF_INET6, "::1") < 0) {
        skip();
    }
    assert_true(val("seat1", "up") == 1.0);
    assert_true(val("seat1", "status_code") == 486.0);
    assert_contains(capture_rec(&g_env.cap, WP_REC_STATE, "seat1")->info, "[::1]:");
}

/* ---- TCP ---- */

/* A TCP UAS (SIPp -t t1) and a UDP one in one probe: both answered in the same round, over a
 * new connection every round. */
static void sipping_tcp_answered(void **state)
{
    char yaml[512];
    char where[48];
    struct wp_probe *p = NULL;
    const struct cap_rec *st = NULL;

    (void)state;
    snprintf(yaml, sizeof(yaml),
             "kind: sipping\nname: mixed\ntimeout: 2s\n"
             "targets:\n  - {name: sbc1, host: 127.0.0.1, port: %d, transport: tcp}\n"
             "  - {name: \"8001\", host: 127.0.0.1, port: %d, transport: udp}\n",
             g_env.tcp.port, g_env.ok.port);
    p = probe_new(yaml);
    assert_true(sample(p) < 1500);
    assert_true(val("sbc1", "up") == 1.0);
    assert_true(val("sbc1", "status_code") == 200.0);
    assert_true(val("sbc1", "rtt_s") >= 0.0 && val("sbc1", "rtt_s") < 1.5);
    assert_true(val("8001", "up") == 1.0);
    st = capture_rec(&g_env.cap, WP_REC_STATE, "sbc1");
    assert_non_null(st);
    assert_string_equal(st->text, "idle");
    assert_string_equal(st->raw, "200 OK");
    snprintf(where, sizeof(where), "127.0.0.1:%d/tcp", g_env.tcp.port);
    assert_string_equal(st->info, where);
    assert_int_equal(check_of("sipping_sbc1")->level, WP_CHECK_OK);
    assert_contains(check_of("sipping_sbc1")->text, "SIP OK: 200 OK in ");
    for (int i = 0; i < 3; i++) {
        sample(p);
        assert_true(val("sbc1", "status_code") == 200.0);
        assert_true(val("sbc1", "misses") == 0.0);
        assert_int_equal(states_of("sbc1"), 0);
    }
    wp_probe_free(p);
}

/* Nothing listens: the refused connect is a miss at once, not after the timeout. */
static void sipping_tcp_refused(void **state)
{
    char yaml[512];
    char want[128];
    struct wp_probe *p = NULL;
    int dead = peers_free_port();
    int64_t ms = 0;

    (void)state;
    assert_true(dead > 0);
    snprintf(yaml, sizeof(yaml),
             "kind: sipping\ntimeout: 2s\ndown_after: 1\n"
             "targets:\n  - {name: gone, host: 127.0.0.1, port: %d, transport: tcp}\n",
             dead);
    p = probe_new(yaml);
    ms = sample(p);
    assert_true(ms < 1000);
    assert_true(val("gone", "up") == 0.0);
    assert_true(val("gone", "misses") == 1.0);
    assert_true(isnan(val("gone", "rtt_s")));
    assert_string_equal(capture_rec(&g_env.cap, WP_REC_STATE, "gone")->text, "unavailable");
    assert_int_equal(check_of("sipping_gone")->level, WP_CHECK_CRITICAL);
    snprintf(want, sizeof(want),
             "SIP CRITICAL: 127.0.0.1:%d/tcp: cannot connect: Connection refused (1 in a row)",
             dead);
    assert_string_equal(check_of("sipping_gone")->text, want);
    wp_probe_free(p);
}

/* A TCP responder that answers by a script, one mode per connection: "split" (a CRLF
 * keepalive, a foreign answer with a body, then the real one with a compact Content-Length,
 * sent in three pieces), "big" (17 KB with no end of headers), "close" (hangs up), "silent". */
struct tcpnoise {
    int fd;
    const char *const *modes;
    size_t n;
    size_t served;
};

static void send_all(int c, const char *b, size_t len)
{
    size_t off = 0;

    while (off < len) {
        ssize_t w = send(c, b + off, len - off, MSG_NOSIGNAL);
        if (w <= 0) {
            return;
        }
        off += (size_t)w;
    }
}

static void *tcpnoise_main(void *arg)
{
    struct tcpnoise *tn = arg;

    for (size_t i = 0; i < tn->n; i++) {
        struct pollfd lp = {.fd = tn->fd, .events = POLLIN, .revents = 0};
        char req[4096];
        size_t got = 0;
        int64_t end = peers_mono_ms() + 2000;
        char via[512], fromh[512], to[512], cid[256], cseq[128];
        const char *mode = tn->modes[i];
        int c = -1;

        if (poll(&lp, 1, 5000) <= 0) {
            return NULL;
        }
        c = accept(tn->fd, NULL, NULL);
        if (c < 0) {
            return NULL;
        }
        while (got + 1 < sizeof(req) && peers_mono_ms() < end) {
            struct pollfd cp = {.fd = c, .events = POLLIN, .revents = 0};
            ssize_t r = poll(&cp, 1, 100) > 0 ? recv(c, req + got, sizeof(req) - 1 - got, 0) : 0;
            if (r < 0) {
                break;
            }
            got += (size_t)(r > 0 ? r : 0);
            req[got] = '\0';
            if (strstr(req, "\r\n\r\n") != NULL) {
                break;
            }
        }
        copy_header(req, "Via:", via, sizeof(via));
        copy_header(req, "From:", fromh, sizeof(fromh));
        copy_header(req, "To:", to, sizeof(to));
        to[strcspn(to, "\r")] = '\0';
        copy_header(req, "Call-ID:", cid, sizeof(cid));
        copy_header(req, "CSeq:", cseq, sizeof(cseq));
        if (strcmp(mode, "split") == 0) {
            char msg[4096];
            int len =
                snprintf(msg, sizeof(msg),
                         "\r\n\r\nSIP/2.0 503 Foreign\r\n%s%s%s;tag=f\r\nCall-ID: wp0.ffff\r\n"
                         "%sContent-Length: 5\r\n\r\nhello"
                         "SIP/2.0 486 Busy Here\r\n%s%s%s;tag=ok\r\n%s%sl: 4\r\n\r\nabcd",
                         via, fromh, to, cseq, via, fromh, to, cid, cseq);
            send_all(c, msg, (size_t)len / 3);
            peers_sleep_ms(30);
            send_all(c, msg + len / 3, (size_t)len / 3);
            peers_sleep_ms(30);
            send_all(c, msg + 2 * (len / 3), (size_t)len - 2 * (size_t)(len / 3));
        } else if (strcmp(mode, "big") == 0) {
            char *big = wp_xmalloc(17000);
            memcpy(big, "SIP/2.0 200 OK\r\nX-Pad: ", 23);
            memset(big + 23, 'a', 17000 - 23);
            send_all(c, big, 17000);
            free(big);
        }
        if (strcmp(mode, "close") != 0) {
            /* keep the connection until the client hangs up */
            int64_t wend = peers_mono_ms() + 3000;
            while (peers_mono_ms() < wend) {
                struct pollfd cp = {.fd = c, .events = POLLIN, .revents = 0};
                char tmp[4096];
                if (poll(&cp, 1, 100) > 0 && recv(c, tmp, sizeof(tmp), 0) <= 0) {
                    break;
                }
            }
        }
        close(c);
        tn->served++;
    }
    return NULL;
}

static void sipping_tcp_framing(void **state)
{
    static const char *const modes[] = {"split", "big", "close", "silent"};
    struct tcpnoise tn = {.fd = -1, .modes = modes, .n = 4};
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    pthread_t th;
    char yaml[512];
    struct wp_probe *p = NULL;
    int64_t ms = 0;

    (void)state;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    tn.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(tn.fd >= 0);
    assert_int_equal(bind(tn.fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(tn.fd, 4), 0);
    assert_int_equal(getsockname(tn.fd, (struct sockaddr *)&a, &alen), 0);
    assert_int_equal(pthread_create(&th, NULL, tcpnoise_main, &tn), 0);
    snprintf(yaml, sizeof(yaml),
             "kind: sipping\ntimeout: 500ms\ndown_after: 1\n"
             "targets:\n  - {name: seat1, host: 127.0.0.1, port: %d, transport: tcp}\n",
             ntohs(a.sin_port));
    p = probe_new(yaml);

    sample(p); /* split */
    assert_true(val("seat1", "up") == 1.0);
    assert_true(val("seat1", "status_code") == 486.0);
    assert_true(val("seat1", "rtt_s") >= 0.05);
    assert_string_equal(capture_rec(&g_env.cap, WP_REC_STATE, "seat1")->raw, "486 Busy Here");

    sample(p); /* big */
    assert_true(val("seat1", "up") == 0.0);
    assert_contains(check_of("sipping_seat1")->text,
                    "/tcp: answer larger than 16 KiB (1 in a row)");

    sample(p); /* close */
    assert_contains(check_of("sipping_seat1")->text,
                    "/tcp: connection closed before an answer (2 in a row)");

    ms = sample(p); /* silent */
    assert_true(ms >= 450 && ms < 1500);
    assert_contains(check_of("sipping_seat1")->text,
                    "SIP CRITICAL: no answer to OPTIONS in 0.5 s (3 in a row)");

    wp_probe_free(p);
    pthread_join(th, NULL);
    close(tn.fd);
    assert_int_equal(tn.served, 4);
}

/* The same over IPv6 (Via and Contact carry [::1]); skipped without IPv6. */
static void sipping_tcp_ipv6(void **state)
{
    static const char *const modes[] = {"split"};
    struct tcpnoise tn = {.fd = -1, .modes = modes, .n = 1};
    struct sockaddr_in6 a;
    socklen_t alen = sizeof(a);
    pthread_t th;
    char yaml[512];
    struct wp_probe *p = NULL;

    (void)state;
    memset(&a, 0, sizeof(a));
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    tn.fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (tn.fd < 0 || bind(tn.fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        if (tn.fd >= 0) {
            close(tn.fd);
        }
        skip();
    }
    assert_int_equal(listen(tn.fd, 4), 0);
    assert_int_equal(getsockname(tn.fd, (struct sockaddr *)&a, &alen), 0);
    assert_int_equal(pthread_create(&th, NULL, tcpnoise_main, &tn), 0);
    snprintf(yaml, sizeof(yaml),
             "kind: sipping\ntimeout: 1s\n"
             "targets:\n  - {name: seat6, host: \"::1\", port: %d, transport: tcp}\n",
             ntohs(a.sin6_port));
    p = probe_new(yaml);
    sample(p);
    wp_probe_free(p);
    pthread_join(th, NULL);
    close(tn.fd);
    assert_true(val("seat6", "up") == 1.0);
    assert_true(val("seat6", "status_code") == 486.0);
    assert_contains(capture_rec(&g_env.cap, WP_REC_STATE, "seat6")->info, "[::1]:");
    assert_contains(capture_rec(&g_env.cap, WP_REC_STATE, "seat6")->info, "/tcp");
}

/* ---- config ---- */

static void expect_config_error(const char *yaml, const char *prefix, const char *what)
{
    fixture_expect_config_error(&wp_probe_sipping, "sip.yaml", yaml, prefix, what);
}

static void sipping_config_errors(void **state)
{
    char *many = NULL;
    size_t len = 0;
    size_t cap = 0;

    (void)state;
    expect_config_error("kind: sipping\n", "sip.yaml:", "targets");
    expect_config_error("kind: sipping\ntargets: []\n",
                        "sip.yaml:2:10: ", "targets: expected a list");
    expect_config_error("kind: sipping\ntargets:\n  - {name: \"a b\", host: 10.0.0.1}\n",
                        "sip.yaml:3:12: targets[0].name: ", "\"a b\"");
    expect_config_error("kind: sipping\ntargets:\n  - {name: a, host: 10.0.0.1}\n"
                        "  - {name: a, host: 10.0.0.2}\n",
                        "sip.yaml:4:12: targets[1].name: ", "already");
    expect_config_error("kind: sipping\ntargets:\n  - {name: a, host: \"x\\r\\nVia: y\"}\n",
                        "sip.yaml:3:21: targets[0].host: ", "host name");
    expect_config_error("kind: sipping\ntargets:\n  - {name: a, host: h, port: 70000}\n",
                        "sip.yaml:3:", "port");
    expect_config_error("kind: sipping\ntargets:\n  - {name: a, host: h, user: \"a@b\"}\n",
                        "sip.yaml:3:", "targets[0].user");
    expect_config_error("kind: sipping\ndown_after: 0\ntargets: [{name: a, host: h}]\n",
                        "sip.yaml:2:", "down_after");
    expect_config_error("kind: sipping\nfrom_user: \"a b\"\ntargets: [{name: a, host: h}]\n",
                        "sip.yaml:2:12: ", "from_user: expected");
    expect_config_error("kind: sipping\ngroup: [a]\ntargets: [{name: a, host: h}]\n",
                        "sip.yaml:2:8: ", "group: expected");
    expect_config_error("kind: sipping\ntargets: [{name: a, host: h, transport: tls}]\n",
                        "sip.yaml:2:", "targets[0].transport");

    /* at most 10,000 targets */
    cap = 64 + 10001 * 32;
    many = wp_xmalloc(cap);
    len = (size_t)snprintf(many, cap, "kind: sipping\ntargets:\n");
    for (int i = 0; i <= 10000; i++) {
        len += (size_t)snprintf(many + len, cap - len, "  - {name: t%d, host: h}\n", i);
    }
    expect_config_error(many, "sip.yaml:3:3: ", "at most 10000");
    free(many);
}

/* ---- setup ---- */

static int group_setup(void **state)
{
    (void)state;
    memset(&g_env, 0, sizeof(g_env));
    snprintf(g_env.dir, sizeof(g_env.dir), "/tmp/wp-sip-XXXXXX");
    if (mkdtemp(g_env.dir) == NULL) {
        return -1;
    }
    capture_init(&g_env.cap, 1700000000000, 10);
    if (sipp_start("options_uas.xml", 0, &g_env.ok) < 0 ||
        sipp_start("options_404.xml", 0, &g_env.nf) < 0 ||
        sipp_start_t("options_uas.xml", 0, 1, &g_env.tcp) < 0) {
        sipp_stop(&g_env.ok);
        sipp_stop(&g_env.nf);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    sipp_stop(&g_env.ok);
    sipp_stop(&g_env.nf);
    sipp_stop(&g_env.tmp);
    sipp_stop(&g_env.tcp);
    capture_cleanup(&g_env.cap);
    peers_rmtree(g_env.dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sipping_answered),
        cmocka_unit_test(sipping_not_found_is_reachable),
        cmocka_unit_test(sipping_no_answer_hysteresis),
        cmocka_unit_test(sipping_restart),
        cmocka_unit_test(sipping_ignores_noise),
        cmocka_unit_test(sipping_ipv6),
        cmocka_unit_test(sipping_tcp_answered),
        cmocka_unit_test(sipping_tcp_refused),
        cmocka_unit_test(sipping_tcp_framing),
        cmocka_unit_test(sipping_tcp_ipv6),
        cmocka_unit_test(sipping_config_errors),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
