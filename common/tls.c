/* SPDX-License-Identifier: Apache-2.0 */
/* Mutual TLS 1.2 over memory buffers with mbedTLS 2.28: contexts, connections, tickets, CRL. */
#include "wp/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/chachapoly.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_internal.h> /* handshake->resume: 2.28 has no public accessor */
#include <mbedtls/x509_crl.h>
#include <mbedtls/x509_crt.h>

#include "wp/clock.h"
#include "wp/err.h"
#include "wp/mem.h"

/*
 * Design notes.
 *
 * Memory BIO: mbedTLS reads ciphertext through tls_recv() from c->in (filled by
 * wp_tls_feed()) and writes through tls_send() into c->out. tls_recv() answers
 * MBEDTLS_ERR_SSL_WANT_READ when c->in is empty; tls_send() always takes everything, so
 * WANT_WRITE never happens. Each byte is copied once on the way in (feed) and once on the
 * way out (send). An established connection costs about 38 KiB of heap (measured with
 * mallinfo2 over 200 connections): mbedTLS's two 16.7 KiB record buffers, the session with
 * the peer certificate, the record transform, and our two buffers, which are freed when
 * drained if they grew past BUF_KEEP_MAX.
 *
 * Session tickets (servers): our own callbacks instead of mbedtls_ssl_ticket, because its
 * keys are random per process and we want resumption to survive a collector restart. The
 * 32-byte key lives in ticket_key_path (0600, created atomically with link()). A ticket is
 *   "WPT1" | nonce[12] | ChaCha20-Poly1305( expiry_be64 | mbedtls_ssl_session_save() ) | tag[16]
 * with the first 16 bytes as AAD. Debian's mbedTLS has MBEDTLS_SSL_KEEP_PEER_CERTIFICATE,
 * so the saved session carries the peer certificate and a resumed connection still has
 * its CN, serial and fingerprint. The key never rotates: delete the file (and restart) to
 * invalidate every ticket.
 *
 * Resumption skips certificate verification, so: the ticket parser refuses a session whose
 * peer certificate is now revoked or expired (the client then does a full handshake, which
 * fails verification), and wp_tls_handshake() checks the peer serial against the current
 * CRL once more after every handshake (this catches a CRL reloaded mid-handshake).
 *
 * CRL swap: mbedtls_ssl_conf_ca_chain() only stores pointers. mbedTLS 2.28 reads
 * conf->ca_crl synchronously while it verifies a Certificate message, but to not depend on
 * that, each CRL is refcounted: the context holds one reference to the CRL in force and
 * every connection holds one from wp_tls_conn_new() until its handshake ends. An old CRL is
 * freed when the last handshake that started under it finishes.
 *
 * Stale CRLs: the verify callback ignores BADCRL_EXPIRED and BADCRL_FUTURE. A CRL past its
 * nextUpdate still lists every revocation it knew, and refusing all peers because a cron
 * job did not run `watchpost ca crl` would turn a chore into a fleet-wide outage. The CRL's
 * signature and issuer are checked when it is loaded, so a forged CRL is never installed.
 *
 * Error mapping: certificate verification failures (other CA, revoked, expired, wrong
 * name or key usage, no certificate) give WP_EAUTH. A fatal alert from the peer that says
 * it refused our certificate (bad_certificate, certificate_revoked/expired/unknown,
 * unknown_ca, access_denied) also gives WP_EAUTH, so an agent can tell "I am not allowed"
 * from a network or protocol failure (WP_ETLS).
 */

#define TICKET_MAGIC     "WPT1"
#define TICKET_MAGIC_LEN 4
#define TICKET_NONCE     12
#define TICKET_HDR       (TICKET_MAGIC_LEN + TICKET_NONCE)
#define TICKET_TAG       16
#define TICKET_KEY_LEN   32
#define TICKET_LIFETIME  (24 * 3600)
#define CRL_FILE_MAX     (64u << 20)
/* Drained buffers bigger than this are freed, so an idle connection does not keep the
 * memory of its largest batch (10,000 agents x 1 MiB would be 10 GiB). */
#define BUF_KEEP_MAX (32u << 10)

struct tls_crl {
    mbedtls_x509_crl crl;
    unsigned refs;
};

struct wp_tls_ctx {
    int is_server;
    int no_client_cert; /* servers: browsers present no certificate (wp_tls_opts) */
    mbedtls_ssl_config conf;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt ca;
    mbedtls_x509_crt cert;
    mbedtls_pk_context key;
    char *crl_path;      /* NULL: no CRL configured */
    struct tls_crl *crl; /* in force; NULL: none */
    struct stat crl_st;  /* of the file crl was read from (valid when crl != NULL) */
    mbedtls_chachapoly_context ticket_aead; /* servers */
    mbedtls_ssl_session session;            /* clients: last completed handshake */
    int have_session;
    char *session_host; /* the server_name that session was made with ("" for NULL) */
};

enum hs_state { HS_RUNNING = 0, HS_DONE = 1, HS_FAILED = 2 };

