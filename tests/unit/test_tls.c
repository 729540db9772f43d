/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for mutual TLS over memory buffers: handshakes, refusals, data, resumption, CRL. */
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

#include <mbedtls/sha256.h>
#include <mbedtls/x509_crt.h>

#include "wp/buf.h"
#include "wp/clock.h"
#include "wp/err.h"
#include "wp/mem.h"
#include "wp/pki.h"
#include "wp/tls.h"

#define SERVER_NAME  "collector.test"
#define SUITE_CHACHA "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256"

struct fx {
    char root[64];
    char *ca;   /* the fleet CA: root/ca, certificates issued into it */
    char *ca2;  /* another CA: root/ca2 */
    char *tkey; /* root/ticket.key */
    char err[256];
};

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* The PKI is built once (issuing fsyncs a lot) and copied into each test's directory. */
static char g_template[64];

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    FILE *out = fopen(to, "wb");
    char buf[4096];
    size_t n = 0;
    struct stat st;

    assert_non_null(in);
    assert_non_null(out);
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
        assert_int_equal(fwrite(buf, 1, n, out), n);
    }
    assert_int_equal(fclose(out), 0);
    assert_int_equal(fstat(fileno(in), &st), 0);
    assert_int_equal(chmod(to, st.st_mode & 0777), 0);
    fclose(in);
}

static void copy_dir(const char *from, const char *to)
{
    const char *files[] = {"ca.crt",           "ca.key",           "index",      "crl.pem",
                           SERVER_NAME ".crt", SERVER_NAME ".key", "agent1.crt", "agent1.key",
                           "agent2.crt",       "agent2.key",       "rogue.crt",  "rogue.key"};

    assert_int_equal(mkdir(to, 0700), 0);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char *src = wp_xasprintf("%s/%s", from, files[i]);
        char *dst = wp_xasprintf("%s/%s", to, files[i]);
        if (access(src, F_OK) == 0) {
            copy_file(src, dst);
        }
        free(src);
        free(dst);
    }
}

static int group_setup(void **state)
{
    char err[256];
    char *ca = NULL;
    char *ca2 = NULL;
    int rc = 0;

    (void)state;
    strcpy(g_template, "/tmp/wp-tls-tpl-XXXXXX");
    if (mkdtemp(g_template) == NULL) {
        return -1;
    }
    ca = wp_xasprintf("%s/ca", g_template);
    ca2 = wp_xasprintf("%s/ca2", g_template);
    if (wp_pki_ca_init(ca, "Fleet CA", 365, err, sizeof(err)) != 0 ||
        wp_pki_issue(ca, SERVER_NAME, WP_PKI_SERVER, 30, NULL, err, sizeof(err)) != 0 ||
        wp_pki_issue(ca, "agent1", WP_PKI_CLIENT, 30, NULL, err, sizeof(err)) != 0 ||
        wp_pki_issue(ca, "agent2", WP_PKI_CLIENT, 30, NULL, err, sizeof(err)) != 0 ||
        wp_pki_ca_init(ca2, "Other CA", 365, err, sizeof(err)) != 0 ||
        wp_pki_issue(ca2, "rogue", WP_PKI_CLIENT, 30, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "group setup: %s\n", err);
        rc = -1;
    }
    free(ca);
    free(ca2);
    return rc;
}

