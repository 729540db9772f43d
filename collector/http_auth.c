/* SPDX-License-Identifier: Apache-2.0 */
/* Dashboard and API login: PBKDF2 password hashes, tokens, sessions, CSRF, login rate limit. */
#include "http_auth.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <mbedtls/base64.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>
#include <mbedtls/version.h>
#include <sqlite3.h>

#include "wp/clock.h"
#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"
#include "wp/pki.h"

/* mbedTLS 3 dropped the _ret suffixes (and returns int from the plain names) */
#if MBEDTLS_VERSION_MAJOR >= 3
#define mbedtls_sha256_ret        mbedtls_sha256
#define mbedtls_sha256_starts_ret mbedtls_sha256_starts
#define mbedtls_sha256_update_ret mbedtls_sha256_update
#define mbedtls_sha256_finish_ret mbedtls_sha256_finish
#endif
#define SHA_RET(x) ((x) != 0)

#define SALT_LEN    16
#define KEY_LEN     32
#define ITER_MIN    1000u
#define ITER_MAX    10000000u
#define RL_SLOTS    1024 /* rate-limit entries kept (users and addresses) */
#define RL_KEY      96
#define RL_MAX_FAIL 32    /* ring size: max_failures is capped at this */
#define TOUCH_MS    60000 /* last-used times are written at most once a minute */

#define TOK_CACHE    64    /* Bearer tokens remembered, direct-mapped by their hash */
#define TOK_TTL_MS   10000 /* a remembered token is looked up again after this */
#define TOK_CHECK_MS 1000  /* PRAGMA data_version is read at most this often */

/* A Bearer token that was found in the tokens table (see tok_cache_check()). */
struct tok_entry {
    char hash[65]; /* hex SHA-256 of the token; "" = free */
    char user[HTTP_AUTH_NAME_MAX + 8];
    enum http_role role;
    int64_t last_used_ms, expires_ms;
};

struct rl_entry {
    char key[RL_KEY]; /* "u:NAME" or "a:ADDRESS"; "" = free */
    int64_t fail[RL_MAX_FAIL];
    int n;    /* failures stored (ring) */
    int next; /* ring position */
    int64_t last_ms;
};

struct http_auth {
    sqlite3 *db;
    struct http_auth_opts o;
    struct rl_entry *rl;                 /* RL_SLOTS */
    char dummy_hash[HTTP_AUTH_HASH_MAX]; /* verified for unknown users: same cost */
    /* password checks: a bucket of HTTP_AUTH_CHECK_BURST, refilled HTTP_AUTH_CHECKS_PER_S a
     * second (in thousandths of a check) */
    int64_t bucket_milli, bucket_ms;
    /* the principal of the request the hook passed last (the handler runs right after) */
    const struct http_req *cur_req;
    struct http_principal cur;
    void (*check_hook)(void *arg); /* tests: run on the password check's thread first */
    void *check_hook_arg;
    /* Bearer tokens found (loop thread), dropped when users.db changed: tok_dv is the last
     * PRAGMA data_version read, at tok_checked_ms */
    struct tok_entry tok[TOK_CACHE];
    int64_t tok_dv, tok_checked_ms;
    int jobs;   /* login checks on the thread pool */
    int closed; /* http_auth_close() ran while jobs > 0 */
};

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE IF NOT EXISTS users(name TEXT PRIMARY KEY, role INTEGER NOT NULL,"
    " hash TEXT NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
    " last_login_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS tokens(name TEXT PRIMARY KEY, role INTEGER NOT NULL,"
    " hash TEXT NOT NULL UNIQUE, created_ms INTEGER NOT NULL,"
    " last_used_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS sessions(id TEXT PRIMARY KEY, user TEXT NOT NULL,"
    " csrf TEXT NOT NULL, created_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user);";

/* ---- roles and names ---- */

const char *http_role_name(enum http_role r)
{
    switch (r) {
    case HTTP_ROLE_VIEWER:
        return "viewer";
    case HTTP_ROLE_OPERATOR:
        return "operator";
    case HTTP_ROLE_ADMIN:
        return "admin";
    default:
        return "none";
    }
}

enum http_role http_role_parse(const char *s)
{
    if (s == NULL) {
        return HTTP_ROLE_NONE;
    }
    if (strcmp(s, "viewer") == 0) {
        return HTTP_ROLE_VIEWER;
    }
    if (strcmp(s, "operator") == 0) {
        return HTTP_ROLE_OPERATOR;
    }
    if (strcmp(s, "admin") == 0) {
        return HTTP_ROLE_ADMIN;
    }
    return HTTP_ROLE_NONE;
}

int http_auth_name_ok(const char *s)
{
    size_t n = 0;

    if (s == NULL) {
        return 0;
    }
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '@' || c == '-';
        if (!ok || n >= HTTP_AUTH_NAME_MAX) {
            return 0;
        }
    }
    return n > 0;
}

static int role_ok(int r)
{
    return r >= HTTP_ROLE_VIEWER && r <= HTTP_ROLE_ADMIN;
}

/* ---- crypto helpers ---- */

static int rand_hex(char *out, size_t nbytes)
{
    uint8_t b[64];
    int rc = 0;

    if (nbytes > sizeof(b)) {
        return -EINVAL;
    }
    rc = wp_pki_rand_bytes(b, nbytes);
    if (rc == 0) {
        wp_pki_hex(b, nbytes, out);
    }
    mbedtls_platform_zeroize(b, sizeof(b));
    return rc;
}

/*
 * PBKDF2-HMAC-SHA256 (RFC 8018) on mbedTLS's SHA-256. mbedtls_pkcs5_pbkdf2_hmac() restarts the
 * HMAC (hashing the padded key again) for every iteration: four SHA-256 blocks per round.
 * Keeping the states after the ipad and opad blocks and copying them makes it two, half the
 * time the loop thread spends on a login for the same iteration count.
 */
