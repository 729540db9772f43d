/* SPDX-License-Identifier: Apache-2.0 */
/* The fleet's certificate authority (mbedTLS only): create a CA, issue and revoke certs, CRL. */
#ifndef WP_COMMON_PKI_H
#define WP_COMMON_PKI_H

#include <stddef.h>
#include <stdint.h>

/*
 * A CA directory holds:
 *   ca.key   EC P-256 private key (0600)
 *   ca.crt   self-signed CA certificate (CA:true, keyCertSign|cRLSign, subject key id)
 *   index    one line per issued certificate (see pki.c), rewritten atomically
 *   crl.pem  the CRL, rewritten atomically (tmp + fsync + rename) by every init, issue,
 *            revoke and wp_pki_gen_crl(), so a reader never sees a partial file
 *   .lock    flock()ed while a command runs, so two `watchpost ca` calls don't race
 *
 * Issued keys are EC P-256 (0600), certificates have a random positive 16-byte serial,
 * CN=name, basicConstraints CA:false, keyUsage digitalSignature and extendedKeyUsage
 * serverAuth (WP_PKI_SERVER, which also gets subjectAltName DNS:name) or clientAuth
 * (WP_PKI_CLIENT). Validity starts WP_PKI_SKEW_S before now to tolerate clock skew, and
 * the CRL's thisUpdate and revocation dates are back-dated by the same amount.
 *
 * Names (agent ids, host names) are 1..64 chars of [A-Za-z0-9._-] starting with a letter or
 * digit, so they are safe as file names and DNS names. Time comes from wp_clock_now_ms().
 *
 * Every function returns 0 or a negative code and, on failure, writes a one-line message
 * into err (size errlen, may be NULL/0): -EEXIST (CA or name exists), WP_ENOTFOUND (no CA,
 * unknown name), WP_ECONFIG (bad name, CN or days), WP_ECORRUPT (unreadable index or CA
 * files), WP_ETLS (mbedTLS failure), or -errno. They are blocking (file I/O, fsync): run them
 * from the CLI or off the event loop.
 */

#define WP_PKI_NAME_MAX   64
#define WP_PKI_SKEW_S     3600
#define WP_PKI_CA_DAYS    3650 /* default CA lifetime */
#define WP_PKI_CERT_DAYS  825  /* default lifetime of issued certificates */
#define WP_PKI_CRL_DAYS   30   /* nextUpdate = thisUpdate + this */
#define WP_PKI_SERIAL_LEN 16
#define WP_PKI_MAX_DAYS   36500

enum wp_pki_kind {
    WP_PKI_CLIENT = 0, /* agent: extendedKeyUsage clientAuth */
    WP_PKI_SERVER = 1, /* collector: serverAuth + subjectAltName DNS:name */
};

enum wp_pki_status {
    WP_PKI_VALID = 0,
    WP_PKI_REVOKED = 1,
};

/* One index entry, as passed to a wp_pki_list() callback. */
struct wp_pki_entry {
    char name[WP_PKI_NAME_MAX + 1];
    enum wp_pki_kind kind;
    char serial_hex[2 * WP_PKI_SERIAL_LEN + 1]; /* lowercase, big-endian */
    int64_t not_after;                          /* unix seconds */
    enum wp_pki_status status;
    int64_t revoked_at; /* unix seconds; 0 unless revoked */
};

/* Returns 1 if name is a valid certificate name (see above), else 0. */
int wp_pki_name_ok(const char *name);

/*
 * Create a CA in dir (created with its parents, mode 0700, if missing): key, self-signed
 * certificate with CN=cn valid for days, an empty index and an empty CRL. Refuses with -EEXIST if
 * dir/ca.key or dir/ca.crt exists already.
 */
int wp_pki_ca_init(const char *dir, const char *cn, int days, char *err, size_t errlen);

/*
 * Issue outdir/<name>.key (0600) and outdir/<name>.crt signed by the CA in dir, record it in
 * the index and rewrite the CRL. Fails with -EEXIST if a valid (not revoked) certificate
 * with that name is in the index or either output file exists; a revoked name may be
 * issued again once its old files are gone. outdir NULL means dir; it is created (0700) if
 * missing.
 */
