/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sipcall probe against SIPp UAS peers on 127.0.0.1 (tests/fixtures/sip/call_*.xml; SIPp
 * cannot take port 0, so a free port from peers_free_port() and a retry when the bind fails):
 * IVRs answering after 3.2 s and 12 s with a tone, a seat that answers with silence (dead
 * air), one that never answers (CANCEL), a busy one (486), a digest challenge (401, right and
 * wrong password), a 302 to a second SIPp, and a socket that never answers (timer A). All
 * calls run at once in one probe on one loop. Also the helpers of sip_util.c on fixed vectors
 * and the config errors. SIPp dies with the test: PR_SET_PDEATHSIG, and SIGTERM/SIGKILL with a
 * bounded wait in every path.
 */
#include <errno.h>
#include <math.h>
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

#include <uv.h>

#include "capture.h"
#include "peers.h"
#include "probe.h"
#include "probe_fixture.h"
#include "sip_util.h"
#include "wp/conf.h"
#include "wp/err.h"
#include "wp/mem.h"
#include "wp/wire.h"

extern const struct wp_probe_ops wp_probe_sipcall;

#define SIPP_WAIT_MS  5000
#define CALLS_WAIT_MS 45000
#define TOL_S         0.2 /* answer time tolerance */

struct sipp {
    pid_t pid;
    int port;
};

enum { S_IVR3, S_IVR12, S_SILENCE, S_NOANSWER, S_BUSY, S_AUTH, S_REDIR, S_FWD, S_N };

struct env {
    char dir[64];
    struct sipp s[S_N];
    struct capture cap;
};

static struct env g_env;

/* ---- SIPp ---- */

static void sipp_stop(struct sipp *s)
{
    peers_stop(&s->pid, 1000);
}

/* Is UDP 127.0.0.1:port taken (by SIPp, once it has bound it)? */
static int udp_taken(int port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int taken = 0;

    if (fd < 0) {
        return 0;
    }
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    taken = bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno == EADDRINUSE;
    close(fd);
    return taken;
}

/* Fork and exec SIPp with scenario on port; extra: NULL-terminated further arguments. */
static pid_t sipp_spawn(const char *scenario, int port, const char *const *extra)
{
    const char *fix = getenv("WP_FIXTURES");
    char sf[512];
    char ports[16];
    char mports[16];
    char errf[160];
    char logf[160];
    const char *argv[40];
    size_t n = 0;

    snprintf(sf, sizeof(sf), "%s/sip/%s", fix, scenario);
    snprintf(ports, sizeof(ports), "%d", port);
    snprintf(mports, sizeof(mports), "%d", 20000 + (port % 20000) / 4 * 4);
    snprintf(errf, sizeof(errf), "%s/sipp-%d-err.log", g_env.dir, port);
    snprintf(logf, sizeof(logf), "%s/sipp-%d.out", g_env.dir, port);
    argv[n++] = "sipp";
    argv[n++] = "-sf";
    argv[n++] = sf;
    argv[n++] = "-i";
    argv[n++] = "127.0.0.1";
    argv[n++] = "-mi";
    argv[n++] = "127.0.0.1";
    argv[n++] = "-mp";
    argv[n++] = mports;
    argv[n++] = "-p";
    argv[n++] = ports;
    argv[n++] = "-m";
    argv[n++] = "1000000";
    argv[n++] = "-nd";
    argv[n++] = "-nostdin";
    argv[n++] = "-trace_err";
    argv[n++] = "-error_file";
    argv[n++] = errf;
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n + 1 < sizeof(argv) / sizeof(argv[0]);
         i++) {
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    return fixture_spawn(g_env.dir, logf, 0, SIGKILL, argv);
}