int http_auth_pbkdf2(const void *pw, size_t pwlen, const void *salt, size_t saltlen, uint32_t iter,
                     uint8_t *out, size_t outlen)
{
    mbedtls_sha256_context in0, out0, c;
    uint8_t key[64], pad[64], t[32], u[32], acc[32], be[4];
    int bad = 0;

    if (iter == 0 || outlen == 0 || outlen > 32u * 255u) {
        return -EINVAL;
    }
    mbedtls_sha256_init(&in0);
    mbedtls_sha256_init(&out0);
    mbedtls_sha256_init(&c);
    memset(key, 0, sizeof(key));
    if (pwlen > sizeof(key)) {
        bad |= SHA_RET(mbedtls_sha256_ret(pw, pwlen, key, 0));
    } else if (pwlen > 0) {
        memcpy(key, pw, pwlen);
    }
    for (size_t i = 0; i < sizeof(pad); i++) {
        pad[i] = key[i] ^ 0x36;
    }
    bad |= SHA_RET(mbedtls_sha256_starts_ret(&in0, 0));
    bad |= SHA_RET(mbedtls_sha256_update_ret(&in0, pad, sizeof(pad)));
    for (size_t i = 0; i < sizeof(pad); i++) {
        pad[i] = key[i] ^ 0x5c;
    }
    bad |= SHA_RET(mbedtls_sha256_starts_ret(&out0, 0));
    bad |= SHA_RET(mbedtls_sha256_update_ret(&out0, pad, sizeof(pad)));
    for (uint32_t block = 1; !bad && (size_t)(block - 1) * 32 < outlen; block++) {
        be[0] = (uint8_t)(block >> 24);
        be[1] = (uint8_t)(block >> 16);
        be[2] = (uint8_t)(block >> 8);
        be[3] = (uint8_t)block;
        /* U1 = HMAC(P, S || INT(block)) */
        mbedtls_sha256_clone(&c, &in0);
        bad |= SHA_RET(mbedtls_sha256_update_ret(&c, salt, saltlen));
        bad |= SHA_RET(mbedtls_sha256_update_ret(&c, be, sizeof(be)));
        bad |= SHA_RET(mbedtls_sha256_finish_ret(&c, t));
        mbedtls_sha256_clone(&c, &out0);
        bad |= SHA_RET(mbedtls_sha256_update_ret(&c, t, sizeof(t)));
        bad |= SHA_RET(mbedtls_sha256_finish_ret(&c, u));
        memcpy(acc, u, sizeof(acc));
        /* Uj = HMAC(P, Uj-1); T = U1 ^ U2 ^ ... */
        for (uint32_t j = 1; j < iter; j++) {
            mbedtls_sha256_clone(&c, &in0);
            bad |= SHA_RET(mbedtls_sha256_update_ret(&c, u, sizeof(u)));
            bad |= SHA_RET(mbedtls_sha256_finish_ret(&c, t));
            mbedtls_sha256_clone(&c, &out0);
            bad |= SHA_RET(mbedtls_sha256_update_ret(&c, t, sizeof(t)));
            bad |= SHA_RET(mbedtls_sha256_finish_ret(&c, u));
            for (size_t k = 0; k < sizeof(acc); k++) {
                acc[k] ^= u[k];
            }
        }
        size_t off = (size_t)(block - 1) * 32;
        size_t n = outlen - off < 32 ? outlen - off : 32;
        memcpy(out + off, acc, n);
    }
    mbedtls_sha256_free(&in0);
    mbedtls_sha256_free(&out0);
    mbedtls_sha256_free(&c);
    mbedtls_platform_zeroize(key, sizeof(key));
    mbedtls_platform_zeroize(pad, sizeof(pad));
    mbedtls_platform_zeroize(t, sizeof(t));
    mbedtls_platform_zeroize(u, sizeof(u));
    mbedtls_platform_zeroize(acc, sizeof(acc));
    return bad ? WP_ETLS : 0;
}

int http_auth_hash_password(const char *pw, uint32_t iter, char *out, size_t outlen)
{
    uint8_t salt[SALT_LEN], key[KEY_LEN];
    char s64[32], k64[64];
    size_t sl = 0, kl = 0;
    int rc = 0;

    iter = iter == 0 ? HTTP_AUTH_ITER : iter;
    if (pw == NULL || strlen(pw) > HTTP_AUTH_PASS_MAX || iter < ITER_MIN || iter > ITER_MAX ||
        outlen < HTTP_AUTH_HASH_MAX) {
        return -EINVAL;
    }
    rc = wp_pki_rand_bytes(salt, sizeof(salt));
    if (rc == 0) {
        rc = http_auth_pbkdf2(pw, strlen(pw), salt, sizeof(salt), iter, key, sizeof(key));
    }
    if (rc == 0 &&
        (mbedtls_base64_encode((unsigned char *)s64, sizeof(s64), &sl, salt, sizeof(salt)) != 0 ||
         mbedtls_base64_encode((unsigned char *)k64, sizeof(k64), &kl, key, sizeof(key)) != 0)) {
        rc = WP_ETLS;
    }
    if (rc == 0) {
        snprintf(out, outlen, "pbkdf2-sha256$%" PRIu32 "$%s$%s", iter, s64, k64);
    }
    mbedtls_platform_zeroize(key, sizeof(key));
    return rc;
}

int http_auth_verify_password(const char *pw, const char *stored)
{
    static const char pfx[] = "pbkdf2-sha256$";
    uint8_t salt[64], want[64], got[64];
    size_t sl = 0, kl = 0;
    char *end = NULL;
    int rc = 0;

    if (pw == NULL || stored == NULL || strncmp(stored, pfx, sizeof(pfx) - 1) != 0 ||
        strlen(pw) > HTTP_AUTH_PASS_MAX) {
        return -EINVAL;
    }
    const char *p = stored + sizeof(pfx) - 1;
    if (*p < '1' || *p > '9') {
        return -EINVAL;
    }
    errno = 0;
    unsigned long iter = strtoul(p, &end, 10);
    if (errno != 0 || *end != '$' || iter < ITER_MIN || iter > ITER_MAX) {
        return -EINVAL;
    }
    const char *s = end + 1;
    const char *k = strchr(s, '$');
    if (k == NULL || strchr(k + 1, '$') != NULL ||
        mbedtls_base64_decode(salt, sizeof(salt), &sl, (const unsigned char *)s, (size_t)(k - s)) !=
            0 ||
        mbedtls_base64_decode(want, sizeof(want), &kl, (const unsigned char *)k + 1,
                              strlen(k + 1)) != 0 ||
        sl < 8 || kl < 16) {
        return -EINVAL;
    }
    rc = http_auth_pbkdf2(pw, strlen(pw), salt, sl, (uint32_t)iter, got, kl);
    if (rc == 0) {
        rc = wp_pki_ct_equal(got, want, kl) ? 0 : WP_EAUTH;
    }
    mbedtls_platform_zeroize(got, sizeof(got));
    return rc;
}

