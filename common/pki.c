/* SPDX-License-Identifier: Apache-2.0 */
/* The fleet CA on disk: EC P-256 keys, X.509 certificates and a hand-built CRL, all mbedTLS. */
#include "wp/pki.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/asn1write.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/md.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>
#include <mbedtls/x509_crl.h>
#include <mbedtls/x509_crt.h>
#include <mbedtls/x509_csr.h>

#include "wp/clock.h"
#include "wp/err.h"
#include "wp/mem.h"

/*
 * The index is a text file, one certificate per line, fields separated by one tab:
 *   serial-hex  kind(client|server)  not_after(unix s)  status(V|R)  revoked_at(unix s)  name
 * The first line is a header that also carries the last CRL number:
 *   # watchpost-ca-index v1 crl=<n>
 * Lines are never removed; a revoked name may appear again with a new serial.
 */
#define INDEX_MAGIC    "# watchpost-ca-index v1 crl="
#define PEM_CERT_MAX   4096
#define PEM_KEY_MAX    1024
#define INDEX_LINE_MAX 256

struct pki_index {
    struct wp_pki_entry *v;
    size_t n;
    size_t cap;
    uint64_t crl_number;
};

/* What a command needs from an existing CA. */
struct pki_ca {
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_pk_context key;
    mbedtls_x509_crt crt;
    int rng_ready;
};

/* mbedtls_strerror() into the caller's buffer; returns buf. */
static const char *mbed_err(int ret, char *buf, size_t len)
{
    mbedtls_strerror(ret, buf, len);
    return buf;
}

int wp_pki_name_ok(const char *name)
{
    size_t n = 0;

    if (name == NULL) {
        return 0;
    }
    for (const char *s = name; *s != '\0'; s++, n++) {
        char ch = *s;
        int alnum =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!alnum && (n == 0 || (ch != '.' && ch != '-' && ch != '_'))) {
            return 0;
        }
    }
    return n >= 1 && n <= WP_PKI_NAME_MAX;
}

/* A CA CN goes into an X.509 name string: printable ASCII without DN syntax characters. */
static int cn_ok(const char *cn)
{
    size_t n = strlen(cn);

    if (n == 0 || n > WP_PKI_NAME_MAX || cn[0] == ' ' || cn[n - 1] == ' ') {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)cn[i];
        if (ch < 0x20 || ch > 0x7e || strchr(",=+\\\"<>;#", ch) != NULL) {
            return 0;
        }
    }
    return 1;
}

/* ---- files ---- */

static char *path_join(const char *dir, const char *name)
{
    return wp_xasprintf("%s/%s", dir, name);
}

static int write_all(int fd, const void *data, size_t len)
{
    const uint8_t *p = data;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int fsync_dir_of(const char *path)
{
    char *dir = wp_xstrdup(path);
    char *slash = strrchr(dir, '/');
    int rc = 0;

    if (slash == NULL) {
        strcpy(dir, ".");
    } else if (slash == dir) {
        slash[1] = '\0';
    } else {
        *slash = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
    } else {
        if (fsync(fd) < 0) {
            rc = -errno;
        }
        close(fd);
    }
    free(dir);
    return rc;
}

/* Write data to a fresh temporary file next to path with mode, fsync it. *tmp_out: free(). */
static int write_tmp(const char *path, const void *data, size_t len, mode_t mode, char **tmp_out)
{
    int rc = 0;
    char *tmp = wp_xasprintf("%s.tmp.%ld", path, (long)getpid());
    int fd = -1;

    *tmp_out = NULL;
    (void)unlink(tmp); /* left over by a crashed run of this pid number */
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    /* the umask may have removed bits; set exactly what was asked for */
    if (fchmod(fd, mode) < 0) {
        rc = -errno;
        goto out;
    }
    rc = write_all(fd, data, len);
    if (rc < 0) {
        goto out;
    }
    if (fsync(fd) < 0) {
        rc = -errno;
        goto out;
    }
out:
    if (fd >= 0 && close(fd) < 0 && rc == 0) {
        rc = -errno;
    }
    if (rc < 0) {
        (void)unlink(tmp);
        free(tmp);
    } else {
        *tmp_out = tmp;
    }
    return rc;
}

/* Replace path atomically (tmp + fsync + rename + fsync dir). */
static int write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
    char *tmp = NULL;
    int rc = write_tmp(path, data, len, mode, &tmp);

    if (rc < 0) {
        return rc;
    }
    if (rename(tmp, path) < 0) {
        rc = -errno;
        (void)unlink(tmp);
    } else {
        rc = fsync_dir_of(path);
    }
    free(tmp);
    return rc;
}

/* Create path with data, failing with -EEXIST if it exists; never visible half-written. */
static int write_new(const char *path, const void *data, size_t len, mode_t mode)
{
    char *tmp = NULL;
    int rc = write_tmp(path, data, len, mode, &tmp);

    if (rc < 0) {
        return rc;
    }
    /* link() refuses to replace an existing file, unlike rename() */
    if (link(tmp, path) < 0) {
        rc = -errno;
    }
    (void)unlink(tmp);
    free(tmp);
    if (rc == 0) {
        rc = fsync_dir_of(path);
    }
    return rc;
}

/* Writes a new private key (0600) and its certificate (0644), or neither. */
static int write_key_cert(const char *key_path, const unsigned char *key_pem, const char *crt_path,
                          const unsigned char *crt_pem, char *err, size_t errlen)
{
    int rc = write_new(key_path, key_pem, strlen((const char *)key_pem), 0600);

    if (rc < 0) {
        wp_errf(err, errlen, "%s: %s", key_path,
                rc == -EEXIST ? "exists already" : wp_strerror(rc));
        return rc;
    }
    rc = write_new(crt_path, crt_pem, strlen((const char *)crt_pem), 0644);
    if (rc < 0) {
        wp_errf(err, errlen, "%s: %s", crt_path,
                rc == -EEXIST ? "exists already" : wp_strerror(rc));
        (void)unlink(key_path);
    }
    return rc;
}

static int file_exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}

/* mkdir -p with mode for the directories it creates. */
static int mkdir_p(const char *path, mode_t mode)
{
    char *p = NULL;
    int rc = 0;

    if (path[0] == '\0') {
        return -ENOENT;
    }
    p = wp_xstrdup(path);
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0') {
            continue;
        }
        char saved = *s;
        *s = '\0';
        if (mkdir(p, mode) < 0 && errno != EEXIST) {
            rc = -errno;
            break;
        }
        *s = saved;
        if (saved == '\0') {
            break;
        }
    }
    free(p);
    return rc;
}

/* flock() dir/.lock; returns the fd (>= 0) or -errno. */
static int lock_dir(const char *dir)
{
    char *path = path_join(dir, ".lock");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    int rc = fd;

    if (fd < 0) {
        rc = -errno;
    } else if (flock(fd, LOCK_EX) < 0) {
        rc = -errno;
        close(fd);
    }
    free(path);
    return rc;
}

static void unlock_dir(int fd)
{
    if (fd >= 0) {
        close(fd); /* releases the flock */
    }
}

/* ---- index ---- */

