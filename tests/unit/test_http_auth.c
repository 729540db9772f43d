/* SPDX-License-Identifier: Apache-2.0 */
/* Login layer: PBKDF2 vectors, the hash format, sessions and their expiry, CSRF, roles,
 * tokens, the failed-login rate limit; POST /api/v1/login on a real server checks the password
 * off the loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "http.h"
#include "http_auth.h"
#include "wp/clock.h"
#include "wp/err.h"

#define H  (3600 * 1000LL)
#define T0 1800000000000LL

static char dir[64];
static char path[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/wp-auth.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/users.db", dir);
    return 0;
}

static int teardown(void **state)
{
    char p[200];
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};

    (void)state;
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof(p), "%s%s", path, sfx[i]);
        unlink(p);
    }
    rmdir(dir);
    return 0;
}

static void unhex(const char *h, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        assert_int_equal(sscanf(h + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

static void pbkdf2_vectors(void **state)
{
    /* RFC 7914 section 11, and the SHA-256 analogue of RFC 6070's vectors */
    static const struct {
        const char *pw, *salt;
        uint32_t iter;
        size_t len;
        const char *hex;
    } v[] = {
        {"passwd", "salt", 1, 64,
         "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b39"
         "d"
         "77ef317c71b845b1e30bd509112041d3a19783"},
        {"Password", "NaCl", 80000, 64,
         "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56a1d425a1225833549adb841b5"
         "1"
         "c9b3176a272bdebba1d078478f62b397f33c8d"},
        {"password", "salt", 4096, 32,
         "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a"},
    };
    uint8_t got[64], want[64];

    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        assert_int_equal(http_auth_pbkdf2(v[i].pw, strlen(v[i].pw), v[i].salt, strlen(v[i].salt),
                                          v[i].iter, got, v[i].len),
                         0);
        unhex(v[i].hex, want, v[i].len);
        assert_memory_equal(got, want, v[i].len);
    }
}

static void hash_format(void **state)
{
    char h1[HTTP_AUTH_HASH_MAX], h2[HTTP_AUTH_HASH_MAX], bad[HTTP_AUTH_HASH_MAX];
    char alg[32], salt[64], key[64];
    unsigned iter = 0;

    (void)state;
    assert_int_equal(http_auth_hash_password("correct horse", 0, h1, sizeof(h1)), 0);
    assert_int_equal(http_auth_hash_password("correct horse", 0, h2, sizeof(h2)), 0);
    assert_string_not_equal(h1, h2); /* random salt */
    assert_int_equal(sscanf(h1, "%31[^$]$%u$%63[^$]$%63s", alg, &iter, salt, key), 4);
    assert_string_equal(alg, "pbkdf2-sha256");
    assert_true(iter >= 100000);
    assert_int_equal(iter, HTTP_AUTH_ITER);
    assert_int_equal(strlen(salt), 24); /* 16 bytes, base64 */
    assert_int_equal(strlen(key), 44);  /* 32 bytes, base64 */
    assert_null(strstr(h1, "correct"));
    assert_int_equal(http_auth_verify_password("correct horse", h1), 0);
    assert_int_equal(http_auth_verify_password("correct horsE", h1), WP_EAUTH);
    assert_int_equal(http_auth_verify_password("", h1), WP_EAUTH);
    /* a lower count made by hand verifies; malformed hashes are refused, not crashed on */
    assert_int_equal(http_auth_hash_password("pw", 1000, bad, sizeof(bad)), 0);
    assert_int_equal(http_auth_verify_password("pw", bad), 0);
    assert_int_equal(http_auth_hash_password("pw", 999, bad, sizeof(bad)), -EINVAL);
    assert_int_equal(
        http_auth_verify_password("pw", "pbkdf2-sha256$999$c2FsdHNhbHQ=$a2V5a2V5a2V5a2V5a2V5a2V5"),
        -EINVAL);
    assert_int_equal(http_auth_verify_password(
                         "pw", "pbkdf2-sha256$99999999$c2FsdHNhbHQ=$a2V5a2V5a2V5a2V5a2V5a2V5"),
                     -EINVAL);
    assert_int_equal(http_auth_verify_password("pw", "sha1$1000$abc$def"), -EINVAL);
    assert_int_equal(http_auth_verify_password("pw", "pbkdf2-sha256$1000$!!!$def"), -EINVAL);
    assert_int_equal(http_auth_verify_password("pw", "pbkdf2-sha256$1000$c2FsdHNhbHQ="), -EINVAL);
    assert_int_equal(http_auth_verify_password("pw", "pbkdf2-sha256$-5$c2FsdHNhbHQ=$a2V5"),
                     -EINVAL);
    assert_int_equal(http_auth_verify_password("pw", ""), -EINVAL);
}