/* ---- store ---- */

static int dberr(struct http_auth *a)
{
    (void)a;
    return WP_EDB;
}

int http_auth_open(const char *path, const struct http_auth_opts *opts, struct http_auth **out)
{
    struct http_auth *a = NULL;
    int rc = 0;
    int fd = -1;

    *out = NULL;
    /* create it private: it holds password hashes */
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        return -errno;
    }
    close(fd);
    a = wp_xcalloc(1, sizeof(*a));
    if (opts != NULL) {
        a->o = *opts;
    }
    a->o.session_idle_ms = a->o.session_idle_ms > 0 ? a->o.session_idle_ms : 12 * 3600 * 1000LL;
    a->o.session_max_ms = a->o.session_max_ms > 0 ? a->o.session_max_ms : 7 * 86400 * 1000LL;
    a->o.max_failures = a->o.max_failures > 0 ? a->o.max_failures : 5;
    a->o.max_failures = a->o.max_failures > RL_MAX_FAIL ? RL_MAX_FAIL : a->o.max_failures;
    a->o.window_ms = a->o.window_ms > 0 ? a->o.window_ms : 60000;
    a->rl = wp_xcalloc(RL_SLOTS, sizeof(*a->rl));
    a->bucket_milli = HTTP_AUTH_CHECK_BURST * 1000LL;
    if (sqlite3_open_v2(path, &a->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        rc = WP_EDB;
        goto out;
    }
    sqlite3_busy_timeout(a->db, 1000);
    if (sqlite3_exec(a->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
        rc = WP_EDB;
        goto out;
    }
    *out = a;
    a = NULL;
out:
    if (a != NULL && a->db != NULL) {
        WP_ERROR("http", "users database %s: %s", path, sqlite3_errmsg(a->db));
    }
    http_auth_close(a);
    return rc;
}

void http_auth_close(struct http_auth *a)
{
    if (a == NULL) {
        return;
    }
    if (a->jobs > 0) {
        a->closed = 1; /* password checks on the thread pool: the last one frees a */
        return;
    }
    sqlite3_close(a->db);
    free(a->rl);
    free(a);
}

const char *http_auth_errmsg(struct http_auth *a)
{
    return a != NULL && a->db != NULL ? sqlite3_errmsg(a->db) : "no database";
}

/* Run one statement with text/int64 arguments described by fmt ('s' text, 'i' int64).
 * Returns the number of changed rows (>= 0) or WP_EDB / -EEXIST (constraint). */
static int run(struct http_auth *a, const char *sql, const char *fmt, ...)
{
    sqlite3_stmt *st = NULL;
    va_list ap;
    int rc = 0;

    if (sqlite3_prepare_v2(a->db, sql, -1, &st, NULL) != SQLITE_OK) {
        return dberr(a);
    }
    va_start(ap, fmt);
    for (int i = 0; fmt[i] != '\0'; i++) {
        if (fmt[i] == 's') {
            sqlite3_bind_text(st, i + 1, va_arg(ap, const char *), -1, SQLITE_TRANSIENT);
        } else {
            sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
        }
    }
    va_end(ap);
    int r = sqlite3_step(st);
    if (r == SQLITE_DONE || r == SQLITE_ROW) {
        rc = sqlite3_changes(a->db);
    } else if (r == SQLITE_CONSTRAINT) {
        rc = -EEXIST;
    } else {
        rc = dberr(a);
    }
    sqlite3_finalize(st);
    return rc;
}

int http_auth_user_add(struct http_auth *a, const char *name, enum http_role role,
                       const char *password, int64_t now_ms)
{
    char h[HTTP_AUTH_HASH_MAX];
    int rc = 0;

    if (!http_auth_name_ok(name) || !role_ok((int)role) || password == NULL ||
        password[0] == '\0') {
        return -EINVAL;
    }
    rc = http_auth_hash_password(password, 0, h, sizeof(h));
    if (rc < 0) {
        return rc;
    }
    rc = run(a, "INSERT INTO users(name, role, hash, created_ms, updated_ms) VALUES(?,?,?,?,?)",
             "sisii", name, (int64_t)role, h, now_ms, now_ms);
    return rc < 0 ? rc : 0;
}

int http_auth_user_passwd(struct http_auth *a, const char *name, const char *password,
                          int64_t now_ms)
{
    char h[HTTP_AUTH_HASH_MAX];
    int rc = 0;

    if (!http_auth_name_ok(name) || password == NULL || password[0] == '\0') {
        return -EINVAL;
    }
    rc = http_auth_hash_password(password, 0, h, sizeof(h));
    if (rc < 0) {
        return rc;
    }
    rc = run(a, "UPDATE users SET hash = ?, updated_ms = ? WHERE name = ?", "sis", h, now_ms, name);
    if (rc == 0) {
        return WP_ENOTFOUND;
    }
    if (rc > 0) {
        rc = run(a, "DELETE FROM sessions WHERE user = ?", "s", name);
    }
    return rc < 0 ? rc : 0;
}

int http_auth_user_role(struct http_auth *a, const char *name, enum http_role role)
{
    if (!http_auth_name_ok(name) || !role_ok((int)role)) {
        return -EINVAL;
    }
    int rc = run(a, "UPDATE users SET role = ? WHERE name = ?", "is", (int64_t)role, name);
    return rc < 0 ? rc : rc == 0 ? WP_ENOTFOUND : 0;
}

int http_auth_user_del(struct http_auth *a, const char *name)
{
    if (!http_auth_name_ok(name)) {
        return -EINVAL;
    }
    int rc = run(a, "DELETE FROM users WHERE name = ?", "s", name);
    if (rc > 0) {
        rc = run(a, "DELETE FROM sessions WHERE user = ?", "s", name);
        return rc < 0 ? rc : 0;
    }
    return rc < 0 ? rc : WP_ENOTFOUND;
}

static int each(struct http_auth *a, const char *sql,
                int (*fn)(void *arg, const char *name, enum http_role role, int64_t created_ms,
                          int64_t last_ms),
                void *arg)
{
    sqlite3_stmt *st = NULL;
    int r = 0;

    if (sqlite3_prepare_v2(a->db, sql, -1, &st, NULL) != SQLITE_OK) {
        return dberr(a);
    }
    for (r = sqlite3_step(st); r == SQLITE_ROW; r = sqlite3_step(st)) {
        const char *n = (const char *)sqlite3_column_text(st, 0);
        if (fn(arg, n != NULL ? n : "", (enum http_role)sqlite3_column_int(st, 1),
               sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3)) != 0) {
            r = SQLITE_DONE;
            break;
        }
    }
    sqlite3_finalize(st);
    return r == SQLITE_DONE ? 0 : dberr(a);
}