static void index_free(struct pki_index *ix)
{
    free(ix->v);
    memset(ix, 0, sizeof(*ix));
}

static struct wp_pki_entry *index_add(struct pki_index *ix)
{
    if (ix->n == ix->cap) {
        ix->cap = ix->cap ? ix->cap * 2 : 16;
        ix->v = wp_xrealloc(ix->v, ix->cap * sizeof(*ix->v));
    }
    struct wp_pki_entry *e = &ix->v[ix->n++];
    memset(e, 0, sizeof(*e));
    return e;
}

static int parse_i64(const char *s, int64_t *out)
{
    char *end = NULL;

    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0) {
        return -1;
    }
    *out = v;
    return 0;
}

static int serial_hex_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 2 * WP_PKI_SERIAL_LEN || n % 2 != 0) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

/* Parse one data line (modified in place) into e; 0 or -1. */
static int index_parse_line(char *line, struct wp_pki_entry *e)
{
    char *f[6];
    char *save = NULL;
    size_t n = 0;

    for (char *t = strtok_r(line, "\t", &save); t != NULL; t = strtok_r(NULL, "\t", &save)) {
        if (n == 6) {
            return -1;
        }
        f[n++] = t;
    }
    if (n != 6 || !serial_hex_ok(f[0]) || !wp_pki_name_ok(f[5])) {
        return -1;
    }
    memcpy(e->serial_hex, f[0], strlen(f[0]) + 1);
    if (strcmp(f[1], "client") == 0) {
        e->kind = WP_PKI_CLIENT;
    } else if (strcmp(f[1], "server") == 0) {
        e->kind = WP_PKI_SERVER;
    } else {
        return -1;
    }
    if (parse_i64(f[2], &e->not_after) < 0 || parse_i64(f[4], &e->revoked_at) < 0) {
        return -1;
    }
    if (strcmp(f[3], "V") == 0) {
        e->status = WP_PKI_VALID;
    } else if (strcmp(f[3], "R") == 0) {
        e->status = WP_PKI_REVOKED;
    } else {
        return -1;
    }
    memcpy(e->name, f[5], strlen(f[5]) + 1);
    return 0;
}

static int index_load(const char *dir, struct pki_index *ix, char *err, size_t errlen)
{
    int rc = 0;
    char *path = path_join(dir, "index");
    FILE *fp = NULL;
    char line[INDEX_LINE_MAX];
    unsigned lineno = 0;

    memset(ix, 0, sizeof(*ix));
    fp = fopen(path, "re");
    if (fp == NULL) {
        rc = -errno;
        wp_errf(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    while (fgets(line, sizeof(line), fp) != NULL) {
        size_t len = strlen(line);
        lineno++;
        if (len == 0 || line[len - 1] != '\n') {
            rc = WP_ECORRUPT;
            wp_errf(err, errlen, "%s:%u: line too long or unterminated", path, lineno);
            goto out;
        }
        line[len - 1] = '\0';
        if (lineno == 1) {
            int64_t crl = 0;
            if (strncmp(line, INDEX_MAGIC, strlen(INDEX_MAGIC)) != 0 ||
                parse_i64(line + strlen(INDEX_MAGIC), &crl) < 0) {
                rc = WP_ECORRUPT;
                wp_errf(err, errlen, "%s:1: not a watchpost CA index", path);
                goto out;
            }
            ix->crl_number = (uint64_t)crl;
            continue;
        }
        if (index_parse_line(line, index_add(ix)) < 0) {
            rc = WP_ECORRUPT;
            wp_errf(err, errlen, "%s:%u: malformed entry", path, lineno);
            goto out;
        }
    }
    if (ferror(fp)) {
        rc = -EIO;
        wp_errf(err, errlen, "%s: read error", path);
        goto out;
    }
    if (lineno == 0) {
        rc = WP_ECORRUPT;
        wp_errf(err, errlen, "%s: empty", path);
        goto out;
    }
out:
    if (fp != NULL) {
        fclose(fp);
    }
    if (rc < 0) {
        index_free(ix);
    }
    free(path);
    return rc;
}

static int index_save(const char *dir, const struct pki_index *ix, char *err, size_t errlen)
{
    char *path = path_join(dir, "index");
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    int rc = 0;

    if (mem == NULL) {
        rc = -errno;
        goto out;
    }
    fprintf(mem, INDEX_MAGIC "%" PRIu64 "\n", ix->crl_number);
    for (size_t i = 0; i < ix->n; i++) {
        const struct wp_pki_entry *e = &ix->v[i];
        fprintf(mem, "%s\t%s\t%" PRId64 "\t%s\t%" PRId64 "\t%s\n", e->serial_hex,
                e->kind == WP_PKI_SERVER ? "server" : "client", e->not_after,
                e->status == WP_PKI_REVOKED ? "R" : "V", e->revoked_at, e->name);
    }
    if (fclose(mem) != 0) {
        rc = -ENOMEM;
        goto out;
    }
    rc = write_atomic(path, text, len, 0644);
out:
    if (rc < 0) {
        wp_errf(err, errlen, "%s: %s", path, wp_strerror(rc));
    }
    free(text);
    free(path);
    return rc;
}

/* ---- crypto helpers ---- */

static int rng_init(struct pki_ca *ca, char *err, size_t errlen)
{
    static const char pers[] = "watchpost-pki";
    char eb[128];

    mbedtls_entropy_init(&ca->entropy);
    mbedtls_ctr_drbg_init(&ca->drbg);
    ca->rng_ready = 1;
    int ret = mbedtls_ctr_drbg_seed(&ca->drbg, mbedtls_entropy_func, &ca->entropy,
                                    (const unsigned char *)pers, sizeof(pers) - 1);
    if (ret != 0) {
        wp_errf(err, errlen, "seeding the RNG: %s", mbed_err(ret, eb, sizeof(eb)));
        return WP_ETLS;
    }
    return 0;
}

static void ca_init_struct(struct pki_ca *ca)
{
    memset(ca, 0, sizeof(*ca));
    mbedtls_pk_init(&ca->key);
    mbedtls_x509_crt_init(&ca->crt);
}

static void ca_cleanup(struct pki_ca *ca)
{
    mbedtls_pk_free(&ca->key);
    mbedtls_x509_crt_free(&ca->crt);
    if (ca->rng_ready) {
        mbedtls_ctr_drbg_free(&ca->drbg);
        mbedtls_entropy_free(&ca->entropy);
    }
}

/* Load dir/ca.key and dir/ca.crt and seed the RNG. */
static int ca_load(const char *dir, struct pki_ca *ca, char *err, size_t errlen)
{
    int rc = 0;
    int ret = 0;
    char eb[128];
    char *key_path = path_join(dir, "ca.key");
    char *crt_path = path_join(dir, "ca.crt");

    if (!file_exists(key_path) || !file_exists(crt_path)) {
        rc = WP_ENOTFOUND;
        wp_errf(err, errlen, "no CA in %s (run 'watchpost ca init')", dir);
        goto out;
    }
    rc = rng_init(ca, err, errlen);
    if (rc < 0) {
        goto out;
    }
    ret = mbedtls_pk_parse_keyfile(&ca->key, key_path, NULL);
    if (ret != 0) {
        rc = WP_ECORRUPT;
        wp_errf(err, errlen, "%s: %s", key_path, mbed_err(ret, eb, sizeof(eb)));
        goto out;
    }
    ret = mbedtls_x509_crt_parse_file(&ca->crt, crt_path);
    if (ret != 0) {
        rc = WP_ECORRUPT;
        wp_errf(err, errlen, "%s: %s", crt_path, mbed_err(ret, eb, sizeof(eb)));
        goto out;
    }
    if (mbedtls_pk_check_pair(&ca->crt.pk, &ca->key) != 0) {
        rc = WP_ECORRUPT;
        wp_errf(err, errlen, "%s does not match %s", key_path, crt_path);
        goto out;
    }
out:
    free(key_path);
    free(crt_path);
    return rc;
}

static int gen_key(struct pki_ca *ca, mbedtls_pk_context *pk, char *err, size_t errlen)
{
    char eb[128];
    int ret = mbedtls_pk_setup(pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));

    if (ret == 0) {
        ret = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*pk),
                                  mbedtls_ctr_drbg_random, &ca->drbg);
    }
    if (ret != 0) {
        wp_errf(err, errlen, "generating a P-256 key: %s", mbed_err(ret, eb, sizeof(eb)));
        return WP_ETLS;
    }
    return 0;
}