static void names_and_cookies(void **state)
{
    char sid[HTTP_AUTH_SID_LEN + 1];
    char good[200];
    const char *hexid = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    (void)state;
    assert_true(http_auth_name_ok("alice.smith@noc-1_x"));
    assert_false(http_auth_name_ok(""));
    assert_false(http_auth_name_ok("a b"));
    assert_false(http_auth_name_ok("a/b"));
    assert_false(http_auth_name_ok("x\n"));
    assert_false(http_auth_name_ok(
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")); /* 65 */
    assert_int_equal(http_role_parse("operator"), HTTP_ROLE_OPERATOR);
    assert_int_equal(http_role_parse("root"), HTTP_ROLE_NONE);
    snprintf(good, sizeof(good), "theme=dark; wp_session=%s; wp_csrf=zz", hexid);
    assert_int_equal(http_auth_cookie_sid(good, sid), 0);
    assert_string_equal(sid, hexid);
    assert_int_equal(http_auth_cookie_sid("wp_session=abc", sid), WP_ENOTFOUND);
    assert_int_equal(http_auth_cookie_sid("wp_session=0123456789abcdef0123456789abcdef0123456789ab"
                                          "cdef0123456789abcdeX",
                                          sid),
                     WP_ENOTFOUND);
    assert_int_equal(http_auth_cookie_sid("", sid), WP_ENOTFOUND);
    assert_int_equal(http_auth_cookie_sid(NULL, sid), WP_ENOTFOUND);
}

/* log in name/pw at now: the Cookie header into cookie, the principal into p */
static int login(struct http_auth *a, const char *name, const char *pw, const char *client,
                 int64_t now, char *cookie, struct http_principal *p, int64_t *retry)
{
    char sid[HTTP_AUTH_SID_LEN + 1];
    int rc = http_auth_login(a, name, pw, client, now, sid, p, retry);

    if (rc == 0) {
        assert_int_equal(strlen(sid), HTTP_AUTH_SID_LEN);
        snprintf(cookie, 128, "wp_session=%s", sid);
    }
    return rc;
}

static int decide(struct http_auth *a, const char *method, const char *cookie, const char *authz,
                  const char *csrf, enum http_role need, int64_t now)
{
    struct http_principal p;
    struct http_auth_in in = {method, cookie, authz, csrf};
    return http_auth_decide(a, &in, need, now, &p);
}

static void sessions_expire(void **state)
{
    struct http_auth *a = NULL;
    struct http_principal p;
    char cookie[128];
    int64_t retry = 0;
    struct stat st;

    (void)state;
    assert_int_equal(http_auth_open(path, NULL, &a), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(http_auth_user_add(a, "vera", HTTP_ROLE_VIEWER, "viewer-pass", T0), 0);
    assert_int_equal(http_auth_user_add(a, "vera", HTTP_ROLE_VIEWER, "x", T0), -EEXIST);
    assert_int_equal(http_auth_user_add(a, "bad name", HTTP_ROLE_VIEWER, "x", T0), -EINVAL);
    assert_int_equal(login(a, "vera", "viewer-pass", "10.0.0.1:5000", T0, cookie, &p, &retry), 0);
    assert_string_equal(p.user, "vera");
    assert_int_equal(p.role, HTTP_ROLE_VIEWER);
    assert_int_equal(strlen(p.csrf), HTTP_AUTH_SID_LEN);

    assert_int_equal(decide(a, "GET", NULL, NULL, NULL, HTTP_ROLE_VIEWER, T0), 401);
    assert_int_equal(decide(a, "GET", cookie, NULL, NULL, HTTP_ROLE_VIEWER, T0 + 1000), 0);
    /* idle 11 h: still valid, and the request moves the idle clock */
    assert_int_equal(decide(a, "GET", cookie, NULL, NULL, HTTP_ROLE_VIEWER, T0 + 11 * H), 0);
    assert_int_equal(decide(a, "GET", cookie, NULL, NULL, HTTP_ROLE_VIEWER, T0 + 22 * H), 0);
    /* then 12 h and a bit without a request: gone, also for later requests */
    assert_int_equal(decide(a, "GET", cookie, NULL, NULL, HTTP_ROLE_VIEWER, T0 + 34 * H + 60000),
                     401);
    assert_int_equal(decide(a, "GET", cookie, NULL, NULL, HTTP_ROLE_VIEWER, T0 + 22 * H), 401);

    /* at most 7 days even when used all the time */
    assert_int_equal(login(a, "vera", "viewer-pass", "10.0.0.1:5000", T0, cookie, &p, &retry), 0);
    int64_t t = T0;
    for (int i = 0; i < 14; i++) {
        t += 11 * H;
        assert_int_equal(decide(a, "GET", cookie, NULL, NULL, HTTP_ROLE_VIEWER, t), 0);
    }
    t += 11 * H; /* 165 h */
    assert_int_equal(decide(a, "GET", cookie, NULL, NULL, HTTP_ROLE_VIEWER, t), 0);
    t += 4 * H; /* 169 h > 168 h */
    assert_int_equal(decide(a, "GET", cookie, NULL, NULL, HTTP_ROLE_VIEWER, t), 401);

    /* logout ends it */
    assert_int_equal(login(a, "vera", "viewer-pass", "10.0.0.1:5000", T0, cookie, &p, &retry), 0);
    assert_int_equal(http_auth_logout(a, cookie + strlen("wp_session=")), 0);
    assert_int_equal(decide(a, "GET", cookie, NULL, NULL, HTTP_ROLE_VIEWER, T0), 401);
    /* a new password or deleting the user ends its sessions */
    assert_int_equal(login(a, "vera", "viewer-pass", "10.0.0.1:5000", T0, cookie, &p, &retry), 0);
    assert_int_equal(http_auth_user_passwd(a, "vera", "new-pass-1", T0), 0);
    assert_int_equal(decide(a, "GET", cookie, NULL, NULL, HTTP_ROLE_VIEWER, T0), 401);
    assert_int_equal(login(a, "vera", "viewer-pass", "10.0.0.1:5000", T0, cookie, &p, &retry),
                     WP_EAUTH);
    assert_int_equal(login(a, "vera", "new-pass-1", "10.0.0.1:5000", T0, cookie, &p, &retry), 0);
    assert_int_equal(http_auth_user_del(a, "vera"), 0);
    assert_int_equal(decide(a, "GET", cookie, NULL, NULL, HTTP_ROLE_VIEWER, T0), 401);
    assert_int_equal(http_auth_user_del(a, "vera"), WP_ENOTFOUND);
    http_auth_close(a);
}

static void csrf_and_roles(void **state)
{
    struct http_auth *a = NULL;
    struct http_principal pv, po;
    char cv[128], co[128];
    int64_t retry = 0;

    (void)state;
    assert_int_equal(http_auth_open(path, NULL, &a), 0);
    assert_int_equal(http_auth_user_add(a, "vera", HTTP_ROLE_VIEWER, "viewer-pass", T0), 0);
    assert_int_equal(http_auth_user_add(a, "otto", HTTP_ROLE_OPERATOR, "operator-pass", T0), 0);
    assert_int_equal(login(a, "vera", "viewer-pass", "10.0.0.1:1", T0, cv, &pv, &retry), 0);
    assert_int_equal(login(a, "otto", "operator-pass", "10.0.0.1:2", T0, co, &po, &retry), 0);
    assert_string_not_equal(pv.csrf, po.csrf);

    /* a viewer cannot acknowledge, even with its own CSRF token */
    assert_int_equal(decide(a, "POST", cv, NULL, pv.csrf, HTTP_ROLE_OPERATOR, T0), 403);
    assert_int_equal(decide(a, "GET", cv, NULL, NULL, HTTP_ROLE_VIEWER, T0), 0);
    assert_int_equal(decide(a, "GET", cv, NULL, NULL, HTTP_ROLE_ADMIN, T0), 403);
    /* an operator needs the CSRF token of its own session for a state change */
    assert_int_equal(decide(a, "POST", co, NULL, NULL, HTTP_ROLE_OPERATOR, T0), 403);
    assert_int_equal(decide(a, "POST", co, NULL, "", HTTP_ROLE_OPERATOR, T0), 403);
    assert_int_equal(decide(a, "POST", co, NULL, pv.csrf, HTTP_ROLE_OPERATOR, T0), 403);
    assert_int_equal(decide(a, "DELETE", co, NULL, "abc", HTTP_ROLE_OPERATOR, T0), 403);
    assert_int_equal(decide(a, "POST", co, NULL, po.csrf, HTTP_ROLE_OPERATOR, T0), 0);
    assert_int_equal(decide(a, "HEAD", co, NULL, NULL, HTTP_ROLE_OPERATOR, T0), 0);
    /* a forged cookie */
    assert_int_equal(
        decide(a, "GET",
               "wp_session=0000000000000000000000000000000000000000000000000000000000000000", NULL,
               NULL, HTTP_ROLE_VIEWER, T0),
        401);
    /* a role change applies to live sessions */
    assert_int_equal(http_auth_user_role(a, "vera", HTTP_ROLE_OPERATOR), 0);
    assert_int_equal(decide(a, "POST", cv, NULL, pv.csrf, HTTP_ROLE_OPERATOR, T0), 0);

    /* tokens: no CSRF token needed, roles apply, a bad token never falls back to the cookie */
    char tv[HTTP_AUTH_TOKEN_LEN + 1], authz[128];
    assert_int_equal(http_auth_token_add(a, "grafana", HTTP_ROLE_VIEWER, T0, tv, sizeof(tv)), 0);
    assert_int_equal(strncmp(tv, "wpt_", 4), 0);
    assert_int_equal(strlen(tv), HTTP_AUTH_TOKEN_LEN);
    snprintf(authz, sizeof(authz), "Bearer %s", tv);
    assert_int_equal(decide(a, "GET", NULL, authz, NULL, HTTP_ROLE_VIEWER, T0), 0);
    assert_int_equal(decide(a, "POST", NULL, authz, NULL, HTTP_ROLE_VIEWER, T0), 0);
    assert_int_equal(decide(a, "POST", NULL, authz, NULL, HTTP_ROLE_OPERATOR, T0), 403);
    snprintf(authz, sizeof(authz), "bearer %s", tv);
    assert_int_equal(decide(a, "GET", NULL, authz, NULL, HTTP_ROLE_VIEWER, T0), 0);
    authz[strlen(authz) - 1] ^= 1;
    assert_int_equal(decide(a, "GET", co, authz, NULL, HTTP_ROLE_VIEWER, T0), 401);
    assert_int_equal(decide(a, "GET", NULL, "Basic dmVyYTp4", NULL, HTTP_ROLE_VIEWER, T0), 401);
    assert_int_equal(decide(a, "GET", NULL, "Bearer", NULL, HTTP_ROLE_VIEWER, T0), 401);
    assert_int_equal(http_auth_token_add(a, "grafana", HTTP_ROLE_VIEWER, T0, tv, sizeof(tv)),
                     -EEXIST);
    assert_int_equal(http_auth_token_del(a, "grafana"), 0);
    snprintf(authz, sizeof(authz), "Bearer %s", tv);
    assert_int_equal(decide(a, "GET", NULL, authz, NULL, HTTP_ROLE_VIEWER, T0), 401);
    http_auth_close(a);
}

/* Bearer tokens found are remembered for a while: a token deleted through another connection
 * (the CLI) still works until the collector next reads PRAGMA data_version (at most once a
 * second of the clock it is given), and not after; a token deleted through the collector's
 * own connection stops at once. */
static void token_cache(void **state)
{
    struct http_auth *a = NULL, *cli = NULL;
    char tv[HTTP_AUTH_TOKEN_LEN + 1], authz[128], tv2[HTTP_AUTH_TOKEN_LEN + 1], authz2[128];

    (void)state;
    assert_int_equal(http_auth_open(path, NULL, &a), 0);
    assert_int_equal(http_auth_open(path, NULL, &cli), 0);
    assert_int_equal(http_auth_token_add(cli, "grafana", HTTP_ROLE_VIEWER, T0, tv, sizeof(tv)), 0);
    assert_int_equal(http_auth_token_add(cli, "script", HTTP_ROLE_OPERATOR, T0, tv2, sizeof(tv2)),
                     0);
    snprintf(authz, sizeof(authz), "Bearer %s", tv);
    snprintf(authz2, sizeof(authz2), "Bearer %s", tv2);
    assert_int_equal(decide(a, "GET", NULL, authz, NULL, HTTP_ROLE_VIEWER, T0), 0);
    assert_int_equal(decide(a, "GET", NULL, authz2, NULL, HTTP_ROLE_OPERATOR, T0), 0);
    /* remembered with its role */
    assert_int_equal(decide(a, "POST", NULL, authz, NULL, HTTP_ROLE_OPERATOR, T0 + 1), 403);

    /* `watchpost token del` in another process */
    assert_int_equal(http_auth_token_del(cli, "grafana"), 0);
    /* data_version is read at most once a second: within it the remembered token still works */
    assert_int_equal(decide(a, "GET", NULL, authz, NULL, HTTP_ROLE_VIEWER, T0 + 500), 0);
    /* a second after the last read the change is seen: refused, the other token still good */
    assert_int_equal(decide(a, "GET", NULL, authz, NULL, HTTP_ROLE_VIEWER, T0 + 1000), 401);
    assert_int_equal(decide(a, "GET", NULL, authz, NULL, HTTP_ROLE_VIEWER, T0 + 1001), 401);
    assert_int_equal(decide(a, "GET", NULL, authz2, NULL, HTTP_ROLE_OPERATOR, T0 + 1001), 0);
    /* a clock that went back reads it again too */
    assert_int_equal(http_auth_token_add(cli, "grafana", HTTP_ROLE_VIEWER, T0, tv, sizeof(tv)), 0);
    snprintf(authz, sizeof(authz), "Bearer %s", tv);
    assert_int_equal(decide(a, "GET", NULL, authz, NULL, HTTP_ROLE_VIEWER, T0 + 1002), 0);
    assert_int_equal(http_auth_token_del(cli, "grafana"), 0);
    assert_int_equal(decide(a, "GET", NULL, authz, NULL, HTTP_ROLE_VIEWER, T0 + 1003), 0);
    assert_int_equal(decide(a, "GET", NULL, authz, NULL, HTTP_ROLE_VIEWER, T0 - 5000), 401);

    /* deleted through the collector's own connection: at once */
    assert_int_equal(decide(a, "GET", NULL, authz2, NULL, HTTP_ROLE_OPERATOR, T0 - 4999), 0);
    assert_int_equal(http_auth_token_del(a, "script"), 0);
    assert_int_equal(decide(a, "GET", NULL, authz2, NULL, HTTP_ROLE_OPERATOR, T0 - 4998), 401);
    http_auth_close(cli);
    http_auth_close(a);
}

static void login_rate_limit(void **state)
{
    struct http_auth *a = NULL;
    struct http_principal p;
    char c[128];
    int64_t retry = 0;
    struct http_auth_opts o = {0, 0, 5, 60000};

    (void)state;
    assert_int_equal(http_auth_open(path, &o, &a), 0);
    assert_int_equal(http_auth_user_add(a, "otto", HTTP_ROLE_OPERATOR, "operator-pass", T0), 0);
    assert_int_equal(http_auth_user_add(a, "vera", HTTP_ROLE_VIEWER, "viewer-pass", T0), 0);
    /* per user: five failures from different addresses, then even the right password waits */
    for (int i = 0; i < 5; i++) {
        char client[32];
        snprintf(client, sizeof(client), "10.0.1.%d:4000", i);
        assert_int_equal(login(a, "otto", "guess", client, T0 + i * 1000, c, &p, &retry), WP_EAUTH);
    }
    assert_int_equal(login(a, "otto", "operator-pass", "10.0.2.1:1", T0 + 10000, c, &p, &retry),
                     WP_EAGAIN);
    assert_true(retry >= 50 && retry <= 60);
    /* another user from another address is not affected */
    assert_int_equal(login(a, "vera", "viewer-pass", "10.0.2.2:1", T0 + 10000, c, &p, &retry), 0);
    /* the window passes for the oldest failure */
    assert_int_equal(login(a, "otto", "operator-pass", "10.0.2.1:1", T0 + 60001, c, &p, &retry), 0);

    /* per address: failures for several (also unknown) users from one address */
    for (int i = 0; i < 5; i++) {
        char name[16];
        snprintf(name, sizeof(name), "nobody%d", i);
        assert_int_equal(login(a, name, "guess", "192.0.2.7:10", T0 + 100000 + i, c, &p, &retry),
                         WP_EAUTH);
    }
    assert_int_equal(login(a, "vera", "viewer-pass", "192.0.2.7:11", T0 + 100010, c, &p, &retry),
                     WP_EAGAIN);
    assert_true(retry >= 59 && retry <= 60);
    /* IPv6 address keys ignore the port too */
    for (int i = 0; i < 5; i++) {
        char client[64];
        snprintf(client, sizeof(client), "[2001:db8::1]:%d", 1000 + i);
        assert_int_equal(login(a, "x", "guess", client, T0 + 200000, c, &p, &retry), WP_EAUTH);
    }
    assert_int_equal(login(a, "vera", "viewer-pass", "[2001:db8::1]:9", T0 + 200000, c, &p, &retry),
                     WP_EAGAIN);
    assert_int_equal(login(a, "vera", "viewer-pass", "[2001:db8::2]:9", T0 + 200000, c, &p, &retry),
                     0);
    /* an invalid user name or an empty password is a failure, not a crash */
    assert_int_equal(login(a, "bad\nname", "x", "198.51.100.1:1", T0, c, &p, &retry), WP_EAUTH);
    assert_int_equal(login(a, "vera", "", "198.51.100.1:1", T0, c, &p, &retry), WP_EAUTH);
    http_auth_close(a);
}

static void login_global_cap(void **state)
{
    struct http_auth *a = NULL;
    struct http_principal p;
    char c[128], client[32];
    int64_t retry = 0;

    (void)state;
    assert_int_equal(http_auth_open(path, NULL, &a), 0);
    assert_int_equal(http_auth_user_add(a, "vera", HTTP_ROLE_VIEWER, "viewer-pass", T0), 0);
    /* a spray of names from many addresses: a burst of HTTP_AUTH_CHECK_BURST checks ... */
    for (int i = 0; i < HTTP_AUTH_CHECK_BURST; i++) {
        char name[16];
        snprintf(name, sizeof(name), "n%d", i);
        snprintf(client, sizeof(client), "203.0.113.%d:1", i);
        assert_int_equal(login(a, name, "guess", client, T0 + 10 + i, c, &p, &retry), WP_EAUTH);
    }
    assert_int_equal(login(a, "vera", "viewer-pass", "198.51.100.9:1", T0 + 100, c, &p, &retry),
                     WP_EAGAIN);
    assert_int_equal(retry, 1);
    /* ... then HTTP_AUTH_CHECKS_PER_S a second */
    int64_t t = T0 + 100 + 1000 / HTTP_AUTH_CHECKS_PER_S;
    assert_int_equal(login(a, "vera", "viewer-pass", "198.51.100.9:1", t, c, &p, &retry), 0);
    assert_int_equal(login(a, "vera", "viewer-pass", "198.51.100.9:1", t, c, &p, &retry),
                     WP_EAGAIN);
    t += 1000;
    for (int i = 0; i < HTTP_AUTH_CHECKS_PER_S; i++) {
        assert_int_equal(login(a, "vera", "viewer-pass", "198.51.100.9:1", t, c, &p, &retry), 0);
    }
    assert_int_equal(login(a, "vera", "viewer-pass", "198.51.100.9:1", t, c, &p, &retry),
                     WP_EAGAIN);
    http_auth_close(a);
}

/* ---- POST /api/v1/login on a server: the password check leaves the loop free ---- */

struct srv {
    uv_loop_t loop;
    uv_async_t async;
    pthread_t thr;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct http_server *http;
    struct http_auth *a;
    int port;
    int cmd; /* 1: stats, 2: stop */
    int cmd_done;
    struct http_stats st;
    int checks, gate; /* the check hook: entered, may go on */
};

static void check_hook(void *arg)
{
    struct srv *v = arg;
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 20;
    pthread_mutex_lock(&v->mu);
    v->checks++;
    pthread_cond_broadcast(&v->cv);
    while (!v->gate) {
        if (pthread_cond_timedwait(&v->cv, &v->mu, &ts) == ETIMEDOUT) {
            break;
        }
    }
    v->gate = 0; /* one check per opening */
    pthread_mutex_unlock(&v->mu);
}

static void srv_async(uv_async_t *h)
{
    struct srv *v = h->data;

    pthread_mutex_lock(&v->mu);
    int cmd = v->cmd;
    v->cmd = 0;
    pthread_mutex_unlock(&v->mu);
    if (cmd == 1) {
        http_server_stats(v->http, &v->st);
    } else if (cmd == 2) {
        /* as the collector stops: the server, then the login layer */
        http_server_stop(v->http);
        http_auth_close(v->a);
        uv_close((uv_handle_t *)&v->async, NULL);
    }
    pthread_mutex_lock(&v->mu);
    v->cmd_done = 1;
    pthread_cond_broadcast(&v->cv);
    pthread_mutex_unlock(&v->mu);
}

static void *srv_main(void *arg)
{
    struct srv *v = arg;
    uv_run(&v->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* Run a command on the loop and wait for it (at most 10 s). */
static void srv_cmd(struct srv *v, int cmd)
{
    struct timespec ts;

    pthread_mutex_lock(&v->mu);
    v->cmd = cmd;
    v->cmd_done = 0;
    pthread_mutex_unlock(&v->mu);
    uv_async_send(&v->async);
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    pthread_mutex_lock(&v->mu);
    while (!v->cmd_done) {
        if (pthread_cond_timedwait(&v->cv, &v->mu, &ts) == ETIMEDOUT) {
            break;
        }
    }
    int done = v->cmd_done;
    pthread_mutex_unlock(&v->mu);
    assert_true(done);
}

static void srv_wait(struct srv *v, const int *field, int value)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 20;
    pthread_mutex_lock(&v->mu);
    while (*field < value) {
        if (pthread_cond_timedwait(&v->cv, &v->mu, &ts) == ETIMEDOUT) {
            break;
        }
    }
    int got = *field;
    pthread_mutex_unlock(&v->mu);
    assert_true(got >= value);
}

static void srv_open_gate(struct srv *v)
{
    pthread_mutex_lock(&v->mu);
    v->gate = 1;
    pthread_cond_broadcast(&v->cv);
    pthread_mutex_unlock(&v->mu);
}

/* Connect (from 127.0.0.1, or from `from` if not NULL) and send one request (Connection:
 * close). */
static int cl_send_from(const char *from, int port, const char *method, const char *target,
                        const char *body)
{
    struct sockaddr_in sa;
    char req[1024];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    if (from != NULL) {
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, from, &sa.sin_addr), 1);
        assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     method, target, strlen(body), body);
    assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    return fd;
}

static int cl_send(int port, const char *method, const char *target, const char *body)
{
    return cl_send_from(NULL, port, method, target, body);
}

/* The whole reply (until the server closes; at most 10 s per read); returns the status. */
static int cl_read(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};

    for (int guard = 0; guard < 1000 && len + 1 < cap; guard++) {
        if (poll(&p, 1, 10000) <= 0) {
            break;
        }
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
    }
    buf[len] = '\0';
    close(fd);
    return strncmp(buf, "HTTP/1.1 ", 9) == 0 ? atoi(buf + 9) : -1;
}

static void login_off_the_loop(void **state)
{
    struct srv *v = calloc(1, sizeof(*v));
    struct http_auth_opts ao = {.max_failures = 1};
    struct http_opts ho = {.host = "127.0.0.1", .port = "0"};
    char err[256], buf[8192];
    static const char good[] = "{\"user\":\"vera\",\"password\":\"viewer-pass\"}";
    static const char bad[] = "{\"user\":\"vera\",\"password\":\"guess\"}";

    (void)state;
    pthread_mutex_init(&v->mu, NULL);
    pthread_cond_init(&v->cv, NULL);
    assert_int_equal(http_auth_open(path, &ao, &v->a), 0);
    assert_int_equal(http_auth_user_add(v->a, "vera", HTTP_ROLE_VIEWER, "viewer-pass", T0), 0);
    assert_int_equal(uv_loop_init(&v->loop), 0);
    uv_async_init(&v->loop, &v->async, srv_async);
    v->async.data = v;
    if (http_server_start(&v->loop, &ho, err, sizeof(err), &v->http) < 0) {
        fail_msg("http_server_start: %s", err);
    }
    v->port = http_server_port(v->http);
    http_auth_install(v->http, v->a);
    http_auth_set_check_hook(v->a, check_hook, v);
    assert_int_equal(pthread_create(&v->thr, NULL, srv_main, v), 0);

    /* a login held in its password check: another request is answered meanwhile */
    int fa = cl_send(v->port, "POST", "/api/v1/login", good);
    srv_wait(v, &v->checks, 1);
    assert_int_equal(cl_read(cl_send(v->port, "GET", "/api/v1/session", ""), buf, sizeof(buf)),
                     401);
    srv_cmd(v, 1);
    assert_int_equal(v->st.deferred_pending, 1);
    srv_open_gate(v);
    assert_int_equal(cl_read(fa, buf, sizeof(buf)), 200);
    assert_non_null(strstr(buf, "Set-Cookie: wp_session="));
    assert_non_null(strstr(buf, "\"user\":\"vera\""));

    /* a client that leaves during the check of a wrong password: its failure still counts
     * (max_failures 1: the next login from this address is refused without a check) */
    int fc = cl_send(v->port, "POST", "/api/v1/login", bad);
    srv_wait(v, &v->checks, 2);
    close(fc);
    srv_open_gate(v);
    int pending = 1;
    for (int guard = 0; guard < 1000 && pending; guard++) {
        srv_cmd(v, 1);
        pending = v->st.deferred_pending > 0;
        if (pending) {
            usleep(10 * 1000);
        }
    }
    assert_false(pending);
    assert_int_equal(cl_read(cl_send(v->port, "POST", "/api/v1/login", good), buf, sizeof(buf)),
                     429);
    assert_non_null(strstr(buf, "Retry-After: "));
    pthread_mutex_lock(&v->mu);
    assert_int_equal(v->checks, 2); /* refused before any check */
    pthread_mutex_unlock(&v->mu);

    /* a check still running when the collector stops (server, then login layer closed): the
     * layer is freed by the check's end, not before (another address and user: 127.0.0.1 and
     * vera are limited) */
    int fd = cl_send_from("127.0.0.2", v->port, "POST", "/api/v1/login",
                          "{\"user\":\"nobody\",\"password\":\"x\"}");
    srv_wait(v, &v->checks, 3);
    srv_cmd(v, 2);
    srv_open_gate(v);
    pthread_join(v->thr, NULL);
    assert_int_equal(uv_loop_close(&v->loop), 0);
    close(fd);
    pthread_cond_destroy(&v->cv);
    pthread_mutex_destroy(&v->mu);
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pbkdf2_vectors),
        cmocka_unit_test(hash_format),
        cmocka_unit_test(names_and_cookies),
        cmocka_unit_test_setup_teardown(sessions_expire, setup, teardown),
        cmocka_unit_test_setup_teardown(csrf_and_roles, setup, teardown),
        cmocka_unit_test_setup_teardown(token_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(login_rate_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(login_global_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(login_off_the_loop, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