struct wp_tls_conn {
    mbedtls_ssl_context ssl;
    struct wp_tls_ctx *ctx;
    struct tls_crl *crl; /* reference held while the handshake runs */
    struct wp_buf in;    /* ciphertext fed, not yet read by mbedTLS */
    struct wp_buf out;   /* ciphertext for the socket */
    char *server_name;
    enum hs_state hs;
    int hs_err;
    int resumed;
    char seen_cn[72]; /* CN of the peer's leaf certificate as verification saw it */
    char err[448];
};

static const int tls_suites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    0,
};

/* P-256 first: mbedTLS 2.28 has an optimised P-256 (MBEDTLS_ECP_NIST_OPTIM) and its X25519
 * was no cheaper per full handshake here; P-256 is needed for the certificates anyway. */
static const mbedtls_ecp_group_id tls_curves[] = {
    MBEDTLS_ECP_DP_SECP256R1,
    MBEDTLS_ECP_DP_CURVE25519,
    MBEDTLS_ECP_DP_NONE,
};

static const int tls_hashes[] = {MBEDTLS_MD_SHA256, MBEDTLS_MD_NONE};

static const char *mbed_err(int ret, char *buf, size_t len)
{
    mbedtls_strerror(ret, buf, len);
    return buf;
}

/* ---- CRL ---- */

static void crl_unref(struct tls_crl *crl)
{
    if (crl != NULL && --crl->refs == 0) {
        mbedtls_x509_crl_free(&crl->crl);
        free(crl);
    }
}

static struct tls_crl *crl_ref(struct tls_crl *crl)
{
    if (crl != NULL) {
        crl->refs++;
    }
    return crl;
}

/* Every CRL in the chain must be issued and signed by one of our CA certificates. */
static int crl_check(struct wp_tls_ctx *ctx, const mbedtls_x509_crl *chain, char *err,
                     size_t errlen)
{
    for (const mbedtls_x509_crl *crl = chain; crl != NULL; crl = crl->next) {
        mbedtls_x509_crt *issuer = NULL;
        unsigned char hash[MBEDTLS_MD_MAX_SIZE];
        const mbedtls_md_info_t *md = mbedtls_md_info_from_type(crl->sig_md);

        if (crl->raw.len == 0) {
            continue;
        }
        for (mbedtls_x509_crt *ca = &ctx->ca; ca != NULL; ca = ca->next) {
            if (ca->subject_raw.len == crl->issuer_raw.len &&
                memcmp(ca->subject_raw.p, crl->issuer_raw.p, crl->issuer_raw.len) == 0) {
                issuer = ca;
                break;
            }
        }
        if (issuer == NULL) {
            wp_errf(err, errlen, "CRL is not issued by our CA");
            return WP_ETLS;
        }
        if (md == NULL || mbedtls_md(md, crl->tbs.p, crl->tbs.len, hash) != 0 ||
            mbedtls_pk_verify_ext(crl->sig_pk, crl->sig_opts, &issuer->pk, crl->sig_md, hash,
                                  mbedtls_md_get_size(md), crl->sig.p, crl->sig.len) != 0) {
            wp_errf(err, errlen, "CRL signature does not verify with our CA");
            return WP_ETLS;
        }
    }
    return 0;
}

/* Read and check the CRL file. *out is NULL (and 0 returned) when the file does not exist. */
static int crl_load(struct wp_tls_ctx *ctx, struct tls_crl **out, struct stat *st, char *err,
                    size_t errlen)
{
    int rc = 0;
    int fd = -1;
    unsigned char *buf = NULL;
    struct tls_crl *crl = NULL;
    char eb[128];

    *out = NULL;
    fd = open(ctx->crl_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = errno == ENOENT ? 0 : -errno;
        if (rc < 0) {
            wp_errf(err, errlen, "%s: %s", ctx->crl_path, strerror(errno));
        }
        goto out;
    }
    if (fstat(fd, st) < 0) {
        rc = -errno;
        wp_errf(err, errlen, "%s: %s", ctx->crl_path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st->st_mode) || (uint64_t)st->st_size > CRL_FILE_MAX) {
        rc = WP_ETLS;
        wp_errf(err, errlen, "%s: not a regular file of at most %u bytes", ctx->crl_path,
                CRL_FILE_MAX);
        goto out;
    }
    /* read what fstat() described, so the recorded identity matches the content */
    size_t size = (size_t)st->st_size;
    size_t got = 0;
    buf = wp_xmalloc(size + 1);
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            rc = n < 0 ? -errno : WP_ETLS;
            wp_errf(err, errlen, "%s: short read", ctx->crl_path);
            goto out;
        }
        got += (size_t)n;
    }
    buf[size] = '\0';
    crl = wp_xcalloc(1, sizeof(*crl));
    crl->refs = 1;
    mbedtls_x509_crl_init(&crl->crl);
    int ret = mbedtls_x509_crl_parse(&crl->crl, buf, size + 1);
    if (ret != 0) {
        rc = WP_ETLS;
        wp_errf(err, errlen, "%s: %s", ctx->crl_path, mbed_err(ret, eb, sizeof(eb)));
        goto out;
    }
    rc = crl_check(ctx, &crl->crl, eb, sizeof(eb));
    if (rc < 0) {
        wp_errf(err, errlen, "%s: %s", ctx->crl_path, eb);
        goto out;
    }
    *out = crl;
    crl = NULL;