int http_auth_user_each(struct http_auth *a,
                        int (*fn)(void *arg, const char *name, enum http_role role,
                                  int64_t created_ms, int64_t last_ms),
                        void *arg)
{
    return each(a, "SELECT name, role, created_ms, last_login_ms FROM users ORDER BY name", fn,
                arg);
}

int http_auth_token_each(struct http_auth *a,
                         int (*fn)(void *arg, const char *name, enum http_role role,
                                   int64_t created_ms, int64_t last_ms),
                         void *arg)
{
    return each(a, "SELECT name, role, created_ms, last_used_ms FROM tokens ORDER BY name", fn,
                arg);
}

int http_auth_token_add(struct http_auth *a, const char *name, enum http_role role, int64_t now_ms,
                        char *out, size_t outlen)
{
    char tok[HTTP_AUTH_TOKEN_LEN + 1], h[65];
    int rc = 0;

    if (!http_auth_name_ok(name) || !role_ok((int)role) || outlen <= HTTP_AUTH_TOKEN_LEN) {
        return -EINVAL;
    }
    memcpy(tok, "wpt_", 4);
    rc = rand_hex(tok + 4, 32);
    if (rc < 0) {
        return rc;
    }
    (void)wp_pki_sha256_hex(tok, h);
    rc = run(a, "INSERT INTO tokens(name, role, hash, created_ms) VALUES(?,?,?,?)", "sisi", name,
             (int64_t)role, h, now_ms);
    if (rc >= 0) {
        memcpy(out, tok, sizeof(tok));
    }
    mbedtls_platform_zeroize(tok, sizeof(tok));
    return rc < 0 ? rc : 0;
}

int http_auth_token_del(struct http_auth *a, const char *name)
{
    if (!http_auth_name_ok(name)) {
        return -EINVAL;
    }
    int rc = run(a, "DELETE FROM tokens WHERE name = ?", "s", name);
    memset(a->tok, 0, sizeof(a->tok)); /* our own change: data_version does not show it */
    return rc < 0 ? rc : rc == 0 ? WP_ENOTFOUND : 0;
}

/* ---- login rate limit ---- */

/* "u:NAME" / "a:ADDRESS" (the address of "ip:port" or "[v6]:port", without the port) */
static void rl_addr_key(const char *client, char *key, size_t len)
{
    const char *c = client != NULL ? client : "";
    size_t n = strlen(c);
    const char *colon = strrchr(c, ':');

    if (colon != NULL && (c[0] != '[' || (colon > c && colon[-1] == ']'))) {
        n = (size_t)(colon - c);
    }
    snprintf(key, len, "a:%.*s", (int)(n < 80 ? n : 80), c);
}

static struct rl_entry *rl_find(struct http_auth *a, const char *key, int create, int64_t now_ms)
{
    struct rl_entry *free_e = NULL, *oldest = NULL;

    for (size_t i = 0; i < RL_SLOTS; i++) {
        struct rl_entry *e = &a->rl[i];
        if (e->key[0] != '\0' && now_ms - e->last_ms > a->o.window_ms) {
            e->key[0] = '\0'; /* expired: every failure in it is outside the window */
        }
        if (e->key[0] == '\0') {
            free_e = free_e != NULL ? free_e : e;
            continue;
        }
        if (strcmp(e->key, key) == 0) {
            return e;
        }
        if (oldest == NULL || e->last_ms < oldest->last_ms) {
            oldest = e;
        }
    }
    if (!create) {
        return NULL;
    }
    struct rl_entry *e = free_e != NULL ? free_e : oldest;
    memset(e, 0, sizeof(*e));
    snprintf(e->key, sizeof(e->key), "%s", key);
    return e;
}

/* Seconds until key may try again (0: now). */
static int64_t rl_wait(struct http_auth *a, const char *key, int64_t now_ms)
{
    struct rl_entry *e = rl_find(a, key, 0, now_ms);
    int64_t oldest = INT64_MAX;
    int in = 0;

    if (e == NULL) {
        return 0;
    }
    for (int i = 0; i < e->n; i++) {
        if (now_ms - e->fail[i] < a->o.window_ms) {
            in++;
            oldest = e->fail[i] < oldest ? e->fail[i] : oldest;
        }
    }
    if (in < a->o.max_failures) {
        return 0;
    }
    /* the oldest failure in the window (of the last max_failures) leaves it at ... */
    int64_t ms = oldest + a->o.window_ms - now_ms;
    return ms <= 0 ? 1 : (ms + 999) / 1000;
}

static void rl_fail(struct http_auth *a, const char *key, int64_t now_ms)
{
    struct rl_entry *e = rl_find(a, key, 1, now_ms);

    e->fail[e->next] = now_ms;
    e->next = (e->next + 1) % a->o.max_failures;
    e->n = e->n < a->o.max_failures ? e->n + 1 : e->n;
    e->last_ms = now_ms;
}

static void rl_clear(struct http_auth *a, const char *key, int64_t now_ms)
{
    struct rl_entry *e = rl_find(a, key, 0, now_ms);

    if (e != NULL) {
        e->key[0] = '\0';
    }
}

/* ---- sessions ---- */

/* One login attempt, in three steps: login_begin() (loop: rate limits, the user's row),
 * login_check() (any thread: PBKDF2, touches nothing but the job) and login_finish() (loop:
 * failure counts or the session). The POST /api/v1/login route runs the check on the thread
 * pool (http_defer); http_auth_login() runs all three in a row. */