/* Start SIPp with scenario on a free port (retried when another process takes it). 0 or -1. */
static int sipp_start(const char *scenario, const char *const *extra, struct sipp *s)
{
    s->pid = 0;
    s->port = 0;
    if (getenv("WP_FIXTURES") == NULL) {
        fprintf(stderr, "WP_FIXTURES is not set (run through ctest)\n");
        return -1;
    }
    for (int attempt = 0; attempt < 5; attempt++) {
        int p = peers_free_port();
        int64_t end = peers_mono_ms() + SIPP_WAIT_MS;
        pid_t pid = p > 0 ? sipp_spawn(scenario, p, extra) : -1;

        if (pid < 0) {
            continue;
        }
        while (peers_mono_ms() < end) {
            if (waitpid(pid, NULL, WNOHANG) == pid) {
                pid = 0; /* the port was taken, most likely: try again */
                break;
            }
            if (udp_taken(p)) {
                peers_sleep_ms(100); /* bound is not yet listening: give it a moment */
                if (waitpid(pid, NULL, WNOHANG) == pid) {
                    pid = 0;
                    break;
                }
                s->pid = pid;
                s->port = p;
                return 0;
            }
            peers_sleep_ms(20);
        }
        if (pid > 0) {
            struct sipp dead = {.pid = pid};
            sipp_stop(&dead);
        }
        peers_sleep_ms(100);
    }
    fprintf(stderr, "sipp (%s) did not start\n", scenario);
    return -1;
}

/* ---- audio fixtures: raw PCMU, 1 s each (SIPp loops them) ---- */

static uint8_t ulaw_encode(int16_t pcm)
{
    int s = pcm;
    int sign = 0;
    int exp = 7;

    if (s < 0) {
        s = -s;
        sign = 0x80;
    }
    if (s > 32635) {
        s = 32635;
    }
    s += 0x84;
    for (int mask = 0x4000; (s & mask) == 0 && exp > 0; mask >>= 1) {
        exp--;
    }
    return (uint8_t) ~(sign | (exp << 4) | ((s >> (exp + 3)) & 0x0f));
}

static int write_audio(const char *name, int tone)
{
    char path[160];
    uint8_t buf[8000];
    FILE *f = NULL;

    for (int i = 0; i < 8000; i++) {
        double v = tone ? 8000.0 * sin(2.0 * M_PI * 1000.0 * i / 8000.0) : 0.0;
        buf[i] = ulaw_encode((int16_t)v);
    }
    snprintf(path, sizeof(path), "%s/%s", g_env.dir, name);
    f = fopen(path, "wb");
    if (f == NULL) {
        return -1;
    }
    if (fwrite(buf, 1, sizeof(buf), f) != sizeof(buf)) {
        fclose(f);
        return -1;
    }
    return fclose(f) == 0 ? 0 : -1;
}

/* ---- the calls ---- */

static double val(const char *inst, const char *field)
{
    return peers_field(&g_env.cap, "sipcall", inst, field);
}

static const struct cap_rec *check_of(const char *target)
{
    char name[96];
    const struct cap_rec *r = NULL;

    snprintf(name, sizeof(name), "sipcall_%s", target);
    r = capture_rec(&g_env.cap, WP_REC_CHECK, name);
    if (r == NULL) {
        fail_msg("no check %s", name);
    }
    return r;
}

static const struct cap_rec *state_of(const char *target)
{
    const struct cap_rec *r = capture_rec(&g_env.cap, WP_REC_STATE, target);

    if (r == NULL) {
        fail_msg("no state for %s", target);
    }
    return r;
}

/* A UDP socket on 127.0.0.1 (port read back into *port) that reads but never answers. */
static int silent_socket(int *port)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    if (fd < 0) {
        return -1;
    }
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) < 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* The INVITEs queued on fd (at most 64 read); -1 when two differ. */
static int count_invites(int fd)
{
    static char first[8192];
    char buf[8192];
    ssize_t flen = -1;
    int n = 0;

    for (int i = 0; i < 64; i++) {
        ssize_t got = recv(fd, buf, sizeof(buf), 0);
        if (got < 0) {
            break;
        }
        if (got < 7 || memcmp(buf, "INVITE ", 7) != 0) {
            continue;
        }
        if (flen < 0) {
            memcpy(first, buf, (size_t)got);
            flen = got;
        } else if (got != flen || memcmp(first, buf, (size_t)got) != 0) {
            return -1;
        }
        n++;
    }
    return n;
}

static void on_wake(uv_timer_t *t)
{
    (void)t; /* only bounds uv_run(UV_RUN_ONCE) */
}