/* "YYYYMMDDhhmmss" in UTC, as mbedtls_x509write_crt_set_validity() wants. */
static void x509_time_str(int64_t t, char out[16])
{
    struct tm tm;
    time_t tt = (time_t)t;

    gmtime_r(&tt, &tm);
    if (strftime(out, 16, "%Y%m%d%H%M%S", &tm) == 0) {
        out[0] = '\0';
    }
}

void wp_pki_hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }
    out[2 * n] = '\0';
}

static size_t hex_decode(const char *s, uint8_t *out, size_t cap)
{
    size_t n = strlen(s) / 2;

    if (n > cap) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        for (int k = 0; k < 2; k++) {
            char c = s[2 * i + (size_t)k];
            v = (v << 4) | (unsigned)(c <= '9' ? c - '0' : c - 'a' + 10);
        }
        out[i] = (uint8_t)v;
    }
    return n;
}

/* extendedKeyUsage value: SEQUENCE { OID }; written at the end of buf, *out points to it. */
static int der_eku(unsigned char *buf, size_t size, enum wp_pki_kind kind, unsigned char **out)
{
    unsigned char *p = buf + size;
    size_t len = 0;
    int ret = 0;

    if (kind == WP_PKI_SERVER) {
        MBEDTLS_ASN1_CHK_ADD(len,
                             mbedtls_asn1_write_oid(&p, buf, MBEDTLS_OID_SERVER_AUTH,
                                                    MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)));
    } else {
        MBEDTLS_ASN1_CHK_ADD(len,
                             mbedtls_asn1_write_oid(&p, buf, MBEDTLS_OID_CLIENT_AUTH,
                                                    MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)));
    }
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(&p, buf, len));
    MBEDTLS_ASN1_CHK_ADD(
        len, mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    *out = p;
    return (int)len;
}

/* subjectAltName value: SEQUENCE { [2] IA5String dNSName }. */
static int der_san_dns(unsigned char *buf, size_t size, const char *name, unsigned char **out)
{
    unsigned char *p = buf + size;
    size_t len = 0;
    int ret = 0;

    MBEDTLS_ASN1_CHK_ADD(
        len, mbedtls_asn1_write_raw_buffer(&p, buf, (const unsigned char *)name, strlen(name)));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(&p, buf, len));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(&p, buf, len));
    MBEDTLS_ASN1_CHK_ADD(
        len, mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    *out = p;
    return (int)len;
}

/* Fresh random positive serial of exactly WP_PKI_SERIAL_LEN bytes. */
static int gen_serial(struct pki_ca *ca, uint8_t serial[WP_PKI_SERIAL_LEN])
{
    if (mbedtls_ctr_drbg_random(&ca->drbg, serial, WP_PKI_SERIAL_LEN) != 0) {
        return WP_ETLS;
    }
    /* top bit clear keeps it positive, the next bit set keeps DER from dropping a 0 byte */
    serial[0] = (uint8_t)((serial[0] & 0x7f) | 0x40);
    return 0;
}

struct cert_req {
    mbedtls_pk_context *subject_key;
    mbedtls_pk_context *issuer_key;
    const char *subject;   /* "CN=..." */
    const char *issuer;    /* "CN=..." */
    const uint8_t *serial; /* WP_PKI_SERIAL_LEN bytes */
    int64_t not_before;
    int64_t not_after;
    int is_ca;
    enum wp_pki_kind kind; /* for leaf certificates */
    const char *dns_name;  /* servers: subjectAltName; NULL for none */
};

/* Build and sign one certificate into pem (NUL-terminated). */
static int make_cert(struct pki_ca *ca, const struct cert_req *rq, unsigned char *pem, size_t size,
                     char *err, size_t errlen)
{
    mbedtls_x509write_cert w;
    mbedtls_mpi serial;
    char nb[16];
    char na[16];
    unsigned char ext[128];
    unsigned char *extp = NULL;
    char eb[128];
    int ret = 0;
    int len = 0;

    mbedtls_x509write_crt_init(&w);
    mbedtls_mpi_init(&serial);
    x509_time_str(rq->not_before, nb);
    x509_time_str(rq->not_after, na);

    mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(&w, rq->subject_key);
    mbedtls_x509write_crt_set_issuer_key(&w, rq->issuer_key);
    ret = mbedtls_mpi_read_binary(&serial, rq->serial, WP_PKI_SERIAL_LEN);
    if (ret == 0) {
        ret = mbedtls_x509write_crt_set_serial(&w, &serial);
    }
    if (ret == 0) {
        ret = mbedtls_x509write_crt_set_validity(&w, nb, na);
    }
    if (ret == 0) {
        ret = mbedtls_x509write_crt_set_subject_name(&w, rq->subject);
    }
    if (ret == 0) {
        ret = mbedtls_x509write_crt_set_issuer_name(&w, rq->issuer);
    }
    if (ret == 0) {
        ret = mbedtls_x509write_crt_set_basic_constraints(&w, rq->is_ca, rq->is_ca ? 0 : -1);
    }
    if (ret == 0) {
        ret = mbedtls_x509write_crt_set_subject_key_identifier(&w);
    }
    if (ret == 0 && !rq->is_ca) {
        ret = mbedtls_x509write_crt_set_authority_key_identifier(&w);
    }
    if (ret == 0) {
        ret = mbedtls_x509write_crt_set_key_usage(
            &w, rq->is_ca ? (MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN)
                          : MBEDTLS_X509_KU_DIGITAL_SIGNATURE);
    }
    if (ret == 0 && !rq->is_ca) {
        len = der_eku(ext, sizeof(ext), rq->kind, &extp);
        ret = len < 0 ? len
                      : mbedtls_x509write_crt_set_extension(
                            &w, MBEDTLS_OID_EXTENDED_KEY_USAGE,
                            MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE), 0, extp, (size_t)len);
    }
    if (ret == 0 && rq->dns_name != NULL) {
        len = der_san_dns(ext, sizeof(ext), rq->dns_name, &extp);
        ret = len < 0 ? len
                      : mbedtls_x509write_crt_set_extension(
                            &w, MBEDTLS_OID_SUBJECT_ALT_NAME,
                            MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0, extp, (size_t)len);
    }
    if (ret == 0) {
        ret = mbedtls_x509write_crt_pem(&w, pem, size, mbedtls_ctr_drbg_random, &ca->drbg);
    }
    mbedtls_x509write_crt_free(&w);
    mbedtls_mpi_free(&serial);
    if (ret != 0) {
        wp_errf(err, errlen, "writing certificate %s: %s", rq->subject,
                mbed_err(ret, eb, sizeof(eb)));
        return WP_ETLS;
    }
    return 0;
}

