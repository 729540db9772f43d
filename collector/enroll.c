/* SPDX-License-Identifier: Apache-2.0 */
/* Bootstrap tokens for agent enrolment: the SQLite store, hashing and single use. */
#include "enroll.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>
#include <sqlite3.h>

#include "wp/err.h"
#include "wp/mem.h"
#include "wp/pki.h"

#define SECRET_BYTES 32
#define ID_BYTES     8
#define PREFIX       "wpe_"
#define PREFIX_LEN   4

struct enroll_store {
    sqlite3 *db;
};

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE IF NOT EXISTS enroll_tokens(id TEXT PRIMARY KEY, hash TEXT NOT NULL,"
    " agent TEXT NOT NULL DEFAULT '', created_ms INTEGER NOT NULL,"
    " expires_ms INTEGER NOT NULL, used_ms INTEGER NOT NULL DEFAULT 0,"
    " used_by TEXT NOT NULL DEFAULT '', used_from TEXT NOT NULL DEFAULT '');";

const char *enroll_verdict_name(enum enroll_verdict v)
{
    switch (v) {
    case ENROLL_OK:
        return "ok";
    case ENROLL_UNKNOWN:
        return "unknown";
    case ENROLL_USED:
        return "used";
    case ENROLL_EXPIRED:
        return "expired";
    case ENROLL_WRONG_AGENT:
        return "wrong agent";
    }
    return "?";
}

/* Is tok shaped like a token? Then its id goes to id. */
static int token_parse(const char *tok, char *id)
{
    if (tok == NULL || strlen(tok) != ENROLL_TOKEN_LEN || strncmp(tok, PREFIX, PREFIX_LEN) != 0 ||
        tok[PREFIX_LEN + ENROLL_ID_LEN] != '_' || !wp_pki_is_hex(tok + PREFIX_LEN, ENROLL_ID_LEN) ||
        !wp_pki_is_hex(tok + PREFIX_LEN + ENROLL_ID_LEN + 1, 2 * SECRET_BYTES)) {
        return -EINVAL;
    }
    memcpy(id, tok + PREFIX_LEN, ENROLL_ID_LEN);
    id[ENROLL_ID_LEN] = '\0';
    return 0;
}

int enroll_store_open(const char *path, struct enroll_store **out)
{
    struct enroll_store *s = NULL;
    int fd = -1;

    *out = NULL;
    /* private from the start: it holds token hashes */
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        return -errno;
    }
    close(fd);
    s = wp_xcalloc(1, sizeof(*s));
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) !=
            SQLITE_OK ||
        sqlite3_busy_timeout(s->db, 1000) != SQLITE_OK ||
        sqlite3_exec(s->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
        enroll_store_close(s);
        return WP_EDB;
    }
    *out = s;
    return 0;
}

void enroll_store_close(struct enroll_store *s)
{
    if (s == NULL) {
        return;
    }
    sqlite3_close(s->db);
    free(s);
}

const char *enroll_store_errmsg(struct enroll_store *s)
{
    return s != NULL && s->db != NULL ? sqlite3_errmsg(s->db) : "no database";
}

int enroll_token_add(struct enroll_store *s, const char *agent, int64_t ttl_ms, int64_t now_ms,
                     char *tok, size_t toklen, char *id)
{
    uint8_t idb[ID_BYTES], sec[SECRET_BYTES];
    char sech[2 * SECRET_BYTES + 1], h[65];
    sqlite3_stmt *st = NULL;
    int rc = 0;

    if (agent == NULL) {
        agent = "";
    }
    if ((agent[0] != '\0' && !wp_pki_name_ok(agent)) || ttl_ms < 1 || ttl_ms > ENROLL_TTL_MAX_MS ||
        toklen <= ENROLL_TOKEN_LEN) {
        return -EINVAL;
    }
    rc = wp_pki_rand_bytes(idb, sizeof(idb));
    if (rc == 0) {
        rc = wp_pki_rand_bytes(sec, sizeof(sec));
    }
    if (rc < 0) {
        goto out;
    }
    wp_pki_hex(idb, sizeof(idb), id);
    wp_pki_hex(sec, sizeof(sec), sech);
    snprintf(tok, toklen, PREFIX "%s_%s", id, sech);
    rc = wp_pki_sha256_hex(tok, h);
    if (rc < 0) {
        goto out;
    }
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO enroll_tokens(id, hash, agent, created_ms, expires_ms)"
                           " VALUES(?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = WP_EDB;
        goto out;
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, h, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, agent, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, now_ms);
    sqlite3_bind_int64(st, 5, now_ms + ttl_ms);
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : WP_EDB;
out:
    sqlite3_finalize(st);
    mbedtls_platform_zeroize(sec, sizeof(sec));
    mbedtls_platform_zeroize(sech, sizeof(sech));
    if (rc < 0) {
        mbedtls_platform_zeroize(tok, toklen);
    }
    return rc;
}

int enroll_token_del(struct enroll_store *s, const char *id)
{
    sqlite3_stmt *st = NULL;
    int rc = 0;

    if (id == NULL || strlen(id) != ENROLL_ID_LEN || !wp_pki_is_hex(id, ENROLL_ID_LEN)) {
        return WP_ENOTFOUND;
    }
    if (sqlite3_prepare_v2(s->db, "DELETE FROM enroll_tokens WHERE id = ?", -1, &st, NULL) !=
        SQLITE_OK) {
        return WP_EDB;
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = WP_EDB;
    } else if (sqlite3_changes(s->db) == 0) {
        rc = WP_ENOTFOUND;
    }
    sqlite3_finalize(st);
    return rc;
}