static int group_teardown(void **state)
{
    (void)state;
    nftw(g_template, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static int setup(void **state)
{
    struct fx *fx = wp_xcalloc(1, sizeof(*fx));
    char *from = NULL;

    strcpy(fx->root, "/tmp/wp-tls-XXXXXX");
    if (mkdtemp(fx->root) == NULL) {
        return -1;
    }
    fx->ca = wp_xasprintf("%s/ca", fx->root);
    fx->ca2 = wp_xasprintf("%s/ca2", fx->root);
    fx->tkey = wp_xasprintf("%s/ticket.key", fx->root);
    from = wp_xasprintf("%s/ca", g_template);
    copy_dir(from, fx->ca);
    free(from);
    from = wp_xasprintf("%s/ca2", g_template);
    copy_dir(from, fx->ca2);
    free(from);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;

    wp_clock_set_fake(-1);
    nftw(fx->root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(fx->ca);
    free(fx->ca2);
    free(fx->tkey);
    free(fx);
    return 0;
}

/* A context for certificate `name` issued by the CA in cadir, trusting the fleet CA. */
static struct wp_tls_ctx *ctx_for(struct fx *fx, const char *cadir, const char *name, int is_server,
                                  const char *ticket_key)
{
    char *ca = wp_xasprintf("%s/ca.crt", fx->ca);
    char *crt = wp_xasprintf("%s/%s.crt", cadir, name);
    char *key = wp_xasprintf("%s/%s.key", cadir, name);
    char *crl = wp_xasprintf("%s/crl.pem", fx->ca);
    struct wp_tls_opts o = {
        .ca_path = ca,
        .cert_path = crt,
        .key_path = key,
        .crl_path = crl,
        .ticket_key_path = ticket_key,
        .is_server = is_server,
    };
    struct wp_tls_ctx *ctx = NULL;
    int rc = wp_tls_ctx_new(&o, fx->err, sizeof(fx->err), &ctx);

    if (rc != 0) {
        fprintf(stderr, "ctx_for %s: %s\n", name, fx->err);
    }
    assert_int_equal(rc, 0);
    assert_non_null(ctx);
    free(ca);
    free(crt);
    free(key);
    free(crl);
    return ctx;
}

static size_t move(struct wp_tls_conn *from, struct wp_tls_conn *to)
{
    struct wp_buf *b = wp_tls_outbuf(from);
    size_t n = wp_buf_unread(b);

    if (n > 0) {
        wp_tls_feed(to, wp_buf_head(b), n);
        wp_buf_consume(b, n);
    }
    return n;
}

/* Run both handshakes, shuttling bytes, until neither side has anything more to say. */
static void pump(struct wp_tls_conn *cli, struct wp_tls_conn *srv, int *rc_cli, int *rc_srv)
{
    *rc_cli = WP_EAGAIN;
    *rc_srv = WP_EAGAIN;
    for (int i = 0; i < 32; i++) {
        if (*rc_cli == WP_EAGAIN) {
            *rc_cli = wp_tls_handshake(cli);
        }
        size_t moved = move(cli, srv);
        if (*rc_srv == WP_EAGAIN) {
            *rc_srv = wp_tls_handshake(srv);
        }
        moved += move(srv, cli);
        if (moved == 0) {
            return;
        }
    }
    fail_msg("handshake did not settle");
}

struct pair {
    struct wp_tls_conn *cli;
    struct wp_tls_conn *srv;
    int rc_cli;
    int rc_srv;
};

static void connect_pair(struct wp_tls_ctx *cctx, struct wp_tls_ctx *sctx, const char *name,
                         struct pair *p)
{
    assert_int_equal(wp_tls_conn_new(cctx, name, &p->cli), 0);
    assert_int_equal(wp_tls_conn_new(sctx, NULL, &p->srv), 0);
    pump(p->cli, p->srv, &p->rc_cli, &p->rc_srv);
}

static void pair_free(struct pair *p)
{
    wp_tls_conn_free(p->cli);
    wp_tls_conn_free(p->srv);
    memset(p, 0, sizeof(*p));
}

static void expect_ok(struct pair *p)
{
    if (p->rc_cli != 0 || p->rc_srv != 0) {
        fail_msg("handshake: client %d (%s), server %d (%s)", p->rc_cli, wp_tls_last_error(p->cli),
                 p->rc_srv, wp_tls_last_error(p->srv));
    }
}

static void assert_peer_cn(struct wp_tls_conn *c, const char *want)
{
    char cn[80];

    assert_int_equal(wp_tls_peer_cn(c, cn, sizeof(cn)), 0);
    assert_string_equal(cn, want);
}

static void load_serial(struct fx *fx, const char *name, uint8_t *serial, size_t *len)
{
    mbedtls_x509_crt crt;
    char *path = wp_xasprintf("%s/%s.crt", fx->ca, name);

    mbedtls_x509_crt_init(&crt);
    assert_int_equal(mbedtls_x509_crt_parse_file(&crt, path), 0);
    assert_true(crt.serial.len <= *len);
    memcpy(serial, crt.serial.p, crt.serial.len);
    *len = crt.serial.len;
    mbedtls_x509_crt_free(&crt);
    free(path);
}

static void revoke_and_reload(struct fx *fx, const char *name, struct wp_tls_ctx *sctx)
{
    assert_int_equal(wp_pki_revoke(fx->ca, name, fx->err, sizeof(fx->err)), 0);
    assert_int_equal(wp_tls_ctx_reload_crl(sctx, fx->err, sizeof(fx->err)), 1);
    assert_int_equal(wp_tls_ctx_reload_crl(sctx, fx->err, sizeof(fx->err)), 0);
}

static void good_pair_handshakes(void **state)
{
    struct fx *fx = *state;
    struct wp_tls_ctx *sctx = ctx_for(fx, fx->ca, SERVER_NAME, 1, NULL);
    struct wp_tls_ctx *cctx = ctx_for(fx, fx->ca, "agent1", 0, NULL);
    struct pair p;
    mbedtls_x509_crt crt;
    unsigned char hash[32];
    char want[65];
    char fp[65];
    uint8_t serial[32];
    size_t slen = sizeof(serial);
    char *path = wp_xasprintf("%s/agent1.crt", fx->ca);

    connect_pair(cctx, sctx, SERVER_NAME, &p);
    expect_ok(&p);
    assert_peer_cn(p.srv, "agent1");
    assert_peer_cn(p.cli, SERVER_NAME);
    assert_string_equal(wp_tls_suite(p.srv), SUITE_CHACHA);
    assert_string_equal(wp_tls_suite(p.cli), SUITE_CHACHA);
    assert_int_equal(wp_tls_resumed(p.srv), 0);
    assert_int_equal(wp_tls_resumed(p.cli), 0);

    /* fingerprint and serial describe agent1.crt */
    mbedtls_x509_crt_init(&crt);
    assert_int_equal(mbedtls_x509_crt_parse_file(&crt, path), 0);
    assert_int_equal(mbedtls_sha256_ret(crt.raw.p, crt.raw.len, hash, 0), 0);
    for (int i = 0; i < 32; i++) {
        sprintf(want + 2 * i, "%02x", hash[i]);
    }
    assert_int_equal(wp_tls_peer_fingerprint(p.srv, fp), 0);
    assert_string_equal(fp, want);
    assert_int_equal(wp_tls_peer_serial(p.srv, serial, &slen), 0);
    assert_int_equal(slen, crt.serial.len);
    assert_memory_equal(serial, crt.serial.p, slen);
    slen = 4;
    assert_int_equal(wp_tls_peer_serial(p.srv, serial, &slen), -ENOSPC);
    char small[4];
    assert_int_equal(wp_tls_peer_cn(p.srv, small, sizeof(small)), -ENOSPC);

    mbedtls_x509_crt_free(&crt);
    free(path);
    pair_free(&p);
    wp_tls_ctx_free(cctx);
    wp_tls_ctx_free(sctx);
}

static void read_all(struct wp_tls_conn *c, uint8_t *buf, size_t len)
{
    size_t got = 0;

    /* bounded: every successful read returns at least one byte */
    while (got < len) {
        ssize_t n = wp_tls_read(c, buf + got, len - got);
        if (n == WP_EAGAIN) {
            fail_msg("short read: %zu of %zu", got, len);
        }
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_int_equal(wp_tls_read(c, buf, 1), WP_EAGAIN);
}

static void data_round_trip(void **state)
{
    struct fx *fx = *state;
    struct wp_tls_ctx *sctx = ctx_for(fx, fx->ca, SERVER_NAME, 1, NULL);
    struct wp_tls_ctx *cctx = ctx_for(fx, fx->ca, "agent1", 0, NULL);
    struct pair p;
    const size_t big = 100 * 1024;
    uint8_t *tx = wp_xmalloc(big);
    uint8_t *rx = wp_xmalloc(big);
    uint8_t small[16];

    for (size_t i = 0; i < big; i++) {
        tx[i] = (uint8_t)(i * 31 + (i >> 8));
    }
    connect_pair(cctx, sctx, SERVER_NAME, &p);
    expect_ok(&p);

    assert_int_equal(wp_tls_read(p.srv, small, sizeof(small)), WP_EAGAIN);
    assert_int_equal(wp_tls_write(p.cli, "hello", 5), 0);
    /* a partial record is not readable yet */
    struct wp_buf *ob = wp_tls_outbuf(p.cli);
    size_t n = wp_buf_unread(ob);
    assert_true(n > 5);
    wp_tls_feed(p.srv, wp_buf_head(ob), n - 1);
    assert_int_equal(wp_tls_read(p.srv, small, sizeof(small)), WP_EAGAIN);
    wp_tls_feed(p.srv, wp_buf_head(ob) + n - 1, 1);
    wp_buf_consume(ob, n);
    assert_int_equal(wp_tls_read(p.srv, small, sizeof(small)), 5);
    assert_memory_equal(small, "hello", 5);

    /* 100 KiB each way: several records in one write */
    assert_int_equal(wp_tls_write(p.srv, tx, big), 0);
    assert_true(wp_buf_unread(wp_tls_outbuf(p.srv)) > big);
    move(p.srv, p.cli);
    read_all(p.cli, rx, big);
    assert_memory_equal(rx, tx, big);
    memset(rx, 0, big);
    assert_int_equal(wp_tls_write(p.cli, tx, big), 0);
    move(p.cli, p.srv);
    read_all(p.srv, rx, big);
    assert_memory_equal(rx, tx, big);

    wp_tls_close_notify(p.cli);
    move(p.cli, p.srv);
    assert_int_equal(wp_tls_read(p.srv, small, sizeof(small)), WP_ECLOSED);

    free(tx);
    free(rx);
    pair_free(&p);
    wp_tls_ctx_free(cctx);
    wp_tls_ctx_free(sctx);
}

static void client_from_other_ca_is_refused(void **state)
{
    struct fx *fx = *state;
    struct wp_tls_ctx *sctx = ctx_for(fx, fx->ca, SERVER_NAME, 1, NULL);
    struct wp_tls_ctx *cctx = ctx_for(fx, fx->ca2, "rogue", 0, NULL);
    struct pair p;

    connect_pair(cctx, sctx, SERVER_NAME, &p);
    assert_int_equal(p.rc_srv, WP_EAUTH);
    assert_non_null(strstr(wp_tls_last_error(p.srv), "not correctly signed by the trusted CA"));
    /* the client learns it was refused from the alert */
    assert_int_equal(p.rc_cli, WP_EAUTH);
    assert_non_null(strstr(wp_tls_last_error(p.cli), "alert"));
    /* the refused certificate's CN is still there for the log line */
    assert_peer_cn(p.srv, "rogue");
    /* and a failed handshake stays failed */
    assert_int_equal(wp_tls_handshake(p.srv), WP_EAUTH);
    assert_int_equal(wp_tls_write(p.srv, "x", 1), WP_EAUTH);
    pair_free(&p);
    wp_tls_ctx_free(cctx);
    wp_tls_ctx_free(sctx);
}

static void wrong_server_name_is_refused(void **state)
{
    struct fx *fx = *state;
    struct wp_tls_ctx *sctx = ctx_for(fx, fx->ca, SERVER_NAME, 1, NULL);
    struct wp_tls_ctx *cctx = ctx_for(fx, fx->ca, "agent1", 0, NULL);
    struct pair p;

    connect_pair(cctx, sctx, "imposter.test", &p);
    assert_int_equal(p.rc_cli, WP_EAUTH);
    assert_non_null(strstr(wp_tls_last_error(p.cli), "Common Name"));
    assert_int_not_equal(p.rc_srv, 0);
    pair_free(&p);
    wp_tls_ctx_free(cctx);
    wp_tls_ctx_free(sctx);
}

static void ctx_checks_key_usage(void **state)
{
    struct fx *fx = *state;
    struct wp_tls_ctx *ctx = NULL;
    char *ca = wp_xasprintf("%s/ca.crt", fx->ca);
    char *crt = wp_xasprintf("%s/agent2.crt", fx->ca);
    char *key = wp_xasprintf("%s/agent2.key", fx->ca);
    char *scrt = wp_xasprintf("%s/%s.crt", fx->ca, SERVER_NAME);
    char *skey = wp_xasprintf("%s/%s.key", fx->ca, SERVER_NAME);
    struct wp_tls_opts o = {.ca_path = ca, .cert_path = crt, .key_path = key, .is_server = 1};

    /* agent2 has extendedKeyUsage clientAuth only: it cannot serve */
    assert_int_equal(wp_tls_ctx_new(&o, fx->err, sizeof(fx->err), &ctx), WP_ETLS);
    assert_non_null(strstr(fx->err, "not for server use"));
    /* and a server certificate cannot be a client */
    o.cert_path = scrt;
    o.key_path = skey;
    o.is_server = 0;
    assert_int_equal(wp_tls_ctx_new(&o, fx->err, sizeof(fx->err), &ctx), WP_ETLS);
    assert_non_null(strstr(fx->err, "not for client use"));
    assert_null(ctx);
    free(ca);
    free(crt);
    free(key);
    free(scrt);
    free(skey);
}

static void revoked_client_is_refused(void **state)
{
    struct fx *fx = *state;
    struct wp_tls_ctx *sctx = ctx_for(fx, fx->ca, SERVER_NAME, 1, NULL);
    struct wp_tls_ctx *cctx = ctx_for(fx, fx->ca, "agent1", 0, NULL);
    struct wp_tls_ctx *cctx2 = ctx_for(fx, fx->ca, "agent2", 0, NULL);
    struct pair p;
    uint8_t s1[32];
    uint8_t s2[32];
    size_t l1 = sizeof(s1);
    size_t l2 = sizeof(s2);

    load_serial(fx, "agent1", s1, &l1);
    load_serial(fx, "agent2", s2, &l2);
    assert_int_equal(wp_tls_ctx_is_revoked(sctx, s1, l1), 0);
    revoke_and_reload(fx, "agent1", sctx);
    assert_int_equal(wp_tls_ctx_is_revoked(sctx, s1, l1), 1);
    assert_int_equal(wp_tls_ctx_is_revoked(sctx, s2, l2), 0);

    connect_pair(cctx, sctx, SERVER_NAME, &p);
    assert_int_equal(p.rc_srv, WP_EAUTH);
    assert_non_null(strstr(wp_tls_last_error(p.srv), "revoked"));
    assert_int_equal(p.rc_cli, WP_EAUTH);
    pair_free(&p);
    /* others still get in */
    connect_pair(cctx2, sctx, SERVER_NAME, &p);
    expect_ok(&p);
    pair_free(&p);
    wp_tls_ctx_free(cctx);
    wp_tls_ctx_free(cctx2);
    wp_tls_ctx_free(sctx);
}

static void expired_client_is_refused(void **state)
{
    struct fx *fx = *state;
    struct wp_tls_ctx *sctx = ctx_for(fx, fx->ca, SERVER_NAME, 1, NULL);
    struct wp_tls_ctx *cctx = NULL;
    struct pair p;

    /* issued ten days ago for one day */
    wp_clock_set_fake(wp_clock_now_ms() - 10LL * 86400 * 1000);
    assert_int_equal(wp_pki_issue(fx->ca, "old", WP_PKI_CLIENT, 1, NULL, fx->err, sizeof(fx->err)),
                     0);
    wp_clock_set_fake(-1);
    cctx = ctx_for(fx, fx->ca, "old", 0, NULL);
    connect_pair(cctx, sctx, SERVER_NAME, &p);
    assert_int_equal(p.rc_srv, WP_EAUTH);
    assert_non_null(strstr(wp_tls_last_error(p.srv), "expired"));
    pair_free(&p);
    wp_tls_ctx_free(cctx);
    wp_tls_ctx_free(sctx);
}

static void session_resumes_with_same_ctx(void **state)
{
    struct fx *fx = *state;
    struct wp_tls_ctx *sctx = ctx_for(fx, fx->ca, SERVER_NAME, 1, NULL);
    struct wp_tls_ctx *cctx = ctx_for(fx, fx->ca, "agent1", 0, NULL);
    struct pair p;
    char fp1[65];
    char fp2[65];

    connect_pair(cctx, sctx, SERVER_NAME, &p);
    expect_ok(&p);
    assert_int_equal(wp_tls_resumed(p.srv), 0);
    assert_int_equal(wp_tls_peer_fingerprint(p.srv, fp1), 0);
    pair_free(&p);

    connect_pair(cctx, sctx, SERVER_NAME, &p);
    expect_ok(&p);
    assert_int_equal(wp_tls_resumed(p.srv), 1);
    assert_int_equal(wp_tls_resumed(p.cli), 1);
    assert_peer_cn(p.srv, "agent1");
    assert_peer_cn(p.cli, SERVER_NAME);
    assert_int_equal(wp_tls_peer_fingerprint(p.srv, fp2), 0);
    assert_string_equal(fp1, fp2);
    assert_string_equal(wp_tls_suite(p.srv), SUITE_CHACHA);
    /* data still flows on a resumed session */
    uint8_t buf[8];
    assert_int_equal(wp_tls_write(p.cli, "resumed", 7), 0);
    move(p.cli, p.srv);
    assert_int_equal(wp_tls_read(p.srv, buf, sizeof(buf)), 7);
    assert_memory_equal(buf, "resumed", 7);
    pair_free(&p);

    /* the session is only offered to the server name it was made with */
    connect_pair(cctx, sctx, NULL, &p);
    expect_ok(&p);
    assert_int_equal(wp_tls_resumed(p.srv), 0);
    pair_free(&p);
    wp_tls_ctx_free(cctx);
    wp_tls_ctx_free(sctx);
}

static void session_survives_server_restart(void **state)
{
    struct fx *fx = *state;
    struct wp_tls_ctx *sctx = ctx_for(fx, fx->ca, SERVER_NAME, 1, fx->tkey);
    struct wp_tls_ctx *cctx = ctx_for(fx, fx->ca, "agent1", 0, NULL);
    struct pair p;
    struct stat st;

    connect_pair(cctx, sctx, SERVER_NAME, &p);
    expect_ok(&p);
    pair_free(&p);
    assert_int_equal(stat(fx->tkey, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 32);
    wp_tls_ctx_free(sctx);

    /* "restart": a new context reading the same key file accepts the old ticket */
    sctx = ctx_for(fx, fx->ca, SERVER_NAME, 1, fx->tkey);
    connect_pair(cctx, sctx, SERVER_NAME, &p);
    expect_ok(&p);
    assert_int_equal(wp_tls_resumed(p.srv), 1);
    assert_peer_cn(p.srv, "agent1");
    pair_free(&p);
    wp_tls_ctx_free(sctx);

    /* a server with another ticket key falls back to a full handshake */
    sctx = ctx_for(fx, fx->ca, SERVER_NAME, 1, NULL);
    connect_pair(cctx, sctx, SERVER_NAME, &p);
    expect_ok(&p);
    assert_int_equal(wp_tls_resumed(p.srv), 0);
    assert_peer_cn(p.srv, "agent1");
    pair_free(&p);
    wp_tls_ctx_free(sctx);
    wp_tls_ctx_free(cctx);
}

static void expired_ticket_means_full_handshake(void **state)
{
    struct fx *fx = *state;
    struct wp_tls_ctx *sctx = ctx_for(fx, fx->ca, SERVER_NAME, 1, NULL);
    struct wp_tls_ctx *cctx = ctx_for(fx, fx->ca, "agent1", 0, NULL);
    struct pair p;

    connect_pair(cctx, sctx, SERVER_NAME, &p);
    expect_ok(&p);
    pair_free(&p);
    wp_clock_set_fake(wp_clock_now_ms() + 25LL * 3600 * 1000);
    connect_pair(cctx, sctx, SERVER_NAME, &p);
    expect_ok(&p);
    assert_int_equal(wp_tls_resumed(p.srv), 0);
    pair_free(&p);
    wp_clock_set_fake(-1);
    wp_tls_ctx_free(cctx);
    wp_tls_ctx_free(sctx);
}

static void resumed_session_of_revoked_client_is_refused(void **state)
{
    struct fx *fx = *state;
    struct wp_tls_ctx *sctx = ctx_for(fx, fx->ca, SERVER_NAME, 1, fx->tkey);
    struct wp_tls_ctx *cctx = ctx_for(fx, fx->ca, "agent1", 0, NULL);
    struct pair p;

    connect_pair(cctx, sctx, SERVER_NAME, &p);
    expect_ok(&p);
    pair_free(&p);
    revoke_and_reload(fx, "agent1", sctx);
    connect_pair(cctx, sctx, SERVER_NAME, &p);
    assert_int_equal(p.rc_srv, WP_EAUTH);
    assert_int_equal(wp_tls_resumed(p.srv), 0);
    pair_free(&p);

    /* same after a restart with the persistent ticket key */
    wp_tls_ctx_free(sctx);
    sctx = ctx_for(fx, fx->ca, SERVER_NAME, 1, fx->tkey);
    connect_pair(cctx, sctx, SERVER_NAME, &p);
    assert_int_equal(p.rc_srv, WP_EAUTH);
    pair_free(&p);
    wp_tls_ctx_free(cctx);
    wp_tls_ctx_free(sctx);
}

static void revocation_during_resumed_handshake(void **state)
{
    struct fx *fx = *state;
    struct wp_tls_ctx *sctx = ctx_for(fx, fx->ca, SERVER_NAME, 1, NULL);
    struct wp_tls_ctx *cctx = ctx_for(fx, fx->ca, "agent1", 0, NULL);
    struct pair p;

    connect_pair(cctx, sctx, SERVER_NAME, &p);
    expect_ok(&p);
    pair_free(&p);

    /* ClientHello with the ticket; the server accepts it and sends its Finished */
    assert_int_equal(wp_tls_conn_new(cctx, SERVER_NAME, &p.cli), 0);
    assert_int_equal(wp_tls_conn_new(sctx, NULL, &p.srv), 0);
    assert_int_equal(wp_tls_handshake(p.cli), WP_EAGAIN);
    move(p.cli, p.srv);
    assert_int_equal(wp_tls_handshake(p.srv), WP_EAGAIN);
    /* the CRL changes before the client's Finished arrives */
    revoke_and_reload(fx, "agent1", sctx);
    move(p.srv, p.cli);
    assert_int_equal(wp_tls_handshake(p.cli), 0);
    assert_int_equal(wp_tls_resumed(p.cli), 1);
    move(p.cli, p.srv);
    assert_int_equal(wp_tls_handshake(p.srv), WP_EAUTH);
    assert_non_null(strstr(wp_tls_last_error(p.srv), "revoked (resumed session)"));
    pair_free(&p);
    wp_tls_ctx_free(cctx);
    wp_tls_ctx_free(sctx);
}

static void stale_crl_still_revokes_and_admits(void **state)
{
    struct fx *fx = *state;
    struct wp_tls_ctx *sctx = ctx_for(fx, fx->ca, SERVER_NAME, 1, NULL);
    struct wp_tls_ctx *c1 = ctx_for(fx, fx->ca, "agent1", 0, NULL);
    struct wp_tls_ctx *c2 = ctx_for(fx, fx->ca, "agent2", 0, NULL);
    struct pair p;

    /* a CRL whose nextUpdate passed ten days ago (nobody ran `watchpost ca crl`) */
    assert_int_equal(wp_pki_revoke(fx->ca, "agent1", fx->err, sizeof(fx->err)), 0);
    wp_clock_set_fake(wp_clock_now_ms() - 40LL * 86400 * 1000);
    assert_int_equal(wp_pki_gen_crl(fx->ca, 30, fx->err, sizeof(fx->err)), 0);
    wp_clock_set_fake(-1);
    assert_int_equal(wp_tls_ctx_reload_crl(sctx, fx->err, sizeof(fx->err)), 1);

    connect_pair(c2, sctx, SERVER_NAME, &p);
    expect_ok(&p);
    pair_free(&p);
    connect_pair(c1, sctx, SERVER_NAME, &p);
    assert_int_equal(p.rc_srv, WP_EAUTH);
    assert_non_null(strstr(wp_tls_last_error(p.srv), "revoked"));
    pair_free(&p);
    wp_tls_ctx_free(c1);
    wp_tls_ctx_free(c2);
    wp_tls_ctx_free(sctx);
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

static void bad_crl_keeps_the_old_one(void **state)
{
    struct fx *fx = *state;
    struct wp_tls_ctx *sctx = ctx_for(fx, fx->ca, SERVER_NAME, 1, NULL);
    struct wp_tls_ctx *cctx = ctx_for(fx, fx->ca, "agent1", 0, NULL);
    char *crl = wp_xasprintf("%s/crl.pem", fx->ca);
    char *crl2 = wp_xasprintf("%s/crl.pem", fx->ca2);
    struct pair p;
    uint8_t s1[32];
    size_t l1 = sizeof(s1);

    load_serial(fx, "agent1", s1, &l1);
    revoke_and_reload(fx, "agent1", sctx);

    write_file(crl, "-----BEGIN X509 CRL-----\ngarbage\n-----END X509 CRL-----\n");
    assert_true(wp_tls_ctx_reload_crl(sctx, fx->err, sizeof(fx->err)) < 0);
    assert_int_equal(wp_tls_ctx_is_revoked(sctx, s1, l1), 1);

    /* a well-formed CRL signed by another CA is refused too */
    assert_int_equal(unlink(crl), 0);
    assert_int_equal(link(crl2, crl), 0);
    assert_true(wp_tls_ctx_reload_crl(sctx, fx->err, sizeof(fx->err)) < 0);
    assert_non_null(strstr(fx->err, "not issued by our CA"));
    assert_int_equal(wp_tls_ctx_is_revoked(sctx, s1, l1), 1);

    /* a vanished CRL does not un-revoke anyone */
    assert_int_equal(unlink(crl), 0);
    assert_true(wp_tls_ctx_reload_crl(sctx, fx->err, sizeof(fx->err)) < 0);
    connect_pair(cctx, sctx, SERVER_NAME, &p);
    assert_int_equal(p.rc_srv, WP_EAUTH);
    pair_free(&p);

    free(crl);
    free(crl2);
    wp_tls_ctx_free(cctx);
    wp_tls_ctx_free(sctx);
}

static void crl_swap_keeps_running_handshakes_safe(void **state)
{
    struct fx *fx = *state;
    struct wp_tls_ctx *sctx = ctx_for(fx, fx->ca, SERVER_NAME, 1, NULL);
    struct wp_tls_ctx *cctx = ctx_for(fx, fx->ca, "agent2", 0, NULL);
    struct pair p;
    int rc_cli = 0;
    int rc_srv = 0;

    /* a handshake starts, the CRL is swapped (twice) under it, then it completes */
    assert_int_equal(wp_tls_conn_new(cctx, SERVER_NAME, &p.cli), 0);
    assert_int_equal(wp_tls_conn_new(sctx, NULL, &p.srv), 0);
    assert_int_equal(wp_tls_handshake(p.cli), WP_EAGAIN);
    move(p.cli, p.srv);
    revoke_and_reload(fx, "agent1", sctx);
    assert_int_equal(wp_pki_gen_crl(fx->ca, 30, fx->err, sizeof(fx->err)), 0);
    assert_int_equal(wp_tls_ctx_reload_crl(sctx, fx->err, sizeof(fx->err)), 1);
    pump(p.cli, p.srv, &rc_cli, &rc_srv);
    assert_int_equal(rc_cli, 0);
    assert_int_equal(rc_srv, 0);
    pair_free(&p);
    wp_tls_ctx_free(cctx);
    wp_tls_ctx_free(sctx);
}

static void ctx_new_reports_bad_files(void **state)
{
    struct fx *fx = *state;
    struct wp_tls_ctx *ctx = (struct wp_tls_ctx *)1;
    char *ca = wp_xasprintf("%s/ca.crt", fx->ca);
    char *crt = wp_xasprintf("%s/agent1.crt", fx->ca);
    char *key = wp_xasprintf("%s/agent1.key", fx->ca);
    char *key2 = wp_xasprintf("%s/agent2.key", fx->ca);
    char *missing = wp_xasprintf("%s/nope.pem", fx->root);
    struct wp_tls_opts o = {.ca_path = ca, .cert_path = crt, .key_path = missing};

    assert_int_equal(wp_tls_ctx_new(&o, fx->err, sizeof(fx->err), &ctx), -ENOENT);
    assert_null(ctx);
    assert_non_null(strstr(fx->err, "nope.pem"));

    o.key_path = key2;
    assert_int_equal(wp_tls_ctx_new(&o, fx->err, sizeof(fx->err), &ctx), WP_ETLS);
    assert_non_null(strstr(fx->err, "does not match"));

    o.key_path = crt; /* not a key */
    assert_int_equal(wp_tls_ctx_new(&o, fx->err, sizeof(fx->err), &ctx), WP_ETLS);

    /* a ticket key others can read is refused */
    free(crt);
    free(key);
    crt = wp_xasprintf("%s/%s.crt", fx->ca, SERVER_NAME);
    key = wp_xasprintf("%s/%s.key", fx->ca, SERVER_NAME);
    o.cert_path = crt;
    o.key_path = key;
    o.is_server = 1;
    o.ticket_key_path = fx->tkey;
    write_file(fx->tkey, "0123456789abcdef0123456789abcdef");
    assert_int_equal(chmod(fx->tkey, 0644), 0);
    assert_int_equal(wp_tls_ctx_new(&o, fx->err, sizeof(fx->err), &ctx), WP_ECONFIG);
    assert_non_null(strstr(fx->err, "readable"));
    assert_int_equal(chmod(fx->tkey, 0600), 0);
    assert_int_equal(wp_tls_ctx_new(&o, fx->err, sizeof(fx->err), &ctx), 0);
    wp_tls_ctx_free(ctx);

    /* a missing CRL file means no revocations, not an error */
    o.crl_path = missing;
    assert_int_equal(wp_tls_ctx_new(&o, fx->err, sizeof(fx->err), &ctx), 0);
    assert_int_equal(wp_tls_ctx_reload_crl(ctx, fx->err, sizeof(fx->err)), 0);
    wp_tls_ctx_free(ctx);

    free(ca);
    free(crt);
    free(key);
    free(key2);
    free(missing);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(good_pair_handshakes, setup, teardown),
        cmocka_unit_test_setup_teardown(data_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(client_from_other_ca_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(wrong_server_name_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(ctx_checks_key_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(revoked_client_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(expired_client_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(session_resumes_with_same_ctx, setup, teardown),
        cmocka_unit_test_setup_teardown(session_survives_server_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(expired_ticket_means_full_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(resumed_session_of_revoked_client_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(revocation_during_resumed_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(stale_crl_still_revokes_and_admits, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_crl_keeps_the_old_one, setup, teardown),
        cmocka_unit_test_setup_teardown(crl_swap_keeps_running_handshakes_safe, setup, teardown),
        cmocka_unit_test_setup_teardown(ctx_new_reports_bad_files, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