/* ---- CRL ---- */

/* X.509 Time: UTCTime for 1950..2049, GeneralizedTime otherwise (RFC 5280 4.1.2.5). */
static int der_time(unsigned char **p, unsigned char *start, int64_t t)
{
    struct tm tm;
    time_t tt = (time_t)t;
    char s[20];
    int year = 0;

    gmtime_r(&tt, &tm);
    year = tm.tm_year + 1900;
    if (strftime(s, sizeof(s), "%Y%m%d%H%M%SZ", &tm) == 0) {
        return MBEDTLS_ERR_ASN1_INVALID_DATA;
    }
    if (year >= 1950 && year < 2050) {
        /* UTCTime drops the century */
        return mbedtls_asn1_write_tagged_string(p, start, MBEDTLS_ASN1_UTC_TIME, s + 2,
                                                strlen(s + 2));
    }
    return mbedtls_asn1_write_tagged_string(p, start, MBEDTLS_ASN1_GENERALIZED_TIME, s, strlen(s));
}

/* INTEGER from big-endian unsigned bytes (a 0x00 is prepended when the top bit is set). */
static int der_uint_bytes(unsigned char **p, unsigned char *start, const uint8_t *b, size_t n)
{
    size_t len = 0;
    int ret = 0;

    while (n > 1 && b[0] == 0) {
        b++;
        n--;
    }
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_raw_buffer(p, start, b, n));
    if (n == 0 || (b[0] & 0x80) != 0) {
        if (*p - start < 1) {
            return MBEDTLS_ERR_ASN1_BUF_TOO_SMALL;
        }
        *--(*p) = 0x00;
        len++;
    }
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(p, start, len));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_tag(p, start, MBEDTLS_ASN1_INTEGER));
    return (int)len;
}