out:
    crl_unref(crl);
    free(buf);
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}

/* Serials compare as integers: ignore leading zero bytes. */
static int serial_eq(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    while (alen > 1 && a[0] == 0) {
        a++;
        alen--;
    }
    while (blen > 1 && b[0] == 0) {
        b++;
        blen--;
    }
    return alen == blen && memcmp(a, b, alen) == 0;
}

int wp_tls_ctx_is_revoked(const struct wp_tls_ctx *ctx, const uint8_t *serial, size_t len)
{
    if (ctx->crl == NULL || len == 0) {
        return 0;
    }
    for (const mbedtls_x509_crl *crl = &ctx->crl->crl; crl != NULL; crl = crl->next) {
        for (const mbedtls_x509_crl_entry *e = &crl->entry; e != NULL; e = e->next) {
            if (e->serial.len > 0 && serial_eq(e->serial.p, e->serial.len, serial, len)) {
                return 1;
            }
        }
    }
    return 0;
}

/* Why a peer certificate is refused now (revoked or expired since it was verified), with
 * the matching TLS alert in *alert; NULL if it is fine. */
static const char *peer_refusal(const struct wp_tls_ctx *ctx, const mbedtls_x509_crt *crt,
                                unsigned char *alert)
{
    if (crt == NULL) {
        *alert = MBEDTLS_SSL_ALERT_MSG_NO_CERT;
        return "no peer certificate";
    }
    if (wp_tls_ctx_is_revoked(ctx, crt->serial.p, crt->serial.len)) {
        *alert = MBEDTLS_SSL_ALERT_MSG_CERT_REVOKED;
        return "peer certificate revoked";
    }
    if (mbedtls_x509_time_is_past(&crt->valid_to)) {
        *alert = MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED;
        return "peer certificate expired";
    }
    return NULL;
}

static void set_ca_chain(struct wp_tls_ctx *ctx)
{
    mbedtls_ssl_conf_ca_chain(&ctx->conf, &ctx->ca, ctx->crl != NULL ? &ctx->crl->crl : NULL);
}

int wp_tls_ctx_reload_crl(struct wp_tls_ctx *ctx, char *err, size_t errlen)
{
    struct stat st;
    struct tls_crl *crl = NULL;

    if (ctx->crl_path == NULL) {
        return 0;
    }
    if (stat(ctx->crl_path, &st) < 0) {
        if (errno == ENOENT && ctx->crl == NULL) {
            return 0;
        }
        int rc = -errno;
        wp_errf(err, errlen, "%s: %s; keeping the current CRL", ctx->crl_path, strerror(errno));
        return rc;
    }
    if (ctx->crl != NULL && st.st_dev == ctx->crl_st.st_dev && st.st_ino == ctx->crl_st.st_ino &&
        st.st_size == ctx->crl_st.st_size && st.st_mtim.tv_sec == ctx->crl_st.st_mtim.tv_sec &&
        st.st_mtim.tv_nsec == ctx->crl_st.st_mtim.tv_nsec) {
        return 0;
    }
    int rc = crl_load(ctx, &crl, &st, err, errlen);
    if (rc < 0) {
        return rc;
    }
    if (crl == NULL) {
        return 0; /* vanished between stat() and open(); keep what we have */
    }
    crl_unref(ctx->crl);
    ctx->crl = crl;
    ctx->crl_st = st;
    set_ca_chain(ctx);
    return 1;
}

/* ---- session tickets ---- */

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (56 - 8 * i));
    }
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

static int ticket_write(void *p_ticket, const mbedtls_ssl_session *session, unsigned char *start,
                        const unsigned char *end, size_t *tlen, uint32_t *lifetime)
{
    struct wp_tls_ctx *ctx = p_ticket;
    size_t slen = 0;
    int ret = 0;

    *tlen = 0;
    if (end < start || (size_t)(end - start) < TICKET_HDR + 8 + TICKET_TAG) {
        return MBEDTLS_ERR_SSL_BUFFER_TOO_SMALL;
    }
    unsigned char *pt = start + TICKET_HDR;
    size_t room = (size_t)(end - pt) - TICKET_TAG - 8;
    memcpy(start, TICKET_MAGIC, TICKET_MAGIC_LEN);
    ret = mbedtls_ctr_drbg_random(&ctx->drbg, start + TICKET_MAGIC_LEN, TICKET_NONCE);
    if (ret != 0) {
        return ret;
    }
    put_be64(pt, (uint64_t)(wp_clock_now_ms() / 1000 + TICKET_LIFETIME));
    ret = mbedtls_ssl_session_save(session, pt + 8, room, &slen);
    if (ret != 0) {
        return ret;
    }
    ret = mbedtls_chachapoly_encrypt_and_tag(&ctx->ticket_aead, 8 + slen, start + TICKET_MAGIC_LEN,
                                             start, TICKET_HDR, pt, pt, pt + 8 + slen);
    if (ret != 0) {
        return ret;
    }
    *tlen = TICKET_HDR + 8 + slen + TICKET_TAG;
    *lifetime = TICKET_LIFETIME;
    return 0;
}

