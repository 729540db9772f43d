/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for the CA: init, issue, revoke, CRL and list, checked with mbedTLS's X.509 parser. */
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <mbedtls/oid.h>
#include <mbedtls/x509_crl.h>
#include <mbedtls/x509_crt.h>

#include "wp/clock.h"
#include "wp/err.h"
#include "wp/mem.h"
#include "wp/pki.h"

struct fx {
    char root[64];
    char *ca;  /* root/ca */
    char *out; /* root/out */
    char err[256];
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
    struct fx *fx = wp_xcalloc(1, sizeof(*fx));

    strcpy(fx->root, "/tmp/wp-pki-XXXXXX");
    if (mkdtemp(fx->root) == NULL) {
        free(fx);
        return -1;
    }
    fx->ca = wp_xasprintf("%s/ca", fx->root);
    fx->out = wp_xasprintf("%s/out", fx->root);
    if (mkdir(fx->out, 0700) < 0) {
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;

    wp_clock_set_fake(-1);
    nftw(fx->root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(fx->ca);
    free(fx->out);
    free(fx);
    return 0;
}

static char *path2(const char *dir, const char *name)
{
    return wp_xasprintf("%s/%s", dir, name);
}

static mode_t file_mode(const char *path)
{
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 0777;
}

static void load_crt(const char *dir, const char *file, mbedtls_x509_crt *crt)
{
    char *p = path2(dir, file);

    mbedtls_x509_crt_init(crt);
    assert_int_equal(mbedtls_x509_crt_parse_file(crt, p), 0);
    free(p);
}

static void load_crl(const char *dir, mbedtls_x509_crl *crl)
{
    char *p = path2(dir, "crl.pem");

    mbedtls_x509_crl_init(crl);
    assert_int_equal(mbedtls_x509_crl_parse_file(crl, p), 0);
    free(p);
}

static void crt_cn(const mbedtls_x509_crt *crt, char *buf, size_t len)
{
    buf[0] = '\0';
    for (const mbedtls_x509_name *n = &crt->subject; n != NULL; n = n->next) {
        if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0) {
            assert_true(n->val.len < len);
            memcpy(buf, n->val.p, n->val.len);
            buf[n->val.len] = '\0';
        }
    }
}

static int crl_has(const mbedtls_x509_crl *crl, const mbedtls_x509_buf *serial)
{
    for (const mbedtls_x509_crl_entry *e = &crl->entry; e != NULL; e = e->next) {
        if (e->serial.len == serial->len && memcmp(e->serial.p, serial->p, serial->len) == 0) {
            return 1;
        }
    }
    return 0;
}

static time_t x509_time_t(const mbedtls_x509_time *t)
{
    struct tm tm = {
        .tm_year = t->year - 1900,
        .tm_mon = t->mon - 1,
        .tm_mday = t->day,
        .tm_hour = t->hour,
        .tm_min = t->min,
        .tm_sec = t->sec,
    };
    return timegm(&tm);
}

static void init_ca(struct fx *fx)
{
    assert_int_equal(wp_pki_ca_init(fx->ca, "Test Fleet CA", 365, fx->err, sizeof(fx->err)), 0);
}

static void ca_init_creates_a_usable_ca(void **state)
{
    struct fx *fx = *state;
    mbedtls_x509_crt ca;
    mbedtls_x509_crl crl;
    char cn[80];
    char *key = path2(fx->ca, "ca.key");

    init_ca(fx);
    assert_int_equal(file_mode(key), 0600);
    load_crt(fx->ca, "ca.crt", &ca);
    assert_int_equal(ca.ca_istrue, 1);
    crt_cn(&ca, cn, sizeof(cn));
    assert_string_equal(cn, "Test Fleet CA");
    assert_int_equal(mbedtls_x509_crt_check_key_usage(&ca, MBEDTLS_X509_KU_KEY_CERT_SIGN |
                                                               MBEDTLS_X509_KU_CRL_SIGN),
                     0);
    /* self-signed: verifies against itself */
    uint32_t flags = 0;
    assert_int_equal(mbedtls_x509_crt_verify(&ca, &ca, NULL, NULL, &flags, NULL, NULL), 0);

    load_crl(fx->ca, &crl);
    assert_int_equal(crl.version, 2);
    assert_int_equal(crl.entry.serial.len, 0); /* no revocations yet */
    assert_int_equal(crl.issuer_raw.len, ca.subject_raw.len);
    assert_memory_equal(crl.issuer_raw.p, ca.subject_raw.p, ca.subject_raw.len);
    mbedtls_x509_crl_free(&crl);
    mbedtls_x509_crt_free(&ca);
    free(key);
}

static void ca_init_refuses_existing_ca(void **state)
{
    struct fx *fx = *state;

    init_ca(fx);
    assert_int_equal(wp_pki_ca_init(fx->ca, "Again", 365, fx->err, sizeof(fx->err)), -EEXIST);
    assert_non_null(strstr(fx->err, "exists already"));
}

static void ca_init_rejects_bad_input(void **state)
{
    struct fx *fx = *state;

    assert_int_equal(wp_pki_ca_init(fx->ca, "CN=x,O=y", 365, fx->err, sizeof(fx->err)), WP_ECONFIG);
    assert_int_equal(wp_pki_ca_init(fx->ca, "", 365, fx->err, sizeof(fx->err)), WP_ECONFIG);
    assert_int_equal(wp_pki_ca_init(fx->ca, "ok", 0, fx->err, sizeof(fx->err)), WP_ECONFIG);
    assert_int_equal(access(fx->ca, F_OK), -1); /* nothing created */
}

static void issue_client_cert(void **state)
{
    struct fx *fx = *state;
    mbedtls_x509_crt ca;
    mbedtls_x509_crt crt;
    mbedtls_pk_context pk;
    char cn[80];
    uint32_t flags = 0;
    char *key = path2(fx->out, "agent-01.key");

    init_ca(fx);
    assert_int_equal(
        wp_pki_issue(fx->ca, "agent-01", WP_PKI_CLIENT, 30, fx->out, fx->err, sizeof(fx->err)), 0);
    assert_int_equal(file_mode(key), 0600);
    load_crt(fx->ca, "ca.crt", &ca);
    load_crt(fx->out, "agent-01.crt", &crt);
    assert_int_equal(mbedtls_x509_crt_verify(&crt, &ca, NULL, NULL, &flags, NULL, NULL), 0);
    assert_int_equal(flags, 0);
    crt_cn(&crt, cn, sizeof(cn));
    assert_string_equal(cn, "agent-01");
    assert_int_equal(crt.ca_istrue, 0);
    assert_int_equal(crt.serial.len, WP_PKI_SERIAL_LEN);
    assert_int_equal(crt.serial.p[0] & 0x80, 0); /* positive */
    assert_int_equal(mbedtls_x509_crt_check_extended_key_usage(
                         &crt, MBEDTLS_OID_CLIENT_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)),
                     0);
    assert_int_not_equal(
        mbedtls_x509_crt_check_extended_key_usage(&crt, MBEDTLS_OID_SERVER_AUTH,
                                                  MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)),
        0);
    assert_int_equal(mbedtls_x509_crt_check_key_usage(&crt, MBEDTLS_X509_KU_DIGITAL_SIGNATURE), 0);
    assert_int_not_equal(mbedtls_x509_crt_check_key_usage(&crt, MBEDTLS_X509_KU_KEY_CERT_SIGN), 0);
    /* validity: about 30 days from now (back-dated by the skew allowance) */
    time_t now = time(NULL);
    time_t to = x509_time_t(&crt.valid_to);
    assert_true(to > now + 30 * 86400 - 120 && to < now + 30 * 86400 + 120);
    assert_true(x509_time_t(&crt.valid_from) <= now - WP_PKI_SKEW_S + 120);

    mbedtls_pk_init(&pk);
    assert_int_equal(mbedtls_pk_parse_keyfile(&pk, key, NULL), 0);
    assert_int_equal(mbedtls_pk_check_pair(&crt.pk, &pk), 0);
    mbedtls_pk_free(&pk);
    mbedtls_x509_crt_free(&crt);
    mbedtls_x509_crt_free(&ca);
    free(key);
}