int wp_pki_issue(const char *dir, const char *name, enum wp_pki_kind kind, int days,
                 const char *outdir, char *err, size_t errlen);

/*
 * Revoke the valid certificate called name: mark it in the index and rewrite dir/crl.pem.
 * WP_ENOTFOUND if there is no valid certificate with that name.
 */
int wp_pki_revoke(const char *dir, const char *name, char *err, size_t errlen);

/* Rewrite dir/crl.pem from the index with nextUpdate now + days (e.g. from cron). */
int wp_pki_gen_crl(const char *dir, int days, char *err, size_t errlen);

/*
 * Call fn for every index entry in issue order; a non-zero return from fn stops the walk
 * and is returned. The entry is only valid during the call.
 */
typedef int (*wp_pki_list_fn)(const struct wp_pki_entry *e, void *arg);
int wp_pki_list(const char *dir, wp_pki_list_fn fn, void *arg, char *err, size_t errlen);

/*
 * Enrolment (a bootstrap token, collector/enroll.h): the agent makes its key and a CSR, the
 * collector issues the certificate from the CSR, so the private key never leaves the agent.
 */
#define WP_PKI_CSR_MAX  4096 /* bytes of a PEM CSR accepted from the network */
#define WP_PKI_CERT_MAX 4096 /* bytes of one PEM certificate */

/*
 * A new EC P-256 key and a CSR for it (CN=name, signed with SHA-256). *key_pem and *csr_pem
 * are NUL-terminated PEM, free()d by the caller (wipe the key with mbedtls_platform_zeroize
 * first). 0, WP_ECONFIG (bad name) or WP_ETLS.
 */
int wp_pki_csr_new(const char *name, char **key_pem, char **csr_pem, char *err, size_t errlen);

/*
 * Issue a client certificate (WP_PKI_CLIENT, CN=name, days) for the public key of a CSR in
 * PEM (csr_len bytes, at most WP_PKI_CSR_MAX; need not be NUL-terminated), signed by the CA in
 * dir, recorded in the index, the CRL rewritten, like wp_pki_issue() but no file is written.
 * The CSR's own signature must verify and its key must be EC P-256; its subject is ignored.
 * On success *crt_pem and, if ca_pem is not NULL, *ca_pem (the CA certificate) are
 * NUL-terminated PEM, free()d by the caller, and *entry (may be NULL) describes the new
 * certificate. -EEXIST when a valid certificate with that name is in the index; -EINVAL for
 * a malformed or unsuitable CSR; else as wp_pki_issue().
 */
int wp_pki_issue_csr(const char *dir, const char *name, const char *csr_pem, size_t csr_len,
                     int days, char **crt_pem, char **ca_pem, struct wp_pki_entry *entry, char *err,
                     size_t errlen);

/*
 * The SHA-256 fingerprint of the first certificate in pem (len bytes) as 64 lowercase hex
 * digits into out. 0 or -EINVAL.
 */
int wp_pki_fingerprint(const char *pem, size_t len, char out[65]);

/* Secret helpers for tokens, sessions and salts (any thread; they do not block on I/O). */
/* n random bytes from getrandom(2) into buf. 0, -EIO (short) or -errno. */
int wp_pki_rand_bytes(uint8_t *buf, size_t n);
/* n bytes as 2n lower-case hex digits and a NUL into out. */
void wp_pki_hex(const uint8_t *in, size_t n, char *out);
/* Are the n chars of s all lower-case hex digits? */
int wp_pki_is_hex(const char *s, size_t n);
/* Do a and b hold the same n bytes? Constant time in n. */
int wp_pki_ct_equal(const void *a, const void *b, size_t n);
/* The SHA-256 of the string s as 64 hex digits and a NUL into out. 0 or WP_ETLS. */
int wp_pki_sha256_hex(const char *s, char out[65]);

#endif