static int ticket_parse(void *p_ticket, mbedtls_ssl_session *session, unsigned char *buf,
                        size_t len)
{
    struct wp_tls_ctx *ctx = p_ticket;

    if (len < TICKET_HDR + 8 + TICKET_TAG || memcmp(buf, TICKET_MAGIC, TICKET_MAGIC_LEN) != 0) {
        return MBEDTLS_ERR_SSL_INVALID_MAC;
    }
    unsigned char *ct = buf + TICKET_HDR;
    size_t clen = len - TICKET_HDR - TICKET_TAG;
    if (mbedtls_chachapoly_auth_decrypt(&ctx->ticket_aead, clen, buf + TICKET_MAGIC_LEN, buf,
                                        TICKET_HDR, buf + len - TICKET_TAG, ct, ct) != 0) {
        return MBEDTLS_ERR_SSL_INVALID_MAC;
    }
    int64_t now = wp_clock_now_ms() / 1000;
    uint64_t expiry = get_be64(ct);
    /* also refuse tickets from the far future: the clock was set back */
    if (expiry <= (uint64_t)now || expiry > (uint64_t)now + TICKET_LIFETIME + 3600) {
        return MBEDTLS_ERR_SSL_SESSION_TICKET_EXPIRED;
    }
    int ret = mbedtls_ssl_session_load(session, ct + 8, clen - 8);
    if (ret != 0) {
        return ret;
    }
    /* a refused ticket means a full handshake, which verifies the certificate again */
    unsigned char alert = 0;
    if (!ctx->no_client_cert && peer_refusal(ctx, session->peer_cert, &alert) != NULL) {
        return MBEDTLS_ERR_SSL_SESSION_TICKET_EXPIRED;
    }
    return 0;
}

static int read_exact(int fd, uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return r < 0 ? -errno : -EIO;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Read an existing key file: a regular 32-byte file nobody else can read. */
static int ticket_key_read(int fd, const char *path, uint8_t key[TICKET_KEY_LEN], char *err,
                           size_t errlen)
{
    struct stat st;

    if (fstat(fd, &st) < 0) {
        wp_errf(err, errlen, "%s: %s", path, strerror(errno));
        return -errno;
    }
    if (!S_ISREG(st.st_mode) || st.st_size != TICKET_KEY_LEN) {
        wp_errf(err, errlen, "%s: not a %d-byte ticket key file", path, TICKET_KEY_LEN);
        return WP_ECONFIG;
    }
    if ((st.st_mode & 077) != 0) {
        wp_errf(err, errlen, "%s: mode %03o, must not be readable by group or others", path,
                (unsigned)(st.st_mode & 0777));
        return WP_ECONFIG;
    }
    int rc = read_exact(fd, key, TICKET_KEY_LEN);
    if (rc < 0) {
        wp_errf(err, errlen, "%s: %s", path, wp_strerror(rc));
    }
    return rc;
}

/* Create the key file without ever exposing a partial file: tmp + fsync + link(). */
static int ticket_key_create(struct wp_tls_ctx *ctx, const char *path, uint8_t key[TICKET_KEY_LEN],
                             char *err, size_t errlen)
{
    int rc = 0;
    char *tmp = wp_xasprintf("%s.tmp.%ld", path, (long)getpid());
    int fd = -1;

    if (mbedtls_ctr_drbg_random(&ctx->drbg, key, TICKET_KEY_LEN) != 0) {
        rc = WP_ETLS;
        wp_errf(err, errlen, "RNG failure");
        goto out;
    }
    (void)unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || fchmod(fd, 0600) < 0 || write(fd, key, TICKET_KEY_LEN) != TICKET_KEY_LEN ||
        fsync(fd) < 0) {
        rc = errno != 0 ? -errno : -EIO;
        wp_errf(err, errlen, "%s: %s", tmp, strerror(-rc));
        goto out;
    }
    /* link() fails with EEXIST if another process won the race: the caller reads theirs */
    if (link(tmp, path) < 0) {
        rc = -errno;
        if (rc != -EEXIST) {
            wp_errf(err, errlen, "%s: %s", path, strerror(errno));
        }
        goto out;
    }
    char *slash = strrchr(tmp, '/');
    char *dir = slash == NULL ? wp_xstrdup(".") : wp_xstrndup(tmp, (size_t)(slash - tmp) + 1);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    free(dir);
out:
    if (fd >= 0) {
        close(fd);
        (void)unlink(tmp);
    }
    free(tmp);
    return rc;
}

static int ticket_key_load(struct wp_tls_ctx *ctx, const char *path, uint8_t key[TICKET_KEY_LEN],
                           char *err, size_t errlen)
{
    /* two rounds: if our create loses a race, the second round reads the winner's key */
    for (int round = 0; round < 2; round++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd >= 0) {
            int rc = ticket_key_read(fd, path, key, err, errlen);
            close(fd);
            return rc;
        }
        if (errno != ENOENT) {
            wp_errf(err, errlen, "%s: %s", path, strerror(errno));
            return -errno;
        }
        int rc = ticket_key_create(ctx, path, key, err, errlen);
        if (rc != -EEXIST) {
            return rc;
        }
    }
    wp_errf(err, errlen, "%s: cannot create or read the ticket key", path);
    return -EEXIST;
}