static void issue_server_cert_has_san(void **state)
{
    struct fx *fx = *state;
    mbedtls_x509_crt ca;
    mbedtls_x509_crt crt;
    uint32_t flags = 0;

    init_ca(fx);
    /* outdir NULL: into the CA dir */
    assert_int_equal(wp_pki_issue(fx->ca, "collector.example", WP_PKI_SERVER, 30, NULL, fx->err,
                                  sizeof(fx->err)),
                     0);
    load_crt(fx->ca, "ca.crt", &ca);
    load_crt(fx->ca, "collector.example.crt", &crt);
    assert_int_equal(mbedtls_x509_crt_check_extended_key_usage(
                         &crt, MBEDTLS_OID_SERVER_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)),
                     0);
    assert_true(crt.ext_types & MBEDTLS_X509_EXT_SUBJECT_ALT_NAME);
    assert_int_equal(crt.subject_alt_names.buf.len, strlen("collector.example"));
    assert_memory_equal(crt.subject_alt_names.buf.p, "collector.example",
                        strlen("collector.example"));
    assert_int_equal(
        mbedtls_x509_crt_verify(&crt, &ca, NULL, "collector.example", &flags, NULL, NULL), 0);
    assert_int_not_equal(mbedtls_x509_crt_verify(&crt, &ca, NULL, "other", &flags, NULL, NULL), 0);
    assert_true(flags & MBEDTLS_X509_BADCERT_CN_MISMATCH);
    mbedtls_x509_crt_free(&crt);
    mbedtls_x509_crt_free(&ca);
}

