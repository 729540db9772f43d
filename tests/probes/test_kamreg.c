/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kamreg probe against a real Kamailio (tests/fixtures/kamailio/kamailio.cfg.in, written
 * per run with a port the test picks: Kamailio cannot take port 0, so a free port from
 * peers_free_port() and a retry when it fails to start) in a temp dir with its own ctl socket
 * and pid file, SIPp UACs registering extensions (register.xml), baresip as a real softphone
 * (skipped when it is not installed), and an in-test HTTP server that answers garbage.
 * Kamailio runs in its own process group, killed with it in every path. Prints the measured
 * detection times.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

extern const struct wp_probe_ops wp_probe_kamreg;

#define KAM_WAIT_MS    8000
#define SIPP_WAIT_MS   6000
#define EXPIRES_S      20
#define LAPSE_LIMIT_MS 45000 /* lost registration raised within this, from its last REGISTER */

struct env {
    char dir[64];
    pid_t kam;       /* Kamailio's main process, leader of its process group */
    int port;        /* its SIP UDP and TCP port (JSON-RPC on the TCP one) */
    int uac_port[4]; /* fixed local SIPp ports of 2001, 2002, 3001, 3002: a stable Contact */
    struct capture cap;
};

static struct env g_env;

/* ---- Kamailio ---- */

/* Stop Kamailio's whole process group: SIGTERM, up to 3 s, then SIGKILL; always reaped. */
static void kam_stop(void)
{
    int64_t end = peers_mono_ms() + 3000;
    pid_t pid = g_env.kam;

    if (pid <= 0) {
        return;
    }
    kill(-pid, SIGTERM);
    while (waitpid(pid, NULL, WNOHANG) == 0) {
        if (peers_mono_ms() >= end) {
            kill(-pid, SIGKILL);
            waitpid(pid, NULL, 0);
            break;
        }
        peers_sleep_ms(20);
    }
    /* children that outlived the main process */
    end = peers_mono_ms() + 2000;
    while (kill(-pid, 0) == 0 && peers_mono_ms() < end) {
        kill(-pid, peers_mono_ms() + 1000 < end ? SIGTERM : SIGKILL);
        peers_sleep_ms(20);
    }
    kill(-pid, SIGKILL);
    g_env.kam = 0;
}

/* Write dir/kamailio.cfg from the template for port; 0 or -1. */
static int kam_config(int port)
{
    char in[512];
    char outp[160];
    char *tpl = NULL;
    size_t len = 0;
    FILE *f = NULL;
    FILE *o = NULL;
    int rc = -1;

    snprintf(in, sizeof(in), "%s/kamailio/kamailio.cfg.in", getenv("WP_FIXTURES"));
    snprintf(outp, sizeof(outp), "%s/kamailio.cfg", g_env.dir);
    f = fopen(in, "re");
    o = fopen(outp, "we");
    if (f == NULL || o == NULL) {
        goto out;
    }
    tpl = wp_xmalloc(65536);
    len = fread(tpl, 1, 65535, f);
    tpl[len] = '\0';
    for (const char *s = tpl; *s != '\0';) {
        if (strncmp(s, "@PORT@", 6) == 0) {
            fprintf(o, "%d", port);
            s += 6;
        } else if (strncmp(s, "@DIR@", 5) == 0) {
            fputs(g_env.dir, o);
            s += 5;
        } else {
            fputc(*s++, o);
        }
    }
    rc = 0;
out:
    free(tpl);
    if (f != NULL) {
        fclose(f);
    }
    if (o != NULL && fclose(o) != 0) {
        rc = -1;
    }
    return rc;
}

/* POST body to 127.0.0.1:port/RPC and read the answer into buf; its length or -1. */
static ssize_t rpc_raw(int port, const char *body, char *buf, size_t len, int ms)
{
    struct sockaddr_in a;
    char req[1024];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    size_t got = 0;
    int64_t end = peers_mono_ms() + ms;
    int n = 0;

    if (fd < 0) {
        return -1;
    }
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    n = snprintf(req, sizeof(req),
                 "POST /RPC HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                 strlen(body), body);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || send(fd, req, (size_t)n, 0) != n) {
        close(fd);
        return -1;
    }
    while (got + 1 < len && peers_mono_ms() < end) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN, .revents = 0};
        ssize_t r = 0;
        if (poll(&pfd, 1, 100) <= 0) {
            continue;
        }
        r = recv(fd, buf + got, len - 1 - got, 0);
        if (r <= 0) {
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    return (ssize_t)got;
}