/* ---- context ---- */

/* Copy the CN of crt into out (size len); empty if it has none or it does not fit. */
static void crt_cn(const mbedtls_x509_crt *crt, char *out, size_t len)
{
    out[0] = '\0';
    for (const mbedtls_x509_name *n = &crt->subject; n != NULL; n = n->next) {
        if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) != 0) {
            continue;
        }
        if (n->val.len < len && memchr(n->val.p, '\0', n->val.len) == NULL) {
            memcpy(out, n->val.p, n->val.len);
            out[n->val.len] = '\0';
        }
        return;
    }
}

static int tls_verify_cb(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    struct wp_tls_conn *c = arg;

    /* mbedTLS frees a refused chain; keep the leaf's CN so a refusal can be logged by name */
    if (depth == 0) {
        crt_cn(crt, c->seen_cn, sizeof(c->seen_cn));
    }
    /* a stale CRL still revokes what it lists; see the design notes */
    *flags &= ~(uint32_t)(MBEDTLS_X509_BADCRL_EXPIRED | MBEDTLS_X509_BADCRL_FUTURE);
    return 0;
}

static int check_readable(const char *what, const char *path, char *err, size_t errlen)
{
    if (path == NULL) {
        wp_errf(err, errlen, "no %s configured", what);
        return WP_ECONFIG;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        wp_errf(err, errlen, "%s %s: %s", what, path, strerror(errno));
        return rc;
    }
    close(fd);
    return 0;
}

int wp_tls_ctx_new(const struct wp_tls_opts *opts, char *err, size_t errlen,
                   struct wp_tls_ctx **out)
{
    int rc = 0;
    int ret = 0;
    char eb[128];
    uint8_t tkey[TICKET_KEY_LEN];
    static const char pers[] = "watchpost-tls";
    struct wp_tls_ctx *ctx = wp_xcalloc(1, sizeof(*ctx));

    *out = NULL;
    ctx->is_server = opts->is_server != 0;
    ctx->no_client_cert = ctx->is_server && opts->no_client_cert;
    mbedtls_ssl_config_init(&ctx->conf);
    mbedtls_entropy_init(&ctx->entropy);
    mbedtls_ctr_drbg_init(&ctx->drbg);
    mbedtls_x509_crt_init(&ctx->ca);
    mbedtls_x509_crt_init(&ctx->cert);
    mbedtls_pk_init(&ctx->key);
    mbedtls_chachapoly_init(&ctx->ticket_aead);
    mbedtls_ssl_session_init(&ctx->session);