static void issue_duplicate_fails(void **state)
{
    struct fx *fx = *state;
    char *other = path2(fx->root, "other");

    init_ca(fx);
    assert_int_equal(
        wp_pki_issue(fx->ca, "web1", WP_PKI_CLIENT, 30, fx->out, fx->err, sizeof(fx->err)), 0);
    assert_int_equal(
        wp_pki_issue(fx->ca, "web1", WP_PKI_CLIENT, 30, fx->out, fx->err, sizeof(fx->err)),
        -EEXIST);
    assert_non_null(strstr(fx->err, "web1 exists already"));
    /* the index refuses it even when the files would go elsewhere */
    assert_int_equal(mkdir(other, 0700), 0);
    assert_int_equal(
        wp_pki_issue(fx->ca, "web1", WP_PKI_SERVER, 30, other, fx->err, sizeof(fx->err)), -EEXIST);
    free(other);
}

static void issue_without_ca_or_bad_name_fails(void **state)
{
    struct fx *fx = *state;

    assert_int_equal(
        wp_pki_issue(fx->ca, "web1", WP_PKI_CLIENT, 30, fx->out, fx->err, sizeof(fx->err)),
        WP_ENOTFOUND);
    assert_non_null(strstr(fx->err, "no CA in"));
    init_ca(fx);
    const char *bad[] = {"",
                         "../x",
                         "-a",
                         "a b",
                         "a/b",
                         ".hidden",
                         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(
            wp_pki_issue(fx->ca, bad[i], WP_PKI_CLIENT, 30, fx->out, fx->err, sizeof(fx->err)),
            WP_ECONFIG);
    }
}

struct listing {
    struct wp_pki_entry e[8];
    size_t n;
};

static int collect(const struct wp_pki_entry *e, void *arg)
{
    struct listing *l = arg;

    assert_true(l->n < 8);
    l->e[l->n++] = *e;
    return 0;
}

static void serial_hex(const mbedtls_x509_buf *s, char *out)
{
    for (size_t i = 0; i < s->len; i++) {
        sprintf(out + 2 * i, "%02x", s->p[i]);
    }
}