struct login_job {
    struct http_auth *a;
    struct http_principal p;
    char user[HTTP_AUTH_NAME_MAX + 1];
    char pw[HTTP_AUTH_PASS_MAX + 1];
    char client[64];
    char ukey[RL_KEY], akey[RL_KEY];
    char stored[HTTP_AUTH_HASH_MAX]; /* "": unknown user */
    char dummy[HTTP_AUTH_HASH_MAX];  /* a->dummy_hash, or made by the check if there was none */
    int name_ok;
    int pw_bad; /* longer than HTTP_AUTH_PASS_MAX: fails without a hash */
    int role;
    int verify; /* the check's result */
    int64_t retry;
    void (*hook)(void *arg); /* tests: run on the check's thread first */
    void *hook_arg;
};

static void login_job_free(struct login_job *j)
{
    if (j != NULL) {
        mbedtls_platform_zeroize(j->pw, sizeof(j->pw));
        free(j);
    }
}

/* Rate limits and the user's row: 0 (go on with login_check), or WP_EAGAIN (j->retry set). */
static int login_begin(struct http_auth *a, struct login_job *j, int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    const char *user = j->user;
    const char *client = j->client;

    j->name_ok = http_auth_name_ok(user);
    snprintf(j->ukey, sizeof(j->ukey), "u:%s", j->name_ok ? user : "(invalid)");
    rl_addr_key(client, j->akey, sizeof(j->akey));
    int64_t wu = rl_wait(a, j->ukey, now_ms);
    int64_t wa = rl_wait(a, j->akey, now_ms);
    if (wu > 0 || wa > 0) {
        j->retry = wu > wa ? wu : wa;
        WP_WARN("http",
                "login refused (too many failures) user=%s client=%s retry_after=%" PRId64 "s",
                j->name_ok ? user : "(invalid)", client, j->retry);
        return WP_EAGAIN;
    }
    /* bound the CPU spent on PBKDF2 whatever the number of names and addresses */
    if (now_ms > a->bucket_ms) {
        a->bucket_milli += (now_ms - a->bucket_ms) * HTTP_AUTH_CHECKS_PER_S;
    }
    if (now_ms > a->bucket_ms || a->bucket_ms == 0) {
        a->bucket_ms = now_ms;
    }
    if (a->bucket_milli > HTTP_AUTH_CHECK_BURST * 1000LL) {
        a->bucket_milli = HTTP_AUTH_CHECK_BURST * 1000LL;
    }
    if (a->bucket_milli < 1000) {
        j->retry = (1000 - a->bucket_milli + HTTP_AUTH_CHECKS_PER_S * 1000 - 1) /
                   (HTTP_AUTH_CHECKS_PER_S * 1000);
        j->retry = j->retry < 1 ? 1 : j->retry;
        WP_WARN("http", "login refused (over %d password checks a second) user=%s client=%s",
                HTTP_AUTH_CHECKS_PER_S, j->name_ok ? user : "(invalid)", client);
        return WP_EAGAIN;
    }
    a->bucket_milli -= 1000;
    if (j->name_ok && sqlite3_prepare_v2(a->db, "SELECT role, hash FROM users WHERE name = ?", -1,
                                         &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, user, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW) {
            j->role = sqlite3_column_int(st, 0);
            const char *hs = (const char *)sqlite3_column_text(st, 1);
            snprintf(j->stored, sizeof(j->stored), "%s", hs != NULL ? hs : "");
        }
        sqlite3_finalize(st);
    }
    snprintf(j->dummy, sizeof(j->dummy), "%s", a->dummy_hash);
    j->hook = a->check_hook;
    j->hook_arg = a->check_hook_arg;
    return 0;
}

/* PBKDF2: any thread; reads and writes j only. */
static void login_check(void *arg)
{
    struct login_job *j = arg;

    if (j->hook != NULL) {
        j->hook(j->hook_arg);
    }
    /* an unknown user costs one PBKDF2 too, so timing tells nothing: a hash of a random
     * password, made at the first login */
    if (j->dummy[0] == '\0') {
        char rnd[33];
        if (rand_hex(rnd, 16) < 0 ||
            http_auth_hash_password(rnd, HTTP_AUTH_ITER, j->dummy, sizeof(j->dummy)) < 0) {
            j->dummy[0] = '\0';
            j->verify = -EIO;
            return;
        }
    }
    j->verify = j->pw_bad
                    ? -EINVAL
                    : http_auth_verify_password(j->pw, j->stored[0] != '\0' ? j->stored : j->dummy);
    mbedtls_platform_zeroize(j->pw, sizeof(j->pw));
}

/* The check's outcome: 0 (sid and j->p filled), WP_EAUTH, WP_EDB or -errno. */
static int login_finish(struct http_auth *a, struct login_job *j, int64_t now_ms, char *sid)
{
    struct http_principal *p = &j->p;
    char h[65];
    int rc = 0;

    if (a->dummy_hash[0] == '\0' && j->dummy[0] != '\0') {
        snprintf(a->dummy_hash, sizeof(a->dummy_hash), "%s", j->dummy);
    }
    if (j->verify == -EIO) {
        return -EIO;
    }
    if (j->verify != 0 || j->stored[0] == '\0' || !role_ok(j->role)) {
        rl_fail(a, j->ukey, now_ms);
        rl_fail(a, j->akey, now_ms);
        WP_WARN("http", "login failed user=%s client=%s", j->name_ok ? j->user : "(invalid)",
                j->client);
        return WP_EAUTH;
    }
    rl_clear(a, j->ukey, now_ms);
    rc = rand_hex(sid, 32);
    if (rc == 0) {
        rc = rand_hex(p->csrf, 32);
    }
    if (rc < 0) {
        return rc;
    }
    (void)wp_pki_sha256_hex(sid, h);
    /* forget expired sessions while at it */
    run(a, "DELETE FROM sessions WHERE last_ms < ? OR created_ms < ?", "ii",
        now_ms - a->o.session_idle_ms, now_ms - a->o.session_max_ms);
    rc = run(a, "INSERT INTO sessions(id, user, csrf, created_ms, last_ms) VALUES(?,?,?,?,?)",
             "sssii", h, j->user, p->csrf, now_ms, now_ms);
    if (rc < 0) {
        WP_ERROR("http", "storing a session: %s", sqlite3_errmsg(a->db));
        return WP_EDB;
    }
    run(a, "UPDATE users SET last_login_ms = ? WHERE name = ?", "is", now_ms, j->user);
    snprintf(p->user, sizeof(p->user), "%s", j->user);
    p->role = (enum http_role)j->role;
    p->token = 0;
    WP_INFO("http", "login user=%s role=%s client=%s", j->user, http_role_name(p->role), j->client);
    return 0;
}