    if (!ctx->no_client_cert || opts->ca_path != NULL) {
        rc = check_readable("CA certificate", opts->ca_path, err, errlen);
    }
    if (rc == 0) {
        rc = check_readable("certificate", opts->cert_path, err, errlen);
    }
    if (rc == 0) {
        rc = check_readable("private key", opts->key_path, err, errlen);
    }
    if (rc < 0) {
        goto out;
    }
    rc = WP_ETLS;
    ret = mbedtls_ctr_drbg_seed(&ctx->drbg, mbedtls_entropy_func, &ctx->entropy,
                                (const unsigned char *)pers, sizeof(pers) - 1);
    if (ret != 0) {
        wp_errf(err, errlen, "seeding the RNG: %s", mbed_err(ret, eb, sizeof(eb)));
        goto out;
    }
    ret = opts->ca_path != NULL ? mbedtls_x509_crt_parse_file(&ctx->ca, opts->ca_path) : 0;
    if (ret != 0) {
        wp_errf(err, errlen, "CA certificate %s: %s", opts->ca_path, mbed_err(ret, eb, sizeof(eb)));
        goto out;
    }
    ret = mbedtls_x509_crt_parse_file(&ctx->cert, opts->cert_path);
    if (ret != 0) {
        wp_errf(err, errlen, "certificate %s: %s", opts->cert_path, mbed_err(ret, eb, sizeof(eb)));
        goto out;
    }
    ret = mbedtls_pk_parse_keyfile(&ctx->key, opts->key_path, NULL);
    if (ret != 0) {
        wp_errf(err, errlen, "private key %s: %s", opts->key_path, mbed_err(ret, eb, sizeof(eb)));
        goto out;
    }
    if (mbedtls_pk_check_pair(&ctx->cert.pk, &ctx->key) != 0) {
        wp_errf(err, errlen, "private key %s does not match certificate %s", opts->key_path,
                opts->cert_path);
        goto out;
    }
    /* mbedTLS would only fail at the first handshake ("no suitable certificate") */
    if (ctx->is_server ? mbedtls_x509_crt_check_extended_key_usage(
                             &ctx->cert, MBEDTLS_OID_SERVER_AUTH,
                             MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)) != 0
                       : mbedtls_x509_crt_check_extended_key_usage(
                             &ctx->cert, MBEDTLS_OID_CLIENT_AUTH,
                             MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)) != 0) {
        wp_errf(err, errlen, "certificate %s is not for %s use (extendedKeyUsage)", opts->cert_path,
                ctx->is_server ? "server" : "client");
        goto out;
    }
    if (opts->crl_path != NULL) {
        ctx->crl_path = wp_xstrdup(opts->crl_path);
        rc = crl_load(ctx, &ctx->crl, &ctx->crl_st, err, errlen);
        if (rc < 0) {
            goto out;
        }
        rc = WP_ETLS;
    }

    ret = mbedtls_ssl_config_defaults(
        &ctx->conf, ctx->is_server ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
        MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
    if (ret != 0) {
        wp_errf(err, errlen, "TLS config: %s", mbed_err(ret, eb, sizeof(eb)));
        goto out;
    }
    mbedtls_ssl_conf_min_version(&ctx->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(&ctx->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_ciphersuites(&ctx->conf, tls_suites);
    mbedtls_ssl_conf_curves(&ctx->conf, tls_curves);
    mbedtls_ssl_conf_sig_hashes(&ctx->conf, tls_hashes);
    mbedtls_ssl_conf_authmode(&ctx->conf, ctx->no_client_cert ? MBEDTLS_SSL_VERIFY_NONE
                                                               : MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_rng(&ctx->conf, mbedtls_ctr_drbg_random, &ctx->drbg);
    set_ca_chain(ctx);
    ret = mbedtls_ssl_conf_own_cert(&ctx->conf, &ctx->cert, &ctx->key);
    if (ret != 0) {
        wp_errf(err, errlen, "TLS config: %s", mbed_err(ret, eb, sizeof(eb)));
        goto out;
    }
    if (ctx->is_server) {
        if (opts->ticket_key_path != NULL) {
            rc = ticket_key_load(ctx, opts->ticket_key_path, tkey, err, errlen);
            if (rc < 0) {
                goto out;
            }
            rc = WP_ETLS;
        } else if (mbedtls_ctr_drbg_random(&ctx->drbg, tkey, sizeof(tkey)) != 0) {
            wp_errf(err, errlen, "RNG failure");
            goto out;
        }
        ret = mbedtls_chachapoly_setkey(&ctx->ticket_aead, tkey);
        if (ret != 0) {
            wp_errf(err, errlen, "ticket key: %s", mbed_err(ret, eb, sizeof(eb)));
            goto out;
        }
        mbedtls_ssl_conf_session_tickets_cb(&ctx->conf, ticket_write, ticket_parse, ctx);
    } else {
        mbedtls_ssl_conf_session_tickets(&ctx->conf, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
    }
    rc = 0;
    *out = ctx;
    ctx = NULL;
out:
    mbedtls_platform_zeroize(tkey, sizeof(tkey));
    wp_tls_ctx_free(ctx);
    return rc;
}

void wp_tls_ctx_free(struct wp_tls_ctx *ctx)
{
    if (ctx == NULL) {
        return;
    }
    mbedtls_ssl_config_free(&ctx->conf);
    mbedtls_ctr_drbg_free(&ctx->drbg);
    mbedtls_entropy_free(&ctx->entropy);
    mbedtls_x509_crt_free(&ctx->ca);
    mbedtls_x509_crt_free(&ctx->cert);
    mbedtls_pk_free(&ctx->key);
    crl_unref(ctx->crl);
    mbedtls_chachapoly_free(&ctx->ticket_aead);
    mbedtls_ssl_session_free(&ctx->session);
    free(ctx->session_host);
    free(ctx->crl_path);
    free(ctx);
}

/* ---- connection ---- */

static int tls_send(void *arg, const unsigned char *buf, size_t len)
{
    struct wp_tls_conn *c = arg;

    if (len > (size_t)INT32_MAX) {
        len = INT32_MAX;
    }
    wp_buf_append(&c->out, buf, len);
    return (int)len;
}

static int tls_recv(void *arg, unsigned char *buf, size_t len)
{
    struct wp_tls_conn *c = arg;
    size_t have = wp_buf_unread(&c->in);

    if (have == 0) {
        return MBEDTLS_ERR_SSL_WANT_READ;
    }
    if (len > have) {
        len = have;
    }
    if (len > (size_t)INT32_MAX) {
        len = INT32_MAX;
    }
    memcpy(buf, wp_buf_head(&c->in), len);
    wp_buf_consume(&c->in, len);
    if (wp_buf_unread(&c->in) == 0 && c->in.cap > BUF_KEEP_MAX) {
        wp_buf_cleanup(&c->in);
    }
    return (int)len;
}

int wp_tls_conn_new(struct wp_tls_ctx *ctx, const char *server_name, struct wp_tls_conn **out)
{
    int rc = 0;
    struct wp_tls_conn *c = wp_xcalloc(1, sizeof(*c));

    *out = NULL;
    c->ctx = ctx;
    mbedtls_ssl_init(&c->ssl);
    wp_buf_init(&c->in);
    wp_buf_init(&c->out);
    int ret = mbedtls_ssl_setup(&c->ssl, &ctx->conf);
    if (ret == 0 && server_name != NULL && !ctx->is_server) {
        c->server_name = wp_xstrdup(server_name);
        ret = mbedtls_ssl_set_hostname(&c->ssl, server_name);
    }
    if (ret != 0) {
        rc = ret == MBEDTLS_ERR_SSL_ALLOC_FAILED ? -ENOMEM : WP_ETLS;
        goto out;
    }
    mbedtls_ssl_set_bio(&c->ssl, c, tls_send, tls_recv, NULL);
    mbedtls_ssl_set_verify(&c->ssl, tls_verify_cb, c);
    /* offer the last session only to the server it was made with */
    if (!ctx->is_server && ctx->have_session &&
        strcmp(ctx->session_host, server_name != NULL ? server_name : "") == 0) {
        (void)mbedtls_ssl_set_session(&c->ssl, &ctx->session); /* failure: full handshake */
    }
    c->crl = crl_ref(ctx->crl);
    *out = c;
    c = NULL;
out:
    wp_tls_conn_free(c);
    return rc;
}

static void conn_end_handshake(struct wp_tls_conn *c)
{
    crl_unref(c->crl);
    c->crl = NULL;
}

void wp_tls_conn_free(struct wp_tls_conn *c)
{
    if (c == NULL) {
        return;
    }
    conn_end_handshake(c);
    mbedtls_ssl_free(&c->ssl);
    wp_buf_cleanup(&c->in);
    wp_buf_cleanup(&c->out);
    free(c->server_name);
    free(c);
}

void wp_tls_feed(struct wp_tls_conn *c, const void *data, size_t len)
{
    wp_buf_append(&c->in, data, len);
}

struct wp_buf *wp_tls_outbuf(struct wp_tls_conn *c)
{
    return &c->out;
}

/* The verified peer certificate, once the handshake is complete. */
static const mbedtls_x509_crt *peer_cert(const struct wp_tls_conn *c)
{
    if (c->hs == HS_DONE) {
        return mbedtls_ssl_get_peer_cert(&c->ssl);
    }
    return NULL;
}

static int alert_is_auth(unsigned char alert)
{
    switch (alert) {
    case MBEDTLS_SSL_ALERT_MSG_BAD_CERT:
    case MBEDTLS_SSL_ALERT_MSG_UNSUPPORTED_CERT:
    case MBEDTLS_SSL_ALERT_MSG_CERT_REVOKED:
    case MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED:
    case MBEDTLS_SSL_ALERT_MSG_CERT_UNKNOWN:
    case MBEDTLS_SSL_ALERT_MSG_UNKNOWN_CA:
    case MBEDTLS_SSL_ALERT_MSG_ACCESS_DENIED:
    case MBEDTLS_SSL_ALERT_MSG_NO_CERT:
        return 1;
    default:
        return 0;
    }
}

/* Map a failed handshake to WP_EAUTH / WP_ETLS and describe it in c->err. */
static int handshake_failed(struct wp_tls_conn *c, int ret)
{
    char eb[128];
    char vb[256];
    uint32_t flags = mbedtls_ssl_get_verify_result(&c->ssl);
    int rc = WP_ETLS;
    int alert = -1;

    if (flags == (uint32_t)-1) {
        flags = 0; /* no certificate was verified */
    }
    if (ret == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE && c->ssl.in_msg != NULL) {
        alert = c->ssl.in_msg[1];
    }
    if (ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED || ret == MBEDTLS_ERR_SSL_PEER_VERIFY_FAILED ||
        ret == MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE ||
        (ret == MBEDTLS_ERR_SSL_BAD_HS_CERTIFICATE && flags != 0) ||
        (alert >= 0 && alert_is_auth((unsigned char)alert))) {
        rc = WP_EAUTH;
    }
    mbed_err(ret, eb, sizeof(eb));
    vb[0] = '\0';
    if (flags != 0) {
        mbedtls_x509_crt_verify_info(vb, sizeof(vb), "", flags);
        for (char *s = vb; *s != '\0'; s++) {
            if (*s == '\n') {
                *s = s[1] != '\0' ? ';' : '\0';
            }
        }
    }
    if (alert >= 0) {
        snprintf(c->err, sizeof(c->err), "%s (alert %d)%s%s", eb, alert, vb[0] ? ": " : "", vb);
    } else {
        snprintf(c->err, sizeof(c->err), "%s%s%s", eb, vb[0] ? ": " : "", vb);
    }
    return rc;
}

/* After the handshake: the checks resumption skips, and the client's session cache. */
static int handshake_done(struct wp_tls_conn *c)
{
    struct wp_tls_ctx *ctx = c->ctx;
    unsigned char alert = 0;
    const char *why = ctx->no_client_cert
                          ? NULL
                          : peer_refusal(ctx, mbedtls_ssl_get_peer_cert(&c->ssl), &alert);

    if (why != NULL) {
        snprintf(c->err, sizeof(c->err), "%s%s", why, c->resumed ? " (resumed session)" : "");
        (void)mbedtls_ssl_send_alert_message(&c->ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL, alert);
        return WP_EAUTH;
    }
    if (!ctx->is_server) {
        mbedtls_ssl_session_free(&ctx->session);
        mbedtls_ssl_session_init(&ctx->session);
        ctx->have_session = mbedtls_ssl_get_session(&c->ssl, &ctx->session) == 0;
        free(ctx->session_host);
        ctx->session_host = wp_xstrdup(c->server_name != NULL ? c->server_name : "");
    }
    return 0;
}

int wp_tls_handshake(struct wp_tls_conn *c)
{
    int ret = 0;

    if (c->hs == HS_DONE) {
        return 0;
    }
    if (c->hs == HS_FAILED) {
        return c->hs_err;
    }
    /* the state machine has a fixed number of states; each step consumes one */
    while (c->ssl.state != MBEDTLS_SSL_HANDSHAKE_OVER) {
        ret = mbedtls_ssl_handshake_step(&c->ssl);
        if (c->ssl.handshake != NULL && c->ssl.handshake->resume) {
            c->resumed = 1;
        }
        if (ret != 0) {
            break;
        }
    }
    if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
        return WP_EAGAIN;
    }
    conn_end_handshake(c);
    if (ret == 0) {
        ret = handshake_done(c);
        if (ret == 0) {
            c->hs = HS_DONE;
            return 0;
        }
        c->hs = HS_FAILED;
        c->hs_err = ret;
        return ret;
    }
    c->hs = HS_FAILED;
    c->hs_err = handshake_failed(c, ret);
    return c->hs_err;
}

ssize_t wp_tls_read(struct wp_tls_conn *c, void *buf, size_t len)
{
    char eb[128];

    if (c->hs != HS_DONE) {
        int rc = wp_tls_handshake(c);
        if (rc < 0) {
            return rc;
        }
    }
    if (len == 0) {
        return 0;
    }
    int ret = mbedtls_ssl_read(&c->ssl, buf, len);
    if (ret > 0) {
        return ret;
    }
    if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
        return WP_EAGAIN;
    }
    if (ret == 0 || ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
        return WP_ECLOSED;
    }
    snprintf(c->err, sizeof(c->err), "%s", mbed_err(ret, eb, sizeof(eb)));
    return WP_ETLS;
}

int wp_tls_write(struct wp_tls_conn *c, const void *data, size_t len)
{
    const unsigned char *p = data;
    char eb[128];

    if (c->hs != HS_DONE) {
        int rc = wp_tls_handshake(c);
        if (rc < 0) {
            return rc;
        }
    }
    if (wp_buf_unread(&c->out) == 0 && c->out.cap > BUF_KEEP_MAX && len < BUF_KEEP_MAX) {
        wp_buf_cleanup(&c->out);
    }
    /* each call writes at most one record (16 KiB), and tls_send() never refuses */
    while (len > 0) {
        int ret = mbedtls_ssl_write(&c->ssl, p, len);
        if (ret <= 0) {
            snprintf(c->err, sizeof(c->err), "%s", mbed_err(ret, eb, sizeof(eb)));
            return WP_ETLS;
        }
        p += ret;
        len -= (size_t)ret;
    }
    return 0;
}

void wp_tls_close_notify(struct wp_tls_conn *c)
{
    (void)mbedtls_ssl_close_notify(&c->ssl);
}

/* After a failed handshake this gives the CN of the refused certificate (unverified: for
 * log lines only); fingerprint and serial are only available after a completed one. */
int wp_tls_peer_cn(const struct wp_tls_conn *c, char *buf, size_t len)
{
    const mbedtls_x509_crt *crt = peer_cert(c);
    char cn[sizeof(c->seen_cn)];

    if (crt != NULL) {
        crt_cn(crt, cn, sizeof(cn));
    } else if (c->hs == HS_FAILED) {
        memcpy(cn, c->seen_cn, sizeof(cn));
    } else {
        return WP_ENOTFOUND;
    }
    size_t n = strlen(cn);
    if (n == 0) {
        return WP_ENOTFOUND;
    }
    if (n >= len) {
        return -ENOSPC;
    }
    memcpy(buf, cn, n + 1);
    return 0;
}

int wp_tls_peer_fingerprint(const struct wp_tls_conn *c, char out[65])
{
    static const char digits[] = "0123456789abcdef";
    const mbedtls_x509_crt *crt = peer_cert(c);
    unsigned char hash[32];

    if (crt == NULL) {
        return WP_ENOTFOUND;
    }
    if (mbedtls_sha256_ret(crt->raw.p, crt->raw.len, hash, 0) != 0) {
        return WP_ETLS;
    }
    for (size_t i = 0; i < sizeof(hash); i++) {
        out[2 * i] = digits[hash[i] >> 4];
        out[2 * i + 1] = digits[hash[i] & 0x0f];
    }
    out[64] = '\0';
    return 0;
}

int wp_tls_peer_serial(const struct wp_tls_conn *c, uint8_t *serial, size_t *len)
{
    const mbedtls_x509_crt *crt = peer_cert(c);

    if (crt == NULL) {
        return WP_ENOTFOUND;
    }
    if (crt->serial.len > *len) {
        return -ENOSPC;
    }
    memcpy(serial, crt->serial.p, crt->serial.len);
    *len = crt->serial.len;
    return 0;
}

int wp_tls_resumed(const struct wp_tls_conn *c)
{
    return c->hs == HS_DONE && c->resumed;
}

const char *wp_tls_suite(const struct wp_tls_conn *c)
{
    if (c->hs != HS_DONE) {
        return "(none)";
    }
    return mbedtls_ssl_get_ciphersuite(&c->ssl);
}

const char *wp_tls_last_error(const struct wp_tls_conn *c)
{
    return c->err;
}