static void revoke_updates_crl_and_list(void **state)
{
    struct fx *fx = *state;
    mbedtls_x509_crt ca;
    mbedtls_x509_crt a;
    mbedtls_x509_crt b;
    mbedtls_x509_crl crl;
    struct listing l = {.n = 0};
    uint32_t flags = 0;
    char hex[64];

    init_ca(fx);
    assert_int_equal(
        wp_pki_issue(fx->ca, "a1", WP_PKI_CLIENT, 30, fx->out, fx->err, sizeof(fx->err)), 0);
    assert_int_equal(
        wp_pki_issue(fx->ca, "b1", WP_PKI_SERVER, 30, fx->out, fx->err, sizeof(fx->err)), 0);
    assert_int_equal(wp_pki_revoke(fx->ca, "a1", fx->err, sizeof(fx->err)), 0);

    load_crt(fx->ca, "ca.crt", &ca);
    load_crt(fx->out, "a1.crt", &a);
    load_crt(fx->out, "b1.crt", &b);
    load_crl(fx->ca, &crl);
    assert_true(crl_has(&crl, &a.serial));
    assert_false(crl_has(&crl, &b.serial));
    assert_int_equal(crl.entry.next, NULL); /* exactly one entry */
    /* mbedTLS checks the CRL signature and issuer here: a bad CRL would add BADCRL_* flags */
    assert_int_not_equal(mbedtls_x509_crt_verify(&a, &ca, &crl, NULL, &flags, NULL, NULL), 0);
    assert_int_equal(flags, MBEDTLS_X509_BADCERT_REVOKED);
    assert_int_equal(mbedtls_x509_crt_verify(&b, &ca, &crl, NULL, &flags, NULL, NULL), 0);
    /* thisUpdate lies in the past and nextUpdate ~30 days ahead */
    time_t now = time(NULL);
    assert_true(x509_time_t(&crl.this_update) <= now);
    time_t next = x509_time_t(&crl.next_update);
    assert_true(next > now + WP_PKI_CRL_DAYS * 86400 - 120 &&
                next < now + WP_PKI_CRL_DAYS * 86400 + 120);

    assert_int_equal(wp_pki_list(fx->ca, collect, &l, fx->err, sizeof(fx->err)), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.e[0].name, "a1");
    assert_int_equal(l.e[0].kind, WP_PKI_CLIENT);
    assert_int_equal(l.e[0].status, WP_PKI_REVOKED);
    assert_true(l.e[0].revoked_at > 0);
    serial_hex(&a.serial, hex);
    assert_string_equal(l.e[0].serial_hex, hex);
    assert_string_equal(l.e[1].name, "b1");
    assert_int_equal(l.e[1].kind, WP_PKI_SERVER);
    assert_int_equal(l.e[1].status, WP_PKI_VALID);
    assert_int_equal(l.e[1].revoked_at, 0);
    assert_int_equal((time_t)l.e[1].not_after, x509_time_t(&b.valid_to));

    mbedtls_x509_crl_free(&crl);
    mbedtls_x509_crt_free(&a);
    mbedtls_x509_crt_free(&b);
    mbedtls_x509_crt_free(&ca);
}

static void revoke_unknown_fails(void **state)
{
    struct fx *fx = *state;

    init_ca(fx);
    assert_int_equal(wp_pki_revoke(fx->ca, "ghost", fx->err, sizeof(fx->err)), WP_ENOTFOUND);
    assert_non_null(strstr(fx->err, "ghost"));
    assert_int_equal(
        wp_pki_issue(fx->ca, "once", WP_PKI_CLIENT, 30, fx->out, fx->err, sizeof(fx->err)), 0);
    assert_int_equal(wp_pki_revoke(fx->ca, "once", fx->err, sizeof(fx->err)), 0);
    /* already revoked: nothing valid left under that name */
    assert_int_equal(wp_pki_revoke(fx->ca, "once", fx->err, sizeof(fx->err)), WP_ENOTFOUND);
}

static void revoked_name_can_be_reissued(void **state)
{
    struct fx *fx = *state;
    struct listing l = {.n = 0};
    char *key = path2(fx->out, "re.key");
    char *crt = path2(fx->out, "re.crt");

    init_ca(fx);
    assert_int_equal(
        wp_pki_issue(fx->ca, "re", WP_PKI_CLIENT, 30, fx->out, fx->err, sizeof(fx->err)), 0);
    assert_int_equal(wp_pki_revoke(fx->ca, "re", fx->err, sizeof(fx->err)), 0);
    /* old files still there: refused, and nothing is overwritten */
    assert_int_equal(
        wp_pki_issue(fx->ca, "re", WP_PKI_CLIENT, 30, fx->out, fx->err, sizeof(fx->err)), -EEXIST);
    assert_int_equal(unlink(key), 0);
    assert_int_equal(unlink(crt), 0);
    assert_int_equal(
        wp_pki_issue(fx->ca, "re", WP_PKI_CLIENT, 30, fx->out, fx->err, sizeof(fx->err)), 0);
    assert_int_equal(wp_pki_list(fx->ca, collect, &l, fx->err, sizeof(fx->err)), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.e[0].status, WP_PKI_REVOKED);
    assert_int_equal(l.e[1].status, WP_PKI_VALID);
    assert_string_not_equal(l.e[0].serial_hex, l.e[1].serial_hex);
    free(key);
    free(crt);
}