/* A job for user and password (copied). */
static struct login_job *login_job_new(struct http_auth *a, const char *user, const char *password,
                                       const char *client)
{
    struct login_job *j = wp_xcalloc(1, sizeof(*j));
    const char *pw = password != NULL ? password : "";

    j->a = a;
    /* a name too long for the buffer is invalid anyway: "" fails name_ok too */
    snprintf(j->user, sizeof(j->user), "%s",
             user != NULL && strlen(user) < sizeof(j->user) ? user : "");
    j->pw_bad = strlen(pw) > HTTP_AUTH_PASS_MAX;
    snprintf(j->pw, sizeof(j->pw), "%s", j->pw_bad ? "" : pw);
    snprintf(j->client, sizeof(j->client), "%s", client != NULL ? client : "?");
    return j;
}

int http_auth_login(struct http_auth *a, const char *user, const char *password, const char *client,
                    int64_t now_ms, char *sid, struct http_principal *p, int64_t *retry_after_s)
{
    struct login_job *j = login_job_new(a, user, password, client);
    int rc = 0;

    memset(p, 0, sizeof(*p));
    *retry_after_s = 0;
    rc = login_begin(a, j, now_ms);
    if (rc == WP_EAGAIN) {
        *retry_after_s = j->retry;
    } else {
        login_check(j);
        rc = login_finish(a, j, now_ms, sid);
        if (rc == 0) {
            *p = j->p;
        }
    }
    login_job_free(j);
    return rc;
}

void http_auth_set_check_hook(struct http_auth *a, void (*fn)(void *arg), void *arg)
{
    a->check_hook = fn;
    a->check_hook_arg = arg;
}

int http_auth_logout(struct http_auth *a, const char *sid)
{
    char h[65];

    if (sid == NULL || strlen(sid) != HTTP_AUTH_SID_LEN) {
        return 0;
    }
    (void)wp_pki_sha256_hex(sid, h);
    int rc = run(a, "DELETE FROM sessions WHERE id = ?", "s", h);
    return rc < 0 ? rc : 0;
}

int http_auth_cookie_sid(const char *cookie, char *sid)
{
    const char *p = cookie;

    /* "a=b; wp_session=HEX; c=d": the first wp_session of the header */
    for (int guard = 0; p != NULL && *p != '\0' && guard < 200; guard++) {
        while (*p == ' ' || *p == ';') {
            p++;
        }
        size_t n = strcspn(p, ";");
        if (n == 11 + HTTP_AUTH_SID_LEN && strncmp(p, "wp_session=", 11) == 0 &&
            wp_pki_is_hex(p + 11, HTTP_AUTH_SID_LEN)) {
            memcpy(sid, p + 11, HTTP_AUTH_SID_LEN);
            sid[HTTP_AUTH_SID_LEN] = '\0';
            return 0;
        }
        p += n;
    }
    return WP_ENOTFOUND;
}

static int safe_method(const char *m)
{
    return m != NULL &&
           (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "OPTIONS") == 0);
}

/* Forget the remembered tokens when another connection (the CLI: `watchpost token del`) has
 * changed users.db since the last look; looks at most once every TOK_CHECK_MS of now_ms (and
 * when the clock went back), so a deleted token works at most that much longer. */
static void tok_cache_check(struct http_auth *a, int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    int64_t dv = -1;

    if (now_ms >= a->tok_checked_ms && now_ms - a->tok_checked_ms < TOK_CHECK_MS) {
        return;
    }
    a->tok_checked_ms = now_ms;
    if (sqlite3_prepare_v2(a->db, "PRAGMA data_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        dv = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    if (dv < 0 || dv != a->tok_dv) {
        memset(a->tok, 0, sizeof(a->tok)); /* unknown or changed: look them up again */
    }
    a->tok_dv = dv;
}

/* The cache slot of a hex hash. */
static struct tok_entry *tok_slot(struct http_auth *a, const char *h)
{
    unsigned v = 0;

    for (int i = 0; i < 4; i++) {
        v = v * 16 + (unsigned)(h[i] <= '9' ? h[i] - '0' : h[i] - 'a' + 10);
    }
    return &a->tok[v % TOK_CACHE];
}

static int decide_token(struct http_auth *a, const char *authz, int64_t now_ms,
                        struct http_principal *p)
{
    sqlite3_stmt *st = NULL;
    char h[65];
    int rc = 401;

    if (strncasecmp(authz, "Bearer ", 7) != 0) {
        return 401;
    }
    const char *t = authz + 7;
    while (*t == ' ') {
        t++;
    }
    if (strlen(t) != HTTP_AUTH_TOKEN_LEN || strncmp(t, "wpt_", 4) != 0 ||
        !wp_pki_is_hex(t + 4, HTTP_AUTH_TOKEN_LEN - 4)) {
        return 401;
    }
    (void)wp_pki_sha256_hex(t, h);
    tok_cache_check(a, now_ms);
    struct tok_entry *e = tok_slot(a, h);
    if (strcmp(e->hash, h) == 0 && now_ms < e->expires_ms && now_ms >= e->expires_ms - TOK_TTL_MS) {
        snprintf(p->user, sizeof(p->user), "%s", e->user);
        p->role = e->role;
        p->token = 1;
        if (now_ms - e->last_used_ms > TOUCH_MS) {
            run(a, "UPDATE tokens SET last_used_ms = ? WHERE hash = ?", "is", now_ms, h);
            e->last_used_ms = now_ms;
        }
        return 0;
    }
    if (sqlite3_prepare_v2(a->db, "SELECT name, role, last_used_ms FROM tokens WHERE hash = ?", -1,
                           &st, NULL) != SQLITE_OK) {
        return 401;
    }
    sqlite3_bind_text(st, 1, h, -1, SQLITE_TRANSIENT);
    int64_t last = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *n = (const char *)sqlite3_column_text(st, 0);
        snprintf(p->user, sizeof(p->user), "token:%s", n != NULL ? n : "");
        p->role = (enum http_role)sqlite3_column_int(st, 1);
        p->token = 1;
        last = sqlite3_column_int64(st, 2);
        rc = role_ok((int)p->role) ? 0 : 401;
    }
    sqlite3_finalize(st);
    if (rc == 0 && now_ms - last > TOUCH_MS) {
        run(a, "UPDATE tokens SET last_used_ms = ? WHERE hash = ?", "is", now_ms, h);
        last = now_ms;
    }
    if (rc == 0) {
        snprintf(e->hash, sizeof(e->hash), "%s", h);
        snprintf(e->user, sizeof(e->user), "%s", p->user);
        e->role = p->role;
        e->last_used_ms = last;
        e->expires_ms = now_ms + TOK_TTL_MS;
    }
    return rc;
}

