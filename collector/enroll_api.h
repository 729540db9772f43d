/* SPDX-License-Identifier: Apache-2.0 */
/* POST /api/v1/enroll: an agent trades a bootstrap token and a CSR for its certificate. */
#ifndef WP_COLLECTOR_ENROLL_API_H
#define WP_COLLECTOR_ENROLL_API_H

#include <stdint.h>

#include "http.h"

struct enroll_api;

struct enroll_api_opts {
    const char *ca_dir;  /* the CA (wp/pki.h) that signs; NULL: enrolment is off (404) */
    const char *db_path; /* the token store (enroll.h), e.g. STATE_DIR/enroll.db */
    int cert_days;       /* 0: WP_PKI_CERT_DAYS */
    int max_failures;    /* 0: 5 refused attempts ... */
    int64_t window_ms;   /* 0: ... per 60 s per client address, then 429 */
};

/*
 * Register POST /api/v1/enroll and GET /api/v1/enroll/ca on srv (public routes: the token is
 * the credential) and open the token store. Enrolment needs HTTPS (plain HTTP gets 403).
 * Refusals are counted per client address (like logins) and, over all clients, attempts are
 * limited to ENROLL_API_PER_S a second in bursts of ENROLL_API_BURST; past either, 429 with
 * Retry-After. The certificate is issued on the loop thread (SQLite and the CA's files:
 * a few fsyncs; enrolment is rare and rate-limited). Strings are copied. 0, or an error of
 * enroll_store_open (logged). *out is freed by enroll_api_free after the server has stopped.
 */
#define ENROLL_API_PER_S 5
#define ENROLL_API_BURST 20
int enroll_api_start(struct http_server *srv, const struct enroll_api_opts *o,
                     struct enroll_api **out);
/* NULL does nothing. */
void enroll_api_free(struct enroll_api *e);

#endif