static size_t checks_seen(void)
{
    size_t n = 0;

    for (size_t i = 0; i < g_env.cap.nrecs; i++) {
        n += g_env.cap.recs[i].kind == WP_REC_CHECK;
    }
    return n;
}

static void sipcall_all_outcomes(void **state)
{
    char yaml[4096];
    char pwgood[160], pwbad[160];
    struct wp_probe *p = NULL;
    uv_loop_t loop;
    uv_timer_t wake;
    int dead = 0;
    int hole = silent_socket(&dead);
    int64_t t0 = 0;
    int64_t last = 0;
    const size_t ntargets = 10;
    int rc = 0;

    (void)state;
    assert_true(hole >= 0);
    snprintf(pwgood, sizeof(pwgood), "%s/good.pass", g_env.dir);
    snprintf(pwbad, sizeof(pwbad), "%s/bad.pass", g_env.dir);
    assert_int_equal(
        peers_sh("printf 's3cret-pw\\n' > %s && printf 'wrong\\n' > %s", pwgood, pwbad), 0);
    snprintf(yaml, sizeof(yaml),
             "kind: sipcall\nname: calls\ninterval: 3600s\ngroup: hotline\n"
             "targets:\n"
             "  - {name: ivr3, host: 127.0.0.1, port: %d, user: \"4000\", listen: 3s,"
             " dead_air: 2s}\n"
             "  - {name: ivr12, uri: \"sip:4001@127.0.0.1:%d\", listen: 3s, dead_air: 2s,"
             " slow_answer: 10s}\n"
             "  - {name: silent, host: 127.0.0.1, port: %d, user: \"4002\", listen: 6s,"
             " dead_air: 2s}\n"
             "  - {name: noanswer, host: 127.0.0.1, port: %d, user: \"8001\", timeout: 4s}\n"
             "  - {name: busy, host: 127.0.0.1, port: %d, user: \"8002\"}\n"
             "  - {name: auth, host: 127.0.0.1, port: %d, user: \"4000\", auth_user: probe,"
             " password_file: \"%s\", listen: 1s}\n"
             "  - {name: authbad, host: 127.0.0.1, port: %d, user: \"4000\", auth_user: probe,"
             " password_file: \"%s\"}\n"
             "  - {name: fwd, host: 127.0.0.1, port: %d, user: seat1, forward_to: seat2,"
             " forward_within: 5s, listen: 1s}\n"
             "  - {name: fwdmiss, host: 127.0.0.1, port: %d, user: \"4000\", forward_to: seat9,"
             " forward_within: 5s, listen: 1s}\n"
             "  - {name: dead, host: 127.0.0.1, port: %d, timeout: 3s}\n",
             g_env.s[S_IVR3].port, g_env.s[S_IVR12].port, g_env.s[S_SILENCE].port,
             g_env.s[S_NOANSWER].port, g_env.s[S_BUSY].port, g_env.s[S_AUTH].port, pwgood,
             g_env.s[S_AUTH].port, pwbad, g_env.s[S_REDIR].port, g_env.s[S_IVR3].port, dead);
    p = peers_probe(&wp_probe_sipcall, yaml);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(uv_timer_init(&loop, &wake), 0);
    uv_timer_start(&wake, on_wake, 20, 20);
    assert_int_equal(p->ops->start(p, &loop), 0);

    /* every call at once; sample every 250 ms until every target reported (bounded) */
    t0 = peers_mono_ms();
    while (checks_seen() < ntargets && peers_mono_ms() - t0 < CALLS_WAIT_MS) {
        uv_run(&loop, UV_RUN_ONCE);
        if (peers_mono_ms() - last >= 250) {
            last = peers_mono_ms();
            g_env.cap.sink.ts_ms += 1000;
            assert_int_equal(p->ops->sample(p, &g_env.cap.sink), 0);
        }
    }
    p->ops->stop(p);
    uv_close((uv_handle_t *)&wake, NULL);
    for (int i = 0; i < 200; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        rc = uv_loop_close(&loop);
        if (rc == 0) {
            break;
        }
        peers_sleep_ms(5);
    }
    assert_int_equal(rc, 0);
    wp_probe_free(p);
    assert_int_equal(g_env.cap.bad, 0);
    assert_int_equal(checks_seen(), ntargets);
    fprintf(stderr, "all calls done in %.1f s\n", (double)(peers_mono_ms() - t0) / 1000.0);
    for (size_t i = 0; i < g_env.cap.nrecs; i++) {
        const struct cap_rec *r = &g_env.cap.recs[i];
        if (r->kind == WP_REC_CHECK) {
            fprintf(stderr, "  %s [%u] %s\n", r->name, r->level, r->text);
        }
    }

    /* IVR answering 3.2 s after the INVITE, with a tone: OK */
    fprintf(stderr, "answer error: ivr3 %+.3f s, ivr12 %+.3f s\n", val("ivr3", "answer_s") - 3.2,
            val("ivr12", "answer_s") - 12.0);
    assert_true(fabs(val("ivr3", "answer_s") - 3.2) <= TOL_S);
    assert_true(val("ivr3", "trying_s") >= 0.0 && val("ivr3", "trying_s") < 0.1);
    assert_true(fabs(val("ivr3", "pdd_s") - 0.2) <= TOL_S);
    assert_true(val("ivr3", "first_rtp_s") >= 0.0 && val("ivr3", "first_rtp_s") < 1.0);
    assert_true(val("ivr3", "silence_max_s") < 1.0);
    assert_true(val("ivr3", "sip_code") == 200.0);
    assert_true(val("ivr3", "answered") == 1.0);
    assert_true(val("ivr3", "dead_air") == 0.0);
    assert_int_equal(check_of("ivr3")->level, WP_CHECK_OK);
    assert_contains(check_of("ivr3")->text, "SIP CALL OK: answered (200 OK)");
    assert_string_equal(state_of("ivr3")->text, "idle");
    assert_string_equal(state_of("ivr3")->group, "hotline");
    assert_string_equal(state_of("ivr3")->raw, "200 OK, answered");

    /* after 12 s: answered, but slower than slow_answer */
    assert_true(fabs(val("ivr12", "answer_s") - 12.0) <= TOL_S);
    assert_true(val("ivr12", "dead_air") == 0.0);
    assert_int_equal(check_of("ivr12")->level, WP_CHECK_WARNING);
    assert_contains(check_of("ivr12")->text, "SIP CALL WARNING: slow answer: ");
    assert_string_equal(state_of("ivr12")->text, "unavailable");

    /* silence after the answer: dead air */
    fprintf(stderr, "silence_max: silent %.2f s, ivr3 %.2f s\n", val("silent", "silence_max_s"),
            val("ivr3", "silence_max_s"));
    assert_true(val("silent", "answered") == 1.0);
    assert_true(val("silent", "first_rtp_s") < 1.0); /* RTP came, but silent */
    assert_true(val("silent", "silence_max_s") > 5.5);
    assert_true(val("silent", "dead_air") == 1.0);
    assert_int_equal(check_of("silent")->level, WP_CHECK_WARNING);
    assert_contains(check_of("silent")->text, "SIP CALL WARNING: dead air: ");

    /* never answers: cancelled at the timeout, the 487 ACKed */
    assert_true(isnan(val("noanswer", "answer_s")));
    assert_true(fabs(val("noanswer", "pdd_s") - 0.2) <= TOL_S);
    assert_true(val("noanswer", "sip_code") == 487.0);
    assert_true(val("noanswer", "answered") == 0.0);
    assert_int_equal(check_of("noanswer")->level, WP_CHECK_CRITICAL);
    assert_contains(
        check_of("noanswer")->text,
        "SIP CALL CRITICAL: no answer in 4 s, cancelled (487 Request Terminated); PDD 0.2");
    assert_string_equal(state_of("noanswer")->raw, "487 Request Terminated, no_answer");

    /* busy */
    assert_true(val("busy", "sip_code") == 486.0);
    assert_int_equal(check_of("busy")->level, WP_CHECK_WARNING);
    assert_string_equal(state_of("busy")->raw, "486 Busy Here, busy");
    assert_string_equal(state_of("busy")->text, "unavailable");

    /* digest: the right password gets the call through, the wrong one a 403 */
    assert_true(val("auth", "sip_code") == 200.0);
    assert_int_equal(check_of("auth")->level, WP_CHECK_OK);
    assert_true(val("authbad", "sip_code") == 403.0);
    assert_int_equal(check_of("authbad")->level, WP_CHECK_CRITICAL);
    assert_contains(check_of("authbad")->text, "SIP CALL CRITICAL: rejected (403 Forbidden)");

    /* forwarding: 302 followed to seat2 (the second SIPp), which answers */
    assert_true(val("fwd", "sip_code") == 200.0);
    assert_int_equal(check_of("fwd")->level, WP_CHECK_OK);
    assert_contains(check_of("fwd")->text, "forwarded to seat2 in ");
    /* answered by someone else */
    assert_int_equal(check_of("fwdmiss")->level, WP_CHECK_CRITICAL);
    assert_contains(check_of("fwdmiss")->text, "SIP CALL CRITICAL: forward missed: seat9 never");

    /* nothing answers: timer A sent the INVITE at 0, 0.5 and 1.5 s, byte for byte the same */
    assert_int_equal(count_invites(hole), 3);
    close(hole);
    assert_true(isnan(val("dead", "sip_code")));
    assert_true(isnan(val("dead", "trying_s")));
    assert_true(val("dead", "answered") == 0.0);
    assert_int_equal(check_of("dead")->level, WP_CHECK_CRITICAL);
    assert_contains(check_of("dead")->text, "SIP CALL CRITICAL: unreachable: no response");
    assert_string_equal(state_of("dead")->raw, "no response, unreachable");
}