static void gen_crl_sets_next_update(void **state)
{
    struct fx *fx = *state;
    mbedtls_x509_crl crl;

    init_ca(fx);
    assert_int_equal(wp_pki_gen_crl(fx->ca, 7, fx->err, sizeof(fx->err)), 0);
    load_crl(fx->ca, &crl);
    time_t next = x509_time_t(&crl.next_update);
    time_t now = time(NULL);
    assert_true(next > now + 7 * 86400 - 120 && next < now + 7 * 86400 + 120);
    mbedtls_x509_crl_free(&crl);
    assert_int_equal(wp_pki_gen_crl(fx->ca, 0, fx->err, sizeof(fx->err)), WP_ECONFIG);
}

static void list_without_ca_fails(void **state)
{
    struct fx *fx = *state;
    struct listing l = {.n = 0};

    assert_int_equal(wp_pki_list(fx->ca, collect, &l, fx->err, sizeof(fx->err)), WP_ENOTFOUND);
    assert_non_null(strstr(fx->err, "watchpost ca init"));
}

static void corrupt_index_is_reported(void **state)
{
    struct fx *fx = *state;
    struct listing l = {.n = 0};
    char *ix = path2(fx->ca, "index");
    FILE *fp = NULL;

    init_ca(fx);
    fp = fopen(ix, "a");
    assert_non_null(fp);
    fputs("zz\tclient\t1\tV\t0\tbad\n", fp);
    fclose(fp);
    assert_int_equal(wp_pki_list(fx->ca, collect, &l, fx->err, sizeof(fx->err)), WP_ECORRUPT);
    assert_non_null(strstr(fx->err, ":2:"));
    free(ix);
}

static void secret_helpers(void **state)
{
    const uint8_t bytes[] = {0x00, 0x0f, 0xa5, 0xff};
    uint8_t r1[32], r2[32];
    char h[65];
    char err[16] = "unchanged";

    (void)state;
    wp_pki_hex(bytes, sizeof(bytes), h);
    assert_string_equal(h, "000fa5ff");
    assert_true(wp_pki_is_hex("0123456789abcdef", 16));
    assert_false(wp_pki_is_hex("0123456789abcdeF", 16));
    assert_false(wp_pki_is_hex("g", 1));
    assert_true(wp_pki_is_hex("zz", 0));
    assert_true(wp_pki_ct_equal("abcd", "abcd", 4));
    assert_false(wp_pki_ct_equal("abcd", "abce", 4));
    assert_true(wp_pki_ct_equal("abcd", "abce", 3));
    /* SHA-256("abc"), FIPS 180-2 appendix B.1 */
    assert_int_equal(wp_pki_sha256_hex("abc", h), 0);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(wp_pki_rand_bytes(r1, sizeof(r1)), 0);
    assert_int_equal(wp_pki_rand_bytes(r2, sizeof(r2)), 0);
    assert_memory_not_equal(r1, r2, sizeof(r1)); /* 2^-256 to fail by chance */
    assert_int_equal(wp_pki_rand_bytes(r1, 0), 0);
    /* wp_errf() writes nothing without a buffer, and truncates into a short one */
    wp_errf(NULL, 0, "%s", "x");
    wp_errf(err, 0, "%s", "x");
    assert_string_equal(err, "unchanged");
    wp_errf(err, 4, "%d", 123456);
    assert_string_equal(err, "123");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(ca_init_creates_a_usable_ca, setup, teardown),
        cmocka_unit_test_setup_teardown(ca_init_refuses_existing_ca, setup, teardown),
        cmocka_unit_test_setup_teardown(ca_init_rejects_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(issue_client_cert, setup, teardown),
        cmocka_unit_test_setup_teardown(issue_server_cert_has_san, setup, teardown),
        cmocka_unit_test_setup_teardown(issue_duplicate_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(issue_without_ca_or_bad_name_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(revoke_updates_crl_and_list, setup, teardown),
        cmocka_unit_test_setup_teardown(revoke_unknown_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(revoked_name_can_be_reissued, setup, teardown),
        cmocka_unit_test_setup_teardown(gen_crl_sets_next_update, setup, teardown),
        cmocka_unit_test_setup_teardown(list_without_ca_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(corrupt_index_is_reported, setup, teardown),
        cmocka_unit_test(secret_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