/* AlgorithmIdentifier ecdsa-with-SHA256, parameters absent (RFC 5758 3.2). */
static int der_sig_alg(unsigned char **p, unsigned char *start)
{
    size_t len = 0;
    int ret = 0;

    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_oid(p, start, MBEDTLS_OID_ECDSA_SHA256,
                                                     MBEDTLS_OID_SIZE(MBEDTLS_OID_ECDSA_SHA256)));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(p, start, len));
    MBEDTLS_ASN1_CHK_ADD(
        len, mbedtls_asn1_write_tag(p, start, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    return (int)len;
}

/* crlExtensions [0] EXPLICIT { cRLNumber }. */
static int der_crl_ext(unsigned char **p, unsigned char *start, uint64_t number)
{
    uint8_t nb[8];
    size_t len = 0;
    int ret = 0;

    for (int i = 0; i < 8; i++) {
        nb[i] = (uint8_t)(number >> (56 - 8 * i));
    }
    MBEDTLS_ASN1_CHK_ADD(len, der_uint_bytes(p, start, nb, sizeof(nb)));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(p, start, len));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_tag(p, start, MBEDTLS_ASN1_OCTET_STRING));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_oid(p, start, MBEDTLS_OID_CRL_NUMBER,
                                                     MBEDTLS_OID_SIZE(MBEDTLS_OID_CRL_NUMBER)));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(p, start, len));
    MBEDTLS_ASN1_CHK_ADD(
        len, mbedtls_asn1_write_tag(p, start, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(p, start, len));
    MBEDTLS_ASN1_CHK_ADD(
        len, mbedtls_asn1_write_tag(p, start, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(p, start, len));
    MBEDTLS_ASN1_CHK_ADD(
        len, mbedtls_asn1_write_tag(p, start,
                                    MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | 0));
    return (int)len;
}

/* revokedCertificates (omitted when empty, as RFC 5280 requires). */
static int der_revoked(unsigned char **p, unsigned char *start, const struct pki_index *ix)
{
    size_t len = 0;
    int ret = 0;
    int any = 0;

    /* written back to front so the list comes out in index order */
    for (size_t i = ix->n; i-- > 0;) {
        const struct wp_pki_entry *e = &ix->v[i];
        uint8_t serial[WP_PKI_SERIAL_LEN];
        size_t elen = 0;

        if (e->status != WP_PKI_REVOKED) {
            continue;
        }
        size_t sn = hex_decode(e->serial_hex, serial, sizeof(serial));
        MBEDTLS_ASN1_CHK_ADD(elen, der_time(p, start, e->revoked_at - WP_PKI_SKEW_S));
        MBEDTLS_ASN1_CHK_ADD(elen, der_uint_bytes(p, start, serial, sn));
        MBEDTLS_ASN1_CHK_ADD(elen, mbedtls_asn1_write_len(p, start, elen));
        MBEDTLS_ASN1_CHK_ADD(elen, mbedtls_asn1_write_tag(
                                       p, start, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
        len += elen;
        any = 1;
    }
    if (any) {
        MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(p, start, len));
        MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_tag(
                                      p, start, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    }
    return (int)len;
}

/* TBSCertList (RFC 5280 5.1), written to the end of [start, *p). */
static int der_tbs(unsigned char **p, unsigned char *start, const mbedtls_x509_crt *ca_crt,
                   const struct pki_index *ix, int64_t now, int days)
{
    size_t len = 0;
    int ret = 0;

    MBEDTLS_ASN1_CHK_ADD(len, der_crl_ext(p, start, ix->crl_number));
    MBEDTLS_ASN1_CHK_ADD(len, der_revoked(p, start, ix));
    MBEDTLS_ASN1_CHK_ADD(len, der_time(p, start, now + (int64_t)days * 86400));
    MBEDTLS_ASN1_CHK_ADD(len, der_time(p, start, now - WP_PKI_SKEW_S));
    /* the CA's subject, byte for byte, so issuer matching can't differ in encoding */
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_raw_buffer(p, start, ca_crt->subject_raw.p,
                                                            ca_crt->subject_raw.len));
    MBEDTLS_ASN1_CHK_ADD(len, der_sig_alg(p, start));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_int(p, start, 1)); /* v2 */
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(p, start, len));
    MBEDTLS_ASN1_CHK_ADD(
        len, mbedtls_asn1_write_tag(p, start, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    return (int)len;
}

/* Build, sign and PEM-encode the CRL for ix; *pem_out (NUL-terminated) is free()d by caller. */
static int crl_build(struct pki_ca *ca, const struct pki_index *ix, int64_t now, int days,
                     unsigned char **pem_out, size_t *pem_len, char *err, size_t errlen)
{
    int rc = 0;
    int ret = 0;
    size_t cap = 1024 + 96 * ix->n;
    unsigned char *tbs_buf = wp_xmalloc(cap);
    unsigned char *der = wp_xmalloc(cap + MBEDTLS_PK_SIGNATURE_MAX_SIZE + 64);
    unsigned char *pem = NULL;
    unsigned char *tp = tbs_buf + cap;
    unsigned char *p = der + cap + MBEDTLS_PK_SIGNATURE_MAX_SIZE + 64;
    unsigned char hash[32];
    unsigned char sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
    size_t sig_len = 0;
    size_t len = 0;
    size_t olen = 0;
    char eb[128];

    *pem_out = NULL;
    ret = der_tbs(&tp, tbs_buf, &ca->crt, ix, now, days);
    if (ret < 0) {
        goto fail;
    }
    size_t tbs_len = (size_t)ret;
    ret = mbedtls_sha256_ret(tp, tbs_len, hash, 0);
    if (ret == 0) {
        ret = mbedtls_pk_sign(&ca->key, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig, &sig_len,
                              mbedtls_ctr_drbg_random, &ca->drbg);
    }
    if (ret != 0) {
        goto fail;
    }
    /* CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue } */
    ret = mbedtls_asn1_write_bitstring(&p, der, sig, sig_len * 8);
    if (ret >= 0) {
        len += (size_t)ret;
        ret = der_sig_alg(&p, der);
    }
    if (ret >= 0) {
        len += (size_t)ret;
        ret = mbedtls_asn1_write_raw_buffer(&p, der, tp, tbs_len);
    }
    if (ret >= 0) {
        len += (size_t)ret;
        ret = mbedtls_asn1_write_len(&p, der, len);
    }
    if (ret >= 0) {
        len += (size_t)ret;
        ret = mbedtls_asn1_write_tag(&p, der, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE);
    }
    if (ret < 0) {
        goto fail;
    }
    len += (size_t)ret;

    size_t pem_cap = 128 + len * 2;
    pem = wp_xmalloc(pem_cap);
    ret = mbedtls_pem_write_buffer("-----BEGIN X509 CRL-----\n", "-----END X509 CRL-----\n", p, len,
                                   pem, pem_cap, &olen);
    if (ret != 0) {
        goto fail;
    }
    *pem_out = pem;
    *pem_len = olen - 1; /* olen counts the NUL */
    pem = NULL;
    goto out;
fail:
    rc = WP_ETLS;
    wp_errf(err, errlen, "building the CRL: %s", mbed_err(ret, eb, sizeof(eb)));
out:
    free(pem);
    free(der);
    free(tbs_buf);
    return rc;
}

/* Bump the CRL number and rewrite dir/crl.pem from ix. */
static int crl_write(const char *dir, struct pki_ca *ca, struct pki_index *ix, int64_t now,
                     int days, char *err, size_t errlen)
{
    unsigned char *pem = NULL;
    size_t pem_len = 0;
    char *path = path_join(dir, "crl.pem");

    ix->crl_number++;
    int rc = crl_build(ca, ix, now, days, &pem, &pem_len, err, errlen);
    if (rc == 0) {
        rc = write_atomic(path, pem, pem_len, 0644);
        if (rc < 0) {
            wp_errf(err, errlen, "%s: %s", path, wp_strerror(rc));
        }
    }
    free(pem);
    free(path);
    return rc;
}

/* ---- public API ---- */

static int days_ok(int days)
{
    return days >= 1 && days <= WP_PKI_MAX_DAYS;
}

int wp_pki_ca_init(const char *dir, const char *cn, int days, char *err, size_t errlen)
{
    int rc = 0;
    int lock = -1;
    struct pki_ca ca;
    struct pki_index ix;
    char *key_path = path_join(dir, "ca.key");
    char *crt_path = path_join(dir, "ca.crt");
    unsigned char *key_pem = wp_xcalloc(1, PEM_KEY_MAX);
    unsigned char *crt_pem = wp_xcalloc(1, PEM_CERT_MAX);
    char *subject = NULL;
    uint8_t serial[WP_PKI_SERIAL_LEN];
    char eb[128];
    int written = 0; /* the key and certificate files */

    ca_init_struct(&ca);
    memset(&ix, 0, sizeof(ix));
    if (!cn_ok(cn)) {
        rc = WP_ECONFIG;
        wp_errf(err, errlen, "invalid CN '%s' (1-64 printable characters, none of ,=+\\\"<>;#)",
                cn);
        goto out;
    }
    if (!days_ok(days)) {
        rc = WP_ECONFIG;
        wp_errf(err, errlen, "invalid validity %d days", days);
        goto out;
    }
    rc = mkdir_p(dir, 0700);
    if (rc < 0) {
        wp_errf(err, errlen, "%s: %s", dir, wp_strerror(rc));
        goto out;
    }
    lock = lock_dir(dir);
    if (lock < 0) {
        rc = lock;
        wp_errf(err, errlen, "%s/.lock: %s", dir, wp_strerror(rc));
        goto out;
    }
    if (file_exists(key_path) || file_exists(crt_path)) {
        rc = -EEXIST;
        wp_errf(err, errlen, "a CA exists already in %s", dir);
        goto out;
    }
    rc = rng_init(&ca, err, errlen);
    if (rc < 0) {
        goto out;
    }
    rc = gen_key(&ca, &ca.key, err, errlen);
    if (rc < 0) {
        goto out;
    }
    rc = gen_serial(&ca, serial);
    if (rc < 0) {
        wp_errf(err, errlen, "RNG failure");
        goto out;
    }
    int64_t now = wp_clock_now_ms() / 1000;
    subject = wp_xasprintf("CN=%s", cn);
    struct cert_req rq = {
        .subject_key = &ca.key,
        .issuer_key = &ca.key,
        .subject = subject,
        .issuer = subject,
        .serial = serial,
        .not_before = now - WP_PKI_SKEW_S,
        .not_after = now + (int64_t)days * 86400,
        .is_ca = 1,
    };
    rc = make_cert(&ca, &rq, crt_pem, PEM_CERT_MAX, err, errlen);
    if (rc < 0) {
        goto out;
    }
    int ret = mbedtls_pk_write_key_pem(&ca.key, key_pem, PEM_KEY_MAX);
    if (ret == 0) {
        ret = mbedtls_x509_crt_parse(&ca.crt, crt_pem, strlen((char *)crt_pem) + 1);
    }
    if (ret != 0) {
        rc = WP_ETLS;
        wp_errf(err, errlen, "encoding the CA: %s", mbed_err(ret, eb, sizeof(eb)));
        goto out;
    }
    rc = write_key_cert(key_path, key_pem, crt_path, crt_pem, err, errlen);
    if (rc < 0) {
        goto out;
    }
    written = 1;
    rc = crl_write(dir, &ca, &ix, now, WP_PKI_CRL_DAYS, err, errlen);
    if (rc < 0) {
        goto out;
    }
    rc = index_save(dir, &ix, err, errlen);
out:
    if (rc < 0) {
        /* don't leave half a CA behind: the next init would refuse to run */
        if (written) {
            (void)unlink(crt_path);
            (void)unlink(key_path);
        }
    }
    unlock_dir(lock);
    mbedtls_platform_zeroize(key_pem, PEM_KEY_MAX);
    free(key_pem);
    free(crt_pem);
    free(subject);
    free(key_path);
    free(crt_path);
    index_free(&ix);
    ca_cleanup(&ca);
    return rc;
}

/* The CA certificate's subject as an mbedTLS name string ("CN=..."). */
static char *ca_subject(const struct pki_ca *ca)
{
    char buf[512];

    if (mbedtls_x509_dn_gets(buf, sizeof(buf), &ca->crt.subject) < 0) {
        return NULL;
    }
    return wp_xstrdup(buf);
}

/* The start of every issue: the CA, its lock, its index, and no valid certificate of that
 * name yet (-EEXIST). The caller unlocks and frees on every path. */
static int issue_open(const char *dir, const char *name, struct pki_ca *ca, int *lock,
                      struct pki_index *ix, char *err, size_t errlen)
{
    int rc = ca_load(dir, ca, err, errlen);
    if (rc < 0) {
        return rc;
    }
    *lock = lock_dir(dir);
    if (*lock < 0) {
        rc = *lock;
        wp_errf(err, errlen, "%s/.lock: %s", dir, wp_strerror(rc));
        return rc;
    }
    rc = index_load(dir, ix, err, errlen);
    if (rc < 0) {
        return rc;
    }
    for (size_t i = 0; i < ix->n; i++) {
        if (ix->v[i].status == WP_PKI_VALID && strcmp(ix->v[i].name, name) == 0) {
            wp_errf(err, errlen, "%s exists already (serial %s; revoke it first)", name,
                    ix->v[i].serial_hex);
            return -EEXIST;
        }
    }
    return 0;
}

/* A random serial not in the index (126 random bits make a collision absurd, but the index
 * is right here: check it). */
static int issue_serial(struct pki_ca *ca, const struct pki_index *ix,
                        uint8_t serial[WP_PKI_SERIAL_LEN],
                        char serial_hex[2 * WP_PKI_SERIAL_LEN + 1], char *err, size_t errlen)
{
    for (int tries = 0; tries < 8; tries++) {
        int dup = 0;
        if (gen_serial(ca, serial) < 0) {
            break;
        }
        wp_pki_hex(serial, WP_PKI_SERIAL_LEN, serial_hex);
        for (size_t i = 0; i < ix->n && !dup; i++) {
            dup = strcmp(ix->v[i].serial_hex, serial_hex) == 0;
        }
        if (!dup) {
            return 0;
        }
    }
    wp_errf(err, errlen, "RNG failure");
    return WP_ETLS;
}

/* Signs a leaf certificate for CN=name with the CA into pem (PEM_CERT_MAX bytes), valid
 * from now (less the clock skew allowance) for days; *not_after gets its end. */
static int sign_leaf(struct pki_ca *ca, mbedtls_pk_context *subject_key, const char *name,
                     enum wp_pki_kind kind, int days, const uint8_t *serial, int64_t now,
                     unsigned char *pem, int64_t *not_after, char *err, size_t errlen)
{
    int rc = 0;
    char *subject = NULL;
    char *issuer = ca_subject(ca);

    if (issuer == NULL) {
        wp_errf(err, errlen, "CA subject too long");
        return WP_ECORRUPT;
    }
    subject = wp_xasprintf("CN=%s", name);
    struct cert_req rq = {
        .subject_key = subject_key,
        .issuer_key = &ca->key,
        .subject = subject,
        .issuer = issuer,
        .serial = serial,
        .not_before = now - WP_PKI_SKEW_S,
        .not_after = now + (int64_t)days * 86400,
        .is_ca = 0,
        .kind = kind,
        .dns_name = kind == WP_PKI_SERVER ? name : NULL,
    };
    *not_after = rq.not_after;
    rc = make_cert(ca, &rq, pem, PEM_CERT_MAX, err, errlen);
    free(subject);
    free(issuer);
    return rc;
}

/* Adds a valid certificate to the index (a copy to *entry unless NULL), then writes the CRL
 * and saves the index. */
static int index_record(const char *dir, struct pki_ca *ca, struct pki_index *ix, const char *name,
                        enum wp_pki_kind kind, const char *serial_hex, int64_t not_after,
                        int64_t now, struct wp_pki_entry *entry, char *err, size_t errlen)
{
    struct wp_pki_entry *e = index_add(ix);
    int rc = 0;

    memcpy(e->name, name, strlen(name) + 1);
    e->kind = kind;
    memcpy(e->serial_hex, serial_hex, 2 * WP_PKI_SERIAL_LEN + 1);
    e->not_after = not_after;
    e->status = WP_PKI_VALID;
    e->revoked_at = 0;
    if (entry != NULL) {
        *entry = *e;
    }
    rc = crl_write(dir, ca, ix, now, WP_PKI_CRL_DAYS, err, errlen);
    if (rc == 0) {
        rc = index_save(dir, ix, err, errlen);
    }
    return rc;
}

int wp_pki_issue(const char *dir, const char *name, enum wp_pki_kind kind, int days,
                 const char *outdir, char *err, size_t errlen)
{
    int rc = 0;
    int lock = -1;
    struct pki_ca ca;
    struct pki_index ix;
    mbedtls_pk_context key;
    char *key_path = NULL;
    char *crt_path = NULL;
    unsigned char *key_pem = wp_xcalloc(1, PEM_KEY_MAX);
    unsigned char *crt_pem = wp_xcalloc(1, PEM_CERT_MAX);
    uint8_t serial[WP_PKI_SERIAL_LEN];
    char serial_hex[2 * WP_PKI_SERIAL_LEN + 1];
    char eb[128];
    int written = 0; /* the key and certificate files */

    ca_init_struct(&ca);
    mbedtls_pk_init(&key);
    memset(&ix, 0, sizeof(ix));
    if (outdir == NULL) {
        outdir = dir;
    }
    if (!wp_pki_name_ok(name)) {
        rc = WP_ECONFIG;
        wp_errf(err, errlen, "invalid name '%s' (1-64 of A-Z a-z 0-9 . _ -, starting alphanumeric)",
                name);
        goto out;
    }
    if (!days_ok(days)) {
        rc = WP_ECONFIG;
        wp_errf(err, errlen, "invalid validity %d days", days);
        goto out;
    }
    if (kind != WP_PKI_CLIENT && kind != WP_PKI_SERVER) {
        rc = WP_ECONFIG;
        wp_errf(err, errlen, "invalid certificate kind");
        goto out;
    }
    rc = issue_open(dir, name, &ca, &lock, &ix, err, errlen);
    if (rc < 0) {
        goto out;
    }
    rc = mkdir_p(outdir, 0700);
    if (rc < 0) {
        wp_errf(err, errlen, "%s: %s", outdir, wp_strerror(rc));
        goto out;
    }
    key_path = wp_xasprintf("%s/%s.key", outdir, name);
    crt_path = wp_xasprintf("%s/%s.crt", outdir, name);
    if (file_exists(key_path) || file_exists(crt_path)) {
        rc = -EEXIST;
        wp_errf(err, errlen, "%s exists already (%s or %s)", name, key_path, crt_path);
        goto out;
    }
    rc = issue_serial(&ca, &ix, serial, serial_hex, err, errlen);
    if (rc < 0) {
        goto out;
    }
    rc = gen_key(&ca, &key, err, errlen);
    if (rc < 0) {
        goto out;
    }
    int64_t now = wp_clock_now_ms() / 1000;
    int64_t not_after = 0;
    rc = sign_leaf(&ca, &key, name, kind, days, serial, now, crt_pem, &not_after, err, errlen);
    if (rc < 0) {
        goto out;
    }
    int ret = mbedtls_pk_write_key_pem(&key, key_pem, PEM_KEY_MAX);
    if (ret != 0) {
        rc = WP_ETLS;
        wp_errf(err, errlen, "encoding the key: %s", mbed_err(ret, eb, sizeof(eb)));
        goto out;
    }
    rc = write_key_cert(key_path, key_pem, crt_path, crt_pem, err, errlen);
    if (rc < 0) {
        goto out;
    }
    written = 1;
    rc = index_record(dir, &ca, &ix, name, kind, serial_hex, not_after, now, NULL, err, errlen);
out:
    if (rc < 0) {
        if (written) {
            (void)unlink(crt_path);
            (void)unlink(key_path);
        }
    }
    unlock_dir(lock);
    mbedtls_platform_zeroize(key_pem, PEM_KEY_MAX);
    free(key_pem);
    free(crt_pem);
    free(key_path);
    free(crt_path);
    mbedtls_pk_free(&key);
    index_free(&ix);
    ca_cleanup(&ca);
    return rc;
}

/* Shared by revoke and gen_crl: load CA + index under the lock, optionally revoke, rewrite. */
static int crl_update(const char *dir, const char *revoke_name, int days, char *err, size_t errlen)
{
    int rc = 0;
    int lock = -1;
    struct pki_ca ca;
    struct pki_index ix;
    struct wp_pki_entry *victim = NULL;

    ca_init_struct(&ca);
    memset(&ix, 0, sizeof(ix));
    if (!days_ok(days)) {
        rc = WP_ECONFIG;
        wp_errf(err, errlen, "invalid CRL validity %d days", days);
        goto out;
    }
    rc = ca_load(dir, &ca, err, errlen);
    if (rc < 0) {
        goto out;
    }
    lock = lock_dir(dir);
    if (lock < 0) {
        rc = lock;
        wp_errf(err, errlen, "%s/.lock: %s", dir, wp_strerror(rc));
        goto out;
    }
    rc = index_load(dir, &ix, err, errlen);
    if (rc < 0) {
        goto out;
    }
    int64_t now = wp_clock_now_ms() / 1000;
    if (revoke_name != NULL) {
        for (size_t i = 0; i < ix.n; i++) {
            if (ix.v[i].status == WP_PKI_VALID && strcmp(ix.v[i].name, revoke_name) == 0) {
                victim = &ix.v[i];
            }
        }
        if (victim == NULL) {
            rc = WP_ENOTFOUND;
            wp_errf(err, errlen, "no valid certificate named '%s'", revoke_name);
            goto out;
        }
        victim->status = WP_PKI_REVOKED;
        victim->revoked_at = now;
    }
    /* CRL first: if the index write then fails, the revocation is already in force */
    rc = crl_write(dir, &ca, &ix, now, days, err, errlen);
    if (rc < 0) {
        goto out;
    }
    rc = index_save(dir, &ix, err, errlen);
out:
    unlock_dir(lock);
    index_free(&ix);
    ca_cleanup(&ca);
    return rc;
}

int wp_pki_revoke(const char *dir, const char *name, char *err, size_t errlen)
{
    if (!wp_pki_name_ok(name)) {
        wp_errf(err, errlen, "invalid name '%s'", name);
        return WP_ECONFIG;
    }
    return crl_update(dir, name, WP_PKI_CRL_DAYS, err, errlen);
}

int wp_pki_gen_crl(const char *dir, int days, char *err, size_t errlen)
{
    return crl_update(dir, NULL, days, err, errlen);
}

int wp_pki_list(const char *dir, wp_pki_list_fn fn, void *arg, char *err, size_t errlen)
{
    struct pki_index ix;
    char *crt_path = path_join(dir, "ca.crt");
    int rc = 0;

    memset(&ix, 0, sizeof(ix));
    if (!file_exists(crt_path)) {
        rc = WP_ENOTFOUND;
        wp_errf(err, errlen, "no CA in %s (run 'watchpost ca init')", dir);
        goto out;
    }
    rc = index_load(dir, &ix, err, errlen);
    for (size_t i = 0; rc == 0 && i < ix.n; i++) {
        rc = fn(&ix.v[i], arg);
    }
out:
    index_free(&ix);
    free(crt_path);
    return rc;
}

/* ---- enrolment: CSRs ---- */

int wp_pki_csr_new(const char *name, char **key_pem, char **csr_pem, char *err, size_t errlen)
{
    int rc = 0;
    int ret = 0;
    struct pki_ca rng; /* only its RNG is used */
    mbedtls_pk_context key;
    mbedtls_x509write_csr w;
    unsigned char *kp = wp_xcalloc(1, PEM_KEY_MAX);
    unsigned char *cp = wp_xcalloc(1, WP_PKI_CSR_MAX);
    char *subject = NULL;
    char eb[128];

    *key_pem = NULL;
    *csr_pem = NULL;
    ca_init_struct(&rng);
    mbedtls_pk_init(&key);
    mbedtls_x509write_csr_init(&w);
    if (!wp_pki_name_ok(name)) {
        rc = WP_ECONFIG;
        wp_errf(err, errlen, "invalid name '%s'", name);
        goto out;
    }
    rc = rng_init(&rng, err, errlen);
    if (rc == 0) {
        rc = gen_key(&rng, &key, err, errlen);
    }
    if (rc < 0) {
        goto out;
    }
    subject = wp_xasprintf("CN=%s", name);
    mbedtls_x509write_csr_set_md_alg(&w, MBEDTLS_MD_SHA256);
    mbedtls_x509write_csr_set_key(&w, &key);
    ret = mbedtls_x509write_csr_set_subject_name(&w, subject);
    if (ret == 0) {
        ret = mbedtls_x509write_csr_pem(&w, cp, WP_PKI_CSR_MAX, mbedtls_ctr_drbg_random, &rng.drbg);
    }
    if (ret == 0) {
        ret = mbedtls_pk_write_key_pem(&key, kp, PEM_KEY_MAX);
    }
    if (ret != 0) {
        rc = WP_ETLS;
        wp_errf(err, errlen, "making the CSR: %s", mbed_err(ret, eb, sizeof(eb)));
        goto out;
    }
    *key_pem = (char *)kp;
    *csr_pem = (char *)cp;
    kp = NULL;
    cp = NULL;
out:
    if (kp != NULL) {
        mbedtls_platform_zeroize(kp, PEM_KEY_MAX);
    }
    free(kp);
    free(cp);
    free(subject);
    mbedtls_x509write_csr_free(&w);
    mbedtls_pk_free(&key);
    ca_cleanup(&rng);
    return rc;
}

/* Parse a PEM CSR, check its self-signature and that its key is EC P-256. */
static int csr_check(mbedtls_x509_csr *csr, const char *pem, size_t len, char *err, size_t errlen)
{
    unsigned char hash[MBEDTLS_MD_MAX_SIZE];
    char eb[128];
    int ret = 0;

    if (len == 0 || len > WP_PKI_CSR_MAX || memchr(pem, '\0', len) != NULL) {
        wp_errf(err, errlen, "the CSR must be 1 to %d bytes of PEM", WP_PKI_CSR_MAX);
        return -EINVAL;
    }
    /* PEM parsing wants the terminating NUL counted in the length */
    char *copy = wp_xmalloc(len + 1);
    memcpy(copy, pem, len);
    copy[len] = '\0';
    ret = mbedtls_x509_csr_parse(csr, (const unsigned char *)copy, len + 1);
    free(copy);
    if (ret != 0) {
        wp_errf(err, errlen, "unreadable CSR: %s", mbed_err(ret, eb, sizeof(eb)));
        return -EINVAL;
    }
    if (mbedtls_pk_get_type(&csr->pk) != MBEDTLS_PK_ECKEY ||
        mbedtls_pk_ec(csr->pk)->grp.id != MBEDTLS_ECP_DP_SECP256R1) {
        wp_errf(err, errlen, "the CSR's key must be EC P-256");
        return -EINVAL;
    }
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(csr->sig_md);
    if (md == NULL || csr->sig_md != MBEDTLS_MD_SHA256 ||
        mbedtls_md(md, csr->cri.p, csr->cri.len, hash) != 0 ||
        mbedtls_pk_verify_ext(csr->sig_pk, csr->sig_opts, &csr->pk, csr->sig_md, hash,
                              mbedtls_md_get_size(md), csr->sig.p, csr->sig.len) != 0) {
        wp_errf(err, errlen, "the CSR's signature does not verify (or is not ECDSA with SHA-256)");
        return -EINVAL;
    }
    return 0;
}

/* DER certificate -> NUL-terminated PEM (free()). */
static char *crt_to_pem(const mbedtls_x509_crt *crt)
{
    size_t cap = 128 + crt->raw.len * 2;
    unsigned char *pem = wp_xmalloc(cap);
    size_t olen = 0;

    if (mbedtls_pem_write_buffer("-----BEGIN CERTIFICATE-----\n", "-----END CERTIFICATE-----\n",
                                 crt->raw.p, crt->raw.len, pem, cap, &olen) != 0) {
        free(pem);
        return NULL;
    }
    return (char *)pem;
}

int wp_pki_issue_csr(const char *dir, const char *name, const char *csr_pem, size_t csr_len,
                     int days, char **crt_pem, char **ca_pem, struct wp_pki_entry *entry, char *err,
                     size_t errlen)
{
    int rc = 0;
    int lock = -1;
    struct pki_ca ca;
    struct pki_index ix;
    mbedtls_x509_csr csr;
    unsigned char *pem = wp_xcalloc(1, PEM_CERT_MAX);
    uint8_t serial[WP_PKI_SERIAL_LEN];
    char serial_hex[2 * WP_PKI_SERIAL_LEN + 1];

    *crt_pem = NULL;
    if (ca_pem != NULL) {
        *ca_pem = NULL;
    }
    ca_init_struct(&ca);
    mbedtls_x509_csr_init(&csr);
    memset(&ix, 0, sizeof(ix));
    if (!wp_pki_name_ok(name)) {
        rc = WP_ECONFIG;
        wp_errf(err, errlen, "invalid name '%s'", name);
        goto out;
    }
    if (!days_ok(days)) {
        rc = WP_ECONFIG;
        wp_errf(err, errlen, "invalid validity %d days", days);
        goto out;
    }
    rc = csr_check(&csr, csr_pem, csr_len, err, errlen);
    if (rc < 0) {
        goto out;
    }
    rc = issue_open(dir, name, &ca, &lock, &ix, err, errlen);
    if (rc < 0) {
        goto out;
    }
    rc = issue_serial(&ca, &ix, serial, serial_hex, err, errlen);
    if (rc < 0) {
        goto out;
    }
    int64_t now = wp_clock_now_ms() / 1000;
    int64_t not_after = 0;
    rc = sign_leaf(&ca, &csr.pk, name, WP_PKI_CLIENT, days, serial, now, pem, &not_after, err,
                   errlen);
    if (rc < 0) {
        goto out;
    }
    rc = index_record(dir, &ca, &ix, name, WP_PKI_CLIENT, serial_hex, not_after, now, entry, err,
                      errlen);
    if (rc < 0) {
        goto out;
    }
    if (ca_pem != NULL) {
        *ca_pem = crt_to_pem(&ca.crt);
        if (*ca_pem == NULL) {
            rc = WP_ETLS;
            wp_errf(err, errlen, "encoding the CA certificate");
            goto out;
        }
    }
    *crt_pem = (char *)pem;
    pem = NULL;
out:
    unlock_dir(lock);
    free(pem);
    mbedtls_x509_csr_free(&csr);
    index_free(&ix);
    ca_cleanup(&ca);
    return rc;
}

int wp_pki_fingerprint(const char *pem, size_t len, char out[65])
{
    mbedtls_x509_crt crt;
    uint8_t d[32];
    int rc = -EINVAL;

    mbedtls_x509_crt_init(&crt);
    if (len > 0 && len < 1u << 20 && memchr(pem, '\0', len) == NULL) {
        char *copy = wp_xmalloc(len + 1);
        memcpy(copy, pem, len);
        copy[len] = '\0';
        if (mbedtls_x509_crt_parse(&crt, (const unsigned char *)copy, len + 1) == 0 &&
            mbedtls_sha256_ret(crt.raw.p, crt.raw.len, d, 0) == 0) {
            wp_pki_hex(d, sizeof(d), out);
            rc = 0;
        }
        free(copy);
    }
    mbedtls_x509_crt_free(&crt);
    return rc;
}

int wp_pki_rand_bytes(uint8_t *buf, size_t n)
{
    size_t got = 0;

    for (int guard = 0; got < n && guard < 100; guard++) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        got += (size_t)r;
    }
    return got == n ? 0 : -EIO;
}

int wp_pki_is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

int wp_pki_ct_equal(const void *a, const void *b, size_t n)
{
    const volatile uint8_t *x = a;
    const volatile uint8_t *y = b;
    uint8_t d = 0;

    for (size_t i = 0; i < n; i++) {
        d |= (uint8_t)(x[i] ^ y[i]);
    }
    return d == 0;
}

int wp_pki_sha256_hex(const char *s, char out[65])
{
    uint8_t d[32];

    if (mbedtls_sha256_ret((const unsigned char *)s, strlen(s), d, 0) != 0) {
        return WP_ETLS;
    }
    wp_pki_hex(d, sizeof(d), out);
    return 0;
}