/* Does the Kamailio on port answer ul.dump? */
static int kam_ready(int port)
{
    char buf[8192];

    return rpc_raw(port, "{\"jsonrpc\":\"2.0\",\"method\":\"ul.dump\",\"id\":1}", buf, sizeof(buf),
                   500) > 0 &&
           strstr(buf, "\"Domains\"") != NULL;
}

static pid_t kam_spawn(void)
{
    char cfg[160];
    char pidf[160];
    char logf[160];

    snprintf(cfg, sizeof(cfg), "%s/kamailio.cfg", g_env.dir);
    snprintf(pidf, sizeof(pidf), "%s/kamailio.pid", g_env.dir);
    snprintf(logf, sizeof(logf), "%s/kamailio.log", g_env.dir);
    /* -DD: no daemon, the main process stays our child; -E: log to stderr. Its own process
     * group: kam_stop reaches its children. SIGTERM, not SIGKILL, when the test dies:
     * Kamailio's main process stops its children on SIGTERM, while a killed one leaves them
     * running (and holding the port) */
    const char *const argv[] = {"kamailio", "-DD", "-E",      "-f", cfg,  "-P", pidf, "-Y",
                                g_env.dir,  "-w",  g_env.dir, "-m", "32", "-M", "8",  NULL};

    return fixture_spawn(g_env.dir, logf, FIXTURE_APPEND | FIXTURE_PGROUP, SIGTERM, argv);
}

/* Start Kamailio on port (0: a free one, retried when it fails to start); 0 or -1. */
static int kam_start(int port)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        int p = port != 0 ? port : peers_free_port();
        int64_t end = peers_mono_ms() + KAM_WAIT_MS;

        if (p <= 0 || kam_config(p) < 0) {
            continue;
        }
        g_env.kam = kam_spawn();
        if (g_env.kam < 0) {
            g_env.kam = 0;
            continue;
        }
        while (peers_mono_ms() < end) {
            if (waitpid(g_env.kam, NULL, WNOHANG) == g_env.kam) {
                g_env.kam = 0; /* the port was taken, most likely: try again */
                break;
            }
            if (kam_ready(p)) {
                g_env.port = p;
                return 0;
            }
            peers_sleep_ms(50);
        }
        kam_stop();
        peers_sleep_ms(200);
    }
    fprintf(stderr, "kamailio did not answer JSON-RPC (see %s/kamailio.log)\n", g_env.dir);
    return -1;
}

/* ---- SIPp UACs ---- */

