/* SPDX-License-Identifier: Apache-2.0 */
/* Check results and log events on the collector's HTTP server (http_api_host.c, docs/API.md). */
#ifndef WP_COLLECTOR_HTTP_API_HOST_H
#define WP_COLLECTOR_HTTP_API_HOST_H

struct coll_server;

/*
 * Register GET /api/v1/checks (the latest result of each check) and GET /api/v1/logevents
 * (log events, newest first) on s->http, viewer role, reading s->events (events.h). Their
 * host= takes a host name or an agent id. Loop thread; nothing to free. Returns 0.
 */
int coll_api_host_start(struct coll_server *s);

#endif