static int decide_session(struct http_auth *a, const char *cookie, int64_t now_ms,
                          struct http_principal *p)
{
    sqlite3_stmt *st = NULL;
    char sid[HTTP_AUTH_SID_LEN + 1], h[65];
    int rc = 401;

    if (http_auth_cookie_sid(cookie, sid) != 0) {
        return 401;
    }
    (void)wp_pki_sha256_hex(sid, h);
    if (sqlite3_prepare_v2(a->db,
                           "SELECT s.user, u.role, s.csrf, s.created_ms, s.last_ms FROM sessions s"
                           " JOIN users u ON u.name = s.user WHERE s.id = ?",
                           -1, &st, NULL) != SQLITE_OK) {
        return 401;
    }
    sqlite3_bind_text(st, 1, h, -1, SQLITE_TRANSIENT);
    int64_t last = 0;
    int expired = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *u = (const char *)sqlite3_column_text(st, 0);
        const char *c = (const char *)sqlite3_column_text(st, 2);
        snprintf(p->user, sizeof(p->user), "%s", u != NULL ? u : "");
        p->role = (enum http_role)sqlite3_column_int(st, 1);
        snprintf(p->csrf, sizeof(p->csrf), "%s", c != NULL ? c : "");
        p->token = 0;
        last = sqlite3_column_int64(st, 4);
        expired = now_ms - last > a->o.session_idle_ms ||
                  now_ms - sqlite3_column_int64(st, 3) > a->o.session_max_ms;
        rc = expired || !role_ok((int)p->role) ? 401 : 0;
    }
    sqlite3_finalize(st);
    if (expired) {
        run(a, "DELETE FROM sessions WHERE id = ?", "s", h);
    } else if (rc == 0 && now_ms - last > TOUCH_MS) {
        run(a, "UPDATE sessions SET last_ms = ? WHERE id = ?", "is", now_ms, h);
    }
    return rc;
}

int http_auth_decide(struct http_auth *a, const struct http_auth_in *in, enum http_role need,
                     int64_t now_ms, struct http_principal *p)
{
    int rc = 0;

    memset(p, 0, sizeof(*p));
    if (in->authorization != NULL) {
        /* a bad token is a 401 even with a good cookie: scripts should learn of it */
        rc = decide_token(a, in->authorization, now_ms, p);
    } else if (in->cookie != NULL) {
        rc = decide_session(a, in->cookie, now_ms, p);
    } else {
        rc = 401;
    }
    if (rc != 0) {
        memset(p, 0, sizeof(*p));
        return rc;
    }
    if (!p->token && !safe_method(in->method)) {
        if (in->csrf == NULL || strlen(in->csrf) != HTTP_AUTH_SID_LEN ||
            strlen(p->csrf) != HTTP_AUTH_SID_LEN ||
            !wp_pki_ct_equal(in->csrf, p->csrf, HTTP_AUTH_SID_LEN)) {
            p->refused = "missing or wrong CSRF token";
            return 403;
        }
    }
    if ((int)p->role < (int)need) {
        p->refused = "role too low";
        return 403;
    }
    return 0;
}

/* ---- HTTP glue ---- */

static int hook(struct http_req *req, enum http_role role, void *arg)
{
    struct http_auth *a = arg;
    struct http_auth_in in = {
        .method = req->method,
        .cookie = http_req_header(req, "Cookie"),
        .authorization = http_req_header(req, "Authorization"),
        .csrf = http_req_header(req, "X-CSRF-Token"),
    };
    int rc = http_auth_decide(a, &in, role, wp_clock_now_ms(), &a->cur);

    a->cur_req = rc == 0 ? req : NULL;
    if (rc == 403) {
        WP_INFO("http", "refused %s %s: %s user=%s role=%s needs=%s client=%s", req->method,
                req->path, a->cur.refused != NULL ? a->cur.refused : "?", a->cur.user,
                http_role_name(a->cur.role), http_role_name(role), req->client);
    }
    return rc;
}

int http_auth_principal(struct http_auth *a, struct http_req *req, struct http_principal *p)
{
    if (a->cur_req == req && a->cur.user[0] != '\0') {
        *p = a->cur;
        a->cur_req = NULL; /* one use: the next request on this connection reuses req */
        return 0;
    }
    struct http_auth_in in = {
        .method = "GET",
        .cookie = http_req_header(req, "Cookie"),
        .authorization = http_req_header(req, "Authorization"),
        .csrf = NULL,
    };
    return http_auth_decide(a, &in, HTTP_ROLE_VIEWER, wp_clock_now_ms(), p);
}

/* Cookies: the session (HttpOnly) and the csrf token (readable by the page's script). */
static void set_cookies(struct http_req *req, struct http_auth *a, const char *sid,
                        const char *csrf)
{
    char c[256];
    const char *sec = req->tls ? "; Secure" : "";
    int64_t age = sid[0] != '\0' ? a->o.session_max_ms / 1000 : 0;

    snprintf(c, sizeof(c),
             "wp_session=%s; Path=/; Max-Age=%" PRId64 "; HttpOnly; SameSite=Strict%s", sid, age,
             sec);
    http_resp_header(req, "Set-Cookie", c);
    snprintf(c, sizeof(c), "wp_csrf=%s; Path=/; Max-Age=%" PRId64 "; SameSite=Strict%s", csrf, age,
             sec);
    http_resp_header(req, "Set-Cookie", c);
}

/* A cross-site login (login CSRF): Origin, when sent, must name this host. */
static int origin_ok(struct http_req *req)
{
    const char *origin = http_req_header(req, "Origin");
    const char *host = http_req_header(req, "Host");

    if (origin == NULL) {
        return 1;
    }
    if (host == NULL) {
        return 0;
    }
    const char *o = strstr(origin, "://");
    return o != NULL && strcmp(o + 3, host) == 0 &&
           strncmp(origin, req->tls ? "https" : "http", (size_t)(o - origin)) == 0;
}