/* One REGISTER of ext from local port lport with expires; SIPp's exit code (0: 200 OK). */
static int sipp_register_once(const char *ext, int lport, int expires)
{
    const char *fix = getenv("WP_FIXTURES");
    char sf[512];
    char target[32];
    char lp[16];
    char ex[16];
    char logf[160];
    pid_t pid = 0;
    int st = 0;
    int64_t end = peers_mono_ms() + SIPP_WAIT_MS;

    snprintf(sf, sizeof(sf), "%s/kamailio/register.xml", fix);
    snprintf(target, sizeof(target), "127.0.0.1:%d", g_env.port);
    snprintf(lp, sizeof(lp), "%d", lport);
    snprintf(ex, sizeof(ex), "%d", expires);
    snprintf(logf, sizeof(logf), "%s/sipp-%s.out", g_env.dir, ext);
    const char *const argv[] = {"sipp", target,     "-sf",       sf,   "-s",
                                ext,    "-key",     "expires",   ex,   "-m",
                                "1",    "-i",       "127.0.0.1", "-p", lp,
                                "-nd",  "-nostdin", "-timeout",  "4s", "-timeout_error",
                                NULL};

    pid = fixture_spawn(g_env.dir, logf, FIXTURE_APPEND, SIGKILL, argv);
    if (pid < 0) {
        return -1;
    }
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (peers_mono_ms() >= end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        peers_sleep_ms(10);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Register ext (index i into uac_port) with expires; a new local port when SIPp cannot bind
 * the chosen one. 0 or fails the test. */
static void sipp_register(int i, const char *ext, int expires)
{
    for (int attempt = 0; attempt < 4; attempt++) {
        if (g_env.uac_port[i] == 0) {
            g_env.uac_port[i] = peers_free_port();
        }
        if (sipp_register_once(ext, g_env.uac_port[i], expires) == 0) {
            return;
        }
        g_env.uac_port[i] = 0;
    }
    fail_msg("sipp could not register %s (see %s/sipp-%s.out)", ext, g_env.dir, ext);
}

/* ---- probe helpers ---- */

static struct wp_probe *probe_new(const char *yaml)
{
    return peers_probe(&wp_probe_kamreg, yaml);
}

/* Sample p once into g_env.cap (cleared first). */
static void sample(struct wp_probe *p)
{
    capture_clear(&g_env.cap);
    g_env.cap.sink.ts_ms += 1000;
    assert_int_equal(p->ops->sample(p, &g_env.cap.sink), 0);
    assert_int_equal(g_env.cap.bad, 0);
}

static const struct cap_rec *state_of(const char *object)
{
    return capture_rec(&g_env.cap, WP_REC_STATE, object);
}

static size_t nstates(void)
{
    size_t n = 0;

    for (size_t i = 0; i < g_env.cap.nrecs; i++) {
        n += g_env.cap.recs[i].kind == WP_REC_STATE;
    }
    return n;
}

static void expect_state(const char *object, const char *group, const char *state, const char *raw)
{
    const struct cap_rec *r = state_of(object);

    if (r == NULL) {
        fail_msg("no state for %s", object);
    }
    assert_string_equal(r->group, group);
    assert_string_equal(r->text, state);
    if (raw != NULL) {
        assert_string_equal(r->raw, raw);
    }
}

static double val(const char *group, const char *inst, const char *field)
{
    return peers_field(&g_env.cap, group, inst, field);
}

static const struct cap_rec *check_of(const char *name)
{
    const struct cap_rec *r = capture_rec(&g_env.cap, WP_REC_CHECK, name);

    if (r == NULL) {
        fail_msg("no check %s", name);
    }
    return r;
}

static char *yaml_for(int port, const char *extra)
{
    return wp_xasprintf("kind: kamreg\nname: pbx1\ninterval: 1s\ntimeout: 1s\n"
                        "url: \"http://127.0.0.1:%d/RPC\"\ngroup: seats\n%s"
                        "extensions:\n  - \"2001\"\n  - \"2002\"\n"
                        "  - {name: \"3001\", group: ivr}\n  - {name: \"3002\", group: ivr}\n",
                        port, extra != NULL ? extra : "");
}

/* ---- tests against Kamailio ---- */

/*
 * 2001 refreshes every 8 s, 2002 registers once with Expires 20 and lapses, 3001 is
 * unregistered with Expires: 0, 3002 never registers.
 */
static void kamreg_lapse_and_unregister(void **state)
{
    char *yaml = yaml_for(g_env.port, NULL);
    struct wp_probe *p = probe_new(yaml);
    const struct cap_rec *r = NULL;
    int64_t t_reg2002 = 0;
    int64_t t_refresh = 0;
    int64_t t_unreg = 0;
    int64_t end = 0;
    int64_t lapsed_at = 0;
    int rounds = 0;

    (void)state;
    free(yaml);
    sipp_register(0, "2001", EXPIRES_S);
    t_refresh = peers_mono_ms();
    sipp_register(1, "2002", EXPIRES_S);
    t_reg2002 = peers_mono_ms();
    sipp_register(2, "3001", EXPIRES_S);

    /* the first round: a full snapshot */
    sample(p);
    assert_int_equal(nstates(), 5);
    expect_state("kamailio:pbx1", "telephony_link", "idle", "ok");
    expect_state("2001", "seats", "idle", "registered");
    expect_state("2002", "seats", "idle", "registered");
    expect_state("3001", "ivr", "idle", "registered");
    expect_state("3002", "ivr", "unavailable", "not registered");
    r = state_of("2001");
    assert_contains(r->info, "sip:2001@127.0.0.1:");
    assert_contains(r->info, "ua=SIPp-2001");
    assert_contains(r->info, "expires=");
    assert_string_equal(state_of("3002")->info, "");
    assert_true(val("kamreg", "pbx1", "up") == 1.0);
    assert_true(val("kamreg", "pbx1", "aors") == 3.0);
    assert_true(val("kamreg", "pbx1", "registered") == 3.0);
    assert_true(val("kamreg", "pbx1", "expected") == 4.0);
    assert_true(val("kamreg_group", "pbx1/seats", "registered") == 2.0);
    assert_true(val("kamreg_group", "pbx1/seats", "expected") == 2.0);
    assert_true(val("kamreg_group", "pbx1/ivr", "registered") == 1.0);
    assert_true(val("kamreg_group", "pbx1/ivr", "expected") == 2.0);
    assert_true(val("kamreg_ext", "pbx1/2001", "expires_s") > 10.0);
    assert_true(val("kamreg_ext", "pbx1/2001", "expires_s") <= (double)EXPIRES_S);
    assert_true(isnan(val("kamreg_ext", "pbx1/3002", "expires_s")));
    assert_int_equal(check_of("kamreg_pbx1")->level, WP_CHECK_WARNING);
    assert_contains(check_of("kamreg_pbx1")->text,
                    "KAMREG WARNING: 3/4 registered (seats 2/2, ivr 1/2); not registered: 3002");

    /* nothing changed: nothing sent */
    sample(p);
    assert_int_equal(nstates(), 0);

    /* 3001 unregisters (Expires: 0): unavailable at the next round */
    sipp_register(2, "3001", 0);
    t_unreg = peers_mono_ms();
    sample(p);
    assert_int_equal(nstates(), 1);
    expect_state("3001", "ivr", "unavailable", "not registered");
    printf("kamreg: unregister (Expires: 0) unavailable at the first poll, %lld ms after the "
           "REGISTER's 200\n",
           (long long)(peers_mono_ms() - t_unreg));

    /* 2002 stops refreshing: unavailable within one poll of its expiry; 2001 keeps going */
    end = t_reg2002 + LAPSE_LIMIT_MS;
    while (peers_mono_ms() < end && rounds < 60) {
        peers_sleep_ms(1000);
        if (peers_mono_ms() - t_refresh >= 8000) {
            sipp_register(0, "2001", EXPIRES_S);
            t_refresh = peers_mono_ms();
        }
        sample(p);
        rounds++;
        assert_null(state_of("2001"));
        r = state_of("2002");
        if (r != NULL) {
            lapsed_at = peers_mono_ms();
            break;
        }
    }
    if (lapsed_at == 0) {
        fail_msg("2002 still registered %d ms after its last REGISTER", LAPSE_LIMIT_MS);
    }
    assert_string_equal(r->text, "unavailable");
    assert_true(strcmp(r->raw, "expired") == 0 || strcmp(r->raw, "not registered") == 0);
    printf("kamreg: lapsed registration (Expires %d s, poll 1 s) unavailable %lld ms after its "
           "last REGISTER's 200, %lld ms from its expiry (raw \"%s\")\n",
           EXPIRES_S, (long long)(lapsed_at - t_reg2002),
           (long long)(lapsed_at - t_reg2002 - EXPIRES_S * 1000), r->raw);
    assert_true(lapsed_at - t_reg2002 <= LAPSE_LIMIT_MS);
    /* within one poll interval (1 s) of the expiry, plus the sample's own time */
    assert_true(lapsed_at - t_reg2002 - EXPIRES_S * 1000 <= 2500);
    assert_true(val("kamreg_group", "pbx1/seats", "registered") == 1.0);
    assert_int_equal(check_of("kamreg_pbx1")->level, WP_CHECK_WARNING);
    assert_contains(check_of("kamreg_pbx1")->text, "1/4 registered (seats 1/2, ivr 0/2)");
    assert_true(val("kamreg_ext", "pbx1/2002", "registered") == 0.0);
    assert_true(val("kamreg_ext", "pbx1/2001", "registered") == 1.0);
    wp_probe_free(p);
}

/* Kamailio stopped: every extension unknown once and the link unavailable; restarted: a full
 * snapshot. */
static void kamreg_kamailio_restart(void **state)
{
    char *yaml = yaml_for(g_env.port, NULL);
    struct wp_probe *p = probe_new(yaml);
    int port = g_env.port;
    int64_t t0 = 0;

    (void)state;
    free(yaml);
    sipp_register(0, "2001", EXPIRES_S);
    sample(p);
    assert_int_equal(nstates(), 5);
    expect_state("2001", "seats", "idle", "registered");

    kam_stop();
    t0 = peers_mono_ms();
    sample(p);
    printf("kamreg: Kamailio stopped, link lost seen in %lld ms\n",
           (long long)(peers_mono_ms() - t0));
    assert_int_equal(nstates(), 5);
    expect_state("kamailio:pbx1", "telephony_link", "unavailable", NULL);
    assert_contains(state_of("kamailio:pbx1")->raw, "connect");
    expect_state("2001", "seats", "unknown", "link lost");
    expect_state("2002", "seats", "unknown", "link lost");
    expect_state("3001", "ivr", "unknown", "link lost");
    expect_state("3002", "ivr", "unknown", "link lost");
    assert_true(val("kamreg", "pbx1", "up") == 0.0);
    assert_true(isnan(val("kamreg_group", "pbx1/seats", "registered")));
    assert_true(isnan(val("kamreg_ext", "pbx1/2001", "registered")));
    assert_int_equal(check_of("kamreg_pbx1")->level, WP_CHECK_CRITICAL);
    assert_contains(check_of("kamreg_pbx1")->text, "KAMREG CRITICAL: cannot read the registrar: ");

    /* still down: nothing new */
    sample(p);
    assert_int_equal(nstates(), 0);
    assert_int_equal(check_of("kamreg_pbx1")->level, WP_CHECK_CRITICAL);

    assert_int_equal(kam_start(port), 0);
    sipp_register(0, "2001", EXPIRES_S);
    t0 = peers_mono_ms();
    sample(p);
    printf("kamreg: Kamailio restarted, snapshot in %lld ms\n", (long long)(peers_mono_ms() - t0));
    assert_int_equal(nstates(), 5);
    expect_state("kamailio:pbx1", "telephony_link", "idle", "ok");
    expect_state("2001", "seats", "idle", "registered");
    expect_state("2002", "seats", "unavailable", "not registered");
    expect_state("3001", "ivr", "unavailable", "not registered");
    expect_state("3002", "ivr", "unavailable", "not registered");
    assert_true(val("kamreg", "pbx1", "up") == 1.0);
    sample(p);
    assert_int_equal(nstates(), 0);
    wp_probe_free(p);
}

/* ---- a real softphone: baresip ---- */

/* Is prog an executable in PATH? */
static int in_path(const char *prog)
{
    const char *path = getenv("PATH");
    char buf[512];

    while (path != NULL && *path != '\0') {
        const char *colon = strchr(path, ':');
        size_t n = colon != NULL ? (size_t)(colon - path) : strlen(path);
        snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, prog);
        if (n > 0 && access(buf, X_OK) == 0) {
            return 1;
        }
        path = colon != NULL ? colon + 1 : NULL;
    }
    return 0;
}

/* Start baresip registering ext (regint seconds) from 127.0.0.1:port; its pid or -1. */
static pid_t baresip_spawn(const char *ext, int port, int regint)
{
    char cdir[160];
    char file[192];
    char logf[160];
    FILE *f = NULL;

    snprintf(cdir, sizeof(cdir), "%s/baresip", g_env.dir);
    mkdir(cdir, 0700);
    snprintf(file, sizeof(file), "%s/config", cdir);
    f = fopen(file, "we");
    if (f == NULL) {
        return -1;
    }
    /* no audio device, no console: only what registering needs */
    fprintf(f,
            "poll_method epoll\nsip_listen 127.0.0.1:%d\nmodule_path /usr/lib/baresip/modules\n"
            "module g711.so\nmodule_app account.so\naudio_player nothing\naudio_source nothing\n",
            port);
    fclose(f);
    snprintf(file, sizeof(file), "%s/accounts", cdir);
    f = fopen(file, "we");
    if (f == NULL) {
        return -1;
    }
    fprintf(f, "<sip:%s@127.0.0.1:%d;transport=udp>;regint=%d\n", ext, g_env.port, regint);
    fclose(f);
    snprintf(logf, sizeof(logf), "%s/baresip.log", g_env.dir);
    /* -t: quits by itself should the test die without killing it */
    const char *const argv[] = {"baresip", "-f", cdir, "-t", "60", NULL};

    return fixture_spawn(g_env.dir, logf, FIXTURE_APPEND, SIGKILL, argv);
}

/* Is aor in Kamailio's location table? */
static int kam_has_aor(const char *aor)
{
    char buf[16384];
    char want[64];

    snprintf(want, sizeof(want), "\"%s\"", aor); /* "sip:4001@..." does not match */
    return rpc_raw(g_env.port, "{\"jsonrpc\":\"2.0\",\"method\":\"ul.dump\",\"id\":1}", buf,
                   sizeof(buf), 500) > 0 &&
           strstr(buf, want) != NULL;
}

/* baresip registers 4001; shut down (SIGTERM), it unregisters and the line goes unavailable
 * at the next poll. Skipped without baresip (scripts/deps.sh installs baresip-core). */
static void kamreg_baresip_phone(void **state)
{
    char yaml[256];
    struct wp_probe *p = NULL;
    pid_t pid = -1;
    int64_t t0 = 0;
    int64_t end = 0;

    (void)state;
    if (!in_path("baresip")) {
        skip();
    }
    for (int attempt = 0; attempt < 4 && pid < 0; attempt++) {
        pid = baresip_spawn("4001", peers_free_port(), EXPIRES_S);
        end = peers_mono_ms() + 5000;
        while (pid > 0 && !kam_has_aor("4001")) {
            if (waitpid(pid, NULL, WNOHANG) == pid || peers_mono_ms() >= end) {
                peers_stop(&pid, 500); /* its port was taken, most likely: try again */
                pid = -1;
                break;
            }
            peers_sleep_ms(50);
        }
    }
    if (pid < 0) {
        fail_msg("baresip did not register (see %s/baresip.log)", g_env.dir);
    }
    snprintf(yaml, sizeof(yaml),
             "kind: kamreg\nname: phones\ninterval: 1s\ntimeout: 1s\n"
             "url: \"http://127.0.0.1:%d/RPC\"\nextensions: [{name: \"4001\", group: seats}]\n",
             g_env.port);
    p = probe_new(yaml);
    sample(p);
    expect_state("4001", "seats", "idle", "registered");
    assert_contains(state_of("4001")->info, "ua=baresip v");
    assert_true(val("kamreg_ext", "phones/4001", "expires_s") > 10.0);

    t0 = peers_mono_ms();
    kill(pid, SIGTERM); /* a clean shutdown unregisters (Expires: 0) before it exits */
    end = t0 + 3000;
    while (waitpid(pid, NULL, WNOHANG) == 0 && peers_mono_ms() < end) {
        peers_sleep_ms(20);
    }
    peers_stop(&pid, 100);
    sample(p);
    expect_state("4001", "seats", "unavailable", "not registered");
    printf("kamreg: baresip shut down, its unregister seen at the next poll, %lld ms after "
           "SIGTERM\n",
           (long long)(peers_mono_ms() - t0));
    wp_probe_free(p);
}

/* ---- a fake JSON-RPC server: garbage, errors, oversize, a hang ---- */

struct fake {
    int fd;
    int port;
    const char *const *answers; /* whole HTTP responses; "HANG": none until the client closes */
    size_t n;
    size_t served;
};

static void *fake_main(void *arg)
{
    struct fake *f = arg;

    for (size_t i = 0; i < f->n; i++) {
        struct pollfd pfd = {.fd = f->fd, .events = POLLIN, .revents = 0};
        char req[4096];
        size_t got = 0;
        int c = -1;
        int64_t end = peers_mono_ms() + 3000;
        const char *a = f->answers[i];

        if (poll(&pfd, 1, 10000) <= 0) {
            return NULL;
        }
        c = accept(f->fd, NULL, NULL);
        if (c < 0) {
            return NULL;
        }
        /* read the request: headers and a body of Content-Length bytes */
        while (got + 1 < sizeof(req) && peers_mono_ms() < end) {
            struct pollfd cp = {.fd = c, .events = POLLIN, .revents = 0};
            ssize_t r = 0;
            const char *hdr_end = NULL;
            if (poll(&cp, 1, 100) <= 0) {
                continue;
            }
            r = recv(c, req + got, sizeof(req) - 1 - got, 0);
            if (r <= 0) {
                break;
            }
            got += (size_t)r;
            req[got] = '\0';
            hdr_end = strstr(req, "\r\n\r\n");
            if (hdr_end != NULL) {
                const char *cl = strcasestr(req, "Content-Length:");
                size_t want = cl != NULL ? strtoul(cl + 15, NULL, 10) : 0;
                if (got >= (size_t)(hdr_end + 4 - req) + want) {
                    break;
                }
            }
        }
        if (strcmp(a, "HANG") == 0) {
            /* answer nothing until the client gives up and closes */
            struct pollfd cp = {.fd = c, .events = POLLIN, .revents = 0};
            char tmp[64];
            if (poll(&cp, 1, 3000) > 0) {
                (void)recv(c, tmp, sizeof(tmp), 0);
            }
        } else {
            size_t len = strlen(a);
            size_t off = 0;
            while (off < len) {
                ssize_t w = send(c, a + off, len - off, MSG_NOSIGNAL);
                if (w <= 0) {
                    break;
                }
                off += (size_t)w;
            }
        }
        close(c);
        f->served++;
    }
    return NULL;
}

static char *http_200(const char *body)
{
    return wp_xasprintf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                        strlen(body), body);
}

