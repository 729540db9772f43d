/* SPDX-License-Identifier: Apache-2.0 */
/* Mutual TLS 1.2 (mbedTLS) over memory buffers, so libuv owns the sockets. */
#ifndef WP_COMMON_TLS_H
#define WP_COMMON_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "wp/buf.h"

/*
 * A context holds the CA, our certificate and key, the CRL and the mbedTLS config.
 * Cipher suites: ECDHE-ECDSA with ChaCha20-Poly1305 first, then AES-128-GCM; TLS 1.2
 * only; peer certificate required on both sides. Servers enable session tickets with a
 * key kept in a file (ticket_key_path) so resumption survives a collector restart.
 */
struct wp_tls_ctx;
struct wp_tls_conn;

struct wp_tls_opts {
    const char *ca_path;   /* PEM CA certificate (required) */
    const char *cert_path; /* PEM certificate (required) */
    const char *key_path;  /* PEM private key (required) */
    const char *crl_path;  /* PEM CRL; may be NULL or missing on disk (no revocations) */
    const char *ticket_key_path; /* server: file holding the session-ticket key; NULL = random */
    int is_server;
    int no_client_cert; /* server: ask for no client certificate (HTTPS for browsers); the CA
                         * and CRL are then optional and peer checks are skipped */
};

/*
 * Load files and build the config. On error returns WP_ETLS / -errno and writes a
 * message naming the file into err (size errlen). *out is NULL on failure.
 * Only the loop thread uses a context.
 */
int wp_tls_ctx_new(const struct wp_tls_opts *opts, char *err, size_t errlen,
                   struct wp_tls_ctx **out);
void wp_tls_ctx_free(struct wp_tls_ctx *ctx);

/*
 * Re-read the CRL if its file changed (mtime, size or inode). New handshakes use the new
 * CRL. Returns 1 when it was reloaded, 0 when unchanged, <0 on a parse error (the old
 * CRL stays in force; err says why).
 */
int wp_tls_ctx_reload_crl(struct wp_tls_ctx *ctx, char *err, size_t errlen);

/* Is a certificate serial (raw big-endian bytes) revoked by the current CRL? */
int wp_tls_ctx_is_revoked(const struct wp_tls_ctx *ctx, const uint8_t *serial, size_t len);

/*
 * A connection. Ciphertext from the socket goes in with wp_tls_feed(); ciphertext to send
 * accumulates in wp_tls_outbuf(), which the caller writes to the socket and consumes.
 * server_name: the name a client expects in the server certificate (NULL: not checked).
 */
int wp_tls_conn_new(struct wp_tls_ctx *ctx, const char *server_name, struct wp_tls_conn **out);
void wp_tls_conn_free(struct wp_tls_conn *c);

/* Clients: the ctx keeps the session of the last completed handshake and offers it
 * (session ticket) on the next connection, so reconnects cost ~0.2 ms instead of ~9 ms. */

/* Add ciphertext received from the peer. */
void wp_tls_feed(struct wp_tls_conn *c, const void *data, size_t len);

/* Drive the handshake: 0 when complete, WP_EAGAIN when it needs more input,
 * WP_EAUTH when the peer certificate is refused (other CA, revoked, expired),
 * WP_ETLS on other failures. wp_tls_last_error() describes the failure. */
int wp_tls_handshake(struct wp_tls_conn *c);

/* Read decrypted bytes: >0 bytes read, WP_EAGAIN when no whole record is buffered,
 * WP_ECLOSED on close_notify, WP_ETLS on failure. */
ssize_t wp_tls_read(struct wp_tls_conn *c, void *buf, size_t len);

/* Encrypt len bytes into the out buffer (several records if needed). 0 or WP_ETLS. */
int wp_tls_write(struct wp_tls_conn *c, const void *data, size_t len);

/* Queue a close_notify alert. */
void wp_tls_close_notify(struct wp_tls_conn *c);

/* Ciphertext waiting to be written to the socket. */
struct wp_buf *wp_tls_outbuf(struct wp_tls_conn *c);

/* After the handshake: the peer certificate's CN (NUL-terminated copy into buf; returns 0,
 * or WP_ENOTFOUND), its SHA-256 fingerprint as 64 hex chars + NUL, and its serial. */
int wp_tls_peer_cn(const struct wp_tls_conn *c, char *buf, size_t len);
int wp_tls_peer_fingerprint(const struct wp_tls_conn *c, char out[65]);
int wp_tls_peer_serial(const struct wp_tls_conn *c, uint8_t *serial, size_t *len);
/* Whether the session was resumed from a ticket, and the negotiated suite name. */
int wp_tls_resumed(const struct wp_tls_conn *c);
const char *wp_tls_suite(const struct wp_tls_conn *c);

/* A description of the last failure on this connection (mbedTLS error text, verify flags). */
const char *wp_tls_last_error(const struct wp_tls_conn *c);

#endif
