/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The http and tcp probes against real servers: tests/fixtures/httpd.py started twice on
 * 127.0.0.1 port 0 (plain HTTP, and HTTPS with a certificate from the wp_pki CA), ports read
 * back from port files. The servers die with the test (SIGTERM in the group teardown, and
 * PR_SET_PDEATHSIG plus a parent watch in the script if the test itself dies).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
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
#include "wp/log.h"
#include "wp/mem.h"
#include "wp/pki.h"

extern const struct wp_probe_ops wp_probe_http;
extern const struct wp_probe_ops wp_probe_tcp;

#define CERT_DAYS      30 /* validity of the test server's certificate */
#define SERVER_WAIT_MS 10000

struct server {
    pid_t pid;
    int port;
};

struct env {
    char dir[64];
    char ca_crt[128];
    struct server http;
    struct server https;
    struct capture cap;
};

static struct env g_env;

/* ---- helpers ---- */

/* SIGTERM, wait up to 2 s, then SIGKILL and reap. */
static void server_stop(struct server *s)
{
    peers_stop(&s->pid, 2000);
}

/* Start httpd.py (HTTPS when cert is set) and read its port; 0 or -1. */
static int server_start(const char *tag, const char *cert, const char *key, struct server *s)
{
    const char *fix = getenv("WP_FIXTURES");
    char script[512];
    char pf[160];
    const char *argv[9];
    int argc = 0;
    pid_t parent = getpid();
    int64_t end = 0;

    s->pid = 0;
    s->port = 0;
    if (fix == NULL) {
        fprintf(stderr, "WP_FIXTURES is not set (run through ctest)\n");
        return -1;
    }
    snprintf(script, sizeof(script), "%s/httpd.py", fix);
    snprintf(pf, sizeof(pf), "%s/%s.port", g_env.dir, tag);
    argv[argc++] = "python3";
    argv[argc++] = script;
    argv[argc++] = "--port-file";
    argv[argc++] = pf;
    if (cert != NULL) {
        argv[argc++] = "--cert";
        argv[argc++] = cert;
        argv[argc++] = "--key";
        argv[argc++] = key;
    }
    argv[argc] = NULL;
    fflush(NULL);
    s->pid = fork();
    if (s->pid < 0) {
        s->pid = 0;
        return -1;
    }
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);
        }
        execvp("python3", (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    end = peers_mono_ms() + SERVER_WAIT_MS;
    while (peers_mono_ms() < end) {
        FILE *fp = fopen(pf, "re");
        if (fp != NULL) {
            int port = 0;
            int ok = fscanf(fp, "%d", &port) == 1 && port > 0 && port < 65536;
            fclose(fp);
            if (ok) {
                s->port = port;
                return 0;
            }
        }
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            fprintf(stderr, "httpd.py (%s) exited before writing its port\n", tag);
            s->pid = 0;
            return -1;
        }
        peers_sleep_ms(20);
    }
    fprintf(stderr, "httpd.py (%s) wrote no port in %d ms\n", tag, SERVER_WAIT_MS);
    server_stop(s);
    return -1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* A probe of kind ops from yaml ("http.yaml" in messages); 0 or the wp_probe_new error. */
static int probe_from(const struct wp_probe_ops *ops, const char *yaml, struct wp_conf_err *err,
                      struct wp_probe **out)
{
    struct wp_conf_doc *doc = NULL;
    int rc = wp_conf_parse("http.yaml", yaml, strlen(yaml), err, &doc);

    *out = NULL;
    if (rc < 0) {
        fail_msg("yaml: %s", err->msg);
    }
    rc = wp_probe_new(ops, doc, wp_conf_root(doc), err, out);
    wp_conf_free(doc);
    return rc;
}

/* Build a probe from yaml (must succeed), sample it once into g_env.cap, free it. */
static void run_probe(const struct wp_probe_ops *ops, const char *yaml)
{
    struct wp_conf_err err;
    struct wp_probe *p = NULL;
    int rc = probe_from(ops, yaml, &err, &p);

    if (rc < 0) {
        fail_msg("wp_probe_new: %s", err.msg);
    }
    capture_clear(&g_env.cap);
    assert_int_equal(p->ops->sample(p, &g_env.cap.sink), 0);
    wp_probe_free(p);
    assert_int_equal(g_env.cap.bad, 0);
}

/* One http target: "name", then the rest of its flow mapping (url and options). */
static void run_http(const char *name, const char *rest)
{
    char *yaml =
        wp_xasprintf("kind: http\ninterval: 60s\ntargets:\n  - {name: %s, %s}\n", name, rest);

    run_probe(&wp_probe_http, yaml);
    free(yaml);
}

static const struct cap_rec *check_of(const char *name)
{
    const struct cap_rec *r = capture_rec(&g_env.cap, WP_REC_CHECK, name);

    if (r == NULL) {
        fail_msg("no check result %s", name);
    }
    return r;
}

static double val(const char *group, const char *inst, const char *field)
{
    char path[256];
    double v = 0;

    snprintf(path, sizeof(path), "%s/%s/%s", group, inst, field);
    v = capture_get(&g_env.cap, path);
    if (v == CAP_ABSENT) {
        fail_msg("no value %s", path);
    }
    return v;
}

/* A TCP port on 127.0.0.1 that nothing listens on (bound, then closed). */
static int closed_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* ---- group setup: CA, certificate, servers ---- */

static int group_setup(void **state)
{
    char cadir[96];
    char crt[128];
    char key[128];
    char msg[256];

    (void)state;
    memset(&g_env, 0, sizeof(g_env));
    snprintf(g_env.dir, sizeof(g_env.dir), "/tmp/wp-test-http-XXXXXX");
    if (mkdtemp(g_env.dir) == NULL) {
        return -1;
    }
    snprintf(cadir, sizeof(cadir), "%s/ca", g_env.dir);
    snprintf(g_env.ca_crt, sizeof(g_env.ca_crt), "%s/ca.crt", cadir);
    snprintf(crt, sizeof(crt), "%s/localhost.crt", g_env.dir);
    snprintf(key, sizeof(key), "%s/localhost.key", g_env.dir);
    if (wp_pki_ca_init(cadir, "watchpost test CA", 365, msg, sizeof(msg)) < 0 ||
        wp_pki_issue(cadir, "localhost", WP_PKI_SERVER, CERT_DAYS, g_env.dir, msg, sizeof(msg)) <
            0) {
        fprintf(stderr, "pki: %s\n", msg);
        return -1;
    }
    if (server_start("http", NULL, NULL, &g_env.http) < 0) {
        return -1;
    }
    if (server_start("https", crt, key, &g_env.https) < 0) {
        server_stop(&g_env.http);
        return -1;
    }
    capture_init(&g_env.cap, 1000000, 60);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    server_stop(&g_env.http);
    server_stop(&g_env.https);
    capture_cleanup(&g_env.cap);
    nftw(g_env.dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* ---- http ---- */

static void http_login_ok(void **state)
{
    char *rest = wp_xasprintf("url: \"http://127.0.0.1:%d/login\", expect_status: [200], "
                              "body_regex: 'name=\"password\"', timeout: 5s",
                              g_env.http.port);
    const struct cap_rec *r = NULL;

    (void)state;
    run_http("login", rest);
    free(rest);
    r = check_of("http_login");
    assert_int_equal(r->level, WP_CHECK_OK);
    assert_contains(r->text, "HTTP OK: 200 in ");
    assert_contains(r->text, " bytes");
    assert_int_equal(capture_count(&g_env.cap, "http"), 1);
    assert_true(val("http", "login", "status_code") == 200.0);
    assert_true(val("http", "login", "time_total_s") >= 0.0);
    assert_true(val("http", "login", "time_dns_s") >= 0.0);
    assert_true(val("http", "login", "time_connect_s") >= 0.0);
    assert_true(val("http", "login", "time_first_byte_s") >= 0.0);
    assert_true(val("http", "login", "time_total_s") >= val("http", "login", "time_first_byte_s"));
    assert_true(isnan(val("http", "login", "time_tls_s")));
    assert_true(val("http", "login", "size_bytes") > 100.0);
    assert_true(val("http", "login", "redirects") == 0.0);
    assert_true(isnan(val("http", "login", "cert_days_left")));
    assert_true(val("http", "login", "body_match") == 1.0);
}

static void http_body_mismatch(void **state)
{
    char *rest = wp_xasprintf("url: \"http://127.0.0.1:%d/login\", body_regex: 'name=\"otp\"'",
                              g_env.http.port);
    const struct cap_rec *r = NULL;

    (void)state;
    run_http("login", rest);
    free(rest);
    r = check_of("http_login");
    assert_int_equal(r->level, WP_CHECK_CRITICAL);
    assert_contains(r->text, "HTTP CRITICAL: body does not match name=\"otp\"");
    assert_true(val("http", "login", "body_match") == 0.0);
    assert_true(val("http", "login", "status_code") == 200.0);
}

static void http_status_unexpected(void **state)
{
    char *rest = wp_xasprintf("url: \"http://127.0.0.1:%d/status/503\", expect_status: [200]",
                              g_env.http.port);
    const struct cap_rec *r = NULL;

    (void)state;
    run_http("api", rest);
    free(rest);
    r = check_of("http_api");
    assert_int_equal(r->level, WP_CHECK_CRITICAL);
    assert_contains(r->text, "HTTP CRITICAL: 503 in ");
    assert_contains(r->text, "expected 200");
    assert_true(val("http", "api", "status_code") == 503.0);
    assert_true(isnan(val("http", "api", "body_match")));

    /* a class: 5xx expected (a maintenance page check) */
    rest = wp_xasprintf("url: \"http://127.0.0.1:%d/status/503\", expect_status: [200, 5xx]",
                        g_env.http.port);
    run_http("api", rest);
    free(rest);
    assert_int_equal(check_of("http_api")->level, WP_CHECK_OK);
}

static void http_timeout(void **state)
{
    char *rest = wp_xasprintf("url: \"http://127.0.0.1:%d/slow\", timeout: 1s", g_env.http.port);
    int64_t t0 = peers_mono_ms();
    int64_t took = 0;
    const struct cap_rec *r = NULL;

    (void)state;
    run_http("slow", rest);
    took = peers_mono_ms() - t0;
    free(rest);
    r = check_of("http_slow");
    assert_int_equal(r->level, WP_CHECK_CRITICAL);
    assert_string_equal(r->text, "HTTP CRITICAL: timed out after 1 s");
    assert_true(took >= 900 && took < 3000);
    assert_true(isnan(val("http", "slow", "status_code")));
    assert_true(val("http", "slow", "time_total_s") >= 0.9);
}

/* Targets of one probe run concurrently: a 1 s timeout and a fast page take about 1 s. */
static void http_targets_concurrent(void **state)
{
    char *yaml = wp_xasprintf("kind: http\ntargets:\n"
                              "  - {name: slow1, url: \"http://127.0.0.1:%d/slow\", timeout: 1s}\n"
                              "  - {name: slow2, url: \"http://127.0.0.1:%d/slow\", timeout: 1s}\n"
                              "  - {name: login, url: \"http://127.0.0.1:%d/login\"}\n",
                              g_env.http.port, g_env.http.port, g_env.http.port);
    int64_t t0 = peers_mono_ms();
    int64_t took = 0;

    (void)state;
    run_probe(&wp_probe_http, yaml);
    took = peers_mono_ms() - t0;
    free(yaml);
    assert_true(took < 1900);
    assert_int_equal(capture_count(&g_env.cap, "http"), 3);
    assert_int_equal(check_of("http_slow1")->level, WP_CHECK_CRITICAL);
    assert_int_equal(check_of("http_slow2")->level, WP_CHECK_CRITICAL);
    assert_int_equal(check_of("http_login")->level, WP_CHECK_OK);
}

static void http_redirects(void **state)
{
    char *rest = NULL;
    const struct cap_rec *r = NULL;

    (void)state;
    rest = wp_xasprintf("url: \"http://127.0.0.1:%d/redirect\", follow_redirects: true, "
                        "body_regex: 'name=\"password\"'",
                        g_env.http.port);
    run_http("r", rest);
    free(rest);
    r = check_of("http_r");
    assert_int_equal(r->level, WP_CHECK_OK);
    assert_true(val("http", "r", "redirects") == 1.0);
    assert_true(val("http", "r", "status_code") == 200.0);
    assert_true(val("http", "r", "body_match") == 1.0);

    /* not followed: the 302 itself is the answer */
    rest = wp_xasprintf("url: \"http://127.0.0.1:%d/redirect\", expect_status: [200]",
                        g_env.http.port);
    run_http("r", rest);
    free(rest);
    r = check_of("http_r");
    assert_int_equal(r->level, WP_CHECK_CRITICAL);
    assert_contains(r->text, "302 in ");
    assert_true(val("http", "r", "status_code") == 302.0);
    assert_true(val("http", "r", "redirects") == 0.0);

    rest = wp_xasprintf("url: \"http://127.0.0.1:%d/redirect\", expect_status: [302]",
                        g_env.http.port);
    run_http("r", rest);
    free(rest);
    assert_int_equal(check_of("http_r")->level, WP_CHECK_OK);

    /* max_redirects: 0 with follow: curl refuses the first redirect */
    rest = wp_xasprintf("url: \"http://127.0.0.1:%d/redirect\", follow_redirects: true, "
                        "max_redirects: 0",
                        g_env.http.port);
    run_http("r", rest);
    free(rest);
    assert_int_equal(check_of("http_r")->level, WP_CHECK_CRITICAL);
}

/* Send stderr (the log) to path until log_end(). */
static int log_begin(const char *path)
{
    int saved = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    assert_true(fd >= 0);
    fflush(stderr);
    saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    close(fd);
    return saved;
}

static void log_end(int saved)
{
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
}

static int file_contains(const char *path, const char *needle)
{
    char buf[65536];
    size_t n = 0;
    FILE *fp = fopen(path, "re");

    assert_non_null(fp);
    n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

static void http_basic_auth(void **state)
{
    char logpath[128];
    char *rest = NULL;
    const struct cap_rec *r = NULL;
    int saved = 0;

    (void)state;
    snprintf(logpath, sizeof(logpath), "%s/auth.log", g_env.dir);
    wp_log_set_level(WP_LOG_DEBUG);
    saved = log_begin(logpath);
    rest = wp_xasprintf("url: \"http://127.0.0.1:%d/auth\", user: user, password: secret",
                        g_env.http.port);
    run_http("auth", rest);
    free(rest);
    log_end(saved);
    r = check_of("http_auth");
    assert_int_equal(r->level, WP_CHECK_OK);
    assert_true(val("http", "auth", "status_code") == 200.0);

    saved = log_begin(logpath);
    rest = wp_xasprintf("url: \"http://127.0.0.1:%d/auth\", user: user, password: wrongpw",
                        g_env.http.port);
    run_http("auth", rest);
    free(rest);
    rest = wp_xasprintf("url: \"http://127.0.0.1:%d/bearer\", bearer: tok3n", g_env.http.port);
    run_http("bearer", rest);
    free(rest);
    log_end(saved);
    wp_log_set_level(WP_LOG_INFO);
    r = check_of("http_bearer");
    assert_int_equal(r->level, WP_CHECK_OK);
    assert_int_equal(capture_count(&g_env.cap, "http"), 1);

    /* the debug log mentions the targets but never a password or token */
    assert_true(file_contains(logpath, "bearer"));
    assert_false(file_contains(logpath, "wrongpw"));
    assert_false(file_contains(logpath, "tok3n"));

    rest = wp_xasprintf("url: \"http://127.0.0.1:%d/auth\", user: user, password: wrongpw",
                        g_env.http.port);
    run_http("auth", rest);
    free(rest);
    r = check_of("http_auth");
    assert_int_equal(r->level, WP_CHECK_CRITICAL);
    assert_contains(r->text, "401 in ");
    assert_true(strstr(r->text, "wrongpw") == NULL);

    rest = wp_xasprintf("url: \"http://127.0.0.1:%d/bearer\", bearer: wrong", g_env.http.port);
    run_http("bearer", rest);
    free(rest);
    assert_int_equal(check_of("http_bearer")->level, WP_CHECK_CRITICAL);
}

static void http_headers_and_head(void **state)
{
    char *rest = wp_xasprintf("url: \"http://127.0.0.1:%d/login\", method: HEAD, "
                              "headers: {X-Probe: watchpost}",
                              g_env.http.port);
    const struct cap_rec *r = NULL;

    (void)state;
    run_http("head", rest);
    free(rest);
    r = check_of("http_head");
    assert_int_equal(r->level, WP_CHECK_OK);
    assert_true(val("http", "head", "status_code") == 200.0);
    assert_true(val("http", "head", "size_bytes") == 0.0);
}

static void http_refused(void **state)
{
    char *rest = wp_xasprintf("url: \"http://127.0.0.1:%d/\", timeout: 2s", closed_port());
    const struct cap_rec *r = NULL;

    (void)state;
    run_http("down", rest);
    free(rest);
    r = check_of("http_down");
    assert_int_equal(r->level, WP_CHECK_CRITICAL);
    assert_contains(r->text, "HTTP CRITICAL: ");
    assert_contains(r->text, "onnect");
    assert_true(isnan(val("http", "down", "status_code")));
    assert_true(isnan(val("http", "down", "time_first_byte_s")));
}

static void https_with_ca(void **state)
{
    char *rest = wp_xasprintf("url: \"https://localhost:%d/login\", ca: \"%s\", "
                              "body_regex: 'name=\"password\"'",
                              g_env.https.port, g_env.ca_crt);
    const struct cap_rec *r = NULL;
    double days = 0;

    (void)state;
    run_http("tls", rest);
    free(rest);
    r = check_of("http_tls");
    assert_int_equal(r->level, WP_CHECK_OK);
    assert_contains(r->text, "HTTP OK: 200 in ");
    assert_contains(r->text, "certificate expires in");
    days = val("http", "tls", "cert_days_left");
    if (!(fabs(days - CERT_DAYS) < 1.0)) {
        fail_msg("cert_days_left %f, expected about %d", days, CERT_DAYS);
    }
    assert_true(val("http", "tls", "time_tls_s") >= 0.0);
    assert_true(val("http", "tls", "body_match") == 1.0);

    /* the certificate thresholds: 30 days left is a WARNING below 40, CRITICAL below 35 */
    rest = wp_xasprintf("url: \"https://localhost:%d/login\", ca: \"%s\", warn_days: 40",
                        g_env.https.port, g_env.ca_crt);
    run_http("tls", rest);
    free(rest);
    r = check_of("http_tls");
    assert_int_equal(r->level, WP_CHECK_WARNING);
    assert_contains(r->text, "HTTP WARNING: certificate expires in 30.0 days (200 in ");
    rest = wp_xasprintf("url: \"https://localhost:%d/login\", ca: \"%s\", warn_days: 40, "
                        "crit_days: 35",
                        g_env.https.port, g_env.ca_crt);
    run_http("tls", rest);
    free(rest);
    assert_int_equal(check_of("http_tls")->level, WP_CHECK_CRITICAL);
}

static void https_without_ca(void **state)
{
    char *rest = wp_xasprintf("url: \"https://localhost:%d/login\"", g_env.https.port);
    const struct cap_rec *r = NULL;

    (void)state;
    run_http("tls", rest);
    free(rest);
    r = check_of("http_tls");
    assert_int_equal(r->level, WP_CHECK_CRITICAL);
    assert_contains(r->text, "HTTP CRITICAL: ");
    assert_contains(r->text, "certificate");
    assert_true(isnan(val("http", "tls", "status_code")));

    /* insecure: no verification, the expiry is still reported */
    rest = wp_xasprintf("url: \"https://localhost:%d/login\", insecure: true", g_env.https.port);
    run_http("tls", rest);
    free(rest);
    assert_int_equal(check_of("http_tls")->level, WP_CHECK_OK);
    assert_true(fabs(val("http", "tls", "cert_days_left") - CERT_DAYS) < 1.0);
}

/* wp_probe_new must fail with err.msg starting with prefix and containing what. */
static void expect_config_error(const struct wp_probe_ops *ops, const char *yaml,
                                const char *prefix, const char *what)
{
    fixture_expect_config_error(ops, "http.yaml", yaml, prefix, what);
}

static void http_config_errors(void **state)
{
    (void)state;
    expect_config_error(&wp_probe_http,
                        "kind: http\n"
                        "targets:\n"
                        "  - name: a\n"
                        "    url: \"ftp://user:pw@example.org/\"\n",
                        "http.yaml:4:10: targets[0].url: ", "http:// or https://");
    expect_config_error(&wp_probe_http,
                        "kind: http\n"
                        "targets:\n"
                        "  - name: a\n"
                        "    url: \"https://user:pw@example.org/\"\n"
                        "    body_regex: \"a(b\"\n",
                        "http.yaml:5:17: targets[0].body_regex: ", "parenthesis");
    /* a bad URL is reported without echoing it (it may hold a password) */
    {
        struct wp_conf_err err;
        struct wp_probe *p = NULL;
        assert_int_equal(probe_from(&wp_probe_http,
                                    "kind: http\ntargets: [{name: a, url: \"gopher://u:pw@x/\"}]\n",
                                    &err, &p),
                         WP_ECONFIG);
        assert_true(strstr(err.msg, "pw@") == NULL);
    }
    expect_config_error(&wp_probe_http,
                        "kind: http\ntargets:\n  - {name: a, url: \"http://x/\"}\n"
                        "  - {name: a, url: \"http://y/\"}\n",
                        "http.yaml:4:12: targets[1].name: ", "already");
    expect_config_error(&wp_probe_http,
                        "kind: http\ntargets:\n  - {name: a, url: \"http://x/\", "
                        "expect_status: [20]}\n",
                        "http.yaml:3:48: targets[0].expect_status: ", "\"20\"");
    expect_config_error(&wp_probe_http,
                        "kind: http\ntargets:\n  - {name: a, url: \"http://x/\", "
                        "method: HEAD, body_regex: x}\n",
                        "http.yaml:3:", "HEAD");
    expect_config_error(&wp_probe_http, "kind: http\ntargets: []\n",
                        "http.yaml:2:10: ", "targets: expected a list");
    expect_config_error(&wp_probe_http, "kind: http\n", "http.yaml:", "targets");
    expect_config_error(&wp_probe_http,
                        "kind: http\ntargets:\n  - {name: a, url: \"http://x/\", timeot: 1s}\n",
                        "http.yaml:3:", "timeot");
}

/* ---- tcp ---- */

static void tcp_up_and_down(void **state)
{
    char *yaml = wp_xasprintf("kind: tcp\ninterval: 30s\ntargets:\n"
                              "  - {name: web, host: 127.0.0.1, port: %d, timeout: 3s}\n"
                              "  - {name: db, host: 127.0.0.1, port: %d}\n"
                              "  - {name: local, host: localhost, port: %d}\n",
                              g_env.http.port, closed_port(), g_env.http.port);
    const struct cap_rec *r = NULL;

    (void)state;
    run_probe(&wp_probe_tcp, yaml);
    free(yaml);
    assert_int_equal(capture_count(&g_env.cap, "tcp"), 3);
    r = check_of("tcp_web");
    assert_int_equal(r->level, WP_CHECK_OK);
    assert_contains(r->text, "TCP OK: 127.0.0.1:");
    assert_true(val("tcp", "web", "up") == 1.0);
    assert_true(val("tcp", "web", "connect_s") >= 0.0);
    assert_true(val("tcp", "web", "connect_s") < 1.0);

    r = check_of("tcp_db");
    assert_int_equal(r->level, WP_CHECK_CRITICAL);
    assert_contains(r->text, "TCP CRITICAL: ");
    assert_contains(r->text, "connection refused");
    assert_true(val("tcp", "db", "up") == 0.0);
    assert_true(isnan(val("tcp", "db", "connect_s")));

    /* a name: ::1 may refuse first, 127.0.0.1 answers */
    assert_int_equal(check_of("tcp_local")->level, WP_CHECK_OK);
    assert_true(val("tcp", "local", "up") == 1.0);
}

static void tcp_config_errors(void **state)
{
    (void)state;
    expect_config_error(&wp_probe_tcp,
                        "kind: tcp\ntargets:\n  - {name: db, host: 127.0.0.1, port: 70000}\n",
                        "http.yaml:3:39: targets[0].port: ", "70000");
    expect_config_error(&wp_probe_tcp, "kind: tcp\ntargets:\n  - {name: db, host: 127.0.0.1}\n",
                        "http.yaml:3:", "port");
    expect_config_error(&wp_probe_tcp,
                        "kind: tcp\ntargets:\n  - {name: \"d b\", host: h, port: 1}\n",
                        "http.yaml:3:12: targets[0].name: ", "\"d b\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(http_login_ok),
        cmocka_unit_test(http_body_mismatch),
        cmocka_unit_test(http_status_unexpected),
        cmocka_unit_test(http_timeout),
        cmocka_unit_test(http_targets_concurrent),
        cmocka_unit_test(http_redirects),
        cmocka_unit_test(http_basic_auth),
        cmocka_unit_test(http_headers_and_head),
        cmocka_unit_test(http_refused),
        cmocka_unit_test(https_with_ca),
        cmocka_unit_test(https_without_ca),
        cmocka_unit_test(http_config_errors),
        cmocka_unit_test(tcp_up_and_down),
        cmocka_unit_test(tcp_config_errors),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
