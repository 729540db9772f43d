/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for enrolment: the token store (single use, expiry, hashing) and issuing from a CSR. */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <mbedtls/md.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>
#include <sqlite3.h>

#include "enroll.h"
#include "wp/err.h"
#include "wp/mem.h"
#include "wp/pki.h"

struct fx {
    char root[64];
    char *db;
    struct enroll_store *s;
    int issued; /* calls of issue_cb */
    int issue_rc;
};

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fx *f = wp_xcalloc(1, sizeof(*f));

    snprintf(f->root, sizeof(f->root), "/tmp/wp-enroll-XXXXXX");
    assert_non_null(mkdtemp(f->root));
    f->db = wp_xasprintf("%s/enroll.db", f->root);
    assert_int_equal(enroll_store_open(f->db, &f->s), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    enroll_store_close(f->s);
    nftw(f->root, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
    free(f->db);
    free(f);
    return 0;
}

static int issue_cb(void *arg)
{
    struct fx *f = arg;

    f->issued++;
    return f->issue_rc;
}

/* redeem and return the verdict (asserting the call itself succeeded) */
static enum enroll_verdict redeem(struct fx *f, const char *tok, const char *agent, int64_t now)
{
    enum enroll_verdict v = ENROLL_OK;

    assert_int_equal(
        enroll_token_redeem(f->s, tok, agent, "127.0.0.1:1", now, issue_cb, f, &v, NULL), 0);
    return v;
}

static void token_is_single_use(void **state)
{
    struct fx *f = *state;
    char tok[ENROLL_TOKEN_LEN + 1], id[ENROLL_ID_LEN + 1];
    struct enroll_token_info info;
    enum enroll_verdict v = ENROLL_UNKNOWN;

    assert_int_equal(enroll_token_add(f->s, NULL, 60000, 1000, tok, sizeof(tok), id), 0);
    assert_int_equal(strlen(tok), ENROLL_TOKEN_LEN);
    assert_int_equal(strncmp(tok, "wpe_", 4), 0);
    assert_int_equal(strncmp(tok + 4, id, ENROLL_ID_LEN), 0);
    assert_int_equal(
        enroll_token_redeem(f->s, tok, "a1", "10.0.0.1:5", 2000, issue_cb, f, &v, &info), 0);
    assert_int_equal(v, ENROLL_OK);
    assert_int_equal(f->issued, 1);
    assert_string_equal(info.id, id);
    /* a second use, by the same or another agent, is refused without issuing */
    assert_int_equal(redeem(f, tok, "a1", 3000), ENROLL_USED);
    assert_int_equal(redeem(f, tok, "a2", 3000), ENROLL_USED);
    assert_int_equal(f->issued, 1);
}

static void token_expires(void **state)
{
    struct fx *f = *state;
    char t1[ENROLL_TOKEN_LEN + 1], t2[ENROLL_TOKEN_LEN + 1], id[ENROLL_ID_LEN + 1];

    assert_int_equal(enroll_token_add(f->s, "", 1000, 10000, t1, sizeof(t1), id), 0);
    assert_int_equal(enroll_token_add(f->s, "", 1000, 10000, t2, sizeof(t2), id), 0);
    assert_int_equal(redeem(f, t1, "a1", 11000), ENROLL_EXPIRED); /* expires_ms itself */
    assert_int_equal(redeem(f, t2, "a1", 10999), ENROLL_OK);
    assert_int_equal(f->issued, 1);
    /* a TTL outside 1 ms .. 366 days, or a bad agent id, is refused */
    assert_int_equal(enroll_token_add(f->s, NULL, 0, 1, t1, sizeof(t1), id), -EINVAL);
    assert_int_equal(enroll_token_add(f->s, NULL, ENROLL_TTL_MAX_MS + 1, 1, t1, sizeof(t1), id),
                     -EINVAL);
    assert_int_equal(enroll_token_add(f->s, "bad/id", 1000, 1, t1, sizeof(t1), id), -EINVAL);
}

static void token_is_stored_hashed(void **state)
{
    struct fx *f = *state;
    char tok[ENROLL_TOKEN_LEN + 1], id[ENROLL_ID_LEN + 1], want[65];
    uint8_t d[32];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    struct stat sb;

    assert_int_equal(enroll_token_add(f->s, "a1", 60000, 1000, tok, sizeof(tok), id), 0);
    assert_int_equal(mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256),
                                (const unsigned char *)tok, strlen(tok), d),
                     0);
    for (size_t i = 0; i < sizeof(d); i++) {
        snprintf(want + 2 * i, 3, "%02x", d[i]);
    }
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT * FROM enroll_tokens", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    /* no column holds the token or its secret part; the hash column is its SHA-256 */
    for (int c = 0; c < sqlite3_column_count(st); c++) {
        const char *v = (const char *)sqlite3_column_text(st, c);
        if (v == NULL) {
            continue;
        }
        assert_null(strstr(v, tok + 4 + ENROLL_ID_LEN + 1));
        if (strcmp(sqlite3_column_name(st, c), "hash") == 0) {
            assert_string_equal(v, want);
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    assert_int_equal(stat(f->db, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
}

static void token_refusals(void **state)
{
    struct fx *f = *state;
    char tok[ENROLL_TOKEN_LEN + 1], id[ENROLL_ID_LEN + 1], bad[ENROLL_TOKEN_LEN + 1];

    assert_int_equal(enroll_token_add(f->s, "a1", 60000, 1000, tok, sizeof(tok), id), 0);
    /* the right id with a wrong secret is unknown, like garbage */
    memcpy(bad, tok, sizeof(bad));
    bad[ENROLL_TOKEN_LEN - 1] = bad[ENROLL_TOKEN_LEN - 1] == '0' ? '1' : '0';
    assert_int_equal(redeem(f, bad, "a1", 2000), ENROLL_UNKNOWN);
    assert_int_equal(redeem(f, "wpe_x", "a1", 2000), ENROLL_UNKNOWN);
    assert_int_equal(redeem(f, "", "a1", 2000), ENROLL_UNKNOWN);
    bad[ENROLL_TOKEN_LEN - 1] = 'A'; /* not lowercase hex */
    assert_int_equal(redeem(f, bad, "a1", 2000), ENROLL_UNKNOWN);
    /* bound to a1: a2 is refused, a bad agent id is refused before any lookup */
    assert_int_equal(redeem(f, tok, "a2", 2000), ENROLL_WRONG_AGENT);
    assert_int_equal(redeem(f, tok, "../a1", 2000), ENROLL_UNKNOWN);
    assert_int_equal(f->issued, 0);
    /* a failed issue leaves the token unused */
    f->issue_rc = -EIO;
    enum enroll_verdict v = ENROLL_OK;
    assert_int_equal(enroll_token_redeem(f->s, tok, "a1", "c", 2000, issue_cb, f, &v, NULL), -EIO);
    f->issue_rc = 0;
    assert_int_equal(redeem(f, tok, "a1", 2000), ENROLL_OK);
    assert_int_equal(f->issued, 2);
}

static int count_cb(void *arg, const struct enroll_token_info *t)
{
    int *n = arg;

    (*n)++;
    if (t->used_ms != 0) {
        assert_string_equal(t->used_by, "a1");
        assert_string_equal(t->used_from, "127.0.0.1:1");
    }
    return 0;
}

static void token_list_del_prune(void **state)
{
    struct fx *f = *state;
    char tok[ENROLL_TOKEN_LEN + 1], id1[ENROLL_ID_LEN + 1], id2[ENROLL_ID_LEN + 1];
    char id3[ENROLL_ID_LEN + 1];
    int n = 0;

    assert_int_equal(enroll_token_add(f->s, NULL, 60000, 1000, tok, sizeof(tok), id1), 0);
    assert_int_equal(redeem(f, tok, "a1", 2000), ENROLL_OK);
    assert_int_equal(enroll_token_add(f->s, NULL, 60000, 1000, tok, sizeof(tok), id2), 0);
    assert_int_equal(enroll_token_add(f->s, NULL, 1000, 1000, tok, sizeof(tok), id3), 0);
    assert_int_equal(enroll_token_each(f->s, count_cb, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(enroll_token_del(f->s, id2), 0);
    assert_int_equal(enroll_token_del(f->s, id2), WP_ENOTFOUND);
    assert_int_equal(enroll_token_del(f->s, "nothex"), WP_ENOTFOUND);
    /* used (id1) and expired (id3) go */
    assert_int_equal(enroll_token_prune(f->s, 5000, 0), 2);
    n = 0;
    assert_int_equal(enroll_token_each(f->s, count_cb, &n), 0);
    assert_int_equal(n, 0);
}

/* ---- issuing from a CSR (common/pki.c) ---- */

static void issue_from_csr(void **state)
{
    struct fx *f = *state;
    char err[256] = "";
    char *ca = wp_xasprintf("%s/ca", f->root);
    char *key = NULL, *csr = NULL, *crt = NULL, *cap = NULL, *crt2 = NULL;
    struct wp_pki_entry e;
    mbedtls_x509_crt c, anchor;
    mbedtls_pk_context pk;
    uint32_t flags = 0;
    char fp1[65], fp2[65], subj[128];

    assert_int_equal(wp_pki_ca_init(ca, "test CA", 30, err, sizeof(err)), 0);
    assert_int_equal(wp_pki_csr_new("agent-1", &key, &csr, err, sizeof(err)), 0);
    assert_non_null(strstr(csr, "BEGIN CERTIFICATE REQUEST"));
    assert_int_equal(
        wp_pki_issue_csr(ca, "agent-1", csr, strlen(csr), 10, &crt, &cap, &e, err, sizeof(err)), 0);
    assert_string_equal(e.name, "agent-1");
    assert_int_equal(e.kind, WP_PKI_CLIENT);

    mbedtls_x509_crt_init(&c);
    mbedtls_x509_crt_init(&anchor);
    mbedtls_pk_init(&pk);
    assert_int_equal(mbedtls_x509_crt_parse(&c, (const unsigned char *)crt, strlen(crt) + 1), 0);
    assert_int_equal(mbedtls_x509_crt_parse(&anchor, (const unsigned char *)cap, strlen(cap) + 1),
                     0);
    assert_int_equal(mbedtls_x509_crt_verify(&c, &anchor, NULL, NULL, &flags, NULL, NULL), 0);
    assert_int_equal(
        mbedtls_pk_parse_key(&pk, (const unsigned char *)key, strlen(key) + 1, NULL, 0), 0);
    assert_int_equal(mbedtls_pk_check_pair(&c.pk, &pk), 0);
    assert_true(mbedtls_x509_dn_gets(subj, sizeof(subj), &c.subject) > 0);
    assert_string_equal(subj, "CN=agent-1");
    assert_true(mbedtls_x509_crt_check_extended_key_usage(
                    &c, MBEDTLS_OID_CLIENT_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)) == 0);
    mbedtls_x509_crt_free(&c);
    mbedtls_x509_crt_free(&anchor);
    mbedtls_pk_free(&pk);

    /* the CA PEM returned has the fingerprint of ca.crt */
    char *cpath = wp_xasprintf("%s/ca.crt", ca);
    FILE *fp = fopen(cpath, "re");
    char buf[4096];
    size_t n = fread(buf, 1, sizeof(buf), fp);
    fclose(fp);
    assert_int_equal(wp_pki_fingerprint(buf, n, fp1), 0);
    assert_int_equal(wp_pki_fingerprint(cap, strlen(cap), fp2), 0);
    assert_string_equal(fp1, fp2);
    assert_int_equal(strlen(fp1), 64);

    /* a second valid certificate for the same name: -EEXIST */
    assert_int_equal(
        wp_pki_issue_csr(ca, "agent-1", csr, strlen(csr), 10, &crt2, NULL, NULL, err, sizeof(err)),
        -EEXIST);
    assert_null(crt2);
    /* after a revoke it may be issued again */
    assert_int_equal(wp_pki_revoke(ca, "agent-1", err, sizeof(err)), 0);
    assert_int_equal(
        wp_pki_issue_csr(ca, "agent-1", csr, strlen(csr), 10, &crt2, NULL, NULL, err, sizeof(err)),
        0);
    free(crt2);
    crt2 = NULL;

    /* a tampered CSR (signature no longer verifies), garbage, an oversize CSR: -EINVAL */
    char *bad = wp_xstrdup(csr);
    char *body = strstr(bad, "\n") + 1;
    body[40] = body[40] == 'A' ? 'B' : 'A';
    assert_int_equal(
        wp_pki_issue_csr(ca, "agent-2", bad, strlen(bad), 10, &crt2, NULL, NULL, err, sizeof(err)),
        -EINVAL);
    assert_int_equal(
        wp_pki_issue_csr(ca, "agent-2", "junk", 4, 10, &crt2, NULL, NULL, err, sizeof(err)),
        -EINVAL);
    assert_int_equal(wp_pki_issue_csr(ca, "agent-2", csr, WP_PKI_CSR_MAX + 1, 10, &crt2, NULL, NULL,
                                      err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(
        wp_pki_issue_csr(ca, "bad name", csr, strlen(csr), 10, &crt2, NULL, NULL, err, sizeof(err)),
        WP_ECONFIG);
    assert_null(crt2);
    /* `watchpost ca issue` still works beside it */
    assert_int_equal(wp_pki_issue(ca, "agent-3", WP_PKI_CLIENT, 10, NULL, err, sizeof(err)), 0);

    free(bad);
    free(cpath);
    free(key);
    free(csr);
    free(crt);
    free(cap);
    free(ca);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(token_is_single_use, setup, teardown),
        cmocka_unit_test_setup_teardown(token_expires, setup, teardown),
        cmocka_unit_test_setup_teardown(token_is_stored_hashed, setup, teardown),
        cmocka_unit_test_setup_teardown(token_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(token_list_del_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(issue_from_csr, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
