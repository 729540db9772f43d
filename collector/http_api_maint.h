/* SPDX-License-Identifier: Apache-2.0 */
/* Maintenance windows on the collector's HTTP server (http_api_maint.c, docs/API.md). */
#ifndef WP_COLLECTOR_HTTP_API_MAINT_H
#define WP_COLLECTOR_HTTP_API_MAINT_H

struct coll_server;

/*
 * Register GET /api/v1/maintenance (viewer: runtime windows active, upcoming and ended in the
 * last 30 days, and the rules config's windows, read-only), POST /api/v1/maintenance and
 * POST /api/v1/maintenance/{id}/end (operator) on s->http, with s->rules' store (maint.h).
 * Call after coll_api_start (operators are named through s->api). Loop thread; nothing to
 * free. Returns 0.
 */
int coll_api_maint_start(struct coll_server *s);

#endif