/* Run loop for ms, sampling p into the capture every 100 ms. */
static void run_for(uv_loop_t *loop, struct wp_probe *p, int64_t ms)
{
    int64_t end = peers_mono_ms() + ms;
    int64_t last = 0;

    while (peers_mono_ms() < end) {
        uv_run(loop, UV_RUN_ONCE);
        if (peers_mono_ms() - last >= 100) {
            last = peers_mono_ms();
            g_env.cap.sink.ts_ms += 1000;
            assert_int_equal(p->ops->sample(p, &g_env.cap.sink), 0);
        }
    }
}

/* Calls repeat every target interval; stop() in the middle of a ringing call CANCELs it and
 * every handle closes (the loop closes, ASan sees no leak). */
static void sipcall_repeat_and_stop(void **state)
{
    char yaml[1024];
    struct wp_probe *p = NULL;
    uv_loop_t loop;
    uv_timer_t wake;
    size_t busy = 0;
    int rc = 0;

    (void)state;
    capture_clear(&g_env.cap);
    snprintf(yaml, sizeof(yaml),
             "kind: sipcall\ninterval: 10s\n"
             "targets:\n"
             "  - {name: busy, host: 127.0.0.1, port: %d, interval: 1s}\n"
             "  - {name: ringing, host: 127.0.0.1, port: %d, timeout: 20s}\n",
             g_env.s[S_BUSY].port, g_env.s[S_NOANSWER].port);
    p = peers_probe(&wp_probe_sipcall, yaml);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(uv_timer_init(&loop, &wake), 0);
    uv_timer_start(&wake, on_wake, 20, 20);
    assert_int_equal(p->ops->start(p, &loop), 0);
    run_for(&loop, p, 2600);
    p->ops->stop(p);
    uv_close((uv_handle_t *)&wake, NULL);
    for (int i = 0; i < 200; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        rc = uv_loop_close(&loop);
        if (rc == 0) {
            break;
        }
        peers_sleep_ms(5);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(p->ops->sample(p, &g_env.cap.sink), 0); /* nothing left to report */
    wp_probe_free(p);
    for (size_t i = 0; i < g_env.cap.nrecs; i++) {
        const struct cap_rec *r = &g_env.cap.recs[i];
        busy += r->kind == WP_REC_CHECK && strcmp(r->name, "sipcall_busy") == 0;
        assert_true(strcmp(r->name, "sipcall_ringing") != 0);
        assert_true(strcmp(r->name, "ringing") != 0);
    }
    assert_true(busy >= 2 && busy <= 4);
    /* the state went out once: the later calls changed nothing */
    assert_string_equal(state_of("busy")->raw, "486 Busy Here, busy");
    {
        size_t states = 0;
        for (size_t i = 0; i < g_env.cap.nrecs; i++) {
            states += g_env.cap.recs[i].kind == WP_REC_STATE;
        }
        assert_int_equal(states, 1);
    }
    capture_clear(&g_env.cap);
}

/* ---- sip_util on fixed vectors ---- */

static void sipcall_digest_rfc2617(void **state)
{
    struct wp_sip_challenge ch;
    char out[512];

    (void)state;
    memset(&ch, 0, sizeof(ch));
    ch.present = 1;
    ch.algo_ok = 1;
    ch.qop_auth = 1;
    snprintf(ch.realm, sizeof(ch.realm), "testrealm@host.com");
    snprintf(ch.nonce, sizeof(ch.nonce), "dcd98b7102dd2f0e8b11d0f600bfb0c093");
    snprintf(ch.opaque, sizeof(ch.opaque), "5ccc069c403ebaf9f0171e9517f40e41");
    assert_int_equal(wp_sip_digest(&ch, "Mufasa", "Circle Of Life", "GET", "/dir/index.html",
                                   "0a4f113b", 1, out, sizeof(out)),
                     0);
    assert_contains(out, "response=\"6629fae49393a05397450978507c4ef1\"");
    assert_contains(out, "nc=00000001");
    assert_contains(out, "cnonce=\"0a4f113b\"");
    assert_contains(out, "opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"");
    assert_int_equal(wp_sip_digest(&ch, "Mufasa", "Circle Of Life", "GET", "/dir/index.html",
                                   "0a4f113b", 1, out, 40),
                     WP_ETOOBIG);
    ch.algo_ok = 0;
    assert_int_equal(wp_sip_digest(&ch, "u", "p", "INVITE", "sip:x", "c", 1, out, sizeof(out)),
                     WP_EPROTO);
}

static void sipcall_parse_helpers(void **state)
{
    static const char resp[] =
        "SIP/2.0 401 Unauthorized\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKabc;rport=5062\r\n"
        "From: <sip:watchpost@127.0.0.1>;tag=f1\r\n"
        "To: <sip:4000@127.0.0.1>;tag=t9\r\n"
        "Call-ID: wpc.1234\r\n"
        "CSeq: 7 INVITE\r\n"
        "Record-Route: <sip:p1.example;lr>\r\n"
        "Record-Route: <sip:p2.example;lr>\r\n"
        "Contact: <sip:seat2@10.0.0.9:5070>\r\n"
        "Proxy-Authenticate: Digest realm=\"r\", nonce=\"n1\", qop=\"auth-int,auth\"\r\n"
        "Content-Type: application/sdp\r\n"
        "Content-Length: 69\r\n"
        "\r\n"
        "v=0\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8 0\r\na=sendrecv\r\n";
    static struct wp_sip_resp resp_buf;
    struct wp_sip_resp *r = &resp_buf;
    struct wp_sdp sdp;
    const uint8_t rtp[] = {0x90, 0x00, 0, 1, 0, 0, 0, 0, 0,    0,   0, 1, /* header + ext */
                           0xbe, 0xde, 0, 1, 1, 2, 3, 4, 0xff, 0xff};
    const uint8_t bad_ext[] = {0x90, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xbe, 0xde, 0, 9};
    int pt = -1;
    size_t off = 0;
    size_t plen = 0;
    uint8_t silence[160];

    (void)state;
    wp_sip_init();
    assert_int_equal(wp_sip_parse_response(resp, strlen(resp), r), 0);
    assert_int_equal(r->code, 401);
    assert_string_equal(r->call_id, "wpc.1234");
    assert_int_equal(r->cseq, 7);
    assert_string_equal(r->method, "INVITE");
    assert_string_equal(r->branch, "z9hG4bKabc");
    assert_string_equal(r->to_tag, "t9");
    assert_string_equal(r->contact_user, "seat2");
    assert_string_equal(r->contact_host, "10.0.0.9");
    assert_int_equal(r->contact_port, 5070);
    assert_string_equal(r->route, "<sip:p2.example;lr>, <sip:p1.example;lr>");
    assert_true(r->ch.present && r->ch.proxy && r->ch.qop_auth && r->ch.algo_ok);
    assert_string_equal(r->ch.realm, "r");
    assert_string_equal(r->ch.nonce, "n1");
    assert_true(r->has_sdp);
    assert_int_equal(wp_sdp_parse(r->body, r->body_len, &sdp), 0);
    assert_string_equal(sdp.addr, "10.0.0.9");
    assert_int_equal(sdp.port, 4000);
    assert_int_equal(sdp.pt, 8);
    assert_int_equal(wp_sip_parse_response("INVITE sip:a SIP/2.0\r\n\r\n", 24, r), WP_EPROTO);
    assert_int_equal(wp_sip_parse_response("SIP/2.0 200 OK\r\n\r\n", 18, r), WP_EPROTO);
    assert_int_equal(wp_sdp_parse("c=IN IP4 1.2.3.4\r\n", 18, &sdp), WP_EPROTO); /* no v= */
    assert_int_equal(wp_sdp_parse("v=0\nm=audio 99999 RTP/AVP 0\n", 28, &sdp), WP_EPROTO);

    assert_int_equal(wp_rtp_payload(rtp, sizeof(rtp), &pt, &off, &plen), 0);
    assert_int_equal(pt, 0);
    assert_int_equal(off, 20);
    assert_int_equal(plen, 2);
    assert_int_equal(wp_rtp_payload(bad_ext, sizeof(bad_ext), &pt, &off, &plen), WP_EPROTO);
    assert_int_equal(wp_rtp_payload(rtp, 11, &pt, &off, &plen), WP_EPROTO);

    assert_int_equal(wp_g711_ulaw(0xff), 0);
    assert_int_equal(wp_g711_ulaw(0x00), -32124);
    assert_int_equal(wp_g711_ulaw(0x80), 32124);
    assert_int_equal(wp_g711_alaw(0xd5), 8);
    assert_int_equal(wp_g711_alaw(0x55), -8);
    assert_int_equal(wp_g711_alaw(0xaa), 32256);
    for (size_t i = 0; i < sizeof(silence); i++) {
        silence[i] = ulaw_encode((int16_t)(8000.0 * sin(2.0 * M_PI * (double)i / 8.0)));
    }
    assert_true(wp_g711_rms(silence, sizeof(silence), 0) > 5000.0);
    memset(silence, 0xff, sizeof(silence));
    assert_true(wp_g711_rms(silence, sizeof(silence), 0) < 1.0);
}

/* ---- config ---- */

static void expect_config_error(const char *yaml, const char *prefix, const char *what)
{
    fixture_expect_config_error(&wp_probe_sipcall, "call.yaml", yaml, prefix, what);
}

static void sipcall_config_errors(void **state)
{
    (void)state;
    expect_config_error("kind: sipcall\n", "call.yaml:", "targets");
    expect_config_error("kind: sipcall\ntargets: []\n",
                        "call.yaml:2:10: ", "targets: expected a list");
    expect_config_error("kind: sipcall\ntargets:\n  - {name: a}\n",
                        "call.yaml:3:", "targets[0]: expected uri or host");
    expect_config_error("kind: sipcall\ntargets:\n  - {name: a, uri: \"tel:123\"}\n",
                        "call.yaml:3:", "targets[0].uri: expected sip:user@host[:port]");
    expect_config_error("kind: sipcall\ntargets:\n  - {name: a, uri: \"sip:1@h\", host: h}\n",
                        "call.yaml:3:", "expected uri or host, not both");
    expect_config_error("kind: sipcall\ntargets:\n  - {name: a, host: \"x\\r\\nVia: y\"}\n",
                        "call.yaml:3:", "targets[0].host: expected");
    expect_config_error("kind: sipcall\ntargets:\n  - {name: a, host: h, user: \"a@b\"}\n",
                        "call.yaml:3:", "targets[0].user");
    expect_config_error("kind: sipcall\ntargets:\n  - {name: a, host: h, auth_user: u}\n",
                        "call.yaml:3:", "auth_user and password_file together");
    expect_config_error("kind: sipcall\ntargets:\n  - {name: a, host: h, forward_to: \"a b\"}\n",
                        "call.yaml:3:", "targets[0].forward_to");
    expect_config_error("kind: sipcall\ntargets:\n  - {name: a, host: h, auth_user: u,"
                        " password_file: /nonexistent/pw}\n",
                        "call.yaml:", "init failed");
}

/* The example of docs/PROBES.md is accepted. */
static void sipcall_config_example(void **state)
{
    char yaml[1536];
    char pw[160];
    struct wp_probe *p = NULL;

    (void)state;
    snprintf(pw, sizeof(pw), "%s/example.pass", g_env.dir);
    assert_int_equal(peers_sh("printf 'pw\\n' > %s", pw), 0);
    snprintf(yaml, sizeof(yaml),
             "kind: sipcall\nname: hotline\ninterval: 60s\ngroup: hotline\n"
             "from_user: watchpost\n"
             "targets:\n"
             "  - name: hotline\n"
             "    uri: \"sip:4000@10.1.2.5:5060\"\n"
             "    auth_user: probe\n"
             "    password_file: %s\n"
             "    interval: 5m\n    timeout: 30s\n    dead_air: 5s\n    listen: 8s\n"
             "    slow_answer: 20s\n"
             "  - {name: seat8006, host: 10.1.2.5, user: \"8006\", interval: 15m,\n"
             "     forward_to: \"8100\", forward_within: 25s, listen: 3s}\n"
             "  - {name: v6, uri: \"sip:4000@[2001:db8::5]:5070\"}\n",
             pw);
    p = peers_probe(&wp_probe_sipcall, yaml);
    assert_non_null(p);
    wp_probe_free(p);
}

/* ---- setup ---- */

static int group_teardown(void **state);

static int group_setup(void **state)
{
    struct {
        const char *scenario;
        const char *extra[8];
    } peers[S_N] = {
        [S_IVR3] = {"call_answer.xml", {"-d", "3000", "-s", "ivr", NULL}},
        [S_IVR12] = {"call_answer.xml", {"-d", "11800", "-s", "ivr", NULL}},
        [S_SILENCE] = {"call_silence.xml", {"-d", "300", "-s", "seat", NULL}},
        [S_NOANSWER] = {"call_noanswer.xml", {"-s", "seat", NULL}},
        [S_BUSY] = {"call_busy.xml", {NULL}},
        [S_AUTH] = {"call_auth.xml", {"-s", "ivr", NULL}},
        [S_FWD] = {"call_answer.xml", {"-d", "300", "-s", "seat2", NULL}},
        [S_REDIR] = {"call_redirect.xml", {NULL}},
    };
    char fwd_port[16];

    (void)state;
    memset(&g_env, 0, sizeof(g_env));
    snprintf(g_env.dir, sizeof(g_env.dir), "/tmp/wp-sipcall-XXXXXX");
    if (mkdtemp(g_env.dir) == NULL) {
        return -1;
    }
    capture_init(&g_env.cap, 1700000000000, 10);
    if (write_audio("tone.ulaw", 1) < 0 || write_audio("silence.ulaw", 0) < 0) {
        group_teardown(state);
        return -1;
    }
    /* the forward target first: the redirecting SIPp needs its port */
    for (int i = 0; i < S_N; i++) {
        if (i == S_REDIR) {
            continue;
        }
        if (sipp_start(peers[i].scenario, peers[i].extra, &g_env.s[i]) < 0) {
            group_teardown(state);
            return -1;
        }
    }
    snprintf(fwd_port, sizeof(fwd_port), "%d", g_env.s[S_FWD].port);
    {
        const char *extra[] = {"-key", "fwd_user", "seat2", "-key", "fwd_port", fwd_port, NULL};
        if (sipp_start(peers[S_REDIR].scenario, extra, &g_env.s[S_REDIR]) < 0) {
            group_teardown(state);
            return -1;
        }
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < S_N; i++) {
        sipp_stop(&g_env.s[i]);
    }
    capture_cleanup(&g_env.cap);
    if (getenv("WP_KEEP_TMP") == NULL) {
        peers_rmtree(g_env.dir);
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sipcall_digest_rfc2617), cmocka_unit_test(sipcall_parse_helpers),
        cmocka_unit_test(sipcall_config_errors),  cmocka_unit_test(sipcall_config_example),
        cmocka_unit_test(sipcall_all_outcomes),   cmocka_unit_test(sipcall_repeat_and_stop),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