int enroll_token_prune(struct enroll_store *s, int64_t now_ms, int64_t keep_ms)
{
    sqlite3_stmt *st = NULL;
    int rc = 0;

    if (sqlite3_prepare_v2(s->db, "DELETE FROM enroll_tokens WHERE used_ms != 0 OR expires_ms < ?",
                           -1, &st, NULL) != SQLITE_OK) {
        return WP_EDB;
    }
    sqlite3_bind_int64(st, 1, now_ms - keep_ms);
    rc = sqlite3_step(st) == SQLITE_DONE ? sqlite3_changes(s->db) : WP_EDB;
    sqlite3_finalize(st);
    return rc;
}

static void copy_col(sqlite3_stmt *st, int col, char *out, size_t n)
{
    const char *v = (const char *)sqlite3_column_text(st, col);

    snprintf(out, n, "%s", v != NULL ? v : "");
}

#define INFO_COLS "id, agent, created_ms, expires_ms, used_ms, used_by, used_from"

static void row_info(sqlite3_stmt *st, struct enroll_token_info *t)
{
    memset(t, 0, sizeof(*t));
    copy_col(st, 0, t->id, sizeof(t->id));
    copy_col(st, 1, t->agent, sizeof(t->agent));
    t->created_ms = sqlite3_column_int64(st, 2);
    t->expires_ms = sqlite3_column_int64(st, 3);
    t->used_ms = sqlite3_column_int64(st, 4);
    copy_col(st, 5, t->used_by, sizeof(t->used_by));
    copy_col(st, 6, t->used_from, sizeof(t->used_from));
}

int enroll_token_each(struct enroll_store *s,
                      int (*fn)(void *arg, const struct enroll_token_info *t), void *arg)
{
    sqlite3_stmt *st = NULL;
    struct enroll_token_info t;
    int rc = 0;
    int r = 0;

    if (sqlite3_prepare_v2(s->db, "SELECT " INFO_COLS " FROM enroll_tokens ORDER BY created_ms, id",
                           -1, &st, NULL) != SQLITE_OK) {
        return WP_EDB;
    }
    while (rc == 0 && (r = sqlite3_step(st)) == SQLITE_ROW) {
        row_info(st, &t);
        rc = fn(arg, &t);
    }
    if (rc == 0 && r != SQLITE_DONE) {
        rc = WP_EDB;
    }
    sqlite3_finalize(st);
    return rc;
}

int enroll_token_redeem(struct enroll_store *s, const char *token, const char *agent,
                        const char *client, int64_t now_ms, int (*issue)(void *arg), void *arg,
                        enum enroll_verdict *verdict, struct enroll_token_info *info)
{
    sqlite3_stmt *st = NULL;
    struct enroll_token_info t;
    char id[ENROLL_ID_LEN + 1], want[65], got[65];
    int rc = 0;
    int in_tx = 0;
    int found = 0;

    *verdict = ENROLL_UNKNOWN;
    if (info != NULL) {
        memset(info, 0, sizeof(*info));
    }
    if (token_parse(token, id) < 0 || !wp_pki_name_ok(agent)) {
        return 0;
    }
    if (wp_pki_sha256_hex(token, got) < 0) {
        return WP_ETLS;
    }
    /* IMMEDIATE: a second redeemer (another process) waits instead of reading a stale row */
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        return WP_EDB;
    }
    in_tx = 1;
    if (sqlite3_prepare_v2(s->db, "SELECT " INFO_COLS ", hash FROM enroll_tokens WHERE id = ?", -1,
                           &st, NULL) != SQLITE_OK) {
        rc = WP_EDB;
        goto out;
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        row_info(st, &t);
        copy_col(st, 7, want, sizeof(want));
        found = 1;
    } else if (r != SQLITE_DONE) {
        rc = WP_EDB;
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (!found || strlen(want) != 64 || !wp_pki_ct_equal(want, got, 64)) {
        goto out; /* unknown: the id alone tells nothing, without the secret */
    }
    if (info != NULL) {
        *info = t;
    }
    if (t.used_ms != 0) {
        *verdict = ENROLL_USED;
        goto out;
    }
    if (now_ms >= t.expires_ms) {
        *verdict = ENROLL_EXPIRED;
        goto out;
    }
    if (t.agent[0] != '\0' && strcmp(t.agent, agent) != 0) {
        *verdict = ENROLL_WRONG_AGENT;
        goto out;
    }
    rc = issue != NULL ? issue(arg) : 0;
    if (rc < 0) {
        goto out;
    }
    if (sqlite3_prepare_v2(s->db,
                           "UPDATE enroll_tokens SET used_ms = ?, used_by = ?, used_from = ?"
                           " WHERE id = ? AND used_ms = 0",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = WP_EDB;
        goto out;
    }
    sqlite3_bind_int64(st, 1, now_ms > 0 ? now_ms : 1);
    sqlite3_bind_text(st, 2, agent, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, client != NULL ? client : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, id, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE || sqlite3_changes(s->db) != 1) {
        rc = WP_EDB;
        goto out;
    }
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        rc = WP_EDB;
        goto out;
    }
    in_tx = 0;
    *verdict = ENROLL_OK;
    if (info != NULL) {
        info->used_ms = now_ms;
        snprintf(info->used_by, sizeof(info->used_by), "%s", agent);
    }
out:
    sqlite3_finalize(st);
    if (in_tx) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    }
    mbedtls_platform_zeroize(got, sizeof(got));
    return rc;
}