static void kamreg_garbage(void **state)
{
    static const char dump_ok[] =
        "{\"jsonrpc\":\"2.0\",\"result\":{\"Domains\":[{\"Domain\":{\"Domain\":\"location\","
        "\"Size\":1024,\"AoRs\":["
        "{\"Info\":{\"AoR\":\"2001\",\"Contacts\":[{\"Contact\":{\"Address\":\"sip:2001@10.0.0.1:"
        "5060\",\"Expires\":30,\"User-Agent\":\"Yealink\\u0007 T46\"}},{\"Contact\":{\"Address\":"
        "\"sip:2001@10.0.0.9:5060\",\"Expires\":12,\"User-Agent\":\"old\"}}]}},"
        "{\"Info\":{\"AoR\":\"2002\",\"Contacts\":[{\"Contact\":{\"Address\":\"sip:2002@10.0.0.2"
        "\",\"Expires\":\"expired\",\"User-Agent\":\"X\"}}]}},"
        "{\"Info\":{\"AoR\":\"3001\",\"Contacts\":[{\"Contact\":{\"Address\":\"sip:3001@10.0.0.3"
        "\",\"Expires\":\"permanent\"}}]}},"
        "{\"Info\":{\"AoR\":\"9999\",\"Contacts\":[{\"Contact\":{\"Address\":\"sip:9@x\","
        "\"Expires\":5}}]}}"
        "],\"Stats\":{\"Records\":4}}}]},\"id\":1}";
    static const char other_table[] =
        "{\"jsonrpc\":\"2.0\",\"result\":{\"Domains\":[{\"Domain\":{\"Domain\":\"subscriber\","
        "\"AoRs\":[]}}]},\"id\":1}";
    char big[3000];
    char *answers[10];
    char *swapped = NULL;
    char *at = NULL;
    struct fake f = {.fd = -1};
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    pthread_t th;
    char *yaml = NULL;
    struct wp_probe *p = NULL;

    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    answers[0] = http_200("this is not JSON");
    answers[1] = http_200("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":500,\"message\":\"boom\"},"
                          "\"id\":1}");
    answers[2] = wp_xstrdup("HTTP/1.1 500 Internal\r\nContent-Length: 4\r\nConnection: close"
                            "\r\n\r\noops");
    answers[3] = http_200(big); /* Content-Length above max_response */
    answers[4] = wp_xasprintf("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n%s", big);
    answers[5] = http_200(other_table);
    answers[6] = wp_xstrdup("HANG");
    answers[7] = http_200(dump_ok);
    answers[8] = http_200(dump_ok);
    /* the same AoR from another device: a new contact and user agent */
    swapped = wp_xstrdup(dump_ok);
    at = strstr(swapped, "10.0.0.1:5060");
    memcpy(at, "10.0.0.7", 8);
    at = strstr(swapped, "Yealink");
    memcpy(at, "Polycom", 7);
    answers[9] = http_200(swapped);
    free(swapped);

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(f.fd >= 0);
    assert_int_equal(bind(f.fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(f.fd, 8), 0);
    assert_int_equal(getsockname(f.fd, (struct sockaddr *)&a, &alen), 0);
    f.port = ntohs(a.sin_port);
    f.answers = (const char *const *)answers;
    f.n = 10;
    assert_int_equal(pthread_create(&th, NULL, fake_main, &f), 0);

    yaml = wp_xasprintf("kind: kamreg\nname: fake\ninterval: 1s\ntimeout: 300ms\n"
                        "max_response: 2KiB\nurl: \"http://127.0.0.1:%d/RPC\"\n"
                        "extensions: [\"2001\", \"2002\", {name: \"3001\", group: ivr}]\n",
                        f.port);
    p = probe_new(yaml);
    free(yaml);

    /* not JSON: every extension unknown once, the link unavailable */
    sample(p);
    assert_int_equal(nstates(), 4);
    expect_state("kamailio:fake", "telephony_link", "unavailable", NULL);
    assert_contains(state_of("kamailio:fake")->raw, "bad JSON at line 1");
    expect_state("2001", "fake", "unknown", "link lost");
    expect_state("3001", "ivr", "unknown", "link lost");
    assert_int_equal(check_of("kamreg_fake")->level, WP_CHECK_CRITICAL);

    /* a JSON-RPC error: only the link's reason changes */
    sample(p);
    assert_int_equal(nstates(), 1);
    assert_string_equal(state_of("kamailio:fake")->raw, "ul.dump failed: 500 boom");

    sample(p);
    assert_string_equal(state_of("kamailio:fake")->raw, "HTTP 500, not a JSON-RPC answer");

    sample(p);
    assert_string_equal(state_of("kamailio:fake")->raw,
                        "answer larger than max_response (2048 bytes)");
    sample(p); /* no Content-Length: cut while reading */
    assert_int_equal(nstates(), 0);
    assert_contains(check_of("kamreg_fake")->text, "answer larger than max_response");

    sample(p);
    assert_contains(state_of("kamailio:fake")->raw, "table \"location\" is not in ul.dump");

    sample(p);
    assert_string_equal(state_of("kamailio:fake")->raw, "no answer in 0.3 s");

    /* back: a full snapshot; the best live contact wins; "expired"; "permanent" */
    sample(p);
    assert_int_equal(nstates(), 4);
    expect_state("kamailio:fake", "telephony_link", "idle", "ok");
    expect_state("2001", "fake", "idle", "registered");
    assert_string_equal(state_of("2001")->info,
                        "sip:2001@10.0.0.1:5060 ua=Yealink? T46 expires=30s (+1 more)");
    expect_state("2002", "fake", "unavailable", "expired");
    assert_string_equal(state_of("2002")->info, "sip:2002@10.0.0.2 ua=X");
    expect_state("3001", "ivr", "idle", "registered");
    assert_string_equal(state_of("3001")->info, "sip:3001@10.0.0.3 ua= expires=permanent");
    assert_true(val("kamreg", "fake", "aors") == 4.0);
    assert_true(val("kamreg", "fake", "contacts") == 4.0);
    assert_true(val("kamreg_ext", "fake/2001", "expires_s") == 30.0);
    assert_true(isnan(val("kamreg_ext", "fake/3001", "expires_s")));
    assert_true(val("kamreg_ext", "fake/3001", "registered") == 1.0);
    assert_contains(check_of("kamreg_fake")->text,
                    "KAMREG WARNING: 2/3 registered (fake 1/2, ivr 1/1); not registered: "
                    "2002 (expired)");
    sample(p);
    assert_int_equal(nstates(), 0);
    sample(p); /* a device swap is a change, though the state stays idle */
    assert_int_equal(nstates(), 1);
    expect_state("2001", "fake", "idle", "registered");
    assert_string_equal(state_of("2001")->info,
                        "sip:2001@10.0.0.7:5060 ua=Polycom? T46 expires=30s (+1 more)");

    pthread_join(th, NULL);
    assert_int_equal(f.served, 10);
    close(f.fd);
    for (size_t i = 0; i < 10; i++) {
        free(answers[i]);
    }
    wp_probe_free(p);
}

/* ---- config ---- */

static void expect_config_error(const char *yaml, const char *what)
{
    fixture_expect_config_error(&wp_probe_kamreg, "kam.yaml", yaml, NULL, what);
}

static void kamreg_config_errors(void **state)
{
    (void)state;
    expect_config_error("kind: kamreg\nextensions: [\"1\"]\n", "url");
    expect_config_error("kind: kamreg\nurl: \"http://h/RPC\"\n", "extensions");
    expect_config_error("kind: kamreg\nurl: \"http://h/RPC\"\nextensions: []\n",
                        "kam.yaml:3:13: extensions: expected a list");
    expect_config_error("kind: kamreg\nurl: \"http://h/RPC\"\nextensions: [\"a b\"]\n",
                        "extensions[0].name");
    expect_config_error("kind: kamreg\nurl: \"http://h/RPC\"\n"
                        "extensions: [{name: a, aor: \"a\\\"b\"}]\n",
                        "kam.yaml:3:29: extensions[0].aor");
    expect_config_error("kind: kamreg\nurl: \"http://h/RPC\"\n"
                        "extensions: [{name: a, group: \"x y\"}]\n",
                        "extensions[0].group");
    expect_config_error("kind: kamreg\nurl: \"http://h/RPC\"\n"
                        "extensions: [{name: a, colour: red}]\n",
                        "unknown key \"colour\"");
    /* refused by init (the log has the details) */
    expect_config_error("kind: kamreg\nurl: \"ftp://h/RPC\"\nextensions: [\"1\"]\n", "init failed");
    expect_config_error("kind: kamreg\nurl: \"http://h/RPC\"\n"
                        "extensions: [\"1\", {name: b, aor: \"1\"}]\n",
                        "init failed");
    expect_config_error("kind: kamreg\nurl: \"http://h/RPC\"\nextensions: [\"1\", \"1\"]\n",
                        "kam.yaml:3:19: extensions[1].name: \"1\" is already extensions[0]");
    expect_config_error("kind: kamreg\nurl: \"http://h/RPC\"\nuser: u\nextensions: [\"1\"]\n",
                        "init failed");
    expect_config_error("kind: kamreg\nurl: \"http://h/RPC\"\nmax_response: 10\n"
                        "extensions: [\"1\"]\n",
                        "max_response");
}

/* ---- setup ---- */

static int group_setup(void **state)
{
    (void)state;
    memset(&g_env, 0, sizeof(g_env));
    snprintf(g_env.dir, sizeof(g_env.dir), "/tmp/wp-kam-XXXXXX");
    if (mkdtemp(g_env.dir) == NULL) {
        return -1;
    }
    if (getenv("WP_FIXTURES") == NULL) {
        fprintf(stderr, "WP_FIXTURES is not set (run through ctest)\n");
        return -1;
    }
    capture_init(&g_env.cap, 1700000000000, 1);
    if (kam_start(0) < 0) {
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    kam_stop();
    capture_cleanup(&g_env.cap);
    if (getenv("WP_KEEP_TMP") == NULL) {
        peers_rmtree(g_env.dir);
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kamreg_config_errors),        cmocka_unit_test(kamreg_garbage),
        cmocka_unit_test(kamreg_lapse_and_unregister), cmocka_unit_test(kamreg_baresip_phone),
        cmocka_unit_test(kamreg_kamailio_restart),
    };

    setvbuf(stdout, NULL, _IOLBF, 0);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
