/* SPDX-License-Identifier: Apache-2.0 */
/* Dashboard and API login: users, API tokens and sessions in STATE_DIR/users.db, roles, CSRF. */
#ifndef WP_COLLECTOR_HTTP_AUTH_H
#define WP_COLLECTOR_HTTP_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "http.h"

/*
 * users.db (SQLite, WAL, mode 0600) holds three tables:
 *   users(name, role, hash)          hash = "pbkdf2-sha256$ITER$SALT$KEY" (base64 salt and key)
 *   tokens(name, role, hash)         hash = hex SHA-256 of the token (256 random bits)
 *   sessions(id, user, csrf, ...)    id = hex SHA-256 of the cookie value (256 random bits)
 * The CLI (`watchpost user`, `watchpost token`) and the collector use the same file; a role
 * change or a deleted user takes effect on the next request (sessions join users).
 *
 * Passwords: PBKDF2-HMAC-SHA256 (mbedTLS), 16 random salt bytes, 32-byte key,
 * HTTP_AUTH_ITER iterations, compared in constant time. Tokens and session ids are random
 * 256-bit values, so one SHA-256 is enough to store them (nothing to brute-force).
 *
 * Requests: "Authorization: Bearer TOKEN" (scripts; no CSRF token needed: browsers never add
 * it by themselves), or the session cookie wp_session (browsers). A cookie-authenticated
 * request with any method but GET/HEAD/OPTIONS must carry X-CSRF-Token equal to the session's
 * csrf token (from the login reply, GET /api/v1/session, or the wp_csrf cookie).
 *
 * Failed logins: at most max_failures per window per user name and per client address; past
 * that the login answers 429 with Retry-After without checking the password. Logged without
 * the password. Over all clients, passwords are checked at most HTTP_AUTH_CHECKS_PER_S a
 * second in the long run, in bursts of up to HTTP_AUTH_CHECK_BURST (about 0.1 s of CPU per
 * check); more logins get 429 with Retry-After. Rate-limit state is in memory (the
 * collector's loop thread). POST /api/v1/login checks the password on libuv's thread pool
 * (http_defer), so the loop serves other requests meanwhile; a client that leaves before its
 * answer still has its failure counted.
 *
 * Everything but the password hashing helpers is for one thread at a time: the collector's
 * loop thread, or the CLI.
 */

#define HTTP_AUTH_ITER         210000 /* PBKDF2 iterations for new hashes (>= 100000) */
#define HTTP_AUTH_CHECKS_PER_S 2      /* password checks a second in the long run, all clients */
#define HTTP_AUTH_CHECK_BURST  10     /* ... in bursts of this many (a shift change) */
#define HTTP_AUTH_NAME_MAX     64     /* user and token names: [A-Za-z0-9._@-]{1,64} */
#define HTTP_AUTH_PASS_MAX     1024   /* bytes of a password */
#define HTTP_AUTH_HASH_MAX     160    /* a stored password hash string, with its NUL */
#define HTTP_AUTH_TOKEN_LEN    68     /* "wpt_" + 64 hex digits */
#define HTTP_AUTH_SID_LEN      64     /* session cookie value / csrf token: 64 hex digits */

struct http_auth;

struct http_auth_opts {
    int64_t session_idle_ms; /* 0: 12 h without a request ends a session */
    int64_t session_max_ms;  /* 0: 7 days after login at most */
    int max_failures;        /* 0: 5 failed logins ... */
    int64_t window_ms;       /* 0: ... per 60 s, per user and per client address */
};

/* Who made a request. */
struct http_principal {
    char user[HTTP_AUTH_NAME_MAX + 8]; /* user name, or "token:NAME" */
    enum http_role role;
    int token;                        /* 1: Bearer token, 0: session cookie */
    char csrf[HTTP_AUTH_SID_LEN + 1]; /* the session's csrf token ("" for tokens) */
    const char *refused; /* after a 403: "role too low" or "missing or wrong CSRF token" */
};

/* Role names: "viewer", "operator", "admin". parse returns HTTP_ROLE_NONE for anything else. */
const char *http_role_name(enum http_role r);
enum http_role http_role_parse(const char *s);
/* 1 when s is a valid user or token name. */
int http_auth_name_ok(const char *s);

/* PBKDF2-HMAC-SHA256 of pw with salt, iter rounds, into out[outlen]. 0 or WP_ETLS. Any thread. */
int http_auth_pbkdf2(const void *pw, size_t pwlen, const void *salt, size_t saltlen, uint32_t iter,
                     uint8_t *out, size_t outlen);
/* Hash pw (random salt) with iter rounds (0: HTTP_AUTH_ITER) as "pbkdf2-sha256$ITER$SALT$KEY"
 * into out (at least HTTP_AUTH_HASH_MAX). 0, -EINVAL (pw too long or iter below 1000) or an
 * error of getrandom. Any thread. */
