/* SPDX-License-Identifier: Apache-2.0 */
/* Agent connections (server.c): listener, TLS, framing; used by ingest. */
#ifndef WP_COLLECTOR_SERVER_H
#define WP_COLLECTOR_SERVER_H

#include "wp/buf.h"

struct coll_server;
struct coll_conn;
struct coll_agent;

/* Bind and listen; *bound_port gets the port actually bound (port 0 = any). */
int coll_listen(struct coll_server *s, const char *host, const char *port, int *bound_port);
/* Close a connection with a logged reason (level < 0: silent). Safe to call twice. */
void coll_conn_close(struct coll_conn *c, int level, const char *why);
/* Encrypt and send one plaintext frame. */
void coll_conn_send(struct coll_conn *c, const struct wp_buf *frame);
/* Send an error frame (the agent logs it), before closing. */
void coll_conn_send_error(struct coll_conn *c, const char *msg);
const char *coll_conn_peer(const struct coll_conn *c);
const char *coll_conn_cn(const struct coll_conn *c);
int coll_conn_fingerprint(const struct coll_conn *c, char out[65]);
/* The agent bound to a connection (after HELLO), or NULL. */
struct coll_agent *coll_conn_agent(const struct coll_conn *c);
/* Bind a connection to its agent after HELLO (NULL unbinds). */
void coll_conn_set_agent(struct coll_conn *c, struct coll_agent *a);
/* Re-run connections that stopped reading because the journal was full. */
void coll_server_resume_paused(struct coll_server *s);
void coll_close_all_conns(struct coll_server *s, const char *why);
/* After a CRL reload: close live connections whose certificate is now revoked. */
void coll_close_revoked(struct coll_server *s);

#endif