/* The password was checked on the thread pool: answer (req NULL: the client left). */
static void login_done(struct http_req *req, void *arg)
{
    struct login_job *j = arg;
    struct http_auth *a = j->a;
    char sid[HTTP_AUTH_SID_LEN + 1];

    a->jobs--;
    if (a->closed) {
        login_job_free(j); /* the collector is stopping */
        if (a->jobs == 0) {
            http_auth_close(a);
        }
        return;
    }
    if (req == NULL) {
        /* the outcome still counts: a client must not dodge a failure by leaving */
        int rc = login_finish(a, j, wp_clock_now_ms(), sid);
        if (rc == 0) {
            http_auth_logout(a, sid); /* nobody will use that session */
        }
        mbedtls_platform_zeroize(sid, sizeof(sid));
        login_job_free(j);
        return;
    }
    int rc = login_finish(a, j, wp_clock_now_ms(), sid);
    if (rc == WP_EAUTH) {
        http_respond_error(req, 401, "wrong user name or password");
    } else if (rc < 0) {
        http_respond_error(req, 500, "cannot log in now");
    } else {
        set_cookies(req, a, sid, j->p.csrf);
        http_respond_json(req, 200,
                          json_pack("{s:s,s:s,s:s,s:I}", "user", j->p.user, "role",
                                    http_role_name(j->p.role), "csrf", j->p.csrf, "idle_timeout_s",
                                    (json_int_t)(a->o.session_idle_ms / 1000)));
    }
    mbedtls_platform_zeroize(sid, sizeof(sid));
    login_job_free(j);
}

static void login(struct http_req *req, void *arg)
{
    struct http_auth *a = arg;
    json_error_t jerr;

    if (!origin_ok(req)) {
        http_respond_error(req, 403, "cross-origin login refused");
        return;
    }
    json_t *j = json_loadb((const char *)req->body, req->body_len, 0, &jerr);
    const char *user = json_is_object(j) ? json_string_value(json_object_get(j, "user")) : NULL;
    const char *pw = json_is_object(j) ? json_string_value(json_object_get(j, "password")) : NULL;
    if (user == NULL || pw == NULL || strlen(pw) > HTTP_AUTH_PASS_MAX) {
        json_decref(j);
        http_respond_error(req, 400, "expected {\"user\": \"...\", \"password\": \"...\"}");
        return;
    }
    struct login_job *lj = login_job_new(a, user, pw, req->client);
    json_decref(j); /* the password copy goes with it (the job keeps one until the check) */
    int rc = login_begin(a, lj, wp_clock_now_ms());
    if (rc == WP_EAGAIN) {
        char ra[32];
        snprintf(ra, sizeof(ra), "%" PRId64, lj->retry);
        login_job_free(lj);
        http_resp_header(req, "Retry-After", ra);
        http_respond_error(req, 429, "too many failed logins: try again later");
        return;
    }
    /* PBKDF2 (~0.1 s) on the thread pool: the loop serves everyone else meanwhile */
    if (http_defer(req, login_check, login_done, lj) < 0) {
        login_job_free(lj);
        http_respond_error(req, 500, "cannot log in now");
        return;
    }
    a->jobs++;
}

static void logout(struct http_req *req, void *arg)
{
    struct http_auth *a = arg;
    char sid[HTTP_AUTH_SID_LEN + 1];

    if (http_auth_cookie_sid(http_req_header(req, "Cookie"), sid) == 0 &&
        http_auth_logout(a, sid) < 0) {
        http_respond_error(req, 500, "cannot end the session");
        return;
    }
    set_cookies(req, a, "", "");
    http_respond_json(req, 200, json_pack("{s:b}", "ok", 1));
}

static void session(struct http_req *req, void *arg)
{
    struct http_auth *a = arg;
    struct http_principal p;

    if (http_auth_principal(a, req, &p) != 0) {
        http_respond_error(req, 401, "login required");
        return;
    }
    json_t *o = json_pack("{s:s,s:s,s:s}", "user", p.user, "role", http_role_name(p.role), "via",
                          p.token ? "token" : "session");
    if (o != NULL && !p.token) {
        json_object_set_new(o, "csrf", json_string(p.csrf));
    }
    http_respond_json(req, 200, o);
}

static int user_row(void *arg, const char *name, enum http_role role, int64_t created_ms,
                    int64_t last_ms)
{
    json_array_append_new(arg, json_pack("{s:s,s:s,s:I,s:I}", "name", name, "role",
                                         http_role_name(role), "created_ms", (json_int_t)created_ms,
                                         "last_ms", (json_int_t)last_ms));
    return 0;
}

static void users(struct http_req *req, void *arg)
{
    struct http_auth *a = arg;
    json_t *u = json_array();
    json_t *t = json_array();

    if (http_auth_user_each(a, user_row, u) < 0 || http_auth_token_each(a, user_row, t) < 0) {
        json_decref(u);
        json_decref(t);
        http_respond_error(req, 500, "cannot read the users");
        return;
    }
    http_respond_json(req, 200, json_pack("{s:o,s:o}", "users", u, "tokens", t));
}

static int count_cb(void *arg, const char *name, enum http_role role, int64_t created_ms,
                    int64_t last_ms)
{
    (void)name;
    (void)role;
    (void)created_ms;
    (void)last_ms;
    (*(int *)arg)++;
    return 0;
}

void http_auth_install(struct http_server *srv, struct http_auth *a)
{
    int n = 0;

    http_auth_user_each(a, count_cb, &n);
    http_auth_token_each(a, count_cb, &n);
    if (n == 0) {
        WP_WARN("http", "no users or API tokens yet: nobody can use the dashboard or the API; "
                        "add one with `watchpost user add NAME --role admin`");
    }
    http_set_auth(srv, hook, a);
    http_route(srv, "POST", "/api/v1/login", login, a);
    http_route_role(srv, "POST", "/api/v1/logout", HTTP_ROLE_VIEWER, logout, a);
    http_route_role(srv, "GET", "/api/v1/session", HTTP_ROLE_VIEWER, session, a);
    http_route_role(srv, "GET", "/api/v1/users", HTTP_ROLE_ADMIN, users, a);
}