int http_auth_hash_password(const char *pw, uint32_t iter, char *out, size_t outlen);
/* Check pw against a stored hash in constant time: 0 match, WP_EAUTH mismatch, -EINVAL
 * (malformed hash, or iterations outside 1000..10000000). Any thread. */
int http_auth_verify_password(const char *pw, const char *stored);

/* Open (creating, mode 0600) the users database at path. opts may be NULL (defaults).
 * 0 or WP_EDB / -errno; *out NULL on failure. */
int http_auth_open(const char *path, const struct http_auth_opts *opts, struct http_auth **out);
/* NULL does nothing. */
void http_auth_close(struct http_auth *a);
/* The last SQLite error message. */
const char *http_auth_errmsg(struct http_auth *a);

/* Users and tokens (the CLI). Names must pass http_auth_name_ok, role not NONE.
 * add: 0, -EEXIST, -EINVAL or WP_EDB. passwd/del: 0, WP_ENOTFOUND, -EINVAL or WP_EDB.
 * Deleting a user or changing its password ends its sessions. */
int http_auth_user_add(struct http_auth *a, const char *name, enum http_role role,
                       const char *password, int64_t now_ms);
int http_auth_user_passwd(struct http_auth *a, const char *name, const char *password,
                          int64_t now_ms);
int http_auth_user_role(struct http_auth *a, const char *name, enum http_role role);
int http_auth_user_del(struct http_auth *a, const char *name);
/* fn(arg, name, role, created_ms, last_login_ms) per user by name; nonzero stops. */
int http_auth_user_each(struct http_auth *a,
                        int (*fn)(void *arg, const char *name, enum http_role role,
                                  int64_t created_ms, int64_t last_ms),
                        void *arg);
/* A new API token named name: the token (HTTP_AUTH_TOKEN_LEN chars) is written to out
 * (outlen > HTTP_AUTH_TOKEN_LEN) and stored only as its hash: it cannot be shown again. */
int http_auth_token_add(struct http_auth *a, const char *name, enum http_role role, int64_t now_ms,
                        char *out, size_t outlen);
int http_auth_token_del(struct http_auth *a, const char *name);
int http_auth_token_each(struct http_auth *a,
                         int (*fn)(void *arg, const char *name, enum http_role role,
                                   int64_t created_ms, int64_t last_ms),
                         void *arg);

/*
 * Log in from client ("ip:port"; the port is ignored for the rate limit). On success
 * returns 0 and fills sid (the cookie value) and p (with the csrf token); on a wrong user or
 * password returns WP_EAUTH (and counts the failure); when rate-limited (this user or
 * address, or all logins this second) returns WP_EAGAIN and *retry_after_s (seconds, >= 1)
 * without checking the password. sid has room for
 * HTTP_AUTH_SID_LEN + 1. Unknown users cost the same PBKDF2 as known ones. The PBKDF2 runs
 * on the calling thread (the HTTP route runs it on the thread pool instead).
 */
int http_auth_login(struct http_auth *a, const char *user, const char *password, const char *client,
                    int64_t now_ms, char *sid, struct http_principal *p, int64_t *retry_after_s);
/* For tests: fn(arg) runs on the thread of every password check, before the check (so a test
 * can hold a login on the thread pool and see the loop answer others). NULL: none. */
void http_auth_set_check_hook(struct http_auth *a, void (*fn)(void *arg), void *arg);
/* End the session whose cookie value is sid. 0 (also when there was none) or WP_EDB. */
int http_auth_logout(struct http_auth *a, const char *sid);

/* What a request presents. Any field may be NULL. */
struct http_auth_in {
    const char *method;        /* "GET", "POST", ... */
    const char *cookie;        /* Cookie header */
    const char *authorization; /* Authorization header */
    const char *csrf;          /* X-CSRF-Token header */
};
/* May this request use a route that needs role? 0 (and *p filled), 401 (no or a bad
 * credential, expired session) or 403 (role too low, or a missing or wrong CSRF token). */
int http_auth_decide(struct http_auth *a, const struct http_auth_in *in, enum http_role need,
                     int64_t now_ms, struct http_principal *p);
/* The session cookie value of a Cookie header into sid (HTTP_AUTH_SID_LEN + 1): 0 or
 * WP_ENOTFOUND. */
int http_auth_cookie_sid(const char *cookie, char *sid);

/*
 * Wire a into srv: the role hook (http_set_auth) and the routes POST /api/v1/login (open),
 * POST /api/v1/logout, GET /api/v1/session (viewer) and GET /api/v1/users (admin). a is
 * borrowed and must outlive srv's routes. Loop thread.
 */
void http_auth_install(struct http_server *srv, struct http_auth *a);
/* Who made req (a route handler's request that passed the hook): 0, or 401 when nobody. */
int http_auth_principal(struct http_auth *a, struct http_req *req, struct http_principal *p);

#endif
