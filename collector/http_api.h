/* SPDX-License-Identifier: Apache-2.0 */
/* The collector's JSON API, /metrics and the event stream on its HTTP server (docs/API.md). */
#ifndef WP_COLLECTOR_HTTP_API_H
#define WP_COLLECTOR_HTTP_API_H

#include <stdint.h>

#include "http.h"

struct coll_server;
struct coll_api;
struct http_auth;

/*
 * Register the routes on s->http (incidents, lines, seats, hosts, outbox, /metrics, events)
 * and start the once-a-second event poll (new incident timeline entries go to every open
 * GET /api/v1/events stream). Takes ownership of auth (closed by coll_api_stop; may be NULL
 * in tests: then operator actions are written "by" "api"). Loop thread. Returns 0.
 */
int coll_api_start(struct coll_server *s, struct http_auth *auth, struct coll_api **out);
/* Close the event streams and the poll timer; the rest is freed once the timer has closed
 * (keep running the loop). Call before http_server_stop(). NULL does nothing. */
void coll_api_stop(struct coll_api *api);
/* The operator's name for a request (user, or "token:NAME"; "api" without auth) into by.
 * Returns 0, or -1 when the request has no principal (answer 401). Loop thread. */
int coll_api_who(struct coll_api *api, struct http_req *req, char *by, size_t len);

/* A line changed state (ingest, lines.h): kept until the next poll, which sends the lines
 * changed since the previous one as one "lines" event to every open stream (the latest change
 * of each line; over 2000 lines a poll the event carries "overflow": true instead). Nothing
 * is kept while no stream is open. Loop thread. */
void coll_api_line_changed(struct coll_api *api, const char *agent, const char *host,
                           const char *object, const char *group, const char *state,
                           const char *raw, const char *info, int64_t since_ms);

#endif
